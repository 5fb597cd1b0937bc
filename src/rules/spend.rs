//! Spend: cancelling stamps for a post, a vote or another site's action, all or none.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{distinct_and_present, ledger};
use crate::ledger::entry::Body;
use crate::store::{
    Applied, Outcome, Post, Refusal, SpendFor, SpentRecord, StampRef, StoreError, StoreTx,
};
use crate::time::Timestamp;

/// Cancels every stamp in `stamps` or none of them, writes what they paid for (a new post, a
/// vote's new score) and appends the `spend` entry, all in the caller's transaction.
///
/// Refusals, checked before any write: a stamp named twice or none (`Invalid`), a stamp never
/// sold with that issue time (`NotSold`), one spent before (`AlreadySpent`), one expired at the
/// entry's time (`Expired`), a vote on a missing post (`NotFound`), a new post id that exists.
pub fn spend<T: StoreTx + ?Sized>(
    tx: &T,
    time: Timestamp,
    stamps: &[StampRef],
    spend_for: &SpendFor,
) -> Result<Applied, StoreError> {
    let stamp_ids: Vec<Uuid> = stamps.iter().map(|s| s.stamp_id).collect();
    if let Some(refusal) = distinct_and_present(&stamp_ids) {
        return Ok(Err(refusal));
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
    let (target, spent_for, post) = match spend_for {
        SpendFor::Post {
            post_id,
            author,
            body,
        } => {
            if tx.post(*post_id)?.is_some() {
                return Ok(Err(Refusal::IdempotencyConflict("post id collided")));
            }
            let post = Post {
                post_id: *post_id,
                author: author.clone(),
                body: body.clone(),
                created_at: time,
                score: 0,
                ledger_index: 0,
                seq: tx.next_post_seq()?,
            };
            (post_id.to_string(), format!("post:{post_id}"), Some(post))
        }
        SpendFor::Vote { post_id, up } => {
            let Some(mut post) = tx.post(*post_id)? else {
                return Ok(Err(Refusal::NotFound("post")));
            };
            let Some(score) = post.score.checked_add(if *up { 1 } else { -1 }) else {
                return Ok(Err(Refusal::Overflow("score")));
            };
            post.score = score;
            (post_id.to_string(), format!("vote:{post_id}"), Some(post))
        }
        SpendFor::Redeem { context } => (
            hex::encode(Sha256::digest(context.as_bytes())),
            context.clone(),
            None,
        ),
    };
    let action = spend_for.action();
    let index = ledger::append(
        tx,
        time,
        &Body::Spend {
            stamp_ids,
            action,
            target,
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
    let post = match (post, spend_for) {
        (Some(mut post), SpendFor::Post { .. }) => {
            post.ledger_index = index;
            tx.insert_post(&post)?;
            Some(post)
        }
        (Some(post), _) => {
            tx.update_post(&post)?;
            Some(post)
        }
        (None, _) => None,
    };
    Ok(Ok(Outcome::Spent {
        spent_at: time,
        ledger_index: index,
        post,
    }))
}
