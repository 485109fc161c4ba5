//! The schedule from the command line: a due slot runs once, never twice when two runners race,
//! and retention prunes by policy without touching the newest verified backup.
#![allow(clippy::unwrap_used)]

#[path = "support/smtp.rs"]
mod smtp;
mod support;

use schoolvault_engine::source::Database;
use support::{school_sql, Env, TestDb};

/// The engine's own vault on `env`'s backup folder and catalog, with `env`'s key (from a key
/// file, so the process environment is left alone): what the app calls, in this process.
async fn vault_of(env: &Env) -> schoolvault_engine::jobs::Vault {
    use schoolvault_engine::keychain::{Keys, OsKeychain};
    let key_file = env.dir.path().join("key.hex");
    std::fs::write(&key_file, &env.key).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let keys = Keys::new(Some(&key_file), Box::new(OsKeychain)).unwrap();
    schoolvault_engine::jobs::Vault::open(
        env.backups(),
        &env.dir.path().join("catalog.sqlite"),
        keys,
    )
    .await
    .unwrap()
}

fn school() -> TestDb {
    let db = TestDb::new("sched");
    db.load(&school_sql(), &[]);
    db
}

#[test]
fn a_due_slot_runs_once_and_racing_runners_make_one_backup() {
    let db = school();
    let env = Env::new();
    env.installed_before();
    // Two runners at once (the app and a systemd timer): one backup.
    let spawn = || {
        std::process::Command::new(support::schoolvault_bin())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", env.dir.path())
            .env("SCHOOLVAULT_DIR", env.backups())
            .env("SCHOOLVAULT_CATALOG", env.dir.path().join("catalog.sqlite"))
            .env("BACKUP_ENCRYPTION_KEY", &env.key)
            .args(["--json", "--db", &db.url(), "schedule", "run-due"])
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    let list = env.json(&["list"]);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "one backup for one slot: {list}"
    );
    assert_eq!(list[0]["kind"], "scheduled");
    // The loser either found nothing due or was told another run holds the lock.
    for out in [&a, &b] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("Another backup"),
            "{stderr}"
        );
    }
    // Run again: the slot is covered.
    let again = env.json(&["--db", &db.url(), "schedule", "run-due"]);
    assert!(again["backup"].is_null(), "{again}");
    // A bad expression says what is wrong.
    let (code, msg) = env.fails(&["--db", &db.url(), "schedule", "run-due", "--cron", "at two"]);
    assert_eq!(code, "invalid_input", "{msg}");
    let next = env.json(&["schedule", "next", "--count", "3", "--tz", "Asia/Kolkata"]);
    assert_eq!(next.as_array().unwrap().len(), 3);
}

#[test]
fn the_app_and_schedule_run_due_racing_make_one_backup() {
    use std::sync::Arc;

    use schoolvault_engine::archive::BackupKind;
    use schoolvault_engine::jobs::{self, BackupOptions};
    use schoolvault_engine::progress::Silent;
    use schoolvault_engine::retention::Retention;
    use schoolvault_engine::schedule::Schedule;
    use schoolvault_engine::source::postgres::PgTarget;

    let db = school();
    let env = Env::new();
    // `schedule run-due` (a systemd timer) starts while the app looks at the same slot, with
    // the app's own call: same backup folder, same catalog, the run lock between them.
    let cli = std::process::Command::new(support::schoolvault_bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("SCHOOLVAULT_DIR", env.backups())
        .env("SCHOOLVAULT_CATALOG", env.dir.path().join("catalog.sqlite"))
        .env("BACKUP_ENCRYPTION_KEY", &env.key)
        .args(["--json", "--db", &db.url(), "schedule", "run-due"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(async {
        let vault = vault_of(&env).await;
        let opts = BackupOptions {
            kind: BackupKind::Scheduled,
            ..BackupOptions::default()
        };
        jobs::run_due_with(
            &vault,
            &Database::Postgres(PgTarget::parse(&db.url()).unwrap()),
            &Schedule::parse("0 2 * * *", None).unwrap(),
            &Retention::default(),
            chrono::Utc::now(),
            true,
            None,
            &opts,
            Arc::new(Silent),
        )
        .await
    });
    let cli = cli.wait_with_output().unwrap();
    let list = env.json(&["list"]);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "one backup for one slot: {list}"
    );
    // The one that lost found the slot covered, or was told another backup holds the lock.
    let cli_err = String::from_utf8_lossy(&cli.stderr);
    assert!(
        cli.status.success() || cli_err.contains("Another backup"),
        "{cli_err}"
    );
    match app {
        Ok(done) => assert!(
            done.backup.is_some() != cli_made_one(&cli.stdout),
            "exactly one of them made the backup"
        ),
        Err(e) => assert!(e.to_string().contains("Another backup"), "{e}"),
    }
}

fn cli_made_one(stdout: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(stdout)
        .map(|v| v["backup"].is_object())
        .unwrap_or(false)
}

#[test]
fn prune_keeps_the_newest_verified_backup() {
    let db = school();
    let env = Env::new();
    let first = env.json(&["--db", &db.url(), "backup"]);
    env.json(&["verify", first["id"].as_str().unwrap()]);
    let second = env.json(&["--db", &db.url(), "backup"]);
    let dry = env.json(&["prune", "--dry-run", "--keep-days", "0"]);
    assert_eq!(dry.as_array().unwrap().len(), 1);
    assert_eq!(dry[0]["id"], second["id"]);
    assert_eq!(
        env.json(&["list"]).as_array().unwrap().len(),
        2,
        "a dry run removes nothing"
    );
    let done = env.json(&["prune", "--keep-days", "0"]);
    assert_eq!(done.as_array().unwrap().len(), 1);
    let list = env.json(&["list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        list[0]["id"], first["id"],
        "the newest verified backup stays"
    );
    assert!(!std::path::Path::new(second["file"].as_str().unwrap()).exists());
}

#[test]
fn the_watchdog_fails_a_stalled_backup_and_leaves_nothing() {
    let db = school();
    let env = Env::new();
    // Another session holds an exclusive lock: the backup waits for it and reports nothing.
    let mut holder = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            &support::pg_host(),
            "-p",
            &support::pg_port(),
            "-U",
            "postgres",
            "-d",
            &db.name,
        ])
        .args([
            "-c",
            "BEGIN; LOCK TABLE attendance IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT;",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Start the backup only once the lock is held (granted, in the database under test).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let held = db.sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' \
             AND relation = 'attendance'::regclass AND mode = 'AccessExclusiveLock' AND granted",
        );
        if held == "1" {
            break;
        }
        if let Some(status) = holder.try_wait().unwrap() {
            panic!("the psql holding the lock on attendance ended early ({status})");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other session did not get its lock on attendance within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    let (code, msg) = env.fails(&["--watchdog", "2", "--db", &db.url(), "backup"]);
    let _ = holder.kill();
    let _ = holder.wait();
    support::psql("postgres", &format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE '%pg_sleep%'",
        db.name
    ));
    assert_eq!(code, "cancelled", "{msg}");
    assert!(msg.contains("no progress for 2 seconds"), "{msg}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "the watchdog did not stop it"
    );
    assert!(env.files().is_empty(), "left behind: {:?}", env.files());
    let history = env.json(&["history"]);
    assert_eq!(history[0]["outcome"], "failure");
}

#[test]
fn a_failed_slot_is_retried_twice_half_an_hour_apart_then_waits_for_the_next() {
    use std::sync::Arc;

    use chrono::{Duration, Timelike, Utc};
    use schoolvault_engine::jobs::{self, BackupOptions};
    use schoolvault_engine::progress::Silent;
    use schoolvault_engine::retention::Retention;
    use schoolvault_engine::schedule::Schedule;
    use schoolvault_engine::source::postgres::PgTarget;

    let env = Env::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let vault = vault_of(&env).await;
        // The database server is down: every attempt fails at once.
        let down =
            Database::Postgres(PgTarget::parse("postgres://postgres@127.0.0.1:1/school").unwrap());
        // A daily slot about twelve hours ago, missed; the injected clock is the real one, so
        // the attempts' own records (real time) and the clock agree.
        let now = Utc::now();
        let hour = (now.hour() + 12) % 24;
        let schedule = Schedule::parse(&format!("0 {hour} * * *"), Some("UTC")).unwrap();
        let retention = Retention::default();
        let opts = BackupOptions {
            kind: schoolvault_engine::archive::BackupKind::Scheduled,
            ..BackupOptions::default()
        };
        let look = |at| {
            jobs::run_due_with(
                &vault,
                &down,
                &schedule,
                &retention,
                at,
                true,
                None,
                &opts,
                Arc::new(Silent),
            )
        };
        let attempts = || async {
            vault
                .catalog
                .runs(100)
                .await
                .unwrap()
                .iter()
                .filter(|r| r.operation == "backup" && r.outcome == "failure")
                .count()
        };
        let err = look(now).await.unwrap_err();
        assert_eq!(err.code(), "db_unreachable", "{err}");
        assert_eq!(attempts().await, 1);
        // The next looks (every 30 s in the app, every few minutes from a timer): no retry yet.
        for minutes in [1, 10, 29] {
            let done = look(now + Duration::minutes(minutes)).await.unwrap();
            assert!(done.backup.is_none() && done.due.is_none());
        }
        assert_eq!(attempts().await, 1, "no retry within half an hour");
        // Half an hour later: tried again, and again (the records carry the real time, so
        // the clock has already moved on half an hour from the second).
        assert!(look(now + Duration::minutes(31)).await.is_err());
        assert_eq!(attempts().await, 2);
        assert!(look(now + Duration::minutes(62)).await.is_err());
        assert_eq!(attempts().await, 3);
        // Three attempts: the slot is given up (the failure was reported each time).
        let done = look(now + Duration::hours(3)).await.unwrap();
        assert!(done.due.is_none(), "{done:?}");
        assert_eq!(attempts().await, 3);
        // The next day's slot runs again.
        assert!(look(now + Duration::hours(24) + Duration::minutes(1))
            .await
            .is_err());
        assert_eq!(attempts().await, 4);
    });
}

/// Whether the scratch database of a test restore of backup `id` is left on the server (only
/// this backup's: other tests' test restores run at the same time).
fn scratch_left(id: &str) -> bool {
    let name = format!("schoolvault_verify_{}", id.replace('-', "_")).to_lowercase();
    support::psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    ) != "0"
}

#[test]
fn the_weekly_test_restore_runs_after_a_scheduled_backup_once_a_week() {
    let db = school();
    let env = Env::new();
    env.installed_before();
    let done = env.json(&["--db", &db.url(), "schedule", "run-due"]);
    let id = done["backup"]["id"].as_str().unwrap().to_string();
    // The new backup was restored into a scratch database, compared, and the database dropped.
    let list = env.json(&["list"]);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["verify_ok"], true, "{list}");
    assert!(
        list[0]["verify_message"]
            .as_str()
            .unwrap()
            .starts_with("test restore"),
        "{list}"
    );
    assert!(!scratch_left(&id));
    let history = env.json(&["history"]);
    let tests = |h: &serde_json::Value| {
        h.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["operation"] == "test_restore")
            .count()
    };
    assert_eq!(tests(&history), 1, "{history}");

    // Not again within the week, with the engine's clock moved on; again after it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let vault = vault_of(&env).await;
        let target = schoolvault_engine::source::Database::Postgres(
            schoolvault_engine::source::postgres::PgTarget::parse(&db.url()).unwrap(),
        );
        let mark = schoolvault_engine::jobs::last_test_restore(&vault).unwrap();
        assert!(mark.ok && mark.backup_id == id, "{mark:?}");
        let soon = mark.at + chrono::Duration::days(6);
        let later = mark.at + chrono::Duration::days(8);
        let not_due = schoolvault_engine::jobs::routine_test_restore(&vault, &target, soon)
            .await
            .unwrap();
        assert!(not_due.is_none());
        let due = schoolvault_engine::jobs::routine_test_restore(&vault, &target, later)
            .await
            .unwrap();
        assert_eq!(due.unwrap().backup_id, id);
        assert_eq!(
            schoolvault_engine::jobs::last_test_restore(&vault)
                .unwrap()
                .at,
            later
        );
    });
    assert!(!scratch_left(&id));

    // Turned off in the settings file: a scheduled backup, no test restore.
    let config = env.dir.path().join("config.toml");
    std::fs::write(&config, "[schedule]\ntest_restore = false\n").unwrap();
    let off = Env::new();
    off.installed_before();
    let out = off
        .cmd()
        .env("SCHOOLVAULT_CONFIG", &config)
        .args(["--json", "--db", &db.url(), "schedule", "run-due"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history = off.json(&["history"]);
    assert_eq!(tests(&history), 0, "{history}");
    assert!(off.json(&["list"])[0]["verify_ok"].is_null());
}

#[test]
fn a_new_installation_waits_for_its_first_slot() {
    // Tried as a new user: every minute, on a fresh catalog. The old look ran a "catch-up" for
    // a slot months before the catalog existed; the app waited. Both now count from their first
    // look, remembered beside the catalog.
    let db = school();
    let env = Env::new();
    let first = env.json(&[
        "--db",
        &db.url(),
        "schedule",
        "run-due",
        "--cron",
        "* * * * *",
    ]);
    assert!(first["backup"].is_null(), "{first}");
    assert!(first["due"].is_null(), "{first}");
    assert!(env.files().is_empty(), "{:?}", env.files());
    let marker = env
        .dir
        .path()
        .join(schoolvault_engine::jobs::FIRST_LOOK_FILE);
    let remembered = std::fs::read_to_string(&marker).unwrap();
    assert!(remembered.contains("first_look"), "{remembered}");
    // A second look does not move the first one.
    env.json(&[
        "--db",
        &db.url(),
        "schedule",
        "run-due",
        "--cron",
        "0 2 * * *",
    ]);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), remembered);
}

/// The subject and recipients of each message, sorted: what two looks must agree on.
fn envelopes(server: &smtp::SmtpServer) -> Vec<String> {
    let mut v: Vec<String> = server
        .messages()
        .iter()
        .map(|m| {
            let header = |name: &str| {
                m.lines()
                    .find(|l| l.starts_with(name))
                    .unwrap_or_default()
                    .to_string()
            };
            format!("{} | {}", header("Subject:"), header("To:"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_app_and_the_cli_look_at_the_schedule_the_same_way() {
    use std::sync::Arc;

    use schoolvault_engine::config::Config;
    use schoolvault_engine::jobs::{self, Cancel, LookSettings};
    use schoolvault_engine::keychain::OsKeychain;
    use schoolvault_engine::progress::Silent;

    // The same settings file for both: a school database that does not answer (the slot's
    // backup fails), email on to a real SMTP server, a slot missed since the first look.
    let settings = |port: u16| {
        format!(
            "[database]\nhost = \"127.0.0.1\"\nport = 1\nname = \"erp\"\nuser = \"backup\"\n\n\
             [schedule]\ncron = \"0 2 * * *\"\ncatch_up = true\n\n\
             [email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"plain\"\n\
             from = \"schoolvault@school.example\"\nto = [\"it@school.example\", \"head@school.example\"]\n"
        )
    };
    let look_of = |env: &Env, port: u16| {
        env.installed_before();
        let path = env.dir.path().join("config.toml");
        std::fs::write(&path, settings(port)).unwrap();
        path
    };

    // `schoolvault schedule run-due`, from the settings file.
    let cli_env = Env::new();
    let cli_mail = smtp::SmtpServer::start(&cli_env.dir.path().join("smtp"));
    let cli_config = look_of(&cli_env, cli_mail.port);
    let out = cli_env
        .std_cmd()
        .env("SCHOOLVAULT_CONFIG", &cli_config)
        .args(["--json", "schedule", "run-due"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the slot's backup cannot work");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("db_unreachable"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The app's scheduler: the same settings file, through the calls it makes
    // (scheduler::tick builds LookSettings from the file and runs jobs::look).
    let app_env = Env::new();
    let app_mail = smtp::SmtpServer::start(&app_env.dir.path().join("smtp"));
    let app_config = look_of(&app_env, app_mail.port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (cli_runs, app_runs) = rt.block_on(async {
        let config = Config::load(&app_config).unwrap();
        let vault = vault_of(&app_env).await;
        let look = LookSettings::from_config(&config, Arc::new(OsKeychain)).unwrap();
        let target = config
            .database
            .as_ref()
            .unwrap()
            .target_with(&OsKeychain)
            .unwrap();
        let done = jobs::look(
            &vault,
            &look.look(&Database::Postgres(target.clone()), Cancel::default()),
            chrono::Utc::now(),
            Arc::new(Silent),
        )
        .await;
        let e = done.run.expect_err("the slot's backup cannot work");
        assert_eq!(e.code(), "db_unreachable", "{e}");
        let runs = |v: schoolvault_engine::jobs::Vault| async move {
            let mut r: Vec<String> = v
                .catalog
                .runs(50)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "{:?} {:?} {:?} {:?}",
                        r.operation, r.kind, r.outcome, r.error_code
                    )
                })
                .collect();
            r.sort();
            r
        };
        (runs(vault_of(&cli_env).await).await, runs(vault).await)
    });
    assert!(!app_runs.is_empty());
    assert_eq!(cli_runs, app_runs, "the same history");
    let (cli_sent, app_sent) = (envelopes(&cli_mail), envelopes(&app_mail));
    assert!(
        cli_sent.iter().any(|m| m.contains("it@school.example")),
        "{cli_sent:?}"
    );
    assert_eq!(cli_sent, app_sent, "the same emails to the same people");
}
