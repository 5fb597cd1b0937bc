//! The harness: N `pennypost serve` processes on one PostgreSQL database, one service.
//!
//! Every server gets the same `--database`, the same `--keys-dir` (one directory, not copies),
//! its own `--data-dir`, [`ADMIN_TOKEN`] and the flat policy (as `tests/api/helpers.rs` starts
//! servers). The first server starts alone (it creates the schema, the issuer key and the ledger
//! key, and writes the first entries); the others start after it, together. A [`Service`] owns
//! its database: dropping it kills the servers first, then drops the database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pennypost::api::{
    AccountResponse, CreateAccountResponse, PurchaseResponse, StampStatusResponse,
};
use pennypost_audit::checkpoint::Verified;
use serde_json::{json, Value};

use crate::pg;
use crate::serve::{self, serve_command};
use crate::wire;
pub use crate::wire::stamp_id;

pub const ADMIN_TOKEN: &str = "servers-test-admin-token";

/// The policy every server runs (as `TestServer` sets it): posts and votes at their base cost.
const FLAT: &[(&str, &str)] = &[
    ("PENNYPOST_REPEAT_FACTOR", "1"),
    ("PENNYPOST_VOTE_PRICING", "flat"),
    ("PENNYPOST_REFUND_VOTERS", "0"),
];

/// One `pennypost serve` process; it can be killed and started again on its directories.
pub struct Server {
    /// "server 1", "server 2", … for messages.
    pub name: String,
    /// Everything after `serve`.
    args: Mutex<Vec<String>>,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    base_url: Mutex<String>,
    /// `http://ADDR/metrics` once the server printed it (started with `--metrics-listen`),
    /// noted by the thread that drains the stdout of its latest start.
    metrics_url: Mutex<Arc<Mutex<Option<String>>>>,
}

impl Server {
    pub fn new(name: String, args: Vec<String>, log: PathBuf) -> Server {
        Server {
            name,
            args: Mutex::new(args),
            log,
            child: Mutex::new(None),
            base_url: Mutex::new(String::new()),
            metrics_url: Mutex::new(Arc::new(Mutex::new(None))),
        }
    }

    /// Starts the process and waits for its `pennypost listening on URL` line.
    fn launch(&self) {
        if let Err(e) = self.try_launch() {
            panic!("{e}");
        }
    }

    /// Starts the process; `Err` with its logs when it exits or stays silent instead of
    /// listening (within `serve::START_TIMEOUT`).
    pub fn try_launch(&self) -> Result<(), String> {
        let args = self.args.lock().expect("lock").clone();
        let mut command = serve_command(&args);
        command
            .env("PENNYPOST_ADMIN_TOKEN", ADMIN_TOKEN)
            .envs(FLAT.iter().copied())
            .stderr(serve::log_file(&self.log));
        let started = serve::start(&mut command, false, || self.logs())
            .map_err(|e| format!("{}: {e}", self.name))?;
        *self.base_url.lock().expect("lock") = started.base_url;
        *self.metrics_url.lock().expect("lock") = started.metrics_url;
        *self.child.lock().expect("lock") = Some(started.child);
        Ok(())
    }

    /// Replaces the value given to `flag` (which the server's arguments hold) for the next
    /// start.
    pub fn set_arg(&self, flag: &str, value: &str) {
        let mut args = self.args.lock().expect("lock");
        let at = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{} has no {flag}", self.name));
        args[at + 1] = value.to_string();
    }

    /// SIGKILL: no shutdown, no flush. Nothing if it is not running.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().expect("lock").take() {
            serve::kill(&mut child);
        }
    }

    /// Whether the process is still running (it has not exited by itself).
    pub fn running(&self) -> bool {
        match self.child.lock().expect("lock").as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.lock().expect("lock"))
    }

    pub fn base_url(&self) -> String {
        self.base_url.lock().expect("lock").clone()
    }

    /// The server's metrics address (started with `--metrics-listen`); waits up to 10 s for
    /// the line that names it.
    pub fn metrics_url(&self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let noted = self.metrics_url.lock().expect("lock").clone();
            if let Some(url) = noted.lock().expect("lock").clone() {
                return url;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} printed no metrics line",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server wrote to stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP answer: status, body (JSON, or the text as a JSON string) and `Retry-After`.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

impl Answer {
    /// The problem code of an error answer.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// An account: its id and API key.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub key: String,
}

/// N servers over one database, sharing one keys directory.
pub struct Service {
    servers: Vec<Server>,
    pub http: reqwest::Client,
    dir: tempfile::TempDir,
    /// Dropped after the servers (see `Drop`).
    db: pg::TestDatabase,
}

impl Service {
    /// Starts `n` servers on `db` with `extra` `serve` arguments: the first alone, then the
    /// others together.
    pub fn start(db: pg::TestDatabase, n: usize, extra: &[&str]) -> Service {
        let service = Service::unstarted(db, n, extra);
        service.servers[0].launch();
        std::thread::scope(|scope| {
            for server in &service.servers[1..] {
                scope.spawn(|| server.launch());
            }
        });
        service
    }

    /// `n` servers on `db` as [`Service::start`] makes them, none started yet.
    pub fn unstarted(db: pg::TestDatabase, n: usize, extra: &[&str]) -> Service {
        assert!(n >= 1);
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let servers: Vec<Server> = (0..n)
            .map(|i| {
                let own = dir.path().join(format!("server{}", i + 1));
                std::fs::create_dir_all(&own).expect("server dir");
                let mut args: Vec<String> = vec![
                    "--listen".into(),
                    "127.0.0.1:0".into(),
                    "--database".into(),
                    db.url.clone(),
                    "--keys-dir".into(),
                    keys.to_string_lossy().into_owned(),
                    "--data-dir".into(),
                    own.join("data").to_string_lossy().into_owned(),
                    // Every request comes from 127.0.0.1: no per-IP budget for these tests.
                    "--rate-purchases-per-minute".into(),
                    "0".into(),
                    "--rate-accounts-per-minute".into(),
                    "0".into(),
                ];
                args.extend(extra.iter().map(|s| s.to_string()));
                Server::new(format!("server {}", i + 1), args, own.join("server.log"))
            })
            .collect();
        Service {
            servers,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            dir,
            db,
        }
    }

    pub fn server(&self, i: usize) -> &Server {
        &self.servers[i]
    }

    /// The URL of the servers' database.
    pub fn database_url(&self) -> String {
        self.db.url.clone()
    }

    /// A path in the service's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every server's log, for a failure's message.
    pub fn logs(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("==== {} log ====\n{}", s.name, s.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Kills server `i` (SIGKILL) and starts it again on its directories and the database.
    pub fn restart(&self, i: usize) {
        self.servers[i].kill();
        self.servers[i].launch();
    }

    // ---- HTTP ------------------------------------------------------------------------------

    /// Sends a request; `Err` when it failed in transport (the server died, say).
    pub async fn try_send(&self, request: reqwest::RequestBuilder) -> Result<Answer, String> {
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap_or("").to_string());
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok(Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            retry_after,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        match self.try_send(request).await {
            Ok(answer) => answer,
            Err(e) => panic!("request failed in transport: {e}\n{}", self.logs()),
        }
    }

    pub async fn get(&self, i: usize, path: &str) -> Answer {
        self.send(self.http.get(self.servers[i].url(path))).await
    }

    pub async fn get_auth(&self, i: usize, path: &str, token: &str) -> Answer {
        self.send(self.http.get(self.servers[i].url(path)).bearer_auth(token))
            .await
    }

    pub async fn post(&self, i: usize, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.send(self.post_request(i, path, token, body)).await
    }

    pub fn post_request(
        &self,
        i: usize,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> reqwest::RequestBuilder {
        let request = self.http.post(self.servers[i].url(path)).json(&body);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `POST /v1/stamps/redeem`; `Err` on a transport failure.
    pub async fn redeem(&self, i: usize, stamp: &str, context: &str) -> Result<Answer, String> {
        self.try_send(self.post_request(
            i,
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamp, "context": context}),
        ))
        .await
    }

    /// `POST /v1/stamps/purchase` with a fresh Idempotency-Key; `Err` on a transport failure.
    pub async fn purchase(&self, i: usize, key: &str, count: u64) -> Result<Answer, String> {
        self.purchase_keyed(i, key, count, &uuid::Uuid::new_v4().to_string())
            .await
    }

    /// `POST /v1/stamps/purchase` with `Idempotency-Key: idempotency_key`.
    pub async fn purchase_keyed(
        &self,
        i: usize,
        key: &str,
        count: u64,
        idempotency_key: &str,
    ) -> Result<Answer, String> {
        let request = self
            .post_request(i, "/v1/stamps/purchase", Some(key), json!({"count": count}))
            .header("idempotency-key", idempotency_key);
        self.try_send(request).await
    }

    /// `GET /v1/account` of `account` on server `i`.
    pub async fn account_of(&self, i: usize, account: &Account) -> AccountResponse {
        let answer = self.get_auth(i, "/v1/account", &account.key).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        serde_json::from_value(answer.body).expect("an account")
    }

    /// A new account, made on server `i`.
    pub async fn account(&self, i: usize) -> Account {
        let name = format!("m-{}", uuid::Uuid::new_v4().simple());
        let answer = self
            .post(i, "/v1/accounts", None, json!({"name": name}))
            .await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        let created: CreateAccountResponse =
            serde_json::from_value(answer.body).expect("an account answer");
        Account {
            id: created.account_id.to_string(),
            key: created.api_key,
        }
    }

    /// Credits `amount` to `account` on server `i`; returns the balance.
    pub async fn credit(&self, i: usize, account: &Account, amount: u64) -> u64 {
        let answer = self
            .post(
                i,
                &format!("/v1/admin/accounts/{}/credit", account.id),
                Some(ADMIN_TOKEN),
                json!({"amount": amount, "reference": uuid::Uuid::new_v4().to_string()}),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body["balance"].as_u64().expect("balance")
    }

    /// Buys `count` stamps for `account` on server `i` (balance permitting).
    pub async fn buy(&self, i: usize, account: &Account, count: u64) -> PurchaseResponse {
        let answer = self
            .purchase(i, &account.key, count)
            .await
            .expect("purchase");
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        serde_json::from_value(answer.body).expect("a purchase answer")
    }

    /// A new account on server `i`, credited and holding `count` fresh stamps.
    pub async fn stamps(&self, i: usize, count: u64) -> (Account, Vec<String>) {
        let account = self.account(i).await;
        self.credit(i, &account, count).await;
        let mut stamps = Vec::new();
        while (stamps.len() as u64) < count {
            let chunk = (count - stamps.len() as u64).min(1000);
            stamps.extend(self.buy(i, &account, chunk).await.stamps);
        }
        (account, stamps)
    }

    // ---- the ledger --------------------------------------------------------------------------

    /// The sum of metric `name`'s samples (every label set) that server `i` serves at its
    /// metrics address (started with `--metrics-listen`).
    pub async fn metric(&self, i: usize, name: &str) -> f64 {
        let text = self
            .http
            .get(self.servers[i].metrics_url())
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics text");
        wire::metric_total(&text, name)
    }

    /// `GET /checkpoint` of server `i` (the signed note).
    pub async fn checkpoint(&self, i: usize) -> String {
        let answer = self.get(i, "/checkpoint").await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body.as_str().expect("note text").to_string()
    }

    /// The checkpoint verifier key server `i` publishes.
    pub async fn vkey(&self, i: usize) -> String {
        let answer = self.get(i, "/v1/ledger/key").await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body["vkey"].as_str().expect("vkey").to_string()
    }

    /// Server `i`'s checkpoint, verified under `vkey`.
    pub async fn verified_checkpoint(&self, i: usize, vkey: &str) -> Verified {
        let note = self.checkpoint(i).await;
        pennypost_audit::checkpoint::verify(note.as_bytes(), vkey).unwrap_or_else(|e| {
            panic!(
                "{}'s checkpoint does not verify under {vkey}: {e}\n{note}",
                self.servers[i].name
            )
        })
    }

    /// The ledger size server `i` signs now.
    pub async fn ledger_size(&self, i: usize) -> u64 {
        let note = self.checkpoint(i).await;
        note.lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .expect("checkpoint size")
    }

    /// Entries `0..size` as server `i` serves them, each the exact bytes of its line.
    pub async fn entries(&self, i: usize, size: u64) -> Vec<Vec<u8>> {
        let mut entries: Vec<Vec<u8>> = Vec::new();
        while (entries.len() as u64) < size {
            let start = entries.len() as u64;
            let response = self
                .http
                .get(self.servers[i].url(&format!(
                    "/v1/ledger/entries?start={start}&limit={}",
                    size - start
                )))
                .send()
                .await
                .expect("entries");
            assert_eq!(response.status().as_u16(), 200);
            let page = response.bytes().await.expect("entries body");
            let before = entries.len();
            entries.extend(
                page.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
            assert!(entries.len() > before, "no entries past {before}");
        }
        entries.truncate(size as usize);
        entries
    }

    /// Runs `pennypost audit --server <server i> --state STATE`: (passed, what it printed).
    pub async fn audit(&self, i: usize, state: &Path) -> (bool, String) {
        let (server, state) = (self.servers[i].base_url(), state.to_path_buf());
        let (code, printed) =
            tokio::task::spawn_blocking(move || serve::audit_printed(&server, &state))
                .await
                .expect("pennypost audit ran");
        let passed = code == 0 && printed.contains("OK: every check holds");
        (passed, printed)
    }

    /// Asserts that `pennypost audit` passes against server `i` with `state`.
    pub async fn assert_audit(&self, i: usize, state: &Path) -> String {
        let (passed, printed) = self.audit(i, state).await;
        assert!(
            passed,
            "pennypost audit against {} failed:\n{printed}",
            self.servers[i].name
        );
        printed
    }

    /// Checks, on server `i`, that every acknowledged spend `(stamp_id, ledger_index)` is in
    /// the ledger: the stamp reads `spent` at that index, and the entry at that index is a
    /// spend naming the stamp. Also that no stamp is spent twice in the whole ledger. Returns
    /// the ledger read (its entries, and every spent stamp id with its entry's index).
    pub async fn check_spends(&self, i: usize, acked: &[(String, u64)]) -> Spends {
        let size = self.ledger_size(i).await;
        let entries = self.entries(i, size).await;
        let mut spent: HashMap<String, u64> = HashMap::new();
        let mut parsed = Vec::with_capacity(entries.len());
        for (index, bytes) in entries.iter().enumerate() {
            let entry: Value = serde_json::from_slice(bytes).expect("an entry is JSON");
            assert_eq!(entry["index"], index as u64, "gap in the ledger");
            if entry["kind"] == "spend" {
                for id in entry["stamp_ids"].as_array().expect("stamp_ids") {
                    let id = id.as_str().expect("stamp id").to_string();
                    if let Some(first) = spent.insert(id.clone(), index as u64) {
                        panic!("stamp {id} spent twice: entries {first} and {index}");
                    }
                }
            }
            parsed.push(entry);
        }
        for (id, ledger_index) in acked {
            let entry = parsed.get(*ledger_index as usize).unwrap_or_else(|| {
                panic!("acknowledged spend of {id} at {ledger_index} is past the ledger ({size})")
            });
            assert_eq!(entry["kind"], "spend", "entry {ledger_index}: {entry}");
            assert_eq!(
                spent.get(id),
                Some(ledger_index),
                "acknowledged spend of {id} at {ledger_index}: entry {entry}"
            );
            let answer = self.get(i, &format!("/v1/stamps/{id}")).await;
            assert_eq!(answer.status, 200, "{:?}", answer.body);
            let status: StampStatusResponse =
                serde_json::from_value(answer.body.clone()).expect("a stamp status");
            assert_eq!(
                (status.state, status.ledger_index),
                (pennypost::api::StampState::Spent, Some(*ledger_index)),
                "stamp {id}: {}",
                answer.body
            );
        }
        Spends {
            spent,
            entries: parsed,
        }
    }
}

/// The spends of a ledger, read by [`Service::check_spends`].
pub struct Spends {
    /// Every spent stamp id, with the index of its spend entry.
    pub spent: HashMap<String, u64>,
    pub entries: Vec<Value>,
}

impl Spends {
    /// How many of `ids` are spent.
    pub fn count_spent<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> usize {
        ids.into_iter()
            .filter(|id| self.spent.contains_key(*id))
            .count()
    }
}

impl Drop for Service {
    /// Kills every server, then drops the database.
    fn drop(&mut self) {
        for server in &self.servers {
            server.kill();
        }
    }
}

/// Waits until `done`, checking every 10 ms; panics naming `what` after `limit`.
pub async fn poll(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {limit:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
