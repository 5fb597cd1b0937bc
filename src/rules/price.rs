//! The economy's prices: flood pricing of posts and quadratic pricing of votes, as functions
//! of the policy in force and of what the ledger says happened before. Pure: the counts come
//! from the store's indexes, read by the spend rule or a quote.

pub use crate::domain::{currency_is_valid, Policy, VotePricing, CURRENCY_CHARS_MAX};

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
