//! The app's state: the settings, the vault (opened on first use), the one job that may run at
//! a time, the failure waiting to be acknowledged, the files the user picked in a native
//! dialog (the only files outside the backup folder the web view may name), the folders the
//! user picked as the backup folder (the only new backup folders it may save), the keychain, and
//! the [`Shell`] — what the desktop around the window can do (tray, notifications, file
//! dialogs, autostart), injected so the commands run the same under Tauri's mock runtime,
//! where there is no desktop.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use schoolvault_engine::config::Config;
use schoolvault_engine::jobs::{self, Cancel, Vault};
use schoolvault_engine::keychain::{Keychain, Keys, OsKeychain};
use schoolvault_engine::source::postgres::PgTarget;
use schoolvault_engine::source::Database;
use zeroize::Zeroizing;

use crate::dto::{CommandError, Failure};

/// How the tray icon looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Nothing running, last run fine.
    Idle,
    /// A backup or restore is running.
    Running,
    /// The last run failed (until acknowledged).
    Failed,
}

/// What the desktop around the window does for us.
pub trait Shell: Send + Sync {
    /// Show `look` in the tray.
    fn look(&self, look: Look);
    /// Update the tray menu's status lines.
    fn status_lines(&self, last: &str, next: &str);
    /// A desktop notification.
    fn notify(&self, title: &str, body: &str);
    /// Ask for a backup file to restore (native dialog); the answer arrives on the receiver.
    fn pick_backup_file(&self) -> Picked;
    /// Ask for the CA certificate (PEM) that checks the database server (native dialog).
    fn pick_ca_file(&self) -> Picked;
    /// Ask for the folder to keep backups in (native folder dialog, opened at `current`).
    fn pick_backup_dir(&self, current: &Path) -> Picked;
    /// Ask where to save the key's recovery copy (native dialog).
    fn pick_recovery_file(&self, suggested: &str) -> Picked;
    /// Ask for a file holding a key to import: a recovery sheet, or the old system's settings
    /// file (native dialog). The key never passes through the web view.
    fn pick_key_file(&self) -> Picked {
        picked(injected("SCHOOLVAULT_PICK_KEY_FILE"))
    }
    /// Show the key's hex once, in a native dialog (never in the web view).
    fn show_secret(&self, title: &str, text: &str);
    /// Turn start-at-login on or off.
    fn autostart(&self, on: bool) -> Result<(), String>;
    /// What the window shows changed (a job started or ended, a failure, the next run): it
    /// looks again at once, instead of asking every few seconds.
    fn changed(&self) {}
}

/// The answer of a file dialog (`None`: cancelled).
pub type Picked = tokio::sync::oneshot::Receiver<Option<PathBuf>>;

/// An answer already known.
pub fn picked(answer: Option<PathBuf>) -> Picked {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(answer);
    rx
}

/// A dialog is answered from `var` when it is set (for the end-to-end tests, which cannot
/// click in a native dialog) — in debug builds only. The end-to-end test runs the debug build;
/// the apps people install are release builds, where these variables do nothing: a file
/// "picked" this way would count as chosen by the user (see [`AppState::allowed_file`]), a
/// folder as the backup folder the user chose (see [`AppState::allowed_backup_dir`]), and the
/// recovery copy of the key would be written wherever the variable says.
pub fn injected(var: &str) -> Option<PathBuf> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// No desktop (tests under the mock runtime): every call does nothing; dialogs are answered
/// from `SCHOOLVAULT_PICK_FILE` / `SCHOOLVAULT_PICK_CA_FILE` / `SCHOOLVAULT_PICK_DIR` /
/// `SCHOOLVAULT_SAVE_FILE` (debug builds only, see [`injected`]).
pub struct Headless;

impl Shell for Headless {
    fn look(&self, _: Look) {}
    fn status_lines(&self, _: &str, _: &str) {}
    fn notify(&self, _: &str, _: &str) {}
    fn pick_backup_file(&self) -> Picked {
        picked(injected("SCHOOLVAULT_PICK_FILE"))
    }
    fn pick_ca_file(&self) -> Picked {
        picked(injected("SCHOOLVAULT_PICK_CA_FILE"))
    }
    fn pick_backup_dir(&self, _: &Path) -> Picked {
        picked(injected("SCHOOLVAULT_PICK_DIR"))
    }
    fn pick_recovery_file(&self, _: &str) -> Picked {
        picked(injected("SCHOOLVAULT_SAVE_FILE"))
    }
    fn show_secret(&self, _: &str, _: &str) {}
    fn autostart(&self, _: bool) -> Result<(), String> {
        Ok(())
    }
}

/// The job running now.
pub struct Job {
    /// What it is, for the status line (`backup`, `restore`…).
    pub what: String,
    /// Stops it.
    pub cancel: Cancel,
}

/// Everything the commands share.
pub struct AppState {
    /// The settings file.
    pub config_path: PathBuf,
    /// The catalog.
    pub catalog_path: PathBuf,
    config: Mutex<Config>,
    vault: tokio::sync::Mutex<Option<(PathBuf, Arc<Vault>)>>,
    job: Mutex<Option<Job>>,
    failure: Mutex<Option<Failure>>,
    next_run: Mutex<Option<DateTime<Utc>>>,
    /// Wakes the scheduler when the settings change.
    pub schedule_changed: tokio::sync::Notify,
    shell: Arc<dyn Shell>,
    keychain: Arc<dyn Keychain>,
    /// Files the user chose in a native dialog during this session (canonical paths).
    picked: Mutex<HashSet<PathBuf>>,
    /// Folders the user chose as the backup folder in the native dialog during this session
    /// (as the dialog answered them).
    picked_dirs: Mutex<HashSet<PathBuf>>,
}

/// The state's keychain, shared with the [`Keys`] (which want a box of their own).
struct SharedKeychain(Arc<dyn Keychain>);

impl Keychain for SharedKeychain {
    fn get(&self, account: &str) -> schoolvault_engine::Result<Option<Zeroizing<String>>> {
        self.0.get(account)
    }
    fn set(&self, account: &str, secret: &str) -> schoolvault_engine::Result<()> {
        self.0.set(account, secret)
    }
    fn delete(&self, account: &str) -> schoolvault_engine::Result<()> {
        self.0.delete(account)
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Releases the job slot when the job ends, however it ends.
pub struct JobSlot<'a>(&'a AppState);

impl Drop for JobSlot<'_> {
    fn drop(&mut self) {
        *locked(&self.0.job) = None;
        self.0.shell.changed();
    }
}

impl AppState {
    /// The state for the settings at `config_path` and the catalog at `catalog_path`.
    ///
    /// # Errors
    /// An invalid settings file.
    pub fn new(
        config_path: PathBuf,
        catalog_path: PathBuf,
        shell: Box<dyn Shell>,
    ) -> Result<AppState, CommandError> {
        let config = Config::load(&config_path)?;
        if let Err(e) = config.validate() {
            // The app still starts (backups go on); Settings refuses to save until it is fixed.
            eprintln!("warning: the settings file {}: {e}", config_path.display());
        }
        Ok(AppState {
            config_path,
            catalog_path,
            config: Mutex::new(config),
            vault: tokio::sync::Mutex::new(None),
            job: Mutex::new(None),
            failure: Mutex::new(None),
            next_run: Mutex::new(None),
            schedule_changed: tokio::sync::Notify::new(),
            shell: Arc::from(shell),
            keychain: Arc::new(OsKeychain),
            picked: Mutex::new(HashSet::new()),
            picked_dirs: Mutex::new(HashSet::new()),
        })
    }

    /// The same state with another keychain than the operating system's (tests).
    #[must_use]
    pub fn with_keychain(mut self, keychain: Arc<dyn Keychain>) -> AppState {
        self.keychain = keychain;
        self
    }

    /// The keychain (passwords, keys).
    pub fn keychain(&self) -> &dyn Keychain {
        self.keychain.as_ref()
    }

    /// The keychain, to hand to a job running on another thread.
    pub fn keychain_handle(&self) -> Arc<dyn Keychain> {
        self.keychain.clone()
    }

    /// Remember a file the user chose in a native dialog: the web view may name it from now on.
    pub fn remember_picked(&self, path: &Path) {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        locked(&self.picked).insert(path);
    }

    /// `path`, as the web view named it, if SchoolVault may open it: a file the user chose in a
    /// native dialog during this session, or one inside the configured backup folder. Returns
    /// the canonical path (symbolic links and `..` resolved), to be used from then on.
    ///
    /// # Errors
    /// `invalid_input` for any other path (one that does not exist included).
    pub fn allowed_file(&self, path: &Path) -> Result<PathBuf, CommandError> {
        let dir = self.config().backup_dir()?;
        let refused = || {
            CommandError::from(schoolvault_engine::Error::new(
                schoolvault_engine::ErrorKind::InvalidInput,
                format!(
                    "SchoolVault opens only files you chose in its file dialog or files in the backup folder {}, and {} is neither",
                    dir.display(),
                    path.display()
                ),
                "Choose it with the app's button (Restore from file…, or Choose… for a CA file), or copy it into the backup folder",
            ))
        };
        let real = std::fs::canonicalize(path).map_err(|_| refused())?;
        if !real.is_file() {
            return Err(refused());
        }
        let in_folder = std::fs::canonicalize(&dir).is_ok_and(|d| real.starts_with(d));
        if in_folder || locked(&self.picked).contains(&real) {
            Ok(real)
        } else {
            Err(refused())
        }
    }

    /// Remember a folder the user chose as the backup folder in the native dialog: the
    /// settings may be saved with it from now on.
    pub fn remember_picked_dir(&self, dir: &Path) {
        locked(&self.picked_dirs).insert(dir.to_path_buf());
    }

    /// `dir`, as the web view sent it for the backup folder, if it may be saved: the current
    /// backup folder, the default one, or a folder the user chose in the native folder dialog
    /// during this session. Anything else is refused: the backup folder decides which files
    /// the web view may name ([`AppState::allowed_file`]), so a script in the web view must
    /// not be able to set it (to `/`, say).
    ///
    /// # Errors
    /// `invalid_input` for any other folder.
    pub fn allowed_backup_dir(&self, dir: &Path) -> Result<PathBuf, CommandError> {
        let current = self.config().backup_dir()?;
        let default = schoolvault_engine::config::default_backup_dir().ok();
        if dir == current
            || default.as_deref() == Some(dir)
            || locked(&self.picked_dirs).contains(dir)
        {
            return Ok(dir.to_path_buf());
        }
        Err(CommandError::from(schoolvault_engine::Error::new(
            schoolvault_engine::ErrorKind::InvalidInput,
            format!(
                "The backup folder is changed only with the Choose… button (SchoolVault's folder dialog), and {} was not chosen there; the backup folder stays {}",
                dir.display(),
                current.display()
            ),
            "Click Choose… next to the backup folder, pick the folder, then save the settings",
        )))
    }

    /// The desktop.
    pub fn shell(&self) -> &dyn Shell {
        self.shell.as_ref()
    }

    /// The shell, to hand to a job running on another thread.
    pub fn shell_handle(&self) -> Arc<dyn Shell> {
        self.shell.clone()
    }

    /// A copy of the settings.
    pub fn config(&self) -> Config {
        locked(&self.config).clone()
    }

    /// Change the settings and save them.
    ///
    /// # Errors
    /// Writing the file.
    pub fn update_config(&self, change: impl FnOnce(&mut Config)) -> Result<Config, CommandError> {
        let mut c = locked(&self.config);
        let mut next = c.clone();
        change(&mut next);
        next.save(&self.config_path)?;
        *c = next.clone();
        Ok(next)
    }

    /// The folder of the catalog, where the app's markers live (the key's owed recovery copy).
    pub fn data_dir(&self) -> PathBuf {
        self.catalog_path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    }

    /// The keys (keychain, or the `BACKUP_ENCRYPTION_KEY` override).
    ///
    /// # Errors
    /// An invalid override.
    pub fn keys(&self) -> Result<Keys, CommandError> {
        Ok(Keys::new(
            None,
            Box::new(SharedKeychain(self.keychain.clone())),
        )?)
    }

    /// The vault, opened on first use and again when the backup folder changed.
    ///
    /// # Errors
    /// The catalog cannot be opened.
    pub async fn vault(&self) -> Result<Arc<Vault>, CommandError> {
        let dir = self.config().backup_dir()?;
        let mut slot = self.vault.lock().await;
        if let Some((d, v)) = slot.as_ref() {
            if *d == dir {
                return Ok(v.clone());
            }
        }
        let vault = Arc::new(Vault::open(dir.clone(), &self.catalog_path, self.keys()?).await?);
        *slot = Some((dir, vault.clone()));
        Ok(vault)
    }

    /// Rebuild the list of backups from the backup folder's files (a damaged catalog moved
    /// aside first) and use it from now on. The vault in use is closed first: what reads it
    /// finishes, what comes after opens the rebuilt one.
    ///
    /// # Errors
    /// As the engine's `rebuild_list`.
    pub async fn rebuild_list(
        &self,
        progress: Arc<dyn schoolvault_engine::progress::Progress>,
    ) -> Result<(Vec<jobs::RescanEntry>, Option<PathBuf>), CommandError> {
        let dir = self.config().backup_dir()?;
        let old = self.vault.lock().await.take();
        if let Some((_, v)) = old {
            v.catalog.close().await;
        }
        let (catalog, keys) = (self.catalog_path.clone(), Arc::new(self.keys()?));
        let rebuilt = jobs::rebuild_list(dir.clone(), &catalog, keys, progress).await?;
        *self.vault.lock().await = Some((dir, Arc::new(rebuilt.vault)));
        Ok((rebuilt.entries, rebuilt.set_aside))
    }

    /// The configured database, its password from the keychain.
    ///
    /// # Errors
    /// `not_configured` before set-up; keychain errors.
    pub fn target(&self) -> Result<PgTarget, CommandError> {
        match self.database()? {
            Database::Postgres(t) => Ok(t),
            Database::MariaDb(t) => Err(CommandError::new(
                schoolvault_engine::ErrorKind::InvalidInput,
                format!(
                    "This needs a PostgreSQL database, and {} is MariaDB/MySQL.",
                    t.describe()
                ),
            )),
        }
    }

    /// The configured database, of either engine, with its saved password.
    ///
    /// # Errors
    /// `not_configured` before set-up; keychain errors.
    pub fn database(&self) -> Result<Database, CommandError> {
        let config = self.config();
        let db = config.database.as_ref().ok_or_else(|| {
            CommandError::new(
                crate::dto::AppErrorCode::NotConfigured,
                "No database is set up yet. Open Settings and enter the school database's connection.",
            )
        })?;
        Ok(db.database_with(self.keychain())?)
    }

    /// Take the job slot for `what`.
    ///
    /// # Errors
    /// `busy` while another job runs.
    pub fn start_job(&self, what: &str) -> Result<(JobSlot<'_>, Cancel), CommandError> {
        let mut job = locked(&self.job);
        if let Some(j) = job.as_ref() {
            return Err(CommandError::new(
                schoolvault_engine::ErrorKind::Busy,
                format!(
                    "A {} is running. Wait for it to finish (or cancel it), then try again.",
                    j.what
                ),
            ));
        }
        let cancel = Cancel::default();
        *job = Some(Job {
            what: what.to_string(),
            cancel: cancel.clone(),
        });
        drop(job);
        self.shell.changed();
        Ok((JobSlot(self), cancel))
    }

    /// What runs now.
    pub fn running(&self) -> Option<String> {
        locked(&self.job).as_ref().map(|j| j.what.clone())
    }

    /// Cancel the running job; false when none runs.
    pub fn cancel_job(&self) -> bool {
        match locked(&self.job).as_ref() {
            Some(j) => {
                j.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Remember a failure until the user acknowledges it; the tray turns red.
    pub fn set_failure(&self, f: Option<Failure>) {
        self.shell.look(if f.is_some() {
            Look::Failed
        } else {
            Look::Idle
        });
        *locked(&self.failure) = f;
        self.shell.changed();
    }

    /// The failure waiting to be acknowledged.
    pub fn failure(&self) -> Option<Failure> {
        locked(&self.failure).clone()
    }

    /// The next scheduled run.
    pub fn next_run(&self) -> Option<DateTime<Utc>> {
        *locked(&self.next_run)
    }

    /// Set the next scheduled run.
    pub fn set_next_run(&self, t: Option<DateTime<Utc>>) {
        let was = std::mem::replace(&mut *locked(&self.next_run), t);
        if was != t {
            self.shell.changed();
        }
    }
}
