//! Writing a backup in the old system's v1 layout (`schoolvault export --format v1`), for a
//! school that must hand a file to a tool that only reads that.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::legacy::{self};
use crate::source::postgres::PgTarget;
use crate::storage::PartialFile;

use crate::jobs::backup::file_stem;
use crate::jobs::Vault;

/// What `export --format v1` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportOutcome {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Records written.
    pub records: u64,
    /// The key it is encrypted with (the old system must be given this key).
    pub key_fingerprint: String,
}

/// Write the database as an old-system (v1) backup file, so a school can go back to its old
/// system: to `out`, or into the backup folder. Written atomically (`.partial`, sync, rename).
///
/// # Errors
/// `NoKey`, connection errors, `TargetMismatch` for a database without the ERP's tables, I/O.
pub async fn export_v1(
    vault: &Vault,
    target: &PgTarget,
    out: Option<&Path>,
) -> Result<ExportOutcome> {
    // It writes into the backup folder by default: one run at a time there.
    let vault = &vault.lock()?;
    let (key, origin) = vault.keys.current()?;
    crate::keychain::refuse_public_key(&key, &origin)?;
    let (bytes, records) = legacy::export(target, &key).await?;
    let (dir, name) = match out {
        Some(p) => (
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        "The output path has no file name",
                        "Give a file name, e.g. --out backup.enc",
                    )
                })?,
        ),
        None => (
            vault.dir.clone(),
            format!(
                "{}-v1-{}.enc",
                file_stem(&target.database()),
                Utc::now().format("%Y%m%d-%H%M%S")
            ),
        ),
    };
    let (partial, mut file) = PartialFile::create(&dir, &name)?;
    file.write_all(&bytes)
        .map_err(|e| Error::io(format_args!("writing {name}"), &e))?;
    let path = partial.commit(file)?;
    Ok(ExportOutcome {
        path,
        size: bytes.len() as u64,
        records,
        key_fingerprint: key.fingerprint().to_string(),
    })
}
