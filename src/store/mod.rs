//! The store: durable state, and the interface of basic operations the rules run over.
//!
//! Owns: accounts, balances, the sold and spent sets, posts and scores, idempotency records and
//! the ledger (entries and Merkle hashes). Every state change is a [`Command`]; a backend
//! applies a batch of commands in one of its transactions by handing a [`StoreTx`] to
//! [`crate::rules::apply_batch`], which decides every outcome and refusal and writes through
//! the transaction. [`Store::sync`] then makes everything applied durable; the group committer
//! (`crate::commit`) calls it once per batch.
//!
//! A backend provides: a transaction of the basic operations of [`StoreTx`] (reads that see the
//! transaction's own writes; all-or-nothing commit), [`Store::sync`], and the reads of
//! [`Store`]. It decides no refusal of its own: it reports storage failures ([`StoreError`])
//! and nothing else.
//!
//! Must not: check signatures, read the clock, or know about HTTP.

pub mod memory;
pub mod postgres;
pub mod sled_store;

use std::path::Path;

use uuid::Uuid;

use crate::keys::{KeyStatus, PublishedKey};
use crate::ledger::entry::SpendAction;
use crate::rules::price::Policy;
use crate::stamp::Kid;
use crate::time::Timestamp;

pub use memory::MemoryStore;
pub use postgres::{PgLimits, PgStore};
pub use sled_store::SledStore;

/// An account as the store keeps it. The API key itself is never stored, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub account_id: Uuid,
    pub name: Option<String>,
    pub balance: u64,
    pub stamps_purchased: u64,
    pub stamps_spent: u64,
    pub created_at: Timestamp,
    /// Base postage refunded to this account so far, in minor units.
    pub refunds_total: u64,
}

/// A post on the board.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Post {
    pub post_id: Uuid,
    pub author: String,
    pub body: String,
    pub created_at: Timestamp,
    pub score: i64,
    pub ledger_index: u64,
    /// Position on the board, for paging newest first.
    pub seq: u64,
    /// Whether the author is the account whose API key made the post.
    pub verified: bool,
    /// The payer of the post's stamps; `None` for posts made before payers were recorded.
    pub payer: Option<Uuid>,
    /// Stamps the post cost.
    pub cost: u64,
    pub votes_up: u64,
    pub votes_down: u64,
    /// Distinct payers of its votes, up and down.
    pub voters: u64,
    /// Distinct payers of its up-votes other than the post's own payer (what refunds count).
    pub up_voters: u64,
    /// What a refund pays back: the unit prices of the first `post_cost` stamps of its spend.
    /// `None` when a stamp's price is unknown (sold before prices were recorded per stamp).
    pub base_postage: Option<u64>,
    /// Whether its base postage went back to its payer.
    pub refunded: bool,
}

/// One payer's votes on one post, as the vote price and the refund count need them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Voter {
    /// Votes of this payer on this post, up and down alike.
    pub votes: u64,
    /// Whether any of them was up.
    pub up_voted: bool,
}

/// The stamps sold by one purchase, as recorded for idempotent replay. Holds no secret: the
/// stamp texts are signed again from these fields (Ed25519 signatures are deterministic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseRecord {
    pub purchase_id: Uuid,
    pub account_id: Uuid,
    pub count: u32,
    pub unit_price: u64,
    pub total: u64,
    pub balance: u64,
    pub ledger_index: u64,
    pub kid: Kid,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub stamp_ids: Vec<Uuid>,
}

/// A credit as kept for idempotent replay: the same reference with the same account and
/// amount answers what the first credit answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditRecord {
    pub account_id: Uuid,
    pub amount: u64,
    pub balance: u64,
    pub ledger_index: u64,
}

/// The sale of one stamp: who bought it (its payer), under which key, its lifetime and price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sale {
    pub buyer: Uuid,
    pub kid: Kid,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// Minor units paid for it (the purchase's `unit_price`); `None` for stamps sold before
    /// prices were kept per stamp.
    pub unit_price: Option<u64>,
}

/// A sold stamp as a transaction reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoldStamp {
    pub sale: Sale,
    pub spent: Option<SpentRecord>,
}

/// What a spend paid for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpendFor {
    /// A new post, written in the same transaction as the spend.
    Post {
        post_id: Uuid,
        author: String,
        body: String,
        /// Whether `author` is the name of the account whose API key made the post.
        verified: bool,
    },
    /// A vote on an existing post: +1 or -1.
    Vote { post_id: Uuid, up: bool },
    /// Another site's action; the ledger records SHA-256 of the context.
    Redeem { context: String },
}

impl SpendFor {
    pub fn action(&self) -> SpendAction {
        match self {
            SpendFor::Post { .. } => SpendAction::Post,
            SpendFor::Vote { .. } => SpendAction::Vote,
            SpendFor::Redeem { .. } => SpendAction::Redeem,
        }
    }
}

/// Names a sold stamp as its signed payload does: its id and when it was issued. The store
/// keeps stamps in issue-time order, so the stamps people spend (mostly bought recently) sit
/// together at the end of the index instead of at random places in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StampRef {
    pub stamp_id: Uuid,
    pub issued_at: Timestamp,
}

/// A state change. Commands carry everything the store needs; signatures were checked before.
#[derive(Clone, Debug)]
pub enum Command {
    /// Publishes a key's status in the ledger (on first start and after rotation).
    KeyEvent {
        kid: Kid,
        public_key: String,
        status: KeyStatus,
    },
    CreateAccount {
        account_id: Uuid,
        name: Option<String>,
        api_key_sha256: [u8; 32],
    },
    /// Money received for an account; `reference` is unique across the whole ledger.
    Credit {
        account_id: Uuid,
        amount: u64,
        reference: String,
    },
    Purchase {
        account_id: Uuid,
        unit_price: u64,
        /// SHA-256 of the Idempotency-Key header, when one was sent.
        idempotency_key_sha256: Option<[u8; 32]>,
        purchase_id: Uuid,
        kid: Kid,
        issued_at: Timestamp,
        expires_at: Timestamp,
        stamp_ids: Vec<Uuid>,
    },
    /// Cancels every stamp in `stamps` or none of them. A post or vote must carry exactly its
    /// price under the policy in force, in stamps of one payer.
    Spend {
        stamps: Vec<StampRef>,
        spend_for: SpendFor,
    },
    /// Writes the policy to the ledger when it differs from the last one written.
    Policy { policy: Policy },
}

/// What an applied command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    KeyPublished {
        ledger_index: u64,
    },
    AccountCreated,
    /// A credit, new or replayed (`replayed` is true when the reference was credited before:
    /// `balance` and `ledger_index` are then the first credit's).
    Credited {
        balance: u64,
        ledger_index: u64,
        replayed: bool,
    },
    /// A purchase, new or replayed (`replayed` is true when the Idempotency-Key was seen).
    Purchased {
        record: PurchaseRecord,
        replayed: bool,
    },
    Spent {
        spent_at: Timestamp,
        ledger_index: u64,
        /// The post written (for a post) or voted on, with its score after the vote.
        post: Option<Post>,
        /// Stamps cancelled.
        cost: u64,
        /// The `refund` entry this vote completed, if it did.
        refund_ledger_index: Option<u64>,
    },
    /// The policy was written (`Some` index) or was already the last one written.
    Policy {
        ledger_index: Option<u64>,
    },
}

/// One database connection pool at a moment ([`Store::pools`]).
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

/// Why the store refused a command. The command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Occurs when a post or vote carries another number of stamps than its price under the
    /// policy in force (`required` is `u64::MAX` when the price overflows).
    #[error("the action costs {required} stamps, {attached} were attached")]
    WrongStampCount { required: u64, attached: u64 },
    /// Occurs when the stamps of one post or vote were bought by more than one account.
    #[error("the stamps were bought by more than one account")]
    MixedPayers,
    /// Occurs when an account name is taken (compared after normalisation).
    #[error("an account with that name exists")]
    NameTaken,
    /// Occurs when the account, post or other named thing does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// Occurs when a purchase costs more than the balance.
    #[error("balance {balance} is below the price {total}")]
    InsufficientFunds { balance: u64, total: u64 },
    /// Occurs when a stamp in the command was spent before.
    #[error("stamp {0} was already spent")]
    AlreadySpent(Uuid),
    /// Occurs when a stamp that verifies was never sold by this server.
    #[error("stamp {0} was never sold by this server")]
    NotSold(Uuid),
    /// Occurs when the store's time has reached a stamp's expiry.
    #[error("stamp {0} expired")]
    Expired(Uuid),
    /// Occurs when an idempotency key or credit reference was used with another request.
    #[error("{0}")]
    IdempotencyConflict(&'static str),
    /// Occurs when an amount would overflow a balance or total.
    #[error("{0} would overflow")]
    Overflow(&'static str),
    /// Occurs when a command is malformed: a stamp named twice, no stamps, a credit of zero.
    /// The service never sends these; the store refuses them anyway, because each would write
    /// an entry the auditor rejects.
    #[error("{0}")]
    Invalid(&'static str),
    /// Occurs when a stamp id was already sold (a random id collided).
    #[error("stamp id {0} already exists")]
    DuplicateStamp(Uuid),
    /// Occurs when a purchase names an issuer key the ledger does not show active (never
    /// published, or retired since: another server started after `keys rotate` while this
    /// one still signs with the old key). The auditor rejects such a sale (`unknown_key`).
    #[error("issuer key {0} is not the ledger's active key")]
    KeyNotActive(Kid),
    /// Occurs when a key would be published active while the ledger shows another key active
    /// (servers with different keys directories on one database). The auditor rejects two
    /// active keys (`two_active_keys`).
    #[error("issuer key {0} is active in the ledger; retire it first")]
    AnotherKeyActive(Kid),
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

/// The state of one stamp as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StampRecord {
    pub stamp_id: Uuid,
    pub buyer: Uuid,
    pub kid: Kid,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub spent: Option<SpentRecord>,
}

/// When and for what a stamp was spent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpentRecord {
    pub spent_at: Timestamp,
    pub action: SpendAction,
    /// `post:<id>`, `vote:<id>`, or the redeem context as the redeeming site gave it.
    pub spent_for: String,
    pub ledger_index: u64,
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
}

/// An action to price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuoteAction {
    Post,
    Vote { post_id: Uuid },
}

/// The result of applying one command.
pub type Applied = Result<Outcome, Refusal>;

/// The basic operations of one store transaction, over which [`crate::rules`] implements every
/// rule once. Reads see the writes made earlier in the same transaction. Nothing is durable or
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
}

/// Durable state behind domain operations. Implementations must apply each command
/// all-or-nothing together with its ledger entry, and must not report a batch durable before
/// it is.
pub trait Store: Send + Sync + 'static {
    /// Applies commands in order; a refused command changes nothing and does not stop the
    /// others. Entries get times `>= now` and never earlier than the previous entry.
    fn apply(&self, batch: &[Command], now: Timestamp) -> Result<Vec<Applied>, StoreError>;
    /// Makes everything applied so far durable.
    fn sync(&self) -> Result<(), StoreError>;
    /// A ledger size that is durable once [`Store::sync`] returned: at least the size after
    /// this process's last applied batch. The writer records it after each batch. A shared
    /// store answers from its own last commit, without asking the database again.
    fn synced_size(&self) -> Result<u64, StoreError> {
        self.ledger_size()
    }
    /// What `action` would cost `payer` at `now` under the policy in force, in stamps. Reads
    /// only: spends and reserves nothing.
    fn quote(
        &self,
        payer: Uuid,
        action: QuoteAction,
        now: Timestamp,
    ) -> Result<Result<u64, Refusal>, StoreError>;

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

    fn ledger_size(&self) -> Result<u64, StoreError>;
    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError>;
    fn account_by_api_key(&self, api_key_sha256: &[u8; 32]) -> Result<Option<Account>, StoreError>;
    fn stamp(&self, stamp_id: Uuid) -> Result<Option<StampRecord>, StoreError>;
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
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError>;
    /// Writes a durable copy of everything the store holds into `dir`, which must not exist
    /// yet; the copy opens as the original does (for sled, `SledStore::open(dir)`). The caller
    /// makes sure no batch is applied meanwhile: the group committer runs it between two
    /// batches (`Committer::exclusive`), so the copy holds whole batches only. Backends
    /// without it answer [`BackupError::NotSupported`].
    fn backup(&self, dir: &Path) -> Result<(), BackupError> {
        let _ = dir;
        Err(BackupError::NotSupported)
    }
}

/// A store's stored Merkle hashes as the tlog-tiles library reads them (roots, proofs, tiles).
/// A tlog_tiles error carries only text, so the store's own error of a failed read is kept
/// ([`StoreHashes::take_failure`]): a caller can still tell a database that is away for now
/// from a damaged store.
pub struct StoreHashes<'a> {
    store: &'a dyn Store,
    failed: std::cell::Cell<Option<StoreError>>,
}

impl<'a> StoreHashes<'a> {
    pub fn new(store: &'a dyn Store) -> StoreHashes<'a> {
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
