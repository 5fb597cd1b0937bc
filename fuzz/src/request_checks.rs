//! `request_body`: the real router (`pennypost::http::app`) over a real service (built by
//! `pennypost::cli::serve::build`, sled store and keys in a temporary directory), driven
//! in-process with `tower::ServiceExt::oneshot`, one POST route per input.
//!
//! Input layout:
//! - byte 0: the route (mod 7): accounts, credit, purchase, verify, redeem, posts, votes.
//! - byte 1: bits 0-1 content type (json, problem+json with charset, text/plain, none);
//!   bits 2-3 authorization (the account's API key, the admin token, a wrong key, none);
//!   bits 4-5 the id in the path (a real one, a random UUID, not a UUID, an encoded `..`);
//!   bits 6-7 Idempotency-Key (none, a fixed key, a fresh key, empty).
//! - the rest: the body. `$S` becomes a fresh valid stamp, `$T` a spent one, `$P` the id of a
//!   real post and `$A` the account id, so the fuzzer reaches the checks behind the parsing.
//!
//! Asserted for every request: no panic (the panic guard would answer 500, and libFuzzer's
//! panic hook aborts before that); no 5xx; an error is problem+json whose `status` is the HTTP
//! status and whose `code` is a non-empty string; a success is JSON; a refused request changes
//! nothing (ledger size, balance and counts of the account); a successful credit, purchase or
//! spend adds exactly one ledger entry at the index it answers (a replay of a credit reference
//! or Idempotency-Key none).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use clap::Parser;
use pennypost::cli::serve::{build, ServeArgs};
use pennypost::service::App;
use uuid::Uuid;

/// The body limit the fuzzed server runs with: small enough that libFuzzer's inputs
/// (`-max_len` 4096 in scripts/fuzz.sh) reach the 413 path.
pub const BODY_LIMIT: usize = 2048;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

pub struct Harness {
    runtime: tokio::runtime::Runtime,
    service: Arc<App>,
    router: axum::Router,
    _dir: tempfile::TempDir,
    admin_token: String,
    api_key: String,
    account_id: Uuid,
    post_id: Uuid,
    spent_stamp: String,
    pool: Mutex<Vec<String>>,
    counter: AtomicU64,
    /// Answers so far by route and status class (2xx, 4xx), printed now and then so a run
    /// shows which routes it got through to success.
    answers: Mutex<[[u64; 2]; ROUTES]>,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

fn setup() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let keys_dir = dir.path().join("keys");
    let body_limit = BODY_LIMIT.to_string();
    let cli = Cli::try_parse_from([
        "pennypost-fuzz".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "--keys-dir".as_ref(),
        keys_dir.as_os_str(),
        "--request-body-bytes-max".as_ref(),
        body_limit.as_ref(),
    ])
    .expect("serve arguments");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let service = runtime.block_on(build(&cli.serve)).expect("service");
    let admin_token = match std::env::var("PENNYPOST_ADMIN_TOKEN") {
        Ok(token) => token.trim().to_string(),
        Err(_) => std::fs::read_to_string(data_dir.join("admin_token"))
            .expect("admin token")
            .trim()
            .to_string(),
    };
    let (account_id, api_key, post_id, spent_stamp, pool) = runtime.block_on(async {
        let (account_id, api_key) = service
            .mint
            .create_account(Some("fuzz".into()))
            .await
            .expect("account");
        service
            .mint
            .credit(
                account_id,
                1_000_000_000_000,
                "fuzz-setup".into(),
                pennypost::domain::CreditSource::Operator,
            )
            .await
            .expect("credit");
        let account = service.mint.authenticate(Some(&api_key)).expect("auth");
        let mut pool = service
            .mint
            .purchase(&account, 1000, None)
            .await
            .expect("purchase")
            .stamps;
        let post = service
            .board
            .create_post(
                Some("fuzz".into()),
                "a post to vote on".into(),
                &[pool.pop().expect("stamp")],
                None,
            )
            .await
            .expect("post");
        let spent = pool.pop().expect("stamp");
        service
            .mint
            .redeem(&spent, "fuzz/setup".into())
            .await
            .expect("redeem");
        (account_id, api_key, post.post_id, spent, pool)
    });
    let router = pennypost::http::app(service.clone());
    Harness {
        runtime,
        service,
        router,
        _dir: dir,
        admin_token,
        api_key,
        account_id,
        post_id,
        spent_stamp,
        pool: Mutex::new(pool),
        counter: AtomicU64::new(0),
        answers: Mutex::new([[0; 2]; ROUTES]),
    }
}

pub fn harness() -> &'static Harness {
    HARNESS.get_or_init(setup)
}

/// What of the account and ledger a refused request must leave alone.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    ledger_size: u64,
    balance: u64,
    stamps_purchased: u64,
    stamps_spent: u64,
}

impl Harness {
    fn snapshot(&self) -> Snapshot {
        let account = self
            .service
            .mint
            .authenticate(Some(&self.api_key))
            .expect("fuzz account");
        Snapshot {
            ledger_size: self.service.log.size(),
            balance: account.balance,
            stamps_purchased: account.stamps_purchased,
            stamps_spent: account.stamps_spent,
        }
    }

    /// Makes sure `n` fresh stamps are in the pool and the account can keep buying; outside
    /// the measured request.
    async fn top_up(&self, n: usize) {
        let account = self
            .service
            .mint
            .authenticate(Some(&self.api_key))
            .expect("fuzz account");
        if account.balance < 1_000_000_000 {
            let reference = format!("fuzz-top-up-{}", self.next());
            self.service
                .mint
                .credit(
                    self.account_id,
                    1_000_000_000_000,
                    reference,
                    pennypost::domain::CreditSource::Operator,
                )
                .await
                .expect("top-up credit");
        }
        if self.pool.lock().expect("pool").len() < n {
            let account = self
                .service
                .mint
                .authenticate(Some(&self.api_key))
                .expect("fuzz account");
            let stamps = self
                .service
                .mint
                .purchase(&account, 1000, None)
                .await
                .expect("top-up purchase")
                .stamps;
            self.pool.lock().expect("pool").extend(stamps);
        }
    }

    fn count(&self, route: usize, ok: bool) {
        let mut answers = self.answers.lock().expect("answers");
        answers[route][usize::from(!ok)] += 1;
        let total: u64 = answers.iter().flatten().sum();
        if total.is_power_of_two() && total >= 1024 {
            let names = [
                "accounts", "credit", "purchase", "verify", "redeem", "posts", "votes",
            ];
            let line: Vec<String> = names
                .iter()
                .zip(answers.iter())
                .map(|(name, [ok, err])| format!("{name} {ok}/{err}"))
                .collect();
            eprintln!("request_body answers (2xx/4xx): {}", line.join(", "));
        }
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Replaces the placeholders of a body.
    fn substitute(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 200);
        let mut i = 0;
        while i < body.len() {
            if body[i] == b'$' && i + 1 < body.len() {
                let replacement = match body[i + 1] {
                    b'S' => self.pool.lock().expect("pool").pop(),
                    b'T' => Some(self.spent_stamp.clone()),
                    b'P' => Some(self.post_id.to_string()),
                    b'A' => Some(self.account_id.to_string()),
                    _ => None,
                };
                if let Some(r) = replacement {
                    out.extend_from_slice(r.as_bytes());
                    i += 2;
                    continue;
                }
            }
            out.push(body[i]);
            i += 1;
        }
        out
    }
}

const ROUTES: usize = 7;

/// One input, as the fuzz target runs it.
pub fn check(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let h = harness();
    h.runtime.block_on(check_async(h, data));
}

async fn check_async(h: &Harness, data: &[u8]) {
    let route = data[0] as usize % ROUTES;
    let flags = data[1];
    let raw_body = &data[2..];
    let wanted = raw_body.windows(2).filter(|w| w == b"$S").count();
    h.top_up(wanted).await;

    let path_id = match (flags >> 4) & 3 {
        0 if route == 1 => h.account_id.to_string(),
        0 => h.post_id.to_string(),
        1 => Uuid::new_v4().to_string(),
        2 => "not-a-uuid".to_string(),
        _ => "..%2F..%2Fadmin".to_string(),
    };
    let path = match route {
        0 => "/v1/accounts".to_string(),
        1 => format!("/v1/admin/accounts/{path_id}/credit"),
        2 => "/v1/stamps/purchase".to_string(),
        3 => "/v1/stamps/verify".to_string(),
        4 => "/v1/stamps/redeem".to_string(),
        5 => "/v1/posts".to_string(),
        _ => format!("/v1/posts/{path_id}/votes"),
    };
    let mut request = Request::builder().method(Method::POST).uri(&path);
    match flags & 3 {
        0 => request = request.header(header::CONTENT_TYPE, "application/json"),
        1 => {
            request = request.header(
                header::CONTENT_TYPE,
                "Application/Problem+JSON ; charset=utf-8",
            )
        }
        2 => request = request.header(header::CONTENT_TYPE, "text/plain"),
        _ => {}
    }
    match (flags >> 2) & 3 {
        0 => request = request.header(header::AUTHORIZATION, format!("Bearer {}", h.api_key)),
        1 => request = request.header(header::AUTHORIZATION, format!("bearer {}", h.admin_token)),
        2 => request = request.header(header::AUTHORIZATION, "Bearer ppk_00"),
        _ => {}
    }
    let idempotent = match (flags >> 6) & 3 {
        1 => {
            request = request.header("idempotency-key", "fuzz-fixed-key");
            true
        }
        2 => {
            request = request.header("idempotency-key", format!("fuzz-{}", h.next()));
            true
        }
        3 => {
            request = request.header("idempotency-key", "");
            true
        }
        _ => false,
    };
    let body = h.substitute(raw_body);
    let request = request.body(Body::from(body)).expect("request");

    let before = h.snapshot();
    let response = tower::ServiceExt::oneshot(h.router.clone(), request)
        .await
        .expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("response body");
    let after = h.snapshot();
    let text = String::from_utf8_lossy(&bytes);
    h.count(route, status.is_success());

    assert!(
        !status.is_server_error(),
        "POST {path} answered {status}: {text}"
    );
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("POST {path} answered {status} with non-JSON ({e}): {text}"));
    if status.as_u16() >= 400 {
        assert_eq!(
            content_type, "application/problem+json",
            "POST {path} answered {status}: {text}"
        );
        assert_eq!(json["status"], status.as_u16(), "{text}");
        assert!(
            json["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{text}"
        );
        assert!(
            json["title"].is_string() && json["detail"].is_string(),
            "{text}"
        );
        assert_eq!(
            before, after,
            "POST {path} answered {status} but changed state: {text}"
        );
    } else {
        assert!(
            content_type.starts_with("application/json"),
            "POST {path} answered {status} as {content_type:?}"
        );
        let grew = after.ledger_size - before.ledger_size;
        match route {
            // Accounts are not ledger entries (their credits are); verify writes nothing.
            0 => assert_eq!(grew, 0, "account creation wrote to the ledger: {text}"),
            3 => assert_eq!(grew, 0, "verify wrote to the ledger: {text}"),
            // A credit whose reference was used before, or a purchase whose Idempotency-Key
            // was, answers the first one again and writes nothing.
            1 => assert!(grew <= 1, "{text}"),
            2 if idempotent => assert!(grew <= 1, "{text}"),
            _ => assert_eq!(grew, 1, "POST {path} answered {status}: {text}"),
        }
        if let Some(index) = json["ledger_index"].as_u64() {
            if grew == 1 {
                assert_eq!(index, before.ledger_size, "{text}");
            } else {
                assert!(index < before.ledger_size, "{text}");
            }
        }
        assert!(
            status == StatusCode::OK || status == StatusCode::CREATED,
            "POST {path} answered {status}"
        );
    }
}
