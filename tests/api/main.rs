//! Integration tests: the real server binary on port 0, over HTTP. One test binary (modules
//! below) so the crate links once.

mod audit;
mod backup;
mod board;
mod cache;
mod cli;
mod config_file;
mod crash;
mod durability;
mod economy;
mod errors;
mod helpers;
mod hostile;
mod keys;
mod limits;
mod metrics;
mod mint;
mod newcomer;
mod openapi;
// A real PostgreSQL for the servers of PENNYPOST_TEST_BACKEND=postgres (helpers::Backend).
#[path = "../support/pg.rs"]
mod pg;
mod process;
mod readme;
mod secrets;
mod start;
