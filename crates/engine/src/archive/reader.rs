//! Reading an archive: the preamble (magic, version, header), decryption, and the walk over
//! its entries in order with their checks.

use std::fs::File;
use std::io::{self, Read};

use flate2::read::MultiGzDecoder;

use super::*;
use crate::crypto::{DecryptingReader, Fingerprint, Key, NONCE_PREFIX_LEN};
use crate::error::{inner_error, Error, ErrorKind, Result};

/// The unencrypted start of an archive.
#[derive(Debug, Clone)]
pub struct Preamble {
    /// The parsed header.
    pub header: Header,
    /// The bytes from magic to the end of the header (every chunk's AAD).
    pub aad: Vec<u8>,
    /// The format version (2 or 3).
    pub version: u16,
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
    if !(OLDEST_READ_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!("This backup uses format version {version}, which this SchoolVault cannot read (it reads versions {OLDEST_READ_VERSION} to {FORMAT_VERSION})"),
            format!("Open it with a newer SchoolVault; if the file should be version {OLDEST_READ_VERSION} or {FORMAT_VERSION}, it is damaged"),
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
        version,
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
    /// A table's end record (format 3): no part of it follows.
    TableEnd {
        /// The table, from the manifest.
        table: &'a TableManifest,
        /// What the record says (checked against `end.json` at the end of the walk).
        end: &'a TableEnd,
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
    let mut archive = ::tar::Archive::new(crate::tar_guard::TarGuard::new(tar_stream));
    let mut manifest: Option<Manifest> = None;
    let mut end: Option<End> = None;
    // The tables whose end record was met (format 3), with what it said.
    let mut ended: std::collections::HashMap<u32, TableEnd> = std::collections::HashMap::new();
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
                if ended.contains_key(&table) {
                    return Err(structure(&format!("{path} follows its table's end record")));
                }
                visit(Item::Part {
                    table: t,
                    part,
                    data: &mut entry,
                })?;
                // Whatever the visitor left unread must still be read (and authenticated).
                io::copy(&mut entry, &mut io::sink()).map_err(|e| read_error(&e))?;
            } else if let Some(table) = parse_table_end_path(&path) {
                let t = m
                    .tables
                    .iter()
                    .find(|t| t.index == table)
                    .ok_or_else(|| structure(&format!("{path} belongs to no table")))?;
                let record: TableEnd = read_json(&mut entry, &path)?;
                if record.index != table || ended.contains_key(&table) {
                    return Err(structure(&format!(
                        "{path} is not table {table}'s only end record"
                    )));
                }
                visit(Item::TableEnd {
                    table: t,
                    end: &record,
                })?;
                ended.insert(table, record);
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
    // Table end records, where the archive has them (format 3), say what end.json says.
    if !ended.is_empty() {
        for t in &end.tables {
            if ended.get(&t.index) != Some(t) {
                return Err(structure(&format!(
                    "table {}'s end record is missing or differs from end.json",
                    t.index
                )));
            }
        }
    }
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
        assert_eq!(parse_table_end_path(&table_end_path(7)), Some(7));
        assert_eq!(parse_part_path(&table_end_path(7)), None);
        assert_eq!(parse_table_end_path("data/7/000000.copy"), None);
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
