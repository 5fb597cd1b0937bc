//! Configuration: the economy (prices and costs) and the limits, set at start by flag or
//! environment and validated once.
//!
//! Every limit the server enforces is a named field here with its default and reason, and is
//! logged at start-up, so an operator can see what the server will accept.

use serde::Serialize;

use crate::domain::{currency_is_valid, Policy, VotePricing, CURRENCY_CHARS_MAX};

/// Prices and costs, fixed for the life of the process: the policy the ledger records and
/// prices by (the one `Policy` of the server, `domain::Policy`), and how long a stamp sold
/// under it stays spendable.
#[derive(Clone, Debug, Serialize)]
pub struct Economy {
    #[serde(flatten)]
    pub policy: Policy,
    /// Seconds a stamp stays spendable after it is sold.
    pub stamp_ttl_secs: u64,
}

impl Default for Economy {
    fn default() -> Economy {
        Economy {
            policy: Policy {
                currency: "cents".into(),
                stamp_price: 1,
                post_cost: 1,
                vote_cost: 1,
                repeat_window_secs: 600,
                repeat_factor: 2,
                vote_pricing: VotePricing::Quadratic,
                refund_voters: 3,
            },
            stamp_ttl_secs: 31_536_000,
        }
    }
}

/// Bounds on everything a client can send or ask for.
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    /// Request body bytes (docs/api.md: 65,536 by default), chunked bodies included.
    pub request_body_bytes_max: usize,
    /// Stamps one purchase may buy (docs/api.md: 1..=1000). Keeps a purchase entry under 64 KiB.
    pub purchase_count_max: u32,
    /// Stamps one post or vote may carry, whatever the costs: bounds signature work per request.
    pub stamps_per_request_max: usize,
    /// Characters (Unicode scalar values) in a post's author (docs/api.md default 64).
    pub author_chars_max: usize,
    /// Characters in a post's body (docs/api.md default 10,000).
    pub post_body_chars_max: usize,
    /// Characters in an account name.
    pub account_name_chars_max: usize,
    /// Bytes in a redeem context (docs/api.md: 1..=512).
    pub context_bytes_max: usize,
    /// Characters in a credit reference.
    pub reference_chars_max: usize,
    /// Largest single credit, in minor units: a typo of a few extra digits is refused.
    pub credit_amount_max: u64,
    /// Bytes in an Idempotency-Key header.
    pub idempotency_key_bytes_max: usize,
    /// Posts per page of `GET /v1/posts`.
    pub posts_page_max: usize,
    /// Entries per page of `GET /v1/ledger/entries` (docs/api.md: at least 1000).
    pub ledger_page_max: u64,
    /// Entries the server's own ledger check may be behind the log for `GET /v1/audit` to
    /// catch up and answer; further behind (after a start on a long log), it answers 503
    /// `audit_catching_up` at once instead of keeping the client waiting.
    pub audit_lag_max: u64,
    /// Seconds a request may take, body included, before it is cut off (slow clients).
    pub request_timeout_secs: u64,
    /// Open connections at once; more wait in the kernel's accept queue.
    pub connections_max: usize,
    /// Seconds a client may take to send a request's headers (slowloris).
    pub header_read_timeout_secs: u64,
    /// Per-client rate limits.
    pub rate: RateLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client the rate limits count; from
    /// any other peer the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}
/// The per-minute limits (0 = off).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RateLimits {
    pub accounts_per_minute: u32,
    pub purchases_per_minute: u32,
    pub auth_failures_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            accounts_per_minute: 60,
            purchases_per_minute: 600,
            auth_failures_per_minute: 30,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_body_bytes_max: 65_536,
            purchase_count_max: 1000,
            stamps_per_request_max: 100,
            author_chars_max: 64,
            post_body_chars_max: 10_000,
            account_name_chars_max: 64,
            context_bytes_max: 512,
            reference_chars_max: 256,
            credit_amount_max: 1_000_000_000_000,
            idempotency_key_bytes_max: 255,
            posts_page_max: 100,
            ledger_page_max: 1000,
            audit_lag_max: 200_000,
            request_timeout_secs: 30,
            connections_max: 4096,
            header_read_timeout_secs: 10,
            rate: RateLimits::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Largest stamp price (exclusive), in minor units: 2^56.
pub const STAMP_PRICE_LIMIT: u64 = 1 << 56;
/// Largest flood factor: past it the second post of a window already costs more than any
/// request can carry.
pub const REPEAT_FACTOR_MAX: u64 = 1000;
/// Longest flood window: one week.
pub const REPEAT_WINDOW_SECS_MAX: u64 = 7 * 24 * 3600;
/// Most distinct up-voters a refund may wait for.
pub const REFUND_VOTERS_MAX: u64 = 1_000_000;
/// Longest stamp lifetime: 100 years. A stamp carries its `expires_at` as Unix seconds and its
/// purchase entry as an RFC 3339 time, which ends at year 9999: a longer lifetime would sign
/// one instant into the stamps and write another (9999-12-31) into the ledger.
pub const STAMP_TTL_SECS_MAX: u64 = 100 * 31_557_600;

/// Why a configuration was refused at start.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Economy {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let policy = &self.policy;
        if !currency_is_valid(&policy.currency) {
            return Err(ConfigError(format!(
                "currency must be 1 to {CURRENCY_CHARS_MAX} characters, without control \
                 characters or surrounding spaces"
            )));
        }
        if policy.post_cost == 0
            || policy.post_cost > 100
            || policy.vote_cost == 0
            || policy.vote_cost > 100
        {
            return Err(ConfigError(
                "post and vote costs must be 1 to 100 stamps".into(),
            ));
        }
        if self.stamp_ttl_secs == 0 || self.stamp_ttl_secs > STAMP_TTL_SECS_MAX {
            return Err(ConfigError(format!(
                "stamp TTL must be 1 to {STAMP_TTL_SECS_MAX} seconds"
            )));
        }
        // Below 2^56 also keeps a stored unit price from starting with the byte of a JSON
        // record (see the sled layout).
        if policy.stamp_price.checked_mul(1000).is_none() || policy.stamp_price >= STAMP_PRICE_LIMIT
        {
            return Err(ConfigError(format!(
                "stamp price must be below {STAMP_PRICE_LIMIT}"
            )));
        }
        if policy.repeat_factor == 0 || policy.repeat_factor > REPEAT_FACTOR_MAX {
            return Err(ConfigError(format!(
                "repeat factor must be 1 to {REPEAT_FACTOR_MAX}"
            )));
        }
        if policy.repeat_window_secs > REPEAT_WINDOW_SECS_MAX {
            return Err(ConfigError(format!(
                "repeat window must be at most {REPEAT_WINDOW_SECS_MAX} seconds"
            )));
        }
        if policy.refund_voters > REFUND_VOTERS_MAX {
            return Err(ConfigError(format!(
                "refund voters must be at most {REFUND_VOTERS_MAX}"
            )));
        }
        Ok(())
    }
}

impl Limits {
    pub fn validate(&self, economy: &Economy) -> Result<(), ConfigError> {
        let costs = economy.policy.post_cost.max(economy.policy.vote_cost);
        if u64::try_from(self.stamps_per_request_max).unwrap_or(u64::MAX) < costs {
            return Err(ConfigError(
                "stamps per request must allow the post and vote costs".into(),
            ));
        }
        if self.author_chars_max == 0 || self.post_body_chars_max == 0 {
            return Err(ConfigError(
                "author and body limits must be at least 1".into(),
            ));
        }
        if self.connections_max == 0
            || self.request_timeout_secs == 0
            || self.header_read_timeout_secs == 0
        {
            return Err(ConfigError(
                "connection and time limits must be at least 1".into(),
            ));
        }
        if self.ledger_page_max < 1000 {
            return Err(ConfigError(
                "ledger pages must allow at least 1000 entries".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stamps' expiry and their purchase entry's must be one instant, so the lifetime ends
    /// well before the ledger's RFC 3339 times do (year 9999).
    #[test]
    fn a_stamp_lifetime_is_1_second_to_100_years() {
        for good in [1, 31_536_000, STAMP_TTL_SECS_MAX] {
            let economy = Economy {
                stamp_ttl_secs: good,
                ..Economy::default()
            };
            assert!(economy.validate().is_ok(), "{good}");
        }
        for bad in [0, STAMP_TTL_SECS_MAX + 1, u64::MAX] {
            let economy = Economy {
                stamp_ttl_secs: bad,
                ..Economy::default()
            };
            let error = economy.validate().expect_err("refused").to_string();
            assert!(error.contains("stamp TTL must be 1 to"), "{bad}: {error}");
        }
        // Issued in year 9899, the longest-lived stamp still expires inside RFC 3339's range.
        let latest =
            crate::time::Timestamp::from_unix(250_000_000_000).plus_secs(STAMP_TTL_SECS_MAX);
        assert!(
            latest.to_rfc3339().starts_with("99"),
            "{}",
            latest.to_rfc3339()
        );
    }

    #[test]
    fn a_currency_is_a_short_printable_name() {
        for good in [
            "cents",
            "USD",
            "€",
            "eurocent",
            "a b",
            &"x".repeat(CURRENCY_CHARS_MAX),
        ] {
            let mut economy = Economy::default();
            economy.policy.currency = good.to_string();
            assert!(economy.validate().is_ok(), "{good:?}");
        }
        let long = "x".repeat(CURRENCY_CHARS_MAX + 1);
        for bad in ["", " ", " cents", "cents ", "ce\nnts", "\u{7f}", &long] {
            let mut economy = Economy::default();
            economy.policy.currency = bad.to_string();
            let error = economy.validate().expect_err(bad).to_string();
            assert!(
                error.contains("currency must be 1 to 32"),
                "{bad:?}: {error}"
            );
        }
    }
}
