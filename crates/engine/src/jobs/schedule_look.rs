//! A look at the schedule, the one the app's scheduler and `schoolvault schedule` share: the
//! stale alert and weekly report, the slot to run (or retry after a failure, or catch up after
//! the computer was off) under the run lock and the watchdog, pruning, the failure email and
//! the weekly test restore. The clock is passed in.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::archive::BackupKind;
use crate::catalog::BackupRecord;
use crate::catalog::Operation;
use crate::config::{Config, EmailSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::keychain::Keychain;
use crate::notify::SmtpSettings;
use crate::progress::{Progress, Watched};
use crate::retention::{Prune, Retention};
use crate::schedule::{Due, Schedule};
use crate::source::Database;

use crate::jobs::alerts::{
    destination_alert, notify_failure, stale_alert, weekly_digest, with_known_admins,
};
use crate::jobs::backup::{backup_locked, BackupOptions};
use crate::jobs::maintenance::prune_locked;
use crate::jobs::offsite::{sync, DestinationReport, Offsite, SyncOptions};
use crate::jobs::test_restore::{notify_test_restore_failure, routine_test_restore};
use crate::jobs::undo::backup_mariadb_locked;
use crate::jobs::verify::VerifyReport;
use crate::jobs::watchdog::watch;
use crate::jobs::Cancel;
use crate::jobs::{run_record, Vault};

/// How long after a failed scheduled backup its slot is tried again.
pub const RETRY_AFTER: chrono::Duration = chrono::Duration::minutes(30);
/// How many times a slot is tried before waiting for the next one.
pub const SLOT_ATTEMPTS: usize = 3;

/// What [`run_due_with`] did.
#[derive(Debug, Clone, Serialize)]
pub struct DueOutcome {
    /// The slot that was due, if any.
    pub due: Option<Due>,
    /// The backup it made.
    pub backup: Option<BackupRecord>,
    /// What retention removed after it.
    pub pruned: Vec<Prune>,
}

impl DueOutcome {
    fn nothing() -> DueOutcome {
        DueOutcome {
            due: None,
            backup: None,
            pruned: Vec::new(),
        }
    }
}

/// The slot to run now, if any, and whether it is a retry of a failed attempt.
///
/// A slot whose scheduled backup failed is tried again [`RETRY_AFTER`] later (after a wake the
/// network may not be up yet), [`SLOT_ATTEMPTS`] times in all, then the next slot runs. Each
/// failure was reported and emailed: a database that is down must not cause a retry, and an
/// email, at every look at the schedule. A retry runs even with `catch_up` off: it is late
/// because the slot's own run failed, not because the computer was off.
pub(super) async fn what_is_due(
    vault: &Vault,
    schedule: &Schedule,
    now: DateTime<Utc>,
    catch_up: bool,
    anchor: Option<DateTime<Utc>>,
) -> Result<Option<(Due, bool)>> {
    let since = vault.last_success().await?.or(anchor);
    let Some(due) = schedule.due(since, now)? else {
        return Ok(None);
    };
    let failed: Vec<DateTime<Utc>> = vault
        .catalog
        .runs_of(Operation::Backup, BackupKind::Scheduled, 50)
        .await?
        .into_iter()
        .filter(|r| !r.outcome.is_success() && r.started_at >= due.slot)
        .map(|r| r.started_at)
        .collect();
    let Some(last_failure) = failed.iter().max() else {
        return Ok((catch_up || !due.catch_up).then_some((due, false)));
    };
    let ready = failed.len() < SLOT_ATTEMPTS && now - *last_failure >= RETRY_AFTER;
    Ok(ready.then_some((due, true)))
}

/// If a slot of `schedule` passed without a successful backup, run one scheduled backup
/// (several missed slots make one run; a late one is marked as a catch-up in the history),
/// then prune by `policy`. Holds the run lock, and looks at the history again once it has it,
/// so the app and `schoolvault schedule run-due` never both run the same slot. With
/// `catch_up` off, a slot found late is skipped (the next one runs on time). A slot whose
/// backup failed is tried again [`RETRY_AFTER`] later, [`SLOT_ATTEMPTS`] times in all.
///
/// `opts`: the backup's options (a cancel flag); `anchor`: for a vault with no backup yet, the
/// time to count missed slots from ([`first_look`]).
///
/// # Errors
/// `Busy` when another run holds the lock; everything [`backup`](super::backup) reports.
#[allow(clippy::too_many_arguments)]
pub async fn run_due_with(
    vault: &Vault,
    target: &Database,
    schedule: &Schedule,
    policy: &Retention,
    now: DateTime<Utc>,
    catch_up: bool,
    anchor: Option<DateTime<Utc>>,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<DueOutcome> {
    // Look without the lock first: most looks find nothing due, and must not fail (nor email)
    // because another run holds the lock. Then look again under it: the other runner may
    // have covered the slot meanwhile.
    if what_is_due(vault, schedule, now, catch_up, anchor)
        .await?
        .is_none()
    {
        return Ok(DueOutcome::nothing());
    }
    let vault = &vault.lock()?;
    let Some((due, retry)) = what_is_due(vault, schedule, now, catch_up, anchor).await? else {
        return Ok(DueOutcome::nothing());
    };
    let made = match target {
        Database::Postgres(t) => backup_locked(vault, t, opts, progress).await,
        Database::MariaDb(t) => backup_mariadb_locked(vault, t, opts, progress).await,
    };
    if due.catch_up && !retry {
        let note = format!(
            "catch-up for the slot of {} ({} missed)",
            due.slot.to_rfc3339(),
            due.missed_slots
        );
        vault
            .record_run(run_record(
                Operation::CatchUp,
                Some(BackupKind::Scheduled),
                now,
                &made,
                made.as_ref().ok().map(|b| b.backup.id.clone()),
                Some(note),
            ))
            .await;
    }
    let made = made?;
    let pruned = prune_locked(vault, policy, false, now).await?;
    Ok(DueOutcome {
        due: Some(due),
        backup: Some(made.backup),
        pruned,
    })
}

/// How a look at the schedule sends email.
#[derive(Debug)]
pub struct EmailPlan {
    /// Where to send: `Ok(None)` when email is off; an error (a password that is not saved…)
    /// is reported when a failure email cannot go out because of it.
    pub smtp: Result<Option<SmtpSettings>>,
    /// The query for the school's administrators, when they are emailed too.
    pub admins_query: Option<String>,
    /// The stale-backup alert goes out when no backup succeeded for this long.
    pub stale_after: chrono::Duration,
    /// Send the weekly report (Monday 07:00 in the schedule's zone).
    pub weekly_digest: bool,
}

impl EmailPlan {
    /// The settings file's email: the SMTP server (its password from `keychain`), the
    /// school's administrators too when emails are on and they are asked for, the stale-backup
    /// alert and the weekly report. The app's and the CLI's looks start from this.
    pub fn from_config(email: &EmailSettings, keychain: &dyn Keychain) -> EmailPlan {
        EmailPlan {
            smtp: email.smtp(keychain),
            // Only when emails are on: the school database is not read for nothing.
            admins_query: email.enabled.then(|| email.admins_query()).flatten(),
            stale_after: chrono::Duration::hours(i64::from(email.stale_hours.max(1))),
            weekly_digest: email.weekly_digest,
        }
    }
}

/// What a look at the schedule works with, as the settings file says: built the same way by
/// the app and the CLI (which may then set the schedule, retention, watchdog or email from
/// its own flags and environment), and lent to each look with [`LookSettings::look`].
#[derive(Debug)]
pub struct LookSettings {
    /// When backups run.
    pub schedule: Schedule,
    /// What to keep after a scheduled backup.
    pub retention: Retention,
    /// Run a slot missed while the computer was off.
    pub catch_up: bool,
    /// The schedule's time zone (for the weekly report), else local time.
    pub zone: Option<String>,
    /// A backup that makes no progress for this long is stopped.
    pub watchdog: std::time::Duration,
    /// The weekly test restore after a scheduled backup.
    pub test_restore: bool,
    /// Emails.
    pub email: EmailPlan,
    /// The offsite destinations.
    pub offsite: Offsite,
}

impl LookSettings {
    /// The look the settings file describes (secrets from `keychain`).
    ///
    /// # Errors
    /// `InvalidInput` for a cron expression or time zone that does not parse.
    pub fn from_config(config: &Config, keychain: Arc<dyn Keychain>) -> Result<LookSettings> {
        Ok(LookSettings {
            schedule: Schedule::parse(&config.schedule.cron, config.schedule.timezone.as_deref())?,
            retention: config.retention.policy(),
            catch_up: config.schedule.catch_up,
            zone: config.schedule.timezone.clone(),
            watchdog: config.schedule.watchdog(),
            test_restore: config.schedule.test_restore,
            email: EmailPlan::from_config(&config.email, keychain.as_ref()),
            offsite: Offsite::from_config(config, keychain),
        })
    }

    /// One look's plan on `target`, stopped by `cancel`.
    pub fn look<'a>(&'a self, target: &'a Database, cancel: Cancel) -> ScheduleLook<'a> {
        ScheduleLook {
            target,
            schedule: &self.schedule,
            retention: &self.retention,
            catch_up: self.catch_up,
            zone: self.zone.as_deref(),
            watchdog: self.watchdog,
            test_restore: self.test_restore,
            email: &self.email,
            cancel,
            offsite: &self.offsite,
        }
    }
}

/// What one look at the schedule works with: the same for the app and the CLI.
#[derive(Debug)]
pub struct ScheduleLook<'a> {
    /// The school's database.
    pub target: &'a Database,
    /// When backups run.
    pub schedule: &'a Schedule,
    /// What to keep after a scheduled backup.
    pub retention: &'a Retention,
    /// Run a slot missed while the computer was off.
    pub catch_up: bool,
    /// The schedule's time zone (for the weekly report), else local time.
    pub zone: Option<&'a str>,
    /// A backup that makes no progress for this long is stopped.
    pub watchdog: std::time::Duration,
    /// The weekly test restore after a scheduled backup.
    pub test_restore: bool,
    /// Emails.
    pub email: &'a EmailPlan,
    /// Stops the backup.
    pub cancel: Cancel,
    /// The offsite destinations: copies owed and due are made at each look.
    pub offsite: &'a Offsite,
}

/// What a look did. The shells differ only in how they show it.
#[derive(Debug)]
pub struct LookOutcome {
    /// Nothing due, the backup made (and what was pruned), or the backup's error.
    pub run: Result<DueOutcome>,
    /// The weekly test restore after the backup, when it ran and passed.
    pub test_restore: Option<VerifyReport>,
    /// The weekly test restore's failure (the backup itself succeeded).
    pub test_restore_error: Option<Error>,
    /// Why the failure email (of the backup or the test restore) could not be sent.
    pub email_error: Option<String>,
    /// Things that did not fail the look but should be said (an alert or report not sent).
    pub warnings: Vec<String>,
    /// The offsite copies made or still owed, when copies were due.
    pub copies: Vec<DestinationReport>,
}

/// When the schedule was first looked at here, remembered beside the catalog: missed slots
/// are counted from it until a backup succeeds, so a new installation waits for its first
/// slot (the app and `schedule run-due` alike) instead of running one from months before it
/// existed.
pub fn first_look(vault: &Vault, now: DateTime<Utc>) -> DateTime<Utc> {
    let path = vault.lock_dir.join(FIRST_LOOK_FILE);
    let remembered = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["first_look"].as_str().map(str::to_string))
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    if let Some(at) = remembered.filter(|at| *at <= now) {
        return at;
    }
    let json = serde_json::json!({ "first_look": now.to_rfc3339() });
    if crate::storage::write_private(&path, json.to_string().as_bytes()).is_ok() {
        return now;
    }
    // Not remembered (a read-only folder): count from this process's first look, so the
    // schedule still runs from its next slot on.
    static FIRST_IN_PROCESS: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *FIRST_IN_PROCESS.get_or_init(|| now)
}

/// The file beside the catalog that remembers [`first_look`].
pub const FIRST_LOOK_FILE: &str = "schedule-since.json";

/// One look at the schedule, for the app's scheduler and `schoolvault schedule run-due`/`run`
/// alike: the stale-backup alert and the weekly report (to the configured administrators and
/// the school's, as last read), then the due slot (or the retry of a failed one, or the
/// catch-up of a missed one) under the watchdog and the run lock, pruning after it; a failure
/// email when it fails; the weekly test restore after a scheduled backup, emailed like a
/// failure when the newest backup does not restore. Everything is recorded in the history.
/// `now` is the clock.
pub async fn look(
    vault: &Vault,
    plan: &ScheduleLook<'_>,
    now: DateTime<Utc>,
    progress: Arc<dyn Progress>,
) -> LookOutcome {
    let mut warnings = Vec::new();
    let anchor = first_look(vault, now);
    let database = plan.target.describe();
    if let Ok(Some(smtp)) = &plan.email.smtp {
        let smtp = if plan.email.admins_query.is_some() {
            with_known_admins(vault, smtp)
        } else {
            smtp.clone()
        };
        // The stale-backup alert first: also after the computer was off, before the
        // catch-up run. Then the weekly report, when it is on.
        if let Err(e) = stale_alert(vault, &smtp, &database, plan.email.stale_after, now).await {
            warnings.push(e.to_string());
        }
        match destination_alert(vault, &smtp, plan.offsite, plan.email.stale_after, now).await {
            Ok(_) => {}
            Err(e) => warnings.push(e.to_string()),
        }
        if plan.email.weekly_digest {
            if let Err(e) = weekly_digest(vault, &smtp, &database, plan.zone, now, false).await {
                warnings.push(e.to_string());
            }
        }
    }
    let watched = Arc::new(Watched::new(progress));
    let opts = BackupOptions {
        kind: BackupKind::Scheduled,
        cancel: plan.cancel.clone(),
        ..BackupOptions::default()
    };
    let job = run_due_with(
        vault,
        plan.target,
        plan.schedule,
        plan.retention,
        now,
        plan.catch_up,
        Some(anchor),
        &opts,
        watched.clone(),
    );
    let run = watch(
        vault,
        Operation::Backup,
        Some(BackupKind::Scheduled),
        plan.watchdog,
        &watched,
        job,
    )
    .await;
    let mut outcome = LookOutcome {
        run,
        test_restore: None,
        test_restore_error: None,
        email_error: None,
        warnings,
        copies: Vec::new(),
    };
    match &outcome.run {
        // Cancelled by the person, or another run holds the lock (it reports its own
        // outcome): no email.
        Err(e) if e.kind() == ErrorKind::Busy || plan.cancel.is_cancelled() => {}
        Err(e) => {
            outcome.email_error = match &plan.email.smtp {
                Ok(Some(smtp)) => notify_failure(
                    vault,
                    smtp,
                    plan.email.admins_query.as_deref(),
                    BackupKind::Scheduled,
                    plan.target,
                    e,
                )
                .await
                .err()
                .map(|e| e.to_string()),
                Ok(None) => None,
                Err(e) => Some(e.to_string()),
            };
        }
        Ok(done) if done.backup.is_some() && plan.test_restore => {
            match routine_test_restore(vault, plan.target, now).await {
                Ok(report) => outcome.test_restore = report,
                Err(e) => {
                    outcome.email_error = match &plan.email.smtp {
                        Ok(Some(smtp)) => notify_test_restore_failure(
                            vault,
                            smtp,
                            plan.email.admins_query.as_deref(),
                            plan.target,
                            &e,
                        )
                        .await
                        .err()
                        .map(|e| e.to_string()),
                        Ok(None) => None,
                        Err(e) => Some(e.to_string()),
                    };
                    outcome.test_restore_error = Some(e);
                }
            }
        }
        Ok(_) => {}
    }
    // Copies owed and due (a new backup, or a pending one whose backoff is over); another run
    // holding the lock makes them wait for the next look.
    match plan.offsite.due(vault, now).await {
        Ok(true) => {
            let opts = SyncOptions {
                prune: true,
                ..SyncOptions::default()
            };
            match sync(vault, plan.offsite, opts, watched.clone()).await {
                Ok(reports) => outcome.copies = reports,
                Err(e) if e.kind() == ErrorKind::Busy => {}
                Err(e) => outcome.warnings.push(e.to_string()),
            }
        }
        Ok(false) => {}
        Err(e) => outcome.warnings.push(e.to_string()),
    }
    outcome
}
