//! The security fixes, end to end: the old system's public development key is never a
//! SchoolVault key; old files under it are not restored without the person's trust; row-level
//! security cannot make a backup silently incomplete; what SchoolVault writes is private;
//! damaged files are never pruned; a test restore never drops a database it did not create,
//! while one left by an interrupted job is cleaned up; one bad email address does not silence
//! the others; a password in `--db` is warned about and never echoed.
#![allow(clippy::unwrap_used)]

#[path = "support/smtp.rs"]
mod smtp;
mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{fixtures, pg_host, pg_port, psql, school_sql, url_for, Env, TestDb};

/// The old system's built-in development key, printed in its guide: public.
const DEV_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A database with one table of 10 rows.
fn small_db(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix);
    db.sql(
        "CREATE TABLE pupils (id serial PRIMARY KEY, name text NOT NULL); \
         INSERT INTO pupils (name) SELECT 'pupil ' || i FROM generate_series(1, 10) i",
    );
    db
}

/// Run SQL as the superuser, ignoring any failure (for clean-up in `Drop`).
fn psql_quiet(sql: &str) {
    let _ = Command::new("psql")
        .args(["-X", "-q", "-h", &pg_host(), "-p", &pg_port()])
        .args(["-U", "postgres", "-d", "postgres", "-c", sql])
        .output();
}

/// Run SQL in `db` as `user`; return stdout. Panics with the error.
fn psql_as(user: &str, db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", &pg_host(), "-p", &pg_port(), "-U", user, "-d", db])
        .args(["-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql as {user} on {db}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn database_exists(name: &str) -> bool {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    ) == "1"
}

/// The `error:` line of a failed run's stderr (exactly one).
fn error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {stderr}");
    lines[0].to_string()
}

// 1. The development key is refused as a SchoolVault key.

#[test]
fn the_development_key_in_backup_encryption_key_is_refused_and_nothing_is_written() {
    let db = small_db("devenv");
    let mut env = Env::new();
    env.key = DEV_KEY.to_string();
    let (code, msg) = env.fails(&["--db", &db.url(), "backup"]);
    assert_eq!(code, "invalid_input", "{msg}");
    assert!(msg.contains("development key"), "{msg}");
    assert!(msg.contains("public"), "{msg}");
    assert!(msg.contains("BACKUP_ENCRYPTION_KEY"), "{msg}");
    assert!(
        env.files().is_empty(),
        "a refused key wrote {:?}",
        env.files()
    );
    // The same database backs up with a key of its own: the refusal is the key's.
    env.key = hex::encode(rand::random::<[u8; 32]>());
    let b = env.json(&["--db", &db.url(), "backup"]);
    assert_eq!(b["rows"], 10);
    assert_eq!(env.files().len(), 1);
}

#[cfg(unix)]
#[test]
fn a_private_key_file_holding_the_development_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let db = small_db("devfile");
    let env = Env::new();
    let dev_file = env.dir.path().join("dev.key");
    std::fs::write(&dev_file, format!("{DEV_KEY}\n")).unwrap();
    std::fs::set_permissions(&dev_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, msg) = env.fails(&[
        "--key-file",
        dev_file.to_str().unwrap(),
        "--db",
        &db.url(),
        "backup",
    ]);
    assert_eq!(code, "invalid_input", "{msg}");
    assert!(msg.contains("development key"), "{msg}");
    assert!(msg.contains("public"), "{msg}");
    assert!(msg.contains("dev.key"), "the file is named: {msg}");
    assert!(
        env.files().is_empty(),
        "a refused key wrote {:?}",
        env.files()
    );
    // A private key file with a key of its own works.
    let own_file = env.dir.path().join("own.key");
    std::fs::write(&own_file, format!("{}\n", env.key)).unwrap();
    std::fs::set_permissions(&own_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let b = env.json(&[
        "--key-file",
        own_file.to_str().unwrap(),
        "--db",
        &db.url(),
        "backup",
    ]);
    assert_eq!(b["rows"], 10);
}

#[test]
fn key_import_refuses_the_development_key_and_stores_nothing_in_the_keychain() {
    for tool in ["dbus-run-session", "gnome-keyring-daemon"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is missing: install dbus and gnome-keyring (`make test` does)"
        );
    }
    let home = tempfile::tempdir().unwrap();
    let h = home.path().display().to_string();
    let good = hex::encode(rand::random::<[u8; 32]>());
    // Everything that needs the keychain runs inside one private session bus (as in
    // tests/keychain.rs).
    let script = format!(
        r#"set -e
        echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        SV={sv}
        printf '%s\n' {dev} | $SV --json key import > {h}/dev.json 2> {h}/dev.err || echo $? > {h}/dev.code
        $SV --json key fingerprint > {h}/after.json 2> {h}/after.err || echo $? > {h}/after.code
        printf '%s\n' {good} | $SV --json key import > {h}/good.json 2> {h}/good.err
        $SV --json key fingerprint > {h}/fp.json
        "#,
        sv = support::schoolvault_bin().display(),
        dev = DEV_KEY,
    );
    let out = support::keychain_session(home.path(), &script);
    let read = |f: &str| std::fs::read_to_string(home.path().join(f)).unwrap_or_default();
    assert!(
        out.status.success(),
        "keychain session failed: {}\n{}\ngood.err: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        read("good.err")
    );
    // The import of the development key fails, saying why.
    assert!(
        !read("dev.code").trim().is_empty(),
        "importing the development key succeeded: {}",
        read("dev.json")
    );
    let doc: Value = serde_json::from_str(&read("dev.json"))
        .unwrap_or_else(|_| panic!("no JSON error: {}", read("dev.json")));
    let line = error_line(&read("dev.err"));
    assert_eq!(doc["error"]["code"], "invalid_input", "{line}");
    assert!(line.contains("development key"), "{line}");
    assert!(line.contains("public"), "{line}");
    assert!(!read("dev.err").contains("panicked"), "{}", read("dev.err"));
    // Nothing was stored: there is still no key.
    assert!(
        !read("after.code").trim().is_empty(),
        "a key is current after the refused import: {}",
        read("after.json")
    );
    assert!(
        read("after.err").contains("no SchoolVault encryption key"),
        "{}",
        read("after.err")
    );
    // The keychain works: a key of one's own is imported and becomes current.
    let imported: Value = serde_json::from_str(&read("good.json")).unwrap();
    let fp: Value = serde_json::from_str(&read("fp.json")).unwrap();
    assert!(imported["fingerprint"].is_string(), "{imported}");
    assert_eq!(fp["fingerprint"], imported["fingerprint"]);
}

// 2. Old-system files under the development key are not authenticated.

#[test]
fn a_v1_file_under_the_development_key_is_refused_untouched_and_flagged_not_authenticated() {
    let Some(fx) = fixtures() else { return };
    let dev = fx.join("v1/erp-small-devkey.enc");
    let dev = dev.to_str().unwrap();
    let env = Env::new();
    let db = TestDb::new("devv1");
    db.load(&school_sql(), &[]);
    let before = db.checksums();

    let url = db.url();
    for extra in [&[][..], &["--replace"][..], &["--no-safety-backup"][..]] {
        let mut args = vec!["--db", url.as_str(), "restore", dev, "--yes"];
        args.extend_from_slice(extra);
        let (code, msg) = env.fails(&args);
        assert_eq!(code, "untrusted_file", "{extra:?}: {msg}");
        assert!(msg.contains("development key"), "{msg}");
        assert!(msg.contains("--trust-dev-key"), "says how to go on: {msg}");
    }
    assert_eq!(
        db.checksums(),
        before,
        "a refused dev-key restore changed the database"
    );
    assert_eq!(
        env.json(&["list"]).as_array().unwrap().len(),
        0,
        "refused before the safety backup"
    );
    // --trust-dev-key lifts that refusal (this school database then lacks the ERP's tables;
    // tests/legacy.rs restores the file into the ERP with it).
    let (code, msg) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        dev,
        "--yes",
        "--trust-dev-key",
    ]);
    assert_eq!(code, "target_mismatch", "{msg}");
    assert_eq!(db.checksums(), before);

    // inspect and verify (plain and --json) say it is not authenticated.
    for args in [
        vec!["inspect", dev],
        vec!["verify", dev],
        vec!["--json", "verify", dev],
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains("NOT authenticated"), "{args:?}: {stderr}");
    }
    let i = env.json(&["inspect", dev]);
    assert_eq!(i["v1"]["dev_key"], true, "{i}");
}

// 3. Row-level security never makes a backup silently incomplete.

/// A table of 10 rows with row-level security showing 4 of them to `role`, a non-owner with
/// SELECT on everything. Drops the database, then the role, even when the test fails.
struct RlsSetup {
    db: Option<TestDb>,
    role: String,
}

impl RlsSetup {
    fn new() -> RlsSetup {
        let db = TestDb::new("rls");
        let role = format!("sv_rls_{:08x}", rand::random::<u32>());
        let setup = RlsSetup {
            db: Some(db),
            role: role.clone(),
        };
        let db = setup.db();
        db.sql(&format!("CREATE ROLE {role} LOGIN"));
        db.sql(
            "CREATE TABLE pupils (id serial PRIMARY KEY, name text NOT NULL); \
             INSERT INTO pupils (name) SELECT 'pupil ' || i FROM generate_series(1, 10) i; \
             ALTER TABLE pupils ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY first_four ON pupils FOR SELECT USING (id <= 4)",
        );
        db.sql(&format!(
            "GRANT USAGE ON SCHEMA public TO {role}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; \
             GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"
        ));
        // The policy works: the role sees 4 rows, the owner 10.
        assert_eq!(psql_as(&role, &db.name, "SELECT count(*) FROM pupils"), "4");
        assert_eq!(db.sql("SELECT count(*) FROM pupils"), "10");
        setup
    }
    fn db(&self) -> &TestDb {
        self.db.as_ref().unwrap()
    }
    fn role_url(&self) -> String {
        url_for(&self.role, &self.db().name)
    }
}

impl Drop for RlsSetup {
    fn drop(&mut self) {
        drop(self.db.take());
        psql_quiet(&format!("DROP ROLE IF EXISTS {}", self.role));
    }
}

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

// 4. What SchoolVault writes is private (Unix modes).

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `schoolvault ARGS` in `env` under umask 022, so a file or folder made with the default
/// modes would be readable by others (whatever umask the tests run under).
#[cfg(unix)]
fn run_umask_022(env: &Env, extra: &[(&str, &Path)], args: &[&str]) -> std::process::Output {
    let mut c = Command::new("sh");
    c.args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(support::schoolvault_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("SCHOOLVAULT_DIR", env.backups())
        .env("SCHOOLVAULT_CATALOG", env.dir.path().join("catalog.sqlite"))
        .env("BACKUP_ENCRYPTION_KEY", &env.key);
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "schoolvault {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[cfg(unix)]
#[test]
fn the_backup_file_the_catalog_and_a_new_backup_folder_are_private() {
    let db = small_db("modes");
    let env = Env::new();
    assert!(!env.backups().exists());
    let out = run_umask_022(&env, &[], &["--json", "--db", &db.url(), "backup"]);
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = Path::new(b["file"].as_str().unwrap());
    assert_eq!(mode(file), 0o600, "the backup file");
    assert_eq!(mode(&env.backups()), 0o700, "the backup folder it created");
    let catalog = env.dir.path().join("catalog.sqlite");
    assert_eq!(mode(&catalog), 0o600, "the catalog");
    // And whatever else sits beside the catalog (its lock, WAL and shared-memory files).
    for e in std::fs::read_dir(env.dir.path()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("catalog") {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
}

#[cfg(unix)]
#[test]
fn config_set_db_writes_a_private_settings_file_in_a_private_new_folder() {
    let env = Env::new();
    let folder = env.dir.path().join("settings");
    let config = folder.join("config.toml");
    run_umask_022(
        &env,
        &[("SCHOOLVAULT_CONFIG", &config)],
        &[
            "--json",
            "config",
            "set-db",
            "--host",
            "127.0.0.1",
            "--name",
            "school",
            "--user",
            "backup",
        ],
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("school"), "{text}");
    assert_eq!(mode(&config), 0o600, "the settings file");
    assert_eq!(mode(&folder), 0o700, "the settings folder it created");
    // Nothing half-written is left beside it.
    let names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["config.toml".to_string()]);
}

#[test]
fn a_partial_file_left_in_the_backup_folder_is_removed_by_the_next_backup() {
    let db = small_db("partial");
    let env = Env::new();
    std::fs::create_dir_all(env.backups()).unwrap();
    let partial = env.backups().join("x.svb.partial");
    std::fs::write(&partial, b"half of a backup a killed run left").unwrap();
    let notes = env.backups().join("notes.txt");
    std::fs::write(&notes, b"not ours").unwrap();
    let b = env.json(&["--db", &db.url(), "backup"]);
    assert!(!partial.exists(), "the leftover .partial is still there");
    assert!(notes.exists(), "a file that is not a .partial was removed");
    assert!(Path::new(b["file"].as_str().unwrap()).is_file());
    assert_eq!(env.files().len(), 2, "{:?}", env.files());
}

// 5. Damaged and unknown files are never pruned.

#[test]
fn rescan_and_prune_never_remove_damaged_or_unknown_files() {
    let db = small_db("prune");
    let env = Env::new();
    let backup = || env.json(&["--db", &db.url(), "backup"]);
    let (a, b, c) = (backup(), backup(), backup());
    let file = |v: &Value| std::path::PathBuf::from(v["file"].as_str().unwrap());
    // B's file cut in half replaces it; a file of random bytes beside.
    let whole = std::fs::read(file(&b)).unwrap();
    let cut = env
        .backups()
        .join(format!("cut-{}.svb", b["id"].as_str().unwrap()));
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    std::fs::remove_file(file(&b)).unwrap();
    let junk = env.backups().join("junk.svb");
    let random: Vec<u8> = (0..5000).map(|_| rand::random::<u8>()).collect();
    std::fs::write(&junk, &random).unwrap();

    let found = env.json(&["rescan"]);
    let status = |p: &Path| {
        found
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"].as_str() == p.to_str())
            .unwrap_or_else(|| panic!("{} not in {found}", p.display()))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        ["truncated", "damaged"].contains(&status(&cut).as_str()),
        "{found}"
    );
    assert_eq!(status(&junk), "not_a_backup", "{found}");
    assert_eq!(status(&file(&a)), "complete", "{found}");
    assert_eq!(status(&file(&c)), "complete", "{found}");
    // The cut file is listed under B's id, not as complete.
    let listed = env.json(&["list"]);
    let cut_entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == b["id"])
        .unwrap_or_else(|| panic!("the cut file is not listed: {listed}"))
        .clone();
    assert_ne!(cut_entry["status"], "complete", "{cut_entry}");

    // Prune everything old: only A goes (C is the newest verified backup and always stays).
    let policy = ["--keep-days", "0", "--keep-last", "0"];
    let mut dry = vec!["prune", "--dry-run"];
    dry.extend(policy);
    let planned = env.json(&dry);
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&planned),
        vec![a["id"].as_str().unwrap().to_string()],
        "{planned}"
    );
    assert!(cut.exists() && junk.exists() && file(&a).exists());
    let mut real = vec!["prune"];
    real.extend(policy);
    let pruned = env.json(&real);
    assert_eq!(ids(&pruned), ids(&planned), "{pruned}");
    assert!(!file(&a).exists(), "the old good backup was pruned");
    assert!(file(&c).exists());
    assert!(cut.exists(), "the truncated file was pruned");
    assert!(junk.exists(), "the unknown file was pruned");
    assert_eq!(std::fs::read(&junk).unwrap(), random);
    let listed = env.json(&["list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == b["id"]),
        "the cut file's entry is still listed: {listed}"
    );
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

/// Creates database `name` (with a table of data) the first time the job announces it is
/// connecting: in a test restore, after its check that the scratch name is free and before
/// its `CREATE DATABASE`, as another person or program could.
struct CreateOnConnect {
    name: String,
    done: std::sync::atomic::AtomicBool,
}

impl schoolvault_engine::progress::Progress for CreateOnConnect {
    fn report(&self, event: &schoolvault_engine::progress::ProgressEvent) {
        use std::sync::atomic::Ordering;
        if event.phase == schoolvault_engine::progress::Phase::Connect
            && !self.done.swap(true, Ordering::SeqCst)
        {
            psql("postgres", &format!("CREATE DATABASE {}", self.name));
            psql(
                &self.name,
                "CREATE TABLE precious (id int); INSERT INTO precious VALUES (1), (2), (3)",
            );
        }
    }
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

/// Peak resident memory (KiB) of `schoolvault --json ARGS` under GNU time, and its JSON error
/// code.
fn peak_kib_and_code(env: &Env, args: &[&str]) -> (u64, String) {
    let stats = env.dir.path().join("time.txt");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-o")
        .arg(&stats)
        .args(["-f", "%M"])
        .arg(support::schoolvault_bin())
        .arg("--json")
        .args(args);
    // The same isolated environment as env.cmd().
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("SCHOOLVAULT_DIR", env.backups())
        .env("SCHOOLVAULT_CATALOG", env.dir.path().join("catalog.sqlite"))
        .env("BACKUP_ENCRYPTION_KEY", &env.key);
    let out = cmd
        .output()
        .expect("/usr/bin/time is missing: apt-get install time (make test does)");
    assert!(!out.status.success(), "a foreign file must be refused");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kib: u64 = std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (kib, doc["error"]["code"].as_str().unwrap().to_string())
}

#[test]
fn a_huge_foreign_file_picked_by_mistake_is_refused_in_bounded_memory() {
    // 3 GiB that is neither a SchoolVault archive nor an old-system file (sparse: it costs no
    // disk). Before, every command read an unrecognised file whole to try it as a v1 file.
    let env = Env::new();
    let big = env.dir.path().join("holiday-video.enc");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    // 600 MiB: small enough to be an old-system file, so it is sniffed, not read whole.
    let mid = env.dir.path().join("scan.enc");
    std::fs::File::create(&mid)
        .unwrap()
        .set_len(600 << 20)
        .unwrap();
    let db = small_db("bigfile");
    let before = db.checksums();
    let url = db.url();
    for file in [&big, &mid] {
        let path = file.to_str().unwrap();
        for args in [
            vec!["inspect", path],
            vec!["verify", path],
            vec!["--db", &url, "restore", path, "--yes", "--no-safety-backup"],
        ] {
            let (kib, code) = peak_kib_and_code(&env, &args);
            assert_eq!(code, "not_a_backup", "{args:?}");
            assert!(
                kib < 256 * 1024,
                "{args:?} used {} MiB of memory on a large foreign file",
                kib / 1024
            );
        }
    }
    assert_eq!(db.checksums(), before);
}

#[test]
fn an_old_style_gzip_bomb_under_the_public_key_is_refused_in_bounded_memory() {
    // Anyone can write a file under the public development key. This one decompresses to
    // 400 MiB that are not JSON from the first byte: before, all of it was decompressed into
    // memory before the JSON parser looked at it; now it is parsed as it streams.
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"x").unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..400 {
        gz.write_all(&spaces).unwrap();
    }
    let plain = gz.finish().unwrap();
    let dev = schoolvault_engine::crypto::Key::from_hex(DEV_KEY).unwrap();
    let file = schoolvault_engine::legacy::encrypt(&dev, plain).unwrap();
    let env = Env::new();
    let bomb = env.dir.path().join("bomb.enc");
    std::fs::write(&bomb, file).unwrap();
    let path = bomb.to_str().unwrap();
    let (kib, code) = peak_kib_and_code(&env, &["verify", path]);
    assert_eq!(code, "damaged");
    assert!(
        kib < 256 * 1024,
        "verify used {} MiB of memory on a gzip bomb",
        kib / 1024
    );
}

#[test]
fn a_backup_that_names_the_public_development_key_is_refused_as_untrusted() {
    // Anyone can make a SchoolVault-format file under the public key; SchoolVault never
    // writes one, so it is refused before anything in it is used.
    use schoolvault_engine::archive::{seal_in_memory, BackupKind, Header, SourceInfo};
    let dev = schoolvault_engine::crypto::Key::from_hex(DEV_KEY).unwrap();
    let header = Header {
        cipher: String::new(),
        chunk_size: 0,
        nonce_prefix: String::new(),
        key_fingerprint: String::new(),
        compression: String::new(),
        created_at: chrono::Utc::now(),
        app_version: "0.1.0".into(),
        backup_id: "20261203-000000-dead".into(),
        kind: BackupKind::Manual,
        source: SourceInfo {
            engine: "postgresql".into(),
            server_version: "15".into(),
            database: "erp".into(),
        },
    };
    let forged = seal_in_memory(&dev, header, 1 << 20, b"not even gzip").unwrap();
    let env = Env::new();
    let file = env.dir.path().join("forged.svb");
    std::fs::write(&file, forged).unwrap();
    let path = file.to_str().unwrap();
    for cmd in ["verify", "decrypt"] {
        let (code, line) = env.fails(&[cmd, path]);
        assert_eq!(code, "untrusted_file", "{cmd}: {line}");
        assert!(line.contains("public development key"), "{line}");
    }
}
