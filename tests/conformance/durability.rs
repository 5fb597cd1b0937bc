//! Reopen after a crash: everything applied and synced is there again, and the store goes on
//! from where it stopped (backends that persist; the in-memory one checks the rest only).

use pennypost::keys::KeyStatus;
use pennypost::store::{Outcome, Post, Refusal};

use crate::harness::*;

/// A store with some of everything: keys, accounts, credits, purchases with and without a
/// key, redeems, posts, votes, and a checkpoint. Its last entry is at `T0 + 100`.
fn lived_in(ctx: &Ctx) {
    world(ctx);
    ctx.all_ok(
        [
            create(2),
            credit(2, 40, "pay 2"),
            purchase(0, &stamps(0..6)).key(1).cmd(),
            purchase(2, &stamps(6..8)).cmd(),
        ],
        at(10),
    );
    ctx.apply(
        &[
            redeem(sold(&[stamp(0)]), "site"),
            post(sold(&[stamp(1), stamp(5)]), post_id(0), "a", "first"),
            post(sold(&[stamp(2)]), post_id(1), "b", "second"),
            vote(sold(&[stamp(3)]), post_id(0), true),
            redeem(sold(&[stamp(0)]), "site"),
        ],
        at(100),
    );
    ctx.store()
        .put_checkpoint(9, "a note\n")
        .expect("checkpoint");
}

pub fn a_reopened_store_keeps_every_acknowledged_change(ctx: &mut Ctx) {
    lived_in(ctx);
    ctx.ok(key_event(1, KeyStatus::Retired), at(100));
    let before = ctx.snapshot();
    assert_eq!(before.ledger_size, 11);
    assert_eq!(before.board.len(), 2);
    if !ctx.reopen() {
        return;
    }
    assert_eq!(ctx.snapshot(), before);
    let page = ctx.store().posts(Some(post_id(1)), 10).expect("board");
    assert_eq!(page, Some(before.board[1..].to_vec()));
    assert_eq!(
        ctx.store().account_by_api_key(&api_key(2)).expect("read"),
        Some(ctx.account(account(2)))
    );
    // And again, with nothing applied in between.
    assert!(ctx.reopen());
    assert_eq!(ctx.snapshot(), before);
}

pub fn a_reopened_store_goes_on_where_it_stopped(ctx: &mut Ctx) {
    lived_in(ctx);
    let first_credit = ctx.ok(credit(1, 7, "pay 1"), at(100));
    let size = ctx.size();
    let first_purchase = Ok(Outcome::Purchased {
        record: match ctx
            .apply(&[purchase(0, &stamps(0..6)).key(1).cmd()], at(100))
            .remove(0)
        {
            Ok(Outcome::Purchased { record, .. }) => record,
            other => panic!("the replay: {other:?}"),
        },
        replayed: true,
    });
    ctx.reopen();
    assert_eq!(ctx.size(), size);

    // What was spent stays spent, references and keys stay used, ids stay taken.
    ctx.refused(
        redeem(sold(&[stamp(0)]), "again"),
        at(200),
        Refusal::AlreadySpent(stamp(0)),
    );
    ctx.refused(
        redeem(sold(&[stamp(5), stamp(7)]), "again"),
        at(200),
        Refusal::AlreadySpent(stamp(5)),
    );
    let Outcome::Credited {
        balance,
        ledger_index,
        replayed: false,
    } = first_credit
    else {
        panic!("the first credit: {first_credit:?}");
    };
    let replayed = Outcome::Credited {
        balance,
        ledger_index,
        replayed: true,
    };
    ctx.same_after(credit(1, 7, "pay 1"), at(200), Ok(replayed));
    ctx.same_after(
        purchase(0, &stamps(30..36)).key(1).cmd(),
        at(200),
        first_purchase,
    );
    ctx.refused(
        purchase(1, &[stamp(4)]).cmd(),
        at(200),
        Refusal::DuplicateStamp(stamp(4)),
    );
    ctx.refused(
        post(sold(&[stamp(4)]), post_id(1), "c", "again"),
        at(200),
        Refusal::IdempotencyConflict("post id collided"),
    );
    ctx.refused(
        create(2),
        at(200),
        Refusal::IdempotencyConflict("account id or key collided"),
    );

    // New changes take the next indexes, the next board position, and times from the last
    // entry's on (the clock here is behind it).
    assert_eq!(
        ctx.ok(redeem(sold(&[stamp(4)]), "later"), at(50)),
        Outcome::Spent {
            spent_at: at(100),
            ledger_index: size,
            post: None,
            cost: 1,
            refund_ledger_index: None,
        }
    );
    let Outcome::Spent { post: Some(p), .. } =
        ctx.ok(post(sold(&[stamp(6)]), post_id(2), "d", "third"), at(150))
    else {
        panic!("no post");
    };
    assert_eq!(
        p,
        Post {
            post_id: post_id(2),
            author: "d".into(),
            body: "third".into(),
            created_at: at(150),
            score: 0,
            ledger_index: size + 1,
            seq: 2,
            payer: Some(account(2)),
            cost: 1,
            ..Post::default()
        }
    );
    let board: Vec<_> = ctx
        .store()
        .posts(None, 10)
        .expect("board")
        .expect("a board")
        .iter()
        .map(|p| (p.post_id, p.score))
        .collect();
    assert_eq!(
        board,
        vec![(post_id(2), 0), (post_id(1), 0), (post_id(0), 1)]
    );
    let voted = ctx.ok(vote(sold(&[stamp(7)]), post_id(0), true), at(150));
    let Outcome::Spent {
        ledger_index,
        post: Some(p),
        ..
    } = voted
    else {
        panic!("the vote: {voted:?}");
    };
    assert_eq!((ledger_index, p.score, p.seq), (size + 2, 2, 0));
    assert_eq!(ctx.post(post_id(0)), Some(p));
    assert_eq!(
        ctx.ok(credit(1, 3, "pay 3"), at(160)),
        Outcome::Credited {
            balance: 110,
            ledger_index: size + 3,
            replayed: false,
        }
    );
    ctx.ok(purchase(1, &stamps(40..42)).cmd(), at(160));
    let a = ctx.account(account(0));
    assert_eq!((a.balance, a.stamps_purchased, a.stamps_spent), (70, 6, 6));
    assert_eq!(ctx.size(), size + 5);
}
