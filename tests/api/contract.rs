//! Statements of the HTTP contract (docs/api.md: "Conventions", "Routes", "The ledger",
//! "Command line") that no other test checked: the headers of 401 and 405 answers, each
//! answer's content type, HEAD beside GET, the form of every id and time the server answers,
//! every inclusion and consistency proof of a small log against roots computed from RFC 9162
//! (`audit/proofs.rs` checks receipts and the checkpoint's signature by hand), the default page
//! of posts and the page cap of the ledger's entries, expired stamps in the server's audit, a
//! server's addresses, directories, stamp TTL and origin from the environment alone (the
//! economy's variables are `economy.rs`'s), and `pennypost audit`'s exit 2 when it cannot
//! start.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::helpers::{assert_problem, own_database, strings, with_store, TestServer, ADMIN_TOKEN};
use crate::serve::{self, serve_command};

/// A header of `response` as text ("" when absent).
fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_401_names_the_bearer_scheme() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    let c = &server.client;
    let credit = server.url(&format!("/v1/admin/accounts/{id}/credit"));
    let requests = [
        c.get(server.url("/v1/account")),
        c.get(server.url("/v1/account")).bearer_auth("ppk_wrong"),
        c.post(server.url("/v1/stamps/purchase"))
            .json(&json!({"count": 1})),
        c.post(&credit)
            .json(&json!({"amount": 1, "reference": "r-401"})),
        c.post(&credit)
            .bearer_auth(&key)
            .json(&json!({"amount": 1, "reference": "r-401"})),
    ];
    for request in requests {
        let response = request.send().await.expect("send");
        let challenge = header(&response, "www-authenticate");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("problem");
        assert_problem(status, &body, 401, "unauthorized");
        // RFC 9110, 11.6.1: a 401 carries a challenge; RFC 6750 names the Bearer scheme.
        assert!(
            challenge.to_ascii_lowercase().starts_with("bearer"),
            "401 without a Bearer challenge: {challenge:?} ({body})"
        );
    }
    // Other refusals carry no challenge.
    let response = c
        .post(server.url("/v1/stamps/purchase"))
        .bearer_auth(&key)
        .json(&json!({"count": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 402);
    assert_eq!(header(&response, "www-authenticate"), "");
}

#[tokio::test]
async fn a_405_lists_the_methods_the_path_takes() {
    let server = TestServer::start().await;
    let cases: [(&str, &str, &[&str]); 5] = [
        ("PUT", "/v1/accounts", &["POST"]),
        ("DELETE", "/v1/posts", &["GET", "HEAD", "POST"]),
        ("POST", "/v1/keys", &["GET", "HEAD"]),
        ("GET", "/v1/stamps/purchase", &["POST"]),
        ("PATCH", "/v1/ledger/entries", &["GET", "HEAD"]),
    ];
    for (method, path, allowed) in cases {
        let response = server
            .client
            .request(method.parse().expect("method"), server.url(path))
            .send()
            .await
            .expect("send");
        let allow = header(&response, "allow");
        let content_type = header(&response, "content-type");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("problem");
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(body["code"], "method_not_allowed", "{method} {path}");
        assert_eq!(content_type, "application/problem+json", "{method} {path}");
        let mut listed: Vec<String> = allow
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .collect();
        listed.sort();
        assert_eq!(listed, allowed, "{method} {path}: Allow: {allow:?}");
    }
}

#[tokio::test]
async fn every_answer_carries_its_content_type() {
    let server = TestServer::start().await;
    let (_key, _stamps) = server.stamps(5, 2).await;
    let c = &server.client;
    let cases = [
        (c.get(server.url("/healthz")), "application/json"),
        (c.get(server.url("/v1/keys")), "application/json"),
        (c.get(server.url("/v1/prices")), "application/json"),
        (c.get(server.url("/v1/posts")), "application/json"),
        (c.get(server.url("/v1/audit")), "application/json"),
        (c.get(server.url("/v1/ledger/key")), "application/json"),
        (c.post(server.url("/v1/accounts")), "application/json"),
        (
            c.get(server.url("/v1/ledger/proof/inclusion?index=0&size=1")),
            "application/json",
        ),
        (
            c.get(server.url("/v1/ledger/entries?start=0&limit=3")),
            "application/x-ndjson",
        ),
        (c.get(server.url("/v1/ledger/checkpoint")), "text/plain"),
        (c.get(server.url("/v1/nope")), "application/problem+json"),
    ];
    for (request, want) in cases {
        let response = request.send().await.expect("send");
        let url = response.url().to_string();
        let content_type = header(&response, "content-type");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        assert_eq!(media_type, want, "{url}: {content_type}");
        let text = response.text().await.expect("body");
        match want {
            "application/x-ndjson" => {
                assert!(text.ends_with('\n'), "{url}: {text:?}");
                assert_eq!(text.lines().count(), 3, "{url}: {text}");
                for line in text.lines() {
                    let entry: Value = serde_json::from_str(line).expect("one JSON value a line");
                    assert!(entry.is_object(), "{url}: {line}");
                }
            }
            "text/plain" => assert!(text.lines().count() >= 3, "{url}: {text}"),
            _ => {
                let _: Value = serde_json::from_str(&text).expect("JSON");
            }
        }
    }
}

/// Asserts `value` is a UUID string, lowercase and hyphenated.
fn assert_id(what: &str, value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("{what}: {value}"));
    let parsed = uuid::Uuid::parse_str(text).unwrap_or_else(|e| panic!("{what}: {text}: {e}"));
    assert_eq!(
        parsed.hyphenated().to_string(),
        text,
        "{what} is not lowercase hyphenated"
    );
}

/// Asserts `value` is an RFC 3339 time in UTC.
fn assert_time(what: &str, value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("{what}: {value}"));
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{what}: {text}: {e}"));
    assert_eq!(time.offset(), time::UtcOffset::UTC, "{what}: {text}");
    assert!(text.ends_with('Z'), "{what}: {text} is not written in UTC");
}

#[tokio::test]
async fn ids_are_lowercase_uuids_times_rfc3339_utc_and_money_integers() {
    let server = TestServer::start().await;
    let (id, key) = server.account().await;
    assert_id("account_id", &json!(id));
    let (status, credit) = server.credit(&id, 20, "r-forms").await;
    assert_eq!(status, 200, "{credit}");
    assert_id("credit account_id", &credit["account_id"]);
    assert!(credit["balance"].is_i64() && credit["ledger_index"].is_u64());

    let (status, purchase) = server.purchase(&key, 3, None).await;
    assert_eq!(status, 201, "{purchase}");
    assert_id("purchase_id", &purchase["purchase_id"]);
    assert_time("purchase issued_at", &purchase["issued_at"]);
    assert_time("purchase expires_at", &purchase["expires_at"]);
    for field in ["count", "unit_price", "total", "balance", "ledger_index"] {
        assert!(purchase[field].is_u64(), "{field}: {purchase}");
    }
    let stamps = strings(&purchase["stamps"]);

    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_id("account account_id", &account["account_id"]);
    for field in ["balance", "stamps_purchased", "stamps_spent"] {
        assert!(account[field].is_i64(), "{field}: {account}");
    }

    let (_, verified) = server.verify(&stamps[0]).await;
    assert_id("verify stamp_id", &verified["stamp_id"]);
    assert_time("verify issued_at", &verified["issued_at"]);
    assert_time("verify expires_at", &verified["expires_at"]);

    let (status, redeemed) = server.redeem(&stamps[0], "example.org/forms").await;
    assert_eq!(status, 201, "{redeemed}");
    assert_id("redeem stamp_id", &redeemed["stamp_id"]);
    assert_time("redeem spent_at", &redeemed["spent_at"]);
    let stamp_id = redeemed["stamp_id"].as_str().expect("id");
    let (_, status_answer) = server.get(&format!("/v1/stamps/{stamp_id}")).await;
    assert_id("stamp stamp_id", &status_answer["stamp_id"]);
    for field in ["issued_at", "expires_at", "spent_at"] {
        assert_time(field, &status_answer[field]);
    }

    let (status, post) = server
        .post(
            "/v1/posts",
            None,
            json!({"author": "forms", "body": "b", "stamps": [stamps[1]]}),
        )
        .await;
    assert_eq!(status, 201, "{post}");
    assert_id("post_id", &post["post_id"]);
    assert_time("created_at", &post["created_at"]);
    let post_id = post["post_id"].as_str().expect("id");
    let (status, vote) = server
        .post(
            &format!("/v1/posts/{post_id}/votes"),
            None,
            json!({"direction": "up", "stamps": [stamps[2]]}),
        )
        .await;
    assert_eq!(status, 201, "{vote}");
    assert_id("vote post_id", &vote["post_id"]);
    assert!(vote["score"].is_i64(), "{vote}");

    let (_, page) = server.get("/v1/posts?limit=1").await;
    assert_id("page post_id", &page["posts"][0]["post_id"]);
    assert_time("page created_at", &page["posts"][0]["created_at"]);
    let (_, keys) = server.get("/v1/keys").await;
    assert_time("key created_at", &keys["keys"][0]["created_at"]);
}

/// RFC 9162 leaf hash of an entry's bytes.
fn leaf(entry: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(entry)
        .finalize()
        .into()
}

/// RFC 9162 Merkle tree hash of `leaves`, computed here from the definition.
fn tree_hash(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let split = largest_power_of_two_below(n);
            Sha256::new()
                .chain_update([1u8])
                .chain_update(tree_hash(&leaves[..split]))
                .chain_update(tree_hash(&leaves[split..]))
                .finalize()
                .into()
        }
    }
}

/// The largest power of two strictly below `n` (n ≥ 2): RFC 9162's split point.
fn largest_power_of_two_below(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The hashes of a proof answer, each checked to be standard padded base64 of 32 bytes.
fn proof_hashes(what: &str, answer: &Value) -> Vec<tlog_tiles::Hash> {
    strings(&answer["hashes"])
        .iter()
        .map(|text| {
            assert_eq!(text.len(), 44, "{what}: {text}");
            assert!(text.ends_with('='), "{what}: {text} is not padded");
            let bytes = STANDARD
                .decode(text)
                .unwrap_or_else(|e| panic!("{what}: {text}: {e}"));
            tlog_tiles::Hash(bytes.try_into().expect("32 bytes"))
        })
        .collect()
}

#[tokio::test]
async fn proofs_verify_against_roots_of_the_entries() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 6).await;
    for stamp in &stamps[..5] {
        let (status, body) = server.redeem(stamp, "example.org/proofs").await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, text) = server.get_text("/v1/ledger/entries").await;
    let leaves: Vec<[u8; 32]> = text.lines().map(|e| leaf(e.as_bytes())).collect();
    let size = leaves.len() as u64;
    assert!(size >= 9, "{size} entries");
    let roots: Vec<tlog_tiles::Hash> = (0..=leaves.len())
        .map(|n| tlog_tiles::Hash(tree_hash(&leaves[..n])))
        .collect();
    // The checkpoint signs the root of the entries as served, its hash in padded base64.
    let (_, checkpoint) = server.get_text("/v1/ledger/checkpoint").await;
    let lines: Vec<&str> = checkpoint.lines().collect();
    assert_eq!(lines[1], size.to_string(), "{checkpoint}");
    assert_eq!(
        lines[2],
        STANDARD.encode(roots[leaves.len()].0),
        "{checkpoint}"
    );

    for tree in 1..=size {
        let root = roots[tree as usize];
        for index in 0..tree {
            let what = format!("inclusion of {index} in {tree}");
            let (status, answer) = server
                .get(&format!(
                    "/v1/ledger/proof/inclusion?index={index}&size={tree}"
                ))
                .await;
            assert_eq!(status, 200, "{what}: {answer}");
            let proof = proof_hashes(&what, &answer);
            let record = tlog_tiles::Hash(leaves[index as usize]);
            tlog_tiles::check_record(&proof, tree, root, index, record)
                .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        }
        for from in 1..=tree {
            let what = format!("consistency of {from} with {tree}");
            let (status, answer) = server
                .get(&format!(
                    "/v1/ledger/proof/consistency?from={from}&to={tree}"
                ))
                .await;
            assert_eq!(status, 200, "{what}: {answer}");
            let proof = proof_hashes(&what, &answer);
            tlog_tiles::check_tree(&proof, tree, root, from, roots[from as usize])
                .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        }
    }

    // Out-of-range parameters are 400 bad_request.
    for query in [
        format!("inclusion?index={size}&size={size}"),
        format!("inclusion?index=0&size={}", size + 1),
        "inclusion?index=0&size=0".to_string(),
        format!("consistency?from=0&to={size}"),
        "consistency?from=2&to=1".to_string(),
        format!("consistency?from=1&to={}", size + 1),
    ] {
        let (status, answer) = server.get(&format!("/v1/ledger/proof/{query}")).await;
        assert_problem(status, &answer, 400, "bad_request");
    }
}

#[tokio::test]
async fn a_page_of_entries_holds_at_least_1000() {
    const CREDITS: usize = 1_010;
    let server = TestServer::start().await;
    let (id, _key) = server.account().await;
    // 32 at a time, each in its own task: the writer batches them.
    for wave in 0..CREDITS.div_ceil(32) {
        let tasks: Vec<_> = (wave * 32..CREDITS.min(wave * 32 + 32))
            .map(|n| {
                let request = server
                    .client
                    .post(server.url(&format!("/v1/admin/accounts/{id}/credit")))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"amount": 1, "reference": format!("cap-{n}")}));
                tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("task").expect("credit"), 200);
        }
    }
    let (_, checkpoint) = server.get_text("/v1/ledger/checkpoint").await;
    let size: usize = checkpoint
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("size");
    assert!(size > 1_000, "{size}");

    let (status, page) = server
        .get_text("/v1/ledger/entries?start=0&limit=1000")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page.lines().count(), 1_000, "a limit of 1000 is not cut");
    let (_, page) = server
        .get_text("/v1/ledger/entries?start=0&limit=100000")
        .await;
    let first = page.lines().count();
    assert!(first >= 1_000, "a page was capped at {first}");
    // A client pages on from where the page ended and gets every entry once, in order.
    let mut all: Vec<String> = page.lines().map(str::to_string).collect();
    while all.len() < size {
        let (status, page) = server
            .get_text(&format!(
                "/v1/ledger/entries?start={}&limit=100000",
                all.len()
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        assert!(page.lines().count() > 0, "an empty page before the end");
        all.extend(page.lines().map(str::to_string));
    }
    assert_eq!(all.len(), size);
    for (index, line) in all.iter().enumerate() {
        let entry: Value = serde_json::from_str(line).expect("entry");
        assert_eq!(entry["index"], index, "{line}");
    }
}

#[tokio::test]
async fn serve_takes_its_address_directories_ttl_and_origin_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    // On PostgreSQL each start has a database of its own: the second start has new keys.
    let databases = [own_database(), own_database()];
    let start = |current_dir: &std::path::Path, extra: &[(&str, String)], n: usize| {
        let mut command = serve_command(Vec::<&str>::new());
        command
            .current_dir(current_dir)
            .env("PENNYPOST_LISTEN", "127.0.0.1:0")
            .env("PENNYPOST_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PENNYPOST_STAMP_TTL_SECS", "120")
            .env("PENNYPOST_LEDGER_ORIGIN", "example.org/env-ledger");
        for (name, value) in extra {
            command.env(name, value);
        }
        with_store(&mut command, databases[n].as_ref()).stderr(serve::log_file(&log));
        serve::start(&mut command, false, logs).unwrap_or_else(|e| panic!("{e}"))
    };

    // No --data-dir or --keys-dir: ./data and ./keys of the working directory, made on start.
    let mut started = start(dir.path(), &[], 0);
    assert!(dir.path().join("keys").is_dir(), "./keys was not made");
    assert!(dir.path().join("data").is_dir(), "./data was not made");
    let client = reqwest::Client::new();
    let url = started.base_url.clone();
    let checkpoint = client
        .get(format!("{url}/v1/ledger/checkpoint"))
        .send()
        .await
        .expect("checkpoint")
        .text()
        .await
        .expect("text");
    assert_eq!(checkpoint.lines().next(), Some("example.org/env-ledger"));
    let account: Value = client
        .post(format!("{url}/v1/accounts"))
        .send()
        .await
        .expect("account")
        .json()
        .await
        .expect("json");
    let id = account["account_id"].as_str().expect("id");
    let key = account["api_key"].as_str().expect("key");
    let response = client
        .post(format!("{url}/v1/admin/accounts/{id}/credit"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"amount": 9, "reference": "env-1"}))
        .send()
        .await
        .expect("credit");
    assert_eq!(
        response.status().as_u16(),
        200,
        "the admin token from the env"
    );
    let purchase: Value = client
        .post(format!("{url}/v1/stamps/purchase"))
        .bearer_auth(key)
        .json(&json!({"count": 3}))
        .send()
        .await
        .expect("purchase")
        .json()
        .await
        .expect("json");
    assert_eq!(purchase["total"], 3, "{purchase}");
    let format = &time::format_description::well_known::Rfc3339;
    let time = |field: &str| {
        time::OffsetDateTime::parse(purchase[field].as_str().expect(field), format).expect("time")
    };
    assert_eq!(
        (time("expires_at") - time("issued_at")).whole_seconds(),
        120,
        "{purchase}"
    );
    let _ = started.child.kill();
    let _ = started.child.wait();

    // PENNYPOST_DATA_DIR and PENNYPOST_KEYS_DIR name the directories instead.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let mut started = start(
        &elsewhere,
        &[
            (
                "PENNYPOST_DATA_DIR",
                dir.path().join("env-data").display().to_string(),
            ),
            (
                "PENNYPOST_KEYS_DIR",
                dir.path().join("env-keys").display().to_string(),
            ),
        ],
        1,
    );
    assert!(dir.path().join("env-keys").is_dir(), "PENNYPOST_KEYS_DIR");
    assert!(dir.path().join("env-data").is_dir(), "PENNYPOST_DATA_DIR");
    assert!(!elsewhere.join("keys").exists() && !elsewhere.join("data").exists());
    let _ = started.child.kill();
    let _ = started.child.wait();
}

#[tokio::test]
async fn every_get_route_answers_head_alike_without_a_body() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(5, 2).await;
    let (_, post) = server
        .post(
            "/v1/posts",
            None,
            json!({"author": "head", "body": "b", "stamps": [stamps[0]]}),
        )
        .await;
    let post_id = post["post_id"].as_str().expect("post_id").to_string();
    let stamp = crate::wire::stamp_id(&stamps[1]);
    for path in [
        "/healthz".to_string(),
        "/v1/keys".to_string(),
        "/v1/prices".to_string(),
        "/v1/posts".to_string(),
        format!("/v1/posts/{post_id}"),
        format!("/v1/stamps/{stamp}"),
        "/v1/ledger/checkpoint".to_string(),
        "/v1/ledger/key".to_string(),
        "/v1/ledger/entries".to_string(),
        "/v1/ledger/proof/inclusion?index=0&size=2".to_string(),
        "/v1/audit".to_string(),
        "/openapi.json".to_string(),
        format!("/v1/stamps/{}", uuid::Uuid::nil()),
    ] {
        let get = server
            .client
            .get(server.url(&path))
            .send()
            .await
            .expect("GET");
        let head = server
            .client
            .head(server.url(&path))
            .send()
            .await
            .expect("HEAD");
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(
            header(&head, "content-type"),
            header(&get, "content-type"),
            "{path}"
        );
        let body = head.bytes().await.expect("HEAD body");
        assert!(body.is_empty(), "{path}: HEAD answered a body");
    }
}

#[tokio::test]
async fn audit_exits_2_when_it_cannot_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{not json").expect("write");
    let garbage = garbage.display().to_string();
    for args in [
        vec!["audit"],
        vec!["audit", "--server"],
        vec!["audit", "--server", "http://127.0.0.1:9", "--no-such-flag"],
        vec!["audit", "--server", "not a url"],
    ] {
        let run = crate::cli::pennypost(&args).await;
        assert_eq!(run.code, 2, "{args:?}: {run}");
    }
    // A state file that is not one is refused before anything is trusted.
    let server = TestServer::start().await;
    let run =
        crate::cli::pennypost(&["audit", "--server", &server.base_url, "--state", &garbage]).await;
    assert_eq!(run.code, 2, "{run}");
    let state = dir.path().join("state.json").display().to_string();
    let run =
        crate::cli::pennypost(&["audit", "--server", &server.base_url, "--state", &state]).await;
    assert_eq!(run.code, 0, "{run}");
}

#[tokio::test]
async fn a_page_of_posts_holds_50_unless_asked() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(60, 51).await;
    let mut created = Vec::new();
    for (n, stamp) in stamps.iter().enumerate() {
        let (status, post) = server
            .post(
                "/v1/posts",
                None,
                json!({"author": "pager", "body": format!("post {n}"), "stamps": [stamp]}),
            )
            .await;
        assert_eq!(status, 201, "{post}");
        created.push(post["post_id"].as_str().expect("post_id").to_string());
    }
    let (status, page) = server.get("/v1/posts").await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<String> = page["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(|p| p["post_id"].as_str().expect("post_id").to_string())
        .collect();
    let newest: Vec<String> = created.iter().rev().take(50).cloned().collect();
    assert_eq!(ids, newest, "the 50 newest, newest first");
    assert_eq!(
        page["next_before"],
        json!(created[1]),
        "{}",
        page["next_before"]
    );
    let (_, rest) = server
        .get(&format!("/v1/posts?before={}", created[1]))
        .await;
    assert_eq!(rest["posts"][0]["post_id"], json!(created[0]));
    assert_eq!(rest["next_before"], Value::Null);
}

#[tokio::test]
async fn the_audit_counts_stamps_sold_never_spent_and_past_expiry_as_expired() {
    // Long enough for the first audit to come before expiry on a busy machine.
    const TTL_SECS: u64 = 5;
    let server = TestServer::start_with(&["--stamp-ttl-secs", &TTL_SECS.to_string()]).await;
    let (key, stamps) = server.stamps(10, 4).await;
    let (status, body) = server.redeem(&stamps[0], "example.org/expiry").await;
    assert_eq!(status, 201, "{body}");
    let counts = |audit: &Value| {
        let field = |name: &str| {
            audit[name]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: {audit}"))
        };
        let counts = (
            field("stamps_issued"),
            field("stamps_spent"),
            field("stamps_outstanding"),
            field("stamps_expired"),
        );
        assert_eq!(counts.0, counts.1 + counts.2 + counts.3, "{audit}");
        assert_eq!(audit["ok"], true, "{audit}");
        counts
    };
    let (_, audit) = server.get("/v1/audit").await;
    assert_eq!(counts(&audit), (4, 1, 3, 0), "before expiry");

    // Past expires_at: the three never spent are expired; the spent one stays spent.
    tokio::time::sleep(std::time::Duration::from_secs(TTL_SECS + 1)).await;
    let (_, audit) = server.get("/v1/audit").await;
    assert_eq!(counts(&audit), (4, 1, 0, 3), "after expiry");
    // New stamps are outstanding beside them.
    let (status, body) = server.purchase(&key, 2, None).await;
    assert_eq!(status, 201, "{body}");
    let (_, audit) = server.get("/v1/audit").await;
    assert_eq!(counts(&audit), (6, 1, 2, 3), "after a new purchase");
}
