//! What the fake payment providers share: a small axum server on 127.0.0.1:0 running on a
//! thread of its own (so sync and async tests alike can start one), the requests it got, and
//! how it misbehaves when told to.
//!
//! Included with `#[path]` beside `fake_stripe.rs` and `fake_btcpay.rs`, which use it as
//! `super::fake_provider`:
//!
//! ```ignore
//! #[path = "../support/fake_provider.rs"] mod fake_provider;
//! #[path = "../support/fake_stripe.rs"] mod fake_stripe;
//! #[path = "../support/fake_btcpay.rs"] mod fake_btcpay;
//! ```

// Every test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// How a fake answers, whatever it is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// As the provider's documentation says.
    Normal,
    /// 503 with the provider's error body: the provider is down.
    Unavailable,
    /// Never answers (until the fake is dropped): the client's timeout must end the call.
    Hang,
    /// 200 with an HTML page: not the JSON the API promises.
    Garbage,
    /// 200 with JSON of the wrong shape (`{"id": 5}`).
    WrongShape,
    /// 200 with a JSON answer of 2 MiB, past any answer a client should read.
    Huge,
}

/// One request a fake got, as it got it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as form fields (`application/x-www-form-urlencoded`), in order.
    pub fn form(&self) -> Vec<(String, String)> {
        pairs(&String::from_utf8_lossy(&self.body))
    }

    /// One form field of the body.
    pub fn form_value(&self, key: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Decodes `a=1&b=x%20y` as a form or query does.
pub fn pairs(encoded: &str) -> Vec<(String, String)> {
    // reqwest's Url parses query strings with the form-urlencoded rules.
    reqwest::Url::parse(&format!("http://fake.invalid/?{encoded}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// What every fake keeps beside its own objects.
pub struct Common {
    pub requests: Vec<Recorded>,
    pub mode: Mode,
    pub next_id: u64,
}

impl Common {
    pub fn new() -> Common {
        Common {
            requests: Vec::new(),
            mode: Mode::Normal,
            next_id: 1,
        }
    }

    /// A fresh suffix for an id: `prefix` then a counter, padded like real ids.
    pub fn id(&mut self, prefix: &str) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("{prefix}{n:0>16}")
    }
}

/// A fake's state, shared by its handler and its test.
pub trait FakeState: Send + 'static {
    fn common(&mut self) -> &mut Common;
    /// The answer to a request, in [`Mode::Normal`].
    fn answer(&mut self, request: &Recorded) -> Response;
    /// The provider's error body for an outage.
    fn unavailable_body(&self) -> serde_json::Value;
}

/// A fake server; stopped (and every hanging answer dropped) when dropped.
pub struct Running<S: FakeState> {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<S>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S: FakeState> Running<S> {
    /// Serves `state` on 127.0.0.1 on a port of its own.
    pub fn start(state: S) -> Running<S> {
        let state = Arc::new(Mutex::new(state));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a fake provider");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("its address");
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the fake");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        handle(shared.clone(), method, uri, headers, body)
                    },
                );
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here drops every answer still hanging.
        });
        Running {
            addr,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every request got so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().common().requests.clone()
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().common().mode = mode;
    }
}

impl<S: FakeState> Drop for Running<S> {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle<S: FakeState>(
    state: Arc<Mutex<S>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let mode = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.common().requests.push(request.clone());
        state.common().mode
    };
    match mode {
        Mode::Normal => state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answer(&request),
        Mode::Unavailable => {
            let body = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unavailable_body();
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Mode::Garbage => (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<html><body>502 Bad Gateway (nginx)</body></html>",
        )
            .into_response(),
        Mode::Huge => {
            let padding = "x".repeat(2 << 20);
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"padding": padding})),
            )
                .into_response()
        }
        Mode::WrongShape => {
            (StatusCode::OK, axum::Json(serde_json::json!({"id": 5}))).into_response()
        }
    }
}

/// A JSON answer.
pub fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// HMAC-SHA256 of `parts` under `key`, in lower-case hex: how both providers sign webhooks.
pub fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
