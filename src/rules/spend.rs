//! Spend: cancelling stamps for a post, a vote or another site's action, all or none, at the
//! price the policy in force gives, and the refund a vote completes.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{distinct_and_present, ledger};
use super::{Applied, Outcome, QuoteAction, Refusal, SpendFor};
use crate::domain::{Post, Sale, SpentRecord, StampRef, Voter};
use crate::ledger::entry::{Body, Direction};
use crate::rules::price::{payable, Policy};
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

/// Cancels every stamp in `stamps` or none of them, writes what they paid for (a new post, a
/// vote's new counts) and appends the `spend` entry, and the `refund` entry when the vote
/// completes its post's refund, all in the caller's transaction.
///
/// Checks, in order, before any write: a stamp named twice (`Invalid`); per stamp, never sold
/// with that issue time (`NotSold`), spent before (`AlreadySpent`), expired at the entry's
/// time (`Expired`); for posts and votes, stamps of more than one payer (`MixedPayers`), a
/// vote on a missing post (`NotFound`), a count other than the price (`WrongStampCount`); a
/// new post id that exists. A redeem needs exactly one stamp and is not priced.
pub fn spend<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    stamps: &[StampRef],
    spend_for: &SpendFor,
) -> Result<Applied, StoreError> {
    let stamp_ids: Vec<Uuid> = stamps.iter().map(|s| s.stamp_id).collect();
    let priced = !matches!(spend_for, SpendFor::Redeem { .. });
    // A post or vote with no stamp is a wrong count, priced below; anything else needs one.
    if !(priced && stamps.is_empty()) {
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
        found.push((*stamp, sold.sale));
    }
    let payer = found.first().map(|(_, sale)| sale.buyer);
    if priced && found.iter().any(|(_, sale)| Some(sale.buyer) != payer) {
        return Ok(Err(Refusal::MixedPayers));
    }
    let policy = tx.policy()?;
    let attached = stamps.len() as u64;
    let (target, spent_for, post, voter) = match spend_for {
        SpendFor::Post {
            post_id,
            author,
            body,
            verified,
        } => {
            let required = match (&policy, payer) {
                (Some(policy), Some(payer)) => Some(post_price(tx, policy, payer, time)?),
                (Some(policy), None) => Some(payable(policy.post_price(0))),
                (None, _) => None,
            };
            if let Some(refusal) = wrong_count(required, attached) {
                return Ok(Err(refusal));
            }
            if tx.post(*post_id)?.is_some() {
                return Ok(Err(Refusal::IdempotencyConflict("post id collided")));
            }
            // A post made before any policy was written has no base postage to refund.
            let base = policy
                .as_ref()
                .and_then(|p| base_postage(&found, p.post_cost));
            let post = Post {
                post_id: *post_id,
                author: author.clone(),
                body: body.clone(),
                created_at: time,
                score: 0,
                ledger_index: 0,
                seq: tx.next_post_seq()?,
                verified: *verified,
                payer,
                cost: attached,
                votes_up: 0,
                votes_down: 0,
                voters: 0,
                up_voters: 0,
                base_postage: base,
                refunded: false,
            };
            (
                post_id.to_string(),
                format!("post:{post_id}"),
                Some(post),
                None,
            )
        }
        SpendFor::Vote { post_id, up } => {
            let Some(mut post) = tx.post(*post_id)? else {
                return Ok(Err(Refusal::NotFound("post")));
            };
            let mut voter = match payer {
                Some(payer) => tx.voter(*post_id, payer)?,
                None => Voter::default(),
            };
            let required = policy
                .as_ref()
                .map(|p| payable(p.vote_price(voter.votes.saturating_add(1))));
            if let Some(refusal) = wrong_count(required, attached) {
                return Ok(Err(refusal));
            }
            let Some(score) = post.score.checked_add(if *up { 1 } else { -1 }) else {
                return Ok(Err(Refusal::Overflow("score")));
            };
            post.score = score;
            if *up {
                post.votes_up = post.votes_up.saturating_add(1);
            } else {
                post.votes_down = post.votes_down.saturating_add(1);
            }
            if voter.votes == 0 {
                post.voters = post.voters.saturating_add(1);
            }
            if *up && !voter.up_voted && payer.is_some() && payer != post.payer {
                post.up_voters = post.up_voters.saturating_add(1);
            }
            voter.votes = voter.votes.saturating_add(1);
            voter.up_voted |= *up;
            (
                post_id.to_string(),
                format!("vote:{post_id}"),
                Some(post),
                payer.map(|payer| (payer, voter)),
            )
        }
        SpendFor::Redeem { context } => (
            hex::encode(Sha256::digest(context.as_bytes())),
            context.clone(),
            None,
            None,
        ),
    };
    // Every check passed: write.
    let action = spend_for.action();
    let direction = match spend_for {
        SpendFor::Vote { up: true, .. } => Some(Direction::Up),
        SpendFor::Vote { up: false, .. } => Some(Direction::Down),
        _ => None,
    };
    let index = ledger::append(
        tx,
        time,
        &Body::Spend {
            stamp_ids,
            action,
            target,
            direction,
        },
    )?;
    let record = SpentRecord {
        spent_at: time,
        action,
        spent_for,
        ledger_index: index,
    };
    for (stamp, sale) in &found {
        tx.mark_spent(*stamp, sale, &record)?;
        if let Some(mut buyer) = tx.account(sale.buyer)? {
            buyer.stamps_spent = buyer.stamps_spent.saturating_add(1);
            tx.put_account(&buyer)?;
        }
    }
    let mut refund_ledger_index = None;
    let post = match (post, spend_for) {
        (Some(mut post), SpendFor::Post { .. }) => {
            post.ledger_index = index;
            tx.insert_post(&post)?;
            if let Some(payer) = payer {
                tx.add_recent_post(payer, time, post.post_id)?;
            }
            Some(post)
        }
        (Some(mut post), SpendFor::Vote { up, .. }) => {
            if let Some((payer, voter)) = voter {
                tx.put_voter(post.post_id, payer, &voter)?;
            }
            // Only an up-vote whose payer is not the post's own can complete a refund.
            if *up && payer.is_some() && payer != post.payer {
                refund_ledger_index = refund(tx, time, policy.as_ref(), &mut post)?;
            }
            tx.update_post(&post)?;
            Some(post)
        }
        (post, _) => post,
    };
    Ok(Ok(Outcome::Spent {
        spent_at: time,
        ledger_index: index,
        post,
        cost: attached,
        refund_ledger_index,
    }))
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
        return Ok(Err(Refusal::NotFound("policy")));
    };
    match action {
        QuoteAction::Post => Ok(Ok(post_price(tx, &policy, payer, time)?)),
        QuoteAction::Vote { post_id } => {
            if tx.post(post_id)?.is_none() {
                return Ok(Err(Refusal::NotFound("post")));
            }
            let n = tx.voter(post_id, payer)?.votes.saturating_add(1);
            Ok(Ok(payable(policy.vote_price(n))))
        }
    }
}

/// Earlier posts the flood price counts at most: with a factor of 2 or more, 64 of them put
/// the price past `u64::MAX`, so counting further changes nothing and would only cost reads.
pub const RECENT_POSTS_MAX: u64 = 64;

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
    let (Some(balance), Some(refunds_total)) = (
        account.balance.checked_add(amount),
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
    account.balance = balance;
    account.refunds_total = refunds_total;
    tx.put_account(&account)?;
    post.refunded = true;
    Ok(Some(index))
}
