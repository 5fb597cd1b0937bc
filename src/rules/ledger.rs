//! Appending to the ledger: the entry's bytes and its Merkle hashes, computed here once for
//! every backend. A backend stores what it is given and never hashes.

use std::cell::RefCell;

use crate::ledger::entry::{self, Body, ENTRY_BYTES_WRITTEN_MAX};
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

/// Appends an entry of `body` at `time`: serializes it once (those bytes are stored, hashed
/// and served), computes the stored hashes it adds from the tree's right edge, and hands both
/// to the backend. Returns the entry's index.
pub fn append<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    body: &Body,
) -> Result<u64, StoreError> {
    let index = tx.ledger_size()?;
    let bytes = entry::encode(index, &time.to_rfc3339(), body)
        .map_err(|e| StoreError::Storage(e.to_string()))?;
    if bytes.len() > ENTRY_BYTES_WRITTEN_MAX {
        // Commands are bounded well below this (a purchase of the most stamps allowed is
        // about 40 KiB), so this is a programming error, not a refusal.
        return Err(StoreError::Storage(format!(
            "ledger entry of {} bytes exceeds {ENTRY_BYTES_WRITTEN_MAX}",
            bytes.len()
        )));
    }
    let reader = TxHashes {
        tx,
        failure: RefCell::new(None),
    };
    let hashes = match tlog_tiles::stored_hashes(index, &bytes, &reader) {
        Ok(hashes) => hashes,
        Err(e) => {
            return Err(reader.failure.into_inner().unwrap_or(StoreError::Corrupt {
                tree: "hashes",
                detail: e.to_string(),
            }))
        }
    };
    let hashes: Vec<[u8; 32]> = hashes.into_iter().map(|h| h.0).collect();
    tx.append(index, time, &bytes, &hashes)?;
    Ok(index)
}

/// A `tlog_tiles::HashReader` over the transaction, so the hashes of an entry are computed
/// from hashes appended earlier in the same batch too. Keeps the backend's own error, which
/// the hash library's error type cannot carry (a conflict must stay a conflict).
struct TxHashes<'a, T: ?Sized> {
    tx: &'a T,
    failure: RefCell<Option<StoreError>>,
}

impl<T: StoreTx + ?Sized> tlog_tiles::HashReader for TxHashes<'_, T> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        match self.tx.read_hashes(indexes) {
            Ok(hashes) => Ok(hashes.into_iter().map(tlog_tiles::Hash).collect()),
            Err(e) => {
                *self.failure.borrow_mut() = Some(e);
                Err(tlog_tiles::Error::IndexesNotInTree)
            }
        }
    }
}
