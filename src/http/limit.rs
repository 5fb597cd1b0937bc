//! Per-client rate limits: account creation, purchases, and failed authentication, keyed by
//! the peer's IP address. On by default; each limit is a count per minute, 0 turns it off.
//!
//! Failed authentication is counted after the fact: every 401 answer costs the client one unit
//! of its budget, and a client out of budget gets 429 on every request that carries an
//! `Authorization` header until the budget refills. This stops API-key and admin-token guessing
//! without slowing clients that authenticate correctly.

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

fn limiter(per_minute: u32) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

pub struct Limiter {
    accounts: Option<DefaultKeyedRateLimiter<IpAddr>>,
    purchases: Option<DefaultKeyedRateLimiter<IpAddr>>,
    auth_failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Clients out of failed-authentication budget, until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    requests: std::sync::atomic::AtomicU64,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter {
            accounts: limiter(limits.accounts_per_minute),
            purchases: limiter(limits.purchases_per_minute),
            auth_failures: limiter(limits.auth_failures_per_minute),
            blocked: Mutex::new(HashMap::new()),
            requests: std::sync::atomic::AtomicU64::new(0),
        }
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

    fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let blocked = self.blocked.lock().ok()?;
        let until = blocked.get(&ip)?;
        until.checked_duration_since(Instant::now())
    }

    fn record_failure(&self, ip: IpAddr) {
        let Some(limiter) = &self.auth_failures else {
            return;
        };
        if let Err(not_until) = limiter.check_key(&ip) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            if let Ok(mut blocked) = self.blocked.lock() {
                if blocked.len() >= BLOCKED_CLIENTS_MAX {
                    let now = Instant::now();
                    blocked.retain(|_, until| *until > now);
                }
                if blocked.len() < BLOCKED_CLIENTS_MAX {
                    blocked.insert(ip, Instant::now() + wait);
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
        for limiter in [&self.accounts, &self.purchases, &self.auth_failures]
            .into_iter()
            .flatten()
        {
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
    let Some(ip) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(req).await;
    };
    limiter.sweep();
    let authenticated = req.headers().contains_key(header::AUTHORIZATION);
    if authenticated {
        if let Some(wait) = limiter.blocked_for(ip) {
            return Error::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }
            .into_response();
        }
    }
    if req.method() == Method::POST {
        let check = match req.uri().path() {
            "/v1/accounts" => Limiter::check(&limiter.accounts, ip),
            "/v1/stamps/purchase" => Limiter::check(&limiter.purchases, ip),
            _ => Ok(()),
        };
        if let Err(e) = check {
            return e.into_response();
        }
    }
    let response = next.run(req).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        limiter.record_failure(ip);
    }
    response
}
