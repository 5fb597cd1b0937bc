//! The checks behind the fuzz targets, as plain functions, so that a regression test can feed
//! a saved input to exactly the code the fuzzer ran (include the module with
//! `#[path = "../fuzz/src/stamp_checks.rs"]`; its dependencies are all pennypost's own).

pub mod request_checks;
pub mod stamp_checks;
