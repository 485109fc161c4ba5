//! The backup schedule from the command line: `schedule next`, `schedule run-due` (one look,
//! for systemd timers, Task Scheduler, cron) and `schedule run` (in the foreground), and what
//! each look does around the backup: the stale-backup alert, the weekly report, the failure
//! email and the weekly test restore.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schoolvault_engine::config::Config;
use schoolvault_engine::jobs::{self, Cancel, DueOutcome, LookSettings, Vault};
use schoolvault_engine::keychain::OsKeychain;
use schoolvault_engine::progress::Progress;
use schoolvault_engine::retention::Retention;
use schoolvault_engine::schedule::Schedule;
use schoolvault_engine::source::Database;
use schoolvault_engine::{ErrorKind, Result};
use serde::{Serialize, Serializer};

use crate::args::{PolicyArgs, ScheduleAction};
use crate::email::email_plan;
use crate::output::Report;
use crate::session::Session;

/// What a `schedule` command did.
pub(crate) enum Scheduled {
    /// `schedule next`: the next runs.
    Next(Vec<DateTime<Utc>>),
    /// `schedule run-due`: what the look did.
    RunDue {
        /// The slot, the backup and what retention removed.
        done: Box<DueOutcome>,
        /// For the text: when the next run is, if nothing was due.
        schedule: Box<Schedule>,
    },
}

impl Serialize for Scheduled {
    /// The next runs, or what the look did: each as its own document, not wrapped.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Scheduled::Next(next) => next.serialize(s),
            Scheduled::RunDue { done, .. } => done.serialize(s),
        }
    }
}

impl Report for Scheduled {
    fn text(&self) -> Result<Vec<String>> {
        Ok(match self {
            Scheduled::Next(next) => next
                .iter()
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%a %Y-%m-%d %H:%M %Z")
                        .to_string()
                })
                .collect(),
            Scheduled::RunDue { done, schedule } => vec![match (&done.due, &done.backup) {
                (Some(d), Some(b)) => format!(
                    "Backup {} made for the slot of {}{}; {} old backup(s) pruned.",
                    b.id,
                    d.slot
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M"),
                    if d.catch_up { " (catch-up)" } else { "" },
                    done.pruned.len()
                ),
                _ => format!(
                    "Nothing due; next run {}.",
                    schedule
                        .next_after(chrono::Utc::now())?
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M")
                ),
            }],
        })
    }
}

/// A `schedule` command, with `--cron`/`--tz` over the settings file's schedule. `schedule run`
/// only returns on an error.
///
/// # Errors
/// A bad cron expression or time zone, no database; `run-due`: the backup's error.
pub(crate) async fn command(
    session: &Session,
    action: ScheduleAction,
    cron: Option<String>,
    tz: Option<String>,
    policy: PolicyArgs,
) -> Result<Scheduled> {
    let vault = &session.vault;
    let (watchdog, progress) = (session.watchdog, &session.progress);
    let cron = cron.unwrap_or_else(|| session.settings.schedule.cron.clone());
    let tz = tz.or_else(|| session.settings.schedule.timezone.clone());
    let schedule = Schedule::parse(&cron, tz.as_deref())?;
    // The weekly report follows the schedule's time zone too.
    let mut settings = session.settings.clone();
    settings.schedule.timezone.clone_from(&tz);
    match action {
        ScheduleAction::Next { count } => Ok(Scheduled::Next(
            schedule.upcoming(chrono::Utc::now(), count)?,
        )),
        ScheduleAction::RunDue => {
            let target = session.database("back up")?;
            let retention = policy.policy(&settings);
            let done = run_due_once(
                vault, &settings, &target, &schedule, &retention, watchdog, progress,
            )
            .await?;
            Ok(Scheduled::RunDue {
                done: Box::new(done),
                schedule: Box::new(schedule),
            })
        }
        ScheduleAction::Run => {
            let target = session.database("back up")?;
            let retention = policy.policy(&settings);
            let mut announced = None;
            loop {
                // Every minute: a due slot, a missed one (also after the machine slept),
                // the retry of a failed one, the stale alert, the weekly report. Most
                // looks find nothing to do.
                match run_due_once(
                    vault, &settings, &target, &schedule, &retention, watchdog, progress,
                )
                .await
                {
                    Ok(d) => {
                        if let Some(b) = d.backup {
                            eprintln!("backup {} made", b.id);
                        }
                    }
                    // Another run holds the lock: it reports its own outcome.
                    Err(e) if e.kind() == ErrorKind::Busy => {}
                    Err(e) => eprintln!("error: {e}"),
                }
                let next = schedule.next_after(chrono::Utc::now())?;
                if announced != Some(next) {
                    announced = Some(next);
                    eprintln!(
                        "next run {}",
                        next.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M")
                    );
                }
                let left = (next - chrono::Utc::now()).num_seconds().clamp(1, 60) as u64;
                tokio::time::sleep(Duration::from_secs(left)).await;
            }
        }
    }
}

/// One look at the schedule (`schedule run-due`, and each wake of `schedule run`): the
/// engine's [`jobs::look`], the same the app makes; its warnings go to stderr.
async fn run_due_once(
    vault: &Vault,
    settings: &Config,
    target: &Database,
    schedule: &Schedule,
    retention: &Retention,
    watchdog: Duration,
    progress: &Arc<dyn Progress>,
) -> Result<jobs::DueOutcome> {
    // The settings file's look, as the app builds it, with this command's schedule, retention
    // and watchdog, and email from the environment when it is set there.
    let mut look = LookSettings::from_config(settings, Arc::new(OsKeychain))?;
    look.schedule = schedule.clone();
    look.retention = *retention;
    look.watchdog = watchdog;
    look.email = email_plan(settings);
    let plan = look.look(target, Cancel::default());
    let done = jobs::look(vault, &plan, chrono::Utc::now(), progress.clone()).await;
    for w in &done.warnings {
        eprintln!("warning: {w}");
    }
    for w in crate::offsite::copy_warnings(&done.copies) {
        eprintln!("warning: {w}");
    }
    if let Some(e) = &done.test_restore_error {
        eprintln!("warning: the weekly test restore failed: {e}");
    }
    if let Some(e) = &done.email_error {
        eprintln!("warning: {e}");
    }
    done.run
}
