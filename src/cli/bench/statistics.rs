//! Statistics of one workload run: ops and items per second, latency percentiles, CPU cores
//! used by the server and by this load generator, and a note when something went wrong.

use std::time::Duration;

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
    /// CPU cores the PostgreSQL cluster kept busy, when it runs on this machine (`--database`
    /// on a loopback address).
    pub(super) database_cores: Option<f64>,
    /// The group commits the servers' writers made meanwhile, when their metrics are served
    /// (`--database` runs).
    pub(super) commits: Option<Commits>,
}

/// Group commits of the servers' writers over a workload, from their Prometheus metrics
/// (`pennypost_commit_batch_size`, added up over the servers).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Commits {
    /// Batches committed.
    pub(super) batches: f64,
    /// Commands in them.
    pub(super) commands: f64,
}

impl Commits {
    /// What was committed between two readings.
    pub(super) fn since(self, before: Commits) -> Commits {
        Commits {
            batches: self.batches - before.batches,
            commands: self.commands - before.commands,
        }
    }

    /// Commands per batch on average; `None` without a batch.
    pub(super) fn mean_batch(self) -> Option<f64> {
        (self.batches > 0.0).then(|| self.commands / self.batches)
    }
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
        let mut commits = all.commits;
        let weighted = |cores: Option<f64>, time: Duration| cores.map(|c| c * time.as_secs_f64());
        let mut server = weighted(all.server_cores, all.elapsed);
        let mut client = weighted(all.client_cores, all.elapsed);
        let mut database = weighted(all.database_cores, all.elapsed);
        for part in parts {
            server = server
                .zip(weighted(part.server_cores, part.elapsed))
                .map(|(a, b)| a + b);
            client = client
                .zip(weighted(part.client_cores, part.elapsed))
                .map(|(a, b)| a + b);
            database = database
                .zip(weighted(part.database_cores, part.elapsed))
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
            commits = commits.zip(part.commits).map(|(a, b)| Commits {
                batches: a.batches + b.batches,
                commands: a.commands + b.commands,
            });
        }
        all.commits = commits;
        let secs = all.elapsed.as_secs_f64().max(1e-9);
        all.server_cores = server.map(|s| s / secs);
        all.client_cores = client.map(|c| c / secs);
        all.database_cores = database.map(|c| c / secs);
        all.latencies_us.sort_unstable();
        Some(all)
    }

    /// Batches committed per second, over all the servers.
    pub(super) fn batch_rate(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        self.commits
            .filter(|_| secs > 0.0)
            .map(|c| c.batches / secs)
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

/// The CPU time (seconds) of each process of the local PostgreSQL cluster whose postmaster is
/// `postmaster`: the postmaster and its children (backends, WAL writer, checkpointer,
/// autovacuum). Empty when /proc cannot be read.
pub(super) fn cluster_cpu(postmaster: u32) -> std::collections::HashMap<u32, f64> {
    let mut found = std::collections::HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state, ppid, ..., utime (12th), stime (13th).
        let parent: Option<u32> = fields.get(1).and_then(|f| f.parse().ok());
        if pid != postmaster && parent != Some(postmaster) {
            continue;
        }
        let time = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        if let (Some(utime), Some(stime)) = (time(11), time(12)) {
            found.insert(pid, (utime + stime) / 100.0);
        }
    }
    found
}

/// Cores a cluster kept busy between two readings of [`cluster_cpu`] `secs` apart (a process
/// that started in between counts from zero; one that ended is missed).
pub(super) fn cluster_cores(
    before: &std::collections::HashMap<u32, f64>,
    after: &std::collections::HashMap<u32, f64>,
    secs: f64,
) -> f64 {
    let used: f64 = after
        .iter()
        .map(|(pid, t)| t - before.get(pid).copied().unwrap_or(0.0))
        .sum();
    used / secs.max(1e-9)
}

/// Server CPU below this many cores counts as settled.
const SETTLED_CORES: f64 = 0.1;
/// How long each settle check looks at the servers' CPU use.
const SETTLE_SAMPLE: std::time::Duration = std::time::Duration::from_millis(300);
/// Longest wait for the servers to settle.
const SETTLE_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until the server processes `pids` (and the local PostgreSQL cluster of `postmaster`,
/// with `--database`) are (nearly) idle: sled writes a setup's or a workload's data out in the
/// background for a while after it (PostgreSQL checkpoints and vacuums), and a workload
/// measured during that would pay for the work before it (or, with two servers, for the
/// other's).
/// Gives up after [`SETTLE_MAX`].
pub(super) async fn settle(pids: &[u32], postmaster: Option<u32>) {
    let started = std::time::Instant::now();
    let used = || -> f64 {
        let servers: f64 = pids
            .iter()
            .filter_map(|pid| cpu_seconds(&pid.to_string()))
            .sum();
        let cluster: f64 = postmaster.map_or(0.0, |p| cluster_cpu(p).values().sum());
        servers + cluster
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

/// What a phase measured: the name of each workload in the printed tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Workload {
    Healthz,
    Purchase,
    Redeem,
    Post,
    Vote,
    Read,
    /// `--gate`: `GET /page` straight to the bench's upstream.
    Upstream,
    /// `--gate`: the same through the gate (an unpriced route).
    GateFree,
    /// `--gate`: `POST /comments` through the gate, paid with one stamp.
    GatePriced,
    /// Pre-buying (unmeasured): purchases of up to 1,000 until `stock_left` is used up.
    Stock,
}

impl Workload {
    pub(super) fn name(self) -> &'static str {
        match self {
            Workload::Healthz => "GET /healthz",
            Workload::Purchase => "POST /v1/stamps/purchase",
            Workload::Redeem => "POST /v1/stamps/redeem",
            Workload::Post => "POST /v1/posts",
            Workload::Vote => "POST /v1/posts/{id}/votes",
            Workload::Read => "GET /v1/posts",
            Workload::Upstream => "GET /page (upstream)",
            Workload::GateFree => "GET /page (gate)",
            Workload::GatePriced => "POST /comments (gate)",
            Workload::Stock => "pre-buy",
        }
    }
}
