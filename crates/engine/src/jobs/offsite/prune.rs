//! Each destination's retention: what its policy drops, never the only copy of a listed
//! backup whose local file is gone; a refused delete is reported, not failed.

use std::collections::HashMap;
use std::path::Path;

use chrono::Utc;

use crate::archive::{BackupKind, EXTENSION};
use crate::catalog::{BackupRecord, BackupStatus, CopyState};
use crate::error::{ErrorKind, Result};
use crate::offsite::{RemoteObject, Store};
use crate::retention::{self, Retention};

use super::{file_name, DestinationReport, Finding};
use crate::jobs::Locked;

/// Apply `policy` at a destination: never to a copy that is the only good one of a listed
/// backup whose local file is gone.
pub(super) async fn prune_one(
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
        status: BackupStatus::Complete,
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
