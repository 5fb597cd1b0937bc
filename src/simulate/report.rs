//! The figures of a simulation, its markdown table, and the economy's three targets checked
//! against them.
//!
//! Pure: everything here is computed from the two runs, so the same runs give the same text.

use std::fmt::Write as _;

use super::plan::{PostKind, BURST_POSTS, CAMPAIGNS};
use super::play::{Attempt, Run};
use super::Simulation;

/// The targets: what the economy is for, as figures a run must show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Targets {
    /// The median and the mean honest member pay at most what the flat policy charges them.
    pub honest_pays_at_most_flat: bool,
    /// Honest members who paid more under the default policy than under the flat one.
    pub honest_paying_more: usize,
    /// 1,000 votes of one payer on one post cost at least 1,000,000 stamps, or cannot be bought.
    pub thousand_votes_cost_a_million: bool,
    /// 20 posts of one payer in ten minutes cost at least 2^20 − 1 stamps, or cannot be made.
    pub twenty_posts_cost_two_to_the_twenty: bool,
}

/// What the least votes [`Targets::thousand_votes_cost_a_million`] asks for cost.
pub const THOUSAND_VOTES_MIN: u64 = 1_000_000;
/// What [`Targets::twenty_posts_cost_two_to_the_twenty`] asks 20 posts to cost at least.
pub const TWENTY_POSTS_MIN: u64 = (1 << 20) - 1;

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

fn mean(values: &[u64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<u64>() as f64 / values.len() as f64
}

/// Stamps paid for the first k posts of the run's first flood burst, k = 1..=20: `Err(quote)`
/// from the first post that could not be paid on.
pub fn flood_curve(run: &Run) -> Vec<Result<u64, u64>> {
    let mut total = 0u64;
    let mut stopped = None;
    let first = run.bursts.first().map_or(&[][..], |b| &b[..]);
    (0..BURST_POSTS)
        .map(|k| {
            if let Some(quoted) = stopped {
                return Err(quoted);
            }
            match first.get(k) {
                Some(Attempt::Paid(stamps)) => {
                    total += stamps;
                    Ok(total)
                }
                Some(Attempt::Unpayable { quoted }) => {
                    stopped = Some(*quoted);
                    Err(*quoted)
                }
                None => Err(0),
            }
        })
        .collect()
}

/// Stamps paid in all for n votes of campaign `c`, or `Err(quote)` when the campaign stopped
/// before n.
pub fn votes_cost(run: &Run, c: usize, n: u64) -> Result<u64, u64> {
    let campaign = &run.campaigns[c];
    let index = usize::try_from(n).unwrap_or(usize::MAX);
    match index.checked_sub(1).and_then(|i| campaign.paid.get(i)) {
        Some(stamps) => Ok(*stamps),
        None => Err(campaign.stopped_by.unwrap_or(0)),
    }
}

/// The targets, from the two runs.
pub fn targets(sim: &Simulation) -> Targets {
    let flat: Vec<u64> = sim.flat.members.iter().map(|m| m.money).collect();
    let default: Vec<u64> = sim.default.members.iter().map(|m| m.money).collect();
    let honest_paying_more = flat.iter().zip(&default).filter(|(f, d)| d > f).count();
    let thousand = CAMPAIGNS.iter().position(|n| *n == 1_000).is_some_and(|c| {
        votes_cost(&sim.default, c, 1_000).map_or(true, |stamps| stamps >= THOUSAND_VOTES_MIN)
    });
    let twenty = flood_curve(&sim.default)
        .get(BURST_POSTS - 1)
        .is_some_and(|cost| cost.map_or(true, |stamps| stamps >= TWENTY_POSTS_MIN));
    Targets {
        honest_pays_at_most_flat: median(&default) <= median(&flat)
            && mean(&default) <= mean(&flat),
        honest_paying_more,
        thousand_votes_cost_a_million: thousand,
        twenty_posts_cost_two_to_the_twenty: twenty,
    }
}

/// A cost cell: stamps paid, or why nothing more could be bought (`bought` actions were, for
/// `paid` stamps in all, before a quote above the `limit` a request may carry).
fn cost_cell(cost: Result<u64, u64>, bought: usize, paid: u64, limit: u64) -> String {
    match cost {
        Ok(stamps) => thousands(stamps),
        Err(quoted) => format!(
            "cannot be paid: after {bought} for {} stamps the next is quoted {}, over the {limit} \
             stamps a request may carry",
            thousands(paid),
            thousands(quoted)
        ),
    }
}

fn yes(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**not met**"
    }
}

/// The markdown report of a simulation: the tables of the figures, the ledger audit and the
/// targets.
pub fn markdown(sim: &Simulation) -> String {
    let limit = crate::config::Limits::default().stamps_per_request_max as u64;
    let runs = [&sim.flat, &sim.default];
    let mut out = String::new();
    let c = &sim.config;
    let _ = writeln!(
        out,
        "Seed {}, {} days, {} honest members; flat policy = flood factor 1, flat votes, refunds off; \
         default policy = {} s window, factor {}, {} votes, refund at {} up-voters. \
         A stamp costs {} (in {}).\n",
        c.seed,
        c.days,
        c.members,
        sim.default.policy.repeat_window_secs,
        sim.default.policy.repeat_factor,
        sim.default.policy.vote_pricing.as_str(),
        sim.default.policy.refund_voters,
        sim.default.policy.stamp_price,
        sim.default.policy.currency,
    );

    // Honest members.
    let _ = writeln!(
        out,
        "**Honest members**, per member over the {} days\n\n| | flat policy | default policy |\n|---|---|---|",
        c.days
    );
    let cells = |f: &dyn Fn(&Run) -> String| runs.map(f).join(" | ");
    let _ = writeln!(
        out,
        "| posts / votes (mean) | {} |",
        cells(&|r: &Run| {
            let posts: Vec<u64> = r.members.iter().map(|m| m.posts).collect();
            let votes: Vec<u64> = r.members.iter().map(|m| m.votes).collect();
            format!("{:.1} / {:.1}", mean(&posts), mean(&votes))
        })
    );
    let _ = writeln!(
        out,
        "| stamps spent (median / mean / most) | {} |",
        cells(&|r: &Run| {
            let stamps: Vec<u64> = r.members.iter().map(|m| m.stamps).collect();
            let most = stamps.iter().max().copied().unwrap_or(0);
            format!("{} / {:.1} / {}", median(&stamps), mean(&stamps), most)
        })
    );
    let _ = writeln!(
        out,
        "| money paid, {} (median / mean / most) | {} |",
        sim.default.policy.currency,
        cells(&|r: &Run| {
            let money: Vec<u64> = r.members.iter().map(|m| m.money).collect();
            let most = money.iter().max().copied().unwrap_or(0);
            format!("{} / {:.1} / {}", median(&money), mean(&money), most)
        })
    );
    let _ = writeln!(
        out,
        "| refunds received, {} (mean) | {} |",
        sim.default.policy.currency,
        cells(&|r: &Run| {
            let refunds: Vec<u64> = r.members.iter().map(|m| m.refunds).collect();
            format!("{:.1}", mean(&refunds))
        })
    );
    let _ = writeln!(
        out,
        "| honest posts refunded | {} |",
        cells(&|r: &Run| {
            let honest: Vec<_> = r
                .board
                .iter()
                .filter(|p| p.kind == PostKind::Honest)
                .collect();
            let refunded = honest.iter().filter(|p| p.refunded).count() as u64;
            format!(
                "{} of {}",
                thousands(refunded),
                thousands(honest.len() as u64)
            )
        })
    );
    let targets = targets(sim);
    let _ = writeln!(
        out,
        "| members who paid more than under the flat policy | – | {} of {} |\n",
        targets.honest_paying_more, c.members
    );

    // The flooder.
    let _ = writeln!(
        out,
        "**The flooder**: stamps for its first k posts within ten minutes (one burst; {} bursts in the run)\n\n| posts | flat policy | default policy |\n|---|---|---|",
        sim.default.bursts.len()
    );
    let curves = runs.map(flood_curve);
    for k in 0..BURST_POSTS {
        let row = curves
            .iter()
            .map(|curve| {
                let paid: Vec<u64> = curve.iter().filter_map(|c| c.ok()).collect();
                // The reason once, on the first post that could not be paid.
                if curve[k].is_err() && k > paid.len() {
                    return "cannot be paid".to_string();
                }
                cost_cell(
                    curve[k],
                    paid.len(),
                    paid.last().copied().unwrap_or(0),
                    limit,
                )
            })
            .collect::<Vec<_>>()
            .join(" | ");
        let _ = writeln!(out, "| {} | {row} |", k + 1);
    }
    let _ = writeln!(
        out,
        "| whole run: posts written / stamps | {} |\n",
        cells(&|r: &Run| {
            let paid: Vec<u64> = r
                .bursts
                .iter()
                .flatten()
                .filter_map(|a| match a {
                    Attempt::Paid(stamps) => Some(*stamps),
                    Attempt::Unpayable { .. } => None,
                })
                .collect();
            format!(
                "{} / {}",
                thousands(paid.len() as u64),
                thousands(paid.iter().sum())
            )
        })
    );

    // The vote buyer.
    let _ = writeln!(
        out,
        "**The vote buyer**: stamps one payer pays for n up-votes on one post\n\n| votes | flat policy | default policy |\n|---|---|---|"
    );
    for (i, target) in CAMPAIGNS.iter().enumerate() {
        let row = runs
            .iter()
            .map(|run| {
                let bought = &run.campaigns[i].paid;
                cost_cell(
                    votes_cost(run, i, *target),
                    bought.len(),
                    bought.last().copied().unwrap_or(0),
                    limit,
                )
            })
            .collect::<Vec<_>>()
            .join(" | ");
        let _ = writeln!(out, "| {} | {row} |", thousands(*target));
    }

    // The board.
    let _ = writeln!(
        out,
        "\n**On the board**: votes against voters (distinct payers of its votes)\n\n| post | flat policy | default policy |\n|---|---|---|"
    );
    for (i, target) in CAMPAIGNS.iter().enumerate() {
        let row = cells(&|r: &Run| {
            r.board
                .iter()
                .find(|p| p.kind == PostKind::Promoted { campaign: i })
                .map_or("–".into(), |p| {
                    format!(
                        "{} votes, {} voter{}",
                        thousands(p.votes_up + p.votes_down),
                        p.voters,
                        if p.voters == 1 { "" } else { "s" }
                    )
                })
        });
        let _ = writeln!(
            out,
            "| bought ({} votes paid for) | {row} |",
            thousands(*target)
        );
    }
    let _ = writeln!(
        out,
        "| honest, most voted | {} |",
        cells(&|r: &Run| {
            r.board
                .iter()
                .filter(|p| p.kind == PostKind::Honest)
                .max_by_key(|p| (p.votes_up + p.votes_down, p.voters))
                .map_or("–".into(), |p| {
                    format!("{} votes, {} voters", p.votes_up + p.votes_down, p.voters)
                })
        })
    );
    let _ = writeln!(
        out,
        "| honest, every post | {} |\n",
        cells(&|r: &Run| {
            let honest: Vec<_> = r
                .board
                .iter()
                .filter(|p| p.kind == PostKind::Honest)
                .collect();
            let alike = honest.iter().all(|p| p.voters == p.votes_up + p.votes_down);
            format!(
                "votes = voters on {} of {} posts{}",
                thousands(
                    honest
                        .iter()
                        .filter(|p| p.voters == p.votes_up + p.votes_down)
                        .count() as u64
                ),
                thousands(honest.len() as u64),
                if alike { "" } else { " (not all!)" }
            )
        })
    );

    // The audit.
    let _ = writeln!(
        out,
        "**The store's ledger audit** (`LedgerChecker` over the store's entries, at the end)\n\n| | flat policy | default policy |\n|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| entries (expected from the actions) | {} |",
        cells(&|r: &Run| format!(
            "{} ({})",
            thousands(r.audit.entries),
            thousands(r.audit.expected_entries)
        ))
    );
    let _ = writeln!(
        out,
        "| checker | {} |",
        cells(&|r: &Run| format!(
            "{}, {} violations, Merkle root {}",
            if r.audit.ok { "ok" } else { "FAILED" },
            r.audit.violations_total,
            if r.audit.root_matches {
                "matches the store's"
            } else {
                "DIFFERS from the store's"
            }
        ))
    );
    let _ = writeln!(
        out,
        "| stamps issued / spent | {} |",
        cells(&|r: &Run| format!(
            "{} / {}",
            thousands(r.audit.stamps_issued),
            thousands(r.audit.stamps_spent)
        ))
    );
    let _ = writeln!(
        out,
        "| credits / refunds, {} | {} |\n",
        sim.default.policy.currency,
        cells(&|r: &Run| format!(
            "{} / {}",
            thousands(r.audit.credits_total),
            thousands(r.audit.refunds_total)
        ))
    );

    // The targets.
    let flat_money: Vec<u64> = sim.flat.members.iter().map(|m| m.money).collect();
    let default_money: Vec<u64> = sim.default.members.iter().map(|m| m.money).collect();
    let _ = writeln!(
        out,
        "**Targets** (default policy)\n\n| target | figure | |\n|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| an honest member pays at most what the flat price charges | median {} vs {} flat, mean {:.1} vs {:.1}; {} of {} members paid more | {} |",
        median(&default_money),
        median(&flat_money),
        mean(&default_money),
        mean(&flat_money),
        targets.honest_paying_more,
        c.members,
        yes(targets.honest_pays_at_most_flat)
    );
    let thousand = CAMPAIGNS
        .iter()
        .position(|n| *n == 1_000)
        .map(|i| {
            let bought = &sim.default.campaigns[i].paid;
            cost_cell(
                votes_cost(&sim.default, i, 1_000),
                bought.len(),
                bought.last().copied().unwrap_or(0),
                limit,
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "| 1,000 votes funded by one buyer on one post cost ≥ 1,000,000 stamps | {thousand} | {} |",
        yes(targets.thousand_votes_cost_a_million)
    );
    let curve = flood_curve(&sim.default);
    let paid: Vec<u64> = curve.iter().filter_map(|c| c.ok()).collect();
    let _ = writeln!(
        out,
        "| 20 posts by one payer in ten minutes cost ≥ 2^20 − 1 = 1,048,575 stamps | {} | {} |",
        cost_cell(
            curve[BURST_POSTS - 1],
            paid.len(),
            paid.last().copied().unwrap_or(0),
            limit
        ),
        yes(targets.twenty_posts_cost_two_to_the_twenty)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_048_575), "1,048,575");
    }

    #[test]
    fn the_median_of_nothing_is_zero() {
        assert_eq!(median(&[]), 0);
        assert_eq!(median(&[3, 1, 2]), 2);
        assert_eq!(mean(&[]), 0.0);
    }
}
