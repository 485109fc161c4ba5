//! The consistent snapshot: the coordinator's `REPEATABLE READ` transaction, exported with
//! `pg_export_snapshot()`, and the workers that join it to `COPY` every table out (the
//! coordinator, once it has captured the schema, among them).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};

use crate::error::{Error, ErrorKind, Result};
use crate::source::adapter::{SnapshotContents, Source, TableInfo, TableReader};
use crate::source::{SequenceValue, SourceInfo, TableManifest};

use crate::source::postgres::connection::{col, db_error, exec, PgTarget};
use crate::source::postgres::sql::{column_list, qualified, quote_ident, USER_SCHEMAS};

/// The coordinator of an open snapshot: its connection holds the transaction and the locks
/// until [`Snapshot::close`]; what it saw is the [`SnapshotContents`] [`Snapshot::open`]
/// returns beside it. Once the schema is captured it reads tables too (it holds their locks
/// already).
pub struct Snapshot {
    reader: SnapshotWorker,
}

/// Sequences read in one statement, at most (a longer list takes several).
const SEQUENCES_PER_QUERY: usize = 500;

impl Snapshot {
    /// Open the snapshot on `target` with `readers` readers joined to it: every table of every
    /// non-system schema (leaf tables and partitions; a partitioned parent holds no rows),
    /// locked `ACCESS SHARE`. The readers connect while the coordinator takes the snapshot and
    /// join it while the coordinator locks the tables: on a small database, connecting and
    /// one round trip per table were most of a backup's start.
    ///
    /// # Errors
    /// Connection errors; `TableUnreadable` naming the first table or sequence the user may not
    /// read.
    pub async fn open(
        target: &PgTarget,
        readers: usize,
    ) -> Result<(Snapshot, SnapshotContents, Vec<SnapshotWorker>)> {
        let connecting =
            futures_util::future::try_join_all((0..readers.max(1)).map(|_| target.connect()));
        let ((mut conn, head), conns) = tokio::try_join!(begin(target), connecting)?;
        let id = head.id.clone();
        let joining = futures_util::future::try_join_all(
            conns
                .into_iter()
                .map(|c| SnapshotWorker::enter(c, target, &id)),
        );
        let (contents, workers) = tokio::try_join!(contents(&mut conn, target, head), joining)?;
        let reader = SnapshotWorker {
            conn,
            target: target.clone(),
            holds_locks: true,
        };
        Ok((Snapshot { reader }, contents, workers))
    }

    /// The schema as the snapshot sees it, into `contents` (its DDL before and after the data,
    /// what it does not reproduce, the privileges): on the coordinator's connection, inside
    /// its transaction, while the workers already export.
    ///
    /// # Errors
    /// Connection errors; `TableUnreadable`.
    pub async fn capture_schema(
        &mut self,
        target: &PgTarget,
        contents: &mut SnapshotContents,
    ) -> Result<()> {
        let schema =
            crate::source::postgres::schema::capture(&mut self.reader.conn, target).await?;
        contents.pre_data = schema.pre_data;
        contents.post_data = schema.post_data;
        contents.unsupported = schema.unsupported;
        contents.privileges = schema.privileges;
        Ok(())
    }

    /// End the snapshot's transaction (after every worker has finished). Its COMMIT failing
    /// means the coordinator's session ended early, and with it the locks that kept every
    /// table as the snapshot saw it: the backup must fail.
    ///
    /// # Errors
    /// Connection errors.
    pub async fn close(mut self, target: &PgTarget) -> Result<()> {
        exec(&mut self.reader.conn, "COMMIT", target).await?;
        let _ = self.reader.conn.close().await;
        Ok(())
    }
}

/// What the coordinator learns as it takes the snapshot.
struct Head {
    id: String,
    taken_at: DateTime<Utc>,
    database: String,
    server_version: String,
}

/// Connect the coordinator and take the snapshot.
async fn begin(target: &PgTarget) -> Result<(PgConnection, Head)> {
    let mut conn = target.connect().await?;
    // An empty search_path, as pg_dump sets it: the server's deparsers then qualify every
    // name they write (a database whose search_path names its own schema would otherwise
    // give unqualified functions and types that a new database cannot find).
    exec(
        &mut conn,
        "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
         SET row_security = off; SET search_path = ''; \
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
    let version: String = col(&row, 3)?;
    let head = Head {
        id: col(&row, 0)?,
        taken_at: col(&row, 1)?,
        database: col(&row, 2)?,
        server_version: version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    Ok((conn, head))
}

/// List and lock the snapshot's tables, read its sequences.
async fn contents(
    conn: &mut PgConnection,
    target: &PgTarget,
    head: Head,
) -> Result<SnapshotContents> {
    // The size that orders the queue (largest first) and estimates the progress: the table's
    // rows and their TOAST, without the free-space and visibility maps and the TOAST index
    // that `pg_table_size` adds (opening those made this query, on the way to the first
    // table's COPY, 12 ms instead of 7 at scale 0.25).
    let rows = sqlx::query(&format!(
        "SELECT n.nspname::text, c.relname::text, \
                coalesce(pg_relation_size(c.oid), 0) + CASE WHEN c.reltoastrelid = 0 THEN 0 \
                    ELSE coalesce(pg_relation_size(c.reltoastrelid), 0) END AS size, \
                coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a \
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                            AND a.attgenerated = ''), '{{}}') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND {USER_SCHEMAS} \
         ORDER BY size DESC, n.nspname, c.relname"
    ))
    .fetch_all(&mut *conn)
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
    refuse_row_security(conn, target).await?;
    lock_tables(conn, target, &tables).await?;
    let sequences = read_sequences(conn, target).await?;
    Ok(SnapshotContents {
        id: head.id,
        tables,
        sequences,
        source: SourceInfo {
            engine: "postgresql".into(),
            server_version: head.server_version,
            database: head.database,
        },
        taken_at: head.taken_at,
        // Captured next, by [`Snapshot::capture_schema`], while the workers export.
        pre_data: String::new(),
        post_data: String::new(),
        unsupported: Vec::new(),
        privileges: Default::default(),
        warnings: Vec::new(),
    })
}

/// Lock every table `ACCESS SHARE`: all in one statement when none is contended (`NOWAIT`);
/// otherwise one by one, waiting up to the lock timeout and naming the table that fails.
async fn lock_tables(
    conn: &mut PgConnection,
    target: &PgTarget,
    tables: &[TableInfo],
) -> Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let all = tables
        .iter()
        .map(|t| format!("ONLY {}", qualified(&t.manifest.schema, &t.manifest.name)))
        .collect::<Vec<_>>()
        .join(", ");
    exec(conn, "SAVEPOINT schoolvault_locks", target).await?;
    let sql = format!("LOCK TABLE {all} IN ACCESS SHARE MODE NOWAIT");
    if exec(conn, &sql, target).await.is_ok() {
        return Ok(());
    }
    exec(conn, "ROLLBACK TO SAVEPOINT schoolvault_locks", target).await?;
    for t in tables {
        let sql = format!(
            "LOCK TABLE ONLY {} IN ACCESS SHARE MODE",
            qualified(&t.manifest.schema, &t.manifest.name)
        );
        exec(conn, &sql, target)
            .await
            .map_err(|e| unreadable(e, "table", &t.manifest.display_name()))?;
    }
    Ok(())
}

/// Every sequence's value: a few hundred per statement; one by one (naming the sequence
/// that fails) when a statement fails.
async fn read_sequences(conn: &mut PgConnection, target: &PgTarget) -> Result<Vec<SequenceValue>> {
    let names: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'S' AND {USER_SCHEMAS} ORDER BY 1, 2"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    let mut sequences = Vec::with_capacity(names.len());
    for chunk in names.chunks(SEQUENCES_PER_QUERY) {
        let sql = chunk
            .iter()
            .enumerate()
            .map(|(i, (schema, name))| {
                format!(
                    "SELECT {i} AS i, last_value, is_called FROM {}",
                    qualified(schema, name)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        exec(conn, "SAVEPOINT schoolvault_sequences", target).await?;
        let read: std::result::Result<Vec<(i32, i64, bool)>, _> =
            sqlx::query_as(&format!("{sql} ORDER BY 1"))
                .fetch_all(&mut *conn)
                .await;
        match read {
            Ok(values) if values.len() == chunk.len() => {
                for ((schema, name), (_, last_value, is_called)) in chunk.iter().zip(values) {
                    sequences.push(SequenceValue {
                        schema: schema.clone(),
                        name: name.clone(),
                        last_value,
                        is_called,
                    });
                }
            }
            _ => {
                exec(conn, "ROLLBACK TO SAVEPOINT schoolvault_sequences", target).await?;
                for (schema, name) in chunk {
                    let sql = format!(
                        "SELECT last_value, is_called FROM {}",
                        qualified(schema, name)
                    );
                    let v = sqlx::query(&sql).fetch_one(&mut *conn).await.map_err(|e| {
                        unreadable(
                            db_error(&e, target),
                            "sequence",
                            &format!("{schema}.{name}"),
                        )
                    })?;
                    sequences.push(SequenceValue {
                        schema: schema.clone(),
                        name: name.clone(),
                        last_value: col(&v, 0)?,
                        is_called: col(&v, 1)?,
                    });
                }
            }
        }
    }
    Ok(sequences)
}

pub(super) fn unreadable(err: Error, what: &str, name: &str) -> Error {
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
pub(super) async fn refuse_row_security(conn: &mut PgConnection, target: &PgTarget) -> Result<()> {
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
    target: PgTarget,
    /// The coordinator's own connection: its transaction locked every table already.
    holds_locks: bool,
}

impl SnapshotWorker {
    /// Join snapshot `id` on a new connection `conn`.
    ///
    /// # Errors
    /// Connection errors.
    async fn enter(mut conn: PgConnection, target: &PgTarget, id: &str) -> Result<SnapshotWorker> {
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
        Ok(SnapshotWorker {
            conn,
            target: target.clone(),
            holds_locks: false,
        })
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
        Ok(SnapshotWorker {
            conn,
            target: target.clone(),
            holds_locks: false,
        })
    }

    /// The large objects in the snapshot, by oid.
    ///
    /// # Errors
    /// Database errors.
    pub async fn large_objects(&mut self) -> Result<Vec<u32>> {
        let target = &self.target;
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT oid::int8 FROM pg_largeobject_metadata ORDER BY 1")
                .fetch_all(&mut self.conn)
                .await
                .map_err(|e| db_error(&e, target).context("listing the large objects"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(o,)| u32::try_from(o).ok())
            .collect())
    }

    /// Up to `len` bytes of large object `oid` from `offset` (fewer at its end).
    ///
    /// # Errors
    /// `TableUnreadable` when the backup's login may not read it; database errors.
    pub async fn read_large_object(
        &mut self,
        oid: u32,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let row: (Vec<u8>,) = sqlx::query_as("SELECT lo_get($1::int8::oid, $2, $3)")
            .bind(i64::from(oid))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .bind(i32::try_from(len).unwrap_or(i32::MAX))
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| {
                let err = db_error(&e, &self.target);
                if err.sqlstate() == Some("42501") {
                    Error::new(
                        ErrorKind::TableUnreadable,
                        format!("The backup's login may not read large object {oid}; nothing was written"),
                        "Back up as the database's owner or a superuser, or GRANT SELECT ON LARGE OBJECT to the backup's login",
                    )
                } else {
                    err.context(format_args!("reading large object {oid}"))
                }
            })?;
        Ok(row.0)
    }

    /// Stream `table`'s rows in COPY text format.
    ///
    /// # Errors
    /// `TableUnreadable` naming the table, or connection errors (also as stream items, naming
    /// the table).
    pub async fn copy_out<'c>(
        &'c mut self,
        table: &TableManifest,
    ) -> Result<BoxStream<'c, Result<Bytes>>> {
        let target = &self.target;
        // The coordinator holds ACCESS SHARE already; if another session queued an exclusive
        // lock behind it (a migration), waiting here would hang the backup for good, as
        // pg_dump -j knows: fail instead, naming the table.
        if !self.holds_locks {
            let lock = format!(
                "LOCK TABLE ONLY {} IN ACCESS SHARE MODE NOWAIT",
                qualified(&table.schema, &table.name)
            );
            exec(&mut self.conn, &lock, target)
                .await
                .map_err(|e| unreadable(e, "table", &table.display_name()))?;
        }
        let sql = format!(
            "COPY {}{} TO STDOUT",
            qualified(&table.schema, &table.name),
            column_list(&table.columns)
        );
        let name = table.display_name();
        let stream = self
            .conn
            .copy_out_raw(&sql)
            .await
            .map_err(|e| unreadable(db_error(&e, target), "table", &name))?;
        let target = target.clone();
        Ok(stream
            .map(move |chunk| {
                chunk.map_err(|e| {
                    db_error(&e, &target).context(format_args!("reading table {name}"))
                })
            })
            .boxed())
    }

    /// End the worker's session (its read-only transaction ends with it: no COMMIT round
    /// trip).
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

impl Source for PgTarget {
    type Snapshot = Snapshot;
    type Reader = SnapshotWorker;

    async fn open_snapshot(
        &self,
        readers: usize,
    ) -> Result<(Snapshot, SnapshotContents, Vec<SnapshotWorker>)> {
        Snapshot::open(self, readers).await
    }

    async fn capture_schema(
        &self,
        snapshot: &mut Snapshot,
        contents: &mut SnapshotContents,
    ) -> Result<()> {
        snapshot.capture_schema(self, contents).await
    }

    fn snapshot_reader<'s>(&self, snapshot: &'s mut Snapshot) -> Option<&'s mut SnapshotWorker> {
        Some(&mut snapshot.reader)
    }

    async fn close_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        snapshot.close(self).await
    }
}

impl TableReader for SnapshotWorker {
    async fn read_table<'c>(
        &'c mut self,
        table: &TableManifest,
    ) -> Result<BoxStream<'c, Result<Bytes>>> {
        self.copy_out(table).await
    }

    async fn large_objects(&mut self) -> Result<Vec<u32>> {
        SnapshotWorker::large_objects(self).await
    }

    async fn read_large_object(&mut self, oid: u32, offset: u64, len: usize) -> Result<Vec<u8>> {
        SnapshotWorker::read_large_object(self, oid, offset, len).await
    }

    async fn close(self) {
        SnapshotWorker::close(self).await;
    }
}
