//! The accept loop both servers of this crate run (`pennypost serve`'s API and `pennypost
//! gate`): ours rather than `axum::serve` so that every connection is bounded (at most
//! [`Bounds::connections_max`] at once, a semaphore permit per connection; a client that does
//! not finish sending its headers within [`Bounds::header_read_timeout`] is dropped), upgrades
//! (WebSocket) are served, each request carries its peer's address (`ConnectInfo`), and a
//! shutdown drains the requests in flight for at most [`Bounds::shutdown_grace`].
//!
//! HTTP/1.1 only: TLS and HTTP/2 end at the proxy in front (docs/operations.md). Cleartext
//! HTTP/2 would bypass the header read time (hyper applies it to HTTP/1 only) and its
//! implementation (the `h2` crate) was the largest dependency of the build that served
//! nobody.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// What bounds the connections of one server.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Connections open at once; the next waits to be accepted.
    pub connections_max: usize,
    /// The longest a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// After `shutdown`, how long requests in flight may take before their connections drop.
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight requests
/// for at most `bounds.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    bounds: Bounds,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(bounds.connections_max));
    // Tells every connection to finish its request in flight and close.
    let (stop, stopping) = watch::channel(());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(router.clone(), req.map(Body::new))
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(());
    // Every connection holds a permit until it closes: all of them back means all closed.
    let all = u32::try_from(bounds.connections_max).unwrap_or(u32::MAX);
    tokio::select! {
        _ = permits.acquire_many(all) => {}
        _ = tokio::time::sleep(bounds.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; dropping remaining connections");
        }
    }
    Ok(())
}
