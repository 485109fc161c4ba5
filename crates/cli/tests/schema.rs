//! Self-contained backups: a backup carries its schema, and restores into a new database that
//! `pg_dump --schema-only` cannot tell from the original.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{erp_db, fixtures, Env, TestDb};

/// `pg_dump --schema-only --no-owner --no-privileges`, as sorted statements.
fn schema_of(db: &str) -> Vec<String> {
    let out = Command::new("pg_dump")
        .args([
            "-h",
            &support::pg_host(),
            "-p",
            &support::pg_port(),
            "-U",
            "postgres",
        ])
        .args(["--schema-only", "--no-owner", "--no-privileges", db])
        .output()
        .expect("pg_dump is missing: install postgresql-client (make test does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let text: String = text
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut statements: Vec<String> = text
        .split(";\n")
        .map(|s| s.trim().to_string())
        .filter(|s| {
            !s.is_empty()
                && !s.starts_with("SET ")
                && !s.starts_with("SELECT pg_catalog.set_config")
        })
        .collect();
    statements.sort();
    statements
}

fn round_trip_into_new_database(db: &TestDb) {
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let name = format!("{}_new", db.name);
    // The database the restore creates, dropped at the end like every test database.
    let copy = TestDb { name: name.clone() };
    let r = env.json(&[
        "--db",
        &db.url(),
        "restore",
        b["id"].as_str().unwrap(),
        "--create-db",
        &name,
    ]);
    assert_eq!(r["rows"], b["rows"]);
    assert!(
        r["safety_backup"].is_null(),
        "a new database needs no safety backup"
    );
    let (a, c) = (schema_of(&db.name), schema_of(&name));
    let only_source: Vec<&String> = a.iter().filter(|s| !c.contains(s)).collect();
    let only_copy: Vec<&String> = c.iter().filter(|s| !a.contains(s)).collect();
    assert!(
        only_source.is_empty() && only_copy.is_empty(),
        "the schemas differ:\nonly in the source: {only_source:#?}\nonly in the copy: {only_copy:#?}"
    );
    assert_eq!(a.len(), c.len());
    assert_eq!(db.checksums(), copy.checksums());
    assert_eq!(db.sequences(), copy.sequences());
    // Restoring again with the same name is refused, and changes nothing.
    let (code, msg) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        b["id"].as_str().unwrap(),
        "--create-db",
        &name,
    ]);
    assert_eq!(code, "target_mismatch", "{msg}");
    assert!(msg.contains("already exists"), "{msg}");
}

#[test]
fn erp_backup_restores_into_a_new_database_that_pg_dump_cannot_tell_apart() {
    let Some(fx) = fixtures() else { return };
    let db = erp_db(&fx);
    round_trip_into_new_database(&db);
}

#[test]
fn every_object_kind_round_trips_into_a_new_database() {
    let db = TestDb::new("objects");
    db.load(&support::test_data("objects.sql"), &[]);
    // The audit trigger fired for the three pupils of the source; the copy's audit table must
    // equal the source's (checksums), so it did not fire again while the data was loaded.
    assert_eq!(db.sql("SELECT count(*) FROM audit"), "3");
    round_trip_into_new_database(&db);
}

#[test]
fn an_empty_target_is_filled_and_a_foreign_one_refused() {
    let db = TestDb::new("objsrc");
    db.load(&support::test_data("objects.sql"), &[]);
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let id = b["id"].as_str().unwrap();
    let empty = TestDb::new("empty");
    env.json(&["restore", id, "--yes", "--target-db", &empty.url()]);
    assert_eq!(empty.checksums(), db.checksums());
    let foreign = TestDb::new("foreign");
    foreign.sql("CREATE TABLE unrelated (id int)");
    let (code, msg) = env.fails(&["restore", id, "--yes", "--target-db", &foreign.url()]);
    assert_eq!(code, "target_mismatch", "{msg}");
    assert!(msg.contains("public.unrelated"), "{msg}");
}

fn database_exists(name: &str) -> bool {
    support::psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    ) == "1"
}

#[test]
fn a_test_restore_passes_on_a_good_backup_and_names_the_table_of_a_bad_one() {
    let db = TestDb::new("testrestore");
    db.load(&support::test_data("objects.sql"), &[]);
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let id = b["id"].as_str().unwrap().to_string();
    let scratch = format!("schoolvault_verify_{}", id.replace('-', "_"));
    let v = env.json(&["--db", &db.url(), "verify", &id, "--test-restore"]);
    assert_eq!(v["rows"], b["rows"]);
    assert!(
        !database_exists(&scratch),
        "the scratch database was left behind"
    );
    let listed = env.json(&["list"]);
    assert_eq!(listed[0]["verify_ok"], true);
    assert!(listed[0]["verify_message"]
        .as_str()
        .unwrap()
        .starts_with("test restore"));

    // Data made inconsistent on purpose: a pupil of a house that does not exist, written with
    // foreign-key checks off. The backup holds it faithfully; a restore cannot rebuild the key.
    db.sql("SET session_replication_role = replica; INSERT INTO pupils (house_id, name, age) VALUES (99, 'Orphan', 10)");
    let bad = env.json(&["--db", &db.url(), "backup"]);
    let bad_id = bad["id"].as_str().unwrap().to_string();
    let (code, msg) = env.fails(&[
        "--db",
        &db.url(),
        "verify",
        &bad_id,
        "--test-restore",
        "--scratch-db",
        "sv_scratch_named",
    ]);
    assert_eq!(code, "database", "{msg}");
    assert!(msg.contains("pupils"), "the table is named: {msg}");
    assert!(
        !database_exists("sv_scratch_named"),
        "the scratch database was left behind"
    );
    let listed = env.json(&["list"]);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == bad_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["verify_ok"], false);
}

#[test]
fn objects_the_capture_cannot_reproduce_are_listed_and_warned_about() {
    let db = TestDb::new("unsupported");
    db.sql(
        "CREATE TABLE notes (id int PRIMARY KEY, body text); \
         ALTER TABLE notes ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY own_notes ON notes USING (true); \
         CREATE RULE no_delete AS ON DELETE TO notes DO INSTEAD NOTHING; \
         CREATE PUBLICATION notes_out FOR TABLE notes (id, body) WITH (publish = 'insert'); \
         CREATE TEXT SEARCH CONFIGURATION notes_words (COPY = english); \
         CREATE STATISTICS notes_stats ON id, body FROM notes; \
         SELECT lo_from_bytea(0, 'a scanned form');",
    );
    let env = Env::new();
    let out = env
        .cmd()
        .args(["--db", &db.url(), "backup"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("text search configuration notes_words"),
        "{stderr}"
    );
    assert!(
        stderr.contains("extended statistics notes_stats"),
        "{stderr}"
    );
    // Policies, rules, publications and large objects are reproduced now: not warned about.
    assert!(
        !stderr.contains("own_notes")
            && !stderr.contains("no_delete")
            && !stderr.contains("large")
            && !stderr.contains("notes_out"),
        "{stderr}"
    );
    let id = env.json(&["list"])[0]["id"].as_str().unwrap().to_string();
    let inspected = env.json(&["inspect", &id]);
    let listed = inspected["manifest"]["unsupported"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    // The policy, row-level security and the rule come back in a new database.
    let copy = format!("{}_copy", db.name);
    env.json(&["--db", &db.url(), "restore", &id, "--create-db", &copy]);
    assert_eq!(
        support::psql(
            &copy,
            "SELECT (SELECT count(*) FROM pg_policy WHERE polname = 'own_notes') || ' ' || \
                    (SELECT relrowsecurity FROM pg_class WHERE relname = 'notes') || ' ' || \
                    (SELECT count(*) FROM pg_rules WHERE rulename = 'no_delete') || ' ' || \
                    (SELECT string_agg(convert_from(lo_get(oid), 'UTF8'), ',') FROM pg_largeobject_metadata) || ' ' || \
                    (SELECT pubname || ':' || pubinsert || pubupdate FROM pg_publication)"
        ),
        "1 true 1 a scanned form notes_out:truefalse"
    );
    support::psql("postgres", &format!("DROP DATABASE {copy} WITH (FORCE)"));
}

#[test]
fn backslashes_in_the_schema_survive_a_server_whose_strings_are_not_standard() {
    // 'a\b' means a, backslash, b with standard_conforming_strings on (the default since
    // PostgreSQL 9.1), and a, backspace with it off: the schema files must say which.
    let db = TestDb::new("scs");
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, note text DEFAULT 'a\\b'); \
         COMMENT ON TABLE t IS 'back\\slash'; INSERT INTO t (id) VALUES (1)",
    );
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let id = b["id"].as_str().unwrap();
    // Both schema files say it themselves, for psql and other readers.
    let plain = env.cmd().args(["decrypt", id]).output().unwrap();
    assert!(plain.status.success());
    let dir = env.dir.path().join("plain");
    std::fs::create_dir_all(&dir).unwrap();
    let mut tar = std::process::Command::new("tar")
        .args(["-xz", "-C"])
        .arg(&dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(tar.stdin.as_mut().unwrap(), &plain.stdout).unwrap();
    assert!(tar.wait().unwrap().success());
    for f in ["schema/pre-data.sql", "schema/post-data.sql"] {
        let sql = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(
            sql.starts_with("SET standard_conforming_strings = on;"),
            "{f}: {}",
            &sql[..sql.len().min(200)]
        );
    }
    // A database whose default is off gets the same schema back.
    let empty = TestDb::new("scsoff");
    support::psql(
        "postgres",
        &format!(
            "ALTER DATABASE {} SET standard_conforming_strings = off",
            empty.name
        ),
    );
    env.json(&["restore", id, "--yes", "--target-db", &empty.url()]);
    for q in [
        "SELECT obj_description('t'::regclass, 'pg_class')",
        "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 't'::regclass",
        "SELECT note FROM t",
    ] {
        // Read with the same setting on both sides (it changes how literals are shown).
        let q = format!("SET standard_conforming_strings = on; {q}");
        assert_eq!(empty.sql(&q), db.sql(&q), "{q}");
    }
    assert_eq!(db.sql("SELECT note FROM t"), "a\\b");
}

/// The key of `tests/data/format2/objects.svb` (a test key, made for that file alone).
const FORMAT_2_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";

/// A backup of `tests/data/objects.sql` written by SchoolVault before format 3 (at commit
/// babdb2c, by `schoolvault backup`): post-data after the data, no table end records. It still
/// verifies, test-restores (every table read back and compared with its end record), and
/// restores into a new database (loaded in parallel, the indexes built after all the data) and
/// into an empty one (one transaction) that pg_dump cannot tell from the source's schema.
#[test]
fn a_format_2_backup_still_verifies_and_restores() {
    let mut env = Env::new();
    env.key = FORMAT_2_KEY.into();
    let file = support::test_data("format2/objects.svb");
    let file = file.to_str().unwrap();
    let v = env.json(&["verify", file]);
    assert_eq!(v["format"], 2, "{v}");
    let rows = v["rows"].clone();
    assert!(rows.as_u64().unwrap() > 0, "{v}");

    let db = TestDb::new("objv2src");
    db.load(&support::test_data("objects.sql"), &[]);
    let t = env.json(&["--db", &db.url(), "verify", file, "--test-restore"]);
    assert_eq!(t["rows"], rows, "{t}");

    let name = format!("{}_new", db.name);
    let copy = TestDb { name: name.clone() };
    let r = env.json(&["--db", &db.url(), "restore", file, "--create-db", &name]);
    assert_eq!(r["rows"], rows, "{r}");
    assert_eq!(schema_of(&db.name), schema_of(&copy.name));

    let empty = TestDb::new("objv2empty");
    env.json(&["restore", file, "--yes", "--target-db", &empty.url()]);
    assert_eq!(schema_of(&db.name), schema_of(&empty.name));
    assert_eq!(copy.checksums(), empty.checksums());
}
