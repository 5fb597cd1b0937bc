//! Keys and values of the sled trees: how integers, stamps, hash chunks and ledger bundles are
//! laid out in bytes (the table is in the parent module's comment).

use uuid::Uuid;

use crate::domain::{Sale, StampRef, Voter};
use crate::ledger::entry::ENTRY_BYTES_WRITTEN_MAX;
use crate::stamp::Kid;
use crate::store::StoreError;
use crate::time::Timestamp;

pub(super) fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

pub(super) fn corrupt(tree: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        detail: detail.to_string(),
    }
}

pub(super) fn uuid_key(id: Uuid) -> [u8; 16] {
    *id.as_bytes()
}

pub(super) fn read_u64(bytes: &[u8], tree: &'static str) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| corrupt(tree, "u64 length"))?;
    Ok(u64::from_be_bytes(arr))
}

pub(super) fn read_uuid(bytes: &[u8], tree: &'static str) -> Result<Uuid, StoreError> {
    let arr: [u8; 16] = bytes.try_into().map_err(|_| corrupt(tree, "id length"))?;
    Ok(Uuid::from_bytes(arr))
}

pub(super) fn decode_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    tree: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(tree, e))
}

// ------------------------------------------------------------------ Merkle hash chunks

/// Merkle hashes per `hash_chunks` value.
pub(super) const HASHES_PER_CHUNK: u64 = 16;

/// Key of the `hash_chunks` value holding stored hash `index`.
pub(super) fn hash_chunk_key(index: u64) -> [u8; 8] {
    (index / HASHES_PER_CHUNK).to_be_bytes()
}

/// Byte offset of stored hash `index` in its chunk.
pub(super) fn hash_chunk_offset(index: u64) -> usize {
    // At most 15 * 32: always fits.
    (index % HASHES_PER_CHUNK) as usize * 32
}

/// Hash `index` out of its chunk, when the chunk holds it.
pub(super) fn hash_in_chunk(chunk: &[u8], index: u64) -> Option<[u8; 32]> {
    let at = hash_chunk_offset(index);
    chunk.get(at..at + 32)?.try_into().ok()
}

// ------------------------------------------------------------------ ledger bundles

/// Most ledger entries per `ledger_bundles` value.
pub(super) const BUNDLE_ENTRIES_MAX: u64 = 8;
/// Most bytes per `ledger_bundles` value: one entry of the largest size fits alone.
pub(super) const BUNDLE_BYTES_MAX: usize = ENTRY_BYTES_WRITTEN_MAX + 4;

/// Whether an entry of `entry_len` bytes still fits in a bundle of `count` entries and
/// `bundle_len` bytes.
pub(super) fn fits_in_bundle(count: u64, bundle_len: usize, entry_len: usize) -> bool {
    count < BUNDLE_ENTRIES_MAX && bundle_len + 4 + entry_len <= BUNDLE_BYTES_MAX
}

/// Appends one length-prefixed entry to a bundle.
pub(super) fn push_entry(bundle: &mut Vec<u8>, entry: &[u8]) {
    // Entries are at most ENTRY_BYTES_WRITTEN_MAX (64 KiB): the length always fits in 4 bytes.
    bundle.extend_from_slice(&(entry.len() as u32).to_be_bytes());
    bundle.extend_from_slice(entry);
}

/// The entries of a bundle, in order.
pub(super) fn bundle_entries(bundle: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
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

// ------------------------------------------------------------------ economy

/// An `economy` voter value: the votes (u64, big-endian), then 1 if the payer voted up.
pub(super) fn encode_voter(voter: &Voter) -> Vec<u8> {
    let mut value = voter.votes.to_be_bytes().to_vec();
    value.push(u8::from(voter.up_voted));
    value
}

pub(super) fn decode_voter(bytes: &[u8]) -> Result<Voter, StoreError> {
    match bytes {
        [votes @ .., up] if votes.len() == 8 => Ok(Voter {
            votes: read_u64(votes, "economy")?,
            up_voted: *up == 1,
        }),
        _ => Err(corrupt("economy", "voter record length")),
    }
}

// ------------------------------------------------------------------ keys

/// The `meta` key of the kids whose last published status is active: their 8 bytes each, one
/// after another. Derived from the `key:{kid}` records, which [`super::SledStore`] rebuilds it
/// from on every open, so a data directory written before it was kept gets it too.
pub(super) const ACTIVE_KEYS: &[u8] = b"active_keys";

pub(super) fn encode_kids(kids: &[Kid]) -> Vec<u8> {
    kids.iter().flat_map(|kid| kid.0).collect()
}

pub(super) fn decode_kids(bytes: &[u8]) -> Result<Vec<Kid>, StoreError> {
    if bytes.len() % 8 != 0 {
        return Err(corrupt("meta", "active_keys is not a list of 8-byte kids"));
    }
    Ok(bytes
        .chunks_exact(8)
        .filter_map(|kid| kid.try_into().ok().map(Kid))
        .collect())
}

// ------------------------------------------------------------------ stamps

/// Length of the sale part of a `stamps` value written before prices were kept per stamp:
/// buyer (16), kid (8), issued_at (8), expires_at (8).
pub(super) const SOLD_BYTES_V1: usize = 40;
/// Length of the sale part now: the above and the unit price (8).
pub(super) const SOLD_BYTES: usize = 48;

pub(super) fn encode_sold(sale: &Sale) -> Vec<u8> {
    let mut out = Vec::with_capacity(SOLD_BYTES);
    out.extend_from_slice(sale.buyer.as_bytes());
    out.extend_from_slice(&sale.kid.0);
    out.extend_from_slice(&sale.issued_at.unix().to_be_bytes());
    out.extend_from_slice(&sale.expires_at.unix().to_be_bytes());
    // A stamp of the old layout (price unknown) keeps the old layout.
    if let Some(price) = sale.unit_price {
        out.extend_from_slice(&price.to_be_bytes());
    }
    out
}

/// Length of the sale part of a stored value. A spend record is JSON and starts with `{`;
/// a unit price starts with byte 0 (prices are far below 2^56, see `config::Economy`), so
/// the two layouts cannot be confused.
pub(super) fn sold_len(bytes: &[u8]) -> usize {
    match bytes.get(SOLD_BYTES_V1) {
        None | Some(b'{') => SOLD_BYTES_V1,
        Some(_) => SOLD_BYTES,
    }
}

/// The sale part of a `stamps` value.
pub(super) fn decode_sold(bytes: &[u8]) -> Result<Sale, StoreError> {
    let len = sold_len(bytes);
    let sold = bytes
        .get(..len)
        .ok_or_else(|| corrupt("stamps", "record length"))?;
    let part = |range: std::ops::Range<usize>| -> [u8; 8] {
        let mut out = [0u8; 8];
        out.copy_from_slice(&sold[range]);
        out
    };
    let mut buyer = [0u8; 16];
    buyer.copy_from_slice(&sold[..16]);
    Ok(Sale {
        buyer: Uuid::from_bytes(buyer),
        kid: Kid(part(16..24)),
        issued_at: Timestamp::from_unix(i64::from_be_bytes(part(24..32))),
        expires_at: Timestamp::from_unix(i64::from_be_bytes(part(32..40))),
        unit_price: (len == SOLD_BYTES).then(|| u64::from_be_bytes(part(40..48))),
    })
}

/// Key of a stamp in `stamps`: issue time first, so that keys sort by time.
pub(super) fn stamp_key(stamp: StampRef) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&stamp.issued_at.unix().to_be_bytes());
    out[8..].copy_from_slice(stamp.stamp_id.as_bytes());
    out
}

// ------------------------------------------------------------------ holds

/// A `holds` key of a hold: `h` + hold id.
pub(super) fn hold_key(hold_id: Uuid) -> [u8; 17] {
    tagged_key(b'h', hold_id)
}

/// A `holds` key of a stamp's last hold: `s` + stamp id.
pub(super) fn stamp_hold_key(stamp_id: Uuid) -> [u8; 17] {
    tagged_key(b's', stamp_id)
}

fn tagged_key(tag: u8, id: Uuid) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = tag;
    key[1..].copy_from_slice(id.as_bytes());
    key
}
