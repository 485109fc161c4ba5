//! Connection, TLS, backup folder and recovery-copy settings.

use super::*;

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
    // The mode is typed: an unknown one never reaches the command (the IPC layer refuses
    // it, naming the five), and nothing is saved.
    let err = call(
        &w,
        "test_connection",
        json!({"form": form("verify", Value::Null), "password": null}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("verify-full"), "{err}");
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
