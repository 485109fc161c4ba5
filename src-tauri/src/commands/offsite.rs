//! The offsite destinations in the settings screen: list them with how their copies stand,
//! add or change one (tested first; its secret goes to the keychain and never comes back to
//! the window), test one, remove one (its files stay), "Sync now", and "Find backups" (a new
//! computer lists the backups a destination holds).

use std::sync::Arc;

use schoolvault_engine::catalog::CopyRecord;
use schoolvault_engine::jobs::{self, SyncOptions};
use schoolvault_engine::offsite::{DestinationSettings, Store};
use tauri::ipc::Channel;
use tauri::State;

use super::{detached, finish, ChannelProgress, Res};
use crate::dto::{self, DestinationRow, FoundBackups, SyncRow};
use crate::state::AppState;

fn row(d: &DestinationSettings, copies: &[CopyRecord]) -> DestinationRow {
    let t = jobs::Tally::of(&d.name, copies);
    let own = d.retention.as_ref();
    DestinationRow {
        name: d.name.clone(),
        kind: d.location().map_or("?", |l| l.kind()).to_string(),
        url: d.url.clone(),
        enabled: d.enabled,
        access_key_id: d.access_key_id.clone(),
        secret_saved: d.secret_saved,
        keep_days: own.map(|r| r.keep_days),
        keep_last: own.and_then(|r| r.keep_last),
        keep_weekly: own.and_then(|r| r.keep_weekly),
        keep_monthly: own.and_then(|r| r.keep_monthly),
        bandwidth_kbps: d.bandwidth_kbps,
        lock_days: d.lock_days,
        copies_done: t.done as u32,
        copies_pending: t.pending as u32,
        copies_failed: t.failed as u32,
        waiting_since: t.waiting_since.map(|t| t.to_rfc3339()),
        last_error: t.last_error,
    }
}

/// The destinations, with their copies' state.
#[tauri::command]
pub async fn list_destinations(state: State<'_, AppState>) -> Res<Vec<DestinationRow>> {
    let vault = state.vault().await?;
    let copies = vault.catalog.copies().await?;
    Ok(state
        .config()
        .destinations
        .iter()
        .map(|d| row(d, &copies))
        .collect())
}

/// Add a destination or change the one with that name. It is tested first (write, read back,
/// delete a small file) and saved only when that works; `secret` (when given) goes to the
/// keychain, and an empty one keeps the saved secret.
#[tauri::command]
pub async fn save_destination(
    state: State<'_, AppState>,
    destination: DestinationRow,
    secret: Option<String>,
) -> Res<DestinationRow> {
    let config = state.config();
    let existing = config
        .destinations
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(destination.name.trim()));
    let secret = secret.filter(|s| !s.is_empty());
    let d = destination.to_settings(existing, secret.is_some());
    d.validate()?;
    d.make_folder()?;
    let keychain = state.keychain_handle();
    // Tested with the new secret before anything is saved: a wrong one changes nothing.
    let probe: Arc<dyn schoolvault_engine::keychain::Keychain> = match &secret {
        Some(s) => Arc::new(OneSecret {
            account: d.secret_account(),
            secret: zeroize::Zeroizing::new(s.clone()),
            rest: keychain.clone(),
        }),
        None => keychain.clone(),
    };
    let tested = d.clone();
    detached(move || async move {
        Store::open(&tested, probe.as_ref())?.test().await?;
        Ok(())
    })
    .await?;
    if let Some(s) = &secret {
        keychain.set(&d.secret_account(), s)?;
    }
    let saved = d.clone();
    state.update_config(move |c| {
        match c
            .destinations
            .iter_mut()
            .find(|o| o.name.eq_ignore_ascii_case(&saved.name))
        {
            Some(o) => *o = saved,
            None => c.destinations.push(saved),
        }
    })?;
    let vault = state.vault().await?;
    Ok(row(&d, &vault.catalog.copies().await?))
}

/// The keychain, with one secret not saved yet (for testing a destination before saving it).
struct OneSecret {
    account: String,
    secret: zeroize::Zeroizing<String>,
    rest: Arc<dyn schoolvault_engine::keychain::Keychain>,
}

impl schoolvault_engine::keychain::Keychain for OneSecret {
    fn get(&self, account: &str) -> schoolvault_engine::Result<Option<zeroize::Zeroizing<String>>> {
        if account == self.account {
            return Ok(Some(self.secret.clone()));
        }
        self.rest.get(account)
    }
    fn set(&self, account: &str, secret: &str) -> schoolvault_engine::Result<()> {
        self.rest.set(account, secret)
    }
    fn delete(&self, account: &str) -> schoolvault_engine::Result<()> {
        self.rest.delete(account)
    }
}

/// "Test destination": write, read back and delete a small file there.
#[tauri::command]
pub async fn test_destination(state: State<'_, AppState>, name: String) -> Res<()> {
    let d = state.config().destination(&name)?.clone();
    let keychain = state.keychain_handle();
    detached(move || async move {
        Store::open(&d, keychain.as_ref())?.test().await?;
        Ok(())
    })
    .await
}

/// Stop copying to a destination; its files there stay.
#[tauri::command]
pub async fn remove_destination(state: State<'_, AppState>, name: String) -> Res<()> {
    let d = state.config().destination(&name)?.clone();
    // First, under the run lock: a sync running now makes this wait, nothing changed.
    let vault = state.vault().await?;
    jobs::forget_destination(&vault, &d.name).await?;
    state.update_config(|c| c.destinations.retain(|o| o.name != d.name))?;
    if d.secret_saved {
        state.keychain_handle().delete(&d.secret_account())?;
    }
    Ok(())
}

/// "Sync now": copy what each destination lacks (now, whatever the backoff), with `verify`
/// compare each with the list first; then each destination's retention.
#[tauri::command]
pub async fn sync_now(
    state: State<'_, AppState>,
    verify: bool,
    on_progress: Channel<dto::Progress>,
) -> Res<Vec<SyncRow>> {
    let (_slot, cancel) = state.start_job("offsite copy")?;
    let vault = state.vault().await?;
    let offsite = jobs::Offsite::from_config(&state.config(), state.keychain_handle());
    let progress = ChannelProgress::new(on_progress);
    let result = detached(move || async move {
        let opts = SyncOptions {
            verify,
            read_back: false,
            now: true,
            prune: true,
        };
        Ok(jobs::sync(&vault, &offsite, opts, progress).await?)
    })
    .await
    .map(|reports| {
        reports
            .iter()
            .map(|r| SyncRow {
                destination: r.destination.clone(),
                uploaded: r.uploaded.len() as u32,
                owed: r.owed.len() as u32,
                findings: r
                    .findings
                    .iter()
                    .map(|f| format!("{}: {} ({})", f.name, f.problem, f.detail))
                    .collect(),
                pruned: r.pruned.len() as u32,
                error: r.error.clone(),
            })
            .collect::<Vec<_>>()
    });
    finish(&state, "offsite copy", &result, false, false, &cancel);
    result
}

/// "Find backups in…": list in the catalog the backups destination `name` holds (a new
/// computer after a disaster). Only each file's header and checksum file are read; a restore
/// downloads the file it needs.
#[tauri::command]
pub async fn find_backups(state: State<'_, AppState>, name: String) -> Res<FoundBackups> {
    let d = state.config().destination(&name)?.clone();
    let (_slot, cancel) = state.start_job("search for backups")?;
    let vault = state.vault().await?;
    let offsite = jobs::Offsite::from_config(&state.config(), state.keychain_handle());
    let destination = d.name.clone();
    let result =
        detached(move || async move { Ok(jobs::rescan_from(&vault, &offsite, &d).await?) })
            .await
            .map(|entries| {
                let count =
                    |status: &str| entries.iter().filter(|e| e.status == status).count() as u32;
                FoundBackups {
                    destination,
                    listed: count("complete"),
                    unfinished: count("unfinished"),
                    problems: entries
                        .iter()
                        .filter(|e| e.status != "complete" && e.status != "unfinished")
                        .map(|e| {
                            let file = e
                                .path
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            format!("{file}: {}", e.message.as_deref().unwrap_or(&e.status))
                        })
                        .collect(),
                }
            });
    finish(&state, "search for backups", &result, false, false, &cancel);
    result
}
