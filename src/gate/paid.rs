//! A priced request: read its stamps, hold them, forward, then capture or release by the
//! site's status, and only then answer the member (GATE.md, "`pennypost gate`").
//!
//! Must not: hold before the body is known to fit, forward before the hold, answer before the
//! capture or release, or let the site see the hold id (it gets its SHA-256, the receipt).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde_json::{json, Map};
use sha2::{Digest as _, Sha256};

use super::answer::{self, PaymentRequired};
use super::mint::MintError;
use super::stamps::{self, StampsError};
use super::{count, proxy, upstream_failure, Gate};
use crate::api::ErrorCode;
use crate::telemetry;

/// The context's version tag: the first word of every hold's context.
pub const CONTEXT_VERSION: &str = "gate/v1";
/// The first wait between two capture attempts the mint did not answer; it doubles up to
/// [`CAPTURE_RETRY_MAX`].
const CAPTURE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two capture attempts.
const CAPTURE_RETRY_MAX: Duration = Duration::from_secs(2);

/// The hold's context: `gate/v1 <METHOD> <host> <hex SHA-256 of path and query> <hex SHA-256
/// of the forwarded body>`.
pub fn context(method: &str, host: &str, path_and_query: &str, body: &[u8]) -> String {
    format!(
        "{CONTEXT_VERSION} {method} {} {} {}",
        host.to_ascii_lowercase(),
        hex::encode(Sha256::digest(path_and_query.as_bytes())),
        hex::encode(Sha256::digest(body))
    )
}

/// The receipt the site gets for a hold: the hex SHA-256 of its id (the id itself would let
/// the site release what the member paid).
pub fn receipt(hold_id: &str) -> String {
    hex::encode(Sha256::digest(hold_id.as_bytes()))
}

fn stamps_error(error: StampsError) -> Response {
    match error {
        StampsError::Malformed(detail) => answer::plain(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest.as_str(),
            &detail,
        ),
        StampsError::MalformedBody(detail) => answer::plain(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest.as_str(),
            &detail,
        ),
        StampsError::Invalid { code, detail } => {
            answer::plain(StatusCode::UNPROCESSABLE_ENTITY, code, &detail)
        }
    }
}

/// Reads a priced body whole within `timeout` (408 `request_timeout`: a client that trickles
/// its body must not keep a connection forever), refusing one over `max` bytes (413
/// `payload_too_large`) before anything else happens.
async fn read_body(
    body: Body,
    declared: Option<u64>,
    max: u64,
    timeout: Duration,
) -> Result<Bytes, Response> {
    let too_large = || {
        answer::plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge.as_str(),
            &format!("a priced request's body may be at most {max} bytes"),
        )
    };
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let read = tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect());
    match read.await {
        Err(_) => Err(answer::plain(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request's body did not arrive in time",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(answer::plain(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest.as_str(),
            "the request's body broke off",
        )),
    }
}

/// Handles a request priced by route `index`.
pub async fn handle(gate: &Gate, index: usize, member: IpAddr, request: Request) -> Response {
    let route = &gate.config.routes[index];
    let rule = route.label.as_str();
    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match read_body(
        body,
        declared,
        gate.config.max_body_bytes,
        gate.config.upstream_timeout,
    )
    .await
    {
        Ok(body) => body,
        Err(refusal) => {
            count(rule, "refused");
            return refusal;
        }
    };
    let found = async {
        let mut found = stamps::from_headers(&parts.headers)?;
        let body = match stamps::form_kind(&parts.headers)? {
            Some(kind) => stamps::take_from_form(&kind, body, &mut found).await?,
            None => body,
        };
        Ok::<_, StampsError>((found, body))
    }
    .await;
    let (found, body) = match found {
        Ok(pair) => pair,
        Err(e) => {
            count(rule, "refused");
            return stamps_error(e);
        }
    };
    let required = route.stamps;
    if (found.len() as u64) < required {
        count(rule, "payment_required");
        return answer::payment_required(PaymentRequired {
            required,
            given: found.len(),
            mint: &gate.config.mint_public_url,
            wallet_url: &gate.config.wallet_url,
            html: answer::wants_html(&parts.headers),
        });
    }
    if found.len() as u64 > required {
        count(rule, "refused");
        let mut extra = Map::new();
        extra.insert("required".into(), json!(required));
        return answer::problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::WrongStampCount.as_str(),
            &format!(
                "this action costs {} and the request carried {}: send exactly the price",
                answer::stamps(required),
                found.len()
            ),
            extra,
        );
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or_default()
        .to_string();
    let context = context(parts.method.as_str(), &host, &path_and_query, &body);
    let ttl = gate.config.hold_ttl;
    let held_at = Instant::now();
    let hold = match gate
        .mint
        .hold(&found, &context, ttl.as_secs(), member)
        .await
    {
        Ok(hold) => hold,
        Err(e) => {
            if let MintError::Unavailable(why) = &e {
                tracing::warn!(error = %why, "no hold: the mint cannot be used");
                count(rule, "mint_unavailable");
            } else {
                count(rule, "refused");
            }
            return answer::from_mint(e);
        }
    };
    let expires = held_at + ttl;
    tracing::debug!(count = hold.count, rule, "stamps held");
    proxy::clean_request_headers(&mut parts.headers, member, false);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        "pennypost-paid",
        HeaderValue::from_str(&required.to_string()).unwrap_or(HeaderValue::from_static("0")),
    );
    if let Ok(value) = HeaderValue::from_str(&receipt(&hold.id)) {
        parts.headers.insert("pennypost-receipt", value);
    }
    let mut upstream_request = Request::from_parts(parts, Body::from(body));
    match proxy::target(&gate.config.upstream, &path_and_query) {
        Ok(to) => proxy::point(&mut upstream_request, to),
        Err(e) => {
            release(gate, &hold.id, member).await;
            count(rule, "refused");
            return answer::plain(StatusCode::BAD_REQUEST, ErrorCode::BadRequest.as_str(), &e);
        }
    }
    let started = Instant::now();
    let sent = gate
        .forwarder
        .send(upstream_request, gate.config.upstream_timeout)
        .await;
    metrics::histogram!(telemetry::GATE_UPSTREAM, "rule" => rule.to_string())
        .record(started.elapsed().as_secs_f64());
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            release(gate, &hold.id, member).await;
            count(rule, "upstream_failed");
            return upstream_failure(e);
        }
    };
    if !route.capture.captures(response.status().as_u16()) {
        release(gate, &hold.id, member).await;
        count(rule, "released");
        return proxy::relay(response);
    }
    match capture(gate, &hold.id, member, expires).await {
        Ok(()) => {
            count(rule, "paid");
            proxy::relay(response)
        }
        Err(e) => {
            // The site did the work but the stamps could not be spent (revoked meanwhile, or
            // the mint away until the hold expired): the member is told so, not given the
            // site's answer as if paid.
            tracing::warn!(rule, "the site answered but the capture failed: {e:?}");
            count(rule, "refused");
            answer::from_mint(e)
        }
    }
}

/// Captures the hold, trying again while the mint does not answer, until the hold expires.
async fn capture(
    gate: &Gate,
    hold_id: &str,
    member: IpAddr,
    expires: Instant,
) -> Result<(), MintError> {
    let mut wait = CAPTURE_RETRY_FIRST;
    loop {
        match gate.mint.capture(hold_id, member).await {
            Ok(()) => return Ok(()),
            Err(MintError::Unavailable(why)) => {
                if Instant::now() + wait >= expires {
                    return Err(MintError::Unavailable(format!(
                        "the hold expired before the mint took the capture: {why}"
                    )));
                }
                tracing::warn!(error = %why, "capture not answered; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(CAPTURE_RETRY_MAX);
            }
            Err(refused) => return Err(refused),
        }
    }
}

/// Releases the hold; if the mint does not answer, the hold expires by itself.
async fn release(gate: &Gate, hold_id: &str, member: IpAddr) {
    if let Err(e) = gate.mint.release(hold_id, member).await {
        tracing::warn!("release failed (the hold will expire by itself): {e:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_names_the_request_exactly() {
        let c = context("POST", "Forum.Example", "/t/1/posts?x=1", b"text=hi");
        let words: Vec<&str> = c.split(' ').collect();
        assert_eq!(words.len(), 5);
        assert_eq!(&words[..3], ["gate/v1", "POST", "forum.example"]);
        assert_eq!(words[3], hex::encode(Sha256::digest(b"/t/1/posts?x=1")));
        assert_eq!(words[4], hex::encode(Sha256::digest(b"text=hi")));
        assert_ne!(receipt("abc"), "abc");
        assert_eq!(receipt("abc").len(), 64);
    }
}
