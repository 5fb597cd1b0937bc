//! pennypost: a post office for a forum. It sells Ed25519-signed posting stamps, cancels each
//! exactly once (on its own board of posts and votes, or for any other site through
//! `/v1/stamps/redeem`), and records every credit, purchase and spend in an append-only Merkle
//! log that anyone can audit from the outside.
//!
//! # Layout
//!
//! - [`stamp`]: the stamp wire format; encode, decode, sign, verify. Pure.
//! - [`keys`]: issuer keys and the checkpoint key on disk: create, load, rotate.
//! - [`ledger`]: ledger entries, signed checkpoints and the invariant checks. Pure.
//! - [`domain`]: the records the rules decide over and the stores keep. Plain data.
//! - [`rules`]: every rule (credit, purchase, spend, accounts, key events, ledger entries and
//!   Merkle hashes), written once over a store transaction ([`store::StoreTx`]) that the rules
//!   open ([`rules::apply`]), and the commands, outcomes and typed refusals.
//! - [`store`]: durable state behind the `Writes`, `Reads` and `Cluster` traits (together
//!   `Store`) and `StoreTx`; [`store::SledStore`] is the embedded backend,
//!   [`store::MemoryStore`] the in-memory one, [`store::PgStore`] the shared one.
//! - [`commit`]: group commit; one writer, one durable sync per batch.
//! - [`verify`]: batch signature verification for stamps checked together.
//! - [`service`]: the use cases, one service per concept (mint, board, log) started by
//!   [`service::App::start`]; the only code touching store, keys and ledger together.
//! - [`payments`]: money in, the providers' side: the [`payments::Provider`] trait, Stripe
//!   Checkout, BTCPay Server, the test provider, their settings. No store, no HTTP routes.
//! - [`api`]: the request and answer bodies of every route, and the error codes; shared by the
//!   server, the client commands, the bench and the tests.
//! - [`http`]: the axum router, thin handlers, authentication extractors, problem+json errors.
//! - [`gate`]: `pennypost gate`, a reverse proxy that asks for stamps on the priced routes of
//!   an existing site: hold, forward, capture or release (talks to a mint over HTTP only).
//! - [`cli`]: the `pennypost` command: `serve`, `audit`, `stamp inspect`, `keys rotate`.
//! - [`config`]: the economy and every limit an operator may set (fixed limits are named
//!   constants beside the code they bound).
//! - [`telemetry`]: Prometheus metrics: the series' names, the recorder, `GET /metrics`.
//! - `simulate`: a month of a community played through the rules under two policies: the
//!   economy's evidence (`pennypost simulate`; built with the `bench` feature).
//!
//! # Glossary
//!
//! - *stamp*: a bearer token worth one unit of postage, `pp1.<payload>.<signature>`.
//! - *spend* (cancel): marking a stamp used, for a post, a vote or a redeem. Once only.
//! - *entry*: one JSON record of the ledger; *checkpoint*: a signed Merkle root of the ledger.

pub mod api;
pub mod cli;
pub mod commit;
pub mod config;
pub mod domain;
pub mod error;
pub mod gate;
pub mod http;
pub mod keys;
pub mod ledger;
pub mod payments;
pub mod rules;
pub mod service;
#[cfg(feature = "bench")]
pub mod simulate;
pub mod stamp;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod verify;
