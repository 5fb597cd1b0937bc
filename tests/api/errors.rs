//! Every error code the mint routes give, each as problem+json with its stable code; and that a
//! refused request changes nothing.

use std::time::Duration;

use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{json, Value};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{
    assert_problem, stamp_id, stamp_parts, stamp_text, strings, TestServer, ADMIN_TOKEN,
};

const BODY_LIMIT: usize = 65_536;

/// Asserts that verify answers 200, not valid, with `code`.
async fn assert_verify_refuses(server: &TestServer, stamp: &str, code: &str) -> Value {
    let (status, body) = server
        .post("/v1/stamps/verify", None, json!({ "stamp": stamp }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], false, "{stamp}: {body}");
    assert_eq!(body["code"], code, "{stamp}: {body}");
    body
}

/// Asserts that both verify and redeem refuse `stamp` with `code` (422 for redeem).
async fn assert_stamp_refused(server: &TestServer, stamp: &str, code: &str) {
    assert_verify_refuses(server, stamp, code).await;
    let (status, body) = server.redeem(stamp, "example.org/x").await;
    assert_problem(status, &body, 422, code);
}

#[tokio::test]
async fn bad_request_for_malformed_bodies() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    server.credit(&id, 100, "pay").await;
    let json_type = Some("application/json");
    let credit = format!("/v1/admin/accounts/{id}/credit");

    // Malformed JSON on each route.
    for path in [
        "/v1/stamps/purchase",
        "/v1/stamps/verify",
        "/v1/stamps/redeem",
        credit.as_str(),
    ] {
        let token = if path == credit { ADMIN_TOKEN } else { &key };
        for body in ["{", "not json", "", "[]", "null", r#"{"count": 1"#] {
            let (status, answer) = server.post_raw(path, Some(token), json_type, body).await;
            assert_problem(status, &answer, 400, "bad_request");
        }
    }

    // Missing fields.
    let cases: Vec<(&str, Value)> = vec![
        ("/v1/stamps/purchase", json!({})),
        ("/v1/stamps/purchase", json!({"cnt": 1})),
        ("/v1/stamps/verify", json!({})),
        ("/v1/stamps/redeem", json!({"context": "c"})),
        ("/v1/stamps/redeem", json!({"stamp": "pp1.x.y"})),
        (credit.as_str(), json!({"reference": "r"})),
        (credit.as_str(), json!({"amount": 5})),
    ];
    for (path, body) in cases {
        let token = if path == credit { ADMIN_TOKEN } else { &key };
        let (status, answer) = server.post(path, Some(token), body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_problem(status, &answer, 400, "bad_request");
    }

    // count out of range or of the wrong type.
    for count in [
        json!(0),
        json!(1001),
        json!(-1),
        json!(1.5),
        json!("3"),
        json!(null),
        json!(18_446_744_073_709_551_615u64),
    ] {
        let (status, answer) = server
            .post("/v1/stamps/purchase", Some(&key), json!({ "count": count }))
            .await;
        assert_eq!(status, 400, "count {count}: {answer}");
        assert_problem(status, &answer, 400, "bad_request");
    }
    // Out-of-range numbers that serde_json cannot even hold as u64.
    for raw in [r#"{"count": 18446744073709551616}"#, r#"{"count": 1e3}"#] {
        let (status, answer) = server
            .post_raw("/v1/stamps/purchase", Some(&key), json_type, raw)
            .await;
        assert_problem(status, &answer, 400, "bad_request");
    }
    // 1000 is the upper bound, and allowed (balance 100 at price 1 is too little, so 402, not 400).
    let (status, answer) = server.purchase(&key, 1000, None).await;
    assert_problem(status, &answer, 402, "insufficient_funds");

    // Credit amounts: zero, negative, float, string, beyond u64, and u64::MAX.
    for amount in [
        json!(0),
        json!(-5),
        json!(2.5),
        json!("10"),
        json!(u64::MAX),
    ] {
        let (status, answer) = server
            .post(
                &credit,
                Some(ADMIN_TOKEN),
                json!({"amount": amount, "reference": "r-bad"}),
            )
            .await;
        assert_eq!(status, 400, "amount {amount}: {answer}");
        assert_problem(status, &answer, 400, "bad_request");
    }
    let (status, answer) = server
        .post_raw(
            &credit,
            Some(ADMIN_TOKEN),
            json_type,
            r#"{"amount": 100000000000000000000000, "reference": "r-bad"}"#,
        )
        .await;
    assert_problem(status, &answer, 400, "bad_request");
    // Reference missing, empty, or not a string.
    for reference in [json!(""), json!(null), json!(12)] {
        let (status, answer) = server
            .post(
                &credit,
                Some(ADMIN_TOKEN),
                json!({"amount": 1, "reference": reference}),
            )
            .await;
        assert_problem(status, &answer, 400, "bad_request");
    }

    // Wrong or missing content type, with a body that would otherwise be fine.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let (status, answer) = server
            .post_raw(
                "/v1/stamps/purchase",
                Some(&key),
                content_type,
                r#"{"count": 1}"#,
            )
            .await;
        assert_problem(status, &answer, 400, "bad_request");
        let (status, answer) = server
            .post_raw(
                &credit,
                Some(ADMIN_TOKEN),
                content_type,
                r#"{"amount": 1, "reference": "ct"}"#,
            )
            .await;
        assert_problem(status, &answer, 400, "bad_request");
    }
    // A charset parameter is fine.
    let (status, answer) = server
        .post_raw(
            "/v1/stamps/verify",
            None,
            Some("application/json; charset=utf-8"),
            r#"{"stamp": "pp1.x.y"}"#,
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    // None of that moved money or sold stamps.
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["balance"], 100, "{account}");
    assert_eq!(account["stamps_purchased"], 0, "{account}");
}

#[tokio::test]
async fn bad_request_for_redeem_context_and_path_ids() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 2).await;

    for context in [String::new(), "x".repeat(513), "é".repeat(257)] {
        let (status, body) = server.redeem(&stamps[0], &context).await;
        assert_eq!(status, 400, "context of {} bytes: {body}", context.len());
        assert_problem(status, &body, 400, "bad_request");
    }
    for context in [json!(null), json!(42)] {
        let (status, body) = server
            .post(
                "/v1/stamps/redeem",
                None,
                json!({"stamp": stamps[0], "context": context}),
            )
            .await;
        assert_problem(status, &body, 400, "bad_request");
    }
    // The refused redeems spent nothing.
    let (status, body) = server.verify(&stamps[0]).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "unspent", "{body}");
    // 512 bytes is the limit, and allowed; it counts bytes, not characters.
    let (status, body) = server.redeem(&stamps[0], &"x".repeat(512)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.redeem(&stamps[1], &"é".repeat(256)).await;
    assert_eq!(status, 201, "{body}");

    // Path ids that are not UUIDs.
    for id in ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"] {
        let (status, body) = server.get(&format!("/v1/stamps/{id}")).await;
        assert_problem(status, &body, 400, "bad_request");
        let (status, body) = server
            .post(
                &format!("/v1/admin/accounts/{id}/credit"),
                Some(ADMIN_TOKEN),
                json!({"amount": 1, "reference": "r"}),
            )
            .await;
        assert_problem(status, &body, 400, "bad_request");
    }
}

#[tokio::test]
async fn unauthorized_without_the_right_key_or_token() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    let credit = format!("/v1/admin/accounts/{id}/credit");
    let body = json!({"amount": 10, "reference": "r-auth"});

    // Account routes: no key, a wrong key, the admin token, a malformed header.
    let (status, answer) = server
        .post("/v1/stamps/purchase", None, json!({"count": 1}))
        .await;
    assert_problem(status, &answer, 401, "unauthorized");
    let (status, answer) = server
        .post(
            "/v1/stamps/purchase",
            Some("ppk_0000000000000000000000000000000000000000000000000000000000000000"),
            json!({"count": 1}),
        )
        .await;
    assert_problem(status, &answer, 401, "unauthorized");
    let (status, answer) = server
        .post(
            "/v1/stamps/purchase",
            Some(ADMIN_TOKEN),
            json!({"count": 1}),
        )
        .await;
    assert_problem(status, &answer, 401, "unauthorized");
    let (status, answer) = server
        .send(server.client.get(server.url("/v1/account")))
        .await;
    assert_problem(status, &answer, 401, "unauthorized");
    let (status, answer) = server.get_auth("/v1/account", "ppk_wrong").await;
    assert_problem(status, &answer, 401, "unauthorized");
    let (status, answer) = server
        .send(
            server
                .client
                .get(server.url("/v1/account"))
                .header("authorization", format!("Basic {key}")),
        )
        .await;
    assert_problem(status, &answer, 401, "unauthorized");

    // Admin routes: no token, a wrong token, an API key, an empty token.
    for token in [None, Some("wrong-token"), Some(key.as_str()), Some("")] {
        let (status, answer) = server.post(&credit, token, body.clone()).await;
        assert_problem(status, &answer, 401, "unauthorized");
    }
    // The token with something appended is wrong too.
    let (status, answer) = server
        .post(&credit, Some(&format!("{ADMIN_TOKEN}x")), body.clone())
        .await;
    assert_problem(status, &answer, 401, "unauthorized");

    // Nothing was credited.
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["balance"], 0, "{account}");
    // And the right token still works; the reference was not used up by the refusals.
    let (status, answer) = server.post(&credit, Some(ADMIN_TOKEN), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["balance"], 10);
}

#[tokio::test]
async fn insufficient_funds_changes_nothing() {
    let server = TestServer::start_with(&["--stamp-price", "5"]).await;
    let (id, key) = server.account().await;
    let (status, answer) = server.purchase(&key, 1, None).await;
    assert_problem(status, &answer, 402, "insufficient_funds");

    server.credit(&id, 14, "pay").await;
    let (status, answer) = server.purchase(&key, 3, None).await;
    assert_problem(status, &answer, 402, "insufficient_funds");
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["balance"], 14, "{account}");
    assert_eq!(account["stamps_purchased"], 0, "{account}");
    // An Idempotency-Key on a refused purchase is not used up.
    let (status, answer) = server.purchase(&key, 3, Some("k")).await;
    assert_problem(status, &answer, 402, "insufficient_funds");
    let (status, answer) = server.purchase(&key, 2, Some("k")).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["balance"], 4);
}

#[tokio::test]
async fn not_found_for_unknown_account_stamp_and_route() {
    let server = TestServer::start().await;
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = server.credit(&unknown.to_string(), 10, "r-404").await;
    assert_problem(status, &body, 404, "not_found");
    let (status, body) = server.get(&format!("/v1/stamps/{unknown}")).await;
    assert_problem(status, &body, 404, "not_found");
    for path in [
        "/v1/nope",
        "/v2/prices",
        "/v1/stamps",
        "/v1/stamps/purchase/extra",
    ] {
        let (status, body) = server.get(path).await;
        assert_problem(status, &body, 404, "not_found");
    }
    let (status, body) = server.post("/v1/nope", None, json!({})).await;
    assert_problem(status, &body, 404, "not_found");

    // The failed credit did not use up its reference for the real account.
    let (id, _key) = server.account().await;
    let (status, body) = server.credit(&id, 10, "r-404").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn idempotency_conflicts() {
    let server = TestServer::start().await;
    let (a, key_a) = server.account().await;
    let (b, key_b) = server.account().await;

    let (status, first) = server.credit(&a, 100, "payment-1").await;
    assert_eq!(status, 200, "{first}");
    // Same reference, another amount.
    let (status, body) = server.credit(&a, 101, "payment-1").await;
    assert_problem(status, &body, 409, "idempotency_conflict");
    // Same reference and amount, another account.
    let (status, body) = server.credit(&b, 100, "payment-1").await;
    assert_problem(status, &body, 409, "idempotency_conflict");
    let (_, account) = server.get_auth("/v1/account", &key_a).await;
    assert_eq!(account["balance"], 100, "{account}");
    let (_, account) = server.get_auth("/v1/account", &key_b).await;
    assert_eq!(account["balance"], 0, "{account}");
    // The original still replays.
    let (status, body) = server.credit(&a, 100, "payment-1").await;
    assert_eq!(status, 200);
    assert_eq!(body, first);

    // Purchase: same key, another count.
    let (status, bought) = server.purchase(&key_a, 3, Some("order-7")).await;
    assert_eq!(status, 201, "{bought}");
    let (status, body) = server.purchase(&key_a, 4, Some("order-7")).await;
    assert_problem(status, &body, 409, "idempotency_conflict");
    let (_, account) = server.get_auth("/v1/account", &key_a).await;
    assert_eq!(account["balance"], 97, "{account}");
    assert_eq!(account["stamps_purchased"], 3, "{account}");
    let (status, body) = server.purchase(&key_a, 3, Some("order-7")).await;
    assert_eq!(status, 201);
    assert_eq!(body["purchase_id"], bought["purchase_id"]);
}

#[tokio::test]
async fn payload_too_large_with_content_length() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    let big = format!(
        r#"{{"stamp": "x", "context": "c", "count": 1, "pad": "{}"}}"#,
        "a".repeat(BODY_LIMIT)
    );
    let credit = format!("/v1/admin/accounts/{id}/credit");
    for (path, token) in [
        ("/v1/stamps/verify", None),
        ("/v1/stamps/redeem", None),
        ("/v1/stamps/purchase", Some(key.as_str())),
        (credit.as_str(), Some(ADMIN_TOKEN)),
    ] {
        let (status, body) = server
            .post_raw(path, token, Some("application/json"), big.clone())
            .await;
        assert_problem(status, &body, 413, "payload_too_large");
    }
    // Exactly at the limit is allowed.
    let head = r#"{"stamp": "pp1.x.y"}"#;
    let exact = format!("{head}{}", " ".repeat(BODY_LIMIT - head.len()));
    assert_eq!(exact.len(), BODY_LIMIT);
    let (status, body) = server
        .post_raw("/v1/stamps/verify", None, Some("application/json"), exact)
        .await;
    assert_eq!(status, 200, "{body}");
    // One byte over is not.
    let over = format!("{head}{}", " ".repeat(BODY_LIMIT + 1 - head.len()));
    let (status, body) = server
        .post_raw("/v1/stamps/verify", None, Some("application/json"), over)
        .await;
    assert_problem(status, &body, 413, "payload_too_large");
}

/// Sends a POST with a chunked body (no Content-Length) over a raw connection and returns
/// the status and body of the answer.
async fn post_chunked(server: &TestServer, path: &str, chunks: &[Vec<u8>]) -> (u16, Value) {
    let address = server
        .base_url
        .strip_prefix("http://")
        .expect("http url")
        .trim_end_matches('/')
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut request = head.into_bytes();
    for chunk in chunks {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading everything; a failed write is fine.
    let (mut reader, mut writer) = stream.split();
    let write = async {
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
    };
    let mut response = Vec::new();
    let read = async {
        let _ =
            tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut response)).await;
    };
    tokio::join!(write, read);
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full answer");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[tokio::test]
async fn payload_too_large_when_chunked() {
    let server = TestServer::start().await;
    // A small chunked body is read normally.
    let (status, body) = post_chunked(
        &server,
        "/v1/stamps/verify",
        &[b"{\"stamp\": ".to_vec(), b"\"pp1.x.y\"}".to_vec()],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], "invalid_stamp", "{body}");

    // Over the limit in many chunks, with no Content-Length to refuse it up front.
    let mut chunks = vec![b"{\"stamp\": \"pp1.x.y\", \"pad\": \"".to_vec()];
    for _ in 0..20 {
        chunks.push(vec![b'a'; 4096]);
    }
    chunks.push(b"\"}".to_vec());
    assert!(chunks.iter().map(Vec::len).sum::<usize>() > BODY_LIMIT);
    for path in ["/v1/stamps/verify", "/v1/stamps/redeem"] {
        let (status, body) = post_chunked(&server, path, &chunks).await;
        assert_problem(status, &body, 413, "payload_too_large");
    }
    // In one big chunk.
    let one = vec![chunks.concat()];
    let (status, body) = post_chunked(&server, "/v1/stamps/verify", &one).await;
    assert_problem(status, &body, 413, "payload_too_large");
}

#[tokio::test]
async fn invalid_stamps_are_refused_as_invalid_stamp() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 1).await;
    let good = &stamps[0];
    let (payload, signature) = stamp_parts(good);
    let rest = good.strip_prefix("pp1.").expect("prefix");
    let (payload_text, signature_text) = rest.split_once('.').expect("dot");

    let mut bad = vec![
        // Prefix.
        format!("pp2.{rest}"),
        format!("PP1.{rest}"),
        rest.to_string(),
        format!("pp1{rest}"),
        String::new(),
        // Base64: a character outside the alphabet, the standard alphabet's two, padding.
        format!("pp1.{}!.{signature_text}", &payload_text[1..]),
        format!("pp1.{payload_text}.+{}", &signature_text[1..]),
        format!("pp1./{}.{signature_text}", &payload_text[1..]),
        format!("pp1.{payload_text}=.{signature_text}"),
        format!("pp1.{payload_text}.{signature_text}=="),
        // Parts missing or extra.
        format!("pp1.{payload_text}"),
        format!("pp1.{payload_text}.{signature_text}.x"),
        // Lengths.
        stamp_text(&payload[..76], &signature),
        stamp_text(&[payload.clone(), vec![0]].concat(), &signature),
        stamp_text(&payload, &signature[..63]),
        stamp_text(&payload, &[signature.clone(), vec![0]].concat()),
        // Way too long.
        format!("{good}{}", "A".repeat(10_000)),
    ];
    // Non-canonical base64: 77 bytes leave 2 spare bits in the last character; set them.
    let last = payload_text.chars().last().expect("char");
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let position = alphabet.find(last).expect("in alphabet");
    assert_eq!(position & 0b11, 0, "canonical encoding has zero spare bits");
    let noncanonical = alphabet.as_bytes()[position | 0b01] as char;
    bad.push(format!(
        "pp1.{}{noncanonical}.{signature_text}",
        &payload_text[..payload_text.len() - 1]
    ));
    // Version 2 (re-signing is impossible, but the version is checked before the signature).
    let mut v2 = payload.clone();
    v2[0] = 2;
    bad.push(stamp_text(&v2, &signature));

    for stamp in &bad {
        assert_stamp_refused(&server, stamp, "invalid_stamp").await;
    }
    // None of it touched the real stamp.
    let (_, body) = server.verify(good).await;
    assert_eq!(body["valid"], true, "{body}");
}

#[tokio::test]
async fn stamps_under_an_unknown_key_or_with_a_bad_signature() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 1).await;
    let good = &stamps[0];
    let (payload, signature) = stamp_parts(good);

    // Signed by a key the server never published: a well-formed stamp in every other way.
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let stranger = SigningKey::from_bytes(&seed);
    let kid = sha2::Sha256::digest(stranger.verifying_key().as_bytes());
    let mut forged = payload.clone();
    forged[1..9].copy_from_slice(&kid[..8]);
    forged[9..25].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let mut message = b"pennypost/stamp/v1".to_vec();
    message.extend_from_slice(&forged);
    let forged_stamp = stamp_text(&forged, &stranger.sign(&message).to_bytes());
    assert_stamp_refused(&server, &forged_stamp, "unknown_key").await;
    // The real stamp's id under the stranger's key is still unknown_key, and spends nothing.
    let mut same_id = payload.clone();
    same_id[1..9].copy_from_slice(&kid[..8]);
    let mut message = b"pennypost/stamp/v1".to_vec();
    message.extend_from_slice(&same_id);
    let same_id_stamp = stamp_text(&same_id, &stranger.sign(&message).to_bytes());
    assert_stamp_refused(&server, &same_id_stamp, "unknown_key").await;

    // One bit of the signature flipped, in R and in S.
    for (byte, bit) in [(0, 0), (10, 3), (40, 5), (63, 0)] {
        let mut flipped = signature.clone();
        flipped[byte] ^= 1 << bit;
        assert_stamp_refused(&server, &stamp_text(&payload, &flipped), "bad_signature").await;
    }
    // One bit of the payload flipped (a later expiry, another id): the signature no longer
    // covers it.
    for (byte, bit) in [(40, 0), (20, 7), (50, 1)] {
        let mut flipped = payload.clone();
        flipped[byte] ^= 1 << bit;
        assert_stamp_refused(&server, &stamp_text(&flipped, &signature), "bad_signature").await;
    }
    // The value field (bytes 41..45) altered on a well-formed stamp: docs/stamp-format.md's checks
    // run in order and value is not among the parsing checks, so the signature fails first.
    for value in [0u32, 2, 1000] {
        let mut altered = payload.clone();
        altered[41..45].copy_from_slice(&value.to_be_bytes());
        assert_stamp_refused(&server, &stamp_text(&altered, &signature), "bad_signature").await;
    }
    // The signature of another stamp.
    let (_key, others) = server.stamps(10, 1).await;
    let (_, other_signature) = stamp_parts(&others[0]);
    assert_stamp_refused(
        &server,
        &stamp_text(&payload, &other_signature),
        "bad_signature",
    )
    .await;

    // The real stamp is untouched and spends once.
    let (status, body) = server.redeem(good, "c").await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = server.get(&format!("/v1/stamps/{}", stamp_id(good))).await;
    assert_eq!(body["spent_for"], "c", "{body}");
}

#[tokio::test]
async fn expired_stamps_are_refused() {
    let server = TestServer::start_with(&["--stamp-ttl-secs", "1"]).await;
    let (id, key) = server.account().await;
    server.credit(&id, 10, "pay").await;
    let (status, purchase) = server.purchase(&key, 2, None).await;
    assert_eq!(status, 201, "{purchase}");
    let stamps = strings(&purchase["stamps"]);
    let (payload, _) = stamp_parts(&stamps[0]);
    let issued = i64::from_be_bytes(payload[25..33].try_into().expect("8"));
    let expires = i64::from_be_bytes(payload[33..41].try_into().expect("8"));
    assert_eq!(expires - issued, 1, "TTL flag");

    tokio::time::sleep(Duration::from_millis(2100)).await;

    let body = assert_verify_refuses(&server, &stamps[0], "stamp_expired").await;
    assert_eq!(body["state"], "expired", "{body}");
    assert_eq!(body["stamp_id"], stamp_id(&stamps[0]).as_str(), "{body}");
    assert_eq!(body["expires_at"], purchase["expires_at"], "{body}");
    let (status, body) = server.redeem(&stamps[0], "late").await;
    assert_problem(status, &body, 422, "stamp_expired");
    let (status, body) = server
        .get(&format!("/v1/stamps/{}", stamp_id(&stamps[0])))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "expired", "{body}");
    assert_eq!(body["spent_at"], Value::Null, "{body}");
    // Account counts do not move for a refused spend.
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["stamps_spent"], 0, "{account}");
}

#[tokio::test]
async fn bad_request_for_bad_idempotency_keys() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    server.credit(&id, 10, "pay").await;
    let purchase = |value: reqwest::header::HeaderValue| {
        server.send(
            server
                .client
                .post(server.url("/v1/stamps/purchase"))
                .bearer_auth(&key)
                .header("idempotency-key", value)
                .json(&json!({"count": 1})),
        )
    };
    for value in [
        reqwest::header::HeaderValue::from_static(""),
        reqwest::header::HeaderValue::from_str(&"k".repeat(256)).expect("header"),
        reqwest::header::HeaderValue::from_bytes("café".as_bytes()).expect("header"),
    ] {
        let (status, body) = purchase(value).await;
        assert_problem(status, &body, 400, "bad_request");
    }
    // Two keys in one request name no one purchase.
    let (status, body) = server
        .send(
            server
                .client
                .post(server.url("/v1/stamps/purchase"))
                .bearer_auth(&key)
                .header("idempotency-key", "order-a")
                .header("idempotency-key", "order-b")
                .json(&json!({"count": 1})),
        )
        .await;
    assert_problem(status, &body, 400, "bad_request");
    // 255 bytes is allowed.
    let (status, body) =
        purchase(reqwest::header::HeaderValue::from_str(&"k".repeat(255)).expect("header")).await;
    assert_eq!(status, 201, "{body}");
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["balance"], 9, "{account}");
}

/// Sends a request and asserts a problem+json answer, Content-Type header included.
async fn assert_problem_json(
    server: &TestServer,
    request: reqwest::RequestBuilder,
    want_status: u16,
    want_code: &str,
) {
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert_eq!(
        content_type, "application/problem+json",
        "{want_code} on {}: {body}",
        server.base_url
    );
    assert_problem(status, &body, want_status, want_code);
}

#[tokio::test]
async fn every_error_is_problem_json() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 1).await;
    let c = &server.client;
    let url = |p: &str| server.url(p);
    let cases = [
        (
            c.post(url("/v1/stamps/redeem")).body("{"),
            400,
            "bad_request",
        ),
        (c.get(url("/v1/stamps/not-a-uuid")), 400, "bad_request"),
        (c.get(url("/v1/account")), 401, "unauthorized"),
        (
            c.post(url("/v1/stamps/purchase"))
                .json(&json!({"count": 1})),
            401,
            "unauthorized",
        ),
        (c.get(url("/v1/nope")), 404, "not_found"),
        (
            c.get(url(&format!("/v1/stamps/{}", uuid::Uuid::new_v4()))),
            404,
            "not_found",
        ),
        (
            c.post(url("/v1/stamps/verify"))
                .header("content-type", "application/json")
                .body(vec![b' '; BODY_LIMIT + 1]),
            413,
            "payload_too_large",
        ),
        (
            c.post(url("/v1/stamps/redeem"))
                .json(&json!({"stamp": "pp1.x.y", "context": "c"})),
            422,
            "invalid_stamp",
        ),
    ];
    for (request, status, code) in cases {
        assert_problem_json(&server, request, status, code).await;
    }
    let (status, _) = server.redeem(&stamps[0], "c").await;
    assert_eq!(status, 201);
    assert_problem_json(
        &server,
        c.post(url("/v1/stamps/redeem"))
            .json(&json!({"stamp": stamps[0], "context": "c"})),
        409,
        "stamp_already_spent",
    )
    .await;
    // A wrong method is problem+json too (its code is not one of the stable ones).
    let response = c.put(url("/v1/stamps/redeem")).send().await.expect("PUT");
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn payload_too_large_on_create_account() {
    let server = TestServer::start().await;
    let big = format!(r#"{{"name": "{}"}}"#, "a".repeat(BODY_LIMIT));
    let request = server
        .client
        .post(server.url("/v1/accounts"))
        .header("content-type", "application/json")
        .body(big.clone());
    assert_problem_json(&server, request, 413, "payload_too_large").await;
    let (status, body) = post_chunked(&server, "/v1/accounts", &[big.into_bytes()]).await;
    assert_problem(status, &body, 413, "payload_too_large");
}
