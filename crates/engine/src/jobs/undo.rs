//! The undo a MariaDB/MySQL replace restore keeps when it takes no safety backup: the replaced
//! tables, moved by the swap into a database of their own beside the live one (`<db>_svu_…`).
//! Listed beside the catalog (`mariadb-undo.json`) and dropped after the next successful
//! backup of that database (which then holds what the school works on) or after
//! [`UNDO_KEPT`], whichever comes first; never a database this list does not name.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::archive::BackupKind;
use crate::catalog::Operation;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::Progress;
use crate::source::mysql::{drop_database, MyTarget};

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

/// Drop the undo databases of `live` that a successful backup made at `backed_up` (or later)
/// has made needless, and those older than [`UNDO_KEPT`]; each recorded in the history.
pub(super) async fn sweep(vault: &Vault, live: &MyTarget, backed_up: Option<DateTime<Utc>>) {
    let key = live.describe();
    let now = Utc::now();
    let (due, keep): (Vec<KeptUndo>, Vec<KeptUndo>) = read(vault).into_iter().partition(|e| {
        e.live == key && (backed_up.is_some_and(|b| b > e.at) || now - e.at > UNDO_KEPT)
    });
    if due.is_empty() {
        return;
    }
    for e in &due {
        let started = Utc::now();
        drop_database(live, &e.name).await;
        let why = if backed_up.is_some_and(|b| b > e.at) {
            "a backup of it has been made since"
        } else {
            "kept for 7 days"
        };
        let dropped: Result<()> = Ok(());
        vault
            .record_run(run_record(
                Operation::Cleanup,
                None,
                started,
                &dropped,
                None,
                Some(format!(
                    "dropped database {}, the tables a restore of {} replaced at {} ({why})",
                    e.name,
                    e.live,
                    e.at.to_rfc3339()
                )),
            ))
            .await;
    }
    let _ = write(vault, &keep);
}

/// A backup of MariaDB/MySQL database `live` (under the run lock); after a successful one
/// that is not a restore's safety backup, the undo databases of earlier restores of `live`
/// go.
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
    let made = result.is_ok() && opts.kind != BackupKind::Safety;
    sweep(vault, live, made.then_some(started)).await;
    result
}
