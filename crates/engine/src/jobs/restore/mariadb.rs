//! Restoring a MariaDB/MySQL backup. Into a new database: the schema before the data, the rows,
//! the views, triggers and events after them, then every table read back and compared with
//! `end.json` (rows and SHA-256 of its data), so a value the server changed on the way in fails
//! the restore; anything that fails drops the new database.
//!
//! Over the live database, all or nothing although MariaDB commits DDL at once: the backup is
//! restored and checked that way into a scratch database on the same server while the school
//! works on, then one `RENAME TABLE` statement (atomic in MariaDB and MySQL) moves the live
//! tables out and the restored ones in. Until that statement the live database is untouched;
//! triggers (which may not cross databases) are taken off and put back around it, and a
//! failure after it swaps back.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::archive::BackupKind;
use crate::archive::{self, Manifest};
use crate::catalog::Operation;
use crate::error::{Error, ErrorKind, Result};
use crate::jobs::backup::{backup_source_locked, BackupOptions};
use crate::progress::{Phase, Progress, ProgressEvent};
use crate::source::mysql::{
    create_database, create_triggers, drop_database, drop_database_if_empty, drop_leftovers,
    drop_triggers, end_sessions, repoint_sequence_defaults, swap_tables, tables_of, triggers_of,
    wait_for_tables, MyTarget, NewDatabase,
};
use crate::source::{describe_sessions, LockWait, Session, Source, TableReader};

use crate::jobs::reading::{inconsistent, is_v2, open_archive, read_manifest};
use crate::jobs::restore::{feed_archive, record_restore, Feed, RestoreOptions, RestoreOutcome};
use crate::jobs::{join_error, run_record, Locked, Vault};

/// Restore backup `what` (a MariaDB/MySQL backup) into the new database `name` on `server`'s
/// MariaDB/MySQL server.
///
/// # Errors
/// `TargetMismatch` when `name` exists or the backup is not of a MariaDB/MySQL database;
/// everything [`verify`](crate::jobs::verify) reports; database errors. The new database is
/// dropped on any failure.
pub async fn restore_new_mariadb(
    vault: &Vault,
    what: &str,
    server: &MyTarget,
    name: &str,
    progress: Arc<dyn Progress>,
) -> Result<RestoreOutcome> {
    let vault = &vault.lock()?;
    let started = Utc::now();
    let result = restore_inner(vault, what, server, name, progress).await;
    record_restore(vault, started, &result).await;
    result
}

/// The backup file, its key and manifest, checked to be a MariaDB/MySQL SchoolVault backup.
async fn open_mariadb_backup(
    vault: &Locked<'_>,
    what: &str,
) -> Result<(std::path::PathBuf, crate::crypto::Key, Manifest)> {
    let (path, _) = vault.resolve(what).await?;
    if !is_v2(&path)? {
        return Err(Error::new(
            ErrorKind::TargetMismatch,
            "An old-system backup holds PostgreSQL data, not a MariaDB/MySQL database; nothing was changed",
            "Restore it into the school ERP's PostgreSQL database",
        ));
    }
    let (r, pre, key) = open_archive(&path, &vault.keys)?;
    let manifest = read_manifest(r, &pre, &key)?;
    if !matches!(manifest.source.engine.as_str(), "mariadb" | "mysql") {
        return Err(Error::new(
            ErrorKind::TargetMismatch,
            format!(
                "Backup {} is of a {} database, which a MariaDB/MySQL server cannot take; nothing was changed",
                manifest.backup_id, manifest.source.engine
            ),
            "Restore it with --db postgres://… (a PostgreSQL server)",
        ));
    }
    Ok((path, key, manifest))
}

async fn restore_inner(
    vault: &Locked<'_>,
    what: &str,
    server: &MyTarget,
    name: &str,
    progress: Arc<dyn Progress>,
) -> Result<RestoreOutcome> {
    let (path, key, manifest) = open_mariadb_backup(vault, what).await?;
    progress.report(&ProgressEvent::phase(Phase::Connect));
    let target = create_database(server, name).await?;
    let t0 = Instant::now();
    let result = load(&path, key, &target, &manifest, progress).await;
    match result {
        Ok((rows, warnings)) => Ok(outcome(&manifest, &target, rows, t0, None, warnings)),
        Err(e) => {
            drop_database(server, name).await;
            Err(e)
        }
    }
}

fn outcome(
    manifest: &Manifest,
    target: &MyTarget,
    rows: u64,
    t0: Instant,
    safety_backup: Option<crate::catalog::BackupRecord>,
    warnings: Vec<String>,
) -> RestoreOutcome {
    RestoreOutcome {
        backup_id: manifest.backup_id.clone(),
        target: target.describe(),
        tables: manifest.tables.len() as u64,
        rows,
        duration_ms: t0.elapsed().as_millis() as u64,
        safety_backup,
        format: archive::FORMAT_VERSION,
        v1_tables: None,
        warnings,
        checked: Vec::new(),
        large_objects: Vec::new(),
    }
}

/// A test restore of MariaDB/MySQL backup `what`: restored into the scratch database `scratch`
/// (default `schoolvault_verify_<id>`) on `server`'s server, every table read back and
/// compared with `end.json`, the scratch database dropped whatever happened. The outcome is
/// recorded in the catalog, as for PostgreSQL.
///
/// # Errors
/// As [`restore_new_mariadb`]; `TargetMismatch` when the scratch name exists.
pub async fn test_restore_mariadb(
    vault: &Vault,
    what: &str,
    server: &MyTarget,
    scratch: Option<&str>,
    progress: Arc<dyn Progress>,
) -> Result<crate::jobs::VerifyReport> {
    let started = Utc::now();
    let vault = &vault.lock()?;
    let result = async {
        let (path, key, manifest) = open_mariadb_backup(vault, what).await?;
        let name = scratch.map(str::to_string).unwrap_or_else(|| {
            format!(
                "schoolvault_verify_{}",
                manifest.backup_id.replace('-', "_")
            )
            .to_lowercase()
        });
        let target = create_database(server, &name).await?;
        let loaded = load(&path, key, &target, &manifest, progress).await;
        drop_database(server, &name).await;
        let (rows, warnings) = loaded?;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(crate::jobs::VerifyReport {
            backup_id: manifest.backup_id.clone(),
            path: path.clone(),
            tables: manifest.tables.len() as u64,
            rows,
            bytes,
            format: manifest.format,
            warnings,
        })
    }
    .await;
    let (ok, msg) = match &result {
        Ok(r) => (
            true,
            format!(
                "test restore: {} tables, {} rows restored and compared",
                r.tables, r.rows
            ),
        ),
        Err(e) => (false, format!("test restore failed: {e}")),
    };
    let id = match &result {
        Ok(r) => Some(r.backup_id.clone()),
        Err(_) => vault
            .resolve(what)
            .await
            .ok()
            .and_then(|(_, r)| r)
            .map(|r| r.id),
    };
    if let Some(id) = &id {
        if vault.catalog.get(id).await?.is_some() {
            vault.catalog.set_verified(id, Utc::now(), ok, &msg).await?;
        }
    }
    vault
        .record_run(run_record(
            Operation::TestRestore,
            None,
            started,
            &result,
            id,
            Some(msg),
        ))
        .await;
    result
}

/// Replace the data of the live MariaDB/MySQL database `live` with backup `what`'s, all or
/// nothing: restored and checked in a scratch database, then swapped in by one atomic
/// `RENAME TABLE`. A safety backup of `live` is taken first unless `opts.safety_backup` is
/// false; then the replaced tables are kept in a database of their own (named in the result's
/// warnings) instead of being dropped. The school keeps working while the scratch database
/// loads; only then are its sessions ended (`opts.end_sessions`) or waited for, up to
/// `opts.lock_timeout`, saying who holds the tables while it waits.
///
/// # Errors
/// As [`restore_new_mariadb`]; `InUse` naming the sessions that held a table longer than
/// `opts.lock_timeout`; `Cancelled`. The live database is unchanged on any failure.
pub async fn restore_replace_mariadb(
    vault: &Vault,
    what: &str,
    live: &MyTarget,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreOutcome> {
    let vault = &vault.lock()?;
    let started = Utc::now();
    let result = replace_inner(vault, what, live, opts, progress).await;
    record_restore(vault, started, &result).await;
    result
}

/// A name beside `live` for a restore's own database (MariaDB names are at most 64 characters).
fn beside(live: &str, tag: &str) -> String {
    format!("{}{:04x}", beside_prefix(live, tag), rand::random::<u16>())
}

/// The start of every undo database name a replace restore of `live` gives.
pub(crate) fn undo_prefix(live: &str) -> String {
    beside_prefix(live, "svu")
}

fn beside_prefix(live: &str, tag: &str) -> String {
    let head: String = live.chars().take(48).collect();
    format!("{head}_{tag}_")
}

async fn replace_inner(
    vault: &Locked<'_>,
    what: &str,
    live: &MyTarget,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreOutcome> {
    let safety = opts.safety_backup;
    let (path, key, manifest) = open_mariadb_backup(vault, what).await?;
    progress.report(&ProgressEvent::phase(Phase::Connect));
    let live_name = live.database();
    let live_tables = tables_of(live).await?;
    let safety_backup = if safety {
        progress.report(&ProgressEvent::phase(Phase::SafetyBackup));
        let opts = BackupOptions {
            kind: BackupKind::Safety,
            ..BackupOptions::default()
        };
        Some(
            backup_source_locked(vault, live, &opts, progress.clone())
                .await
                .map_err(|e| e.context("taking the safety backup (nothing was changed)"))?
                .backup,
        )
    } else {
        None
    };
    let t0 = Instant::now();
    // A scratch database left by a restore that was killed while loading (this machine's run
    // lock keeps two restores apart) goes first.
    let _ = drop_leftovers(live, &beside_prefix(&live_name, "svr")).await;
    let scratch_name = beside(&live_name, "svr");
    let scratch = create_database(live, &scratch_name).await?;
    let loaded = load(&path, key, &scratch, &manifest, progress.clone()).await;
    let rows = match loaded.and_then(|l| opts.cancel.check().map(|()| l)) {
        Ok((rows, _)) => rows,
        Err(e) => {
            drop_database(live, &scratch_name).await;
            return Err(e);
        }
    };
    if opts.end_sessions {
        if let Err(e) = end_sessions(live).await {
            drop_database(live, &scratch_name).await;
            return Err(e);
        }
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
    let undo_name = beside(&live_name, "svu");
    let swapped = swap_in(
        live,
        &scratch,
        &undo_name,
        &live_tables,
        &manifest,
        &progress,
        &wait,
    )
    .await;
    drop_database(live, &scratch_name).await;
    let mut warnings = match swapped {
        Ok(w) => w,
        Err(e) => {
            // Empty unless a swap-back failed: then it holds the live tables (the error says
            // so) and stays.
            drop_database_if_empty(live, &undo_name).await;
            return Err(e);
        }
    };
    let restored: Vec<&str> = manifest
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .chain(manifest.sequences.iter().map(|s| s.name.as_str()))
        .collect();
    let kept: Vec<&String> = live_tables
        .iter()
        .filter(|t| !restored.contains(&t.as_str()))
        .collect();
    if !kept.is_empty() {
        warnings.push(format!(
            "Tables that are not in the backup were left as they are: {}",
            kept.iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if safety_backup.is_some() {
        drop_database(live, &undo_name).await;
    } else {
        // No safety backup: the replaced tables are the undo, until the next backup.
        let listed = crate::jobs::undo::remember(vault, live, &undo_name);
        warnings.push(if listed.is_ok() {
            format!(
                "The replaced tables are kept in database {undo_name} on the same server (no safety backup was taken) for {} days and until a backup of {live_name} has been made since",
                crate::jobs::UNDO_KEPT.num_days()
            )
        } else {
            format!(
                "The replaced tables are kept in database {undo_name} on the same server (no safety backup was taken); drop it when you no longer need them"
            )
        });
    }
    Ok(outcome(&manifest, live, rows, t0, safety_backup, warnings))
}

/// Swap the restored tables of `scratch` into `live`, the live ones into a new database
/// `undo_name`. On failure the live database is as it was, or the error says where its tables
/// are. Returns what the person should know (a default that could not be pointed at the live
/// database's sequence).
async fn swap_in(
    live: &MyTarget,
    scratch: &MyTarget,
    undo_name: &str,
    live_tables: &[String],
    manifest: &Manifest,
    progress: &Arc<dyn Progress>,
    wait: &LockWait<'_>,
) -> Result<Vec<String>> {
    // The tables and the sequences (tables too, to MariaDB) of the backup.
    let new: Vec<String> = manifest
        .tables
        .iter()
        .map(|t| t.name.clone())
        .chain(manifest.sequences.iter().map(|s| s.name.clone()))
        .collect();
    let old: Vec<String> = live_tables
        .iter()
        .filter(|t| new.contains(t))
        .cloned()
        .collect();
    let live_name = live.database();
    let scratch_name = scratch.database();
    // Triggers may not move between databases: the restored ones are taken off (and created
    // on the live tables after the swap), the live ones of the swapped tables too (and put
    // back if the swap fails).
    let new_triggers = triggers_of(scratch).await?;
    drop_triggers(scratch, &new_triggers, &LockWait::default())
        .await
        .1?;
    let old_triggers: Vec<_> = triggers_of(live)
        .await?
        .into_iter()
        .filter(|t| old.contains(&t.table))
        .collect();
    // The restored defaults that take a sequence's next value name the scratch database:
    // pointed at the live database's sequence of the same name before the swap (it is the
    // restored one once swapped in), where the live database has it.
    repoint_sequence_defaults(
        scratch,
        &scratch_name,
        Some(&live_name),
        &LockWait::default(),
        true,
    )
    .await?;
    create_database(live, undo_name).await?;
    progress.report(&ProgressEvent::phase(Phase::Commit));
    // The one point that waits for the school's sessions (or gives up, nothing changed); then
    // the few statements of the swap follow at once.
    wait_for_tables(live, &old, wait).await?;
    // Putting things back after a failure waits as long as it takes.
    let patient = LockWait {
        timeout: None,
        end_sessions: false,
        on_wait: wait.on_wait,
    };
    let put_back = |e: Error, r: Result<()>| {
        match r {
        Ok(()) => e,
        Err(b) => e.context(format_args!(
            "and putting the live triggers back failed ({b}); the safety backup holds their definitions"
        )),
    }
    };
    let (dropped, result) = drop_triggers(live, &old_triggers, wait).await;
    if let Err(e) = result {
        let back = create_triggers(live, &old_triggers[..dropped]).await;
        return Err(put_back(e, back));
    }
    if let Err(e) = swap_tables(live, &live_name, &scratch_name, undo_name, &old, &new, wait).await
    {
        let back = create_triggers(live, &old_triggers).await;
        return Err(put_back(e, back));
    }
    if let Err(e) = create_triggers(live, &new_triggers).await {
        // Back as it was: the restored tables out, the live ones in, their triggers on them.
        let _ = drop_triggers(live, &new_triggers, &patient).await;
        let back = swap_tables(
            live,
            &live_name,
            undo_name,
            &scratch_name,
            &new,
            &old,
            &patient,
        )
        .await;
        return Err(match back {
            Ok(()) => {
                let triggers = create_triggers(live, &old_triggers).await;
                put_back(
                    e.context("creating the backup's triggers; the live tables were put back"),
                    triggers,
                )
            }
            Err(b) => e.context(format_args!(
                "creating the backup's triggers, and putting the live tables back failed too ({b}); they are in database {undo_name}"
            )),
        });
    }
    // Defaults whose sequence the live database lacked before the swap: now it has it. A
    // failure here leaves the restored data in place (the school may already be writing to
    // it) and says what to run.
    let mut warnings = Vec::new();
    if let Err(e) = repoint_sequence_defaults(live, &scratch_name, None, wait, false).await {
        warnings.push(format!(
            "Restored, but a column default still names the scratch database's sequence ({e}); run ALTER TABLE … ALTER COLUMN … SET DEFAULT (NEXTVAL(sequence)) on {live_name}"
        ));
    }
    Ok(warnings)
}

/// Connections loading tables at once (besides the one running the schema scripts).
const LOADERS: usize = 2;

/// What a loader is sent: a table to start, or its next bytes.
enum Load {
    Begin(crate::source::TableManifest),
    Data(Vec<u8>),
}

/// One loading connection: each table it is given, to the end of the channel.
async fn loader(target: &MyTarget, mut rx: tokio::sync::mpsc::Receiver<Load>) -> Result<()> {
    let mut db = NewDatabase::open(target).await?;
    while let Some(load) = rx.recv().await {
        match load {
            Load::Begin(table) => db.begin_table(&table).await?,
            Load::Data(buf) => db.push(&buf).await?,
        }
    }
    db.end_table().await?;
    db.close().await;
    Ok(())
}

/// Stream the archive into `target`, then read every table back and compare.
async fn load(
    path: &std::path::Path,
    key: crate::crypto::Key,
    target: &MyTarget,
    manifest: &Manifest,
    progress: Arc<dyn Progress>,
) -> Result<(u64, Vec<String>)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Feed>(8);
    let reader = feed_archive(path, key, Arc::new(AtomicU64::new(0)), tx);

    progress.report(&ProgressEvent::phase(Phase::Restore));
    let tables_total = manifest.tables.len() as u64;
    // The schema scripts on one connection; the tables' rows on LOADERS more, a table each at
    // a time (as myloader -t does), fed from the one archive stream.
    let loaded: Result<()> = async {
        let mut db = NewDatabase::open(target).await?;
        let mut senders = Vec::with_capacity(LOADERS);
        let mut workers = Vec::with_capacity(LOADERS);
        for _ in 0..LOADERS {
            let (tx, rx) = tokio::sync::mpsc::channel::<Load>(4);
            senders.push(tx);
            workers.push(loader(target, rx));
        }
        let dispatch = async {
            // Whatever happens, the loaders' channels close when dispatching ends, so a
            // loader never waits for rows that will not come.
            let result = async {
                let mut current: Option<(u32, usize)> = None;
                let mut done = 0u64;
                let mut turn = 0usize;
                let mut keyed = std::collections::HashSet::new();
                let mut post = None;
                let gone = || {
                    Error::new(
                        ErrorKind::Internal,
                        "A loader stopped",
                        "Please report this",
                    )
                };
                while let Some(feed) = rx.recv().await {
                    match feed {
                        Feed::Sql(path, sql) => {
                            if path == archive::POST_DATA {
                                // Run once every row is in (a format-3 archive has it
                                // before the data, a version-2 one after).
                                post = Some((path, sql));
                                continue;
                            }
                            db.run_script(&sql, &format!("{path} of the backup"))
                                .await?;
                            keyed = db.keyed_tables().await?;
                        }
                        Feed::Part(table) => {
                            let new_table = current.map(|(t, _)| t) != Some(table.index);
                            if new_table {
                                progress.report(&ProgressEvent {
                                    table: Some(table.display_name()),
                                    tables_done: done,
                                    tables_total,
                                    ..ProgressEvent::phase(Phase::Restore)
                                });
                                done += 1;
                            }
                            // A keyed table's parts go to the loaders in turn (a large table
                            // loads on both); another table's parts all go to one loader, in
                            // order, as its read-back order is the order of its inserts.
                            let slot = match current {
                                Some((t, s))
                                    if t == table.index && !keyed.contains(&table.name) =>
                                {
                                    s
                                }
                                _ => {
                                    turn += 1;
                                    turn % senders.len().max(1)
                                }
                            };
                            current = Some((table.index, slot));
                            let mut here = table.clone();
                            here.schema = target.database();
                            senders[slot]
                                .send(Load::Begin(here))
                                .await
                                .map_err(|_| gone())?;
                        }
                        Feed::Data(buf) => {
                            if let Some((_, slot)) = current {
                                senders[slot]
                                    .send(Load::Data(buf))
                                    .await
                                    .map_err(|_| gone())?;
                            }
                        }
                        Feed::PartEnd | Feed::LargeObject(..) | Feed::TableEnd(_) => {}
                    }
                }
                senders.clear();
                Ok::<_, Error>(post)
            }
            .await;
            senders.clear();
            result
        };
        let (post, loads) = tokio::join!(dispatch, futures_util::future::try_join_all(workers));
        loads?;
        if let Some((path, sql)) = post? {
            db.run_script(&sql, &format!("{path} of the backup"))
                .await?;
        }
        db.close().await;
        Ok(())
    }
    .await;
    // The reader's error (a damaged file) explains a loader that stopped early.
    drop(rx);
    let read = reader.await.map_err(join_error)?;
    let (manifest, end) = match (loaded, read) {
        (Ok(()), Ok((manifest, end, _, _))) => (manifest, end),
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
    };

    // Every table read back as the backup was read, and compared with the end record.
    progress.report(&ProgressEvent::phase(Phase::Verify));
    let (snapshot, _, readers) = target.open_snapshot(1).await?;
    let Some(mut reader) = readers.into_iter().next() else {
        let _ = target.close_snapshot(snapshot).await;
        return Err(Error::new(
            ErrorKind::Internal,
            "The snapshot opened no reader",
            "Nothing was changed; please report this",
        ));
    };
    let mut rows_all = 0u64;
    let checked: Result<()> = async {
        for t in &manifest.tables {
            let e = end
                .tables
                .iter()
                .find(|e| e.index == t.index)
                .ok_or_else(|| inconsistent(t, "is missing from the end record"))?;
            let mut here = t.clone();
            here.schema = target.database();
            let mut stream = reader.read_table(&here).await?;
            let (mut h, mut rows) = (Sha256::new(), 0u64);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                rows += archive::count_rows(&chunk);
                h.update(&chunk);
            }
            drop(stream);
            if rows != e.rows || hex::encode(h.finalize()) != e.sha256 {
                return Err(inconsistent(
                    t,
                    &format!("reads back from the new database as {rows} rows with a different checksum (the backup holds {} rows): the server changed values on the way in", e.rows),
                ));
            }
            rows_all += rows;
        }
        Ok(())
    }
    .await;
    reader.close().await;
    let _ = target.close_snapshot(snapshot).await;
    checked?;
    Ok((rows_all, Vec::new()))
}
