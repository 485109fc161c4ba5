//! What a command on the vault starts from: the settings file, the opened vault (backup folder
//! and catalog), the database given on the command line, how progress is shown, and the
//! watchdog. Also which database a command works on when it is not given (`target`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use schoolvault_engine::config::{self, Config};
use schoolvault_engine::jobs::{Offsite, Vault};
use schoolvault_engine::keychain::{Keys, OsKeychain};
use schoolvault_engine::progress::Progress;
use schoolvault_engine::source::mysql::MyTarget;
use schoolvault_engine::source::postgres::PgTarget;
use schoolvault_engine::source::{Database, Engine};
use schoolvault_engine::{Error, ErrorKind, Result};

use crate::args::Cli;
use crate::progress::progress_for;

/// The opened vault and what every command on it needs.
pub(crate) struct Session {
    /// The backup folder and catalog.
    pub(crate) vault: Vault,
    /// The settings file's contents.
    pub(crate) settings: Config,
    /// `--db` / `SCHOOLVAULT_DB`.
    pub(crate) db: Option<String>,
    /// Where the engine reports progress.
    pub(crate) progress: Arc<dyn Progress>,
    /// Stop a backup that makes no progress for this long.
    pub(crate) watchdog: Duration,
    /// The offsite destinations (from the settings file).
    pub(crate) offsite: Offsite,
    /// Where the settings file is.
    pub(crate) config_path: PathBuf,
}

impl Session {
    /// Open the vault named by the command line, else by the settings file.
    ///
    /// # Errors
    /// No data folder, `Catalog` errors.
    pub(crate) async fn open(
        cli: &Cli,
        keys: Keys,
        settings: Config,
        config_path: PathBuf,
    ) -> Result<Session> {
        let (dir, catalog) = vault_paths(cli, &settings)?;
        let vault = Vault::open(dir, &catalog, keys).await?;
        let progress = progress_for(cli.json);
        let watchdog = cli.watchdog.map_or_else(
            || settings.schedule.watchdog(),
            |s| Duration::from_secs(s.max(1)),
        );
        let offsite = Offsite::from_config(&settings, Arc::new(OsKeychain));
        Ok(Session {
            vault,
            offsite,
            config_path,
            settings,
            db: cli.db.clone(),
            progress,
            watchdog,
        })
    }

    /// The database to `what` (for the error): `--db`, else the settings file's.
    ///
    /// # Errors
    /// As [`target`].
    pub(crate) fn target(&self, what: &str) -> Result<PgTarget> {
        target(self.db.as_deref(), &self.settings, what)
    }

    /// The database to back up: `--db` (PostgreSQL, MariaDB or MySQL), else the settings
    /// file's.
    ///
    /// # Errors
    /// As [`target`].
    pub(crate) fn database(&self, what: &str) -> Result<Database> {
        match self.db.as_deref() {
            Some(url) if MyTarget::is_url(url) => {
                if MyTarget::url_has_password(url) {
                    eprintln!("warning: the database address holds a password, which other users of this computer can see (in `ps`, shell history); put it in MYSQL_PWD instead");
                }
                Ok(Database::MariaDb(MyTarget::parse(url)?))
            }
            Some(_) => Ok(Database::Postgres(self.target(what)?)),
            None => match &self.settings.database {
                Some(db) if db.engine == Engine::Mariadb => db.database_with(&OsKeychain),
                _ => Ok(Database::Postgres(self.target(what)?)),
            },
        }
    }
}

/// The backup folder and the catalog: the command line's, else the settings file's and the
/// default catalog.
///
/// # Errors
/// No data folder.
pub(crate) fn vault_paths(cli: &Cli, settings: &Config) -> Result<(PathBuf, PathBuf)> {
    let dir = match cli.dir.clone() {
        Some(d) => d,
        None => settings.backup_dir()?,
    };
    let catalog = match cli.catalog.clone() {
        Some(c) => c,
        None => config::default_catalog()?,
    };
    Ok((dir, catalog))
}

/// The database: `--db` / `SCHOOLVAULT_DB`, else the settings file's (password from the keychain).
///
/// # Errors
/// `InvalidInput` when neither names one; a bad address; keychain errors.
pub(crate) fn target(url: Option<&str>, config: &Config, what: &str) -> Result<PgTarget> {
    let settings_mariadb = url.is_none()
        && config
            .database
            .as_ref()
            .is_some_and(|d| d.engine == Engine::Mariadb);
    if url.is_some_and(MyTarget::is_url) || settings_mariadb {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("To {what} a database this version needs PostgreSQL (a MariaDB/MySQL database is backed up, restored, test-restored and scheduled, but not this)"),
            "Give a postgres:// address here",
        ));
    }
    if let Some(url) = url {
        if PgTarget::url_has_password(url) {
            eprintln!("warning: the database address holds a password, which other users of this computer can see (in `ps`, shell history); put it in PGPASSWORD or save it with `schoolvault config set-db --password-stdin` instead");
        }
        return PgTarget::parse(url);
    }
    match &config.database {
        Some(db) => db.target_with(&OsKeychain),
        None => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("No database given to {what}"),
            "Pass --db postgres://USER@HOST:PORT/DATABASE, set SCHOOLVAULT_DB, or set it up once in the SchoolVault app or with `schoolvault config set-db`",
        )),
    }
}
