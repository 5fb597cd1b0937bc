//! Purchase: selling stamps for an account's balance, once per Idempotency-Key.

use super::{distinct_and_present, ledger};
use super::{Amount, Applied, Command, Conflict, InvalidCommand, Missing, Outcome, Refusal};
use crate::domain::{PurchaseRecord, Sale};
use crate::keys::KeyStatus;
use crate::ledger::entry::Body;
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

/// Sells the stamps of a [`Command::Purchase`]. With an idempotency key seen before, answers
/// the first purchase again (same count) or refuses (another count) and charges nothing.
pub fn purchase<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    command: &Command,
) -> Result<Applied, StoreError> {
    let Command::Purchase {
        account_id,
        unit_price,
        idempotency_key_sha256,
        purchase_id,
        kid,
        issued_at,
        expires_at,
        stamp_ids,
    } = command
    else {
        return Err(StoreError::Storage(
            "purchase::purchase was given another command".into(),
        ));
    };
    let Ok(count) = u32::try_from(stamp_ids.len()) else {
        return Ok(Err(Refusal::Invalid(InvalidCommand::TooManyInPurchase)));
    };
    if let Some(key) = idempotency_key_sha256 {
        if let Some(first) = tx.purchase(*account_id, key)? {
            if first.count == count {
                return Ok(Ok(Outcome::Purchased {
                    record: first,
                    replayed: true,
                }));
            }
            return Ok(Err(Refusal::IdempotencyConflict(Conflict::IdempotencyKey)));
        }
    }
    if let Some(refusal) = distinct_and_present(stamp_ids) {
        return Ok(Err(refusal));
    }
    if expires_at <= issued_at {
        return Ok(Err(Refusal::Invalid(InvalidCommand::ExpiresBeforeIssued)));
    }
    if tx.published_key(*kid)?.map(|k| k.status) != Some(KeyStatus::Active) {
        return Ok(Err(Refusal::KeyNotActive(*kid)));
    }
    let Some(mut account) = tx.account(*account_id)? else {
        return Ok(Err(Refusal::NotFound(Missing::Account)));
    };
    let Some(total) = unit_price.checked_mul(u64::from(count)) else {
        return Ok(Err(Refusal::Overflow(Amount::PurchaseTotal)));
    };
    // In debt (a debit took back more than the balance), nothing is sold until credits
    // cover it, even at a price of zero.
    if account.debt > 0 || account.balance < total {
        return Ok(Err(Refusal::InsufficientFunds {
            balance: account.signed_balance(),
            total,
        }));
    }
    for id in stamp_ids {
        if tx.stamp_exists(*id)? {
            return Ok(Err(Refusal::DuplicateStamp(*id)));
        }
    }
    let Some(purchased) = account.stamps_purchased.checked_add(u64::from(count)) else {
        return Ok(Err(Refusal::Overflow(Amount::StampsPurchased)));
    };
    account.balance -= total;
    account.stamps_purchased = purchased;
    let ledger_index = ledger::append(
        tx,
        time,
        &Body::Purchase {
            account: *account_id,
            purchase_id: *purchase_id,
            count,
            unit_price: *unit_price,
            total,
            kid: kid.to_hex(),
            issued_at: issued_at.to_rfc3339(),
            expires_at: expires_at.to_rfc3339(),
            stamp_ids: stamp_ids.clone(),
        },
    )?;
    tx.put_account(&account)?;
    tx.insert_sold(
        stamp_ids,
        &Sale {
            buyer: *account_id,
            kid: *kid,
            issued_at: *issued_at,
            expires_at: *expires_at,
            unit_price: Some(*unit_price),
        },
    )?;
    let record = PurchaseRecord {
        purchase_id: *purchase_id,
        account_id: *account_id,
        count,
        unit_price: *unit_price,
        total,
        balance: account.balance,
        ledger_index,
        kid: *kid,
        issued_at: *issued_at,
        expires_at: *expires_at,
        stamp_ids: stamp_ids.clone(),
    };
    if let Some(key) = idempotency_key_sha256 {
        tx.put_purchase(key, &record)?;
    }
    // What a revoke reads: the account's purchases, newest first (`rules::debit`).
    tx.add_account_purchase(&record)?;
    Ok(Ok(Outcome::Purchased {
        record,
        replayed: false,
    }))
}
