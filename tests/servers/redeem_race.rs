//! Three servers, the same stamps: every stamp's redeem is sent to all three at once; the
//! database decides, so each stamp is spent exactly once, and the ledger grows by one spend
//! entry per stamp.

use std::collections::HashMap;

use futures_util::StreamExt as _;

use crate::harness::{stamp_id, Service};
use crate::pg;

/// Stamps redeemed, each on all three servers.
const STAMPS: usize = 200;
/// Requests in flight at once (over the three servers).
const IN_FLIGHT: usize = 96;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stamp_redeemed_on_three_servers_at_once_is_spent_once() {
    let service = Service::start(pg::TestDatabase::new(), 3, &[]);
    let (_, stamps) = service.stamps(0, STAMPS as u64).await;
    let ids: Vec<String> = stamps.iter().map(|s| stamp_id(s)).collect();
    // Every server has its connections open before the race (each reads the ledger size).
    let mut sizes = Vec::new();
    for server in 0..3 {
        sizes.push(service.ledger_size(server).await);
    }
    let before = sizes[0];
    assert!(sizes.iter().all(|s| *s == before), "{sizes:?}");

    // Stamp s goes to servers s, s+1, s+2 (mod 3) in that order, one right after the other.
    let requests: Vec<(usize, usize)> = (0..STAMPS)
        .flat_map(|s| (0..3).map(move |k| (s, (s + k) % 3)))
        .collect();
    let service = &service;
    let stamps = &stamps;
    let answers: Vec<(usize, usize, crate::harness::Answer)> = futures_util::stream::iter(requests)
        .map(|(s, server)| async move {
            let answer = service
                .redeem(server, &stamps[s], &format!("race/{s}"))
                .await
                .unwrap_or_else(|e| panic!("redeem on server {}: {e}", server + 1));
            (s, server, answer)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    let mut created: HashMap<usize, Vec<(usize, u64)>> = HashMap::new();
    let mut spent_409 = vec![0usize; STAMPS];
    let mut created_per_server = [0usize; 3];
    for (s, server, answer) in &answers {
        match (answer.status, answer.code()) {
            (201, _) => {
                assert_eq!(answer.body["stamp_id"], ids[*s], "{:?}", answer.body);
                let index = answer.body["ledger_index"].as_u64().expect("ledger_index");
                created.entry(*s).or_default().push((*server, index));
                created_per_server[*server] += 1;
            }
            (409, "stamp_already_spent") => spent_409[*s] += 1,
            _ => panic!(
                "stamp {s} on server {}: {} {:?}\n{}",
                server + 1,
                answer.status,
                answer.body,
                service.logs()
            ),
        }
    }
    for (s, &refused) in spent_409.iter().enumerate() {
        let wins = created.get(&s).map_or(0, Vec::len);
        assert_eq!(
            (wins, refused),
            (1, 2),
            "stamp {s}: {wins} answers 201 ({:?}) and {refused} answers 409",
            created.get(&s),
        );
    }
    assert_eq!(answers.len(), 3 * STAMPS);
    let total_409: usize = spent_409.iter().sum();
    assert_eq!(total_409, 2 * STAMPS);
    eprintln!(
        "redeem race: {} requests, {} answered 201 (per server {created_per_server:?}), \
         {total_409} answered 409",
        answers.len(),
        created.len()
    );

    // The ledger grew by exactly one spend entry per stamp, on every server's view, each at
    // the index its 201 gave.
    let acked: Vec<(String, u64)> = created
        .iter()
        .map(|(s, wins)| (ids[*s].clone(), wins[0].1))
        .collect();
    for server in 0..3 {
        assert_eq!(
            service.ledger_size(server).await,
            before + STAMPS as u64,
            "server {}",
            server + 1
        );
    }
    let spends = service.check_spends(2, &acked).await;
    let new: Vec<&serde_json::Value> = spends.entries[before as usize..].iter().collect();
    assert_eq!(new.len(), STAMPS);
    for entry in &new {
        assert_eq!(entry["kind"], "spend", "{entry}");
        assert_eq!(entry["action"], "redeem", "{entry}");
        assert_eq!(
            entry["stamp_ids"].as_array().map(Vec::len),
            Some(1),
            "{entry}"
        );
    }
    assert_eq!(spends.count_spent(&ids), STAMPS);
}
