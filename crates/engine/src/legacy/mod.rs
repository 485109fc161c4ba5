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
//!
//! | file | owns |
//! |---|---|
//! | `file` | recognising, decrypting, diagnosing and parsing a file; writing one |
//! | `restore` | merging or replacing its records into the ERP's tables, in one transaction |
//! | `export` | reading the ERP's tables into a v1 file (to go back to the old system) |

mod export;
mod file;
mod restore;

pub use export::export;
pub use file::{encrypt, open, sniff, MAX_FILE, SNIFF_LEN};
pub use restore::{apply, prepare, V1Mode, V1Plan, V1TableOutcome};

use aes_gcm::aead::array::typenum::U16;
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use serde::Serialize;
use serde_json::Value;

use crate::crypto::Key;

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

pub(in crate::legacy) const IV_LEN: usize = 16;
pub(in crate::legacy) const TAG_LEN: usize = 16;
pub(in crate::legacy) const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

pub(in crate::legacy) type Aes256Gcm16 = AesGcm<Aes256, U16>;
pub(in crate::legacy) type Ctr = ctr::Ctr32BE<Aes256>;

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

/// The catalog's `engine` of an old-system file found by a rescan.
pub const CATALOG_ENGINE: &str = "postgresql (old system, v1)";
