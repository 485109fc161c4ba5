//! Default places: the platform's data directory for the catalog and the backup folder.
//! (Profiles in TOML, shared by the CLI and the app, join this module with the desktop app.)

use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result};

fn data_dir() -> Result<PathBuf> {
    directories::ProjectDirs::from("org", "SchoolVault", "SchoolVault")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "This computer's data folder cannot be found (no home directory)",
                "Give the folders explicitly with --dir and --catalog",
            )
        })
}

/// The default backup folder: `<data dir>/backups`.
///
/// # Errors
/// `InvalidInput` when there is no home directory.
pub fn default_backup_dir() -> Result<PathBuf> {
    Ok(data_dir()?.join("backups"))
}

/// The default catalog: `<data dir>/catalog.sqlite`.
///
/// # Errors
/// `InvalidInput` when there is no home directory.
pub fn default_catalog() -> Result<PathBuf> {
    Ok(data_dir()?.join("catalog.sqlite"))
}
