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

use crate::jobs::restore::post_data::{run_post_data_parallel, BuildQueue, TableName};
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
                Some(Feed::Part(_) | Feed::Sql(..) | Feed::LargeObject(..)) | None => {
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
    Ok(rows)
}

pub(in crate::jobs) type LoadJob = (TableManifest, Vec<Vec<u8>>);

/// Load into a database this restore created, over three sessions: pre-data on `txn`, the
/// parts on two loaders at once, then post-data with indexes built two at a time. (The
/// futures run side by side in this task, not spawned: sqlx's futures are not `Send` for
/// every lifetime.)
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
    let dispatch = async move {
        let mut post_data = None;
        let mut tables_seen = std::collections::HashSet::new();
        // Which loader has each table, and how many bytes each was given (a new table goes
        // to the one with less).
        let mut owner: HashMap<u32, usize> = HashMap::new();
        let mut given = [0u64; 2];
        // Each table's bytes, for the order of the index builds.
        let mut sizes: HashMap<TableName, u64> = HashMap::new();
        while let Some(feed) = rx.recv().await {
            match feed {
                Feed::Sql(path, sql) if path == archive::POST_DATA => post_data = Some(sql),
                Feed::LargeObject(oid, offset, data) => {
                    main.put_large_object(oid, offset, &data).await?;
                }
                Feed::Sql(path, sql) => {
                    main.run_sql(&sql, &format!("running {path} of the backup"))
                        .await?;
                }
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
                            _ => return Ok((None, sizes)),
                        }
                    }
                    let slot = *owner
                        .entry(table.index)
                        .or_insert_with(|| usize::from(given[1] < given[0]));
                    let bytes = data.iter().map(|b| b.len() as u64).sum::<u64>();
                    given[slot] += bytes;
                    *sizes
                        .entry((table.schema.clone(), table.name.clone()))
                        .or_default() += bytes;
                    if senders[slot].send((table, data)).await.is_err() {
                        break;
                    }
                }
                _ => return Err(internal("restore feed out of order")),
            }
        }
        drop(senders);
        Ok::<_, Error>((post_data, sizes))
    };
    let loads =
        futures_util::future::try_join_all(loaders.into_iter().map(|(t, rx)| loader(t, rx)));
    let ((post_data, sizes), loaded) = tokio::try_join!(dispatch, loads)?;
    let mut rows: HashMap<u32, u64> = HashMap::new();
    for part in loaded {
        for (k, v) in part {
            *rows.entry(k).or_default() += v;
        }
    }
    if let Some(sql) = post_data {
        run_post_data_parallel(&target, &sql, &sizes, progress).await?;
    }
    // The loaders and builders committed without waiting for the disk.
    txn.make_durable().await?;
    Ok(rows)
}

/// One loader of [`load_parallel`]: `COPY` each part it is given, in one transaction that
/// first empties each of its tables.
pub(in crate::jobs) async fn loader(
    mut txn: RestoreTxn,
    mut rx: tokio::sync::mpsc::Receiver<LoadJob>,
) -> Result<HashMap<u32, u64>> {
    // COPY into a table emptied (or created) in the same transaction appends the rows in the
    // order given (the server skips the free-space map); into a table created before, it may
    // put a row into room left on an earlier page. A test restore reads each table back in
    // its physical order to compare the SHA-256 with end.json: a good backup of a table whose
    // rows vary in size (the ERP's audit_logs) was reported as damaged.
    txn.run_sql("BEGIN", "loading the data").await?;
    let mut emptied = std::collections::HashSet::new();
    let mut rows: HashMap<u32, u64> = HashMap::new();
    while let Some((table, data)) = rx.recv().await {
        if emptied.insert(table.index) {
            let sql = format!(
                "TRUNCATE ONLY {}",
                postgres::qualified(&table.schema, &table.name)
            );
            txn.run_sql(&sql, &format!("loading table {}", table.display_name()))
                .await?;
        }
        let n = txn.copy_part(&table, data).await?;
        *rows.entry(table.index).or_default() += n;
    }
    txn.commit().await?;
    Ok(rows)
}

/// One builder of [`run_post_data_parallel`]: run statements from the queue until it is empty.
pub(in crate::jobs) async fn builder(
    mut txn: RestoreTxn,
    queue: &BuildQueue,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let mut done = None;
    while let Some((stmt, table)) = queue.next(done.take())? {
        done = table;
        progress.report(&ProgressEvent {
            table: Some(stmt.chars().take(80).collect()),
            ..ProgressEvent::phase(Phase::Restore)
        });
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
