//! Limits and abuse: per-client rate limits, slow clients, and the connection cap.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{assert_problem, TestServer};

fn addr(server: &TestServer) -> String {
    server.base_url.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn account_creation_is_rate_limited_per_client() {
    let server = TestServer::start_with(&["--rate-accounts-per-minute", "2"]).await;
    server.account().await;
    server.account().await;
    let response = server
        .client
        .post(server.url("/v1/accounts"))
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert!(response.headers().contains_key("retry-after"));
    let status = response.status().as_u16();
    let body = response.json().await.expect("json");
    assert_problem(status, &body, 429, "rate_limited");
    // Other routes are not affected.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn purchases_are_rate_limited_per_client() {
    let server = TestServer::start_with(&["--rate-purchases-per-minute", "3"]).await;
    let (id, key) = server.account().await;
    server.credit(&id, 100, "r").await;
    for _ in 0..3 {
        let (status, body) = server
            .post("/v1/stamps/purchase", Some(&key), json!({"count": 1}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = server
        .post("/v1/stamps/purchase", Some(&key), json!({"count": 1}))
        .await;
    assert_problem(status, &body, 429, "rate_limited");
    let (_, account) = {
        let r = server
            .client
            .get(server.url("/v1/account"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("get");
        (
            r.status(),
            r.json::<serde_json::Value>().await.expect("json"),
        )
    };
    assert_eq!(
        account["balance"], 97,
        "the refused purchase charged nothing"
    );
}

#[tokio::test]
async fn guessing_api_keys_gets_refused() {
    let server = TestServer::start_with(&["--rate-auth-failures-per-minute", "5"]).await;
    let (_, good_key) = server.account().await;
    let mut codes = Vec::new();
    for i in 0..8 {
        let (status, _) = server
            .post(
                "/v1/stamps/purchase",
                Some(&format!("ppk_guess{i}")),
                json!({"count": 1}),
            )
            .await;
        codes.push(status);
    }
    // Five failures a minute are allowed; the one past the budget is still answered 401 and
    // blocks the client.
    assert_eq!(&codes[..6], &[401; 6], "{codes:?}");
    assert!(codes[6..].iter().all(|c| *c == 429), "{codes:?}");
    // While blocked, even a correct key from this client is refused: guessing cannot go on.
    let response = server
        .client
        .get(server.url("/v1/account"))
        .bearer_auth(&good_key)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 429);
    // ... and the 429 says why: failed authentications, not load.
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "rate_limited", "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("too many failed authentications"), "{body}");
    assert!(detail.contains("wrong API key"), "{body}");
    // Unauthenticated routes still work.
    let (status, _) = server.get("/v1/prices").await;
    assert_eq!(status, 200);
    // Wrong API keys do not lock the operator out: the admin token has its own budget.
    let id = server.account().await.0;
    let (status, body) = server.credit(&id, 5, "after-guessing").await;
    assert_eq!(status, 200, "{body}");
    // Guessing the admin token is limited all the same, and said in its own words.
    let mut codes = Vec::new();
    let mut last = serde_json::Value::Null;
    for i in 0..8 {
        let response = server
            .client
            .post(server.url(&format!("/v1/admin/accounts/{id}/credit")))
            .bearer_auth(format!("guess-{i}"))
            .json(&json!({"amount": 1, "reference": format!("g{i}")}))
            .send()
            .await
            .expect("credit");
        codes.push(response.status().as_u16());
        last = response.json().await.expect("json");
    }
    assert_eq!(&codes[..6], &[401; 6], "{codes:?}");
    assert!(codes[6..].iter().all(|c| *c == 429), "{codes:?}");
    let detail = last["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("wrong admin token"), "{last}");
    let (status, _) = server.credit(&id, 5, "while-blocked").await;
    assert_eq!(status, 429, "the right token waits too");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    let server = TestServer::start_with(&["--header-read-timeout-secs", "1"]).await;
    let mut stream = TcpStream::connect(addr(&server)).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "held for {:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_slow_body_is_cut_off() {
    let server = TestServer::start_with(&["--request-timeout-secs", "1"]).await;
    let mut stream = TcpStream::connect(addr(&server)).expect("connect");
    stream
        .write_all(
            b"POST /v1/stamps/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"stamp\"",
        )
        .expect("write");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "held for {:?}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(answer.contains("\"title\":\"Request timeout\""), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let server = TestServer::start_with(&["--connections-max", "2"]).await;
    // Two idle connections take both slots.
    let a = TcpStream::connect(addr(&server)).expect("a");
    let b = TcpStream::connect(addr(&server)).expect("b");
    std::thread::sleep(Duration::from_millis(200));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .expect("client");
    assert!(
        client.get(server.url("/healthz")).send().await.is_err(),
        "a third connection was served beyond the cap"
    );
    drop(a);
    drop(b);
    std::thread::sleep(Duration::from_millis(200));
    let fresh = reqwest::Client::new();
    let response = fresh
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("served after slots freed");
    assert_eq!(response.status().as_u16(), 200);
}

/// Creates an account claiming to come from `forwarded_for`; returns the status.
async fn create_account_via(server: &TestServer, forwarded_for: Option<&str>) -> u16 {
    let mut request = server
        .client
        .post(server.url("/v1/accounts"))
        .json(&json!({}));
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    request.send().await.expect("post").status().as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let server = TestServer::start_with(&[
        "--rate-accounts-per-minute",
        "2",
        "--trusted-proxy",
        "127.0.0.1",
    ])
    .await;
    for _ in 0..2 {
        assert_eq!(create_account_via(&server, Some("203.0.113.1")).await, 201);
    }
    assert_eq!(create_account_via(&server, Some("203.0.113.1")).await, 429);
    // Another client behind the same proxy is not limited by the first one's use.
    assert_eq!(create_account_via(&server, Some("203.0.113.2")).await, 201);
    // A client cannot escape its budget by prepending a made-up address: only the last
    // untrusted hop counts.
    assert_eq!(
        create_account_via(&server, Some("198.51.100.9, 203.0.113.1")).await,
        429
    );
    // No header: the request counts against the proxy itself.
    assert_eq!(create_account_via(&server, None).await, 201);
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let server = TestServer::start_with(&["--rate-accounts-per-minute", "2"]).await;
    assert_eq!(create_account_via(&server, Some("203.0.113.1")).await, 201);
    assert_eq!(create_account_via(&server, Some("203.0.113.2")).await, 201);
    // Different claimed clients, one real peer: its budget is spent.
    assert_eq!(create_account_via(&server, Some("203.0.113.3")).await, 429);
}

#[tokio::test]
async fn a_bad_body_is_refused_before_the_credentials_and_costs_no_budget() {
    let server = TestServer::start_with(&["--rate-auth-failures-per-minute", "1"]).await;
    let (id, _) = server.account().await;
    let credit = format!("/v1/admin/accounts/{id}/credit");
    // The body and the path are checked first (docs/api.md, "Authentication"): with a wrong key
    // or token these are 400, however many, and no authentication is tried or counted.
    for _ in 0..3 {
        let (status, body) = server
            .post_raw(
                "/v1/stamps/purchase",
                Some("ppk_guess"),
                Some("application/json"),
                "{",
            )
            .await;
        assert_problem(status, &body, 400, "bad_request");
        let (status, body) = server
            .post_raw(&credit, Some("wrong-token"), Some("application/json"), "{")
            .await;
        assert_problem(status, &body, 400, "bad_request");
        let (status, body) = server
            .post(
                "/v1/admin/accounts/not-a-uuid/credit",
                Some("wrong-token"),
                json!({"amount": 1, "reference": "r"}),
            )
            .await;
        assert_problem(status, &body, 400, "bad_request");
    }
    // The budgets of one failure a minute are whole: a wrong admin token is answered 401 and
    // spends the admin budget; wrong API keys have a budget of their own, so the first is
    // answered 401, the second too and blocks the client, then it is refused.
    let (status, body) = server
        .post(
            &credit,
            Some("wrong-token"),
            json!({"amount": 1, "reference": "r"}),
        )
        .await;
    assert_problem(status, &body, 401, "unauthorized");
    for _ in 0..2 {
        let (status, body) = server.purchase("ppk_guess", 1, None).await;
        assert_problem(status, &body, 401, "unauthorized");
    }
    let (status, body) = server.purchase("ppk_guess", 1, None).await;
    assert_problem(status, &body, 429, "rate_limited");
}
