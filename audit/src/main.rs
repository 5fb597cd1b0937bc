//! `pennypost-audit --server URL [--state FILE] [--quiet]`: the independent auditor on its own,
//! for auditors who install only this crate (`cargo install --path audit`).
//!
//! Thin: parses the flags and runs [`pennypost_audit::main`], exactly what `pennypost audit`
//! runs. Exit 0 when all holds, 1 with the list of violations, 2 when it could not finish.

use std::process::ExitCode;

use clap::Parser;
use pennypost_audit::AuditArgs;

#[derive(Parser, Debug)]
#[command(
    name = "pennypost-audit",
    version,
    about = "Audit a pennypost server's ledger from the outside (exit 0 all holds, 1 violations, 2 unfinished)"
)]
struct Cli {
    #[command(flatten)]
    audit: AuditArgs,
}

fn main() -> ExitCode {
    pennypost_audit::main(Cli::parse().audit)
}
