//! A school whose ERP runs on MariaDB, through the app's commands (mock runtime, the real
//! MariaDB at `SCHOOLVAULT_TEST_MY_HOST`:`SCHOOLVAULT_TEST_MY_PORT`, default 127.0.0.1:3306,
//! root without a password): the connection form's engine, the connection test, a backup, a
//! test restore, the restore warning with the live counts, and the restore itself.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::sync::Arc;

use schoolvault_app::state::Headless;
use serde_json::json;
use support::*;

fn my_host() -> String {
    std::env::var("SCHOOLVAULT_TEST_MY_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}
fn my_port() -> u16 {
    std::env::var("SCHOOLVAULT_TEST_MY_PORT")
        .unwrap_or_else(|_| "3306".into())
        .parse()
        .unwrap()
}

fn mariadb(db: Option<&str>, sql: &str) -> String {
    let mut c = Command::new("mariadb");
    c.args([
        "--batch",
        "--skip-column-names",
        "--protocol=TCP",
        "-u",
        "root",
    ])
    .args(["-h", &my_host(), "-P", &my_port().to_string()]);
    if let Some(db) = db {
        c.arg(db);
    }
    let out = c.args(["-e", sql]).output().unwrap_or_else(|e| {
        panic!("cannot run the mariadb client ({e}): install mariadb-client (make test does)")
    });
    assert!(
        out.status.success(),
        "MariaDB must answer as root without a password on {}:{} (start it with `make setup`): {sql}: {}",
        my_host(),
        my_port(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Dropped(String);
impl Drop for Dropped {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["--protocol=TCP", "-u", "root", "-h", &my_host()])
            .args(["-P", &my_port().to_string()])
            .args(["-e", &format!("DROP DATABASE IF EXISTS `{}`", self.0)])
            .output();
    }
}

#[test]
fn a_mariadb_school_is_backed_up_tested_and_restored_from_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sv_app_{:08x}", rand::random::<u32>());
    let _drop = Dropped(db.clone());
    mariadb(
        None,
        &format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4"),
    );
    mariadb(
        Some(&db),
        "CREATE TABLE pupils (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB;
         INSERT INTO pupils SELECT seq, CONCAT('Pupil ', seq) FROM seq_1_to_500;",
    );
    let keychain = Arc::new(MemoryKeychain::default());
    let (_app, w) = open_app_with(
        dir.path().join("config.toml"),
        dir.path().join("catalog.sqlite"),
        Box::new(Headless),
        keychain,
    );
    std::env::set_var(
        "BACKUP_ENCRYPTION_KEY",
        hex::encode(rand::random::<[u8; 32]>()),
    );
    let form = json!({"engine": "mariadb", "host": my_host(), "port": my_port(), "name": db, "user": "root", "tls": "disable", "password_saved": false});
    // A wrong password: the advice names the app's own form, not the CLI's MYSQL_PWD.
    let err = call(
        &w,
        "test_connection",
        json!({"form": form, "password": "not-the-password"}),
    )
    .unwrap_err();
    let said = err["message"].as_str().unwrap_or_default();
    assert_eq!(err["code"], "db_auth", "{err}");
    assert!(
        said.contains("Settings → School database") && !said.contains("MYSQL_PWD"),
        "{err}"
    );
    let report = call(
        &w,
        "test_connection",
        json!({"form": form, "password": null}),
    )
    .unwrap();
    assert!(
        report["server_version"]
            .as_str()
            .unwrap()
            .starts_with("MariaDB "),
        "{report}"
    );
    assert_eq!(report["tables"], 1, "{report}");
    call(
        &w,
        "save_connection",
        json!({"form": form, "password": null}),
    )
    .unwrap();
    let status = call(&w, "status", json!({})).unwrap();
    assert_eq!(status["database"]["engine"], "mariadb", "{status}");
    let settings = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(settings.contains("engine = \"mariadb\""), "{settings}");
    std::env::set_var("SCHOOLVAULT_PICK_DIR", dir.path().join("backups"));
    let chosen = call(&w, "pick_backup_dir", json!({})).unwrap();
    let mut s = call(&w, "get_settings", json!({})).unwrap();
    s["backup_dir"] = chosen;
    s["schedule_enabled"] = json!(false);
    call(&w, "save_settings", json!({"settings": s})).unwrap();

    let b = call(&w, "backup_now", json!({"onProgress": "__CHANNEL__:1"})).unwrap();
    assert_eq!(b["rows"], 500, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let t = call(
        &w,
        "test_restore_backup",
        json!({"id": id, "onProgress": "__CHANNEL__:2"}),
    )
    .unwrap();
    assert_eq!(t["rows"], 500, "{t}");

    // The warning counts what would be replaced; the typed name is checked.
    mariadb(
        Some(&db),
        "DELETE FROM pupils WHERE id > 450; UPDATE pupils SET name = 'changed' WHERE id = 1;",
    );
    let p = call(
        &w,
        "restore_preview",
        json!({"what": id, "onProgress": "__CHANNEL__:3"}),
    )
    .unwrap();
    assert_eq!(p["target_database"], db.as_str(), "{p}");
    assert_eq!(p["tables"][0]["backup_rows"], 500, "{p}");
    assert_eq!(p["tables"][0]["live_rows"], 450, "{p}");
    let err = call(&w, "restore", json!({"what": id, "confirmName": "other", "safetyBackup": true, "onProgress": "__CHANNEL__:4"})).unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    let r = call(
        &w,
        "restore",
        json!({"what": id, "confirmName": db, "safetyBackup": true, "onProgress": "__CHANNEL__:5"}),
    )
    .unwrap();
    assert_eq!(r["rows"], 500, "{r}");
    assert!(r["safety_backup_id"].is_string(), "{r}");
    assert_eq!(mariadb(Some(&db), "SELECT COUNT(*) FROM pupils"), "500");
    assert_eq!(
        mariadb(Some(&db), "SELECT name FROM pupils WHERE id = 1"),
        "Pupil 1"
    );
    let list = call(&w, "list_backups", json!({})).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "the backup and the safety backup: {list}"
    );
}
