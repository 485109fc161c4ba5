//! The app's commands through Tauri's IPC under the mock runtime (no display): set-up,
//! backup with a progress channel, the restore warning and its typed confirmation, settings
//! validation, errors as `{code, message}` — against the real PostgreSQL. The web view is not
//! trusted with more than it needs: files it names must have been picked in a dialog (or be in
//! the backup folder), saved passwords go only where they were saved for, and an old-system
//! file anyone could have written is restored only with the person's explicit trust.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

#[path = "../../crates/cli/tests/support/smtp.rs"]
mod smtp;
mod support;

use support::*;

use schoolvault_app::state::{AppState, Headless, Look, Picked, Shell};
use serde_json::{json, Value};

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

    // Settings: a backup folder of our own (chosen in the folder dialog, its answer injected);
    // a bad cron is refused with the reason.
    std::env::set_var("SCHOOLVAULT_PICK_DIR", dir.path().join("backups"));
    let chosen = call(&w, "pick_backup_dir", json!({})).unwrap();
    assert_eq!(chosen, json!(dir.path().join("backups")));
    let mut settings = call(&w, "get_settings", json!({})).unwrap();
    settings["backup_dir"] = chosen;
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
    let p = call(
        &w,
        "restore_preview",
        json!({"what": id, "onProgress": "__CHANNEL__:1"}),
    )
    .unwrap();
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
    let v = call(
        &w,
        "verify_backup",
        json!({"id": id, "onProgress": "__CHANNEL__:1"}),
    )
    .unwrap();
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
    // (In the backup folder, so the web view may name it without a dialog.)
    let junk = dir.path().join("backups").join("junk.svb");
    std::fs::write(&junk, b"not a backup at all").unwrap();
    let err = call(
        &w,
        "restore_preview",
        json!({"what": junk, "onProgress": "__CHANNEL__:1"}),
    )
    .unwrap_err();
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
    fn pick_ca_file(&self) -> Picked {
        schoolvault_app::state::picked(None)
    }
    fn pick_backup_dir(&self, _: &std::path::Path) -> Picked {
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
    use chrono::{Timelike, Utc};

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

    let shell = Recorded::default();
    std::fs::write(dir.path().join("good.toml"), config(&port, "backups")).unwrap();
    let state = AppState::new(
        dir.path().join("good.toml"),
        dir.path().join("good.sqlite"),
        Box::new(shell.clone()),
    )
    .unwrap();
    rt.block_on(look_installed_before(&state)).unwrap();
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
    rt.block_on(look_installed_before(&state)).unwrap();
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
    rt.block_on(look_installed_before(&state)).unwrap();
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
    rt.block_on(look_installed_before(&state)).unwrap();
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

#[test]
fn files_named_by_the_web_view_must_be_picked_and_an_unauthenticated_old_file_needs_trust() {
    use schoolvault_engine::crypto::Key;
    use schoolvault_engine::legacy;
    use schoolvault_engine::source::postgres::{PgTarget, Tls};

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sv_files_{:08x}", std::process::id());
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql("postgres", &format!("CREATE DATABASE {db}"));
    // The old system's 22 tables (as small as they can be), and its administrator.
    let mut ddl: String = legacy::V1_TABLES
        .iter()
        .map(|(_, t)| format!("CREATE TABLE \"{t}\" (id text PRIMARY KEY, name text);"))
        .collect();
    ddl.push_str("INSERT INTO \"User\" VALUES ('u1', 'Head teacher');");
    psql(&db, &ddl);
    // An old-system file under the public development key: anyone could have written it.
    let target = PgTarget::from_parts(&pg_host(), pg_port(), &db, "postgres", None, Tls::Disable);
    let dev = Key::from_hex(legacy::DEV_KEY_HEX).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (bytes, _) = rt.block_on(legacy::export(&target, &dev)).unwrap();
    let old = dir.path().join("old.enc");
    std::fs::write(&old, bytes).unwrap();
    psql(
        &db,
        "UPDATE \"User\" SET name = 'Changed since' WHERE id = 'u1'",
    );
    let name = || psql(&db, "SELECT name FROM \"User\" WHERE id = 'u1'");

    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nhost = {host:?}\nport = {port}\nname = {db:?}\nuser = \"postgres\"\ntls = \"disable\"\n\n\
             [backup]\ndir = {dir:?}\n\n[schedule]\nenabled = false\n",
            host = pg_host(),
            port = pg_port(),
            dir = backups.display().to_string(),
        ),
    )
    .unwrap();
    let shell = Picking::default();
    let (app, w) = open_app_with(
        config,
        dir.path().join("catalog.sqlite"),
        Box::new(shell.clone()),
        Arc::new(MemoryKeychain::default()),
    );

    // A path the user never picked, even one that passes through the backup folder: refused
    // by every command that takes a backup, before anything is read.
    let sneaky = backups.join("..").join("old.enc");
    for what in [PathBuf::from("/etc/passwd"), old.clone(), sneaky] {
        let err = call(
            &w,
            "restore_preview",
            json!({ "what": what, "onProgress": "__CHANNEL__:1"}),
        )
        .unwrap_err();
        assert_eq!(err["code"], "invalid_input", "{}: {err}", what.display());
        assert!(message(&err).contains("file dialog"), "{err}");
        let err = call(
            &w,
            "verify_backup",
            json!({ "id": what, "onProgress": "__CHANNEL__:1"}),
        )
        .unwrap_err();
        assert_eq!(err["code"], "invalid_input", "{}: {err}", what.display());
        let err = call(
            &w,
            "test_restore_backup",
            json!({ "id": what, "onProgress": "__CHANNEL__:1"}),
        )
        .unwrap_err();
        assert_eq!(err["code"], "invalid_input", "{}: {err}", what.display());
    }
    let err = call(
        &w,
        "restore",
        json!({"what": old, "confirmName": db, "safetyBackup": false, "trustDevKey": true, "onProgress": "__CHANNEL__:7"}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    assert_eq!(name(), "Changed since");

    // Picked in the dialog: now it may be read. It opened only with the public key: the
    // preview says so, for the modal's second warning.
    *shell.backup.lock().unwrap() = Some(old.clone());
    let picked = call(&w, "pick_restore_file", json!({})).unwrap();
    assert_eq!(picked, json!(old));
    let p = call(
        &w,
        "restore_preview",
        json!({ "what": old, "onProgress": "__CHANNEL__:1"}),
    )
    .unwrap();
    assert_eq!(p["format"], 1, "{p}");
    assert_eq!(p["dev_key"], true, "{p}");

    // Without the person's trust (the argument left out, or false), nothing changes.
    for trust in [None, Some(false)] {
        let mut args = json!({"what": old, "confirmName": db, "safetyBackup": false, "onProgress": "__CHANNEL__:8"});
        if let Some(t) = trust {
            args["trustDevKey"] = json!(t);
        }
        let err = call(&w, "restore", args).unwrap_err();
        assert_eq!(err["code"], "untrusted_file", "{err}");
        assert!(
            message(&err).contains("anyone could have written it"),
            "{err}"
        );
        assert_eq!(name(), "Changed since");
    }
    // With it (the second warning's box ticked), the file is restored.
    let r = call(
        &w,
        "restore",
        json!({"what": old, "confirmName": db, "safetyBackup": false, "trustDevKey": true, "onProgress": "__CHANNEL__:9"}),
    )
    .unwrap();
    assert_eq!(r["safety_backup_id"], Value::Null, "{r}");
    assert_eq!(name(), "Head teacher");

    // A file in the backup folder needs no dialog; a SchoolVault backup is no dev-key file.
    let copy = backups.join("copy.enc");
    std::fs::copy(&old, &copy).unwrap();
    let p = call(
        &w,
        "restore_preview",
        json!({ "what": copy, "onProgress": "__CHANNEL__:1"}),
    )
    .unwrap();
    assert_eq!(p["dev_key"], true, "{p}");
    let b = call(&w, "backup_now", json!({"onProgress": "__CHANNEL__:10"})).unwrap();
    let p = call(
        &w,
        "restore_preview",
        json!({ "what": b["id"], "onProgress": "__CHANNEL__:1"}),
    )
    .unwrap();
    assert_eq!(p["dev_key"], false, "{p}");
    let p = call(
        &w,
        "restore_preview",
        json!({ "what": b["path"], "onProgress": "__CHANNEL__:1"}),
    )
    .unwrap();
    assert_eq!(p["backup_id"], b["id"], "{p}");

    drop(app);
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}

#[test]
fn the_saved_database_password_goes_only_to_the_connection_it_was_saved_for() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));
    let (host, port) = (pg_host(), pg_port());
    // The same server under another name: without the check, the saved password would go.
    let other = if host == "localhost" {
        "127.0.0.1"
    } else {
        "localhost"
    };
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nhost = {host:?}\nport = {port}\nname = \"postgres\"\nuser = \"postgres\"\ntls = \"prefer\"\npassword_saved = true\n\n\
             [backup]\ndir = {dir:?}\n\n[schedule]\nenabled = false\n",
            dir = dir.path().join("backups").display().to_string(),
        ),
    )
    .unwrap();
    let keychain = MemoryKeychain::with("database-password", "saved-secret");
    let (app, w) = open_app_with(
        config.clone(),
        dir.path().join("catalog.sqlite"),
        Box::new(Headless),
        keychain.clone(),
    );
    let form = |host: &str, port: u16, user: &str, tls: &str| json!({"host": host, "port": port, "name": "postgres", "user": user, "tls": tls, "password_saved": true});

    // Another host, port or user, or a less checked connection: the keychain is not even read.
    for (what, f) in [
        ("another host", form(other, port, "postgres", "prefer")),
        ("another port", form(&host, 1, "postgres", "prefer")),
        ("another user", form(&host, port, "backup", "prefer")),
        ("no TLS", form(&host, port, "postgres", "disable")),
    ] {
        let err = call(&w, "test_connection", json!({"form": f, "password": null})).unwrap_err();
        assert_eq!(err["code"], "password_needed", "{what}: {err}");
        assert!(
            message(&err).contains("Type the password for"),
            "{what}: {err}"
        );
        assert!(
            keychain.log().is_empty(),
            "{what}: the keychain was read: {:?}",
            keychain.log()
        );
    }

    // The saved connection itself uses it; another server uses the password typed for it.
    let r = call(
        &w,
        "test_connection",
        json!({"form": form(&host, port, "postgres", "prefer"), "password": null}),
    )
    .unwrap();
    assert!(
        r["server_version"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL"),
        "{r}"
    );
    assert_eq!(keychain.log(), ["get database-password"]);
    call(
        &w,
        "test_connection",
        json!({"form": form(other, port, "postgres", "prefer"), "password": "typed-for-it"}),
    )
    .unwrap();
    assert_eq!(keychain.log().len(), 1, "{:?}", keychain.log());

    // Saved for another server without a typed password: saved without one, however the form
    // insists.
    for _ in 0..2 {
        let s = call(
            &w,
            "save_connection",
            json!({"form": form(other, port, "postgres", "prefer"), "password": null}),
        )
        .unwrap();
        assert_eq!(s["database"]["host"], other, "{s}");
        assert_eq!(s["database"]["password_saved"], false, "{s}");
    }
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("password_saved = false"), "{text}");
    assert_eq!(keychain.log().len(), 1, "{:?}", keychain.log());
    // With a typed one, it is saved (in the keychain, not the file).
    let s = call(
        &w,
        "save_connection",
        json!({"form": form(other, port, "postgres", "prefer"), "password": "new-secret"}),
    )
    .unwrap();
    assert_eq!(s["database"]["password_saved"], true, "{s}");
    assert_eq!(
        keychain.secret("database-password").as_deref(),
        Some("new-secret")
    );
    assert!(!std::fs::read_to_string(&config)
        .unwrap()
        .contains("new-secret"));
    drop(app);
}

#[test]
fn a_new_smtp_server_or_plain_forgets_the_smtp_password_and_plain_logs_in_only_locally() {
    use schoolvault_engine::config::EmailSettings;

    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\ndir = {dir:?}\n\n[schedule]\nenabled = false\n\n\
             [email]\nenabled = true\nhost = \"smtp.school.example\"\nport = 587\nsecurity = \"starttls\"\n\
             user = \"backup\"\npassword_saved = true\nfrom = \"schoolvault@school.example\"\nto = [\"it@school.example\"]\n",
            dir = dir.path().join("backups").display().to_string(),
        ),
    )
    .unwrap();
    let keychain = MemoryKeychain::with("smtp-password", "smtp-secret");
    let (app, w) = open_app_with(
        config,
        dir.path().join("catalog.sqlite"),
        Box::new(Headless),
        keychain.clone(),
    );
    let save = |settings: &Value, password: Option<&str>| {
        call(
            &w,
            "save_settings",
            json!({"settings": settings, "smtpPassword": password}),
        )
    };

    // Saved again unchanged: kept.
    let settings = call(&w, "get_settings", json!({})).unwrap();
    assert_eq!(settings["smtp_password_saved"], true, "{settings}");
    let settings = save(&settings, None).unwrap();
    assert_eq!(settings["smtp_password_saved"], true, "{settings}");
    assert!(keychain.secret("smtp-password").is_some());

    // Another server: the password is forgotten, in the file and in the keychain.
    let mut elsewhere = settings.clone();
    elsewhere["smtp_host"] = json!("mail.elsewhere.example");
    let settings = save(&elsewhere, None).unwrap();
    assert_eq!(settings["smtp_password_saved"], false, "{settings}");
    assert_eq!(keychain.secret("smtp-password"), None);
    assert!(keychain.log().contains(&"delete smtp-password".to_string()));
    // The form cannot claim it back; a password typed for the new server is saved.
    let mut claims = settings.clone();
    claims["smtp_password_saved"] = json!(true);
    assert_eq!(save(&claims, None).unwrap()["smtp_password_saved"], false);
    let settings = save(&settings, Some("elsewhere-secret")).unwrap();
    assert_eq!(settings["smtp_password_saved"], true, "{settings}");

    // A login over plain SMTP to another machine: refused, nothing changed.
    let mut plain = settings.clone();
    plain["smtp_security"] = json!("plain");
    let err = save(&plain, None).unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    assert!(message(&err).contains("unencrypted"), "{err}");
    assert_eq!(
        call(&w, "get_settings", json!({})).unwrap()["smtp_security"],
        "starttls"
    );
    assert_eq!(
        keychain.secret("smtp-password").as_deref(),
        Some("elsewhere-secret")
    );

    // A relay on this machine may take a login over plain, but switching to plain forgets
    // the saved password (type it again if the relay needs one).
    let mut local = settings.clone();
    local["smtp_host"] = json!("localhost");
    let settings = save(&local, Some("relay-secret")).unwrap();
    assert_eq!(settings["smtp_password_saved"], true, "{settings}");
    let mut plain = settings.clone();
    plain["smtp_security"] = json!("plain");
    let settings = save(&plain, None).unwrap();
    assert_eq!(settings["smtp_security"], "plain", "{settings}");
    assert_eq!(settings["smtp_password_saved"], false, "{settings}");
    assert_eq!(keychain.secret("smtp-password"), None);
    drop(app);

    // The engine refuses such settings by itself too (a settings file edited by hand), before
    // it reads the password.
    let by_hand = EmailSettings {
        enabled: true,
        host: "smtp.school.example".into(),
        security: "plain".into(),
        user: Some("backup".into()),
        password_saved: true,
        to: vec!["it@school.example".into()],
        ..EmailSettings::default()
    };
    let keychain = MemoryKeychain::with("smtp-password", "smtp-secret");
    let err = by_hand.smtp(keychain.as_ref()).unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains("unencrypted"), "{err}");
    assert!(keychain.log().is_empty(), "{:?}", keychain.log());
    for host in ["localhost", "127.0.0.1", "::1"] {
        let local = EmailSettings {
            host: host.into(),
            ..by_hand.clone()
        };
        let smtp = local.smtp(keychain.as_ref()).unwrap().unwrap();
        assert_eq!(
            smtp.password.as_deref().map(String::as_str),
            Some("smtp-secret")
        );
    }
    let no_login = EmailSettings {
        user: None,
        password_saved: false,
        ..by_hand
    };
    assert!(no_login.smtp(keychain.as_ref()).unwrap().is_some());
}

#[test]
fn the_connection_takes_every_tls_mode_and_only_a_picked_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\ndir = {:?}\n\n[schedule]\nenabled = false\n",
            dir.path().join("backups").display().to_string()
        ),
    )
    .unwrap();
    let ca = dir.path().join("school-ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let shell = Picking::default();
    let (app, w) = open_app_with(
        config.clone(),
        dir.path().join("catalog.sqlite"),
        Box::new(shell.clone()),
        Arc::new(MemoryKeychain::default()),
    );
    let form = |tls: &str, ca: Value| json!({"host": "db.school.lan", "port": 5432, "name": "erp", "user": "backup", "tls": tls, "ca_file": ca, "password_saved": false});

    // A CA file the user did not choose is refused (it would decide whom SchoolVault trusts).
    let err = call(
        &w,
        "save_connection",
        json!({"form": form("verify-full", json!(ca)), "password": null}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .find("[database]")
        .is_none());

    // Chosen in the dialog: every mode is taken; the CA file is kept for the checking ones.
    *shell.ca.lock().unwrap() = Some(ca.clone());
    assert_eq!(call(&w, "pick_ca_file", json!({})).unwrap(), json!(ca));
    let real = std::fs::canonicalize(&ca).unwrap().display().to_string();
    for tls in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
        let s = call(
            &w,
            "save_connection",
            json!({"form": form(tls, json!(ca)), "password": null}),
        )
        .unwrap();
        assert_eq!(s["database"]["tls"], tls, "{s}");
        let kept = tls.starts_with("verify");
        assert_eq!(
            s["database"]["ca_file"],
            if kept { json!(real) } else { Value::Null },
            "{s}"
        );
    }
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("tls = \"verify-full\"") && text.contains("ca_file = "),
        "{text}"
    );
    // No CA file: the public roots.
    let s = call(
        &w,
        "save_connection",
        json!({"form": form("verify-ca", Value::Null), "password": null}),
    )
    .unwrap();
    assert_eq!(s["database"]["ca_file"], Value::Null, "{s}");
    let err = call(
        &w,
        "test_connection",
        json!({"form": form("verify", Value::Null), "password": null}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    assert!(message(&err).contains("verify-full"), "{err}");
    call(
        &w,
        "save_connection",
        json!({"form": form("verify-full", json!(real)), "password": null}),
    )
    .unwrap();
    drop(app);

    // After a restart, the saved CA file is still accepted; another unpicked file is not.
    let (app, w) = open_app_with(
        config,
        dir.path().join("catalog.sqlite"),
        Box::new(Picking::default()),
        Arc::new(MemoryKeychain::default()),
    );
    let s = call(&w, "status", json!({})).unwrap();
    assert_eq!(s["database"]["ca_file"], json!(real), "{s}");
    call(
        &w,
        "save_connection",
        json!({"form": form("verify-ca", json!(real)), "password": null}),
    )
    .unwrap();
    let err = call(
        &w,
        "save_connection",
        json!({"form": form("verify-ca", json!("/etc/hostname")), "password": null}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    drop(app);
}

#[test]
fn the_backup_folder_changes_only_to_one_chosen_in_the_folder_dialog() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\ndir = {:?}\n\n[schedule]\nenabled = false\n",
            backups.display().to_string()
        ),
    )
    .unwrap();
    let shell = Picking::default();
    let (app, w) = open_app_with(
        config.clone(),
        dir.path().join("catalog.sqlite"),
        Box::new(shell.clone()),
        Arc::new(MemoryKeychain::default()),
    );
    let settings = call(&w, "get_settings", json!({})).unwrap();
    assert_eq!(settings["backup_dir"], json!(backups), "{settings}");
    let with_dir = |d: Value| {
        let mut s = settings.clone();
        s["backup_dir"] = d;
        s
    };
    let saved_dir = || call(&w, "get_settings", json!({})).unwrap()["backup_dir"].clone();

    // A folder typed into (or scripted in) the web view is refused, and nothing changes: with
    // `/` as the backup folder, every file would count as one the web view may name.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for d in [json!("/"), json!(elsewhere), json!(dir.path())] {
        let err = call(
            &w,
            "save_settings",
            json!({"settings": with_dir(d.clone())}),
        )
        .unwrap_err();
        assert_eq!(err["code"], "invalid_input", "{d}: {err}");
        assert!(message(&err).contains("Choose…"), "{d}: {err}");
        assert_eq!(saved_dir(), json!(backups), "{d}");
    }
    let err = call(
        &w,
        "restore_preview",
        json!({"what": "/etc/passwd", "onProgress": "__CHANNEL__:1"}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    assert!(message(&err).contains("file dialog"), "{err}");

    // The current folder is kept (the rest of the settings saved as usual).
    let mut unchanged = with_dir(json!(backups));
    unchanged["keep_days"] = json!(9);
    let s = call(&w, "save_settings", json!({"settings": unchanged})).unwrap();
    assert_eq!(s["backup_dir"], json!(backups), "{s}");
    assert_eq!(s["keep_days"], 9, "{s}");

    // Cancelled in the dialog: nothing is chosen.
    assert_eq!(call(&w, "pick_backup_dir", json!({})).unwrap(), Value::Null);

    // Chosen in the dialog: taken.
    *shell.dir.lock().unwrap() = Some(elsewhere.clone());
    let chosen = call(&w, "pick_backup_dir", json!({})).unwrap();
    assert_eq!(chosen, json!(elsewhere));
    let s = call(&w, "save_settings", json!({"settings": with_dir(chosen)})).unwrap();
    assert_eq!(s["backup_dir"], json!(elsewhere), "{s}");
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains(&elsewhere.display().to_string()));
    // …but not another folder because one was chosen, nor the old one once left.
    for d in [json!("/"), json!(backups)] {
        let err = call(
            &w,
            "save_settings",
            json!({"settings": with_dir(d.clone())}),
        )
        .unwrap_err();
        assert_eq!(err["code"], "invalid_input", "{d}: {err}");
        assert_eq!(saved_dir(), json!(elsewhere), "{d}");
    }

    // The default folder is always allowed (it stays out of the file).
    if let Ok(default) = schoolvault_engine::config::default_backup_dir() {
        let s = call(
            &w,
            "save_settings",
            json!({"settings": with_dir(json!(default))}),
        )
        .unwrap();
        assert_eq!(s["backup_dir"], json!(default), "{s}");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(!text.contains("elsewhere"), "{text}");
    }
    drop(app);
}

#[cfg(unix)]
#[test]
fn the_recovery_copy_replaces_a_readable_file_with_a_private_one() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\ndir = {:?}\n\n[schedule]\nenabled = false\n",
            dir.path().join("backups").display().to_string()
        ),
    )
    .unwrap();
    // The save dialog's answer (injected): a file already there, readable by everyone.
    let sheet = dir.path().join("recovery-key.txt");
    std::fs::write(
        &sheet,
        "an older, longer file that anyone may read ".repeat(20),
    )
    .unwrap();
    std::fs::set_permissions(&sheet, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::env::set_var("SCHOOLVAULT_SAVE_FILE", &sheet);
    let (app, w) = open_app_with(
        config,
        dir.path().join("catalog.sqlite"),
        Box::new(Headless),
        Arc::new(MemoryKeychain::default()),
    );

    let saved = call(&w, "key_save_recovery", json!({})).unwrap();
    assert_eq!(saved, json!(sheet));
    let mode = std::fs::metadata(&sheet).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the recovery copy is readable by others: {mode:o}"
    );
    let text = std::fs::read_to_string(&sheet).unwrap();
    assert!(text.contains(&"11".repeat(32)), "{text}");
    assert!(!text.contains("an older"), "{text}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    drop(app);
}

/// The scratch database a test restore of backup `id` uses: whether it is still there.
fn scratch_left(id: &str) -> bool {
    let name = format!("schoolvault_verify_{}", id.replace('-', "_")).to_lowercase();
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    ) != "0"
}

/// A settings file for a backup every minute of `db` into `dir`/backups (`extra`: more
/// `[schedule]` lines, then any other sections).
fn every_minute(dir: &std::path::Path, db: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nhost = {host:?}\nport = {port}\nname = {db:?}\nuser = \"postgres\"\n\n\
             [backup]\ndir = {backups:?}\n\n[schedule]\ncron = \"* * * * *\"\ntimezone = \"UTC\"\n{extra}",
            host = pg_host(),
            port = pg_port(),
            backups = dir.join("backups").display().to_string(),
        ),
    )
    .unwrap();
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_schedule_test_restores_the_new_backup_once_a_week_unless_turned_off() {
    use schoolvault_engine::jobs;
    use tauri::Manager;

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sv_trest_{:08x}", std::process::id());
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE pupils (id int PRIMARY KEY, name text); INSERT INTO pupils SELECT g, 'Pupil ' || g FROM generate_series(1, 50) g;");
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));
    let rt = runtime();

    // On by default: the scheduled backup, then its test restore in a scratch database.
    let shell = Recorded::default();
    let on = dir.path().join("on");
    let state = AppState::new(
        every_minute(&on, &db, ""),
        on.join("catalog.sqlite"),
        Box::new(shell.clone()),
    )
    .unwrap();
    rt.block_on(look_installed_before(&state)).unwrap();
    let seen = shell.take();
    assert!(state.failure().is_none(), "{:?}", state.failure());
    let vault = rt.block_on(state.vault()).unwrap();
    let list = rt.block_on(vault.catalog.list()).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let b = &list[0];
    assert_eq!(b.kind.as_str(), "scheduled");
    assert_eq!(b.verify_ok, Some(true), "{b:?}");
    let said = b.verify_message.clone().unwrap_or_default();
    assert!(said.starts_with("test restore: "), "{said}");
    assert!(said.contains("50 rows"), "{said}");
    let mark = jobs::last_test_restore(&vault).unwrap();
    assert!(
        mark.ok && !mark.unavailable && mark.backup_id == b.id,
        "{mark:?}"
    );
    assert!(!scratch_left(&b.id), "the scratch database is dropped");
    // The tray says so.
    assert!(
        seen.iter().any(|s| s.starts_with("status Last backup:")
            && s.contains("succeeded · test restore: passed")),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter()
            .rfind(|s| s.starts_with("look"))
            .map(String::as_str),
        Some("look Idle"),
        "{seen:?}"
    );

    // The next look (maybe with another backup, a minute later): no second test restore
    // within the week.
    rt.block_on(look_installed_before(&state)).unwrap();
    assert_eq!(jobs::last_test_restore(&vault).unwrap().at, mark.at);
    let runs = rt.block_on(vault.catalog.runs(50)).unwrap();
    assert_eq!(
        runs.iter()
            .filter(|r| r.operation == "test_restore")
            .count(),
        1,
        "{runs:?}"
    );
    drop(state);

    // Turned off in Settings: a scheduled backup, no test restore (and nothing in the tray).
    let shell = Recorded::default();
    let off = dir.path().join("off");
    let config = every_minute(&off, &db, "");
    let (app, w) = open_app_with(
        config.clone(),
        off.join("catalog.sqlite"),
        Box::new(shell.clone()),
        Arc::new(MemoryKeychain::default()),
    );
    let mut settings = call(&w, "get_settings", json!({})).unwrap();
    assert_eq!(settings["test_restore"], true, "on by default: {settings}");
    settings["test_restore"] = json!(false);
    let saved = call(&w, "save_settings", json!({"settings": settings})).unwrap();
    assert_eq!(saved["test_restore"], false, "{saved}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("test_restore = false"), "{text}");
    let state = app.state::<AppState>();
    rt.block_on(look_installed_before(&state)).unwrap();
    let vault = rt.block_on(state.vault()).unwrap();
    let list = rt.block_on(vault.catalog.list()).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].verify_ok, None, "{:?}", list[0]);
    assert!(jobs::last_test_restore(&vault).is_none());
    let runs = rt.block_on(vault.catalog.runs(50)).unwrap();
    assert!(
        !runs.iter().any(|r| r.operation == "test_restore"),
        "{runs:?}"
    );
    assert!(
        !shell.take().iter().any(|s| s.contains("test restore")),
        "nothing about test restores in the tray"
    );
    drop(w);
    drop(app);
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}

#[test]
fn a_failed_weekly_test_restore_turns_the_tray_red_and_emails_the_administrators() {
    use schoolvault_engine::jobs;

    let dir = tempfile::tempdir().unwrap();
    let smtp = smtp::SmtpServer::start(&dir.path().join("smtp"));
    // Data the backup reads, and that cannot be restored: the constraint, added NOT VALID
    // over a row it forbids, is re-created before the data is copied in.
    let db = format!("sv_trfail_{:08x}", std::process::id());
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(
        &db,
        "CREATE DOMAIN posint AS int; CREATE TABLE t (id int primary key, v posint); \
         INSERT INTO t VALUES (1, -1); \
         ALTER DOMAIN posint ADD CONSTRAINT pos CHECK (VALUE > 0) NOT VALID;",
    );
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "11".repeat(32));
    let rt = runtime();
    let shell = Recorded::default();
    let config = every_minute(
        dir.path(),
        &db,
        &format!(
            "\n[email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
             from = \"schoolvault@school.example\"\nto = [\"it@school.example\"]\n",
            smtp.port
        ),
    );
    let state = AppState::new(
        config,
        dir.path().join("catalog.sqlite"),
        Box::new(shell.clone()),
    )
    .unwrap();
    rt.block_on(look_installed_before(&state)).unwrap();
    let seen = shell.take();

    // The backup was made; its test restore failed, and says so in the list.
    let vault = rt.block_on(state.vault()).unwrap();
    let list = rt.block_on(vault.catalog.list()).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let b = &list[0];
    assert_eq!(b.status, "complete");
    assert_eq!(b.verify_ok, Some(false), "{b:?}");
    let said = b.verify_message.clone().unwrap_or_default();
    assert!(said.starts_with("test restore failed: "), "{said}");
    let mark = jobs::last_test_restore(&vault).unwrap();
    assert!(
        !mark.ok && !mark.unavailable && mark.backup_id == b.id,
        "{mark:?}"
    );
    assert!(!scratch_left(&b.id), "the scratch database is dropped");

    // Shown as a failure: red tray, notification, banner, the tray's status line.
    assert_eq!(
        seen.iter()
            .rfind(|s| s.starts_with("look"))
            .map(String::as_str),
        Some("look Failed"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(
            |s| s.starts_with("notify SchoolVault: the scheduled backup failed")
                && s.contains("weekly test restore")
        ),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.starts_with("status Last backup:")
            && s.contains("succeeded · test restore FAILED")),
        "{seen:?}"
    );
    let failure = state.failure().unwrap();
    assert_eq!(failure.operation, "scheduled backup");
    assert!(
        failure.message.contains("weekly test restore"),
        "{failure:?}"
    );
    assert_eq!(failure.email_error, None, "{failure:?}");

    // One email, whose subject says what failed.
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let unfolded = mails[0]
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    let subject = unfolded
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap_or_default();
    assert!(
        subject.contains("weekly test restore") && subject.contains("FAILED"),
        "{subject}"
    );

    // Not tried (nor emailed) again within the week, even when the next minute's backup runs.
    rt.block_on(look_installed_before(&state)).unwrap();
    assert_eq!(jobs::last_test_restore(&vault).unwrap().at, mark.at);
    assert_eq!(smtp.messages().len(), 1, "one email");
    drop(state);
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}

/// One look at the schedule, as if the app had first looked two days ago: a new installation
/// waits for its first slot, and these tests want the last minute's slot due (a catch-up). The
/// marker is the engine's own record beside the catalog.
async fn look_installed_before(
    state: &AppState,
) -> Result<std::time::Duration, schoolvault_app::dto::CommandError> {
    let vault = state.vault().await?;
    let marker = vault
        .lock_dir
        .join(schoolvault_engine::jobs::FIRST_LOOK_FILE);
    if !marker.exists() {
        let at = chrono::Utc::now() - chrono::Duration::days(2);
        std::fs::write(
            &marker,
            serde_json::json!({ "first_look": at.to_rfc3339() }).to_string(),
        )
        .unwrap();
    }
    schoolvault_app::scheduler::tick(state).await
}
