//! Holds: stamps reserved for a short time, then spent as one redeem (a capture) or given back
//! (a release, or the hold's expiry). A gate holds a request's stamps before forwarding it and
//! captures them only when the site did the work.
//!
//! A hold writes no ledger entry; its capture writes the one `spend` entry a redeem of the
//! hold's context would. While a hold is live (held and before its `expires_at`), no post,
//! vote, redeem or other hold may spend its stamps ([`Refusal::StampHeld`], checked with the
//! spends in `spend::check`). Expiry is judged by the batch's time, like every other rule.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::spend::{cancel, check};
use super::{Applied, Conflict, Missing, Outcome, Refusal, HOLD_TTL_SECS_MAX};
use crate::domain::{Hold, HoldState, StampRef};
use crate::ledger::entry::SpendAction;
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

/// Holds every stamp in `stamps` or none: each must pass the checks of a redeem (sold with
/// that issue time, unspent, unexpired, named once) and be held by no live hold. The hold
/// expires `ttl_secs` after `time`, or at its stamps' earliest expiry if that comes first.
pub fn hold<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    hold_id: Uuid,
    stamps: &[StampRef],
    context: &str,
    ttl_secs: u64,
) -> Result<Applied, StoreError> {
    if !(1..=HOLD_TTL_SECS_MAX).contains(&ttl_secs) {
        return Ok(Err(Refusal::HoldTtl));
    }
    let checked = match check(tx, time, stamps, false, None)? {
        Ok(checked) => checked,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if tx.hold(hold_id)?.is_some() {
        return Ok(Err(Refusal::IdempotencyConflict(Conflict::HoldCollided)));
    }
    let expires_at = checked
        .found
        .iter()
        .map(|(_, sale)| sale.expires_at)
        .fold(time.plus_secs(ttl_secs), Timestamp::min);
    let hold = Hold {
        hold_id,
        stamps: stamps.to_vec(),
        context: context.to_string(),
        created_at: time,
        expires_at,
        state: HoldState::Held,
    };
    tx.insert_hold(&hold)?;
    Ok(Ok(Outcome::Held {
        hold_id,
        expires_at,
        count: stamps.len() as u64,
    }))
}

/// Spends a live hold's stamps as one redeem of its context, re-checking each stamp. A hold
/// captured before answers that capture again; one released or past its expiry is refused
/// ([`Refusal::HoldExpired`]). A stamp spent meanwhile ends the hold ([`Outcome::HoldBroken`]).
pub fn capture<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    hold_id: Uuid,
) -> Result<Applied, StoreError> {
    let Some(mut hold) = tx.hold(hold_id)? else {
        return Ok(Err(Refusal::NotFound(Missing::Hold)));
    };
    match hold.state {
        HoldState::Captured {
            ledger_index,
            spent_at,
        } => {
            return Ok(Ok(Outcome::Captured {
                ledger_index,
                spent_at,
                cost: hold.stamps.len() as u64,
                replayed: true,
            }))
        }
        HoldState::Released => return Ok(Err(Refusal::HoldExpired)),
        HoldState::Held if !hold.is_live(time) => return Ok(Err(Refusal::HoldExpired)),
        HoldState::Held => {}
    }
    let checked = match check(tx, time, &hold.stamps, false, Some(hold_id))? {
        Ok(checked) => checked,
        Err(Refusal::AlreadySpent(stamp_id)) => {
            // The hold ends: its other stamps are free again at once.
            hold.state = HoldState::Released;
            tx.update_hold(&hold)?;
            return Ok(Ok(Outcome::HoldBroken { stamp_id }));
        }
        Err(refusal) => return Ok(Err(refusal)),
    };
    let ledger_index = cancel(
        tx,
        time,
        &checked,
        SpendAction::Redeem,
        hex::encode(Sha256::digest(hold.context.as_bytes())),
        None,
        hold.context.clone(),
    )?;
    hold.state = HoldState::Captured {
        ledger_index,
        spent_at: time,
    };
    tx.update_hold(&hold)?;
    Ok(Ok(Outcome::Captured {
        ledger_index,
        spent_at: time,
        cost: hold.stamps.len() as u64,
        replayed: false,
    }))
}

/// Gives a hold's stamps back. Releasing a released or expired hold changes nothing and is
/// answered the same; a captured one is refused ([`Refusal::HoldCaptured`]).
pub fn release<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    hold_id: Uuid,
) -> Result<Applied, StoreError> {
    let Some(mut hold) = tx.hold(hold_id)? else {
        return Ok(Err(Refusal::NotFound(Missing::Hold)));
    };
    match hold.state {
        HoldState::Captured { .. } => Ok(Err(Refusal::HoldCaptured)),
        HoldState::Held if hold.is_live(time) => {
            hold.state = HoldState::Released;
            tx.update_hold(&hold)?;
            Ok(Ok(Outcome::Released))
        }
        HoldState::Held | HoldState::Released => Ok(Ok(Outcome::Released)),
    }
}
