//! The database-neutral model every source adapter fills and the archive format serialises:
//! where a backup came from, its tables (with the columns their data holds) and its sequences.
//! An adapter never imports the format; the format never learns more of the engine than
//! [`SourceInfo::engine`].

use serde::{Deserialize, Serialize};

/// Where a backup came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceInfo {
    /// `postgresql`.
    pub engine: String,
    /// The server's version, e.g. `15.19`.
    pub server_version: String,
    /// The database name.
    pub database: String,
}

/// A table: where its data sits in the archive and which columns it holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableManifest {
    /// The number under `data/`.
    pub index: u32,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// The columns in the COPY data, in order (generated columns are not stored).
    pub columns: Vec<String>,
}

impl TableManifest {
    /// `schema.name` for messages.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A sequence's state in the snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SequenceValue {
    /// Schema name.
    pub schema: String,
    /// Sequence name.
    pub name: String,
    /// `last_value`.
    pub last_value: i64,
    /// `is_called`.
    pub is_called: bool,
}
