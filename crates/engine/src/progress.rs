//! Progress events the engine emits while it works, and the trait that receives them.
//!
//! The engine never knows who listens: the CLI draws a bar or prints JSON lines, the desktop app
//! forwards events through a Tauri channel, tests collect them. Receivers must be cheap; the
//! engine emits at most one event per part of data (8 MiB) or per table, not per row.

use serde::Serialize;

/// What the job is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(export))]
pub enum Phase {
    /// Connecting to the database.
    Connect,
    /// Opening the snapshot and locking tables.
    Snapshot,
    /// Exporting table data.
    Export,
    /// Writing the end record, syncing and renaming the file.
    Finish,
    /// Taking the safety backup before a restore.
    SafetyBackup,
    /// Waiting for other sessions to release the tables a restore empties (`table` says who
    /// holds them).
    WaitLock,
    /// Loading data into the target.
    Restore,
    /// Reading a backup back and checking it.
    Verify,
    /// Committing the restore.
    Commit,
    /// Copying a backup to an offsite destination.
    Upload,
    /// Bringing a backup back from an offsite destination.
    Download,
}

/// One progress report. Byte counts are of uncompressed table data (export, restore) or of the
/// file (verify); `total_bytes` is an estimate for an ETA, or absent.
#[derive(Debug, Clone, Serialize)]
pub struct ProgressEvent {
    /// The phase.
    pub phase: Phase,
    /// The table being worked on, as `schema.name`.
    pub table: Option<String>,
    /// Tables finished so far.
    pub tables_done: u64,
    /// Tables in all.
    pub tables_total: u64,
    /// Rows handled so far (all tables).
    pub rows: u64,
    /// Bytes handled so far.
    pub bytes: u64,
    /// Bytes expected in all, when known.
    pub total_bytes: Option<u64>,
}

impl ProgressEvent {
    /// An event that only announces a phase.
    pub fn phase(phase: Phase) -> Self {
        ProgressEvent {
            phase,
            table: None,
            tables_done: 0,
            tables_total: 0,
            rows: 0,
            bytes: 0,
            total_bytes: None,
        }
    }
}

/// Receives progress events. Must be callable from any thread.
pub trait Progress: Send + Sync {
    /// Called for each event.
    fn report(&self, event: &ProgressEvent);
}

/// Discards every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn report(&self, _event: &ProgressEvent) {}
}

/// Passes events on and remembers when the last one came, for a watchdog.
pub struct Watched {
    inner: std::sync::Arc<dyn Progress>,
    last: std::sync::Mutex<std::time::Instant>,
}

impl Watched {
    /// Watch the events going to `inner`.
    pub fn new(inner: std::sync::Arc<dyn Progress>) -> Self {
        Watched {
            inner,
            last: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    /// How long since the last event.
    pub fn idle(&self) -> std::time::Duration {
        self.last.lock().map(|t| t.elapsed()).unwrap_or_default()
    }
}

impl Progress for Watched {
    fn report(&self, event: &ProgressEvent) {
        if let Ok(mut t) = self.last.lock() {
            *t = std::time::Instant::now();
        }
        self.inner.report(event);
    }
}
