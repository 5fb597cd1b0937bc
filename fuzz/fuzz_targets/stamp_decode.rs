//! Stamp decoding and verification on arbitrary bytes; see `src/stamp_checks.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pennypost_fuzz::stamp_checks::check(data);
});
