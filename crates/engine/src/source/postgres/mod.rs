//! PostgreSQL: one consistent snapshot of every table, `COPY` out, and the transactional
//! replace-restore.
//!
//! The snapshot works as `pg_dump -j` does: a coordinator opens a `REPEATABLE READ, READ ONLY`
//! transaction, exports its snapshot with `pg_export_snapshot()` and takes `ACCESS SHARE` locks
//! on every table (so none can be dropped or rewritten under us); each export worker opens its
//! own transaction and joins that snapshot with `SET TRANSACTION SNAPSHOT`, so every table comes
//! from the same instant. Data travels in `COPY` text format, which represents every type
//! exactly. Generated columns are left out (the server recomputes them on restore).
//!
//! | file | owns |
//! |---|---|
//! | `connection` | [`PgTarget`] (URL, TLS, password), sessions, error mapping |
//! | `sql` | quoting and the one list of user schemas |
//! | `snapshot` | the consistent snapshot and the export workers |
//! | `schema` | capturing the DDL from the catalogs |
//! | `restore` | the restore transaction and the target checks |
//! | `admin` | creating, marking and dropping databases; probing the server |
//! | `contents` | what a target holds now: the backup's tables, row counts, any table at all |
//! | `sessions` | the other sessions on a database: who holds the locks a restore waits for; ending them |
//! | `privileges` | owners, privileges and policies back into a restored database; the backup's roles on this server |

mod admin;
mod connection;
mod contents;
mod privileges;
mod restore;
pub mod schema;
mod sessions;
mod snapshot;
mod sql;

pub use admin::{
    create_database, database_exists, drop_database, drop_database_checked, is_unfinished,
    large_object_sha256, may_create_database, probe, refuse_existing, set_unfinished_mark,
    ServerProbe,
};
pub use connection::{col, db_error, PgTarget, Tls};
pub use contents::{any_user_table, live_row_counts, run_script, tables_present};
pub use privileges::{privileges_sql, RoleChoice, RoleMap};
pub(crate) use restore::lock_timed_out;
pub use restore::{check_may_disable_triggers, check_target, RestoreTxn};
pub use sessions::{blocking_sessions, end_sessions, other_sessions, sessions_locking};
pub use snapshot::{Snapshot, SnapshotWorker};
pub use sql::{qualified, quote_ident};
