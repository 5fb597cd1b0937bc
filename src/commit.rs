//! Group commit: one writer applies batches of commands and makes each batch durable with one
//! flush + fdatasync before any request in it is answered.
//!
//! Why: a durable write costs a disk sync (~0.2 ms here); shared by a batch of 64 it costs
//! ~0.013 ms each. One writer also gives the ledger its order without a lock held across I/O:
//! request tasks check signatures in parallel, then queue a [`Command`] and wait.
//!
//! Invariants:
//! - A reply is sent only after the batch holding its command is durable.
//! - If a sync fails, the writer stops: every waiting and later command gets `Unavailable`,
//!   because what is in memory may no longer match what is on disk. A restart recovers.
//!   A shared store ([`Cluster::shared`](crate::store::Cluster::shared), a database server) is the exception: its failed
//!   transaction left nothing behind (it committed nothing, or its outcome is unknown and the
//!   batch is still answered 503), so the batch gets `Unavailable` and the writer goes on with
//!   the next one: the server recovers by itself when the database is back.
//! - `durable_size` only grows, and only to sizes that are on disk (checkpoints sign it).
//! - A job run with [`Committer::exclusive`] (a backup's copy) runs between two batches, after
//!   the one before it is durable and before any command queued after it: it sees no batch
//!   half applied, and nothing changes the store's transactional trees while it runs.
//!
//! Metrics (`crate::telemetry`): batch sizes, sync time, failures, the durable ledger size,
//! and the stamps sold and spent, all counted here on the writer thread, off the request path.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use metrics::{Counter, Gauge, Histogram};
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::rules::{self, Applied, Command, Outcome, Settings, SpendFor};
use crate::store::Store;
use crate::telemetry;
use crate::time::Timestamp;

/// Commands waiting for the writer. Past this, submitters wait for room (backpressure) rather
/// than the queue growing without bound.
pub const QUEUE_MAX: usize = 8192;
/// Most commands in one transaction and one sync. Bounds the transaction's memory (a purchase
/// writes up to ~1,000 keys) and the latency of the first request in a batch.
pub const BATCH_MAX: usize = 256;

/// A closure the writer runs over the store between two batches; it sends its own answer.
type ExclusiveJob = Box<dyn FnOnce(&dyn Store) + Send>;

/// What the writer is asked to do.
enum Job {
    /// Apply a command in the next batch and answer once it is durable.
    Apply {
        command: Command,
        reply: oneshot::Sender<Result<Applied, Error>>,
    },
    /// Run a closure over the store between two batches (it sends its own answer).
    Exclusive(ExclusiveJob),
}

/// A command waiting in the batch being gathered.
struct Pending {
    command: Command,
    reply: oneshot::Sender<Result<Applied, Error>>,
}

/// The handle request tasks use to submit commands.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Job>,
    durable_size: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    /// The store, when other servers write it too: the durable size is then read from it.
    shared: Option<Arc<dyn Store>>,
}

impl Committer {
    /// Starts the writer thread, which applies the rules under `settings` to batches over
    /// `store`. The thread ends when every handle is dropped.
    pub fn start(store: Arc<dyn Store>, settings: Settings) -> Result<Committer, Error> {
        let (queue, jobs) = mpsc::channel(QUEUE_MAX);
        let durable_size = Arc::new(AtomicU64::new(store.ledger_size()?));
        let failed = Arc::new(AtomicBool::new(false));
        let meters = Meters::new();
        let shared = store.shared().then(|| store.clone());
        meters
            .ledger_size
            .set(durable_size.load(Ordering::Acquire) as f64);
        let writer = Writer {
            store,
            settings,
            jobs,
            durable_size: durable_size.clone(),
            failed: failed.clone(),
            meters,
        };
        std::thread::Builder::new()
            .name("pennypost-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::Internal(format!("cannot start writer thread: {e}")))?;
        Ok(Committer {
            queue,
            durable_size,
            failed,
            shared,
        })
    }

    /// Applies `command` and returns once it is durable (or refused).
    pub async fn submit(&self, command: Command) -> Result<Applied, Error> {
        if self.failed.load(Ordering::Acquire) {
            return Err(unavailable());
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job::Apply { command, reply })
            .await
            .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())?
    }

    /// Runs `job` on the writer thread between two batches: after every command queued before
    /// it is applied and durable, before any command queued after it. Writes wait meanwhile
    /// (they queue, up to [`QUEUE_MAX`]), so `job` should only copy or read. Refused with
    /// `Unavailable` once the writer stopped after a storage failure.
    pub async fn exclusive<R: Send + 'static>(
        &self,
        job: impl FnOnce(&dyn Store) -> R + Send + 'static,
    ) -> Result<R, Error> {
        if self.failed.load(Ordering::Acquire) {
            return Err(unavailable());
        }
        let (reply, answer) = oneshot::channel();
        let run = move |store: &dyn Store| {
            let _ = reply.send(job(store));
        };
        self.queue
            .send(Job::Exclusive(Box::new(run)))
            .await
            .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())
    }

    /// The ledger size known to be on disk. On a shared store, the size the database has
    /// committed, from whichever server (read at each call, so a change another server
    /// acknowledged is seen at once); the last size known when the database cannot be read.
    pub fn durable_size(&self) -> u64 {
        if let Some(store) = &self.shared {
            if let Ok(size) = store.ledger_size() {
                self.durable_size.fetch_max(size, Ordering::AcqRel);
            }
        }
        self.durable_size.load(Ordering::Acquire)
    }

    /// Whether the writer stopped after a storage failure.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

/// What the callers of a batch a shared store did not commit are told: always 503, so that
/// no change the database may not have committed is answered 2xx, and the client tries again.
fn not_committed(e: &crate::store::StoreError) -> Error {
    crate::store::StoreError::Unavailable(e.to_string()).into()
}

fn unavailable() -> Error {
    Error::Unavailable("the server cannot accept changes now; try again later".into())
}

/// The writer's metric handles, looked up once (no-ops when no recorder is installed).
struct Meters {
    batch_size: Histogram,
    apply_seconds: Histogram,
    sync_seconds: Histogram,
    failures: Counter,
    stopped: Gauge,
    ledger_size: Gauge,
    sold: Counter,
    spent_post: Counter,
    spent_vote: Counter,
    spent_redeem: Counter,
}

impl Meters {
    fn new() -> Meters {
        let spent =
            |action: &'static str| metrics::counter!(telemetry::STAMPS_SPENT, "action" => action);
        Meters {
            batch_size: metrics::histogram!(telemetry::COMMIT_BATCH),
            apply_seconds: metrics::histogram!(telemetry::COMMIT_APPLY),
            sync_seconds: metrics::histogram!(telemetry::COMMIT_SYNC),
            failures: metrics::counter!(telemetry::COMMIT_FAILURES),
            stopped: metrics::gauge!(telemetry::WRITER_STOPPED),
            ledger_size: metrics::gauge!(telemetry::LEDGER_SIZE),
            sold: metrics::counter!(telemetry::STAMPS_SOLD),
            spent_post: spent("post"),
            spent_vote: spent("vote"),
            spent_redeem: spent("redeem"),
        }
    }

    /// Counts the stamps a durable batch sold and spent.
    fn count(&self, commands: &[Command], results: &[Applied]) {
        for (command, result) in commands.iter().zip(results) {
            match (command, result) {
                (
                    Command::Purchase { .. },
                    Ok(Outcome::Purchased {
                        record,
                        replayed: false,
                    }),
                ) => self.sold.increment(u64::from(record.count)),
                (Command::Spend { spend_for, .. }, Ok(Outcome::Spent { cost, .. })) => {
                    let counter = match spend_for {
                        SpendFor::Post { .. } => &self.spent_post,
                        SpendFor::Vote { .. } => &self.spent_vote,
                        SpendFor::Redeem { .. } => &self.spent_redeem,
                    };
                    counter.increment(*cost);
                }
                // A capture is a redeem of its hold's stamps.
                (
                    Command::Capture { .. },
                    Ok(Outcome::Captured {
                        cost,
                        replayed: false,
                        ..
                    }),
                ) => self.spent_redeem.increment(*cost),
                _ => {}
            }
        }
    }
}

struct Writer {
    store: Arc<dyn Store>,
    settings: Settings,
    jobs: mpsc::Receiver<Job>,
    durable_size: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    meters: Meters,
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<Pending> = Vec::with_capacity(BATCH_MAX);
        while let Some(first) = self.jobs.blocking_recv() {
            // Gather commands up to the batch limit; an exclusive job closes the batch and runs
            // right after it.
            let mut exclusive = None;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Apply { command, reply } => batch.push(Pending { command, reply }),
                    Job::Exclusive(run) => {
                        exclusive = Some(run);
                        break;
                    }
                }
                if batch.len() < BATCH_MAX {
                    next = self.jobs.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                if self.failed.load(Ordering::Acquire) {
                    for job in batch.drain(..) {
                        let _ = job.reply.send(Err(unavailable()));
                    }
                } else {
                    self.commit(&mut batch);
                }
            }
            if let Some(run) = exclusive {
                // After a failure the store may not match the disk: the job is dropped, and its
                // caller sees `Unavailable`.
                if !self.failed.load(Ordering::Acquire) {
                    // A job that panics loses its answer (its caller sees `Unavailable`), not
                    // the writer.
                    let store = self.store.as_ref();
                    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| run(store)));
                    if ran.is_err() {
                        tracing::error!("an exclusive job of the writer panicked");
                    }
                }
            }
        }
    }

    fn commit(&self, batch: &mut Vec<Pending>) {
        let commands: Vec<Command> = batch.iter().map(|j| j.command.clone()).collect();
        self.meters.batch_size.record(commands.len() as f64);
        let started = Instant::now();
        let applied = rules::apply(
            self.store.as_ref(),
            &self.settings,
            &commands,
            Timestamp::now(),
        );
        self.meters
            .apply_seconds
            .record(started.elapsed().as_secs_f64());
        let applied = applied
            .and_then(|results| {
                let started = Instant::now();
                self.store.sync()?;
                self.meters
                    .sync_seconds
                    .record(started.elapsed().as_secs_f64());
                Ok(results)
            })
            .and_then(|results| Ok((results, self.store.synced_size()?)));
        match applied {
            Ok((results, size)) => {
                self.durable_size.fetch_max(size, Ordering::AcqRel);
                self.meters.ledger_size.set(size as f64);
                self.meters.count(&commands, &results);
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(e) if self.store.shared() => {
                // Nothing in this batch may be acknowledged; the database kept nothing of it
                // that a later batch could build on, so the writer goes on.
                tracing::warn!(error = %e, commands = batch.len(), "batch not committed; answered 503");
                self.meters.failures.increment(1);
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(not_committed(&e)));
                }
            }
            Err(e) => {
                // Nothing in this batch may be acknowledged, and later batches could build on
                // state that is not on disk: stop taking writes.
                tracing::error!(error = %e, "storage failed; refusing further changes until restart");
                self.failed.store(true, Ordering::Release);
                self.meters.failures.increment(1);
                self.meters.stopped.set(1.0);
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(unavailable()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn settings() -> Settings {
        Settings {
            currency: "cents".into(),
        }
    }

    /// Exclusive jobs queued among many credits always find the store between two batches:
    /// everything applied is durable, and nothing of a later batch is there yet.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exclusive_jobs_run_between_whole_batches() {
        let store = Arc::new(MemoryStore::new());
        let committer = Committer::start(store, settings()).expect("committer");
        let account_id = uuid::Uuid::new_v4();
        let created = committer
            .submit(Command::CreateAccount {
                account_id,
                name: None,
                api_key_sha256: [1; 32],
            })
            .await
            .expect("submit");
        assert_eq!(created, Ok(Outcome::AccountCreated));
        let mut credits = Vec::new();
        for i in 0..300 {
            let committer = committer.clone();
            credits.push(tokio::spawn(async move {
                committer
                    .submit(Command::Credit {
                        account_id,
                        amount: 1,
                        reference: format!("r{i}"),
                        source: crate::domain::CreditSource::Operator,
                    })
                    .await
            }));
        }
        let mut seen = Vec::new();
        for _ in 0..20 {
            let inside = committer.clone();
            let sizes = committer
                .exclusive(move |store| (store.ledger_size().ok(), inside.durable_size()))
                .await
                .expect("exclusive");
            seen.push(sizes);
            tokio::task::yield_now().await;
        }
        for credit in credits {
            assert!(matches!(credit.await.expect("task"), Ok(Ok(_))));
        }
        for (in_store, durable) in seen {
            assert_eq!(
                in_store,
                Some(durable),
                "a job saw a batch half made durable"
            );
        }
        let last = committer
            .exclusive(|store| store.ledger_size().ok())
            .await
            .expect("exclusive");
        assert_eq!(last, Some(committer.durable_size()));
        assert!(committer.durable_size() >= 300);
    }

    #[tokio::test]
    async fn a_job_that_panics_loses_its_answer_not_the_writer() {
        let committer = Committer::start(Arc::new(MemoryStore::new()), settings()).expect("start");
        let panicked = committer.exclusive(|_| panic!("in a job")).await;
        assert!(matches!(panicked, Err(Error::Unavailable(_))));
        let fine = committer
            .exclusive(|_| 7)
            .await
            .expect("the writer goes on");
        assert_eq!(fine, 7);
    }
}
