//! The undo a MariaDB/MySQL replace restore keeps when it takes no safety backup: the replaced
//! tables, moved by the swap into a database of their own beside the live one (`<db>_svu_…`).
//! Listed beside the catalog (`mariadb-undo.json`) and dropped once both a successful backup
//! of that database has been made since the restore and [`UNDO_KEPT`] has passed: the kept
//! tables are the only copy of what the restore replaced (no backup holds it), so neither a
//! backup alone nor time alone lets them go. Never a database this list does not name, nor
//! one whose name is not a restore's undo name beside the live database.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::archive::BackupKind;
use crate::catalog::Operation;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::Progress;
use crate::source::mysql::{database_exists, drop_database, MyTarget};

use crate::jobs::backup::{backup_source_locked, BackupOptions, BackupOutcome};
use crate::jobs::{run_record, Locked, Vault};

/// How long a restore's replaced tables are kept when no backup of the database came since.
pub const UNDO_KEPT: chrono::Duration = chrono::Duration::days(7);

/// A database of replaced tables a restore kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct KeptUndo {
    /// `user@host:port/database` of the live database.
    live: String,
    /// The database holding the replaced tables.
    name: String,
    /// When the restore made it.
    at: DateTime<Utc>,
}

fn ledger_path(vault: &Vault) -> PathBuf {
    vault.lock_dir.join("mariadb-undo.json")
}

fn read(vault: &Vault) -> Vec<KeptUndo> {
    std::fs::read(ledger_path(vault))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write(vault: &Vault, entries: &[KeptUndo]) -> Result<()> {
    let json = serde_json::to_vec_pretty(entries).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("Internal error writing the list of kept undo databases: {e}"),
            "Nothing was changed; please report this",
        )
    })?;
    crate::storage::write_private(&ledger_path(vault), &json)
}

/// Note that `undo` holds the tables a restore of `live` replaced.
pub(super) fn remember(vault: &Vault, live: &MyTarget, undo: &str) -> Result<()> {
    let mut entries = read(vault);
    entries.push(KeptUndo {
        live: live.describe(),
        name: undo.to_string(),
        at: Utc::now(),
    });
    write(vault, &entries)
}

/// Drop the undo databases of `live` older than [`UNDO_KEPT`] when a successful backup of
/// `live` was made after them, at `backed_up`; each drop recorded in the history, and kept in
/// the list until the server confirms it is gone.
pub(super) async fn sweep(vault: &Vault, live: &MyTarget, backed_up: DateTime<Utc>) {
    let key = live.describe();
    let now = Utc::now();
    let ours = crate::jobs::restore::undo_prefix(&live.database());
    let (due, mut keep): (Vec<KeptUndo>, Vec<KeptUndo>) = read(vault)
        .into_iter()
        .partition(|e| e.live == key && backed_up > e.at && now - e.at > UNDO_KEPT);
    if due.is_empty() {
        return;
    }
    for e in due {
        if !e.name.starts_with(&ours) || e.name == live.database() {
            // Not a name a restore of this database gives its undo: never dropped.
            continue;
        }
        let started = Utc::now();
        drop_database(live, &e.name).await;
        let gone = match database_exists(live, &e.name).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(Error::new(
                ErrorKind::Database,
                format!("Database {} could not be dropped", e.name),
                "Drop it by hand when you no longer need the tables a restore replaced",
            )),
            Err(err) => Err(err),
        };
        vault
            .record_run(run_record(
                Operation::Cleanup,
                None,
                started,
                &gone,
                None,
                Some(format!(
                    "dropped database {}, the tables a restore of {} replaced at {} (a backup has been made since, and {} days passed)",
                    e.name,
                    e.live,
                    e.at.to_rfc3339(),
                    UNDO_KEPT.num_days()
                )),
            ))
            .await;
        if gone.is_err() {
            keep.push(e);
        }
    }
    let _ = write(vault, &keep);
}

/// A backup of MariaDB/MySQL database `live` (under the run lock); after a successful one
/// that is not a restore's safety backup, the undo databases of restores of `live` older
/// than [`UNDO_KEPT`] go.
///
/// # Errors
/// As [`backup_source`](crate::jobs::backup_source).
pub async fn backup_mariadb(
    vault: &Vault,
    live: &MyTarget,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome> {
    let vault = vault.lock()?;
    backup_mariadb_locked(&vault, live, opts, progress).await
}

/// [`backup_mariadb`] for a run that already holds the lock (a scheduled slot).
pub(super) async fn backup_mariadb_locked(
    vault: &Locked<'_>,
    live: &MyTarget,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome> {
    let started = Utc::now();
    let result = backup_source_locked(vault, live, opts, progress).await;
    if result.is_ok() && opts.kind != BackupKind::Safety {
        sweep(vault, live, started).await;
    }
    result
}
