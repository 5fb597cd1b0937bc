//! `pennypost bench`: a one-command load benchmark of a real server.
//!
//! It starts this executable as `pennypost serve` on a fresh temporary data directory (rate
//! limits off, port 0) under the economy policy asked for (`--policy`: the server's default,
//! the flat one, or both, one server each), pre-buys stamps, then drives each workload for a
//! fixed time at a fixed concurrency with its own tokio client (one shared `reqwest::Client`,
//! one task per connection, each request's latency recorded). With both policies, the two
//! servers are set up alike and measured workload by workload in turn, so that a comparison of
//! one workload under the two policies spans seconds, not the whole run. It prints one table
//! row per workload with ops/s, p50/p99/p999 latency, the error count and the ratio to the
//! ceiling it is held against: the single-core Ed25519 `verify_strict` rate (measured
//! in-process in the same run) for spends, and `GET /healthz` over the same HTTP stack for
//! board reads; with both policies, a table of default/flat ratios follows.
//!
//! Exit codes: 0 every request succeeded; 1 a request failed (non-2xx or transport error);
//! 2 the benchmark could not run (server did not start, setup failed).
//!
//! Parts: `server` (start and stop the server under test), `prefill` (the `--scale` store),
//! `ceilings` (the in-process Ed25519 rates), `workloads` (the load generator), `payers` (the
//! payers of posts and votes), `statistics` (rates, latency percentiles, CPU use) and
//! `report` (the printed tables). This file holds the arguments and runs the parts in order.

mod ceilings;
mod payers;
mod prefill;
mod report;
mod server;
mod statistics;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use ceilings::{ed25519_ceilings, Ceilings};
use payers::{provision_posters, provision_voters, SMOKE_VOTERS, VOTERS};
use prefill::{
    read_old_stamps, scale_store, write_old_stamps, OLD_STAMPS_FILE, SCALE_KEEP_PER_PURCHASE,
    SCALE_PURCHASE,
};
use report::{print_comparison, Results};
use server::{Policy, Server};
use statistics::Phase;
use workloads::{prefill, run_phase, stock, wait_for_ledger_check, Ctx, Workload};

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
            PolicyChoice::Both => vec![Policy::Flat, Policy::Default],
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
            " (a server each)"
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

/// The steps of a run, in order; each is done on every server before the next.
#[derive(Clone, Copy, Debug)]
enum Step {
    Healthz,
    Prefill,
    Purchases,
    Redeems,
    OldRedeems,
    Posts,
    Votes,
    Reads,
}

const STEPS: [Step; 8] = [
    Step::Healthz,
    Step::Prefill,
    Step::Purchases,
    Step::Redeems,
    Step::OldRedeems,
    Step::Posts,
    Step::Votes,
    Step::Reads,
];

/// One server's client and what was measured on it so far.
struct Run<'a> {
    server: &'a Server,
    ctx: Arc<Ctx>,
    /// Label of its log lines: empty with one server, the policy's name with two.
    label: String,
    healthz: Option<Phase>,
    purchases: Option<Phase>,
    redeems: Option<Phase>,
    old_redeems: Option<Phase>,
    posts: Option<Phase>,
    votes: Option<Phase>,
    reads: Option<Phase>,
}

/// Runs every step on every server. With two servers, each step runs on both, one right after
/// the other, in turns: flat first at even steps, default first at odd ones (so posts are
/// measured default first, votes flat first), so that neither policy is always the one
/// measured right after the other server's burst of work.
async fn measure(plan: &Plan, ceilings: &Ceilings, servers: &[Server]) -> Result<Report, String> {
    let mut runs = Vec::with_capacity(servers.len());
    for server in servers {
        let ctx = Ctx::connect(server, plan.connections.min(64)).await?;
        wait_for_ledger_check(&ctx).await?;
        runs.push(Run {
            server,
            ctx,
            label: if servers.len() > 1 {
                format!("{} policy: ", server.policy.name())
            } else {
                String::new()
            },
            healthz: None,
            purchases: None,
            redeems: None,
            old_redeems: None,
            posts: None,
            votes: None,
            reads: None,
        });
    }
    for (i, step) in STEPS.iter().enumerate() {
        let order: Vec<usize> = if i % 2 == 0 {
            (0..runs.len()).collect()
        } else {
            (0..runs.len()).rev().collect()
        };
        for k in order {
            runs[k].step(*step, plan, ceilings).await?;
        }
    }
    let mut all = Vec::with_capacity(runs.len());
    for run in runs {
        all.push(run.results()?);
    }
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
    if let [flat, default] = &all[..] {
        print_comparison(plan, flat, default);
    }
    Ok(Report {
        errors: all.iter().map(Results::errors).sum(),
    })
}

impl Run<'_> {
    async fn step(&mut self, step: Step, plan: &Plan, ceilings: &Ceilings) -> Result<(), String> {
        let (ctx, n, d) = (&self.ctx, plan.connections, Some(plan.duration));
        let label = &self.label;
        match step {
            Step::Healthz => {
                let phase = run_phase(ctx, Workload::Healthz, n, d).await;
                eprintln!("bench: {label}GET /healthz {:.0}/s", phase.rate());
                self.healthz = Some(phase);
            }
            Step::Prefill if plan.prefill > 0 => prefill(ctx, plan).await?,
            Step::Prefill => {}
            Step::Purchases => {
                let phase = run_phase(ctx, Workload::Purchase, n, d).await;
                eprintln!(
                    "bench: {label}purchases {:.0}/s ({:.0} stamps/s)",
                    phase.rate(),
                    phase.item_rate()
                );
                self.purchases = Some(phase);
            }
            Step::Redeems => {
                stock(ctx, plan.stock_for(ceilings.verify_strict, 1)).await?;
                let phase = run_phase(ctx, Workload::Redeem, n, d).await;
                eprintln!("bench: {label}redeems {:.0}/s", phase.rate());
                self.redeems = Some(phase);
            }
            // After a scale prefill: spend stamps bought across the whole history (cold keys),
            // the worst case for the time-ordered stamp index. The ones left unspent go back
            // in the file, so that `--reuse` can run again.
            Step::OldRedeems => {
                let old_stamps = read_old_stamps(&self.server.root);
                if old_stamps.is_empty() {
                    return Ok(());
                }
                let available = old_stamps.len();
                let fresh = ctx.replace_pool(old_stamps);
                let phase = run_phase(ctx, Workload::Redeem, n, d).await;
                let left = ctx.replace_pool(fresh);
                write_old_stamps(&self.server.root, &left)?;
                eprintln!(
                    "bench: {label}redeems of old stamps {:.0}/s ({} of {available} spent)",
                    phase.rate(),
                    available - left.len()
                );
                self.old_redeems = Some(phase);
            }
            // Posts and votes do the same work as a redeem and a little more: the redeem rate
            // sizes their payers.
            Step::Posts => {
                let payers = plan.stock_for(self.spend_rate(), 1);
                provision_posters(ctx, usize::try_from(payers).unwrap_or(usize::MAX)).await?;
                let phase = run_phase(ctx, Workload::Post, n, d).await;
                eprintln!("bench: {label}posts {:.0}/s", phase.rate());
                self.posts = Some(phase);
            }
            Step::Votes => {
                let voters = if plan.smoke { SMOKE_VOTERS } else { VOTERS };
                provision_voters(ctx, voters, plan.stock_for(self.spend_rate(), 1)).await?;
                let phase = run_phase(ctx, Workload::Vote, n, d).await;
                eprintln!(
                    "bench: {label}votes {:.0}/s ({} refunds, on {} posts made)",
                    phase.rate(),
                    phase.items,
                    ctx.payers.posts_made()
                );
                self.votes = Some(phase);
            }
            Step::Reads => {
                let phase = run_phase(ctx, Workload::Read, n, d).await;
                eprintln!("bench: {label}reads {:.0}/s", phase.rate());
                self.reads = Some(phase);
            }
        }
        Ok(())
    }

    fn spend_rate(&self) -> f64 {
        self.redeems.as_ref().map_or(0.0, Phase::rate).max(100.0)
    }

    fn results(self) -> Result<Results, String> {
        let missing = |what: &str| format!("bench: the {what} workload did not run");
        Ok(Results {
            policy: self.server.policy,
            healthz: self.healthz.ok_or_else(|| missing("healthz"))?,
            purchases: self.purchases.ok_or_else(|| missing("purchase"))?,
            redeems: self.redeems.ok_or_else(|| missing("redeem"))?,
            old_redeems: self.old_redeems,
            posts: self.posts.ok_or_else(|| missing("post"))?,
            votes: self.votes.ok_or_else(|| missing("vote"))?,
            reads: self.reads.ok_or_else(|| missing("read"))?,
        })
    }
}
