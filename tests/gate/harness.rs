//! The gate's test harness: the real `pennypost gate` binary between a test client and a small
//! upstream of the test's own (axum on 127.0.0.1:0, recording what it received), with the real
//! `pennypost serve` as the mint, or a closed port where a test must show the mint was never
//! asked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::{serve, wire};

pub const ADMIN_TOKEN: &str = "gate-test-admin-token";

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The test's own site.
pub struct Upstream {
    pub address: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Notified when `/upload` has its body's first chunk, and when `/slow` is reached.
    pub arrived: Arc<Notify>,
    /// Lets `/events` send its second event and `/slow` answer.
    pub go_on: Arc<Notify>,
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    arrived: Arc<Notify>,
    go_on: Arc<Notify>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let shared = Shared {
            seen: Arc::default(),
            arrived: Arc::new(Notify::new()),
            go_on: Arc::new(Notify::new()),
        };
        let router = Router::new()
            .route("/events", get(events))
            .route("/ws", get(websocket))
            .route("/upload", post(upload))
            .route("/page", get(page))
            .route("/plain", get(plain_page))
            .fallback(record)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        Upstream {
            address,
            seen: shared.seen,
            arrived: shared.arrived,
            go_on: shared.go_on,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// Records the request and answers by its path: `/fail` 500, `/slow` after `go_on`, `/see-other`
/// 303, anything else 200 `upstream ok`.
async fn record(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    shared.seen.lock().expect("lock").push(Seen {
        method: parts.method.clone(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or("/".into(), |p| p.to_string()),
        headers: parts.headers.clone(),
        body,
    });
    match parts.uri.path() {
        "/fail" => (StatusCode::INTERNAL_SERVER_ERROR, "upstream failed").into_response(),
        "/slow" => {
            shared.arrived.notify_one();
            shared.go_on.notified().await;
            (StatusCode::OK, "upstream slow ok").into_response()
        }
        "/see-other" => (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response(),
        _ => (StatusCode::OK, "upstream ok").into_response(),
    }
}

/// A page of the site with a priced form and gate.js.
pub const PAGE: &str = "<!doctype html><html><head><title>site</title></head><body>\
<form id=\"comment\" method=\"post\" action=\"/comments\">\
<textarea name=\"text\">hello</textarea><button id=\"send\" name=\"do\" value=\"send\">Send</button></form>\
<form id=\"search\" method=\"get\" action=\"/search\"><button id=\"find\">Find</button></form>\
<script src=\"/.pennypost/gate.js\"></script></body></html>";

async fn page() -> Response {
    axum::response::Html(PAGE).into_response()
}

/// The same priced form without gate.js: a browser posting it meets the 402 page.
async fn plain_page() -> Response {
    axum::response::Html(PAGE.replace("<script src=\"/.pennypost/gate.js\"></script>", ""))
        .into_response()
}

/// Reads the body chunk by chunk; notifies `arrived` at the first, answers with the length.
async fn upload(State(shared): State<Shared>, request: Request) -> Response {
    let mut body = request.into_body();
    let mut total = 0usize;
    let mut first = true;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            total += data.len();
            if first && !data.is_empty() {
                first = false;
                shared.arrived.notify_one();
            }
        }
    }
    total.to_string().into_response()
}

/// Server-sent events: `one`, then `two` once the test says `go_on`.
async fn events(State(shared): State<Shared>) -> Response {
    let (send, receive) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let _ = send.send(Bytes::from_static(b"data: one\n\n")).await;
        shared.go_on.notified().await;
        let _ = send.send(Bytes::from_static(b"data: two\n\n")).await;
    });
    let stream = futures_util::stream::unfold(receive, |mut receive| async move {
        receive
            .recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), receive))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A WebSocket that echoes text messages.
async fn websocket(mut request: Request) -> Response {
    let key = request
        .headers()
        .get("sec-websocket-key")
        .cloned()
        .unwrap_or_else(|| header::HeaderValue::from_static(""));
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = socket.next().await {
            if message.is_text() && socket.send(message).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header(
            "sec-websocket-accept",
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
        )
        .body(Body::empty())
        .expect("response")
}

/// A real `pennypost serve` as the mint.
pub struct Mint {
    pub url: String,
    /// `GET /metrics` of the mint, when started by [`Mint::start_metered`].
    pub metrics: Option<String>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Mint {
    pub fn start() -> Mint {
        Mint::start_with(false)
    }

    /// A mint serving its Prometheus metrics too (`--metrics-listen 127.0.0.1:0`).
    pub fn start_metered() -> Mint {
        Mint::start_with(true)
    }

    fn start_with(metrics: bool) -> Mint {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("mint.log");
        let mut command = serve::serve_command(["--listen", "127.0.0.1:0", "--data-dir"]);
        command
            .arg(dir.path().join("data"))
            .arg("--keys-dir")
            .arg(dir.path().join("keys"))
            .env("PENNYPOST_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PENNYPOST_LOG", "warn")
            .stderr(serve::log_file(&log));
        if metrics {
            command.args(["--metrics-listen", "127.0.0.1:0"]);
        }
        let logs = || std::fs::read_to_string(&log).unwrap_or_default();
        let started = serve::start(&mut command, metrics, logs).unwrap_or_else(|e| panic!("{e}"));
        Mint {
            url: started.base_url.clone(),
            metrics: started.metrics(),
            child: started.child,
            _dir: dir,
        }
    }

    /// `count` stamps bought by a new account.
    pub async fn stamps(&self, count: u64) -> Vec<String> {
        let http = reqwest::Client::new();
        let created: Value = http
            .post(format!("{}/v1/accounts", self.url))
            .json(&json!({}))
            .send()
            .await
            .expect("account")
            .json()
            .await
            .expect("account answer");
        let id = created["account_id"].as_str().expect("id");
        let key = created["api_key"].as_str().expect("key");
        let credited = http
            .post(format!("{}/v1/admin/accounts/{id}/credit", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"amount": 1000, "reference": format!("ref-{}", uuid::Uuid::new_v4())}))
            .send()
            .await
            .expect("credit");
        assert_eq!(credited.status(), 200);
        let bought: Value = http
            .post(format!("{}/v1/stamps/purchase", self.url))
            .bearer_auth(key)
            .json(&json!({"count": count}))
            .send()
            .await
            .expect("purchase")
            .json()
            .await
            .expect("purchase answer");
        bought["stamps"]
            .as_array()
            .expect("stamps")
            .iter()
            .map(|s| s.as_str().expect("stamp").to_string())
            .collect()
    }

    /// The mint's `state` of a stamp (`unspent`, `spent`, …).
    pub async fn stamp_state(&self, stamp: &str) -> String {
        let id = pennypost::stamp::decode(stamp)
            .expect("decodes")
            .payload
            .stamp_id;
        let answer: Value = reqwest::get(format!("{}/v1/stamps/{id}", self.url))
            .await
            .expect("stamp")
            .json()
            .await
            .expect("stamp answer");
        answer["state"].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for Mint {
    fn drop(&mut self) {
        serve::kill(&mut self.child);
    }
}

/// The samples of a Prometheus exposition at `url` (a mint's or gate's `/metrics`), and each
/// metric's `# TYPE`.
pub async fn scrape(url: &str) -> (Vec<wire::Sample>, BTreeMap<String, String>) {
    let text = reqwest::get(url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let mut types = BTreeMap::new();
    let samples = wire::samples(&text, &mut types);
    (samples, types)
}

/// An address nothing listens on: a port bound and let go.
pub fn closed_port_url() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = socket.local_addr().expect("address");
    drop(socket);
    format!("http://{address}")
}

/// The config the tests use: `POST /comments` costs 1, `DELETE /comments/*` 1, `POST /pair`
/// 2, `POST /fail` and `POST /slow` 1 (2xx only for `/fail`), `POST /see-other` 1.
pub fn config(upstream: &str, mint: &str, more: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\nmint = \"{mint}\"\n\
         wallet_url = \"https://stamps.example.org/\"\nmint_public_url = \"https://mint.example.org\"\n\
         {more}\n\
         [[price]]\nmethod = \"POST\"\npath = \"/comments\"\nstamps = 1\n\
         [[price]]\nmethod = \"DELETE\"\npath = \"/comments/*\"\nstamps = 1\n\
         [[price]]\nmethod = \"POST\"\npath = \"/pair\"\nstamps = 2\n\
         [[price]]\nmethod = \"POST\"\npath = \"/fail\"\nstamps = 1\ncapture = \"2xx\"\n\
         [[price]]\nmethod = \"POST\"\npath = \"/slow\"\nstamps = 1\n\
         [[price]]\nmethod = \"POST\"\npath = \"/see-other\"\nstamps = 1\n"
    )
}

/// A running `pennypost gate`.
pub struct Gate {
    pub url: String,
    /// `GET /metrics` of the gate, when its config has `metrics_listen`.
    pub metrics: Option<String>,
    pub address: SocketAddr,
    child: Option<Child>,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Gate {
    /// Starts the gate on `config` (its text).
    pub fn start(config: &str) -> Gate {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gate.toml");
        std::fs::write(&path, config).expect("write config");
        let log = dir.path().join("gate.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_pennypost"));
        command
            .arg("gate")
            .arg("--config")
            .arg(&path)
            .env("PENNYPOST_LOG", "info")
            .stderr(std::fs::File::create(&log).expect("log"));
        let logs = || std::fs::read_to_string(&log).unwrap_or_default();
        let started = serve::start_announced(
            &mut command,
            "pennypost gate listening on ",
            "pennypost gate metrics on ",
            false,
            logs,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // The gate prints its metrics line before its listening line.
        let (url, metrics, child) = (started.base_url.clone(), started.metrics(), started.child);
        let address = url
            .trim_start_matches("http://")
            .parse()
            .expect("an address");
        Gate {
            url,
            metrics,
            address,
            child: Some(child),
            _dir: dir,
            log,
        }
    }

    /// SIGTERMs the gate (it stops taking connections and lets requests in flight finish).
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success(), "kill -TERM failed");
        }
    }

    /// Waits at most `limit` for the gate to exit; its exit status, `None` while it runs on.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the gate.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a request with a raw path (never normalised by a client library).
    pub async fn send(
        &self,
        method: &str,
        raw_path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{raw_path}", self.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).expect("request");
        let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
            .await
            .expect("the gate answers in time")
            .expect("the gate answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An answer of the gate.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a problem+json answer with `status` and `code`; returns its body.
    pub fn problem(&self, status: u16, code: &str) -> Value {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{body}"
        );
        body
    }
}
