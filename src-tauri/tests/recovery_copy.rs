//! No key without its recovery copy: a key generated in the first-run screens owes its copy
//! until it is saved, and the app remembers that across a restart (the first-run step resumes
//! and a banner says so); saving the copy, or importing a key the person already has, clears it.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use schoolvault_app::state::Headless;
use serde_json::json;
use support::*;

#[test]
fn a_generated_key_owes_its_recovery_copy_across_a_restart() {
    std::env::remove_var("BACKUP_ENCRYPTION_KEY");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let catalog = dir.path().join("catalog.sqlite");
    let keychain = Arc::new(MemoryKeychain::default());
    let (app, w) = open_app_with(
        config.clone(),
        catalog.clone(),
        Box::new(Headless),
        keychain.clone(),
    );
    let status = call(&w, "status", json!({})).unwrap();
    assert_eq!(status["key_recovery_pending"], false, "{status}");
    let key = call(&w, "key_generate", json!({})).unwrap();
    let status = call(&w, "status", json!({})).unwrap();
    assert_eq!(status["key_recovery_pending"], true, "{status}");
    // The app is closed before the copy is saved, and started again: still owed.
    drop(w);
    drop(app);
    let (app, w) = open_app_with(
        config.clone(),
        catalog.clone(),
        Box::new(Headless),
        keychain.clone(),
    );
    let status = call(&w, "status", json!({})).unwrap();
    assert_eq!(status["key"]["fingerprint"], key["fingerprint"], "{status}");
    assert_eq!(status["key_recovery_pending"], true, "{status}");
    // Cancelled dialog: still owed. Saved: no longer.
    std::env::remove_var("SCHOOLVAULT_SAVE_FILE");
    assert_eq!(
        call(&w, "key_save_recovery", json!({})).unwrap(),
        json!(null)
    );
    assert_eq!(
        call(&w, "status", json!({})).unwrap()["key_recovery_pending"],
        true
    );
    let sheet = dir.path().join("recovery.txt");
    std::env::set_var("SCHOOLVAULT_SAVE_FILE", &sheet);
    call(&w, "key_save_recovery", json!({})).unwrap();
    assert!(sheet.is_file());
    assert_eq!(
        call(&w, "status", json!({})).unwrap()["key_recovery_pending"],
        false
    );
    drop(w);
    drop(app);
}

#[test]
fn a_key_is_imported_from_its_recovery_copy_chosen_in_the_dialog_never_typed() {
    std::env::remove_var("BACKUP_ENCRYPTION_KEY");
    let dir = tempfile::tempdir().unwrap();
    let keychain = Arc::new(MemoryKeychain::default());
    let (app, w) = open_app_with(
        dir.path().join("config.toml"),
        dir.path().join("catalog.sqlite"),
        Box::new(Headless),
        keychain.clone(),
    );
    // The sheet another computer saved (after a disaster, this one is new).
    let key = schoolvault_engine::crypto::Key::generate();
    let sheet = dir.path().join("schoolvault-key.txt");
    schoolvault_engine::keychain::save_recovery_sheet(&key, &sheet).unwrap();
    // Cancelled: nothing imported.
    std::env::remove_var("SCHOOLVAULT_PICK_KEY_FILE");
    assert_eq!(call(&w, "key_import_file", json!({})).unwrap(), json!(null));
    assert_eq!(call(&w, "status", json!({})).unwrap()["key"], json!(null));
    std::env::set_var("SCHOOLVAULT_PICK_KEY_FILE", &sheet);
    let imported = call(&w, "key_import_file", json!({})).unwrap();
    assert_eq!(imported["fingerprint"], key.fingerprint().to_string());
    let status = call(&w, "status", json!({})).unwrap();
    assert_eq!(status["key"]["fingerprint"], key.fingerprint().to_string());
    assert_eq!(
        status["key_recovery_pending"], false,
        "imported from its copy: none owed"
    );
    // A file that holds no key: a one-line error naming the file, nothing changed.
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "the key is in the drawer").unwrap();
    std::env::set_var("SCHOOLVAULT_PICK_KEY_FILE", &junk);
    let e = call(&w, "key_import_file", json!({})).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("notes.txt"), "{e}");
    assert_eq!(
        call(&w, "status", json!({})).unwrap()["key"]["fingerprint"],
        key.fingerprint().to_string()
    );
    std::env::remove_var("SCHOOLVAULT_PICK_KEY_FILE");
    drop(w);
    drop(app);
}
