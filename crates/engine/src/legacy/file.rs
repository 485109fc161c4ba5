//! One old-system file: recognised from its first bytes, decrypted (AES-256-GCM with a
//! 16-byte nonce, as Node wrote it), diagnosed without trusting it when it does not
//! authenticate, and its JSON parsed as it is decompressed; and writing one.

use std::io::Read;

use aes_gcm::aead::{AeadInOut, KeyInit};
use ctr::cipher::{KeyIvInit, StreamCipher};
use ghash::universal_hash::UniversalHash;
use serde_json::Value;

use crate::crypto::Key;
use crate::error::{Error, ErrorKind, Result};

use crate::legacy::{
    is_dev_key, Aes256Gcm16, Ctr, V1Backup, DEV_KEY_HEX, GZIP_MAGIC, IV_LEN, TAG_LEN,
};

/// The 16-byte counter block GCM starts from for a 16-byte IV: inc32(GHASH_H(IV ‖ 0⁶⁴ ‖ 128)).
pub(super) fn ctr_start(key: &Key, iv: &[u8]) -> [u8; 16] {
    // H = AES_K(0¹²⁸): the first keystream block of CTR from a zero counter.
    let mut h = [0u8; 16];
    Ctr::new(key.bytes().into(), (&[0u8; 16]).into()).apply_keystream(&mut h);
    let mut ghash = ghash::GHash::new(&h.into());
    ghash.update_padded(iv);
    let mut lens = [0u8; 16];
    lens[8..].copy_from_slice(&((iv.len() as u64) * 8).to_be_bytes());
    ghash.update_padded(&lens);
    let j0 = ghash.finalize();
    let mut counter = [0u8; 16];
    counter.copy_from_slice(&j0);
    let c =
        u32::from_be_bytes([counter[12], counter[13], counter[14], counter[15]]).wrapping_add(1);
    counter[12..].copy_from_slice(&c.to_be_bytes());
    counter
}

/// The plaintext CTR gives with `key`, without authentication: for diagnosis only.
pub(super) fn unauthenticated(key: &Key, file: &[u8]) -> Vec<u8> {
    let counter = ctr_start(key, &file[..IV_LEN]);
    let mut data = file[IV_LEN + TAG_LEN..].to_vec();
    Ctr::new(key.bytes().into(), (&counter).into()).apply_keystream(&mut data);
    data
}

pub(super) fn decrypt(key: &Key, file: &[u8]) -> Option<Vec<u8>> {
    let cipher = Aes256Gcm16::new(key.bytes().into());
    let iv: &[u8; IV_LEN] = file[..IV_LEN].try_into().ok()?;
    let tag: &[u8; TAG_LEN] = file[IV_LEN..IV_LEN + TAG_LEN].try_into().ok()?;
    let mut data = file[IV_LEN + TAG_LEN..].to_vec();
    cipher
        .decrypt_inout_detached(iv.into(), b"", data.as_mut_slice().into(), tag.into())
        .ok()?;
    Some(data)
}

/// Files up to this size are read whole and authenticated without sniffing (memory: a few
/// times this); larger ones must look like gzip under one of the keys first.
pub(super) const READ_WHOLE: u64 = 32 << 20;

/// How many bytes of a file [`sniff`] needs.
pub const SNIFF_LEN: usize = IV_LEN + TAG_LEN + 3;

/// The largest file the old service could have written: its JSON was at most [`MAX_JSON`]
/// (a JavaScript string), and gzip never grows data by more than a few bytes per 16 KiB.
pub const MAX_FILE: u64 = MAX_JSON + (MAX_JSON >> 10) + 1024;

/// Decide from the first [`SNIFF_LEN`] bytes and the file's size whether it can be an
/// old-system file for one of `keys` (or the development key), without reading the rest (for
/// files over 32 MiB; smaller ones always pass, to be authenticated whole): AES-GCM
/// is CTR mode underneath, so the right key turns the first ciphertext bytes into gzip's magic.
/// A random or foreign file (a 10 GB video picked by mistake) is refused here, in bounded
/// memory; only a file that passes is read whole and authenticated by [`open`].
///
/// # Errors
/// `NotABackup` when no key turns it into gzip, or when it is larger than the old service
/// could write.
pub fn sniff(head: &[u8], size: u64, keys: &[Key]) -> Result<()> {
    if head.len() < SNIFF_LEN {
        return Err(not_a_backup());
    }
    if size > MAX_FILE {
        return Err(Error::new(
            ErrorKind::NotABackup,
            format!(
                "This file ({} MB) is not a SchoolVault backup, and it is larger than any old-system backup can be",
                size / 1_000_000
            ),
            "Pick a .svb file made by SchoolVault or an .enc file of the old backup service",
        ));
    }
    if size <= READ_WHOLE {
        // Small enough to authenticate outright: `open` then tells a damaged file under the
        // right key from a foreign one exactly.
        return Ok(());
    }
    let dev = Key::from_hex(DEV_KEY_HEX)?;
    let head = &head[..SNIFF_LEN];
    let gzip = keys
        .iter()
        .chain(std::iter::once(&dev))
        .any(|k| unauthenticated(k, head).starts_with(&GZIP_MAGIC));
    if gzip {
        Ok(())
    } else {
        Err(not_a_backup())
    }
}

/// Open a v1 file with the first of `keys` (then the old development key) that authenticates it.
///
/// # Errors
/// `NotABackup` ("not a backup, or made with another key") when no key opens it, `Truncated`
/// or `Damaged` when a key is right but the file does not authenticate, `Damaged` for plaintext
/// that is not gzip, not JSON, or lacks `version`/`tables`.
pub fn open(file: &[u8], keys: &[Key]) -> Result<V1Backup> {
    let dev = Key::from_hex(DEV_KEY_HEX)?;
    if file.len() < IV_LEN + TAG_LEN + GZIP_MAGIC.len() {
        return Err(not_a_backup());
    }
    let candidates: Vec<(&Key, bool)> = keys
        .iter()
        // The dev key is the dev key wherever it came from (an old keychain import).
        .map(|k| (k, is_dev_key(k)))
        .chain(std::iter::once((&dev, true)))
        .collect();
    for (key, is_dev) in &candidates {
        if let Some(plain) = decrypt(key, file) {
            let mut backup = parse(&plain, *is_dev)?;
            backup.key_fingerprint = key.fingerprint().to_string();
            return Ok(backup);
        }
    }
    // Nothing authenticates: a wrong key, or a damaged file?
    for (key, _) in &candidates {
        let plain = unauthenticated(key, file);
        if plain.starts_with(&GZIP_MAGIC) {
            let cut_short = matches!(
                std::io::copy(&mut flate2::read::GzDecoder::new(&plain[..]), &mut std::io::sink()),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof
            );
            return Err(if cut_short {
                Error::new(
                    ErrorKind::Truncated,
                    "This old-system backup is incomplete: the file was cut short",
                    "It was probably truncated while being copied; use another copy of this backup",
                )
            } else {
                Error::new(
                    ErrorKind::Damaged,
                    "This old-system backup is damaged: its bytes changed after it was written, so it does not authenticate",
                    "Use another copy of this backup",
                )
            });
        }
    }
    Err(not_a_backup())
}

pub(super) fn not_a_backup() -> Error {
    Error::new(
        ErrorKind::NotABackup,
        "This file is not a SchoolVault backup, or it is an old-system backup made with another key",
        "For an old-system .enc file, set BACKUP_ENCRYPTION_KEY to that system's key (or import it with `schoolvault key import`)",
    )
    .in_app("For an old-system .enc file, import that system's key first: Settings → Encryption key → Import a key from a file… (its .env file holds it)")
}

/// The most JSON an old-system file may decompress to: the old service built it as one
/// JavaScript string, which cannot be longer than about 1 GiB; anything larger is not its file.
pub(super) const MAX_JSON: u64 = 1 << 30;

/// Counts what is read through it (to tell "too large" from "not JSON").
pub(super) struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

pub(super) fn parse(gz: &[u8], dev_key: bool) -> Result<V1Backup> {
    // Parsed as it is decompressed: no copy of the whole JSON is held, so a "gzip bomb" of
    // white space or padding costs nothing, and past MAX_JSON it is refused.
    let mut json = Counted {
        inner: std::io::BufReader::with_capacity(
            1 << 16,
            flate2::read::GzDecoder::new(gz).take(MAX_JSON + 1),
        ),
        read: 0,
    };
    let parsed: std::result::Result<Value, serde_json::Error> = serde_json::from_reader(&mut json);
    if json.read > MAX_JSON {
        return Err(Error::new(
            ErrorKind::Damaged,
            "This old-system backup decompresses to more than 1 GiB, more than the old service could ever write",
            "It was not written by the old backup service; use another backup",
        ));
    }
    let doc = match parsed {
        Ok(doc) => doc,
        Err(e) if e.is_io() => {
            return Err(Error::new(
                ErrorKind::Damaged,
                "This old-system backup decrypts, but what it holds is not gzip data",
                "It was not written by the old backup service; use another backup",
            ))
        }
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Damaged,
                format!(
                    "This old-system backup decrypts and decompresses, but it is not JSON ({e})"
                ),
                "It was not written by the old backup service; use another backup",
            ))
        }
    };
    let missing = |what: &str| {
        Error::new(
            ErrorKind::Damaged,
            format!("This old-system backup's JSON has no {what:?}, so it is not a backup of the old system"),
            "Use another backup",
        )
    };
    let version = doc
        .get("version")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("version"))?
        .to_string();
    let timestamp = doc
        .get("timestamp")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(Value::Object(tables)) = doc.get("tables") else {
        return Err(missing("tables"));
    };
    let mut out = Vec::with_capacity(tables.len());
    for (key, rows) in tables {
        let Value::Array(rows) = rows else {
            return Err(Error::new(
                ErrorKind::Damaged,
                format!("In this old-system backup, {key:?} is not a list of records"),
                "Use another backup",
            ));
        };
        out.push((key.clone(), rows.clone()));
    }
    Ok(V1Backup {
        version,
        timestamp,
        tables: out,
        dev_key,
        key_fingerprint: String::new(),
    })
}

/// Encrypt `plaintext` (gzip of the v1 JSON, or any bytes) as the old service did:
/// `[IV 16][tag 16][AES-256-GCM ciphertext]` with a fresh random 16-byte IV. [`export`](crate::legacy::export) uses
/// it; tests and fuzzing use it to make v1 files whose plaintext they choose.
///
/// # Errors
/// `Internal` if encryption fails, which it does not for a file the old service could write.
pub fn encrypt(key: &Key, plaintext: Vec<u8>) -> Result<Vec<u8>> {
    let mut data = plaintext;
    let mut iv = [0u8; IV_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut iv);
    let tag = Aes256Gcm16::new(key.bytes().into())
        .encrypt_inout_detached((&iv).into(), b"", data.as_mut_slice().into())
        .map_err(|_| Error::new(ErrorKind::Internal, "encryption failed", ""))?;
    let mut file = Vec::with_capacity(IV_LEN + TAG_LEN + data.len());
    file.extend_from_slice(&iv);
    file.extend_from_slice(&tag);
    file.extend_from_slice(&data);
    Ok(file)
}
