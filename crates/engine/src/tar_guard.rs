//! A guard between an archive's decompressed plaintext and the tar reader, so a crafted
//! archive cannot make a reader use unbounded memory.
//!
//! The `tar` crate reads a GNU long-name (`L`, `K`) or pax (`x`, `g`) entry whole into memory
//! before the entry it describes: an archive that claims a 1 GiB long name costs 1 GiB. A
//! SchoolVault archive holds none of these (its paths are short ustar names), so the guard
//! follows the tar stream's blocks as they pass and refuses a long-name entry larger than
//! [`MAX_META`], pax headers (which could change an entry's size behind the guard's back) and
//! GNU sparse entries, before the tar reader buffers them. Every byte is passed through
//! unchanged.

use std::io::{self, Read};

/// The largest long-name or pax entry let through (real tar files use a few hundred bytes).
pub const MAX_META: u64 = 64 << 10;

const BLOCK: usize = 512;

/// A reader of a tar stream that refuses oversized metadata entries (see the module doc).
pub struct TarGuard<R> {
    inner: R,
    header: [u8; BLOCK],
    filled: usize,
    /// Bytes of the current entry's data (and padding) still to pass.
    remaining: u64,
}

impl<R: Read> TarGuard<R> {
    /// Guard the tar stream `inner`.
    pub fn new(inner: R) -> Self {
        TarGuard {
            inner,
            header: [0; BLOCK],
            filled: 0,
            remaining: 0,
        }
    }

    /// The reader inside.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn refused(why: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    /// A complete header block: check it, and note how much data follows.
    fn on_header(&mut self) -> io::Result<()> {
        let h = &self.header;
        if h.iter().all(|&b| b == 0) {
            // The end-of-archive blocks.
            return Ok(());
        }
        let size = entry_size(&h[124..136])
            .ok_or_else(|| Self::refused("a tar header has an unreadable size".into()))?;
        match h[156] {
            // A pax record may override the next entry's size, which would put this guard
            // out of step: SchoolVault never writes one, so none is let through.
            b'x' | b'g' => {
                return Err(Self::refused(
                    "a pax header entry, which no backup holds".into(),
                ))
            }
            b'L' | b'K' if size > MAX_META => {
                return Err(Self::refused(format!(
                    "a tar metadata entry claims {size} bytes, more than any backup holds"
                )))
            }
            b'S' => {
                return Err(Self::refused(
                    "a GNU sparse entry, which no backup holds".into(),
                ))
            }
            _ => {}
        }
        self.remaining = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        Ok(())
    }

    /// Follow the tar structure over `data`, which was just read.
    fn follow(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.remaining -= skip as u64;
                data = &data[skip..];
                continue;
            }
            let take = (BLOCK - self.filled).min(data.len());
            self.header[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == BLOCK {
                self.filled = 0;
                self.on_header()?;
            }
        }
        Ok(())
    }
}

/// A tar size field: octal digits (space or NUL terminated), or base-256 when its first byte
/// has the high bit set.
fn entry_size(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ' || b == b'\t')
        .take_while(|&b| (b'0'..=b'7').contains(&b))
        .collect();
    if digits.is_empty() {
        return Some(0);
    }
    let text = std::str::from_utf8(&digits).ok()?;
    u64::from_str_radix(text, 8).ok()
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.follow(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(kind: tar::EntryType, path_len: usize) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(3);
        h.set_mode(0o644);
        let long = "d/".repeat(path_len / 2) + "f.copy";
        b.append_data(&mut h, &long, &b"abc"[..]).expect("append");
        b.into_inner().expect("tar")
    }

    fn through_guard(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        // Small reads, so headers are split across them.
        let mut g = TarGuard::new(io::Cursor::new(bytes.to_vec()));
        let mut buf = [0u8; 37];
        loop {
            let n = g.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn ordinary_tar_passes_unchanged_and_a_long_name_is_bounded() {
        let short = tar_with(tar::EntryType::Regular, 20);
        assert_eq!(through_guard(&short).expect("passes"), short);
        // A long name of 1 KiB passes (a GNU L entry the tar crate writes itself).
        let long = tar_with(tar::EntryType::Regular, 1024);
        assert_eq!(through_guard(&long).expect("passes"), long);
        // One beyond MAX_META is refused before it is buffered.
        let huge = tar_with(tar::EntryType::Regular, MAX_META as usize + 10);
        let err = through_guard(&huge).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("metadata entry"), "{err}");
    }

    #[test]
    fn sizes_in_octal_and_base_256() {
        assert_eq!(entry_size(b"00000001750\0"), Some(1000));
        assert_eq!(entry_size(b"        17 \0"), Some(15));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 2;
        big[10] = 1;
        assert_eq!(entry_size(&big), Some(258));
        assert_eq!(entry_size(b"\0\0\0\0\0\0\0\0\0\0\0\0"), Some(0));
    }
}
