//! Contention through the group committer: many tokio tasks race spends of shared stamps and
//! purchases on one account; each stamp is spent at most once (see `main.rs`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pennypost::commit::Committer;
use pennypost::domain::{CreditSource, StampRef};
use pennypost::rules::{Applied, Command, Missing, Outcome, Refusal, SpendFor};
use pennypost::store::{Reads as _, SledStore, Writes as _};
use pennypost::time::Timestamp;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

use crate::observe::Apply as _;
use crate::{audit, cases, fail, ids, issuer, key_event, reopen, result_kind, Coverage, CURRENCY};

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
    let store = SledStore::open(dir.path()).map_err(fail)?;
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
            source: CreditSource::Operator,
        },
        Command::Credit {
            account_id: buyer,
            amount: buyer_credit,
            reference: "buyer".into(),
            source: CreditSource::Operator,
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
    let committer = Committer::start(
        store.clone(),
        pennypost::rules::Settings {
            currency: CURRENCY.into(),
        },
    )
    .map_err(fail)?;
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
                                verified: false,
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
            Refusal::NotFound(Missing::Post) => {
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
