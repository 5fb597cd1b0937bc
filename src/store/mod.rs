//! The store: durable state, and the interface of basic operations the rules run over.
//!
//! Owns: accounts, balances, the sold and spent sets, posts and scores, idempotency records and
//! the ledger (entries and Merkle hashes), as the records of [`crate::domain`]. The rules
//! (`crate::rules`) own every transaction: they ask [`Writes::write`] for one, hand it the
//! [`ReadSet`] they computed from the batch, and decide every outcome and refusal through the
//! [`StoreTx`] the backend passes to their closure. [`Writes::sync`] then makes everything
//! written durable; the group committer (`crate::commit`) calls it once per batch.
//!
//! A backend provides three parts, together a [`Store`]: [`Writes`] (a transaction of the
//! basic operations of [`StoreTx`], reads that see its own writes, all-or-nothing commit;
//! `sync`, `backup`), [`Reads`] (the committed state, for the services) and [`Cluster`] (what
//! several servers on one store coordinate). It decides no refusal of its own: it reports
//! storage failures ([`StoreError`]) and nothing else, and it knows no command.
//!
//! Must not: check signatures, read the clock, know about HTTP, or import the rules.

pub mod memory;
pub mod payments;
pub mod postgres;
pub mod sled_store;

use std::path::Path;

use uuid::Uuid;

use crate::domain::{
    Account, CreditRecord, Hold, Payment, Policy, Post, PurchaseRecord, Sale, SoldStamp,
    SpentRecord, StampRecord, StampRef, Voter,
};
use crate::keys::PublishedKey;
use crate::stamp::Kid;
use crate::time::Timestamp;

pub use memory::MemoryStore;
pub use payments::{PaymentOrder, Payments, PAYMENTS_LIST_MAX};
pub use postgres::{PgLimits, PgStore};
pub use sled_store::SledStore;

/// What a batch will read, as the rules say from its commands (`crate::rules::reads`), so that
/// a backend whose every read is a round trip (PostgreSQL) can fetch it all up front, in one
/// round. Reads outside it still work (each costs its own round trip there). A backend whose
/// reads are cheap (sled, memory) may ignore it. Limits here are the rules' own, passed
/// through: a backend reads what it is asked and never decides how much the rules need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSet {
    /// Accounts by id.
    pub accounts: Vec<Uuid>,
    /// Whether an account holds each API key hash.
    pub api_keys: Vec<[u8; 32]>,
    /// The accounts holding these normalised names.
    pub names: Vec<String>,
    /// Credits by reference SHA-256.
    pub credits: Vec<[u8; 32]>,
    /// Purchases by account and Idempotency-Key SHA-256.
    pub purchases: Vec<(Uuid, [u8; 32])>,
    /// Published keys by kid.
    pub kids: Vec<Kid>,
    /// Whether these stamp ids were sold (whatever their issue time): a purchase's new ids.
    pub new_stamps: Vec<Uuid>,
    /// Sold stamps as their signed payloads name them, the accounts of their buyers and the
    /// last hold of each (with that hold).
    pub stamps: Vec<StampRef>,
    /// Posts by id.
    pub posts: Vec<Uuid>,
    /// The voter record of (post, the buyer of the stamp).
    pub voters: Vec<(Uuid, StampRef)>,
    /// The newest post times of the buyer of each stamp, up to [`ReadSet::recent_posts_max`]
    /// of each.
    pub recent_posts: Vec<StampRef>,
    /// Most post times [`ReadSet::recent_posts`] reads of one payer.
    pub recent_posts_max: u64,
    /// Holds by id (a capture or release), with the stamps each holds.
    pub holds: Vec<Uuid>,
    /// The purchases of these accounts that have not expired by the ledger's last entry time,
    /// newest first, up to [`ReadSet::account_purchases_max`] of each (a debit's revoke).
    pub account_purchases: Vec<Uuid>,
    /// Most purchases [`ReadSet::account_purchases`] reads of one account.
    pub account_purchases_max: u64,
}

impl ReadSet {
    /// Whether the set names nothing.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.api_keys.is_empty()
            && self.names.is_empty()
            && self.credits.is_empty()
            && self.purchases.is_empty()
            && self.kids.is_empty()
            && self.new_stamps.is_empty()
            && self.stamps.is_empty()
            && self.posts.is_empty()
            && self.voters.is_empty()
            && self.recent_posts.is_empty()
            && self.holds.is_empty()
            && self.account_purchases.is_empty()
    }
}

/// The body a transaction runs: the rules, over the backend's [`StoreTx`]. A backend may run it
/// more than once (sled runs it again after a conflict), so it keeps its results by
/// overwriting, never by appending.
pub type TxBody<'b> = dyn FnMut(&dyn StoreTx) -> Result<(), StoreError> + 'b;

/// One database connection pool at a moment ([`Cluster::pools`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolState {
    /// `read` (reads, quotes, the leader lock) or `writer` (the writer's batches).
    pub pool: &'static str,
    /// Connections the pool may open.
    pub max: usize,
    /// Connections open now.
    pub open: usize,
    /// Open connections no caller holds.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// A failure of the storage itself. Nothing of the batch was applied.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Occurs inside a transaction when the backend found a concurrent transaction in the
    /// way; the backend runs the whole batch again (sled's conflict, a serialization failure).
    #[error("transaction conflict")]
    Conflict,
    /// Occurs when a database server cannot be reached for now (connection refused or lost,
    /// no free connection in time, a statement past its timeout, the server shutting down).
    /// Nothing of the batch was committed; the same request may succeed later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Occurs when the database cannot be read or written (disk full, I/O error).
    #[error("storage: {0}")]
    Storage(String),
    /// Occurs when stored bytes do not decode: the data directory was damaged or edited.
    #[error("corrupt record in {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
}

/// Why [`Store::backup`] wrote no copy.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Occurs when the backend takes no backups through the server (a database server with
    /// backup tools of its own).
    #[error("this store takes no backups through the server; use the database's own tools")]
    NotSupported,
    /// Occurs when the store cannot be read or the copy cannot be written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One record of a whole store, as `pennypost migrate` hands it from one backend to another
/// ([`SledStore::export`] to [`PgStore::import`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exported {
    /// The ledger's size, the time of its last entry, the board's next position and the policy
    /// in force. Always first.
    Head {
        ledger_size: u64,
        last_time: Timestamp,
        post_seq: u64,
        policy: Option<Policy>,
    },
    Key(PublishedKey),
    Account(Account),
    /// An API key's SHA-256 and its account.
    ApiKey([u8; 32], Uuid),
    /// A normalised account name and its account.
    Name(String, Uuid),
    /// A credit reference's SHA-256 and its record.
    Credit([u8; 32], CreditRecord),
    /// An Idempotency-Key's SHA-256 and the purchase it made.
    Purchase([u8; 32], PurchaseRecord),
    /// A purchase in its account's index ([`StoreTx::account_purchases`]).
    AccountPurchase(PurchaseRecord),
    Stamp(Uuid, SoldStamp),
    Post(Post),
    /// The time of one post of a payer (flood pricing).
    PayerPost {
        payer: Uuid,
        time: Timestamp,
    },
    Voter {
        post_id: Uuid,
        payer: Uuid,
        voter: Voter,
    },
    /// Ledger entry `index`, its exact bytes.
    Entry(u64, Vec<u8>),
    /// Stored Merkle hash `index` (tlog-tiles numbering).
    Hash(u64, [u8; 32]),
    /// The newest signed checkpoint: its size and note.
    Checkpoint(u64, String),
    /// A hold, in whatever state it is stored (held, captured, released; a held one past its
    /// `expires_at` is expired only as the rules judge it).
    Hold(Hold),
    /// The last hold placed on a stamp ([`StoreTx::stamp_hold`]): (stamp id, hold id). What
    /// keeps a live hold's stamps from being spent.
    StampHold(Uuid, Uuid),
    /// A payment's record ([`Payments`]), every field as stored, `version` included.
    Payment(Payment),
}

/// The basic operations of one store transaction, over which the rules (`crate::rules`)
/// implement every rule once. Reads see the writes made earlier in the same transaction. Nothing is durable or
/// visible outside until the backend commits; if any call fails, the backend discards the
/// whole transaction.
///
/// The rules call writes only after every check of a command passed, so a backend may buffer
/// writes (sled's adapter keeps counters and accounts in a write-back cache per batch).
pub trait StoreTx {
    /// Entries in the ledger, counting those appended in this transaction.
    fn ledger_size(&self) -> Result<u64, StoreError>;
    /// The time of the last entry (Unix epoch when the ledger is empty).
    fn last_time(&self) -> Result<Timestamp, StoreError>;
    /// Merkle hashes by stored-hash index (tlog_tiles numbering); each must exist.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError>;
    /// Appends entry `index` (always the current size) with its `time`, and the stored hashes
    /// it adds, which start at stored-hash index `tlog_tiles::stored_hash_index(0, index)`.
    fn append(
        &self,
        index: u64,
        time: Timestamp,
        entry: &[u8],
        hashes: &[[u8; 32]],
    ) -> Result<(), StoreError>;

    /// A published key's record.
    fn published_key(&self, kid: Kid) -> Result<Option<PublishedKey>, StoreError>;
    /// Records a key's status; a backend keeps [`StoreTx::active_keys`] in step with it.
    fn put_published_key(&self, key: &PublishedKey) -> Result<(), StoreError>;
    /// The kids whose last published status is active, counting this transaction's writes, in
    /// any order (one at most in a ledger written by these rules).
    fn active_keys(&self) -> Result<Vec<Kid>, StoreError>;

    /// An account, to read and then update with [`StoreTx::put_account`].
    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError>;
    /// Inserts or replaces an account.
    fn put_account(&self, account: &Account) -> Result<(), StoreError>;
    /// Whether an account holds this API key hash.
    fn api_key_exists(&self, api_key_sha256: &[u8; 32]) -> Result<bool, StoreError>;
    fn put_api_key(&self, api_key_sha256: &[u8; 32], account_id: Uuid) -> Result<(), StoreError>;

    /// The credit recorded under a reference (by its SHA-256).
    fn credit(&self, reference_sha256: &[u8; 32]) -> Result<Option<CreditRecord>, StoreError>;
    fn put_credit(
        &self,
        reference_sha256: &[u8; 32],
        record: &CreditRecord,
    ) -> Result<(), StoreError>;
    /// The purchase recorded under an account's Idempotency-Key (by its SHA-256).
    fn purchase(
        &self,
        account_id: Uuid,
        key_sha256: &[u8; 32],
    ) -> Result<Option<PurchaseRecord>, StoreError>;
    fn put_purchase(
        &self,
        key_sha256: &[u8; 32],
        record: &PurchaseRecord,
    ) -> Result<(), StoreError>;
    /// The purchases of an account whose `expires_at` is after `since`, newest first (by
    /// ledger index), at most `limit`: what a debit's revoke looks through.
    fn account_purchases(
        &self,
        account_id: Uuid,
        since: Timestamp,
        limit: u64,
    ) -> Result<Vec<PurchaseRecord>, StoreError>;
    /// Adds a purchase to its account's index (every purchase, in ledger order).
    fn add_account_purchase(&self, record: &PurchaseRecord) -> Result<(), StoreError>;

    /// Whether a stamp id was ever sold (whatever its issue time).
    fn stamp_exists(&self, stamp_id: Uuid) -> Result<bool, StoreError>;
    /// A sold stamp, found as its signed payload names it; `None` when no stamp was sold with
    /// that id and issue time.
    fn sold_stamp(&self, stamp: StampRef) -> Result<Option<SoldStamp>, StoreError>;
    /// Records the sale of new stamps (ids never sold before), all with `sale`.
    fn insert_sold(&self, stamp_ids: &[Uuid], sale: &Sale) -> Result<(), StoreError>;
    /// Marks a sold, unspent stamp spent. `sale` is what [`StoreTx::sold_stamp`] returned.
    fn mark_spent(
        &self,
        stamp: StampRef,
        sale: &Sale,
        spent: &SpentRecord,
    ) -> Result<(), StoreError>;

    /// The policy in force (the last one written), if any.
    fn policy(&self) -> Result<Option<Policy>, StoreError>;
    fn put_policy(&self, policy: &Policy) -> Result<(), StoreError>;
    /// Post spends of `payer` whose time is at or after `since` (the flood window), counted up
    /// to `limit` (the rules need no more: past it the price cannot be paid).
    fn recent_posts(&self, payer: Uuid, since: Timestamp, limit: u64) -> Result<u64, StoreError>;
    /// Records a post spend of `payer` at `time`, for [`StoreTx::recent_posts`].
    fn add_recent_post(
        &self,
        payer: Uuid,
        time: Timestamp,
        post_id: Uuid,
    ) -> Result<(), StoreError>;
    /// One payer's votes on one post so far.
    fn voter(&self, post_id: Uuid, payer: Uuid) -> Result<Voter, StoreError>;
    fn put_voter(&self, post_id: Uuid, payer: Uuid, voter: &Voter) -> Result<(), StoreError>;
    /// The account holding a (normalised) name.
    fn account_by_name(&self, name_key: &str) -> Result<Option<Uuid>, StoreError>;
    fn put_name(&self, name_key: &str, account_id: Uuid) -> Result<(), StoreError>;

    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError>;
    /// The board position the next new post takes (0, 1, 2, ...).
    fn next_post_seq(&self) -> Result<u64, StoreError>;
    /// Puts a new post on the board at `post.seq` (which is [`StoreTx::next_post_seq`]) and
    /// moves the next position on.
    fn insert_post(&self, post: &Post) -> Result<(), StoreError>;
    /// Replaces a stored post (a vote changed its score).
    fn update_post(&self, post: &Post) -> Result<(), StoreError>;

    /// A hold by id, in whatever state it is.
    fn hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError>;
    /// The id of the last hold placed on a stamp, whatever its state (the rules judge whether
    /// it is live).
    fn stamp_hold(&self, stamp_id: Uuid) -> Result<Option<Uuid>, StoreError>;
    /// Stores a new hold and makes it the last hold of each of its stamps.
    fn insert_hold(&self, hold: &Hold) -> Result<(), StoreError>;
    /// Replaces a stored hold's state (captured, released); its stamps' last hold stays.
    fn update_hold(&self, hold: &Hold) -> Result<(), StoreError>;
}

/// Transactions and durability: what the rules and the group committer need.
pub trait Writes: Send + Sync {
    /// Runs `body` in one transaction that takes its turn in the ledger's order, then commits
    /// it; nothing `body` wrote is kept when it (or the commit) fails. `reads` is what the
    /// body will read ([`ReadSet`]), which the backend may fetch first.
    fn write(&self, reads: &ReadSet, body: &mut TxBody<'_>) -> Result<(), StoreError>;
    /// Runs `body` in a transaction that only reads (a quote): one consistent view, nothing
    /// kept.
    fn read(&self, body: &mut TxBody<'_>) -> Result<(), StoreError>;
    /// Makes everything written so far durable.
    fn sync(&self) -> Result<(), StoreError>;
    /// A ledger size that is durable once [`Writes::sync`] returned: at least the size after
    /// this process's last written batch. The writer records it after each batch. A shared
    /// store answers from its own last commit, without asking the database again.
    fn synced_size(&self) -> Result<u64, StoreError>;
    /// Keeps a signed checkpoint, replacing the one kept only by a larger size.
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError>;
    /// Writes a durable copy of everything the store holds into `dir`, which must not exist
    /// yet; the copy opens as the original does (for sled, `SledStore::open(dir)`). The caller
    /// makes sure no batch is written meanwhile: the group committer runs it between two
    /// batches (`Committer::exclusive`), so the copy holds whole batches only. Backends
    /// without it answer [`BackupError::NotSupported`].
    fn backup(&self, dir: &Path) -> Result<(), BackupError> {
        let _ = dir;
        Err(BackupError::NotSupported)
    }
}

/// The committed state, read outside any batch.
pub trait Reads: Send + Sync {
    fn ledger_size(&self) -> Result<u64, StoreError>;
    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError>;
    fn account_by_api_key(&self, api_key_sha256: &[u8; 32]) -> Result<Option<Account>, StoreError>;
    fn stamp(&self, stamp_id: Uuid) -> Result<Option<StampRecord>, StoreError>;
    /// A hold by id (`GET /v1/holds/{hold_id}`).
    fn hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError>;
    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError>;
    /// Posts newest first, older than `before` when given. `None` when `before` is unknown.
    fn posts(&self, before: Option<Uuid>, limit: usize) -> Result<Option<Vec<Post>>, StoreError>;
    /// Entries `start..start+limit` (fewer at the end of the log), as stored.
    fn entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Merkle hashes by stored-hash index (tlog_tiles numbering).
    fn hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError>;
    /// Every key the ledger published, with the last status it was published with.
    fn published_keys(&self) -> Result<Vec<PublishedKey>, StoreError>;
    /// The newest signed checkpoint kept, as (size, note text).
    fn checkpoint(&self) -> Result<Option<(u64, String)>, StoreError>;
}

/// What the servers sharing one store coordinate through it. A store only this process opens
/// keeps the defaults.
pub trait Cluster: Send + Sync {
    /// Whether other processes write this store too (a database server shared by several
    /// pennypost servers). A shared store's committed state is the truth: the durable ledger
    /// size is read from it, not kept per process, and a failed batch leaves nothing behind
    /// that the next batch could build on, so the writer goes on after a failure.
    fn shared(&self) -> bool {
        false
    }
    /// The state of the store's database connection pools, for metrics; none for a store in
    /// this process.
    fn pools(&self) -> Vec<PoolState> {
        Vec::new()
    }
    /// A number that changes whenever a post or vote is committed, by any server sharing the
    /// store; `None` when only this process writes (it then knows when the board changed).
    fn board_generation(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// Whether this process is the one that runs the background ledger check. Always true for
    /// a store only this process opens; on a shared store one server at a time holds it.
    fn audit_leader(&self) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// A whole store, as the service layer holds it: its transactions, its reads, its part in a
/// cluster and its payments' records. Implemented for every type that has the four.
pub trait Store: Writes + Reads + Cluster + Payments + 'static {}

impl<T: Writes + Reads + Cluster + Payments + 'static> Store for T {}

/// A store's stored Merkle hashes as the tlog-tiles library reads them (roots, proofs, tiles).
/// A tlog_tiles error carries only text, so the store's own error of a failed read is kept
/// ([`StoreHashes::take_failure`]): a caller can still tell a database that is away for now
/// from a damaged store.
pub struct StoreHashes<'a> {
    store: &'a dyn Reads,
    failed: std::cell::Cell<Option<StoreError>>,
}

impl<'a> StoreHashes<'a> {
    pub fn new(store: &'a dyn Reads) -> StoreHashes<'a> {
        StoreHashes {
            store,
            failed: std::cell::Cell::new(None),
        }
    }

    /// The store's error of the last read that failed, if one did.
    pub fn take_failure(&self) -> Option<StoreError> {
        self.failed.take()
    }
}

impl tlog_tiles::HashReader for StoreHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        match self.store.hashes(indexes) {
            Ok(hashes) => Ok(hashes.into_iter().map(tlog_tiles::Hash).collect()),
            Err(e) => {
                let text = e.to_string();
                self.failed.set(Some(e));
                Err(tlog_tiles::Error::InvalidInput(text))
            }
        }
    }
}
