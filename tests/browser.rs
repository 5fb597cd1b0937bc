//! The web page in a real headless Chromium, driven over WebDriver (chromedriver + fantoccini).
//!
//! - Under the flat policy: create an account, get credit from the operator, buy stamps on the
//!   page, post, upvote, see the score change, and see a clear message when the stamps run out.
//! - Under the default economy: a name that is taken, the price of a second and third post said
//!   in words before anything is spent and bought on the member's word, a price that changes
//!   under the member's feet (re-quoted once), quadratic votes, each post's cost, votes,
//!   voters, refund and verified mark, the refunds in the wallet, stamps of two buyers, and the
//!   ledger panel with the server's own audit.
//!
//! - With the test payment provider: "Add money" on the page, through the provider's pay page
//!   and back, the balance rising, and a debt said plainly.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them). Without them
//! these tests fail and say how to get them: they never skip silently.
//! `PENNYPOST_SCREENSHOT=docs/board.png` saves a screenshot of the board during the economy
//! test (after the votes, before the deliberate error).

#[path = "api/helpers.rs"]
mod helpers;
// The harness's servers run on PostgreSQL under PENNYPOST_TEST_BACKEND=postgres.
#[path = "support/pg.rs"]
mod pg;
// A server started with exactly the flags a test gives (the test provider's).
#[allow(dead_code)] // This binary starts servers only; it reads no metrics and expects no refusal.
#[path = "api/process.rs"]
mod process;
// What the harness starts servers and reads stamps with.
#[path = "support/serve.rs"]
mod serve;
#[path = "support/wire.rs"]
mod wire;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::{json, Value};

use helpers::TestServer;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser at a time: the machine may have few cores, and each test waits on timeouts.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_chromedriver() -> (Driver, u16) {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: the browser test needs Debian's chromium and chromium-driver. \
             Run scripts/test (it installs them) or: apt-get install chromium chromium-driver"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (driver, port)
}

/// A headless Chromium with a fresh profile, and what must live as long as it.
struct Browser {
    client: fantoccini::Client,
    _profile: tempfile::TempDir,
    _driver: Driver,
}

async fn browser() -> Browser {
    let (driver, port) = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let capabilities = match capabilities {
        Value::Object(map) => map,
        _ => unreachable!(),
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("WebDriver session");
    Browser {
        client,
        _profile: profile,
        _driver: driver,
    }
}

async fn text_of(client: &fantoccini::Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap_or_default()
}

/// Waits until `css`'s text satisfies `pred`, returning it.
async fn wait_text(
    client: &fantoccini::Client,
    css: &str,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if pred(&text) {
                    return text;
                }
                if Instant::now() > deadline {
                    panic!("{css}: waited for {what}, text is {text:?}");
                }
            }
        }
        assert!(Instant::now() < deadline, "{css}: never appeared ({what})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(client: &fantoccini::Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.expect(css);
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn click(client: &fantoccini::Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

fn stamp_count(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Signs up on the page under `name` and returns (account id, API key).
async fn sign_up(client: &fantoccini::Client, name: &str) -> (String, String) {
    fill(client, "#account-name", name).await;
    click(client, "#create-account").await;
    let account_id = wait_text(client, "#account-id", "an account id", |t| {
        t.trim().len() == 36
    })
    .await;
    let key = wait_text(client, "#api-key-shown", "the API key", |t| {
        t.contains("ppk_")
    })
    .await;
    (account_id.trim().to_string(), key.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_buys_posts_votes_and_runs_out() {
    let _one = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let browser = browser().await;
    let client = &browser.client;

    client.goto(&server.url("/")).await.expect("open page");

    // Sign up on the page.
    let (account_id, _) = sign_up(client, "alice").await;

    // A server without payment providers says who credits instead of showing "Add money".
    wait_text(client, "#add-money-none", "no providers", |t| {
        t.contains("takes no payments") && t.contains("operator")
    })
    .await;

    // The operator credits 3 cents (3 stamps at the default price).
    let (status, body) = server.credit(&account_id, 3, "browser-payment").await;
    assert_eq!(status, 200, "{body}");

    // Buy 3 stamps on the page.
    fill(client, "#buy-count", "3").await;
    click(client, "#buy").await;
    wait_text(client, "#stamp-count", "3 stamps", |t| {
        stamp_count(t) == Some(3)
    })
    .await;
    wait_text(client, "#balance", "balance 0", |t| t.contains('0')).await;

    // Post, as the account's name (no name to type).
    wait_text(client, "#post-as", "posting as alice", |t| {
        t.contains("alice")
    })
    .await;
    fill(client, "#post-body", "Hello from a real browser").await;
    click(client, "#post-submit").await;
    wait_text(client, "#posts", "the new post", |t| {
        t.contains("Hello from a real browser")
    })
    .await;
    wait_text(client, "#stamp-count", "2 stamps", |t| {
        stamp_count(t) == Some(2)
    })
    .await;

    // Upvote it and see the score change.
    let post = client
        .find(Locator::Css(".post"))
        .await
        .expect("post element");
    let post_id = post
        .attr("data-post-id")
        .await
        .expect("attr")
        .expect("post id");
    let score_css = format!(".post[data-post-id='{post_id}'] .score");
    assert!(text_of(client, &score_css).await.contains('0'));
    click(client, &format!(".post[data-post-id='{post_id}'] .vote-up")).await;
    wait_text(client, &score_css, "score 1", |t| t.trim() == "1").await;
    wait_text(client, "#stamp-count", "1 stamp", |t| {
        stamp_count(t) == Some(1)
    })
    .await;
    let (_, api_post) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(api_post["score"], 1, "{api_post}");
    assert_eq!(api_post["author"], "alice", "{api_post}");
    assert_eq!(api_post["verified"], true, "{api_post}");

    // Spend the last stamp, then try once more: a clear message, no request spent.
    click(client, &format!(".post[data-post-id='{post_id}'] .vote-up")).await;
    wait_text(client, "#stamp-count", "0 stamps", |t| {
        stamp_count(t) == Some(0)
    })
    .await;
    wait_text(client, &score_css, "score 2", |t| t.contains('2')).await;
    click(client, &format!(".post[data-post-id='{post_id}'] .vote-up")).await;
    let message = wait_text(client, "#message", "an out-of-stamps message", |t| {
        t.to_lowercase().contains("out of stamps")
    })
    .await;
    assert!(
        message.to_lowercase().contains("buy") && message.contains("credit"),
        "says what to do: {message}"
    );
    let (_, api_post) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(api_post["score"], 2, "no vote without a stamp: {api_post}");

    // A server error is shown in words: buying with no money left.
    fill(client, "#buy-count", "1").await;
    click(client, "#buy").await;
    let message = wait_text(client, "#message", "an insufficient-funds message", |t| {
        t.to_lowercase().contains("balance is too low")
    })
    .await;
    assert!(
        !message.contains("insufficient_funds"),
        "words, not codes: {message}"
    );
    client.clone().close().await.expect("close session");
}

/// A post made through the API: (status, answer).
async fn api_post(
    server: &TestServer,
    key: Option<&str>,
    author: Option<&str>,
    body: &str,
    stamps: &[String],
) -> (u16, Value) {
    let mut request = json!({"body": body, "stamps": stamps});
    if let Some(author) = author {
        request["author"] = json!(author);
    }
    server.post("/v1/posts", key, request).await
}

/// An up-vote through the API.
async fn api_up_vote(server: &TestServer, post_id: &str, stamps: &[String]) {
    let (status, body) = server
        .post(
            &format!("/v1/posts/{post_id}/votes"),
            None,
            json!({"direction": "up", "stamps": stamps}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Stamps bought through the API with `key` (its account must hold the money).
async fn api_buy(server: &TestServer, key: &str, count: u64) -> Vec<String> {
    let (status, body) = server.purchase(key, count, None).await;
    assert_eq!(status, 201, "{body}");
    serde_json::from_value(body["stamps"].clone()).expect("stamps")
}

/// The id of the post whose body is `body`, on the server's first page.
async fn post_id_of(server: &TestServer, body: &str) -> String {
    let (_, page) = server.get("/v1/posts").await;
    page["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .find(|p| p["body"] == body)
        .and_then(|p| p["post_id"].as_str())
        .unwrap_or_else(|| panic!("no post {body:?}: {page}"))
        .to_string()
}

async fn post_count(server: &TestServer) -> usize {
    let (_, page) = server.get("/v1/posts").await;
    page["posts"].as_array().map_or(0, Vec::len)
}

/// Posts `body` on the page and waits for the price it asks the member to agree to.
async fn post_on_page(client: &fantoccini::Client, body: &str) {
    fill(client, "#post-body", body).await;
    click(client, "#post-submit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sees_prices_votes_refunds_and_the_ledger() {
    let _one = ONE_BROWSER.lock().await;
    let server = TestServer::start_priced(&[]).await;
    let browser = browser().await;
    let client = &browser.client;
    client.goto(&server.url("/")).await.expect("open page");

    // A name that is taken (names compare without case) is said plainly.
    let (status, body) = server
        .post("/v1/accounts", None, json!({"name": "dora"}))
        .await;
    assert_eq!(status, 201, "{body}");
    fill(client, "#account-name", "Dora").await;
    click(client, "#create-account").await;
    let message = wait_text(client, "#message", "a name-taken message", |t| {
        t.contains("taken")
    })
    .await;
    assert!(message.contains("Dora"), "{message}");
    assert!(
        !message.contains("name_taken"),
        "words, not codes: {message}"
    );
    let (account_id, key) = sign_up(client, "dorothy").await;
    let (status, body) = server.credit(&account_id, 100, "dorothy-pays").await;
    assert_eq!(status, 200, "{body}");

    // Buy one stamp; the first post costs it, with no question asked, verified.
    fill(client, "#buy-count", "1").await;
    click(client, "#buy").await;
    wait_text(client, "#stamp-count", "1 stamp", |t| {
        stamp_count(t) == Some(1)
    })
    .await;
    wait_text(client, "#post-submit", "the first post's price", |t| {
        t.contains("1 stamp")
    })
    .await;
    post_on_page(client, "first post").await;
    wait_text(client, "#posts", "the first post", |t| {
        t.contains("first post")
    })
    .await;
    let first = post_id_of(&server, "first post").await;
    let first_css = format!(".post[data-post-id='{first}']");
    let mark = wait_text(
        client,
        &format!("{first_css} .verified-mark"),
        "a mark",
        |t| t.contains("verified"),
    )
    .await;
    assert!(!mark.contains("not"), "{mark}");
    assert!(text_of(client, &format!("{first_css} .author"))
        .await
        .contains("dorothy"));
    assert!(text_of(client, &format!("{first_css} .post-cost"))
        .await
        .contains("1 stamp"));
    assert!(text_of(client, &format!("{first_css} .votes"))
        .await
        .contains("No votes"));

    // The second post in ten minutes costs 2: the button says so, and the page says it in words
    // and asks before it buys or spends anything.
    wait_text(client, "#post-submit", "the second post's price", |t| {
        t.contains("2 stamps")
    })
    .await;
    post_on_page(client, "second post").await;
    let question = wait_text(client, "#confirm-text", "the price of a second post", |t| {
        t.contains("2 stamps")
    })
    .await;
    assert!(
        question.contains("second") && question.contains("ten minutes"),
        "why it costs more: {question}"
    );
    assert!(question.contains("buy 2"), "what it buys: {question}");
    assert_eq!(
        post_count(&server).await,
        1,
        "nothing posted before agreeing"
    );
    click(client, "#confirm-yes").await;
    wait_text(client, "#posts", "the second post", |t| {
        t.contains("second post")
    })
    .await;
    let second = post_id_of(&server, "second post").await;
    let (_, read) = server.get(&format!("/v1/posts/{second}")).await;
    assert_eq!(read["cost"], 2, "{read}");
    wait_text(
        client,
        &format!(".post[data-post-id='{second}'] .post-cost"),
        "cost 2",
        |t| t.contains("2 stamps"),
    )
    .await;
    let (_, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(account["balance"], 97, "{account}");

    // Cancel spends nothing.
    post_on_page(client, "third post").await;
    wait_text(client, "#confirm-text", "the third post's price", |t| {
        t.contains("4 stamps") && t.contains("third")
    })
    .await;
    click(client, "#confirm-no").await;
    wait_text(client, "#message", "nothing spent", |t| {
        t.contains("Nothing was bought")
    })
    .await;
    assert_eq!(post_count(&server).await, 2);

    // The price moves while the member decides (the same account posts elsewhere): the server
    // refuses the count, and the page asks again at the new price, in words.
    click(client, "#post-submit").await;
    wait_text(client, "#confirm-text", "the third post's price", |t| {
        t.contains("4 stamps")
    })
    .await;
    let elsewhere = api_buy(&server, &key, 4).await;
    let (status, body) = api_post(&server, Some(&key), None, "from elsewhere", &elsewhere).await;
    assert_eq!((status, body["cost"].clone()), (201, json!(4)), "{body}");
    click(client, "#confirm-yes").await;
    let question = wait_text(client, "#confirm-text", "the new price", |t| {
        t.contains("price changed")
    })
    .await;
    assert!(question.contains("8 stamps"), "{question}");
    click(client, "#confirm-yes").await;
    wait_text(client, "#posts", "the post at its new price", |t| {
        t.contains("third post")
    })
    .await;
    let fourth = post_id_of(&server, "third post").await;
    let (_, read) = server.get(&format!("/v1/posts/{fourth}")).await;
    assert_eq!(read["cost"], 8, "{read}");

    // Three other members up-vote the first post: its postage goes back to its author.
    for _ in 0..3 {
        let (_, stamps) = server.stamps(10, 1).await;
        api_up_vote(&server, &first, &stamps).await;
    }
    // One member buys four votes on the second post: 1 + 3 + 5 + 7 stamps.
    let (_, stamps) = server.stamps(20, 16).await;
    let mut at = 0;
    for n in [1, 3, 5, 7] {
        api_up_vote(&server, &second, &stamps[at..at + n]).await;
        at += n;
    }
    // Someone posts without an account's key: an unverified name.
    let (_, stamps) = server.stamps(10, 1).await;
    let (status, body) = api_post(&server, None, Some("erin"), "unverified post", &stamps).await;
    assert_eq!(status, 201, "{body}");
    let erin = body["post_id"].as_str().expect("post id").to_string();
    click(client, "#refresh").await;
    let votes = wait_text(
        client,
        &format!("{first_css} .votes"),
        "three voters",
        |t| t.contains("3 votes from 3 voters"),
    )
    .await;
    assert!(votes.contains("3 up, 0 down"), "{votes}");
    wait_text(client, &format!("{first_css} .refund"), "a refund", |t| {
        t.contains("refunded")
    })
    .await;
    wait_text(
        client,
        &format!(".post[data-post-id='{second}'] .votes"),
        "a bought post",
        |t| t.contains("4 votes from 1 voter"),
    )
    .await;
    assert!(
        text_of(client, &format!(".post[data-post-id='{second}'] .refund"))
            .await
            .is_empty()
    );
    wait_text(
        client,
        &format!(".post[data-post-id='{erin}'] .unverified"),
        "no mark",
        |t| t.contains("not verified"),
    )
    .await;
    wait_text(client, "#refunds-total", "a refund of 1 cent", |t| {
        t.contains("1 cent")
    })
    .await;

    // Votes on one post: the first costs 1 (bought on the member's word), the second 3.
    let erin_css = format!(".post[data-post-id='{erin}']");
    click(client, &format!("{erin_css} .vote-up")).await;
    let question = wait_text(client, "#confirm-text", "the first vote's price", |t| {
        t.contains("This vote costs 1 stamp")
    })
    .await;
    assert!(question.contains("buy 1"), "{question}");
    click(client, "#confirm-yes").await;
    wait_text(client, &format!("{erin_css} .score"), "score 1", |t| {
        t.trim() == "1"
    })
    .await;
    wait_text(
        client,
        &format!("{erin_css} .vote-up"),
        "the next price",
        |t| t.contains("3 stamps"),
    )
    .await;
    click(client, &format!("{erin_css} .vote-up")).await;
    let question = wait_text(client, "#confirm-text", "the second vote's price", |t| {
        t.contains("3 stamps")
    })
    .await;
    assert!(question.contains("second vote on this post"), "{question}");
    click(client, "#confirm-yes").await;
    wait_text(client, &format!("{erin_css} .votes"), "two votes", |t| {
        t.contains("2 votes from 1 voter")
    })
    .await;
    let (_, read) = server.get(&format!("/v1/posts/{erin}")).await;
    assert_eq!(
        (read["score"].clone(), read["voters"].clone()),
        (json!(2), json!(1))
    );

    // The ledger panel: the signed size, the time of its last entry, the server's own audit
    // with the refunds, and the command to audit it from outside.
    let (_, checkpoint) = server.get_text("/v1/ledger/checkpoint").await;
    let size = checkpoint.lines().nth(1).expect("size").to_string();
    wait_text(client, "#ledger-size", "the ledger size", |t| {
        t.trim() == size
    })
    .await;
    let when = text_of(client, "#checkpoint-time").await;
    assert!(when.contains(&size) && when.contains("entries"), "{when}");
    wait_text(client, "#audit-result", "the audit", |t| t.contains("OK")).await;
    let totals = text_of(client, "#audit-totals").await;
    assert!(totals.contains("refunded to authors: 1 cent"), "{totals}");
    let command = text_of(client, "#audit-command").await;
    assert_eq!(
        command.trim(),
        format!("pennypost audit --server {}", server.base_url)
    );

    if let Ok(path) = std::env::var("PENNYPOST_SCREENSHOT") {
        client
            .execute("window.scrollTo(0, 0)", vec![])
            .await
            .expect("scroll");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = client.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("write screenshot");
    }

    // Stamps of two buyers in one request: the server refuses, and the page says why.
    let (_, foreign) = server.stamps(10, 1).await;
    let mut mixed = foreign.clone();
    mixed.extend(api_buy(&server, &key, 4).await);
    let held: Vec<String> = serde_json::from_value(
        client
            .execute(
                "return JSON.parse(localStorage.getItem('pennypost.stamps'))",
                vec![],
            )
            .await
            .expect("read stamps"),
    )
    .expect("stamps");
    assert!(held.is_empty(), "{held:?}");
    let buyers: serde_json::Map<String, Value> = mixed
        .iter()
        .map(|s| (s.clone(), json!(account_id)))
        .collect();
    client
        .execute(
            "localStorage.setItem('pennypost.stamps', JSON.stringify(arguments[0])); \
             localStorage.setItem('pennypost.stamp_buyers', JSON.stringify(arguments[1]));",
            vec![json!(mixed), Value::Object(buyers)],
        )
        .await
        .expect("write stamps");
    click(client, &format!("{erin_css} .vote-down")).await;
    wait_text(client, "#confirm-text", "the third vote's price", |t| {
        t.contains("5 stamps")
    })
    .await;
    click(client, "#confirm-yes").await;
    let message = wait_text(client, "#message", "a mixed-payers message", |t| {
        t.contains("same account")
    })
    .await;
    assert!(
        !message.contains("mixed_payers"),
        "words, not codes: {message}"
    );
    wait_text(client, "#stamp-count", "stamps kept", |t| {
        stamp_count(t) == Some(5)
    })
    .await;

    client.clone().close().await.expect("close session");
}

/// A server with the test payment provider, on a port chosen first: its pay page is at its
/// `--public-url`, which must be its own address.
fn start_paying(dir: &std::path::Path, more: &[&str]) -> process::Served {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_adds_money_with_the_test_provider() {
    let _one = ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let served = start_paying(dir.path(), &[]);
    let base = served.base_url.clone();
    let browser = browser().await;
    let client = &browser.client;
    client.goto(&format!("{base}/")).await.expect("open page");
    let (account_id, key) = sign_up(client, "payer").await;

    // One button per provider: here the test provider, which says it is test mode.
    let label = wait_text(client, "#pay-test", "the test provider's button", |t| {
        t.contains("test mode")
    })
    .await;
    assert!(label.contains("test provider"), "{label}");
    let bounds = text_of(client, "#add-money-bounds").await;
    assert!(
        bounds.contains("100 cents") && bounds.contains("test mode"),
        "{bounds}"
    );
    wait_text(client, "#balance", "balance 0", |t| t.contains("0 cents")).await;

    // An amount below the bounds is refused on the page, nothing created.
    fill(client, "#add-amount", "5").await;
    click(client, "#pay-test").await;
    wait_text(client, "#message", "the bounds", |t| {
        t.contains("from 100 cents")
    })
    .await;

    // Pay 500: the page opens the pay page, whose button settles it and sends the member back.
    fill(client, "#add-amount", "500").await;
    click(client, "#pay-test").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client
        .current_url()
        .await
        .expect("url")
        .path()
        .starts_with("/pay/")
    {
        assert!(Instant::now() < deadline, "never reached the pay page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pay_page = client.current_url().await.expect("url");
    let payment_id = pay_page.path().trim_start_matches("/pay/").to_string();
    let (status, before) = get_with_key(&base, &format!("/v1/payments/{payment_id}"), &key).await;
    assert_eq!(
        (status, before["status"].clone()),
        (200, json!("pending")),
        "{before}"
    );
    let button = client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::XPath(
            "//button[contains(., 'Pay')] | //input[@type='submit']",
        ))
        .await
        .expect("the pay page's button");
    button.click().await.expect("press Pay (test mode)");

    // Back on the board: the page waits for the payment, then shows the new balance.
    wait_text(client, "#payment-status", "paid", |t| t.contains("Paid")).await;
    wait_text(client, "#balance", "balance 500", |t| {
        t.contains("500 cents")
    })
    .await;
    let message = text_of(client, "#message").await;
    assert!(
        message.contains("arrived")
            && message.contains("500 cents")
            && message.contains("test mode"),
        "{message}"
    );
    let url = client.current_url().await.expect("url");
    assert!(
        url.query().is_none(),
        "?payment= is dropped once paid: {url}"
    );
    let (_, account) = get_with_key(&base, "/v1/account", &key).await;
    assert_eq!(account["balance"], 500, "{account}");

    // The money buys stamps on the page.
    fill(client, "#buy-count", "3").await;
    click(client, "#buy").await;
    wait_text(client, "#stamp-count", "3 stamps", |t| {
        stamp_count(t) == Some(3)
    })
    .await;
    wait_text(client, "#balance", "balance 497", |t| {
        t.contains("497 cents")
    })
    .await;

    // A payment of another account is not shown.
    client
        .goto(&format!("{base}/?payment={}", uuid::Uuid::new_v4()))
        .await
        .expect("open page");
    wait_text(client, "#payment-status", "not this account's", |t| {
        t.contains("not one of this account's")
    })
    .await;

    // Back from paying in a browser that does not hold the key: the page says whose key it
    // needs, and shows the payment once the key is pasted.
    client
        .execute("localStorage.removeItem('pennypost.api_key')", vec![])
        .await
        .expect("forget the key");
    client
        .goto(&format!("{base}/?payment={payment_id}"))
        .await
        .expect("open page");
    wait_text(client, "#message", "whose key", |t| {
        t.contains("paste that account's API key")
    })
    .await;
    fill(client, "#api-key-input", &key).await;
    click(client, "#use-key").await;
    wait_text(client, "#payment-status", "paid", |t| t.contains("Paid")).await;
    wait_text(client, "#balance", "balance 497", |t| {
        t.contains("497 cents")
    })
    .await;

    // A payment that ends unpaid is said plainly. The test provider's payments are paid or
    // wait an hour, so the server's answer is played here: GET /v1/payments/{id} answers
    // `expired`, then `failed`.
    for (status, words) in [
        ("expired", "expired before it was paid. Nothing was charged"),
        ("failed", "failed, so nothing was added"),
    ] {
        client
            .execute(
                "const status = arguments[0];
                 window.realFetch = window.realFetch || window.fetch;
                 window.fetch = (url, opts) => /^\\/v1\\/payments\\/[0-9a-f-]+$/.test(String(url))
                   ? Promise.resolve(new Response(JSON.stringify({
                       payment_id: '00000000-0000-4000-8000-000000000001', provider: 'test',
                       amount: 500, currency: 'cents', status, test_mode: true }),
                       { status: 200, headers: { 'Content-Type': 'application/json' } }))
                   : window.realFetch(url, opts);
                 waitForPayment('00000000-0000-4000-8000-000000000001');",
                vec![json!(status)],
            )
            .await
            .expect("play the answer");
        let said = wait_text(client, "#payment-status", status, |t| t.contains(words)).await;
        assert!(said.contains("500 cents (test mode)"), "{said}");
        assert!(
            text_of(client, "#message").await.contains(words),
            "said at the top too"
        );
    }
    client
        .execute("window.fetch = window.realFetch;", vec![])
        .await
        .expect("the real fetch again");

    // A debt: the operator takes back 700 (a correction) from a balance of 497; the 3 unspent
    // stamps are revoked (3 back), 200 is owed. The page says so plainly, and a purchase too.
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/admin/accounts/{account_id}/debit"))
        .bearer_auth(helpers::ADMIN_TOKEN)
        .json(&json!({"amount": 700, "reference": "correction-1"}))
        .send()
        .await
        .expect("debit");
    assert_eq!(response.status(), 200);
    click(client, "#refresh").await;
    wait_text(client, "#balance", "the debt", |t| t.contains("-200 cents")).await;
    let debt = wait_text(client, "#debt", "the debt", |t| t.contains("owe")).await;
    assert!(
        debt.contains("You owe 200 cents; purchases are refused until it is paid"),
        "{debt}"
    );
    fill(client, "#buy-count", "1").await;
    click(client, "#buy").await;
    let message = wait_text(client, "#message", "a refused purchase", |t| {
        t.contains("You owe")
    })
    .await;
    assert!(message.contains("add money"), "{message}");
    client.clone().close().await.expect("close session");
}

/// `GET path` with an account's key: (status, body).
async fn get_with_key(base: &str, path: &str, key: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_nothing_was_charged_when_a_provider_is_down() {
    let _one = ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Stripe's API on a loopback port nobody listens on: the server answers 503.
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
    let base = served.base_url.clone();
    let browser = browser().await;
    let client = &browser.client;
    client.goto(&format!("{base}/")).await.expect("open page");
    let (_, key) = sign_up(client, "unlucky").await;

    // Both providers have a button; the real one says nothing of test mode.
    let card = wait_text(client, "#pay-stripe", "Stripe's button", |t| {
        t.contains("card")
    })
    .await;
    assert!(!card.contains("test mode"), "{card}");
    wait_text(client, "#pay-test", "the test button", |t| {
        t.contains("test mode")
    })
    .await;
    // Amounts of an ISO currency are said as its decimals, not as minor units.
    let bounds = text_of(client, "#add-money-bounds").await;
    assert!(bounds.contains("From USD 1.00 to USD 1,000.00"), "{bounds}");
    let label = text_of(client, "#add-amount-label").await;
    assert!(
        label.contains("minor units of USD (500 is USD 5.00)"),
        "{label}"
    );
    wait_text(client, "#balance", "a balance in dollars", |t| {
        t.contains("USD 0.00")
    })
    .await;
    fill(client, "#add-amount", "500").await;
    click(client, "#pay-stripe").await;
    let message = wait_text(client, "#message", "the provider down", |t| {
        t.contains("could not be reached")
    })
    .await;
    assert!(message.contains("Nothing was charged"), "{message}");
    let url = client.current_url().await.expect("url");
    assert_eq!(url.path(), "/", "the page stays: {url}");
    let (status, list) = get_with_key(&base, "/v1/payments", &key).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["payments"], json!([]), "nothing recorded: {list}");
    client.clone().close().await.expect("close session");
}
