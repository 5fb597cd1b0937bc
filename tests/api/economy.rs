//! The economy over HTTP, under the default policy: flood-priced posts, quadratic votes,
//! refunds, payers, quotes, verified authors and unique names, and a policy change across a
//! restart. Every case ends with the server's own audit holding.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, TestServer};

/// `POST /v1/posts` with `stamps`, as `key`'s account when given.
async fn post(
    server: &TestServer,
    key: Option<&str>,
    author: Option<&str>,
    stamps: &[String],
) -> (u16, Value) {
    let mut body = json!({"body": "hello", "stamps": stamps});
    if let Some(author) = author {
        body["author"] = json!(author);
    }
    server.post("/v1/posts", key, body).await
}

async fn vote(server: &TestServer, post_id: &str, up: bool, stamps: &[String]) -> (u16, Value) {
    let direction = if up { "up" } else { "down" };
    server
        .post(
            &format!("/v1/posts/{post_id}/votes"),
            None,
            json!({"direction": direction, "stamps": stamps}),
        )
        .await
}

async fn quote(server: &TestServer, key: Option<&str>, body: Value) -> (u16, Value) {
    server.post("/v1/quote", key, body).await
}

async fn audit_holds(server: &TestServer) -> Value {
    // The background check may lag a moment behind a burst: ask until it answers.
    for _ in 0..50 {
        let (status, report) = server.get("/v1/audit").await;
        if status == 200 {
            assert_eq!(report["ok"], true, "{report}");
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("GET /v1/audit never answered");
}

/// A priced server's entry kinds, in order.
async fn kinds(server: &TestServer) -> Vec<String> {
    let (_, text) = server.get_text("/v1/ledger/entries").await;
    text.lines()
        .map(|l| {
            let entry: Value = serde_json::from_str(l).expect("entry");
            entry["kind"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_flood_of_posts_gets_dearer_and_a_quote_says_so() {
    let server = TestServer::start_priced(&[]).await;
    let (key, stamps) = server.stamps(100, 20).await;
    let (status, first) = post(&server, None, Some("a"), &stamps[..1]).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["cost"], 1);
    // The second post in ten minutes costs 2: the quote says so, and 1 stamp is refused with
    // the price, spending nothing.
    let (status, body) = quote(&server, Some(&key), json!({"action": "post"})).await;
    assert_eq!(
        (status, body),
        (200, json!({"action": "post", "stamps": 2}))
    );
    let (status, body) = quote(&server, None, json!({"action": "post", "stamp": stamps[5]})).await;
    assert_eq!((status, body["stamps"].clone()), (200, json!(2)));
    let (status, body) = post(&server, None, Some("a"), &stamps[1..2]).await;
    assert_problem(status, &body, 422, "wrong_stamp_count");
    assert_eq!(body["required"], 2, "{body}");
    let (_, verified) = server.verify(&stamps[1]).await;
    assert_eq!(verified["state"], "unspent");
    let (status, body) = post(&server, None, Some("a"), &stamps[1..3]).await;
    assert_eq!((status, body["cost"].clone()), (201, json!(2)), "{body}");
    let (status, body) = post(&server, None, Some("a"), &stamps[3..7]).await;
    assert_eq!((status, body["cost"].clone()), (201, json!(4)), "{body}");
    // Neither an API key nor a stamp: nobody to price for.
    let (status, body) = quote(&server, None, json!({"action": "post"})).await;
    assert_problem(status, &body, 400, "bad_request");
    audit_holds(&server).await;
}

#[tokio::test]
async fn a_price_above_the_per_request_limit_cannot_be_paid() {
    // A factor of 1000 makes the second post cost 1000 stamps, above the 100 of one request.
    let server = TestServer::start_priced(&["--repeat-factor", "1000"]).await;
    let (_, stamps) = server.stamps(200, 101).await;
    let (status, _) = post(&server, None, Some("a"), &stamps[..1]).await;
    assert_eq!(status, 201);
    let (status, body) = post(&server, None, Some("a"), &stamps[1..101]).await;
    assert_problem(status, &body, 422, "wrong_stamp_count");
    assert_eq!(body["required"], 1000, "{body}");
    let (status, body) = post(&server, None, Some("a"), &[]).await;
    assert_problem(status, &body, 422, "wrong_stamp_count");
    audit_holds(&server).await;
}

#[tokio::test]
async fn votes_cost_n_squared_and_a_good_post_gets_its_postage_back() {
    let server = TestServer::start_priced(&["--stamp-price", "3"]).await;
    let (author_id, author_key) = server.account().await;
    server.credit(&author_id, 30, "author").await;
    let (status, body) = server.purchase(&author_key, 10, None).await;
    assert_eq!(status, 201, "{body}");
    let author_stamps: Vec<String> =
        serde_json::from_value(body["stamps"].clone()).expect("stamps");
    let (status, created) = post(&server, Some(&author_key), None, &author_stamps[..1]).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["verified"], true, "{created}");
    let post_id = created["post_id"].as_str().expect("post id").to_string();

    // One buyer's votes on one post cost 1, 3, 5: nine stamps for three votes.
    let (_, army) = server.stamps(30, 10).await;
    for (n, range) in [(1, 0..1), (2, 1..4), (3, 4..9)] {
        let (status, body) = vote(&server, &post_id, true, &army[range]).await;
        assert_eq!(status, 201, "vote {n}: {body}");
        assert_eq!(body["cost"], 2 * n - 1, "{body}");
        assert!(
            body.get("refund_ledger_index").is_none(),
            "one voter refunds nothing: {body}"
        );
    }
    let (_, p) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(
        (p["votes_up"].clone(), p["voters"].clone()),
        (json!(3), json!(1)),
        "{p}"
    );
    // The author's own up-vote and a down-vote do not count towards the refund.
    let (status, _) = vote(&server, &post_id, true, &author_stamps[1..2]).await;
    assert_eq!(status, 201);
    let (_, down) = server.stamps(10, 1).await;
    let (status, _) = vote(&server, &post_id, false, &down).await;
    assert_eq!(status, 201);
    let (_, second) = server.stamps(10, 1).await;
    let (status, body) = vote(&server, &post_id, true, &second).await;
    assert!(
        status == 201 && body.get("refund_ledger_index").is_none(),
        "{body}"
    );
    // The third distinct up-voting payer other than the author completes the refund: the
    // author's 3 cents come back, once.
    let (_, before) = server.get_auth("/v1/account", &author_key).await;
    let (_, third) = server.stamps(10, 1).await;
    let (status, body) = vote(&server, &post_id, true, &third).await;
    assert_eq!(status, 201, "{body}");
    let refund = body["refund_ledger_index"].as_u64().expect("a refund");
    assert_eq!(refund, body["ledger_index"].as_u64().expect("index") + 1);
    let (_, after) = server.get_auth("/v1/account", &author_key).await;
    assert_eq!(
        after["balance"],
        before["balance"].as_u64().expect("balance") + 3
    );
    assert_eq!(after["refunds_total"], 3, "{after}");
    let (_, p) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(p["refunded"], true, "{p}");
    let (_, fourth) = server.stamps(10, 1).await;
    let (_, body) = vote(&server, &post_id, true, &fourth).await;
    assert!(
        body.get("refund_ledger_index").is_none(),
        "refunded twice: {body}"
    );
    let report = audit_holds(&server).await;
    assert_eq!(report["refunds_total"], 3, "{report}");
    assert!(kinds(&server).await.contains(&"refund".to_string()));
}

#[tokio::test]
async fn stamps_of_two_payers_are_refused_before_the_count() {
    let server = TestServer::start_priced(&[]).await;
    let (_, mine) = server.stamps(10, 2).await;
    let (_, theirs) = server.stamps(10, 2).await;
    let mixed = vec![mine[0].clone(), theirs[0].clone()];
    // With the right count (a first post costs 1, so 2 is also a wrong count) and without.
    let (status, body) = post(&server, None, Some("a"), &mixed).await;
    assert_problem(status, &body, 422, "mixed_payers");
    let (status, created) = post(&server, None, Some("a"), &mine[..1]).await;
    assert_eq!(status, 201);
    let post_id = created["post_id"].as_str().expect("id");
    let (status, body) = vote(
        &server,
        post_id,
        true,
        &[mine[1].clone(), theirs[1].clone()],
    )
    .await;
    assert_problem(status, &body, 422, "mixed_payers");
    for stamp in [&theirs[0], &theirs[1], &mine[1]] {
        let (_, v) = server.verify(stamp).await;
        assert_eq!(v["state"], "unspent", "a refusal spends nothing");
    }
    audit_holds(&server).await;
}

#[tokio::test]
async fn names_are_unique_and_api_key_posts_are_verified() {
    let server = TestServer::start_priced(&[]).await;
    let (status, body) = server
        .post("/v1/accounts", None, json!({"name": "Renée"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let key = body["api_key"].as_str().expect("key").to_string();
    for taken in ["renée", "RENE\u{301}E"] {
        let (status, body) = server
            .post("/v1/accounts", None, json!({"name": taken}))
            .await;
        assert_problem(status, &body, 409, "name_taken");
    }
    // A name that would look like another one is refused: spaces at its ends, invisible or
    // controlling characters.
    for lookalike in [
        "Renée ",
        " Ren\u{e9}e",
        "Ren\u{200b}ée",
        "Renée\u{202e}",
        "Ren\u{0}ée",
    ] {
        let (status, body) = server
            .post("/v1/accounts", None, json!({"name": lookalike}))
            .await;
        assert_problem(status, &body, 400, "bad_request");
    }
    let id = {
        let (_, account) = server.get_auth("/v1/account", &key).await;
        account["account_id"].as_str().expect("id").to_string()
    };
    server.credit(&id, 10, "r").await;
    let (_, body) = server.purchase(&key, 3, None).await;
    let stamps: Vec<String> = serde_json::from_value(body["stamps"].clone()).expect("stamps");
    // With the API key the author is the account's name; another name is refused.
    let (status, body) = post(&server, Some(&key), Some("somebody else"), &stamps[..1]).await;
    assert_problem(status, &body, 400, "bad_request");
    let (status, body) = post(&server, Some(&key), None, &stamps[..1]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["author"].clone(), body["verified"].clone()),
        (json!("Renée"), json!(true))
    );
    // Without it, any name, unverified; a wrong key is refused.
    let (status, body) = post(&server, None, Some("Renée"), &stamps[1..3]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["verified"], false);
    let (status, body) = post(&server, Some("ppk_wrong"), None, &stamps[2..3]).await;
    assert_problem(status, &body, 401, "unauthorized");
}

#[tokio::test]
async fn a_changed_policy_is_written_at_the_next_start_and_prices_from_then_on() {
    let mut server = TestServer::start_priced(&[]).await;
    let (_, stamps) = server.stamps(20, 10).await;
    let (status, _) = post(&server, None, Some("a"), &stamps[..1]).await;
    assert_eq!(status, 201);
    assert_eq!(
        kinds(&server)
            .await
            .iter()
            .filter(|k| *k == "policy")
            .count(),
        1
    );
    // The same policy again writes nothing; a changed one is written once.
    server.restart();
    assert_eq!(
        kinds(&server)
            .await
            .iter()
            .filter(|k| *k == "policy")
            .count(),
        1
    );
    server.set_extra_args(&["--repeat-factor", "1"]);
    server.restart();
    server.restart();
    let kinds_now = kinds(&server).await;
    assert_eq!(
        kinds_now.iter().filter(|k| *k == "policy").count(),
        2,
        "{kinds_now:?}"
    );
    // Flood pricing is off now: the second post in the window costs 1.
    let (status, body) = post(&server, None, Some("a"), &stamps[1..2]).await;
    assert_eq!(status, 201, "{body}");
    let (_, prices) = server.get("/v1/prices").await;
    assert_eq!(prices["policy"]["repeat_factor"], 1, "{prices}");
    audit_holds(&server).await;
}

/// ECONOMY.md names an environment variable for every parameter of the policy: each one sets
/// its parameter, in `GET /v1/prices` and in the `policy` entry the first start writes.
#[tokio::test]
async fn every_policy_parameter_follows_its_environment_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, keys) = (dir.path().join("data"), dir.path().join("keys"));
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--keys-dir",
        keys.to_str().expect("utf-8"),
    ];
    let env = [
        ("PENNYPOST_STAMP_PRICE", "7"),
        ("PENNYPOST_POST_COST", "3"),
        ("PENNYPOST_VOTE_COST", "2"),
        ("PENNYPOST_REPEAT_WINDOW_SECS", "60"),
        ("PENNYPOST_REPEAT_FACTOR", "4"),
        ("PENNYPOST_VOTE_PRICING", "flat"),
        ("PENNYPOST_REFUND_VOTERS", "5"),
    ];
    let log = dir.path().join("server.log");
    let server = crate::process::start(&args, &env, &log, false);
    let want = json!({"stamp_price": 7, "post_cost": 3, "vote_cost": 2,
                      "repeat_window_secs": 60, "repeat_factor": 4,
                      "vote_pricing": "flat", "refund_voters": 5});
    let prices: Value = reqwest::get(format!("{}/v1/prices", server.base_url))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(prices["policy"], want, "{prices}");
    assert_eq!(prices["costs"], json!({"post": 3, "vote": 2}), "{prices}");
    let entries = reqwest::get(format!("{}/v1/ledger/entries", server.base_url))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    let policy: Value = entries
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("entry"))
        .find(|e| e["kind"] == "policy")
        .expect("a policy entry");
    for (field, value) in want.as_object().expect("object") {
        assert_eq!(&policy[field], value, "{field}: {policy}");
    }
    assert_eq!(policy["currency"], prices["currency"], "{policy}");
}
