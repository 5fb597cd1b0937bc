//! `pennypost bench`: a one-command load benchmark of a real server.
//!
//! It starts this executable as `pennypost serve` on a fresh temporary data directory (rate
//! limits off, port 0) under the economy policy asked for (`--policy`: the server's default,
//! the flat one, or both, one server each), pre-buys stamps, then drives each workload for a
//! fixed time at a fixed concurrency with its own tokio client (one shared `reqwest::Client`,
//! one task per connection, each request's latency recorded). With both policies, the two
//! servers are set up alike and each workload is measured on both in halves, A B B A, so that
//! a comparison of one workload under the two policies spans seconds, not the whole run, and
//! drift within it falls on both alike. It prints one table
//! row per workload with ops/s, p50/p99/p999 latency, the error count and the ratio to the
//! ceiling it is held against: the single-core Ed25519 `verify_strict` rate (measured
//! in-process in the same run) for spends, and `GET /healthz` over the same HTTP stack for
//! board reads; with both policies, a table of default/flat ratios follows.
//!
//! Exit codes: 0 every request succeeded; 1 a request failed (non-2xx or transport error);
//! 2 the benchmark could not run (server did not start, setup failed).
//!
//! Parts: `server` (start and stop the server under test), `prefill` (the `--scale` store),
//! `ceilings` (the in-process Ed25519 rates), `run` (the order of the steps on the servers),
//! `workloads` (the load generator), `payers` (the payers of posts and votes), `statistics`
//! (rates, latency percentiles, CPU use, settling) and `report` (the printed tables). This
//! file holds the arguments and starts the parts.

mod ceilings;
mod payers;
mod prefill;
mod report;
mod run;
mod server;
mod statistics;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rand_core::{OsRng, RngCore as _};

use ceilings::{ed25519_ceilings, Ceilings};
use prefill::{scale_store, OLD_STAMPS_FILE, SCALE_KEEP_PER_PURCHASE, SCALE_PURCHASE};
use report::{print_comparison, Results};
use server::{Policy, Server};

/// Most stamps pre-bought for one spend workload in `--smoke` mode.
const SMOKE_STOCK_MAX: u64 = 500;
/// Spend workloads are stocked for this much more than the expected rate, so that they rarely
/// run dry before their time is up (a dry workload stops early and says so).
const STOCK_HEADROOM: f64 = 1.3;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Seconds each workload runs.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Concurrent connections (one client task each) per workload.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// CI mode: 1 second per workload, 4 connections, few stamps; proves the command runs.
    #[arg(long)]
    pub smoke: bool,
    /// Spend this many stamps (bought and redeemed in bulk) before measuring redeems, to see
    /// whether redeems slow down as the spent set grows.
    #[arg(long, default_value_t = 0)]
    pub prefill: u64,
    /// Before starting the server, write this many sold stamps straight into a fresh store (no
    /// HTTP; through the same `Store::apply` the writer uses), bought over the last 30 days in
    /// purchases of 1000, of which 10 each stay unspent (kept in `old-stamps.txt`, for a
    /// workload that redeems stamps from all over that history) and the rest are spent. Then
    /// report start-up time and memory at that scale and measure as usual. For the 10k / 1M /
    /// 10M comparison.
    #[arg(long, default_value_t = 0)]
    pub scale: u64,
    /// With --scale: only write the store into DIR (kept), without starting a server, so that
    /// start-up at that scale can be timed by hand (`pennypost serve --data-dir DIR/data
    /// --keys-dir DIR/keys`).
    #[arg(long, requires = "scale")]
    pub scale_only_into: Option<PathBuf>,
    /// Run the server on an existing directory (with `data/` and `keys/`, e.g. one written by
    /// --scale-only-into) instead of a fresh one; the directory is kept.
    #[arg(long, conflicts_with = "scale")]
    pub reuse: Option<PathBuf>,
    /// The economy policy of the server under test: `default` (the server's own defaults:
    /// flood-priced posts, quadratic votes, refunds), `flat` (`--repeat-factor 1
    /// --vote-pricing flat --refund-voters 0`), or `both`: one server each, set up alike and
    /// measured workload by workload in turn, then the ratios default/flat. Without it: `both`,
    /// but `default` with --smoke (CI), --reuse (one data directory) or --scale (one store to
    /// write).
    #[arg(long, value_enum)]
    pub policy: Option<PolicyChoice>,
    /// With both policies: which server is A in each workload's A B B A (measured first and
    /// last; B runs its two halves back to back). Without it, chosen at random and printed:
    /// compare medians of several runs, so that the order's own effect falls on both.
    #[arg(long, value_enum)]
    pub first: Option<FirstPolicy>,
}

/// What `--first` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FirstPolicy {
    Default,
    Flat,
}

/// What `--policy` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyChoice {
    Default,
    Flat,
    Both,
}

pub fn main(args: BenchArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            if report.errors > 0 {
                eprintln!("bench: {} requests failed", report.errors);
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// What the whole run found, for the exit code.
struct Report {
    errors: u64,
}

/// The settings in force after `--smoke` is applied.
struct Plan {
    duration: Duration,
    connections: usize,
    smoke: bool,
    prefill: u64,
    /// How long each in-process Ed25519 measurement runs.
    ceiling_time: Duration,
    /// One server per policy, measured in this order (then in turn, see [`measure`]).
    policies: Vec<Policy>,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Result<Plan, String> {
        let choice = match args.policy {
            Some(choice) => choice,
            // One server: CI's smoke run stays short, --reuse has one data directory, and a
            // second --scale store would double the prefill (and its disk).
            None if args.smoke || args.reuse.is_some() || args.scale > 0 => PolicyChoice::Default,
            None => PolicyChoice::Both,
        };
        let policies = match choice {
            PolicyChoice::Default => vec![Policy::Default],
            PolicyChoice::Flat => vec![Policy::Flat],
            PolicyChoice::Both if args.reuse.is_some() => {
                return Err("--reuse runs one server: give --policy default or flat".into());
            }
            PolicyChoice::Both => {
                let default_first = match args.first {
                    Some(first) => first == FirstPolicy::Default,
                    None => OsRng.next_u32() % 2 == 0,
                };
                if default_first {
                    vec![Policy::Default, Policy::Flat]
                } else {
                    vec![Policy::Flat, Policy::Default]
                }
            }
        };
        if args.smoke {
            return Ok(Plan {
                duration: Duration::from_secs(1),
                connections: 4,
                smoke: true,
                prefill: args.prefill.min(1000),
                ceiling_time: Duration::from_millis(200),
                policies,
            });
        }
        if args.duration_secs == 0 {
            return Err("--duration-secs must be at least 1".into());
        }
        if args.connections == 0 || args.connections > 4000 {
            return Err("--connections must be 1 to 4000".into());
        }
        Ok(Plan {
            duration: Duration::from_secs(args.duration_secs),
            connections: args.connections,
            smoke: false,
            prefill: args.prefill,
            ceiling_time: Duration::from_secs(1),
            policies,
        })
    }

    /// Stamps to pre-buy for a spend workload expected to run at `rate` per second.
    fn stock_for(&self, rate: f64, stamps_per_op: usize) -> u64 {
        let want = (rate * self.duration.as_secs_f64() * STOCK_HEADROOM).ceil() as u64
            * stamps_per_op as u64;
        if self.smoke {
            want.min(SMOKE_STOCK_MAX)
        } else {
            want
        }
    }
}

async fn run(args: BenchArgs) -> Result<Report, String> {
    let plan = Plan::from_args(&args)?;
    let names: Vec<&str> = plan.policies.iter().map(|p| p.name()).collect();
    eprintln!(
        "bench: {} s per workload, {} connections, {} policy{}{}",
        plan.duration.as_secs(),
        plan.connections,
        names.join(" and "),
        if names.len() > 1 {
            " (a server each; each workload measured in halves, in this order: A B B A)"
        } else {
            ""
        },
        if plan.smoke { " (smoke)" } else { "" }
    );

    // The in-process ceilings first, while nothing else of ours runs.
    let ceilings = tokio::task::spawn_blocking({
        let time = plan.ceiling_time;
        move || ed25519_ceilings(time)
    })
    .await
    .map_err(|e| format!("ceiling measurement failed: {e}"))??;
    eprintln!(
        "bench: ed25519 on one core: verify_strict {:.0}/s, verify_batch(64) {:.0}/s, sign {:.0}/s",
        ceilings.verify_strict, ceilings.verify_batch, ceilings.sign
    );

    if let Some(into) = &args.scale_only_into {
        let (path, count) = (into.clone(), args.scale);
        let started = Instant::now();
        tokio::task::spawn_blocking(move || scale_store(&path, count))
            .await
            .map_err(|e| format!("scale prefill failed: {e}"))??;
        println!(
            "bench: wrote {} sold stamps ({} per {SCALE_PURCHASE} kept unspent in {OLD_STAMPS_FILE}, the rest spent) into {} in {:.1} s",
            args.scale,
            SCALE_KEEP_PER_PURCHASE,
            into.display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(Report { errors: 0 });
    }
    let mut servers = Vec::with_capacity(plan.policies.len());
    for &policy in &plan.policies {
        match start_server(&args, policy).await {
            Ok(server) => servers.push(server),
            Err(e) => {
                for server in &mut servers {
                    server.stop().await;
                }
                return Err(e);
            }
        }
    }
    let outcome = measure(&plan, &ceilings, &servers).await;
    for server in &mut servers {
        if outcome.is_ok() {
            audit_phase(server).await;
        }
        if let Some(rss) = server.resident_kib() {
            eprintln!(
                "bench: {} policy: server resident memory at the end: {} MiB",
                server.policy.name(),
                rss / 1024
            );
        }
        server.stop().await;
    }
    outcome
}

/// Starts one server under `policy`: on `--reuse`'s directory, or on a fresh one (with the
/// `--scale` prefill written first).
async fn start_server(args: &BenchArgs, policy: Policy) -> Result<Server, String> {
    let dir = tempfile::Builder::new()
        .prefix("pennypost-bench-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    if args.scale > 0 {
        let (path, count) = (dir.path().to_path_buf(), args.scale);
        let started = Instant::now();
        tokio::task::spawn_blocking(move || scale_store(&path, count))
            .await
            .map_err(|e| format!("scale prefill failed: {e}"))??;
        println!(
            "bench: wrote {} sold stamps ({} per {SCALE_PURCHASE} kept unspent, the rest spent) into the store in {:.1} s",
            args.scale,
            SCALE_KEEP_PER_PURCHASE,
            started.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let server = match &args.reuse {
        Some(root) => Server::start(root.clone(), None, policy).await?,
        None => Server::start(dir.path().to_path_buf(), Some(dir), policy).await?,
    };
    println!(
        "bench: {} policy: start-up to listening: {:.3} s; resident memory after start: {} MiB",
        policy.name(),
        started.elapsed().as_secs_f64(),
        server.resident_kib().unwrap_or(0) / 1024
    );
    Ok(server)
}

/// The independent auditor over the log the workloads left (every entry, over HTTP, with the
/// Merkle root, the checkpoint signature and every invariant), against the target of
/// 200,000 entries/s.
async fn audit_phase(server: &Server) {
    let started = Instant::now();
    match crate::cli::audit::audit(&server.base, None, false).await {
        Ok(outcome) => {
            let rate = outcome.checkpoint_size as f64 / started.elapsed().as_secs_f64().max(1e-9);
            println!(
                "pennypost audit ({} policy): {} entries in {:.2} s = {:.0} entries/s ({}; {} refunded in all); target >= 200,000 entries/s: {}",
                server.policy.name(),
                outcome.checkpoint_size,
                started.elapsed().as_secs_f64(),
                rate,
                if outcome.report.ok { "all checks hold" } else { "VIOLATIONS" },
                outcome.report.refunds_total,
                if rate >= 200_000.0 { "met" } else { "NOT met" }
            );
        }
        Err(e) => println!(
            "pennypost audit ({} policy): could not finish: {e}",
            server.policy.name()
        ),
    }
}

/// Measures every workload on every server, then prints the tables.
async fn measure(plan: &Plan, ceilings: &Ceilings, servers: &[Server]) -> Result<Report, String> {
    let all = run::measure(plan, ceilings, servers).await?;
    for results in &all {
        results.print(plan, ceilings);
    }
    if plan.smoke {
        // One second per workload at 4 connections, usually on a debug build: the rates say
        // the command runs, not how fast the server is.
        println!(
            "note: --smoke: the target lines are informational only (1 s per workload, \
             4 connections); measure with a full run of a release build"
        );
    }
    let flat = all.iter().find(|r| r.policy == Policy::Flat);
    let default = all.iter().find(|r| r.policy == Policy::Default);
    if let (Some(flat), Some(default)) = (flat, default) {
        print_comparison(plan, flat, default);
    }
    Ok(Report {
        errors: all.iter().map(Results::errors).sum(),
    })
}
