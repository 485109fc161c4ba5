//! The settings shared by the desktop app and the `schoolvault` CLI: one TOML file in the
//! platform's config folder (`SCHOOLVAULT_CONFIG` overrides the path), and the default places
//! for the catalog and the backup folder.
//!
//! Secrets are never in the file: the database and SMTP passwords live in the OS keychain
//! (accounts [`DB_PASSWORD_ACCOUNT`] and [`SMTP_PASSWORD_ACCOUNT`]); the file only records
//! that one was saved, so nothing touches the keychain when no password is needed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};
use crate::keychain::Keychain;
use crate::retention::Retention;
use crate::source::mysql::MyTarget;
use crate::source::postgres::{PgTarget, Tls};
use crate::source::{Database, Engine};

/// The keychain account of the database password.
pub const DB_PASSWORD_ACCOUNT: &str = "database-password";
/// The keychain account of the SMTP password.
pub const SMTP_PASSWORD_ACCOUNT: &str = "smtp-password";
/// The environment variable that names another settings file.
pub const CONFIG_ENV: &str = "SCHOOLVAULT_CONFIG";

fn project_dirs() -> Result<directories::ProjectDirs> {
    directories::ProjectDirs::from("org", "SchoolVault", "SchoolVault").ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            "This computer's data folder cannot be found (no home directory)",
            "Give the folders explicitly with --dir and --catalog",
        )
        .in_app("Give this user a home folder: SchoolVault keeps its settings there")
    })
}

/// The default backup folder: `<data dir>/backups`.
///
/// # Errors
/// `InvalidInput` when there is no home directory.
pub fn default_backup_dir() -> Result<PathBuf> {
    Ok(project_dirs()?.data_dir().join("backups"))
}

/// The default catalog: `<data dir>/catalog.sqlite`.
///
/// # Errors
/// `InvalidInput` when there is no home directory.
pub fn default_catalog() -> Result<PathBuf> {
    Ok(project_dirs()?.data_dir().join("catalog.sqlite"))
}

/// The settings file: `$SCHOOLVAULT_CONFIG`, else `<config dir>/config.toml`.
///
/// # Errors
/// `InvalidInput` when there is no home directory.
pub fn config_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    Ok(project_dirs()?.config_dir().join("config.toml"))
}

/// Where the school's database is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// PostgreSQL (the default, left out of the file) or MariaDB/MySQL.
    #[serde(default, skip_serializing_if = "Engine::is_postgres")]
    pub engine: Engine,
    /// Server host name or address.
    pub host: String,
    /// Server port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Database name.
    pub name: String,
    /// User name.
    pub user: String,
    /// TLS: `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
    #[serde(default)]
    pub tls: Tls,
    /// The CA certificate (PEM) that `verify-ca` / `verify-full` trust; none: the public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// True when a password is saved in the keychain for this connection.
    #[serde(default)]
    pub password_saved: bool,
}

fn default_port() -> u16 {
    5432
}

impl DatabaseSettings {
    /// The connection, with `password` (or none: trust, peer or `PGPASSWORD`).
    pub fn target(&self, password: Option<&str>) -> PgTarget {
        let target = PgTarget::from_parts(
            &self.host, self.port, &self.name, &self.user, password, self.tls,
        );
        match &self.ca_file {
            Some(ca) if self.tls.verifies() => target.with_ca_file(ca),
            _ => target,
        }
    }

    /// The connection, with the saved password read from `keychain` when there is one.
    ///
    /// # Errors
    /// `Keychain` when a password was saved but the keychain cannot be read; `InvalidInput`
    /// when it is gone from the keychain.
    pub fn target_with(&self, keychain: &dyn Keychain) -> Result<PgTarget> {
        let password = self.saved_password(keychain)?;
        Ok(self.target(password.as_deref().map(String::as_str)))
    }

    /// The database, of either engine, with the saved password read from `keychain`.
    ///
    /// # Errors
    /// As [`DatabaseSettings::target_with`].
    pub fn database_with(&self, keychain: &dyn Keychain) -> Result<Database> {
        let password = self.saved_password(keychain)?;
        Ok(self.database(password.as_deref().map(String::as_str)))
    }

    /// The database, of either engine, with `password`.
    pub fn database(&self, password: Option<&str>) -> Database {
        match self.engine {
            Engine::Postgres => Database::Postgres(self.target(password)),
            Engine::Mariadb => Database::MariaDb(MyTarget::from_parts(
                &self.host,
                self.port,
                &self.name,
                &self.user,
                password,
                self.tls,
                self.ca_file.as_deref(),
            )),
        }
    }

    fn saved_password(&self, keychain: &dyn Keychain) -> Result<Option<Zeroizing<String>>> {
        if !self.password_saved {
            return Ok(None);
        }
        let password: Zeroizing<String> = keychain.get(DB_PASSWORD_ACCOUNT)?.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "The database password is missing from the keychain",
                "Enter it again in SchoolVault's settings (Database)",
            )
        })?;
        Ok(Some(password))
    }
}

/// Backup settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// The backup folder (default: the platform's data folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

/// When scheduled backups run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Scheduled backups on or off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Cron expression (5 fields, local time unless `timezone`).
    #[serde(default = "default_cron")]
    pub cron: String,
    /// IANA time zone, e.g. `Europe/Berlin` (default: this computer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Run a missed slot at the next start.
    #[serde(default = "yes")]
    pub catch_up: bool,
    /// Stop a backup that makes no progress for this many minutes (and count it failed).
    #[serde(default = "default_watchdog_minutes")]
    pub watchdog_minutes: u32,
    /// Once a week, after the scheduled backup, restore the newest backup into a scratch
    /// database, compare every table and drop it (skipped, and said so, when the backup user
    /// may not create databases).
    #[serde(default = "yes")]
    pub test_restore: bool,
}

fn default_watchdog_minutes() -> u32 {
    10
}

impl ScheduleSettings {
    /// The watchdog's limit (at least a minute).
    pub fn watchdog(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.watchdog_minutes.max(1)) * 60)
    }
}

fn yes() -> bool {
    true
}

fn default_cron() -> String {
    crate::schedule::DEFAULT_CRON.to_string()
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            enabled: true,
            cron: default_cron(),
            timezone: None,
            catch_up: true,
            watchdog_minutes: default_watchdog_minutes(),
            test_restore: true,
        }
    }
}

/// Which backups to keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Keep everything younger than this many days.
    #[serde(default = "default_keep_days")]
    pub keep_days: u32,
    /// Also keep the newest N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Also keep one per week for N weeks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// Also keep one per month for N months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
}

fn default_keep_days() -> u32 {
    30
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            keep_days: default_keep_days(),
            keep_last: None,
            keep_weekly: None,
            keep_monthly: None,
        }
    }
}

impl RetentionSettings {
    /// The policy.
    pub fn policy(&self) -> Retention {
        Retention {
            keep_days: self.keep_days,
            keep_last: self.keep_last,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
        }
    }
}

/// Failure emails (and the stale-backup alert).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Emails on or off.
    #[serde(default)]
    pub enabled: bool,
    /// SMTP server.
    #[serde(default)]
    pub host: String,
    /// SMTP port.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls`, `tls` or `plain` (a relay on this machine only).
    #[serde(default = "default_security")]
    pub security: String,
    /// SMTP login, if the server wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// True when the SMTP password is saved in the keychain.
    #[serde(default)]
    pub password_saved: bool,
    /// The sender.
    #[serde(default)]
    pub from: String,
    /// The administrators' addresses.
    #[serde(default)]
    pub to: Vec<String>,
    /// Also email the active administrators found in the school database.
    #[serde(default)]
    pub school_admins: bool,
    /// The query that finds them (default: the ERP's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admins_query: Option<String>,
    /// Alert once when no backup succeeded for this many hours.
    #[serde(default = "default_stale_hours")]
    pub stale_hours: u32,
    /// Also send a weekly report (Monday morning) of the backups made, failed and kept.
    #[serde(default)]
    pub weekly_digest: bool,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_security() -> String {
    "starttls".into()
}

fn default_stale_hours() -> u32 {
    48
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            enabled: false,
            host: String::new(),
            port: default_smtp_port(),
            security: default_security(),
            user: None,
            password_saved: false,
            from: String::new(),
            to: Vec::new(),
            school_admins: false,
            admins_query: None,
            stale_hours: default_stale_hours(),
            weekly_digest: false,
        }
    }
}

impl EmailSettings {
    /// A login over `plain` to another machine would send the SMTP password unencrypted.
    ///
    /// # Errors
    /// `InvalidInput` saying so.
    fn refuse_plain_login(&self, security: crate::notify::Security) -> Result<()> {
        let logs_in = self.user.as_deref().is_some_and(|u| !u.trim().is_empty());
        let host = self.host.trim().to_ascii_lowercase();
        let this_machine = ["localhost", "127.0.0.1", "::1", "[::1]"].contains(&host.as_str());
        if security != crate::notify::Security::Plain || !logs_in || this_machine {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "The email settings log in to {} without encryption (security: plain), so the SMTP password would travel unencrypted over the network",
                self.host.trim()
            ),
            "Choose STARTTLS (port 587) or TLS (port 465) in the email settings; plain is only for a relay on this machine (localhost)",
        ))
    }

    /// How to send, with the saved password read from `keychain`; `None` when emails are off.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown security mode, no host, or a login over `plain` to
    /// another machine (the password would travel unencrypted); `Keychain` when the saved
    /// password cannot be read.
    pub fn smtp(&self, keychain: &dyn Keychain) -> Result<Option<crate::notify::SmtpSettings>> {
        use crate::notify::Security;
        if !self.enabled {
            return Ok(None);
        }
        let security = Security::parse(&self.security)?;
        if self.host.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "Emails are on but no SMTP server is set",
                "Enter the SMTP server in the email settings",
            ));
        }
        let user = self.user.clone().filter(|u| !u.trim().is_empty());
        // Checked before the keychain is read: the password must not leave unencrypted.
        self.refuse_plain_login(security)?;
        let password = if self.password_saved {
            keychain.get(SMTP_PASSWORD_ACCOUNT)?
        } else {
            None
        };
        Ok(Some(crate::notify::SmtpSettings {
            host: self.host.trim().to_string(),
            port: self.port,
            security,
            user,
            password,
            from: if self.from.trim().is_empty() {
                "schoolvault@localhost".into()
            } else {
                self.from.trim().to_string()
            },
            to: self.to.clone(),
        }))
    }

    /// The query for the school's administrators, when they are to be emailed too.
    pub fn admins_query(&self) -> Option<String> {
        self.school_admins.then(|| {
            self.admins_query
                .clone()
                .unwrap_or_else(|| crate::notify::DEFAULT_ADMIN_QUERY.to_string())
        })
    }
}

/// The desktop app's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Start SchoolVault (in the tray) when the user logs in.
    #[serde(default)]
    pub start_at_login: bool,
}

/// Everything in the settings file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The school's database; `None` until it is set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSettings>,
    /// Backup settings.
    #[serde(default)]
    pub backup: BackupSettings,
    /// The schedule.
    #[serde(default)]
    pub schedule: ScheduleSettings,
    /// Retention.
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Emails.
    #[serde(default)]
    pub email: EmailSettings,
    /// The app.
    #[serde(default)]
    pub app: AppSettings,
    /// Offsite destinations (`[[destinations]]`), each backup copied to every enabled one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<crate::offsite::DestinationSettings>,
}

const HEADER: &str =
    "# SchoolVault settings, shared by the desktop app and the `schoolvault` command.\n\
# Passwords and the encryption key are kept in the OS keychain, never in this file.\n\n";

impl Config {
    /// Read `path`; a missing file is the default settings.
    ///
    /// # Errors
    /// `InvalidInput` naming the file and the line when it is not valid; `Io` when unreadable.
    pub fn load(path: &Path) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), &e)),
        };
        let config: Config = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "The settings file {} is not valid{}: {}",
                    path.display(),
                    line.map(|l| format!(" (line {l})")).unwrap_or_default(),
                    e.message()
                ),
                "Fix or delete that line (SchoolVault then uses its defaults), or change the setting in the app",
            )
        })?;
        // Not validated here: a setting that breaks a rule (a hand-edited watchdog of 0, an
        // email section a server fills from the environment) must never stop a backup or a
        // restore. The shells say what is wrong (`Config::validate`), and saving refuses it.
        Ok(config)
    }

    /// The rules every settings file obeys, checked when it is saved (by the app or
    /// `schoolvault config`) and before a change is applied, and said as a warning when a file
    /// that breaks them is loaded: a schedule that parses, a watchdog
    /// of 1 to 1440 minutes, a retention that keeps something, and emails that can be sent.
    ///
    /// # Errors
    /// `InvalidInput` naming the setting and what to do.
    pub fn validate(&self) -> Result<()> {
        if let Some(db) = &self.database {
            for (what, v) in [
                ("server", &db.host),
                ("database name", &db.name),
                ("user", &db.user),
            ] {
                if v.trim().is_empty() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("The school database's {what} is empty"),
                        "Fill it in (server, database name and user are all needed)",
                    ));
                }
            }
        }
        if let Some(dir) = &self.backup.dir {
            if !dir.is_absolute() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("The backup folder {} is not a full path", dir.display()),
                    "Give the whole path, e.g. /srv/backups (a relative one would move with the working folder)",
                ));
            }
        }
        crate::schedule::Schedule::parse(&self.schedule.cron, self.schedule.timezone.as_deref())?;
        if !(1..=1440).contains(&self.schedule.watchdog_minutes) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("The watchdog is {} minutes", self.schedule.watchdog_minutes),
                "Stop a stalled backup after 1 to 1440 minutes (10 is a good choice)",
            ));
        }
        self.retention.policy().validate()?;
        for (i, d) in self.destinations.iter().enumerate() {
            d.validate()?;
            if self.destinations[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&d.name))
            {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("Two destinations are called {}", d.name),
                    "Give each destination its own name",
                ));
            }
        }
        if self.email.enabled {
            let security = crate::notify::Security::parse(&self.email.security)?;
            self.email.refuse_plain_login(security)?;
            if self.email.to.iter().all(|a| a.trim().is_empty()) && !self.email.school_admins {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "Emails are on but nobody would get them",
                    "Enter at least one administrator's address, or turn emails off",
                ));
            }
            if let Some(bad) = self.email.to.iter().find(|a| !a.contains('@')) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("{bad:?} is not an email address"),
                    "Write addresses as name@school.example",
                ));
            }
            if self.email.host.trim().is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "Emails are on but no SMTP server is set",
                    "Enter the SMTP server in the email settings, or turn emails off",
                ));
            }
        }
        Ok(())
    }

    /// Write to `path` atomically (a temporary file renamed over it), creating its folder.
    ///
    /// # Errors
    /// `Io` / `DiskFull`.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate()?;
        let text = toml::to_string_pretty(self).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("Internal error: the settings cannot be written: {e}"),
                "Nothing was changed; please report this",
            )
        })?;
        crate::storage::write_private(path, format!("{HEADER}{text}").as_bytes())
    }

    /// The destination called `name` (case does not matter).
    ///
    /// # Errors
    /// `NotFound` naming the ones there are.
    pub fn destination(&self, name: &str) -> Result<&crate::offsite::DestinationSettings> {
        self.destinations
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("There is no destination called {name:?}"),
                    if self.destinations.is_empty() {
                        "Add one with `schoolvault destination add NAME URL`".to_string()
                    } else {
                        format!(
                            "The destinations are: {}",
                            self.destinations
                                .iter()
                                .map(|d| d.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                )
            })
    }

    /// The backup folder: the configured one, else the default.
    ///
    /// # Errors
    /// `InvalidInput` when there is no home directory.
    pub fn backup_dir(&self) -> Result<PathBuf> {
        match &self.backup.dir {
            Some(d) => Ok(d.clone()),
            None => default_backup_dir(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_no_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/config.toml");
        assert_eq!(
            Config::load(&path).expect("missing is default"),
            Config::default()
        );
        let mut c = Config {
            database: Some(DatabaseSettings {
                engine: Engine::Postgres,
                host: "db.school.lan".into(),
                port: 5433,
                name: "erp".into(),
                user: "backup".into(),
                tls: Tls::Require,
                ca_file: None,
                password_saved: true,
            }),
            ..Config::default()
        };
        c.schedule.cron = "30 1 * * *".into();
        c.retention.keep_last = Some(5);
        c.save(&path).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("host = \"db.school.lan\""), "{text}");
        assert!(!text.to_lowercase().contains("password ="), "{text}");
        assert_eq!(Config::load(&path).expect("load"), c);
    }

    #[test]
    fn a_broken_file_names_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[database]\nhost = \"x\"\nport = \"five\"\n").expect("write");
        let err = Config::load(&path).expect_err("invalid");
        assert_eq!(err.code(), "invalid_input");
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn a_hand_edited_file_obeys_the_same_rules_as_the_app() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        for (text, says) in [
            ("[retention]\nkeep_days = 0\n", "0 days"),
            ("[schedule]\ncron = \"at two\"\n", "not a cron expression"),
            ("[schedule]\nwatchdog_minutes = 0\n", "watchdog"),
            (
                "[email]\nenabled = true\nhost = \"smtp.example\"\nto = [\"nobody\"]\n",
                "not an email address",
            ),
            (
                "[email]\nenabled = true\nhost = \"smtp.example\"\n",
                "nobody would get them",
            ),
            (
                "[email]\nenabled = true\nhost = \"smtp.example\"\nsecurity = \"ssl\"\nto = [\"a@b.example\"]\n",
                "security",
            ),
            (
                "[email]\nenabled = true\nhost = \"smtp.example\"\nsecurity = \"plain\"\nuser = \"it\"\nto = [\"a@b.example\"]\n",
                "without encryption",
            ),
            ("[backup]\ndir = \"backups\"\n", "not a full path"),
            (
                "[database]\nhost = \"db\"\nname = \" \"\nuser = \"backup\"\n",
                "database name is empty",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            // It still loads (nothing stops a backup), but the rules say what is wrong, and it
            // is not saved like that.
            let loaded = Config::load(&path).expect(text);
            let err = loaded.validate().expect_err(text);
            assert_eq!(err.code(), "invalid_input");
            assert!(err.to_string().contains(says), "{text}: {err}");
            assert!(loaded.save(&path).is_err(), "{text}");
        }
        // Keeping the newest 3 makes 0 days possible; saving checks the same rules.
        std::fs::write(&path, "[retention]\nkeep_days = 0\nkeep_last = 3\n").expect("write");
        let mut ok = Config::load(&path).expect("keeps the newest 3");
        ok.retention.keep_last = None;
        assert!(
            ok.save(&path).is_err(),
            "an impossible retention is not saved"
        );
        assert!(Config::load(&path).is_ok(), "the file is unchanged");
    }
}
