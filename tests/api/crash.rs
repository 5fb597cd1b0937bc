//! Crash loop: clients buy, post, vote and redeem while the server is SIGKILLed at random
//! moments and restarted on the same data, under the default policy (flood-priced posts,
//! quadratic votes, refunds after three up-voting payers). Each client pays several payers'
//! posts and votes at the prices `POST /v1/quote` gives, and up-votes others' posts so that
//! refunds happen. After every cycle: every acknowledged change is present, no stamp is spent
//! twice, every acknowledged refund is in the ledger exactly once, right after the spend of the
//! vote that completed it, no refund stands without such a vote and no post is refunded twice,
//! each account's balance is its credits minus its purchases plus its refunds, the ledger's
//! invariants hold (`GET /v1/audit` and the independent `pennypost audit`), and the new
//! checkpoint is consistent with the last one seen (the auditor's state file).
//!
//! `crash_loop_short` runs 3 cycles in the default suite; `crash_loop_long` (ignored) runs
//! `PENNYPOST_CRASH_CYCLES` cycles (default 100): `cargo test --test api crash_loop_long --
//! --ignored --nocapture`.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{stamp_id, TestServer};

/// Payers (accounts) each client pays with.
const PAYERS_PER_CLIENT: usize = 3;
/// Dearest post a client pays for (the fourth of one payer within the flood window); a dearer
/// one is skipped for a redeem.
const POST_PRICE_MAX: u64 = 8;
/// Dearest vote a client pays for (one payer's third vote on one post).
const VOTE_PRICE_MAX: u64 = 5;
/// The longest a burst waits for the clients' progress (see [`burst`]) before the kill.
const BURST_MAX: Duration = Duration::from_secs(30);

/// Cheap deterministic randomness (xorshift), seeded per run, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A post whose creation was acknowledged.
#[derive(Clone)]
struct AckedPost {
    /// Net score of its acknowledged votes.
    score: i64,
    /// Index (into the accounts) of the payer of its stamps.
    payer: usize,
}

/// A refund a vote's answer acknowledged.
#[derive(Clone)]
struct AckedRefund {
    post_id: String,
    vote_index: u64,
    refund_index: u64,
}

/// What the clients saw acknowledged (2xx), and what was in flight when the server died.
#[derive(Default, Clone)]
struct Acked {
    /// Stamps bought and not yet used, per payer (account index).
    wallets: HashMap<usize, Vec<String>>,
    /// Stamp ids whose spend was acknowledged.
    spent: HashSet<String>,
    posts: HashMap<String, AckedPost>,
    /// Post ids in the order they were acknowledged (recent ones get most votes).
    post_order: Vec<String>,
    /// Votes sent but not answered (may or may not have happened), per post.
    votes_in_doubt: HashMap<String, i64>,
    /// (payer, post) of every vote sent, answered or not.
    voted: HashSet<(usize, String)>,
    refunds: Vec<AckedRefund>,
    changes: u64,
}

struct Account {
    id: String,
    key: String,
}

/// How one client step ended.
enum Flow {
    Continue,
    /// A request failed in transport: the server was killed.
    Died,
}

/// One client: `payers` are the indexes of its accounts.
struct Client {
    base: String,
    http: reqwest::Client,
    name: usize,
    payers: Vec<usize>,
    accounts: Arc<Vec<Arc<Account>>>,
    acked: Arc<Mutex<Acked>>,
    rng: Rng,
}

impl Client {
    fn lock(&self) -> std::sync::MutexGuard<'_, Acked> {
        self.acked.lock().expect("lock")
    }

    fn wallet_len(&self, payer: usize) -> usize {
        self.lock().wallets.get(&payer).map_or(0, Vec::len)
    }

    fn take(&self, payer: usize, count: u64) -> Vec<String> {
        let mut a = self.lock();
        let wallet = a.wallets.entry(payer).or_default();
        let at = wallet.len().saturating_sub(count as usize);
        wallet.split_off(at)
    }

    async fn run(mut self) {
        loop {
            let payer = self.payers[self.rng.below(self.payers.len() as u64) as usize];
            let choice = self.rng.below(10);
            let flow = if choice < 2 || self.wallet_len(payer) == 0 {
                let count = 1 + self.rng.below(5);
                self.buy(payer, count).await
            } else if choice < 4 {
                self.post(payer).await
            } else if choice < 8 {
                self.vote(payer).await
            } else {
                self.redeem(payer).await
            };
            match flow {
                Ok(Flow::Continue) => {}
                Ok(Flow::Died) => return,
                // Only a crash may interrupt a client; any other failure is a bug.
                Err(e) => panic!("client {}: {e}", self.name),
            }
        }
    }

    async fn buy(&mut self, payer: usize, count: u64) -> Result<Flow, String> {
        // Fresh keys: a key reused by a later request would (rightly) replay old stamps.
        let key = uuid::Uuid::new_v4().to_string();
        let response = self
            .http
            .post(format!("{}/v1/stamps/purchase", self.base))
            .bearer_auth(&self.accounts[payer].key)
            .header("Idempotency-Key", key)
            .json(&json!({ "count": count }))
            .send()
            .await;
        match response {
            Ok(r) if r.status().as_u16() == 201 => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let stamps: Vec<String> = body["stamps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect();
                let mut a = self.lock();
                a.wallets.entry(payer).or_default().extend(stamps);
                a.changes += 1;
                Ok(Flow::Continue)
            }
            Ok(r) if r.status().as_u16() == 402 => Ok(Flow::Continue),
            Ok(r) => Err(format!("purchase answered {}", r.status())),
            Err(_) => Ok(Flow::Died),
        }
    }

    /// `POST /v1/quote` as `payer`: `Ok(None)` when the server died.
    async fn quote(&self, payer: usize, body: Value) -> Result<Option<u64>, String> {
        let response = self
            .http
            .post(format!("{}/v1/quote", self.base))
            .bearer_auth(&self.accounts[payer].key)
            .json(&body)
            .send()
            .await;
        let Ok(response) = response else {
            return Ok(None);
        };
        let status = response.status().as_u16();
        let Ok(answer) = response.json::<Value>().await else {
            return Ok(None);
        };
        match answer["stamps"].as_u64() {
            Some(price) if status == 200 => Ok(Some(price)),
            _ => Err(format!("quote {body} answered {status}: {answer}")),
        }
    }

    /// Sends a spend; `Ok(None)` when the server died, else the status and answer.
    async fn spend(&self, path: &str, body: &Value) -> Option<(u16, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let answer = response.json().await.unwrap_or(Value::Null);
        Some((status, answer))
    }

    /// What the server knows of the stamps of a refused spend, to tell a bug from a test
    /// mistake.
    async fn refused(&self, what: &str, status: u16, answer: &Value, stamps: &[String]) -> String {
        let mut records = Vec::new();
        for stamp in stamps {
            let id = stamp_id(stamp);
            let record = match self
                .http
                .get(format!("{}/v1/stamps/{id}", self.base))
                .send()
                .await
            {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            records.push(record);
        }
        format!("{what} answered {status}: {answer}; stamp records: {records:?}")
    }

    async fn post(&mut self, payer: usize) -> Result<Flow, String> {
        let Some(price) = self.quote(payer, json!({"action": "post"})).await? else {
            return Ok(Flow::Died);
        };
        if price > POST_PRICE_MAX {
            return self.redeem(payer).await;
        }
        let have = self.wallet_len(payer) as u64;
        if have < price {
            let extra = self.rng.below(3);
            return self.buy(payer, price - have + extra).await;
        }
        let stamps = self.take(payer, price);
        let body =
            json!({"author": format!("w{}", self.name), "body": "crash loop", "stamps": stamps});
        let Some((status, answer)) = self.spend("/v1/posts", &body).await else {
            return Ok(Flow::Died);
        };
        if status == 201 {
            let post_id = answer["post_id"].as_str().unwrap_or_default().to_string();
            let mut a = self.lock();
            a.spent.extend(stamps.iter().map(|s| stamp_id(s)));
            a.posts
                .insert(post_id.clone(), AckedPost { score: 0, payer });
            a.post_order.push(post_id);
            a.changes += 1;
            return Ok(Flow::Continue);
        }
        // The flood window may have moved on between the quote and the post (a post of this
        // payer left it): then the price fell, the server says the new one, the quote agrees,
        // and the refused post spent nothing.
        if status == 422 && answer["code"] == "wrong_stamp_count" {
            let Some(now) = self.quote(payer, json!({"action": "post"})).await? else {
                return Ok(Flow::Died);
            };
            if now != price && answer["required"].as_u64() == Some(now) {
                self.lock().wallets.entry(payer).or_default().extend(stamps);
                return Ok(Flow::Continue);
            }
        }
        Err(self.refused("post", status, &answer, &stamps).await)
    }

    /// A post of another payer to vote on: mostly the oldest that is not known to be refunded
    /// and that this payer has not voted on (its first vote: so the posts gather distinct
    /// up-voters one after the other, and refunds happen), otherwise any (a repeated vote
    /// costs 3, then 5).
    fn vote_target(&mut self, payer: usize) -> Option<String> {
        let fresh = self.rng.below(10) < 7;
        let pick = self.rng.next();
        let a = self.lock();
        let others: Vec<&String> = a
            .post_order
            .iter()
            .filter(|p| a.posts.get(*p).is_some_and(|info| info.payer != payer))
            .collect();
        if fresh {
            let refunded: HashSet<&str> = a.refunds.iter().map(|r| r.post_id.as_str()).collect();
            if let Some(post) = others.iter().find(|p| {
                !refunded.contains(p.as_str()) && !a.voted.contains(&(payer, (**p).clone()))
            }) {
                return Some((*post).clone());
            }
        }
        if others.is_empty() {
            return None;
        }
        Some(others[(pick % others.len() as u64) as usize].clone())
    }

    async fn vote(&mut self, payer: usize) -> Result<Flow, String> {
        let Some(post_id) = self.vote_target(payer) else {
            return self.post(payer).await;
        };
        let up = self.rng.below(4) != 0;
        let quote = json!({"action": "vote", "post_id": post_id});
        let Some(price) = self.quote(payer, quote).await? else {
            return Ok(Flow::Died);
        };
        if price > VOTE_PRICE_MAX {
            return self.redeem(payer).await;
        }
        let have = self.wallet_len(payer) as u64;
        if have < price {
            return self.buy(payer, price - have).await;
        }
        let stamps = self.take(payer, price);
        let direction = if up { "up" } else { "down" };
        let delta = if up { 1i64 } else { -1 };
        {
            let mut a = self.lock();
            *a.votes_in_doubt.entry(post_id.clone()).or_default() += 1;
            a.voted.insert((payer, post_id.clone()));
        }
        let body = json!({"direction": direction, "stamps": stamps});
        let answer = self
            .spend(&format!("/v1/posts/{post_id}/votes"), &body)
            .await;
        let Some((status, answer)) = answer else {
            return Ok(Flow::Died);
        };
        {
            let mut a = self.lock();
            *a.votes_in_doubt.entry(post_id.clone()).or_default() -= 1;
            if status == 201 {
                a.spent.extend(stamps.iter().map(|s| stamp_id(s)));
                if let Some(post) = a.posts.get_mut(&post_id) {
                    post.score += delta;
                }
                if let Some(refund_index) = answer["refund_ledger_index"].as_u64() {
                    let vote_index = answer["ledger_index"].as_u64().unwrap_or(u64::MAX);
                    a.refunds.push(AckedRefund {
                        post_id: post_id.clone(),
                        vote_index,
                        refund_index,
                    });
                }
                a.changes += 1;
                return Ok(Flow::Continue);
            }
        }
        Err(self.refused("vote", status, &answer, &stamps).await)
    }

    async fn redeem(&mut self, payer: usize) -> Result<Flow, String> {
        let stamps = self.take(payer, 1);
        if stamps.is_empty() {
            return Ok(Flow::Continue);
        }
        let body =
            json!({"stamp": stamps[0], "context": format!("crash/{}", uuid::Uuid::new_v4())});
        let Some((status, answer)) = self.spend("/v1/stamps/redeem", &body).await else {
            return Ok(Flow::Died);
        };
        if status == 201 {
            let mut a = self.lock();
            a.spent.insert(stamp_id(&stamps[0]));
            a.changes += 1;
            return Ok(Flow::Continue);
        }
        Err(self.refused("redeem", status, &answer, &stamps).await)
    }
}

/// Every ledger entry, read page by page.
async fn ledger(server: &TestServer) -> Vec<Value> {
    let mut entries = Vec::new();
    loop {
        let path = format!("/v1/ledger/entries?start={}&limit=1000", entries.len());
        let (status, text) = server.get_text(&path).await;
        assert_eq!(status, 200, "{text}");
        let before = entries.len();
        entries.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("an entry")),
        );
        if entries.len() == before {
            return entries;
        }
    }
}

/// Checks the refunds in the ledger against what was acknowledged, and returns each
/// account's credits − purchases + refunds and refunds, as the ledger has them.
fn check_refunds(
    entries: &[Value],
    acked: &Acked,
    accounts: &[Arc<Account>],
) -> HashMap<String, (i128, u64)> {
    let mut money: HashMap<String, (i128, u64)> = HashMap::new();
    let mut refunded: HashMap<String, u64> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["index"], i as u64, "entry {i} has another index");
        let account = entry["account"].as_str().unwrap_or_default().to_string();
        match entry["kind"].as_str() {
            Some("credit") => {
                money.entry(account).or_default().0 +=
                    i128::from(entry["amount"].as_u64().expect("amount"));
            }
            Some("purchase") => {
                money.entry(account).or_default().0 -=
                    i128::from(entry["total"].as_u64().expect("total"));
            }
            Some("refund") => {
                let amount = entry["amount"].as_u64().expect("amount");
                let slot = money.entry(account).or_default();
                slot.0 += i128::from(amount);
                slot.1 += amount;
                let post = entry["post_id"].as_str().expect("post_id").to_string();
                // Never without its vote: the entry right before is an up-vote of the post.
                let vote = i.checked_sub(1).map(|v| &entries[v]);
                assert!(
                    vote.is_some_and(|v| v["kind"] == "spend"
                        && v["action"] == "vote"
                        && v["direction"] == "up"
                        && v["target"] == post.as_str()),
                    "refund {entry} does not follow an up-vote of its post: {vote:?}"
                );
                if let Some(earlier) = refunded.insert(post.clone(), i as u64) {
                    panic!("post {post} refunded twice: entries {earlier} and {i}");
                }
            }
            _ => {}
        }
    }
    for refund in &acked.refunds {
        // Exactly once, at the index its vote's answer gave, right after that vote.
        assert_eq!(
            refunded.get(&refund.post_id),
            Some(&refund.refund_index),
            "acknowledged refund of {} (entry {}) is not in the ledger once",
            refund.post_id,
            refund.refund_index
        );
        assert_eq!(
            refund.vote_index + 1,
            refund.refund_index,
            "refund of {} is not right after its vote",
            refund.post_id
        );
        let payer = acked.posts[&refund.post_id].payer;
        let entry = &entries[refund.refund_index as usize];
        assert_eq!(
            entry["account"],
            accounts[payer].id.as_str(),
            "refund of {} goes to another account than its payer: {entry}",
            refund.post_id
        );
    }
    money
}

async fn check_after_restart(
    server: &TestServer,
    acked: &Acked,
    accounts: &[Arc<Account>],
    state: &std::path::Path,
) {
    for id in &acked.spent {
        let (status, body) = server.get(&format!("/v1/stamps/{id}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["state"], "spent",
            "acknowledged spend of {id} lost: {body}"
        );
    }
    let refunded_posts: HashSet<&str> = acked.refunds.iter().map(|r| r.post_id.as_str()).collect();
    for (post, info) in &acked.posts {
        let (status, body) = server.get(&format!("/v1/posts/{post}")).await;
        assert_eq!(status, 200, "acknowledged post {post} lost: {body}");
        let doubt = acked.votes_in_doubt.get(post).copied().unwrap_or(0);
        let actual = body["score"].as_i64().expect("score");
        assert!(
            (actual - info.score).abs() <= doubt,
            "post {post}: score {actual}, acknowledged {}, in doubt {doubt}",
            info.score
        );
        if refunded_posts.contains(post.as_str()) {
            assert_eq!(body["refunded"], true, "acknowledged refund lost: {body}");
        }
    }
    let (status, audit) = server.get("/v1/audit").await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["ok"], true, "server audit: {audit}");
    let entries = ledger(server).await;
    let money = check_refunds(&entries, acked, accounts);
    let mut balances = 0u64;
    for account in accounts {
        let response = server
            .client
            .get(server.url("/v1/account"))
            .bearer_auth(&account.key)
            .send()
            .await
            .expect("account");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["account_id"], account.id.as_str(), "{body}");
        let balance = body["balance"].as_u64().expect("balance");
        let (net, refunds) = money.get(&account.id).copied().unwrap_or_default();
        assert_eq!(
            i128::from(balance),
            net,
            "balance of {} != its credits - purchases + refunds in the ledger: {body}",
            account.id
        );
        assert_eq!(body["refunds_total"], refunds, "{body}");
        balances += balance;
    }
    let credits = audit["credits_total"].as_u64().expect("credits");
    let purchases = audit["purchases_total"].as_u64().expect("purchases");
    let refunds = audit["refunds_total"].as_u64().expect("refunds");
    assert_eq!(
        balances,
        credits - purchases + refunds,
        "balances != credits - purchases + refunds: {audit}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(["audit", "--quiet", "--server", &server.base_url, "--state"])
        .arg(state)
        .output()
        .expect("audit");
    assert!(
        output.status.success(),
        "pennypost audit failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Lets the clients run until a random moment to kill the server: 100–600 ms, and not before
/// they made 10–30 acknowledged changes in this burst, nor, in the last cycle, before some
/// refund was acknowledged (the loop is there to crash through refunds too). What a store
/// acknowledges in a given time depends on the machine and the backend (PostgreSQL, a half to
/// a quarter of what sled does here), and a fixed time alone left too few changes for a refund
/// on a busy machine. Bounded by [`BURST_MAX`]: clients that make no progress still get killed,
/// and the checks after the restart tell why.
async fn burst(rng: &mut Rng, acked: &Mutex<Acked>, last: bool) {
    let started = std::time::Instant::now();
    let changes_before = acked.lock().expect("lock").changes;
    let progress = 10 + rng.below(21);
    tokio::time::sleep(Duration::from_millis(100 + rng.below(500))).await;
    loop {
        let enough = {
            let a = acked.lock().expect("lock");
            a.changes >= changes_before + progress && (!last || !a.refunds.is_empty())
        };
        if enough || started.elapsed() > BURST_MAX {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1 + rng.below(20))).await;
    }
}

async fn crash_loop(cycles: u64) {
    let seed = std::env::var("PENNYPOST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 * 2_654_435_761);
    println!("crash loop: seed {seed}, {cycles} cycles");
    let mut rng = Rng(seed | 1);
    let mut server = TestServer::start_priced(&["--rate-purchases-per-minute", "0"]).await;
    let state = server.work_dir().join("audit-state.json");
    let clients = 6;
    let mut accounts = Vec::new();
    for i in 0..clients * PAYERS_PER_CLIENT {
        let (id, key) = server.account().await;
        let (status, body) = server
            .credit(&id, 1_000_000, &format!("crash-credit-{i}"))
            .await;
        assert_eq!(status, 200, "{body}");
        accounts.push(Arc::new(Account { id, key }));
    }
    let accounts = Arc::new(accounts);
    let acked = Arc::new(Mutex::new(Acked::default()));
    for cycle in 0..cycles {
        let mut tasks = Vec::new();
        for i in 0..clients {
            // splitmix64 of the seed: client seeds come from one xorshift sequence, and without
            // mixing every client would replay a shifted copy of the others' choices.
            let mut z = rng.next().wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let client = Client {
                base: server.base_url.clone(),
                http: server.client.clone(),
                name: i,
                payers: (i * PAYERS_PER_CLIENT..(i + 1) * PAYERS_PER_CLIENT).collect(),
                accounts: accounts.clone(),
                acked: acked.clone(),
                rng: Rng((z ^ (z >> 31)) | 1),
            };
            tasks.push(tokio::spawn(client.run()));
        }
        burst(&mut rng, &acked, cycle + 1 == cycles).await;
        server.kill();
        for task in tasks {
            if let Err(e) = task.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
        server.restart();
        let a = acked.lock().expect("lock").clone();
        check_after_restart(&server, &a, &accounts, &state).await;
        if cycle % 10 == 9 || cycle + 1 == cycles {
            println!(
                "cycle {}: {} acknowledged changes, {} stamps spent, {} posts, {} refunds acknowledged; violations: 0",
                cycle + 1,
                a.changes,
                a.spent.len(),
                a.posts.len(),
                a.refunds.len()
            );
        }
    }
    let a = acked.lock().expect("lock");
    assert!(
        a.changes > cycles,
        "the clients made progress: {}",
        a.changes
    );
    assert!(
        !a.refunds.is_empty(),
        "no vote completed a refund in {} changes",
        a.changes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_short() {
    crash_loop(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 100 crash cycles; run with --ignored"]
async fn crash_loop_long() {
    let cycles = std::env::var("PENNYPOST_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    crash_loop(cycles).await;
}
