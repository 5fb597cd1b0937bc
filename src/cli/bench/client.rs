//! The bench's side of HTTP: the context every client task shares ([`Ctx`]: the servers, the
//! funded accounts, the pool of unspent stamps, the payers), [`send`], and the unmeasured
//! set-up over HTTP: the funded accounts of purchases and redeems, and the payers of posts and
//! votes (`payers` holds them and their plan; this module creates, credits and buys for them).

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::payers::{Payers, VotePlan};
use super::server::Target;
use super::statistics::Commits;
use crate::api::{
    CreateAccountRequest, CreateAccountResponse, CreditRequest, PricesResponse, PurchaseRequest,
    PurchaseResponse,
};

/// Concurrent setup clients of the payers.
const SETUP_PARALLEL: usize = 64;
/// The server's largest purchase.
const PURCHASE_MAX: u64 = 1000;

/// What every client task shares.
pub(super) struct Ctx {
    pub(super) client: reqwest::Client,
    /// The first server's base URL, for set-up.
    pub(super) base: String,
    /// Every server's base URL: client task `i` sends its requests to `bases[i % len]`.
    pub(super) bases: Vec<String>,
    pub(super) admin_token: String,
    /// API keys of the funded accounts; task `i` buys with account `i % len`.
    pub(super) accounts: Vec<String>,
    pub(super) stamp_price: u64,
    pub(super) post_cost: usize,
    pub(super) vote_cost: usize,
    /// Unspent stamps.
    pub(super) pool: Mutex<Vec<String>>,
    /// Stamps still to buy in the current pre-buy.
    pub(super) stock_left: AtomicI64,
    /// The payers of posts and votes, and the posts made.
    pub(super) payers: Payers,
    /// The servers' process ids, to read the CPU time they use.
    pub(super) server_pids: Vec<u32>,
    /// The servers' Prometheus metrics URLs, when they serve them (`--database` runs).
    pub(super) metrics: Vec<String>,
    /// The postmaster of the local PostgreSQL cluster, whose CPU use is measured too.
    pub(super) postmaster: Option<u32>,
    /// With `--gate`: the upstream and the gate in front of it.
    pub(super) gate: Option<GateBases>,
}

/// Where a `--gate` run's requests go besides the mint.
pub(super) struct GateBases {
    /// The bench's own upstream, straight.
    pub(super) upstream: String,
    /// `pennypost gate` in front of it.
    pub(super) gate: String,
    /// The gate's process, whose CPU use is counted with the servers'.
    pub(super) pid: Option<u32>,
}

impl Ctx {
    /// Connects to the target's servers: reads the prices, and creates and funds `accounts`
    /// accounts (through the first server: the others share its store). With `gate`, the
    /// gate's workloads can run too.
    pub(super) async fn connect(
        target: &Target,
        accounts: usize,
        gate: Option<GateBases>,
    ) -> Result<Arc<Ctx>, String> {
        let server = target.first();
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(usize::MAX)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let base = server.base.clone();
        let prices: PricesResponse = serde_json::from_slice(
            &send(client.get(format!("{base}/v1/prices")))
                .await
                .map_err(|e| format!("GET /v1/prices: {e}"))?,
        )
        .map_err(|e| format!("GET /v1/prices: {e}"))?;
        let accounts = create_accounts(
            &client,
            &base,
            &server.admin_token,
            accounts,
            prices.stamp_price,
        )
        .await?;
        Ok(Arc::new(Ctx {
            client,
            base,
            bases: target.servers.iter().map(|s| s.base.clone()).collect(),
            admin_token: server.admin_token.clone(),
            accounts,
            stamp_price: prices.stamp_price,
            post_cost: prices.costs.post,
            vote_cost: prices.costs.vote,
            pool: Mutex::new(Vec::new()),
            stock_left: AtomicI64::new(0),
            payers: Payers::default(),
            server_pids: target
                .pids()
                .into_iter()
                .chain(gate.as_ref().and_then(|g| g.pid))
                .collect(),
            metrics: target
                .servers
                .iter()
                .filter_map(|s| s.metrics.clone())
                .collect(),
            postmaster: target.postmaster,
            gate,
        }))
    }

    /// The group commits of the servers' writers so far (added up), from their metrics;
    /// `None` when they serve none or one could not be read.
    pub(super) async fn commits(&self) -> Option<Commits> {
        if self.metrics.is_empty() {
            return None;
        }
        let mut all = Commits::default();
        for url in &self.metrics {
            let body = send(self.client.get(url)).await.ok()?;
            let text = String::from_utf8_lossy(&body);
            let value = |name: &str| -> Option<f64> {
                text.lines().find_map(|line| {
                    let rest = line.strip_prefix(name)?;
                    rest.strip_prefix(' ')?.trim().parse().ok()
                })
            };
            // A writer that has committed nothing yet has no such lines.
            all.batches += value("pennypost_commit_batch_size_count").unwrap_or(0.0);
            all.commands += value("pennypost_commit_batch_size_sum").unwrap_or(0.0);
        }
        Some(all)
    }

    /// The base URL client task `worker` sends to.
    pub(super) fn base_for(&self, worker: usize) -> &str {
        match self.bases.len() {
            0 => &self.base,
            n => &self.bases[worker % n],
        }
    }

    pub(super) fn take_stamps(&self, count: usize) -> Option<Vec<String>> {
        let mut pool = self.pool.lock().ok()?;
        if pool.len() < count {
            return None;
        }
        let at = pool.len() - count;
        Some(pool.split_off(at))
    }

    pub(super) fn add_stamps(&self, stamps: Vec<String>) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.extend(stamps);
        }
    }

    /// Swaps the pool of unspent stamps for `stamps`, returning the old pool.
    pub(super) fn replace_pool(&self, stamps: Vec<String>) -> Vec<String> {
        match self.pool.lock() {
            Ok(mut pool) => std::mem::replace(&mut *pool, stamps),
            Err(_) => Vec::new(),
        }
    }

    pub(super) fn pool_len(&self) -> usize {
        self.pool.lock().map(|p| p.len()).unwrap_or(0)
    }
}

/// Waits until the server's own ledger checker has caught up with the log (its first
/// `/v1/audit` answer). On a big log that catch-up takes a core for a while after start-up
/// (about 25 s at 10M entries), and would otherwise be measured as part of the workloads.
pub(super) async fn wait_for_ledger_check(ctx: &Ctx) -> Result<(), String> {
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

/// Sends a request and reads the whole answer; a transport error or a non-2xx status is an
/// error.
pub(super) async fn send(request: reqwest::RequestBuilder) -> Result<bytes::Bytes, String> {
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
            let body = send(client.post(format!("{base}/v1/accounts")).json(
                &CreateAccountRequest {
                    name: Some(format!("bench-{i}")),
                },
            ))
            .await
            .map_err(|e| format!("POST /v1/accounts: {e}"))?;
            let created: CreateAccountResponse =
                serde_json::from_slice(&body).map_err(|e| format!("POST /v1/accounts: {e}"))?;
            send(
                client
                    .post(format!(
                        "{base}/v1/admin/accounts/{}/credit",
                        created.account_id
                    ))
                    .bearer_auth(&admin)
                    .json(&CreditRequest {
                        amount,
                        reference: format!("bench-{}", created.account_id),
                    }),
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

/// Sets up `count` post payers, each holding the `post_cost` stamps of one post, replacing any
/// left from before.
pub(super) async fn provision_posters(ctx: &Arc<Ctx>, count: usize) -> Result<(), String> {
    let started = std::time::Instant::now();
    let stamps = provision(ctx, count, ctx.post_cost as u64).await?;
    ctx.payers.set_posters(stamps);
    eprintln!(
        "bench: set up {count} post payers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Spreads `votes` votes over the posts made so far (`VotePlan::new`), and sets up the voting
/// payers with the stamps of their share.
pub(super) async fn provision_voters(
    ctx: &Arc<Ctx>,
    voters: usize,
    votes: u64,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let (plan, per_voter) = VotePlan::new(ctx.payers.posts(), voters, votes);
    let used = plan.voters();
    let stamps = provision(ctx, used, per_voter.saturating_mul(ctx.vote_cost as u64)).await?;
    eprintln!(
        "bench: set up {used} voting payers in {:.1} s ({} votes per post, on up to {} posts)",
        started.elapsed().as_secs_f64(),
        plan.per_post(),
        plan.posts()
    );
    ctx.payers.set_voters(stamps, plan);
    Ok(())
}

/// Creates `count` accounts in parallel, credits each with the price of `stamps_each` stamps
/// and buys them; returns each account's stamps.
async fn provision(
    ctx: &Arc<Ctx>,
    count: usize,
    stamps_each: u64,
) -> Result<Vec<Vec<String>>, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..SETUP_PARALLEL.min(count) {
        let ctx = ctx.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut made = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                made.push(new_payer(&ctx, stamps_each).await?);
            }
            Ok::<_, String>(made)
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.map_err(|e| format!("setup task failed: {e}"))??);
    }
    Ok(all)
}

/// One payer: an unnamed account, credited with exactly the price of `stamps` stamps, which
/// it then buys.
async fn new_payer(ctx: &Ctx, stamps: u64) -> Result<Vec<String>, String> {
    let body = send(
        ctx.client
            .post(format!("{}/v1/accounts", ctx.base))
            .json(&CreateAccountRequest { name: None }),
    )
    .await
    .map_err(|e| format!("POST /v1/accounts: {e}"))?;
    let created: CreateAccountResponse =
        serde_json::from_slice(&body).map_err(|e| format!("POST /v1/accounts: {e}"))?;
    let amount = stamps.saturating_mul(ctx.stamp_price).max(1);
    send(
        ctx.client
            .post(format!(
                "{}/v1/admin/accounts/{}/credit",
                ctx.base, created.account_id
            ))
            .bearer_auth(&ctx.admin_token)
            .json(&CreditRequest {
                amount,
                reference: format!("bench-payer-{}", created.account_id),
            }),
    )
    .await
    .map_err(|e| format!("credit: {e}"))?;
    let mut bought = Vec::with_capacity(usize::try_from(stamps).unwrap_or(0));
    let mut left = stamps;
    while left > 0 {
        let count = left.min(PURCHASE_MAX);
        let body = send(
            ctx.client
                .post(format!("{}/v1/stamps/purchase", ctx.base))
                .bearer_auth(&created.api_key)
                .json(&PurchaseRequest { count }),
        )
        .await
        .map_err(|e| format!("purchase: {e}"))?;
        let purchased: PurchaseResponse =
            serde_json::from_slice(&body).map_err(|e| format!("purchase answer: {e}"))?;
        bought.extend(purchased.stamps);
        left -= count;
    }
    Ok(bought)
}
