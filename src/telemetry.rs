//! Prometheus metrics (`--metrics-listen ADDR`): the names of every series, the recorder, the
//! request-counting middleware, and the small server that answers `GET /metrics`.
//!
//! The counting goes through the `metrics` facade: its macros are no-ops until a recorder is
//! installed, so a server started without `--metrics-listen` (and every test that embeds the
//! service) pays nothing. With it, [`install`] puts `metrics-exporter-prometheus` behind the
//! facade and [`serve`] renders its exposition; nothing here writes the text format by hand.
//!
//! Naming: every name starts with `pennypost_`, counters end in `_total`, durations are
//! `_seconds` histograms. No label ever holds an account, stamp or post id: routes are labelled
//! with the router's template (`/v1/posts/{post_id}`), and other labels take a few fixed values.
//!
//! Must not: take a lock or allocate much on the request path (one counter and one histogram
//! per request, each a lock-free update in the exporter's registry).

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `method`, `route` (the router's template, `unmatched` for a path no
/// route knows) and `status`.
pub const HTTP_REQUESTS: &str = "pennypost_http_requests_total";
/// Time from the request's arrival to its answer, by the same labels.
pub const HTTP_DURATION: &str = "pennypost_http_request_duration_seconds";
/// Stamps sold by new purchases (a replayed purchase sells nothing).
pub const STAMPS_SOLD: &str = "pennypost_stamps_sold_total";
/// Stamps cancelled by spends, by `action` (`post`, `vote`, `redeem`; a capture is a redeem),
/// not by revokes.
pub const STAMPS_SPENT: &str = "pennypost_stamps_spent_total";
/// Commands per group-commit batch (one transaction and one sync each).
pub const COMMIT_BATCH: &str = "pennypost_commit_batch_size";
/// Time of one batch's durable sync (sled's flush and the fdatasync).
pub const COMMIT_SYNC: &str = "pennypost_commit_sync_seconds";
/// Time of one batch's transaction: on sled, the rules over the trees in memory; on
/// PostgreSQL, the wait for the ledger lock, the round trips and the commit (how long the
/// servers sharing the database take turns).
pub const COMMIT_APPLY: &str = "pennypost_commit_apply_seconds";
/// Times the database was found unavailable (a refused or lost connection, no free connection
/// in time, a statement past its timeout): each a request answered 503, or a background check
/// that tries again later. Only with `--database`; always 0 on sled.
pub const DATABASE_UNAVAILABLE: &str = "pennypost_database_unavailable_total";
/// Batches whose transaction or sync failed; after the first the writer stops (503).
pub const COMMIT_FAILURES: &str = "pennypost_commit_failures_total";
/// 1 once the writer stopped after a storage failure (every change answers 503 until a
/// restart), 0 while it takes changes.
pub const WRITER_STOPPED: &str = "pennypost_writer_stopped";
/// Entries in the ledger that are durable.
pub const LEDGER_SIZE: &str = "pennypost_ledger_size";
/// Entries the server's own ledger check (`GET /v1/audit`) is behind the durable ledger.
pub const AUDIT_LAG: &str = "pennypost_audit_lag";
/// Signatures per batch of the stamp verifier.
pub const VERIFY_BATCH: &str = "pennypost_verify_batch_size";
/// Backups taken through `POST /v1/admin/backup`, by `outcome` (`ok`, `failed`).
pub const BACKUPS: &str = "pennypost_backups_total";
/// Connections of a database pool (with `--database`), by `pool` (`read`, `writer`) and
/// `state` (`in_use`, `idle`); read when the metrics are scraped.
pub const DATABASE_CONNECTIONS: &str = "pennypost_database_connections";
/// The most connections a pool may open, by `pool`.
pub const DATABASE_CONNECTIONS_MAX: &str = "pennypost_database_connections_max";
/// Callers waiting for a connection of a pool, by `pool`.
pub const DATABASE_WAITING: &str = "pennypost_database_connection_waiters";
/// Time the writer was paused for one backup's copy.
pub const BACKUP_DURATION: &str = "pennypost_backup_seconds";
/// Unix time of the last backup that was written whole.
pub const BACKUP_LAST_SUCCESS: &str = "pennypost_backup_last_success_timestamp_seconds";
/// Time of one call to a payment provider's API, by `provider` and `call` (the call's name
/// without ids, `GET /v1/checkout/sessions/{id}`), whatever its outcome.
pub const PAYMENT_PROVIDER_DURATION: &str = "pennypost_payment_provider_call_seconds";
/// Calls to a payment provider's API that gave no usable answer, by `provider`, `call` and
/// `kind` (`unreachable`, `timeout`, `bad_answer`, `refused`).
pub const PAYMENT_PROVIDER_ERRORS: &str = "pennypost_payment_provider_errors_total";
/// Webhooks refused for their signature, by `provider` and `reason` (`missing`, `malformed`,
/// `mismatch`, `stale`): a wrong secret after a roll, a clock far off, or a forgery.
pub const PAYMENT_WEBHOOK_SIGNATURE_FAILURES: &str =
    "pennypost_payment_webhook_signature_failures_total";
/// Payments that reached a status, by `provider` and `status` (`pending` when created,
/// `paid`, `expired`, `failed`, `refunded`, `disputed`): each change counted once, by the
/// server that wrote it.
pub const PAYMENTS: &str = "pennypost_payments_total";
/// Minor units credited to balances by payments (first credits only, not replays), by
/// `provider`.
pub const PAYMENT_CREDITED: &str = "pennypost_payment_credited_total";
/// Minor units debited from balances for payments' refunds and disputes, by `provider` and
/// `reason` (`refund`, `dispute`).
pub const PAYMENT_DEBITED: &str = "pennypost_payment_debited_total";
/// Payments a provider confirmed in another amount or currency (never credited), by
/// `provider`.
pub const PAYMENT_MISMATCHES: &str = "pennypost_payment_mismatches_total";
/// Verified webhooks handled, by `provider` and `effect` (`credited`, `updated`, `debited`,
/// `ignored`).
pub const PAYMENT_WEBHOOKS: &str = "pennypost_payment_webhooks_total";

/// The gate (`pennypost gate`): requests answered, by `rule` (the priced route's `METHOD path`
/// as configured, `free` for a request no route prices, `gate` for the gate's own
/// `/.pennypost/` paths) and `outcome` (`passed`, `paid`, `payment_required`, `released`,
/// `refused`, `mint_unavailable`, `upstream_failed`, `own`).
pub const GATE_REQUESTS: &str = "pennypost_gate_requests_total";
/// The gate: time from sending a request upstream to the upstream's answer head, by `rule`.
pub const GATE_UPSTREAM: &str = "pennypost_gate_upstream_seconds";
/// The gate: time of one hold call to the mint, by `outcome` (`ok`, `refused`, `unavailable`).
pub const GATE_MINT_HOLD: &str = "pennypost_gate_hold_seconds";
/// The gate: time of one capture call to the mint (each retry counts), by `outcome`.
pub const GATE_MINT_CAPTURE: &str = "pennypost_gate_capture_seconds";
/// The gate: time of one release call to the mint, by `outcome`.
pub const GATE_MINT_RELEASE: &str = "pennypost_gate_release_seconds";

/// The route label of a request no route matched: never the raw path, which could hold ids.
const UNMATCHED: &str = "unmatched";

/// Buckets of the request and sync durations, in seconds: 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets of the backup duration: 10 ms to 30 min.
const BACKUP_BUCKETS: &[f64] = &[0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0];
/// Buckets of batch sizes: the committer's batches hold 1 to 256 commands, the verifier's 1 to
/// 64 signatures.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// How often histograms are folded into their buckets (the exporter's upkeep).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder behind the `metrics` facade, once per process, for
/// `pennypost serve`: describes the server's series and creates at 0 those that alerts compare
/// against. Call it before the service starts, so the writer and the verifier keep handles to
/// real series.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = recorder()?;
    describe();
    // Series that alerts compare against exist from the start, at 0.
    metrics::counter!(STAMPS_SOLD).absolute(0);
    metrics::counter!(COMMIT_FAILURES).absolute(0);
    metrics::counter!(DATABASE_UNAVAILABLE).absolute(0);
    metrics::gauge!(WRITER_STOPPED).set(0.0);
    metrics::gauge!(AUDIT_LAG).set(0.0);
    Ok(handle)
}

/// Installs the recorder, once per process, for `pennypost gate`: only the gate's series
/// (`pennypost_gate_…`, docs/gate.md "Metrics") are described, and none of the server's is
/// created: a gate has no writer, ledger or database, and a `pennypost_writer_stopped 0` of
/// its own would say something about a writer that is not there.
pub fn install_gate() -> Result<PrometheusHandle, String> {
    let handle = recorder()?;
    describe_gate();
    Ok(handle)
}

/// The Prometheus recorder with this module's buckets, installed behind the facade.
fn recorder() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(BACKUP_DURATION.into()), BACKUP_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS))
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), BATCH_BUCKETS)
        })
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("cannot start the metrics recorder: {e}"))
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by method, route template and status."
    );
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time to answer a request.");
    describe_counter!(STAMPS_SOLD, "Stamps sold by new purchases.");
    describe_counter!(STAMPS_SPENT, "Stamps cancelled, by action.");
    describe_histogram!(COMMIT_BATCH, "Commands per group-commit batch.");
    describe_histogram!(
        COMMIT_SYNC,
        Unit::Seconds,
        "Time of one batch's durable sync."
    );
    describe_histogram!(
        COMMIT_APPLY,
        Unit::Seconds,
        "Time of one batch's transaction (on PostgreSQL: lock wait, round trips and commit)."
    );
    describe_counter!(
        DATABASE_UNAVAILABLE,
        "Times the database was found unavailable (a request answered 503, or a background check)."
    );
    describe_counter!(
        COMMIT_FAILURES,
        "Batches whose transaction or sync failed (the writer then stops)."
    );
    describe_gauge!(
        WRITER_STOPPED,
        "1 once the writer stopped after a storage failure: changes answer 503 until restart."
    );
    describe_gauge!(LEDGER_SIZE, "Durable ledger entries.");
    describe_gauge!(
        AUDIT_LAG,
        "Entries the server's own ledger check is behind the durable ledger."
    );
    describe_histogram!(VERIFY_BATCH, "Signatures per verifier batch.");
    describe_gauge!(
        DATABASE_CONNECTIONS,
        "Connections of a database pool, by pool and state (in_use, idle)."
    );
    describe_gauge!(
        DATABASE_CONNECTIONS_MAX,
        "The most connections a database pool may open."
    );
    describe_gauge!(
        DATABASE_WAITING,
        "Callers waiting for a connection of a database pool."
    );
    describe_counter!(
        BACKUPS,
        "Backups through POST /v1/admin/backup, by outcome."
    );
    describe_histogram!(
        BACKUP_DURATION,
        Unit::Seconds,
        "Time the writer was paused for one backup."
    );
    describe_gauge!(
        BACKUP_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of the last backup written whole."
    );
    describe_histogram!(
        PAYMENT_PROVIDER_DURATION,
        Unit::Seconds,
        "Time of one call to a payment provider's API, by provider and call."
    );
    describe_counter!(
        PAYMENT_PROVIDER_ERRORS,
        "Calls to a payment provider's API that failed, by provider, call and kind."
    );
    describe_counter!(
        PAYMENT_WEBHOOK_SIGNATURE_FAILURES,
        "Webhooks refused for their signature, by provider and reason."
    );
    describe_counter!(
        PAYMENTS,
        "Payments that reached a status, by provider and status."
    );
    describe_counter!(
        PAYMENT_CREDITED,
        "Minor units credited by payments, by provider."
    );
    describe_counter!(
        PAYMENT_DEBITED,
        "Minor units debited for payments' refunds and disputes, by provider and reason."
    );
    describe_counter!(
        PAYMENT_MISMATCHES,
        "Payments confirmed in another amount or currency (not credited), by provider."
    );
    describe_counter!(
        PAYMENT_WEBHOOKS,
        "Verified payment webhooks handled, by provider and effect."
    );
}

fn describe_gate() {
    describe_counter!(
        GATE_REQUESTS,
        "Gate: requests answered, by priced rule and outcome."
    );
    describe_histogram!(
        GATE_UPSTREAM,
        Unit::Seconds,
        "Gate: time to the upstream's answer head, by rule."
    );
    describe_histogram!(
        GATE_MINT_HOLD,
        Unit::Seconds,
        "Gate: time of one hold call to the mint, by outcome."
    );
    describe_histogram!(
        GATE_MINT_CAPTURE,
        Unit::Seconds,
        "Gate: time of one capture call to the mint, by outcome."
    );
    describe_histogram!(
        GATE_MINT_RELEASE,
        Unit::Seconds,
        "Gate: time of one release call to the mint, by outcome."
    );
}

/// The method label: the standard methods by name, anything else as `other` (a client picks
/// the method, and a label must not take unbounded values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts every answer and times it, by method, route template and status.
pub async fn track_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = match req.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned(),
        None => UNMATCHED.to_owned(),
    };
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Sets the database pool gauges from `pools` (nothing for a store without pools).
pub fn record_pools(pools: &[crate::store::PoolState]) {
    for pool in pools {
        let in_use = pool.open.saturating_sub(pool.idle);
        metrics::gauge!(DATABASE_CONNECTIONS, "pool" => pool.pool, "state" => "in_use")
            .set(in_use as f64);
        metrics::gauge!(DATABASE_CONNECTIONS, "pool" => pool.pool, "state" => "idle")
            .set(pool.idle as f64);
        metrics::gauge!(DATABASE_CONNECTIONS_MAX, "pool" => pool.pool).set(pool.max as f64);
        metrics::gauge!(DATABASE_WAITING, "pool" => pool.pool).set(pool.waiting as f64);
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes, and keeps the recorder's
/// histograms folded meanwhile. `before` runs before each rendering (to set gauges that are
/// read, not counted: the database pools).
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    before: impl Fn() + Clone + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = handle.clone();
    let upkeep = tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            before();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    );
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep.abort();
    served
}

/// The address a metrics listener is reachable at, for the start-up line.
pub fn metrics_url(address: SocketAddr) -> String {
    format!("http://{address}/metrics")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let counters = [
            HTTP_REQUESTS,
            STAMPS_SOLD,
            STAMPS_SPENT,
            COMMIT_FAILURES,
            BACKUPS,
            PAYMENT_PROVIDER_ERRORS,
            PAYMENT_WEBHOOK_SIGNATURE_FAILURES,
            PAYMENTS,
            PAYMENT_CREDITED,
            PAYMENT_DEBITED,
            PAYMENT_MISMATCHES,
            PAYMENT_WEBHOOKS,
            GATE_REQUESTS,
        ];
        for name in counters {
            assert!(name.ends_with("_total"), "{name}");
        }
        for name in [
            HTTP_DURATION,
            COMMIT_SYNC,
            BACKUP_DURATION,
            PAYMENT_PROVIDER_DURATION,
            GATE_UPSTREAM,
            GATE_MINT_HOLD,
            GATE_MINT_CAPTURE,
            GATE_MINT_RELEASE,
        ] {
            assert!(name.ends_with("_seconds"), "{name}");
        }
        let all = counters.iter().chain(&[
            HTTP_DURATION,
            COMMIT_BATCH,
            COMMIT_SYNC,
            WRITER_STOPPED,
            LEDGER_SIZE,
            AUDIT_LAG,
            VERIFY_BATCH,
            BACKUP_DURATION,
            BACKUP_LAST_SUCCESS,
            PAYMENT_PROVIDER_DURATION,
        ]);
        for name in all {
            assert!(name.starts_with("pennypost_"), "{name}");
        }
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&odd), "other");
    }
}
