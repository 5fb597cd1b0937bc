//! A real, unmodified third-party application behind the gate: the Isso comment server (PyPI
//! `isso`, pinned in `isso/requirements.txt`), in headless Chromium. docs/gate.md's recipe
//! quotes this test's files (`isso/`), and `the_recipe_in_docs_gate_md_is_the_tests` checks it.
//!
//! The member's browser talks to the gate; the gate's upstream is the blog's web server (here
//! a few lines of axum: the page `isso/hello.html`, and Isso under `/isso/` with
//! `X-Script-Name`, as Isso's own nginx recipe does); Isso runs as `isso -c isso.cfg run`.
//! Isso's embed posts a comment as JSON from an XMLHttpRequest, so gate.js pays it with the
//! `Pennypost-Stamps` header.
//!
//! Isso is installed once into a venv under target/tmp (`python3 -m venv`, then pip from
//! PyPI), and kept while `isso/requirements.txt` is unchanged. It needs `python3` with `venv`
//! (Debian: python3-venv; scripts/test installs it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use fantoccini::{Client, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::browser::{browser, wait_text};
use crate::harness::{Gate, Mint};

const REQUIREMENTS: &str = include_str!("isso/requirements.txt");
const ISSO_CFG: &str = include_str!("isso/isso.cfg");
const GATE_TOML: &str = include_str!("isso/gate.toml");
const HELLO_HTML: &str = include_str!("isso/hello.html");

/// The page's path on the blog, which is also Isso's thread id (`uri`).
const PAGE: &str = "/blog/hello";

/// The venv with Isso, installed if missing or made from other requirements.
fn isso_venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("isso-venv");
    let marker = venv.join("pennypost-requirements.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(REQUIREMENTS) {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (Debian: apt-get install python3-venv)",
    );
    let requirements = venv.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).expect("write requirements");
    run(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-input", "--no-deps", "-r"])
            .arg(&requirements),
        "pip install isso",
    );
    // Written last: a venv without it is installed again.
    std::fs::write(&marker, REQUIREMENTS).expect("write marker");
    venv
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replaces each `from` of `text`, which must be there exactly once, by its `to`.
fn fill(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        assert_eq!(out.matches(from).count(), 1, "{from:?} once in {text}");
        out = out.replace(from, to);
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `isso -c isso.cfg run`, killed when dropped.
struct Isso {
    child: Option<Child>,
    command: PathBuf,
    config: PathBuf,
    log: PathBuf,
    address: SocketAddr,
}

impl Isso {
    fn start(venv: &Path, dir: &Path, gate_url: &str, address: SocketAddr) -> Isso {
        let config = dir.join("isso.cfg");
        let text = fill(
            ISSO_CFG,
            &[
                (
                    "/var/lib/isso/comments.db",
                    &dir.join("comments.db").display().to_string(),
                ),
                ("https://blog.example.org/", &format!("{gate_url}/")),
                ("http://127.0.0.1:8090/", &format!("http://{address}/")),
            ],
        );
        std::fs::write(&config, text).expect("write isso.cfg");
        let mut isso = Isso {
            child: None,
            command: venv.join("bin/isso"),
            config,
            log: dir.join("isso.log"),
            address,
        };
        isso.restart();
        isso
    }

    /// Starts Isso (again, on the same address and database) and waits until it listens.
    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = Command::new(&self.command)
            .arg("-c")
            .arg(&self.config)
            .arg("run")
            .env_remove("ISSO_SETTINGS")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start isso");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(self.address).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "isso did not start ({exited:?}): {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The comments' texts (HTML) on `PAGE`, straight from Isso.
    async fn comments(&self) -> Vec<String> {
        let answer = reqwest::get(format!("http://{}/?uri=%2Fblog%2Fhello", self.address))
            .await
            .expect("isso answers");
        if answer.status() == 404 {
            return Vec::new(); // no thread yet
        }
        let body: Value = answer.json().await.expect("isso's JSON");
        body["replies"]
            .as_array()
            .expect("replies")
            .iter()
            .map(|c| c["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Isso {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone)]
struct Blog {
    isso: SocketAddr,
    client: hyper_util::client::legacy::Client<HttpConnector, Body>,
}

/// The blog's web server: the page, and Isso under `/isso/` (the path kept whole, with
/// `X-Script-Name: /isso`, as Isso's nginx recipe has it). Its address.
async fn start_blog(isso: SocketAddr) -> SocketAddr {
    let blog = Blog {
        isso,
        // No idle connections: after Isso restarts, a POST must not meet a dead one.
        client: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http(),
    };
    let router = Router::new()
        .route(PAGE, get(|| async { Html(HELLO_HTML) }))
        .fallback(to_isso)
        .with_state(blog);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind blog");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

async fn to_isso(State(blog): State<Blog>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if path != "/isso" && !path.starts_with("/isso/") && !path.starts_with("/isso?") {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let Ok(uri) = format!("http://{}{path}", blog.isso).parse::<Uri>() else {
        return (StatusCode::BAD_REQUEST, "bad path").into_response();
    };
    parts.uri = uri;
    parts
        .headers
        .insert("x-script-name", HeaderValue::from_static("/isso"));
    match blog.client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => answer.map(Body::new).into_response(),
        Err(_) => (StatusCode::BAD_GATEWAY, "isso cannot be reached").into_response(),
    }
}

/// The stamps in the page's wallet.
async fn wallet(c: &Client) -> Value {
    c.execute(
        "return JSON.parse(localStorage.getItem('pennypost.stamps') || '[]');",
        vec![],
    )
    .await
    .expect("wallet")
}

/// Waits until the wallet holds `want`.
async fn wait_wallet(c: &Client, want: Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let held = wallet(c).await;
        if held == want {
            return;
        }
        assert!(Instant::now() < deadline, "wallet {held} (want {want})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page's posts to `/isso/new` have answered with `want` (the browser's
/// resource timing: an entry is there once its answer has been read whole).
async fn wait_posts(c: &Client, want: Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let statuses = c
            .execute(
                "return performance.getEntriesByType('resource')\
                   .filter((e) => new URL(e.name).pathname === '/isso/new')\
                   .map((e) => e.responseStatus);",
                vec![],
            )
            .await
            .expect("script");
        if statuses == want {
            return;
        }
        assert!(Instant::now() < deadline, "posts {statuses} (want {want})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the prompt the page shows (gate.js asks once it knows the routes).
async fn alert_text(c: &Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match c.get_alert_text().await {
            Ok(text) => return text,
            Err(e) => assert!(Instant::now() < deadline, "no prompt: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens the page and waits for Isso's comment box.
async fn open(c: &Client, gate: &Gate) {
    c.goto(&format!("{}{PAGE}", gate.url)).await.expect("goto");
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(
            "#isso-thread .isso-postbox input[type=submit]",
        ))
        .await
        .expect("Isso's comment box");
}

/// Types `text` into Isso's comment box and presses its Submit button.
async fn comment(c: &Client, text: &str) {
    let area = c
        .find(Locator::Css("#isso-thread .isso-postbox textarea"))
        .await
        .expect("textarea");
    area.clear().await.expect("clear");
    area.send_keys(text).await.expect("type");
    c.find(Locator::Css(
        "#isso-thread .isso-postbox input[type=submit]",
    ))
    .await
    .expect("submit")
    .click()
    .await
    .expect("click");
}

#[test]
fn the_recipe_in_docs_gate_md_is_the_tests() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/gate.md"))
        .expect("docs/gate.md");
    for (name, text) in [
        ("requirements.txt", REQUIREMENTS),
        ("isso.cfg", ISSO_CFG),
        ("gate.toml", GATE_TOML),
        ("hello.html", HELLO_HTML),
    ] {
        assert!(
            doc.contains(text),
            "docs/gate.md must quote tests/gate/isso/{name} whole, as it is"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isso_comment_through_the_gate_costs_one_stamp_and_a_failed_one_none() {
    let venv = tokio::task::spawn_blocking(isso_venv)
        .await
        .expect("install isso");
    let dir = tempfile::tempdir().expect("tempdir");
    let mint = Mint::start();
    let stamps = mint.stamps(2).await;
    // Isso's port is chosen first: the blog's server passes to it, and Isso's config names
    // the gate, which names the blog's server.
    let isso_address: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let blog = start_blog(isso_address).await;
    let gate = Gate::start(&fill(
        GATE_TOML,
        &[
            ("\"127.0.0.1:8081\"", "\"127.0.0.1:0\""),
            ("http://127.0.0.1:8000", &format!("http://{blog}")),
            ("http://127.0.0.1:8080", &mint.url),
        ],
    ));
    let mut isso = Isso::start(&venv, dir.path(), &gate.url, isso_address);
    let b = browser().await;
    let c = &b.client;

    // A member with no stamps and no API key: gate.js asks for a key to buy one; the member
    // says no, the comment goes without stamps, the gate answers 402, and the page says what
    // a comment costs and where stamps are sold. Isso never sees it.
    open(c, &gate).await;
    comment(c, "Without stamps").await;
    let asked = alert_text(c).await;
    assert!(asked.contains("costs 1 stamp"), "{asked}");
    c.dismiss_alert().await.expect("say no");
    wait_posts(c, json!([402])).await;
    let said = wait_text(c, ".pennypost-notice", |t| t.contains("costs 1 stamp")).await;
    assert!(said.contains("was not done"), "{said}");
    let link = c
        .find(Locator::Css(".pennypost-notice a"))
        .await
        .expect("link")
        .attr("href")
        .await
        .expect("href");
    assert_eq!(link.as_deref(), Some("https://stamps.example.org/"));
    assert_eq!(isso.comments().await, Vec::<String>::new());

    // With two stamps: the comment appears, and it cost exactly one of them.
    c.execute(
        "localStorage.setItem('pennypost.stamps', JSON.stringify(arguments[0]));",
        vec![json!(stamps)],
    )
    .await
    .expect("wallet");
    comment(c, "A paid comment").await;
    wait_text(c, "#isso-root .isso-comment .isso-text", |t| {
        t.contains("A paid comment")
    })
    .await;
    wait_posts(c, json!([402, 201])).await;
    wait_wallet(c, json!([stamps[1]])).await;
    assert_eq!(mint.stamp_state(&stamps[0]).await, "spent");
    assert_eq!(mint.stamp_state(&stamps[1]).await, "unspent");
    assert_eq!(isso.comments().await, ["<p>A paid comment</p>"]);
    assert!(
        c.find(Locator::Css(".pennypost-notice")).await.is_err(),
        "the notice of the unpaid comment is gone once one is paid"
    );

    // Isso stopped: the blog's server answers 502, the gate releases the hold, and the stamp
    // stays the member's.
    isso.stop();
    comment(c, "While Isso is down").await;
    wait_posts(c, json!([402, 201, 502])).await;
    assert_eq!(wallet(c).await, json!([stamps[1]]));
    assert_eq!(mint.stamp_state(&stamps[1]).await, "unspent");

    // Isso back: the same stamp pays for the next comment (Isso's box stays disabled after a
    // 5xx, so the member reloads the page).
    isso.restart();
    open(c, &gate).await;
    comment(c, "After the restart").await;
    wait_text(c, "#isso-root", |t| t.contains("After the restart")).await;
    wait_wallet(c, json!([])).await;
    assert_eq!(mint.stamp_state(&stamps[1]).await, "spent");
    assert_eq!(
        isso.comments().await,
        ["<p>A paid comment</p>", "<p>After the restart</p>"]
    );
    c.clone().close().await.expect("close");
}
