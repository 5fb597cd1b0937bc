//! Starting `pennypost serve` for a test, one way for every test binary: a command with none of
//! the `PENNYPOST_*` variables of the tests' environment (only what the test gives configures
//! the server), and a wait for its `pennypost listening on URL` line (and its
//! `pennypost metrics on URL` line when asked) of at most [`START_TIMEOUT`]: a server that
//! exits or stays silent is killed and the test fails with its logs, never hangs. Also running
//! `pennypost audit` against a server.
//!
//! Included by the test binaries that start servers, with only std:
//! `#[path = "../support/serve.rs"] mod serve;` from `tests/<binary>/main.rs`, or
//! `#[path = "support/serve.rs"] mod serve;` from `tests/<name>.rs`.

// Every test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take to print its `listening` line (and its `metrics` line).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The line a server prints once it accepts connections, before its base URL.
const LISTENING: &str = "pennypost listening on ";
/// The line a server started with `--metrics-listen` prints, before its metrics URL.
const METRICS: &str = "pennypost metrics on ";

/// `pennypost serve ARGS`, with every `PENNYPOST_*` variable of the tests' environment removed
/// (a `PENNYPOST_DATABASE_URL` there would quietly move a sled server onto a database) and its
/// logs at `info` unless the test sets `PENNYPOST_LOG`.
pub fn serve_command<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pennypost"));
    command.arg("serve").args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PENNYPOST_") {
            command.env_remove(name);
        }
    }
    command.env("PENNYPOST_LOG", "info");
    command
}

/// `file` opened for appending, for a server's stderr (its logs).
pub fn log_file(file: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("log file")
}

/// A server that printed its `listening` line.
pub struct Started {
    pub child: Child,
    pub base_url: String,
    /// `http://ADDR/metrics` once the server printed it (started with `--metrics-listen`);
    /// filled in by the thread that drains its stdout.
    pub metrics_url: Arc<Mutex<Option<String>>>,
}

impl Started {
    /// The metrics URL, when the server printed it.
    pub fn metrics(&self) -> Option<String> {
        self.metrics_url.lock().expect("lock").clone()
    }
}

/// Spawns `command` with its stdout piped, and waits for its `listening` line (and, when
/// `metrics`, its `metrics` line) for at most [`START_TIMEOUT`]. A thread keeps draining its
/// stdout so the server never blocks on a full pipe. When the server exits or stays silent, it
/// is killed and `Err` says so, with `logs()` (what the server wrote so far).
pub fn start(
    command: &mut Command,
    metrics: bool,
    logs: impl Fn() -> String,
) -> Result<Started, String> {
    start_announced(command, LISTENING, METRICS, metrics, logs)
}

/// [`start`] for a process that announces itself with other lines (`pennypost gate`):
/// `listening` and `metrics` are the prefixes of the lines before its URLs. A metrics line
/// printed before the listening line is noted by the time this returns.
pub fn start_announced(
    command: &mut Command,
    listening: &str,
    metrics_line: &str,
    metrics: bool,
    logs: impl Fn() -> String,
) -> Result<Started, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn pennypost serve");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = mpsc::channel();
    let metrics_url = Arc::new(Mutex::new(None));
    std::thread::spawn({
        let metrics_url = metrics_url.clone();
        let metrics_line = metrics_line.to_string();
        move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix(metrics_line.as_str()) {
                    *metrics_url.lock().expect("lock") = Some(url.to_string());
                }
                // The receiver is gone once the server started: keep draining.
                let _ = lines_tx.send(line);
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut base_url = None;
    let has_metrics = || metrics_url.lock().expect("lock").is_some();
    while base_url.is_none() || (metrics && !has_metrics()) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix(listening) {
                    base_url = Some(url.to_string());
                }
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("stayed silent for {START_TIMEOUT:?}")
                    }
                    mpsc::RecvTimeoutError::Disconnected => "exited".to_string(),
                };
                let wanted = if metrics {
                    "listening and metrics lines"
                } else {
                    "listening line"
                };
                return Err(format!(
                    "pennypost {why} before its {wanted} ({status:?}); logs:\n{}",
                    logs()
                ));
            }
        }
    }
    Ok(Started {
        child,
        base_url: base_url.unwrap_or_default(),
        metrics_url,
    })
}

/// Runs `command` to its end, for a server expected to refuse to start: its exit status and
/// what it wrote. One still running after [`START_TIMEOUT`] is killed and the test fails (it
/// never hangs).
pub fn output_within_deadline(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pennypost serve");
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read_all(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read_all(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            kill(&mut child);
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "pennypost serve ran on for {START_TIMEOUT:?} instead of refusing; stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Kills a server (SIGKILL: no shutdown, no flush) and reaps it.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `pennypost audit --server URL --state STATE` to the end: its output.
pub fn audit(server: &str, state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(["audit", "--server", server, "--state"])
        .arg(state)
        .output()
        .expect("run pennypost audit")
}

/// Runs `pennypost audit` as [`audit`] does: its exit code (-1 when killed by a signal) and
/// what it printed, stdout then stderr.
pub fn audit_printed(server: &str, state: &Path) -> (i32, String) {
    let output = audit(server, state);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), printed)
}
