//! Damaged inputs never crash the readers: a few thousand seeded random mutations of a small
//! valid v2 archive and of a small old-system (v1) file must each end in `Ok` or a clean engine
//! error, never a panic or a hang.
//!
//! - Mutated ciphertext (bit flips, truncation, inserted, deleted, overwritten or appended
//!   bytes; whole encrypted chunks dropped, repeated or swapped, in archives sealed with small
//!   chunks) must always be an error: the format authenticates every byte and the order.
//! - Mutated plaintext, re-encrypted so the AEAD passes (the compressed stream, the tar stream
//!   recompressed, the v1 JSON recompressed, whole gzip members dropped, repeated or swapped),
//!   exercises gzip, tar and JSON parsing; it may be `Ok` (a harmless change) or an error of
//!   the kinds a decrypted-but-wrong archive gets.
//!
//! The fuzz targets (`fuzz/`, `make fuzz`) go further; `write_fuzz_seeds` (ignored) writes
//! their seed corpora from the same small files:
//! `cargo test -p schoolvault-engine --test mutations -- --ignored write_fuzz_seeds`.

use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use flate2::read::MultiGzDecoder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schoolvault_engine::archive::{
    gzip_tar_entry, gzip_tar_trailer, part_path, seal_in_memory, table_end_path, BackupKind, End,
    Header, Manifest, SequenceValue, SourceInfo, TableEnd, TableManifest, CHUNK_SIZE, POST_DATA,
    PRE_DATA,
};
use schoolvault_engine::crypto::{Key, TAG_LEN};
use schoolvault_engine::jobs::verify_reader;
use schoolvault_engine::{legacy, ErrorKind};
use sha2::{Digest, Sha256};

/// The fixed key of these tests and of the fuzz targets (`fuzz/src/lib.rs`).
const KEY_HEX: &str = "5c4f2e1d0a9b8c7d6e5f40312213041526374859a6b7c8d9eafb0c1d2e3f4051";
/// Random mutations per family (v2 ciphertext, v2 plaintext, v1 ciphertext, v1 plaintext).
const CASES: usize = 2000;

fn key() -> Key {
    Key::from_hex(KEY_HEX).expect("fixed key")
}

fn header() -> Header {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 26, 2, 15, 0)
        .single()
        .expect("date");
    Header {
        cipher: String::new(),
        chunk_size: 0,
        nonce_prefix: String::new(),
        key_fingerprint: String::new(),
        compression: String::new(),
        created_at: at,
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

const PARTS: [&[u8]; 2] = [b"1\talice\n2\tbob\n", b"3\tcarol\n"];

/// The manifest of the small archive: two tables (one with two parts, one empty).
fn manifest() -> Manifest {
    let h = header();
    Manifest {
        format: 3,
        backup_id: h.backup_id,
        kind: BackupKind::Manual,
        snapshot_at: h.created_at,
        source: h.source,
        tables: vec![
            TableManifest {
                index: 0,
                schema: "public".into(),
                name: "users".into(),
                columns: vec!["id".into(), "name".into()],
            },
            TableManifest {
                index: 1,
                schema: "public".into(),
                name: "empty".into(),
                columns: vec!["id".into()],
            },
        ],
        sequences: vec![SequenceValue {
            schema: "public".into(),
            name: "users_id_seq".into(),
            last_value: 3,
            is_called: true,
        }],
        schema: true,
        unsupported: vec![],
        privileges: Default::default(),
    }
}

/// The end record of the small archive.
fn end() -> End {
    let all: Vec<u8> = PARTS.concat();
    End {
        tables: vec![
            TableEnd {
                index: 0,
                rows: 3,
                bytes: all.len() as u64,
                parts: 2,
                sha256: hex::encode(Sha256::digest(&all)),
            },
            TableEnd {
                index: 1,
                rows: 0,
                bytes: 0,
                parts: 0,
                sha256: hex::encode(Sha256::digest(b"")),
            },
        ],
        total_rows: 3,
        total_bytes: all.len() as u64,
        finished_at: header().created_at,
        large_objects: Vec::new(),
    }
}

fn entry(path: &str, data: &[u8]) -> Vec<u8> {
    gzip_tar_entry(path, data, 1_700_000_000, 6).expect("gzip")
}

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("json")
}

const PRE: &[u8] =
    b"CREATE TABLE public.users (id int, name text);\nCREATE TABLE public.empty (id int);\n";
const POST: &[u8] = b"ALTER TABLE public.users ADD PRIMARY KEY (id);\n";

/// The gzip members of a small valid archive (format 3): the manifest, the schema, two
/// tables' data each followed by its end record (the empty table's alone), the end record and
/// the tar trailer.
fn members() -> Vec<Vec<u8>> {
    let mut out = vec![
        entry("manifest.json", &json(&manifest())),
        entry(PRE_DATA, PRE),
        entry(POST_DATA, POST),
        entry(&table_end_path(1), &json(&end().tables[1])),
    ];
    for (i, part) in PARTS.iter().enumerate() {
        out.push(entry(&part_path(0, i as u32), part));
    }
    out.push(entry(&table_end_path(0), &json(&end().tables[0])));
    out.push(entry("end.json", &json(&end())));
    out.push(gzip_tar_trailer().expect("gzip"));
    out
}

/// The same archive in format 2's order: post-data after the data, no table end records.
fn members_v2() -> Vec<Vec<u8>> {
    let mut out = vec![
        entry("manifest.json", &json(&manifest())),
        entry(PRE_DATA, PRE),
    ];
    for (i, part) in PARTS.iter().enumerate() {
        out.push(entry(&part_path(0, i as u32), part));
    }
    out.push(entry(POST_DATA, POST));
    out.push(entry("end.json", &json(&end())));
    out.push(gzip_tar_trailer().expect("gzip"));
    out
}

#[test]
fn a_tables_end_record_is_checked_against_its_parts_and_the_end() {
    let key = key();
    let read = |members: &[Vec<u8>]| verify_reader(&seal(&members.concat(), CHUNK_SIZE)[..], &key);
    read(&members()).expect("format 3 reads");
    read(&members_v2()).expect("format 2's order reads");
    // A part after its table's end record.
    let mut late = members();
    let part = late.remove(5);
    late.insert(6, part);
    let e = read(&late).expect_err("a part after its end record");
    assert_eq!(e.kind(), ErrorKind::Damaged, "{e}");
    assert!(
        e.to_string().contains("follows its table's end record"),
        "{e}"
    );
    // An end record that says other than end.json.
    let mut wrong = members();
    let mut record = end().tables[0].clone();
    record.rows = 2;
    wrong[6] = entry(&table_end_path(0), &json(&record));
    let e = read(&wrong).expect_err("a table end record unlike end.json");
    assert_eq!(e.kind(), ErrorKind::Damaged, "{e}");
    // A table without one, where the others have theirs.
    let mut missing = members();
    missing.remove(6);
    let e = read(&missing).expect_err("a missing table end record");
    assert_eq!(e.kind(), ErrorKind::Damaged, "{e}");
    // Two for one table.
    let mut twice = members();
    twice.insert(3, entry(&table_end_path(1), &json(&end().tables[1])));
    let e = read(&twice).expect_err("two end records");
    assert_eq!(e.kind(), ErrorKind::Damaged, "{e}");
}

/// Plaintext bytes per chunk of the small-chunk archives: the small archive is ~20 chunks.
const SMALL_CHUNK: usize = 64;

fn seal(gz: &[u8], chunk_size: usize) -> Vec<u8> {
    seal_in_memory(&key(), header(), chunk_size, gz).expect("seal")
}

/// One change of whole encrypted chunks of `file` (sealed with [`SMALL_CHUNK`]): each chunk
/// authenticates on its own, only its position does not.
fn mutate_chunks(rng: &mut StdRng, file: &[u8]) -> (Vec<u8>, String) {
    let header_len = u32::from_le_bytes([file[10], file[11], file[12], file[13]]) as usize;
    let (preamble, body) = file.split_at(14 + header_len);
    let mut chunks: Vec<&[u8]> = body.chunks(SMALL_CHUNK + TAG_LEN).collect();
    let i = rng.gen_range(0..chunks.len());
    let j = loop {
        let j = rng.gen_range(0..chunks.len());
        if j != i {
            break j;
        }
    };
    let what = match rng.gen_range(0..3) {
        0 => {
            chunks.remove(i);
            format!("drop chunk {i}")
        }
        1 => {
            chunks.insert(j, chunks[i]);
            format!("repeat chunk {i} at {j}")
        }
        _ => {
            chunks.swap(i, j);
            format!("swap chunks {i} and {j}")
        }
    };
    ([preamble, &chunks.concat()].concat(), what)
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

fn v1_json() -> Vec<u8> {
    br#"{"version":"1.0","timestamp":"2026-11-26T02:15:00.000Z","tables":{"users":[{"id":"u1","email":"a@school.test","createdAt":"2026-01-02T03:04:05.000Z"}],"classes":[],"documents":[{"id":"d1","data":{"type":"Buffer","data":[1,2,3]}}]}}"#.to_vec()
}

/// One random change of `bytes`: never the identity.
fn mutate(rng: &mut StdRng, bytes: &[u8]) -> (Vec<u8>, String) {
    loop {
        let mut b = bytes.to_vec();
        let what = match rng.gen_range(0..6) {
            0 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                let bit = rng.gen_range(0..8);
                b[i] ^= 1 << bit;
                format!("flip bit {bit} of byte {i}")
            }
            1 => {
                let n = rng.gen_range(0..b.len().max(1));
                b.truncate(n);
                format!("truncate to {n}")
            }
            2 => {
                let i = rng.gen_range(0..=b.len());
                let n = rng.gen_range(1..=8);
                for _ in 0..n {
                    b.insert(i, rng.gen());
                }
                format!("insert {n} bytes at {i}")
            }
            3 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                let n = rng.gen_range(1..=8).min(b.len() - i);
                b.drain(i..i + n);
                format!("delete {n} bytes at {i}")
            }
            4 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                let n = rng.gen_range(1..=16).min(b.len() - i);
                rng.fill(&mut b[i..i + n]);
                format!("overwrite {n} bytes at {i}")
            }
            5 => {
                let n = rng.gen_range(1..=32);
                for _ in 0..n {
                    b.push(rng.gen());
                }
                format!("append {n} bytes")
            }
            _ => continue,
        };
        if b != bytes {
            return (b, what);
        }
    }
}

/// Run `read` on one input: a panic fails the test with the mutation that caused it, and so
/// does an input that takes more than a few seconds.
fn run<T>(what: &str, read: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = catch_unwind(AssertUnwindSafe(read))
        .unwrap_or_else(|_| panic!("the reader panicked on: {what}"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the reader took {:?} on: {what}",
        start.elapsed()
    );
    out
}

/// Error kinds seen, for the summary line.
#[derive(Default)]
struct Tally {
    ok: usize,
    kinds: std::collections::BTreeMap<&'static str, usize>,
}

impl Tally {
    fn add<T>(&mut self, r: &schoolvault_engine::Result<T>) {
        match r {
            Ok(_) => self.ok += 1,
            Err(e) => *self.kinds.entry(e.code()).or_default() += 1,
        }
    }
}

#[test]
fn v2_mutations_end_in_ok_or_a_clean_error() {
    let key = key();
    let members = members();
    let gz = members.concat();
    let tar = gunzip(&gz);
    let valid = [seal(&gz, CHUNK_SIZE), seal(&gz, SMALL_CHUNK)];
    for file in &valid {
        let (_, manifest, end) = verify_reader(&file[..], &key).expect("the valid archive reads");
        assert_eq!((manifest.tables.len(), end.total_rows), (2, 3));
    }
    // The tar stream in one member, as another writer could make it, reads too.
    verify_reader(&seal(&gzip(&tar), SMALL_CHUNK)[..], &key).expect("single-member archive");

    let mut rng = StdRng::seed_from_u64(0x5c4f_0011);
    let (mut cipher, mut plain) = (Tally::default(), Tally::default());
    for case in 0..CASES {
        let (bad, what) = match case % 3 {
            0 => mutate(&mut rng, &valid[0]),
            1 => mutate(&mut rng, &valid[1]),
            _ => mutate_chunks(&mut rng, &valid[1]),
        };
        let what = format!("v2 ciphertext case {case}: {what}");
        let r = run(&what, || verify_reader(&bad[..], &key));
        cipher.add(&r);
        let e = r.err().unwrap_or_else(|| panic!("{what} was accepted"));
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Damaged
                    | ErrorKind::Truncated
                    | ErrorKind::NotABackup
                    | ErrorKind::UnsupportedVersion
                    | ErrorKind::WrongKey
            ),
            "{what}: {e:?}"
        );

        // The same change made to the plaintext, which then authenticates.
        let (plaintext, what) = match case % 3 {
            0 => {
                let (bad, what) = mutate(&mut rng, &gz);
                (bad, format!("v2 gzip plaintext case {case}: {what}"))
            }
            1 => {
                let (bad, what) = mutate(&mut rng, &tar);
                (gzip(&bad), format!("v2 tar plaintext case {case}: {what}"))
            }
            _ => {
                let mut m = members.clone();
                let i = rng.gen_range(0..m.len());
                let j = rng.gen_range(0..m.len());
                let what = match rng.gen_range(0..3) {
                    0 => {
                        m.remove(i);
                        format!("drop member {i}")
                    }
                    1 => {
                        m.insert(j, m[i].clone());
                        format!("repeat member {i} at {j}")
                    }
                    _ => {
                        m.swap(i, j);
                        format!("swap members {i} and {j}")
                    }
                };
                (m.concat(), format!("v2 members case {case}: {what}"))
            }
        };
        let chunk_size = [CHUNK_SIZE, SMALL_CHUNK, 1000][case % 3];
        let sealed = seal(&plaintext, chunk_size);
        let r = run(&what, || verify_reader(&sealed[..], &key));
        plain.add(&r);
        if let Err(e) = r {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Damaged | ErrorKind::Truncated | ErrorKind::Inconsistent
                ),
                "{what}: {e:?}"
            );
        }
    }
    println!(
        "v2: {CASES} ciphertext mutations: {:?}; {CASES} plaintext mutations: {} ok, {:?}",
        cipher.kinds, plain.ok, plain.kinds
    );
}

#[test]
fn v1_mutations_end_in_ok_or_a_clean_error() {
    let key = key();
    let keys = [key.clone()];
    let json = v1_json();
    let gz = gzip(&json);
    let valid = legacy::encrypt(&key, gz.clone()).expect("encrypt");
    let v1 = legacy::open(&valid, &keys).expect("the valid v1 file opens");
    assert_eq!((v1.records(), v1.dev_key), (2, false));
    legacy::sniff(&valid, valid.len() as u64, &keys).expect("sniff");

    let mut rng = StdRng::seed_from_u64(0x5c4f_0001);
    let (mut cipher, mut plain) = (Tally::default(), Tally::default());
    for case in 0..CASES {
        let (bad, what) = mutate(&mut rng, &valid);
        let what = format!("v1 ciphertext case {case}: {what}");
        let r = run(&what, || {
            let _ = legacy::sniff(&bad, bad.len() as u64, &keys);
            legacy::open(&bad, &keys)
        });
        cipher.add(&r);
        let e = r.err().unwrap_or_else(|| panic!("{what} was accepted"));
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Damaged | ErrorKind::Truncated | ErrorKind::NotABackup
            ),
            "{what}: {e:?}"
        );

        let (plaintext, what) = if case % 2 == 0 {
            let (bad, what) = mutate(&mut rng, &gz);
            (bad, format!("v1 gzip plaintext case {case}: {what}"))
        } else {
            let (bad, what) = mutate(&mut rng, &json);
            (gzip(&bad), format!("v1 JSON plaintext case {case}: {what}"))
        };
        let file = legacy::encrypt(&key, plaintext.clone()).expect("encrypt");
        let r = run(&what, || legacy::open(&file, &keys));
        plain.add(&r);
        match r {
            // An authenticated file is never "not a backup", unless too short to be one.
            Err(e) if plaintext.len() >= 3 => {
                assert_eq!(e.kind(), ErrorKind::Damaged, "{what}: {e:?}");
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::NotABackup, "{what}: {e:?}"),
            // What opens must also pass the sniff that comes before opening.
            Ok(_) => legacy::sniff(&file, file.len() as u64, &keys)
                .unwrap_or_else(|e| panic!("{what}: opens but the sniff refuses it: {e:?}")),
        }
    }
    println!(
        "v1: {CASES} ciphertext mutations: {:?}; {CASES} plaintext mutations: {} ok, {:?}",
        cipher.kinds, plain.ok, plain.kinds
    );
}

/// Write the fuzz targets' seed corpora to `fuzz/seeds/<target>/` (see `fuzz/src/lib.rs` for
/// the input formats: the plaintext targets take a mode byte first).
#[test]
#[ignore = "writes fuzz/seeds; run by hand"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    let write = |target: &str, name: &str, data: &[u8]| {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(name), data).expect("write seed");
    };
    let key = key();
    let gz = members().concat();
    let tar = gunzip(&gz);
    // The smallest complete archive: a manifest without tables and an end record.
    let small = [
        entry(
            "manifest.json",
            &json(&Manifest {
                tables: vec![],
                sequences: vec![],
                ..manifest()
            }),
        ),
        entry(
            "end.json",
            &json(&End {
                tables: vec![],
                total_rows: 0,
                total_bytes: 0,
                ..end()
            }),
        ),
        gzip_tar_trailer().expect("gzip"),
    ]
    .concat();
    write("v2_archive", "full.svb", &seal(&gz, CHUNK_SIZE));
    write("v2_archive", "small.svb", &seal(&small, CHUNK_SIZE));
    write("v2_archive", "chunked.svb", &seal(&gz, SMALL_CHUNK));
    // Mode 0: gzip as is, 4 KiB chunks; 1: tar, gzipped by the target; 6: gzip, 1 MiB chunks.
    write("v2_plaintext", "full.gz", &[&[0u8][..], &gz].concat());
    write("v2_plaintext", "full-1mib.gz", &[&[6u8][..], &gz].concat());
    write("v2_plaintext", "small.gz", &[&[0u8][..], &small].concat());
    write("v2_plaintext", "full.tar", &[&[1u8][..], &tar].concat());
    write(
        "v2_plaintext",
        "small.tar",
        &[&[1u8][..], &gunzip(&small)].concat(),
    );
    let json = v1_json();
    write(
        "v1",
        "valid.enc",
        &legacy::encrypt(&key, gzip(&json)).expect("encrypt"),
    );
    write(
        "v1_plaintext",
        "valid.gz",
        &[&[0u8][..], &gzip(&json)].concat(),
    );
    write("v1_plaintext", "valid.json", &[&[1u8][..], &json].concat());
}
