//! Restoring an old-system file into the ERP's database: its records converted to the
//! tables' columns, loaded in foreign-key order, merged (insert or update by primary key) or
//! replacing the tables' rows, all in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::error::{Error, ErrorKind, Result};
use crate::source::postgres::{
    blocking_sessions, col, db_error, lock_timed_out, qualified, quote_ident, PgTarget,
};
use crate::source::{LockWait, WAIT_REPORT};

use crate::legacy::{table_for, V1Backup};

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

pub(super) struct TableShape {
    pub(super) columns: HashMap<String, String>,
    pub(super) pk: Vec<String>,
}

pub(super) async fn shape(
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
pub(super) fn convert_buffers(record: &mut Value, bytea_columns: &[String]) {
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

pub(super) fn record_id(record: &Value, pk: &[String]) -> String {
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
pub(super) async fn load_order(
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
pub(super) async fn references_to(
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

pub(super) async fn exec(conn: &mut PgConnection, target: &PgTarget, sql: &str) -> Result<()> {
    sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(sql))
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
/// primary key, and with [`V1Mode::Replace`] remove the rows not in the file. The file's
/// tables are locked against writers first (`SHARE ROW EXCLUSIVE`: the school's readers go
/// on), waiting for the sessions writing them as `wait` says and telling who they are.
///
/// # Errors
/// `Database` naming the table and record id of the first record that fails;
/// `TargetMismatch` naming the tables that block `--replace`; `InUse` naming the sessions
/// that held the tables longer than `wait.timeout`. The target is unchanged then.
pub async fn apply(
    target: &PgTarget,
    plan: &V1Plan,
    mode: V1Mode,
    wait: &LockWait<'_>,
) -> Result<Vec<V1TableOutcome>> {
    let mut conn = target.connect().await?;
    exec(&mut conn, target, "BEGIN").await?;
    let locked = lock_tables(&mut conn, target, plan, wait).await;
    let result = match locked {
        Ok(()) => match load(&mut conn, target, &plan.tables, mode).await {
            Err(e) if e.sqlstate() == Some("55P03") => {
                let names: Vec<String> = plan
                    .tables
                    .iter()
                    .map(|p| qualified("public", &p.0))
                    .collect();
                Err(lock_timed_out(target, &names, wait).await)
            }
            other => other,
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(outcome) => {
            exec(&mut conn, target, "COMMIT").await?;
            Ok(outcome)
        }
        Err(e) => {
            let _ = sqlx::Executor::execute(&mut conn, sqlx::raw_sql("ROLLBACK")).await;
            Err(e)
        }
    }
}

/// Lock the plan's tables against other writers, within `wait.timeout`, reporting who holds
/// them every few seconds while it waits.
async fn lock_tables(
    conn: &mut PgConnection,
    target: &PgTarget,
    plan: &V1Plan,
    wait: &LockWait<'_>,
) -> Result<()> {
    if plan.tables.is_empty() {
        return Ok(());
    }
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error(&e, target))?;
    if let Some(t) = wait.timeout {
        let ms = t.as_millis().clamp(1, i32::MAX as u128);
        exec(conn, target, &format!("SET LOCAL lock_timeout = {ms}")).await?;
    }
    let names: Vec<String> = plan
        .tables
        .iter()
        .map(|p| qualified("public", &p.0))
        .collect();
    let sql = format!(
        "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
        names.join(", ")
    );
    let locked = {
        let mut run = std::pin::pin!(exec(conn, target, &sql));
        loop {
            tokio::select! {
                done = &mut run => break done,
                () = tokio::time::sleep(WAIT_REPORT) => {
                    // Looked up from another connection; a failed look is no reason to stop.
                    if let Ok(holders) = blocking_sessions(target, pid).await {
                        if !holders.is_empty() {
                            (wait.on_wait)(&holders);
                        }
                    }
                }
            }
        }
    };
    // The timeout stays for the rest: a row the school's session locked (`FOR UPDATE`) would
    // hold up an upsert too.
    match locked {
        Err(e) if e.sqlstate() == Some("55P03") => Err(lock_timed_out(target, &names, wait).await),
        Err(e) => Err(e.context("locking the tables before restoring")),
        Ok(()) => Ok(()),
    }
}

pub(super) async fn load(
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
                // Held up by a session of the school past the lock timeout: said as such.
                Err(batch_err)
                    if batch_err
                        .as_database_error()
                        .and_then(|d| d.code())
                        .is_some_and(|c| c == "55P03") =>
                {
                    return Err(db_error(&batch_err, target));
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
                            if cause.sqlstate() == Some("55P03") {
                                // Held up by a session of the school: said as such.
                                return Err(cause);
                            }
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
