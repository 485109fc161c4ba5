//! The whole v2 reader on arbitrary bytes with a fixed key: preamble, chunks, then everything
//! `verify` does (gzip, tar, manifest, parts, end record, per-table checks).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    schoolvault_fuzz::check_v2(data, false);
});
