//! Row-level security, scratch databases, administrators' emails, passwords in addresses.

use super::*;

#[test]
fn row_level_security_hiding_rows_from_the_backup_user_fails_the_backup_naming_the_table() {
    let rls = RlsSetup::new();
    let env = Env::new();
    let (code, msg) = env.fails(&["--db", &rls.role_url(), "backup"]);
    assert_eq!(code, "table_unreadable", "{msg}");
    assert!(msg.contains("public.pupils"), "the table is named: {msg}");
    assert!(msg.contains("BYPASSRLS"), "says what to grant: {msg}");
    assert!(
        env.files().is_empty(),
        "a refused backup left {:?}",
        env.files()
    );
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 0);

    // The owner (postgres) sees every row, and the backup holds all 10.
    let b = env.json(&["--db", &rls.db().url(), "backup"]);
    assert_eq!(b["rows"], 10, "{b}");
    let listed = env.json(&["list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["rows"], 10, "{listed}");
}

#[test]
fn a_backup_user_with_bypassrls_backs_up_every_row() {
    let rls = RlsSetup::new();
    psql("postgres", &format!("ALTER ROLE {} BYPASSRLS", rls.role));
    let env = Env::new();
    let b = env.json(&["--db", &rls.role_url(), "backup"]);
    assert_eq!(b["rows"], 10, "{b}");
    let listed = env.json(&["list"]);
    assert_eq!(listed[0]["rows"], 10, "{listed}");
}

// 6. A test restore drops only what it created; leftovers of interrupted jobs are cleaned up.

#[test]
fn a_test_restore_never_drops_an_existing_database_it_did_not_create() {
    let db = small_db("trsrc");
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let existing = TestDb::new("trexisting");
    existing.sql("CREATE TABLE precious (id int); INSERT INTO precious VALUES (1), (2), (3)");
    let before = existing.checksums();
    let (code, msg) = env.fails(&[
        "--db",
        &db.url(),
        "verify",
        b["id"].as_str().unwrap(),
        "--test-restore",
        "--scratch-db",
        &existing.name,
    ]);
    assert_eq!(code, "target_mismatch", "{msg}");
    assert!(msg.contains(&existing.name), "{msg}");
    assert!(
        database_exists(&existing.name),
        "the test restore dropped a database it did not create"
    );
    assert_eq!(existing.checksums(), before);
    // Not noted as ours either: the next job leaves it alone.
    let ledger =
        std::fs::read_to_string(env.dir.path().join("created-databases.json")).unwrap_or_default();
    assert!(!ledger.contains(&existing.name), "{ledger}");
    env.json(&["--db", &db.url(), "backup"]);
    assert!(database_exists(&existing.name));
    assert_eq!(existing.checksums(), before);
}

#[test]
fn a_scratch_database_someone_else_creates_during_a_test_restore_is_never_dropped() {
    let db = small_db("trrace");
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let key_file = env.dir.path().join("key");
    std::fs::write(&key_file, &env.key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Dropped at the end whatever happens.
    let theirs = TestDb {
        name: format!("sv_trtheirs_{:08x}", rand::random::<u32>()),
    };
    let progress = std::sync::Arc::new(CreateOnConnect {
        name: theirs.name.clone(),
        done: Default::default(),
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        use schoolvault_engine::keychain::{Keys, OsKeychain};
        let keys = Keys::new(Some(&key_file), Box::new(OsKeychain)).unwrap();
        let vault = schoolvault_engine::jobs::Vault::open(
            env.backups(),
            &env.dir.path().join("catalog.sqlite"),
            keys,
        )
        .await
        .unwrap();
        let server = schoolvault_engine::source::postgres::PgTarget::parse(&db.url()).unwrap();
        schoolvault_engine::jobs::test_restore(
            &vault,
            b["id"].as_str().unwrap(),
            &server,
            Some(&theirs.name),
            progress.clone(),
        )
        .await
    });
    assert!(
        progress.done.load(std::sync::atomic::Ordering::SeqCst),
        "the test restore never announced its connection: the race was not staged"
    );
    let err = result.expect_err("a test restore into a database it did not create");
    assert_eq!(err.code(), "target_mismatch", "{err}");
    assert!(
        database_exists(&theirs.name),
        "the test restore dropped a database someone else created: {err}"
    );
    assert_eq!(theirs.sql("SELECT count(*) FROM precious"), "3");
}

#[test]
fn a_database_left_by_an_interrupted_restore_is_dropped_by_the_next_backup_and_no_other() {
    let db = small_db("sweep");
    let env = Env::new();
    let suffix = format!("{:08x}", rand::random::<u32>());
    // Dropped by TestDb's Drop if the test fails before the backup does.
    let leftover = TestDb {
        name: format!("schoolvault_verify_leftover_{suffix}"),
    };
    psql("postgres", &format!("CREATE DATABASE {}", leftover.name));
    let not_ours = TestDb {
        name: format!("schoolvault_verify_notours_{suffix}"),
    };
    psql("postgres", &format!("CREATE DATABASE {}", not_ours.name));
    not_ours.sql("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)");
    // Half-restored: tables, and the mark SchoolVault puts on a database it is filling.
    let marked = TestDb {
        name: format!("schoolvault_verify_marked_{suffix}"),
    };
    psql("postgres", &format!("CREATE DATABASE {}", marked.name));
    marked.sql("CREATE TABLE half (id int)");
    psql(
        "postgres",
        &format!(
            "COMMENT ON DATABASE {} IS 'SchoolVault: restore in progress; dropped by SchoolVault if left unfinished'",
            marked.name
        ),
    );
    // In the ledger but finished (a restore killed after its commit, before the ledger was
    // written), or someone else's under the same name: it has tables and no mark.
    let finished = TestDb {
        name: format!("schoolvault_verify_finished_{suffix}"),
    };
    psql("postgres", &format!("CREATE DATABASE {}", finished.name));
    finished.sql("CREATE TABLE pupils (id int); INSERT INTO pupils VALUES (7)");
    let server = format!("postgres@{}:{}", pg_host(), pg_port());
    let ledger = env.dir.path().join("created-databases.json");
    std::fs::write(
        &ledger,
        serde_json::json!([
            {"server": server, "name": leftover.name, "at": "2026-01-01T00:00:00Z"},
            {"server": server, "name": marked.name, "at": "2026-01-01T00:00:00Z"},
            {"server": server, "name": finished.name, "at": "2026-01-01T00:00:00Z"},
            // Another server's entry is not this backup's to clean up.
            {"server": "postgres@192.0.2.1:5432", "name": leftover.name, "at": "2026-01-01T00:00:00Z"},
        ])
        .to_string(),
    )
    .unwrap();

    env.json(&["--db", &db.url(), "backup"]);

    assert!(
        !database_exists(&leftover.name),
        "the leftover database is still there"
    );
    assert!(
        database_exists(&not_ours.name),
        "a database not in the ledger was dropped"
    );
    assert_eq!(not_ours.sql("SELECT count(*) FROM kept"), "1");
    assert!(
        !database_exists(&marked.name),
        "the marked half-restored database is still there"
    );
    assert!(
        database_exists(&finished.name),
        "a finished (unmarked, with tables) database was dropped"
    );
    assert_eq!(finished.sql("SELECT count(*) FROM pupils"), "1");
    let entries: Value = serde_json::from_str(&std::fs::read_to_string(&ledger).unwrap()).unwrap();
    let entries = entries.as_array().unwrap();
    assert!(
        !entries.iter().any(|e| e["server"] == server.as_str()),
        "the entry is still in the ledger: {entries:?}"
    );
    assert_eq!(
        entries.len(),
        1,
        "the other server's entry stays: {entries:?}"
    );
    let history = env.json(&["history"]);
    let cleanups: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["operation"] == "cleanup")
        .collect();
    assert_eq!(
        cleanups.len(),
        2,
        "one cleanup per dropped database: {history}"
    );
    for name in [&leftover.name, &marked.name] {
        assert!(
            cleanups.iter().any(|c| c["outcome"] == "success"
                && c["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(name.as_str())),
            "no cleanup of {name}: {history}"
        );
    }
}

// 7. One bad administrator address does not stop the email to the others.

#[test]
fn one_bad_administrator_address_does_not_stop_the_email_to_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = smtp::SmtpServer::start(dir.path());
    let settings = schoolvault_engine::notify::SmtpSettings {
        host: "127.0.0.1".into(),
        port: smtp.port,
        security: schoolvault_engine::notify::Security::Plain,
        user: None,
        password: None,
        from: "schoolvault@school.example".into(),
        to: vec!["not an address".into(), "a@school.test".into()],
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(schoolvault_engine::notify::send(
        &settings,
        "SchoolVault: backup FAILED",
        "The backup failed.",
        "<p>The backup failed.</p>",
    ));
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "a@school.test gets its email: {mails:?}");
    assert!(mails[0].contains("To: a@school.test"), "{}", mails[0]);
    let err = result.expect_err("a bad address is reported");
    assert!(err.to_string().contains("not an address"), "{err}");
}

// 8. A password in --db is warned about and never printed.

#[test]
fn a_password_in_the_database_address_is_warned_about_and_never_printed() {
    let db = small_db("pwurl");
    let env = Env::new();
    let url = format!(
        "postgres://postgres:secret@{}:{}/{}",
        pg_host(),
        pg_port(),
        db.name
    );
    // The shared server trusts 127.0.0.1: the backup works, the password is not needed.
    let out = env
        .cmd()
        .args(["--json", "--db", &url, "backup"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("PGPASSWORD"))
        .unwrap_or_else(|| panic!("no warning naming PGPASSWORD: {stderr}"));
    assert!(warning.contains("password"), "{warning}");
    assert!(!stderr.contains("secret"), "the password leaked: {stderr}");
    assert!(!stdout.contains("secret"), "the password leaked: {stdout}");
    let listed = env.json(&["list"]).to_string();
    assert!(!listed.contains("secret"), "{listed}");
}
