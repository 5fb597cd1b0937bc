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
