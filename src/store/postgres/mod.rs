//! The shared backend: PostgreSQL, through tokio-postgres and a deadpool-postgres pool.
//!
//! Several servers started with the same `--database` are one service over this store. What
//! makes them one (docs/ARCHITECTURE.md, "Several servers on one database", says it at length):
//!
//! - **One order.** Every batch is one database transaction that first locks the single `head`
//!   row `FOR UPDATE` (ledger size, last entry time, board position, board generation, policy).
//!   Batches of all servers therefore take turns; the index of each entry is read from and
//!   written to that row inside the transaction that commits the change, and the answer carries
//!   it. Every read a batch makes comes after the lock, so under READ COMMITTED it sees every
//!   batch committed before (each statement takes a new snapshot). Merkle hashes are computed
//!   once, by the rules, inside the same transaction.
//! - **Spent once.** The spent set is a table keyed by stamp id (`spends`): the rules check
//!   first, and the key decides anyway: a second spend of a stamp cannot commit.
//! - **Group commit.** Each server's writer still gathers up to 256 commands; a batch costs a
//!   handful of round trips, not one per command: what the batch will read, as the rules say
//!   ([`ReadSet`]), is fetched up front in one pipelined round of `= ANY($1)` queries
//!   ([`tx::PgTx::prefetch`]), the rules then run against that (any other read goes to the database), and the
//!   writes go out at the end as one pipelined round of multi-row statements (`UNNEST`
//!   arrays) with the `COMMIT` behind them. Each round trip is time every server waits for the
//!   ledger lock: see docs/performance.md, "Several servers on PostgreSQL". With `synchronous_commit`
//!   on, the commit is durable when it returns: [`Writes::sync`] has nothing left to do.
//! - **Faults.** A lost connection, a refused connect, a full pool or a statement past its
//!   timeout is [`StoreError::Unavailable`]: the request gets 503 and the server goes on; no
//!   batch is answered 2xx unless its `COMMIT` returned. Nothing is cached across batches, so
//!   there is nothing to repair when the database comes back.
//!
//! The rules are synchronous ([`StoreTx`]); the driver is async. [`PgStore`] owns a small tokio
//! runtime that drives its connections, and runs each database call to completion on the
//! calling thread ([`PgStore::block`]), from the writer thread, a request task (through
//! `block_in_place`) or a test thread alike.

mod listing;
mod payments;
mod schema;
mod tx;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::runtime::RuntimeFlavor;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use self::tx::PgTx;
use super::{Cluster, Exported, ReadSet, Reads, StoreError, TxBody, Writes};
use crate::domain::{Account, Hold, Post, Sale, SpentRecord, StampRecord};
use crate::keys::{KeyStatus, PublishedKey};
use crate::ledger::entry::SpendAction;
use crate::stamp::Kid;
use crate::time::Timestamp;

/// The named limits and settings of the connection to PostgreSQL (flags of `pennypost serve`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgLimits {
    /// PEM file of the certificate authorities that sign the database server's certificate
    /// (`--database-ca-file`). Given, every connection is TLS, and the server's certificate
    /// must chain to one of them and name the URL's host; without it, `sslmode=require` is
    /// refused (an encrypted connection to a server nobody checked is no protection).
    pub ca_file: Option<std::path::PathBuf>,
    /// Most connections this server holds (`--database-pool-size`).
    pub pool_size: usize,
    /// How long a connect may take, and how long a caller waits for a free connection
    /// (`--database-connect-timeout-ms`).
    pub connect_timeout: Duration,
    /// The longest one statement may run (`--database-statement-timeout-ms`); also the
    /// longest a transaction may sit idle, and the longest a batch waits for the ledger lock.
    pub statement_timeout: Duration,
}

impl Default for PgLimits {
    fn default() -> PgLimits {
        PgLimits {
            ca_file: None,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// Connections of the writer's own pool: one for its batches, one spare for a reconnect.
const WRITER_CONNECTIONS: usize = 2;

/// Attempts of one batch that hits a conflict (a unique violation or serialization failure:
/// another server got there first) before it is reported as [`StoreError::Conflict`].
const CONFLICT_ATTEMPTS: u32 = 5;

/// Session-level advisory lock held by the server that runs the background ledger check.
const AUDIT_LEADER_LOCK: i64 = 0x7070_6175_6469_7431;

pub struct PgStore {
    /// Connections for reads, quotes and the leader lock.
    pool: Pool,
    /// Connections for the writer's batches (and an import), apart from `pool`: a burst of
    /// reads that takes every connection of `pool` never keeps a batch waiting, and the writer
    /// never holds one connection while waiting for another.
    writer: Pool,
    /// Drives the connections; [`PgStore::block`] runs calls on it. An `Option` only so that
    /// dropping the store can shut it down without blocking (a runtime dropped inside another
    /// runtime's task would panic).
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// Drives the writer pool's connections, on the thread that waits for them: a batch's
    /// round trip then wakes the writer thread and PostgreSQL's backend only, not a third
    /// thread in between (each round trip is time every server waits for the ledger lock).
    /// Every call on a writer connection goes through [`PgStore::block_for`] with `writer`.
    writer_runtime: Option<tokio::runtime::Runtime>,
    /// The connection holding the audit leader lock, when this server holds it.
    leader: std::sync::Mutex<Option<deadpool_postgres::Object>>,
    /// The ledger size the last batch of this process committed (0 before the first).
    committed_size: std::sync::atomic::AtomicU64,
}

/// What a database error means for the caller.
pub(crate) fn db_error(e: &tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(code)
            if *code == SqlState::UNIQUE_VIOLATION
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            StoreError::Conflict
        }
        // The server is going away, or refused us: the database is not there for now.
        Some(code)
            if *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::QUERY_CANCELED
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT =>
        {
            StoreError::Unavailable(error_text(e))
        }
        Some(_) => StoreError::Storage(error_text(e)),
        // No SQLSTATE: the connection itself failed (closed, reset, timed out).
        None => StoreError::Unavailable(error_text(e)),
    }
}

/// A driver error with its causes: tokio-postgres says only "db error" or "error performing
/// TLS handshake" itself, and keeps what PostgreSQL or the TLS library said in its source.
fn error_text(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(&e),
        e => StoreError::Unavailable(format!("no database connection: {e}")),
    }
}

fn corrupt(tree: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        detail: detail.to_string(),
    }
}

/// A stored `bigint` as the `u64` the domain keeps: the same 64 bits (see [`to_i64`]).
fn to_u64(value: i64, _table: &'static str) -> Result<u64, StoreError> {
    Ok(value as u64)
}

/// A domain `u64` as a `bigint`: the same 64 bits, so every `u64` the rules can produce (a
/// balance up to `u64::MAX` included) reads back exactly. Real values stay far below 2^63 and
/// read as themselves in SQL; only a value past it would look negative there.
fn to_i64(value: u64) -> i64 {
    value as i64
}

fn kid_of(bytes: &[u8], table: &'static str) -> Result<Kid, StoreError> {
    let kid: [u8; 8] = bytes.try_into().map_err(|_| corrupt(table, "kid length"))?;
    Ok(Kid(kid))
}

fn action_of(text: &str) -> Result<SpendAction, StoreError> {
    match text {
        "post" => Ok(SpendAction::Post),
        "vote" => Ok(SpendAction::Vote),
        "redeem" => Ok(SpendAction::Redeem),
        "revoke" => Ok(SpendAction::Revoke),
        other => Err(corrupt("spends", format!("action {other}"))),
    }
}

/// Columns of `accounts`, in the order [`account_from_row`] reads them.
const ACCOUNT_COLUMNS: &str =
    "a.account_id, a.name, a.balance, a.stamps_purchased, a.stamps_spent, a.created_at, \
     a.refunds_total, a.debt";

fn account_from_row(row: &Row) -> Result<Account, StoreError> {
    Ok(Account {
        account_id: row.get(0),
        name: row.get(1),
        balance: to_u64(row.get(2), "accounts")?,
        stamps_purchased: to_u64(row.get(3), "accounts")?,
        stamps_spent: to_u64(row.get(4), "accounts")?,
        created_at: Timestamp::from_unix(row.get(5)),
        refunds_total: to_u64(row.get(6), "accounts")?,
        debt: to_u64(row.get(7), "accounts")?,
    })
}

/// Columns of `posts`, in the order [`post_from_row`] reads them.
const POST_COLUMNS: &str = "post_id, seq, author, body, created_at, score, ledger_index, \
     verified, payer, cost, votes_up, votes_down, voters, up_voters, base_postage, refunded";

fn post_from_row(row: &Row) -> Result<Post, StoreError> {
    Ok(Post {
        post_id: row.get(0),
        seq: to_u64(row.get(1), "posts")?,
        author: row.get(2),
        body: row.get(3),
        created_at: Timestamp::from_unix(row.get(4)),
        score: row.get(5),
        ledger_index: to_u64(row.get(6), "posts")?,
        verified: row.get(7),
        payer: row.get(8),
        cost: to_u64(row.get(9), "posts")?,
        votes_up: to_u64(row.get(10), "posts")?,
        votes_down: to_u64(row.get(11), "posts")?,
        voters: to_u64(row.get(12), "posts")?,
        up_voters: to_u64(row.get(13), "posts")?,
        base_postage: row
            .get::<_, Option<i64>>(14)
            .map(|v| to_u64(v, "posts"))
            .transpose()?,
        refunded: row.get(15),
    })
}

/// Columns of a stamp joined with its spend, in the order [`stamp_from_row`] reads them.
macro_rules! stamp_columns {
    () => {
        "s.stamp_id, s.buyer, s.kid, s.issued_at, s.expires_at, s.unit_price, p.spent_at, \
         p.action, p.spent_for, p.ledger_index"
    };
}
const STAMP_COLUMNS: &str = stamp_columns!();
/// One stamp by id, with its spend.
const STAMP_BY_ID: &str = concat!(
    "SELECT ",
    stamp_columns!(),
    " FROM stamps s LEFT JOIN spends p USING (stamp_id) WHERE s.stamp_id = $1"
);

/// A `hashes` row (`idx, hash`): the stored-hash index and the hash.
fn hash_from_row(row: &Row) -> Result<(u64, [u8; 32]), StoreError> {
    let hash = row
        .get::<_, &[u8]>(1)
        .try_into()
        .map_err(|_| corrupt("hashes", "hash length"))?;
    Ok((to_u64(row.get(0), "hashes")?, hash))
}

/// A stamp row (see [`STAMP_COLUMNS`]): its id, its sale, and its spend if spent.
fn stamp_from_row(row: &Row) -> Result<(Uuid, Sale, Option<SpentRecord>), StoreError> {
    let sale = Sale {
        buyer: row.get(1),
        kid: kid_of(row.get(2), "stamps")?,
        issued_at: Timestamp::from_unix(row.get(3)),
        expires_at: Timestamp::from_unix(row.get(4)),
        unit_price: row
            .get::<_, Option<i64>>(5)
            .map(|v| to_u64(v, "stamps"))
            .transpose()?,
    };
    let spent = match row.get::<_, Option<i64>>(6) {
        None => None,
        Some(spent_at) => Some(SpentRecord {
            spent_at: Timestamp::from_unix(spent_at),
            action: action_of(row.get(7))?,
            spent_for: row.get(8),
            ledger_index: to_u64(row.get(9), "spends")?,
        }),
    };
    Ok((row.get(0), sale, spent))
}

fn key_from_row(row: &Row) -> Result<PublishedKey, StoreError> {
    let status = match row.get::<_, &str>(2) {
        "active" => KeyStatus::Active,
        "retired" => KeyStatus::Retired,
        other => return Err(corrupt("published_keys", format!("status {other}"))),
    };
    Ok(PublishedKey {
        kid: kid_of(row.get(0), "published_keys")?,
        public_key: row.get(1),
        status,
        published_at: Timestamp::from_unix(row.get(3)),
    })
}

/// Runs `work` to completion with `block_on` (a runtime's or a handle's) from any caller:
/// directly from a plain thread (the writer), through `block_in_place` from a task of a
/// multi-threaded runtime (request handlers), and from a helper thread inside a
/// single-threaded runtime (which cannot block in place).
fn block_anywhere<F>(block_on: impl Fn(F) -> F::Output + Sync, work: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    match tokio::runtime::Handle::try_current() {
        Err(_) => block_on(work),
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| block_on(work))
        }
        Ok(_) => std::thread::scope(|scope| match scope.spawn(|| block_on(work)).join() {
            Ok(output) => output,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

/// The TLS connector for `--database-ca-file` (which makes TLS required: `config`'s sslmode is
/// set to `require`), or none (plain TCP, as `sslmode=disable` or `prefer` against a server
/// without TLS). Refuses `sslmode=require` without a CA file, and a CA file with
/// `sslmode=disable`.
fn tls_connector(
    config: &mut tokio_postgres::Config,
    ca_file: Option<&std::path::Path>,
) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, StoreError> {
    use rustls::pki_types::pem::PemObject as _;
    use tokio_postgres::config::SslMode;

    let refuse = |why: String| Err(StoreError::Storage(why));
    let Some(path) = ca_file else {
        if config.get_ssl_mode() == SslMode::Require {
            return refuse(
                "the database URL says sslmode=require: give --database-ca-file, the PEM file \
                 of the authority that signed the database server's certificate, so that the \
                 server is checked and not only encrypted to"
                    .into(),
            );
        }
        return Ok(None);
    };
    if config.get_ssl_mode() == SslMode::Disable {
        return refuse(
            "--database-ca-file asks for TLS, but the database URL says sslmode=disable".into(),
        );
    }
    let read = |e: &dyn std::fmt::Display| format!("--database-ca-file {}: {e}", path.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| StoreError::Storage(read(&e)))?
    {
        let cert = cert.map_err(|e| StoreError::Storage(read(&e)))?;
        roots.add(cert).map_err(|e| StoreError::Storage(read(&e)))?;
    }
    if roots.is_empty() {
        return refuse(read(&"holds no PEM certificate"));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Storage(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.ssl_mode(SslMode::Require);
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(client)))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://…`), creates or migrates its schema, and
    /// checks that it answers.
    pub fn open(url: &str, limits: &PgLimits) -> Result<PgStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Storage(format!("database URL: {e}")))?;
        let statement_ms = limits.statement_timeout.as_millis();
        config
            .connect_timeout(limits.connect_timeout)
            .application_name("pennypost")
            // What the guarantees rely on, whatever the database's defaults say: a commit is
            // on disk when it returns, and no statement or lock wait runs forever.
            .options(format!(
                "-c synchronous_commit=on -c default_transaction_isolation=read\\ committed \
                 -c statement_timeout={statement_ms} -c lock_timeout={statement_ms} \
                 -c idle_in_transaction_session_timeout={statement_ms}"
            ));
        let tls = tls_connector(&mut config, limits.ca_file.as_deref())?;
        let manager_of = |config: tokio_postgres::Config| {
            let manager_config = ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            };
            match &tls {
                Some(tls) => Manager::from_config(config, tls.clone(), manager_config),
                None => Manager::from_config(config, NoTls, manager_config),
            }
        };
        let manager = manager_of(config.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pennypost-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Storage(format!("cannot start the database runtime: {e}")))?;
        let build = |manager: Manager, size: usize| {
            let _inside = runtime.enter();
            Pool::builder(manager)
                .max_size(size)
                .wait_timeout(Some(limits.connect_timeout))
                .create_timeout(Some(limits.connect_timeout))
                .recycle_timeout(Some(limits.connect_timeout))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Storage(format!("database pool: {e}")))
        };
        let writer_manager = manager_of(config);
        let pool = build(manager, limits.pool_size.max(2))?;
        let writer = build(writer_manager, WRITER_CONNECTIONS)?;
        let writer_runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Storage(format!("cannot start the database runtime: {e}")))?;
        let store = PgStore {
            writer_runtime: Some(writer_runtime),
            pool,
            writer,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            leader: std::sync::Mutex::new(None),
            committed_size: std::sync::atomic::AtomicU64::new(0),
        };
        let mut client = store.connection()?;
        store
            .block(schema::migrate(&mut client))
            .map_err(|e| StoreError::Storage(format!("database schema: {e}")))?;
        drop(client);
        Ok(store)
    }

    /// Runs `work` to completion on the calling thread, with the store's runtime driving the
    /// connections ([`block_anywhere`]).
    fn block<F>(&self, work: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        block_anywhere(|work| self.handle.block_on(work), work)
    }

    /// [`PgStore::block`] for a connection of the reads' pool (`writer` false) or of the
    /// writer's pool (`writer` true: run on the writer runtime, the calling thread driving the
    /// connection itself).
    pub(super) fn block_for<F>(&self, writer: bool, work: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        match (writer, self.writer_runtime.as_ref()) {
            (true, Some(runtime)) => block_anywhere(|work| runtime.block_on(work), work),
            _ => self.block(work),
        }
    }

    /// Runs one query outside any transaction (a read of committed data).
    fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.block(async {
            let client = self.pool.get().await.map_err(pool_error)?;
            let statement = client.prepare_cached(sql).await.map_err(|e| db_error(&e))?;
            client
                .query(&statement, params)
                .await
                .map_err(|e| db_error(&e))
        })
    }

    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// A connection from the pool.
    fn connection(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.block(self.pool.get()).map_err(pool_error)
    }

    /// A connection of the writer's pool.
    fn writer_connection(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.block_for(true, self.writer.get()).map_err(pool_error)
    }

    /// Runs `body` in one transaction (holding the ledger lock when `write`, on the writer's
    /// connections), then commits; runs it again (a few times) when another server's
    /// transaction got in the way.
    fn transaction<R>(
        &self,
        write: bool,
        mut body: impl FnMut(&PgTx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client = if write {
                self.writer_connection()?
            } else {
                self.connection()?
            };
            let result = PgTx::run(self, &client, write, &mut body);
            if result.is_err() {
                self.roll_back(client, write);
            }
            match result {
                Err(StoreError::Conflict) if attempt < CONFLICT_ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    /// Rolls back the failed transaction on `client` (of the writer's pool when `writer`)
    /// before the connection goes back to its pool; one that cannot be rolled back (or is
    /// gone) is dropped from the pool instead.
    fn roll_back(&self, client: deadpool_postgres::Object, writer: bool) {
        let rolled_back = !client.is_closed()
            && self
                .block_for(writer, client.batch_execute("ROLLBACK"))
                .is_ok();
        if !rolled_back {
            let _ = deadpool_postgres::Object::take(client);
        }
    }

    /// Whether this server holds (or now takes) the lock that makes it the one server running
    /// the background ledger check. The lock is a session advisory lock on a connection kept
    /// for it: it goes with that connection, so a server that dies hands it on.
    pub fn audit_leader(&self) -> Result<bool, StoreError> {
        let mut held = self
            .leader
            .lock()
            .map_err(|_| StoreError::Storage("leader lock poisoned".into()))?;
        if let Some(client) = held.as_ref() {
            if !client.is_closed() {
                return Ok(true);
            }
        }
        *held = None;
        let client = self.connection()?;
        let row = self
            .block(client.query_one("SELECT pg_try_advisory_lock($1)", &[&AUDIT_LEADER_LOCK]))
            .map_err(|e| db_error(&e))?;
        if row.get::<_, bool>(0) {
            // Kept out of the pool's rotation: the lock lives as long as this connection.
            *held = Some(client);
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

impl PgStore {
    /// Copies a whole store into this one, which must be empty (a new database): `export`
    /// hands over every record ([`SledStore::export`](crate::store::SledStore::export)), and
    /// they are written as they are, in one transaction, so a failed copy leaves the database
    /// as empty as it was. Returns the count of records copied.
    pub fn import(
        &self,
        export: impl FnOnce(
            &mut dyn FnMut(Exported) -> Result<(), StoreError>,
        ) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        /// Records sent per round of statements.
        const IMPORT_CHUNK: u64 = 5_000;
        let export = std::cell::Cell::new(Some(export));
        let client = self.writer_connection()?;
        let result = PgTx::run(self, &client, true, &mut |tx: &PgTx<'_>| {
            let Some(export) = export.take() else {
                return Err(StoreError::Storage("the import ran twice".into()));
            };
            let filled = self
                .block_for(
                    true,
                    client.query_one(
                        "SELECT (SELECT ledger_size FROM head WHERE id = 1) > 0 \
                     OR EXISTS (SELECT 1 FROM accounts) OR EXISTS (SELECT 1 FROM published_keys) \
                     OR EXISTS (SELECT 1 FROM holds) OR EXISTS (SELECT 1 FROM payments)",
                        &[],
                    ),
                )
                .map_err(|e| db_error(&e))?;
            if filled.get::<_, bool>(0) {
                return Err(StoreError::Storage(
                    "the database already holds a pennypost store; migrate into an empty one"
                        .into(),
                ));
            }
            let mut records = 0u64;
            export(&mut |record| {
                tx.absorb(record)?;
                records += 1;
                if records % IMPORT_CHUNK == 0 {
                    tx.flush_and_clear()?;
                }
                Ok(())
            })?;
            Ok(records)
        });
        if result.is_err() {
            self.roll_back(client, true);
        }
        result
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Ok(mut leader) = self.leader.lock() {
            leader.take();
        }
        self.pool.close();
        self.writer.close();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        if let Some(runtime) = self.writer_runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Writes for PgStore {
    fn write(&self, reads: &ReadSet, body: &mut TxBody<'_>) -> Result<(), StoreError> {
        let size = self.transaction(true, |tx| {
            tx.prefetch(reads)?;
            body(tx)?;
            super::StoreTx::ledger_size(tx)
        })?;
        self.committed_size
            .fetch_max(size, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    fn read(&self, body: &mut TxBody<'_>) -> Result<(), StoreError> {
        self.transaction(false, |tx| body(tx))
    }

    fn synced_size(&self) -> Result<u64, StoreError> {
        // The size this server's last batch committed, known without a round trip; other
        // servers may have appended since (a reader that needs them asks `ledger_size`).
        Ok(self
            .committed_size
            .load(std::sync::atomic::Ordering::Acquire))
    }

    fn sync(&self) -> Result<(), StoreError> {
        // Every batch's COMMIT returned after PostgreSQL made it durable
        // (synchronous_commit = on): there is nothing left to sync.
        Ok(())
    }

    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        // Compare and set: a server that signed an older size never replaces a newer one.
        self.query(
            "INSERT INTO checkpoint (id, size, note) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, note = EXCLUDED.note \
             WHERE checkpoint.size < EXCLUDED.size",
            &[&to_i64(size), &note],
        )?;
        Ok(())
    }
}

impl Cluster for PgStore {
    fn shared(&self) -> bool {
        true
    }

    fn pools(&self) -> Vec<super::PoolState> {
        [("read", &self.pool), ("writer", &self.writer)]
            .into_iter()
            .map(|(pool, p)| {
                let status = p.status();
                super::PoolState {
                    pool,
                    max: status.max_size,
                    open: status.size,
                    idle: status.available,
                    waiting: status.waiting,
                }
            })
            .collect()
    }

    fn board_generation(&self) -> Result<Option<u64>, StoreError> {
        let row = self
            .query_opt("SELECT board_generation FROM head WHERE id = 1", &[])?
            .ok_or_else(|| corrupt("head", "no head row"))?;
        Ok(Some(to_u64(row.get(0), "head")?))
    }

    fn audit_leader(&self) -> Result<bool, StoreError> {
        PgStore::audit_leader(self)
    }
}

impl Reads for PgStore {
    fn ledger_size(&self) -> Result<u64, StoreError> {
        let row = self
            .query_opt("SELECT ledger_size FROM head WHERE id = 1", &[])?
            .ok_or_else(|| corrupt("head", "no head row"))?;
        to_u64(row.get(0), "head")
    }

    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError> {
        self.query_opt(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.account_id = $1"),
            &[&account_id],
        )?
        .map(|row| account_from_row(&row))
        .transpose()
    }

    fn account_by_api_key(&self, api_key_sha256: &[u8; 32]) -> Result<Option<Account>, StoreError> {
        self.query_opt(
            &format!(
                "SELECT {ACCOUNT_COLUMNS} FROM api_keys k JOIN accounts a USING (account_id) \
                 WHERE k.api_key_sha256 = $1"
            ),
            &[&&api_key_sha256[..]],
        )?
        .map(|row| account_from_row(&row))
        .transpose()
    }

    fn stamp(&self, stamp_id: Uuid) -> Result<Option<StampRecord>, StoreError> {
        let Some(row) = self.query_opt(STAMP_BY_ID, &[&stamp_id])? else {
            return Ok(None);
        };
        let (stamp_id, sale, spent) = stamp_from_row(&row)?;
        Ok(Some(StampRecord {
            stamp_id,
            buyer: sale.buyer,
            kid: sale.kid,
            issued_at: sale.issued_at,
            expires_at: sale.expires_at,
            spent,
        }))
    }

    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError> {
        self.query_opt(
            &format!("SELECT {POST_COLUMNS} FROM posts WHERE post_id = $1"),
            &[&post_id],
        )?
        .map(|row| post_from_row(&row))
        .transpose()
    }

    fn hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        self.query_opt(
            &format!(
                "SELECT {} FROM holds h WHERE h.hold_id = $1",
                tx::HOLD_COLUMNS
            ),
            &[&hold_id],
        )?
        .map(|row| tx::hold_from_row(&row, 0))
        .transpose()
    }

    fn posts(&self, before: Option<Uuid>, limit: usize) -> Result<Option<Vec<Post>>, StoreError> {
        let upper = match before {
            Some(id) => match self.query_opt("SELECT seq FROM posts WHERE post_id = $1", &[&id])? {
                Some(row) => row.get::<_, i64>(0),
                None => return Ok(None),
            },
            None => i64::MAX,
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query(
            &format!("SELECT {POST_COLUMNS} FROM posts WHERE seq < $1 ORDER BY seq DESC LIMIT $2"),
            &[&upper, &limit],
        )?;
        rows.iter()
            .map(post_from_row)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    fn entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let end = start.saturating_add(limit);
        let rows = self.query(
            "SELECT body FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
            &[&to_i64(start), &to_i64(end)],
        )?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }

    fn hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        let wanted: Vec<i64> = indexes.iter().map(|i| to_i64(*i)).collect();
        let rows = self.query(
            "SELECT idx, hash FROM hashes WHERE idx = ANY($1)",
            &[&wanted],
        )?;
        let found = rows
            .iter()
            .map(hash_from_row)
            .collect::<Result<std::collections::HashMap<_, _>, _>>()?;
        indexes
            .iter()
            .map(|i| {
                found
                    .get(i)
                    .copied()
                    .ok_or_else(|| corrupt("hashes", format!("missing hash {i}")))
            })
            .collect()
    }

    fn published_keys(&self) -> Result<Vec<PublishedKey>, StoreError> {
        self.query(
            "SELECT kid, public_key, status, published_at FROM published_keys ORDER BY kid",
            &[],
        )?
        .iter()
        .map(key_from_row)
        .collect()
    }

    fn checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.query_opt("SELECT size, note FROM checkpoint WHERE id = 1", &[])?
            .map(|row| Ok((to_u64(row.get(0), "checkpoint")?, row.get(1))))
            .transpose()
    }
}
