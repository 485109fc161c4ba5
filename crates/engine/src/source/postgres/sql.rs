//! SQL text for PostgreSQL: quoting identifiers and literals, and the one list of the user's
//! schemas (not system, temporary or toast) every catalog query filters by.

/// Quote an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// The one list of the user's schemas, as a macro so that the two constants below are built
/// from the same text at compile time.
macro_rules! user_ns {
    () => {
        "n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
    };
}

/// The user's schemas (catalog alias `n`): not system, not temporary, not toast.
pub(super) const USER_NS: &str = user_ns!();

/// The user's relations (aliases `n` and `c`): in [`USER_NS`] and not an extension's member
/// (the extension recreates those).
pub(super) const USER_SCHEMAS: &str = concat!(
    user_ns!(),
    " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
     AND d.objid = c.oid AND d.deptype = 'e')"
);

/// Not a member of an extension (the extension recreates it): `class` is the catalog
/// (`pg_type`), `oid` the column holding the object's oid.
pub(super) fn not_extension(class: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{class}'::regclass \
         AND d.objid = {oid} AND d.deptype = 'e')"
    )
}

/// An SQL string literal (standard_conforming_strings is on in every session).
pub(super) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// ` (a, b, c)`, or nothing for a table without columns (`COPY t () …` is a syntax error).
pub(super) fn column_list(columns: &[String]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_list_of_user_schemas() {
        assert!(USER_SCHEMAS.starts_with(USER_NS));
        assert!(USER_NS.contains(r"pg\_toast%"), "{USER_NS}");
        assert_eq!(
            USER_SCHEMAS,
            format!("{USER_NS} AND {}", not_extension("pg_class", "c.oid"))
        );
        assert_eq!(lit("it's"), "'it''s'");
        assert_eq!(qualified("a\"b", "t"), "\"a\"\"b\".\"t\"");
        assert_eq!(column_list(&[]), "");
        assert_eq!(column_list(&["x".into(), "y".into()]), " (\"x\", \"y\")");
    }
}
