//! No secret ever reaches the logs or the ledger: API keys, the admin token, private keys, whole
//! stamps.

use serde_json::json;

use crate::helpers::{TestServer, ADMIN_TOKEN};

#[tokio::test]
async fn a_full_run_logs_no_secret() {
    let server = TestServer::start_logging("debug").await;
    let (id, api_key) = server.account().await;
    server.credit(&id, 100, "payment-secret-ref").await;
    let (status, body) = server
        .post("/v1/stamps/purchase", Some(&api_key), json!({"count": 5}))
        .await;
    assert_eq!(status, 201);
    let stamps: Vec<String> = body["stamps"]
        .as_array()
        .expect("stamps")
        .iter()
        .map(|s| s.as_str().expect("stamp").to_string())
        .collect();
    server
        .post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamps[0], "context": "c"}),
        )
        .await;
    server
        .post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamps[0], "context": "c"}),
        )
        .await;
    server
        .post(
            "/v1/posts",
            None,
            json!({"author": "a", "body": "b", "stamps": [stamps[1]]}),
        )
        .await;
    // Failures too: a wrong key, a wrong admin token, a tampered stamp.
    server
        .post(
            "/v1/stamps/purchase",
            Some("ppk_wrong"),
            json!({"count": 1}),
        )
        .await;
    server.credit(&id, 1, "other").await;
    let mut tampered = stamps[2].clone();
    tampered.pop();
    tampered.push('A');
    server
        .post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": tampered, "context": "c"}),
        )
        .await;
    let (_, ledger) = server.get_text("/v1/ledger/entries").await;

    let mut secrets = vec![api_key.clone(), ADMIN_TOKEN.to_string()];
    secrets.extend(stamps.iter().cloned());
    // Each stamp's signature half on its own, too.
    secrets.extend(
        stamps
            .iter()
            .filter_map(|s| s.rsplit('.').next().map(str::to_string)),
    );
    for entry in std::fs::read_dir(server.keys_dir()).expect("keys") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("key file");
        let file: serde_json::Value = serde_json::from_str(&text).expect("json");
        secrets.push(file["secret_key"].as_str().expect("secret").to_string());
    }
    secrets.push("payment-secret-ref".to_string());

    let logs = server.logs();
    assert!(logs.contains("listening"), "logs were captured: {logs}");
    assert!(
        logs.contains("/v1/stamps/redeem"),
        "request logs were captured: {logs}"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret is in the logs: {secret}"
        );
        assert!(
            !ledger.contains(secret.as_str()),
            "a secret is in the ledger: {secret}"
        );
    }
    // The store holds only hashes of API keys: the data directory (sled's files), and on
    // PostgreSQL the database's rows.
    let mut stored = Vec::new();
    for entry in walk(&server.data_dir()) {
        stored.extend(std::fs::read(entry).unwrap_or_default());
    }
    if let Some(database) = server.database() {
        let rows = dump(&database.url);
        assert!(rows.contains(&id), "the dump holds the account: {rows}");
        stored.extend(rows.into_bytes());
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(
        !stored.contains(api_key.as_str()),
        "API key stored in clear"
    );
}

/// Every row of the PostgreSQL database at `url`, as `pg_dump --data-only` prints them.
fn dump(url: &str) -> String {
    let output = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", url])
        .output()
        .expect("run pg_dump (Debian's postgresql-client-15)");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
