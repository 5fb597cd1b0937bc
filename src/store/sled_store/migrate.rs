//! Layout migrations, run on open: data directories written before the current layout (trees
//! `sold` and `spent` keyed by stamp id, `hashes` with one hash per key, `ledger` with one
//! entry per key) are moved into `stamp_ids` + `stamps`, `hash_chunks` and `ledger_bundles`,
//! and unspent stamps sold before prices were kept per stamp get their unit price.
//! Each migration is idempotent and safe to interrupt: a run cut short is run again on the
//! next open.

use std::fs::File;

use uuid::Uuid;

use super::layout::{
    bundle_entries, corrupt, decode_sold, fits_in_bundle, hash_chunk_key, push_entry, read_u64,
    stamp_key, storage, HASHES_PER_CHUNK, SOLD_BYTES_V1,
};
use super::sync_db;
use crate::domain::StampRef;
use crate::store::StoreError;
use crate::time::Timestamp;

/// Inserts per sled batch while a migration copies a tree.
const MIGRATION_BATCH: usize = 10_000;

/// What the layout migrations share: the database and its file, to check for an old tree,
/// make writes durable, and drop an old tree once its replacement is durable.
pub(super) struct Upgrade<'a> {
    pub(super) db: &'a sled::Db,
    pub(super) db_file: &'a File,
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

    fn remove(&mut self, key: impl Into<sled::IVec>) -> Result<(), StoreError> {
        self.batch.remove(key);
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
pub(super) fn migrate_id_keyed_stamps(
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
            if sale.len() != SOLD_BYTES_V1 {
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
pub(super) fn migrate_hash_per_key(
    upgrade: &Upgrade<'_>,
    chunks: &sled::Tree,
) -> Result<(), StoreError> {
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
pub(super) fn migrate_entry_per_key(
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

/// The fields of a `purchase` entry that [`migrate_stamp_prices`] needs.
#[derive(serde::Deserialize)]
struct PurchaseFields {
    kind: String,
    #[serde(default)]
    unit_price: u64,
    #[serde(default)]
    issued_at: String,
    #[serde(default)]
    stamp_ids: Vec<Uuid>,
}

/// Gives every unspent stamp sold before prices were kept per stamp its unit price, read from
/// its `purchase` entry: a post paid with it then knows its base postage, as the auditor does.
/// Spent stamps keep the old layout (their price is never needed again). Runs once (then
/// `stamp_prices` is set in `meta`); safe to interrupt, since a rewritten stamp is skipped on
/// the next run and the flag is set only after the rewrites are durable.
pub(super) fn migrate_stamp_prices(
    upgrade: &Upgrade<'_>,
    meta: &sled::Tree,
    bundles: &sled::Tree,
    stamps: &sled::Tree,
) -> Result<(), StoreError> {
    if meta.get("stamp_prices").map_err(storage)?.is_some() {
        return Ok(());
    }
    if !bundles.is_empty() {
        tracing::info!(
            "upgrading the data directory: giving unspent stamps their unit prices (once; \
             reads the whole ledger)"
        );
    }
    let mut rewritten = 0u64;
    for item in bundles.iter() {
        let (_, bundle) = item.map_err(storage)?;
        for entry in bundle_entries(&bundle)? {
            // Only purchases matter; other entries do not parse into these fields' kind.
            let Ok(purchase) = serde_json::from_slice::<PurchaseFields>(entry) else {
                continue;
            };
            if purchase.kind != "purchase" {
                continue;
            }
            let issued_at = Timestamp::parse_rfc3339(&purchase.issued_at)
                .ok_or_else(|| corrupt("ledger_bundles", "purchase issued_at"))?;
            for stamp_id in purchase.stamp_ids {
                let key = stamp_key(StampRef {
                    stamp_id,
                    issued_at,
                });
                let Some(value) = stamps.get(key).map_err(storage)? else {
                    continue;
                };
                if value.len() == SOLD_BYTES_V1 {
                    let mut priced = value.to_vec();
                    priced.extend_from_slice(&purchase.unit_price.to_be_bytes());
                    stamps.insert(key, priced).map_err(storage)?;
                    rewritten += 1;
                }
            }
        }
    }
    sync_db(upgrade.db, upgrade.db_file)?;
    meta.insert("stamp_prices", &1u64.to_be_bytes()[..])
        .map_err(storage)?;
    sync_db(upgrade.db, upgrade.db_file)?;
    if rewritten > 0 {
        tracing::info!(stamps = rewritten, "gave unspent stamps their unit prices");
    }
    Ok(())
}

/// A `purchase` entry's fields as the account index keeps them.
#[derive(serde::Deserialize)]
struct IndexedFields {
    index: u64,
    kind: String,
    #[serde(default)]
    account: Option<Uuid>,
    #[serde(default)]
    purchase_id: Option<Uuid>,
    #[serde(default)]
    count: u32,
    #[serde(default)]
    unit_price: u64,
    #[serde(default)]
    total: u64,
    #[serde(default)]
    kid: String,
    #[serde(default)]
    issued_at: String,
    #[serde(default)]
    expires_at: String,
    #[serde(default)]
    stamp_ids: Vec<Uuid>,
}

/// Builds each account's purchase index (`economy` keys `b` + account + sequence, the count
/// under `n` + account: what a debit's revoke reads) from the ledger's `purchase` entries, for
/// data directories written before it existed. Runs once (then `account_purchases` is set in
/// `meta`); a run cut short leaves the flag unset, and the next run first removes what it
/// wrote. `balance` (the balance after the purchase, which only answers replays) is not in an
/// entry and is 0 here.
pub(super) fn migrate_account_purchases(
    upgrade: &Upgrade<'_>,
    meta: &sled::Tree,
    bundles: &sled::Tree,
    economy: &sled::Tree,
) -> Result<(), StoreError> {
    if meta.get("account_purchases").map_err(storage)?.is_some() {
        return Ok(());
    }
    let mut writer = BatchWriter::new(economy);
    for tag in [b'b', b'n'] {
        for item in economy.scan_prefix([tag]) {
            let (key, _) = item.map_err(storage)?;
            writer.remove(key)?;
        }
    }
    writer.flush()?;
    if !bundles.is_empty() {
        tracing::info!(
            "upgrading the data directory: indexing each account's purchases (once; reads \
             the whole ledger)"
        );
    }
    let mut counts: std::collections::HashMap<Uuid, u64> = std::collections::HashMap::new();
    let mut writer = BatchWriter::new(economy);
    for item in bundles.iter() {
        let (_, bundle) = item.map_err(storage)?;
        for entry in bundle_entries(&bundle)? {
            let Ok(fields) = serde_json::from_slice::<IndexedFields>(entry) else {
                continue;
            };
            if fields.kind != "purchase" {
                continue;
            }
            let bad = || corrupt("ledger_bundles", format!("purchase entry {}", fields.index));
            let account_id = fields.account.ok_or_else(bad)?;
            let record = crate::domain::PurchaseRecord {
                purchase_id: fields.purchase_id.ok_or_else(bad)?,
                account_id,
                count: fields.count,
                unit_price: fields.unit_price,
                total: fields.total,
                balance: 0,
                ledger_index: fields.index,
                kid: hex::decode(&fields.kid)
                    .ok()
                    .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                    .map(crate::stamp::Kid)
                    .ok_or_else(bad)?,
                issued_at: Timestamp::parse_rfc3339(&fields.issued_at).ok_or_else(bad)?,
                expires_at: Timestamp::parse_rfc3339(&fields.expires_at).ok_or_else(bad)?,
                stamp_ids: fields.stamp_ids,
            };
            let seq = counts.entry(account_id).or_insert(0);
            let key = super::tx::account_purchase_key(account_id, *seq);
            writer.insert(&key, super::records::PurchaseKeyRecord::encode(&record)?)?;
            *seq += 1;
        }
    }
    for (account_id, count) in &counts {
        let key = super::tx::payer_key(b'n', *account_id);
        writer.insert(&key, &count.to_be_bytes()[..])?;
    }
    writer.flush()?;
    sync_db(upgrade.db, upgrade.db_file)?;
    meta.insert("account_purchases", &1u64.to_be_bytes()[..])
        .map_err(storage)?;
    sync_db(upgrade.db, upgrade.db_file)?;
    if !counts.is_empty() {
        tracing::info!(accounts = counts.len(), "indexed the accounts' purchases");
    }
    Ok(())
}
