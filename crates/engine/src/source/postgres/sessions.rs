//! The other sessions on a database: who is connected (the ERP's users, its connection pool, a
//! report tool), which of them hold the locks a replace restore waits for, and ending them.
//!
//! A replace restore empties the backup's tables with `TRUNCATE`, which waits for every
//! transaction that touched them to end. An ERP connection pool that sits "idle in transaction"
//! would make it wait for hours, silently: these functions let the restore say who is there
//! before it starts, who holds it up while it waits, and end them when the user asks.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;

use crate::error::{Error, ErrorKind, Result};
use crate::source::postgres::connection::{col, db_error, PgTarget};
use crate::source::Session;

const COLUMNS: &str = "a.pid, a.usename::text, coalesce(a.application_name, ''), \
     host(a.client_addr), coalesce(a.xact_start, a.backend_start), coalesce(a.state, ''), \
     a.xact_start IS NOT NULL";

fn session(row: &PgRow) -> Result<Session> {
    let since: Option<DateTime<Utc>> = col(row, 4)?;
    Ok(Session {
        pid: col(row, 0)?,
        user: col::<Option<String>>(row, 1)?.unwrap_or_default(),
        application: col(row, 2)?,
        client: col(row, 3)?,
        since,
        state: col(row, 5)?,
        in_transaction: col(row, 6)?,
    })
}

/// The client sessions connected to `target`'s database, other than this one, oldest first.
/// A login without `pg_read_all_stats` sees other users' sessions without their details (nor
/// their kind: those with a user are taken for clients; background workers have none).
///
/// # Errors
/// Connection errors.
pub async fn other_sessions(target: &PgTarget) -> Result<Vec<Session>> {
    let mut conn = target.connect().await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM pg_stat_activity a \
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() \
           AND a.usename IS NOT NULL \
           AND coalesce(a.backend_type, 'client backend') = 'client backend' \
         ORDER BY coalesce(a.xact_start, a.backend_start), a.pid"
    ))
    .fetch_all(&mut conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    rows.iter().map(session).collect()
}

/// The sessions that hold up session `pid` (the locks it waits for), from another connection.
///
/// # Errors
/// Connection errors.
pub async fn blocking_sessions(target: &PgTarget, pid: i32) -> Result<Vec<Session>> {
    let mut conn = target.connect().await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids($1)) \
         ORDER BY a.pid"
    ))
    .bind(pid)
    .fetch_all(&mut conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    rows.iter().map(session).collect()
}

/// The sessions holding a lock on any of `tables` (`schema.name`, quoted as `qualified` gives).
///
/// # Errors
/// Connection errors.
pub async fn sessions_locking(target: &PgTarget, tables: &[String]) -> Result<Vec<Session>> {
    let mut conn = target.connect().await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() AND a.pid IN \
           (SELECT l.pid FROM pg_locks l WHERE l.granted AND l.database = \
              (SELECT oid FROM pg_database WHERE datname = current_database()) \
            AND l.relation = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) t)) \
         ORDER BY coalesce(a.xact_start, a.backend_start), a.pid"
    ))
    .bind(tables)
    .fetch_all(&mut conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    rows.iter().map(session).collect()
}

/// End every other client session on `target`'s database (`pg_terminate_backend`), except
/// `keep` (the restore's own): their open transactions roll back, as when the ERP is stopped.
/// Returns how many were ended.
///
/// # Errors
/// `DbAuth` naming the permission when the login may not end them.
pub async fn end_sessions(target: &PgTarget, keep: Option<i32>) -> Result<usize> {
    let mut conn = target.connect().await?;
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a \
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() \
           AND a.pid IS DISTINCT FROM $1 AND a.usename IS NOT NULL \
           AND coalesce(a.backend_type, 'client backend') = 'client backend'",
    )
    .bind(keep)
    .fetch_all(&mut conn)
    .await
    .map_err(|e| {
        if e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "42501")
        {
            let user = target.options.get_username().to_string();
            Error::new(
                ErrorKind::DbAuth,
                format!("The database user {user} may not end other users' sessions on {}; nothing was changed", target.describe()),
                format!("Ask the users to close the ERP, or restore as a superuser, or run `GRANT pg_signal_backend TO {user}` (it still cannot end a superuser's sessions)"),
            )
        } else {
            db_error(&e, target)
        }
    })?;
    Ok(ended.into_iter().filter(|e| *e).count())
}
