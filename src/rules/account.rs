//! Accounts and key events: creating an account, publishing an issuer key's status.

use unicode_normalization::UnicodeNormalization as _;
use uuid::Uuid;

use super::command::{Conflict, InvalidCommand};
use super::ledger;
use super::{Applied, Outcome, Refusal};
use crate::domain::Account;
use crate::keys::{parse_public_key, KeyStatus, PublishedKey};
use crate::ledger::entry::Body;
use crate::stamp::Kid;
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

/// Publishes a key's status in the ledger (`key` entry) and records it, keeping the time the
/// key was first published.
pub fn publish_key<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    kid: Kid,
    public_key: &str,
    status: KeyStatus,
) -> Result<Applied, StoreError> {
    // The key invariants the auditor checks, refused here rather than written. (A kid is a
    // hash of its public key, so a published kid cannot come back with another key.)
    if parse_public_key(public_key).map(|key| Kid::of(&key)) != Some(kid) {
        return Ok(Err(Refusal::Invalid(InvalidCommand::KidNotOfKey)));
    }
    if status == KeyStatus::Active {
        if let Some(other) = tx.active_keys()?.into_iter().find(|k| *k != kid) {
            return Ok(Err(Refusal::AnotherKeyActive(other)));
        }
    }
    let published_at = tx.published_key(kid)?.map_or(time, |k| k.published_at);
    let index = ledger::append(
        tx,
        time,
        &Body::Key {
            kid: kid.to_hex(),
            public_key: public_key.to_string(),
            status: status.as_str(),
        },
    )?;
    tx.put_published_key(&PublishedKey {
        kid,
        public_key: Some(public_key.to_string()),
        status,
        published_at,
    })?;
    Ok(Ok(Outcome::KeyPublished {
        ledger_index: index,
    }))
}

/// Creates an account with a balance of 0. Writes no ledger entry: an account moves no money
/// until it is credited.
pub fn create<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    account_id: Uuid,
    name: Option<String>,
    api_key_sha256: &[u8; 32],
) -> Result<Applied, StoreError> {
    if tx.account(account_id)?.is_some() || tx.api_key_exists(api_key_sha256)? {
        // Random 128-bit and 256-bit values collided: refuse rather than overwrite.
        return Ok(Err(Refusal::IdempotencyConflict(Conflict::AccountCollided)));
    }
    let name_key = name.as_deref().map(name_key);
    if let Some(key) = &name_key {
        if tx.account_by_name(key)?.is_some() {
            return Ok(Err(Refusal::NameTaken));
        }
    }
    tx.put_account(&Account {
        account_id,
        name,
        balance: 0,
        debt: 0,
        stamps_purchased: 0,
        stamps_spent: 0,
        created_at: time,
        refunds_total: 0,
    })?;
    tx.put_api_key(api_key_sha256, account_id)?;
    if let Some(key) = &name_key {
        tx.put_name(key, account_id)?;
    }
    Ok(Ok(Outcome::AccountCreated))
}

/// The form under which names are unique: Unicode NFC, then lower case (and NFC again, since
/// lower-casing can denormalise), so "Alice", "alice" and a decomposed "alice" are one name.
pub fn name_key(name: &str) -> String {
    name.nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_case_insensitively_after_nfc() {
        assert_eq!(name_key("Alice"), name_key("aLICE"));
        // U+00E9 and e + U+0301 are one name.
        assert_eq!(name_key("Ren\u{e9}"), name_key("rene\u{301}"));
        assert_ne!(name_key("alice"), name_key("alicia"));
    }
}
