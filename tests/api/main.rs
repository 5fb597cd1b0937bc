//! Integration tests: the real server binary on port 0, over HTTP. One test binary (modules
//! below) so the crate links once.

mod audit;
mod backup;
mod board;
mod cache;
mod cli;
mod cli_pay;
mod config_file;
mod contract;
mod crash;
mod durability;
mod economy;
mod errors;
mod helpers;
mod holds;
mod hostile;
mod keys;
// Key files (tests/support/keys.rs).
#[path = "../support/keys.rs"]
mod keys_files;
mod limits;
mod metrics;
mod mint;
mod money;
mod newcomer;
mod openapi;
// A real PostgreSQL for the servers of PENNYPOST_TEST_BACKEND=postgres (helpers::Backend).
#[path = "../support/pg.rs"]
mod pg;
mod process;
mod readme;
mod secrets;
// Starting `pennypost serve` and `pennypost audit` (tests/support/serve.rs).
#[path = "../support/serve.rs"]
mod serve;
mod start;
// Stamp ids, Merkle roots and Prometheus samples (tests/support/wire.rs).
#[path = "../support/wire.rs"]
mod wire;
