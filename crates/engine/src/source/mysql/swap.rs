//! The swap of a MariaDB/MySQL replace restore: which tables and triggers a database has, the
//! wait for the school's sessions to let go of the live tables, the triggers taken off and put
//! back (they may not move between databases), the sequence defaults pointed at the right
//! database, and the one atomic `RENAME TABLE` across the live, scratch and undo databases.

use sqlx::Connection;

use super::restore::without_definer;
use super::sessions::exec_waiting;
use super::snapshot::{exec, literal, text, text_rows};
use super::{quote_ident, MyTarget};
use crate::error::{Error, ErrorKind, Result};
use crate::source::LockWait;

/// A trigger, as it is created again: on which table, under which SQL mode.
#[derive(Debug, Clone)]
pub struct TriggerDef {
    /// Its name.
    pub name: String,
    /// Its table.
    pub table: String,
    /// The SQL mode it was created under.
    pub sql_mode: String,
    /// `CREATE TRIGGER …`, without its definer.
    pub create: String,
}

/// The base tables and sequences of `target`'s database (what a replace restore swaps).
///
/// # Errors
/// Database errors.
pub async fn tables_of(target: &MyTarget) -> Result<Vec<String>> {
    let mut conn = target.connect().await?;
    let rows = text_rows(
        &mut conn,
        target,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE') ORDER BY 1",
    )
    .await;
    let _ = conn.close().await;
    Ok(rows?.iter().map(|r| text(r, 0)).collect())
}

/// The triggers of `target`'s database, with what creates them again.
///
/// # Errors
/// Database errors; `TableUnreadable` when a definition cannot be read.
pub async fn triggers_of(target: &MyTarget) -> Result<Vec<TriggerDef>> {
    let mut conn = target.connect().await?;
    let result = async {
        let names = text_rows(
            &mut conn,
            target,
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
        )
        .await?;
        let mut out = Vec::with_capacity(names.len());
        for n in &names {
            let name = text(n, 0);
            let rows = text_rows(
                &mut conn,
                target,
                &format!("SHOW CREATE TRIGGER {}", quote_ident(&name)),
            )
            .await?;
            let row = rows.first().ok_or_else(|| {
                Error::new(
                    ErrorKind::TableUnreadable,
                    format!("The definition of trigger {name} cannot be read"),
                    "Restore as the database's owner",
                )
            })?;
            out.push(TriggerDef {
                name,
                table: text(n, 1),
                sql_mode: text(row, 1),
                create: without_definer(&text(row, 2)),
            });
        }
        Ok(out)
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Drop `triggers` from `target`'s database, waiting for the tables' locks as `wait` says.
/// Returns how many were dropped (the first ones of `triggers`) beside the result, so that a
/// failure puts back exactly those.
pub async fn drop_triggers(
    target: &MyTarget,
    triggers: &[TriggerDef],
    wait: &LockWait<'_>,
) -> (usize, Result<()>) {
    let mut conn = match target.connect().await {
        Ok(c) => c,
        Err(e) => return (0, Err(e)),
    };
    let mut dropped = 0;
    let mut result = Ok(());
    for t in triggers {
        result = exec_waiting(
            &mut conn,
            target,
            target,
            &format!("DROP TRIGGER IF EXISTS {}", quote_ident(&t.name)),
            wait,
        )
        .await;
        if result.is_err() {
            break;
        }
        dropped += 1;
    }
    let _ = conn.close().await;
    (dropped, result)
}

/// Create `triggers` in `target`'s database, each under its SQL mode.
///
/// # Errors
/// The first the server refuses, named.
pub async fn create_triggers(target: &MyTarget, triggers: &[TriggerDef]) -> Result<()> {
    let mut conn = target.connect().await?;
    let mut result = Ok(());
    for t in triggers {
        result = async {
            exec(
                &mut conn,
                target,
                &format!("SET SESSION sql_mode = {}", literal(&t.sql_mode)),
            )
            .await?;
            exec(&mut conn, target, &t.create).await
        }
        .await
        .map_err(|e| e.context(format_args!("creating trigger {}", t.name)));
        if result.is_err() {
            break;
        }
    }
    let _ = conn.close().await;
    result
}

/// Wait, as `wait` says, until no other session holds any of `tables` of `target`'s database
/// (`LOCK TABLES … WRITE`, given back at once): the swap's one waiting point, before anything
/// is changed. A login without the `LOCK TABLES` privilege skips it (the swap then waits
/// itself).
///
/// # Errors
/// `InUse` naming the sessions that held a table longer than `wait.timeout`.
pub async fn wait_for_tables(
    target: &MyTarget,
    tables: &[String],
    wait: &LockWait<'_>,
) -> Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let mut conn = target.connect().await?;
    let list: Vec<String> = tables
        .iter()
        .map(|t| format!("{} WRITE", quote_ident(t)))
        .collect();
    let locked = exec_waiting(
        &mut conn,
        target,
        target,
        &format!("LOCK TABLES {}", list.join(", ")),
        wait,
    )
    .await;
    let _ = exec(&mut conn, target, "UNLOCK TABLES").await;
    let _ = conn.close().await;
    match locked {
        Err(e) if e.kind() == ErrorKind::InUse => Err(e),
        _ => Ok(()),
    }
}

/// Point the column defaults of `target`'s tables that take a sequence's next value from
/// database `from` (the scratch database they were restored in, which MariaDB wrote into the
/// default) at database `to`'s sequences (`None`: `target`'s own), waiting for the tables'
/// locks as `wait` says. With `best_effort`, a default the server refuses (`to` lacks that
/// sequence) is left as it was and the rest go on.
///
/// # Errors
/// The first change the server refuses, named (without `best_effort`); `InUse`.
pub async fn repoint_sequence_defaults(
    target: &MyTarget,
    from: &str,
    to: Option<&str>,
    wait: &LockWait<'_>,
    best_effort: bool,
) -> Result<()> {
    let mut conn = target.connect().await?;
    let result = async {
        let rows = text_rows(
            &mut conn,
            target,
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_DEFAULT LIKE '%val(%'",
        )
        .await?;
        let from = format!("{}.", quote_ident(from));
        let to = to.map_or(String::new(), |d| format!("{}.", quote_ident(d)));
        for r in rows.iter().filter(|r| text(r, 2).contains(&from)) {
            let (table, column) = (text(r, 0), text(r, 1));
            let set = exec_waiting(
                &mut conn,
                target,
                target,
                &format!(
                    "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT ({})",
                    quote_ident(&table),
                    quote_ident(&column),
                    text(r, 2).replace(&from, &to)
                ),
                wait,
            )
            .await;
            match set {
                Err(e) if e.kind() == ErrorKind::InUse || !best_effort => {
                    return Err(e.context(format_args!("setting the default of {table}.{column}")));
                }
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    let _ = conn.close().await;
    result
}

/// In one atomic `RENAME TABLE`: each of `old` from database `live` to database `undo`, and
/// each of `new` from database `scratch` to `live`. Either every table moves or none does.
/// Sessions of the school holding a table (an open transaction) make it wait, as `wait` says.
///
/// # Errors
/// `InUse` when other sessions held the tables too long, database errors (nothing moved).
pub async fn swap_tables(
    server: &MyTarget,
    live: &str,
    scratch: &str,
    undo: &str,
    old: &[String],
    new: &[String],
    wait: &LockWait<'_>,
) -> Result<()> {
    let moves: Vec<String> = old
        .iter()
        .map(|t| {
            format!(
                "{}.{} TO {}.{}",
                quote_ident(live),
                quote_ident(t),
                quote_ident(undo),
                quote_ident(t)
            )
        })
        .chain(new.iter().map(|t| {
            format!(
                "{}.{} TO {}.{}",
                quote_ident(scratch),
                quote_ident(t),
                quote_ident(live),
                quote_ident(t)
            )
        }))
        .collect();
    if moves.is_empty() {
        return Ok(());
    }
    let admin = server.with_database("information_schema");
    let mut conn = admin.connect().await?;
    let result = exec_waiting(
        &mut conn,
        &admin,
        &server.with_database(live),
        &format!("RENAME TABLE {}", moves.join(", ")),
        wait,
    )
    .await
    .map_err(|e| {
        if e.kind() == ErrorKind::InUse {
            e
        } else {
            e.context("swapping the restored tables in")
        }
    });
    let _ = conn.close().await;
    result
}
