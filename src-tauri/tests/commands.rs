//! The app's commands through Tauri's IPC under the mock runtime (no display): set-up,
//! backup with a progress channel, the restore warning and its typed confirmation, settings
//! validation, errors as `{code, message}` — against the real PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[path = "../../tests/support/smtp.rs"]
mod smtp;

use schoolvault_app::state::{AppState, Headless, Look, Picked, Shell};
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindow;

fn psql(db: &str, sql: &str) -> String {
    let host = std::env::var("SCHOOLVAULT_TEST_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("SCHOOLVAULT_TEST_PG_PORT").unwrap_or_else(|_| "5432".into());
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &host,
            "-p",
            &port,
        ])
        .args(["-U", "postgres", "-d", db, "-c", sql])
        .output()
        .expect("psql is missing: make test installs postgresql-client");
    assert!(
        out.status.success(),
        "psql failed (is PostgreSQL running on {host}:{port}? make test starts it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn call(
    w: &WebviewWindow<tauri::test::MockRuntime>,
    cmd: &str,
    args: Value,
) -> Result<Value, Value> {
    get_ipc_response(
        w,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

type MockApp = tauri::App<tauri::test::MockRuntime>;

/// The app under the mock runtime with its settings file and catalog, and its main window.
fn open_app(
    config: std::path::PathBuf,
    catalog: std::path::PathBuf,
) -> (MockApp, WebviewWindow<tauri::test::MockRuntime>) {
    let state = AppState::new(config, catalog, Box::new(Headless)).unwrap();
    let app = schoolvault_app::builder(mock_builder())
        .manage(state)
        .build(tauri::generate_context!())
        .unwrap();
    let w = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    (app, w)
}

#[test]
fn the_commands_set_up_back_up_and_guard_the_restore() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sv_app_{:08x}", std::process::id());
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE pupils (id int PRIMARY KEY, name text); INSERT INTO pupils SELECT g, 'Pupil ' || g FROM generate_series(1, 500) g;");
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));
    std::env::remove_var("SCHOOLVAULT_PICK_FILE");

    let config_path = dir.path().join("config.toml");
    let (app, w) = open_app(config_path.clone(), dir.path().join("catalog.sqlite"));

    // Before set-up.
    let s = call(&w, "status", json!({})).unwrap();
    assert_eq!(s["configured"], false);
    assert_eq!(s["database"], Value::Null);
    let e = call(&w, "list_backups", json!({})).err();
    assert!(e.is_none(), "the list works before set-up: {e:?}");

    // A connection that cannot work: a clear error as {code, message}.
    let host = std::env::var("SCHOOLVAULT_TEST_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let mut form = json!({"host": host, "port": 1, "name": db, "user": "postgres", "tls": "disable", "password_saved": false});
    let err = call(
        &w,
        "test_connection",
        json!({"form": form, "password": null}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "db_unreachable", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("Cannot reach the database server"),
        "{err}"
    );

    // The right one; saved without any password in the file.
    form["port"] = json!(std::env::var("SCHOOLVAULT_TEST_PG_PORT")
        .unwrap_or_else(|_| "5432".into())
        .parse::<u16>()
        .unwrap());
    let r = call(
        &w,
        "test_connection",
        json!({"form": form, "password": null}),
    )
    .unwrap();
    assert!(
        r["server_version"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL"),
        "{r}"
    );
    assert_eq!(r["tables"], 1);
    let s = call(
        &w,
        "save_connection",
        json!({"form": form, "password": null}),
    )
    .unwrap();
    assert_eq!(s["configured"], true, "{s}");
    assert_eq!(s["key"]["origin"], "env");
    let text = std::fs::read_to_string(&config_path).unwrap();
    assert!(text.contains(&db) && !text.contains("password ="), "{text}");

    // Settings: a backup folder of our own; a bad cron is refused with the reason.
    let mut settings = call(&w, "get_settings", json!({})).unwrap();
    settings["backup_dir"] = json!(dir.path().join("backups"));
    settings["schedule_enabled"] = json!(false);
    call(&w, "save_settings", json!({"settings": settings})).unwrap();
    let mut bad = settings.clone();
    bad["cron"] = json!("0 2 *");
    let err = call(&w, "save_settings", json!({"settings": bad})).unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    let next = call(
        &w,
        "schedule_preview",
        json!({"cron": "0 2 * * *", "timezone": "UTC"}),
    )
    .unwrap();
    assert_eq!(next.as_array().unwrap().len(), 5);
    assert!(next[0].as_str().unwrap().contains("T02:00:00"), "{next}");
    // Emails: off by default, so the test email says so; on without a recipient is refused.
    let err = call(&w, "send_test_email", json!({})).unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    let mut no_one = settings.clone();
    no_one["email_enabled"] = json!(true);
    no_one["smtp_host"] = json!("127.0.0.1");
    let err = call(&w, "save_settings", json!({"settings": no_one})).unwrap_err();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("nobody would get them"),
        "{err}"
    );

    // Back up with a progress channel.
    let b = call(&w, "backup_now", json!({"onProgress": "__CHANNEL__:7"})).unwrap();
    assert_eq!(b["rows"], 500, "{b}");
    assert_eq!(b["kind"], "manual");
    let list = call(&w, "list_backups", json!({})).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let id = list[0]["id"].as_str().unwrap().to_string();

    // The restore warning: what would be lost, table by table.
    psql(
        &db,
        "DELETE FROM pupils WHERE id > 450; UPDATE pupils SET name = 'changed' WHERE id = 1;",
    );
    let p = call(&w, "restore_preview", json!({"what": id})).unwrap();
    assert_eq!(p["target_database"], db.as_str());
    assert_eq!(p["tables"][0]["name"], "public.pupils");
    assert_eq!(p["tables"][0]["backup_rows"], 500);
    assert_eq!(p["tables"][0]["live_rows"], 450);

    // The typed name is checked here too: a wrong one changes nothing.
    let err = call(&w, "restore", json!({"what": id, "confirmName": "other", "safetyBackup": true, "onProgress": "__CHANNEL__:8"})).unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    assert_eq!(psql(&db, "SELECT count(*) FROM pupils"), "450");

    let r = call(
        &w,
        "restore",
        json!({"what": id, "confirmName": db, "safetyBackup": true, "onProgress": "__CHANNEL__:9"}),
    )
    .unwrap();
    assert_eq!(r["rows"], 500, "{r}");
    assert!(r["safety_backup_id"].is_string(), "{r}");
    assert_eq!(psql(&db, "SELECT count(*) FROM pupils"), "500");
    assert_eq!(psql(&db, "SELECT name FROM pupils WHERE id = 1"), "Pupil 1");

    // Verify, the history, and a file that is not a backup.
    let v = call(&w, "verify_backup", json!({"id": id})).unwrap();
    assert_eq!(v["rows"], 500);
    let list = call(&w, "list_backups", json!({})).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "the safety backup is listed"
    );
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["verified"] == true));
    let runs = call(&w, "history", json!({"limit": 50})).unwrap();
    assert!(runs.as_array().unwrap().len() >= 4, "{runs}");
    let junk = dir.path().join("junk.svb");
    std::fs::write(&junk, b"not a backup at all").unwrap();
    let err = call(&w, "restore_preview", json!({"what": junk})).unwrap_err();
    assert!(
        ["not_a_backup", "truncated", "damaged"].contains(&err["code"].as_str().unwrap()),
        "{err}"
    );

    // Nothing returned to the UI carries the key.
    let s = call(&w, "status", json!({})).unwrap().to_string();
    assert!(!s.contains(&"11".repeat(32)));

    drop(app);
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}

#[test]
fn a_failed_backup_emails_the_administrators_and_a_refused_email_is_shown_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let smtp_ok = smtp::SmtpServer::start(&dir.path().join("ok"));
    let refusing_dir = dir.path().join("refusing");
    std::fs::create_dir_all(&refusing_dir).unwrap();
    let smtp_refusing = smtp::SmtpServer::refusing(&refusing_dir);
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));

    // Set up as the app saves it: a database server that is down, emails to two administrators.
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "[database]\nhost = \"127.0.0.1\"\nport = 1\nname = \"school\"\nuser = \"postgres\"\n\n\
             [backup]\ndir = {backups:?}\n\n[schedule]\nenabled = false\n\n\
             [email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"plain\"\n\
             from = \"schoolvault@school.example\"\nto = [\"head@school.example\", \"it@school.example\"]\n",
            backups = dir.path().join("backups").display().to_string(),
            port = smtp_ok.port,
        ),
    )
    .unwrap();
    let (app, w) = open_app(config_path, dir.path().join("catalog.sqlite"));

    let err = call(&w, "backup_now", json!({"onProgress": "__CHANNEL__:7"})).unwrap_err();
    assert_eq!(err["code"], "db_unreachable", "{err}");
    let mails = smtp_ok.messages();
    assert_eq!(mails.len(), 2, "one email to each administrator");
    for m in &mails {
        assert!(m.contains("manual backup") && m.contains("FAILED"), "{m}");
        assert!(m.contains("Cannot reach the database server"), "{m}");
    }
    let s = call(&w, "status", json!({})).unwrap();
    assert_eq!(s["failure"]["code"], "db_unreachable", "{s}");
    assert_eq!(s["failure"]["email_error"], Value::Null, "{s}");

    // The settings screen: the watchdog and the weekly report; the SMTP server now refuses.
    let mut settings = call(&w, "get_settings", json!({})).unwrap();
    assert_eq!(settings["watchdog_minutes"], 10, "{settings}");
    assert_eq!(settings["weekly_digest"], false, "{settings}");
    settings["watchdog_minutes"] = json!(0);
    let err = call(&w, "save_settings", json!({"settings": settings})).unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    settings["watchdog_minutes"] = json!(15);
    settings["weekly_digest"] = json!(true);
    settings["smtp_port"] = json!(smtp_refusing.port);
    let saved = call(&w, "save_settings", json!({"settings": settings})).unwrap();
    assert_eq!(saved["watchdog_minutes"], 15);
    assert_eq!(saved["weekly_digest"], true);

    // The email is refused: the backup's own error is what the command returns; the banner
    // also says the administrators were not told; the history has both.
    let err = call(&w, "backup_now", json!({"onProgress": "__CHANNEL__:8"})).unwrap_err();
    assert_eq!(err["code"], "db_unreachable", "{err}");
    let s = call(&w, "status", json!({})).unwrap();
    assert_eq!(s["failure"]["code"], "db_unreachable", "{s}");
    let why = s["failure"]["email_error"].as_str().unwrap_or_default();
    assert!(why.contains("could not be sent"), "{s}");
    let runs = call(&w, "history", json!({"limit": 20})).unwrap();
    let ops: Vec<(String, String)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["operation"].to_string(), r["outcome"].to_string()))
        .collect();
    assert_eq!(
        ops.iter()
            .filter(|(o, r)| o == "\"notify\"" && r == "\"failure\"")
            .count(),
        1,
        "{ops:?}"
    );
    assert_eq!(
        ops.iter()
            .filter(|(o, r)| o == "\"backup\"" && r == "\"failure\"")
            .count(),
        2,
        "{ops:?}"
    );
    assert_eq!(
        smtp_ok.messages().len(),
        2,
        "nothing more to the first server"
    );

    // The app keeps working: dismiss the failure, list the (no) backups.
    call(&w, "acknowledge_failure", json!({})).unwrap();
    assert_eq!(
        call(&w, "status", json!({})).unwrap()["failure"],
        Value::Null
    );
    assert_eq!(call(&w, "list_backups", json!({})).unwrap(), json!([]));
    drop(app);
}

/// A desktop that remembers what it was asked to show.
#[derive(Default, Clone)]
struct Recorded(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Recorded {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

impl Shell for Recorded {
    fn look(&self, look: Look) {
        self.push(format!("look {look:?}"));
    }
    fn status_lines(&self, last: &str, next: &str) {
        self.push(format!("status {last} | {next}"));
    }
    fn notify(&self, title: &str, body: &str) {
        self.push(format!("notify {title}: {body}"));
    }
    fn pick_backup_file(&self) -> Picked {
        schoolvault_app::state::picked(None)
    }
    fn pick_recovery_file(&self, _: &str) -> Picked {
        schoolvault_app::state::picked(None)
    }
    fn show_secret(&self, _: &str, _: &str) {}
    fn autostart(&self, _: bool) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn the_apps_schedule_catches_up_once_shows_it_in_the_tray_and_reports_a_failure() {
    use chrono::{Duration, Timelike, Utc};

    let dir = tempfile::tempdir().unwrap();
    let smtp = smtp::SmtpServer::start(&dir.path().join("smtp"));
    let db = format!("sv_sched_{:08x}", std::process::id());
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE pupils (id int PRIMARY KEY); INSERT INTO pupils SELECT generate_series(1, 50);");
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));
    let host = std::env::var("SCHOOLVAULT_TEST_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("SCHOOLVAULT_TEST_PG_PORT").unwrap_or_else(|_| "5432".into());
    // A daily slot twelve hours ago: the app was not running then, so it is a catch-up.
    let hour = (Utc::now().hour() + 12) % 24;
    let config = |db_port: &str, name: &str| {
        format!(
            "[database]\nhost = {host:?}\nport = {db_port}\nname = {db:?}\nuser = \"postgres\"\n\n\
             [backup]\ndir = {backups:?}\n\n[schedule]\ncron = \"0 {hour} * * *\"\ntimezone = \"UTC\"\n\n\
             [email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {smtp}\nsecurity = \"plain\"\n\
             from = \"schoolvault@school.example\"\nto = [\"it@school.example\"]\n",
            backups = dir.path().join(name).display().to_string(),
            smtp = smtp.port,
        )
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The app started two days ago (a fresh install counts from its start).
    let started = Utc::now() - Duration::days(2);
    let shell = Recorded::default();
    std::fs::write(dir.path().join("good.toml"), config(&port, "backups")).unwrap();
    let state = AppState::new(
        dir.path().join("good.toml"),
        dir.path().join("good.sqlite"),
        Box::new(shell.clone()),
    )
    .unwrap();
    rt.block_on(schoolvault_app::scheduler::tick(&state, started))
        .unwrap();
    let seen = shell.take();
    let looks: Vec<&String> = seen.iter().filter(|s| s.starts_with("look")).collect();
    assert_eq!(
        looks,
        ["look Running", "look Idle"],
        "the tray works while the scheduled backup runs: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.starts_with("status Last backup:") && s.contains("succeeded")),
        "{seen:?}"
    );
    let vault = rt.block_on(state.vault()).unwrap();
    let list = rt.block_on(vault.catalog.list()).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].kind.as_str(), "scheduled");
    let runs = rt.block_on(vault.catalog.runs(10)).unwrap();
    assert!(
        runs.iter()
            .any(|r| r.operation == "catch-up" && r.outcome == "success"),
        "{runs:?}"
    );
    // The next look: nothing due, so no second backup and no flicker in the tray.
    rt.block_on(schoolvault_app::scheduler::tick(&state, started))
        .unwrap();
    assert_eq!(rt.block_on(vault.catalog.list()).unwrap().len(), 1);
    let seen = shell.take();
    assert!(!seen.iter().any(|s| s == "look Running"), "{seen:?}");
    assert!(smtp.messages().is_empty(), "no email for a success");

    // A computer whose database server is down: red icon, notification, banner, email.
    let shell = Recorded::default();
    std::fs::write(dir.path().join("bad.toml"), config("1", "bad-backups")).unwrap();
    let state = AppState::new(
        dir.path().join("bad.toml"),
        dir.path().join("bad.sqlite"),
        Box::new(shell.clone()),
    )
    .unwrap();
    rt.block_on(schoolvault_app::scheduler::tick(&state, started))
        .unwrap();
    let seen = shell.take();
    let looks: Vec<&String> = seen.iter().filter(|s| s.starts_with("look")).collect();
    assert_eq!(
        looks.last().map(|s| s.as_str()),
        Some("look Failed"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(
            |s| s.starts_with("notify SchoolVault: the scheduled backup failed")
                && s.contains("Cannot reach the database server")
        ),
        "{seen:?}"
    );
    let failure = state.failure().unwrap();
    assert_eq!(failure.operation, "scheduled backup");
    assert_eq!(failure.code, "db_unreachable");
    assert_eq!(failure.email_error, None);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("scheduled backup"), "{}", mails[0]);
    // It stays red on the next look (the retry waits half an hour): no second attempt, no
    // second email; only the user dismisses the failure.
    rt.block_on(schoolvault_app::scheduler::tick(&state, started))
        .unwrap();
    assert!(state.failure().is_some());
    assert!(!shell
        .take()
        .iter()
        .any(|s| s == "look Idle" || s == "look Running"));
    assert_eq!(smtp.messages().len(), 1, "one email per attempt");
    drop(state);
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}
