//! The load generator: the workloads (health checks, purchases, redeems, old-stamp redeems,
//! posts, votes, board reads), the pre-buying that stocks the redeem workloads, and the
//! `--prefill` of spent stamps. Each workload runs with one client task per connection over
//! one shared `reqwest::Client`, and records the latency of every request; on a target of
//! several servers (PostgreSQL), client task `i` talks to server `i % servers`. Posts and votes
//! are paid by the payers of `payers`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::client::{send, Ctx};
use super::statistics::{cluster_cores, cluster_cpu, cpu_seconds, Phase, Workload};
use super::Plan;
use crate::api::{
    CreatePostRequest, Direction, Post, PurchaseRequest, PurchaseResponse, RedeemRequest,
    VoteRequest, VoteResponse,
};

/// Stamps bought per purchase while pre-buying (the server's largest purchase).
const STOCK_PURCHASE: u64 = 1000;
/// Parallel purchases while pre-buying.
const STOCK_PARALLEL: usize = 16;
/// Stamps per purchase in the measured purchase workload.
pub(super) const PURCHASE_COUNT: u64 = 100;
/// Stamps bought and spent per round of `--prefill`, bounding the memory the stamps take.
const PREFILL_ROUND: u64 = 100_000;

/// Tops the stamp pool up to `want` stamps, buying 1,000 at a time in parallel.
pub(super) async fn stock(ctx: &Arc<Ctx>, want: u64) -> Result<(), String> {
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
pub(super) async fn prefill(ctx: &Arc<Ctx>, plan: &Plan) -> Result<(), String> {
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
            .post(format!("{}/v1/stamps/purchase", ctx.base_for(worker)))
            .bearer_auth(key)
            .json(&PurchaseRequest { count }),
    )
    .await?;
    let purchased: PurchaseResponse =
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
    let base = ctx.base_for(worker);
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
                    .json(&RedeemRequest {
                        context: format!("bench.invalid/thread/{worker}#{seq}"),
                        stamp,
                    }),
            )
            .await?;
            Ok(Step::Done(1))
        }
        Workload::Post => {
            let Some(stamps) = ctx.payers.poster() else {
                return Ok(Step::Exhausted);
            };
            let body = send(
                ctx.client
                    .post(format!("{base}/v1/posts"))
                    .json(&CreatePostRequest {
                        author: Some(format!("bench-{worker}")),
                        body: format!("post {seq} of bench client {worker}"),
                        stamps,
                    }),
            )
            .await?;
            let post: Post =
                serde_json::from_slice(&body).map_err(|e| format!("post answer: {e}"))?;
            ctx.payers.add_post(post.post_id);
            Ok(Step::Done(1))
        }
        Workload::Vote => {
            let Some(vote) = ctx.payers.next_vote(ctx.vote_cost)? else {
                return Ok(Step::Exhausted);
            };
            let direction = if vote.up {
                Direction::Up
            } else {
                Direction::Down
            };
            let body = send(
                ctx.client
                    .post(format!("{base}/v1/posts/{}/votes", vote.post_id))
                    .json(&VoteRequest {
                        direction,
                        stamps: vote.stamps,
                    }),
            )
            .await?;
            let voted: VoteResponse =
                serde_json::from_slice(&body).map_err(|e| format!("vote answer: {e}"))?;
            // A vote's item is the refund it completed, if any.
            Ok(Step::Done(u64::from(voted.refund_ledger_index.is_some())))
        }
        Workload::Upstream | Workload::GateFree => {
            let gate = ctx.gate.as_ref().ok_or("no gate in this run")?;
            let base = if workload == Workload::Upstream {
                &gate.upstream
            } else {
                &gate.gate
            };
            send(ctx.client.get(format!("{base}/page"))).await?;
            Ok(Step::Done(1))
        }
        Workload::GatePriced => {
            let gate = ctx.gate.as_ref().ok_or("no gate in this run")?;
            let Some(mut stamps) = ctx.take_stamps(1) else {
                return Ok(Step::Exhausted);
            };
            let stamp = stamps.pop().unwrap_or_default();
            send(
                ctx.client
                    .post(format!("{}/comments", gate.gate))
                    .header("Pennypost-Stamps", stamp)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(format!("text=comment+{seq}+of+bench+client+{worker}")),
            )
            .await?;
            Ok(Step::Done(1))
        }
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
pub(super) async fn run_phase(
    ctx: &Arc<Ctx>,
    workload: Workload,
    connections: usize,
    duration: Option<Duration>,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let dry = Arc::new(AtomicBool::new(false));
    let server_cpu = || -> Option<f64> {
        ctx.server_pids
            .iter()
            .map(|pid| cpu_seconds(&pid.to_string()))
            .sum()
    };
    let commits0 = ctx.commits().await;
    let cluster0 = ctx.postmaster.map(cluster_cpu);
    let server_cpu0 = server_cpu();
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
        database_cores: None,
        commits: None,
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
    let server_cpu1 = server_cpu();
    phase.server_cores = server_cpu0.zip(server_cpu1).map(|(a, b)| (b - a) / secs);
    phase.database_cores = cluster0
        .zip(ctx.postmaster.map(cluster_cpu))
        .map(|(before, after)| cluster_cores(&before, &after, secs));
    phase.client_cores = client_cpu0
        .zip(cpu_seconds("self"))
        .map(|(a, b)| (b - a) / secs);
    phase.exhausted = dry.load(Ordering::Relaxed);
    phase.commits = commits0
        .zip(ctx.commits().await)
        .map(|(before, after)| after.since(before));
    phase.latencies_us.sort_unstable();
    phase
}
