//! The watchdog: a job that makes no progress for a set time is stopped, recorded as failed,
//! and reported, instead of hanging the schedule forever.

use chrono::Utc;

use crate::archive::BackupKind;
use crate::catalog::Operation;
use crate::error::{Error, ErrorKind, Result};

use crate::jobs::{run_record, Vault};

/// Run `job`, which reports to `watched`, and fail it when it makes no progress for `limit`:
/// it is then stopped (its future dropped, so a partial file is removed and its connections
/// closed), recorded in the history as a failed `operation`, and the error says so.
///
/// # Errors
/// The job's own error, or `Cancelled` from the watchdog.
pub async fn watch<T>(
    vault: &Vault,
    operation: Operation,
    kind: Option<BackupKind>,
    limit: std::time::Duration,
    watched: &crate::progress::Watched,
    job: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let started = Utc::now();
    tokio::pin!(job);
    let tick = std::time::Duration::from_millis(200).min(limit);
    loop {
        tokio::select! {
            out = &mut job => return out,
            () = tokio::time::sleep(tick) => {
                if watched.idle() >= limit {
                    let stalled: Result<T> = Err(Error::new(
                        ErrorKind::Cancelled,
                        format!("The run made no progress for {} seconds and was stopped", limit.as_secs()),
                        "Something held it up (a lock held by another program, a stalled network or disk); nothing was left behind. Check the database server and try again",
                    ));
                    vault
                        .record_run(run_record(operation, kind, started, &stalled, None, None))
                        .await;
                    return stalled;
                }
            }
        }
    }
}
