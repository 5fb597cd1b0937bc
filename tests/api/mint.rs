//! The mint: purchase → verify → redeem → re-redeem, stamp and account state, prices, keys,
//! idempotent credits and purchases, and concurrent spends and purchases.

use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{assert_problem, stamp_id, stamp_parts, strings, TestServer, ADMIN_TOKEN};

#[tokio::test]
async fn purchase_verify_redeem_and_redeem_again() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 3).await;
    assert_eq!(stamps.len(), 3);
    let (status, body) = server
        .post("/v1/stamps/verify", None, json!({"stamp": stamps[0]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["valid"], true, "{body}");
    assert_eq!(body["state"], "unspent");
    assert_eq!(body["code"], Value::Null, "{body}");
    assert_eq!(body["stamp_id"], stamp_id(&stamps[0]).as_str(), "{body}");
    let (status, body) = server
        .post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamps[0], "context": "example.org/thread/42#7"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["stamp_id"], stamp_id(&stamps[0]).as_str(), "{body}");
    assert!(body["spent_at"].is_string(), "{body}");
    assert!(body["ledger_index"].is_u64(), "{body}");

    // Verifying a spent stamp says so, and still spends nothing else.
    let (_, body) = server.verify(&stamps[0]).await;
    assert_eq!(body["valid"], false, "{body}");
    assert_eq!(body["state"], "spent", "{body}");
    assert_eq!(body["code"], "stamp_already_spent", "{body}");

    let (status, body) = server
        .post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamps[0], "context": "example.org/thread/42#7"}),
        )
        .await;
    assert_problem(status, &body, 409, "stamp_already_spent");
    // Another context does not make it spendable again.
    let (status, body) = server.redeem(&stamps[0], "other.example/1").await;
    assert_problem(status, &body, 409, "stamp_already_spent");
    // The other stamps of the purchase are untouched.
    let (_, body) = server.verify(&stamps[1]).await;
    assert_eq!(body["valid"], true, "{body}");
}

#[tokio::test]
async fn stamp_status_before_and_after_spend() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    server.credit(&id, 10, "pay-1").await;
    let (status, purchase) = server.purchase(&key, 2, None).await;
    assert_eq!(status, 201, "{purchase}");
    let stamps = strings(&purchase["stamps"]);
    let sid = stamp_id(&stamps[0]);

    let (status, body) = server.get(&format!("/v1/stamps/{sid}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stamp_id"], sid.as_str(), "{body}");
    assert_eq!(body["state"], "unspent", "{body}");
    assert_eq!(body["spent_at"], Value::Null, "{body}");
    assert_eq!(body["spent_for"], Value::Null, "{body}");
    assert_eq!(body["issued_at"], purchase["issued_at"], "{body}");
    assert_eq!(body["expires_at"], purchase["expires_at"], "{body}");
    // Never reveals the buyer.
    let text = body.to_string();
    assert!(!text.contains(&id), "buyer revealed: {text}");
    assert!(body.get("buyer").is_none() && body.get("account_id").is_none());

    let context = "example.org/thread/42#7 ünïcode";
    let (status, spent) = server.redeem(&stamps[0], context).await;
    assert_eq!(status, 201, "{spent}");

    let (status, body) = server.get(&format!("/v1/stamps/{sid}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "spent", "{body}");
    assert_eq!(body["spent_at"], spent["spent_at"], "{body}");
    assert_eq!(body["spent_for"], context, "{body}");
    assert_eq!(body["issued_at"], purchase["issued_at"], "{body}");

    // The ledger's target for the redeem is SHA-256 of the context, never the context itself.
    let (_, ledger) = server.get_text("/v1/ledger/entries").await;
    let index = spent["ledger_index"].as_u64().expect("index") as usize;
    let entry: Value =
        serde_json::from_str(ledger.lines().nth(index).expect("entry")).expect("entry json");
    assert_eq!(
        entry["target"],
        hex::encode(Sha256::digest(context.as_bytes())),
        "{entry}"
    );
    assert!(!ledger.contains("example.org"), "context in the ledger");

    // The other stamp is still unspent.
    let (_, body) = server
        .get(&format!("/v1/stamps/{}", stamp_id(&stamps[1])))
        .await;
    assert_eq!(body["state"], "unspent", "{body}");
}

#[tokio::test]
async fn account_shows_balance_and_stamp_counts() {
    let server = TestServer::start_with(&["--stamp-price", "5"]).await;
    let (id, key) = server.account().await;

    let (status, body) = server.get_auth("/v1/account", &key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_id"], id.as_str());
    assert!(
        body["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("tester-")),
        "{body}"
    );
    assert_eq!(body["balance"], 0);
    assert_eq!(body["currency"], "cents");
    assert_eq!(body["stamps_purchased"], 0);
    assert_eq!(body["stamps_spent"], 0);

    let (status, body) = server.credit(&id, 100, "pay-100").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_id"], id.as_str());
    assert_eq!(body["balance"], 100);

    let (status, purchase) = server.purchase(&key, 4, None).await;
    assert_eq!(status, 201, "{purchase}");
    assert_eq!(purchase["count"], 4);
    assert_eq!(purchase["unit_price"], 5);
    assert_eq!(purchase["total"], 20);
    assert_eq!(purchase["balance"], 80);
    assert!(purchase["purchase_id"].is_string(), "{purchase}");
    let stamps = strings(&purchase["stamps"]);
    assert_eq!(stamps.len(), 4);

    let (_, body) = server.get_auth("/v1/account", &key).await;
    assert_eq!(body["balance"], 80, "{body}");
    assert_eq!(body["stamps_purchased"], 4, "{body}");
    assert_eq!(body["stamps_spent"], 0, "{body}");

    // Spent by anyone: the stamp is a bearer instrument, the buyer's count still moves.
    for stamp in &stamps[..3] {
        let (status, body) = server.redeem(stamp, "somewhere").await;
        assert_eq!(status, 201, "{body}");
    }
    // A refused re-spend counts nothing.
    let (status, _) = server.redeem(&stamps[0], "somewhere").await;
    assert_eq!(status, 409);
    let (_, body) = server.get_auth("/v1/account", &key).await;
    assert_eq!(body["balance"], 80, "{body}");
    assert_eq!(body["stamps_purchased"], 4, "{body}");
    assert_eq!(body["stamps_spent"], 3, "{body}");
}

#[tokio::test]
async fn prices_have_defaults_and_follow_flags() {
    let server = TestServer::start_priced(&[]).await;
    let (status, body) = server.get("/v1/prices").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"currency": "cents", "stamp_price": 1, "costs": {"post": 1, "vote": 1},
               "policy": {"stamp_price": 1, "post_cost": 1, "vote_cost": 1,
                          "repeat_window_secs": 600, "repeat_factor": 2,
                          "vote_pricing": "quadratic", "refund_voters": 3}})
    );

    let server = TestServer::start_with(&[
        "--stamp-price",
        "7",
        "--post-cost",
        "3",
        "--vote-cost",
        "2",
        "--repeat-window-secs",
        "60",
        "--repeat-factor",
        "3",
        "--vote-pricing",
        "flat",
        "--refund-voters",
        "5",
    ])
    .await;
    let (status, body) = server.get("/v1/prices").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"currency": "cents", "stamp_price": 7, "costs": {"post": 3, "vote": 2},
               "policy": {"stamp_price": 7, "post_cost": 3, "vote_cost": 2,
                          "repeat_window_secs": 60, "repeat_factor": 3,
                          "vote_pricing": "flat", "refund_voters": 5}})
    );
    // The price is what a purchase charges.
    let (id, key) = server.account().await;
    server.credit(&id, 20, "pay").await;
    let (status, body) = server.purchase(&key, 2, None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["unit_price"], 7);
    assert_eq!(body["total"], 14);
    assert_eq!(body["balance"], 6);
}

#[tokio::test]
async fn healthz_is_ok() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn keys_publish_kid_and_stamps_verify_offline() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/v1/keys").await;
    assert_eq!(status, 200, "{body}");
    let keys = body["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{body}");
    let key = &keys[0];
    assert_eq!(key["alg"], "Ed25519");
    assert_eq!(key["status"], "active");
    assert!(
        key["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{key}"
    );
    let public_text = key["public_key"].as_str().expect("public_key");
    assert!(!public_text.contains('='), "unpadded: {public_text}");
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(public_text)
        .expect("base64url public key");
    let public: [u8; 32] = public.try_into().expect("32-byte key");
    let kid = hex::encode(&Sha256::digest(public)[..8]);
    assert_eq!(key["kid"], kid.as_str(), "{key}");

    // Check a bought stamp with nothing but the published key.
    let (_api_key, stamps) = server.stamps(10, 2).await;
    let verifying = VerifyingKey::from_bytes(&public).expect("valid key");
    for stamp in &stamps {
        let (payload, signature) = stamp_parts(stamp);
        assert_eq!(payload.len(), 77);
        assert_eq!(signature.len(), 64);
        assert_eq!(payload[0], 1, "version");
        assert_eq!(hex::encode(&payload[1..9]), kid, "kid in payload");
        let issued = i64::from_be_bytes(payload[25..33].try_into().expect("8"));
        let expires = i64::from_be_bytes(payload[33..41].try_into().expect("8"));
        assert_eq!(expires - issued, 31_536_000, "default TTL is one year");
        assert_eq!(&payload[41..45], &[0, 0, 0, 1], "value 1");
        assert_eq!(&payload[45..77], &[0u8; 32], "unbound");
        let mut message = b"pennypost/stamp/v1".to_vec();
        message.extend_from_slice(&payload);
        let signature = Signature::from_slice(&signature).expect("signature");
        verifying
            .verify_strict(&message, &signature)
            .expect("stamp verifies under the published key");
        // The server agrees on the key id.
        let (_, body) = server.verify(stamp).await;
        assert_eq!(body["kid"], kid.as_str(), "{body}");
    }
}

#[tokio::test]
async fn credit_replay_credits_once() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    let (status, first) = server.credit(&id, 250, "payment-123").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["balance"], 250);
    let (_, size_before) = server.get_text("/v1/ledger/checkpoint").await;

    for _ in 0..3 {
        let (status, again) = server.credit(&id, 250, "payment-123").await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again, first, "a replay answers as the first time did");
    }
    // A replay says so in its Idempotent-Replayed header; a new credit carries none.
    let replayed = |amount: u64, reference: &str| {
        let request = server
            .client
            .post(server.url(&format!("/v1/admin/accounts/{id}/credit")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"amount": amount, "reference": reference}));
        async move {
            let response = request.send().await.expect("credit");
            assert_eq!(response.status().as_u16(), 200);
            response
                .headers()
                .get("idempotent-replayed")
                .map(|v| v.to_str().expect("ASCII").to_string())
        }
    };
    assert_eq!(replayed(250, "payment-123").await.as_deref(), Some("true"));
    let (_, body) = server.get_auth("/v1/account", &key).await;
    assert_eq!(body["balance"], 250, "credited once: {body}");
    let (_, size_after) = server.get_text("/v1/ledger/checkpoint").await;
    assert_eq!(
        size_before.lines().nth(1),
        size_after.lines().nth(1),
        "a replay appends nothing to the ledger"
    );

    // A new reference credits again, and is no replay.
    let (status, body) = server.credit(&id, 250, "payment-124").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], 500);
    assert_ne!(body["ledger_index"], first["ledger_index"]);
    assert_eq!(replayed(1, "payment-125").await, None);
}

#[tokio::test]
async fn purchase_replay_with_same_key_charges_once() {
    let server = TestServer::start_with(&["--stamp-price", "2"]).await;
    let (id, key) = server.account().await;
    server.credit(&id, 100, "pay").await;

    let (status, first) = server.purchase(&key, 5, Some("order-1")).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["balance"], 90);
    let (status, again) = server.purchase(&key, 5, Some("order-1")).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["purchase_id"], first["purchase_id"]);
    assert_eq!(again["stamps"], first["stamps"], "the identical stamps");
    assert_eq!(again, first, "the first answer again");
    let (_, body) = server.get_auth("/v1/account", &key).await;
    assert_eq!(body["balance"], 90, "charged once: {body}");
    assert_eq!(body["stamps_purchased"], 5, "{body}");

    // A different key is a different purchase.
    let (status, other) = server.purchase(&key, 5, Some("order-2")).await;
    assert_eq!(status, 201, "{other}");
    assert_ne!(other["purchase_id"], first["purchase_id"]);
    assert_eq!(other["balance"], 80);
    let first_ids: Vec<String> = strings(&first["stamps"])
        .iter()
        .map(|s| stamp_id(s))
        .collect();
    for stamp in strings(&other["stamps"]) {
        assert!(!first_ids.contains(&stamp_id(&stamp)), "new stamps");
    }
    // And no key at all charges every time.
    let (status, body) = server.purchase(&key, 1, None).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.purchase(&key, 1, None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["balance"], 76);

    // The replayed stamps are real: one spends once, whichever answer it came from.
    let stamp = strings(&again["stamps"])[0].clone();
    let (status, body) = server.redeem(&stamp, "c").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.redeem(&strings(&first["stamps"])[0], "c").await;
    assert_problem(status, &body, 409, "stamp_already_spent");
}

/// Fires `n` copies of one request at once (each in its own task) and returns the answers.
async fn concurrently<F, Fut>(n: usize, make: F) -> Vec<(u16, Value)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = (u16, Value)> + Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let request = make(i);
            tokio::spawn(async move {
                barrier.wait().await;
                request.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redeems_of_one_stamp_spend_it_once() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 1).await;
    let url = server.url("/v1/stamps/redeem");
    let answers = concurrently(50, |i| {
        let request = server
            .client
            .post(&url)
            .json(&json!({"stamp": stamps[0], "context": format!("race/{i}")}));
        send(request)
    })
    .await;
    let won: Vec<_> = answers.iter().filter(|(s, _)| *s == 201).collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_problem(*status, body, 409, "stamp_already_spent");
    }
    // The stamp records the winner's context.
    let (_, body) = server
        .get(&format!("/v1/stamps/{}", stamp_id(&stamps[0])))
        .await;
    assert_eq!(body["spent_at"], won[0].1["spent_at"], "{body}");
    assert!(body["spent_for"]
        .as_str()
        .is_some_and(|c| c.starts_with("race/")));
    // Exactly one spend entry reached the ledger.
    let (_, ledger) = server.get_text("/v1/ledger/entries").await;
    let spends = ledger
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "spend")
        .count();
    assert_eq!(spends, 1, "{ledger}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_purchases_never_overdraw() {
    let server = TestServer::start_with(&["--stamp-price", "3"]).await;
    let (id, key) = server.account().await;
    let (status, body) = server.credit(&id, 75, "pay").await;
    assert_eq!(status, 200, "{body}");
    let url = server.url("/v1/stamps/purchase");
    let answers = concurrently(50, |_| {
        let request = server
            .client
            .post(&url)
            .bearer_auth(&key)
            .json(&json!({"count": 1}));
        send(request)
    })
    .await;
    let ok = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(ok, 25, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_problem(*status, body, 402, "insufficient_funds");
    }
    // Every success saw a different balance: no two were charged against the same money.
    let mut balances: Vec<u64> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b["balance"].as_u64().expect("balance"))
        .collect();
    balances.sort_unstable();
    assert_eq!(balances, (0..25).map(|i| i * 3).collect::<Vec<u64>>());
    let (_, body) = server.get_auth("/v1/account", &key).await;
    assert_eq!(body["balance"], 0, "{body}");
    assert_eq!(body["stamps_purchased"], 25, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replays_of_one_key_or_reference_charge_once() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    let credit_url = server.url(&format!("/v1/admin/accounts/{id}/credit"));
    let answers = concurrently(20, |_| {
        send(
            server
                .client
                .post(&credit_url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"amount": 40, "reference": "payment-race"})),
        )
    })
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body, &answers[0].1, "every replay answers as the first");
    }
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["balance"], 40, "credited once: {account}");

    let purchase_url = server.url("/v1/stamps/purchase");
    let answers = concurrently(20, |_| {
        send(
            server
                .client
                .post(&purchase_url)
                .bearer_auth(&key)
                .header("idempotency-key", "order-race")
                .json(&json!({"count": 3})),
        )
    })
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body, &answers[0].1, "every replay answers the same stamps");
    }
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["balance"], 37, "charged once: {account}");
    assert_eq!(account["stamps_purchased"], 3, "{account}");
}

#[tokio::test]
async fn a_purchase_of_the_most_stamps_allowed() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(1000, 1000).await;
    assert_eq!(stamps.len(), 1000);
    let mut ids: Vec<String> = stamps.iter().map(|s| stamp_id(s)).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "distinct stamp ids");
    let (_, body) = server.verify(&stamps[999]).await;
    assert_eq!(body["valid"], true, "{body}");
}
