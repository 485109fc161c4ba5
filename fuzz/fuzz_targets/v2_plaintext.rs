//! Arbitrary bytes as the decrypted plaintext of a v2 archive: sealed with the fixed key so
//! the AEAD passes, then read as `verify` does, so gzip, tar, manifest.json and end.json
//! parsing are exercised. First byte: the mode (see `schoolvault_fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use schoolvault_engine::archive::seal_in_memory;
use schoolvault_fuzz::{check_v2, header, key, plaintext};

fuzz_target!(|data: &[u8]| {
    let Some((plain, chunk_size)) = plaintext(data) else {
        return;
    };
    let file = seal_in_memory(key(), header(), chunk_size, &plain).expect("seal");
    check_v2(&file, true);
});
