//! The app's schedule: catch-up, the weekly test restore, failures in the tray.

use super::*;

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
    assert_eq!(
        failure.code,
        schoolvault_engine::ErrorKind::DbUnreachable.into()
    );
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
    assert!(b.status.is_complete(), "{}", b.status);
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
