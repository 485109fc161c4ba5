//! Failure emails through a real SMTP server on 127.0.0.1 (PyPI's aiosmtpd, writing a maildir).
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Env;

struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl SmtpServer {
    fn start(dir: &Path) -> SmtpServer {
        let port = 30000 + rand::random::<u16>() % 20000;
        let maildir = dir.join("maildir");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox", maildir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is missing (make test installs it)");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the SMTP server did not start: install it with `python3 -m pip install aiosmtpd` (make test does)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        SmtpServer {
            child,
            port,
            maildir,
        }
    }

    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in rd {
                    out.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
                }
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn with_smtp(cmd: &mut assert_cmd::Command, port: u16) {
    cmd.env("SCHOOLVAULT_SMTP_HOST", "127.0.0.1")
        .env("SCHOOLVAULT_SMTP_PORT", port.to_string())
        .env("SCHOOLVAULT_SMTP_SECURITY", "plain")
        .env("SCHOOLVAULT_NOTIFY_FROM", "schoolvault@school.example")
        .env(
            "SCHOOLVAULT_NOTIFY_TO",
            "head@school.example, it@school.example",
        );
}

#[test]
fn a_failed_backup_emails_each_administrator_once() {
    let env = Env::new();
    let smtp = SmtpServer::start(env.dir.path());
    let mut cmd = env.cmd();
    with_smtp(&mut cmd, smtp.port);
    let out = cmd
        .args([
            "--json",
            "--db",
            "postgres://postgres@127.0.0.1:1/erp",
            "backup",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["error"]["code"], "db_unreachable",
        "the backup's own error is reported"
    );
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "one email to each administrator");
    for m in &mails {
        assert!(m.contains("FAILED"), "{m}");
        assert!(m.contains("Cannot reach the database server"), "{m}");
        assert!(m.contains("manual"), "{m}");
        assert!(m.contains("text/html") && m.contains("text/plain"), "{m}");
    }
    assert!(mails.iter().any(|m| m.contains("head@school.example")));
    assert!(mails.iter().any(|m| m.contains("it@school.example")));
    // The test email.
    let mut cmd = env.cmd();
    with_smtp(&mut cmd, smtp.port);
    cmd.args(["notify", "test"]).assert().success();
    assert_eq!(smtp.messages().len(), 4);
    // With email off, a failure sends nothing.
    env.fails(&["--db", "postgres://postgres@127.0.0.1:1/erp", "backup"]);
    assert_eq!(smtp.messages().len(), 4);
}

#[test]
fn an_smtp_server_that_refuses_leaves_the_failure_recorded() {
    let env = Env::new();
    let mut cmd = env.cmd();
    // Nothing listens on port 9 here: the mail cannot go.
    with_smtp(&mut cmd, 9);
    let out = cmd
        .args([
            "--json",
            "--db",
            "postgres://postgres@127.0.0.1:1/erp",
            "backup",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["error"]["code"], "db_unreachable",
        "the email's failure does not hide the backup's"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not be sent"));
    let history = env.json(&["history"]);
    let ops: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(ops.contains(&("backup", "failure")), "{ops:?}");
    assert!(ops.contains(&("notify", "failure")), "{ops:?}");
}

#[test]
fn the_school_databases_administrators_are_emailed_and_remembered_for_when_it_is_down() {
    let db = support::TestDb::new("admins");
    db.sql(
        "CREATE TABLE \"User\" (id text PRIMARY KEY, email text, role text NOT NULL, \"isActive\" boolean NOT NULL); \
         INSERT INTO \"User\" VALUES ('1', 'principal@school.example', 'SUPER_ADMIN', true), \
           ('2', 'office@school.example', 'ADMIN', true), ('3', 'former@school.example', 'ADMIN', false), \
           ('4', 'teacher@school.example', 'TEACHER', true); \
         CREATE TABLE secrets (id int);",
    );
    // The backup user may read "User" but not `secrets`: the backup fails, the database is up.
    let role = format!("sv_mail_{:x}", rand::random::<u32>());
    db.sql(&format!(
        "CREATE ROLE {role} LOGIN; GRANT SELECT ON \"User\" TO {role}"
    ));
    let env = Env::new();
    let smtp = SmtpServer::start(env.dir.path());
    let run = |url: &str| {
        let mut cmd = env.cmd();
        with_smtp(&mut cmd, smtp.port);
        cmd.env("SCHOOLVAULT_NOTIFY_TO", "it@school.example")
            .env("SCHOOLVAULT_NOTIFY_DB_ADMINS", "1")
            .args(["--db", url, "backup"])
            .output()
            .unwrap()
    };
    let out = run(&support::url_for(&role, &db.name));
    support::psql(
        &db.name,
        &format!("REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}; DROP ROLE {role}"),
    );
    assert!(!out.status.success());
    let mails = smtp.messages();
    assert_eq!(mails.len(), 3, "it@ plus the two active administrators");
    for who in ["it@", "principal@", "office@"] {
        assert!(
            mails.iter().any(|m| m.contains(&format!("To: {who}"))),
            "{who}"
        );
    }
    assert!(!mails
        .iter()
        .any(|m| m.contains("former@") || m.contains("teacher@")));
    // The database is down: the remembered list is used.
    let out = run("postgres://postgres@127.0.0.1:1/erp");
    assert!(!out.status.success());
    let mails = smtp.messages();
    assert_eq!(
        mails.len(),
        6,
        "the same three again, from the remembered list"
    );
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.contains("To: principal@"))
            .count(),
        2
    );
}

#[test]
fn the_settings_file_sets_up_email_and_the_stale_alert_is_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path());
    let env = Env::new();
    // Email set up in the settings file shared with the app (no SCHOOLVAULT_SMTP_* variables).
    let config = env.dir.path().join(".config/schoolvault/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
             from = \"schoolvault@school.example\"\nto = [\"it@school.example\"]\n",
            smtp.port
        ),
    )
    .unwrap();
    let sent = env.json(&["notify", "test"]);
    assert_eq!(sent["sent"], 1, "{sent}");
    assert_eq!(smtp.messages().len(), 1);

    // The stale alert, with an injected clock: the newest good backup is three days old.
    use chrono::{Duration as Days, Utc};
    use schoolvault_engine::archive::BackupKind;
    use schoolvault_engine::catalog::BackupRecord;
    use schoolvault_engine::jobs::{self, Vault};
    use schoolvault_engine::keychain::{Keys, OsKeychain};
    use schoolvault_engine::notify::{Security, SmtpSettings};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let keys = Keys::new(None, Box::new(OsKeychain)).unwrap();
        let vault = Vault::open(
            dir.path().join("backups"),
            &dir.path().join("catalog.sqlite"),
            keys,
        )
        .await
        .unwrap();
        let now = Utc::now();
        let record = |id: &str, age: Days, kind: BackupKind| BackupRecord {
            id: id.into(),
            path: dir.path().join(format!("{id}.svb")),
            created_at: now - age,
            kind,
            status: "complete".into(),
            size: 1,
            sha256: String::new(),
            key_fingerprint: String::new(),
            engine: "postgresql".into(),
            server_version: "15".into(),
            database: "school".into(),
            tables: 1,
            rows: 1,
            duration_ms: 1,
            verified_at: None,
            verify_ok: None,
            verify_message: None,
        };
        vault
            .catalog
            .put(&record("old", Days::days(3), BackupKind::Scheduled))
            .await
            .unwrap();
        // A recent safety backup does not count as a backup of the school.
        vault
            .catalog
            .put(&record("safety", Days::hours(1), BackupKind::Safety))
            .await
            .unwrap();
        let settings = SmtpSettings {
            host: "127.0.0.1".into(),
            port: smtp.port,
            security: Security::Plain,
            user: None,
            password: None,
            from: "schoolvault@school.example".into(),
            to: vec!["head@school.example".into(), "it@school.example".into()],
        };
        let max = Days::hours(48);
        let first = jobs::stale_alert(&vault, &settings, "school", max, now)
            .await
            .unwrap();
        assert_eq!(first, Some(2), "one email per administrator");
        let again = jobs::stale_alert(&vault, &settings, "school", max, now + Days::hours(5))
            .await
            .unwrap();
        assert_eq!(again, None, "sent once, not at every start");
        // A backup that succeeded two hours ago: nothing is stale.
        vault
            .catalog
            .put(&record("fresh", Days::hours(2), BackupKind::Manual))
            .await
            .unwrap();
        assert_eq!(
            jobs::stale_alert(&vault, &settings, "school", max, now)
                .await
                .unwrap(),
            None
        );
        // Stale again later: a new alert, for the new last success.
        let later = now + Days::hours(60);
        assert_eq!(
            jobs::stale_alert(&vault, &settings, "school", max, later)
                .await
                .unwrap(),
            Some(2)
        );
        let runs = vault.catalog.runs(10).await.unwrap();
        assert!(
            runs.iter()
                .any(|r| r.operation == "alert" && r.outcome == "success"),
            "{runs:?}"
        );
    });
    let messages = smtp.messages();
    assert_eq!(
        messages.len(),
        5,
        "the test email and two alerts to two administrators"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("no backup of school for 72 hours")),
        "{messages:?}"
    );
}
