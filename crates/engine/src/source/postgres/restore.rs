//! The restore side of PostgreSQL: the one transaction a restore runs in, the checks that the
//! target has every table and column, and the row counts shown before a restore.
//!
//! A replace restore loads rows as the backup has them, so triggers must not fire and foreign
//! keys cannot be checked table by table. A superuser (or a login granted the parameter) turns
//! both off for its session (`session_replication_role = replica`). The tables' owner (the
//! ERP's own login, as on most hosted servers) does what `pg_restore --clean` does instead, in
//! the same one transaction: it drops the foreign keys on and to the restored tables and
//! disables their own triggers, loads, then re-creates the keys (checking every row) and
//! enables the triggers again before the commit. Either way a failure leaves nothing changed.

use sqlx::postgres::PgConnection;
use sqlx::Connection;

use crate::error::{Error, ErrorKind, Result};

use crate::source::{describe_sessions, LockWait, SequenceValue, TableManifest, WAIT_REPORT};

use crate::source::postgres::connection::{col, db_error, exec, PgTarget};
use crate::source::postgres::sessions::{blocking_sessions, end_sessions, sessions_locking};
use crate::source::postgres::sql::{column_list, qualified};

/// A replace-restore in progress: one transaction on the target in which the backup's tables
/// were emptied; nothing is visible to others until [`RestoreTxn::commit`].
pub struct RestoreTxn {
    conn: PgConnection,
    target: PgTarget,
    /// Run just before the commit: the foreign keys re-created and the triggers enabled again
    /// (restoring as the tables' owner).
    before_commit: Vec<String>,
}

/// What a replace restore sets aside before loading and puts back before the commit.
struct OwnerPlan {
    /// `ALTER TABLE … DROP CONSTRAINT …`, `DROP INDEX …`, `… DISABLE TRIGGER …`, in order.
    undo: Vec<String>,
    /// The same, re-created and enabled, in the reverse order of dependence.
    redo: Vec<String>,
}

/// What the tables' owner sets aside for a replace restore, when this login owns every
/// restored table and every table whose foreign keys point at one (`None` when it does not).
///
/// The indexes and the primary-key and unique constraints are dropped and built again after
/// the data, as `pg_restore` does: one sorted build per index instead of an index update per
/// row. Those a comment, `CLUSTER`, replica identity or another tablespace refers to stay (a
/// re-creation would lose that), as do those of partitioned tables. With `keys_and_triggers` (a login that may not
/// turn off triggers and key checks for its session), the foreign keys on and to the tables
/// are dropped and re-created too (each then checks every row), and the triggers that would
/// fire for an ordinary session disabled and enabled again; otherwise a key constraint that a
/// foreign key needs stays.
async fn owner_plan(
    conn: &mut PgConnection,
    target: &PgTarget,
    names: &[String],
    keys_and_triggers: bool,
) -> Result<Option<OwnerPlan>> {
    let not_owned: i64 = sqlx::query_scalar(
        "WITH t AS (SELECT to_regclass(n) AS oid FROM unnest($1::text[]) n UNION \
                    SELECT a.relid FROM unnest($1::text[]) n, pg_partition_ancestors(to_regclass(n)) a) \
         SELECT count(*) FROM pg_class c \
         WHERE (c.oid IN (SELECT oid FROM t) \
                OR ($2 AND c.oid IN (SELECT conrelid FROM pg_constraint \
                             WHERE contype = 'f' AND confrelid IN (SELECT oid FROM t)))) \
           AND NOT pg_has_role(c.relowner, 'USAGE')",
    )
    .bind(names)
    .bind(keys_and_triggers)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    if not_owned > 0 {
        return Ok(None);
    }
    let rows = |sql: &'static str| {
        sqlx::query_as::<_, (String, String, String)>(sql)
            .bind(names)
            .bind(keys_and_triggers)
    };
    // The foreign keys on and to the tables and their partitioned parents (a partition's
    // inherited copies follow their parent's), with their comments, which a re-created key
    // must get again.
    let keys: Vec<(String, String, String, Option<String>)> = if keys_and_triggers {
        sqlx::query_as(
            "WITH t AS (SELECT to_regclass(n) AS oid FROM unnest($1::text[]) n UNION \
                        SELECT a.relid FROM unnest($1::text[]) n, pg_partition_ancestors(to_regclass(n)) a) \
             SELECT con.conrelid::regclass::text, quote_ident(con.conname), pg_get_constraintdef(con.oid), \
                    quote_literal(obj_description(con.oid, 'pg_constraint')) \
             FROM pg_constraint con \
             WHERE con.contype = 'f' AND con.conparentid = 0 \
               AND (con.conrelid IN (SELECT oid FROM t) OR con.confrelid IN (SELECT oid FROM t)) \
             ORDER BY 1, 2",
        )
        .bind(names)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_error(&e, target))?
    } else {
        Vec::new()
    };
    // Primary-key and unique constraints of plain tables that nothing else depends on (a view
    // grouping by the key does); one a foreign key needs only when the foreign keys are set
    // aside too.
    let constraints = rows(
        "WITH t AS (SELECT to_regclass(n) AS oid FROM unnest($1::text[]) n) \
         SELECT con.conrelid::regclass::text, quote_ident(con.conname), pg_get_constraintdef(con.oid) \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_index i ON i.indexrelid = con.conindid \
         WHERE con.contype IN ('p', 'u') AND con.conrelid IN (SELECT oid FROM t) \
           AND c.relkind = 'r' AND NOT c.relispartition \
           AND NOT i.indisclustered AND NOT i.indisreplident \
           AND (SELECT reltablespace FROM pg_class WHERE oid = i.indexrelid) = 0 \
           AND NOT EXISTS (SELECT 1 FROM pg_description d WHERE d.objoid IN (con.oid, con.conindid)) \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_constraint'::regclass \
                           AND d.refobjid = con.oid AND d.deptype = 'n') \
           AND ($2 OR NOT EXISTS (SELECT 1 FROM pg_constraint f \
                                  WHERE f.contype = 'f' AND f.conindid = con.conindid)) \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    // Indexes of plain tables that back no constraint and that no foreign key uses; not those
    // calling a function of the user's (PostgreSQL 17+ builds an index with a safe
    // search_path that such a function may not expect) or with a statistics target.
    let indexes = rows(
        "WITH t AS (SELECT to_regclass(n) AS oid FROM unnest($1::text[]) n) \
         SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
         WHERE $2 IS NOT NULL AND i.indrelid IN (SELECT oid FROM t) \
           AND c.relkind = 'r' AND NOT c.relispartition AND i.indisvalid \
           AND (SELECT reltablespace FROM pg_class WHERE oid = i.indexrelid) = 0 \
           AND NOT i.indisclustered AND NOT i.indisreplident \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid) \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refobjid = i.indexrelid \
                           AND d.classid = 'pg_constraint'::regclass) \
           AND NOT EXISTS (SELECT 1 FROM pg_description d WHERE d.objoid = i.indexrelid) \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                           AND d.objid = i.indexrelid AND d.refclassid = 'pg_proc'::regclass \
                           AND d.refobjid >= 16384) \
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indexrelid \
                           AND coalesce(a.attstattarget, -1) >= 0) \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))?;
    // The triggers that would fire for an ordinary session (enabled, not ALWAYS or REPLICA
    // ones: a replica session would run those too).
    let triggers: Vec<(String, String)> = if keys_and_triggers {
        sqlx::query_as(
            "WITH t AS (SELECT to_regclass(n) AS oid FROM unnest($1::text[]) n) \
             SELECT tg.tgrelid::regclass::text, quote_ident(tg.tgname) FROM pg_trigger tg \
             WHERE NOT tg.tgisinternal AND tg.tgenabled = 'O' AND tg.tgrelid IN (SELECT oid FROM t) \
             ORDER BY 1, 2",
        )
        .bind(names)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_error(&e, target))?
    } else {
        Vec::new()
    };
    let mut plan = OwnerPlan {
        undo: Vec::new(),
        redo: Vec::new(),
    };
    // Set aside: foreign keys, then the constraints and indexes they could need, then the
    // triggers. Put back: indexes, constraints, foreign keys, triggers.
    for (table, name, _, _) in &keys {
        plan.undo
            .push(format!("ALTER TABLE {table} DROP CONSTRAINT {name}"));
    }
    for (table, name, _) in &constraints {
        plan.undo
            .push(format!("ALTER TABLE {table} DROP CONSTRAINT {name}"));
    }
    for (_, index, def) in &indexes {
        plan.undo.push(format!("DROP INDEX {index}"));
        plan.redo.push(def.clone());
    }
    for (table, name, def) in &constraints {
        plan.redo
            .push(format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}"));
    }
    for (table, name, def, comment) in &keys {
        plan.redo
            .push(format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}"));
        if let Some(comment) = comment {
            plan.redo.push(format!(
                "COMMENT ON CONSTRAINT {name} ON {table} IS {comment}"
            ));
        }
    }
    for (table, name) in &triggers {
        plan.undo
            .push(format!("ALTER TABLE {table} DISABLE TRIGGER {name}"));
        plan.redo
            .push(format!("ALTER TABLE {table} ENABLE TRIGGER {name}"));
    }
    Ok(Some(plan))
}

/// The tables outside `names` whose foreign keys point at one of them (or at a partitioned
/// parent of one): locked with them when the owner sets those keys aside.
async fn referencing_tables(
    conn: &mut PgConnection,
    target: &PgTarget,
    names: &[String],
) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "WITH t AS (SELECT to_regclass(n) AS oid FROM unnest($1::text[]) n UNION \
                    SELECT a.relid FROM unnest($1::text[]) n, pg_partition_ancestors(to_regclass(n)) a) \
         SELECT DISTINCT con.conrelid::regclass::text FROM pg_constraint con \
         WHERE con.contype = 'f' AND con.confrelid IN (SELECT oid FROM t) \
           AND con.conrelid NOT IN (SELECT oid FROM t) \
         ORDER BY 1",
    )
    .bind(names)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(&e, target))
}

/// Check, without changing anything, that this session may restore `tables` in place: it may
/// turn off triggers and foreign-key checks (`session_replication_role = replica`), or it owns
/// the tables (and those whose foreign keys point at them), so it may drop and re-create the
/// keys and disable its triggers itself.
///
/// # Errors
/// `DbAuth` saying what to grant.
pub async fn check_may_disable_triggers(
    conn: &mut PgConnection,
    target: &PgTarget,
    tables: &[TableManifest],
) -> Result<()> {
    let probe = sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql("BEGIN; SET LOCAL session_replication_role = replica; ROLLBACK"),
    )
    .await;
    if probe.is_ok() {
        return Ok(());
    }
    let _ = sqlx::Executor::execute(&mut *conn, sqlx::raw_sql("ROLLBACK")).await;
    let names: Vec<String> = tables
        .iter()
        .map(|t| qualified(&t.schema, &t.name))
        .collect();
    if owner_plan(conn, target, &names, true).await?.is_some() {
        return Ok(());
    }
    Err(replica_refused(target))
}

pub(super) fn replica_refused(target: &PgTarget) -> Error {
    let user = target.options.get_username().to_string();
    Error::new(
        ErrorKind::DbAuth,
        format!("The database user {user} neither owns the tables to restore nor may turn off triggers and foreign-key checks for its session (session_replication_role), one of which a replace restore needs; nothing was changed"),
        format!("Restore as the tables' owner (the ERP's own login) or a superuser, or on PostgreSQL 15+ run `GRANT SET ON PARAMETER session_replication_role TO {user}`; or restore into a new database with --create-db"),
    )
    .in_app(format!("Connect as the tables' owner (the ERP's own login) or a superuser in Settings → School database, or on PostgreSQL 15+ have the server's administrator run `GRANT SET ON PARAMETER session_replication_role TO {user}`"))
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

/// The error of a restore that gave up waiting: who held the tables, and what to do.
pub(crate) async fn lock_timed_out(
    target: &PgTarget,
    names: &[String],
    wait: &LockWait<'_>,
) -> Error {
    let holders = sessions_locking(target, names).await.unwrap_or_default();
    let secs = wait.timeout.map_or(0, |t| t.as_secs());
    let who = if holders.is_empty() {
        "they ended meanwhile".to_string()
    } else {
        format!("holding them: {}", describe_sessions(&holders))
    };
    Error::new(
        ErrorKind::InUse,
        format!(
            "Other sessions on {} kept the tables to restore locked for more than {secs} s, so the restore stopped and nothing was changed; {who}",
            target.describe()
        ),
        "Ask the users to close the ERP, or end those sessions and restore again (--end-sessions), or wait longer (--lock-timeout SECS)",
    )
    .in_app("Ask the users to close the ERP, or restore again with “End these sessions” ticked")
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
        wait: &LockWait<'_>,
    ) -> Result<RestoreTxn> {
        check_target(&mut conn, target, tables).await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| db_error(&e, target))?;
        if wait.end_sessions {
            end_sessions(target, Some(pid)).await?;
        }
        exec(&mut conn, "BEGIN", target).await?;
        if let Some(t) = wait.timeout {
            // Only for taking the locks: a lock the restore holds is never given up mid-way.
            let ms = t.as_millis().clamp(1, i32::MAX as u128);
            exec(&mut conn, &format!("SET LOCAL lock_timeout = {ms}"), target).await?;
        }
        let mut txn = RestoreTxn {
            conn,
            target: target.clone(),
            before_commit: Vec::new(),
        };
        let names: Vec<String> = tables
            .iter()
            .map(|t| qualified(&t.schema, &t.name))
            .collect();
        let replica = sqlx::Executor::execute(
            &mut txn.conn,
            sqlx::raw_sql(
                "SAVEPOINT schoolvault_replica; SET LOCAL session_replication_role = replica",
            ),
        )
        .await;
        // Allowed: triggers and key checks are off for the session, and the indexes and the
        // key constraints no foreign key needs are built again after the data, where this
        // login owns the tables. Not allowed: the tables' owner drops its foreign keys and
        // disables its triggers instead; anyone else is refused before anything changes.
        let keys_and_triggers = replica.is_err();
        if keys_and_triggers {
            let plan = match txn.exec("ROLLBACK TO SAVEPOINT schoolvault_replica").await {
                Ok(()) => owner_plan(&mut txn.conn, target, &names, true).await,
                Err(e) => Err(e),
            };
            match plan {
                Ok(Some(_)) => {}
                Ok(None) => {
                    txn.rollback().await;
                    return Err(replica_refused(target));
                }
                Err(e) => {
                    txn.rollback().await;
                    return Err(e);
                }
            }
        }
        if !tables.is_empty() {
            // The locks first, saying who holds them up while it waits: the tables and, for the
            // owner, those whose foreign keys point at them. Then nothing waits, and the plan
            // is read from what is locked.
            let mut locking = names.clone();
            if keys_and_triggers {
                match referencing_tables(&mut txn.conn, target, &names).await {
                    Ok(more) => locking.extend(more),
                    Err(e) => {
                        txn.rollback().await;
                        return Err(e);
                    }
                }
            }
            let locked = txn
                .exec_watching(
                    &format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", locking.join(", ")),
                    pid,
                    wait,
                )
                .await;
            if let Err(e) = locked {
                txn.rollback().await;
                if e.sqlstate() == Some("55P03") {
                    return Err(lock_timed_out(target, &names, wait).await);
                }
                return Err(e.context("locking the tables before loading"));
            }
            let plan = match owner_plan(&mut txn.conn, target, &names, keys_and_triggers).await {
                Ok(None) if keys_and_triggers => {
                    txn.rollback().await;
                    return Err(replica_refused(target));
                }
                Ok(plan) => plan,
                Err(e) => {
                    txn.rollback().await;
                    return Err(e);
                }
            };
            if let Some(plan) = plan {
                // The builds before the commit: memory and parallel workers, and neither a
                // login's statement timeout nor its default tablespace.
                let builds = "SET LOCAL maintenance_work_mem = '256MB'; \
                              SET LOCAL max_parallel_maintenance_workers = 2; \
                              SET LOCAL statement_timeout = 0; SET LOCAL default_tablespace = ''";
                for sql in std::iter::once(builds).chain(plan.undo.iter().map(String::as_str)) {
                    if let Err(e) = txn.exec(sql).await {
                        txn.rollback().await;
                        return Err(
                            e.context("setting the indexes, foreign keys and triggers aside")
                        );
                    }
                }
                txn.before_commit = plan.redo;
            }
            let emptied = txn
                .exec(&format!("TRUNCATE TABLE ONLY {}", names.join(", ")))
                .await;
            if let Err(e) = emptied {
                txn.rollback().await;
                return Err(e.context("emptying the tables before loading"));
            }
            if wait.timeout.is_some() {
                exec(&mut txn.conn, "SET LOCAL lock_timeout = 0", target).await?;
            }
        }
        Ok(txn)
    }

    /// Run `sql` (which takes locks), saying every few seconds who holds it up while it waits.
    async fn exec_watching(&mut self, sql: &str, pid: i32, wait: &LockWait<'_>) -> Result<()> {
        let target = self.target.clone();
        let mut truncate = std::pin::pin!(self.exec(sql));
        loop {
            tokio::select! {
                done = &mut truncate => return done,
                () = tokio::time::sleep(WAIT_REPORT) => {
                    // Looked up from another connection; a failed look is no reason to stop.
                    if let Ok(holders) = blocking_sessions(&target, pid).await {
                        if !holders.is_empty() {
                            (wait.on_wait)(&holders);
                        }
                    }
                }
            }
        }
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
            before_commit: Vec::new(),
        })
    }

    /// A session without a transaction, for a database this restore created (it is dropped
    /// again if anything fails, so parallel sessions may load it).
    ///
    /// # Errors
    /// Database errors.
    pub async fn autocommit(mut conn: PgConnection, target: &PgTarget) -> Result<RestoreTxn> {
        // Index sorts in memory (the largest ERP index built 24% slower with the server's
        // default 64 MB), no parallel workers (two builders already use both cores), and room
        // for the joins that check a new foreign key against every row.
        exec(
            &mut conn,
            "SET maintenance_work_mem = '256MB'; SET max_parallel_maintenance_workers = 0; SET work_mem = '64MB'",
            target,
        )
        .await?;
        Ok(RestoreTxn {
            conn,
            target: target.clone(),
            before_commit: Vec::new(),
        })
    }

    /// Like [`autocommit`](Self::autocommit), for a session whose commits need not each wait
    /// for the disk (`synchronous_commit = off`: the loaders and index builders of a new
    /// database, hundreds of commits). A crash before the restore ends loses the database,
    /// which the next run drops anyway; the restore ends with [`make_durable`](Self::make_durable)
    /// on a session that waits, which flushes the log past every earlier commit.
    ///
    /// # Errors
    /// Database errors.
    pub async fn autocommit_relaxed(conn: PgConnection, target: &PgTarget) -> Result<RestoreTxn> {
        let mut txn = RestoreTxn::autocommit(conn, target).await?;
        txn.exec("SET synchronous_commit = off").await?;
        Ok(txn)
    }

    /// Commit a transaction that waits for the write-ahead log to reach the disk: everything
    /// committed before it, by any session, is then durable.
    ///
    /// # Errors
    /// Database errors.
    pub async fn make_durable(&mut self) -> Result<()> {
        self.exec("SET synchronous_commit = on; BEGIN; SELECT txid_current(); COMMIT")
            .await
            .map_err(|e| e.context("making the restored database durable"))
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

    /// Write `data` into large object `oid` at `offset`, creating it (under that oid: tables
    /// refer to it by number) with its first part.
    ///
    /// # Errors
    /// Database errors (a large object with that oid already there, among others).
    pub async fn put_large_object(&mut self, oid: u32, offset: u64, data: &[u8]) -> Result<()> {
        let context = || format!("restoring large object {oid}");
        if offset == 0 {
            sqlx::query("SELECT lo_create($1::int8::oid)")
                .bind(i64::from(oid))
                .execute(&mut self.conn)
                .await
                .map_err(|e| db_error(&e, &self.target).context(context()))?;
        }
        if !data.is_empty() {
            sqlx::query("SELECT lo_put($1::int8::oid, $2, $3)")
                .bind(i64::from(oid))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                .bind(data)
                .execute(&mut self.conn)
                .await
                .map_err(|e| db_error(&e, &self.target).context(context()))?;
        }
        Ok(())
    }

    /// Start a `COPY FROM STDIN` into `table`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn copy_in(
        &mut self,
        table: &TableManifest,
    ) -> Result<sqlx::postgres::PgCopyIn<&mut PgConnection>> {
        self.copy_with(table, "").await
    }

    /// `COPY … FROM STDIN` into `table` with `options` (`""`, or ` WITH (…)`).
    async fn copy_with(
        &mut self,
        table: &TableManifest,
        options: &str,
    ) -> Result<sqlx::postgres::PgCopyIn<&mut PgConnection>> {
        let sql = format!(
            "COPY {}{} FROM STDIN{options}",
            qualified(&table.schema, &table.name),
            column_list(&table.columns)
        );
        let target = self.target.clone();
        self.conn.copy_in_raw(&sql).await.map_err(|e| {
            db_error(&e, &target).context(format_args!("loading table {}", table.display_name()))
        })
    }

    /// Load one part (whole rows) with its own `COPY`, into a table this transaction emptied;
    /// returns the rows the server loaded.
    ///
    /// # Errors
    /// Database errors, naming the table.
    pub async fn copy_part(&mut self, table: &TableManifest, data: Vec<Vec<u8>>) -> Result<u64> {
        let target = self.target.clone();
        let name = table.display_name();
        // The loader emptied the table in this transaction, so the rows may be written
        // frozen and the pages marked all-visible (as VACUUM FREEZE would): the index builds
        // and key checks that follow read them without setting hint bits on, and writing
        // again, every page.
        let mut copy = self.copy_with(table, " WITH (FREEZE)").await?;
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

    /// Put back what was set aside for the load (the indexes and keys built again, the
    /// triggers enabled), telling `each` each statement, how many came before it and how many
    /// there are; the caller rolls back on an error. [`RestoreTxn::commit`] does it too.
    ///
    /// # Errors
    /// Database errors: an index or key the restored rows break, naming it.
    pub async fn put_back(&mut self, mut each: impl FnMut(&str, usize, usize)) -> Result<()> {
        let steps = std::mem::take(&mut self.before_commit);
        for (i, sql) in steps.iter().enumerate() {
            each(sql, i, steps.len());
            self.exec(sql).await.map_err(|e| {
                e.context(
                    "re-creating the indexes and foreign keys after loading (nothing was changed)",
                )
            })?;
        }
        Ok(())
    }

    /// Make the restore visible.
    ///
    /// # Errors
    /// Database errors at commit (deferred constraints among them); the database is then as it
    /// was before.
    pub async fn commit(mut self) -> Result<()> {
        // As the tables' owner: the foreign keys back (each checks every row) and the
        // triggers on again, still inside the transaction.
        for sql in std::mem::take(&mut self.before_commit) {
            if let Err(e) = self.exec(&sql).await {
                self.rollback().await;
                return Err(e.context(
                    "re-creating the indexes and foreign keys after loading (nothing was changed)",
                ));
            }
        }
        let r = self.exec("COMMIT").await;
        let _ = self.conn.close().await;
        r
    }

    /// Undo everything.
    pub async fn rollback(mut self) {
        let _ = sqlx::Executor::execute(&mut self.conn, sqlx::raw_sql("ROLLBACK")).await;
        let _ = self.conn.close().await;
    }
}
