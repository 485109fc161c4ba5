//! Failure emails through a real SMTP server on 127.0.0.1 (PyPI's aiosmtpd, writing a maildir).
#![allow(clippy::unwrap_used)]

#[path = "support/smtp.rs"]
mod smtp;
mod support;

use smtp::SmtpServer;
use support::Env;

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

/// A vault (catalog and backup folder) in `dir`, for the engine-level email tests.
async fn vault_in(dir: &std::path::Path) -> schoolvault_engine::jobs::Vault {
    use schoolvault_engine::keychain::{Keys, OsKeychain};
    let keys = Keys::new(None, Box::new(OsKeychain)).unwrap();
    schoolvault_engine::jobs::Vault::open(dir.join("backups"), &dir.join("catalog.sqlite"), keys)
        .await
        .unwrap()
}

/// A catalog entry of a complete backup (no file behind it), for the injected-clock tests.
fn backup_record(
    dir: &std::path::Path,
    id: &str,
    created_at: chrono::DateTime<chrono::Utc>,
    kind: schoolvault_engine::archive::BackupKind,
    size: u64,
) -> schoolvault_engine::catalog::BackupRecord {
    schoolvault_engine::catalog::BackupRecord {
        id: id.into(),
        path: dir.join(format!("{id}.svb")),
        created_at,
        kind,
        status: schoolvault_engine::catalog::BackupStatus::Complete,
        size,
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
    }
}

/// Plain SMTP to 127.0.0.1:`port`.
fn plain_smtp(port: u16, to: &[&str]) -> schoolvault_engine::notify::SmtpSettings {
    schoolvault_engine::notify::SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: schoolvault_engine::notify::Security::Plain,
        user: None,
        password: None,
        from: "schoolvault@school.example".into(),
        to: to.iter().map(|a| a.to_string()).collect(),
    }
}

#[test]
fn a_failed_backup_emails_each_administrator_once() {
    let env = Env::new();
    env.installed_before();
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
    // The weekly report goes to them too, from the remembered list (no database query).
    let mut cmd = env.cmd();
    with_smtp(&mut cmd, smtp.port);
    let out = cmd
        .env("SCHOOLVAULT_NOTIFY_TO", "it@school.example")
        .env("SCHOOLVAULT_NOTIFY_DB_ADMINS", "1")
        .args([
            "--db",
            "postgres://postgres@127.0.0.1:1/erp",
            "notify",
            "digest",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<String> = smtp
        .messages()
        .into_iter()
        .filter(|m| m.contains("weekly report"))
        .collect();
    assert_eq!(reports.len(), 3, "it@ and the two administrators");
    assert!(reports.iter().any(|m| m.contains("To: office@")));
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
    use schoolvault_engine::jobs;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let vault = vault_in(dir.path()).await;
        let now = Utc::now();
        let record = |id: &str, age: Days, kind: BackupKind| {
            backup_record(dir.path(), id, now - age, kind, 1)
        };
        vault
            .catalog
            .arrange_backup(&record("old", Days::days(3), BackupKind::Scheduled))
            .await
            .unwrap();
        // A recent safety backup does not count as a backup of the school.
        vault
            .catalog
            .arrange_backup(&record("safety", Days::hours(1), BackupKind::Safety))
            .await
            .unwrap();
        let settings = plain_smtp(smtp.port, &["head@school.example", "it@school.example"]);
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
            .arrange_backup(&record("fresh", Days::hours(2), BackupKind::Manual))
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
    // The weekly report on demand (the schedule sends it on Mondays when it is on).
    let sent = env.json(&["notify", "digest"]);
    assert_eq!(sent["sent"], 1, "{sent}");
    assert!(
        smtp.messages()
            .iter()
            .any(|m| m.contains("Subject: SchoolVault weekly report")),
        "the report arrived"
    );
}

#[test]
fn the_weekly_report_goes_out_once_a_week_on_monday_morning() {
    use chrono::{DateTime, Duration as Days, TimeZone, Utc};
    use schoolvault_engine::archive::BackupKind;
    use schoolvault_engine::catalog::RunRecord;
    use schoolvault_engine::jobs;

    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let vault = vault_in(dir.path()).await;
        let settings = plain_smtp(smtp.port, &["head@school.example", "it@school.example"]);
        // The injected clock: Wednesday 25 November 2026, noon (UTC).
        let wednesday: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let monday = Utc.with_ymd_and_hms(2026, 11, 30, 7, 30, 0).unwrap();
        let digest =
            |now| jobs::weekly_digest(&vault, &settings, "school", Some("UTC"), now, false);
        assert_eq!(
            digest(wednesday).await.unwrap(),
            None,
            "just turned on: the first report comes on Monday"
        );
        assert_eq!(digest(wednesday + Days::days(2)).await.unwrap(), None);

        // The week: one good backup (kept) and one failure.
        let run = |at: DateTime<Utc>, outcome: &str, message: Option<&str>| RunRecord {
            started_at: at,
            finished_at: at,
            operation: schoolvault_engine::catalog::Operation::Backup,
            kind: Some(schoolvault_engine::archive::BackupKind::Scheduled),
            outcome: if outcome == "success" {
                schoolvault_engine::catalog::Outcome::Success
            } else {
                schoolvault_engine::catalog::Outcome::Failure
            },
            error_code: message.map(|_| "db_unreachable".into()),
            message: message.map(str::to_string),
            backup_id: None,
        };
        vault
            .catalog
            .arrange_run(&run(monday - Days::days(2), "success", None))
            .await
            .unwrap();
        vault
            .catalog
            .arrange_run(&run(
                monday - Days::days(1),
                "failure",
                Some("Cannot reach the database server 127.0.0.1:1 (connection refused)."),
            ))
            .await
            .unwrap();
        vault
            .catalog
            .arrange_backup(&backup_record(
                dir.path(),
                "20261128-020000-abcd",
                monday - Days::days(2),
                BackupKind::Scheduled,
                12_500_000,
            ))
            .await
            .unwrap();

        assert_eq!(
            digest(monday - Days::hours(1)).await.unwrap(),
            None,
            "not before Monday 07:00"
        );
        assert_eq!(
            digest(monday).await.unwrap(),
            Some(2),
            "Monday: one to each administrator"
        );
        assert_eq!(
            digest(monday + Days::hours(12)).await.unwrap(),
            None,
            "once a week, not at every look"
        );
        assert_eq!(
            digest(monday + Days::days(7)).await.unwrap(),
            Some(2),
            "the next Monday"
        );
        let runs = vault.catalog.runs(20).await.unwrap();
        assert_eq!(
            runs.iter()
                .filter(|r| r.operation == "digest" && r.outcome == "success")
                .count(),
            2,
            "{runs:?}"
        );
    });
    // Unfold the headers and the quoted-printable lines.
    let messages: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| m.replace("=\n", "").replace("\n ", " "))
        .collect();
    assert_eq!(messages.len(), 4);
    let first = messages
        .iter()
        .find(|m| m.contains("1 backup(s) succeeded, 1 FAILED"))
        .unwrap_or_else(|| panic!("{messages:?}"));
    assert!(
        first.contains("Cannot reach the database server"),
        "{first}"
    );
    assert!(first.contains("20261128-020000-abcd"), "{first}");
    assert!(first.contains("12.5 MB"), "{first}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("weekly report for school: NO successful backup")),
        "the second week had none: {messages:?}"
    );
}

#[test]
fn a_wrong_database_password_is_emailed_with_the_error_and_the_backup_type() {
    let cluster = support::PasswordCluster::start();
    let env = Env::new();
    env.installed_before();
    let smtp = SmtpServer::start(env.dir.path());
    let mut cmd = env.cmd();
    with_smtp(&mut cmd, smtp.port);
    let out = cmd
        .args([
            "--json",
            "--db",
            &format!(
                "postgres://postgres:wrong-password@127.0.0.1:{}/postgres",
                cluster.port
            ),
            "schedule",
            "run-due",
            "--cron",
            "* * * * *",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "db_auth", "{doc}");
    let mails: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| m.replace("=\n", "").replace("\n ", " "))
        .collect();
    assert_eq!(mails.len(), 2, "one email to each administrator");
    for m in &mails {
        assert!(
            m.contains("Subject: SchoolVault: scheduled backup of"),
            "{m}"
        );
        assert!(m.contains("rejected the password"), "{m}");
        assert!(m.contains("Backup type: scheduled"), "{m}");
        assert!(!m.contains("wrong-password"), "the password leaked: {m}");
    }
}

#[test]
fn an_alert_that_cannot_be_sent_is_tried_again_hourly_not_at_every_look() {
    use chrono::{Duration as Days, Utc};
    use schoolvault_engine::archive::BackupKind;
    use schoolvault_engine::jobs;

    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let vault = vault_in(dir.path()).await;
        let now = Utc::now();
        vault
            .catalog
            .arrange_backup(&backup_record(
                dir.path(),
                "old",
                now - Days::days(3),
                BackupKind::Scheduled,
                1,
            ))
            .await
            .unwrap();
        // Nothing listens on port 9: the mail cannot go.
        let settings = plain_smtp(9, &["it@school.example"]);
        let max = Days::hours(48);
        let alert = |at| jobs::stale_alert(&vault, &settings, "school", max, at);
        assert!(alert(now).await.is_err());
        for minutes in [1, 30, 59] {
            assert_eq!(alert(now + Days::minutes(minutes)).await.unwrap(), None);
        }
        assert!(
            alert(now + Days::minutes(61)).await.is_err(),
            "an hour later"
        );
        let failed = vault
            .catalog
            .runs(50)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.operation == "alert" && r.outcome == "failure")
            .count();
        assert_eq!(failed, 2, "each attempt is in the history, and only those");
    });
}

#[test]
fn a_failed_weekly_test_restore_is_emailed_and_shown_on_the_backup() {
    // Data the scratch database refuses: a domain constraint added NOT VALID after the row,
    // which the schema capture re-creates before the data is loaded.
    let db = support::TestDb::new("badrestore");
    db.sql(
        "CREATE DOMAIN posint AS int; CREATE TABLE t (id int PRIMARY KEY, v posint); \
         INSERT INTO t VALUES (1, -1); \
         ALTER DOMAIN posint ADD CONSTRAINT pos CHECK (VALUE > 0) NOT VALID",
    );
    let env = Env::new();
    env.installed_before();
    let smtp = SmtpServer::start(env.dir.path());
    let mut cmd = env.cmd();
    with_smtp(&mut cmd, smtp.port);
    let out = cmd
        .args(["--json", "--db", &db.url(), "schedule", "run-due"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The backup itself succeeded; the test restore's failure is said and emailed.
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("weekly test restore failed"), "{stderr}");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "one email to each administrator");
    for m in &mails {
        assert!(m.contains("weekly test restore"), "{m}");
        assert!(m.contains("FAILED"), "{m}");
        assert!(m.contains("posint") || m.contains("pos"), "{m}");
    }
    let list = env.json(&["list"]);
    assert_eq!(list[0]["status"], "complete");
    assert_eq!(list[0]["verify_ok"], false, "{list}");
    assert!(
        list[0]["verify_message"]
            .as_str()
            .unwrap()
            .starts_with("test restore failed"),
        "{list}"
    );
    let scratch = format!(
        "schoolvault_verify_{}",
        list[0]["id"].as_str().unwrap().replace('-', "_")
    )
    .to_lowercase();
    assert_eq!(
        support::psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch}'")
        ),
        "0",
        "the scratch database is dropped after a failure too"
    );
}

#[test]
fn a_destination_behind_for_the_stale_time_is_emailed_once_per_episode_and_reported_weekly() {
    use chrono::{Duration as Days, Utc};
    use schoolvault_engine::catalog::{CopyRecord, CopyState};
    use schoolvault_engine::jobs::{self, Offsite};
    use schoolvault_engine::offsite::DestinationSettings;

    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let vault = vault_in(dir.path()).await;
        let settings = plain_smtp(smtp.port, &["head@school.example"]);
        let nas = DestinationSettings {
            name: "nas".into(),
            url: dir.path().join("nas").display().to_string(),
            enabled: true,
            access_key_id: None,
            secret_saved: false,
            retention: None,
            bandwidth_kbps: None,
            lock_days: None,
        };
        let offsite = Offsite {
            destinations: vec![nas],
            keychain: std::sync::Arc::new(schoolvault_engine::keychain::OsKeychain),
            local_policy: schoolvault_engine::config::RetentionSettings::default().policy(),
        };
        let now = Utc::now();
        let max = Days::hours(48);
        let copy = |id: &str, state: CopyState, since| CopyRecord {
            backup_id: id.into(),
            destination: "nas".into(),
            state,
            error_code: Some("destination_unreachable".into()),
            error: Some("Destination nas: the folder /mnt/nas is not there.".into()),
            attempts: 3,
            since,
            next_try_at: None,
            size: None,
            tag: None,
        };
        // Waiting for a day: not yet.
        vault
            .catalog
            .arrange_copy(&copy("a", CopyState::Pending, now - Days::hours(24)))
            .await
            .unwrap();
        let alert = |at| jobs::destination_alert(&vault, &settings, &offsite, max, at);
        assert!(alert(now).await.unwrap().is_empty());
        // Waiting for three days: one alert, once.
        assert_eq!(alert(now + Days::hours(48)).await.unwrap(), vec!["nas"]);
        assert!(alert(now + Days::hours(50)).await.unwrap().is_empty());
        // Up to date again, then behind again: a new episode, a new alert.
        vault
            .catalog
            .arrange_copy(&copy("a", CopyState::Done, now))
            .await
            .unwrap();
        assert!(alert(now + Days::hours(60)).await.unwrap().is_empty());
        vault
            .catalog
            .arrange_copy(&copy("b", CopyState::Failed, now + Days::hours(61)))
            .await
            .unwrap();
        assert_eq!(alert(now + Days::hours(200)).await.unwrap(), vec!["nas"]);
        // The weekly report says where each destination stands.
        jobs::weekly_digest(&vault, &settings, "school", Some("UTC"), now, true)
            .await
            .unwrap();
    });
    let messages = smtp.messages();
    let alerts: Vec<&String> = messages
        .iter()
        .filter(|m| m.contains("no offsite copy to nas"))
        .collect();
    assert_eq!(alerts.len(), 2, "{messages:?}");
    assert!(alerts[0].contains("is not there"), "{}", alerts[0]);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Offsite copies at nas: 1 copies, 1 WAITING since")),
        "{messages:?}"
    );
}
