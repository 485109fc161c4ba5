//! The old system's backup files (v1): inspect, verify, restore (merge and replace) into the
//! real ERP database, compared value by value with the JSON they hold; and every bad v1 input.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use support::{erp_db, fixtures, Env, TestDb};

fn fixture_json(fx: &Path) -> Value {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fx.join("v1/erp-small.json.gz")).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    serde_json::from_str(&s).unwrap()
}

fn env_with_v1_key(fx: &Path) -> Env {
    let mut env = Env::new();
    env.key = std::fs::read_to_string(fx.join("v1/erp-small.key"))
        .unwrap()
        .trim()
        .to_string();
    env
}

const V1_TABLES: [(&str, &str); 22] = [
    ("users", "User"),
    ("administrators", "Administrator"),
    ("teachers", "Teacher"),
    ("students", "Student"),
    ("parents", "Parent"),
    ("academicYears", "AcademicYear"),
    ("terms", "Term"),
    ("classes", "Class"),
    ("sections", "ClassSection"),
    ("subjects", "Subject"),
    ("studentAttendance", "StudentAttendance"),
    ("exams", "Exam"),
    ("examResults", "ExamResult"),
    ("assignments", "Assignment"),
    ("feeStructures", "FeeStructure"),
    ("feePayments", "FeePayment"),
    ("announcements", "Announcement"),
    ("messages", "Message"),
    ("notifications", "Notification"),
    ("documents", "Document"),
    ("events", "Event"),
    ("auditLogs", "audit_logs"),
];

/// Compare one JSON value of the old system (Prisma conventions) with the database's value
/// (`to_jsonb`), given the column's type.
fn same(file: &Value, db: &Value, ty: &str) -> bool {
    match (file, db) {
        (Value::Null, Value::Null) => true,
        (Value::String(f), Value::String(d)) if ty.starts_with("timestamp") => {
            let parse = |s: &str| {
                chrono::NaiveDateTime::parse_from_str(
                    s.trim_end_matches('Z'),
                    "%Y-%m-%dT%H:%M:%S%.f",
                )
                .ok()
            };
            parse(f).is_some() && parse(f) == parse(d)
        }
        (f, d) if ty.starts_with("numeric") || ty == "double precision" || ty == "real" => {
            let num = |v: &Value| match v {
                Value::String(s) => s.parse::<f64>().ok(),
                Value::Number(n) => n.as_f64(),
                _ => None,
            };
            match (num(f), num(d)) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                _ => false,
            }
        }
        (f, d) => f == d,
    }
}

/// Every record of the fixture equals its row in the database, field by field.
fn assert_rows_equal_json(db: &TestDb, json: &Value) {
    for (key, table) in V1_TABLES {
        let types: HashMap<String, String> = db
            .sql(&format!(
                "SELECT attname || '|' || format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = 'public.\"{table}\"'::regclass AND attnum > 0 AND NOT attisdropped"
            ))
            .lines()
            .map(|l| {
                let (a, b) = l.split_once('|').unwrap();
                (a.to_string(), b.to_string())
            })
            .collect();
        let rows: HashMap<String, Value> = db
            .sql(&format!(
                "SELECT to_jsonb(t)::text FROM public.\"{table}\" t"
            ))
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["id"].as_str().unwrap().to_string(), v)
            })
            .collect();
        for record in json["tables"][key].as_array().unwrap() {
            let id = record["id"].as_str().unwrap();
            let row = rows
                .get(id)
                .unwrap_or_else(|| panic!("{table} {id} missing after restore"));
            for (field, value) in record.as_object().unwrap() {
                let ty = &types[field];
                assert!(
                    same(value, &row[field], ty),
                    "{table} {id} {field} ({ty}): file {value} vs database {}",
                    row[field]
                );
            }
        }
    }
}

#[test]
fn v1_fixtures_inspect_verify_and_merge_or_replace() {
    let Some(fx) = fixtures() else { return };
    let json = fixture_json(&fx);
    let db = erp_db(&fx);
    let env = env_with_v1_key(&fx);
    let enc = fx.join("v1/erp-small.enc");
    let dev = fx.join("v1/erp-small-devkey.enc");

    // Export: the freshly generated database, written as v1, opens with Node's own crypto and
    // zlib (as the old system's restore code did) and equals the fixture's JSON record by record.
    let exported = env.dir.path().join("exported.enc");
    let e = env.json(&[
        "--db",
        &db.url(),
        "export",
        "--format",
        "v1",
        "--out",
        exported.to_str().unwrap(),
    ]);
    assert_eq!(e["records"], 22653);
    let node = std::process::Command::new("node")
        .args([
            "-e",
            "const c=require('crypto'),z=require('zlib'),fs=require('fs');\
             const b=fs.readFileSync(process.argv[1]);\
             const d=c.createDecipheriv('aes-256-gcm',Buffer.from(process.env.KEY,'hex'),b.subarray(0,16));\
             d.setAuthTag(b.subarray(16,32));\
             process.stdout.write(z.gunzipSync(Buffer.concat([d.update(b.subarray(32)),d.final()])));",
            exported.to_str().unwrap(),
        ])
        .env("KEY", &env.key)
        .output()
        .expect("node is missing: install nodejs (make test does)");
    assert!(
        node.status.success(),
        "node could not open the export: {}",
        String::from_utf8_lossy(&node.stderr)
    );
    let back: Value = serde_json::from_slice(&node.stdout).unwrap();
    assert_eq!(back["version"], "1.0");
    for (key, _) in V1_TABLES {
        assert_eq!(
            back["tables"][key], json["tables"][key],
            "exported {key} differs from the old system's"
        );
    }

    for file in [&enc, &dev] {
        let i = env.json(&["inspect", file.to_str().unwrap()]);
        assert_eq!(i["format"], 1);
        assert_eq!(i["v1"]["version"], "1.0");
        assert_eq!(i["v1"]["tables"].as_array().unwrap().len(), 22);
        let users = i["v1"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == "users")
            .unwrap()
            .clone();
        assert_eq!(users["records"], 186);
        assert_eq!(users["table"], "User");
        let v = env.json(&["verify", file.to_str().unwrap()]);
        assert_eq!(v["rows"], 22653);
    }
    // Old-system files in the backup folder are listed by rescan, and restore by their id.
    std::fs::create_dir_all(env.backups()).unwrap();
    std::fs::copy(&enc, env.backups().join("erp-small.enc")).unwrap();
    let found = env.json(&["rescan"]);
    assert_eq!(found[0]["status"], "complete", "{found}");
    let listed = env.json(&["list"]);
    let old = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == "erp-small")
        .unwrap()
        .clone();
    assert_eq!(old["rows"], 22653);
    assert_eq!(
        old["created_at"].as_str().unwrap().get(..10),
        Some("2025-11-21")
    );

    // The development-key file says so, and that it is not authenticated.
    for cmd in ["verify", "inspect"] {
        let out = env
            .cmd()
            .args([cmd, dev.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{cmd}: {stderr}");
        assert!(stderr.contains("development key"), "{cmd}: {stderr}");
        assert!(stderr.contains("NOT authenticated"), "{cmd}: {stderr}");
    }

    // Delete and change rows of the 22 tables; add one the file does not have.
    db.sql(
        "SET session_replication_role = replica; \
         DELETE FROM \"StudentAttendance\" WHERE id IN (SELECT id FROM \"StudentAttendance\" ORDER BY id LIMIT 25); \
         DELETE FROM \"Notification\" WHERE id IN (SELECT id FROM \"Notification\" ORDER BY id LIMIT 5); \
         UPDATE \"User\" SET name = 'changed', \"isActive\" = NOT \"isActive\" WHERE id IN (SELECT id FROM \"User\" ORDER BY id LIMIT 10); \
         UPDATE \"FeePayment\" SET amount = amount + 1, remarks = 'x' WHERE id IN (SELECT id FROM \"FeePayment\" ORDER BY id LIMIT 10); \
         INSERT INTO audit_logs SELECT (jsonb_populate_record(NULL::audit_logs, to_jsonb(a) || '{\"id\": \"not-in-the-file\"}')).* FROM audit_logs a LIMIT 1;",
    );
    let other_tables_before: Vec<String> = db
        .checksums()
        .into_iter()
        .filter(|(t, _)| {
            !V1_TABLES
                .iter()
                .any(|(_, v)| t == &format!("public.{}", quote(v)))
        })
        .map(|(t, s)| format!("{t}={s}"))
        .collect();
    let r = env.json(&["--db", &db.url(), "restore", "erp-small", "--yes"]);
    assert_eq!(r["format"], 1);
    assert!(r["safety_backup"]["id"].is_string());
    let inserted: u64 = r["v1_tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["inserted"].as_u64().unwrap())
        .sum();
    assert_eq!(inserted, 30, "the 30 deleted rows come back");
    assert_rows_equal_json(&db, &json);
    assert_eq!(
        db.sql("SELECT count(*) FROM audit_logs WHERE id = 'not-in-the-file'"),
        "1",
        "merge keeps rows not in the file"
    );
    let other_tables_after: Vec<String> = db
        .checksums()
        .into_iter()
        .filter(|(t, _)| {
            !V1_TABLES
                .iter()
                .any(|(_, v)| t == &format!("public.{}", quote(v)))
        })
        .map(|(t, s)| format!("{t}={s}"))
        .collect();
    assert_eq!(
        other_tables_before, other_tables_after,
        "tables outside the file changed"
    );

    // --replace is refused while a table the file does not carry uses a row it would remove.
    db.sql(
        "INSERT INTO \"User\" SELECT (jsonb_populate_record(NULL::\"User\", to_jsonb(u) || '{\"id\": \"extra-user\", \"email\": \"extra@x\", \"mobile\": null}')).* FROM \"User\" u LIMIT 1; \
         INSERT INTO user_schools SELECT (jsonb_populate_record(NULL::user_schools, to_jsonb(s) || '{\"id\": \"extra-link\", \"userId\": \"extra-user\"}')).* FROM user_schools s LIMIT 1;",
    );
    let before = db.checksums();
    let (code, msg) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        enc.to_str().unwrap(),
        "--yes",
        "--replace",
        "--no-safety-backup",
    ]);
    assert_eq!(code, "target_mismatch", "{msg}");
    assert!(msg.contains("user_schools"), "{msg}");
    assert_eq!(
        db.checksums(),
        before,
        "a refused replace changed the database"
    );

    // A table in another schema that uses the row blocks it too (the check once looked only
    // at public).
    db.sql(
        "DELETE FROM user_schools WHERE id = 'extra-link'; CREATE SCHEMA extra; \
         CREATE TABLE extra.badges (id int PRIMARY KEY, \"userId\" text REFERENCES \"User\"(id)); \
         INSERT INTO extra.badges VALUES (1, 'extra-user');",
    );
    let before = db.checksums();
    let (code, msg) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        enc.to_str().unwrap(),
        "--yes",
        "--replace",
        "--no-safety-backup",
    ]);
    assert_eq!(code, "target_mismatch", "{msg}");
    assert!(msg.contains("\"extra\".\"badges\""), "{msg}");
    assert_eq!(
        db.checksums(),
        before,
        "a refused replace changed the database"
    );
    db.sql("DROP SCHEMA extra CASCADE; INSERT INTO user_schools SELECT (jsonb_populate_record(NULL::user_schools, to_jsonb(s) || '{\"id\": \"extra-link\", \"userId\": \"extra-user\"}')).* FROM user_schools s LIMIT 1;");

    // Without the blocker, --replace removes the rows the file does not hold. The file opens
    // only with the public development key, so anyone could have written it: refused, and
    // nothing changes, unless the person trusts it (--trust-dev-key).
    db.sql("DELETE FROM user_schools WHERE id = 'extra-link'");
    let before = db.checksums();
    let listed_before = env.json(&["list"]).as_array().unwrap().len();
    let url = db.url();
    for replace in [false, true] {
        let mut args = vec![
            "--db",
            url.as_str(),
            "restore",
            dev.to_str().unwrap(),
            "--yes",
        ];
        if replace {
            args.push("--replace");
        }
        let (code, msg) = env.fails(&args);
        assert_eq!(code, "untrusted_file", "replace {replace}: {msg}");
        assert!(msg.contains("development key"), "{msg}");
    }
    assert_eq!(
        db.checksums(),
        before,
        "a refused dev-key restore changed the database"
    );
    assert_eq!(
        env.json(&["list"]).as_array().unwrap().len(),
        listed_before,
        "refused before the safety backup"
    );
    let r = env.json(&[
        "--db",
        &db.url(),
        "restore",
        dev.to_str().unwrap(),
        "--yes",
        "--replace",
        "--no-safety-backup",
        "--trust-dev-key",
    ]);
    let deleted: u64 = r["v1_tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["deleted"].as_u64().unwrap())
        .sum();
    assert_eq!(deleted, 2, "the extra user and the extra audit row go");
    assert_eq!(
        db.sql("SELECT count(*) FROM audit_logs WHERE id = 'not-in-the-file'"),
        "0"
    );
    assert_rows_equal_json(&db, &json);
    for (key, table) in V1_TABLES {
        let n: usize = db
            .sql(&format!("SELECT count(*) FROM public.\"{table}\""))
            .parse()
            .unwrap();
        assert_eq!(n, json["tables"][key].as_array().unwrap().len(), "{table}");
    }
}

fn quote(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        name.to_string()
    } else {
        format!("\"{name}\"")
    }
}

/// Encrypt `plain` as the old system did: [IV 16][tag 16][AES-256-GCM ciphertext].
fn seal_v1(key_hex: &str, plain: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::array::typenum::U16;
    use aes_gcm::aead::{AeadInOut, KeyInit};
    let key = hex::decode(key_hex).unwrap();
    let cipher =
        aes_gcm::AesGcm::<aes_gcm::aes::Aes256, U16>::new(key.as_slice().try_into().unwrap());
    let iv: [u8; 16] = rand::random();
    let mut data = plain.to_vec();
    let tag = cipher
        .encrypt_inout_detached((&iv).into(), b"", data.as_mut_slice().into())
        .unwrap();
    let mut out = iv.to_vec();
    out.extend_from_slice(&tag);
    out.extend_from_slice(&data);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[test]
fn bad_v1_files_each_get_their_own_message() {
    let env = Env::new();
    let db = TestDb::new("v1bad");
    db.load(&support::school_sql(), &[]);
    let before = db.checksums();
    let dir = env.dir.path();
    let good = seal_v1(
        &env.key,
        &gzip(br#"{"version":"1.0","timestamp":"2025-11-21T10:28:30.846Z","tables":{"users":[]}}"#),
    );
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "wrong-key",
            seal_v1(&hex::encode([7u8; 32]), &gzip(b"{}")),
            "not_a_backup",
            "another key",
        ),
        (
            "truncated",
            good[..good.len() - 10].to_vec(),
            "truncated",
            "cut short",
        ),
        (
            "flipped",
            {
                let mut b = good.clone();
                b[40] ^= 1;
                b
            },
            "damaged",
            "bytes changed",
        ),
        (
            "not-gzip",
            seal_v1(&env.key, b"plain text, not gzip"),
            "damaged",
            "not gzip",
        ),
        (
            "not-json",
            seal_v1(&env.key, &gzip(b"<html>")),
            "damaged",
            "not JSON",
        ),
        (
            "no-tables",
            seal_v1(&env.key, &gzip(br#"{"version":"1.0"}"#)),
            "damaged",
            "\"tables\"",
        ),
        (
            "no-version",
            seal_v1(&env.key, &gzip(br#"{"tables":{}}"#)),
            "damaged",
            "\"version\"",
        ),
        (
            "random",
            (0..3000).map(|_| rand::random::<u8>()).collect(),
            "not_a_backup",
            "not a SchoolVault backup",
        ),
    ];
    for (name, bytes, code, text) in cases {
        let path = dir.join(format!("{name}.enc"));
        std::fs::write(&path, bytes).unwrap();
        let (c, msg) = env.fails(&["verify", path.to_str().unwrap()]);
        assert_eq!(c, code, "{name}: {msg}");
        assert!(msg.contains(text), "{name}: {msg}");
        let (c, _) = env.fails(&[
            "--db",
            &db.url(),
            "restore",
            path.to_str().unwrap(),
            "--yes",
        ]);
        assert_eq!(c, code, "{name} (restore)");
    }
    // A key that matches no table, and a database without the ERP's tables.
    let unknown = dir.join("unknown.enc");
    std::fs::write(
        &unknown,
        seal_v1(
            &env.key,
            &gzip(br#"{"version":"1.0","timestamp":"x","tables":{"gradeBooks":[{"id":"1"}]}}"#),
        ),
    )
    .unwrap();
    let (c, msg) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        unknown.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(c, "target_mismatch");
    assert!(msg.contains("gradeBooks"), "{msg}");
    let good_path = dir.join("good.enc");
    std::fs::write(&good_path, &good).unwrap();
    let (c, msg) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        good_path.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(c, "target_mismatch");
    assert!(msg.contains("no schema"), "{msg}");
    assert_eq!(db.checksums(), before);
    assert_eq!(
        env.json(&["list"]).as_array().unwrap().len(),
        0,
        "no safety backup for a refused restore"
    );
}

/// The school is still connected: an old-system file restored while an ERP session keeps a
/// write to one of its tables open. `--lock-timeout` ends the wait within seconds, the session
/// named (while waiting and in the one-line error) and the database untouched.
#[test]
fn a_v1_restore_held_up_by_a_session_of_the_school_gives_up_after_its_lock_timeout() {
    use std::io::Write as _;
    let Some(fx) = fixtures() else { return };
    let db = erp_db(&fx);
    let env = env_with_v1_key(&fx);
    let before = db.checksums();
    let mut erp = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            &support::pg_host(),
            "-p",
            &support::pg_port(),
        ])
        .args(["-U", "postgres", "-d", &db.name])
        .env("PGAPPNAME", "erp-web")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql (postgresql-client) is needed: make test installs it");
    let stdin = erp.stdin.as_mut().unwrap();
    stdin
        .write_all(
            b"BEGIN; UPDATE \"User\" SET id = id WHERE id = (SELECT min(id) FROM \"User\");\n",
        )
        .unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while support::psql(
        "postgres",
        &format!(
            "SELECT state FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'erp-web'",
            db.name
        ),
    )
    .trim()
        != "idle in transaction"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the ERP session did not open its transaction"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = env
        .std_cmd()
        .args(["--json", "--db", &db.url(), "restore"])
        .arg(fx.join("v1/erp-small.enc"))
        .args(["--yes", "--no-safety-backup", "--lock-timeout", "3"])
        .output()
        .unwrap();
    let _ = erp.kill();
    let _ = erp.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the restore must give up: {stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("\"phase\":\"wait_lock\"") && l.contains("erp-web")),
        "the wait names who holds it: {stderr}"
    );
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        error.contains("nothing was changed") && error.contains("erp-web"),
        "{error}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "in_use");
    assert_eq!(db.checksums(), before, "the database is untouched");
}
