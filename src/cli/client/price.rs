//! Prices in words, for the member who is about to pay them: "this post costs 4 stamps: your
//! third in ten minutes", "your second vote on this post costs 3 stamps".
//!
//! Pure: works the reason out of the quoted price and the policy of `GET /v1/prices` (a post
//! costs `post_cost × repeat_factor^k`, the n-th vote `vote_cost × (2n − 1)`); a price that
//! fits neither rule is said without a reason. The web page (`src/web/app.js`) says the same
//! things the same way.

use crate::api::PolicyInfo;

const NUMBERS: [&str; 13] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
];
const ORDINALS: [&str; 11] = [
    "zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
    "tenth",
];

/// "1 stamp", "2 stamps".
pub fn stamps(n: u64) -> String {
    if n == 1 {
        "1 stamp".into()
    } else {
        format!("{n} stamps")
    }
}

/// An amount of money in minor units: in an ISO 4217 currency as its decimal ("5.00 USD", the
/// amount a member recognises; with a real payment provider the server's currency is one),
/// otherwise in the unit the server names: "1 cent", "2 cents".
pub fn money(n: u64, currency: &str) -> String {
    use crate::payments::currency::{iso4217, to_decimal};
    if let Some(iso) = iso4217(currency) {
        return format!("{} {}", to_decimal(n, iso.exponent), iso.code);
    }
    match currency.strip_suffix('s') {
        Some(one) if n == 1 && !one.is_empty() => format!("1 {one}"),
        _ => format!("{n} {currency}"),
    }
}

/// "first" … "tenth", then "11th", "12th", "21st", "22nd", "23rd".
pub fn ordinal(n: u64) -> String {
    if let Some(word) = usize::try_from(n).ok().and_then(|i| ORDINALS.get(i)) {
        return (*word).into();
    }
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// 600 → "ten minutes", 3600 → "one hour", 90 → "90 seconds".
pub fn duration(secs: u64) -> String {
    let units = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    for (size, unit) in units {
        if secs >= size && secs % size == 0 {
            let n = secs / size;
            let count = usize::try_from(n)
                .ok()
                .and_then(|i| NUMBERS.get(i))
                .map_or_else(|| n.to_string(), |w| (*w).to_string());
            let s = if n == 1 { "" } else { "s" };
            return format!("{count} {unit}{s}");
        }
    }
    format!("{secs} seconds")
}

/// How many of the payer's earlier posts in the window make a post cost `price`, or `None`
/// when `price` is not a flood price of this policy.
pub fn flood_count(policy: &PolicyInfo, price: u64) -> Option<u64> {
    if policy.repeat_factor <= 1 || policy.post_cost == 0 {
        return None;
    }
    let mut at = policy.post_cost;
    for k in 0..=64 {
        if at == price {
            return Some(k);
        }
        at = at.checked_mul(policy.repeat_factor)?;
        if at > price {
            return None;
        }
    }
    None
}

/// Which vote of one payer on one post costs `price` under quadratic pricing, or `None`.
pub fn vote_number(policy: &PolicyInfo, price: u64) -> Option<u64> {
    if policy.vote_pricing != "quadratic" || policy.vote_cost == 0 {
        return None;
    }
    if price % policy.vote_cost != 0 {
        return None;
    }
    let odd = price / policy.vote_cost;
    (odd % 2 == 1).then(|| odd / 2 + 1)
}

/// What a post costs, and why when it costs more than usual.
pub fn post(policy: &PolicyInfo, price: u64) -> String {
    match flood_count(policy, price) {
        Some(k) if k > 0 => {
            let window = duration(policy.repeat_window_secs);
            let factor = if policy.repeat_factor == 2 {
                "twice".to_string()
            } else {
                format!("{} times", policy.repeat_factor)
            };
            format!(
                "this post costs {}: your {} in {window} (each post within {window} of your \
                 others costs {factor} the one before; after {window} without posting, a post \
                 costs {} again)",
                stamps(price),
                ordinal(k + 1),
                stamps(policy.post_cost)
            )
        }
        _ => format!("this post costs {}", stamps(price)),
    }
}

/// What a vote costs, and why when it costs more than usual.
pub fn vote(policy: &PolicyInfo, price: u64) -> String {
    match vote_number(policy, price) {
        Some(n) if n > 1 => {
            let steps = [1, 3, 5, 7].map(|x| (x * policy.vote_cost).to_string());
            format!(
                "your {} vote on this post costs {} (one member's votes on one post cost {} … \
                 stamps in turn)",
                ordinal(n),
                stamps(price),
                steps.join(", ")
            )
        }
        _ => format!("this vote costs {}", stamps(price)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PolicyInfo {
        PolicyInfo {
            post_cost: 1,
            refund_voters: 3,
            repeat_factor: 2,
            repeat_window_secs: 600,
            stamp_price: 1,
            vote_cost: 1,
            vote_pricing: "quadratic".into(),
        }
    }

    #[test]
    fn numbers_and_times_read_as_words() {
        assert_eq!(stamps(1), "1 stamp");
        assert_eq!(stamps(0), "0 stamps");
        assert_eq!(money(1, "cents"), "1 cent");
        assert_eq!(money(2, "cents"), "2 cents");
        assert_eq!(money(1, "EUR"), "0.01 EUR");
        assert_eq!(money(500, "usd"), "5.00 USD");
        assert_eq!(money(500, "JPY"), "500 JPY");
        assert_eq!(money(5, "BHD"), "0.005 BHD");
        assert_eq!(money(3, "sats"), "3 sats");
        assert_eq!(
            [1, 3, 10, 11, 12, 13, 21, 22, 23, 101, 111].map(ordinal),
            [
                "first", "third", "tenth", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st",
                "111th"
            ]
        );
        assert_eq!(duration(600), "ten minutes");
        assert_eq!(duration(3600), "one hour");
        assert_eq!(duration(7200), "two hours");
        assert_eq!(duration(86_400 * 30), "30 days");
        assert_eq!(duration(90), "90 seconds");
        assert_eq!(duration(1), "one second");
    }

    #[test]
    fn a_post_says_which_one_it_is_in_the_window() {
        let p = policy();
        assert_eq!(post(&p, 1), "this post costs 1 stamp");
        let third = post(&p, 4);
        assert!(
            third.starts_with("this post costs 4 stamps: your third in ten minutes"),
            "{third}"
        );
        // Not a price of this policy: said without a reason.
        assert_eq!(post(&p, 3), "this post costs 3 stamps");
        let dear = PolicyInfo {
            post_cost: 3,
            repeat_factor: 10,
            ..policy()
        };
        assert_eq!(flood_count(&dear, 300), Some(2));
        assert_eq!(flood_count(&dear, 30), Some(1));
        assert_eq!(flood_count(&dear, 31), None);
        assert_eq!(flood_count(&dear, u64::MAX), None);
        let flat = PolicyInfo {
            repeat_factor: 1,
            ..policy()
        };
        assert_eq!(post(&flat, 1), "this post costs 1 stamp");
    }

    #[test]
    fn a_vote_says_which_one_it_is_on_the_post() {
        let p = policy();
        assert_eq!(vote(&p, 1), "this vote costs 1 stamp");
        assert_eq!(
            vote(&p, 3),
            "your second vote on this post costs 3 stamps (one member's votes on one post \
             cost 1, 3, 5, 7 … stamps in turn)"
        );
        assert!(vote(&p, 19).starts_with("your tenth vote on this post costs 19 stamps"));
        assert_eq!(vote(&p, 4), "this vote costs 4 stamps");
        let doubled = PolicyInfo {
            vote_cost: 2,
            ..policy()
        };
        assert_eq!(vote_number(&doubled, 6), Some(2));
        assert_eq!(vote_number(&doubled, 5), None);
        let flat = PolicyInfo {
            vote_pricing: "flat".into(),
            ..policy()
        };
        assert_eq!(vote(&flat, 1), "this vote costs 1 stamp");
    }
}
