//! Emails about the backups: the failure email (to the configured and the school's
//! administrators), the stale-backup alert, the weekly report, and the remembered list of the
//! school's administrators they go to.

use chrono::{DateTime, Utc};

use crate::archive::BackupKind;
use crate::catalog::Operation;
use crate::catalog::{BackupRecord, RunRecord};
use crate::error::{Error, Result};
use crate::source::postgres::PgTarget;

use crate::jobs::test_restore::last_test_restore;
use crate::jobs::{run_record, Vault, APP_VERSION};

/// `settings` with the school database's administrators (read with `admins_query`, or the
/// list remembered when the database is down) added to its recipients.
pub(super) async fn with_school_admins(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
    admins_query: Option<&str>,
    target: Option<&PgTarget>,
) -> crate::notify::SmtpSettings {
    let mut settings = settings.clone();
    if let (Some(query), Some(target)) = (admins_query, target) {
        let (admins, _) = refresh_admins(vault, target, query).await;
        for a in admins {
            if !settings.to.iter().any(|t| t.eq_ignore_ascii_case(&a)) {
                settings.to.push(a);
            }
        }
    }
    settings
}

/// Email the administrators that `error` made a `kind` backup of `target` fail, and record
/// the attempt in the history. The caller still reports the backup's own error.
///
/// # Errors
/// The sending error (also recorded in the history).
pub async fn notify_failure(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
    admins_query: Option<&str>,
    kind: BackupKind,
    target: &crate::source::Database,
    error: &Error,
) -> Result<usize> {
    let started = Utc::now();
    let settings = &with_school_admins(vault, settings, admins_query, target.postgres()).await;
    let last_success = vault.last_success().await.ok().flatten();
    let failure = crate::notify::Failure {
        at: started,
        kind: kind.as_str().to_string(),
        database: target.describe(),
        code: error.code().to_string(),
        error: error.to_string(),
        last_success,
    };
    let (subject, text, html) = crate::notify::failure_message(&failure);
    let sent = crate::notify::send(settings, &subject, &text, &html).await;
    let summary = sent
        .as_ref()
        .ok()
        .map(|n| format!("failure email sent to {n} administrator(s)"));
    vault
        .record_run(run_record(
            Operation::Notify,
            Some(kind),
            started,
            &sent,
            None,
            summary,
        ))
        .await;
    sent
}

/// The stale-backup alert: when no backup succeeded for `max_age` (counted from the newest
/// successful one), email the administrators once — also when the computer was off, as the
/// app and `schedule run-due` call this at start, before catching up. Sent once per last
/// success (remembered beside the catalog); recorded in the history. `Ok(None)`: nothing due.
///
/// # Errors
/// The sending error (also recorded).
pub async fn stale_alert(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
    database: &str,
    max_age: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Option<usize>> {
    let Some(last) = vault.last_success().await? else {
        return Ok(None);
    };
    if now - last < max_age {
        return Ok(None);
    }
    let marker = vault.lock_dir.join("stale-alert.json");
    let remembered = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    let at = |field: &str| -> Option<DateTime<Utc>> {
        remembered[field]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    if at("last_success") == Some(last) {
        return Ok(None);
    }
    // An alert that could not be sent is tried again an hour later, not at every look.
    if at("failed_for") == Some(last) && at("tried_at").is_some_and(|t| now - t < RETRY_ALERT) {
        return Ok(None);
    }
    let hours = (now - last).num_hours();
    let subject = format!("SchoolVault: no backup of {database} for {hours} hours");
    let text = format!(
        "No backup of {database} has succeeded since {last} ({hours} hours ago).\n\n\
         What to do:\n\
         - Open SchoolVault on the backup computer and look at Activity for the error.\n\
         - Check that the computer is on at the scheduled time, and that the database server is reachable.\n\
         - Make a backup now (\"Back up now\", or `schoolvault backup`).\n\n\
         Sent by SchoolVault {APP_VERSION} on {host}. You get this once until a backup succeeds again.\n",
        last = last.to_rfc3339(),
        host = crate::notify::hostname(),
    );
    let html = format!(
        "<p><b>No backup of {database} has succeeded since {last}</b> ({hours} hours ago).</p>\
         <ul><li>Open SchoolVault on the backup computer and look at Activity for the error.</li>\
         <li>Check that the computer is on at the scheduled time, and that the database server is reachable.</li>\
         <li>Make a backup now.</li></ul><p>SchoolVault {APP_VERSION} on {host}. Sent once until a backup succeeds again.</p>",
        database = crate::notify::escape_html(database),
        last = last.to_rfc3339(),
        host = crate::notify::escape_html(&crate::notify::hostname()),
    );
    let started = Utc::now();
    let sent = crate::notify::send(settings, &subject, &text, &html).await;
    let summary = sent.as_ref().ok().map(|n| {
        format!("stale-backup alert sent to {n} administrator(s): no backup for {hours} hours")
    });
    vault
        .record_run(run_record(
            Operation::Alert,
            None,
            started,
            &sent,
            None,
            summary,
        ))
        .await;
    let remember = match &sent {
        Ok(_) => serde_json::json!({"last_success": last.to_rfc3339()}),
        Err(_) => serde_json::json!({
            "last_success": remembered["last_success"],
            "failed_for": last.to_rfc3339(),
            "tried_at": now.to_rfc3339(),
        }),
    };
    let _ = crate::storage::write_private(&marker, remember.to_string().as_bytes());
    Ok(Some(sent?))
}

/// The destination alert: when a destination has owed copies (pending or failed) for
/// `max_age` (the stale-backup time), email the administrators once for that episode (it
/// ends when the destination holds everything again). Remembered beside the catalog per
/// destination; recorded in the history; an alert that could not be sent is tried again
/// [`RETRY_ALERT`] later. Returns the destinations alerted.
///
/// # Errors
/// `Catalog`; the first sending error (also recorded).
pub async fn destination_alert(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
    offsite: &crate::jobs::offsite::Offsite,
    max_age: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let marker = vault.lock_dir.join("destination-alert.json");
    let mut remembered: serde_json::Map<String, serde_json::Value> = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let behind = offsite.behind(vault, max_age, now).await?;
    // A destination that is up to date (or not behind for long): its next episode gets its
    // own alert.
    remembered.retain(|name, _| behind.iter().any(|b| &b.destination == name));
    let mut alerted = Vec::new();
    let mut first_error = None;
    for b in &behind {
        let d = &b.destination;
        let episode = b.since.to_rfc3339();
        let mine = remembered.get(d).cloned().unwrap_or_default();
        if mine["episode"].as_str() == Some(episode.as_str()) {
            continue;
        }
        let tried = mine["failed_for"].as_str() == Some(episode.as_str())
            && mine["tried_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| now - t.with_timezone(&Utc) < RETRY_ALERT);
        if tried {
            continue;
        }
        let hours = (now - b.since).num_hours();
        let waiting = b.waiting;
        let why = b.error.clone().unwrap_or_else(|| "not copied yet".into());
        let subject = format!("SchoolVault: no offsite copy to {d} for {hours} hours");
        let text = format!(
            "The offsite destination {name} has had no successful copy since {since} ({hours} hours); {waiting} backup(s) wait.\n\n\
             The last error: {why}\n\n\
             What to do:\n\
             - Check that the destination is there (the USB disk plugged in, the NAS on, the network and the bucket reachable).\n\
             - Open SchoolVault's settings (Offsite copies) and use \"Test\", then \"Sync now\" (or `schoolvault sync`).\n\n\
             The backups themselves go on; until this is fixed they are only on the backup computer.\n\
             Sent by SchoolVault {APP_VERSION} on {host}. You get this once until the destination is up to date again.\n",
            name = d,
            since = b.since.to_rfc3339(),
            host = crate::notify::hostname(),
        );
        let html = format!(
            "<p><b>The offsite destination {name} has had no successful copy since {since}</b> ({hours} hours); {waiting} backup(s) wait.</p>\
             <p>The last error: {why}</p>\
             <ul><li>Check that the destination is there (the USB disk plugged in, the NAS on, the network and the bucket reachable).</li>\
             <li>Open SchoolVault's settings (Offsite copies): \"Test\", then \"Sync now\".</li></ul>\
             <p>SchoolVault {APP_VERSION} on {host}. Sent once until the destination is up to date again.</p>",
            name = crate::notify::escape_html(d),
            since = b.since.to_rfc3339(),
            why = crate::notify::escape_html(&why),
            host = crate::notify::escape_html(&crate::notify::hostname()),
        );
        let started = Utc::now();
        let sent = crate::notify::send(settings, &subject, &text, &html).await;
        let summary = sent.as_ref().ok().map(|n| {
            format!("offsite alert sent to {n} administrator(s): no copy to {d} for {hours} hours")
        });
        vault
            .record_run(run_record(
                Operation::Alert,
                None,
                started,
                &sent,
                None,
                summary,
            ))
            .await;
        match sent {
            Ok(_) => {
                remembered.insert(d.clone(), serde_json::json!({ "episode": episode }));
                alerted.push(d.clone());
            }
            Err(e) => {
                remembered.insert(
                    d.clone(),
                    serde_json::json!({
                        "episode": mine["episode"],
                        "failed_for": episode,
                        "tried_at": now.to_rfc3339(),
                    }),
                );
                first_error.get_or_insert(e);
            }
        }
    }
    let _ = crate::storage::write_private(
        &marker,
        serde_json::Value::Object(remembered).to_string().as_bytes(),
    );
    match first_error {
        Some(e) => Err(e),
        None => Ok(alerted),
    }
}

/// How long after a stale-backup alert that could not be sent it is tried again.
pub const RETRY_ALERT: chrono::Duration = chrono::Duration::hours(1);

/// Forget which week had its report, so that turning the report on again starts with the
/// next Monday rather than sending one at once.
pub fn forget_digest(vault: &Vault) {
    let _ = std::fs::remove_file(vault.lock_dir.join("digest.json"));
}

/// When the weekly report goes out: Monday 07:00, in the schedule's time zone.
pub const DIGEST_CRON: &str = "0 7 * * 1";

/// The weekly report (optional): on the first call after Monday 07:00 (in `zone`, else local
/// time), email the week's backups — succeeded, failed with their errors, the last success,
/// what is kept — once per week (remembered beside the catalog, also when it could not be
/// sent). The first call after it is turned on only remembers the week: the first report
/// comes the next Monday ([`forget_digest`] when it is turned on). `force` sends now
/// (`schoolvault notify digest`). Recorded in the history. `Ok(None)`: nothing due.
///
/// # Errors
/// The sending error (also recorded); `InvalidInput` for a bad time zone.
pub async fn weekly_digest(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
    database: &str,
    zone: Option<&str>,
    now: DateTime<Utc>,
    force: bool,
) -> Result<Option<usize>> {
    let slot = crate::schedule::Schedule::parse(DIGEST_CRON, zone)?
        .due(None, now)?
        .map(|d| d.slot);
    let marker = vault.lock_dir.join("digest.json");
    let remember = |slot: Option<DateTime<Utc>>| {
        if let Some(slot) = slot {
            let _ = crate::storage::write_private(
                &marker,
                serde_json::json!({"week": slot.to_rfc3339()})
                    .to_string()
                    .as_bytes(),
            );
        }
    };
    if !force {
        let sent_for: Option<DateTime<Utc>> = std::fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["week"].as_str().map(str::to_string))
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        match (sent_for, slot) {
            (None, _) => {
                remember(slot);
                return Ok(None);
            }
            (Some(done), Some(slot)) if done >= slot => return Ok(None),
            (Some(_), None) => return Ok(None),
            _ => {}
        }
    }
    let from = now - chrono::Duration::days(7);
    let runs: Vec<RunRecord> = vault
        .catalog
        .runs(5000)
        .await?
        .into_iter()
        .filter(|r| r.started_at >= from && r.started_at <= now)
        .collect();
    let backups = runs.iter().filter(|r| r.operation == Operation::Backup);
    let failures: Vec<(DateTime<Utc>, String)> = backups
        .clone()
        .filter(|r| !r.outcome.is_success())
        .map(|r| (r.started_at, r.message.clone().unwrap_or_default()))
        .collect();
    let all = vault.catalog.list().await?;
    let kept: Vec<&BackupRecord> = all.iter().filter(|b| b.status.is_complete()).collect();
    let last_success = kept
        .iter()
        .filter(|b| b.kind != BackupKind::Safety)
        .max_by_key(|b| b.created_at)
        .map(|b| (b.created_at, b.id.clone(), b.size));
    let digest = crate::notify::Digest {
        database: database.to_string(),
        from,
        to: now,
        succeeded: backups.clone().filter(|r| r.outcome.is_success()).count(),
        failed: failures.len(),
        failures: failures.into_iter().take(5).collect(),
        email_problems: runs
            .iter()
            .filter(|r| r.operation.is_email() && !r.outcome.is_success())
            .count(),
        last_success,
        kept: (kept.len(), kept.iter().map(|b| b.size).sum()),
        last_test_restore: last_test_restore(vault)
            .filter(|t| !t.unavailable)
            .map(|t| (t.at, t.ok, t.message)),
        offsite: offsite_lines(&vault.catalog.copies().await?),
        recovery_copy_owed: vault.keys.current().ok().and_then(|(k, _)| {
            let fp = k.fingerprint().to_string();
            crate::keychain::recovery_pending(&vault.lock_dir, &fp).then_some(fp)
        }),
    };
    let (subject, text, html) = crate::notify::digest_message(&digest);
    let started = Utc::now();
    let sent = crate::notify::send(settings, &subject, &text, &html).await;
    let summary = sent.as_ref().ok().map(|n| {
        format!(
            "weekly report sent to {n} administrator(s): {} succeeded, {} failed",
            digest.succeeded, digest.failed
        )
    });
    vault
        .record_run(run_record(
            Operation::Digest,
            None,
            started,
            &sent,
            None,
            summary,
        ))
        .await;
    // Tried once a week: a report that could not be sent is in the history (and the next
    // one covers the week again), never resent at every look.
    remember(slot);
    Ok(Some(sent?))
}

/// Each destination's state for the weekly report: how many copies it holds, and what waits
/// since when and why.
fn offsite_lines(copies: &[crate::catalog::CopyRecord]) -> Vec<String> {
    let mut names: Vec<&str> = copies.iter().map(|c| c.destination.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let t = crate::jobs::offsite::Tally::of(name, copies);
            match t.waiting_since {
                None => format!("{name}: {} copies, up to date", t.done),
                Some(since) => format!(
                    "{name}: {} copies, {} WAITING since {} ({})",
                    t.done,
                    t.pending + t.failed,
                    since.format("%Y-%m-%d %H:%M UTC"),
                    t.last_error.as_deref().unwrap_or("not copied yet")
                ),
            }
        })
        .collect()
}

/// `settings` with the school's administrators added, as remembered beside the catalog at the
/// last backup (or failure email): for the stale alert and the weekly report, which must not
/// query the school database at every look at the schedule.
pub fn with_known_admins(
    vault: &Vault,
    settings: &crate::notify::SmtpSettings,
) -> crate::notify::SmtpSettings {
    let mut settings = settings.clone();
    let known: Vec<String> = std::fs::read(vault.lock_dir.join("administrators.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for a in known {
        if !settings.to.iter().any(|t| t.eq_ignore_ascii_case(&a)) {
            settings.to.push(a);
        }
    }
    settings
}

/// Read the school's administrators for failure emails and remember them beside the catalog
/// (the list is used when the database cannot be read).
pub async fn refresh_admins(
    vault: &Vault,
    target: &PgTarget,
    query: &str,
) -> (Vec<String>, Option<Error>) {
    crate::notify::school_admins(target, query, &vault.lock_dir.join("administrators.json")).await
}
