//! The commands the window calls: each a few lines over the engine. Errors reach the UI as
//! `{code, message}` ([`CommandError`]); nothing returned carries a key or a password.
//!
//! What the web view sends is not trusted further than it must be: a file it names is opened
//! only when the user chose it in a native dialog or it is in the backup folder
//! ([`AppState::allowed_file`]), the backup folder itself changes only to one the user chose in
//! the native folder dialog ([`AppState::allowed_backup_dir`]), and a saved password goes only
//! to the server it was saved for.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use schoolvault_engine::archive::BackupKind;
use schoolvault_engine::config::{
    DatabaseSettings, EmailSettings, DB_PASSWORD_ACCOUNT, SMTP_PASSWORD_ACCOUNT,
};
use schoolvault_engine::crypto::Key;
use schoolvault_engine::jobs::{self, BackupOptions, RestoreOptions};
use schoolvault_engine::keychain::{KeyOrigin, Keychain};
use schoolvault_engine::progress::{Progress, ProgressEvent, Silent, Watched};
use schoolvault_engine::schedule::Schedule;
use schoolvault_engine::source::postgres::{self, PgTarget, Tls};
use tauri::ipc::Channel;
use tauri::State;

use crate::dto::{
    self, AppStatus, BackupRow, CheckResult, CommandError, ConnectionReport, DbForm, DemoOffer,
    Failure, KeyInfo, RestorePreview, RestoreResult, RunRow, Settings,
};
use crate::state::{AppState, Look};

type Res<T> = Result<T, CommandError>;

/// Run an engine job to completion on a blocking thread of the runtime. The engine's job futures
/// are not all provably `Send` (rustc's limits with higher-ranked lifetimes in their inner
/// closures), and Tauri's async commands must be; `make` builds the future on that thread.
pub async fn detached<T, F, Fut>(make: F) -> Res<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Res<T>> + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(make()))
        .await
        .map_err(|e| {
            CommandError::new(
                "internal",
                format!(
                    "The job stopped unexpectedly ({e}). Nothing was changed; please report this."
                ),
            )
        })?
}

/// The demo school database offered on first run.
pub const DEMO_DB: &str = "schoolvault_demo";
const DEMO_SQL: &str = include_str!("../../tests/data/school.sql");
const DEMO_VOLUME_SQL: &str = include_str!("demo-volume.sql");

/// Progress events to the window's channel, at most ten a second (phase changes always).
pub struct ChannelProgress {
    channel: Channel<dto::Progress>,
    last: Mutex<(Option<Instant>, String)>,
}

impl ChannelProgress {
    /// Report to `channel`.
    pub fn new(channel: Channel<dto::Progress>) -> Arc<Self> {
        Arc::new(ChannelProgress {
            channel,
            last: Mutex::new((None, String::new())),
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
        if due || last.1 != p.phase {
            *last = (Some(Instant::now()), p.phase.clone());
            let _ = self.channel.send(p);
        }
    }
}

fn key_info(origin: &KeyOrigin, key: &Key) -> KeyInfo {
    KeyInfo {
        fingerprint: key.fingerprint().to_string(),
        origin: match origin {
            KeyOrigin::Env => "env",
            KeyOrigin::File(_) => "file",
            KeyOrigin::Keychain => "keychain",
        }
        .into(),
    }
}

/// What the window needs to decide what to show.
#[tauri::command]
pub async fn status(state: State<'_, AppState>) -> Res<AppStatus> {
    let config = state.config();
    let (key, key_error) = match state.keys()?.current() {
        Ok((k, origin)) => (Some(key_info(&origin, &k)), None),
        Err(e) if e.code() == "no_key" => (None, None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(AppStatus {
        configured: config.database.is_some() && key.is_some(),
        database: config.database.as_ref().map(DbForm::from_settings),
        target: config.database.as_ref().map(|d| d.target(None).describe()),
        key,
        key_error,
        backup_dir: config.backup_dir()?.display().to_string(),
        config_path: state.config_path.display().to_string(),
        running: state.running(),
        next_run: state.next_run().map(|t| t.to_rfc3339()),
        failure: state.failure(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// The form as settings, its CA file checked: the saved one, or one the web view may name.
fn form_settings(state: &AppState, form: &DbForm) -> Res<DatabaseSettings> {
    let mut settings = form.to_settings(false)?;
    if let Some(ca) = settings.ca_file.take() {
        let saved = state.config().database.and_then(|d| d.ca_file);
        settings.ca_file = Some(if saved.as_ref() == Some(&ca) {
            ca
        } else {
            state.allowed_file(&ca)?
        });
    }
    Ok(settings)
}

/// How much a TLS mode checks, from nothing to the certificate and the name in it.
fn tls_strength(tls: Tls) -> u8 {
    match tls {
        Tls::Disable => 0,
        Tls::Prefer => 1,
        Tls::Require => 2,
        Tls::VerifyCa => 3,
        Tls::VerifyFull => 4,
    }
}

/// Whether the saved password may go where `form` points: only where the saved settings send
/// it — the same host, port and user, over a connection checked at least as strictly (with
/// the same CA file when the saved one checks the certificate). Otherwise whoever edits the
/// form (a slip, or a script in the web view) could have it sent to a server of their choice.
fn saved_password_applies(saved: &DatabaseSettings, form: &DatabaseSettings) -> bool {
    saved.password_saved
        && saved.host.eq_ignore_ascii_case(&form.host)
        && saved.port == form.port
        && saved.user == form.user
        && tls_strength(form.tls) >= tls_strength(saved.tls)
        && (!saved.tls.verifies() || saved.ca_file == form.ca_file)
}

/// `password_needed`: the form asks for the saved password where it may not go.
fn password_needed(form: &DatabaseSettings) -> CommandError {
    let why = schoolvault_engine::Error::new(
        schoolvault_engine::ErrorKind::InvalidInput,
        format!(
            "The saved password is sent only to the connection it was saved for, and {}@{}:{} (TLS {}) is another server, port or user, or a less checked connection; nothing was sent",
            form.user,
            form.host,
            form.port,
            form.tls.as_str()
        ),
        format!(
            "Type the password for {}@{}:{} in the Password field, then try again",
            form.user, form.host, form.port
        ),
    );
    CommandError::new("password_needed", why.to_string())
}

/// Connect with the form's details and say what is there, or exactly what is wrong. The saved
/// password is used only for the saved connection ([`saved_password_applies`]), checked before
/// the keychain is read.
#[tauri::command]
pub async fn test_connection(
    state: State<'_, AppState>,
    form: DbForm,
    password: Option<String>,
) -> Res<ConnectionReport> {
    let settings = form_settings(&state, &form)?;
    let password = match password.filter(|p| !p.is_empty()) {
        Some(p) => Some(zeroize::Zeroizing::new(p)),
        None if form.password_saved => {
            let saved = state.config().database;
            if !saved
                .as_ref()
                .is_some_and(|s| saved_password_applies(s, &settings))
            {
                return Err(password_needed(&settings));
            }
            state.keychain().get(DB_PASSWORD_ACCOUNT)?
        }
        None => None,
    };
    let target = settings.target(password.as_deref().map(String::as_str));
    let probe = postgres::probe(&target).await?;
    Ok(ConnectionReport {
        target: target.describe(),
        server_version: probe.server_version,
        tables: probe.tables,
        size: probe.size,
    })
}

/// Save the connection; a password typed here goes to the keychain, never to the file. The
/// saved password stays in use only for the same connection ([`saved_password_applies`]):
/// another server, port or user without a typed password is saved without one.
#[tauri::command]
pub async fn save_connection(
    state: State<'_, AppState>,
    form: DbForm,
    password: Option<String>,
) -> Res<AppStatus> {
    let mut settings = form_settings(&state, &form)?;
    settings.password_saved = match password.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => {
            state.keychain().set(DB_PASSWORD_ACCOUNT, p)?;
            true
        }
        None => {
            form.password_saved
                && state
                    .config()
                    .database
                    .as_ref()
                    .is_some_and(|s| saved_password_applies(s, &settings))
        }
    };
    state.update_config(|c| c.database = Some(settings))?;
    state.schedule_changed.notify_one();
    status(state).await
}

fn demo_form() -> DbForm {
    DbForm {
        host: "127.0.0.1".into(),
        port: 5432,
        name: DEMO_DB.into(),
        user: std::env::var("SCHOOLVAULT_DEMO_USER").unwrap_or_else(|_| "postgres".into()),
        tls: Tls::Disable.as_str().into(),
        ca_file: None,
        password_saved: false,
    }
}

/// Whether a PostgreSQL on 127.0.0.1:5432 could hold the demo school database.
#[tauri::command]
pub async fn demo_offer() -> Res<DemoOffer> {
    let form = demo_form();
    let server = PgTarget::from_parts(
        &form.host,
        form.port,
        "postgres",
        &form.user,
        None,
        Tls::Disable,
    );
    let reason = postgres::probe(&server).await.err().map(|e| e.to_string());
    Ok(DemoOffer {
        available: reason.is_none(),
        database: form,
        reason,
    })
}

/// Create the demo school database (or reuse it) and use it.
#[tauri::command]
pub async fn create_demo(state: State<'_, AppState>) -> Res<AppStatus> {
    let form = demo_form();
    let server = PgTarget::from_parts(
        &form.host,
        form.port,
        "postgres",
        &form.user,
        None,
        Tls::Disable,
    );
    detached(move || async move {
        if postgres::database_exists(&server, DEMO_DB).await? {
            return Ok(());
        }
        let demo = postgres::create_database(&server, DEMO_DB).await?;
        let loaded = async {
            postgres::run_script(&demo, DEMO_SQL).await?;
            postgres::run_script(&demo, DEMO_VOLUME_SQL).await
        }
        .await;
        if let Err(e) = loaded {
            postgres::drop_database(&server, DEMO_DB).await;
            return Err(e.into());
        }
        Ok(())
    })
    .await?;
    let settings = form.to_settings(false)?;
    state.update_config(|c| c.database = Some(settings))?;
    status(state).await
}

/// Generate the encryption key and keep it in the keychain (never over an existing one).
#[tauri::command]
pub async fn key_generate(state: State<'_, AppState>) -> Res<KeyInfo> {
    let keys = state.keys()?;
    // Never over an existing key, except the old system's public one (imported before
    // SchoolVault refused it): that one is replaced, as the refusal's message says.
    if let Some(k) = keys.keychain_current()? {
        if !schoolvault_engine::legacy::is_dev_key(&k) {
            return Ok(key_info(&KeyOrigin::Keychain, &k));
        }
    }
    let key = Key::generate();
    keys.store(&key)?;
    Ok(key_info(&KeyOrigin::Keychain, &key))
}

/// Import a key (64 hex characters, e.g. the old system's `BACKUP_ENCRYPTION_KEY`).
#[tauri::command]
pub async fn key_import(state: State<'_, AppState>, hex: String) -> Res<KeyInfo> {
    let hex = zeroize::Zeroizing::new(hex);
    let key = Key::from_hex(hex.trim())?;
    state.keys()?.store(&key)?;
    Ok(key_info(&KeyOrigin::Keychain, &key))
}

/// Write the key's recovery copy where the user chooses (mode 0600, replacing any file there);
/// `null` if they cancel.
#[tauri::command]
pub async fn key_save_recovery(state: State<'_, AppState>) -> Res<Option<String>> {
    let (key, _) = state.keys()?.current()?;
    let fp = key.fingerprint().to_string();
    let asked = state
        .shell()
        .pick_recovery_file(&format!("schoolvault-key-{fp}.txt"));
    let Some(path) = asked.await.ok().flatten() else {
        return Ok(None);
    };
    let sheet = zeroize::Zeroizing::new(format!(
        "SchoolVault encryption key — recovery copy\n\
         ==========================================\n\n\
         Key fingerprint: {fp}\n\
         Key (64 hex):    {}\n\n\
         Every SchoolVault backup of this school is encrypted with this key. Without it, no\n\
         backup can be restored. Print this sheet or keep this file somewhere safe and away\n\
         from this computer (a locked drawer, a password manager). To use it on another\n\
         computer: SchoolVault → Settings → Encryption key → Import, or\n\
         `schoolvault key import`.\n",
        key.to_hex().as_str()
    ));
    // Atomically (temporary file, fsync, rename) and mode 0600, even over an existing file
    // that anyone could read.
    schoolvault_engine::storage::write_private(&path, sheet.as_bytes())?;
    Ok(Some(path.display().to_string()))
}

/// Show the key's hex once, in a native dialog: it never enters the web view.
#[tauri::command]
pub async fn key_show_once(state: State<'_, AppState>) -> Res<()> {
    let (key, _) = state.keys()?.current()?;
    let text = format!(
        "Fingerprint {}\n\n{}\n\nWrite it down and keep it away from this computer.",
        key.fingerprint(),
        key.to_hex().as_str()
    );
    state
        .shell()
        .show_secret("SchoolVault encryption key", &text);
    Ok(())
}

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
            let lock = vault.lock()?;
            let watched = Arc::new(Watched::new(progress));
            let job = jobs::backup(&vault, &target, &opts, watched.clone());
            let out = jobs::watch(&vault, "backup", Some(kind), limit, &watched, job).await;
            drop(lock);
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
                code: e.code.clone(),
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

/// Stop the running job (it leaves nothing behind); false when nothing runs.
#[tauri::command]
pub async fn cancel_job(state: State<'_, AppState>) -> Res<bool> {
    Ok(state.cancel_job())
}

/// A backup the web view names: an id (looked up in the catalog), or a file it may name — one
/// the user chose in a native dialog, or one in the backup folder ([`AppState::allowed_file`]).
fn checked_what(state: &AppState, what: &str) -> Res<String> {
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
pub async fn restore_preview(state: State<'_, AppState>, what: String) -> Res<RestorePreview> {
    let w = checked_what(&state, &what)?;
    let vault = state.vault().await?;
    let target = state.target()?;
    let p = detached(move || async move {
        Ok(jobs::restore_preview(&vault, &w, &target, Arc::new(Silent)).await?)
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
    })
}

/// Restore `what` into the configured database, atomically; `confirm_name` must be the
/// database's name (the modal's typed confirmation, checked here again). `trust_dev_key`
/// (default false): the person ticked the second warning, for an old-system file that only
/// the public development key opened; without it the engine refuses such a file
/// (`untrusted_file`).
#[tauri::command]
pub async fn restore(
    state: State<'_, AppState>,
    what: String,
    confirm_name: String,
    safety_backup: bool,
    trust_dev_key: Option<bool>,
    on_progress: Channel<dto::Progress>,
) -> Res<RestoreResult> {
    let what = checked_what(&state, &what)?;
    let target = state.target()?;
    if confirm_name.trim() != target.database() {
        return Err(CommandError::new(
            "invalid_input",
            format!(
                "Type the database's name ({}) to confirm the restore.",
                target.database()
            ),
        ));
    }
    let (_slot, cancel) = state.start_job("restore")?;
    state.shell().look(Look::Running);
    let opts = RestoreOptions {
        safety_backup,
        cancel: cancel.clone(),
        trust_dev_key: trust_dev_key.unwrap_or(false),
        ..RestoreOptions::default()
    };
    let result: Res<RestoreResult> = async {
        let vault = state.vault().await?;
        let out = detached(move || async move {
            let _lock = vault.lock()?;
            let progress = ChannelProgress::new(on_progress);
            Ok(jobs::restore(&vault, &what, &target, &opts, progress).await?)
        })
        .await?;
        Ok(RestoreResult {
            backup_id: out.backup_id,
            target: out.target,
            tables: out.tables,
            rows: out.rows,
            duration_ms: out.duration_ms,
            safety_backup_id: out.safety_backup.map(|b| b.id),
            warnings: out.warnings,
        })
    }
    .await;
    finish(&state, "restore", &result, false, false, &cancel);
    result
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

/// The settings screen's values.
#[tauri::command]
pub async fn get_settings(state: State<'_, AppState>) -> Res<Settings> {
    let c = state.config();
    Ok(Settings {
        backup_dir: c.backup_dir()?.display().to_string(),
        start_at_login: c.app.start_at_login,
        schedule_enabled: c.schedule.enabled,
        cron: c.schedule.cron.clone(),
        timezone: c.schedule.timezone.clone().unwrap_or_default(),
        catch_up: c.schedule.catch_up,
        watchdog_minutes: c.schedule.watchdog_minutes,
        test_restore: c.schedule.test_restore,
        keep_days: c.retention.keep_days,
        keep_last: c.retention.keep_last,
        keep_weekly: c.retention.keep_weekly,
        keep_monthly: c.retention.keep_monthly,
        email_enabled: c.email.enabled,
        smtp_host: c.email.host.clone(),
        smtp_port: c.email.port,
        smtp_security: c.email.security.clone(),
        smtp_user: c.email.user.clone().unwrap_or_default(),
        smtp_password_saved: c.email.password_saved,
        email_from: c.email.from.clone(),
        email_to: c.email.to.clone(),
        school_admins: c.email.school_admins,
        stale_hours: c.email.stale_hours,
        weekly_digest: c.email.weekly_digest,
    })
}

/// Check and save the settings screen's values. The backup folder is taken only when it is the
/// current one, the default one, or one the user chose with [`pick_backup_dir`].
#[tauri::command]
pub async fn save_settings(
    state: State<'_, AppState>,
    settings: Settings,
    smtp_password: Option<String>,
) -> Res<Settings> {
    let zone = Some(settings.timezone.trim()).filter(|z| !z.is_empty());
    if settings.email_enabled {
        if settings.smtp_host.trim().is_empty() {
            return Err(CommandError::new(
                "invalid_input",
                "Emails are on but the SMTP server is empty. Enter it, or turn emails off.",
            ));
        }
        if settings.email_to.iter().all(|a| a.trim().is_empty()) && !settings.school_admins {
            return Err(CommandError::new(
                "invalid_input",
                "Emails are on but nobody would get them. Enter at least one address.",
            ));
        }
        if let Some(bad) = settings.email_to.iter().find(|a| !a.contains('@')) {
            return Err(CommandError::new(
                "invalid_input",
                format!("{bad:?} is not an email address."),
            ));
        }
    }
    let smtp_user = Some(settings.smtp_user.trim().to_string()).filter(|u| !u.is_empty());
    if settings.email_enabled {
        // The engine's own checks, e.g. no login over `plain` to another machine (the probe
        // has no saved password: the keychain is not read).
        EmailSettings {
            enabled: true,
            host: settings.smtp_host.trim().to_string(),
            port: settings.smtp_port,
            security: settings.smtp_security.clone(),
            user: smtp_user.clone(),
            ..EmailSettings::default()
        }
        .smtp(state.keychain())?;
    }
    Schedule::parse(&settings.cron, zone)?;
    if !(1..=1440).contains(&settings.watchdog_minutes) {
        return Err(CommandError::new(
            "invalid_input",
            "Stop a stalled backup after 1 to 1440 minutes (10 is a good choice).",
        ));
    }
    if settings.keep_days == 0 {
        return Err(CommandError::new(
            "invalid_input",
            "Keep backups for at least 1 day.",
        ));
    }
    let dir = settings.backup_dir.trim();
    if dir.is_empty() || !Path::new(dir).is_absolute() {
        return Err(CommandError::new(
            "invalid_input",
            "The backup folder must be a full path (e.g. /srv/backups).",
        ));
    }
    // Only the current folder, the default one, or one chosen in the folder dialog: the
    // backup folder decides which files the web view may name.
    let dir = state.allowed_backup_dir(Path::new(dir))?;
    if state.config().app.start_at_login != settings.start_at_login {
        state
            .shell()
            .autostart(settings.start_at_login)
            .map_err(|e| {
                CommandError::new("io", format!("Start at login could not be changed: {e}."))
            })?;
    }
    let smtp_saved = smtp_password_change(&state, &settings, smtp_password.as_deref())?;
    if settings.weekly_digest && !state.config().email.weekly_digest {
        // Turned on: the first report comes next Monday, not at once for an old week.
        if let Ok(vault) = state.vault().await {
            jobs::forget_digest(&vault);
        }
    }
    state.update_config(|c| {
        let default_dir = schoolvault_engine::config::default_backup_dir().ok();
        c.backup.dir = Some(dir).filter(|d| Some(d) != default_dir.as_ref());
        c.app.start_at_login = settings.start_at_login;
        c.schedule.enabled = settings.schedule_enabled;
        c.schedule.cron = settings.cron.trim().to_string();
        c.schedule.timezone = zone.map(str::to_string);
        c.schedule.catch_up = settings.catch_up;
        c.schedule.watchdog_minutes = settings.watchdog_minutes;
        c.schedule.test_restore = settings.test_restore;
        c.retention.keep_days = settings.keep_days;
        c.retention.keep_last = settings.keep_last;
        c.retention.keep_weekly = settings.keep_weekly;
        c.retention.keep_monthly = settings.keep_monthly;
        c.email.enabled = settings.email_enabled;
        c.email.host = settings.smtp_host.trim().to_string();
        c.email.port = settings.smtp_port;
        c.email.security = settings.smtp_security.clone();
        c.email.user = smtp_user;
        c.email.password_saved = smtp_saved;
        c.email.from = settings.email_from.trim().to_string();
        c.email.to = settings
            .email_to
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        c.email.school_admins = settings.school_admins;
        c.email.stale_hours = settings.stale_hours.max(1);
        c.email.weekly_digest = settings.weekly_digest;
    })?;
    state.schedule_changed.notify_one();
    get_settings(state).await
}

/// Whether an SMTP password stays saved after `settings` are saved, changing the keychain to
/// match: a typed password is saved; the saved one goes only to the server it was saved for,
/// and never unencrypted, so a new SMTP server, or a switch to `plain`, forgets it.
fn smtp_password_change(state: &AppState, settings: &Settings, typed: Option<&str>) -> Res<bool> {
    let old = state.config().email;
    if let Some(p) = typed.filter(|p| !p.is_empty()) {
        state.keychain().set(SMTP_PASSWORD_ACCOUNT, p)?;
        return Ok(true);
    }
    let new_host = !old
        .host
        .trim()
        .eq_ignore_ascii_case(settings.smtp_host.trim());
    let to_plain = settings.smtp_security == "plain" && old.security != "plain";
    if new_host || to_plain {
        if old.password_saved {
            state.keychain().delete(SMTP_PASSWORD_ACCOUNT)?;
        }
        return Ok(false);
    }
    Ok(old.password_saved && settings.smtp_password_saved)
}

/// The next five runs of a cron expression (RFC 3339), or what is wrong with it.
#[tauri::command]
pub async fn schedule_preview(cron: String, timezone: Option<String>) -> Res<Vec<String>> {
    let zone = timezone.as_deref().map(str::trim).filter(|z| !z.is_empty());
    let s = Schedule::parse(&cron, zone)?;
    Ok(s.upcoming(Utc::now(), 5)?
        .into_iter()
        .map(|t| t.to_rfc3339())
        .collect())
}

/// Send a test email with the saved email settings; the number of recipients.
#[tauri::command]
pub async fn send_test_email(state: State<'_, AppState>) -> Res<usize> {
    let smtp = state
        .config()
        .email
        .smtp(state.keychain())?
        .ok_or_else(|| {
            CommandError::new(
                "invalid_input",
                "Emails are off. Turn them on and save the settings first.",
            )
        })?;
    detached(move || async move {
        Ok(schoolvault_engine::notify::send(
            &smtp,
            "SchoolVault test email",
            "This is a test email from SchoolVault: failure notices will reach you.",
            "<p>This is a test email from <b>SchoolVault</b>: failure notices will reach you.</p>",
        )
        .await?)
    })
    .await
}

/// The user has seen the failure: the banner goes, the tray turns back to normal.
#[tauri::command]
pub async fn acknowledge_failure(state: State<'_, AppState>) -> Res<()> {
    state.set_failure(None);
    Ok(())
}
