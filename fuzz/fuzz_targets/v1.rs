//! Arbitrary bytes as an old-system (v1) file: `legacy::sniff` and `legacy::open` with a
//! fixed key (and the old development key).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    schoolvault_fuzz::check_v1(data, None);
});
