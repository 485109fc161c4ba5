#!/usr/bin/env python3
"""Read a SchoolVault backup (.svb, format 3 or 2) without SchoolVault.

A standalone recovery tool: it needs only Python 3.9+ and the `cryptography` package
(Debian: python3-cryptography; pip: cryptography). See docs/RECOVERY.md for the format.

    schoolvault-recover.py BACKUP.svb --out BACKUP.tar.gz       # decrypt, check every chunk
    schoolvault-recover.py BACKUP.svb --extract DIR             # also check every table, and
                                                                # write DIR/restore.sql for psql

The key comes from --key-file FILE (64 hex characters) or the BACKUP_ENCRYPTION_KEY
environment variable. Nothing is written unless the whole file authenticates: output goes to a
temporary name and is renamed only at the end.
"""

import argparse
import gzip
import hashlib
import hmac
import json
import os
import re
import shutil
import struct
import sys
import tarfile
import tempfile

MAGIC = b"SVBACKUP"
TAG_LEN = 16
MAX_HEADER_LEN = 1 << 20
MAX_CHUNK_SIZE = 64 << 20
MAX_JSON_ENTRY = 64 << 20


class Refused(Exception):
    """A problem with the input: printed as one line, exit code 1."""


def load_key(key_file):
    if key_file:
        with open(key_file, "r", encoding="ascii", errors="replace") as f:
            text = f.read()
    else:
        text = os.environ.get("BACKUP_ENCRYPTION_KEY", "")
        if not text:
            raise Refused("no key: pass --key-file FILE or set BACKUP_ENCRYPTION_KEY "
                          "to the key's 64 hexadecimal characters (the recovery copy)")
    text = text.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise Refused("the key must be 64 hexadecimal characters (0-9, a-f)")
    return bytes.fromhex(text)


def fingerprint(key):
    return hmac.new(key, b"schoolvault key fingerprint", hashlib.sha256).hexdigest()[:16]


def read_exact(f, n):
    data = f.read(n)
    return data if data is not None else b""


def read_preamble(f):
    """The header (a dict) and the bytes every chunk authenticates (magic to end of header)."""
    start = read_exact(f, 14)
    if len(start) < 14 or start[:8] != MAGIC:
        raise Refused("not a SchoolVault backup (no SVBACKUP magic); "
                      "an old-system .enc file is read by SchoolVault itself")
    version, header_len = struct.unpack("<HI", start[8:14])
    # Format 3 differs from 2 only in its order (post-data before the data) and its tables'
    # end records, which this script does not need: it runs post-data after the data anyway.
    if version not in (2, 3):
        raise Refused(f"format version {version}: this script reads versions 2 and 3")
    if header_len > MAX_HEADER_LEN:
        raise Refused(f"damaged: the header claims {header_len} bytes")
    header_bytes = read_exact(f, header_len)
    if len(header_bytes) != header_len:
        raise Refused("truncated: the file ends inside its header")
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except ValueError as e:
        raise Refused(f"damaged: the header is not JSON ({e})")
    if header.get("cipher") != "aes-256-gcm-stream" or header.get("compression") != "gzip":
        raise Refused(f"unknown cipher or compression: {header.get('cipher')}, "
                      f"{header.get('compression')}")
    return header, start + header_bytes


class Plaintext:
    """The decrypted body as a file-like object: each chunk is authenticated before any of
    its bytes are returned; truncation, reordering and changes raise Refused."""

    def __init__(self, f, key, header, aad):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.f = f
        self.aead = AESGCM(key)
        self.aad = aad
        self.chunk_size = int(header["chunk_size"])
        if not 0 < self.chunk_size <= MAX_CHUNK_SIZE:
            raise Refused(f"damaged: chunk size {self.chunk_size}")
        self.prefix = bytes.fromhex(header["nonce_prefix"])
        if len(self.prefix) != 7:
            raise Refused("damaged: the nonce prefix is not 7 bytes")
        self.counter = 0
        self.buf = b""
        self.done = False
        self.offset = len(aad)

    def _next_chunk(self):
        from cryptography.exceptions import InvalidTag

        sealed = read_exact(self.f, self.chunk_size + TAG_LEN)
        last = len(sealed) < self.chunk_size + TAG_LEN
        if last and len(sealed) < TAG_LEN:
            raise Refused(f"truncated: the file ends at byte {self.offset + len(sealed)}, "
                          "before its last chunk")
        nonce = self.prefix + struct.pack(">I", self.counter) + (b"\x01" if last else b"\x00")
        try:
            plain = self.aead.decrypt(nonce, sealed, self.aad)
        except InvalidTag:
            if not last:
                raise Refused(f"damaged: chunk {self.counter} (at byte {self.offset}) does not "
                              "authenticate: the file was changed or is corrupt")
            raise Refused(f"damaged or truncated: the last chunk {self.counter} (at byte "
                          f"{self.offset}) does not authenticate")
        if last and read_exact(self.f, 1):
            raise Refused("damaged: bytes after the last chunk")
        self.offset += len(sealed)
        self.counter += 1
        self.done = last
        return plain

    def read(self, n=-1):
        while not self.done and (n < 0 or len(self.buf) < n):
            self.buf += self._next_chunk()
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def readable(self):
        return True


def open_backup(path, key):
    f = open(path, "rb")
    header, aad = read_preamble(f)
    want = header.get("key_fingerprint", "")
    have = fingerprint(key)
    if want != have:
        f.close()
        raise Refused(f"wrong key: this backup was encrypted with key {want}, "
                      f"the key given is {have}")
    return f, header, Plaintext(f, key, header, aad)


def write_targz(path, key, out):
    f, header, plain = open_backup(path, key)
    tmp = out + ".partial"
    try:
        with f, open(tmp, "wb") as o:
            os.chmod(tmp, 0o600)
            while True:
                data = plain.read(1 << 20)
                if not data:
                    break
                o.write(data)
            o.flush()
            os.fsync(o.fileno())
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return header


PART = re.compile(r"^data/(\d+)/(\d+)\.copy$")
LARGE_OBJECT = re.compile(r"^large-objects/(\d+)/(\d+)\.bin$")


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text):
    return "'" + text.replace("'", "''") + "'"


def extract(path, key, out_dir):
    """Decrypt, decompress and untar into out_dir: manifest.json, schema/*.sql, one
    data/<n>.copy per table (its parts joined in order), one large-objects/<oid>.bin per large
    object, end.json; check every table's rows and SHA-256, and every large object's, against
    end.json; write restore.sql."""
    f, header, plain = open_backup(path, key)
    if os.path.exists(out_dir) and os.listdir(out_dir):
        raise Refused(f"{out_dir} is not empty")
    parent = os.path.dirname(os.path.abspath(out_dir))
    work = tempfile.mkdtemp(prefix=".svb-recover-", dir=parent)
    try:
        os.makedirs(os.path.join(work, "schema"))
        os.makedirs(os.path.join(work, "data"))
        manifest = end = None
        hashes, rows, next_part = {}, {}, {}
        lo_hashes, lo_sizes, lo_next = {}, {}, {}
        with f, gzip.GzipFile(fileobj=plain, mode="rb") as gz, \
                tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                name = member.name
                if not member.isfile():
                    continue
                m = PART.match(name)
                lo = LARGE_OBJECT.match(name)
                if lo:
                    oid, part = int(lo.group(1)), int(lo.group(2))
                    if manifest is None:
                        raise Refused("damaged: data before the manifest")
                    if part != lo_next.get(oid, 0):
                        raise Refused(f"damaged: large object {oid}'s part {part} is out of order")
                    lo_next[oid] = part + 1
                    os.makedirs(os.path.join(work, "large-objects"), exist_ok=True)
                    h = lo_hashes.setdefault(oid, hashlib.sha256())
                    src = tar.extractfile(member)
                    with open(os.path.join(work, "large-objects", f"{oid}.bin"), "ab") as o:
                        while True:
                            data = src.read(1 << 20)
                            if not data:
                                break
                            h.update(data)
                            lo_sizes[oid] = lo_sizes.get(oid, 0) + len(data)
                            o.write(data)
                elif name in ("manifest.json", "end.json"):
                    if member.size > MAX_JSON_ENTRY:
                        raise Refused(f"damaged: {name} claims {member.size} bytes")
                    doc = json.loads(tar.extractfile(member).read())
                    with open(os.path.join(work, name), "w", encoding="utf-8") as o:
                        json.dump(doc, o, indent=1)
                    if name == "manifest.json":
                        manifest = doc
                    else:
                        end = doc
                elif name in ("schema/pre-data.sql", "schema/post-data.sql"):
                    with open(os.path.join(work, name), "wb") as o:
                        shutil.copyfileobj(tar.extractfile(member), o)
                elif m:
                    table, part = int(m.group(1)), int(m.group(2))
                    if manifest is None:
                        raise Refused("damaged: data before the manifest")
                    if part != next_part.get(table, 0):
                        raise Refused(f"damaged: table {table}'s part {part} is out of order")
                    next_part[table] = part + 1
                    h = hashes.setdefault(table, hashlib.sha256())
                    src = tar.extractfile(member)
                    with open(os.path.join(work, "data", f"{table}.copy"), "ab") as o:
                        while True:
                            data = src.read(1 << 20)
                            if not data:
                                break
                            h.update(data)
                            rows[table] = rows.get(table, 0) + data.count(b"\n")
                            o.write(data)
                # Other entries (a later version's) are ignored, as SchoolVault does.
        if manifest is None or end is None:
            raise Refused("incomplete: the backup has no end.json (its sentinel); "
                          "it was not finished and must not be trusted")
        by_index = {t["index"]: t for t in end["tables"]}
        for t in manifest["tables"]:
            e = by_index.get(t["index"])
            got_rows = rows.get(t["index"], 0)
            got_sha = hashes.get(t["index"], hashlib.sha256()).hexdigest()
            if e is None or e["rows"] != got_rows or e["sha256"] != got_sha:
                raise Refused(f"inconsistent: table {t['schema']}.{t['name']} does not match "
                              "end.json")
            copy = os.path.join(work, "data", f"{t['index']}.copy")
            if not os.path.exists(copy):
                open(copy, "wb").close()
        listed = {lo["oid"]: lo for lo in end.get("large_objects", [])}
        if set(listed) != set(lo_hashes):
            raise Refused("inconsistent: the large objects do not match end.json")
        for oid, lo in listed.items():
            if lo["size"] != lo_sizes.get(oid, 0) or lo["sha256"] != lo_hashes[oid].hexdigest():
                raise Refused(f"inconsistent: large object {oid} does not match end.json")
        if listed:
            write_large_objects_sql(work, sorted(listed))
        write_restore_sql(work, manifest)
        os.makedirs(out_dir, exist_ok=True)
        for entry in os.listdir(work):
            os.replace(os.path.join(work, entry), os.path.join(out_dir, entry))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def write_large_objects_sql(work, oids):
    """large-objects.sql: each large object created under its own oid (tables refer to it by
    number) and filled from its .bin file, 1 MiB per statement."""
    with open(os.path.join(work, "large-objects.sql"), "w", encoding="ascii") as o:
        for oid in oids:
            o.write(f"SELECT pg_catalog.lo_create({oid});\n")
            with open(os.path.join(work, "large-objects", f"{oid}.bin"), "rb") as src:
                offset = 0
                while True:
                    data = src.read(1 << 20)
                    if not data:
                        break
                    o.write(f"SELECT pg_catalog.lo_put({oid}, {offset}, '\\x{data.hex()}'::bytea);\n")
                    offset += len(data)


def write_restore_sql(work, manifest):
    """A psql script that loads the backup into an empty database: run it with
    `psql -v ON_ERROR_STOP=1 --single-transaction -d NEWDB -f restore.sql` from that folder."""
    lines = [
        "-- Load a SchoolVault backup into an empty database with psql alone.",
        f"-- Backup {manifest['backup_id']} of {manifest['source']['database']}, "
        f"snapshot {manifest['snapshot_at']}.",
        "-- Run from this folder: psql -v ON_ERROR_STOP=1 --single-transaction -d NEWDB -f restore.sql",
        "\\set ON_ERROR_STOP on",
    ]
    if manifest.get("schema"):
        lines.append("\\i schema/pre-data.sql")
    for t in manifest["tables"]:
        cols = ", ".join(quote_ident(c) for c in t["columns"])
        target = f"{quote_ident(t['schema'])}.{quote_ident(t['name'])}"
        if cols:
            target += f" ({cols})"
        lines.append(f"\\copy {target} FROM 'data/{t['index']}.copy'")
    if os.path.exists(os.path.join(work, "large-objects.sql")):
        lines.append("\\i large-objects.sql")
    for s in manifest.get("sequences", []):
        seq = quote_literal(f"{quote_ident(s['schema'])}.{quote_ident(s['name'])}")
        called = "true" if s["is_called"] else "false"
        lines.append(f"SELECT pg_catalog.setval({seq}, {int(s['last_value'])}, {called});")
    if manifest.get("schema"):
        lines.append("\\i schema/post-data.sql")
    with open(os.path.join(work, "restore.sql"), "w", encoding="utf-8") as o:
        o.write("\n".join(lines) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description="Decrypt and check a SchoolVault backup (.svb) "
                                "without SchoolVault.")
    p.add_argument("backup", help="the .svb file")
    p.add_argument("--key-file", help="a file holding the key's 64 hex characters "
                   "(default: the BACKUP_ENCRYPTION_KEY environment variable)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", help="write the decrypted .tar.gz here")
    g.add_argument("--extract", metavar="DIR", help="check every table and extract into DIR "
                   "(with restore.sql for psql)")
    args = p.parse_args(argv)
    try:
        key = load_key(args.key_file)
        if args.out:
            header = write_targz(args.backup, key, args.out)
            print(f"{args.backup}: backup {header.get('backup_id')} of "
                  f"{header.get('source', {}).get('database')}: every chunk authenticated; "
                  f"wrote {args.out}", file=sys.stderr)
        else:
            manifest = extract(args.backup, key, args.extract)
            print(f"{args.backup}: {len(manifest['tables'])} tables checked against end.json; "
                  f"extracted into {args.extract} (load with restore.sql)", file=sys.stderr)
        return 0
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ImportError:
        print("error: the Python package `cryptography` is missing: "
              "apt-get install python3-cryptography, or pip install cryptography",
              file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (tarfile.TarError, EOFError, zlib_error()) as e:
        print(f"error: damaged: the decrypted data is not a valid tar.gz ({e})", file=sys.stderr)
        return 1


def zlib_error():
    import zlib
    return zlib.error


if __name__ == "__main__":
    sys.exit(main())
