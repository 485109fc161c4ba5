//! PostgreSQL: one consistent snapshot of every table, `COPY` out, and the transactional
//! replace-restore.
//!
//! The snapshot works as `pg_dump -j` does: a coordinator opens a `REPEATABLE READ, READ ONLY`
//! transaction, exports its snapshot with `pg_export_snapshot()` and takes `ACCESS SHARE` locks
//! on every table (so none can be dropped or rewritten under us); each export worker opens its
//! own transaction and joins that snapshot with `SET TRANSACTION SNAPSHOT`, so every table comes
//! from the same instant. Data travels in `COPY` text format, which represents every type
//! exactly. Generated columns are left out (the server recomputes them on restore).

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Row};

use crate::archive::{SequenceValue, SourceInfo, TableManifest};
use crate::error::{Error, ErrorKind, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a database is: a `postgres://` URL. Its password, if any, is never shown.
#[derive(Clone)]
pub struct PgTarget {
    options: PgConnectOptions,
}

/// Whether the connection uses TLS, and what it checks (libpq's `sslmode`).
///
/// `Prefer` and `Require` encrypt but do not check who answers: they protect against someone
/// who can only listen, not against someone who can redirect the connection (a rogue server
/// would receive the password and the data). `VerifyCa` checks the server's certificate against
/// a CA (the settings' CA file, else the public web roots); `VerifyFull` also checks that the
/// certificate names the host connected to, and is the one mode safe on an untrusted network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tls {
    /// Never.
    Disable,
    /// When the server offers it (PostgreSQL's default); not checked.
    #[default]
    Prefer,
    /// Always; fail when the server has no TLS. The certificate is not checked.
    Require,
    /// Always, and the server's certificate must be signed by the trusted CA.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl Tls {
    /// The libpq name: `disable`, `prefer`, `require`, `verify-ca`, `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tls::Disable => "disable",
            Tls::Prefer => "prefer",
            Tls::Require => "require",
            Tls::VerifyCa => "verify-ca",
            Tls::VerifyFull => "verify-full",
        }
    }

    /// Parse a libpq `sslmode` name.
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn parse(text: &str) -> Result<Tls> {
        match text {
            "disable" => Ok(Tls::Disable),
            "prefer" => Ok(Tls::Prefer),
            "require" => Ok(Tls::Require),
            "verify-ca" => Ok(Tls::VerifyCa),
            "verify-full" => Ok(Tls::VerifyFull),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("The TLS mode {other:?} is unknown"),
                "Choose disable, prefer, require, verify-ca or verify-full",
            )),
        }
    }

    /// Whether the server's certificate is checked.
    pub fn verifies(self) -> bool {
        matches!(self, Tls::VerifyCa | Tls::VerifyFull)
    }
}

/// What every session of ours sets at connection: its name (seen in `pg_stat_activity`), and
/// `standard_conforming_strings = on`, which the captured schema's string literals are written
/// for, whatever the server's or the database's default.
fn session_options(options: PgConnectOptions) -> PgConnectOptions {
    options
        .application_name("schoolvault")
        .options([("standard_conforming_strings", "on")])
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTarget({})", self.describe())
    }
}

impl PgTarget {
    /// Parse a `postgres://user[:password]@host[:port]/database` URL.
    ///
    /// # Errors
    /// `InvalidInput` for anything else; the message does not repeat the URL (it may hold a
    /// password).
    pub fn parse(url: &str) -> Result<PgTarget> {
        let options: PgConnectOptions = url.parse().map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                "The database address is not a valid PostgreSQL URL",
                "Write it as postgres://USER@HOST:PORT/DATABASE (put the password in the keychain or PGPASSWORD, not in the URL)",
            )
        })?;
        Ok(PgTarget {
            options: session_options(options),
        })
    }

    /// Whether a `postgres://` URL carries a password (which then shows in `ps` and shell
    /// history: the CLI warns).
    pub fn url_has_password(url: &str) -> bool {
        url::Url::parse(url).is_ok_and(|u| u.password().is_some_and(|p| !p.is_empty()))
    }

    /// A connection from its parts (the settings screen's fields); the password stays in memory.
    pub fn from_parts(
        host: &str,
        port: u16,
        database: &str,
        user: &str,
        password: Option<&str>,
        tls: Tls,
    ) -> PgTarget {
        let options = PgConnectOptions::new_without_pgpass()
            .host(host)
            .port(port)
            .database(database)
            .username(user)
            .ssl_mode(match tls {
                Tls::Disable => sqlx::postgres::PgSslMode::Disable,
                Tls::Prefer => sqlx::postgres::PgSslMode::Prefer,
                Tls::Require => sqlx::postgres::PgSslMode::Require,
                Tls::VerifyCa => sqlx::postgres::PgSslMode::VerifyCa,
                Tls::VerifyFull => sqlx::postgres::PgSslMode::VerifyFull,
            });
        let mut options = session_options(options);
        if let Some(p) = password {
            options = options.password(p);
        } else if let Ok(p) = std::env::var("PGPASSWORD") {
            options = options.password(&p);
        }
        PgTarget { options }
    }

    /// Trust the CA certificate(s) in the PEM file `path` for `verify-ca` / `verify-full`.
    #[must_use]
    pub fn with_ca_file(self, path: &std::path::Path) -> PgTarget {
        PgTarget {
            options: self.options.ssl_root_cert(path),
        }
    }

    /// `user@host:port/database`, safe to show.
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.options.get_username(),
            self.options.get_host(),
            self.options.get_port(),
            self.database()
        )
    }

    /// `user@host:port`: the server and login, without the database.
    pub fn server(&self) -> String {
        format!(
            "{}@{}:{}",
            self.options.get_username(),
            self.options.get_host(),
            self.options.get_port()
        )
    }

    /// The database name.
    pub fn database(&self) -> String {
        self.options
            .get_database()
            .unwrap_or(self.options.get_username())
            .to_string()
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> PgTarget {
        PgTarget {
            options: self.options.clone().database(database),
        }
    }

    /// Open a connection.
    ///
    /// # Errors
    /// `DbUnreachable`, `DbAuth`, `NotFound` (no such database) or `Database`.
    pub async fn connect(&self) -> Result<PgConnection> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.options.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(db_error(&e, self)),
            Err(_) => Err(Error::new(
                ErrorKind::DbUnreachable,
                format!("The database server at {} did not answer within {} seconds", self.describe(), CONNECT_TIMEOUT.as_secs()),
                "Check that PostgreSQL is running there and that this computer can reach it (firewall, VPN)",
            )),
        }
    }
}

/// Column `i` of a catalog row, or an error (never a panic) when it is NULL where a value was
/// expected or of another type: a server version or extension may answer differently.
///
/// # Errors
/// `Database`, naming the column.
pub fn col<'r, T>(row: &'r sqlx::postgres::PgRow, i: usize) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(i).map_err(|e| {
        Error::new(
            ErrorKind::Database,
            format!("The database server answered a catalog query unexpectedly (column {i}: {e})"),
            "Nothing was changed; please report this with the server's version",
        )
    })
}

/// Map a database error to an engine error that says what to do.
pub fn db_error(err: &sqlx::Error, target: &PgTarget) -> Error {
    let at = target.describe();
    match err {
        // rustls reports a refused certificate as invalid data on the socket.
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => Error::new(
            ErrorKind::DbUnreachable,
            format!("The secure connection to {at} failed: {io}"),
            "Check the TLS settings: with verify-ca or verify-full, that the CA file is the one that signed the server's certificate and (verify-full) that the certificate names this host",
        ),
        sqlx::Error::Io(io) => Error::new(
            ErrorKind::DbUnreachable,
            format!("Cannot reach the database server at {at} ({})", io.kind()),
            "Check that PostgreSQL is running there and that the address and port are right",
        ),
        sqlx::Error::Tls(e) => Error::new(
            ErrorKind::DbUnreachable,
            format!("The secure connection to {at} failed: {e}"),
            "Check the server's TLS settings; with verify-ca or verify-full, that the CA file is the one that signed the server's certificate and (verify-full) that the certificate names this host",
        ),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let msg = db.message();
            match code.as_ref() {
                "28P01" => Error::new(
                    ErrorKind::DbAuth,
                    format!("The database server {at} rejected the password for user {}", target.options.get_username()),
                    "Check the password in the settings (or PGPASSWORD)",
                ),
                "28000" => Error::new(
                    ErrorKind::DbAuth,
                    format!("The database server {at} refused the login: {msg}"),
                    "Check the user name, and that the server's pg_hba.conf allows this computer",
                ),
                "3D000" => Error::new(
                    ErrorKind::NotFound,
                    format!("The database server {} has no database {:?}", target.options.get_host(), target.database()),
                    "Check the database name in the settings",
                ),
                "42501" => Error::new(
                    ErrorKind::TableUnreadable,
                    format!("The database refused access: {msg}"),
                    format!("Grant the backup user SELECT on it (GRANT SELECT ON ALL TABLES IN SCHEMA … TO {}), or back up as the database owner", target.options.get_username()),
                ),
                "55P03" => Error::new(
                    ErrorKind::Database,
                    format!("A table is locked by another session: {msg}"),
                    "Another program (a migration?) holds an exclusive lock; try again when it has finished",
                ),
                "57P01" | "57P02" | "57P03" => Error::new(
                    ErrorKind::DbUnreachable,
                    format!("The database server ended the connection: {msg}"),
                    "The server was shut down or the session was terminated; try again",
                ),
                _ => Error::new(
                    ErrorKind::Database,
                    format!("The database reported an error: {msg} (SQLSTATE {code})"),
                    "Nothing was changed; fix the cause and try again",
                ),
            }
        }
        sqlx::Error::Protocol(p) => Error::new(
            ErrorKind::DbUnreachable,
            format!("The connection to {at} failed: {p}"),
            "Check that the address points at a PostgreSQL server; try again",
        ),
        other => Error::new(
            ErrorKind::Database,
            format!("The database connection to {at} failed: {other}"),
            "Try again; if it persists, check the server's log",
        ),
    }
}

/// Quote an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// A table to export, with its size estimate.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// What goes into the manifest.
    pub manifest: TableManifest,
    /// `pg_table_size`, for ordering and the progress estimate.
    pub estimated_bytes: u64,
}

/// An open snapshot: the coordinator's connection, holding the locks, and what it saw.
pub struct Snapshot {
    conn: PgConnection,
    /// The exported snapshot's id, for workers to join.
    pub id: String,
    /// Every table with data, largest first.
    pub tables: Vec<TableInfo>,
    /// Every sequence's value.
    pub sequences: Vec<SequenceValue>,
    /// The server and database.
    pub source: SourceInfo,
    /// The server's clock at the snapshot.
    pub taken_at: DateTime<Utc>,
    /// The schema's DDL, captured in the snapshot.
    pub schema: crate::source::schema::Schema,
}

const USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                     AND d.objid = c.oid AND d.deptype = 'e')";

async fn exec(conn: &mut PgConnection, sql: &str, target: &PgTarget) -> Result<()> {
    sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| db_error(&e, target))
}

impl Snapshot {
    /// Open the snapshot on `target`: every table of every non-system schema (leaf tables and
    /// partitions; a partitioned parent holds no rows), locked `ACCESS SHARE`.
    ///
    /// # Errors
    /// Connection errors; `TableUnreadable` naming the first table or sequence the user may not
    /// read.
    pub async fn open(target: &PgTarget) -> Result<Snapshot> {
        let mut conn = target.connect().await?;
        exec(
            &mut conn,
            "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
             SET row_security = off; \
             BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL lock_timeout = '60s'",
            target,
        )
        .await?;
        let row = sqlx::query(
            "SELECT pg_export_snapshot(), now(), current_database()::text, current_setting('server_version')",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|e| db_error(&e, target))?;
        let id: String = col(&row, 0)?;
        let taken_at: DateTime<Utc> = col(&row, 1)?;
        let database: String = col(&row, 2)?;
        let version: String = col(&row, 3)?;
        let server_version = version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();

        let rows = sqlx::query(&format!(
            "SELECT n.nspname::text, c.relname::text, pg_table_size(c.oid), \
                    coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a \
                              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                                AND a.attgenerated = ''), '{{}}') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND {USER_SCHEMAS} \
             ORDER BY pg_table_size(c.oid) DESC, n.nspname, c.relname"
        ))
        .fetch_all(&mut conn)
        .await
        .map_err(|e| db_error(&e, target))?;
        let mut tables = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let schema: String = col(row, 0)?;
            let name: String = col(row, 1)?;
            let size: i64 = col(row, 2)?;
            let columns: Vec<String> = col(row, 3)?;
            tables.push(TableInfo {
                manifest: TableManifest {
                    index: i as u32,
                    schema,
                    name,
                    columns,
                },
                estimated_bytes: size.max(0) as u64,
            });
        }
        refuse_row_security(&mut conn, target).await?;
        for t in &tables {
            let sql = format!(
                "LOCK TABLE ONLY {} IN ACCESS SHARE MODE",
                qualified(&t.manifest.schema, &t.manifest.name)
            );
            exec(&mut conn, &sql, target)
                .await
                .map_err(|e| unreadable(e, "table", &t.manifest.display_name()))?;
        }

        let seqs = sqlx::query(&format!(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'S' AND {USER_SCHEMAS} ORDER BY 1, 2"
        ))
        .fetch_all(&mut conn)
        .await
        .map_err(|e| db_error(&e, target))?;
        let mut sequences = Vec::with_capacity(seqs.len());
        for row in seqs {
            let schema: String = col(&row, 0)?;
            let name: String = col(&row, 1)?;
            let sql = format!(
                "SELECT last_value, is_called FROM {}",
                qualified(&schema, &name)
            );
            let v = sqlx::query(&sql).fetch_one(&mut conn).await.map_err(|e| {
                unreadable(
                    db_error(&e, target),
                    "sequence",
                    &format!("{schema}.{name}"),
                )
            })?;
            sequences.push(SequenceValue {
                schema,
                name,
                last_value: col(&v, 0)?,
                is_called: col(&v, 1)?,
            });
        }
        let schema = crate::source::schema::capture(&mut conn, target).await?;
        Ok(Snapshot {
            conn,
            id,
            tables,
            sequences,
            schema,
            source: SourceInfo {
                engine: "postgresql".into(),
                server_version,
                database,
            },
            taken_at,
        })
    }

    /// End the snapshot's transaction (after every worker has finished).
    ///
    /// # Errors
    /// Connection errors.
    pub async fn close(mut self, target: &PgTarget) -> Result<()> {
        exec(&mut self.conn, "COMMIT", target).await?;
        let _ = self.conn.close().await;
        Ok(())
    }
}

fn unreadable(err: Error, what: &str, name: &str) -> Error {
    if err.kind() == ErrorKind::TableUnreadable {
        Error::new(
            ErrorKind::TableUnreadable,
            format!("The backup user may not read {what} {name}, so the backup cannot be complete"),
            err.guidance().to_string(),
        )
    } else {
        err.context(format_args!("locking {what} {name}"))
    }
}

/// Fail, naming the table, when row-level security would hide rows of a table from the backup
/// user: a backup holding only the rows a policy shows looks complete and verifies, and a
/// later replace restore would lose the hidden rows. (Every export session also runs with
/// `row_security = off`, as `pg_dump` does, so PostgreSQL refuses rather than filters.)
async fn refuse_row_security(conn: &mut PgConnection, target: &PgTarget) -> Result<()> {
    let row = sqlx::query(&format!(
        "SELECT n.nspname::text || '.' || c.relname::text, current_user::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity AND {USER_SCHEMAS} \
           AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user) \
           AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')) \
         ORDER BY 1 LIMIT 1"
    ))
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    let Some(row) = row else {
        return Ok(());
    };
    let table: String = row.try_get(0).map_err(|e| db_error(&e, target))?;
    let user: String = row.try_get(1).map_err(|e| db_error(&e, target))?;
    Err(Error::new(
        ErrorKind::TableUnreadable,
        format!("Table {table} has row-level security: the backup user {user} would see only the rows its policies allow, so the backup cannot be complete; nothing was written"),
        format!("Back up as the table's owner or a superuser, or give the backup user the BYPASSRLS privilege (ALTER ROLE {} BYPASSRLS)", quote_ident(&user)),
    ))
}

/// A worker's connection inside the snapshot.
pub struct SnapshotWorker {
    conn: PgConnection,
}

impl SnapshotWorker {
    /// Connect and join snapshot `id`.
    ///
    /// # Errors
    /// Connection errors.
    pub async fn join(target: &PgTarget, id: &str) -> Result<SnapshotWorker> {
        let mut conn = target.connect().await?;
        if id.contains('\'') {
            return Err(Error::new(ErrorKind::Database, "bad snapshot id", ""));
        }
        exec(
            &mut conn,
            &format!(
                "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
                 SET row_security = off; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{id}'"
            ),
            target,
        )
        .await?;
        Ok(SnapshotWorker { conn })
    }

    /// Connect for reading in one `REPEATABLE READ, READ ONLY` transaction of its own (no
    /// exported snapshot), e.g. to read a scratch database back.
    ///
    /// # Errors
    /// Connection errors.
    pub async fn join_plain(target: &PgTarget) -> Result<SnapshotWorker> {
        let mut conn = target.connect().await?;
        exec(
            &mut conn,
            "SET row_security = off; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            target,
        )
        .await?;
        Ok(SnapshotWorker { conn })
    }

    /// Stream `table`'s rows in COPY text format.
    ///
    /// # Errors
    /// `TableUnreadable` naming the table, or connection errors.
    pub async fn copy_out<'c>(
        &'c mut self,
        table: &TableManifest,
        target: &PgTarget,
    ) -> Result<BoxStream<'c, sqlx::Result<Bytes>>> {
        // The coordinator holds ACCESS SHARE already; if another session queued an exclusive
        // lock behind it (a migration), waiting here would hang the backup for good, as
        // pg_dump -j knows: fail instead, naming the table.
        let lock = format!(
            "LOCK TABLE ONLY {} IN ACCESS SHARE MODE NOWAIT",
            qualified(&table.schema, &table.name)
        );
        exec(&mut self.conn, &lock, target)
            .await
            .map_err(|e| unreadable(e, "table", &table.display_name()))?;
        let sql = format!(
            "COPY {}{} TO STDOUT",
            qualified(&table.schema, &table.name),
            column_list(&table.columns)
        );
        self.conn
            .copy_out_raw(&sql)
            .await
            .map_err(|e| unreadable(db_error(&e, target), "table", &table.display_name()))
    }

    /// End the worker's transaction.
    pub async fn close(mut self) {
        let _ = sqlx::raw_sql("COMMIT").execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}

/// ` (a, b, c)`, or nothing for a table without columns (`COPY t () …` is a syntax error).
fn column_list(columns: &[String]) -> String {
    if columns.is_empty() {
        return String::new();
    }
    format!(
        " ({})",
        columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A replace-restore in progress: one transaction on the target in which the backup's tables
/// were emptied; nothing is visible to others until [`RestoreTxn::commit`].
pub struct RestoreTxn {
    conn: PgConnection,
    target: PgTarget,
}

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

fn already_exists(target: &PgTarget, name: &str) -> Error {
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

/// Check, without changing anything, that this session may turn off triggers and foreign-key
/// checks (`session_replication_role = replica`), which a replace restore needs.
///
/// # Errors
/// `DbAuth` saying what to grant.
pub async fn check_may_disable_triggers(conn: &mut PgConnection, target: &PgTarget) -> Result<()> {
    let probe = sqlx::raw_sql("BEGIN; SET LOCAL session_replication_role = replica; ROLLBACK")
        .execute(&mut *conn)
        .await;
    if probe.is_ok() {
        return Ok(());
    }
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    Err(replica_refused(target))
}

fn replica_refused(target: &PgTarget) -> Error {
    let user = target.options.get_username().to_string();
    Error::new(
        ErrorKind::DbAuth,
        format!("The database user {user} may not turn off triggers and foreign-key checks for its session (session_replication_role), which a replace restore needs; nothing was changed"),
        format!("Restore as a superuser, or on PostgreSQL 15+ run `GRANT SET ON PARAMETER session_replication_role TO {user}`; or restore into a new database with --create-db"),
    )
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
const UNFINISHED_MARK: &str =
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
        let _ = sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
    }
}

/// Check that `target` has every table of the backup with every column, without changing
/// anything.
///
/// # Errors
/// `TargetMismatch` naming the first missing table or column.
pub async fn check_target(
    conn: &mut PgConnection,
    target: &PgTarget,
    tables: &[TableManifest],
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT n.nspname::text, c.relname::text, \
                coalesce((SELECT array_agg(a.attname::text) FROM pg_attribute a \
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                            AND a.attgenerated = ''), '{}') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    let mut have = std::collections::HashMap::new();
    for row in rows {
        let key: (String, String) = (col(&row, 0)?, col(&row, 1)?);
        let cols: Vec<String> = col(&row, 2)?;
        have.insert(key, cols);
    }
    for t in tables {
        let Some(cols) = have.get(&(t.schema.clone(), t.name.clone())) else {
            return Err(Error::new(
                ErrorKind::TargetMismatch,
                format!(
                    "The target database {} has no table {} that the backup holds; nothing was changed",
                    target.describe(),
                    t.display_name()
                ),
                "Restore into the database this backup was made from, or create the table first",
            ));
        };
        if let Some(missing) = t.columns.iter().find(|c| !cols.contains(c)) {
            return Err(Error::new(
                ErrorKind::TargetMismatch,
                format!(
                    "The table {} in the target database {} has no column {missing:?} that the backup holds; nothing was changed",
                    t.display_name(),
                    target.describe()
                ),
                "The database's schema changed since the backup; restore into a database with the backup's schema",
            ));
        }
    }
    Ok(())
}

impl RestoreTxn {
    /// Begin the restore on `conn`: one transaction, triggers and foreign-key checks off for
    /// the session where permitted, and every table of the backup emptied.
    ///
    /// # Errors
    /// `TargetMismatch` if tables are missing, database errors otherwise; the transaction is
    /// rolled back.
    pub async fn begin(
        mut conn: PgConnection,
        target: &PgTarget,
        tables: &[TableManifest],
    ) -> Result<RestoreTxn> {
        check_target(&mut conn, target, tables).await?;
        exec(&mut conn, "BEGIN", target).await?;
        let mut txn = RestoreTxn {
            conn,
            target: target.clone(),
        };
        let replica = sqlx::raw_sql(
            "SAVEPOINT schoolvault_replica; SET LOCAL session_replication_role = replica",
        )
        .execute(&mut txn.conn)
        .await;
        if replica.is_err() {
            // Without it, user triggers would fire during the load and foreign keys would be
            // checked table by table in the archive's order: refuse before changing anything.
            txn.rollback().await;
            return Err(replica_refused(target));
        }
        if !tables.is_empty() {
            let list = tables
                .iter()
                .map(|t| qualified(&t.schema, &t.name))
                .collect::<Vec<_>>()
                .join(", ");
            if let Err(e) = txn.exec(&format!("TRUNCATE TABLE ONLY {list}")).await {
                txn.rollback().await;
                return Err(e.context("emptying the tables before loading"));
            }
        }
        Ok(txn)
    }

    /// Begin a restore into a database that has none of the backup's tables: one transaction
    /// in which the schema files and the data are loaded.
    ///
    /// # Errors
    /// Database errors.
    pub async fn begin_empty(mut conn: PgConnection, target: &PgTarget) -> Result<RestoreTxn> {
        // Indexes and constraints are built after the data, in this one transaction: give
        // their sorts memory and let the server build B-trees in parallel.
        exec(
            &mut conn,
            "BEGIN; SET LOCAL maintenance_work_mem = '256MB'; SET LOCAL max_parallel_maintenance_workers = 2",
            target,
        )
        .await?;
        Ok(RestoreTxn {
            conn,
            target: target.clone(),
        })
    }

    /// A session without a transaction, for a database this restore created (it is dropped
    /// again if anything fails, so parallel sessions may load it).
    ///
    /// # Errors
    /// Database errors.
    pub async fn autocommit(mut conn: PgConnection, target: &PgTarget) -> Result<RestoreTxn> {
        exec(
            &mut conn,
            "SET maintenance_work_mem = '256MB'; SET max_parallel_maintenance_workers = 2",
            target,
        )
        .await?;
        Ok(RestoreTxn {
            conn,
            target: target.clone(),
        })
    }

    /// Run SQL (a schema file) inside the restore's transaction.
    ///
    /// # Errors
    /// Database errors, with the statement's context.
    pub async fn run_sql(&mut self, sql: &str, what: &str) -> Result<()> {
        self.exec(sql).await.map_err(|e| e.context(what))
    }

    async fn exec(&mut self, sql: &str) -> Result<()> {
        exec(&mut self.conn, sql, &self.target).await
    }

    /// Start a `COPY FROM STDIN` into `table`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn copy_in(
        &mut self,
        table: &TableManifest,
    ) -> Result<sqlx::postgres::PgCopyIn<&mut PgConnection>> {
        let sql = format!(
            "COPY {}{} FROM STDIN",
            qualified(&table.schema, &table.name),
            column_list(&table.columns)
        );
        let target = self.target.clone();
        self.conn.copy_in_raw(&sql).await.map_err(|e| {
            db_error(&e, &target).context(format_args!("loading table {}", table.display_name()))
        })
    }

    /// Load one part (whole rows) with its own `COPY`; returns the rows the server loaded.
    ///
    /// # Errors
    /// Database errors, naming the table.
    pub async fn copy_part(&mut self, table: &TableManifest, data: Vec<Vec<u8>>) -> Result<u64> {
        let target = self.target.clone();
        let name = table.display_name();
        let mut copy = self.copy_in(table).await?;
        for buf in data {
            if let Err(e) = copy.send(buf).await {
                return Err(db_error(&e, &target).context(format_args!("loading table {name}")));
            }
        }
        copy.finish()
            .await
            .map_err(|e| db_error(&e, &target).context(format_args!("loading table {name}")))
    }

    /// The target, for error messages.
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    /// Set every sequence to its value in the backup.
    ///
    /// # Errors
    /// Database errors (a sequence missing in the target among them).
    pub async fn set_sequences(&mut self, sequences: &[SequenceValue]) -> Result<()> {
        for s in sequences {
            let name = qualified(&s.schema, &s.name);
            let r = sqlx::query("SELECT setval($1::regclass, $2, $3)")
                .bind(&name)
                .bind(s.last_value)
                .bind(s.is_called)
                .execute(&mut self.conn)
                .await;
            if let Err(e) = r {
                return Err(db_error(&e, &self.target)
                    .context(format_args!("setting sequence {}.{}", s.schema, s.name)));
            }
        }
        Ok(())
    }

    /// Make the restore visible.
    ///
    /// # Errors
    /// Database errors at commit (deferred constraints among them); the database is then as it
    /// was before.
    pub async fn commit(mut self) -> Result<()> {
        let r = self.exec("COMMIT").await;
        let _ = self.conn.close().await;
        r
    }

    /// Undo everything.
    pub async fn rollback(mut self) {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}
