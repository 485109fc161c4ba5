//! Key rotation through the app's commands (mock runtime, the real PostgreSQL): the new key
//! becomes current only once its recovery copy is saved (a cancelled dialog changes nothing),
//! the list says which key each backup uses, and a backup made with the earlier key still
//! restores.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use schoolvault_app::state::Headless;
use serde_json::json;
use support::*;

#[test]
fn a_rotated_key_needs_its_copy_first_and_older_backups_still_restore() {
    std::env::remove_var("BACKUP_ENCRYPTION_KEY");
    std::env::remove_var("SCHOOLVAULT_SAVE_FILE");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sv_rotate_{:08x}", std::process::id());
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE pupils (id int PRIMARY KEY, name text); INSERT INTO pupils SELECT g, 'Pupil ' || g FROM generate_series(1, 200) g;");
    let keychain = Arc::new(MemoryKeychain::default());
    let (app, w) = open_app_with(
        dir.path().join("config.toml"),
        dir.path().join("catalog.sqlite"),
        Box::new(Headless),
        keychain.clone(),
    );
    let form = json!({"host": pg_host(), "port": pg_port(), "name": db, "user": "postgres", "tls": "disable", "password_saved": false});
    call(
        &w,
        "save_connection",
        json!({"form": form, "password": null}),
    )
    .unwrap();
    std::env::set_var("SCHOOLVAULT_PICK_DIR", dir.path().join("backups"));
    let chosen = call(&w, "pick_backup_dir", json!({})).unwrap();
    let mut settings = call(&w, "get_settings", json!({})).unwrap();
    settings["backup_dir"] = chosen;
    settings["schedule_enabled"] = json!(false);
    call(&w, "save_settings", json!({"settings": settings})).unwrap();

    let first = call(&w, "key_generate", json!({})).unwrap();
    let first_fp = first["fingerprint"].as_str().unwrap().to_string();
    let old = call(&w, "backup_now", json!({"onProgress": "__CHANNEL__:1"})).unwrap();
    assert_eq!(old["key"], first_fp.as_str());
    let status = call(&w, "status", json!({})).unwrap();
    assert!(status["key_since"].is_string(), "{status}");
    assert_eq!(
        status["key_rotation_due"], false,
        "a key made today is not due"
    );

    // The save dialog cancelled: nothing changes.
    assert_eq!(call(&w, "key_rotate", json!({})).unwrap(), json!(null));
    assert_eq!(
        call(&w, "status", json!({})).unwrap()["key"]["fingerprint"],
        first_fp.as_str()
    );

    // Saved: the new key is current, its sheet holds it, the old one stays in the keychain.
    let sheet = dir.path().join("new-key.txt");
    std::env::set_var("SCHOOLVAULT_SAVE_FILE", &sheet);
    let second = call(&w, "key_rotate", json!({})).unwrap();
    std::env::remove_var("SCHOOLVAULT_SAVE_FILE");
    let second_fp = second["fingerprint"].as_str().unwrap().to_string();
    assert_ne!(second_fp, first_fp);
    let text = std::fs::read_to_string(&sheet).unwrap();
    assert!(text.contains(&second_fp), "{text}");
    let status = call(&w, "status", json!({})).unwrap();
    assert_eq!(status["key"]["fingerprint"], second_fp.as_str());
    assert_eq!(status["key_recovery_pending"], false, "its copy is saved");
    assert!(keychain
        .secret(&format!("encryption-key-{first_fp}"))
        .is_some());

    // A new backup uses the new key; the list says which key each one uses.
    let new = call(&w, "backup_now", json!({"onProgress": "__CHANNEL__:2"})).unwrap();
    assert_eq!(new["key"], second_fp.as_str());
    let list = call(&w, "list_backups", json!({})).unwrap();
    let row = |id: &serde_json::Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == *id)
            .unwrap()
            .clone()
    };
    assert_eq!(row(&old["id"])["older_key"], true);
    assert_eq!(row(&old["id"])["key"], first_fp.as_str());
    assert_eq!(row(&new["id"])["older_key"], false);

    // The backup made with the earlier key still restores.
    psql(&db, "DELETE FROM pupils WHERE id > 50");
    let r = call(
        &w,
        "restore",
        json!({"what": old["id"], "confirmName": db, "safetyBackup": true, "onProgress": "__CHANNEL__:3"}),
    )
    .unwrap();
    assert_eq!(r["rows"], 200, "{r}");
    assert_eq!(psql(&db, "SELECT count(*) FROM pupils"), "200");

    drop(w);
    drop(app);
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}
