//! A new computer after a disaster: the backups at a destination listed in the catalog
//! (`rescan --from`), and a listed backup fetched when its file is not here.

use std::sync::Arc;

use crate::archive::{read_preamble, EXTENSION};
use crate::catalog::{BackupRecord, BackupStatus, CopyRecord, CopyState};
use crate::error::{Error, ErrorKind, Result};
use crate::offsite::{DestinationSettings, Store};
use crate::progress::{Phase, Progress, ProgressEvent};

use super::{file_name, Offsite};
use crate::jobs::maintenance::RescanEntry;
use crate::jobs::{is_v1_record, Vault};

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
                Some("an old-system file: download it and restore it as a file".into()),
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
                    status: BackupStatus::Complete,
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
            .set_copy(&CopyRecord::done(
                &h.backup_id,
                &d.name,
                o.size,
                o.tag.clone(),
            ))
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
        let from = d.name.clone();
        let got = move |bytes: u64| {
            reporter.report(&ProgressEvent {
                bytes,
                total_bytes: Some(total),
                table: Some(from.clone()),
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
        .in_app("Copy the file back into the backup folder, or use “Find backups in…” on the destination that has it")
    }))
}
