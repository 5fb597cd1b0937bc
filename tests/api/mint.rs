//! The mint: purchase → verify → redeem → re-redeem.

use serde_json::json;

use crate::helpers::{assert_problem, TestServer};

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
    let (status, body) = server
        .post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamps[0], "context": "example.org/thread/42#7"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamps[0], "context": "example.org/thread/42#7"}),
        )
        .await;
    assert_problem(status, &body, 409, "stamp_already_spent");
}
