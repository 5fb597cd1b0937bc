//! PostgreSQL killed (as in a crash) during a burst on three servers, then started again.
//! While it is away the servers answer 503 `service_unavailable` with `Retry-After`, never 500,
//! to writes and reads alike, and stay up; once it is back they serve writes again by
//! themselves, within a bounded time. No acknowledged redeem is lost (each is spent at the index
//! its 201 gave), no stamp is spent twice, and a purchase retried with its Idempotency-Key
//! across the outage (on another server each time) is bought exactly once. `pennypost audit`
//! passes against every server.
//!
//! Clients behave as the API asks: a stamp is sent once (a 503 may or may not have committed,
//! so it is never sent again), a purchase is retried with the same key until it is answered,
//! and after a 503 a client waits `Retry-After`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use pennypost::api::PurchaseResponse;

use crate::harness::{poll, stamp_id, Answer, Service};
use crate::pg;

/// Stamps bought for the burst; each is sent once at most.
const STAMPS: u64 = 800;
/// Redeeming clients per server.
const CLIENTS: usize = 4;
/// Redeems acknowledged before PostgreSQL is killed.
const ACKED_BEFORE_KILL: usize = 60;
/// The least time PostgreSQL stays away.
const OUTAGE_MIN: Duration = Duration::from_millis(1500);
/// How long the servers may take to serve writes again once PostgreSQL is back.
const RECOVERY_MAX: Duration = Duration::from_secs(30);
/// Redeems acknowledged after every server has recovered, before the burst stops.
const ACKED_AFTER_RECOVERY: usize = 30;
/// The purchasing account's credit.
const PURCHASE_BUDGET: u64 = 10_000;
/// How long one purchase may be retried before the test gives up on it.
const PURCHASE_RETRY_MAX: Duration = Duration::from_secs(60);
/// Reads the reading clients make.
const READS: &[&str] = &[
    "/checkpoint",
    "/v1/posts",
    "/v1/ledger/entries?start=0&limit=5",
    "/v1/account",
    "/v1/stamps/",
    "/v1/audit",
];

/// One request and how it ended.
struct Sent {
    server: usize,
    /// The stamp redeemed (an index into the stamps), if a redeem.
    stamp: Option<usize>,
    /// The path read, if a read.
    read: Option<&'static str>,
    started: Instant,
    outcome: Result<Answer, String>,
}

/// A purchase, retried with its key until answered 201.
struct Bought {
    key: String,
    count: u64,
    /// The servers it was sent to, in order, with their answers' statuses.
    tries: Vec<(usize, u16)>,
    answer: PurchaseResponse,
}

/// What the clients saw, shared with the controller.
#[derive(Default)]
struct Seen {
    sent: Mutex<Vec<Sent>>,
    bought: Mutex<Vec<Bought>>,
    acked: AtomicUsize,
    stop: AtomicBool,
}

impl Seen {
    fn record(&self, sent: Sent) {
        self.sent.lock().expect("lock").push(sent);
    }

    /// When `server` first answered 201 to a write sent at `since` or later.
    fn served_since(&self, server: usize, since: Instant) -> Option<Instant> {
        self.sent
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.server == server && s.started >= since && s.read.is_none())
            .filter(|s| matches!(&s.outcome, Ok(a) if a.status == 201))
            .map(|s| s.started)
            .min()
    }

    /// Whether `server` answered 503 to a write sent at `since` or later.
    fn unavailable_since(&self, server: usize, since: Instant) -> bool {
        self.sent.lock().expect("lock").iter().any(|s| {
            s.server == server
                && s.started >= since
                && s.read.is_none()
                && matches!(&s.outcome, Ok(a) if a.status == 503)
        })
    }
}

/// The wait a 503 asks for.
fn retry_after(outcome: &Result<Answer, String>) -> Option<Duration> {
    match outcome {
        Ok(a) if a.status == 503 => a
            .retry_after
            .as_deref()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_ride_out_a_database_crash_and_lose_nothing_acknowledged() {
    let cluster = Arc::new(pg::OwnCluster::start());
    let service = Service::start(
        pg::TestDatabase::on(&cluster.url),
        3,
        &[
            "--database-connect-timeout-ms",
            "1000",
            "--database-statement-timeout-ms",
            "1000",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let service = &service;
    let (_, stamps) = service.stamps(0, STAMPS).await;
    let stamps = &stamps;
    let payer = service.account(1).await;
    service.credit(2, &payer, PURCHASE_BUDGET).await;
    let payer = &payer;
    let next = AtomicUsize::new(0);
    let next = &next;
    let seen = Seen::default();
    let seen = &seen;

    // Redeems, each stamp once.
    let redeemer = |server: usize| async move {
        while !seen.stop.load(Ordering::SeqCst) {
            let stamp = next.fetch_add(1, Ordering::SeqCst);
            if stamp >= stamps.len() {
                return;
            }
            let started = Instant::now();
            let outcome = service
                .redeem(server, &stamps[stamp], &format!("outage/{stamp}"))
                .await;
            if matches!(&outcome, Ok(a) if a.status == 201) {
                seen.acked.fetch_add(1, Ordering::SeqCst);
            }
            let wait = retry_after(&outcome);
            seen.record(Sent {
                server,
                stamp: Some(stamp),
                read: None,
                started,
                outcome,
            });
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
        }
    };
    // Purchases, each retried with its key on the next server until it is answered 201.
    let purchaser = |first: usize| async move {
        let mut n = 0u64;
        while !seen.stop.load(Ordering::SeqCst) {
            let key = uuid::Uuid::new_v4().to_string();
            let count = 1 + n % 3;
            n += 1;
            let mut tries = Vec::new();
            let deadline = Instant::now() + PURCHASE_RETRY_MAX;
            let answer = loop {
                let server = (first + tries.len()) % 3;
                let started = Instant::now();
                let outcome = service
                    .purchase_keyed(server, &payer.key, count, &key)
                    .await;
                let wait = retry_after(&outcome);
                let status = outcome.as_ref().map_or(0, |a| a.status);
                tries.push((server, status));
                let answer = match &outcome {
                    Ok(a) if a.status == 201 => Some(a.body.clone()),
                    _ => None,
                };
                seen.record(Sent {
                    server,
                    stamp: None,
                    read: None,
                    started,
                    outcome,
                });
                if let Some(body) = answer {
                    break serde_json::from_value::<PurchaseResponse>(body).expect("a purchase");
                }
                match wait {
                    // Any answer but 201 or 503 is kept and fails the test below.
                    None => return,
                    Some(wait) => tokio::time::sleep(wait).await,
                }
                assert!(
                    Instant::now() < deadline,
                    "purchase {key} unanswered after {PURCHASE_RETRY_MAX:?}: {tries:?}"
                );
            };
            seen.bought.lock().expect("lock").push(Bought {
                key,
                count,
                tries,
                answer,
            });
        }
    };
    // Reads of every kind, answered from the database.
    let reader = |server: usize| async move {
        let stamp = format!("/v1/stamps/{}", stamp_id(&stamps[0]));
        let mut n = 0;
        while !seen.stop.load(Ordering::SeqCst) {
            let read = READS[n % READS.len()];
            n += 1;
            let request = match read {
                "/v1/account" => service
                    .http
                    .get(service.server(server).url(read))
                    .bearer_auth(&payer.key),
                "/v1/stamps/" => service.http.get(service.server(server).url(&stamp)),
                path => service.http.get(service.server(server).url(path)),
            };
            let started = Instant::now();
            let outcome = service.try_send(request).await;
            seen.record(Sent {
                server,
                stamp: None,
                read: Some(read),
                started,
                outcome,
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let clients = futures_util::future::join_all(
        (0..3 * CLIENTS)
            .map(|c| redeemer(c % 3).boxed())
            .chain((0..3).map(|s| purchaser(s).boxed()))
            .chain((0..3).map(|s| reader(s).boxed())),
    );

    let controller = async {
        // The cluster's script blocks: it runs on a blocking thread, not the clients' task.
        async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
            tokio::task::spawn_blocking(f).await.expect("blocking task")
        }

        // 1. Load, then PostgreSQL dies.
        poll(
            Duration::from_secs(30),
            "acknowledged redeems before the kill",
            || seen.acked.load(Ordering::SeqCst) >= ACKED_BEFORE_KILL,
        )
        .await;
        let acked_at_kill = seen.acked.load(Ordering::SeqCst);
        let c = cluster.clone();
        blocking(move || c.kill()).await;
        let killed = Instant::now();

        // 2. Every server answers 503 while it is away; it stays away at least OUTAGE_MIN.
        poll(Duration::from_secs(20), "a 503 from every server", || {
            (0..3).all(|s| seen.unavailable_since(s, killed))
        })
        .await;
        tokio::time::sleep(OUTAGE_MIN.saturating_sub(killed.elapsed())).await;
        let outage = killed.elapsed();

        // 3. PostgreSQL is back (after crash recovery); the servers serve again by themselves.
        let c = cluster.clone();
        let resume_started = Instant::now();
        blocking(move || c.resume()).await;
        let resumed = Instant::now();
        let resume_took = resumed - resume_started;
        poll(
            RECOVERY_MAX,
            "a 201 from every server after the resume",
            || (0..3).all(|s| seen.served_since(s, resumed).is_some()),
        )
        .await;
        let recovered: Vec<Duration> = (0..3)
            .map(|s| seen.served_since(s, resumed).expect("served") - resumed)
            .collect();

        // 4. Some more load, then stop.
        let acked_then = seen.acked.load(Ordering::SeqCst);
        poll(
            Duration::from_secs(30),
            "acknowledged redeems after the recovery",
            || seen.acked.load(Ordering::SeqCst) >= acked_then + ACKED_AFTER_RECOVERY,
        )
        .await;
        seen.stop.store(true, Ordering::SeqCst);
        Times {
            acked_at_kill,
            killed,
            outage,
            resumed,
            resume_took,
            recovered,
        }
    };
    let (_, times) = tokio::join!(clients, controller);

    // Only 201 (200 for reads) and 503 with Retry-After; every server still up.
    let sent = std::mem::take(&mut *seen.sent.lock().expect("lock"));
    let bought = std::mem::take(&mut *seen.bought.lock().expect("lock"));
    let mut acked: Vec<(String, u64)> = Vec::new();
    let mut in_doubt: Vec<String> = Vec::new();
    // 503s to writes sent before the kill, during the outage, after the resume; and to reads.
    let mut unavailable = [0usize; 3];
    let mut reads_unavailable: HashMap<&str, usize> = HashMap::new();
    // Answers that said the database was away (not the audit catching up).
    let mut database_away = 0usize;
    let (mut reads, mut purchase_requests) = (0, 0);
    for s in &sent {
        let answer = s.outcome.as_ref().unwrap_or_else(|e| {
            panic!(
                "server {} failed in transport: {e}\n{}",
                s.server + 1,
                service.logs()
            )
        });
        let ok = if s.read.is_some() { 200 } else { 201 };
        if s.read.is_some() {
            reads += 1;
        } else if s.stamp.is_none() {
            purchase_requests += 1;
        }
        if answer.status == ok {
            if let Some(stamp) = s.stamp {
                acked.push((
                    stamp_id(&stamps[stamp]),
                    answer.body["ledger_index"].as_u64().expect("ledger_index"),
                ));
            }
            continue;
        }
        assert!(
            answer.status == 503
                && (answer.code() == "service_unavailable"
                    || (s.read == Some("/v1/audit") && answer.code() == "audit_catching_up"))
                && answer
                    .retry_after
                    .as_deref()
                    .is_some_and(|r| r.parse::<u64>().is_ok()),
            "server {} answered {} ({:?}) with Retry-After {:?}: {:?}\n{}",
            s.server + 1,
            answer.status,
            s.read,
            answer.retry_after,
            answer.body,
            service.logs()
        );
        if answer.code() == "service_unavailable" {
            database_away += 1;
        }
        if let Some(read) = s.read {
            *reads_unavailable.entry(read).or_default() += 1;
            continue;
        }
        let phase = if s.started < times.killed {
            0
        } else if s.started < times.resumed {
            1
        } else {
            2
        };
        unavailable[phase] += 1;
        if let Some(stamp) = s.stamp {
            in_doubt.push(stamp_id(&stamps[stamp]));
        }
    }
    assert!(unavailable[1] > 0, "no 503 while PostgreSQL was away");
    // The servers counted the database away at least once for each such answer (and for
    // their background checks), and timed their batches.
    let mut counted = 0.0;
    for server in 0..3 {
        counted += service
            .metric(server, "pennypost_database_unavailable_total")
            .await;
        let batches = service
            .metric(server, "pennypost_commit_apply_seconds_count")
            .await;
        assert!(batches > 0.0, "server {} timed no batch", server + 1);
    }
    assert!(
        counted >= database_away as f64,
        "pennypost_database_unavailable_total: {counted} over the servers, {database_away} \
         answers said the database was away"
    );
    for server in 0..3 {
        assert!(
            service.server(server).running(),
            "server {} exited",
            server + 1
        );
        assert_eq!(service.get(server, "/healthz").await.status, 200);
    }

    // Nothing acknowledged lost, nothing spent twice, on every server's view.
    let mut committed_in_doubt = 0;
    let mut spends = None;
    for server in 0..3 {
        let view = service.check_spends(server, &acked).await;
        committed_in_doubt = view.count_spent(&in_doubt);
        assert_eq!(
            view.spent.len(),
            acked.len() + committed_in_doubt,
            "spends in the ledger that no client sent"
        );
        spends = Some(view);
    }
    let spends = spends.expect("a view");

    // Every purchase is one entry, whatever its key went through; sent again with its key
    // (to yet another server) it answers the same purchase; the balance adds up.
    let retried = bought.iter().filter(|b| b.tries.len() > 1).count();
    let mut stamps_bought = 0;
    for (n, b) in bought.iter().enumerate() {
        let entry = spends
            .entries
            .get(b.answer.ledger_index as usize)
            .unwrap_or_else(|| panic!("purchase {} is past the ledger", b.key));
        assert_eq!(entry["kind"], "purchase", "{entry}");
        assert_eq!(entry["purchase_id"], b.answer.purchase_id.to_string());
        assert_eq!(b.answer.count as u64, b.count);
        let again = service
            .purchase_keyed(n % 3, &payer.key, b.count, &b.key)
            .await
            .expect("transport");
        assert_eq!(again.status, 201, "{:?}", again.body);
        let again: PurchaseResponse = serde_json::from_value(again.body).expect("a purchase");
        assert_eq!(again, b.answer, "purchase {} (tries {:?})", b.key, b.tries);
        stamps_bought += b.count;
    }
    let payer_purchases = spends
        .entries
        .iter()
        .filter(|e| e["kind"] == "purchase" && e["account"] == payer.id.as_str())
        .count();
    assert_eq!(
        payer_purchases,
        bought.len(),
        "purchase entries of the payer"
    );
    let account = service.account_of(0, payer).await;
    assert_eq!(
        (
            account.stamps_purchased,
            u64::try_from(account.balance).expect("no debt")
        ),
        (stamps_bought, PURCHASE_BUDGET - stamps_bought)
    );

    eprintln!(
        "database outage: {} redeems sent, {} answered 201 ({} before the kill); 503s to \
         writes: {} sent before the kill, {} during the outage ({:?}), {} after the resume; \
         {committed_in_doubt} of the 503'd redeems committed; {} purchases in {purchase_requests} \
         requests, {retried} retried across the outage; {reads} reads, 503 per route \
         {reads_unavailable:?}; resume took {:?}; first write served after the resume, per \
         server: {:?}; pennypost_database_unavailable_total {counted} over the servers",
        sent.iter().filter(|s| s.stamp.is_some()).count(),
        acked.len(),
        times.acked_at_kill,
        unavailable[0],
        unavailable[1],
        times.outage,
        unavailable[2],
        bought.len(),
        times.resume_took,
        times.recovered,
    );

    let state = service.path("audit-state.json");
    for server in 0..3 {
        service.assert_audit(server, &state).await;
    }
}

/// When the controller did what.
struct Times {
    acked_at_kill: usize,
    killed: Instant,
    outage: Duration,
    resumed: Instant,
    resume_took: Duration,
    recovered: Vec<Duration>,
}
