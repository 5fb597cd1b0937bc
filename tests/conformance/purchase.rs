//! Purchases: stamps sold for an account's balance, once per Idempotency-Key.

use pennypost::domain::{PurchaseRecord, StampRecord};
use pennypost::keys::KeyStatus;
use pennypost::rules::{Amount, Conflict, InvalidCommand, Missing, Outcome, Refusal};

use crate::harness::*;

/// The record a purchase of `buy` answers when the account had `balance_before`.
fn record_of(buy: &Buy, balance_before: u64, ledger_index: u64) -> PurchaseRecord {
    let count = buy.stamp_ids.len() as u64;
    PurchaseRecord {
        purchase_id: buy.purchase_id,
        account_id: buy.account_id,
        count: count as u32,
        unit_price: buy.unit_price,
        total: buy.unit_price * count,
        balance: balance_before - buy.unit_price * count,
        ledger_index,
        kid: issuer(1).0,
        issued_at: buy.issued_at,
        expires_at: buy.expires_at,
        stamp_ids: buy.stamp_ids.clone(),
    }
}

pub fn a_purchase_sells_stamps_for_the_balance(ctx: &mut Ctx) {
    world(ctx);
    let buy = purchase(0, &stamps(0..3)).lifetime(at(7), at(7 + TTL));
    assert_eq!(
        ctx.ok(buy.cmd(), at(8)),
        Outcome::Purchased {
            record: record_of(&buy, 100, 3),
            replayed: false
        }
    );
    let buyer = ctx.account(account(0));
    assert_eq!((buyer.balance, buyer.stamps_purchased), (85, 3));
    assert_eq!(buyer.stamps_spent, 0);
    for id in stamps(0..3) {
        assert_eq!(
            ctx.stamp(id),
            Some(StampRecord {
                stamp_id: id,
                buyer: account(0),
                kid: issuer(1).0,
                issued_at: at(7),
                expires_at: at(7 + TTL),
                spent: None,
            })
        );
    }
    assert_eq!(ctx.stamp(stamp(3)), None);
    let entry = ctx.entry(3);
    assert_eq!(entry["kind"], "purchase");
    assert_eq!(entry["account"], account(0).to_string());
    assert_eq!(entry["purchase_id"], buy.purchase_id.to_string());
    assert_eq!(
        (entry["count"].as_u64(), entry["total"].as_u64()),
        (Some(3), Some(15))
    );
    assert_eq!(entry["unit_price"], PRICE);
    assert_eq!(entry["kid"], issuer(1).0.to_hex());
    assert_eq!(entry["issued_at"], at(7).to_rfc3339());
    assert_eq!(entry["expires_at"], at(7 + TTL).to_rfc3339());
    let listed: Vec<String> = stamps(0..3).iter().map(|id| id.to_string()).collect();
    assert_eq!(entry["stamp_ids"], serde_json::json!(listed));

    // A second purchase by the other account, at another price.
    let other = purchase(1, &stamps(3..4)).price(40);
    assert_eq!(
        ctx.ok(other.cmd(), at(9)),
        Outcome::Purchased {
            record: record_of(&other, 100, 4),
            replayed: false
        }
    );
    assert_eq!(ctx.stamp(stamp(3)).map(|s| s.buyer), Some(account(1)));
    let other_buyer = ctx.account(account(1));
    assert_eq!((other_buyer.balance, other_buyer.stamps_purchased), (60, 1));
    assert_eq!(ctx.account(account(0)).balance, 85);
}

pub fn a_purchase_for_an_unknown_account_is_not_found(ctx: &mut Ctx) {
    world(ctx);
    ctx.refused(
        purchase(7, &stamps(0..2)).cmd(),
        at(1),
        Refusal::NotFound(Missing::Account),
    );
    // With an Idempotency-Key too, which is then not used up.
    ctx.refused(
        purchase(7, &stamps(0..2)).key(1).cmd(),
        at(1),
        Refusal::NotFound(Missing::Account),
    );
    ctx.ok(create(7), at(2));
    ctx.ok(credit(7, 10, "later"), at(2));
    let buy = purchase(7, &stamps(0..2)).key(1);
    assert_eq!(
        ctx.ok(buy.cmd(), at(3)),
        Outcome::Purchased {
            record: record_of(&buy, 10, 4),
            replayed: false
        }
    );
}

pub fn a_purchase_beyond_the_balance_is_refused(ctx: &mut Ctx) {
    world(ctx);
    // 21 stamps at 5 cost 105 of a balance of 100.
    ctx.refused(
        purchase(0, &stamps(0..21)).cmd(),
        at(1),
        Refusal::InsufficientFunds {
            balance: 100,
            total: 105,
        },
    );
    ctx.refused(
        purchase(0, &stamps(0..1)).price(101).key(1).cmd(),
        at(1),
        Refusal::InsufficientFunds {
            balance: 100,
            total: 101,
        },
    );
    // Exactly the balance is enough, and leaves nothing.
    let all = purchase(0, &stamps(0..20));
    assert_eq!(
        ctx.ok(all.cmd(), at(2)),
        Outcome::Purchased {
            record: record_of(&all, 100, 3),
            replayed: false
        }
    );
    assert_eq!(ctx.account(account(0)).balance, 0);
    ctx.refused(
        purchase(0, &stamps(20..21)).cmd(),
        at(3),
        Refusal::InsufficientFunds {
            balance: 0,
            total: 5,
        },
    );
    // A free purchase needs no balance.
    let free = purchase(0, &stamps(21..22)).price(0);
    assert_eq!(
        ctx.ok(free.cmd(), at(4)),
        Outcome::Purchased {
            record: record_of(&free, 0, 4),
            replayed: false
        }
    );
}

pub fn a_purchase_replayed_answers_the_first_record(ctx: &mut Ctx) {
    world(ctx);
    let first = purchase(0, &stamps(0..2)).key(1);
    let record = record_of(&first, 100, 3);
    assert_eq!(
        ctx.ok(first.cmd(), at(1)),
        Outcome::Purchased {
            record: record.clone(),
            replayed: false
        }
    );
    ctx.ok(credit(0, 50, "more"), at(2));
    // The same key and count: the first record again (the balance it left, its stamps, its
    // times), even with other stamp ids, another purchase id, price and time; nothing charged.
    let replay = purchase(0, &stamps(10..12))
        .key(1)
        .id(77)
        .price(1)
        .lifetime(at(3), at(3 + TTL));
    let replayed = Ok(Outcome::Purchased {
        record,
        replayed: true,
    });
    ctx.same_after(replay.cmd(), at(3), replayed.clone());
    ctx.same_after(first.cmd(), at(4), replayed);
    assert_eq!(ctx.stamp(stamp(10)), None);
    assert_eq!(ctx.account(account(0)).balance, 140);

    // The same key with another count is a conflict.
    let conflict = Refusal::IdempotencyConflict(Conflict::IdempotencyKey);
    ctx.refused(
        purchase(0, &stamps(10..13)).key(1).cmd(),
        at(5),
        conflict.clone(),
    );
    ctx.refused(purchase(0, &stamps(10..11)).key(1).cmd(), at(5), conflict);

    // Keys belong to an account: the same key for another account is a new purchase.
    let other = purchase(1, &stamps(10..12)).key(1);
    assert_eq!(
        ctx.ok(other.cmd(), at(6)),
        Outcome::Purchased {
            record: record_of(&other, 100, 5),
            replayed: false
        }
    );
    // Without a key, the same request twice is two purchases.
    let plain = purchase(0, &stamps(20..21)).id(1);
    ctx.ok(plain.cmd(), at(7));
    let again = purchase(0, &stamps(21..22)).id(2);
    ctx.ok(again.cmd(), at(7));
    assert_eq!(ctx.account(account(0)).stamps_purchased, 4);
}

pub fn a_purchase_of_a_sold_stamp_id_is_refused(ctx: &mut Ctx) {
    world(ctx);
    ctx.ok(purchase(0, &stamps(0..2)).cmd(), at(1));
    // Sold to this account, to another one, and among new ids: the first sold id is named.
    ctx.refused(
        purchase(0, &[stamp(5), stamp(1)]).cmd(),
        at(2),
        Refusal::DuplicateStamp(stamp(1)),
    );
    ctx.refused(
        purchase(1, &[stamp(0)]).key(1).cmd(),
        at(2),
        Refusal::DuplicateStamp(stamp(0)),
    );
    // Sold under another issue time is still sold.
    ctx.refused(
        purchase(1, &[stamp(1)]).lifetime(at(5), at(5 + TTL)).cmd(),
        at(5),
        Refusal::DuplicateStamp(stamp(1)),
    );
    assert_eq!(ctx.stamp(stamp(0)).map(|s| s.buyer), Some(account(0)));
    assert_eq!(ctx.stamp(stamp(5)), None);
}

pub fn a_purchase_naming_a_stamp_twice_or_none_is_invalid(ctx: &mut Ctx) {
    world(ctx);
    ctx.refused(
        purchase(0, &[stamp(0), stamp(1), stamp(0)]).cmd(),
        at(1),
        Refusal::Invalid(InvalidCommand::StampNamedTwice),
    );
    ctx.refused(
        purchase(0, &[]).cmd(),
        at(1),
        Refusal::Invalid(InvalidCommand::NoStamps),
    );
    // With an Idempotency-Key, which is then not used up.
    ctx.refused(
        purchase(0, &[stamp(0), stamp(0)]).key(1).cmd(),
        at(1),
        Refusal::Invalid(InvalidCommand::StampNamedTwice),
    );
    let buy = purchase(0, &stamps(0..2)).key(1);
    assert_eq!(
        ctx.ok(buy.cmd(), at(2)),
        Outcome::Purchased {
            record: record_of(&buy, 100, 3),
            replayed: false
        }
    );
    // Sold what it charged for: two stamps, ten cents.
    let buyer = ctx.account(account(0));
    assert_eq!((buyer.balance, buyer.stamps_purchased), (90, 2));
}

pub fn a_purchase_total_past_the_largest_overflows(ctx: &mut Ctx) {
    world(ctx);
    ctx.refused(
        purchase(0, &stamps(0..2)).price(u64::MAX).cmd(),
        at(1),
        Refusal::Overflow(Amount::PurchaseTotal),
    );
    ctx.refused(
        purchase(0, &stamps(0..3)).price(u64::MAX / 2).cmd(),
        at(1),
        Refusal::Overflow(Amount::PurchaseTotal),
    );
    // One stamp at the largest price is a total that fits (and a balance that does not).
    ctx.refused(
        purchase(0, &stamps(0..1)).price(u64::MAX).cmd(),
        at(1),
        Refusal::InsufficientFunds {
            balance: 100,
            total: u64::MAX,
        },
    );
}

pub fn a_purchase_needs_its_issuer_key_active(ctx: &mut Ctx) {
    world(ctx);
    let (kid1, kid2) = (issuer(1).0, issuer(2).0);
    // Under a key the ledger never published (the auditor's `unknown_key`).
    ctx.refused(
        purchase(0, &stamps(0..2)).signed_by(2).cmd(),
        at(1),
        Refusal::KeyNotActive(kid2),
    );
    // Under a key retired since (another server started after `keys rotate` while this one
    // still signs with the old key), in the batch that retires it and after.
    let results = ctx.apply(
        &[
            key_event(1, KeyStatus::Retired),
            purchase(0, &stamps(0..2)).cmd(),
            key_event(2, KeyStatus::Active),
            purchase(0, &stamps(2..4)).signed_by(2).cmd(),
        ],
        at(2),
    );
    assert_eq!(results[1], Err(Refusal::KeyNotActive(kid1)));
    assert!(
        matches!(results[3], Ok(Outcome::Purchased { .. })),
        "{results:?}"
    );
    ctx.refused(
        purchase(0, &stamps(4..5)).cmd(),
        at(3),
        Refusal::KeyNotActive(kid1),
    );
    assert_eq!(ctx.account(account(0)).balance, 100 - 2 * PRICE);
    assert_eq!(
        ctx.store().stamp(stamp(0)).expect("read"),
        None,
        "a refused sale sold nothing"
    );
}
