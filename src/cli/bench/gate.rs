//! `pennypost bench --gate`: what the gate costs, against its two baselines in the same run.
//!
//! It starts a mint (`pennypost serve`, flat policy, as every bench server), a small upstream
//! of its own in this process (axum on 127.0.0.1:0: `GET /page` answers a short page,
//! `POST /comments` answers 201), and `pennypost gate` in front of that upstream with one
//! priced route (`POST /comments`, 1 stamp). Then, each pair measured in halves A B B A:
//!
//! - **unpriced overhead**: `GET /page` straight to the upstream against the same request
//!   through the gate, on one connection (one request at a time, so that the latency is the
//!   request's own, not a queue's); the target is at most [`UNPRICED_OVERHEAD_MAX_MS`] more at
//!   p50;
//! - **priced rate**: `POST /v1/stamps/redeem` at the mint against `POST /comments` through
//!   the gate with one stamp in `Pennypost-Stamps` (a hold, the upstream, a capture), at the
//!   run's connections; the target is at least [`PRICED_SHARE_MIN`] of the redeem rate.
//!
//! The server cores column counts the mint and the gate together; the lines after the table
//! split each operation's CPU between the mint, the gate and this process, and say what the
//! ratio would be where the cores are the limit, and with a gate that cost nothing.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tokio::process::{Child, Command};

use super::ceilings::Ceilings;
use super::client::{wait_for_ledger_check, Ctx, GateBases};
use super::report::{print_table, ratio, Judging, Row};
use super::server::{wait_for_lines, Policy, Server, Target};
use super::statistics::{cpu_seconds, settle, Phase, Workload};
use super::workloads::{run_phase, stock};
use super::{Plan, Report};

/// The target: an unpriced request through the gate costs at most this much more at p50 than
/// straight to the upstream.
const UNPRICED_OVERHEAD_MAX_MS: f64 = 1.0;
/// The target: priced requests through the gate reach at least this share of the mint's
/// redeem rate.
const PRICED_SHARE_MIN: f64 = 0.5;
/// The upstream's page: about the size of a small forum page's HTML head and first post.
const PAGE: &str = "<!doctype html><html><head><title>bench</title></head><body>\
<form method=\"post\" action=\"/comments\"><textarea name=\"text\"></textarea>\
<button>Send</button></form></body></html>";

/// Runs the gate's workloads and prints their table and targets.
pub(super) async fn run(plan: &Plan, ceilings: &Ceilings) -> Result<Report, String> {
    let policy = Policy::Flat;
    let dir = tempfile::Builder::new()
        .prefix("pennypost-bench-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let config_path = dir.path().join("gate.toml");
    let root = dir.path().to_path_buf();
    let mint = Server::start(root, None, policy, None, false, &plan.launch).await?;
    let mut target = Target {
        label: "gate".into(),
        policy,
        postgres: false,
        postmaster: None,
        servers: vec![mint],
    };
    let outcome = async {
        let upstream = start_upstream().await?;
        std::fs::write(&config_path, config(&upstream, &target.first().base))
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        let mut gate = GateProcess::start(&config_path).await?;
        let outcome = measure(plan, ceilings, &target, &upstream, &gate).await;
        gate.stop().await;
        outcome
    }
    .await;
    target.stop().await;
    drop(dir);
    outcome
}

/// The gate's config: the bench's upstream and mint, one priced route.
fn config(upstream: &str, mint: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\nmint = \"{mint}\"\n\
         wallet_url = \"{mint}/\"\n\n\
         [[price]]\nmethod = \"POST\"\npath = \"/comments\"\nstamps = 1\n"
    )
}

/// Starts the upstream in this process; returns its base URL.
async fn start_upstream() -> Result<String, String> {
    let router = Router::new()
        .route("/page", get(|| async { axum::response::Html(PAGE) }))
        .route(
            "/comments",
            post(|| async { (StatusCode::CREATED, "created") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen for the upstream: {e}"))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("the upstream's address: {e}"))?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(format!("http://{address}"))
}

/// A running `pennypost gate`, killed when dropped.
struct GateProcess {
    child: Child,
    base: String,
}

impl GateProcess {
    async fn start(config: &Path) -> Result<GateProcess, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find the pennypost executable: {e}"))?;
        let mut child = Command::new(&exe)
            .arg("gate")
            .arg("--config")
            .arg(config)
            .env("PENNYPOST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {} gate: {e}", exe.display()))?;
        let base = wait_for_lines(&mut child, "gate", |line| {
            line.strip_prefix("pennypost gate listening on ")
                .map(|base| base.trim().to_string())
        })
        .await?;
        eprintln!(
            "bench: gate {base} pid {} in front of the bench's upstream",
            child.id().unwrap_or(0)
        );
        Ok(GateProcess { child, base })
    }

    async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Measures `a` and `b` in halves A B B A on `ctx`, each half after the processes settled;
/// returns each one's merged phase and the CPU seconds the gate's process (`gate_pid`) used
/// during each one's halves (the phases' server cores count the mint and the gate together).
async fn pair(
    ctx: &Arc<Ctx>,
    pids: &[u32],
    gate_pid: Option<u32>,
    (a, b): (Workload, Workload),
    connections: usize,
    duration: Duration,
) -> Result<((Phase, Option<f64>), (Phase, Option<f64>)), String> {
    let half = Some(duration / 2);
    let (mut first, mut second) = (Vec::with_capacity(2), Vec::with_capacity(2));
    let (mut first_gate, mut second_gate) = (Some(0.0), Some(0.0));
    let gate_cpu = || gate_pid.and_then(|pid| cpu_seconds(&pid.to_string()));
    for (is_a, workload) in [(true, a), (false, b), (false, b), (true, a)] {
        settle(pids, None).await;
        let before = gate_cpu();
        let phase = run_phase(ctx, workload, connections, half).await;
        let used = before.zip(gate_cpu()).map(|(b0, b1)| b1 - b0);
        let (phases, gate) = if is_a {
            (&mut first, &mut first_gate)
        } else {
            (&mut second, &mut second_gate)
        };
        phases.push(phase);
        *gate = gate.zip(used).map(|(sum, u)| sum + u);
    }
    let merged = |parts: Vec<Phase>, w: Workload| {
        Phase::merge(parts).ok_or_else(|| format!("bench: {} did not run", w.name()))
    };
    Ok((
        (merged(first, a)?, first_gate),
        (merged(second, b)?, second_gate),
    ))
}

/// Where one operation's CPU went, in µs: the mint, the gate, this process (the load's
/// client and, for the priced requests, the upstream). `None` when a reading is missing.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CpuPerOp {
    mint: f64,
    gate: f64,
    bench: f64,
}

impl CpuPerOp {
    fn of(phase: &Phase, gate_cpu: Option<f64>) -> Option<CpuPerOp> {
        let secs = phase.elapsed.as_secs_f64();
        if phase.ops == 0 || secs <= 0.0 {
            return None;
        }
        let per_op = |cpu: f64| cpu / phase.ops as f64 * 1e6;
        let servers = phase.server_cores? * secs;
        let gate = gate_cpu?;
        Some(CpuPerOp {
            mint: per_op((servers - gate).max(0.0)),
            gate: per_op(gate),
            bench: per_op(phase.client_cores? * secs),
        })
    }

    fn total(self) -> f64 {
        self.mint + self.gate + self.bench
    }
}

/// The lines that say where a redeem's and a priced request's CPU went, and what the ratio
/// would be if the machine's cores were the limit and the gate cost nothing: the mint's and
/// the load's share bound the target whatever the gate does.
fn cpu_lines(redeem: CpuPerOp, priced: CpuPerOp) -> [String; 2] {
    let mint_ratio = if redeem.mint > 0.0 {
        priced.mint / redeem.mint
    } else {
        0.0
    };
    let free_gate = priced.total() - priced.gate;
    let bound = if free_gate > 0.0 {
        redeem.total() / free_gate
    } else {
        0.0
    };
    [
        format!(
            "cpu per operation: redeem {:.0} µs (mint {:.0}, bench {:.0}); priced {:.0} µs \
             (mint {:.0} = {mint_ratio:.2} redeems, gate {:.0}, bench and upstream {:.0})",
            redeem.total(),
            redeem.mint,
            redeem.bench,
            priced.total(),
            priced.mint,
            priced.gate,
            priced.bench
        ),
        format!(
            "cpu bound: where the cores are the limit, priced/redeem is about {:.2}; with a gate \
             that cost nothing it would be {bound:.2}",
            redeem.total() / priced.total().max(1e-9)
        ),
    ]
}

async fn measure(
    plan: &Plan,
    ceilings: &Ceilings,
    target: &Target,
    upstream: &str,
    gate: &GateProcess,
) -> Result<Report, String> {
    let bases = GateBases {
        upstream: upstream.to_string(),
        gate: gate.base.clone(),
        pid: gate.child.id(),
    };
    let ctx = Ctx::connect(target, plan.connections.min(64), Some(bases)).await?;
    wait_for_ledger_check(&ctx).await?;
    let pids = ctx.server_pids.clone();

    let gate_pid = gate.child.id();
    let ((direct, _), (through, _)) = pair(
        &ctx,
        &pids,
        gate_pid,
        (Workload::Upstream, Workload::GateFree),
        1,
        plan.duration,
    )
    .await?;
    eprintln!(
        "bench: GET /page p50 {:.3} ms straight, {:.3} ms through the gate",
        direct.percentile_ms(0.5),
        through.percentile_ms(0.5)
    );
    // Both spend workloads draw on one pool of stamps: stock it for both.
    stock(&ctx, 2 * plan.stock_for(ceilings.verify_strict, 1)).await?;
    let ((redeems, redeems_gate), (priced, priced_gate)) = pair(
        &ctx,
        &pids,
        gate_pid,
        (Workload::Redeem, Workload::GatePriced),
        plan.connections,
        plan.duration,
    )
    .await?;
    eprintln!(
        "bench: redeems {:.0}/s at the mint, priced requests {:.0}/s through the gate",
        redeems.rate(),
        priced.rate()
    );

    let rows = vec![
        Row::http(
            "GET /page straight to the upstream (1 conn)",
            &direct,
            "baseline",
        ),
        Row::http(
            "GET /page through the gate, unpriced (1 conn)",
            &through,
            &ratio(through.rate(), direct.rate(), "straight"),
        ),
        Row::http("POST /v1/stamps/redeem at the mint", &redeems, "baseline"),
        Row::http(
            "POST /comments through the gate, 1 stamp",
            &priced,
            &ratio(priced.rate(), redeems.rate(), "redeem"),
        ),
    ];
    println!();
    println!(
        "pennypost bench --gate: {} s per pair of workloads, {} connections for the spends, {} cores; server cores = mint + gate",
        plan.duration.as_secs(),
        plan.connections,
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );
    println!();
    print_table(&rows);
    println!();
    for phase in [&direct, &through, &redeems, &priced] {
        if let Some(note) = phase.note() {
            println!("note: {}: {note}", phase.workload.name());
        }
    }
    let judging = Judging::of_plan(plan);
    let overhead = through.percentile_ms(0.5) - direct.percentile_ms(0.5);
    println!(
        "target: an unpriced request through the gate costs <= {UNPRICED_OVERHEAD_MAX_MS} ms more at p50 ({overhead:.3} ms more): {}",
        judging.verdict(overhead <= UNPRICED_OVERHEAD_MAX_MS)
    );
    let share = if redeems.rate() > 0.0 {
        priced.rate() / redeems.rate()
    } else {
        0.0
    };
    println!(
        "target: priced requests through the gate >= {PRICED_SHARE_MIN} of the mint's redeem rate ({share:.2}): {}",
        judging.verdict(share >= PRICED_SHARE_MIN)
    );
    if let (Some(redeem), Some(priced)) = (
        CpuPerOp::of(&redeems, redeems_gate),
        CpuPerOp::of(&priced, priced_gate),
    ) {
        for line in cpu_lines(redeem, priced) {
            println!("{line}");
        }
    }
    if plan.smoke {
        println!("note: --smoke: the target lines are informational only");
    }
    Ok(Report {
        errors: [&direct, &through, &redeems, &priced]
            .iter()
            .map(|p| p.errors)
            .sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::{cpu_lines, CpuPerOp};

    #[test]
    fn the_cpu_lines_split_each_operation_and_bound_the_ratio() {
        // The whole-machine profile of a quiet run (docs/performance.md).
        let redeem = CpuPerOp {
            mint: 95.0,
            gate: 0.0,
            bench: 39.0,
        };
        let priced = CpuPerOp {
            mint: 197.0,
            gate: 142.0,
            bench: 65.0,
        };
        let [split, bound] = cpu_lines(redeem, priced);
        assert_eq!(
            split,
            "cpu per operation: redeem 134 µs (mint 95, bench 39); priced 404 µs \
             (mint 197 = 2.07 redeems, gate 142, bench and upstream 65)"
        );
        assert_eq!(
            bound,
            "cpu bound: where the cores are the limit, priced/redeem is about 0.33; with a gate \
             that cost nothing it would be 0.51"
        );
    }
}
