//! The schedule while the app runs: at start (catching up a slot missed while the computer was
//! off), then at every slot, it makes the engine's one look at the schedule (`jobs::look`, as `schedule run-due` does), which holds the run lock shared
//! with the CLI and looks at the history again, so a slot never runs twice. It wakes at least
//! every 30 s, so a computer that slept catches up soon after it wakes, and at once when the
//! settings change. The tray shows the last and the next run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Local, Utc};
use schoolvault_engine::catalog::Operation;
use schoolvault_engine::jobs::{self, LookSettings};
use schoolvault_engine::progress::{Progress, ProgressEvent};
use schoolvault_engine::schedule::Schedule;

use crate::commands::{detached, finish};
use crate::dto::CommandError;
use crate::state::{AppState, Look, Shell};
use schoolvault_engine::keychain::Keychain;

/// Run the schedule until the app exits.
pub async fn run(state: &AppState) {
    loop {
        let wait = match tick(state).await {
            Ok(next) => next,
            Err(_) => Duration::from_secs(30),
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = state.schedule_changed.notified() => {}
        }
    }
}

/// One look at the schedule (the engine's [`jobs::look`], the same `schoolvault schedule
/// run-due` makes): run what is due, say when the next run is, and how long to sleep.
///
/// # Errors
/// A schedule that cannot be read; a backup's failure is shown (tray, banner), not returned.
pub async fn tick(state: &AppState) -> Result<Duration, CommandError> {
    let config = state.config();
    if !config.schedule.enabled || config.database.is_none() {
        state.set_next_run(None);
        state
            .shell()
            .status_lines(&last_line(state).await, "Next backup: not scheduled");
        return Ok(Duration::from_secs(30));
    }
    let schedule = Schedule::parse(&config.schedule.cron, config.schedule.timezone.as_deref())?;
    if state.running().is_none() {
        let (slot, cancel) = state.start_job("scheduled backup")?;
        let vault = state.vault().await?;
        let result: Result<jobs::DueOutcome, CommandError> = async {
            let target = state.database()?;
            let tray = TrayProgress::new(state.shell_handle());
            let keychain: Arc<dyn Keychain> = state.keychain_handle();
            let job_cancel = cancel.clone();
            detached(move || async move {
                // The settings file's look, built as the CLI builds it.
                let look = LookSettings::from_config(&config, keychain)?;
                let plan = look.look(&target, job_cancel);
                let done = jobs::look(&vault, &plan, Utc::now(), tray).await;
                Ok(outcome_of(done))
            })
            .await?
        }
        .await;
        drop(slot);
        match &result {
            // Nothing was due: leave the tray as it was (a failure stays red until seen).
            Ok(d) if d.backup.is_none() => {
                if state.failure().is_none() {
                    state.shell().look(Look::Idle);
                }
            }
            // Another run (the CLI) holds the lock: it will report its own outcome.
            Err(e) if e.code == schoolvault_engine::ErrorKind::Busy.into() => {}
            _ => finish(state, "scheduled backup", &result, false, true, &cancel),
        }
    }
    let next = schedule.next_after(Utc::now())?;
    state.set_next_run(Some(next));
    state.shell().status_lines(
        &last_line(state).await,
        &format!(
            "Next backup: {}",
            next.with_timezone(&Local).format("%a %d %b %H:%M")
        ),
    );
    let until = (next - Utc::now()).to_std().unwrap_or_default();
    Ok(until.min(Duration::from_secs(30)))
}

/// How the app shows a look: the backup's error, or the weekly test restore's (the newest
/// backup may not restore), each with the reason its email could not be sent.
fn outcome_of(done: jobs::LookOutcome) -> Result<jobs::DueOutcome, CommandError> {
    match (done.run, done.test_restore_error) {
        (Err(e), _) => Err(CommandError::from(&e).with_email_error(done.email_error)),
        (Ok(_), Some(e)) => {
            let e = e.context("The weekly test restore of the newest backup failed");
            Err(CommandError::from(&e).with_email_error(done.email_error))
        }
        (Ok(d), None) => Ok(d),
    }
}

/// The tray's first status line: the last backup and, when the weekly test restore is on, how
/// the last one went.
async fn last_line(state: &AppState) -> String {
    let Ok(vault) = state.vault().await else {
        return "Last backup: unknown".into();
    };
    let runs = vault.catalog.runs(20).await.unwrap_or_default();
    let mut line = match runs.iter().find(|r| r.operation == Operation::Backup) {
        Some(r) => format!(
            "Last backup: {} — {}",
            r.started_at.with_timezone(&Local).format("%a %d %b %H:%M"),
            if r.outcome.is_success() {
                "succeeded"
            } else {
                "FAILED"
            }
        ),
        None => "Last backup: none yet".into(),
    };
    if state.config().schedule.test_restore {
        if let Some(mark) = jobs::last_test_restore(&vault) {
            line.push_str(" · ");
            line.push_str(&test_restore_note(&mark));
        }
    }
    for behind in crate::commands::connection::offsite_behind(state).await {
        line.push_str(" · ");
        line.push_str(&behind);
    }
    if let Ok((key, _)) = state
        .keys()
        .and_then(|k| k.current().map_err(|e| CommandError::from(&e)))
    {
        let fp = key.fingerprint().to_string();
        if schoolvault_engine::keychain::recovery_pending(&state.data_dir(), &fp) {
            line.push_str(" · the key's recovery copy is NOT saved: open SchoolVault");
        }
    }
    line
}

/// The last routine test restore as the tray says it: `test restore: passed Mon 30 Nov`,
/// `test restore FAILED Mon 30 Nov`, or `test restore: not possible (no CREATEDB)`.
pub fn test_restore_note(mark: &jobs::TestRestoreMark) -> String {
    let day = mark.at.with_timezone(&Local).format("%a %d %b");
    if mark.unavailable {
        "test restore: not possible (no CREATEDB)".into()
    } else if mark.ok {
        format!("test restore: passed {day}")
    } else {
        format!("test restore FAILED {day}")
    }
}

/// The tray turns to "working" when a scheduled backup really starts (most looks at the
/// schedule find nothing due, and must not make the icon flicker).
struct TrayProgress {
    shell: Arc<dyn Shell>,
    shown: std::sync::atomic::AtomicBool,
}

impl TrayProgress {
    fn new(shell: Arc<dyn Shell>) -> Arc<Self> {
        Arc::new(TrayProgress {
            shell,
            shown: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

impl Progress for TrayProgress {
    fn report(&self, _event: &ProgressEvent) {
        if !self.shown.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.shell.look(Look::Running);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(ok: bool, unavailable: bool) -> jobs::TestRestoreMark {
        jobs::TestRestoreMark {
            // A fixed time, shown in this computer's time zone.
            at: chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            backup_id: "b1".into(),
            ok,
            message: "m".into(),
            unavailable,
        }
    }

    #[test]
    fn the_tray_says_how_the_last_test_restore_went() {
        let day = mark(true, false)
            .at
            .with_timezone(&Local)
            .format("%a %d %b")
            .to_string();
        assert_eq!(
            test_restore_note(&mark(true, false)),
            format!("test restore: passed {day}")
        );
        assert_eq!(
            test_restore_note(&mark(false, false)),
            format!("test restore FAILED {day}")
        );
        assert_eq!(
            test_restore_note(&mark(false, true)),
            "test restore: not possible (no CREATEDB)"
        );
    }
}
