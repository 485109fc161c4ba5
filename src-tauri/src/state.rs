//! The app's state: the settings, the vault (opened on first use), the one job that may run at
//! a time, the failure waiting to be acknowledged, and the [`Shell`] — what the desktop around
//! the window can do (tray, notifications, file dialogs, autostart), injected so the commands
//! run the same under Tauri's mock runtime, where there is no desktop.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use schoolvault_engine::config::Config;
use schoolvault_engine::jobs::{Cancel, Vault};
use schoolvault_engine::keychain::{Keys, OsKeychain};
use schoolvault_engine::source::postgres::PgTarget;

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
    /// Ask where to save the key's recovery copy (native dialog).
    fn pick_recovery_file(&self, suggested: &str) -> Picked;
    /// Show the key's hex once, in a native dialog (never in the web view).
    fn show_secret(&self, title: &str, text: &str);
    /// Turn start-at-login on or off.
    fn autostart(&self, on: bool) -> Result<(), String>;
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
/// click in a native dialog).
pub fn injected(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// No desktop (tests under the mock runtime): every call does nothing; dialogs are answered
/// from `SCHOOLVAULT_PICK_FILE` / `SCHOOLVAULT_SAVE_FILE`.
pub struct Headless;

impl Shell for Headless {
    fn look(&self, _: Look) {}
    fn status_lines(&self, _: &str, _: &str) {}
    fn notify(&self, _: &str, _: &str) {}
    fn pick_backup_file(&self) -> Picked {
        picked(injected("SCHOOLVAULT_PICK_FILE"))
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
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Releases the job slot when the job ends, however it ends.
pub struct JobSlot<'a>(&'a AppState);

impl Drop for JobSlot<'_> {
    fn drop(&mut self) {
        *locked(&self.0.job) = None;
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
        })
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

    /// The keys (keychain, or the `BACKUP_ENCRYPTION_KEY` override).
    ///
    /// # Errors
    /// An invalid override.
    pub fn keys(&self) -> Result<Keys, CommandError> {
        Ok(Keys::new(None, Box::new(OsKeychain))?)
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

    /// The configured database, its password from the keychain.
    ///
    /// # Errors
    /// `not_configured` before set-up; keychain errors.
    pub fn target(&self) -> Result<PgTarget, CommandError> {
        let config = self.config();
        let db = config.database.as_ref().ok_or_else(|| {
            CommandError::new(
                "not_configured",
                "No database is set up yet. Open Settings and enter the school database's connection.",
            )
        })?;
        Ok(db.target_with(&OsKeychain)?)
    }

    /// Take the job slot for `what`.
    ///
    /// # Errors
    /// `busy` while another job runs.
    pub fn start_job(&self, what: &str) -> Result<(JobSlot<'_>, Cancel), CommandError> {
        let mut job = locked(&self.job);
        if let Some(j) = job.as_ref() {
            return Err(CommandError::new(
                "busy",
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
        *locked(&self.next_run) = t;
    }
}
