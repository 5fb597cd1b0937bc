//! The board over HTTP: posts and votes that cost stamps. Every route, every error code it can
//! give, the all-or-nothing rule, score arithmetic, paging, concurrency and restarts.

use std::collections::HashSet;

use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::helpers::{assert_problem, stamp_id, stamp_parts, stamp_text, TestServer};

/// `POST /v1/posts`.
async fn post(server: &TestServer, author: &str, body: &str, stamps: &[&str]) -> (u16, Value) {
    server
        .post(
            "/v1/posts",
            None,
            json!({"author": author, "body": body, "stamps": stamps}),
        )
        .await
}

/// `POST /v1/posts` that must succeed; returns the post.
async fn create(server: &TestServer, author: &str, body: &str, stamps: &[&str]) -> Value {
    let (status, answer) = post(server, author, body, stamps).await;
    assert_eq!(status, 201, "{answer}");
    answer
}

/// `POST /v1/posts/{post_id}/votes`.
async fn vote(
    server: &TestServer,
    post_id: &str,
    direction: &str,
    stamps: &[&str],
) -> (u16, Value) {
    server
        .post(
            &format!("/v1/posts/{post_id}/votes"),
            None,
            json!({"direction": direction, "stamps": stamps}),
        )
        .await
}

/// `GET /v1/stamps/{id}` of a stamp's text.
async fn stamp_status(server: &TestServer, stamp: &str) -> Value {
    let (status, body) = server.get(&format!("/v1/stamps/{}", stamp_id(stamp))).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn assert_unspent(server: &TestServer, stamp: &str) {
    let body = stamp_status(server, stamp).await;
    assert_eq!(body["state"], "unspent", "{body}");
    assert_eq!(body["spent_for"], Value::Null, "{body}");
    let (_, verified) = server.verify(stamp).await;
    assert_eq!(verified["valid"], true, "{verified}");
}

async fn assert_spent_for(server: &TestServer, stamp: &str, spent_for: &str) {
    let body = stamp_status(server, stamp).await;
    assert_eq!(body["state"], "spent", "{body}");
    assert_eq!(body["spent_for"], spent_for, "{body}");
    assert!(body["spent_at"].is_string(), "{body}");
}

/// The ledger size of the latest checkpoint (its second line), checked against the number of
/// entries `/v1/ledger/entries` serves.
async fn ledger_size(server: &TestServer) -> u64 {
    let (status, note) = server.get_text("/v1/ledger/checkpoint").await;
    assert_eq!(status, 200, "{note}");
    let size: u64 = note
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("checkpoint size line: {note}"));
    let (status, entries) = server.get_text("/v1/ledger/entries").await;
    assert_eq!(status, 200, "{entries}");
    assert_eq!(entries.lines().count() as u64, size, "{entries}");
    size
}

/// The ledger entry at `index`.
async fn ledger_entry(server: &TestServer, index: u64) -> Value {
    let (status, text) = server
        .get_text(&format!("/v1/ledger/entries?start={index}&limit=1"))
        .await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(text.trim_end()).expect("entry JSON")
}

fn id_of(value: &Value) -> String {
    value["post_id"].as_str().expect("post_id").to_string()
}

fn refs(stamps: &[String]) -> Vec<&str> {
    stamps.iter().map(String::as_str).collect()
}

/// A well-formed stamp signed by a key the server never published.
fn stamp_under_unknown_key(real: &str) -> String {
    let (mut payload, _) = stamp_parts(real);
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let stranger = SigningKey::from_bytes(&seed);
    let kid = sha2::Sha256::digest(stranger.verifying_key().as_bytes());
    payload[1..9].copy_from_slice(&kid[..8]);
    payload[9..25].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let mut message = b"pennypost/stamp/v1".to_vec();
    message.extend_from_slice(&payload);
    stamp_text(&payload, &stranger.sign(&message).to_bytes())
}

/// A real stamp with one bit of its signature flipped.
fn stamp_with_bad_signature(real: &str) -> String {
    let (payload, mut signature) = stamp_parts(real);
    signature[5] ^= 0x10;
    stamp_text(&payload, &signature)
}

#[tokio::test]
async fn a_post_answers_every_field_and_spends_its_stamp() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 2).await;
    let size_before = ledger_size(&server).await;

    let post = create(&server, "alice", "hello, board", &[&stamps[0]]).await;
    let post_id = id_of(&post);
    uuid::Uuid::parse_str(&post_id).expect("post_id is a UUID");
    assert_eq!(post_id, post_id.to_lowercase());
    assert_eq!(post["author"], "alice");
    assert_eq!(post["body"], "hello, board");
    assert_eq!(post["score"], 0);
    let created_at = post["created_at"].as_str().expect("created_at");
    time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
        .expect("created_at is RFC 3339");
    assert!(created_at.ends_with('Z'), "UTC: {created_at}");
    let object = post.as_object().expect("object");
    for field in [
        "post_id",
        "author",
        "body",
        "created_at",
        "score",
        "ledger_index",
    ] {
        assert!(object.contains_key(field), "{field} missing: {post}");
    }

    // One spend entry, for this post, naming the stamp.
    assert_eq!(post["ledger_index"], size_before, "{post}");
    assert_eq!(ledger_size(&server).await, size_before + 1);
    let entry = ledger_entry(&server, size_before).await;
    assert_eq!(entry["kind"], "spend", "{entry}");
    assert_eq!(entry["action"], "post", "{entry}");
    assert_eq!(entry["target"], post_id.as_str(), "{entry}");
    assert_eq!(entry["stamp_ids"], json!([stamp_id(&stamps[0])]), "{entry}");

    // The stamp is spent for the post; the other is untouched.
    assert_spent_for(&server, &stamps[0], &format!("post:{post_id}")).await;
    assert_eq!(
        stamp_status(&server, &stamps[0]).await["ledger_index"],
        size_before
    );
    let (_, verified) = server.verify(&stamps[0]).await;
    assert_eq!(verified["state"], "spent", "{verified}");
    assert_eq!(verified["code"], "stamp_already_spent", "{verified}");
    assert_unspent(&server, &stamps[1]).await;

    // The post reads back as it was answered, alone and in the listing.
    let (status, read) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read, post);
    let (status, page) = server.get("/v1/posts").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["posts"], json!([post]), "{page}");
    assert_eq!(page["next_before"], Value::Null, "{page}");

    // Re-using the stamp is refused and changes nothing.
    let (status, body) = post_again(&server, &stamps[0]).await;
    assert_problem(status, &body, 409, "stamp_already_spent");
    let (status, body) = vote(&server, &post_id, "up", &[&stamps[0]]).await;
    assert_problem(status, &body, 409, "stamp_already_spent");
    assert_eq!(ledger_size(&server).await, size_before + 1);
    assert_spent_for(&server, &stamps[0], &format!("post:{post_id}")).await;
    let (_, page) = server.get("/v1/posts").await;
    assert_eq!(page["posts"], json!([post]), "{page}");
}

async fn post_again(server: &TestServer, stamp: &str) -> (u16, Value) {
    post(server, "mallory", "again", &[stamp]).await
}

#[tokio::test]
async fn post_requests_that_are_not_well_formed_are_bad_requests() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 1).await;
    let stamp = stamps[0].as_str();
    let size_before = ledger_size(&server).await;
    let json_type = Some("application/json");

    for body in [
        "{",
        "not json",
        "",
        "[]",
        "null",
        r#"{"author": "a", "body": "b", "stamps": ["#,
    ] {
        let (status, answer) = server.post_raw("/v1/posts", None, json_type, body).await;
        assert_problem(status, &answer, 400, "bad_request");
    }
    let cases = [
        json!({"author": "a", "body": "b"}),
        json!({"author": "a", "body": "b", "stamps": null}),
        json!({"author": "a", "body": "b", "stamps": stamp}),
        json!({"author": "a", "body": "b", "stamps": [1]}),
        json!({"body": "b", "stamps": [stamp]}),
        json!({"author": "a", "stamps": [stamp]}),
        json!({"author": 7, "body": "b", "stamps": [stamp]}),
        json!({"author": "", "body": "b", "stamps": [stamp]}),
        json!({"author": "a", "body": "", "stamps": [stamp]}),
        json!({"author": "a".repeat(65), "body": "b", "stamps": [stamp]}),
        json!({"author": "a", "body": "b".repeat(10_001), "stamps": [stamp]}),
    ];
    for case in cases {
        let (status, answer) = server.post("/v1/posts", None, case.clone()).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_problem(status, &answer, 400, "bad_request");
    }
    // Refusals are problem+json.
    let response = server
        .client
        .post(server.url("/v1/posts"))
        .json(&json!({"author": "", "body": "b", "stamps": [stamp]}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // Not a JSON content type.
    let body = json!({"author": "a", "body": "b", "stamps": [stamp]}).to_string();
    let (status, answer) = server
        .post_raw("/v1/posts", None, Some("text/plain"), body)
        .await;
    assert_eq!(status / 100, 4, "{answer}");

    // Nothing was spent or logged; the stamp still pays for a post.
    assert_eq!(ledger_size(&server).await, size_before);
    assert_unspent(&server, stamp).await;
    create(&server, "a", "b", &[stamp]).await;
}

#[tokio::test]
async fn a_post_needs_exactly_post_cost_stamps() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 2).await;
    let size_before = ledger_size(&server).await;
    for attached in [vec![], refs(&stamps)] {
        let (status, body) = post(&server, "a", "b", &attached).await;
        assert_problem(status, &body, 422, "wrong_stamp_count");
    }
    assert_eq!(ledger_size(&server).await, size_before);
    for stamp in &stamps {
        assert_unspent(&server, stamp).await;
    }

    let server = TestServer::start_with(&["--post-cost", "2"]).await;
    let (_, prices) = server.get("/v1/prices").await;
    assert_eq!(prices["costs"]["post"], 2, "{prices}");
    let (_key, stamps) = server.stamps(10, 3).await;
    let size_before = ledger_size(&server).await;
    for attached in [vec![], vec![stamps[0].as_str()], refs(&stamps)] {
        let (status, body) = post(&server, "a", "b", &attached).await;
        assert_problem(status, &body, 422, "wrong_stamp_count");
    }
    assert_eq!(ledger_size(&server).await, size_before);
    for stamp in &stamps {
        assert_unspent(&server, stamp).await;
    }
    let post = create(&server, "a", "b", &[&stamps[0], &stamps[1]]).await;
    let spent_for = format!("post:{}", id_of(&post));
    assert_spent_for(&server, &stamps[0], &spent_for).await;
    assert_spent_for(&server, &stamps[1], &spent_for).await;
    assert_unspent(&server, &stamps[2]).await;
    let entry = ledger_entry(&server, size_before).await;
    let mut ids: Vec<_> = entry["stamp_ids"]
        .as_array()
        .expect("stamp_ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    ids.sort();
    let mut want = vec![stamp_id(&stamps[0]), stamp_id(&stamps[1])];
    want.sort();
    assert_eq!(ids, want, "{entry}");
    assert_eq!(ledger_size(&server).await, size_before + 1);
}

#[tokio::test]
async fn the_same_stamp_twice_in_one_request_is_a_bad_request() {
    let server = TestServer::start_with(&["--post-cost", "2", "--vote-cost", "2"]).await;
    let (_key, stamps) = server.stamps(10, 4).await;
    let size_before = ledger_size(&server).await;
    let (status, body) = post(&server, "a", "b", &[&stamps[0], &stamps[0]]).await;
    assert_problem(status, &body, 400, "bad_request");
    assert_unspent(&server, &stamps[0]).await;

    let post = create(&server, "a", "b", &[&stamps[0], &stamps[1]]).await;
    let post_id = id_of(&post);
    let (status, body) = vote(&server, &post_id, "up", &[&stamps[2], &stamps[2]]).await;
    assert_problem(status, &body, 400, "bad_request");
    assert_unspent(&server, &stamps[2]).await;
    // A spent stamp twice is a bad request too (or already spent), never a spend.
    let (status, body) = vote(&server, &post_id, "up", &[&stamps[0], &stamps[0]]).await;
    assert!(status == 400 || status == 409, "{body}");
    assert_eq!(ledger_size(&server).await, size_before + 1);
    let (_, read) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(read["score"], 0, "{read}");
}

#[tokio::test]
async fn author_and_body_bounds_count_unicode_scalar_values() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(100, 8).await;
    let mut stamps = stamps.iter();
    let mut next = || stamps.next().expect("stamp").as_str();

    // "é" is 2 bytes, the emoji 4, "e" + combining acute 2 scalar values in 1 grapheme.
    let accepted = [
        ("é".repeat(64), "b".to_string()),
        ("😀".repeat(64), "b".to_string()),
        ("e\u{301}".repeat(32), "b".to_string()),
        ("a".to_string(), "é".repeat(10_000)),
        ("a".to_string(), "😀".repeat(10_000)),
        ("a".repeat(64), "b".repeat(10_000)),
    ];
    for (author, body) in &accepted {
        let post = create(&server, author, body, &[next()]).await;
        assert_eq!(post["author"], author.as_str());
        assert_eq!(post["body"], body.as_str());
        let (_, read) = server.get(&format!("/v1/posts/{}", id_of(&post))).await;
        assert_eq!(read["body"], body.as_str());
    }
    let stamp = next();
    let refused = [
        ("é".repeat(65), "b".to_string()),
        ("😀".repeat(65), "b".to_string()),
        ("e\u{301}".repeat(33), "b".to_string()),
        ("a".to_string(), "é".repeat(10_001)),
        ("a".to_string(), "😀".repeat(10_001)),
    ];
    for (author, body) in &refused {
        let (status, answer) = post(&server, author, body, &[stamp]).await;
        assert_problem(status, &answer, 400, "bad_request");
    }
    assert_unspent(&server, stamp).await;
}

#[tokio::test]
async fn author_and_body_bounds_follow_their_flags() {
    let server =
        TestServer::start_with(&["--author-chars-max", "5", "--body-chars-max", "10"]).await;
    let (_key, stamps) = server.stamps(10, 3).await;
    create(&server, "ééééé", "0123456789", &[&stamps[0]]).await;
    create(&server, "a", "b", &[&stamps[1]]).await;
    for (author, body) in [
        ("ééééé!", "b"),
        ("abcdef", "b"),
        ("a", "0123456789x"),
        ("a", "ééééééééééé"),
        ("", "b"),
        ("a", ""),
    ] {
        let (status, answer) = post(&server, author, body, &[&stamps[2]]).await;
        assert_problem(status, &answer, 400, "bad_request");
    }
    assert_unspent(&server, &stamps[2]).await;
}

#[tokio::test]
async fn bad_stamps_on_posts_and_votes_have_their_422_codes() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 2).await;
    let target = create(&server, "a", "target", &[&stamps[0]]).await;
    let target_id = id_of(&target);
    let good = stamps[1].as_str();
    let size_before = ledger_size(&server).await;

    let (payload, signature) = stamp_parts(good);
    let mut wrong_version = payload.clone();
    wrong_version[0] = 9;
    let cases = [
        ("hello".to_string(), "invalid_stamp"),
        ("pp1.".to_string(), "invalid_stamp"),
        ("pp2.".to_string() + &good[4..], "invalid_stamp"),
        (good[..good.len() - 3].to_string(), "invalid_stamp"),
        (format!("{good}AA"), "invalid_stamp"),
        (good.replace('.', "!"), "invalid_stamp"),
        (stamp_text(&wrong_version, &signature), "invalid_stamp"),
        (stamp_under_unknown_key(good), "unknown_key"),
        (stamp_with_bad_signature(good), "bad_signature"),
    ];
    for (stamp, code) in &cases {
        let (status, body) = post(&server, "a", "b", &[stamp]).await;
        assert_eq!(status, 422, "{stamp}: {body}");
        assert_problem(status, &body, 422, code);
        let (status, body) = vote(&server, &target_id, "up", &[stamp]).await;
        assert_eq!(status, 422, "{stamp}: {body}");
        assert_problem(status, &body, 422, code);
    }
    assert_eq!(ledger_size(&server).await, size_before);
    assert_unspent(&server, good).await;
    let (_, read) = server.get(&format!("/v1/posts/{target_id}")).await;
    assert_eq!(read["score"], 0, "{read}");
    let (status, body) = vote(&server, &target_id, "up", &[good]).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn one_bad_stamp_spends_none_of_the_others() {
    let server = TestServer::start_with(&["--post-cost", "2", "--vote-cost", "2"]).await;
    let (_key, stamps) = server.stamps(20, 8).await;
    let post_id = id_of(&create(&server, "a", "first", &[&stamps[0], &stamps[1]]).await);
    let spent = stamps[0].as_str();
    let good = stamps[2].as_str();
    let size_before = ledger_size(&server).await;
    let (_, entries_before) = server.get_text("/v1/ledger/entries").await;

    // Good + already spent, in both orders, on a post and on a vote: 409, nothing spent.
    for attached in [[good, spent], [spent, good]] {
        let (status, body) = post(&server, "a", "b", &attached).await;
        assert_problem(status, &body, 409, "stamp_already_spent");
        let (status, body) = vote(&server, &post_id, "up", &attached).await;
        assert_problem(status, &body, 409, "stamp_already_spent");
    }
    // Good + one that fails its signature check or is from an unknown key: 422, nothing spent.
    for bad in [
        stamp_with_bad_signature(&stamps[3]),
        stamp_under_unknown_key(good),
    ] {
        let (status, body) = post(&server, "a", "b", &[good, &bad]).await;
        assert_eq!(status, 422, "{body}");
        let (status, body) = vote(&server, &post_id, "down", &[good, &bad]).await;
        assert_eq!(status, 422, "{body}");
    }
    // Good + a good one on a missing post: 404, neither spent.
    let missing = uuid::Uuid::new_v4().to_string();
    let (status, body) = vote(&server, &missing, "up", &[good, &stamps[3]]).await;
    assert_problem(status, &body, 404, "not_found");

    assert_unspent(&server, good).await;
    assert_unspent(&server, &stamps[3]).await;
    assert_eq!(ledger_size(&server).await, size_before);
    let (_, entries_after) = server.get_text("/v1/ledger/entries").await;
    assert_eq!(entries_after, entries_before);
    let (_, read) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(read["score"], 0, "{read}");
    let (_, page) = server.get("/v1/posts").await;
    assert_eq!(page["posts"].as_array().map(Vec::len), Some(1), "{page}");

    // The good stamp still pays, once.
    let second = create(&server, "a", "second", &[good, &stamps[3]]).await;
    assert_spent_for(&server, good, &format!("post:{}", id_of(&second))).await;
    let (status, body) = vote(&server, &post_id, "up", &[&stamps[4], &stamps[5]]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["score"], 1, "{body}");
    assert_eq!(ledger_size(&server).await, size_before + 2);
}

#[tokio::test]
async fn votes_move_the_score_one_per_vote() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(20, 12).await;
    let mut stamps = stamps.iter();
    let mut next = || stamps.next().expect("stamp").as_str();
    let post = create(&server, "a", "vote on me", &[next()]).await;
    let post_id = id_of(&post);
    let other = create(&server, "b", "vote me down", &[next()]).await;
    let other_id = id_of(&other);

    let mut last_index = other["ledger_index"].as_u64().expect("index");
    let mut score = 0i64;
    for direction in ["up", "up", "up", "down"] {
        let stamp = next();
        let size = ledger_size(&server).await;
        let (status, body) = vote(&server, &post_id, direction, &[stamp]).await;
        assert_eq!(status, 201, "{body}");
        score += if direction == "up" { 1 } else { -1 };
        assert_eq!(body["post_id"], post_id.as_str(), "{body}");
        assert_eq!(body["score"], score, "{body}");
        let index = body["ledger_index"].as_u64().expect("ledger_index");
        assert_eq!(index, size, "{body}");
        assert!(index > last_index, "{body}");
        last_index = index;
        let keys: HashSet<&str> = body
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            HashSet::from(["post_id", "score", "ledger_index", "cost"]),
            "{body}"
        );
        assert_spent_for(&server, stamp, &format!("vote:{post_id}")).await;
        let entry = ledger_entry(&server, index).await;
        assert_eq!(entry["action"], "vote", "{entry}");
        assert_eq!(entry["target"], post_id.as_str(), "{entry}");
    }
    assert_eq!(score, 2);

    // Below zero.
    for expected in [-1, -2, -3] {
        let (status, body) = vote(&server, &other_id, "down", &[next()]).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["score"], expected, "{body}");
    }
    let (status, body) = vote(&server, &other_id, "up", &[next()]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["score"], -2, "{body}");

    // Reads agree, and nothing else about the posts changed.
    let (_, read) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(read["score"], 2, "{read}");
    assert_eq!(read["ledger_index"], post["ledger_index"], "{read}");
    assert_eq!(read["created_at"], post["created_at"], "{read}");
    let (_, read) = server.get(&format!("/v1/posts/{other_id}")).await;
    assert_eq!(read["score"], -2, "{read}");
    let (_, page) = server.get("/v1/posts").await;
    assert_eq!(page["posts"][0]["post_id"], other_id.as_str(), "{page}");
    assert_eq!(page["posts"][0]["score"], -2, "{page}");
    assert_eq!(page["posts"][1]["score"], 2, "{page}");
}

#[tokio::test]
async fn a_vote_stamp_spends_once() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 2).await;
    let post_id = id_of(&create(&server, "a", "b", &[&stamps[0]]).await);
    let (status, body) = vote(&server, &post_id, "up", &[&stamps[1]]).await;
    assert_eq!(status, 201, "{body}");
    for direction in ["up", "down"] {
        let (status, body) = vote(&server, &post_id, direction, &[&stamps[1]]).await;
        assert_problem(status, &body, 409, "stamp_already_spent");
    }
    let (status, body) = post(&server, "a", "b", &[&stamps[1]]).await;
    assert_problem(status, &body, 409, "stamp_already_spent");
    let (_, read) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(read["score"], 1, "{read}");
    assert_spent_for(&server, &stamps[1], &format!("vote:{post_id}")).await;
}

#[tokio::test]
async fn a_vote_on_a_missing_post_is_not_found_and_spends_nothing() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 2).await;
    let post_id = id_of(&create(&server, "a", "b", &[&stamps[0]]).await);
    let size_before = ledger_size(&server).await;
    let stamp = stamps[1].as_str();
    for direction in ["up", "down"] {
        let missing = uuid::Uuid::new_v4().to_string();
        let (status, body) = vote(&server, &missing, direction, &[stamp]).await;
        assert_problem(status, &body, 404, "not_found");
    }
    assert_unspent(&server, stamp).await;
    assert_eq!(ledger_size(&server).await, size_before);
    let (status, body) = vote(&server, &post_id, "down", &[stamp]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["score"], -1, "{body}");
}

#[tokio::test]
async fn vote_requests_that_are_not_well_formed_are_refused() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 3).await;
    let post_id = id_of(&create(&server, "a", "b", &[&stamps[0]]).await);
    let stamp = stamps[1].as_str();
    let path = format!("/v1/posts/{post_id}/votes");
    let size_before = ledger_size(&server).await;

    let cases = [
        json!({"direction": "sideways", "stamps": [stamp]}),
        json!({"direction": "UP", "stamps": [stamp]}),
        json!({"direction": "", "stamps": [stamp]}),
        json!({"direction": 1, "stamps": [stamp]}),
        json!({"stamps": [stamp]}),
        json!({"direction": "up"}),
        json!({"direction": "up", "stamps": stamp}),
    ];
    for case in cases {
        let (status, body) = server.post(&path, None, case.clone()).await;
        assert_eq!(status, 400, "{case}: {body}");
        assert_problem(status, &body, 400, "bad_request");
    }
    for body in ["{", "", "null", "[]", r#"{"direction": "up""#] {
        let (status, answer) = server
            .post_raw(&path, None, Some("application/json"), body)
            .await;
        assert_problem(status, &answer, 400, "bad_request");
    }
    // A path id that is not a UUID.
    let (status, body) = vote(&server, "not-a-uuid", "up", &[stamp]).await;
    assert_problem(status, &body, 400, "bad_request");
    // Wrong stamp counts.
    for attached in [vec![], vec![stamp, stamps[2].as_str()]] {
        let (status, body) = vote(&server, &post_id, "up", &attached).await;
        assert_problem(status, &body, 422, "wrong_stamp_count");
    }
    assert_eq!(ledger_size(&server).await, size_before);
    assert_unspent(&server, stamp).await;
    assert_unspent(&server, &stamps[2]).await;
    let (_, read) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(read["score"], 0, "{read}");
}

#[tokio::test]
async fn a_vote_needs_exactly_vote_cost_stamps() {
    let server = TestServer::start_with(&["--vote-cost", "3"]).await;
    let (_, prices) = server.get("/v1/prices").await;
    assert_eq!(prices["costs"], json!({"post": 1, "vote": 3}), "{prices}");
    let (_key, stamps) = server.stamps(10, 5).await;
    let post_id = id_of(&create(&server, "a", "b", &[&stamps[0]]).await);
    let size_before = ledger_size(&server).await;
    let four = refs(&stamps[1..5]);
    for count in [0, 1, 2, 4] {
        let (status, body) = vote(&server, &post_id, "up", &four[..count]).await;
        assert_problem(status, &body, 422, "wrong_stamp_count");
    }
    assert_eq!(ledger_size(&server).await, size_before);
    for stamp in &four {
        assert_unspent(&server, stamp).await;
    }
    let (status, body) = vote(&server, &post_id, "up", &four[..3]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["score"], 1, "{body}");
    for stamp in &four[..3] {
        assert_spent_for(&server, stamp, &format!("vote:{post_id}")).await;
    }
    assert_unspent(&server, four[3]).await;
    assert_eq!(ledger_size(&server).await, size_before + 1);
}

#[tokio::test]
async fn pages_run_newest_first_and_cover_every_post_once() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(20, 7).await;
    let mut created = Vec::new();
    for (i, stamp) in stamps.iter().enumerate() {
        created.push(id_of(
            &create(&server, "a", &format!("post {i}"), &[stamp]).await,
        ));
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let mut seen = Vec::new();
    let mut path = "/v1/posts?limit=3".to_string();
    let mut pages = 0;
    loop {
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        assert!(pages <= 4, "paging does not end: {page}");
        let posts = page["posts"].as_array().expect("posts");
        assert!(posts.len() <= 3, "{page}");
        seen.extend(posts.iter().map(id_of));
        match page["next_before"].as_str() {
            Some(before) => {
                assert_eq!(before, id_of(posts.last().expect("a full page")));
                path = format!("/v1/posts?limit=3&before={before}");
            }
            None => break,
        }
    }
    assert_eq!(seen, newest_first);

    // The whole board at once, and a page that ends exactly at the last post.
    let (_, page) = server.get("/v1/posts").await;
    let all: Vec<String> = page["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(all, newest_first);
    assert_eq!(page["next_before"], Value::Null, "{page}");
    let (_, page) = server.get("/v1/posts?limit=100").await;
    assert_eq!(page["posts"].as_array().map(Vec::len), Some(7), "{page}");
    let (_, page) = server
        .get(&format!("/v1/posts?limit=10&before={}", created[0]))
        .await;
    assert_eq!(page["posts"], json!([]), "{page}");
    assert_eq!(page["next_before"], Value::Null, "{page}");
    let (_, page) = server
        .get(&format!("/v1/posts?before={}", created[3]))
        .await;
    let older: Vec<String> = page["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(
        older,
        vec![created[2].clone(), created[1].clone(), created[0].clone()]
    );

    // Bad paging parameters.
    let unknown = uuid::Uuid::new_v4();
    for path in [
        "/v1/posts?limit=0".to_string(),
        "/v1/posts?limit=101".to_string(),
        "/v1/posts?limit=-1".to_string(),
        "/v1/posts?limit=abc".to_string(),
        "/v1/posts?before=not-a-uuid".to_string(),
        format!("/v1/posts?before={unknown}"),
        format!("/v1/posts?limit=3&before={unknown}"),
    ] {
        let (status, body) = server.get(&path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_problem(status, &body, 400, "bad_request");
    }
    let (status, body) = server.get(&format!("/v1/posts/{unknown}")).await;
    assert_problem(status, &body, 404, "not_found");
    let (status, body) = server.get("/v1/posts/not-a-uuid").await;
    assert_problem(status, &body, 400, "bad_request");
}

#[tokio::test]
async fn an_empty_board_is_one_empty_page() {
    let server = TestServer::start().await;
    let (status, page) = server.get("/v1/posts").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page, json!({"posts": [], "next_before": null}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_posts_with_distinct_stamps_all_land() {
    let server = TestServer::start().await;
    let (key, stamps) = server.stamps(100, 50).await;
    let size_before = ledger_size(&server).await;
    let url = server.url("/v1/posts");
    let requests = stamps
        .iter()
        .enumerate()
        .map(|(i, stamp)| {
            server.client.post(&url).json(&json!({
                "author": format!("writer {i}"),
                "body": format!("concurrent post {i}"),
                "stamps": [stamp],
            }))
        })
        .collect();
    let answers = concurrently(requests).await;
    let mut ids = HashSet::new();
    let mut indexes = HashSet::new();
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body["body"], format!("concurrent post {i}"), "{body}");
        ids.insert(id_of(body));
        indexes.insert(body["ledger_index"].as_u64().expect("index"));
    }
    assert_eq!(ids.len(), 50);
    assert_eq!(indexes.len(), 50);
    assert!(indexes
        .iter()
        .all(|i| (size_before..size_before + 50).contains(i)));
    assert_eq!(ledger_size(&server).await, size_before + 50);

    let (_, page) = server.get("/v1/posts?limit=100").await;
    let listed: Vec<String> = page["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(listed.len(), 50, "{page}");
    assert_eq!(listed.iter().cloned().collect::<HashSet<_>>(), ids);
    // Newest first means in ledger order, descending.
    let listed_indexes: Vec<u64> = page["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(|p| p["ledger_index"].as_u64().expect("index"))
        .collect();
    assert!(
        listed_indexes.windows(2).all(|w| w[0] > w[1]),
        "{listed_indexes:?}"
    );
    for stamp in &stamps {
        assert_eq!(stamp_status(&server, stamp).await["state"], "spent");
    }
    assert_eq!(stamps_spent(&server, &key).await, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_votes_on_one_post_all_count() {
    let server = TestServer::start().await;
    let (key, stamps) = server.stamps(100, 51).await;
    let post_id = id_of(&create(&server, "a", "popular", &[&stamps[0]]).await);
    let url = server.url(&format!("/v1/posts/{post_id}/votes"));
    // 35 up and 15 down, interleaved.
    let requests = stamps[1..]
        .iter()
        .enumerate()
        .map(|(i, stamp)| {
            let direction = if i % 10 < 7 { "up" } else { "down" };
            server
                .client
                .post(&url)
                .json(&json!({"direction": direction, "stamps": [stamp]}))
        })
        .collect();
    let answers = concurrently(requests).await;
    let mut indexes = HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
        indexes.insert(body["ledger_index"].as_u64().expect("index"));
    }
    assert_eq!(indexes.len(), 50);
    // Each answer is the score right after its own vote: ordered by ledger index, the scores
    // walk one step at a time from 0 to 35 - 15.
    let mut by_index: Vec<(u64, i64)> = answers
        .iter()
        .map(|(_, b)| {
            (
                b["ledger_index"].as_u64().expect("index"),
                b["score"].as_i64().expect("score"),
            )
        })
        .collect();
    by_index.sort();
    let mut previous = 0i64;
    for (_, score) in &by_index {
        assert_eq!((score - previous).abs(), 1, "{by_index:?}");
        previous = *score;
    }
    assert_eq!(previous, 20, "{by_index:?}");
    let (_, read) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(read["score"], 20, "{read}");
    assert_eq!(stamps_spent(&server, &key).await, 51);
}

/// Sends all requests at once (each in its own task, released together) and returns the
/// answers in the order of the requests.
async fn concurrently(requests: Vec<reqwest::RequestBuilder>) -> Vec<(u16, Value)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let handles: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let response = request.send().await.expect("send");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.expect("JSON"))
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(handles.len());
    for handle in handles {
        answers.push(handle.await.expect("task"));
    }
    answers
}

#[tokio::test]
async fn a_restart_keeps_posts_and_scores() {
    let mut server = TestServer::start().await;
    let (key, stamps) = server.stamps(20, 8).await;
    let first = create(&server, "a", "first", &[&stamps[0]]).await;
    let second = create(&server, "b", "second", &[&stamps[1]]).await;
    let (first_id, second_id) = (id_of(&first), id_of(&second));
    for stamp in &stamps[2..5] {
        let (status, body) = vote(&server, &first_id, "up", &[stamp]).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = vote(&server, &second_id, "down", &[&stamps[5]]).await;
    assert_eq!(status, 201, "{body}");
    let (_, before) = server.get("/v1/posts").await;
    let size = ledger_size(&server).await;

    server.restart();

    let (status, after) = server.get("/v1/posts").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after, before);
    assert_eq!(after["posts"][0]["score"], -1, "{after}");
    assert_eq!(after["posts"][1]["score"], 3, "{after}");
    let (_, read) = server.get(&format!("/v1/posts/{first_id}")).await;
    assert_eq!(read["score"], 3, "{read}");
    assert_eq!(ledger_size(&server).await, size);
    assert_spent_for(&server, &stamps[2], &format!("vote:{first_id}")).await;
    let (status, body) = vote(&server, &first_id, "up", &[&stamps[2]]).await;
    assert_problem(status, &body, 409, "stamp_already_spent");

    // The board goes on where it was: new posts are newer, votes add to the kept score.
    let third = create(&server, "c", "third", &[&stamps[6]]).await;
    let (status, body) = vote(&server, &first_id, "up", &[&stamps[7]]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["score"], 4, "{body}");
    let (_, page) = server.get("/v1/posts").await;
    let order: Vec<String> = page["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(order, vec![id_of(&third), second_id, first_id]);
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["stamps_spent"], 8, "{account}");
}

/// `stamps_spent` of the account behind `key`.
async fn stamps_spent(server: &TestServer, key: &str) -> u64 {
    let (status, body) = server.get_auth("/v1/account", key).await;
    assert_eq!(status, 200, "{body}");
    body["stamps_spent"].as_u64().expect("stamps_spent")
}

#[tokio::test]
async fn the_account_counts_board_spends_of_its_stamps() {
    let server = TestServer::start_with(&["--vote-cost", "2"]).await;
    let (key, stamps) = server.stamps(20, 6).await;
    let (other_key, other_stamps) = server.stamps(20, 2).await;
    assert_eq!(stamps_spent(&server, &key).await, 0);

    let post_id = id_of(&create(&server, "a", "b", &[&stamps[0]]).await);
    assert_eq!(stamps_spent(&server, &key).await, 1);
    let (status, body) = vote(&server, &post_id, "up", &[&stamps[1], &stamps[2]]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(stamps_spent(&server, &key).await, 3);

    // Refused requests count nothing.
    let (status, body) = vote(&server, &post_id, "up", &[&stamps[3], &stamps[0]]).await;
    assert_problem(status, &body, 409, "stamp_already_spent");
    let missing = uuid::Uuid::new_v4().to_string();
    let (status, body) = vote(&server, &missing, "up", &[&stamps[3], &stamps[4]]).await;
    assert_problem(status, &body, 404, "not_found");
    assert_eq!(stamps_spent(&server, &key).await, 3);

    // One vote may not mix two buyers' stamps, and a refusal counts nothing.
    let (status, body) = vote(&server, &post_id, "down", &[&stamps[3], &other_stamps[0]]).await;
    assert_problem(status, &body, 422, "mixed_payers");
    assert_eq!(stamps_spent(&server, &key).await, 3);
    // Stamps count for their buyer, whoever spends them.
    let (status, body) = vote(
        &server,
        &post_id,
        "down",
        &[&other_stamps[0], &other_stamps[1]],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(stamps_spent(&server, &key).await, 3);
    assert_eq!(stamps_spent(&server, &other_key).await, 2);
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["stamps_purchased"], 6, "{account}");
}

/// docs/api.md: "the same stamp twice in one request is 400 bad_request", also at the default cost
/// of one stamp, where two stamps are also the wrong count.
#[tokio::test]
async fn the_same_stamp_twice_is_a_bad_request_at_the_default_cost() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 1).await;
    let (status, body) = server
        .post(
            "/v1/posts",
            None,
            serde_json::json!({"author": "a", "body": "b", "stamps": [stamps[0], stamps[0]]}),
        )
        .await;
    crate::helpers::assert_problem(status, &body, 400, "bad_request");
    let (status, body) = server
        .post(
            "/v1/stamps/verify",
            None,
            serde_json::json!({"stamp": stamps[0]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "unspent", "{body}");
}
