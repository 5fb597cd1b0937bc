//! `pennypost migrate`: a sled store copied into PostgreSQL is the same ledger (same size,
//! entries, root and checkpoint), a server on the copy goes on where the sled server stopped,
//! and `pennypost audit` with the state saved against the sled server passes against it.

#[path = "../support/pg.rs"]
mod pg;
#[path = "../support/serve.rs"]
mod serve;

mod kept;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serve::serve_command;

use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "migrate-admin";

/// A `pennypost serve` process.
struct Server {
    url: String,
    child: Child,
    http: reqwest::blocking::Client,
}

impl Server {
    /// Starts a server with the default policy on `data_dir` and `keys_dir`, and `extra` args.
    fn start(data_dir: &Path, keys_dir: &Path, extra: &[&str]) -> Server {
        // Nothing of the developer's environment configures the server (a
        // PENNYPOST_DATABASE_URL there would quietly move the sled server onto a database):
        // `serve_command` removes every PENNYPOST_* variable.
        let mut command = serve_command(["--listen", "127.0.0.1:0", "--data-dir"]);
        command
            .arg(data_dir)
            .arg("--keys-dir")
            .arg(keys_dir)
            .args(extra)
            .env("PENNYPOST_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PENNYPOST_LOG", "warn")
            .stderr(Stdio::inherit());
        let started = serve::start(&mut command, false, || "(on the test's stderr)".to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        Server {
            url: started.base_url,
            child: started.child,
            http: reqwest::blocking::Client::new(),
        }
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = auth {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("request");
        let status = response.status().as_u16();
        let text = response.text().expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn post(&self, path: &str, auth: Option<&str>, body: Value) -> Value {
        let (status, answer) = self.call(reqwest::Method::POST, path, auth, Some(body));
        assert!(
            (200..300).contains(&status),
            "POST {path}: {status} {answer}"
        );
        answer
    }

    fn text(&self, path: &str) -> String {
        match self.call(reqwest::Method::GET, path, None, None) {
            (200, Value::String(text)) => text,
            (status, other) => panic!("GET {path}: {status} {other}"),
        }
    }

    /// An account with `amount` credited; returns (account id, API key).
    fn account(&self, amount: u64, reference: &str) -> (String, String) {
        let created = self.post("/v1/accounts", None, json!({}));
        let id = created["account_id"].as_str().expect("id").to_string();
        let key = created["api_key"].as_str().expect("key").to_string();
        self.post(
            &format!("/v1/admin/accounts/{id}/credit"),
            Some(ADMIN_TOKEN),
            json!({"amount": amount, "reference": reference}),
        );
        (id, key)
    }

    fn buy(&self, key: &str, count: u64) -> Vec<String> {
        let bought = self.post("/v1/stamps/purchase", Some(key), json!({ "count": count }));
        bought["stamps"]
            .as_array()
            .expect("stamps")
            .iter()
            .map(|s| s.as_str().expect("stamp").to_string())
            .collect()
    }

    fn kill(self) {
        drop(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        serve::kill(&mut self.child);
    }
}

fn pennypost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(args)
        .output()
        .expect("run pennypost")
}

fn audit(server: &Server, state: &Path) -> Output {
    serve::audit(&server.url, state)
}

/// An account that bought stamps and had money taken back: (account id, API key).
struct Debtor {
    id: String,
    key: String,
}

/// Some of everything a store holds: keys, a policy, accounts with names, credits, purchases
/// with an Idempotency-Key, redeems, posts, votes (with a refund under the default policy), a
/// debit that revoked stamps.
fn fill(server: &Server, round: &str) -> Debtor {
    let (_, poster) = server.account(1_000, &format!("{round} poster"));
    let posts: Vec<String> = (0..3)
        .map(|i| {
            let stamps = server.buy(&poster, 1 << i);
            let post = server.post(
                "/v1/posts",
                None,
                json!({"author": "poster", "body": format!("post {i}"), "stamps": stamps}),
            );
            post["post_id"].as_str().expect("post id").to_string()
        })
        .collect();
    for v in 0..4 {
        let (_, voter) = server.account(100, &format!("{round} voter {v}"));
        let stamps = server.buy(&voter, 1);
        server.post(
            &format!("/v1/posts/{}/votes", posts[0]),
            None,
            json!({"direction": if v == 3 { "down" } else { "up" }, "stamps": stamps}),
        );
    }
    let (_, redeemer) = server.account(500, &format!("{round} redeemer"));
    let stamps = server.buy(&redeemer, 50);
    for (i, stamp) in stamps.iter().enumerate().take(30) {
        server.post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamp, "context": format!("site {i}")}),
        );
    }
    let named = server.post(
        "/v1/accounts",
        None,
        json!({ "name": format!("Zoë {round}") }),
    );
    assert!(named["account_id"].is_string());
    // 20 credited, 10 stamps bought at 1, two spent; a debit of 15 (10 − 15 = −5) revokes the
    // last five.
    let (id, key) = server.account(20, &format!("{round} debtor"));
    let stamps = server.buy(&key, 10);
    for stamp in &stamps[..2] {
        server.post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamp, "context": "debtor"}),
        );
    }
    let debited = server.post(
        &format!("/v1/admin/accounts/{id}/debit"),
        Some(ADMIN_TOKEN),
        json!({"amount": 15, "reference": format!("{round} correction")}),
    );
    assert_eq!(debited["balance"], 0, "{debited}");
    assert_eq!(debited["revoked"]["stamps"], 5, "{debited}");
    Debtor { id, key }
}

#[test]
fn a_sled_store_moves_to_postgres_whole_and_the_audit_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, keys, state) = (
        dir.path().join("data"),
        dir.path().join("keys"),
        dir.path().join("audit.json"),
    );
    let sled = Server::start(&data, &keys, &[]);
    let debtor = fill(&sled, "sled");
    let audited = audit(&sled, &state);
    assert!(
        audited.status.success(),
        "audit of the sled server: {audited:?}"
    );
    let sled_checkpoint = sled.text("/checkpoint");
    let (status, sled_entries) = sled.call(
        reqwest::Method::GET,
        "/v1/ledger/entries?start=0&limit=1000",
        None,
        None,
    );
    assert_eq!(status, 200, "{sled_entries}");
    let (status, sled_audit) = sled.call(reqwest::Method::GET, "/v1/audit", None, None);
    assert_eq!(status, 200, "{sled_audit}");

    // A running server's directory is refused (sled lets one process open it).
    let database = pg::TestDatabase::new();
    let data_arg = data.to_str().expect("path");
    let refused = pennypost(&[
        "migrate",
        "--from-data-dir",
        data_arg,
        "--to-database",
        &database.url,
    ]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    sled.kill();

    let copied = pennypost(&[
        "migrate",
        "--from-data-dir",
        data_arg,
        "--to-database",
        &database.url,
    ]);
    let said = String::from_utf8_lossy(&copied.stdout);
    assert!(copied.status.success(), "migrate: {copied:?}");
    assert!(said.contains("every entry the same bytes"), "{said}");

    // A second copy into the now filled database is refused, and changes nothing.
    let again = pennypost(&[
        "migrate",
        "--from-data-dir",
        data_arg,
        "--to-database",
        &database.url,
    ]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{again:?}"
    );

    let own_dir = dir.path().join("pg-server");
    let on_pg = Server::start(&own_dir, &keys, &["--database", &database.url]);
    // The same ledger: the same checkpoint (same size, root and signature), the same entries,
    // the same audit figures.
    assert_eq!(on_pg.text("/checkpoint"), sled_checkpoint);
    let (status, pg_entries) = on_pg.call(
        reqwest::Method::GET,
        "/v1/ledger/entries?start=0&limit=1000",
        None,
        None,
    );
    assert_eq!(status, 200, "{pg_entries}");
    assert_eq!(pg_entries, sled_entries, "entries differ");
    let (status, pg_audit) = on_pg.call(reqwest::Method::GET, "/v1/audit", None, None);
    assert_eq!(status, 200, "{pg_audit}");
    assert_eq!(pg_audit, sled_audit);
    assert_eq!(pg_audit["ok"], json!(true));

    // The server on the copy goes on: balances, names, idempotency and the spent set came
    // along.
    let (status, taken) = on_pg.call(
        reqwest::Method::POST,
        "/v1/accounts",
        None,
        Some(json!({"name": "ZOË SLED"})),
    );
    assert_eq!(
        (status, taken["code"].as_str()),
        (409, Some("name_taken")),
        "{taken}"
    );
    // The purchase index came along: a debit on the copy revokes the debtor's next three
    // stamps (the two spent and five revoked are passed over), and leaves no debt.
    let (status, debited) = on_pg.call(
        reqwest::Method::POST,
        &format!("/v1/admin/accounts/{}/debit", debtor.id),
        Some(ADMIN_TOKEN),
        Some(json!({"amount": 3, "reference": "after the move"})),
    );
    assert_eq!(status, 200, "{debited}");
    assert_eq!(debited["revoked"]["stamps"], 3, "{debited}");
    assert_eq!(debited["balance"], 0, "{debited}");
    let (status, account) =
        on_pg.call(reqwest::Method::GET, "/v1/account", Some(&debtor.key), None);
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["balance"], 0, "{account}");
    assert_eq!(account["stamps_spent"], 10, "{account}");
    fill(&on_pg, "pg");
    let resumed = audit(&on_pg, &state);
    assert!(
        resumed.status.success(),
        "audit against the PostgreSQL server with the sled server's state: {resumed:?}"
    );
    on_pg.kill();
}

#[test]
fn a_missing_source_or_an_unreachable_database_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = pennypost(&[
        "migrate",
        "--from-data-dir",
        dir.path().join("nothing").to_str().expect("path"),
        "--to-database",
        "postgres://postgres@127.0.0.1:1/none",
    ]);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("holds no sled store"));
}

/// A copy that fails part-way (here: the database holds an entry row the emptiness check
/// does not look at, so the copy's first entry collides with it) exits 2 and leaves the
/// database as it was: the copy is one transaction.
#[test]
fn a_copy_that_fails_part_way_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, keys) = (dir.path().join("data"), dir.path().join("keys"));
    let sled = Server::start(&data, &keys, &[]);
    fill(&sled, "sled");
    sled.kill();

    let database = pg::TestDatabase::new();
    // The schema, made as a server makes it, and one stray row in `entries`.
    drop(
        pennypost::store::PgStore::open(&database.url, &pennypost::store::PgLimits::default())
            .expect("make the schema"),
    );
    pg::psql(
        &database.url,
        "INSERT INTO entries (idx, body) VALUES (0, 'stray')",
    );
    let failed = pennypost(&[
        "migrate",
        "--from-data-dir",
        data.to_str().expect("path"),
        "--to-database",
        &database.url,
    ]);
    assert_eq!(failed.status.code(), Some(2), "{failed:?}");
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(said.contains("copy into"), "{said}");
    assert_eq!(
        pg::psql(
            &database.url,
            "SELECT (SELECT ledger_size FROM head WHERE id = 1), \
             (SELECT count(*) FROM accounts), (SELECT count(*) FROM stamps), \
             (SELECT count(*) FROM entries), (SELECT count(*) FROM hashes)"
        ),
        "0|0|0|1|0",
        "the failed copy left rows behind"
    );
}
