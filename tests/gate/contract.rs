//! The gate's side of the hold contract (GATE.md, "Holds"), against a stand-in mint of the
//! test's own that answers hold, capture and release as the contract says and records every
//! call. It runs now, while the real mint has no holds; `holds.rs` runs the same flow against
//! the real `pennypost serve` once it does.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::harness::{self, Gate, Upstream};

/// One call the stand-in mint received.
#[derive(Clone, Debug, PartialEq)]
enum Call {
    Hold {
        stamps: Vec<String>,
        context: String,
        ttl_secs: u64,
        forwarded_for: String,
    },
    Capture(String),
    Release(String),
}

#[derive(Clone, Default)]
struct Book {
    calls: Arc<Mutex<Vec<Call>>>,
    /// Stamps the mint calls spent: a hold of one is 409 `stamp_already_spent`.
    spent: Arc<Mutex<Vec<String>>>,
    /// Captures to answer 503 before one succeeds.
    failing_captures: Arc<Mutex<u32>>,
}

struct FakeMint {
    url: String,
    book: Book,
}

impl FakeMint {
    async fn start() -> FakeMint {
        let book = Book::default();
        let router = Router::new()
            .route("/v1/stamps/hold", post(hold))
            .route("/v1/holds/{id}/capture", post(capture))
            .route("/v1/holds/{id}/release", post(release))
            .with_state(book.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        FakeMint { url, book }
    }

    fn calls(&self) -> Vec<Call> {
        self.book.calls.lock().expect("lock").clone()
    }
}

fn problem(status: StatusCode, code: &str) -> Response {
    (
        status,
        [("content-type", "application/problem+json")],
        json!({"type": format!("https://pennypost.dev/problems/{code}"), "title": code,
               "status": status.as_u16(), "detail": code, "code": code})
        .to_string(),
    )
        .into_response()
}

async fn hold(State(book): State<Book>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let stamps: Vec<String> = body["stamps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    book.calls.lock().expect("lock").push(Call::Hold {
        stamps: stamps.clone(),
        context: body["context"].as_str().unwrap_or_default().to_string(),
        ttl_secs: body["ttl_secs"].as_u64().unwrap_or_default(),
        forwarded_for: headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    });
    if stamps
        .iter()
        .any(|s| book.spent.lock().expect("lock").contains(s))
    {
        return problem(StatusCode::CONFLICT, "stamp_already_spent");
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    (
        StatusCode::CREATED,
        Json(json!({"hold_id": id, "expires_at": "2030-01-01T00:00:00Z", "count": stamps.len()})),
    )
        .into_response()
}

async fn capture(State(book): State<Book>, Path(id): Path<String>) -> Response {
    book.calls.lock().expect("lock").push(Call::Capture(id));
    let mut failing = book.failing_captures.lock().expect("lock");
    if *failing > 0 {
        *failing -= 1;
        return problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    }
    Json(json!({"ledger_index": 7, "spent_at": "2030-01-01T00:00:00Z"})).into_response()
}

async fn release(State(book): State<Book>, Path(id): Path<String>) -> Response {
    book.calls.lock().expect("lock").push(Call::Release(id));
    Json(json!({})).into_response()
}

/// A stamp that decodes (signed by a key of the test's own: the stand-in mint checks nothing).
fn stamp(n: u8) -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&[n; 32]);
    pennypost::stamp::sign(
        &pennypost::stamp::Payload {
            kid: pennypost::stamp::Kid::of(&key.verifying_key()),
            stamp_id: uuid::Uuid::from_bytes([n; 16]),
            issued_at: 1_700_000_000,
            expires_at: 4_000_000_000,
            value: pennypost::stamp::VALUE_V1,
            holder: [0; 32],
        },
        &key,
    )
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hold_id(call: &Call) -> String {
    match call {
        Call::Capture(id) | Call::Release(id) => id.clone(),
        other => panic!("not a capture or release: {other:?}"),
    }
}

#[tokio::test]
async fn a_paid_request_is_held_forwarded_with_a_receipt_then_captured() {
    let upstream = Upstream::start().await;
    let mint = FakeMint::start().await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &mint.url,
        "hold_ttl_secs = 45",
    ));
    let (a, b) = (stamp(1), stamp(2));
    let header = format!("{a}, {b}");
    let answer = gate
        .send(
            "POST",
            "/pair?thread=1",
            &[
                ("pennypost-stamps", &header),
                ("pennypost-paid", "99"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
            "text=hello",
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(&answer.body[..], b"upstream ok");
    let calls = mint.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let context = format!(
        "gate/v1 POST {} {} {}",
        gate.address,
        hex_sha256(b"/pair?thread=1"),
        hex_sha256(b"text=hello")
    );
    assert_eq!(
        calls[0],
        Call::Hold {
            stamps: vec![a, b],
            context,
            ttl_secs: 45,
            forwarded_for: "127.0.0.1".into(),
        }
    );
    let id = hold_id(&calls[1]);
    assert!(matches!(calls[1], Call::Capture(_)));
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.headers["pennypost-paid"], "2");
    assert_eq!(
        request.headers["pennypost-receipt"].to_str().expect("text"),
        hex_sha256(id.as_bytes())
    );
    assert!(!request.headers.contains_key("pennypost-stamps"));
    assert_eq!(
        request.headers["x-forwarded-for"],
        "198.51.100.7, 127.0.0.1"
    );
    assert_eq!(&request.body[..], b"text=hello");
}

#[tokio::test]
async fn form_fields_are_cut_out_and_the_context_hashes_what_was_forwarded() {
    let upstream = Upstream::start().await;
    let mint = FakeMint::start().await;
    let gate = Gate::start(&harness::config(&upstream.url(), &mint.url, ""));
    let body = format!("text=hi+there&pennypost_stamps={}&more=%26", stamp(3));
    let answer = gate
        .send(
            "POST",
            "/see-other",
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await;
    assert_eq!(
        answer.status, 303,
        "a redirect captures by default: {answer:?}"
    );
    let forwarded = b"text=hi+there&more=%26";
    assert_eq!(&upstream.seen()[0].body[..], forwarded);
    assert_eq!(
        upstream.seen()[0].headers["content-length"],
        forwarded.len().to_string().as_str()
    );
    let calls = mint.calls();
    match &calls[0] {
        Call::Hold {
            context,
            stamps,
            ttl_secs,
            ..
        } => {
            assert_eq!(stamps, &vec![stamp(3)]);
            // GATE.md: `hold_ttl_secs` is 60 when the file does not say.
            assert_eq!(*ttl_secs, 60);
            assert!(context.ends_with(&hex_sha256(forwarded)), "{context}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(calls[1], Call::Capture(_)), "{calls:?}");
}

#[tokio::test]
async fn a_failure_of_the_site_releases_and_is_passed_on() {
    let upstream = Upstream::start().await;
    let mint = FakeMint::start().await;
    let gate = Gate::start(&harness::config(&upstream.url(), &mint.url, ""));
    let answer = gate
        .send("POST", "/fail", &[("pennypost-stamps", &stamp(4))], "")
        .await;
    assert_eq!(answer.status, 500);
    assert_eq!(&answer.body[..], b"upstream failed");
    let calls = mint.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(matches!(calls[1], Call::Release(_)), "{calls:?}");
}

#[tokio::test]
async fn a_capture_the_mint_did_not_answer_is_tried_again() {
    let upstream = Upstream::start().await;
    let mint = FakeMint::start().await;
    *mint.book.failing_captures.lock().expect("lock") = 2;
    let gate = Gate::start(&harness::config(&upstream.url(), &mint.url, ""));
    let answer = gate
        .send("POST", "/comments", &[("pennypost-stamps", &stamp(5))], "")
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let calls = mint.calls();
    assert_eq!(calls.len(), 4, "a hold and three captures: {calls:?}");
    let id = hold_id(&calls[1]);
    for call in &calls[1..] {
        assert_eq!(call, &Call::Capture(id.clone()));
    }
}

#[tokio::test]
async fn a_refusal_of_the_mint_is_passed_on_and_nothing_is_forwarded() {
    let upstream = Upstream::start().await;
    let mint = FakeMint::start().await;
    mint.book.spent.lock().expect("lock").push(stamp(6));
    let gate = Gate::start(&harness::config(&upstream.url(), &mint.url, ""));
    gate.send("POST", "/comments", &[("pennypost-stamps", &stamp(6))], "")
        .await
        .problem(409, "stamp_already_spent");
    assert!(upstream.seen().is_empty());
    assert_eq!(mint.calls().len(), 1);
}

/// GATE.md: the stamps of the header and of every `pennypost_stamps` field count together,
/// and all of them are removed before forwarding (also when both are present), the field given
/// once per stamp or comma-separated; the rest of the body reaches the site byte for byte.
#[tokio::test]
async fn stamps_in_the_header_and_form_fields_together_are_all_cut_out() {
    let upstream = Upstream::start().await;
    let mint = FakeMint::start().await;
    let gate = Gate::start(&harness::config(&upstream.url(), &mint.url, ""));
    let (a, b, c) = (stamp(7), stamp(8), stamp(9));
    // `POST /pair` costs 2: one in the header, one in a field.
    let body = format!("pennypost_stamps={b}&text=two+halves");
    let answer = gate
        .send(
            "POST",
            "/pair",
            &[
                ("pennypost-stamps", &a),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body,
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = upstream.seen();
    assert_eq!(&seen[0].body[..], b"text=two+halves");
    assert!(!seen[0].headers.contains_key("pennypost-stamps"));
    // Multipart: two stamps comma-separated in one field, then a stamp in the header and one
    // in each of two fields.
    let boundary = "gate-b";
    let part = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let kept = format!("{}--{boundary}--\r\n", part("text", "hi"));
    let comma = format!(
        "{}{}--{boundary}--\r\n",
        part("text", "hi"),
        part("pennypost_stamps", &format!("{a}, {b}"))
    );
    let answer = gate
        .send("POST", "/pair", &[("content-type", &content_type)], comma)
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(String::from_utf8_lossy(&upstream.seen()[1].body), kept);
    let split = format!(
        "{}{}{}--{boundary}--\r\n",
        part("pennypost_stamps", &b),
        part("text", "hi"),
        part("pennypost_stamps", &c)
    );
    let answer = gate
        .send(
            "POST",
            "/pair",
            &[("content-type", &content_type), ("pennypost-stamps", &a)],
            split,
        )
        .await;
    // Three stamps for a price of two: refused, nothing forwarded, nothing held.
    assert_eq!(answer.problem(422, "wrong_stamp_count")["required"], 2);
    assert_eq!(upstream.seen().len(), 2);
    let holds: Vec<Vec<String>> = mint
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            Call::Hold { stamps, .. } => Some(stamps),
            _ => None,
        })
        .collect();
    assert_eq!(
        holds,
        vec![vec![a.clone(), b.clone()], vec![a.clone(), b.clone()]]
    );
}

/// GATE.md, "Metrics on the gate": requests by rule and outcome (paid, released), upstream
/// latency by rule, and hold, capture and release latency.
#[tokio::test]
async fn metrics_count_paid_and_released_requests_and_time_the_mint_calls() {
    let upstream = Upstream::start().await;
    let mint = FakeMint::start().await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &mint.url,
        "metrics_listen = \"127.0.0.1:0\"",
    ));
    let metrics = gate.metrics.clone().expect("the gate's metrics");
    let paid = gate
        .send("POST", "/comments", &[("pennypost-stamps", &stamp(10))], "")
        .await;
    assert_eq!(paid.status, 200, "{paid:?}");
    let released = gate
        .send("POST", "/fail", &[("pennypost-stamps", &stamp(11))], "")
        .await;
    assert_eq!(released.status, 500, "{released:?}");
    let text = reqwest::get(metrics)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "pennypost_gate_requests_total{rule=\"POST /comments\",outcome=\"paid\"} 1",
        "pennypost_gate_requests_total{rule=\"POST /fail\",outcome=\"released\"} 1",
        "pennypost_gate_upstream_seconds_count{rule=\"POST /comments\"} 1",
        "pennypost_gate_upstream_seconds_count{rule=\"POST /fail\"} 1",
        "pennypost_gate_hold_seconds_count{outcome=\"ok\"} 2",
        "pennypost_gate_capture_seconds_count{outcome=\"ok\"} 1",
        "pennypost_gate_release_seconds_count{outcome=\"ok\"} 1",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
}
