//! Where backup files live: the local backup folder, written atomically.
//!
//! A backup is written to `<name>.svb.partial`, synced, and only then renamed to `<name>.svb`
//! (and the folder synced), so a file with the final name is always complete. A
//! [`PartialFile`] that is dropped before [`PartialFile::commit`] removes itself: a failed or
//! cancelled backup leaves nothing behind. S3-compatible storage joins this module later.
//!
//! Everything SchoolVault writes about a school (backups, `.partial` files, the catalog, the
//! settings, the administrators' list, markers, recovery sheets) is private to the user who
//! runs it: files are created mode 0600 (and set so when overwritten) and the folders we
//! create 0700, on Unix. A folder the user already had (a NAS mount, `/tmp`) keeps its mode.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Create `dir` and its missing parents, the new ones readable by this user only.
///
/// # Errors
/// The I/O error.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Options that create a file readable and writable by this user only.
pub fn private_options() -> OpenOptions {
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts
}

/// Make an existing file readable and writable by this user only (the mode given at creation
/// does not apply to a file that was already there).
///
/// # Errors
/// The I/O error.
pub fn make_private(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Write `data` to `path` atomically and privately, the same way a backup file is written
/// ([`PartialFile`]: a temporary file beside it, mode 0600, fsync, rename, fsync of the
/// folder). A crash leaves the old file or the new one, never half of either. For the settings
/// file and the markers beside the catalog.
///
/// # Errors
/// `Io` / `DiskFull`, naming `path`; the old file is then untouched.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(Error::new(
            crate::error::ErrorKind::InvalidInput,
            format!(
                "{} is not a file name SchoolVault can write",
                path.display()
            ),
            "Choose a path whose last part is a plain file name",
        ));
    };
    // A temporary name of its own: two writers of one file never share (nor remove) one.
    let (partial, mut file) = PartialFile::create_as(
        dir,
        name,
        &format!("{name}.{:08x}.partial", rand::random::<u32>()),
    )?;
    file.write_all(data)
        .map_err(|e| Error::io(format_args!("writing {}", path.display()), &e))?;
    partial.commit(file)?;
    Ok(())
}

/// A file being written under a temporary name.
pub struct PartialFile {
    partial: PathBuf,
    fin: PathBuf,
    committed: bool,
}

impl PartialFile {
    /// Create `<dir>/<name>.partial` for a file that will be `<dir>/<name>`.
    ///
    /// # Errors
    /// I/O errors (the folder cannot be created, the name exists…).
    pub fn create(dir: &Path, name: &str) -> Result<(PartialFile, File)> {
        PartialFile::create_as(dir, name, &format!("{name}.partial"))
    }

    /// Create `<dir>/<partial>` for a file that will be `<dir>/<name>`.
    ///
    /// # Errors
    /// As [`PartialFile::create`].
    pub fn create_as(dir: &Path, name: &str, partial: &str) -> Result<(PartialFile, File)> {
        create_private_dir(dir)
            .map_err(|e| Error::io(format_args!("creating the folder {}", dir.display()), &e))?;
        let fin = dir.join(name);
        let partial = dir.join(partial);
        let file = private_options()
            .write(true)
            .create_new(true)
            .open(&partial)
            .map_err(|e| Error::io(format_args!("creating {}", partial.display()), &e))?;
        Ok((
            PartialFile {
                partial,
                fin,
                committed: false,
            },
            file,
        ))
    }

    /// The final path.
    pub fn final_path(&self) -> &Path {
        &self.fin
    }

    /// Sync `file` (the one [`PartialFile::create`] returned) and rename it to its final name.
    ///
    /// # Errors
    /// I/O errors; the partial file is then removed.
    pub fn commit(mut self, file: File) -> Result<PathBuf> {
        file.sync_all()
            .map_err(|e| Error::io(format_args!("syncing {}", self.partial.display()), &e))?;
        drop(file);
        fs::rename(&self.partial, &self.fin)
            .map_err(|e| Error::io(format_args!("renaming {}", self.partial.display()), &e))?;
        self.committed = true;
        if let Some(dir) = self.fin.parent() {
            // Make the rename durable; not every platform can open a folder, so best effort.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(self.fin.clone())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.partial);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn private_files_and_folders() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        let file = dir.join("settings.toml");
        write_private(&file, b"one").expect("write");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&file), 0o600);
        // Overwriting a file someone made world-readable makes it private again.
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&file, b"two").expect("write");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(fs::read(&file).expect("read"), b"two");
        // A folder that was already there keeps its mode.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        create_private_dir(tmp.path()).expect("exists");
        assert_eq!(mode(tmp.path()), 0o755);
        let (partial, f) =
            PartialFile::create(&tmp.path().join("backups"), "x.svb").expect("create");
        assert_eq!(mode(&tmp.path().join("backups/x.svb.partial")), 0o600);
        let done = partial.commit(f).expect("commit");
        assert_eq!(mode(&done), 0o600);
        assert_eq!(mode(&tmp.path().join("backups")), 0o700);
    }
}
