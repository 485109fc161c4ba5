//! The post-data step of a restore: the schema's indexes, constraints and triggers, split into
//! statements; into a new database, each table's built as soon as its rows are in, two at a
//! time, while the other tables still load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::archive::{self};
use crate::error::Result;
use crate::jobs::internal;
use crate::progress::{Phase, Progress, ProgressEvent};
use crate::source::postgres::{PgTarget, RestoreTxn};

use crate::jobs::restore::load::builder;

/// Split SQL that SchoolVault wrote (no dollar quotes; literals as `'…'` with `''`) into
/// statements.
pub(in crate::jobs) fn split_statements(sql: &str) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Code,
        Single { escapes: bool },
        Double,
        LineComment,
        BlockComment,
    }
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut state = In::Code;
    // A rule's several actions sit in parentheses, each ended by `;`.
    let mut depth = 0usize;
    let mut i = 0;
    let push = |cur: &mut String, out: &mut Vec<String>| {
        let stmt = cur.trim().to_string();
        if !stmt.is_empty() {
            out.push(stmt);
        }
        cur.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match state {
            In::Code => match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ';' if depth == 0 => {
                    push(&mut cur, &mut out);
                    i += 1;
                    continue;
                }
                '\'' => {
                    // E'…' strings take backslash escapes.
                    let e = cur.ends_with(['E', 'e'])
                        && !cur[..cur.len() - 1]
                            .ends_with(|p: char| p.is_alphanumeric() || p == '_');
                    state = In::Single { escapes: e };
                }
                '"' => state = In::Double,
                '-' if next == Some('-') => state = In::LineComment,
                '/' if next == Some('*') => state = In::BlockComment,
                '$' => {
                    // A dollar quote: $tag$ … $tag$, copied whole.
                    let tag_end = chars[i + 1..]
                        .iter()
                        .position(|&t| !(t.is_alphanumeric() || t == '_'))
                        .map(|p| i + 1 + p);
                    if let Some(j) = tag_end.filter(|&j| chars[j] == '$') {
                        let starts_ident = chars.get(i + 1).is_some_and(|t| t.is_ascii_digit());
                        let after_ident = cur.ends_with(|p: char| p.is_alphanumeric() || p == '_');
                        if !starts_ident && !after_ident {
                            let tag: String = chars[i..=j].iter().collect();
                            let body_start = j + 1;
                            let rest: String = chars[body_start..].iter().collect();
                            let close = rest.find(&tag).map_or(rest.len(), |p| p + tag.len());
                            cur.push_str(&tag);
                            cur.push_str(&rest[..close]);
                            i = body_start + rest[..close].chars().count();
                            continue;
                        }
                    }
                }
                _ => {}
            },
            In::Single { escapes } => {
                if escapes && c == '\\' {
                    cur.push(c);
                    if let Some(n) = next {
                        cur.push(n);
                    }
                    i += 2;
                    continue;
                }
                if c == '\'' {
                    if next == Some('\'') {
                        cur.push_str("''");
                        i += 2;
                        continue;
                    }
                    state = In::Code;
                }
            }
            In::Double => {
                if c == '"' {
                    if next == Some('"') {
                        cur.push_str("\"\"");
                        i += 2;
                        continue;
                    }
                    state = In::Code;
                }
            }
            In::LineComment => {
                if c == '\n' {
                    state = In::Code;
                }
            }
            In::BlockComment => {
                if c == '*' && next == Some('/') {
                    cur.push_str("*/");
                    i += 2;
                    state = In::Code;
                    continue;
                }
            }
        }
        cur.push(c);
        i += 1;
    }
    push(&mut cur, &mut out);
    out
}

/// A table as `(schema, name)`, unquoted.
pub(in crate::jobs) type TableName = (String, String);

/// When a post-data statement may run.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A key, an index or another change to one table: once that table's rows are in.
    Key,
    /// A foreign key: once both tables' rows are in and every key and index of the table it
    /// references is built (its referenced key among them). `None`: the referenced table is
    /// not known, so after all the data and every key.
    ForeignKey(Option<TableName>),
}

/// A post-data statement waiting in the [`BuildQueue`].
#[derive(Debug)]
struct Waiting {
    sql: String,
    table: Option<TableName>,
    kind: Kind,
}

/// A statement a builder runs, handed back to [`BuildQueue::next`] when it is done.
#[derive(Debug)]
pub(in crate::jobs) struct Build {
    /// The SQL.
    pub(in crate::jobs) sql: String,
    /// The tables it locks (taken by no other builder meanwhile).
    tables: Vec<TableName>,
    /// The table whose key or index it is.
    key_of: Option<Option<TableName>>,
    /// An index build (see `Board::busy`).
    shared: bool,
    /// Whether to show it as progress (the loading shows its own until it ends).
    pub(in crate::jobs) report: bool,
}

/// What a builder does next.
#[derive(Debug)]
pub(in crate::jobs) enum Next {
    /// Run this statement.
    Run(Build),
    /// Nothing can run yet: wait for [`BuildQueue::changed`].
    Wait,
    /// Nothing is left.
    Finished,
}

#[derive(Default)]
struct Board {
    /// Keys, indexes and foreign keys not yet started, in the script's order.
    waiting: Vec<Waiting>,
    /// The rest of the script (attachments, triggers, ownership, comments, refreshes), run in
    /// order after everything else.
    rest: Vec<String>,
    /// The backup's tables; a statement on another table (a partitioned parent) waits for
    /// the end of the loading.
    known: std::collections::HashSet<TableName>,
    /// Tables whose rows are committed.
    loaded: std::collections::HashSet<TableName>,
    loading_done: bool,
    /// Tables a running statement locks, and whether it locks them out for every other
    /// statement (`false`: an index build, which another index build on the table need not
    /// wait for; both take a SHARE lock).
    busy: Vec<(TableName, bool)>,
    /// Keys and indexes not yet finished, per table (`None`: a statement whose table could
    /// not be read).
    keys_left: HashMap<Option<TableName>, usize>,
    /// Bytes loaded per table: the largest tables' statements go first, so the longest builds
    /// do not run alone at the end.
    sizes: HashMap<TableName, u64>,
    abandoned: bool,
}

/// The post-data statements of a restore into a new database, handed to the builders as soon
/// as what they need is in: a table's keys and indexes once its rows are committed (while other
/// tables still load), its foreign keys once the referenced table's keys are built too. A
/// builder takes the largest ready table's first statement that would not wait for another
/// builder's lock: two index builds may share a table (the largest table's several indexes
/// were built one after another, alone at the end), an `ALTER TABLE` has its tables to itself.
/// pg_restore -j does the same from its dependency graph.
pub(in crate::jobs) struct BuildQueue {
    board: Mutex<Board>,
    /// Signalled whenever a statement may have become ready.
    pub(in crate::jobs) changed: tokio::sync::Notify,
}

impl BuildQueue {
    /// A queue for a backup of `tables`, still empty: the script comes with
    /// [`add_script`](Self::add_script).
    pub(in crate::jobs) fn new(tables: impl IntoIterator<Item = TableName>) -> BuildQueue {
        BuildQueue {
            board: Mutex::new(Board {
                known: tables.into_iter().collect(),
                ..Board::default()
            }),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Change the board, then wake the builders waiting (a statement may be ready now).
    fn with<T>(&self, f: impl FnOnce(&mut Board) -> T) -> Result<T> {
        let out = f(&mut *self.board.lock().map_err(|_| internal("queue poisoned"))?);
        self.changed.notify_waiters();
        Ok(out)
    }

    /// The post-data script: its keys, indexes and foreign keys queued, the rest kept for
    /// [`take_rest`](Self::take_rest).
    pub(in crate::jobs) fn add_script(&self, sql: &str) -> Result<()> {
        self.with(|b| {
            for sql in split_statements(sql) {
                let table = statement_table(&sql);
                let kind = if is_foreign_key(&sql) {
                    Kind::ForeignKey(referenced_table(&sql))
                } else if sql.starts_with("CREATE INDEX")
                    || sql.starts_with("CREATE UNIQUE INDEX")
                    || sql.starts_with("ALTER TABLE")
                {
                    *b.keys_left.entry(table.clone()).or_default() += 1;
                    Kind::Key
                } else {
                    b.rest.push(sql);
                    continue;
                };
                b.waiting.push(Waiting { sql, table, kind });
            }
        })
    }

    /// `bytes` more of `table`'s rows were given to a loader.
    pub(in crate::jobs) fn add_bytes(&self, table: &TableName, bytes: u64) -> Result<()> {
        let mut board = self.board.lock().map_err(|_| internal("queue poisoned"))?;
        *board.sizes.entry(table.clone()).or_default() += bytes;
        Ok(())
    }

    /// These tables' rows are committed.
    pub(in crate::jobs) fn loaded(
        &self,
        tables: impl IntoIterator<Item = TableName>,
    ) -> Result<()> {
        self.with(|b| b.loaded.extend(tables))
    }

    /// Every row is in (also for a version-2 archive, whose tables end only here).
    pub(in crate::jobs) fn loading_finished(&self) -> Result<()> {
        self.with(|b| b.loading_done = true)
    }

    /// The restore stops (the reader failed): the builders stop too.
    pub(in crate::jobs) fn abandon(&self) {
        let _ = self.with(|b| b.abandoned = true);
    }

    /// The statements to run in order after every build.
    pub(in crate::jobs) fn take_rest(&self) -> Result<Vec<String>> {
        self.with(|b| std::mem::take(&mut b.rest))
    }

    /// The next statement for a builder that has finished `done`.
    pub(in crate::jobs) fn next(&self, done: Option<Build>) -> Result<Next> {
        let finished_one = done.is_some();
        let mut board = self.board.lock().map_err(|_| internal("queue poisoned"))?;
        let next = Self::pick(&mut board, done);
        drop(board);
        // A finished statement frees its tables (and may complete a referenced key): wake the
        // others. Only then: a builder that merely looked must not wake the other, which would
        // look and wake it in turn, for ever.
        if finished_one {
            self.changed.notify_waiters();
        }
        Ok(next)
    }

    fn pick(b: &mut Board, done: Option<Build>) -> Next {
        if let Some(done) = done {
            for t in &done.tables {
                if let Some(i) = b
                    .busy
                    .iter()
                    .position(|(held, x)| held == t && *x != done.shared)
                {
                    b.busy.swap_remove(i);
                }
            }
            if let Some(table) = done.key_of {
                if let Some(n) = b.keys_left.get_mut(&table) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        if b.abandoned || (b.loading_done && b.waiting.is_empty()) {
            return Next::Finished;
        }
        let mut best: Option<(usize, u64)> = None;
        // A table's statements keep their order, but for index builds among themselves:
        // per table, whether an earlier one still waits, and whether one of those is an
        // `ALTER TABLE` (which a later statement may not pass).
        let mut earlier: HashMap<&TableName, bool> = HashMap::new();
        for (i, w) in b.waiting.iter().enumerate() {
            let shared = w.shared();
            let passes = w.table.as_ref().is_none_or(|t| match earlier.get(t) {
                None => true,
                Some(&alter) => shared && !alter,
            });
            if let Some(t) = &w.table {
                *earlier.entry(t).or_default() |= !shared;
            }
            if !passes || !b.ready(w) {
                continue;
            }
            let size = w
                .table
                .as_ref()
                .and_then(|t| b.sizes.get(t))
                .copied()
                .unwrap_or(0);
            if best.is_none_or(|(_, s)| size > s) {
                best = Some((i, size));
            }
        }
        let Some((i, _)) = best else {
            return Next::Wait;
        };
        let w = b.waiting.remove(i);
        let mut tables: Vec<TableName> = w.table.iter().cloned().collect();
        if let Kind::ForeignKey(Some(r)) = &w.kind {
            tables.push(r.clone());
        }
        let shared = w.shared();
        b.busy.extend(tables.iter().map(|t| (t.clone(), !shared)));
        Next::Run(Build {
            sql: w.sql,
            tables,
            shared,
            key_of: (w.kind == Kind::Key).then_some(w.table),
            report: b.loading_done,
        })
    }
}

impl Board {
    /// Whether `table`'s rows are in.
    fn has_rows(&self, table: &Option<TableName>) -> bool {
        match table {
            Some(t) if self.known.contains(t) => self.loaded.contains(t) || self.loading_done,
            _ => self.loading_done,
        }
    }

    fn ready(&self, w: &Waiting) -> bool {
        let shared = w.shared();
        let free = |t: &Option<TableName>| {
            t.as_ref().is_none_or(|t| {
                !self
                    .busy
                    .iter()
                    .any(|(held, x)| held == t && (*x || !shared))
            })
        };
        if !self.has_rows(&w.table) || !free(&w.table) {
            return false;
        }
        match &w.kind {
            Kind::Key => true,
            Kind::ForeignKey(Some(r)) => {
                let r = Some(r.clone());
                self.has_rows(&r)
                    && free(&r)
                    && self.keys_left.get(&r).copied().unwrap_or(0) == 0
                    && self.keys_left.get(&None).copied().unwrap_or(0) == 0
            }
            Kind::ForeignKey(None) => self.loading_done && self.keys_left.values().all(|&n| n == 0),
        }
    }
}

impl Waiting {
    /// An index build: two may run on one table at once (an `ALTER TABLE` locks it alone).
    fn shared(&self) -> bool {
        self.sql.starts_with("CREATE INDEX") || self.sql.starts_with("CREATE UNIQUE INDEX")
    }
}

fn is_foreign_key(sql: &str) -> bool {
    sql.starts_with("ALTER TABLE") && sql.contains(" FOREIGN KEY ")
}

/// Run the post-data statements of a restore into a new database on two connections while
/// (and after) the data loads, then the rest of the script in order on one.
pub(in crate::jobs) async fn build_post_data(
    target: &PgTarget,
    queue: &BuildQueue,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let mut builders = Vec::new();
    for _ in 0..2 {
        builders.push(RestoreTxn::autocommit_relaxed(target.connect().await?, target).await?);
    }
    futures_util::future::try_join_all(builders.into_iter().map(|t| builder(t, queue, progress)))
        .await?;
    Ok(())
}

/// The rest of the post-data script, in order on one connection, after every build.
pub(in crate::jobs) async fn run_rest(
    target: &PgTarget,
    rest: Vec<String>,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let conn = target.connect().await?;
    let mut txn = RestoreTxn::autocommit(conn, target).await?;
    for stmt in rest {
        progress.report(&ProgressEvent {
            table: Some(stmt.chars().take(80).collect()),
            ..ProgressEvent::phase(Phase::Restore)
        });
        txn.run_sql(
            &stmt,
            &format!("running {} of the backup", archive::POST_DATA),
        )
        .await?;
    }
    txn.rollback().await;
    Ok(())
}

/// Whitespace-separated words, a double-quoted part (spaces and all) kept inside its word;
/// at most the first 40.
fn words(stmt: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in stmt.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
        if words.len() > 40 {
            break;
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// `schema.name` (each part quoted, `""` inside, or bare), up to a `(` outside quotes.
fn qualified_name(name: &str) -> Option<TableName> {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = name.chars().peekable();
    let mut inside = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if inside && chars.peek() == Some(&'"') => {
                part.push('"');
                chars.next();
            }
            '"' => inside = !inside,
            '.' if !inside => parts.push(std::mem::take(&mut part)),
            '(' if !inside => break,
            _ => part.push(c),
        }
    }
    parts.push(part);
    match parts.as_slice() {
        [schema, table] if !schema.is_empty() && !table.is_empty() => {
            Some((schema.clone(), table.clone()))
        }
        _ => None,
    }
}

/// The table a post-data statement builds on, unquoted: `CREATE [UNIQUE] INDEX … ON [ONLY]
/// t` or `ALTER TABLE [ONLY] t …`; `None` for anything else.
pub(in crate::jobs) fn statement_table(stmt: &str) -> Option<TableName> {
    let words = words(stmt);
    let at = if words.first()? == "ALTER" && words.get(1)? == "TABLE" {
        2
    } else if words.first()? == "CREATE" {
        words.iter().position(|w| w == "ON")? + 1
    } else {
        return None;
    };
    let name = match words.get(at)?.as_str() {
        "ONLY" => words.get(at + 1)?,
        _ => words.get(at)?,
    };
    qualified_name(name)
}

/// The table a foreign key references: `… REFERENCES schema.t(col)`.
fn referenced_table(stmt: &str) -> Option<TableName> {
    let words = words(stmt);
    let at = words.iter().position(|w| w == "REFERENCES")? + 1;
    qualified_name(words.get(at)?)
}

#[cfg(test)]
mod queue_tests {
    use super::*;

    fn t(s: &str, n: &str) -> (String, String) {
        (s.to_string(), n.to_string())
    }

    #[test]
    fn the_table_of_each_kind_of_statement() {
        assert_eq!(
            statement_table("CREATE INDEX \"a ON b\" ON public.\"Stu\"\"dent\" USING btree (x)"),
            Some(t("public", "Stu\"dent"))
        );
        assert_eq!(
            statement_table("CREATE UNIQUE INDEX i ON ONLY \"my schema\".t USING btree (x)"),
            Some(t("my schema", "t"))
        );
        assert_eq!(
            statement_table("ALTER TABLE ONLY \"public\".\"Backup\" ADD CONSTRAINT \"Backup_pkey\" PRIMARY KEY (id)"),
            Some(t("public", "Backup"))
        );
        assert_eq!(
            statement_table("ALTER TABLE s.x ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES s.y(a)"),
            Some(t("s", "x"))
        );
        assert_eq!(statement_table("COMMENT ON TABLE s.x IS 'y'"), None);
        assert_eq!(statement_table("CREATE INDEX i ON x (a)"), None);
    }

    #[test]
    fn the_table_a_foreign_key_references() {
        assert_eq!(
            referenced_table("ALTER TABLE ONLY s.x ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES \"my s\".\"Y(z)\"(a) ON DELETE CASCADE"),
            Some(t("my s", "Y(z)"))
        );
        assert_eq!(
            referenced_table("ALTER TABLE s.x ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES y(a)"),
            None
        );
    }

    fn run(q: &BuildQueue, done: Option<Build>) -> Build {
        match q.next(done).expect("queue") {
            Next::Run(b) => b,
            other => panic!("expected a statement, got {other:?}"),
        }
    }

    fn waits(q: &BuildQueue, done: Option<Build>) {
        let next = q.next(done).expect("queue");
        assert!(matches!(next, Next::Wait), "{next:?}");
    }

    #[test]
    fn two_index_builds_share_a_table_an_alter_table_has_it_alone() {
        let q = BuildQueue::new([t("s", "big")]);
        q.add_script(
            "CREATE INDEX a ON s.big USING btree (x);\n\
             CREATE UNIQUE INDEX b ON s.big USING btree (y);\n\
             ALTER TABLE ONLY s.big ADD CONSTRAINT k PRIMARY KEY (id);\n\
             CREATE INDEX c ON s.big USING btree (z);",
        )
        .expect("script");
        q.loaded([t("s", "big")]).expect("loaded");
        let a = run(&q, None);
        let b = run(&q, None);
        assert!(a.sql.starts_with("CREATE INDEX a") && b.sql.starts_with("CREATE UNIQUE INDEX b"));
        // The key waits for both builds, and the index after it waits for the key.
        waits(&q, Some(a));
        let k = run(&q, Some(b));
        assert!(k.sql.contains("PRIMARY KEY"), "{k:?}");
        waits(&q, None);
        let c = run(&q, Some(k));
        assert!(c.sql.starts_with("CREATE INDEX c"), "{c:?}");
    }

    #[test]
    fn each_table_builds_once_its_rows_are_in_largest_first_foreign_keys_after_the_keys() {
        let q = BuildQueue::new([t("s", "big"), t("s", "mid"), t("s", "small")]);
        q.add_script(
            "SET standard_conforming_strings = on;\n\
             ALTER TABLE ONLY s.mid ADD CONSTRAINT m PRIMARY KEY (id);\n\
             ALTER TABLE ONLY s.big ADD CONSTRAINT b PRIMARY KEY (id);\n\
             CREATE INDEX a ON s.small USING btree (x);\n\
             CREATE INDEX b2 ON s.big USING btree (y);\n\
             CREATE INDEX p ON s.parent USING btree (y);\n\
             ALTER TABLE ONLY s.small ADD CONSTRAINT f FOREIGN KEY (b) REFERENCES s.big(id);\n\
             CREATE TRIGGER tr AFTER INSERT ON s.big FOR EACH ROW EXECUTE FUNCTION s.f();",
        )
        .expect("script");
        // Nothing is loaded yet.
        waits(&q, None);
        q.add_bytes(&t("s", "big"), 100).expect("bytes");
        q.add_bytes(&t("s", "mid"), 10).expect("bytes");
        q.add_bytes(&t("s", "small"), 1).expect("bytes");
        q.loaded([t("s", "small"), t("s", "mid")]).expect("loaded");
        // The larger of the loaded tables first; the foreign key waits for big.
        let first = run(&q, None);
        assert!(first.sql.contains("s.mid"), "{first:?}");
        assert!(!first.report, "the loading reports its own progress");
        let second = run(&q, None);
        assert!(
            second.sql.starts_with("CREATE INDEX a ON s.small"),
            "{second:?}"
        );
        waits(&q, None);
        q.loaded([t("s", "big")]).expect("loaded");
        let third = run(&q, Some(first));
        assert!(
            third.sql.contains("PRIMARY KEY") && third.sql.contains("s.big"),
            "{third:?}"
        );
        // big is busy, and its key is not built: the foreign key waits.
        waits(&q, Some(second));
        let fourth = run(&q, Some(third));
        assert!(fourth.sql.starts_with("CREATE INDEX b2"), "{fourth:?}");
        // An index on a table the backup does not hold waits for the end of the loading.
        waits(&q, None);
        q.loading_finished().expect("finished");
        let fifth = run(&q, None);
        assert!(fifth.sql.starts_with("CREATE INDEX p"), "{fifth:?}");
        assert!(fifth.report);
        let sixth = run(&q, Some(fourth));
        assert!(sixth.sql.contains("FOREIGN KEY"), "{sixth:?}");
        assert!(matches!(
            q.next(Some(fifth)).expect("queue"),
            Next::Finished
        ));
        assert!(matches!(
            q.next(Some(sixth)).expect("queue"),
            Next::Finished
        ));
        let rest = q.take_rest().expect("rest");
        assert_eq!(rest.len(), 2, "{rest:?}");
        assert!(rest[1].starts_with("CREATE TRIGGER"));
    }
}

#[cfg(test)]
mod split_tests {
    use super::split_statements;

    #[test]
    fn splits_only_on_semicolons_outside_quotes_and_comments() {
        let sql = "CREATE INDEX \"a;b\" ON t (\"x;\"\"y\");\n\
                   COMMENT ON TABLE t IS 'it''s; fine';\n\
                   COMMENT ON COLUMN t.\"a'b\" IS E'back\\'slash; ok';\n\
                   -- a comment; with a semicolon\n\
                   /* block; comment */ ALTER TABLE t ADD CHECK (x <> ';');\n\
                   CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql;\n\
                   SELECT $$a;b$$;";
        let got = split_statements(sql);
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!(got[0], "CREATE INDEX \"a;b\" ON t (\"x;\"\"y\")");
        assert_eq!(got[1], "COMMENT ON TABLE t IS 'it''s; fine'");
        assert_eq!(got[2], "COMMENT ON COLUMN t.\"a'b\" IS E'back\\'slash; ok'");
        assert!(
            got[3].ends_with("ALTER TABLE t ADD CHECK (x <> ';')"),
            "{}",
            got[3]
        );
        assert!(got[4].contains("$fn$ SELECT 1; $fn$"), "{}", got[4]);
        assert_eq!(got[5], "SELECT $$a;b$$");
    }

    #[test]
    fn a_rule_with_several_actions_is_one_statement() {
        let sql = "CREATE RULE r AS ON INSERT TO t DO ( INSERT INTO a VALUES (1); UPDATE b SET x = ')'; );\nSELECT 1;";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE RULE r AS ON INSERT TO t DO ( INSERT INTO a VALUES (1); UPDATE b SET x = ')'; )",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn plain_list_and_empty_statements() {
        assert_eq!(split_statements("A; ;B;"), vec!["A", "B"]);
        assert!(split_statements("  ").is_empty());
        // $1 is a parameter, not a dollar quote.
        assert_eq!(
            split_statements("SELECT $1; SELECT 2"),
            vec!["SELECT $1", "SELECT 2"]
        );
    }
}
