//! Money in and out by the operator's hand: credits that carry their source and may not take a
//! payment provider's reference.

use crate::helpers::{assert_problem, TestServer};

#[tokio::test]
async fn an_operator_credit_with_a_provider_reference_is_refused() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    for reference in ["stripe:cs_test_1", "btcpay:inv-1", "test:p-1"] {
        let (status, body) = server.credit(&id, 100, reference).await;
        assert_problem(status, &body, 400, "reserved_reference");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("payment provider"), "{body}");
    }
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["balance"], 0, "nothing credited: {account}");
    let (_, entries) = server.get_text("/v1/ledger/entries?start=0").await;
    assert!(
        !entries.contains("\"kind\":\"credit\""),
        "no credit entry: {entries}"
    );
    // Anything else is the operator's, and its entry says so.
    let (status, body) = server.credit(&id, 100, "Stripe-invoice:1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], 100, "{body}");
    let index = body["ledger_index"].as_u64().expect("index");
    let (_, entry) = server
        .get_text(&format!("/v1/ledger/entries?start={index}&limit=1"))
        .await;
    let entry: serde_json::Value = serde_json::from_str(entry.trim()).expect("entry");
    assert_eq!(entry["kind"], "credit", "{entry}");
    assert_eq!(entry["source"], "operator", "{entry}");
    let (_, audit) = server.get("/v1/audit").await;
    assert_eq!(audit["ok"], true, "{audit}");
    assert_eq!(audit["credits_by_source"]["operator"], 100, "{audit}");
}
