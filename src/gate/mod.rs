//! `pennypost gate`: a reverse proxy that puts stamps in front of an existing site (GATE.md).
//!
//! The request loop is short (Aperture's `proxy/proxy.go`): normalise the path, find the
//! price, then either pass the request through untouched (streaming both ways, upgrades
//! included) or pay for it: read the stamps, hold them at the mint, forward, and capture or
//! release by the site's status before the member gets the answer.
//!
//! - `config`: `gate.toml`, checked and compiled once at start.
//! - `path`: normalisation and route patterns.
//! - `stamps`: the stamps of a header or form body, cut out of what is forwarded.
//! - `mint`: the hold, capture and release calls.
//! - `proxy`: the hyper client, header hygiene, upgrades.
//! - `paid`: the priced flow.
//! - `own`: `/.pennypost/` (routes, the mint's member routes, `gate.js`).
//! - `answer`: problem+json, the 402 answer and page.
//!
//! Must not: forward a priced request before its stamps are held, answer a priced request
//! before its hold is captured or released, or forward anything under `/.pennypost/`.

pub mod answer;
pub mod config;
pub mod mint;
pub mod own;
pub mod paid;
pub mod path;
pub mod proxy;
pub mod stamps;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;
use tokio::net::TcpListener;

use crate::api::ErrorCode;
use crate::telemetry;
use config::GateConfig;
use mint::MintClient;
use proxy::{ForwardError, Forwarder};

/// The most client connections open at once; more wait to be accepted.
pub const CONNECTIONS_MAX: usize = 10_000;
/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The running gate: its configuration and clients.
pub struct Gate {
    pub config: GateConfig,
    pub forwarder: Forwarder,
    pub mint: MintClient,
}

impl Gate {
    pub fn new(config: GateConfig) -> Result<Gate, String> {
        let mint = MintClient::new(&config.mint.to_string())?;
        Ok(Gate {
            config,
            forwarder: Forwarder::new(),
            mint,
        })
    }
}

/// Counts one answered request.
fn count(rule: &str, outcome: &'static str) {
    metrics::counter!(telemetry::GATE_REQUESTS, "rule" => rule.to_string(), "outcome" => outcome)
        .increment(1);
}

/// The router: every request goes to [`handle`], which decides by the normalised path.
pub fn app(gate: Arc<Gate>) -> Router {
    Router::new().fallback(handle).with_state(gate)
}

async fn handle(
    State(gate): State<Arc<Gate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if request.method() == Method::CONNECT {
        count("free", "refused");
        return answer::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed.as_str(),
            "the gate is not a forward proxy",
        );
    }
    let normalised = match path::normalise(request.uri().path()) {
        Ok(n) => n,
        Err(e) => {
            count("free", "refused");
            return answer::plain(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest.as_str(),
                &e.to_string(),
            );
        }
    };
    if normalised.is_gate_own() {
        count("gate", "own");
        return own::handle(&gate, peer.ip(), &normalised, request).await;
    }
    match gate.config.price(request.method(), &normalised) {
        Some((index, _)) => paid::handle(&gate, index, peer.ip(), request).await,
        None => pass(&gate, peer.ip(), request).await,
    }
}

/// Forwards an unpriced request as it is (but its headers' hygiene), streaming both ways;
/// joins an upgrade end to end.
async fn pass(gate: &Gate, member: std::net::IpAddr, mut request: Request) -> Response {
    let upgrade = proxy::wants_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    proxy::clean_request_headers(request.headers_mut(), member, upgrade);
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let to = match proxy::target(&gate.config.upstream, &path_and_query) {
        Ok(to) => to,
        Err(e) => {
            count("free", "refused");
            return answer::plain(StatusCode::BAD_REQUEST, ErrorCode::BadRequest.as_str(), &e);
        }
    };
    proxy::point(&mut request, to);
    let started = Instant::now();
    let sent = gate
        .forwarder
        .send(request, gate.config.upstream_timeout)
        .await;
    metrics::histogram!(telemetry::GATE_UPSTREAM, "rule" => "free")
        .record(started.elapsed().as_secs_f64());
    match sent {
        Ok(mut response) => {
            count("free", "passed");
            if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) =
                (client_upgrade, response.status())
            {
                proxy::join_upgrade(client, &mut response);
            }
            proxy::relay(response)
        }
        Err(e) => {
            count("free", "upstream_failed");
            upstream_failure(e)
        }
    }
}

/// 504 `upstream_timeout` or 502 `upstream_unreachable`.
pub fn upstream_failure(error: ForwardError) -> Response {
    match error {
        ForwardError::TimedOut => answer::plain(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the site did not answer in time",
        ),
        ForwardError::Failed(why) => {
            tracing::warn!(error = %why, "the upstream cannot be reached");
            answer::plain(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "the site cannot be reached",
            )
        }
    }
}

/// Serves the gate on `listener` until `shutdown` completes, then drains in-flight requests
/// for at most [`SHUTDOWN_GRACE`]. Like `http::run`, every connection is bounded (at most
/// [`CONNECTIONS_MAX`], headers within [`HEADER_READ_TIMEOUT`]), and upgrades are served: the
/// same accept loop, [`crate::http::accept::serve`].
pub async fn run(
    listener: TcpListener,
    gate: Arc<Gate>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let bounds = crate::http::accept::Bounds {
        connections_max: CONNECTIONS_MAX,
        header_read_timeout: HEADER_READ_TIMEOUT,
        shutdown_grace: SHUTDOWN_GRACE,
    };
    crate::http::accept::serve(listener, app(gate), bounds, shutdown).await
}
