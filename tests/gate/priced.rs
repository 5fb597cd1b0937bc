//! Priced requests that fail before any hold: no stamps (402), too many (422), too big (413),
//! malformed (400), every spelling of a priced path priced alike, and the mint away (503).
//! Most run against a closed port as the mint: an answer other than 503 shows the mint was
//! never asked.

use crate::harness::{self, Gate, Mint, Upstream};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

async fn gate_without_mint() -> (Upstream, Gate) {
    let upstream = Upstream::start().await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &harness::closed_port_url(),
        "max_body_bytes = 2048",
    ));
    (upstream, gate)
}

#[tokio::test]
async fn no_stamps_is_402_with_www_authenticate_as_json_or_a_page() {
    let (upstream, gate) = gate_without_mint().await;
    for accept in [None, Some("*/*"), Some("application/json")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let answer = gate.send("POST", "/pair", &headers, "text=hi").await;
        let body = answer.problem(402, "payment_required");
        assert_eq!(body["required"], 2);
        assert_eq!(body["mint"], "https://mint.example.org");
        assert_eq!(body["wallet_url"], "https://stamps.example.org/");
        assert_eq!(
            answer.headers["www-authenticate"],
            "Pennypost stamps=2, mint=\"https://mint.example.org\""
        );
    }
    let page = gate
        .send(
            "POST",
            "/comments",
            &[
                ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
                FORM,
            ],
            "text=hi",
        )
        .await;
    assert_eq!(page.status, 402);
    assert!(page.headers["content-type"]
        .to_str()
        .expect("text")
        .starts_with("text/html"));
    assert_eq!(
        page.headers["www-authenticate"],
        "Pennypost stamps=1, mint=\"https://mint.example.org\""
    );
    let text = String::from_utf8_lossy(&page.body);
    assert!(
        text.contains("1 stamp") && text.contains("https://stamps.example.org"),
        "{text}"
    );
    // Fewer stamps than the price is 402 as well, with the price.
    let mint = Mint::start();
    let stamps = mint.stamps(1).await;
    let answer = gate
        .send("POST", "/pair", &[("pennypost-stamps", &stamps[0])], "")
        .await;
    assert_eq!(answer.problem(402, "payment_required")["required"], 2);
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn more_stamps_than_the_price_is_422_with_the_price() {
    let (upstream, gate) = gate_without_mint().await;
    let mint = Mint::start();
    let stamps = mint.stamps(3).await;
    let header = format!("{}, {}", stamps[0], stamps[1]);
    let answer = gate
        .send("POST", "/comments", &[("pennypost-stamps", &header)], "")
        .await;
    let problem = answer.problem(422, "wrong_stamp_count");
    assert_eq!(problem["required"], 1);
    assert_eq!(
        problem["detail"],
        "this action costs 1 stamp and the request carried 2: send exactly the price"
    );
    // In the header and a form field together: counted together.
    let body = format!("text=hi&pennypost_stamps={}", stamps[2]);
    let answer = gate
        .send(
            "POST",
            "/pair",
            &[("pennypost-stamps", &header), FORM],
            body,
        )
        .await;
    assert_eq!(answer.problem(422, "wrong_stamp_count")["required"], 2);
    assert!(upstream.seen().is_empty());
    for stamp in &stamps {
        assert_eq!(mint.stamp_state(stamp).await, "unspent");
    }
}

#[tokio::test]
async fn a_priced_body_over_the_limit_is_413_before_any_hold() {
    let (upstream, gate) = gate_without_mint().await;
    let mint = Mint::start();
    let stamps = mint.stamps(1).await;
    let big = vec![b'x'; 4096];
    let answer = gate
        .send(
            "POST",
            "/comments",
            &[("pennypost-stamps", &stamps[0])],
            big.clone(),
        )
        .await;
    // 413, not the 503 a hold against the closed port would have given.
    answer.problem(413, "payload_too_large");
    // An unpriced request of the same size passes.
    let free = gate.send("POST", "/free", &[], big).await;
    assert_eq!(free.status, 200);
    assert_eq!(upstream.seen().len(), 1);
    assert_eq!(upstream.seen()[0].path_and_query, "/free");
}

#[tokio::test]
async fn malformed_stamps_are_400_and_non_stamps_422() {
    let (upstream, gate) = gate_without_mint().await;
    let mint = Mint::start();
    let stamps = mint.stamps(1).await;
    let empty_item = format!("{},,{}", stamps[0], stamps[0]);
    gate.send("POST", "/pair", &[("pennypost-stamps", &empty_item)], "")
        .await
        .problem(400, "bad_request");
    gate.send("POST", "/comments", &[("pennypost-stamps", " ")], "")
        .await
        .problem(400, "bad_request");
    gate.send("POST", "/comments", &[FORM], "text=hi&pennypost_stamps=")
        .await
        .problem(400, "bad_request");
    gate.send(
        "POST",
        "/comments",
        &[("pennypost-stamps", "pp1.not-a-stamp")],
        "",
    )
    .await
    .problem(422, "invalid_stamp");
    gate.send("POST", "/comments", &[FORM], "pennypost_stamps=hello")
        .await
        .problem(422, "invalid_stamp");
    let multipart = ("content-type", "multipart/form-data; boundary=BOUNDARY");
    gate.send("POST", "/comments", &[multipart], "--BOUNDARY\r\nbroken")
        .await
        .problem(400, "bad_request");
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn every_spelling_of_a_priced_path_is_priced() {
    let (upstream, gate) = gate_without_mint().await;
    for path in [
        "/comments",
        "/comments/",
        "//comments",
        "/%63omments",
        "/%63%6f%6dments//",
        "/COMMENTS",
        "/comments;jsessionid=1",
        "/comments?page=2",
        "/comments.json",
        "/comments%2e",
    ] {
        let answer = gate.send("POST", path, &[], "").await;
        assert_eq!(answer.status, 402, "{path}: {answer:?}");
    }
    let answer = gate.send("DELETE", "/comments%2F7", &[], "").await;
    assert_eq!(answer.status, 402, "an encoded slash: {answer:?}");
    // A method in lower case is another method to HTTP, but Werkzeug (Flask, Isso) and
    // others upper-case it: priced as its upper case.
    for method in ["post", "Post"] {
        let answer = gate.send(method, "/comments", &[], "").await;
        assert_eq!(answer.status, 402, "{method}: {answer:?}");
    }
    for path in ["/x/../comments", "/./comments", "/%2e%2e/comments"] {
        gate.send("POST", path, &[], "")
            .await
            .problem(400, "bad_request");
    }
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
    // The same paths with an unpriced method pass.
    let answer = gate.send("GET", "/%63omments/", &[], "").await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn the_mint_away_is_503_for_priced_requests_while_free_ones_pass() {
    let (upstream, gate) = gate_without_mint().await;
    let mint = Mint::start();
    let stamps = mint.stamps(1).await;
    let answer = gate
        .send(
            "POST",
            "/comments",
            &[("pennypost-stamps", &stamps[0])],
            "text=hi",
        )
        .await;
    answer.problem(503, "service_unavailable");
    assert!(answer.headers.contains_key("retry-after"));
    assert!(upstream.seen().is_empty(), "a priced request was forwarded");
    let logs = gate.logs();
    assert!(logs.contains("no hold"), "the operator is told why: {logs}");
    let free = gate.send("GET", "/anything", &[], "").await;
    assert_eq!(free.status, 200);
    assert_eq!(upstream.seen().len(), 1);
    assert_eq!(mint.stamp_state(&stamps[0]).await, "unspent");
}

#[tokio::test]
async fn a_priced_body_that_never_arrives_is_408() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let upstream = Upstream::start().await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &harness::closed_port_url(),
        "upstream_timeout_secs = 1",
    ));
    // A client that promises 100 bytes and sends 10 (written by hand: no client library sends
    // a short body on purpose).
    let mut stream = tokio::net::TcpStream::connect(gate.address)
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /comments HTTP/1.1\r\nHost: site\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "the gate gave up on the body: {text}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(upstream.seen().is_empty());
}
