//! `pennypost gate` end to end: the real binary between a test client and an upstream of the
//! test's own, with the real `pennypost serve` as the mint (`harness.rs`).
//!
//! `contract.rs` runs the priced flow (hold, forward, capture or release, retries, refusals)
//! against a stand-in mint of the test's own that answers as GATE.md says. `holds.rs` (and one
//! test of `browser.rs`) needs holds in the real mint (GATE.md's additions to the API), which the mint does not
//! have yet: those tests are `#[ignore]`d until it does, and run with `--ignored`.

mod browser;
mod config;
mod contract;
mod free;
mod harness;
mod holds;
mod priced;
