//! Databases SchoolVault creates (test restores, `restore --create-db`): created with an
//! unfinished mark, listed in a ledger beside the catalog, and swept when a run that made one
//! died before dropping it; and partial backup files left by a killed run.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::Operation;
use crate::error::{Error, ErrorKind, Result};
use crate::source::postgres::{self, PgTarget};

use crate::jobs::{run_record, Vault};

/// A database this computer created for a restore or a test restore and has not finished
/// with. Written down before `CREATE DATABASE` and removed when the job is done, so one left
/// by a killed job is found (and dropped) by the next job on that server, and a database
/// SchoolVault did not create is never dropped.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub(super) struct CreatedDatabase {
    /// `user@host:port`.
    server: String,
    /// The database.
    name: String,
    /// When it was created.
    at: DateTime<Utc>,
}

pub(super) fn ledger_path(vault: &Vault) -> PathBuf {
    vault.lock_dir.join("created-databases.json")
}

pub(super) fn ledger_read(vault: &Vault) -> Vec<CreatedDatabase> {
    std::fs::read(ledger_path(vault))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub(super) fn ledger_write(vault: &Vault, entries: &[CreatedDatabase]) -> Result<()> {
    let json = serde_json::to_vec_pretty(entries).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("Internal error writing the list of created databases: {e}"),
            "Nothing was changed; please report this",
        )
    })?;
    crate::storage::write_private(&ledger_path(vault), &json)
}

/// Create database `name` on `server`, noting it first in the ledger.
pub(super) async fn create_owned_database(
    vault: &Vault,
    server: &PgTarget,
    name: &str,
) -> Result<PgTarget> {
    // A name that exists is refused before it is written down, not after: noted first, a run
    // killed (kill -9, a crash, a power cut) before create_database's own check left someone
    // else's database in the ledger, and the next backup dropped it. Found by
    // crates/cli/tests/faults/ (`restore --create-db` naming the live database, killed: it was gone).
    postgres::refuse_existing(server, name).await?;
    let mut entries = ledger_read(vault);
    entries.push(CreatedDatabase {
        server: server.server(),
        name: name.to_string(),
        at: Utc::now(),
    });
    ledger_write(vault, &entries)?;
    match postgres::create_database(server, name).await {
        Ok(t) => {
            // Marked on the server itself: the sweep drops only a database that still bears
            // this mark, never one that finished or that someone else made under the name.
            if let Err(e) = postgres::set_unfinished_mark(server, name, true).await {
                let _ = postgres::drop_database_checked(server, name).await;
                ledger_release(vault, server, name);
                return Err(e);
            }
            Ok(t)
        }
        Err(e) => {
            // Not ours (it existed) or not made: forget it without touching it.
            ledger_release(vault, server, name);
            Err(e)
        }
    }
}

/// Forget `name` on `server`: the job is done with it (dropped, or handed to the person).
pub(super) fn ledger_release(vault: &Vault, server: &PgTarget, name: &str) {
    let key = server.server();
    let mut entries = ledger_read(vault);
    let before = entries.len();
    entries.retain(|e| !(e.server == key && e.name == name));
    if entries.len() != before {
        let _ = ledger_write(vault, &entries);
    }
}

/// Drop the databases on `server` that a killed restore or test restore left behind (they
/// are half made: nobody can use them), and record it. Runs under the run lock, so none of
/// them belongs to a job still running.
pub(super) async fn sweep_created(vault: &Vault, server: &PgTarget) {
    let key = server.server();
    let left: Vec<CreatedDatabase> = ledger_read(vault)
        .into_iter()
        .filter(|e| e.server == key)
        .collect();
    for e in left {
        let started = Utc::now();
        match postgres::is_unfinished(server, &e.name).await {
            // Gone, finished, or not ours: forget it, touch nothing.
            Ok(false) => {
                ledger_release(vault, server, &e.name);
                continue;
            }
            Ok(true) => {}
            // The server cannot say: leave it for a later run.
            Err(_) => continue,
        }
        let dropped = postgres::drop_database_checked(server, &e.name).await;
        if dropped.is_ok() {
            ledger_release(vault, server, &e.name);
        }
        let summary = format!(
            "dropped database {} on {}, left unfinished by an interrupted restore or test restore at {}",
            e.name,
            e.server,
            e.at.to_rfc3339()
        );
        vault
            .record_run(run_record(
                Operation::Cleanup,
                None,
                started,
                &dropped,
                None,
                Some(summary),
            ))
            .await;
    }
}

/// Remove the `.svb.partial` / `.enc.partial` files a killed backup or export left in the
/// backup folder (no other file). Callers hold the run lock, so no other job of this computer
/// is writing one.
pub(super) fn sweep_partials(vault: &Vault) {
    let Ok(dir) = std::fs::read_dir(&vault.dir) else {
        return;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(".svb.partial") || name.ends_with(".enc.partial");
        if ours && path.is_file() {
            let _ = std::fs::remove_file(&path);
        }
    }
}
