//! Unit tests of the payments' checks (invariant 6 as amended, invariant 12): credits by
//! source, debits, the revoke a debit below zero owes, and one broken log per new code.

#![allow(clippy::expect_used)]

use super::tests::{
    assert_only, credit, key_entry, kid, purchase_full, run, stamp, ACCOUNT, EXPIRES_UNIX,
    OTHER_ACCOUNT, T0,
};
use super::*;

/// `2026-11-27T00:00:SSZ`: after `T0`, before `EXPIRES`.
fn at(secs: u32) -> String {
    format!("2026-11-27T00:00:{secs:02}Z")
}

fn credit_from(index: u64, account: &str, amount: u64, reference: u8, source: &str) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"{T0}","kind":"credit","account":"{account}","amount":{amount},"currency":"cents","reference_sha256":"{}","source":"{source}"}}"#,
        hex::encode([reference; 32])
    )
}

fn debit(index: u64, time: &str, account: &str, amount: u64, reference: u8) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"{time}","kind":"debit","account":"{account}","amount":{amount},"currency":"cents","reference_sha256":"{}","source":"stripe","reason":"dispute"}}"#,
        hex::encode([reference; 32])
    )
}

fn revoke(index: u64, time: &str, reference: u8, stamps: &[u32], amount: u64) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"{time}","kind":"spend","stamp_ids":[{}],"action":"revoke","target":"{}","amount":{amount}}}"#,
        super::tests::ids(stamps),
        hex::encode([reference; 32])
    )
}

fn redeem(index: u64, time: &str, stamps: &[u32]) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"{time}","kind":"spend","stamp_ids":[{}],"action":"redeem","target":"{}"}}"#,
        super::tests::ids(stamps),
        hex::encode([9u8; 32])
    )
}

/// A key; ACCOUNT credited 100 by Stripe; two purchases at 10 a stamp: 1, 2, 3 then 4, 5
/// (50 of 100 spent); stamp 5 redeemed. Entries 0 to 4.
fn bought() -> Vec<String> {
    vec![
        key_entry(0, T0, "active"),
        credit_from(1, ACCOUNT, 100, 1, "stripe"),
        purchase_full(2, ACCOUNT, 1, 3, 10, 30, &kid(), &[1, 2, 3]),
        purchase_full(3, ACCOUNT, 2, 2, 10, 20, &kid(), &[4, 5]),
        redeem(4, &at(1), &[5]),
    ]
}

/// `entry` as written at `time` instead of `T0`.
fn timed(entry: String, time: &str) -> String {
    entry.replacen(
        &format!(r#""time":"{T0}""#),
        &format!(r#""time":"{time}""#),
        1,
    )
}

fn check(entries: &[String]) -> AuditReport {
    run(entries, EXPIRES_UNIX - 1)
}

#[test]
fn a_debit_the_balance_covers_owes_no_revoke() {
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 50, 7));
    let report = check(&log);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.debits_total, 50);
    assert_eq!(report.revoked_total, 0);
    assert_eq!(report.credits_total, 100);
    assert_eq!(report.credits_by_source["stripe"], 100);
    assert_eq!(report.credits_by_source["operator"], 0);
}

#[test]
fn a_revoke_takes_the_latest_purchase_first_from_its_last_stamp_back() {
    // Balance 50; a debit of 75 leaves -25: stamps 4 (the latest purchase's unspent one),
    // then 3 and 2 of the first purchase from its last back, until >= 0 (-25 + 30 = 5).
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 75, 7));
    log.push(revoke(6, &at(2), 7, &[4, 3, 2], 30));
    let report = check(&log);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.revoked_total, 30);
    assert_eq!(report.debits_total, 75);
    assert_eq!(report.stamps_spent, 4);
    // A revoked stamp cannot be spent again.
    log.push(redeem(7, &at(3), &[3]));
    assert_only(&log, code::STAMP_SPENT_TWICE, 7);
}

#[test]
fn what_stamps_cannot_cover_stays_a_debt_that_blocks_purchases() {
    // Balance 50; a debit of 200: every unspent stamp (4, 3, 2, 1: 40) is revoked, -110 remains.
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 200, 7));
    log.push(revoke(6, &at(2), 7, &[4, 3, 2, 1], 40));
    assert!(check(&log).ok, "{:?}", check(&log));
    // A credit of 100 leaves -10: a purchase of 1 at 10 would leave -20.
    log.push(timed(credit(7, ACCOUNT, 100, 8), &at(3)));
    log.push(timed(
        purchase_full(8, ACCOUNT, 3, 1, 10, 10, &kid(), &[20]),
        &at(3),
    ));
    assert_only(&log, code::NEGATIVE_BALANCE, 8);
    // With 20 more (the debt of 10 and the price) it is allowed.
    let mut paid = log[..8].to_vec();
    paid.push(timed(credit(8, ACCOUNT, 20, 9), &at(3)));
    paid.push(timed(
        purchase_full(9, ACCOUNT, 3, 1, 10, 10, &kid(), &[20]),
        &at(3),
    ));
    assert!(check(&paid).ok, "{:?}", check(&paid));
}

#[test]
fn expired_stamps_are_not_revoked() {
    // The second purchase expires before the revoke: only stamps of the first are taken.
    let mut log = vec![
        key_entry(0, T0, "active"),
        credit(1, ACCOUNT, 100, 1),
        purchase_full(2, ACCOUNT, 1, 3, 10, 30, &kid(), &[1, 2, 3]),
        format!(
            r#"{{"v":1,"index":3,"time":"{T0}","kind":"purchase","account":"{ACCOUNT}","purchase_id":"{}","count":2,"unit_price":10,"total":20,"kid":"{}","issued_at":"{T0}","expires_at":"2026-11-27T00:00:01Z","stamp_ids":[{}]}}"#,
            super::tests::purchase_id(2),
            kid(),
            super::tests::ids(&[4, 5])
        ),
        debit(4, &at(5), ACCOUNT, 60, 7),
        revoke(5, &at(5), 7, &[3], 10),
    ];
    let report = run(&log, EXPIRES_UNIX - 1);
    assert!(report.ok, "{report:?}");
    // Taking an expired stamp is wrong.
    log[5] = revoke(5, &at(5), 7, &[5], 10);
    let report = run(&log, EXPIRES_UNIX - 1);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.code == code::WRONG_REVOKE),
        "{report:?}"
    );
}

#[test]
fn a_revoke_that_over_reaches_is_wrong() {
    // -25 is covered by 3 stamps; a fourth is one too many.
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 75, 7));
    log.push(revoke(6, &at(2), 7, &[4, 3, 2, 1], 40));
    assert_only(&log, code::WRONG_REVOKE, 6);
}

#[test]
fn a_revoke_in_another_order_or_of_another_account_is_wrong() {
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 75, 7));
    log.push(revoke(6, &at(2), 7, &[1, 2, 3], 30));
    assert_only(&log, code::WRONG_REVOKE, 6);

    let mut log = bought();
    log.push(timed(credit(5, OTHER_ACCOUNT, 10, 3), &at(1)));
    log.push(timed(
        purchase_full(6, OTHER_ACCOUNT, 9, 1, 10, 10, &kid(), &[30]),
        &at(1),
    ));
    log.push(debit(7, &at(2), ACCOUNT, 55, 7));
    log.push(revoke(8, &at(2), 7, &[30], 10));
    assert_only(&log, code::WRONG_REVOKE, 8);
}

#[test]
fn a_revoke_with_a_wrong_amount_is_wrong() {
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 75, 7));
    log.push(revoke(6, &at(2), 7, &[4, 3, 2], 31));
    assert_only(&log, code::WRONG_REVOKE, 6);
}

#[test]
fn a_revoke_without_its_debit_is_wrong() {
    // No debit before it.
    let mut log = bought();
    log.push(revoke(5, &at(2), 7, &[4], 10));
    assert_only(&log, code::WRONG_REVOKE, 5);
    // Its debit, but not right before it.
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 55, 7));
    log.push(redeem(6, &at(2), &[4]));
    log.push(revoke(7, &at(2), 7, &[3], 10));
    let report = check(&log);
    let codes: Vec<&str> = report.violations.iter().map(|v| v.code.as_str()).collect();
    assert_eq!(
        codes,
        [code::MISSING_REVOKE, code::WRONG_REVOKE],
        "{report:?}"
    );
    // Another debit's reference.
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 55, 7));
    log.push(revoke(6, &at(2), 8, &[4], 10));
    let report = check(&log);
    let codes: Vec<&str> = report.violations.iter().map(|v| v.code.as_str()).collect();
    assert_eq!(
        codes,
        [code::MISSING_REVOKE, code::WRONG_REVOKE],
        "{report:?}"
    );
}

#[test]
fn a_missing_revoke_is_reported_at_its_debit_also_at_the_end() {
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 75, 7));
    assert_only(&log, code::MISSING_REVOKE, 5);
    log.push(timed(credit(6, ACCOUNT, 100, 8), &at(3)));
    assert_only(&log, code::MISSING_REVOKE, 5);
}

#[test]
fn a_debit_with_no_stamps_left_owes_no_revoke() {
    let log = vec![
        key_entry(0, T0, "active"),
        credit(1, ACCOUNT, 100, 1),
        purchase_full(2, ACCOUNT, 1, 1, 10, 10, &kid(), &[1]),
        redeem(3, &at(1), &[1]),
        debit(4, &at(2), ACCOUNT, 100, 7),
        timed(credit(5, ACCOUNT, 10, 8), &at(3)),
    ];
    assert!(check(&log).ok, "{:?}", check(&log));
}

#[test]
fn references_are_unique_among_credits_and_debits() {
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 10, 1));
    assert_only(&log, code::DEBIT_REFERENCE_REUSED, 5);
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 10, 7));
    log.push(timed(credit(6, ACCOUNT, 10, 7), &at(3)));
    assert_only(&log, code::CREDIT_REFERENCE_REUSED, 6);
}

#[test]
fn a_zero_debit_is_refused() {
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 0, 7));
    assert_only(&log, code::NON_POSITIVE_DEBIT, 5);
}

#[test]
fn a_planted_double_credit_is_caught() {
    let mut log = bought();
    log.push(timed(credit_from(5, ACCOUNT, 100, 1, "stripe"), &at(2)));
    assert_only(&log, code::CREDIT_REFERENCE_REUSED, 5);
}

#[test]
fn malformed_payment_entries() {
    let bad = [
        // Unknown source, null source.
        timed(credit_from(5, ACCOUNT, 1, 9, "paypal"), &at(2)),
        format!(
            r#"{{"v":1,"index":5,"time":"{}","kind":"credit","account":"{ACCOUNT}","amount":1,"currency":"cents","reference_sha256":"{}","source":null}}"#,
            at(2),
            hex::encode([9u8; 32])
        ),
        // A debit without a reason, with an unknown reason, with an empty currency.
        debit(5, &at(2), ACCOUNT, 1, 9).replace(r#","reason":"dispute""#, ""),
        debit(5, &at(2), ACCOUNT, 1, 9).replace("dispute", "whim"),
        debit(5, &at(2), ACCOUNT, 1, 9).replace(r#""currency":"cents""#, r#""currency":"""#),
        // A revoke without an amount; an amount on a redeem.
        revoke(5, &at(2), 7, &[4], 10).replace(r#","amount":10"#, ""),
        redeem(5, &at(2), &[4]).replace(r#"}"#, r#","amount":1}"#),
        // A revoke whose target is not hex.
        revoke(5, &at(2), 7, &[4], 10).replace(&hex::encode([7u8; 32]), "dispute-1"),
    ];
    for entry in bad {
        let mut log = bought();
        log.push(entry.clone());
        assert_only(&log, code::MALFORMED_ENTRY, 5);
    }
}

#[test]
fn credits_without_a_source_are_the_operators() {
    let log = vec![
        key_entry(0, T0, "active"),
        credit(1, ACCOUNT, 100, 1),
        credit_from(2, ACCOUNT, 5, 2, "test"),
        credit_from(3, ACCOUNT, 7, 3, "btcpay"),
        credit_from(4, ACCOUNT, 9, 4, "operator"),
    ];
    let report = check(&log);
    assert!(report.ok, "{report:?}");
    let by_source: Vec<(&str, u64)> = report
        .credits_by_source
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        by_source,
        [("btcpay", 7), ("operator", 109), ("stripe", 0), ("test", 5)]
    );
    assert_eq!(report.credits_total, 121);
    let text = serde_json::to_string(&report).expect("json");
    assert!(
        text.contains(r#""credits_by_source":{"btcpay":7,"#),
        "{text}"
    );
}

#[test]
fn a_stamp_spent_after_revoke_and_resumed_from_a_snapshot_stays_caught() {
    // `run` also checks every log resumed from snapshots cut along it; this log crosses a
    // debit, its revoke and a later double spend of a revoked stamp.
    let mut log = bought();
    log.push(debit(5, &at(2), ACCOUNT, 75, 7));
    log.push(revoke(6, &at(2), 7, &[4, 3, 2], 30));
    log.push(redeem(7, &at(3), &[1]));
    log.push(redeem(8, &at(4), &[2]));
    let report = check(&log);
    assert_eq!(report.violations_total, 1, "{report:?}");
    assert_eq!(report.violations[0].code, code::STAMP_SPENT_TWICE);
    let _ = stamp(1);
}
