//! The command line's shape: the global options, the commands and their arguments, as clap
//! parses them. Nothing here runs a command; `main.rs` dispatches on [`Command`].

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use schoolvault_engine::config::Config;
use schoolvault_engine::retention::Retention;

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
pub(crate) struct Cli {
    /// The database to back up or restore into: postgres://USER@HOST:PORT/DATABASE (`backup`
    /// also takes mariadb:// or mysql://, with the password in MYSQL_PWD).
    #[arg(long, env = "SCHOOLVAULT_DB", global = true, hide_env_values = true)]
    pub(crate) db: Option<String>,
    /// The backup folder [default: the platform's data folder]/backups.
    #[arg(long, env = "SCHOOLVAULT_DIR", global = true)]
    pub(crate) dir: Option<PathBuf>,
    /// The catalog file [default: the platform's data folder]/catalog.sqlite.
    #[arg(long, env = "SCHOOLVAULT_CATALOG", global = true)]
    pub(crate) catalog: Option<PathBuf>,
    /// A file holding the key (64 hex characters, mode 0600) instead of the keychain.
    #[arg(long, global = true)]
    pub(crate) key_file: Option<PathBuf>,
    /// Print one JSON document on stdout; progress as JSON lines on stderr.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Stop a backup that makes no progress for this many seconds [default: the settings
    /// file's watchdog_minutes, 10 minutes].
    #[arg(long, env = "SCHOOLVAULT_WATCHDOG", global = true)]
    pub(crate) watchdog: Option<u64>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum KindArg {
    Manual,
    Scheduled,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Into a new or empty database on a server that lacks some of the backup's roles:
        /// create them, without login (give them passwords afterwards).
        #[arg(long, conflicts_with = "owner")]
        create_roles: bool,
        /// Into a new or empty database: every object owned by this existing role (privileges
        /// and policies of roles the server lacks are left out), as pg_restore --no-owner
        /// --role does.
        #[arg(long, value_name = "ROLE")]
        owner: Option<String>,
        /// Into the live database: give up, nothing changed, when other sessions (the ERP in
        /// use) keep the tables locked for more than SECS seconds [default: wait until they
        /// end].
        #[arg(long, value_name = "SECS", conflicts_with = "create_db")]
        lock_timeout: Option<u64>,
        /// Into the live database: end the other sessions on it (pg_terminate_backend; their
        /// open transactions roll back) just before emptying the tables. Needs a superuser or
        /// a member of pg_signal_backend.
        #[arg(long, conflicts_with = "create_db")]
        end_sessions: bool,
    },
    /// Delete a backup's file and its entry.
    Delete {
        /// The backup id.
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Rebuild the list from the files in the backup folder, or (--from) add the backups
    /// found at a destination (a new computer after a disaster).
    Rescan {
        /// The destination to read the list from.
        #[arg(long)]
        from: Option<String>,
    },
    /// Offsite destinations: a USB or NAS folder, an S3-compatible bucket, a WebDAV server.
    Destination {
        #[command(subcommand)]
        action: DestinationAction,
    },
    /// Copy to each destination the backups it lacks, then apply its retention.
    Sync {
        /// Also compare each destination with the list (missing, extra, damaged copies) and
        /// copy again what is missing or damaged.
        #[arg(long)]
        verify: bool,
        /// With --verify: read every copy back in full and check its checksum.
        #[arg(long, requires = "verify")]
        read_back: bool,
        /// Do not remove old copies at the destinations.
        #[arg(long)]
        no_prune: bool,
    },
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
pub(crate) enum DestinationAction {
    /// Add a destination (or change the one with that name), test it, and save it.
    Add {
        /// Its name, e.g. NAS or cloud.
        name: String,
        /// file:///media/usb/schoolvault, s3://BUCKET/PREFIX?endpoint=URL&region=R[&path_style=true],
        /// or webdav+https://HOST:PORT/PATH.
        url: String,
        /// The S3 access key id (or the WebDAV user); without it, AWS_ACCESS_KEY_ID and
        /// AWS_SECRET_ACCESS_KEY are read when copying.
        #[arg(long)]
        access_key_id: Option<String>,
        /// Read the secret (S3 secret key, WebDAV password) from standard input (one line) and
        /// keep it in the OS keychain.
        #[arg(long)]
        secret_stdin: bool,
        /// Its own retention: keep every copy younger than this many days [default: the same
        /// policy as the backup folder].
        #[arg(long)]
        keep_days: Option<u32>,
        /// Its own retention: also keep the newest N.
        #[arg(long)]
        keep_last: Option<u32>,
        /// Its own retention: one per week for N weeks.
        #[arg(long)]
        keep_weekly: Option<u32>,
        /// Its own retention: one per month for N months.
        #[arg(long)]
        keep_monthly: Option<u32>,
        /// Upload at most this many kilobytes per second.
        #[arg(long)]
        bandwidth: Option<u32>,
        /// S3 buckets made with Object Lock: lock every copy for N days (compliance mode), so
        /// nobody holding the credentials (ransomware included) can delete it before then.
        #[arg(long, value_name = "N")]
        lock_days: Option<u32>,
        /// Save it without testing it first.
        #[arg(long)]
        no_test: bool,
    },
    /// List the destinations and how their copies stand.
    List,
    /// Write, read back and delete a small file there.
    Test {
        /// The destination.
        name: String,
    },
    /// Stop copying there (its files stay where they are).
    Remove {
        /// The destination.
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum ConfigAction {
    /// Print where the settings file is and what it holds.
    Show,
    /// Set the school's database (the password, if any, goes to the OS keychain).
    SetDb {
        /// postgres, or mariadb (also for MySQL).
        #[arg(long, default_value = "postgres")]
        engine: String,
        /// Server host.
        #[arg(long)]
        host: String,
        /// Server port [default: 5432, or 3306 for mariadb].
        #[arg(long)]
        port: Option<u16>,
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
pub(crate) struct PolicyArgs {
    /// Keep every backup younger than this many days [default: the settings file's, else 30].
    #[arg(long, global = true)]
    pub(crate) keep_days: Option<u32>,
    /// Also keep the newest N backups.
    #[arg(long, global = true)]
    pub(crate) keep_last: Option<u32>,
    /// Also keep the newest backup of each of the last N weeks.
    #[arg(long, global = true)]
    pub(crate) keep_weekly: Option<u32>,
    /// Also keep the newest backup of each of the last N months.
    #[arg(long, global = true)]
    pub(crate) keep_monthly: Option<u32>,
}

impl PolicyArgs {
    /// The policy: these flags over the settings file's.
    pub(crate) fn policy(self, config: &Config) -> Retention {
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
pub(crate) enum ScheduleAction {
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
pub(crate) enum NotifyAction {
    /// Send a test email with the SMTP settings (SCHOOLVAULT_SMTP_* variables).
    Test,
    /// Send the weekly report now (the last seven days' backups, failures and what is kept).
    Digest,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ExportFormat {
    V1,
}

#[derive(Subcommand)]
pub(crate) enum KeyAction {
    /// Generate a new key and make it current (earlier keys stay, for old backups).
    Generate,
    /// Import a key on stdin: its recovery sheet, or the 64 hex characters (e.g. the old
    /// system's BACKUP_ENCRYPTION_KEY).
    Import,
    /// Rotate the key (the old system's advice: every year): a new key becomes current once
    /// its recovery sheet is written to --out; the earlier keys stay in the keychain, so older
    /// backups still open.
    Rotate {
        /// Where to write the new key's recovery sheet (readable only by you), before the key
        /// is used.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the current key (for the recovery copy). Keep it secret.
    Export {
        /// Write the recovery sheet (fingerprint, key, what to do with it) to this file,
        /// readable only by you, instead of printing the key: the same sheet the app saves.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the current key's fingerprint.
    Fingerprint,
}
