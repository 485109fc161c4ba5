//! Restoring a backup into a database, all or nothing: into the live database in one
//! transaction (after a safety backup), into a new database created for it, or an old-system
//! file merged or replaced. Loading and post-data live in the submodules.

mod load;
mod mariadb;
mod post_data;
mod preview;

pub(crate) use mariadb::undo_prefix;
pub use mariadb::{restore_new_mariadb, restore_replace_mariadb, test_restore_mariadb};
pub use preview::{restore_preview, restore_preview_mariadb, PreviewTable, RestorePreview};

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use crate::archive::{
    self, read_preamble, BackupKind, CountingReader, End, Item, Manifest, TableEnd, TableManifest,
};
use crate::catalog::BackupRecord;
use crate::catalog::Operation;
use crate::crypto::Key;
use crate::error::{Error, ErrorKind, Result};
use crate::legacy::{self, V1Mode};
use crate::progress::{Phase, Progress, ProgressEvent};
pub use crate::source::postgres::RoleChoice;
use crate::source::postgres::{self, privileges_sql, PgTarget, RestoreTxn, RoleMap};
use crate::source::{describe_sessions, LockWait, Session};

use crate::jobs::backup::{backup_locked, BackupOptions};
use crate::jobs::reading::{
    is_v2, open_archive, open_v1, read_manifest, untrusted_v1, v1_warnings, TableTally,
};
use crate::jobs::restore::load::load_parts;
use crate::jobs::scratch::{create_owned_database, ledger_release, sweep_created};
use crate::jobs::{join_error, run_record, Cancel, Locked, Vault};

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Take a safety backup of the target first.
    pub safety_backup: bool,
    /// Stops the job (before commit).
    pub cancel: Cancel,
    /// For old-system files: merge (default) or replace.
    pub v1_mode: V1Mode,
    /// Create this database on the target's server and restore into it.
    pub create_db: Option<String>,
    /// Restore an old-system file that opened only with the old system's public development
    /// key. Anyone could have written such a file, so it is refused unless the person said,
    /// after a warning, that they trust where it came from.
    pub trust_dev_key: bool,
    /// A restore into a new (or empty) database: what to do about roles the backup names
    /// that the server lacks.
    pub roles: RoleChoice,
    /// A replace restore gives up (nothing changed) when other sessions keep the tables
    /// locked for longer than this; `None` waits as long as it takes.
    pub lock_timeout: Option<std::time::Duration>,
    /// End the other sessions on the target database (`pg_terminate_backend`) just before a
    /// replace restore empties the tables: their open transactions roll back.
    pub end_sessions: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            safety_backup: true,
            cancel: Cancel::default(),
            v1_mode: V1Mode::Merge,
            create_db: None,
            trust_dev_key: false,
            roles: RoleChoice::Require,
            lock_timeout: None,
            end_sessions: false,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    /// The backup restored.
    pub backup_id: String,
    /// The target, `user@host:port/db`.
    pub target: String,
    /// Tables loaded.
    pub tables: u64,
    /// Rows loaded.
    pub rows: u64,
    /// How long it took (without the safety backup).
    pub duration_ms: u64,
    /// The safety backup taken first, to undo this restore.
    pub safety_backup: Option<BackupRecord>,
    /// 2 for a SchoolVault archive, 1 for an old-system file.
    pub format: u16,
    /// For an old-system file: what happened to each table.
    pub v1_tables: Option<Vec<legacy::V1TableOutcome>>,
    /// Things the person should know (an old file under the public development key…).
    pub warnings: Vec<String>,
    /// What was restored and what `end.json` says of it (for a test restore's comparison).
    #[serde(skip)]
    pub(super) checked: Vec<(TableManifest, TableEnd)>,
    /// The large objects restored, as `end.json` records them (ditto).
    #[serde(skip)]
    pub(super) large_objects: Vec<archive::LargeObjectEnd>,
}

pub(super) enum Feed {
    Sql(String, String),
    Part(TableManifest),
    Data(Vec<u8>),
    PartEnd,
    /// A part of a large object: its oid, the offset of these bytes, the bytes.
    LargeObject(u32, u64, Vec<u8>),
    /// Every part of this table has been sent (format 3; a version-2 archive says it of no
    /// table, and its tables end with the feed).
    TableEnd(u32),
}

/// Read backup `path` on a blocking thread, checking each table against `end.json` as it
/// streams past, and send its schema scripts, table parts and large objects down `tx` in
/// archive order (`count`: bytes of the file read so far). Ends with the manifest, the end
/// record, and the rows and bytes of table data.
pub(super) fn feed_archive(
    path: &Path,
    key: Key,
    count: Arc<AtomicU64>,
    tx: tokio::sync::mpsc::Sender<Feed>,
) -> tokio::task::JoinHandle<Result<(Manifest, End, u64, u64)>> {
    let reader_path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<(Manifest, End, u64, u64)> {
        let file = File::open(&reader_path)
            .map_err(|e| Error::io(format_args!("opening {}", reader_path.display()), &e))?;
        let mut r = BufReader::with_capacity(1 << 20, CountingReader::new(file, count));
        let pre = read_preamble(&mut r)?;
        let mut tally = TableTally::default();
        let mut offsets: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
        let gone = || {
            Error::new(
                ErrorKind::Cancelled,
                "The restore stopped",
                "Nothing was changed",
            )
        };
        let (manifest, end) = archive::walk(archive::plaintext(r, &pre, &key), |item| {
            if let Item::Schema { path, sql } = item {
                tx.blocking_send(Feed::Sql(path.to_string(), sql))
                    .map_err(|_| gone())?;
            } else if let Item::TableEnd { table, .. } = item {
                tx.blocking_send(Feed::TableEnd(table.index))
                    .map_err(|_| gone())?;
            } else if let Item::LargeObject { oid, part, data } = item {
                tally.start_object(oid, part)?;
                let mut buf = Vec::new();
                data.read_to_end(&mut buf)
                    .map_err(|e| archive::read_error(&e))?;
                tally.update_object(oid, &buf);
                let offset = offsets.entry(oid).or_default();
                let at = *offset;
                *offset += buf.len() as u64;
                tx.blocking_send(Feed::LargeObject(oid, at, buf))
                    .map_err(|_| gone())?;
            } else if let Item::Part { table, part, data } = item {
                tally.start_part(table, part)?;
                tx.blocking_send(Feed::Part(table.clone()))
                    .map_err(|_| gone())?;
                loop {
                    // Each buffer filled (a decompressor's read returns what one step gave):
                    // the loaders hold whole parts, so half-empty buffers would double that.
                    let mut buf = Vec::with_capacity(256 << 10);
                    let n = Read::take(&mut *data, 256 << 10)
                        .read_to_end(&mut buf)
                        .map_err(|e| archive::read_error(&e))?;
                    if n == 0 {
                        break;
                    }
                    tally.update(table.index, &buf);
                    tx.blocking_send(Feed::Data(buf)).map_err(|_| gone())?;
                }
                tx.blocking_send(Feed::PartEnd).map_err(|_| gone())?;
            }
            Ok(())
        })?;
        let (_, rows, bytes) = tally.check(&manifest, &end)?;
        Ok((manifest, end, rows, bytes))
    })
}

/// Restore a backup into `target`, replacing the data of every table it holds, in one
/// transaction: either everything is restored or the database stays exactly as it was.
///
/// # Errors
/// Everything [`verify`](crate::jobs::verify) reports, `TargetMismatch` when the target lacks a table or column,
/// database errors while loading. In every case the target is unchanged.
pub async fn restore(
    vault: &Vault,
    what: &str,
    target: &PgTarget,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreOutcome> {
    let vault = &vault.lock()?;
    let started = Utc::now();
    let result = restore_inner(vault, what, target, opts, progress).await;
    if let (Ok(_), Some(name)) = (&result, &opts.create_db) {
        // Finished: the database is the person's now. Its mark goes first, so a run killed
        // before the ledger is written cannot make the next run drop it.
        let _ = postgres::set_unfinished_mark(target, name, false).await;
        ledger_release(vault, target, name);
    }
    record_restore(vault, started, &result).await;
    result
}

/// A restore's entry in the history: its backup, and what went where.
pub(super) async fn record_restore(
    vault: &Locked<'_>,
    started: chrono::DateTime<Utc>,
    result: &Result<RestoreOutcome>,
) {
    let id = result.as_ref().ok().map(|o| o.backup_id.clone());
    let summary = result
        .as_ref()
        .ok()
        .map(|o| format!("{} tables, {} rows into {}", o.tables, o.rows, o.target));
    vault
        .record_run(run_record(
            Operation::Restore,
            None,
            started,
            result,
            id,
            summary,
        ))
        .await;
}

pub(super) async fn restore_inner(
    vault: &Locked<'_>,
    what: &str,
    target: &PgTarget,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreOutcome> {
    let (path, _) = vault.resolve(what).await?;
    if !is_v2(&path)? {
        if opts.create_db.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "An old-system backup carries no schema, so it cannot be restored into a new database; nothing was changed",
                "Restore it into the school ERP's database (without --create-db)",
            ));
        }
        return restore_v1(vault, &path, target, opts, progress).await;
    }
    // Everything that can be checked without touching the database is checked first.
    let (r, pre, key) = open_archive(&path, &vault.keys)?;
    let manifest = read_manifest(r, &pre, &key)?;
    progress.report(&ProgressEvent::phase(Phase::Connect));
    let no_schema = || {
        Error::new(
            ErrorKind::TargetMismatch,
            "This backup carries no schema, so it cannot be restored into a new or empty database",
            "Restore it into a database that has its tables",
        )
    };
    match &opts.create_db {
        Some(name) => {
            if !manifest.schema {
                return Err(no_schema());
            }
            let roles = resolve_roles(target, &manifest, opts).await?;
            sweep_created(vault, target).await;
            let created = create_owned_database(vault, target, name).await?;
            let result = restore_into(
                vault,
                &path,
                key,
                &created,
                true,
                manifest,
                opts,
                roles.as_ref(),
                progress,
            )
            .await;
            if result.is_err() && postgres::drop_database_checked(target, name).await.is_ok() {
                ledger_release(vault, target, name);
            }
            // On success the ledger entry stays until the caller is done with the database:
            // `restore` hands it to the person, `test_restore` drops it.
            result
        }
        None => {
            let mut conn = target.connect().await?;
            let present = postgres::tables_present(&mut conn, target, &manifest.tables).await?;
            let fresh = present == 0 && !manifest.tables.is_empty();
            if fresh {
                if !manifest.schema {
                    return Err(no_schema());
                }
                // Only an empty database is filled from the schema: one with other tables is
                // neither this backup's database nor empty.
                if let Some(other) = postgres::any_user_table(&mut conn, target).await? {
                    return Err(Error::new(
                        ErrorKind::TargetMismatch,
                        format!(
                            "The target database {} has none of the backup's tables but is not empty (it has {other}); nothing was changed",
                            target.describe()
                        ),
                        "Restore into the database the backup came from, into an empty database, or into a new one with --create-db NAME",
                    )
                    .in_app("Restore it into the database it came from, or into an empty one (Settings → School database)"));
                }
            }
            if !fresh {
                postgres::check_target(&mut conn, target, &manifest.tables).await?;
                postgres::check_may_disable_triggers(&mut conn, target, &manifest.tables).await?;
            }
            drop(conn);
            // A replace changes rows, not objects: the live database keeps its owners and
            // privileges. An empty database gets the backup's.
            let roles = if fresh {
                resolve_roles(target, &manifest, opts).await?
            } else {
                None
            };
            restore_into(
                vault,
                &path,
                key,
                target,
                fresh,
                manifest,
                opts,
                roles.as_ref(),
                progress,
            )
            .await
        }
    }
}

/// The backup's roles on the target's server, for a restore that builds the schema: refused
/// (naming them) when some are missing and `opts` says nothing about them. None for a backup
/// made before owners and privileges travelled.
async fn resolve_roles(
    target: &PgTarget,
    manifest: &Manifest,
    opts: &RestoreOptions,
) -> Result<Option<RoleMap>> {
    if manifest.privileges.is_empty() {
        return Ok(None);
    }
    let mut conn = target.connect().await?;
    Ok(Some(
        RoleMap::resolve(&mut conn, target, &manifest.privileges, opts.roles.clone()).await?,
    ))
}

/// Load an archive into `target`: into its existing tables (replace), or, when `fresh`, into
/// a database without them (the schema files run in the same transaction, and then the
/// owners and privileges, mapped by `roles`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn restore_into(
    vault: &Locked<'_>,
    path: &Path,
    key: Key,
    target: &PgTarget,
    fresh: bool,
    manifest: Manifest,
    opts: &RestoreOptions,
    roles: Option<&RoleMap>,
    progress: Arc<dyn Progress>,
) -> Result<RestoreOutcome> {
    let path = path.to_path_buf();
    let conn = target.connect().await?;
    let safety_backup = if fresh {
        None
    } else {
        safety_backup(vault, target, opts, &progress).await?
    };

    let t0 = Instant::now();
    let total = std::fs::metadata(&path).map(|m| m.len()).ok();
    let count = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Feed>(8);
    let reader = feed_archive(&path, key.clone(), count.clone(), tx);

    progress.report(&ProgressEvent::phase(Phase::Restore));
    // A database this restore created is dropped if anything fails, so it needs no single
    // transaction: load it over several connections, as pg_restore -j does.
    let parallel = fresh && opts.create_db.is_some();
    let begun = if parallel {
        RestoreTxn::autocommit(conn, target).await
    } else if fresh {
        RestoreTxn::begin_empty(conn, target).await
    } else {
        let reporter = progress.clone();
        let on_wait = move |holders: &[Session]| {
            reporter.report(&ProgressEvent {
                table: Some(describe_sessions(holders)),
                ..ProgressEvent::phase(Phase::WaitLock)
            });
        };
        let wait = LockWait {
            timeout: opts.lock_timeout,
            end_sessions: opts.end_sessions,
            on_wait: &on_wait,
        };
        RestoreTxn::begin(conn, target, &manifest.tables, &wait).await
    };
    let mut txn = match begun {
        Ok(t) => t,
        Err(e) => {
            drop(rx);
            let _ = reader.await;
            return Err(e);
        }
    };
    let loaded = load_parts(
        &mut txn,
        fresh,
        parallel,
        &mut rx,
        &count,
        total,
        &manifest,
        &progress,
        &opts.cancel,
    )
    .await;
    drop(rx);
    let read = reader.await.map_err(join_error);
    let read = read.and_then(|r| {
        r.and_then(|(m, end, rows, bytes)| {
            if m.backup_id != manifest.backup_id || m.tables != manifest.tables {
                Err(Error::new(
                    ErrorKind::Damaged,
                    "The backup file changed while it was being restored; nothing was changed",
                    "Make sure nothing (a sync program?) writes to the backup folder during a restore, and try again",
                ))
            } else {
                Ok((m, end, rows, bytes))
            }
        })
    });
    let (end, rows_loaded) = match (loaded, read) {
        (Ok(rows), Ok((_, end, _, _))) => (end, rows),
        (Err(e), _) | (Ok(_), Err(e)) => {
            txn.rollback().await;
            // A reader error explains a load error ("the file is damaged" beats "COPY failed").
            return Err(e);
        }
    };
    // The server's own counts must match the end record.
    for t in &end.tables {
        let got = rows_loaded.get(&t.index).copied().unwrap_or(0);
        if got != t.rows {
            txn.rollback().await;
            let name = manifest
                .tables
                .iter()
                .find(|m| m.index == t.index)
                .map(|m| m.display_name())
                .unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Inconsistent,
                format!("Table {name}: the database loaded {got} rows but the backup holds {}; nothing was changed", t.rows),
                "Please report this",
            ));
        }
    }
    if let Err(e) = txn.set_sequences(&manifest.sequences).await {
        txn.rollback().await;
        return Err(e);
    }
    let mut warnings = Vec::new();
    if let (true, Some(map)) = (fresh, roles) {
        let sql = privileges_sql(&manifest.privileges, map, opts.create_db.as_deref());
        if let Err(e) = txn
            .run_sql(&sql, "restoring the owners and privileges")
            .await
        {
            txn.rollback().await;
            return Err(e);
        }
        warnings.extend(map.notes());
    }
    if !fresh && !end.large_objects.is_empty() {
        warnings.push(format!(
            "the backup holds {} large object(s); a restore into the live database changes table rows only, so they were left as they are (restore into a new, empty database to get them)",
            end.large_objects.len()
        ));
    }
    if fresh && !manifest.unsupported.is_empty() {
        // Said again where it matters: these are not in the restored database.
        warnings.push(format!(
            "not restored (SchoolVault cannot reproduce them yet): {}",
            manifest.unsupported.join(", ")
        ));
    }
    if let Err(e) = opts.cancel.check() {
        txn.rollback().await;
        return Err(e);
    }
    // The indexes and keys set aside for the load, built again (each checks every row).
    let rebuilt = txn
        .put_back(|sql, _, _| {
            progress.report(&ProgressEvent {
                table: Some(sql.chars().take(80).collect()),
                ..ProgressEvent::phase(Phase::Restore)
            });
        })
        .await;
    if let Err(e) = rebuilt {
        txn.rollback().await;
        return Err(e);
    }
    progress.report(&ProgressEvent::phase(Phase::Commit));
    txn.commit().await?;
    Ok(RestoreOutcome {
        backup_id: manifest.backup_id.clone(),
        target: target.describe(),
        tables: manifest.tables.len() as u64,
        rows: end.total_rows,
        duration_ms: t0.elapsed().as_millis() as u64,
        safety_backup,
        format: manifest.format,
        v1_tables: None,
        warnings,
        large_objects: if fresh {
            end.large_objects.clone()
        } else {
            Vec::new()
        },
        checked: end
            .tables
            .iter()
            .filter_map(|e| {
                manifest
                    .tables
                    .iter()
                    .find(|t| t.index == e.index)
                    .map(|t| (t.clone(), e.clone()))
            })
            .collect(),
    })
}

pub(super) async fn safety_backup(
    vault: &Locked<'_>,
    target: &PgTarget,
    opts: &RestoreOptions,
    progress: &Arc<dyn Progress>,
) -> Result<Option<BackupRecord>> {
    if !opts.safety_backup {
        return Ok(None);
    }
    progress.report(&ProgressEvent::phase(Phase::SafetyBackup));
    let b = backup_locked(
        vault,
        target,
        &BackupOptions {
            kind: BackupKind::Safety,
            cancel: opts.cancel.clone(),
            ..BackupOptions::default()
        },
        progress.clone(),
    )
    .await
    .map_err(|e| e.context("taking the safety backup before restoring (nothing was changed)"))?;
    Ok(Some(b.backup))
}

/// Restore an old-system file: merge (or replace) its 22 tables' records in one transaction.
pub(super) async fn restore_v1(
    vault: &Locked<'_>,
    path: &Path,
    target: &PgTarget,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreOutcome> {
    let v1 = open_v1(path, vault.keys.clone()).await?;
    if v1.dev_key && !opts.trust_dev_key {
        return Err(untrusted_v1());
    }
    progress.report(&ProgressEvent::phase(Phase::Connect));
    let plan = legacy::prepare(target, &v1).await?;
    let safety_backup = safety_backup(vault, target, opts, &progress).await?;
    let t0 = Instant::now();
    progress.report(&ProgressEvent::phase(Phase::Restore));
    opts.cancel.check()?;
    if opts.end_sessions {
        postgres::end_sessions(target, None).await?;
    }
    let reporter = progress.clone();
    let on_wait = move |holders: &[Session]| {
        reporter.report(&ProgressEvent {
            table: Some(describe_sessions(holders)),
            ..ProgressEvent::phase(Phase::WaitLock)
        });
    };
    let wait = LockWait {
        timeout: opts.lock_timeout,
        end_sessions: opts.end_sessions,
        on_wait: &on_wait,
    };
    let tables = legacy::apply(target, &plan, opts.v1_mode, &wait).await?;
    Ok(RestoreOutcome {
        backup_id: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        target: target.describe(),
        tables: tables.len() as u64,
        rows: v1.records(),
        duration_ms: t0.elapsed().as_millis() as u64,
        safety_backup,
        format: 1,
        v1_tables: Some(tables),
        warnings: v1_warnings(&v1),
        checked: Vec::new(),
        large_objects: Vec::new(),
    })
}
