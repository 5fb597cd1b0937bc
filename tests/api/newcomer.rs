//! A newcomer's first hour (issue 19): the client finds the wallet's server on a port other
//! than 8080 and names a wallet used at another server, addresses typed without a scheme or
//! with a host name work, the admin token is explained the same way by `admin credit` and
//! `backup` and can come from a file, and `buy` says amounts with their currency and what to do
//! at a zero balance.

use std::os::unix::fs::PermissionsExt as _;

use crate::cli::{ok, pennypost, pennypost_with, read_wallet, wallet_account};
use crate::helpers::{TestServer, ADMIN_TOKEN, FLAT};

/// `account create --server URL` saves URL in the wallet, and later commands without
/// `--server` go there, not to 8080; `--server` or PENNYPOST_SERVER still win, and a wallet
/// used at a server that does not know its key says which server it belongs to.
#[tokio::test]
async fn the_client_uses_the_wallets_server_and_names_a_mismatch() {
    let home = TestServer::start().await;
    let other = TestServer::start().await;
    assert!(!home.base_url.ends_with(":8080"), "{}", home.base_url);
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("w.json");
    let wallet_arg = wallet.to_str().expect("utf-8");
    ok(&home, &wallet, &["account", "create", "--name", "wanderer"]).await;
    assert_eq!(read_wallet(&wallet)["server"], home.base_url.as_str());
    let account_id = wallet_account(&wallet);
    home.credit(&account_id, 10, "newcomer").await;

    // No --server and no PENNYPOST_SERVER: the wallet's server.
    for args in [
        vec!["account", "show", "--wallet", wallet_arg],
        vec!["buy", "1", "--wallet", wallet_arg],
        vec!["post", "hello", "--wallet", wallet_arg],
    ] {
        let run = pennypost(&args).await;
        assert_eq!(run.code, 0, "{args:?}: {run}");
        assert!(!run.stderr.contains("8080"), "{args:?}: {run}");
    }
    let (_, page) = home.get("/v1/posts").await;
    assert_eq!(page["posts"][0]["author"], "wanderer", "{page}");

    // Another server by flag or by environment: a note, then the mismatch named.
    let by_flag = pennypost(&[
        "account",
        "show",
        "--wallet",
        wallet_arg,
        "--server",
        &other.base_url,
    ])
    .await;
    let by_env = pennypost_with(
        &["account", "show", "--wallet", wallet_arg],
        &[("PENNYPOST_SERVER", &other.base_url)],
    )
    .await;
    for run in [by_flag, by_env] {
        assert_eq!(run.code, 1, "{run}");
        assert!(run.stderr.contains("unknown API key"), "{run}");
        assert!(
            run.stderr.contains(&format!(
                "holds an account of the server at {}",
                home.base_url
            )),
            "{run}"
        );
        assert!(run.stderr.contains("leave out --server"), "{run}");
    }
    // A buy at the other server is refused the same way and buys nothing anywhere.
    let run = pennypost(&[
        "buy",
        "1",
        "--wallet",
        wallet_arg,
        "--server",
        &other.base_url,
    ])
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("holds an account of the server at"),
        "{run}"
    );
}

/// `--server 127.0.0.1:PORT` (no scheme) works and is saved with `http://`; a scheme that is
/// not HTTP is refused in words, by every command that takes `--server`.
#[tokio::test]
async fn a_server_address_without_a_scheme_gets_http() {
    let server = TestServer::start().await;
    let address = server
        .base_url
        .strip_prefix("http://")
        .expect("http URL")
        .to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("w.json");
    let wallet_arg = wallet.to_str().expect("utf-8");
    let run = pennypost(&[
        "account",
        "create",
        "--server",
        &format!("{address}/"),
        "--wallet",
        wallet_arg,
    ])
    .await;
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(read_wallet(&wallet)["server"], server.base_url.as_str());
    let run = pennypost(&["audit", "--server", &address]).await;
    assert_eq!(run.code, 0, "{run}");
    for args in [
        vec!["account", "show", "--wallet", wallet_arg],
        vec!["admin", "credit", "x", "1", "--reference", "r"],
        vec!["backup", "--to", "/tmp/x"],
        vec!["audit"],
    ] {
        let mut args = args;
        args.extend(["--server", "ftp://127.0.0.1:1"]);
        let run = pennypost(&args).await;
        assert_eq!(run.code, 2, "{args:?}: {run}");
        assert!(
            run.stderr.contains("not http:// or https://"),
            "{args:?}: {run}"
        );
        assert!(!run.stderr.contains("builder error"), "{args:?}: {run}");
    }
}

/// `--listen localhost:0` (a host name, as the README's curl lines use) starts the server, and
/// an address without a port says which forms are wanted.
#[tokio::test]
async fn listen_takes_a_host_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, keys) = (dir.path().join("data"), dir.path().join("keys"));
    let served = crate::process::start(
        &[
            "--listen",
            "localhost:0",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--keys-dir",
            keys.to_str().expect("utf-8"),
        ],
        FLAT,
        &dir.path().join("serve.log"),
        false,
    );
    let health = reqwest::get(format!("{}/healthz", served.base_url))
        .await
        .expect("reach the server");
    assert_eq!(health.status(), 200);
    drop(served);
    let run = pennypost(&["serve", "--listen", "localhost"]).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("HOST:PORT"), "{run}");
    assert!(
        !run.stderr.contains("invalid socket address syntax"),
        "{run}"
    );
}

/// `backup --help` names the token; `backup` without it explains where the token is as
/// `admin credit` does (one message); `admin_token` in the config file says where it goes
/// instead; `--admin-token-file` serves with the token of a private file.
#[tokio::test]
async fn the_admin_token_is_explained_alike_and_can_come_from_a_file() {
    let help = pennypost(&["backup", "--help"]).await;
    assert_eq!(help.code, 0, "{help}");
    assert!(help.stdout.contains("PENNYPOST_ADMIN_TOKEN"), "{help}");
    let backup = pennypost(&["backup", "--to", "/tmp/never", "--server", "127.0.0.1:9"]).await;
    let credit = pennypost(&[
        "admin",
        "credit",
        "26330508-8664-426a-a90f-50a35e8a28d0",
        "1",
        "--reference",
        "r",
        "--server",
        "127.0.0.1:9",
    ])
    .await;
    assert_eq!(backup.code, 2, "{backup}");
    assert_eq!(credit.code, 1, "{credit}");
    assert_eq!(backup.stderr, credit.stderr, "one message for both");
    assert!(backup.stderr.contains("<data-dir>/admin_token"), "{backup}");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pennypost.toml");
    std::fs::write(&config, "admin_token = \"hunter2\"\n").expect("write");
    let run = pennypost(&["serve", "--config", config.to_str().expect("utf-8")]).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("PENNYPOST_ADMIN_TOKEN"), "{run}");
    assert!(run.stderr.contains("admin_token_file"), "{run}");
    assert!(!run.stderr.contains("hunter2"), "{run}");

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "from-a-file\n").expect("write");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (data, keys) = (dir.path().join("data"), dir.path().join("keys"));
    let served = crate::process::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--keys-dir",
            keys.to_str().expect("utf-8"),
            "--admin-token-file",
            token_file.to_str().expect("utf-8"),
        ],
        FLAT,
        &dir.path().join("serve.log"),
        false,
    );
    let client = reqwest::Client::new();
    let backup_dir = dir.path().join("copy");
    for (token, status) in [(ADMIN_TOKEN, 401), ("from-a-file", 201)] {
        let answer = client
            .post(format!("{}/v1/admin/backup", served.base_url))
            .bearer_auth(token)
            .json(&serde_json::json!({"path": backup_dir}))
            .send()
            .await
            .expect("backup");
        assert_eq!(answer.status(), status, "{token}");
    }
    assert!(!data.join("admin_token").exists(), "no token generated");
}

/// `buy` says amounts with the currency; at a zero balance it says to ask the operator for a
/// credit, naming the account.
#[tokio::test]
async fn buy_says_the_currency_and_whom_to_ask_for_money() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wallet = dir.path().join("w.json");
    ok(&server, &wallet, &["account", "create"]).await;
    let account_id = wallet_account(&wallet);
    let run = crate::cli::client(&server, &wallet, &["buy", "1"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("insufficient_funds"), "{run}");
    assert!(
        run.stderr
            .contains(&format!("ask the operator to credit account {account_id}")),
        "{run}"
    );
    server.credit(&account_id, 5, "first money").await;
    let run = ok(&server, &wallet, &["buy", "2"]).await;
    assert!(
        run.stdout
            .contains("bought 2 stamps for 2 cents; balance 3 cents"),
        "{run}"
    );
}

/// `GET /v1/ledger/entries?from=F&to=T` is the range the proofs' words name, not the first
/// page with `from` ignored; two names for one thing are refused, not one silently dropped.
#[tokio::test]
async fn ledger_entries_take_from_and_to_as_the_proofs_name_them() {
    let server = TestServer::start().await;
    server.stamps(10, 4).await;
    let (status, all) = server.get_text("/v1/ledger/entries").await;
    assert_eq!(status, 200, "{all}");
    let all: Vec<&str> = all.lines().collect();
    assert!(all.len() >= 4, "{all:?}");
    let indexes = |text: &str| -> Vec<u64> {
        text.lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).expect("entry")["index"]
                    .as_u64()
                    .expect("index")
            })
            .collect()
    };
    for (query, wanted) in [
        ("from=1", (1..all.len() as u64).collect::<Vec<_>>()),
        ("from=1&to=3", vec![1, 2]),
        ("from=2&limit=1", vec![2]),
        ("start=1&to=2", vec![1]),
        ("from=2&to=2", vec![]),
    ] {
        let (status, text) = server
            .get_text(&format!("/v1/ledger/entries?{query}"))
            .await;
        assert_eq!(status, 200, "{query}: {text}");
        assert_eq!(indexes(&text), wanted, "{query}");
    }
    for (query, words) in [
        ("from=100", "past the ledger size"),
        ("from=3&to=1", "before from"),
        ("start=1&from=1", "not both"),
        ("limit=1&to=1", "not both"),
    ] {
        let (status, body) = server.get(&format!("/v1/ledger/entries?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], "bad_request", "{query}: {body}");
        assert!(
            body["detail"].as_str().unwrap_or_default().contains(words),
            "{query}: {body}"
        );
    }
}
