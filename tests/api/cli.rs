//! The client side of the command line (`account`, `buy`, `stamps`, `post`, `vote`,
//! `stamp inspect`, `admin credit`) run as the real binary against a real server: under the
//! flat policy for the wallet's mechanics, and under the default economy for prices said in
//! words, stamps bought on the member's word (`--yes`), re-quotes and verified posts.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::helpers::{self, stamp_id, stamp_parts, stamp_text, TestServer, ADMIN_TOKEN};

/// What one run of the binary left: exit code, stdout, stderr.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
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
pub(crate) async fn pennypost(args: &[&str]) -> Run {
    pennypost_with(args, &[]).await
}

/// Runs `pennypost ARGS` with the environment variables `env` and no other client settings.
/// Its stdin is not a terminal (nothing can be asked).
pub(crate) async fn pennypost_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(args)
        .env_remove("PENNYPOST_SERVER")
        .env_remove("PENNYPOST_WALLET")
        .env_remove("PENNYPOST_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .env("PENNYPOST_LOG", "warn")
        .stdin(std::process::Stdio::null())
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
pub(crate) async fn client(server: &TestServer, wallet: &Path, args: &[&str]) -> Run {
    let wallet = wallet.to_str().expect("utf-8 path");
    let mut all = args.to_vec();
    all.extend(["--server", server.base_url.as_str(), "--wallet", wallet]);
    pennypost(&all).await
}

/// A client command that must succeed.
pub(crate) async fn ok(server: &TestServer, wallet: &Path, args: &[&str]) -> Run {
    let run = client(server, wallet, args).await;
    assert_eq!(run.code, 0, "{args:?}: {run}");
    run
}

pub(crate) fn read_wallet(path: &Path) -> Value {
    let bytes = std::fs::read(path).expect("wallet exists");
    serde_json::from_slice(&bytes).expect("wallet is JSON")
}

pub(crate) fn wallet_stamps(path: &Path) -> Vec<String> {
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
    // It prints the kid and the times too, as the server reads them.
    let (_, verified) = server.verify(&bought[0]).await;
    for field in ["kid", "issued_at", "expires_at"] {
        let value = verified[field].as_str().expect(field);
        assert!(inspect.stdout.contains(value), "{field} {value}: {inspect}");
    }
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

    // post spends one stamp; the post is on the board, by the account (verified).
    let run = ok(&server, &wallet, &["post", "hello", "--author", "bob"]).await;
    assert_eq!(wallet_stamps(&wallet), bought[1..].to_vec());
    let (_, page) = server.get("/v1/posts").await;
    let post = &page["posts"][0];
    assert_eq!(post["author"], "bob", "{page}");
    assert_eq!(post["verified"], true, "{page}");
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

    // The last stamp, then out of stamps: buying more needs the member's word, and without a
    // terminal to ask on (and without --yes) the command refuses at once: exit 1, a plain
    // message, nothing bought or sent.
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
    assert!(run.stderr.contains("--yes"), "{run}");
    let run = client(&server, &wallet, &["vote", &post_id, "up"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("out of stamps"), "{run}");
    let (_, account) = server.get_auth("/v1/account", &api_key).await;
    assert_eq!(account["stamps_purchased"], 3, "nothing bought: {account}");
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
    if helpers::sled_only("--cache-mib sizes sled's page cache; with --database it is unused") {
        return;
    }
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

/// The account id a wallet holds.
pub(crate) fn wallet_account(path: &Path) -> String {
    read_wallet(path)["account_id"]
        .as_str()
        .expect("account_id")
        .to_string()
}

/// Rewrites a wallet's stamps.
fn set_wallet_stamps(path: &Path, stamps: &[String]) {
    let mut wallet = read_wallet(path);
    wallet["stamps"] = json!(stamps);
    std::fs::write(path, serde_json::to_vec(&wallet).expect("json")).expect("write wallet");
}

#[tokio::test]
async fn admin_credit_credits_an_account_once_per_reference() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("w.json");
    ok(
        &server,
        &wallet,
        &["account", "create", "--name", "newcomer"],
    )
    .await;
    let account_id = wallet_account(&wallet);
    let token = [("PENNYPOST_ADMIN_TOKEN", ADMIN_TOKEN)];
    let credit = |amount: &'static str, reference: &'static str| {
        let account_id = account_id.clone();
        let server_url = server.base_url.clone();
        async move {
            pennypost_with(
                &[
                    "admin",
                    "credit",
                    &account_id,
                    amount,
                    "--reference",
                    reference,
                    "--server",
                    &server_url,
                ],
                &token,
            )
            .await
        }
    };

    let run = credit("250", "invoice-7").await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("credited 250 cents"), "{run}");
    assert!(run.stdout.contains("balance 250 cents"), "{run}");
    // The same reference again credits nothing more and says so.
    let again = credit("250", "invoice-7").await;
    assert_eq!(again.code, 0, "{again}");
    assert!(again.stdout.contains("already credited"), "{again}");
    assert!(again.stdout.contains("nothing was credited"), "{again}");
    assert!(!again.stdout.starts_with("credited"), "{again}");
    // The same reference for another amount is refused.
    let run = credit("300", "invoice-7").await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("idempotency_conflict"), "{run}");
    // A payment provider's reference is refused, and the command says why.
    let run = credit("5", "stripe:cs_test_1").await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("payment provider"), "{run}");
    assert!(run.stderr.contains("payment provider"), "{run}");
    let run = ok(&server, &wallet, &["account", "show"]).await;
    assert!(run.stdout.contains("250 cents"), "{run}");

    // Without the token, or with a wrong one, or for an id that is not one: exit 1, plainly.
    let run = pennypost(&[
        "admin",
        "credit",
        &account_id,
        "5",
        "--reference",
        "r",
        "--server",
        &server.base_url,
    ])
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("PENNYPOST_ADMIN_TOKEN"), "{run}");
    let run = pennypost_with(
        &[
            "admin",
            "credit",
            &account_id,
            "5",
            "--reference",
            "r",
            "--server",
            &server.base_url,
        ],
        &[("PENNYPOST_ADMIN_TOKEN", "not-the-token")],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("unauthorized"), "{run}");
    let run = pennypost_with(
        &[
            "admin",
            "credit",
            "someone",
            "5",
            "--reference",
            "r",
            "--server",
            &server.base_url,
        ],
        &token,
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("not an account id"), "{run}");
    let (_, account) = server.get("/v1/audit").await;
    assert_eq!(account["credits_total"], 250, "{account}");
}

#[tokio::test]
async fn admin_debit_takes_money_back_and_says_what_it_revoked() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("w.json");
    ok(&server, &wallet, &["account", "create"]).await;
    let account_id = wallet_account(&wallet);
    server.credit(&account_id, 10, "paid").await;
    ok(&server, &wallet, &["buy", "2"]).await;
    let token = [("PENNYPOST_ADMIN_TOKEN", ADMIN_TOKEN)];
    let debit = |amount: &'static str, reference: &'static str| {
        let account_id = account_id.clone();
        let server_url = server.base_url.clone();
        async move {
            pennypost_with(
                &[
                    "admin",
                    "debit",
                    &account_id,
                    amount,
                    "--reference",
                    reference,
                    "--server",
                    &server_url,
                ],
                &token,
            )
            .await
        }
    };
    // 8 left after 2 stamps at 1: a debit of 20 takes both back and leaves 10 owed.
    let run = debit("20", "mistake-1").await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("debited 20 cents"), "{run}");
    assert!(run.stdout.contains("balance -10 cents"), "{run}");
    assert!(run.stdout.contains("revoked 2 unspent stamp(s)"), "{run}");
    assert!(run.stdout.contains("owes 10 cents"), "{run}");
    let again = debit("20", "mistake-1").await;
    assert_eq!(again.code, 0, "{again}");
    assert!(again.stdout.contains("already debited"), "{again}");
    let run = debit("5", "test:p-1").await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("payment provider"), "{run}");
    let run = ok(&server, &wallet, &["account", "show"]).await;
    assert!(run.stdout.contains("-10"), "{run}");
}

#[tokio::test]
async fn stamps_full_prints_each_stamp_whole() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("w.json");
    ok(&server, &wallet, &["account", "create"]).await;
    server.credit(&wallet_account(&wallet), 10, "full").await;
    ok(&server, &wallet, &["buy", "2"]).await;
    let stamps = wallet_stamps(&wallet);
    let short = ok(&server, &wallet, &["stamps"]).await;
    let full = ok(&server, &wallet, &["stamps", "--full"]).await;
    for stamp in &stamps {
        assert!(!short.stdout.contains(stamp.as_str()), "{short}");
        let line = full
            .stdout
            .lines()
            .find(|l| l.contains(&stamp_id(stamp)))
            .unwrap_or_else(|| panic!("{full}"));
        assert!(line.ends_with(&format!("  {stamp}")), "{line}");
    }
    // The printed text spends like the stamp it is.
    let (status, body) = server.redeem(&stamps[0], "elsewhere").await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn the_client_says_the_price_and_buys_what_is_missing_with_yes() {
    let server = TestServer::start_priced(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("w.json");
    ok(&server, &wallet, &["account", "create", "--name", "carol"]).await;
    let api_key = read_wallet(&wallet)["api_key"]
        .as_str()
        .expect("key")
        .to_string();
    server.credit(&wallet_account(&wallet), 100, "carol").await;

    // The first post costs 1 stamp, and the wallet holds none: without a terminal and without
    // --yes the command says so and buys nothing; with --yes it buys 1 and posts, verified.
    let run = client(&server, &wallet, &["post", "first"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("this post costs 1 stamp"), "{run}");
    assert!(run.stderr.contains("--yes"), "{run}");
    let (_, account) = server.get_auth("/v1/account", &api_key).await;
    assert_eq!(account["stamps_purchased"], 0, "{account}");
    let run = ok(&server, &wallet, &["post", "first", "--yes"]).await;
    assert!(run.stdout.contains("bought 1 stamp for 1 cent"), "{run}");
    assert!(run.stdout.contains("as carol (verified)"), "{run}");
    let (_, page) = server.get("/v1/posts").await;
    assert_eq!(page["posts"][0]["cost"], 1, "{page}");
    assert_eq!(page["posts"][0]["verified"], true, "{page}");
    assert_eq!(page["posts"][0]["author"], "carol", "{page}");

    // The second post within ten minutes costs 2, said in words; it needs agreement even with
    // the stamps in hand, and --yes buys and pays it.
    ok(&server, &wallet, &["buy", "2"]).await;
    let run = client(&server, &wallet, &["post", "second"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout
            .contains("this post costs 2 stamps: your second in ten minutes"),
        "{run}"
    );
    assert!(run.stderr.contains("more than the usual 1 stamp"), "{run}");
    assert_eq!(wallet_stamps(&wallet).len(), 2, "nothing spent");
    let run = ok(&server, &wallet, &["post", "second", "-y"]).await;
    assert!(run.stdout.contains("it cost 2 stamps"), "{run}");
    assert!(wallet_stamps(&wallet).is_empty());
    // With an empty wallet: it buys the 4 the third post costs.
    let run = ok(&server, &wallet, &["post", "third", "--yes"]).await;
    assert!(run.stdout.contains("your third in ten minutes"), "{run}");
    assert!(run.stdout.contains("bought 4 stamps"), "{run}");
    let (_, page) = server.get("/v1/posts").await;
    let costs: Vec<u64> = page["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(|p| p["cost"].as_u64().expect("cost"))
        .collect();
    assert_eq!(costs, [4, 2, 1], "{page}");

    // Two votes on one post: the first costs 1, the second 3, said so and bought with --yes.
    let (_, stamps) = server.stamps(10, 1).await;
    let (status, body) = server
        .post(
            "/v1/posts",
            None,
            json!({"author": "dan", "body": "vote on me", "stamps": stamps}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let post_id = body["post_id"].as_str().expect("post id").to_string();
    let run = ok(&server, &wallet, &["vote", &post_id, "up", "--yes"]).await;
    assert!(run.stdout.contains("this vote costs 1 stamp"), "{run}");
    assert!(run.stdout.contains("it cost 1 stamp"), "{run}");
    let run = ok(&server, &wallet, &["vote", &post_id, "up", "--yes"]).await;
    assert!(
        run.stdout
            .contains("your second vote on this post costs 3 stamps"),
        "{run}"
    );
    assert!(run.stdout.contains("bought 3 stamps"), "{run}");
    assert!(run.stdout.contains("score is now 2"), "{run}");
    let (_, read) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(read["votes_up"], 2, "{read}");
    assert_eq!(read["voters"], 1, "{read}");
    let (_, account) = server.get_auth("/v1/account", &api_key).await;
    // 1 + 2 + 4 bought for posts (2 of them by `buy`), 1 + 3 for votes.
    assert_eq!(account["stamps_purchased"], 11, "{account}");
    assert_eq!(account["stamps_spent"], 11, "{account}");
    assert_eq!(account["balance"], 89, "{account}");
    assert!(wallet_stamps(&wallet).is_empty());
    let (_, audit) = server.get("/v1/audit").await;
    assert_eq!(audit["ok"], true, "{audit}");
}

#[tokio::test]
async fn the_client_quotes_again_once_when_the_price_moved() {
    let server = TestServer::start_priced(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("w.json");
    ok(&server, &wallet, &["account", "create", "--name", "erin"]).await;
    // The wallet holds stamps of another buyer, who has just posted: the quote (for erin's
    // account) says 1, the server asks 2 of that buyer, and the client pays 2 after saying so.
    let (_, other) = server.stamps(10, 4).await;
    let (status, body) = server
        .post(
            "/v1/posts",
            None,
            json!({"author": "other", "body": "first", "stamps": [other[0]]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    set_wallet_stamps(&wallet, &other[1..]);
    let run = ok(&server, &wallet, &["post", "moved", "--yes"]).await;
    assert!(run.stdout.contains("this post costs 1 stamp"), "{run}");
    assert!(
        run.stdout
            .contains("the price changed before the post went out: the server asks 2 stamps"),
        "{run}"
    );
    assert!(run.stdout.contains("it cost 2 stamps"), "{run}");
    assert_eq!(wallet_stamps(&wallet), other[3..].to_vec());

    // Stamps of two buyers in one post: refused, said plainly, nothing spent. erin pays for a
    // post of her own first, so that her next one costs 2: one stamp of each buyer.
    server.credit(&wallet_account(&wallet), 10, "erin").await;
    set_wallet_stamps(&wallet, &[]);
    ok(&server, &wallet, &["post", "her own", "--yes"]).await;
    ok(&server, &wallet, &["buy", "1"]).await;
    let mut mixed = other[3..].to_vec();
    mixed.extend(wallet_stamps(&wallet));
    set_wallet_stamps(&wallet, &mixed);
    let run = client(&server, &wallet, &["post", "mixed", "--yes"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("this post costs 2 stamps"), "{run}");
    assert!(run.stderr.contains("mixed_payers"), "{run}");
    assert!(run.stderr.contains("more than one account"), "{run}");
    assert_eq!(wallet_stamps(&wallet), mixed);
}
