//! Where keys come from: the OS keychain, an environment variable or a key file.
//!
//! The keychain (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows,
//! through the `keyring` crate) holds, under the service `SchoolVault`:
//! - `encryption-key`: the current key, 64 hex characters;
//! - `encryption-key-<fingerprint>`: every key ever used here, so backups made before a key
//!   rotation stay readable.
//!
//! For servers and CI, `BACKUP_ENCRYPTION_KEY` (64 hex, as the old system used it) or a key file
//! (mode 0600, 64 hex) override the keychain: backups are written with that key, and it is tried
//! first when reading. Keys never appear in messages; only fingerprints do.

use std::path::Path;

use zeroize::Zeroizing;

use crate::crypto::{Fingerprint, Key};
use crate::error::{Error, ErrorKind, Result};

/// The keychain service name.
pub const SERVICE: &str = "SchoolVault";
/// The environment variable that overrides the keychain.
pub const KEY_ENV: &str = "BACKUP_ENCRYPTION_KEY";
const CURRENT: &str = "encryption-key";

/// A store of named secrets.
pub trait Keychain: Send + Sync {
    /// The secret stored under `account`, if any.
    ///
    /// # Errors
    /// `Keychain` when the store cannot be used.
    fn get(&self, account: &str) -> Result<Option<Zeroizing<String>>>;
    /// Store `secret` under `account`, replacing what was there.
    ///
    /// # Errors
    /// `Keychain` when the store cannot be used.
    fn set(&self, account: &str, secret: &str) -> Result<()>;
    /// Forget the secret stored under `account`; nothing stored there is not an error.
    ///
    /// # Errors
    /// `Keychain` when the store cannot be used.
    fn delete(&self, account: &str) -> Result<()>;
}

/// The operating system's keychain.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsKeychain;

fn keychain_error(err: &keyring::Error) -> Error {
    let guidance = "Unlock the keychain (on Linux: GNOME Keyring or another Secret Service must be running and unlocked), or set BACKUP_ENCRYPTION_KEY / use --key-file";
    let in_app = "Unlock the keychain (on Linux: GNOME Keyring or another Secret Service must be running and unlocked), then try again";
    let e = match err {
        keyring::Error::NoStorageAccess(_) => Error::new(
            ErrorKind::Keychain,
            "The OS keychain is locked or refused access",
            guidance,
        ),
        keyring::Error::NoDefaultStore => Error::new(
            ErrorKind::Keychain,
            "No OS keychain is available on this computer",
            guidance,
        ),
        other => Error::new(
            ErrorKind::Keychain,
            format!("The OS keychain failed: {other}"),
            guidance,
        ),
    };
    e.in_app(in_app)
}

impl Keychain for OsKeychain {
    fn get(&self, account: &str) -> Result<Option<Zeroizing<String>>> {
        let entry = keyring::Entry::new(SERVICE, account).map_err(|e| keychain_error(&e))?;
        match entry.get_password() {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keychain_error(&e)),
        }
    }

    fn set(&self, account: &str, secret: &str) -> Result<()> {
        let entry = keyring::Entry::new(SERVICE, account).map_err(|e| keychain_error(&e))?;
        entry.set_password(secret).map_err(|e| keychain_error(&e))
    }

    fn delete(&self, account: &str) -> Result<()> {
        let entry = keyring::Entry::new(SERVICE, account).map_err(|e| keychain_error(&e))?;
        match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keychain_error(&e)),
        }
    }
}

/// Where the override key came from, for messages.
#[derive(Debug, Clone)]
pub enum KeyOrigin {
    /// `BACKUP_ENCRYPTION_KEY`.
    Env,
    /// A key file.
    File(String),
    /// The OS keychain.
    Keychain,
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOrigin::Env => write!(f, "BACKUP_ENCRYPTION_KEY"),
            KeyOrigin::File(p) => write!(f, "the key file {p}"),
            KeyOrigin::Keychain => write!(f, "the OS keychain"),
        }
    }
}

/// The keys this process may use.
pub struct Keys {
    override_key: Option<(Key, KeyOrigin)>,
    keychain: Box<dyn Keychain>,
}

/// The key to write a backup with.
pub struct WriteKey {
    /// The key.
    pub key: Key,
    /// Where it came from.
    pub origin: KeyOrigin,
    /// True when it was generated just now (the user must save a recovery copy).
    pub generated: bool,
}

impl Keys {
    /// Keys from `key_file` if given, else `BACKUP_ENCRYPTION_KEY` if set, backed by `keychain`.
    ///
    /// # Errors
    /// `InvalidInput` for a key file or variable that does not hold a key, or a key file that
    /// others may read.
    pub fn new(key_file: Option<&Path>, keychain: Box<dyn Keychain>) -> Result<Keys> {
        let override_key = if let Some(path) = key_file {
            Some((
                read_key_file(path)?,
                KeyOrigin::File(path.display().to_string()),
            ))
        } else if let Some(text) = std::env::var_os(KEY_ENV) {
            let text = Zeroizing::new(text.to_string_lossy().into_owned());
            let key = Key::from_hex(&text).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("{KEY_ENV} is set but does not hold a key: {}", e.message()),
                    "Set it to the 64 hexadecimal characters of the key, or unset it to use the keychain",
                )
            })?;
            Some((key, KeyOrigin::Env))
        } else {
            None
        };
        if let Some((key, origin)) = &override_key {
            refuse_public_key(key, origin)?;
        }
        Ok(Keys {
            override_key,
            keychain,
        })
    }

    /// The key to encrypt a new backup with: the override, else the keychain's current key,
    /// else a new key, generated and stored in the keychain.
    ///
    /// # Errors
    /// `Keychain` when no override is set and the keychain cannot be used.
    pub fn for_writing(&self) -> Result<WriteKey> {
        if let Some((key, origin)) = &self.override_key {
            return Ok(WriteKey {
                key: key.clone(),
                origin: origin.clone(),
                generated: false,
            });
        }
        if let Some(key) = self.keychain_current()? {
            // Imported before SchoolVault refused it: never write a new backup with it.
            refuse_public_key(&key, &KeyOrigin::Keychain)?;
            return Ok(WriteKey {
                key,
                origin: KeyOrigin::Keychain,
                generated: false,
            });
        }
        let key = Key::generate();
        self.store(&key)?;
        Ok(WriteKey {
            key,
            origin: KeyOrigin::Keychain,
            generated: true,
        })
    }

    /// The key with fingerprint `wanted`, to read a backup.
    ///
    /// # Errors
    /// `WrongKey`, naming the backup's fingerprint and the one this computer has.
    pub fn for_reading(&self, wanted: Fingerprint) -> Result<Key> {
        // SchoolVault never writes with the public development key: a backup that names it
        // was made by someone else, and anyone could have (an old keychain import would
        // otherwise open it without a word).
        if crate::legacy::dev_key_fingerprint() == Some(wanted) {
            return Err(Error::new(
                ErrorKind::Untrusted,
                "This file claims to be a SchoolVault backup encrypted with the old system's public development key, which SchoolVault never uses: anyone could have made it",
                "Do not restore it; use a backup made by SchoolVault with your own key",
            ));
        }
        if let Some((key, _)) = &self.override_key {
            if key.fingerprint() == wanted {
                return Ok(key.clone());
            }
        }
        // The keychain is optional when an override is set: a locked keychain must not hide
        // the real problem (the wrong key).
        let from_keychain = self.keychain.get(&format!("{CURRENT}-{wanted}"));
        match from_keychain {
            Ok(Some(hex)) => {
                let key = Key::from_hex(&hex)?;
                if key.fingerprint() == wanted {
                    return Ok(key);
                }
            }
            Ok(None) => {}
            Err(e) if self.override_key.is_none() => return Err(e),
            Err(_) => {}
        }
        let have = match &self.override_key {
            Some((key, origin)) => format!("{origin} holds key {}", key.fingerprint()),
            None => match self.keychain_current() {
                Ok(Some(key)) => {
                    format!("this computer's keychain holds key {}", key.fingerprint())
                }
                _ => "this computer has no key".to_string(),
            },
        };
        Err(Error::new(
            ErrorKind::WrongKey,
            format!("This backup was encrypted with key {wanted}, but {have}"),
            "Import the matching key from your recovery copy with `schoolvault key import` (or set BACKUP_ENCRYPTION_KEY to it)",
        )
        .in_app("Import the matching key from its recovery copy: Settings → Encryption key → Import a key from a file…"))
    }

    /// Every key at hand to try on a file that does not name its key (an old-system file):
    /// the override, then the keychain's current key. A keychain that cannot be used is skipped.
    pub fn candidates(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.override_key.iter().map(|(k, _)| k.clone()).collect();
        if let Ok(Some(k)) = self.keychain_current() {
            if keys.iter().all(|o| o.fingerprint() != k.fingerprint()) {
                keys.push(k);
            }
        }
        keys
    }

    /// The keychain's current key, if any.
    ///
    /// # Errors
    /// `Keychain` when the keychain cannot be used.
    pub fn keychain_current(&self) -> Result<Option<Key>> {
        match self.keychain.get(CURRENT)? {
            Some(hex) => Key::from_hex(&hex).map(Some).map_err(|_| {
                Error::new(
                    ErrorKind::Keychain,
                    "The keychain's SchoolVault encryption key is not a valid key",
                    "Import your key again with `schoolvault key import`",
                )
                .in_app(
                    "Import your key again: Settings → Encryption key → Import a key from a file…",
                )
            }),
            None => Ok(None),
        }
    }

    /// The key in use: the override, else the keychain's current key.
    ///
    /// # Errors
    /// `NoKey` when there is none, `Keychain` when the keychain cannot be used.
    pub fn current(&self) -> Result<(Key, KeyOrigin)> {
        if let Some((key, origin)) = &self.override_key {
            return Ok((key.clone(), origin.clone()));
        }
        match self.keychain_current()? {
            Some(key) => Ok((key, KeyOrigin::Keychain)),
            None => Err(Error::new(
                ErrorKind::NoKey,
                "This computer has no SchoolVault encryption key yet",
                "Run `schoolvault key generate`, or import your key with `schoolvault key import`",
            )
            .in_app("Generate a key, or import yours from its recovery copy, in the set-up screen or Settings → Encryption key")),
        }
    }

    /// Store `key` in the keychain as the current key (earlier keys stay readable).
    ///
    /// # Errors
    /// `InvalidInput` for the old system's public development key; `Keychain` when the
    /// keychain cannot be used.
    pub fn store(&self, key: &Key) -> Result<()> {
        refuse_public_key(key, &KeyOrigin::Keychain)?;
        let hex = key.to_hex();
        self.keychain
            .set(&format!("{CURRENT}-{}", key.fingerprint()), &hex)?;
        self.keychain.set(CURRENT, &hex)
    }

    /// Whether the key can be rotated here: not when it comes from `BACKUP_ENCRYPTION_KEY` or
    /// a key file (it is rotated there).
    ///
    /// # Errors
    /// `InvalidInput` saying where the key comes from.
    pub fn check_rotatable(&self) -> Result<()> {
        match &self.override_key {
            Some((_, origin)) => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("The key in use comes from {origin}, not from the keychain, so it cannot be rotated here"),
                "Generate a new key with `schoolvault key generate`, save its recovery copy, and put it where the old one was (keep the old key too, for older backups)",
            )
            .in_app("Rotate it where it is set: put a new key there and keep the old one too, for older backups")),
            None => Ok(()),
        }
    }

    /// Rotate to `key` (a new one): `save` writes its recovery copy first, then it becomes
    /// current; the earlier keys stay in the keychain, so every older backup still opens. If
    /// `save` fails, nothing changes: a key is never used before its copy exists.
    ///
    /// # Errors
    /// [`Keys::check_rotatable`]'s, `save`'s, `Keychain`.
    pub fn rotate(&self, key: &Key, save: impl FnOnce(&Key) -> Result<()>) -> Result<()> {
        self.check_rotatable()?;
        refuse_public_key(key, &KeyOrigin::Keychain)?;
        save(key)?;
        self.store(key)
    }
}

/// Refuse the old system's public development key as a SchoolVault key: every backup written
/// with it could be read by anyone, and anyone could forge one that restores their own data.
/// (Old files under it are still read: `legacy` tries it by itself, and says so.)
///
/// # Errors
/// `InvalidInput` when `key` is that key.
pub fn refuse_public_key(key: &Key, origin: &KeyOrigin) -> Result<()> {
    if !crate::legacy::is_dev_key(key) {
        return Ok(());
    }
    let what = match origin {
        KeyOrigin::Keychain => "This key".to_string(),
        other => format!("The key in {other}"),
    };
    let in_app = match origin {
        KeyOrigin::Keychain => "Generate a new key: Settings → Encryption key; old-system files made with the development key are still read without importing it",
        _ => "Remove it there, or put a key of your own in its place; old-system files made with the development key are still read without it",
    };
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("{what} is the old system's public development key (0123…cdef, printed in its guide): backups made with it could be read and forged by anyone"),
        match origin {
            KeyOrigin::Keychain => "Generate a new key with `schoolvault key generate` (or Settings → Encryption key); old-system files made with the development key are still read without importing it",
            _ => "Unset it (or point it at a key of your own, e.g. from `schoolvault key generate`); old-system files made with the development key are still read without it",
        },
    )
    .in_app(in_app))
}

/// Read a key file: 64 hex characters, readable by its owner only.
///
/// # Errors
/// `NotFound`, `InvalidInput` for a file that others may read or that holds no key.
pub fn read_key_file(path: &Path) -> Result<Key> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Error::io(format_args!("reading the key file {}", path.display()), &e))?,
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| Error::io(format_args!("reading the key file {}", path.display()), &e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "The key file {} may be read by other users (mode {:o})",
                    path.display(),
                    mode & 0o777
                ),
                format!("Restrict it with `chmod 600 {}`", path.display()),
            ));
        }
    }
    Key::from_hex(&text).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "The key file {} does not hold a key: {}",
                path.display(),
                e.message()
            ),
            "It must contain the 64 hexadecimal characters of the key",
        )
    })
}

/// The recovery sheet for `key`: what the person prints or keeps away from this computer.
/// The app's "Save a recovery copy" and `schoolvault key export --out FILE` write this same
/// text.
pub fn recovery_sheet(key: &Key) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "SchoolVault encryption key — recovery copy\n\
         ==========================================\n\n\
         Key fingerprint: {fp}\n\
         Key (64 hex):    {hex}\n\n\
         Every SchoolVault backup of this school is encrypted with this key. Without it, no\n\
         backup can be restored. Print this sheet or keep this file somewhere safe and away\n\
         from this computer (a locked drawer, a password manager). To use it on another\n\
         computer: SchoolVault → Settings → Encryption key → Import, or\n\
         `schoolvault key import`.\n",
        fp = key.fingerprint(),
        hex = key.to_hex().as_str()
    ))
}

/// The key in a recovery copy: the 64 hex characters alone, the old system's settings file
/// (a `BACKUP_ENCRYPTION_KEY=…` line), or a whole [`recovery_sheet`] as saved or printed, whose
/// "Key (64 hex)" line is read and checked against its "Key fingerprint" line (a mistyped
/// sheet is refused, not imported as another key).
///
/// # Errors
/// `InvalidInput` saying what is wrong with the text.
pub fn key_from_recovery_text(text: &str) -> Result<Key> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let Some(hex) = field("Key (64 hex):") else {
        // The old system's settings (.env): `BACKUP_ENCRYPTION_KEY=…`, maybe quoted.
        if let Some(v) = field("BACKUP_ENCRYPTION_KEY=") {
            let v = Zeroizing::new(v);
            return Key::from_hex(v.trim_matches(|c| c == '"' || c == '\''));
        }
        return Key::from_hex(text);
    };
    let hex = Zeroizing::new(hex);
    let key = Key::from_hex(&hex)?;
    if let Some(fp) = field("Key fingerprint:") {
        if !fp.eq_ignore_ascii_case(&key.fingerprint().to_string()) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("The key on this recovery sheet does not match its fingerprint {fp}: a character of the key was changed or mistyped"),
                "Compare the key with the printed sheet character by character and correct it",
            ));
        }
    }
    Ok(key)
}

/// Write the [`recovery_sheet`] of `key` to `path`: atomically and readable only by this
/// user, even over an existing file that anyone could read.
///
/// # Errors
/// `Io` / `DiskFull`, naming the file.
pub fn save_recovery_sheet(key: &Key, path: &Path) -> Result<()> {
    crate::storage::write_private(path, recovery_sheet(key).as_bytes())
}

/// Where the app remembers that the current key's recovery copy was not saved yet (beside the
/// catalog): a key generated here waits for its copy, across restarts, until it is saved.
fn recovery_mark(dir: &Path) -> std::path::PathBuf {
    dir.join("key-recovery-pending.json")
}

/// The key with `fingerprint` was just generated: its recovery copy is owed.
///
/// # Errors
/// `Io` writing the mark.
pub fn mark_recovery_pending(dir: &Path, fingerprint: &str) -> Result<()> {
    let body = serde_json::json!({ "fingerprint": fingerprint, "since": chrono::Utc::now() });
    crate::storage::write_private(&recovery_mark(dir), body.to_string().as_bytes())
}

/// The recovery copy of the key with `fingerprint` was saved (or the key came from elsewhere).
pub fn mark_recovery_saved(dir: &Path, fingerprint: &str) {
    if recovery_pending(dir, fingerprint) {
        let _ = std::fs::remove_file(recovery_mark(dir));
    }
}

/// Whether the key with `fingerprint` still owes its recovery copy.
pub fn recovery_pending(dir: &Path, fingerprint: &str) -> bool {
    std::fs::read(recovery_mark(dir))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["fingerprint"] == fingerprint)
}

/// Since when each key has been used here, and whether the yearly reminder to rotate it was
/// dismissed (beside the catalog, `keys.json`: fingerprints and dates, never a key).
fn key_ledger(dir: &Path) -> std::path::PathBuf {
    dir.join("keys.json")
}

fn read_ledger(dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    std::fs::read(key_ledger(dir))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

fn write_ledger(dir: &Path, ledger: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let body = serde_json::Value::Object(ledger.clone()).to_string();
    crate::storage::write_private(&key_ledger(dir), body.as_bytes())
}

/// Since when the key with `fingerprint` is used here, recording now when it is new (a key
/// made before this record existed counts from the first time it is seen).
pub fn key_since(dir: &Path, fingerprint: &str) -> chrono::DateTime<chrono::Utc> {
    let mut ledger = read_ledger(dir);
    if let Some(at) = ledger
        .get(fingerprint)
        .and_then(|e| e["since"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        return at.with_timezone(&chrono::Utc);
    }
    let now = chrono::Utc::now();
    ledger.insert(
        fingerprint.to_string(),
        serde_json::json!({ "since": now.to_rfc3339() }),
    );
    // Not recorded (a read-only folder): asked again next time, no harm done.
    let _ = write_ledger(dir, &ledger);
    now
}

/// The old system's advice: a new key every year.
pub const KEY_ROTATION_DAYS: i64 = 365;

/// Whether the key with `fingerprint` is older than a year here and the reminder to rotate it
/// was not dismissed.
pub fn rotation_due(dir: &Path, fingerprint: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    rotation_due_since(dir, fingerprint, key_since(dir, fingerprint), now)
}

/// [`rotation_due`] for a key whose [`key_since`] the caller has already read.
pub fn rotation_due_since(
    dir: &Path,
    fingerprint: &str,
    since: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let dismissed = read_ledger(dir)
        .get(fingerprint)
        .is_some_and(|e| e["reminder_dismissed"].as_bool() == Some(true));
    !dismissed && now - since > chrono::Duration::days(KEY_ROTATION_DAYS)
}

/// Dismiss the yearly reminder for the key with `fingerprint` (a rotated key starts afresh).
///
/// # Errors
/// `Io` writing the record.
pub fn dismiss_rotation_reminder(dir: &Path, fingerprint: &str) -> Result<()> {
    key_since(dir, fingerprint);
    let mut ledger = read_ledger(dir);
    if let Some(e) = ledger.get_mut(fingerprint).and_then(|e| e.as_object_mut()) {
        e.insert("reminder_dismissed".into(), serde_json::Value::Bool(true));
    }
    write_ledger(dir, &ledger)
}

/// Record when the key with `fingerprint` came into use (a test's clock: `at`).
///
/// # Errors
/// `Io` writing the record.
pub fn record_key_since(
    dir: &Path,
    fingerprint: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let mut ledger = read_ledger(dir);
    ledger.insert(
        fingerprint.to_string(),
        serde_json::json!({ "since": at.to_rfc3339() }),
    );
    write_ledger(dir, &ledger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_older_than_a_year_is_due_for_rotation_until_dismissed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = chrono::Utc::now();
        // First seen now: not due.
        assert!(!rotation_due(dir.path(), "aaaa", now));
        assert!(!rotation_due(
            dir.path(),
            "aaaa",
            now + chrono::Duration::days(300)
        ));
        assert!(rotation_due(
            dir.path(),
            "aaaa",
            now + chrono::Duration::days(366)
        ));
        dismiss_rotation_reminder(dir.path(), "aaaa").expect("dismissed");
        assert!(!rotation_due(
            dir.path(),
            "aaaa",
            now + chrono::Duration::days(366)
        ));
        // Another key counts from its own day.
        record_key_since(dir.path(), "bbbb", now - chrono::Duration::days(400)).expect("noted");
        assert!(rotation_due(dir.path(), "bbbb", now));
        assert!(!rotation_due(dir.path(), "aaaa", now));
    }

    #[test]
    fn a_recovery_sheet_imports_as_its_key_and_a_mistyped_one_is_refused() {
        let key = Key::generate();
        let sheet = recovery_sheet(&key);
        let read = key_from_recovery_text(&sheet).expect("the sheet");
        assert_eq!(read.fingerprint(), key.fingerprint());
        // The hex alone, as typed or from the old system's variable.
        let hex = key.to_hex();
        let read = key_from_recovery_text(&format!("  {}\n", hex.as_str())).expect("the hex");
        assert_eq!(read.fingerprint(), key.fingerprint());
        // One character of the key changed on the sheet: its fingerprint line refuses it.
        let first = hex.chars().next().expect("64 characters");
        let other = if first == '0' { '1' } else { '0' };
        let bad = sheet.replacen(hex.as_str(), &format!("{other}{}", &hex[1..]), 1);
        let e = key_from_recovery_text(&bad).expect_err("mistyped");
        assert!(
            e.to_string().contains("does not match its fingerprint"),
            "{e}"
        );
        assert!(key_from_recovery_text("hello").is_err());
        // The old system's .env.
        let env = format!(
            "DATABASE_URL=postgres://x\nBACKUP_ENCRYPTION_KEY=\"{}\"\n",
            hex.as_str()
        );
        let read = key_from_recovery_text(&env).expect("the .env");
        assert_eq!(read.fingerprint(), key.fingerprint());
    }

    #[cfg(unix)]
    #[test]
    fn the_recovery_sheet_is_private_and_names_the_key() {
        use std::os::unix::fs::PermissionsExt;
        let key = Key::generate();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sheet.txt");
        std::fs::write(&path, "old").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        save_recovery_sheet(&key, &path).expect("saved");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(key.to_hex().as_str()));
        assert!(text.contains(&key.fingerprint().to_string()));
        assert_eq!(text, recovery_sheet(&key).as_str());
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_public_development_key_is_refused_from_every_origin() {
        let dev = Key::from_hex(crate::legacy::DEV_KEY_HEX).expect("hex");
        for origin in [
            KeyOrigin::Env,
            KeyOrigin::File("k.txt".into()),
            KeyOrigin::Keychain,
        ] {
            let e = refuse_public_key(&dev, &origin).expect_err("refused");
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains("public development key"), "{e}");
        }
        assert!(refuse_public_key(&Key::generate(), &KeyOrigin::Env).is_ok());
    }
}
