//! `pennypost audit` against server 1, then 2, then 3, with one state file and new writes in
//! between: each run pins the same key, proves the log it checked before consistent with the
//! new checkpoint of another server, checks only the new entries, and passes.

use crate::harness::Service;
use crate::pg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_auditor_state_passes_against_every_server_in_turn() {
    let service = Service::start(pg::TestDatabase::new(), 3, &[]);
    let state = service.path("audit-state.json");
    let (buyer, stamps) = service.stamps(0, 18).await;
    service.credit(1, &buyer, 6).await;
    let mut stamps = stamps.into_iter();
    let mut sizes = Vec::new();
    for round in 0..2 {
        for server in 0..3 {
            // New writes on every server: redeems, a purchase, a credit.
            for n in 0..3 {
                let stamp = stamps.next().expect("a stamp");
                let answer = service
                    .redeem(
                        (server + n) % 3,
                        &stamp,
                        &format!("audit/{round}/{server}/{n}"),
                    )
                    .await
                    .expect("transport");
                assert_eq!(answer.status, 201, "{:?}", answer.body);
            }
            service.buy((server + 1) % 3, &buyer, 1).await;
            service.credit((server + 2) % 3, &buyer, 1).await;
            let size = service.ledger_size(server).await;
            let printed = service.assert_audit(server, &state).await;
            let first = round == 0 && server == 0;
            assert_eq!(
                printed.contains("already checked"),
                !first,
                "server {}: the run should go on from the state file: {printed}",
                server + 1
            );
            assert!(
                !printed.contains("full re-check"),
                "server {}: {printed}",
                server + 1
            );
            assert!(
                printed.contains(&format!("ledger size          {size}\n")),
                "server {} at {size}: {printed}",
                server + 1
            );
            sizes.push(size);
        }
    }
    // Each run saw 5 entries more than the one before.
    assert!(sizes.windows(2).all(|w| w[1] == w[0] + 5), "{sizes:?}");
    eprintln!("audit: 6 runs over three servers, ledger sizes {sizes:?}");
}
