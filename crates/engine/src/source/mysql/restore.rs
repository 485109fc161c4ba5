//! Loading a backup into a new MariaDB/MySQL database: the schema scripts statement by
//! statement (without their `DEFINER`, so the restoring login owns the views, routines and
//! triggers), and each table's rows from the `LOAD DATA` text form as multi-row `INSERT`s:
//! text as string literals (its escapes are the same), bytes (binary, BLOB and BIT columns) as
//! `_binary X'…'` hex literals, so no value is re-interpreted on the way.

use std::collections::HashMap;

use sqlx::mysql::MySqlConnection;
use sqlx::Connection;

use super::snapshot::{exec, literal, text, text_rows, STATEMENT_END};
use super::swap::tables_of;
use super::{my_error, quote_ident, MyTarget};
use crate::error::{Error, ErrorKind, Result};
use crate::source::model::TableManifest;

/// An `INSERT` is sent when it passes this size (well under the default `max_allowed_packet`).
const STATEMENT_BYTES: usize = 1 << 20;

/// The rows of each of `tables` in `target`'s database now (`None`: not there).
///
/// # Errors
/// Connection errors.
pub async fn live_row_counts(target: &MyTarget, tables: &[String]) -> Result<Vec<Option<u64>>> {
    let present: std::collections::HashSet<String> = tables_of(target).await?.into_iter().collect();
    let mut conn = target.connect().await?;
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        if !present.contains(t) {
            out.push(None);
            continue;
        }
        let rows = text_rows(
            &mut conn,
            target,
            &format!("SELECT COUNT(*) FROM {}", quote_ident(t)),
        )
        .await;
        match rows {
            Ok(r) => out.push(r.first().and_then(|r| text(r, 0).parse().ok())),
            Err(e) => {
                let _ = conn.close().await;
                return Err(e);
            }
        }
    }
    let _ = conn.close().await;
    Ok(out)
}

/// Connect to `target` and say what is there: `MariaDB 10.11.19`, its tables and their size.
///
/// # Errors
/// Connection errors, saying what to do.
pub async fn probe(target: &MyTarget) -> Result<crate::source::postgres::ServerProbe> {
    let mut conn = target.connect().await?;
    let rows = text_rows(
        &mut conn,
        target,
        "SELECT VERSION(), (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
           AND TABLE_TYPE = 'BASE TABLE'), \
           (SELECT CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS SIGNED) FROM information_schema.TABLES \
           WHERE TABLE_SCHEMA = DATABASE())",
    )
    .await;
    let _ = conn.close().await;
    let rows = rows?;
    let row = rows.first().cloned().unwrap_or_default();
    let version = text(&row, 0);
    let (number, flavour) = match version.split_once('-') {
        Some((n, rest)) if rest.contains("MariaDB") => (n.to_string(), "MariaDB"),
        Some((n, _)) => (n.to_string(), "MySQL"),
        None => (version.clone(), "MySQL"),
    };
    Ok(crate::source::postgres::ServerProbe {
        server_version: format!("{flavour} {number}"),
        tables: text(&row, 1).parse().unwrap_or(0),
        size: text(&row, 2).parse().unwrap_or(0),
    })
}

/// Create database `name` on `server` (refused when it exists: a restore never overwrites a
/// database this way), with the server's default character set.
///
/// # Errors
/// `TargetMismatch` when it exists; database errors.
pub async fn create_database(server: &MyTarget, name: &str) -> Result<MyTarget> {
    let admin = server.with_database("information_schema");
    let mut conn = admin.connect().await?;
    let found = text_rows(
        &mut conn,
        &admin,
        &format!(
            "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            literal(name)
        ),
    )
    .await?;
    if !found.is_empty() {
        let _ = conn.close().await;
        return Err(Error::new(
            ErrorKind::TargetMismatch,
            format!("The database {name} already exists on {}", admin.describe()),
            "Choose a new name: a MariaDB/MySQL restore creates its database and never writes into an existing one",
        ));
    }
    exec(
        &mut conn,
        &admin,
        &format!(
            "CREATE DATABASE {} CHARACTER SET utf8mb4",
            quote_ident(name)
        ),
    )
    .await?;
    let _ = conn.close().await;
    Ok(server.with_database(name))
}

/// Drop the databases whose names start with `prefix` (a killed restore's scratch databases).
///
/// # Errors
/// Database errors.
pub async fn drop_leftovers(server: &MyTarget, prefix: &str) -> Result<Vec<String>> {
    let admin = server.with_database("information_schema");
    let mut conn = admin.connect().await?;
    let pattern: String = prefix
        .chars()
        .flat_map(|c| match c {
            '_' | '%' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let found = text_rows(
        &mut conn,
        &admin,
        &format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE {}",
            literal(&format!("{pattern}%"))
        ),
    )
    .await;
    let mut dropped = Vec::new();
    if let Ok(rows) = &found {
        for r in rows {
            let name = text(r, 0);
            if exec(
                &mut conn,
                &admin,
                &format!("DROP DATABASE IF EXISTS {}", quote_ident(&name)),
            )
            .await
            .is_ok()
            {
                dropped.push(name);
            }
        }
    }
    let _ = conn.close().await;
    found.map(|_| dropped)
}

/// Drop database `name` (a restore's own, after a failure); errors are ignored.
pub async fn drop_database(server: &MyTarget, name: &str) {
    let admin = server.with_database("information_schema");
    if let Ok(mut conn) = admin.connect().await {
        let _ = exec(
            &mut conn,
            &admin,
            &format!("DROP DATABASE IF EXISTS {}", quote_ident(name)),
        )
        .await;
        let _ = conn.close().await;
    }
}

/// Drop database `name` only if it holds no table (and it can be checked): what a failed
/// restore does with its undo database, which may hold the live tables after a failed
/// swap-back. Returns whether it is gone.
pub async fn drop_database_if_empty(server: &MyTarget, name: &str) -> bool {
    let admin = server.with_database("information_schema");
    let Ok(mut conn) = admin.connect().await else {
        return false;
    };
    let tables = text_rows(
        &mut conn,
        &admin,
        &format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {}",
            literal(name)
        ),
    )
    .await;
    let empty = matches!(&tables, Ok(rows) if rows.first().is_some_and(|r| text(r, 0) == "0"));
    let gone = empty
        && exec(
            &mut conn,
            &admin,
            &format!("DROP DATABASE IF EXISTS {}", quote_ident(name)),
        )
        .await
        .is_ok();
    let _ = conn.close().await;
    gone
}

/// Whether database `name` exists on `server`'s server.
///
/// # Errors
/// Connection errors.
pub async fn database_exists(server: &MyTarget, name: &str) -> Result<bool> {
    let admin = server.with_database("information_schema");
    let mut conn = admin.connect().await?;
    let rows = text_rows(
        &mut conn,
        &admin,
        &format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            literal(name)
        ),
    )
    .await;
    let _ = conn.close().await;
    Ok(rows?.first().is_some_and(|r| text(r, 0) != "0"))
}

/// The column types whose values are bytes, not text.
const BINARY_TYPES: &[&str] = &[
    "binary",
    "varbinary",
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
    "bit",
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
];

/// The table being loaded.
struct Loading {
    table: TableManifest,
    /// Per column, in the data's order: its values are bytes (`_binary`).
    binary: Vec<bool>,
    /// Bytes after the last complete row.
    carry: Vec<u8>,
    /// The `INSERT` being built, and how many rows it holds.
    insert: String,
    pending: u64,
    rows: u64,
}

/// One connection loading a new database.
pub struct NewDatabase {
    conn: MySqlConnection,
    target: MyTarget,
    loading: Option<Loading>,
    /// Per table already begun: which of its columns hold bytes.
    kinds: HashMap<String, Vec<bool>>,
}

impl NewDatabase {
    /// Connect to `target` for loading: foreign keys and unique checks off (the data is a
    /// consistent snapshot), zero dates and explicit zero ids accepted, UTC.
    ///
    /// # Errors
    /// Connection errors.
    pub async fn open(target: &MyTarget) -> Result<NewDatabase> {
        let mut conn = target.connect().await?;
        exec(
            &mut conn,
            target,
            "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0",
        )
        .await?;
        Ok(NewDatabase {
            conn,
            target: target.clone(),
            loading: None,
            kinds: HashMap::new(),
        })
    }

    /// Run a schema script of the backup (`what` names it in errors).
    ///
    /// # Errors
    /// The first statement the server refuses, named.
    pub async fn run_script(&mut self, sql: &str, what: &str) -> Result<()> {
        for stmt in script_statements(sql) {
            let stmt = without_definer(&stmt);
            exec(&mut self.conn, &self.target, &stmt)
                .await
                .map_err(|e| {
                    let head: String = stmt.chars().take(80).collect();
                    e.context(format_args!("running {what} ({head}…)"))
                })?;
        }
        Ok(())
    }

    /// Start loading `table` (created by the schema script).
    ///
    /// # Errors
    /// `TargetMismatch` when the table or one of its columns is not there.
    pub async fn begin_table(&mut self, table: &TableManifest) -> Result<()> {
        self.end_table().await?;
        let binary = match self.kinds.get(&table.name) {
            Some(b) => b.clone(),
            None => {
                let b = self.column_kinds(table).await?;
                self.kinds.insert(table.name.clone(), b.clone());
                b
            }
        };
        self.loading = Some(Loading {
            table: table.clone(),
            binary,
            carry: Vec::new(),
            insert: String::new(),
            pending: 0,
            rows: 0,
        });
        Ok(())
    }

    /// Which of `table`'s columns (in the data's order) hold bytes.
    async fn column_kinds(&mut self, table: &TableManifest) -> Result<Vec<bool>> {
        let cols = text_rows(
            &mut self.conn,
            &self.target,
            &format!(
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = {}",
                literal(&table.name)
            ),
        )
        .await?;
        let kinds: HashMap<String, String> = cols
            .iter()
            .map(|r| (text(r, 0), text(r, 1).to_ascii_lowercase()))
            .collect();
        let mut binary = Vec::with_capacity(table.columns.len());
        for c in &table.columns {
            let kind = kinds.get(c).ok_or_else(|| {
                Error::new(
                    ErrorKind::TargetMismatch,
                    format!(
                        "The restored table {} has no column {c}",
                        table.display_name()
                    ),
                    "The backup's schema and data disagree; use another backup",
                )
            })?;
            binary.push(BINARY_TYPES.contains(&kind.as_str()));
        }
        Ok(binary)
    }

    /// The tables of the new database that have a primary key: their rows may load in any
    /// order (they are read back in key order), so their parts may load side by side.
    ///
    /// # Errors
    /// Database errors.
    pub async fn keyed_tables(&mut self) -> Result<std::collections::HashSet<String>> {
        let rows = text_rows(
            &mut self.conn,
            &self.target,
            "SELECT DISTINCT TABLE_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'PRIMARY'",
        )
        .await?;
        Ok(rows.iter().map(|r| text(r, 0)).collect())
    }

    /// Load the next bytes of the current table's data (rows may be cut anywhere).
    ///
    /// # Errors
    /// `Damaged` for a row with the wrong number of values; database errors naming the table.
    pub async fn push(&mut self, data: &[u8]) -> Result<()> {
        let Some(l) = self.loading.as_mut() else {
            return Err(Error::new(
                ErrorKind::Internal,
                "Rows arrived before their table",
                "Please report this",
            ));
        };
        l.carry.extend_from_slice(data);
        let Some(last) = l.carry.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let complete: Vec<u8> = l.carry.drain(..=last).collect();
        let one_column = l.table.columns.len() == 1;
        // The drained bytes end with a newline: the last piece of the split is empty.
        let mut lines: Vec<&[u8]> = complete.split(|&b| b == b'\n').collect();
        lines.pop();
        for line in lines {
            // An empty line is a row only of a one-column table (its empty string).
            if line.is_empty() && !one_column {
                continue;
            }
            let full = match self.loading.as_mut() {
                Some(l) => {
                    add_row(l, line)?;
                    l.insert.len() >= STATEMENT_BYTES
                }
                None => false,
            };
            if full {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Finish the current table: its last rows are sent. The rows loaded.
    ///
    /// # Errors
    /// `Damaged` for data that does not end with a complete row; database errors.
    pub async fn end_table(&mut self) -> Result<u64> {
        let Some(l) = self.loading.as_ref() else {
            return Ok(0);
        };
        if !l.carry.is_empty() {
            return Err(Error::new(
                ErrorKind::Damaged,
                format!(
                    "The data of table {} ends in the middle of a row",
                    l.table.display_name()
                ),
                "Use another backup",
            ));
        }
        self.flush().await?;
        Ok(self.loading.take().map_or(0, |l| l.rows))
    }

    async fn flush(&mut self) -> Result<()> {
        let Some(l) = self.loading.as_mut() else {
            return Ok(());
        };
        if l.pending == 0 {
            return Ok(());
        }
        let sql = std::mem::take(&mut l.insert);
        l.pending = 0;
        let name = l.table.display_name();
        sqlx::Executor::execute(&mut self.conn, sqlx::raw_sql(&sql))
            .await
            .map_err(|e| {
                my_error(&e, &self.target).context(format_args!("loading table {name}"))
            })?;
        Ok(())
    }

    /// End the connection.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// Append one row (a line of the `LOAD DATA` text form) to the table's `INSERT`.
fn add_row(l: &mut Loading, line: &[u8]) -> Result<()> {
    use std::fmt::Write as _;
    let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    if fields.len() != l.table.columns.len() {
        return Err(Error::new(
            ErrorKind::Damaged,
            format!(
                "A row of table {} holds {} values where the table has {} columns",
                l.table.display_name(),
                fields.len(),
                l.table.columns.len()
            ),
            "Use another backup",
        ));
    }
    if l.pending == 0 {
        let cols: Vec<String> = l.table.columns.iter().map(|c| quote_ident(c)).collect();
        l.insert = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote_ident(&l.table.name),
            cols.join(", ")
        );
    } else {
        l.insert.push(',');
    }
    l.insert.push('(');
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            l.insert.push(',');
        }
        if *field == b"\\N" {
            l.insert.push_str("NULL");
            continue;
        }
        // Text travels as it is: the `LOAD DATA` escapes (\\ \t \n \r \0 \Z) are string
        // literal escapes too, so only the quote needs one more. Bytes (and text that is not
        // UTF-8, which a utf8mb4 connection never sends) travel as hex.
        match std::str::from_utf8(field) {
            Ok(text) if !l.binary[i] => {
                l.insert.push('\'');
                let mut pieces = text.split('\'');
                if let Some(first) = pieces.next() {
                    l.insert.push_str(first);
                }
                for piece in pieces {
                    l.insert.push_str("\\'");
                    l.insert.push_str(piece);
                }
                l.insert.push('\'');
            }
            _ => {
                l.insert.push_str(if l.binary[i] {
                    "_binary X'"
                } else {
                    "_utf8mb4 X'"
                });
                for b in unescape(field) {
                    let _ = write!(l.insert, "{b:02X}");
                }
                l.insert.push('\'');
            }
        }
    }
    l.insert.push(')');
    l.pending += 1;
    l.rows += 1;
    Ok(())
}

/// A value of the `LOAD DATA` text form as its bytes.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut it = field.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'0') => out.push(0),
            Some(b't') => out.push(b'\t'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'Z') => out.push(0x1a),
            Some(b'b') => out.push(8),
            Some(&c) => out.push(c),
            None => out.push(b'\\'),
        }
    }
    out
}

/// The statements of a schema script (each ended by a line `;;`), without the comments and
/// the `DELIMITER` line.
pub(crate) fn script_statements(sql: &str) -> Vec<String> {
    sql.split(STATEMENT_END)
        .map(|piece| {
            piece
                .lines()
                .filter(|l| !l.starts_with("-- SchoolVault") && !l.starts_with("DELIMITER "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|s| s.trim().trim_end_matches(";;").trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `stmt` without its `DEFINER=user@host` clause (in the head of a view, routine, trigger or
/// event), so the restoring login becomes the definer.
pub(crate) fn without_definer(stmt: &str) -> String {
    let head_end = [
        " VIEW ",
        " TRIGGER ",
        " FUNCTION ",
        " PROCEDURE ",
        " EVENT ",
    ]
    .iter()
    .filter_map(|k| stmt.find(k))
    .min();
    let (Some(head_end), Some(at)) = (head_end, stmt.find("DEFINER=")) else {
        return stmt.to_string();
    };
    if at > head_end {
        return stmt.to_string();
    }
    let rest = &stmt[at + "DEFINER=".len()..];
    // A quoted part ends at its quote that is not doubled (`a``b` is one name).
    let skip_part = |s: &str| -> usize {
        let bytes = s.as_bytes();
        match bytes.first() {
            Some(&q @ (b'`' | b'\'' | b'"')) => {
                let mut i = 1;
                while i < bytes.len() {
                    if bytes[i] == q {
                        if bytes.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        return i + 1;
                    }
                    i += 1;
                }
                s.len()
            }
            _ => s
                .find(|c: char| c == '@' || c.is_whitespace())
                .unwrap_or(s.len()),
        }
    };
    let user = skip_part(rest);
    let mut end = user;
    if rest[user..].starts_with('@') {
        end = user + 1 + skip_part(&rest[user + 1..]);
    }
    format!("{}{}", &stmt[..at], rest[end..].trim_start())
}

/// Whether the login may create (and drop) databases on `server`'s server, which a test
/// restore needs for its scratch database: `CREATE` and `DROP` granted on every database.
///
/// # Errors
/// Connection errors.
pub async fn may_create_database(server: &MyTarget) -> Result<bool> {
    let mut conn = server.connect().await?;
    let rows = text_rows(
        &mut conn,
        server,
        "SELECT COUNT(DISTINCT PRIVILEGE_TYPE) FROM information_schema.USER_PRIVILEGES \
         WHERE PRIVILEGE_TYPE IN ('CREATE', 'DROP') AND GRANTEE = CONCAT('''', \
           SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
           SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
    )
    .await;
    let _ = conn.close().await;
    Ok(rows?.first().is_some_and(|r| text(r, 0) == "2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definers_are_left_out_of_the_head_only() {
        assert_eq!(
            without_definer("CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`127.0.0.1` SQL SECURITY DEFINER VIEW `v` AS select 1"),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        assert_eq!(
            without_definer("CREATE DEFINER=`a``b`@`%` TRIGGER t AFTER INSERT ON x FOR EACH ROW SET @DEFINER='DEFINER=1'"),
            "CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW SET @DEFINER='DEFINER=1'"
        );
        assert_eq!(
            without_definer("CREATE TABLE `t` (`DEFINER=` int)"),
            "CREATE TABLE `t` (`DEFINER=` int)"
        );
    }

    #[test]
    fn scripts_split_on_their_own_ends_not_on_semicolons_in_bodies() {
        let sql = "-- SchoolVault: x\nDELIMITER ;;\nSET FOREIGN_KEY_CHECKS = 0\n;;\nCREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET @a = 1; SET @b = 2; END\n;;\n";
        assert_eq!(
            script_statements(sql),
            vec![
                "SET FOREIGN_KEY_CHECKS = 0".to_string(),
                "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET @a = 1; SET @b = 2; END".to_string()
            ]
        );
    }

    #[test]
    fn values_come_back_byte_for_byte() {
        assert_eq!(
            unescape(b"a\\tb\\nc\\\\d\\0e\\r\\Zf"),
            b"a\tb\nc\\d\0e\r\x1af"
        );
    }
}
