//! The SchoolVault archive format, version 2 (`.svb`): its specification, writer and reader.
//!
//! # Format
//! ```text
//! magic        8 bytes   "SVBACKUP"
//! version      u16 LE    2
//! header_len   u32 LE    at most 1 MiB
//! header       header_len bytes of UTF-8 JSON:
//!              {"cipher":"aes-256-gcm-stream","chunk_size":1048576,
//!               "nonce_prefix":"<7 bytes hex>","key_fingerprint":"<8 bytes hex>",
//!               "compression":"gzip","created_at":"<RFC 3339>","app_version":"0.1.0",
//!               "backup_id":"20261126-021500-3f9a","kind":"scheduled",
//!               "source":{"engine":"postgresql","server_version":"15.19","database":"erp"}}
//! body         STREAM over AES-256-GCM (aead-stream's BE32 flavour): nonce = prefix(7) ‖
//!              counter(u32 BE) ‖ last-chunk flag(1). Each chunk is chunk_size plaintext bytes
//!              plus a 16-byte tag; the last chunk is always shorter than chunk_size (possibly
//!              empty). Every chunk's AAD is the file's bytes from magic to the end of the header,
//!              so a changed header, a dropped, reordered or cut-off chunk, or any flipped bit is
//!              detected.
//! plaintext    gzip (multi-member: each data part is two members, its tar header and then its
//!              data, so parts compress in parallel and stream through) of a POSIX tar stream:
//!                manifest.json          first: backup id, snapshot time, source, tables with
//!                                       their columns, sequence values, objects the schema
//!                                       files do not reproduce
//!                schema/pre-data.sql    schemas, extensions, types, functions, sequences,
//!                                       tables, views (captured in the snapshot)
//!                data/<n>/<part>.copy   table n's rows in COPY text format, parts of at most
//!                                       8 MiB that end at row ends (a part is larger only when
//!                                       one row is); parts of one table are in order, parts
//!                                       of different tables may interleave
//!                schema/post-data.sql   constraints, indexes, triggers, materialized-view
//!                                       refreshes, sequence ownership, comments
//!                end.json               last: per-table rows, bytes, parts and SHA-256 of the
//!                                       table's COPY data; totals
//! ```
//! `end.json` is the sentinel: an archive without it is incomplete, whatever else it holds.
//! After decryption the plaintext is an ordinary `.tar.gz` (`schoolvault decrypt FILE | tar tz`).
//! Readers ignore entries they do not know, so later versions may add entries.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use chrono::{DateTime, Utc};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crypto::{
    random_nonce_prefix, DecryptingReader, EncryptingWriter, Fingerprint, Key, NONCE_PREFIX_LEN,
};
use crate::error::{inner_error, Error, ErrorKind, Result};
pub use crate::source::model::{Privileges, SequenceValue, SourceInfo, TableManifest};

/// The first bytes of every v2 archive.
pub const MAGIC: &[u8; 8] = b"SVBACKUP";
/// The format version this code writes.
pub const FORMAT_VERSION: u16 = 2;
/// Plaintext bytes per encrypted chunk.
pub const CHUNK_SIZE: usize = 1 << 20;
/// The largest part of table data (uncompressed) in one tar entry.
pub const PART_SIZE: usize = 8 << 20;
/// File name extension of archives.
pub const EXTENSION: &str = "svb";
/// The largest header a reader accepts.
pub const MAX_HEADER_LEN: u32 = 1 << 20;
/// The largest chunk size a reader accepts (a bound on the memory a header can ask for).
const MAX_CHUNK_SIZE: u32 = 64 << 20;

/// Why a backup was made.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(export))]
pub enum BackupKind {
    /// Started by a person.
    Manual,
    /// Started by the schedule.
    Scheduled,
    /// Taken automatically before a restore, so the restore can be undone.
    Safety,
}

impl BackupKind {
    /// The name used in the catalog and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Manual => "manual",
            BackupKind::Scheduled => "scheduled",
            BackupKind::Safety => "safety",
        }
    }

    /// Parse a catalog value.
    pub fn parse(s: &str) -> Option<BackupKind> {
        match s {
            "manual" => Some(BackupKind::Manual),
            "scheduled" => Some(BackupKind::Scheduled),
            "safety" => Some(BackupKind::Safety),
            _ => None,
        }
    }
}

/// The authenticated, unencrypted header: readable without the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// Always `aes-256-gcm-stream`.
    pub cipher: String,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// 7 bytes, hex.
    pub nonce_prefix: String,
    /// Which key encrypted it.
    pub key_fingerprint: String,
    /// Always `gzip`.
    pub compression: String,
    /// When the backup started.
    pub created_at: DateTime<Utc>,
    /// The SchoolVault version that wrote it.
    pub app_version: String,
    /// The backup's id (also in the file name).
    pub backup_id: String,
    /// Why it was made.
    pub kind: BackupKind,
    /// What was backed up.
    pub source: SourceInfo,
}

/// `manifest.json`: the first entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (2).
    pub format: u16,
    /// The backup's id.
    pub backup_id: String,
    /// Why it was made.
    pub kind: BackupKind,
    /// The database server's clock when the snapshot was taken.
    pub snapshot_at: DateTime<Utc>,
    /// What was backed up.
    pub source: SourceInfo,
    /// Every table whose data is in the archive.
    pub tables: Vec<TableManifest>,
    /// Sequence values in the snapshot.
    pub sequences: Vec<SequenceValue>,
    /// Whether `schema/pre-data.sql` and `schema/post-data.sql` are in the archive.
    #[serde(default)]
    pub schema: bool,
    /// Objects of the database that the schema files do not reproduce.
    #[serde(default)]
    pub unsupported: Vec<String>,
    /// Owners, privileges, policies and the roles they name, restored after the schema and the
    /// data into a new database (absent from backups made before they travelled).
    #[serde(default, skip_serializing_if = "Privileges::is_empty")]
    pub privileges: Privileges,
}

/// A table in `end.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableEnd {
    /// The number under `data/`.
    pub index: u32,
    /// Rows exported.
    pub rows: u64,
    /// Bytes of COPY data.
    pub bytes: u64,
    /// Parts written.
    pub parts: u32,
    /// SHA-256 of the table's COPY data (all parts in order), hex.
    pub sha256: String,
}

/// `end.json`: the sentinel, the last entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct End {
    /// One per table of the manifest.
    pub tables: Vec<TableEnd>,
    /// Sum of rows.
    pub total_rows: u64,
    /// Sum of COPY bytes.
    pub total_bytes: u64,
    /// When the export finished.
    pub finished_at: DateTime<Utc>,
    /// The large objects (`pg_largeobject`), each with its size and SHA-256; their bytes are
    /// under `large-objects/` (absent from backups made before large objects travelled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large_objects: Vec<LargeObjectEnd>,
}

/// A large object in `end.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LargeObjectEnd {
    /// Its oid (a table refers to it by this number, so it is restored under it).
    pub oid: u32,
    /// Its size in bytes.
    pub size: u64,
    /// Parts written.
    pub parts: u32,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// The most bytes of a large object in one part (`large-objects/<oid>/<part>.bin`): what a
/// restore holds in memory at once.
pub const LARGE_OBJECT_PART: usize = 4 << 20;

/// The tar path of a part of a large object.
pub fn large_object_path(oid: u32, part: u32) -> String {
    format!("large-objects/{oid}/{part:06}.bin")
}

/// Parse `large-objects/<oid>/<part>.bin`.
pub fn parse_large_object_path(path: &str) -> Option<(u32, u32)> {
    let rest = path.strip_prefix("large-objects/")?;
    let (oid, file) = rest.split_once('/')?;
    let part = file.strip_suffix(".bin")?;
    Some((oid.parse().ok()?, part.parse().ok()?))
}

/// The tar path of a data part.
pub fn part_path(table: u32, part: u32) -> String {
    format!("data/{table}/{part:06}.copy")
}

/// Parse `data/<n>/<part>.copy`.
pub fn parse_part_path(path: &str) -> Option<(u32, u32)> {
    let rest = path.strip_prefix("data/")?;
    let (table, file) = rest.split_once('/')?;
    let part = file.strip_suffix(".copy")?;
    Some((table.parse().ok()?, part.parse().ok()?))
}

/// The zero bytes that pad a tar entry of `size` bytes to a whole block.
pub fn tar_padding(size: u64) -> &'static [u8] {
    const ZEROS: [u8; 512] = [0; 512];
    &ZEROS[..((512 - size % 512) % 512) as usize]
}

/// The tar header of an entry of `size` bytes, as a gzip member of its own: a part's data
/// (with [`tar_padding`]) is compressed as the next member while it streams in, and the header
/// is written before it once the size is known.
///
/// # Errors
/// Only for a path tar cannot hold.
pub fn gzip_tar_header(path: &str, size: u64, mtime: u64) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut gz = GzEncoder::new(Vec::with_capacity(128), Compression::fast());
    gz.write_all(header.as_bytes())?;
    gz.finish()
}

/// One tar entry (header, data, padding) compressed as an independent gzip member.
///
/// # Errors
/// Only if compression fails, which it does not for in-memory buffers.
pub fn gzip_tar_entry(path: &str, data: &[u8], mtime: u64, level: u32) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut gz = GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 1024),
        Compression::new(level),
    );
    gz.write_all(header.as_bytes())?;
    gz.write_all(data)?;
    gz.write_all(tar_padding(data.len() as u64))?;
    gz.finish()
}

/// The tar end-of-archive marker (two zero blocks) as a gzip member.
///
/// # Errors
/// As [`gzip_tar_entry`].
pub fn gzip_tar_trailer() -> io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&[0u8; 1024])?;
    gz.finish()
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts the bytes read through it into a shared counter (for progress).
pub struct CountingReader<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> CountingReader<R> {
    /// Count what is read from `inner` into `count`.
    pub fn new(inner: R, count: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        CountingReader { inner, count }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// SHA-256 (hex) and size of a file.
///
/// # Errors
/// I/O errors.
pub fn sha256_file(path: &std::path::Path) -> Result<(String, u64)> {
    let mut f =
        File::open(path).map_err(|e| Error::io(format_args!("reading {}", path.display()), &e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(format_args!("reading {}", path.display()), &e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Writes an archive: the preamble at creation, then gzip members, then [`ArchiveWriter::finish`].
pub struct ArchiveWriter {
    body: EncryptingWriter<HashingWriter<BufWriter<File>>>,
}

/// What [`ArchiveWriter::finish`] returns.
pub struct WrittenArchive {
    /// The file, flushed but not yet synced.
    pub file: File,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
}

impl ArchiveWriter {
    /// Write the preamble of an archive for `header` (whose cipher fields are filled in here)
    /// into `file`.
    ///
    /// # Errors
    /// I/O errors writing the file.
    pub fn create(file: File, key: &Key, header: Header) -> Result<Self> {
        let prefix = random_nonce_prefix();
        let preamble = preamble(key, &prefix, CHUNK_SIZE, header)?;
        let mut out = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            written: 0,
        };
        out.write_all(&preamble)
            .map_err(|e| Error::io("writing the backup file", &e))?;
        Ok(ArchiveWriter {
            body: EncryptingWriter::new(out, key, &prefix, preamble, CHUNK_SIZE),
        })
    }

    /// Append compressed bytes (whole gzip members).
    ///
    /// # Errors
    /// I/O errors, a full disk among them.
    pub fn write_member(&mut self, gz: &[u8]) -> Result<()> {
        self.body
            .write_all(gz)
            .map_err(|e| Error::io("writing the backup file", &e))
    }

    /// Seal the stream and flush the file.
    ///
    /// # Errors
    /// I/O errors, a full disk among them.
    pub fn finish(self) -> Result<WrittenArchive> {
        let out = self
            .body
            .finish()
            .map_err(|e| Error::io("writing the backup file", &e))?;
        let sha256 = hex::encode(out.hasher.finalize());
        let file = out
            .inner
            .into_inner()
            .map_err(|e| Error::io("writing the backup file", e.error()))?;
        Ok(WrittenArchive {
            file,
            size: out.written,
            sha256,
        })
    }
}

/// The bytes from magic to the end of the header for `header`, whose cipher fields are filled
/// in here.
fn preamble(
    key: &Key,
    prefix: &[u8; NONCE_PREFIX_LEN],
    chunk_size: usize,
    mut header: Header,
) -> Result<Vec<u8>> {
    header.cipher = "aes-256-gcm-stream".into();
    header.compression = "gzip".into();
    header.chunk_size = chunk_size as u32;
    header.nonce_prefix = hex::encode(prefix);
    header.key_fingerprint = key.fingerprint().to_string();
    let json = serde_json::to_vec(&header)
        .map_err(|e| Error::new(ErrorKind::Io, format!("encoding the header: {e}"), ""))?;
    let mut preamble = Vec::with_capacity(14 + json.len());
    preamble.extend_from_slice(MAGIC);
    preamble.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    preamble.extend_from_slice(&(json.len() as u32).to_le_bytes());
    preamble.extend_from_slice(&json);
    Ok(preamble)
}

/// A whole archive in memory: the preamble for `header` (cipher fields filled in as
/// [`ArchiveWriter::create`] does) and `gz`, the compressed plaintext (gzip members of a tar
/// stream, or any bytes), encrypted with `key` in chunks of `chunk_size` plaintext bytes
/// ([`CHUNK_SIZE`] as the writer uses; readers take any size up to 64 MiB, and a small one
/// makes several chunks of a small plaintext). For tests and fuzzing, which need archives
/// whose plaintext they choose; backups are written with [`ArchiveWriter`].
///
/// # Errors
/// `InvalidInput` for a chunk size of 0 or above 64 MiB.
pub fn seal_in_memory(key: &Key, header: Header, chunk_size: usize, gz: &[u8]) -> Result<Vec<u8>> {
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE as usize {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("A chunk size of {chunk_size} bytes is impossible"),
            "Use one from 1 byte to 64 MiB",
        ));
    }
    let prefix = random_nonce_prefix();
    let preamble = preamble(key, &prefix, chunk_size, header)?;
    let mut w = EncryptingWriter::new(preamble.clone(), key, &prefix, preamble, chunk_size);
    w.write_all(gz)
        .and_then(|()| w.finish())
        .map_err(|e| Error::io("encrypting in memory", &e))
}

/// The unencrypted start of an archive.
#[derive(Debug, Clone)]
pub struct Preamble {
    /// The parsed header.
    pub header: Header,
    /// The bytes from magic to the end of the header (every chunk's AAD).
    pub aad: Vec<u8>,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    fingerprint: Fingerprint,
}

impl Preamble {
    /// The fingerprint of the key that encrypted the archive.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

fn damaged_header(detail: &str) -> Error {
    Error::new(
        ErrorKind::Damaged,
        format!("The backup file's header is damaged ({detail})"),
        "Its bytes changed after it was written; use another copy of this backup",
    )
}

/// Whether `bytes` look like the start of a v2 archive (the magic, allowing one damaged byte).
pub fn looks_like_v2(bytes: &[u8]) -> bool {
    bytes.len() >= MAGIC.len()
        && bytes
            .iter()
            .zip(MAGIC.iter())
            .filter(|(a, b)| a != b)
            .count()
            <= 1
}

/// Read and check the preamble.
///
/// # Errors
/// `NotABackup` when the magic is absent, `Damaged` when it is nearly there or the header does
/// not parse, `UnsupportedVersion` for a version this code does not read, `Truncated` for a file
/// shorter than its header.
pub fn read_preamble(r: &mut impl Read) -> Result<Preamble> {
    let mut fixed = [0u8; 14];
    let got = read_full(r, &mut fixed).map_err(|e| Error::io("reading the backup file", &e))?;
    if &fixed[..8] != MAGIC {
        if got >= 8 && looks_like_v2(&fixed[..8]) {
            return Err(damaged_header("its first bytes are not quite \"SVBACKUP\""));
        }
        return Err(Error::new(
            ErrorKind::NotABackup,
            "This file is not a SchoolVault backup",
            "Choose a .svb file made by SchoolVault (or an old-system .enc backup)",
        ));
    }
    if got < fixed.len() {
        return Err(truncated_header());
    }
    let version = u16::from_le_bytes([fixed[8], fixed[9]]);
    if version != FORMAT_VERSION {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!("This backup uses format version {version}, which this SchoolVault cannot read (it reads version {FORMAT_VERSION})"),
            "Open it with a newer SchoolVault; if the file should be version 2, it is damaged",
        ));
    }
    let len = u32::from_le_bytes([fixed[10], fixed[11], fixed[12], fixed[13]]);
    if len == 0 || len > MAX_HEADER_LEN {
        return Err(damaged_header("its length is impossible"));
    }
    let mut json = vec![0u8; len as usize];
    if read_full(r, &mut json).map_err(|e| Error::io("reading the backup file", &e))? < json.len() {
        return Err(truncated_header());
    }
    let header: Header =
        serde_json::from_slice(&json).map_err(|_| damaged_header("it is not valid JSON"))?;
    if header.cipher != "aes-256-gcm-stream" || header.compression != "gzip" {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "This backup says it uses {} / {}, which this SchoolVault cannot read; the file may be damaged",
                header.cipher, header.compression
            ),
            "Open it with a newer SchoolVault",
        ));
    }
    if header.chunk_size == 0 || header.chunk_size > MAX_CHUNK_SIZE {
        return Err(damaged_header("its chunk size is impossible"));
    }
    let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
    hex::decode_to_slice(&header.nonce_prefix, &mut nonce_prefix)
        .map_err(|_| damaged_header("its nonce is not 7 hex bytes"))?;
    let fingerprint = Fingerprint::from_hex(&header.key_fingerprint)
        .map_err(|_| damaged_header("its key fingerprint is not 8 hex bytes"))?;
    let mut aad = fixed.to_vec();
    aad.extend_from_slice(&json);
    Ok(Preamble {
        header,
        aad,
        nonce_prefix,
        fingerprint,
    })
}

fn truncated_header() -> Error {
    Error::new(
        ErrorKind::Truncated,
        "The backup file is incomplete: it ends inside its header",
        "It was probably cut short while being copied or written; use another copy of this backup",
    )
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether it is the header's key fingerprint that is damaged, not the key that is wrong: true
/// when the archive's first chunk authenticates with `key` once the header names `key`.
pub fn fingerprint_was_damaged(path: &std::path::Path, pre: &Preamble, key: &Key) -> bool {
    let old = format!("\"key_fingerprint\":\"{}\"", pre.header.key_fingerprint);
    let new = format!("\"key_fingerprint\":\"{}\"", key.fingerprint());
    let Some(pos) = pre.aad.windows(old.len()).position(|w| w == old.as_bytes()) else {
        return false;
    };
    if old.len() != new.len() {
        return false;
    }
    let mut aad = pre.aad.clone();
    aad[pos..pos + new.len()].copy_from_slice(new.as_bytes());
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    if io::Seek::seek(&mut file, io::SeekFrom::Start(pre.aad.len() as u64)).is_err() {
        return false;
    }
    let mut r = DecryptingReader::new(
        file,
        key,
        &pre.nonce_prefix,
        aad,
        pre.header.chunk_size as usize,
        pre.aad.len() as u64,
    );
    r.read(&mut [0u8; 1]).is_ok()
}

/// The decrypted, decompressed plaintext (a tar stream) of an archive whose preamble was read
/// from `r`.
pub fn plaintext<R: Read>(r: R, pre: &Preamble, key: &Key) -> MultiGzDecoder<DecryptingReader<R>> {
    MultiGzDecoder::new(decrypted(r, pre, key))
}

/// The decrypted gzip stream (a `.tar.gz`) of an archive whose preamble was read from `r`.
pub fn decrypted<R: Read>(r: R, pre: &Preamble, key: &Key) -> DecryptingReader<R> {
    DecryptingReader::new(
        r,
        key,
        &pre.nonce_prefix,
        pre.aad.clone(),
        pre.header.chunk_size as usize,
        pre.aad.len() as u64,
    )
}

/// The tar path of the schema before the data.
pub const PRE_DATA: &str = "schema/pre-data.sql";
/// The tar path of the schema after the data.
pub const POST_DATA: &str = "schema/post-data.sql";

/// An entry met while walking an archive.
pub enum Item<'a> {
    /// `manifest.json`.
    Manifest(&'a Manifest),
    /// `schema/pre-data.sql` or `schema/post-data.sql`.
    Schema {
        /// [`PRE_DATA`] or [`POST_DATA`].
        path: &'a str,
        /// The SQL.
        sql: String,
    },
    /// A part of a table's data.
    Part {
        /// The table, from the manifest.
        table: &'a TableManifest,
        /// The part number.
        part: u32,
        /// The part's COPY data.
        data: &'a mut dyn Read,
    },
    /// A part of a large object's bytes.
    LargeObject {
        /// Its oid.
        oid: u32,
        /// The part number.
        part: u32,
        /// The part's bytes (at most [`LARGE_OBJECT_PART`]).
        data: &'a mut dyn Read,
    },
}

/// Map an error met while reading the plaintext to an engine error.
pub fn read_error(err: &io::Error) -> Error {
    if inner_error(err).is_some() {
        return Error::io("reading the backup", err);
    }
    // `Other` is never an operating-system error (std does not use it): it is what the tar
    // reader reports for a malformed tar stream ("archive header checksum mismatch", …).
    match err.kind() {
        io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::Other => {
            Error::new(
                ErrorKind::Damaged,
                format!("The backup's contents cannot be read ({err})"),
                "The file decrypted but its contents are not a valid archive; use another copy of this backup",
            )
        }
        _ => Error::io("reading the backup", err),
    }
}

/// Walk every entry of the plaintext tar stream `tar_stream` in order, calling `visit` for the
/// manifest and each data part, and return the manifest and the `end.json` sentinel.
/// It checks the order (manifest first, end last), that every part belongs to a listed table,
/// and that the encrypted stream is complete (its final chunk authenticates).
///
/// # Errors
/// `Damaged`/`Truncated` from decryption, `Inconsistent` for an archive whose structure is
/// wrong, and whatever `visit` returns.
pub fn walk<R: Read>(
    tar_stream: MultiGzDecoder<DecryptingReader<R>>,
    mut visit: impl FnMut(Item<'_>) -> Result<()>,
) -> Result<(Manifest, End)> {
    let mut archive = tar::Archive::new(crate::tar_guard::TarGuard::new(tar_stream));
    let mut manifest: Option<Manifest> = None;
    let mut end: Option<End> = None;
    {
        let entries = archive.entries().map_err(|e| read_error(&e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| read_error(&e))?;
            let path = entry
                .path()
                .map_err(|e| read_error(&e))?
                .to_string_lossy()
                .into_owned();
            if end.is_some() {
                return Err(structure(&format!("{path} follows end.json")));
            }
            if path == "manifest.json" {
                if manifest.is_some() {
                    return Err(structure("two manifests"));
                }
                let m: Manifest = read_json(&mut entry, "manifest.json")?;
                visit(Item::Manifest(&m))?;
                manifest = Some(m);
                continue;
            }
            let Some(m) = manifest.as_ref() else {
                return Err(structure(&format!("{path} comes before manifest.json")));
            };
            if path == "end.json" {
                end = Some(read_json(&mut entry, "end.json")?);
            } else if path == PRE_DATA || path == POST_DATA {
                let mut sql = String::new();
                (&mut entry)
                    .take(256 << 20)
                    .read_to_string(&mut sql)
                    .map_err(|e| read_error(&e))?;
                visit(Item::Schema { path: &path, sql })?;
            } else if let Some((table, part)) = parse_part_path(&path) {
                let t = m
                    .tables
                    .iter()
                    .find(|t| t.index == table)
                    .ok_or_else(|| structure(&format!("{path} belongs to no table")))?;
                visit(Item::Part {
                    table: t,
                    part,
                    data: &mut entry,
                })?;
                // Whatever the visitor left unread must still be read (and authenticated).
                io::copy(&mut entry, &mut io::sink()).map_err(|e| read_error(&e))?;
            } else if let Some((oid, part)) = parse_large_object_path(&path) {
                if entry.size() > LARGE_OBJECT_PART as u64 {
                    return Err(structure(&format!("{path} is larger than a part may be")));
                }
                visit(Item::LargeObject {
                    oid,
                    part,
                    data: &mut entry,
                })?;
                io::copy(&mut entry, &mut io::sink()).map_err(|e| read_error(&e))?;
            }
        }
    }
    let manifest = manifest.ok_or_else(|| structure("it has no manifest.json"))?;
    let end = end.ok_or_else(|| {
        Error::new(
            ErrorKind::Truncated,
            "The backup is incomplete: it has no end record (end.json)",
            "The backup did not finish when it was made; use another backup",
        )
    })?;
    // Read to the end of the encrypted stream so its final chunk is authenticated.
    let mut rest = archive.into_inner().into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| read_error(&e))?;
    if !rest.get_ref().is_complete() {
        return Err(Error::new(
            ErrorKind::Truncated,
            "The backup file is incomplete: its encrypted stream has no final block",
            "Use another copy of this backup",
        ));
    }
    Ok((manifest, end))
}

fn structure(detail: &str) -> Error {
    Error::new(
        ErrorKind::Damaged,
        format!("The backup's contents are not in the expected order: {detail}"),
        "The file was not written by SchoolVault or is damaged; use another copy",
    )
}

/// The most a JSON entry (manifest, end record) may hold: far more than 100,000 tables need,
/// and a bound on the memory a crafted archive can make a reader use.
pub const MAX_JSON_ENTRY: u64 = 64 << 20;

/// Read a JSON entry of at most [`MAX_JSON_ENTRY`] bytes.
///
/// # Errors
/// `Damaged` for a larger entry or one that is not the expected JSON; read errors.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    r: &mut impl Read,
    what: &str,
) -> Result<T> {
    let mut buf = Vec::new();
    r.take(MAX_JSON_ENTRY + 1)
        .read_to_end(&mut buf)
        .map_err(|e| read_error(&e))?;
    if buf.len() as u64 > MAX_JSON_ENTRY {
        return Err(Error::new(
            ErrorKind::Damaged,
            format!(
                "The backup's {what} is larger than {} MiB, more than SchoolVault ever writes",
                MAX_JSON_ENTRY >> 20
            ),
            "The file was not written by SchoolVault or is damaged; use another copy",
        ));
    }
    serde_json::from_slice(&buf).map_err(|e| {
        Error::new(
            ErrorKind::Damaged,
            format!("The backup's {what} cannot be read ({e})"),
            "Use another copy of this backup",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_paths_round_trip() {
        assert_eq!(parse_part_path(&part_path(12, 3)), Some((12, 3)));
        assert_eq!(parse_part_path("data/x/1.copy"), None);
        assert_eq!(parse_part_path("schema/pre-data.sql"), None);
    }

    #[test]
    fn magic_detection() {
        assert!(looks_like_v2(b"SVBACKUP"));
        assert!(looks_like_v2(b"SVBACKUQ"));
        assert!(!looks_like_v2(b"\x00\x01garbage"));
    }

    #[test]
    fn not_a_backup() {
        let e = read_preamble(&mut &b"hello world, this is text"[..]).expect_err("text");
        assert_eq!(e.kind(), ErrorKind::NotABackup);
        let e = read_preamble(&mut &b"SVBACKUP\x03\x00"[..]).expect_err("short");
        assert_eq!(e.kind(), ErrorKind::Truncated);
    }
}
