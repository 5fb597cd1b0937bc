//! Debits: money going back out, once per reference (shared with credits), and the revoke of
//! unspent, unexpired stamps a debit owes when it leaves its account below zero.

use pennypost::domain::{CreditSource, DebitReason, Revoked};
use pennypost::rules::Command;
use pennypost::rules::{Conflict, InvalidCommand, Missing, Outcome, Refusal};
use pennypost::rules::{SpendFor, REVOKE_PURCHASES_MAX, REVOKE_STAMPS_MAX};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::harness::*;

fn sha(reference: &str) -> String {
    hex::encode(Sha256::digest(reference.as_bytes()))
}

fn ids_of(entry: &serde_json::Value) -> Vec<String> {
    entry["stamp_ids"]
        .as_array()
        .expect("stamp ids")
        .iter()
        .map(|id| id.as_str().expect("an id").to_string())
        .collect()
}

fn texts(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(Uuid::to_string).collect()
}

pub fn a_debit_within_the_balance_writes_one_entry(ctx: &mut Ctx) {
    world(ctx);
    assert_eq!(
        ctx.ok(debit(0, 30, "correction 1"), at(1)),
        Outcome::Debited {
            balance: 70,
            ledger_index: 3,
            replayed: false,
            revoked: None,
        }
    );
    assert_eq!(ctx.size(), 4);
    let entry = ctx.entry(3);
    assert_eq!(entry["kind"], "debit");
    assert_eq!(entry["account"], account(0).to_string());
    assert_eq!(entry["amount"], 30);
    assert_eq!(entry["currency"], CURRENCY);
    assert_eq!(entry["reference_sha256"], sha("correction 1"));
    assert_eq!(entry["source"], "operator");
    assert_eq!(entry["reason"], "correction");
    let account0 = ctx.account(account(0));
    assert_eq!((account0.balance, account0.debt), (70, 0));
    // Down to exactly zero: still no revoke.
    ctx.ok(purchase(0, &stamps(0..2)).cmd(), at(2));
    assert_eq!(
        ctx.ok(debit(0, 60, "correction 2"), at(3)),
        Outcome::Debited {
            balance: 0,
            ledger_index: 5,
            replayed: false,
            revoked: None,
        }
    );
    assert!(!ctx.is_spent(stamp(0)) && !ctx.is_spent(stamp(1)));
}

pub fn a_debit_below_zero_revokes_the_latest_stamps_first(ctx: &mut Ctx) {
    world(ctx);
    // Purchase A (stamps 0..4), then B (4..8): 100 − 40 = 60 left.
    ctx.ok(purchase(0, &stamps(0..4)).cmd(), at(1));
    ctx.ok(purchase(0, &stamps(4..8)).cmd(), at(2));
    // The last stamp of B is spent: the revoke passes over it.
    ctx.ok(redeem(sold(&[stamp(7)]), "spent before"), at(3));
    // 60 − 73 = −13: three stamps of 5 cover it, B's from its last unspent back.
    assert_eq!(
        ctx.ok(debit(0, 73, "refund 1"), at(4)),
        Outcome::Debited {
            balance: 2,
            ledger_index: 6,
            replayed: false,
            revoked: Some(Revoked {
                ledger_index: 7,
                stamps: 3,
                amount: 15,
            }),
        }
    );
    let revoke = ctx.entry(7);
    assert_eq!(revoke["kind"], "spend");
    assert_eq!(revoke["action"], "revoke");
    assert_eq!(revoke["target"], sha("refund 1"));
    assert_eq!(revoke["amount"], 15);
    assert_eq!(ids_of(&revoke), texts(&[stamp(6), stamp(5), stamp(4)]));
    assert_eq!(revoke["time"], at(4).to_rfc3339());
    for i in 4..8 {
        assert!(ctx.is_spent(stamp(i)), "stamp {i}");
    }
    for i in 0..4 {
        assert!(!ctx.is_spent(stamp(i)), "stamp {i}");
    }
    let account0 = ctx.account(account(0));
    assert_eq!((account0.balance, account0.debt), (2, 0));
    assert_eq!(account0.stamps_spent, 4);
    // The next debit reaches purchase A, from its last stamp back.
    assert_eq!(
        ctx.ok(debit(0, 10, "refund 2"), at(5)),
        Outcome::Debited {
            balance: 2,
            ledger_index: 8,
            replayed: false,
            revoked: Some(Revoked {
                ledger_index: 9,
                stamps: 2,
                amount: 10,
            }),
        }
    );
    assert_eq!(ids_of(&ctx.entry(9)), texts(&[stamp(3), stamp(2)]));
}

pub fn a_debit_beyond_every_stamp_leaves_a_debt(ctx: &mut Ctx) {
    world(ctx);
    ctx.ok(purchase(0, &stamps(0..2)).cmd(), at(1));
    // 90 − 200 = −110; both stamps (10) come back: −100 remains.
    assert_eq!(
        ctx.ok(debit(0, 200, "chargeback"), at(2)),
        Outcome::Debited {
            balance: -100,
            ledger_index: 4,
            replayed: false,
            revoked: Some(Revoked {
                ledger_index: 5,
                stamps: 2,
                amount: 10,
            }),
        }
    );
    assert_eq!(ids_of(&ctx.entry(5)), texts(&[stamp(1), stamp(0)]));
    let account0 = ctx.account(account(0));
    assert_eq!((account0.balance, account0.debt), (0, 100));
    assert_eq!(account0.signed_balance(), -100);
    // Nothing is sold while in debt.
    ctx.refused(
        purchase(0, &stamps(10..11)).cmd(),
        at(3),
        Refusal::InsufficientFunds {
            balance: -100,
            total: PRICE,
        },
    );
    // A debit with no stamp left to take writes no revoke.
    assert_eq!(
        ctx.ok(debit(0, 5, "fee"), at(4)),
        Outcome::Debited {
            balance: -105,
            ledger_index: 6,
            replayed: false,
            revoked: None,
        }
    );
    assert_eq!(ctx.size(), 7);
    // Credits pay the debt off first.
    assert_eq!(
        ctx.ok(credit(0, 100, "pays most"), at(5)),
        Outcome::Credited {
            balance: -5,
            ledger_index: 7,
            replayed: false,
        }
    );
    ctx.refused(
        purchase(0, &stamps(10..11)).cmd(),
        at(6),
        Refusal::InsufficientFunds {
            balance: -5,
            total: PRICE,
        },
    );
    assert_eq!(
        ctx.ok(credit(0, 10, "pays the rest"), at(7)),
        Outcome::Credited {
            balance: 5,
            ledger_index: 8,
            replayed: false,
        }
    );
    ctx.ok(purchase(0, &stamps(10..11)).cmd(), at(8));
    let account0 = ctx.account(account(0));
    assert_eq!((account0.balance, account0.debt), (0, 0));
    // The other account is untouched.
    assert_eq!(ctx.account(account(1)).balance, 100);
}

pub fn a_revoke_skips_expired_stamps(ctx: &mut Ctx) {
    world(ctx);
    // B (stamps 0..2) lives long; the newer A (2..4) expires at 10 s.
    ctx.ok(purchase(0, &stamps(0..2)).cmd(), at(0));
    ctx.ok(
        purchase(0, &stamps(2..4)).lifetime(at(0), at(10)).cmd(),
        at(0),
    );
    // At 10 s A's stamps have expired (expiry is exclusive): only B's are taken.
    assert_eq!(
        ctx.ok(debit(0, 95, "late refund"), at(10)),
        Outcome::Debited {
            balance: -5,
            ledger_index: 5,
            replayed: false,
            revoked: Some(Revoked {
                ledger_index: 6,
                stamps: 2,
                amount: 10,
            }),
        }
    );
    assert_eq!(ids_of(&ctx.entry(6)), texts(&[stamp(1), stamp(0)]));
    assert!(!ctx.is_spent(stamp(2)) && !ctx.is_spent(stamp(3)));
}

pub fn a_held_stamp_is_revoked_and_its_capture_refused(ctx: &mut Ctx) {
    world(ctx);
    ctx.ok(purchase(0, &stamps(0..2)).cmd(), at(0));
    let hold_id = Uuid::from_u128(0x401d_0000_0000_0001);
    ctx.ok(
        Command::Hold {
            hold_id,
            stamps: sold(&[stamp(1)]),
            context: "held".into(),
            ttl_secs: 60,
        },
        at(1),
    );
    // 90 − 94 = −4: one stamp covers it, the held one (the last of the purchase).
    assert_eq!(
        ctx.ok(debit(0, 94, "dispute"), at(2)),
        Outcome::Debited {
            balance: 1,
            ledger_index: 4,
            replayed: false,
            revoked: Some(Revoked {
                ledger_index: 5,
                stamps: 1,
                amount: 5,
            }),
        }
    );
    assert_eq!(ids_of(&ctx.entry(5)), texts(&[stamp(1)]));
    // The hold can no longer be captured: its stamp is spent, and the hold ends.
    assert_eq!(
        ctx.ok(Command::Capture { hold_id }, at(3)),
        Outcome::HoldBroken { stamp_id: stamp(1) }
    );
    assert_eq!(ctx.size(), 6);
}

pub fn a_revoked_stamp_is_spent(ctx: &mut Ctx) {
    world(ctx);
    ctx.ok(purchase(0, &stamps(0..3)).cmd(), at(0));
    ctx.ok(debit(0, 90, "refund"), at(1));
    // 85 − 90 = −5: stamp 2 is revoked.
    assert!(ctx.is_spent(stamp(2)));
    ctx.refused(
        redeem(sold(&[stamp(2)]), "after the revoke"),
        at(2),
        Refusal::AlreadySpent(stamp(2)),
    );
    ctx.refused(
        Command::Spend {
            stamps: sold(&[stamp(1), stamp(2)]),
            spend_for: SpendFor::Redeem {
                context: "both".into(),
            },
        },
        at(2),
        Refusal::AlreadySpent(stamp(2)),
    );
    let record = ctx.stamp(stamp(2)).expect("sold");
    let spent = record.spent.expect("spent");
    assert_eq!(spent.action.as_str(), "revoke");
    assert_eq!(spent.ledger_index, 5);
    // The others still spend.
    ctx.ok(redeem(sold(&[stamp(0)]), "still fine"), at(3));
}

pub fn a_debit_replayed_changes_nothing(ctx: &mut Ctx) {
    world(ctx);
    ctx.ok(purchase(0, &stamps(0..2)).cmd(), at(0));
    let first = ctx.ok(debit(0, 95, "refund"), at(1));
    let Outcome::Debited {
        balance,
        ledger_index,
        revoked,
        ..
    } = first
    else {
        panic!("{first:?}");
    };
    assert_eq!(balance, 0);
    assert!(revoked.is_some());
    // Even after more money came in: the replay answers the first debit.
    ctx.ok(credit(0, 50, "later"), at(2));
    let replayed = Outcome::Debited {
        balance,
        ledger_index,
        replayed: true,
        revoked,
    };
    ctx.same_after(debit(0, 95, "refund"), at(3), Ok(replayed.clone()));
    ctx.same_after(debit(0, 95, "refund"), at(4), Ok(replayed));
    assert_eq!(ctx.account(account(0)).balance, 50);
}

pub fn credits_and_debits_share_their_references(ctx: &mut Ctx) {
    world(ctx);
    let conflict = Refusal::IdempotencyConflict(Conflict::CreditReference);
    // A credit's reference is not a debit's, whatever the amount or account.
    ctx.refused(debit(0, 100, "world 0"), at(1), conflict.clone());
    ctx.refused(debit(1, 5, "world 0"), at(1), conflict.clone());
    // Nor a debit's a credit's.
    ctx.ok(debit(0, 5, "d1"), at(2));
    ctx.refused(credit(0, 5, "d1"), at(3), conflict.clone());
    ctx.refused(credit(1, 7, "d1"), at(3), conflict.clone());
    // Nor a debit's another debit's with another account or amount.
    ctx.refused(debit(0, 6, "d1"), at(3), conflict.clone());
    ctx.refused(debit(1, 5, "d1"), at(3), conflict);
    ctx.refused(
        debit(7, 5, "nobody"),
        at(3),
        Refusal::NotFound(Missing::Account),
    );
    ctx.refused(
        debit(0, 0, "zero"),
        at(3),
        Refusal::Invalid(InvalidCommand::DebitNotPositive),
    );
}

pub fn provider_references_in_debits_are_the_providers(ctx: &mut Ctx) {
    world(ctx);
    ctx.refused(
        debit_from(
            0,
            5,
            "stripe:refund:ch_1:500",
            CreditSource::Operator,
            DebitReason::Correction,
        ),
        at(1),
        Refusal::ReservedReference { prefix: "stripe:" },
    );
    ctx.refused(
        debit_from(0, 5, "ch_1", CreditSource::Stripe, DebitReason::Refund),
        at(1),
        Refusal::Invalid(InvalidCommand::ProviderReference),
    );
    ctx.ok(
        debit_from(
            0,
            5,
            "stripe:dispute:dp_1",
            CreditSource::Stripe,
            DebitReason::Dispute,
        ),
        at(2),
    );
    let entry = ctx.entry(3);
    assert_eq!(entry["source"], "stripe");
    assert_eq!(entry["reason"], "dispute");
}

/// The revoke is one entry of at most [`REVOKE_STAMPS_MAX`] stamps: exactly that many go
/// through; a debit that would take one more is refused and changes nothing.
pub fn a_revoke_past_its_limit_is_refused(ctx: &mut Ctx) {
    world(ctx);
    ctx.ok(credit(0, 2000, "plenty"), at(0));
    // 2,000 stamps at 1 each: 100 left.
    ctx.ok(purchase(0, &stamps(0..1000)).price(1).cmd(), at(1));
    ctx.ok(purchase(0, &stamps(1000..2000)).price(1).cmd(), at(1));
    let max = REVOKE_STAMPS_MAX as u64;
    ctx.refused(
        debit(0, 100 + max + 1, "too much at once"),
        at(2),
        Refusal::RevokeTooLarge,
    );
    assert_eq!(
        ctx.ok(debit(0, 100 + max, "just enough"), at(3)),
        Outcome::Debited {
            balance: 0,
            ledger_index: 6,
            replayed: false,
            revoked: Some(Revoked {
                ledger_index: 7,
                stamps: max,
                amount: max,
            }),
        }
    );
    // The rest, in a second part.
    assert_eq!(
        ctx.ok(debit(0, 1, "too much at once"), at(4)),
        Outcome::Debited {
            balance: 0,
            ledger_index: 8,
            replayed: false,
            revoked: Some(Revoked {
                ledger_index: 9,
                stamps: 1,
                amount: 1,
            }),
        }
    );
}

/// A revoke looks through at most [`REVOKE_PURCHASES_MAX`] unexpired purchases, latest first:
/// a debit whose debt needs one purchase more is refused and writes nothing; the same debt
/// less that one purchase's stamp goes through.
pub fn a_revoke_through_too_many_purchases_is_refused(ctx: &mut Ctx) {
    world(ctx);
    let max = REVOKE_PURCHASES_MAX;
    ctx.ok(credit(0, max + 1, "one stamp each"), at(0));
    // One stamp at 1 in each of max + 1 purchases: the world's 100 left.
    for i in 0..=max as u32 {
        ctx.ok(purchase(0, &stamps(i..i + 1)).price(1).cmd(), at(1));
    }
    // A debt of max + 1 owes a stamp of every one of the max + 1 purchases.
    ctx.refused(
        debit(0, 100 + max + 1, "across too many"),
        at(2),
        Refusal::RevokeTooLarge,
    );
    // Nothing was written: the next entry follows the last purchase (3 + 1 + max + 1).
    let first = 3 + 1 + (max + 1);
    assert_eq!(
        ctx.ok(debit(0, 100 + max, "the latest ones"), at(3)),
        Outcome::Debited {
            balance: 0,
            ledger_index: first,
            replayed: false,
            revoked: Some(Revoked {
                ledger_index: first + 1,
                stamps: max,
                amount: max,
            }),
        }
    );
}
