//! Per-client rate limits: account creation, purchases (new payments share their budget),
//! and failed authentication, keyed by the client's IP address. On by default; each limit is
//! a count per minute, 0 turns it off.
//!
//! The client is the peer, unless the peer is a trusted reverse proxy (`--trusted-proxy`):
//! then it is the last address in `X-Forwarded-For` that is not itself a trusted proxy (the
//! right-most entries were added by our own proxies; anything left of the first untrusted one
//! was written by the client and proves nothing). A header that does not parse counts as
//! the proxy itself, so a broken or hostile header can only spend the proxy's budget.
//!
//! Failed authentication is counted after the fact: every 401 answer costs the client one unit
//! of its budget, and a client out of budget gets 429 on every request that carries an
//! `Authorization` header until the budget refills, the right key included (letting the right
//! key through would tell a guesser when it guessed right). The 429 says that failed
//! authentications caused it. This stops API-key and admin-token guessing without slowing
//! clients that authenticate correctly.
//!
//! API keys and the admin token have a budget each ([`Realm`]): the operator's routes
//! (`/v1/admin/…`) count and check the admin budget, every other route the API-key budget. So
//! wrong API keys from one address (a member's broken script, many members behind one proxy)
//! never lock the operator out, while admin-token guessing is still limited.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimits;
use crate::error::Error;

/// Clients remembered by the failed-authentication block list before old entries are swept.
const BLOCKED_CLIENTS_MAX: usize = 100_000;
/// Requests between sweeps of idle limiter state, so memory stays bounded under a scan.
const SWEEP_EVERY_REQUESTS: u64 = 10_000;

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// Whose credentials a request carries, by its route: each has its own failure budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Realm {
    /// Members' API keys: every route but the operator's.
    ApiKey,
    /// The admin token: the routes under `/v1/admin/`.
    Admin,
}

impl Realm {
    fn of(path: &str) -> Realm {
        if path.starts_with("/v1/admin/") {
            Realm::Admin
        } else {
            Realm::ApiKey
        }
    }

    /// What the client should check, in the words of the 429.
    pub fn credential(self) -> &'static str {
        match self {
            Realm::ApiKey => "API key",
            Realm::Admin => "admin token",
        }
    }
}

pub struct Limiter {
    accounts: Option<DefaultKeyedRateLimiter<IpAddr>>,
    purchases: Option<DefaultKeyedRateLimiter<IpAddr>>,
    auth_failures: Option<DefaultKeyedRateLimiter<(IpAddr, Realm)>>,
    /// The failed authentications a client may have per minute, for the 429's words.
    auth_failures_per_minute: u32,
    /// Clients out of failed-authentication budget in a realm, until when.
    blocked: Mutex<HashMap<(IpAddr, Realm), Instant>>,
    requests: std::sync::atomic::AtomicU64,
    /// Peers whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<IpAddr>,
}

impl Limiter {
    pub fn new(limits: RateLimits, trusted_proxies: Vec<IpAddr>) -> Limiter {
        Limiter {
            accounts: limiter(limits.accounts_per_minute),
            purchases: limiter(limits.purchases_per_minute),
            auth_failures: limiter(limits.auth_failures_per_minute),
            auth_failures_per_minute: limits.auth_failures_per_minute,
            blocked: Mutex::new(HashMap::new()),
            requests: std::sync::atomic::AtomicU64::new(0),
            trusted_proxies,
        }
    }

    /// The client a request counts against (see the module comment).
    fn client(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        client_ip(peer, headers, &self.trusted_proxies)
    }

    fn check(limiter: &Option<DefaultKeyedRateLimiter<IpAddr>>, ip: IpAddr) -> Result<(), Error> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter
            .check_key(&ip)
            .map_err(|not_until| Error::RateLimited {
                retry_after_secs: not_until
                    .wait_time_from(DefaultClock::default().now())
                    .as_secs()
                    .max(1),
            })
    }

    fn blocked_for(&self, client: (IpAddr, Realm)) -> Option<Duration> {
        let blocked = self.blocked.lock().ok()?;
        let until = blocked.get(&client)?;
        until.checked_duration_since(Instant::now())
    }

    fn record_failure(&self, client: (IpAddr, Realm)) {
        let Some(limiter) = &self.auth_failures else {
            return;
        };
        if let Err(not_until) = limiter.check_key(&client) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            if let Ok(mut blocked) = self.blocked.lock() {
                if blocked.len() >= BLOCKED_CLIENTS_MAX {
                    let now = Instant::now();
                    blocked.retain(|_, until| *until > now);
                }
                if blocked.len() < BLOCKED_CLIENTS_MAX {
                    blocked.insert(client, Instant::now() + wait);
                }
            }
        }
    }

    fn sweep(&self) {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % SWEEP_EVERY_REQUESTS != 0 {
            return;
        }
        for limiter in [&self.accounts, &self.purchases].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.auth_failures {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Ok(mut blocked) = self.blocked.lock() {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
    }
}

/// The middleware: checks the limits before the handler and counts failed authentication
/// after it. Requests without a known peer address (in-process tests) are not limited.
pub async fn rate_limit(limiter: std::sync::Arc<Limiter>, req: Request, next: Next) -> Response {
    let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(req).await;
    };
    let ip = limiter.client(peer, req.headers());
    let realm = Realm::of(req.uri().path());
    limiter.sweep();
    let authenticated = req.headers().contains_key(header::AUTHORIZATION);
    if authenticated {
        if let Some(wait) = limiter.blocked_for((ip, realm)) {
            return Error::AuthFailuresLimited {
                retry_after_secs: wait.as_secs().max(1),
                failures_per_minute: limiter.auth_failures_per_minute,
                credential: realm.credential(),
            }
            .into_response();
        }
    }
    if req.method() == Method::POST {
        let check = match req.uri().path() {
            "/v1/accounts" => Limiter::check(&limiter.accounts, ip),
            // A new payment calls the provider's API: it shares the purchases' budget.
            "/v1/stamps/purchase" | "/v1/payments" => Limiter::check(&limiter.purchases, ip),
            _ => Ok(()),
        };
        if let Err(e) = check {
            return e.into_response();
        }
    }
    let response = next.run(req).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        limiter.record_failure((ip, realm));
    }
    response
}

/// Most `X-Forwarded-For` entries looked at: a longer chain counts as the proxy itself.
const FORWARDED_HOPS_MAX: usize = 16;

fn client_ip(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        hops.extend(text.split(',').map(str::trim));
    }
    if hops.len() > FORWARDED_HOPS_MAX {
        return peer;
    }
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            return peer;
        };
        if !trusted.contains(&ip) {
            return ip;
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let proxy = ip("10.0.0.1");
        let trusted = [proxy];
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(client_ip(proxy, &headers, &trusted), ip("203.0.113.7"));
        // From anyone else the header is the client's own claim, and ignored.
        assert_eq!(
            client_ip(ip("198.51.100.2"), &headers, &trusted),
            ip("198.51.100.2")
        );
        assert_eq!(client_ip(proxy, &headers, &[]), proxy);
    }

    #[test]
    fn the_client_is_the_last_untrusted_hop() {
        let (edge, inner) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let trusted = [edge, inner];
        // The client forged the first entry; our proxies appended the rest.
        let headers = forwarded(&["1.2.3.4, 203.0.113.7, 10.0.0.1"]);
        assert_eq!(client_ip(inner, &headers, &trusted), ip("203.0.113.7"));
        // The same chain split over two header lines.
        let headers = forwarded(&["1.2.3.4", "203.0.113.7, 10.0.0.1"]);
        assert_eq!(client_ip(inner, &headers, &trusted), ip("203.0.113.7"));
        // IPv6 clients.
        let headers = forwarded(&["2001:db8::5"]);
        assert_eq!(client_ip(edge, &headers, &trusted), ip("2001:db8::5"));
    }

    #[test]
    fn a_missing_broken_or_overlong_header_counts_as_the_proxy() {
        let proxy = ip("10.0.0.1");
        let trusted = [proxy];
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        for bad in ["not-an-ip", "203.0.113.7:443", "", "203.0.113.7,,"] {
            assert_eq!(
                client_ip(proxy, &forwarded(&[bad]), &trusted),
                proxy,
                "{bad:?}"
            );
        }
        let long = vec!["203.0.113.7"; FORWARDED_HOPS_MAX + 1].join(",");
        assert_eq!(client_ip(proxy, &forwarded(&[&long]), &trusted), proxy);
        // Only trusted hops: nobody else to blame.
        assert_eq!(client_ip(proxy, &forwarded(&["10.0.0.1"]), &trusted), proxy);
    }
}
