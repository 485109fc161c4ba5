//! The catalog: a local SQLite index of backups and the history of runs.
//!
//! It learns of a backup only after the file is complete and renamed into place, so nothing
//! listed can be a partial file. It is an index, not the truth: `rescan` rebuilds it from the
//! files in the backup folder, and a catalog that is damaged or foreign is moved aside
//! ([`Catalog::set_aside`], never deleted) for a new one. Schema changes are embedded
//! migrations.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::archive::BackupKind;

mod damage;
mod rows;

use crate::error::{Error, ErrorKind, Result};
use damage::catalog_error;
pub(crate) use damage::is_damage;
pub use damage::REBUILD_IN_APP;
use rows::{copy_row, put, record, run_row};

/// Whether a listed backup can be used: complete, or the error that makes its file unusable
/// (`wrong_key`, `damaged`…). Stored and serialised as `complete` or that error's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupStatus {
    /// The file is whole and opens with a key at hand.
    Complete,
    /// The file cannot be used, for this reason.
    Unusable(ErrorKind),
}

impl BackupStatus {
    /// `complete`, or the error's code.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Complete => "complete",
            BackupStatus::Unusable(kind) => kind.code(),
        }
    }

    /// The status stored as `s`; a code this version does not know reads as damaged.
    pub fn parse(s: &str) -> BackupStatus {
        if s == "complete" {
            BackupStatus::Complete
        } else {
            BackupStatus::Unusable(ErrorKind::from_code(s).unwrap_or(ErrorKind::Damaged))
        }
    }

    /// Whether the backup can be used.
    pub fn is_complete(self) -> bool {
        self == BackupStatus::Complete
    }
}

impl From<&Error> for BackupStatus {
    fn from(e: &Error) -> Self {
        BackupStatus::Unusable(e.kind())
    }
}

impl std::fmt::Display for BackupStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for BackupStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A backup as the catalog knows it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRecord {
    /// The id, e.g. `20261126-021500-3f9a`.
    pub id: String,
    /// Where the file is.
    pub path: PathBuf,
    /// When the backup started.
    pub created_at: DateTime<Utc>,
    /// Manual, scheduled or safety.
    pub kind: BackupKind,
    /// Complete, or the error that makes the file unusable.
    pub status: BackupStatus,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Which key encrypted it.
    pub key_fingerprint: String,
    /// `postgresql`.
    pub engine: String,
    /// Server version.
    pub server_version: String,
    /// Database name.
    pub database: String,
    /// Tables in the backup.
    pub tables: u64,
    /// Rows in the backup.
    pub rows: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// When it was last verified.
    pub verified_at: Option<DateTime<Utc>>,
    /// Whether that verification passed.
    pub verify_ok: Option<bool>,
    /// What the verification said.
    pub verify_message: Option<String>,
}

/// What a run in the history did. Stored and serialised under the names below (the app's
/// Activity screen gets them as a TypeScript union, so its label table must name each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(export))]
pub enum Operation {
    /// A backup (manual, scheduled or safety).
    #[serde(rename = "backup")]
    Backup,
    /// The note that a scheduled backup ran late for a missed slot.
    #[serde(rename = "catch-up")]
    CatchUp,
    /// A restore.
    #[serde(rename = "restore")]
    Restore,
    /// A verification.
    #[serde(rename = "verify")]
    Verify,
    /// A test restore into a scratch database.
    #[serde(rename = "test_restore")]
    TestRestore,
    /// Retention removing old backups.
    #[serde(rename = "prune")]
    Prune,
    /// A failure email.
    #[serde(rename = "notify")]
    Notify,
    /// The stale-backup alert.
    #[serde(rename = "alert")]
    Alert,
    /// The weekly report.
    #[serde(rename = "digest")]
    Digest,
    /// A database a killed run left behind, dropped.
    #[serde(rename = "cleanup")]
    Cleanup,
    /// Offsite copies made (or left waiting) at the destinations.
    #[serde(rename = "copy")]
    Copy,
    /// An entry this version does not know (written by a newer SchoolVault).
    #[serde(rename = "other")]
    Other,
}

impl Operation {
    /// Every operation, for tests and label tables.
    pub const ALL: [Operation; 12] = [
        Operation::Backup,
        Operation::CatchUp,
        Operation::Restore,
        Operation::Verify,
        Operation::TestRestore,
        Operation::Prune,
        Operation::Notify,
        Operation::Alert,
        Operation::Digest,
        Operation::Cleanup,
        Operation::Copy,
        Operation::Other,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::CatchUp => "catch-up",
            Operation::Restore => "restore",
            Operation::Verify => "verify",
            Operation::TestRestore => "test_restore",
            Operation::Prune => "prune",
            Operation::Notify => "notify",
            Operation::Alert => "alert",
            Operation::Digest => "digest",
            Operation::Cleanup => "cleanup",
            Operation::Copy => "copy",
            Operation::Other => "other",
        }
    }

    /// A stored name; one this version does not know is [`Operation::Other`].
    pub fn parse(s: &str) -> Operation {
        Operation::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .unwrap_or(Operation::Other)
    }

    /// An email (failure email, alert, weekly report).
    pub fn is_email(self) -> bool {
        matches!(
            self,
            Operation::Notify | Operation::Alert | Operation::Digest
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for Operation {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(export))]
pub enum Outcome {
    /// It did what it was asked.
    Success,
    /// It failed; the run's error code and message say why.
    Failure,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    /// Whether it succeeded.
    pub fn is_success(self) -> bool {
        self == Outcome::Success
    }
}

impl PartialEq<&str> for Outcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One entry of the run history.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// What it did.
    pub operation: Operation,
    /// For backups: manual, scheduled, safety.
    pub kind: Option<BackupKind>,
    /// Success or failure.
    pub outcome: Outcome,
    /// The error's code on failure.
    pub error_code: Option<String>,
    /// The error's text on failure, or a summary.
    pub message: Option<String>,
    /// The backup made or used.
    pub backup_id: Option<String>,
}

/// Where an offsite copy of a backup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(export))]
pub enum CopyState {
    /// The destination holds the backup, checked.
    Done,
    /// Not there yet (the destination could not be reached): tried again with backoff.
    Pending,
    /// The destination refused it (credentials, permissions, a missing bucket) or the copy
    /// did not check out: tried again too, but it needs a person's look.
    Failed,
}

impl CopyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyState::Done => "done",
            CopyState::Pending => "pending",
            CopyState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> CopyState {
        match s {
            "done" => CopyState::Done,
            "pending" => CopyState::Pending,
            _ => CopyState::Failed,
        }
    }
}

/// A backup's copy at one destination.
#[derive(Debug, Clone, Serialize)]
pub struct CopyRecord {
    /// The backup.
    pub backup_id: String,
    /// The destination's name.
    pub destination: String,
    /// Done, pending or failed.
    pub state: CopyState,
    /// The last failure's code.
    pub error_code: Option<String>,
    /// The last failure, as said to people.
    pub error: Option<String>,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// When this state began (pending since…).
    pub since: DateTime<Utc>,
    /// Not tried again before this (the backoff).
    pub next_try_at: Option<DateTime<Utc>>,
    /// The size there.
    pub size: Option<u64>,
    /// What the destination showed after the upload (ETag or modification time): a change
    /// means someone rewrote the copy.
    pub tag: Option<String>,
}

impl CopyRecord {
    /// A copy that is there and checked: `size` bytes, showing `tag` (ETag or modification time).
    pub fn done(backup_id: &str, destination: &str, size: u64, tag: Option<String>) -> Self {
        CopyRecord {
            backup_id: backup_id.to_string(),
            destination: destination.to_string(),
            state: CopyState::Done,
            error_code: None,
            error: None,
            attempts: 0,
            since: Utc::now(),
            next_try_at: None,
            size: Some(size),
            tag,
        }
    }
}

/// The open catalog.
#[derive(Clone)]
pub struct Catalog {
    pool: SqlitePool,
    path: PathBuf,
}

impl Catalog {
    /// Open (creating if needed) the catalog at `path`.
    ///
    /// # Errors
    /// `Catalog` when the file cannot be opened or migrated.
    pub async fn open(path: &Path) -> Result<Catalog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::storage::create_private_dir(dir).map_err(|e| {
                Error::io(
                    format_args!("creating the catalog folder {}", dir.display()),
                    &e,
                )
            })?;
        }
        // Two processes opening a new catalog at once (the app and a timer) must not both
        // create its tables: migrations run under a lock file beside it.
        let lock_path = path.with_extension("lock");
        let lock = crate::storage::private_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(format_args!("opening {}", lock_path.display()), &e))?;
        lock.lock()
            .map_err(|e| Error::io(format_args!("locking {}", lock_path.display()), &e))?;
        // Create the file private before SQLite does (its WAL and shared-memory files take
        // the database file's mode), and make an older catalog private too.
        crate::storage::private_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .and_then(|_| crate::storage::make_private(path))
            .map_err(|e| Error::io(format_args!("opening {}", path.display()), &e))?;
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| catalog_error(&e, path))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| catalog_error(&e, path))?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        drop(lock);
        Ok(Catalog {
            pool,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: &sqlx::Error) -> Error {
        catalog_error(e, &self.path)
    }

    /// Close the catalog's connections (before its file is moved).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Add or replace a backup.
    ///
    /// # Errors
    /// `Catalog`.
    pub(crate) async fn put(&self, r: &BackupRecord) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.err(&e))?;
        put(&mut conn, r).await.map_err(|e| self.err(&e))
    }

    /// Every backup, newest first.
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn list(&self) -> Result<Vec<BackupRecord>> {
        let rows = sqlx::query("SELECT * FROM backups ORDER BY created_at DESC, id DESC")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(&e))?;
        rows.iter().map(record).collect()
    }

    /// The backup with `id`, if any.
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn get(&self, id: &str) -> Result<Option<BackupRecord>> {
        let row = sqlx::query("SELECT * FROM backups WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(&e))?;
        row.as_ref().map(record).transpose()
    }

    /// Forget a backup.
    ///
    /// # Errors
    /// `Catalog`.
    pub(crate) async fn remove(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM backups WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// Replace every backup record with `records` (for a rescan), in one transaction.
    ///
    /// # Errors
    /// `Catalog`.
    pub(crate) async fn replace_all(&self, records: &[BackupRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(&e))?;
        sqlx::query("DELETE FROM backups")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(&e))?;
        for r in records {
            put(&mut tx, r).await.map_err(|e| self.err(&e))?;
        }
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// Record the outcome of a verification.
    ///
    /// # Errors
    /// `Catalog`.
    pub(crate) async fn set_verified(
        &self,
        id: &str,
        at: DateTime<Utc>,
        ok: bool,
        message: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE backups SET verified_at = ?, verify_ok = ?, verify_message = ? WHERE id = ?",
        )
        .bind(at.to_rfc3339())
        .bind(ok)
        .bind(message)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// Add a run to the history.
    ///
    /// # Errors
    /// `Catalog`.
    pub(crate) async fn add_run(&self, r: &RunRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (started_at, finished_at, operation, kind, outcome, error_code, \
             message, backup_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.started_at.to_rfc3339())
        .bind(r.finished_at.to_rfc3339())
        .bind(r.operation.as_str())
        .bind(r.kind.map(BackupKind::as_str))
        .bind(r.outcome.as_str())
        .bind(&r.error_code)
        .bind(&r.message)
        .bind(&r.backup_id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// The run history, newest first.
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT * FROM runs ORDER BY id DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(&e))?;
        rows.iter().map(run_row).collect()
    }

    /// The newest `limit` runs of `operation` of `kind` (e.g. scheduled backups), newest first:
    /// other entries (emails, verifies) never crowd them out.
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn runs_of(
        &self,
        operation: Operation,
        kind: BackupKind,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE operation = ? AND kind = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(operation.as_str())
        .bind(kind.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(&e))?;
        rows.iter().map(run_row).collect()
    }
}

impl Catalog {
    /// Record a copy's state (replacing the one before).
    ///
    /// # Errors
    /// `Catalog`.
    pub(crate) async fn set_copy(&self, c: &CopyRecord) -> Result<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO copies (backup_id, destination, state, error_code, error, \
             attempts, since, next_try_at, size, tag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.backup_id)
        .bind(&c.destination)
        .bind(c.state.as_str())
        .bind(&c.error_code)
        .bind(&c.error)
        .bind(i64::from(c.attempts))
        .bind(c.since.to_rfc3339())
        .bind(c.next_try_at.map(|t| t.to_rfc3339()))
        .bind(c.size.map(|s| s as i64))
        .bind(&c.tag)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// Every copy the catalog knows, by backup then destination.
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn copies(&self) -> Result<Vec<CopyRecord>> {
        let rows = sqlx::query("SELECT * FROM copies ORDER BY backup_id, destination")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(&e))?;
        rows.iter().map(copy_row).collect()
    }

    /// Forget the copy of `backup_id` at `destination` (it was deleted there).
    ///
    /// # Errors
    /// `Catalog`.
    pub(crate) async fn remove_copy(&self, backup_id: &str, destination: &str) -> Result<()> {
        sqlx::query("DELETE FROM copies WHERE backup_id = ? AND destination = ?")
            .bind(backup_id)
            .bind(destination)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(&e))?;
        Ok(())
    }
}

impl Catalog {
    /// Forget every copy at `destination` (it was removed from the settings).
    ///
    /// # Errors
    /// `Catalog`.
    pub(crate) async fn remove_copies_at(&self, destination: &str) -> Result<()> {
        sqlx::query("DELETE FROM copies WHERE destination = ?")
            .bind(destination)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(&e))?;
        Ok(())
    }
}

/// The catalog's writers for tests that arrange a history; the jobs write it under the run
/// lock, and the shipped programs have no other way in.
#[cfg(feature = "test-support")]
impl Catalog {
    /// [`Catalog::put`], for a test.
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn arrange_backup(&self, r: &BackupRecord) -> Result<()> {
        self.put(r).await
    }

    /// [`Catalog::add_run`], for a test.
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn arrange_run(&self, r: &RunRecord) -> Result<()> {
        self.add_run(r).await
    }

    /// [`Catalog::set_copy`], for a test.
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn arrange_copy(&self, c: &CopyRecord) -> Result<()> {
        self.set_copy(c).await
    }
}
