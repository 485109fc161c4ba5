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
