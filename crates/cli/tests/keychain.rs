//! The OS keychain, for real: a Secret Service (gnome-keyring) in a private D-Bus session.
//! With no key anywhere, the first backup generates one into the keychain and says so; backup,
//! verify and restore then work with the keychain alone, and `key import` rotates keys while
//! old backups stay readable.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{school_sql, TestDb};

#[test]
fn keychain_alone_backs_up_and_restores() {
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
    let db = TestDb::new("keychain");
    db.load(&school_sql(), &[]);
    let before = db.checksums();
    let home = tempfile::tempdir().unwrap();
    let sv = support::schoolvault_bin();
    let h = home.path().display().to_string();
    // Everything that needs the keychain runs inside one private session bus.
    let script = format!(
        r#"set -e
        echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        SV={sv}
        $SV --json key fingerprint > {h}/nokey.json 2> {h}/nokey.err || echo $? > {h}/nokey.code
        $SV --json --db '{url}' backup > {h}/backup.json 2> {h}/backup.err
        $SV --json key fingerprint > {h}/fp.json
        $SV key export > {h}/export.txt 2>/dev/null
        $SV --json --db '{url}' backup > {h}/backup2.json 2> {h}/backup2.err
        psql -X -q -h {pg_host} -p {pg_port} -U postgres -d {db} -c "DELETE FROM attendance; UPDATE schools SET name = 'x'"
        $SV --json --db '{url}' restore "$(python3 -c 'import json; print(json.load(open("{h}/backup.json"))["id"])')" --yes > {h}/restore.json
        $SV --json verify "$(python3 -c 'import json; print(json.load(open("{h}/backup2.json"))["id"])')" > {h}/verify.json
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | $SV --json key import > {h}/import.json
        $SV --json verify "$(python3 -c 'import json; print(json.load(open("{h}/backup.json"))["id"])')" > {h}/verify_old.json
        "#,
        sv = sv.display(),
        url = db.url(),
        pg_host = support::pg_host(),
        pg_port = support::pg_port(),
        db = db.name,
    );
    let out = support::keychain_session(home.path(), &script);
    let read = |f: &str| std::fs::read_to_string(home.path().join(f)).unwrap_or_default();
    assert!(
        out.status.success(),
        "keychain session failed: {}\n{}\nbackup.err: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        read("backup.err")
    );
    // No key before the first backup.
    assert!(
        read("nokey.err").contains("no SchoolVault encryption key"),
        "{}",
        read("nokey.err")
    );
    let b: serde_json::Value = serde_json::from_str(&read("backup.json")).unwrap();
    assert_eq!(b["key_generated"], true);
    assert!(
        read("backup.err").contains("key export"),
        "{}",
        read("backup.err")
    );
    let b2: serde_json::Value = serde_json::from_str(&read("backup2.json")).unwrap();
    assert_eq!(
        b2["key_generated"], false,
        "the second backup must reuse the stored key"
    );
    let fp: serde_json::Value = serde_json::from_str(&read("fp.json")).unwrap();
    assert_eq!(fp["fingerprint"], b["key_fingerprint"]);
    assert_eq!(b2["key_fingerprint"], b["key_fingerprint"]);
    assert_eq!(read("export.txt").trim().len(), 64);
    // The key never lands in the backup folder, the catalog or the outputs other than export.
    let key = read("export.txt").trim().to_string();
    for f in [
        "backup.json",
        "backup.err",
        "fp.json",
        "restore.json",
        "import.json",
    ] {
        assert!(!read(f).contains(&key), "the key leaked into {f}");
    }
    let catalog = std::fs::read(home.path().join("catalog.sqlite")).unwrap();
    assert!(!String::from_utf8_lossy(&catalog).contains(&key));
    assert_eq!(db.checksums(), before, "restore with the keychain's key");
    // After importing a new key, the old backup still verifies with the old key, kept by
    // fingerprint.
    let imported: serde_json::Value = serde_json::from_str(&read("import.json")).unwrap();
    assert_ne!(imported["fingerprint"], b["key_fingerprint"]);
    let v: serde_json::Value = serde_json::from_str(&read("verify_old.json")).unwrap();
    assert_eq!(v["backup_id"], b["id"]);
}

#[test]
fn no_keychain_at_all_is_one_clear_error_and_nothing_is_written() {
    // No Secret Service on this session bus (there is no bus at all) and no key elsewhere:
    // a backup must say what to do, not panic or write anything.
    let db = TestDb::new("nokeychain");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
    let env = support::Env::new();
    let out = env
        .cmd()
        .env_remove("BACKUP_ENCRYPTION_KEY")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .args(["--json", "--db", &db.url(), "backup"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "keychain", "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(line.contains("BACKUP_ENCRYPTION_KEY"), "{line}");
    assert!(env.files().is_empty(), "{:?}", env.files());
}

#[test]
fn key_rotate_writes_the_sheet_first_and_older_backups_still_restore() {
    let db = TestDb::new("rotate");
    db.load(&school_sql(), &[]);
    let before = db.checksums();
    let home = tempfile::tempdir().unwrap();
    let sv = support::schoolvault_bin();
    let h = home.path().display().to_string();
    let script = format!(
        r#"set -e
        echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        SV={sv}
        $SV --json key generate > {h}/first.json
        # A generated key owes its recovery copy (the app says so) until it is exported.
        test -f {h}/key-recovery-pending.json && echo owed > {h}/owed.txt || true
        $SV --json key export --out {h}/first-sheet.txt > /dev/null
        test -f {h}/key-recovery-pending.json && echo still > {h}/still-owed.txt || true
        $SV --json --db '{url}' backup > {h}/old.json
        # A sheet that cannot be written (its folder is a file): no rotation.
        $SV --json key rotate --out {h}/first.json/new-key.txt > {h}/refused.json 2> {h}/refused.err || echo $? > {h}/refused.code
        $SV --json key fingerprint > {h}/still.json
        $SV --json key rotate --out {h}/new-key.txt > {h}/rotated.json 2> {h}/rotated.err
        $SV --json --db '{url}' backup > {h}/new.json
        # The sheet imports back as the same key (the whole sheet on stdin).
        $SV --json key import < {h}/new-key.txt > {h}/reimport.json
        psql -X -q -h {pg_host} -p {pg_port} -U postgres -d {db} -c "DELETE FROM attendance"
        $SV --json --db '{url}' restore "$(python3 -c 'import json; print(json.load(open("{h}/old.json"))["id"])')" --yes > {h}/restore.json
        "#,
        sv = sv.display(),
        url = db.url(),
        pg_host = support::pg_host(),
        pg_port = support::pg_port(),
        db = db.name,
    );
    let out = support::keychain_session(home.path(), &script);
    let read = |f: &str| std::fs::read_to_string(home.path().join(f)).unwrap_or_default();
    let json = |f: &str| -> serde_json::Value {
        serde_json::from_str(&read(f)).unwrap_or_else(|_| panic!("{f}: {:?}", read(f)))
    };
    assert!(
        out.status.success(),
        "keychain session failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read("owed.txt").trim(),
        "owed",
        "key generate marks the copy owed"
    );
    assert!(
        read("still-owed.txt").is_empty(),
        "key export --out saves it"
    );
    let first = json("first.json")["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !read("refused.code").trim().is_empty(),
        "an unwritable sheet refuses the rotation: {}",
        read("refused.err")
    );
    assert_eq!(
        json("still.json")["fingerprint"],
        first.as_str(),
        "no sheet, no new key"
    );
    let second = json("rotated.json")["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, first);
    assert!(
        read("new-key.txt").contains(&second),
        "the sheet names the new key"
    );
    assert!(
        read("rotated.err").contains("Older backups still open"),
        "{}",
        read("rotated.err")
    );
    assert_eq!(json("reimport.json")["fingerprint"], second.as_str());
    // The old backup is under the first key, the new one under the second; the old restores.
    assert_eq!(json("old.json")["key_fingerprint"], first.as_str());
    assert_eq!(json("new.json")["key_fingerprint"], second.as_str());
    assert_eq!(json("restore.json")["rows"], json("old.json")["rows"]);
    assert_eq!(db.checksums(), before);
}
