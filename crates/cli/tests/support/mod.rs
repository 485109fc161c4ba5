//! Shared helpers of the CLI's end-to-end tests: the PostgreSQL side (`db.rs`: a fresh database
//! per test, table checksums, the test data), the real `schoolvault` binary that cargo built for
//! these tests in an isolated environment, the shared ERP fixtures, and a keychain session.
#![allow(dead_code, clippy::unwrap_used)]

mod db;
pub mod servers;

pub use db::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared fixtures, or None (skipped, with a message) outside CI when they are missing.
pub fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var("SCHOOLVAULT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("../shared/fixtures"));
    if dir.join("erp-schema.sql").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "the shared fixtures are missing at {} (set SCHOOLVAULT_FIXTURES); CI must have them",
            dir.display()
        );
    }
    let why = format!(
        "the ERP fixtures are not at {} (set SCHOOLVAULT_FIXTURES to the folder holding erp-schema.sql)",
        dir.display()
    );
    eprintln!("SKIPPED: {why}");
    note_skipped(&why);
    None
}

/// Where skipped tests are noted, for a person to see: cargo shows a passing test's stderr to
/// no one, so `make test` empties this file first and prints its lines after the summary.
pub fn skipped_file() -> PathBuf {
    workspace_root().join("target/skipped.txt")
}

/// Append `skipped <test file>::<test>: <why>` to [`skipped_file`].
fn note_skipped(why: &str) {
    use std::io::Write as _;
    // The test binary is target/<profile>/deps/<file>-<hash>; libtest names each test's thread.
    let file = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .map(|s| s.rsplit_once('-').map_or(s.clone(), |(f, _)| f.to_string()))
        .unwrap_or_default();
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(|n| format!("::{n}"))
        .unwrap_or_default();
    let path = skipped_file();
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
        })
        .and_then(|mut f| writeln!(f, "skipped {file}{test}: {why}"));
    if let Err(e) = written {
        eprintln!("cannot note the skipped test in {}: {e}", path.display());
    }
}

/// A database with the real ERP schema and the small generated school (54 MB).
pub fn erp_db(fixtures: &Path) -> TestDb {
    let db = TestDb::new("erp");
    db.load(&fixtures.join("erp-schema.sql"), &[]);
    db.load(
        &fixtures.join("gen-erp-data.sql"),
        &["sf=1", "students=40", "teachers=90", "seed=7"],
    );
    db
}

/// The `schoolvault` binary cargo built for these tests (they belong to its package, so cargo
/// builds it first and names it in `CARGO_BIN_EXE_schoolvault`): never a stale one in target/.
pub fn schoolvault_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_schoolvault"))
}

/// An isolated environment for the CLI: its own backup folder, catalog, HOME and key.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub key: String,
}

impl Env {
    pub fn new() -> Env {
        let key: [u8; 32] = rand::random();
        Env {
            dir: tempfile::tempdir().unwrap(),
            key: hex::encode(key),
        }
    }
    pub fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }
    /// As if SchoolVault first looked at the schedule two days ago (a new installation waits
    /// for its first slot; these tests want one to be due now). The file is the engine's own
    /// record beside the catalog.
    pub fn installed_before(&self) -> &Env {
        let at = chrono::Utc::now() - chrono::Duration::days(2);
        std::fs::write(
            self.dir
                .path()
                .join(schoolvault_engine::jobs::FIRST_LOOK_FILE),
            serde_json::json!({ "first_look": at.to_rfc3339() }).to_string(),
        )
        .unwrap();
        self
    }
    /// The `schoolvault` binary with this environment, as a std Command (to be spawned and
    /// killed).
    pub fn std_cmd(&self) -> Command {
        let mut c = Command::new(schoolvault_bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("SCHOOLVAULT_DIR", self.backups())
            .env(
                "SCHOOLVAULT_CATALOG",
                self.dir.path().join("catalog.sqlite"),
            )
            .env("BACKUP_ENCRYPTION_KEY", &self.key);
        c
    }
    /// The `schoolvault` binary with this environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_cmd())
    }
    /// Run and parse `--json` output; panics unless it succeeds.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "schoolvault {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
    /// Run expecting failure; return (code from --json, stderr).
    pub fn fails(&self, args: &[&str]) -> (String, String) {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        assert!(!out.status.success(), "schoolvault {args:?} should fail");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("no JSON error: {}", String::from_utf8_lossy(&out.stdout)));
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!stderr.contains("panicked"), "panic: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "one error line expected: {stderr}");
        (
            doc["error"]["code"].as_str().unwrap().to_string(),
            lines[0].to_string(),
        )
    }
    /// Files in the backup folder (any name).
    pub fn files(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.backups()) {
            Ok(rd) => {
                let mut v: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
                v.sort();
                v
            }
            Err(_) => Vec::new(),
        }
    }
}

/// Run `script` with `sh -c` in a private D-Bus session (where the script starts and unlocks a
/// gnome-keyring of its own), with `home` as HOME, XDG folders and SchoolVault's backup
/// folder and catalog.
pub fn keychain_session(home: &Path, script: &str) -> std::process::Output {
    Command::new("dbus-run-session")
        .args(["--", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_RUNTIME_DIR", home)
        .env("SCHOOLVAULT_DIR", home.join("backups"))
        .env("SCHOOLVAULT_CATALOG", home.join("catalog.sqlite"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run dbus-run-session ({e}): install dbus (make test does)")
        })
}
