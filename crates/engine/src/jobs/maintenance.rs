//! Looking after the backup folder: deleting a backup, rebuilding the list from the files
//! (`rescan`, which reads every file and so also verifies it; `rebuild_list` when the list
//! itself is damaged), and pruning by the retention
//! policy.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::archive::{self, read_preamble, BackupKind, EXTENSION};
use crate::catalog::Operation;
use crate::catalog::{BackupRecord, BackupStatus, Catalog};
use crate::error::{Error, ErrorKind, Result};
use crate::keychain::Keys;
use crate::legacy::{self};
use crate::progress::Progress;
use crate::retention::{self, Prune, Retention};

use crate::jobs::reading::{open_v1, scan_file};
use crate::jobs::{join_error, run_record, Locked, Vault};

/// Delete a listed backup: its file and its catalog entry.
///
/// # Errors
/// `NotFound` for an unknown id; I/O errors removing the file.
pub async fn delete(vault: &Vault, id: &str) -> Result<BackupRecord> {
    delete_locked(&vault.lock()?, id).await
}

/// [`delete`] under the run lock the caller holds (prune).
pub(super) async fn delete_locked(vault: &Locked<'_>, id: &str) -> Result<BackupRecord> {
    let Some(rec) = vault.catalog.get(id).await? else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("There is no backup with id {id:?}"),
            "Run `schoolvault list` to see the backups",
        )
        .in_app("It may have been removed already: choose one from the list"));
    };
    // The entry goes first, then the file: a run killed in between leaves a complete file
    // that is not listed (rescan lists it again), never a listed backup whose file is gone.
    // File first, a killed prune left entries that `list` showed as complete and that could
    // not be restored (found by crates/cli/tests/faults/).
    vault.catalog.remove(id).await?;
    match std::fs::remove_file(&rec.path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            // The file stays, so its entry does too.
            let _ = vault.catalog.put(&rec).await;
            return Err(Error::io(
                format_args!("deleting {}", rec.path.display()),
                &e,
            ));
        }
    }
    Ok(rec)
}

/// One file found by [`rescan`].
#[derive(Debug, Clone, Serialize)]
pub struct RescanEntry {
    /// The file.
    pub path: PathBuf,
    /// `complete` or the error code.
    pub status: String,
    /// The error, if any.
    pub message: Option<String>,
}

/// The catalog record of an old-system file in the backup folder.
pub(super) async fn v1_record(vault: &Vault, path: &Path) -> Result<(BackupRecord, RescanEntry)> {
    // A file that does not open (another key…) is listed with its error, so the person
    // knows it is there and why it cannot be used.
    let opened = open_v1(path, vault.keys.clone()).await;
    let (sha256, size) = archive::sha256_file(path)?;
    let meta_time = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now());
    let id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (status, message) = match &opened {
        Ok(_) => (BackupStatus::Complete, None),
        Err(e) => (BackupStatus::from(e), Some(e.to_string())),
    };
    // The file's claim, but never later than the file was written (nor than now).
    let created_at = opened
        .as_ref()
        .ok()
        .and_then(|v| DateTime::parse_from_rfc3339(&v.timestamp).ok())
        .map(|t| t.with_timezone(&Utc))
        .map_or(meta_time, |t| t.min(meta_time))
        .min(Utc::now());
    let record = BackupRecord {
        id,
        path: path.to_path_buf(),
        created_at,
        kind: BackupKind::Manual,
        status,
        size,
        sha256,
        key_fingerprint: opened
            .as_ref()
            .map(|v| v.key_fingerprint.clone())
            .unwrap_or_default(),
        engine: legacy::CATALOG_ENGINE.into(),
        server_version: String::new(),
        database: String::new(),
        tables: opened.as_ref().map(|v| v.tables.len() as u64).unwrap_or(0),
        rows: opened.as_ref().map(|v| v.records()).unwrap_or(0),
        duration_ms: 0,
        verified_at: opened.as_ref().ok().map(|_| Utc::now()),
        verify_ok: Some(opened.is_ok()),
        verify_message: message.clone(),
    };
    Ok((
        record,
        RescanEntry {
            path: path.to_path_buf(),
            status: status.to_string(),
            message,
        },
    ))
}

/// Rebuild the catalog's list from the `.svb` files (and the old system's `.enc` files) in the
/// backup folder, reading each one completely (a rescan is also a verification).
///
/// # Errors
/// I/O errors listing the folder; `Catalog`.
pub async fn rescan(vault: &Vault, progress: Arc<dyn Progress>) -> Result<Vec<RescanEntry>> {
    // It replaces the whole list: never while a backup is adding to it.
    let vault = &vault.lock()?;
    // One listing: SchoolVault archives and the old system's files.
    let listed: Vec<PathBuf> = match std::fs::read_dir(&vault.dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Error::io(
                format_args!("listing {}", vault.dir.display()),
                &e,
            ))
        }
    };
    let with_ext = |ext: &str| {
        let mut v: Vec<PathBuf> = listed
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .cloned()
            .collect();
        v.sort();
        v
    };
    let (files, old) = (with_ext(EXTENSION), with_ext("enc"));
    let mut records = Vec::new();
    let mut entries = Vec::new();
    for path in old {
        let (record, entry) = v1_record(vault, &path).await?;
        records.push(record);
        entries.push(entry);
    }
    for path in files {
        let (keys, progress, path2) = (vault.keys.clone(), progress.clone(), path.clone());
        let scanned = tokio::task::spawn_blocking(move || {
            let path = path2;
            let scan = scan_file(&path, &keys, progress.as_ref());
            let header = match &scan {
                Ok(s) => Some(s.header.clone()),
                Err(_) => File::open(&path)
                    .ok()
                    .and_then(|f| read_preamble(&mut BufReader::new(f)).ok())
                    .map(|p| p.header),
            };
            let sha = archive::sha256_file(&path);
            (scan, header, sha)
        })
        .await
        .map_err(join_error)?;
        let (scan, header, sha) = scanned;
        let Some(header) = header else {
            entries.push(RescanEntry {
                path,
                status: "not_a_backup".into(),
                message: scan.err().map(|e| e.to_string()),
            });
            continue;
        };
        let (sha256, size) = sha?;
        let (status, tables, rows, message) = match &scan {
            Ok(s) => (BackupStatus::Complete, s.tables, s.end.total_rows, None),
            Err(e) => (BackupStatus::from(e), 0, 0, Some(e.to_string())),
        };
        let duration_ms = scan
            .as_ref()
            .ok()
            .map(|s| {
                (s.end.finished_at - s.header.created_at)
                    .num_milliseconds()
                    .max(0) as u64
            })
            .unwrap_or(0);
        let tables = scan
            .as_ref()
            .map(|s| s.manifest.tables.len() as u64)
            .unwrap_or(tables);
        records.push(BackupRecord {
            id: header.backup_id.clone(),
            path: path.clone(),
            created_at: header.created_at,
            kind: header.kind,
            status,
            size,
            sha256,
            key_fingerprint: header.key_fingerprint.clone(),
            engine: header.source.engine.clone(),
            server_version: header.source.server_version.clone(),
            database: header.source.database.clone(),
            tables,
            rows,
            duration_ms,
            verified_at: scan.as_ref().ok().map(|_| Utc::now()),
            verify_ok: Some(scan.is_ok()),
            verify_message: message.clone(),
        });
        entries.push(RescanEntry {
            path,
            status: status.to_string(),
            message,
        });
    }
    // Two files with one id (a copy, or a damaged header): list the first, report the others.
    let mut seen = std::collections::HashSet::new();
    let mut unique = Vec::with_capacity(records.len());
    for r in records {
        if seen.insert(r.id.clone()) {
            unique.push(r);
        } else if let Some(e) = entries.iter_mut().find(|e| e.path == r.path) {
            e.status = "duplicate_id".into();
            e.message = Some(format!(
                "Another file in the folder has the same backup id {}; only the first is listed",
                r.id
            ));
        }
    }
    vault.catalog.replace_all(&unique).await?;
    Ok(entries)
}

/// What [`rebuild_list`] did.
pub struct Rebuilt {
    /// The vault on the rebuilt list.
    pub vault: Vault,
    /// The files found.
    pub entries: Vec<RescanEntry>,
    /// Where a damaged catalog was moved to (its run history stays readable there).
    pub set_aside: Option<PathBuf>,
}

/// [`rescan`] for a list that may itself be unusable: when the catalog at `catalog` is damaged
/// or foreign (it does not open, or its rows cannot be read), it is moved aside (never deleted)
/// and a new one is built from the backup files in `dir`. A catalog that fails for another
/// reason (a full disk, a lock) is left where it is, with that error.
///
/// # Errors
/// As [`rescan`]; I/O errors moving the damaged catalog aside.
pub async fn rebuild_list(
    dir: PathBuf,
    catalog: &Path,
    keys: Arc<Keys>,
    progress: Arc<dyn Progress>,
) -> Result<Rebuilt> {
    let failed = match Vault::open_shared(dir.clone(), catalog, keys.clone()).await {
        Ok(vault) => match rescan(&vault, progress.clone()).await {
            Ok(entries) => {
                return Ok(Rebuilt {
                    vault,
                    entries,
                    set_aside: None,
                })
            }
            Err(e) => {
                vault.catalog.close().await;
                e
            }
        },
        Err(e) => e,
    };
    if !failed.is_damaged() {
        return Err(failed);
    }
    let set_aside = Catalog::set_aside(catalog)?;
    let vault = Vault::open_shared(dir, catalog, keys).await?;
    let entries = rescan(&vault, progress).await?;
    Ok(Rebuilt {
        vault,
        entries,
        set_aside,
    })
}

/// Remove the backups `policy` no longer keeps (files and catalog entries); with `dry_run`,
/// only say which. Recorded in the run history.
///
/// # Errors
/// `Catalog` and I/O errors.
pub async fn prune(
    vault: &Vault,
    policy: &Retention,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Prune>> {
    prune_locked(&vault.lock()?, policy, dry_run, now).await
}

/// [`prune`] under the run lock the caller holds (after a scheduled backup).
pub(super) async fn prune_locked(
    vault: &Locked<'_>,
    policy: &Retention,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Prune>> {
    let started = Utc::now();
    let plan = retention::plan(&vault.catalog.list().await?, policy, now);
    if dry_run {
        return Ok(plan);
    }
    let mut done = Vec::new();
    let mut result = Ok(());
    for p in plan {
        match delete_locked(vault, &p.id).await {
            Ok(_) => done.push(p),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let summary = format!(
        "pruned {} backup(s){}",
        done.len(),
        if done.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                done.iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    vault
        .record_run(run_record(
            Operation::Prune,
            None,
            started,
            &result,
            None,
            Some(summary),
        ))
        .await;
    result.map(|()| done)
}
