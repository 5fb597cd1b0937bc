//! A real PostgreSQL server for the tests: never a fake, and never a silent skip. A test that
//! needs PostgreSQL and cannot have it panics, naming `PENNYPOST_TEST_DATABASE_URL`.
//!
//! Included by the test binaries that need it, with only std:
//! `#[path = "../support/pg.rs"] mod pg;` from `tests/<binary>/main.rs`, or
//! `#[path = "support/pg.rs"] mod pg;` from `tests/<name>.rs`.
//!
//! - [`server_url`]: the server the tests make their databases on. `PENNYPOST_TEST_DATABASE_URL`
//!   when set (a superuser URL; `scripts/test` sets it to a throwaway cluster of its own);
//!   otherwise one throwaway cluster per test process, started by `scripts/pg-cluster` and
//!   removed by its watchdog about a second after the process has exited, however it exits.
//! - [`TestDatabase`]: a fresh database of one test on that server, dropped with it.
//! - [`OwnCluster`]: a cluster of one test's own, for tests that kill PostgreSQL during a burst
//!   of load and start it again on the same port.
//!
//! The databases are made and dropped with the `psql` client, and the clusters run as the
//! `postgres` OS user when the tests run as root (see `scripts/pg-cluster`).

// Every test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that names the PostgreSQL server of the tests.
pub const URL_VAR: &str = "PENNYPOST_TEST_DATABASE_URL";

/// The PostgreSQL server the tests make their databases on, as a URL whose user may create and
/// drop databases: `PENNYPOST_TEST_DATABASE_URL` if set and not empty, otherwise the URL of a
/// throwaway cluster that the first call in this process starts (later calls, from any thread,
/// get the same one). That cluster is started with `scripts/pg-cluster start DIR --owner-pid
/// <this process>`, so its watchdog stops it and removes DIR once this process is gone.
///
/// Panics, naming `PENNYPOST_TEST_DATABASE_URL`, when there is no URL and the cluster cannot
/// be started: the tests that need PostgreSQL fail, they never skip.
pub fn server_url() -> String {
    if let Some(url) = url_from_env() {
        return url;
    }
    static OWN: OnceLock<Result<String, String>> = OnceLock::new();
    // A failed start is kept too, so every test reports it instead of each trying again.
    match OWN.get_or_init(|| {
        run_script(&[
            "start",
            &cluster_dir().to_string_lossy(),
            "--owner-pid",
            &std::process::id().to_string(),
        ])
    }) {
        Ok(url) => url.clone(),
        Err(why) => panic!(
            "no PostgreSQL server for the tests: {URL_VAR} is not set, and starting a \
             throwaway cluster failed: {why}\nSet {URL_VAR} to a PostgreSQL URL whose user may \
             create databases (postgres://postgres@127.0.0.1:5432/postgres, say), or install \
             PostgreSQL 15 (Debian's postgresql-15; scripts/test installs it). These tests \
             never skip."
        ),
    }
}

/// `PENNYPOST_TEST_DATABASE_URL`, if set and not empty.
fn url_from_env() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        Ok(_) | Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => panic!("{URL_VAR} is not valid UTF-8"),
    }
}

/// A fresh database of its own for one test, on [`server_url`] (or on the server given to
/// [`TestDatabase::on`]), with a unique name `pp_<pid>_<counter>_<nanoseconds>`. Dropping it
/// drops the database, closing any connections still open to it.
pub struct TestDatabase {
    /// The database's URL: the server's URL with the database name as its path (any query
    /// string of the server's URL is kept).
    pub url: String,
    name: String,
    server: String,
}

// No Default: making a database is not a default value.
#[allow(clippy::new_without_default)]
impl TestDatabase {
    /// A new database on [`server_url`]. Panics if it cannot be created.
    pub fn new() -> TestDatabase {
        TestDatabase::on(&server_url())
    }

    /// A new database on the server at `server` (an [`OwnCluster`]'s `url`, say). Panics if it
    /// cannot be created.
    pub fn on(server: &str) -> TestDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "pp_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        )
        .to_lowercase();
        let url = with_database(server, &name);
        if let Err(why) = try_psql(server, &format!("CREATE DATABASE {name}")) {
            panic!(
                "could not create the test database {name} on {} ({URL_VAR} names the server \
                 of the tests): {why}",
                redact(server)
            );
        }
        TestDatabase {
            url,
            name,
            server: server.to_string(),
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    /// Drops the database, even with connections still open (`WITH (FORCE)`). Failures are
    /// ignored: a drop never panics, and the server may be gone already.
    fn drop(&mut self) {
        let _ = try_psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A PostgreSQL cluster of one test's own (`scripts/pg-cluster`), for tests that stop the
/// server during a burst of load: [`OwnCluster::kill`] stops it at once, as in a crash, keeping
/// its data, and [`OwnCluster::resume`] starts it again on the same port, so clients reconnect
/// to the same `url`. Dropping it stops the cluster and removes its directory; if the test
/// process dies instead, the cluster's watchdog does it.
pub struct OwnCluster {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`, the same for the cluster's whole life.
    pub url: String,
    dir: PathBuf,
}

impl OwnCluster {
    /// Starts a new cluster (about a second here). Panics if it cannot.
    pub fn start() -> OwnCluster {
        let dir = cluster_dir();
        let url = run_script(&[
            "start",
            &dir.to_string_lossy(),
            "--owner-pid",
            &std::process::id().to_string(),
        ])
        .unwrap_or_else(|why| {
            panic!("could not start a PostgreSQL cluster of the test's own: {why}")
        });
        OwnCluster { url, dir }
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: no shutdown checkpoint, every
    /// connection cut), keeping the data; the next start runs crash recovery. Panics if the
    /// server was not running.
    pub fn kill(&self) {
        self.script("kill");
    }

    /// Starts the server again after [`OwnCluster::kill`], on the same port, and returns once
    /// it accepts connections (after crash recovery). Panics if it cannot.
    pub fn resume(&self) {
        self.script("resume");
    }

    /// A clean restart: fast shutdown (if running), then start on the same port.
    pub fn restart(&self) {
        self.script("restart");
    }

    /// The cluster's directory: data in `data/`, the server log in `log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn script(&self, command: &str) {
        if let Err(why) = run_script(&[command, &self.dir.to_string_lossy()]) {
            panic!("scripts/pg-cluster {command} failed: {why}");
        }
    }
}

impl Drop for OwnCluster {
    /// Stops the cluster and removes its directory; failures are ignored (never panics).
    fn drop(&mut self) {
        let _ = run_script(&["stop", &self.dir.to_string_lossy()]);
    }
}

/// Runs `sql` with `psql` on the database at `url` and returns what it printed (unaligned,
/// tuples only: `select 1` gives "1"). Panics if psql fails.
pub fn psql(url: &str, sql: &str) -> String {
    try_psql(url, sql).unwrap_or_else(|why| panic!("psql on {} failed: {sql}: {why}", redact(url)))
}

/// `psql`: stops at the first error, reads no ~/.psqlrc, prints only the results.
fn try_psql(url: &str, sql: &str) -> Result<String, String> {
    let mut command = Command::new("psql");
    command.args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t"]);
    command.args([url, "-c", sql]);
    if std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
        command.env("PGCONNECT_TIMEOUT", "10");
    }
    let output = command
        .output()
        .map_err(|e| format!("could not run psql ({e}); it is in Debian's postgresql-client-15"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string())
    } else {
        Err(format!(
            "psql {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs `scripts/pg-cluster ARGS…` and returns its stdout, trimmed; on failure, its stderr.
fn run_script(args: &[&str]) -> Result<String, String> {
    let script = script()?;
    let output = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .map_err(|e| format!("could not run {}: {e}", script.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "{} {} exited with {}:\n{}",
            script.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ))
    }
}

/// `scripts/pg-cluster`, looked for in the crate's directory and those above it (so that a
/// crate of the workspace in a subdirectory finds it too).
fn script() -> Result<PathBuf, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("scripts").join("pg-cluster"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "scripts/pg-cluster not found in {} or above",
                manifest.display()
            )
        })
}

/// A new, not yet existing directory for a cluster. Under /tmp rather than TMPDIR: the
/// `postgres` OS user must be able to reach it, and the server's socket path in it has a short
/// length limit.
fn cluster_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    PathBuf::from(format!(
        "/tmp/pennypost-pg-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// `server` with its database (the URL's path) replaced by `name`; the query string, if any,
/// is kept: `postgres://u@h:5432/postgres?sslmode=disable` becomes
/// `postgres://u@h:5432/NAME?sslmode=disable`.
fn with_database(server: &str, name: &str) -> String {
    let Some(scheme_end) = server.find("://").map(|i| i + 3) else {
        panic!(
            "{URL_VAR} must be a URL (postgres://user@host:port/database), not {}",
            redact(server)
        );
    };
    let (base, query) = server.split_at(server.find('?').unwrap_or(server.len()));
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &base[..path_start])
}

/// `url` with its password, if any, replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &url[scheme_end + at..]
        ),
        _ => url.to_string(),
    }
}
