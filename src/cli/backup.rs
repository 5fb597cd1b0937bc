//! `pennypost backup --server URL --to DIR`: asks a running server for a consistent backup of
//! its store (`POST /v1/admin/backup`) into DIR, a new directory on the server's machine.
//! The admin token comes from `PENNYPOST_ADMIN_TOKEN`, read and explained as `admin credit`
//! does (`super::admin::token_from_env`).
//!
//! Exit codes: 0 the backup is written; 1 the server refused it (the problem's code and detail
//! are printed); 2 it could not be asked (no token, server unreachable, an answer that does not
//! parse).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::api::{BackupRequest, BackupResponse, ErrorCode, Problem};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The server's base URL (`http://` is added when no scheme is given).
    #[arg(
        long,
        env = "PENNYPOST_SERVER",
        default_value = super::client::DEFAULT_SERVER,
        value_parser = pennypost_audit::server_url::base_url
    )]
    pub server: String,
    /// The new directory to write, absolute, on the server's machine. Start a server with
    /// `--data-dir DIR` (and the same keys directory) to restore it.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// Why the command failed, with its exit code.
enum Failure {
    Refused(String),
    CannotAsk(String),
}

pub fn main(args: BackupArgs) -> ExitCode {
    match run(&args) {
        Ok(answer) => {
            println!(
                "backup written to {} (ledger size {})",
                answer.path, answer.ledger_size
            );
            ExitCode::SUCCESS
        }
        Err(Failure::Refused(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(Failure::CannotAsk(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &BackupArgs) -> Result<BackupResponse, Failure> {
    let token = super::admin::token_from_env().map_err(Failure::CannotAsk)?;
    let path = args
        .to
        .to_str()
        .ok_or_else(|| Failure::CannotAsk(format!("{} is not UTF-8", args.to.display())))?;
    let url = format!("{}/v1/admin/backup", args.server.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::CannotAsk(e.to_string()))?;
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(token)
            .json(&BackupRequest { path: path.into() })
            .send()
            .await
            .map_err(|e| Failure::CannotAsk(format!("cannot reach {url}: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::CannotAsk(e.to_string()))?;
        if status == 201 {
            return serde_json::from_slice(&body)
                .map_err(|e| Failure::CannotAsk(format!("cannot read the answer: {e}")));
        }
        Err(match serde_json::from_slice::<Problem>(&body) {
            Ok(problem) => Failure::Refused(format!(
                "{} ({status}): {}{}",
                problem.code,
                problem.detail,
                super::admin::hint(Some(problem.code).filter(|c| *c == ErrorCode::Unauthorized))
            )),
            Err(_) => Failure::CannotAsk(format!("the server answered {status}")),
        })
    })
}
