//! What the CLI and the app call: one file per operation. A [`Vault`] is the local state a job
//! works with (backup folder, catalog, keys). Each job takes its inputs, reports to a
//! [`Progress`](crate::progress::Progress), records its outcome in the run history, and returns
//! a result or one [`Error`] that says what to do.
//!
//! | file | owns |
//! |---|---|
//! | `backup` | the backup pipeline: the run (snapshot, file, end record) in `mod`, the tables' rows into parts (workers, compression, the shared encrypting sink) in `tables` |
//! | `attended` | a backup a person starts: watchdog, failure email, administrators |
//! | `reading` | opening and walking an archive, tallies against `end.json`, v1 files |
//! | `verify` | verify, inspect, decrypt |
//! | `test_restore` | test restores, the weekly routine one |
//! | `restore/` | restore (live, new database, v1), its preview, loading, post-data |
//! | `scratch` | databases SchoolVault creates, and sweeping what a killed run left |
//! | `maintenance` | delete, rescan (`rebuild_list` for a damaged catalog), prune |
//! | `offsite` | copies at the destinations: sync, verify, their retention, rescan from one, fetch for a restore |
//! | `export_v1` | writing the old system's layout |
//! | `schedule_look` | what is due at a look at the schedule |
//! | `alerts` | failure emails, stale alert, weekly report |
//! | `watchdog` | stopping a job that makes no progress |

mod alerts;
mod attended;
mod backup;
mod export_v1;
mod maintenance;
mod offsite;
mod reading;
mod restore;
mod schedule_look;
mod scratch;
#[cfg(test)]
mod send;
mod test_restore;
mod undo;
mod verify;
mod watchdog;

pub use alerts::{
    destination_alert, forget_digest, notify_failure, refresh_admins, stale_alert, weekly_digest,
    with_known_admins, DIGEST_CRON, RETRY_ALERT,
};
pub use attended::{backup_attended, Attended};
pub use backup::{backup, backup_source, BackupOptions, BackupOutcome};
pub use export_v1::{export_v1, ExportOutcome};
pub use maintenance::{delete, prune, rebuild_list, rescan, Rebuilt, RescanEntry};
pub use offsite::{
    copies_of, fetch, forget_destination, rescan_from, retry_after, sync, Behind,
    DestinationReport, Finding, Offsite, SyncOptions, Tally,
};
pub use reading::verify_reader;
pub use restore::{
    restore, restore_new_mariadb, restore_preview, restore_preview_mariadb,
    restore_replace_mariadb, test_restore_mariadb, PreviewTable, RestoreOptions, RestoreOutcome,
    RestorePreview, RoleChoice,
};
pub use schedule_look::{
    first_look, look, run_due_with, DueOutcome, EmailPlan, LookOutcome, LookSettings, ScheduleLook,
    FIRST_LOOK_FILE, RETRY_AFTER, SLOT_ATTEMPTS,
};
pub use test_restore::{
    last_test_restore, notify_test_restore_failure, routine_test_restore, test_restore,
    TestRestoreMark, TEST_RESTORE_EVERY,
};
pub use undo::{backup_mariadb, UNDO_KEPT};
pub use verify::{decrypt, inspect, verify, InspectReport, VerifyReport};
pub use watchdog::watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::archive::BackupKind;
use crate::catalog::{BackupRecord, Catalog, Operation, Outcome, RunRecord};
use crate::error::{Error, ErrorKind, Result};
use crate::keychain::Keys;
use crate::legacy::{self};
use crate::schedule::RunLock;

/// The version written into archives.
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The local state jobs work with.
pub struct Vault {
    /// Where backup files are written.
    pub dir: PathBuf,
    /// The index of backups and runs.
    pub catalog: Catalog,
    /// The encryption keys.
    pub keys: Arc<Keys>,
    /// Where the run lock lives (the catalog's folder).
    pub lock_dir: PathBuf,
}

/// A flag to stop a running job; the job then fails with `Cancelled` and leaves nothing behind.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Ask the job to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether the job was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    fn check(&self) -> Result<()> {
        if self.0.load(Ordering::Relaxed) {
            Err(Error::new(
                ErrorKind::Cancelled,
                "The job was cancelled",
                "Nothing was changed and no file was left behind",
            ))
        } else {
            Ok(())
        }
    }
}

impl Vault {
    /// Open the vault: backup folder `dir`, catalog at `catalog`.
    ///
    /// # Errors
    /// `Catalog` errors.
    pub async fn open(dir: PathBuf, catalog: &Path, keys: Keys) -> Result<Vault> {
        Vault::open_shared(dir, catalog, Arc::new(keys)).await
    }

    /// [`Vault::open`] with keys shared with other vaults (a list rebuilt after a damaged one).
    ///
    /// # Errors
    /// `Catalog` errors.
    pub async fn open_shared(dir: PathBuf, catalog: &Path, keys: Arc<Keys>) -> Result<Vault> {
        let lock_dir = catalog
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.clone());
        Ok(Vault {
            dir,
            catalog: Catalog::open(catalog).await?,
            keys,
            lock_dir,
        })
    }

    /// Find a backup by id or file path.
    ///
    /// # Errors
    /// `NotFound` when it is neither.
    pub async fn resolve(&self, what: &str) -> Result<(PathBuf, Option<BackupRecord>)> {
        let as_path = Path::new(what);
        if as_path.is_file() {
            return Ok((as_path.to_path_buf(), None));
        }
        if let Some(rec) = self.catalog.get(what).await? {
            if !rec.path.is_file() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "Backup {what} is listed, but its file {} is missing",
                        rec.path.display()
                    ),
                    "Run `schoolvault rescan` to update the list, or copy the file back",
                )
                .in_app("Copy the file back into the backup folder, or restore a copy of it with Restore from file…"));
            }
            return Ok((rec.path.clone(), Some(rec)));
        }
        Err(Error::new(
            ErrorKind::NotFound,
            format!("There is no backup with id {what:?} and no file at that path"),
            "Run `schoolvault list` to see the backups, or give the path of a backup file",
        )
        .in_app("Choose a backup from the list, or pick its file with Restore from file…"))
    }

    /// Take the run lock: one backup, restore, prune, delete, rescan or test restore at a
    /// time on this computer (the app and every `schoolvault` share it). The operations take it
    /// themselves; what they do under it takes the [`Locked`] this returns, so nothing that
    /// changes the backup folder or the catalog can run without it.
    ///
    /// # Errors
    /// `Busy` when another run holds it.
    pub fn lock(&self) -> Result<Locked<'_>> {
        Ok(Locked {
            vault: self,
            _lock: RunLock::try_acquire(&self.lock_dir)?,
        })
    }

    /// When the newest complete backup of the school (not a safety backup) was made.
    async fn last_success(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .catalog
            .list()
            .await?
            .into_iter()
            // An old-system file's time is what the file claims: never proof that SchoolVault
            // backed up (a claimed future time would silence the schedule and the alerts).
            .filter(|b| b.status.is_complete() && b.kind != BackupKind::Safety && !is_v1_record(b))
            .map(|b| b.created_at)
            .max())
    }

    async fn record_run(&self, run: RunRecord) {
        // The history is a convenience: failing to write it must not hide the job's outcome.
        let _ = self.catalog.add_run(&run).await;
    }
}

/// The vault while this run holds the run lock (made only by [`Vault::lock`], released when
/// dropped): what changes the backup folder or the catalog takes one.
pub struct Locked<'a> {
    vault: &'a Vault,
    _lock: RunLock,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Vault;
    fn deref(&self) -> &Vault {
        self.vault
    }
}

/// Whether a catalog entry is an old-system file found by [`rescan`].
pub(crate) fn is_v1_record(b: &BackupRecord) -> bool {
    b.engine == legacy::CATALOG_ENGINE
}

pub(crate) fn run_record<T>(
    operation: Operation,
    kind: Option<BackupKind>,
    started: DateTime<Utc>,
    result: &Result<T>,
    backup_id: Option<String>,
    summary: Option<String>,
) -> RunRecord {
    RunRecord {
        started_at: started,
        finished_at: Utc::now(),
        operation,
        kind,
        outcome: if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        error_code: result.as_ref().err().map(|e| e.code().to_string()),
        message: result.as_ref().err().map(|e| e.to_string()).or(summary),
        backup_id,
    }
}

pub(crate) fn internal(what: &str) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("Internal error: {what}"),
        "Nothing was changed; please report this",
    )
}

pub(crate) fn join_error(e: tokio::task::JoinError) -> Error {
    internal(&format!("a worker stopped: {e}"))
}
