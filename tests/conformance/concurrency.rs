//! Exactly once under concurrency: threads calling `rules::apply`, and tokio tasks submitting
//! through the group committer, spend the same stamps; each stamp is spent exactly once.

use std::collections::{BTreeMap, BTreeSet};

use pennypost::commit::Committer;
use pennypost::rules::{Applied, Command, Outcome, Refusal, SpendFor};
use pennypost::time::Timestamp;
use uuid::Uuid;

use crate::harness::*;
use crate::observe::Apply as _;

/// Stamps the racers share.
const SHARED: u32 = 24;

/// [`world`], and account 0 buys the shared stamps at 1 cent, valid until 2096.
fn shared_stamps(ctx: &Ctx) {
    world(ctx);
    let buy = purchase(0, &stamps(0..SHARED))
        .price(1)
        .lifetime(at(0), Timestamp::from_unix(4_000_000_000));
    ctx.ok(buy.cmd(), at(0));
}

/// The `k`-th spend of racer `racer`: a single stamp or a pair (so that all-or-nothing races
/// too), for a redeem or a new post. Racers of even number spend single stamps, walking up
/// from 3 stamps apart, so that each stamp is tried alone (and ends spent) once 16 of them
/// took 3 steps; racers of odd number spend pairs, walking down from 7 stamps apart.
fn race_spend(racer: u32, k: u32) -> Command {
    let first = if racer % 2 == 0 {
        (racer / 2 * 3 + k) % SHARED
    } else {
        (racer * 7 + SHARED * 4 - k % SHARED) % SHARED
    };
    let mut ids = vec![stamp(first)];
    if racer % 2 == 1 {
        ids.push(stamp((first + 1 + racer % 3) % SHARED));
    }
    if (racer + k) % 3 == 0 {
        post(
            sold(&ids),
            post_id(racer * 1000 + k),
            &format!("racer {racer}"),
            "first!",
        )
    } else {
        redeem(sold(&ids), &format!("racer {racer} spend {k}"))
    }
}

/// Checks the results of a race: each stamp spent by exactly one accepted spend, whose ledger
/// index its status shows; every refusal is `AlreadySpent` of a stamp of that spend (spent by
/// another); accepted spends took consecutive new indexes; the board holds exactly the posts
/// accepted; the buyer's count is every stamp.
fn check_race(ctx: &Ctx, size_before: u64, results: &[(Command, Applied)]) {
    let mut winner: BTreeMap<Uuid, u64> = BTreeMap::new();
    let mut indexes = Vec::new();
    let mut posts = BTreeSet::new();
    for (command, applied) in results {
        let Command::Spend { stamps, spend_for } = command else {
            panic!("not a spend: {command:?}");
        };
        match applied {
            Ok(Outcome::Spent { ledger_index, .. }) => {
                indexes.push(*ledger_index);
                for s in stamps {
                    let before = winner.insert(s.stamp_id, *ledger_index);
                    assert_eq!(before, None, "stamp {} spent twice", s.stamp_id);
                }
                if let SpendFor::Post { post_id, .. } = spend_for {
                    posts.insert(*post_id);
                }
            }
            Err(Refusal::AlreadySpent(id)) => {
                assert!(stamps.iter().any(|s| s.stamp_id == *id), "{command:?}");
            }
            other => panic!("{command:?} answered {other:?}"),
        }
    }
    // A refusal named a stamp someone did spend.
    for (_, applied) in results {
        if let Err(Refusal::AlreadySpent(id)) = applied {
            assert!(winner.contains_key(id), "refused for unspent {id}");
        }
    }
    assert_eq!(winner.len(), SHARED as usize, "every stamp spent once");
    for (id, index) in &winner {
        let spent = ctx.stamp(*id).and_then(|s| s.spent).expect("spent");
        assert_eq!(spent.ledger_index, *index, "stamp {id}");
    }
    indexes.sort_unstable();
    let size = ctx.size();
    assert_eq!(indexes, (size_before..size).collect::<Vec<_>>());
    let board: BTreeSet<Uuid> = ctx
        .store()
        .posts(None, 1000)
        .expect("board")
        .expect("a board")
        .iter()
        .map(|p| p.post_id)
        .collect();
    assert_eq!(board, posts);
    let buyer = ctx.account(account(0));
    assert_eq!(buyer.stamps_spent, u64::from(SHARED));
    assert!(
        results.iter().any(|(_, a)| a.is_err()),
        "the racers never met"
    );
}

pub fn threads_spend_each_stamp_exactly_once(ctx: &mut Ctx) {
    shared_stamps(ctx);
    let size_before = ctx.size();
    const THREADS: u32 = 8;
    const BATCH: u32 = 4;
    let results: Vec<(Command, Applied)> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..THREADS)
            .map(|racer| {
                let store = ctx.shared();
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for round in 0..SHARED.div_ceil(BATCH) {
                        let batch: Vec<Command> = (round * BATCH..(round + 1) * BATCH)
                            .map(|k| race_spend(racer, k))
                            .collect();
                        let results = store.apply(&batch, at(1)).expect("apply");
                        out.extend(batch.into_iter().zip(results));
                    }
                    out
                })
            })
            .collect();
        racers
            .into_iter()
            .flat_map(|r| r.join().expect("a racer panicked"))
            .collect()
    });
    results.iter().for_each(|(c, _)| ctx.note(c));
    check_race(ctx, size_before, &results);
}

pub fn committer_tasks_spend_each_stamp_exactly_once(ctx: &mut Ctx) {
    shared_stamps(ctx);
    let size_before = ctx.size();
    const TASKS: u32 = 32;
    const STEPS: u32 = 3;
    let committer = Committer::start(
        ctx.shared(),
        pennypost::rules::Settings {
            currency: CURRENCY.into(),
        },
    )
    .expect("start the committer");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let results: Vec<(Command, Applied)> = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for racer in 0..TASKS {
            let committer = committer.clone();
            tasks.spawn(async move {
                let mut out = Vec::new();
                for k in 0..STEPS {
                    let command = race_spend(racer, k);
                    let applied = committer.submit(command.clone()).await;
                    out.push((command, applied.expect("the committer answered")));
                }
                out
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            results.extend(joined.expect("a task panicked"));
        }
        results
    });
    drop(runtime);
    results.iter().for_each(|(c, _)| ctx.note(c));
    check_race(ctx, size_before, &results);
    assert_eq!(committer.durable_size(), ctx.size());
    assert!(!committer.failed());
}
