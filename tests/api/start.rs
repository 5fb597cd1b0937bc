//! Starting the server as a newcomer would: the port is taken before anything is created, a
//! data directory in use (on sled; on PostgreSQL a second server joins the first) or not
//! creatable gets a plain message, a currency or ledger origin the ledger cannot hold stops the start, and the logs say where the admin token came from, in plain
//! text off a terminal or as JSON lines when asked.

use std::process::Command;

use crate::helpers::{own_database, with_store, TestServer};
use crate::pg;

/// Runs `pennypost serve` on `dir`'s `data` and `keys`, and on `database` if given, until it
/// exits.
fn serve(
    dir: &std::path::Path,
    listen: &str,
    database: Option<&pg::TestDatabase>,
) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pennypost"));
    command
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir.join("data"))
        .arg("--keys-dir")
        .arg(dir.join("keys"));
    with_store(&mut command, database)
        .env("PENNYPOST_ADMIN_TOKEN", "t")
        .output()
        .expect("serve")
}

/// The tables of a PostgreSQL database (none before a server has made its schema).
fn tables(database: &pg::TestDatabase) -> String {
    pg::psql(
        &database.url,
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
}

#[tokio::test]
async fn a_taken_port_stops_the_start_before_anything_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let database = own_database();
    let output = serve(dir.path(), &address, database.as_ref());
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "data directory created");
    assert!(!dir.path().join("keys").exists(), "keys directory created");
    if let Some(database) = &database {
        assert_eq!(tables(database), "0", "schema created in the database");
    }
}

#[tokio::test]
async fn a_data_directory_in_use_gets_a_plain_message() {
    let server = TestServer::start().await;
    if let Some(database) = server.database() {
        return a_second_server_on_the_same_database_joins_the_first(&server, database).await;
    }
    let output = serve(server.work_dir(), "127.0.0.1:0", None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    // docs/operations.md quotes the message as printed (up to sled's own words), with the
    // data directory of its examples.
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    let data_dir = server.work_dir().join("data");
    let quoted = line.replace(&data_dir.display().to_string(), "/var/lib/pennypost/data");
    let end = quoted
        .find("one process per data directory;")
        .expect("the rule in the message")
        + "one process per data directory;".len();
    let operations =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
            .expect("docs/operations.md");
    let flowed = operations.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flowed.contains(&quoted[..end]),
        "docs/operations.md does not quote {:?}",
        &quoted[..end]
    );
    // The first server is unharmed.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
}

/// On PostgreSQL the data directory holds only the admin token and locks nothing: a second
/// server with the same directories and database starts, and the two are one service (an
/// account made through one is credited through the other).
async fn a_second_server_on_the_same_database_joins_the_first(
    server: &TestServer,
    database: &pg::TestDatabase,
) {
    let (data, keys) = (server.data_dir(), server.keys_dir());
    let second = crate::process::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--keys-dir",
            keys.to_str().expect("utf-8"),
            "--database",
            &database.url,
        ],
        // The harness's flat policy: another policy would be a new `policy` entry.
        crate::helpers::FLAT,
        &server.work_dir().join("second.log"),
        false,
    );
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/v1/accounts", second.base_url))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("create an account on the second server")
        .json()
        .await
        .expect("JSON");
    let id = created["account_id"].as_str().expect("account_id");
    let (status, body) = server.credit(id, 5, "joined").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], 5, "{body}");
}

#[tokio::test]
async fn a_data_directory_that_cannot_be_created_gets_a_plain_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory cannot be made under a regular file, even by root.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    let database = own_database();
    let output = serve(&file, "127.0.0.1:0", database.as_ref());
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot create the data directory"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_currency_or_origin_the_ledger_cannot_hold_stops_the_start() {
    // An empty currency would make every credit entry one the auditor rejects; an origin
    // with a space or a newline, a checkpoint no auditor can parse.
    let long = "c".repeat(33);
    let cases = [
        ("--currency", "", "currency must be 1 to 32"),
        ("--currency", " cents", "currency must be 1 to 32"),
        ("--currency", long.as_str(), "currency must be 1 to 32"),
        ("--ledger-origin", "", "--ledger-origin must be"),
        (
            "--ledger-origin",
            "example.com/a b",
            "--ledger-origin must be",
        ),
        (
            "--ledger-origin",
            "example.com\nforged",
            "--ledger-origin must be",
        ),
        ("--ledger-origin", "a+b", "--ledger-origin must be"),
    ];
    for (flag, value, said) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = own_database();
        let (data, keys) = (dir.path().join("data"), dir.path().join("keys"));
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            flag,
            value,
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--keys-dir",
            keys.to_str().expect("utf-8"),
        ];
        if let Some(database) = &database {
            args.extend(["--database", database.url.as_str()]);
        }
        let (code, stderr) = crate::process::refused(&args, &[], dir.path());
        assert_eq!(code, Some(2), "{flag} {value:?}");
        assert!(stderr.contains(said), "{flag} {value:?}: {stderr}");
        assert!(!data.exists(), "data directory created");
    }
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
