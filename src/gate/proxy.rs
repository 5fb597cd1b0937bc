//! Forwarding through a hyper client (axum's `examples/reverse-proxy` is the model): header
//! hygiene in both directions, streaming bodies, and protocol upgrades (WebSocket) joined end
//! to end. No HTTP is written or parsed here by hand.
//!
//! Must not: pass a client's `Pennypost-*` or method-override header upstream, or a hop-by-hop
//! header in either direction (but the `Upgrade` of an upgrade).

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Headers that would let a client change the method the site sees (Rails, Express's
/// method-override, ASP.NET): dropped, so the site sees the method the gate priced.
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// How long an idle pooled connection to the upstream is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// Why a request could not be forwarded.
#[derive(Debug)]
pub enum ForwardError {
    /// No answer head within the upstream timeout.
    TimedOut,
    /// The connection failed or broke before an answer head.
    Failed(String),
}

/// The gate's HTTP/1.1 client to its upstream (and to the mint, for `/.pennypost/mint/`).
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Body>,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl Forwarder {
    pub fn new() -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Forwarder { client }
    }

    /// Sends `request` (already pointed at its target) and waits at most `timeout` for the
    /// answer's head. The body of the answer streams.
    pub async fn send(
        &self,
        request: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, ForwardError> {
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => Err(ForwardError::TimedOut),
            Ok(Err(e)) => Err(ForwardError::Failed(e.to_string())),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// Whether a request asks to switch protocols (a WebSocket handshake).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes the hop-by-hop headers and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The headers of a client's request as they go upstream: hop-by-hop, `Pennypost-*` and
/// method-override headers dropped, `Expect` dropped (the gate reads bodies itself), the
/// member's address appended to `X-Forwarded-For`, and the `Upgrade` of an upgrade kept.
pub fn clean_request_headers(headers: &mut HeaderMap, member: IpAddr, upgrade: bool) {
    let upgrade_to = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    let own: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("pennypost-"))
        .cloned()
        .collect();
    for name in own {
        headers.remove(name);
    }
    for name in METHOD_OVERRIDE_HEADERS {
        headers.remove(name);
    }
    headers.remove(header::EXPECT);
    let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {member}"),
        _ => member.to_string(),
    };
    headers.remove("x-forwarded-for");
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert("x-forwarded-for", value);
    }
    if let (true, Some(protocol)) = (upgrade, upgrade_to) {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The request's URI at `base` (`http://host:port`), with `path_and_query`.
pub fn target(base: &Uri, path_and_query: &str) -> Result<Uri, String> {
    let authority = base
        .authority()
        .map(|a| a.as_str())
        .ok_or("the base has no host")?;
    format!("http://{authority}{path_and_query}")
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| e.to_string())
}

/// Prepares `request` for the upstream: its target, HTTP/1.1, a `Host` if the client sent none
/// (HTTP/2's `:authority`).
pub fn point(request: &mut Request<Body>, to: Uri) {
    if !request.headers().contains_key(header::HOST) {
        if let Some(value) = request
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(header::HOST, value);
        }
    }
    *request.uri_mut() = to;
    *request.version_mut() = Version::HTTP_11;
}

/// The upstream's answer as it goes to the client: hop-by-hop headers dropped (but the
/// handshake of an upgrade), the body streaming, in the gate's own HTTP/1.1 (an upstream that
/// answers HTTP/1.0 would otherwise make the gate close every member's connection after one
/// answer).
pub fn relay<B>(mut response: Response<B>) -> Response<Body>
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        strip_hop_by_hop(response.headers_mut());
    }
    *response.version_mut() = Version::HTTP_11;
    response.map(Body::new)
}

/// Joins the two halves of an upgrade: once both sides have switched, bytes are copied both
/// ways until either closes.
pub fn join_upgrade(client: hyper::upgrade::OnUpgrade, upstream: &mut Response<Incoming>) {
    let upstream = hyper::upgrade::on(upstream);
    tokio::spawn(async move {
        match tokio::try_join!(client, upstream) {
            Ok((client, upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(error = %e, "an upgraded connection ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "an upgrade did not complete"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_headers_that_could_dodge_or_spoof_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("pennypost-paid", "1"),
            ("pennypost-receipt", "x"),
            ("pennypost-stamps", "pp1.x"),
            ("x-http-method-override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("x-method-override", "DELETE"),
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("x-forwarded-for", "10.0.0.9"),
            ("accept", "text/html"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        clean_request_headers(&mut headers, "192.0.2.1".parse().expect("ip"), false);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept", "x-forwarded-for"], "{headers:?}");
        assert_eq!(headers["x-forwarded-for"], "10.0.0.9, 192.0.2.1");
    }

    #[test]
    fn an_http_1_0_answer_goes_out_as_http_1_1() {
        let mut answer = Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")));
        *answer.version_mut() = Version::HTTP_10;
        answer
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        let relayed = relay(answer);
        assert_eq!(relayed.version(), Version::HTTP_11);
        assert!(!relayed.headers().contains_key(header::CONNECTION));
    }

    #[test]
    fn an_upgrade_keeps_its_handshake() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(wants_upgrade(&headers));
        clean_request_headers(&mut headers, "192.0.2.1".parse().expect("ip"), true);
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
    }
}
