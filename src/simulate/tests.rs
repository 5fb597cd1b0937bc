//! The simulation's own tests: a seed gives one table, the figures come from the store (its
//! audit holds and its entries are the actions'), and the targets hold on a short run.

use super::plan::{PostKind, BURST_POSTS};
use super::play::{Attempt, Run};
use super::report::{flood_curve, markdown, targets, votes_cost};
use super::{simulate, Config, Simulation};

fn short(seed: u64, days: i64, members: usize) -> Simulation {
    simulate(&Config {
        seed,
        days,
        members,
    })
    .unwrap_or_else(|e| panic!("the simulation stopped: {e}"))
}

#[test]
fn the_same_seed_prints_the_same_table() {
    let first = markdown(&short(11, 2, 8));
    assert_eq!(first, markdown(&short(11, 2, 8)));
    assert_ne!(first, markdown(&short(12, 2, 8)));
}

/// Every entry of the ledger is one of the run's actions, read back from the store's board.
fn entries_are_the_actions(run: &Run) {
    let audit = &run.audit;
    assert!(audit.ok, "the store's ledger audit failed: {audit:?}");
    assert_eq!(audit.violations_total, 0);
    assert!(audit.root_matches, "the checker's root is not the store's");
    let posts = run.board.len() as u64;
    let votes: u64 = run.board.iter().map(|p| p.votes_up + p.votes_down).sum();
    let refunds = run.board.iter().filter(|p| p.refunded).count() as u64;
    // A key and a policy entry, then per post or vote one purchase and one spend (a price of
    // at most 100 stamps is one purchase), the top-ups, and a refund entry per refunded post.
    let expected = 2 + 2 * (posts + votes) + audit.credits + refunds;
    assert_eq!(audit.entries, expected, "{audit:?}");
    assert_eq!(audit.entries, audit.expected_entries);
    // Every stamp sold was spent: actors buy exactly the price.
    assert_eq!(audit.stamps_issued, audit.stamps_spent);
    assert_eq!(audit.refunds_total, refunds * run.policy.stamp_price);
    let members_stamps: u64 = run.members.iter().map(|m| m.stamps).sum();
    assert!(members_stamps < audit.stamps_spent);
}

#[test]
fn the_runs_go_through_the_store_and_its_audit_holds() {
    let sim = short(5, 3, 12);
    entries_are_the_actions(&sim.flat);
    entries_are_the_actions(&sim.default);
    // Same behaviour: the honest members made the same posts and votes in both runs.
    let acts =
        |run: &Run| -> Vec<(u64, u64)> { run.members.iter().map(|m| (m.posts, m.votes)).collect() };
    assert_eq!(acts(&sim.flat), acts(&sim.default));
    // The default policy refunds good posts; the flat one has refunds off.
    assert!(sim.default.board.iter().any(|p| p.refunded));
    assert!(sim.flat.board.iter().all(|p| !p.refunded));
}

#[test]
fn a_short_run_meets_the_three_targets() {
    let sim = short(2, 3, 12);
    let t = targets(&sim);
    assert!(t.honest_pays_at_most_flat, "{t:?}");
    assert!(t.thousand_votes_cost_a_million, "{t:?}");
    assert!(t.twenty_posts_cost_two_to_the_twenty, "{t:?}");

    // What the rules charged, read back: a flood burst doubles until a post is quoted above
    // the 100 stamps a request may carry; the flat policy charges 1 a post.
    let doubling: Vec<Result<u64, u64>> = (1..=7).map(|k| Ok((1 << k) - 1)).collect();
    assert_eq!(flood_curve(&sim.default)[..7], doubling[..]);
    assert_eq!(flood_curve(&sim.default)[7], Err(128));
    let linear: Vec<Result<u64, u64>> = (1..=BURST_POSTS as u64).map(Ok).collect();
    assert_eq!(flood_curve(&sim.flat), linear);
    assert!(sim.default.bursts.iter().all(|burst| burst
        .iter()
        .filter(|a| matches!(a, Attempt::Paid(_)))
        .count()
        == 7));

    // n votes of one payer on one post cost n² until the 51st, quoted 101, cannot be paid.
    assert_eq!(votes_cost(&sim.default, 0, 10), Ok(100));
    assert_eq!(votes_cost(&sim.default, 1, 50), Ok(2_500));
    assert_eq!(votes_cost(&sim.default, 1, 100), Err(101));
    assert_eq!(votes_cost(&sim.default, 2, 1_000), Err(101));
    assert_eq!(votes_cost(&sim.flat, 2, 1_000), Ok(1_000));

    // On the board the bought post shows its votes against one voter.
    let bought = |run: &Run| {
        run.board
            .iter()
            .find(|p| p.kind == PostKind::Promoted { campaign: 2 })
            .map(|p| (p.votes_up, p.voters))
    };
    assert_eq!(bought(&sim.flat), Some((1_000, 1)));
    assert_eq!(bought(&sim.default), Some((50, 1)));
}
