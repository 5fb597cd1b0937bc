//! The command line: `serve` (with its config file, `config_file`), `gate`, `audit`, `backup`, `bench`,
//! `simulate`, `stamp inspect`, `keys rotate`, `admin credit`, and the client side (`account`,
//! `buy`, `post`, `vote`, `stamps`, `pay`, `payments`).
//!
//! `bench` and `simulate` are built only with the `bench` feature; without it they stay listed
//! and say how to build them (exit 2).
//!
//! Exit codes: 0 success; 1 a check failed (a stamp that does not verify); 2 the command could
//! not run (bad arguments, unreachable server, unreadable files).

pub mod admin;
pub mod audit;
pub mod backup;
#[cfg(feature = "bench")]
pub mod bench;
pub mod client;
pub mod config_file;
pub mod gate;
pub mod migrate;
pub mod serve;
pub mod serve_payments;
#[cfg(feature = "bench")]
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
    /// How log lines are written to stderr: `text` (colour only on a terminal) or `json`
    /// (one object per line, for log collectors). The level is set by PENNYPOST_LOG.
    #[arg(
        long,
        global = true,
        env = "PENNYPOST_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve(Box<serve::ServeArgs>),
    /// Run the gate: a reverse proxy that asks for stamps on the priced routes of an existing
    /// site (docs/gate.md).
    Gate(gate::GateArgs),
    /// Audit a server's ledger from the outside (exit 0 all holds, 1 violations, 2 unfinished).
    Audit(audit::AuditArgs),
    /// Ask a running server for a consistent backup of its store into a new directory on its
    /// machine (exit 0 written, 1 refused, 2 could not ask). Needs the server's admin token in
    /// PENNYPOST_ADMIN_TOKEN (never an argument: others could read it in the process list).
    Backup(backup::BackupArgs),
    /// Copy a stopped server's sled store into an empty PostgreSQL database and check the copy
    /// (exit 0 copied and checked, 1 the copy differs, 2 it could not be made).
    Migrate(migrate::MigrateArgs),
    /// Load-benchmark a fresh server started from this executable; print a table of ops/s and
    /// latency against the HTTP and Ed25519 ceilings (exit 1 if any request failed).
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// Load benchmark: not in this build (build with `--features bench`).
    #[cfg(not(feature = "bench"))]
    #[command(disable_help_flag = true)]
    Bench(NotBuilt),
    /// Play a month of a community through the rules under the flat and the default policy;
    /// print the figures as a markdown table and write the plot (exit 1 if a target or an
    /// audit fails).
    #[cfg(feature = "bench")]
    Simulate(simulate::SimulateArgs),
    /// Economy simulation: not in this build (build with `--features bench`).
    #[cfg(not(feature = "bench"))]
    #[command(disable_help_flag = true)]
    Simulate(NotBuilt),
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
    /// Client: post TEXT to the board. Says the price first, buys the stamps the wallet
    /// lacks once you agree, and posts under the wallet account's name, verified (an
    /// account created without a name posts as `anonymous`).
    Post {
        #[command(flatten)]
        client: client::ClientArgs,
        /// The post's text.
        text: String,
        /// Post under this name instead, not verified. By default the post shows the name of
        /// the wallet's account, verified (or `anonymous` for an account without a name).
        #[arg(long)]
        author: Option<String>,
        /// Agree to the price and to buying the stamps the wallet lacks without being asked
        /// (needed when there is no terminal to ask on).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Client: vote a post up or down. Says the price first (your further votes on one post
    /// cost more), buys the stamps the wallet lacks once you agree, then votes.
    Vote {
        #[command(flatten)]
        client: client::ClientArgs,
        /// The post's id, as `pennypost post` printed it or `GET /v1/posts` lists it.
        post_id: String,
        /// `up` or `down`.
        direction: String,
        /// Agree to the price and to buying the stamps the wallet lacks without being asked
        /// (needed when there is no terminal to ask on).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Client: add money to the account through a payment provider the server takes: prints
    /// where to pay, waits until the payment is paid, expired or failed, prints the balance.
    Pay {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(flatten)]
        pay: client::PayArgs,
    },
    /// Client: the account's payments (`list`, `check ID`).
    Payments {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: client::PaymentsCommand,
    },
    /// Client: list the stamps held in the wallet (id and expiry).
    Stamps {
        #[command(flatten)]
        client: client::ClientArgs,
        /// Also print each stamp's full text (`pp1.…`), to spend it elsewhere. Anyone holding
        /// that text can spend the stamp.
        #[arg(long)]
        full: bool,
    },
    /// Operator: credit or debit an account (admin token from PENNYPOST_ADMIN_TOKEN).
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Manage issuer keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// The arguments of a command left out of this build: taken as they come, so that any
/// invocation gets the same answer, how to build it.
#[cfg(not(feature = "bench"))]
#[derive(clap::Args, Debug)]
pub struct NotBuilt {
    /// The command's arguments (not read: the command is not in this build).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// What `pennypost bench` and `pennypost simulate` answer in a build without the `bench`
/// feature (exit 2).
#[cfg(not(feature = "bench"))]
fn not_built(command: &str) -> ExitCode {
    eprintln!(
        "error: `pennypost {command}` is not in this build: it needs the `bench` feature. Build \
         it with `cargo build --release --features bench` (then `target/release/pennypost \
         {command}`), or run `cargo run --release --features bench -- {command}`"
    );
    ExitCode::from(2)
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
        /// The directory holding the issuer keys (the server's --keys-dir).
        #[arg(long, env = "PENNYPOST_KEYS_DIR", default_value = "./keys")]
        keys_dir: PathBuf,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match config_file::parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(cli.log_format == "json");
    match cli.command {
        Command::Serve(args) => serve::main(*args),
        Command::Gate(args) => gate::main(args),
        Command::Backup(args) => backup::main(args),
        Command::Migrate(args) => migrate::main(args),
        Command::Stamp {
            command: StampCommand::Inspect(args),
        } => stamp_inspect::main(args),
        Command::Audit(args) => audit::main(args),
        #[cfg(feature = "bench")]
        Command::Bench(args) => bench::main(args),
        #[cfg(not(feature = "bench"))]
        Command::Bench(_) => not_built("bench"),
        #[cfg(feature = "bench")]
        Command::Simulate(args) => simulate::main(args),
        #[cfg(not(feature = "bench"))]
        Command::Simulate(_) => not_built("simulate"),
        Command::Account { client, command } => client::account(client, command),
        Command::Buy { client, count } => client::buy(client, count),
        Command::Post {
            client,
            text,
            author,
            yes,
        } => client::post(client, text, author, yes),
        Command::Vote {
            client,
            post_id,
            direction,
            yes,
        } => client::vote(client, post_id, direction, yes),
        Command::Stamps { client, full } => client::stamps(client, full),
        Command::Pay { client, pay } => client::pay_money(client, pay),
        Command::Payments { client, command } => client::payments(client, command),
        Command::Admin { command } => admin::main(command),
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

/// Logs to stderr, filtered by PENNYPOST_LOG (default `info`): a level (`warn`), or
/// comma-separated `target=level` directives with an optional default level
/// (`info,pennypost::commit=debug`). A filter that does not parse is said once and `info` is
/// used. Colour codes only when stderr is a terminal: a log file or journal gets plain text.
fn init_tracing(json: bool) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (filter, refused) = log_filter(std::env::var("PENNYPOST_LOG").ok().as_deref());
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = if json {
        registry.with(layer.json()).try_init()
    } else {
        registry
            .with(layer.with_ansi(std::io::stderr().is_terminal()))
            .try_init()
    };
    if let Some(why) = refused {
        tracing::warn!("PENNYPOST_LOG {why}; logging at info");
    }
}

/// The log filter of `PENNYPOST_LOG` (`tracing_subscriber`'s `Targets`: levels per target
/// prefix, no regular expressions), `info` when unset or empty; with the reason when the value
/// was refused.
fn log_filter(value: Option<&str>) -> (tracing_subscriber::filter::Targets, Option<String>) {
    use tracing_subscriber::filter::Targets;
    let info = Targets::new().with_default(tracing::Level::INFO);
    match value.map(str::trim) {
        None | Some("") => (info, None),
        Some(text) => match text.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (info, Some(format!("{text:?} is not a filter ({e})"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// PENNYPOST_LOG takes a level or target directives, and a bad value is refused in words
    /// (logging goes on at info) instead of being ignored silently.
    #[test]
    fn the_log_filter_takes_levels_and_targets_and_names_a_bad_one() {
        use tracing::Level;
        let (unset, refused) = log_filter(None);
        assert!(refused.is_none());
        assert!(unset.would_enable("pennypost::commit", &Level::INFO));
        assert!(!unset.would_enable("pennypost::commit", &Level::DEBUG));
        let (warn, _) = log_filter(Some("warn"));
        assert!(!warn.would_enable("pennypost", &Level::INFO));
        assert!(warn.would_enable("tower_http", &Level::WARN));
        let (mixed, refused) = log_filter(Some("info,pennypost::commit=debug"));
        assert!(refused.is_none());
        assert!(mixed.would_enable("pennypost::commit", &Level::DEBUG));
        assert!(!mixed.would_enable("pennypost::http", &Level::DEBUG));
        let (bad, refused) = log_filter(Some("pennypost=loud"));
        assert!(refused.is_some_and(|why| why.contains("pennypost=loud")));
        assert!(bad.would_enable("pennypost", &Level::INFO));
    }

    /// Every argument of every command says what it is for (`--help`): a newcomer reads the
    /// help, not the source.
    #[test]
    fn every_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "pennypost", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }
}
