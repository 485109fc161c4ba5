//! The SchoolVault archive format, version 3 (`.svb`; version 2 is read too): its
//! specification, writer and reader.
//!
//! # Format
//! ```text
//! magic        8 bytes   "SVBACKUP"
//! version      u16 LE    3 (2 for files written before 2026-12-04)
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
//!                schema/post-data.sql   constraints, indexes, triggers, materialized-view
//!                                       refreshes, sequence ownership, comments (to be run
//!                                       after the data; here so that a restore can build a
//!                                       table's indexes as soon as that table is loaded)
//!                data/<n>/<part>.copy   table n's rows in COPY text format, parts of at most
//!                                       8 MiB that end at row ends (a part is larger only when
//!                                       one row is); parts of one table are in order, parts
//!                                       of different tables may interleave
//!                table-ends/<n>.json    right after table n's last part (also for a table
//!                                       without rows): its rows, bytes, parts and SHA-256,
//!                                       as in end.json; no part of table n follows it
//!                large-objects/<oid>/<part>.bin
//!                end.json               last: per-table rows, bytes, parts and SHA-256 of the
//!                                       table's COPY data; totals
//! ```
//! `end.json` is the sentinel: an archive without it is incomplete, whatever else it holds.
//! Version 2 differs only in its order and its table records: `schema/post-data.sql` comes
//! after the data, and there is no `table-ends/<n>.json` (a table's end is known only at
//! `end.json`). A version-2 reader would run a version-3 post-data script before the data, so
//! the version number changed; this code reads both.
//! After decryption the plaintext is an ordinary `.tar.gz` (`schoolvault decrypt FILE | tar tz`).
//! Readers ignore entries they do not know, so later versions may add entries.
//!
//! The code: this module holds the format's constants, header, manifest and `end.json` types
//! and entry names; [`entries`] the gzip-member tar entries and the hashing and counting streams;
//! [`writer`] the archive writer; [`reader`] the preamble, decryption and the walk over the
//! entries.

mod entries;
mod reader;
mod writer;

pub use entries::*;
pub use reader::*;
pub use writer::*;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::source::model::{Privileges, SequenceValue, SourceInfo, TableManifest};
/// The first bytes of every v2 archive.
pub const MAGIC: &[u8; 8] = b"SVBACKUP";
/// The format version this code writes.
pub const FORMAT_VERSION: u16 = 3;
/// The oldest format version this code reads (the post-data after the data, no table end
/// records).
pub const OLDEST_READ_VERSION: u16 = 2;
/// Plaintext bytes per encrypted chunk.
pub const CHUNK_SIZE: usize = 1 << 20;
/// The largest part of table data (uncompressed) in one tar entry.
pub const PART_SIZE: usize = 8 << 20;
/// File name extension of archives.
pub const EXTENSION: &str = "svb";
/// The largest header a reader accepts.
pub const MAX_HEADER_LEN: u32 = 1 << 20;
/// The largest chunk size a reader accepts (a bound on the memory a header can ask for).
pub(crate) const MAX_CHUNK_SIZE: u32 = 64 << 20;

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
    /// Format version (3, or 2 for an older file).
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

/// The tar path of a table's end record (format 3), right after its last part.
pub fn table_end_path(table: u32) -> String {
    format!("table-ends/{table}.json")
}

/// Parse `table-ends/<n>.json`.
pub fn parse_table_end_path(path: &str) -> Option<u32> {
    path.strip_prefix("table-ends/")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Parse `data/<n>/<part>.copy`.
pub fn parse_part_path(path: &str) -> Option<(u32, u32)> {
    let rest = path.strip_prefix("data/")?;
    let (table, file) = rest.split_once('/')?;
    let part = file.strip_suffix(".copy")?;
    Some((table.parse().ok()?, part.parse().ok()?))
}
