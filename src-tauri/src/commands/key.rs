//! The encryption key screen: generate or import the key, save its recovery copy, show it once
//! in a native dialog. The key's hex never enters the web view.

use schoolvault_engine::crypto::Key;
use schoolvault_engine::keychain::{self, KeyOrigin};
use tauri::State;

use super::Res;
use crate::dto::KeyInfo;
use crate::state::AppState;

pub(super) fn key_info(origin: &KeyOrigin, key: &Key) -> KeyInfo {
    KeyInfo {
        fingerprint: key.fingerprint().to_string(),
        origin: match origin {
            KeyOrigin::Env => "env",
            KeyOrigin::File(_) => "file",
            KeyOrigin::Keychain => "keychain",
        }
        .into(),
    }
}

/// Generate the encryption key and keep it in the keychain (never over an existing one).
#[tauri::command]
pub async fn key_generate(state: State<'_, AppState>) -> Res<KeyInfo> {
    let keys = state.keys()?;
    // Never over an existing key, except the old system's public one (imported before
    // SchoolVault refused it): that one is replaced, as the refusal's message says.
    if let Some(k) = keys.keychain_current()? {
        if !schoolvault_engine::legacy::is_dev_key(&k) {
            return Ok(key_info(&KeyOrigin::Keychain, &k));
        }
    }
    let key = Key::generate();
    keys.store(&key)?;
    keychain::key_since(&state.data_dir(), &key.fingerprint().to_string());
    // Owed until saved, across restarts: the first-run step and a banner say so until then.
    keychain::mark_recovery_pending(&state.data_dir(), &key.fingerprint().to_string())?;
    Ok(key_info(&KeyOrigin::Keychain, &key))
}

/// Import a key (64 hex characters, e.g. the old system's `BACKUP_ENCRYPTION_KEY`).
#[tauri::command]
pub async fn key_import(state: State<'_, AppState>, hex: String) -> Res<KeyInfo> {
    let hex = zeroize::Zeroizing::new(hex);
    let key = keychain::key_from_recovery_text(&hex)?;
    state.keys()?.store(&key)?;
    keychain::key_since(&state.data_dir(), &key.fingerprint().to_string());
    // Imported: the person has it already.
    keychain::mark_recovery_saved(&state.data_dir(), &key.fingerprint().to_string());
    Ok(key_info(&KeyOrigin::Keychain, &key))
}

/// Import the key from a file the user picks in a native dialog: its recovery sheet, a file
/// with the 64 hex characters, or the old system's settings (`BACKUP_ENCRYPTION_KEY=…`). The key
/// never passes through the web view. `null` if they cancel.
#[tauri::command]
pub async fn key_import_file(state: State<'_, AppState>) -> Res<Option<KeyInfo>> {
    let Some(path) = state.shell().pick_key_file().await.ok().flatten() else {
        return Ok(None);
    };
    let mut text = zeroize::Zeroizing::new(String::new());
    {
        use std::io::Read;
        let file = std::fs::File::open(&path).map_err(|e| {
            schoolvault_engine::Error::io(format_args!("opening {}", path.display()), &e)
        })?;
        // A recovery sheet is under 1 KiB; a settings file a few: never read a big file whole.
        file.take(64 << 10).read_to_string(&mut text).map_err(|e| {
            schoolvault_engine::Error::io(format_args!("reading {}", path.display()), &e)
        })?;
    }
    let key = keychain::key_from_recovery_text(&text)
        .map_err(|e| e.context(format_args!("{}", path.display())))?;
    state.keys()?.store(&key)?;
    keychain::key_since(&state.data_dir(), &key.fingerprint().to_string());
    // Imported from their copy: the person has it already.
    keychain::mark_recovery_saved(&state.data_dir(), &key.fingerprint().to_string());
    Ok(Some(key_info(&KeyOrigin::Keychain, &key)))
}

/// Rotate the key: a new key becomes current once its recovery copy is saved where the user
/// chooses (native dialog); the earlier keys stay in the keychain, so older backups still
/// open. `null` if they cancel: nothing changed.
#[tauri::command]
pub async fn key_rotate(state: State<'_, AppState>) -> Res<Option<KeyInfo>> {
    let keys = state.keys()?;
    // A key from the environment or a key file: said before any dialog.
    keys.check_rotatable()?;
    let key = Key::generate();
    let fp = key.fingerprint().to_string();
    let Some(path) = recovery_path(&state, &fp).await else {
        return Ok(None);
    };
    keys.rotate(&key, |k| keychain::save_recovery_sheet(k, &path))?;
    keychain::key_since(&state.data_dir(), &fp);
    keychain::mark_recovery_saved(&state.data_dir(), &fp);
    Ok(Some(key_info(&KeyOrigin::Keychain, &key)))
}

/// Where the person wants the recovery copy of the key `fp` (native save dialog); `None` if
/// they cancel.
async fn recovery_path(state: &AppState, fp: &str) -> Option<std::path::PathBuf> {
    let asked = state
        .shell()
        .pick_recovery_file(&format!("schoolvault-key-{fp}.txt"));
    asked.await.ok().flatten()
}

/// Dismiss the yearly reminder to rotate the current key.
#[tauri::command]
pub async fn key_rotation_dismiss(state: State<'_, AppState>) -> Res<()> {
    let (key, _) = state.keys()?.current()?;
    keychain::dismiss_rotation_reminder(&state.data_dir(), &key.fingerprint().to_string())?;
    Ok(())
}

/// Write the key's recovery copy where the user chooses (mode 0600, replacing any file there);
/// `null` if they cancel.
#[tauri::command]
pub async fn key_save_recovery(state: State<'_, AppState>) -> Res<Option<String>> {
    let (key, _) = state.keys()?.current()?;
    let fp = key.fingerprint().to_string();
    let Some(path) = recovery_path(&state, &fp).await else {
        return Ok(None);
    };
    schoolvault_engine::keychain::save_recovery_sheet(&key, &path)?;
    keychain::mark_recovery_saved(&state.data_dir(), &fp);
    Ok(Some(path.display().to_string()))
}

/// Show the key's hex once, in a native dialog: it never enters the web view.
#[tauri::command]
pub async fn key_show_once(state: State<'_, AppState>) -> Res<()> {
    let (key, _) = state.keys()?.current()?;
    let text = format!(
        "Fingerprint {}\n\n{}\n\nWrite it down and keep it away from this computer.",
        key.fingerprint(),
        key.to_hex().as_str()
    );
    state
        .shell()
        .show_secret("SchoolVault encryption key", &text);
    Ok(())
}
