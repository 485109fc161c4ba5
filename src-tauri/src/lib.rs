//! schoolvault-app: the desktop app, a thin Tauri 2 shell over `schoolvault-engine`.
//!
//! - [`commands`]: what the window calls (a few lines each over the engine);
//! - [`dto`]: the data crossing IPC, exported to TypeScript by ts-rs;
//! - [`state`]: settings, vault, the one running job, and the [`state::Shell`] trait;
//! - [`desktop`]: tray, notifications, native dialogs, autostart;
//! - [`scheduler`]: scheduled backups while the app runs.
//!
//! Closing the window hides it to the tray; a second launch focuses the first.

pub mod commands;
pub mod desktop;
pub mod dto;
pub mod scheduler;
pub mod state;

use tauri::{Manager, Runtime, WindowEvent};

use crate::state::{AppState, Shell};

/// The command handler, shared by the app and the mock-runtime tests.
#[macro_export]
macro_rules! handler {
    () => {
        tauri::generate_handler![
            $crate::commands::connection::status,
            $crate::commands::connection::test_connection,
            $crate::commands::connection::save_connection,
            $crate::commands::connection::demo_offer,
            $crate::commands::connection::create_demo,
            $crate::commands::key::key_generate,
            $crate::commands::key::key_import,
            $crate::commands::key::key_import_file,
            $crate::commands::key::key_rotate,
            $crate::commands::key::key_rotation_dismiss,
            $crate::commands::key::key_save_recovery,
            $crate::commands::key::key_show_once,
            $crate::commands::backups::list_backups,
            $crate::commands::backups::backup_now,
            $crate::commands::backups::cancel_job,
            $crate::commands::restore::restore_preview,
            $crate::commands::restore::restore,
            $crate::commands::restore::pick_restore_file,
            $crate::commands::restore::pick_ca_file,
            $crate::commands::restore::pick_backup_dir,
            $crate::commands::backups::delete_backup,
            $crate::commands::backups::verify_backup,
            $crate::commands::backups::test_restore_backup,
            $crate::commands::backups::history,
            $crate::commands::settings::get_settings,
            $crate::commands::settings::save_settings,
            $crate::commands::settings::schedule_preview,
            $crate::commands::settings::acknowledge_failure,
            $crate::commands::settings::send_test_email,
            $crate::commands::offsite::list_destinations,
            $crate::commands::offsite::save_destination,
            $crate::commands::offsite::test_destination,
            $crate::commands::offsite::remove_destination,
            $crate::commands::offsite::sync_now,
            $crate::commands::offsite::find_backups,
            $crate::commands::backups::rebuild_list,
        ]
    };
}

/// The state for this user: the shared settings file and the default catalog.
///
/// # Errors
/// An invalid settings file, or no home directory.
pub fn app_state(shell: Box<dyn Shell>) -> Result<AppState, dto::CommandError> {
    use schoolvault_engine::config;
    let catalog = match std::env::var_os("SCHOOLVAULT_CATALOG") {
        Some(c) if !c.is_empty() => c.into(),
        _ => config::default_catalog()?,
    };
    AppState::new(config::config_path()?, catalog, shell)
}

/// Wire a builder: plugins, window behaviour, commands.
pub fn builder<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder
        .on_window_event(|window, event| {
            // Closing the window keeps SchoolVault running in the tray.
            if let WindowEvent::CloseRequested { api, .. } = event {
                if window.app_handle().tray_by_id("main").is_some() {
                    api.prevent_close();
                    let _ = window.hide();
                }
            }
        })
        .invoke_handler(handler!())
}

/// Start the desktop app.
pub fn run() {
    let app = builder(
        tauri::Builder::default()
            .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
                desktop::show_window(app);
            }))
            .plugin(tauri_plugin_autostart::init(
                tauri_plugin_autostart::MacosLauncher::LaunchAgent,
                Some(vec!["--minimized"]),
            ))
            .plugin(tauri_plugin_notification::init()),
    )
    .setup(|app| {
        let handle = app.handle().clone();
        let shell = desktop::Desktop::new(&handle);
        let state = app_state(Box::new(shell)).map_err(|e| e.message)?;
        if state.config().app.start_at_login {
            // Rewrite the login entry for the program running now: after an install (or a move
            // from a build to the package) it points at the installed binary, not an old path.
            if let Err(e) = state.shell().autostart(true) {
                eprintln!("warning: the start-at-login entry could not be refreshed: {e}");
            }
        }
        app.manage(state);
        if std::env::args().any(|a| a == "--minimized") {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.hide();
            }
        }
        tauri::async_runtime::spawn(async move {
            let state = handle.state::<AppState>();
            scheduler::run(&state).await;
        });
        Ok(())
    })
    .build(tauri::generate_context!());
    match app {
        Ok(app) => app.run(|_, _| {}),
        Err(e) => {
            eprintln!("SchoolVault could not start: {e}");
            std::process::exit(1);
        }
    }
}
