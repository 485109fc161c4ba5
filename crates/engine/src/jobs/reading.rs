//! Reading an archive: opening it with the right key, walking its parts, tallying every
//! table's rows and checksum against `end.json`, and opening the old system's v1 files. Every
//! operation that reads a backup (verify, inspect, preview, restore, rescan) goes through here.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::archive::{
    self, read_preamble, CountingReader, End, Header, Item, Manifest, Preamble, TableEnd,
    TableManifest,
};
use crate::crypto::Key;
use crate::error::{Error, ErrorKind, Result};
use crate::keychain::Keys;
use crate::legacy::{self, V1Backup};
use crate::progress::{Phase, Progress, ProgressEvent};

use crate::jobs::join_error;

/// Open a backup file and read its preamble; find the key that opens it.
pub(super) fn open_archive(path: &Path, keys: &Keys) -> Result<(BufReader<File>, Preamble, Key)> {
    let file =
        File::open(path).map_err(|e| Error::io(format_args!("opening {}", path.display()), &e))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let pre = read_preamble(&mut r)?;
    let key = match keys.for_reading(pre.fingerprint()) {
        Ok(key) => key,
        Err(e) if e.kind() == ErrorKind::WrongKey => {
            if let Ok((ours, _)) = keys.current() {
                if archive::fingerprint_was_damaged(path, &pre, &ours) {
                    return Err(Error::new(
                        ErrorKind::Damaged,
                        "The backup file's header is damaged (its key fingerprint changed after it was written)",
                        "Use another copy of this backup",
                    ));
                }
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    Ok((r, pre, key))
}

/// Checks each table's data against `end.json` while it streams past.
#[derive(Default)]
pub(super) struct TableTally {
    seen: HashMap<u32, (Sha256, u64, u64, u32)>,
    /// Large objects: SHA-256, bytes, parts.
    objects: std::collections::BTreeMap<u32, (Sha256, u64, u32)>,
}

impl TableTally {
    pub(super) fn start_part(&mut self, table: &TableManifest, part: u32) -> Result<()> {
        let entry = self.seen.entry(table.index).or_default();
        if entry.3 != part {
            return Err(Error::new(
                ErrorKind::Damaged,
                format!("The backup's data for table {} is out of order (part {part} where {} was expected)", table.display_name(), entry.3),
                "The file is damaged; use another copy of this backup",
            ));
        }
        entry.3 += 1;
        Ok(())
    }

    /// A part of large object `oid` begins (parts come in order).
    pub(super) fn start_object(&mut self, oid: u32, part: u32) -> Result<()> {
        let entry = self.objects.entry(oid).or_default();
        if entry.2 != part {
            return Err(Error::new(
                ErrorKind::Damaged,
                format!("The backup's large object {oid} is out of order (part {part} where {} was expected)", entry.2),
                "The file is damaged; use another copy of this backup",
            ));
        }
        entry.2 += 1;
        Ok(())
    }

    /// Bytes of large object `oid`.
    pub(super) fn update_object(&mut self, oid: u32, data: &[u8]) {
        let entry = self.objects.entry(oid).or_default();
        entry.0.update(data);
        entry.1 += data.len() as u64;
    }

    /// Every large object the end record lists came whole, and no other.
    fn check_objects(&mut self, end: &End) -> Result<()> {
        let damaged = |oid: u32, what: &str| {
            Error::new(
                ErrorKind::Inconsistent,
                format!("Large object {oid} in the backup is inconsistent: {what}"),
                "The file is damaged or was altered; use another copy of this backup",
            )
        };
        for e in &end.large_objects {
            let Some((h, size, parts)) = self.objects.remove(&e.oid) else {
                return Err(damaged(e.oid, "its bytes are missing"));
            };
            if size != e.size || parts != e.parts || hex::encode(h.finalize()) != e.sha256 {
                return Err(damaged(e.oid, "its bytes do not match its checksum"));
            }
        }
        if let Some(oid) = self.objects.keys().next() {
            return Err(damaged(*oid, "the end record does not list it"));
        }
        Ok(())
    }

    pub(super) fn update(&mut self, index: u32, data: &[u8]) {
        let entry = self.seen.entry(index).or_default();
        entry.0.update(data);
        entry.1 += crate::archive::count_rows(data);
        entry.2 += data.len() as u64;
    }

    /// Compare with the manifest and end record; return (tables, rows, bytes).
    pub(super) fn check(mut self, manifest: &Manifest, end: &End) -> Result<(u64, u64, u64)> {
        self.check_objects(end)?;
        let ends: HashMap<u32, &TableEnd> = end.tables.iter().map(|t| (t.index, t)).collect();
        let (mut rows, mut bytes) = (0, 0);
        for t in &manifest.tables {
            let Some(e) = ends.get(&t.index) else {
                return Err(inconsistent(t, "it is missing from the end record"));
            };
            let (h, r, b, p) = self.seen.remove(&t.index).unwrap_or_default();
            if r != e.rows {
                return Err(inconsistent(
                    t,
                    &format!("{r} rows where the end record says {}", e.rows),
                ));
            }
            if b != e.bytes || p != e.parts || hex::encode(h.finalize()) != e.sha256 {
                return Err(inconsistent(t, "its data does not match its checksum"));
            }
            rows += r;
            bytes += b;
        }
        if end.tables.len() != manifest.tables.len() {
            return Err(Error::new(
                ErrorKind::Inconsistent,
                "The backup's end record lists tables its manifest does not",
                "The file is damaged; use another copy of this backup",
            ));
        }
        Ok((manifest.tables.len() as u64, rows, bytes))
    }
}

pub(super) fn inconsistent(t: &TableManifest, what: &str) -> Error {
    Error::new(
        ErrorKind::Inconsistent,
        format!(
            "Table {} in the backup is inconsistent: {what}",
            t.display_name()
        ),
        "The file is damaged or was altered; use another copy of this backup",
    )
}

pub(super) struct Scan {
    /// The archive's format version.
    pub(super) version: u16,
    pub(super) header: Header,
    pub(super) manifest: Manifest,
    pub(super) end: End,
    pub(super) tables: u64,
    pub(super) rows: u64,
    pub(super) bytes: u64,
}

pub(super) fn scan_file(path: &Path, keys: &Keys, progress: &dyn Progress) -> Result<Scan> {
    let (r, pre, key) = open_archive(path, keys)?;
    let total = std::fs::metadata(path).map(|m| m.len()).ok();
    scan_stream(r, pre, &key, total, progress)
}

/// Read a whole v2 archive from `r` with `key` as [`verify`](crate::jobs::verify) reads a file (preamble, every
/// chunk, the tar stream, each table's rows and checksum against `end.json`), without a vault,
/// a catalog or a keychain: for fuzzing and tests. Returns the header, manifest and end record.
///
/// # Errors
/// `WrongKey` when the header names another key; otherwise what [`verify`](crate::jobs::verify) reports.
pub fn verify_reader(mut r: impl Read, key: &Key) -> Result<(Header, Manifest, End)> {
    let pre = read_preamble(&mut r)?;
    if pre.fingerprint() != key.fingerprint() {
        return Err(Error::new(
            ErrorKind::WrongKey,
            format!(
                "This backup was made with key {}; the key given is {}",
                pre.fingerprint(),
                key.fingerprint()
            ),
            "Use the key the backup was made with",
        ));
    }
    let scan = scan_stream(r, pre, key, None, &crate::progress::Silent)?;
    Ok((scan.header, scan.manifest, scan.end))
}

pub(super) fn scan_stream(
    r: impl Read,
    pre: Preamble,
    key: &Key,
    total: Option<u64>,
    progress: &dyn Progress,
) -> Result<Scan> {
    let count = Arc::new(AtomicU64::new(pre.aad.len() as u64));
    let reader = CountingReader::new(r, count.clone());
    let mut tally = TableTally::default();
    let mut last_report = 0u64;
    let (manifest, end) = archive::walk(archive::plaintext(reader, &pre, key), |item| {
        if let Item::LargeObject { oid, part, data } = item {
            tally.start_object(oid, part)?;
            let mut buf = Vec::new();
            data.read_to_end(&mut buf)
                .map_err(|e| archive::read_error(&e))?;
            tally.update_object(oid, &buf);
            return Ok(());
        }
        if let Item::Part { table, part, data } = item {
            tally.start_part(table, part)?;
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = data.read(&mut buf).map_err(|e| archive::read_error(&e))?;
                if n == 0 {
                    break;
                }
                tally.update(table.index, &buf[..n]);
            }
            let done = count.load(Ordering::Relaxed);
            if done - last_report > (4 << 20) {
                last_report = done;
                progress.report(&ProgressEvent {
                    phase: Phase::Verify,
                    table: Some(table.display_name()),
                    tables_done: 0,
                    tables_total: 0,
                    rows: 0,
                    bytes: done,
                    total_bytes: total,
                });
            }
        }
        Ok(())
    })?;
    let (tables, rows, bytes) = tally.check(&manifest, &end)?;
    Ok(Scan {
        version: pre.version,
        header: pre.header,
        manifest,
        end,
        tables,
        rows,
        bytes,
    })
}

pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Whether the file starts like a SchoolVault archive (otherwise it may be an old-system file).
pub(super) fn is_v2(path: &Path) -> Result<bool> {
    let mut start = [0u8; 8];
    let mut f =
        File::open(path).map_err(|e| Error::io(format_args!("opening {}", path.display()), &e))?;
    let mut n = 0;
    while n < start.len() {
        match f.read(&mut start[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::io(format_args!("reading {}", path.display()), &e)),
        }
    }
    Ok(archive::looks_like_v2(&start[..n]))
}

/// Open an old-system file with every key at hand (and the old development key).
pub(super) async fn open_v1(path: &Path, keys: Arc<Keys>) -> Result<V1Backup> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let candidates = keys.candidates();
        // Look at the first bytes before reading the whole file: a large foreign file
        // is refused without being loaded.
        let reading = |e: std::io::Error| Error::io(format_args!("reading {}", path.display()), &e);
        let mut f = File::open(&path).map_err(reading)?;
        let size = f.metadata().map_err(reading)?.len();
        let mut head = Vec::with_capacity(legacy::SNIFF_LEN);
        (&mut f)
            .take(legacy::SNIFF_LEN as u64)
            .read_to_end(&mut head)
            .map_err(reading)?;
        legacy::sniff(&head, size, &candidates)?;
        drop(f);
        let bytes = std::fs::read(&path).map_err(reading)?;
        legacy::open(&bytes, &candidates)
    })
    .await
    .map_err(join_error)?
}

/// The refusal of an old-system file under the public development key.
pub(super) fn untrusted_v1() -> Error {
    Error::new(
        ErrorKind::Untrusted,
        "This old-system file opened only with the old system's public development key, so anyone could have written it (for example adding an administrator account); nothing was changed",
        "Restore it only if you know where it came from: confirm the second warning in the app, or pass --trust-dev-key to `schoolvault restore`",
    )
    .in_app("Restore it only if you know where it came from: tick the second warning in the restore window")
}

pub(super) fn v1_warnings(v1: &V1Backup) -> Vec<String> {
    let mut w = Vec::new();
    if v1.dev_key {
        w.push(legacy::DEV_KEY_WARNING.to_string());
    }
    for (key, _) in &v1.tables {
        if legacy::table_for(key).is_none() {
            w.push(format!("The file holds records under {key:?}, which matches no table: it cannot be restored"));
        }
    }
    w
}

pub(super) fn read_manifest<R: Read>(r: R, pre: &Preamble, key: &Key) -> Result<Manifest> {
    let mut tar = tar::Archive::new(crate::tar_guard::TarGuard::new(archive::plaintext(
        r, pre, key,
    )));
    let mut entries = tar.entries().map_err(|e| archive::read_error(&e))?;
    let mut first = entries
        .next()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Truncated,
                "The backup is empty",
                "Use another backup",
            )
        })?
        .map_err(|e| archive::read_error(&e))?;
    let path = first.path().map_err(|e| archive::read_error(&e))?;
    if path.to_string_lossy() != "manifest.json" {
        return Err(Error::new(
            ErrorKind::Damaged,
            "The backup does not start with its manifest",
            "Use another copy of this backup",
        ));
    }
    archive::read_json(&mut first, "manifest")
}

#[cfg(test)]
mod tally_tests {
    use super::*;
    use crate::archive::BackupKind;
    use crate::source::SourceInfo;
    use chrono::Utc;

    fn table(index: u32) -> TableManifest {
        TableManifest {
            index,
            schema: "public".into(),
            name: format!("t{index}"),
            columns: vec!["id".into()],
        }
    }

    fn manifest(tables: Vec<TableManifest>) -> Manifest {
        Manifest {
            format: 2,
            backup_id: "b".into(),
            kind: BackupKind::Manual,
            snapshot_at: Utc::now(),
            source: SourceInfo {
                engine: "postgresql".into(),
                server_version: "15".into(),
                database: "school".into(),
            },
            tables,
            sequences: Vec::new(),
            schema: true,
            unsupported: Vec::new(),
            privileges: Default::default(),
        }
    }

    fn end_of(index: u32, data: &[&[u8]]) -> TableEnd {
        let mut h = Sha256::new();
        for d in data {
            h.update(d);
        }
        let all: Vec<u8> = data.concat();
        TableEnd {
            index,
            rows: all.iter().filter(|&&b| b == b'\n').count() as u64,
            bytes: all.len() as u64,
            parts: data.len() as u32,
            sha256: hex::encode(h.finalize()),
        }
    }

    fn end(tables: Vec<TableEnd>) -> End {
        End {
            total_rows: tables.iter().map(|t| t.rows).sum(),
            total_bytes: tables.iter().map(|t| t.bytes).sum(),
            tables,
            finished_at: Utc::now(),
            large_objects: Vec::new(),
        }
    }

    /// Feed `parts` of table 0 (and an empty table 1) through a tally.
    fn tally(parts: &[&[u8]]) -> Result<TableTally> {
        let mut t = TableTally::default();
        for (i, p) in parts.iter().enumerate() {
            t.start_part(&table(0), i as u32)?;
            t.update(0, p);
        }
        Ok(t)
    }

    #[test]
    fn a_table_that_matches_its_end_record_passes_and_counts() {
        let parts: [&[u8]; 2] = [b"1\n2\n", b"3\n"];
        let m = manifest(vec![table(0), table(1)]);
        let e = end(vec![end_of(0, &parts), end_of(1, &[])]);
        let (tables, rows, bytes) = tally(&parts).expect("in order").check(&m, &e).expect("ok");
        assert_eq!((tables, rows, bytes), (2, 3, 6));
    }

    #[test]
    fn a_changed_byte_a_lost_part_or_a_missing_table_is_named() {
        let parts: [&[u8]; 2] = [b"1\n2\n", b"3\n"];
        let m = manifest(vec![table(0)]);
        let good = end(vec![end_of(0, &parts)]);
        // One byte changed: same rows, other checksum.
        let e = tally(&[b"1\n2\n", b"4\n"])
            .expect("tally")
            .check(&m, &good)
            .expect_err("changed");
        assert_eq!(e.kind(), ErrorKind::Inconsistent);
        assert!(e.message().contains("public.t0"), "{e}");
        // The second part lost: a row short.
        let e = tally(&parts[..1])
            .expect("tally")
            .check(&m, &good)
            .expect_err("short");
        assert!(
            e.message().contains("2 rows where the end record says 3"),
            "{e}"
        );
        // Parts out of order are refused as they arrive.
        let mut t = TableTally::default();
        let e = t.start_part(&table(0), 1).expect_err("out of order");
        assert_eq!(e.kind(), ErrorKind::Damaged);
        // A table of the manifest that the end record does not list.
        let two = manifest(vec![table(0), table(1)]);
        let e = tally(&parts)
            .expect("tally")
            .check(&two, &good)
            .expect_err("missing");
        assert!(e.message().contains("missing from the end record"), "{e}");
        // An end record with a table the manifest does not have.
        let extra = end(vec![end_of(0, &parts), end_of(7, &[])]);
        let e = tally(&parts)
            .expect("tally")
            .check(&m, &extra)
            .expect_err("extra");
        assert_eq!(e.kind(), ErrorKind::Inconsistent);
    }
}
