//! One server SIGKILLed in the middle of a burst of redeems and purchases spread over three:
//! every change acknowledged by any server (the killed one included) is in the ledger at the
//! index its answer gave; the other two answer every request of theirs, before and after the
//! kill; no stamp is spent twice; a purchase the kill cut, sent again with its Idempotency-Key
//! to a survivor, is bought exactly once (the balances add up); `pennypost audit` passes
//! against a survivor; the killed server starts again on the same database, sees everything,
//! serves, and passes the audit with the same state file.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use pennypost::api::PurchaseResponse;

use crate::harness::{poll, stamp_id, Account, Answer, Service};
use crate::pg;

/// Redeems in the burst (each of a stamp of its own).
const REDEEMS: usize = 360;
/// Purchases in the burst (of 1 to 3 stamps each): every seventh request.
const PURCHASES: usize = 60;
/// Requests in flight at once, over the three servers.
const IN_FLIGHT: usize = 48;
/// Requests answered before the kill.
const KILL_AFTER: usize = 120;
/// The server killed: the first one, which made the schema and most likely holds the lock of
/// the background ledger check.
const VICTIM: usize = 0;
/// The survivors.
const SURVIVORS: [usize; 2] = [1, 2];
/// Buyers of the stamps redeemed and of the purchases.
const BUYERS: usize = 3;
/// What each buyer is credited for the purchases of the burst.
const PURCHASE_BUDGET: u64 = 3 * PURCHASES as u64;

/// What one request of the burst asked.
enum Request {
    Redeem(String),
    /// A purchase by buyer `buyer` of `count` stamps, with its Idempotency-Key.
    Purchase {
        buyer: usize,
        count: u64,
        key: String,
    },
}

/// One request of the burst and how it ended.
struct Sent {
    server: usize,
    request: Request,
    /// Sent after the kill returned.
    after_kill: bool,
    outcome: Result<Answer, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_a_burst_loses_no_acknowledged_change() {
    let service = Service::start(pg::TestDatabase::new(), 3, &[]);
    let service = &service;
    let mut buyers: Vec<Account> = Vec::new();
    let mut stamps: Vec<String> = Vec::new();
    for b in 0..BUYERS {
        let (buyer, bought) = service.stamps(b, (REDEEMS / BUYERS) as u64).await;
        service.credit(b, &buyer, PURCHASE_BUDGET).await;
        buyers.push(buyer);
        stamps.extend(bought);
    }
    let (buyers, stamps) = (&buyers, &stamps);

    let answered = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let (answered, killed) = (&answered, &killed);
    let burst = futures_util::stream::iter(0..REDEEMS + PURCHASES)
        .map(|n| async move {
            let server = n % 3;
            let after_kill = killed.load(Ordering::SeqCst);
            let (request, outcome) = if n % 7 == 6 {
                let (buyer, count) = (n % BUYERS, 1 + (n % 3) as u64);
                let key = uuid::Uuid::new_v4().to_string();
                let outcome = service
                    .purchase_keyed(server, &buyers[buyer].key, count, &key)
                    .await;
                (Request::Purchase { buyer, count, key }, outcome)
            } else {
                // The redeems before n take stamps 0 .. n - n / 7.
                let stamp = stamps[n - n / 7].clone();
                let outcome = service.redeem(server, &stamp, &format!("kill/{n}")).await;
                (Request::Redeem(stamp), outcome)
            };
            answered.fetch_add(1, Ordering::SeqCst);
            Sent {
                server,
                request,
                after_kill,
                outcome,
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<Sent>>();
    let killer = async {
        poll(Duration::from_secs(60), "the burst to progress", || {
            answered.load(Ordering::SeqCst) >= KILL_AFTER
        })
        .await;
        let at = answered.load(Ordering::SeqCst);
        service.server(VICTIM).kill();
        killed.store(true, Ordering::SeqCst);
        at
    };
    let (sent, killed_at) = tokio::join!(burst, killer);

    // What each server answered: 201, or (the killed server only) a transport failure.
    let mut acked_redeems: Vec<(String, u64)> = Vec::new();
    let mut acked_purchases: Vec<PurchaseResponse> = Vec::new();
    let mut in_doubt: Vec<String> = Vec::new();
    let mut lost_purchases: Vec<(usize, u64, &str)> = Vec::new();
    // Stamps each buyer bought in the burst.
    let mut bought = [0u64; BUYERS];
    let mut survivors_after_kill = 0;
    let mut per_server = [0usize; 3];
    for sent in &sent {
        match (&sent.outcome, &sent.request) {
            (Ok(answer), request) if answer.status == 201 => {
                per_server[sent.server] += 1;
                if sent.after_kill && sent.server != VICTIM {
                    survivors_after_kill += 1;
                }
                match request {
                    Request::Redeem(stamp) => acked_redeems.push((
                        stamp_id(stamp),
                        answer.body["ledger_index"].as_u64().expect("ledger_index"),
                    )),
                    Request::Purchase { buyer, count, .. } => {
                        bought[*buyer] += count;
                        acked_purchases
                            .push(serde_json::from_value(answer.body.clone()).expect("a purchase"));
                    }
                }
            }
            (Err(_), Request::Redeem(stamp)) if sent.server == VICTIM => {
                in_doubt.push(stamp_id(stamp))
            }
            (Err(_), Request::Purchase { buyer, count, key }) if sent.server == VICTIM => {
                lost_purchases.push((*buyer, *count, key))
            }
            (other, _) => panic!(
                "server {} answered {other:?}\n{}",
                sent.server + 1,
                service.logs()
            ),
        }
    }
    let transport_errors = in_doubt.len() + lost_purchases.len();
    assert_eq!(sent.len(), REDEEMS + PURCHASES);
    assert!(
        transport_errors > 0,
        "the kill after {killed_at} answers cut no request of server {}",
        VICTIM + 1
    );
    assert!(
        survivors_after_kill > 0,
        "no survivor answered a request sent after the kill"
    );
    assert_eq!(
        acked_redeems.len() + acked_purchases.len() + transport_errors,
        REDEEMS + PURCHASES
    );

    // A purchase cut by the kill, sent again with its key to a survivor, is bought once:
    // either the killed server had committed it (the replay answers the first purchase) or
    // it is bought now.
    let size_before_replays = service.ledger_size(SURVIVORS[0]).await;
    let mut had_committed = 0;
    for (buyer, count, key) in &lost_purchases {
        let answer = service
            .purchase_keyed(SURVIVORS[0], &buyers[*buyer].key, *count, key)
            .await
            .expect("transport");
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        let purchase: PurchaseResponse = serde_json::from_value(answer.body).expect("a purchase");
        if purchase.ledger_index < size_before_replays {
            had_committed += 1;
        }
        bought[*buyer] += count;
        acked_purchases.push(purchase);
    }

    // Every acknowledged redeem is spent at its index; nothing is spent twice.
    let spends = service.check_spends(SURVIVORS[1], &acked_redeems).await;
    // Every acknowledged purchase is its entry, with the stamps it answered; one entry each.
    for purchase in &acked_purchases {
        let entry = spends
            .entries
            .get(purchase.ledger_index as usize)
            .unwrap_or_else(|| {
                panic!(
                    "acknowledged purchase at {} is past the ledger ({})",
                    purchase.ledger_index,
                    spends.entries.len()
                )
            });
        assert_eq!(entry["kind"], "purchase", "{entry}");
        assert_eq!(entry["purchase_id"], purchase.purchase_id.to_string());
        let ids: Vec<String> = purchase.stamps.iter().map(|s| stamp_id(s)).collect();
        assert_eq!(entry["stamp_ids"], serde_json::json!(ids), "{entry}");
    }
    let purchase_entries = spends
        .entries
        .iter()
        .filter(|e| e["kind"] == "purchase")
        .count();
    assert_eq!(purchase_entries, BUYERS + PURCHASES);
    for (b, buyer) in buyers.iter().enumerate() {
        let account = service.account_of(SURVIVORS[0], buyer).await;
        assert_eq!(
            (
                account.stamps_purchased,
                u64::try_from(account.balance).expect("no debt")
            ),
            (
                (REDEEMS / BUYERS) as u64 + bought[b],
                PURCHASE_BUDGET - bought[b]
            ),
            "buyer {b}"
        );
    }
    let in_doubt_spent = spends.count_spent(&in_doubt);
    eprintln!(
        "kill -9: {} requests, server {} killed after {killed_at} answers; 201 per server \
         {per_server:?} ({} redeems, {} purchases); {survivors_after_kill} survivor 201s sent \
         after the kill; {transport_errors} transport errors on the killed server ({} redeems, \
         {in_doubt_spent} of them committed; {} purchases, sent again with their key to a \
         survivor: {had_committed} had committed)",
        sent.len(),
        VICTIM + 1,
        acked_redeems.len(),
        acked_purchases.len() - lost_purchases.len(),
        in_doubt.len(),
        lost_purchases.len(),
    );

    // The survivors still serve, and the auditor passes against one.
    let state = service.path("audit-state.json");
    service.assert_audit(SURVIVORS[0], &state).await;
    let extra = service.buy(SURVIVORS[1], &buyers[0], 2).await;

    // The killed server starts again on the same database: it sees every acknowledged spend,
    // serves, and the auditor (same state) passes against it.
    service.restart(VICTIM);
    service.check_spends(VICTIM, &acked_redeems).await;
    let answer = service
        .redeem(VICTIM, &extra.stamps[0], "kill/after-restart")
        .await
        .expect("transport");
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    service.assert_audit(VICTIM, &state).await;
    service.assert_audit(SURVIVORS[1], &state).await;
}
