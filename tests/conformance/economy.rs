//! The economy: the policy entry, flood-priced posts, quadratic votes, refunds, payers and
//! names, every rule at its edges.

use pennypost::domain::{Policy, VotePricing};
use pennypost::rules::{Command, InvalidCommand, Missing, Outcome, QuoteAction, Refusal};

use crate::harness::*;
use crate::observe::Apply as _;

fn policy() -> Policy {
    Policy {
        currency: CURRENCY.into(),
        stamp_price: PRICE,
        post_cost: 1,
        vote_cost: 1,
        repeat_window_secs: 600,
        repeat_factor: 2,
        vote_pricing: VotePricing::Quadratic,
        refund_voters: 3,
    }
}

fn set(policy: Policy) -> Command {
    Command::Policy { policy }
}

/// [`world`] with accounts 2 to 4 too (100 each), `policy` in force, and account `i` buying
/// stamps `100 * i .. 100 * i + 20` for every account.
fn economy(ctx: &Ctx, policy: Policy) {
    world(ctx);
    for i in 2..=4u8 {
        ctx.all_ok([create(i), credit(i, 100, &format!("world {i}"))], at(0));
    }
    ctx.ok(set(policy), at(0));
    for i in 0..=4u8 {
        let first = 100 * u32::from(i);
        ctx.ok(purchase(i, &stamps(first..first + 20)).cmd(), at(0));
    }
}

/// `n` unspent stamps of account `i`, the `skip`-th on.
fn of(i: u8, skip: u32, n: u32) -> Vec<pennypost::domain::StampRef> {
    let first = 100 * u32::from(i) + skip;
    sold(&stamps(first..first + n))
}

fn wrong(required: u64, attached: u64) -> Refusal {
    Refusal::WrongStampCount { required, attached }
}

pub fn the_policy_is_written_once_and_again_when_it_changes(ctx: &mut Ctx) {
    world(ctx);
    let size = ctx.size();
    assert_eq!(
        ctx.ok(set(policy()), at(1)),
        Outcome::Policy {
            ledger_index: Some(size)
        }
    );
    let entry = ctx.entry(size);
    assert_eq!(entry["kind"], "policy");
    assert_eq!(entry["vote_pricing"], "quadratic");
    assert_eq!(entry["repeat_window_secs"], 600);
    assert_eq!(entry["refund_voters"], 3);
    assert_eq!(entry["currency"], CURRENCY);
    ctx.same_after(
        set(policy()),
        at(2),
        Ok(Outcome::Policy { ledger_index: None }),
    );
    let flat = Policy {
        vote_pricing: VotePricing::Flat,
        ..policy()
    };
    assert_eq!(
        ctx.ok(set(flat), at(3)),
        Outcome::Policy {
            ledger_index: Some(size + 1)
        }
    );
    // A currency the auditor rejects (empty), or too long or unprintable to name one, is
    // refused and writes nothing.
    for currency in [
        "".to_string(),
        "c".repeat(33),
        "ce\nnts".to_string(),
        " cents".to_string(),
    ] {
        ctx.refused(
            set(Policy {
                currency,
                ..policy()
            }),
            at(4),
            Refusal::Invalid(InvalidCommand::Currency),
        );
    }
}

pub fn posts_get_dearer_within_the_window(ctx: &mut Ctx) {
    economy(ctx, policy());
    ctx.ok(post(of(0, 0, 1), post_id(0), "a", "1"), at(10));
    // The second post in the window costs 2; a wrong count spends nothing.
    ctx.refused(post(of(0, 1, 1), post_id(1), "a", "2"), at(20), wrong(2, 1));
    ctx.ok(post(of(0, 1, 2), post_id(1), "a", "2"), at(20));
    ctx.refused(post(of(0, 3, 1), post_id(2), "a", "3"), at(30), wrong(4, 1));
    // Exactly repeat_window_secs after the first post, the first no longer counts.
    ctx.refused(
        post(of(0, 3, 1), post_id(2), "a", "3"),
        at(610),
        wrong(2, 1),
    );
    ctx.refused(
        post(of(0, 3, 1), post_id(2), "a", "3"),
        at(619),
        wrong(2, 1),
    );
    assert_eq!(
        ctx.store()
            .quote(account(0), QuoteAction::Post, at(619))
            .expect("quote"),
        Ok(2)
    );
    // Exactly repeat_window_secs after the second, 1 again; another payer was never affected.
    ctx.ok(post(of(0, 3, 1), post_id(2), "a", "3"), at(620));
    ctx.ok(post(of(1, 0, 1), post_id(3), "b", "1"), at(30));
    let p = ctx.post(post_id(1)).expect("post");
    assert_eq!((p.cost, p.payer), (2, Some(account(0))));
}

pub fn a_repeat_factor_of_one_turns_flood_pricing_off(ctx: &mut Ctx) {
    economy(
        ctx,
        Policy {
            repeat_factor: 1,
            post_cost: 2,
            ..policy()
        },
    );
    for n in 0..5u32 {
        ctx.ok(
            post(of(0, 2 * n, 2), post_id(n), "a", "x"),
            at(10 + i64::from(n)),
        );
    }
}

pub fn votes_cost_two_n_minus_one(ctx: &mut Ctx) {
    economy(ctx, policy());
    ctx.ok(post(of(0, 0, 1), post_id(0), "a", "x"), at(1));
    // Account 1's votes on post 0 cost 1, 3, 5: up and down alike.
    ctx.ok(vote(of(1, 0, 1), post_id(0), true), at(2));
    ctx.refused(vote(of(1, 1, 1), post_id(0), false), at(3), wrong(3, 1));
    ctx.ok(vote(of(1, 1, 3), post_id(0), false), at(3));
    ctx.ok(vote(of(1, 4, 5), post_id(0), true), at(4));
    // Another payer starts at 1.
    ctx.ok(vote(of(2, 0, 1), post_id(0), true), at(5));
    let p = ctx.post(post_id(0)).expect("post");
    assert_eq!((p.votes_up, p.votes_down, p.voters, p.score), (3, 1, 2, 2));
    assert_eq!(
        ctx.store()
            .quote(
                account(1),
                QuoteAction::Vote {
                    post_id: post_id(0)
                },
                at(6)
            )
            .expect("quote"),
        Ok(7)
    );
    assert_eq!(
        ctx.store()
            .quote(
                account(1),
                QuoteAction::Vote {
                    post_id: post_id(9)
                },
                at(6)
            )
            .expect("quote"),
        Err(Refusal::NotFound(Missing::Post))
    );
}

pub fn flat_vote_pricing_charges_the_vote_cost(ctx: &mut Ctx) {
    economy(
        ctx,
        Policy {
            vote_pricing: VotePricing::Flat,
            ..policy()
        },
    );
    ctx.ok(post(of(0, 0, 1), post_id(0), "a", "x"), at(1));
    for n in 0..4u32 {
        ctx.ok(vote(of(1, n, 1), post_id(0), true), at(2 + i64::from(n)));
    }
}

pub fn a_refund_comes_with_the_vote_that_completes_it(ctx: &mut Ctx) {
    economy(ctx, policy());
    ctx.ok(post(of(0, 0, 1), post_id(0), "a", "x"), at(1));
    let balance = ctx.account(account(0)).balance;
    // The post's own payer and down-votes do not count.
    ctx.ok(vote(of(0, 1, 1), post_id(0), true), at(2));
    ctx.ok(vote(of(3, 0, 1), post_id(0), false), at(3));
    ctx.ok(vote(of(1, 0, 1), post_id(0), true), at(4));
    ctx.ok(vote(of(2, 0, 1), post_id(0), true), at(5));
    assert!(!ctx.post(post_id(0)).expect("post").refunded);
    assert_eq!(ctx.account(account(0)).balance, balance);
    // The third distinct up-voting payer other than the post's: the refund, right after.
    let size = ctx.size();
    let Outcome::Spent {
        ledger_index,
        refund_ledger_index,
        ..
    } = ctx.ok(vote(of(3, 1, 3), post_id(0), true), at(6))
    else {
        panic!("a vote spends");
    };
    assert_eq!((ledger_index, refund_ledger_index), (size, Some(size + 1)));
    let entry = ctx.entry(size + 1);
    assert_eq!(entry["kind"], "refund");
    assert_eq!(entry["account"], account(0).to_string());
    assert_eq!(entry["post_id"], post_id(0).to_string());
    assert_eq!(entry["amount"], PRICE);
    assert_eq!(ctx.entry(size)["direction"], "up");
    let payer = ctx.account(account(0));
    assert_eq!(
        (payer.balance, payer.refunds_total),
        (balance + PRICE, PRICE)
    );
    assert!(ctx.post(post_id(0)).expect("post").refunded);
    // Never twice.
    let Outcome::Spent {
        refund_ledger_index,
        ..
    } = ctx.ok(vote(of(4, 0, 1), post_id(0), true), at(7))
    else {
        panic!("a vote spends");
    };
    assert_eq!(refund_ledger_index, None);
    assert_eq!(ctx.account(account(0)).refunds_total, PRICE);
}

/// The refund is the base postage: the unit prices of the first `post_cost` stamps the post
/// lists, never its flood surcharge, whatever those stamps cost.
pub fn only_the_base_postage_of_a_flooded_post_goes_back(ctx: &mut Ctx) {
    economy(
        ctx,
        Policy {
            post_cost: 2,
            refund_voters: 2,
            ..policy()
        },
    );
    ctx.ok(credit(0, 70, "more 0"), at(0));
    ctx.ok(purchase(0, &stamps(50..60)).price(7).cmd(), at(0));
    ctx.ok(post(of(0, 0, 2), post_id(0), "a", "1"), at(1));
    // The second post within the window costs 2 × 2: listed first, a stamp at 7, then three
    // at PRICE. Its base postage is 7 + PRICE; the two surcharge stamps never come back.
    let mut flooded = sold(&stamps(50..51));
    flooded.extend(of(0, 2, 3));
    ctx.ok(post(flooded, post_id(1), "a", "2"), at(2));
    let before = ctx.account(account(0));
    ctx.ok(vote(of(1, 0, 1), post_id(1), true), at(3));
    let Outcome::Spent {
        refund_ledger_index,
        ..
    } = ctx.ok(vote(of(2, 0, 1), post_id(1), true), at(4))
    else {
        panic!("a vote spends");
    };
    let entry = ctx.entry(refund_ledger_index.expect("the second voter completes it"));
    assert_eq!(entry["kind"], "refund");
    assert_eq!(entry["amount"], 7 + PRICE);
    let after = ctx.account(account(0));
    assert_eq!(
        (after.balance, after.refunds_total),
        (before.balance + 7 + PRICE, 7 + PRICE)
    );
}

pub fn refunds_off_refund_nothing(ctx: &mut Ctx) {
    economy(
        ctx,
        Policy {
            refund_voters: 0,
            ..policy()
        },
    );
    ctx.ok(post(of(0, 0, 1), post_id(0), "a", "x"), at(1));
    for i in 1..=4u8 {
        let Outcome::Spent {
            refund_ledger_index,
            ..
        } = ctx.ok(vote(of(i, 0, 1), post_id(0), true), at(2))
        else {
            panic!("a vote spends");
        };
        assert_eq!(refund_ledger_index, None);
    }
}

pub fn stamps_of_two_payers_are_refused(ctx: &mut Ctx) {
    economy(ctx, policy());
    let mut mixed = of(0, 0, 1);
    mixed.extend(of(1, 0, 1));
    // Before the count: a wrong count of mixed stamps is still mixed_payers.
    ctx.refused(
        post(mixed.clone(), post_id(0), "a", "x"),
        at(1),
        Refusal::MixedPayers,
    );
    ctx.ok(post(of(2, 0, 1), post_id(1), "a", "x"), at(1));
    ctx.refused(vote(mixed, post_id(1), true), at(2), Refusal::MixedPayers);
    // But a stamp spent before is reported as such first.
    ctx.ok(post(of(0, 0, 1), post_id(2), "a", "x"), at(3));
    let mut spent = of(0, 0, 1);
    spent.extend(of(1, 0, 1));
    ctx.refused(
        post(spent, post_id(3), "a", "x"),
        at(4),
        Refusal::AlreadySpent(stamp(0)),
    );
}

pub fn names_are_unique_whatever_their_case_and_form(ctx: &mut Ctx) {
    world(ctx);
    let named = |i: u8, name: &str| Command::CreateAccount {
        account_id: account(i),
        name: Some(name.into()),
        api_key_sha256: api_key(i),
    };
    ctx.ok(named(5, "Ren\u{e9}e"), at(1));
    ctx.refused(named(6, "RENE\u{301}E"), at(2), Refusal::NameTaken);
    ctx.refused(named(6, "account 0"), at(2), Refusal::NameTaken);
    ctx.ok(named(6, "Renee"), at(3));
}
