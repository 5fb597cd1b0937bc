//! One log, whichever server signs it: while redeems and purchases run on all three servers,
//! checkpoints are fetched from all three; every one verifies under the one ledger key, one
//! size never has two roots, and each smaller checkpoint is consistent with each larger one
//! (the servers' RFC 9162 proofs, checked against both signed roots). Afterwards the three
//! serve the same entries byte for byte, and their root recomputed from those entries is the
//! checkpoint's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use futures_util::StreamExt as _;
use pennypost_audit::checkpoint::Verified;
use tlog_tiles::Hash;

use crate::harness::Service;
use crate::pg;

/// Redeems during the load, spread over the three servers.
const REDEEMS: usize = 150;
/// Purchases during the load, spread over the three servers.
const PURCHASES: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_of_all_servers_are_one_consistent_log() {
    let service = Service::start(pg::TestDatabase::new(), 3, &[]);
    let service = &service;
    let vkey = service.vkey(0).await;
    for i in 1..3 {
        assert_eq!(service.vkey(i).await, vkey, "server {} ledger key", i + 1);
    }
    let (buyer, stamps) = service.stamps(1, REDEEMS as u64).await;
    service.credit(2, &buyer, PURCHASES as u64).await;
    let buyer = &buyer;
    let stamps = &stamps;
    let before = service.ledger_size(2).await;

    // The load, and beside it a reader of checkpoints going round the servers.
    let done = AtomicBool::new(false);
    let done = &done;
    let load = async {
        let requests = (0..REDEEMS + PURCHASES).map(|n| async move {
            let server = n % 3;
            let answer = if n < REDEEMS {
                service
                    .redeem(server, &stamps[n], &format!("checkpoints/{n}"))
                    .await
            } else {
                service.purchase(server, &buyer.key, 1).await
            }
            .expect("transport");
            assert_eq!(
                answer.status,
                201,
                "server {}: {:?}",
                server + 1,
                answer.body
            );
        });
        futures_util::stream::iter(requests)
            .buffer_unordered(24)
            .collect::<Vec<()>>()
            .await;
        done.store(true, Ordering::SeqCst);
    };
    let reader = async {
        let mut seen: Vec<(usize, Verified)> = Vec::new();
        let mut n = 0;
        while !done.load(Ordering::SeqCst) {
            let server = n % 3;
            seen.push((server, service.verified_checkpoint(server, &vkey).await));
            n += 1;
        }
        seen
    };
    let ((), mut seen) = tokio::join!(load, reader);
    // And once more from each, now that the load is over.
    let mut last = Vec::new();
    for server in 0..3 {
        let checkpoint = service.verified_checkpoint(server, &vkey).await;
        last.push(checkpoint.clone());
        seen.push((server, checkpoint));
    }

    // One origin (the key's name) and one root per size.
    let origin = vkey.split('+').next().expect("vkey name");
    let mut roots: BTreeMap<u64, (Hash, usize)> = BTreeMap::new();
    for (server, checkpoint) in &seen {
        assert_eq!(checkpoint.origin, origin);
        let (root, first) = *roots
            .entry(checkpoint.size)
            .or_insert((checkpoint.root, *server));
        assert_eq!(
            root,
            checkpoint.root,
            "two roots for size {} (server {} and server {})",
            checkpoint.size,
            first + 1,
            server + 1
        );
    }
    let size = last[0].size;
    assert!(
        last.iter()
            .all(|c| c.size == size && c.root == last[0].root),
        "after the load the servers sign different checkpoints: {last:?}"
    );
    // One entry per request of the load.
    assert_eq!(size, before + (REDEEMS + PURCHASES) as u64);
    let start_size = *roots.keys().next().expect("a checkpoint");
    assert!(start_size >= before);
    eprintln!(
        "checkpoints: {} fetched during and after the load, {} distinct sizes from {start_size} to {size}",
        seen.len(),
        roots.len()
    );

    // Each size is consistent with the next, and the first with the last, each proof asked of
    // another server in turn.
    let sizes: Vec<u64> = roots.keys().copied().collect();
    let mut pairs: Vec<(u64, u64)> = sizes.windows(2).map(|w| (w[0], w[1])).collect();
    pairs.push((sizes[0], size));
    let mut proofs = 0;
    for (n, (from, to)) in pairs.into_iter().enumerate() {
        if from == to {
            continue;
        }
        for server in [n % 3, (n + 1) % 3] {
            let answer = service
                .get(
                    server,
                    &format!("/v1/ledger/proof/consistency?from={from}&to={to}"),
                )
                .await;
            assert_eq!(answer.status, 200, "{:?}", answer.body);
            let hashes: Vec<Hash> = answer.body["hashes"]
                .as_array()
                .expect("hashes")
                .iter()
                .map(|h| hash_of(h.as_str().expect("a hash")))
                .collect();
            tlog_tiles::check_tree(&hashes, to, roots[&to].0, from, roots[&from].0).unwrap_or_else(
                |e| {
                    panic!(
                        "server {}: size {from} is not consistent with size {to}: {e:?}",
                        server + 1
                    )
                },
            );
            proofs += 1;
        }
    }
    assert!(proofs > 0 || sizes.len() == 1);

    // The same entries, byte for byte, from every server; their root is the checkpoint's.
    let entries = service.entries(0, size).await;
    assert_eq!(entries.len() as u64, size);
    for server in 1..3 {
        let theirs = service.entries(server, size).await;
        assert!(
            theirs == entries,
            "server {} serves other entries than server 1",
            server + 1
        );
    }
    let mut checker = pennypost::ledger::check::LedgerChecker::new();
    for entry in &entries {
        checker.push(entry);
    }
    assert_eq!(checker.root(), last[0].root);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let report = checker.report(now);
    assert!(report.ok, "{:?}", report.violations);
}

fn hash_of(text: &str) -> Hash {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64 hash");
    Hash(bytes.try_into().expect("32 bytes"))
}
