//! Money in and out by the operator's hand: credits that carry their source and may not take a
//! payment provider's reference; debits, the stamps they revoke and the debts they leave.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, stamp_id, TestServer, ADMIN_TOKEN};

#[tokio::test]
async fn an_operator_credit_with_a_provider_reference_is_refused() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    for reference in ["stripe:cs_test_1", "btcpay:inv-1", "test:p-1"] {
        let (status, body) = server.credit(&id, 100, reference).await;
        assert_problem(status, &body, 400, "bad_request");
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("payment provider"),
            "{body}"
        );
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

/// `POST /v1/admin/accounts/{id}/debit` with the admin token: (status, replayed, body).
async fn debit(server: &TestServer, id: &str, amount: u64, reference: &str) -> (u16, bool, Value) {
    let response = server
        .client
        .post(server.url(&format!("/v1/admin/accounts/{id}/debit")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"amount": amount, "reference": reference}))
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let body = response.json().await.expect("a JSON body");
    (status, replayed, body)
}

#[tokio::test]
async fn an_admin_debit_revokes_stamps_and_leaves_a_debt() {
    // One stamp costs 5: the account buys 4 (20) of its 30.
    let server = TestServer::start_with(&["--stamp-price", "5"]).await;
    let (id, key) = server.account().await;
    let (status, body) = server.credit(&id, 30, "cash-1").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.purchase(&key, 4, None).await;
    assert_eq!(status, 201, "{body}");
    let stamps: Vec<String> = serde_json::from_value(body["stamps"].clone()).expect("stamps");
    let (status, body) = server.redeem(&stamps[3], "spent first").await;
    assert_eq!(status, 201, "{body}");

    // Within the balance: no revoke.
    let (status, replayed, first) = debit(&server, &id, 4, "correction-1").await;
    assert_eq!(status, 200, "{first}");
    assert!(!replayed);
    assert_eq!(first["balance"], 6, "{first}");
    assert!(first.get("revoked").is_none(), "{first}");
    // The same again: the first answer, marked as a replay.
    let (status, replayed, again) = debit(&server, &id, 4, "correction-1").await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again, first);

    // 6 − 40 = −34: the three unspent stamps (15) come back, latest first; −19 stays owed.
    let (status, _, body) = debit(&server, &id, 40, "correction-2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], -19, "{body}");
    assert_eq!(body["revoked"]["stamps"], 3, "{body}");
    assert_eq!(body["revoked"]["amount"], 15, "{body}");
    let revoke_index = body["revoked"]["ledger_index"].as_u64().expect("index");
    assert_eq!(
        revoke_index,
        body["ledger_index"].as_u64().expect("index") + 1
    );
    let (_, entry) = server
        .get_text(&format!("/v1/ledger/entries?start={revoke_index}&limit=1"))
        .await;
    let entry: Value = serde_json::from_str(entry.trim()).expect("entry");
    assert_eq!(entry["action"], "revoke", "{entry}");
    let ids: Vec<String> = (0..3).rev().map(|i| stamp_id(&stamps[i])).collect();
    assert_eq!(entry["stamp_ids"], json!(ids), "{entry}");

    // The account shows its debt; a revoked stamp is spent; nothing is sold.
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["balance"], -19, "{account}");
    let (status, body) = server.redeem(&stamps[0], "after the revoke").await;
    assert_problem(status, &body, 409, "stamp_already_spent");
    let (status, body) = server.purchase(&key, 1, None).await;
    assert_problem(status, &body, 402, "insufficient_funds");
    assert!(
        body["detail"].as_str().unwrap_or_default().contains("-19"),
        "{body}"
    );
    // A credit pays the debt off first.
    let (status, body) = server.credit(&id, 20, "cash-2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], 1, "{body}");

    let (_, audit) = server.get("/v1/audit").await;
    assert_eq!(audit["ok"], true, "{audit}");
    assert_eq!(audit["debits_total"], 44, "{audit}");
    assert_eq!(audit["revoked_total"], 15, "{audit}");
}

#[tokio::test]
async fn an_admin_debit_is_refused_as_a_credit_is() {
    let server = TestServer::start().await;
    let (id, _) = server.account().await;
    server.credit(&id, 10, "paid").await;
    let (status, _, body) = debit(&server, &id, 5, "stripe:refund:ch_1:5").await;
    assert_problem(status, &body, 400, "bad_request");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("payment provider"),
        "{body}"
    );
    // A credit's reference is not a debit's.
    let (status, _, body) = debit(&server, &id, 10, "paid").await;
    assert_problem(status, &body, 409, "idempotency_conflict");
    let (status, _, body) = debit(&server, &id, 0, "zero").await;
    assert_problem(status, &body, 400, "bad_request");
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, _, body) = debit(&server, &unknown, 5, "nobody").await;
    assert_problem(status, &body, 404, "not_found");
    let response = server
        .client
        .post(server.url(&format!("/v1/admin/accounts/{id}/debit")))
        .bearer_auth("not-the-token")
        .json(&json!({"amount": 1, "reference": "r"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 401);
    let (_, audit) = server.get("/v1/audit").await;
    assert_eq!(audit["debits_total"], 0, "{audit}");
}
