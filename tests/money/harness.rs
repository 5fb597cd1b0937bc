//! One `pennypost serve` with payment flags, on directories of its own, driven with a
//! blocking HTTP client; and the fakes' secrets.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::pg::TestDatabase;
use crate::serve::{self, serve_command};

pub const ADMIN_TOKEN: &str = "money-admin-token";
pub const STRIPE_KEY: &str = "rk_test_money";
pub const STRIPE_WHSEC: &str = "whsec_money_test";
pub const BTCPAY_KEY: &str = "btcpay-money-key";
pub const BTCPAY_STORE: &str = "store_money";
pub const BTCPAY_SECRET: &str = "btcpay-money-secret";
pub const PUBLIC_URL: &str = "http://board.test";

/// A running server (killed when dropped) and its directories.
pub struct Server {
    pub base_url: String,
    /// `http://ADDR/metrics` when started with `--metrics-listen`.
    pub metrics_url: Option<String>,
    pub http: reqwest::blocking::Client,
    child: Option<Child>,
    dir: PathBuf,
    args: Vec<String>,
    database: Option<String>,
    /// The server's own database when `PENNYPOST_TEST_BACKEND=postgres` and the test named
    /// none: kept across restarts, dropped after the server is killed.
    own_database: Option<TestDatabase>,
}

/// Whether the servers of tests that name no database run on PostgreSQL
/// (`PENNYPOST_TEST_BACKEND=postgres`, as for `tests/api`) rather than sled.
fn on_postgres() -> bool {
    match std::env::var("PENNYPOST_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("") | Ok("sled") | Err(_) => false,
        Ok(other) => panic!("PENNYPOST_TEST_BACKEND={other:?}: use sled or postgres"),
    }
}

impl Server {
    /// Starts a server in `dir` (its data and keys under it) with `args` after the usual ones,
    /// on `database` when given.
    pub fn start(dir: &Path, args: &[String], database: Option<&str>) -> Server {
        let own_database = (database.is_none() && on_postgres()).then(TestDatabase::new);
        let database = database.or(own_database.as_ref().map(|d| d.url.as_str()));
        let mut server = Server {
            base_url: String::new(),
            metrics_url: None,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            child: None,
            dir: dir.to_path_buf(),
            args: args.to_vec(),
            database: database.map(str::to_string),
            own_database,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let log = self.dir.join("server.log");
        let mut command = serve_command(["--listen", "127.0.0.1:0"]);
        command
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--keys-dir")
            .arg(self.dir.join("keys"))
            .args(["--currency", "USD", "--public-url", PUBLIC_URL])
            .args(&self.args)
            .env("PENNYPOST_ADMIN_TOKEN", ADMIN_TOKEN)
            .stderr(serve::log_file(&log));
        if let Some(url) = &self.database {
            command.arg("--database").arg(url);
        }
        let metrics = self.args.iter().any(|a| a == "--metrics-listen");
        let started = serve::start(&mut command, metrics, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        self.metrics_url = started.metrics();
        self.base_url = started.base_url;
        self.child = Some(started.child);
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            serve::kill(&mut child);
        }
    }

    /// Starts it again on the same directories and arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A new account's API key.
    pub fn account(&self) -> String {
        let answer = self
            .http
            .post(self.url("/v1/accounts"))
            .send()
            .expect("create account");
        assert_eq!(answer.status(), 201);
        answer.json::<Value>().expect("json")["api_key"]
            .as_str()
            .expect("api_key")
            .to_string()
    }

    /// The balance of the account of `api_key`.
    pub fn balance(&self, api_key: &str) -> i64 {
        let answer = self
            .http
            .get(self.url("/v1/account"))
            .bearer_auth(api_key)
            .send()
            .expect("account");
        assert_eq!(answer.status(), 200);
        answer.json::<Value>().expect("json")["balance"]
            .as_i64()
            .expect("balance")
    }

    /// `POST /v1/payments`: status and body.
    pub fn create_payment(&self, api_key: &str, provider: &str, amount: Value) -> (u16, Value) {
        let answer = self
            .http
            .post(self.url("/v1/payments"))
            .bearer_auth(api_key)
            .json(&json!({"provider": provider, "amount": amount}))
            .send()
            .expect("create payment");
        status_json(answer)
    }

    /// A new pending payment's id, which must be created.
    pub fn pending_payment(&self, api_key: &str, provider: &str, amount: u64) -> String {
        let (status, body) = self.create_payment(api_key, provider, json!(amount));
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["status"], "pending", "{body}");
        body["payment_id"].as_str().expect("payment_id").to_string()
    }

    /// `GET /v1/payments/{id}`: status and body.
    pub fn payment(&self, api_key: &str, payment_id: &str) -> (u16, Value) {
        let answer = self
            .http
            .get(self.url(&format!("/v1/payments/{payment_id}")))
            .bearer_auth(api_key)
            .send()
            .expect("get payment");
        status_json(answer)
    }

    /// Posts a webhook to `/v1/payments/webhooks/{provider}` with one signature header.
    pub fn webhook(&self, provider: &str, header: (&str, &str), body: &[u8]) -> (u16, Value) {
        let answer = self
            .http
            .post(self.url(&format!("/v1/payments/webhooks/{provider}")))
            .header("content-type", "application/json")
            .header(header.0, header.1)
            .body(body.to_vec())
            .send()
            .expect("webhook");
        status_json(answer)
    }

    /// Waits (at most 30 s) until the payment's status is `status`; its body then.
    pub fn wait_status(&self, api_key: &str, payment_id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, body) = self.payment(api_key, payment_id);
            assert_eq!(code, 200, "{body}");
            if body["status"] == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "payment {payment_id} is still {} (waiting for {status}); logs:\n{}",
                body["status"],
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `pennypost audit` against the server with a state file of its own; it must pass.
    pub fn audit_passes(&self) {
        let state = self.dir.join(format!(
            "audit-{}.json",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let (code, printed) = serve::audit_printed(&self.base_url, &state);
        assert_eq!(code, 0, "the audit failed:\n{printed}");
    }

    /// The Prometheus text of the server's metrics.
    pub fn metrics(&self) -> String {
        let url = self
            .metrics_url
            .as_ref()
            .expect("started with --metrics-listen");
        self.http
            .get(url)
            .send()
            .expect("metrics")
            .text()
            .expect("text")
    }

    /// The ledger's entries, parsed.
    pub fn entries(&self) -> Vec<Value> {
        let text = self
            .http
            .get(self.url("/v1/ledger/entries?limit=1000"))
            .send()
            .expect("entries")
            .text()
            .expect("text");
        text.lines()
            .map(|line| serde_json::from_str(line).expect("entry"))
            .collect()
    }

    /// The balance of a test's one account as the ledger says it (every credit, debit,
    /// purchase, refund and revoke of the ledger counted; below zero for a debt), worked out
    /// from the entries alone.
    pub fn ledger_balance(&self) -> i64 {
        let amount = |e: &Value, field: &str| e[field].as_i64().unwrap_or(0);
        self.entries()
            .iter()
            .map(|e| match e["kind"].as_str() {
                Some("credit") | Some("refund") => amount(e, "amount"),
                Some("debit") => -amount(e, "amount"),
                Some("purchase") => -amount(e, "total"),
                Some("spend") if e["action"] == "revoke" => amount(e, "amount"),
                _ => 0,
            })
            .sum()
    }

    /// The ledger's entries of `kind`.
    pub fn entries_of(&self, kind: &str) -> Vec<Value> {
        self.entries()
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        // Only now, with the server gone: the database goes with it.
        drop(self.own_database.take());
    }
}

pub fn status_json(answer: reqwest::blocking::Response) -> (u16, Value) {
    let status = answer.status().as_u16();
    let text = answer.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The flags of the test provider.
pub fn test_provider() -> Vec<String> {
    vec!["--payment-provider".into(), "test".into()]
}

/// The flags of Stripe at `api_base`.
pub fn stripe(api_base: &str) -> Vec<String> {
    [
        "--stripe-secret-key",
        STRIPE_KEY,
        "--stripe-webhook-secret",
        STRIPE_WHSEC,
        "--stripe-api-base",
        api_base,
    ]
    .map(str::to_string)
    .to_vec()
}

/// The flags of BTCPay at `url`.
pub fn btcpay(url: &str) -> Vec<String> {
    [
        "--btcpay-url",
        url,
        "--btcpay-api-key",
        BTCPAY_KEY,
        "--btcpay-store-id",
        BTCPAY_STORE,
        "--btcpay-webhook-secret",
        BTCPAY_SECRET,
    ]
    .map(str::to_string)
    .to_vec()
}
