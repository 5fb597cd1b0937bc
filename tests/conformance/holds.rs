//! Holds: stamps reserved, then spent as one redeem (capture) or given back (release, expiry),
//! and never spendable by anyone else while the hold is live.

use pennypost::domain::HoldState;
use pennypost::rules::{Applied, Command, Conflict, Missing, Outcome, Refusal};
use pennypost::time::Timestamp;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::harness::*;

/// [`world`], and account 0 buys stamps `0..count` at `T0`.
fn bought(ctx: &Ctx, count: u32) {
    world(ctx);
    ctx.ok(purchase(0, &stamps(0..count)).cmd(), at(0));
}

fn hold_id(i: u32) -> Uuid {
    Uuid::from_u128(0x401d_0000_0000 + u128::from(i))
}

fn hold(i: u32, ids: &[Uuid], ttl_secs: u64) -> Command {
    Command::Hold {
        hold_id: hold_id(i),
        stamps: sold(ids),
        context: format!("hold {i}"),
        ttl_secs,
    }
}

fn capture(i: u32) -> Command {
    Command::Capture {
        hold_id: hold_id(i),
    }
}

fn release(i: u32) -> Command {
    Command::Release {
        hold_id: hold_id(i),
    }
}

fn held(i: u32, expires_at: Timestamp, count: u64) -> Outcome {
    Outcome::Held {
        hold_id: hold_id(i),
        expires_at,
        count,
    }
}

/// The state of hold `i` as `GET /v1/holds/{id}` shows it at `time`.
fn state(ctx: &Ctx, i: u32, time: Timestamp) -> &'static str {
    ctx.store()
        .hold(hold_id(i))
        .expect("read the hold")
        .expect("the hold exists")
        .state_name(time)
}

pub fn a_held_stamp_is_not_spendable(ctx: &mut Ctx) {
    bought(ctx, 3);
    assert_eq!(ctx.ok(hold(0, &[stamp(0)], 30), at(10)), held(0, at(40), 1));
    assert_eq!(ctx.size(), 4, "a hold writes no entry");
    assert_eq!(state(ctx, 0, at(10)), "held");
    ctx.ok(post(sold(&[stamp(1)]), post_id(0), "a", "b"), at(11));
    for spend in [
        redeem(sold(&[stamp(0)]), "site"),
        post(sold(&[stamp(0)]), post_id(1), "a", "b"),
        vote(sold(&[stamp(0)]), post_id(0), true),
        // All or none: the free stamp is not spent either.
        redeem(sold(&[stamp(2), stamp(0)]), "site"),
        hold(1, &[stamp(0)], 30),
        hold(1, &[stamp(2), stamp(0)], 30),
    ] {
        ctx.refused(spend, at(12), Refusal::StampHeld(stamp(0)));
    }
    // At its expiry the hold holds nothing.
    assert_eq!(state(ctx, 0, at(40)), "expired");
    ctx.ok(redeem(sold(&[stamp(0)]), "site"), at(40));
}

pub fn a_spent_stamp_cannot_be_held(ctx: &mut Ctx) {
    bought(ctx, 3);
    ctx.ok(redeem(sold(&[stamp(0)]), "site"), at(10));
    ctx.refused(
        hold(0, &[stamp(1), stamp(0)], 30),
        at(11),
        Refusal::AlreadySpent(stamp(0)),
    );
    ctx.refused(hold(0, &[stamp(9)], 30), at(11), Refusal::NotSold(stamp(9)));
    for ttl in [0, 301] {
        ctx.refused(hold(0, &[stamp(1)], ttl), at(11), Refusal::HoldTtl);
    }
    ctx.ok(hold(0, &[stamp(1)], 300), at(11));
    ctx.refused(
        hold(0, &[stamp(2)], 30),
        at(12),
        Refusal::IdempotencyConflict(Conflict::HoldCollided),
    );
    for unknown in [capture(7), release(7)] {
        ctx.refused(unknown, at(12), Refusal::NotFound(Missing::Hold));
    }
}

pub fn a_capture_writes_one_redeem_and_answers_the_same_again(ctx: &mut Ctx) {
    bought(ctx, 3);
    ctx.ok(hold(0, &[stamp(0), stamp(1)], 30), at(10));
    let captured = |replayed| Outcome::Captured {
        ledger_index: 4,
        spent_at: at(20),
        cost: 2,
        replayed,
    };
    assert_eq!(ctx.ok(capture(0), at(20)), captured(false));
    let entry = ctx.entry(4);
    assert_eq!(entry["kind"], "spend");
    assert_eq!(entry["action"], "redeem");
    assert_eq!(entry["target"], hex::encode(Sha256::digest(b"hold 0")));
    assert_eq!(
        entry["stamp_ids"],
        serde_json::json!([stamp(0).to_string(), stamp(1).to_string()])
    );
    for id in [stamp(0), stamp(1)] {
        let spent = ctx.stamp(id).and_then(|s| s.spent).expect("spent");
        assert_eq!(
            (spent.ledger_index, spent.spent_for.as_str()),
            (4, "hold 0")
        );
    }
    assert!(!ctx.is_spent(stamp(2)));
    assert_eq!(ctx.account(account(0)).stamps_spent, 2);
    // Idempotent, even past the hold's expiry.
    ctx.same_after(capture(0), at(25), Ok(captured(true)));
    ctx.same_after(capture(0), at(100), Ok(captured(true)));
    assert_eq!(state(ctx, 0, at(100)), "captured");
    ctx.refused(release(0), at(26), Refusal::HoldCaptured);
    ctx.refused(
        redeem(sold(&[stamp(0)]), "site"),
        at(27),
        Refusal::AlreadySpent(stamp(0)),
    );
}

pub fn a_capture_after_expiry_is_refused_and_the_stamps_come_back(ctx: &mut Ctx) {
    bought(ctx, 1);
    ctx.ok(hold(0, &[stamp(0)], 30), at(10));
    ctx.refused(capture(0), at(40), Refusal::HoldExpired);
    assert_eq!(state(ctx, 0, at(40)), "expired");
    // Releasing an expired hold changes nothing and answers as a release.
    ctx.same_after(release(0), at(41), Ok(Outcome::Released));
    ctx.ok(hold(1, &[stamp(0)], 30), at(41));
    ctx.ok(capture(1), at(42));
    assert!(ctx.is_spent(stamp(0)));
}

pub fn a_released_hold_frees_its_stamps_and_cannot_be_captured(ctx: &mut Ctx) {
    bought(ctx, 1);
    ctx.ok(hold(0, &[stamp(0)], 30), at(10));
    assert_eq!(ctx.ok(release(0), at(11)), Outcome::Released);
    assert_eq!(state(ctx, 0, at(11)), "released");
    ctx.same_after(release(0), at(12), Ok(Outcome::Released));
    ctx.refused(capture(0), at(12), Refusal::HoldExpired);
    ctx.ok(redeem(sold(&[stamp(0)]), "site"), at(13));
    ctx.refused(capture(0), at(14), Refusal::HoldExpired);
}

pub fn a_hold_never_outlives_its_stamps(ctx: &mut Ctx) {
    world(ctx);
    let buy = purchase(0, &stamps(0..2)).lifetime(at(0), at(20));
    ctx.ok(buy.cmd(), at(0));
    assert_eq!(
        ctx.ok(hold(0, &[stamp(0)], 300), at(10)),
        held(0, at(20), 1)
    );
    ctx.refused(capture(0), at(20), Refusal::HoldExpired);
    ctx.refused(hold(1, &[stamp(1)], 30), at(20), Refusal::Expired(stamp(1)));
}

pub fn a_reopened_store_keeps_its_holds(ctx: &mut Ctx) {
    bought(ctx, 2);
    ctx.ok(hold(0, &[stamp(0)], 30), at(10));
    ctx.ok(hold(1, &[stamp(1)], 30), at(10));
    ctx.ok(release(1), at(11));
    let before = ctx.snapshot();
    ctx.reopen();
    assert_eq!(ctx.snapshot(), before);
    ctx.refused(
        redeem(sold(&[stamp(0)]), "site"),
        at(12),
        Refusal::StampHeld(stamp(0)),
    );
    ctx.ok(redeem(sold(&[stamp(1)]), "site"), at(12));
    assert_eq!(
        ctx.ok(capture(0), at(13)),
        Outcome::Captured {
            ledger_index: 5,
            spent_at: at(13),
            cost: 1,
            replayed: false,
        }
    );
    let hold = ctx.store().hold(hold_id(0)).expect("read").expect("kept");
    assert_eq!(
        hold.state,
        HoldState::Captured {
            ledger_index: 5,
            spent_at: at(13)
        }
    );
}

/// Threads race to hold, redeem and hold again the same stamps: each stamp ends held or spent
/// by exactly one of them.
pub fn threads_hold_or_spend_each_stamp_exactly_once(ctx: &mut Ctx) {
    const SHARED: u32 = 6;
    const THREADS: u32 = 6;
    bought(ctx, SHARED);
    let command = |racer: u32, k: u32| match racer % 3 {
        1 => redeem(sold(&[stamp(k)]), &format!("racer {racer}")),
        _ => hold(racer * 100 + k, &[stamp(k)], 60),
    };
    let results: Vec<(u32, Applied)> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..THREADS)
            .map(|racer| {
                let store = ctx.shared();
                scope.spawn(move || {
                    (0..SHARED)
                        .map(|step| {
                            let k = (step + racer) % SHARED;
                            let applied =
                                crate::observe::Apply::apply(&*store, &[command(racer, k)], at(5))
                                    .expect("apply")
                                    .remove(0);
                            (k, applied)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        racers
            .into_iter()
            .flat_map(|r| r.join().expect("a racer panicked"))
            .collect()
    });
    for k in 0..SHARED {
        let won: Vec<&Applied> = results
            .iter()
            .filter(|(s, a)| *s == k && a.is_ok())
            .map(|(_, a)| a)
            .collect();
        assert_eq!(won.len(), 1, "stamp {k}: {results:?}");
        for (_, applied) in results.iter().filter(|(s, a)| *s == k && a.is_err()) {
            assert!(
                matches!(
                    applied,
                    Err(Refusal::StampHeld(id) | Refusal::AlreadySpent(id)) if *id == stamp(k)
                ),
                "stamp {k}: {applied:?}"
            );
        }
        let spent = ctx.is_spent(stamp(k));
        assert_eq!(spent, matches!(won[0], Ok(Outcome::Spent { .. })));
    }
}
