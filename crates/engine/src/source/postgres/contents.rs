//! What a PostgreSQL target holds now, before a restore: which of the backup's tables it has,
//! their exact row counts (the restore warning's "in the database now"), whether it has any
//! table at all (an empty database); and a script run on it in one transaction.

use sqlx::postgres::PgConnection;

use crate::error::Result;
use crate::source::TableManifest;

use crate::source::postgres::connection::{db_error, PgTarget};
use crate::source::postgres::sql::{qualified, USER_SCHEMAS};

/// How many of `tables` the target has.
///
/// # Errors
/// Database errors.
pub async fn tables_present(
    conn: &mut PgConnection,
    target: &PgTarget,
    tables: &[TableManifest],
) -> Result<usize> {
    let names: Vec<String> = tables
        .iter()
        .map(|t| qualified(&t.schema, &t.name))
        .collect();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM unnest($1::text[]) t(name) WHERE to_regclass(t.name) IS NOT NULL",
    )
    .bind(&names)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    Ok(n as usize)
}

/// Run an SQL script (several statements) on `target`, in one transaction.
///
/// # Errors
/// Connection errors and the first failing statement's error.
pub async fn run_script(target: &PgTarget, sql: &str) -> Result<()> {
    let mut conn = target.connect().await?;
    let mut tx = sqlx::Connection::begin(&mut conn)
        .await
        .map_err(|e| db_error(&e, target))?;
    sqlx::Executor::execute(&mut *tx, sql)
        .await
        .map_err(|e| db_error(&e, target))?;
    tx.commit().await.map_err(|e| db_error(&e, target))
}

/// The exact row count of each of `tables` (`schema`, `name`) in the target; `None` for a
/// table that is not there. One snapshot, so the counts belong together.
///
/// # Errors
/// Connection and permission errors.
pub async fn live_row_counts(
    target: &PgTarget,
    tables: &[(String, String)],
) -> Result<Vec<Option<u64>>> {
    let mut conn = target.connect().await?;
    let mut tx = sqlx::Connection::begin(&mut conn)
        .await
        .map_err(|e| db_error(&e, target))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(&e, target))?;
    let mut out = Vec::with_capacity(tables.len());
    for (schema, name) in tables {
        if name.is_empty() {
            out.push(None);
            continue;
        }
        let q = qualified(schema, name);
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&q)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_error(&e, target))?;
        if exists.is_none() {
            out.push(None);
            continue;
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {q}"))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| {
                db_error(&e, target).context(format!("counting the rows of {schema}.{name}"))
            })?;
        out.push(Some(u64::try_from(n).unwrap_or(0)));
    }
    Ok(out)
}

/// A table of the user's in the target, if there is any (to tell an empty database).
///
/// # Errors
/// Database errors.
pub async fn any_user_table(conn: &mut PgConnection, target: &PgTarget) -> Result<Option<String>> {
    sqlx::query_scalar(&format!(
        "SELECT format('%s.%s', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm') AND {USER_SCHEMAS} LIMIT 1"
    ))
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))
}
