//! The start of pre-data: the schemas and extensions everything else lives in, then the
//! user's own types (enums, stand-alone composite types, domains), which tables and routines
//! may use.

use sqlx::postgres::PgConnection;

use super::{rows, statements};
use crate::error::Result;
use crate::source::postgres::sql::{lit, not_extension, qualified, quote_ident, USER_NS};
use crate::source::postgres::{col, PgTarget};

/// `CREATE SCHEMA IF NOT EXISTS` for every user schema (`public` may already exist).
pub(super) async fn schemas(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    let mut ddl = String::new();
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
        ddl.push_str(&format!(
            "CREATE SCHEMA IF NOT EXISTS {};\n",
            quote_ident(&name)
        ));
    }
    Ok(ddl)
}

/// `CREATE EXTENSION IF NOT EXISTS` for every extension but `plpgsql` (always there).
pub(super) async fn extensions(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    let mut ddl = String::new();
    for r in rows(
        conn,
        target,
        "SELECT e.extname::text, n.nspname::text FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql' ORDER BY 1",
    )
    .await?
    {
        let (ext, ns): (String, String) = (col(&r, 0)?, col(&r, 1)?);
        ddl.push_str(&format!(
            "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {};\n",
            quote_ident(&ext),
            quote_ident(&ns)
        ));
    }
    Ok(ddl)
}

/// Enum types, their labels in sort order.
pub(super) async fn enums(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    let mut ddl = String::new();
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
        let (ns, name, labels): (String, String, Vec<String>) =
            (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
        ddl.push_str(&create_enum(&ns, &name, &labels));
    }
    Ok(ddl)
}

fn create_enum(ns: &str, name: &str, labels: &[String]) -> String {
    let labels: Vec<String> = labels.iter().map(|l| lit(l)).collect();
    format!(
        "CREATE TYPE {} AS ENUM ({});\n",
        qualified(ns, name),
        labels.join(", ")
    )
}

/// Stand-alone composite types (not tables' row types), in creation order.
pub(super) async fn composite_types(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    let mut ddl = String::new();
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
        let (ns, name, cols): (String, String, Vec<String>) =
            (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
        ddl.push_str(&format!(
            "CREATE TYPE {} AS ({});\n",
            qualified(&ns, &name),
            cols.join(", ")
        ));
    }
    Ok(ddl)
}

/// Domains with their collation, default, NOT NULL and check constraints, in creation order.
pub(super) async fn domains(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    let mut ddl = String::new();
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
        let domain = Domain {
            ns: col(&r, 0)?,
            name: col(&r, 1)?,
            base: col(&r, 2)?,
            not_null: col(&r, 3)?,
            default: col(&r, 4)?,
            collation: col(&r, 5)?,
            checks: col(&r, 6)?,
        };
        ddl.push_str(&domain.create());
    }
    Ok(ddl)
}

/// A domain as the catalog describes it, every part already SQL text.
struct Domain {
    ns: String,
    name: String,
    /// The base type, from `format_type`.
    base: String,
    not_null: bool,
    default: Option<String>,
    /// Only when it differs from the base type's.
    collation: Option<String>,
    /// `CONSTRAINT name CHECK (…)`, by name.
    checks: Vec<String>,
}

impl Domain {
    fn create(&self) -> String {
        let mut ddl = format!(
            "CREATE DOMAIN {} AS {}",
            qualified(&self.ns, &self.name),
            self.base
        );
        if let Some(c) = &self.collation {
            ddl.push_str(&format!(" COLLATE {c}"));
        }
        if let Some(d) = &self.default {
            ddl.push_str(&format!(" DEFAULT {d}"));
        }
        if self.not_null {
            ddl.push_str(" NOT NULL");
        }
        for c in &self.checks {
            ddl.push_str(&format!(" {c}"));
        }
        ddl.push_str(";\n");
        ddl
    }
}

/// User collations (`CREATE COLLATION`), before the types and tables that use them. The
/// catalog row is read as JSON: its columns differ between PostgreSQL versions (the ICU
/// locale is `colliculocale` in 15 and 16, `colllocale` from 17; ICU rules from 16).
pub(super) async fn collations(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    let mut ddl = String::new();
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT n.nspname::text, c.collname::text, to_jsonb(c)::text FROM pg_collation c \
             JOIN pg_namespace n ON n.oid = c.collnamespace WHERE {USER_NS} AND {} ORDER BY c.oid",
            not_extension("pg_collation", "c.oid")
        ),
    )
    .await?
    {
        let (ns, name, row): (String, String, String) = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
        let c: serde_json::Value = serde_json::from_str(&row).unwrap_or_default();
        let text = |k: &str| c.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
        let mut options = Vec::new();
        match text("collprovider") {
            Some("i") => {
                options.push("provider = icu".to_string());
                // PostgreSQL 15–16: colliculocale; 17+: colllocale; before 15: collcollate.
                if let Some(l) = text("colliculocale")
                    .or_else(|| text("colllocale"))
                    .or_else(|| text("collcollate"))
                {
                    options.push(format!("locale = {}", lit(l)));
                }
                if let Some(rules) = text("collicurules") {
                    options.push(format!("rules = {}", lit(rules)));
                }
            }
            Some("b") => {
                options.push("provider = builtin".to_string());
                if let Some(l) = text("colllocale") {
                    options.push(format!("locale = {}", lit(l)));
                }
            }
            _ => {
                options.push("provider = libc".to_string());
                options.push(format!(
                    "lc_collate = {}",
                    lit(text("collcollate").unwrap_or("C"))
                ));
                options.push(format!(
                    "lc_ctype = {}",
                    lit(text("collctype").unwrap_or("C"))
                ));
            }
        }
        if c.get("collisdeterministic")
            .and_then(serde_json::Value::as_bool)
            == Some(false)
        {
            options.push("deterministic = false".into());
        }
        ddl.push_str(&format!(
            "CREATE COLLATION {} ({});\n",
            qualified(&ns, &name),
            options.join(", ")
        ));
    }
    Ok(ddl)
}

/// User operators (`CREATE OPERATOR`), after the functions they call and before the tables
/// whose defaults, checks or indexes may use them. A commutator or negator not created yet
/// is made as a shell by the server and filled in when its own statement runs.
pub(super) async fn operators(conn: &mut PgConnection, target: &PgTarget) -> Result<String> {
    let op_ref = |oid: &str| {
        format!(
            "(SELECT 'OPERATOR(' || quote_ident(n2.nspname) || '.' || o2.oprname || ')' FROM pg_operator o2 \
             JOIN pg_namespace n2 ON n2.oid = o2.oprnamespace WHERE o2.oid = {oid})"
        )
    };
    statements(
        conn,
        target,
        &format!(
            "SELECT format('CREATE OPERATOR %I.%s (%s)', n.nspname, o.oprname, concat_ws(', ', \
                 'FUNCTION = ' || o.oprcode::regproc::text, \
                 CASE WHEN o.oprleft <> 0 THEN 'LEFTARG = ' || format_type(o.oprleft, NULL) END, \
                 CASE WHEN o.oprright <> 0 THEN 'RIGHTARG = ' || format_type(o.oprright, NULL) END, \
                 CASE WHEN o.oprcom <> 0 THEN 'COMMUTATOR = ' || {com} END, \
                 CASE WHEN o.oprnegate <> 0 THEN 'NEGATOR = ' || {neg} END, \
                 CASE WHEN o.oprrest <> 0 THEN 'RESTRICT = ' || o.oprrest::regproc::text END, \
                 CASE WHEN o.oprjoin <> 0 THEN 'JOIN = ' || o.oprjoin::regproc::text END, \
                 CASE WHEN o.oprcanhash THEN 'HASHES' END, \
                 CASE WHEN o.oprcanmerge THEN 'MERGES' END)) \
             FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace \
             WHERE {USER_NS} AND {} ORDER BY o.oid",
            not_extension("pg_operator", "o.oid"),
            com = op_ref("o.oprcom"),
            neg = op_ref("o.oprnegate"),
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_are_quoted_literals_in_order() {
        assert_eq!(
            create_enum("s", "mood", &["sad".into(), "it's ok".into()]),
            "CREATE TYPE \"s\".\"mood\" AS ENUM ('sad', 'it''s ok');\n"
        );
    }

    #[test]
    fn a_domain_says_collation_default_not_null_then_checks() {
        let mut domain = Domain {
            ns: "public".into(),
            name: "code".into(),
            base: "text".into(),
            not_null: true,
            default: Some("'x'::text".into()),
            collation: Some("pg_catalog.\"C\"".into()),
            checks: vec![
                "CONSTRAINT a CHECK ((VALUE <> ''::text))".into(),
                "CONSTRAINT b CHECK ((length(VALUE) < 10))".into(),
            ],
        };
        assert_eq!(
            domain.create(),
            "CREATE DOMAIN \"public\".\"code\" AS text COLLATE pg_catalog.\"C\" DEFAULT 'x'::text \
             NOT NULL CONSTRAINT a CHECK ((VALUE <> ''::text)) CONSTRAINT b CHECK ((length(VALUE) < 10));\n"
        );
        domain.not_null = false;
        domain.default = None;
        domain.collation = None;
        domain.checks.clear();
        assert_eq!(
            domain.create(),
            "CREATE DOMAIN \"public\".\"code\" AS text;\n"
        );
    }
}
