//! A backup as a person or a shell starts it (the app's "Back up now" and tray, `schoolvault
//! backup`): the backup under the watchdog, a failure email to the administrators, and, after
//! a success, the school's administrators read again so the next failure email reaches them
//! on a day the database is down.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::Operation;
use crate::error::{ErrorKind, Result};
use crate::progress::{Progress, Watched};
use crate::source::Database;
use futures_util::FutureExt;

use crate::jobs::alerts::{notify_failure, refresh_admins};
use crate::jobs::backup::{backup, BackupOptions, BackupOutcome};
use crate::jobs::offsite::{sync, DestinationReport, Offsite, SyncOptions};
use crate::jobs::schedule_look::EmailPlan;
use crate::jobs::undo::backup_mariadb;
use crate::jobs::watchdog::watch;
use crate::jobs::Vault;

/// What [`backup_attended`] did.
#[derive(Debug)]
pub struct Attended {
    /// The backup, or its error.
    pub backup: Result<BackupOutcome>,
    /// Why the failure email could not be sent, if it could not.
    pub email_error: Option<String>,
    /// The offsite copies after the backup (a destination that cannot be reached leaves its
    /// copy pending; the backup still succeeded).
    pub copies: Vec<DestinationReport>,
    /// Why the copies could not even be tried (another run took the lock…), if so.
    pub copy_error: Option<String>,
}

/// How long reading the administrators may hold up the end of a backup.
const ADMINS_READ_LIMIT: Duration = Duration::from_secs(20);

/// Back up `target` under the watchdog (`limit` without progress stops it); email the
/// administrators if it fails (not when the person cancelled it, nor when another run holds
/// the lock: that run reports its own outcome); refresh the administrators' list after a
/// success.
pub async fn backup_attended(
    vault: &Vault,
    target: &Database,
    opts: &BackupOptions,
    limit: Duration,
    email: &EmailPlan,
    offsite: &Offsite,
    progress: Arc<dyn Progress>,
) -> Attended {
    let watched = Arc::new(Watched::new(progress));
    let job = match target {
        Database::Postgres(t) => backup(vault, t, opts, watched.clone()).boxed(),
        Database::MariaDb(t) => backup_mariadb(vault, t, opts, watched.clone()).boxed(),
    };
    let made = watch(
        vault,
        Operation::Backup,
        Some(opts.kind),
        limit,
        &watched,
        job,
    )
    .await;
    let mut email_error = None;
    let mut copies = Vec::new();
    let mut copy_error = None;
    match &made {
        Err(e) if e.kind() == ErrorKind::Busy || opts.cancel.is_cancelled() => {}
        Err(e) => {
            email_error = match &email.smtp {
                Ok(Some(smtp)) => notify_failure(
                    vault,
                    smtp,
                    email.admins_query.as_deref(),
                    opts.kind,
                    target,
                    e,
                )
                .await
                .err()
                .map(|e| e.to_string()),
                Ok(None) => None,
                Err(e) => Some(e.to_string()),
            };
        }
        Ok(_) => {
            if let (Some(query), Some(target)) = (&email.admins_query, target.postgres()) {
                // Briefly: a locked table must not hold up the backup's end.
                let _ =
                    tokio::time::timeout(ADMINS_READ_LIMIT, refresh_admins(vault, target, query))
                        .await;
            }
            if !offsite.destinations.is_empty() {
                let opts = SyncOptions {
                    prune: true,
                    ..SyncOptions::default()
                };
                match sync(vault, offsite, opts, watched.clone()).await {
                    Ok(reports) => copies = reports,
                    Err(e) => copy_error = Some(e.to_string()),
                }
            }
        }
    }
    Attended {
        backup: made,
        email_error,
        copies,
        copy_error,
    }
}
