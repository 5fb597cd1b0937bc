//! The client side of the command line (`account`, `buy`, `stamps`, `post`, `vote`,
//! `stamp inspect`) run as the real binary against a real server.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::helpers::{stamp_id, stamp_parts, stamp_text, TestServer};

/// What one run of the binary left: exit code, stdout, stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `pennypost ARGS` with no client settings from the environment.
async fn pennypost(args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(args)
        .env_remove("PENNYPOST_SERVER")
        .env_remove("PENNYPOST_WALLET")
        .env("PENNYPOST_LOG", "warn")
        .output()
        .await
        .expect("run pennypost");
    Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs a client command against `server` with `wallet`.
async fn client(server: &TestServer, wallet: &Path, args: &[&str]) -> Run {
    let wallet = wallet.to_str().expect("utf-8 path");
    let mut all = args.to_vec();
    all.extend(["--server", server.base_url.as_str(), "--wallet", wallet]);
    pennypost(&all).await
}

/// A client command that must succeed.
async fn ok(server: &TestServer, wallet: &Path, args: &[&str]) -> Run {
    let run = client(server, wallet, args).await;
    assert_eq!(run.code, 0, "{args:?}: {run}");
    run
}

fn read_wallet(path: &Path) -> Value {
    let bytes = std::fs::read(path).expect("wallet exists");
    serde_json::from_slice(&bytes).expect("wallet is JSON")
}

fn wallet_stamps(path: &Path) -> Vec<String> {
    read_wallet(path)["stamps"]
        .as_array()
        .expect("stamps")
        .iter()
        .map(|s| s.as_str().expect("stamp").to_string())
        .collect()
}

fn assert_private(path: &Path) {
    let mode = std::fs::metadata(path)
        .expect("wallet")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}: mode {mode:o}", path.display());
}

#[tokio::test]
async fn the_client_creates_an_account_buys_posts_votes_and_runs_out() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("w.json");

    // account create: a wallet mode 0600 holding the API key.
    let run = ok(&server, &wallet, &["account", "create", "--name", "bob"]).await;
    assert_private(&wallet);
    let saved = read_wallet(&wallet);
    let api_key = saved["api_key"].as_str().expect("api_key").to_string();
    let account_id = saved["account_id"]
        .as_str()
        .expect("account_id")
        .to_string();
    assert!(run.stdout.contains(&account_id), "{run}");
    assert!(
        !run.stdout.contains(&api_key),
        "the key stays out of stdout: {run}"
    );
    let (status, account) = server.get_auth("/v1/account", &api_key).await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["account_id"], account_id.as_str());
    assert_eq!(account["name"], "bob");
    // The wallet already holds an account: a second create refuses and keeps it.
    let run = client(&server, &wallet, &["account", "create", "--name", "eve"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(read_wallet(&wallet)["api_key"], api_key.as_str());

    // Credit through the admin API, then buy 3.
    let (status, body) = server.credit(&account_id, 100, "cli-payment").await;
    assert_eq!(status, 200, "{body}");
    let run = ok(&server, &wallet, &["buy", "3"]).await;
    assert!(run.stdout.contains("bought 3"), "{run}");
    assert_private(&wallet);
    let bought = wallet_stamps(&wallet);
    assert_eq!(bought.len(), 3);
    let (_, account) = server.get_auth("/v1/account", &api_key).await;
    assert_eq!(account["stamps_purchased"], 3, "{account}");
    assert_eq!(account["balance"], 97, "{account}");

    // stamps lists the three by id.
    let run = ok(&server, &wallet, &["stamps"]).await;
    assert!(run.stdout.starts_with("3 stamp(s)"), "{run}");
    for stamp in &bought {
        assert!(run.stdout.contains(&stamp_id(stamp)), "{run}");
    }

    // stamp inspect verifies a bought stamp against the server's keys, and not a tampered one.
    let inspect = pennypost(&["stamp", "inspect", &bought[0], "--keys", &server.base_url]).await;
    assert_eq!(inspect.code, 0, "{inspect}");
    assert!(inspect.stdout.contains(&stamp_id(&bought[0])), "{inspect}");
    let keys_url = server.url("/v1/keys");
    let inspect = pennypost(&["stamp", "inspect", &bought[0], "--keys", &keys_url]).await;
    assert_eq!(inspect.code, 0, "{inspect}");
    let (payload, mut signature) = stamp_parts(&bought[0]);
    signature[7] ^= 0x01;
    let tampered = stamp_text(&payload, &signature);
    let inspect = pennypost(&["stamp", "inspect", &tampered, "--keys", &server.base_url]).await;
    assert_eq!(inspect.code, 1, "{inspect}");
    let inspect = pennypost(&[
        "stamp",
        "inspect",
        "pp1.garbage",
        "--keys",
        &server.base_url,
    ])
    .await;
    assert_eq!(inspect.code, 1, "{inspect}");

    // post spends one stamp; the post is on the board.
    let run = ok(&server, &wallet, &["post", "hello", "--author", "bob"]).await;
    assert_eq!(wallet_stamps(&wallet), bought[1..].to_vec());
    let (_, page) = server.get("/v1/posts").await;
    let post = &page["posts"][0];
    assert_eq!(post["author"], "bob", "{page}");
    assert_eq!(post["body"], "hello", "{page}");
    let post_id = post["post_id"].as_str().expect("post_id").to_string();
    assert!(run.stdout.contains(&post_id), "{run}");
    let (_, stamp) = server
        .get(&format!("/v1/stamps/{}", stamp_id(&bought[0])))
        .await;
    assert_eq!(stamp["spent_for"], format!("post:{post_id}"), "{stamp}");

    // vote spends one more; the score is 1.
    let run = ok(&server, &wallet, &["vote", &post_id, "up"]).await;
    assert!(run.stdout.contains("score is now 1"), "{run}");
    assert_eq!(wallet_stamps(&wallet), bought[2..].to_vec());
    let (_, read) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(read["score"], 1, "{read}");
    // A direction that is neither up nor down spends nothing.
    let run = client(&server, &wallet, &["vote", &post_id, "sideways"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(wallet_stamps(&wallet).len(), 1);

    // The last stamp, then out of stamps: exit 1 with a plain message, nothing sent.
    ok(&server, &wallet, &["post", "last one", "--author", "bob"]).await;
    assert!(wallet_stamps(&wallet).is_empty());
    let run = ok(&server, &wallet, &["stamps"]).await;
    assert!(run.stdout.starts_with("0 stamp(s)"), "{run}");
    let run = client(
        &server,
        &wallet,
        &["post", "one too many", "--author", "bob"],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("out of stamps"), "{run}");
    let run = client(&server, &wallet, &["vote", &post_id, "up"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("out of stamps"), "{run}");
    let (_, page) = server.get("/v1/posts").await;
    assert_eq!(page["posts"].as_array().map(Vec::len), Some(2), "{page}");
    let (_, read) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(read["score"], 1, "{read}");

    // account show agrees with the server.
    let run = ok(&server, &wallet, &["account", "show"]).await;
    assert!(
        run.stdout.contains("bob") || run.stdout.contains(&account_id),
        "{run}"
    );
    let (_, account) = server.get_auth("/v1/account", &api_key).await;
    assert_eq!(account["stamps_spent"], 3, "{account}");
    assert_private(&wallet);
}

#[tokio::test]
async fn the_client_drops_stamps_the_server_says_are_spent() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("w.json");
    ok(&server, &wallet, &["account", "create"]).await;
    let account_id = read_wallet(&wallet)["account_id"]
        .as_str()
        .expect("account_id")
        .to_string();
    server.credit(&account_id, 10, "cli-drop").await;
    ok(&server, &wallet, &["buy", "2"]).await;
    let stamps = wallet_stamps(&wallet);

    // Someone spends the first stamp elsewhere (a copy of the wallet, a bearer instrument).
    let (status, body) = server
        .post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamps[0], "context": "elsewhere"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let run = client(&server, &wallet, &["post", "hello"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("stamp_already_spent"), "{run}");
    assert_eq!(wallet_stamps(&wallet), stamps[1..].to_vec());

    // A vote on a post that does not exist keeps the stamp: it was not spent.
    let missing = uuid::Uuid::new_v4().to_string();
    let run = client(&server, &wallet, &["vote", &missing, "up"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("not_found"), "{run}");
    assert_eq!(wallet_stamps(&wallet), stamps[1..].to_vec());

    // The next post pays with the stamp that is left, under the default author.
    ok(&server, &wallet, &["post", "hello"]).await;
    assert!(wallet_stamps(&wallet).is_empty());
    let (_, page) = server.get("/v1/posts").await;
    assert_eq!(page["posts"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["posts"][0]["author"], "anonymous", "{page}");
}

#[tokio::test]
async fn the_client_needs_an_account_and_a_server() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("none.json");
    for args in [vec!["buy", "1"], vec!["account", "show"]] {
        let run = client(&server, &wallet, &args).await;
        assert_eq!(run.code, 1, "{args:?}: {run}");
        assert!(run.stderr.contains("account create"), "{run}");
    }
    // A server that is not there: an error, no wallet written.
    let run = pennypost(&[
        "account",
        "create",
        "--server",
        "http://127.0.0.1:9",
        "--wallet",
        wallet.to_str().expect("path"),
    ])
    .await;
    assert_ne!(run.code, 0, "{run}");
    assert!(!wallet.exists());
}

#[tokio::test]
async fn serve_refuses_a_cache_size_out_of_bounds_before_creating_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let keys = dir.path().join("keys");
    for bad in ["0", "15", "1048577", "lots"] {
        let run = pennypost(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--keys-dir",
            keys.to_str().expect("utf-8"),
            "--cache-mib",
            bad,
        ])
        .await;
        assert_ne!(run.code, 0, "--cache-mib {bad}: {run}");
        assert!(run.stderr.contains("cache-mib"), "--cache-mib {bad}: {run}");
    }
    assert!(
        !data.exists() && !keys.exists(),
        "a refused start created files"
    );
}

#[tokio::test]
async fn a_server_with_a_small_page_cache_still_spends_each_stamp_once() {
    let server = TestServer::start_with(&["--cache-mib", "16"]).await;
    let (_, stamps) = server.stamps(100, 20).await;
    for (i, stamp) in stamps.iter().enumerate() {
        let (status, body) = server.redeem(stamp, &format!("site/{i}")).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = server.redeem(&stamps[0], "again").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "stamp_already_spent");
}
