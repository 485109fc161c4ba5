//! Functions and procedures, each placed in pre-data where what it uses already exists.
//!
//! Most routines go before the tables: a column default may call one, and bodies are not
//! checked at creation (`check_function_bodies` is off in pre-data). A routine whose signature
//! or SQL-standard body (`BEGIN ATOMIC`) uses a table goes after the tables, and one that uses
//! a view after the views, as pg_dump's dependency order does; a routine whose body calls
//! another goes no earlier than that one. Aggregates are written from `pg_aggregate` and go
//! after their transition and final functions. Window functions written in C have no
//! `pg_get_functiondef` and are reported as unsupported.

use std::collections::HashMap;

use sqlx::postgres::PgConnection;

use super::rows;
use crate::error::Result;
use crate::source::postgres::sql::{not_extension, USER_NS};
use crate::source::postgres::{col, PgTarget};

/// Where in pre-data a routine is created; a later variant is a later place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    BeforeTables,
    AfterTables,
    AfterViews,
}

impl Place {
    /// From the catalog query's rank: 0 uses no relation, 1 a table, 2 a view.
    fn from_rank(rank: i32) -> Place {
        match rank {
            ..=0 => Place::BeforeTables,
            1 => Place::AfterTables,
            _ => Place::AfterViews,
        }
    }

    fn index(self) -> usize {
        match self {
            Place::BeforeTables => 0,
            Place::AfterTables => 1,
            Place::AfterViews => 2,
        }
    }
}

/// A routine as the catalog describes it.
#[derive(Debug, Clone)]
struct Routine {
    place: Place,
    oid: i64,
    /// The routines its SQL-standard body calls.
    calls: Vec<i64>,
    /// `CREATE OR REPLACE FUNCTION …` from `pg_get_functiondef`.
    definition: String,
}

/// The routines' DDL for the three places in pre-data, and the routines it cannot reproduce.
#[derive(Debug, Default)]
pub(super) struct Routines {
    /// After the types, before the sequences and tables.
    pub(super) before_tables: String,
    /// After the tables (and their partitions), before the views.
    pub(super) after_tables: String,
    /// After the views: the end of pre-data.
    pub(super) after_views: String,
    /// Aggregates and other routines without a definition, described for a person.
    pub(super) unsupported: Vec<String>,
}

/// `CREATE AGGREGATE …` for aggregate `p` (alias `n` its schema), from `pg_aggregate`: every
/// option the catalog holds (plain, moving and ordered-set aggregates). Its transition and
/// final functions come first (the ordering by `calls` below).
const AGGREGATE_DEF: &str = "SELECT format('CREATE AGGREGATE %I.%I(%s) (%s)', n.nspname, p.proname, \
      coalesce(nullif(pg_get_function_arguments(p.oid), ''), '*'), concat_ws(', ', \
        'SFUNC = ' || a.aggtransfn::regproc::text, \
        'STYPE = ' || format_type(a.aggtranstype, NULL), \
        CASE WHEN a.aggtransspace <> 0 THEN 'SSPACE = ' || a.aggtransspace END, \
        CASE WHEN a.aggfinalfn <> 0 THEN 'FINALFUNC = ' || a.aggfinalfn::regproc::text END, \
        CASE WHEN a.aggfinalextra THEN 'FINALFUNC_EXTRA' END, \
        CASE WHEN a.aggfinalfn <> 0 THEN 'FINALFUNC_MODIFY = ' || CASE a.aggfinalmodify \
             WHEN 'r' THEN 'READ_ONLY' WHEN 's' THEN 'SHAREABLE' ELSE 'READ_WRITE' END END, \
        CASE WHEN a.aggcombinefn <> 0 THEN 'COMBINEFUNC = ' || a.aggcombinefn::regproc::text END, \
        CASE WHEN a.aggserialfn <> 0 THEN 'SERIALFUNC = ' || a.aggserialfn::regproc::text END, \
        CASE WHEN a.aggdeserialfn <> 0 THEN 'DESERIALFUNC = ' || a.aggdeserialfn::regproc::text END, \
        CASE WHEN a.agginitval IS NOT NULL THEN 'INITCOND = ' || quote_literal(a.agginitval) END, \
        CASE WHEN a.aggmtransfn <> 0 THEN 'MSFUNC = ' || a.aggmtransfn::regproc::text \
             || ', MINVFUNC = ' || a.aggminvtransfn::regproc::text \
             || ', MSTYPE = ' || format_type(a.aggmtranstype, NULL) END, \
        CASE WHEN a.aggmtransspace <> 0 THEN 'MSSPACE = ' || a.aggmtransspace END, \
        CASE WHEN a.aggmfinalfn <> 0 THEN 'MFINALFUNC = ' || a.aggmfinalfn::regproc::text END, \
        CASE WHEN a.aggmfinalextra THEN 'MFINALFUNC_EXTRA' END, \
        CASE WHEN a.aggmfinalfn <> 0 THEN 'MFINALFUNC_MODIFY = ' || CASE a.aggmfinalmodify \
             WHEN 'r' THEN 'READ_ONLY' WHEN 's' THEN 'SHAREABLE' ELSE 'READ_WRITE' END END, \
        CASE WHEN a.aggminitval IS NOT NULL THEN 'MINITCOND = ' || quote_literal(a.aggminitval) END, \
        CASE WHEN a.aggsortop <> 0 THEN (SELECT 'SORTOP = OPERATOR(' || quote_ident(opn.nspname) || '.' || o.oprname || ')' \
             FROM pg_operator o JOIN pg_namespace opn ON opn.oid = o.oprnamespace WHERE o.oid = a.aggsortop) END, \
        CASE p.proparallel WHEN 's' THEN 'PARALLEL = SAFE' WHEN 'r' THEN 'PARALLEL = RESTRICTED' END, \
        CASE WHEN a.aggkind = 'h' THEN 'HYPOTHETICAL' END)) \
    FROM pg_aggregate a WHERE a.aggfnoid = p.oid";

/// Every user function and procedure, in creation (oid) order within its place.
pub(super) async fn routines(conn: &mut PgConnection, target: &PgTarget) -> Result<Routines> {
    let mut found = Vec::new();
    let mut unsupported = Vec::new();
    for r in rows(
        conn,
        target,
        &format!(
            "SELECT p.prokind::text, n.nspname::text, p.proname::text, \
                    CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) \
                         WHEN p.prokind = 'a' THEN ({AGGREGATE_DEF}) END, \
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
            not_extension("pg_proc", "p.oid"),
        ),
    )
    .await?
    {
        let (kind, ns, name): (String, String, String) = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
        let place = Place::from_rank(col(&r, 4)?);
        match col::<Option<String>>(&r, 3)? {
            Some(definition) => found.push(Routine {
                place,
                oid: col(&r, 5)?,
                calls: col(&r, 6)?,
                definition,
            }),
            None => unsupported.push(format!(
                "{} {ns}.{name}",
                if kind == "a" { "aggregate" } else { "routine" }
            )),
        }
    }
    let [before_tables, after_tables, after_views] = placed(found);
    Ok(Routines {
        before_tables,
        after_tables,
        after_views,
        unsupported,
    })
}

/// The definitions for each place, in the order found, once every routine has moved to no
/// earlier than the routines it calls (a call to a routine not in `found` is ignored).
fn placed(mut found: Vec<Routine>) -> [String; 3] {
    loop {
        let place_of: HashMap<i64, Place> = found.iter().map(|f| (f.oid, f.place)).collect();
        let mut changed = false;
        for f in &mut found {
            let needed = f
                .calls
                .iter()
                .filter_map(|o| place_of.get(o))
                .max()
                .copied();
            if let Some(p) = needed.filter(|p| *p > f.place) {
                f.place = p;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut ddl = [String::new(), String::new(), String::new()];
    for f in &found {
        let out = &mut ddl[f.place.index()];
        out.push_str(f.definition.trim_end());
        out.push_str(";\n");
    }
    ddl
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routine(oid: i64, rank: i32, calls: &[i64]) -> Routine {
        Routine {
            place: Place::from_rank(rank),
            oid,
            calls: calls.to_vec(),
            definition: format!("CREATE FUNCTION f{oid}() AS $$ $$\n"),
        }
    }

    #[test]
    fn the_catalog_rank_names_a_place() {
        assert_eq!(Place::from_rank(-1), Place::BeforeTables);
        assert_eq!(Place::from_rank(0), Place::BeforeTables);
        assert_eq!(Place::from_rank(1), Place::AfterTables);
        assert_eq!(Place::from_rank(2), Place::AfterViews);
        assert_eq!(Place::from_rank(7), Place::AfterViews);
    }

    #[test]
    fn each_definition_is_trimmed_and_ended_in_its_place() {
        let [before, tables, views] = placed(vec![
            routine(1, 0, &[]),
            routine(2, 2, &[]),
            routine(3, 1, &[]),
            routine(4, 0, &[]),
        ]);
        assert_eq!(
            before,
            "CREATE FUNCTION f1() AS $$ $$;\nCREATE FUNCTION f4() AS $$ $$;\n"
        );
        assert_eq!(tables, "CREATE FUNCTION f3() AS $$ $$;\n");
        assert_eq!(views, "CREATE FUNCTION f2() AS $$ $$;\n");
    }

    #[test]
    fn a_caller_follows_what_it_calls_through_a_chain() {
        // 1 uses a view, 2 calls it and 3 calls 2; 4 uses a table and 5 calls it and an
        // extension's routine (not captured); 6 uses a view and calls 5 (it never moves
        // earlier); 7 calls only the extension's.
        let [before, tables, views] = placed(vec![
            routine(1, 2, &[]),
            routine(2, 0, &[1]),
            routine(3, 0, &[2]),
            routine(4, 1, &[]),
            routine(5, 0, &[4, 99]),
            routine(6, 2, &[5]),
            routine(7, 0, &[99]),
        ]);
        assert_eq!(before, "CREATE FUNCTION f7() AS $$ $$;\n");
        assert_eq!(
            tables,
            "CREATE FUNCTION f4() AS $$ $$;\nCREATE FUNCTION f5() AS $$ $$;\n"
        );
        // Within a place, oid order: a routine is older than the routines that call it.
        assert_eq!(
            views,
            "CREATE FUNCTION f1() AS $$ $$;\nCREATE FUNCTION f2() AS $$ $$;\n\
             CREATE FUNCTION f3() AS $$ $$;\nCREATE FUNCTION f6() AS $$ $$;\n"
        );
    }
}
