//! The plans: random operations (accounts, credits, debits, purchases, spends, holds and
//! their captures and releases, policies), and the commands they become against what the
//! memory store holds before each batch.

use std::collections::{BTreeMap, HashMap};

use pennypost::config::Economy;
use pennypost::domain::{CreditSource, DebitReason, StampRef};
use pennypost::domain::{Policy, VotePricing};
use pennypost::rules::{Command, QuoteAction, SpendFor};
use pennypost::store::Store;
use pennypost::time::Timestamp;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::test_runner::TestCaseError;
use uuid::Uuid;

use super::{account_id, api_key, hold_id, idempotency_key, post_id, stamp_id};
use super::{ACCOUNTS, HOLDS, IDEMPOTENCY_KEYS, POOL, POSTS, REFERENCES};
use crate::observe::{self, Apply as _};
use crate::{fail, issuer, key_event, CURRENCY};

#[derive(Clone, Debug)]
pub(super) enum Target {
    Redeem,
    Post(Pick),
    Vote(Pick, bool),
}

#[derive(Clone, Debug)]
pub(super) enum Op {
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
    /// Money taken back from an account under a reference: `None` is a fresh one, `Some(i)`
    /// one the credits use too (the two share one index of references).
    Debit {
        account: Debtor,
        amount: DebitAmount,
        reference: Option<usize>,
        reason: DebitReason,
    },
    /// The k-th (mod count) purchase with an Idempotency-Key sent before, sent again (with a
    /// new purchase id): as it was (a replay when it was accepted), or with one stamp more (a
    /// conflict).
    PurchaseAgain {
        k: usize,
        change: bool,
    },
    /// The k-th (mod count) debit sent before, sent again: as it was (a replay), or as a
    /// credit of the same account, amount and reference (a conflict).
    DebitAgain {
        k: usize,
        as_credit: bool,
    },
    /// Holds stamps picked as a redeem's (a `Priced` count is 1 plus `off`) for `ttl_secs`,
    /// under the next id of the hold pool.
    Hold {
        stamps: Stamps,
        ttl_secs: u64,
    },
    Capture(HoldPick),
    Release(HoldPick),
}

/// The hold a capture or release names, among those made before the batch: `Live(k)` is the
/// k-th (mod count) live one, `Revoked(k)` the k-th live one holding a stamp a revoke took
/// (else as `Live`), `Made(k)` the k-th of all; `Pool(i)` is pool id `i`. (Without any, the
/// pool id.)
#[derive(Clone, Copy, Debug)]
pub(super) enum HoldPick {
    Live(usize),
    Revoked(usize),
    Made(usize),
    Pool(usize),
}

/// Whom a debit takes money from.
#[derive(Clone, Copy, Debug)]
pub(super) enum Debtor {
    Account(usize),
    /// The buyer of the first stamp of the k-th (mod count) live hold, so that a revoke may
    /// take held stamps before the hold's capture (account 0 when none is live).
    Holder(usize),
}

/// How much a debit takes back.
#[derive(Clone, Copy, Debug)]
pub(super) enum DebitAmount {
    Fixed(u64),
    /// The account's balance (as the memory store has it, none when in debt) plus this much:
    /// more than it holds, so its stamps are revoked (the latest purchase first) and what
    /// they do not cover stays a debt.
    OverBalance(u64),
}

/// The stamps of a spend.
#[derive(Clone, Debug)]
pub(super) enum Stamps {
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
pub(super) enum Pick {
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

/// The stamps of a spend or hold: picked one by one, or of one payer at its price.
fn stamps_strategy() -> impl Strategy<Value = Stamps> {
    let stamp = prop_oneof![
        5 => (0..POOL).prop_map(Pick::Unspent),
        2 => (0..POOL).prop_map(Pick::Known),
        1 => (0..POOL).prop_map(Pick::Pool),
    ];
    let picks =
        prop_oneof![3 => vec(stamp.clone(), 1..=1), 2 => vec(stamp, 2..=3)].prop_map(Stamps::Picks);
    let priced = (
        0..ACCOUNTS,
        prop_oneof![1 => Just(-1i64), 8 => Just(0i64), 1 => Just(1i64)],
    )
        .prop_map(|(payer, off)| Stamps::Priced { payer, off });
    prop_oneof![2 => picks, 3 => priced]
}

/// Debits (a fixed amount, or more than the balance: a revoke, a debt), and debits sent again.
fn debit_strategy() -> impl Strategy<Value = Op> {
    let amount = prop_oneof![
        1 => (1u64..=40).prop_map(DebitAmount::Fixed),
        2 => (1u64..=10).prop_map(DebitAmount::OverBalance),
    ];
    let reason = prop_oneof![
        Just(DebitReason::Refund),
        Just(DebitReason::Dispute),
        Just(DebitReason::Correction),
    ];
    prop_oneof![
        3 => (
            prop_oneof![
                2 => (0..ACCOUNTS).prop_map(Debtor::Account),
                1 => (0..HOLDS).prop_map(Debtor::Holder),
            ],
            amount,
            proptest::option::weighted(0.3, 0..REFERENCES),
            reason,
        )
            .prop_map(|(account, amount, reference, reason)| Op::Debit {
                account,
                amount,
                reference,
                reason,
            }),
        1 => (any::<usize>(), prop_oneof![3 => Just(false), 1 => Just(true)])
            .prop_map(|(k, as_credit)| Op::DebitAgain { k, as_credit }),
    ]
}

/// Holds (a `ttl_secs` of 0 is refused; most expire within a few batches), captures and
/// releases.
fn hold_strategy() -> impl Strategy<Value = Op> {
    let hold = || {
        prop_oneof![
            3 => (0..HOLDS).prop_map(HoldPick::Live),
            2 => (0..HOLDS).prop_map(HoldPick::Revoked),
            2 => (0..HOLDS).prop_map(HoldPick::Made),
            1 => (0..HOLDS).prop_map(HoldPick::Pool),
        ]
    };
    prop_oneof![
        4 => (
            stamps_strategy(),
            prop_oneof![1 => Just(0u64), 6 => 5u64..=60, 1 => Just(300u64)],
        )
            .prop_map(|(stamps, ttl_secs)| Op::Hold { stamps, ttl_secs }),
        3 => hold().prop_map(Op::Capture),
        1 => hold().prop_map(Op::Release),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let pool: Vec<usize> = (0..POOL).collect();
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
        1 => (any::<usize>(), any::<bool>())
            .prop_map(|(k, change)| Op::PurchaseAgain { k, change }),
        10 => (stamps_strategy(), target)
            .prop_map(|(stamps, target)| Op::Spend { stamps, target }),
        1 => policy_strategy().prop_map(Op::Policy),
        3 => debit_strategy(),
        3 => hold_strategy(),
    ]
}

/// Batches of 1 to 10 commands, each applied at the previous batch's time plus -5..=30 seconds
/// (the clock may step back; the store must keep entry times monotonic). Most plans write a
/// policy first, as every server start does; the others spend unpriced until one comes.
pub(super) fn plan_strategy() -> impl Strategy<Value = Vec<(Vec<Op>, i64)>> {
    (
        proptest::option::weighted(0.8, policy_strategy()),
        vec((vec(op_strategy(), 1..=10), -5i64..=30), 4..=16),
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
pub(super) struct View {
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
    /// Each account's balance, below zero for a debt.
    balances: HashMap<Uuid, i64>,
    /// Pool holds made, in id order, and those of them live (held and not expired).
    holds: Vec<Uuid>,
    live_holds: Vec<Uuid>,
    /// The buyer of each live hold's first stamp.
    holders: Vec<Uuid>,
    /// Live holds holding a spent stamp (which only a revoke can take from a live hold).
    revoked_holds: Vec<Uuid>,
}

impl View {
    fn hold(&self, pick: HoldPick) -> Uuid {
        let nth = |holds: &[Uuid], k: usize| (!holds.is_empty()).then(|| holds[k % holds.len()]);
        let picked = match pick {
            HoldPick::Live(k) => nth(&self.live_holds, k),
            HoldPick::Revoked(k) => {
                nth(&self.revoked_holds, k).or_else(|| nth(&self.live_holds, k))
            }
            HoldPick::Made(k) => nth(&self.holds, k),
            HoldPick::Pool(_) => None,
        };
        let (HoldPick::Live(i) | HoldPick::Revoked(i) | HoldPick::Made(i) | HoldPick::Pool(i)) =
            pick;
        picked.unwrap_or_else(|| hold_id(i))
    }

    pub(super) fn of(store: &dyn Store, now: Timestamp) -> Result<View, TestCaseError> {
        let mut view = View {
            sold: BTreeMap::new(),
            unspent: Vec::new(),
            unspent_by: BTreeMap::new(),
            posts: Vec::new(),
            quotes: HashMap::new(),
            balances: HashMap::new(),
            holds: Vec::new(),
            live_holds: Vec::new(),
            holders: Vec::new(),
            revoked_holds: Vec::new(),
        };
        for id in (0..ACCOUNTS).map(account_id) {
            if let Some(account) = store.account(id).map_err(fail)? {
                view.balances.insert(id, account.signed_balance());
            }
        }
        for id in (0..HOLDS).map(hold_id) {
            if let Some(hold) = store.hold(id).map_err(fail)? {
                view.holds.push(id);
                if hold.is_live(now) {
                    view.live_holds.push(id);
                    let mut stamps = Vec::new();
                    for held in &hold.stamps {
                        stamps.extend(store.stamp(held.stamp_id).map_err(fail)?);
                    }
                    view.holders.extend(stamps.first().map(|s| s.buyer));
                    if stamps.iter().any(|s| s.spent.is_some()) {
                        view.revoked_holds.push(id);
                    }
                }
            }
        }
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

/// Turns ops into commands, minting the fresh values (purchase ids, references, contexts,
/// hold ids) and keeping the debits sent, to send them again.
#[derive(Default)]
pub(super) struct Minter {
    next: u128,
    /// Hold ids taken from the pool so far (the next hold takes the next, mod the pool).
    holds: usize,
    debits: Vec<Command>,
    keyed_purchases: Vec<Command>,
}

impl Minter {
    fn fresh(&mut self) -> u128 {
        self.next += 1;
        self.next
    }

    pub(super) fn command(&mut self, op: &Op, now: Timestamp, view: &View) -> Command {
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
            } => {
                let purchase = Command::Purchase {
                    account_id: account_id(*account),
                    unit_price: *unit_price,
                    idempotency_key_sha256: key.map(idempotency_key),
                    purchase_id: Uuid::from_u128(0x9a1d_0000_0000 + self.fresh()),
                    kid: issuer().0,
                    issued_at: now,
                    expires_at: Timestamp::from_unix(now.unix() + ttl),
                    stamp_ids: stamps.iter().copied().map(stamp_id).collect(),
                };
                if key.is_some() {
                    self.keyed_purchases.push(purchase.clone());
                }
                purchase
            }
            Op::PurchaseAgain { k, change } => {
                let count = self.keyed_purchases.len();
                let Some(Command::Purchase {
                    account_id,
                    unit_price,
                    idempotency_key_sha256,
                    kid,
                    issued_at,
                    expires_at,
                    mut stamp_ids,
                    ..
                }) = self.keyed_purchases.get(k % count.max(1)).cloned()
                else {
                    // None sent yet: a keyed purchase of one stamp for the first account.
                    return self.command(
                        &Op::Purchase {
                            account: 0,
                            unit_price: 1,
                            stamps: vec![k % POOL],
                            key: Some(0),
                            ttl: 600,
                        },
                        now,
                        view,
                    );
                };
                if *change {
                    stamp_ids.push(stamp_id((k / count.max(1)) % POOL));
                }
                Command::Purchase {
                    account_id,
                    unit_price,
                    idempotency_key_sha256,
                    purchase_id: Uuid::from_u128(0x9a1d_0000_0000 + self.fresh()),
                    kid,
                    issued_at,
                    expires_at,
                    stamp_ids,
                }
            }
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
                let price = match &spend_for {
                    SpendFor::Post { .. } => view.quotes.get(&(payer_of(stamps), None)),
                    SpendFor::Vote { post_id, .. } => {
                        view.quotes.get(&(payer_of(stamps), Some(*post_id)))
                    }
                    SpendFor::Redeem { .. } => None,
                };
                let refs = stamp_refs(stamps, price.copied(), view, now);
                Command::Spend {
                    stamps: refs,
                    spend_for,
                }
            }
            Op::Policy(policy) => Command::Policy {
                policy: policy.clone(),
            },
            Op::Debit {
                account,
                amount,
                reference,
                reason,
            } => {
                let account_id = match account {
                    Debtor::Account(i) => account_id(*i),
                    Debtor::Holder(k) if !view.holders.is_empty() => {
                        view.holders[k % view.holders.len()]
                    }
                    Debtor::Holder(_) => account_id(0),
                };
                let amount = match amount {
                    DebitAmount::Fixed(amount) => *amount,
                    DebitAmount::OverBalance(over) => {
                        let balance = view.balances.get(&account_id).copied().unwrap_or(0);
                        u64::try_from(balance).unwrap_or(0) + over
                    }
                };
                let debit = Command::Debit {
                    account_id,
                    amount,
                    reference: match reference {
                        Some(i) => format!("ref-{i}"),
                        None => format!("fresh-{}", self.fresh()),
                    },
                    source: CreditSource::Operator,
                    reason: *reason,
                };
                self.debits.push(debit.clone());
                debit
            }
            Op::DebitAgain { k, as_credit } => {
                let Some(Command::Debit {
                    account_id,
                    amount,
                    reference,
                    source,
                    reason,
                }) = self.debits.get(k % self.debits.len().max(1)).cloned()
                else {
                    // None sent yet: a small debit of the first account.
                    return self.command(
                        &Op::Debit {
                            account: Debtor::Account(0),
                            amount: DebitAmount::Fixed(1),
                            reference: None,
                            reason: DebitReason::Correction,
                        },
                        now,
                        view,
                    );
                };
                if *as_credit {
                    Command::Credit {
                        account_id,
                        amount,
                        reference,
                        source,
                    }
                } else {
                    Command::Debit {
                        account_id,
                        amount,
                        reference,
                        source,
                        reason,
                    }
                }
            }
            Op::Hold { stamps, ttl_secs } => {
                let hold = hold_id(self.holds % HOLDS);
                self.holds += 1;
                Command::Hold {
                    hold_id: hold,
                    stamps: stamp_refs(stamps, None, view, now),
                    context: format!("gate:{}", self.fresh()),
                    ttl_secs: *ttl_secs,
                }
            }
            Op::Capture(p) => Command::Capture {
                hold_id: view.hold(*p),
            },
            Op::Release(p) => Command::Release {
                hold_id: view.hold(*p),
            },
        }
    }
}

/// The account a `Priced` pick of stamps pays with (any, for stamps picked one by one: their
/// count is not the price's).
fn payer_of(stamps: &Stamps) -> Uuid {
    match stamps {
        Stamps::Priced { payer, .. } => account_id(*payer),
        Stamps::Picks(_) => account_id(0),
    }
}

/// The stamps `stamps` picks from `view`: for `Priced`, `price` of its payer's (one when
/// `None`) plus its `off`, or all the payer has when that is fewer. Each named once, with the
/// issue time it was sold with.
fn stamp_refs(stamps: &Stamps, price: Option<u64>, view: &View, now: Timestamp) -> Vec<StampRef> {
    let chosen: Vec<Uuid> = match stamps {
        Stamps::Picks(picks) => {
            let sold: Vec<Uuid> = view.sold.keys().copied().collect();
            picks
                .iter()
                .map(|p| pick(&sold, &view.unspent, *p, stamp_id))
                .collect()
        }
        Stamps::Priced { payer, off } => {
            let want = i64::try_from(price.unwrap_or(1))
                .unwrap_or(i64::MAX)
                .saturating_add(*off)
                .max(0);
            let own = view
                .unspent_by
                .get(&account_id(*payer))
                .map_or(&[][..], |s| &s[..]);
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
    refs
}
