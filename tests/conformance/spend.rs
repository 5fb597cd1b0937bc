//! Spends: stamps cancelled for a redeem, a post or a vote, each exactly once, all or none.

use pennypost::domain::{Post, SpentRecord, StampRef};
use pennypost::ledger::entry::SpendAction;
use pennypost::rules::{Conflict, InvalidCommand, Missing, Outcome, Refusal};
use pennypost::time::Timestamp;
use sha2::{Digest, Sha256};

use crate::harness::*;

/// [`world`], and account 0 buys stamps `0..count` at `T0`.
fn bought(ctx: &Ctx, count: u32) {
    world(ctx);
    ctx.ok(purchase(0, &stamps(0..count)).cmd(), at(0));
}

pub fn a_redeem_spends_a_stamp_once(ctx: &mut Ctx) {
    bought(ctx, 2);
    let spent = Outcome::Spent {
        spent_at: at(10),
        ledger_index: 4,
        post: None,
        cost: 1,
        refund_ledger_index: None,
    };
    assert_eq!(ctx.ok(redeem(sold(&[stamp(0)]), "site:a"), at(10)), spent);
    let record = SpentRecord {
        spent_at: at(10),
        action: SpendAction::Redeem,
        spent_for: "site:a".into(),
        ledger_index: 4,
    };
    let status = ctx.stamp(stamp(0)).expect("sold");
    assert_eq!(status.spent, Some(record));
    assert_eq!((status.buyer, status.issued_at), (account(0), at(0)));
    let entry = ctx.entry(4);
    assert_eq!(entry["kind"], "spend");
    assert_eq!(entry["action"], "redeem");
    assert_eq!(entry["target"], hex::encode(Sha256::digest(b"site:a")));
    assert_eq!(
        entry["stamp_ids"],
        serde_json::json!([stamp(0).to_string()])
    );
    assert_eq!(entry["time"], at(10).to_rfc3339());
    assert_eq!(ctx.account(account(0)).stamps_spent, 1);
    assert!(!ctx.is_spent(stamp(1)));

    // Once only: for the same site, another site, a post or a vote.
    for again in [
        redeem(sold(&[stamp(0)]), "site:a"),
        redeem(sold(&[stamp(0)]), "site:b"),
        post(sold(&[stamp(0)]), post_id(0), "a", "b"),
    ] {
        ctx.refused(again, at(11), Refusal::AlreadySpent(stamp(0)));
    }
    ctx.ok(post(sold(&[stamp(1)]), post_id(1), "a", "b"), at(12));
    ctx.refused(
        vote(sold(&[stamp(0)]), post_id(1), true),
        at(13),
        Refusal::AlreadySpent(stamp(0)),
    );
}

pub fn a_stamp_never_sold_is_not_sold(ctx: &mut Ctx) {
    bought(ctx, 1);
    ctx.refused(
        redeem(sold(&[stamp(9)]), "site"),
        at(1),
        Refusal::NotSold(stamp(9)),
    );
    ctx.refused(
        post(sold(&[stamp(9)]), post_id(0), "a", "b"),
        at(1),
        Refusal::NotSold(stamp(9)),
    );
    ctx.ok(post(sold(&[stamp(0)]), post_id(0), "a", "b"), at(1));
    ctx.refused(
        vote(sold(&[stamp(9)]), post_id(0), true),
        at(1),
        Refusal::NotSold(stamp(9)),
    );
}

pub fn a_stamp_named_with_another_issue_time_is_not_sold(ctx: &mut Ctx) {
    bought(ctx, 1);
    let named = |issued_at| {
        redeem(
            vec![StampRef {
                stamp_id: stamp(0),
                issued_at,
            }],
            "site",
        )
    };
    // A stamp is found as its signed payload names it: id and issue time.
    for wrong in [at(-1), at(1), Timestamp::from_unix(0)] {
        ctx.refused(named(wrong), at(1), Refusal::NotSold(stamp(0)));
    }
    // The right time spends it, once; its status says for what and who bought it.
    assert_eq!(
        ctx.ok(named(at(0)), at(1)),
        Outcome::Spent {
            spent_at: at(1),
            ledger_index: 4,
            post: None,
            cost: 1,
            refund_ledger_index: None,
        }
    );
    ctx.refused(named(at(0)), at(2), Refusal::AlreadySpent(stamp(0)));
    // Another issue time of a spent stamp is still not sold (not already spent).
    ctx.refused(named(at(5)), at(2), Refusal::NotSold(stamp(0)));
    let status = ctx.stamp(stamp(0)).expect("sold");
    assert_eq!(status.spent.map(|s| s.spent_for), Some("site".to_string()));
    assert_eq!(status.buyer, account(0));
}

pub fn a_stamp_expires_at_exactly_its_expiry(ctx: &mut Ctx) {
    world(ctx);
    ctx.ok(
        purchase(0, &stamps(0..4)).lifetime(at(0), at(100)).cmd(),
        at(0),
    );
    // A second before its expiry a stamp spends; at its expiry it does not.
    ctx.ok(redeem(sold(&[stamp(0)]), "site"), at(99));
    ctx.refused(
        redeem(sold(&[stamp(1)]), "site"),
        at(100),
        Refusal::Expired(stamp(1)),
    );
    ctx.refused(
        post(sold(&[stamp(1)]), post_id(0), "a", "b"),
        at(5000),
        Refusal::Expired(stamp(1)),
    );
    // Expiry is judged at the entry's time, which never goes back: a clock behind the
    // ledger's last entry (now at 100) does not bring the stamp back.
    ctx.ok(credit(0, 1, "at 100"), at(100));
    ctx.refused(
        redeem(sold(&[stamp(2)]), "site"),
        at(50),
        Refusal::Expired(stamp(2)),
    );
    // An expired stamp that was spent is reported spent.
    ctx.refused(
        redeem(sold(&[stamp(0)]), "site"),
        at(200),
        Refusal::AlreadySpent(stamp(0)),
    );
    // A stamp sold already expired (issued at 10, expiring at 90, sold at 150) never spends.
    ctx.ok(
        purchase(0, &stamps(10..11)).lifetime(at(10), at(90)).cmd(),
        at(150),
    );
    ctx.refused(
        redeem(
            vec![StampRef {
                stamp_id: stamp(10),
                issued_at: at(10),
            }],
            "site",
        ),
        at(150),
        Refusal::Expired(stamp(10)),
    );
    // A stamp cannot expire before or when it is issued: such a sale is refused.
    for expires in [at(149), at(150)] {
        ctx.refused(
            purchase(0, &stamps(11..12))
                .lifetime(at(150), expires)
                .cmd(),
            at(150),
            Refusal::Invalid(InvalidCommand::ExpiresBeforeIssued),
        );
    }
}

pub fn a_spend_naming_a_stamp_twice_or_none_is_invalid(ctx: &mut Ctx) {
    bought(ctx, 2);
    let twice = sold(&[stamp(0), stamp(1), stamp(0)]);
    ctx.refused(
        redeem(twice.clone(), "twice"),
        at(1),
        Refusal::Invalid(InvalidCommand::StampNamedTwice),
    );
    ctx.refused(
        post(twice, post_id(0), "a", "b"),
        at(1),
        Refusal::Invalid(InvalidCommand::StampNamedTwice),
    );
    // Named twice with two issue times, one of them wrong: still the same stamp.
    let mut mixed = sold(&[stamp(0)]);
    mixed.push(StampRef {
        stamp_id: stamp(0),
        issued_at: at(3),
    });
    ctx.refused(
        redeem(mixed, "twice"),
        at(1),
        Refusal::Invalid(InvalidCommand::StampNamedTwice),
    );
    ctx.refused(
        redeem(vec![], "none"),
        at(1),
        Refusal::Invalid(InvalidCommand::NoStamps),
    );
    // Named twice even when one is spent: the command is malformed first.
    ctx.ok(redeem(sold(&[stamp(1)]), "once"), at(2));
    ctx.refused(
        redeem(sold(&[stamp(1), stamp(1)]), "twice"),
        at(3),
        Refusal::Invalid(InvalidCommand::StampNamedTwice),
    );
    // One stamp is never counted as two.
    assert_eq!(ctx.account(account(0)).stamps_spent, 1);
}

pub fn a_spend_is_all_or_nothing(ctx: &mut Ctx) {
    bought(ctx, 4);
    ctx.ok(redeem(sold(&[stamp(0)]), "first"), at(1));
    // One good and one spent stamp: neither is spent, in either order.
    ctx.refused(
        redeem(sold(&[stamp(1), stamp(0)]), "pair"),
        at(2),
        Refusal::AlreadySpent(stamp(0)),
    );
    ctx.refused(
        post(sold(&[stamp(0), stamp(1)]), post_id(0), "a", "b"),
        at(2),
        Refusal::AlreadySpent(stamp(0)),
    );
    // One good and one never sold.
    ctx.refused(
        redeem(sold(&[stamp(1), stamp(9)]), "pair"),
        at(2),
        Refusal::NotSold(stamp(9)),
    );
    // The first bad stamp in the order named is the one reported.
    ctx.refused(
        redeem(sold(&[stamp(1), stamp(9), stamp(0)]), "three"),
        at(2),
        Refusal::NotSold(stamp(9)),
    );
    ctx.refused(
        redeem(sold(&[stamp(1), stamp(0), stamp(9)]), "three"),
        at(2),
        Refusal::AlreadySpent(stamp(0)),
    );
    // Good stamps for a vote on a missing post.
    ctx.refused(
        vote(sold(&[stamp(1), stamp(2)]), post_id(5), true),
        at(2),
        Refusal::NotFound(Missing::Post),
    );
    assert!(!ctx.is_spent(stamp(1)) && !ctx.is_spent(stamp(2)));
    // All good: all spent by one entry, with one spend record.
    let outcome = ctx.ok(redeem(sold(&stamps(1..4)), "three"), at(3));
    assert_eq!(
        outcome,
        Outcome::Spent {
            spent_at: at(3),
            ledger_index: 5,
            post: None,
            cost: 3,
            refund_ledger_index: None,
        }
    );
    let records: Vec<_> = stamps(1..4)
        .into_iter()
        .map(|id| ctx.stamp(id).and_then(|s| s.spent))
        .collect();
    let one = SpentRecord {
        spent_at: at(3),
        action: SpendAction::Redeem,
        spent_for: "three".into(),
        ledger_index: 5,
    };
    assert_eq!(
        records,
        vec![Some(one.clone()), Some(one.clone()), Some(one)]
    );
    let listed: Vec<String> = stamps(1..4).iter().map(|id| id.to_string()).collect();
    assert_eq!(ctx.entry(5)["stamp_ids"], serde_json::json!(listed));
    assert_eq!(ctx.account(account(0)).stamps_spent, 4);
}

pub fn a_post_goes_on_the_board_newest_first(ctx: &mut Ctx) {
    bought(ctx, 6);
    assert_eq!(ctx.store().posts(None, 10).expect("board"), Some(vec![]));
    let mut written = Vec::new();
    for i in 0..5u32 {
        let outcome = ctx.ok(
            post(
                sold(&[stamp(i)]),
                post_id(i),
                &format!("author {i}"),
                &format!("body {i}"),
            ),
            at(10 + i64::from(i)),
        );
        let want = Post {
            post_id: post_id(i),
            author: format!("author {i}"),
            body: format!("body {i}"),
            created_at: at(10 + i64::from(i)),
            score: 0,
            ledger_index: 4 + u64::from(i),
            seq: u64::from(i),
            payer: Some(account(0)),
            cost: 1,
            ..Post::default()
        };
        assert_eq!(
            outcome,
            Outcome::Spent {
                spent_at: at(10 + i64::from(i)),
                ledger_index: 4 + u64::from(i),
                post: Some(want.clone()),
                cost: 1,
                refund_ledger_index: None,
            }
        );
        assert_eq!(ctx.post(post_id(i)), Some(want.clone()));
        written.push(want);
    }
    let spent = ctx.stamp(stamp(2)).and_then(|s| s.spent).expect("spent");
    assert_eq!(spent.action, SpendAction::Post);
    assert_eq!(spent.spent_for, format!("post:{}", post_id(2)));
    let entry = ctx.entry(6);
    assert_eq!(entry["action"], "post");
    assert_eq!(entry["target"], post_id(2).to_string());

    // Newest first, paged with `before`.
    let newest_first: Vec<Post> = written.iter().rev().cloned().collect();
    let board = |before, limit| ctx.store().posts(before, limit).expect("board");
    assert_eq!(board(None, 10), Some(newest_first.clone()));
    assert_eq!(board(None, 2), Some(newest_first[..2].to_vec()));
    assert_eq!(
        board(Some(post_id(3)), 2),
        Some(newest_first[2..4].to_vec())
    );
    assert_eq!(
        board(Some(post_id(1)), 10),
        Some(newest_first[4..].to_vec())
    );
    assert_eq!(board(Some(post_id(0)), 10), Some(vec![]));
    assert_eq!(board(None, 0), Some(vec![]));
    // An unknown `before` is not an empty page.
    assert_eq!(board(Some(post_id(9)), 10), None);
    assert_eq!(ctx.post(post_id(9)), None);
}

pub fn a_post_id_that_exists_is_refused(ctx: &mut Ctx) {
    bought(ctx, 2);
    ctx.ok(post(sold(&[stamp(0)]), post_id(0), "first", "hello"), at(1));
    ctx.refused(
        post(sold(&[stamp(1)]), post_id(0), "second", "overwrite"),
        at(2),
        Refusal::IdempotencyConflict(Conflict::PostCollided),
    );
    assert_eq!(ctx.post(post_id(0)).map(|p| p.author), Some("first".into()));
    // The stamp is still good for another post.
    ctx.ok(post(sold(&[stamp(1)]), post_id(1), "second", "hi"), at(3));
    let board: Vec<_> = ctx
        .store()
        .posts(None, 10)
        .expect("board")
        .expect("a board")
        .iter()
        .map(|p| (p.post_id, p.seq))
        .collect();
    assert_eq!(board, vec![(post_id(1), 1), (post_id(0), 0)]);
}

pub fn a_vote_changes_the_score(ctx: &mut Ctx) {
    bought(ctx, 8);
    ctx.ok(post(sold(&[stamp(0)]), post_id(0), "a", "b"), at(1));
    ctx.ok(post(sold(&[stamp(1)]), post_id(1), "c", "d"), at(2));
    let mut want = ctx.post(post_id(0)).expect("post");
    for (i, up, score) in [
        (2, true, 1),
        (3, true, 2),
        (4, false, 1),
        (5, false, 0),
        (6, false, -1),
    ] {
        let outcome = ctx.ok(vote(sold(&[stamp(i)]), post_id(0), up), at(3));
        want.score = score;
        // All five votes come from the post's own payer: one voter, none that counts for a
        // refund.
        if up {
            want.votes_up += 1;
        } else {
            want.votes_down += 1;
        }
        want.voters = 1;
        assert_eq!(
            outcome,
            Outcome::Spent {
                spent_at: at(3),
                ledger_index: 4 + u64::from(i),
                post: Some(want.clone()),
                cost: 1,
                refund_ledger_index: None,
            }
        );
        assert_eq!(ctx.post(post_id(0)), Some(want.clone()));
    }
    // The vote stays with its post: position, time and index unchanged; the other post is 0.
    assert_eq!(ctx.post(post_id(1)).map(|p| p.score), Some(0));
    let board = ctx
        .store()
        .posts(None, 10)
        .expect("board")
        .expect("a board");
    assert_eq!(board.len(), 2);
    assert_eq!(board[1], want);
    let spent = ctx.stamp(stamp(4)).and_then(|s| s.spent).expect("spent");
    assert_eq!(spent.action, SpendAction::Vote);
    assert_eq!(spent.spent_for, format!("vote:{}", post_id(0)));
    assert_eq!(ctx.entry(8)["target"], post_id(0).to_string());
    assert_eq!(ctx.entry(8)["action"], "vote");
    // A vote on a post that does not exist spends nothing.
    ctx.refused(
        vote(sold(&[stamp(7)]), post_id(9), true),
        at(4),
        Refusal::NotFound(Missing::Post),
    );
}

pub fn spends_count_for_the_buyer(ctx: &mut Ctx) {
    world(ctx);
    ctx.ok(purchase(0, &stamps(0..3)).cmd(), at(0));
    ctx.ok(purchase(1, &stamps(3..6)).cmd(), at(0));
    // Whoever spends a stamp, its buyer's count goes up; one redeem may hold both buyers'
    // (a post or vote may not: its stamps have one payer).
    ctx.ok(redeem(sold(&[stamp(0)]), "site"), at(1));
    assert_eq!(ctx.account(account(0)).stamps_spent, 1);
    assert_eq!(ctx.account(account(1)).stamps_spent, 0);
    ctx.ok(redeem(sold(&[stamp(1), stamp(3)]), "both"), at(2));
    ctx.ok(post(sold(&[stamp(4)]), post_id(0), "a", "b"), at(2));
    ctx.ok(vote(sold(&[stamp(5)]), post_id(0), false), at(3));
    let (a, b) = (ctx.account(account(0)), ctx.account(account(1)));
    assert_eq!((a.stamps_purchased, a.stamps_spent), (3, 2));
    assert_eq!((b.stamps_purchased, b.stamps_spent), (3, 3));
    // Spending moves no money.
    assert_eq!((a.balance, b.balance), (85, 85));
}
