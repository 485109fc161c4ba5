//! PostgreSQL schema capture: the DDL that rebuilds a database's user objects, read from the
//! system catalogs inside the backup's snapshot and split as pg_dump splits it.
//!
//! - `pre-data`: schemas, extensions (`IF NOT EXISTS`), enums, domains, composite types,
//!   functions and procedures, sequences, tables (defaults, NOT NULL, identity, generated
//!   columns, collations, partitioning), the routines that use a table's row type or body,
//!   views and materialized views (`WITH NO DATA`), the routines that use a view's.
//! - `post-data`: primary keys, unique, check, exclusion and foreign-key constraints, indexes,
//!   triggers, materialized-view refreshes, sequence ownership, comments.
//!
//! The server's own deparsers write the hard parts (`format_type`, `pg_get_expr`,
//! `pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_viewdef`, `pg_get_functiondef`,
//! `pg_get_triggerdef`, `pg_get_partkeydef`). Owners and grants are left out, as
//! `pg_dump --no-owner --no-privileges` does. Objects this code cannot reproduce are returned
//! in [`Schema::unsupported`], never dropped silently.

use std::collections::HashMap;

use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::error::Result;
use crate::source::postgres::sql::{lit, not_extension, qualified, quote_ident, USER_NS};
use crate::source::postgres::{col, db_error, PgTarget};

/// The captured DDL.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Objects before the data.
    pub pre_data: String,
    /// Objects after the data.
    pub post_data: String,
    /// Objects that are not reproduced, described for a person.
    pub unsupported: Vec<String>,
}

async fn rows(
    conn: &mut PgConnection,
    target: &PgTarget,
    sql: &str,
) -> Result<Vec<sqlx::postgres::PgRow>> {
    sqlx::query(sql)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_error(&e, target).context("reading the schema"))
}

/// Capture the schema through `conn` (inside the snapshot's transaction).
///
/// # Errors
/// Database errors.
pub async fn capture(conn: &mut PgConnection, target: &PgTarget) -> Result<Schema> {
    let mut pre =
        // Strings in the captured SQL are written for standard_conforming_strings = on
        // (backslashes literal); say so, whatever the restoring server's default.
        String::from("SET standard_conforming_strings = on;\nSET check_function_bodies = false;\nSET client_min_messages = warning;\n\n");
    let mut post = String::from("SET standard_conforming_strings = on;\n\n");
    let mut unsupported = Vec::new();

    // Schemas.
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT n.nspname::text FROM pg_namespace n WHERE {USER_NS} \
             AND {} ORDER BY 1",
            not_extension("pg_namespace", "n.oid")
        ),
    )
    .await?
    {
        let name: String = col(&r, 0)?;
        pre.push_str(&format!(
            "CREATE SCHEMA IF NOT EXISTS {};\n",
            quote_ident(&name)
        ));
    }
    // Extensions.
    for r in rows(
        conn,
        target,
        "SELECT e.extname::text, n.nspname::text FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql' ORDER BY 1",
    )
    .await?
    {
        let (ext, ns): (String, String) = (col(&r, 0)?, col(&r, 1)?);
        pre.push_str(&format!(
            "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {};\n",
            quote_ident(&ext),
            quote_ident(&ns)
        ));
    }
    // Enums.
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT n.nspname::text, t.typname::text, \
                    array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.typtype = 'e' AND {USER_NS} AND {} ORDER BY 1, 2",
            not_extension("pg_type", "t.oid")
        ),
    )
    .await?
    {
        let (ns, name, labels): (String, String, Vec<String>) = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
        let labels: Vec<String> = labels.iter().map(|l| lit(l)).collect();
        pre.push_str(&format!(
            "CREATE TYPE {} AS ENUM ({});\n",
            qualified(&ns, &name),
            labels.join(", ")
        ));
    }
    // Composite types (stand-alone ones, not tables' row types).
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT n.nspname::text, t.typname::text, \
                    array(SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) \
                          FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 \
                          AND NOT a.attisdropped ORDER BY a.attnum) \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             JOIN pg_class c ON c.oid = t.typrelid \
             WHERE t.typtype = 'c' AND c.relkind = 'c' AND {USER_NS} AND {} ORDER BY t.oid",
            not_extension("pg_type", "t.oid")
        ),
    )
    .await?
    {
        let (ns, name, cols): (String, String, Vec<String>) = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
        pre.push_str(&format!(
            "CREATE TYPE {} AS ({});\n",
            qualified(&ns, &name),
            cols.join(", ")
        ));
    }
    // Domains, with their check constraints.
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT n.nspname::text, t.typname::text, format_type(t.typbasetype, t.typtypmod), \
                    t.typnotnull, t.typdefault, \
                    CASE WHEN t.typcollation <> b.typcollation THEN \
                         (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co \
                          JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END, \
                    array(SELECT 'CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid) \
                          FROM pg_constraint k WHERE k.contypid = t.oid ORDER BY k.conname) \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             JOIN pg_type b ON b.oid = t.typbasetype \
             WHERE t.typtype = 'd' AND {USER_NS} AND {} ORDER BY t.oid",
            not_extension("pg_type", "t.oid")
        ),
    )
    .await?
    {
        let (ns, name, base, notnull): (String, String, String, bool) =
            (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?, col(&r, 3)?);
        let default: Option<String> = col(&r, 4)?;
        let collation: Option<String> = col(&r, 5)?;
        let checks: Vec<String> = col(&r, 6)?;
        let mut ddl = format!("CREATE DOMAIN {} AS {base}", qualified(&ns, &name));
        if let Some(c) = collation {
            ddl.push_str(&format!(" COLLATE {c}"));
        }
        if let Some(d) = default {
            ddl.push_str(&format!(" DEFAULT {d}"));
        }
        if notnull {
            ddl.push_str(" NOT NULL");
        }
        for c in checks {
            ddl.push_str(&format!(" {c}"));
        }
        pre.push_str(&ddl);
        pre.push_str(";\n");
    }
    // Functions and procedures (bodies are not checked at creation: check_function_bodies off),
    // in three groups: most come before the tables (a column default may call one); a routine
    // whose signature or SQL-standard body (`BEGIN ATOMIC`) uses a table comes after the
    // tables, and one that uses a view after the views (as pg_dump's dependency order does).
    // (group, oid, the routines it calls in a SQL-standard body, its definition)
    let mut found: Vec<(usize, i64, Vec<i64>, String)> = Vec::new();
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT p.prokind::text, n.nspname::text, p.proname::text, \
                    CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END, \
                    coalesce((SELECT max(CASE WHEN c.relkind IN ('v', 'm') THEN 2 ELSE 1 END) \
                       FROM pg_depend d \
                       LEFT JOIN pg_type ty ON d.refclassid = 'pg_type'::regclass AND ty.oid = d.refobjid \
                       LEFT JOIN pg_type el ON el.oid = ty.typelem AND ty.typelem <> 0 \
                       JOIN pg_class c ON c.oid = CASE WHEN d.refclassid = 'pg_class'::regclass \
                            THEN d.refobjid ELSE coalesce(nullif(ty.typrelid, 0), el.typrelid) END \
                       WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid \
                         AND c.relkind IN ('r', 'p', 'f', 'S', 'v', 'm')), 0), \
                    p.oid::int8, \
                    array(SELECT d.refobjid::int8 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                          AND d.objid = p.oid AND d.refclassid = 'pg_proc'::regclass AND d.refobjid <> p.oid) \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE {USER_NS} AND {} ORDER BY p.oid",
            not_extension("pg_proc", "p.oid")
        ),
    )
    .await?
    {
        let (kind, ns, name): (String, String, String) = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
        let group = usize::try_from(r.get::<i32, _>(4)).unwrap_or(0).min(2);
        match r.get::<Option<String>, _>(3) {
            Some(def) => found.push((group, col(&r, 5)?, col(&r, 6)?, def)),
            None => unsupported.push(format!(
                "{} {ns}.{name}",
                if kind == "a" { "aggregate" } else { "routine" }
            )),
        }
    }
    // A routine whose body calls another goes no earlier than that one.
    loop {
        let group_of: HashMap<i64, usize> = found.iter().map(|f| (f.1, f.0)).collect();
        let mut changed = false;
        for f in &mut found {
            let needed = f.2.iter().filter_map(|o| group_of.get(o)).max().copied();
            if let Some(g) = needed.filter(|g| *g > f.0) {
                f.0 = g;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut routines = [String::new(), String::new(), String::new()];
    for (group, _, _, def) in &found {
        routines[*group].push_str(def.trim_end());
        routines[*group].push_str(";\n");
    }
    let [before_tables, after_tables, after_views] = routines;
    pre.push_str(&before_tables);
    // Sequences that are not an identity column's.
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL), s.seqstart, \
                    s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle, c.relpersistence::text \
             FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {USER_NS} AND {} AND NOT EXISTS (SELECT 1 FROM pg_depend d \
                   WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i') \
             ORDER BY 1, 2",
            not_extension("pg_class", "c.oid")
        ),
    )
    .await?
    {
        let (ns, name, ty): (String, String, String) = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
        let (start, inc, min, max, cache, cycle): (i64, i64, i64, i64, i64, bool) =
            (col(&r, 3)?, col(&r, 4)?, col(&r, 5)?, col(&r, 6)?, col(&r, 7)?, col(&r, 8)?);
        let unlogged = r.get::<String, _>(9) == "u";
        pre.push_str(&format!(
            "CREATE {}SEQUENCE {} AS {ty} START WITH {start} INCREMENT BY {inc} MINVALUE {min} MAXVALUE {max} CACHE {cache}{};\n",
            if unlogged { "UNLOGGED " } else { "" },
            qualified(&ns, &name),
            if cycle { " CYCLE" } else { "" }
        ));
    }
    // Tables: columns with their types, collations, defaults, NOT NULL, identity and
    // generated expressions; partitioned tables; partitions attached after.
    let tables = rows(
        conn,
        target,
        &format!(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, c.relpersistence::text, \
                    CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
                    CASE WHEN c.relispartition THEN \
                         (SELECT quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) FROM pg_inherits i \
                          JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
                          WHERE i.inhrelid = c.oid) END, \
                    CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND {USER_NS} AND {} ORDER BY c.oid",
            not_extension("pg_class", "c.oid")
        ),
    )
    .await?;
    let mut attach = String::new();
    for t in &tables {
        let (oid, ns, name, kind, persistence): (i64, String, String, String, String) =
            (col(t, 0)?, col(t, 1)?, col(t, 2)?, col(t, 3)?, col(t, 4)?);
        let partkey: Option<String> = col(t, 5)?;
        let parent: Option<String> = col(t, 6)?;
        let bound: Option<String> = col(t, 7)?;
        let cols = rows(
            conn,
            target,
            &format!(
                "SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) \
                        || CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation THEN \
                                ' COLLATE ' || (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) \
                                  FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                                  WHERE co.oid = a.attcollation) ELSE '' END \
                        || CASE WHEN a.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ') STORED' \
                                WHEN ad.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END \
                        || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END \
                        || CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY' \
                                              WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END \
                 FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid \
                 LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
                 WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
            ),
        )
        .await?;
        let cols: Vec<String> = cols
            .iter()
            .map(|r| format!("    {}", r.get::<String, _>(0)))
            .collect();
        pre.push_str(&format!(
            "CREATE {}TABLE {} (\n{}\n){};\n",
            if persistence == "u" { "UNLOGGED " } else { "" },
            qualified(&ns, &name),
            cols.join(",\n"),
            match (&kind[..], &partkey) {
                ("p", Some(k)) => format!(" PARTITION BY {k}"),
                _ => String::new(),
            }
        ));
        if let (Some(parent), Some(bound)) = (parent, bound) {
            attach.push_str(&format!(
                "ALTER TABLE ONLY {parent} ATTACH PARTITION {} {bound};\n",
                qualified(&ns, &name)
            ));
        }
    }
    pre.push_str(&attach);
    pre.push_str(&after_tables);
    // Views and materialized views, in creation order (a view comes after what it uses).
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text, pg_get_viewdef(c.oid) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('v', 'm') AND {USER_NS} AND {} ORDER BY c.oid",
            not_extension("pg_class", "c.oid")
        ),
    )
    .await?
    {
        let (ns, name, kind, def): (String, String, String, String) =
            (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?, col(&r, 3)?);
        let def = def.trim_end().trim_end_matches(';');
        if kind == "m" {
            pre.push_str(&format!(
                "CREATE MATERIALIZED VIEW {} AS\n{def}\nWITH NO DATA;\n",
                qualified(&ns, &name)
            ));
            post.push_str(&format!(
                "REFRESH MATERIALIZED VIEW {};\n",
                qualified(&ns, &name)
            ));
        } else {
            pre.push_str(&format!(
                "CREATE VIEW {} AS\n{def};\n",
                qualified(&ns, &name)
            ));
        }
    }
    pre.push_str(&after_views);

    // Post-data: constraints (keys first, foreign keys last), then indexes, triggers.
    let mut constraints = String::new();
    let mut foreign_keys = String::new();
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT n.nspname::text, c.relname::text, k.conname::text, pg_get_constraintdef(k.oid) \
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE k.contype IN ('p', 'u', 'c', 'x', 'f') AND k.conislocal AND {USER_NS} AND {} \
             ORDER BY CASE k.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'x' THEN 2 WHEN 'c' THEN 3 ELSE 4 END, \
                      n.nspname, c.relname, k.conname",
            not_extension("pg_class", "c.oid")
        ),
    )
    .await?
    {
        let (ns, table, name, def): (String, String, String, String) =
            (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?, col(&r, 3)?);
        let stmt = format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {def};\n",
            qualified(&ns, &table),
            quote_ident(&name)
        );
        // Foreign keys go after the indexes: one may reference a column that only a unique
        // index (not a constraint) makes unique.
        if def.starts_with("FOREIGN KEY") {
            foreign_keys.push_str(&stmt);
        } else {
            constraints.push_str(&stmt);
        }
    }
    post.push_str(&constraints);
    // Indexes that back no constraint. A partitioned table's index is created `ON ONLY` the
    // parent; its partitions' indexes are created and attached after, as pg_dump does.
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
             JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {USER_NS} AND {} \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x')) \
               AND c.relkind IN ('r', 'p', 'm') \
             ORDER BY n.nspname, c.relname, ic.relname",
            not_extension("pg_class", "c.oid")
        ),
    )
    .await?
    {
        let def: String = col(&r, 0)?;
        post.push_str(&def);
        post.push_str(";\n");
    }
    post.push_str(&foreign_keys);
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT 'ALTER INDEX ' || quote_ident(pn.nspname) || '.' || quote_ident(p.relname) || \
                    ' ATTACH PARTITION ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid AND c.relkind = 'i' \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE {USER_NS} AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid) \
             ORDER BY 1"
        ),
    )
    .await?
    {
        let stmt: String = col(&r, 0)?;
        post.push_str(&stmt);
        post.push_str(";\n");
    }
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {USER_NS} ORDER BY c.relname, t.tgname"
        ),
    )
    .await?
    {
        let def: String = col(&r, 0)?;
        post.push_str(&def);
        post.push_str(";\n");
    }
    // Sequence ownership (serial columns).
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT n.nspname::text, s.relname::text, tn.nspname::text, t.relname::text, a.attname::text \
             FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
             JOIN pg_namespace n ON n.oid = s.relnamespace \
             JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
               AND d.deptype = 'a' AND {USER_NS} ORDER BY 1, 2"
        ),
    )
    .await?
    {
        let (ns, seq, tns, table, col): (String, String, String, String, String) =
            (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?, col(&r, 3)?, col(&r, 4)?);
        post.push_str(&format!(
            "ALTER SEQUENCE {} OWNED BY {}.{};\n",
            qualified(&ns, &seq),
            qualified(&tns, &table),
            quote_ident(&col)
        ));
    }
    // Comments on tables, columns, views, types, functions, schemas.
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT 'COMMENT ON ' || CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' \
                    WHEN 'S' THEN 'SEQUENCE' WHEN 'i' THEN 'INDEX' WHEN 'I' THEN 'INDEX' ELSE 'TABLE' END || ' ' || \
                    quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' IS ' || quote_literal(d.description) \
             FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE d.objsubid = 0 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'i', 'I') AND {USER_NS} \
             UNION ALL \
             SELECT 'COMMENT ON COLUMN ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || \
                    quote_ident(a.attname) || ' IS ' || quote_literal(d.description) \
             FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE d.objsubid > 0 AND {USER_NS} \
             UNION ALL \
             SELECT 'COMMENT ON TYPE ' || quote_ident(n.nspname) || '.' || quote_ident(t.typname) || ' IS ' || quote_literal(d.description) \
             FROM pg_description d JOIN pg_type t ON t.oid = d.objoid AND d.classoid = 'pg_type'::regclass \
             JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {USER_NS} \
             UNION ALL \
             SELECT 'COMMENT ON SCHEMA ' || quote_ident(n.nspname) || ' IS ' || quote_literal(d.description) \
             FROM pg_description d JOIN pg_namespace n ON n.oid = d.objoid AND d.classoid = 'pg_namespace'::regclass \
             WHERE {USER_NS} AND n.nspname <> 'public' \
             ORDER BY 1"
        ),
    )
    .await?
    {
        let stmt: String = col(&r, 0)?;
        post.push_str(&stmt);
        post.push_str(";\n");
    }
    // What is not reproduced: rules, policies, publications, foreign tables, event triggers.
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT 'rule ' || r.rulename || ' on ' || c.relname FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.rulename <> '_RETURN' AND {USER_NS} \
             UNION ALL SELECT 'row-level security policy ' || polname || ' on ' || polrelid::regclass::text FROM pg_policy \
             UNION ALL SELECT 'foreign table ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE c.relkind = 'f' AND {USER_NS} \
             UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger \
             UNION ALL SELECT 'publication ' || pubname FROM pg_publication"
        ),
    )
    .await?
    {
        unsupported.push(r.get::<String, _>(0));
    }
    Ok(Schema {
        pre_data: pre,
        post_data: post,
        unsupported,
    })
}
