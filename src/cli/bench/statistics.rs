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
