//! Backup and restore round trips through the real `schoolvault` binary and the real
//! PostgreSQL: the ERP fixture, every common type, snapshot consistency under concurrent
//! writes, and atomicity of a restore that fails half-way.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{erp_db, fixtures, school_sql, Env, TestDb};

fn backup(env: &Env, db: &TestDb) -> serde_json::Value {
    env.json(&["--db", &db.url(), "backup"])
}

#[test]
fn erp_fixture_round_trip_restores_every_table_and_sequence() {
    let Some(fx) = fixtures() else { return };
    let db = erp_db(&fx);
    let env = Env::new();
    let before = db.checksums();
    let seqs = db.sequences();
    assert!(
        before.len() >= 170,
        "the ERP has 175 tables, got {}",
        before.len()
    );

    let b = backup(&env, &db);
    assert_eq!(b["tables"].as_u64().unwrap() as usize, before.len());
    let id = b["id"].as_str().unwrap().to_string();
    let list = env.json(&["list"]);
    assert_eq!(list[0]["id"], id.as_str());
    let v = env.json(&["verify", &id]);
    assert_eq!(v["rows"], b["rows"]);

    // Change data across tables: delete, update, insert (FK checks off for the session, so
    // the changes may leave dangling rows, which the restore must undo too).
    db.sql(
        "SET session_replication_role = replica; \
         DELETE FROM audit_logs WHERE id IN (SELECT id FROM audit_logs ORDER BY id LIMIT 50); \
         UPDATE \"User\" SET name = name || ' (changed)' WHERE id IN (SELECT id FROM \"User\" ORDER BY id LIMIT 20); \
         INSERT INTO audit_logs SELECT (jsonb_populate_record(NULL::audit_logs, to_jsonb(a) || '{\"id\": \"inserted-after-backup\"}')).* FROM audit_logs a LIMIT 1; \
         DELETE FROM \"StudentAttendance\" WHERE id IN (SELECT id FROM \"StudentAttendance\" ORDER BY id LIMIT 100);",
    );
    assert_ne!(db.checksums(), before);

    let r = env.json(&["--db", &db.url(), "restore", &id, "--yes"]);
    assert_eq!(r["rows"], b["rows"]);
    assert!(
        r["safety_backup"]["id"].is_string(),
        "a safety backup is taken first"
    );
    let after = db.checksums();
    for (table, sum) in &before {
        assert_eq!(
            after.get(table),
            Some(sum),
            "table {table} differs after restore"
        );
    }
    assert_eq!(db.sequences(), seqs);
    // The safety backup is listed with its type.
    let list = env.json(&["list"]);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["kind"] == "safety"));
}

#[test]
fn every_common_type_round_trips_and_triggers_do_not_fire() {
    let db = TestDb::new("types");
    db.load(&school_sql(), &[]);
    let env = Env::new();
    let before = db.checksums();
    let seqs = db.sequences();
    let audit_rows = db.sql("SELECT count(*) FROM audit");
    let b = backup(&env, &db);
    let id = b["id"].as_str().unwrap();

    db.sql(
        "DELETE FROM attendance WHERE day < '2025-06-01'; \
         UPDATE finance.\"Fee Payments\" SET ratio = 1, matrix = NULL; \
         UPDATE users SET name = 'x' WHERE id = 2; \
         INSERT INTO users (school_id, name, role) VALUES (2, 'late', 'PARENT'); \
         SELECT setval('users_id_seq', 500);",
    );
    assert_ne!(db.checksums(), before);
    env.json(&[
        "--db",
        &db.url(),
        "restore",
        id,
        "--yes",
        "--no-safety-backup",
    ]);
    assert_eq!(db.checksums(), before);
    assert_eq!(db.sequences(), seqs);
    assert_eq!(
        db.sql("SELECT count(*) FROM audit"),
        audit_rows,
        "the audit trigger fired during the load"
    );
    // Values survive exactly, not just their checksum.
    assert_eq!(
        db.sql("SELECT ratio::text || ' ' || score::text || ' ' || encode(photo, 'hex') FROM finance.\"Fee Payments\" f JOIN students s ON s.id = f.student_id WHERE f.id = 1"),
        "NaN Infinity 00ff00deadbeef00"
    );
    assert_eq!(
        db.sql("SELECT name_upper FROM users WHERE id = 3"),
        "NEW\nLINE \\ BACKSLASH"
    );

    // The plaintext is an ordinary .tar.gz: manifest first, end last.
    let file = b["file"].as_str().unwrap();
    let out = env.cmd().args(["decrypt", file]).output().unwrap();
    assert!(out.status.success());
    let mut tar = Command::new("tar")
        .arg("tz")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    tar.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let listing = String::from_utf8(tar.wait_with_output().unwrap().stdout).unwrap();
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(names.first(), Some(&"manifest.json"));
    assert_eq!(names.last(), Some(&"end.json"));
    assert!(names.iter().any(|n| n.starts_with("data/")));
}

const BANK: &str = "
    CREATE TABLE orders (id bigint PRIMARY KEY, filler text NOT NULL);
    CREATE TABLE order_lines (id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders(id), filler text NOT NULL);
    CREATE INDEX ON order_lines (order_id);
";

fn bank_db(prefix: &str, orders: u32) -> TestDb {
    let db = TestDb::new(prefix);
    db.sql(BANK);
    db.sql(&format!(
        "INSERT INTO orders SELECT i, repeat(md5(i::text), 6) FROM generate_series(1, {orders}) i; \
         INSERT INTO order_lines (order_id, filler) SELECT i, repeat(md5((i * j)::text), 4) \
           FROM generate_series(1, {orders}) i, generate_series(1, 3) j;"
    ));
    db
}

/// A progress bar shows a fraction only of a known total: the backup's progress carries the
/// bytes it expects (from the catalog's table sizes) from its first export line on, and never
/// a total it has passed (a bar standing full while tables remain).
#[test]
fn backup_progress_knows_its_total_before_the_export_and_never_stands_full_early() {
    let db = bank_db("progress", 40_000);
    let env = Env::new();
    let out = env
        .cmd()
        .args(["--json", "--db", &db.url(), "backup"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let export: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["phase"] == "export" && v["table"].is_string())
        .collect();
    assert!(!export.is_empty(), "no export progress: {stderr}");
    let first = &export[0];
    let total = first["total_bytes"].as_u64().unwrap_or(0);
    assert!(
        total > 1_000_000,
        "the total is known before the export: {first}"
    );
    for v in &export {
        if let Some(t) = v["total_bytes"].as_u64() {
            assert!(
                v["bytes"].as_u64().unwrap() < t,
                "a total already passed: {v}"
            );
        }
    }
}

#[test]
fn rows_committed_during_a_backup_are_wholly_in_it_or_wholly_absent() {
    let db = bank_db("consist", 150_000);
    let env = Env::new();
    // A writer commits an order with its three lines, again and again, during the backup.
    let mut writer = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            &support::pg_host(),
            "-p",
            &support::pg_port(),
            "-U",
            "postgres",
            "-d",
            &db.name,
        ])
        .env("PGAPPNAME", "sv_writer")
        .args([
            "-c",
            "DO $$ BEGIN FOR i IN 1000001..1400000 LOOP \
                 INSERT INTO orders VALUES (i, 'new'); \
                 INSERT INTO order_lines (order_id, filler) VALUES (i, 'a'), (i, 'b'), (i, 'c'); \
                 COMMIT; END LOOP; END $$",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Back up once the writer is under way: its first order and lines are committed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.sql("SELECT count(*) FROM orders WHERE id > 1000000") == "0" {
        if let Some(status) = writer.try_wait().unwrap() {
            panic!("the writer ended before its first commit ({status})");
        }
        assert!(
            Instant::now() < deadline,
            "the writer committed nothing within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let b = backup(&env, &db);
    // Killing psql does not stop its server-side loop: end the session itself.
    support::psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'sv_writer'", db.name),
    );
    let _ = writer.kill();
    let _ = writer.wait();

    let copy = TestDb::new("consist_copy");
    copy.sql(BANK);
    env.json(&[
        "restore",
        b["file"].as_str().unwrap(),
        "--yes",
        "--no-safety-backup",
        "--target-db",
        &copy.url(),
    ]);
    let orders: u64 = copy.sql("SELECT count(*) FROM orders").parse().unwrap();
    assert!(
        orders > 150_000,
        "the writer's rows should be in the backup ({orders})"
    );
    assert_eq!(
        copy.sql("SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM order_lines l WHERE l.order_id = o.id) <> 3"),
        "0",
        "an order without its three lines: the tables came from different instants"
    );
    assert_eq!(
        copy.sql("SELECT count(*) FROM order_lines l WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = l.order_id)"),
        "0"
    );
}

#[test]
fn a_restore_that_fails_half_way_changes_nothing() {
    let db = bank_db("atomic", 60_000);
    let env = Env::new();
    db.sql("UPDATE orders SET filler = 'big' WHERE id = 59000");
    let b = backup(&env, &db);
    let file = b["file"].as_str().unwrap().to_string();

    // 1. Data that violates a constraint of the target: the load fails inside a late table.
    db.sql(
        "DELETE FROM order_lines WHERE order_id > 50000; DELETE FROM orders WHERE id > 50000; \
            ALTER TABLE orders ADD CONSTRAINT small_ids CHECK (id <= 50000)",
    );
    let before = db.checksums();
    let (code, msg) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        &file,
        "--yes",
        "--no-safety-backup",
    ]);
    assert_eq!(code, "database", "{msg}");
    assert!(msg.contains("small_ids"), "{msg}");
    assert_eq!(
        db.checksums(),
        before,
        "a failed restore changed the database"
    );

    // 2. The connection is terminated during COPY.
    db.sql("ALTER TABLE orders DROP CONSTRAINT small_ids");
    let before = db.checksums();
    let mut child = std::process::Command::new(support::schoolvault_bin())
        .env("SCHOOLVAULT_DIR", env.backups())
        .env("SCHOOLVAULT_CATALOG", env.dir.path().join("catalog.sqlite"))
        .env("BACKUP_ENCRYPTION_KEY", &env.key)
        .env("HOME", env.dir.path())
        .args([
            "--db",
            &db.url(),
            "restore",
            &file,
            "--yes",
            "--no-safety-backup",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut killed = false;
    while start.elapsed() < Duration::from_secs(60) {
        let n = support::psql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{}' AND application_name = 'schoolvault' AND query LIKE 'COPY%FROM STDIN'",
                db.name
            ),
        );
        if n != "0" {
            killed = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        killed,
        "the restore finished before its COPY could be terminated"
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:") && !err.contains("panicked"), "{err}");
    assert_eq!(
        db.checksums(),
        before,
        "a terminated restore changed the database"
    );
}
