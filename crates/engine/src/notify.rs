//! Email to the administrators when a backup fails (lettre over SMTP: STARTTLS, implicit TLS,
//! or plain on a local relay), with a plain-text and an HTML part.
//!
//! The message says what failed and where (subject), and the time, the error, manual or
//! scheduled, what to do, the last successful backup, the machine and the app version (body).
//! An email that cannot be sent is the caller's to record; it never replaces the backup's own
//! outcome. The SMTP password comes from the environment or the keychain, never a file.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

/// How the SMTP connection is secured. Its settings names (`starttls`, `tls`, `plain`) are
/// also what the app's settings form sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(export))]
pub enum Security {
    /// STARTTLS on the submission port (587).
    #[default]
    StartTls,
    /// Implicit TLS (465).
    Tls,
    /// No encryption: only for a relay on this machine or a trusted network.
    Plain,
}

impl Security {
    /// The settings' name: `starttls`, `tls` or `plain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::StartTls => "starttls",
            Security::Tls => "tls",
            Security::Plain => "plain",
        }
    }

    /// The usual port: 587, 465 or 25.
    pub fn default_port(self) -> u16 {
        match self {
            Security::StartTls => 587,
            Security::Tls => 465,
            Security::Plain => 25,
        }
    }

    /// A settings name.
    ///
    /// # Errors
    /// `InvalidInput` naming the three choices.
    pub fn parse(s: &str) -> crate::Result<Security> {
        [Security::StartTls, Security::Tls, Security::Plain]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                crate::Error::new(
                    crate::ErrorKind::InvalidInput,
                    format!("The email security {s:?} is unknown"),
                    "Choose starttls (port 587), tls (port 465) or plain (a relay on this machine) in the email settings",
                )
            })
    }
}

/// Where and how to send.
#[derive(Clone)]
pub struct SmtpSettings {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Security.
    pub security: Security,
    /// Login, if the server wants one.
    pub user: Option<String>,
    /// The login's password (never logged).
    pub password: Option<Zeroizing<String>>,
    /// The sender.
    pub from: String,
    /// The administrators.
    pub to: Vec<String>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SmtpSettings({}:{} {:?}, user {:?}, to {:?})",
            self.host, self.port, self.security, self.user, self.to
        )
    }
}

/// What went wrong, for the failure email.
#[derive(Debug, Clone)]
pub struct Failure {
    /// When.
    pub at: DateTime<Utc>,
    /// `manual` or `scheduled`.
    pub kind: String,
    /// The database, `user@host:port/db`.
    pub database: String,
    /// The error's code.
    pub code: String,
    /// The error's text (with its guidance).
    pub error: String,
    /// The last successful backup, if any.
    pub last_success: Option<DateTime<Utc>>,
}

fn smtp_error(settings: &SmtpSettings, e: &dyn std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Io,
        format!(
            "The email could not be sent through {}:{} ({e})",
            settings.host, settings.port
        ),
        "Check the mail server, port, security and login in the email settings, then send a test email",
    )
}

fn mailbox(s: &str, what: &str) -> Result<Mailbox> {
    s.parse().map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("{s:?} is not an email address ({what})"),
            "Write it as name@school.example",
        )
    })
}

/// Send one message to every recipient (one email each, so one bad address does not stop
/// the others).
///
/// # Errors
/// `InvalidInput` for a bad address; `Io` when the server cannot be reached or refuses.
pub async fn send(settings: &SmtpSettings, subject: &str, text: &str, html: &str) -> Result<usize> {
    let from = mailbox(&settings.from, "sender")?;
    let builder = match settings.security {
        Security::Plain => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
        }
        Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
            .map_err(|e| smtp_error(settings, &e))?,
        Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
            .map_err(|e| smtp_error(settings, &e))?,
    };
    let mut builder = builder
        .port(settings.port)
        .timeout(Some(Duration::from_secs(30)));
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
    }
    let mailer = builder.build();
    if settings.to.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "No administrator email address is configured",
            "Add at least one address to the email settings",
        ));
    }
    let mut sent = 0;
    let mut first_error = None;
    for to in &settings.to {
        // A bad address (a typo in the school's user table) is reported, never a reason to
        // leave the other administrators uninformed.
        let recipient = match mailbox(to, "recipient") {
            Ok(m) => m,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        let message = Message::builder()
            .from(from.clone())
            .to(recipient)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(
                text.to_string(),
                html.to_string(),
            ))
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("building the email: {e}"),
                    "",
                )
            });
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        match mailer.send(message).await {
            Ok(_) => sent += 1,
            Err(e) => {
                first_error.get_or_insert(smtp_error(settings, &e));
            }
        }
    }
    match first_error {
        Some(e) if sent == 0 => Err(e),
        Some(e) => Err(e.context(format_args!("sent to {sent} of {}", settings.to.len()))),
        None => Ok(sent),
    }
}

/// This computer's name, for the emails ("this computer" when it has none).
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "this computer".into())
}

/// `s` safe inside HTML text.
pub fn escape_html(s: &str) -> String {
    html_escape(s)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plain-text list, one `- item` a line.
fn text_items(items: &[&str]) -> String {
    items
        .iter()
        .map(|a| format!("- {a}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An HTML list's items, escaped.
fn html_items(items: &[&str]) -> String {
    items
        .iter()
        .map(|a| format!("<li>{}</li>", html_escape(a)))
        .collect()
}

/// The failure email: subject, plain text, HTML.
pub fn failure_message(f: &Failure) -> (String, String, String) {
    let machine = hostname();
    let subject = format!("SchoolVault: {} backup of {} FAILED", f.kind, f.database);
    let last = f
        .last_success
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| "none".into());
    let actions = [
        "Read the error below: it says what happened and what to do.",
        "Check that the database server is running and reachable from this computer.",
        "Check the free space of the backup folder's disk.",
        "Run a backup by hand (Back up now, or `schoolvault backup`) once the cause is fixed.",
    ];
    let text = format!(
        "A {kind} backup of {db} failed.\n\nTime: {at}\nBackup type: {kind}\nError ({code}): {err}\n\nRecommended actions:\n{acts}\n\nLast successful backup: {last}\nMachine: {machine}\nSchoolVault {ver}\n",
        kind = f.kind,
        db = f.database,
        at = f.at.to_rfc3339(),
        code = f.code,
        err = f.error,
        acts = text_items(&actions),
        ver = env!("CARGO_PKG_VERSION"),
    );
    let html = format!(
        "<html><body><h2>A {kind} backup of {db} failed</h2><table>\
         <tr><td>Time</td><td>{at}</td></tr><tr><td>Backup type</td><td>{kind}</td></tr>\
         <tr><td>Error</td><td><b>{err}</b> ({code})</td></tr>\
         <tr><td>Last successful backup</td><td>{last}</td></tr>\
         <tr><td>Machine</td><td>{machine}</td></tr><tr><td>SchoolVault</td><td>{ver}</td></tr></table>\
         <h3>Recommended actions</h3><ul>{acts}</ul></body></html>",
        kind = html_escape(&f.kind),
        db = html_escape(&f.database),
        at = f.at.to_rfc3339(),
        code = html_escape(&f.code),
        err = html_escape(&f.error),
        last = html_escape(&last),
        machine = html_escape(&machine),
        ver = env!("CARGO_PKG_VERSION"),
        acts = html_items(&actions),
    );
    (subject, text, html)
}

/// The email of a failed routine test restore: subject, plain text, HTML. The backup itself
/// was made; what failed is the proof that it restores.
pub fn test_restore_failure_message(f: &Failure, backup_id: &str) -> (String, String, String) {
    let machine = hostname();
    let subject = format!(
        "SchoolVault: the weekly test restore of {} FAILED",
        f.database
    );
    let actions = [
        "Read the error below: it says what happened and what to do.",
        "Run the test restore again by hand (Backups → Test restore, or `schoolvault verify ID --test-restore`).",
        "Until it passes, do not rely on this backup: keep older backups (check the retention settings).",
    ];
    let text = format!(
        "The weekly test restore of backup {backup_id} of {db} failed: the backup may not restore.\n\n\
         Time: {at}\nBackup: {backup_id}\nError ({code}): {err}\n\nRecommended actions:\n{acts}\n\n\
         Machine: {machine}\nSchoolVault {ver}\n",
        db = f.database,
        at = f.at.to_rfc3339(),
        code = f.code,
        err = f.error,
        acts = text_items(&actions),
        ver = env!("CARGO_PKG_VERSION"),
    );
    let html = format!(
        "<html><body><h2>The weekly test restore of {db} failed</h2><table>\
         <tr><td>Time</td><td>{at}</td></tr><tr><td>Backup</td><td>{id}</td></tr>\
         <tr><td>Error</td><td><b>{err}</b> ({code})</td></tr>\
         <tr><td>Machine</td><td>{machine}</td></tr></table>\
         <h3>Recommended actions</h3><ul>{acts}</ul></body></html>",
        db = html_escape(&f.database),
        at = f.at.to_rfc3339(),
        id = html_escape(backup_id),
        code = html_escape(&f.code),
        err = html_escape(&f.error),
        machine = html_escape(&machine),
        acts = html_items(&actions),
    );
    (subject, text, html)
}

/// The school ERP's active administrators (its `"User"` table), as the old system emailed them.
pub const DEFAULT_ADMIN_QUERY: &str = "SELECT DISTINCT email::text FROM \"User\" \
     WHERE \"isActive\" AND role::text IN ('ADMIN', 'SUPER_ADMIN') \
     AND email IS NOT NULL AND email <> '' ORDER BY 1";

/// The administrators' addresses read from the school database with `query`, remembered in
/// `cache`; when the database cannot be read (it may be why the backup failed), the last list
/// that could be read. The error, if any, is returned beside the list.
pub async fn school_admins(
    target: &crate::source::postgres::PgTarget,
    query: &str,
    cache: &std::path::Path,
) -> (Vec<String>, Option<Error>) {
    let read = async {
        let mut conn = target.connect().await?;
        let rows: Vec<String> = sqlx::query_scalar(query)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| {
                crate::source::postgres::db_error(&e, target)
                    .context("reading the administrators' addresses")
            })?;
        Ok::<_, Error>(rows)
    }
    .await;
    match read {
        Ok(list) => {
            if let Ok(json) = serde_json::to_vec(&list) {
                let _ = crate::storage::write_private(cache, &json);
            }
            (list, None)
        }
        Err(e) => {
            let cached = std::fs::read(cache)
                .ok()
                .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
                .unwrap_or_default();
            (cached, Some(e))
        }
    }
}

/// A week of backups, for the weekly report.
#[derive(Debug, Clone)]
pub struct Digest {
    /// The database, `user@host:port/db`.
    pub database: String,
    /// The start of the week reported.
    pub from: DateTime<Utc>,
    /// Its end (when the report is made).
    pub to: DateTime<Utc>,
    /// Backups that succeeded in the week.
    pub succeeded: usize,
    /// Backups that failed in the week.
    pub failed: usize,
    /// The newest failures: when, and the error.
    pub failures: Vec<(DateTime<Utc>, String)>,
    /// Emails that could not be sent in the week.
    pub email_problems: usize,
    /// The newest successful backup: when, its id, its size in bytes.
    pub last_success: Option<(DateTime<Utc>, String, u64)>,
    /// Backups kept now, and their total size in bytes.
    pub kept: (usize, u64),
    /// The newest routine test restore: when, whether it passed, what it said.
    pub last_test_restore: Option<(DateTime<Utc>, bool, String)>,
    /// Each offsite destination's state, one line each.
    pub offsite: Vec<String>,
    /// The current key's fingerprint, when its recovery copy was never saved (generated in the
    /// app, the copy owed): without it a lost computer loses every backup.
    pub recovery_copy_owed: Option<String>,
}

/// The weekly report's line for a key whose recovery copy is owed.
fn recovery_copy_line(fingerprint: &str) -> String {
    format!("The encryption key {fingerprint} has NO saved recovery copy: if this computer is lost, every backup is lost with it. Open SchoolVault on the backup computer and save the recovery copy (the set-up screen asks for it).")
}

/// The weekly report: subject, plain text, HTML. The subject says at once whether anything
/// failed.
pub fn digest_message(d: &Digest) -> (String, String, String) {
    let machine = hostname();
    let verdict = match (d.succeeded, d.failed) {
        (0, _) => "NO successful backup".to_string(),
        (ok, 0) => format!("{ok} backup(s), all succeeded"),
        (ok, bad) => format!("{ok} backup(s) succeeded, {bad} FAILED"),
    };
    let subject = format!("SchoolVault weekly report for {}: {verdict}", d.database);
    let last = d.last_success.as_ref().map_or_else(
        || "none".to_string(),
        |(t, id, bytes)| format!("{} ({id}, {})", t.to_rfc3339(), crate::size::human(*bytes)),
    );
    let failures: Vec<String> = d
        .failures
        .iter()
        .map(|(t, e)| format!("{}: {e}", t.to_rfc3339()))
        .collect();
    let mut text = format!(
        "SchoolVault's weekly report for {db}, {from} to {to}.\n\n\
         Backups that succeeded: {ok}\nBackups that failed: {bad}\n\
         Last successful backup: {last}\nBackups kept: {kept} ({kept_size})\n",
        db = d.database,
        from = d.from.format("%Y-%m-%d"),
        to = d.to.format("%Y-%m-%d"),
        ok = d.succeeded,
        bad = d.failed,
        kept = d.kept.0,
        kept_size = crate::size::human(d.kept.1),
    );
    let tested = d.last_test_restore.as_ref().map_or_else(
        || "none yet".to_string(),
        |(t, ok, msg)| {
            format!(
                "{} ({}: {msg})",
                t.to_rfc3339(),
                if *ok { "passed" } else { "FAILED" }
            )
        },
    );
    text.push_str(&format!("Last test restore: {tested}\n"));
    if let Some(fp) = &d.recovery_copy_owed {
        text.push_str(&format!("\n{}\n\n", recovery_copy_line(fp)));
    }
    for line in &d.offsite {
        text.push_str(&format!("Offsite copies at {line}\n"));
    }
    if d.email_problems > 0 {
        text.push_str(&format!(
            "Emails that could not be sent: {}\n",
            d.email_problems
        ));
    }
    if !failures.is_empty() {
        text.push_str("\nFailures (newest first):\n");
        for f in &failures {
            text.push_str(&format!("- {f}\n"));
        }
        text.push_str(
            "\nOpen SchoolVault on the backup computer and look at Activity for what to do.\n",
        );
    }
    text.push_str(&format!(
        "\nMachine: {machine}\nSchoolVault {}\nYou get this report every Monday; turn it off in SchoolVault's settings (Email).\n",
        env!("CARGO_PKG_VERSION")
    ));
    let mut html = format!(
        "<html><body><h2>Weekly report for {db}</h2><p>{from} to {to}</p><table>\
         <tr><td>Backups that succeeded</td><td>{ok}</td></tr>\
         <tr><td>Backups that failed</td><td>{bad}</td></tr>\
         <tr><td>Last successful backup</td><td>{last}</td></tr>\
         <tr><td>Backups kept</td><td>{kept} ({kept_size})</td></tr>\
         <tr><td>Last test restore</td><td>{tested}</td></tr>",
        db = html_escape(&d.database),
        from = d.from.format("%Y-%m-%d"),
        to = d.to.format("%Y-%m-%d"),
        ok = d.succeeded,
        bad = if d.failed > 0 {
            format!("<b>{}</b>", d.failed)
        } else {
            "0".into()
        },
        last = html_escape(&last),
        kept = d.kept.0,
        kept_size = crate::size::human(d.kept.1),
        tested = html_escape(&tested),
    );
    if let Some(fp) = &d.recovery_copy_owed {
        html.push_str(&format!(
            "<tr><td><b>Encryption key</b></td><td><b>{}</b></td></tr>",
            html_escape(&recovery_copy_line(fp))
        ));
    }
    if d.email_problems > 0 {
        html.push_str(&format!(
            "<tr><td>Emails that could not be sent</td><td>{}</td></tr>",
            d.email_problems
        ));
    }
    for line in &d.offsite {
        html.push_str(&format!(
            "<tr><td>Offsite copies</td><td>{}</td></tr>",
            html_escape(line)
        ));
    }
    html.push_str("</table>");
    if !failures.is_empty() {
        html.push_str("<h3>Failures</h3><ul>");
        for f in &failures {
            html.push_str(&format!("<li>{}</li>", html_escape(f)));
        }
        html.push_str("</ul><p>Open SchoolVault on the backup computer and look at Activity for what to do.</p>");
    }
    html.push_str(&format!(
        "<p>{} · SchoolVault {} · every Monday; turn it off in SchoolVault's settings (Email).</p></body></html>",
        html_escape(&machine),
        env!("CARGO_PKG_VERSION")
    ));
    (subject, text, html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn week() -> Digest {
        let to = Utc::now();
        Digest {
            database: "erp@db:5432/school".into(),
            from: to - chrono::Duration::days(7),
            to,
            succeeded: 7,
            failed: 0,
            failures: Vec::new(),
            email_problems: 0,
            last_success: None,
            kept: (7, 1000),
            last_test_restore: None,
            offsite: Vec::new(),
            recovery_copy_owed: None,
        }
    }

    #[test]
    fn the_weekly_report_says_when_the_keys_recovery_copy_is_owed() {
        let (_, text, html) = digest_message(&week());
        assert!(!text.contains("recovery copy"), "{text}");
        assert!(!html.contains("recovery copy"), "{html}");
        let owed = Digest {
            recovery_copy_owed: Some("4220efac447a6419".into()),
            ..week()
        };
        let (_, text, html) = digest_message(&owed);
        assert!(
            text.contains("The encryption key 4220efac447a6419 has NO saved recovery copy"),
            "{text}"
        );
        assert!(html.contains("NO saved recovery copy"), "{html}");
    }
}
