//! A catalog that cannot be used: its errors (a damaged or foreign file says so, with what
//! rebuilds it; any other failure points at permissions and free space), and moving a damaged
//! file aside so a new one can be built from the backup files.

use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::error::{Cause, Error, ErrorKind, Result};

use super::Catalog;

/// What the desktop app says to do about a damaged list: its own button for `rescan`.
pub const REBUILD_IN_APP: &str =
    "Rebuild it in Settings → Backup folder → Rebuild the list from the folder (the backup files are not touched)";

/// Whether SQLite said the file is damaged (SQLITE_CORRUPT) or no database (SQLITE_NOTADB):
/// rebuilding helps there, not free space or permissions.
pub(crate) fn is_damage(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 11 | 26))
}

pub(super) fn catalog_error(err: &sqlx::Error, path: &Path) -> Error {
    if is_damage(err) {
        return Error::new(
            ErrorKind::Catalog,
            format!("The backup catalog {} is damaged: {err}", path.display()),
            "Run `schoolvault rescan` to set it aside and rebuild the list from the backup files",
        )
        .in_app(REBUILD_IN_APP)
        .with_cause(Cause::Damaged);
    }
    Error::new(
        ErrorKind::Catalog,
        format!("The backup catalog {} failed: {err}", path.display()),
        "Check the folder's permissions and free space; `schoolvault rescan` rebuilds the catalog from the backup files",
    )
    .in_app("Check the backup folder's permissions and free space, then try again")
}

impl Catalog {
    /// Move the catalog at `path` that cannot be used out of the way, with its journal files,
    /// so a new one can be built from the backup files; returns where it went. Nothing is
    /// deleted: its run history stays readable there. `Ok(None)` when there is no file.
    ///
    /// # Errors
    /// I/O errors renaming the files.
    pub fn set_aside(path: &Path) -> Result<Option<PathBuf>> {
        if !path.exists() {
            return Ok(None);
        }
        let stamp = Utc::now().format("%Y%m%d-%H%M%S");
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".damaged-{stamp}"));
        let aside = PathBuf::from(aside);
        // The journals first: a catalog file moved without its WAL would lose what the WAL holds.
        for suffix in ["-wal", "-shm"] {
            let mut from = path.as_os_str().to_owned();
            from.push(suffix);
            let mut to = aside.as_os_str().to_owned();
            to.push(suffix);
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::io(
                        format_args!("moving {} aside", PathBuf::from(from).display()),
                        &e,
                    ))
                }
            }
        }
        std::fs::rename(path, &aside)
            .map_err(|e| Error::io(format_args!("moving {} aside", path.display()), &e))?;
        Ok(Some(aside))
    }
}
