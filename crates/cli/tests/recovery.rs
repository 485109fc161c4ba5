//! Backups outlive SchoolVault: `recovery/schoolvault-recover.py` (Python and the
//! `cryptography` package, nothing of ours) decrypts a fresh backup, checks every chunk and
//! table, and its `restore.sql` loads the result with psql alone into an empty database whose
//! tables then equal the source's. A changed byte, a cut-off file and a wrong key are refused
//! with one line and nothing written.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{pg_host, pg_port, Env, TestDb};

const BULK: &str = "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS a, \
                    md5((g * 7)::text) AS b FROM generate_series(1, 150000) g";

fn script() -> PathBuf {
    support::workspace_root().join("recovery/schoolvault-recover.py")
}

/// Run the recovery script with the key in a key file; (success, stderr).
fn recover(env: &Env, args: &[&str]) -> (bool, String) {
    let key_file = env.dir.path().join("recovery-key.txt");
    std::fs::write(&key_file, format!("{}\n", env.key)).unwrap();
    let out = Command::new("python3")
        .arg(script())
        .arg("--key-file")
        .arg(&key_file)
        .args(args)
        .output()
        .expect("python3 is missing: make test installs it");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains("Traceback"),
        "the script crashed instead of reporting: {stderr}"
    );
    assert!(
        !stderr.contains("`cryptography` is missing"),
        "install python3-cryptography (make test does): {stderr}"
    );
    (out.status.success(), stderr)
}

#[test]
fn a_backup_is_read_and_restored_with_python_and_psql_alone() {
    let db = TestDb::new("recsrc");
    db.load(&support::test_data("objects.sql"), &[]);
    // Enough rows for several 8 MiB parts and several 1 MiB encrypted chunks.
    db.sql(BULK);
    // Two large objects (a scanned form, an empty one), kept under their oids.
    db.sql("SELECT lo_from_bytea(0, convert_to(repeat('scanned form ', 100000), 'UTF8')), lo_from_bytea(0, '')");
    let objects = "SELECT string_agg(oid || ':' || md5(lo_get(oid)), ',' ORDER BY oid) FROM pg_largeobject_metadata";
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let file = b["file"].as_str().unwrap().to_string();

    // The plain .tar.gz, as `schoolvault decrypt` writes it.
    let targz = env.dir.path().join("backup.tar.gz");
    let (ok, err) = recover(&env, &[&file, "--out", targz.to_str().unwrap()]);
    assert!(ok, "{err}");
    let ours = env.cmd().args(["decrypt", &file]).output().unwrap();
    assert!(ours.status.success());
    assert_eq!(
        std::fs::read(&targz).unwrap(),
        ours.stdout,
        "the script's plaintext differs from schoolvault decrypt's"
    );
    let listing = Command::new("tar").arg("tzf").arg(&targz).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.starts_with("manifest.json"), "{listing}");
    assert!(listing.trim_end().ends_with("end.json"), "{listing}");
    assert!(
        listing.contains("000001.copy"),
        "a table of several parts: {listing}"
    );

    // Extracted, every table checked, then loaded with psql into an empty database.
    let dir = env.dir.path().join("extracted");
    let (ok, err) = recover(&env, &[&file, "--extract", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("tables checked against end.json"), "{err}");
    let empty = TestDb::new("recdst");
    let load = Command::new("psql")
        .current_dir(&dir)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
        .args(["-h", &pg_host(), "-p", &pg_port(), "-U", "postgres"])
        .args(["-d", &empty.name, "-f", "restore.sql"])
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "psql restore.sql: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert_eq!(empty.checksums(), db.checksums());
    assert_eq!(empty.sequences(), db.sequences());
    assert_eq!(empty.sql(objects), db.sql(objects));
    // The audit trigger exists again and was not fired by the load (rows equal above).
    assert_eq!(
        empty.sql("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"),
        db.sql("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal")
    );
}

#[test]
fn a_changed_cut_or_foreign_file_and_a_wrong_key_are_refused_and_nothing_is_written() {
    let db = TestDb::new("recbad");
    db.load(&support::school_sql(), &[]);
    db.sql(BULK);
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let file = PathBuf::from(b["file"].as_str().unwrap());
    let bytes = std::fs::read(&file).unwrap();
    let out = env.dir.path().join("out.tar.gz");
    let outs = out.to_str().unwrap();

    let mut flipped = bytes.clone();
    let at = bytes.len() / 2;
    flipped[at] ^= 0x01;
    let flipped_file = env.dir.path().join("flipped.svb");
    std::fs::write(&flipped_file, &flipped).unwrap();
    let (ok, err) = recover(&env, &[flipped_file.to_str().unwrap(), "--out", outs]);
    assert!(!ok);
    assert!(err.starts_with("error: damaged"), "{err}");

    let cut_file = env.dir.path().join("cut.svb");
    std::fs::write(&cut_file, &bytes[..bytes.len() - 100]).unwrap();
    let (ok, err) = recover(&env, &[cut_file.to_str().unwrap(), "--out", outs]);
    assert!(!ok);
    assert!(
        err.contains("truncated") || err.contains("damaged"),
        "{err}"
    );

    let foreign = env.dir.path().join("notes.svb");
    std::fs::write(&foreign, b"these are not the backups you are looking for").unwrap();
    let (ok, err) = recover(&env, &[foreign.to_str().unwrap(), "--out", outs]);
    assert!(!ok);
    assert!(err.contains("not a SchoolVault backup"), "{err}");

    let other = Env::new();
    let key_file = other.dir.path().join("k.txt");
    std::fs::write(&key_file, &other.key).unwrap();
    let wrong = Command::new("python3")
        .arg(script())
        .arg("--key-file")
        .arg(&key_file)
        .args([file.to_str().unwrap(), "--out", outs])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("wrong key"), "{err}");
    assert!(
        !err.contains(&other.key) && !err.contains(&env.key),
        "a key was printed"
    );

    assert!(!out.exists(), "nothing is written for a refused file");
    assert!(
        std::fs::read_dir(env.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .all(|e| !e.file_name().to_string_lossy().ends_with(".partial")),
        "no temporary file is left"
    );
}
