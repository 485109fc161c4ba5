//! Email: where its settings come from (the SCHOOLVAULT_SMTP_* environment, else the settings
//! file), who receives it, the failure notice after a failed backup, and the `notify` commands
//! (a test email, the weekly report on demand).

use schoolvault_engine::config::Config;
use schoolvault_engine::jobs::{self, EmailPlan, Vault};
use schoolvault_engine::keychain::OsKeychain;
use schoolvault_engine::notify::{Security, SmtpSettings};
use schoolvault_engine::{Error, ErrorKind, Result};
use serde::Serialize;

use crate::args::NotifyAction;
use crate::output::Report;
use crate::session::Session;

/// The SMTP settings: the environment's (SCHOOLVAULT_SMTP_HOST set), else the settings
/// file's (password from the keychain); None when email is off.
pub(crate) fn smtp_settings(config: &Config) -> Result<Option<SmtpSettings>> {
    let Ok(host) = std::env::var("SCHOOLVAULT_SMTP_HOST") else {
        return config.email.smtp(&OsKeychain);
    };
    let security = match std::env::var("SCHOOLVAULT_SMTP_SECURITY") {
        Ok(s) => Security::parse(&s).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("SCHOOLVAULT_SMTP_SECURITY is {s:?}"),
                "Use starttls (port 587), tls (port 465) or plain (a local relay only)",
            )
        })?,
        Err(_) => Security::StartTls,
    };
    let default_port = security.default_port();
    let port = match std::env::var("SCHOOLVAULT_SMTP_PORT") {
        Ok(p) => p.parse().map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("SCHOOLVAULT_SMTP_PORT is {p:?}, not a port number"),
                "Use 587, 465 or 25",
            )
        })?,
        Err(_) => default_port,
    };
    let to: Vec<String> = std::env::var("SCHOOLVAULT_NOTIFY_TO")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    Ok(Some(SmtpSettings {
        host,
        port,
        security,
        user: std::env::var("SCHOOLVAULT_SMTP_USER").ok(),
        password: std::env::var("SCHOOLVAULT_SMTP_PASSWORD")
            .ok()
            .map(zeroize::Zeroizing::new),
        from: std::env::var("SCHOOLVAULT_NOTIFY_FROM")
            .unwrap_or_else(|_| "schoolvault@localhost".to_string()),
        to,
    }))
}

/// The email settings as the engine's jobs use them: the settings file's, as the app reads
/// them ([`EmailPlan::from_config`]), with the SMTP server and the school's administrators
/// from the environment where it sets them.
pub(crate) fn email_plan(config: &Config) -> EmailPlan {
    let file = EmailPlan::from_config(&config.email, &OsKeychain);
    let from_env = std::env::var_os("SCHOOLVAULT_SMTP_HOST").is_some();
    EmailPlan {
        smtp: if from_env {
            smtp_settings(config)
        } else {
            file.smtp
        },
        // Emails turned on by the environment go to the file's administrators too.
        admins_query: if from_env || std::env::var_os("SCHOOLVAULT_NOTIFY_DB_ADMINS").is_some() {
            admins_query(config)
        } else {
            file.admins_query
        },
        ..file
    }
}

/// The query for the school's administrators, when their addresses are to be read from the
/// school database (SCHOOLVAULT_NOTIFY_DB_ADMINS=1; SCHOOLVAULT_NOTIFY_QUERY overrides the ERP's).
pub(crate) fn admins_query(config: &Config) -> Option<String> {
    match std::env::var("SCHOOLVAULT_NOTIFY_DB_ADMINS").as_deref() {
        Ok("1" | "true" | "yes") => Some(
            std::env::var("SCHOOLVAULT_NOTIFY_QUERY")
                .unwrap_or_else(|_| schoolvault_engine::notify::DEFAULT_ADMIN_QUERY.to_string()),
        ),
        Ok(_) => None,
        Err(_) => config.email.admins_query(),
    }
}

/// The recipients, with the school's administrators as last read when they are emailed too.
pub(crate) fn school_admins_too(
    vault: &Vault,
    config: &Config,
    settings: &SmtpSettings,
) -> SmtpSettings {
    if admins_query(config).is_some() {
        jobs::with_known_admins(vault, settings)
    } else {
        settings.clone()
    }
}

/// The error of a `notify` command when there is nowhere to send email.
fn email_not_set_up() -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "Email is not set up",
        "Turn it on in SchoolVault's settings (Email), or set SCHOOLVAULT_SMTP_HOST (and _PORT, _SECURITY, _USER, _PASSWORD), SCHOOLVAULT_NOTIFY_FROM and SCHOOLVAULT_NOTIFY_TO",
    )
}

/// How many addresses a `notify` command's email went to.
#[derive(Serialize)]
pub(crate) struct Sent {
    /// How many addresses it went to.
    sent: usize,
    /// What was sent, for the text: "Test email", "Weekly report".
    #[serde(skip)]
    what: &'static str,
}

impl Report for Sent {
    fn text(&self) -> Result<Vec<String>> {
        Ok(vec![format!(
            "{} sent to {} address(es).",
            self.what, self.sent
        )])
    }
}

/// `notify test` and `notify digest`.
///
/// # Errors
/// `InvalidInput` when email is not set up; sending errors.
pub(crate) async fn command(session: &Session, action: NotifyAction) -> Result<Sent> {
    let settings = &session.settings;
    match action {
        NotifyAction::Test => {
            let settings = smtp_settings(settings)?.ok_or_else(email_not_set_up)?;
            let n = schoolvault_engine::notify::send(
                &settings,
                "SchoolVault test email",
                "This is a test email from SchoolVault: failure notices will reach you.",
                "<p>This is a test email from <b>SchoolVault</b>: failure notices will reach you.</p>",
            )
            .await?;
            Ok(Sent {
                sent: n,
                what: "Test email",
            })
        }
        NotifyAction::Digest => {
            let smtp = smtp_settings(settings)?.ok_or_else(email_not_set_up)?;
            let smtp = school_admins_too(&session.vault, settings, &smtp);
            // The database only names the report; it need not be reachable.
            let database = session
                .target("report on")
                .map_or_else(|_| "the school database".to_string(), |t| t.describe());
            let tz = std::env::var("SCHOOLVAULT_TZ")
                .ok()
                .filter(|z| !z.is_empty())
                .or_else(|| settings.schedule.timezone.clone());
            let n = jobs::weekly_digest(
                &session.vault,
                &smtp,
                &database,
                tz.as_deref(),
                chrono::Utc::now(),
                true,
            )
            .await?
            .unwrap_or(0);
            Ok(Sent {
                sent: n,
                what: "Weekly report",
            })
        }
    }
}
