//! PostgreSQL schema capture: the DDL that rebuilds a database's user objects, read from the
//! system catalogs inside the backup's snapshot and split as pg_dump splits it.
//!
//! - `pre-data`: schemas, extensions (`IF NOT EXISTS`), enums, composite types, domains,
//!   functions and procedures, sequences, tables (defaults, NOT NULL, identity, generated
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
//! | `types` | schemas, extensions, enums, composite types, domains |
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
use crate::source::postgres::sql::USER_NS;
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

/// Capture the schema through `conn` (inside the snapshot's transaction).
///
/// # Errors
/// Database errors.
pub async fn capture(conn: &mut PgConnection, target: &PgTarget) -> Result<Schema> {
    let mut pre = String::from(PRE_DATA_START);
    pre.push_str(&types::schemas(conn, target).await?);
    pre.push_str(&types::extensions(conn, target).await?);
    pre.push_str(&types::enums(conn, target).await?);
    pre.push_str(&types::composite_types(conn, target).await?);
    pre.push_str(&types::domains(conn, target).await?);
    let routines = routines::routines(conn, target).await?;
    pre.push_str(&routines.before_tables);
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

    let mut unsupported = routines.unsupported;
    unsupported.extend(unsupported_objects(conn, target).await?);
    Ok(Schema {
        pre_data: pre,
        post_data: post,
        unsupported,
        privileges: privileges::capture(conn, target).await?,
    })
}

/// What is not reproduced: foreign tables, event triggers, publications.
async fn unsupported_objects(conn: &mut PgConnection, target: &PgTarget) -> Result<Vec<String>> {
    rows(
        conn,
        target,
        &format!(
            "SELECT 'foreign table ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE c.relkind = 'f' AND {USER_NS} \
             UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger \
             UNION ALL SELECT 'publication ' || pubname FROM pg_publication"
        ),
    )
    .await?
    .iter()
    .map(|r| col(r, 0))
    .collect()
}
