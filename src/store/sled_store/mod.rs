//! The embedded backend: sled 0.34.7. A thin adapter: [`Writes::write`] opens one sled
//! transaction over the trees, hands it to the rules' closure as a `tx::SledTx`, and
//! commits; every rule and refusal lives in the rules. What is here is the layout
//! (`layout`, `records`: private on-disk types), the basic operations (`tx`), the
//! migrations of older layouts (`migrate`), durability ([`SledStore::sync`]) and the reads.
//!
//! The life of a spend in this store: the rules read the stamp's value at
//! `stamps[issued_at ‖ id]` (sale and spend in one value), append the `spend` entry (its bytes
//! go into the open `ledger_bundles` value, its new Merkle hashes into `hash_chunks`), rewrite
//! the stamp's value with its spend record, bump the buyer's `stamps_spent` in the batch's
//! account cache, and write the post; at the end of the batch the cached counters and accounts
//! are written once, sled commits the transaction, and the committer calls [`SledStore::sync`]
//! (flush + fdatasync) before anyone is answered.
//!
//! Trees and their keys (all integers big-endian so that key order is numeric order):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `ledger_size`, `last_time`, `post_seq`, `bundle_start`, `key:<kid>`, `policy` | u64 / i64 / u64 / u64 / `records::KeyRecord` / `records::PolicyRecord` |
//! | `accounts` | account id (16) | `records::AccountRecord` JSON |
//! | `api_keys` | SHA-256 of API key (32) | account id (16) |
//! | `credits` | SHA-256 of reference (32) | `records::CreditKeyRecord` JSON |
//! | `purchase_keys` | account id (16) + SHA-256 of Idempotency-Key (32) | `records::PurchaseKeyRecord` JSON |
//! | `stamp_ids` | stamp id (16) | issued_at (8) |
//! | `stamps` | issued_at (8) + stamp id (16) | buyer (16) + kid (8) + issued_at (8) + expires_at (8) + unit_price (8; absent in stamps sold before prices were kept), then `records::SpentPart` JSON once spent |
//! | `posts` | post id (16) | `records::PostRecord` JSON |
//! | `post_order` | board sequence (8) | post id (16) |
//! | `ledger_bundles` | index of the bundle's first entry (8) | up to 8 consecutive entries, each as length (4) + bytes |
//! | `hash_chunks` | stored-hash index / 16 (8) | up to 16 32-byte hashes, in index order |
//! | `economy` | `c` + payer (16); `p` + payer (16) + n (8); `v` + post id (16) + payer (16) | a payer's post count; the time of its n-th post; its votes on a post (8) + up-voted (1) |
//! | `names` | account name, NFC and lower case | account id (16) |
//! | `holds` | `h` + hold id (16); `s` + stamp id (16) | `records::HoldRecord` JSON; the id of the stamp's last hold (16) |
//! | `checkpoints` | `latest` | size (8) + note text |
//! | `payments`, `payment_index` | see `payments` | the payments' records, outside the batches |
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
//! A backup (`backup`, `POST /v1/admin/backup`) copies every tree, key by key, into a new
//! database with the same segment size, between two batches of the writer.
//!
//! Data directories written before these layouts (trees `sold` and `spent` keyed by stamp id,
//! `hashes` with one hash per key, `ledger` with one entry per key) are migrated on open
//! (`migrate`).
//!
//! A batch is one sled transaction over every tree but `checkpoints`. Durability: sled's `flush`
//! writes its log with `sync_file_range`, which leaves file metadata (the file's new length)
//! in memory, so [`SledStore::sync`] also `fdatasync`s the database file. The segment size is
//! raised so that no value we write can become a separate "blob" file (sled writes those
//! without fsync): the largest node is 17 items of at most 64 KiB + 4 bytes (a ledger
//! bundle), far below a quarter of an 8 MiB segment.

mod backup;
mod export;
mod layout;
mod migrate;
mod payments;
mod records;
#[cfg(test)]
mod tests;
mod tx;

use std::fs::File;
use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional as _;
use uuid::Uuid;

use self::layout::{
    bundle_entries, corrupt, decode_sold, encode_kids, hash_chunk_key, hash_in_chunk, read_u64,
    read_uuid, stamp_key, storage, uuid_key, ACTIVE_KEYS,
};
use self::migrate::{
    migrate_account_purchases, migrate_entry_per_key, migrate_hash_per_key,
    migrate_id_keyed_stamps, migrate_stamp_prices, Upgrade,
};
use self::records::{decode_spent, AccountRecord, KeyRecord, PostRecord};
use self::tx::SledTx;
use super::{BackupError, Cluster, ReadSet, Reads, StoreError, TxBody, Writes};
use crate::domain::{Account, Hold, Post, StampRecord, StampRef};
use crate::keys::{KeyStatus, PublishedKey};
use crate::stamp::Kid;
use crate::time::Timestamp;

/// The page cache sled gets unless told otherwise (`--cache-mib`): sled's own default, 1 GiB.
pub const DEFAULT_CACHE_MIB: u64 = 1024;

/// sled segment size; see the module comment for why it is larger than sled's default.
const SEGMENT_BYTES: usize = 8 * 1024 * 1024;

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
    economy: sled::Tree,
    names: sled::Tree,
    holds: sled::Tree,
    checkpoints: sled::Tree,
    /// The payments' records and their index (`payments`), outside the ledger's batches.
    payments: sled::Tree,
    payment_index: sled::Tree,
}

/// Makes everything written to `db` durable: sled's `flush`, then `fdatasync` of its file
/// (see the module comment).
fn sync_db(db: &sled::Db, db_file: &File) -> Result<(), StoreError> {
    db.flush().map_err(storage)?;
    db_file.sync_data().map_err(storage)
}

impl SledStore {
    /// Opens (creating when missing) the database under `dir`, with the default page cache.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with_cache(dir, DEFAULT_CACHE_MIB * 1024 * 1024)
    }

    /// Opens (creating when missing) the database under `dir`, letting sled cache up to
    /// `cache_bytes` of pages.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(storage)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .segment_size(SEGMENT_BYTES)
            .flush_every_ms(None)
            .open()
            .map_err(|e| match e {
                // sled holds an exclusive lock on its file for the life of the process, and
                // reports a second opener with this text (its I/O error has no kind of its own).
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    StoreError::Storage(format!(
                        "the data directory {} is in use by another process (is another \
                         pennypost serve running on it? one process per data directory; {io})",
                        dir.parent().unwrap_or(dir).display()
                    ))
                }
                e => storage(e),
            })?;
        let db_file = File::open(dir.join("db")).map_err(storage)?;
        let tree = |name: &str| db.open_tree(name).map_err(storage);
        let upgrade = Upgrade {
            db: &db,
            db_file: &db_file,
        };
        migrate_id_keyed_stamps(&upgrade, &tree("stamp_ids")?, &tree("stamps")?)?;
        migrate_hash_per_key(&upgrade, &tree("hash_chunks")?)?;
        migrate_entry_per_key(&upgrade, &tree("ledger_bundles")?, &tree("meta")?)?;
        migrate_stamp_prices(
            &upgrade,
            &tree("meta")?,
            &tree("ledger_bundles")?,
            &tree("stamps")?,
        )?;
        migrate_account_purchases(
            &upgrade,
            &tree("meta")?,
            &tree("ledger_bundles")?,
            &tree("economy")?,
        )?;
        let store = SledStore {
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
            economy: tree("economy")?,
            names: tree("names")?,
            holds: tree("holds")?,
            checkpoints: tree("checkpoints")?,
            payments: tree("payments")?,
            payment_index: tree("payment_index")?,
            db,
            db_file,
        };
        store.rebuild_active_keys()?;
        Ok(store)
    }
}

impl SledStore {
    /// A counter of `meta` (0 when not written yet).
    fn meta_u64(&self, key: &str) -> Result<u64, StoreError> {
        match self.meta.get(key).map_err(storage)? {
            Some(bytes) => read_u64(&bytes, "meta"),
            None => Ok(0),
        }
    }

    /// Writes the list of active kids from the `key:{kid}` records (a directory written
    /// before the list was kept has none; a rebuilt one is the same as the stored one).
    fn rebuild_active_keys(&self) -> Result<(), StoreError> {
        let active: Vec<Kid> = self
            .published_keys()?
            .into_iter()
            .filter(|k| k.status == KeyStatus::Active)
            .map(|k| k.kid)
            .collect();
        let bytes = encode_kids(&active);
        if self.meta.get(ACTIVE_KEYS).map_err(storage)?.as_deref() != Some(&bytes[..]) {
            self.meta.insert(ACTIVE_KEYS, bytes).map_err(storage)?;
            self.db.flush().map_err(storage)?;
        }
        Ok(())
    }

    /// Runs `body` in one sled transaction over every tree but `checkpoints`; sled runs it
    /// again on a conflict. Nothing `body` wrote is kept when it fails.
    fn transaction(
        &self,
        body: impl Fn(&SledTx<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
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
            &self.economy,
            &self.names,
            &self.holds,
        );
        let result = trees.transaction(|trees| {
            body(&SledTx::new(trees)).map_err(|e| match e {
                StoreError::Conflict => ConflictableTransactionError::Conflict,
                e => ConflictableTransactionError::Abort(e),
            })
        });
        match result {
            Ok(value) => Ok(value),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(storage(e)),
        }
    }
}

impl Writes for SledStore {
    fn write(&self, _reads: &ReadSet, body: &mut TxBody<'_>) -> Result<(), StoreError> {
        // sled runs the closure again after a conflict, through `Fn`: the body is reached
        // through a cell (one run at a time, on this thread).
        let body = std::cell::RefCell::new(body);
        self.transaction(|tx| {
            (body.borrow_mut())(tx)?;
            tx.write_back()
        })
    }

    fn read(&self, body: &mut TxBody<'_>) -> Result<(), StoreError> {
        // A transaction that only reads: the rules price through the same operations.
        let body = std::cell::RefCell::new(body);
        self.transaction(|tx| (body.borrow_mut())(tx))
    }

    fn sync(&self) -> Result<(), StoreError> {
        sync_db(&self.db, &self.db_file)
    }

    fn synced_size(&self) -> Result<u64, StoreError> {
        self.ledger_size()
    }

    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(note.as_bytes());
        self.checkpoints.insert("latest", bytes).map_err(storage)?;
        Ok(())
    }

    fn backup(&self, dir: &Path) -> Result<(), BackupError> {
        Ok(backup::copy_to(&self.db, dir)?)
    }
}

impl Cluster for SledStore {}

impl Reads for SledStore {
    fn ledger_size(&self) -> Result<u64, StoreError> {
        self.meta_u64("ledger_size")
    }

    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError> {
        match self.accounts.get(uuid_key(account_id)).map_err(storage)? {
            Some(bytes) => AccountRecord::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn account_by_api_key(&self, api_key_sha256: &[u8; 32]) -> Result<Option<Account>, StoreError> {
        let Some(id) = self.api_keys.get(api_key_sha256).map_err(storage)? else {
            return Ok(None);
        };
        self.account(read_uuid(&id, "api_keys")?)
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
        let sale = decode_sold(&bytes)?;
        Ok(Some(StampRecord {
            stamp_id,
            buyer: sale.buyer,
            kid: sale.kid,
            issued_at: sale.issued_at,
            expires_at: sale.expires_at,
            spent: decode_spent(&bytes)?,
        }))
    }

    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError> {
        match self.posts.get(uuid_key(post_id)).map_err(storage)? {
            Some(bytes) => PostRecord::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        match self.holds.get(layout::hold_key(hold_id)).map_err(storage)? {
            Some(bytes) => records::HoldRecord::decode(&bytes).map(Some),
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
            let post = self
                .post(read_uuid(&id, "post_order")?)?
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
            out.push(KeyRecord::decode(Kid(kid_bytes), &value)?);
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
}
