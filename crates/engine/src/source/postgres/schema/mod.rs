//! PostgreSQL schema capture: the DDL that rebuilds a database's user objects, read from the
//! system catalogs inside the backup's snapshot and split as pg_dump splits it.
//!
//! - `pre-data`: schemas, extensions (`IF NOT EXISTS`), collations, enums, composite types,
//!   domains, functions, procedures and aggregates, operators, sequences, tables (defaults, NOT NULL, identity, generated
//!   columns, collations, partitioning), the routines that use a table's row type or body,
//!   views and materialized views (`WITH NO DATA`), the routines that use a view's.
//! - `post-data`: materialized-view refreshes; primary keys, unique, exclusion and check
//!   constraints; indexes; foreign keys; the attachment of partitions' indexes; triggers;
//!   sequence ownership; comments.
//!
//! [`capture`] reads each kind of object with its own query, in exactly that order; the
//! files below own one part each:
//!
//! | file | owns |
//! |---|---|
//! | `types` | schemas, extensions, collations, enums, composite types, domains, operators |
//! | `routines` | functions and procedures, and where in pre-data each one goes |
//! | `relations` | sequences, tables and partitions, views and materialized views |
//! | `post_data` | constraints, indexes, triggers, sequence ownership, comments, rules, row-level security |
//! | `privileges` | owners, access control lists, default privileges, policies and the roles they name, as data |
//!
//! The server's own deparsers write the hard parts (`format_type`, `pg_get_expr`,
//! `pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_viewdef`, `pg_get_functiondef`,
//! `pg_get_triggerdef`, `pg_get_partkeydef`, `pg_get_ruledef`). Owners, privileges and
//! row-level security policies are captured as data ([`Schema::privileges`]), because they
//! name roles a restore may have to map; they are restored last, as `pg_restore` does.
//! Objects this code cannot reproduce are returned in [`Schema::unsupported`], never dropped
//! silently.

mod post_data;
mod privileges;
mod relations;
mod routines;
mod types;

use sqlx::postgres::PgConnection;

use crate::error::Result;
use crate::source::postgres::sql::{self, USER_NS};
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
    /// Owners, privileges, policies and the roles they name.
    pub privileges: crate::source::model::Privileges,
}

/// The settings pre-data runs under. Strings in the captured SQL are written for
/// standard_conforming_strings = on (backslashes literal); say so, whatever the restoring
/// server's default. Routine bodies may use tables created after them.
const PRE_DATA_START: &str = "SET standard_conforming_strings = on;\nSET check_function_bodies = false;\nSET client_min_messages = warning;\n\n";

/// The settings post-data runs under (see [`PRE_DATA_START`]).
const POST_DATA_START: &str = "SET standard_conforming_strings = on;\n\n";

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

/// Each row of `sql` (one text column, a complete statement) ended with `;` and a newline.
async fn statements(conn: &mut PgConnection, target: &PgTarget, sql: &str) -> Result<String> {
    let mut ddl = String::new();
    for r in rows(conn, target, sql).await? {
        let stmt: String = col(&r, 0)?;
        ddl.push_str(&stmt);
        ddl.push_str(";\n");
    }
    Ok(ddl)
}

/// Capture the schema through `conn` (inside the snapshot's transaction).
///
/// # Errors
/// Database errors.
pub async fn capture(conn: &mut PgConnection, target: &PgTarget) -> Result<Schema> {
    let mut pre = String::from(PRE_DATA_START);
    pre.push_str(&types::schemas(conn, target).await?);
    pre.push_str(&types::extensions(conn, target).await?);
    pre.push_str(&types::collations(conn, target).await?);
    pre.push_str(&types::enums(conn, target).await?);
    pre.push_str(&types::composite_types(conn, target).await?);
    pre.push_str(&types::domains(conn, target).await?);
    let routines = routines::routines(conn, target).await?;
    pre.push_str(&routines.before_tables);
    pre.push_str(&types::operators(conn, target).await?);
    pre.push_str(&relations::sequences(conn, target).await?);
    pre.push_str(&relations::tables(conn, target).await?);
    pre.push_str(&routines.after_tables);
    let views = relations::views(conn, target).await?;
    pre.push_str(&views.create);
    pre.push_str(&routines.after_views);

    let mut post = String::from(POST_DATA_START);
    post.push_str(&views.refresh);
    let constraints = post_data::constraints(conn, target).await?;
    post.push_str(&constraints.keys);
    post.push_str(&post_data::indexes(conn, target).await?);
    post.push_str(&constraints.foreign_keys);
    post.push_str(&post_data::index_attachments(conn, target).await?);
    post.push_str(&post_data::triggers(conn, target).await?);
    post.push_str(&post_data::sequence_ownership(conn, target).await?);
    post.push_str(&post_data::comments(conn, target).await?);
    post.push_str(&post_data::rules(conn, target).await?);
    post.push_str(&post_data::row_security(conn, target).await?);
    post.push_str(&post_data::publications(conn, target).await?);

    let mut unsupported = routines.unsupported;
    unsupported.extend(unsupported_objects(conn, target).await?);
    Ok(Schema {
        pre_data: pre,
        post_data: post,
        unsupported,
        privileges: privileges::capture(conn, target).await?,
    })
}

/// What is not reproduced (every other kind of user object pg_dump knows), each named, so
/// that nothing is dropped silently: foreign tables, data wrappers and servers, publications
/// on servers before PostgreSQL 15, subscriptions, operator classes and families, text search
/// objects, casts, conversions, extended statistics, transforms, access methods.
async fn unsupported_objects(conn: &mut PgConnection, target: &PgTarget) -> Result<Vec<String>> {
    let user = |class: &str, alias: &str| {
        format!(
            "{alias}.oid >= 16384 AND {}",
            sql::not_extension(class, &format!("{alias}.oid"))
        )
    };
    rows(
        conn,
        target,
        &format!(
            "SELECT 'foreign table ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE c.relkind = 'f' AND {USER_NS} \
             UNION ALL SELECT 'foreign-data wrapper ' || w.fdwname FROM pg_foreign_data_wrapper w WHERE {fdw} \
             UNION ALL SELECT 'foreign server ' || s.srvname FROM pg_foreign_server s WHERE {srv} \
             UNION ALL SELECT 'publication ' || pubname FROM pg_publication \
                       WHERE current_setting('server_version_num')::int < 150000 \
             UNION ALL SELECT 'subscription ' || s.subname FROM pg_subscription s \
                       WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             UNION ALL SELECT 'range type ' || n.nspname || '.' || t.typname FROM pg_type t \
                       JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype = 'r' AND {USER_NS} AND {rng} \
             UNION ALL SELECT 'operator class ' || o.opcname FROM pg_opclass o WHERE {opc} \
             UNION ALL SELECT 'operator family ' || o.opfname FROM pg_opfamily o WHERE {opf} \
             UNION ALL SELECT 'text search configuration ' || t.cfgname FROM pg_ts_config t WHERE {tsc} \
             UNION ALL SELECT 'text search dictionary ' || t.dictname FROM pg_ts_dict t WHERE {tsd} \
             UNION ALL SELECT 'text search parser ' || t.prsname FROM pg_ts_parser t WHERE {tsp} \
             UNION ALL SELECT 'text search template ' || t.tmplname FROM pg_ts_template t WHERE {tst} \
             UNION ALL SELECT 'cast ' || format_type(c.castsource, NULL) || ' AS ' || format_type(c.casttarget, NULL) \
                       FROM pg_cast c WHERE {cast} \
             UNION ALL SELECT 'conversion ' || c.conname FROM pg_conversion c WHERE {conv} \
             UNION ALL SELECT 'extended statistics ' || s.stxname FROM pg_statistic_ext s WHERE {stx} \
             UNION ALL SELECT 'transform for ' || format_type(t.trftype, NULL) FROM pg_transform t WHERE {trf} \
             UNION ALL SELECT 'access method ' || a.amname FROM pg_am a WHERE {am}",
            fdw = user("pg_foreign_data_wrapper", "w"),
            srv = user("pg_foreign_server", "s"),
            opc = user("pg_opclass", "o"),
            rng = sql::not_extension("pg_type", "t.oid"),
            opf = user("pg_opfamily", "o"),
            tsc = user("pg_ts_config", "t"),
            tsd = user("pg_ts_dict", "t"),
            tsp = user("pg_ts_parser", "t"),
            tst = user("pg_ts_template", "t"),
            cast = user("pg_cast", "c"),
            conv = user("pg_conversion", "c"),
            stx = user("pg_statistic_ext", "s"),
            trf = user("pg_transform", "t"),
            am = user("pg_am", "a"),
        ),
    )
    .await?
    .iter()
    .map(|r| col(r, 0))
    .collect()
}
