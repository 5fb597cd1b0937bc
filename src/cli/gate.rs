//! `pennypost gate --config gate.toml`: reads the file (refusing a bad one with its line),
//! listens, prints `pennypost gate listening on http://ADDR` (tests and scripts read the port
//! from it), and runs the gate until SIGINT or SIGTERM. The gate itself is `crate::gate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

#[derive(Args, Debug)]
pub struct GateArgs {
    /// The gate's TOML file: listen, upstream, mint, wallet_url and the [[price]] routes
    /// (docs/gate.md).
    #[arg(long, env = "PENNYPOST_GATE_CONFIG")]
    pub config: PathBuf,
}

pub fn main(args: GateArgs) -> ExitCode {
    let config = match crate::gate::config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", config.listen);
                return ExitCode::from(2);
            }
        };
        let (stop_metrics, metrics_stopped) = tokio::sync::watch::channel(());
        let metrics_task = match config.metrics_listen {
            None => None,
            Some(address) => {
                let socket = match tokio::net::TcpListener::bind(address).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("error: cannot listen for metrics on {address}: {e}");
                        return ExitCode::from(2);
                    }
                };
                let handle = match crate::telemetry::install_gate() {
                    Ok(handle) => handle,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                };
                let url = socket
                    .local_addr()
                    .map(crate::telemetry::metrics_url)
                    .unwrap_or_default();
                println!("pennypost gate metrics on {url}");
                let mut stopped = metrics_stopped;
                let shutdown = async move {
                    let _ = stopped.changed().await;
                };
                Some(tokio::spawn(crate::telemetry::serve(
                    socket,
                    handle,
                    || {},
                    shutdown,
                )))
            }
        };
        let routes = config.routes.len();
        let gate = match crate::gate::Gate::new(config) {
            Ok(gate) => Arc::new(gate),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(address = %local, routes, "gate listening");
        println!("pennypost gate listening on http://{local}");
        let served = crate::gate::run(listener, gate, super::serve::shutdown_signal()).await;
        drop(stop_metrics);
        if let Some(task) = metrics_task {
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "the metrics listener failed");
            }
        }
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}
