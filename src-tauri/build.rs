//! Generates the permissions of our own commands (`allow-<command>`), so the capability in
//! `capabilities/main.json` grants exactly these and nothing else.

const COMMANDS: &[&str] = &[
    "status",
    "test_connection",
    "save_connection",
    "demo_offer",
    "create_demo",
    "key_generate",
    "key_import",
    "key_import_file",
    "key_rotate",
    "key_rotation_dismiss",
    "key_save_recovery",
    "key_show_once",
    "list_backups",
    "backup_now",
    "cancel_job",
    "restore_preview",
    "restore",
    "pick_restore_file",
    "pick_ca_file",
    "pick_backup_dir",
    "delete_backup",
    "verify_backup",
    "test_restore_backup",
    "history",
    "get_settings",
    "save_settings",
    "schedule_preview",
    "acknowledge_failure",
    "send_test_email",
    "list_destinations",
    "save_destination",
    "test_destination",
    "remove_destination",
    "sync_now",
    "find_backups",
    "rebuild_list",
];

fn main() {
    let attrs = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attrs) {
        println!("cargo::error={e:#}");
    }
}
