//! The test provider end to end: `POST /v1/payments` → `pay_url` `/pay/{id}`; the pay page
//! says "test mode"; `POST /pay/{id}` settles, credits with `source` `test` and sends the
//! member back to the board; `GET /v1/payments/{id}` shows it paid with its credit's entry.

use serde_json::json;

use crate::harness::{test_provider, Server, PUBLIC_URL};

#[test]
fn a_test_payment_is_paid_on_its_page_and_credited_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = test_provider();
    args.extend(["--metrics-listen".to_string(), "127.0.0.1:0".to_string()]);
    let server = Server::start(dir.path(), &args, None);
    let providers = server
        .http
        .get(server.url("/v1/payments/providers"))
        .send()
        .expect("providers")
        .json::<serde_json::Value>()
        .expect("json");
    assert_eq!(
        providers,
        json!({"providers": [{"provider": "test", "currency": "USD", "min": 100,
            "max": 100000, "test_mode": true}]})
    );

    let key = server.account();
    let (status, created) = server.create_payment(&key, "test", json!(500));
    assert_eq!(status, 201, "{created}");
    let id = created["payment_id"].as_str().expect("id").to_string();
    assert_eq!(created["status"], "pending");
    assert_eq!(created["test_mode"], true);
    assert_eq!(created["amount"], 500);
    assert_eq!(created["currency"], "USD");
    assert_eq!(created["credited_ledger_index"], serde_json::Value::Null);
    assert_eq!(created["pay_url"], format!("{PUBLIC_URL}/pay/{id}"));

    let page = server
        .http
        .get(server.url(&format!("/pay/{id}")))
        .send()
        .expect("pay page");
    assert_eq!(page.status(), 200);
    let html = page.text().expect("html");
    assert!(html.contains("Pay (test mode)"), "{html}");
    assert!(html.contains(&format!("action=\"/pay/{id}\"")), "{html}");

    // The button, twice (a double click): one credit.
    for _ in 0..2 {
        let paid = server
            .http
            .post(server.url(&format!("/pay/{id}")))
            .send()
            .expect("pay");
        assert_eq!(paid.status(), 303);
        assert_eq!(
            paid.headers()["location"].to_str().expect("location"),
            format!("/?payment={id}")
        );
    }
    let (status, shown) = server.payment(&key, &id);
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["status"], "paid");
    let index = shown["credited_ledger_index"].as_u64().expect("credited");
    assert_eq!(server.balance(&key), 500);

    let credits = server.entries_of("credit");
    assert_eq!(credits.len(), 1, "{credits:?}");
    let entries = server.entries();
    assert_eq!(entries[index as usize]["kind"], "credit");
    assert_eq!(entries[index as usize]["amount"], 500);
    assert_eq!(entries[index as usize]["source"], "test");

    // Paid: the page says so and the button is gone; the list shows it.
    let html = server
        .http
        .get(server.url(&format!("/pay/{id}")))
        .send()
        .expect("pay page")
        .text()
        .expect("html");
    assert!(
        html.contains("is paid") && !html.contains("<button"),
        "{html}"
    );
    let list = server
        .http
        .get(server.url("/v1/payments"))
        .bearer_auth(&key)
        .send()
        .expect("list")
        .json::<serde_json::Value>()
        .expect("json");
    assert_eq!(list["payments"][0]["payment_id"], id.as_str());
    assert_eq!(list["payments"][0]["status"], "paid");
    server.audit_passes();

    // Counted once: created, paid, 500 credited.
    let metrics = server.metrics();
    for line in [
        "pennypost_payments_total{provider=\"test\",status=\"pending\"} 1",
        "pennypost_payments_total{provider=\"test\",status=\"paid\"} 1",
        "pennypost_payment_credited_total{provider=\"test\"} 500",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }
}

/// PAYMENTS.md: `POST /v1/payments` answers 201 with `payment_id`, `provider`, `amount`,
/// `currency`, `status` `pending`, `pay_url` and `expires_at`; `GET /v1/payments/{id}` adds
/// `credited_ledger_index`, `created_at` and `updated_at`; `GET /v1/payments` lists the
/// account's payments newest first, paginated like posts (`limit`, `before`, `next_before`),
/// even when they were made within one second.
#[test]
fn payments_are_listed_newest_first_a_page_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &test_provider(), None);
    let key = server.account();
    let mut made = Vec::new();
    for amount in [100, 200, 300, 400, 500] {
        let (status, created) = server.create_payment(&key, "test", json!(amount));
        assert_eq!(status, 201, "{created}");
        for field in ["payment_id", "pay_url", "expires_at"] {
            assert!(created[field].is_string(), "no {field}: {created}");
        }
        assert_eq!(
            (
                created["provider"].as_str(),
                created["amount"].as_u64(),
                created["currency"].as_str(),
                created["status"].as_str(),
            ),
            (Some("test"), Some(amount), Some("USD"), Some("pending")),
            "{created}"
        );
        made.push(created["payment_id"].as_str().expect("id").to_string());
    }
    let (status, shown) = server.payment(&key, &made[0]);
    assert_eq!(status, 200, "{shown}");
    for field in ["created_at", "updated_at"] {
        assert!(shown[field].is_string(), "no {field}: {shown}");
    }
    assert!(shown["credited_ledger_index"].is_null(), "{shown}");
    let page = |query: &str| {
        let (status, body) = crate::harness::status_json(
            server
                .http
                .get(server.url(&format!("/v1/payments{query}")))
                .bearer_auth(&key)
                .send()
                .expect("list"),
        );
        assert_eq!(status, 200, "{body}");
        let ids: Vec<String> = body["payments"]
            .as_array()
            .expect("payments")
            .iter()
            .map(|p| p["payment_id"].as_str().expect("id").to_string())
            .collect();
        (ids, body["next_before"].as_str().map(str::to_string))
    };
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();
    assert_eq!(page(""), (newest_first.clone(), None));
    let (first, next) = page("?limit=2");
    assert_eq!(first, newest_first[..2]);
    assert_eq!(next.as_deref(), Some(newest_first[1].as_str()));
    let (second, next) = page(&format!("?limit=2&before={}", newest_first[1]));
    assert_eq!(second, newest_first[2..4]);
    let (third, next) = page(&format!("?limit=2&before={}", next.expect("more")));
    assert_eq!((third, next), (newest_first[4..].to_vec(), None));
    // Another account sees none of them.
    let other = server.account();
    let (status, body) = crate::harness::status_json(
        server
            .http
            .get(server.url("/v1/payments"))
            .bearer_auth(&other)
            .send()
            .expect("list"),
    );
    assert_eq!((status, body["payments"].clone()), (200, json!([])));
}

/// API.md: a replayed `Idempotency-Key` answers the first answer again. A member's client
/// that retries `POST /v1/payments` after the payment was paid gets the 201 it missed
/// (pending, nothing credited yet), marked `Idempotent-Replayed: true`, and one payment;
/// `GET /v1/payments/{id}` says it is paid.
#[test]
fn a_replayed_payment_key_answers_the_first_answer_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &test_provider(), None);
    let key = server.account();
    let create = || {
        server
            .http
            .post(server.url("/v1/payments"))
            .bearer_auth(&key)
            .header("idempotency-key", "top-up-1")
            .json(&json!({"provider": "test", "amount": 300}))
            .send()
            .expect("create")
    };
    let first = create();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let (status, first) = crate::harness::status_json(first);
    assert_eq!(status, 201, "{first}");
    let id = first["payment_id"].as_str().expect("id").to_string();
    let paid = server
        .http
        .post(server.url(&format!("/pay/{id}")))
        .send()
        .expect("pay");
    assert_eq!(paid.status(), 303);
    assert_eq!(server.payment(&key, &id).1["status"], "paid");

    let again = create();
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let (status, again) = crate::harness::status_json(again);
    assert_eq!(status, 201, "{again}");
    assert_eq!(again, first, "the first answer again");
    assert_eq!(server.payment(&key, &id).1["status"], "paid");
    assert_eq!(server.balance(&key), 300);
}
