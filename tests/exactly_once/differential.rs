//! The sled store against the memory store: the same random plan applied to both must give
//! the same outcomes, the same ledger bytes and the same observable state (see `main.rs`).
//! Plans write random policies (the server's default, the flat one, and others) and spend
//! stamps at the price the policy asks of one payer, or at a wrong count, or of mixed payers,
//! so flood pricing, quadratic votes and refunds run on both stores.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use pennypost::config::Economy;
use pennypost::domain::{CreditSource, Post, StampRef};
use pennypost::domain::{Policy, VotePricing};
use pennypost::rules::{Applied, Command, Outcome, QuoteAction, Refusal, SpendFor};
use pennypost::store::{MemoryStore, Reads as _, SledStore, Store, Writes as _};
use pennypost::time::Timestamp;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

use crate::observe::{self, Apply as _, Ids, Snapshot};
use crate::{audit, cases, fail, ids, issuer, key_event, reopen, result_kind, Coverage, CURRENCY};

const T0: i64 = 1_700_000_000;
const ACCOUNTS: usize = 5;
const POOL: usize = 60;
/// Pool stamps each of the first four accounts buys before the plan.
const PROLOGUE_STAMPS: usize = 5;
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
        stamps: Stamps,
        target: Target,
    },
    /// Writes the policy (a new `policy` entry unless it is the one in force).
    Policy(Policy),
}

/// The stamps of a spend.
#[derive(Clone, Debug)]
enum Stamps {
    /// Stamps picked one by one: any payers, any count.
    Picks(Vec<Pick>),
    /// Unspent stamps of one payer, as many as the memory store quotes for the spend (one
    /// when nothing prices it) plus `off` (a wrong count when not 0), or all it has when that
    /// is fewer.
    Priced { payer: usize, off: i64 },
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

/// The server's default policy, the flat one (`--repeat-factor 1 --vote-pricing flat
/// --refund-voters 0`), or any other a start could bring (within the bounds the server's
/// configuration allows, but small enough for a plan's few stamps to pay).
fn policy_strategy() -> impl Strategy<Value = Policy> {
    let default = Economy::default().policy;
    let flat = Policy {
        repeat_factor: 1,
        vote_pricing: VotePricing::Flat,
        refund_voters: 0,
        ..default.clone()
    };
    let random = (
        1u64..=5,
        1u64..=2,
        1u64..=2,
        prop_oneof![Just(0u64), Just(5), Just(30), Just(600)],
        1u64..=3,
        any::<bool>(),
        0u64..=3,
    )
        .prop_map(
            |(stamp_price, post_cost, vote_cost, window, factor, quadratic, refund_voters)| {
                Policy {
                    currency: CURRENCY.into(),
                    stamp_price,
                    post_cost,
                    vote_cost,
                    repeat_window_secs: window,
                    repeat_factor: factor,
                    vote_pricing: if quadratic {
                        VotePricing::Quadratic
                    } else {
                        VotePricing::Flat
                    },
                    refund_voters,
                }
            },
        );
    prop_oneof![
        2 => Just(default),
        1 => Just(flat),
        2 => random,
    ]
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
        1 => Just(Target::Redeem),
        2 => new_post.prop_map(Target::Post),
        3 => (old_post, prop_oneof![3 => Just(true), 1 => Just(false)])
            .prop_map(|(p, up)| Target::Vote(p, up)),
    ];
    let picks =
        prop_oneof![3 => vec(stamp.clone(), 1..=1), 2 => vec(stamp, 2..=3)].prop_map(Stamps::Picks);
    let priced = (
        0..ACCOUNTS,
        prop_oneof![1 => Just(-1i64), 8 => Just(0i64), 1 => Just(1i64)],
    )
        .prop_map(|(payer, off)| Stamps::Priced { payer, off });
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
        10 => (prop_oneof![2 => picks, 3 => priced], target)
            .prop_map(|(stamps, target)| Op::Spend { stamps, target }),
        1 => policy_strategy().prop_map(Op::Policy),
    ]
}

/// Batches of 1 to 8 commands, each applied at the previous batch's time plus -5..=30 seconds
/// (the clock may step back; the store must keep entry times monotonic). Most plans write a
/// policy first, as every server start does; the others spend unpriced until one comes.
fn plan_strategy() -> impl Strategy<Value = Vec<(Vec<Op>, i64)>> {
    (
        proptest::option::weighted(0.8, policy_strategy()),
        vec((vec(op_strategy(), 1..=8), -5i64..=30), 4..=16),
    )
        .prop_map(|(first, mut plan)| {
            if let Some(policy) = first {
                plan.insert(0, (vec![Op::Policy(policy)], 0));
            }
            plan
        })
}

/// What the commands of a batch may name: the pool stamps sold and the posts written before
/// it, as the memory store has them, and the prices it quotes then.
struct View {
    /// Sold pool stamps by id (so in id order), with the issue time each was sold with.
    sold: BTreeMap<Uuid, Timestamp>,
    /// Sold and not spent, in id order.
    unspent: Vec<Uuid>,
    /// Sold and not spent, per buyer, in id order.
    unspent_by: BTreeMap<Uuid, Vec<Uuid>>,
    /// Posts in board order, oldest first.
    posts: Vec<Uuid>,
    /// What a post (`None`) or a vote on a post costs each account now, when a policy prices
    /// it.
    quotes: HashMap<(Uuid, Option<Uuid>), u64>,
}

impl View {
    fn of(store: &dyn Store, now: Timestamp) -> Result<View, TestCaseError> {
        let mut view = View {
            sold: BTreeMap::new(),
            unspent: Vec::new(),
            unspent_by: BTreeMap::new(),
            posts: Vec::new(),
            quotes: HashMap::new(),
        };
        for id in (0..POOL).map(stamp_id) {
            if let Some(stamp) = store.stamp(id).map_err(fail)? {
                view.sold.insert(id, stamp.issued_at);
                if stamp.spent.is_none() {
                    view.unspent.push(id);
                    view.unspent_by.entry(stamp.buyer).or_default().push(id);
                }
            }
        }
        let board = store.posts(None, observe::BOARD_MAX).map_err(fail)?;
        view.posts = board
            .unwrap_or_default()
            .iter()
            .rev()
            .map(|p| p.post_id)
            .collect();
        for payer in (0..ACCOUNTS).map(account_id) {
            let actions = std::iter::once((QuoteAction::Post, None)).chain(
                view.posts
                    .iter()
                    .map(|p| (QuoteAction::Vote { post_id: *p }, Some(*p))),
            );
            for (action, post) in actions {
                if let Ok(price) = store.quote(payer, action, now).map_err(fail)? {
                    view.quotes.insert((payer, post), price);
                }
            }
        }
        Ok(view)
    }
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

    fn command(&mut self, op: &Op, now: Timestamp, view: &View) -> Command {
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
                source: CreditSource::Operator,
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
                let spend_for = match target {
                    Target::Redeem => SpendFor::Redeem {
                        context: format!("site:{}", self.fresh()),
                    },
                    Target::Post(p) => SpendFor::Post {
                        post_id: pick(&view.posts, &[], *p, post_id),
                        author: format!("author {}", self.fresh()),
                        body: "a penny for your thoughts".into(),
                        verified: false,
                    },
                    Target::Vote(p, up) => SpendFor::Vote {
                        post_id: pick(&view.posts, &[], *p, post_id),
                        up: *up,
                    },
                };
                let chosen: Vec<Uuid> = match stamps {
                    Stamps::Picks(picks) => {
                        let sold: Vec<Uuid> = view.sold.keys().copied().collect();
                        picks
                            .iter()
                            .map(|p| pick(&sold, &view.unspent, *p, stamp_id))
                            .collect()
                    }
                    Stamps::Priced { payer, off } => {
                        let payer = account_id(*payer);
                        let price = match &spend_for {
                            SpendFor::Post { .. } => view.quotes.get(&(payer, None)),
                            SpendFor::Vote { post_id, .. } => {
                                view.quotes.get(&(payer, Some(*post_id)))
                            }
                            SpendFor::Redeem { .. } => None,
                        };
                        let want = i64::try_from(price.copied().unwrap_or(1))
                            .unwrap_or(i64::MAX)
                            .saturating_add(*off)
                            .max(0);
                        let own = view.unspent_by.get(&payer).map_or(&[][..], |s| &s[..]);
                        let take = usize::try_from(want).unwrap_or(usize::MAX).min(own.len());
                        own[..take].to_vec()
                    }
                };
                let mut refs: Vec<StampRef> = Vec::new();
                for id in chosen {
                    // The service never sends one stamp twice (the store refuses it: see the tests below).
                    if !refs.iter().any(|r| r.stamp_id == id) {
                        // A stamp names the issue time it was sold with; one never sold, any.
                        let issued_at = view.sold.get(&id).copied().unwrap_or(now);
                        refs.push(StampRef {
                            stamp_id: id,
                            issued_at,
                        });
                    }
                }
                Command::Spend {
                    stamps: refs,
                    spend_for,
                }
            }
            Op::Policy(policy) => Command::Policy {
                policy: policy.clone(),
            },
        }
    }
}

/// What the sled store acknowledged so far, to check its promises directly.
#[derive(Default)]
struct Acked {
    /// Ledger entries written (each write takes the next index).
    writes: u64,
    /// Every stamp id in a spend the store accepted.
    spent: HashSet<Uuid>,
    /// Per account: credits and purchase totals accepted (replays not counted again), and
    /// the refunds its posts got.
    credited: HashMap<Uuid, u64>,
    paid: HashMap<Uuid, u64>,
    refunded: HashMap<Uuid, u64>,
}

/// Every id the plans can name: a snapshot reads all of them.
fn pool_ids() -> Ids {
    Ids {
        accounts: (0..ACCOUNTS).map(account_id).collect(),
        api_keys: (0..ACCOUNTS).map(api_key).collect(),
        stamps: (0..POOL).map(stamp_id).collect(),
        posts: (0..POSTS).map(post_id).collect(),
        holds: Default::default(),
    }
}

/// Compares everything observable of the sled store with the memory store (ledger bytes,
/// hashes, accounts, stamps, posts, board, keys), and with what the sled store's own answers
/// said: a stamp is spent exactly when a spend of it was accepted, each account's balance is
/// its credits minus its purchases plus its refunds, and its `stamps_spent` counts the spent
/// stamps it bought. And, read from the ledger: every refund directly follows an up-vote
/// spend of the same post, and no post is refunded twice.
fn check_state(sled: &SledStore, memory: &Snapshot, acked: &Acked) -> Result<(), TestCaseError> {
    let stored = observe::snapshot(sled, &pool_ids()).map_err(fail)?;
    prop_assert_eq!(&stored, memory, "sled and memory stores differ");
    prop_assert_eq!(stored.ledger_size, acked.writes);
    let mut spent_by_buyer: HashMap<Uuid, u64> = HashMap::new();
    for (id, stamp) in &stored.stamps {
        let spent = stamp.as_ref().is_some_and(|s| s.spent.is_some());
        prop_assert_eq!(spent, acked.spent.contains(id), "stamp {} spent", id);
        if let Some(stamp) = stamp.as_ref().filter(|s| s.spent.is_some()) {
            *spent_by_buyer.entry(stamp.buyer).or_default() += 1;
        }
    }
    for (id, account) in &stored.accounts {
        let Some(account) = account else { continue };
        let credited = acked.credited.get(id).copied().unwrap_or(0);
        let paid = acked.paid.get(id).copied().unwrap_or(0);
        let refunded = acked.refunded.get(id).copied().unwrap_or(0);
        prop_assert!(credited + refunded >= paid, "account {} overspent", id);
        prop_assert_eq!(
            account.balance,
            credited + refunded - paid,
            "account {}",
            id
        );
        prop_assert_eq!(account.refunds_total, refunded, "account {} refunds", id);
        let spent = spent_by_buyer.get(id).copied().unwrap_or(0);
        prop_assert_eq!(account.stamps_spent, spent, "account {} stamps_spent", id);
    }
    // The board is every post, newest first.
    let written: Vec<&Post> = stored.posts.values().flatten().collect();
    prop_assert_eq!(stored.board.len(), written.len(), "posts on the board");
    prop_assert!(
        stored.board.windows(2).all(|w| w[0].seq > w[1].seq),
        "board order"
    );
    check_refund_entries(&stored.entries)
}

/// Every `refund` entry directly follows the spend of an up-vote on the same post, and no
/// post is refunded twice.
fn check_refund_entries(entries: &[String]) -> Result<(), TestCaseError> {
    let mut refunded = HashSet::new();
    for (i, text) in entries.iter().enumerate() {
        let entry: serde_json::Value = serde_json::from_str(text).map_err(fail)?;
        if entry["kind"] != "refund" {
            continue;
        }
        let post = entry["post_id"].as_str().unwrap_or_default();
        let vote = match i.checked_sub(1) {
            Some(v) => serde_json::from_str::<serde_json::Value>(&entries[v]).map_err(fail)?,
            None => serde_json::Value::Null,
        };
        prop_assert!(
            vote["kind"] == "spend"
                && vote["action"] == "vote"
                && vote["direction"] == "up"
                && vote["target"] == post,
            "refund at {} does not follow an up-vote of post {}: {}",
            i,
            post,
            vote
        );
        prop_assert!(
            refunded.insert(post.to_string()),
            "post {} refunded twice",
            post
        );
    }
    Ok(())
}

/// Checks, from one accepted or refused command of the sled store, the promises said
/// directly: each ledger write takes the next index and a replay answers an earlier one; a
/// spend naming a spent stamp first is refused as already spent; no stamp is spent twice.
/// Returns the stamp ids of a refused spend.
fn check_applied(
    command: &Command,
    applied: &Applied,
    acked: &mut Acked,
) -> Result<Option<Vec<Uuid>>, TestCaseError> {
    let index = match applied {
        Ok(Outcome::KeyPublished { ledger_index })
        | Ok(Outcome::Credited { ledger_index, .. })
        | Ok(Outcome::Debited { ledger_index, .. })
        | Ok(Outcome::Spent { ledger_index, .. }) => Some(*ledger_index),
        Ok(Outcome::Purchased { record, .. }) => Some(record.ledger_index),
        Ok(Outcome::Policy { ledger_index }) => *ledger_index,
        // The plans make no holds; a capture would be a spend's write.
        Ok(Outcome::Captured { ledger_index, .. }) => Some(*ledger_index),
        Ok(Outcome::AccountCreated)
        | Ok(Outcome::Held { .. })
        | Ok(Outcome::HoldBroken { .. })
        | Ok(Outcome::Released)
        | Err(_) => None,
    };
    let replay = matches!(applied, Ok(Outcome::Purchased { replayed: true, .. }));
    let credit = matches!(command, Command::Credit { .. });
    let new_write = match index {
        Some(index) if index == acked.writes && !replay => {
            acked.writes += 1;
            // A vote that completes a refund writes the refund right after its spend.
            if let Ok(Outcome::Spent {
                refund_ledger_index: Some(refund),
                post,
                ..
            }) = applied
            {
                prop_assert_eq!(*refund, acked.writes, "refund right after its vote");
                acked.writes += 1;
                let post = post
                    .as_ref()
                    .ok_or_else(|| fail("a refund without its post"))?;
                let payer = post.payer.ok_or_else(|| fail("a refund without a payer"))?;
                let amount = post
                    .base_postage
                    .ok_or_else(|| fail("a refund without a base postage"))?;
                prop_assert!(post.refunded, "the refunded post says so");
                *acked.refunded.entry(payer).or_default() += amount;
            }
            true
        }
        // A credit replay has no flag: it answers the first credit's (earlier) index.
        Some(index) => {
            prop_assert!(
                (replay || credit) && index < acked.writes,
                "ledger index {} of {:?} with {} written",
                index,
                command,
                acked.writes
            );
            false
        }
        None => false,
    };
    match (command, applied) {
        (
            Command::Credit {
                account_id, amount, ..
            },
            Ok(_),
        ) if new_write => *acked.credited.entry(*account_id).or_default() += amount,
        (Command::Purchase { account_id, .. }, Ok(Outcome::Purchased { record, .. }))
            if new_write =>
        {
            *acked.paid.entry(*account_id).or_default() += record.total;
        }
        (Command::Spend { stamps, .. }, applied) => {
            let stamp_ids = ids(stamps);
            let reused = stamp_ids.iter().find(|id| acked.spent.contains(id));
            // A spend naming a spent stamp first is refused as already spent.
            if let Some(first) = stamp_ids.first().filter(|id| acked.spent.contains(id)) {
                prop_assert_eq!(applied, &Err(Refusal::AlreadySpent(*first)));
            }
            match applied {
                Ok(_) => {
                    prop_assert!(reused.is_none(), "stamp {:?} spent twice", reused);
                    acked.spent.extend(stamp_ids.iter().copied());
                }
                Err(_) => return Ok(Some(stamp_ids)),
            }
        }
        _ => {}
    }
    Ok(None)
}

/// A post or vote paid above its base cost: flood pricing or a repeated vote's price.
fn price_kind(
    command: &Command,
    applied: &Applied,
    policy: Option<&Policy>,
) -> Option<&'static str> {
    let (Command::Spend { spend_for, .. }, Ok(Outcome::Spent { cost, .. }), Some(policy)) =
        (command, applied, policy)
    else {
        return None;
    };
    match spend_for {
        SpendFor::Post { .. } if *cost > policy.post_cost => Some("ok: post at a flood price"),
        SpendFor::Vote { .. } if *cost > policy.vote_cost => {
            Some("ok: repeated vote at a quadratic price")
        }
        _ => None,
    }
}

fn run_differential_case(
    plan: &[(Vec<Op>, i64)],
    coverage: &RefCell<Coverage>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let sled = SledStore::open(dir.path()).map_err(fail)?;
    let memory = MemoryStore::new();
    let mut minter = Minter::default();
    let mut acked = Acked::default();
    // The policy in force, for the coverage of prices above the base cost.
    let mut policy: Option<Policy> = None;
    let mut now = T0;

    // Every run starts by publishing the issuer key and opening, crediting and stocking four
    // of the five accounts (five stamps each, so that priced posts and votes of several payers
    // can be paid, and refunds reached); the fifth is opened (or not) by the plan.
    let mut prologue = vec![Op::Key];
    for account in 0..ACCOUNTS - 1 {
        prologue.push(Op::CreateAccount { account });
        prologue.push(Op::Credit {
            account,
            amount: 30,
            reference: None,
        });
        prologue.push(Op::Purchase {
            account,
            unit_price: 1,
            stamps: (account * PROLOGUE_STAMPS..(account + 1) * PROLOGUE_STAMPS).collect(),
            key: None,
            ttl: 3600,
        });
    }
    let batches = std::iter::once((prologue.to_vec(), 0)).chain(plan.iter().cloned());

    for (ops, step) in batches {
        now += step;
        let at = Timestamp::from_unix(now);
        let view = View::of(&memory, at)?;
        let commands: Vec<Command> = ops.iter().map(|op| minter.command(op, at, &view)).collect();
        // The sled store applies the batch in one transaction; the memory store applies each
        // command as a batch of its own, so a batch's caches cannot hide behind each other.
        let results = sled.apply(&commands, at).map_err(fail)?;
        sled.sync().map_err(fail)?;
        prop_assert_eq!(results.len(), commands.len());
        let mut refused_spends: Vec<Vec<Uuid>> = Vec::new();
        for (command, applied) in commands.iter().zip(results) {
            let mut want = memory
                .apply(std::slice::from_ref(command), at)
                .map_err(fail)?;
            prop_assert_eq!(want.len(), 1);
            *coverage
                .borrow_mut()
                .entry(result_kind(command, &applied))
                .or_default() += 1;
            if let Some(kind) = price_kind(command, &applied, policy.as_ref()) {
                *coverage.borrow_mut().entry(kind).or_default() += 1;
            }
            if let (Command::Policy { policy: written }, Ok(_)) = (command, &applied) {
                policy = Some(written.clone());
            }
            // Refusals carry typed reasons: the two stores must give the same one.
            prop_assert_eq!(&applied, &want.remove(0), "{:?}", command);
            if let Some(stamp_ids) = check_applied(command, &applied, &mut acked)? {
                refused_spends.push(stamp_ids);
            }
        }
        // A refused spend spent none of its stamps (unless a later spend in the batch did).
        for ids in refused_spends {
            for id in &ids {
                let spent = sled.stamp(*id).map_err(fail)?.and_then(|s| s.spent);
                prop_assert_eq!(spent.is_some(), acked.spent.contains(id));
            }
        }
        let want = observe::snapshot(&memory, &pool_ids()).map_err(fail)?;
        check_state(&sled, &want, &acked)?;
    }

    // What `apply` + `sync` acknowledged is what a reopened store holds.
    drop(sled);
    let sled = reopen(dir.path())?;
    let want = observe::snapshot(&memory, &pool_ids()).map_err(fail)?;
    check_state(&sled, &want, &acked)?;
    let report = audit(&sled)?;
    prop_assert_eq!(report.ledger_size, acked.writes);
    let sold = want.stamps.values().flatten().count() as u64;
    prop_assert_eq!(report.stamps_issued, sold);
    prop_assert_eq!(report.stamps_spent, acked.spent.len() as u64);
    prop_assert_eq!(report.credits_total, acked.credited.values().sum::<u64>());
    prop_assert_eq!(report.purchases_total, acked.paid.values().sum::<u64>());
    prop_assert_eq!(report.refunds_total, acked.refunded.values().sum::<u64>());

    // And it still refuses a second spend of every stamp spent before the reopen.
    let size = sled.ledger_size().map_err(fail)?;
    let respend: Vec<Command> = acked
        .spent
        .iter()
        .map(|id| {
            let issued_at = want.stamps[id].as_ref().map(|s| s.issued_at);
            Command::Spend {
                stamps: vec![StampRef {
                    stamp_id: *id,
                    issued_at: issued_at.unwrap_or(at_t0()),
                }],
                spend_for: SpendFor::Redeem {
                    context: "again".into(),
                },
            }
        })
        .collect();
    let results = sled
        .apply(&respend, Timestamp::from_unix(now))
        .map_err(fail)?;
    for (command, applied) in respend.iter().zip(results) {
        let Command::Spend { stamps, .. } = command else {
            unreachable!()
        };
        prop_assert_eq!(applied, Err(Refusal::AlreadySpent(stamps[0].stamp_id)));
    }
    prop_assert_eq!(sled.ledger_size().map_err(fail)?, size);
    Ok(())
}

fn at_t0() -> Timestamp {
    Timestamp::from_unix(T0)
}

#[test]
fn sled_store_matches_memory_store() {
    let coverage = RefCell::new(Coverage::new());
    let mut runner = TestRunner::new(Config {
        cases: cases(64),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&plan_strategy(), |plan| {
        run_differential_case(&plan, &coverage)
    });
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
        "ok: refund",
        "ok: post at a flood price",
        "ok: repeated vote at a quadratic price",
        "ok: policy written",
        "ok: policy already in force",
        "refused: wrong stamp count",
        "refused: mixed payers",
    ] {
        assert!(
            coverage.get(kind).copied().unwrap_or(0) > 0,
            "no generated run reached {kind:?}: {coverage:?}"
        );
    }
}
