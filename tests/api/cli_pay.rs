//! Money in from the command line (`pay`, `payments list|check`), run as the real binary
//! against a real server with the `test` provider: the member pays through the test provider's
//! pay page (`POST /pay/{id}`, here with a plain HTTP client instead of a browser), the command
//! sees it paid and prints the new balance. Also what is refused before anything is created (a
//! provider the server does not take, amounts out of bounds), a server that takes no payments,
//! a provider whose API is down (503), `--no-wait`, a wait that ends unpaid, and a debt said
//! plainly and paid off.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::cli::{pennypost, read_wallet, Run};
use crate::helpers::{TestServer, ADMIN_TOKEN};
use crate::process::{self, Served};

/// A port free now, for a server that must know its own address before it starts
/// (`--public-url`, where the test provider's pay page is).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A server with the test provider (and `more` flags), its public URL its own address.
fn start_paying(dir: &Path, more: &[&str]) -> Served {
    let address = format!("127.0.0.1:{}", free_port());
    let public_url = format!("http://{address}");
    let (data, keys) = (dir.join("data"), dir.join("keys"));
    let mut args = vec![
        "--listen",
        &address,
        "--public-url",
        &public_url,
        "--payment-provider",
        "test",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--keys-dir",
        keys.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(more);
    let served = process::start(&args, &[], &dir.join("serve.log"), false);
    assert_eq!(served.base_url, public_url);
    served
}

/// Runs a client command against `base` with `wallet`.
async fn at(base: &str, wallet: &Path, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend([
        "--server",
        base,
        "--wallet",
        wallet.to_str().expect("utf-8"),
    ]);
    pennypost(&all).await
}

async fn ok_at(base: &str, wallet: &Path, args: &[&str]) -> Run {
    let run = at(base, wallet, args).await;
    assert_eq!(run.code, 0, "{args:?}: {run}");
    run
}

fn api_key(wallet: &Path) -> String {
    read_wallet(wallet)["api_key"]
        .as_str()
        .expect("api_key")
        .to_string()
}

async fn get_json(base: &str, path: &str, key: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn balance(base: &str, wallet: &Path) -> i64 {
    let (status, account) = get_json(base, "/v1/account", &api_key(wallet)).await;
    assert_eq!(status, 200, "{account}");
    account["balance"].as_i64().expect("balance")
}

/// Presses the test provider's "Pay (test mode)" button: the form's POST to the pay page.
async fn press_pay(pay_url: &str) {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(pay_url)
        .form(&[("pay", "1")])
        .send()
        .await
        .expect("POST the pay page");
    let status = response.status();
    assert!(
        status.is_redirection() || status.is_success(),
        "POST {pay_url}: {status} {}",
        response.text().await.unwrap_or_default()
    );
}

/// The `pay_url` a `pay` printed (`pay here …: URL`).
fn pay_url_in(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find(|l| l.starts_with("pay here"))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_string)
}

/// The payment id a `pay` printed (`payment ID of …`).
fn payment_id_in(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("payment "))
        .and_then(|rest| rest.split(' ').next())
        .expect("a payment line")
        .to_string()
}

#[tokio::test]
async fn pay_waits_for_the_test_provider_then_says_the_balance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = start_paying(dir.path(), &[]);
    let base = served.base_url.as_str();
    let wallet = dir.path().join("w.json");
    let run = ok_at(base, &wallet, &["account", "create", "--name", "payer"]).await;
    assert!(
        run.stdout
            .contains("add money with `pennypost pay --amount 500 --provider test`"),
        "a new account is told how to add money: {run}"
    );
    // Buying with no money says the same.
    let run = at(base, &wallet, &["buy", "1"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("pennypost pay --amount"), "{run}");

    // `pay` prints where to pay and waits (plain lines: no terminal here).
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(["pay", "--amount", "500", "--provider", "test"])
        .args([
            "--server",
            base,
            "--wallet",
            wallet.to_str().expect("utf-8"),
        ])
        .env_remove("PENNYPOST_SERVER")
        .env_remove("PENNYPOST_WALLET")
        .env("PENNYPOST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run pennypost pay");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = String::new();
    let pay_url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            printed.push_str(&line);
            printed.push('\n');
            if let Some(url) = pay_url_in(&line) {
                return url;
            }
        }
        panic!("pay exited without a pay_url: {printed}");
    })
    .await
    .expect("pay printed its pay_url in time");
    assert!(printed.contains("test mode"), "{printed}");
    assert!(pay_url.starts_with(&format!("{base}/pay/")), "{pay_url}");
    let id = payment_id_in(&printed);
    assert_eq!(
        balance(base, &wallet).await,
        0,
        "nothing credited before paying"
    );

    press_pay(&pay_url).await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("pay saw the payment paid in time")
        .expect("wait");
    let mut rest = String::new();
    while let Some(line) = lines.next_line().await.expect("read") {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert!(status.success(), "{printed}{rest}");
    assert!(rest.contains("waiting for the payment"), "{rest}");
    assert!(rest.contains("paid: 500 cents credited"), "{rest}");
    assert!(rest.contains("balance 500 cents"), "{rest}");
    assert_eq!(balance(base, &wallet).await, 500);

    // The money buys stamps.
    let run = ok_at(base, &wallet, &["buy", "3"]).await;
    assert!(run.stdout.contains("balance 497 cents"), "{run}");

    // `payments list`: a table of the account's payments.
    let run = ok_at(base, &wallet, &["payments", "list"]).await;
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("PROVIDER") && lines[0].contains("CREATED"),
        "{run}"
    );
    assert!(
        lines[1].starts_with(&id) && lines[1].contains("test") && lines[1].contains("500 cents"),
        "{run}"
    );
    assert!(lines[1].contains("paid"), "{run}");

    // `payments check`: the payment, credited, and the balance.
    let run = ok_at(base, &wallet, &["payments", "check", &id]).await;
    assert!(run.stdout.contains("paid (credited, ledger entry"), "{run}");
    assert!(run.stdout.contains("test mode"), "{run}");
    assert!(run.stdout.contains("balance:  497 cents"), "{run}");
    // Not a payment id, and another account's payment: refused plainly.
    let run = at(base, &wallet, &["payments", "check", "nope"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("not a payment id"), "{run}");
    let other = dir.path().join("other.json");
    ok_at(base, &other, &["account", "create", "--name", "other"]).await;
    let run = at(base, &other, &["payments", "check", &id]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("no such payment"), "{run}");
    let run = ok_at(base, &other, &["payments", "list"]).await;
    assert!(run.stdout.contains("no payments yet"), "{run}");
}

#[tokio::test]
async fn pay_with_no_wait_prints_the_address_and_check_sees_it_paid_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = start_paying(dir.path(), &[]);
    let base = served.base_url.as_str();
    let wallet = dir.path().join("w.json");
    ok_at(base, &wallet, &["account", "create"]).await;

    let run = ok_at(
        base,
        &wallet,
        &["pay", "--amount", "100", "--provider", "test", "--no-wait"],
    )
    .await;
    let pay_url = pay_url_in(&run.stdout).expect("a pay_url");
    let id = payment_id_in(&run.stdout);
    assert!(run.stdout.contains("--no-wait"), "{run}");
    let run = ok_at(base, &wallet, &["payments", "check", &id]).await;
    assert!(run.stdout.contains("status:   pending"), "{run}");
    assert!(
        run.stdout.contains(&pay_url),
        "pending: where to pay: {run}"
    );

    press_pay(&pay_url).await;
    let run = ok_at(base, &wallet, &["payments", "check", &id]).await;
    assert!(run.stdout.contains("status:   paid"), "{run}");
    assert!(run.stdout.contains("balance:  100 cents"), "{run}");

    // A wait that ends before the member pays: bounded, exit 1, and says how to look later.
    let run = at(
        base,
        &wallet,
        &[
            "pay",
            "--amount",
            "100",
            "--provider",
            "test",
            "--wait-secs",
            "3",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("still pending after three seconds"),
        "{run}"
    );
    assert!(run.stderr.contains("pennypost payments check"), "{run}");
    assert_eq!(balance(base, &wallet).await, 100);
}

#[tokio::test]
async fn pay_refuses_plainly_what_cannot_be_paid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = start_paying(dir.path(), &[]);
    let base = served.base_url.as_str();
    let wallet = dir.path().join("w.json");
    ok_at(base, &wallet, &["account", "create"]).await;

    // A provider the server does not take: names what it takes.
    let run = at(
        base,
        &wallet,
        &["pay", "--amount", "500", "--provider", "stripe"],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("does not take payments with \"stripe\""),
        "{run}"
    );
    assert!(run.stderr.contains("test (test mode"), "{run}");
    // Amounts out of the server's bounds (100 to 100000 by default).
    for amount in ["99", "100001", "0"] {
        let run = at(
            base,
            &wallet,
            &["pay", "--amount", amount, "--provider", "test"],
        )
        .await;
        assert_eq!(run.code, 1, "{amount}: {run}");
        assert!(run.stderr.contains("out of bounds"), "{amount}: {run}");
        assert!(run.stderr.contains("100 cents to 100000 cents"), "{run}");
    }
    let run = ok_at(base, &wallet, &["payments", "list"]).await;
    assert!(
        run.stdout.contains("no payments yet"),
        "nothing created: {run}"
    );
    // Without an account in the wallet.
    let run = at(
        base,
        &dir.path().join("none.json"),
        &["pay", "--amount", "500", "--provider", "test"],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("account create"), "{run}");

    // A server that takes no payments says so, and who credits instead.
    let plain = TestServer::start().await;
    let other = dir.path().join("plain.json");
    ok_at(&plain.base_url, &other, &["account", "create"]).await;
    let run = at(
        &plain.base_url,
        &other,
        &["pay", "--amount", "500", "--provider", "test"],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("takes no payments"), "{run}");
    assert!(run.stderr.contains("operator"), "{run}");
}

#[tokio::test]
async fn pay_says_nothing_was_charged_when_the_provider_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Stripe's API on a loopback port nobody listens on: every call fails, so the server
    // answers 503 and records nothing.
    let down = format!("http://127.0.0.1:{}", free_port());
    let served = start_paying(
        dir.path(),
        &[
            "--currency",
            "USD",
            "--payment-test-beside-real",
            "--stripe-secret-key",
            "rk_test_down",
            "--stripe-webhook-secret",
            "whsec_down",
            "--stripe-api-base",
            &down,
        ],
    );
    let base = served.base_url.as_str();
    let wallet = dir.path().join("w.json");
    ok_at(base, &wallet, &["account", "create"]).await;
    // Amounts of an ISO currency are said as its decimals.
    let run = at(
        base,
        &wallet,
        &["pay", "--amount", "50", "--provider", "stripe"],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(
            "an amount of 0.50 USD is out of bounds: one payment with stripe is 1.00 USD to \
             1000.00 USD"
        ),
        "{run}"
    );
    let run = at(
        base,
        &wallet,
        &["pay", "--amount", "500", "--provider", "stripe"],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("(503)"), "{run}");
    assert!(
        run.stderr
            .contains("nothing was charged and nothing is pending"),
        "{run}"
    );
    let run = ok_at(base, &wallet, &["payments", "list"]).await;
    assert!(run.stdout.contains("no payments yet"), "{run}");
}

#[tokio::test]
async fn a_debt_is_said_plainly_and_paid_off_with_pay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = start_paying(dir.path(), &[]);
    let base = served.base_url.as_str();
    let wallet = dir.path().join("w.json");
    ok_at(base, &wallet, &["account", "create"]).await;
    let account_id = read_wallet(&wallet)["account_id"]
        .as_str()
        .expect("account_id")
        .to_string();
    let pay = |wallet: std::path::PathBuf| async move {
        let run = ok_at(
            base,
            &wallet,
            &["pay", "--amount", "100", "--provider", "test", "--no-wait"],
        )
        .await;
        press_pay(&pay_url_in(&run.stdout).expect("a pay_url")).await;
        payment_id_in(&run.stdout)
    };
    pay(wallet.clone()).await;
    ok_at(base, &wallet, &["buy", "3"]).await;

    // The operator takes back 300 (a correction): 97 − 300, plus the 3 unspent stamps revoked,
    // leaves 200 owed.
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/admin/accounts/{account_id}/debit"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"amount": 300, "reference": "correction-1"}))
        .send()
        .await
        .expect("debit");
    assert_eq!(response.status(), 200);
    assert_eq!(balance(base, &wallet).await, -200);
    let owed = "you owe 200 cents; purchases are refused until it is paid";
    let run = ok_at(base, &wallet, &["account", "show"]).await;
    assert!(run.stdout.contains(&format!("-200 cents: {owed}")), "{run}");
    let run = at(base, &wallet, &["buy", "1"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains(owed), "{run}");
    assert!(run.stderr.contains("pennypost pay --amount"), "{run}");

    // Paying pays the debt off, part by part.
    let id = pay(wallet.clone()).await;
    let run = ok_at(base, &wallet, &["payments", "check", &id]).await;
    assert!(
        run.stdout
            .contains("balance:  -100 cents: you owe 100 cents; purchases are refused"),
        "{run}"
    );
    let id = pay(wallet.clone()).await;
    let run = ok_at(base, &wallet, &["payments", "check", &id]).await;
    assert!(run.stdout.contains("balance:  0 cents"), "{run}");
    ok_at(base, &wallet, &["payments", "list"]).await;
}
