//! Making a backup: the snapshot coordinator (which captures the schema while the export has
//! already begun), the export workers that stream each table's `COPY` output in 1 MiB batches
//! into gzipped parts, and the encrypting writer they share.
//! A worker holds at most a few batches and one part's compressed bytes, so memory does not
//! grow with the database. This file owns the run (snapshot, file, end record, catalog);
//! `tables` owns the rows' way from a reader into the archive.

mod tables;

use tables::{
    export_large_objects, export_small_tables, export_worker, BufferPool, Counters, ExportShared,
    Sink,
};

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;

use crate::archive::{
    self, gzip_tar_entry, gzip_tar_trailer, ArchiveWriter, BackupKind, End, Header, Manifest,
    TableEnd, EXTENSION,
};
use crate::catalog::Operation;
use crate::catalog::{BackupRecord, BackupStatus};
use crate::error::{Error, Result};
use crate::progress::{Phase, Progress, ProgressEvent};
use crate::source::postgres::PgTarget;
use crate::source::{Source, TableReader};
use crate::storage::PartialFile;

use crate::jobs::scratch::{sweep_created, sweep_partials};
use crate::jobs::{internal, join_error, run_record, Cancel, Locked, Vault, APP_VERSION};

/// How to make a backup.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Manual, scheduled or safety.
    pub kind: BackupKind,
    /// Export workers (database connections), at least 1.
    pub jobs: usize,
    /// gzip level, 1-9.
    pub compression_level: u32,
    /// Stops the job.
    pub cancel: Cancel,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            kind: BackupKind::Manual,
            jobs: 2,
            compression_level: 6,
            cancel: Cancel::default(),
        }
    }
}

/// What a backup made.
#[derive(Debug, Clone, Serialize)]
pub struct BackupOutcome {
    /// The new backup, as the catalog now lists it.
    pub backup: BackupRecord,
    /// True when no key existed and one was generated (save a recovery copy!).
    pub key_generated: bool,
    /// Database objects the backup does not reproduce (listed in its manifest).
    pub unsupported: Vec<String>,
    /// What the person should know about this backup, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Make a backup of `target` into the vault.
///
/// # Errors
/// Connection and permission errors (naming the table), key and disk errors. No file is left
/// behind and nothing is listed when it fails.
pub async fn backup(
    vault: &Vault,
    target: &PgTarget,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome> {
    let vault = vault.lock()?;
    backup_locked(&vault, target, opts, progress).await
}

/// Make a backup of any [`Source`] (a MariaDB/MySQL database…) into the vault, under the run
/// lock, recorded in the history. [`backup`] is this for PostgreSQL, with its own upkeep
/// (leftover scratch databases); the attended run (watchdog, emails, offsite copies) is
/// PostgreSQL's for now.
///
/// # Errors
/// As [`backup`].
pub async fn backup_source<S: Source>(
    vault: &Vault,
    source: &S,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome> {
    let vault = vault.lock()?;
    backup_source_locked(&vault, source, opts, progress).await
}

/// [`backup_source`] for a run that already holds the lock (a restore's safety backup).
pub(super) async fn backup_source_locked<S: Source>(
    vault: &Locked<'_>,
    source: &S,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome> {
    let started = Utc::now();
    progress.report(&ProgressEvent::phase(Phase::Connect));
    sweep_partials(vault);
    let result = export(vault, source, opts, progress, started).await;
    let id = result.as_ref().ok().map(|o| o.backup.id.clone());
    vault
        .record_run(run_record(
            Operation::Backup,
            Some(opts.kind),
            started,
            &result,
            id,
            None,
        ))
        .await;
    result
}

/// [`backup`] for a run that already holds the lock (a scheduled slot, a restore's safety
/// backup).
pub(super) async fn backup_locked(
    vault: &Locked<'_>,
    target: &PgTarget,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome> {
    // PostgreSQL's own upkeep first: scratch databases a killed run left.
    sweep_created(vault, target).await;
    backup_source_locked(vault, target, opts, progress).await
}

pub(super) fn backup_id(at: DateTime<Utc>) -> String {
    format!(
        "{}-{:04x}",
        at.format("%Y%m%d-%H%M%S"),
        rand::thread_rng().gen::<u16>()
    )
}

pub(super) fn file_stem(database: &str) -> String {
    let s: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    if s.is_empty() {
        "backup".into()
    } else {
        s
    }
}

/// Export `source`'s snapshot into a new archive in the vault and list it: written against the
/// [`Source`] traits only, the same for every database engine.
pub(super) async fn export<S: Source>(
    vault: &Vault,
    source: &S,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
    started: DateTime<Utc>,
) -> Result<BackupOutcome> {
    let t0 = Instant::now();
    let (mut coordinator, mut snapshot, mut readers) =
        source.open_snapshot(opts.jobs.clamp(1, 16)).await?;
    progress.report(&ProgressEvent::phase(Phase::Snapshot));
    // One reader per table at most (one stays for the large objects of a database without
    // tables).
    let keep = snapshot.tables.len().max(1).min(readers.len());
    for extra in readers.split_off(keep) {
        extra.close().await;
    }
    let id = backup_id(started);
    let name = format!("{}-{id}.{EXTENSION}", file_stem(&snapshot.source.database));
    let started_file = vault
        .keys
        .for_writing()
        .and_then(|k| Ok((k, PartialFile::create(&vault.dir, &name)?)));
    let (write_key, (partial, file)) = match started_file {
        Ok(s) => s,
        Err(e) => {
            close_all(source, coordinator, readers).await;
            return Err(e);
        }
    };

    let header = Header {
        cipher: String::new(),
        chunk_size: 0,
        nonce_prefix: String::new(),
        key_fingerprint: String::new(),
        compression: String::new(),
        created_at: started,
        app_version: APP_VERSION.into(),
        backup_id: id.clone(),
        kind: opts.kind,
        source: snapshot.source.clone(),
    };
    let writer = match ArchiveWriter::create(file, &write_key.key, header) {
        Ok(w) => w,
        Err(e) => {
            close_all(source, coordinator, readers).await;
            return Err(e);
        }
    };
    let mtime = snapshot.taken_at.timestamp().max(0) as u64;
    let level = opts.compression_level.clamp(1, 9);

    let shared = Arc::new(ExportShared {
        queue: Mutex::new(snapshot.tables.iter().cloned().collect()),
        sink: Mutex::new(Sink {
            writer,
            open: false,
            abandoned: false,
            held: Vec::new(),
            held_bytes: 0,
        }),
        opened: Condvar::new(),
        counters: Counters {
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            tables_done: AtomicU64::new(0),
            tables_total: snapshot.tables.len() as u64,
            total_bytes: snapshot.tables.iter().map(|t| t.estimated_bytes).sum(),
        },
        progress: progress.clone(),
        level,
        mtime,
        cancel: opts.cancel.clone(),
        pool: BufferPool::default(),
    });
    // The large objects are read at the end on the coordinator's connection where it can
    // read (the workers close theirs as they finish), else on the first worker's.
    let coordinator_reads = source.snapshot_reader(&mut coordinator).is_some();
    // The schema is read on the coordinator's connection while the workers export (a second
    // or so of catalog queries on a large schema, when both cores would otherwise wait): the
    // parts they finish meanwhile are held, and written after the manifest and pre-data.
    // Then the coordinator exports the small tables from the end of the queue, while the
    // workers' large tables keep both cores busy: a small table costs round trips, not CPU,
    // and a hundred of them at the end of a backup left the cores idle.
    let capture = async {
        source
            .capture_schema(&mut coordinator, &mut snapshot)
            .await?;
        let manifest = Manifest {
            format: archive::FORMAT_VERSION,
            backup_id: id.clone(),
            kind: opts.kind,
            snapshot_at: snapshot.taken_at,
            source: snapshot.source.clone(),
            tables: snapshot.tables.iter().map(|t| t.manifest.clone()).collect(),
            sequences: snapshot.sequences.clone(),
            schema: true,
            unsupported: snapshot.unsupported.clone(),
            privileges: snapshot.privileges.clone(),
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| internal(&e.to_string()))?;
        let entry = |path: &str, data: &[u8]| {
            gzip_tar_entry(path, data, mtime, level).map_err(|e| Error::io("compressing", &e))
        };
        let first = [
            entry("manifest.json", &json)?,
            entry(archive::PRE_DATA, snapshot.pre_data.as_bytes())?,
            // Before the data (format 3), so that a restore can build each table's indexes
            // as soon as its rows are in.
            entry(archive::POST_DATA, snapshot.post_data.as_bytes())?,
        ];
        shared.open_sink(&first)?;
        let small = match source.snapshot_reader(&mut coordinator) {
            Some(reader) => export_small_tables(reader, &shared).await?,
            None => Vec::new(),
        };
        Ok::<_, Error>((manifest, small))
    };
    // Each reader on a task of its own, so that the two runtime threads hash and count rows
    // side by side. On a failure the others stop where they are (the set aborts them) and
    // their connections are dropped.
    let mut set = tokio::task::JoinSet::new();
    for (i, reader) in readers.into_iter().enumerate() {
        let shared = shared.clone();
        let keep = i == 0 && !coordinator_reads;
        set.spawn(async move { export_worker(reader, &shared, keep).await });
    }
    let exports = async move {
        let mut done = Vec::with_capacity(set.len());
        while let Some(worker) = set.join_next().await {
            done.push(worker.map_err(join_error)??);
        }
        Ok::<_, Error>(done)
    };
    let outcome = match tokio::try_join!(capture, exports) {
        Ok(((manifest, small), exported)) => {
            let (kept, mut ends): (Vec<_>, Vec<_>) = exported.into_iter().unzip();
            let mut readers: Vec<_> = kept.into_iter().flatten().collect();
            ends.push(small);
            // Large objects are data too: their bytes, part by part, from the same snapshot.
            let reader = match source.snapshot_reader(&mut coordinator) {
                Some(reader) => Some(reader),
                None => readers.first_mut(),
            };
            let large = match reader {
                Some(reader) => export_large_objects(reader, &shared).await,
                None => Ok(Vec::new()),
            };
            match large {
                Ok(l) => Ok((manifest, ends, l, readers)),
                Err(e) => Err((e, readers)),
            }
        }
        Err(e) => Err((e, Vec::new())),
    };
    let (manifest, exported, large_objects, readers) = match outcome {
        Ok(e) => e,
        Err((e, readers)) => {
            // A part waiting for the manifest must not wait for ever.
            shared.abandon();
            close_all(source, coordinator, readers).await;
            return Err(e);
        }
    };
    for reader in readers {
        reader.close().await;
    }

    progress.report(&ProgressEvent::phase(Phase::Finish));
    let mut tables: Vec<TableEnd> = exported.into_iter().flatten().collect();
    tables.sort_by_key(|t| t.index);
    let end = End {
        total_rows: tables.iter().map(|t| t.rows).sum(),
        total_bytes: tables.iter().map(|t| t.bytes).sum(),
        tables,
        finished_at: Utc::now(),
        large_objects,
    };
    let shared = Arc::try_unwrap(shared).map_err(|_| internal("export still running"))?;
    let mut writer = shared
        .sink
        .into_inner()
        .map_err(|_| internal("a worker panicked"))?
        .writer;
    let json = serde_json::to_vec_pretty(&end).map_err(|e| internal(&e.to_string()))?;
    let cancel = opts.cancel.clone();
    // The file is finished and synced to disk while the coordinator ends its transaction.
    // That COMMIT is also the proof that the snapshot's locks were held to the end (had the
    // coordinator's session been killed, a TRUNCATE or a table rewrite could have emptied a
    // table the snapshot had not read yet), so the file is renamed only after both.
    let finishing = tokio::task::spawn_blocking(move || {
        writer.write_member(
            &gzip_tar_entry("end.json", &json, mtime, level)
                .map_err(|e| Error::io("compressing", &e))?,
        )?;
        writer.write_member(&gzip_tar_trailer().map_err(|e| Error::io("compressing", &e))?)?;
        cancel.check()?;
        let written = writer.finish()?;
        written
            .file
            .sync_data()
            .map_err(|e| Error::io("syncing the backup file", &e))?;
        Ok::<_, Error>(written)
    });
    let (closed, written) = tokio::join!(source.close_snapshot(coordinator), finishing);
    let written = written.map_err(join_error)??;
    closed?;
    let path = partial.commit(written.file)?;

    let record = BackupRecord {
        id,
        path,
        created_at: started,
        kind: opts.kind,
        status: BackupStatus::Complete,
        size: written.size,
        sha256: written.sha256,
        key_fingerprint: write_key.key.fingerprint().to_string(),
        engine: manifest.source.engine.clone(),
        server_version: manifest.source.server_version.clone(),
        database: manifest.source.database.clone(),
        tables: manifest.tables.len() as u64,
        rows: end.total_rows,
        duration_ms: t0.elapsed().as_millis() as u64,
        verified_at: None,
        verify_ok: None,
        verify_message: None,
    };
    vault.catalog.put(&record).await?;
    Ok(BackupOutcome {
        backup: record,
        key_generated: write_key.generated,
        unsupported: manifest.unsupported.clone(),
        warnings: snapshot.warnings.clone(),
    })
}

/// End the snapshot and its readers after a failure.
async fn close_all<S: Source>(source: &S, coordinator: S::Snapshot, readers: Vec<S::Reader>) {
    for reader in readers {
        reader.close().await;
    }
    let _ = source.close_snapshot(coordinator).await;
}
