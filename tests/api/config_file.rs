//! `serve --config FILE` (docs/api.md, "Config file"): the file's values are used; the
//! environment beats the file and a flag beats the environment; an unknown key, a value of the
//! wrong type and a missing file stop the start (exit 2) with a message naming the key or file.

use std::path::Path;

use serde_json::Value;

use crate::process::{refused, start};

/// Writes `text` as the config file in `dir`.
fn config(dir: &Path, text: &str) -> String {
    let path = dir.join("pennypost.toml");
    std::fs::write(&path, text).expect("write config");
    path.to_str().expect("utf-8").to_string()
}

/// The stamp price a running server answers in `GET /v1/prices`.
async fn stamp_price(base_url: &str) -> u64 {
    let prices: Value = reqwest::get(format!("{base_url}/v1/prices"))
        .await
        .expect("GET /v1/prices")
        .json()
        .await
        .expect("JSON");
    prices["stamp_price"].as_u64().expect("stamp_price")
}

/// A config file that places the server: port 0, and its directories under `dir`.
fn placed(dir: &Path, more: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nkeys_dir = {:?}\n{more}",
        dir.join("data").to_str().expect("utf-8"),
        dir.join("keys").to_str().expect("utf-8"),
    )
}

#[tokio::test]
async fn the_file_the_environment_and_flags_take_their_turns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = config(dir.path(), &placed(dir.path(), "stamp_price = 2\n"));
    let log = dir.path().join("server.log");

    // The file's value, through --config.
    let server = start(&["--config", &file], &[], &log, false);
    assert_eq!(stamp_price(&server.base_url).await, 2);
    // Its directories and address came from the file too.
    assert!(dir.path().join("data").join("db").exists());
    assert!(dir.path().join("keys").exists());
    drop(server);

    // The environment beats the file (found through PENNYPOST_CONFIG this time).
    let server = start(
        &[],
        &[("PENNYPOST_CONFIG", &file), ("PENNYPOST_STAMP_PRICE", "3")],
        &log,
        false,
    );
    assert_eq!(stamp_price(&server.base_url).await, 3);
    drop(server);

    // A flag beats the environment.
    let server = start(
        &["--config", &file, "--stamp-price", "4"],
        &[("PENNYPOST_STAMP_PRICE", "3")],
        &log,
        false,
    );
    assert_eq!(stamp_price(&server.base_url).await, 4);
}

#[test]
fn bad_files_stop_the_start_and_say_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        // The environment variable's name is not a key (`database` is): an unknown key.
        ("database_url = \"postgres://x\"\n", "`database_url`"),
        ("database_pool_size = \"many\"\n", "`database_pool_size`"),
        ("stamp_prices = 2\n", "`stamp_prices`"),
        ("stamp_price = \"two\"\n", "`stamp_price`"),
        ("metrics_listen = 9090\n", "`metrics_listen`"),
        ("retire_missing_keys = \"yes\"\n", "`retire_missing_keys`"),
    ];
    for (text, key) in cases {
        let file = config(dir.path(), &placed(dir.path(), text));
        let (code, stderr) = refused(&["--config", &file], &[], dir.path());
        assert_eq!(code, Some(2), "{text}: {stderr}");
        assert!(stderr.contains(key), "{text}: {stderr}");
        assert!(
            stderr.contains(&file),
            "the message names the file: {stderr}"
        );
    }
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().expect("utf-8");
    let (code, stderr) = refused(&["--config", missing], &[], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(missing), "{stderr}");
    // Nothing was started in the data directory by a refused start.
    assert!(!dir.path().join("data").exists());
}

/// The database is named by the file's `database` key, by `PENNYPOST_DATABASE_URL`, or by the
/// flag, as every other setting; two servers named at one database by either way are one
/// service. (Runs on both test backends: it makes its own database.)
#[tokio::test]
async fn the_database_can_be_named_in_the_file_or_the_environment() {
    let database = crate::pg::TestDatabase::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let first_dir = dir.path().join("first");
    std::fs::create_dir_all(&first_dir).expect("dir");
    let more = format!("database = {:?}\ndatabase_pool_size = 3\n", database.url);
    let file = config(&first_dir, &placed(&first_dir, &more));
    let log = dir.path().join("server.log");
    let first = start(&["--config", &file], &[], &log, false);
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/v1/accounts", first.base_url))
        .json(&serde_json::json!({"name": "from-the-file"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("JSON");
    let api_key = created["api_key"].as_str().expect("api_key").to_string();
    // On PostgreSQL: no sled database in the data directory, the account in the database.
    assert!(!first_dir.join("data").join("db").exists());
    assert_eq!(
        crate::pg::psql(&database.url, "SELECT count(*) FROM accounts"),
        "1"
    );

    // A second server named at the database by the environment (and its own directories by
    // flags) serves the same account.
    let second_dir = dir.path().join("second");
    let second = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            second_dir.join("data").to_str().expect("utf-8"),
            "--keys-dir",
            first_dir.join("keys").to_str().expect("utf-8"),
        ],
        &[("PENNYPOST_DATABASE_URL", &database.url)],
        &log,
        false,
    );
    let account: Value = client
        .get(format!("{}/v1/account", second.base_url))
        .bearer_auth(&api_key)
        .send()
        .await
        .expect("account")
        .json()
        .await
        .expect("JSON");
    assert_eq!(account["name"], "from-the-file", "{account}");
    assert!(!second_dir.join("data").join("db").exists());
}
