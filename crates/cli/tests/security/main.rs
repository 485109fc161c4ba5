//! The security fixes, end to end: the old system's public development key is never a
//! SchoolVault key; old files under it are not restored without the person's trust; row-level
//! security cannot make a backup silently incomplete; what SchoolVault writes is private;
//! damaged files are never pruned; a test restore never drops a database it did not create,
//! while one left by an interrupted job is cleaned up; one bad email address does not silence
//! the others; a password in `--db` is warned about and never echoed.
#![allow(clippy::unwrap_used)]

#[path = "../support/smtp.rs"]
mod smtp;
#[path = "../support/mod.rs"]
mod support;

// The tests, by what they cover (one test binary).
mod databases;
mod files;
mod keys;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{fixtures, pg_host, pg_port, psql, school_sql, url_for, Env, TestDb};

/// The old system's built-in development key, printed in its guide: public.
const DEV_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A database with one table of 10 rows.
fn small_db(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix);
    db.sql(
        "CREATE TABLE pupils (id serial PRIMARY KEY, name text NOT NULL); \
         INSERT INTO pupils (name) SELECT 'pupil ' || i FROM generate_series(1, 10) i",
    );
    db
}

/// Run SQL as the superuser, ignoring any failure (for clean-up in `Drop`).
fn psql_quiet(sql: &str) {
    let _ = Command::new("psql")
        .args(["-X", "-q", "-h", &pg_host(), "-p", &pg_port()])
        .args(["-U", "postgres", "-d", "postgres", "-c", sql])
        .output();
}

/// Run SQL in `db` as `user`; return stdout. Panics with the error.
fn psql_as(user: &str, db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", &pg_host(), "-p", &pg_port(), "-U", user, "-d", db])
        .args(["-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql as {user} on {db}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn database_exists(name: &str) -> bool {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    ) == "1"
}

/// The `error:` line of a failed run's stderr (exactly one).
fn error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {stderr}");
    lines[0].to_string()
}

// 3. Row-level security never makes a backup silently incomplete.

/// A table of 10 rows with row-level security showing 4 of them to `role`, a non-owner with
/// SELECT on everything. Drops the database, then the role, even when the test fails.
struct RlsSetup {
    db: Option<TestDb>,
    role: String,
}

impl RlsSetup {
    fn new() -> RlsSetup {
        let db = TestDb::new("rls");
        let role = format!("sv_rls_{:08x}", rand::random::<u32>());
        let setup = RlsSetup {
            db: Some(db),
            role: role.clone(),
        };
        let db = setup.db();
        db.sql(&format!("CREATE ROLE {role} LOGIN"));
        db.sql(
            "CREATE TABLE pupils (id serial PRIMARY KEY, name text NOT NULL); \
             INSERT INTO pupils (name) SELECT 'pupil ' || i FROM generate_series(1, 10) i; \
             ALTER TABLE pupils ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY first_four ON pupils FOR SELECT USING (id <= 4)",
        );
        db.sql(&format!(
            "GRANT USAGE ON SCHEMA public TO {role}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; \
             GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"
        ));
        // The policy works: the role sees 4 rows, the owner 10.
        assert_eq!(psql_as(&role, &db.name, "SELECT count(*) FROM pupils"), "4");
        assert_eq!(db.sql("SELECT count(*) FROM pupils"), "10");
        setup
    }
    fn db(&self) -> &TestDb {
        self.db.as_ref().unwrap()
    }
    fn role_url(&self) -> String {
        url_for(&self.role, &self.db().name)
    }
}

impl Drop for RlsSetup {
    fn drop(&mut self) {
        drop(self.db.take());
        psql_quiet(&format!("DROP ROLE IF EXISTS {}", self.role));
    }
}

// 4. What SchoolVault writes is private (Unix modes).

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `schoolvault ARGS` in `env` under umask 022, so a file or folder made with the default
/// modes would be readable by others (whatever umask the tests run under).
#[cfg(unix)]
fn run_umask_022(env: &Env, extra: &[(&str, &Path)], args: &[&str]) -> std::process::Output {
    let mut c = Command::new("sh");
    c.args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(support::schoolvault_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("SCHOOLVAULT_DIR", env.backups())
        .env("SCHOOLVAULT_CATALOG", env.dir.path().join("catalog.sqlite"))
        .env("BACKUP_ENCRYPTION_KEY", &env.key);
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "schoolvault {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Creates database `name` (with a table of data) the first time the job announces it is
/// connecting: in a test restore, after its check that the scratch name is free and before
/// its `CREATE DATABASE`, as another person or program could.
struct CreateOnConnect {
    name: String,
    done: std::sync::atomic::AtomicBool,
}

impl schoolvault_engine::progress::Progress for CreateOnConnect {
    fn report(&self, event: &schoolvault_engine::progress::ProgressEvent) {
        use std::sync::atomic::Ordering;
        if event.phase == schoolvault_engine::progress::Phase::Connect
            && !self.done.swap(true, Ordering::SeqCst)
        {
            psql("postgres", &format!("CREATE DATABASE {}", self.name));
            psql(
                &self.name,
                "CREATE TABLE precious (id int); INSERT INTO precious VALUES (1), (2), (3)",
            );
        }
    }
}

/// Peak resident memory (KiB) of `schoolvault --json ARGS` under GNU time, and its JSON error
/// code.
fn peak_kib_and_code(env: &Env, args: &[&str]) -> (u64, String) {
    let stats = env.dir.path().join("time.txt");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-o")
        .arg(&stats)
        .args(["-f", "%M"])
        .arg(support::schoolvault_bin())
        .arg("--json")
        .args(args);
    // The same isolated environment as env.cmd().
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("SCHOOLVAULT_DIR", env.backups())
        .env("SCHOOLVAULT_CATALOG", env.dir.path().join("catalog.sqlite"))
        .env("BACKUP_ENCRYPTION_KEY", &env.key);
    let out = cmd
        .output()
        .expect("/usr/bin/time is missing: apt-get install time (make test does)");
    assert!(!out.status.success(), "a foreign file must be refused");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kib: u64 = std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (kib, doc["error"]["code"].as_str().unwrap().to_string())
}
