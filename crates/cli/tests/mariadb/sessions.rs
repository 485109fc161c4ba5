//! The school is still connected to MariaDB: a replace restore while an ERP session keeps a
//! transaction open on a restored table. The CLI names that session before it starts and
//! while it waits for the swap; with `--lock-timeout` it gives up within seconds, the session
//! in its message and the live database untouched (triggers too); with `--end-sessions` the
//! restore completes.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Env;
use crate::*;

/// A `mariadb` client session of the "ERP" (user `erp_web`) that read `pupils` in a transaction
/// and keeps it open, idle, until it is killed or its connection ended.
// The child is returned to the test, which kills and waits for it.
#[allow(clippy::zombie_processes)]
fn idle_in_transaction(db: &MyDb) -> Child {
    mariadb(
        None,
        &format!(
            "CREATE USER IF NOT EXISTS 'erp_web'@'%'; GRANT ALL ON `{}`.* TO 'erp_web'@'%'",
            db.name
        ),
    );
    let mut child = Command::new("mariadb")
        .args([
            "--batch",
            "--protocol=TCP",
            "-h",
            &my_host(),
            "-P",
            &my_port(),
        ])
        .args(["-u", "erp_web", &db.name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the mariadb client is needed: make test installs it");
    let stdin = child.stdin.as_mut().unwrap();
    stdin
        .write_all(
            b"BEGIN; SELECT COUNT(*) FROM pupils; UPDATE marks SET mark = mark WHERE id = 1;\n",
        )
        .unwrap();
    stdin.flush().unwrap();
    let start = Instant::now();
    loop {
        let open = mariadb(
            None,
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p \
             ON p.ID = t.trx_mysql_thread_id WHERE p.USER = 'erp_web' AND p.COMMAND = 'Sleep'",
        );
        if open.trim() == "1" {
            return child;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the ERP session did not open its transaction: {open:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_mariadb_replace_restore_names_the_session_holding_a_table_and_gives_up_or_ends_it() {
    let db = MyDb::new("sessions");
    school(&db);
    let env = Env::new();
    let made = env.json(&["--db", &db.url(), "backup"]);
    let id = made["id"].as_str().unwrap().to_string();
    let backed_up = all_rows(&db);
    db.sql("UPDATE pupils SET name = 'changed after the backup' WHERE id <= 5");
    let before = all_rows(&db);
    let schema_before = schema_of(&db);
    assert_ne!(before, backed_up);

    let mut erp = idle_in_transaction(&db);
    let t0 = Instant::now();
    let out = env
        .std_cmd()
        .args(["--json", "--db", &db.url(), "restore", &id, "--yes"])
        .args(["--lock-timeout", "3"])
        .output()
        .unwrap();
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the restore must give up: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("1 other session is connected to"),
        "the session is listed first: {stderr}"
    );
    let listed = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("pid ") && l.contains("user erp_web"))
        .unwrap_or_else(|| panic!("no line for the ERP session: {stderr}"));
    assert!(
        listed.contains("idle in transaction since"),
        "the session's state and since when: {listed}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("\"phase\":\"wait_lock\"") && l.contains("erp_web")),
        "the wait names who holds it: {stderr}"
    );
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(error.contains("nothing was changed"), "{error}");
    assert!(
        error.contains("erp_web"),
        "the error names the session: {error}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "in_use");
    assert!(
        took < Duration::from_secs(60),
        "it gave up instead of waiting for the session ({took:?})"
    );
    assert!(
        erp.try_wait().unwrap().is_none(),
        "the ERP session is left alone"
    );
    // Untouched: rows, schema, triggers; no scratch or undo database left.
    assert_eq!(all_rows(&db), before);
    assert_eq!(schema_of(&db), schema_before);
    assert!(
        mariadb(None, &format!("SHOW DATABASES LIKE '{}\\_sv%'", db.name))
            .trim()
            .is_empty()
    );

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
    assert_eq!(done["rows"], made["rows"]);
    assert_eq!(all_rows(&db), backed_up, "restored");
    let left = mariadb(
        None,
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'erp_web'",
    );
    assert_eq!(left.trim(), "0", "the ERP session was ended");
    erp.kill().unwrap();
    let _ = erp.wait();
    mariadb(None, "DROP USER IF EXISTS 'erp_web'@'%'");
}
