//! The failure emails and the SMTP settings.

use super::*;

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
