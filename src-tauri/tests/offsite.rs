//! The offsite destinations through the app's commands, against a real S3 server on loopback
//! (s3s-fs): a destination is tested before it is saved (a wrong secret saves nothing), its
//! secret goes to the keychain and never into the settings file or back to the window, each
//! backup's copy shows in the list (done, or pending while the server is down), "Sync now"
//! finishes what waits, a new computer finds the backups in the bucket and downloads one for
//! its restore preview, and removing a destination forgets its secret.
#![allow(clippy::unwrap_used)]

#[path = "../../crates/cli/tests/support/servers.rs"]
mod servers;
mod support;

use std::sync::Arc;

use schoolvault_app::state::Headless;
use serde_json::{json, Value};
use support::*;

fn copy_state(row: &Value, destination: &str) -> String {
    row["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["destination"] == destination)
        .unwrap_or_else(|| panic!("no copy at {destination}: {row}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_destination_is_tested_saved_with_its_secret_in_the_keychain_and_shows_each_copy() {
    let mut s3 = servers::S3::start();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sv_app_offsite_{:08x}", std::process::id());
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE pupils (id int PRIMARY KEY, name text); INSERT INTO pupils SELECT g, 'Pupil ' || g FROM generate_series(1, 300) g;");
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "22".repeat(32));
    let keychain = Arc::new(MemoryKeychain::default());
    let config_path = dir.path().join("config.toml");
    let (_app, w) = open_app_with(
        config_path.clone(),
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

    let mut dest = json!({
        "name": "cloud", "kind": "s3", "url": s3.url("school", "app"), "enabled": true,
        "access_key_id": s3.access_key, "secret_saved": false,
        "keep_days": null, "keep_last": null, "keep_weekly": null, "keep_monthly": null,
        "bandwidth_kbps": null, "copies_done": 0, "copies_pending": 0, "copies_failed": 0,
        "waiting_since": null, "last_error": null,
    });
    // A wrong secret: refused by the server, said as such, nothing saved anywhere.
    let err = call(
        &w,
        "save_destination",
        json!({"destination": dest, "secret": "not-the-secret"}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "destination_auth", "{err}");
    assert!(call(&w, "list_destinations", json!({}))
        .unwrap()
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(keychain.secret("destination-cloud"), None);

    // The right one: tested, saved; the secret only in the keychain.
    let saved = call(
        &w,
        "save_destination",
        json!({"destination": dest, "secret": s3.secret_key}),
    )
    .unwrap();
    assert_eq!(saved["secret_saved"], true, "{saved}");
    assert_eq!(
        keychain.secret("destination-cloud").as_deref(),
        Some(s3.secret_key.as_str())
    );
    let file = std::fs::read_to_string(&config_path).unwrap();
    assert!(file.contains("[[destinations]]"), "{file}");
    assert!(!file.contains(&s3.secret_key), "{file}");
    let listed = call(&w, "list_destinations", json!({})).unwrap();
    assert!(!listed.to_string().contains(&s3.secret_key));
    call(&w, "test_destination", json!({"name": "cloud"})).unwrap();

    // A backup is copied, and the list says where it is.
    let b = call(&w, "backup_now", json!({"onProgress": "__CHANNEL__:7"})).unwrap();
    assert_eq!(copy_state(&b, "cloud"), "done", "{b}");
    assert_eq!(b["local"], true);
    let name = std::path::Path::new(b["path"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(s3.object("school", &format!("app/{name}")).is_file());

    // The server down: the backup succeeds, its copy waits, and the destination says since
    // when and why.
    s3.server.stop();
    let b2 = call(&w, "backup_now", json!({"onProgress": "__CHANNEL__:8"})).unwrap();
    assert_eq!(copy_state(&b2, "cloud"), "pending", "{b2}");
    let list = call(&w, "list_backups", json!({})).unwrap();
    assert_eq!(copy_state(&list[0], "cloud"), "pending");
    assert!(list[0]["copies"][0]["since"].is_string(), "{list}");
    let d = call(&w, "list_destinations", json!({})).unwrap();
    assert_eq!(d[0]["copies_pending"], 1, "{d}");
    assert!(d[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("cannot be reached"));
    let status = call(&w, "status", json!({})).unwrap();
    assert!(
        status["failure"].is_null(),
        "a pending copy is not a failed backup: {status}"
    );
    assert_eq!(
        status["offsite_behind"],
        json!([]),
        "not behind for long yet"
    );
    // Waiting for three days (the catalog's clock moved back): the status says so, for the
    // banner and the tray.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The catalog is the engine's to write (under its run lock); the test moves the clock
        // of the copies that are not done back in the file itself.
        use sqlx::Row;
        let url = format!("sqlite://{}", dir.path().join("catalog.sqlite").display());
        let db = sqlx::SqlitePool::connect(&url).await.unwrap();
        let rows =
            sqlx::query("SELECT backup_id, destination, since FROM copies WHERE state <> 'done'")
                .fetch_all(&db)
                .await
                .unwrap();
        assert!(!rows.is_empty(), "a copy waits");
        for r in rows {
            let since: String = r.get(2);
            let since =
                chrono::DateTime::parse_from_rfc3339(&since).unwrap() - chrono::Duration::days(3);
            sqlx::query("UPDATE copies SET since = ? WHERE backup_id = ? AND destination = ?")
                .bind(since.to_rfc3339())
                .bind(r.get::<String, _>(0))
                .bind(r.get::<String, _>(1))
                .execute(&db)
                .await
                .unwrap();
        }
        db.close().await;
    });
    let status = call(&w, "status", json!({})).unwrap();
    let behind = status["offsite_behind"][0].as_str().unwrap_or_default();
    assert!(
        behind.starts_with("no copy to cloud since") && behind.contains("cannot be reached"),
        "{status}"
    );

    // Back up: "Sync now" finishes it.
    s3.server.start();
    let synced = call(
        &w,
        "sync_now",
        json!({"verify": true, "onProgress": "__CHANNEL__:9"}),
    )
    .unwrap();
    assert_eq!(synced[0]["uploaded"], 1, "{synced}");
    assert_eq!(synced[0]["owed"], 0, "{synced}");
    let list = call(&w, "list_backups", json!({})).unwrap();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|r| copy_state(r, "cloud") == "done"));

    // The local file lost: the list says so, and the restore modal's preview brings it back
    // from the bucket, checked, before it shows what the restore would do.
    std::fs::remove_file(b["path"].as_str().unwrap()).unwrap();
    let list = call(&w, "list_backups", json!({})).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == b["id"])
        .unwrap();
    assert_eq!(row["local"], false, "{row}");
    let p = call(
        &w,
        "restore_preview",
        json!({"what": b["id"], "onProgress": "__CHANNEL__:10"}),
    )
    .unwrap();
    assert_eq!(p["backup_id"], b["id"], "{p}");
    assert!(std::path::Path::new(b["path"].as_str().unwrap()).is_file());

    // A new computer (its own settings, catalog and backup folder; the same key): the
    // destination added again, "Find backups" lists what the bucket holds, not on this
    // computer, each with its copy there; the restore preview downloads one first.
    let new_pc = tempfile::tempdir().unwrap();
    let new_dir = new_pc.path().join("backups");
    std::fs::write(
        new_pc.path().join("config.toml"),
        format!("[backup]\ndir = {:?}\n", new_dir.display().to_string()),
    )
    .unwrap();
    let (_app2, w2) = open_app_with(
        new_pc.path().join("config.toml"),
        new_pc.path().join("catalog.sqlite"),
        Box::new(Headless),
        Arc::new(MemoryKeychain::default()),
    );
    call(
        &w2,
        "save_connection",
        json!({"form": form, "password": null}),
    )
    .unwrap();
    assert!(call(&w2, "list_backups", json!({}))
        .unwrap()
        .as_array()
        .unwrap()
        .is_empty());
    call(
        &w2,
        "save_destination",
        json!({"destination": dest, "secret": s3.secret_key}),
    )
    .unwrap();
    let found = call(&w2, "find_backups", json!({"name": "cloud"})).unwrap();
    assert_eq!(found["listed"], 2, "{found}");
    assert_eq!(found["unfinished"], 0, "{found}");
    let list = call(&w2, "list_backups", json!({})).unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    for r in rows {
        assert_eq!(r["local"], false, "{r}");
        assert_eq!(copy_state(r, "cloud"), "done", "{r}");
    }
    let err = call(&w2, "find_backups", json!({"name": "nowhere"})).unwrap_err();
    assert_eq!(err["code"], "not_found", "{err}");
    let p = call(
        &w2,
        "restore_preview",
        json!({"what": b2["id"], "onProgress": "__CHANNEL__:11"}),
    )
    .unwrap();
    assert_eq!(p["backup_id"], b2["id"], "{p}");
    assert_eq!(p["backup_rows"], 300, "{p}");
    assert!(
        std::fs::read_dir(&new_dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".svb")),
        "the backup came down into the new computer's folder"
    );

    // Changing it without a secret keeps the saved one; removing it forgets the secret and
    // leaves its files.
    dest["keep_last"] = json!(5);
    dest["keep_days"] = json!(7);
    let changed = call(
        &w,
        "save_destination",
        json!({"destination": dest, "secret": null}),
    )
    .unwrap();
    assert_eq!(changed["keep_last"], 5, "{changed}");
    assert!(keychain.secret("destination-cloud").is_some());
    call(&w, "remove_destination", json!({"name": "cloud"})).unwrap();
    assert_eq!(keychain.secret("destination-cloud"), None);
    assert!(s3.object("school", &format!("app/{name}")).is_file());
    let list = call(&w, "list_backups", json!({})).unwrap();
    assert!(list[0]["copies"].as_array().unwrap().is_empty(), "{list}");
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
}
