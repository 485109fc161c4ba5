//! Database adapters: one per engine, each able to take a consistent snapshot, export every
//! table and restore into a transaction. PostgreSQL first; MariaDB and SQLite join later.

pub mod model;
pub mod postgres;

pub use model::{describe_sessions, Privileges, SequenceValue, Session, SourceInfo, TableManifest};
