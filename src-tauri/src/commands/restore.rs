//! The restore screen: which backups the web view may name (`checked_what`), the preview,
//! the restore itself, and the native dialogs that pick a backup file, a CA certificate or the
//! backup folder.

use std::path::Path;

use schoolvault_engine::jobs::{self, RestoreOptions, RoleChoice};
use schoolvault_engine::source::{mysql, postgres, Database, Session};
use tauri::ipc::Channel;
use tauri::State;

use super::{detached, finish, ChannelProgress, Res};
use crate::dto::{self, CommandError, RestorePreview, RestoreResult};
use crate::state::{AppState, Look};

/// A backup the web view names: an id (looked up in the catalog), or a file it may name — one
/// the user chose in a native dialog, or one in the backup folder ([`AppState::allowed_file`]).
pub(super) fn checked_what(state: &AppState, what: &str) -> Res<String> {
    let path = Path::new(what);
    if !(what.contains(std::path::is_separator) || path.is_absolute() || path.exists()) {
        return Ok(what.to_string());
    }
    let real = state.allowed_file(path)?;
    Ok(real
        .to_str()
        .map_or_else(|| what.to_string(), str::to_string))
}

/// Read a backup (an id or a file) completely and count what the restore would replace.
#[tauri::command]
pub async fn restore_preview(
    state: State<'_, AppState>,
    what: String,
    on_progress: Channel<dto::Progress>,
) -> Res<RestorePreview> {
    let w = checked_what(&state, &what)?;
    let vault = state.vault().await?;
    let database = state.database()?;
    let end_sessions_needs = match database {
        Database::Postgres(_) => "a superuser login, or one in pg_signal_backend",
        Database::MariaDb(_) => "root, or a login with the CONNECTION ADMIN privilege",
    };
    let offsite = jobs::Offsite::from_config(&state.config(), state.keychain_handle());
    let progress = ChannelProgress::new(on_progress);
    let (p, sessions) = detached(move || async move {
        // A backup listed from a destination (a new computer) comes down first, checked,
        // with its progress on the channel; then it is read through (a large one takes
        // seconds), its progress there too.
        jobs::fetch(&vault, &offsite, &w, progress.clone()).await?;
        let target = match &database {
            Database::Postgres(t) => t,
            Database::MariaDb(t) => {
                let p = jobs::restore_preview_mariadb(&vault, &w, t, progress).await?;
                let sessions = mysql::other_sessions(t).await.unwrap_or_default();
                return Ok((p, sessions));
            }
        };
        let p = jobs::restore_preview(&vault, &w, target, progress).await?;
        // Who else is connected (none for a database that does not exist yet).
        let sessions = if p.missing_roles.is_empty() {
            postgres::other_sessions(target).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok((p, sessions))
    })
    .await?;
    Ok(RestorePreview {
        what,
        backup_id: p.backup_id,
        file_name: p
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        format: p.format,
        created_at: p.created_at.map(|t| t.to_rfc3339()),
        source_database: p.source_database,
        target: p.target,
        target_database: p.target_database,
        tables: p
            .tables
            .into_iter()
            .map(|t| dto::PreviewTable {
                name: t.name,
                backup_rows: t.backup_rows,
                live_rows: t.live_rows,
            })
            .collect(),
        backup_rows: p.backup_rows,
        live_rows: p.live_rows,
        warnings: p.warnings,
        dev_key: p.dev_key,
        missing_roles: p.missing_roles,
        sessions: sessions.iter().map(Session::describe).collect(),
        lock_timeout_secs: LOCK_TIMEOUT.as_secs(),
        end_sessions_needs: end_sessions_needs.to_string(),
    })
}

/// How long a restore from the app waits for other sessions' locks on the tables before it
/// stops, nothing changed (the modal says so; the CLI waits unless told otherwise).
const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Restore `what` into the configured database, atomically; `confirm_name` must be the
/// database's name (the modal's typed confirmation, checked here again). `trust_dev_key`
/// (default false): the person ticked the second warning, for an old-system file that only
/// the public development key opened; without it the engine refuses such a file
/// (`untrusted_file`).
#[tauri::command]
// Each argument is a named field of the IPC call the modal makes.
#[allow(clippy::too_many_arguments)]
pub async fn restore(
    state: State<'_, AppState>,
    what: String,
    confirm_name: String,
    safety_backup: bool,
    trust_dev_key: Option<bool>,
    roles: Option<String>,
    end_sessions: Option<bool>,
    on_progress: Channel<dto::Progress>,
) -> Res<RestoreResult> {
    let what = checked_what(&state, &what)?;
    let database = state.database()?;
    if confirm_name.trim() != database.database() {
        return Err(CommandError::new(
            schoolvault_engine::ErrorKind::InvalidInput,
            format!(
                "Type the database's name ({}) to confirm the restore.",
                database.database()
            ),
        ));
    }
    let (_slot, cancel) = state.start_job("restore")?;
    state.shell().look(Look::Running);
    // Into a database without the backup's tables, on a server that lacks the backup's
    // roles (the modal's choice): create them without login, or everything owned by the
    // login SchoolVault uses (PostgreSQL's roles; MariaDB has none to choose).
    let roles = match roles.as_deref() {
        None | Some("") => RoleChoice::Require,
        Some("create") => RoleChoice::Create,
        Some("owner") => match &database {
            Database::Postgres(t) => RoleChoice::Owner(t.user()),
            Database::MariaDb(_) => RoleChoice::Require,
        },
        Some(other) => {
            return Err(CommandError::new(
                schoolvault_engine::ErrorKind::InvalidInput,
                format!("{other:?} is not a choice for the missing roles (create or owner)."),
            ))
        }
    };
    let opts = RestoreOptions {
        safety_backup,
        cancel: cancel.clone(),
        trust_dev_key: trust_dev_key.unwrap_or(false),
        roles,
        lock_timeout: Some(LOCK_TIMEOUT),
        end_sessions: end_sessions.unwrap_or(false),
        ..RestoreOptions::default()
    };
    let offsite = jobs::Offsite::from_config(&state.config(), state.keychain_handle());
    let result: Res<RestoreResult> = async {
        let vault = state.vault().await?;
        let out = detached(move || async move {
            let progress = ChannelProgress::new(on_progress);
            jobs::fetch(&vault, &offsite, &what, progress.clone()).await?;
            Ok(match &database {
                Database::Postgres(t) => jobs::restore(&vault, &what, t, &opts, progress).await?,
                // All or nothing by a scratch database and one RENAME TABLE (see the engine).
                Database::MariaDb(t) => {
                    jobs::restore_replace_mariadb(&vault, &what, t, &opts, progress).await?
                }
            })
        })
        .await?;
        Ok(result_of(out))
    }
    .await;
    finish(&state, "restore", &result, false, false, &cancel);
    result
}

fn result_of(out: jobs::RestoreOutcome) -> RestoreResult {
    RestoreResult {
        backup_id: out.backup_id,
        target: out.target,
        tables: out.tables,
        rows: out.rows,
        duration_ms: out.duration_ms,
        safety_backup_id: out.safety_backup.map(|b| b.id),
        warnings: out.warnings,
    }
}

/// Pick a backup file (`.svb`, or the old system's `.enc`) with the native dialog; the web view
/// may name it from then on.
#[tauri::command]
pub async fn pick_restore_file(state: State<'_, AppState>) -> Res<Option<String>> {
    let asked = state.shell().pick_backup_file();
    Ok(asked.await.ok().flatten().map(|p| {
        state.remember_picked(&p);
        p.display().to_string()
    }))
}

/// Pick the CA certificate (PEM) for `verify-ca` / `verify-full` with the native dialog; the
/// connection form may name it from then on.
#[tauri::command]
pub async fn pick_ca_file(state: State<'_, AppState>) -> Res<Option<String>> {
    let asked = state.shell().pick_ca_file();
    Ok(asked.await.ok().flatten().map(|p| {
        state.remember_picked(&p);
        p.display().to_string()
    }))
}

/// Pick the backup folder with the native folder dialog; the settings may be saved with it
/// from then on ([`AppState::allowed_backup_dir`]). `null` if the user cancels.
#[tauri::command]
pub async fn pick_backup_dir(state: State<'_, AppState>) -> Res<Option<String>> {
    let current = state.config().backup_dir()?;
    let asked = state.shell().pick_backup_dir(&current);
    Ok(asked.await.ok().flatten().map(|p| {
        state.remember_picked_dir(&p);
        p.display().to_string()
    }))
}
