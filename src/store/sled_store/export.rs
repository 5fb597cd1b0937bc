//! Reading a whole sled store out, record by record, for `pennypost migrate` (sled to
//! PostgreSQL). Decodes every tree into the domain's types ([`Exported`]); the receiving
//! backend writes them in its own layout. Derived indexes (the payments' `payment_index`, the
//! counts in `economy`) are not handed out: the receiver keeps its own.

use super::layout::{
    bundle_entries, corrupt, decode_sold, decode_voter, read_u64, read_uuid, storage,
    HASHES_PER_CHUNK,
};
use super::records::{
    decode_spent, AccountRecord, CreditKeyRecord, HoldRecord, PolicyRecord, PostRecord,
    PurchaseKeyRecord,
};
use super::SledStore;
use crate::domain::SoldStamp;
use crate::store::{Exported, Reads, StoreError};
use crate::time::Timestamp;

impl SledStore {
    /// Hands every record of the store to `sink`, tree by tree: the head (sizes and policy)
    /// first, then keys, accounts and what refers to them, stamps, posts, the economy's
    /// records, the ledger's entries and hashes, the newest checkpoint, then what the store
    /// keeps beside the ledger ([`SledStore::export_holds_and_payments`]). Reads a consistent
    /// store only when nothing writes it meanwhile (`pennypost migrate` opens it alone).
    pub fn export(
        &self,
        sink: &mut dyn FnMut(Exported) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let ledger_size = self.ledger_size()?;
        sink(Exported::Head {
            ledger_size,
            last_time: Timestamp::from_unix(
                i64::try_from(self.meta_u64("last_time")?).unwrap_or(i64::MAX),
            ),
            post_seq: self.meta_u64("post_seq")?,
            policy: self
                .meta
                .get("policy")
                .map_err(storage)?
                .map(|bytes| PolicyRecord::decode(&bytes))
                .transpose()?,
        })?;
        for key in self.published_keys()? {
            sink(Exported::Key(key))?;
        }
        for item in self.accounts.iter() {
            let (_, value) = item.map_err(storage)?;
            sink(Exported::Account(AccountRecord::decode(&value)?))?;
        }
        for item in self.api_keys.iter() {
            let (key, value) = item.map_err(storage)?;
            let hash: [u8; 32] = key[..]
                .try_into()
                .map_err(|_| corrupt("api_keys", "key length"))?;
            sink(Exported::ApiKey(hash, read_uuid(&value, "api_keys")?))?;
        }
        for item in self.names.iter() {
            let (key, value) = item.map_err(storage)?;
            let name = String::from_utf8(key.to_vec()).map_err(|e| corrupt("names", e))?;
            sink(Exported::Name(name, read_uuid(&value, "names")?))?;
        }
        for item in self.credits.iter() {
            let (key, value) = item.map_err(storage)?;
            let hash: [u8; 32] = key[..]
                .try_into()
                .map_err(|_| corrupt("credits", "key length"))?;
            sink(Exported::Credit(hash, CreditKeyRecord::decode(&value)?))?;
        }
        for item in self.purchase_keys.iter() {
            let (key, value) = item.map_err(storage)?;
            let hash: [u8; 32] = key
                .get(16..)
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| corrupt("purchase_keys", "key length"))?;
            sink(Exported::Purchase(hash, PurchaseKeyRecord::decode(&value)?))?;
        }
        for item in self.stamps.iter() {
            let (key, value) = item.map_err(storage)?;
            let id = read_uuid(
                key.get(8..)
                    .ok_or_else(|| corrupt("stamps", "key length"))?,
                "stamps",
            )?;
            sink(Exported::Stamp(
                id,
                SoldStamp {
                    sale: decode_sold(&value)?,
                    spent: decode_spent(&value)?,
                },
            ))?;
        }
        for item in self.posts.iter() {
            let (_, value) = item.map_err(storage)?;
            sink(Exported::Post(PostRecord::decode(&value)?))?;
        }
        for item in self.economy.iter() {
            let (key, value) = item.map_err(storage)?;
            match (key.first(), key.len()) {
                // A payer's post count, an account's purchase count: implied by the records.
                (Some(b'c' | b'n'), 17) => {}
                (Some(b'b'), 25) => sink(Exported::AccountPurchase(PurchaseKeyRecord::decode(
                    &value,
                )?))?,
                (Some(b'p'), 25) => sink(Exported::PayerPost {
                    payer: read_uuid(&key[1..17], "economy")?,
                    time: Timestamp::from_unix(
                        i64::try_from(read_u64(&value, "economy")?).unwrap_or(i64::MAX),
                    ),
                })?,
                (Some(b'v'), 33) => sink(Exported::Voter {
                    post_id: read_uuid(&key[1..17], "economy")?,
                    payer: read_uuid(&key[17..33], "economy")?,
                    voter: decode_voter(&value)?,
                })?,
                _ => return Err(corrupt("economy", "unknown key")),
            }
        }
        let mut index = 0;
        for item in self.ledger.iter() {
            let (key, bundle) = item.map_err(storage)?;
            let start = read_u64(&key, "ledger_bundles")?;
            if start != index {
                return Err(corrupt(
                    "ledger_bundles",
                    format!("bundle at {start}, expected {index}"),
                ));
            }
            for entry in bundle_entries(&bundle)? {
                if index < ledger_size {
                    sink(Exported::Entry(index, entry.to_vec()))?;
                }
                index += 1;
            }
        }
        if index < ledger_size {
            return Err(corrupt(
                "ledger_bundles",
                format!("{index} entries of {ledger_size}"),
            ));
        }
        let hashes_wanted = tlog_tiles::stored_hash_index(0, ledger_size);
        let mut hashes = 0;
        for item in self.hashes.iter() {
            let (key, chunk) = item.map_err(storage)?;
            let first = read_u64(&key, "hash_chunks")? * HASHES_PER_CHUNK;
            for (at, hash) in (first..).zip(chunk.chunks_exact(32)) {
                if at < hashes_wanted {
                    let hash: [u8; 32] = hash
                        .try_into()
                        .map_err(|_| corrupt("hash_chunks", "hash length"))?;
                    sink(Exported::Hash(at, hash))?;
                    hashes += 1;
                }
            }
        }
        if hashes != hashes_wanted {
            return Err(corrupt(
                "hash_chunks",
                format!("{hashes} hashes of {hashes_wanted}"),
            ));
        }
        if let Some((size, note)) = self.checkpoint()? {
            sink(Exported::Checkpoint(size, note))?;
        }
        self.export_holds_and_payments(sink)
    }

    /// Hands out what the store keeps beside the ledger's state, each as stored: every hold
    /// (whatever its state) in hold id order, then each stamp's last hold in stamp id order,
    /// then every payment record in payment id order (ids in byte order). `pennypost migrate`
    /// reads them again to check the copy.
    pub fn export_holds_and_payments(
        &self,
        sink: &mut dyn FnMut(Exported) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for item in self.holds.iter() {
            let (key, value) = item.map_err(storage)?;
            match (key.first(), key.len()) {
                (Some(b'h'), 17) => {
                    let hold = HoldRecord::decode(&value)?;
                    if hold.hold_id.as_bytes()[..] != key[1..] {
                        return Err(corrupt("holds", "a hold stored under another id"));
                    }
                    sink(Exported::Hold(hold))?;
                }
                (Some(b's'), 17) => sink(Exported::StampHold(
                    read_uuid(&key[1..], "holds")?,
                    read_uuid(&value, "holds")?,
                ))?,
                _ => return Err(corrupt("holds", "unknown key")),
            }
        }
        self.export_payments(sink)
    }
}
