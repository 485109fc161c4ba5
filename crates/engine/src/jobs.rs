//! What the CLI and the app call: backup, restore, verify, inspect, decrypt, delete, rescan.
//!
//! A [`Vault`] is the local state a job works with (backup folder, catalog, keys). Each job
//! takes its inputs, reports to a [`Progress`], records its outcome in the run history, and
//! returns a result or one [`Error`] that says what to do.
//!
//! The backup pipeline: a coordinator opens the snapshot; N workers join it and each takes the
//! largest remaining table and streams its `COPY` output, in batches of 256 KiB, to a blocking
//! task that gzips the current part (at most 8 MiB of rows, cut at row ends) as it arrives. When
//! the part ends, its tar header (a gzip member of its own, as it needs the size) and its
//! compressed data are appended, under a lock, to the encrypting writer. A worker holds at most
//! a few batches and one part's compressed bytes, so memory does not grow with the database.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;
use futures_util::StreamExt;
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::archive::{
    self, gzip_tar_entry, gzip_tar_trailer, part_path, read_preamble, ArchiveWriter, BackupKind,
    CountingReader, End, Header, Item, Manifest, Preamble, TableEnd, TableManifest, EXTENSION,
    PART_SIZE,
};
use crate::catalog::{BackupRecord, Catalog, RunRecord};
use crate::crypto::Key;
use crate::error::{Error, ErrorKind, Result};
use crate::keychain::Keys;
use crate::legacy::{self, V1Backup, V1Mode};
use crate::progress::{Phase, Progress, ProgressEvent};
use crate::retention::{self, Prune, Retention};
use crate::schedule::{Due, RunLock, Schedule};
use crate::source::postgres::{self, PgTarget, RestoreTxn, Snapshot, SnapshotWorker, TableInfo};
use crate::storage::PartialFile;

/// The version written into archives.
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The local state jobs work with.
pub struct Vault {
    /// Where backup files are written.
    pub dir: PathBuf,
    /// The index of backups and runs.
    pub catalog: Catalog,
    /// The encryption keys.
    pub keys: Arc<Keys>,
    /// Where the run lock lives (the catalog's folder).
    pub lock_dir: PathBuf,
}

/// A flag to stop a running job; the job then fails with `Cancelled` and leaves nothing behind.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Ask the job to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether the job was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    fn check(&self) -> Result<()> {
        if self.0.load(Ordering::Relaxed) {
            Err(Error::new(
                ErrorKind::Cancelled,
                "The job was cancelled",
                "Nothing was changed and no file was left behind",
            ))
        } else {
            Ok(())
        }
    }
}

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
}

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
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            safety_backup: true,
            cancel: Cancel::default(),
            v1_mode: V1Mode::Merge,
            create_db: None,
            trust_dev_key: false,
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
    checked: Vec<(TableManifest, TableEnd)>,
}

/// What a verification found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The backup's id.
    pub backup_id: String,
    /// The file.
    pub path: PathBuf,
    /// Tables checked.
    pub tables: u64,
    /// Rows checked.
    pub rows: u64,
    /// Bytes of table data checked.
    pub bytes: u64,
    /// 2 for a SchoolVault archive, 1 for an old-system file.
    pub format: u16,
    /// Things the person should know.
    pub warnings: Vec<String>,
}

/// What `inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// The file.
    pub path: PathBuf,
    /// 2 for a SchoolVault archive, 1 for an old-system file.
    pub format: u16,
    /// The unencrypted header (format 2).
    pub header: Option<Header>,
    /// What an old-system file holds (format 1).
    pub v1: Option<legacy::V1Summary>,
    /// The manifest, when the key is at hand.
    pub manifest: Option<Manifest>,
    /// Why the manifest could not be read.
    pub manifest_error: Option<String>,
}

impl Vault {
    /// Open the vault: backup folder `dir`, catalog at `catalog`.
    ///
    /// # Errors
    /// `Catalog` errors.
    pub async fn open(dir: PathBuf, catalog: &Path, keys: Keys) -> Result<Vault> {
        let lock_dir = catalog
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.clone());
        Ok(Vault {
            dir,
            catalog: Catalog::open(catalog).await?,
            keys: Arc::new(keys),
            lock_dir,
        })
    }

    /// Find a backup by id or file path.
    ///
    /// # Errors
    /// `NotFound` when it is neither.
    pub async fn resolve(&self, what: &str) -> Result<(PathBuf, Option<BackupRecord>)> {
        let as_path = Path::new(what);
        if as_path.is_file() {
            return Ok((as_path.to_path_buf(), None));
        }
        if let Some(rec) = self.catalog.get(what).await? {
            if !rec.path.is_file() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "Backup {what} is listed, but its file {} is missing",
                        rec.path.display()
                    ),
                    "Run `schoolvault rescan` to update the list, or copy the file back",
                ));
            }
            return Ok((rec.path.clone(), Some(rec)));
        }
        Err(Error::new(
            ErrorKind::NotFound,
            format!("There is no backup with id {what:?} and no file at that path"),
            "Run `schoolvault list` to see the backups, or give the path of a backup file",
        ))
    }

    /// Take the run lock: one backup or restore at a time on this computer.
    ///
    /// # Errors
    /// `InvalidInput` when another run holds it.
    pub fn lock(&self) -> Result<RunLock> {
        RunLock::try_acquire(&self.lock_dir)
    }

    /// When the newest complete backup of the school (not a safety backup) was made.
    async fn last_success(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .catalog
            .list()
            .await?
            .into_iter()
            // An old-system file's time is what the file claims: never proof that SchoolVault
            // backed up (a claimed future time would silence the schedule and the alerts).
            .filter(|b| b.status == "complete" && b.kind != BackupKind::Safety && !is_v1_record(b))
            .map(|b| b.created_at)
            .max())
    }

    async fn record_run(&self, run: RunRecord) {
        // The history is a convenience: failing to write it must not hide the job's outcome.
        let _ = self.catalog.add_run(&run).await;
    }
}

/// Whether a catalog entry is an old-system file found by [`rescan`].
fn is_v1_record(b: &BackupRecord) -> bool {
    b.engine == legacy::CATALOG_ENGINE
}

fn run_record<T>(
    operation: &str,
    kind: Option<BackupKind>,
    started: DateTime<Utc>,
    result: &Result<T>,
    backup_id: Option<String>,
    summary: Option<String>,
) -> RunRecord {
    RunRecord {
        started_at: started,
        finished_at: Utc::now(),
        operation: operation.into(),
        kind: kind.map(|k| k.as_str().to_string()),
        outcome: if result.is_ok() { "success" } else { "failure" }.into(),
        error_code: result.as_ref().err().map(|e| e.code().to_string()),
        message: result.as_ref().err().map(|e| e.to_string()).or(summary),
        backup_id,
    }
}

fn internal(what: &str) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("Internal error: {what}"),
        "Nothing was changed; please report this",
    )
}

fn join_error(e: tokio::task::JoinError) -> Error {
    internal(&format!("a worker stopped: {e}"))
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
    let started = Utc::now();
    let result = backup_inner(vault, target, opts, progress, started).await;
    let id = result.as_ref().ok().map(|o| o.backup.id.clone());
    vault
        .record_run(run_record(
            "backup",
            Some(opts.kind),
            started,
            &result,
            id,
            None,
        ))
        .await;
    result
}

fn backup_id(at: DateTime<Utc>) -> String {
    format!(
        "{}-{:04x}",
        at.format("%Y%m%d-%H%M%S"),
        rand::thread_rng().gen::<u16>()
    )
}

fn file_stem(database: &str) -> String {
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

struct Counters {
    rows: AtomicU64,
    bytes: AtomicU64,
    tables_done: AtomicU64,
    tables_total: u64,
    total_bytes: u64,
}

struct ExportShared {
    target: PgTarget,
    snapshot_id: String,
    queue: Mutex<VecDeque<TableInfo>>,
    sink: Arc<Mutex<ArchiveWriter>>,
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
struct BufferPool {
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
        self.progress.report(&ProgressEvent {
            phase: Phase::Export,
            table: Some(table.to_string()),
            tables_done: c.tables_done.load(Ordering::Relaxed),
            tables_total: c.tables_total,
            rows: c.rows.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            total_bytes: Some(c.total_bytes),
        });
    }
}

async fn backup_inner(
    vault: &Vault,
    target: &PgTarget,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
    started: DateTime<Utc>,
) -> Result<BackupOutcome> {
    let t0 = Instant::now();
    progress.report(&ProgressEvent::phase(Phase::Connect));
    sweep_partials(vault);
    sweep_created(vault, target).await;
    let snapshot = Snapshot::open(target).await?;
    progress.report(&ProgressEvent::phase(Phase::Snapshot));
    let write_key = match vault.keys.for_writing() {
        Ok(k) => k,
        Err(e) => {
            let _ = snapshot.close(target).await;
            return Err(e);
        }
    };
    let id = backup_id(started);
    let name = format!("{}-{id}.{EXTENSION}", file_stem(&snapshot.source.database));
    let (partial, file) = PartialFile::create(&vault.dir, &name)?;

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
    let mut writer = ArchiveWriter::create(file, &write_key.key, header)?;
    let manifest = Manifest {
        format: archive::FORMAT_VERSION,
        backup_id: id.clone(),
        kind: opts.kind,
        snapshot_at: snapshot.taken_at,
        source: snapshot.source.clone(),
        tables: snapshot.tables.iter().map(|t| t.manifest.clone()).collect(),
        sequences: snapshot.sequences.clone(),
        schema: true,
        unsupported: snapshot.schema.unsupported.clone(),
    };
    let mtime = snapshot.taken_at.timestamp().max(0) as u64;
    let level = opts.compression_level.clamp(1, 9);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| internal(&e.to_string()))?;
    writer.write_member(
        &gzip_tar_entry("manifest.json", &json, mtime, level)
            .map_err(|e| Error::io("compressing", &e))?,
    )?;
    writer.write_member(
        &gzip_tar_entry(
            archive::PRE_DATA,
            snapshot.schema.pre_data.as_bytes(),
            mtime,
            level,
        )
        .map_err(|e| Error::io("compressing", &e))?,
    )?;
    let post_data = snapshot.schema.post_data.clone();

    let shared = Arc::new(ExportShared {
        target: target.clone(),
        snapshot_id: snapshot.id.clone(),
        queue: Mutex::new(snapshot.tables.iter().cloned().collect()),
        sink: Arc::new(Mutex::new(writer)),
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
    let workers = opts.jobs.clamp(1, 16).min(snapshot.tables.len().max(1));
    let exported =
        futures_util::future::try_join_all((0..workers).map(|_| export_worker(shared.clone())))
            .await;
    let exported = match exported {
        Ok(e) => e,
        Err(e) => {
            let _ = snapshot.close(target).await;
            return Err(e);
        }
    };
    snapshot.close(target).await?;

    progress.report(&ProgressEvent::phase(Phase::Finish));
    let mut tables: Vec<TableEnd> = exported.into_iter().flatten().collect();
    tables.sort_by_key(|t| t.index);
    let end = End {
        total_rows: tables.iter().map(|t| t.rows).sum(),
        total_bytes: tables.iter().map(|t| t.bytes).sum(),
        tables,
        finished_at: Utc::now(),
    };
    let shared = Arc::try_unwrap(shared).map_err(|_| internal("export still running"))?;
    let mut writer = Arc::try_unwrap(shared.sink)
        .map_err(|_| internal("export still running"))?
        .into_inner()
        .map_err(|_| internal("a worker panicked"))?;
    writer.write_member(
        &gzip_tar_entry(archive::POST_DATA, post_data.as_bytes(), mtime, level)
            .map_err(|e| Error::io("compressing", &e))?,
    )?;
    let json = serde_json::to_vec_pretty(&end).map_err(|e| internal(&e.to_string()))?;
    writer.write_member(
        &gzip_tar_entry("end.json", &json, mtime, level)
            .map_err(|e| Error::io("compressing", &e))?,
    )?;
    writer.write_member(&gzip_tar_trailer().map_err(|e| Error::io("compressing", &e))?)?;
    opts.cancel.check()?;
    let written = writer.finish()?;
    let path = partial.commit(written.file)?;

    let record = BackupRecord {
        id,
        path,
        created_at: started,
        kind: opts.kind,
        status: "complete".into(),
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
    })
}

async fn export_worker(shared: Arc<ExportShared>) -> Result<Vec<TableEnd>> {
    let mut worker = SnapshotWorker::join(&shared.target, &shared.snapshot_id).await?;
    let mut done = Vec::new();
    loop {
        shared.cancel.check()?;
        let next = shared
            .queue
            .lock()
            .map_err(|_| internal("queue poisoned"))?
            .pop_front();
        let Some(table) = next else { break };
        done.push(export_table(&mut worker, &table.manifest, &shared).await?);
        shared.counters.tables_done.fetch_add(1, Ordering::Relaxed);
        shared.report(&table.manifest.display_name());
    }
    worker.close().await;
    Ok(done)
}

/// Rows travel from the COPY stream to a part's compressor in batches of this size.
const BATCH: usize = 256 << 10;

/// A part being compressed on a blocking thread while its rows arrive. The compressed bytes
/// are held until the part ends (its tar header needs the size), then written under the sink's
/// lock: a worker holds one part's compressed bytes (about 2 MiB) and at most five batches of
/// raw rows, whatever the size of its tables.
struct PartWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl PartWriter {
    fn start(shared: &Arc<ExportShared>, index: u32, part: u32) -> PartWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let shared = shared.clone();
        let task = tokio::task::spawn_blocking(move || {
            let compressing = |e: std::io::Error| Error::io("compressing", &e);
            let out = BufferPool::take(&shared.pool.parts, PART_SIZE / 3);
            let mut gz = GzEncoder::new(out, Compression::new(shared.level));
            let mut size = 0u64;
            while let Some(batch) = rx.blocking_recv() {
                gz.write_all(&batch).map_err(compressing)?;
                size += batch.len() as u64;
                BufferPool::give(&shared.pool.batches, batch);
            }
            gz.write_all(archive::tar_padding(size))
                .map_err(compressing)?;
            let body = gz.finish().map_err(compressing)?;
            let head = archive::gzip_tar_header(&part_path(index, part), size, shared.mtime)
                .map_err(compressing)?;
            {
                let mut sink = shared
                    .sink
                    .lock()
                    .map_err(|_| internal("writer poisoned"))?;
                sink.write_member(&head)?;
                sink.write_member(&body)?;
            }
            BufferPool::give(&shared.pool.parts, body);
            Ok(())
        });
        PartWriter { tx, task }
    }

    async fn finish(self) -> Result<()> {
        drop(self.tx);
        self.task.await.map_err(join_error)?
    }
}

async fn export_table(
    worker: &mut SnapshotWorker,
    table: &TableManifest,
    shared: &Arc<ExportShared>,
) -> Result<TableEnd> {
    let name = table.display_name();
    shared.report(&name);
    let mut stream = worker.copy_out(table, &shared.target).await?;
    let mut hasher = Sha256::new();
    let (mut rows, mut bytes, mut parts) = (0u64, 0u64, 0u32);
    let mut batch: Vec<u8> = BufferPool::take(&shared.pool.batches, BATCH);
    let mut part: Option<PartWriter> = None;
    let mut part_bytes = 0usize;
    let mut at_row_end = true;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            crate::source::postgres::db_error(&e, &shared.target)
                .context(format_args!("reading table {name}"))
        })?;
        hasher.update(&chunk);
        let newlines = chunk.iter().filter(|&&b| b == b'\n').count() as u64;
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
async fn send_batch(
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

/// Open a backup file and read its preamble; find the key that opens it.
fn open_archive(path: &Path, keys: &Keys) -> Result<(BufReader<File>, Preamble, Key)> {
    let file =
        File::open(path).map_err(|e| Error::io(format_args!("opening {}", path.display()), &e))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let pre = read_preamble(&mut r)?;
    let key = match keys.for_reading(pre.fingerprint()) {
        Ok(key) => key,
        Err(e) if e.kind() == ErrorKind::WrongKey => {
            if let Ok((ours, _)) = keys.current() {
                if archive::fingerprint_was_damaged(path, &pre, &ours) {
                    return Err(Error::new(
                        ErrorKind::Damaged,
                        "The backup file's header is damaged (its key fingerprint changed after it was written)",
                        "Use another copy of this backup",
                    ));
                }
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    Ok((r, pre, key))
}

/// Checks each table's data against `end.json` while it streams past.
#[derive(Default)]
struct TableTally {
    seen: HashMap<u32, (Sha256, u64, u64, u32)>,
}

impl TableTally {
    fn start_part(&mut self, table: &TableManifest, part: u32) -> Result<()> {
        let entry = self.seen.entry(table.index).or_default();
        if entry.3 != part {
            return Err(Error::new(
                ErrorKind::Damaged,
                format!("The backup's data for table {} is out of order (part {part} where {} was expected)", table.display_name(), entry.3),
                "The file is damaged; use another copy of this backup",
            ));
        }
        entry.3 += 1;
        Ok(())
    }

    fn update(&mut self, index: u32, data: &[u8]) {
        let entry = self.seen.entry(index).or_default();
        entry.0.update(data);
        entry.1 += data.iter().filter(|&&b| b == b'\n').count() as u64;
        entry.2 += data.len() as u64;
    }

    /// Compare with the manifest and end record; return (tables, rows, bytes).
    fn check(mut self, manifest: &Manifest, end: &End) -> Result<(u64, u64, u64)> {
        let ends: HashMap<u32, &TableEnd> = end.tables.iter().map(|t| (t.index, t)).collect();
        let (mut rows, mut bytes) = (0, 0);
        for t in &manifest.tables {
            let Some(e) = ends.get(&t.index) else {
                return Err(inconsistent(t, "it is missing from the end record"));
            };
            let (h, r, b, p) = self.seen.remove(&t.index).unwrap_or_default();
            if r != e.rows {
                return Err(inconsistent(
                    t,
                    &format!("{r} rows where the end record says {}", e.rows),
                ));
            }
            if b != e.bytes || p != e.parts || hex::encode(h.finalize()) != e.sha256 {
                return Err(inconsistent(t, "its data does not match its checksum"));
            }
            rows += r;
            bytes += b;
        }
        if end.tables.len() != manifest.tables.len() {
            return Err(Error::new(
                ErrorKind::Inconsistent,
                "The backup's end record lists tables its manifest does not",
                "The file is damaged; use another copy of this backup",
            ));
        }
        Ok((manifest.tables.len() as u64, rows, bytes))
    }
}

fn inconsistent(t: &TableManifest, what: &str) -> Error {
    Error::new(
        ErrorKind::Inconsistent,
        format!(
            "Table {} in the backup is inconsistent: {what}",
            t.display_name()
        ),
        "The file is damaged or was altered; use another copy of this backup",
    )
}

struct Scan {
    header: Header,
    manifest: Manifest,
    end: End,
    tables: u64,
    rows: u64,
    bytes: u64,
}

fn scan_file(path: &Path, keys: &Keys, progress: &dyn Progress) -> Result<Scan> {
    let (r, pre, key) = open_archive(path, keys)?;
    let total = std::fs::metadata(path).map(|m| m.len()).ok();
    scan_stream(r, pre, &key, total, progress)
}

/// Read a whole v2 archive from `r` with `key` as [`verify`] reads a file (preamble, every
/// chunk, the tar stream, each table's rows and checksum against `end.json`), without a vault,
/// a catalog or a keychain: for fuzzing and tests. Returns the header, manifest and end record.
///
/// # Errors
/// `WrongKey` when the header names another key; otherwise what [`verify`] reports.
pub fn verify_reader(mut r: impl Read, key: &Key) -> Result<(Header, Manifest, End)> {
    let pre = read_preamble(&mut r)?;
    if pre.fingerprint() != key.fingerprint() {
        return Err(Error::new(
            ErrorKind::WrongKey,
            format!(
                "This backup was made with key {}; the key given is {}",
                pre.fingerprint(),
                key.fingerprint()
            ),
            "Use the key the backup was made with",
        ));
    }
    let scan = scan_stream(r, pre, key, None, &crate::progress::Silent)?;
    Ok((scan.header, scan.manifest, scan.end))
}

fn scan_stream(
    r: impl Read,
    pre: Preamble,
    key: &Key,
    total: Option<u64>,
    progress: &dyn Progress,
) -> Result<Scan> {
    let count = Arc::new(AtomicU64::new(pre.aad.len() as u64));
    let reader = CountingReader::new(r, count.clone());
    let mut tally = TableTally::default();
    let mut last_report = 0u64;
    let (manifest, end) = archive::walk(archive::plaintext(reader, &pre, key), |item| {
        if let Item::Part { table, part, data } = item {
            tally.start_part(table, part)?;
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = data.read(&mut buf).map_err(|e| archive::read_error(&e))?;
                if n == 0 {
                    break;
                }
                tally.update(table.index, &buf[..n]);
            }
            let done = count.load(Ordering::Relaxed);
            if done - last_report > (4 << 20) {
                last_report = done;
                progress.report(&ProgressEvent {
                    phase: Phase::Verify,
                    table: Some(table.display_name()),
                    tables_done: 0,
                    tables_total: 0,
                    rows: 0,
                    bytes: done,
                    total_bytes: total,
                });
            }
        }
        Ok(())
    })?;
    let (tables, rows, bytes) = tally.check(&manifest, &end)?;
    Ok(Scan {
        header: pre.header,
        manifest,
        end,
        tables,
        rows,
        bytes,
    })
}

/// Read a backup completely without touching any database: decrypt, decompress, check the
/// end record, every table's row count and checksum. Records the outcome in the catalog when
/// the backup is listed there.
///
/// # Errors
/// `WrongKey`, `Truncated`, `Damaged`, `Inconsistent`, `NotABackup`, `NotFound`.
pub async fn verify(
    vault: &Vault,
    what: &str,
    progress: Arc<dyn Progress>,
) -> Result<VerifyReport> {
    let started = Utc::now();
    let (path, record) = vault.resolve(what).await?;
    if !is_v2(&path)? {
        let report = open_v1(&path, vault.keys.clone())
            .await
            .map(|v1| VerifyReport {
                backup_id: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: path.clone(),
                tables: v1.tables.len() as u64,
                rows: v1.records(),
                bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                format: 1,
                warnings: v1_warnings(&v1),
            });
        vault
            .record_run(run_record("verify", None, started, &report, None, None))
            .await;
        return report;
    }
    let (keys, scan_path) = (vault.keys.clone(), path.clone());
    let result =
        tokio::task::spawn_blocking(move || scan_file(&scan_path, &keys, progress.as_ref()))
            .await
            .map_err(join_error)
            .and_then(|r| r);
    let id = result
        .as_ref()
        .ok()
        .map(|s| s.header.backup_id.clone())
        .or(record.as_ref().map(|r| r.id.clone()));
    if let Some(id) = &id {
        let (ok, msg) = match &result {
            Ok(s) => (
                true,
                format!("{} tables, {} rows checked", s.tables, s.rows),
            ),
            Err(e) => (false, e.to_string()),
        };
        // Only the listed backup whose file this is: a copy elsewhere with the same id says
        // nothing about the listed file.
        let listed = vault.catalog.get(id).await?;
        if listed.is_some_and(|r| same_file(&r.path, &path)) {
            vault.catalog.set_verified(id, Utc::now(), ok, &msg).await?;
        }
    }
    let report = result.map(|s| VerifyReport {
        backup_id: s.header.backup_id,
        path,
        tables: s.tables,
        rows: s.rows,
        bytes: s.bytes,
        format: archive::FORMAT_VERSION,
        warnings: Vec::new(),
    });
    vault
        .record_run(run_record("verify", None, started, &report, id, None))
        .await;
    report
}

/// Prove that a backup restores: restore it into a new scratch database (`scratch`, or
/// `schoolvault_verify_<id>` on `server`), export every table again and compare its rows and
/// SHA-256 with `end.json`, then drop the scratch database whatever happened. The outcome is
/// recorded in the catalog.
///
/// # Errors
/// Everything [`restore`] reports (into an empty database), and `Inconsistent` naming the first
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
    let _lock = vault.lock()?;
    let (path, record) = vault.resolve(what).await?;
    if !is_v2(&path)? {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "A test restore needs a SchoolVault backup; an old-system file carries no schema to restore into a scratch database",
            "Use `schoolvault verify FILE` for old-system files",
        ));
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
                "test restore: {} tables, {} rows restored and compared",
                r.tables, r.rows
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
            "test_restore",
            None,
            started,
            &result,
            Some(id),
            Some(msg),
        ))
        .await;
    result
}

/// A database this computer created for a restore or a test restore and has not finished
/// with. Written down before `CREATE DATABASE` and removed when the job is done, so one left
/// by a killed job is found (and dropped) by the next job on that server, and a database
/// SchoolVault did not create is never dropped.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
struct CreatedDatabase {
    /// `user@host:port`.
    server: String,
    /// The database.
    name: String,
    /// When it was created.
    at: DateTime<Utc>,
}

fn ledger_path(vault: &Vault) -> PathBuf {
    vault.lock_dir.join("created-databases.json")
}

fn ledger_read(vault: &Vault) -> Vec<CreatedDatabase> {
    std::fs::read(ledger_path(vault))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn ledger_write(vault: &Vault, entries: &[CreatedDatabase]) -> Result<()> {
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
async fn create_owned_database(vault: &Vault, server: &PgTarget, name: &str) -> Result<PgTarget> {
    // A name that exists is refused before it is written down, not after: noted first, a run
    // killed (kill -9, a crash, a power cut) before create_database's own check left someone
    // else's database in the ledger, and the next backup dropped it. Found by
    // tests/faults.rs (`restore --create-db` naming the live database, killed: it was gone).
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
fn ledger_release(vault: &Vault, server: &PgTarget, name: &str) {
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
async fn sweep_created(vault: &Vault, server: &PgTarget) {
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
                "cleanup",
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
fn sweep_partials(vault: &Vault) {
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

/// Read every table of a scratch database back and compare it with what the backup recorded.
async fn compare_scratch(
    scratch_target: &PgTarget,
    restored: &RestoreOutcome,
    id: &str,
    path: &Path,
) -> Result<VerifyReport> {
    let mut worker = SnapshotWorker::join_plain(scratch_target).await?;
    let (mut rows, mut bytes) = (0, 0);
    for (table, end) in &restored.checked {
        let mut stream = worker.copy_out(table, scratch_target).await?;
        let mut h = Sha256::new();
        let (mut r, mut b) = (0u64, 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| postgres::db_error(&e, scratch_target))?;
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
    Ok(VerifyReport {
        backup_id: id.to_string(),
        path: path.to_path_buf(),
        tables: restored.checked.len() as u64,
        rows,
        bytes,
        format: archive::FORMAT_VERSION,
        warnings: Vec::new(),
    })
}

/// The header, and the manifest when the key is at hand.
///
/// # Errors
/// `NotFound`, `NotABackup`, `Damaged`, `Truncated` (of the header).
pub async fn inspect(vault: &Vault, what: &str) -> Result<InspectReport> {
    let (path, _) = vault.resolve(what).await?;
    if !is_v2(&path)? {
        let v1 = open_v1(&path, vault.keys.clone()).await?;
        return Ok(InspectReport {
            path,
            format: 1,
            header: None,
            v1: Some(v1.summary()),
            manifest: None,
            manifest_error: None,
        });
    }
    let file =
        File::open(&path).map_err(|e| Error::io(format_args!("opening {}", path.display()), &e))?;
    let mut r = BufReader::new(file);
    let pre = read_preamble(&mut r)?;
    let manifest = vault
        .keys
        .for_reading(pre.fingerprint())
        .and_then(|key| read_manifest(r, &pre, &key));
    Ok(InspectReport {
        path,
        format: archive::FORMAT_VERSION,
        header: Some(pre.header),
        v1: None,
        manifest_error: manifest.as_ref().err().map(|e| e.to_string()),
        manifest: manifest.ok(),
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Whether the file starts like a SchoolVault archive (otherwise it may be an old-system file).
fn is_v2(path: &Path) -> Result<bool> {
    let mut start = [0u8; 8];
    let mut f =
        File::open(path).map_err(|e| Error::io(format_args!("opening {}", path.display()), &e))?;
    let mut n = 0;
    while n < start.len() {
        match f.read(&mut start[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::io(format_args!("reading {}", path.display()), &e)),
        }
    }
    Ok(archive::looks_like_v2(&start[..n]))
}

/// Open an old-system file with every key at hand (and the old development key).
async fn open_v1(path: &Path, keys: Arc<Keys>) -> Result<V1Backup> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let candidates = keys.candidates();
        // Look at the first bytes before reading the whole file: a large foreign file
        // is refused without being loaded.
        let reading = |e: std::io::Error| Error::io(format_args!("reading {}", path.display()), &e);
        let mut f = File::open(&path).map_err(reading)?;
        let size = f.metadata().map_err(reading)?.len();
        let mut head = Vec::with_capacity(legacy::SNIFF_LEN);
        (&mut f)
            .take(legacy::SNIFF_LEN as u64)
            .read_to_end(&mut head)
            .map_err(reading)?;
        legacy::sniff(&head, size, &candidates)?;
        drop(f);
        let bytes = std::fs::read(&path).map_err(reading)?;
        legacy::open(&bytes, &candidates)
    })
    .await
    .map_err(join_error)?
}

/// The refusal of an old-system file under the public development key.
fn untrusted_v1() -> Error {
    Error::new(
        ErrorKind::Untrusted,
        "This old-system file opened only with the old system's public development key, so anyone could have written it (for example adding an administrator account); nothing was changed",
        "Restore it only if you know where it came from: confirm the second warning in the app, or pass --trust-dev-key to `schoolvault restore`",
    )
}

fn v1_warnings(v1: &V1Backup) -> Vec<String> {
    let mut w = Vec::new();
    if v1.dev_key {
        w.push(legacy::DEV_KEY_WARNING.to_string());
    }
    for (key, _) in &v1.tables {
        if legacy::table_for(key).is_none() {
            w.push(format!("The file holds records under {key:?}, which matches no table: it cannot be restored"));
        }
    }
    w
}

fn read_manifest<R: Read>(r: R, pre: &Preamble, key: &Key) -> Result<Manifest> {
    let mut tar = tar::Archive::new(crate::tar_guard::TarGuard::new(archive::plaintext(
        r, pre, key,
    )));
    let mut entries = tar.entries().map_err(|e| archive::read_error(&e))?;
    let mut first = entries
        .next()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Truncated,
                "The backup is empty",
                "Use another backup",
            )
        })?
        .map_err(|e| archive::read_error(&e))?;
    let path = first.path().map_err(|e| archive::read_error(&e))?;
    if path.to_string_lossy() != "manifest.json" {
        return Err(Error::new(
            ErrorKind::Damaged,
            "The backup does not start with its manifest",
            "Use another copy of this backup",
        ));
    }
    archive::read_json(&mut first, "manifest")
}

/// One table in a [`RestorePreview`].
#[derive(Debug, Clone, Serialize)]
pub struct PreviewTable {
    /// `schema.table` (or the old system's table).
    pub name: String,
    /// Rows in the backup.
    pub backup_rows: u64,
    /// Rows in the target now; `None` when the table is not there.
    pub live_rows: Option<u64>,
}

/// What a restore would do, for the warning shown before it: the backup (read completely,
/// so a damaged file is refused here) and the target's current row counts.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePreview {
    /// The backup's id.
    pub backup_id: String,
    /// The file.
    pub path: PathBuf,
    /// 2 for SchoolVault files, 1 for the old system's.
    pub format: u16,
    /// When the backup was made.
    pub created_at: Option<DateTime<Utc>>,
    /// The database it was made of.
    pub source_database: Option<String>,
    /// The target, `user@host:port/database`.
    pub target: String,
    /// The target database's name (what the user must type).
    pub target_database: String,
    /// Per table.
    pub tables: Vec<PreviewTable>,
    /// Rows in the backup.
    pub backup_rows: u64,
    /// Rows in the target's tables now.
    pub live_rows: u64,
    /// Warnings (old development key, unknown tables…).
    pub warnings: Vec<String>,
    /// An old-system file that opened only with the public development key: anyone could
    /// have written it, so a restore needs the person's explicit trust
    /// ([`RestoreOptions::trust_dev_key`]) after a second warning.
    pub dev_key: bool,
}

/// Read `what` completely and count the rows it would replace in `target`.
///
/// # Errors
/// Everything [`verify`] reports, and connection errors for the target.
pub async fn restore_preview(
    vault: &Vault,
    what: &str,
    target: &PgTarget,
    progress: Arc<dyn Progress>,
) -> Result<RestorePreview> {
    let (path, _) = vault.resolve(what).await?;
    let (mut preview, names) = if is_v2(&path)? {
        let (keys, scan_path) = (vault.keys.clone(), path.clone());
        let scan =
            tokio::task::spawn_blocking(move || scan_file(&scan_path, &keys, progress.as_ref()))
                .await
                .map_err(join_error)??;
        let rows: std::collections::HashMap<u32, u64> =
            scan.end.tables.iter().map(|t| (t.index, t.rows)).collect();
        let tables = scan
            .manifest
            .tables
            .iter()
            .map(|t| PreviewTable {
                name: t.display_name(),
                backup_rows: rows.get(&t.index).copied().unwrap_or(0),
                live_rows: None,
            })
            .collect();
        let names = scan
            .manifest
            .tables
            .iter()
            .map(|t| (t.schema.clone(), t.name.clone()))
            .collect();
        let preview = RestorePreview {
            backup_id: scan.header.backup_id.clone(),
            path: path.clone(),
            format: archive::FORMAT_VERSION,
            created_at: Some(scan.header.created_at),
            source_database: Some(scan.header.source.database.clone()),
            target: target.describe(),
            target_database: target.database(),
            tables,
            backup_rows: scan.rows,
            live_rows: 0,
            warnings: scan.manifest.unsupported.clone(),
            dev_key: false,
        };
        (preview, names)
    } else {
        let v1 = open_v1(&path, vault.keys.clone()).await?;
        let summary = v1.summary();
        let mut tables = Vec::new();
        let mut names = Vec::new();
        for t in &summary.tables {
            tables.push(PreviewTable {
                name: t.table.clone().unwrap_or_else(|| t.key.clone()),
                backup_rows: t.records,
                live_rows: None,
            });
            names.push(("public".to_string(), t.table.clone().unwrap_or_default()));
        }
        let preview = RestorePreview {
            backup_id: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.clone(),
            format: 1,
            created_at: DateTime::parse_from_rfc3339(&summary.timestamp)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            source_database: None,
            target: target.describe(),
            target_database: target.database(),
            tables,
            backup_rows: v1.records(),
            live_rows: 0,
            warnings: v1_warnings(&v1),
            dev_key: v1.dev_key,
        };
        (preview, names)
    };
    let live = postgres::live_row_counts(target, &names).await?;
    for (t, n) in preview.tables.iter_mut().zip(live) {
        t.live_rows = n;
    }
    preview.live_rows = preview.tables.iter().filter_map(|t| t.live_rows).sum();
    Ok(preview)
}

/// Write the decrypted `.tar.gz` of a backup to `out`.
///
/// # Errors
/// As [`verify`], and errors writing `out`. What was written before a `Damaged` or
/// `Truncated` error must not be trusted.
pub async fn decrypt(vault: &Vault, what: &str, out: &mut dyn Write) -> Result<u64> {
    let (path, _) = vault.resolve(what).await?;
    let (r, pre, key) = open_archive(&path, &vault.keys)?;
    let mut plain = archive::decrypted(r, &pre, &key);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = plain.read(&mut buf).map_err(|e| archive::read_error(&e))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| Error::io("writing the output", &e))?;
        total += n as u64;
    }
    out.flush()
        .map_err(|e| Error::io("writing the output", &e))?;
    Ok(total)
}

/// Delete a listed backup: its file and its catalog entry.
///
/// # Errors
/// `NotFound` for an unknown id; I/O errors removing the file.
pub async fn delete(vault: &Vault, id: &str) -> Result<BackupRecord> {
    let Some(rec) = vault.catalog.get(id).await? else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("There is no backup with id {id:?}"),
            "Run `schoolvault list` to see the backups",
        ));
    };
    // The entry goes first, then the file: a run killed in between leaves a complete file
    // that is not listed (rescan lists it again), never a listed backup whose file is gone.
    // File first, a killed prune left entries that `list` showed as complete and that could
    // not be restored (found by tests/faults.rs).
    vault.catalog.remove(id).await?;
    match std::fs::remove_file(&rec.path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            // The file stays, so its entry does too.
            let _ = vault.catalog.put(&rec).await;
            return Err(Error::io(
                format_args!("deleting {}", rec.path.display()),
                &e,
            ));
        }
    }
    Ok(rec)
}

/// One file found by [`rescan`].
#[derive(Debug, Clone, Serialize)]
pub struct RescanEntry {
    /// The file.
    pub path: PathBuf,
    /// `complete` or the error code.
    pub status: String,
    /// The error, if any.
    pub message: Option<String>,
}

/// The catalog record of an old-system file in the backup folder.
async fn v1_record(vault: &Vault, path: &Path) -> Result<(BackupRecord, RescanEntry)> {
    // A file that does not open (another key…) is listed with its error, so the person
    // knows it is there and why it cannot be used.
    let opened = open_v1(path, vault.keys.clone()).await;
    let (sha256, size) = archive::sha256_file(path)?;
    let meta_time = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now());
    let id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (status, message) = match &opened {
        Ok(_) => ("complete".to_string(), None),
        Err(e) => (e.code().to_string(), Some(e.to_string())),
    };
    // The file's claim, but never later than the file was written (nor than now).
    let created_at = opened
        .as_ref()
        .ok()
        .and_then(|v| DateTime::parse_from_rfc3339(&v.timestamp).ok())
        .map(|t| t.with_timezone(&Utc))
        .map_or(meta_time, |t| t.min(meta_time))
        .min(Utc::now());
    let record = BackupRecord {
        id,
        path: path.to_path_buf(),
        created_at,
        kind: BackupKind::Manual,
        status: status.clone(),
        size,
        sha256,
        key_fingerprint: opened
            .as_ref()
            .map(|v| v.key_fingerprint.clone())
            .unwrap_or_default(),
        engine: legacy::CATALOG_ENGINE.into(),
        server_version: String::new(),
        database: String::new(),
        tables: opened.as_ref().map(|v| v.tables.len() as u64).unwrap_or(0),
        rows: opened.as_ref().map(|v| v.records()).unwrap_or(0),
        duration_ms: 0,
        verified_at: opened.as_ref().ok().map(|_| Utc::now()),
        verify_ok: Some(opened.is_ok()),
        verify_message: message.clone(),
    };
    Ok((
        record,
        RescanEntry {
            path: path.to_path_buf(),
            status,
            message,
        },
    ))
}

/// Rebuild the catalog's list from the `.svb` files (and the old system's `.enc` files) in the
/// backup folder, reading each one completely (a rescan is also a verification).
///
/// # Errors
/// I/O errors listing the folder; `Catalog`.
pub async fn rescan(vault: &Vault, progress: Arc<dyn Progress>) -> Result<Vec<RescanEntry>> {
    // One listing: SchoolVault archives and the old system's files.
    let listed: Vec<PathBuf> = match std::fs::read_dir(&vault.dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Error::io(
                format_args!("listing {}", vault.dir.display()),
                &e,
            ))
        }
    };
    let with_ext = |ext: &str| {
        let mut v: Vec<PathBuf> = listed
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .cloned()
            .collect();
        v.sort();
        v
    };
    let (files, old) = (with_ext(EXTENSION), with_ext("enc"));
    let mut records = Vec::new();
    let mut entries = Vec::new();
    for path in old {
        let (record, entry) = v1_record(vault, &path).await?;
        records.push(record);
        entries.push(entry);
    }
    for path in files {
        let (keys, progress, path2) = (vault.keys.clone(), progress.clone(), path.clone());
        let scanned = tokio::task::spawn_blocking(move || {
            let path = path2;
            let scan = scan_file(&path, &keys, progress.as_ref());
            let header = match &scan {
                Ok(s) => Some(s.header.clone()),
                Err(_) => File::open(&path)
                    .ok()
                    .and_then(|f| read_preamble(&mut BufReader::new(f)).ok())
                    .map(|p| p.header),
            };
            let sha = archive::sha256_file(&path);
            (scan, header, sha)
        })
        .await
        .map_err(join_error)?;
        let (scan, header, sha) = scanned;
        let Some(header) = header else {
            entries.push(RescanEntry {
                path,
                status: "not_a_backup".into(),
                message: scan.err().map(|e| e.to_string()),
            });
            continue;
        };
        let (sha256, size) = sha?;
        let (status, tables, rows, message) = match &scan {
            Ok(s) => ("complete".to_string(), s.tables, s.end.total_rows, None),
            Err(e) => (e.code().to_string(), 0, 0, Some(e.to_string())),
        };
        let duration_ms = scan
            .as_ref()
            .ok()
            .map(|s| {
                (s.end.finished_at - s.header.created_at)
                    .num_milliseconds()
                    .max(0) as u64
            })
            .unwrap_or(0);
        let tables = scan
            .as_ref()
            .map(|s| s.manifest.tables.len() as u64)
            .unwrap_or(tables);
        records.push(BackupRecord {
            id: header.backup_id.clone(),
            path: path.clone(),
            created_at: header.created_at,
            kind: header.kind,
            status: status.clone(),
            size,
            sha256,
            key_fingerprint: header.key_fingerprint.clone(),
            engine: header.source.engine.clone(),
            server_version: header.source.server_version.clone(),
            database: header.source.database.clone(),
            tables,
            rows,
            duration_ms,
            verified_at: scan.as_ref().ok().map(|_| Utc::now()),
            verify_ok: Some(scan.is_ok()),
            verify_message: message.clone(),
        });
        entries.push(RescanEntry {
            path,
            status,
            message,
        });
    }
    // Two files with one id (a copy, or a damaged header): list the first, report the others.
    let mut seen = std::collections::HashSet::new();
    let mut unique = Vec::with_capacity(records.len());
    for r in records {
        if seen.insert(r.id.clone()) {
            unique.push(r);
        } else if let Some(e) = entries.iter_mut().find(|e| e.path == r.path) {
            e.status = "duplicate_id".into();
            e.message = Some(format!(
                "Another file in the folder has the same backup id {}; only the first is listed",
                r.id
            ));
        }
    }
    vault.catalog.replace_all(&unique).await?;
    Ok(entries)
}

enum Feed {
    Sql(String, String),
    Part(TableManifest),
    Data(Vec<u8>),
    PartEnd,
}

/// Restore a backup into `target`, replacing the data of every table it holds, in one
/// transaction: either everything is restored or the database stays exactly as it was.
///
/// # Errors
/// Everything [`verify`] reports, `TargetMismatch` when the target lacks a table or column,
/// database errors while loading. In every case the target is unchanged.
pub async fn restore(
    vault: &Vault,
    what: &str,
    target: &PgTarget,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreOutcome> {
    let started = Utc::now();
    let result = restore_inner(vault, what, target, opts, progress).await;
    if let (Ok(_), Some(name)) = (&result, &opts.create_db) {
        // Finished: the database is the person's now. Its mark goes first, so a run killed
        // before the ledger is written cannot make the next run drop it.
        let _ = postgres::set_unfinished_mark(target, name, false).await;
        ledger_release(vault, target, name);
    }
    let id = result.as_ref().ok().map(|o| o.backup_id.clone());
    let summary = result
        .as_ref()
        .ok()
        .map(|o| format!("{} tables, {} rows into {}", o.tables, o.rows, o.target));
    vault
        .record_run(run_record("restore", None, started, &result, id, summary))
        .await;
    result
}

async fn restore_inner(
    vault: &Vault,
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
            sweep_created(vault, target).await;
            let created = create_owned_database(vault, target, name).await?;
            let result =
                restore_into(vault, &path, key, &created, true, manifest, opts, progress).await;
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
                    ));
                }
            }
            if !fresh {
                postgres::check_target(&mut conn, target, &manifest.tables).await?;
                postgres::check_may_disable_triggers(&mut conn, target).await?;
            }
            drop(conn);
            restore_into(vault, &path, key, target, fresh, manifest, opts, progress).await
        }
    }
}

/// Load an archive into `target`: into its existing tables (replace), or, when `fresh`, into
/// a database without them (the schema files run in the same transaction).
#[allow(clippy::too_many_arguments)]
async fn restore_into(
    vault: &Vault,
    path: &Path,
    key: Key,
    target: &PgTarget,
    fresh: bool,
    manifest: Manifest,
    opts: &RestoreOptions,
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
    let reader_path = path.clone();
    let reader_count = count.clone();
    let keys_for_reader = key.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<(Manifest, End, u64, u64)> {
        let file = File::open(&reader_path)
            .map_err(|e| Error::io(format_args!("opening {}", reader_path.display()), &e))?;
        let mut r = BufReader::with_capacity(1 << 20, CountingReader::new(file, reader_count));
        let pre = read_preamble(&mut r)?;
        let mut tally = TableTally::default();
        let gone = || {
            Error::new(
                ErrorKind::Cancelled,
                "The restore stopped",
                "Nothing was changed",
            )
        };
        let (manifest, end) =
            archive::walk(archive::plaintext(r, &pre, &keys_for_reader), |item| {
                if let Item::Schema { path, sql } = item {
                    tx.blocking_send(Feed::Sql(path.to_string(), sql))
                        .map_err(|_| gone())?;
                } else if let Item::Part { table, part, data } = item {
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
                Ok(())
            })?;
        let (_, rows, bytes) = tally.check(&manifest, &end)?;
        Ok((manifest, end, rows, bytes))
    });

    progress.report(&ProgressEvent::phase(Phase::Restore));
    // A database this restore created is dropped if anything fails, so it needs no single
    // transaction: load it over several connections, as pg_restore -j does.
    let parallel = fresh && opts.create_db.is_some();
    let begun = if parallel {
        RestoreTxn::autocommit(conn, target).await
    } else if fresh {
        RestoreTxn::begin_empty(conn, target).await
    } else {
        RestoreTxn::begin(conn, target, &manifest.tables).await
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
    if let Err(e) = opts.cancel.check() {
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
        format: archive::FORMAT_VERSION,
        v1_tables: None,
        warnings: Vec::new(),
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

async fn safety_backup(
    vault: &Vault,
    target: &PgTarget,
    opts: &RestoreOptions,
    progress: &Arc<dyn Progress>,
) -> Result<Option<BackupRecord>> {
    if !opts.safety_backup {
        return Ok(None);
    }
    progress.report(&ProgressEvent::phase(Phase::SafetyBackup));
    let b = backup(
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
async fn restore_v1(
    vault: &Vault,
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
    let tables = legacy::apply(target, &plan, opts.v1_mode).await?;
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
    })
}

#[allow(clippy::too_many_arguments)]
async fn load_parts(
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
                Some(Feed::Part(_) | Feed::Sql(..)) | None => {
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

type LoadJob = (TableManifest, Vec<Vec<u8>>);

/// Load into a database this restore created, over three sessions: pre-data on `txn`, the
/// parts on two loaders at once, then post-data with indexes built two at a time. (The
/// futures run side by side in this task, not spawned: sqlx's futures are not `Send` for
/// every lifetime.)
#[allow(clippy::too_many_arguments)]
async fn load_parallel(
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
    // (found by tests/faults.rs, whose school database has one).
    let mut senders = Vec::new();
    let mut loaders = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<LoadJob>(1);
        senders.push(tx);
        loaders.push((
            RestoreTxn::autocommit(target.connect().await?, &target).await?,
            rx,
        ));
    }
    let tables_total = manifest.tables.len() as u64;
    let dispatch = async move {
        let mut post_data = None;
        let mut tables_seen = std::collections::HashSet::new();
        // Which loader has each table, and how many bytes each was given (a new table goes
        // to the one with less).
        let mut owner: HashMap<u32, usize> = HashMap::new();
        let mut given = [0u64; 2];
        while let Some(feed) = rx.recv().await {
            match feed {
                Feed::Sql(path, sql) if path == archive::POST_DATA => post_data = Some(sql),
                Feed::Sql(path, sql) => {
                    txn.run_sql(&sql, &format!("running {path} of the backup"))
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
                            _ => return Ok(None),
                        }
                    }
                    let slot = *owner
                        .entry(table.index)
                        .or_insert_with(|| usize::from(given[1] < given[0]));
                    given[slot] += data.iter().map(|b| b.len() as u64).sum::<u64>();
                    if senders[slot].send((table, data)).await.is_err() {
                        break;
                    }
                }
                _ => return Err(internal("restore feed out of order")),
            }
        }
        drop(senders);
        Ok::<_, Error>(post_data)
    };
    let loads =
        futures_util::future::try_join_all(loaders.into_iter().map(|(t, rx)| loader(t, rx)));
    let (post_data, loaded) = tokio::try_join!(dispatch, loads)?;
    let mut rows: HashMap<u32, u64> = HashMap::new();
    for part in loaded {
        for (k, v) in part {
            *rows.entry(k).or_default() += v;
        }
    }
    if let Some(sql) = post_data {
        run_post_data_parallel(&target, &sql, progress).await?;
    }
    Ok(rows)
}

/// One loader of [`load_parallel`]: `COPY` each part it is given, in one transaction that
/// first empties each of its tables.
async fn loader(
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
async fn builder(
    mut txn: RestoreTxn,
    queue: &Mutex<VecDeque<String>>,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    loop {
        let next = queue
            .lock()
            .map_err(|_| internal("queue poisoned"))?
            .pop_front();
        let Some(stmt) = next else { break };
        progress.report(&ProgressEvent {
            table: Some(stmt.chars().take(80).collect()),
            ..ProgressEvent::phase(Phase::Restore)
        });
        // Two sessions altering related tables can deadlock (a foreign-key cycle); the server
        // then aborts one statement, which is simply run again.
        let mut tries = 0;
        loop {
            match txn.run_sql(&stmt, "building the indexes and keys").await {
                Err(e) if e.message().contains("SQLSTATE 40P01") && tries < 10 => {
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

/// Split SQL that SchoolVault wrote (no dollar quotes; literals as `'…'` with `''`) into
/// statements.
fn split_statements(sql: &str) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Code,
        Single { escapes: bool },
        Double,
        LineComment,
        BlockComment,
    }
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut state = In::Code;
    let mut i = 0;
    let push = |cur: &mut String, out: &mut Vec<String>| {
        let stmt = cur.trim().to_string();
        if !stmt.is_empty() {
            out.push(stmt);
        }
        cur.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match state {
            In::Code => match c {
                ';' => {
                    push(&mut cur, &mut out);
                    i += 1;
                    continue;
                }
                '\'' => {
                    // E'…' strings take backslash escapes.
                    let e = cur.ends_with(['E', 'e'])
                        && !cur[..cur.len() - 1]
                            .ends_with(|p: char| p.is_alphanumeric() || p == '_');
                    state = In::Single { escapes: e };
                }
                '"' => state = In::Double,
                '-' if next == Some('-') => state = In::LineComment,
                '/' if next == Some('*') => state = In::BlockComment,
                '$' => {
                    // A dollar quote: $tag$ … $tag$, copied whole.
                    let tag_end = chars[i + 1..]
                        .iter()
                        .position(|&t| !(t.is_alphanumeric() || t == '_'))
                        .map(|p| i + 1 + p);
                    if let Some(j) = tag_end.filter(|&j| chars[j] == '$') {
                        let starts_ident = chars.get(i + 1).is_some_and(|t| t.is_ascii_digit());
                        let after_ident = cur.ends_with(|p: char| p.is_alphanumeric() || p == '_');
                        if !starts_ident && !after_ident {
                            let tag: String = chars[i..=j].iter().collect();
                            let body_start = j + 1;
                            let rest: String = chars[body_start..].iter().collect();
                            let close = rest.find(&tag).map_or(rest.len(), |p| p + tag.len());
                            cur.push_str(&tag);
                            cur.push_str(&rest[..close]);
                            i = body_start + rest[..close].chars().count();
                            continue;
                        }
                    }
                }
                _ => {}
            },
            In::Single { escapes } => {
                if escapes && c == '\\' {
                    cur.push(c);
                    if let Some(n) = next {
                        cur.push(n);
                    }
                    i += 2;
                    continue;
                }
                if c == '\'' {
                    if next == Some('\'') {
                        cur.push_str("''");
                        i += 2;
                        continue;
                    }
                    state = In::Code;
                }
            }
            In::Double => {
                if c == '"' {
                    if next == Some('"') {
                        cur.push_str("\"\"");
                        i += 2;
                        continue;
                    }
                    state = In::Code;
                }
            }
            In::LineComment => {
                if c == '\n' {
                    state = In::Code;
                }
            }
            In::BlockComment => {
                if c == '*' && next == Some('/') {
                    cur.push_str("*/");
                    i += 2;
                    state = In::Code;
                    continue;
                }
            }
        }
        cur.push(c);
        i += 1;
    }
    push(&mut cur, &mut out);
    out
}

#[cfg(test)]
mod split_tests {
    use super::split_statements;

    #[test]
    fn splits_only_on_semicolons_outside_quotes_and_comments() {
        let sql = "CREATE INDEX \"a;b\" ON t (\"x;\"\"y\");\n\
                   COMMENT ON TABLE t IS 'it''s; fine';\n\
                   COMMENT ON COLUMN t.\"a'b\" IS E'back\\'slash; ok';\n\
                   -- a comment; with a semicolon\n\
                   /* block; comment */ ALTER TABLE t ADD CHECK (x <> ';');\n\
                   CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql;\n\
                   SELECT $$a;b$$;";
        let got = split_statements(sql);
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!(got[0], "CREATE INDEX \"a;b\" ON t (\"x;\"\"y\")");
        assert_eq!(got[1], "COMMENT ON TABLE t IS 'it''s; fine'");
        assert_eq!(got[2], "COMMENT ON COLUMN t.\"a'b\" IS E'back\\'slash; ok'");
        assert!(
            got[3].ends_with("ALTER TABLE t ADD CHECK (x <> ';')"),
            "{}",
            got[3]
        );
        assert!(got[4].contains("$fn$ SELECT 1; $fn$"), "{}", got[4]);
        assert_eq!(got[5], "SELECT $$a;b$$");
    }

    #[test]
    fn plain_list_and_empty_statements() {
        assert_eq!(split_statements("A; ;B;"), vec!["A", "B"]);
        assert!(split_statements("  ").is_empty());
        // $1 is a parameter, not a dollar quote.
        assert_eq!(
            split_statements("SELECT $1; SELECT 2"),
            vec!["SELECT $1", "SELECT 2"]
        );
    }
}

/// Run post-data on a database this restore created: indexes and keys on two connections at
/// once, then foreign keys and the rest in order on one. Partitioned tables' statements lock
/// several tables at once, so a schema with any runs serially.
async fn run_post_data_parallel(
    target: &PgTarget,
    sql: &str,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let statements = split_statements(sql);
    let is_fk = |s: &str| s.starts_with("ALTER TABLE") && s.contains(" FOREIGN KEY ");
    let is_key_or_index = |s: &str| {
        s.starts_with("CREATE INDEX")
            || s.starts_with("CREATE UNIQUE INDEX")
            || (s.starts_with("ALTER TABLE") && !is_fk(s))
    };
    // Keys and indexes first (a foreign key needs its referenced key), then foreign keys, each
    // phase two statements at a time; the rest (attachments, triggers, ownership, comments,
    // refreshes) in order.
    let (keys, others): (Vec<String>, Vec<String>) =
        statements.into_iter().partition(|s| is_key_or_index(s));
    let (fks, rest): (Vec<String>, Vec<String>) = others.into_iter().partition(|s| is_fk(s));
    for phase in [keys, fks] {
        let queue = Mutex::new(phase.into_iter().collect::<VecDeque<String>>());
        let mut builders = Vec::new();
        for _ in 0..2 {
            builders.push(RestoreTxn::autocommit(target.connect().await?, target).await?);
        }
        futures_util::future::try_join_all(
            builders.into_iter().map(|t| builder(t, &queue, progress)),
        )
        .await?;
    }
    let conn = target.connect().await?;
    let mut txn = RestoreTxn::autocommit(conn, target).await?;
    for stmt in rest {
        progress.report(&ProgressEvent {
            table: Some(stmt.chars().take(80).collect()),
            ..ProgressEvent::phase(Phase::Restore)
        });
        txn.run_sql(
            &stmt,
            &format!("running {} of the backup", archive::POST_DATA),
        )
        .await?;
    }
    txn.rollback().await;
    Ok(())
}

/// What `export --format v1` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportOutcome {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Records written.
    pub records: u64,
    /// The key it is encrypted with (the old system must be given this key).
    pub key_fingerprint: String,
}

/// Write the database as an old-system (v1) backup file, so a school can go back to its old
/// system: to `out`, or into the backup folder. Written atomically (`.partial`, sync, rename).
///
/// # Errors
/// `NoKey`, connection errors, `TargetMismatch` for a database without the ERP's tables, I/O.
pub async fn export_v1(
    vault: &Vault,
    target: &PgTarget,
    out: Option<&Path>,
) -> Result<ExportOutcome> {
    let (key, origin) = vault.keys.current()?;
    crate::keychain::refuse_public_key(&key, &origin)?;
    let (bytes, records) = legacy::export(target, &key).await?;
    let (dir, name) = match out {
        Some(p) => (
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        "The output path has no file name",
                        "Give a file name, e.g. --out backup.enc",
                    )
                })?,
        ),
        None => (
            vault.dir.clone(),
            format!(
                "{}-v1-{}.enc",
                file_stem(&target.database()),
                Utc::now().format("%Y%m%d-%H%M%S")
            ),
        ),
    };
    let (partial, mut file) = PartialFile::create(&dir, &name)?;
    file.write_all(&bytes)
        .map_err(|e| Error::io(format_args!("writing {name}"), &e))?;
    let path = partial.commit(file)?;
    Ok(ExportOutcome {
        path,
        size: bytes.len() as u64,
        records,
        key_fingerprint: key.fingerprint().to_string(),
    })
}

/// Remove the backups `policy` no longer keeps (files and catalog entries); with `dry_run`,
/// only say which. Recorded in the run history.
///
/// # Errors
/// `Catalog` and I/O errors.
pub async fn prune(
    vault: &Vault,
    policy: &Retention,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Prune>> {
    let started = Utc::now();
    let plan = retention::plan(&vault.catalog.list().await?, policy, now);
    if dry_run {
        return Ok(plan);
    }
    let mut done = Vec::new();
    let mut result = Ok(());
    for p in plan {
        match delete(vault, &p.id).await {
            Ok(_) => done.push(p),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let summary = format!(
        "pruned {} backup(s){}",
        done.len(),
        if done.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                done.iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    vault
        .record_run(run_record(
            "prune",
            None,
            started,
            &result,
            None,
            Some(summary),
        ))
        .await;
    result.map(|()| done)
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

fn test_restore_mark_path(vault: &Vault) -> PathBuf {
    vault.lock_dir.join("test-restore.json")
}

/// The newest routine test restore, if any ran here.
pub fn last_test_restore(vault: &Vault) -> Option<TestRestoreMark> {
    std::fs::read(test_restore_mark_path(vault))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The routine test restore: once every [`TEST_RESTORE_EVERY`], restore the newest successful
/// backup into a scratch database on `server`, compare every table with what the backup
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
    server: &PgTarget,
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
        .filter(|b| b.status == "complete" && b.kind != BackupKind::Safety && !is_v1_record(b))
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
    if !postgres::may_create_database(server).await? {
        let note = format!(
            "weekly test restore skipped: the backup user of {} may not create the scratch database it needs (grant it CREATEDB, or turn the weekly test restore off)",
            server.server()
        );
        remember(false, note.clone(), true);
        let skipped: Result<()> = Ok(());
        vault
            .record_run(run_record(
                "test_restore",
                None,
                Utc::now(),
                &skipped,
                Some(newest.id.clone()),
                Some(note),
            ))
            .await;
        return Ok(None);
    }
    match test_restore(
        vault,
        &newest.id,
        server,
        None,
        Arc::new(crate::progress::Silent),
    )
    .await
    {
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
    target: &PgTarget,
    error: &Error,
) -> Result<usize> {
    let started = Utc::now();
    // The backup it tested is the one routine_test_restore remembered.
    let backup_id = last_test_restore(vault)
        .map(|m| m.backup_id)
        .unwrap_or_default();
    let settings = with_school_admins(vault, settings, admins_query, target).await;
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
        .record_run(run_record("notify", None, started, &sent, None, summary))
        .await;
    sent
}

/// How long after a failed scheduled backup its slot is tried again.
pub const RETRY_AFTER: chrono::Duration = chrono::Duration::minutes(30);
/// How many times a slot is tried before waiting for the next one.
pub const SLOT_ATTEMPTS: usize = 3;

/// What [`run_due`] did.
#[derive(Debug, Clone, Serialize)]
pub struct DueOutcome {
    /// The slot that was due, if any.
    pub due: Option<Due>,
    /// The backup it made.
    pub backup: Option<BackupRecord>,
    /// What retention removed after it.
    pub pruned: Vec<Prune>,
}

impl DueOutcome {
    fn nothing() -> DueOutcome {
        DueOutcome {
            due: None,
            backup: None,
            pruned: Vec::new(),
        }
    }
}

/// The slot to run now, if any, and whether it is a retry of a failed attempt.
///
/// A slot whose scheduled backup failed is tried again [`RETRY_AFTER`] later (after a wake the
/// network may not be up yet), [`SLOT_ATTEMPTS`] times in all, then the next slot runs. Each
/// failure was reported and emailed: a database that is down must not cause a retry, and an
/// email, at every look at the schedule. A retry runs even with `catch_up` off: it is late
/// because the slot's own run failed, not because the computer was off.
async fn what_is_due(
    vault: &Vault,
    schedule: &Schedule,
    now: DateTime<Utc>,
    catch_up: bool,
    anchor: Option<DateTime<Utc>>,
) -> Result<Option<(Due, bool)>> {
    let since = vault.last_success().await?.or(anchor);
    let Some(due) = schedule.due(since, now)? else {
        return Ok(None);
    };
    let failed: Vec<DateTime<Utc>> = vault
        .catalog
        .runs_of("backup", BackupKind::Scheduled.as_str(), 50)
        .await?
        .into_iter()
        .filter(|r| r.outcome != "success" && r.started_at >= due.slot)
        .map(|r| r.started_at)
        .collect();
    let Some(last_failure) = failed.iter().max() else {
        return Ok((catch_up || !due.catch_up).then_some((due, false)));
    };
    let ready = failed.len() < SLOT_ATTEMPTS && now - *last_failure >= RETRY_AFTER;
    Ok(ready.then_some((due, true)))
}

/// If a slot of `schedule` passed without a successful backup, run one scheduled backup
/// (several missed slots make one run; a late one is marked as a catch-up in the history),
/// then prune by `policy`. Holds the run lock, and looks at the history again once it has it,
/// so the app and `schoolvault schedule run-due` never both run the same slot. With
/// `catch_up` off, a slot found late is skipped (the next one runs on time). A slot whose
/// backup failed is tried again [`RETRY_AFTER`] later, [`SLOT_ATTEMPTS`] times in all.
///
/// # Errors
/// `InvalidInput` when another run holds the lock; everything [`backup`] reports.
pub async fn run_due(
    vault: &Vault,
    target: &PgTarget,
    schedule: &Schedule,
    policy: &Retention,
    now: DateTime<Utc>,
    catch_up: bool,
    progress: Arc<dyn Progress>,
) -> Result<DueOutcome> {
    run_due_with(
        vault,
        target,
        schedule,
        policy,
        now,
        catch_up,
        None,
        &BackupOptions {
            kind: BackupKind::Scheduled,
            ..BackupOptions::default()
        },
        progress,
    )
    .await
}

/// [`run_due`] with the backup's options (the app passes its cancel flag) and, for a vault
/// with no backup yet, the time to count missed slots from (the app passes its start, so a fresh
/// install waits for its first slot instead of backing up the moment it is set up).
///
/// # Errors
/// As [`run_due`].
#[allow(clippy::too_many_arguments)]
pub async fn run_due_with(
    vault: &Vault,
    target: &PgTarget,
    schedule: &Schedule,
    policy: &Retention,
    now: DateTime<Utc>,
    catch_up: bool,
    anchor: Option<DateTime<Utc>>,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<DueOutcome> {
    // Look without the lock first: most looks find nothing due, and must not fail (nor email)
    // because another run holds the lock. Then look again under it: the other runner may
    // have covered the slot meanwhile.
    if what_is_due(vault, schedule, now, catch_up, anchor)
        .await?
        .is_none()
    {
        return Ok(DueOutcome::nothing());
    }
    let _lock = vault.lock()?;
    let Some((due, retry)) = what_is_due(vault, schedule, now, catch_up, anchor).await? else {
        return Ok(DueOutcome::nothing());
    };
    let made = backup(vault, target, opts, progress).await;
    if due.catch_up && !retry {
        let note = format!(
            "catch-up for the slot of {} ({} missed)",
            due.slot.to_rfc3339(),
            due.missed_slots
        );
        vault
            .record_run(run_record(
                "catch-up",
                Some(BackupKind::Scheduled),
                Utc::now(),
                &made,
                made.as_ref().ok().map(|b| b.backup.id.clone()),
                Some(note),
            ))
            .await;
    }
    let made = made?;
    let pruned = prune(vault, policy, false, now).await?;
    Ok(DueOutcome {
        due: Some(due),
        backup: Some(made.backup),
        pruned,
    })
}

/// `settings` with the school database's administrators (read with `admins_query`, or the
/// list remembered when the database is down) added to its recipients.
async fn with_school_admins(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
    admins_query: Option<&str>,
    target: &PgTarget,
) -> crate::notify::SmtpSettings {
    let mut settings = settings.clone();
    if let Some(query) = admins_query {
        let (admins, _) = refresh_admins(vault, target, query).await;
        for a in admins {
            if !settings.to.iter().any(|t| t.eq_ignore_ascii_case(&a)) {
                settings.to.push(a);
            }
        }
    }
    settings
}

/// Email the administrators that `error` made a `kind` backup of `target` fail, and record
/// the attempt in the history. The caller still reports the backup's own error.
///
/// # Errors
/// The sending error (also recorded in the history).
pub async fn notify_failure(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
    admins_query: Option<&str>,
    kind: BackupKind,
    target: &PgTarget,
    error: &Error,
) -> Result<usize> {
    let started = Utc::now();
    let settings = &with_school_admins(vault, settings, admins_query, target).await;
    let last_success = vault.last_success().await.ok().flatten();
    let failure = crate::notify::Failure {
        at: started,
        kind: kind.as_str().to_string(),
        database: target.describe(),
        code: error.code().to_string(),
        error: error.to_string(),
        last_success,
    };
    let (subject, text, html) = crate::notify::failure_message(&failure);
    let sent = crate::notify::send(settings, &subject, &text, &html).await;
    let summary = sent
        .as_ref()
        .ok()
        .map(|n| format!("failure email sent to {n} administrator(s)"));
    vault
        .record_run(run_record(
            "notify",
            Some(kind),
            started,
            &sent,
            None,
            summary,
        ))
        .await;
    sent
}

/// The stale-backup alert: when no backup succeeded for `max_age` (counted from the newest
/// successful one), email the administrators once — also when the computer was off, as the
/// app and `schedule run-due` call this at start, before catching up. Sent once per last
/// success (remembered beside the catalog); recorded in the history. `Ok(None)`: nothing due.
///
/// # Errors
/// The sending error (also recorded).
pub async fn stale_alert(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
    database: &str,
    max_age: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Option<usize>> {
    let Some(last) = vault.last_success().await? else {
        return Ok(None);
    };
    if now - last < max_age {
        return Ok(None);
    }
    let marker = vault.lock_dir.join("stale-alert.json");
    let remembered = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    let at = |field: &str| -> Option<DateTime<Utc>> {
        remembered[field]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    if at("last_success") == Some(last) {
        return Ok(None);
    }
    // An alert that could not be sent is tried again an hour later, not at every look.
    if at("failed_for") == Some(last) && at("tried_at").is_some_and(|t| now - t < RETRY_ALERT) {
        return Ok(None);
    }
    let hours = (now - last).num_hours();
    let subject = format!("SchoolVault: no backup of {database} for {hours} hours");
    let text = format!(
        "No backup of {database} has succeeded since {last} ({hours} hours ago).\n\n\
         What to do:\n\
         - Open SchoolVault on the backup computer and look at Activity for the error.\n\
         - Check that the computer is on at the scheduled time, and that the database server is reachable.\n\
         - Make a backup now (\"Back up now\", or `schoolvault backup`).\n\n\
         Sent by SchoolVault {APP_VERSION} on {host}. You get this once until a backup succeeds again.\n",
        last = last.to_rfc3339(),
        host = crate::notify::hostname(),
    );
    let html = format!(
        "<p><b>No backup of {database} has succeeded since {last}</b> ({hours} hours ago).</p>\
         <ul><li>Open SchoolVault on the backup computer and look at Activity for the error.</li>\
         <li>Check that the computer is on at the scheduled time, and that the database server is reachable.</li>\
         <li>Make a backup now.</li></ul><p>SchoolVault {APP_VERSION} on {host}. Sent once until a backup succeeds again.</p>",
        database = crate::notify::escape_html(database),
        last = last.to_rfc3339(),
        host = crate::notify::escape_html(&crate::notify::hostname()),
    );
    let started = Utc::now();
    let sent = crate::notify::send(settings, &subject, &text, &html).await;
    let summary = sent.as_ref().ok().map(|n| {
        format!("stale-backup alert sent to {n} administrator(s): no backup for {hours} hours")
    });
    vault
        .record_run(run_record("alert", None, started, &sent, None, summary))
        .await;
    let remember = match &sent {
        Ok(_) => serde_json::json!({"last_success": last.to_rfc3339()}),
        Err(_) => serde_json::json!({
            "last_success": remembered["last_success"],
            "failed_for": last.to_rfc3339(),
            "tried_at": now.to_rfc3339(),
        }),
    };
    let _ = crate::storage::write_private(&marker, remember.to_string().as_bytes());
    Ok(Some(sent?))
}

/// How long after a stale-backup alert that could not be sent it is tried again.
pub const RETRY_ALERT: chrono::Duration = chrono::Duration::hours(1);

/// Forget which week had its report, so that turning the report on again starts with the
/// next Monday rather than sending one at once.
pub fn forget_digest(vault: &Vault) {
    let _ = std::fs::remove_file(vault.lock_dir.join("digest.json"));
}

/// When the weekly report goes out: Monday 07:00, in the schedule's time zone.
pub const DIGEST_CRON: &str = "0 7 * * 1";

/// The weekly report (optional): on the first call after Monday 07:00 (in `zone`, else local
/// time), email the week's backups — succeeded, failed with their errors, the last success,
/// what is kept — once per week (remembered beside the catalog, also when it could not be
/// sent). The first call after it is turned on only remembers the week: the first report
/// comes the next Monday ([`forget_digest`] when it is turned on). `force` sends now
/// (`schoolvault notify digest`). Recorded in the history. `Ok(None)`: nothing due.
///
/// # Errors
/// The sending error (also recorded); `InvalidInput` for a bad time zone.
pub async fn weekly_digest(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
    database: &str,
    zone: Option<&str>,
    now: DateTime<Utc>,
    force: bool,
) -> Result<Option<usize>> {
    let slot = crate::schedule::Schedule::parse(DIGEST_CRON, zone)?
        .due(None, now)?
        .map(|d| d.slot);
    let marker = vault.lock_dir.join("digest.json");
    let remember = |slot: Option<DateTime<Utc>>| {
        if let Some(slot) = slot {
            let _ = crate::storage::write_private(
                &marker,
                serde_json::json!({"week": slot.to_rfc3339()})
                    .to_string()
                    .as_bytes(),
            );
        }
    };
    if !force {
        let sent_for: Option<DateTime<Utc>> = std::fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["week"].as_str().map(str::to_string))
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        match (sent_for, slot) {
            (None, _) => {
                remember(slot);
                return Ok(None);
            }
            (Some(done), Some(slot)) if done >= slot => return Ok(None),
            (Some(_), None) => return Ok(None),
            _ => {}
        }
    }
    let from = now - chrono::Duration::days(7);
    let runs: Vec<RunRecord> = vault
        .catalog
        .runs(5000)
        .await?
        .into_iter()
        .filter(|r| r.started_at >= from && r.started_at <= now)
        .collect();
    let backups = runs.iter().filter(|r| r.operation == "backup");
    let failures: Vec<(DateTime<Utc>, String)> = backups
        .clone()
        .filter(|r| r.outcome != "success")
        .map(|r| (r.started_at, r.message.clone().unwrap_or_default()))
        .collect();
    let all = vault.catalog.list().await?;
    let kept: Vec<&BackupRecord> = all.iter().filter(|b| b.status == "complete").collect();
    let last_success = kept
        .iter()
        .filter(|b| b.kind != BackupKind::Safety)
        .max_by_key(|b| b.created_at)
        .map(|b| (b.created_at, b.id.clone(), b.size));
    let digest = crate::notify::Digest {
        database: database.to_string(),
        from,
        to: now,
        succeeded: backups.clone().filter(|r| r.outcome == "success").count(),
        failed: failures.len(),
        failures: failures.into_iter().take(5).collect(),
        email_problems: runs
            .iter()
            .filter(|r| {
                matches!(r.operation.as_str(), "notify" | "alert" | "digest")
                    && r.outcome != "success"
            })
            .count(),
        last_success,
        kept: (kept.len(), kept.iter().map(|b| b.size).sum()),
        last_test_restore: last_test_restore(vault)
            .filter(|t| !t.unavailable)
            .map(|t| (t.at, t.ok, t.message)),
    };
    let (subject, text, html) = crate::notify::digest_message(&digest);
    let started = Utc::now();
    let sent = crate::notify::send(settings, &subject, &text, &html).await;
    let summary = sent.as_ref().ok().map(|n| {
        format!(
            "weekly report sent to {n} administrator(s): {} succeeded, {} failed",
            digest.succeeded, digest.failed
        )
    });
    vault
        .record_run(run_record("digest", None, started, &sent, None, summary))
        .await;
    // Tried once a week: a report that could not be sent is in the history (and the next
    // one covers the week again), never resent at every look.
    remember(slot);
    Ok(Some(sent?))
}

/// `settings` with the school's administrators added, as remembered beside the catalog at the
/// last backup (or failure email): for the stale alert and the weekly report, which must not
/// query the school database at every look at the schedule.
pub fn with_known_admins(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
) -> crate::notify::SmtpSettings {
    let mut settings = settings.clone();
    let known: Vec<String> = std::fs::read(vault.lock_dir.join("administrators.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for a in known {
        if !settings.to.iter().any(|t| t.eq_ignore_ascii_case(&a)) {
            settings.to.push(a);
        }
    }
    settings
}

/// Read the school's administrators for failure emails and remember them beside the catalog
/// (the list is used when the database cannot be read).
pub async fn refresh_admins(
    vault: &Vault,
    target: &PgTarget,
    query: &str,
) -> (Vec<String>, Option<Error>) {
    crate::notify::school_admins(target, query, &vault.lock_dir.join("administrators.json")).await
}

/// Run `job` (given a progress receiver to report to) and fail it when it makes no progress
/// for `limit`: it is then stopped (its future dropped, so a partial file is removed and its
/// connections closed), recorded in the history as a failed `operation`, and the error says so.
///
/// # Errors
/// The job's own error, or `Cancelled` from the watchdog.
pub async fn with_watchdog<T, F, Fut>(
    vault: &Vault,
    operation: &str,
    kind: Option<BackupKind>,
    limit: std::time::Duration,
    progress: Arc<dyn Progress>,
    job: F,
) -> Result<T>
where
    F: FnOnce(Arc<dyn Progress>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let watched = Arc::new(crate::progress::Watched::new(progress));
    let fut = job(watched.clone());
    watch(vault, operation, kind, limit, &watched, fut).await
}

/// [`with_watchdog`] for a job already started with `watched` as its progress (callers whose
/// future must be `Send` build it first, then hand it over).
///
/// # Errors
/// The job's own error, or `Cancelled` from the watchdog.
pub async fn watch<T>(
    vault: &Vault,
    operation: &str,
    kind: Option<BackupKind>,
    limit: std::time::Duration,
    watched: &crate::progress::Watched,
    job: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let started = Utc::now();
    tokio::pin!(job);
    let tick = std::time::Duration::from_millis(200).min(limit);
    loop {
        tokio::select! {
            out = &mut job => return out,
            () = tokio::time::sleep(tick) => {
                if watched.idle() >= limit {
                    let stalled: Result<T> = Err(Error::new(
                        ErrorKind::Cancelled,
                        format!("The run made no progress for {} seconds and was stopped", limit.as_secs()),
                        "Something held it up (a lock held by another program, a stalled network or disk); nothing was left behind. Check the database server and try again",
                    ));
                    vault
                        .record_run(run_record(operation, kind, started, &stalled, None, None))
                        .await;
                    return stalled;
                }
            }
        }
    }
}
