//! The post-data step of a restore: the schema's indexes, constraints and triggers, split into
//! statements and built in parallel where they are independent.

use std::collections::{HashMap, VecDeque};
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

/// Run post-data on a database this restore created: indexes and keys on two connections at
/// once, then foreign keys and the rest in order on one. Partitioned tables' statements lock
/// several tables at once, so a schema with any runs serially.
/// `sizes`: the bytes of data loaded into each table, (schema, name), to build the largest
/// tables' indexes and check their keys first.
pub(in crate::jobs) async fn run_post_data_parallel(
    target: &PgTarget,
    sql: &str,
    sizes: &HashMap<TableName, u64>,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let statements = split_statements(sql);
    let is_fk = |s: &str| s.starts_with("ALTER TABLE") && s.contains(" FOREIGN KEY ");
    let is_key_or_index = |s: &str| {
        s.starts_with("CREATE INDEX")
            || s.starts_with("CREATE UNIQUE INDEX")
            || (s.starts_with("ALTER TABLE") && !is_fk(s))
    };
    // Keys and indexes first (a foreign key needs its referenced key), then foreign keys, each
    // phase two statements at a time; the rest (attachments, triggers, ownership, comments,
    // refreshes) in order.
    let (keys, others): (Vec<String>, Vec<String>) =
        statements.into_iter().partition(|s| is_key_or_index(s));
    let (fks, rest): (Vec<String>, Vec<String>) = others.into_iter().partition(|s| is_fk(s));
    for phase in [keys, fks] {
        let queue = BuildQueue::new(phase, sizes);
        let mut builders = Vec::new();
        for _ in 0..2 {
            builders.push(RestoreTxn::autocommit_relaxed(target.connect().await?, target).await?);
        }
        futures_util::future::try_join_all(
            builders.into_iter().map(|t| builder(t, &queue, progress)),
        )
        .await?;
    }
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

/// A table as `(schema, name)`, unquoted.
pub(in crate::jobs) type TableName = (String, String);

/// A post-data statement and the table it builds on, if known.
pub(in crate::jobs) type Build = (String, Option<TableName>);

/// The statements of one post-data phase for two builders: the largest tables first (the
/// longest builds start early instead of running alone at the end), and a builder takes the
/// first statement on a table the other is not working on (an `ALTER TABLE` on it would only
/// wait for the other's lock).
pub(in crate::jobs) struct BuildQueue {
    inner: Mutex<(VecDeque<Build>, Vec<TableName>)>,
}

impl BuildQueue {
    pub(in crate::jobs) fn new(
        statements: Vec<String>,
        sizes: &HashMap<TableName, u64>,
    ) -> BuildQueue {
        let mut items: Vec<Build> = statements
            .into_iter()
            .map(|s| {
                let table = statement_table(&s);
                (s, table)
            })
            .collect();
        // A stable sort: a table's statements keep their order (its key before an index
        // that may use it).
        items.sort_by_key(|(_, t)| std::cmp::Reverse(t.as_ref().and_then(|t| sizes.get(t))));
        BuildQueue {
            inner: Mutex::new((items.into(), Vec::new())),
        }
    }

    /// The next statement for a builder that has finished `done` (its table is free again).
    pub(in crate::jobs) fn next(&self, done: Option<TableName>) -> Result<Option<Build>> {
        let mut guard = self.inner.lock().map_err(|_| internal("queue poisoned"))?;
        let (queue, busy) = &mut *guard;
        if let Some(t) = done {
            if let Some(i) = busy.iter().position(|b| *b == t) {
                busy.swap_remove(i);
            }
        }
        let free = queue
            .iter()
            .position(|(_, t)| t.as_ref().is_none_or(|t| !busy.contains(t)))
            .unwrap_or(0);
        let Some(item) = queue.remove(free) else {
            return Ok(None);
        };
        if let Some(t) = &item.1 {
            busy.push(t.clone());
        }
        Ok(Some(item))
    }
}

/// The table a post-data statement builds on, unquoted: `CREATE [UNIQUE] INDEX … ON [ONLY]
/// t` or `ALTER TABLE [ONLY] t …`; `None` for anything else.
pub(in crate::jobs) fn statement_table(stmt: &str) -> Option<TableName> {
    // Whitespace-separated words, a double-quoted part (spaces and all) kept inside its word.
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
    // schema.name, each part quoted ("" inside) or bare.
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
            _ => part.push(c),
        }
    }
    parts.push(part);
    match parts.as_slice() {
        [schema, table] => Some((schema.clone(), table.clone())),
        _ => None,
    }
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
    fn the_largest_tables_first_and_two_builders_on_different_tables() {
        let sizes: HashMap<_, _> = [(t("s", "big"), 100), (t("s", "mid"), 10)].into();
        let q = BuildQueue::new(
            vec![
                "CREATE INDEX a ON s.small (x)".into(),
                "ALTER TABLE ONLY s.mid ADD CONSTRAINT m PRIMARY KEY (id)".into(),
                "ALTER TABLE ONLY s.big ADD CONSTRAINT b PRIMARY KEY (id)".into(),
                "CREATE INDEX b2 ON s.big (y)".into(),
            ],
            &sizes,
        );
        let first = q.next(None).expect("queue").expect("a statement");
        assert!(
            first.0.contains("PRIMARY KEY") && first.0.contains("s.big"),
            "{first:?}"
        );
        // The other builder does not wait behind the first one's lock on big.
        let second = q.next(None).expect("queue").expect("a statement");
        assert!(second.0.contains("s.mid"), "{second:?}");
        // big is free again: its index, in its order.
        let third = q.next(first.1).expect("queue").expect("a statement");
        assert_eq!(third.0, "CREATE INDEX b2 ON s.big (y)");
        let fourth = q.next(second.1).expect("queue").expect("a statement");
        assert!(fourth.0.contains("s.small"));
        assert!(q.next(third.1).expect("queue").is_none());
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
