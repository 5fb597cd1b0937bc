//! gate.js and the 402 page in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, as `tests/browser.rs`; without them this fails and says so).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::harness::{self, Gate, Mint, Upstream};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Browser {
    pub client: fantoccini::Client,
    _profile: tempfile::TempDir,
    _driver: Driver,
}

pub async fn browser() -> Browser {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: apt-get install chromium chromium-driver"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = tempfile::tempdir().expect("profile");
    let Value::Object(capabilities) = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", format!("--user-data-dir={}", profile.path().display())]
        }
    }) else {
        unreachable!()
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

/// Waits until an element matching `css` has a text satisfying `pred`.
pub async fn wait_text(
    client: &fantoccini::Client,
    css: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if pred(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{css}: text is {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_js_labels_and_stamps_priced_requests_and_a_bare_form_meets_the_402_page() {
    let upstream = Upstream::start().await;
    // Stamps that decode, from a mint the gate cannot reach: every hold is 503, so nothing is
    // spent and the wallet must keep what it sent.
    let stamps = Mint::start().stamps(1).await;
    let gate = Gate::start(&harness::config(
        &upstream.url(),
        &harness::closed_port_url(),
        "",
    ));
    let b = browser().await;
    let c = &b.client;

    // A priced form without gate.js, posted by the browser: the 402 page.
    c.goto(&format!("{}/plain", gate.url)).await.expect("goto");
    c.find(Locator::Css("#send"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    let heading = wait_text(c, "h1", |t| t.contains("costs")).await;
    assert_eq!(heading, "This costs 1 stamp");
    let link = c
        .find(Locator::Css("a"))
        .await
        .expect("link")
        .attr("href")
        .await
        .expect("href");
    assert_eq!(link.as_deref(), Some("https://stamps.example.org/"));

    // With gate.js: the priced form says its cost by its button; the free one does not.
    c.goto(&format!("{}/page", gate.url)).await.expect("goto");
    wait_text(c, "#comment .pennypost-cost", |t| {
        t.trim() == "costs 1 stamp"
    })
    .await;
    assert!(c
        .find(Locator::Css("#search .pennypost-cost"))
        .await
        .is_err());
    let prices = c
        .execute(
            "return [PennypostGate.priceOf('POST', '/%63omments/').stamps, \
                     PennypostGate.priceOf('GET', '/comments'), \
                     PennypostGate.priceOf('POST', 'https://elsewhere.example/comments'), \
                     PennypostGate.priceOf('post', '/comments.json').stamps];",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(prices, json!([1, null, null, 1]));

    // fetch to a priced route carries the wallet's stamp; the gate could not hold it (503), so
    // it stays in the wallet. A free route gets no stamps.
    c.execute(
        "localStorage.setItem('pennypost.stamps', JSON.stringify(arguments[0]));",
        vec![json!(stamps)],
    )
    .await
    .expect("wallet");
    let statuses = c
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             (async () => {\
               const paid = await fetch('/comments', {method: 'POST', body: 'text=hi'});\
               const code = (await paid.json()).code;\
               const free = await fetch('/free', {method: 'POST', body: 'x'});\
               const xhr = new XMLHttpRequest();\
               xhr.open('POST', '/comments');\
               xhr.onloadend = () => done([paid.status, code, free.status, xhr.status,\
                 JSON.parse(localStorage.getItem('pennypost.stamps'))]);\
               xhr.send('text=again');\
             })();",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        statuses,
        json!([503, "service_unavailable", 200, 503, stamps])
    );
    let seen: Vec<_> = upstream
        .seen()
        .into_iter()
        .filter(|s| s.path_and_query != "/favicon.ico")
        .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path_and_query, "/free");
    assert!(!seen[0].headers.contains_key("pennypost-stamps"));
    let logs = gate.logs();
    assert_eq!(
        logs.matches("no hold").count(),
        2,
        "two priced calls reached the hold: {logs}"
    );

    // With no stamps, and the member declining to buy (no API key given): fetch goes without
    // stamps, the gate answers 402 (no hold needed), and gate.js puts a notice on the page.
    assert!(c.find(Locator::Css(".pennypost-notice")).await.is_err());
    let refused = c
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             localStorage.setItem('pennypost.stamps', '[]');\
             window.prompt = () => null;\
             fetch('/comments', {method: 'POST', body: 'text=bare'})\
               .then(async (r) => done([r.status, (await r.json()).code]));",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(refused, json!([402, "payment_required"]));
    let said = wait_text(c, ".pennypost-notice", |t| !t.is_empty()).await;
    assert!(said.starts_with("This action costs 1 stamp"), "{said}");
    c.clone().close().await.expect("close");
}

/// gate.js takes the stamps, adds the field and submits the form again. With the stamps in the
/// wallet, that second submission used to come while the browser was still dispatching the
/// first submit event, which makes it ignore `requestSubmit`: the form never left the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_through_gate_js_pays_one_stamp() {
    let upstream = Upstream::start().await;
    let mint = Mint::start();
    let stamps = mint.stamps(2).await;
    let gate = Gate::start(&harness::config(&upstream.url(), &mint.url, ""));
    let b = browser().await;
    let c = &b.client;
    c.goto(&format!("{}/page", gate.url)).await.expect("goto");
    wait_text(c, "#comment .pennypost-cost", |t| !t.is_empty()).await;
    c.execute(
        "localStorage.setItem('pennypost.stamps', JSON.stringify(arguments[0]));",
        vec![json!(stamps)],
    )
    .await
    .expect("wallet");
    // Once with requestSubmit, once as a browser without it would (form.submit(), which
    // fires no submit event and sends no submitter: gate.js copies the button's name and value).
    for (round, script) in ["", "delete HTMLFormElement.prototype.requestSubmit;"]
        .into_iter()
        .enumerate()
    {
        if round > 0 {
            c.goto(&format!("{}/page", gate.url)).await.expect("goto");
            wait_text(c, "#comment .pennypost-cost", |t| !t.is_empty()).await;
            c.execute(script, vec![]).await.expect("script");
        }
        c.find(Locator::Css("#send"))
            .await
            .expect("button")
            .click()
            .await
            .expect("click");
        wait_text(c, "body", |t| t.contains("upstream ok")).await;
        assert_eq!(
            mint.stamp_state(&stamps[round]).await,
            "spent",
            "round {round}"
        );
        let seen = upstream.seen();
        let posted: Vec<_> = seen
            .iter()
            .filter(|s| s.path_and_query == "/comments")
            .collect();
        assert_eq!(posted.len(), round + 1, "round {round}: {seen:?}");
        assert_eq!(posted[round].headers["pennypost-paid"], "1");
        // The member's button (its name and value) is part of the form as sent; the stamps'
        // field is not.
        assert_eq!(
            &posted[round].body[..],
            b"text=hello&do=send",
            "round {round}"
        );
    }
    assert_eq!(mint.stamp_state(&stamps[1]).await, "spent");
    c.clone().close().await.expect("close");
}
