//! Offsite copies as jobs: [`sync`] copies what each destination lacks (after every backup, at
//! the schedule's looks, `schoolvault sync`), compares with `verify`, and applies each
//! destination's retention; [`rescan_from`] lists a destination's backups on a new computer;
//! [`fetch`] brings a backup back from a destination when there is no local copy.
//!
//! A destination that cannot be reached never fails a backup: its copy is recorded as pending
//! and tried again with backoff ([`retry_after`]) until it succeeds, across restarts (the
//! catalog remembers).
//!
//! | file | owns |
//! |---|---|
//! | `mod` | sync: copying what each destination lacks, the report, the history entry |
//! | `standing` | where copies stand: the destinations ([`Offsite`]), what is due, who is behind, tallies |
//! | `check` | `sync --verify`: a destination compared with the catalog |
//! | `prune` | each destination's retention |
//! | `recover` | a new computer: `rescan --from`, and fetching a backup for a restore |

mod check;
mod prune;
mod recover;
mod standing;

pub use recover::{fetch, rescan_from};
pub use standing::{copies_of, Behind, Offsite, Tally};

use check::verify_one;
use prune::prune_one;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::archive::EXTENSION;
use crate::catalog::{BackupRecord, CopyRecord, CopyState};
use crate::error::{Error, ErrorKind, Result};
use crate::offsite::{DestinationSettings, Store};
use crate::progress::{Phase, Progress, ProgressEvent};

use crate::jobs::{Locked, Vault};

/// How long a copy that failed `attempts` times waits before the next try: 5 minutes, doubling,
/// at most 6 hours (a school's line is back within the day; `schoolvault sync` never waits).
pub fn retry_after(attempts: u32) -> Duration {
    let minutes = 5i64.saturating_mul(1i64 << attempts.saturating_sub(1).min(10));
    Duration::minutes(minutes.min(6 * 60))
}

/// What [`sync`] does besides copying.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOptions {
    /// Compare each destination with the catalog (missing, extra, size, changed copies) and
    /// copy again what is missing or damaged.
    pub verify: bool,
    /// With `verify`: read every copy back in full and check its SHA-256.
    pub read_back: bool,
    /// Try copies in their backoff too (a person asked).
    pub now: bool,
    /// Apply each destination's retention after copying.
    pub prune: bool,
}

/// One thing `verify` found at a destination.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The backup file's name there.
    pub name: String,
    /// `missing`, `unfinished`, `size`, `checksum` or `extra` (there, but not in the catalog:
    /// kept by a longer retention there, or made on another computer).
    pub problem: String,
    /// In words.
    pub detail: String,
    /// Whether it was copied again.
    pub repaired: bool,
}

/// What [`sync`] did at one destination.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationReport {
    /// The destination.
    pub destination: String,
    /// Backups copied there now.
    pub uploaded: Vec<String>,
    /// Backups it still lacks (pending or failed), with why.
    pub owed: Vec<CopyRecord>,
    /// What `verify` found.
    pub findings: Vec<Finding>,
    /// Copies its retention removed there.
    pub pruned: Vec<String>,
    /// Why it could not be used at all, if it could not.
    pub error: Option<String>,
    /// That error's code.
    pub error_code: Option<String>,
}

impl DestinationReport {
    fn new(name: &str) -> Self {
        DestinationReport {
            destination: name.to_string(),
            uploaded: Vec::new(),
            owed: Vec::new(),
            findings: Vec::new(),
            pruned: Vec::new(),
            error: None,
            error_code: None,
        }
    }

    /// Whether everything it should hold is there.
    pub fn is_complete(&self) -> bool {
        self.error.is_none() && self.owed.is_empty()
    }

    /// Why it is behind, with the error's kind: its own error (it could not be used at all),
    /// else the first owed copy's.
    pub fn problem(&self) -> Option<(ErrorKind, String)> {
        let (code, why) = match &self.error {
            Some(e) => (self.error_code.as_deref(), e.clone()),
            None => {
                let c = self.owed.first()?;
                (c.error_code.as_deref(), c.error.clone()?)
            }
        };
        let kind = match code {
            Some("destination_auth") => ErrorKind::DestinationAuth,
            Some("destination_missing") => ErrorKind::DestinationMissing,
            Some("invalid_input") => ErrorKind::InvalidInput,
            _ => ErrorKind::DestinationUnreachable,
        };
        Some((kind, why))
    }
}

/// The backups that are copied: complete ones (SchoolVault's and the old system's files) whose
/// file is in the backup folder.
pub(super) async fn copyable(vault: &Vault) -> Result<Vec<BackupRecord>> {
    Ok(vault
        .catalog
        .list()
        .await?
        .into_iter()
        .filter(|b| b.status.is_complete() && b.path.is_file())
        .collect())
}

pub(super) async fn copies_by_key(vault: &Vault) -> Result<HashMap<(String, String), CopyRecord>> {
    Ok(vault
        .catalog
        .copies()
        .await?
        .into_iter()
        .map(|c| ((c.backup_id.clone(), c.destination.clone()), c))
        .collect())
}

pub(super) fn file_name(b: &BackupRecord) -> String {
    b.path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{}.{EXTENSION}", b.id))
}

pub(super) fn failed_copy(
    b: &BackupRecord,
    dest: &str,
    prev: Option<&CopyRecord>,
    e: &Error,
) -> CopyRecord {
    let attempts = prev
        .filter(|c| c.state != CopyState::Done)
        .map_or(0, |c| c.attempts)
        .saturating_add(1);
    let now = Utc::now();
    CopyRecord {
        backup_id: b.id.clone(),
        destination: dest.to_string(),
        state: if e.kind() == ErrorKind::DestinationUnreachable {
            CopyState::Pending
        } else {
            CopyState::Failed
        },
        error_code: Some(e.code().to_string()),
        error: Some(e.to_string()),
        attempts,
        since: prev
            .filter(|c| c.state != CopyState::Done)
            .map_or(now, |c| c.since),
        next_try_at: Some(now + retry_after(attempts)),
        size: None,
        tag: None,
    }
}

/// Forget what the catalog knows of destination `name`'s copies (the destination is being
/// removed from the settings; the files there stay), under the run lock, so no sync is
/// recording a copy there at the same time.
///
/// # Errors
/// `Busy` when another run holds the lock (nothing changed); `Catalog`.
pub async fn forget_destination(vault: &Vault, name: &str) -> Result<()> {
    let locked = vault.lock()?;
    locked.catalog.remove_copies_at(name).await
}

/// Copy every complete backup to every enabled destination that lacks it, then (with the
/// options) verify and prune there. A destination that fails is reported and its copies are
/// left pending; the others go on.
///
/// # Errors
/// `Busy` when another run holds the lock; `Catalog`. Destination failures are in the reports.
pub async fn sync(
    vault: &Vault,
    offsite: &Offsite,
    opts: SyncOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<DestinationReport>> {
    let vault = &vault.lock()?;
    sync_locked(vault, offsite, opts, progress).await
}

/// [`sync`] under the run lock the caller holds (right after a backup).
pub(super) async fn sync_locked(
    vault: &Locked<'_>,
    offsite: &Offsite,
    opts: SyncOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<DestinationReport>> {
    let started = Utc::now();
    let mut reports = Vec::new();
    for d in offsite.enabled() {
        let mut report = DestinationReport::new(&d.name);
        if let Err(e) = sync_one(vault, offsite, d, opts, &progress, &mut report).await {
            if e.kind() == ErrorKind::Catalog {
                return Err(e);
            }
            report.error_code = Some(e.code().to_string());
            report.error = Some(e.to_string());
        }
        let copies = copies_by_key(vault).await?;
        report.owed = copyable(vault)
            .await?
            .iter()
            .filter_map(|b| copies.get(&(b.id.clone(), d.name.clone())))
            .filter(|c| c.state != CopyState::Done)
            .cloned()
            .collect();
        reports.push(report);
    }
    record(vault, started, &reports).await;
    Ok(reports)
}

/// A sync that copied, removed or failed something is in the history (one that found
/// everything in place is not: the schedule looks often).
async fn record(vault: &Vault, started: DateTime<Utc>, reports: &[DestinationReport]) {
    let busy = |r: &&DestinationReport| {
        !r.uploaded.is_empty() || !r.pruned.is_empty() || !r.findings.is_empty() || !r.is_complete()
    };
    if !reports.iter().any(|r| busy(&r)) {
        return;
    }
    let parts: Vec<String> = reports
        .iter()
        .filter(busy)
        .map(|r| {
            let mut s = format!("{}: {} copied", r.destination, r.uploaded.len());
            if !r.pruned.is_empty() {
                s.push_str(&format!(", {} removed", r.pruned.len()));
            }
            if !r.findings.is_empty() {
                s.push_str(&format!(", {} problem(s) found", r.findings.len()));
            }
            if !r.owed.is_empty() {
                s.push_str(&format!(", {} waiting", r.owed.len()));
            }
            s
        })
        .collect();
    let result: Result<()> = match reports.iter().find_map(DestinationReport::problem) {
        None => Ok(()),
        Some((kind, e)) => Err(Error::new(kind, format!("{} ({e})", parts.join("; ")), "")),
    };
    vault
        .record_run(crate::jobs::run_record(
            crate::catalog::Operation::Copy,
            None,
            started,
            &result,
            None,
            Some(parts.join("; ")),
        ))
        .await;
}

async fn sync_one(
    vault: &Locked<'_>,
    offsite: &Offsite,
    d: &DestinationSettings,
    opts: SyncOptions,
    progress: &Arc<dyn Progress>,
    report: &mut DestinationReport,
) -> Result<()> {
    let backups = copyable(vault).await?;
    let mut copies = copies_by_key(vault).await?;
    let store = match Store::open(d, offsite.keychain.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            // Nothing can be copied there: every owed copy says why.
            for b in &backups {
                let prev = copies.get(&(b.id.clone(), d.name.clone()));
                if prev.is_none_or(|c| c.state != CopyState::Done) {
                    vault
                        .catalog
                        .set_copy(&failed_copy(b, &d.name, prev, &e))
                        .await?;
                }
            }
            return Err(e);
        }
    };
    if opts.verify {
        // Every listed backup is compared (also those whose local file is gone: their copy
        // there may be the only one); only those with a local file can be copied again.
        let listed: Vec<BackupRecord> = vault
            .catalog
            .list()
            .await?
            .into_iter()
            .filter(|b| b.status.is_complete())
            .collect();
        verify_one(vault, &store, &listed, &mut copies, opts.read_back, report).await?;
    }
    let now = Utc::now();
    for b in &backups {
        let key = (b.id.clone(), d.name.clone());
        let prev = copies.get(&key);
        let owed = match prev {
            None => true,
            Some(c) if c.state == CopyState::Done => false,
            Some(c) => opts.now || c.next_try_at.is_none_or(|t| t <= now),
        };
        if !owed {
            continue;
        }
        let name = file_name(b);
        let total = b.size;
        let reporter = progress.clone();
        // `destination: backup id`: what is being copied where (the app's list shows the
        // copy's share on the backup's row).
        let what = format!("{}: {}", d.name, b.id);
        let item = what.clone();
        let sent = move |bytes: u64| {
            reporter.report(&ProgressEvent {
                bytes,
                total_bytes: Some(total),
                table: Some(item.clone()),
                ..ProgressEvent::phase(Phase::Upload)
            });
        };
        progress.report(&ProgressEvent {
            total_bytes: Some(total),
            table: Some(what),
            ..ProgressEvent::phase(Phase::Upload)
        });
        match store.upload(&b.path, &name, &b.sha256, &sent).await {
            Ok(there) => {
                let rec = CopyRecord::done(&b.id, &d.name, there.size, there.tag);
                vault.catalog.set_copy(&rec).await?;
                copies.insert(key, rec);
                report.uploaded.push(b.id.clone());
            }
            Err(e) => {
                let rec = failed_copy(b, &d.name, prev, &e);
                vault.catalog.set_copy(&rec).await?;
                copies.insert(key, rec);
                if matches!(
                    e.kind(),
                    ErrorKind::DestinationUnreachable
                        | ErrorKind::DestinationAuth
                        | ErrorKind::DestinationMissing
                ) {
                    // The destination itself is the problem: the other copies wait too.
                    for other in &backups {
                        let k = (other.id.clone(), d.name.clone());
                        let p = copies.get(&k);
                        if p.is_none() {
                            let r = failed_copy(other, &d.name, None, &e);
                            vault.catalog.set_copy(&r).await?;
                            copies.insert(k, r);
                        }
                    }
                    return Err(e);
                }
            }
        }
    }
    for f in &mut report.findings {
        f.repaired = report
            .uploaded
            .iter()
            .any(|id| f.name.contains(id.as_str()));
    }
    if opts.prune {
        let policy = d
            .retention
            .as_ref()
            .map_or(offsite.local_policy, |r| r.policy());
        prune_one(vault, &store, &policy, report).await?;
    }
    Ok(())
}
