//! Issuer keys across servers: a server whose keys directory is not the ledger's sells
//! nothing the auditor would reject. Rotating keys is done with every server stopped
//! (docs/operations.md); these are the mistakes, and what the ledger makes of them.

use std::process::Command;

use crate::harness::Service;
use crate::keys_files::copy_keys;
use crate::pg;

/// The `kind: key` entries of server `i`'s ledger: (kid, status) in ledger order.
async fn key_entries(service: &Service, i: usize) -> Vec<(String, String)> {
    let size = service.ledger_size(i).await;
    let mut keys = Vec::new();
    for bytes in service.entries(i, size).await {
        let entry: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        if entry["kind"] == "key" {
            let text = |field: &str| entry[field].as_str().expect("text").to_string();
            keys.push((text("kid"), text("status")));
        }
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_left_on_a_rotated_key_sells_nothing() {
    let service = Service::start(pg::TestDatabase::new(), 2, &[]);
    let (buyer, old_stamps) = service.stamps(0, 2).await;
    service.credit(0, &buyer, 10).await;

    // The operator rotates a copy of the keys directory and restarts server 2 on it, while
    // server 1 runs on: server 2 retires the old key in the ledger and publishes the new one.
    let rotated = service.path("rotated-keys");
    copy_keys(&service.path("keys"), &rotated);
    let rotate = Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(["keys", "rotate", "--keys-dir"])
        .arg(&rotated)
        .output()
        .expect("run keys rotate");
    assert!(rotate.status.success(), "{rotate:?}");
    service
        .server(1)
        .set_arg("--keys-dir", rotated.to_str().expect("utf-8"));
    service.restart(1);
    let keys = key_entries(&service, 1).await;
    let statuses: Vec<&str> = keys.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(statuses, ["active", "retired", "active"], "{keys:?}");

    // Server 2 sells under the new key.
    let bought = service.buy(1, &buyer, 1).await;
    let new_kid = &keys[2].0;
    let answer = service.get(1, "/v1/keys").await;
    assert!(
        answer.body.to_string().contains(new_kid.as_str()),
        "{:?}",
        answer.body
    );
    assert_eq!(bought.stamps.len(), 1);

    // Server 1 still signs with the retired key: it refuses to sell (503, Retry-After), and
    // charges nothing, rather than write a sale the auditor rejects (`unknown_key`).
    let balance = service.account_of(0, &buyer).await.balance;
    for _ in 0..3 {
        let answer = service.purchase(0, &buyer.key, 1).await.expect("transport");
        assert_eq!(answer.status, 503, "{:?}", answer.body);
        assert_eq!(answer.code(), "service_unavailable", "{:?}", answer.body);
        assert!(answer.retry_after.is_some(), "{answer:?}");
    }
    assert_eq!(service.account_of(1, &buyer).await.balance, balance);
    assert!(
        service.server(0).logs().contains("not show active"),
        "server 1 says why in its log:\n{}",
        service.server(0).logs()
    );

    // The retired key's stamps still spend, on either server.
    for (i, stamp) in old_stamps.iter().enumerate() {
        let answer = service
            .redeem(i, stamp, "after rotation")
            .await
            .expect("transport");
        assert_eq!(answer.status, 201, "{:?}", answer.body);
    }

    // The ledger stays clean: the auditor passes against both servers.
    let state = service.path("audit-state.json");
    service.assert_audit(0, &state).await;
    service.assert_audit(1, &state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_with_their_own_keys_on_a_new_database_publish_one_active_key() {
    // Three servers, each with its own (empty) keys directory, started at once on an empty
    // database: the keys directory was not copied. Each makes its own key; one key becomes
    // the ledger's, and the servers holding another refuse to start.
    let service = Service::unstarted(pg::TestDatabase::new(), 3, &[]);
    for i in 0..3 {
        let own = service.path(&format!("keys{}", i + 1));
        service
            .server(i)
            .set_arg("--keys-dir", own.to_str().expect("utf-8"));
    }
    let service_ref = &service;
    let started: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|i| scope.spawn(move || service_ref.server(i).try_launch()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let up: Vec<usize> = (0..3).filter(|i| started[*i].is_ok()).collect();
    assert_eq!(up.len(), 1, "exactly one server starts: {started:?}");
    for (i, result) in started.iter().enumerate() {
        if let Err(e) = result {
            // Refused by the rules (the race: it published after another) or at load (it
            // read the other's key first): either way it says to copy the keys directory.
            assert!(
                e.contains("copy the keys directory from"),
                "server {} says which directory to copy: {e}",
                i + 1
            );
        }
    }
    let first = up[0];
    let keys = key_entries(&service, first).await;
    assert_eq!(keys.len(), 1, "one key entry: {keys:?}");
    assert_eq!(keys[0].1, "active");
    let (_, stamps) = service.stamps(first, 1).await;
    let answer = service
        .redeem(first, &stamps[0], "one key")
        .await
        .expect("transport");
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    service
        .assert_audit(first, &service.path("audit-state.json"))
        .await;
}
