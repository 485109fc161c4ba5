//! Keys and authenticated encryption: the only module that touches `aes-gcm`.
//!
//! Archives are encrypted with the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár)
//! over AES-256-GCM, as RustCrypto's `aead-stream` implements it (`EncryptorBE32`): the nonce is
//! a 7-byte random prefix, a 32-bit big-endian chunk counter and a last-chunk flag, so chunks
//! cannot be reordered, dropped or cut off without detection. [`EncryptingWriter`] and
//! [`DecryptingReader`] adapt it to `std::io`. Every chunk is `chunk_size` plaintext bytes plus
//! a 16-byte tag; the last chunk is always shorter than a full one (possibly empty), so a reader
//! knows where the stream ends and a file cut at a chunk boundary is still caught.
//!
//! Keys are 32 random bytes, zeroized on drop and never printed; a [`Fingerprint`]
//! (HMAC-SHA256(key, "schoolvault key fingerprint"), first 8 bytes) names a key without
//! revealing it.

use std::fmt;
use std::io::{self, Read, Write};

use aead_stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, ErrorKind, Result};

/// Size of the GCM tag appended to every chunk.
pub const TAG_LEN: usize = 16;
/// Size of the random nonce prefix of a STREAM (12-byte GCM nonce less 5 bytes of counter+flag).
pub const NONCE_PREFIX_LEN: usize = 7;

/// A 256-bit encryption key. Zeroized when dropped; `Debug` never shows it.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct Key([u8; 32]);

impl Key {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Key {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Key(bytes)
    }

    /// Parse 64 hexadecimal characters (surrounding white space is ignored), the form the old
    /// system's `BACKUP_ENCRYPTION_KEY` used and `key export` prints.
    ///
    /// # Errors
    /// `InvalidInput` when the text is not exactly 64 hex characters; the text is not echoed.
    pub fn from_hex(text: &str) -> Result<Key> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; 32]);
        if text.len() != 64 || hex::decode_to_slice(text, &mut bytes[..]).is_err() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "That is not an encryption key: a key is 64 hexadecimal characters (0-9, a-f), this is {} characters",
                    text.len()
                ),
                "Copy the key again from your recovery copy",
            ));
        }
        Ok(Key(*bytes))
    }

    /// The key as 64 lowercase hex characters, for the keychain and `key export` only.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }

    /// The key's public name.
    pub fn fingerprint(&self) -> Fingerprint {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"schoolvault key fingerprint");
        let out = mac.finalize().into_bytes();
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&out[..8]);
        Fingerprint(fp)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(<redacted>, fingerprint {})", self.fingerprint())
    }
}

/// The public name of a key: 8 bytes shown as 16 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 8]);

impl Fingerprint {
    /// Parse 16 hex characters.
    ///
    /// # Errors
    /// `InvalidInput` if the text is not 16 hex characters.
    pub fn from_hex(text: &str) -> Result<Fingerprint> {
        let mut fp = [0u8; 8];
        hex::decode_to_slice(text.trim(), &mut fp).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{text:?} is not a key fingerprint (16 hexadecimal characters)"),
                "Check the value",
            )
        })?;
        Ok(Fingerprint(fp))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A fresh random STREAM nonce prefix.
pub fn random_nonce_prefix() -> [u8; NONCE_PREFIX_LEN] {
    let mut p = [0u8; NONCE_PREFIX_LEN];
    rand::rngs::OsRng.fill_bytes(&mut p);
    p
}

fn cipher(key: &Key) -> Aes256Gcm {
    Aes256Gcm::new(key.bytes().into())
}

/// Encrypts everything written to it as a STREAM of `chunk_size` chunks into `inner`.
/// Call [`EncryptingWriter::finish`]: dropping it without finishing leaves a stream that every
/// reader rejects as truncated, which is the point.
pub struct EncryptingWriter<W: Write> {
    inner: W,
    encryptor: Option<EncryptorBE32<Aes256Gcm>>,
    aad: Vec<u8>,
    buf: Vec<u8>,
    chunk_size: usize,
}

impl<W: Write> EncryptingWriter<W> {
    /// Encrypt into `inner` with `key`; `aad` (the archive's header bytes) authenticates every
    /// chunk.
    pub fn new(
        inner: W,
        key: &Key,
        nonce_prefix: &[u8; NONCE_PREFIX_LEN],
        aad: Vec<u8>,
        chunk_size: usize,
    ) -> Self {
        let encryptor = EncryptorBE32::from_aead(cipher(key), nonce_prefix.into());
        EncryptingWriter {
            inner,
            encryptor: Some(encryptor),
            aad,
            buf: Vec::with_capacity(chunk_size + TAG_LEN),
            chunk_size,
        }
    }

    fn seal_chunk(&mut self) -> io::Result<()> {
        let enc = self
            .encryptor
            .as_mut()
            .ok_or_else(|| io::Error::other("stream already finished"))?;
        enc.encrypt_next_in_place(&self.aad, &mut self.buf)
            .map_err(|_| io::Error::other("encryption failed (stream too long)"))?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Seal the last chunk and return the inner writer, flushed.
    ///
    /// # Errors
    /// Any error writing to the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        // A full buffer is an ordinary chunk; the last chunk must be shorter (here: empty).
        if self.buf.len() == self.chunk_size {
            self.seal_chunk()?;
        }
        let enc = self
            .encryptor
            .take()
            .ok_or_else(|| io::Error::other("stream already finished"))?;
        enc.encrypt_last_in_place(&self.aad, &mut self.buf)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&self.buf)?;
        self.buf.zeroize();
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A full buffer is sealed only when more data arrives, so the last chunk is always
        // shorter than a full one.
        if self.buf.len() == self.chunk_size {
            self.seal_chunk()?;
        }
        let n = data.len().min(self.chunk_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts a STREAM written by [`EncryptingWriter`]. Errors come out of `read` as
/// `io::Error`s carrying an engine [`Error`] (`Truncated` or `Damaged`), with the byte offset.
pub struct DecryptingReader<R: Read> {
    inner: R,
    decryptor: Option<DecryptorBE32<Aes256Gcm>>,
    aad: Vec<u8>,
    buf: Vec<u8>,
    pos: usize,
    chunk_size: usize,
    /// Offset in the file of the next ciphertext byte (for messages).
    offset: u64,
    done: bool,
}

impl<R: Read> DecryptingReader<R> {
    /// Decrypt `inner`, whose first byte is at `offset` in the file.
    pub fn new(
        inner: R,
        key: &Key,
        nonce_prefix: &[u8; NONCE_PREFIX_LEN],
        aad: Vec<u8>,
        chunk_size: usize,
        offset: u64,
    ) -> Self {
        DecryptingReader {
            inner,
            decryptor: Some(DecryptorBE32::from_aead(cipher(key), nonce_prefix.into())),
            aad,
            buf: Vec::with_capacity(chunk_size + TAG_LEN),
            pos: 0,
            chunk_size,
            offset,
            done: false,
        }
    }

    /// Whether the final chunk has been read and authenticated.
    pub fn is_complete(&self) -> bool {
        self.done
    }

    fn fill(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.pos = 0;
        let result = self.fill_inner();
        if result.is_err() {
            // Never hand out what did not authenticate, even to a caller that reads again.
            self.buf.zeroize();
            self.buf.clear();
            self.decryptor = None;
            self.done = false;
        }
        result
    }

    fn fill_inner(&mut self) -> io::Result<()> {
        let want = self.chunk_size + TAG_LEN;
        let got = (&mut self.inner)
            .take(want as u64)
            .read_to_end(&mut self.buf)?;
        let chunk_offset = self.offset;
        self.offset += got as u64;
        if got < TAG_LEN {
            return Err(Error::new(
                ErrorKind::Truncated,
                format!("The backup file is incomplete: it ends at byte {} before its final block", self.offset),
                "It was probably cut short while being copied or written; use another copy of this backup",
            )
            .into_io());
        }
        if got == want {
            let dec = self
                .decryptor
                .as_mut()
                .ok_or_else(|| io::Error::other("stream already finished"))?;
            dec.decrypt_next_in_place(&self.aad, &mut self.buf)
                .map_err(|_| damaged(chunk_offset))?;
        } else {
            let dec = self
                .decryptor
                .take()
                .ok_or_else(|| io::Error::other("stream already finished"))?;
            dec.decrypt_last_in_place(&self.aad, &mut self.buf).map_err(|_| {
                Error::new(
                    ErrorKind::Damaged,
                    format!("The backup file is truncated or damaged at its end (the block at byte {chunk_offset} does not authenticate)"),
                    "It may have been cut short while being copied; use another copy of this backup",
                )
                .into_io()
            })?;
            // Nothing may follow the last chunk.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(Error::new(
                    ErrorKind::Damaged,
                    format!(
                        "The backup file has unexpected bytes after its end (byte {})",
                        self.offset
                    ),
                    "The file was changed after it was written; use another copy of this backup",
                )
                .into_io());
            }
            self.done = true;
        }
        Ok(())
    }
}

fn damaged(offset: u64) -> io::Error {
    Error::new(
        ErrorKind::Damaged,
        format!("The backup file is damaged: the block at byte {offset} does not authenticate"),
        "Its bytes changed after it was written (disk or copy error, or tampering); use another copy of this backup",
    )
    .into_io()
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<R: Read> Drop for DecryptingReader<R> {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::inner_error;

    fn seal(data: &[u8], chunk: usize, key: &Key) -> Vec<u8> {
        let mut w = EncryptingWriter::new(Vec::new(), key, &[7; 7], b"hdr".to_vec(), chunk);
        w.write_all(data).expect("write");
        w.finish().expect("finish")
    }

    fn open(ct: &[u8], chunk: usize, key: &Key) -> io::Result<Vec<u8>> {
        let mut r = DecryptingReader::new(ct, key, &[7; 7], b"hdr".to_vec(), chunk, 0);
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_chunk_boundaries() {
        let key = Key::generate();
        for len in [0, 1, 63, 64, 65, 128, 200] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ct = seal(&data, 64, &key);
            // Every stream ends with a chunk shorter than a full one.
            assert_eq!(ct.len(), len + (len / 64 + 1) * TAG_LEN, "len {len}");
            assert_eq!(open(&ct, 64, &key).expect("open"), data);
        }
    }

    #[test]
    fn detects_truncation_flips_and_wrong_aad() {
        let key = Key::generate();
        let data = vec![42u8; 300];
        let ct = seal(&data, 64, &key);
        // cut at a chunk boundary: no last chunk
        let e = open(&ct[..80], 64, &key).expect_err("cut");
        assert_eq!(
            inner_error(&e).map(|e| e.kind()),
            Some(ErrorKind::Truncated)
        );
        for cut in [1, 10, 100, ct.len() - 1] {
            assert!(open(&ct[..cut], 64, &key).is_err(), "cut at {cut}");
        }
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad, 64, &key).is_err(), "flip at {i}");
        }
        let mut r = DecryptingReader::new(&ct[..], &key, &[7; 7], b"HDR".to_vec(), 64, 0);
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        let other = Key::generate();
        assert!(open(&ct, 64, &other).is_err());
    }

    #[test]
    fn fingerprint_is_stable_and_key_debug_is_redacted() {
        let key = Key::from_hex(&"01".repeat(32)).expect("hex");
        assert_eq!(key.fingerprint(), key.clone().fingerprint());
        assert_eq!(key.fingerprint().to_string().len(), 16);
        let dbg = format!("{key:?}");
        assert!(!dbg.contains("0101"), "{dbg}");
        assert!(Key::from_hex("abc").is_err());
        assert!(Key::from_hex(&"zz".repeat(32)).is_err());
    }
}
