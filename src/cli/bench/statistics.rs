//! Statistics of one workload run: ops and items per second, latency percentiles, CPU cores
//! used by the server and by this load generator, and a note when something went wrong.

use std::time::Duration;

use super::workloads::Workload;

/// One workload's measurements.
pub(super) struct Phase {
    pub(super) workload: Workload,
    pub(super) elapsed: Duration,
    pub(super) planned: Option<Duration>,
    pub(super) ops: u64,
    pub(super) items: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    /// Latency of every successful request, microseconds, sorted.
    pub(super) latencies_us: Vec<u32>,
    pub(super) exhausted: bool,
    /// CPU cores the server and this load generator kept busy on average, when known.
    pub(super) server_cores: Option<f64>,
    pub(super) client_cores: Option<f64>,
}

impl Phase {
    pub(super) fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }

    pub(super) fn item_rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.items as f64 / secs
        } else {
            0.0
        }
    }

    pub(super) fn percentile_ms(&self, p: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.latencies_us[rank - 1]) / 1000.0
    }

    /// The parts of one workload measured apart (the halves of a two-server run) as one:
    /// their ops, items, errors and time added up, their latencies together, their CPU use
    /// weighted by time. `None` when there is no part.
    pub(super) fn merge(parts: Vec<Phase>) -> Option<Phase> {
        let mut parts = parts.into_iter();
        let mut all = parts.next()?;
        let weighted = |cores: Option<f64>, time: Duration| cores.map(|c| c * time.as_secs_f64());
        let mut server = weighted(all.server_cores, all.elapsed);
        let mut client = weighted(all.client_cores, all.elapsed);
        for part in parts {
            server = server
                .zip(weighted(part.server_cores, part.elapsed))
                .map(|(a, b)| a + b);
            client = client
                .zip(weighted(part.client_cores, part.elapsed))
                .map(|(a, b)| a + b);
            all.elapsed += part.elapsed;
            all.planned = all.planned.zip(part.planned).map(|(a, b)| a + b);
            all.ops += part.ops;
            all.items += part.items;
            all.errors += part.errors;
            if all.first_error.is_none() {
                all.first_error = part.first_error;
            }
            all.latencies_us.extend(part.latencies_us);
            all.exhausted |= part.exhausted;
        }
        let secs = all.elapsed.as_secs_f64().max(1e-9);
        all.server_cores = server.map(|s| s / secs);
        all.client_cores = client.map(|c| c / secs);
        all.latencies_us.sort_unstable();
        Some(all)
    }

    pub(super) fn note(&self) -> Option<String> {
        let mut notes = Vec::new();
        if self.exhausted {
            if let Some(planned) = self.planned {
                notes.push(format!(
                    "ran out of stamps after {:.1} of {} s (rate is over the time it ran)",
                    self.elapsed.as_secs_f64(),
                    planned.as_secs()
                ));
            }
        }
        if let Some(e) = &self.first_error {
            notes.push(format!("{} errors; first: {e}", self.errors));
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// CPU time (user + system) a process has used so far, in seconds, from `/proc/<pid>/stat`
/// (`self` for this process).
pub(super) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every architecture it supports.
    Some((utime + stime) / 100.0)
}

/// Server CPU below this many cores counts as settled.
const SETTLED_CORES: f64 = 0.1;
/// How long each settle check looks at the servers' CPU use.
const SETTLE_SAMPLE: std::time::Duration = std::time::Duration::from_millis(300);
/// Longest wait for the servers to settle.
const SETTLE_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until the server processes `pids` are (nearly) idle: sled writes a setup's or a
/// workload's data out in the background for a while after it, and a workload measured
/// during that would pay for the work before it (or, with two servers, for the other's).
/// Gives up after [`SETTLE_MAX`].
pub(super) async fn settle(pids: &[u32]) {
    let started = std::time::Instant::now();
    let used = || -> f64 {
        pids.iter()
            .filter_map(|pid| cpu_seconds(&pid.to_string()))
            .sum()
    };
    let mut cores = 0.0;
    while started.elapsed() < SETTLE_MAX {
        let before = used();
        tokio::time::sleep(SETTLE_SAMPLE).await;
        cores = (used() - before) / SETTLE_SAMPLE.as_secs_f64();
        if cores < SETTLED_CORES {
            break;
        }
    }
    if started.elapsed() > std::time::Duration::from_secs(1) {
        eprintln!(
            "bench: waited {:.1} s for the server{} to settle ({cores:.2} cores busy at the end)",
            started.elapsed().as_secs_f64(),
            if pids.len() > 1 { "s" } else { "" }
        );
    }
}
