//! Offsite copies against real servers on loopback: an S3 server (s3s-fs: it checks signatures
//! and checksums), a WebDAV server (rclone, with a password kept in a real keychain) and a
//! folder. Copies after each backup, a pending copy while the server is down and finished by
//! `sync`, damage and loss found by `sync --verify` and repaired, the mapped errors, retention
//! at a destination that never removes the only copy, and the disaster: an empty computer
//! lists the backups from the bucket and restores one into a new database. Object Lock against
//! moto's S3 server (s3s-fs has none): copies locked, a delete refused, the retention keeping them.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use sha2::{Digest, Sha256};
use support::servers::{Moto, WebDav, S3};
use support::{school_sql, Env, TestDb};

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The CLI with the S3 server's credentials in the environment (the way a server sets them),
/// as a std Command (to be spawned and killed).
fn s3_std_cmd(env: &Env, s3: &S3) -> std::process::Command {
    let mut c = env.std_cmd();
    c.env("AWS_ACCESS_KEY_ID", &s3.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_key);
    c
}

/// [`s3_std_cmd`] for `assert_cmd`.
fn s3_cmd(env: &Env, s3: &S3) -> assert_cmd::Command {
    assert_cmd::Command::from_std(s3_std_cmd(env, s3))
}

fn json_of(out: &std::process::Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn run_json(mut c: assert_cmd::Command, args: &[&str]) -> serde_json::Value {
    let out = c.arg("--json").args(args).output().unwrap();
    json_of(&out, &format!("schoolvault {args:?}"))
}

fn copy_state(backup: &serde_json::Value, destination: &str) -> String {
    backup["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["destination"] == destination)
        .unwrap_or_else(|| panic!("no copy at {destination}: {backup}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn file_name(backup: &serde_json::Value) -> String {
    Path::new(backup["file"].as_str().or(backup["path"].as_str()).unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn s3_copies_wait_for_the_server_and_damage_is_repaired() {
    let mut s3 = S3::start();
    let db = TestDb::new("offsite_s3");
    db.load(&school_sql(), &[]);
    let env = Env::new();
    let url = s3.url("school", "erp/daily");
    run_json(s3_cmd(&env, &s3), &["destination", "add", "cloud", &url]);
    // s3s-fs has no Object Lock: a lock asked of it is refused as such, which also shows that
    // the lock's own signed request (not made through OpenDAL) passes its signature check.
    let out = s3_cmd(&env, &s3)
        .args(["destination", "add", "locked", &url, "--lock-days", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("has no Object Lock"),
        "{stderr}"
    );

    // A backup is copied: the object has the local file's bytes, and its checksum file says so.
    let b1 = run_json(s3_cmd(&env, &s3), &["--db", &db.url(), "backup"]);
    assert_eq!(copy_state(&b1, "cloud"), "done", "{b1}");
    let name1 = file_name(&b1);
    let object = s3.object("school", &format!("erp/daily/{name1}"));
    assert_eq!(sha256(&object), b1["sha256"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(&object).unwrap().len(),
        b1["size"].as_u64().unwrap()
    );
    let sidecar =
        std::fs::read_to_string(s3.object("school", &format!("erp/daily/{name1}.sha256"))).unwrap();
    assert_eq!(
        sidecar,
        format!("{}  {name1}\n", b1["sha256"].as_str().unwrap())
    );

    // The server down: the backup still succeeds, its copy waits, and the list says so.
    s3.server.stop();
    let out = s3_cmd(&env, &s3)
        .args(["--json", "--db", &db.url(), "backup"])
        .output()
        .unwrap();
    let b2 = json_of(&out, "backup with the server down");
    assert_eq!(copy_state(&b2, "cloud"), "pending", "{b2}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: the copy to cloud is pending")
            && stderr.contains("cannot be reached"),
        "{stderr}"
    );
    let name2 = file_name(&b2);
    assert!(!s3.object("school", &format!("erp/daily/{name2}")).exists());
    let listed = run_json(s3_cmd(&env, &s3), &["list"]);
    assert_eq!(copy_state(&listed[0], "cloud"), "pending");
    assert!(listed[0]["copies"][0]["error"]
        .as_str()
        .unwrap()
        .contains("cannot be reached"));
    // `sync` says the destination is behind, in its report and its exit code.
    let out = s3_cmd(&env, &s3).args(["--json", "sync"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The history says so, for the Activity screen and the weekly report.
    let history = run_json(env.cmd(), &["history"]);
    let copy = history
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["operation"] == "copy")
        .unwrap_or_else(|| panic!("no copy in the history: {history}"));
    assert_eq!(copy["outcome"], "failure", "{copy}");
    assert_eq!(copy["error_code"], "destination_unreachable", "{copy}");

    // The server back: `sync` finishes the copy.
    s3.server.start();
    let synced = run_json(s3_cmd(&env, &s3), &["sync"]);
    assert_eq!(
        synced[0]["uploaded"].as_array().unwrap().len(),
        1,
        "{synced}"
    );
    let history = run_json(env.cmd(), &["history"]);
    assert_eq!(history[0]["operation"], "copy", "{history}");
    assert_eq!(history[0]["outcome"], "success", "{history}");
    assert!(
        history[0]["message"]
            .as_str()
            .unwrap()
            .contains("cloud: 1 copied"),
        "{history}"
    );
    assert_eq!(
        sha256(&s3.object("school", &format!("erp/daily/{name2}"))),
        b2["sha256"].as_str().unwrap()
    );
    let listed = run_json(s3_cmd(&env, &s3), &["list"]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|b| copy_state(b, "cloud") == "done"));

    // Behind SchoolVault's back: one copy deleted, one damaged in place.
    std::fs::remove_file(s3.object("school", &format!("erp/daily/{name1}"))).unwrap();
    let damaged = s3.object("school", &format!("erp/daily/{name2}"));
    let mut bytes = std::fs::read(&damaged).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    let checked = run_json(s3_cmd(&env, &s3), &["sync", "--verify", "--read-back"]);
    let findings = checked[0]["findings"].as_array().unwrap();
    let problem = |n: &str| {
        findings
            .iter()
            .find(|f| f["name"] == n)
            .unwrap_or_else(|| panic!("{n} not reported: {checked}"))
            .clone()
    };
    assert_eq!(problem(&name1)["problem"], "missing");
    assert_eq!(problem(&name2)["problem"], "checksum");
    assert!(findings.iter().all(|f| f["repaired"] == true), "{checked}");
    assert_eq!(
        sha256(&s3.object("school", &format!("erp/daily/{name1}"))),
        b1["sha256"].as_str().unwrap()
    );
    assert_eq!(sha256(&damaged), b2["sha256"].as_str().unwrap());
    // Everything checks now.
    let again = run_json(s3_cmd(&env, &s3), &["sync", "--verify", "--read-back"]);
    assert!(
        again[0]["findings"].as_array().unwrap().is_empty(),
        "{again}"
    );

    // Wrong credentials and a bucket that does not exist: said as such, nothing saved.
    let mut wrong = env.cmd();
    wrong
        .env("AWS_ACCESS_KEY_ID", &s3.access_key)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = wrong
        .args(["--json", "destination", "add", "other", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "destination_auth", "{doc}");
    let (code, line) = {
        let mut c = s3_cmd(&env, &s3);
        let out = c
            .args([
                "--json",
                "destination",
                "add",
                "other",
                &s3.url("no-such-bucket", ""),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            doc["error"]["code"].as_str().unwrap().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, "destination_missing", "{line}");
    assert!(line.contains("bucket does not exist"), "{line}");
    let dests = run_json(s3_cmd(&env, &s3), &["destination", "list"]);
    assert_eq!(dests.as_array().unwrap().len(), 1, "{dests}");
}

#[test]
fn a_new_computer_restores_from_the_bucket() {
    let s3 = S3::start();
    let db = TestDb::new("offsite_dr");
    db.load(&school_sql(), &[]);
    let source = db.checksums();
    let old = Env::new();
    let url = s3.url("school", "");
    run_json(s3_cmd(&old, &s3), &["destination", "add", "cloud", &url]);
    let made = run_json(s3_cmd(&old, &s3), &["--db", &db.url(), "backup"]);
    let id = made["id"].as_str().unwrap().to_string();
    // The office PC burnt: its backup folder and catalog are gone; the key was on the
    // recovery sheet.
    let key = old.key.clone();
    drop(old);
    let new = Env {
        dir: tempfile::tempdir().unwrap(),
        key,
    };
    assert!(run_json(new.cmd(), &["list"])
        .as_array()
        .unwrap()
        .is_empty());
    run_json(s3_cmd(&new, &s3), &["destination", "add", "cloud", &url]);
    let found = run_json(s3_cmd(&new, &s3), &["rescan", "--from", "cloud"]);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["status"], "complete", "{found}");
    let listed = run_json(new.cmd(), &["list"]);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["local"], false, "{listed}");
    assert_eq!(listed[0]["sha256"], made["sha256"]);

    // Restored into a new database: the file comes down, is checked, and restores.
    let copy = TestDb {
        name: format!("{}_new", db.name),
    };
    run_json(
        s3_cmd(&new, &s3),
        &["--db", &db.url(), "restore", &id, "--create-db", &copy.name],
    );
    assert_eq!(copy.checksums(), source);
    let local = new.backups().join(file_name(&made));
    assert_eq!(sha256(&local), made["sha256"].as_str().unwrap());

    // A copy damaged at the destination is never restored: a new computer again, the bytes
    // flipped in the bucket.
    let third = Env {
        dir: tempfile::tempdir().unwrap(),
        key: new.key.clone(),
    };
    run_json(s3_cmd(&third, &s3), &["destination", "add", "cloud", &url]);
    run_json(s3_cmd(&third, &s3), &["rescan", "--from", "cloud"]);
    let object = s3.object("school", &file_name(&made));
    let mut bytes = std::fs::read(&object).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&object, &bytes).unwrap();
    let out = s3_cmd(&third, &s3)
        .args(["--json", "--db", &db.url(), "restore", &id, "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "damaged", "{doc}");
    assert!(third
        .files()
        .iter()
        .all(|f| !f.to_string_lossy().ends_with(".svb")));
    assert_eq!(db.checksums(), source, "the database is untouched");
}

#[test]
fn a_folder_destination_waits_for_its_disk_and_keeps_the_only_copy() {
    let db = TestDb::new("offsite_dir");
    db.load(&school_sql(), &[]);
    let env = Env::new();
    let usb = tempfile::tempdir().unwrap();
    let folder = usb.path().join("schoolvault");
    let url = format!("file://{}", folder.display());
    // Its own retention: the newest copy only.
    run_json(
        env.cmd(),
        &[
            "destination",
            "add",
            "usb",
            &url,
            "--keep-days",
            "0",
            "--keep-last",
            "1",
        ],
    );
    assert!(
        folder.is_dir(),
        "add makes the folder on a disk that is there"
    );
    let b1 = env.json(&["--db", &db.url(), "backup"]);
    assert_eq!(copy_state(&b1, "usb"), "done");
    assert_eq!(
        sha256(&folder.join(file_name(&b1))),
        b1["sha256"].as_str().unwrap()
    );

    // The disk unplugged: the backup succeeds, the copy waits, and no folder is made on this
    // computer's own disk.
    let away = usb.path().join("unplugged");
    std::fs::rename(&folder, &away).unwrap();
    let b2 = env.json(&["--db", &db.url(), "backup"]);
    assert_eq!(copy_state(&b2, "usb"), "pending", "{b2}");
    assert!(
        !folder.exists(),
        "a missing disk's folder must not be created"
    );
    let dests = env.json(&["destination", "list"]);
    assert_eq!(dests[0]["copies_pending"], 1, "{dests}");
    assert!(dests[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("is not there"));
    std::fs::rename(&away, &folder).unwrap();

    // Plugged in again: sync copies b2, and the destination's retention (newest only) removes
    // b1 there, which the backup folder still has.
    let synced = env.json(&["sync"]);
    assert_eq!(synced[0]["uploaded"][0], b2["id"], "{synced}");
    assert_eq!(synced[0]["pruned"][0], b1["id"], "{synced}");
    assert!(!folder.join(file_name(&b1)).exists());
    assert!(folder.join(file_name(&b2)).exists());
    assert!(
        Path::new(b1["file"].as_str().unwrap()).exists(),
        "local retention is its own"
    );

    // The only copy of a listed backup is never removed: b2's local file is lost, and a newer
    // backup would make the policy drop b2 at the destination.
    std::fs::remove_file(b2["file"].as_str().unwrap()).unwrap();
    let b3 = env.json(&["--db", &db.url(), "backup"]);
    assert_eq!(copy_state(&b3, "usb"), "done");
    assert!(
        folder.join(file_name(&b2)).exists(),
        "the only copy of {} was removed",
        b2["id"]
    );
    // No partial file was left anywhere.
    let left: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part") || n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn webdav_with_its_password_in_the_keychain() {
    let dav = WebDav::start();
    let db = TestDb::new("offsite_dav");
    db.load(&school_sql(), &[]);
    let home = tempfile::tempdir().unwrap();
    let h = home.path().display().to_string();
    let key = hex::encode(rand::random::<[u8; 32]>());
    let script = format!(
        r#"set -e
        echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        export BACKUP_ENCRYPTION_KEY={key}
        SV={sv}
        printf 'wrong\n' | $SV --json destination add nas 'webdav+http://{user}@127.0.0.1:{port}/school' --secret-stdin > {h}/wrong.json 2> {h}/wrong.err || true
        printf '%s\n' '{password}' | $SV --json destination add nas 'webdav+http://{user}@127.0.0.1:{port}/school' --secret-stdin > {h}/add.json
        $SV --json --db '{url}' backup > {h}/backup.json
        $SV --json sync --verify --read-back > {h}/verify.json
        "#,
        sv = support::schoolvault_bin().display(),
        user = dav.user,
        password = dav.password,
        port = dav.server.port,
        url = db.url(),
    );
    let out = support::keychain_session(home.path(), &script);
    let read = |f: &str| std::fs::read_to_string(home.path().join(f)).unwrap_or_default();
    assert!(
        out.status.success(),
        "keychain session failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A wrong password is refused, said as such.
    let wrong: serde_json::Value = serde_json::from_str(&read("wrong.json")).unwrap();
    assert_eq!(
        wrong["error"]["code"],
        "destination_auth",
        "{}",
        read("wrong.err")
    );
    let b: serde_json::Value = serde_json::from_str(&read("backup.json")).unwrap();
    assert_eq!(copy_state(&b, "nas"), "done", "{b}");
    let there = dav.file(&format!("school/{}", file_name(&b)));
    assert_eq!(sha256(&there), b["sha256"].as_str().unwrap());
    let v: serde_json::Value = serde_json::from_str(&read("verify.json")).unwrap();
    assert!(v[0]["findings"].as_array().unwrap().is_empty(), "{v}");
    // The password is in the keychain, never in the settings file.
    let config = std::fs::read_to_string(home.path().join("config/SchoolVault/config.toml"))
        .or_else(|_| std::fs::read_to_string(home.path().join("config/schoolvault/config.toml")))
        .unwrap();
    assert!(config.contains("secret_saved = true"), "{config}");
    assert!(!config.contains(&dav.password), "{config}");
}

/// A table of random text, so the backup is larger than one upload chunk (8 MiB) and its upload
/// to S3 is a multipart one that takes a while under a bandwidth limit.
fn noisy_db(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix);
    db.load(&school_sql(), &[]);
    db.sql(
        "CREATE TABLE noise AS SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') \
         FROM generate_series(1, 32) i) AS t FROM generate_series(1, 24000) g",
    );
    db
}

/// Run `--json ARGS` (a sync) and kill it once it reports `bytes` or more sent; its stderr so
/// far.
fn kill_sync_after(mut cmd: std::process::Command, args: &[&str], bytes: u64) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .arg("--json")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["phase"] == "upload" && v["bytes"].as_u64().unwrap_or(0) >= bytes {
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "sync finished before it was killed: {seen}"
    );
    seen
}

#[test]
fn an_upload_killed_half_way_leaves_no_copy_that_looks_complete() {
    let s3 = S3::start();
    let db = noisy_db("offsite_kill");
    let env = Env::new();
    let made = env.json(&["--db", &db.url(), "backup"]);
    let size = made["size"].as_u64().unwrap();
    assert!(
        size > 9 << 20,
        "the backup must take more than one chunk: {size}"
    );
    let name = file_name(&made);
    let usb = tempfile::tempdir().unwrap();
    let folder = usb.path().join("sv");
    // Slow destinations (1 MB/s), so the copy is killed in the middle.
    run_json(
        s3_cmd(&env, &s3),
        &[
            "destination",
            "add",
            "cloud",
            &s3.url("school", "k"),
            "--bandwidth",
            "1000",
        ],
    );
    let url = format!("file://{}", folder.display());
    run_json(
        env.cmd(),
        &["destination", "add", "usb", &url, "--bandwidth", "1000"],
    );
    // Killed after the first chunk went out to the first destination.
    kill_sync_after(s3_std_cmd(&env, &s3), &["sync"], 8 << 20);
    let there = |n: &str| s3.object("school", &format!("k/{n}"));
    assert!(
        !there(&name).exists(),
        "a cut S3 upload must not show an object"
    );
    assert!(!there(&format!("{name}.sha256")).exists());
    let listed = run_json(s3_cmd(&env, &s3), &["list"]);
    assert_ne!(copy_state(&listed[0], "cloud"), "done", "{listed}");

    // The next sync, unthrottled, finishes both copies.
    for (dest, u) in [("cloud", s3.url("school", "k")), ("usb", url.clone())] {
        run_json(s3_cmd(&env, &s3), &["destination", "add", dest, &u]);
    }
    let synced = run_json(s3_cmd(&env, &s3), &["sync"]);
    assert!(
        synced
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["owed"].as_array().unwrap().is_empty()),
        "{synced}"
    );
    assert_eq!(sha256(&there(&name)), made["sha256"].as_str().unwrap());
    assert_eq!(
        sha256(&folder.join(&name)),
        made["sha256"].as_str().unwrap()
    );
    let left: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Killed in the middle of the folder copy: a `.part` file, never the backup's name.
    std::fs::remove_file(folder.join(&name)).unwrap();
    std::fs::remove_file(folder.join(format!("{name}.sha256"))).unwrap();
    run_json(
        env.cmd(),
        &["destination", "add", "usb", &url, "--bandwidth", "1000"],
    );
    // (`--verify`: the copy is gone behind SchoolVault's back.)
    kill_sync_after(s3_std_cmd(&env, &s3), &["sync", "--verify"], 8 << 20);
    assert!(
        !folder.join(&name).exists(),
        "a cut folder copy must not have the backup's name"
    );
    let checked = run_json(s3_cmd(&env, &s3), &["sync", "--verify"]);
    let usb_report = checked
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["destination"] == "usb")
        .unwrap()
        .clone();
    assert_eq!(
        usb_report["uploaded"].as_array().unwrap().len(),
        1,
        "{checked}"
    );
    assert_eq!(
        sha256(&folder.join(&name)),
        made["sha256"].as_str().unwrap()
    );
}

#[test]
fn object_lock_keeps_copies_nobody_can_delete() {
    let moto = Moto::start();
    moto.boto3(
        "s3.create_bucket(Bucket='vault', ObjectLockEnabledForBucket=True)\ns3.create_bucket(Bucket='plain')",
    );
    let db = TestDb::new("offsite_lock");
    db.load(&school_sql(), &[]);
    let env = Env::new();
    let cmd = || {
        let mut c = env.cmd();
        c.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        c
    };
    let url = |bucket: &str| {
        format!(
            "s3://{bucket}/erp?endpoint={}&region=us-east-1",
            moto.endpoint()
        )
    };

    // A bucket made without Object Lock cannot keep copies locked: said when it is added, and
    // nothing is saved.
    let out = cmd()
        .args([
            "destination",
            "add",
            "plain",
            &url("plain"),
            "--lock-days",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("has no Object Lock"),
        "{stderr}"
    );
    assert_eq!(env.json(&["destination", "list"]), serde_json::json!([]));

    // The locked bucket, keeping only the newest copy by its own retention.
    run_json(
        cmd(),
        &[
            "destination",
            "add",
            "vault",
            &url("vault"),
            "--lock-days",
            "2",
            "--keep-days",
            "0",
            "--keep-last",
            "1",
        ],
    );
    let dests = env.json(&["destination", "list"]);
    assert_eq!(dests[0]["lock_days"], 2, "{dests}");
    let b1 = run_json(cmd(), &["--db", &db.url(), "backup"]);
    assert_eq!(copy_state(&b1, "vault"), "done", "{b1}");
    let name1 = file_name(&b1);

    // The copy and its checksum file are locked in compliance mode for two days (read back
    // through boto3, not through SchoolVault).
    let locks = moto.boto3(&format!(
        "import datetime\nfor k in ['erp/{name1}', 'erp/{name1}.sha256']:\n    h = s3.head_object(Bucket='vault', Key=k)\n    left = h['ObjectLockRetainUntilDate'] - datetime.datetime.now(datetime.timezone.utc)\n    print(h.get('ObjectLockMode'), round(left.total_seconds() / 3600))"
    ));
    let lines: Vec<&str> = locks.lines().collect();
    assert_eq!(lines.len(), 2, "{locks}");
    for line in lines {
        let (mode, hours) = line.split_once(' ').unwrap();
        assert_eq!(mode, "COMPLIANCE", "{locks}");
        let hours: i64 = hours.parse().unwrap();
        assert!((47..=48).contains(&hours), "locked for {hours} h: {locks}");
    }

    // Someone holding the credentials (ransomware) cannot delete the copy: the bucket refuses.
    let tried = moto.boto3(&format!(
        "v = s3.head_object(Bucket='vault', Key='erp/{name1}')['VersionId']\ntry:\n    s3.delete_object(Bucket='vault', Key='erp/{name1}', VersionId=v)\n    print('deleted')\nexcept Exception as e:\n    print('refused', e)"
    ));
    assert!(
        tried.starts_with("refused") && tried.contains("AccessDenied"),
        "{tried}"
    );

    // A second backup: the destination's retention would now drop b1, the lock keeps it, and
    // the sync says so without failing; nothing is hidden behind a delete marker.
    let b2 = run_json(cmd(), &["--db", &db.url(), "backup"]);
    assert_eq!(copy_state(&b2, "vault"), "done", "{b2}");
    let synced = run_json(cmd(), &["sync", "--verify"]);
    assert_eq!(synced[0]["pruned"], serde_json::json!([]), "{synced}");
    let findings = synced[0]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{synced}");
    assert_eq!(findings[0]["name"], name1.as_str());
    assert_eq!(findings[0]["problem"], "kept");
    assert!(
        findings[0]["detail"]
            .as_str()
            .unwrap()
            .contains("Object Lock"),
        "{synced}"
    );
    let there = moto.boto3(
        "v = s3.list_object_versions(Bucket='vault', Prefix='erp/')\nprint(json.dumps({'keys': sorted(x['Key'] for x in v.get('Versions', [])), 'markers': len(v.get('DeleteMarkers', []))}))",
    );
    let there: serde_json::Value = serde_json::from_str(there.trim()).unwrap();
    let name2 = file_name(&b2);
    let mut want = vec![
        format!("erp/{name1}"),
        format!("erp/{name1}.sha256"),
        format!("erp/{name2}"),
        format!("erp/{name2}.sha256"),
    ];
    want.sort();
    assert_eq!(there["keys"], serde_json::json!(want), "{there}");
    assert_eq!(there["markers"], 0, "{there}");
}
