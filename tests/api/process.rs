//! A `pennypost serve` started with exactly the arguments and environment a test gives (the
//! harness in `helpers.rs` fixes its own flags and environment): for the config file, the
//! metrics listener, and a second server over a restored backup. Started and waited for by
//! `serve` (tests/support/serve.rs), with none of the tests' `PENNYPOST_*` variables.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::helpers::ADMIN_TOKEN;
use crate::serve::{self, serve_command};

/// A running server; killed when dropped.
pub struct Served {
    child: Child,
    pub base_url: String,
    /// `http://ADDR/metrics`, when started with `--metrics-listen`.
    pub metrics_url: Option<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        serve::kill(&mut self.child);
    }
}

fn command(args: &[&str], env: &[(&str, &str)], log: &Path) -> Command {
    let mut command = serve_command(args);
    // A server told to read its token from a file gets none from the environment (the two
    // together are refused).
    if !args.contains(&"--admin-token-file") {
        command.env("PENNYPOST_ADMIN_TOKEN", ADMIN_TOKEN);
    }
    command
        .envs(env.iter().copied())
        .stderr(serve::log_file(log));
    command
}

/// Starts `pennypost serve ARGS` with `env` and waits for its `listening` line (and its
/// `metrics` line when `metrics` is true). Server logs go to `log`.
pub fn start(args: &[&str], env: &[(&str, &str)], log: &Path, metrics: bool) -> Served {
    let logs = || std::fs::read_to_string(log).unwrap_or_default();
    let started =
        serve::start(&mut command(args, env, log), metrics, logs).unwrap_or_else(|e| panic!("{e}"));
    let metrics_url = started.metrics();
    Served {
        child: started.child,
        base_url: started.base_url,
        metrics_url,
    }
}

/// Runs `pennypost serve ARGS` with `env` expecting it to refuse to start: its exit code and
/// what it wrote to stderr. A server that runs on instead is killed after
/// `serve::START_TIMEOUT`, and the test fails (it never hangs).
pub fn refused(args: &[&str], env: &[(&str, &str)], dir: &Path) -> (Option<i32>, String) {
    let log = dir.join("refused.log");
    let mut command = command(args, env, &log);
    command.stdout(Stdio::null());
    let mut child = command.spawn().expect("run pennypost");
    let deadline = std::time::Instant::now() + serve::START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            serve::kill(&mut child);
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
