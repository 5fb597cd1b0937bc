//! The independent auditor: an honest server passes; small fake ledger servers built here catch
//! a double spend, a spend of a never-sold stamp, a wrong purchase total, a negative balance,
//! a rewritten history, and in the economy wrong prices, mixed payers and wrong refunds. How a
//! later run goes on from the saved checker state is in `audit/incremental.rs`; receipts and
//! checkpoints proven by hand are in `audit/proofs.rs`, sold stamps read byte by byte in
//! `audit/stamps.rs`.

mod incremental;
mod proofs;
mod stamps;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use pennypost::keys::LedgerKey;
use pennypost::ledger::checkpoint;
use serde_json::{json, Value};

use crate::helpers::TestServer;
use crate::serve::audit_printed;

const ORIGIN: &str = "fake.example/log";

/// The `ledger size` an audit printed.
fn ledger_size(out: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix("ledger size"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ledger size in {out}"))
}

#[tokio::test]
async fn honest_server_passes_and_keeps_passing_as_it_grows() {
    let server = TestServer::start().await;
    let state = server.work_dir().join("audit.json");
    let (_key, stamps) = server.stamps(100, 5).await;
    server
        .post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamps[0], "context": "x"}),
        )
        .await;
    let (code, out) = audit_printed(&server.base_url, &state);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");
    assert!(out.contains("stamps issued        5"), "{out}");
    let (_, key) = server.get("/v1/ledger/key").await;
    let vkey = key["vkey"].as_str().expect("vkey");
    assert!(
        out.contains(&format!("pinned key           {vkey} (first use")),
        "{out}"
    );
    let key_id = vkey.split('+').nth(1).expect("key id");
    assert!(
        out.contains(&format!("  key id             {key_id}")),
        "{out}"
    );
    assert!(out.contains("  origin             "), "{out}");
    let first_size = ledger_size(&out);
    assert!(
        out.contains(&format!("checked entries      0 to {}", first_size - 1)),
        "{out}"
    );
    assert!(state.exists());
    assert!(state.with_extension("json.checker").exists());
    server
        .post(
            "/v1/posts",
            None,
            json!({"author": "a", "body": "b", "stamps": [stamps[1]]}),
        )
        .await;
    let (code, out) = audit_printed(&server.base_url, &state);
    assert_eq!(code, 0, "{out}");
    // The second run checks only what the server appended since the first.
    let size = ledger_size(&out);
    assert!(size > first_size, "{out}");
    let new = format!("{first_size} to {} ({})", size - 1, size - first_size);
    assert!(
        out.contains(&format!("pinned key           {key_id} (")),
        "{out}"
    );
    assert!(
        out.contains(&format!("already checked      {first_size} entries, root ")),
        "{out}"
    );
    assert!(
        out.contains(&format!("new entries          {new}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("checked entries      {new}, going on from ")),
        "{out}"
    );
    assert!(!out.contains("full re-check"), "{out}");
    assert!(
        out.contains("stamps issued        5"),
        "the totals are the whole log's: {out}"
    );
    let (status, audit) = server.get("/v1/audit").await;
    assert_eq!(status, 200);
    assert_eq!(audit["ok"], true, "{audit}");
    assert_eq!(audit["stamps_spent"], 2);
    assert_eq!(audit["stamps_outstanding"], 3);
    assert_eq!(audit["credits_total"], 100);
    assert_eq!(audit["purchases_total"], 5);
}

#[tokio::test]
async fn unreachable_server_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out) = audit_printed("http://127.0.0.1:9", &dir.path().join("s.json"));
    assert_eq!(code, 2, "{out}");
}

/// A ledger server we control: serves whatever entries the test puts in it, with a correctly
/// signed checkpoint over them, so only the content is wrong.
#[derive(Clone)]
struct Fake {
    entries: Arc<Mutex<Vec<String>>>,
    key: LedgerKey,
    /// What `GET /v1/audit` answers; by default a size the auditor will not match.
    audit: Arc<Mutex<Option<Value>>>,
    /// Entries served by `GET /v1/ledger/entries` so far, over all requests.
    served: Arc<AtomicU64>,
    /// The `vkey` `GET /v1/ledger/key` shows, when a test makes it lie about the signing key.
    shown_vkey: Arc<Mutex<Option<String>>>,
    /// The origin the checkpoint (and the key) names, when a test changes it from [`ORIGIN`].
    origin: Arc<Mutex<Option<String>>>,
    /// An entry served at an index in place of the one the checkpoint is signed over.
    swapped: Arc<Mutex<Option<(usize, String)>>>,
}

struct Hashes(Vec<tlog_tiles::Hash>);

impl tlog_tiles::HashReader for Hashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                self.0
                    .get(*i as usize)
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl Fake {
    fn hashes(&self) -> Hashes {
        let mut hashes = Hashes(Vec::new());
        for (n, entry) in self.entries.lock().expect("lock").iter().enumerate() {
            let new =
                tlog_tiles::stored_hashes(n as u64, entry.as_bytes(), &hashes).expect("hashes");
            hashes.0.extend(new);
        }
        hashes
    }

    fn size(&self) -> u64 {
        self.entries.lock().expect("lock").len() as u64
    }
}

async fn fake_key(State(fake): State<Fake>) -> Json<Value> {
    let public = fake.key.signing.verifying_key();
    let shown = fake.shown_vkey.lock().expect("lock").clone();
    let origin = fake.origin.lock().expect("lock").clone();
    Json(json!({
        "origin": origin.unwrap_or_else(|| ORIGIN.to_string()),
        "name": fake.key.name,
        "vkey": shown.unwrap_or_else(|| checkpoint::verifier_key(&fake.key.name, &public)),
    }))
}

async fn fake_checkpoint(State(fake): State<Fake>) -> String {
    let size = fake.size();
    let root = tlog_tiles::tree_hash(size, &fake.hashes()).expect("root");
    let origin = fake.origin.lock().expect("lock").clone();
    let origin = origin.as_deref().unwrap_or(ORIGIN);
    checkpoint::sign(origin, size, &root, &fake.key).expect("sign")
}

async fn fake_entries(State(fake): State<Fake>, Query(q): Query<HashMap<String, u64>>) -> String {
    let start = q.get("start").copied().unwrap_or(0) as usize;
    let limit = q.get("limit").copied().unwrap_or(1000) as usize;
    let mut entries = fake.entries.lock().expect("lock").clone();
    if let Some((index, entry)) = fake.swapped.lock().expect("lock").clone() {
        entries[index] = entry;
    }
    let page: Vec<String> = entries
        .iter()
        .skip(start)
        .take(limit)
        .map(|e| format!("{e}\n"))
        .collect();
    fake.served.fetch_add(page.len() as u64, Ordering::SeqCst);
    page.concat()
}

async fn fake_consistency(
    State(fake): State<Fake>,
    Query(q): Query<HashMap<String, u64>>,
) -> Json<Value> {
    let proof = tlog_tiles::prove_tree(q["to"], q["from"], &fake.hashes()).unwrap_or_default();
    Json(json!({"hashes": proof.iter().map(|h| STANDARD.encode(h.0)).collect::<Vec<_>>()}))
}

async fn fake_audit(State(fake): State<Fake>) -> Json<Value> {
    // Unless a test says otherwise, a size the auditor will not match, so it does not compare
    // totals with this fake.
    let answer = fake.audit.lock().expect("lock").clone();
    Json(answer.unwrap_or_else(|| json!({"ok": true, "ledger_size": 0})))
}

async fn start_fake(entries: Vec<String>) -> (String, Fake) {
    let fake = Fake {
        entries: Arc::new(Mutex::new(entries)),
        key: LedgerKey {
            name: ORIGIN.to_string(),
            signing: SigningKey::from_bytes(&[5u8; 32]),
        },
        audit: Arc::new(Mutex::new(None)),
        served: Arc::new(AtomicU64::new(0)),
        shown_vkey: Arc::new(Mutex::new(None)),
        origin: Arc::new(Mutex::new(None)),
        swapped: Arc::new(Mutex::new(None)),
    };
    let app = Router::new()
        .route("/v1/ledger/key", get(fake_key))
        .route("/v1/ledger/checkpoint", get(fake_checkpoint))
        .route("/v1/ledger/entries", get(fake_entries))
        .route("/v1/ledger/proof/consistency", get(fake_consistency))
        .route("/v1/audit", get(fake_audit))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

/// SHA-256 of the 32 zero bytes of the key entry's public key, first 8 bytes.
const KID: &str = "66687aadf862bd77";
const ACCOUNT: &str = "11111111-1111-4111-8111-111111111111";
const STAMP_A: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const STAMP_B: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
const STAMP_X: &str = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";

fn key_entry(index: u64) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"2026-01-01T00:00:00Z","kind":"key","kid":"{KID}","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","status":"active"}}"#
    )
}

fn credit(index: u64, amount: u64, reference: &str) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"2026-01-01T00:00:01Z","kind":"credit","account":"{ACCOUNT}","amount":{amount},"currency":"cents","reference_sha256":"{reference}"}}"#
    )
}

fn purchase(index: u64, count: u64, total: u64, ids: &[&str]) -> String {
    let ids: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
    format!(
        r#"{{"v":1,"index":{index},"time":"2026-01-01T00:00:02Z","kind":"purchase","account":"{ACCOUNT}","purchase_id":"22222222-2222-4222-8222-222222222222","count":{count},"unit_price":1,"total":{total},"kid":"{KID}","issued_at":"2026-01-01T00:00:02Z","expires_at":"2099-01-01T00:00:00Z","stamp_ids":[{}]}}"#,
        ids.join(",")
    )
}

fn spend(index: u64, id: &str) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"2026-01-01T00:00:03Z","kind":"spend","stamp_ids":["{id}"],"action":"redeem","target":"{}"}}"#,
        "ab".repeat(32)
    )
}

fn reference(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// An honest little log: key, credit 10, purchase of A and B, spend of A.
fn honest() -> Vec<String> {
    vec![
        key_entry(0),
        credit(1, 10, &reference(1)),
        purchase(2, 2, 2, &[STAMP_A, STAMP_B]),
        spend(3, STAMP_A),
    ]
}

async fn audit_fake(entries: Vec<String>) -> (i32, String) {
    let (url, _fake) = start_fake(entries).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    tokio::task::spawn_blocking(move || audit_printed(&url, &state))
        .await
        .expect("join")
}

#[tokio::test]
async fn fake_honest_log_passes() {
    let (code, out) = audit_fake(honest()).await;
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn catches_a_double_spend() {
    let mut log = honest();
    log.push(spend(4, STAMP_A));
    let (code, out) = audit_fake(log).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("stamp_spent_twice"), "{out}");
    assert!(out.contains("entry        4"), "names the entry: {out}");
}

#[tokio::test]
async fn catches_two_active_keys() {
    // What a server that silently replaced a missing key file wrote: a second active key,
    // the first never retired.
    use sha2::Digest as _;
    let second = [3u8; 32];
    let kid = hex::encode(&sha2::Sha256::digest(second)[..8]);
    let mut log = honest();
    log.push(format!(
        r#"{{"v":1,"index":4,"time":"2026-01-01T00:00:04Z","kind":"key","kid":"{kid}","public_key":"{}","status":"active"}}"#,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(second)
    ));
    let (code, out) = audit_fake(log).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("two_active_keys"), "{out}");
    assert!(out.contains(&kid), "names the keys: {out}");
}

#[tokio::test]
async fn catches_a_spend_of_a_never_sold_stamp() {
    let mut log = honest();
    log.push(spend(4, STAMP_X));
    let (code, out) = audit_fake(log).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("spend_of_unsold_stamp"), "{out}");
}

#[tokio::test]
async fn catches_a_wrong_purchase_total() {
    let log = vec![
        key_entry(0),
        credit(1, 10, &reference(1)),
        purchase(2, 2, 1, &[STAMP_A, STAMP_B]),
    ];
    let (code, out) = audit_fake(log).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("purchase_total_mismatch"), "{out}");
}

#[tokio::test]
async fn catches_a_negative_balance() {
    let log = vec![
        key_entry(0),
        credit(1, 1, &reference(1)),
        purchase(2, 2, 2, &[STAMP_A, STAMP_B]),
    ];
    let (code, out) = audit_fake(log).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("negative_balance"), "{out}");
}

#[tokio::test]
async fn catches_a_rewritten_history() {
    let (url, fake) = start_fake(honest()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (u, s) = (url.clone(), state.clone());
    let (code, out) = tokio::task::spawn_blocking(move || audit_printed(&u, &s))
        .await
        .expect("join");
    assert_eq!(code, 0, "first audit pins the checkpoint: {out}");

    // The operator rewrites entry 1 (a smaller credit) and appends, keeping every invariant
    // that a fresh auditor would check: only the remembered checkpoint can tell.
    {
        let mut entries = fake.entries.lock().expect("lock");
        entries[1] = credit(1, 5, &reference(1));
        entries.push(credit(4, 5, &reference(2)).replace("00:00:01Z", "00:00:09Z"));
    }
    let (u, s) = (url.clone(), state.clone());
    let (code, out) = tokio::task::spawn_blocking(move || audit_printed(&u, &s))
        .await
        .expect("join");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("inconsistent_history") && out.contains("rewritten_history"),
        "{out}"
    );
    // The saved checker cannot go on from a checkpoint the log no longer extends: every entry
    // is checked again, which is what shows where the history was rewritten.
    assert!(
        out.contains("full re-check        the checker state cannot be used: the remembered checkpoint is not a prefix of the new one"),
        "{out}"
    );
    assert!(out.contains("checked entries      0 to 4 (5)"), "{out}");

    // A fresh auditor with no memory sees a consistent log: that is why the state matters.
    let fresh = dir.path().join("fresh.json");
    let (code, out) = tokio::task::spawn_blocking(move || audit_printed(&url, &fresh))
        .await
        .expect("join");
    assert_eq!(code, 0, "{out}");
}

/// Audits the fake once with a state file, then lets `change` alter it, and audits again:
/// (exit code, output) of the second run.
async fn audit_twice(change: impl FnOnce(&Fake)) -> (i32, String) {
    let (url, fake) = start_fake(honest()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (u, s) = (url.clone(), state.clone());
    let (code, out) = tokio::task::spawn_blocking(move || audit_printed(&u, &s))
        .await
        .expect("join");
    assert_eq!(code, 0, "the first audit pins the checkpoint: {out}");
    change(&fake);
    tokio::task::spawn_blocking(move || audit_printed(&url, &state))
        .await
        .expect("join")
}

/// Invariant 2, "the log only grew": a checkpoint smaller than the remembered one.
#[tokio::test]
async fn catches_a_log_that_shrank() {
    let (code, out) = audit_twice(|fake| {
        fake.entries.lock().expect("lock").pop();
    })
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("log_shrank"), "{out}");
}

/// A checkpoint of another origin, even under the pinned key, is not this log's next one.
#[tokio::test]
async fn catches_a_changed_origin() {
    let (code, out) = audit_twice(|fake| {
        *fake.origin.lock().expect("lock") = Some("other.example/log".to_string());
    })
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("origin_changed"), "{out}");
}

/// Invariant 2, "the Merkle root of all entries equals the checkpoint's root": entries served
/// other than the ones signed, to an auditor with no memory.
#[tokio::test]
async fn catches_entries_that_do_not_hash_to_the_signed_root() {
    let (url, fake) = start_fake(honest()).await;
    *fake.swapped.lock().expect("lock") = Some((1, credit(1, 11, &reference(1))));
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (code, out) = tokio::task::spawn_blocking(move || audit_printed(&url, &state))
        .await
        .expect("join");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("root_mismatch"), "{out}");
}

#[tokio::test]
async fn catches_a_forged_checkpoint_signature() {
    let (url, fake) = start_fake(honest()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (u, s) = (url.clone(), state.clone());
    let (code, _) = tokio::task::spawn_blocking(move || audit_printed(&u, &s))
        .await
        .expect("join");
    assert_eq!(code, 0);
    // The pinned key is another one, and the server shows that key too, but its checkpoint
    // is signed by its own: the signature does not verify under the pinned key.
    let mut pinned: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    let other = SigningKey::from_bytes(&[6u8; 32]).verifying_key();
    let other_vkey = checkpoint::verifier_key(ORIGIN, &other);
    pinned["vkey"] = json!(other_vkey);
    std::fs::write(&state, pinned.to_string()).expect("write");
    *fake.shown_vkey.lock().expect("lock") = Some(other_vkey);
    let (code, out) = tokio::task::spawn_blocking(move || audit_printed(&url, &state))
        .await
        .expect("join");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bad_checkpoint_signature"), "{out}");
}

/// A state file pinned to another server's key (or a key since replaced) is named as such
/// before anything else: not "already checked N entries" of the other server, then a bad
/// signature.
#[tokio::test]
async fn a_state_pinned_to_another_key_says_so_first() {
    let (url, _fake) = start_fake(honest()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (u, s) = (url.clone(), state.clone());
    let (code, _) = tokio::task::spawn_blocking(move || audit_printed(&u, &s))
        .await
        .expect("join");
    assert_eq!(code, 0);
    let mut pinned: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    let served_vkey = pinned["vkey"].as_str().expect("vkey").to_string();
    let other = SigningKey::from_bytes(&[6u8; 32]).verifying_key();
    let other_vkey = checkpoint::verifier_key(ORIGIN, &other);
    pinned["vkey"] = json!(other_vkey);
    std::fs::write(&state, pinned.to_string()).expect("write");
    let before = std::fs::read(&state).expect("state");
    let path = state.clone();
    let (code, out) = tokio::task::spawn_blocking(move || audit_printed(&url, &path))
        .await
        .expect("join");
    assert_eq!(code, 1, "{out}");
    let wanted = format!(
        "this server's checkpoint key {served_vkey} is not the key pinned in {} ({other_vkey}): \
         a different server, or a rotated key; see operations.md on re-pinning",
        state.display()
    );
    assert!(out.contains(&wanted), "{out}");
    assert!(out.contains("checkpoint_key_changed"), "{out}");
    for said_before in ["already checked", "bad_checkpoint_signature", "ledger size"] {
        assert!(!out.contains(said_before), "{said_before}: {out}");
    }
    assert_eq!(std::fs::read(&state).expect("state"), before, "FILE kept");
}

/// The ledger as C2SP tlog-tiles: level-0 hash tiles hold the leaf hashes of the entries, entry
/// bundles hold the entries length-prefixed, and the root recomputed from tiles matches the
/// checkpoint.
#[tokio::test]
async fn ledger_is_served_as_tlog_tiles() {
    let server = TestServer::start().await;
    server.stamps(100, 3).await;
    let (_, entries) = server.get_text("/v1/ledger/entries").await;
    let entries: Vec<&str> = entries.lines().collect();
    let n = entries.len();
    assert_eq!(n, 4, "key, policy, credit, purchase");
    let get_bytes = |path: String| {
        let client = server.client.clone();
        let url = server.url(&path);
        async move {
            let response = client.get(url).send().await.expect("get");
            (
                response.status().as_u16(),
                response.bytes().await.expect("bytes").to_vec(),
            )
        }
    };
    let (status, tile) = get_bytes(format!("/tile/0/000.p/{n}")).await;
    assert_eq!(status, 200);
    assert_eq!(tile.len(), 32 * n);
    let mut leaves = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let leaf = tlog_tiles::record_hash(entry.as_bytes());
        assert_eq!(&tile[32 * i..32 * (i + 1)], &leaf.0, "leaf {i}");
        leaves.push(leaf);
    }
    let (status, bundle) = get_bytes(format!("/tile/entries/000.p/{n}")).await;
    assert_eq!(status, 200);
    let mut at = 0;
    for entry in &entries {
        let length = u16::from_be_bytes([bundle[at], bundle[at + 1]]) as usize;
        assert_eq!(&bundle[at + 2..at + 2 + length], entry.as_bytes());
        at += 2 + length;
    }
    assert_eq!(at, bundle.len());
    // Root of 4 leaves: hash(hash(l0, l1), hash(l2, l3)).
    let root = tlog_tiles::node_hash(
        tlog_tiles::node_hash(leaves[0], leaves[1]),
        tlog_tiles::node_hash(leaves[2], leaves[3]),
    );
    let (_, checkpoint) = server.get_text("/checkpoint").await;
    assert!(
        checkpoint.contains(&STANDARD.encode(root.0)),
        "{checkpoint}"
    );
    // Tiles beyond the log do not exist.
    for path in [
        "/tile/0/000.p/5",
        "/tile/0/000",
        "/tile/1/000.p/1",
        "/tile/entries/001",
        "/tile/x/y",
    ] {
        let (status, _) = get_bytes(path.to_string()).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn audit_answers_503_with_progress_while_far_behind_and_the_auditor_waits_for_it() {
    // With a lag limit of 1 entry, any write the background check (every 2 s) has not read
    // yet puts GET /v1/audit over the limit.
    let server = TestServer::start_with(&["--audit-lag-max", "1"]).await;
    let url = format!("{}/v1/audit", server.base_url);
    let mut refused = None;
    for round in 0..20 {
        let (_key, stamps) = server.stamps(100, 5).await;
        for (i, stamp) in stamps.iter().enumerate() {
            let (status, body) = server.redeem(stamp, &format!("r{round}/{i}")).await;
            assert_eq!(status, 201, "{body}");
        }
        let response = server.client.get(&url).send().await.expect("send");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii").to_string());
        let body: Value = response.json().await.expect("json");
        if status == 503 {
            refused = Some((body, retry_after));
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ok"], true, "{body}");
    }
    let (body, retry_after) = refused.expect("never behind by more than 1 entry in 20 rounds");
    crate::helpers::assert_problem(503, &body, 503, "audit_catching_up");
    assert_eq!(body["title"], "Ledger check catching up", "{body}");
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains("reached entry"), "{detail}");
    let wait: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=10).contains(&wait), "Retry-After {wait}");

    // The auditor asks again after Retry-After instead of giving up, and passes.
    let state = server.work_dir().join("audit.json");
    let (code, out) = audit_printed(&server.base_url, &state);
    assert_eq!(code, 0, "{out}");

    // Once the background check has caught up, the answer is the full report.
    let mut answer = None;
    for _ in 0..50 {
        let (status, body) = server.get("/v1/audit").await;
        if status == 200 {
            answer = Some(body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let body = answer.expect("caught up within 10 s");
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(
        body["stamps_spent"].as_u64(),
        body["stamps_issued"].as_u64(),
        "{body}"
    );
}

// ---------------------------------------------------------------- the economy

const PAYER_B: &str = "44444444-4444-4444-8444-444444444444";
const PAYER_C: &str = "55555555-5555-4555-8555-555555555555";
const POST_1: &str = "99999999-9999-4999-8999-999999999991";
const POST_2: &str = "99999999-9999-4999-8999-999999999992";

/// An entry written at whatever index it ends up at.
type At = Box<dyn Fn(u64) -> String>;

/// Stamp `n` of the economy logs: A holds 1 to 10 (sold at 2), B 11 to 20, C 21 to 30.
fn sid(n: u32) -> String {
    format!("aaaaaaaa-0000-4000-8000-{n:012x}")
}

fn quoted(stamps: &[u32]) -> String {
    let ids: Vec<String> = stamps.iter().map(|n| format!("\"{}\"", sid(*n))).collect();
    ids.join(",")
}

fn credit_of(account: &'static str, n: u8) -> At {
    Box::new(move |i| {
        format!(
            r#"{{"v":1,"index":{i},"time":"2026-01-01T00:00:01Z","kind":"credit","account":"{account}","amount":100,"currency":"cents","reference_sha256":"{}"}}"#,
            reference(n)
        )
    })
}

fn purchase_of(account: &'static str, n: u32, unit_price: u64, stamps: Vec<u32>) -> At {
    Box::new(move |i| {
        let count = stamps.len() as u64;
        format!(
            r#"{{"v":1,"index":{i},"time":"2026-01-01T00:00:02Z","kind":"purchase","account":"{account}","purchase_id":"eeeeeeee-0000-4000-8000-{n:012x}","count":{count},"unit_price":{unit_price},"total":{},"kid":"{KID}","issued_at":"2026-01-01T00:00:02Z","expires_at":"2099-01-01T00:00:00Z","stamp_ids":[{}]}}"#,
            count * unit_price,
            quoted(&stamps)
        )
    })
}

/// The ECONOMY defaults, except that two voters earn a refund.
fn policy() -> At {
    Box::new(|i| {
        format!(
            r#"{{"v":1,"index":{i},"time":"2026-01-01T00:00:03Z","kind":"policy","currency":"cents","stamp_price":1,"post_cost":1,"vote_cost":1,"repeat_window_secs":600,"repeat_factor":2,"vote_pricing":"quadratic","refund_voters":2}}"#
        )
    })
}

fn post_of(post: &'static str, stamps: &'static [u32]) -> At {
    Box::new(move |i| {
        format!(
            r#"{{"v":1,"index":{i},"time":"2026-01-01T00:01:00Z","kind":"spend","stamp_ids":[{}],"action":"post","target":"{post}"}}"#,
            quoted(stamps)
        )
    })
}

fn vote_of(post: &'static str, direction: &'static str, stamps: &'static [u32]) -> At {
    Box::new(move |i| {
        format!(
            r#"{{"v":1,"index":{i},"time":"2026-01-01T00:02:00Z","kind":"spend","stamp_ids":[{}],"action":"vote","target":"{post}","direction":"{direction}"}}"#,
            quoted(stamps)
        )
    })
}

fn refund_of(post: &'static str, amount: u64) -> At {
    Box::new(move |i| {
        format!(
            r#"{{"v":1,"index":{i},"time":"2026-01-01T00:02:00Z","kind":"refund","account":"{ACCOUNT}","post_id":"{post}","amount":{amount},"currency":"cents"}}"#
        )
    })
}

/// An honest economy: A posts twice within the window (1 stamp, then 2), B and C up-vote the
/// first post (the second voter earns A its base postage back, 1 stamp at 2), B votes again.
fn economy() -> Vec<At> {
    vec![
        Box::new(key_entry),
        credit_of(ACCOUNT, 1),
        credit_of(PAYER_B, 2),
        credit_of(PAYER_C, 3),
        purchase_of(ACCOUNT, 1, 2, (1..=10).collect()),
        purchase_of(PAYER_B, 2, 1, (11..=20).collect()),
        purchase_of(PAYER_C, 3, 1, (21..=30).collect()),
        policy(),
        post_of(POST_1, &[1]),
        post_of(POST_2, &[2, 3]),
        vote_of(POST_1, "up", &[11]),
        vote_of(POST_1, "up", &[21]),
        refund_of(POST_1, 2),
        vote_of(POST_1, "down", &[12, 13, 14]),
    ]
}

/// Index of the completing up-vote and of its refund in [`economy`].
const COMPLETING: usize = 11;
const REFUND: usize = 12;

fn written(log: Vec<At>) -> Vec<String> {
    log.iter().enumerate().map(|(i, at)| at(i as u64)).collect()
}

/// The report the honest server would serve for `entries`, edited by `edit`.
fn served_report(entries: &[String], edit: impl FnOnce(&mut Value)) -> Value {
    let mut checker = pennypost::ledger::check::LedgerChecker::new();
    for entry in entries {
        checker.push(entry.as_bytes());
    }
    let mut report = serde_json::to_value(checker.report(0)).expect("json");
    edit(&mut report);
    report
}

/// Audits a fake serving `entries` and, for `GET /v1/audit`, `report`.
async fn audit_fake_reporting(entries: Vec<String>, report: Value) -> (i32, String) {
    let (url, fake) = start_fake(entries).await;
    *fake.audit.lock().expect("lock") = Some(report);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    tokio::task::spawn_blocking(move || audit_printed(&url, &state))
        .await
        .expect("join")
}

#[tokio::test]
async fn fake_honest_economy_passes_with_its_totals() {
    let entries = written(economy());
    let report = served_report(&entries, |_| {});
    assert_eq!(report["refunds_total"], 2, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    let (code, out) = audit_fake_reporting(entries, report).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("refunds total        2"), "{out}");
}

#[tokio::test]
async fn an_old_server_without_refunds_total_is_not_faulted() {
    let entries = written(economy());
    let report = served_report(&entries, |r| {
        r.as_object_mut().expect("object").remove("refunds_total");
    });
    let (code, out) = audit_fake_reporting(entries, report).await;
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn catches_a_server_hiding_refunds_in_its_totals() {
    let entries = written(economy());
    let report = served_report(&entries, |r| r["refunds_total"] = json!(0));
    let (code, out) = audit_fake_reporting(entries, report).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("audit_totals_mismatch"), "{out}");
    assert!(out.contains("refunds_total"), "{out}");
}

/// Audits the economy log as `change` leaves it: exit 1, naming `code`.
async fn assert_caught(change: impl FnOnce(&mut Vec<At>), code: &str) {
    let mut log = economy();
    change(&mut log);
    let (exit, out) = audit_fake(written(log)).await;
    assert_eq!(exit, 1, "{out}");
    assert!(out.contains(code), "{code}: {out}");
}

#[tokio::test]
async fn catches_an_over_charge() {
    // A's second post within the window costs 2, not 3.
    assert_caught(|log| log[9] = post_of(POST_2, &[2, 3, 4]), "wrong_price").await;
}

#[tokio::test]
async fn catches_an_under_charge() {
    assert_caught(|log| log[9] = post_of(POST_2, &[2]), "wrong_price").await;
    // B's second vote on the post costs 3, not 1.
    assert_caught(
        |log| log[13] = vote_of(POST_1, "down", &[12]),
        "wrong_price",
    )
    .await;
}

#[tokio::test]
async fn catches_mixed_payers() {
    assert_caught(
        |log| log[13] = vote_of(POST_1, "down", &[12, 22, 23]),
        "mixed_payers",
    )
    .await;
}

#[tokio::test]
async fn catches_a_skipped_refund() {
    assert_caught(|log| drop(log.remove(REFUND)), "missing_refund").await;
    let mut log = economy();
    drop(log.remove(REFUND));
    let (_, out) = audit_fake(written(log)).await;
    assert!(out.contains(&format!("entry {COMPLETING:>8}")), "{out}");
}

#[tokio::test]
async fn catches_a_refund_paid_twice() {
    assert_caught(|log| log.push(refund_of(POST_1, 2)), "unexpected_refund").await;
}

#[tokio::test]
async fn catches_a_refund_of_the_wrong_amount() {
    // The whole price of the first post was 1 stamp at 2: not 1, not 3.
    assert_caught(
        |log| log[REFUND] = refund_of(POST_1, 1),
        "wrong_refund_amount",
    )
    .await;
    assert_caught(
        |log| log[REFUND] = refund_of(POST_1, 3),
        "wrong_refund_amount",
    )
    .await;
}
