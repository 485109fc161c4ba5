//! The backups screen: the list, running a backup ([`run_backup`], also for the tray and the
//! schedule) and emailing its failure, cancelling the running job, deleting, verifying and
//! test-restoring a backup, and the history of runs.

use std::sync::Arc;
use std::time::Duration;

use schoolvault_engine::archive::BackupKind;
use schoolvault_engine::catalog::Operation;
use schoolvault_engine::config::EmailSettings;
use schoolvault_engine::jobs::{self, BackupOptions};
use schoolvault_engine::keychain::Keychain;
use schoolvault_engine::progress::{Progress, Silent, Watched};
use schoolvault_engine::source::postgres::PgTarget;
use tauri::ipc::Channel;
use tauri::State;

use super::restore::checked_what;
use super::{detached, finish, ChannelProgress, Res};
use crate::dto::{self, BackupRow, CheckResult, CommandError, RunRow};
use crate::state::{AppState, Look};

/// The backups, newest first.
#[tauri::command]
pub async fn list_backups(state: State<'_, AppState>) -> Res<Vec<BackupRow>> {
    let vault = state.vault().await?;
    let mut list = vault.catalog.list().await?;
    list.sort_by_key(|b| std::cmp::Reverse(b.created_at));
    Ok(list.iter().map(BackupRow::from).collect())
}

/// Run a backup now, with progress on `on_progress`.
#[tauri::command]
pub async fn backup_now(
    state: State<'_, AppState>,
    on_progress: Channel<dto::Progress>,
) -> Res<BackupRow> {
    run_backup(
        &state,
        BackupKind::Manual,
        false,
        ChannelProgress::new(on_progress),
    )
    .await
}

/// The one way a backup runs in the app (window, tray, schedule): one at a time, under the
/// run lock shared with the CLI, watched by the watchdog; the tray shows it and a failure stays
/// on screen until acknowledged. `tell_desktop`: a desktop notification at the end.
pub async fn run_backup(
    state: &AppState,
    kind: BackupKind,
    tell_desktop: bool,
    progress: Arc<dyn Progress>,
) -> Res<BackupRow> {
    let (_slot, cancel) = state.start_job("backup")?;
    state.shell().look(Look::Running);
    let opts = BackupOptions {
        kind,
        cancel: cancel.clone(),
        ..BackupOptions::default()
    };
    let result: Res<BackupRow> = async {
        let vault = state.vault().await?;
        let target = state.target()?;
        let config = state.config();
        let (email, limit) = (config.email, config.schedule.watchdog());
        let keychain = state.keychain_handle();
        detached(move || async move {
            let watched = Arc::new(Watched::new(progress));
            let job = jobs::backup(&vault, &target, &opts, watched.clone());
            let out =
                jobs::watch(&vault, Operation::Backup, Some(kind), limit, &watched, job).await;
            match &out {
                Err(e) => {
                    let unsent = email_failure(
                        &vault,
                        &email,
                        keychain.as_ref(),
                        kind,
                        &target,
                        e,
                        &opts.cancel,
                    )
                    .await;
                    Ok(Err((CommandError::from(e), unsent)))
                }
                Ok(made) => {
                    if let Some(query) = email.enabled.then(|| email.admins_query()).flatten() {
                        // Keep the administrators' list fresh for a day the database is down
                        // (briefly: a locked table must not hold up the reply).
                        let _ = tokio::time::timeout(
                            Duration::from_secs(20),
                            jobs::refresh_admins(&vault, &target, &query),
                        )
                        .await;
                    }
                    Ok(Ok(BackupRow::from(&made.backup)))
                }
            }
        })
        .await
    }
    .await
    .and_then(|r| r.map_err(|(e, unsent)| e.with_email_error(unsent)));
    finish(
        state,
        &format!("{} backup", kind.as_str()),
        &result,
        tell_desktop,
        tell_desktop,
        &cancel,
    );
    result
}

/// Email the administrators about a failed backup (not one the user cancelled), when emails
/// are on. A failure to send is recorded in the history (Activity), returned to be shown
/// beside the failure, and never hides the backup's own error.
pub async fn email_failure(
    vault: &jobs::Vault,
    email: &EmailSettings,
    keychain: &dyn Keychain,
    kind: BackupKind,
    target: &PgTarget,
    error: &schoolvault_engine::Error,
    cancel: &jobs::Cancel,
) -> Option<String> {
    // Cancelled by the user, or another run holds the lock (it reports its own outcome).
    if cancel.is_cancelled() || error.kind() == schoolvault_engine::ErrorKind::Busy {
        return None;
    }
    let smtp = match email.smtp(keychain) {
        Ok(Some(smtp)) => smtp,
        Ok(None) => return None,
        Err(e) => return Some(e.to_string()),
    };
    let query = email.admins_query();
    jobs::notify_failure(vault, &smtp, query.as_deref(), kind, target, error)
        .await
        .err()
        .map(|e| e.to_string())
}

/// Stop the running job (it leaves nothing behind); false when nothing runs.
#[tauri::command]
pub async fn cancel_job(state: State<'_, AppState>) -> Res<bool> {
    Ok(state.cancel_job())
}

/// Delete a backup (its file and its entry).
#[tauri::command]
pub async fn delete_backup(state: State<'_, AppState>, id: String) -> Res<()> {
    let vault = state.vault().await?;
    jobs::delete(&vault, &id).await?;
    Ok(())
}

/// Read a backup completely and check every table's rows and checksum.
#[tauri::command]
pub async fn verify_backup(state: State<'_, AppState>, id: String) -> Res<CheckResult> {
    let id = checked_what(&state, &id)?;
    let vault = state.vault().await?;
    let r = detached(move || async move { Ok(jobs::verify(&vault, &id, Arc::new(Silent)).await?) })
        .await?;
    Ok(CheckResult {
        message: format!(
            "{} tables and {} rows read back and checked",
            r.tables, r.rows
        ),
        backup_id: r.backup_id,
        tables: r.tables,
        rows: r.rows,
    })
}

/// Restore a backup into a scratch database on the same server, compare, drop it.
#[tauri::command]
pub async fn test_restore_backup(state: State<'_, AppState>, id: String) -> Res<CheckResult> {
    let id = checked_what(&state, &id)?;
    let (_slot, _cancel) = state.start_job("test restore")?;
    let vault = state.vault().await?;
    let target = state.target()?;
    let r = detached(move || async move {
        Ok(jobs::test_restore(&vault, &id, &target, None, Arc::new(Silent)).await?)
    })
    .await?;
    Ok(CheckResult {
        message: format!(
            "Restored into a scratch database: {} tables and {} rows identical",
            r.tables, r.rows
        ),
        backup_id: r.backup_id,
        tables: r.tables,
        rows: r.rows,
    })
}

/// The history of runs, newest first.
#[tauri::command]
pub async fn history(state: State<'_, AppState>, limit: Option<u32>) -> Res<Vec<RunRow>> {
    let vault = state.vault().await?;
    let runs = vault.catalog.runs(limit.unwrap_or(200)).await?;
    Ok(runs.iter().map(RunRow::from).collect())
}
