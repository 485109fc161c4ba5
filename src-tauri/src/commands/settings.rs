//! The settings screen: its values, checked and saved (the SMTP password kept only for the
//! server it was saved for), the schedule's preview, a test email, and acknowledging a failure.

use std::path::Path;

use chrono::Utc;
use schoolvault_engine::config::SMTP_PASSWORD_ACCOUNT;
use schoolvault_engine::jobs;
use schoolvault_engine::notify::Security;
use schoolvault_engine::schedule::Schedule;
use tauri::State;

use super::{detached, Res};
use crate::dto::{CommandError, Settings};
use crate::state::AppState;

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
        // A hand-edited name the engine does not know shows as the default (the settings
        // screen saves a known one; `Config::validate` names the bad one).
        smtp_security: Security::parse(&c.email.security).unwrap_or_default(),
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
///
/// [`pick_backup_dir`]: super::pick_backup_dir
#[tauri::command]
pub async fn save_settings(
    state: State<'_, AppState>,
    settings: Settings,
    smtp_password: Option<String>,
) -> Res<Settings> {
    let dir = settings.backup_dir.trim();
    if dir.is_empty() || !Path::new(dir).is_absolute() {
        return Err(CommandError::new(
            schoolvault_engine::ErrorKind::InvalidInput,
            "The backup folder must be a full path (e.g. /srv/backups).",
        ));
    }
    // Only the current folder, the default one, or one chosen in the folder dialog: the
    // backup folder decides which files the web view may name.
    let dir = state.allowed_backup_dir(Path::new(dir))?;
    let apply = |c: &mut schoolvault_engine::config::Config| settings.apply_to(c, &dir);
    // The settings as they would be saved, checked by the engine's rules (the same as for a
    // hand-edited file and the CLI; e.g. no SMTP login over `plain` to another machine)
    // before anything is changed.
    let mut candidate = state.config();
    apply(&mut candidate);
    candidate.validate()?;
    if state.config().app.start_at_login != settings.start_at_login {
        state
            .shell()
            .autostart(settings.start_at_login)
            .map_err(|e| {
                CommandError::new(
                    schoolvault_engine::ErrorKind::Io,
                    format!("Start at login could not be changed: {e}."),
                )
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
        apply(c);
        c.email.password_saved = smtp_saved;
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
    let to_plain = settings.smtp_security == Security::Plain
        && Security::parse(&old.security).ok() != Some(Security::Plain);
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
                schoolvault_engine::ErrorKind::InvalidInput,
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
