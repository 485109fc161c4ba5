//! Post-data, run once the data is in: constraints, indexes, triggers, sequence ownership and
//! comments. Keys come before the indexes and foreign keys after them (a foreign key may
//! reference a column that only a unique index makes unique). A partitioned table's index is
//! created `ON ONLY` the parent (`pg_get_indexdef` writes that); its partitions' indexes are
//! created beside it and attached after, as pg_dump does.

use sqlx::postgres::PgConnection;

use super::{rows, statements};
use crate::error::Result;
use crate::source::postgres::sql::{not_extension, qualified, quote_ident, USER_NS, USER_SCHEMAS};
use crate::source::postgres::{col, PgTarget};

/// The table constraints, split where they go in post-data.
#[derive(Debug, Default)]
pub(super) struct Constraints {
    /// Primary keys, unique, exclusion and check constraints, in that order: before the
    /// indexes.
    pub(super) keys: String,
    /// After the indexes.
    pub(super) foreign_keys: String,
}

/// Every table's own constraints (not inherited from a partitioned parent): keys first,
/// foreign keys last.
pub(super) async fn constraints(conn: &mut PgConnection, target: &PgTarget) -> Result<Constraints> {
    let mut constraints = Constraints::default();
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
        let stmt = add_constraint(&ns, &table, &name, &def);
        if is_foreign_key(&def) {
            constraints.foreign_keys.push_str(&stmt);
        } else {
            constraints.keys.push_str(&stmt);
        }
    }
    Ok(constraints)
}

/// `ALTER TABLE … ADD CONSTRAINT`, `def` as `pg_get_constraintdef` wrote it.
fn add_constraint(ns: &str, table: &str, name: &str, def: &str) -> String {
    format!(
        "ALTER TABLE {} ADD CONSTRAINT {} {def};\n",
        qualified(ns, table),
        quote_ident(name)
    )
}

fn is_foreign_key(def: &str) -> bool {
    def.starts_with("FOREIGN KEY")
}

/// Indexes that back no constraint, on tables and materialized views, by table and name.
pub(super) async fn indexes(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    statements(
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
    .await
}

/// `ALTER INDEX … ATTACH PARTITION` for every partition's index of a partitioned index (the
/// ones a constraint backs are attached by the constraint).
pub(super) async fn index_attachments(
    conn: &mut PgConnection,
    target: &PgTarget,
) -> Result<String> {
    statements(
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
    .await
}

/// User triggers (not a constraint's, not a partition's copy of its parent's).
pub(super) async fn triggers(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    statements(
        conn,
        target,
        &format!(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {USER_NS} ORDER BY c.relname, t.tgname"
        ),
    )
    .await
}

/// `ALTER SEQUENCE … OWNED BY` for the sequences a column owns (serial columns).
pub(super) async fn sequence_ownership(
    conn: &mut PgConnection,
    target: &PgTarget,
) -> Result<String> {
    let mut ddl = String::new();
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
        let (ns, seq, tns, table, column): (String, String, String, String, String) =
            (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?, col(&r, 3)?, col(&r, 4)?);
        ddl.push_str(&format!(
            "ALTER SEQUENCE {} OWNED BY {}.{};\n",
            qualified(&ns, &seq),
            qualified(&tns, &table),
            quote_ident(&column)
        ));
    }
    Ok(ddl)
}

/// Comments on tables, columns, views, sequences, indexes, types and schemas (but `public`'s,
/// which every new database has), sorted by statement.
pub(super) async fn comments(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    statements(
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
    .await
}

/// Rules (`CREATE RULE`), but a view's own `_RETURN` rule (the view is its definition).
pub(super) async fn rules(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    let mut ddl = String::new();
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT pg_get_ruledef(r.oid) FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE r.rulename <> '_RETURN' AND {USER_SCHEMAS} ORDER BY n.nspname, c.relname, r.rulename"
        ),
    )
    .await?
    {
        let def: String = col(&r, 0)?;
        ddl.push_str(def.trim_end());
        if !def.trim_end().ends_with(';') {
            ddl.push(';');
        }
        ddl.push('\n');
    }
    Ok(ddl)
}

/// Row-level security switched on (and forced on the owner) where it was; the policies come
/// with the privileges, after the data, so loading is never filtered.
pub(super) async fn row_security(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    let mut ddl = String::new();
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relforcerowsecurity FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relrowsecurity AND {USER_SCHEMAS} ORDER BY 1"
        ),
    )
    .await?
    {
        let (table, force): (String, bool) = (col(&r, 0)?, col(&r, 1)?);
        ddl.push_str(&format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"));
        if force {
            ddl.push_str(&format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n"));
        }
    }
    Ok(ddl)
}

/// Publications (PostgreSQL 15 and later: their tables with column lists and row filters,
/// their schemas, what they publish), after the tables; their owners come with the privileges.
pub(super) async fn publications(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    // The query names catalogs and columns that exist from PostgreSQL 15 (before it, the
    // publications are listed as not restored).
    let version = rows(
        conn,
        target,
        "SELECT current_setting('server_version_num')::int",
    )
    .await?;
    let version: i32 = match version.first() {
        Some(r) => col(r, 0)?,
        None => 0,
    };
    if version < 150_000 {
        return Ok(String::new());
    }
    statements(
        conn,
        target,
        "SELECT format('CREATE PUBLICATION %I%s WITH (publish = %L, publish_via_partition_root = %s)', p.pubname, \
                CASE WHEN p.puballtables THEN ' FOR ALL TABLES' \
                     ELSE coalesce(' FOR ' || nullif(concat_ws(', ', \
                        (SELECT string_agg(format('TABLE %I.%I', n.nspname, c.relname) \
                             || CASE WHEN pr.prattrs IS NULL THEN '' ELSE ' (' || \
                                (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a \
                                  WHERE a.attrelid = pr.prrelid AND a.attnum = ANY(pr.prattrs::int2[])) || ')' END \
                             || CASE WHEN pr.prqual IS NULL THEN '' ELSE ' WHERE (' || pg_get_expr(pr.prqual, pr.prrelid) || ')' END, \
                             ', ' ORDER BY n.nspname, c.relname) \
                           FROM pg_publication_rel pr JOIN pg_class c ON c.oid = pr.prrelid \
                           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE pr.prpubid = p.oid), \
                        (SELECT string_agg(format('TABLES IN SCHEMA %I', n.nspname), ', ' ORDER BY n.nspname) \
                           FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid \
                          WHERE pn.pnpubid = p.oid)), ''), '') END, \
                concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END, CASE WHEN p.pubupdate THEN 'update' END, \
                          CASE WHEN p.pubdelete THEN 'delete' END, CASE WHEN p.pubtruncate THEN 'truncate' END), \
                CASE WHEN p.pubviaroot THEN 'true' ELSE 'false' END) \
           FROM pg_publication p ORDER BY p.pubname",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constraint_is_added_by_its_quoted_name() {
        assert_eq!(
            add_constraint("public", "Houses", "Houses_pkey", "PRIMARY KEY (id)"),
            "ALTER TABLE \"public\".\"Houses\" ADD CONSTRAINT \"Houses_pkey\" PRIMARY KEY (id);\n"
        );
    }

    #[test]
    fn only_a_foreign_key_waits_for_the_indexes() {
        assert!(is_foreign_key(
            "FOREIGN KEY (house_id) REFERENCES \"Houses\"(id) DEFERRABLE INITIALLY DEFERRED"
        ));
        assert!(!is_foreign_key("UNIQUE (\"Name\")"));
        assert!(!is_foreign_key("CHECK ((note <> 'FOREIGN KEY'::text))"));
    }
}
