//! The backups screen: the list, running a backup ([`run_backup`], also for the tray and the
//! schedule) and emailing its failure, cancelling the running job, deleting, verifying and
//! test-restoring a backup, rebuilding the list from the folder, and the history of runs.

use std::sync::Arc;

use schoolvault_engine::archive::BackupKind;
use schoolvault_engine::jobs::{self, BackupOptions};
use schoolvault_engine::progress::Progress;
use schoolvault_engine::source::Database;
use tauri::ipc::Channel;
use tauri::State;

use super::restore::checked_what;
use super::{detached, finish, ChannelProgress, Res};
use crate::dto::{self, BackupRow, CheckResult, CommandError, RebuiltList, RunRow};
use crate::state::{AppState, Look};

/// The backups, newest first.
#[tauri::command]
pub async fn list_backups(state: State<'_, AppState>) -> Res<Vec<BackupRow>> {
    let vault = state.vault().await?;
    let mut list = vault.catalog.list().await?;
    list.sort_by_key(|b| std::cmp::Reverse(b.created_at));
    let copies = vault.catalog.copies().await?;
    let destinations = state.config().destinations;
    let current = vault
        .keys
        .current()
        .ok()
        .map(|(k, _)| k.fingerprint().to_string());
    Ok(list
        .iter()
        .map(|b| {
            let mut row = BackupRow::with_copies(b, &copies, &destinations);
            // A backup listed from a destination may not know its key yet ("").
            row.older_key = !row.key.is_empty() && current.as_ref().is_some_and(|c| *c != row.key);
            row
        })
        .collect())
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
        let target = state.database()?;
        let config = state.config();
        let limit = config.schedule.watchdog();
        let keychain = state.keychain_handle();
        detached(move || async move {
            let email = jobs::EmailPlan::from_config(&config.email, keychain.as_ref());
            let offsite = jobs::Offsite::from_config(&config, keychain.clone());
            let done =
                jobs::backup_attended(&vault, &target, &opts, limit, &email, &offsite, progress)
                    .await;
            Ok(match done.backup {
                Err(e) => Err((CommandError::from(&e), done.email_error)),
                Ok(made) => {
                    let copies = vault.catalog.copies().await.unwrap_or_default();
                    Ok(BackupRow::with_copies(
                        &made.backup,
                        &copies,
                        &offsite.destinations,
                    ))
                }
            })
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

/// Rebuild the list of backups from the files in the backup folder, reading each one
/// completely (so also checking it); a list that is damaged is moved aside first, never
/// deleted. The backup files are not changed.
#[tauri::command]
pub async fn rebuild_list(
    state: State<'_, AppState>,
    on_progress: Channel<dto::Progress>,
) -> Res<RebuiltList> {
    let (_slot, cancel) = state.start_job("rebuild of the list")?;
    let progress: Arc<dyn Progress> = ChannelProgress::new(on_progress);
    let result = state
        .rebuild_list(progress)
        .await
        .map(|(entries, set_aside)| {
            let name = |p: &std::path::Path| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            RebuiltList {
                listed: entries.iter().filter(|e| e.status == "complete").count() as u32,
                problems: entries
                    .iter()
                    .filter(|e| e.status != "complete")
                    .map(|e| {
                        format!(
                            "{}: {}",
                            name(&e.path),
                            e.message.as_deref().unwrap_or(&e.status)
                        )
                    })
                    .collect(),
                set_aside: set_aside.map(|p| p.display().to_string()),
            }
        });
    finish(
        &state,
        "rebuild of the list",
        &result,
        false,
        false,
        &cancel,
    );
    result
}

/// Read a backup completely and check every table's rows and checksum (a backup that is not
/// on this computer comes down from a destination first).
#[tauri::command]
pub async fn verify_backup(
    state: State<'_, AppState>,
    id: String,
    on_progress: Channel<dto::Progress>,
) -> Res<CheckResult> {
    let id = checked_what(&state, &id)?;
    let vault = state.vault().await?;
    let offsite = jobs::Offsite::from_config(&state.config(), state.keychain_handle());
    let progress: Arc<dyn Progress> = ChannelProgress::new(on_progress);
    let r = detached(move || async move {
        jobs::fetch(&vault, &offsite, &id, progress.clone()).await?;
        Ok(jobs::verify(&vault, &id, progress).await?)
    })
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
pub async fn test_restore_backup(
    state: State<'_, AppState>,
    id: String,
    on_progress: Channel<dto::Progress>,
) -> Res<CheckResult> {
    let id = checked_what(&state, &id)?;
    let (_slot, _cancel) = state.start_job("test restore")?;
    let vault = state.vault().await?;
    let target = state.database()?;
    let offsite = jobs::Offsite::from_config(&state.config(), state.keychain_handle());
    let progress: Arc<dyn Progress> = ChannelProgress::new(on_progress);
    let r = detached(move || async move {
        jobs::fetch(&vault, &offsite, &id, progress.clone()).await?;
        Ok(match &target {
            Database::Postgres(t) => jobs::test_restore(&vault, &id, t, None, progress).await?,
            Database::MariaDb(t) => {
                jobs::test_restore_mariadb(&vault, &id, t, None, progress).await?
            }
        })
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
