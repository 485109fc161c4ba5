//! Catalog rows to records and back: every column read with a check, so a damaged or
//! foreign catalog gives the catalog's error (pointing at `rescan`), never a panic.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::archive::BackupKind;
use crate::error::{Cause, Error, ErrorKind, Result};

use super::damage::REBUILD_IN_APP;
use super::{BackupRecord, BackupStatus, CopyRecord, CopyState, Operation, Outcome, RunRecord};

pub(super) fn copy_row(row: &sqlx::sqlite::SqliteRow) -> Result<CopyRecord> {
    let next: Option<String> = get(row, "next_try_at")?;
    Ok(CopyRecord {
        backup_id: get(row, "backup_id")?,
        destination: get(row, "destination")?,
        state: CopyState::parse(&get::<String>(row, "state")?),
        error_code: get(row, "error_code")?,
        error: get(row, "error")?,
        attempts: get::<i64>(row, "attempts")?.clamp(0, i64::from(u32::MAX)) as u32,
        since: time(get(row, "since")?)?,
        next_try_at: next.map(time).transpose()?,
        size: get::<Option<i64>>(row, "size")?.map(|s| s.max(0) as u64),
        tag: get(row, "tag")?,
    })
}

/// A column of a catalog row, read with a check: a damaged or foreign catalog gives the
/// catalog error, never a panic.
pub(super) fn get<'r, T>(row: &'r sqlx::sqlite::SqliteRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(|e| {
        Error::new(
            ErrorKind::Catalog,
            format!("The catalog's column {column} cannot be read ({e})"),
            "Run `schoolvault rescan` to rebuild the list from the backup files",
        )
        .in_app(REBUILD_IN_APP)
        .with_cause(Cause::Damaged)
    })
}

pub(super) fn run_row(row: &sqlx::sqlite::SqliteRow) -> Result<RunRecord> {
    let kind: Option<String> = get(row, "kind")?;
    let outcome: String = get(row, "outcome")?;
    Ok(RunRecord {
        started_at: time(get(row, "started_at")?)?,
        finished_at: time(get(row, "finished_at")?)?,
        operation: Operation::parse(&get::<String>(row, "operation")?),
        kind: kind.as_deref().and_then(BackupKind::parse),
        outcome: if outcome == "success" {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        error_code: get(row, "error_code")?,
        message: get(row, "message")?,
        backup_id: get(row, "backup_id")?,
    })
}

pub(super) fn time(s: String) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Error::new(
                ErrorKind::Catalog,
                format!("The catalog holds a bad time {s:?}"),
                "Run `schoolvault rescan` to rebuild it",
            )
            .in_app(REBUILD_IN_APP)
            .with_cause(Cause::Damaged)
        })
}

pub(super) fn record(row: &sqlx::sqlite::SqliteRow) -> Result<BackupRecord> {
    let kind: String = get(row, "kind")?;
    let verified_at: Option<String> = get(row, "verified_at")?;
    let count = |column: &str| get::<i64>(row, column).map(|n| n.max(0) as u64);
    Ok(BackupRecord {
        id: get(row, "id")?,
        path: PathBuf::from(get::<String>(row, "path")?),
        created_at: time(get(row, "created_at")?)?,
        kind: BackupKind::parse(&kind).unwrap_or(BackupKind::Manual),
        status: BackupStatus::parse(&get::<String>(row, "status")?),
        size: count("size")?,
        sha256: get(row, "sha256")?,
        key_fingerprint: get(row, "key_fingerprint")?,
        engine: get(row, "engine")?,
        server_version: get(row, "server_version")?,
        database: get(row, "database")?,
        tables: count("tables")?,
        rows: count("rows")?,
        duration_ms: count("duration_ms")?,
        verified_at: verified_at.map(time).transpose()?,
        verify_ok: get(row, "verify_ok")?,
        verify_message: get(row, "verify_message")?,
    })
}

pub(super) async fn put(conn: &mut sqlx::SqliteConnection, r: &BackupRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO backups (id, path, created_at, kind, status, size, sha256, \
         key_fingerprint, engine, server_version, database, tables, rows, duration_ms, \
         verified_at, verify_ok, verify_message) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.id)
    .bind(r.path.to_string_lossy().into_owned())
    .bind(r.created_at.to_rfc3339())
    .bind(r.kind.as_str())
    .bind(r.status.as_str())
    .bind(r.size as i64)
    .bind(&r.sha256)
    .bind(&r.key_fingerprint)
    .bind(&r.engine)
    .bind(&r.server_version)
    .bind(&r.database)
    .bind(r.tables as i64)
    .bind(r.rows as i64)
    .bind(r.duration_ms as i64)
    .bind(r.verified_at.map(|t| t.to_rfc3339()))
    .bind(r.verify_ok)
    .bind(&r.verify_message)
    .execute(conn)
    .await?;
    Ok(())
}
