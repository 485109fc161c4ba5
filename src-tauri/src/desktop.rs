//! The desktop around the window: the tray icon and its menu, desktop notifications, native
//! file and message dialogs (rfd, run on the GTK main thread), start at login. In debug builds
//! only, `SCHOOLVAULT_PICK_FILE`, `SCHOOLVAULT_PICK_CA_FILE`, `SCHOOLVAULT_PICK_DIR` and
//! `SCHOOLVAULT_SAVE_FILE` answer the file dialogs, for the end-to-end test
//! ([`crate::state::injected`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use schoolvault_engine::archive::BackupKind;
use schoolvault_engine::progress::Silent;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Emitter, Manager, Wry};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_notification::NotificationExt as _;

use crate::state::{injected, picked, AppState, Look, Picked, Shell};

/// The event the window listens to, to look at the status again (`ui/src/main.ts`).
pub const STATUS_CHANGED: &str = "status-changed";

const IDLE: &[u8] = include_bytes!("../../icons/tray-idle.png");
const RUNNING: &[u8] = include_bytes!("../../icons/tray-running.png");
const FAILED: &[u8] = include_bytes!("../../icons/tray-failed.png");

/// The real desktop.
pub struct Desktop {
    app: AppHandle,
    tray: Option<TrayIcon>,
    last: Option<MenuItem<Wry>>,
    next: Option<MenuItem<Wry>>,
}

/// Show and focus the main window.
pub fn show_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

impl Desktop {
    /// Build the tray (when the desktop has one) and return the shell.
    pub fn new(app: &AppHandle) -> Desktop {
        match Self::tray(app) {
            Ok((tray, last, next)) => Desktop {
                app: app.clone(),
                tray: Some(tray),
                last: Some(last),
                next: Some(next),
            },
            Err(e) => {
                eprintln!(
                    "SchoolVault: no tray icon on this desktop ({e}); closing the window quits"
                );
                Desktop {
                    app: app.clone(),
                    tray: None,
                    last: None,
                    next: None,
                }
            }
        }
    }

    fn tray(app: &AppHandle) -> tauri::Result<(TrayIcon, MenuItem<Wry>, MenuItem<Wry>)> {
        let backup = MenuItem::with_id(app, "backup", "Back up now", true, None::<&str>)?;
        let open = MenuItem::with_id(app, "open", "Open SchoolVault", true, None::<&str>)?;
        let last = MenuItem::with_id(app, "last", "Last backup: none yet", false, None::<&str>)?;
        let next = MenuItem::with_id(
            app,
            "next",
            "Next backup: not scheduled",
            false,
            None::<&str>,
        )?;
        let quit = MenuItem::with_id(app, "quit", "Quit SchoolVault", true, None::<&str>)?;
        let menu = Menu::with_items(
            app,
            &[
                &backup,
                &open,
                &PredefinedMenuItem::separator(app)?,
                &last,
                &next,
                &PredefinedMenuItem::separator(app)?,
                &quit,
            ],
        )?;
        let tray = TrayIconBuilder::with_id("main")
            .icon(Image::from_bytes(IDLE)?)
            .tooltip("SchoolVault")
            .menu(&menu)
            .on_menu_event(|app, event| match event.id().as_ref() {
                "backup" => {
                    let app = app.clone();
                    tauri::async_runtime::spawn(async move {
                        let state = app.state::<AppState>();
                        let _ = crate::commands::run_backup(
                            &state,
                            BackupKind::Manual,
                            true,
                            Arc::new(Silent),
                        )
                        .await;
                    });
                }
                "open" => show_window(app),
                "quit" => app.exit(0),
                _ => {}
            })
            .on_tray_icon_event(|tray, event| {
                if let TrayIconEvent::Click {
                    button: MouseButton::Left,
                    button_state: MouseButtonState::Up,
                    ..
                } = event
                {
                    show_window(tray.app_handle());
                }
            })
            .build(app)?;
        Ok((tray, last, next))
    }

    fn on_main<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.app.run_on_main_thread(move || {
            let _ = tx.send(job());
        });
        rx
    }
}

impl Shell for Desktop {
    fn look(&self, look: Look) {
        let bytes = match look {
            Look::Idle => IDLE,
            Look::Running => RUNNING,
            Look::Failed => FAILED,
        };
        if let (Some(tray), Ok(img)) = (&self.tray, Image::from_bytes(bytes)) {
            let _ = tray.set_icon(Some(img));
            let _ = tray.set_tooltip(Some(match look {
                Look::Idle => "SchoolVault",
                Look::Running => "SchoolVault: working…",
                Look::Failed => "SchoolVault: the last run failed",
            }));
        }
    }

    fn status_lines(&self, last: &str, next: &str) {
        if let Some(m) = &self.last {
            let _ = m.set_text(last);
        }
        if let Some(m) = &self.next {
            let _ = m.set_text(next);
        }
    }

    fn notify(&self, title: &str, body: &str) {
        let _ = self
            .app
            .notification()
            .builder()
            .title(title)
            .body(body)
            .show();
    }

    fn pick_backup_file(&self) -> Picked {
        // The end-to-end test answers the dialogs through the environment: debug builds only.
        if let Some(p) = injected("SCHOOLVAULT_PICK_FILE") {
            return picked(Some(p));
        }
        let window = self.app.get_webview_window("main");
        let rx = self.on_main(move || {
            let mut d = rfd::FileDialog::new()
                .set_title("Restore from a backup file")
                .add_filter(
                    "Backups (SchoolVault .svb, old system .enc)",
                    &["svb", "enc"],
                )
                .add_filter("All files", &["*"]);
            if let Some(w) = &window {
                d = d.set_parent(w);
            }
            d.pick_file()
        });
        flatten(rx)
    }

    fn pick_ca_file(&self) -> Picked {
        if let Some(p) = injected("SCHOOLVAULT_PICK_CA_FILE") {
            return picked(Some(p));
        }
        let window = self.app.get_webview_window("main");
        let rx = self.on_main(move || {
            let mut d = rfd::FileDialog::new()
                .set_title("The CA certificate that signed the database server's certificate")
                .add_filter("Certificates (PEM)", &["pem", "crt", "cer"])
                .add_filter("All files", &["*"]);
            if let Some(w) = &window {
                d = d.set_parent(w);
            }
            d.pick_file()
        });
        flatten(rx)
    }

    fn pick_key_file(&self) -> Picked {
        if let Some(p) = injected("SCHOOLVAULT_PICK_KEY_FILE") {
            return picked(Some(p));
        }
        let window = self.app.get_webview_window("main");
        let rx = self.on_main(move || {
            let mut d = rfd::FileDialog::new()
                .set_title("The key's recovery copy, or the old system's settings file (.env)")
                .add_filter("Recovery copies and settings", &["txt", "env"])
                .add_filter("All files", &["*"]);
            if let Some(w) = &window {
                d = d.set_parent(w);
            }
            d.pick_file()
        });
        flatten(rx)
    }

    fn pick_backup_dir(&self, current: &Path) -> Picked {
        if let Some(p) = injected("SCHOOLVAULT_PICK_DIR") {
            return picked(Some(p));
        }
        let window = self.app.get_webview_window("main");
        // Open where the backups are now, or in the nearest folder above that exists.
        let start = current
            .ancestors()
            .find(|d| d.is_dir())
            .map(Path::to_path_buf);
        let rx = self.on_main(move || {
            let mut d = rfd::FileDialog::new().set_title("The folder to keep the backups in");
            if let Some(dir) = &start {
                d = d.set_directory(dir);
            }
            if let Some(w) = &window {
                d = d.set_parent(w);
            }
            d.pick_folder()
        });
        flatten(rx)
    }

    fn pick_recovery_file(&self, suggested: &str) -> Picked {
        if let Some(p) = injected("SCHOOLVAULT_SAVE_FILE") {
            return picked(Some(p));
        }
        let window = self.app.get_webview_window("main");
        let name = suggested.to_string();
        let rx = self.on_main(move || {
            let mut d = rfd::FileDialog::new()
                .set_title("Save the key's recovery copy")
                .set_file_name(&name);
            if let Some(w) = &window {
                d = d.set_parent(w);
            }
            d.save_file()
        });
        flatten(rx)
    }

    fn show_secret(&self, title: &str, text: &str) {
        let (title, text) = (title.to_string(), zeroize::Zeroizing::new(text.to_string()));
        // Shown on the main thread; nobody waits for the answer.
        drop(self.on_main(move || {
            rfd::MessageDialog::new()
                .set_title(&title)
                .set_description(text.as_str())
                .set_level(rfd::MessageLevel::Warning)
                .set_buttons(rfd::MessageButtons::Ok)
                .show();
        }));
    }

    fn changed(&self) {
        let _ = self.app.emit(STATUS_CHANGED, ());
    }

    fn autostart(&self, on: bool) -> Result<(), String> {
        let launcher = self.app.autolaunch();
        if on {
            launcher.enable()
        } else {
            launcher.disable()
        }
        .map_err(|e| e.to_string())
    }
}

fn flatten(rx: tokio::sync::oneshot::Receiver<Option<PathBuf>>) -> Picked {
    let (tx, out) = tokio::sync::oneshot::channel();
    tauri::async_runtime::spawn(async move {
        let _ = tx.send(rx.await.ok().flatten());
    });
    out
}
