//! `POST /v1/admin/backup` and `pennypost backup`: a backup taken while redeems and purchases
//! run opens as a data directory, passes `pennypost audit`, and holds the original's ledger at
//! its size (same entries, same root); bad paths and callers are refused. On PostgreSQL the
//! server takes no backups (the database's own tools do): 409 `backup_not_supported`, nothing
//! left behind, and the load goes on unharmed.

use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use pennypost::api::{BackupResponse, PurchaseResponse};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, backend_is_postgres, TestServer, ADMIN_TOKEN, FLAT};
use crate::process::start;
use crate::wire::root_of;

/// `(size, root)` of a checkpoint note.
fn size_and_root(note: &str) -> (u64, String) {
    let mut lines = note.lines().skip(1);
    let size = lines.next().expect("size").parse().expect("a number");
    (size, lines.next().expect("root").to_string())
}

/// The Merkle root of entries `0..size` of a server, recomputed from the entries themselves.
async fn recomputed_root(client: &reqwest::Client, base: &str, size: u64) -> String {
    let mut entries: Vec<Vec<u8>> = Vec::new();
    while (entries.len() as u64) < size {
        let start = entries.len() as u64;
        let url = format!(
            "{base}/v1/ledger/entries?start={start}&limit={}",
            size - start
        );
        let page = client
            .get(url)
            .send()
            .await
            .expect("entries")
            .bytes()
            .await
            .expect("body");
        for line in page.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if (entries.len() as u64) < size {
                entries.push(line.to_vec());
            }
        }
        assert!(entries.len() as u64 > start, "no entries past {start}");
    }
    base64::engine::general_purpose::STANDARD.encode(root_of(&entries).0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_the_same_ledger() {
    let server = Arc::new(TestServer::start().await);
    let (id, key) = server.account().await;
    let (status, body) = server.credit(&id, 10_000, "backup-load").await;
    assert_eq!(status, 200, "{body}");
    let mut stamps = Vec::new();
    for _ in 0..2 {
        let (status, body) = server.purchase(&key, 100, None).await;
        assert_eq!(status, 201, "{body}");
        let bought: PurchaseResponse = serde_json::from_value(body).expect("purchase");
        stamps.extend(bought.stamps);
    }

    // The ledger's size before the burst, read before any of it starts (read after the spawns,
    // it raced the first redeems and counted some of them as "before").
    let (_, note) = server.get_text("/v1/ledger/checkpoint").await;
    let (before_burst, _) = size_and_root(&note);

    // The burst: four redeemers and one buyer, while the backup is taken.
    let mut burst = Vec::new();
    for chunk in stamps.chunks(50) {
        let (server, chunk) = (server.clone(), chunk.to_vec());
        burst.push(tokio::spawn(async move {
            for stamp in chunk {
                let (status, body) = server.redeem(&stamp, "backup burst").await;
                assert_eq!(status, 201, "{body}");
            }
        }));
    }
    let buyer = {
        let (server, key) = (server.clone(), key.clone());
        tokio::spawn(async move {
            for _ in 0..20 {
                let (status, body) = server.purchase(&key, 2, None).await;
                assert_eq!(status, 201, "{body}");
            }
        })
    };
    // Take it in the middle of the burst: once some 40 of its 220 entries are durable.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, note) = server.get_text("/v1/ledger/checkpoint").await;
        if size_and_root(&note).0 >= before_burst + 40 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let copy = server.work_dir().join("backups").join("first");
    let (status, body) = server
        .post(
            "/v1/admin/backup",
            Some(ADMIN_TOKEN),
            json!({"path": copy.to_str().expect("utf-8")}),
        )
        .await;
    if backend_is_postgres() {
        assert_problem(status, &body, 409, "backup_not_supported");
        assert!(!copy.exists(), "a refused backup left {}", copy.display());
        for task in burst {
            task.await.expect("redeemer");
        }
        buyer.await.expect("buyer");
        let (_, report) = server.get("/v1/audit").await;
        assert_eq!(
            report["ledger_size"].as_u64(),
            Some(before_burst + 220),
            "every redeem and purchase of the burst: {report}"
        );
        assert_eq!(report["ok"], true, "{report}");
        return;
    }
    assert_eq!(status, 201, "{body}");
    let backup: BackupResponse = serde_json::from_value(body).expect("a backup answer");
    assert_eq!(backup.path, copy.to_str().expect("utf-8"));
    for task in burst {
        task.await.expect("redeemer");
    }
    buyer.await.expect("buyer");

    let (_, report) = server.get("/v1/audit").await;
    let size_now = report["ledger_size"].as_u64().expect("size");
    assert!(backup.ledger_size > before_burst, "{backup:?}");
    assert_eq!(
        size_now,
        before_burst + 220,
        "every redeem and purchase of the burst"
    );
    assert!(size_now >= backup.ledger_size, "{size_now} < {backup:?}");
    eprintln!("backup at {} of {size_now} entries", backup.ledger_size);

    // A second server over the copy, with the same keys.
    let keys = server.keys_dir();
    let restored = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            copy.to_str().expect("utf-8"),
            "--keys-dir",
            keys.to_str().expect("utf-8"),
        ],
        FLAT,
        &server.work_dir().join("restored.log"),
        false,
    );
    let client = reqwest::Client::new();
    let note = client
        .get(format!("{}/v1/ledger/checkpoint", restored.base_url))
        .send()
        .await
        .expect("checkpoint")
        .text()
        .await
        .expect("note");
    let (size, root) = size_and_root(&note);
    assert_eq!(size, backup.ledger_size, "{note}");
    // The original's ledger at that size has the same root, recomputed from its entries, and
    // the original proves its own ledger consistent from it.
    assert_eq!(recomputed_root(&client, &server.base_url, size).await, root);
    let (status, proof) = server
        .get(&format!(
            "/v1/ledger/proof/consistency?from={size}&to={size_now}"
        ))
        .await;
    assert_eq!(status, 200, "{proof}");

    // The independent auditor passes over the restored server.
    let state = server.work_dir().join("audit-state.json");
    let audit = Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(["audit", "--server", &restored.base_url, "--state"])
        .arg(&state)
        .output()
        .expect("run pennypost audit");
    let out = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "audit failed: {out}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(out.contains("OK: every check holds"), "{out}");
    let restored_report: Value = client
        .get(format!("{}/v1/audit", restored.base_url))
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("JSON");
    assert_eq!(restored_report["ledger_size"], backup.ledger_size);
    assert_eq!(restored_report["ok"], true, "{restored_report}");
}

#[tokio::test]
async fn bad_backups_are_refused() {
    let server = TestServer::start().await;
    let path = server.work_dir().join("backups").join("b");
    let path = path.to_str().expect("utf-8");
    let (status, body) = server
        .post("/v1/admin/backup", None, json!({"path": path}))
        .await;
    assert_problem(status, &body, 401, "unauthorized");
    let (status, body) = server
        .post("/v1/admin/backup", Some("wrong"), json!({"path": path}))
        .await;
    assert_problem(status, &body, 401, "unauthorized");
    for bad in [
        json!({"path": "relative/dir"}),
        json!({"path": ""}),
        json!({}),
    ] {
        let (status, body) = server
            .post("/v1/admin/backup", Some(ADMIN_TOKEN), bad)
            .await;
        assert_problem(status, &body, 400, "bad_request");
    }
    // A directory that exists (the server's own data directory, here) is never written into.
    let data = server.data_dir();
    let (status, body) = server
        .post(
            "/v1/admin/backup",
            Some(ADMIN_TOKEN),
            json!({"path": data.to_str().expect("utf-8")}),
        )
        .await;
    assert_problem(status, &body, 400, "bad_request");
    assert!(!std::path::Path::new(path).exists());
}

#[tokio::test]
async fn the_backup_command_asks_the_server() {
    let server = TestServer::start().await;
    let to = server.work_dir().join("cli-backup");
    let run = |token: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pennypost"));
        command
            .args(["backup", "--server", &server.base_url, "--to"])
            .arg(&to)
            .env_remove("PENNYPOST_ADMIN_TOKEN");
        if let Some(token) = token {
            command.env("PENNYPOST_ADMIN_TOKEN", token);
        }
        command.output().expect("run pennypost backup")
    };
    let done = run(Some(ADMIN_TOKEN));
    let out = String::from_utf8_lossy(&done.stdout);
    if backend_is_postgres() {
        // The server refuses (exit 1), naming the code, and leaves nothing behind.
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(1), "{out}{stderr}");
        assert!(stderr.contains("backup_not_supported"), "{stderr}");
        assert!(!to.exists(), "a refused backup left {}", to.display());
    } else {
        assert!(
            done.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(out.contains("backup written to"), "{out}");
        assert!(to.join("db").exists());
        // The same directory again: the server refuses (exit 1), naming the code.
        let again = run(Some(ADMIN_TOKEN));
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("bad_request"));
    }
    // No token: it cannot ask (exit 2).
    let no_token = run(None);
    assert_eq!(no_token.status.code(), Some(2));
}
