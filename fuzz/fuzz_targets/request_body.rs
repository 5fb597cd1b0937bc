//! Arbitrary request bodies through the real router and service; see
//! `src/request_checks.rs` for the input layout and what is asserted.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pennypost_fuzz::request_checks::check(data);
});
