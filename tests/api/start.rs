//! Starting the server as a newcomer would: the port is taken before anything is created, a
//! data directory in use or not creatable gets a plain message, and the logs say where the
//! admin token came from, in plain text off a terminal or as JSON lines when asked.

use std::process::Command;

use crate::helpers::TestServer;

fn serve(dir: &std::path::Path, listen: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir.join("data"))
        .arg("--keys-dir")
        .arg(dir.join("keys"))
        .args(extra)
        .env("PENNYPOST_ADMIN_TOKEN", "t")
        .output()
        .expect("serve")
}

#[tokio::test]
async fn a_taken_port_stops_the_start_before_anything_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let output = serve(dir.path(), &address, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "data directory created");
    assert!(!dir.path().join("keys").exists(), "keys directory created");
}

#[tokio::test]
async fn a_data_directory_in_use_gets_a_plain_message() {
    let server = TestServer::start().await;
    let output = Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(server.data_dir())
        .arg("--keys-dir")
        .arg(server.keys_dir())
        .env("PENNYPOST_ADMIN_TOKEN", "t")
        .output()
        .expect("serve");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    // The first server is unharmed.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_data_directory_that_cannot_be_created_gets_a_plain_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory cannot be made under a regular file, even by root.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    let output = serve(&file, "127.0.0.1:0", &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot create the data directory"),
        "{stderr}"
    );
}

#[tokio::test]
async fn logs_are_plain_off_a_terminal_and_json_lines_when_asked() {
    let mut server = TestServer::start().await;
    server.get("/healthz").await;
    let logs = server.logs();
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in a log file: {logs:?}"
    );
    assert!(logs.contains("admin token from the environment"), "{logs}");
    server.kill();
    server.set_extra_args(&["--log-format", "json"]);
    let before = server.logs().len();
    server.restart();
    server.get("/healthz").await;
    let logs = server.logs();
    let new: Vec<&str> = logs[before..].lines().filter(|l| !l.is_empty()).collect();
    assert!(!new.is_empty());
    for line in new {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
}
