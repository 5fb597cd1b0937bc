//! Debit: money going back out of an account (a provider's refund or dispute, an operator's
//! correction), recorded once per reference, and the revoke it owes when it leaves the
//! account below zero.
//!
//! The revoke takes back, in the same transaction and right after the debit's entry, the
//! account's stamps that are unspent and unexpired at the entry's time (held ones too: their
//! hold can no longer be captured), the latest purchase first and within a purchase from the
//! last of its stamp ids back, until the balance is at least zero or none is left. It is one
//! `spend` entry (action `revoke`, target the debit's `reference_sha256`, `amount` the revoked
//! stamps' unit prices); what it does not cover stays a debt. The auditor recomputes the same
//! list from the entries (invariant 12 of docs/ledger.md).
//!
//! Bounded: the revoke names at most [`REVOKE_STAMPS_MAX`] stamps (its entry then fits
//! `ENTRY_BYTES_WRITTEN_MAX`; the auditor wants one revoke, never two) and looks through at most
//! [`REVOKE_PURCHASES_MAX`] unexpired purchases. A debit that would need more is refused
//! ([`Refusal::RevokeTooLarge`]) and changes nothing: the same money debited in smaller parts
//! goes through, each part revoking what it needs.

use uuid::Uuid;

use super::credit::recorded;
use super::{ledger, Amount, Conflict, InvalidCommand, Missing, Settings};
use super::{Applied, Outcome, Refusal};
use crate::domain::{
    CreditRecord, CreditSource, DebitReason, MoneyKind, Revoked, Sale, SpentRecord, StampRef,
};
use crate::ledger::entry::{Body, SpendAction};
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

/// Most stamps one revoke names: its entry (about 39 bytes a stamp) stays within
/// `ENTRY_BYTES_WRITTEN_MAX` with every other field at its largest (`ledger::entry` tests it).
pub const REVOKE_STAMPS_MAX: usize = 1600;

/// Most unexpired purchases of one account a revoke looks through, newest first.
pub const REVOKE_PURCHASES_MAX: u64 = 1000;

/// Debits `amount` from an account under `reference`, once: the same reference with the same
/// account and amount, as a debit, answers the first debit again; with another account,
/// amount, or as a credit, it is an idempotency conflict.
#[allow(clippy::too_many_arguments)]
pub fn debit<T: StoreTx + ?Sized>(
    tx: &T,
    settings: &Settings,
    time: Timestamp,
    account_id: Uuid,
    amount: u64,
    reference: &str,
    source: CreditSource,
    reason: DebitReason,
) -> Result<Applied, StoreError> {
    if amount == 0 {
        return Ok(Err(Refusal::Invalid(InvalidCommand::DebitNotPositive)));
    }
    let (reference_sha256, first) = match recorded(tx, reference, source)? {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Some(first) = first {
        return Ok(match first.kind {
            MoneyKind::Debit { revoked }
                if first.account_id == account_id && first.amount == amount =>
            {
                Ok(Outcome::Debited {
                    balance: first.balance,
                    ledger_index: first.ledger_index,
                    replayed: true,
                    revoked,
                })
            }
            _ => Err(Refusal::IdempotencyConflict(Conflict::CreditReference)),
        });
    }
    let Some(mut account) = tx.account(account_id)? else {
        return Ok(Err(Refusal::NotFound(Missing::Account)));
    };
    if account.take_money(amount).is_none() {
        return Ok(Err(Refusal::Overflow(Amount::Balance)));
    }
    let taken = match revocable(tx, account_id, account.debt, time)? {
        Ok(taken) => taken,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if account.clone().add_money(taken.amount).is_none() {
        return Ok(Err(Refusal::Overflow(Amount::Balance)));
    }
    let target = hex::encode(reference_sha256);
    let ledger_index = ledger::append(
        tx,
        time,
        &Body::Debit {
            account: account_id,
            amount,
            currency: settings.currency.clone(),
            reference_sha256: target.clone(),
            source,
            reason,
        },
    )?;
    let revoked = if taken.stamps.is_empty() {
        None
    } else {
        Some(revoke(tx, time, &mut account, &taken, target)?)
    };
    tx.put_account(&account)?;
    let balance = account.signed_balance();
    tx.put_credit(
        &reference_sha256,
        &CreditRecord {
            account_id,
            amount,
            balance,
            ledger_index,
            kind: MoneyKind::Debit { revoked },
        },
    )?;
    Ok(Ok(Outcome::Debited {
        balance,
        ledger_index,
        replayed: false,
        revoked,
    }))
}

/// The stamps a revoke takes, in the order it lists them, with what they are worth.
struct Taken {
    stamps: Vec<(StampRef, Sale)>,
    amount: u64,
}

/// The stamps the revoke rule takes from `account_id` owing `debt` at `time`: none when it
/// owes nothing. Reads only.
fn revocable<T: StoreTx + ?Sized>(
    tx: &T,
    account_id: Uuid,
    debt: u64,
    time: Timestamp,
) -> Result<Result<Taken, Refusal>, StoreError> {
    let mut taken = Taken {
        stamps: Vec::new(),
        amount: 0,
    };
    if debt == 0 {
        return Ok(Ok(taken));
    }
    // One more than the rules look through, to tell "none left" from "more than allowed".
    let purchases = tx.account_purchases(account_id, time, REVOKE_PURCHASES_MAX + 1)?;
    for (read, purchase) in (0u64..).zip(&purchases) {
        if read == REVOKE_PURCHASES_MAX {
            return Ok(Err(Refusal::RevokeTooLarge));
        }
        if time >= purchase.expires_at {
            continue;
        }
        for stamp_id in purchase.stamp_ids.iter().rev() {
            let stamp = StampRef {
                stamp_id: *stamp_id,
                issued_at: purchase.issued_at,
            };
            let Some(sold) = tx.sold_stamp(stamp)? else {
                return Err(StoreError::Corrupt {
                    tree: "stamps",
                    detail: format!(
                        "stamp {stamp_id} of purchase entry {} not sold",
                        purchase.ledger_index
                    ),
                });
            };
            if sold.spent.is_some() || time >= sold.sale.expires_at {
                continue;
            }
            if taken.stamps.len() == REVOKE_STAMPS_MAX {
                return Ok(Err(Refusal::RevokeTooLarge));
            }
            let Some(amount) = taken.amount.checked_add(purchase.unit_price) else {
                return Ok(Err(Refusal::Overflow(Amount::Balance)));
            };
            taken.stamps.push((stamp, sold.sale));
            taken.amount = amount;
            if taken.amount >= debt {
                return Ok(Ok(taken));
            }
        }
    }
    Ok(Ok(taken))
}

/// Writes the revoke: its entry right after the debit's, every stamp spent by it, and its
/// amount given back to the account (paying the debt off first).
fn revoke<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    account: &mut crate::domain::Account,
    taken: &Taken,
    target: String,
) -> Result<Revoked, StoreError> {
    let stamp_ids = taken.stamps.iter().map(|(s, _)| s.stamp_id).collect();
    let ledger_index = ledger::append(
        tx,
        time,
        &Body::Spend {
            stamp_ids,
            action: SpendAction::Revoke,
            target: target.clone(),
            direction: None,
            amount: Some(taken.amount),
        },
    )?;
    let record = SpentRecord {
        spent_at: time,
        action: SpendAction::Revoke,
        spent_for: format!("revoke:{target}"),
        ledger_index,
    };
    for (stamp, sale) in &taken.stamps {
        tx.mark_spent(*stamp, sale, &record)?;
    }
    let stamps = taken.stamps.len() as u64;
    account.stamps_spent = account.stamps_spent.saturating_add(stamps);
    if account.add_money(taken.amount).is_none() {
        // `debit` checked that it fits before the first write.
        return Err(StoreError::Storage(
            "a revoke's amount overflowed the balance".into(),
        ));
    }
    Ok(Revoked {
        ledger_index,
        stamps,
        amount: taken.amount,
    })
}
