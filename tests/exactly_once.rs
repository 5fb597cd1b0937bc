//! Exactly once under contention (issue 5, item 2): property tests of the store and the group
//! committer, through the library API (no HTTP).
//!
//! - `store_matches_model`: random worlds of accounts, credits, purchases and spends (redeem,
//!   post, vote) applied to a [`SledStore`] in random batch splits, against an in-memory model
//!   of the same rules. After every batch: each result equals the model's, no stamp is spent
//!   twice, a refused spend spends nothing, balances equal credits minus purchases, the ledger
//!   grows by exactly the ledger-writing commands, post scores agree. At the end the store is
//!   reopened from disk and the same checks, plus the ledger auditor, run on what was synced.
//! - `committer_spends_each_stamp_once`: many tokio tasks spend overlapping sets of shared
//!   stamps and race purchases on one account through [`Committer`]; each stamp is spent at
//!   most once, exactly half the purchases are paid for, and the reopened store agrees.
//! - Regression tests for store defects found here (a stamp named twice, a credit of zero),
//!   and tests of the storage layout (issue times in keys, bundles, chunks, migrations).
//! - `stamp_status_and_verify_show_a_spend_only_once_it_is_durable`: a store whose sync is
//!   held open shows that stamp reads through the service hide a spend until it is durable.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use pennypost::api::StampState;
use pennypost::commit::Committer;
use pennypost::config::{Economy, Limits};
use pennypost::keys::{public_key_text, KeyStatus};
use pennypost::ledger::check::{AuditReport, LedgerChecker};
use pennypost::service::{App, AppConfig};
use pennypost::stamp::Kid;
use pennypost::store::{
    Account, Applied, Command, Outcome, Post, PurchaseRecord, Refusal, SledStore, SpendFor,
    SpentRecord, StampRecord, StampRef, Store, StoreError,
};
use pennypost::time::Timestamp;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

const CURRENCY: &str = "cents";

fn fail(e: impl Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// The issuer key every purchase names; published by a `KeyEvent` first so the auditor knows it.
fn issuer() -> (Kid, String) {
    let key = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    (Kid::of(&key), public_key_text(&key))
}

fn key_event() -> Command {
    let (kid, public_key) = issuer();
    Command::KeyEvent {
        kid,
        public_key,
        status: KeyStatus::Active,
    }
}

/// Refusal texts are for people; the tests compare the variant.
fn normalized(applied: Applied) -> Applied {
    match applied {
        Err(Refusal::IdempotencyConflict(_)) => Err(Refusal::IdempotencyConflict("")),
        other => other,
    }
}

/// Runs the ledger auditor over every stored entry and checks the stored Merkle hashes give the
/// same tree head.
fn audit(store: &SledStore) -> Result<AuditReport, TestCaseError> {
    let size = store.ledger_size().map_err(fail)?;
    let entries = store.entries(0, size).map_err(fail)?;
    prop_assert_eq!(entries.len() as u64, size, "entries stored");
    let mut checker = LedgerChecker::new();
    for entry in &entries {
        checker.push(entry);
    }
    struct Hashes<'a>(&'a SledStore);
    impl tlog_tiles::HashReader for Hashes<'_> {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
            self.0
                .hashes(indexes)
                .map(|hashes| hashes.into_iter().map(tlog_tiles::Hash).collect())
                .map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))
        }
    }
    let stored_root = tlog_tiles::tree_hash(size, &Hashes(store)).map_err(fail)?;
    prop_assert_eq!(stored_root.0, checker.root().0, "stored Merkle head");
    let report = checker.report(Timestamp::now().unix());
    prop_assert!(report.ok, "ledger violations: {:?}", report.violations);
    Ok(report)
}

/// Opens the store again after the previous handle was dropped. sled's background I/O threads
/// may hold its file lock for a moment after the drop, so a lock error is retried.
fn reopen(dir: &std::path::Path) -> Result<SledStore, TestCaseError> {
    retry_while_locked(|| SledStore::open(dir, CURRENCY))
}

/// Runs `open` again while it fails on sled's file lock (held briefly after a drop).
fn retry_while_locked<T, E: Display>(open: impl Fn() -> Result<T, E>) -> Result<T, TestCaseError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open() {
            Ok(opened) => return Ok(opened),
            Err(e) if e.to_string().contains("could not acquire lock") => {
                if Instant::now() > deadline {
                    return Err(fail(e));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(fail(e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The store against a model
// ---------------------------------------------------------------------------------------------

const T0: i64 = 1_700_000_000;
const ACCOUNTS: usize = 3;
const POOL: usize = 20;
const POSTS: usize = 8;
const REFERENCES: usize = 4;
const IDEMPOTENCY_KEYS: usize = 2;

fn account_id(i: usize) -> Uuid {
    Uuid::from_u128(0xacc0_0000 + i as u128)
}

fn api_key(i: usize) -> [u8; 32] {
    [0x10 + i as u8; 32]
}

fn stamp_id(i: usize) -> Uuid {
    Uuid::from_u128(0x5a40_0000 + i as u128)
}

fn post_id(i: usize) -> Uuid {
    Uuid::from_u128(0x9057_0000 + i as u128)
}

fn idempotency_key(i: usize) -> [u8; 32] {
    [0x40 + i as u8; 32]
}

#[derive(Clone, Debug)]
enum Target {
    Redeem,
    Post(Pick),
    Vote(Pick, bool),
}

#[derive(Clone, Debug)]
enum Op {
    Key,
    CreateAccount {
        account: usize,
    },
    /// `reference: None` is a fresh reference; `Some(i)` may repeat one used before.
    Credit {
        account: usize,
        amount: u64,
        reference: Option<usize>,
    },
    /// `ttl <= 0` sells stamps that are already expired.
    Purchase {
        account: usize,
        unit_price: u64,
        stamps: Vec<usize>,
        key: Option<usize>,
        ttl: i64,
    },
    Spend {
        stamps: Vec<Pick>,
        target: Target,
    },
}

/// A stamp or post a spend names: `Known(k)` is the k-th (mod count) stamp sold (or post
/// written) before the batch, `Unspent(k)` the k-th stamp sold and not yet spent; `Pool(i)` is
/// pool id `i`, which may or may not exist. (Without any known ones, the pool id.)
#[derive(Clone, Copy, Debug)]
enum Pick {
    Unspent(usize),
    Known(usize),
    Pool(usize),
}

fn pick(known: &[Uuid], unspent: &[Uuid], pick: Pick, pool: fn(usize) -> Uuid) -> Uuid {
    match pick {
        Pick::Unspent(k) if !unspent.is_empty() => unspent[k % unspent.len()],
        Pick::Known(k) if !known.is_empty() => known[k % known.len()],
        Pick::Unspent(i) | Pick::Known(i) | Pick::Pool(i) => pool(i),
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let pool: Vec<usize> = (0..POOL).collect();
    let stamp = prop_oneof![
        5 => (0..POOL).prop_map(Pick::Unspent),
        2 => (0..POOL).prop_map(Pick::Known),
        1 => (0..POOL).prop_map(Pick::Pool),
    ];
    let new_post = prop_oneof![
        1 => (0..POSTS).prop_map(Pick::Known),
        4 => (0..POSTS).prop_map(Pick::Pool),
    ];
    let old_post = prop_oneof![
        4 => (0..POSTS).prop_map(Pick::Known),
        1 => (0..POSTS).prop_map(Pick::Pool),
    ];
    let target = prop_oneof![
        Just(Target::Redeem),
        new_post.prop_map(Target::Post),
        (old_post, any::<bool>()).prop_map(|(p, up)| Target::Vote(p, up)),
    ];
    prop_oneof![
        1 => Just(Op::Key),
        1 => (0..ACCOUNTS).prop_map(|account| Op::CreateAccount { account }),
        3 => (
            0..ACCOUNTS,
            1u64..=40,
            proptest::option::weighted(0.4, 0..REFERENCES)
        )
            .prop_map(|(account, amount, reference)| Op::Credit {
                account,
                amount,
                reference,
            }),
        4 => (
            0..ACCOUNTS,
            1u64..=5,
            subsequence(pool.clone(), 1..=4).prop_shuffle(),
            proptest::option::weighted(0.5, 0..IDEMPOTENCY_KEYS),
            prop_oneof![1 => -20i64..=0, 1 => 1i64..=60, 3 => 600i64..=3600],
        )
            .prop_map(|(account, unit_price, stamps, key, ttl)| Op::Purchase {
                account,
                unit_price,
                stamps,
                key,
                ttl,
            }),
        8 => (prop_oneof![3 => vec(stamp.clone(), 1..=1), 2 => vec(stamp, 2..=3)], target)
            .prop_map(|(stamps, target)| Op::Spend { stamps, target }),
    ]
}

/// Batches of 1 to 8 commands, each applied at the previous batch's time plus -5..=30 seconds
/// (the clock may step back; the store must keep entry times monotonic).
fn plan_strategy() -> impl Strategy<Value = Vec<(Vec<Op>, i64)>> {
    vec((vec(op_strategy(), 1..=8), -5i64..=30), 4..=16)
}

/// Turns ops into commands, minting the fresh values (purchase ids, references, contexts).
#[derive(Default)]
struct Minter {
    next: u128,
}

impl Minter {
    fn fresh(&mut self) -> u128 {
        self.next += 1;
        self.next
    }

    fn command(&mut self, op: &Op, now: Timestamp, model: &Model) -> Command {
        match op {
            Op::Key => key_event(),
            Op::CreateAccount { account } => Command::CreateAccount {
                account_id: account_id(*account),
                name: Some(format!("account {account}")),
                api_key_sha256: api_key(*account),
            },
            Op::Credit {
                account,
                amount,
                reference,
            } => Command::Credit {
                account_id: account_id(*account),
                amount: *amount,
                reference: match reference {
                    Some(i) => format!("ref-{i}"),
                    None => format!("fresh-{}", self.fresh()),
                },
            },
            Op::Purchase {
                account,
                unit_price,
                stamps,
                key,
                ttl,
            } => Command::Purchase {
                account_id: account_id(*account),
                unit_price: *unit_price,
                idempotency_key_sha256: key.map(idempotency_key),
                purchase_id: Uuid::from_u128(0x9a1d_0000_0000 + self.fresh()),
                kid: issuer().0,
                issued_at: now,
                expires_at: Timestamp::from_unix(now.unix() + ttl),
                stamp_ids: stamps.iter().copied().map(stamp_id).collect(),
            },
            Op::Spend { stamps, target } => {
                let mut sold: Vec<Uuid> = model.stamps.keys().copied().collect();
                sold.sort_unstable();
                let unspent: Vec<Uuid> = sold
                    .iter()
                    .copied()
                    .filter(|id| model.stamps[id].spent.is_none())
                    .collect();
                let mut posts: Vec<&Post> = model.posts.values().collect();
                posts.sort_by_key(|p| p.seq);
                let posts: Vec<Uuid> = posts.iter().map(|p| p.post_id).collect();
                let mut refs: Vec<StampRef> = Vec::new();
                for id in stamps.iter().map(|p| pick(&sold, &unspent, *p, stamp_id)) {
                    // The service never sends one stamp twice (the store refuses it: see the tests below).
                    if !refs.iter().any(|r| r.stamp_id == id) {
                        // A stamp names the issue time it was sold with; one never sold, any.
                        let issued_at = model.stamps.get(&id).map_or(now, |s| s.issued_at);
                        refs.push(StampRef {
                            stamp_id: id,
                            issued_at,
                        });
                    }
                }
                let spend_for = match target {
                    Target::Redeem => SpendFor::Redeem {
                        context: format!("site:{}", self.fresh()),
                    },
                    Target::Post(p) => SpendFor::Post {
                        post_id: pick(&posts, &[], *p, post_id),
                        author: format!("author {}", self.fresh()),
                        body: "a penny for your thoughts".into(),
                    },
                    Target::Vote(p, up) => SpendFor::Vote {
                        post_id: pick(&posts, &[], *p, post_id),
                        up: *up,
                    },
                };
                Command::Spend {
                    stamps: refs,
                    spend_for,
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct ModelAccount {
    account: Account,
    credited: u64,
    paid: u64,
}

/// The store's rules, written the simplest way.
#[derive(Default)]
struct Model {
    accounts: HashMap<Uuid, ModelAccount>,
    api_keys: HashSet<[u8; 32]>,
    /// reference -> (account, amount, balance after, ledger index)
    credits: HashMap<String, (Uuid, u64, u64, u64)>,
    purchases: HashMap<(Uuid, [u8; 32]), PurchaseRecord>,
    stamps: HashMap<Uuid, StampRecord>,
    posts: HashMap<Uuid, Post>,
    ledger_size: u64,
    last_time: i64,
    post_seq: u64,
}

impl Model {
    fn append(&mut self) -> u64 {
        self.ledger_size += 1;
        self.ledger_size - 1
    }

    fn apply(&mut self, command: &Command, now: Timestamp) -> Applied {
        let time = now.max(Timestamp::from_unix(self.last_time));
        let size = self.ledger_size;
        let result = self.apply_at(command, time);
        // Entry times never go backwards: the next entry's time is at least the last one's.
        if self.ledger_size > size {
            self.last_time = time.unix();
        }
        result
    }

    fn apply_at(&mut self, command: &Command, time: Timestamp) -> Applied {
        match command {
            Command::KeyEvent { .. } => Ok(Outcome::KeyPublished {
                ledger_index: self.append(),
            }),
            Command::CreateAccount {
                account_id,
                name,
                api_key_sha256,
            } => {
                if self.accounts.contains_key(account_id) || self.api_keys.contains(api_key_sha256)
                {
                    return Err(Refusal::IdempotencyConflict(""));
                }
                self.api_keys.insert(*api_key_sha256);
                self.accounts.insert(
                    *account_id,
                    ModelAccount {
                        account: Account {
                            account_id: *account_id,
                            name: name.clone(),
                            balance: 0,
                            stamps_purchased: 0,
                            stamps_spent: 0,
                            created_at: time,
                        },
                        credited: 0,
                        paid: 0,
                    },
                );
                Ok(Outcome::AccountCreated)
            }
            Command::Credit {
                account_id,
                amount,
                reference,
            } => {
                if let Some(&(first_account, first_amount, balance, ledger_index)) =
                    self.credits.get(reference)
                {
                    if first_account == *account_id && first_amount == *amount {
                        return Ok(Outcome::Credited {
                            balance,
                            ledger_index,
                        });
                    }
                    return Err(Refusal::IdempotencyConflict(""));
                }
                if !self.accounts.contains_key(account_id) {
                    return Err(Refusal::NotFound("account"));
                }
                let ledger_index = self.append();
                let account = self.accounts.get_mut(account_id).expect("checked above");
                account.account.balance += amount;
                account.credited += amount;
                let balance = account.account.balance;
                self.credits.insert(
                    reference.clone(),
                    (*account_id, *amount, balance, ledger_index),
                );
                Ok(Outcome::Credited {
                    balance,
                    ledger_index,
                })
            }
            Command::Purchase {
                account_id,
                unit_price,
                idempotency_key_sha256,
                purchase_id,
                kid,
                issued_at,
                expires_at,
                stamp_ids,
            } => {
                let count = stamp_ids.len() as u32;
                let key = idempotency_key_sha256.map(|hash| (*account_id, hash));
                if let Some(first) = key.and_then(|key| self.purchases.get(&key)) {
                    if first.count == count {
                        return Ok(Outcome::Purchased {
                            record: first.clone(),
                            replayed: true,
                        });
                    }
                    return Err(Refusal::IdempotencyConflict(""));
                }
                let Some(balance) = self.accounts.get(account_id).map(|a| a.account.balance) else {
                    return Err(Refusal::NotFound("account"));
                };
                let total = unit_price * u64::from(count);
                if balance < total {
                    return Err(Refusal::InsufficientFunds { balance, total });
                }
                if let Some(id) = stamp_ids.iter().find(|id| self.stamps.contains_key(id)) {
                    return Err(Refusal::DuplicateStamp(*id));
                }
                let ledger_index = self.append();
                let account = self.accounts.get_mut(account_id).expect("checked above");
                account.account.balance -= total;
                account.account.stamps_purchased += u64::from(count);
                account.paid += total;
                let record = PurchaseRecord {
                    purchase_id: *purchase_id,
                    account_id: *account_id,
                    count,
                    unit_price: *unit_price,
                    total,
                    balance: account.account.balance,
                    ledger_index,
                    kid: *kid,
                    issued_at: *issued_at,
                    expires_at: *expires_at,
                    stamp_ids: stamp_ids.clone(),
                };
                for id in stamp_ids {
                    self.stamps.insert(
                        *id,
                        StampRecord {
                            stamp_id: *id,
                            buyer: *account_id,
                            kid: *kid,
                            issued_at: *issued_at,
                            expires_at: *expires_at,
                            spent: None,
                        },
                    );
                }
                if let Some(key) = key {
                    self.purchases.insert(key, record.clone());
                }
                Ok(Outcome::Purchased {
                    record,
                    replayed: false,
                })
            }
            Command::Spend { stamps, spend_for } => {
                let stamp_ids = ids(stamps);
                for stamp in stamps {
                    let id = &stamp.stamp_id;
                    match self.stamps.get(id) {
                        // Sold, but not with the issue time this reference names.
                        Some(sold) if sold.issued_at != stamp.issued_at => {
                            return Err(Refusal::NotSold(*id))
                        }
                        Some(stamp) if stamp.spent.is_some() => {
                            return Err(Refusal::AlreadySpent(*id))
                        }
                        None => return Err(Refusal::NotSold(*id)),
                        Some(stamp) if time >= stamp.expires_at => {
                            return Err(Refusal::Expired(*id))
                        }
                        Some(_) => {}
                    }
                }
                let spent_for = match spend_for {
                    SpendFor::Post { post_id, .. } => {
                        if self.posts.contains_key(post_id) {
                            return Err(Refusal::IdempotencyConflict(""));
                        }
                        format!("post:{post_id}")
                    }
                    SpendFor::Vote { post_id, .. } => {
                        if !self.posts.contains_key(post_id) {
                            return Err(Refusal::NotFound("post"));
                        }
                        format!("vote:{post_id}")
                    }
                    SpendFor::Redeem { context } => context.clone(),
                };
                let ledger_index = self.append();
                let record = SpentRecord {
                    spent_at: time,
                    action: spend_for.action(),
                    spent_for,
                    ledger_index,
                };
                for id in &stamp_ids {
                    let stamp = self.stamps.get_mut(id).expect("checked above");
                    stamp.spent = Some(record.clone());
                    let buyer = self.accounts.get_mut(&stamp.buyer).expect("buyer exists");
                    buyer.account.stamps_spent += 1;
                }
                let post = match spend_for {
                    SpendFor::Post {
                        post_id,
                        author,
                        body,
                    } => {
                        let post = Post {
                            post_id: *post_id,
                            author: author.clone(),
                            body: body.clone(),
                            created_at: time,
                            score: 0,
                            ledger_index,
                            seq: self.post_seq,
                        };
                        self.post_seq += 1;
                        self.posts.insert(*post_id, post.clone());
                        Some(post)
                    }
                    SpendFor::Vote { post_id, up } => {
                        let post = self.posts.get_mut(post_id).expect("checked above");
                        post.score += if *up { 1 } else { -1 };
                        Some(post.clone())
                    }
                    SpendFor::Redeem { .. } => None,
                };
                Ok(Outcome::Spent {
                    spent_at: time,
                    ledger_index,
                    post,
                })
            }
        }
    }
}

/// Compares the whole store with the model, and with what the store's own answers said
/// (`spent_seen`: every stamp id in a spend the store acknowledged).
fn check_state(
    store: &SledStore,
    model: &Model,
    spent_seen: &HashSet<Uuid>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.ledger_size().map_err(fail)?, model.ledger_size);
    let mut spent_by_buyer: HashMap<Uuid, u64> = HashMap::new();
    for i in 0..POOL {
        let id = stamp_id(i);
        let stored = store.stamp(id).map_err(fail)?;
        prop_assert_eq!(stored.as_ref(), model.stamps.get(&id), "stamp {}", i);
        let spent = stored.as_ref().is_some_and(|s| s.spent.is_some());
        prop_assert_eq!(spent, spent_seen.contains(&id), "stamp {} spent", i);
        if let Some(stamp) = stored.filter(|s| s.spent.is_some()) {
            *spent_by_buyer.entry(stamp.buyer).or_default() += 1;
        }
    }
    for i in 0..ACCOUNTS {
        let id = account_id(i);
        let stored = store.account(id).map_err(fail)?;
        let want = model.accounts.get(&id);
        prop_assert_eq!(stored.as_ref(), want.map(|m| &m.account), "account {}", i);
        if let (Some(stored), Some(want)) = (stored, want) {
            prop_assert!(want.credited >= want.paid, "account {} overspent", i);
            prop_assert_eq!(stored.balance, want.credited - want.paid, "account {}", i);
            let spent = spent_by_buyer.get(&id).copied().unwrap_or(0);
            prop_assert_eq!(stored.stamps_spent, spent, "account {} stamps_spent", i);
        }
    }
    for i in 0..POSTS {
        let id = post_id(i);
        let stored = store.post(id).map_err(fail)?;
        prop_assert_eq!(stored.as_ref(), model.posts.get(&id), "post {}", i);
    }
    let board: Vec<Uuid> = store
        .posts(None, 1000)
        .map_err(fail)?
        .unwrap_or_default()
        .iter()
        .map(|p| p.post_id)
        .collect();
    let mut want: Vec<&Post> = model.posts.values().collect();
    want.sort_by_key(|p| std::cmp::Reverse(p.seq));
    let want: Vec<Uuid> = want.iter().map(|p| p.post_id).collect();
    prop_assert_eq!(board, want, "board order");
    Ok(())
}

/// What kinds of result the generated runs reached, so a generator that stops reaching one
/// fails the test instead of silently testing less.
type Coverage = BTreeMap<&'static str, u64>;

fn ids(stamps: &[StampRef]) -> Vec<Uuid> {
    stamps.iter().map(|s| s.stamp_id).collect()
}

fn result_kind(command: &Command, applied: &Applied) -> &'static str {
    match (command, applied) {
        (_, Err(Refusal::NotFound("account"))) => "refused: no account",
        (_, Err(Refusal::NotFound(_))) => "refused: no post",
        (_, Err(Refusal::InsufficientFunds { .. })) => "refused: insufficient funds",
        (_, Err(Refusal::AlreadySpent(_))) => "refused: already spent",
        (_, Err(Refusal::NotSold(_))) => "refused: not sold",
        (_, Err(Refusal::Expired(_))) => "refused: expired",
        (Command::Credit { .. }, Err(Refusal::IdempotencyConflict(_))) => "refused: credit ref",
        (Command::Purchase { .. }, Err(Refusal::IdempotencyConflict(_))) => "refused: key reuse",
        (Command::Spend { .. }, Err(Refusal::IdempotencyConflict(_))) => "refused: post exists",
        (_, Err(Refusal::IdempotencyConflict(_))) => "refused: account exists",
        (_, Err(Refusal::DuplicateStamp(_))) => "refused: stamp sold before",
        (_, Err(Refusal::Overflow(_))) => "refused: overflow",
        (_, Err(Refusal::Invalid(_))) => "refused: invalid command",
        (_, Ok(Outcome::Purchased { replayed: true, .. })) => "ok: purchase replayed",
        (_, Ok(Outcome::Purchased { .. })) => "ok: purchase",
        (Command::Spend { stamps, .. }, Ok(_)) if stamps.len() > 1 => "ok: multi-stamp spend",
        (Command::Spend { spend_for, .. }, Ok(_)) => match spend_for {
            SpendFor::Post { .. } => "ok: post",
            SpendFor::Vote { .. } => "ok: vote",
            SpendFor::Redeem { .. } => "ok: redeem",
        },
        (_, Ok(_)) => "ok: other",
    }
}

fn run_model_case(
    plan: &[(Vec<Op>, i64)],
    coverage: &RefCell<Coverage>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let store = SledStore::open(dir.path(), CURRENCY).map_err(fail)?;
    let mut model = Model::default();
    let mut minter = Minter::default();
    let mut spent_seen: HashSet<Uuid> = HashSet::new();
    let mut writes = 0u64;
    let mut now = T0;

    // Every run starts by publishing the issuer key and opening and crediting two of the three
    // accounts; the third is opened (or not) by the plan.
    let prologue = [
        Op::Key,
        Op::CreateAccount { account: 0 },
        Op::CreateAccount { account: 1 },
        Op::Credit {
            account: 0,
            amount: 30,
            reference: None,
        },
        Op::Credit {
            account: 1,
            amount: 30,
            reference: None,
        },
    ];
    let batches = std::iter::once((prologue.to_vec(), 0)).chain(plan.iter().cloned());

    for (ops, step) in batches {
        now += step;
        let at = Timestamp::from_unix(now);
        let commands: Vec<Command> = ops
            .iter()
            .map(|op| minter.command(op, at, &model))
            .collect();
        let results = store.apply(&commands, at).map_err(fail)?;
        store.sync().map_err(fail)?;
        prop_assert_eq!(results.len(), commands.len());
        let mut refused_spends: Vec<Vec<Uuid>> = Vec::new();
        for (command, applied) in commands.iter().zip(results) {
            let want = model.apply(command, at);
            *coverage
                .borrow_mut()
                .entry(result_kind(command, &applied))
                .or_default() += 1;
            prop_assert_eq!(
                normalized(applied.clone()),
                normalized(want),
                "{:?}",
                command
            );

            // The model agreeing is the main check; these say the key promises directly.
            // Each ledger write takes the next index; replays answer an earlier one.
            let index = match &applied {
                Ok(Outcome::KeyPublished { ledger_index })
                | Ok(Outcome::Credited { ledger_index, .. })
                | Ok(Outcome::Spent { ledger_index, .. }) => Some(*ledger_index),
                Ok(Outcome::Purchased { record, .. }) => Some(record.ledger_index),
                Ok(Outcome::AccountCreated) | Err(_) => None,
            };
            let replay = matches!(applied, Ok(Outcome::Purchased { replayed: true, .. }));
            let credit = matches!(command, Command::Credit { .. });
            match index {
                Some(index) if index == writes && !replay => writes += 1,
                // A credit replay has no flag: it answers the first credit's (earlier) index.
                Some(index) => prop_assert!(
                    (replay || credit) && index < writes,
                    "ledger index {} of {:?} with {} written",
                    index,
                    command,
                    writes
                ),
                None => {}
            }
            if let Command::Spend { stamps, .. } = command {
                let stamp_ids = ids(stamps);
                let reused = stamp_ids.iter().find(|id| spent_seen.contains(id));
                // A spend naming a spent stamp first is refused as already spent.
                if spent_seen.contains(&stamp_ids[0]) {
                    prop_assert_eq!(&applied, &Err(Refusal::AlreadySpent(stamp_ids[0])));
                }
                match &applied {
                    Ok(_) => {
                        prop_assert!(reused.is_none(), "stamp {:?} spent twice", reused);
                        spent_seen.extend(stamp_ids.iter().copied());
                    }
                    Err(_) => refused_spends.push(stamp_ids),
                }
            }
        }
        // A refused spend spent none of its stamps (unless a later spend in the batch did).
        for ids in refused_spends {
            for id in &ids {
                let spent = store.stamp(*id).map_err(fail)?.and_then(|s| s.spent);
                prop_assert_eq!(spent.is_some(), spent_seen.contains(id));
            }
        }
        prop_assert_eq!(store.ledger_size().map_err(fail)?, writes);
        check_state(&store, &model, &spent_seen)?;
    }

    // What `apply` + `sync` acknowledged is what a reopened store holds.
    drop(store);
    let store = reopen(dir.path())?;
    check_state(&store, &model, &spent_seen)?;
    let report = audit(&store)?;
    prop_assert_eq!(report.ledger_size, model.ledger_size);
    prop_assert_eq!(report.stamps_issued, model.stamps.len() as u64);
    prop_assert_eq!(report.stamps_spent, spent_seen.len() as u64);
    let credited: u64 = model.accounts.values().map(|a| a.credited).sum();
    let paid: u64 = model.accounts.values().map(|a| a.paid).sum();
    prop_assert_eq!(report.credits_total, credited);
    prop_assert_eq!(report.purchases_total, paid);

    // And it still refuses a second spend of every stamp spent before the reopen.
    let size = store.ledger_size().map_err(fail)?;
    let respend: Vec<Command> = spent_seen
        .iter()
        .map(|id| Command::Spend {
            stamps: vec![StampRef {
                stamp_id: *id,
                issued_at: model.stamps[id].issued_at,
            }],
            spend_for: SpendFor::Redeem {
                context: "again".into(),
            },
        })
        .collect();
    let results = store
        .apply(&respend, Timestamp::from_unix(now))
        .map_err(fail)?;
    for (command, applied) in respend.iter().zip(results) {
        let Command::Spend { stamps, .. } = command else {
            unreachable!()
        };
        prop_assert_eq!(applied, Err(Refusal::AlreadySpent(stamps[0].stamp_id)));
    }
    prop_assert_eq!(store.ledger_size().map_err(fail)?, size);
    Ok(())
}

/// Cases per property: `default` in CI; PENNYPOST_PROPTEST_CASES for a longer search.
fn cases(default: u32) -> u32 {
    std::env::var("PENNYPOST_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn store_matches_model() {
    let coverage = RefCell::new(Coverage::new());
    let mut runner = TestRunner::new(Config {
        cases: cases(64),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&plan_strategy(), |plan| run_model_case(&plan, &coverage));
    if let Err(e) = result {
        panic!("{e}");
    }
    let coverage = coverage.into_inner();
    eprintln!("results reached: {coverage:?}");
    for kind in [
        "refused: no account",
        "refused: no post",
        "refused: insufficient funds",
        "refused: already spent",
        "refused: not sold",
        "refused: expired",
        "refused: credit ref",
        "refused: key reuse",
        "refused: post exists",
        "refused: account exists",
        "refused: stamp sold before",
        "ok: purchase",
        "ok: purchase replayed",
        "ok: multi-stamp spend",
        "ok: post",
        "ok: vote",
        "ok: redeem",
    ] {
        assert!(
            coverage.get(kind).copied().unwrap_or(0) > 0,
            "no generated run reached {kind:?}: {coverage:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Contention through the group committer
// ---------------------------------------------------------------------------------------------

const SHARED_STAMPS: usize = 48;
/// Votes go to the first posts of this many tasks.
const HOT_POSTS: usize = 8;
const SPEND_TASKS: usize = 64;
const STEPS_MAX: usize = 3;
const PRICE: u64 = 5;
const BUY_TASKS: usize = 16;
const BUY_COUNT: usize = 2;

fn shared_stamp(i: usize) -> Uuid {
    Uuid::from_u128(0x5a4e_d000_0000 + i as u128)
}

/// The post a task's step writes when it posts (each is written at most once).
fn task_post(task: usize, step: usize) -> Uuid {
    Uuid::from_u128(0x9057_ed00_0000 + (task * STEPS_MAX + step) as u128)
}

#[derive(Clone, Debug)]
enum Race {
    Redeem,
    Post,
    /// A vote on the post of another task's first step, which may not exist (yet).
    Vote {
        task: usize,
        up: bool,
    },
}

#[derive(Clone, Debug)]
struct RaceStep {
    stamps: Vec<usize>,
    race: Race,
}

fn race_strategy() -> impl Strategy<Value = Vec<Vec<RaceStep>>> {
    let pool: Vec<usize> = (0..SHARED_STAMPS).collect();
    let race = prop_oneof![
        2 => Just(Race::Redeem),
        2 => Just(Race::Post),
        1 => (0..HOT_POSTS, any::<bool>()).prop_map(|(task, up)| Race::Vote { task, up }),
    ];
    let step = (subsequence(pool, 1..=3).prop_shuffle(), race)
        .prop_map(|(stamps, race)| RaceStep { stamps, race });
    // The first `HOT_POSTS` tasks start with a post, so that votes race with their posting.
    vec(vec(step, 1..=STEPS_MAX), SPEND_TASKS).prop_map(|mut plan| {
        for steps in plan.iter_mut().take(HOT_POSTS) {
            steps[0].race = Race::Post;
        }
        plan
    })
}

/// What the racing run acknowledged, to check against the store (before and after reopening).
struct Acknowledged {
    holder: Uuid,
    buyer: Uuid,
    size_before: u64,
    /// stamp id -> ledger index of the spend that cancelled it.
    spent: HashMap<Uuid, u64>,
    purchases_ok: u64,
    buyer_credit: u64,
    /// post -> score from acknowledged votes (posts acknowledged as written start at 0).
    scores: HashMap<Uuid, i64>,
    ledger_indexes: Vec<u64>,
}

fn check_race_state(store: &SledStore, ack: &Acknowledged) -> Result<(), TestCaseError> {
    for i in 0..SHARED_STAMPS {
        let id = shared_stamp(i);
        let stamp = store
            .stamp(id)
            .map_err(fail)?
            .ok_or_else(|| fail("unsold"))?;
        prop_assert_eq!(
            stamp.spent.map(|s| s.ledger_index),
            ack.spent.get(&id).copied(),
            "shared stamp {}",
            i
        );
    }
    let holder = store
        .account(ack.holder)
        .map_err(fail)?
        .ok_or_else(|| fail("holder"))?;
    prop_assert_eq!(holder.stamps_purchased, SHARED_STAMPS as u64);
    prop_assert_eq!(holder.stamps_spent, ack.spent.len() as u64);
    prop_assert_eq!(holder.balance, 0);

    let buyer = store
        .account(ack.buyer)
        .map_err(fail)?
        .ok_or_else(|| fail("buyer"))?;
    prop_assert_eq!(
        ack.purchases_ok,
        (BUY_TASKS / 2) as u64,
        "purchases paid for"
    );
    let paid = ack.purchases_ok * PRICE * BUY_COUNT as u64;
    prop_assert!(paid <= ack.buyer_credit);
    prop_assert_eq!(buyer.balance, ack.buyer_credit - paid);
    prop_assert_eq!(buyer.stamps_purchased, ack.purchases_ok * BUY_COUNT as u64);

    for (post, score) in &ack.scores {
        let stored = store
            .post(*post)
            .map_err(fail)?
            .ok_or_else(|| fail("post lost"))?;
        prop_assert_eq!(stored.score, *score, "score of {}", post);
    }

    // Every acknowledged ledger write has its own index, and there are no others.
    let size = store.ledger_size().map_err(fail)?;
    let mut indexes = ack.ledger_indexes.clone();
    indexes.sort_unstable();
    let want: Vec<u64> = (ack.size_before..size).collect();
    prop_assert_eq!(indexes, want, "ledger indexes of acknowledged writes");

    let report = audit(store)?;
    prop_assert_eq!(report.stamps_spent, ack.spent.len() as u64);
    prop_assert_eq!(
        report.stamps_issued,
        SHARED_STAMPS as u64 + ack.purchases_ok * BUY_COUNT as u64
    );
    Ok(())
}

fn run_race_case(
    plan: &[Vec<RaceStep>],
    coverage: &RefCell<Coverage>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let store = SledStore::open(dir.path(), CURRENCY).map_err(fail)?;
    let holder = Uuid::from_u128(0x401d);
    let buyer = Uuid::from_u128(0xb0b);
    let buyer_credit = PRICE * (BUY_COUNT * BUY_TASKS / 2) as u64;
    let now = Timestamp::now();
    let setup = [
        key_event(),
        Command::CreateAccount {
            account_id: holder,
            name: None,
            api_key_sha256: [1; 32],
        },
        Command::CreateAccount {
            account_id: buyer,
            name: None,
            api_key_sha256: [2; 32],
        },
        Command::Credit {
            account_id: holder,
            amount: PRICE * SHARED_STAMPS as u64,
            reference: "holder".into(),
        },
        Command::Credit {
            account_id: buyer,
            amount: buyer_credit,
            reference: "buyer".into(),
        },
        Command::Purchase {
            account_id: holder,
            unit_price: PRICE,
            idempotency_key_sha256: None,
            purchase_id: Uuid::from_u128(1),
            kid: issuer().0,
            issued_at: now,
            expires_at: now.plus_secs(86_400),
            stamp_ids: (0..SHARED_STAMPS).map(shared_stamp).collect(),
        },
    ];
    for applied in store.apply(&setup, now).map_err(fail)? {
        prop_assert!(applied.is_ok(), "setup: {:?}", applied);
    }
    store.sync().map_err(fail)?;
    let size_before = store.ledger_size().map_err(fail)?;

    let store = Arc::new(store);
    let committer = Committer::start(store.clone()).map_err(fail)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(fail)?;
    let results: Vec<(Command, Applied)> = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (task, steps) in plan.iter().enumerate() {
            let committer = committer.clone();
            let steps = steps.clone();
            tasks.spawn(async move {
                let mut out = Vec::new();
                for (step, RaceStep { stamps, race }) in steps.into_iter().enumerate() {
                    let command = Command::Spend {
                        stamps: stamps
                            .into_iter()
                            .map(|i| StampRef {
                                stamp_id: shared_stamp(i),
                                issued_at: now,
                            })
                            .collect(),
                        spend_for: match race {
                            Race::Redeem => SpendFor::Redeem {
                                context: format!("task {task} step {step}"),
                            },
                            Race::Post => SpendFor::Post {
                                post_id: task_post(task, step),
                                author: format!("task {task}"),
                                body: "first!".into(),
                            },
                            Race::Vote { task, up } => SpendFor::Vote {
                                post_id: task_post(task, 0),
                                up,
                            },
                        },
                    };
                    let applied = committer.submit(command.clone()).await;
                    out.push((command, applied));
                }
                out
            });
        }
        for task in 0..BUY_TASKS {
            let committer = committer.clone();
            tasks.spawn(async move {
                let command = Command::Purchase {
                    account_id: buyer,
                    unit_price: PRICE,
                    idempotency_key_sha256: None,
                    purchase_id: Uuid::from_u128(0x9a1d_0000 + task as u128),
                    kid: issuer().0,
                    issued_at: now,
                    expires_at: now.plus_secs(86_400),
                    stamp_ids: (0..BUY_COUNT)
                        .map(|i| Uuid::from_u128(0xb0b0_0000 + (task * BUY_COUNT + i) as u128))
                        .collect(),
                };
                let applied = committer.submit(command.clone()).await;
                vec![(command, applied)]
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            for (command, applied) in joined.expect("task panicked") {
                results.push((command, applied.expect("committer failed")));
            }
        }
        results
    });
    drop(runtime);

    let mut ack = Acknowledged {
        holder,
        buyer,
        size_before,
        spent: HashMap::new(),
        purchases_ok: 0,
        buyer_credit,
        scores: HashMap::new(),
        ledger_indexes: Vec::new(),
    };
    for (command, applied) in &results {
        *coverage
            .borrow_mut()
            .entry(result_kind(command, applied))
            .or_default() += 1;
        match (command, applied) {
            (
                Command::Spend { stamps, spend_for },
                Ok(Outcome::Spent {
                    ledger_index, post, ..
                }),
            ) => {
                ack.ledger_indexes.push(*ledger_index);
                for id in ids(stamps) {
                    let before = ack.spent.insert(id, *ledger_index);
                    prop_assert!(before.is_none(), "stamp {} spent twice", id);
                }
                match spend_for {
                    SpendFor::Post { post_id, .. } => {
                        ack.scores.entry(*post_id).or_insert(0);
                    }
                    SpendFor::Vote { post_id, up } => {
                        prop_assert!(post.is_some());
                        *ack.scores.entry(*post_id).or_insert(0) += if *up { 1 } else { -1 };
                    }
                    SpendFor::Redeem { .. } => {}
                }
            }
            (Command::Purchase { .. }, Ok(Outcome::Purchased { record, replayed })) => {
                prop_assert!(!replayed);
                ack.ledger_indexes.push(record.ledger_index);
                ack.purchases_ok += 1;
            }
            (Command::Purchase { .. }, Err(refusal)) => {
                prop_assert_eq!(
                    refusal,
                    &Refusal::InsufficientFunds {
                        balance: 0,
                        total: PRICE * BUY_COUNT as u64
                    }
                );
            }
            (Command::Spend { .. }, Err(_)) => {}
            other => prop_assert!(false, "unexpected result {:?}", other),
        }
    }
    // Refusals name a stamp that someone else did spend, or a post not written (yet).
    for (command, applied) in &results {
        let (Command::Spend { stamps, spend_for }, Err(refusal)) = (command, applied) else {
            continue;
        };
        let stamp_ids = ids(stamps);
        match refusal {
            Refusal::AlreadySpent(id) => {
                prop_assert!(stamp_ids.contains(id));
                prop_assert!(ack.spent.contains_key(id), "refused for unspent {}", id);
            }
            Refusal::NotFound("post") => {
                let vote = matches!(spend_for, SpendFor::Vote { .. });
                prop_assert!(
                    vote,
                    "a spend for {:?} refused for a missing post",
                    spend_for
                );
            }
            other => prop_assert!(false, "unexpected refusal {:?}", other),
        }
        // A stamp tried alone for a redeem or a post is spent by someone.
        if stamp_ids.len() == 1 && !matches!(spend_for, SpendFor::Vote { .. }) {
            prop_assert!(ack.spent.contains_key(&stamp_ids[0]));
        }
    }
    prop_assert_eq!(committer.durable_size(), store.ledger_size().map_err(fail)?);
    check_race_state(&store, &ack)?;

    // The writer thread drops its handle on the store once every committer handle is gone;
    // then the database can be reopened from disk.
    drop(committer);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut store = store;
    let store = loop {
        match Arc::try_unwrap(store) {
            Ok(store) => break store,
            Err(shared) if Instant::now() < deadline => {
                store = shared;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return Err(fail("the writer thread kept the store open")),
        }
    };
    drop(store);
    let store = reopen(dir.path())?;
    check_race_state(&store, &ack)
}

#[test]
fn committer_spends_each_stamp_once() {
    let coverage = RefCell::new(Coverage::new());
    let mut runner = TestRunner::new(Config {
        cases: cases(16),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&race_strategy(), |plan| run_race_case(&plan, &coverage));
    if let Err(e) = result {
        panic!("{e}");
    }
    let coverage = coverage.into_inner();
    eprintln!("results reached: {coverage:?}");
    for kind in [
        "refused: already spent",
        "refused: insufficient funds",
        "refused: no post",
        "ok: purchase",
        "ok: multi-stamp spend",
        "ok: post",
        "ok: vote",
        "ok: redeem",
    ] {
        assert!(
            coverage.get(kind).copied().unwrap_or(0) > 0,
            "no generated run reached {kind:?}: {coverage:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Store defects found by the tests above, kept as failing cases
// ---------------------------------------------------------------------------------------------

fn opened_with_stamps(dir: &std::path::Path, stamps: &[Uuid]) -> (SledStore, Uuid) {
    let store = SledStore::open(dir, CURRENCY).expect("open");
    let account = account_id(0);
    let now = Timestamp::from_unix(T0);
    let setup = [
        key_event(),
        Command::CreateAccount {
            account_id: account,
            name: None,
            api_key_sha256: api_key(0),
        },
        Command::Credit {
            account_id: account,
            amount: 100 + stamps.len() as u64,
            reference: "setup".into(),
        },
        Command::Purchase {
            account_id: account,
            unit_price: 1,
            idempotency_key_sha256: None,
            purchase_id: Uuid::from_u128(1),
            kid: issuer().0,
            issued_at: now,
            expires_at: now.plus_secs(3600),
            stamp_ids: stamps.to_vec(),
        },
    ];
    let setup = if stamps.is_empty() {
        &setup[..3]
    } else {
        &setup[..]
    };
    for applied in store.apply(setup, now).expect("apply") {
        assert!(applied.is_ok(), "setup: {applied:?}");
    }
    (store, account)
}

/// A stamp sold by [`opened_with_stamps`], named as its signed payload names it.
fn sold_at_t0(stamp_id: Uuid) -> StampRef {
    StampRef {
        stamp_id,
        issued_at: Timestamp::from_unix(T0),
    }
}

#[test]
fn spend_naming_the_wrong_issue_time_is_not_sold_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stamp = stamp_id(0);
    let (store, account) = opened_with_stamps(dir.path(), &[stamp]);
    let size = store.ledger_size().expect("size");
    let now = Timestamp::from_unix(T0 + 1);
    let redeem = |issued_at: Timestamp| Command::Spend {
        stamps: vec![StampRef {
            stamp_id: stamp,
            issued_at,
        }],
        spend_for: SpendFor::Redeem {
            context: "site".into(),
        },
    };
    // The stamps are keyed by issue time: a reference with another time finds nothing.
    for wrong in [T0 - 1, T0 + 1, 0] {
        let results = store
            .apply(&[redeem(Timestamp::from_unix(wrong))], now)
            .expect("apply");
        assert_eq!(
            results[0],
            Err(Refusal::NotSold(stamp)),
            "issued_at {wrong}"
        );
    }
    assert_eq!(store.ledger_size().expect("size"), size);
    let status = store.stamp(stamp).expect("stamp").expect("sold");
    assert_eq!(status.spent, None);
    // The right time spends it, once.
    let results = store
        .apply(&[redeem(Timestamp::from_unix(T0))], now)
        .expect("apply");
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let results = store
        .apply(&[redeem(Timestamp::from_unix(T0))], now)
        .expect("apply");
    assert_eq!(results[0], Err(Refusal::AlreadySpent(stamp)));
    let status = store.stamp(stamp).expect("stamp").expect("sold");
    assert_eq!(status.spent.map(|s| s.spent_for), Some("site".to_string()));
    assert_eq!(status.buyer, account);
    let report = audit(&store).map_err(|e| e.to_string());
    assert!(report.is_ok(), "{report:?}");
}

/// Opens a store's database with sled directly (the store's segment size), to edit it.
fn open_raw(dir: &std::path::Path) -> sled::Db {
    retry_while_locked(|| {
        sled::Config::new()
            .path(dir)
            .segment_size(8 * 1024 * 1024)
            .open()
    })
    .expect("open sled")
}

/// The entries of a `ledger_bundles` value: each a 4-byte big-endian length, then the bytes.
fn split_bundle(bundle: &[u8]) -> Vec<&[u8]> {
    let mut entries = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().expect("len")) as usize;
        entries.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    entries
}

/// How far a migration got before the data directory was reopened.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Never started: only the old trees exist.
    BeforeStart,
    /// Stopped while copying: the old trees, and every other key of the new ones.
    WhileCopying,
}

/// Leaves every other key of a new tree (a copy cut short), or none of it.
fn cut_new_tree(db: &sled::Db, name: &str, cut: Cut) {
    match cut {
        Cut::BeforeStart => assert!(db.drop_tree(name).expect("drop")),
        Cut::WhileCopying => {
            let tree = db.open_tree(name).expect("tree");
            let keys: Vec<sled::IVec> = tree.iter().keys().map(|k| k.expect("key")).collect();
            for key in keys.iter().step_by(2) {
                tree.remove(key).expect("remove");
            }
        }
    }
}

/// Rewrites a store into the layout of the first release: stamps in `sold` (id -> sale) and
/// `spent` (id -> spend record), both keyed by stamp id, and Merkle hashes one per key in
/// `hashes`.
fn rewrite_to_first_layout(dir: &std::path::Path, cut: Cut) {
    let db = open_raw(dir);
    let stamps = db.open_tree("stamps").expect("stamps");
    let sold = db.open_tree("sold").expect("sold");
    let spent = db.open_tree("spent").expect("spent");
    for item in stamps.iter() {
        let (key, value) = item.expect("read");
        let id = &key[8..];
        sold.insert(id, &value[..40]).expect("insert");
        if value.len() > 40 {
            spent.insert(id, &value[40..]).expect("insert");
        }
    }
    cut_new_tree(&db, "stamps", cut);
    cut_new_tree(&db, "stamp_ids", cut);
    let chunks = db.open_tree("hash_chunks").expect("hash_chunks");
    let hashes = db.open_tree("hashes").expect("hashes");
    for item in chunks.iter() {
        let (key, chunk) = item.expect("read");
        let first = u64::from_be_bytes(key.as_ref().try_into().expect("key")) * 16;
        for (i, hash) in (0u64..).zip(chunk.chunks(32)) {
            hashes
                .insert((first + i).to_be_bytes(), hash)
                .expect("insert");
        }
    }
    cut_new_tree(&db, "hash_chunks", cut);
    let bundles = db.open_tree("ledger_bundles").expect("ledger_bundles");
    let ledger = db.open_tree("ledger").expect("ledger");
    for item in bundles.iter() {
        let (key, bundle) = item.expect("read");
        let first = u64::from_be_bytes(key.as_ref().try_into().expect("key"));
        for (index, entry) in (first..).zip(split_bundle(&bundle)) {
            ledger.insert(index.to_be_bytes(), entry).expect("insert");
        }
    }
    cut_new_tree(&db, "ledger_bundles", cut);
    if let Cut::BeforeStart = cut {
        db.open_tree("meta")
            .expect("meta")
            .remove("bundle_start")
            .expect("remove");
    }
    db.flush().expect("flush");
}

#[test]
fn a_store_of_the_first_layout_is_migrated_on_open() {
    migrates_on_open(Cut::BeforeStart);
}

#[test]
fn a_migration_cut_short_is_finished_on_the_next_open() {
    migrates_on_open(Cut::WhileCopying);
}

fn migrates_on_open(cut: Cut) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Enough entries for several hash chunks (16 hashes each, about two hashes per entry).
    let all: Vec<Uuid> = (0..40).map(stamp_id).collect();
    let (spent, unspent) = (all[0], all[1]);
    let (store, account) = opened_with_stamps(dir.path(), &all);
    let now = Timestamp::from_unix(T0 + 1);
    let redeem = |stamp: Uuid| Command::Spend {
        stamps: vec![sold_at_t0(stamp)],
        spend_for: SpendFor::Redeem {
            context: "before".into(),
        },
    };
    let mut spends = vec![redeem(spent)];
    spends.extend(all[2..].iter().map(|id| redeem(*id)));
    for applied in store.apply(&spends, now).expect("apply") {
        assert!(applied.is_ok(), "{applied:?}");
    }
    store.sync().expect("sync");
    let before = (
        store.stamp(spent).expect("stamp"),
        store.stamp(unspent).expect("stamp"),
    );
    assert!(before.0.as_ref().is_some_and(|s| s.spent.is_some()));
    let size = store.ledger_size().expect("size");
    // Every stored hash of the log (tlog_tiles numbering: about two per entry).
    let stored: Vec<u64> = (0..tlog_tiles::stored_hash_count(size)).collect();
    assert!(stored.len() > 64, "only {} hashes", stored.len());
    let hashes_before = store.hashes(&stored).expect("hashes");
    let entries_before = store.entries(0, size).expect("entries");
    assert_eq!(entries_before.len() as u64, size);
    drop(store);
    rewrite_to_first_layout(dir.path(), cut);

    let store = reopen(dir.path()).expect("open migrates");
    assert_eq!(store.stamp(spent).expect("stamp"), before.0);
    assert_eq!(store.stamp(unspent).expect("stamp"), before.1);
    assert_eq!(store.hashes(&stored).expect("hashes"), hashes_before);
    assert_eq!(store.entries(0, size).expect("entries"), entries_before);
    let results = store
        .apply(&[redeem(spent), redeem(unspent)], now)
        .expect("apply");
    assert_eq!(results[0], Err(Refusal::AlreadySpent(spent)));
    assert!(results[1].is_ok(), "{:?}", results[1]);
    let account = store.account(account).expect("account").expect("exists");
    assert_eq!((account.stamps_purchased, account.stamps_spent), (40, 40));
    store.sync().expect("sync");
    drop(store);

    // The old trees are gone, and opening again changes nothing.
    let db = open_raw(dir.path());
    let names: Vec<_> = db.tree_names();
    for old in [&b"sold"[..], b"spent", b"hashes", b"ledger"] {
        assert!(!names.iter().any(|n| n.as_ref() == old), "{old:?} left");
    }
    drop(db);
    let store = reopen(dir.path()).expect("reopen");
    let spent_record = store.stamp(unspent).expect("stamp").and_then(|s| s.spent);
    assert_eq!(
        spent_record.map(|s| s.spent_for),
        Some("before".to_string())
    );
    let report = audit(&store).map_err(|e| e.to_string());
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn a_damaged_hash_chunk_is_reported_and_nothing_is_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, account) = opened_with_stamps(dir.path(), &[stamp_id(0)]);
    let size = store.ledger_size().expect("size");
    store.sync().expect("sync");
    drop(store);
    // Cut the last hash off the last chunk, as a damaged disk or a hand edit might.
    let db = open_raw(dir.path());
    let chunks = db.open_tree("hash_chunks").expect("hash_chunks");
    let (key, chunk) = chunks.last().expect("read").expect("a chunk");
    chunks
        .insert(key, &chunk[..chunk.len() - 32])
        .expect("insert");
    db.flush().expect("flush");
    drop((chunks, db));

    let store = reopen(dir.path()).expect("reopen");
    let credit = Command::Credit {
        account_id: account,
        amount: 5,
        reference: "after the damage".into(),
    };
    match store.apply(&[credit], Timestamp::from_unix(T0 + 1)) {
        Err(pennypost::store::StoreError::Corrupt { .. }) => {}
        other => panic!("a damaged hash chunk was not reported: {other:?}"),
    }
    assert_eq!(store.ledger_size().expect("size"), size);
    let balance = store
        .account(account)
        .expect("account")
        .expect("exists")
        .balance;
    assert_eq!(balance, 100, "the refused batch changed the balance");
}

#[test]
fn ledger_entries_read_back_from_any_start_across_bundles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, account) = opened_with_stamps(dir.path(), &[]);
    let mut time = T0;
    // Small entries (credits), and purchases big enough (about 37 KB each) that a bundle closes
    // on its byte limit before its count limit.
    for round in 0..6u128 {
        time += 1;
        let now = Timestamp::from_unix(time);
        let mut batch: Vec<Command> = (0..5)
            .map(|i| Command::Credit {
                account_id: account,
                amount: 1000,
                reference: format!("round {round} credit {i}"),
            })
            .collect();
        batch.push(Command::Purchase {
            account_id: account,
            unit_price: 1,
            idempotency_key_sha256: None,
            purchase_id: Uuid::from_u128(0xb16_0000 + round),
            kid: issuer().0,
            issued_at: now,
            expires_at: now.plus_secs(3600),
            stamp_ids: (0..960)
                .map(|i| Uuid::from_u128((round << 32) + 0xb16_0000_0000 + i))
                .collect(),
        });
        for applied in store.apply(&batch, now).expect("apply") {
            assert!(applied.is_ok(), "{applied:?}");
        }
    }
    let size = store.ledger_size().expect("size");
    let one_by_one: Vec<Vec<u8>> = (0..size)
        .map(|i| {
            let mut entry = store.entries(i, 1).expect("entry");
            assert_eq!(entry.len(), 1, "entry {i}");
            entry.remove(0)
        })
        .collect();
    assert!(one_by_one.iter().any(|e| e.len() > 30_000));
    for start in 0..=size {
        for limit in [0, 1, 2, 7, 8, 9, 17, 1000] {
            let got = store.entries(start, limit).expect("entries");
            let end = (start + limit).min(size);
            assert_eq!(
                got,
                one_by_one[start as usize..end as usize],
                "entries({start}, {limit})"
            );
        }
    }
    // Each entry carries its own index: none is read from the wrong place.
    for (i, entry) in one_by_one.iter().enumerate() {
        let text = String::from_utf8_lossy(entry);
        assert!(text.contains(&format!("\"index\":{i},")), "{text:.80}");
    }
    drop(store);
    let store = reopen(dir.path())
        .map_err(|e| e.to_string())
        .expect("reopen");
    assert_eq!(store.entries(0, size).expect("entries"), one_by_one);
    let report = audit(&store).map_err(|e| e.to_string());
    assert!(report.is_ok(), "{report:?}");
    drop(store);

    // No bundle holds more than 8 entries or 64 KiB + 4 bytes (so none can become a sled
    // blob), and the big purchases closed some bundles before their eighth entry.
    let db = open_raw(dir.path());
    let bundles = db.open_tree("ledger_bundles").expect("ledger_bundles");
    let mut counts = Vec::new();
    for item in bundles.iter() {
        let (_, bundle) = item.expect("read");
        assert!(
            bundle.len() <= 64 * 1024 + 4,
            "bundle of {} bytes",
            bundle.len()
        );
        let count = split_bundle(&bundle).len();
        assert!(count <= 8, "bundle of {count} entries");
        counts.push(count);
    }
    counts.pop();
    assert!(
        counts.iter().any(|c| *c < 8),
        "no bundle closed on size: {counts:?}"
    );
}

#[test]
fn spend_naming_a_stamp_twice_counts_it_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stamp = stamp_id(0);
    let (store, account) = opened_with_stamps(dir.path(), &[stamp]);
    let results = store
        .apply(
            &[Command::Spend {
                stamps: vec![sold_at_t0(stamp), sold_at_t0(stamp)],
                spend_for: SpendFor::Redeem {
                    context: "twice".into(),
                },
            }],
            Timestamp::from_unix(T0 + 1),
        )
        .expect("apply");
    let stamps_spent = store
        .account(account)
        .expect("account")
        .expect("exists")
        .stamps_spent;
    // Either refusing the command or spending the stamp once would be right; what must not
    // happen is one stamp cancelled as two.
    if results[0].is_ok() {
        assert_eq!(stamps_spent, 1, "one stamp counted as {stamps_spent} spent");
    } else {
        assert_eq!(stamps_spent, 0);
    }
    let report = audit(&store).map_err(|e| e.to_string());
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn purchase_naming_a_stamp_twice_sells_what_it_charges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, account) = opened_with_stamps(dir.path(), &[]);
    let stamp = stamp_id(0);
    let now = Timestamp::from_unix(T0 + 1);
    let results = store
        .apply(
            &[Command::Purchase {
                account_id: account,
                unit_price: 1,
                idempotency_key_sha256: None,
                purchase_id: Uuid::from_u128(2),
                kid: issuer().0,
                issued_at: now,
                expires_at: now.plus_secs(3600),
                stamp_ids: vec![stamp, stamp],
            }],
            now,
        )
        .expect("apply");
    let account = store.account(account).expect("account").expect("exists");
    let sold = u64::from(store.stamp(stamp).expect("stamp").is_some());
    // Refusing the purchase or selling (and charging for) one stamp would both be right.
    assert_eq!(
        (100 - account.balance, account.stamps_purchased),
        (sold, sold),
        "charged {} and counted {} stamps for {sold} sold ({:?})",
        100 - account.balance,
        account.stamps_purchased,
        results[0]
    );
    let report = audit(&store).map_err(|e| e.to_string());
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn zero_credit_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, account) = opened_with_stamps(dir.path(), &[stamp_id(0)]);
    let size = store.ledger_size().expect("size");
    let results = store
        .apply(
            &[Command::Credit {
                account_id: account,
                amount: 0,
                reference: "zero".into(),
            }],
            Timestamp::from_unix(T0 + 1),
        )
        .expect("apply");
    assert!(
        results[0].is_err(),
        "credit of 0 accepted: {:?}",
        results[0]
    );
    assert_eq!(store.ledger_size().expect("size"), size);
}

// ---------------------------------------------------------------------------------------------
// 4. Reads show only what is durable
// ---------------------------------------------------------------------------------------------

/// A store whose `sync` waits while `held` is set: it holds open the window between a batch
/// being applied (visible in sled) and being durable.
struct HeldSync {
    inner: SledStore,
    held: std::sync::Mutex<bool>,
    released: std::sync::Condvar,
}

impl HeldSync {
    fn hold(&self, held: bool) {
        *self.held.lock().expect("lock") = held;
        self.released.notify_all();
    }
}

impl Store for HeldSync {
    fn apply(&self, batch: &[Command], now: Timestamp) -> Result<Vec<Applied>, StoreError> {
        self.inner.apply(batch, now)
    }
    fn sync(&self) -> Result<(), StoreError> {
        let mut held = self.held.lock().expect("lock");
        while *held {
            held = self.released.wait(held).expect("wait");
        }
        self.inner.sync()
    }
    fn ledger_size(&self) -> Result<u64, StoreError> {
        self.inner.ledger_size()
    }
    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError> {
        self.inner.account(account_id)
    }
    fn account_by_api_key(&self, key: &[u8; 32]) -> Result<Option<Account>, StoreError> {
        self.inner.account_by_api_key(key)
    }
    fn stamp(&self, stamp_id: Uuid) -> Result<Option<StampRecord>, StoreError> {
        self.inner.stamp(stamp_id)
    }
    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError> {
        self.inner.post(post_id)
    }
    fn posts(&self, before: Option<Uuid>, limit: usize) -> Result<Option<Vec<Post>>, StoreError> {
        self.inner.posts(before, limit)
    }
    fn entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.entries(start, limit)
    }
    fn hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        self.inner.hashes(indexes)
    }
    fn published_keys(&self) -> Result<Vec<pennypost::keys::PublishedKey>, StoreError> {
        self.inner.published_keys()
    }
    fn checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.inner.checkpoint()
    }
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.inner.put_checkpoint(size, note)
    }
}

#[test]
fn stamp_status_and_verify_show_a_spend_only_once_it_is_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Timestamp::now();
    let store = Arc::new(HeldSync {
        inner: SledStore::open(&dir.path().join("db"), CURRENCY).expect("open"),
        held: std::sync::Mutex::new(false),
        released: std::sync::Condvar::new(),
    });
    let keys = dir.path().join("keys");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let app = App::start(AppConfig {
            store: store.clone(),
            keyring: pennypost::keys::load_or_create(&keys, now).expect("keys"),
            ledger_key: pennypost::keys::load_or_create_ledger_key(&keys, "test/log", now)
                .expect("ledger key"),
            origin: "test/log".into(),
            economy: Economy::default(),
            limits: Limits::default(),
            admin_token: "admin".into(),
        })
        .await
        .expect("service");
        let service = app.mint.clone();
        let (account_id, api_key) = service.create_account(None).await.expect("account");
        service
            .credit(account_id, 10, "setup".into())
            .await
            .expect("credit");
        let account = service.authenticate(Some(&api_key)).expect("auth");
        let purchase = service.purchase(&account, 1, None).await.expect("purchase");
        let (text, id) = (purchase.stamps[0].clone(), purchase.record.stamp_ids[0]);

        store.hold(true);
        let redeem = tokio::spawn({
            let (service, text) = (service.clone(), text.clone());
            async move { service.redeem(&text, "site".into()).await }
        });
        // Wait until the spend is applied (sled shows it) but not yet durable.
        let deadline = Instant::now() + Duration::from_secs(10);
        while store
            .inner
            .stamp(id)
            .expect("stamp")
            .and_then(|s| s.spent)
            .is_none()
        {
            assert!(Instant::now() < deadline, "the spend was never applied");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let status = service.stamp_status(id).expect("status");
        assert!(
            status.spent.is_none(),
            "status shows a spend a crash could undo"
        );
        let verified = service.verify(&text).await.expect("verify");
        assert_eq!(
            (verified.valid, verified.state),
            (true, Some(StampState::Unspent))
        );
        assert!(!redeem.is_finished(), "answered before the sync");

        store.hold(false);
        redeem.await.expect("task").expect("redeem");
        let status = service.stamp_status(id).expect("status");
        assert_eq!(status.spent.map(|s| s.spent_for), Some("site".to_string()));
        let verified = service.verify(&text).await.expect("verify");
        assert_eq!(verified.state, Some(StampState::Spent));
    });
}
