//! The web page in a real headless Chromium, driven over WebDriver (chromedriver + fantoccini):
//! create an account, get credit from the operator, buy stamps on the page, post, upvote, see
//! the score change, and see a clear message when the stamps run out.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them). Without them
//! this test fails and says how to get them: it never skips silently.
//! `PENNYPOST_SCREENSHOT=docs/board.png` saves a screenshot of the board at the end.

#[path = "api/helpers.rs"]
mod helpers;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use helpers::TestServer;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_buys_posts_votes_and_runs_out() {
    let server = TestServer::start().await;
    let (_driver, port) = start_chromedriver();
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
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("WebDriver session");

    client.goto(&server.url("/")).await.expect("open page");

    // Sign up on the page.
    fill(&client, "#account-name", "alice").await;
    click(&client, "#create-account").await;
    let account_id = wait_text(&client, "#account-id", "an account id", |t| {
        t.trim().len() == 36
    })
    .await;
    let account_id = account_id.trim().to_string();
    wait_text(&client, "#api-key-shown", "the API key", |t| {
        t.contains("ppk_")
    })
    .await;

    // The operator credits 3 cents (3 stamps at the default price).
    let (status, body) = server.credit(&account_id, 3, "browser-payment").await;
    assert_eq!(status, 200, "{body}");

    // Buy 3 stamps on the page.
    fill(&client, "#buy-count", "3").await;
    click(&client, "#buy").await;
    wait_text(&client, "#stamp-count", "3 stamps", |t| {
        stamp_count(t) == Some(3)
    })
    .await;
    wait_text(&client, "#balance", "balance 0", |t| t.contains('0')).await;

    // Post.
    fill(&client, "#post-author", "alice").await;
    fill(&client, "#post-body", "Hello from a real browser").await;
    click(&client, "#post-submit").await;
    wait_text(&client, "#posts", "the new post", |t| {
        t.contains("Hello from a real browser")
    })
    .await;
    wait_text(&client, "#stamp-count", "2 stamps", |t| {
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
    assert!(text_of(&client, &score_css).await.contains('0'));
    click(
        &client,
        &format!(".post[data-post-id='{post_id}'] .vote-up"),
    )
    .await;
    wait_text(&client, &score_css, "score 1", |t| {
        t.trim().trim_start_matches('+') == "1" || t.contains("1")
    })
    .await;
    wait_text(&client, "#stamp-count", "1 stamp", |t| {
        stamp_count(t) == Some(1)
    })
    .await;
    let (_, api_post) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(api_post["score"], 1, "{api_post}");

    // Spend the last stamp, then try once more: a clear message, no request spent.
    click(
        &client,
        &format!(".post[data-post-id='{post_id}'] .vote-up"),
    )
    .await;
    wait_text(&client, "#stamp-count", "0 stamps", |t| {
        stamp_count(t) == Some(0)
    })
    .await;
    wait_text(&client, &score_css, "score 2", |t| t.contains('2')).await;
    click(
        &client,
        &format!(".post[data-post-id='{post_id}'] .vote-up"),
    )
    .await;
    let message = wait_text(&client, "#message", "an out-of-stamps message", |t| {
        t.to_lowercase().contains("out of stamps")
    })
    .await;
    assert!(
        message.to_lowercase().contains("buy"),
        "says what to do: {message}"
    );
    let (_, api_post) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_eq!(api_post["score"], 2, "no vote without a stamp: {api_post}");

    // A server error is shown in words: buying with no money left.
    fill(&client, "#buy-count", "1").await;
    click(&client, "#buy").await;
    let message = wait_text(&client, "#message", "an insufficient-funds message", |t| {
        t.to_lowercase().contains("balance")
    })
    .await;
    assert!(
        !message.contains("insufficient_funds"),
        "words, not codes: {message}"
    );

    if let Ok(path) = std::env::var("PENNYPOST_SCREENSHOT") {
        client
            .execute("window.scrollTo(0, 0)", vec![])
            .await
            .expect("scroll");
        let png = client.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("write screenshot");
    }
    client.close().await.expect("close session");
}
