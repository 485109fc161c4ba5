//! Loading table data in a restore: parts streamed from the archive into `COPY FROM STDIN`, one
//! table after another into the live transaction, or on parallel connections into a new
//! database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::archive::{self, Manifest, TableManifest};
use crate::error::{Error, Result};
use crate::progress::{Phase, Progress, ProgressEvent};
use crate::source::postgres::{self, RestoreTxn};

use crate::jobs::restore::post_data::{build_post_data, run_rest, BuildQueue, Next, TableName};
use crate::jobs::restore::Feed;
use crate::jobs::{internal, Cancel};

#[allow(clippy::too_many_arguments)]
pub(in crate::jobs) async fn load_parts(
    txn: &mut RestoreTxn,
    fresh: bool,
    parallel: bool,
    rx: &mut tokio::sync::mpsc::Receiver<Feed>,
    count: &AtomicU64,
    total: Option<u64>,
    manifest: &Manifest,
    progress: &Arc<dyn Progress>,
    cancel: &Cancel,
) -> Result<HashMap<u32, u64>> {
    let mut rows: HashMap<u32, u64> = HashMap::new();
    let mut all_rows = 0u64;
    let mut post_data = None;
    let tables_total = manifest.tables.len() as u64;
    if parallel {
        return load_parallel(txn, rx, count, total, manifest, progress, cancel).await;
    }
    let report = |what: String, tables_done: usize, rows: u64| {
        progress.report(&ProgressEvent {
            phase: Phase::Restore,
            table: Some(what),
            tables_done: tables_done as u64,
            tables_total,
            rows,
            bytes: count.load(Ordering::Relaxed),
            total_bytes: total,
        });
    };
    while let Some(feed) = rx.recv().await {
        let table = match feed {
            Feed::Part(table) => table,
            // A replace changes the tables' rows; large objects are restored into a new or
            // empty database (said in the restore's result).
            Feed::LargeObject(oid, offset, data) => {
                if fresh {
                    txn.put_large_object(oid, offset, &data).await?;
                }
                continue;
            }
            // After the data (a format-3 archive has it before).
            Feed::Sql(path, sql) if path == archive::POST_DATA => {
                post_data = Some(sql);
                continue;
            }
            Feed::TableEnd(_) => continue,
            Feed::Sql(path, sql) => {
                // A replace keeps the target's schema; a fresh restore builds it.
                if fresh {
                    report(path.clone(), rows.len(), all_rows);
                    txn.run_sql(&sql, &format!("running {path} of the backup"))
                        .await?;
                }
                continue;
            }
            _ => return Err(internal("restore feed out of order")),
        };
        cancel.check()?;
        report(table.display_name(), rows.len(), all_rows);
        let target = txn.target().clone();
        let mut copy = txn.copy_in(&table).await?;
        let loaded = loop {
            match rx.recv().await {
                Some(Feed::Data(buf)) => {
                    copy.send(buf).await.map_err(|e| {
                        crate::source::postgres::db_error(&e, &target)
                            .context(format_args!("loading table {}", table.display_name()))
                    })?;
                }
                Some(Feed::PartEnd) => {
                    break copy.finish().await.map_err(|e| {
                        crate::source::postgres::db_error(&e, &target)
                            .context(format_args!("loading table {}", table.display_name()))
                    })?;
                }
                // The reader stopped early: its own error says why.
                Some(Feed::Part(_) | Feed::Sql(..) | Feed::LargeObject(..) | Feed::TableEnd(_))
                | None => {
                    let _ = copy
                        .abort("schoolvault: the backup could not be read")
                        .await;
                    return Ok(rows);
                }
            }
        };
        *rows.entry(table.index).or_default() += loaded;
        all_rows += loaded;
    }
    if let (true, Some(sql)) = (fresh, post_data) {
        report(archive::POST_DATA.to_string(), rows.len(), all_rows);
        txn.run_sql(
            &sql,
            &format!("running {} of the backup", archive::POST_DATA),
        )
        .await?;
    }
    Ok(rows)
}

/// What a loader of [`load_parallel`] is given.
pub(in crate::jobs) enum LoadJob {
    /// A part of a table's rows.
    Part(TableManifest, Vec<Vec<u8>>),
    /// The table of this index has no more parts.
    End(u32),
}

/// Load into a database this restore created, over several sessions, as pg_restore -j does:
/// pre-data on `txn`, the parts on two loaders at once, and each table's indexes and keys
/// built on two more as soon as its rows are committed (the archive says where a table ends;
/// a version-2 archive does not, and its builds start after all the data). (The futures run
/// side by side in this task, not spawned: sqlx's futures are not `Send` for every lifetime.)
#[allow(clippy::too_many_arguments)]
pub(in crate::jobs) async fn load_parallel(
    txn: &mut RestoreTxn,
    rx: &mut tokio::sync::mpsc::Receiver<Feed>,
    count: &AtomicU64,
    total: Option<u64>,
    manifest: &Manifest,
    progress: &Arc<dyn Progress>,
    cancel: &Cancel,
) -> Result<HashMap<u32, u64>> {
    let target = txn.target().clone();
    let names: HashMap<u32, TableName> = manifest
        .tables
        .iter()
        .map(|t| (t.index, (t.schema.clone(), t.name.clone())))
        .collect();
    let queue = BuildQueue::new(names.values().cloned());
    // Every part of a table goes to the same loader, in the archive's order. Two sessions
    // loading parts of one table at once interleave its rows on disk, and a test restore
    // (which reads each table back in its physical order and compares the SHA-256 with
    // end.json) then reported a good backup as damaged: every time for a table of two parts
    // (found by crates/cli/tests/faults/, whose school database has one).
    let mut senders = Vec::new();
    let mut loaders = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<LoadJob>(1);
        senders.push(tx);
        loaders.push((
            RestoreTxn::autocommit_relaxed(target.connect().await?, &target).await?,
            rx,
        ));
    }
    let tables_total = manifest.tables.len() as u64;
    let main = &mut *txn;
    let queue = &queue;
    let names = &names;
    let dispatch = async move {
        let mut tables_seen = std::collections::HashSet::new();
        // Which loader has each table still loading, how many tables each has open (a new
        // table goes to the one with fewer, so that a table's end usually lets its loader
        // commit), and how many bytes each was given (the tie-break).
        let mut owner: HashMap<u32, usize> = HashMap::new();
        let mut open = [0usize; 2];
        let mut given = [0u64; 2];
        while let Some(feed) = rx.recv().await {
            match feed {
                Feed::Sql(path, sql) if path == archive::POST_DATA => queue.add_script(&sql)?,
                Feed::LargeObject(oid, offset, data) => {
                    main.put_large_object(oid, offset, &data).await?;
                }
                Feed::Sql(path, sql) => {
                    main.run_sql(&sql, &format!("running {path} of the backup"))
                        .await?;
                }
                Feed::TableEnd(index) => match owner.remove(&index) {
                    Some(slot) => {
                        open[slot] -= 1;
                        if senders[slot].send(LoadJob::End(index)).await.is_err() {
                            break;
                        }
                    }
                    // No rows: the table pre-data created is all there is.
                    None => queue.loaded(names.get(&index).cloned())?,
                },
                Feed::Part(table) => {
                    cancel.check()?;
                    tables_seen.insert(table.index);
                    progress.report(&ProgressEvent {
                        phase: Phase::Restore,
                        table: Some(table.display_name()),
                        tables_done: tables_seen.len() as u64,
                        tables_total,
                        rows: 0,
                        bytes: count.load(Ordering::Relaxed),
                        total_bytes: total,
                    });
                    let mut data = Vec::new();
                    loop {
                        match rx.recv().await {
                            Some(Feed::Data(buf)) => data.push(buf),
                            Some(Feed::PartEnd) => break,
                            // The reader stopped early: its own error says why.
                            _ => {
                                queue.abandon();
                                return Ok(());
                            }
                        }
                    }
                    let slot = match owner.get(&table.index) {
                        Some(&slot) => slot,
                        None => {
                            let slot = usize::from((open[1], given[1]) < (open[0], given[0]));
                            open[slot] += 1;
                            owner.insert(table.index, slot);
                            slot
                        }
                    };
                    let bytes = data.iter().map(|b| b.len() as u64).sum::<u64>();
                    given[slot] += bytes;
                    queue.add_bytes(&(table.schema.clone(), table.name.clone()), bytes)?;
                    if senders[slot]
                        .send(LoadJob::Part(table, data))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                _ => return Err(internal("restore feed out of order")),
            }
        }
        drop(senders);
        Ok::<_, Error>(())
    };
    let loading = async {
        let loads = futures_util::future::try_join_all(
            loaders.into_iter().map(|(t, rx)| loader(t, rx, queue)),
        );
        let ((), loaded) = tokio::try_join!(dispatch, loads)?;
        queue.loading_finished()?;
        Ok::<_, Error>(loaded)
    };
    let (loaded, ()) = tokio::try_join!(loading, build_post_data(&target, queue, progress))?;
    let mut rows: HashMap<u32, u64> = HashMap::new();
    for part in loaded {
        for (k, v) in part {
            *rows.entry(k).or_default() += v;
        }
    }
    run_rest(&target, queue.take_rest()?, progress).await?;
    // The loaders and builders committed without waiting for the disk.
    txn.make_durable().await?;
    Ok(rows)
}

/// One loader of [`load_parallel`]: `COPY` each part it is given, in a transaction that
/// first empties each of its tables and commits when none of its tables is still loading
/// (then the queue may build their indexes).
pub(in crate::jobs) async fn loader(
    mut txn: RestoreTxn,
    mut rx: tokio::sync::mpsc::Receiver<LoadJob>,
    queue: &BuildQueue,
) -> Result<HashMap<u32, u64>> {
    // COPY into a table emptied (or created) in the same transaction appends the rows in the
    // order given (the server skips the free-space map); into a table created before, it may
    // put a row into room left on an earlier page. A test restore reads each table back in
    // its physical order to compare the SHA-256 with end.json: a good backup of a table whose
    // rows vary in size (the ERP's audit_logs) was reported as damaged.
    let mut in_txn = false;
    // The tables of the open transaction, and which of them are still loading.
    let mut tables: Vec<TableName> = Vec::new();
    let mut loading = std::collections::HashSet::new();
    let mut rows: HashMap<u32, u64> = HashMap::new();
    while let Some(job) = rx.recv().await {
        match job {
            LoadJob::Part(table, data) => {
                if !in_txn {
                    txn.run_sql("BEGIN", "loading the data").await?;
                    in_txn = true;
                }
                if !rows.contains_key(&table.index) {
                    let sql = format!(
                        "TRUNCATE ONLY {}",
                        postgres::qualified(&table.schema, &table.name)
                    );
                    txn.run_sql(&sql, &format!("loading table {}", table.display_name()))
                        .await?;
                    loading.insert(table.index);
                    tables.push((table.schema.clone(), table.name.clone()));
                }
                let n = txn.copy_part(&table, data).await?;
                *rows.entry(table.index).or_default() += n;
            }
            LoadJob::End(index) => {
                loading.remove(&index);
                if in_txn && loading.is_empty() {
                    txn.run_sql("COMMIT", "loading the data").await?;
                    in_txn = false;
                    queue.loaded(tables.drain(..))?;
                }
            }
        }
    }
    if in_txn {
        txn.run_sql("COMMIT", "loading the data").await?;
        queue.loaded(tables.drain(..))?;
    }
    txn.rollback().await;
    Ok(rows)
}

/// One builder of [`build_post_data`]: run statements from the queue as they become ready,
/// until none is left.
pub(in crate::jobs) async fn builder(
    mut txn: RestoreTxn,
    queue: &BuildQueue,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let mut done = None;
    loop {
        // Made before looking, so that a change in between still wakes it.
        let changed = queue.changed.notified();
        let build = match queue.next(done.take())? {
            Next::Run(build) => build,
            Next::Wait => {
                changed.await;
                continue;
            }
            Next::Finished => break,
        };
        if build.report {
            progress.report(&ProgressEvent {
                table: Some(build.sql.chars().take(80).collect()),
                ..ProgressEvent::phase(Phase::Restore)
            });
        }
        let stmt = build.sql.clone();
        done = Some(build);
        // Two sessions altering related tables can deadlock (a foreign-key cycle); the server
        // then aborts one statement, which is simply run again.
        let mut tries = 0;
        loop {
            match txn.run_sql(&stmt, "building the indexes and keys").await {
                Err(e) if e.sqlstate() == Some("40P01") && tries < 10 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * tries)).await;
                }
                other => break other?,
            }
        }
    }
    txn.rollback().await;
    Ok(())
}
