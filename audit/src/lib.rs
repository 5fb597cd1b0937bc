//! pennypost-audit: the checks an auditor runs on a pennypost ledger, in a crate that builds
//! without the server's store (sled) and HTTP server (axum), so an auditor can read and install
//! it alone (`cargo install --path audit`). The server depends on it for its own
//! `GET /v1/audit`, and `pennypost audit` is this crate's [`main`].
//!
//! # Layout
//!
//! - [`check`]: the streaming invariant checker [`LedgerChecker`], its [`AuditReport`] and the
//!   stable violation codes. Pure.
//! - [`checkpoint`]: parsing and verifying a signed checkpoint note under a pinned key. Pure.
//! - [`auditor`]: the HTTP auditor: key pinning, page downloads, consistency checks and the
//!   printed report; [`main`] is the whole command.
//! - [`server_url`]: a server's base URL as typed (`host:port` gets `http://`), shared with
//!   the client commands of `pennypost`. Pure.
//! - [`state`]: the auditor's files between runs, the state file (pinned key, last trusted
//!   checkpoint) and the checker state beside it, so a later run checks only new entries.
//! - [`wire`]: the server's answers the auditor reads, as its own types (key, proof, a page of
//!   entries, the server's totals).
//!
//! It must not depend on the server crate, its store or its HTTP server, and holds no secret:
//! signing checkpoints stays in the server, which owns the ledger key.
//!
//! ```
//! use pennypost_audit::{LedgerChecker, ViolationCode};
//!
//! let mut checker = LedgerChecker::new();
//! checker.push(b"not json");
//! let report = checker.report(0);
//! assert!(!report.ok);
//! assert_eq!(report.violations[0].code, ViolationCode::MalformedEntry);
//! ```

pub mod auditor;
pub mod check;
pub mod checkpoint;
pub mod server_url;
pub mod state;
pub mod wire;

pub use auditor::{audit, main, AuditArgs};
pub use check::{AuditReport, LedgerChecker, Violation, ViolationCode};

/// Largest ledger entry the checker accepts, in bytes: the ledger's own limit ("An entry is
/// at most 64 KiB", docs/ledger.md), so an entry the format allows is never reported as
/// malformed. The server writes one byte less ([`ENTRY_BYTES_WRITTEN_MAX`]).
pub const ENTRY_BYTES_MAX: usize = 64 * 1024;

/// Largest ledger entry the server writes, in bytes: 65,535 rather than 65,536 because a C2SP
/// tlog-tiles entry bundle prefixes each entry with a big-endian u16 length, so a larger entry
/// could be logged but never served as a tile. Named here, beside the checker's limit, so the
/// writer, the store and the checker cannot disagree. A purchase of the most stamps allowed
/// stays well below it.
pub const ENTRY_BYTES_WRITTEN_MAX: usize = ENTRY_BYTES_MAX - 1;
