//! Batches: refusals and replays among accepted commands, reads of a batch's own writes, and
//! time that never goes back.

use pennypost::keys::KeyStatus;
use pennypost::store::{Applied, Command, Outcome, Post, Refusal};

use crate::harness::*;
use crate::observe;

/// Applies `batch` to `ctx`, and only the accepted commands of it (one batch, same time) to a
/// new store of the same backend prepared by `setup`: the outcomes of the accepted commands
/// and everything observable afterwards must be the same, so a refusal inside a batch wrote
/// nothing and stopped nothing. Returns the batch's results.
fn same_as_without_refusals(
    ctx: &Ctx,
    setup: fn(&Ctx),
    batch: &[Command],
    now: pennypost::time::Timestamp,
) -> Vec<Applied> {
    let results = ctx.apply(batch, now);
    let accepted: Vec<Command> = batch
        .iter()
        .zip(&results)
        .filter(|(_, applied)| applied.is_ok())
        .map(|(command, _)| command.clone())
        .collect();
    let other = ctx.another();
    setup(&other);
    batch.iter().for_each(|c| other.note(c));
    let alone = other.apply(&accepted, now);
    let kept: Vec<&Applied> = results.iter().filter(|a| a.is_ok()).collect();
    assert_eq!(kept, alone.iter().collect::<Vec<_>>(), "accepted outcomes");
    assert_eq!(
        ctx.snapshot(),
        other.snapshot(),
        "state with and without refusals"
    );
    observe::audit(other.store()).expect("the comparison store's ledger");
    results
}

/// [`world`], plus stamp 30 sold at `T0` expiring a second later.
fn world_with_an_expiring_stamp(ctx: &Ctx) {
    world(ctx);
    ctx.ok(
        purchase(1, &[stamp(30)]).lifetime(at(0), at(1)).cmd(),
        at(0),
    );
}

pub fn a_refused_command_in_a_batch_leaves_the_others_applied(ctx: &mut Ctx) {
    let setup = world_with_an_expiring_stamp;
    setup(ctx);
    let now = at(5);
    let batch = vec![
        credit(0, 0, "zero"),
        credit(0, 10, "b1"),
        credit(7, 10, "nobody"),
        purchase(0, &stamps(0..3)).key(1).cmd(),
        credit(0, 99, "world 0"),
        purchase(7, &stamps(10..11)).cmd(),
        purchase(1, &stamps(10..40)).cmd(),
        purchase(1, &stamps(2..4)).cmd(),
        purchase(1, &[stamp(11), stamp(11)]).cmd(),
        purchase(1, &stamps(11..13)).price(u64::MAX).cmd(),
        purchase(0, &stamps(11..12)).key(1).cmd(),
        redeem(sold(&[stamp(0)]), "site"),
        redeem(sold(&[stamp(9)]), "site"),
        redeem(sold(&[stamp(0)]), "site"),
        redeem(sold(&[stamp(1), stamp(0)]), "pair"),
        redeem(sold(&[stamp(30)]), "late"),
        redeem(sold(&[stamp(1), stamp(1)]), "twice"),
        vote(sold(&[stamp(1)]), post_id(0), true),
        post(sold(&[stamp(1)]), post_id(0), "a", "b"),
        post(sold(&[stamp(2)]), post_id(0), "c", "d"),
        vote(sold(&[stamp(2)]), post_id(0), false),
        create(0),
        create(2),
        key_event(1, KeyStatus::Active),
    ];
    let results = same_as_without_refusals(ctx, setup, &batch, now);
    let refusals: Vec<Option<Refusal>> = results.into_iter().map(Result::err).collect();
    let conflict = |text| Some(Refusal::IdempotencyConflict(text));
    assert_eq!(
        refusals,
        vec![
            Some(Refusal::Invalid("a credit must be positive")),
            None,
            Some(Refusal::NotFound("account")),
            None,
            conflict("this reference was already used for another account or amount"),
            Some(Refusal::NotFound("account")),
            Some(Refusal::InsufficientFunds {
                balance: 95,
                total: 150
            }),
            Some(Refusal::DuplicateStamp(stamp(2))),
            Some(Refusal::Invalid("a stamp is named twice")),
            Some(Refusal::Overflow("purchase total")),
            conflict("this Idempotency-Key was used with a different request body"),
            None,
            Some(Refusal::NotSold(stamp(9))),
            Some(Refusal::AlreadySpent(stamp(0))),
            Some(Refusal::AlreadySpent(stamp(0))),
            Some(Refusal::Expired(stamp(30))),
            Some(Refusal::Invalid("a stamp is named twice")),
            Some(Refusal::NotFound("post")),
            None,
            conflict("post id collided"),
            None,
            conflict("account id or key collided"),
            None,
            None,
        ]
    );
    assert_eq!(ctx.post(post_id(0)).map(|p| p.score), Some(-1));
    assert_eq!(ctx.account(account(0)).balance, 95);
}

pub fn replays_and_conflicts_inside_one_batch(ctx: &mut Ctx) {
    world(ctx);
    let now = at(5);
    let first = purchase(0, &stamps(0..2)).key(1);
    let batch = vec![
        credit(0, 20, "r"),
        credit(0, 20, "r"),
        credit(1, 20, "r"),
        first.cmd(),
        purchase(0, &stamps(5..7)).key(1).id(9).cmd(),
        purchase(0, &stamps(5..8)).key(1).id(9).cmd(),
        credit(0, 20, "r"),
        credit(0, 21, "r"),
    ];
    let results = same_as_without_refusals(ctx, world, &batch, now);
    let credited = |replayed| {
        Ok(Outcome::Credited {
            balance: 120,
            ledger_index: 3,
            replayed,
        })
    };
    let Ok(Outcome::Purchased {
        record,
        replayed: false,
    }) = &results[3]
    else {
        panic!("the purchase: {:?}", results[3]);
    };
    assert_eq!((record.balance, record.ledger_index), (110, 4));
    assert_eq!(record.stamp_ids, stamps(0..2));
    let replayed = Ok(Outcome::Purchased {
        record: record.clone(),
        replayed: true,
    });
    let conflict = |text| Err(Refusal::IdempotencyConflict(text));
    let credit_conflict = conflict("this reference was already used for another account or amount");
    assert_eq!(
        results,
        vec![
            credited(false),
            credited(true),
            credit_conflict.clone(),
            results[3].clone(),
            replayed,
            conflict("this Idempotency-Key was used with a different request body"),
            credited(true),
            credit_conflict,
        ]
    );
    // Two entries, one charge, the replay's stamps never sold.
    assert_eq!(ctx.size(), 5);
    let buyer = ctx.account(account(0));
    assert_eq!((buyer.balance, buyer.stamps_purchased), (110, 2));
    assert_eq!(ctx.stamp(stamp(5)), None);
}

pub fn a_batch_reads_its_own_writes(ctx: &mut Ctx) {
    ctx.ok(key_event(1, KeyStatus::Active), at(0));
    let now = at(5);
    let batch = vec![
        create(2),
        credit(2, 50, "c"),
        purchase(2, &stamps(0..4)).cmd(),
        purchase(2, &stamps(3..5)).cmd(),
        redeem(sold(&[stamp(0)]), "site"),
        redeem(sold(&[stamp(0)]), "site"),
        post(sold(&[stamp(1)]), post_id(0), "a", "b"),
        vote(sold(&[stamp(2)]), post_id(0), true),
        post(sold(&[stamp(3)]), post_id(0), "c", "d"),
        vote(sold(&[stamp(3)]), post_id(0), true),
        create(2),
    ];
    let results = ctx.apply(&batch, now);
    let post = Post {
        post_id: post_id(0),
        author: "a".into(),
        body: "b".into(),
        created_at: now,
        score: 0,
        ledger_index: 4,
        seq: 0,
        payer: Some(account(2)),
        cost: 1,
        ..Post::default()
    };
    let spent = |ledger_index, post: Option<Post>| {
        Ok(Outcome::Spent {
            spent_at: now,
            ledger_index,
            post,
            cost: 1,
            refund_ledger_index: None,
        })
    };
    let Ok(Outcome::Purchased { record, .. }) = &results[2] else {
        panic!("the purchase: {:?}", results[2]);
    };
    assert_eq!((record.ledger_index, record.balance), (2, 30));
    // One voter (the post's own payer: no up-voter that counts for a refund).
    let voted = |score: i64| Post {
        score,
        votes_up: score.unsigned_abs(),
        voters: 1,
        ..post.clone()
    };
    assert_eq!(
        results,
        vec![
            Ok(Outcome::AccountCreated),
            Ok(Outcome::Credited {
                balance: 50,
                ledger_index: 1,
                replayed: false,
            }),
            results[2].clone(),
            Err(Refusal::DuplicateStamp(stamp(3))),
            spent(3, None),
            Err(Refusal::AlreadySpent(stamp(0))),
            spent(4, Some(post.clone())),
            spent(5, Some(voted(1))),
            Err(Refusal::IdempotencyConflict("post id collided")),
            spent(6, Some(voted(2))),
            Err(Refusal::IdempotencyConflict("account id or key collided")),
        ]
    );
    assert_eq!(ctx.post(post_id(0)), Some(voted(2)));
    let buyer = ctx.account(account(2));
    assert_eq!(
        (buyer.balance, buyer.stamps_purchased, buyer.stamps_spent),
        (30, 4, 4)
    );
}

pub fn entry_times_never_go_backwards(ctx: &mut Ctx) {
    // The clock moves forward, back, forward and far back.
    ctx.ok(key_event(1, KeyStatus::Active), at(100));
    ctx.all_ok([create(0), credit(0, 50, "a")], at(50));
    assert_eq!(ctx.account(account(0)).created_at, at(100));
    ctx.ok(
        purchase(0, &stamps(0..3)).lifetime(at(0), at(1000)).cmd(),
        at(40),
    );
    let spent = ctx.ok(redeem(sold(&[stamp(0)]), "site"), at(30));
    assert_eq!(
        spent,
        Outcome::Spent {
            spent_at: at(100),
            ledger_index: 3,
            post: None,
            cost: 1,
            refund_ledger_index: None,
        }
    );
    ctx.ok(credit(0, 1, "b"), at(200));
    let results = ctx.apply(
        &[
            post(sold(&[stamp(1)]), post_id(0), "a", "b"),
            redeem(sold(&[stamp(2)]), "site"),
        ],
        at(-1000),
    );
    let Ok(Outcome::Spent { post: Some(p), .. }) = &results[0] else {
        panic!("the post: {results:?}");
    };
    assert_eq!(p.created_at, at(200));
    assert!(results[1].is_ok(), "{results:?}");
    let times: Vec<String> = (0..ctx.size())
        .map(|i| ctx.entry(i)["time"].as_str().expect("time").to_string())
        .collect();
    let want: Vec<String> = [100, 100, 100, 100, 200, 200, 200]
        .iter()
        .map(|s| at(*s).to_rfc3339())
        .collect();
    assert_eq!(times, want);
    let stamp_spent_at = ctx
        .stamp(stamp(2))
        .and_then(|s| s.spent)
        .map(|s| s.spent_at);
    assert_eq!(stamp_spent_at, Some(at(200)));
}

pub fn the_newest_checkpoint_is_kept(ctx: &mut Ctx) {
    world(ctx);
    assert_eq!(ctx.store().checkpoint().expect("checkpoint"), None);
    ctx.store().put_checkpoint(2, "note at 2\n").expect("put");
    assert_eq!(
        ctx.store().checkpoint().expect("checkpoint"),
        Some((2, "note at 2\n".to_string()))
    );
    ctx.store().put_checkpoint(3, "note at 3\n").expect("put");
    assert_eq!(
        ctx.store().checkpoint().expect("checkpoint"),
        Some((3, "note at 3\n".to_string()))
    );
    // A checkpoint is not a ledger entry.
    assert_eq!(ctx.size(), 3);
}

/// A purchase or spend naming more stamps than one ledger entry can hold is refused like any
/// other invalid command: nothing written, and the batch around it goes on (an entry over the
/// size limit would otherwise fail the whole batch as a storage error and stop the writer).
pub fn a_command_with_too_many_stamps_is_refused_and_the_batch_goes_on(ctx: &mut Ctx) {
    world(ctx);
    let too_many = pennypost::rules::STAMPS_PER_COMMAND_MAX as u32 + 1;
    ctx.ok(credit(0, 100_000, "more"), at(1));
    let big = purchase(0, &stamps(0..too_many)).price(1).cmd();
    ctx.refused(
        big.clone(),
        at(2),
        Refusal::Invalid("too many stamps in one command"),
    );
    let results = ctx.apply(&[big, purchase(0, &stamps(0..3)).cmd()], at(3));
    assert_eq!(
        results[0],
        Err(Refusal::Invalid("too many stamps in one command"))
    );
    assert!(results[1].is_ok(), "{:?}", results[1]);
    ctx.refused(
        redeem(sold(&stamps(0..too_many)), "site"),
        at(4),
        Refusal::Invalid("too many stamps in one command"),
    );
}
