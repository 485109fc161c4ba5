//! Shared helpers of the end-to-end tests: a fresh PostgreSQL database per test (as
//! `#[sqlx::test]` does), the real `schoolvault` binary in an isolated environment, and table
//! checksums to compare databases.
//!
//! Every test talks to the real PostgreSQL at `SCHOOLVAULT_TEST_PG_HOST`:`SCHOOLVAULT_TEST_PG_PORT`
//! (default 127.0.0.1:5432, user postgres). When it cannot be reached the test fails and says
//! how to start it; it never passes without it.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn pg_host() -> String {
    std::env::var("SCHOOLVAULT_TEST_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}
pub fn pg_port() -> String {
    std::env::var("SCHOOLVAULT_TEST_PG_PORT").unwrap_or_else(|_| "5432".into())
}

/// The URL of database `db` for user `user`.
pub fn url_for(user: &str, db: &str) -> String {
    format!("postgres://{user}@{}:{}/{db}", pg_host(), pg_port())
}

/// Run SQL (or `-f file` with extra args) through psql; return stdout. Panics with the error.
pub fn psql_args(db: &str, args: &[&str]) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            &pg_host(),
            "-p",
            &pg_port(),
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run psql ({e}): install postgresql-client (make test does)")
        });
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Connection refused") || err.contains("could not connect") {
            panic!(
                "PostgreSQL is not reachable at {}:{}: start it (`make test` does, or \
                 `pg_ctlcluster 15 main start`). psql said: {err}",
                pg_host(),
                pg_port()
            );
        }
        panic!("psql {args:?} on {db} failed: {err}");
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn psql(db: &str, sql: &str) -> String {
    psql_args(db, &["-c", sql])
}

/// A fresh database, dropped at the end of the test.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new(prefix: &str) -> TestDb {
        let name = format!("sv_{prefix}_{:08x}", rand::random::<u32>());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        TestDb { name }
    }
    pub fn url(&self) -> String {
        url_for("postgres", &self.name)
    }
    pub fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }
    pub fn load(&self, file: &Path, vars: &[&str]) {
        let mut args: Vec<String> = Vec::new();
        for v in vars {
            args.push("-v".into());
            args.push((*v).into());
        }
        args.push("-f".into());
        args.push(file.display().to_string());
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        psql_args(&self.name, &refs);
    }
    /// Every table's row count and ordered checksum, by `schema.table`.
    pub fn checksums(&self) -> BTreeMap<String, String> {
        let tables = self.sql(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
        );
        let mut out = BTreeMap::new();
        let tables: Vec<&str> = tables.lines().filter(|l| !l.is_empty()).collect();
        for chunk in tables.chunks(40) {
            let q = chunk
                .iter()
                .map(|t| {
                    format!(
                        "SELECT '{}' || '|' || count(*) || '|' || md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM {t} x",
                        t.replace('\'', "''")
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            for line in self.sql(&q).lines() {
                let (name, rest) = line.split_once('|').unwrap();
                out.insert(name.to_string(), rest.to_string());
            }
        }
        out
    }
    /// Every sequence's `last_value,is_called`.
    pub fn sequences(&self) -> BTreeMap<String, String> {
        let seqs = self
            .sql("SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1");
        let mut out = BTreeMap::new();
        for s in seqs.lines().filter(|l| !l.is_empty()) {
            out.insert(
                s.to_string(),
                self.sql(&format!("SELECT last_value || ',' || is_called FROM {s}")),
            );
        }
        out
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                &pg_host(),
                "-p",
                &pg_port(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args([
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// The project's own small school schema with data.
pub fn school_sql() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/school.sql")
}

/// The shared fixtures, or None (skipped, with a message) outside CI when they are missing.
pub fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var("SCHOOLVAULT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    if dir.join("erp-schema.sql").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "the shared fixtures are missing at {} (set SCHOOLVAULT_FIXTURES); CI must have them",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: the ERP fixtures are not at {} (set SCHOOLVAULT_FIXTURES to the folder holding erp-schema.sql)",
        dir.display()
    );
    None
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

/// The `schoolvault` binary: `SCHOOLVAULT_BIN`, else the one beside this test's target folder.
/// Cargo builds a package's binary only for that package's own tests, and these tests live in
/// the workspace root, so `make test` builds it first (`cargo build -p schoolvault-cli`).
pub fn schoolvault_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SCHOOLVAULT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/schoolvault
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(format!("schoolvault{}", std::env::consts::EXE_SUFFIX)))
        .unwrap();
    assert!(
        bin.is_file(),
        "the schoolvault binary is not at {}: run `cargo build -p schoolvault-cli` first (make test does)",
        bin.display()
    );
    bin
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
    /// The `schoolvault` binary with this environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(schoolvault_bin());
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

/// A PostgreSQL cluster of its own with password authentication (the shared server trusts
/// 127.0.0.1), made with Debian's pg_createcluster and dropped at the end.
pub struct PasswordCluster {
    version: String,
    name: String,
    pub port: u16,
}

impl PasswordCluster {
    pub fn start() -> PasswordCluster {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server packages are missing (make test installs them)")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
            .unwrap();
        let port = 20000 + (rand::random::<u16>() % 10000);
        let name = format!("svauth{port}");
        let ok = Command::new("pg_createcluster")
            .args([&version, &name, "--port", &port.to_string(), "--start"])
            .args(["--", "--auth-local=trust", "--auth-host=scram-sha-256"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "pg_createcluster failed: this test needs Debian's postgresql-common and root (make test has both)");
        let c = PasswordCluster {
            version,
            name,
            port,
        };
        let set = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "/var/run/postgresql",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-c", "ALTER USER postgres PASSWORD 'right-password'"])
            .output()
            .unwrap();
        assert!(
            set.status.success(),
            "{}",
            String::from_utf8_lossy(&set.stderr)
        );
        c
    }
}

impl Drop for PasswordCluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args([&self.version, &self.name, "--stop"])
            .output();
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
