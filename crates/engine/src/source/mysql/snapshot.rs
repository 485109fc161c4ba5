//! The consistent snapshot of a MariaDB/MySQL database, as `mydumper` takes it: a short
//! `FLUSH TABLES WITH READ LOCK` while every reader starts its
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` and the schema is read, then the lock is
//! released and the school works on while the readers export. A login without the `RELOAD`
//! privilege the lock needs gets one reader, which is consistent on its own.

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::{Connection, Row, ValueRef};

use super::{escape_into, my_error, quote_ident, MyTarget};
use crate::error::{Error, ErrorKind, Result};
use crate::source::adapter::{SnapshotContents, Source, TableInfo, TableReader};
use crate::source::model::{Privileges, SequenceValue, SourceInfo, TableManifest};

/// The open snapshot: its readers hold it (InnoDB cannot join a snapshot later, so they are
/// opened while the snapshot's lock is held); the coordinator is gone once it is taken.
pub struct MySnapshot;

/// A reader inside the snapshot.
pub struct MyReader {
    conn: Option<MySqlConnection>,
    target: MyTarget,
    sql: String,
}

/// Statements in the schema scripts end with a line holding only this (routine and trigger
/// bodies hold `;`), as after `DELIMITER ;;` in the `mariadb` client.
pub const STATEMENT_END: &str = "\n;;\n";

pub(super) async fn exec(conn: &mut MySqlConnection, target: &MyTarget, sql: &str) -> Result<()> {
    sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(sql))
        .await
        .map(|_| ())
        .map_err(|e| my_error(&e, target))
}

/// Every row of `sql` through the text protocol, each column as text (NULL: `None`).
pub(super) async fn text_rows(
    conn: &mut MySqlConnection,
    target: &MyTarget,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>> {
    let rows = sqlx::Executor::fetch_all(&mut *conn, sqlx::raw_sql(sql))
        .await
        .map_err(|e| my_error(&e, target).context("reading the schema"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut cols = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            cols.push(raw(row, i).map(|b| String::from_utf8_lossy(b).into_owned()));
        }
        out.push(cols);
    }
    Ok(out)
}

/// Column `i`'s bytes as the server sent them, or `None` for NULL.
fn raw(row: &MySqlRow, i: usize) -> Option<&[u8]> {
    match row.try_get_raw(i) {
        Ok(v) if !v.is_null() => row.try_get_unchecked::<&[u8], _>(i).ok(),
        _ => None,
    }
}

/// `s` as an SQL string literal.
pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

pub(super) fn text(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

impl Source for MyTarget {
    type Snapshot = MySnapshot;
    type Reader = MyReader;

    async fn open_snapshot(
        &self,
        readers: usize,
    ) -> Result<(MySnapshot, SnapshotContents, Vec<MyReader>)> {
        let mut coord = self.connect().await?;
        exec(&mut coord, self, "SET SESSION lock_wait_timeout = 60").await?;
        let locked = match exec(&mut coord, self, "FLUSH TABLES WITH READ LOCK").await {
            Ok(()) => true,
            // Without RELOAD: one reader, consistent on its own.
            Err(e) if e.kind() == ErrorKind::TableUnreadable => false,
            Err(e) => return Err(e.context("locking the tables for the snapshot")),
        };
        let result = self
            .snapshot_under_lock(&mut coord, if locked { readers.max(1) } else { 1 })
            .await;
        if locked {
            let _ = exec(&mut coord, self, "UNLOCK TABLES").await;
        }
        let _ = coord.close().await;
        let (contents, conns) = result?;
        let readers = conns
            .into_iter()
            .map(|conn| MyReader {
                conn: Some(conn),
                target: self.clone(),
                sql: String::new(),
            })
            .collect();
        Ok((MySnapshot, contents, readers))
    }

    async fn close_snapshot(&self, _snapshot: MySnapshot) -> Result<()> {
        Ok(())
    }
}

impl MyTarget {
    async fn snapshot_under_lock(
        &self,
        coord: &mut MySqlConnection,
        readers: usize,
    ) -> Result<(SnapshotContents, Vec<MySqlConnection>)> {
        let mut conns = Vec::with_capacity(readers);
        for _ in 0..readers {
            let mut c = self.connect().await?;
            exec(
                &mut c,
                self,
                "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
                 START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
            )
            .await?;
            conns.push(c);
        }
        let head = text_rows(
            coord,
            self,
            "SELECT VERSION(), DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:%s.%f')",
        )
        .await?;
        let version = head.first().map(|r| text(r, 0)).unwrap_or_default();
        let taken_at = head
            .first()
            .and_then(|r| NaiveDateTime::parse_from_str(&text(r, 1), "%Y-%m-%d %H:%M:%S%.f").ok())
            .map_or_else(Utc::now, |t| DateTime::from_naive_utc_and_offset(t, Utc));
        let database = self.database();
        let db = literal(&database);
        let engine = if version.contains("MariaDB") {
            "mariadb"
        } else {
            "mysql"
        };

        let mut warnings = Vec::new();
        let mut unsupported = Vec::new();
        let tables = text_rows(
            coord,
            self,
            &format!(
                "SELECT TABLE_NAME, COALESCE(ENGINE, ''), TABLE_TYPE, CAST(COALESCE(DATA_LENGTH, 0) AS SIGNED) \
                 FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db} \
                   AND TABLE_TYPE IN ('BASE TABLE', 'SEQUENCE', 'SYSTEM VERSIONED') \
                 ORDER BY 4 DESC, 1"
            ),
        )
        .await?;
        let columns = text_rows(
            coord,
            self,
            &format!(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = {db} AND EXTRA NOT LIKE '%GENERATED%' \
                 ORDER BY TABLE_NAME, ORDINAL_POSITION"
            ),
        )
        .await?;
        let mut infos = Vec::new();
        let mut pre = String::from("-- SchoolVault: MariaDB/MySQL schema; each statement ends with a line \";;\".\nDELIMITER ;;\nSET FOREIGN_KEY_CHECKS = 0");
        pre.push_str(STATEMENT_END);
        // Sequences before the tables whose defaults take their next values; their values
        // (read under the snapshot's lock) are set again after the data, as mariadb-dump does.
        let mut sequences = Vec::new();
        let mut set_sequences = String::new();
        for t in tables.iter().filter(|t| text(t, 2) == "SEQUENCE") {
            let name = text(t, 0);
            let qualified = format!("{}.{}", quote_ident(&database), quote_ident(&name));
            let ddl = show_create(
                coord,
                self,
                &format!("SHOW CREATE SEQUENCE {qualified}"),
                1,
                &name,
            )
            .await?;
            pre.push_str(&ddl);
            pre.push_str(STATEMENT_END);
            let next = text_rows(
                coord,
                self,
                &format!("SELECT next_not_cached_value FROM {qualified}"),
            )
            .await?;
            let next = next.first().map(|r| text(r, 0)).unwrap_or_default();
            // Digits as the server wrote them (an unsigned sequence may pass i64's range).
            let digits = next.strip_prefix('-').unwrap_or(&next);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(unreadable(self, &name));
            }
            set_sequences.push_str(&format!(
                "SELECT SETVAL({}, {next}, 0){STATEMENT_END}",
                quote_ident(&name)
            ));
            sequences.push(SequenceValue {
                schema: database.clone(),
                name,
                last_value: next.parse().unwrap_or(i64::MAX),
                is_called: false,
            });
        }
        for t in &tables {
            let name = text(t, 0);
            let kind = text(t, 2);
            if kind == "SEQUENCE" {
                continue;
            }
            if kind == "SYSTEM VERSIONED" {
                unsupported.push(format!("the history of system-versioned table {database}.{name} (its current rows are in the backup)"));
            }
            let storage = text(t, 1);
            if !storage.eq_ignore_ascii_case("InnoDB") {
                warnings.push(format!("table {database}.{name} uses the {storage} engine, which has no transactions: its rows may not be from the same moment as the other tables'"));
            }
            let ddl = show_create(
                coord,
                self,
                &format!(
                    "SHOW CREATE TABLE {}.{}",
                    quote_ident(&database),
                    quote_ident(&name)
                ),
                1,
                &name,
            )
            .await?;
            // A default taking a sequence's next value names the sequence with this database's
            // name, whatever the current database: left out, it is the restored database's.
            let ddl = ["nextval(", "lastval("].iter().fold(ddl, |d, f| {
                d.replace(&format!("{f}{}.", quote_ident(&database)), f)
            });
            pre.push_str(&ddl);
            pre.push_str(STATEMENT_END);
            let cols: Vec<String> = columns
                .iter()
                .filter(|c| text(c, 0) == name)
                .map(|c| text(c, 1))
                .collect();
            infos.push(TableInfo {
                manifest: TableManifest {
                    index: infos.len() as u32,
                    schema: database.clone(),
                    name,
                    columns: cols,
                },
                estimated_bytes: text(t, 3).parse::<u64>().unwrap_or(0),
            });
        }
        // Routines before the views and triggers that call them.
        let routines = text_rows(coord, self, &format!("SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {db} ORDER BY 2, 1")).await?;
        for r in &routines {
            let (name, kind) = (text(r, 0), text(r, 1));
            if kind != "PROCEDURE" && kind != "FUNCTION" {
                unsupported.push(format!("{} {database}.{name}", kind.to_lowercase()));
                continue;
            }
            let rows = text_rows(
                coord,
                self,
                &format!(
                    "SHOW CREATE {kind} {}.{}",
                    quote_ident(&database),
                    quote_ident(&name)
                ),
            )
            .await?;
            push_with_mode(
                &mut pre,
                rows.first(),
                1,
                2,
                &format!("{} {name}", kind.to_lowercase()),
            )?;
        }
        let mut post = String::from("-- SchoolVault: MariaDB/MySQL schema after the data; each statement ends with a line \";;\".\nDELIMITER ;;\n");
        post.push_str(&set_sequences);
        let views = text_rows(coord, self, &format!("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {db} ORDER BY 1")).await?;
        for v in &views {
            let name = text(v, 0);
            let ddl = show_create(
                coord,
                self,
                &format!(
                    "SHOW CREATE VIEW {}.{}",
                    quote_ident(&database),
                    quote_ident(&name)
                ),
                1,
                &name,
            )
            .await?;
            post.push_str(&ddl);
            post.push_str(STATEMENT_END);
        }
        let triggers = text_rows(coord, self, &format!("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {db} ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER, 1")).await?;
        for t in &triggers {
            let name = text(t, 0);
            let rows = text_rows(
                coord,
                self,
                &format!(
                    "SHOW CREATE TRIGGER {}.{}",
                    quote_ident(&database),
                    quote_ident(&name)
                ),
            )
            .await?;
            push_with_mode(&mut post, rows.first(), 1, 2, &format!("trigger {name}"))?;
        }
        let events = text_rows(coord, self, &format!("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {db} ORDER BY 1")).await?;
        for e in &events {
            let name = text(e, 0);
            let rows = text_rows(
                coord,
                self,
                &format!(
                    "SHOW CREATE EVENT {}.{}",
                    quote_ident(&database),
                    quote_ident(&name)
                ),
            )
            .await?;
            push_with_mode(&mut post, rows.first(), 1, 3, &format!("event {name}"))?;
        }

        let id = format!("{}-{}", database, taken_at.timestamp_micros());
        let contents = SnapshotContents {
            id,
            tables: infos,
            sequences,
            source: SourceInfo {
                engine: engine.into(),
                server_version: version.split('-').next().unwrap_or_default().to_string(),
                database,
            },
            taken_at,
            pre_data: pre,
            post_data: post,
            unsupported,
            privileges: Privileges::default(),
            warnings,
        };
        Ok((contents, conns))
    }
}

/// Column `col` of `SHOW CREATE …`'s one row.
async fn show_create(
    conn: &mut MySqlConnection,
    target: &MyTarget,
    sql: &str,
    col: usize,
    what: &str,
) -> Result<String> {
    let rows = text_rows(conn, target, sql).await?;
    rows.first()
        .and_then(|r| r.get(col).cloned().flatten())
        .ok_or_else(|| unreadable(target, what))
}

/// A routine, trigger or event with the SQL mode it was created under (its body may depend on
/// it); the body is NULL when the login may not see it.
fn push_with_mode(
    script: &mut String,
    row: Option<&Vec<Option<String>>>,
    mode: usize,
    body: usize,
    what: &str,
) -> Result<()> {
    let row = row.ok_or_else(|| {
        Error::new(
            ErrorKind::Database,
            format!("The server did not describe {what}"),
            "Try again; if it persists, check the server's log",
        )
    })?;
    let Some(ddl) = row.get(body).cloned().flatten() else {
        return Err(Error::new(
            ErrorKind::TableUnreadable,
            format!("The backup's login may not read the definition of {what}, so the backup cannot be complete"),
            "Back up as the database's owner, or grant the backup's user SHOW_ROUTINE (MariaDB) or SELECT on mysql.proc",
        ));
    };
    script.push_str(&format!(
        "SET SESSION sql_mode = {}",
        literal(&text(row, mode))
    ));
    script.push_str(STATEMENT_END);
    script.push_str(&ddl);
    script.push_str(STATEMENT_END);
    Ok(())
}

fn unreadable(target: &MyTarget, what: &str) -> Error {
    Error::new(
        ErrorKind::TableUnreadable,
        format!("The backup's login may not read {what} in {}, so the backup cannot be complete", target.describe()),
        "Grant the backup's user SELECT, SHOW VIEW, TRIGGER and EVENT on the database, or back up as its owner",
    )
}

/// Rows in the `LOAD DATA` text form, a few hundred at a time.
fn encode(rows: Vec<sqlx::Result<MySqlRow>>, target: &MyTarget, name: &str) -> Result<Bytes> {
    let mut out = Vec::with_capacity(rows.len() * 64);
    for row in rows {
        let row =
            row.map_err(|e| my_error(&e, target).context(format_args!("reading table {name}")))?;
        for i in 0..row.len() {
            if i > 0 {
                out.push(b'\t');
            }
            match raw(&row, i) {
                Some(v) => escape_into(&mut out, v),
                None => out.extend_from_slice(b"\\N"),
            }
        }
        out.push(b'\n');
    }
    Ok(Bytes::from(out))
}

impl TableReader for MyReader {
    async fn read_table<'c>(
        &'c mut self,
        table: &TableManifest,
    ) -> Result<BoxStream<'c, Result<Bytes>>> {
        let MyReader {
            conn, target, sql, ..
        } = self;
        let conn = conn.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                "The reader was closed",
                "Please report this",
            )
        })?;
        let cols = table
            .columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        // In primary-key order (InnoDB's own, so no sort): the optimizer could otherwise scan
        // a covering secondary index, and the order, hence the checksum a restore is checked
        // against, would depend on its statistics.
        let key = text_rows(
            conn,
            target,
            &format!(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {} \
                 AND TABLE_NAME = {} AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                literal(&table.schema),
                literal(&table.name)
            ),
        )
        .await?;
        let order = if key.is_empty() {
            String::new()
        } else {
            let cols: Vec<String> = key.iter().map(|r| quote_ident(&text(r, 0))).collect();
            format!(" ORDER BY {}", cols.join(", "))
        };
        *sql = format!(
            "SELECT {cols} FROM {}.{}{order}",
            quote_ident(&table.schema),
            quote_ident(&table.name)
        );
        let sql: &'c String = sql;
        let target: &'c MyTarget = target;
        let name = table.display_name();
        if table.columns.is_empty() {
            return Ok(futures_util::stream::empty().boxed());
        }
        let rows = sqlx::Executor::fetch(&mut *conn, sqlx::raw_sql(sql.as_str()));
        Ok(rows
            .ready_chunks(256)
            .map(move |batch| encode(batch, target, &name))
            .boxed())
    }

    async fn close(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let _ = exec(&mut conn, &self.target, "COMMIT").await;
        let _ = conn.close().await;
    }
}
