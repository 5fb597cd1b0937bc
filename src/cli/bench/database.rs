//! The PostgreSQL database of a `--database` run: a fresh one per run, created on the server
//! the URL names (through the database the URL names, which is otherwise left alone) and
//! dropped at the end, so that runs never see each other's rows and nothing is left behind.

use std::str::FromStr as _;
use std::time::Duration;

use rand_core::{OsRng, RngCore as _};
use tokio_postgres::NoTls;

use crate::cli::serve::redact_url;

/// How long connecting to the PostgreSQL server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct BenchDatabase {
    /// The URL given, through which the database is created and dropped.
    admin_url: String,
    pub(super) name: String,
    /// The URL of the new database, for the servers.
    pub(super) url: String,
    /// The cluster's postmaster, when it runs on this machine (a loopback or Unix-socket URL).
    pub(super) postmaster: Option<u32>,
}

impl BenchDatabase {
    /// Creates a database of a random name on the server at `url`.
    pub(super) async fn create(url: &str) -> Result<BenchDatabase, String> {
        let mut random = [0u8; 6];
        OsRng.fill_bytes(&mut random);
        let name = format!("pennypost_bench_{}", hex::encode(random));
        let client = connect(url).await?;
        // The name is ours (letters, digits, underscores): nothing to quote.
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("cannot create database {name} on {}: {e}", redact_url(url)))?;
        let postmaster = if is_local(url) {
            local_postmaster(&client).await
        } else {
            None
        };
        Ok(BenchDatabase {
            admin_url: url.to_string(),
            url: with_database(url, &name),
            name,
            postmaster,
        })
    }

    /// Drops the database, closing whatever connections to it are left.
    pub(super) async fn drop_database(&self) -> Result<(), String> {
        let client = connect(&self.admin_url).await?;
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .map_err(|e| format!("cannot drop database {}: {e}", self.name))
    }
}

/// Whether every host of `url` is this machine.
fn is_local(url: &str) -> bool {
    let Ok(config) = tokio_postgres::Config::from_str(url) else {
        return false;
    };
    let hosts = config.get_hosts();
    !hosts.is_empty()
        && hosts.iter().all(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => {
                name == "localhost" || name == "::1" || name.starts_with("127.")
            }
            tokio_postgres::config::Host::Unix(_) => true,
        })
}

/// The postmaster of the cluster `client` is connected to: the parent of its backend, when
/// that is a local process named `postgres`.
async fn local_postmaster(client: &tokio_postgres::Client) -> Option<u32> {
    let row = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .ok()?;
    let backend: i32 = row.get(0);
    let stat = std::fs::read_to_string(format!("/proc/{backend}/stat")).ok()?;
    let (name, rest) = stat.split_once(" (")?.1.rsplit_once(')')?;
    let parent: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
    let parent_stat = std::fs::read_to_string(format!("/proc/{parent}/stat")).ok()?;
    (name == "postgres" && parent_stat.contains("(postgres)")).then_some(parent)
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let what = redact_url(url);
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| format!("cannot connect to {what}: no answer within 10 s"))?
            .map_err(|e| format!("cannot connect to {what}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `url` naming database `name` instead: the path of a `postgres://` or `postgresql://` URL
/// replaced (its query kept), or `dbname=` added to a `key=value` connection string.
fn with_database(url: &str, name: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("{url} dbname={name}");
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(authority, _)| authority);
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:55432/postgres", "b"),
            "postgres://postgres@127.0.0.1:55432/b"
        );
        assert_eq!(
            with_database("postgresql://u:p@h:1/db?sslmode=disable", "b"),
            "postgresql://u:p@h:1/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "b"), "postgres://h/b");
        assert_eq!(with_database("postgres://h?x=1", "b"), "postgres://h/b?x=1");
        assert_eq!(
            with_database("host=h user=u dbname=d", "b"),
            "host=h user=u dbname=d dbname=b"
        );
    }
}
