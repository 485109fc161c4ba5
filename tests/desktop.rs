//! The desktop app end to end: the real `schoolvault-app` (built with its UI) driven through
//! tauri-driver and WebKitWebDriver, against the real PostgreSQL and a real gnome-keyring.
//! Set up the database and the key through the first-run screens, back up with the button,
//! change a row, restore through the modal (typing the name) and find the row back in the
//! database; restore from a picked file; a wrong password in Settings shows the mapped
//! message; a schedule a minute ahead makes a "scheduled" backup; then a MariaDB database,
//! chosen in Settings, backed up and restored with an ERP session connected (the real MariaDB
//! at 127.0.0.1:3306). Screenshots of each step go to target/screenshots/app-*.png.
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
    // WebDriver refuses to send no keys.
    if !text.is_empty() {
        e.send_keys(text).await.unwrap();
    }
}

/// Click `nav` (a navigation entry, a button) until the window shows `marker` (a click during
/// a redraw is lost).
async fn goto(c: &Client, nav: &str, marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        click(c, nav).await;
        let shown = Instant::now() + Duration::from_secs(5);
        while Instant::now() < shown {
            if c.find(Locator::Css(marker)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if Instant::now() > deadline {
            shot(c, "timeout").await;
            panic!("{nav} did not show {marker} within 60 s");
        }
    }
}

/// Wait until no job runs (Back up now is enabled again).
async fn wait_idle(c: &Client) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let enabled = match c.find(Locator::Css("[data-testid=backup-now]")).await {
            Ok(e) => e.is_enabled().await.unwrap_or(false),
            Err(_) => false,
        };
        if enabled {
            return;
        }
        if Instant::now() > deadline {
            shot(c, "timeout").await;
            panic!("a job was still running after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

/// The app through tauri-driver, with its settings and data under `home` (nothing there: its
/// first run), file dialogs answered with `picked` and `recovery`, no key from the environment.
/// The app is single-instance: one test at a time (`--test-threads=1`, as `make e2e` runs them).
async fn start_app(home: &Path, picked: &Path, recovery: &Path) -> (Driver, Client) {
    let driver_port = 4444 + (rand::random::<u16>() % 1000) * 2;
    let driver = Command::new("tauri-driver")
        .process_group(0)
        .args(["--port", &driver_port.to_string(), "--native-port", &(driver_port + 1).to_string()])
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("SCHOOLVAULT_PICK_FILE", picked)
        .env("SCHOOLVAULT_SAVE_FILE", recovery)
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
    let driver = Driver(driver);

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
    (driver, c)
}

/// The app's first run, as a school's IT person meets it after installing the package
/// (`scripts/package-test.sh` runs this against the installed program through
/// SCHOOLVAULT_APP_BIN): no settings yet, so it opens on the set-up screens, which ask for the
/// school database first and say nothing is configured; nothing is written before Save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_opens_on_the_set_up_screens() {
    let home = tempfile::tempdir().unwrap();
    let (_driver, c) = start_app(
        home.path(),
        &home.path().join("picked.svb"),
        &home.path().join("recovery-key.txt"),
    )
    .await;
    wait_for(&c, "[data-testid=db-name]", 60).await;
    assert_eq!(c.title().await.unwrap(), "SchoolVault");
    for field in [
        "db-host",
        "db-port",
        "db-user",
        "test-connection",
        "save-connection",
    ] {
        assert_eq!(
            count(&c, &format!("[data-testid={field}]")).await,
            1,
            "{field}"
        );
    }
    assert_eq!(
        count(&c, "[data-testid=nav-setup]").await,
        1,
        "the set-up screen"
    );
    assert_eq!(
        count(&c, "[data-testid=nav-backups]").await,
        0,
        "no other screen before set-up"
    );
    assert!(
        !home.path().join("config/schoolvault/config.toml").exists(),
        "nothing saved before the person saves"
    );
    shot(&c, "0-first-run").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_app_backs_up_and_restores_through_its_window() {
    let db = TestDb::new("e2e");
    db.load(&school_sql(), &[]);
    let home = tempfile::tempdir().unwrap();
    let picked = home.path().join("picked.svb");
    let recovery = home.path().join("recovery-key.txt");
    let (_driver, c) = start_app(home.path(), &picked, &recovery).await;

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
    wait_idle(&c).await;
    shot(&c, "4-backup-done").await;

    // 3. Change a row, restore through the modal, and find it back.
    let original = db.sql("SELECT name FROM users WHERE id = 1");
    db.sql("UPDATE users SET name = 'Changed by the test' WHERE id = 1");
    goto(
        &c,
        "[data-testid=backup-row] [data-testid=restore]",
        "[role=dialog]",
    )
    .await;
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
    click(&c, "[data-testid=backup-now]").await;
    // Listed first, made with the new key (no "earlier key" on its row), and nothing running:
    // a row count taken while the list redraws is no measure.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let first = match c
            .find(Locator::Css("[data-testid=backup-row]:first-child"))
            .await
        {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if first.contains("Manual") && !first.contains("earlier key") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no backup with the new key within 120 s: {first}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_idle(&c).await;
    wait_count(&c, "[data-testid=older-key]", 1, 30).await;
    shot(&c, "14-key-rotated").await;
    db.sql("UPDATE users SET name = 'Changed after the rotation' WHERE id = 1");
    // The oldest backup (the list is newest first) was made with the earlier key.
    // A click lost in a redraw of the list is made again until the modal opens.
    goto(
        &c,
        "[data-testid=backup-row]:last-child [data-testid=restore]",
        "[role=dialog]",
    )
    .await;
    wait_for(&c, "[data-testid=restore-confirm]", 60).await;
    fill(&c, "[data-testid=confirm-name]", &db.name).await;
    click(&c, "[data-testid=restore-confirm]").await;
    wait_text(&c, "[data-testid=restore-result]", "restored", 120).await;
    assert_eq!(db.sql("SELECT name FROM users WHERE id = 1"), original);
    click(&c, ".modal button.primary").await;

    // 9. A MariaDB database: the engine chosen in Settings, a backup with
    // the button, and the restore warning with the school's session listed, which the restore
    // ends ("End these sessions") before it swaps the restored tables in.
    let my = MariaDb::new();
    my.sql(
        "CREATE TABLE classes (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4) ENGINE=InnoDB;
         CREATE TABLE pupils (id INT PRIMARY KEY, class_id INT NOT NULL, name VARCHAR(60) CHARACTER SET utf8mb4,
           born DATE, FOREIGN KEY (class_id) REFERENCES classes (id)) ENGINE=InnoDB;
         INSERT INTO classes SELECT seq, CONCAT('Class ', seq) FROM seq_1_to_20;
         INSERT INTO pupils SELECT seq, 1 + seq MOD 20, CONCAT('Pupil ', seq), '2012-09-01' + INTERVAL seq DAY FROM seq_1_to_600;",
    );
    click(&c, "[data-testid=nav-settings]").await;
    wait_for(&c, "[data-testid=db-engine]", 30)
        .await
        .select_by_value("mariadb")
        .await
        .unwrap();
    fill(&c, "[data-testid=db-host]", &my_host()).await;
    fill(&c, "[data-testid=db-port]", &my_port()).await;
    fill(&c, "[data-testid=db-name]", &my.name).await;
    fill(&c, "[data-testid=db-user]", "root").await;
    fill(&c, "[data-testid=db-password]", "").await;
    click(&c, "[data-testid=test-connection]").await;
    wait_text(&c, "[data-testid=connection-result]", "Connected to", 30).await;
    shot(&c, "16-mariadb-connection").await;
    click(&c, "[data-testid=save-connection]").await;
    wait_for(&c, "[data-testid=toast]", 30).await;
    // The settings screen redraws once the new connection is saved; a click during that redraw
    // is lost, so go to Backups until it shows.
    goto(&c, "[data-testid=nav-backups]", "[data-testid=backup-now]").await;
    click(&c, "[data-testid=backup-now]").await;
    // Its 2 tables and 620 rows, first in the list.
    wait_text(&c, "[data-testid=backup-row]:first-child", "2 / 620", 120).await;
    wait_idle(&c).await;
    shot(&c, "17-mariadb-backups").await;
    let backed_up = my.sql("SELECT COUNT(*), SUM(CRC32(name)) FROM pupils");
    my.sql("UPDATE pupils SET name = 'Changed by the test' WHERE id <= 50");
    let mut erp = my.idle_in_transaction();
    // The newest backup (first in the list) is the MariaDB one.
    // A click lost in a redraw of the list is made again until the modal opens.
    goto(
        &c,
        "[data-testid=backup-row]:first-child [data-testid=restore]",
        "[role=dialog]",
    )
    .await;
    wait_for(&c, "[data-testid=restore-confirm]", 60).await;
    wait_text(&c, "[data-testid=sessions]", "erp_web", 30).await;
    // With the school connected, Replace waits until the users were told.
    click(&c, "[data-testid=users-told]").await;
    fill(&c, "[data-testid=confirm-name]", &my.name).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wait_for(&c, "[data-testid=restore-confirm]", 10)
        .await
        .is_enabled()
        .await
        .unwrap()
    {
        assert!(
            Instant::now() < deadline,
            "the typed name did not enable Restore"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shot(&c, "18-mariadb-restore-sessions").await;
    click(&c, "[data-testid=end-sessions]").await;
    click(&c, "[data-testid=restore-confirm]").await;
    wait_text(&c, "[data-testid=restore-result]", "restored", 120).await;
    assert_eq!(
        my.sql("SELECT COUNT(*), SUM(CRC32(name)) FROM pupils"),
        backed_up
    );
    click(&c, ".modal button.primary").await;
    let _ = erp.kill();
    let _ = erp.wait();

    c.close().await.unwrap();
}

fn my_host() -> String {
    std::env::var("SCHOOLVAULT_TEST_MY_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}
fn my_port() -> String {
    std::env::var("SCHOOLVAULT_TEST_MY_PORT").unwrap_or_else(|_| "3306".into())
}

/// A MariaDB database of the test's own (root without a password on `my_host():my_port()`,
/// which `make test` starts), dropped at the end, worked on through the `mariadb` client.
struct MariaDb {
    name: String,
}

impl MariaDb {
    fn new() -> MariaDb {
        let name = format!("sv_e2e_{:08x}", rand::random::<u32>());
        MariaDb::run(
            None,
            &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
        );
        MariaDb { name }
    }

    fn run(db: Option<&str>, sql: &str) -> String {
        let mut cmd = Command::new("mariadb");
        cmd.args(["--batch", "--skip-column-names", "--protocol=TCP"])
            .args(["-h", &my_host(), "-P", &my_port(), "-u", "root"]);
        if let Some(db) = db {
            cmd.arg(db);
        }
        let out = cmd.args(["-e", sql]).output().unwrap_or_else(|e| {
            panic!("cannot run the mariadb client ({e}): install mariadb-client (make test does)")
        });
        assert!(
            out.status.success(),
            "MariaDB did not run {sql:?} as root on {}:{} (start it with `make setup`): {}",
            my_host(),
            my_port(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sql(&self, sql: &str) -> String {
        MariaDb::run(Some(&self.name), sql)
    }

    /// A session of the "ERP" (user `erp_web`) that read `pupils` in a transaction it keeps
    /// open, idle, until it is killed or its connection ended.
    // The child is returned to the test, which kills and waits for it.
    #[allow(clippy::zombie_processes)]
    fn idle_in_transaction(&self) -> Child {
        use std::io::Write as _;
        MariaDb::run(
            None,
            &format!(
                "CREATE USER IF NOT EXISTS 'erp_web'@'%'; GRANT ALL ON `{}`.* TO 'erp_web'@'%'",
                self.name
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
            .args(["-u", "erp_web", &self.name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(b"BEGIN; SELECT COUNT(*) FROM pupils;\n")
            .unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while MariaDb::run(
            None,
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p \
             ON p.ID = t.trx_mysql_thread_id WHERE p.USER = 'erp_web' AND p.COMMAND = 'Sleep'",
        )
        .trim()
            != "1"
        {
            assert!(Instant::now() < deadline, "the ERP session did not open its transaction");
            std::thread::sleep(Duration::from_millis(100));
        }
        child
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args([
                "--protocol=TCP",
                "-h",
                &my_host(),
                "-P",
                &my_port(),
                "-u",
                "root",
            ])
            .args(["-e", &format!("DROP DATABASE IF EXISTS `{}`", self.name)])
            .output();
    }
}
