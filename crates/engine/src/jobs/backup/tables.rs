//! The tables' rows on their way into the archive: the queue the readers take tables from
//! (workers from the front, the snapshot's own connection the small ones from the back), the
//! parts each table's `COPY` output is cut into and compressed on blocking threads, the
//! encrypting sink they share (holding parts until the manifest is written), the buffers they
//! reuse, and the large objects.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::archive::{
    self, gzip_tar_entry, part_path, ArchiveWriter, MemberCompressor, TableEnd, TableManifest,
    PART_SIZE,
};
use crate::error::{Error, Result};
use crate::progress::{Phase, Progress, ProgressEvent};
use crate::source::{TableInfo, TableReader};

use crate::jobs::{internal, join_error, Cancel};

pub(super) struct Counters {
    pub(super) rows: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) tables_done: AtomicU64,
    pub(super) tables_total: u64,
    pub(super) total_bytes: u64,
}

/// Every large object of the snapshot into the archive (`large-objects/<oid>/<part>.bin`,
/// [`archive::LARGE_OBJECT_PART`] bytes at most each, so memory stays bounded), with what
/// `end.json` records of each.
pub(super) async fn export_large_objects<R: TableReader>(
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
    pub(super) writer: ArchiveWriter,
    /// The manifest and pre-data are written: parts go straight to the writer.
    pub(super) open: bool,
    /// The backup failed before the sink opened: a part waiting for it gives up.
    pub(super) abandoned: bool,
    pub(super) held: Vec<Vec<u8>>,
    pub(super) held_bytes: usize,
}

/// The compressed bytes of finished parts held while the schema is captured (a few parts
/// per worker); a worker with more waits for the sink to open.
const HOLD_LIMIT: usize = 12 << 20;

impl ExportShared {
    /// Write `first` (the manifest, the pre-data), then every part held, and open the sink.
    pub(super) fn open_sink(&self, first: &[Vec<u8>]) -> Result<()> {
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
    pub(super) fn abandon(&self) {
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
    pub(super) queue: Mutex<VecDeque<TableInfo>>,
    pub(super) sink: Mutex<Sink>,
    /// Signalled when the sink opens (or the backup is abandoned).
    pub(super) opened: Condvar,
    pub(super) counters: Counters,
    pub(super) progress: Arc<dyn Progress>,
    pub(super) level: u32,
    pub(super) mtime: u64,
    pub(super) cancel: Cancel,
    /// Row batches and compressed parts, reused so that memory stays what the first large
    /// table made it, whatever comes after (fresh buffers fragment the allocator's arenas).
    pub(super) pool: BufferPool,
}

#[derive(Default)]
pub(super) struct BufferPool {
    pub(super) batches: Mutex<Vec<Vec<u8>>>,
    pub(super) parts: Mutex<Vec<Vec<u8>>>,
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
pub(super) async fn export_small_tables<R: TableReader>(
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
    // The table whose last part and end record are still being written while the next
    // table's rows stream in: the server's COPY of a table and the compression of the one
    // before it overlap, which matters when most tables are small. One at most, and only a
    // small last part (a large one would add its batches and compressed bytes to the peak
    // memory, for little: a large table's rows are already compressed as they arrive).
    let mut closing: Option<(Closing, String)> = None;
    loop {
        shared.cancel.check()?;
        let table = next(
            &mut *shared
                .queue
                .lock()
                .map_err(|_| internal("queue poisoned"))?,
        );
        let Some(table) = table else { break };
        let (end, last, overlap) = export_table(worker, &table.manifest, shared).await?;
        if let Some((previous, name)) = closing.take() {
            settle(previous, &name, shared).await?;
        }
        let name = table.manifest.display_name();
        if overlap {
            closing = Some((last, name));
        } else {
            settle(last, &name, shared).await?;
        }
        done.push(end);
    }
    if let Some((previous, name)) = closing.take() {
        settle(previous, &name, shared).await?;
    }
    Ok(done)
}

/// A table's last part and end record being written (on a blocking thread, as the parts
/// are: the sink's lock is held while a part is encrypted and written, and before the
/// manifest is written a record waits with the parts; a runtime thread blocked there held up
/// the other worker's stream and made the backup's memory jump by 30-50 MiB in one run of
/// three).
pub(super) type Closing = tokio::task::JoinHandle<Result<()>>;

/// A table's last part up to this many bytes of rows is finished while the next table streams.
const OVERLAP_PART: usize = 2 * BATCH;

/// Wait until the table's end record is written, then count the table done.
async fn settle(closing: Closing, name: &str, shared: &ExportShared) -> Result<()> {
    closing.await.map_err(join_error)??;
    shared.counters.tables_done.fetch_add(1, Ordering::Relaxed);
    shared.report(name);
    Ok(())
}

/// Rows travel from the COPY stream to a part's compressor in batches of this size; each batch
/// becomes one gzip member of the part.
pub(super) const BATCH: usize = 1 << 20;

/// What a part's compressor receives: batches of rows, then, for a table's last part, the
/// table's end record, written right after the part.
enum PartInput {
    Rows(Vec<u8>),
    End(TableEnd),
}

/// A part being compressed on a blocking thread while its rows arrive. The compressed bytes
/// are held until the part ends (its tar header needs the size), then written under the sink's
/// lock: a worker holds one part's compressed bytes (about 2 MiB) and at most four batches of
/// raw rows (one filling, two queued, one compressing), whatever the size of its tables. (Four
/// queued batches were no faster and, with the coordinator exporting too, took the peak
/// memory at scale 1.5 from a median of 60 MiB to 65 MiB in five runs each.)
pub(super) struct PartWriter {
    tx: tokio::sync::mpsc::Sender<PartInput>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl PartWriter {
    fn start(shared: &Arc<ExportShared>, index: u32, part: u32) -> PartWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<PartInput>(2);
        let shared = shared.clone();
        let task = tokio::task::spawn_blocking(move || {
            let compressing = |e: std::io::Error| Error::io("compressing", &e);
            let mut body = BufferPool::take(&shared.pool.parts, PART_SIZE / 3);
            let mut gz = MemberCompressor::new(shared.level);
            let mut size = 0u64;
            let mut end = None;
            while let Some(input) = rx.blocking_recv() {
                match input {
                    PartInput::Rows(batch) => {
                        gz.append(&batch, &mut body).map_err(compressing)?;
                        size += batch.len() as u64;
                        BufferPool::give(&shared.pool.batches, batch);
                    }
                    PartInput::End(record) => end = Some(record),
                }
            }
            let padding = archive::tar_padding(size);
            if !padding.is_empty() {
                gz.append(padding, &mut body).map_err(compressing)?;
            }
            let head = archive::gzip_tar_header(&part_path(index, part), size, shared.mtime)
                .map_err(compressing)?;
            shared.write_part(head, body)?;
            match end {
                Some(end) => shared.write_table_end(&end),
                None => Ok(()),
            }
        });
        PartWriter { tx, task }
    }

    async fn finish(self) -> Result<()> {
        drop(self.tx);
        self.task.await.map_err(join_error)?
    }

    /// The table's last part: send its end record and let the part finish without waiting.
    async fn close(self, end: TableEnd) -> Result<Closing> {
        if self.tx.send(PartInput::End(end)).await.is_err() {
            return Err(self.failure().await);
        }
        drop(self.tx);
        Ok(self.task)
    }

    /// Why the compressor stopped early (its channel closed): its own error (a full disk…)
    /// rather than "the compressor stopped".
    async fn failure(self) -> Error {
        drop(self.tx);
        match self.task.await {
            Ok(result) => result
                .err()
                .unwrap_or_else(|| internal("the compressor stopped")),
            Err(e) => join_error(e),
        }
    }
}

/// Export one table: its end record, the task writing its last part and that record, and
/// whether that part is small enough ([`OVERLAP_PART`]) to finish while the next table streams.
pub(super) async fn export_table<R: TableReader>(
    worker: &mut R,
    table: &TableManifest,
    shared: &Arc<ExportShared>,
) -> Result<(TableEnd, Closing, bool)> {
    let name = table.display_name();
    shared.report(&name);
    let mut stream = worker.read_table(table).await?;
    let mut hasher = Sha256::new();
    let (mut rows, mut bytes, mut parts) = (0u64, 0u64, 0u32);
    let mut batch: Vec<u8> = BufferPool::take(&shared.pool.batches, BATCH);
    let mut part: Option<PartWriter> = None;
    let mut part_bytes = 0usize;
    let mut at_row_end = true;
    // A chunk is one row (PostgreSQL sends a COPY message per row): per chunk only the copy
    // into the batch and the part's bound are checked; the hash, the row count and the shared
    // counters (cache lines the other readers write too) are updated once per batch.
    let mut tally = |batch: &[u8]| {
        hasher.update(batch);
        let newlines = archive::count_rows(batch);
        rows += newlines;
        bytes += batch.len() as u64;
        shared.counters.rows.fetch_add(newlines, Ordering::Relaxed);
        shared
            .counters
            .bytes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        // A part ends at a row end before it would pass PART_SIZE; one row larger than a
        // part makes a larger part.
        let used = part_bytes + batch.len();
        if used > 0 && used + chunk.len() > PART_SIZE && at_row_end {
            let p = match part.take() {
                Some(p) => p,
                None => PartWriter::start(shared, table.index, parts),
            };
            tally(&batch);
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
            tally(&batch);
            part = Some(send_batch(p, &mut batch, shared).await?);
        }
    }
    drop(stream);
    let last = if part.is_some() || !batch.is_empty() {
        let p = match part.take() {
            Some(p) => p,
            None => PartWriter::start(shared, table.index, parts),
        };
        tally(&batch);
        parts += 1;
        part_bytes += batch.len();
        Some(send_batch(p, &mut batch, shared).await?)
    } else {
        None
    };
    BufferPool::give(&shared.pool.batches, batch);
    let end = TableEnd {
        index: table.index,
        rows,
        bytes,
        parts,
        sha256: hex::encode(hasher.finalize()),
    };
    let closing = match last {
        Some(part) => part.close(end.clone()).await?,
        None => {
            let (sink, record) = (shared.clone(), end.clone());
            tokio::task::spawn_blocking(move || sink.write_table_end(&record))
        }
    };
    Ok((end, closing, part_bytes <= OVERLAP_PART))
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
    if part.tx.send(PartInput::Rows(full)).await.is_ok() {
        return Ok(part);
    }
    Err(part.failure().await)
}
