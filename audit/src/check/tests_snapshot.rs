//! Unit tests of the checker's snapshot: a checker stopped anywhere, written, read back and fed
//! the rest of a log ends exactly like one that never stopped (every log of `tests.rs` and
//! `tests_economy.rs` goes through [`assert_resumes_alike`]), and damaged bytes are refused
//! without a panic.

#![allow(clippy::expect_used)]

use super::tests::{honest_log, key_entry, kid, purchase_full, ACCOUNT, T0};
use super::*;

/// Most places a log is cut at by [`assert_resumes_alike`] (evenly spread, both ends included).
const CUTS_MAX: usize = 6;

/// Cuts `entries` at up to [`CUTS_MAX`] places; at each, snapshots the checker, reads it back,
/// and pushes the rest into the copy: its root, size and report must be those of the checker
/// that read the whole log in one go (`want`, at `now`).
pub(super) fn assert_resumes_alike(entries: &[String], now: i64, want: &AuditReport) {
    let mut whole = LedgerChecker::new();
    for entry in entries {
        whole.push(entry.as_bytes());
    }
    let n = entries.len();
    let step = n.div_ceil(CUTS_MAX - 1).max(1);
    let mut cuts: Vec<usize> = (0..n).step_by(step).collect();
    cuts.push(n);
    for cut in cuts {
        let mut first = LedgerChecker::new();
        for entry in &entries[..cut] {
            first.push(entry.as_bytes());
        }
        let bytes = first.to_snapshot();
        let mut resumed = LedgerChecker::from_snapshot(&bytes).expect("reads its own snapshot");
        assert_eq!(resumed.size(), first.size(), "cut at {cut}");
        assert_eq!(resumed.root(), first.root(), "cut at {cut}");
        assert_eq!(
            resumed.to_snapshot().len(),
            bytes.len(),
            "the copy writes as much: cut at {cut}"
        );
        for entry in &entries[cut..] {
            resumed.push(entry.as_bytes());
        }
        assert_eq!(resumed.root(), whole.root(), "cut at {cut}");
        assert_eq!(&resumed.report(now), want, "cut at {cut}");
    }
}

#[test]
fn an_empty_checker_goes_through() {
    let empty = LedgerChecker::new();
    let back = LedgerChecker::from_snapshot(&empty.to_snapshot()).expect("read");
    assert_eq!(back.size(), 0);
    assert_eq!(back.root(), EMPTY_HASH);
    assert_eq!(back.report(0), empty.report(0));
}

#[test]
fn a_double_spend_after_the_cut_is_caught() {
    // The stamp was sold and spent before the cut; the checker that goes on still knows.
    let log = honest_log();
    let mut first = LedgerChecker::new();
    for entry in &log {
        first.push(entry.as_bytes());
    }
    let mut resumed = LedgerChecker::from_snapshot(&first.to_snapshot()).expect("read");
    let again = format!(
        r#"{{"v":1,"index":9,"time":"2026-11-28T00:00:00Z","kind":"spend","stamp_ids":["{}"],"action":"redeem","target":"{}"}}"#,
        super::tests::stamp(1),
        hex::encode([9u8; 32])
    );
    let spend_of_sold = again.replace(&super::tests::stamp(1), &super::tests::stamp(3));
    resumed.push(spend_of_sold.as_bytes());
    assert!(resumed.report(0).ok, "{:?}", resumed.report(0));
    resumed.push(again.replace("\"index\":9", "\"index\":10").as_bytes());
    let report = resumed.report(0);
    assert_eq!(report.violations_total, 1, "{report:?}");
    assert_eq!(report.violations[0].code, code::STAMP_SPENT_TWICE);
    assert_eq!(report.violations[0].index, 10);
}

/// A checker of `stamps` stamps sold in purchases of 1,000, half of them spent.
fn sold(stamps: u32) -> LedgerChecker {
    let mut checker = LedgerChecker::new();
    checker.push(key_entry(0, T0, "active").as_bytes());
    let total = u64::from(stamps);
    checker.push(super::tests::credit(1, ACCOUNT, total, 1).as_bytes());
    for p in 0..stamps / 1000 {
        let ids: Vec<u32> = (p * 1000..(p + 1) * 1000).collect();
        let index = checker.size();
        let entry = purchase_full(index, ACCOUNT, p, 1000, 1, 1000, &kid(), &ids);
        checker.push(entry.as_bytes());
        for pair in ids.chunks(2) {
            let index = checker.size();
            checker.push(
                format!(
                    r#"{{"v":1,"index":{index},"time":"{T0}","kind":"spend","stamp_ids":["{}"],"action":"redeem","target":"{}"}}"#,
                    super::tests::stamp(pair[0]),
                    hex::encode([9u8; 32])
                )
                .as_bytes(),
            );
        }
    }
    checker
}

#[test]
fn a_stamp_costs_24_bytes() {
    let checker = sold(10_000);
    assert_eq!(checker.stamps_issued, 10_000);
    assert_eq!(checker.stamps_spent, 5_000);
    let bytes = checker.to_snapshot();
    // 10 purchases of 1,000: a record per stamp and a spent bit per stamp, 10 purchase
    // records and the small rest.
    assert!(
        bytes.len() <= 10_000 * 24 + 10_000 / 8 + 2_000,
        "{} bytes",
        bytes.len()
    );
    let back = LedgerChecker::from_snapshot(&bytes).expect("read");
    assert_eq!(back.report(0), checker.report(0));
    assert_eq!(back.root(), checker.root());
    // Written again after more entries, the old stamps and the new ones merge in id order.
    let mut more = back;
    let index = more.size();
    let ids: Vec<u32> = (20_000..20_010).collect();
    more.push(super::tests::credit(index, ACCOUNT, 10, 2).as_bytes());
    let entry = purchase_full(index + 1, ACCOUNT, 77, 10, 1, 10, &kid(), &ids);
    more.push(entry.as_bytes());
    let again = LedgerChecker::from_snapshot(&more.to_snapshot()).expect("read");
    assert_eq!(again.report(0), more.report(0));
    assert_eq!(again.report(0).stamps_issued, 10_010);
}

#[test]
fn other_bytes_are_refused_by_name() {
    let bytes = sold(2_000).to_snapshot();
    assert_eq!(
        LedgerChecker::from_snapshot(b"").err(),
        Some(SnapshotError::NotASnapshot)
    );
    assert_eq!(
        LedgerChecker::from_snapshot(b"{\"vkey\": 1}").err(),
        Some(SnapshotError::NotASnapshot)
    );
    let mut other_version = bytes.clone();
    other_version[SNAPSHOT_MAGIC.len()..SNAPSHOT_MAGIC.len() + 4]
        .copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
    assert_eq!(
        LedgerChecker::from_snapshot(&other_version).err(),
        Some(SnapshotError::Version(SNAPSHOT_VERSION + 1))
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        LedgerChecker::from_snapshot(&longer),
        Err(SnapshotError::Invalid(_))
    ));
    // The size says 3 entries (two subtrees), the stack holds one hash.
    let mut checker = LedgerChecker::new();
    for entry in ["a", "b", "c", "d"] {
        checker.push(entry.as_bytes());
    }
    let mut wrong_size = checker.to_snapshot();
    wrong_size[12..20].copy_from_slice(&3u64.to_le_bytes());
    assert!(matches!(
        LedgerChecker::from_snapshot(&wrong_size),
        Err(SnapshotError::Invalid(_))
    ));
}

#[test]
fn every_truncation_is_refused() {
    // With a stamp spent but never sold (60), and one sold after it was spent (61).
    let mut log = honest_log();
    log.push(super::tests::credit(9, ACCOUNT, 1, 9));
    for (index, n) in [(10, 60), (11, 61)] {
        log.push(format!(
            r#"{{"v":1,"index":{index},"time":"2026-11-28T00:00:00Z","kind":"spend","stamp_ids":["{}"],"action":"redeem","target":"{}"}}"#,
            super::tests::stamp(n),
            hex::encode([9u8; 32])
        ));
    }
    log.push(
        purchase_full(12, ACCOUNT, 12, 1, 1, 1, &kid(), &[61]).replace(T0, "2026-11-28T00:00:00Z"),
    );
    let mut checker = LedgerChecker::new();
    for entry in &log {
        checker.push(entry.as_bytes());
    }
    checker.push(b"garbage");
    let bytes = checker.to_snapshot();
    for cut in 0..bytes.len() {
        assert!(
            LedgerChecker::from_snapshot(&bytes[..cut]).is_err(),
            "cut at {cut} of {}",
            bytes.len()
        );
    }
}

#[test]
fn damaged_bytes_never_panic() {
    // What a damaged snapshot decodes to may be anything (the file around it has a checksum);
    // reading it must not panic or allocate without bound.
    let bytes = sold(2_000).to_snapshot();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..500 {
        let mut damaged = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % damaged.len() as u64) as usize;
            damaged[at] = next() as u8;
        }
        if let Ok(mut checker) = LedgerChecker::from_snapshot(&damaged) {
            checker.push(b"{}");
            let _ = checker.report(0);
            let _ = checker.root();
        }
    }
    // Counts at their largest.
    for at in [12, 20] {
        let mut damaged = bytes.clone();
        damaged[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(LedgerChecker::from_snapshot(&damaged).is_err());
    }
}
