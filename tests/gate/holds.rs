//! The priced flow through a mint with holds: captured on success, released on failure, and
//! given back by the hold's expiry when the gate dies between hold and capture; and what both
//! count of it in their metrics.
//!
//! Against the real mint (`pennypost serve`) and its holds routes.

use std::time::Duration;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::harness::{self, Gate, Mint, Upstream};
use crate::wire::{total, Sample};

#[tokio::test]
async fn a_paid_request_is_captured_and_the_site_gets_a_receipt() {
    let upstream = Upstream::start().await;
    let mint = Mint::start();
    let gate = Gate::start(&harness::config(&upstream.url(), &mint.url, ""));
    let stamps = mint.stamps(3).await;
    let answer = gate
        .send(
            "POST",
            "/comments?thread=1",
            &[("pennypost-stamps", &stamps[0]), ("host", "forum.example")],
            "text=hello",
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(mint.stamp_state(&stamps[0]).await, "spent");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.headers["pennypost-paid"], "1");
    let receipt = request.headers["pennypost-receipt"].to_str().expect("text");
    assert_eq!(receipt.len(), 64);
    assert!(receipt.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!request.headers.contains_key("pennypost-stamps"));
    assert_eq!(&request.body[..], b"text=hello");
    // The same stamp again is the mint's own refusal.
    let again = gate
        .send("POST", "/comments", &[("pennypost-stamps", &stamps[0])], "")
        .await;
    again.problem(409, "stamp_already_spent");
    // A form field: cut out, the rest of the body byte for byte; a 303 captures.
    let boundary = "b0undary";
    let part = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let body = format!(
        "{}{}{}--{boundary}--\r\n",
        part("text", "hi there"),
        part("pennypost_stamps", &stamps[1]),
        part("more", "x")
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let answer = gate
        .send(
            "POST",
            "/see-other",
            &[("content-type", &content_type)],
            body,
        )
        .await;
    assert_eq!(answer.status, 303, "{answer:?}");
    assert_eq!(mint.stamp_state(&stamps[1]).await, "spent");
    let forwarded = &upstream.seen()[1];
    let want = format!(
        "{}{}--{boundary}--\r\n",
        part("text", "hi there"),
        part("more", "x")
    );
    assert_eq!(String::from_utf8_lossy(&forwarded.body), want);
    assert_eq!(
        forwarded.headers["content-length"],
        want.len().to_string().as_str()
    );
    // The hold's context named this request: the redeem target the ledger shows is its hash.
    let context = format!(
        "gate/v1 POST {} {} {}",
        gate.address,
        hex::encode(Sha256::digest(b"/see-other")),
        hex::encode(Sha256::digest(want.as_bytes()))
    );
    // NDJSON: one entry per line.
    let entries = reqwest::get(format!("{}/v1/ledger/entries?start=0&limit=100", mint.url))
        .await
        .expect("entries")
        .text()
        .await
        .expect("entries answer");
    let target = hex::encode(Sha256::digest(context.as_bytes()));
    assert!(
        entries
            .lines()
            .any(|line| line.contains("\"kind\":\"spend\"") && line.contains(&target)),
        "no spend targets {target}: {entries}"
    );
}

#[tokio::test]
async fn an_upstream_failure_releases_the_stamps() {
    let upstream = Upstream::start().await;
    let mint = Mint::start();
    let gate = Gate::start(&harness::config(&upstream.url(), &mint.url, ""));
    let stamps = mint.stamps(1).await;
    let answer = gate
        .send("POST", "/fail", &[("pennypost-stamps", &stamps[0])], "")
        .await;
    assert_eq!(answer.status, 500);
    assert_eq!(&answer.body[..], b"upstream failed");
    assert_eq!(mint.stamp_state(&stamps[0]).await, "unspent");
    // Released at once: the same stamp pays for the next request.
    let answer = gate
        .send("POST", "/comments", &[("pennypost-stamps", &stamps[0])], "")
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(mint.stamp_state(&stamps[0]).await, "spent");
}

#[tokio::test]
async fn a_gate_killed_between_hold_and_capture_gives_the_stamps_back() {
    let upstream = Upstream::start().await;
    let mint = Mint::start();
    let mut gate = Gate::start(&harness::config(
        &upstream.url(),
        &mint.url,
        "hold_ttl_secs = 3\nupstream_timeout_secs = 2",
    ));
    let stamps = mint.stamps(1).await;
    let stamp = stamps[0].clone();
    let client = reqwest::Client::new();
    let url = format!("{}/slow", gate.url);
    let pending = tokio::spawn({
        let stamp = stamp.clone();
        async move {
            client
                .post(url)
                .header("pennypost-stamps", stamp)
                .send()
                .await
        }
    });
    tokio::time::timeout(Duration::from_secs(10), upstream.arrived.notified())
        .await
        .expect("the request reached the site, so its stamps are held");
    gate.kill();
    assert!(
        pending.await.expect("join").is_err(),
        "the gate died mid-request"
    );
    let redeem = |stamp: String| {
        let url = format!("{}/v1/stamps/redeem", mint.url);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&json!({"stamp": stamp, "context": "after the gate died"}))
                .send()
                .await
                .expect("redeem");
            let status = response.status().as_u16();
            (
                status,
                response.json::<serde_json::Value>().await.expect("json"),
            )
        }
    };
    let (status, body) = redeem(stamp.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("stamp_held")),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, body) = redeem(stamp.clone()).await;
    // A redeem answers 201 (docs/api.md, `POST /v1/stamps/redeem`).
    assert_eq!(
        status, 201,
        "the hold expired and the stamp came back: {body}"
    );
    upstream.go_on.notify_one();
}

/// A capture is counted by the mint as a redeem of the stamps it spent
/// (`pennypost_stamps_spent_total{action="redeem"}`, docs/api.md "Metrics"); a release spends
/// and counts nothing. The gate counts each request by rule and outcome (`paid`, `released`,
/// `payment_required`, `passed`) and times every hold, capture, release and upstream call, as
/// docs/gate.md ("Metrics") lists them, and serves no series but those.
#[tokio::test]
async fn metrics_count_a_capture_at_the_mint_and_each_outcome_at_the_gate() {
    let upstream = Upstream::start().await;
    let mint = Mint::start_metered();
    let mint_metrics = mint
        .metrics
        .clone()
        .expect("the mint says where its metrics are");
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &mint.url,
        "metrics_listen = \"127.0.0.1:0\"",
    ));
    let gate_metrics = gate
        .metrics
        .clone()
        .expect("the gate says where its metrics are");
    let stamps = mint.stamps(4).await;
    let spent = "pennypost_stamps_spent_total";
    let redeemed = |samples: &[Sample]| total(samples, spent, &[("action", "redeem")]);
    let (before, _) = harness::scrape(&mint_metrics).await;

    // Paid: two stamps for `POST /pair`, one for `POST /comments`.
    let pair = format!("{}, {}", stamps[0], stamps[1]);
    let paid = gate
        .send("POST", "/pair", &[("pennypost-stamps", &pair)], "")
        .await;
    assert_eq!(paid.status, 200, "{paid:?}");
    let paid = gate
        .send("POST", "/comments", &[("pennypost-stamps", &stamps[2])], "")
        .await;
    assert_eq!(paid.status, 200, "{paid:?}");
    // Released: the site answers 500 and `POST /fail` captures on 2xx only.
    let released = gate
        .send("POST", "/fail", &[("pennypost-stamps", &stamps[3])], "")
        .await;
    assert_eq!(released.status, 500, "{released:?}");
    assert_eq!(mint.stamp_state(&stamps[3]).await, "unspent");
    // No stamps: 402. Unpriced: passed.
    let unpaid = gate.send("POST", "/comments", &[], "").await;
    assert_eq!(unpaid.status, 402);
    assert_eq!(gate.send("GET", "/free", &[], "").await.status, 200);

    // The mint counts the writer's spends once they are durable, before it answers, and the
    // gate answered only after its capture was answered.
    let (after, _) = harness::scrape(&mint_metrics).await;
    assert_eq!(
        redeemed(&after) - redeemed(&before),
        3.0,
        "three stamps captured, one released: {:?}",
        of(&after, spent)
    );
    let (samples, types) = harness::scrape(&gate_metrics).await;
    let gate_requests = of(&samples, "pennypost_gate_requests_total");
    // Only the gate's series: none of the server's (no writer, ledger or database here).
    let foreign: Vec<&Sample> = samples
        .iter()
        .filter(|s| !s.name.starts_with("pennypost_gate_"))
        .collect();
    assert!(foreign.is_empty(), "not the gate's series: {foreign:?}");
    let requests = |rule: &str, outcome: &str| {
        total(
            &samples,
            "pennypost_gate_requests_total",
            &[("rule", rule), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("POST /pair", "paid"), 1.0, "{gate_requests:?}");
    assert_eq!(requests("POST /comments", "paid"), 1.0, "{gate_requests:?}");
    assert_eq!(requests("POST /fail", "released"), 1.0, "{gate_requests:?}");
    assert_eq!(
        requests("POST /comments", "payment_required"),
        1.0,
        "{gate_requests:?}"
    );
    assert_eq!(requests("free", "passed"), 1.0, "{gate_requests:?}");
    assert_eq!(
        total(&samples, "pennypost_gate_requests_total", &[]),
        5.0,
        "no request counted twice: {gate_requests:?}"
    );
    // Three holds (the 402 made none), two captures, one release, each answered `ok`.
    for (series, calls) in [
        ("pennypost_gate_hold_seconds", 3.0),
        ("pennypost_gate_capture_seconds", 2.0),
        ("pennypost_gate_release_seconds", 1.0),
    ] {
        assert_eq!(types.get(series).map(String::as_str), Some("histogram"));
        let seen = of(&samples, series);
        let count = format!("{series}_count");
        assert_eq!(
            total(&samples, &count, &[("outcome", "ok")]),
            calls,
            "{seen:?}"
        );
        assert_eq!(total(&samples, &count, &[]), calls, "{seen:?}");
        let sum = total(&samples, &format!("{series}_sum"), &[("outcome", "ok")]);
        assert!(sum > 0.0, "no time recorded: {seen:?}");
        // Every call falls in the last bucket (`le="+Inf"`).
        let bucket = format!("{series}_bucket");
        assert_eq!(
            total(&samples, &bucket, &[("outcome", "ok"), ("le", "+Inf")]),
            calls,
            "{seen:?}"
        );
    }
    for (rule, calls) in [
        ("POST /pair", 1.0),
        ("POST /comments", 1.0),
        ("POST /fail", 1.0),
        ("free", 1.0),
    ] {
        assert_eq!(
            total(
                &samples,
                "pennypost_gate_upstream_seconds_count",
                &[("rule", rule)]
            ),
            calls,
            "upstream calls of {rule}: {:?}",
            of(&samples, "pennypost_gate_upstream_seconds_count")
        );
    }
}

/// The samples of the series whose names begin with `name`, for a failure's message.
fn of<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name.starts_with(name))
        .collect()
}
