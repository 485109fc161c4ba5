//! The app's commands through Tauri's IPC under the mock runtime (no display): set-up,
//! backup with a progress channel, the restore warning and its typed confirmation, settings
//! validation, errors as `{code, message}` — against the real PostgreSQL. The web view is not
//! trusted with more than it needs: files it names must have been picked in a dialog (or be in
//! the backup folder), saved passwords go only where they were saved for, and an old-system
//! file anyone could have written is restored only with the person's explicit trust.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

#[path = "../../../crates/cli/tests/support/smtp.rs"]
mod smtp;
#[path = "../support/mod.rs"]
mod support;

// The tests, by what they cover (one test binary).
mod email;
mod restore;
mod schedule;
mod settings;

use support::*;

use schoolvault_app::state::{AppState, Headless, Look, Picked, Shell};
use serde_json::{json, Value};

/// A desktop that remembers what it was asked to show.
#[derive(Default, Clone)]
struct Recorded(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Recorded {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

impl Shell for Recorded {
    fn look(&self, look: Look) {
        self.push(format!("look {look:?}"));
    }
    fn status_lines(&self, last: &str, next: &str) {
        self.push(format!("status {last} | {next}"));
    }
    fn notify(&self, title: &str, body: &str) {
        self.push(format!("notify {title}: {body}"));
    }
    fn pick_backup_file(&self) -> Picked {
        schoolvault_app::state::picked(None)
    }
    fn pick_ca_file(&self) -> Picked {
        schoolvault_app::state::picked(None)
    }
    fn pick_backup_dir(&self, _: &std::path::Path) -> Picked {
        schoolvault_app::state::picked(None)
    }
    fn pick_recovery_file(&self, _: &str) -> Picked {
        schoolvault_app::state::picked(None)
    }
    fn show_secret(&self, _: &str, _: &str) {}
    fn autostart(&self, _: bool) -> Result<(), String> {
        Ok(())
    }
}

/// The scratch database a test restore of backup `id` uses: whether it is still there.
fn scratch_left(id: &str) -> bool {
    let name = format!("schoolvault_verify_{}", id.replace('-', "_")).to_lowercase();
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    ) != "0"
}

/// A settings file for a backup every minute of `db` into `dir`/backups (`extra`: more
/// `[schedule]` lines, then any other sections).
fn every_minute(dir: &std::path::Path, db: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nhost = {host:?}\nport = {port}\nname = {db:?}\nuser = \"postgres\"\n\n\
             [backup]\ndir = {backups:?}\n\n[schedule]\ncron = \"* * * * *\"\ntimezone = \"UTC\"\n{extra}",
            host = pg_host(),
            port = pg_port(),
            backups = dir.join("backups").display().to_string(),
        ),
    )
    .unwrap();
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One look at the schedule, as if the app had first looked two days ago: a new installation
/// waits for its first slot, and these tests want the last minute's slot due (a catch-up). The
/// marker is the engine's own record beside the catalog.
async fn look_installed_before(
    state: &AppState,
) -> Result<std::time::Duration, schoolvault_app::dto::CommandError> {
    let vault = state.vault().await?;
    let marker = vault
        .lock_dir
        .join(schoolvault_engine::jobs::FIRST_LOOK_FILE);
    if !marker.exists() {
        let at = chrono::Utc::now() - chrono::Duration::days(2);
        std::fs::write(
            &marker,
            serde_json::json!({ "first_look": at.to_rfc3339() }).to_string(),
        )
        .unwrap();
    }
    schoolvault_app::scheduler::tick(state).await
}
