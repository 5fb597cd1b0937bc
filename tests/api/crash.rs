//! Crash loop: clients buy, post, vote and redeem while the server is SIGKILLed at random
//! moments and restarted on the same data. After every cycle: every acknowledged change is
//! present, no stamp is spent twice, balances equal credits minus purchases, the ledger's
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

use crate::helpers::TestServer;

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

/// What the clients saw acknowledged (2xx), and what was in flight when the server died.
#[derive(Default, Clone)]
struct Acked {
    /// Stamps bought and not yet used, per wallet.
    wallets: HashMap<usize, Vec<String>>,
    /// Stamp ids whose spend was acknowledged.
    spent: HashSet<String>,
    /// Posts acknowledged, with the net score of acknowledged votes.
    posts: HashMap<String, i64>,
    /// Votes sent but not answered (may or may not have happened), per post.
    votes_in_doubt: HashMap<String, i64>,
    changes: u64,
}

struct Account {
    id: String,
    key: String,
}

async fn client_loop(
    base: String,
    client: reqwest::Client,
    wallet: usize,
    account: Arc<Account>,
    acked: Arc<Mutex<Acked>>,
    seed: u64,
) {
    // splitmix64 of the seed: client seeds come from one xorshift sequence, and without mixing
    // every client would replay a shifted copy of the others' choices.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let mut rng = Rng((z ^ (z >> 31)) | 1);
    loop {
        let choice = rng.below(10);
        let have = acked
            .lock()
            .map(|a| a.wallets.get(&wallet).map_or(0, Vec::len))
            .unwrap_or(0);
        let result = if choice < 3 || have < 2 {
            // Fresh keys: a key reused by a later request would (rightly) replay old stamps.
            let key = uuid::Uuid::new_v4().to_string();
            let response = client
                .post(format!("{base}/v1/stamps/purchase"))
                .bearer_auth(&account.key)
                .header("Idempotency-Key", key)
                .json(&json!({"count": 1 + rng.below(5)}))
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
                    let mut a = acked.lock().expect("lock");
                    a.wallets.entry(wallet).or_default().extend(stamps);
                    a.changes += 1;
                    Ok(())
                }
                Ok(r) if r.status().as_u16() == 402 => Ok(()),
                Ok(r) => Err(format!("purchase answered {}", r.status())),
                Err(_) => return,
            }
        } else {
            let stamp = {
                let mut a = acked.lock().expect("lock");
                a.wallets.get_mut(&wallet).and_then(Vec::pop)
            };
            let Some(stamp) = stamp else { continue };
            let post_ids: Vec<String> = acked
                .lock()
                .map(|a| a.posts.keys().cloned().collect())
                .unwrap_or_default();
            let (path, body, vote) = if choice < 6 || post_ids.is_empty() {
                (
                    "/v1/posts".to_string(),
                    json!({"author": format!("w{wallet}"), "body": "crash loop", "stamps": [stamp]}),
                    None,
                )
            } else if choice < 8 {
                let post = post_ids[rng.below(post_ids.len() as u64) as usize].clone();
                let up = rng.below(2) == 0;
                let direction = if up { "up" } else { "down" };
                (
                    format!("/v1/posts/{post}/votes"),
                    json!({"direction": direction, "stamps": [stamp]}),
                    Some((post, if up { 1i64 } else { -1i64 })),
                )
            } else {
                (
                    "/v1/stamps/redeem".to_string(),
                    json!({"stamp": stamp, "context": format!("crash/{}", uuid::Uuid::new_v4())}),
                    None,
                )
            };
            if let Some((post, delta)) = &vote {
                let mut a = acked.lock().expect("lock");
                *a.votes_in_doubt.entry(post.clone()).or_default() += delta.abs();
            }
            let response = client
                .post(format!("{base}{path}"))
                .json(&body)
                .send()
                .await;
            let Ok(response) = response else { return };
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            let id = stamp_id(&stamp);
            let acknowledged = {
                let mut a = acked.lock().expect("lock");
                if let Some((post, delta)) = &vote {
                    *a.votes_in_doubt.entry(post.clone()).or_default() -= delta.abs();
                }
                if status == 201 {
                    a.spent.insert(id.clone());
                    a.changes += 1;
                    if path == "/v1/posts" {
                        if let Some(post) = answer["post_id"].as_str() {
                            a.posts.insert(post.to_string(), 0);
                        }
                    } else if let Some((post, delta)) = vote {
                        *a.posts.entry(post).or_default() += delta;
                    }
                }
                status == 201
            };
            if acknowledged {
                Ok(())
            } else {
                // Say what the server knows of the stamp, to tell a bug from a test mistake.
                let record = match client.get(format!("{base}/v1/stamps/{id}")).send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                Err(format!(
                    "{path} answered {status}: {answer}; we sent {body}; stamp record: {record}"
                ))
            }
        };
        if let Err(e) = result {
            // Only a crash may interrupt a client; any other failure is a bug.
            panic!("client {wallet}: {e}");
        }
    }
}

/// The stamp id of a stamp text, read from its payload (bytes 9..25).
fn stamp_id(stamp: &str) -> String {
    use base64::Engine as _;
    let payload = stamp.split('.').nth(1).unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    uuid::Uuid::from_slice(bytes.get(9..25).unwrap_or(&[0; 16]))
        .map(|u| u.to_string())
        .unwrap_or_default()
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
    for (post, score) in &acked.posts {
        let (status, body) = server.get(&format!("/v1/posts/{post}")).await;
        assert_eq!(status, 200, "acknowledged post {post} lost: {body}");
        let doubt = acked.votes_in_doubt.get(post).copied().unwrap_or(0);
        let actual = body["score"].as_i64().expect("score");
        assert!(
            (actual - score).abs() <= doubt,
            "post {post}: score {actual}, acknowledged {score}, in doubt {doubt}"
        );
    }
    let (status, audit) = server.get("/v1/audit").await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["ok"], true, "server audit: {audit}");
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
        balances += body["balance"].as_u64().expect("balance");
    }
    let credits = audit["credits_total"].as_u64().expect("credits");
    let purchases = audit["purchases_total"].as_u64().expect("purchases");
    assert_eq!(
        balances,
        credits - purchases,
        "balances != credits - purchases: {audit}"
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

async fn crash_loop(cycles: u64) {
    let seed = std::env::var("PENNYPOST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 * 2_654_435_761);
    println!("crash loop: seed {seed}, {cycles} cycles");
    let mut rng = Rng(seed | 1);
    let mut server = TestServer::start_with(&["--rate-purchases-per-minute", "0"]).await;
    let state = server.work_dir().join("audit-state.json");
    let clients = 6;
    let mut accounts = Vec::new();
    for i in 0..clients {
        let (id, key) = server.account().await;
        let (status, body) = server
            .credit(&id, 1_000_000, &format!("crash-credit-{i}"))
            .await;
        assert_eq!(status, 200, "{body}");
        accounts.push(Arc::new(Account { id, key }));
    }
    let acked = Arc::new(Mutex::new(Acked::default()));
    for cycle in 0..cycles {
        let mut tasks = Vec::new();
        for (i, account) in accounts.iter().enumerate() {
            tasks.push(tokio::spawn(client_loop(
                server.base_url.clone(),
                server.client.clone(),
                i,
                account.clone(),
                acked.clone(),
                rng.next(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(100 + rng.below(500))).await;
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
                "cycle {}: {} acknowledged changes, {} stamps spent, {} posts; violations: 0",
                cycle + 1,
                a.changes,
                a.spent.len(),
                a.posts.len()
            );
        }
    }
    let a = acked.lock().expect("lock");
    assert!(
        a.changes > cycles,
        "the clients made progress: {}",
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
