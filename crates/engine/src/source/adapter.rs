//! What a backup asks of a database engine, as two traits: a [`Source`] opens one consistent
//! snapshot with several [`TableReader`]s joined to it, each streaming whole tables in the
//! engine's bulk text format. `jobs::backup` is written against these traits only: the parts,
//! compression, encryption, `end.json`, verification and offsite copies are the same for
//! every engine, and an adapter fills [`SnapshotContents`] (the neutral model of
//! [`crate::source::model`]) without knowing the archive format.
//!
//! The futures are `Send`, so jobs run as ordinary tasks on any runtime.

use std::future::Future;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;

use crate::error::Result;
use crate::source::model::{Privileges, SequenceValue, SourceInfo, TableManifest};

/// A table to export, with its size estimate (for the order, largest first, and progress).
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// What goes into the manifest.
    pub manifest: TableManifest,
    /// The engine's own estimate of the table's size on disk.
    pub estimated_bytes: u64,
}

/// What an open snapshot saw: everything the manifest and the schema members hold.
#[derive(Debug, Clone)]
pub struct SnapshotContents {
    /// The snapshot's id (the engine's own, for its readers).
    pub id: String,
    /// Every table with data, largest first.
    pub tables: Vec<TableInfo>,
    /// Every sequence's value.
    pub sequences: Vec<SequenceValue>,
    /// The server and database.
    pub source: SourceInfo,
    /// The server's clock at the snapshot.
    pub taken_at: DateTime<Utc>,
    /// The statements that create the objects before the data (types, tables, routines…).
    pub pre_data: String,
    /// The statements after the data (keys, indexes, triggers…).
    pub post_data: String,
    /// Objects the backup does not reproduce, described for a person.
    pub unsupported: Vec<String>,
    /// Owners, privileges, policies and the roles they name.
    pub privileges: Privileges,
    /// What the person making the backup should know about it (a table outside the
    /// snapshot's consistency…), one line each.
    pub warnings: Vec<String>,
}

/// A database a backup is taken of.
pub trait Source: Clone + Send + Sync + 'static {
    /// The coordinator that holds the snapshot (and its locks) open until
    /// [`Source::close_snapshot`].
    type Snapshot: Send;
    /// A reader inside the snapshot.
    type Reader: TableReader + 'static;

    /// Open the snapshot with up to `readers` readers joined to it (at least one; fewer when
    /// the login cannot have more): lock every table against schema changes, list the tables
    /// (largest first) and sequences, and capture the schema here or in
    /// [`Source::capture_schema`]. The readers are connected while the snapshot is taken.
    ///
    /// # Errors
    /// Connection errors; `TableUnreadable` naming the first object the login may not read.
    fn open_snapshot(
        &self,
        readers: usize,
    ) -> impl Future<Output = Result<(Self::Snapshot, SnapshotContents, Vec<Self::Reader>)>> + Send;

    /// Capture the schema into `contents` on the snapshot's own connection, inside its
    /// transaction, while the readers already export (the backup writes the parts they finish
    /// meanwhile once the manifest and pre-data are written). An engine that captured the
    /// schema in [`Source::open_snapshot`] has nothing to do here.
    ///
    /// # Errors
    /// Connection errors; `TableUnreadable` naming the first object the login may not read.
    fn capture_schema(
        &self,
        snapshot: &mut Self::Snapshot,
        contents: &mut SnapshotContents,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (snapshot, contents);
        async { Ok(()) }
    }

    /// The snapshot's own connection as a reader, for an engine whose coordinator can read
    /// tables inside its snapshot (PostgreSQL): once the schema is captured it exports the
    /// small tables while the readers export the large ones. `None` by default.
    fn snapshot_reader<'s>(
        &self,
        snapshot: &'s mut Self::Snapshot,
    ) -> Option<&'s mut Self::Reader> {
        let _ = snapshot;
        None
    }

    /// End the snapshot, after every reader has finished.
    ///
    /// # Errors
    /// Connection errors.
    fn close_snapshot(&self, snapshot: Self::Snapshot) -> impl Future<Output = Result<()>> + Send;
}

/// One connection reading tables inside a snapshot.
pub trait TableReader: Send {
    /// Stream `table`'s rows, one per line, in the engine's bulk text format, only the
    /// manifest's columns, in that order.
    ///
    /// # Errors
    /// `TableUnreadable` naming the table; connection errors (also as stream items).
    fn read_table<'c>(
        &'c mut self,
        table: &TableManifest,
    ) -> impl Future<Output = Result<BoxStream<'c, Result<Bytes>>>> + Send;

    /// The large objects in the snapshot (engines without them: none).
    ///
    /// # Errors
    /// Database errors.
    fn large_objects(&mut self) -> impl Future<Output = Result<Vec<u32>>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Up to `len` bytes of large object `oid` from `offset` (fewer at its end).
    ///
    /// # Errors
    /// `TableUnreadable` when the login may not read it; database errors.
    fn read_large_object(
        &mut self,
        oid: u32,
        offset: u64,
        len: usize,
    ) -> impl Future<Output = Result<Vec<u8>>> + Send {
        let _ = (offset, len);
        async move {
            Err(crate::error::Error::new(
                crate::error::ErrorKind::Internal,
                format!("This database engine has no large object {oid}"),
                "Please report this",
            ))
        }
    }

    /// End the reader's transaction and connection.
    fn close(self) -> impl Future<Output = ()> + Send;
}
