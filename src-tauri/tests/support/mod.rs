//! What the app's command tests share: psql on the test server, calling a command through
//! Tauri's IPC under the mock runtime, the app with its own settings, desktop and keychain.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use schoolvault_app::state::{AppState, Headless, Look, Picked, Shell};
use schoolvault_engine::keychain::Keychain;
use serde_json::Value;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindow;

pub fn psql(db: &str, sql: &str) -> String {
    let host = std::env::var("SCHOOLVAULT_TEST_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("SCHOOLVAULT_TEST_PG_PORT").unwrap_or_else(|_| "5432".into());
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &host,
            "-p",
            &port,
        ])
        .args(["-U", "postgres", "-d", db, "-c", sql])
        .output()
        .expect("psql is missing: make test installs postgresql-client");
    assert!(
        out.status.success(),
        "psql failed (is PostgreSQL running on {host}:{port}? make test starts it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn call(
    w: &WebviewWindow<tauri::test::MockRuntime>,
    cmd: &str,
    args: Value,
) -> Result<Value, Value> {
    get_ipc_response(
        w,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

pub type MockApp = tauri::App<tauri::test::MockRuntime>;

/// The app under the mock runtime with its settings file and catalog, and its main window.
pub fn open_app(
    config: std::path::PathBuf,
    catalog: std::path::PathBuf,
) -> (MockApp, WebviewWindow<tauri::test::MockRuntime>) {
    open_app_with(
        config,
        catalog,
        Box::new(Headless),
        Arc::new(schoolvault_engine::keychain::OsKeychain),
    )
}

pub fn pg_host() -> String {
    std::env::var("SCHOOLVAULT_TEST_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}

pub fn pg_port() -> u16 {
    std::env::var("SCHOOLVAULT_TEST_PG_PORT")
        .unwrap_or_else(|_| "5432".into())
        .parse()
        .unwrap()
}

/// A keychain in memory that logs what it is asked (`get ACCOUNT`, `set …`, `delete …`).
#[derive(Default)]
pub struct MemoryKeychain {
    secrets: Mutex<HashMap<String, String>>,
    log: Mutex<Vec<String>>,
}

impl MemoryKeychain {
    pub fn with(account: &str, secret: &str) -> Arc<MemoryKeychain> {
        let k = MemoryKeychain::default();
        k.secrets
            .lock()
            .unwrap()
            .insert(account.into(), secret.into());
        Arc::new(k)
    }
    pub fn secret(&self, account: &str) -> Option<String> {
        self.secrets.lock().unwrap().get(account).cloned()
    }
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Keychain for MemoryKeychain {
    fn get(&self, account: &str) -> schoolvault_engine::Result<Option<zeroize::Zeroizing<String>>> {
        self.log.lock().unwrap().push(format!("get {account}"));
        Ok(self.secret(account).map(zeroize::Zeroizing::new))
    }
    fn set(&self, account: &str, secret: &str) -> schoolvault_engine::Result<()> {
        self.log.lock().unwrap().push(format!("set {account}"));
        self.secrets
            .lock()
            .unwrap()
            .insert(account.into(), secret.into());
        Ok(())
    }
    fn delete(&self, account: &str) -> schoolvault_engine::Result<()> {
        self.log.lock().unwrap().push(format!("delete {account}"));
        self.secrets.lock().unwrap().remove(account);
        Ok(())
    }
}

/// A desktop whose file dialogs answer what the test says (`None`: cancelled).
#[derive(Default, Clone)]
pub struct Picking {
    pub backup: Arc<Mutex<Option<PathBuf>>>,
    pub ca: Arc<Mutex<Option<PathBuf>>>,
    pub dir: Arc<Mutex<Option<PathBuf>>>,
}

impl Shell for Picking {
    fn look(&self, _: Look) {}
    fn status_lines(&self, _: &str, _: &str) {}
    fn notify(&self, _: &str, _: &str) {}
    fn pick_backup_file(&self) -> Picked {
        schoolvault_app::state::picked(self.backup.lock().unwrap().clone())
    }
    fn pick_ca_file(&self) -> Picked {
        schoolvault_app::state::picked(self.ca.lock().unwrap().clone())
    }
    fn pick_backup_dir(&self, _: &std::path::Path) -> Picked {
        schoolvault_app::state::picked(self.dir.lock().unwrap().clone())
    }
    fn pick_recovery_file(&self, _: &str) -> Picked {
        schoolvault_app::state::picked(None)
    }
    fn show_secret(&self, _: &str, _: &str) {}
    fn autostart(&self, _: bool) -> Result<(), String> {
        Ok(())
    }
}

/// The app with its own desktop and keychain.
pub fn open_app_with(
    config: PathBuf,
    catalog: PathBuf,
    shell: Box<dyn Shell>,
    keychain: Arc<dyn Keychain>,
) -> (MockApp, WebviewWindow<tauri::test::MockRuntime>) {
    let state = AppState::new(config, catalog, shell)
        .unwrap()
        .with_keychain(keychain);
    let app = schoolvault_app::builder(mock_builder())
        .manage(state)
        .build(tauri::generate_context!())
        .unwrap();
    let w = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    (app, w)
}

pub fn message(err: &Value) -> &str {
    err["message"].as_str().unwrap_or_default()
}
