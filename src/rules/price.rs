//! The economy's prices: flood pricing of posts and quadratic pricing of votes, as functions
//! of the policy in force and of what the ledger says happened before. Pure: the counts come
//! from the store's indexes, read by the spend rule or a quote.

use serde::{Deserialize, Serialize};

/// How repeated votes of one payer on one post are priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VotePricing {
    /// The n-th vote costs `vote_cost × (2n − 1)`: n votes cost `vote_cost × n²`.
    Quadratic,
    /// Every vote costs `vote_cost`.
    Flat,
}

impl VotePricing {
    pub fn as_str(self) -> &'static str {
        match self {
            VotePricing::Quadratic => "quadratic",
            VotePricing::Flat => "flat",
        }
    }
}

impl std::str::FromStr for VotePricing {
    type Err = String;
    fn from_str(text: &str) -> Result<VotePricing, String> {
        match text {
            "quadratic" => Ok(VotePricing::Quadratic),
            "flat" => Ok(VotePricing::Flat),
            other => Err(format!(
                "vote pricing must be quadratic or flat, not {other:?}"
            )),
        }
    }
}

/// Most characters in a currency name (`--currency`): it is written into every credit,
/// policy and refund entry.
pub const CURRENCY_CHARS_MAX: usize = 32;

/// Whether `currency` may name the minor unit: 1 to [`CURRENCY_CHARS_MAX`] characters, no
/// control characters, no space at either end. The auditor rejects an empty one.
pub fn currency_is_valid(currency: &str) -> bool {
    let chars = currency.chars().count();
    (1..=CURRENCY_CHARS_MAX).contains(&chars)
        && currency.trim() == currency
        && !currency.chars().any(char::is_control)
}

/// The policy in force: written to the ledger as a `policy` entry before the first entry it
/// prices, and again at every start whose policy differs from the last one written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub currency: String,
    /// Minor units per stamp.
    pub stamp_price: u64,
    /// Base stamps per post.
    pub post_cost: u64,
    /// Base stamps per vote.
    pub vote_cost: u64,
    /// The flood window: earlier posts of the same payer within it raise a post's price.
    pub repeat_window_secs: u64,
    /// Each earlier post in the window multiplies the price by this (1 turns flood pricing
    /// off).
    pub repeat_factor: u64,
    pub vote_pricing: VotePricing,
    /// Distinct up-voting payers (other than the post's) that refund a post's base postage;
    /// 0 turns refunds off.
    pub refund_voters: u64,
}

impl Policy {
    /// Stamps a post costs when its payer made `recent_posts` other posts within the window
    /// before it: `post_cost × repeat_factor^recent_posts`. `None` when that overflows: such
    /// a price cannot be paid.
    pub fn post_price(&self, recent_posts: u64) -> Option<u64> {
        let exponent = u32::try_from(recent_posts).ok()?;
        self.repeat_factor
            .checked_pow(exponent)?
            .checked_mul(self.post_cost)
    }

    /// Stamps the `n`-th vote (1, 2, ...) of one payer on one post costs.
    pub fn vote_price(&self, n: u64) -> Option<u64> {
        match self.vote_pricing {
            VotePricing::Flat => Some(self.vote_cost),
            VotePricing::Quadratic => n
                .checked_mul(2)?
                .checked_sub(1)?
                .checked_mul(self.vote_cost),
        }
    }

    /// The earliest post time (Unix seconds) that still counts towards the flood price of a
    /// post at `time`: earlier post spends count when their time is after
    /// `time − repeat_window_secs`.
    pub fn window_start(&self, time: i64) -> i64 {
        time.saturating_sub(i64::try_from(self.repeat_window_secs).unwrap_or(i64::MAX))
            .saturating_add(1)
    }
}

/// A price as a request sees it: what it must attach. A price that overflows is reported as
/// `u64::MAX`, which no request can attach.
pub fn payable(price: Option<u64>) -> u64 {
    price.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            currency: "cents".into(),
            stamp_price: 1,
            post_cost: 1,
            vote_cost: 1,
            repeat_window_secs: 600,
            repeat_factor: 2,
            vote_pricing: VotePricing::Quadratic,
            refund_voters: 3,
        }
    }

    #[test]
    fn posts_double_within_the_window() {
        let p = policy();
        let prices: Vec<u64> = (0..5).map(|k| payable(p.post_price(k))).collect();
        assert_eq!(prices, vec![1, 2, 4, 8, 16]);
        // 20 posts in ten minutes cost 2^20 − 1 stamps in all.
        let total: u64 = (0..20).map(|k| payable(p.post_price(k))).sum();
        assert_eq!(total, (1 << 20) - 1);
        assert_eq!(p.post_price(64), None, "overflow cannot be paid");
        let flat = Policy {
            repeat_factor: 1,
            post_cost: 3,
            ..policy()
        };
        assert_eq!(flat.post_price(50), Some(3));
    }

    #[test]
    fn votes_cost_n_squared_in_all() {
        let p = policy();
        let total: u64 = (1..=1000).map(|n| payable(p.vote_price(n))).sum();
        assert_eq!(total, 1_000_000);
        let flat = Policy {
            vote_pricing: VotePricing::Flat,
            vote_cost: 2,
            ..policy()
        };
        assert_eq!(flat.vote_price(7), Some(2));
    }

    #[test]
    fn the_window_is_open_at_its_start() {
        // A post exactly repeat_window_secs after the previous one does not count it.
        let p = policy();
        assert_eq!(p.window_start(1_000), 401);
        assert!(400 < p.window_start(1_000));
    }
}
