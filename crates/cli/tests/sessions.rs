//! The school is still connected: a replace restore while an ERP session holds an open
//! transaction on a restored table. The CLI names that session before it starts and while it
//! waits; with `--lock-timeout` it gives up within seconds, the session in its message and the
//! database untouched; with `--end-sessions` (the offered action) the restore completes.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{pg_host, pg_port, psql, school_sql, Env, TestDb};

/// A psql session of the "ERP" (application name `erp-web`) that updated a row of `students`
/// and keeps its transaction open, idle, until it is killed or its connection ended.
// The child is returned to the test, which kills and waits for it.
#[allow(clippy::zombie_processes)]
fn idle_in_transaction(db: &TestDb) -> Child {
    let mut child = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            &pg_host(),
            "-p",
            &pg_port(),
            "-U",
            "postgres",
        ])
        .args(["-d", &db.name])
        .env("PGAPPNAME", "erp-web")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql (postgresql-client) is needed: make test installs it");
    let stdin = child.stdin.as_mut().unwrap();
    stdin
        .write_all(b"BEGIN; UPDATE students SET tags = tags WHERE id = (SELECT id FROM students ORDER BY id LIMIT 1);\n")
        .unwrap();
    stdin.flush().unwrap();
    let start = Instant::now();
    loop {
        let state = psql(
            "postgres",
            &format!(
                "SELECT state FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'erp-web'",
                db.name
            ),
        );
        if state.trim() == "idle in transaction" {
            return child;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the ERP session did not open its transaction: {state:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_replace_restore_names_the_session_holding_a_table_and_gives_up_or_ends_it() {
    let db = TestDb::new("sessions");
    db.load(&school_sql(), &[]);
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let id = b["id"].as_str().unwrap().to_string();
    let backed_up = db.checksums();
    db.sql("UPDATE students SET tags = array_append(tags, 'changed after the backup')");
    let before = db.checksums();
    assert_ne!(before, backed_up);

    let mut erp = idle_in_transaction(&db);
    let t0 = Instant::now();
    let out = env
        .std_cmd()
        .args(["--json", "--db", &db.url(), "restore", &id, "--yes"])
        .args(["--lock-timeout", "5"])
        .output()
        .unwrap();
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the restore must give up: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Before it starts: the other sessions, and what the restore will do about them.
    assert!(
        stderr.contains("1 other session is connected to"),
        "the session is listed first: {stderr}"
    );
    let listed = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("pid ") && l.contains("erp-web"))
        .unwrap_or_else(|| panic!("no line for the ERP session: {stderr}"));
    assert!(
        listed.contains("idle in transaction since"),
        "the session's state and since when: {listed}"
    );
    // While it waits: who holds the tables (the JSON progress lines).
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("\"phase\":\"wait_lock\"") && l.contains("erp-web")),
        "the wait names who holds it: {stderr}"
    );
    // The one-line error: the session, and nothing changed.
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(error.contains("nothing was changed"), "{error}");
    assert!(
        error.contains("erp-web"),
        "the error names the session: {error}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "in_use");
    assert!(
        // 5 s of waiting, after a safety backup of a small database: within seconds, not the
        // app's 60 s (the session itself never ends until the test ends it).
        took < Duration::from_secs(30),
        "it gave up after its 5 s instead of waiting for the session ({took:?})"
    );
    assert!(
        erp.try_wait().unwrap().is_none(),
        "the ERP session is left alone"
    );
    assert_eq!(db.checksums(), before, "the database is untouched");

    // The offered action: end the sessions, then the restore completes.
    let done = env.json(&[
        "--db",
        &db.url(),
        "restore",
        &id,
        "--yes",
        "--end-sessions",
        "--lock-timeout",
        "30",
    ]);
    assert_eq!(done["rows"], b["rows"]);
    assert_eq!(db.checksums(), backed_up, "restored");
    // Its connection was ended (psql notices only at its next command).
    let left = psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'erp-web'",
            db.name
        ),
    );
    assert_eq!(left.trim(), "0", "the ERP session was ended");
    erp.kill().unwrap();
    let _ = erp.wait();
}

#[test]
fn ending_sessions_needs_the_permission_and_says_which() {
    let db = TestDb::new("sessions_perm");
    db.load(&school_sql(), &[]);
    // A login that may restore (it may write the tables and turn off triggers) but is no
    // superuser and not in pg_signal_backend.
    let role = format!("{}_restorer", db.name);
    psql(
        "postgres",
        &format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; GRANT SET ON PARAMETER session_replication_role TO {role}"),
    );
    db.sql(&format!(
        "GRANT USAGE ON SCHEMA public, finance TO {role}; \
         GRANT ALL ON ALL TABLES IN SCHEMA public, finance TO {role}; \
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public, finance TO {role}"
    ));
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let id = b["id"].as_str().unwrap().to_string();
    let restorer_url = support::url_for(&role, &db.name);
    let before = db.checksums();
    // A superuser's session (the ERP connected as postgres): this login may not end it.
    let mut erp = idle_in_transaction(&db);
    let (code, error) = env.fails(&[
        "--db",
        &restorer_url,
        "restore",
        &id,
        "--yes",
        "--end-sessions",
        "--no-safety-backup",
    ]);
    erp.kill().unwrap();
    let _ = erp.wait();
    assert_eq!(code, "db_auth", "{error}");
    assert!(error.contains("pg_signal_backend"), "{error}");
    assert!(error.contains("nothing was changed"), "{error}");
    assert_eq!(db.checksums(), before);
    drop(db);
    psql(
        "postgres",
        &format!("REVOKE SET ON PARAMETER session_replication_role FROM {role}; DROP ROLE IF EXISTS {role}"),
    );
}
