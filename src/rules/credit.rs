//! Credit: money received for an account, recorded once per reference.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ledger, Settings};
use crate::ledger::entry::Body;
use crate::store::{Applied, CreditRecord, Outcome, Refusal, StoreError, StoreTx};
use crate::time::Timestamp;

/// Credits `amount` to an account. The reference is unique across the whole ledger: the same
/// reference with the same account and amount answers as the first credit did and credits
/// nothing; with another account or amount it is an idempotency conflict.
pub fn credit<T: StoreTx + ?Sized>(
    tx: &T,
    settings: &Settings,
    time: Timestamp,
    account_id: Uuid,
    amount: u64,
    reference: &str,
) -> Result<Applied, StoreError> {
    if amount == 0 {
        return Ok(Err(Refusal::Invalid("a credit must be positive")));
    }
    let reference_sha256: [u8; 32] = Sha256::digest(reference.as_bytes()).into();
    if let Some(first) = tx.credit(&reference_sha256)? {
        if first.account_id == account_id && first.amount == amount {
            return Ok(Ok(Outcome::Credited {
                balance: first.balance,
                ledger_index: first.ledger_index,
                replayed: true,
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
    let index = ledger::append(
        tx,
        time,
        &Body::Credit {
            account: account_id,
            amount,
            currency: settings.currency.clone(),
            reference_sha256: hex::encode(reference_sha256),
        },
    )?;
    tx.put_account(&account)?;
    tx.put_credit(
        &reference_sha256,
        &CreditRecord {
            account_id,
            amount,
            balance,
            ledger_index: index,
        },
    )?;
    Ok(Ok(Outcome::Credited {
        balance,
        ledger_index: index,
        replayed: false,
    }))
}
