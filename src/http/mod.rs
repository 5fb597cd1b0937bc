//! The HTTP layer: the router, its middleware (body limit, time limit, panic guard, tracing),
//! and the server loop with graceful shutdown.
//!
//! Handlers are thin (`routes`) over the body types of `crate::api`; callers are checked by
//! extractors (`auth`), both over the shared state (`state`); errors become problem+json in
//! one place (`problem`); the OpenAPI document is generated from both and served by `openapi`,
//! which the handlers do not import. Every answer is counted and timed by route
//! template for the metrics (`crate::telemetry`), a no-op unless `--metrics-listen` is set.

pub mod accept;
pub mod auth;
pub mod limit;
pub mod openapi;
pub mod payments;
pub mod problem;
pub mod routes;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

use crate::api::ErrorCode;
use crate::error::Error;
use crate::service::App;
use problem::{problem, BodyLimit};
use state::AppState;

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE_SECS: u64 = 10;

/// Builds the router over a service.
pub fn app(service: Arc<App>) -> Router {
    let limits = service.limits().clone();
    let body_limit = limits.request_body_bytes_max;
    // Webhook bodies have a limit of their own: dispute events carry evidence.
    let webhook_limit = service.payments.webhook_body_max_bytes();
    let webhook_body =
        |handler: axum::routing::MethodRouter<AppState>| -> axum::routing::MethodRouter<AppState> {
            handler
                .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(webhook_limit))
                .layer::<_, std::convert::Infallible>(axum::Extension(BodyLimit(webhook_limit)))
        };
    let request_timeout = Duration::from_secs(limits.request_timeout_secs);
    let limiter = Arc::new(limit::Limiter::new(
        limits.rate,
        limits.trusted_proxies.clone(),
    ));
    Router::new()
        .route("/", get(routes::index))
        .route("/app.js", get(routes::app_js))
        .route("/healthz", get(routes::healthz))
        .route("/v1/keys", get(routes::keys))
        .route("/v1/accounts", post(routes::create_account))
        .route("/v1/account", get(routes::account))
        .route(
            "/v1/admin/accounts/{account_id}/credit",
            post(routes::credit),
        )
        .route("/v1/admin/accounts/{account_id}/debit", post(routes::debit))
        .route("/v1/prices", get(routes::prices))
        .route("/v1/stamps/purchase", post(routes::purchase))
        .route("/v1/quote", post(routes::quote))
        .route("/v1/stamps/verify", post(routes::verify))
        .route("/v1/stamps/redeem", post(routes::redeem))
        .route("/v1/stamps/hold", post(routes::hold))
        .route("/v1/holds/{hold_id}", get(routes::get_hold))
        .route("/v1/holds/{hold_id}/capture", post(routes::capture_hold))
        .route("/v1/holds/{hold_id}/release", post(routes::release_hold))
        .route("/v1/stamps/{stamp_id}", get(routes::stamp))
        .route(
            "/v1/posts",
            post(routes::create_post).get(routes::list_posts),
        )
        .route("/v1/posts/{post_id}", get(routes::get_post))
        .route("/v1/posts/{post_id}/votes", post(routes::vote))
        .route("/v1/ledger/checkpoint", get(routes::ledger_checkpoint))
        .route("/v1/ledger/key", get(routes::ledger_key))
        .route("/v1/ledger/entries", get(routes::ledger_entries))
        .route("/v1/ledger/proof/inclusion", get(routes::inclusion_proof))
        .route(
            "/v1/ledger/proof/consistency",
            get(routes::consistency_proof),
        )
        .route("/v1/audit", get(routes::audit))
        .route("/v1/admin/backup", post(routes::backup))
        .route("/v1/payments/providers", get(payments::providers))
        .route("/v1/payments", post(payments::create).get(payments::list))
        .route("/v1/payments/{payment_id}", get(payments::get))
        .route(
            "/v1/payments/webhooks/stripe",
            webhook_body(post(payments::stripe_webhook)),
        )
        .route(
            "/v1/payments/webhooks/btcpay",
            webhook_body(post(payments::btcpay_webhook)),
        )
        .route(
            "/pay/{payment_id}",
            get(payments::pay_page).post(payments::pay),
        )
        .route("/v1/admin/payments", get(payments::admin_list))
        .route(
            "/v1/admin/payments/{payment_id}/settle",
            post(payments::admin_settle),
        )
        .route("/openapi.json", get(openapi::serve))
        .route("/checkpoint", get(routes::ledger_checkpoint))
        .route("/tile/{*path}", get(routes::tile))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(move |req, next| {
            time_limit(req, next, request_timeout)
        }))
        .layer(middleware::from_fn(move |req, next| {
            limit::rate_limit(limiter.clone(), req, next)
        }))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(BodyLimit(body_limit)))
        // Request logs at debug level: method, path (ids only), status, latency. Headers are
        // never logged (they carry API keys and the admin token).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().include_headers(false))
                .on_response(DefaultOnResponse::new().include_headers(false)),
        )
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::InternalError,
                "the server hit an internal error; it has been logged",
            )
        }))
        // Outermost, so it times and counts every answer, the panic guard's included.
        .layer(middleware::from_fn(crate::telemetry::track_requests))
        .with_state::<()>(service as AppState)
}

async fn not_found() -> Error {
    Error::NotFound("route")
}

async fn method_not_allowed() -> Response {
    problem(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// Cuts off a request (reading its body included) that takes longer than the limit, so a slow
/// client cannot hold a connection's handler forever.
async fn time_limit(req: Request, next: Next, limit: Duration) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => problem(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            "the request took too long",
        ),
    }
}

/// Serves the app on `listener` until `shutdown` completes, then drains in-flight requests for
/// at most [`SHUTDOWN_GRACE_SECS`]. Every connection is bounded by the limits
/// (`connections_max`, `header_read_timeout_secs`): see [`accept::serve`].
pub async fn run(
    listener: TcpListener,
    service: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = service.limits().clone();
    let bounds = accept::Bounds {
        connections_max: limits.connections_max,
        header_read_timeout: Duration::from_secs(limits.header_read_timeout_secs),
        shutdown_grace: Duration::from_secs(SHUTDOWN_GRACE_SECS),
    };
    accept::serve(listener, app(service), bounds, shutdown).await
}
