//! `pennypost gate` end to end: the real binary between a test client and an upstream of the
//! test's own, with the real `pennypost serve` as the mint (`harness.rs`).
//!
//! `contract.rs` runs the priced flow (hold, forward, capture or release, retries, refusals)
//! against a stand-in mint of the test's own that answers as GATE.md says. `holds.rs` runs it
//! against the real mint's holds. `browser.rs` drives gate.js in headless Chromium.

mod browser;
mod config;
mod contract;
mod free;
mod harness;
mod holds;
mod isso;
mod priced;
// Starting `pennypost serve` and the gate, with a deadline (tests/support/serve.rs).
#[path = "../support/serve.rs"]
mod serve;
// Prometheus samples (tests/support/wire.rs).
#[path = "../support/wire.rs"]
mod wire;
