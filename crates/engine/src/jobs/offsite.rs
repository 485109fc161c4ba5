//! Offsite copies as jobs: [`sync`] copies what each destination lacks (after every backup, at
//! the schedule's looks, `schoolvault sync`), compares with `verify`, and applies each
//! destination's retention; [`rescan_from`] lists a destination's backups on a new computer;
//! [`fetch`] brings a backup back from a destination when there is no local copy.
//!
//! A destination that cannot be reached never fails a backup: its copy is recorded as pending
//! and tried again with backoff ([`retry_after`]) until it succeeds, across restarts (the
//! catalog remembers).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::archive::{read_preamble, BackupKind, EXTENSION};
use crate::catalog::{BackupRecord, CopyRecord, CopyState};
use crate::error::{Error, ErrorKind, Result};
use crate::keychain::Keychain;
use crate::offsite::{DestinationSettings, RemoteObject, Store};
use crate::progress::{Phase, Progress, ProgressEvent};
use crate::retention::{self, Retention};

use crate::jobs::maintenance::RescanEntry;
use crate::jobs::{is_v1_record, Locked, Vault};

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
}

/// The destinations and what they need: their settings, the keychain holding their secrets,
/// and the local retention (theirs unless they have their own).
#[derive(Clone)]
pub struct Offsite {
    /// Every destination (switched-off ones are skipped).
    pub destinations: Vec<DestinationSettings>,
    /// Where their secrets are.
    pub keychain: Arc<dyn Keychain>,
    /// The local folder's retention.
    pub local_policy: Retention,
}

impl std::fmt::Debug for Offsite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offsite")
            .field("destinations", &self.destinations)
            .field("local_policy", &self.local_policy)
            .finish_non_exhaustive()
    }
}

impl Offsite {
    /// The destinations of the settings file `config`, their secrets in `keychain`.
    pub fn from_config(config: &crate::config::Config, keychain: Arc<dyn Keychain>) -> Offsite {
        Offsite {
            destinations: config.destinations.clone(),
            keychain,
            local_policy: config.retention.policy(),
        }
    }

    pub(crate) fn enabled(&self) -> impl Iterator<Item = &DestinationSettings> {
        self.destinations.iter().filter(|d| d.enabled)
    }

    /// Whether a copy is owed somewhere and due now (so a schedule look knows to sync).
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn due(&self, vault: &Vault, now: DateTime<Utc>) -> Result<bool> {
        if self.enabled().next().is_none() {
            return Ok(false);
        }
        let copies = copies_by_key(vault).await?;
        for b in copyable(vault).await? {
            for d in self.enabled() {
                match copies.get(&(b.id.clone(), d.name.clone())) {
                    None => return Ok(true),
                    Some(c)
                        if c.state != CopyState::Done && c.next_try_at.is_none_or(|t| t <= now) =>
                    {
                        return Ok(true)
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(false)
    }
}

/// A destination that has owed copies for a while (pending or failed).
#[derive(Debug, Clone, Serialize)]
pub struct Behind {
    /// The destination.
    pub destination: String,
    /// Since when a copy waits (the oldest owed one).
    pub since: DateTime<Utc>,
    /// How many backups wait.
    pub waiting: usize,
    /// The last error of the oldest owed copy.
    pub error: Option<String>,
}

impl Behind {
    /// One line for the tray, the banner, a warning.
    pub fn line(&self) -> String {
        format!(
            "no copy to {} since {} ({} waiting){}",
            self.destination,
            self.since
                .with_timezone(&chrono::Local)
                .format("%a %d %b %H:%M"),
            self.waiting,
            self.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )
    }
}

impl Offsite {
    /// The enabled destinations whose oldest owed copy waits since `max_age` or longer.
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn behind(
        &self,
        vault: &Vault,
        max_age: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Behind>> {
        let copies = vault.catalog.copies().await?;
        Ok(self
            .enabled()
            .filter_map(|d| {
                let owed: Vec<&CopyRecord> = copies
                    .iter()
                    .filter(|c| c.destination == d.name && c.state != CopyState::Done)
                    .collect();
                let oldest = owed.iter().min_by_key(|c| c.since)?;
                (now - oldest.since >= max_age).then(|| Behind {
                    destination: d.name.clone(),
                    since: oldest.since,
                    waiting: owed.len(),
                    error: oldest.error.clone(),
                })
            })
            .collect())
    }
}

/// The backups that are copied: complete ones (SchoolVault's and the old system's files) whose
/// file is in the backup folder.
async fn copyable(vault: &Vault) -> Result<Vec<BackupRecord>> {
    Ok(vault
        .catalog
        .list()
        .await?
        .into_iter()
        .filter(|b| b.status == "complete" && b.path.is_file())
        .collect())
}

async fn copies_by_key(vault: &Vault) -> Result<HashMap<(String, String), CopyRecord>> {
    Ok(vault
        .catalog
        .copies()
        .await?
        .into_iter()
        .map(|c| ((c.backup_id.clone(), c.destination.clone()), c))
        .collect())
}

fn file_name(b: &BackupRecord) -> String {
    b.path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{}.{EXTENSION}", b.id))
}

fn failed_copy(b: &BackupRecord, dest: &str, prev: Option<&CopyRecord>, e: &Error) -> CopyRecord {
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
    let failed = reports.iter().find_map(|r| {
        r.error
            .clone()
            .or_else(|| r.owed.first().and_then(|c| c.error.clone()))
            .map(|e| (r, e))
    });
    let result: Result<()> = match failed {
        None => Ok(()),
        Some((r, e)) => Err(Error::new(
            match r
                .error_code
                .as_deref()
                .or_else(|| r.owed.first().and_then(|c| c.error_code.as_deref()))
            {
                Some("destination_auth") => ErrorKind::DestinationAuth,
                Some("destination_missing") => ErrorKind::DestinationMissing,
                _ => ErrorKind::DestinationUnreachable,
            },
            format!("{} ({e})", parts.join("; ")),
            "",
        )),
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
            .filter(|b| b.status == "complete")
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
        let sent = move |bytes: u64| {
            reporter.report(&ProgressEvent {
                bytes,
                total_bytes: Some(total),
                ..ProgressEvent::phase(Phase::Upload)
            });
        };
        progress.report(&ProgressEvent {
            total_bytes: Some(total),
            ..ProgressEvent::phase(Phase::Upload)
        });
        match store.upload(&b.path, &name, &b.sha256, &sent).await {
            Ok(there) => {
                let rec = CopyRecord {
                    backup_id: b.id.clone(),
                    destination: d.name.clone(),
                    state: CopyState::Done,
                    error_code: None,
                    error: None,
                    attempts: 0,
                    since: Utc::now(),
                    next_try_at: None,
                    size: Some(there.size),
                    tag: there.tag,
                };
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

/// Compare a destination with the catalog; mark what must be copied again.
async fn verify_one(
    vault: &Locked<'_>,
    store: &Store,
    backups: &[BackupRecord],
    copies: &mut HashMap<(String, String), CopyRecord>,
    read_back: bool,
    report: &mut DestinationReport,
) -> Result<()> {
    let there: HashMap<String, RemoteObject> = store
        .list()
        .await?
        .into_iter()
        .map(|o| (o.name.clone(), o))
        .collect();
    let mut known = HashSet::new();
    for b in backups {
        let name = file_name(b);
        known.insert(name.clone());
        let key = (b.id.clone(), store.name().to_string());
        let problem = match there.get(&name) {
            None => Some(("missing", "not there".to_string())),
            Some(o) if o.size != b.size => Some((
                "size",
                format!("{} bytes there, {} in the catalog", o.size, b.size),
            )),
            Some(o) => {
                let recorded = copies.get(&key).filter(|c| c.state == CopyState::Done);
                let changed = recorded.is_some_and(|c| c.tag.is_some() && c.tag != o.tag);
                if store.recorded_sha256(&name).await?.as_deref() != Some(b.sha256.as_str()) {
                    Some((
                        "unfinished",
                        "no checksum file, or another checksum".to_string(),
                    ))
                } else if changed || read_back {
                    let (sha, _) = store.hash(&name).await?;
                    if sha == b.sha256 {
                        if let Some(c) = recorded {
                            // Rewritten with the same bytes (a sync tool touching it): fine.
                            let mut c = c.clone();
                            c.tag.clone_from(&o.tag);
                            vault.catalog.set_copy(&c).await?;
                            copies.insert(key.clone(), c);
                        }
                        None
                    } else {
                        Some((
                            "checksum",
                            "its bytes changed after it was copied".to_string(),
                        ))
                    }
                } else {
                    None
                }
            }
        };
        match problem {
            Some((problem, detail)) => {
                // Copied again below, now.
                copies.remove(&key);
                vault.catalog.remove_copy(&b.id, store.name()).await?;
                report.findings.push(Finding {
                    name,
                    problem: problem.into(),
                    detail,
                    repaired: false,
                });
            }
            None => {
                if !copies.get(&key).is_some_and(|c| c.state == CopyState::Done) {
                    // There and sound, but the catalog did not know (copied before a
                    // rescan): say so in the catalog.
                    let o = &there[&name];
                    let rec = CopyRecord {
                        backup_id: b.id.clone(),
                        destination: store.name().to_string(),
                        state: CopyState::Done,
                        error_code: None,
                        error: None,
                        attempts: 0,
                        since: Utc::now(),
                        next_try_at: None,
                        size: Some(o.size),
                        tag: o.tag.clone(),
                    };
                    vault.catalog.set_copy(&rec).await?;
                    copies.insert(key, rec);
                }
            }
        }
    }
    for name in there.keys().filter(|n| !known.contains(*n)) {
        report.findings.push(Finding {
            name: name.clone(),
            problem: "extra".into(),
            detail: "there, but not in this computer's list (kept by that destination's retention, or made elsewhere)".into(),
            repaired: false,
        });
    }
    Ok(())
}

/// Apply `policy` at a destination: never to a copy that is the only good one of a listed
/// backup whose local file is gone.
async fn prune_one(
    vault: &Locked<'_>,
    store: &Store,
    policy: &Retention,
    report: &mut DestinationReport,
) -> Result<()> {
    let listed: HashMap<String, BackupRecord> = vault
        .catalog
        .list()
        .await?
        .into_iter()
        .map(|b| (file_name(&b), b))
        .collect();
    let copies = vault.catalog.copies().await?;
    let elsewhere = |id: &str| {
        copies.iter().any(|c| {
            c.backup_id == id && c.destination != store.name() && c.state == CopyState::Done
        })
    };
    // What is there, as backups: the catalog's record, else what the name says.
    let mut there = Vec::new();
    for o in store.list().await? {
        if let Some(b) = listed.get(&o.name) {
            there.push(b.clone());
        } else if let Some(b) = record_from_name(&o) {
            there.push(b);
        }
    }
    for p in retention::plan(&there, policy, Utc::now()) {
        let Some(b) = there.iter().find(|b| b.id == p.id) else {
            continue;
        };
        let listed_here = listed.contains_key(&file_name(b));
        if listed_here && !b.path.is_file() && !elsewhere(&b.id) {
            continue;
        }
        match store.delete(&file_name(b)).await {
            Ok(()) => {}
            // A bucket with Object Lock (or credentials that may write but not delete) keeps
            // the copy: said, never a failed sync.
            Err(e) if e.kind() == ErrorKind::DestinationAuth => {
                report.findings.push(Finding {
                    name: file_name(b),
                    problem: "kept".into(),
                    detail: format!(
                        "the retention would remove it, but the destination refused: {e}"
                    ),
                    repaired: false,
                });
                continue;
            }
            Err(e) => return Err(e),
        }
        vault.catalog.remove_copy(&b.id, store.name()).await?;
        report.pruned.push(b.id.clone());
    }
    Ok(())
}

/// A backup known only by its file there (`<database>-<id>.svb`): its id and time from the
/// name's end (`YYYYMMDD-HHMMSS-xxxx`).
fn record_from_name(o: &RemoteObject) -> Option<BackupRecord> {
    let stem = o.name.strip_suffix(&format!(".{EXTENSION}"))?;
    let mut parts = stem.rsplitn(4, '-');
    let (tail, time, date) = (parts.next()?, parts.next()?, parts.next()?);
    let id = format!("{date}-{time}-{tail}");
    let created_at =
        chrono::NaiveDateTime::parse_from_str(&format!("{date}-{time}"), "%Y%m%d-%H%M%S")
            .ok()?
            .and_utc();
    Some(BackupRecord {
        id,
        path: Path::new(&o.name).to_path_buf(),
        created_at,
        kind: BackupKind::Scheduled,
        status: "complete".into(),
        size: o.size,
        sha256: String::new(),
        key_fingerprint: String::new(),
        engine: String::new(),
        server_version: String::new(),
        database: String::new(),
        tables: 0,
        rows: 0,
        duration_ms: 0,
        verified_at: None,
        verify_ok: None,
        verify_message: None,
    })
}

/// List the backups at destination `d` in the catalog (a new computer, an empty catalog):
/// each `.svb` there is read up to the end of its header (never downloaded) and listed with
/// its checksum file's SHA-256; a backup without one is an unfinished copy and left out. A
/// backup the catalog already lists keeps its local record.
///
/// # Errors
/// The destination's errors; `Busy`; `Catalog`.
pub async fn rescan_from(
    vault: &Vault,
    offsite: &Offsite,
    d: &DestinationSettings,
) -> Result<Vec<RescanEntry>> {
    let vault = &vault.lock()?;
    let store = Store::open(d, offsite.keychain.as_ref())?;
    let mut entries = Vec::new();
    for o in store.list().await? {
        let local = vault.dir.join(&o.name);
        let entry = |status: &str, message: Option<String>| RescanEntry {
            path: local.clone(),
            status: status.to_string(),
            message,
        };
        if !o.name.ends_with(&format!(".{EXTENSION}")) {
            entries.push(entry(
                "skipped",
                Some("an old-system file: copy it into the backup folder and run `schoolvault rescan`".into()),
            ));
            continue;
        }
        let Some(sha256) = store.recorded_sha256(&o.name).await? else {
            entries.push(entry(
                "unfinished",
                Some("no checksum file beside it: a copy that never finished".into()),
            ));
            continue;
        };
        // The header is small: 64 KiB is read first, and up to the largest header a reader
        // accepts only when it is longer.
        let mut head = store.head(&o.name, o.size.min(64 * 1024)).await?;
        let mut parsed = read_preamble(&mut head.as_slice());
        if matches!(&parsed, Err(e) if e.kind() == ErrorKind::Truncated) && o.size > 64 * 1024 {
            let most = u64::from(crate::archive::MAX_HEADER_LEN) + 14;
            head = store.head(&o.name, o.size.min(most)).await?;
            parsed = read_preamble(&mut head.as_slice());
        }
        let preamble = match parsed {
            Ok(p) => p,
            Err(e) => {
                entries.push(entry(e.code(), Some(e.to_string())));
                continue;
            }
        };
        let h = preamble.header;
        if vault.catalog.get(&h.backup_id).await?.is_none() {
            vault
                .catalog
                .put(&BackupRecord {
                    id: h.backup_id.clone(),
                    path: local.clone(),
                    created_at: h.created_at,
                    kind: h.kind,
                    status: "complete".into(),
                    size: o.size,
                    sha256,
                    key_fingerprint: h.key_fingerprint.clone(),
                    engine: h.source.engine.clone(),
                    server_version: h.source.server_version.clone(),
                    database: h.source.database.clone(),
                    tables: 0,
                    rows: 0,
                    duration_ms: 0,
                    verified_at: None,
                    verify_ok: None,
                    verify_message: None,
                })
                .await?;
        }
        vault
            .catalog
            .set_copy(&CopyRecord {
                backup_id: h.backup_id.clone(),
                destination: d.name.clone(),
                state: CopyState::Done,
                error_code: None,
                error: None,
                attempts: 0,
                since: Utc::now(),
                next_try_at: None,
                size: Some(o.size),
                tag: o.tag.clone(),
            })
            .await?;
        entries.push(entry("complete", None));
    }
    Ok(entries)
}

/// When backup `id` is listed but its file is not in the backup folder, download it from a
/// destination that holds it (checked against the catalog's SHA-256 as it arrives), so a
/// restore or verify can go on as usual. Nothing happens when the file is there or the id is
/// a path.
///
/// # Errors
/// `NotFound` when no destination holds it; the destinations' errors when none could give it.
pub async fn fetch(
    vault: &Vault,
    offsite: &Offsite,
    id: &str,
    progress: Arc<dyn Progress>,
) -> Result<()> {
    let Some(rec) = vault.catalog.get(id).await? else {
        return Ok(());
    };
    if rec.path.is_file() || is_v1_record(&rec) {
        return Ok(());
    }
    let holders: Vec<String> = vault
        .catalog
        .copies()
        .await?
        .into_iter()
        .filter(|c| c.backup_id == id && c.state == CopyState::Done)
        .map(|c| c.destination)
        .collect();
    let mut last = None;
    for d in offsite
        .destinations
        .iter()
        .filter(|d| holders.iter().any(|h| h == &d.name))
    {
        let store = match Store::open(d, offsite.keychain.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let total = rec.size;
        let reporter = progress.clone();
        let got = move |bytes: u64| {
            reporter.report(&ProgressEvent {
                bytes,
                total_bytes: Some(total),
                ..ProgressEvent::phase(Phase::Download)
            });
        };
        match store
            .download(&file_name(&rec), &rec.path, Some(&rec.sha256), &got)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "Backup {id} is listed, but its file {} is missing and no destination holds a copy",
                rec.path.display()
            ),
            "Copy the file back into the backup folder, or run `schoolvault rescan --from NAME` on the destination that has it",
        )
    }))
}
