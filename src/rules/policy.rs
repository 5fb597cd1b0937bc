//! The policy entry: the economy's parameters, written to the ledger before the first entry
//! they price, and again whenever a start brings a different policy.

use super::ledger;
use super::{Applied, InvalidCommand, Outcome, Refusal};
use crate::ledger::entry::Body;
use crate::rules::price::{currency_is_valid, Policy};
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

/// Writes `policy` as a `policy` entry unless it is already the last one written.
pub fn publish<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    policy: &Policy,
) -> Result<Applied, StoreError> {
    if !currency_is_valid(&policy.currency) {
        return Ok(Err(Refusal::Invalid(InvalidCommand::Currency)));
    }
    if tx.policy()?.as_ref() == Some(policy) {
        return Ok(Ok(Outcome::Policy { ledger_index: None }));
    }
    let index = ledger::append(
        tx,
        time,
        &Body::Policy {
            currency: policy.currency.clone(),
            stamp_price: policy.stamp_price,
            post_cost: policy.post_cost,
            vote_cost: policy.vote_cost,
            repeat_window_secs: policy.repeat_window_secs,
            repeat_factor: policy.repeat_factor,
            vote_pricing: policy.vote_pricing.as_str(),
            refund_voters: policy.refund_voters,
        },
    )?;
    tx.put_policy(policy)?;
    Ok(Ok(Outcome::Policy {
        ledger_index: Some(index),
    }))
}
