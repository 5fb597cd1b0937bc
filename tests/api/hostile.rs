//! Hostile input, table-driven over every route: malformed JSON, wrong types, missing fields,
//! huge and negative numbers, empty and oversized strings, bad UTF-8, wrong content type,
//! oversized bodies, path traversal in ids and garbage stamps. Every answer is a 4xx
//! problem+json with a stable code (never a 5xx, never a hang), and no failed request changes
//! anything: the ledger size and the balance are the same before and after.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{TestServer, ADMIN_TOKEN};

/// The codes docs/api.md defines, plus the server's documented extensions.
const STABLE_CODES: &[&str] = &[
    "bad_request",
    "unauthorized",
    "insufficient_funds",
    "not_found",
    "stamp_already_spent",
    "idempotency_conflict",
    "payload_too_large",
    "invalid_stamp",
    "unknown_key",
    "bad_signature",
    "stamp_expired",
    "wrong_stamp_count",
    "rate_limited",
    "method_not_allowed",
];

/// Bodies that are not a valid request for any route that takes a JSON object.
fn malformed_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("not json", b"hello".to_vec()),
        ("truncated json", b"{\"count\": ".to_vec()),
        (
            "bad utf-8",
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
        ),
        ("array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("string", b"\"x\"".to_vec()),
        ("number", b"123".to_vec()),
        ("deep nesting", "[".repeat(10_000).into_bytes()),
        ("nul bytes", b"{\"a\":\"\x00\"}\x00".to_vec()),
    ]
}

/// Field values of every wrong kind for `field`. Free-text fields (a name, a reference, a
/// context, an author, a body) take any non-empty string within their bound, so they get only
/// the values no free text may have; the others get garbage strings too.
fn wrong_values(field: &str) -> Vec<(&'static str, Value)> {
    let free_text = ["name", "reference", "context", "author", "body"].contains(&field);
    let mut values = vec![
        ("true", json!(true)),
        ("array", json!([1, 2])),
        ("object", json!({"a": 1})),
        ("null", Value::Null),
        ("negative", json!(-1)),
        ("float", json!(1.5)),
        ("huge", json!(1e300)),
        (
            "u64 max + 1",
            serde_json::from_str("18446744073709551616").expect("number"),
        ),
        ("empty string", json!("")),
    ];
    if !free_text {
        values.extend([
            ("unicode", json!("\u{202e}\u{0000}é🦀")),
            ("garbage stamp", json!("pp1.AAAA.BBBB")),
            ("path traversal", json!("../../etc/passwd")),
            ("list of garbage", json!(["pp1.", "x"])),
            ("empty list", json!([])),
        ]);
    }
    values
}

struct Target {
    path: String,
    token: Option<String>,
    /// A valid body, whose fields are replaced one at a time.
    valid: Value,
}

async fn send(
    server: &TestServer,
    target: &Target,
    body: Vec<u8>,
    content_type: &str,
) -> (u16, String, Value) {
    let mut request = server
        .client
        .post(server.url(&target.path))
        .header("content-type", content_type)
        .timeout(Duration::from_secs(20))
        .body(body);
    if let Some(token) = &target.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answered (no hang)");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        content_type,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_refused(what: &str, status: u16, content_type: &str, body: &Value) {
    assert!(
        (400..500).contains(&status),
        "{what}: status {status}: {body}"
    );
    assert_eq!(content_type, "application/problem+json", "{what}: {body}");
    let code = body["code"].as_str().unwrap_or("");
    assert!(
        STABLE_CODES.contains(&code),
        "{what}: code {code:?}: {body}"
    );
    assert_eq!(body["status"], status, "{what}: {body}");
}

async fn ledger_size(server: &TestServer) -> usize {
    let (_, text) = server.get_text("/v1/ledger/entries?limit=1000").await;
    text.lines().count()
}

async fn balance(server: &TestServer, key: &str) -> u64 {
    let response = server
        .client
        .get(server.url("/v1/account"))
        .bearer_auth(key)
        .send()
        .await
        .expect("account");
    let body: Value = response.json().await.expect("json");
    body["balance"].as_u64().expect("balance")
}

#[tokio::test]
async fn every_route_refuses_hostile_input_and_changes_nothing() {
    let server = TestServer::start_with(&["--rate-auth-failures-per-minute", "0"]).await;
    let (id, key) = server.account().await;
    server.credit(&id, 50, "hostile-credit").await;
    let (status, bought) = server
        .post("/v1/stamps/purchase", Some(&key), json!({"count": 2}))
        .await;
    assert_eq!(status, 201, "{bought}");
    let stamp = bought["stamps"][0].as_str().expect("stamp").to_string();
    let (status, post) = server
        .post(
            "/v1/posts",
            None,
            json!({"author": "a", "body": "b", "stamps": [bought["stamps"][1]]}),
        )
        .await;
    assert_eq!(status, 201, "{post}");
    let post_id = post["post_id"].as_str().expect("post id").to_string();

    let size_before = ledger_size(&server).await;
    let balance_before = balance(&server, &key).await;

    let targets = vec![
        Target {
            path: format!("/v1/admin/accounts/{id}/credit"),
            token: Some(ADMIN_TOKEN.to_string()),
            valid: json!({"amount": 5, "reference": "hostile-ref"}),
        },
        Target {
            path: "/v1/stamps/purchase".into(),
            token: Some(key.clone()),
            valid: json!({"count": 1}),
        },
        Target {
            path: "/v1/stamps/redeem".into(),
            token: None,
            valid: json!({"stamp": stamp, "context": "c"}),
        },
        Target {
            path: "/v1/posts".into(),
            token: None,
            valid: json!({"author": "a", "body": "b", "stamps": [stamp]}),
        },
        Target {
            path: format!("/v1/posts/{post_id}/votes"),
            token: None,
            valid: json!({"direction": "up", "stamps": [stamp]}),
        },
        Target {
            path: "/v1/stamps/verify".into(),
            token: None,
            valid: json!({"stamp": stamp}),
        },
        Target {
            path: "/v1/accounts".into(),
            token: None,
            valid: json!({"name": "n"}),
        },
    ];

    let mut cases = 0;
    for target in &targets {
        for (name, body) in malformed_bodies() {
            let (status, ct, answer) = send(&server, target, body, "application/json").await;
            assert_refused(&format!("{} {name}", target.path), status, &ct, &answer);
            cases += 1;
        }
        let valid = serde_json::to_vec(&target.valid).expect("json");
        let (status, ct, answer) = send(&server, target, valid.clone(), "text/plain").await;
        assert_refused(
            &format!("{} wrong content type", target.path),
            status,
            &ct,
            &answer,
        );
        let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(70_000)).into_bytes();
        let (status, ct, answer) = send(&server, target, big, "application/json").await;
        assert_refused(&format!("{} oversized", target.path), status, &ct, &answer);
        assert_eq!(answer["code"], "payload_too_large", "{answer}");
        cases += 2;
        let fields: Vec<String> = target
            .valid
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        for field in &fields {
            for (name, value) in wrong_values(field) {
                let mut body = target.valid.clone();
                body[field.as_str()] = value;
                // A verify of a bad stamp is a 200 that says why (docs/api.md); nothing else may
                // succeed.
                let (status, ct, answer) = send(
                    &server,
                    target,
                    serde_json::to_vec(&body).expect("json"),
                    "application/json",
                )
                .await;
                cases += 1;
                if status < 300 {
                    // (and an account's optional name may be null).
                    assert!(
                        target.path.ends_with("/verify")
                            || (target.path == "/v1/accounts" && name == "null"),
                        "{} {field}={name} succeeded: {answer}",
                        target.path
                    );
                    continue;
                }
                assert_refused(
                    &format!("{} {field}={name}", target.path),
                    status,
                    &ct,
                    &answer,
                );
            }
            if target.path != "/v1/accounts" {
                let mut body = target.valid.clone();
                body.as_object_mut().map(|o| o.remove(field.as_str()));
                let (status, ct, answer) = send(
                    &server,
                    target,
                    serde_json::to_vec(&body).expect("json"),
                    "application/json",
                )
                .await;
                assert_refused(
                    &format!("{} missing {field}", target.path),
                    status,
                    &ct,
                    &answer,
                );
                cases += 1;
            }
        }
    }

    // Path ids and query strings.
    for path in [
        "/v1/stamps/..%2F..%2Fetc%2Fpasswd",
        "/v1/stamps/not-a-uuid",
        "/v1/stamps/00000000-0000-0000-0000-00000000000g",
        "/v1/posts/%2e%2e",
        "/v1/posts/../../etc/passwd",
        "/v1/posts?limit=-1",
        "/v1/posts?limit=99999999999999999999999",
        "/v1/posts?before=..%2F",
        "/v1/ledger/entries?start=-1",
        "/v1/ledger/entries?start=99999999999999999999",
        "/v1/ledger/entries?limit=abc",
        "/v1/ledger/proof/inclusion?index=5&size=1",
        "/v1/ledger/proof/inclusion?index=a&size=b",
        "/v1/ledger/proof/consistency?from=0&to=0",
        "/v1/ledger/proof/consistency?from=9&to=99999999",
        "/tile/../../etc/passwd",
        "/tile/0/x999",
        // tlog_tiles panics on these unless the server refuses them first.
        "/tile/64/000",
        "/tile/0/000.p/0",
        "/tile/entries/000.p/0",
    ] {
        let response = server
            .client
            .get(server.url(path))
            .send()
            .await
            .expect("get");
        let status = response.status().as_u16();
        let ct = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert_refused(path, status, &ct, &answer);
        cases += 1;
    }

    // Wrong methods.
    for (method, path) in [
        ("DELETE", "/v1/posts"),
        ("PUT", "/v1/stamps/redeem"),
        ("GET", "/v1/stamps/purchase"),
    ] {
        let response = server
            .client
            .request(method.parse().expect("method"), server.url(path))
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 405, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "method_not_allowed");
    }

    assert!(cases > 200, "{cases} cases");
    // Accounts may have been created by the /v1/accounts cases; nothing else changed.
    assert_eq!(
        ledger_size(&server).await,
        size_before,
        "a refused request wrote the ledger"
    );
    assert_eq!(
        balance(&server, &key).await,
        balance_before,
        "a refused request moved money"
    );
    let (status, body) = server
        .post("/v1/stamps/verify", None, json!({"stamp": stamp}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["state"], "unspent",
        "the stamp used in every case is still unspent: {body}"
    );
    let (_, audit) = server.get("/v1/audit").await;
    assert_eq!(audit["ok"], true, "{audit}");
}
