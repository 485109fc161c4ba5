//! The archive's plaintext as gzip members of a tar stream (each entry's header and data
//! compressed apart, so parts compress in parallel), and the streams that hash and count.

use std::fs::File;
use std::io::{self, Read, Write};

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The rows in COPY text (or any newline-ended lines): its newline bytes. memchr counts with
/// the CPU's widest vectors (chosen at run time): about 7 times the speed of
/// `iter().filter().count()`, which matters as every byte of a backup and of a restore is counted.
pub fn count_rows(data: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', data).count() as u64
}

/// The zero bytes that pad a tar entry of `size` bytes to a whole block.
pub fn tar_padding(size: u64) -> &'static [u8] {
    const ZEROS: [u8; 512] = [0; 512];
    &ZEROS[..((512 - size % 512) % 512) as usize]
}

/// Compresses a part's data as it arrives, batch by batch, each batch an independent gzip
/// member appended to the part's bytes (the archive is a sequence of members, and every reader
/// of it, ours and `gzip -d`, reads concatenated members as one stream). libdeflate compresses
/// a whole buffer at once about twice as fast as a streaming zlib at the same level and size;
/// a batch of 1 MiB loses almost nothing to the reset window (measured in the README's bench).
pub struct MemberCompressor {
    inner: libdeflater::Compressor,
}

impl MemberCompressor {
    /// A compressor at `level` (1-9, zlib's scale; libdeflate's 6 is zlib's default).
    pub fn new(level: u32) -> MemberCompressor {
        let level = libdeflater::CompressionLvl::new(level.clamp(1, 12) as i32).unwrap_or_default();
        MemberCompressor {
            inner: libdeflater::Compressor::new(level),
        }
    }

    /// Append `data` to `out` as one gzip member.
    ///
    /// # Errors
    /// Only if libdeflate reports that its own bound was too small, which it does not.
    pub fn append(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let start = out.len();
        out.resize(start + self.inner.gzip_compress_bound(data.len()), 0);
        match self.inner.gzip_compress(data, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(io::Error::other(format!("libdeflate: {e}")))
            }
        }
    }
}

/// The tar header of an entry of `size` bytes, as a gzip member of its own: a part's data
/// (with [`tar_padding`]) is compressed as the next member while it streams in, and the header
/// is written before it once the size is known.
///
/// # Errors
/// Only for a path tar cannot hold.
pub fn gzip_tar_header(path: &str, size: u64, mtime: u64) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut gz = GzEncoder::new(Vec::with_capacity(128), Compression::fast());
    gz.write_all(header.as_bytes())?;
    gz.finish()
}

/// One tar entry (header, data, padding) compressed as an independent gzip member.
///
/// # Errors
/// Only if compression fails, which it does not for in-memory buffers.
pub fn gzip_tar_entry(path: &str, data: &[u8], mtime: u64, level: u32) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut gz = GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 1024),
        Compression::new(level),
    );
    gz.write_all(header.as_bytes())?;
    gz.write_all(data)?;
    gz.write_all(tar_padding(data.len() as u64))?;
    gz.finish()
}

/// The tar end-of-archive marker (two zero blocks) as a gzip member.
///
/// # Errors
/// As [`gzip_tar_entry`].
pub fn gzip_tar_trailer() -> io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&[0u8; 1024])?;
    gz.finish()
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    pub(super) inner: W,
    pub(super) hasher: Sha256,
    pub(super) written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts the bytes read through it into a shared counter (for progress).
pub struct CountingReader<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> CountingReader<R> {
    /// Count what is read from `inner` into `count`.
    pub fn new(inner: R, count: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        CountingReader { inner, count }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// SHA-256 (hex) and size of a file.
///
/// # Errors
/// I/O errors.
pub fn sha256_file(path: &std::path::Path) -> Result<(String, u64)> {
    let mut f =
        File::open(path).map_err(|e| Error::io(format_args!("reading {}", path.display()), &e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(format_args!("reading {}", path.display()), &e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}
