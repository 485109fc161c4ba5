//! Database adapters: one per engine, each able to take a consistent snapshot, export every
//! table and restore into a transaction. [`adapter`] is what a backup asks of an engine (the
//! [`Source`] and [`TableReader`] traits), [`model`] the neutral values an adapter fills and
//! the archive format serialises; [`postgres`] implements them. PostgreSQL first; MariaDB
//! joins behind the same traits.

pub mod adapter;
pub mod model;
pub mod mysql;
pub mod postgres;

pub use adapter::{SnapshotContents, Source, TableInfo, TableReader};
pub use model::{describe_sessions, Privileges, SequenceValue, Session, SourceInfo, TableManifest};
