//! Server-level work on PostgreSQL: probing the server, creating a database for a restore
//! (with SchoolVault's unfinished mark until it is complete), checking and dropping it.

use sqlx::Connection;

use crate::error::{Error, ErrorKind, Result};

use crate::source::postgres::connection::{db_error, exec, PgTarget};
use crate::source::postgres::contents::any_user_table;
use crate::source::postgres::sql::{quote_ident, USER_SCHEMAS};

/// What "Test connection" reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerProbe {
    /// `PostgreSQL 15.4` and the like.
    pub server_version: String,
    /// The database's user tables.
    pub tables: u64,
    /// The database's size on disk, in bytes.
    pub size: u64,
}

/// Connect to `target` and say what is there.
///
/// # Errors
/// `DbUnreachable`, `DbAuth`, `NotFound` and the like, each saying what to fix.
pub async fn probe(target: &PgTarget) -> Result<ServerProbe> {
    let mut conn = target.connect().await?;
    let (version, tables, size): (String, i64, i64) = sqlx::query_as(&format!(
        "SELECT current_setting('server_version'), \
         (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMAS}), \
         pg_database_size(current_database())"
    ))
    .fetch_one(&mut conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    Ok(ServerProbe {
        server_version: format!("PostgreSQL {version}"),
        tables: u64::try_from(tables).unwrap_or(0),
        size: u64::try_from(size).unwrap_or(0),
    })
}

pub(super) fn already_exists(target: &PgTarget, name: &str) -> Error {
    Error::new(
        ErrorKind::TargetMismatch,
        format!(
            "A database named {name:?} already exists on {}; nothing was changed",
            target.with_database(name).describe()
        ),
        "Choose a new name for --create-db, or restore into that database with --target-db",
    )
}

/// Refuse database `name` on `target`'s server if it exists, before a job notes it as one it
/// creates (see `jobs::create_owned_database`).
///
/// # Errors
/// `TargetMismatch` when it exists; connection errors.
pub async fn refuse_existing(target: &PgTarget, name: &str) -> Result<()> {
    if database_exists(target, name).await? {
        return Err(already_exists(target, name));
    }
    Ok(())
}

/// Create database `name` on `target`'s server.
///
/// # Errors
/// `TargetMismatch` when it exists; database errors (permission to create databases…).
pub async fn create_database(target: &PgTarget, name: &str) -> Result<PgTarget> {
    let mut conn = target.connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| db_error(&e, target))?;
    if exists {
        return Err(already_exists(target, name));
    }
    exec(
        &mut conn,
        &format!("CREATE DATABASE {}", quote_ident(name)),
        target,
    )
    .await?;
    let _ = conn.close().await;
    Ok(target.with_database(name))
}

/// Whether database `name` exists on `target`'s server.
///
/// # Errors
/// Connection errors.
pub async fn database_exists(target: &PgTarget, name: &str) -> Result<bool> {
    let mut conn = target.connect().await?;
    let exists = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| db_error(&e, target))?;
    let _ = conn.close().await;
    Ok(exists)
}

/// The comment a database bears while SchoolVault is restoring into it.
pub(super) const UNFINISHED_MARK: &str =
    "SchoolVault: restore in progress; dropped by SchoolVault if left unfinished";

/// Mark database `name` (one SchoolVault just created) as unfinished, or clear the mark.
///
/// # Errors
/// Connection and permission errors.
pub async fn set_unfinished_mark(server: &PgTarget, name: &str, unfinished: bool) -> Result<()> {
    let mut conn = server.connect().await?;
    let comment = if unfinished {
        format!("'{}'", UNFINISHED_MARK.replace('\'', "''"))
    } else {
        "NULL".to_string()
    };
    let done = exec(
        &mut conn,
        &format!("COMMENT ON DATABASE {} IS {comment}", quote_ident(name)),
        server,
    )
    .await;
    let _ = conn.close().await;
    done
}

/// Whether database `name` (noted as one SchoolVault was creating) is an unfinished one of
/// ours: it bears the unfinished mark, or bears no comment and holds no table yet (a run
/// killed between `CREATE DATABASE` and the mark). A database that finished (its mark
/// cleared, its tables there) or that someone else made under the name is not.
///
/// # Errors
/// Connection errors.
pub async fn is_unfinished(server: &PgTarget, name: &str) -> Result<bool> {
    let mut conn = server.connect().await?;
    let comment: Option<Option<String>> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_optional(&mut conn)
    .await
    .map_err(|e| db_error(&e, server))?;
    let _ = conn.close().await;
    match comment {
        None => Ok(false),
        Some(Some(c)) => Ok(c == UNFINISHED_MARK),
        Some(None) => {
            let inside = server.with_database(name);
            let mut conn = inside.connect().await?;
            let table = any_user_table(&mut conn, &inside).await?;
            let _ = conn.close().await;
            Ok(table.is_none())
        }
    }
}

/// Whether the connecting user may create databases (superuser or CREATEDB), which a test
/// restore needs for its scratch database.
///
/// # Errors
/// Connection errors.
pub async fn may_create_database(server: &PgTarget) -> Result<bool> {
    let mut conn = server.connect().await?;
    let may: Option<bool> = sqlx::query_scalar(
        "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_optional(&mut conn)
    .await
    .map_err(|e| db_error(&e, server))?;
    let _ = conn.close().await;
    Ok(may.unwrap_or(false))
}

/// Drop database `name` (a scratch or half-restored one), ending its sessions.
///
/// # Errors
/// Connection and permission errors.
pub async fn drop_database_checked(server: &PgTarget, name: &str) -> Result<()> {
    let mut conn = server.connect().await?;
    let dropped = exec(
        &mut conn,
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
        server,
    )
    .await;
    let _ = conn.close().await;
    dropped
}

/// Drop database `name` on `server`, best effort (a failed job cleaning up after itself).
pub async fn drop_database(server: &PgTarget, name: &str) {
    if let Ok(mut conn) = server.connect().await {
        let _ = sqlx::Executor::execute(
            &mut conn,
            sqlx::raw_sql(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(name)
            )),
        )
        .await;
        let _ = conn.close().await;
    }
}

/// The SHA-256 (hex) of large object `oid` in `target`'s database, or none when it is not
/// there (a test restore's comparison).
///
/// # Errors
/// Connection and database errors.
pub async fn large_object_sha256(target: &PgTarget, oid: u32) -> Result<Option<String>> {
    let mut conn = target.connect().await?;
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT encode(sha256(lo_get(m.oid)), 'hex') FROM pg_largeobject_metadata m WHERE m.oid = $1::int8::oid",
    )
    .bind(i64::from(oid))
    .fetch_optional(&mut conn)
    .await
    .map_err(|e| db_error(&e, target).context(format_args!("reading large object {oid}")))?;
    Ok(row.map(|(h,)| h))
}
