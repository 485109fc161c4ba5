//! The encryption key from the command line: `key generate`, `key import` (64 hex characters on
//! stdin), `key export` (for the recovery copy) and `key fingerprint`.

use std::io::Read;

use schoolvault_engine::crypto::Key;
use schoolvault_engine::keychain::{self, KeyOrigin, Keys};
use schoolvault_engine::{Error, Result};
use serde::{Serialize, Serializer};
use zeroize::Zeroizing;

use crate::args::KeyAction;
use crate::output::Report;

/// What a `key` command has to say.
pub(crate) enum KeyReport {
    /// A key made current, or the current one: its fingerprint and where it comes from.
    Shown {
        /// What happened, for the text: "Imported key".
        what: &'static str,
        fingerprint: String,
        origin: String,
        /// Said on stderr after it.
        advice: Option<&'static str>,
    },
    /// The current key itself, for the recovery copy.
    Exported {
        hex: Zeroizing<String>,
        fingerprint: String,
        origin: String,
    },
}

impl Serialize for KeyReport {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            KeyReport::Shown {
                fingerprint,
                origin,
                ..
            } => serde_json::json!({"fingerprint": fingerprint, "origin": origin}).serialize(s),
            KeyReport::Exported {
                hex, fingerprint, ..
            } => serde_json::json!({"fingerprint": fingerprint, "key": hex.as_str()}).serialize(s),
        }
    }
}

impl Report for KeyReport {
    fn text(&self) -> Result<Vec<String>> {
        Ok(vec![match self {
            KeyReport::Shown {
                what,
                fingerprint,
                origin,
                ..
            } => format!("{what} {fingerprint} (from {origin})"),
            KeyReport::Exported { hex, .. } => hex.as_str().to_string(),
        }])
    }

    fn notes(&self, json: bool) -> Vec<String> {
        match self {
            KeyReport::Shown { advice, .. } => advice.iter().map(|a| (*a).to_string()).collect(),
            // Next to the bare key on a terminal, say what it is; the JSON says it itself.
            KeyReport::Exported {
                fingerprint,
                origin,
                ..
            } if !json => vec![format!(
                "This is the encryption key {fingerprint} (from {origin}). Anyone who has it can read your backups: store it offline, safely."
            )],
            KeyReport::Exported { .. } => Vec::new(),
        }
    }
}

/// `key`'s fingerprint and origin, as [`KeyReport::Shown`] says them.
fn shown(
    key: &Key,
    origin: &KeyOrigin,
    what: &'static str,
    advice: Option<&'static str>,
) -> KeyReport {
    KeyReport::Shown {
        what,
        fingerprint: key.fingerprint().to_string(),
        origin: origin.to_string(),
        advice,
    }
}

/// A `key` command.
///
/// # Errors
/// No key, a malformed key on stdin, keychain errors.
pub(crate) fn command(
    action: &KeyAction,
    keys: &Keys,
    data_dir: Option<&std::path::Path>,
) -> Result<KeyReport> {
    let since = |key: &Key| {
        if let Some(dir) = data_dir {
            keychain::key_since(dir, &key.fingerprint().to_string());
        }
    };
    match action {
        KeyAction::Rotate { out } => {
            let key = Key::generate();
            keys.rotate(&key, |k| keychain::save_recovery_sheet(k, out))?;
            since(&key);
            if let Some(dir) = data_dir {
                keychain::mark_recovery_saved(dir, &key.fingerprint().to_string());
            }
            Ok(shown(
                &key,
                &KeyOrigin::Keychain,
                "Rotated: new backups are encrypted with key",
                Some("Its recovery sheet is in the --out file: print it or keep it away from this computer, then delete it here. Older backups still open with the earlier keys, which stay in the keychain."),
            ))
        }
        KeyAction::Generate => {
            let key = Key::generate();
            keys.store(&key)?;
            since(&key);
            // Owed until `key export` (the app says so too: a banner, the tray, the weekly
            // report), as after "Generate a new key" in the app.
            if let Some(dir) = data_dir {
                keychain::mark_recovery_pending(dir, &key.fingerprint().to_string())?;
            }
            Ok(shown(
                &key,
                &KeyOrigin::Keychain,
                "Generated and stored key",
                Some("Save a recovery copy now with `schoolvault key export`: a backup whose key is lost cannot be opened."),
            ))
        }
        KeyAction::Import => {
            let mut text = String::new();
            std::io::stdin()
                .take(4096)
                .read_to_string(&mut text)
                .map_err(|e| Error::io("reading the key from stdin", &e))?;
            let text = Zeroizing::new(text);
            // The 64 hex characters, or the whole recovery sheet `key export --out` wrote.
            let key = keychain::key_from_recovery_text(&text)?;
            keys.store(&key)?;
            since(&key);
            Ok(shown(&key, &KeyOrigin::Keychain, "Imported key", None))
        }
        KeyAction::Export { out: Some(path) } => {
            let (key, origin) = keys.current()?;
            keychain::save_recovery_sheet(&key, path)?;
            if let Some(dir) = data_dir {
                keychain::mark_recovery_saved(dir, &key.fingerprint().to_string());
            }
            Ok(shown(
                &key,
                &origin,
                "Recovery sheet written for key",
                Some("Print it or keep it away from this computer, then delete the file here"),
            ))
        }
        KeyAction::Export { out: None } => {
            let (key, origin) = keys.current()?;
            if let Some(dir) = data_dir {
                keychain::mark_recovery_saved(dir, &key.fingerprint().to_string());
            }
            Ok(KeyReport::Exported {
                hex: key.to_hex(),
                fingerprint: key.fingerprint().to_string(),
                origin: origin.to_string(),
            })
        }
        KeyAction::Fingerprint => {
            let (key, origin) = keys.current()?;
            Ok(shown(&key, &origin, "Key", None))
        }
    }
}
