//! The old system's backup files ("v1"): recognise, open, diagnose, and restore them.
//!
//! Layout, as the school ERP's own backup service wrote it (SEED.md, DESIGN §5):
//! `[16-byte IV][16-byte GCM tag][AES-256-GCM ciphertext]`, a 16-byte GCM nonce (Node allows
//! it), the key being 64 hex characters (`BACKUP_ENCRYPTION_KEY`). The plaintext is gzip of
//! `{"version":"1.0","timestamp":"…","tables":{"users":[…],…}}`, records as Prisma serialised
//! them: camelCase column names, DateTime as ISO-8601 strings, Decimal as strings, Json nested,
//! Bytes as `{"type":"Buffer","data":[…]}`. Keys are Prisma model delegates; the 22 the old
//! service wrote map to tables by [`V1_TABLES`].
//!
//! A file is one GCM message, so it is authenticated only as a whole and read into memory, as
//! the old system did. When it does not authenticate, the file is diagnosed without trusting
//! it: GCM is CTR mode, so with the right key the first plaintext bytes are gzip's magic. That
//! tells a wrong key from a damaged file; decompressing the unauthenticated plaintext (never
//! used for anything else) tells a cut-short file from one with changed bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use aes_gcm::aead::array::typenum::U16;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use ctr::cipher::{KeyIvInit, StreamCipher};
use ghash::universal_hash::UniversalHash;
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::crypto::Key;
use crate::error::{Error, ErrorKind, Result};
use crate::source::postgres::{col, db_error, qualified, quote_ident, PgTarget};

/// The old system's built-in development key, used when none was configured.
pub const DEV_KEY_HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The keys the old service wrote, and the tables (schema `public`) they hold.
pub const V1_TABLES: [(&str, &str); 22] = [
    ("users", "User"),
    ("administrators", "Administrator"),
    ("teachers", "Teacher"),
    ("students", "Student"),
    ("parents", "Parent"),
    ("academicYears", "AcademicYear"),
    ("terms", "Term"),
    ("classes", "Class"),
    ("sections", "ClassSection"),
    ("subjects", "Subject"),
    ("studentAttendance", "StudentAttendance"),
    ("exams", "Exam"),
    ("examResults", "ExamResult"),
    ("assignments", "Assignment"),
    ("feeStructures", "FeeStructure"),
    ("feePayments", "FeePayment"),
    ("announcements", "Announcement"),
    ("messages", "Message"),
    ("notifications", "Notification"),
    ("documents", "Document"),
    ("events", "Event"),
    ("auditLogs", "audit_logs"),
];

const IV_LEN: usize = 16;
const TAG_LEN: usize = 16;
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

type Aes256Gcm16 = AesGcm<Aes256, U16>;
type Ctr = ctr::Ctr32BE<Aes256>;

/// The table a v1 key holds, if it is one of the 22.
pub fn table_for(key: &str) -> Option<&'static str> {
    V1_TABLES.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
}

/// An opened v1 file.
#[derive(Debug, Clone)]
pub struct V1Backup {
    /// `version` (always "1.0" so far).
    pub version: String,
    /// `timestamp`, as written.
    pub timestamp: String,
    /// Records by v1 key, in the file's order.
    pub tables: Vec<(String, Vec<Value>)>,
    /// True when it opened with the old system's public development key.
    pub dev_key: bool,
    /// The fingerprint of the key that opened it.
    pub key_fingerprint: String,
}

/// What `inspect` and `verify` show of a v1 file.
#[derive(Debug, Clone, Serialize)]
pub struct V1Summary {
    /// `version`.
    pub version: String,
    /// `timestamp`.
    pub timestamp: String,
    /// One line per key: key, table, records.
    pub tables: Vec<V1Table>,
    /// Opened with the old development key: effectively unencrypted.
    pub dev_key: bool,
}

/// A key of a v1 file.
#[derive(Debug, Clone, Serialize)]
pub struct V1Table {
    /// The v1 key, e.g. `studentAttendance`.
    pub key: String,
    /// The table it maps to, if any.
    pub table: Option<String>,
    /// Records.
    pub records: u64,
}

impl V1Backup {
    /// The summary.
    pub fn summary(&self) -> V1Summary {
        V1Summary {
            version: self.version.clone(),
            timestamp: self.timestamp.clone(),
            tables: self
                .tables
                .iter()
                .map(|(k, rows)| V1Table {
                    key: k.clone(),
                    table: table_for(k).map(str::to_string),
                    records: rows.len() as u64,
                })
                .collect(),
            dev_key: self.dev_key,
        }
    }

    /// Records in all.
    pub fn records(&self) -> u64 {
        self.tables.iter().map(|(_, r)| r.len() as u64).sum()
    }
}

/// The warning shown for a file that opened with the development key.
pub const DEV_KEY_WARNING: &str = "This old-system backup opened only with the old system's built-in development key, which is public: the file was effectively unencrypted and is NOT authenticated (anyone could have written or changed it). Restore it only if you know where it came from";

/// The public development key's fingerprint.
pub fn dev_key_fingerprint() -> Option<crate::crypto::Fingerprint> {
    Key::from_hex(DEV_KEY_HEX).ok().map(|k| k.fingerprint())
}

/// Whether `key` is the old system's public development key, which must never protect a new
/// backup: anyone could read it, and anyone could forge a backup that restores their data.
pub fn is_dev_key(key: &Key) -> bool {
    Key::from_hex(DEV_KEY_HEX).is_ok_and(|dev| dev.fingerprint() == key.fingerprint())
}

/// The 16-byte counter block GCM starts from for a 16-byte IV: inc32(GHASH_H(IV ‖ 0⁶⁴ ‖ 128)).
fn ctr_start(key: &Key, iv: &[u8]) -> [u8; 16] {
    // H = AES_K(0¹²⁸): the first keystream block of CTR from a zero counter.
    let mut h = [0u8; 16];
    Ctr::new(key.bytes().into(), (&[0u8; 16]).into()).apply_keystream(&mut h);
    let mut ghash = ghash::GHash::new(&h.into());
    ghash.update_padded(iv);
    let mut lens = [0u8; 16];
    lens[8..].copy_from_slice(&((iv.len() as u64) * 8).to_be_bytes());
    ghash.update_padded(&lens);
    let j0 = ghash.finalize();
    let mut counter = [0u8; 16];
    counter.copy_from_slice(&j0);
    let c =
        u32::from_be_bytes([counter[12], counter[13], counter[14], counter[15]]).wrapping_add(1);
    counter[12..].copy_from_slice(&c.to_be_bytes());
    counter
}

/// The plaintext CTR gives with `key`, without authentication: for diagnosis only.
fn unauthenticated(key: &Key, file: &[u8]) -> Vec<u8> {
    let counter = ctr_start(key, &file[..IV_LEN]);
    let mut data = file[IV_LEN + TAG_LEN..].to_vec();
    Ctr::new(key.bytes().into(), (&counter).into()).apply_keystream(&mut data);
    data
}

fn decrypt(key: &Key, file: &[u8]) -> Option<Vec<u8>> {
    let cipher = Aes256Gcm16::new(key.bytes().into());
    let iv: &[u8; IV_LEN] = file[..IV_LEN].try_into().ok()?;
    let tag: &[u8; TAG_LEN] = file[IV_LEN..IV_LEN + TAG_LEN].try_into().ok()?;
    let mut data = file[IV_LEN + TAG_LEN..].to_vec();
    cipher
        .decrypt_inout_detached(iv.into(), b"", data.as_mut_slice().into(), tag.into())
        .ok()?;
    Some(data)
}

/// Files up to this size are read whole and authenticated without sniffing (memory: a few
/// times this); larger ones must look like gzip under one of the keys first.
const READ_WHOLE: u64 = 32 << 20;

/// The catalog's `engine` of an old-system file found by a rescan.
pub const CATALOG_ENGINE: &str = "postgresql (old system, v1)";

/// How many bytes of a file [`sniff`] needs.
pub const SNIFF_LEN: usize = IV_LEN + TAG_LEN + 3;

/// The largest file the old service could have written: its JSON was at most [`MAX_JSON`]
/// (a JavaScript string), and gzip never grows data by more than a few bytes per 16 KiB.
pub const MAX_FILE: u64 = MAX_JSON + (MAX_JSON >> 10) + 1024;

/// Decide from the first [`SNIFF_LEN`] bytes and the file's size whether it can be an
/// old-system file for one of `keys` (or the development key), without reading the rest (for
/// files over 32 MiB; smaller ones always pass, to be authenticated whole): AES-GCM
/// is CTR mode underneath, so the right key turns the first ciphertext bytes into gzip's magic.
/// A random or foreign file (a 10 GB video picked by mistake) is refused here, in bounded
/// memory; only a file that passes is read whole and authenticated by [`open`].
///
/// # Errors
/// `NotABackup` when no key turns it into gzip, or when it is larger than the old service
/// could write.
pub fn sniff(head: &[u8], size: u64, keys: &[Key]) -> Result<()> {
    if head.len() < SNIFF_LEN {
        return Err(not_a_backup());
    }
    if size > MAX_FILE {
        return Err(Error::new(
            ErrorKind::NotABackup,
            format!(
                "This file ({} MB) is not a SchoolVault backup, and it is larger than any old-system backup can be",
                size / 1_000_000
            ),
            "Pick a .svb file made by SchoolVault or an .enc file of the old backup service",
        ));
    }
    if size <= READ_WHOLE {
        // Small enough to authenticate outright: `open` then tells a damaged file under the
        // right key from a foreign one exactly.
        return Ok(());
    }
    let dev = Key::from_hex(DEV_KEY_HEX)?;
    let head = &head[..SNIFF_LEN];
    let gzip = keys
        .iter()
        .chain(std::iter::once(&dev))
        .any(|k| unauthenticated(k, head).starts_with(&GZIP_MAGIC));
    if gzip {
        Ok(())
    } else {
        Err(not_a_backup())
    }
}

/// Open a v1 file with the first of `keys` (then the old development key) that authenticates it.
///
/// # Errors
/// `NotABackup` ("not a backup, or made with another key") when no key opens it, `Truncated`
/// or `Damaged` when a key is right but the file does not authenticate, `Damaged` for plaintext
/// that is not gzip, not JSON, or lacks `version`/`tables`.
pub fn open(file: &[u8], keys: &[Key]) -> Result<V1Backup> {
    let dev = Key::from_hex(DEV_KEY_HEX)?;
    if file.len() < IV_LEN + TAG_LEN + GZIP_MAGIC.len() {
        return Err(not_a_backup());
    }
    let candidates: Vec<(&Key, bool)> = keys
        .iter()
        // The dev key is the dev key wherever it came from (an old keychain import).
        .map(|k| (k, is_dev_key(k)))
        .chain(std::iter::once((&dev, true)))
        .collect();
    for (key, is_dev) in &candidates {
        if let Some(plain) = decrypt(key, file) {
            let mut backup = parse(&plain, *is_dev)?;
            backup.key_fingerprint = key.fingerprint().to_string();
            return Ok(backup);
        }
    }
    // Nothing authenticates: a wrong key, or a damaged file?
    for (key, _) in &candidates {
        let plain = unauthenticated(key, file);
        if plain.starts_with(&GZIP_MAGIC) {
            let cut_short = matches!(
                std::io::copy(&mut flate2::read::GzDecoder::new(&plain[..]), &mut std::io::sink()),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof
            );
            return Err(if cut_short {
                Error::new(
                    ErrorKind::Truncated,
                    "This old-system backup is incomplete: the file was cut short",
                    "It was probably truncated while being copied; use another copy of this backup",
                )
            } else {
                Error::new(
                    ErrorKind::Damaged,
                    "This old-system backup is damaged: its bytes changed after it was written, so it does not authenticate",
                    "Use another copy of this backup",
                )
            });
        }
    }
    Err(not_a_backup())
}

fn not_a_backup() -> Error {
    Error::new(
        ErrorKind::NotABackup,
        "This file is not a SchoolVault backup, or it is an old-system backup made with another key",
        "For an old-system .enc file, set BACKUP_ENCRYPTION_KEY to that system's key (or import it with `schoolvault key import`)",
    )
}

/// The most JSON an old-system file may decompress to: the old service built it as one
/// JavaScript string, which cannot be longer than about 1 GiB; anything larger is not its file.
const MAX_JSON: u64 = 1 << 30;

/// Counts what is read through it (to tell "too large" from "not JSON").
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

fn parse(gz: &[u8], dev_key: bool) -> Result<V1Backup> {
    // Parsed as it is decompressed: no copy of the whole JSON is held, so a "gzip bomb" of
    // white space or padding costs nothing, and past MAX_JSON it is refused.
    let mut json = Counted {
        inner: std::io::BufReader::with_capacity(
            1 << 16,
            flate2::read::GzDecoder::new(gz).take(MAX_JSON + 1),
        ),
        read: 0,
    };
    let parsed: std::result::Result<Value, serde_json::Error> = serde_json::from_reader(&mut json);
    if json.read > MAX_JSON {
        return Err(Error::new(
            ErrorKind::Damaged,
            "This old-system backup decompresses to more than 1 GiB, more than the old service could ever write",
            "It was not written by the old backup service; use another backup",
        ));
    }
    let doc = match parsed {
        Ok(doc) => doc,
        Err(e) if e.is_io() => {
            return Err(Error::new(
                ErrorKind::Damaged,
                "This old-system backup decrypts, but what it holds is not gzip data",
                "It was not written by the old backup service; use another backup",
            ))
        }
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Damaged,
                format!(
                    "This old-system backup decrypts and decompresses, but it is not JSON ({e})"
                ),
                "It was not written by the old backup service; use another backup",
            ))
        }
    };
    let missing = |what: &str| {
        Error::new(
            ErrorKind::Damaged,
            format!("This old-system backup's JSON has no {what:?}, so it is not a backup of the old system"),
            "Use another backup",
        )
    };
    let version = doc
        .get("version")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("version"))?
        .to_string();
    let timestamp = doc
        .get("timestamp")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(Value::Object(tables)) = doc.get("tables") else {
        return Err(missing("tables"));
    };
    let mut out = Vec::with_capacity(tables.len());
    for (key, rows) in tables {
        let Value::Array(rows) = rows else {
            return Err(Error::new(
                ErrorKind::Damaged,
                format!("In this old-system backup, {key:?} is not a list of records"),
                "Use another backup",
            ));
        };
        out.push((key.clone(), rows.clone()));
    }
    Ok(V1Backup {
        version,
        timestamp,
        tables: out,
        dev_key,
        key_fingerprint: String::new(),
    })
}

/// How to restore a v1 file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V1Mode {
    /// Upsert by primary key; rows not in the file stay (the old system's behaviour).
    Merge,
    /// Upsert, and remove the rows of those tables that are not in the file.
    Replace,
}

/// What a v1 restore did, per table.
#[derive(Debug, Clone, Serialize)]
pub struct V1TableOutcome {
    /// The table.
    pub table: String,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows removed (replace mode).
    pub deleted: u64,
}

struct TableShape {
    columns: HashMap<String, String>,
    pk: Vec<String>,
}

async fn shape(
    conn: &mut PgConnection,
    target: &PgTarget,
    table: &str,
) -> Result<Option<TableShape>> {
    let rows = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                coalesce(a.attnum = ANY(i.indkey), false) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
         WHERE n.nspname = 'public' AND c.relname = $1 AND c.relkind IN ('r', 'p') \
           AND a.attgenerated = ''",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut columns = HashMap::new();
    let mut pk = Vec::new();
    for r in rows {
        let name: String = col(&r, 0)?;
        if r.get::<bool, _>(2) {
            pk.push(name.clone());
        }
        columns.insert(name, col(&r, 1)?);
    }
    Ok(Some(TableShape { columns, pk }))
}

/// `{"type":"Buffer","data":[…]}` → `\x…` for bytea columns.
fn convert_buffers(record: &mut Value, bytea_columns: &[String]) {
    let Value::Object(map) = record else { return };
    for col in bytea_columns {
        if let Some(v) = map.get_mut(col) {
            if let Some(data) = v
                .as_object()
                .filter(|o| o.get("type").and_then(Value::as_str) == Some("Buffer"))
                .and_then(|o| o.get("data"))
                .and_then(Value::as_array)
            {
                let bytes: Vec<u8> = data
                    .iter()
                    .filter_map(|b| b.as_u64())
                    .map(|b| b as u8)
                    .collect();
                *v = Value::String(format!("\\x{}", hex::encode(bytes)));
            }
        }
    }
}

fn record_id(record: &Value, pk: &[String]) -> String {
    pk.iter()
        .map(|c| match record.get(c) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "?".into(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Order `tables` so that a table comes after the tables it references (among `tables`).
async fn load_order(
    conn: &mut PgConnection,
    target: &PgTarget,
    tables: &[String],
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT c.relname::text, p.relname::text FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE k.contype = 'f' AND n.nspname = 'public' AND c.oid <> p.oid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    let set: HashSet<&String> = tables.iter().collect();
    let mut deps: BTreeMap<&String, HashSet<String>> =
        tables.iter().map(|t| (t, HashSet::new())).collect();
    for r in rows {
        let (child, parent): (String, String) = (col(&r, 0)?, col(&r, 1)?);
        if set.contains(&child) && set.contains(&parent) {
            if let Some(d) = deps.get_mut(&child) {
                d.insert(parent);
            }
        }
    }
    let mut order: Vec<String> = Vec::new();
    while order.len() < tables.len() {
        let ready: Vec<String> = deps
            .iter()
            .filter(|(t, d)| !order.contains(t) && d.iter().all(|p| order.contains(p)))
            .map(|(t, _)| (*t).clone())
            .collect();
        if ready.is_empty() {
            // A cycle: load the rest in name order; foreign keys are still checked.
            for t in tables {
                if !order.contains(t) {
                    order.push(t.clone());
                }
            }
            break;
        }
        order.extend(ready);
    }
    Ok(order)
}

/// Foreign keys that reference `table`, from any schema: (referencing table's schema, its
/// name, its columns, `table`'s columns).
async fn references_to(
    conn: &mut PgConnection,
    target: &PgTarget,
    table: &str,
) -> Result<Vec<(String, String, Vec<String>, Vec<String>)>> {
    let rows = sqlx::query(
        "SELECT cn.nspname::text, c.relname::text, \
                array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, o) \
                      JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o), \
                array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, o) \
                      JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o) \
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
         JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace n ON n.oid = p.relnamespace \
         JOIN pg_namespace cn ON cn.oid = c.relnamespace \
         WHERE k.contype = 'f' AND n.nspname = 'public' AND p.relname = $1",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(|e| db_error(&e, target))
}

async fn exec(conn: &mut PgConnection, target: &PgTarget, sql: &str) -> Result<()> {
    sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| db_error(&e, target))
}

/// A v1 restore checked against the target and ready to apply.
pub struct V1Plan {
    tables: Vec<(String, TableShape, Vec<Value>, Vec<String>)>,
}

/// Check a v1 file against `target` without changing anything: every key maps to a table the
/// target has, every field to a column; records converted (Buffers to bytea) and ordered so
/// that referenced tables load first.
///
/// # Errors
/// `TargetMismatch` for a key that matches no table, a table the target lacks (a v1 file
/// carries no schema) or a field that is no column.
pub async fn prepare(target: &PgTarget, backup: &V1Backup) -> Result<V1Plan> {
    let mut conn = target.connect().await?;
    // Check everything before changing anything.
    let mut plan: Vec<(String, TableShape, Vec<Value>, Vec<String>)> = Vec::new();
    for (key, records) in &backup.tables {
        let table = table_for(key).ok_or_else(|| {
            Error::new(
                ErrorKind::TargetMismatch,
                format!("The old-system backup holds records under {key:?}, which matches none of the 22 tables the old backup service wrote; nothing was changed"),
                "This file was not written by the school ERP's backup service, or by a newer version of it",
            )
        })?;
        let shape = shape(&mut conn, target, table).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::TargetMismatch,
                format!("The target database {} has no table {table:?} (for {key:?}); an old-system backup carries no schema, so nothing was changed", target.describe()),
                "Restore it into the school ERP's database, whose tables the ERP itself creates",
            )
        })?;
        if shape.pk.is_empty() {
            return Err(Error::new(
                ErrorKind::TargetMismatch,
                format!("Table {table:?} has no primary key, so its records cannot be merged"),
                "Restore into the school ERP's database",
            ));
        }
        let mut fields: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for r in records {
            if let Value::Object(m) = r {
                for k in m.keys() {
                    if seen.insert(k.clone()) {
                        if !shape.columns.contains_key(k) {
                            return Err(Error::new(
                                ErrorKind::TargetMismatch,
                                format!("The old-system backup's {key:?} records have a field {k:?}, which table {table:?} does not have; nothing was changed"),
                                "The database's schema is not the one the backup was made from",
                            ));
                        }
                        fields.push(k.clone());
                    }
                }
            }
        }
        let bytea: Vec<String> = shape
            .columns
            .iter()
            .filter(|(_, t)| t.as_str() == "bytea")
            .map(|(c, _)| c.clone())
            .collect();
        let mut records = records.clone();
        for r in &mut records {
            convert_buffers(r, &bytea);
        }
        plan.push((table.to_string(), shape, records, fields));
    }
    let names: Vec<String> = plan.iter().map(|p| p.0.clone()).collect();
    let order = load_order(&mut conn, target, &names).await?;
    plan.sort_by_key(|p| order.iter().position(|t| *t == p.0));
    Ok(V1Plan { tables: plan })
}

/// Apply a prepared v1 restore in one transaction with every constraint checked: upsert by
/// primary key, and with [`V1Mode::Replace`] remove the rows not in the file.
///
/// # Errors
/// `Database` naming the table and record id of the first record that fails;
/// `TargetMismatch` naming the tables that block `--replace`. The target is unchanged then.
pub async fn apply(target: &PgTarget, plan: &V1Plan, mode: V1Mode) -> Result<Vec<V1TableOutcome>> {
    let mut conn = target.connect().await?;
    exec(&mut conn, target, "BEGIN").await?;
    let result = load(&mut conn, target, &plan.tables, mode).await;
    match result {
        Ok(outcome) => {
            exec(&mut conn, target, "COMMIT").await?;
            Ok(outcome)
        }
        Err(e) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
            Err(e)
        }
    }
}

async fn load(
    conn: &mut PgConnection,
    target: &PgTarget,
    plan: &[(String, TableShape, Vec<Value>, Vec<String>)],
    mode: V1Mode,
) -> Result<Vec<V1TableOutcome>> {
    let mut outcome = Vec::new();
    for (table, shape, records, fields) in plan {
        let name = qualified("public", table);
        let cols = fields
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let conflict = shape
            .pk
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let updates: Vec<String> = fields
            .iter()
            .filter(|c| !shape.pk.contains(c))
            .map(|c| format!("{} = EXCLUDED.{}", quote_ident(c), quote_ident(c)))
            .collect();
        let action = if updates.is_empty() {
            "NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", updates.join(", "))
        };
        let sql = format!(
            "INSERT INTO {name} ({cols}) SELECT {cols} FROM jsonb_populate_recordset(NULL::{name}, $1::jsonb) \
             ON CONFLICT ({conflict}) DO {action} RETURNING (xmax = 0)"
        );
        let (mut inserted, mut updated) = (0u64, 0u64);
        for batch in records.chunks(2000) {
            exec(conn, target, "SAVEPOINT v1_batch").await?;
            let r = sqlx::query(&sql)
                .bind(Value::Array(batch.to_vec()))
                .fetch_all(&mut *conn)
                .await;
            match r {
                Ok(rows) => {
                    for row in rows {
                        if row.get::<bool, _>(0) {
                            inserted += 1;
                        } else {
                            updated += 1;
                        }
                    }
                    exec(conn, target, "RELEASE SAVEPOINT v1_batch").await?;
                }
                Err(batch_err) => {
                    exec(conn, target, "ROLLBACK TO SAVEPOINT v1_batch").await?;
                    // Find the record that fails, to name it.
                    for record in batch {
                        exec(conn, target, "SAVEPOINT v1_row").await?;
                        let one = sqlx::query(&sql)
                            .bind(Value::Array(vec![record.clone()]))
                            .fetch_all(&mut *conn)
                            .await;
                        if let Err(e) = one {
                            let cause = db_error(&e, target);
                            return Err(Error::new(
                                cause.kind(),
                                format!(
                                    "Record {} of table {table:?} cannot be restored: {}; nothing was changed",
                                    record_id(record, &shape.pk),
                                    cause.message()
                                ),
                                "Fix that record's cause (e.g. restore into the database the backup came from) and try again",
                            ));
                        }
                        exec(conn, target, "RELEASE SAVEPOINT v1_row").await?;
                    }
                    return Err(db_error(&batch_err, target)
                        .context(format_args!("restoring table {table:?}")));
                }
            }
        }
        outcome.push(V1TableOutcome {
            table: table.clone(),
            inserted,
            updated,
            deleted: 0,
        });
    }
    if mode == V1Mode::Replace {
        // Children first, so that rows of the file's own tables that go are gone before their
        // parents are checked. Any other reference to a row that would go blocks the whole
        // replace: with ON DELETE CASCADE it would silently delete rows of tables the file
        // does not carry, and without it the delete would fail.
        let mut blockers: Vec<String> = Vec::new();
        for (i, (table, shape, records, _)) in plan.iter().enumerate().rev() {
            let name = qualified("public", table);
            let pk_of = |alias: &str| {
                shape
                    .pk
                    .iter()
                    .map(|c| format!("{alias}.{}", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let in_file = format!(
                "SELECT {} FROM jsonb_populate_recordset(NULL::{name}, $1::jsonb) f",
                pk_of("f")
            );
            let keys = Value::Array(
                records
                    .iter()
                    .map(|r| {
                        Value::Object(
                            shape
                                .pk
                                .iter()
                                .filter_map(|c| r.get(c).map(|v| (c.clone(), v.clone())))
                                .collect(),
                        )
                    })
                    .collect(),
            );
            let mut blocked = false;
            for (child_schema, child, child_cols, parent_cols) in
                references_to(conn, target, table).await?
            {
                let join = child_cols
                    .iter()
                    .zip(&parent_cols)
                    .map(|(c, p)| format!("c.{} = t.{}", quote_ident(c), quote_ident(p)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let mut sql = format!(
                    "SELECT count(*) FROM {} c JOIN {name} t ON {join} WHERE ({}) NOT IN ({in_file})",
                    qualified(&child_schema, &child),
                    pk_of("t")
                );
                if child_schema == "public" && child == *table {
                    sql.push_str(&format!(" AND ({}) IN ({in_file})", pk_of("c")));
                }
                let n: i64 = sqlx::query_scalar(&sql)
                    .bind(&keys)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| db_error(&e, target))?;
                if n > 0 {
                    blocked = true;
                    let child = if child_schema == "public" {
                        format!("{child:?}")
                    } else {
                        format!("{child_schema:?}.{child:?}")
                    };
                    blockers.push(format!(
                        "{child} ({n} rows refer to {table:?} rows not in the file)"
                    ));
                }
            }
            if blocked {
                continue;
            }
            let sql = format!(
                "DELETE FROM {name} t WHERE ({}) NOT IN ({in_file})",
                pk_of("t")
            );
            let done = sqlx::query(&sql)
                .bind(&keys)
                .execute(&mut *conn)
                .await
                .map_err(|e| {
                    db_error(&e, target).context(format_args!("removing rows of {table:?}"))
                })?;
            outcome[i].deleted = done.rows_affected();
        }
        if !blockers.is_empty() {
            return Err(Error::new(
                ErrorKind::TargetMismatch,
                format!(
                    "--replace would remove rows that tables the file does not carry still use: {}; nothing was changed",
                    blockers.join(", ")
                ),
                "Restore without --replace (merge keeps those rows), or remove those references first",
            ));
        }
    }
    Ok(outcome)
}

/// A column as the v1 export selects it.
fn export_expr(column: &str, ty: &str) -> String {
    let c = quote_ident(column);
    if ty.starts_with("timestamp") {
        // Prisma's DateTime in JSON: ISO-8601, milliseconds, Z (the ERP stores UTC).
        format!("to_char({c}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS {c}")
    } else if ty.starts_with("numeric") {
        format!("{c}::text AS {c}")
    } else if ty == "bytea" {
        format!("encode({c}, 'hex') AS {c}")
    } else if ty == "bigint" {
        // JSON.stringify cannot write a BigInt; the old service stored them as strings.
        format!("{c}::text AS {c}")
    } else {
        c
    }
}

/// Prisma's Decimal in JSON: the shortest decimal string ("35700.00" → "35700").
fn prisma_decimal(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

/// Write the 22 tables of `target` as a v1 file the old system's restore code reads: the same
/// keys, Prisma's JSON conventions, gzip, `[IV 16][tag 16][AES-256-GCM]` with `key`. Rows come
/// from one consistent snapshot, ordered by primary key.
///
/// # Errors
/// Connection errors; `TargetMismatch` when the database lacks one of the 22 tables.
pub async fn export(target: &PgTarget, key: &Key) -> Result<(Vec<u8>, u64)> {
    let mut conn = target.connect().await?;
    // As for every export: refuse rather than silently lose rows a policy hides.
    exec(
        &mut conn,
        target,
        "SET row_security = off; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    )
    .await?;
    let mut tables = serde_json::Map::new();
    let mut records = 0u64;
    for (v1_key, table) in V1_TABLES {
        let columns = sqlx::query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| db_error(&e, target))?;
        if columns.is_empty() {
            return Err(Error::new(
                ErrorKind::TargetMismatch,
                format!(
                    "The database {} has no table {table:?}, which an old-system backup holds",
                    target.describe()
                ),
                "Export from the school ERP's database",
            ));
        }
        let types: Vec<(String, String)> = columns
            .iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
            .collect::<Result<_>>()?;
        let pk = shape(&mut conn, target, table)
            .await?
            .map(|s| s.pk)
            .unwrap_or_default();
        let order = if pk.is_empty() {
            String::new()
        } else {
            format!(
                " ORDER BY {}",
                pk.iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let select = types
            .iter()
            .map(|(c, t)| export_expr(c, t))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT to_jsonb(x)::text FROM (SELECT {select} FROM {}{order}) x",
            qualified("public", table)
        );
        let rows: Vec<String> = sqlx::query_scalar(&sql)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| db_error(&e, target))?;
        let mut out = Vec::with_capacity(rows.len());
        for text in rows {
            let mut v: Value = serde_json::from_str(&text).map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!("reading a row of {table}: {e}"),
                    "",
                )
            })?;
            if let Value::Object(m) = &mut v {
                for (c, t) in &types {
                    let Some(field) = m.get_mut(c) else { continue };
                    if let Value::String(s) = field {
                        if t.starts_with("numeric") {
                            *field = Value::String(prisma_decimal(s));
                        } else if t == "bytea" {
                            let bytes = hex::decode(s.as_str()).unwrap_or_default();
                            *field = serde_json::json!({"type": "Buffer", "data": bytes});
                        }
                    }
                }
            }
            out.push(v);
        }
        records += out.len() as u64;
        tables.insert(v1_key.to_string(), Value::Array(out));
    }
    let _ = sqlx::raw_sql("COMMIT").execute(&mut conn).await;
    let doc = serde_json::json!({
        "version": "1.0",
        "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "tables": Value::Object(tables),
    });
    let json = serde_json::to_vec(&doc)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("writing JSON: {e}"), ""))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &json).map_err(|e| Error::io("compressing", &e))?;
    let data = gz.finish().map_err(|e| Error::io("compressing", &e))?;
    Ok((encrypt(key, data)?, records))
}

/// Encrypt `plaintext` (gzip of the v1 JSON, or any bytes) as the old service did:
/// `[IV 16][tag 16][AES-256-GCM ciphertext]` with a fresh random 16-byte IV. [`export`] uses
/// it; tests and fuzzing use it to make v1 files whose plaintext they choose.
///
/// # Errors
/// `Internal` if encryption fails, which it does not for a file the old service could write.
pub fn encrypt(key: &Key, plaintext: Vec<u8>) -> Result<Vec<u8>> {
    let mut data = plaintext;
    let mut iv = [0u8; IV_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut iv);
    let tag = Aes256Gcm16::new(key.bytes().into())
        .encrypt_inout_detached((&iv).into(), b"", data.as_mut_slice().into())
        .map_err(|_| Error::new(ErrorKind::Internal, "encryption failed", ""))?;
    let mut file = Vec::with_capacity(IV_LEN + TAG_LEN + data.len());
    file.extend_from_slice(&iv);
    file.extend_from_slice(&tag);
    file.extend_from_slice(&data);
    Ok(file)
}
