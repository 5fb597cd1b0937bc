//! Test harness: runs the real `pennypost` binary on port 0 over a fresh data directory and
//! talks to it over HTTP.
//!
//! The store of every [`TestServer`] is picked by `PENNYPOST_TEST_BACKEND` ([`backend`]): sled
//! in the data directory (unset or `sled`), or `postgres`: a fresh PostgreSQL database of the
//! server's own (`pg::TestDatabase`, on the tests' PostgreSQL server), given as `--database`,
//! kept across restarts and dropped after the server is killed. Tests about what only sled has
//! (its files in the data directory) say so with [`sled_only`].

#![allow(dead_code)] // Each test module uses a different part of the harness.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

use pennypost::api::{
    CreateAccountRequest, CreateAccountResponse, CreditRequest, Problem, PurchaseRequest,
    PurchaseResponse, RedeemRequest, VerifyRequest, VerifyResponse,
};
use serde::Serialize;
use serde_json::Value;

use crate::pg;
use crate::serve::{self, serve_command};
// Re-exported for the API tests; the browser test, which includes this file too, reads none.
#[allow(unused_imports)]
pub use crate::wire::stamp_id;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The environment variable that picks the store of the servers under test.
pub const BACKEND_VAR: &str = "PENNYPOST_TEST_BACKEND";

/// The store of the servers under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// sled in the server's data directory (the default).
    Sled,
    /// A PostgreSQL database of each server's own (`--database`).
    Postgres,
}

/// The store of the servers under test: `PENNYPOST_TEST_BACKEND` unset, empty or `sled` is
/// sled, `postgres` is PostgreSQL. Any other value panics: a misspelt backend must not quietly
/// test sled again.
pub fn backend() -> Backend {
    static BACKEND: OnceLock<Result<Backend, String>> = OnceLock::new();
    let chosen = BACKEND.get_or_init(|| match std::env::var(BACKEND_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(Backend::Sled),
        Ok(value) => match value.trim() {
            "" | "sled" => Ok(Backend::Sled),
            "postgres" => Ok(Backend::Postgres),
            other => Err(format!(
                "{BACKEND_VAR}={other:?} is not a backend: use `sled` (or leave it unset) or \
                 `postgres`"
            )),
        },
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{BACKEND_VAR} is not UTF-8")),
    });
    match chosen {
        Ok(backend) => *backend,
        Err(why) => panic!("{why}"),
    }
}

/// Whether the servers under test keep their store in PostgreSQL.
pub fn backend_is_postgres() -> bool {
    backend() == Backend::Postgres
}

/// The flat policy (posts and votes at their base cost, no refunds) the harness starts servers
/// with unless a test asks for prices: a server started again over the same ledger must run
/// it too, or it writes a new `policy` entry at start.
pub const FLAT: &[(&str, &str)] = &[
    ("PENNYPOST_REPEAT_FACTOR", "1"),
    ("PENNYPOST_VOTE_PRICING", "flat"),
    ("PENNYPOST_REFUND_VOTERS", "0"),
];

/// A PostgreSQL database of its own for a test that starts `pennypost serve` by hand on
/// directories of its own, when the servers under test run on PostgreSQL (give it to
/// [`with_store`]); `None` on sled. Keep it until the servers on it are killed.
pub fn own_database() -> Option<pg::TestDatabase> {
    backend_is_postgres().then(pg::TestDatabase::new)
}

/// Points a `pennypost serve` command at its store (call it after `serve` and the arguments
/// with values): `--database URL` when given a database, and in any case not at a
/// `PENNYPOST_DATABASE_URL` of the tests' environment (which would quietly move a sled test
/// onto that database).
pub fn with_store<'c>(
    command: &'c mut Command,
    database: Option<&pg::TestDatabase>,
) -> &'c mut Command {
    command.env_remove("PENNYPOST_DATABASE_URL");
    if let Some(database) = database {
        command.arg("--database").arg(&database.url);
    }
    command
}

/// For a test about what only the sled store has (its files in the data directory): true, after
/// saying so on stderr with `why`, when the servers run on PostgreSQL, where the test has
/// nothing to check; the test then returns. Never a silent skip:
///
/// ```ignore
/// if helpers::sled_only("the data directory's lock") { return; }
/// ```
pub fn sled_only(why: &str) -> bool {
    if backend_is_postgres() {
        eprintln!("sled only, not run on PostgreSQL: {why}");
        true
    } else {
        false
    }
}

/// A running server process and the directories it owns.
pub struct TestServer {
    pub base_url: String,
    pub client: reqwest::Client,
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    /// The server's log filter (`PENNYPOST_LOG`).
    log_filter: String,
    /// Everything the server wrote to stderr (its logs), collected by a thread.
    log_path: PathBuf,
    /// Whether the server runs the flat policy (see [`TestServer::start_with`]).
    flat: bool,
    /// The server's own PostgreSQL database when [`backend`] is PostgreSQL: passed as
    /// `--database` to every (re)start, so a restart finds its data. Dropped (the database with
    /// it) only after [`Drop`] has killed the server: see `impl Drop for TestServer`.
    database: Option<pg::TestDatabase>,
}

impl TestServer {
    /// Starts a server on a new data directory with extra `serve` arguments, under the flat
    /// policy (every post and vote at its base cost, no refunds: `--repeat-factor 1
    /// --vote-pricing flat --refund-voters 0`, given as environment so flags still win): most
    /// tests are about the board's and the mint's mechanics, not prices. The economy's own
    /// tests use [`TestServer::start_priced`].
    pub async fn start_with(extra_args: &[&str]) -> TestServer {
        TestServer::launch_new(extra_args, true)
    }

    /// Starts a server with the default policy (flood pricing, quadratic votes, refunds).
    pub async fn start_priced(extra_args: &[&str]) -> TestServer {
        TestServer::launch_new(extra_args, false)
    }

    fn launch_new(extra_args: &[&str], flat: bool) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_path = dir.path().join("server.log");
        let mut server = TestServer {
            base_url: String::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            log_filter: "info".to_string(),
            dir,
            log_path,
            flat,
            database: match backend() {
                Backend::Sled => None,
                Backend::Postgres => Some(pg::TestDatabase::new()),
            },
        };
        server.launch();
        server
    }

    /// Starts a server that logs at `filter` (e.g. "debug" to log every request).
    pub async fn start_logging(filter: &str) -> TestServer {
        let mut server = TestServer::start_with(&[]).await;
        server.kill();
        server.log_filter = filter.to_string();
        server.launch();
        server
    }

    pub async fn start() -> TestServer {
        TestServer::start_with(&[]).await
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's PostgreSQL database, when [`backend`] is PostgreSQL: give it to
    /// [`with_store`] to start another `pennypost serve` by hand on this server's store.
    pub fn database(&self) -> Option<&pg::TestDatabase> {
        self.database.as_ref()
    }

    /// The server's logs so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn launch(&mut self) {
        let mut command = serve_command(["--listen", "127.0.0.1:0"]);
        command
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--keys-dir")
            .arg(self.keys_dir());
        with_store(&mut command, self.database.as_ref())
            .args(&self.extra_args)
            .env("PENNYPOST_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PENNYPOST_LOG", &self.log_filter);
        if self.flat {
            command.envs(FLAT.iter().copied());
        }
        command.stderr(serve::log_file(&self.log_path));
        let started =
            serve::start(&mut command, false, || self.logs()).unwrap_or_else(|e| panic!("{e}"));
        self.base_url = started.base_url;
        self.child = Some(started.child);
    }

    /// SIGKILLs the server: no shutdown, no flush. What was acknowledged must survive.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().expect("wait")
    }

    /// The extra `serve` arguments of the next (re)start.
    pub fn set_extra_args(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
    }

    /// Kills the server and starts it again on the same directories (a new port).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// POSTs JSON (an `api` request type, or raw `json!` where the point is the wire shape)
    /// with an optional bearer token.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Serialize,
    ) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates an account and returns (account_id, api_key).
    pub async fn account(&self) -> (String, String) {
        // Names are unique: each account of a test gets its own.
        let request = CreateAccountRequest {
            name: Some(format!("tester-{}", uuid::Uuid::new_v4().simple())),
        };
        let (status, body) = self.post("/v1/accounts", None, request).await;
        assert_eq!(status, 201, "{body}");
        let created: CreateAccountResponse =
            serde_json::from_value(body).expect("an account answer");
        (created.account_id.to_string(), created.api_key)
    }

    pub async fn credit(&self, account_id: &str, amount: u64, reference: &str) -> (u16, Value) {
        self.post(
            &format!("/v1/admin/accounts/{account_id}/credit"),
            Some(ADMIN_TOKEN),
            CreditRequest {
                amount,
                reference: reference.to_string(),
            },
        )
        .await
    }

    /// An account credited with `amount` that bought `count` stamps: (api_key, stamps).
    pub async fn stamps(&self, amount: u64, count: u64) -> (String, Vec<String>) {
        let (id, key) = self.account().await;
        let reference = format!("ref-{}", uuid::Uuid::new_v4());
        let (status, body) = self.credit(&id, amount, &reference).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = self.purchase(&key, count, None).await;
        assert_eq!(status, 201, "{body}");
        let purchase: PurchaseResponse = serde_json::from_value(body).expect("a purchase answer");
        (key, purchase.stamps)
    }
}

impl Drop for TestServer {
    /// Kills the server first: the fields, the PostgreSQL database among them, are dropped only
    /// after this returns, so the database is never dropped under a running server (which would
    /// log connection errors, or answer 503s to a test still talking to it).
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asserts a problem+json answer with the given status and code.
pub fn assert_problem(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(body["status"], want_status, "{body}");
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "missing {field}: {body}");
    }
    let problem: Problem = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not a problem answer ({e}): {body}"));
    assert_eq!(problem.code.as_str(), want_code, "{body}");
    assert_eq!(problem.status, want_status, "{body}");
}

impl TestServer {
    /// Sends a request built on `self.client` and returns (status, body as JSON, or as a string
    /// when it is not JSON).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POSTs raw bytes with an optional Content-Type and bearer token.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// `GET` with a bearer token.
    pub async fn get_auth(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(self.client.get(self.url(path)).bearer_auth(token))
            .await
    }

    /// `POST /v1/stamps/purchase` with an optional Idempotency-Key.
    pub async fn purchase(
        &self,
        api_key: &str,
        count: u64,
        idempotency_key: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .post(self.url("/v1/stamps/purchase"))
            .bearer_auth(api_key)
            .json(&PurchaseRequest { count });
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        self.send(request).await
    }

    pub async fn redeem(&self, stamp: &str, context: &str) -> (u16, Value) {
        let request = RedeemRequest {
            context: context.to_string(),
            stamp: stamp.to_string(),
        };
        self.post("/v1/stamps/redeem", None, request).await
    }

    pub async fn verify(&self, stamp: &str) -> (u16, Value) {
        let request = VerifyRequest {
            stamp: stamp.to_string(),
        };
        let (status, body) = self.post("/v1/stamps/verify", None, request).await;
        assert_eq!(
            status, 200,
            "verify answers 200 even for bad stamps: {body}"
        );
        let _: VerifyResponse = serde_json::from_value(body.clone())
            .unwrap_or_else(|e| panic!("not a verify answer ({e}): {body}"));
        (status, body)
    }
}

/// The strings of a JSON array field.
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// Splits a stamp's text into its decoded payload and signature (no length checks).
pub fn stamp_parts(stamp: &str) -> (Vec<u8>, Vec<u8>) {
    use base64::Engine as _;
    let rest = stamp.strip_prefix("pp1.").expect("pp1. prefix");
    let (payload, signature) = rest.split_once('.').expect("two parts");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    (
        b64.decode(payload).expect("payload base64"),
        b64.decode(signature).expect("signature base64"),
    )
}

/// Joins a payload and signature into a stamp's text form.
pub fn stamp_text(payload: &[u8], signature: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("pp1.{}.{}", b64.encode(payload), b64.encode(signature))
}
