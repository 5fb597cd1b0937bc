//! Unpriced requests pass through untouched: bodies and answers stream, WebSockets and
//! server-sent events work, and the headers a client could spoof are dropped. The gate's own
//! paths are answered by the gate and never forwarded.

use std::time::Duration;

use axum::body::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::harness::{self, Gate, Mint, Upstream};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn unpriced_bodies_stream_and_have_no_limit_of_the_gate() {
    let upstream = Upstream::start().await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &harness::closed_port_url(),
        "max_body_bytes = 1024",
    ));
    let (send, receive) = tokio::sync::mpsc::channel::<Bytes>(2);
    let stream = futures_util::stream::unfold(receive, |mut receive| async move {
        receive.recv().await.map(|chunk| {
            (
                Ok::<_, std::convert::Infallible>(Frame::data(chunk)),
                receive,
            )
        })
    });
    let client = Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::post(format!("{}/upload", gate.url))
        .body(StreamBody::new(Box::pin(stream)))
        .expect("request");
    let answer = tokio::spawn(client.request(request));
    send.send(Bytes::from(vec![b'a'; 4096]))
        .await
        .expect("first chunk");
    // The upstream has the first chunk while the client is still sending: the gate streams.
    tokio::time::timeout(WAIT, upstream.arrived.notified())
        .await
        .expect("the first chunk reaches the upstream before the body ends");
    send.send(Bytes::from(vec![b'b'; 4096]))
        .await
        .expect("second chunk");
    drop(send);
    let response = answer.await.expect("join").expect("answer");
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    // 8 KiB through a gate whose priced limit is 1 KiB.
    assert_eq!(&body[..], b"8192");
}

#[tokio::test]
async fn server_sent_events_stream_through() {
    let upstream = Upstream::start().await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &harness::closed_port_url(),
        "",
    ));
    let mut response = reqwest::Client::new()
        .get(format!("{}/events", gate.url))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let first = tokio::time::timeout(WAIT, response.chunk())
        .await
        .expect("the first event arrives before the stream ends")
        .expect("chunk")
        .expect("a chunk");
    assert_eq!(&first[..], b"data: one\n\n");
    upstream.go_on.notify_one();
    let rest = tokio::time::timeout(WAIT, response.bytes())
        .await
        .expect("the rest")
        .expect("bytes");
    assert_eq!(&rest[..], b"data: two\n\n");
}

#[tokio::test]
async fn a_websocket_passes_through() {
    let upstream = Upstream::start().await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &harness::closed_port_url(),
        "",
    ));
    let stream = tokio::net::TcpStream::connect(gate.address)
        .await
        .expect("connect");
    let (mut socket, response) =
        tokio_tungstenite::client_async(format!("ws://{}/ws", gate.address), stream)
            .await
            .expect("handshake through the gate");
    assert_eq!(response.status(), 101);
    for text in ["hello", "through the gate"] {
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("send");
        let echo = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("an echo in time")
            .expect("a message")
            .expect("not an error");
        assert_eq!(echo.into_text().expect("text").as_str(), text);
    }
}

#[tokio::test]
async fn spoofed_and_override_headers_are_dropped() {
    let upstream = Upstream::start().await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &harness::closed_port_url(),
        "",
    ));
    // `DELETE /comments/*` is priced, `POST /comments/*` is not: an override header does not
    // buy a DELETE for free, since the site sees the real method without the header.
    let answer = gate
        .send(
            "POST",
            "/comments/7?x=1",
            &[
                ("x-http-method-override", "DELETE"),
                ("x-http-method", "DELETE"),
                ("x-method-override", "DELETE"),
                ("pennypost-paid", "5"),
                ("pennypost-receipt", "forged"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
            "body",
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(&answer.body[..], b"upstream ok");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path_and_query, "/comments/7?x=1");
    assert_eq!(&request.body[..], b"body");
    for name in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "pennypost-paid",
        "pennypost-receipt",
    ] {
        assert!(
            !request.headers.contains_key(name),
            "{name} reached the site"
        );
    }
    assert_eq!(request.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
}

#[tokio::test]
async fn the_gates_own_paths_are_never_forwarded() {
    let upstream = Upstream::start().await;
    let mint = Mint::start();
    let gate = Gate::start(&harness::config(&upstream.url(), &mint.url, ""));
    let routes = gate.send("GET", "/.pennypost/routes", &[], "").await;
    assert_eq!(routes.status, 200);
    let body = routes.json();
    assert_eq!(body["mint"], "https://mint.example.org");
    assert_eq!(body["wallet_url"], "https://stamps.example.org/");
    assert_eq!(body["mint_proxy"], "/.pennypost/mint");
    assert_eq!(
        body["routes"][0],
        serde_json::json!({"method": "POST", "path": "/comments", "stamps": 1, "capture": "2xx-3xx"})
    );
    assert_eq!(body["routes"][3]["capture"], "2xx");
    // Another spelling of the prefix is still the gate's.
    let again = gate.send("GET", "/%2Epennypost/routes", &[], "").await;
    assert_eq!(again.json(), body);
    gate.send("GET", "/.pennypost/elsewhere", &[], "")
        .await
        .problem(404, "not_found");
    // The mint's member routes pass through; its admin routes, holds and redeem do not.
    let keys = gate.send("GET", "/.pennypost/mint/v1/keys", &[], "").await;
    assert_eq!(keys.status, 200, "{keys:?}");
    assert!(keys.json()["keys"].is_array(), "{keys:?}");
    for (method, path) in [
        ("POST", "/.pennypost/mint/v1/stamps/redeem"),
        ("POST", "/.pennypost/mint/v1/stamps/hold"),
        ("POST", "/.pennypost/mint/v1/admin/accounts/x/credit"),
        ("GET", "/.pennypost/mint/v1/stamps%2Fredeem"),
    ] {
        gate.send(method, path, &[("authorization", "Bearer x")], "{}")
            .await
            .problem(404, "not_found");
    }
    let script = gate.send("GET", "/.pennypost/gate.js", &[], "").await;
    assert_eq!(script.status, 200);
    assert!(script.headers["content-type"]
        .to_str()
        .expect("text")
        .starts_with("text/javascript"));
    let text = String::from_utf8_lossy(&script.body);
    assert!(
        text.contains("window.PennypostWallet") && text.contains("window.PennypostGate"),
        "the shared wallet, then the gate's script"
    );
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
}

#[tokio::test]
async fn a_slow_or_absent_upstream_is_504_or_502() {
    let upstream = Upstream::start().await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &harness::closed_port_url(),
        "upstream_timeout_secs = 1",
    ));
    gate.send("GET", "/slow", &[], "")
        .await
        .problem(504, "upstream_timeout");
    upstream.go_on.notify_one();
    let gone = Gate::start(&harness::config(
        &harness::closed_port_url(),
        &harness::closed_port_url(),
        "",
    ));
    gone.send("GET", "/", &[], "")
        .await
        .problem(502, "upstream_unreachable");
}

#[tokio::test]
async fn metrics_count_requests_by_rule_and_outcome() {
    let upstream = Upstream::start().await;
    let stamps = Mint::start().stamps(1).await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &harness::closed_port_url(),
        "metrics_listen = \"127.0.0.1:0\"",
    ));
    let metrics = gate
        .metrics
        .clone()
        .expect("the gate says where its metrics are");
    assert_eq!(gate.send("GET", "/free", &[], "").await.status, 200);
    assert_eq!(gate.send("POST", "/comments", &[], "").await.status, 402);
    let held = gate
        .send("POST", "/comments", &[("pennypost-stamps", &stamps[0])], "")
        .await;
    assert_eq!(held.status, 503);
    assert_eq!(
        gate.send("GET", "/.pennypost/routes", &[], "").await.status,
        200
    );
    let text = reqwest::get(metrics)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "pennypost_gate_requests_total{rule=\"free\",outcome=\"passed\"} 1",
        "pennypost_gate_requests_total{rule=\"POST /comments\",outcome=\"payment_required\"} 1",
        "pennypost_gate_requests_total{rule=\"POST /comments\",outcome=\"mint_unavailable\"} 1",
        "pennypost_gate_requests_total{rule=\"gate\",outcome=\"own\"} 1",
        "pennypost_gate_hold_seconds_count{outcome=\"unavailable\"} 1",
        "pennypost_gate_upstream_seconds_count{rule=\"free\"} 1",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
}

/// SIGTERM lets a request in flight finish (its answer reaches the client), refuses new
/// connections, and the gate exits cleanly once nothing is in flight.
#[tokio::test]
async fn a_request_in_flight_finishes_after_sigterm() {
    let upstream = Upstream::start().await;
    let mut gate = Gate::start(&harness::config(
        &upstream.url(),
        &harness::closed_port_url(),
        "",
    ));
    // `GET /slow` is unpriced (only `POST /slow` is): the upstream holds it until `go_on`.
    let url = gate.url.clone();
    let in_flight = tokio::spawn(async move {
        let client =
            Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<Bytes>>();
        let response = client
            .get(format!("{url}/slow").parse().expect("uri"))
            .await
            .expect("an answer");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, body)
    });
    tokio::time::timeout(WAIT, upstream.arrived.notified())
        .await
        .expect("the request reached the upstream");
    gate.terminate();
    // Still running: a request is in flight.
    assert!(
        gate.wait_exit(Duration::from_millis(500)).is_none(),
        "the gate quit with a request in flight"
    );
    let refused = tokio::net::TcpStream::connect(gate.address).await;
    assert!(refused.is_err(), "a new connection was taken after SIGTERM");
    upstream.go_on.notify_one();
    let (status, body) = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("the answer came")
        .expect("client task");
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"upstream slow ok");
    let exit = tokio::task::spawn_blocking(move || gate.wait_exit(WAIT))
        .await
        .expect("wait task");
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit after SIGTERM: {exit:?}"
    );
}
