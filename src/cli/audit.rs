//! `pennypost audit --server URL [--state FILE]`: the independent auditor, as a subcommand.
//!
//! Thin: the auditor lives in the `pennypost-audit` crate (`audit/`), which builds without the
//! server's store and HTTP server and also ships as the standalone `pennypost-audit` binary.
//! This module only names it for the `pennypost` command line (flags, output and exit codes are
//! the crate's: 0 all holds, 1 violations, 2 could not finish); it must not add checks of its
//! own, or the two commands would disagree.

use std::process::ExitCode;

pub use pennypost_audit::auditor::{audit, AuditArgs};

/// Runs `pennypost audit`: exactly what `pennypost-audit` runs.
pub fn main(args: AuditArgs) -> ExitCode {
    pennypost_audit::main(args)
}
