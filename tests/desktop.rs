//! The desktop app end to end: the real `schoolvault-app` (built with its UI) driven through
//! tauri-driver and WebKitWebDriver, against the real PostgreSQL and a real gnome-keyring.
//! Set up the database and the key through the first-run screens, back up with the button,
//! change a row, restore through the modal (typing the name) and find the row back in the
//! database; restore from a picked file; a wrong password in Settings shows the mapped
//! message; a schedule a minute ahead makes a "scheduled" backup. Screenshots of each step go
//! to target/screenshots/app-*.png.
//!
//! Run by `make test` (`make e2e`) under `xvfb-run -a dbus-run-session` with gnome-keyring
//! unlocked; it needs `tauri-driver` (cargo install tauri-driver --version 2.1.0 --locked) and
//! WebKitWebDriver (Debian's webkit2gtk-driver). Built only with `--features desktop-e2e`.
#![allow(clippy::unwrap_used)]

// The PostgreSQL helpers the CLI's end-to-end tests use (not their binary-bound part).
#[path = "../crates/cli/tests/support/servers.rs"]
mod servers;
#[path = "../crates/cli/tests/support/db.rs"]
mod support;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use support::{pg_host, pg_port, school_sql, PasswordCluster, TestDb};

fn app_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SCHOOLVAULT_APP_BIN") {
        return p.into();
    }
    // Cargo names only its own package's binaries to a test; `make test` builds the app first
    // (`make app`), into target/<profile>/, beside this test's deps/ folder.
    let exe = std::env::current_exe().unwrap();
    let app = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(format!("schoolvault-app{}", std::env::consts::EXE_SUFFIX)))
        .unwrap();
    assert!(
        app.exists(),
        "{} is missing: build it with `make app` (npm run build in ui/, then cargo build -p schoolvault-app)",
        app.display()
    );
    app
}

/// tauri-driver in a process group of its own: dropping it stops the whole group (tauri-driver,
/// WebKitWebDriver and the app), so nothing outlives the test.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shots_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots_dir().join(format!("app-{name}.png")), png).unwrap();
}

async fn wait_for(c: &Client, css: &str, secs: u64) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if e.is_displayed().await.unwrap_or(false) {
                return e;
            }
        }
        if Instant::now() > deadline {
            shot(c, "timeout").await;
            let body = c
                .find(Locator::Css("body"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap_or_default();
            panic!("{css} did not appear within {secs} s; the window shows:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_text(c: &Client, css: &str, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(needle) {
            return text;
        }
        if Instant::now() > deadline {
            shot(c, "timeout").await;
            panic!("{css} did not say {needle:?} within {secs} s; it says {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match wait_for(c, css, 30).await.click().await {
            Ok(()) => return,
            // The window redrew the element between finding and clicking it (a status refresh
            // after saving settings): find it again.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{css} could not be clicked within 30 s: {e}"),
        }
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = wait_for(c, css, 30).await;
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
}

async fn wait_count(c: &Client, css: &str, at_least: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while count(c, css).await < at_least {
        if Instant::now() > deadline {
            shot(c, "timeout").await;
            panic!("fewer than {at_least} of {css} after {secs} s");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Wait until nothing matches `css`; fail saying `what` after `secs` seconds.
async fn wait_none(c: &Client, css: &str, what: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let n = count(c, css).await;
        if n == 0 {
            return;
        }
        if Instant::now() > deadline {
            shot(c, "timeout").await;
            panic!("{what}: {n} of {css} still there after {secs} s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_app_backs_up_and_restores_through_its_window() {
    let db = TestDb::new("e2e");
    db.load(&school_sql(), &[]);
    let home = tempfile::tempdir().unwrap();
    let picked = home.path().join("picked.svb");
    let recovery = home.path().join("recovery-key.txt");
    let driver_port = 4444 + (rand::random::<u16>() % 1000) * 2;

    let driver = Command::new("tauri-driver")
        .process_group(0)
        .args(["--port", &driver_port.to_string(), "--native-port", &(driver_port + 1).to_string()])
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("SCHOOLVAULT_PICK_FILE", &picked)
        .env("SCHOOLVAULT_SAVE_FILE", &recovery)
        .env_remove("BACKUP_ENCRYPTION_KEY")
        .env_remove("SCHOOLVAULT_CONFIG")
        .env_remove("SCHOOLVAULT_DIR")
        .env_remove("SCHOOLVAULT_CATALOG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("tauri-driver cannot be started ({e}): install it with `cargo install tauri-driver --version 2.1.0 --locked` (make setup does)")
        });
    let _driver = Driver(driver);

    let mut caps = serde_json::Map::new();
    caps.insert(
        "tauri:options".into(),
        serde_json::json!({ "application": app_bin() }),
    );
    caps.insert("browserName".into(), serde_json::json!("wry"));
    let url = format!("http://127.0.0.1:{driver_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = loop {
        match ClientBuilder::native().capabilities(caps.clone()).connect(&url).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("no WebDriver session through tauri-driver at {url}: {e} (is WebKitWebDriver installed? Debian's webkit2gtk-driver)"),
        }
    };

    // 1. First run: the connection, tested, then the key with its recovery copy.
    wait_for(&c, "[data-testid=db-name]", 60).await;
    assert_eq!(c.title().await.unwrap(), "SchoolVault");
    fill(&c, "[data-testid=db-host]", &pg_host()).await;
    fill(&c, "[data-testid=db-port]", &pg_port()).await;
    fill(&c, "[data-testid=db-name]", &db.name).await;
    fill(&c, "[data-testid=db-user]", "postgres").await;
    click(&c, "[data-testid=test-connection]").await;
    wait_text(&c, "[data-testid=connection-result]", "Connected to", 30).await;
    shot(&c, "1-setup-database").await;
    click(&c, "[data-testid=save-connection]").await;
    click(&c, "[data-testid=key-generate]").await;
    let fingerprint = wait_for(&c, "[data-testid=fingerprint]", 30)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(fingerprint.len(), 16, "{fingerprint}");
    click(&c, "[data-testid=key-save-recovery]").await;
    wait_text(&c, "[data-testid=recovery-saved]", "Saved to", 30).await;
    let sheet = std::fs::read_to_string(&recovery).unwrap();
    assert!(
        sheet.contains(&fingerprint),
        "the recovery copy names the key"
    );
    shot(&c, "2-setup-key").await;
    click(&c, "[data-testid=setup-done]").await;

    // The settings file has the connection and no password or key.
    let config =
        std::fs::read_to_string(home.path().join("config/schoolvault/config.toml")).unwrap();
    assert!(config.contains(&db.name), "{config}");
    assert!(!config.contains(&sheet.lines().find(|l| l.contains("Key (64 hex)")).unwrap()[18..]));

    // 2. Back up with the button; the backup appears in the list.
    wait_for(&c, "[data-testid=empty]", 30).await;
    shot(&c, "3-backups-empty").await;
    click(&c, "[data-testid=backup-now]").await;
    wait_count(&c, "[data-testid=backup-row]", 1, 120).await;
    shot(&c, "4-backup-done").await;

    // 3. Change a row, restore through the modal, and find it back.
    let original = db.sql("SELECT name FROM users WHERE id = 1");
    db.sql("UPDATE users SET name = 'Changed by the test' WHERE id = 1");
    click(&c, "[data-testid=backup-row] [data-testid=restore]").await;
    let confirm = wait_for(&c, "[data-testid=restore-confirm]", 60).await;
    assert!(
        !confirm.is_enabled().await.unwrap(),
        "disabled before the name is typed"
    );
    fill(
        &c,
        "[data-testid=confirm-name]",
        &db.name[..db.name.len() - 1],
    )
    .await;
    assert!(
        !confirm.is_enabled().await.unwrap(),
        "disabled for a wrong name"
    );
    fill(&c, "[data-testid=confirm-name]", &db.name).await;
    assert!(confirm.is_enabled().await.unwrap());
    shot(&c, "5-restore-modal").await;
    confirm.click().await.unwrap();
    wait_text(&c, "[data-testid=restore-result]", "restored", 120).await;
    shot(&c, "6-restore-done").await;
    assert_eq!(db.sql("SELECT name FROM users WHERE id = 1"), original);
    click(&c, ".modal button.primary").await;
    // The safety backup is listed too.
    wait_count(&c, "[data-testid=backup-row][data-kind=safety]", 1, 30).await;

    // 4. Restore from a picked file (the dialog's answer is injected).
    let file = std::fs::read_dir(home.path().join("data/schoolvault/backups"))
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.extension().is_some_and(|e| e == "svb"))
        .unwrap();
    std::fs::copy(&file, &picked).unwrap();
    click(&c, "[data-testid=restore-file]").await;
    wait_for(&c, "[data-testid=preview-tables]", 60).await;
    shot(&c, "7-restore-from-file").await;
    // Cancel (Esc is covered by the browser tests).
    click(&c, ".modal button.secondary").await;
    wait_none(&c, "[role=dialog]", "Cancel closes the modal", 10).await;

    // 5. A schedule that is due now: the app runs it and lists a "scheduled" backup.
    click(&c, "[data-testid=nav-settings]").await;
    fill(&c, "[data-testid=cron]", "* * * * *").await;
    wait_count(&c, "[data-testid=next-runs] li", 5, 30).await;
    shot(&c, "8-settings").await;
    click(&c, "[data-testid=save-settings]").await;
    wait_for(&c, "[data-testid=toast]", 30).await;
    click(&c, "[data-testid=nav-backups]").await;
    let deadline = Instant::now() + Duration::from_secs(150);
    while count(&c, "[data-testid=backup-row][data-kind=scheduled]").await == 0 {
        assert!(
            Instant::now() < deadline,
            "no scheduled backup within 150 s"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        click(&c, "[data-testid=nav-activity]").await;
        click(&c, "[data-testid=nav-backups]").await;
    }
    shot(&c, "9-scheduled").await;
    click(&c, "[data-testid=nav-activity]").await;
    wait_count(&c, "[data-testid=run-row]", 3, 30).await;
    shot(&c, "10-activity").await;

    // 6. A wrong password in Settings: the mapped message, nothing saved.
    let cluster = PasswordCluster::start();
    click(&c, "[data-testid=nav-settings]").await;
    fill(&c, "[data-testid=db-port]", &cluster.port.to_string()).await;
    fill(&c, "[data-testid=db-name]", "postgres").await;
    fill(&c, "[data-testid=db-password]", "wrong-password").await;
    click(&c, "[data-testid=test-connection]").await;
    let text = wait_text(
        &c,
        "[data-testid=connection-result]",
        "The database refused the login",
        30,
    )
    .await;
    assert!(text.contains("rejected the password"), "{text}");
    // Advice for this window: its settings, not the CLI's environment variable.
    assert!(
        text.contains("Settings") && !text.contains("PGPASSWORD"),
        "{text}"
    );
    assert!(
        !text.contains("wrong-password"),
        "the password leaked: {text}"
    );
    shot(&c, "11-wrong-password").await;

    // 7. An offsite destination: an S3 bucket on loopback, added in Settings (tested first,
    // its secret into the keychain), and then every backup's copy shows as done in the list
    // (the schedule's next look copies what the bucket lacks).
    let s3 = servers::S3::start();
    c.find(Locator::Css("[data-testid=dest-kind]"))
        .await
        .unwrap()
        .select_by_value("s3")
        .await
        .unwrap();
    fill(&c, "[data-testid=dest-name]", "cloud").await;
    fill(&c, "[data-testid=dest-bucket]", "school").await;
    fill(&c, "[data-testid=dest-prefix]", "e2e").await;
    fill(&c, "[data-testid=dest-endpoint]", &s3.endpoint()).await;
    fill(&c, "[data-testid=dest-access-key]", &s3.access_key).await;
    fill(&c, "[data-testid=dest-secret-key]", &s3.secret_key).await;
    click(&c, "[data-testid=dest-save]").await;
    wait_count(&c, "[data-testid=destination-row][data-name=cloud]", 1, 60).await;
    shot(&c, "12-destination").await;
    let config =
        std::fs::read_to_string(home.path().join("config/schoolvault/config.toml")).unwrap();
    assert!(config.contains("[[destinations]]"), "{config}");
    assert!(
        !config.contains(&s3.secret_key),
        "the secret is in the settings file"
    );
    click(&c, "[data-testid=nav-backups]").await;
    let deadline = Instant::now() + Duration::from_secs(150);
    while count(&c, "[data-testid=copy-cloud][data-state=done]").await == 0 {
        assert!(
            Instant::now() < deadline,
            "no backup copied to the bucket within 150 s"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        click(&c, "[data-testid=nav-activity]").await;
        click(&c, "[data-testid=nav-backups]").await;
    }
    wait_for(&c, "[data-testid=copy-cloud][data-state=done]", 30).await;
    shot(&c, "13-copies").await;
    let objects = std::fs::read_dir(s3.root.path().join("school/e2e"))
        .unwrap()
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".svb"))
        .count();
    assert!(objects >= 1, "no backup in the bucket");

    // 8. Rotate the key (its recovery copy is saved before it is used), back up with the new
    // key, and restore the first backup, made with the earlier key.
    // First the schedule back to once a day, so no scheduled run meets the restore below.
    click(&c, "[data-testid=nav-settings]").await;
    fill(&c, "[data-testid=cron]", "0 2 * * *").await;
    click(&c, "[data-testid=save-settings]").await;
    wait_for(&c, "[data-testid=toast]", 30).await;
    click(&c, "[data-testid=key-rotate]").await;
    wait_for(&c, ".modal button.primary", 30).await;
    click(&c, ".modal button.primary").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = match c.find(Locator::Css("[data-testid=fingerprint]")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now.len() == 16 && now != fingerprint {
            break;
        }
        assert!(Instant::now() < deadline, "the key was not rotated: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rotated = std::fs::read_to_string(&recovery).unwrap();
    assert!(
        !rotated.contains(&fingerprint),
        "the new key's recovery copy replaced the old one's in the chosen file"
    );
    click(&c, "[data-testid=nav-backups]").await;
    let before = count(&c, "[data-testid=backup-row]").await;
    click(&c, "[data-testid=backup-now]").await;
    wait_count(&c, "[data-testid=backup-row]", before + 1, 120).await;
    wait_count(&c, "[data-testid=older-key]", 1, 30).await;
    shot(&c, "14-key-rotated").await;
    db.sql("UPDATE users SET name = 'Changed after the rotation' WHERE id = 1");
    // The oldest backup (the list is newest first) was made with the earlier key.
    click(
        &c,
        "[data-testid=backup-row]:last-child [data-testid=restore]",
    )
    .await;
    wait_for(&c, "[data-testid=restore-confirm]", 60).await;
    fill(&c, "[data-testid=confirm-name]", &db.name).await;
    click(&c, "[data-testid=restore-confirm]").await;
    wait_text(&c, "[data-testid=restore-result]", "restored", 120).await;
    assert_eq!(db.sql("SELECT name FROM users WHERE id = 1"), original);
    click(&c, ".modal button.primary").await;

    c.close().await.unwrap();
}
