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
pub use model::{
    describe_sessions, LockWait, Privileges, SequenceValue, Session, SourceInfo, TableManifest,
    WAIT_REPORT,
};

/// Which database engine a connection speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(export))]
pub enum Engine {
    /// PostgreSQL.
    #[default]
    Postgres,
    /// MariaDB or MySQL.
    Mariadb,
}

impl Engine {
    /// Its usual port: 5432 or 3306.
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mariadb => 3306,
        }
    }

    /// True for PostgreSQL (the settings file leaves it out).
    pub fn is_postgres(&self) -> bool {
        *self == Engine::Postgres
    }
}

/// A database SchoolVault backs up: PostgreSQL, or MariaDB/MySQL.
#[derive(Debug, Clone)]
pub enum Database {
    /// PostgreSQL.
    Postgres(postgres::PgTarget),
    /// MariaDB or MySQL.
    MariaDb(mysql::MyTarget),
}

impl Database {
    /// A `postgres://`, `mysql://` or `mariadb://` address.
    ///
    /// # Errors
    /// `InvalidInput` for an address neither engine reads (the message never repeats it).
    pub fn parse(url: &str) -> crate::Result<Database> {
        if mysql::MyTarget::is_url(url) {
            Ok(Database::MariaDb(mysql::MyTarget::parse(url)?))
        } else {
            Ok(Database::Postgres(postgres::PgTarget::parse(url)?))
        }
    }

    /// `user@host:port/database`, safe to show.
    pub fn describe(&self) -> String {
        match self {
            Database::Postgres(t) => t.describe(),
            Database::MariaDb(t) => t.describe(),
        }
    }

    /// The database's name.
    pub fn database(&self) -> String {
        match self {
            Database::Postgres(t) => t.database(),
            Database::MariaDb(t) => t.database(),
        }
    }

    /// The PostgreSQL target, for what only PostgreSQL does yet (restore, the school's
    /// administrators read from the ERP).
    pub fn postgres(&self) -> Option<&postgres::PgTarget> {
        match self {
            Database::Postgres(t) => Some(t),
            Database::MariaDb(_) => None,
        }
    }
}
