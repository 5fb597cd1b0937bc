//! Spend: cancelling stamps for a post, a vote or another site's action, all or none, at the
//! price the policy in force gives, and the refund a vote completes.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{distinct_and_present, ledger, RECENT_POSTS_MAX};
use super::{Amount, Applied, Conflict, Missing, Outcome, QuoteAction, Refusal, SpendFor};
use crate::domain::{Post, Sale, SpentRecord, StampRef, Voter};
use crate::ledger::entry::{Body, Direction, SpendAction};
use crate::rules::price::{payable, Policy};
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

/// Cancels every stamp in `stamps` or none of them, writes what they paid for (a new post, a
/// vote's new counts) and appends the `spend` entry, and the `refund` entry when the vote
/// completes its post's refund, all in the caller's transaction.
///
/// Checks, in order, before any write: a stamp named twice (`Invalid`); per stamp, never sold
/// with that issue time (`NotSold`), spent before (`AlreadySpent`), expired at the entry's
/// time (`Expired`), held by a live hold (`StampHeld`) ([`check`]); for posts and votes, stamps of more than one payer
/// (`MixedPayers`), a vote on a missing post (`NotFound`), a count other than the price
/// (`WrongStampCount`); a new post id that exists. A redeem is not priced. Then one shared
/// step writes the spend ([`cancel`]).
pub fn spend<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    stamps: &[StampRef],
    spend_for: &SpendFor,
) -> Result<Applied, StoreError> {
    match spend_for {
        SpendFor::Post {
            post_id,
            author,
            body,
            verified,
        } => post(tx, time, stamps, *post_id, author, body, *verified),
        SpendFor::Vote { post_id, up } => vote(tx, time, stamps, *post_id, *up),
        SpendFor::Redeem { context } => redeem(tx, time, stamps, context),
    }
}

/// The stamps of a spend that passed [`check`]: each with its sale, and their payer (the
/// buyer of the first).
pub(super) struct Checked {
    pub(super) found: Vec<(StampRef, Sale)>,
    payer: Option<Uuid>,
    /// Stamps attached.
    attached: u64,
}

/// Checks the stamps of a spend: named once each, each sold with that issue time, unspent and
/// unexpired at `time`, and held by no live hold but `own_hold` (a capture's own); for a
/// `priced` spend (a post or vote), all of one payer. A priced spend with no stamp passes
/// here: its price refuses it ([`wrong_count`]).
pub(super) fn check<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    stamps: &[StampRef],
    priced: bool,
    own_hold: Option<Uuid>,
) -> Result<Result<Checked, Refusal>, StoreError> {
    if !(priced && stamps.is_empty()) {
        let stamp_ids: Vec<Uuid> = stamps.iter().map(|s| s.stamp_id).collect();
        if let Some(refusal) = distinct_and_present(&stamp_ids) {
            return Ok(Err(refusal));
        }
    }
    let mut found = Vec::with_capacity(stamps.len());
    for stamp in stamps {
        // Absent: never sold, or sold with another issue time (which a stamp whose signature
        // verified cannot claim).
        let Some(sold) = tx.sold_stamp(*stamp)? else {
            return Ok(Err(Refusal::NotSold(stamp.stamp_id)));
        };
        if sold.spent.is_some() {
            return Ok(Err(Refusal::AlreadySpent(stamp.stamp_id)));
        }
        if time >= sold.sale.expires_at {
            return Ok(Err(Refusal::Expired(stamp.stamp_id)));
        }
        if let Some(hold_id) = tx.stamp_hold(stamp.stamp_id)? {
            if Some(hold_id) != own_hold && tx.hold(hold_id)?.is_some_and(|hold| hold.is_live(time))
            {
                return Ok(Err(Refusal::StampHeld(stamp.stamp_id)));
            }
        }
        found.push((*stamp, sold.sale));
    }
    let payer = found.first().map(|(_, sale)| sale.buyer);
    if priced && found.iter().any(|(_, sale)| Some(sale.buyer) != payer) {
        return Ok(Err(Refusal::MixedPayers));
    }
    Ok(Ok(Checked {
        found,
        payer,
        attached: stamps.len() as u64,
    }))
}

/// Writes a checked spend: appends its `spend` entry, marks every stamp spent with it and
/// counts each for its buyer. Returns the entry's index.
pub(super) fn cancel<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    checked: &Checked,
    action: SpendAction,
    target: String,
    direction: Option<Direction>,
    spent_for: String,
) -> Result<u64, StoreError> {
    let stamp_ids = checked.found.iter().map(|(s, _)| s.stamp_id).collect();
    let index = ledger::append(
        tx,
        time,
        &Body::Spend {
            stamp_ids,
            action,
            target,
            direction,
            amount: None,
        },
    )?;
    let record = SpentRecord {
        spent_at: time,
        action,
        spent_for,
        ledger_index: index,
    };
    for (stamp, sale) in &checked.found {
        tx.mark_spent(*stamp, sale, &record)?;
        if let Some(mut buyer) = tx.account(sale.buyer)? {
            buyer.stamps_spent = buyer.stamps_spent.saturating_add(1);
            tx.put_account(&buyer)?;
        }
    }
    Ok(index)
}

/// What a spend answers.
fn spent(
    time: Timestamp,
    index: u64,
    checked: &Checked,
    post: Option<Post>,
    refund_ledger_index: Option<u64>,
) -> Applied {
    Ok(Outcome::Spent {
        spent_at: time,
        ledger_index: index,
        post,
        cost: checked.attached,
        refund_ledger_index,
    })
}

/// A new post, at the flood price of its payer.
fn post<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    stamps: &[StampRef],
    post_id: Uuid,
    author: &str,
    body: &str,
    verified: bool,
) -> Result<Applied, StoreError> {
    let checked = match check(tx, time, stamps, true, None)? {
        Ok(checked) => checked,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let policy = tx.policy()?;
    let required = match (&policy, checked.payer) {
        (Some(policy), Some(payer)) => Some(post_price(tx, policy, payer, time)?),
        (Some(policy), None) => Some(payable(policy.post_price(0))),
        (None, _) => None,
    };
    if let Some(refusal) = wrong_count(required, checked.attached) {
        return Ok(Err(refusal));
    }
    if tx.post(post_id)?.is_some() {
        return Ok(Err(Refusal::IdempotencyConflict(Conflict::PostCollided)));
    }
    // Every check passed: write. A post made before any policy was written has no base
    // postage to refund.
    let mut post = Post {
        post_id,
        author: author.to_string(),
        body: body.to_string(),
        created_at: time,
        score: 0,
        ledger_index: 0,
        seq: tx.next_post_seq()?,
        verified,
        payer: checked.payer,
        cost: checked.attached,
        votes_up: 0,
        votes_down: 0,
        voters: 0,
        up_voters: 0,
        base_postage: policy
            .as_ref()
            .and_then(|p| base_postage(&checked.found, p.post_cost)),
        refunded: false,
    };
    let index = cancel(
        tx,
        time,
        &checked,
        SpendAction::Post,
        post_id.to_string(),
        None,
        format!("post:{post_id}"),
    )?;
    post.ledger_index = index;
    tx.insert_post(&post)?;
    if let Some(payer) = checked.payer {
        tx.add_recent_post(payer, time, post_id)?;
    }
    Ok(spent(time, index, &checked, Some(post), None))
}

/// A vote on an existing post, at the price of its payer's next vote on it; completes the
/// post's refund when it is the up-vote that brings enough distinct payers.
fn vote<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    stamps: &[StampRef],
    post_id: Uuid,
    up: bool,
) -> Result<Applied, StoreError> {
    let checked = match check(tx, time, stamps, true, None)? {
        Ok(checked) => checked,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let payer = checked.payer;
    let policy = tx.policy()?;
    let Some(mut post) = tx.post(post_id)? else {
        return Ok(Err(Refusal::NotFound(Missing::Post)));
    };
    let mut voter = match payer {
        Some(payer) => tx.voter(post_id, payer)?,
        None => Voter::default(),
    };
    let required = policy
        .as_ref()
        .map(|p| payable(p.vote_price(voter.votes.saturating_add(1))));
    if let Some(refusal) = wrong_count(required, checked.attached) {
        return Ok(Err(refusal));
    }
    let Some(score) = post.score.checked_add(if up { 1 } else { -1 }) else {
        return Ok(Err(Refusal::Overflow(Amount::Score)));
    };
    // Every check passed: write.
    post.score = score;
    if up {
        post.votes_up = post.votes_up.saturating_add(1);
    } else {
        post.votes_down = post.votes_down.saturating_add(1);
    }
    if voter.votes == 0 {
        post.voters = post.voters.saturating_add(1);
    }
    // Only an up-vote whose payer is not the post's own counts towards (and can complete) a
    // refund.
    let counts_for_refund = up && payer.is_some() && payer != post.payer;
    if counts_for_refund && !voter.up_voted {
        post.up_voters = post.up_voters.saturating_add(1);
    }
    voter.votes = voter.votes.saturating_add(1);
    voter.up_voted |= up;
    let index = cancel(
        tx,
        time,
        &checked,
        SpendAction::Vote,
        post_id.to_string(),
        Some(if up { Direction::Up } else { Direction::Down }),
        format!("vote:{post_id}"),
    )?;
    if let Some(payer) = payer {
        tx.put_voter(post_id, payer, &voter)?;
    }
    let refund_ledger_index = if counts_for_refund {
        refund(tx, time, policy.as_ref(), &mut post)?
    } else {
        None
    };
    tx.update_post(&post)?;
    Ok(spent(
        time,
        index,
        &checked,
        Some(post),
        refund_ledger_index,
    ))
}

/// Another site's action: not priced; the ledger records SHA-256 of its context.
fn redeem<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    stamps: &[StampRef],
    context: &str,
) -> Result<Applied, StoreError> {
    let checked = match check(tx, time, stamps, false, None)? {
        Ok(checked) => checked,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let index = cancel(
        tx,
        time,
        &checked,
        SpendAction::Redeem,
        hex::encode(Sha256::digest(context.as_bytes())),
        None,
        context.to_string(),
    )?;
    Ok(spent(time, index, &checked, None, None))
}

/// What `action` costs `payer` at `time`, as [`spend`] would price it (a quote).
pub fn quote<T: StoreTx + ?Sized>(
    tx: &T,
    payer: Uuid,
    action: QuoteAction,
    time: Timestamp,
) -> Result<Result<u64, Refusal>, StoreError> {
    let time = time.max(tx.last_time()?);
    let Some(policy) = tx.policy()? else {
        return Ok(Err(Refusal::NotFound(Missing::Policy)));
    };
    match action {
        QuoteAction::Post => Ok(Ok(post_price(tx, &policy, payer, time)?)),
        QuoteAction::Vote { post_id } => {
            if tx.post(post_id)?.is_none() {
                return Ok(Err(Refusal::NotFound(Missing::Post)));
            }
            let n = tx.voter(post_id, payer)?.votes.saturating_add(1);
            Ok(Ok(payable(policy.vote_price(n))))
        }
    }
}

/// A post's flood price for `payer` at `time`.
fn post_price<T: StoreTx + ?Sized>(
    tx: &T,
    policy: &Policy,
    payer: Uuid,
    time: Timestamp,
) -> Result<u64, StoreError> {
    if policy.repeat_factor == 1 {
        // Flood pricing is off: the count would not change the price.
        return Ok(payable(policy.post_price(0)));
    }
    let since = Timestamp::from_unix(policy.window_start(time.unix()));
    let recent = tx.recent_posts(payer, since, RECENT_POSTS_MAX)?;
    Ok(payable(policy.post_price(recent)))
}

fn wrong_count(required: Option<u64>, attached: u64) -> Option<Refusal> {
    match required {
        Some(required) if required != attached => {
            Some(Refusal::WrongStampCount { required, attached })
        }
        // No policy written yet: priced by nothing, but a post or vote needs a stamp.
        None if attached == 0 => Some(Refusal::WrongStampCount {
            required: 1,
            attached,
        }),
        _ => None,
    }
}

/// The unit prices of the first `post_cost` stamps of the spend, or `None` when one is
/// unknown.
fn base_postage(found: &[(StampRef, Sale)], post_cost: u64) -> Option<u64> {
    let count = usize::try_from(post_cost).unwrap_or(usize::MAX);
    found
        .iter()
        .take(count)
        .try_fold(0u64, |sum, (_, sale)| sum.checked_add(sale.unit_price?))
}

/// After an up-vote: refunds the post's base postage to its payer when this vote brought its
/// distinct up-voting payers (other than its own) to the policy's `refund_voters`, once per
/// post. Appends the `refund` entry right after the vote's spend and credits the payer.
fn refund<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    policy: Option<&Policy>,
    post: &mut Post,
) -> Result<Option<u64>, StoreError> {
    let Some(policy) = policy else {
        return Ok(None);
    };
    let (Some(payer), Some(amount)) = (post.payer, post.base_postage) else {
        return Ok(None);
    };
    if post.refunded || policy.refund_voters == 0 || post.up_voters < policy.refund_voters {
        return Ok(None);
    }
    let Some(mut account) = tx.account(payer)? else {
        return Ok(None);
    };
    let mut paid = account.clone();
    let (Some(()), Some(refunds_total)) = (
        paid.add_money(amount),
        account.refunds_total.checked_add(amount),
    ) else {
        return Ok(None);
    };
    let index = ledger::append(
        tx,
        time,
        &Body::Refund {
            account: payer,
            post_id: post.post_id,
            amount,
            currency: policy.currency.clone(),
        },
    )?;
    account = paid;
    account.refunds_total = refunds_total;
    tx.put_account(&account)?;
    post.refunded = true;
    Ok(Some(index))
}
