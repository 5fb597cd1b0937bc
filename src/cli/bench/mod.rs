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
//! With `--database URL`, the store is compared instead: a fresh database is created on that
//! PostgreSQL server (and dropped at the end), `--servers` servers are started on it with one
//! keys directory and one admin token (one service), one sled server is started as usual, all
//! under the flat policy, and the policy-free workloads (`/healthz`, purchases, durable
//! redeems) are measured on both in halves A B B A, the load generator's connections spread
//! round-robin over the PostgreSQL servers; a table of PostgreSQL/sled follows, with the
//! writers' group-commit batch sizes read from their metrics.
//!
//! Exit codes: 0 every request succeeded; 1 a request failed (non-2xx or transport error);
//! 2 the benchmark could not run (server did not start, setup failed).
//!
//! Parts: `server` (start and stop the server under test), `prefill` (the `--scale` store),
//! `ceilings` (the in-process Ed25519 rates), `database` (the database of a `--database` run),
//! `gate` (a `--gate` run: the gate, its upstream and its mint, measured in pairs),
//! `run` (the order of the steps on the servers),
//! `client` (the context the client tasks share, `send`, and the set-up of funded accounts and
//! payers over HTTP), `workloads` (the load generator), `payers` (the payers of posts and votes
//! and their plan of votes), `statistics` (the workloads' names, rates, latency percentiles,
//! CPU use, settling) and `report` (the printed tables). This file holds the arguments and
//! starts the parts. Between the parts, imports run one way (`run` → `workloads`
//! → `client` → `payers`, `statistics`): no part imports one that imports it.

mod ceilings;
mod client;
mod database;
mod gate;
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
use database::BenchDatabase;
use prefill::{scale_store, OLD_STAMPS_FILE, SCALE_KEEP_PER_PURCHASE, SCALE_PURCHASE};
use report::{print_build_comparison, print_comparison, print_database_comparison, Results};
use server::{admin_token, Launch, Policy, Server, Shared, Target};

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
    /// HTTP; through the same `rules::apply` the writer uses), bought over the last 30 days in
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
    /// Compare the store on PostgreSQL with sled: create a fresh database on the PostgreSQL
    /// server at URL (`postgres://user@host:port/dbname`; the user must be allowed to create
    /// databases; the database named is only connected to), start --servers servers on it
    /// (one keys directory and admin token: one service) beside one sled server, and measure
    /// /healthz, purchases and durable redeems on both in halves A B B A, the connections
    /// spread round-robin over the PostgreSQL servers; then the ratios PostgreSQL/sled. Flat
    /// policy only; no posts, votes or reads. The database is dropped at the end.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["scale", "scale_only_into", "reuse", "prefill", "policy", "first"]
    )]
    pub database: Option<String>,
    /// With --database: how many servers share the database (1 to 16).
    #[arg(
        long,
        default_value_t = 1,
        requires = "database",
        value_parser = clap::value_parser!(u16).range(1..=16)
    )]
    pub servers: u16,
    /// With --database: which store is A in each workload's A B B A (measured first and last).
    /// Without it, chosen at random and printed.
    #[arg(long, value_enum, requires = "database")]
    pub first_store: Option<FirstStore>,
    /// Measure `pennypost gate` instead: a mint (flat policy), a small upstream in this
    /// process and the gate in front of it with one priced route; an unpriced request straight
    /// and through the gate (one connection: the latency is the gate's, not a queue's), then
    /// priced requests through the gate against redeems at the mint, each pair in halves
    /// A B B A; with the targets (at most 1 ms more at p50 unpriced; priced at least 0.5 of
    /// the redeem rate).
    #[arg(
        long,
        conflicts_with_all = ["database", "scale", "scale_only_into", "reuse", "prefill", "policy", "first"]
    )]
    pub gate: bool,
    /// Compare this build with another build of pennypost (an older commit's
    /// `target/release/pennypost`): one server each, set up alike, under one policy
    /// (`--policy default` or `flat`; default without it), each workload measured in halves
    /// A B B A; then the ratios this/other and whether purchases, redeems, posts and votes stay
    /// within 5% of the other build.
    #[arg(
        long,
        value_name = "EXE",
        conflicts_with_all = ["database", "gate", "scale", "scale_only_into", "reuse", "first"]
    )]
    pub against: Option<PathBuf>,
    /// One more argument for this build's `pennypost serve` (repeat it for each word: `--serve-arg=--payment-provider --serve-arg=test`), after the bench's own; not given to an `--against` build.
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
}

/// What `--first-store` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FirstStore {
    Sled,
    Postgres,
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
    /// With `--database`: PostgreSQL against sled.
    database: Option<DatabasePlan>,
    /// `--gate`: the gate against its baselines.
    gate: bool,
    /// How this build's servers run (`--serve-arg`).
    launch: Launch,
    /// `--against`: the other build's servers, and whether this build is A in each workload's
    /// A B B A.
    against: Option<(Launch, bool)>,
}

/// What a `--database` run compares.
struct DatabasePlan {
    url: String,
    /// Servers on the database.
    servers: usize,
    /// Whether sled is A in each workload's A B B A.
    sled_first: bool,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Result<Plan, String> {
        let choice = match args.policy {
            Some(choice) => choice,
            // One server: CI's smoke run stays short, --reuse has one data directory, and a
            // second --scale store would double the prefill (and its disk). Two builds are
            // compared under one policy.
            None if args.smoke
                || args.reuse.is_some()
                || args.scale > 0
                || args.against.is_some() =>
            {
                PolicyChoice::Default
            }
            None => PolicyChoice::Both,
        };
        let database = args.database.as_ref().map(|url| DatabasePlan {
            url: url.clone(),
            servers: usize::from(args.servers),
            sled_first: match args.first_store {
                Some(first) => first == FirstStore::Sled,
                None => OsRng.next_u32() % 2 == 0,
            },
        });
        let policies = match choice {
            // The stores are compared under one policy, which only purchases and redeems see;
            // the gate's run has one mint.
            _ if database.is_some() || args.gate => vec![Policy::Flat],
            PolicyChoice::Default => vec![Policy::Default],
            PolicyChoice::Flat => vec![Policy::Flat],
            PolicyChoice::Both if args.reuse.is_some() => {
                return Err("--reuse runs one server: give --policy default or flat".into());
            }
            PolicyChoice::Both if args.against.is_some() => {
                return Err(
                    "--against compares two builds under one policy: give --policy default or flat"
                        .into(),
                );
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
        let launch = Launch {
            exe: None,
            args: args.serve_args.clone(),
        };
        let against = match &args.against {
            None => None,
            Some(exe) if !exe.is_file() => {
                return Err(format!("--against {}: no such file", exe.display()));
            }
            Some(exe) => Some((
                Launch {
                    exe: Some(exe.clone()),
                    args: Vec::new(),
                },
                OsRng.next_u32() % 2 == 0,
            )),
        };
        if args.smoke {
            return Ok(Plan {
                duration: Duration::from_secs(1),
                connections: 4,
                smoke: true,
                prefill: args.prefill.min(1000),
                ceiling_time: Duration::from_millis(200),
                policies,
                database,
                gate: args.gate,
                launch,
                against,
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
            database,
            gate: args.gate,
            launch,
            against,
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
    if let Some(database) = &plan.database {
        eprintln!(
            "bench: {} s per workload, {} connections, flat policy: sled (one server) against \
             PostgreSQL ({} server{}, connections spread round-robin), each workload measured \
             in halves, {} first and last{}",
            plan.duration.as_secs(),
            plan.connections,
            database.servers,
            if database.servers > 1 { "s" } else { "" },
            if database.sled_first {
                "sled"
            } else {
                "PostgreSQL"
            },
            if plan.smoke { " (smoke)" } else { "" }
        );
    } else if plan.gate {
        eprintln!(
            "bench: {} s per pair of workloads, {} connections for the spends: the gate against \
             its upstream and its mint{}",
            plan.duration.as_secs(),
            plan.connections,
            if plan.smoke { " (smoke)" } else { "" }
        );
    } else {
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
    }

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
    if let Some(database) = &plan.database {
        return run_database(&plan, &ceilings, database).await;
    }
    if plan.gate {
        return gate::run(&plan, &ceilings).await;
    }
    // One server per policy; with --against, this build's and the other's, in A B B A order.
    let mut launches: Vec<(Policy, &Launch, String)> = plan
        .policies
        .iter()
        .map(|&policy| (policy, &plan.launch, format!("{} policy", policy.name())))
        .collect();
    if let (Some((other, this_first)), Some(&policy)) = (&plan.against, plan.policies.first()) {
        launches[0].2 = format!("this build, {} policy", policy.name());
        let label = format!("other build, {} policy", policy.name());
        if *this_first {
            launches.push((policy, other, label));
        } else {
            launches.insert(0, (policy, other, label));
        }
        eprintln!(
            "bench: this build against {}, {} first and last",
            args.against
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
            if *this_first {
                "this build"
            } else {
                "the other build"
            }
        );
    }
    let mut targets = Vec::with_capacity(launches.len());
    for (policy, launch, label) in launches {
        match start_server(&args, policy, launch).await {
            Ok(server) => targets.push(Target {
                label,
                policy,
                postgres: false,
                postmaster: None,
                servers: vec![server],
            }),
            Err(e) => {
                for target in &mut targets {
                    target.stop().await;
                }
                return Err(e);
            }
        }
    }
    finish(&plan, &ceilings, targets).await
}

/// Measures on the targets, audits what each left, and stops them.
async fn finish(
    plan: &Plan,
    ceilings: &Ceilings,
    mut targets: Vec<Target>,
) -> Result<Report, String> {
    let outcome = measure(plan, ceilings, &targets).await;
    for target in &mut targets {
        if outcome.is_ok() {
            audit_phase(target, report::Judging::of_plan(plan)).await;
        }
        if let Some(rss) = target.resident_kib() {
            eprintln!(
                "bench: {}: server{} resident memory at the end: {} MiB",
                target.label,
                if target.servers.len() > 1 { "s'" } else { "" },
                rss / 1024
            );
        }
        target.stop().await;
    }
    outcome
}

/// A `--database` run: a fresh database, the servers on it and one sled server, measured, then
/// the database dropped (whatever happened).
async fn run_database(
    plan: &Plan,
    ceilings: &Ceilings,
    database: &DatabasePlan,
) -> Result<Report, String> {
    let created = BenchDatabase::create(&database.url).await?;
    eprintln!(
        "bench: created database {} for this run (dropped at the end){}",
        created.name,
        match created.postmaster {
            Some(pid) =>
                format!("; the cluster runs here (postmaster pid {pid}): its CPU is measured"),
            None => String::new(),
        }
    );
    let outcome = async {
        let keys = tempfile::Builder::new()
            .prefix("pennypost-bench-keys-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let shared = Shared {
            url: created.url.clone(),
            keys_dir: keys.path().to_path_buf(),
            admin_token: admin_token(),
        };
        let mut targets: Vec<Target> = Vec::with_capacity(2);
        let started =
            start_database_targets(plan, database, &shared, created.postmaster, &mut targets).await;
        let outcome = match started {
            Ok(()) => finish(plan, ceilings, targets).await,
            Err(e) => {
                for target in &mut targets {
                    target.stop().await;
                }
                Err(e)
            }
        };
        drop(keys);
        outcome
    }
    .await;
    match created.drop_database().await {
        Ok(()) => eprintln!("bench: dropped database {}", created.name),
        Err(e) => eprintln!("bench: {e}"),
    }
    outcome
}

/// Starts the sled server and the servers on the database (the first alone, so that it makes
/// the keys and the schema; then the others), into `targets` in the order they are measured.
async fn start_database_targets(
    plan: &Plan,
    database: &DatabasePlan,
    shared: &Shared,
    postmaster: Option<u32>,
    targets: &mut Vec<Target>,
) -> Result<(), String> {
    let policy = Policy::Flat;
    let launch = &plan.launch;
    let fresh = || {
        tempfile::Builder::new()
            .prefix("pennypost-bench-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))
    };
    let dir = fresh()?;
    let root = dir.path().to_path_buf();
    let sled = Server::start(root, Some(dir), policy, None, true, launch).await?;
    targets.push(Target {
        label: "sled, flat policy".into(),
        policy,
        postgres: false,
        postmaster,
        servers: vec![sled],
    });
    let n = database.servers;
    let pg_target = Target {
        label: format!("PostgreSQL x{n}, flat policy"),
        policy,
        postgres: true,
        postmaster,
        servers: Vec::with_capacity(n),
    };
    if database.sled_first {
        targets.push(pg_target);
    } else {
        targets.insert(0, pg_target);
    }
    let at = usize::from(database.sled_first);
    for _ in 0..n {
        let started = Instant::now();
        let dir = fresh()?;
        let server = Server::start(
            dir.path().to_path_buf(),
            Some(dir),
            policy,
            Some(shared),
            true,
            launch,
        )
        .await?;
        println!(
            "bench: PostgreSQL server {}: start-up to listening: {:.3} s",
            server.base,
            started.elapsed().as_secs_f64()
        );
        targets[at].servers.push(server);
    }
    Ok(())
}

/// Starts one server under `policy`: on `--reuse`'s directory, or on a fresh one (with the
/// `--scale` prefill written first).
async fn start_server(args: &BenchArgs, policy: Policy, launch: &Launch) -> Result<Server, String> {
    let metrics = false;
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
        Some(root) => Server::start(root.clone(), None, policy, None, metrics, launch).await?,
        None => {
            let root = dir.path().to_path_buf();
            Server::start(root, Some(dir), policy, None, metrics, launch).await?
        }
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
async fn audit_phase(target: &Target, judging: report::Judging) {
    let server = target.first();
    let started = Instant::now();
    match crate::cli::audit::audit(&server.base, None, false).await {
        Ok(outcome) => {
            let rate = outcome.checkpoint_size as f64 / started.elapsed().as_secs_f64().max(1e-9);
            println!(
                "pennypost audit ({}): {} entries in {:.2} s = {:.0} entries/s ({}; {} refunded in all); target >= 200,000 entries/s: {}",
                target.label,
                outcome.checkpoint_size,
                started.elapsed().as_secs_f64(),
                rate,
                if outcome.report.ok { "all checks hold" } else { "VIOLATIONS" },
                outcome.report.refunds_total,
                judging.verdict(rate >= 200_000.0)
            );
        }
        Err(e) => println!("pennypost audit ({}): could not finish: {e}", target.label),
    }
}

/// Measures every workload on every server, then prints the tables.
async fn measure(plan: &Plan, ceilings: &Ceilings, targets: &[Target]) -> Result<Report, String> {
    let all = run::measure(plan, ceilings, targets).await?;
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
    if plan.database.is_some() {
        let sled = all.iter().find(|r| !r.postgres);
        let postgres = all.iter().find(|r| r.postgres);
        if let (Some(sled), Some(postgres)) = (sled, postgres) {
            print_database_comparison(plan, sled, postgres);
        }
    } else if plan.against.is_some() {
        let this = all.iter().find(|r| r.label.starts_with("this build"));
        let other = all.iter().find(|r| r.label.starts_with("other build"));
        if let (Some(this), Some(other)) = (this, other) {
            print_build_comparison(plan, this, other);
        }
    } else if let (Some(flat), Some(default)) = (flat, default) {
        print_comparison(plan, flat, default);
    }
    Ok(Report {
        errors: all.iter().map(Results::errors).sum(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{BenchArgs, Plan};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Plan::from_args(&cli.bench)
    }

    #[test]
    fn another_build_is_compared_under_one_policy_and_must_exist() {
        let exe = std::env::current_exe().expect("test executable");
        let exe = exe.to_str().expect("utf-8 path");
        let both = plan(&["--against", exe, "--policy", "both"]).err();
        assert!(both.is_some_and(|e| e.contains("one policy")));
        let missing = plan(&["--against", "/nonexistent/pennypost"]).err();
        assert!(missing.is_some_and(|e| e.contains("no such file")));
        let one = plan(&["--against", exe]).expect("a plan");
        assert_eq!(one.policies.len(), 1);
        assert!(one
            .against
            .is_some_and(|(launch, _)| launch.args.is_empty()));
    }

    #[test]
    fn serve_args_reach_this_builds_servers_only() {
        let plan =
            plan(&["--serve-arg=--payment-provider", "--serve-arg", "test"]).expect("a plan");
        assert_eq!(plan.launch.args, ["--payment-provider", "test"]);
        assert!(plan.launch.exe.is_none());
        assert!(plan.against.is_none());
    }
}
