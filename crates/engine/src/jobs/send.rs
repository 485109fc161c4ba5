//! A compile-time promise: every job future is `Send`, so the desktop app runs jobs as tasks on
//! its runtime (no blocking thread per job) and a change that makes one `!Send` (a `RefCell`
//! or a non-`Sync` reference held across an `.await`) fails to build here, in the engine.
//! (`sqlx::raw_sql(…).execute(conn)` was what made them `!Send`: rustc cannot prove its
//! higher-ranked `Executor` bound general enough; `Executor::execute(conn, raw_sql(…))` is.)

#![allow(dead_code, clippy::too_many_arguments)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::*;
use crate::offsite::DestinationSettings;
use crate::progress::Progress;
use crate::retention::Retention;
use crate::schedule::Schedule;
use crate::source::postgres::PgTarget;

fn send<F: Future + Send>(_: F) {}

fn every_job_is_send(
    vault: &Vault,
    target: &PgTarget,
    backup_opts: &BackupOptions,
    restore_opts: &RestoreOptions,
    email: &EmailPlan,
    offsite: &Offsite,
    look_plan: &ScheduleLook<'_>,
    schedule: &Schedule,
    policy: &Retention,
    destination: &DestinationSettings,
    mariadb: &crate::source::mysql::MyTarget,
    progress: Arc<dyn Progress>,
) {
    let now = Utc::now();
    let p = || progress.clone();
    send(backup(vault, target, backup_opts, p()));
    send(backup_source(vault, mariadb, backup_opts, p()));
    send(backup_mariadb(vault, mariadb, backup_opts, p()));
    send(restore_new_mariadb(vault, "id", mariadb, "new", p()));
    send(restore_replace_mariadb(
        vault,
        "id",
        mariadb,
        &RestoreOptions::default(),
        p(),
    ));
    send(test_restore_mariadb(vault, "id", mariadb, None, p()));
    let database = crate::source::Database::Postgres(target.clone());
    send(backup_attended(
        vault,
        &database,
        backup_opts,
        Duration::from_secs(1),
        email,
        offsite,
        p(),
    ));
    send(routine_test_restore(vault, &database, now));
    send(verify(vault, "id", p()));
    send(inspect(vault, "id"));
    send(test_restore(vault, "id", target, None, p()));
    send(restore(vault, "id", target, restore_opts, p()));
    send(restore_preview(vault, "id", target, p()));
    send(delete(vault, "id"));
    send(rescan(vault, p()));
    send(prune(vault, policy, true, now));
    send(export_v1(vault, target, None));
    send(run_due_with(
        vault,
        &database,
        schedule,
        policy,
        now,
        true,
        None,
        backup_opts,
        p(),
    ));
    send(look(vault, look_plan, now, p()));
    send(forget_destination(vault, "name"));
    send(sync(vault, offsite, SyncOptions::default(), p()));
    send(rescan_from(vault, offsite, destination));
    send(fetch(vault, offsite, "id", p()));
}
