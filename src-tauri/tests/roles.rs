//! A new server after a disaster, through the app's commands: the configured database is empty
//! and the server lacks the roles the backup's objects belong to. The restore preview names
//! them; a restore without a choice is refused (nothing made); "owner" makes the login the app
//! uses the owner of everything, and the database is then usable by it.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use schoolvault_app::state::Headless;
use serde_json::json;
use support::*;

#[test]
fn the_restore_modal_names_missing_roles_and_restores_with_one_owner() {
    let n = format!("{:06x}", std::process::id() & 0xff_ffff);
    let (role, db, empty) = (
        format!("sv_app_role_{n}"),
        format!("sv_app_roles_{n}"),
        format!("sv_app_roles_new_{n}"),
    );
    for d in [&db, &empty] {
        psql("postgres", &format!("DROP DATABASE IF EXISTS {d}"));
    }
    psql("postgres", &format!("DROP ROLE IF EXISTS {role}"));
    psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
    psql("postgres", &format!("CREATE DATABASE {db} OWNER {role}"));
    psql(
        &db,
        &format!(
            "SET ROLE {role}; CREATE TABLE pupils (id int PRIMARY KEY, name text); \
             INSERT INTO pupils SELECT g, 'Pupil ' || g FROM generate_series(1, 40) g;"
        ),
    );
    std::env::set_var("BACKUP_ENCRYPTION_KEY", "33".repeat(32));
    let dir = tempfile::tempdir().unwrap();
    let (_app, w) = open_app_with(
        dir.path().join("config.toml"),
        dir.path().join("catalog.sqlite"),
        Box::new(Headless),
        Arc::new(MemoryKeychain::default()),
    );
    let form = |name: &str| json!({"host": pg_host(), "port": pg_port(), "name": name, "user": "postgres", "tls": "disable", "password_saved": false});
    call(
        &w,
        "save_connection",
        json!({"form": form(&db), "password": null}),
    )
    .unwrap();
    let b = call(&w, "backup_now", json!({"onProgress": "__CHANNEL__:1"})).unwrap();

    // The new server: the role is gone, the configured database is a new, empty one.
    psql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
    psql("postgres", &format!("DROP ROLE {role}"));
    psql("postgres", &format!("CREATE DATABASE {empty}"));
    call(
        &w,
        "save_connection",
        json!({"form": form(&empty), "password": null}),
    )
    .unwrap();
    let p = call(
        &w,
        "restore_preview",
        json!({"what": b["id"], "onProgress": "__CHANNEL__:2"}),
    )
    .unwrap();
    assert_eq!(p["missing_roles"], json!([role]), "{p}");

    // Without a choice: refused, naming the role; nothing was made.
    let err = call(
        &w,
        "restore",
        json!({"what": b["id"], "confirmName": empty, "safetyBackup": false, "onProgress": "__CHANNEL__:3"}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "target_mismatch", "{err}");
    assert!(message(&err).contains(&role), "{err}");
    assert_eq!(
        psql(
            &empty,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );

    // "Make postgres the owner of everything": restored, and owned by the app's login.
    let done = call(
        &w,
        "restore",
        json!({"what": b["id"], "confirmName": empty, "safetyBackup": false, "roles": "owner", "onProgress": "__CHANNEL__:4"}),
    )
    .unwrap();
    assert_eq!(done["rows"], 40, "{done}");
    assert!(
        done["warnings"]
            .to_string()
            .contains("roles not on this server"),
        "{done}"
    );
    assert_eq!(
        psql(
            &empty,
            "SELECT pg_get_userbyid(relowner) || ' ' || (SELECT count(*) FROM pupils) FROM pg_class WHERE relname = 'pupils'"
        ),
        "postgres 40"
    );
    let err = call(
        &w,
        "restore",
        json!({"what": b["id"], "confirmName": empty, "safetyBackup": false, "roles": "everyone", "onProgress": "__CHANNEL__:5"}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    psql("postgres", &format!("DROP DATABASE {empty} WITH (FORCE)"));
}
