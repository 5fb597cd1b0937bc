//! The backends under test, the context a case runs in, and the commands cases build.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use pennypost::domain::{CreditSource, DebitReason, StampRef};
use pennypost::keys::{public_key_text, KeyStatus};
use pennypost::rules::{Applied, Command, Outcome, Refusal, SpendFor};
use pennypost::stamp::Kid;
use pennypost::store::{MemoryStore, PgLimits, PgStore, SledStore, Store};
use pennypost::time::Timestamp;
use tempfile::TempDir;
use uuid::Uuid;

use crate::observe::{self, Apply as _, Ids, Snapshot};

pub const CURRENCY: &str = "cents";
/// The time most cases run at (2023-11-14).
pub const T0: i64 = 1_700_000_000;
/// The unit price of [`purchase`] unless set.
pub const PRICE: u64 = 5;
/// The lifetime of stamps from [`purchase`] unless set, in seconds.
pub const TTL: i64 = 3600;

// ------------------------------------------------------------------------------- backends

/// A store implementation the suite runs against. A new backend implements this and adds one
/// `conformance!` line in `main.rs`.
pub trait Backend {
    /// A new, empty store keeping its data (if any) under `dir`, which is empty and is removed
    /// after the case. A server backend can name its database after `dir`.
    fn open(&self, dir: &Path) -> Arc<dyn Store>;
    /// The store of `dir` opened again after every handle to it was dropped, as after a crash
    /// or a restart; `None` when the backend keeps nothing past its handles.
    fn reopen(&self, dir: &Path) -> Option<Arc<dyn Store>>;
    /// Whether [`Backend::reopen`] finds anything. When not (the in-memory store), a case's
    /// reopen keeps the store as it is and the case checks nothing more of durability.
    fn persists(&self) -> bool {
        true
    }
    /// Called once the case is over and its store dropped: a server backend drops the
    /// database it made for `dir`.
    fn close(&self, dir: &Path) {
        let _ = dir;
    }
}

/// The embedded sled backend.
pub struct SledBackend;

impl Backend for SledBackend {
    fn open(&self, dir: &Path) -> Arc<dyn Store> {
        Arc::new(SledStore::open(dir).expect("open a new sled store"))
    }

    fn reopen(&self, dir: &Path) -> Option<Arc<dyn Store>> {
        let store = retry_while_locked(|| SledStore::open(dir))
            .unwrap_or_else(|e| panic!("reopen the sled store: {e}"));
        Some(Arc::new(store))
    }
}

/// PostgreSQL: each case gets a fresh database of its own on the tests' server
/// (`PENNYPOST_TEST_DATABASE_URL`, or a throwaway cluster; see `tests/support/pg.rs`), dropped
/// after the case.
#[derive(Default)]
pub struct PostgresBackend {
    databases:
        std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, crate::pg::TestDatabase>>,
}

impl PostgresBackend {
    fn url(&self, dir: &Path) -> String {
        let mut databases = self.databases.lock().expect("databases");
        databases
            .entry(dir.to_path_buf())
            .or_insert_with(crate::pg::TestDatabase::new)
            .url
            .clone()
    }
}

/// The pool of a case's store: the concurrency cases run 8 threads at once.
fn case_limits() -> PgLimits {
    PgLimits {
        pool_size: 10,
        ..PgLimits::default()
    }
}

impl Backend for PostgresBackend {
    fn open(&self, dir: &Path) -> Arc<dyn Store> {
        let url = self.url(dir);
        Arc::new(PgStore::open(&url, &case_limits()).expect("open a new PostgreSQL store"))
    }

    fn reopen(&self, dir: &Path) -> Option<Arc<dyn Store>> {
        let url = self.url(dir);
        let store = PgStore::open(&url, &case_limits())
            .unwrap_or_else(|e| panic!("reopen the PostgreSQL store: {e}"));
        Some(Arc::new(store))
    }

    fn close(&self, dir: &Path) {
        let database = self.databases.lock().expect("databases").remove(dir);
        drop(database);
    }
}

/// The in-memory backend: nothing persists.
pub struct MemoryBackend;

impl Backend for MemoryBackend {
    fn open(&self, _dir: &Path) -> Arc<dyn Store> {
        Arc::new(MemoryStore::new())
    }

    fn reopen(&self, _dir: &Path) -> Option<Arc<dyn Store>> {
        None
    }

    fn persists(&self) -> bool {
        false
    }
}

// Runs an open again while it fails on sled's file lock, which sled's background threads may
// hold for a moment after the last handle was dropped: the one retry of every test binary.
#[path = "../support/sled_lock.rs"]
mod sled_lock;
pub use sled_lock::retry_while_locked;

// ------------------------------------------------------------------------------- a case

/// What a case works with: a new store of the backend, and the ids its commands named.
pub struct Ctx<'b> {
    backend: &'b dyn Backend,
    dir: TempDir,
    store: Option<Arc<dyn Store>>,
    ids: RefCell<Ids>,
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        drop(self.store.take());
        self.backend.close(&self.dir.path().join("store"));
    }
}

/// Runs one case on a new store of `backend`, then audits the ledger it left: entries
/// `0..size` parse with consecutive indexes and times that never go back, the ledger checker
/// finds nothing wrong, and the root of the stored hashes is the checker's root.
pub fn run(backend: &dyn Backend, case: fn(&mut Ctx)) {
    let mut ctx = Ctx::new(backend);
    case(&mut ctx);
    if let Err(e) = observe::audit(ctx.store()) {
        panic!("the ledger after the case: {e}");
    }
}

impl<'b> Ctx<'b> {
    pub fn new(backend: &'b dyn Backend) -> Ctx<'b> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = backend.open(&dir.path().join("store"));
        Ctx {
            backend,
            dir,
            store: Some(store),
            ids: RefCell::new(Ids::default()),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_deref().expect("the store is open")
    }

    /// A handle to share with threads or a committer.
    pub fn shared(&self) -> Arc<dyn Store> {
        self.store.clone().expect("the store is open")
    }

    /// Another new, empty store of the same backend, to compare with.
    pub fn another(&self) -> Ctx<'b> {
        Ctx::new(self.backend)
    }

    /// Syncs, drops the store and opens it again from its data, as after a crash; `false`
    /// (with the store kept as it was) when the backend does not persist.
    pub fn reopen(&mut self) -> bool {
        self.store().sync().expect("sync before the reopen");
        if !self.backend.persists() {
            return false;
        }
        let store = self.store.take().expect("the store is open");
        // Wait for every other handle (threads, a committer's writer) to be dropped.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&store) > 1 {
            assert!(
                Instant::now() < deadline,
                "another handle kept the store open"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(store);
        let store = self.backend.reopen(&self.dir.path().join("store"));
        self.store = Some(store.expect("a backend that persists reopens"));
        true
    }

    /// Applies a batch (it must not fail as storage), noting the ids it names.
    #[track_caller]
    pub fn apply(&self, batch: &[Command], now: Timestamp) -> Vec<Applied> {
        let mut ids = self.ids.borrow_mut();
        batch.iter().for_each(|c| ids.note(c));
        drop(ids);
        let results = self.store().apply(batch, now).expect("apply the batch");
        assert_eq!(results.len(), batch.len(), "one result per command");
        // What the writer records as durable after the batch: the whole ledger, when this
        // process is the only writer.
        self.store().sync().expect("sync");
        assert_eq!(
            self.store().synced_size().expect("synced size"),
            self.size(),
            "the size after a batch is the ledger's size"
        );
        results
    }

    /// Applies one command that must be accepted, and returns what it produced.
    #[track_caller]
    pub fn ok(&self, command: Command, now: Timestamp) -> Outcome {
        match self.apply(std::slice::from_ref(&command), now).remove(0) {
            Ok(outcome) => outcome,
            Err(refusal) => panic!("{command:?} was refused: {refusal:?}"),
        }
    }

    /// Applies commands that must all be accepted, one batch each.
    #[track_caller]
    pub fn all_ok(&self, commands: impl IntoIterator<Item = Command>, now: Timestamp) {
        for command in commands {
            self.ok(command, now);
        }
    }

    /// Applies `command`, which must be refused with exactly `want`, and checks that it changed
    /// nothing anyone can observe.
    #[track_caller]
    pub fn refused(&self, command: Command, now: Timestamp, want: Refusal) {
        self.same_after(command, now, Err(want));
    }

    /// Applies `command`, which must answer exactly `want` and change nothing observable (an
    /// idempotent replay, or a refusal).
    #[track_caller]
    pub fn same_after(&self, command: Command, now: Timestamp, want: Applied) {
        self.ids.borrow_mut().note(&command);
        let before = self.snapshot();
        let got = self.apply(std::slice::from_ref(&command), now).remove(0);
        assert_eq!(got, want, "{command:?}");
        assert_eq!(
            self.snapshot(),
            before,
            "{command:?} answered {got:?} but changed the store"
        );
    }

    /// Everything observable about the ids named so far.
    #[track_caller]
    pub fn snapshot(&self) -> Snapshot {
        observe::snapshot(self.store(), &self.ids.borrow()).expect("read a snapshot")
    }

    /// Notes ids to include in snapshots without applying anything.
    pub fn note(&self, command: &Command) {
        self.ids.borrow_mut().note(command);
    }

    #[track_caller]
    pub fn size(&self) -> u64 {
        self.store().ledger_size().expect("ledger size")
    }

    /// Entry `index` as JSON.
    #[track_caller]
    pub fn entry(&self, index: u64) -> serde_json::Value {
        let entries = self.store().entries(index, 1).expect("entries");
        let entry = entries.first().expect("the entry exists");
        serde_json::from_slice(entry).expect("an entry is JSON")
    }

    #[track_caller]
    pub fn account(&self, account_id: Uuid) -> pennypost::domain::Account {
        self.store()
            .account(account_id)
            .expect("read an account")
            .expect("the account exists")
    }

    #[track_caller]
    pub fn stamp(&self, stamp_id: Uuid) -> Option<pennypost::domain::StampRecord> {
        self.store().stamp(stamp_id).expect("read a stamp")
    }

    /// Whether the stamp was sold and is spent.
    #[track_caller]
    pub fn is_spent(&self, stamp_id: Uuid) -> bool {
        self.stamp(stamp_id).is_some_and(|s| s.spent.is_some())
    }

    #[track_caller]
    pub fn post(&self, post_id: Uuid) -> Option<pennypost::domain::Post> {
        self.store().post(post_id).expect("read a post")
    }
}

// ------------------------------------------------------------------------------- commands

/// `T0 + secs`.
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs)
}

pub fn account(i: u8) -> Uuid {
    Uuid::from_u128(0xacc0_0000 + u128::from(i))
}

pub fn api_key(i: u8) -> [u8; 32] {
    [0x10 + i; 32]
}

pub fn stamp(i: u32) -> Uuid {
    Uuid::from_u128(0x5a40_0000 + u128::from(i))
}

pub fn stamps(range: std::ops::Range<u32>) -> Vec<Uuid> {
    range.map(stamp).collect()
}

pub fn post_id(i: u32) -> Uuid {
    Uuid::from_u128(0x9057_0000 + u128::from(i))
}

/// The public key of issuer key `seed` and its kid.
pub fn issuer(seed: u8) -> (Kid, String) {
    let key = SigningKey::from_bytes(&[seed; 32]).verifying_key();
    (Kid::of(&key), public_key_text(&key))
}

pub fn key_event(seed: u8, status: KeyStatus) -> Command {
    let (kid, public_key) = issuer(seed);
    Command::KeyEvent {
        kid,
        public_key,
        status,
    }
}

pub fn create(i: u8) -> Command {
    Command::CreateAccount {
        account_id: account(i),
        name: Some(format!("account {i}")),
        api_key_sha256: api_key(i),
    }
}

pub fn credit(i: u8, amount: u64, reference: &str) -> Command {
    Command::Credit {
        account_id: account(i),
        amount,
        reference: reference.into(),
        source: CreditSource::of_reference(reference),
    }
}

/// An operator's correction (or, for a provider's reference, its refund) of `amount`.
pub fn debit(i: u8, amount: u64, reference: &str) -> Command {
    let source = CreditSource::of_reference(reference);
    let reason = if source == CreditSource::Operator {
        DebitReason::Correction
    } else {
        DebitReason::Refund
    };
    debit_from(i, amount, reference, source, reason)
}

pub fn debit_from(
    i: u8,
    amount: u64,
    reference: &str,
    source: CreditSource,
    reason: DebitReason,
) -> Command {
    Command::Debit {
        account_id: account(i),
        amount,
        reference: reference.into(),
        source,
        reason,
    }
}

/// A credit from `source` (a provider's reference must begin with its prefix).
pub fn credit_from(i: u8, amount: u64, reference: &str, source: CreditSource) -> Command {
    Command::Credit {
        account_id: account(i),
        amount,
        reference: reference.into(),
        source,
    }
}

/// Publishes issuer key 1, opens accounts 0 and 1 and credits each 100, at `T0`: three ledger
/// entries (key, credit, credit).
pub fn world(ctx: &Ctx) {
    ctx.all_ok(
        [
            key_event(1, KeyStatus::Active),
            create(0),
            create(1),
            credit(0, 100, "world 0"),
            credit(1, 100, "world 1"),
        ],
        at(0),
    );
}

/// A purchase by account `i` of `stamp_ids` at [`PRICE`] under issuer key 1, issued at `T0`
/// for [`TTL`], without an Idempotency-Key; the purchase id derives from the first stamp id.
pub fn purchase(i: u8, stamp_ids: &[Uuid]) -> Buy {
    Buy {
        account_id: account(i),
        unit_price: PRICE,
        key: None,
        purchase_id: Uuid::from_u128(
            0x9a1d_0000_0000_0000_0000_0000_0000_0000
                ^ stamp_ids.first().map_or(0, |id| id.as_u128()),
        ),
        issued_at: at(0),
        expires_at: at(TTL),
        stamp_ids: stamp_ids.to_vec(),
        issuer: 1,
    }
}

/// A purchase to adjust before it becomes a [`Command`].
#[derive(Clone)]
pub struct Buy {
    pub account_id: Uuid,
    pub unit_price: u64,
    pub key: Option<[u8; 32]>,
    pub purchase_id: Uuid,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub stamp_ids: Vec<Uuid>,
    /// The seed of the issuer key the purchase names ([`issuer`]).
    pub issuer: u8,
}

impl Buy {
    /// Under issuer key `seed` instead of key 1.
    pub fn signed_by(mut self, seed: u8) -> Buy {
        self.issuer = seed;
        self
    }

    pub fn price(mut self, unit_price: u64) -> Buy {
        self.unit_price = unit_price;
        self
    }

    /// With Idempotency-Key `i` (its SHA-256 stands in as `[0x40 + i; 32]`).
    pub fn key(mut self, i: u8) -> Buy {
        self.key = Some([0x40 + i; 32]);
        self
    }

    pub fn id(mut self, n: u128) -> Buy {
        self.purchase_id = Uuid::from_u128(0x9a1d_0000 + n);
        self
    }

    pub fn lifetime(mut self, issued_at: Timestamp, expires_at: Timestamp) -> Buy {
        self.issued_at = issued_at;
        self.expires_at = expires_at;
        self
    }

    pub fn cmd(&self) -> Command {
        Command::Purchase {
            account_id: self.account_id,
            unit_price: self.unit_price,
            idempotency_key_sha256: self.key,
            purchase_id: self.purchase_id,
            kid: issuer(self.issuer).0,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            stamp_ids: self.stamp_ids.clone(),
        }
    }
}

/// The stamps as their signed payloads name them when sold at `T0` (by [`purchase`]).
pub fn sold(ids: &[Uuid]) -> Vec<StampRef> {
    ids.iter()
        .map(|id| StampRef {
            stamp_id: *id,
            issued_at: at(0),
        })
        .collect()
}

pub fn redeem(stamps: Vec<StampRef>, context: &str) -> Command {
    Command::Spend {
        stamps,
        spend_for: SpendFor::Redeem {
            context: context.into(),
        },
    }
}

pub fn post(stamps: Vec<StampRef>, post: Uuid, author: &str, body: &str) -> Command {
    Command::Spend {
        stamps,
        spend_for: SpendFor::Post {
            post_id: post,
            author: author.into(),
            body: body.into(),
            verified: false,
        },
    }
}

pub fn vote(stamps: Vec<StampRef>, post: Uuid, up: bool) -> Command {
    Command::Spend {
        stamps,
        spend_for: SpendFor::Vote { post_id: post, up },
    }
}
