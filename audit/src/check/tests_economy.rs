//! Unit tests of the economy's checks (invariants 8 to 10): each price and refund rule at its
//! edges, one broken log per new violation code, logs from before the economy, and the memory
//! the checks keep.

#![allow(clippy::expect_used)]

use super::tests::{
    assert_only, credit, key_entry, kid, purchase_full, run, stamp, ACCOUNT, EXPIRES_UNIX,
    OTHER_ACCOUNT, T0,
};
use super::*;

// ---------------------------------------------------------------- builders

/// Writes an entry at an index and time.
type Builder<'a> = dyn Fn(u64, &str) -> String + 'a;

const C: &str = "44444444-4444-4444-8444-444444444444";
const D: &str = "55555555-5555-4555-8555-555555555555";
const E: &str = "66666666-6666-4666-8666-666666666666";
/// The accounts of the test logs: A (`ACCOUNT`, stamps at 2), then B to E (stamps at 1).
const PAYERS: [&str; 5] = [ACCOUNT, OTHER_ACCOUNT, C, D, E];
const A: usize = 0;
const B: usize = 1;
const C_: usize = 2;
const D_: usize = 3;
const E_: usize = 4;
/// Stamps each account buys in the prefix.
const STAMPS_EACH: u32 = 300;
/// Stamps of A sold at 5 in a second purchase, from this number on.
const A_DEAR: u32 = 900;

fn post_id(n: u32) -> String {
    uuid::Uuid::from_u128(0x9999_0000_0000_4000_8000_0000_0000_0000 | u128::from(n)).to_string()
}

/// `2026-11-27T00:00:00Z` plus `secs` (below a day).
fn at(secs: u32) -> String {
    format!(
        "2026-11-27T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The policy parameters, ECONOMY's defaults unless changed.
#[derive(Clone)]
struct P {
    currency: &'static str,
    post_cost: u64,
    vote_cost: u64,
    window: u64,
    factor: u64,
    pricing: &'static str,
    refund_voters: u64,
}

impl Default for P {
    fn default() -> Self {
        P {
            currency: "cents",
            post_cost: 1,
            vote_cost: 1,
            window: 600,
            factor: 2,
            pricing: "quadratic",
            refund_voters: 3,
        }
    }
}

fn policy_entry(index: u64, time: &str, p: &P) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"{time}","kind":"policy","currency":"{}","stamp_price":1,"post_cost":{},"vote_cost":{},"repeat_window_secs":{},"repeat_factor":{},"vote_pricing":"{}","refund_voters":{}}}"#,
        p.currency, p.post_cost, p.vote_cost, p.window, p.factor, p.pricing, p.refund_voters
    )
}

fn spend_entry(
    index: u64,
    time: &str,
    action: &str,
    post: u32,
    dir: Option<&str>,
    s: &[u32],
) -> String {
    let dir = dir.map_or(String::new(), |d| format!(r#","direction":"{d}""#));
    format!(
        r#"{{"v":1,"index":{index},"time":"{time}","kind":"spend","stamp_ids":[{}],"action":"{action}","target":"{}"{dir}}}"#,
        super::tests::ids(s),
        post_id(post)
    )
}

fn refund_entry(index: u64, time: &str, account: &str, post: u32, amount: u64) -> String {
    format!(
        r#"{{"v":1,"index":{index},"time":"{time}","kind":"refund","account":"{account}","post_id":"{}","amount":{amount},"currency":"cents"}}"#,
        post_id(post)
    )
}

/// A log under construction: a key, a credit and stamps for every payer, then whatever the
/// test adds at the time it last set.
struct Log {
    entries: Vec<String>,
    time: String,
    next: [u32; 5],
    next_dear: u32,
}

impl Log {
    /// The prefix without any policy (a log from before the economy, so far).
    fn bare() -> Log {
        let mut entries = vec![key_entry(0, T0, "active")];
        for (i, payer) in PAYERS.iter().enumerate() {
            entries.push(credit(entries.len() as u64, payer, 10_000, i as u8 + 1));
        }
        for (i, payer) in PAYERS.iter().enumerate() {
            let first = (i as u32 + 1) * 1000;
            let stamps: Vec<u32> = (first..first + STAMPS_EACH).collect();
            let price = if i == A { 2 } else { 1 };
            let n = u64::from(STAMPS_EACH);
            entries.push(purchase_full(
                entries.len() as u64,
                payer,
                i as u32 + 1,
                n,
                price,
                n * price,
                &kid(),
                &stamps,
            ));
        }
        let dear: Vec<u32> = (A_DEAR..A_DEAR + 10).collect();
        entries.push(purchase_full(
            entries.len() as u64,
            ACCOUNT,
            99,
            10,
            5,
            50,
            &kid(),
            &dear,
        ));
        Log {
            entries,
            time: at(0),
            next: [1000, 2000, 3000, 4000, 5000],
            next_dear: A_DEAR,
        }
    }

    /// The prefix, then a policy `p`.
    fn with(p: &P) -> Log {
        let mut log = Log::bare();
        log.policy(p);
        log
    }

    fn index(&self) -> u64 {
        self.entries.len() as u64
    }

    fn at(&mut self, secs: u32) -> &mut Self {
        self.time = at(secs);
        self
    }

    fn raw(&mut self, entry: impl FnOnce(u64, &str) -> String) -> u64 {
        let index = self.index();
        let entry = entry(index, &self.time);
        self.entries.push(entry);
        index
    }

    fn policy(&mut self, p: &P) -> u64 {
        let p = p.clone();
        self.raw(|i, t| policy_entry(i, t, &p))
    }

    fn take(&mut self, payer: usize, n: u64) -> Vec<u32> {
        let first = self.next[payer];
        self.next[payer] += n as u32;
        (first..first + n as u32).collect()
    }

    fn take_dear(&mut self) -> u32 {
        self.next_dear += 1;
        self.next_dear - 1
    }

    fn spend(&mut self, action: &str, post: u32, dir: Option<&str>, stamps: &[u32]) -> u64 {
        let action = action.to_string();
        self.raw(|i, t| spend_entry(i, t, &action, post, dir, stamps))
    }

    /// A post by `payer` with `n` stamps.
    fn post(&mut self, payer: usize, post: u32, n: u64) -> u64 {
        let stamps = self.take(payer, n);
        self.spend("post", post, None, &stamps)
    }

    /// A vote by `payer` with `n` stamps.
    fn vote(&mut self, payer: usize, post: u32, dir: &str, n: u64) -> u64 {
        let stamps = self.take(payer, n);
        self.spend("vote", post, Some(dir), &stamps)
    }

    fn refund(&mut self, payer: usize, post: u32, amount: u64) -> u64 {
        self.raw(|i, t| refund_entry(i, t, PAYERS[payer], post, amount))
    }

    fn report(&self) -> AuditReport {
        run(&self.entries, EXPIRES_UNIX - 1)
    }

    #[track_caller]
    fn assert_ok(&self) -> AuditReport {
        let report = self.report();
        assert!(report.ok, "{report:?}");
        report
    }

    #[track_caller]
    fn assert_only(&self, code: ViolationCode, index: u64) {
        assert_only(&self.entries, code, index);
    }

    /// The codes and indexes of every violation.
    fn found(&self) -> Vec<(ViolationCode, u64)> {
        let report = self.report();
        assert_eq!(report.violations_total, report.violations.len() as u64);
        report
            .violations
            .into_iter()
            .map(|v| (v.code, v.index))
            .collect()
    }

    fn checker(&self) -> LedgerChecker {
        let mut checker = LedgerChecker::new();
        for entry in &self.entries {
            checker.push(entry.as_bytes());
        }
        checker
    }
}

/// A's post 1 at time 0, then up-votes by B, C and D: the third completes the count.
/// Returns the log and D's vote's index.
fn three_voters(p: &P) -> (Log, u64) {
    let mut log = Log::with(p);
    log.at(0).post(A, 1, 1);
    log.vote(B, 1, "up", 1);
    log.vote(C_, 1, "up", 1);
    let completing = log.vote(D_, 1, "up", 1);
    (log, completing)
}

// ---------------------------------------------------------------- honest logs

#[test]
fn honest_economy_log_passes_with_refunds_total() {
    let (mut log, _) = three_voters(&P::default());
    log.refund(A, 1, 2);
    log.at(10).post(A, 2, 2); // the second post within the window costs 2
    log.vote(B, 1, "up", 3); // B's second vote on post 1
    log.vote(B, 2, "down", 1);
    let report = log.assert_ok();
    assert_eq!(report.refunds_total, 2);
    assert_eq!(report.violations_total, 0);
    let text = serde_json::to_string(&report).expect("json");
    assert!(text.contains(r#""refunds_total":2"#), "{text}");
}

#[test]
fn a_log_from_before_the_economy_is_priced_by_nothing() {
    let mut log = Log::bare();
    log.at(0).post(A, 1, 5);
    log.post(A, 2, 1);
    let mixed = [log.take(B, 1)[0], log.take(C_, 1)[0]];
    log.spend("vote", 1, None, &mixed); // mixed payers, no direction
    log.vote(B, 1, "up", 7);
    log.vote(C_, 1, "up", 1);
    log.vote(D_, 1, "up", 1); // a third voter: no refund without a policy
    let report = log.assert_ok();
    assert_eq!(report.refunds_total, 0);
}

#[test]
fn before_the_first_policy_means_below_its_index() {
    // A malformed policy is no policy: votes after it may still lack a direction.
    let mut log = Log::bare();
    let broken =
        log.raw(|i, t| policy_entry(i, t, &P::default()).replace("\"quadratic\"", "\"cubic\""));
    log.at(0).post(A, 1, 5);
    log.spend("vote", 1, None, &[2000]);
    assert_eq!(log.found(), vec![(ViolationCode::MalformedEntry, broken)]);
    // From the first well-formed policy on, a vote needs its direction.
    log.policy(&P::default());
    let no_direction = log.spend("vote", 1, None, &[3000]);
    assert_eq!(
        log.found(),
        vec![
            (ViolationCode::MalformedEntry, broken),
            (ViolationCode::MalformedEntry, no_direction)
        ]
    );
}

// ---------------------------------------------------------------- parsing

#[test]
fn direction_is_required_on_votes_after_a_policy_and_only_there() {
    let redeem = |i: u64, t: &str, dir: &str| {
        format!(
            r#"{{"v":1,"index":{i},"time":"{t}","kind":"spend","stamp_ids":["{}"],"action":"redeem","target":"{}"{dir}}}"#,
            stamp(1000),
            hex::encode([1u8; 32])
        )
    };
    let cases: Vec<Box<Builder<'_>>> = vec![
        Box::new(|i, t| spend_entry(i, t, "vote", 1, None, &[2000])),
        Box::new(|i, t| spend_entry(i, t, "vote", 1, Some("sideways"), &[2000])),
        Box::new(|i, t| spend_entry(i, t, "vote", 1, Some("UP"), &[2000])),
        Box::new(|i, t| spend_entry(i, t, "post", 1, Some("up"), &[1000])),
        Box::new(move |i, t| redeem(i, t, r#","direction":"up""#)),
        Box::new(|i, t| {
            spend_entry(i, t, "vote", 1, Some("up"), &[2000])
                .replace(r#""direction":"up""#, r#""direction":null"#)
        }),
        Box::new(|i, t| {
            spend_entry(i, t, "vote", 1, Some("up"), &[2000]).replace(
                r#""direction":"up""#,
                r#""direction":"up","direction":"up""#,
            )
        }),
    ];
    for case in cases {
        let mut log = Log::with(&P::default());
        let bad = log.raw(case);
        log.assert_only(ViolationCode::MalformedEntry, bad);
        // Nothing of a malformed spend is taken: its stamps are still unspent.
        assert_eq!(log.report().stamps_spent, 0);
    }
    // Before any policy, a vote may carry its direction or not; a post never may.
    let mut log = Log::bare();
    log.spend("vote", 1, Some("down"), &[2000]);
    log.spend("vote", 1, None, &[2001]);
    log.assert_ok();
    let bad = log.spend("post", 1, Some("up"), &[1000]);
    log.assert_only(ViolationCode::MalformedEntry, bad);
}

#[test]
fn malformed_policies_and_refunds() {
    let policy = |p: &P| {
        let p = p.clone();
        move |i: u64, t: &str| policy_entry(i, t, &p)
    };
    let bad_policies: Vec<Box<Builder<'_>>> = vec![
        Box::new(|i, t| policy(&P::default())(i, t).replace(r#","refund_voters":3"#, "")),
        Box::new(|i, t| {
            policy(&P::default())(i, t).replace(r#""stamp_price":1"#, r#""stamp_price":-1"#)
        }),
        Box::new(|i, t| {
            policy(&P::default())(i, t).replace(r#""post_cost":1"#, r#""post_cost":1.5"#)
        }),
        Box::new(|i, t| policy(&P::default())(i, t).replace("}", r#","extra":1}"#)),
        Box::new(|i, t| {
            policy(&P {
                pricing: "cubic",
                ..P::default()
            })(i, t)
        }),
        Box::new(|i, t| {
            policy(&P {
                currency: "",
                ..P::default()
            })(i, t)
        }),
        Box::new(|i, t| {
            policy(&P {
                post_cost: 0,
                ..P::default()
            })(i, t)
        }),
        Box::new(|i, t| {
            policy(&P {
                vote_cost: 0,
                ..P::default()
            })(i, t)
        }),
        Box::new(|i, t| {
            policy(&P {
                factor: 0,
                ..P::default()
            })(i, t)
        }),
    ];
    for case in bad_policies {
        let mut log = Log::bare();
        let bad = log.raw(case);
        log.assert_only(ViolationCode::MalformedEntry, bad);
    }
    // Zero window and zero refund voters are fine: no flood pricing, no refunds.
    let mut log = Log::bare();
    log.policy(&P {
        window: 0,
        refund_voters: 0,
        ..P::default()
    });
    log.at(0).post(A, 1, 1);
    log.post(A, 2, 1); // the same second: not after t − 0
    log.vote(B, 1, "up", 1);
    log.vote(C_, 1, "up", 1);
    log.vote(D_, 1, "up", 1);
    log.assert_ok();

    let bad_refunds: Vec<Box<Builder<'_>>> = vec![
        Box::new(|i, t| refund_entry(i, t, ACCOUNT, 1, 2).replace(&post_id(1), "post-1")),
        Box::new(|i, t| refund_entry(i, t, "someone", 1, 2)),
        Box::new(|i, t| refund_entry(i, t, ACCOUNT, 1, 2).replace(r#","amount":2"#, "")),
        Box::new(|i, t| {
            refund_entry(i, t, ACCOUNT, 1, 2).replace(r#""amount":2"#, r#""amount":-2"#)
        }),
        Box::new(|i, t| refund_entry(i, t, ACCOUNT, 1, 2).replace(r#""cents""#, r#""""#)),
        Box::new(|i, t| refund_entry(i, t, ACCOUNT, 1, 2).replace("}", r#","voters":3}"#)),
    ];
    for case in bad_refunds {
        let mut log = Log::with(&P::default());
        let bad = log.raw(case);
        log.assert_only(ViolationCode::MalformedEntry, bad);
        assert_eq!(log.report().refunds_total, 0);
    }
}

// ---------------------------------------------------------------- flood pricing

#[test]
fn posts_double_within_the_window_and_the_window_start_is_strict() {
    let mut log = Log::with(&P::default());
    log.at(0).post(A, 1, 1);
    log.at(1).post(A, 2, 2);
    log.at(599).post(A, 3, 4); // 0 and 1 are after 599 − 600
    log.at(600).post(A, 4, 4); // 0 is not after 600 − 600: only 1 and 599 count
    log.at(601).post(A, 5, 4); // 1 is exactly on the edge: 599 and 600 count
    log.at(1200).post(A, 6, 2); // 600 is on the edge: only 601 counts
    log.assert_ok();
    // The same posts, the one at 600 charged as if 0 were still in the window.
    let mut log = Log::with(&P::default());
    log.at(0).post(A, 1, 1);
    log.at(1).post(A, 2, 2);
    log.at(599).post(A, 3, 4);
    let wrong = log.at(600).post(A, 4, 8);
    log.assert_only(ViolationCode::WrongPrice, wrong);

    // Other payers' posts do not count, and a quiet window resets the price.
    let mut log = Log::with(&P::default());
    log.at(0).post(A, 1, 1);
    log.at(1).post(B, 2, 1);
    log.at(2).post(A, 3, 2);
    log.at(602).post(A, 4, 1);
    log.assert_ok();
}

#[test]
fn post_times_are_whole_seconds() {
    let mut log = Log::with(&P::default());
    log.at(0);
    log.time = "2026-11-27T00:00:00.999999999Z".to_string();
    log.post(A, 1, 1);
    log.time = "2026-11-27T00:10:00.000000001Z".to_string(); // second 600: 0 is not after 0
    log.post(A, 2, 1);
    log.time = "2026-11-27T00:10:00.5Z".to_string(); // still second 600: one earlier post counts
    log.post(A, 3, 2);
    log.assert_ok();
}

#[test]
fn repeat_factor_1_turns_flood_pricing_off() {
    let p = P {
        post_cost: 2,
        factor: 1,
        ..P::default()
    };
    let mut log = Log::with(&p);
    for n in 0..20 {
        log.at(n).post(A, n, 2);
    }
    log.assert_ok();
    let over = log.post(A, 99, 4);
    log.assert_only(ViolationCode::WrongPrice, over);
}

#[test]
fn over_and_under_charged_posts_are_wrong_price() {
    for n in [0, 1, 3, 5] {
        let mut log = Log::with(&P::default());
        log.at(0).post(A, 1, 1);
        let wrong = log.at(5).post(A, 2, n);
        log.assert_only(ViolationCode::WrongPrice, wrong);
    }
}

#[test]
fn a_price_that_overflows_cannot_be_paid() {
    let p = P {
        post_cost: 3,
        factor: u64::MAX / 2,
        ..P::default()
    };
    let mut log = Log::with(&p);
    log.at(0).post(A, 1, 3);
    // 3 × (2^63 − 1) overflows: whatever the second post cancels is wrong.
    let wrong = log.at(1).post(A, 2, 1);
    log.assert_only(ViolationCode::WrongPrice, wrong);
    let detail = &log.report().violations[0].detail;
    assert!(detail.contains("cannot be paid"), "{detail}");
    // Quadratic votes overflow too: vote_cost × (2n − 1).
    let p = P {
        vote_cost: u64::MAX / 2,
        ..P::default()
    };
    let mut log = Log::with(&p);
    let under = log.vote(B, 1, "up", 1);
    let wrong = log.vote(B, 1, "up", 1);
    assert_eq!(
        log.found(),
        vec![
            (ViolationCode::WrongPrice, under),
            (ViolationCode::WrongPrice, wrong)
        ]
    );
    let detail = &log.report().violations[1].detail;
    assert!(detail.contains("cannot be paid"), "{detail}");
}

#[test]
fn a_post_without_stamps_is_wrong_price() {
    let mut log = Log::with(&P::default());
    let wrong = log.at(0).spend("post", 1, None, &[]);
    log.assert_only(ViolationCode::WrongPrice, wrong);
    let wrong = log.spend("vote", 1, Some("up"), &[]);
    assert_eq!(log.found()[1], (ViolationCode::WrongPrice, wrong));
}

#[test]
fn posts_before_the_first_policy_may_or_may_not_count() {
    // A posted just before the economy started: the checker keeps no time for those posts,
    // so it accepts the price with or without them, and nothing else.
    for (n, ok) in [(1, true), (2, true), (4, false)] {
        let mut log = Log::bare();
        log.at(0).post(A, 1, 1);
        log.policy(&P::default());
        let post = log.at(1).post(A, 2, n);
        if ok {
            log.assert_ok();
        } else {
            log.assert_only(ViolationCode::WrongPrice, post);
        }
    }
}

#[test]
fn a_longer_window_reaches_back_past_forgotten_posts_leniently() {
    // Posts at 0 and 20 under a 10 s window: 0 is forgotten at 20. A new policy lengthens the
    // window to 100 s: the post at 22 follows 1 or 2 posts in the window (price 2 or 4).
    for (n, ok) in [(2, true), (4, true), (1, false), (8, false)] {
        let mut log = Log::with(&P {
            window: 10,
            ..P::default()
        });
        log.at(0).post(A, 1, 1);
        log.at(20).post(A, 2, 1);
        log.policy(&P {
            window: 100,
            ..P::default()
        });
        let post = log.at(22).post(A, 3, n);
        if ok {
            log.assert_ok();
        } else {
            log.assert_only(ViolationCode::WrongPrice, post);
        }
    }
}

// ---------------------------------------------------------------- vote pricing

#[test]
fn quadratic_votes_cost_odd_numbers_up_and_down_alike() {
    let p = P {
        vote_cost: 2,
        ..P::default()
    };
    let mut log = Log::with(&p);
    log.at(0).post(A, 1, 1);
    log.vote(B, 1, "up", 2);
    log.vote(B, 1, "down", 6);
    log.vote(B, 1, "up", 10);
    log.vote(B, 2, "up", 2); // another post starts again
    log.vote(C_, 1, "down", 2); // another payer starts again
    log.vote(A, 1, "up", 2); // the post's own payer pays like anyone
    log.assert_ok();
    let over = log.vote(B, 1, "up", 16);
    log.assert_only(ViolationCode::WrongPrice, over);
    let mut log = Log::with(&p);
    log.vote(B, 1, "up", 2);
    let under = log.vote(B, 1, "up", 2);
    log.assert_only(ViolationCode::WrongPrice, under);
}

#[test]
fn flat_votes_cost_vote_cost() {
    let p = P {
        vote_cost: 3,
        pricing: "flat",
        ..P::default()
    };
    let mut log = Log::with(&p);
    for _ in 0..5 {
        log.vote(B, 1, "up", 3);
    }
    log.assert_ok();
    let wrong = log.vote(B, 1, "down", 9);
    log.assert_only(ViolationCode::WrongPrice, wrong);
}

#[test]
fn votes_before_the_first_policy_count_for_quadratic_prices() {
    let mut log = Log::bare();
    log.spend("vote", 1, None, &[2000]);
    log.spend("vote", 1, Some("up"), &[2001, 2002, 2003, 2004, 2005]);
    log.policy(&P::default());
    log.next[B] = 2100;
    log.vote(B, 1, "up", 5); // third vote: 2 × 3 − 1
    log.assert_ok();
}

// ---------------------------------------------------------------- mixed payers

#[test]
fn mixed_payers() {
    let mut log = Log::with(&P::default());
    let post = log.at(0).spend("post", 1, None, &[1000, 2000]);
    log.assert_only(ViolationCode::MixedPayers, post);
    let mut log = Log::with(&P::default());
    log.post(A, 1, 1);
    let vote = log.spend("vote", 1, Some("up"), &[2000, 3000, 3001]);
    log.assert_only(ViolationCode::MixedPayers, vote);
    // A stamp that changed hands keeps its payer: one payer however many hold its stamps, and
    // stamps of one payer from two purchases are not mixed.
    let mut log = Log::with(&P::default());
    let (dear, dear2) = (log.take_dear(), log.take_dear());
    log.at(0).spend("post", 1, None, &[dear]);
    log.at(1).spend("post", 2, None, &[dear2, 1000]);
    log.assert_ok();
}

// ---------------------------------------------------------------- refunds

#[test]
fn refund_at_exactly_refund_voters() {
    let (mut log, completing) = three_voters(&P::default());
    // Two voters were not enough: nothing was owed before D's vote.
    assert_eq!(
        log.found(),
        vec![(ViolationCode::MissingRefund, completing)]
    );
    log.refund(A, 1, 2);
    log.assert_ok();
    // Later up-votes, even by new payers, take no second refund.
    log.vote(E_, 1, "up", 1);
    log.assert_ok();
    let checker = log.checker();
    assert_eq!(checker.report(0).refunds_total, 2);
}

#[test]
fn self_votes_and_down_votes_do_not_count() {
    let mut log = Log::with(&P::default());
    log.at(0).post(A, 1, 1);
    log.vote(A, 1, "up", 1);
    log.vote(B, 1, "up", 1);
    log.vote(C_, 1, "down", 1);
    log.vote(B, 1, "up", 3);
    log.vote(D_, 1, "up", 1);
    log.vote(A, 1, "up", 3);
    log.vote(C_, 1, "down", 3);
    log.assert_ok();
    let completing = log.vote(E_, 1, "up", 1); // B, D, E
    log.assert_only(ViolationCode::MissingRefund, completing);
    log.refund(A, 1, 2);
    log.assert_ok();
    // A down-vote takes no refund back.
    log.vote(B, 1, "down", 5);
    log.assert_ok();
}

#[test]
fn votes_on_posts_made_before_the_economy_take_no_refund() {
    let mut log = Log::bare();
    log.at(0).post(A, 1, 1);
    log.policy(&P::default());
    log.vote(B, 1, "up", 1);
    log.vote(C_, 1, "up", 1);
    log.vote(D_, 1, "up", 1);
    log.assert_ok();
    let refund = log.refund(A, 1, 2);
    log.assert_only(ViolationCode::UnexpectedRefund, refund);
}

#[test]
fn skipped_refund_is_missing_refund_at_the_vote() {
    let (mut log, completing) = three_voters(&P::default());
    // The log ending right after the vote owes the refund too.
    log.assert_only(ViolationCode::MissingRefund, completing);
    let detail = &log.report().violations[0].detail;
    assert!(detail.contains("the log ends"), "{detail}");
    log.post(B, 2, 1);
    log.assert_only(ViolationCode::MissingRefund, completing);
    // The post still has no refund: the next up-vote of another payer owes it again.
    let again = log.vote(E_, 1, "up", 1);
    assert_eq!(
        log.found(),
        vec![
            (ViolationCode::MissingRefund, completing),
            (ViolationCode::MissingRefund, again)
        ]
    );
}

#[test]
fn refund_twice_is_unexpected() {
    let (mut log, _) = three_voters(&P::default());
    log.refund(A, 1, 2);
    let again = log.refund(A, 1, 2);
    log.assert_only(ViolationCode::UnexpectedRefund, again);
    assert!(log.report().violations[0]
        .detail
        .contains("refunded before"));
    // The money of both refunds is counted: it was credited.
    assert_eq!(log.report().refunds_total, 4);
}

#[test]
fn refund_without_a_completing_vote_is_unexpected() {
    let mut log = Log::with(&P::default());
    log.at(0).post(A, 1, 1);
    log.vote(B, 1, "up", 1);
    let early = log.refund(A, 1, 2);
    log.assert_only(ViolationCode::UnexpectedRefund, early);
    // The post counts as refunded: its completing vote owes nothing more.
    log.vote(C_, 1, "up", 1);
    log.vote(D_, 1, "up", 1);
    log.assert_only(ViolationCode::UnexpectedRefund, early);
}

#[test]
fn refund_not_right_after_its_vote() {
    let (mut log, completing) = three_voters(&P::default());
    log.vote(E_, 2, "up", 1);
    let late = log.refund(A, 1, 2);
    assert_eq!(
        log.found(),
        vec![
            (ViolationCode::MissingRefund, completing),
            (ViolationCode::UnexpectedRefund, late),
        ]
    );
    // A refund of another post right after the vote is no better.
    let (mut log, completing) = three_voters(&P::default());
    let other = log.refund(A, 2, 2);
    assert_eq!(
        log.found(),
        vec![
            (ViolationCode::MissingRefund, completing),
            (ViolationCode::UnexpectedRefund, other),
        ]
    );
    // Nor is a malformed entry, even one that was meant as the refund.
    let (mut log, completing) = three_voters(&P::default());
    let bad =
        log.raw(|i, t| refund_entry(i, t, ACCOUNT, 1, 2).replace("cents", "cents\",\"x\":\"1"));
    assert_eq!(
        log.found(),
        vec![
            (ViolationCode::MissingRefund, completing),
            (ViolationCode::MalformedEntry, bad),
        ]
    );
}

#[test]
fn wrong_refund_amount_account_or_currency() {
    for amount in [0, 1, 3, 4] {
        let (mut log, _) = three_voters(&P::default());
        let refund = log.refund(A, 1, amount);
        log.assert_only(ViolationCode::WrongRefundAmount, refund);
    }
    let (mut log, _) = three_voters(&P::default());
    let refund = log.raw(|i, t| refund_entry(i, t, ACCOUNT, 1, 2).replace("cents", "euros"));
    log.assert_only(ViolationCode::WrongRefundAmount, refund);
    let (mut log, _) = three_voters(&P::default());
    let refund = log.refund(B, 1, 2);
    log.assert_only(ViolationCode::WrongRefundAccount, refund);
}

#[test]
fn base_postage_is_the_unit_prices_of_the_first_post_cost_stamps() {
    // post_cost 2, a second post within the window: 4 stamps, the first two at 5 and 2.
    let p = P {
        post_cost: 2,
        ..P::default()
    };
    let mut log = Log::with(&p);
    log.at(0).post(A, 1, 2);
    let dear = log.take_dear();
    let cheap = log.take(A, 3);
    log.at(1)
        .spend("post", 2, None, &[dear, cheap[0], cheap[1], cheap[2]]);
    log.vote(B, 2, "up", 1);
    log.vote(C_, 2, "up", 1);
    log.vote(D_, 2, "up", 1);
    log.refund(A, 2, 7); // not 11: flood surcharges are never refunded
    log.assert_ok();
}

#[test]
fn refund_voters_0_turns_refunds_off() {
    let (mut log, _) = three_voters(&P {
        refund_voters: 0,
        ..P::default()
    });
    log.assert_ok();
    let refund = log.refund(A, 1, 2);
    log.assert_only(ViolationCode::UnexpectedRefund, refund);
}

#[test]
fn a_second_policy_changes_prices_mid_log() {
    let mut log = Log::with(&P::default());
    log.at(0).post(A, 1, 1);
    log.vote(B, 1, "up", 1);
    log.vote(B, 1, "up", 3);
    log.vote(C_, 1, "up", 1);
    // Dearer posts, flat votes, two voters are enough.
    log.policy(&P {
        post_cost: 3,
        pricing: "flat",
        refund_voters: 2,
        ..P::default()
    });
    // A's second post within the window: 3 × 2. Votes now cost 1 each, whatever came before.
    log.at(5).post(A, 2, 6);
    log.vote(B, 2, "up", 1);
    log.vote(B, 2, "up", 1);
    log.assert_ok();
    // Post 1 already has two voters: the next up-vote of another payer completes it (with the
    // base postage of the policy it was made under: 1 stamp at 2), even a repeated voter.
    let completing = log.vote(B, 1, "up", 1);
    log.assert_only(ViolationCode::MissingRefund, completing);
    log.refund(A, 1, 2);
    log.assert_ok();
    // Post 2's base postage is its first 3 stamps (at 2 each).
    let completing = log.vote(C_, 2, "up", 1);
    log.assert_only(ViolationCode::MissingRefund, completing);
    log.refund(A, 2, 6);
    log.assert_ok();
    // Back to the first policy: the old prices hold again, from the entries before.
    log.policy(&P::default());
    log.vote(B, 2, "up", 5); // B's third vote on post 2, quadratic
    log.at(6).post(A, 3, 4); // A's third post within 600 s
    log.assert_ok();
}

// ---------------------------------------------------------------- balances

#[test]
fn refunds_are_money_an_account_may_spend() {
    // A bought 300 stamps at 2 and 10 at 5: 650 of 10,000. A purchase of 9,350 spends the
    // rest; the refund of 2 allows 2 more, and not 3.
    let (mut log, _) = three_voters(&P::default());
    log.refund(A, 1, 2);
    log.raw(|i, t| purchase_full(i, ACCOUNT, 200, 1, 9350, 9350, &kid(), &[8000]).replace(T0, t));
    log.assert_ok();
    log.raw(|i, t| purchase_full(i, ACCOUNT, 201, 2, 1, 2, &kid(), &[8001, 8002]).replace(T0, t));
    log.assert_ok();
    let over =
        log.raw(|i, t| purchase_full(i, ACCOUNT, 202, 1, 1, 1, &kid(), &[8003]).replace(T0, t));
    log.assert_only(ViolationCode::NegativeBalance, over);
    let detail = &log.report().violations[0].detail;
    assert!(detail.contains("and refunds of 2"), "{detail}");
}

// ---------------------------------------------------------------- memory and hostile input

#[test]
fn state_forgets_what_the_invariants_no_longer_need() {
    // A payer posting once a minute for a day keeps only the posts of the last 10 minutes.
    let mut log = Log::with(&P {
        factor: 1,
        refund_voters: 1,
        ..P::default()
    });
    log.next[A] = 10_000;
    for n in 0..1440u32 {
        log.at(n * 60);
        log.raw(|i, t| {
            purchase_full(i, ACCOUNT, 1000 + n, 1, 1, 1, &kid(), &[10_000 + n]).replace(T0, t)
        });
        log.post(A, 1000 + n, 1);
    }
    log.vote(B, 1000, "up", 1);
    log.refund(A, 1000, 1);
    log.assert_ok();
    let checker = log.checker();
    assert!(checker.economy.remembered_post_times() <= 10);
    assert_eq!(checker.economy.remembered_up_voters(), 0);
}

#[test]
fn economy_garbage_never_panics() {
    let (mut log, _) = three_voters(&P::default());
    log.refund(A, 1, 2);
    log.policy(&P {
        factor: u64::MAX,
        post_cost: u64::MAX,
        vote_cost: u64::MAX,
        window: u64::MAX,
        refund_voters: u64::MAX,
        ..P::default()
    });
    log.at(86_399).post(A, 2, 1);
    log.vote(B, 2, "up", 1);
    let honest = log.entries.clone();
    let mut checker = LedgerChecker::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..5_000 {
        let i = (next() % honest.len() as u64) as usize;
        let mut bytes = honest[i].clone().into_bytes();
        let at = (next() % bytes.len() as u64) as usize;
        match next() % 3 {
            0 => bytes[at] = next() as u8,
            1 => bytes.truncate(at),
            _ => bytes.insert(at, b"0123456789\"{}[],:-."[at % 19]),
        }
        checker.push(&bytes);
        checker.push(honest[i].as_bytes());
    }
    let report = checker.report(0);
    assert!(!report.ok);
}
