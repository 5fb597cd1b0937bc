//! The stamp ledger (`../shared/LEDGER.md`): entries, checkpoints, and the invariant checks
//! an auditor runs.
//!
//! Pure: nothing here reads files, the network or the clock. The store persists entries and
//! Merkle hashes; the service decides what to sign and when.

pub mod check;
pub mod checkpoint;
pub mod entry;
