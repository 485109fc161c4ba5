//! The old system's public development key, and foreign or hostile files.

use super::*;

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
