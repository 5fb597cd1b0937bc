//! The stamp ledger (docs/ledger.md): entries, checkpoints, and the invariant checks an auditor
//! runs.
//!
//! Pure: nothing here reads files, the network or the clock. The store persists entries and
//! Merkle hashes; the service decides what to sign and when. The checks and checkpoint
//! verification live in the `pennypost-audit` crate (`audit/`), so an auditor can build them
//! without the server; [`check`] is that crate's checker, re-exported for the server's own
//! `GET /v1/audit`.

pub use pennypost_audit::check;
pub mod checkpoint;
pub mod entry;
