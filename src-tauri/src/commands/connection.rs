//! The connection screen: what the window needs to decide what to show ([`status`]), testing
//! and saving the database connection (a saved password goes only to the server it was saved
//! for), and the demo school database offered on first run.

use schoolvault_engine::config::{DatabaseSettings, DB_PASSWORD_ACCOUNT};
use schoolvault_engine::jobs;
use schoolvault_engine::source::postgres::{self, PgTarget, Tls};
use schoolvault_engine::source::{Database, Engine};
use tauri::State;

use super::key::key_info;
use super::{detached, Res};
use crate::dto::{AppStatus, CommandError, ConnectionReport, DbForm, DemoOffer};
use crate::state::AppState;

/// The demo school database offered on first run.
pub use schoolvault_engine::demo::DEMO_DB;

/// What the window needs to decide what to show.
#[tauri::command]
pub async fn status(state: State<'_, AppState>) -> Res<AppStatus> {
    let config = state.config();
    let (key, key_error) = match state.keys()?.current() {
        Ok((k, origin)) => (Some(key_info(&origin, &k)), None),
        Err(e) if e.kind() == schoolvault_engine::ErrorKind::NoKey => (None, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let key_recovery_pending = key.as_ref().is_some_and(|k| {
        schoolvault_engine::keychain::recovery_pending(&state.data_dir(), &k.fingerprint)
    });
    let dir = state.data_dir();
    let key_since = key
        .as_ref()
        .map(|k| schoolvault_engine::keychain::key_since(&dir, &k.fingerprint));
    let key_rotation_due = key.as_ref().zip(key_since).is_some_and(|(k, since)| {
        schoolvault_engine::keychain::rotation_due_since(
            &dir,
            &k.fingerprint,
            since,
            chrono::Utc::now(),
        )
    });
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
        offsite_behind: offsite_behind(&state).await,
        version: env!("CARGO_PKG_VERSION").into(),
        format_writes: schoolvault_engine::archive::FORMAT_VERSION,
        formats_read: std::iter::once(1)
            .chain(
                schoolvault_engine::archive::OLDEST_READ_VERSION
                    ..=schoolvault_engine::archive::FORMAT_VERSION,
            )
            .collect(),
        key_recovery_pending,
        key_rotation_due,
        key_since: key_since.map(|t| t.to_rfc3339()),
    })
}

/// The destinations behind for the stale-backup time, as lines (none when they cannot be
/// read: the status must always answer).
pub async fn offsite_behind(state: &AppState) -> Vec<String> {
    let config = state.config();
    if config.destinations.is_empty() {
        return Vec::new();
    }
    let Ok(vault) = state.vault().await else {
        return Vec::new();
    };
    let offsite = jobs::Offsite::from_config(&config, state.keychain_handle());
    let max_age = chrono::Duration::hours(i64::from(config.email.stale_hours.max(1)));
    offsite
        .behind(&vault, max_age, chrono::Utc::now())
        .await
        .map(|b| b.iter().map(jobs::Behind::line).collect())
        .unwrap_or_default()
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
        && saved.engine == form.engine
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
    CommandError::new(crate::dto::AppErrorCode::PasswordNeeded, why.to_string())
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
    let database = settings.database(password.as_deref().map(String::as_str));
    let probe = match &database {
        Database::Postgres(t) => postgres::probe(t).await?,
        Database::MariaDb(t) => schoolvault_engine::source::mysql::probe(t).await?,
    };
    Ok(ConnectionReport {
        target: database.describe(),
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
        engine: Engine::Postgres,
        host: "127.0.0.1".into(),
        port: 5432,
        name: DEMO_DB.into(),
        user: std::env::var("SCHOOLVAULT_DEMO_USER").unwrap_or_else(|_| "postgres".into()),
        tls: Tls::Disable,
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
    detached(move || async move { Ok(schoolvault_engine::demo::create(&server).await?) }).await?;
    let settings = form.to_settings(false)?;
    state.update_config(|c| c.database = Some(settings))?;
    status(state).await
}
