//! `pennypost bench`: a one-command load benchmark of a real server.
//!
//! It starts this executable as `pennypost serve` on a fresh temporary data directory (rate
//! limits off, port 0), pre-buys stamps, then drives each workload for a fixed time at a fixed
//! concurrency with its own tokio client (one shared `reqwest::Client`, one task per
//! connection, each request's latency recorded). It prints one table row per workload with
//! ops/s, p50/p99/p999 latency, the error count and the ratio to the ceiling it is held
//! against: the single-core Ed25519 `verify_strict` rate (measured in-process in the same run)
//! for spends, and `GET /healthz` over the same HTTP stack for board reads.
//!
//! Exit codes: 0 every request succeeded; 1 a request failed (non-2xx or transport error);
//! 2 the benchmark could not run (server did not start, setup failed).
//!
//! Parts: `server` (start and stop the server under test), `prefill` (the `--scale` store),
//! `ceilings` (the in-process Ed25519 rates), `workloads` (the load generator), `statistics`
//! (rates, latency percentiles, CPU use) and `report` (the printed table). This file holds the
//! arguments and runs the parts in order.

mod ceilings;
mod prefill;
mod report;
mod server;
mod statistics;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use ceilings::{ed25519_ceilings, Ceilings};
use prefill::{
    read_old_stamps, scale_store, write_old_stamps, OLD_STAMPS_FILE, SCALE_KEEP_PER_PURCHASE,
    SCALE_PURCHASE,
};
use report::Results;
use server::Server;
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
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Result<Plan, String> {
        if args.smoke {
            return Ok(Plan {
                duration: Duration::from_secs(1),
                connections: 4,
                smoke: true,
                prefill: args.prefill.min(1000),
                ceiling_time: Duration::from_millis(200),
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
    eprintln!(
        "bench: {} s per workload, {} connections{}",
        plan.duration.as_secs(),
        plan.connections,
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
    let mut server = match &args.reuse {
        Some(root) => Server::start(root.clone(), None).await?,
        None => Server::start(dir.path().to_path_buf(), Some(dir)).await?,
    };
    println!(
        "bench: start-up to listening: {:.3} s; resident memory after start: {} MiB",
        started.elapsed().as_secs_f64(),
        server.resident_kib().unwrap_or(0) / 1024
    );
    let outcome = measure(&plan, &ceilings, &server).await;
    if outcome.is_ok() {
        audit_phase(&server).await;
    }
    if let Some(rss) = server.resident_kib() {
        eprintln!(
            "bench: server resident memory at the end: {} MiB",
            rss / 1024
        );
    }
    server.stop().await;
    outcome
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
                "pennypost audit: {} entries in {:.2} s = {:.0} entries/s ({}); target >= 200,000 entries/s: {}",
                outcome.checkpoint_size,
                started.elapsed().as_secs_f64(),
                rate,
                if outcome.report.ok { "all checks hold" } else { "VIOLATIONS" },
                if rate >= 200_000.0 { "met" } else { "NOT met" }
            );
        }
        Err(e) => println!("pennypost audit: could not finish: {e}"),
    }
}

async fn measure(plan: &Plan, ceilings: &Ceilings, server: &Server) -> Result<Report, String> {
    let ctx = Ctx::connect(server, plan.connections.min(64)).await?;
    wait_for_ledger_check(&ctx).await?;

    let n = plan.connections;
    let d = plan.duration;

    let healthz = run_phase(&ctx, Workload::Healthz, n, Some(d)).await;
    eprintln!("bench: GET /healthz {:.0}/s", healthz.rate());

    if plan.prefill > 0 {
        prefill(&ctx, plan).await?;
    }

    let purchases = run_phase(&ctx, Workload::Purchase, n, Some(d)).await;
    eprintln!(
        "bench: purchases {:.0}/s ({:.0} stamps/s)",
        purchases.rate(),
        purchases.item_rate()
    );

    stock(&ctx, plan.stock_for(ceilings.verify_strict, 1)).await?;
    let redeems = run_phase(&ctx, Workload::Redeem, n, Some(d)).await;
    eprintln!("bench: redeems {:.0}/s", redeems.rate());

    // After a scale prefill: spend stamps bought across the whole history (cold keys), the
    // worst case for the time-ordered stamp index. The ones left unspent go back in the file,
    // so that `--reuse` can run again.
    let old_stamps = read_old_stamps(&server.root);
    let old_redeems = if old_stamps.is_empty() {
        None
    } else {
        let available = old_stamps.len();
        let fresh = ctx.replace_pool(old_stamps);
        let phase = run_phase(&ctx, Workload::Redeem, n, Some(d)).await;
        let left = ctx.replace_pool(fresh);
        write_old_stamps(&server.root, &left)?;
        eprintln!(
            "bench: redeems of old stamps {:.0}/s ({} of {available} spent)",
            phase.rate(),
            available - left.len()
        );
        Some(phase)
    };

    // Posts and votes do the same work as a redeem and a little more.
    let spend_rate = redeems.rate().max(100.0);
    stock(&ctx, plan.stock_for(spend_rate, ctx.post_cost)).await?;
    let posts = run_phase(&ctx, Workload::Post, n, Some(d)).await;
    eprintln!("bench: posts {:.0}/s", posts.rate());

    stock(&ctx, plan.stock_for(spend_rate, ctx.vote_cost)).await?;
    let votes = run_phase(&ctx, Workload::Vote, n, Some(d)).await;
    eprintln!("bench: votes {:.0}/s", votes.rate());

    let reads = run_phase(&ctx, Workload::Read, n, Some(d)).await;
    eprintln!("bench: reads {:.0}/s", reads.rate());

    let results = Results {
        healthz,
        purchases,
        redeems,
        old_redeems,
        posts,
        votes,
        reads,
    };
    results.print(plan, ceilings);
    Ok(Report {
        errors: results.errors(),
    })
}
