//! Unit tests of the ledger checker: the Merkle root against RFC 6962 and tlog-tiles, an
//! honest log, one broken log per violation code, and hostile input. [`run`] also checks each
//! log in two runs through a snapshot (`tests_snapshot.rs`).

#![allow(clippy::expect_used)]

use super::*;
use tlog_tiles::{stored_hashes, tree_hash, HashReader};

// ---------------------------------------------------------------- Merkle tree

/// The leaf inputs of the Certificate Transparency test suites (RFC 6962 vectors).
fn ct_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| hex::decode(h).expect("hex"))
    .collect()
}

/// MTH of the first n CT leaves, n = 1..=8.
const CT_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn empty_root_is_sha256_of_nothing() {
    let checker = LedgerChecker::new();
    assert_eq!(checker.size(), 0);
    assert_eq!(checker.root(), EMPTY_HASH);
    assert_eq!(
        hex::encode(checker.root().0),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn root_matches_rfc6962_vectors() {
    let mut checker = LedgerChecker::new();
    for (leaf, want) in ct_leaves().iter().zip(CT_ROOTS) {
        checker.push(leaf);
        assert_eq!(
            hex::encode(checker.root().0),
            want,
            "size {}",
            checker.size()
        );
    }
    assert_eq!(checker.size(), 8);
}

struct Memory(Vec<Hash>);

impl HashReader for Memory {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        Ok(indexes
            .iter()
            .map(|&i| self.0[usize::try_from(i).expect("index")])
            .collect())
    }
}

#[test]
fn root_matches_tlog_tiles_tree_hash() {
    let mut storage = Memory(Vec::new());
    let mut checker = LedgerChecker::new();
    for n in 0..=300u64 {
        let want = tree_hash(n, &storage).expect("tree_hash");
        assert_eq!(checker.root(), want, "size {n}");
        let data = format!("entry {n}").into_bytes();
        let new = stored_hashes(n, &data, &storage).expect("stored_hashes");
        storage.0.extend(new);
        checker.push(&data);
    }
    assert!(checker.stack.len() <= 64);
}

// ---------------------------------------------------------------- entry builders

pub(super) const T0: &str = "2026-11-26T21:45:46Z";
pub(super) const EXPIRES: &str = "2027-11-26T21:45:46Z";
/// Unix seconds of `EXPIRES`.
pub(super) const EXPIRES_UNIX: i64 = 1_827_265_546;
pub(super) const ACCOUNT: &str = "11111111-1111-4111-8111-111111111111";
pub(super) const OTHER_ACCOUNT: &str = "22222222-2222-4222-8222-222222222222";
pub(super) const POST: &str = "33333333-3333-4333-8333-333333333333";

fn public_key() -> [u8; 32] {
    [7u8; 32]
}

pub(super) fn kid() -> String {
    hex::encode(&Sha256::digest(public_key())[..8])
}

pub(super) fn stamp(n: u32) -> String {
    uuid::Uuid::from_u128(0xabcd_0000_0000_4000_8000_0000_0000_0000 | u128::from(n)).to_string()
}

pub(super) fn purchase_id(n: u32) -> String {
    uuid::Uuid::from_u128(0xeeee_0000_0000_4000_8000_0000_0000_0000 | u128::from(n)).to_string()
}

pub(super) fn ids(ns: &[u32]) -> String {
    let quoted: Vec<String> = ns.iter().map(|&n| format!("\"{}\"", stamp(n))).collect();
    quoted.join(",")
}

pub(super) fn key_entry(index: u64, time: &str, status: &str) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"{time}","kind":"key","kid":"{}","public_key":"{}","status":"{status}"}}"#,
        kid(),
        URL_SAFE_NO_PAD.encode(public_key())
    )
}

pub(super) fn credit(index: u64, account: &str, amount: u64, reference: u8) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"{T0}","kind":"credit","account":"{account}","amount":{amount},"currency":"cents","reference_sha256":"{}"}}"#,
        hex::encode([reference; 32])
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn purchase_full(
    index: u64,
    account: &str,
    pid: u32,
    count: u64,
    unit_price: u64,
    total: u64,
    kid: &str,
    stamps: &[u32],
) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"{T0}","kind":"purchase","account":"{account}","purchase_id":"{}","count":{count},"unit_price":{unit_price},"total":{total},"kid":"{kid}","issued_at":"{T0}","expires_at":"{EXPIRES}","stamp_ids":[{}]}}"#,
        purchase_id(pid),
        ids(stamps)
    )
}

fn purchase(index: u64, pid: u32, stamps: &[u32]) -> String {
    let n = stamps.len() as u64;
    purchase_full(index, ACCOUNT, pid, n, 1, n, &kid(), stamps)
}

fn spend_at(index: u64, time: &str, stamps: &[u32]) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"{time}","kind":"spend","stamp_ids":[{}],"action":"post","target":"{POST}"}}"#,
        ids(stamps)
    )
}

fn spend(index: u64, stamps: &[u32]) -> String {
    spend_at(index, T0, stamps)
}

pub(super) fn run(entries: &[String], now: i64) -> AuditReport {
    let mut checker = LedgerChecker::new();
    for entry in entries {
        checker.push(entry.as_bytes());
    }
    let report = checker.report(now);
    assert_eq!(
        report.stamps_issued,
        report.stamps_spent + report.stamps_outstanding + report.stamps_expired,
        "{report:?}"
    );
    // Every log checked here is also checked in two runs, cut at places along it.
    super::tests_snapshot::assert_resumes_alike(entries, now, &report);
    report
}

/// A log of `n` honest entries to put before a broken one: a key, a credit of 100.
fn prefix() -> Vec<String> {
    vec![key_entry(0, T0, "active"), credit(1, ACCOUNT, 100, 1)]
}

/// Asserts the log breaks exactly one rule, `code`, at `index`.
pub(super) fn assert_only(entries: &[String], code: ViolationCode, index: u64) {
    let report = run(entries, EXPIRES_UNIX - 1);
    assert!(!report.ok, "{report:?}");
    assert_eq!(report.violations_total, 1, "{report:?}");
    assert_eq!(report.violations[0].code, code, "{report:?}");
    assert_eq!(report.violations[0].index, index, "{report:?}");
}

// ---------------------------------------------------------------- honest logs

#[test]
fn builders_write_the_server_format() {
    assert_eq!(
        spend(3, &[1]),
        format!(
            r#"{{"v":1,"index":3,"time":"{T0}","kind":"spend","stamp_ids":["{}"],"action":"post","target":"{POST}"}}"#,
            stamp(1)
        )
    );
}

pub(super) fn honest_log() -> Vec<String> {
    vec![
        key_entry(0, T0, "active"),
        credit(1, ACCOUNT, 1000, 1),
        credit(2, OTHER_ACCOUNT, 5, 2),
        purchase(3, 1, &[1, 2, 3]),
        spend(4, &[1]),
        format!(
            r#"{{"v":1,"index":5,"time":"2026-11-26T21:45:46.000Z","kind":"spend","stamp_ids":["{}"],"action":"redeem","target":"{}"}}"#,
            stamp(2),
            hex::encode([9u8; 32])
        ),
        purchase_full(6, OTHER_ACCOUNT, 2, 2, 2, 4, &kid(), &[10, 11]),
        format!(
            r#"{{"v":1,"index":7,"time":"2026-11-27T00:00:00.000001Z","kind":"spend","stamp_ids":["{}"],"action":"vote","target":"{POST}"}}"#,
            stamp(10)
        ),
        key_entry(8, "2026-11-28T00:00:00Z", "retired"),
    ]
}

#[test]
fn honest_log_passes_with_right_totals() {
    let report = run(&honest_log(), EXPIRES_UNIX - 1);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.violations, vec![]);
    assert_eq!(report.violations_total, 0);
    assert_eq!(report.ledger_size, 9);
    assert_eq!(report.stamps_issued, 5);
    assert_eq!(report.stamps_spent, 3);
    assert_eq!(report.stamps_outstanding, 2);
    assert_eq!(report.stamps_expired, 0);
    assert_eq!(report.credits_total, 1005);
    assert_eq!(report.purchases_total, 7);
}

#[test]
fn unspent_stamps_expire_at_expires_at() {
    let log = honest_log();
    for now in [EXPIRES_UNIX, EXPIRES_UNIX + 1, i64::MAX] {
        let report = run(&log, now);
        assert!(report.ok, "{report:?}");
        assert_eq!(report.stamps_spent, 3);
        assert_eq!(report.stamps_outstanding, 0);
        assert_eq!(report.stamps_expired, 2);
    }
    let report = run(&log, i64::MIN);
    assert_eq!(report.stamps_outstanding, 2);
}

#[test]
fn root_is_of_the_bytes_pushed() {
    let mut checker = LedgerChecker::new();
    let mut leaves = Vec::new();
    for entry in honest_log() {
        checker.push(entry.as_bytes());
        leaves.push(record_hash(entry.as_bytes()));
    }
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_HASH,
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
            }
        }
    }
    assert_eq!(checker.root(), mth(&leaves));
}

#[test]
fn report_serializes_and_violations_total_defaults() {
    let report = run(&honest_log(), 0);
    let text = serde_json::to_string(&report).expect("json");
    assert!(text.starts_with(r#"{"ok":true,"ledger_size":9,"#), "{text}");
    let back: AuditReport = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, report);
    let old = r#"{"ok":true,"ledger_size":0,"stamps_issued":0,"stamps_spent":0,"stamps_outstanding":0,"stamps_expired":0,"credits_total":0,"purchases_total":0,"violations":[]}"#;
    let parsed: AuditReport = serde_json::from_str(old).expect("parse");
    assert_eq!(parsed.violations_total, 0);
    assert_eq!(parsed.refunds_total, 0);
}

// ---------------------------------------------------------------- one test per code

#[test]
fn malformed_entry() {
    let cases = [
        "not json".to_string(),
        "{}".to_string(),
        r#"{"v":2,"index":0,"time":"2026-11-26T21:45:46Z","kind":"key"}"#.to_string(),
        r#"{"v":1,"index":"0","time":"2026-11-26T21:45:46Z","kind":"key"}"#.to_string(),
        r#"{"v":1,"index":0,"time":"yesterday","kind":"key"}"#.to_string(),
        r#"{"v":1,"index":0,"time":"2026-11-26 22:45:46Z","kind":"key"}"#.to_string(),
        format!(" {}", key_entry(0, T0, "active")),
        format!("{}\n", key_entry(0, T0, "active")),
        key_entry(0, T0, "sleeping"),
        key_entry(0, T0, "active").replace(&kid(), "ABCDEF0123456789"),
        key_entry(0, T0, "active").replace(r#","status""#, r#","extra":1,"status""#),
        key_entry(0, T0, "active").replace(r#""kind":"key""#, r#""kind":"key","kind":"key""#),
    ];
    for case in cases {
        assert_only(
            std::slice::from_ref(&case),
            ViolationCode::MalformedEntry,
            0,
        );
    }
    let spend_cases = [
        spend(2, &[1]).replace("\"post\"", "\"burn\""),
        spend(2, &[1]).replace(&stamp(1), "not-a-uuid"),
        spend(2, &[1]).replace(&stamp(1), &stamp(1).to_uppercase()),
        spend(2, &[1]).replace(POST, &hex::encode([1u8; 32])),
        spend(2, &[1]).replace("\"post\"", "\"redeem\""),
    ];
    for case in spend_cases {
        let mut log = prefix();
        log.push(case);
        assert_only(&log, ViolationCode::MalformedEntry, 2);
    }
    let mut log = prefix();
    log.push(purchase(2, 1, &[1]).replace(EXPIRES, "2027-13-01T00:00:00Z"));
    assert_only(&log, ViolationCode::MalformedEntry, 2);
    let mut log = prefix();
    log.push(credit(2, ACCOUNT, 5, 2).replace("\"amount\":5", "\"amount\":-5"));
    assert_only(&log, ViolationCode::MalformedEntry, 2);
    let big = format!("{{\"v\":1,\"pad\":\"{}\"}}", "x".repeat(ENTRY_BYTES_MAX));
    assert_only(&[big], ViolationCode::MalformedEntry, 0);
}

#[test]
fn unknown_kind() {
    let mut log = prefix();
    log.push(format!(
        r#"{{"v":1,"index":2,"time":"{T0}","kind":"expiry","amount":5}}"#
    ));
    assert_only(&log, ViolationCode::UnknownKind, 2);
}

#[test]
fn index_gap() {
    let log = vec![key_entry(0, T0, "active"), credit(2, ACCOUNT, 100, 1)];
    assert_only(&log, ViolationCode::IndexGap, 1);
}

#[test]
fn time_backwards() {
    let log = vec![
        key_entry(0, "2026-11-27T00:00:00Z", "active"),
        key_entry(1, "2026-11-26T23:59:59.999Z", "active"),
    ];
    assert_only(&log, ViolationCode::TimeBackwards, 1);
}

#[test]
fn stamp_sold_twice() {
    let mut log = prefix();
    log.push(purchase(2, 1, &[1]));
    log.push(purchase(3, 2, &[1]));
    assert_only(&log, ViolationCode::StampSoldTwice, 3);
}

#[test]
fn stamp_spent_twice() {
    let mut log = prefix();
    log.push(purchase(2, 1, &[1]));
    log.push(spend(3, &[1]));
    log.push(spend(4, &[1]));
    assert_only(&log, ViolationCode::StampSpentTwice, 4);
}

#[test]
fn spend_of_unsold_stamp() {
    let mut log = prefix();
    log.push(purchase(2, 1, &[1]));
    log.push(spend(3, &[2]));
    assert_only(&log, ViolationCode::SpendOfUnsoldStamp, 3);
}

#[test]
fn spend_after_expiry() {
    let mut log = prefix();
    log.push(purchase(2, 1, &[1, 2]));
    log.push(spend_at(3, "2027-11-26T21:45:45.999999999Z", &[2]));
    log.push(spend_at(4, EXPIRES, &[1]));
    assert_only(&log, ViolationCode::SpendAfterExpiry, 4);
    let report = run(&log, 0);
    assert_eq!((report.stamps_spent, report.stamps_outstanding), (2, 0));
}

#[test]
fn unknown_key() {
    let mut log = vec![credit(0, ACCOUNT, 100, 1)];
    log.push(purchase(1, 1, &[1]));
    assert_only(&log, ViolationCode::UnknownKey, 1);

    let mut log = prefix();
    log.push(purchase_full(
        2,
        ACCOUNT,
        1,
        1,
        1,
        1,
        "0123456789abcdef",
        &[1],
    ));
    assert_only(&log, ViolationCode::UnknownKey, 2);

    let mut log = prefix();
    log.push(key_entry(2, T0, "retired"));
    log.push(purchase(3, 1, &[1]));
    assert_only(&log, ViolationCode::UnknownKey, 3);
}

/// An active key of its own: another public key and its kid.
fn other_key_entry(index: u64, status: &str) -> String {
    let public_key = [9u8; 32];
    format!(
        r#"{{"v":1,"index":{index},"time":"{T0}","kind":"key","kid":"{}","public_key":"{}","status":"{status}"}}"#,
        hex::encode(&Sha256::digest(public_key)[..8]),
        URL_SAFE_NO_PAD.encode(public_key)
    )
}

#[test]
fn two_active_keys() {
    // A second key activated without retiring the first: what a server that silently
    // replaced a missing key file would write.
    let log = vec![key_entry(0, T0, "active"), other_key_entry(1, "active")];
    assert_only(&log, ViolationCode::TwoActiveKeys, 1);
    // A rotation retires the old key first: nothing to report.
    let log = vec![
        key_entry(0, T0, "active"),
        key_entry(1, T0, "retired"),
        other_key_entry(2, "active"),
    ];
    let report = run(&log, EXPIRES_UNIX - 1);
    assert!(report.ok, "{report:?}");
    // Reactivating a retired key while another is active is reported too.
    let mut log = log;
    log.push(key_entry(3, T0, "active"));
    assert_only(&log, ViolationCode::TwoActiveKeys, 3);
}

#[test]
fn key_id_mismatch() {
    let log = vec![key_entry(0, T0, "active").replace(&kid(), "0123456789abcdef")];
    assert_only(&log, ViolationCode::KeyIdMismatch, 0);
}

#[test]
fn key_changed() {
    // The published kid with another public key: invariant 11's second half. The kid is the
    // old key's, so the entry fails its own kid check too; the published key stands.
    let changed = key_entry(1, T0, "active").replace(
        &URL_SAFE_NO_PAD.encode(public_key()),
        &URL_SAFE_NO_PAD.encode([9u8; 32]),
    );
    let mut log = vec![key_entry(0, T0, "active"), changed];
    let report = run(&log, EXPIRES_UNIX - 1);
    let found: Vec<(ViolationCode, u64)> = report
        .violations
        .iter()
        .map(|v| (v.code, v.index))
        .collect();
    assert_eq!(
        found,
        [
            (ViolationCode::KeyChanged, 1),
            (ViolationCode::KeyIdMismatch, 1)
        ],
        "{report:?}"
    );
    // Sales under the published key go on being checked against it, active as it was.
    log.push(credit(2, ACCOUNT, 100, 1));
    log.push(purchase(3, 1, &[1]));
    assert_eq!(run(&log, EXPIRES_UNIX - 1).violations_total, 2);
}

#[test]
fn times_are_rfc_3339_with_any_offset_read_as_instants() {
    // LEDGER.md asks for RFC 3339, not UTC: `+01:00` names the same instant as an hour less
    // in `Z`, for the order of entries and for expiry alike.
    let mut log = vec![
        key_entry(0, "2026-11-26T22:45:46+01:00", "active"),
        credit(1, ACCOUNT, 100, 1),
        purchase(2, 1, &[1, 2]).replace(EXPIRES, "2027-11-26T22:45:46+01:00"),
        spend_at(3, "2027-11-26T21:45:45Z", &[2]),
    ];
    let report = run(&log, EXPIRES_UNIX - 1);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.stamps_outstanding, 1);
    log.push(spend_at(4, "2027-11-26T16:45:46-05:00", &[1]));
    assert_only(&log, ViolationCode::SpendAfterExpiry, 4);

    let log = vec![
        key_entry(0, "2026-11-27T00:00:00Z", "active"),
        key_entry(1, "2026-11-27T01:00:00+01:00", "active"),
    ];
    assert!(run(&log, 0).ok);
    let log = vec![
        key_entry(0, "2026-11-27T00:00:00Z", "active"),
        key_entry(1, "2026-11-27T00:59:59+01:00", "active"),
    ];
    assert_only(&log, ViolationCode::TimeBackwards, 1);
}

#[test]
fn duplicate_stamp_in_entry() {
    let mut log = prefix();
    log.push(purchase_full(2, ACCOUNT, 1, 2, 1, 2, &kid(), &[1, 1]));
    let report = run(&log, 0);
    assert_eq!(report.violations_total, 1, "{report:?}");
    assert_eq!(
        report.violations[0].code,
        ViolationCode::DuplicateStampInEntry
    );
    assert_eq!(report.violations[0].index, 2);
    assert_eq!(report.stamps_issued, 1);

    let mut log = prefix();
    log.push(purchase(2, 1, &[1]));
    log.push(spend(3, &[1, 1]));
    assert_only(&log, ViolationCode::DuplicateStampInEntry, 3);
}

#[test]
fn purchase_count_mismatch() {
    let mut log = prefix();
    log.push(purchase_full(2, ACCOUNT, 1, 3, 1, 3, &kid(), &[1, 2]));
    assert_only(&log, ViolationCode::PurchaseCountMismatch, 2);
}

#[test]
fn purchase_total_mismatch() {
    let mut log = prefix();
    log.push(purchase_full(2, ACCOUNT, 1, 2, 3, 5, &kid(), &[1, 2]));
    assert_only(&log, ViolationCode::PurchaseTotalMismatch, 2);
}

#[test]
fn purchase_total_overflow_is_a_violation() {
    let log = vec![
        key_entry(0, T0, "active"),
        credit(1, ACCOUNT, u64::MAX, 1),
        purchase_full(2, ACCOUNT, 1, 2, u64::MAX, u64::MAX, &kid(), &[1, 2]),
    ];
    assert_only(&log, ViolationCode::PurchaseTotalMismatch, 2);
}

#[test]
fn purchase_id_reused() {
    let mut log = prefix();
    log.push(purchase(2, 1, &[1]));
    log.push(purchase(3, 1, &[2]));
    assert_only(&log, ViolationCode::PurchaseIdReused, 3);
}

#[test]
fn negative_balance() {
    let mut log = prefix();
    log.push(purchase_full(2, ACCOUNT, 1, 1, 100, 100, &kid(), &[1]));
    log.push(credit(3, OTHER_ACCOUNT, 100, 2));
    log.push(purchase_full(4, ACCOUNT, 2, 1, 1, 1, &kid(), &[2]));
    assert_only(&log, ViolationCode::NegativeBalance, 4);
}

#[test]
fn credit_reference_reused() {
    let mut log = prefix();
    log.push(credit(2, OTHER_ACCOUNT, 7, 1));
    assert_only(&log, ViolationCode::CreditReferenceReused, 2);
}

#[test]
fn non_positive_credit() {
    let mut log = prefix();
    log.push(credit(2, ACCOUNT, 0, 2));
    assert_only(&log, ViolationCode::NonPositiveCredit, 2);
}

// ---------------------------------------------------------------- hostile input

#[test]
fn entries_up_to_entry_bytes_max_are_read_and_one_byte_more_is_malformed() {
    // A credit whose currency pads it to exactly `len` bytes: the only thing wrong with the
    // longer one is its size.
    let sized = |len: usize| {
        let short = credit(1, ACCOUNT, 100, 1);
        let currency = "c".repeat(len - short.len() + "cents".len());
        short.replace("\"cents\"", &format!("\"{currency}\""))
    };
    // The ledger allows 64 KiB: 65,536 bytes (the server writes at most 65,535, for tiles).
    let largest = sized(ENTRY_BYTES_MAX);
    assert_eq!(largest.len(), 65_536);
    let report = run(&[key_entry(0, T0, "active"), largest], 0);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.credits_total, 100);
    let written = sized(crate::ENTRY_BYTES_WRITTEN_MAX);
    assert_eq!(written.len(), 65_535);
    assert!(run(&[key_entry(0, T0, "active"), written], 0).ok);

    let log = [key_entry(0, T0, "active"), sized(ENTRY_BYTES_MAX + 1)];
    assert_only(&log, ViolationCode::MalformedEntry, 1);
    let report = run(&log, 0);
    assert_eq!(report.violations[0].detail, "65537 bytes, more than 65536");
}

#[test]
fn totals_saturate() {
    let mut log = vec![key_entry(0, T0, "active")];
    for i in 1..=3u8 {
        log.push(credit(u64::from(i), ACCOUNT, u64::MAX, i));
    }
    let report = run(&log, 0);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.credits_total, u64::MAX);
}

#[test]
fn violations_are_capped_but_counted() {
    let mut checker = LedgerChecker::new();
    let n = VIOLATIONS_MAX as u64 + 500;
    for _ in 0..n {
        checker.push(b"garbage");
    }
    let report = checker.report(0);
    assert!(!report.ok);
    assert_eq!(report.violations.len(), VIOLATIONS_MAX);
    assert_eq!(report.violations_total, n);
    assert_eq!(report.ledger_size, n);
}

#[test]
fn details_are_clipped() {
    let mut log = prefix();
    let kind = "k".repeat(10_000);
    log.push(format!(
        r#"{{"v":1,"index":2,"time":"{T0}","kind":"{kind}"}}"#
    ));
    let report = run(&log, 0);
    assert_eq!(report.violations[0].code, ViolationCode::UnknownKind);
    assert!(report.violations[0].detail.chars().count() <= DETAIL_CHARS_MAX + 1);
}

/// xorshift64*, so the garbage is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn garbage_never_panics() {
    let mut checker = LedgerChecker::new();
    let fixed: Vec<Vec<u8>> = vec![
        vec![],
        b"{".to_vec(),
        b"}".to_vec(),
        b"{}".to_vec(),
        b"null".to_vec(),
        vec![0xff; 100],
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        format!("{{{}}}", "\"a\":{".repeat(20_000)).into_bytes(),
        br#"{"v":1,"index":0,"time":"2026-11-26T21:45:46Z","kind":"purchase","count":1e400}"#
            .to_vec(),
        br#"{"v":18446744073709551616,"index":0,"time":"x","kind":"key"}"#.to_vec(),
        br#"{"v":1,"index":18446744073709551615,"time":"9999-12-31T23:59:59.999999999Z","kind":"key"}"#
            .to_vec(),
        br#"{"v":1,"index":0,"time":"0000-01-01T00:00:00Z","kind":"spend","stamp_ids":[],"action":"post","target":""}"#
            .to_vec(),
        br#"{"v":1,"index":0,"time":"2026-11-26T21:45:46Z","kind":"\ud800"}"#.to_vec(),
        purchase_full(0, ACCOUNT, 1, u64::MAX, u64::MAX, 0, &kid(), &[1]).into_bytes(),
    ];
    for bytes in &fixed {
        checker.push(bytes);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let honest = honest_log();
    for _ in 0..20_000 {
        let bytes: Vec<u8> = match rng.below(3) {
            0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            _ => {
                let i = usize::try_from(rng.below(honest.len() as u64)).expect("index");
                let mut bytes = honest[i].clone().into_bytes();
                for _ in 0..=rng.below(4) {
                    let at = usize::try_from(rng.below(bytes.len() as u64)).expect("at");
                    match rng.below(3) {
                        0 => bytes[at] = rng.next() as u8,
                        1 => bytes.truncate(at),
                        _ => bytes.insert(at, b"0123456789\"{}[],:-."[at % 19]),
                    }
                    if bytes.is_empty() {
                        break;
                    }
                }
                bytes
            }
        };
        checker.push(&bytes);
        let _ = checker.root();
    }
    for now in [i64::MIN, 0, i64::MAX] {
        let report = checker.report(now);
        assert_eq!(
            report.stamps_issued,
            report.stamps_spent + report.stamps_outstanding + report.stamps_expired
        );
        assert!(!report.ok);
    }
    assert_eq!(checker.size(), fixed.len() as u64 + 20_000);
}
