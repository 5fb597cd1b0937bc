//! Credits: money received for an account, once per reference.

use pennypost::domain::CreditSource;
use pennypost::rules::{Amount, Conflict, InvalidCommand, Missing, Outcome, Refusal};
use sha2::{Digest, Sha256};

use crate::harness::*;

pub fn a_credit_adds_to_the_balance_with_one_entry(ctx: &mut Ctx) {
    ctx.all_ok([create(0), create(1)], at(0));
    assert_eq!(
        ctx.ok(credit(0, 30, "first"), at(1)),
        Outcome::Credited {
            balance: 30,
            ledger_index: 0,
            replayed: false,
        }
    );
    assert_eq!(
        ctx.ok(credit(0, 12, "second"), at(2)),
        Outcome::Credited {
            balance: 42,
            ledger_index: 1,
            replayed: false,
        }
    );
    assert_eq!(
        ctx.ok(credit(1, 7, "third"), at(3)),
        Outcome::Credited {
            balance: 7,
            ledger_index: 2,
            replayed: false,
        }
    );
    assert_eq!(ctx.account(account(0)).balance, 42);
    assert_eq!(ctx.account(account(1)).balance, 7);
    assert_eq!(ctx.size(), 3);
    let entry = ctx.entry(1);
    assert_eq!(entry["kind"], "credit");
    assert_eq!(entry["account"], account(0).to_string());
    assert_eq!(entry["amount"], 12);
    assert_eq!(entry["currency"], CURRENCY);
    assert_eq!(
        entry["reference_sha256"],
        hex::encode(Sha256::digest(b"second"))
    );
    assert_eq!(entry["time"], at(2).to_rfc3339());
    // Always written now: the operator's credits say so.
    assert_eq!(entry["source"], "operator");
}

/// A provider's credit carries its source; the operator's may not take a provider's
/// reference (400 `bad_request`), nor a provider another's or none.
pub fn a_credit_carries_its_source_and_provider_references_are_theirs(ctx: &mut Ctx) {
    world(ctx);
    for (reference, prefix) in [
        ("stripe:cs_1", "stripe:"),
        ("btcpay:inv1", "btcpay:"),
        ("test:p1", "test:"),
    ] {
        ctx.refused(
            credit_from(0, 10, reference, CreditSource::Operator),
            at(1),
            Refusal::ReservedReference { prefix },
        );
    }
    let not_theirs = Refusal::Invalid(InvalidCommand::ProviderReference);
    ctx.refused(
        credit_from(0, 10, "cs_1", CreditSource::Stripe),
        at(1),
        not_theirs.clone(),
    );
    ctx.refused(
        credit_from(0, 10, "btcpay:inv1", CreditSource::Stripe),
        at(1),
        not_theirs.clone(),
    );
    ctx.refused(
        credit_from(0, 10, "test:p1", CreditSource::Btcpay),
        at(1),
        not_theirs,
    );
    // A prefix is matched exactly: no case folding, and only at the start.
    ctx.ok(credit_from(0, 1, "Stripe:x", CreditSource::Operator), at(2));
    ctx.ok(
        credit_from(0, 1, "paid via stripe:x", CreditSource::Operator),
        at(2),
    );
    for (index, (reference, source)) in (5..).zip([
        ("stripe:cs_1", CreditSource::Stripe),
        ("btcpay:inv1", CreditSource::Btcpay),
        ("test:p1", CreditSource::Test),
    ]) {
        ctx.ok(credit_from(1, 10, reference, source), at(3));
        let entry = ctx.entry(index);
        assert_eq!(entry["kind"], "credit");
        assert_eq!(entry["source"], source.as_str());
        assert_eq!(
            entry["reference_sha256"],
            hex::encode(Sha256::digest(reference.as_bytes()))
        );
    }
    // A provider's credit replays as any other: once per reference.
    assert_eq!(
        ctx.ok(
            credit_from(1, 10, "stripe:cs_1", CreditSource::Stripe),
            at(4)
        ),
        Outcome::Credited {
            balance: 110,
            ledger_index: 5,
            replayed: true,
        }
    );
    assert_eq!(ctx.account(account(1)).balance, 130);
}

pub fn a_credit_of_zero_is_invalid(ctx: &mut Ctx) {
    world(ctx);
    ctx.refused(
        credit(0, 0, "zero"),
        at(1),
        Refusal::Invalid(InvalidCommand::CreditNotPositive),
    );
    // Even for an unknown account, and even replaying a reference used before.
    ctx.refused(
        credit(7, 0, "zero"),
        at(1),
        Refusal::Invalid(InvalidCommand::CreditNotPositive),
    );
    ctx.refused(
        credit(0, 0, "world 0"),
        at(1),
        Refusal::Invalid(InvalidCommand::CreditNotPositive),
    );
    // The reference was not used up: a positive credit under it goes through.
    assert_eq!(
        ctx.ok(credit(0, 1, "zero"), at(2)),
        Outcome::Credited {
            balance: 101,
            ledger_index: 3,
            replayed: false,
        }
    );
}

pub fn a_credit_to_an_unknown_account_is_not_found(ctx: &mut Ctx) {
    world(ctx);
    ctx.refused(
        credit(7, 10, "nobody"),
        at(1),
        Refusal::NotFound(Missing::Account),
    );
    // The reference was not used up.
    ctx.ok(create(7), at(2));
    assert_eq!(
        ctx.ok(credit(7, 10, "nobody"), at(2)),
        Outcome::Credited {
            balance: 10,
            ledger_index: 3,
            replayed: false,
        }
    );
}

pub fn a_credit_replayed_answers_the_first_and_appends_nothing(ctx: &mut Ctx) {
    world(ctx);
    let first = ctx.ok(credit(0, 25, "payment 1"), at(1));
    assert_eq!(
        first,
        Outcome::Credited {
            balance: 125,
            ledger_index: 3,
            replayed: false,
        }
    );
    ctx.ok(credit(0, 5, "payment 2"), at(2));
    // The replay answers the balance and index of the first credit, not today's balance, and
    // says it is a replay.
    let replayed = Outcome::Credited {
        balance: 125,
        ledger_index: 3,
        replayed: true,
    };
    ctx.same_after(credit(0, 25, "payment 1"), at(3), Ok(replayed.clone()));
    ctx.same_after(credit(0, 25, "payment 1"), at(4), Ok(replayed));
    assert_eq!(ctx.account(account(0)).balance, 130);
    assert_eq!(ctx.size(), 5);
}

pub fn a_credit_reference_reused_otherwise_conflicts(ctx: &mut Ctx) {
    world(ctx);
    ctx.ok(credit(0, 25, "payment"), at(1));
    let conflict = Refusal::IdempotencyConflict(Conflict::CreditReference);
    // Another amount, another account, both; and an account that does not exist.
    ctx.refused(credit(0, 26, "payment"), at(2), conflict.clone());
    ctx.refused(credit(1, 25, "payment"), at(2), conflict.clone());
    ctx.refused(credit(1, 1, "payment"), at(2), conflict.clone());
    ctx.refused(credit(7, 25, "payment"), at(2), conflict.clone());
    // References are unique across the whole ledger, not per account.
    ctx.refused(credit(0, 100, "world 1"), at(2), conflict);
}

pub fn a_credit_past_the_largest_balance_overflows(ctx: &mut Ctx) {
    world(ctx);
    assert_eq!(
        ctx.ok(credit(0, i64::MAX as u64 - 110, "almost all"), at(1)),
        Outcome::Credited {
            balance: i64::MAX - 10,
            ledger_index: 3,
            replayed: false,
        }
    );
    ctx.refused(
        credit(0, 11, "one too many"),
        at(2),
        Refusal::Overflow(Amount::Balance),
    );
    // The reference was not used up, and the largest balance itself is reached.
    assert_eq!(
        ctx.ok(credit(0, 10, "exactly"), at(3)),
        Outcome::Credited {
            balance: i64::MAX,
            ledger_index: 4,
            replayed: false,
        }
    );
    ctx.refused(
        credit(0, 11, "one too many"),
        at(4),
        Refusal::Overflow(Amount::Balance),
    );
    // The other account is unaffected.
    assert_eq!(ctx.account(account(1)).balance, 100);
}
