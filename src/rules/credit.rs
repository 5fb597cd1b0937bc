//! Credit: money received for an account, recorded once per reference.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ledger, Amount, Conflict, InvalidCommand, Missing, Settings};
use super::{Applied, Outcome, Refusal};
use crate::domain::{CreditRecord, CreditSource, MoneyKind};
use crate::ledger::entry::Body;
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

/// Credits `amount` to an account, paying off its debt first. The reference is unique among
/// credits and debits together: the same reference with the same account and amount, as a
/// credit, answers as the first credit did and credits nothing; with another account or
/// amount, or a debit's reference, it is an idempotency conflict.
pub fn credit<T: StoreTx + ?Sized>(
    tx: &T,
    settings: &Settings,
    time: Timestamp,
    account_id: Uuid,
    amount: u64,
    reference: &str,
    source: CreditSource,
) -> Result<Applied, StoreError> {
    if amount == 0 {
        return Ok(Err(Refusal::Invalid(InvalidCommand::CreditNotPositive)));
    }
    let (reference_sha256, first) = match recorded(tx, reference, source)? {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Some(first) = first {
        if first.account_id == account_id
            && first.amount == amount
            && first.kind == MoneyKind::Credit
        {
            return Ok(Ok(Outcome::Credited {
                balance: first.balance,
                ledger_index: first.ledger_index,
                replayed: true,
            }));
        }
        return Ok(Err(Refusal::IdempotencyConflict(Conflict::CreditReference)));
    }
    let Some(mut account) = tx.account(account_id)? else {
        return Ok(Err(Refusal::NotFound(Missing::Account)));
    };
    if account.add_money(amount).is_none() {
        return Ok(Err(Refusal::Overflow(Amount::Balance)));
    }
    let balance = account.signed_balance();
    let index = ledger::append(
        tx,
        time,
        &Body::Credit {
            account: account_id,
            amount,
            currency: settings.currency.clone(),
            reference_sha256: hex::encode(reference_sha256),
            source,
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
            kind: MoneyKind::Credit,
        },
    )?;
    Ok(Ok(Outcome::Credited {
        balance,
        ledger_index: index,
        replayed: false,
    }))
}

/// What a credit and a debit both start with: the reference checked against its source
/// ([`reference_of`]), its SHA-256, and the credit or debit already recorded under it.
#[allow(clippy::type_complexity)]
pub(super) fn recorded<T: StoreTx + ?Sized>(
    tx: &T,
    reference: &str,
    source: CreditSource,
) -> Result<Result<([u8; 32], Option<CreditRecord>), Refusal>, StoreError> {
    if let Err(refusal) = reference_of(reference, source) {
        return Ok(Err(refusal));
    }
    let reference_sha256: [u8; 32] = Sha256::digest(reference.as_bytes()).into();
    let first = tx.credit(&reference_sha256)?;
    Ok(Ok((reference_sha256, first)))
}

/// Refuses a reference that is not `source`'s: the operator's may not begin with a provider's
/// prefix (400 `bad_request`), a provider's must begin with its own.
pub(super) fn reference_of(reference: &str, source: CreditSource) -> Result<(), Refusal> {
    let owner = CreditSource::of_reference(reference);
    if owner == source {
        return Ok(());
    }
    match (source, owner.prefix()) {
        (CreditSource::Operator, Some(prefix)) => Err(Refusal::ReservedReference { prefix }),
        _ => Err(Refusal::Invalid(InvalidCommand::ProviderReference)),
    }
}
