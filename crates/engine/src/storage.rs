//! Where backup files live: the local backup folder, written atomically.
//!
//! A backup is written to `<name>.svb.partial`, synced, and only then renamed to `<name>.svb`
//! (and the folder synced), so a file with the final name is always complete. A
//! [`PartialFile`] that is dropped before [`PartialFile::commit`] removes itself: a failed or
//! cancelled backup leaves nothing behind. S3-compatible storage joins this module later.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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
        fs::create_dir_all(dir).map_err(|e| {
            Error::io(
                format_args!("creating the backup folder {}", dir.display()),
                &e,
            )
        })?;
        let fin = dir.join(name);
        let partial = dir.join(format!("{name}.partial"));
        let file = OpenOptions::new()
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
