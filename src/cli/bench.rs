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

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore as _};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::stamp::{self, Kid, Payload};

/// Stamps bought per purchase while pre-buying (the server's largest purchase).
const STOCK_PURCHASE: u64 = 1000;
/// Parallel purchases while pre-buying.
const STOCK_PARALLEL: usize = 16;
/// Stamps per purchase in the measured purchase workload.
const PURCHASE_COUNT: u64 = 100;
/// Most stamps pre-bought for one spend workload in `--smoke` mode.
const SMOKE_STOCK_MAX: u64 = 500;
/// Stamps bought and spent per round of `--prefill`, bounding the memory the stamps take.
const PREFILL_ROUND: u64 = 100_000;
/// Spend workloads are stocked for this much more than the expected rate, so that they rarely
/// run dry before their time is up (a dry workload stops early and says so).
const STOCK_HEADROOM: f64 = 1.3;
/// Most post ids kept for the vote workload to vote on.
const VOTE_TARGETS_MAX: usize = 1000;
/// How long the server may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Stamps per purchase and commands per transaction while writing the scale prefill.
const SCALE_PURCHASE: usize = 1000;
const SCALE_BATCH: usize = 256;
/// The scale prefill's purchases are spread over this many seconds before now (30 days).
const SCALE_HISTORY_SECS: u64 = 30 * 86_400;
/// Stamps of each prefill purchase left unspent, for the old-stamp redeem workload.
const SCALE_KEEP_PER_PURCHASE: usize = 10;
/// Where the prefill writes the unspent stamps it kept, one per line, in the bench directory.
const OLD_STAMPS_FILE: &str = "old-stamps.txt";

/// Writes `count` sold stamps, all but [`SCALE_KEEP_PER_PURCHASE`] of each purchase spent, into a new store under `dir/data/db`, with the issuer key
/// of `dir/keys` published first, so the log is one an auditor accepts.
fn scale_store(dir: &std::path::Path, count: u64) -> Result<(), String> {
    use crate::store::{Command as StoreCommand, SledStore, SpendFor, StampRef, Store as _};
    use crate::time::Timestamp;
    let now = Timestamp::now();
    let ring = crate::keys::load_or_create(&dir.join("keys"), now).map_err(|e| e.to_string())?;
    let key = ring.active();
    let signing = key.signing.as_ref().ok_or("the active key has no secret")?;
    let store =
        SledStore::open(&dir.join("data").join("db"), "cents").map_err(|e| e.to_string())?;
    let account = Uuid::new_v4();
    let apply = |commands: &[StoreCommand]| -> Result<(), String> {
        for result in store.apply(commands, now).map_err(|e| e.to_string())? {
            result.map_err(|e| format!("scale prefill refused: {e}"))?;
        }
        Ok(())
    };
    apply(&[
        StoreCommand::KeyEvent {
            kid: key.kid,
            public_key: crate::keys::public_key_text(&key.verifying),
            status: crate::keys::KeyStatus::Active,
        },
        StoreCommand::CreateAccount {
            account_id: account,
            name: Some("scale".into()),
            api_key_sha256: [0; 32],
        },
        StoreCommand::Credit {
            account_id: account,
            amount: count,
            reference: format!("scale-{account}"),
        },
    ])?;
    // The purchases are spread evenly over the SCALE_HISTORY_SECS before now, as a server that
    // has been selling for a while would hold them.
    let purchases = count.div_ceil(SCALE_PURCHASE as u64).max(1);
    let spacing = (SCALE_HISTORY_SECS / purchases).max(1);
    let mut kept = Vec::new();
    let mut left = count;
    let mut purchase = 0u64;
    while left > 0 {
        let n = left.min(SCALE_PURCHASE as u64) as usize;
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
        let back = (purchases - purchase).saturating_mul(spacing);
        let issued_at = Timestamp::from_unix(
            now.unix()
                .saturating_sub(i64::try_from(back).unwrap_or(i64::MAX)),
        );
        let expires_at = now.plus_secs(86_400 * 365);
        apply(&[StoreCommand::Purchase {
            account_id: account,
            unit_price: 1,
            idempotency_key_sha256: None,
            purchase_id: Uuid::new_v4(),
            kid: key.kid,
            issued_at,
            expires_at,
            stamp_ids: ids.clone(),
        }])?;
        let (keep, spend) = ids.split_at(n.min(SCALE_KEEP_PER_PURCHASE));
        kept.extend(keep.iter().map(|id| {
            let text = crate::stamp::sign(
                &crate::stamp::Payload {
                    kid: key.kid,
                    stamp_id: *id,
                    issued_at: issued_at.unix(),
                    expires_at: expires_at.unix(),
                    value: 1,
                    holder: [0; 32],
                },
                signing,
            );
            (*id, text)
        }));
        let spends: Vec<StoreCommand> = spend
            .iter()
            .map(|id| StoreCommand::Spend {
                stamps: vec![StampRef {
                    stamp_id: *id,
                    issued_at,
                }],
                spend_for: SpendFor::Redeem {
                    context: "scale".into(),
                },
            })
            .collect();
        for chunk in spends.chunks(SCALE_BATCH) {
            apply(chunk)?;
        }
        left -= n as u64;
        purchase += 1;
    }
    store.sync().map_err(|e| e.to_string())?;
    // Ids are random, so id order is a random order of issue times: the workload that spends
    // these takes them from all over the history, not purchase by purchase.
    kept.sort_unstable_by_key(|(id, _)| *id);
    let texts: Vec<String> = kept.into_iter().map(|(_, text)| text).collect();
    write_old_stamps(dir, &texts)
}

fn write_old_stamps(dir: &std::path::Path, texts: &[String]) -> Result<(), String> {
    let mut text = texts.join("\n");
    text.push('\n');
    std::fs::write(dir.join(OLD_STAMPS_FILE), text)
        .map_err(|e| format!("cannot write {OLD_STAMPS_FILE}: {e}"))
}

/// The unspent old stamps a scale prefill kept in `dir`, if any.
fn read_old_stamps(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(OLD_STAMPS_FILE))
        .map(|text| {
            text.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The independent auditor over the log the workloads left (every entry, over HTTP, with the
/// Merkle root, the checkpoint signature and every invariant), against issue 6's target.
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
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))?;
    let base = server.base.clone();
    let prices: Prices = serde_json::from_slice(
        &send(client.get(format!("{base}/v1/prices")))
            .await
            .map_err(|e| format!("GET /v1/prices: {e}"))?,
    )
    .map_err(|e| format!("GET /v1/prices: {e}"))?;
    let accounts = create_accounts(
        &client,
        &base,
        &server.admin_token,
        plan.connections.min(64),
        prices.stamp_price,
    )
    .await?;
    let ctx = Arc::new(Ctx {
        client,
        base,
        accounts,
        post_cost: prices.costs.post,
        vote_cost: prices.costs.vote,
        pool: Mutex::new(Vec::new()),
        stock_left: AtomicI64::new(0),
        posts: Mutex::new(Vec::new()),
        server_pid: server.child.id(),
    });

    wait_for_ledger_check(&ctx).await?;

    let mut rows: Vec<Row> = Vec::new();
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

    let verify = ceilings.verify_strict;
    let health = healthz.rate();
    rows.push(Row::http(
        "GET /healthz (HTTP ceiling)",
        &healthz,
        "ceiling",
    ));
    rows.push(Row::cpu(
        "ed25519 verify_strict, 1 core (ceiling)",
        ceilings.verify_strict,
        "ceiling",
    ));
    rows.push(Row::cpu(
        "ed25519 verify_batch of 64, 1 core",
        ceilings.verify_batch,
        &ratio(ceilings.verify_batch, verify, "verify_strict"),
    ));
    rows.push(Row::cpu("ed25519 sign, 1 core", ceilings.sign, "ceiling"));
    let redeem_label = if plan.prefill > 0 {
        format!("POST /v1/stamps/redeem (after {} spent)", plan.prefill)
    } else {
        "POST /v1/stamps/redeem".to_string()
    };
    rows.push(Row::http(
        &redeem_label,
        &redeems,
        &ratio(redeems.rate(), verify, "verify_strict"),
    ));
    if let Some(old) = &old_redeems {
        rows.push(Row::http(
            "POST /v1/stamps/redeem, old stamps",
            old,
            &ratio(old.rate(), redeems.rate(), "redeem"),
        ));
    }
    rows.push(Row::http(
        "POST /v1/posts",
        &posts,
        &ratio(posts.rate(), verify, "verify_strict"),
    ));
    rows.push(Row::http(
        "POST /v1/posts/{id}/votes",
        &votes,
        &ratio(votes.rate(), verify, "verify_strict"),
    ));
    rows.push(Row::http(
        &format!("POST /v1/stamps/purchase ({PURCHASE_COUNT})"),
        &purchases,
        "",
    ));
    let mut issued = Row::cpu(
        "  stamps issued by those purchases",
        purchases.item_rate(),
        &ratio(purchases.item_rate(), ceilings.sign, "sign"),
    );
    issued.cores = Some((purchases.server_cores, purchases.client_cores));
    rows.push(issued);
    rows.push(Row::http(
        "GET /v1/posts",
        &reads,
        &ratio(reads.rate(), health, "healthz"),
    ));

    println!();
    println!(
        "pennypost bench: {} s per workload, {} connections, {} cores",
        d.as_secs(),
        n,
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );
    println!();
    print_table(&rows);
    println!();
    for phase in [&healthz, &purchases, &redeems, &posts, &votes, &reads] {
        if let Some(note) = phase.note() {
            println!("note: {}: {note}", phase.workload.name());
        }
    }
    print_targets(&redeems, &purchases, &reads, &healthz, verify);

    let errors: u64 = [&healthz, &purchases, &redeems, &posts, &votes, &reads]
        .iter()
        .map(|p| p.errors)
        .sum();
    Ok(Report { errors })
}

fn ratio(value: f64, ceiling: f64, of: &str) -> String {
    if ceiling > 0.0 {
        format!("{:.2} of {of}", value / ceiling)
    } else {
        String::new()
    }
}

fn print_targets(redeems: &Phase, purchases: &Phase, reads: &Phase, healthz: &Phase, verify: f64) {
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let redeem_p99 = redeems.percentile_ms(0.99);
    let absolute = redeems.rate() >= 10_000.0 && redeem_p99 <= 25.0;
    let relative = verify > 0.0 && redeems.rate() >= 0.5 * verify;
    println!(
        "target: redeems >= 10,000/s with p99 <= 25 ms ({:.0}/s, p99 {:.1} ms): {}; \
         or >= 50% of verify_strict ({:.0}%): {}",
        redeems.rate(),
        redeem_p99,
        met(absolute),
        if verify > 0.0 {
            100.0 * redeems.rate() / verify
        } else {
            0.0
        },
        met(relative)
    );
    println!(
        "target: purchases >= 20,000 stamps issued/s ({:.0}/s): {}",
        purchases.item_rate(),
        met(purchases.item_rate() >= 20_000.0)
    );
    let read_share = if healthz.rate() > 0.0 {
        reads.rate() / healthz.rate()
    } else {
        0.0
    };
    println!(
        "target: board reads >= 50% of /healthz ({:.0}%): {}",
        100.0 * read_share,
        met(read_share >= 0.5)
    );
}

// ---------------------------------------------------------------------------------------------
// The server under test.

struct Server {
    child: Child,
    base: String,
    admin_token: String,
    /// The directory holding `data/` and `keys/`.
    root: PathBuf,
    /// Removed when the server is gone; holds `data/` and `keys/`.
    dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `<this executable> serve` on port 0 over a fresh temporary directory and waits for
    /// its listening line.
    async fn start(root: PathBuf, dir: Option<tempfile::TempDir>) -> Result<Server, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find the pennypost executable: {e}"))?;
        let data_dir: PathBuf = root.join("data");
        let keys_dir: PathBuf = root.join("keys");
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let admin_token = format!("ppadm_bench_{}", hex::encode(secret));
        let mut child = Command::new(&exe)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--keys-dir")
            .arg(&keys_dir)
            // The load comes from one address: the per-client limits would refuse most of it.
            .args(["--rate-accounts-per-minute", "0"])
            .args(["--rate-purchases-per-minute", "0"])
            .args(["--rate-auth-failures-per-minute", "0"])
            .env("PENNYPOST_ADMIN_TOKEN", &admin_token)
            .env("PENNYPOST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {} serve: {e}", exe.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the server's standard output is not piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let wait_line = async {
            while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
                if let Some(address) = line.strip_prefix("pennypost listening on ") {
                    return Ok(address.trim().to_string());
                }
            }
            Err("the server exited before it listened".to_string())
        };
        let base = match tokio::time::timeout(STARTUP_TIMEOUT, wait_line).await {
            Ok(Ok(base)) => base,
            Ok(Err(e)) => {
                let _ = child.kill().await;
                return Err(e);
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(format!(
                    "the server did not listen within {} s",
                    STARTUP_TIMEOUT.as_secs()
                ));
            }
        };
        // Keep reading its standard output so that it can never block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        eprintln!(
            "bench: server {} pid {} (data in {})",
            base,
            child.id().unwrap_or(0),
            root.display()
        );
        Ok(Server {
            child,
            base,
            admin_token,
            root,
            dir,
        })
    }

    /// The server's resident memory in KiB, from /proc.
    fn resident_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Kills the server, waits for it, then removes its directory.
    async fn stop(&mut self) {
        let _ = self.child.kill().await;
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// In-process Ed25519 ceilings.

struct Ceilings {
    /// `verify_strict` per second on one core.
    verify_strict: f64,
    /// Signatures per second through `verify_batch` in batches of 64, on one core.
    verify_batch: f64,
    /// Signatures made per second on one core.
    sign: f64,
}

/// Runs `step` (which does some units of work and returns how many) until `time` has passed;
/// returns units per second.
fn per_second(
    time: Duration,
    mut step: impl FnMut() -> Result<u64, String>,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut units = 0u64;
    loop {
        units += step()?;
        let elapsed = start.elapsed();
        if elapsed >= time {
            return Ok(units as f64 / elapsed.as_secs_f64());
        }
    }
}

/// Measures the Ed25519 rates over real stamps (the same message layout the server verifies).
fn ed25519_ceilings(time: Duration) -> Result<Ceilings, String> {
    const N: usize = 64;
    let signing = SigningKey::generate(&mut OsRng);
    let verifying: VerifyingKey = signing.verifying_key();
    let kid = Kid::of(&verifying);
    let payloads: Vec<Payload> = (0..N)
        .map(|_| Payload {
            kid,
            stamp_id: Uuid::new_v4(),
            issued_at: 1_700_000_000,
            expires_at: 1_800_000_000,
            value: stamp::VALUE_V1,
            holder: [0; 32],
        })
        .collect();
    let mut messages: Vec<Vec<u8>> = Vec::with_capacity(N);
    let mut signatures: Vec<Signature> = Vec::with_capacity(N);
    for payload in &payloads {
        let text = stamp::sign(payload, &signing);
        let decoded = stamp::decode(&text).map_err(|e| format!("own stamp: {e}"))?;
        let (message, signature) = decoded.signed_parts();
        messages.push(message);
        signatures.push(signature);
    }
    let keys = vec![verifying; N];

    let mut i = 0usize;
    let verify_strict = per_second(time, || {
        for _ in 0..16 {
            i = (i + 1) % N;
            verifying
                .verify_strict(&messages[i], &signatures[i])
                .map_err(|e| format!("verify_strict refused a good signature: {e}"))?;
        }
        Ok(16)
    })?;
    let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
    let verify_batch = per_second(time, || {
        ed25519_dalek::verify_batch(&refs, &signatures, &keys)
            .map_err(|e| format!("verify_batch refused good signatures: {e}"))?;
        Ok(N as u64)
    })?;
    let mut j = 0usize;
    let sign = per_second(time, || {
        for _ in 0..16 {
            j = (j + 1) % N;
            std::hint::black_box(stamp::sign(&payloads[j], &signing));
        }
        Ok(16)
    })?;
    Ok(Ceilings {
        verify_strict,
        verify_batch,
        sign,
    })
}

// ---------------------------------------------------------------------------------------------
// The load generator.

#[derive(Deserialize)]
struct Prices {
    stamp_price: u64,
    costs: Costs,
}

#[derive(Deserialize)]
struct Costs {
    post: usize,
    vote: usize,
}

#[derive(Deserialize)]
struct Created {
    account_id: String,
    api_key: String,
}

#[derive(Deserialize)]
struct Purchased {
    stamps: Vec<String>,
}

#[derive(Deserialize)]
struct PostCreated {
    post_id: String,
}

/// What every client task shares.
struct Ctx {
    client: reqwest::Client,
    base: String,
    /// API keys of the funded accounts; task `i` buys with account `i % len`.
    accounts: Vec<String>,
    post_cost: usize,
    vote_cost: usize,
    /// Unspent stamps.
    pool: Mutex<Vec<String>>,
    /// Stamps still to buy in the current pre-buy.
    stock_left: AtomicI64,
    /// Posts made by the post workload, for the vote workload.
    posts: Mutex<Vec<String>>,
    /// The server's process id, to read the CPU time it uses.
    server_pid: Option<u32>,
}

impl Ctx {
    fn take_stamps(&self, count: usize) -> Option<Vec<String>> {
        let mut pool = self.pool.lock().ok()?;
        if pool.len() < count {
            return None;
        }
        let at = pool.len() - count;
        Some(pool.split_off(at))
    }

    fn add_stamps(&self, stamps: Vec<String>) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.extend(stamps);
        }
    }

    /// Swaps the pool of unspent stamps for `stamps`, returning the old pool.
    fn replace_pool(&self, stamps: Vec<String>) -> Vec<String> {
        match self.pool.lock() {
            Ok(mut pool) => std::mem::replace(&mut *pool, stamps),
            Err(_) => Vec::new(),
        }
    }

    fn pool_len(&self) -> usize {
        self.pool.lock().map(|p| p.len()).unwrap_or(0)
    }
}

/// CPU time (user + system) a process has used so far, in seconds, from `/proc/<pid>/stat`
/// (`self` for this process).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every architecture it supports.
    Some((utime + stime) / 100.0)
}

/// Sends a request and reads the whole answer; a transport error or a non-2xx status is an
/// error.
/// Waits until the server's own ledger checker has caught up with the log (its first
/// `/v1/audit` answer). On a big log that catch-up takes a core for a while after start-up
/// (about 25 s at 10M entries), and would otherwise be measured as part of the workloads.
async fn wait_for_ledger_check(ctx: &Ctx) -> Result<(), String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let url = format!("{}/v1/audit", ctx.base);
    loop {
        let status = ctx
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET /v1/audit: transport: {e}"))?
            .status();
        match status.as_u16() {
            200..=299 => break,
            // 503: the server's check is still catching up (it says how far); 408: an answer
            // took longer than the server's request time limit. Ask again.
            503 | 408 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => return Err(format!("GET /v1/audit: HTTP {status}")),
        }
    }
    if started.elapsed() > Duration::from_secs(1) {
        eprintln!(
            "bench: waited {:.1} s for the server's ledger check to catch up before measuring",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

async fn send(request: reqwest::RequestBuilder) -> Result<bytes::Bytes, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("HTTP {status}: {text}"));
    }
    Ok(body)
}

/// Creates `count` accounts in parallel and credits each with money for far more stamps than
/// any run buys.
async fn create_accounts(
    client: &reqwest::Client,
    base: &str,
    admin_token: &str,
    count: usize,
    stamp_price: u64,
) -> Result<Vec<String>, String> {
    let amount = stamp_price
        .saturating_mul(100_000_000)
        .clamp(1, 1_000_000_000_000);
    let mut tasks = JoinSet::new();
    for i in 0..count.max(1) {
        let client = client.clone();
        let base = base.to_string();
        let admin = admin_token.to_string();
        tasks.spawn(async move {
            let body = send(
                client
                    .post(format!("{base}/v1/accounts"))
                    .json(&json!({"name": format!("bench-{i}")})),
            )
            .await
            .map_err(|e| format!("POST /v1/accounts: {e}"))?;
            let created: Created =
                serde_json::from_slice(&body).map_err(|e| format!("POST /v1/accounts: {e}"))?;
            send(
                client
                    .post(format!(
                        "{base}/v1/admin/accounts/{}/credit",
                        created.account_id
                    ))
                    .bearer_auth(&admin)
                    .json(&json!({
                        "amount": amount,
                        "reference": format!("bench-{}", created.account_id),
                    })),
            )
            .await
            .map_err(|e| format!("credit: {e}"))?;
            Ok::<String, String>(created.api_key)
        });
    }
    let mut keys = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        keys.push(joined.map_err(|e| format!("setup task failed: {e}"))??);
    }
    Ok(keys)
}

/// Tops the stamp pool up to `want` stamps, buying 1,000 at a time in parallel.
async fn stock(ctx: &Arc<Ctx>, want: u64) -> Result<(), String> {
    let have = ctx.pool_len() as u64;
    if have >= want {
        return Ok(());
    }
    let missing = want - have;
    ctx.stock_left
        .store(i64::try_from(missing).unwrap_or(i64::MAX), Ordering::SeqCst);
    let started = Instant::now();
    let phase = run_phase(ctx, Workload::Stock, STOCK_PARALLEL, None).await;
    if phase.errors > 0 {
        return Err(format!(
            "pre-buying {missing} stamps failed {} times; first: {}",
            phase.errors,
            phase.first_error.unwrap_or_default()
        ));
    }
    eprintln!(
        "bench: pre-bought {missing} stamps in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Spends `plan.prefill` stamps (bought and redeemed in rounds), unmeasured.
async fn prefill(ctx: &Arc<Ctx>, plan: &Plan) -> Result<(), String> {
    let started = Instant::now();
    let mut left = plan.prefill;
    while left > 0 {
        let round = left.min(PREFILL_ROUND);
        stock(ctx, round).await?;
        let phase = run_phase(ctx, Workload::Redeem, plan.connections, None).await;
        if phase.errors > 0 {
            return Err(format!(
                "prefill redeems failed {} times; first: {}",
                phase.errors,
                phase.first_error.unwrap_or_default()
            ));
        }
        left -= round;
        eprintln!(
            "bench: prefill: {} of {} spent ({:.0} s; last round {:.0} redeems/s)",
            plan.prefill - left,
            plan.prefill,
            started.elapsed().as_secs_f64(),
            phase.rate()
        );
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Healthz,
    Purchase,
    Redeem,
    Post,
    Vote,
    Read,
    /// Pre-buying (unmeasured): purchases of up to 1,000 until `stock_left` is used up.
    Stock,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Healthz => "GET /healthz",
            Workload::Purchase => "POST /v1/stamps/purchase",
            Workload::Redeem => "POST /v1/stamps/redeem",
            Workload::Post => "POST /v1/posts",
            Workload::Vote => "POST /v1/posts/{id}/votes",
            Workload::Read => "GET /v1/posts",
            Workload::Stock => "pre-buy",
        }
    }
}

/// The outcome of one request that did not fail.
enum Step {
    /// Done; this many items (stamps issued, for purchases).
    Done(u64),
    /// Nothing left to do (out of stamps): the workload stops.
    Exhausted,
}

async fn buy(ctx: &Ctx, worker: usize, count: u64) -> Result<Vec<String>, String> {
    let key = &ctx.accounts[worker % ctx.accounts.len()];
    let body = send(
        ctx.client
            .post(format!("{}/v1/stamps/purchase", ctx.base))
            .bearer_auth(key)
            .json(&json!({ "count": count })),
    )
    .await?;
    let purchased: Purchased =
        serde_json::from_slice(&body).map_err(|e| format!("purchase answer: {e}"))?;
    if purchased.stamps.len() as u64 != count {
        return Err(format!(
            "asked for {count} stamps, got {}",
            purchased.stamps.len()
        ));
    }
    Ok(purchased.stamps)
}

/// One request of `workload` by client task `worker`, its `seq`th.
async fn once(ctx: &Ctx, workload: Workload, worker: usize, seq: u64) -> Result<Step, String> {
    let base = &ctx.base;
    match workload {
        Workload::Healthz => {
            send(ctx.client.get(format!("{base}/healthz"))).await?;
            Ok(Step::Done(1))
        }
        Workload::Read => {
            send(ctx.client.get(format!("{base}/v1/posts"))).await?;
            Ok(Step::Done(1))
        }
        Workload::Purchase => {
            let stamps = buy(ctx, worker, PURCHASE_COUNT).await?;
            let n = stamps.len() as u64;
            ctx.add_stamps(stamps);
            Ok(Step::Done(n))
        }
        Workload::Stock => {
            let before = ctx
                .stock_left
                .fetch_sub(STOCK_PURCHASE as i64, Ordering::SeqCst);
            if before <= 0 {
                return Ok(Step::Exhausted);
            }
            let count = u64::try_from(before).unwrap_or(0).clamp(1, STOCK_PURCHASE);
            let stamps = buy(ctx, worker, count).await?;
            ctx.add_stamps(stamps);
            Ok(Step::Done(count))
        }
        Workload::Redeem => {
            let Some(mut stamps) = ctx.take_stamps(1) else {
                return Ok(Step::Exhausted);
            };
            let stamp = stamps.pop().unwrap_or_default();
            send(
                ctx.client
                    .post(format!("{base}/v1/stamps/redeem"))
                    .json(&json!({
                        "stamp": stamp,
                        "context": format!("bench.invalid/thread/{worker}#{seq}"),
                    })),
            )
            .await?;
            Ok(Step::Done(1))
        }
        Workload::Post => {
            let Some(stamps) = ctx.take_stamps(ctx.post_cost) else {
                return Ok(Step::Exhausted);
            };
            let body = send(ctx.client.post(format!("{base}/v1/posts")).json(&json!({
                "author": format!("bench-{worker}"),
                "body": format!("post {seq} of bench client {worker}"),
                "stamps": stamps,
            })))
            .await?;
            let post: PostCreated =
                serde_json::from_slice(&body).map_err(|e| format!("post answer: {e}"))?;
            if let Ok(mut posts) = ctx.posts.lock() {
                if posts.len() < VOTE_TARGETS_MAX {
                    posts.push(post.post_id);
                }
            }
            Ok(Step::Done(1))
        }
        Workload::Vote => {
            let target = ctx.posts.lock().ok().and_then(|posts| {
                let len = posts.len();
                (len > 0).then(|| posts[(worker + seq as usize) % len].clone())
            });
            let Some(post_id) = target else {
                return Err("no post to vote on (the post workload made none)".into());
            };
            let Some(stamps) = ctx.take_stamps(ctx.vote_cost) else {
                return Ok(Step::Exhausted);
            };
            let direction = if seq % 4 == 3 { "down" } else { "up" };
            send(
                ctx.client
                    .post(format!("{base}/v1/posts/{post_id}/votes"))
                    .json(&json!({ "direction": direction, "stamps": stamps })),
            )
            .await?;
            Ok(Step::Done(1))
        }
    }
}

/// One workload's measurements.
struct Phase {
    workload: Workload,
    elapsed: Duration,
    planned: Option<Duration>,
    ops: u64,
    items: u64,
    errors: u64,
    first_error: Option<String>,
    /// Latency of every successful request, microseconds, sorted.
    latencies_us: Vec<u32>,
    exhausted: bool,
    /// CPU cores the server and this load generator kept busy on average, when known.
    server_cores: Option<f64>,
    client_cores: Option<f64>,
}

impl Phase {
    fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }

    fn item_rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.items as f64 / secs
        } else {
            0.0
        }
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.latencies_us[rank - 1]) / 1000.0
    }

    fn note(&self) -> Option<String> {
        let mut notes = Vec::new();
        if self.exhausted {
            if let Some(planned) = self.planned {
                notes.push(format!(
                    "ran out of stamps after {:.1} of {} s (rate is over the time it ran)",
                    self.elapsed.as_secs_f64(),
                    planned.as_secs()
                ));
            }
        }
        if let Some(e) = &self.first_error {
            notes.push(format!("{} errors; first: {e}", self.errors));
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

struct WorkerResult {
    ops: u64,
    items: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
}

/// Runs `workload` with `connections` client tasks until `duration` has passed (or, when
/// `None`, until the workload is exhausted), then waits for the requests in flight.
async fn run_phase(
    ctx: &Arc<Ctx>,
    workload: Workload,
    connections: usize,
    duration: Option<Duration>,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let dry = Arc::new(AtomicBool::new(false));
    let server_pid = ctx.server_pid.map(|p| p.to_string());
    let server_cpu0 = server_pid.as_deref().and_then(cpu_seconds);
    let client_cpu0 = cpu_seconds("self");
    let start = Instant::now();
    let deadline = duration.and_then(|d| start.checked_add(d));
    let mut tasks = JoinSet::new();
    for worker in 0..connections {
        let ctx = ctx.clone();
        let stop = stop.clone();
        let dry = dry.clone();
        tasks.spawn(async move {
            let mut result = WorkerResult {
                ops: 0,
                items: 0,
                errors: 0,
                first_error: None,
                latencies_us: Vec::new(),
            };
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
                let t0 = Instant::now();
                let outcome = once(&ctx, workload, worker, seq).await;
                let micros = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
                seq += 1;
                match outcome {
                    Ok(Step::Done(items)) => {
                        result.ops += 1;
                        result.items += items;
                        result.latencies_us.push(micros);
                    }
                    Ok(Step::Exhausted) => {
                        dry.store(true, Ordering::Relaxed);
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        result.errors += 1;
                        result.first_error.get_or_insert(e);
                        // A failing workload (no server, say) must not spin: stop it.
                        if deadline.is_none() {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            result
        });
    }
    let mut phase = Phase {
        workload,
        elapsed: Duration::ZERO,
        planned: duration,
        ops: 0,
        items: 0,
        errors: 0,
        first_error: None,
        latencies_us: Vec::new(),
        exhausted: false,
        server_cores: None,
        client_cores: None,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(w) => {
                phase.ops += w.ops;
                phase.items += w.items;
                phase.errors += w.errors;
                if phase.first_error.is_none() {
                    phase.first_error = w.first_error;
                }
                phase.latencies_us.extend(w.latencies_us);
            }
            Err(e) => {
                phase.errors += 1;
                phase
                    .first_error
                    .get_or_insert_with(|| format!("client task failed: {e}"));
            }
        }
    }
    phase.elapsed = start.elapsed();
    let secs = phase.elapsed.as_secs_f64().max(1e-9);
    let server_cpu1 = server_pid.as_deref().and_then(cpu_seconds);
    phase.server_cores = server_cpu0.zip(server_cpu1).map(|(a, b)| (b - a) / secs);
    phase.client_cores = client_cpu0
        .zip(cpu_seconds("self"))
        .map(|(a, b)| (b - a) / secs);
    phase.exhausted = dry.load(Ordering::Relaxed);
    phase.latencies_us.sort_unstable();
    phase
}

// ---------------------------------------------------------------------------------------------
// The table.

struct Row {
    name: String,
    rate: f64,
    /// p50, p99, p999 in ms, errors; `None` for in-process rows.
    http: Option<([f64; 3], u64)>,
    versus: String,
    /// Cores busy in the server and in the load generator during the workload.
    cores: Option<(Option<f64>, Option<f64>)>,
}

impl Row {
    fn http(name: &str, phase: &Phase, versus: &str) -> Row {
        Row {
            name: name.to_string(),
            rate: phase.rate(),
            http: Some((
                [
                    phase.percentile_ms(0.50),
                    phase.percentile_ms(0.99),
                    phase.percentile_ms(0.999),
                ],
                phase.errors,
            )),
            versus: versus.to_string(),
            cores: Some((phase.server_cores, phase.client_cores)),
        }
    }

    fn cpu(name: &str, rate: f64, versus: &str) -> Row {
        Row {
            name: name.to_string(),
            rate,
            http: None,
            versus: versus.to_string(),
            cores: None,
        }
    }
}

/// Prints the rows as a Markdown table, so a run can be pasted into docs as it is.
fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(8).max(8);
    println!(
        "| {:<width$} | {:>9} | {:>8} | {:>8} | {:>8} | {:>6} | {:<22} | {:>12} | {:>12} |",
        "workload",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "errors",
        "vs ceiling",
        "server cores",
        "client cores"
    );
    println!(
        "|{}|{}:|{}:|{}:|{}:|{}:|{}|{}:|{}:|",
        "-".repeat(width + 2),
        "-".repeat(10),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(7),
        "-".repeat(24),
        "-".repeat(13),
        "-".repeat(13)
    );
    for row in rows {
        let (p50, p99, p999, errors) = match &row.http {
            Some(([a, b, c], e)) => (
                format!("{a:.2}"),
                format!("{b:.2}"),
                format!("{c:.2}"),
                e.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let cores = |c: Option<f64>| c.map_or("-".to_string(), |c| format!("{c:.2}"));
        let (server, client) = match row.cores {
            Some((s, c)) => (cores(s), cores(c)),
            None => ("-".to_string(), "1.00".to_string()),
        };
        println!(
            "| {:<width$} | {:>9.0} | {:>8} | {:>8} | {:>8} | {:>6} | {:<22} | {:>12} | {:>12} |",
            row.name, row.rate, p50, p99, p999, errors, row.versus, server, client
        );
    }
}
