//! `schoolvault`: the command-line program, a thin layer over `schoolvault-engine`.
//!
//! It parses arguments, opens the vault, calls one engine job, and prints the result for people
//! or, with `--json`, as one JSON document on stdout (progress as JSON lines on stderr). Exit
//! code 0 only on success; errors are one line on stderr that says what to do.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use schoolvault_engine::archive::BackupKind;
use schoolvault_engine::config::{self, Config, DatabaseSettings};
use schoolvault_engine::crypto::Key;
use schoolvault_engine::jobs::{self, BackupOptions, RestoreOptions, Vault};
use schoolvault_engine::keychain::{KeyOrigin, Keys, OsKeychain};
use schoolvault_engine::legacy::V1Mode;
use schoolvault_engine::notify::{Security, SmtpSettings};
use schoolvault_engine::progress::{Phase, Progress, ProgressEvent, Silent};
use schoolvault_engine::retention::Retention;
use schoolvault_engine::schedule::Schedule;
use schoolvault_engine::source::postgres::PgTarget;
use schoolvault_engine::{Error, ErrorKind, Result};

/// Print a line on stdout; a closed pipe (`| head`) is not an error worth a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "schoolvault",
    version,
    about = "Encrypted, consistent backups of the school's database",
    long_about = "Encrypted, consistent backups of the school's database.\n\n\
        The database address comes from --db or SCHOOLVAULT_DB; put the password in PGPASSWORD \
        or the keychain rather than in the address. The encryption key comes from --key-file, \
        BACKUP_ENCRYPTION_KEY, or the OS keychain (generated on the first backup)."
)]
struct Cli {
    /// The database to back up or restore into: postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, env = "SCHOOLVAULT_DB", global = true, hide_env_values = true)]
    db: Option<String>,
    /// The backup folder [default: the platform's data folder]/backups.
    #[arg(long, env = "SCHOOLVAULT_DIR", global = true)]
    dir: Option<PathBuf>,
    /// The catalog file [default: the platform's data folder]/catalog.sqlite.
    #[arg(long, env = "SCHOOLVAULT_CATALOG", global = true)]
    catalog: Option<PathBuf>,
    /// A file holding the key (64 hex characters, mode 0600) instead of the keychain.
    #[arg(long, global = true)]
    key_file: Option<PathBuf>,
    /// Print one JSON document on stdout; progress as JSON lines on stderr.
    #[arg(long, global = true)]
    json: bool,
    /// Stop a backup that makes no progress for this many seconds [default: the settings
    /// file's watchdog_minutes, 10 minutes].
    #[arg(long, env = "SCHOOLVAULT_WATCHDOG", global = true)]
    watchdog: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Manual,
    Scheduled,
}

#[derive(Subcommand)]
enum Command {
    /// Back up the database into a new encrypted file.
    Backup {
        /// Why this backup is made.
        #[arg(long = "type", value_enum, default_value = "manual")]
        kind: KindArg,
        /// Parallel export connections.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
    },
    /// List the backups, newest first.
    List,
    /// Show a backup's header and contents.
    Inspect {
        /// A backup id or a file.
        backup: String,
    },
    /// Read a backup completely and check every table's rows and checksum.
    Verify {
        /// A backup id or a file.
        backup: String,
        /// Also restore it into a scratch database on the --db server, compare every table,
        /// and drop the scratch database.
        #[arg(long)]
        test_restore: bool,
        /// The scratch database to create and drop: a name on the --db server, or a
        /// postgres:// URL [default: schoolvault_verify_<id>].
        #[arg(long, requires = "test_restore")]
        scratch_db: Option<String>,
    },
    /// Replace the database's data with a backup's, in one transaction.
    Restore {
        /// A backup id or a file.
        backup: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Restore into this database instead of --db.
        #[arg(long)]
        target_db: Option<String>,
        /// Skip the safety backup of the target taken before restoring.
        #[arg(long)]
        no_safety_backup: bool,
        /// Create this database on the --db server and restore into it (schema and data).
        #[arg(long, conflicts_with = "target_db")]
        create_db: Option<String>,
        /// Old-system (.enc) files: also remove the rows of their tables that the file does not
        /// hold (default: merge, as the old system did).
        #[arg(long)]
        replace: bool,
        /// Old-system (.enc) files that open only with the old system's public development
        /// key: restore anyway. Anyone could have written such a file; use this only for a
        /// file whose origin you know.
        #[arg(long)]
        trust_dev_key: bool,
    },
    /// Delete a backup's file and its entry.
    Delete {
        /// The backup id.
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Rebuild the list from the files in the backup folder.
    Rescan,
    /// Manage the encryption key.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Write the database as an old-system backup file (v1), to go back to the old system.
    Export {
        /// The format: only `v1` (the old system's .enc files).
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The file to write [default: a new .enc file in the backup folder].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Remove the backups the retention policy no longer keeps.
    Prune {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// The backup schedule: see the next runs, run a due slot, or run it in the foreground.
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
        /// The cron expression (minute hour day month weekday), in local time.
        /// [default: the settings file's, else 0 2 * * *]
        #[arg(long, env = "SCHOOLVAULT_CRON", global = true)]
        cron: Option<String>,
        /// The time zone (IANA name) [default: this computer's].
        #[arg(long, env = "SCHOOLVAULT_TZ", global = true)]
        tz: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// The history of runs (backups, restores, verifications, emails), newest first.
    History {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Email: send a test message to the administrators.
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Write a backup's decrypted .tar.gz to stdout.
    Decrypt {
        /// A backup id or a file.
        backup: String,
    },
    /// The settings file shared with the desktop app.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print where the settings file is and what it holds.
    Show,
    /// Set the school's database (the password, if any, goes to the OS keychain).
    SetDb {
        /// Server host.
        #[arg(long)]
        host: String,
        /// Server port.
        #[arg(long, default_value_t = 5432)]
        port: u16,
        /// Database name.
        #[arg(long)]
        name: String,
        /// User name.
        #[arg(long)]
        user: String,
        /// TLS: disable, prefer, require (encrypted, server not checked), verify-ca or
        /// verify-full (the server's certificate checked; verify-full also checks its name).
        #[arg(long, default_value = "prefer")]
        tls: String,
        /// The CA certificate (PEM) that verify-ca / verify-full trust [default: public roots].
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Read the password from standard input (one line) and keep it in the keychain.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(clap::Args, Clone, Copy)]
struct PolicyArgs {
    /// Keep every backup younger than this many days [default: the settings file's, else 30].
    #[arg(long, global = true)]
    keep_days: Option<u32>,
    /// Also keep the newest N backups.
    #[arg(long, global = true)]
    keep_last: Option<u32>,
    /// Also keep the newest backup of each of the last N weeks.
    #[arg(long, global = true)]
    keep_weekly: Option<u32>,
    /// Also keep the newest backup of each of the last N months.
    #[arg(long, global = true)]
    keep_monthly: Option<u32>,
}

impl PolicyArgs {
    /// The policy: these flags over the settings file's.
    fn policy(self, config: &Config) -> Retention {
        let base = config.retention.policy();
        Retention {
            keep_days: self.keep_days.unwrap_or(base.keep_days),
            keep_last: self.keep_last.or(base.keep_last),
            keep_weekly: self.keep_weekly.or(base.keep_weekly),
            keep_monthly: self.keep_monthly.or(base.keep_monthly),
        }
    }
}

#[derive(Subcommand, Clone, Copy)]
enum ScheduleAction {
    /// Show the next runs.
    Next {
        /// How many.
        #[arg(short, long, default_value_t = 5)]
        count: usize,
    },
    /// Run a due or missed slot once and exit (for systemd timers, Task Scheduler, cron).
    RunDue,
    /// Stay in the foreground and run every slot (for servers).
    Run,
}

#[derive(Subcommand, Clone, Copy)]
enum NotifyAction {
    /// Send a test email with the SMTP settings (SCHOOLVAULT_SMTP_* variables).
    Test,
    /// Send the weekly report now (the last seven days' backups, failures and what is kept).
    Digest,
}

/// The SMTP settings: the environment's (SCHOOLVAULT_SMTP_HOST set), else the settings
/// file's (password from the keychain); None when email is off.
fn smtp_settings(config: &Config) -> Result<Option<SmtpSettings>> {
    let Ok(host) = std::env::var("SCHOOLVAULT_SMTP_HOST") else {
        return config.email.smtp(&OsKeychain);
    };
    let security = match std::env::var("SCHOOLVAULT_SMTP_SECURITY").as_deref() {
        Ok("tls") => Security::Tls,
        Ok("plain") => Security::Plain,
        Ok("starttls") | Err(_) => Security::StartTls,
        Ok(other) => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("SCHOOLVAULT_SMTP_SECURITY is {other:?}"),
                "Use starttls (port 587), tls (port 465) or plain (a local relay only)",
            ))
        }
    };
    let default_port = match security {
        Security::StartTls => 587,
        Security::Tls => 465,
        Security::Plain => 25,
    };
    let port = match std::env::var("SCHOOLVAULT_SMTP_PORT") {
        Ok(p) => p.parse().map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("SCHOOLVAULT_SMTP_PORT is {p:?}, not a port number"),
                "Use 587, 465 or 25",
            )
        })?,
        Err(_) => default_port,
    };
    let to: Vec<String> = std::env::var("SCHOOLVAULT_NOTIFY_TO")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    Ok(Some(SmtpSettings {
        host,
        port,
        security,
        user: std::env::var("SCHOOLVAULT_SMTP_USER").ok(),
        password: std::env::var("SCHOOLVAULT_SMTP_PASSWORD")
            .ok()
            .map(zeroize::Zeroizing::new),
        from: std::env::var("SCHOOLVAULT_NOTIFY_FROM")
            .unwrap_or_else(|_| "schoolvault@localhost".to_string()),
        to,
    }))
}

/// After a failed backup: email the administrators if email is set up. A failure to send is
/// reported as a warning and recorded; it never replaces the backup's error.
/// The query for the school's administrators, when their addresses are to be read from the
/// school database (SCHOOLVAULT_NOTIFY_DB_ADMINS=1; SCHOOLVAULT_NOTIFY_QUERY overrides the ERP's).
fn admins_query(config: &Config) -> Option<String> {
    match std::env::var("SCHOOLVAULT_NOTIFY_DB_ADMINS").as_deref() {
        Ok("1" | "true" | "yes") => Some(
            std::env::var("SCHOOLVAULT_NOTIFY_QUERY")
                .unwrap_or_else(|_| schoolvault_engine::notify::DEFAULT_ADMIN_QUERY.to_string()),
        ),
        Ok(_) => None,
        Err(_) => config.email.admins_query(),
    }
}

/// The recipients, with the school's administrators as last read when they are emailed too.
fn school_admins_too(vault: &Vault, config: &Config, settings: &SmtpSettings) -> SmtpSettings {
    if admins_query(config).is_some() {
        jobs::with_known_admins(vault, settings)
    } else {
        settings.clone()
    }
}

/// Before a scheduled run: the stale-backup alert, once, if no backup succeeded for the
/// configured time (email on). A failure to send is a warning, recorded in the history.
async fn stale_alert(vault: &Vault, config: &Config, target: &PgTarget) {
    if let Ok(Some(settings)) = smtp_settings(config) {
        let settings = school_admins_too(vault, config, &settings);
        let max_age = chrono::Duration::hours(i64::from(config.email.stale_hours.max(1)));
        if let Err(e) = jobs::stale_alert(
            vault,
            &settings,
            &target.describe(),
            max_age,
            chrono::Utc::now(),
        )
        .await
        {
            eprintln!("warning: {e}");
        }
    }
}

/// Before a scheduled run: the weekly report, when it is on and a Monday 07:00 has passed
/// since the last one. A failure to send is a warning, recorded in the history.
async fn weekly_digest(vault: &Vault, config: &Config, target: &PgTarget) {
    if !config.email.weekly_digest {
        return;
    }
    if let Ok(Some(settings)) = smtp_settings(config) {
        let settings = school_admins_too(vault, config, &settings);
        if let Err(e) = jobs::weekly_digest(
            vault,
            &settings,
            &target.describe(),
            config.schedule.timezone.as_deref(),
            chrono::Utc::now(),
            false,
        )
        .await
        {
            eprintln!("warning: {e}");
        }
    }
}

async fn notify_failure(
    vault: &Vault,
    config: &Config,
    kind: BackupKind,
    target: &PgTarget,
    error: &Error,
) {
    // Another run holds the lock: that run reports its own outcome.
    if error.kind() == ErrorKind::Busy {
        return;
    }
    match smtp_settings(config) {
        Ok(Some(settings)) => {
            let query = admins_query(config);
            if let Err(e) =
                jobs::notify_failure(vault, &settings, query.as_deref(), kind, target, error).await
            {
                eprintln!("warning: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("warning: {e}"),
    }
}

fn email_not_set_up() -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "Email is not set up",
        "Turn it on in SchoolVault's settings (Email), or set SCHOOLVAULT_SMTP_HOST (and _PORT, _SECURITY, _USER, _PASSWORD), SCHOOLVAULT_NOTIFY_FROM and SCHOOLVAULT_NOTIFY_TO",
    )
}

/// One look at the schedule (`schedule run-due`, and each wake of `schedule run`): the
/// stale-backup alert and the weekly report first, then the due or missed slot under the
/// watchdog, and a failure email if it fails.
async fn run_due_once(
    vault: &Vault,
    settings: &Config,
    target: &PgTarget,
    schedule: &Schedule,
    retention: &Retention,
    watchdog: Duration,
    progress: &Arc<dyn Progress>,
) -> Result<jobs::DueOutcome> {
    stale_alert(vault, settings, target).await;
    weekly_digest(vault, settings, target).await;
    let done = jobs::with_watchdog(
        vault,
        "backup",
        Some(BackupKind::Scheduled),
        watchdog,
        progress.clone(),
        |p| {
            jobs::run_due(
                vault,
                target,
                schedule,
                retention,
                chrono::Utc::now(),
                settings.schedule.catch_up,
                p,
            )
        },
    )
    .await;
    if let Err(e) = &done {
        notify_failure(vault, settings, BackupKind::Scheduled, target, e).await;
    }
    if matches!(&done, Ok(d) if d.backup.is_some()) && settings.schedule.test_restore {
        routine_test_restore(vault, settings, target).await;
    }
    done
}

/// After a scheduled backup: the weekly test restore of the newest backup, when due. A failure
/// is said on stderr and emailed like a failed backup; the backup itself succeeded.
async fn routine_test_restore(vault: &Vault, config: &Config, target: &PgTarget) {
    let Err(e) = jobs::routine_test_restore(vault, target, chrono::Utc::now()).await else {
        return;
    };
    eprintln!("warning: the weekly test restore failed: {e}");
    match smtp_settings(config) {
        Ok(Some(settings)) => {
            let query = admins_query(config);
            if let Err(e) =
                jobs::notify_test_restore_failure(vault, &settings, query.as_deref(), target, &e)
                    .await
            {
                eprintln!("warning: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("warning: {e}"),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    V1,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Generate a new key and make it current (earlier keys stay, for old backups).
    Generate,
    /// Import a key: 64 hex characters on stdin (e.g. the old system's BACKUP_ENCRYPTION_KEY).
    Import,
    /// Print the current key (for the recovery copy). Keep it secret.
    Export,
    /// Print the current key's fingerprint.
    Fingerprint,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Few blocking threads: each has its own malloc arena, and parts are compressed on them.
        .max_blocking_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                let doc =
                    serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}});
                out!("{doc}");
            }
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The database: `--db` / `SCHOOLVAULT_DB`, else the settings file's (password from the keychain).
fn target(url: Option<&str>, config: &Config, what: &str) -> Result<PgTarget> {
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

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("encoding output: {e}"), ""))?;
    out!("{text}");
    Ok(())
}

fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// Ask on a terminal; refuse elsewhere.
fn confirm(question: &str, expected: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "Refusing to go on without confirmation",
            "Add --yes to confirm when not running on a terminal",
        ));
    }
    eprint!("{question} Type {expected:?} to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::io("reading the answer", &e))?;
    if answer.trim() == expected {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Cancelled,
            "Not confirmed",
            "Nothing was changed",
        ))
    }
}

async fn run(cli: Cli) -> Result<()> {
    let keys = Keys::new(cli.key_file.as_deref(), Box::new(OsKeychain))?;
    if let Command::Key { action } = &cli.command {
        return key_command(action, &keys, cli.json);
    }
    let config_path = config::config_path()?;
    let settings = Config::load(&config_path)?;
    if let Command::Config { action } = &cli.command {
        return config_command(action, &config_path, settings, cli.json);
    }
    let dir = match cli.dir.clone() {
        Some(d) => d,
        None => settings.backup_dir()?,
    };
    let catalog = match cli.catalog.clone() {
        Some(c) => c,
        None => config::default_catalog()?,
    };
    let vault = Vault::open(dir, &catalog, keys).await?;
    let progress = progress_for(cli.json);
    let json = cli.json;
    let watchdog = cli.watchdog.map_or_else(
        || settings.schedule.watchdog(),
        |s| Duration::from_secs(s.max(1)),
    );
    match cli.command {
        Command::Backup { kind, jobs } => {
            let target = target(cli.db.as_deref(), &settings, "back up")?;
            let opts = BackupOptions {
                kind: match kind {
                    KindArg::Manual => BackupKind::Manual,
                    KindArg::Scheduled => BackupKind::Scheduled,
                },
                jobs,
                ..BackupOptions::default()
            };
            let _lock = vault.lock()?;
            let out = jobs::with_watchdog(
                &vault,
                "backup",
                Some(opts.kind),
                watchdog,
                progress.clone(),
                |p| jobs::backup(&vault, &target, &opts, p),
            )
            .await;
            if let Err(e) = &out {
                notify_failure(&vault, &settings, opts.kind, &target, e).await;
            } else if let Some(query) = admins_query(&settings) {
                // Keep the list of administrators fresh for a day the database is down
                // (briefly: a locked table must not hold up the backup's end).
                let _ = tokio::time::timeout(
                    Duration::from_secs(20),
                    jobs::refresh_admins(&vault, &target, &query),
                )
                .await;
            }
            let out = out?;
            let b = &out.backup;
            if json {
                print_json(&serde_json::json!({
                    "id": b.id, "file": b.path, "size": b.size, "sha256": b.sha256,
                    "key_fingerprint": b.key_fingerprint, "tables": b.tables, "rows": b.rows,
                    "duration_ms": b.duration_ms, "key_generated": out.key_generated,
                }))?;
            } else {
                out!(
                    "Backup {} of {} written: {} tables, {} rows, {} in {:.1} s",
                    b.id,
                    b.database,
                    b.tables,
                    b.rows,
                    human_size(b.size),
                    b.duration_ms as f64 / 1000.0
                );
                out!("File: {}", b.path.display());
            }
            for u in &out.unsupported {
                eprintln!("warning: not in the backup's schema (restore it by hand): {u}");
            }
            if out.key_generated {
                eprintln!(
                    "A new encryption key was generated and stored in the OS keychain (fingerprint {}).\n\
                     Save a recovery copy NOW with `schoolvault key export` and keep it somewhere safe:\n\
                     without it, these backups cannot be opened if this computer is lost.",
                    b.key_fingerprint
                );
            }
        }
        Command::List => {
            let list = vault.catalog.list().await?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                out!("No backups yet. Make one with `schoolvault backup`.");
            } else {
                out!(
                    "{:<22} {:<20} {:<9} {:>10} {:>7} {:>10} {:>8}  {}",
                    "ID",
                    "CREATED (UTC)",
                    "TYPE",
                    "SIZE",
                    "TABLES",
                    "ROWS",
                    "TIME",
                    "VERIFIED"
                );
                for b in list {
                    let how = match &b.verify_message {
                        Some(m) if m.starts_with("test restore") => " (test restore)",
                        _ => "",
                    };
                    let verified = match (b.verify_ok, b.verified_at) {
                        (Some(true), Some(t)) => format!("ok {}{how}", t.format("%Y-%m-%d %H:%M")),
                        (Some(false), _) => "FAILED".to_string(),
                        (Some(true), None) => "ok".to_string(),
                        _ => "-".to_string(),
                    };
                    let status = if b.status == "complete" {
                        String::new()
                    } else {
                        format!("  [{}]", b.status)
                    };
                    out!(
                        "{:<22} {:<20} {:<9} {:>10} {:>7} {:>10} {:>7.1}s  {}{}",
                        b.id,
                        b.created_at.format("%Y-%m-%d %H:%M:%S"),
                        b.kind.as_str(),
                        human_size(b.size),
                        b.tables,
                        b.rows,
                        b.duration_ms as f64 / 1000.0,
                        verified,
                        status
                    );
                }
            }
        }
        Command::Inspect { backup } => {
            let report = jobs::inspect(&vault, &backup).await?;
            if json {
                print_json(&report)?;
            } else if let Some(v1) = &report.v1 {
                out!("File:        {}", report.path.display());
                out!(
                    "Format:      old system's backup (v1), version {}",
                    v1.version
                );
                out!("Timestamp:   {}", v1.timestamp);
                out!("Tables ({}):", v1.tables.len());
                for t in &v1.tables {
                    out!(
                        "  {:<20} -> {:<20} {:>8} records",
                        t.key,
                        t.table.as_deref().unwrap_or("(no such table)"),
                        t.records
                    );
                }
                if v1.dev_key {
                    eprintln!("warning: {}", schoolvault_engine::legacy::DEV_KEY_WARNING);
                }
            } else if let Some(h) = &report.header {
                out!("File:        {}", report.path.display());
                out!("Backup id:   {}", h.backup_id);
                out!("Type:        {}", h.kind.as_str());
                out!("Created:     {}", h.created_at.to_rfc3339());
                out!(
                    "Source:      {} {} database {}",
                    h.source.engine,
                    h.source.server_version,
                    h.source.database
                );
                out!("Key:         {}", h.key_fingerprint);
                out!("Written by:  SchoolVault {}", h.app_version);
                match (&report.manifest, &report.manifest_error) {
                    (Some(m), _) => {
                        out!("Snapshot at: {}", m.snapshot_at.to_rfc3339());
                        out!("Tables ({}):", m.tables.len());
                        for t in &m.tables {
                            out!("  {}", t.display_name());
                        }
                        out!("Sequences:   {}", m.sequences.len());
                    }
                    (None, Some(e)) => out!("Contents:    not readable: {e}"),
                    (None, None) => {}
                }
            }
        }
        Command::Verify {
            backup,
            test_restore,
            scratch_db,
        } => {
            let report = if test_restore {
                // --scratch-db takes a database name on the --db server, or a whole URL.
                let (server, name) = match scratch_db {
                    Some(url) if url.starts_with("postgres") => {
                        let t = PgTarget::parse(&url)?;
                        let name = t.database();
                        // Connect through the server's maintenance database: the scratch one
                        // does not exist yet.
                        (t.with_database("postgres"), Some(name))
                    }
                    other => (
                        target(cli.db.as_deref(), &settings, "test-restore on")?,
                        other,
                    ),
                };
                jobs::test_restore(&vault, &backup, &server, name.as_deref(), progress.clone())
                    .await
            } else {
                jobs::verify(&vault, &backup, progress.clone()).await
            };
            let report = report?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                print_json(&report)?;
            } else if report.format == 1 {
                out!(
                    "Old-system backup {} opens and reads: {} tables, {} records.",
                    report.path.display(),
                    report.tables,
                    report.rows
                );
            } else {
                out!(
                    "Backup {} is good: {} tables, {} rows, {} of data checked.",
                    report.backup_id,
                    report.tables,
                    report.rows,
                    human_size(report.bytes)
                );
            }
        }
        Command::Restore {
            backup,
            yes,
            target_db,
            no_safety_backup,
            replace,
            create_db,
            trust_dev_key,
        } => {
            let url = target_db.or(cli.db);
            let target = target(url.as_deref(), &settings, "restore into")?;
            if !yes && create_db.is_none() {
                confirm(
                    &format!(
                        "This replaces ALL data in the backup's tables of {} with the backup's.",
                        target.describe()
                    ),
                    &target.database(),
                )?;
            }
            let opts = RestoreOptions {
                safety_backup: !no_safety_backup,
                v1_mode: if replace {
                    V1Mode::Replace
                } else {
                    V1Mode::Merge
                },
                create_db,
                trust_dev_key,
                ..RestoreOptions::default()
            };
            let _lock = vault.lock()?;
            let out = jobs::restore(&vault, &backup, &target, &opts, progress.clone()).await;
            let out = out?;
            for w in &out.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                print_json(&out)?;
            } else {
                for t in out.v1_tables.iter().flatten() {
                    out!(
                        "  {:<20} {:>7} inserted {:>7} updated {:>7} removed",
                        t.table,
                        t.inserted,
                        t.updated,
                        t.deleted
                    );
                }
                out!(
                    "Restored backup {} into {}: {} tables, {} rows in {:.1} s.",
                    out.backup_id,
                    out.target,
                    out.tables,
                    out.rows,
                    out.duration_ms as f64 / 1000.0
                );
                if let Some(s) = &out.safety_backup {
                    out!(
                        "The data as it was before is in safety backup {} (undo with `schoolvault restore {} --yes`).",
                        s.id, s.id
                    );
                }
            }
        }
        Command::Delete { id, yes } => {
            if !yes {
                confirm(&format!("This deletes backup {id} for good."), &id)?;
            }
            let rec = jobs::delete(&vault, &id).await?;
            if json {
                print_json(&rec)?;
            } else {
                out!("Deleted backup {} ({}).", rec.id, rec.path.display());
            }
        }
        Command::Rescan => {
            let entries = jobs::rescan(&vault, progress.clone()).await;
            let entries = entries?;
            if json {
                print_json(&entries)?;
            } else {
                for e in &entries {
                    match &e.message {
                        Some(m) => out!("{}: {} ({m})", e.path.display(), e.status),
                        None => out!("{}: {}", e.path.display(), e.status),
                    }
                }
                out!("{} files found in {}.", entries.len(), vault.dir.display());
            }
        }
        Command::Decrypt { backup } => {
            if std::io::stdout().is_terminal() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "Refusing to write binary data to the terminal",
                    "Redirect it: schoolvault decrypt FILE > backup.tar.gz (or | tar tz)",
                ));
            }
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match jobs::decrypt(&vault, &backup, &mut lock).await {
                // The reader stopped early (`| tar t | head`): not an error of ours.
                Err(e) if e.message().contains("Broken pipe") => {}
                other => {
                    other?;
                }
            }
        }
        Command::Export {
            format: ExportFormat::V1,
            out,
        } => {
            let target = target(cli.db.as_deref(), &settings, "export")?;
            // It writes a .partial file, which a backup starting meanwhile would sweep.
            let _lock = vault.lock()?;
            let done = jobs::export_v1(&vault, &target, out.as_deref()).await?;
            if json {
                print_json(&done)?;
            } else {
                out!(
                    "Wrote {} ({} records, {}) for the old system.",
                    done.path.display(),
                    done.records,
                    human_size(done.size)
                );
            }
            eprintln!(
                "It is encrypted with key {}: give the old system that key as BACKUP_ENCRYPTION_KEY (`schoolvault key export` prints it).",
                done.key_fingerprint
            );
        }
        Command::Prune { dry_run, policy } => {
            let _lock = vault.lock()?;
            let pruned = jobs::prune(
                &vault,
                &policy.policy(&settings),
                dry_run,
                chrono::Utc::now(),
            )
            .await?;
            if json {
                print_json(&pruned)?;
            } else if pruned.is_empty() {
                out!("Nothing to prune.");
            } else {
                for p in &pruned {
                    out!(
                        "{} {} ({}, {})",
                        if dry_run { "would remove" } else { "removed" },
                        p.id,
                        p.created_at.format("%Y-%m-%d %H:%M"),
                        p.reason
                    );
                }
            }
        }
        Command::Schedule {
            action,
            cron,
            tz,
            policy,
        } => {
            let cron = cron.unwrap_or_else(|| settings.schedule.cron.clone());
            let tz = tz.or_else(|| settings.schedule.timezone.clone());
            let schedule = Schedule::parse(&cron, tz.as_deref())?;
            // The weekly report follows the schedule's time zone too.
            let mut settings = settings.clone();
            settings.schedule.timezone.clone_from(&tz);
            match action {
                ScheduleAction::Next { count } => {
                    let next = schedule.upcoming(chrono::Utc::now(), count)?;
                    if json {
                        print_json(&next)?;
                    } else {
                        for t in next {
                            out!(
                                "{}",
                                t.with_timezone(&chrono::Local)
                                    .format("%a %Y-%m-%d %H:%M %Z")
                            );
                        }
                    }
                }
                ScheduleAction::RunDue => {
                    let target = target(cli.db.as_deref(), &settings, "back up")?;
                    let retention = policy.policy(&settings);
                    let done = run_due_once(
                        &vault, &settings, &target, &schedule, &retention, watchdog, &progress,
                    )
                    .await?;
                    if json {
                        print_json(&done)?;
                    } else {
                        match (&done.due, &done.backup) {
                            (Some(d), Some(b)) => out!(
                                "Backup {} made for the slot of {}{}; {} old backup(s) pruned.",
                                b.id,
                                d.slot
                                    .with_timezone(&chrono::Local)
                                    .format("%Y-%m-%d %H:%M"),
                                if d.catch_up { " (catch-up)" } else { "" },
                                done.pruned.len()
                            ),
                            _ => out!(
                                "Nothing due; next run {}.",
                                schedule
                                    .next_after(chrono::Utc::now())?
                                    .with_timezone(&chrono::Local)
                                    .format("%Y-%m-%d %H:%M")
                            ),
                        }
                    }
                }
                ScheduleAction::Run => {
                    let target = target(cli.db.as_deref(), &settings, "back up")?;
                    let retention = policy.policy(&settings);
                    let mut announced = None;
                    loop {
                        // Every minute: a due slot, a missed one (also after the machine slept),
                        // the retry of a failed one, the stale alert, the weekly report. Most
                        // looks find nothing to do.
                        match run_due_once(
                            &vault, &settings, &target, &schedule, &retention, watchdog, &progress,
                        )
                        .await
                        {
                            Ok(d) => {
                                if let Some(b) = d.backup {
                                    eprintln!("backup {} made", b.id);
                                }
                            }
                            // Another run holds the lock: it reports its own outcome.
                            Err(e) if e.kind() == ErrorKind::Busy => {}
                            Err(e) => eprintln!("error: {e}"),
                        }
                        let next = schedule.next_after(chrono::Utc::now())?;
                        if announced != Some(next) {
                            announced = Some(next);
                            eprintln!(
                                "next run {}",
                                next.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M")
                            );
                        }
                        let left = (next - chrono::Utc::now()).num_seconds().clamp(1, 60) as u64;
                        tokio::time::sleep(Duration::from_secs(left)).await;
                    }
                }
            }
        }
        Command::History { limit } => {
            let runs = vault.catalog.runs(limit).await?;
            if json {
                print_json(&runs)?;
            } else {
                for r in runs {
                    out!(
                        "{}  {:<12} {:<9} {:<8} {}",
                        r.started_at.format("%Y-%m-%d %H:%M:%S"),
                        r.operation,
                        r.kind.as_deref().unwrap_or("-"),
                        r.outcome,
                        r.message.as_deref().unwrap_or("")
                    );
                }
            }
        }
        Command::Notify {
            action: NotifyAction::Test,
        } => {
            let settings = smtp_settings(&settings)?.ok_or_else(email_not_set_up)?;
            let n = schoolvault_engine::notify::send(
                &settings,
                "SchoolVault test email",
                "This is a test email from SchoolVault: failure notices will reach you.",
                "<p>This is a test email from <b>SchoolVault</b>: failure notices will reach you.</p>",
            )
            .await?;
            if json {
                print_json(&serde_json::json!({"sent": n}))?;
            } else {
                out!("Test email sent to {n} address(es).");
            }
        }
        Command::Notify {
            action: NotifyAction::Digest,
        } => {
            let smtp = smtp_settings(&settings)?.ok_or_else(email_not_set_up)?;
            let smtp = school_admins_too(&vault, &settings, &smtp);
            // The database only names the report; it need not be reachable.
            let database = target(cli.db.as_deref(), &settings, "report on")
                .map_or_else(|_| "the school database".to_string(), |t| t.describe());
            let tz = std::env::var("SCHOOLVAULT_TZ")
                .ok()
                .filter(|z| !z.is_empty())
                .or_else(|| settings.schedule.timezone.clone());
            let n = jobs::weekly_digest(
                &vault,
                &smtp,
                &database,
                tz.as_deref(),
                chrono::Utc::now(),
                true,
            )
            .await?
            .unwrap_or(0);
            if json {
                print_json(&serde_json::json!({"sent": n}))?;
            } else {
                out!("Weekly report sent to {n} address(es).");
            }
        }
        Command::Key { .. } | Command::Config { .. } => {}
    }
    Ok(())
}

fn config_command(
    action: &ConfigAction,
    path: &std::path::Path,
    mut settings: Config,
    json: bool,
) -> Result<()> {
    match action {
        ConfigAction::Show => {
            if json {
                return print_json(&serde_json::json!({"path": path, "settings": settings}));
            }
            out!("# {}", path.display());
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|_| "# (not written yet: defaults)".to_string());
            out!("{}", text.trim_end());
        }
        ConfigAction::SetDb {
            host,
            port,
            name,
            user,
            tls,
            ca_file,
            password_stdin,
        } => {
            let tls = schoolvault_engine::source::postgres::Tls::parse(tls)?;
            let ca_file = match ca_file {
                Some(path) if tls.verifies() => Some(std::path::absolute(path).map_err(|e| {
                    Error::io(format_args!("reading the CA file {}", path.display()), &e)
                })?),
                Some(_) => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "--ca-file is only used with --tls verify-ca or verify-full",
                        "Add --tls verify-full (or verify-ca), or leave out --ca-file",
                    ))
                }
                None => None,
            };
            if let Some(ca) = &ca_file {
                std::fs::metadata(ca).map_err(|e| {
                    Error::io(format_args!("reading the CA file {}", ca.display()), &e)
                })?;
            }
            if *password_stdin {
                let mut line = zeroize::Zeroizing::new(String::new());
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| Error::io("reading the password from standard input", &e))?;
                let password = line.trim_end_matches(['\r', '\n']);
                schoolvault_engine::keychain::Keychain::set(
                    &OsKeychain,
                    config::DB_PASSWORD_ACCOUNT,
                    password,
                )?;
            }
            settings.database = Some(DatabaseSettings {
                host: host.clone(),
                port: *port,
                name: name.clone(),
                user: user.clone(),
                tls,
                ca_file,
                password_saved: *password_stdin,
            });
            settings.save(path)?;
            if json {
                return print_json(&serde_json::json!({"path": path, "settings": settings}));
            }
            out!("Saved to {}", path.display());
        }
    }
    Ok(())
}

fn key_command(action: &KeyAction, keys: &Keys, json: bool) -> Result<()> {
    let show = |key: &Key, origin: &KeyOrigin, what: &str| -> Result<()> {
        if json {
            print_json(
                &serde_json::json!({"fingerprint": key.fingerprint().to_string(), "origin": origin.to_string()}),
            )
        } else {
            out!("{what} {} (from {origin})", key.fingerprint());
            Ok(())
        }
    };
    match action {
        KeyAction::Generate => {
            let key = Key::generate();
            keys.store(&key)?;
            show(&key, &KeyOrigin::Keychain, "Generated and stored key")?;
            eprintln!("Save a recovery copy now with `schoolvault key export`: a backup whose key is lost cannot be opened.");
        }
        KeyAction::Import => {
            let mut text = String::new();
            std::io::stdin()
                .take(4096)
                .read_to_string(&mut text)
                .map_err(|e| Error::io("reading the key from stdin", &e))?;
            let text = zeroize::Zeroizing::new(text);
            let key = Key::from_hex(&text)?;
            keys.store(&key)?;
            show(&key, &KeyOrigin::Keychain, "Imported key")?;
        }
        KeyAction::Export => {
            let (key, origin) = keys.current()?;
            if json {
                print_json(
                    &serde_json::json!({"fingerprint": key.fingerprint().to_string(), "key": key.to_hex().as_str()}),
                )?;
            } else {
                out!("{}", key.to_hex().as_str());
                eprintln!(
                    "This is the encryption key {} (from {origin}). Anyone who has it can read your backups: store it offline, safely.",
                    key.fingerprint()
                );
            }
        }
        KeyAction::Fingerprint => {
            let (key, origin) = keys.current()?;
            show(&key, &origin, "Key")?;
        }
    }
    Ok(())
}

/// Progress for the terminal (a bar), as JSON lines (--json), or nothing (not a terminal).
fn progress_for(json: bool) -> Arc<dyn Progress> {
    if json {
        Arc::new(JsonLines(Mutex::new(
            Instant::now() - Duration::from_secs(1),
        )))
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bar::new())
    } else {
        Arc::new(Silent)
    }
}

struct JsonLines(Mutex<Instant>);

impl Progress for JsonLines {
    fn report(&self, event: &ProgressEvent) {
        // At most ten lines a second, but every phase change.
        if let Ok(mut last) = self.0.lock() {
            let is_phase = event.table.is_none();
            if !is_phase && last.elapsed() < Duration::from_millis(100) {
                return;
            }
            *last = Instant::now();
        }
        if let Ok(line) = serde_json::to_string(event) {
            eprintln!("{line}");
        }
    }
}

struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix:<10} [{bar:30}] {bytes}/{total_bytes} {msg} (ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar { bar }
    }
}

impl Progress for Bar {
    fn report(&self, e: &ProgressEvent) {
        let phase = match e.phase {
            Phase::Connect => "connect",
            Phase::Snapshot => "snapshot",
            Phase::Export => "export",
            Phase::Finish => "finish",
            Phase::SafetyBackup => "safety",
            Phase::Restore => "restore",
            Phase::Verify => "verify",
            Phase::Commit => "commit",
        };
        self.bar.set_prefix(phase);
        if let Some(total) = e.total_bytes {
            self.bar.set_length(total.max(e.bytes));
        }
        if e.bytes > 0 {
            self.bar.set_position(e.bytes);
        }
        if let Some(t) = &e.table {
            let msg = if e.tables_total > 0 {
                format!(
                    "{t} ({}/{} tables, {} rows)",
                    e.tables_done, e.tables_total, e.rows
                )
            } else {
                t.clone()
            };
            self.bar.set_message(msg);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
