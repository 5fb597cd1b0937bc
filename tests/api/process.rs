//! A `pennypost serve` started with exactly the arguments and environment a test gives (the
//! harness in `helpers.rs` fixes its own flags and environment): for the config file, the
//! metrics listener, and a second server over a restored backup.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::helpers::ADMIN_TOKEN;

/// Every variable of the environment that `serve` reads, so a test starts from none of them.
const SERVE_ENV: &[&str] = &[
    "PENNYPOST_CONFIG",
    "PENNYPOST_LISTEN",
    "PENNYPOST_DATA_DIR",
    "PENNYPOST_DATABASE_URL",
    "PENNYPOST_DATABASE_POOL_SIZE",
    "PENNYPOST_DATABASE_CONNECT_TIMEOUT_MS",
    "PENNYPOST_DATABASE_STATEMENT_TIMEOUT_MS",
    "PENNYPOST_KEYS_DIR",
    "PENNYPOST_STAMP_PRICE",
    "PENNYPOST_METRICS_LISTEN",
];

/// A running server; killed when dropped.
pub struct Served {
    child: Child,
    pub base_url: String,
    /// `http://ADDR/metrics`, when started with `--metrics-listen`.
    pub metrics_url: Option<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(args: &[&str], env: &[(&str, &str)], log: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pennypost"));
    command.arg("serve").args(args);
    for name in SERVE_ENV {
        command.env_remove(name);
    }
    // A server told to read its token from a file gets none from the environment (the two
    // together are refused).
    if !args.contains(&"--admin-token-file") {
        command.env("PENNYPOST_ADMIN_TOKEN", ADMIN_TOKEN);
    } else {
        command.env_remove("PENNYPOST_ADMIN_TOKEN");
    }
    command
        .env("PENNYPOST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("log file"),
        );
    command
}

/// Starts `pennypost serve ARGS` with `env` and waits for its `listening` line (and its
/// `metrics` line when `metrics` is true). Server logs go to `log`.
pub fn start(args: &[&str], env: &[(&str, &str)], log: &Path, metrics: bool) -> Served {
    let mut child = command(args, env, log).spawn().expect("spawn pennypost");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut next = |prefix: &str| loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    break rest.to_string();
                }
            }
            _ => panic!(
                "server exited before `{prefix}`; logs:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    };
    let base_url = next("pennypost listening on ");
    let metrics_url = metrics.then(|| next("pennypost metrics on "));
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        base_url,
        metrics_url,
    }
}

/// Runs `pennypost serve ARGS` with `env` expecting it to refuse to start: its exit code and
/// what it wrote to stderr. A server that runs on instead is killed after 30 s, and the test
/// fails (it never hangs).
pub fn refused(args: &[&str], env: &[(&str, &str)], dir: &Path) -> (Option<i32>, String) {
    let log = dir.join("refused.log");
    let mut command = command(args, env, &log);
    command.stdout(Stdio::null());
    let mut child = command.spawn().expect("run pennypost");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pennypost serve {args:?} started instead of refusing; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (
        status.code(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}
