//! The command line: `serve`, `audit`, `bench`, `simulate`, `stamp inspect`, `keys rotate`, and
//! the client side (`account`, `buy`, `post`, `vote`, `stamps`).
//!
//! Exit codes: 0 success; 1 a check failed (a stamp that does not verify); 2 the command could
//! not run (bad arguments, unreachable server, unreadable files).

pub mod audit;
pub mod bench;
pub mod client;
pub mod serve;
pub mod simulate;
pub mod stamp_inspect;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pennypost",
    version,
    about = "Sells signed posting stamps and cancels each exactly once"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Audit a server's ledger from the outside (exit 0 all holds, 1 violations, 2 unfinished).
    Audit(audit::AuditArgs),
    /// Load-benchmark a fresh server started from this executable; print a table of ops/s and
    /// latency against the HTTP and Ed25519 ceilings (exit 1 if any request failed).
    Bench(bench::BenchArgs),
    /// Play a month of a community through the rules under the flat and the default policy;
    /// print the figures as a markdown table and write the plot (exit 1 if a target or an
    /// audit fails).
    Simulate(simulate::SimulateArgs),
    /// Work with a single stamp.
    Stamp {
        #[command(subcommand)]
        command: StampCommand,
    },
    /// Client: create or show the account kept in the wallet.
    Account {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: client::AccountCommand,
    },
    /// Client: buy N stamps into the wallet.
    Buy {
        #[command(flatten)]
        client: client::ClientArgs,
        /// How many stamps (1 to 1000).
        count: u64,
    },
    /// Client: post TEXT to the board, paying with stamps from the wallet.
    Post {
        #[command(flatten)]
        client: client::ClientArgs,
        /// The post's text.
        text: String,
        /// The author name shown with the post.
        #[arg(long)]
        author: Option<String>,
    },
    /// Client: vote a post up or down, paying with stamps from the wallet.
    Vote {
        #[command(flatten)]
        client: client::ClientArgs,
        post_id: String,
        /// `up` or `down`.
        direction: String,
    },
    /// Client: list the stamps held in the wallet.
    Stamps {
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Manage issuer keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum StampCommand {
    /// Decode a stamp and verify its signature offline against a server's published keys.
    Inspect(stamp_inspect::InspectArgs),
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a new active issuer key and retire the current one (it keeps verifying its
    /// stamps). Restart the server to publish both events in the ledger.
    Rotate {
        #[arg(long, env = "PENNYPOST_KEYS_DIR", default_value = "./keys")]
        keys_dir: PathBuf,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve(args) => serve::main(args),
        Command::Stamp {
            command: StampCommand::Inspect(args),
        } => stamp_inspect::main(args),
        Command::Audit(args) => audit::main(args),
        Command::Bench(args) => bench::main(args),
        Command::Simulate(args) => simulate::main(args),
        Command::Account { client, command } => client::account(client, command),
        Command::Buy { client, count } => client::buy(client, count),
        Command::Post {
            client,
            text,
            author,
        } => client::post(client, text, author),
        Command::Vote {
            client,
            post_id,
            direction,
        } => client::vote(client, post_id, direction),
        Command::Stamps { client } => client::stamps(client),
        Command::Keys {
            command: KeysCommand::Rotate { keys_dir },
        } => match crate::keys::rotate(&keys_dir, crate::time::Timestamp::now()) {
            Ok(ring) => {
                println!("active key is now {}", ring.active().kid);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("PENNYPOST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
