//! Issuer keys: rotation keeps old stamps valid, both events reach the ledger; key files are
//! refused when others can read them.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::{with_store, TestServer};

fn entries(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("entry json"))
        .collect()
}

#[tokio::test]
async fn rotation_retires_old_key_which_still_verifies() {
    let mut server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 2).await;
    let (_, before) = server.get("/v1/keys").await;
    let old_kid = before["keys"][0]["kid"].as_str().expect("kid").to_string();

    server.kill();
    let status = Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(["keys", "rotate", "--keys-dir"])
        .arg(server.keys_dir())
        .status()
        .expect("rotate");
    assert!(status.success());
    server.restart();

    let (_, after) = server.get("/v1/keys").await;
    let keys = after["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{after}");
    let old = keys
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .expect("old key");
    assert_eq!(old["status"], "retired");
    let new = keys
        .iter()
        .find(|k| k["kid"] != old_kid.as_str())
        .expect("new key");
    assert_eq!(new["status"], "active");

    // A stamp signed by the retired key still verifies and spends.
    let (status, body) = server
        .post("/v1/stamps/verify", None, json!({"stamp": stamps[0]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["valid"], true, "{body}");
    let (status, body) = server
        .post(
            "/v1/stamps/redeem",
            None,
            json!({"stamp": stamps[0], "context": "c"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // New stamps are signed by the new key.
    let (_key, fresh) = server.stamps(10, 1).await;
    let (_, body) = server
        .post("/v1/stamps/verify", None, json!({"stamp": fresh[0]}))
        .await;
    assert_eq!(body["kid"], new["kid"], "{body}");

    // Both events are in the ledger, the retirement before the activation.
    let (_, text) = server.get_text("/v1/ledger/entries").await;
    let keys: Vec<Value> = entries(&text)
        .into_iter()
        .filter(|e| e["kind"] == "key")
        .collect();
    let statuses: Vec<(String, String)> = keys
        .iter()
        .map(|e| {
            (
                e["kid"].as_str().unwrap_or("").to_string(),
                e["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (old_kid.clone(), "active".to_string()),
            (old_kid.clone(), "retired".to_string()),
            (
                new["kid"].as_str().expect("kid").to_string(),
                "active".to_string()
            ),
        ]
    );
    // A restart without rotation publishes nothing new.
    let (_, size_before) = server.get_text("/v1/ledger/checkpoint").await;
    server.restart();
    let (_, size_after) = server.get_text("/v1/ledger/checkpoint").await;
    assert_eq!(
        size_before.lines().nth(1),
        size_after.lines().nth(1),
        "restart appended entries"
    );
}

#[tokio::test]
async fn key_files_are_private_and_refused_when_readable() {
    let mut server = TestServer::start().await;
    server.kill();
    let mut files = 0;
    for entry in std::fs::read_dir(server.keys_dir()).expect("keys dir") {
        let path = entry.expect("entry").path();
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
        files += 1;
    }
    assert_eq!(files, 2, "one issuer key and the ledger key");
    let issuer = std::fs::read_dir(server.keys_dir())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("stamp-"))
        })
        .expect("issuer key");
    std::fs::set_permissions(&issuer, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = serve_output(&server, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

/// Runs `pennypost serve` by hand on the server's directories and store, until it exits.
fn serve_output(server: &TestServer, extra: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pennypost"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(server.data_dir())
        .arg("--keys-dir")
        .arg(server.keys_dir());
    with_store(&mut command, server.database())
        .args(extra)
        .env("PENNYPOST_ADMIN_TOKEN", "x")
        .output()
        .expect("serve")
}

fn stamp_key_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .expect("keys dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("stamp-"))
        })
        .collect()
}

#[tokio::test]
async fn a_missing_active_key_stops_the_start_until_retired_explicitly() {
    let mut server = TestServer::start().await;
    let (_key, stamps) = server.stamps(10, 3).await;
    let (_, before) = server.get("/v1/keys").await;
    let old_kid = before["keys"][0]["kid"].as_str().expect("kid").to_string();
    server.kill();
    let files = stamp_key_files(&server.keys_dir());
    assert_eq!(files.len(), 1);
    std::fs::remove_file(&files[0]).expect("remove key file");

    // Refused, naming the key and the directory, and nothing made in its place.
    let output = serve_output(&server, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&old_kid), "{stderr}");
    assert!(
        stderr.contains(&server.keys_dir().display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("--retire-missing-keys"), "{stderr}");
    assert!(stamp_key_files(&server.keys_dir()).is_empty());

    // The explicit way out: the old key is retired, a new one made, and old stamps still
    // verify and spend (their public key is in the ledger).
    let mut server = server;
    server.set_extra_args(&["--retire-missing-keys"]);
    server.restart();
    assert!(server.logs().contains("--retire-missing-keys"), "logged");
    let (_, after) = server.get("/v1/keys").await;
    let keys = after["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{after}");
    let old = keys
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .expect("old key still listed");
    assert_eq!(old["status"], "retired");
    assert_eq!(old["public_key"], before["keys"][0]["public_key"]);
    let new_kid = keys
        .iter()
        .find(|k| k["kid"] != old_kid.as_str())
        .expect("new key")["kid"]
        .clone();
    let (_, body) = server.verify(&stamps[0]).await;
    assert_eq!(body["valid"], true, "{body}");
    let (status, body) = server.redeem(&stamps[1], "after-recovery").await;
    assert_eq!(status, 201, "{body}");
    let (_key, fresh) = server.stamps(10, 1).await;
    let (_, body) = server.verify(&fresh[0]).await;
    assert_eq!(body["kid"], new_kid, "{body}");

    // The retirement comes before the activation, so the audit holds.
    let (_, report) = server.get("/v1/audit").await;
    assert_eq!(report["ok"], true, "{report}");

    // Later starts need no flag: the ledger's active key is the new one, which is on file.
    server.set_extra_args(&[]);
    server.restart();
    let (_, body) = server.verify(&stamps[2]).await;
    assert_eq!(body["valid"], true, "{body}");
}

#[tokio::test]
async fn keys_rotate_refuses_a_directory_without_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(["keys", "rotate", "--keys-dir"])
        .arg(dir.path())
        .output()
        .expect("rotate");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no issuer key"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

/// Runs `pennypost serve` on the server's data directory and store with `keys_dir`.
fn serve_with_keys_dir(server: &TestServer, keys_dir: &std::path::Path) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pennypost"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(server.data_dir())
        .arg("--keys-dir")
        .arg(keys_dir);
    let output = with_store(&mut command, server.database())
        .env("PENNYPOST_ADMIN_TOKEN", "x")
        .output()
        .expect("serve");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `--keys-dir` naming a file says so (not `File exists`), and a start refused because the
/// ledger's key is not in the keys directory leaves no empty keys directory behind.
#[tokio::test]
async fn a_wrong_keys_dir_is_named_and_a_refused_start_creates_none() {
    let mut server = TestServer::start().await;
    server.kill();
    let key_file = stamp_key_files(&server.keys_dir()).remove(0);
    let (code, stderr) = serve_with_keys_dir(&server, &key_file);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is not a directory"), "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");

    let elsewhere = server.work_dir().join("no-such-keys");
    let (code, stderr) = serve_with_keys_dir(&server, &elsewhere);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no secret key file"), "{stderr}");
    assert!(
        !elsewhere.exists(),
        "the refused start created {}",
        elsewhere.display()
    );
}
