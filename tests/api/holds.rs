//! Holds over HTTP: hold → a spend refused as held → capture (idempotent) → the ledger's
//! redeem entry; release gives the stamps back; the errors of each route.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{assert_problem, TestServer};

async fn hold(server: &TestServer, stamps: &[String], context: &str, ttl: Value) -> (u16, Value) {
    let mut body = json!({"stamps": stamps, "context": context});
    if !ttl.is_null() {
        body["ttl_secs"] = ttl;
    }
    server.post("/v1/stamps/hold", None, body).await
}

#[tokio::test]
async fn a_hold_is_captured_once_into_one_redeem_entry() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 3).await;
    let (status, body) = hold(&server, &stamps[..2], "site/42", Value::Null).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["count"], 2);
    let hold_id = body["hold_id"].as_str().expect("a hold id").to_string();
    let (status, state) = server.get(&format!("/v1/holds/{hold_id}")).await;
    assert_eq!((status, state["state"].as_str()), (200, Some("held")));
    assert_eq!(state["expires_at"], body["expires_at"]);

    // Held: not spendable, not holdable again.
    let (status, body) = server.redeem(&stamps[0], "elsewhere").await;
    assert_problem(status, &body, 409, "stamp_held");
    let (status, body) = hold(&server, &stamps[1..], "elsewhere", json!(10)).await;
    assert_problem(status, &body, 409, "stamp_held");

    let capture = format!("/v1/holds/{hold_id}/capture");
    let (status, captured) = server.post(&capture, None, json!({})).await;
    assert_eq!(status, 200, "{captured}");
    let (status, again) = server.post(&capture, None, json!({})).await;
    assert_eq!(
        (status, &again),
        (200, &captured),
        "a capture is idempotent"
    );
    let index = captured["ledger_index"].as_u64().expect("an index");
    let (status, entries) = server
        .get_text(&format!("/v1/ledger/entries?start={index}&limit=1"))
        .await;
    assert_eq!(status, 200);
    let entry: Value = serde_json::from_str(entries.trim()).expect("an entry");
    assert_eq!(entry["kind"], "spend");
    assert_eq!(entry["action"], "redeem");
    assert_eq!(entry["target"], hex::encode(Sha256::digest(b"site/42")));
    let (_, stamp) = server
        .get(&format!(
            "/v1/stamps/{}",
            crate::helpers::stamp_id(&stamps[1])
        ))
        .await;
    assert_eq!(stamp["state"], "spent");
    let (status, body) = server
        .post(&format!("/v1/holds/{hold_id}/release"), None, json!({}))
        .await;
    assert_problem(status, &body, 409, "hold_captured");
    let (_, state) = server.get(&format!("/v1/holds/{hold_id}")).await;
    assert_eq!(state["state"], "captured");
    let (status, body) = server.redeem(&stamps[0], "again").await;
    assert_problem(status, &body, 409, "stamp_already_spent");
}

#[tokio::test]
async fn a_release_gives_the_stamps_back_and_errors_are_named() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 1).await;
    for (ttl, context) in [(json!(0), "x"), (json!(301), "x"), (json!(30), "")] {
        let (status, body) = hold(&server, &stamps, context, ttl).await;
        assert_problem(status, &body, 400, "bad_request");
    }
    let (status, body) = hold(&server, &stamps, "site", json!(300)).await;
    assert_eq!(status, 201, "{body}");
    let hold_id = body["hold_id"].as_str().expect("a hold id").to_string();
    let release = format!("/v1/holds/{hold_id}/release");
    let (status, body) = server.post(&release, None, json!({})).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("released")));
    let (status, body) = server.post(&release, None, json!({})).await;
    assert_eq!(status, 200, "a release is idempotent: {body}");
    let (status, body) = server
        .post(&format!("/v1/holds/{hold_id}/capture"), None, json!({}))
        .await;
    assert_problem(status, &body, 409, "hold_expired");
    let (status, body) = server.redeem(&stamps[0], "after the release").await;
    assert_eq!(status, 201, "{body}");
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/v1/holds/{unknown}/capture"),
        format!("/v1/holds/{unknown}/release"),
    ] {
        let (status, body) = server.post(&path, None, json!({})).await;
        assert_problem(status, &body, 404, "not_found");
    }
    let (status, body) = server.get(&format!("/v1/holds/{unknown}")).await;
    assert_problem(status, &body, 404, "not_found");
}

/// Seconds from now to an RFC 3339 time of an answer.
fn secs_from_now(text: &Value) -> i64 {
    let at = time::OffsetDateTime::parse(
        text.as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    (at - time::OffsetDateTime::now_utc()).whole_seconds()
}

/// GATE.md: `ttl_secs` is 30 when absent; `GET /v1/holds/{id}` answers the state and count;
/// each stamp passes the checks of STAMP-FORMAT.md (a bad one is refused with its own code,
/// and nothing is held).
#[tokio::test]
async fn a_hold_lasts_thirty_seconds_by_default_and_checks_each_stamp() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 3).await;
    let (status, body) = hold(&server, &stamps[..2], "site", Value::Null).await;
    assert_eq!(status, 201, "{body}");
    let left = secs_from_now(&body["expires_at"]);
    assert!(
        (27..=30).contains(&left),
        "{left} s left of a default hold: {body}"
    );
    let (status, shown) = server
        .get(&format!(
            "/v1/holds/{}",
            body["hold_id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        (shown["state"].as_str(), shown["count"].as_u64()),
        (Some("held"), Some(2))
    );
    let (status, body) = hold(&server, &stamps[2..], "site", json!(120)).await;
    assert_eq!(status, 201, "{body}");
    let left = secs_from_now(&body["expires_at"]);
    assert!(
        (117..=120).contains(&left),
        "{left} s left of a 120 s hold: {body}"
    );

    let (_key, fresh) = server.stamps(10, 2).await;
    let (payload, mut signature) = crate::helpers::stamp_parts(&fresh[1]);
    signature[0] ^= 1;
    let forged = crate::helpers::stamp_text(&payload, &signature);
    let (status, body) = hold(&server, &[fresh[0].clone(), forged], "site", Value::Null).await;
    assert_problem(status, &body, 422, "bad_signature");
    let (status, body) = hold(&server, &["pp1.nope".to_string()], "site", Value::Null).await;
    assert_problem(status, &body, 422, "invalid_stamp");
    // All or none: the good stamp of the refused hold is not held.
    let (status, body) = server.redeem(&fresh[0], "not held").await;
    assert_eq!(status, 201, "{body}");
}

/// GATE.md: a capture re-checks every stamp; a stamp revoked meanwhile (PAYMENTS.md revokes
/// held stamps too) makes it 409 `stamp_already_spent`, and the hold ends.
#[tokio::test]
async fn a_capture_after_a_revoke_is_stamp_already_spent_and_ends_the_hold() {
    let server = TestServer::start_with(&["--stamp-price", "5"]).await;
    let (id, key) = server.account().await;
    let (status, body) = server.credit(&id, 10, "cash-1").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.purchase(&key, 2, None).await;
    assert_eq!(status, 201, "{body}");
    let stamps: Vec<String> = serde_json::from_value(body["stamps"].clone()).expect("stamps");
    let (status, held) = hold(&server, &stamps, "site/1", Value::Null).await;
    assert_eq!(status, 201, "{held}");
    let hold_id = held["hold_id"].as_str().expect("id").to_string();
    // A debit of 5 from a balance of 0: the last stamp bought is revoked, though held.
    let (status, body) = server
        .post(
            &format!("/v1/admin/accounts/{id}/debit"),
            Some(crate::helpers::ADMIN_TOKEN),
            json!({"amount": 5, "reference": "chargeback-1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"]["stamps"], 1, "{body}");
    let (status, body) = server
        .post(&format!("/v1/holds/{hold_id}/capture"), None, json!({}))
        .await;
    assert_problem(status, &body, 409, "stamp_already_spent");
    let (_, shown) = server.get(&format!("/v1/holds/{hold_id}")).await;
    assert_ne!(shown["state"], "held", "the hold ended: {shown}");
    // Its other stamp is free again at once.
    let (status, body) = server.redeem(&stamps[0], "after the hold ended").await;
    assert_eq!(status, 201, "{body}");
}
