//! The PostgreSQL side of the end-to-end tests, with no tie to a binary: a fresh database per
//! test (as `#[sqlx::test]` does), table checksums to compare databases, a password-protected
//! cluster, and the workspace's test data (`tests/data` at the workspace root, which the app
//! also embeds). The CLI's tests use it through `support`; the desktop test (`tests/desktop.rs`,
//! root package) includes this file alone with `#[path]`.
//!
//! Every test talks to the real PostgreSQL at `SCHOOLVAULT_TEST_PG_HOST`:`SCHOOLVAULT_TEST_PG_PORT`
//! (default 127.0.0.1:5432, user postgres). When it cannot be reached the test fails and says
//! how to start it; it never passes without it.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's root folder: the nearest folder above the including package's own whose
/// `Cargo.toml` has a `[workspace]` table (the root package, or two levels up from crates/cli).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
        })
        .unwrap_or_else(|| panic!("no workspace Cargo.toml above {}", here.display()))
        .to_path_buf()
}

/// A file of the workspace's test data (`tests/data/<name>`).
pub fn test_data(name: &str) -> PathBuf {
    workspace_root().join("tests/data").join(name)
}

/// The project's own small school schema with data (also the app's demo database).
pub fn school_sql() -> PathBuf {
    workspace_root().join("crates/engine/src/demo/school.sql")
}

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

/// Run psql as `user` (trust auth on the test server) with `args` (`-c SQL`, `-f file`…):
/// its stdout, or the error it printed.
pub fn psql_as(user: &str, db: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", &pg_host(), "-p", &pg_port(), "-U", user, "-d", db])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run psql ({e}): install postgresql-client (make test does)")
        });
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Run SQL (or `-f file` with extra args) through psql; return stdout. Panics with the error.
pub fn psql_args(db: &str, args: &[&str]) -> String {
    psql_as("postgres", db, args).unwrap_or_else(|err| {
        if err.contains("Connection refused") || err.contains("could not connect") {
            panic!(
                "PostgreSQL is not reachable at {}:{}: start it (`make test` does, or \
                 `pg_ctlcluster 15 main start`). psql said: {err}",
                pg_host(),
                pg_port()
            );
        }
        panic!("psql {args:?} on {db} failed: {err}");
    })
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
