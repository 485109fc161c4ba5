//! Restoring a MariaDB/MySQL backup into a new database on a MariaDB/MySQL server: the schema
//! before the data, the rows, the views, triggers and events after them, then every table read
//! back and compared with `end.json` (rows and SHA-256 of its data), so a value the server
//! changed on the way in fails the restore. Anything that fails drops the new database: the
//! server is left as it was.

use std::fs::File;
use std::io::BufReader;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::archive::{self, read_preamble, CountingReader, End, Item, Manifest};
use crate::catalog::Operation;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Phase, Progress, ProgressEvent};
use crate::source::mysql::{create_database, drop_database, MyTarget, NewDatabase};
use crate::source::{Source, TableReader};

use crate::jobs::reading::{inconsistent, is_v2, open_archive, read_manifest, TableTally};
use crate::jobs::restore::{Feed, RestoreOutcome};
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
            &result,
            id,
            summary,
        ))
        .await;
    result
}

async fn restore_inner(
    vault: &Locked<'_>,
    what: &str,
    server: &MyTarget,
    name: &str,
    progress: Arc<dyn Progress>,
) -> Result<RestoreOutcome> {
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
    progress.report(&ProgressEvent::phase(Phase::Connect));
    let target = create_database(server, name).await?;
    let t0 = Instant::now();
    let result = load(&path, key, &target, &manifest, progress).await;
    match result {
        Ok((rows, warnings)) => Ok(RestoreOutcome {
            backup_id: manifest.backup_id.clone(),
            target: target.describe(),
            tables: manifest.tables.len() as u64,
            rows,
            duration_ms: t0.elapsed().as_millis() as u64,
            safety_backup: None,
            format: archive::FORMAT_VERSION,
            v1_tables: None,
            warnings,
            checked: Vec::new(),
            large_objects: Vec::new(),
        }),
        Err(e) => {
            drop_database(server, name).await;
            Err(e)
        }
    }
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
    let reader_path = path.to_path_buf();
    let count = Arc::new(AtomicU64::new(0));
    let reader = tokio::task::spawn_blocking(move || -> Result<(Manifest, End)> {
        let file = File::open(&reader_path)
            .map_err(|e| Error::io(format_args!("opening {}", reader_path.display()), &e))?;
        let mut r = BufReader::with_capacity(1 << 20, CountingReader::new(file, count));
        let pre = read_preamble(&mut r)?;
        let mut tally = TableTally::default();
        let gone = || {
            Error::new(
                ErrorKind::Cancelled,
                "The restore stopped",
                "Nothing was changed",
            )
        };
        let (manifest, end) = archive::walk(archive::plaintext(r, &pre, &key), |item| {
            match item {
                Item::Schema { path, sql } => {
                    tx.blocking_send(Feed::Sql(path.to_string(), sql))
                        .map_err(|_| gone())?;
                }
                Item::Part { table, part, data } => {
                    tally.start_part(table, part)?;
                    tx.blocking_send(Feed::Part(table.clone()))
                        .map_err(|_| gone())?;
                    loop {
                        let mut buf = vec![0u8; 256 << 10];
                        let n = data.read(&mut buf).map_err(|e| archive::read_error(&e))?;
                        if n == 0 {
                            break;
                        }
                        buf.truncate(n);
                        tally.update(table.index, &buf);
                        tx.blocking_send(Feed::Data(buf)).map_err(|_| gone())?;
                    }
                    tx.blocking_send(Feed::PartEnd).map_err(|_| gone())?;
                }
                Item::LargeObject { .. } | Item::Manifest(_) => {}
            }
            Ok(())
        })?;
        tally.check(&manifest, &end)?;
        Ok((manifest, end))
    });

    progress.report(&ProgressEvent::phase(Phase::Restore));
    let tables_total = manifest.tables.len() as u64;
    let loaded: Result<()> = async {
        let mut db = NewDatabase::open(target).await?;
        let mut current: Option<u32> = None;
        let mut done = 0u64;
        while let Some(feed) = rx.recv().await {
            match feed {
                Feed::Sql(path, sql) => {
                    db.end_table().await?;
                    db.run_script(&sql, &format!("{path} of the backup"))
                        .await?;
                }
                Feed::Part(table) => {
                    if current != Some(table.index) {
                        db.end_table().await?;
                        progress.report(&ProgressEvent {
                            table: Some(table.display_name()),
                            tables_done: done,
                            tables_total,
                            ..ProgressEvent::phase(Phase::Restore)
                        });
                        done += 1;
                        current = Some(table.index);
                        let mut here = table.clone();
                        here.schema = target.database();
                        db.begin_table(&here).await?;
                    }
                }
                Feed::Data(buf) => db.push(&buf).await?,
                Feed::PartEnd | Feed::LargeObject(..) => {}
            }
        }
        db.end_table().await?;
        db.close().await;
        Ok(())
    }
    .await;
    // The reader's error (a damaged file) explains a loader that stopped early.
    drop(rx);
    let read = reader.await.map_err(join_error)?;
    let (manifest, end) = match (loaded, read) {
        (Ok(()), Ok(r)) => r,
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
    };

    // Every table read back as the backup was read, and compared with the end record.
    progress.report(&ProgressEvent::phase(Phase::Verify));
    let (snapshot, contents) = target.open_snapshot(1).await?;
    let mut reader = match target.join_snapshot(&contents.id).await {
        Ok(r) => r,
        Err(e) => {
            let _ = target.close_snapshot(snapshot).await;
            return Err(e);
        }
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
                rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
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
