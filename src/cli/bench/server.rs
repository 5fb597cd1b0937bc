//! The server under test: starts this executable as `pennypost serve` on port 0 over a data
//! directory (a fresh temporary one, or one given with `--reuse`), with the per-client rate
//! limits off and the economy policy asked for, and stops it again; with `--database`, on a
//! PostgreSQL database shared with the other servers of its [`Target`] (same keys directory,
//! same admin token). Knows nothing about workloads.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rand_core::{OsRng, RngCore as _};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long the server may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The economy policy a server under test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Policy {
    /// The server's defaults: flood-priced posts, quadratic votes, refunds after 3 up-voters.
    Default,
    /// `--repeat-factor 1 --vote-pricing flat --refund-voters 0`: every post and vote at its
    /// base cost, no refunds.
    Flat,
}

impl Policy {
    pub(super) fn name(self) -> &'static str {
        match self {
            Policy::Default => "default",
            Policy::Flat => "flat",
        }
    }

    /// The `serve` arguments that select the policy.
    fn args(self) -> &'static [&'static str] {
        match self {
            Policy::Default => &[],
            Policy::Flat => &[
                "--repeat-factor",
                "1",
                "--vote-pricing",
                "flat",
                "--refund-voters",
                "0",
            ],
        }
    }
}

/// What the servers of one PostgreSQL target share: the database, the keys directory and the
/// admin token, which make them one service.
pub(super) struct Shared {
    pub(super) url: String,
    pub(super) keys_dir: PathBuf,
    pub(super) admin_token: String,
}

/// What one workload is measured on: one sled server, or the servers sharing one PostgreSQL
/// database (the load generator spreads its connections round-robin over them).
pub(super) struct Target {
    /// How its log lines and tables name it ("default policy", "PostgreSQL x3, flat policy").
    pub(super) label: String,
    pub(super) policy: Policy,
    /// Whether its servers keep their store in PostgreSQL.
    pub(super) postgres: bool,
    /// With `--database` on this machine: the postmaster of that PostgreSQL cluster, whose
    /// processes' CPU is measured and waited for as the servers' is.
    pub(super) postmaster: Option<u32>,
    /// At least one; the first is the one asked for prices, audits and set-up.
    pub(super) servers: Vec<Server>,
}

impl Target {
    pub(super) fn first(&self) -> &Server {
        // A target is never built without a server (see `bench::run`).
        &self.servers[0]
    }

    pub(super) fn pids(&self) -> Vec<u32> {
        self.servers.iter().filter_map(|s| s.child.id()).collect()
    }

    /// The resident memory of all its servers, in KiB.
    pub(super) fn resident_kib(&self) -> Option<u64> {
        self.servers.iter().map(Server::resident_kib).sum()
    }

    pub(super) async fn stop(&mut self) {
        for server in &mut self.servers {
            server.stop().await;
        }
    }
}

/// Which executable a server under test runs, and what it adds to the bench's own `serve`
/// arguments.
#[derive(Clone, Debug, Default)]
pub(super) struct Launch {
    /// Another build of pennypost (`--against`); `None`: this executable.
    pub(super) exe: Option<PathBuf>,
    /// Added after the bench's arguments (`--serve-arg`).
    pub(super) args: Vec<String>,
}

pub(super) struct Server {
    pub(super) child: Child,
    pub(super) base: String,
    pub(super) admin_token: String,
    /// The directory holding `data/` and `keys/`.
    pub(super) root: PathBuf,
    /// Its Prometheus metrics URL, when it was started with them.
    pub(super) metrics: Option<String>,
    /// Removed when the server is gone; holds `data/` and `keys/`.
    dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `<this executable> serve` on port 0 over `root` (a fresh temporary directory when
    /// `dir` holds it) under `policy`, and waits for its listening line. With `shared`, the
    /// store is that PostgreSQL database, and the keys directory and admin token are the
    /// shared ones (`root` then only holds the data directory, which keeps nothing). With
    /// `metrics`, it also serves its Prometheus metrics on a port of its own. `launch` says
    /// which executable runs it, with what more arguments.
    pub(super) async fn start(
        root: PathBuf,
        dir: Option<tempfile::TempDir>,
        policy: Policy,
        shared: Option<&Shared>,
        metrics: bool,
        launch: &Launch,
    ) -> Result<Server, String> {
        let exe = match &launch.exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find the pennypost executable: {e}"))?,
        };
        let data_dir: PathBuf = root.join("data");
        let (keys_dir, admin_token) = match shared {
            Some(shared) => (shared.keys_dir.clone(), shared.admin_token.clone()),
            None => (root.join("keys"), admin_token()),
        };
        let mut command = Command::new(&exe);
        command.arg("serve");
        if let Some(shared) = shared {
            command.arg("--database").arg(&shared.url);
        }
        if metrics {
            command.args(["--metrics-listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--keys-dir")
            .arg(&keys_dir)
            // The load comes from one address: the per-client limits would refuse most of it.
            .args(["--rate-accounts-per-minute", "0"])
            .args(["--rate-purchases-per-minute", "0"])
            .args(["--rate-auth-failures-per-minute", "0"])
            // The post and vote workloads stay payable under either policy: each payer posts
            // once and votes once per post (see `payers`).
            .args(policy.args())
            .args(&launch.args)
            .env("PENNYPOST_ADMIN_TOKEN", &admin_token)
            .env("PENNYPOST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {} serve: {e}", exe.display()))?;
        // The listening line, then (with `metrics`) the metrics line.
        let mut base = None;
        let (base, metrics) = wait_for_lines(&mut child, "server", move |line| {
            if let Some(address) = line.strip_prefix("pennypost listening on ") {
                base = Some(address.trim().to_string());
            } else if let Some(url) = line.strip_prefix("pennypost metrics on ") {
                if let Some(base) = base.take() {
                    return Some((base, Some(url.trim().to_string())));
                }
            }
            if !metrics {
                if let Some(base) = base.take() {
                    return Some((base, None));
                }
            }
            None
        })
        .await?;
        eprintln!(
            "bench: server {} ({} policy{}{}) pid {} (data in {})",
            base,
            policy.name(),
            if shared.is_some() { ", PostgreSQL" } else { "" },
            match &launch.exe {
                Some(exe) => format!(", {}", exe.display()),
                None => String::new(),
            },
            child.id().unwrap_or(0),
            root.display()
        );
        Ok(Server {
            child,
            base,
            admin_token,
            root,
            metrics,
            dir,
        })
    }

    /// The server's resident memory in KiB, from /proc.
    pub(super) fn resident_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Kills the server, waits for it, then removes its directory.
    pub(super) async fn stop(&mut self) {
        let _ = self.child.kill().await;
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Reads `child`'s standard output (piped) line by line until `found` returns a value, for at
/// most [`STARTUP_TIMEOUT`]; then keeps reading it in the background, so that the child never
/// blocks on a full pipe. A child that exits or stays silent first is killed; the error names
/// it as `what`.
pub(super) async fn wait_for_lines<T>(
    child: &mut Child,
    what: &str,
    mut found: impl FnMut(&str) -> Option<T>,
) -> Result<T, String> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| format!("the {what}'s standard output is not piped"))?;
    let mut lines = BufReader::new(stdout).lines();
    let wait = async {
        while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
            if let Some(value) = found(&line) {
                return Ok(value);
            }
        }
        Err(format!("the {what} exited before it listened"))
    };
    let value = match tokio::time::timeout(STARTUP_TIMEOUT, wait).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            let _ = child.kill().await;
            return Err(e);
        }
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!(
                "the {what} did not listen within {} s",
                STARTUP_TIMEOUT.as_secs()
            ));
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(value)
}

/// A fresh admin token for the servers of one target.
pub(super) fn admin_token() -> String {
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    format!("ppadm_bench_{}", hex::encode(secret))
}
