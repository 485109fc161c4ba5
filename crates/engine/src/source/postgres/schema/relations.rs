//! The relations of pre-data: sequences, tables (and their partitions, attached once every
//! table exists), views and materialized views (created empty; filled in post-data).

use sqlx::postgres::PgConnection;

use super::rows;
use crate::error::Result;
use crate::source::postgres::sql::{not_extension, qualified, USER_NS};
use crate::source::postgres::{col, PgTarget};

/// Sequences that are not an identity column's (the column's `GENERATED … AS IDENTITY`
/// creates those).
pub(super) async fn sequences(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    let mut ddl = String::new();
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
        let sequence = Sequence {
            ns: col(&r, 0)?,
            name: col(&r, 1)?,
            ty: col(&r, 2)?,
            start: col(&r, 3)?,
            increment: col(&r, 4)?,
            min: col(&r, 5)?,
            max: col(&r, 6)?,
            cache: col(&r, 7)?,
            cycle: col(&r, 8)?,
            unlogged: col::<String>(&r, 9)? == "u",
        };
        ddl.push_str(&sequence.create());
    }
    Ok(ddl)
}

/// A sequence's definition (its current value travels with the data).
struct Sequence {
    ns: String,
    name: String,
    /// `smallint`, `integer` or `bigint`.
    ty: String,
    start: i64,
    increment: i64,
    min: i64,
    max: i64,
    cache: i64,
    cycle: bool,
    unlogged: bool,
}

impl Sequence {
    fn create(&self) -> String {
        format!(
            "CREATE {}SEQUENCE {} AS {} START WITH {} INCREMENT BY {} MINVALUE {} MAXVALUE {} CACHE {}{};\n",
            if self.unlogged { "UNLOGGED " } else { "" },
            qualified(&self.ns, &self.name),
            self.ty,
            self.start,
            self.increment,
            self.min,
            self.max,
            self.cache,
            if self.cycle { " CYCLE" } else { "" }
        )
    }
}

/// Tables in creation order: columns with their types, collations, defaults, NOT NULL,
/// identity and generated expressions; a partitioned table's key. Then every partition is
/// attached to its parent (the parent may have been created after it).
pub(super) async fn tables(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
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
    let mut columns_of = columns(conn, target).await?;
    let mut ddl = String::new();
    let mut attach = String::new();
    for t in &tables {
        let (oid, ns, name, kind, persistence): (i64, String, String, String, String) =
            (col(t, 0)?, col(t, 1)?, col(t, 2)?, col(t, 3)?, col(t, 4)?);
        let partkey: Option<String> = col(t, 5)?;
        let parent: Option<String> = col(t, 6)?;
        let bound: Option<String> = col(t, 7)?;
        let columns = columns_of.remove(&oid).unwrap_or_default();
        let table = qualified(&ns, &name);
        let partkey = partkey.filter(|_| kind == "p");
        ddl.push_str(&create_table(
            persistence == "u",
            &table,
            &columns,
            partkey.as_deref(),
        ));
        if let (Some(parent), Some(bound)) = (parent, bound) {
            attach.push_str(&format!(
                "ALTER TABLE ONLY {parent} ATTACH PARTITION {table} {bound};\n"
            ));
        }
    }
    ddl.push_str(&attach);
    Ok(ddl)
}

/// The column definitions of every table (by oid), each complete (`name type COLLATE …
/// DEFAULT … NOT NULL …`), in column order: one query, not one per table (a school's 170
/// tables were 350 round trips before the export could start).
async fn columns(
    conn: &mut PgConnection,
    target: &PgTarget,
) -> Result<std::collections::HashMap<i64, Vec<String>>> {
    let mut by_table: std::collections::HashMap<i64, Vec<String>> = Default::default();
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT a.attrelid::int8, quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) \
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
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND {USER_NS} AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attrelid, a.attnum"
        ),
    )
    .await?
    {
        by_table.entry(col(&r, 0)?).or_default().push(col(&r, 1)?);
    }
    Ok(by_table)
}

/// `CREATE TABLE` of the `qualified` table, one column a line.
fn create_table(
    unlogged: bool,
    qualified: &str,
    columns: &[String],
    partition_key: Option<&str>,
) -> String {
    let columns: Vec<String> = columns.iter().map(|c| format!("    {c}")).collect();
    format!(
        "CREATE {}TABLE {qualified} (\n{}\n){};\n",
        if unlogged { "UNLOGGED " } else { "" },
        columns.join(",\n"),
        match partition_key {
            Some(k) => format!(" PARTITION BY {k}"),
            None => String::new(),
        }
    )
}

/// Views and materialized views: the pre-data that creates them, the post-data that fills
/// the materialized ones.
#[derive(Debug, Default)]
pub(super) struct Views {
    pub(super) create: String,
    pub(super) refresh: String,
}

/// Views and materialized views in creation order (a view comes after what it uses).
pub(super) async fn views(conn: &mut PgConnection, target: &PgTarget) -> Result<Views> {
    let mut views = Views::default();
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
        let view = qualified(&ns, &name);
        let materialized = kind == "m";
        views
            .create
            .push_str(&create_view(materialized, &view, &def));
        if materialized {
            views
                .refresh
                .push_str(&format!("REFRESH MATERIALIZED VIEW {view};\n"));
        }
    }
    Ok(views)
}

/// `CREATE VIEW` or `CREATE MATERIALIZED VIEW … WITH NO DATA` of the `qualified` view, its
/// query as `pg_get_viewdef` wrote it (without the final `;`).
fn create_view(materialized: bool, qualified: &str, def: &str) -> String {
    let def = def.trim_end().trim_end_matches(';');
    if materialized {
        format!("CREATE MATERIALIZED VIEW {qualified} AS\n{def}\nWITH NO DATA;\n")
    } else {
        format!("CREATE VIEW {qualified} AS\n{def};\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_says_every_option() {
        let mut sequence = Sequence {
            ns: "s".into(),
            name: "n".into(),
            ty: "smallint".into(),
            start: 3,
            increment: -1,
            min: -100,
            max: 10,
            cache: 2,
            cycle: true,
            unlogged: true,
        };
        assert_eq!(
            sequence.create(),
            "CREATE UNLOGGED SEQUENCE \"s\".\"n\" AS smallint START WITH 3 INCREMENT BY -1 \
             MINVALUE -100 MAXVALUE 10 CACHE 2 CYCLE;\n"
        );
        sequence.cycle = false;
        sequence.unlogged = false;
        assert_eq!(
            sequence.create(),
            "CREATE SEQUENCE \"s\".\"n\" AS smallint START WITH 3 INCREMENT BY -1 \
             MINVALUE -100 MAXVALUE 10 CACHE 2;\n"
        );
    }

    #[test]
    fn a_table_has_one_column_a_line_and_its_partition_key() {
        assert_eq!(
            create_table(
                false,
                "\"s\".\"t\"",
                &["\"id\" integer NOT NULL".into(), "\"at\" date".into()],
                Some("RANGE (at)")
            ),
            "CREATE TABLE \"s\".\"t\" (\n    \"id\" integer NOT NULL,\n    \"at\" date\n) PARTITION BY RANGE (at);\n"
        );
        // No columns is valid SQL: `CREATE TABLE t (\n\n);`.
        assert_eq!(
            create_table(true, "\"s\".\"t\"", &[], None),
            "CREATE UNLOGGED TABLE \"s\".\"t\" (\n\n);\n"
        );
    }

    #[test]
    fn a_view_ends_in_one_semicolon_and_a_materialized_one_has_no_data() {
        assert_eq!(
            create_view(false, "\"s\".\"v\"", " SELECT 1 AS x;\n"),
            "CREATE VIEW \"s\".\"v\" AS\n SELECT 1 AS x;\n"
        );
        assert_eq!(
            create_view(true, "\"s\".\"m\"", " SELECT 1 AS x;"),
            "CREATE MATERIALIZED VIEW \"s\".\"m\" AS\n SELECT 1 AS x\nWITH NO DATA;\n"
        );
    }
}
