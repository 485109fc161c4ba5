//! The test restore: a backup restored into a scratch database, every table compared with what
//! the backup recorded, then dropped; and the routine weekly one after a scheduled backup,
//! with its remembered result and failure email.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::archive::{self, read_preamble, BackupKind};
use crate::catalog::Operation;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::Progress;
use crate::source::postgres::{self, PgTarget, SnapshotWorker};
use crate::source::Database;

use crate::jobs::alerts::with_school_admins;
use crate::jobs::reading::{inconsistent, is_v2};
use crate::jobs::restore::{restore_inner, RestoreOptions, RestoreOutcome};
use crate::jobs::scratch::{ledger_release, sweep_created};
use crate::jobs::verify::VerifyReport;
use crate::jobs::{is_v1_record, run_record, Vault};

/// Prove that a backup restores: restore it into a new scratch database (`scratch`, or
/// `schoolvault_verify_<id>` on `server`), export every table again and compare its rows and
/// SHA-256 with `end.json`, then drop the scratch database whatever happened. The outcome is
/// recorded in the catalog.
///
/// # Errors
/// Everything [`restore`](crate::jobs::restore) reports (into an empty database), and `Inconsistent` naming the first
/// table whose data did not survive the round trip.
pub async fn test_restore(
    vault: &Vault,
    what: &str,
    server: &PgTarget,
    scratch: Option<&str>,
    progress: Arc<dyn Progress>,
) -> Result<VerifyReport> {
    let started = Utc::now();
    // A test restore creates and drops a database: one run at a time, as for a restore.
    let vault = &vault.lock()?;
    let (path, record) = vault.resolve(what).await?;
    if !is_v2(&path)? {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "A test restore needs a SchoolVault backup; an old-system file carries no schema to restore into a scratch database",
            "Use `schoolvault verify FILE` for old-system files",
        )
        .in_app("Use Verify for old-system files"));
    }
    let id = match &record {
        Some(r) => r.id.clone(),
        None => {
            read_preamble(&mut BufReader::new(File::open(&path).map_err(|e| {
                Error::io(format_args!("opening {}", path.display()), &e)
            })?))?
            .header
            .backup_id
        }
    };
    sweep_created(vault, server).await;
    let name = scratch
        .map(str::to_string)
        .unwrap_or_else(|| format!("schoolvault_verify_{}", id.replace('-', "_")).to_lowercase());
    if postgres::database_exists(server, &name).await? {
        return Err(Error::new(
            ErrorKind::TargetMismatch,
            format!("A database named {name:?} already exists; a test restore only uses a scratch database it creates, and drops"),
            "Choose another name with --scratch-db",
        ));
    }
    let opts = RestoreOptions {
        safety_backup: false,
        create_db: Some(name.clone()),
        // A role this server lacks is reported, not a failed check of the backup.
        roles: super::RoleChoice::Lenient,
        ..RestoreOptions::default()
    };
    let result = async {
        // On failure restore_inner has dropped what it created, and only that: a name that
        // exists (made by someone else in the meantime) is an error, never a target.
        let restored =
            restore_inner(vault, &path.to_string_lossy(), server, &opts, progress).await?;
        let scratch_target = server.with_database(&name);
        let compared = compare_scratch(&scratch_target, &restored, &id, &path).await;
        // Forgotten only once it is gone: a scratch copy of the school's data must not stay
        // on the server unnoticed (the next run drops it).
        if postgres::drop_database_checked(server, &name).await.is_ok() {
            ledger_release(vault, server, &name);
        }
        compared
    }
    .await;
    let (ok, msg) = match &result {
        Ok(r) => (
            true,
            format!(
                "test restore: {} tables, {} rows restored and compared{}",
                r.tables,
                r.rows,
                if r.warnings.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.warnings.join("; "))
                }
            ),
        ),
        Err(e) => (false, format!("test restore failed: {e}")),
    };
    if vault.catalog.get(&id).await?.is_some() {
        vault
            .catalog
            .set_verified(&id, Utc::now(), ok, &msg)
            .await?;
    }
    vault
        .record_run(run_record(
            Operation::TestRestore,
            None,
            started,
            &result,
            Some(id),
            Some(msg),
        ))
        .await;
    result
}

/// Read every table of a scratch database back and compare it with what the backup recorded.
pub(super) async fn compare_scratch(
    scratch_target: &PgTarget,
    restored: &RestoreOutcome,
    id: &str,
    path: &Path,
) -> Result<VerifyReport> {
    let mut worker = SnapshotWorker::join_plain(scratch_target).await?;
    let (mut rows, mut bytes) = (0, 0);
    for (table, end) in &restored.checked {
        let mut stream = worker.copy_out(table).await?;
        let mut h = Sha256::new();
        let (mut r, mut b) = (0u64, 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            h.update(&chunk);
            r += chunk.iter().filter(|&&c| c == b'\n').count() as u64;
            b += chunk.len() as u64;
        }
        drop(stream);
        if r != end.rows || hex::encode(h.finalize()) != end.sha256 {
            return Err(inconsistent(
                table,
                &format!("after a restore it reads back as {r} rows with a different checksum (the backup holds {} rows)", end.rows),
            ));
        }
        rows += r;
        bytes += b;
    }
    worker.close().await;
    for lo in &restored.large_objects {
        let got = postgres::large_object_sha256(scratch_target, lo.oid).await?;
        if got.as_ref() != Some(&lo.sha256) {
            return Err(Error::new(
                ErrorKind::Inconsistent,
                format!(
                    "Large object {} reads back differently after a restore",
                    lo.oid
                ),
                "The backup or the server is faulty; use another backup and check the server",
            ));
        }
    }
    Ok(VerifyReport {
        backup_id: id.to_string(),
        path: path.to_path_buf(),
        tables: restored.checked.len() as u64,
        rows,
        bytes,
        format: archive::FORMAT_VERSION,
        warnings: restored.warnings.clone(),
    })
}

/// How often the routine test restore runs (after the scheduled backup).
pub const TEST_RESTORE_EVERY: chrono::Duration = chrono::Duration::days(7);

/// The newest routine test restore, remembered beside the catalog (`test-restore.json`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TestRestoreMark {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// The backup it restored.
    pub backup_id: String,
    /// Whether every table came back equal.
    pub ok: bool,
    /// What it said (tables and rows, or the error).
    pub message: String,
    /// It could not run: the backup user may not create the scratch database.
    #[serde(default)]
    pub unavailable: bool,
}

pub(super) fn test_restore_mark_path(vault: &Vault) -> PathBuf {
    vault.lock_dir.join("test-restore.json")
}

/// The newest routine test restore, if any ran here.
pub fn last_test_restore(vault: &Vault) -> Option<TestRestoreMark> {
    std::fs::read(test_restore_mark_path(vault))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The routine test restore: once every [`TEST_RESTORE_EVERY`], restore the newest successful
/// backup into a scratch database on `server` (PostgreSQL, or MariaDB/MySQL through
/// [`test_restore_mariadb`](crate::jobs::test_restore_mariadb)), compare every table with what the backup
/// recorded, and drop it ([`test_restore`]: run lock, recorded in the list and the history).
/// Shells call it after a scheduled backup succeeded. `Ok(None)`: not due, nothing to test,
/// another run holds the lock (tried at the next look), or the backup user may not create
/// databases (recorded once a week in the history, so the person can see why).
///
/// # Errors
/// The test restore's error: the newest backup did not restore. The caller emails it like a
/// failed backup ([`notify_test_restore_failure`]).
pub async fn routine_test_restore(
    vault: &Vault,
    server: &Database,
    now: DateTime<Utc>,
) -> Result<Option<VerifyReport>> {
    if last_test_restore(vault).is_some_and(|m| now - m.at < TEST_RESTORE_EVERY) {
        return Ok(None);
    }
    let newest = vault
        .catalog
        .list()
        .await?
        .into_iter()
        .filter(|b| b.status.is_complete() && b.kind != BackupKind::Safety && !is_v1_record(b))
        .max_by_key(|b| b.created_at);
    let Some(newest) = newest else {
        return Ok(None);
    };
    let remember = |ok: bool, message: String, unavailable: bool| {
        let mark = TestRestoreMark {
            at: now,
            backup_id: newest.id.clone(),
            ok,
            message,
            unavailable,
        };
        if let Ok(json) = serde_json::to_vec_pretty(&mark) {
            let _ = crate::storage::write_private(&test_restore_mark_path(vault), &json);
        }
    };
    let (may, grant, at) = match server {
        Database::Postgres(pg) => (
            postgres::may_create_database(pg).await?,
            "CREATEDB",
            pg.server(),
        ),
        Database::MariaDb(my) => (
            crate::source::mysql::may_create_database(my).await?,
            "CREATE and DROP ON *.*",
            my.describe(),
        ),
    };
    if !may {
        let note = format!(
            "weekly test restore skipped: the backup user of {at} may not create the scratch database it needs (grant it {grant}, or turn the weekly test restore off)"
        );
        remember(false, note.clone(), true);
        let skipped: Result<()> = Ok(());
        vault
            .record_run(run_record(
                Operation::TestRestore,
                None,
                Utc::now(),
                &skipped,
                Some(newest.id.clone()),
                Some(note),
            ))
            .await;
        return Ok(None);
    }
    let silent = Arc::new(crate::progress::Silent);
    let tested = match server {
        Database::Postgres(pg) => test_restore(vault, &newest.id, pg, None, silent).await,
        Database::MariaDb(my) => {
            crate::jobs::test_restore_mariadb(vault, &newest.id, my, None, silent).await
        }
    };
    match tested {
        Err(e) if e.kind() == ErrorKind::Busy => Ok(None),
        Ok(report) => {
            remember(
                true,
                format!(
                    "{} tables, {} rows restored and compared",
                    report.tables, report.rows
                ),
                false,
            );
            Ok(Some(report))
        }
        Err(e) => {
            remember(false, e.to_string(), false);
            Err(e)
        }
    }
}

/// Email the administrators that the routine test restore (of the backup it remembered) failed
/// with `error`, and record the attempt in the history.
///
/// # Errors
/// The sending error (also recorded in the history).
pub async fn notify_test_restore_failure(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
    admins_query: Option<&str>,
    target: &Database,
    error: &Error,
) -> Result<usize> {
    let started = Utc::now();
    // The backup it tested is the one routine_test_restore remembered.
    let backup_id = last_test_restore(vault)
        .map(|m| m.backup_id)
        .unwrap_or_default();
    let settings = with_school_admins(vault, settings, admins_query, target.postgres()).await;
    let failure = crate::notify::Failure {
        at: started,
        kind: "test restore".into(),
        database: target.describe(),
        code: error.code().to_string(),
        error: error.to_string(),
        last_success: vault.last_success().await.ok().flatten(),
    };
    let (subject, text, html) = crate::notify::test_restore_failure_message(&failure, &backup_id);
    let sent = crate::notify::send(&settings, &subject, &text, &html).await;
    let summary = sent
        .as_ref()
        .ok()
        .map(|n| format!("test restore failure email sent to {n} administrator(s)"));
    vault
        .record_run(run_record(
            Operation::Notify,
            None,
            started,
            &sent,
            None,
            summary,
        ))
        .await;
    sent
}
