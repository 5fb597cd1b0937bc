//! The embedded backend: sled 0.34.7.
//!
//! Trees and their keys (all integers big-endian so that key order is numeric order):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `ledger_size`, `last_time`, `post_seq`, `bundle_start`, `key:<kid>` | u64 / i64 / u64 / u64 / status |
//! | `accounts` | account id (16) | [`Account`] JSON |
//! | `api_keys` | SHA-256 of API key (32) | account id (16) |
//! | `credits` | SHA-256 of reference (32) | [`CreditRecord`] JSON |
//! | `purchase_keys` | account id (16) + SHA-256 of Idempotency-Key (32) | [`PurchaseRecord`] JSON |
//! | `stamp_ids` | stamp id (16) | issued_at (8) |
//! | `stamps` | issued_at (8) + stamp id (16) | buyer (16) + kid (8) + issued_at (8) + expires_at (8), then [`SpentRecord`] JSON once spent |
//! | `posts` | post id (16) | [`Post`] JSON |
//! | `post_order` | board sequence (8) | post id (16) |
//! | `ledger_bundles` | index of the bundle's first entry (8) | up to 8 consecutive entries, each as length (4) + bytes |
//! | `hash_chunks` | stored-hash index / 16 (8) | up to 16 32-byte hashes, in index order |
//! | `checkpoints` | `latest` | size (8) + note text |
//!
//! Sold stamps are kept in issue-time order (`stamps`), because stamp ids are random (UUIDv4,
//! by the stamp format) and a spend of a random key in a 10M-key tree reads a cold page: with
//! time-ordered keys, spends of recently bought stamps touch the few hot pages at the end of
//! the tree. A spend finds its stamp from the signed payload (id and `issued_at`, a
//! [`StampRef`]); only a look-up by id alone (`GET /v1/stamps/{id}`, and the collision check
//! of a purchase) goes through `stamp_ids`. Whether a stamp is spent and what it paid for live
//! in the same value as its sale, so a spend reads and writes one key.
//!
//! Merkle hashes are stored 16 to a key (`hash_chunks`): a log of n entries stores about 2n
//! hashes, and one key per hash made them the largest tree by count of keys, hence of sled
//! pages, and sled's start-up time grows with the count of pages (its snapshot lists them
//! all). Hashes are only ever appended, so a chunk is filled in order and never rewritten
//! once full. Ledger entries are kept up to 8 to a key (`ledger_bundles`) for the same
//! reason; a bundle also closes before it would pass 64 KiB + 4 bytes, so one big purchase
//! entry does not make a big value. `bundle_start` in `meta` names the open (last) bundle.
//!
//! Data directories written before these layouts (trees `sold` and `spent` keyed by stamp id,
//! `hashes` with one hash per key, `ledger` with one entry per key) are migrated on open
//! ([`migrate_id_keyed_stamps`], [`migrate_hash_per_key`], [`migrate_entry_per_key`]).
//!
//! A batch is one sled transaction over the first eleven trees. Durability: sled's `flush`
//! writes its log with `sync_file_range`, which leaves file metadata (the file's new length)
//! in memory, so [`SledStore::sync`] also `fdatasync`s the database file. The segment size is
//! raised so that no value we write can become a separate "blob" file (sled writes those
//! without fsync): the largest node is 17 items of at most 64 KiB + 4 bytes (a ledger
//! bundle), far below a quarter of an 8 MiB segment.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use sha2::{Digest, Sha256};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional as _;
use uuid::Uuid;

use super::{
    Account, Applied, Command, Outcome, Post, PurchaseRecord, Refusal, SpendFor, SpentRecord,
    StampRecord, StampRef, Store, StoreError,
};
use crate::keys::{KeyStatus, PublishedKey};
use crate::ledger::entry::{self, Body, ENTRY_BYTES_MAX};
use crate::stamp::Kid;
use crate::time::Timestamp;

/// Merkle hashes per `hash_chunks` value.
const HASHES_PER_CHUNK: u64 = 16;

/// Key of the `hash_chunks` value holding stored hash `index`.
fn hash_chunk_key(index: u64) -> [u8; 8] {
    (index / HASHES_PER_CHUNK).to_be_bytes()
}

/// Byte offset of stored hash `index` in its chunk.
fn hash_chunk_offset(index: u64) -> usize {
    // At most 15 * 32: always fits.
    (index % HASHES_PER_CHUNK) as usize * 32
}

/// Hash `index` out of its chunk, when the chunk holds it.
fn hash_in_chunk(chunk: &[u8], index: u64) -> Option<[u8; 32]> {
    let at = hash_chunk_offset(index);
    chunk.get(at..at + 32)?.try_into().ok()
}

/// Most ledger entries per `ledger_bundles` value.
const BUNDLE_ENTRIES_MAX: u64 = 8;
/// Most bytes per `ledger_bundles` value: one entry of the largest size fits alone.
const BUNDLE_BYTES_MAX: usize = ENTRY_BYTES_MAX + 4;

/// Whether an entry of `entry_len` bytes still fits in a bundle of `count` entries and
/// `bundle_len` bytes.
fn fits_in_bundle(count: u64, bundle_len: usize, entry_len: usize) -> bool {
    count < BUNDLE_ENTRIES_MAX && bundle_len + 4 + entry_len <= BUNDLE_BYTES_MAX
}

/// Appends one length-prefixed entry to a bundle.
fn push_entry(bundle: &mut Vec<u8>, entry: &[u8]) {
    // Entries are at most ENTRY_BYTES_MAX (64 KiB): the length always fits in 4 bytes.
    bundle.extend_from_slice(&(entry.len() as u32).to_be_bytes());
    bundle.extend_from_slice(entry);
}

/// The entries of a bundle, in order.
fn bundle_entries(bundle: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    let mut out = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("ledger_bundles", "truncated length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(corrupt("ledger_bundles", "truncated entry"));
        }
        let (entry, tail) = tail.split_at(len);
        out.push(entry);
        rest = tail;
    }
    Ok(out)
}

/// The page cache sled gets unless told otherwise (`--cache-mib`): sled's own default, 1 GiB.
pub const DEFAULT_CACHE_MIB: u64 = 1024;

/// sled segment size; see the module comment for why it is larger than sled's default.
const SEGMENT_BYTES: usize = 8 * 1024 * 1024;

/// A published key as kept in `meta` (`key:<kid>`). Directories written before public keys
/// were kept hold only the status text (`active` / `retired`).
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyRecord {
    status: KeyStatus,
    public_key: String,
    published_at: String,
}

fn decode_key_record(kid: Kid, bytes: &[u8]) -> Result<PublishedKey, StoreError> {
    let legacy = |status| PublishedKey {
        kid,
        public_key: None,
        status,
        published_at: Timestamp::from_unix(0),
    };
    match bytes {
        b"active" => Ok(legacy(KeyStatus::Active)),
        b"retired" => Ok(legacy(KeyStatus::Retired)),
        _ => {
            let record: KeyRecord = decode_json(bytes, "meta")?;
            let published_at = Timestamp::parse_rfc3339(&record.published_at)
                .ok_or_else(|| corrupt("meta", "key published_at"))?;
            Ok(PublishedKey {
                kid,
                public_key: Some(record.public_key),
                status: record.status,
                published_at,
            })
        }
    }
}

/// A credit as kept for idempotent replay.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct CreditRecord {
    account_id: Uuid,
    amount: u64,
    balance: u64,
    ledger_index: u64,
}

pub struct SledStore {
    db: sled::Db,
    /// The database file, kept open to `fdatasync` it after sled's flush.
    db_file: File,
    meta: sled::Tree,
    accounts: sled::Tree,
    api_keys: sled::Tree,
    credits: sled::Tree,
    purchase_keys: sled::Tree,
    stamp_ids: sled::Tree,
    stamps: sled::Tree,
    posts: sled::Tree,
    post_order: sled::Tree,
    ledger: sled::Tree,
    hashes: sled::Tree,
    checkpoints: sled::Tree,
    /// The currency name written into credit entries.
    currency: String,
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

fn corrupt(tree: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        detail: detail.to_string(),
    }
}

fn uuid_key(id: Uuid) -> [u8; 16] {
    *id.as_bytes()
}

fn read_u64(bytes: &[u8], tree: &'static str) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| corrupt(tree, "u64 length"))?;
    Ok(u64::from_be_bytes(arr))
}

fn decode_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    tree: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(tree, e))
}

/// Length of the sale part of a `stamps` value.
const SOLD_BYTES: usize = 40;

fn encode_sold(
    buyer: Uuid,
    kid: Kid,
    issued_at: Timestamp,
    expires_at: Timestamp,
) -> [u8; SOLD_BYTES] {
    let mut out = [0u8; SOLD_BYTES];
    out[..16].copy_from_slice(buyer.as_bytes());
    out[16..24].copy_from_slice(&kid.0);
    out[24..32].copy_from_slice(&issued_at.unix().to_be_bytes());
    out[32..40].copy_from_slice(&expires_at.unix().to_be_bytes());
    out
}

/// The spend part of a `stamps` value, if the stamp was spent.
fn decode_spent(bytes: &[u8]) -> Result<Option<SpentRecord>, StoreError> {
    match bytes.get(SOLD_BYTES..) {
        Some([]) | None => Ok(None),
        Some(json) => decode_json(json, "stamps").map(Some),
    }
}

/// Key of a stamp in `stamps`: issue time first, so that keys sort by time.
fn stamp_key(stamp: StampRef) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&stamp.issued_at.unix().to_be_bytes());
    out[8..].copy_from_slice(stamp.stamp_id.as_bytes());
    out
}

struct Sold {
    buyer: Uuid,
    kid: Kid,
    issued_at: Timestamp,
    expires_at: Timestamp,
}

/// The sale part of a `stamps` value.
fn decode_sold(bytes: &[u8]) -> Result<Sold, StoreError> {
    let arr: &[u8; SOLD_BYTES] = bytes
        .get(..SOLD_BYTES)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("stamps", "record length"))?;
    let mut buyer = [0u8; 16];
    buyer.copy_from_slice(&arr[..16]);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&arr[16..24]);
    let mut issued = [0u8; 8];
    issued.copy_from_slice(&arr[24..32]);
    let mut expires = [0u8; 8];
    expires.copy_from_slice(&arr[32..40]);
    Ok(Sold {
        buyer: Uuid::from_bytes(buyer),
        kid: Kid(kid),
        issued_at: Timestamp::from_unix(i64::from_be_bytes(issued)),
        expires_at: Timestamp::from_unix(i64::from_be_bytes(expires)),
    })
}

/// Refuses an empty list of stamp ids or one that names a stamp twice.
fn distinct_and_present(stamp_ids: &[Uuid]) -> Option<Refusal> {
    if stamp_ids.is_empty() {
        return Some(Refusal::Invalid("a command needs at least one stamp"));
    }
    let mut seen = std::collections::HashSet::with_capacity(stamp_ids.len());
    if stamp_ids.iter().all(|id| seen.insert(*id)) {
        None
    } else {
        Some(Refusal::Invalid("a stamp is named twice"))
    }
}

/// The transactional view of the eleven trees a batch touches.
struct Tx<'a> {
    meta: &'a TransactionalTree,
    accounts: &'a TransactionalTree,
    api_keys: &'a TransactionalTree,
    credits: &'a TransactionalTree,
    purchase_keys: &'a TransactionalTree,
    stamp_ids: &'a TransactionalTree,
    stamps: &'a TransactionalTree,
    posts: &'a TransactionalTree,
    post_order: &'a TransactionalTree,
    ledger: &'a TransactionalTree,
    hashes: &'a TransactionalTree,
    /// Write-back caches for the batch: counters in `meta` and accounts change with almost
    /// every command, so they are read once, kept here, and written once when the batch ends
    /// ([`Tx::write_back`]). Safe because a refused command returns before it writes anything.
    meta_cache: RefCell<HashMap<&'static str, (u64, bool)>>,
    account_cache: RefCell<HashMap<Uuid, (Account, bool)>>,
}

/// Errors inside the transaction closure: storage failures abort the whole batch.
type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

fn tx_get(tree: &TransactionalTree, key: &[u8]) -> TxResult<Option<sled::IVec>> {
    tree.get(key).map_err(ConflictableTransactionError::from)
}

/// A `tlog_tiles::HashReader` over the transaction's view of the hashes tree, so the new
/// entry's hashes are computed from hashes written earlier in the same batch too.
struct TxHashReader<'a> {
    hashes: &'a TransactionalTree,
    failure: RefCell<Option<UnabortableTransactionError>>,
}

impl tlog_tiles::HashReader for TxHashReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        let mut out = Vec::with_capacity(indexes.len());
        for index in indexes {
            match self.hashes.get(hash_chunk_key(*index)) {
                Ok(Some(chunk)) => {
                    let hash =
                        hash_in_chunk(&chunk, *index).ok_or(tlog_tiles::Error::IndexesNotInTree)?;
                    out.push(tlog_tiles::Hash(hash));
                }
                Ok(None) => return Err(tlog_tiles::Error::IndexesNotInTree),
                Err(e) => {
                    *self.failure.borrow_mut() = Some(e);
                    return Err(tlog_tiles::Error::InvalidInput("storage".into()));
                }
            }
        }
        Ok(out)
    }
}

impl<'a> Tx<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        (
            meta,
            accounts,
            api_keys,
            credits,
            purchase_keys,
            stamp_ids,
            stamps,
            posts,
            post_order,
            ledger,
            hashes,
        ): (
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
        ),
    ) -> Tx<'a> {
        Tx {
            meta,
            accounts,
            api_keys,
            credits,
            purchase_keys,
            stamp_ids,
            stamps,
            posts,
            post_order,
            ledger,
            hashes,
            meta_cache: RefCell::new(HashMap::new()),
            account_cache: RefCell::new(HashMap::new()),
        }
    }

    fn meta_u64(&self, key: &'static str) -> TxResult<u64> {
        if let Some((value, _)) = self.meta_cache.borrow().get(key) {
            return Ok(*value);
        }
        let value = match tx_get(self.meta, key.as_bytes())? {
            Some(bytes) => read_u64(&bytes, "meta").map_err(abort)?,
            None => 0,
        };
        self.meta_cache.borrow_mut().insert(key, (value, false));
        Ok(value)
    }

    fn set_meta_u64(&self, key: &'static str, value: u64) -> TxResult<()> {
        self.meta_cache.borrow_mut().insert(key, (value, true));
        Ok(())
    }

    fn account(&self, id: Uuid) -> TxResult<Option<Account>> {
        if let Some((account, _)) = self.account_cache.borrow().get(&id) {
            return Ok(Some(account.clone()));
        }
        match tx_get(self.accounts, &uuid_key(id))? {
            Some(bytes) => {
                let account: Account = decode_json(&bytes, "accounts").map_err(abort)?;
                self.account_cache
                    .borrow_mut()
                    .insert(id, (account.clone(), false));
                Ok(Some(account))
            }
            None => Ok(None),
        }
    }

    fn put_account(&self, account: &Account) -> TxResult<()> {
        self.account_cache
            .borrow_mut()
            .insert(account.account_id, (account.clone(), true));
        Ok(())
    }

    /// Writes the changed counters and accounts of the batch into the transaction.
    fn write_back(&self) -> TxResult<()> {
        for (key, (value, dirty)) in self.meta_cache.borrow().iter() {
            if *dirty {
                self.meta.insert(key.as_bytes(), &value.to_be_bytes())?;
            }
        }
        for (id, (account, dirty)) in self.account_cache.borrow().iter() {
            if *dirty {
                let bytes = serde_json::to_vec(account).map_err(|e| abort(storage(e)))?;
                self.accounts.insert(&uuid_key(*id), bytes)?;
            }
        }
        Ok(())
    }

    /// Appends an entry: stores its bytes and its Merkle hashes, advances the size. Returns the
    /// entry's index.
    fn append(&self, time: Timestamp, body: &Body) -> TxResult<u64> {
        let index = self.meta_u64("ledger_size")?;
        let bytes =
            entry::encode(index, &time.to_rfc3339(), body).map_err(|e| abort(storage(e)))?;
        if bytes.len() > ENTRY_BYTES_MAX {
            return Err(abort(storage(format!(
                "ledger entry of {} bytes exceeds {ENTRY_BYTES_MAX}",
                bytes.len()
            ))));
        }
        let reader = TxHashReader {
            hashes: self.hashes,
            failure: RefCell::new(None),
        };
        let new_hashes = match tlog_tiles::stored_hashes(index, &bytes, &reader) {
            Ok(h) => h,
            Err(e) => {
                if let Some(failure) = reader.failure.into_inner() {
                    return Err(failure.into());
                }
                return Err(abort(corrupt("hashes", e)));
            }
        };
        let first = tlog_tiles::stored_hash_index(0, index);
        for (offset, hash) in (0u64..).zip(new_hashes.iter()) {
            let at = first + offset;
            let key = hash_chunk_key(at);
            let mut chunk = tx_get(self.hashes, &key)?.map_or_else(Vec::new, |c| c.to_vec());
            // Appends fill each chunk in order: anything else means the tree was damaged.
            if chunk.len() != hash_chunk_offset(at) {
                return Err(abort(corrupt(
                    "hash_chunks",
                    format!("chunk of hash {at} holds {} bytes", chunk.len()),
                )));
            }
            chunk.extend_from_slice(&hash.0);
            self.hashes.insert(&key, chunk)?;
        }
        self.add_to_bundle(index, &bytes)?;
        self.set_meta_u64("ledger_size", index + 1)?;
        Ok(index)
    }

    /// Stores entry `index` (the next one) in the open bundle, or opens a new bundle with it.
    fn add_to_bundle(&self, index: u64, bytes: &[u8]) -> TxResult<()> {
        if index > 0 {
            let start = self.meta_u64("bundle_start")?;
            let Some(open) = tx_get(self.ledger, &start.to_be_bytes())? else {
                return Err(abort(corrupt(
                    "ledger_bundles",
                    format!("no bundle at {start}"),
                )));
            };
            if fits_in_bundle(index - start, open.len(), bytes.len()) {
                let mut bundle = open.to_vec();
                push_entry(&mut bundle, bytes);
                self.ledger.insert(&start.to_be_bytes(), bundle)?;
                return Ok(());
            }
        }
        let mut bundle = Vec::with_capacity(4 + bytes.len());
        push_entry(&mut bundle, bytes);
        self.ledger.insert(&index.to_be_bytes(), bundle)?;
        self.set_meta_u64("bundle_start", index)
    }
}

/// Makes everything written to `db` durable: sled's `flush`, then `fdatasync` of its file
/// (see the module comment).
fn sync_db(db: &sled::Db, db_file: &File) -> Result<(), StoreError> {
    db.flush().map_err(storage)?;
    db_file.sync_data().map_err(storage)
}

/// Inserts per sled batch while a migration copies a tree.
const MIGRATION_BATCH: usize = 10_000;

/// What the layout migrations share: the database and its file, to check for an old tree,
/// make writes durable, and drop an old tree once its replacement is durable.
struct Upgrade<'a> {
    db: &'a sled::Db,
    db_file: &'a File,
}

impl Upgrade<'_> {
    fn has(&self, name: &str) -> bool {
        self.db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes())
    }

    fn open(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(storage)
    }

    /// The values of an old tree keyed by index (0, 1, 2, ... big-endian), in order; a gap or
    /// a bad key is corruption.
    fn in_index_order(
        &self,
        name: &'static str,
    ) -> Result<impl Iterator<Item = Result<(u64, sled::IVec), StoreError>>, StoreError> {
        let tree = self.open(name)?;
        Ok((0u64..).zip(tree.iter()).map(move |(expected, item)| {
            let (key, value) = item.map_err(storage)?;
            let index = read_u64(&key, name)?;
            if index != expected {
                return Err(corrupt(name, format!("entry {index} out of order")));
            }
            Ok((index, value))
        }))
    }

    /// Makes what was written durable, then drops `name` and makes that durable too.
    fn replace(&self, name: &str) -> Result<(), StoreError> {
        sync_db(self.db, self.db_file)?;
        self.db.drop_tree(name).map_err(storage)?;
        sync_db(self.db, self.db_file)
    }
}

/// Writes into a tree in sled batches of [`MIGRATION_BATCH`] inserts.
struct BatchWriter<'a> {
    tree: &'a sled::Tree,
    batch: sled::Batch,
    pending: usize,
}

impl<'a> BatchWriter<'a> {
    fn new(tree: &'a sled::Tree) -> BatchWriter<'a> {
        BatchWriter {
            tree,
            batch: sled::Batch::default(),
            pending: 0,
        }
    }

    fn insert(&mut self, key: &[u8], value: impl Into<sled::IVec>) -> Result<(), StoreError> {
        self.batch.insert(key, value);
        self.pending += 1;
        if self.pending == MIGRATION_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.pending = 0;
        self.tree
            .apply_batch(std::mem::take(&mut self.batch))
            .map_err(storage)
    }
}

/// Moves stamps from the layout before time-ordered keys (`sold` and `spent`, both keyed by
/// stamp id) into `stamp_ids` and `stamps`. Safe to interrupt: every write is idempotent, the
/// new trees are made durable before `sold` is dropped, and `sold` goes before `spent`, so a
/// run cut short is simply run again on the next open.
fn migrate_id_keyed_stamps(
    upgrade: &Upgrade<'_>,
    stamp_ids: &sled::Tree,
    stamps: &sled::Tree,
) -> Result<(), StoreError> {
    if upgrade.has("sold") {
        tracing::info!(
            "upgrading the data directory: moving stamps to time-ordered keys (once; about \
             20 s per million stamps)"
        );
        let sold = upgrade.open("sold")?;
        // Both trees are in id order and `spent` holds only sold ids: walk them together
        // instead of looking each sold id up in `spent`.
        let mut spent = upgrade.open("spent")?.iter().peekable();
        let (mut ids, mut records) = (BatchWriter::new(stamp_ids), BatchWriter::new(stamps));
        let mut moved = 0u64;
        for item in sold.iter() {
            let (id, sale) = item.map_err(storage)?;
            let stamp_id = Uuid::from_slice(&id).map_err(|e| corrupt("sold", e))?;
            if sale.len() != SOLD_BYTES {
                return Err(corrupt("sold", "record length"));
            }
            let issued_at = decode_sold(&sale)?.issued_at;
            let mut value = sale.to_vec();
            while let Some(next) = spent.next_if(|s| s.as_ref().is_ok_and(|(k, _)| *k <= id)) {
                let (key, record) = next.map_err(storage)?;
                if key == id {
                    value.extend_from_slice(&record);
                }
            }
            if let Some(Err(e)) = spent.peek() {
                return Err(storage(e));
            }
            let key = stamp_key(StampRef {
                stamp_id,
                issued_at,
            });
            ids.insert(&id, &issued_at.unix().to_be_bytes()[..])?;
            records.insert(&key, value)?;
            moved += 1;
        }
        ids.flush()?;
        records.flush()?;
        upgrade.replace("sold")?;
        tracing::info!(stamps = moved, "moved stamps to time-ordered keys");
    }
    if upgrade.has("spent") {
        upgrade.replace("spent")?;
    }
    Ok(())
}

/// Moves Merkle hashes from the layout of one hash per key (`hashes`) into `hash_chunks`.
/// Safe to interrupt: chunks are written whole (a second run writes the same values), and
/// `hashes` is dropped only after they are durable.
fn migrate_hash_per_key(upgrade: &Upgrade<'_>, chunks: &sled::Tree) -> Result<(), StoreError> {
    if !upgrade.has("hashes") {
        return Ok(());
    }
    tracing::info!(
        "upgrading the data directory: moving Merkle hashes to chunks (once; about 12 s per \
         million entries)"
    );
    let mut writer = BatchWriter::new(chunks);
    let mut chunk: Vec<u8> = Vec::new();
    let mut expected = 0u64;
    for item in upgrade.in_index_order("hashes")? {
        let (index, hash) = item?;
        if hash.len() != 32 {
            return Err(corrupt("hashes", format!("hash {index} damaged")));
        }
        chunk.extend_from_slice(&hash);
        expected += 1;
        if expected % HASHES_PER_CHUNK == 0 {
            writer.insert(&hash_chunk_key(index), std::mem::take(&mut chunk))?;
        }
    }
    if !chunk.is_empty() {
        writer.insert(&hash_chunk_key(expected - 1), chunk)?;
    }
    writer.flush()?;
    upgrade.replace("hashes")?;
    tracing::info!(
        hashes = expected,
        "moved Merkle hashes to chunks of {HASHES_PER_CHUNK}"
    );
    Ok(())
}

/// Moves ledger entries from the layout of one entry per key (`ledger`) into
/// `ledger_bundles`, bundled by the rule appends follow, and sets `bundle_start`. Safe to
/// interrupt: bundles are written whole and the same each run, and `ledger` is dropped only
/// after they and `bundle_start` are durable.
fn migrate_entry_per_key(
    upgrade: &Upgrade<'_>,
    bundles: &sled::Tree,
    meta: &sled::Tree,
) -> Result<(), StoreError> {
    if !upgrade.has("ledger") {
        return Ok(());
    }
    tracing::info!(
        "upgrading the data directory: moving ledger entries to bundles (once; about 18 s per \
         million entries)"
    );
    let mut writer = BatchWriter::new(bundles);
    let mut bundle: Vec<u8> = Vec::new();
    let mut start = 0u64;
    let mut expected = 0u64;
    for item in upgrade.in_index_order("ledger")? {
        let (index, entry) = item?;
        if index > 0 && !fits_in_bundle(index - start, bundle.len(), entry.len()) {
            writer.insert(&start.to_be_bytes(), std::mem::take(&mut bundle))?;
            start = index;
        }
        push_entry(&mut bundle, &entry);
        expected += 1;
    }
    if !bundle.is_empty() {
        writer.insert(&start.to_be_bytes(), bundle)?;
    }
    writer.flush()?;
    meta.insert("bundle_start", &start.to_be_bytes())
        .map_err(storage)?;
    upgrade.replace("ledger")?;
    tracing::info!(entries = expected, "moved ledger entries to bundles");
    Ok(())
}

impl SledStore {
    /// Opens (creating when missing) the database under `dir`, with the default page cache.
    pub fn open(dir: &Path, currency: &str) -> Result<SledStore, StoreError> {
        SledStore::open_with_cache(dir, currency, DEFAULT_CACHE_MIB * 1024 * 1024)
    }

    /// Opens (creating when missing) the database under `dir`, letting sled cache up to
    /// `cache_bytes` of pages.
    pub fn open_with_cache(
        dir: &Path,
        currency: &str,
        cache_bytes: u64,
    ) -> Result<SledStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(storage)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .segment_size(SEGMENT_BYTES)
            .flush_every_ms(None)
            .open()
            .map_err(storage)?;
        let db_file = File::open(dir.join("db")).map_err(storage)?;
        let tree = |name: &str| db.open_tree(name).map_err(storage);
        let upgrade = Upgrade {
            db: &db,
            db_file: &db_file,
        };
        migrate_id_keyed_stamps(&upgrade, &tree("stamp_ids")?, &tree("stamps")?)?;
        migrate_hash_per_key(&upgrade, &tree("hash_chunks")?)?;
        migrate_entry_per_key(&upgrade, &tree("ledger_bundles")?, &tree("meta")?)?;
        Ok(SledStore {
            meta: tree("meta")?,
            accounts: tree("accounts")?,
            api_keys: tree("api_keys")?,
            credits: tree("credits")?,
            purchase_keys: tree("purchase_keys")?,
            stamp_ids: tree("stamp_ids")?,
            stamps: tree("stamps")?,
            posts: tree("posts")?,
            post_order: tree("post_order")?,
            ledger: tree("ledger_bundles")?,
            hashes: tree("hash_chunks")?,
            checkpoints: tree("checkpoints")?,
            db,
            db_file,
            currency: currency.to_string(),
        })
    }

    fn apply_one(&self, tx: &Tx<'_>, command: &Command, now: Timestamp) -> TxResult<Applied> {
        // Entry times never go backwards, even if the wall clock does.
        let last =
            Timestamp::from_unix(i64::try_from(tx.meta_u64("last_time")?).unwrap_or(i64::MAX));
        let time = now.max(last);
        let result = match command {
            Command::KeyEvent {
                kid,
                public_key,
                status,
            } => {
                let index = tx.append(
                    time,
                    &Body::Key {
                        kid: kid.to_hex(),
                        public_key: public_key.clone(),
                        status: status.as_str(),
                    },
                )?;
                let meta_key = format!("key:{kid}");
                let published_at = match tx_get(tx.meta, meta_key.as_bytes())? {
                    Some(bytes) => decode_key_record(*kid, &bytes).map_err(abort)?.published_at,
                    None => time,
                };
                let record = KeyRecord {
                    status: *status,
                    public_key: public_key.clone(),
                    published_at: published_at.to_rfc3339(),
                };
                let bytes = serde_json::to_vec(&record).map_err(|e| abort(storage(e)))?;
                tx.meta.insert(meta_key.as_bytes(), bytes)?;
                Ok(Outcome::KeyPublished {
                    ledger_index: index,
                })
            }
            Command::CreateAccount {
                account_id,
                name,
                api_key_sha256,
            } => {
                if tx_get(tx.accounts, &uuid_key(*account_id))?.is_some()
                    || tx_get(tx.api_keys, api_key_sha256)?.is_some()
                {
                    // Random 128-bit and 256-bit values collided: refuse rather than overwrite.
                    return Ok(Err(Refusal::IdempotencyConflict(
                        "account id or key collided",
                    )));
                }
                tx.put_account(&Account {
                    account_id: *account_id,
                    name: name.clone(),
                    balance: 0,
                    stamps_purchased: 0,
                    stamps_spent: 0,
                    created_at: time,
                })?;
                tx.api_keys
                    .insert(api_key_sha256.as_slice(), &uuid_key(*account_id))?;
                Ok(Outcome::AccountCreated)
            }
            Command::Credit {
                account_id,
                amount,
                reference,
            } => self.credit(tx, time, *account_id, *amount, reference)?,
            Command::Purchase {
                account_id,
                unit_price,
                idempotency_key_sha256,
                purchase_id,
                kid,
                issued_at,
                expires_at,
                stamp_ids,
            } => {
                let mut record = PurchaseRecord {
                    purchase_id: *purchase_id,
                    account_id: *account_id,
                    count: u32::try_from(stamp_ids.len()).unwrap_or(u32::MAX),
                    unit_price: *unit_price,
                    total: 0,
                    balance: 0,
                    ledger_index: 0,
                    kid: *kid,
                    issued_at: *issued_at,
                    expires_at: *expires_at,
                    stamp_ids: stamp_ids.clone(),
                };
                self.purchase(tx, time, &mut record, idempotency_key_sha256.as_ref())?
            }
            Command::Spend { stamps, spend_for } => self.spend(tx, time, stamps, spend_for)?,
        };
        if result.is_ok() {
            tx.set_meta_u64("last_time", u64::try_from(time.unix()).unwrap_or(0))?;
        }
        Ok(result)
    }

    fn credit(
        &self,
        tx: &Tx<'_>,
        time: Timestamp,
        account_id: Uuid,
        amount: u64,
        reference: &str,
    ) -> TxResult<Applied> {
        if amount == 0 {
            return Ok(Err(Refusal::Invalid("a credit must be positive")));
        }
        let reference_sha256: [u8; 32] = Sha256::digest(reference.as_bytes()).into();
        if let Some(bytes) = tx_get(tx.credits, &reference_sha256)? {
            let first: CreditRecord = decode_json(&bytes, "credits").map_err(abort)?;
            if first.account_id == account_id && first.amount == amount {
                return Ok(Ok(Outcome::Credited {
                    balance: first.balance,
                    ledger_index: first.ledger_index,
                }));
            }
            return Ok(Err(Refusal::IdempotencyConflict(
                "this reference was already used for another account or amount",
            )));
        }
        let Some(mut account) = tx.account(account_id)? else {
            return Ok(Err(Refusal::NotFound("account")));
        };
        let Some(balance) = account.balance.checked_add(amount) else {
            return Ok(Err(Refusal::Overflow("balance")));
        };
        account.balance = balance;
        let index = tx.append(
            time,
            &Body::Credit {
                account: account_id,
                amount,
                currency: self.currency.clone(),
                reference_sha256: hex::encode(reference_sha256),
            },
        )?;
        tx.put_account(&account)?;
        let record = CreditRecord {
            account_id,
            amount,
            balance,
            ledger_index: index,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| abort(storage(e)))?;
        tx.credits.insert(reference_sha256.as_slice(), bytes)?;
        Ok(Ok(Outcome::Credited {
            balance,
            ledger_index: index,
        }))
    }

    fn purchase(
        &self,
        tx: &Tx<'_>,
        time: Timestamp,
        record: &mut PurchaseRecord,
        idempotency_key_sha256: Option<&[u8; 32]>,
    ) -> TxResult<Applied> {
        let idempotency_key = idempotency_key_sha256.map(|hash| {
            let mut key = [0u8; 48];
            key[..16].copy_from_slice(record.account_id.as_bytes());
            key[16..].copy_from_slice(hash);
            key
        });
        if let Some(key) = &idempotency_key {
            if let Some(bytes) = tx_get(tx.purchase_keys, key)? {
                let first: PurchaseRecord = decode_json(&bytes, "purchase_keys").map_err(abort)?;
                if first.count == record.count {
                    return Ok(Ok(Outcome::Purchased {
                        record: first,
                        replayed: true,
                    }));
                }
                return Ok(Err(Refusal::IdempotencyConflict(
                    "this Idempotency-Key was used with a different request body",
                )));
            }
        }
        if let Some(refusal) = distinct_and_present(&record.stamp_ids) {
            return Ok(Err(refusal));
        }
        let Some(mut account) = tx.account(record.account_id)? else {
            return Ok(Err(Refusal::NotFound("account")));
        };
        let Some(total) = record.unit_price.checked_mul(u64::from(record.count)) else {
            return Ok(Err(Refusal::Overflow("purchase total")));
        };
        if account.balance < total {
            return Ok(Err(Refusal::InsufficientFunds {
                balance: account.balance,
                total,
            }));
        }
        for id in &record.stamp_ids {
            if tx_get(tx.stamp_ids, &uuid_key(*id))?.is_some() {
                return Ok(Err(Refusal::DuplicateStamp(*id)));
            }
        }
        let Some(purchased) = account
            .stamps_purchased
            .checked_add(u64::from(record.count))
        else {
            return Ok(Err(Refusal::Overflow("stamps purchased")));
        };
        account.balance -= total;
        account.stamps_purchased = purchased;
        record.total = total;
        record.balance = account.balance;
        record.ledger_index = tx.append(
            time,
            &Body::Purchase {
                account: record.account_id,
                purchase_id: record.purchase_id,
                count: record.count,
                unit_price: record.unit_price,
                total,
                kid: record.kid.to_hex(),
                issued_at: record.issued_at.to_rfc3339(),
                expires_at: record.expires_at.to_rfc3339(),
                stamp_ids: record.stamp_ids.clone(),
            },
        )?;
        tx.put_account(&account)?;
        let sold = encode_sold(
            record.account_id,
            record.kid,
            record.issued_at,
            record.expires_at,
        );
        let issued = record.issued_at.unix().to_be_bytes();
        for id in &record.stamp_ids {
            tx.stamp_ids.insert(&uuid_key(*id), &issued[..])?;
            let key = stamp_key(StampRef {
                stamp_id: *id,
                issued_at: record.issued_at,
            });
            tx.stamps.insert(&key[..], &sold[..])?;
        }
        if let Some(key) = &idempotency_key {
            let bytes = serde_json::to_vec(&*record).map_err(|e| abort(storage(e)))?;
            tx.purchase_keys.insert(key.as_slice(), bytes)?;
        }
        Ok(Ok(Outcome::Purchased {
            record: record.clone(),
            replayed: false,
        }))
    }

    fn spend(
        &self,
        tx: &Tx<'_>,
        time: Timestamp,
        stamps: &[StampRef],
        spend_for: &SpendFor,
    ) -> TxResult<Applied> {
        // Check everything first: a refused spend must change nothing.
        let stamp_ids: Vec<Uuid> = stamps.iter().map(|s| s.stamp_id).collect();
        if let Some(refusal) = distinct_and_present(&stamp_ids) {
            return Ok(Err(refusal));
        }
        let mut found = Vec::with_capacity(stamps.len());
        for stamp in stamps {
            let id = stamp.stamp_id;
            let key = stamp_key(*stamp);
            // Absent at this key: never sold, or sold with another issue time (which a stamp
            // whose signature verified cannot claim).
            let Some(bytes) = tx_get(tx.stamps, &key)? else {
                return Ok(Err(Refusal::NotSold(id)));
            };
            let sold = decode_sold(&bytes).map_err(abort)?;
            if bytes.len() > SOLD_BYTES {
                return Ok(Err(Refusal::AlreadySpent(id)));
            }
            if time >= sold.expires_at {
                return Ok(Err(Refusal::Expired(id)));
            }
            found.push((key, bytes, sold.buyer));
        }
        let (target, spent_for, mut post) = match spend_for {
            SpendFor::Post {
                post_id,
                author,
                body,
            } => {
                if tx_get(tx.posts, &uuid_key(*post_id))?.is_some() {
                    return Ok(Err(Refusal::IdempotencyConflict("post id collided")));
                }
                let seq = tx.meta_u64("post_seq")?;
                let post = Post {
                    post_id: *post_id,
                    author: author.clone(),
                    body: body.clone(),
                    created_at: time,
                    score: 0,
                    ledger_index: 0,
                    seq,
                };
                (post_id.to_string(), format!("post:{post_id}"), Some(post))
            }
            SpendFor::Vote { post_id, up } => {
                let Some(bytes) = tx_get(tx.posts, &uuid_key(*post_id))? else {
                    return Ok(Err(Refusal::NotFound("post")));
                };
                let mut post: Post = decode_json(&bytes, "posts").map_err(abort)?;
                let delta = if *up { 1 } else { -1 };
                let Some(score) = post.score.checked_add(delta) else {
                    return Ok(Err(Refusal::Overflow("score")));
                };
                post.score = score;
                (post_id.to_string(), format!("vote:{post_id}"), Some(post))
            }
            SpendFor::Redeem { context } => (
                hex::encode(Sha256::digest(context.as_bytes())),
                context.clone(),
                None,
            ),
        };
        let index = tx.append(
            time,
            &Body::Spend {
                stamp_ids,
                action: spend_for.action(),
                target,
            },
        )?;
        let record = SpentRecord {
            spent_at: time,
            action: spend_for.action(),
            spent_for,
            ledger_index: index,
        };
        let record_bytes = serde_json::to_vec(&record).map_err(|e| abort(storage(e)))?;
        for (key, sold, buyer) in found {
            let mut value = Vec::with_capacity(SOLD_BYTES + record_bytes.len());
            value.extend_from_slice(&sold[..SOLD_BYTES]);
            value.extend_from_slice(&record_bytes);
            tx.stamps.insert(&key[..], value)?;
            if let Some(mut account) = tx.account(buyer)? {
                account.stamps_spent = account.stamps_spent.saturating_add(1);
                tx.put_account(&account)?;
            }
        }
        if let Some(post) = post.as_mut() {
            if matches!(spend_for, SpendFor::Post { .. }) {
                post.ledger_index = index;
                tx.post_order
                    .insert(&post.seq.to_be_bytes(), &uuid_key(post.post_id))?;
                tx.set_meta_u64("post_seq", post.seq + 1)?;
            }
            let bytes = serde_json::to_vec(&*post).map_err(|e| abort(storage(e)))?;
            tx.posts.insert(&uuid_key(post.post_id), bytes)?;
        }
        Ok(Ok(Outcome::Spent {
            spent_at: time,
            ledger_index: index,
            post,
        }))
    }
}

impl Store for SledStore {
    fn apply(&self, batch: &[Command], now: Timestamp) -> Result<Vec<Applied>, StoreError> {
        let trees = (
            &self.meta,
            &self.accounts,
            &self.api_keys,
            &self.credits,
            &self.purchase_keys,
            &self.stamp_ids,
            &self.stamps,
            &self.posts,
            &self.post_order,
            &self.ledger,
            &self.hashes,
        );
        let result = trees.transaction(
            |(
                meta,
                accounts,
                api_keys,
                credits,
                purchase_keys,
                stamp_ids,
                stamps,
                posts,
                post_order,
                ledger,
                hashes,
            )| {
                let tx = Tx::new((
                    meta,
                    accounts,
                    api_keys,
                    credits,
                    purchase_keys,
                    stamp_ids,
                    stamps,
                    posts,
                    post_order,
                    ledger,
                    hashes,
                ));
                let mut results = Vec::with_capacity(batch.len());
                for command in batch {
                    results.push(self.apply_one(&tx, command, now)?);
                }
                tx.write_back()?;
                Ok(results)
            },
        );
        match result {
            Ok(results) => Ok(results),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(storage(e)),
        }
    }

    fn sync(&self) -> Result<(), StoreError> {
        sync_db(&self.db, &self.db_file)
    }

    fn ledger_size(&self) -> Result<u64, StoreError> {
        match self.meta.get("ledger_size").map_err(storage)? {
            Some(bytes) => read_u64(&bytes, "meta"),
            None => Ok(0),
        }
    }

    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError> {
        match self.accounts.get(uuid_key(account_id)).map_err(storage)? {
            Some(bytes) => decode_json(&bytes, "accounts").map(Some),
            None => Ok(None),
        }
    }

    fn account_by_api_key(&self, api_key_sha256: &[u8; 32]) -> Result<Option<Account>, StoreError> {
        let Some(id) = self.api_keys.get(api_key_sha256).map_err(storage)? else {
            return Ok(None);
        };
        let id: [u8; 16] = id
            .as_ref()
            .try_into()
            .map_err(|_| corrupt("api_keys", "account id length"))?;
        self.account(Uuid::from_bytes(id))
    }

    fn stamp(&self, stamp_id: Uuid) -> Result<Option<StampRecord>, StoreError> {
        let Some(issued) = self.stamp_ids.get(uuid_key(stamp_id)).map_err(storage)? else {
            return Ok(None);
        };
        let issued_at = Timestamp::from_unix(read_u64(&issued, "stamp_ids")? as i64);
        let key = stamp_key(StampRef {
            stamp_id,
            issued_at,
        });
        let Some(bytes) = self.stamps.get(key).map_err(storage)? else {
            return Err(corrupt("stamps", format!("no record for stamp {stamp_id}")));
        };
        let sold = decode_sold(&bytes)?;
        let spent = decode_spent(&bytes)?;
        Ok(Some(StampRecord {
            stamp_id,
            buyer: sold.buyer,
            kid: sold.kid,
            issued_at: sold.issued_at,
            expires_at: sold.expires_at,
            spent,
        }))
    }

    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError> {
        match self.posts.get(uuid_key(post_id)).map_err(storage)? {
            Some(bytes) => decode_json(&bytes, "posts").map(Some),
            None => Ok(None),
        }
    }

    fn posts(&self, before: Option<Uuid>, limit: usize) -> Result<Option<Vec<Post>>, StoreError> {
        let upper = match before {
            Some(id) => match self.post(id)? {
                Some(post) => post.seq,
                None => return Ok(None),
            },
            None => u64::MAX,
        };
        let mut posts = Vec::with_capacity(limit);
        for item in self
            .post_order
            .range(..upper.to_be_bytes())
            .rev()
            .take(limit)
        {
            let (_, id) = item.map_err(storage)?;
            let id: [u8; 16] = id
                .as_ref()
                .try_into()
                .map_err(|_| corrupt("post_order", "post id length"))?;
            let post = self
                .post(Uuid::from_bytes(id))?
                .ok_or_else(|| corrupt("post_order", "post missing"))?;
            posts.push(post);
        }
        Ok(Some(posts))
    }

    fn entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let end = start.saturating_add(limit);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // The bundle holding `start` is the last one that begins at or before it.
        let first = match self
            .ledger
            .range(..=start.to_be_bytes())
            .next_back()
            .transpose()
            .map_err(storage)?
        {
            Some((key, _)) => read_u64(&key, "ledger_bundles")?,
            None => return Ok(out),
        };
        for item in self.ledger.range(first.to_be_bytes()..end.to_be_bytes()) {
            let (key, bundle) = item.map_err(storage)?;
            let bundle_start = read_u64(&key, "ledger_bundles")?;
            for (index, entry) in (bundle_start..).zip(bundle_entries(&bundle)?) {
                if index >= end {
                    break;
                }
                if index >= start {
                    out.push(entry.to_vec());
                }
            }
        }
        Ok(out)
    }

    fn hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        // Requests (tiles, proofs) mostly name neighbouring indexes: keep the last chunk read.
        let mut last: Option<([u8; 8], sled::IVec)> = None;
        let mut out = Vec::with_capacity(indexes.len());
        for index in indexes {
            let key = hash_chunk_key(*index);
            let chunk = match &last {
                Some((k, chunk)) if *k == key => chunk.clone(),
                _ => {
                    let chunk = self.hashes.get(key).map_err(storage)?.unwrap_or_default();
                    last = Some((key, chunk.clone()));
                    chunk
                }
            };
            let hash = hash_in_chunk(&chunk, *index)
                .ok_or_else(|| corrupt("hash_chunks", format!("missing hash {index}")))?;
            out.push(hash);
        }
        Ok(out)
    }

    fn published_keys(&self) -> Result<Vec<PublishedKey>, StoreError> {
        let mut out = Vec::new();
        for item in self.meta.scan_prefix("key:") {
            let (key, value) = item.map_err(storage)?;
            let kid_hex = std::str::from_utf8(&key[4..]).map_err(|e| corrupt("meta", e))?;
            let kid_bytes: [u8; 8] = hex::decode(kid_hex)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("meta", "kid"))?;
            out.push(decode_key_record(Kid(kid_bytes), &value)?);
        }
        Ok(out)
    }

    fn checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        let Some(bytes) = self.checkpoints.get("latest").map_err(storage)? else {
            return Ok(None);
        };
        if bytes.len() < 8 {
            return Err(corrupt("checkpoints", "record length"));
        }
        let size = read_u64(&bytes[..8], "checkpoints")?;
        let note = String::from_utf8(bytes[8..].to_vec()).map_err(|e| corrupt("checkpoints", e))?;
        Ok(Some((size, note)))
    }

    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(note.as_bytes());
        self.checkpoints.insert("latest", bytes).map_err(storage)?;
        Ok(())
    }
}
