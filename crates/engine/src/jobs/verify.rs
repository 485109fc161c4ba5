//! Checking a backup without a database: verify (read it completely and check every table's
//! rows and checksum), inspect (header and manifest), and decrypt (the plain `.tar.gz`).

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use crate::archive::{self, read_preamble, Header, Manifest};
use crate::catalog::Operation;
use crate::error::{Error, Result};
use crate::legacy::{self};
use crate::progress::Progress;

use crate::jobs::reading::{
    is_v2, open_archive, open_v1, read_manifest, same_file, scan_file, v1_warnings,
};
use crate::jobs::{join_error, run_record, Vault};

/// What a verification found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The backup's id.
    pub backup_id: String,
    /// The file.
    pub path: PathBuf,
    /// Tables checked.
    pub tables: u64,
    /// Rows checked.
    pub rows: u64,
    /// Bytes of table data checked.
    pub bytes: u64,
    /// 2 for a SchoolVault archive, 1 for an old-system file.
    pub format: u16,
    /// Things the person should know.
    pub warnings: Vec<String>,
}

/// What `inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// The file.
    pub path: PathBuf,
    /// 3 (or 2) for a SchoolVault archive, 1 for an old-system file.
    pub format: u16,
    /// The unencrypted header (formats 2 and 3).
    pub header: Option<Header>,
    /// What an old-system file holds (format 1).
    pub v1: Option<legacy::V1Summary>,
    /// The manifest, when the key is at hand.
    pub manifest: Option<Manifest>,
    /// Why the manifest could not be read.
    pub manifest_error: Option<String>,
}

/// Read a backup completely without touching any database: decrypt, decompress, check the
/// end record, every table's row count and checksum. Records the outcome in the catalog when
/// the backup is listed there.
///
/// # Errors
/// `WrongKey`, `Truncated`, `Damaged`, `Inconsistent`, `NotABackup`, `NotFound`.
pub async fn verify(
    vault: &Vault,
    what: &str,
    progress: Arc<dyn Progress>,
) -> Result<VerifyReport> {
    let started = Utc::now();
    let (path, record) = vault.resolve(what).await?;
    if !is_v2(&path)? {
        let report = open_v1(&path, vault.keys.clone())
            .await
            .map(|v1| VerifyReport {
                backup_id: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: path.clone(),
                tables: v1.tables.len() as u64,
                rows: v1.records(),
                bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                format: 1,
                warnings: v1_warnings(&v1),
            });
        vault
            .record_run(run_record(
                Operation::Verify,
                None,
                started,
                &report,
                None,
                None,
            ))
            .await;
        return report;
    }
    let (keys, scan_path) = (vault.keys.clone(), path.clone());
    let result =
        tokio::task::spawn_blocking(move || scan_file(&scan_path, &keys, progress.as_ref()))
            .await
            .map_err(join_error)
            .and_then(|r| r);
    let id = result
        .as_ref()
        .ok()
        .map(|s| s.header.backup_id.clone())
        .or(record.as_ref().map(|r| r.id.clone()));
    if let Some(id) = &id {
        let (ok, msg) = match &result {
            Ok(s) => (
                true,
                format!("{} tables, {} rows checked", s.tables, s.rows),
            ),
            Err(e) => (false, e.to_string()),
        };
        // Only the listed backup whose file this is: a copy elsewhere with the same id says
        // nothing about the listed file.
        let listed = vault.catalog.get(id).await?;
        if listed.is_some_and(|r| same_file(&r.path, &path)) {
            vault.catalog.set_verified(id, Utc::now(), ok, &msg).await?;
        }
    }
    let report = result.map(|s| VerifyReport {
        backup_id: s.header.backup_id,
        path,
        tables: s.tables,
        rows: s.rows,
        bytes: s.bytes,
        format: s.version,
        warnings: Vec::new(),
    });
    vault
        .record_run(run_record(
            Operation::Verify,
            None,
            started,
            &report,
            id,
            None,
        ))
        .await;
    report
}

/// The header, and the manifest when the key is at hand.
///
/// # Errors
/// `NotFound`, `NotABackup`, `Damaged`, `Truncated` (of the header).
pub async fn inspect(vault: &Vault, what: &str) -> Result<InspectReport> {
    let (path, _) = vault.resolve(what).await?;
    if !is_v2(&path)? {
        let v1 = open_v1(&path, vault.keys.clone()).await?;
        return Ok(InspectReport {
            path,
            format: 1,
            header: None,
            v1: Some(v1.summary()),
            manifest: None,
            manifest_error: None,
        });
    }
    let file =
        File::open(&path).map_err(|e| Error::io(format_args!("opening {}", path.display()), &e))?;
    let mut r = BufReader::new(file);
    let pre = read_preamble(&mut r)?;
    let manifest = vault
        .keys
        .for_reading(pre.fingerprint())
        .and_then(|key| read_manifest(r, &pre, &key));
    Ok(InspectReport {
        path,
        format: pre.version,
        header: Some(pre.header),
        v1: None,
        manifest_error: manifest.as_ref().err().map(|e| e.to_string()),
        manifest: manifest.ok(),
    })
}

/// Write the decrypted `.tar.gz` of a backup to `out`.
///
/// # Errors
/// As [`verify`], and errors writing `out`. What was written before a `Damaged` or
/// `Truncated` error must not be trusted.
pub async fn decrypt(vault: &Vault, what: &str, out: &mut dyn Write) -> Result<u64> {
    let (path, _) = vault.resolve(what).await?;
    let (r, pre, key) = open_archive(&path, &vault.keys)?;
    let mut plain = archive::decrypted(r, &pre, &key);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = plain.read(&mut buf).map_err(|e| archive::read_error(&e))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| Error::io("writing the output", &e))?;
        total += n as u64;
    }
    out.flush()
        .map_err(|e| Error::io("writing the output", &e))?;
    Ok(total)
}
