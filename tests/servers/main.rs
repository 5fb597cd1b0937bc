//! Several servers on one PostgreSQL database: the real `pennypost` binary, N processes started
//! with the same `--database` and `--keys-dir`, driven over HTTP as one service (one test binary,
//! modules below, so the crate links once). The harness is [`harness::Service`]; the database
//! comes from `tests/support/pg.rs` (`PENNYPOST_TEST_DATABASE_URL`, or a throwaway cluster).
//!
//! - [`redeem_race`]: every stamp redeemed on all three servers at once is spent exactly once.
//! - [`checkpoints`]: checkpoints signed by any server verify under one key, one root per size,
//!   consistency proofs between sizes; the entries are byte for byte the same on every server.
//! - [`audit`]: `pennypost audit` passes against each server in turn with one state file.
//! - [`read_your_writes`]: a post, a vote and a purchase answered by one server are seen by the
//!   others at once.
//! - [`kill_server`]: a server SIGKILLed during a burst loses no acknowledged change; the others
//!   go on; it restarts on the same database.
//! - [`leader`]: one store at a time holds the lead of the background ledger check, and it
//!   passes on when its holder goes.
//! - [`keys`]: a server left on a retired issuer key sells nothing (503); servers started
//!   at once with their own keys directories publish one active key, and only one starts.
//! - [`starvation`]: reads stuck on the database take every read connection and keep no
//!   redeem waiting (the writer's connections are its own).
//! - [`tls`]: `--database-ca-file` reaches a database that takes only TLS and checks its
//!   certificate; without it, or with another authority, the server does not start.
//! - [`holds`]: a hold made on one server holds on the other: spends and holds refused there,
//!   a capture on either answers the same, a release frees the stamps for both.
//! - [`database_outage`]: PostgreSQL killed during a burst: 503 with Retry-After, no 500, the
//!   servers stay up and serve again by themselves once it is back, nothing acknowledged lost.

mod audit;
mod checkpoints;
mod database_outage;
mod harness;
mod holds;
mod keys;
// Key files (tests/support/keys.rs).
#[path = "../support/keys.rs"]
mod keys_files;
mod kill_server;
mod leader;
#[path = "../support/pg.rs"]
mod pg;
mod read_your_writes;
mod redeem_race;
// Starting `pennypost serve` and `pennypost audit` (tests/support/serve.rs).
#[path = "../support/serve.rs"]
mod serve;
mod starvation;
mod tls;
// Stamp ids and Prometheus samples (tests/support/wire.rs).
#[path = "../support/wire.rs"]
mod wire;
