//! Making a backup: the snapshot coordinator (which captures the schema while the export has
//! already begun), the export workers that stream each table's `COPY` output in 1 MiB batches
//! into gzipped parts, and the encrypting writer they share.
//! A worker holds at most a few batches and one part's compressed bytes, so memory does not
//! grow with the database.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::archive::{
    self, gzip_tar_entry, gzip_tar_trailer, part_path, ArchiveWriter, BackupKind, End, Header,
    Manifest, MemberCompressor, TableEnd, TableManifest, EXTENSION, PART_SIZE,
};
use crate::catalog::Operation;
use crate::catalog::{BackupRecord, BackupStatus};
use crate::error::{Error, Result};
use crate::progress::{Phase, Progress, ProgressEvent};
use crate::source::postgres::PgTarget;
use crate::source::{Source, TableInfo, TableReader};
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

pub(super) struct Counters {
    rows: AtomicU64,
    bytes: AtomicU64,
    tables_done: AtomicU64,
    tables_total: u64,
    total_bytes: u64,
}

/// Every large object of the snapshot into the archive (`large-objects/<oid>/<part>.bin`,
/// [`archive::LARGE_OBJECT_PART`] bytes at most each, so memory stays bounded), with what
/// `end.json` records of each.
async fn export_large_objects<R: TableReader>(
    worker: &mut R,
    shared: &ExportShared,
) -> Result<Vec<archive::LargeObjectEnd>> {
    let oids = worker.large_objects().await?;
    let mut ends = Vec::with_capacity(oids.len());
    for (i, oid) in oids.iter().copied().enumerate() {
        shared.cancel.check()?;
        shared.progress.report(&ProgressEvent {
            table: Some(format!("large object {} of {}", i + 1, oids.len())),
            ..ProgressEvent::phase(Phase::Export)
        });
        let (mut hasher, mut size, mut part) = (Sha256::new(), 0u64, 0u32);
        loop {
            let bytes = worker
                .read_large_object(oid, size, archive::LARGE_OBJECT_PART)
                .await?;
            if bytes.is_empty() && part > 0 {
                break;
            }
            hasher.update(&bytes);
            let member = gzip_tar_entry(
                &archive::large_object_path(oid, part),
                &bytes,
                shared.mtime,
                shared.level,
            )
            .map_err(|e| Error::io("compressing", &e))?;
            shared
                .sink
                .lock()
                .map_err(|_| internal("a worker panicked"))?
                .writer
                .write_member(&member)?;
            size += bytes.len() as u64;
            part += 1;
            if bytes.len() < archive::LARGE_OBJECT_PART {
                break;
            }
        }
        ends.push(archive::LargeObjectEnd {
            oid,
            size,
            parts: part,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    Ok(ends)
}

/// The archive being written, shared by the workers. Until its manifest and pre-data are
/// written (the schema is still being captured), finished parts are held here, up to
/// [`HOLD_LIMIT`] bytes, then written in the order they came.
pub(super) struct Sink {
    writer: ArchiveWriter,
    /// The manifest and pre-data are written: parts go straight to the writer.
    open: bool,
    /// The backup failed before the sink opened: a part waiting for it gives up.
    abandoned: bool,
    held: Vec<Vec<u8>>,
    held_bytes: usize,
}

/// The compressed bytes of finished parts held while the schema is captured (a few parts
/// per worker); a worker with more waits for the sink to open.
const HOLD_LIMIT: usize = 12 << 20;

impl ExportShared {
    /// Write `first` (the manifest, the pre-data), then every part held, and open the sink.
    fn open_sink(&self, first: &[Vec<u8>]) -> Result<()> {
        let mut sink = self.sink.lock().map_err(|_| internal("writer poisoned"))?;
        for member in first {
            sink.writer.write_member(member)?;
        }
        for member in std::mem::take(&mut sink.held) {
            sink.writer.write_member(&member)?;
        }
        sink.held_bytes = 0;
        sink.open = true;
        drop(sink);
        self.opened.notify_all();
        Ok(())
    }

    /// The backup failed: wake any part waiting for the sink to open.
    fn abandon(&self) {
        if let Ok(mut sink) = self.sink.lock() {
            sink.abandoned = true;
        }
        self.opened.notify_all();
    }

    /// Write a part (its tar header and its compressed body): now, or held until the sink
    /// opens; the body's buffer goes back to the pool once written.
    fn write_part(&self, head: Vec<u8>, body: Vec<u8>) -> Result<()> {
        if let Some([_, body]) = self.write_members([head, body])? {
            BufferPool::give(&self.pool.parts, body);
        }
        Ok(())
    }

    /// Write a table's end record (after its last part, which is written or held by now).
    fn write_table_end(&self, end: &TableEnd) -> Result<()> {
        let json = serde_json::to_vec(end).map_err(|e| internal(&e.to_string()))?;
        let member = gzip_tar_entry(&archive::table_end_path(end.index), &json, self.mtime, 1)
            .map_err(|e| Error::io("compressing", &e))?;
        self.write_members([member]).map(|_| ())
    }

    /// Write whole gzip members in order, now (returning them, to be reused) or held until
    /// the sink opens (returning `None`).
    fn write_members<const N: usize>(&self, members: [Vec<u8>; N]) -> Result<Option<[Vec<u8>; N]>> {
        let mut sink = self.sink.lock().map_err(|_| internal("writer poisoned"))?;
        while !sink.open && !sink.abandoned && sink.held_bytes >= HOLD_LIMIT {
            sink = self
                .opened
                .wait(sink)
                .map_err(|_| internal("writer poisoned"))?;
        }
        if sink.abandoned {
            return Err(internal(
                "the backup stopped before its manifest was written",
            ));
        }
        if !sink.open {
            for member in members {
                sink.held_bytes += member.len();
                sink.held.push(member);
            }
            return Ok(None);
        }
        for member in &members {
            sink.writer.write_member(member)?;
        }
        Ok(Some(members))
    }
}

pub(super) struct ExportShared {
    queue: Mutex<VecDeque<TableInfo>>,
    sink: Mutex<Sink>,
    /// Signalled when the sink opens (or the backup is abandoned).
    opened: Condvar,
    counters: Counters,
    progress: Arc<dyn Progress>,
    level: u32,
    mtime: u64,
    cancel: Cancel,
    /// Row batches and compressed parts, reused so that memory stays what the first large
    /// table made it, whatever comes after (fresh buffers fragment the allocator's arenas).
    pool: BufferPool,
}

#[derive(Default)]
pub(super) struct BufferPool {
    batches: Mutex<Vec<Vec<u8>>>,
    parts: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    fn take(list: &Mutex<Vec<Vec<u8>>>, capacity: usize) -> Vec<u8> {
        list.lock()
            .ok()
            .and_then(|mut l| l.pop())
            .unwrap_or_else(|| Vec::with_capacity(capacity))
    }
    fn give(list: &Mutex<Vec<Vec<u8>>>, mut buf: Vec<u8>) {
        buf.clear();
        if let Ok(mut l) = list.lock() {
            if l.len() < 64 {
                l.push(buf);
            }
        }
    }
}

impl ExportShared {
    fn report(&self, table: &str) {
        let c = &self.counters;
        let bytes = c.bytes.load(Ordering::Relaxed);
        self.progress.report(&ProgressEvent {
            phase: Phase::Export,
            table: Some(table.to_string()),
            tables_done: c.tables_done.load(Ordering::Relaxed),
            tables_total: c.tables_total,
            rows: c.rows.load(Ordering::Relaxed),
            bytes,
            // The catalog's sizes are an estimate (COPY text can be larger than the table on
            // disk: bytea, TOAST-compressed values); once passed, the total is not known and a
            // bar shows no fraction rather than stand full while tables remain.
            total_bytes: (bytes < c.total_bytes).then_some(c.total_bytes),
        });
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

/// Tables up to this size on disk are the coordinator's to export, from the end of the queue:
/// one batch each, never a part of their own in flight beside the workers' larger ones.
const SMALL_TABLE: u64 = 64 << 10;

/// Export tables from the front of the queue (the largest first) until it is empty; then
/// close the reader, or `keep` it for the large objects.
pub(super) async fn export_worker<R: TableReader>(
    mut worker: R,
    shared: &Arc<ExportShared>,
    keep: bool,
) -> Result<(Option<R>, Vec<TableEnd>)> {
    let done = export_tables(&mut worker, shared, |queue| queue.pop_front()).await?;
    if keep {
        return Ok((Some(worker), done));
    }
    worker.close().await;
    Ok((None, done))
}

/// Export small tables from the end of the queue (the smallest first) until a larger one or
/// none is left.
async fn export_small_tables<R: TableReader>(
    reader: &mut R,
    shared: &Arc<ExportShared>,
) -> Result<Vec<TableEnd>> {
    export_tables(reader, shared, |queue| {
        if queue.back()?.estimated_bytes <= SMALL_TABLE {
            queue.pop_back()
        } else {
            None
        }
    })
    .await
}

/// Export the tables `next` takes from the queue, each to its end record.
async fn export_tables<R: TableReader>(
    worker: &mut R,
    shared: &Arc<ExportShared>,
    next: impl Fn(&mut VecDeque<TableInfo>) -> Option<TableInfo>,
) -> Result<Vec<TableEnd>> {
    let mut done = Vec::new();
    loop {
        shared.cancel.check()?;
        let table = next(
            &mut *shared
                .queue
                .lock()
                .map_err(|_| internal("queue poisoned"))?,
        );
        let Some(table) = table else { break };
        let end = export_table(worker, &table.manifest, shared).await?;
        // On a blocking thread, as the parts are written: the sink's lock is held while a part
        // is encrypted and written, and before the manifest is written a record waits with
        // the parts (a runtime thread blocked there held up the other worker's stream and
        // made the backup's memory jump by 30-50 MiB in one run of three).
        let record = end.clone();
        let sink = shared.clone();
        tokio::task::spawn_blocking(move || sink.write_table_end(&record))
            .await
            .map_err(join_error)??;
        done.push(end);
        shared.counters.tables_done.fetch_add(1, Ordering::Relaxed);
        shared.report(&table.manifest.display_name());
    }
    Ok(done)
}

/// Rows travel from the COPY stream to a part's compressor in batches of this size; each batch
/// becomes one gzip member of the part.
pub(super) const BATCH: usize = 1 << 20;

/// A part being compressed on a blocking thread while its rows arrive. The compressed bytes
/// are held until the part ends (its tar header needs the size), then written under the sink's
/// lock: a worker holds one part's compressed bytes (about 2 MiB) and at most four batches of
/// raw rows (one filling, two queued, one compressing), whatever the size of its tables. (Four
/// queued batches were no faster and, with the coordinator exporting too, took the peak
/// memory at scale 1.5 from a median of 60 MiB to 65 MiB in five runs each.)
pub(super) struct PartWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl PartWriter {
    fn start(shared: &Arc<ExportShared>, index: u32, part: u32) -> PartWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
        let shared = shared.clone();
        let task = tokio::task::spawn_blocking(move || {
            let compressing = |e: std::io::Error| Error::io("compressing", &e);
            let mut body = BufferPool::take(&shared.pool.parts, PART_SIZE / 3);
            let mut gz = MemberCompressor::new(shared.level);
            let mut size = 0u64;
            while let Some(batch) = rx.blocking_recv() {
                gz.append(&batch, &mut body).map_err(compressing)?;
                size += batch.len() as u64;
                BufferPool::give(&shared.pool.batches, batch);
            }
            let padding = archive::tar_padding(size);
            if !padding.is_empty() {
                gz.append(padding, &mut body).map_err(compressing)?;
            }
            let head = archive::gzip_tar_header(&part_path(index, part), size, shared.mtime)
                .map_err(compressing)?;
            shared.write_part(head, body)
        });
        PartWriter { tx, task }
    }

    async fn finish(self) -> Result<()> {
        drop(self.tx);
        self.task.await.map_err(join_error)?
    }
}

pub(super) async fn export_table<R: TableReader>(
    worker: &mut R,
    table: &TableManifest,
    shared: &Arc<ExportShared>,
) -> Result<TableEnd> {
    let name = table.display_name();
    shared.report(&name);
    let mut stream = worker.read_table(table).await?;
    let mut hasher = Sha256::new();
    let (mut rows, mut bytes, mut parts) = (0u64, 0u64, 0u32);
    let mut batch: Vec<u8> = BufferPool::take(&shared.pool.batches, BATCH);
    let mut part: Option<PartWriter> = None;
    let mut part_bytes = 0usize;
    let mut at_row_end = true;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        let newlines = archive::count_rows(&chunk);
        rows += newlines;
        bytes += chunk.len() as u64;
        shared.counters.rows.fetch_add(newlines, Ordering::Relaxed);
        shared
            .counters
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        // A part ends at a row end before it would pass PART_SIZE; one row larger than a
        // part makes a larger part.
        let used = part_bytes + batch.len();
        if used > 0 && used + chunk.len() > PART_SIZE && at_row_end {
            let p = match part.take() {
                Some(p) => p,
                None => PartWriter::start(shared, table.index, parts),
            };
            send_batch(p, &mut batch, shared).await?.finish().await?;
            parts += 1;
            part_bytes = 0;
            shared.cancel.check()?;
            shared.report(&name);
        }
        batch.extend_from_slice(&chunk);
        at_row_end = chunk.last() == Some(&b'\n');
        if batch.len() >= BATCH {
            let p = match part.take() {
                Some(p) => p,
                None => PartWriter::start(shared, table.index, parts),
            };
            part_bytes += batch.len();
            part = Some(send_batch(p, &mut batch, shared).await?);
        }
    }
    drop(stream);
    if part.is_some() || !batch.is_empty() {
        let p = match part.take() {
            Some(p) => p,
            None => PartWriter::start(shared, table.index, parts),
        };
        send_batch(p, &mut batch, shared).await?.finish().await?;
        parts += 1;
    }
    BufferPool::give(&shared.pool.batches, batch);
    Ok(TableEnd {
        index: table.index,
        rows,
        bytes,
        parts,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Send the batch (if any) to the part, leaving `batch` empty; on failure, the part's own
/// error (a full disk…) is returned rather than "the compressor stopped".
pub(super) async fn send_batch(
    part: PartWriter,
    batch: &mut Vec<u8>,
    shared: &ExportShared,
) -> Result<PartWriter> {
    if batch.is_empty() {
        return Ok(part);
    }
    let full = std::mem::replace(batch, BufferPool::take(&shared.pool.batches, BATCH));
    if part.tx.send(full).await.is_ok() {
        return Ok(part);
    }
    // The compressor stopped early: its own error says why.
    drop(part.tx);
    Err(part
        .task
        .await
        .map_err(join_error)?
        .err()
        .unwrap_or_else(|| internal("the compressor stopped")))
}
