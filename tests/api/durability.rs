//! What was acknowledged survives: a restart keeps balances, spent stamps, idempotency records,
//! keys and the ledger; a SIGKILL in the middle of a burst of redeems loses no acknowledged
//! spend; SIGTERM exits cleanly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, own_database, stamp_id, strings, with_store, TestServer, ADMIN_TOKEN,
};
use crate::pg;
use crate::serve::{self, serve_command};

/// The origin, size and root lines of a checkpoint (not its signature lines).
fn checkpoint_body(note: &str) -> Vec<String> {
    note.lines().take(3).map(str::to_string).collect()
}

fn spend_entries(ledger: &str) -> Vec<Value> {
    ledger
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("entry json"))
        .filter(|e| e["kind"] == "spend")
        .collect()
}

#[tokio::test]
async fn restart_keeps_balances_spent_stamps_keys_and_ledger() {
    let mut server = TestServer::start_with(&["--stamp-price", "2"]).await;
    let (id, key) = server.account().await;
    let (status, credited) = server.credit(&id, 100, "pay-1").await;
    assert_eq!(status, 200, "{credited}");
    let (status, purchase) = server.purchase(&key, 10, Some("order-1")).await;
    assert_eq!(status, 201, "{purchase}");
    let stamps = strings(&purchase["stamps"]);
    let mut spent = Vec::new();
    for (i, stamp) in stamps[..3].iter().enumerate() {
        let (status, body) = server.redeem(stamp, &format!("site/{i}")).await;
        assert_eq!(status, 201, "{body}");
        spent.push(body);
    }

    let (_, account_before) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account_before["balance"], 80);
    assert_eq!(account_before["stamps_spent"], 3);
    let (_, keys_before) = server.get("/v1/keys").await;
    let (_, ledger_key_before) = server.get("/v1/ledger/key").await;
    let (_, entries_before) = server.get_text("/v1/ledger/entries").await;
    let (_, checkpoint_before) = server.get_text("/v1/ledger/checkpoint").await;
    let mut states_before = Vec::new();
    for stamp in &stamps {
        states_before.push(
            server
                .get(&format!("/v1/stamps/{}", stamp_id(stamp)))
                .await
                .1,
        );
    }

    server.restart();

    let (_, account_after) = server.get_auth("/v1/account", &key).await;
    assert_eq!(
        account_after, account_before,
        "the API key and the account survive"
    );
    let (_, keys_after) = server.get("/v1/keys").await;
    assert_eq!(keys_after, keys_before, "the same issuer keys");
    let (_, ledger_key_after) = server.get("/v1/ledger/key").await;
    assert_eq!(
        ledger_key_after, ledger_key_before,
        "the same checkpoint key"
    );
    let (_, entries_after) = server.get_text("/v1/ledger/entries").await;
    assert_eq!(entries_after, entries_before, "the ledger, byte for byte");
    let (_, checkpoint_after) = server.get_text("/v1/ledger/checkpoint").await;
    assert_eq!(
        checkpoint_body(&checkpoint_after),
        checkpoint_body(&checkpoint_before),
        "same size and root"
    );
    for (stamp, before) in stamps.iter().zip(&states_before) {
        let (_, after) = server.get(&format!("/v1/stamps/{}", stamp_id(stamp))).await;
        assert_eq!(&after, before, "stamp state survives");
    }

    // Spent stamps stay spent; the others still verify (same keys) and spend.
    for stamp in &stamps[..3] {
        let (status, body) = server.redeem(stamp, "again").await;
        assert_problem(status, &body, 409, "stamp_already_spent");
    }
    let (_, body) = server.verify(&stamps[3]).await;
    assert_eq!(
        body["valid"], true,
        "a stamp bought before the restart verifies: {body}"
    );
    let (status, body) = server.redeem(&stamps[3], "after-restart").await;
    assert_eq!(status, 201, "{body}");

    // Idempotency records survive: a replay answers the first answer and charges nothing.
    let (status, body) = server.credit(&id, 100, "pay-1").await;
    assert_eq!(status, 200);
    assert_eq!(body, credited, "credit replay after restart");
    let (status, body) = server.purchase(&key, 10, Some("order-1")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body, purchase,
        "purchase replay after restart: the same stamps"
    );
    let (status, body) = server.purchase(&key, 9, Some("order-1")).await;
    assert_problem(status, &body, 409, "idempotency_conflict");

    // The admin token is the same and new money still moves.
    let (status, body) = server.credit(&id, 10, "pay-2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], 90);
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["stamps_spent"], 4, "{account}");

    // The ledger grew by appending only.
    let (_, entries_now) = server.get_text("/v1/ledger/entries").await;
    assert!(entries_now.starts_with(&entries_before), "ledger rewritten");
    assert_eq!(
        entries_now.lines().count(),
        entries_before.lines().count() + 2,
        "one redeem and one credit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_redeems_loses_no_acknowledged_spend() {
    const STAMPS: usize = 300;
    const WORKERS: usize = 30;
    const KILL_AFTER: usize = 100;

    let mut server = TestServer::start().await;
    let (key, stamps) = server.stamps(STAMPS as u64, STAMPS as u64).await;
    assert_eq!(stamps.len(), STAMPS);

    let answered = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let url = server.url("/v1/stamps/redeem");
    let mut workers = Vec::new();
    for chunk in stamps.chunks(STAMPS / WORKERS) {
        let chunk = chunk.to_vec();
        let client = server.client.clone();
        let url = url.clone();
        let answered = answered.clone();
        let enough = enough.clone();
        workers.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for stamp in chunk {
                let sent = client
                    .post(&url)
                    .json(&json!({"stamp": stamp, "context": "burst"}))
                    .send()
                    .await;
                let status = match sent {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        // The answer counts only when its body arrived in full too.
                        match response.json::<Value>().await {
                            Ok(body) => Some((status, body)),
                            Err(_) => None,
                        }
                    }
                    Err(_) => None,
                };
                if status.is_some() && answered.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    enough.notify_one();
                }
                results.push((stamp, status));
            }
            results
        }));
    }
    enough.notified().await;
    server.kill();
    let mut results = Vec::new();
    for worker in workers {
        results.extend(worker.await.expect("worker"));
    }

    let acknowledged: Vec<&String> = results
        .iter()
        .filter_map(|(stamp, answer)| match answer {
            Some((201, _)) => Some(stamp),
            Some((status, body)) => panic!("unexpected answer {status}: {body}"),
            None => None,
        })
        .collect();
    assert!(acknowledged.len() >= KILL_AFTER, "{}", acknowledged.len());
    assert!(
        acknowledged.len() < STAMPS,
        "the kill came too late to interrupt anything"
    );

    server.restart();

    // Check every stamp at once: a sequential pass would pay one disk sync per redeem.
    let base = server.base_url.clone();
    let checks: Vec<_> = results
        .iter()
        .map(|(stamp, answer)| {
            let client = server.client.clone();
            let base = base.clone();
            let stamp = stamp.clone();
            let acknowledged = answer.is_some();
            tokio::spawn(async move {
                let state: Value = client
                    .get(format!("{base}/v1/stamps/{}", stamp_id(&stamp)))
                    .send()
                    .await
                    .expect("GET stamp")
                    .json()
                    .await
                    .expect("json");
                if acknowledged {
                    assert_eq!(
                        state["state"], "spent",
                        "an acknowledged spend was lost: {state}"
                    );
                    assert_eq!(state["spent_for"], "burst", "{state}");
                }
                let again = client
                    .post(format!("{base}/v1/stamps/redeem"))
                    .json(&json!({"stamp": stamp, "context": "after"}))
                    .send()
                    .await
                    .expect("redeem");
                let status = again.status().as_u16();
                let body: Value = again.json().await.expect("json");
                if state["state"] == "spent" {
                    assert_problem(status, &body, 409, "stamp_already_spent");
                    true
                } else {
                    // Unacknowledged and not applied: the stamp is whole, and spends now.
                    assert_eq!(state["state"], "unspent", "{state}");
                    assert_eq!(status, 201, "{body}");
                    false
                }
            })
        })
        .collect();
    let mut spent = 0;
    for check in checks {
        if check.await.expect("check") {
            spent += 1;
        }
    }
    assert!(spent >= acknowledged.len());

    // Everything spent in the burst has exactly one ledger entry, and the account agrees.
    let (_, ledger) = server.get_text("/v1/ledger/entries").await;
    let spends = spend_entries(&ledger);
    assert_eq!(spends.len(), STAMPS, "one spend entry per stamp");
    let mut ids: Vec<String> = spends
        .iter()
        .flat_map(|e| strings(&e["stamp_ids"]))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), STAMPS, "no stamp spent twice in the ledger");
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["stamps_spent"], STAMPS, "{account}");
}

/// Starts `pennypost serve` without `PENNYPOST_ADMIN_TOKEN` on `dir` (and `database`, if
/// given) and returns it with its base URL.
fn serve_without_token(
    dir: &std::path::Path,
    database: Option<&pg::TestDatabase>,
) -> (std::process::Child, String) {
    let mut command = serve_command(["--listen", "127.0.0.1:0", "--data-dir"]);
    command
        .arg(dir.join("data"))
        .arg("--keys-dir")
        .arg(dir.join("keys"));
    let log = dir.join("server.log");
    with_store(&mut command, database).stderr(serve::log_file(&log));
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = serve::start(&mut command, false, logs).unwrap_or_else(|e| panic!("{e}"));
    (started.child, started.base_url)
}

#[tokio::test]
async fn generated_admin_token_is_kept_across_restarts() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().expect("tempdir");
    // On PostgreSQL too the generated token is kept in the data directory.
    let database = own_database();
    let client = reqwest::Client::new();
    let (mut child, url) = serve_without_token(dir.path(), database.as_ref());
    let token_path = dir.path().join("data").join("admin_token");
    let token = std::fs::read_to_string(&token_path).expect("token file");
    let token = token.trim().to_string();
    assert!(!token.is_empty());
    let mode = std::fs::metadata(&token_path)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // And the server says where it put it.
    let logs = std::fs::read_to_string(dir.path().join("server.log")).expect("logs");
    assert!(
        logs.contains(&format!("admin token written to {}", token_path.display())),
        "{logs}"
    );

    let account: Value = client
        .post(format!("{url}/v1/accounts"))
        .json(&json!({}))
        .send()
        .await
        .expect("account")
        .json()
        .await
        .expect("json");
    let id = account["account_id"].as_str().expect("id").to_string();
    let credit = |url: &str, token: &str, reference: &str| {
        client
            .post(format!("{url}/v1/admin/accounts/{id}/credit"))
            .bearer_auth(token)
            .json(&json!({"amount": 5, "reference": reference}))
            .send()
    };
    let response = credit(&url, &token, "r1").await.expect("credit");
    assert_eq!(response.status().as_u16(), 200);
    let response = credit(&url, ADMIN_TOKEN, "r2").await.expect("credit");
    assert_eq!(
        response.status().as_u16(),
        401,
        "only the generated token works"
    );

    let _ = child.kill();
    let _ = child.wait();
    let (mut child, url) = serve_without_token(dir.path(), database.as_ref());
    let again = std::fs::read_to_string(&token_path).expect("token file");
    assert_eq!(again.trim(), token, "the token file is not rewritten");
    let response = credit(&url, &token, "r3").await.expect("credit");
    assert_eq!(
        response.status().as_u16(),
        200,
        "the same token after a restart"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["balance"], 10);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_keeps_everything() {
    let mut server = TestServer::start().await;
    let (key, stamps) = server.stamps(10, 2).await;
    let (status, _) = server.redeem(&stamps[0], "c").await;
    assert_eq!(status, 201);
    // The client now holds an idle keep-alive connection; shutdown must not wait on it.
    let started = Instant::now();
    let exit = server.terminate();
    assert!(exit.success(), "SIGTERM exit status: {exit:?}");
    assert_eq!(exit.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );

    server.restart();
    let (status, body) = server.redeem(&stamps[0], "c").await;
    assert_problem(status, &body, 409, "stamp_already_spent");
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["stamps_spent"], 1, "{account}");
    let exit = server.terminate();
    assert_eq!(exit.code(), Some(0));
}
