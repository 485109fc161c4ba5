//! What the fuzz targets share: the fixed key, the fixed header, and the checks.
//!
//! Inputs: `v2_archive` and `v1` take a whole file. `v2_plaintext` and `v1_plaintext` take a
//! mode byte, then a plaintext that the target encrypts with the fixed key, so the AEAD passes
//! and the parsers behind it are reached. Mode bit 0 clear: the rest is the decrypted plaintext
//! as it is (gzip); set: the rest is the tar stream (v2) or the JSON (v1), which the target
//! gzips first, so the fuzzer need not write valid deflate to reach them. Bits 1-2 (v2 only):
//! the chunk size the archive is sealed with, 4096, 64, 1000 or 1 MiB (the writer's; readers
//! take any, and small ones are faster and make several chunks).
//!
//! Seeds (`fuzz/seeds/<target>/`) are written from the property test's small files:
//! `cargo test -p schoolvault-engine --test mutations -- --ignored write_fuzz_seeds`.

use std::io::Write;
use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use schoolvault_engine::archive::{BackupKind, Header, SourceInfo, CHUNK_SIZE};
use schoolvault_engine::crypto::Key;
use schoolvault_engine::jobs::verify_reader;
use schoolvault_engine::{legacy, ErrorKind};

/// The fixed key (the same as `crates/engine/tests/mutations.rs`, which writes the seeds).
pub const KEY_HEX: &str = "5c4f2e1d0a9b8c7d6e5f40312213041526374859a6b7c8d9eafb0c1d2e3f4051";

static KEY: LazyLock<Key> = LazyLock::new(|| Key::from_hex(KEY_HEX).expect("fixed key"));

/// The fixed key.
pub fn key() -> &'static Key {
    &KEY
}

/// The header the plaintext targets seal their archives with.
pub fn header() -> Header {
    Header {
        cipher: String::new(),
        chunk_size: 0,
        nonce_prefix: String::new(),
        key_fingerprint: String::new(),
        compression: String::new(),
        created_at: Utc
            .with_ymd_and_hms(2026, 11, 26, 2, 15, 0)
            .single()
            .expect("date"),
        app_version: "0.1.0".into(),
        backup_id: "20261126-021500-3f9a".into(),
        kind: BackupKind::Manual,
        source: SourceInfo {
            engine: "postgresql".into(),
            server_version: "15.19".into(),
            database: "erp".into(),
        },
    }
}

/// The plaintext a plaintext target's input stands for and the chunk size to seal it with
/// (see the module doc), or `None` for an empty input.
pub fn plaintext(data: &[u8]) -> Option<(Vec<u8>, usize)> {
    let (&mode, rest) = data.split_first()?;
    let chunk_size = [4096, 64, 1000, CHUNK_SIZE][usize::from(mode >> 1) & 3];
    if mode & 1 == 0 {
        return Some((rest.to_vec(), chunk_size));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(rest).expect("gzip in memory");
    Some((gz.finish().expect("gzip in memory"), chunk_size))
}

/// Read `file` as a v2 archive as `verify` does. `authenticated`: it was sealed with the
/// fixed key, so only the errors of a decrypted-but-wrong archive may come out.
pub fn check_v2(file: &[u8], authenticated: bool) {
    let result = verify_reader(file, key());
    if let (true, Err(e)) = (authenticated, &result) {
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Damaged | ErrorKind::Truncated | ErrorKind::Inconsistent
            ),
            "an authenticated archive gave {e:?}"
        );
    }
}

/// Sniff and open `file` as an old-system file with the fixed key (and the development key).
/// `plaintext_len`: it was encrypted with the fixed key from a plaintext of that many bytes.
pub fn check_v1(file: &[u8], plaintext_len: Option<usize>) {
    let keys = std::slice::from_ref(key());
    let sniffed = legacy::sniff(file, file.len() as u64, keys);
    let opened = legacy::open(file, keys);
    match &opened {
        Ok(v1) => {
            // A file that opens must pass the sniff that comes first in the app and the CLI.
            assert!(
                sniffed.is_ok(),
                "opens, but the sniff refuses it: {sniffed:?}"
            );
            let summary = v1.summary();
            assert_eq!(
                summary.tables.iter().map(|t| t.records).sum::<u64>(),
                v1.records()
            );
        }
        Err(e) => match plaintext_len {
            Some(n) if n >= 3 => {
                assert_eq!(e.kind(), ErrorKind::Damaged, "authenticated file: {e:?}");
            }
            Some(_) => assert_eq!(e.kind(), ErrorKind::NotABackup, "{e:?}"),
            None => {}
        },
    }
}
