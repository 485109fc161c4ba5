//! What is due at a look at the schedule: the slot to run (or retry after a failure, or catch
//! up after the computer was off), run under the run lock, then pruned.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::archive::BackupKind;
use crate::catalog::BackupRecord;
use crate::error::Result;
use crate::progress::Progress;
use crate::retention::{Prune, Retention};
use crate::schedule::{Due, Schedule};
use crate::source::postgres::PgTarget;

use crate::jobs::backup::{backup, BackupOptions};
use crate::jobs::maintenance::prune;
use crate::jobs::{run_record, Vault};

/// How long after a failed scheduled backup its slot is tried again.
pub const RETRY_AFTER: chrono::Duration = chrono::Duration::minutes(30);
/// How many times a slot is tried before waiting for the next one.
pub const SLOT_ATTEMPTS: usize = 3;

/// What [`run_due`] did.
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
        .runs_of("backup", BackupKind::Scheduled.as_str(), 50)
        .await?
        .into_iter()
        .filter(|r| r.outcome != "success" && r.started_at >= due.slot)
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
/// # Errors
/// `InvalidInput` when another run holds the lock; everything [`backup`] reports.
pub async fn run_due(
    vault: &Vault,
    target: &PgTarget,
    schedule: &Schedule,
    policy: &Retention,
    now: DateTime<Utc>,
    catch_up: bool,
    progress: Arc<dyn Progress>,
) -> Result<DueOutcome> {
    run_due_with(
        vault,
        target,
        schedule,
        policy,
        now,
        catch_up,
        None,
        &BackupOptions {
            kind: BackupKind::Scheduled,
            ..BackupOptions::default()
        },
        progress,
    )
    .await
}

/// [`run_due`] with the backup's options (the app passes its cancel flag) and, for a vault
/// with no backup yet, the time to count missed slots from (the app passes its start, so a fresh
/// install waits for its first slot instead of backing up the moment it is set up).
///
/// # Errors
/// As [`run_due`].
#[allow(clippy::too_many_arguments)]
pub async fn run_due_with(
    vault: &Vault,
    target: &PgTarget,
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
    let _lock = vault.lock()?;
    let Some((due, retry)) = what_is_due(vault, schedule, now, catch_up, anchor).await? else {
        return Ok(DueOutcome::nothing());
    };
    let made = backup(vault, target, opts, progress).await;
    if due.catch_up && !retry {
        let note = format!(
            "catch-up for the slot of {} ({} missed)",
            due.slot.to_rfc3339(),
            due.missed_slots
        );
        vault
            .record_run(run_record(
                "catch-up",
                Some(BackupKind::Scheduled),
                Utc::now(),
                &made,
                made.as_ref().ok().map(|b| b.backup.id.clone()),
                Some(note),
            ))
            .await;
    }
    let made = made?;
    let pruned = prune(vault, policy, false, now).await?;
    Ok(DueOutcome {
        due: Some(due),
        backup: Some(made.backup),
        pruned,
    })
}
