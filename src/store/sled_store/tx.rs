//! The basic operations of [`StoreTx`] over one sled transaction of the eleven trees a batch
//! touches. No rule lives here: this only reads and writes bytes.

use std::cell::RefCell;
use std::collections::HashMap;

use sled::transaction::{TransactionalTree, UnabortableTransactionError};
use uuid::Uuid;

use super::layout::{
    corrupt, decode_kids, decode_sold, decode_voter, encode_kids, encode_sold, encode_voter,
    fits_in_bundle, hash_chunk_key, hash_chunk_offset, hash_in_chunk, hold_key, push_entry,
    read_u64, read_uuid, stamp_hold_key, stamp_key, uuid_key, ACTIVE_KEYS, SOLD_BYTES,
};
use super::records::{
    decode_spent, AccountRecord, CreditKeyRecord, HoldRecord, KeyRecord, PolicyRecord, PostRecord,
    PurchaseKeyRecord, SpentPart,
};
use crate::domain::{
    Account, CreditRecord, Hold, Policy, Post, PurchaseRecord, Sale, SoldStamp, SpentRecord,
    StampRef, Voter,
};
use crate::keys::{KeyStatus, PublishedKey};
use crate::stamp::Kid;
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

/// sled's errors inside a transaction: a conflict stays a conflict (sled then runs the batch
/// again), anything else is a storage failure.
fn tx_error(e: UnabortableTransactionError) -> StoreError {
    match e {
        UnabortableTransactionError::Conflict => StoreError::Conflict,
        UnabortableTransactionError::Storage(e) => StoreError::Storage(e.to_string()),
    }
}

/// The transactional view of the trees, in the order [`super::SledStore`] opens them.
pub(super) type Trees = (
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
);

/// One sled transaction as a [`StoreTx`].
pub(super) struct SledTx<'a> {
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
    economy: &'a TransactionalTree,
    names: &'a TransactionalTree,
    holds: &'a TransactionalTree,
    /// Write-back caches for the batch: counters in `meta` and accounts change with almost
    /// every command, so they are read once, kept here, and written once when the batch ends
    /// ([`SledTx::write_back`]). Safe because the rules write only after every check passed.
    meta_cache: RefCell<HashMap<&'static str, (u64, bool)>>,
    account_cache: RefCell<HashMap<Uuid, (Account, bool)>>,
    /// The same for the ledger's tail: every append adds to the open bundle and to one or two
    /// hash chunks, so a batch of many entries would otherwise read, copy and write the same
    /// few values again for each of them. Hash chunks by key, and the open bundle (its start
    /// index and bytes); `true` when changed in this batch.
    chunk_cache: RefCell<HashMap<[u8; 8], Cached>>,
    bundle_cache: RefCell<Option<(u64, Vec<u8>, bool)>>,
}

/// A cached value's bytes, and whether the batch changed them.
type Cached = (Vec<u8>, bool);

impl<'a> SledTx<'a> {
    pub(super) fn new(trees: &'a Trees) -> SledTx<'a> {
        let (
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
            economy,
            names,
            holds,
        ) = trees;
        SledTx {
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
            economy,
            names,
            holds,
            meta_cache: RefCell::new(HashMap::new()),
            account_cache: RefCell::new(HashMap::new()),
            chunk_cache: RefCell::new(HashMap::new()),
            bundle_cache: RefCell::new(None),
        }
    }

    fn get(tree: &TransactionalTree, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        tree.get(key).map_err(tx_error)
    }

    fn insert(
        tree: &TransactionalTree,
        key: &[u8],
        value: impl Into<sled::IVec>,
    ) -> Result<(), StoreError> {
        tree.insert(key, value).map(|_| ()).map_err(tx_error)
    }

    fn meta_u64(&self, key: &'static str) -> Result<u64, StoreError> {
        if let Some((value, _)) = self.meta_cache.borrow().get(key) {
            return Ok(*value);
        }
        let value = match Self::get(self.meta, key.as_bytes())? {
            Some(bytes) => read_u64(&bytes, "meta")?,
            None => 0,
        };
        self.meta_cache.borrow_mut().insert(key, (value, false));
        Ok(value)
    }

    fn set_meta_u64(&self, key: &'static str, value: u64) {
        self.meta_cache.borrow_mut().insert(key, (value, true));
    }

    /// Writes the changed counters, accounts, hash chunks and open bundle of the batch into
    /// the transaction.
    pub(super) fn write_back(&self) -> Result<(), StoreError> {
        for (key, (chunk, dirty)) in self.chunk_cache.borrow().iter() {
            if *dirty {
                Self::insert(self.hashes, key, &chunk[..])?;
            }
        }
        if let Some((start, bundle, true)) = self.bundle_cache.borrow().as_ref() {
            Self::insert(self.ledger, &start.to_be_bytes(), &bundle[..])?;
        }
        for (key, (value, dirty)) in self.meta_cache.borrow().iter() {
            if *dirty {
                Self::insert(self.meta, key.as_bytes(), &value.to_be_bytes()[..])?;
            }
        }
        for (id, (account, dirty)) in self.account_cache.borrow().iter() {
            if *dirty {
                Self::insert(
                    self.accounts,
                    &uuid_key(*id),
                    AccountRecord::encode(account)?,
                )?;
            }
        }
        Ok(())
    }

    /// Stores entry `index` (the next one) in the open bundle, or opens a new bundle with it
    /// (in the batch's cache: see [`SledTx::write_back`]).
    fn add_to_bundle(&self, index: u64, bytes: &[u8]) -> Result<(), StoreError> {
        if index > 0 {
            let start = self.meta_u64("bundle_start")?;
            let cached = matches!(&*self.bundle_cache.borrow(), Some((s, _, _)) if *s == start);
            if !cached {
                let Some(open) = Self::get(self.ledger, &start.to_be_bytes())? else {
                    return Err(corrupt("ledger_bundles", format!("no bundle at {start}")));
                };
                self.replace_bundle(start, open.to_vec(), false)?;
            }
            if let Some((_, bundle, dirty)) = self.bundle_cache.borrow_mut().as_mut() {
                if fits_in_bundle(index - start, bundle.len(), bytes.len()) {
                    push_entry(bundle, bytes);
                    *dirty = true;
                    return Ok(());
                }
            }
        }
        let mut bundle = Vec::with_capacity(4 + bytes.len());
        push_entry(&mut bundle, bytes);
        self.replace_bundle(index, bundle, true)?;
        self.set_meta_u64("bundle_start", index);
        Ok(())
    }

    /// Makes `bundle` (starting at entry `start`) the cached open bundle, first writing the one
    /// it replaces into the transaction if that one changed.
    fn replace_bundle(&self, start: u64, bundle: Vec<u8>, dirty: bool) -> Result<(), StoreError> {
        let old = self.bundle_cache.replace(Some((start, bundle, dirty)));
        if let Some((old_start, old_bundle, true)) = old {
            Self::insert(self.ledger, &old_start.to_be_bytes(), old_bundle)?;
        }
        Ok(())
    }

    /// The hash chunk stored under `key`, from the batch's cache or the tree (empty when
    /// absent), for `f` to read or change; `f` returns whether it changed it.
    fn with_chunk<R>(
        &self,
        key: [u8; 8],
        f: impl FnOnce(&mut Vec<u8>) -> (R, bool),
    ) -> Result<R, StoreError> {
        let mut cache = self.chunk_cache.borrow_mut();
        let entry = match cache.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let chunk = Self::get(self.hashes, &key)?.map_or_else(Vec::new, |c| c.to_vec());
                e.insert((chunk, false))
            }
        };
        let (result, changed) = f(&mut entry.0);
        entry.1 |= changed;
        Ok(result)
    }
}

impl StoreTx for SledTx<'_> {
    fn ledger_size(&self) -> Result<u64, StoreError> {
        self.meta_u64("ledger_size")
    }

    fn last_time(&self) -> Result<Timestamp, StoreError> {
        let last = self.meta_u64("last_time")?;
        Ok(Timestamp::from_unix(
            i64::try_from(last).unwrap_or(i64::MAX),
        ))
    }

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut out = Vec::with_capacity(indexes.len());
        for index in indexes {
            let hash = self.with_chunk(hash_chunk_key(*index), |chunk| {
                (hash_in_chunk(chunk, *index), false)
            })?;
            out.push(hash.ok_or_else(|| corrupt("hash_chunks", format!("missing hash {index}")))?);
        }
        Ok(out)
    }

    fn append(
        &self,
        index: u64,
        time: Timestamp,
        entry: &[u8],
        hashes: &[[u8; 32]],
    ) -> Result<(), StoreError> {
        let first = tlog_tiles::stored_hash_index(0, index);
        for (at, hash) in (first..).zip(hashes) {
            // Appends fill each chunk in order: anything else means the tree was damaged.
            let held = self.with_chunk(hash_chunk_key(at), |chunk| {
                if chunk.len() != hash_chunk_offset(at) {
                    return (Some(chunk.len()), false);
                }
                chunk.extend_from_slice(hash);
                (None, true)
            })?;
            if let Some(held) = held {
                return Err(corrupt(
                    "hash_chunks",
                    format!("chunk of hash {at} holds {held} bytes"),
                ));
            }
        }
        self.add_to_bundle(index, entry)?;
        self.set_meta_u64("ledger_size", index + 1);
        self.set_meta_u64("last_time", u64::try_from(time.unix()).unwrap_or(0));
        Ok(())
    }

    fn published_key(&self, kid: Kid) -> Result<Option<PublishedKey>, StoreError> {
        Self::get(self.meta, format!("key:{kid}").as_bytes())?
            .map(|bytes| KeyRecord::decode(kid, &bytes))
            .transpose()
    }

    fn put_published_key(&self, key: &PublishedKey) -> Result<(), StoreError> {
        let mut active = self.active_keys()?;
        active.retain(|kid| *kid != key.kid);
        if key.status == KeyStatus::Active {
            active.push(key.kid);
        }
        Self::insert(self.meta, ACTIVE_KEYS, encode_kids(&active))?;
        Self::insert(
            self.meta,
            format!("key:{}", key.kid).as_bytes(),
            KeyRecord::encode(key)?,
        )
    }

    fn active_keys(&self) -> Result<Vec<Kid>, StoreError> {
        match Self::get(self.meta, ACTIVE_KEYS)? {
            Some(bytes) => decode_kids(&bytes),
            None => Ok(Vec::new()),
        }
    }

    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError> {
        if let Some((account, _)) = self.account_cache.borrow().get(&account_id) {
            return Ok(Some(account.clone()));
        }
        let Some(bytes) = Self::get(self.accounts, &uuid_key(account_id))? else {
            return Ok(None);
        };
        let account = AccountRecord::decode(&bytes)?;
        self.account_cache
            .borrow_mut()
            .insert(account_id, (account.clone(), false));
        Ok(Some(account))
    }

    fn put_account(&self, account: &Account) -> Result<(), StoreError> {
        self.account_cache
            .borrow_mut()
            .insert(account.account_id, (account.clone(), true));
        Ok(())
    }

    fn api_key_exists(&self, api_key_sha256: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(Self::get(self.api_keys, api_key_sha256)?.is_some())
    }

    fn put_api_key(&self, api_key_sha256: &[u8; 32], account_id: Uuid) -> Result<(), StoreError> {
        Self::insert(self.api_keys, api_key_sha256, &uuid_key(account_id)[..])
    }

    fn credit(&self, reference_sha256: &[u8; 32]) -> Result<Option<CreditRecord>, StoreError> {
        Self::get(self.credits, reference_sha256)?
            .map(|bytes| CreditKeyRecord::decode(&bytes))
            .transpose()
    }

    fn put_credit(
        &self,
        reference_sha256: &[u8; 32],
        record: &CreditRecord,
    ) -> Result<(), StoreError> {
        Self::insert(
            self.credits,
            reference_sha256,
            CreditKeyRecord::encode(record)?,
        )
    }

    fn purchase(
        &self,
        account_id: Uuid,
        key_sha256: &[u8; 32],
    ) -> Result<Option<PurchaseRecord>, StoreError> {
        Self::get(self.purchase_keys, &purchase_key(account_id, key_sha256))?
            .map(|bytes| PurchaseKeyRecord::decode(&bytes))
            .transpose()
    }

    fn put_purchase(
        &self,
        key_sha256: &[u8; 32],
        record: &PurchaseRecord,
    ) -> Result<(), StoreError> {
        Self::insert(
            self.purchase_keys,
            &purchase_key(record.account_id, key_sha256),
            PurchaseKeyRecord::encode(record)?,
        )
    }

    fn account_purchases(
        &self,
        account_id: Uuid,
        since: Timestamp,
        limit: u64,
    ) -> Result<Vec<PurchaseRecord>, StoreError> {
        // No range reads in a transaction: back through the account's purchases by their
        // count and sequence keys, newest first, as `recent_posts` does.
        let count = self.account_purchase_count(account_id)?;
        let mut found = Vec::new();
        for seq in (0..count).rev() {
            if found.len() as u64 >= limit {
                break;
            }
            let Some(bytes) = Self::get(self.economy, &account_purchase_key(account_id, seq))?
            else {
                return Err(corrupt(
                    "economy",
                    format!("account purchase {seq} missing"),
                ));
            };
            let purchase = PurchaseKeyRecord::decode(&bytes)?;
            if purchase.expires_at > since {
                found.push(purchase);
            }
        }
        Ok(found)
    }

    fn add_account_purchase(&self, record: &PurchaseRecord) -> Result<(), StoreError> {
        let count = self.account_purchase_count(record.account_id)?;
        Self::insert(
            self.economy,
            &account_purchase_key(record.account_id, count),
            PurchaseKeyRecord::encode(record)?,
        )?;
        Self::insert(
            self.economy,
            &payer_key(b'n', record.account_id),
            &(count + 1).to_be_bytes()[..],
        )
    }

    fn stamp_exists(&self, stamp_id: Uuid) -> Result<bool, StoreError> {
        Ok(Self::get(self.stamp_ids, &uuid_key(stamp_id))?.is_some())
    }

    fn sold_stamp(&self, stamp: StampRef) -> Result<Option<SoldStamp>, StoreError> {
        let Some(bytes) = Self::get(self.stamps, &stamp_key(stamp))? else {
            return Ok(None);
        };
        Ok(Some(SoldStamp {
            sale: decode_sold(&bytes)?,
            spent: decode_spent(&bytes)?,
        }))
    }

    fn insert_sold(&self, stamp_ids: &[Uuid], sale: &Sale) -> Result<(), StoreError> {
        let sold = encode_sold(sale);
        let issued = sale.issued_at.unix().to_be_bytes();
        for id in stamp_ids {
            Self::insert(self.stamp_ids, &uuid_key(*id), &issued[..])?;
            let key = stamp_key(StampRef {
                stamp_id: *id,
                issued_at: sale.issued_at,
            });
            Self::insert(self.stamps, &key, &sold[..])?;
        }
        Ok(())
    }

    fn policy(&self) -> Result<Option<Policy>, StoreError> {
        Self::get(self.meta, b"policy")?
            .map(|bytes| PolicyRecord::decode(&bytes))
            .transpose()
    }

    fn put_policy(&self, policy: &Policy) -> Result<(), StoreError> {
        Self::insert(self.meta, b"policy", PolicyRecord::encode(policy)?)
    }

    fn recent_posts(&self, payer: Uuid, since: Timestamp, limit: u64) -> Result<u64, StoreError> {
        // Transactions offer no range reads: look back through the payer's last posts, newest
        // first, by their count (`payer_post_count`) and sequence keys, at most `limit`.
        let count = self.payer_post_count(payer)?;
        let mut recent = 0;
        for seq in (0..count)
            .rev()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            let Some(bytes) = Self::get(self.economy, &payer_post_key(payer, seq))? else {
                return Err(corrupt("economy", format!("payer post {seq} missing")));
            };
            let time = i64::try_from(read_u64(&bytes, "economy")?).unwrap_or(i64::MAX);
            if time < since.unix() {
                break;
            }
            recent += 1;
        }
        Ok(recent)
    }

    fn add_recent_post(
        &self,
        payer: Uuid,
        time: Timestamp,
        _post_id: Uuid,
    ) -> Result<(), StoreError> {
        let count = self.payer_post_count(payer)?;
        let time = u64::try_from(time.unix()).unwrap_or(0).to_be_bytes();
        Self::insert(self.economy, &payer_post_key(payer, count), &time[..])?;
        Self::insert(
            self.economy,
            &payer_key(b'c', payer),
            &(count + 1).to_be_bytes()[..],
        )
    }

    fn voter(&self, post_id: Uuid, payer: Uuid) -> Result<Voter, StoreError> {
        match Self::get(self.economy, &voter_key(post_id, payer))? {
            None => Ok(Voter::default()),
            Some(bytes) => decode_voter(&bytes),
        }
    }

    fn put_voter(&self, post_id: Uuid, payer: Uuid, voter: &Voter) -> Result<(), StoreError> {
        Self::insert(
            self.economy,
            &voter_key(post_id, payer),
            encode_voter(voter),
        )
    }

    fn account_by_name(&self, name_key: &str) -> Result<Option<Uuid>, StoreError> {
        Self::get(self.names, name_key.as_bytes())?
            .map(|id| read_uuid(&id, "names"))
            .transpose()
    }

    fn put_name(&self, name_key: &str, account_id: Uuid) -> Result<(), StoreError> {
        Self::insert(self.names, name_key.as_bytes(), &uuid_key(account_id)[..])
    }

    fn mark_spent(
        &self,
        stamp: StampRef,
        sale: &Sale,
        spent: &SpentRecord,
    ) -> Result<(), StoreError> {
        let record = SpentPart::encode(spent)?;
        let mut value = Vec::with_capacity(SOLD_BYTES + record.len());
        value.extend_from_slice(&encode_sold(sale));
        value.extend_from_slice(&record);
        Self::insert(self.stamps, &stamp_key(stamp), value)
    }

    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError> {
        Self::get(self.posts, &uuid_key(post_id))?
            .map(|bytes| PostRecord::decode(&bytes))
            .transpose()
    }

    fn next_post_seq(&self) -> Result<u64, StoreError> {
        self.meta_u64("post_seq")
    }

    fn insert_post(&self, post: &Post) -> Result<(), StoreError> {
        Self::insert(
            self.post_order,
            &post.seq.to_be_bytes(),
            &uuid_key(post.post_id)[..],
        )?;
        self.set_meta_u64("post_seq", post.seq + 1);
        self.update_post(post)
    }

    fn update_post(&self, post: &Post) -> Result<(), StoreError> {
        Self::insert(
            self.posts,
            &uuid_key(post.post_id),
            PostRecord::encode(post)?,
        )
    }

    fn hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        Self::get(self.holds, &hold_key(hold_id))?
            .map(|bytes| HoldRecord::decode(&bytes))
            .transpose()
    }

    fn stamp_hold(&self, stamp_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        Self::get(self.holds, &stamp_hold_key(stamp_id))?
            .map(|bytes| read_uuid(&bytes, "holds"))
            .transpose()
    }

    fn insert_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        for stamp in &hold.stamps {
            Self::insert(
                self.holds,
                &stamp_hold_key(stamp.stamp_id),
                &uuid_key(hold.hold_id)[..],
            )?;
        }
        self.update_hold(hold)
    }

    fn update_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        Self::insert(
            self.holds,
            &hold_key(hold.hold_id),
            HoldRecord::encode(hold)?,
        )
    }
}

impl SledTx<'_> {
    /// How many purchases the account made (the next sequence number of its index).
    fn account_purchase_count(&self, account_id: Uuid) -> Result<u64, StoreError> {
        match Self::get(self.economy, &payer_key(b'n', account_id))? {
            Some(bytes) => read_u64(&bytes, "economy"),
            None => Ok(0),
        }
    }

    /// How many posts `payer` made (the next sequence number of its post times).
    fn payer_post_count(&self, payer: Uuid) -> Result<u64, StoreError> {
        match Self::get(self.economy, &payer_key(b'c', payer))? {
            Some(bytes) => read_u64(&bytes, "economy"),
            None => Ok(0),
        }
    }
}

/// `economy` keys of one payer: a tag, then the payer.
pub(super) fn payer_key(tag: u8, payer: Uuid) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = tag;
    key[1..].copy_from_slice(payer.as_bytes());
    key
}

/// `economy` key of a payer's `seq`-th post time.
fn payer_post_key(payer: Uuid, seq: u64) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[..17].copy_from_slice(&payer_key(b'p', payer));
    key[17..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// `economy` key of an account's `seq`-th purchase (its index for revokes): `b` + account +
/// sequence; the count is under `n` + account.
pub(super) fn account_purchase_key(account_id: Uuid, seq: u64) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[..17].copy_from_slice(&payer_key(b'b', account_id));
    key[17..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// `economy` key of one payer's votes on one post.
fn voter_key(post_id: Uuid, payer: Uuid) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = b'v';
    key[1..17].copy_from_slice(post_id.as_bytes());
    key[17..].copy_from_slice(payer.as_bytes());
    key
}

/// Key of a purchase in `purchase_keys`: account id + SHA-256 of its Idempotency-Key.
fn purchase_key(account_id: Uuid, key_sha256: &[u8; 32]) -> [u8; 48] {
    let mut key = [0u8; 48];
    key[..16].copy_from_slice(account_id.as_bytes());
    key[16..].copy_from_slice(key_sha256);
    key
}
