//! The commands the window calls: each a few lines over the engine. Errors reach the UI as
//! `{code, message}` ([`CommandError`]); nothing returned carries a key or a password.
//!
//! What the web view sends is not trusted further than it must be: a file it names is opened
//! only when the user chose it in a native dialog or it is in the backup folder
//! ([`AppState::allowed_file`]), the backup folder itself changes only to one the user chose in
//! the native folder dialog ([`AppState::allowed_backup_dir`]), and a saved password goes only
//! to the server it was saved for.
//!
//! One module per screen:
//! - [`connection`]: the database connection and the demo school database;
//! - [`key`]: the encryption key;
//! - [`backups`]: the backups, running one, checking one, and the history of runs;
//! - [`restore`]: restoring, and the native file and folder dialogs;
//! - [`settings`]: the settings screen, the schedule and the email;
//! - [`offsite`]: the offsite destinations and "Sync now".
//!
//! Here: what they share, running a job ([`detached`], [`ChannelProgress`], [`finish`]).

pub mod backups;
pub mod connection;
pub mod key;
pub mod offsite;
pub mod restore;
pub mod settings;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use schoolvault_engine::jobs;
use schoolvault_engine::progress::{Phase, Progress, ProgressEvent};
use tauri::ipc::Channel;

use crate::dto::{self, CommandError, Failure};
use crate::state::AppState;

pub use backups::{
    backup_now, cancel_job, delete_backup, history, list_backups, rebuild_list, run_backup,
    test_restore_backup, verify_backup,
};
pub use connection::{create_demo, demo_offer, save_connection, status, test_connection, DEMO_DB};
pub use key::{
    key_generate, key_import, key_import_file, key_rotate, key_rotation_dismiss, key_save_recovery,
    key_show_once,
};
pub use offsite::{
    list_destinations, remove_destination, save_destination, sync_now, test_destination,
};
pub use restore::{pick_backup_dir, pick_ca_file, pick_restore_file, restore, restore_preview};
pub use settings::{
    acknowledge_failure, get_settings, save_settings, schedule_preview, send_test_email,
};

type Res<T> = Result<T, CommandError>;

/// Run an engine job to completion as its own task on the runtime, so the job finishes (and
/// leaves the backup folder and the database consistent) even if the window that started it
/// goes away. The engine's job futures are `Send`; no thread is tied up while they wait.
pub async fn detached<T, F, Fut>(make: F) -> Res<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Res<T>> + Send + 'static,
{
    tauri::async_runtime::spawn(make()).await.map_err(|e| {
        CommandError::new(
            schoolvault_engine::ErrorKind::Internal,
            format!("The job stopped unexpectedly ({e}). Nothing was changed; please report this."),
        )
    })?
}

/// Progress events to the window's channel, at most ten a second (phase changes always).
pub struct ChannelProgress {
    channel: Channel<dto::Progress>,
    last: Mutex<(Option<Instant>, Option<Phase>)>,
}

impl ChannelProgress {
    /// Report to `channel`.
    pub fn new(channel: Channel<dto::Progress>) -> Arc<Self> {
        Arc::new(ChannelProgress {
            channel,
            last: Mutex::new((None, None)),
        })
    }
}

impl Progress for ChannelProgress {
    fn report(&self, event: &ProgressEvent) {
        let p = dto::Progress::from(event);
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = last
            .0
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if due || last.1 != Some(p.phase) {
            *last = (Some(Instant::now()), Some(p.phase));
            let _ = self.channel.send(p);
        }
    }
}

/// After a job: the tray, the failure banner and, if asked, a desktop notification of the
/// success (`tell_success`) or the failure (`tell_failure`).
pub fn finish<T>(
    state: &AppState,
    what: &str,
    result: &Res<T>,
    tell_success: bool,
    tell_failure: bool,
    cancel: &jobs::Cancel,
) {
    let by_user = cancel.is_cancelled();
    match result {
        Ok(_) => {
            state.set_failure(None);
            if tell_success {
                state
                    .shell()
                    .notify("SchoolVault", &format!("The {what} finished."));
            }
        }
        Err(_) if by_user => state.set_failure(state.failure()),
        Err(e) => {
            state.set_failure(Some(Failure {
                at: Utc::now().to_rfc3339(),
                operation: what.to_string(),
                code: e.code,
                message: e.message.clone(),
                email_error: e.email_error.clone(),
            }));
            if tell_failure {
                state
                    .shell()
                    .notify(&format!("SchoolVault: the {what} failed"), &e.message);
            }
        }
    }
}
