//! Arbitrary bytes as the plaintext of an old-system (v1) file, encrypted as the old service
//! did (`legacy::encrypt`) with the fixed key so GCM passes: gzip and JSON parsing are reached.
//! First byte: the mode (see `schoolvault_fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use schoolvault_engine::legacy;
use schoolvault_fuzz::{check_v1, key, plaintext};

fuzz_target!(|data: &[u8]| {
    let Some((plain, _)) = plaintext(data) else {
        return;
    };
    let len = plain.len();
    let file = legacy::encrypt(key(), plain).expect("encrypt");
    check_v1(&file, Some(len));
});
