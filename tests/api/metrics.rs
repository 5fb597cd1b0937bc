//! `serve --metrics-listen ADDR`: Prometheus metrics at `GET /metrics` on that address, named
//! and labelled as docs/api.md ("Metrics") says: counts at least what was sent, and no label
//! holding an account, stamp or post id.

use std::collections::BTreeMap;

use pennypost::api::PurchaseResponse;

use crate::helpers::{stamp_id, ADMIN_TOKEN};
use crate::process::start;
use crate::wire::{samples, total};

/// Whether `text` has the shape of a hyphenated UUID.
fn looks_like_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[tokio::test]
async fn metrics_count_the_traffic_without_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let keys = dir.path().join("keys");
    let server = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--keys-dir",
            keys.to_str().expect("utf-8"),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[],
        &dir.path().join("server.log"),
        true,
    );
    let metrics_url = server.metrics_url.clone().expect("a metrics line");
    assert!(
        metrics_url.starts_with("http://127.0.0.1:"),
        "{metrics_url}"
    );
    assert!(metrics_url.ends_with("/metrics"), "{metrics_url}");
    let base = server.base_url.clone();
    let client = reqwest::Client::new();

    // Traffic: an account, a credit, a purchase of 3, two redeems, a post id that does not
    // exist, a stamp look-up, and a path no route knows.
    let account: serde_json::Value = client
        .post(format!("{base}/v1/accounts"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("account")
        .json()
        .await
        .expect("JSON");
    let account_id = account["account_id"].as_str().expect("id").to_string();
    let api_key = account["api_key"].as_str().expect("key").to_string();
    let credit = client
        .post(format!("{base}/v1/admin/accounts/{account_id}/credit"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"amount": 100, "reference": "metrics-1"}))
        .send()
        .await
        .expect("credit");
    assert_eq!(credit.status(), 200);
    let purchase = client
        .post(format!("{base}/v1/stamps/purchase"))
        .bearer_auth(&api_key)
        .json(&serde_json::json!({"count": 3}))
        .send()
        .await
        .expect("purchase");
    assert_eq!(purchase.status(), 201);
    let purchase: PurchaseResponse = purchase.json().await.expect("purchase answer");
    for stamp in &purchase.stamps[..2] {
        let redeemed = client
            .post(format!("{base}/v1/stamps/redeem"))
            .json(&serde_json::json!({"stamp": stamp, "context": "metrics"}))
            .send()
            .await
            .expect("redeem");
        assert_eq!(redeemed.status(), 201);
    }
    let post_id = uuid::Uuid::new_v4();
    let missing = client
        .get(format!("{base}/v1/posts/{post_id}"))
        .send()
        .await
        .expect("post");
    assert_eq!(missing.status(), 404);
    let spent_id = stamp_id(&purchase.stamps[0]);
    let looked_up = client
        .get(format!("{base}/v1/stamps/{spent_id}"))
        .send()
        .await
        .expect("stamp");
    assert_eq!(looked_up.status(), 200);
    let nowhere = client
        .get(format!("{base}/no/such/{post_id}"))
        .send()
        .await
        .expect("404");
    assert_eq!(nowhere.status(), 404);

    // The server's own check catches up every 2 s; the lag gauge follows it.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let scrape = client.get(&metrics_url).send().await.expect("scrape");
    assert_eq!(scrape.status(), 200);
    let content_type = scrape.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = scrape.text().await.expect("text");
    let mut types = BTreeMap::new();
    let samples = samples(&text, &mut types);

    let requests = "pennypost_http_requests_total";
    let route = |route: &'static str, status: &'static str| {
        total(&samples, requests, &[("route", route), ("status", status)])
    };
    assert!(route("/v1/accounts", "201") >= 1.0, "{text}");
    assert!(
        route("/v1/admin/accounts/{account_id}/credit", "200") >= 1.0,
        "{text}"
    );
    assert!(route("/v1/stamps/purchase", "201") >= 1.0, "{text}");
    assert!(route("/v1/stamps/redeem", "201") >= 2.0, "{text}");
    assert!(route("/v1/posts/{post_id}", "404") >= 1.0, "{text}");
    assert!(route("/v1/stamps/{stamp_id}", "200") >= 1.0, "{text}");
    assert!(route("unmatched", "404") >= 1.0, "{text}");
    assert!(
        total(
            &samples,
            requests,
            &[("method", "POST"), ("route", "/v1/stamps/redeem")]
        ) >= 2.0
    );
    let latency = "pennypost_http_request_duration_seconds_count";
    assert!(
        total(
            &samples,
            latency,
            &[("route", "/v1/stamps/redeem"), ("status", "201")]
        ) >= 2.0
    );
    assert_eq!(
        types["pennypost_http_request_duration_seconds"],
        "histogram"
    );

    assert!(
        total(&samples, "pennypost_stamps_sold_total", &[]) >= 3.0,
        "{text}"
    );
    assert!(
        total(
            &samples,
            "pennypost_stamps_spent_total",
            &[("action", "redeem")]
        ) >= 2.0,
        "{text}"
    );
    // Key, policy, credit, purchase and two spends, at least.
    assert!(
        total(&samples, "pennypost_ledger_size", &[]) >= 6.0,
        "{text}"
    );
    assert!(
        total(&samples, "pennypost_commit_batch_size_count", &[]) >= 4.0,
        "{text}"
    );
    assert!(
        total(&samples, "pennypost_commit_sync_seconds_count", &[]) >= 4.0,
        "{text}"
    );
    assert_eq!(types["pennypost_commit_batch_size"], "histogram");
    assert_eq!(types["pennypost_commit_sync_seconds"], "histogram");
    assert!(
        total(&samples, "pennypost_commit_apply_seconds_count", &[]) >= 4.0,
        "{text}"
    );
    assert_eq!(types["pennypost_commit_apply_seconds"], "histogram");
    // On sled there is no database to lose; the series is there, at 0.
    assert_eq!(
        total(&samples, "pennypost_database_unavailable_total", &[]),
        0.0
    );
    assert_eq!(types["pennypost_database_unavailable_total"], "counter");
    assert!(
        total(&samples, "pennypost_verify_batch_size_count", &[]) >= 2.0,
        "{text}"
    );
    assert!(
        samples.iter().any(|s| s.name == "pennypost_audit_lag"),
        "{text}"
    );
    assert_eq!(total(&samples, "pennypost_commit_failures_total", &[]), 0.0);
    assert_eq!(total(&samples, "pennypost_writer_stopped", &[]), 0.0);

    // Names: the prefix everywhere, `_total` on counters, `_seconds` on durations.
    for (name, kind) in &types {
        assert!(name.starts_with("pennypost_"), "{name}");
        if kind == "counter" {
            assert!(name.ends_with("_total"), "{name}");
        }
        if name.contains("duration") || name.contains("latency") {
            assert!(name.ends_with("_seconds"), "{name}");
        }
    }
    // No id anywhere: not in a label, not in the text at all.
    let mut ids = vec![
        account_id,
        api_key,
        purchase.purchase_id.to_string(),
        post_id.to_string(),
    ];
    ids.extend(purchase.stamps.iter().map(|s| stamp_id(s)));
    for id in &ids {
        assert!(!text.contains(id.as_str()), "{id} in the metrics:\n{text}");
    }
    for sample in &samples {
        for (key, value) in &sample.labels {
            assert!(!looks_like_uuid(value), "{key}={value} on {}", sample.name);
            assert!(!value.contains("pp1."), "{key}={value} on {}", sample.name);
        }
    }
}
