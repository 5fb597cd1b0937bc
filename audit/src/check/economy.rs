//! The economy's checks, invariants 8 to 10 of `docs/ledger.md`: every post and vote spend
//! cancels stamps of one payer, exactly as many as the policy in force prices it; a `refund`
//! follows exactly the up-vote that completes its post's count of voters, with the post's base
//! postage; and refunds count as money an account may spend.
//!
//! It owns the state those need, recomputed from the entries alone and indexed so each entry
//! costs time in proportion to its stamps (amortized): the policy in force, per payer the times
//! of its posts still inside the window, per (payer, post) its number of votes, per post made
//! under a policy its payer, base postage, up-voters and whether it was refunded, and the refund
//! the next entry must be.
//!
//! It must not parse or judge stamps themselves (that is `super`, which hands it the payer and
//! unit price of each stamp a spend lists) and must not do any I/O. Its state's fields are open
//! to `super` and below so that `snapshot` can write them and read them back.
//!
//! "Before the first policy" means at a log index below that of the first well-formed `policy`
//! entry: such spends are priced by nothing, may be of mixed payers, and votes may lack a
//! `direction`; they still count as earlier spends for the prices of later ones.

use std::collections::{HashSet, VecDeque};

use super::entry::{
    parse_time, parse_uuid, uuid_text, Common, PolicyEntry, RefundEntry, VoteDirection, VotePricing,
};
use super::layered::Layered;
use super::ViolationCode;
use super::{Account, LedgerChecker, ENTRY_BYTES_MAX, NANOS_PER_SEC};

/// The parameters of a `policy` entry the checks use (`stamp_price` is not one: a purchase's
/// own `unit_price` is what its stamps cost).
pub(super) struct Policy {
    pub(super) currency: String,
    pub(super) post_cost: u64,
    pub(super) vote_cost: u64,
    pub(super) repeat_window_secs: u64,
    pub(super) repeat_factor: u64,
    pub(super) vote_pricing: VotePricing,
    pub(super) refund_voters: u64,
}

/// One payer's posts, as far as flood pricing still needs them.
#[derive(Default)]
pub(super) struct PayerPosts {
    /// Times (whole Unix seconds) of its posts after the window's start at its latest post,
    /// oldest first.
    pub(super) recent: VecDeque<i64>,
    /// Posts no longer in `recent`: out of the window in force at a later post of the payer,
    /// or made before the first policy (when no window is known).
    pub(super) forgotten: u64,
    /// The latest time among the forgotten posts.
    pub(super) forgotten_latest: i64,
}

impl PayerPosts {
    /// Forgets the posts at or before `cutoff` (they are out of the window).
    fn forget_until(&mut self, cutoff: i128) {
        while let Some(&oldest) = self.recent.front() {
            if i128::from(oldest) > cutoff {
                break;
            }
            self.recent.pop_front();
            self.forget(oldest);
        }
    }

    fn forget(&mut self, time: i64) {
        self.forgotten = self.forgotten.saturating_add(1);
        self.forgotten_latest = if self.forgotten == 1 {
            time
        } else {
            self.forgotten_latest.max(time)
        };
    }

    /// The earlier posts after `cutoff`: how many are known, and how many forgotten posts may
    /// also be (only when a window longer than the one they were forgotten under reaches back
    /// to them, or for posts made before the first policy).
    fn after(&self, cutoff: i128) -> (u64, u64) {
        let known = u64::try_from(self.recent.len()).unwrap_or(u64::MAX);
        let unsure = if self.forgotten > 0 && i128::from(self.forgotten_latest) > cutoff {
            self.forgotten
        } else {
            0
        };
        (known, unsure)
    }
}

/// A post made under a policy.
pub(super) struct Post {
    pub(super) payer: u128,
    /// Sum of the `unit_price` of the first `post_cost` stamps its spend lists.
    pub(super) base_postage: u128,
    pub(super) refunded: bool,
    /// Distinct payers of its up-votes other than its own payer (emptied once refunded).
    pub(super) up_voters: HashSet<u128>,
}

/// The refund the next entry must be.
pub(super) struct ExpectedRefund {
    pub(super) vote_index: u64,
    pub(super) post: u128,
    pub(super) payer: u128,
    pub(super) amount: u128,
    pub(super) currency: String,
    pub(super) voters: u64,
}

/// What the economy's checks remember between entries.
#[derive(Default)]
pub(super) struct Economy {
    /// The last well-formed `policy` entry; `None` before the first.
    pub(super) policy: Option<Policy>,
    pub(super) payer_posts: Layered<u128, PayerPosts>,
    /// Vote spends per (payer, post id), up and down alike.
    pub(super) votes: Layered<(u128, u128), u64>,
    /// Posts made under a policy, by post id.
    pub(super) posts: Layered<u128, Post>,
    /// Set by a completing up-vote: the next entry must be this refund.
    pub(super) pending: Option<ExpectedRefund>,
    /// The pending refund that the entry being checked matched (same post), for `check_refund`.
    pub(super) matched: Option<ExpectedRefund>,
    pub(super) refunds_total: u128,
}

impl Economy {
    pub(super) fn policy_seen(&self) -> bool {
        self.policy.is_some()
    }

    /// Post times kept for flood pricing, over all payers.
    #[cfg(test)]
    pub(super) fn remembered_post_times(&self) -> usize {
        self.payer_posts.values().map(|p| p.recent.len()).sum()
    }

    /// Up-voters kept for refunds, over all posts.
    #[cfg(test)]
    pub(super) fn remembered_up_voters(&self) -> usize {
        self.posts.values().map(|p| p.up_voters.len()).sum()
    }
}

/// A post or vote spend, as the economy sees it.
pub(super) struct PricedSpend<'a> {
    pub(super) is_vote: bool,
    pub(super) direction: Option<VoteDirection>,
    pub(super) post: u128,
    /// `len(stamp_ids)`: the number of stamps it cancels.
    pub(super) count: u64,
    /// The payer and unit price of each distinct stamp it lists, in order; `None` for a stamp
    /// no purchase sold.
    pub(super) stamps: &'a [Option<(u128, u64)>],
}

/// `post_cost × repeat_factor^k`, `None` when it overflows u64 (it cannot be paid).
fn post_price(policy: &Policy, k: u64) -> Option<u64> {
    let power = match policy.repeat_factor {
        1 => 1,
        factor => factor.checked_pow(u32::try_from(k).ok()?)?,
    };
    policy.post_cost.checked_mul(power)
}

/// `vote_cost × (2n − 1)` (quadratic) or `vote_cost` (flat), `None` when it overflows u64.
fn vote_price(policy: &Policy, n: u64) -> Option<u64> {
    match policy.vote_pricing {
        VotePricing::Flat => Some(policy.vote_cost),
        VotePricing::Quadratic => {
            let odd = n.checked_mul(2)?.checked_sub(1)?;
            policy.vote_cost.checked_mul(odd)
        }
    }
}

/// Whether `count` is the price of a post after `known` earlier posts in the window plus any
/// number up to `unsure` more. Prices grow at least twofold per post when the factor is above
/// 1, so this looks at no more than 65 prices.
fn post_count_matches(policy: &Policy, known: u64, unsure: u64, count: u64) -> bool {
    if policy.repeat_factor == 1 {
        return post_price(policy, known) == Some(count);
    }
    let last = known.saturating_add(unsure);
    let mut k = known;
    loop {
        match post_price(policy, k) {
            Some(price) if price == count => return true,
            Some(price) if price < count && k < last => k += 1,
            _ => return false,
        }
    }
}

fn price_text(price: Option<u64>) -> String {
    match price {
        Some(price) => price.to_string(),
        None => "more than u64 can hold (it cannot be paid)".to_string(),
    }
}

/// Whether `bytes` is a well-formed `refund` entry for `post`: enough for the entry right after
/// a completing vote to count as its refund (its amount and account are judged later).
fn is_refund_of(bytes: &[u8], post: u128) -> bool {
    if bytes.len() > ENTRY_BYTES_MAX {
        return false;
    }
    let Ok(common) = serde_json::from_slice::<Common>(bytes) else {
        return false;
    };
    if common.v != 1 || common.kind != "refund" || parse_time(&common.time).is_none() {
        return false;
    }
    serde_json::from_slice::<RefundEntry>(bytes)
        .ok()
        .and_then(|entry| parse_uuid(&entry.post_id))
        == Some(post)
}

impl LedgerChecker {
    /// Called before each entry is checked: if the previous entry completed a post's count, this
    /// one must be its refund.
    pub(super) fn expect_refund(&mut self, index: u64, bytes: &[u8]) {
        self.economy.matched = None;
        let Some(expected) = self.economy.pending.take() else {
            return;
        };
        if is_refund_of(bytes, expected.post) {
            self.economy.matched = Some(expected);
        } else {
            let detail = format!(
                "the up-vote at entry {} gave post {} its {} distinct voters; entry {index} is not its refund",
                expected.vote_index,
                uuid_text(expected.post),
                expected.voters
            );
            self.violate(expected.vote_index, ViolationCode::MissingRefund, detail);
        }
    }

    /// The refund still owed at the end of the log, if any (for the report).
    pub(super) fn refund_owed_at_end(&self) -> Option<(u64, String)> {
        self.economy.pending.as_ref().map(|expected| {
            let detail = format!(
                "the up-vote at entry {} gave post {} its {} distinct voters; the log ends before its refund",
                expected.vote_index,
                uuid_text(expected.post),
                expected.voters
            );
            (expected.vote_index, detail)
        })
    }

    pub(super) fn check_policy(&mut self, index: u64, bytes: &[u8]) {
        let entry: PolicyEntry = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) => return self.malformed(index, e.to_string()),
        };
        if entry.currency.is_empty() {
            return self.malformed(index, "currency is empty");
        }
        for (name, value) in [
            ("post_cost", entry.post_cost),
            ("vote_cost", entry.vote_cost),
            ("repeat_factor", entry.repeat_factor),
        ] {
            if value == 0 {
                return self.malformed(index, format!("{name} is 0"));
            }
        }
        self.economy.policy = Some(Policy {
            currency: entry.currency,
            post_cost: entry.post_cost,
            vote_cost: entry.vote_cost,
            repeat_window_secs: entry.repeat_window_secs,
            repeat_factor: entry.repeat_factor,
            vote_pricing: entry.vote_pricing,
            refund_voters: entry.refund_voters,
        });
    }

    pub(super) fn check_refund(&mut self, index: u64, bytes: &[u8]) {
        let matched = self.economy.matched.take();
        let entry: RefundEntry = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) => return self.malformed(index, e.to_string()),
        };
        let Some(account) = parse_uuid(&entry.account) else {
            return self.malformed(index, "account is not a lowercase hyphenated uuid");
        };
        let Some(post_id) = parse_uuid(&entry.post_id) else {
            return self.malformed(index, "post_id is not a lowercase hyphenated uuid");
        };
        if entry.currency.is_empty() {
            return self.malformed(index, "currency is empty");
        }

        let amount = u128::from(entry.amount);
        self.economy.refunds_total = self.economy.refunds_total.saturating_add(amount);
        let totals = self.accounts.get_or_insert_with(account, Account::default);
        totals.refunds = totals.refunds.saturating_add(amount);

        match matched {
            Some(expected) if expected.post == post_id => {
                if account != expected.payer {
                    let detail = format!(
                        "refund of post {} goes to {}, not to its payer {}",
                        entry.post_id,
                        entry.account,
                        uuid_text(expected.payer)
                    );
                    self.violate(index, ViolationCode::WrongRefundAccount, detail);
                }
                if amount != expected.amount || entry.currency != expected.currency {
                    let detail = format!(
                        "refund of post {} is {} {}; its base postage is {} {}",
                        entry.post_id,
                        entry.amount,
                        entry.currency,
                        expected.amount,
                        expected.currency
                    );
                    self.violate(index, ViolationCode::WrongRefundAmount, detail);
                }
            }
            _ => {
                let refunded = self.economy.posts.get(&post_id).is_some_and(|p| p.refunded);
                let detail = if refunded {
                    format!("post {} was refunded before", entry.post_id)
                } else {
                    format!(
                        "the entry before is not an up-vote completing post {}'s voters",
                        entry.post_id
                    )
                };
                self.violate(index, ViolationCode::UnexpectedRefund, detail);
            }
        }
        // Refunded now, rightly or not: no later vote takes a second refund.
        if let Some(post) = self.economy.posts.get_mut(&post_id) {
            post.refunded = true;
            post.up_voters = HashSet::new();
        }
    }

    /// The economy's part of a post or vote spend (invariant 8, and the vote side of 9).
    pub(super) fn check_priced_spend(&mut self, index: u64, time_nanos: i128, spend: PricedSpend) {
        let mut payer = None;
        let mut mixed = None;
        for &(stamp_payer, _) in spend.stamps.iter().flatten() {
            match payer {
                None => payer = Some(stamp_payer),
                Some(first) if first != stamp_payer => mixed = Some((first, stamp_payer)),
                Some(_) => {}
            }
        }
        let priced = self.economy.policy.is_some();
        if let Some((first, other)) = mixed {
            payer = None;
            if priced {
                let detail = format!(
                    "{} {} cancels stamps of {} and of {}",
                    if spend.is_vote { "vote on" } else { "post" },
                    uuid_text(spend.post),
                    uuid_text(first),
                    uuid_text(other)
                );
                self.violate(index, ViolationCode::MixedPayers, detail);
            }
        }
        if spend.is_vote {
            self.check_vote(index, &spend, payer, mixed.is_some());
        } else {
            self.check_post(index, time_nanos, &spend, payer, mixed.is_some());
        }
    }

    fn check_post(
        &mut self,
        index: u64,
        time_nanos: i128,
        spend: &PricedSpend,
        payer: Option<u128>,
        mixed: bool,
    ) {
        let secs = time_nanos.div_euclid(NANOS_PER_SEC);
        let secs_i64 = i64::try_from(secs).unwrap_or(i64::MAX);
        let economy = &mut self.economy;
        let Some(policy) = &economy.policy else {
            if let Some(payer) = payer {
                economy
                    .payer_posts
                    .get_or_insert_with(payer, PayerPosts::default)
                    .forget(secs_i64);
            }
            return;
        };
        let Some(payer) = payer else {
            if !mixed && spend.count < policy.post_cost {
                let detail = format!(
                    "post {} cancels {} stamps; no post costs less than {}",
                    uuid_text(spend.post),
                    spend.count,
                    policy.post_cost
                );
                self.violate(index, ViolationCode::WrongPrice, detail);
            }
            return;
        };
        let cutoff = secs - i128::from(policy.repeat_window_secs);
        let history = economy
            .payer_posts
            .get_or_insert_with(payer, PayerPosts::default);
        history.forget_until(cutoff);
        let (known, unsure) = history.after(cutoff);
        history.recent.push_back(secs_i64);
        let wrong = (!post_count_matches(policy, known, unsure, spend.count)).then(|| {
            let also = if unsure > 0 {
                format!(" (and up to {unsure} older ones it kept no time for)")
            } else {
                String::new()
            };
            format!(
                "post {} by {} cancels {} stamps; after {known} earlier posts{also} in {} s the price is {}",
                uuid_text(spend.post),
                uuid_text(payer),
                spend.count,
                policy.repeat_window_secs,
                price_text(post_price(policy, known))
            )
        });
        // The first post spend of a post id makes the post; a later one changes nothing.
        if !economy.posts.contains_key(&spend.post) {
            let cost = usize::try_from(policy.post_cost).unwrap_or(usize::MAX);
            let base_postage = spend
                .stamps
                .iter()
                .take(cost)
                .flatten()
                .map(|&(_, unit_price)| u128::from(unit_price))
                .fold(0u128, u128::saturating_add);
            let post = Post {
                payer,
                base_postage,
                refunded: false,
                up_voters: HashSet::new(),
            };
            economy.posts.insert_new(spend.post, post);
        }
        if let Some(detail) = wrong {
            self.violate(index, ViolationCode::WrongPrice, detail);
        }
    }

    fn check_vote(&mut self, index: u64, spend: &PricedSpend, payer: Option<u128>, mixed: bool) {
        let economy = &mut self.economy;
        let Some(payer) = payer else {
            if let Some(policy) = &economy.policy {
                if !mixed && spend.count < policy.vote_cost {
                    let detail = format!(
                        "vote on {} cancels {} stamps; no vote costs less than {}",
                        uuid_text(spend.post),
                        spend.count,
                        policy.vote_cost
                    );
                    self.violate(index, ViolationCode::WrongPrice, detail);
                }
            }
            return;
        };
        let votes = economy.votes.get_or_insert_with((payer, spend.post), || 0);
        *votes = votes.saturating_add(1);
        let n = *votes;
        let Some(policy) = &economy.policy else {
            return;
        };
        let price = vote_price(policy, n);
        let wrong = (price != Some(spend.count)).then(|| {
            format!(
                "vote {n} of {} on {} cancels {} stamps; the {} price is {}",
                uuid_text(payer),
                uuid_text(spend.post),
                spend.count,
                match policy.vote_pricing {
                    VotePricing::Quadratic => "quadratic",
                    VotePricing::Flat => "flat",
                },
                price_text(price)
            )
        });
        if spend.direction == Some(VoteDirection::Up) {
            if let Some(post) = economy.posts.get_mut(&spend.post) {
                if !post.refunded && post.payer != payer {
                    post.up_voters.insert(payer);
                    let voters = u64::try_from(post.up_voters.len()).unwrap_or(u64::MAX);
                    if policy.refund_voters > 0 && voters >= policy.refund_voters {
                        economy.pending = Some(ExpectedRefund {
                            vote_index: index,
                            post: spend.post,
                            payer: post.payer,
                            amount: post.base_postage,
                            currency: policy.currency.clone(),
                            voters,
                        });
                    }
                }
            }
        }
        if let Some(detail) = wrong {
            self.violate(index, ViolationCode::WrongPrice, detail);
        }
    }
}
