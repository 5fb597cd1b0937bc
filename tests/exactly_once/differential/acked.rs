//! What the sled store acknowledged, command by command, and the promises checked against it:
//! ledger indexes, balances (credits, purchases, refunds, debits and revokes), spends, revokes
//! and holds, and the state read back after each batch.

use std::collections::{HashMap, HashSet};

use pennypost::domain::Post;
use pennypost::ledger::entry::SpendAction;
use pennypost::rules::{Applied, Command, Outcome, Refusal};
use pennypost::store::{Reads as _, SledStore};
use pennypost::time::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use uuid::Uuid;

use super::pool_ids;
use crate::observe::{self, Snapshot};
use crate::{fail, ids};

/// A hold the store acknowledged, as its answers say it is now.
pub(super) struct AckedHold {
    pub stamps: Vec<Uuid>,
    pub expires_at: Timestamp,
    /// Neither captured nor released (it may have expired).
    pub held: bool,
}

impl AckedHold {
    fn is_live(&self, now: Timestamp) -> bool {
        self.held && now < self.expires_at
    }
}

/// What the sled store acknowledged so far, to check its promises directly.
#[derive(Default)]
pub(super) struct Acked {
    /// Ledger entries written (each write takes the next index).
    pub writes: u64,
    /// Every stamp id in a spend or capture the store accepted.
    pub spent: HashSet<Uuid>,
    /// Every stamp id a debit's revoke took back.
    pub revoked: HashSet<Uuid>,
    /// Per account: credits, purchase totals and debits accepted (replays not counted
    /// again), the refunds its posts got, and what its revokes gave back.
    pub credited: HashMap<Uuid, u64>,
    pub paid: HashMap<Uuid, u64>,
    pub refunded: HashMap<Uuid, u64>,
    pub debited: HashMap<Uuid, u64>,
    pub revoked_amount: HashMap<Uuid, u64>,
    /// The first answer to each credit or debit reference (a replay must answer the same).
    pub references: HashMap<String, Outcome>,
    /// Each stamp sold by an accepted purchase: its buyer and the purchase's stamps.
    pub sold: HashMap<Uuid, (Uuid, Vec<Uuid>)>,
    pub holds: HashMap<Uuid, AckedHold>,
    /// The time of the last entry written: the rules judge each command at the batch's time
    /// or this, whichever is later (entry times never go back), so a hold that expired may
    /// be live again when the clock steps back, until an entry is written past its expiry.
    pub last_time: Option<Timestamp>,
}

impl Acked {
    /// The time the rules judge a command of a batch at `now` by.
    pub fn time(&self, now: Timestamp) -> Timestamp {
        self.last_time.map_or(now, |last| now.max(last))
    }

    /// An account's balance as its acknowledged changes add up: below zero for a debt.
    pub fn balance(&self, account: &Uuid) -> i128 {
        let sum = |m: &HashMap<Uuid, u64>| i128::from(m.get(account).copied().unwrap_or(0));
        sum(&self.credited) + sum(&self.refunded) + sum(&self.revoked_amount)
            - sum(&self.paid)
            - sum(&self.debited)
    }

    /// Spent by a spend or capture, or revoked.
    pub fn gone(&self, stamp: &Uuid) -> bool {
        self.spent.contains(stamp) || self.revoked.contains(stamp)
    }

    fn held(&self, stamp: &Uuid, now: Timestamp) -> bool {
        self.holds
            .values()
            .any(|h| h.is_live(now) && h.stamps.contains(stamp))
    }
}

/// Compares everything observable of the sled store with the memory store (ledger bytes,
/// hashes, accounts, stamps, posts, holds, board, keys), and with what the sled store's own
/// answers said: a stamp is spent exactly when a spend, capture or revoke of it was accepted
/// (its record naming the revoke exactly when revoked), each account's balance is its credits
/// minus its purchases plus its refunds, minus its debits plus its revokes (below zero only
/// as a debt), and its `stamps_spent` counts the spent and revoked stamps it bought. And,
/// read from the ledger: no stamp is named by two spend entries (a revoke is one), every
/// refund directly follows an up-vote spend of the same post, and no post is refunded twice.
pub(super) fn check_state(
    sled: &SledStore,
    memory: &Snapshot,
    acked: &Acked,
) -> Result<(), TestCaseError> {
    let stored = observe::snapshot(sled, &pool_ids()).map_err(fail)?;
    prop_assert_eq!(&stored, memory, "sled and memory stores differ");
    prop_assert_eq!(stored.ledger_size, acked.writes);
    let mut spent_by_buyer: HashMap<Uuid, u64> = HashMap::new();
    for (id, stamp) in &stored.stamps {
        let spent = stamp.as_ref().and_then(|s| s.spent.as_ref());
        prop_assert_eq!(spent.is_some(), acked.gone(id), "stamp {} spent", id);
        let revoked = spent.is_some_and(|s| s.action == SpendAction::Revoke);
        prop_assert_eq!(revoked, acked.revoked.contains(id), "stamp {} revoked", id);
        if let Some(stamp) = stamp.as_ref().filter(|s| s.spent.is_some()) {
            *spent_by_buyer.entry(stamp.buyer).or_default() += 1;
        }
    }
    for (id, account) in &stored.accounts {
        let Some(account) = account else { continue };
        prop_assert!(
            account.balance == 0 || account.debt == 0,
            "account {} has a balance and a debt",
            id
        );
        prop_assert_eq!(
            i128::from(account.signed_balance()),
            acked.balance(id),
            "account {}",
            id
        );
        let refunded = acked.refunded.get(id).copied().unwrap_or(0);
        prop_assert_eq!(account.refunds_total, refunded, "account {} refunds", id);
        let spent = spent_by_buyer.get(id).copied().unwrap_or(0);
        prop_assert_eq!(account.stamps_spent, spent, "account {} stamps_spent", id);
    }
    // The board is every post, newest first.
    let written: Vec<&Post> = stored.posts.values().flatten().collect();
    prop_assert_eq!(stored.board.len(), written.len(), "posts on the board");
    prop_assert!(
        stored.board.windows(2).all(|w| w[0].seq > w[1].seq),
        "board order"
    );
    check_entries(&stored.entries)
}

/// No stamp id is named by two `spend` entries (a revoke is one: a revoked stamp is never
/// spent, a spent one never revoked). Every `refund` entry directly follows the spend of an
/// up-vote on the same post, and no post is refunded twice.
fn check_entries(entries: &[String]) -> Result<(), TestCaseError> {
    let mut refunded = HashSet::new();
    let mut cancelled: HashMap<String, usize> = HashMap::new();
    let mut previous = serde_json::Value::Null;
    for (i, text) in entries.iter().enumerate() {
        let entry: serde_json::Value = serde_json::from_str(text).map_err(fail)?;
        if entry["kind"] == "spend" {
            for id in entry["stamp_ids"].as_array().into_iter().flatten() {
                let id = id.as_str().unwrap_or_default().to_string();
                if let Some(first) = cancelled.insert(id.clone(), i) {
                    return Err(fail(format!(
                        "stamp {id} cancelled by entry {first} and again by entry {i}"
                    )));
                }
            }
        }
        if entry["kind"] == "refund" {
            let post = entry["post_id"].as_str().unwrap_or_default();
            prop_assert!(
                previous["kind"] == "spend"
                    && previous["action"] == "vote"
                    && previous["direction"] == "up"
                    && previous["target"] == post,
                "refund at {} does not follow an up-vote of post {}: {}",
                i,
                post,
                previous
            );
            prop_assert!(
                refunded.insert(post.to_string()),
                "post {} refunded twice",
                post
            );
        }
        previous = entry;
    }
    Ok(())
}

/// What `check_applied` found besides a pass: the stamp ids of a refused spend, and the kinds
/// of result it reached that only the acknowledged history tells (for the coverage).
#[derive(Default)]
pub(super) struct Found {
    pub refused_spend: Option<Vec<Uuid>>,
    pub kinds: Vec<&'static str>,
}

/// Checks, from one accepted or refused command of the sled store in a batch at `now`, the
/// promises said directly: each ledger write takes the next index and a replay answers an
/// earlier one with the first answer; every balance a credit or debit answers, and every
/// purchase accepted or refused for its balance, agrees with the history (no purchase while
/// in debt); a debit's revoke (read from `sled`'s ledger) names stamps of its account that
/// are neither spent nor revoked, and is right after its debit; a spend naming a spent or
/// revoked stamp first is refused as already spent; no stamp is spent twice, or spent, held
/// or captured once revoked; a live hold's stamps are not spent meanwhile, and its capture
/// after a revoke breaks it.
pub(super) fn check_applied(
    sled: &SledStore,
    now: Timestamp,
    command: &Command,
    applied: &Applied,
    acked: &mut Acked,
) -> Result<Found, TestCaseError> {
    let now = acked.time(now);
    let mut found = Found::default();
    let index = match applied {
        Ok(Outcome::KeyPublished { ledger_index })
        | Ok(Outcome::Credited { ledger_index, .. })
        | Ok(Outcome::Debited { ledger_index, .. })
        | Ok(Outcome::Spent { ledger_index, .. })
        | Ok(Outcome::Captured { ledger_index, .. }) => Some(*ledger_index),
        Ok(Outcome::Purchased { record, .. }) => Some(record.ledger_index),
        Ok(Outcome::Policy { ledger_index }) => *ledger_index,
        Ok(Outcome::AccountCreated)
        | Ok(Outcome::Held { .. })
        | Ok(Outcome::HoldBroken { .. })
        | Ok(Outcome::Released)
        | Err(_) => None,
    };
    let replay = matches!(
        applied,
        Ok(Outcome::Purchased { replayed: true, .. }
            | Outcome::Credited { replayed: true, .. }
            | Outcome::Debited { replayed: true, .. }
            | Outcome::Captured { replayed: true, .. })
    );
    let new_write = match index {
        Some(index) if index == acked.writes && !replay => {
            acked.writes += 1;
            acked.last_time = Some(now);
            // A vote that completes a refund writes the refund right after its spend.
            if let Ok(Outcome::Spent {
                refund_ledger_index: Some(refund),
                post,
                ..
            }) = applied
            {
                prop_assert_eq!(*refund, acked.writes, "refund right after its vote");
                acked.writes += 1;
                let post = post
                    .as_ref()
                    .ok_or_else(|| fail("a refund without its post"))?;
                let payer = post.payer.ok_or_else(|| fail("a refund without a payer"))?;
                let amount = post
                    .base_postage
                    .ok_or_else(|| fail("a refund without a base postage"))?;
                prop_assert!(post.refunded, "the refunded post says so");
                *acked.refunded.entry(payer).or_default() += amount;
            }
            // A debit that takes the balance below zero writes its revoke (when it finds
            // stamps to take) right after it.
            if let Ok(Outcome::Debited {
                revoked: Some(revoked),
                ..
            }) = applied
            {
                prop_assert_eq!(revoked.ledger_index, acked.writes, "revoke after its debit");
                acked.writes += 1;
            }
            true
        }
        Some(index) => {
            prop_assert!(
                replay && index < acked.writes,
                "ledger index {} of {:?} with {} written",
                index,
                command,
                acked.writes
            );
            false
        }
        None => false,
    };
    match (command, applied) {
        (
            Command::Credit {
                reference,
                account_id,
                amount,
                ..
            },
            Ok(outcome @ Outcome::Credited { balance, .. }),
        ) => {
            if new_write {
                *acked.credited.entry(*account_id).or_default() += amount;
                prop_assert_eq!(i128::from(*balance), acked.balance(account_id));
            }
            check_reference(acked, reference, outcome, new_write)?;
        }
        (
            Command::Debit {
                reference,
                account_id,
                amount,
                ..
            },
            Ok(
                outcome @ Outcome::Debited {
                    balance, revoked, ..
                },
            ),
        ) => {
            if new_write {
                *acked.debited.entry(*account_id).or_default() += amount;
                if let Some(revoked) = revoked {
                    let kinds = check_revoke(sled, now, *account_id, revoked, acked)?;
                    found.kinds.extend(kinds);
                    *acked.revoked_amount.entry(*account_id).or_default() += revoked.amount;
                }
                prop_assert_eq!(i128::from(*balance), acked.balance(account_id));
                if *balance < 0 {
                    found.kinds.push("ok: debit leaving a debt");
                }
            }
            check_reference(acked, reference, outcome, new_write)?;
        }
        (Command::Purchase { account_id, .. }, Ok(Outcome::Purchased { record, .. }))
            if new_write =>
        {
            let before = acked.balance(account_id);
            prop_assert!(
                before >= i128::from(record.total),
                "a purchase of {} accepted with a balance of {}",
                record.total,
                before
            );
            *acked.paid.entry(*account_id).or_default() += record.total;
            for id in &record.stamp_ids {
                acked
                    .sold
                    .insert(*id, (*account_id, record.stamp_ids.clone()));
            }
        }
        (
            Command::Purchase { account_id, .. },
            Err(Refusal::InsufficientFunds { balance, total }),
        ) => {
            prop_assert_eq!(i128::from(*balance), acked.balance(account_id));
            prop_assert!(*balance < 0 || (*balance as u64) < *total);
            if *balance < 0 {
                found.kinds.push("refused: purchase in debt");
            }
        }
        (Command::Spend { stamps, .. }, applied) => {
            let stamp_ids = ids(stamps);
            // A spend naming a spent or revoked stamp first is refused as already spent.
            if let Some(first) = stamp_ids.first().filter(|id| acked.gone(id)) {
                prop_assert_eq!(applied, &Err(Refusal::AlreadySpent(*first)));
                if acked.revoked.contains(first) {
                    found.kinds.push("refused: a revoked stamp spent");
                }
            }
            match applied {
                Ok(_) => {
                    let reused = stamp_ids.iter().find(|id| acked.gone(id));
                    prop_assert!(reused.is_none(), "stamp {:?} spent twice", reused);
                    let held = stamp_ids.iter().find(|id| acked.held(id, now));
                    prop_assert!(held.is_none(), "held stamp {:?} spent", held);
                    acked.spent.extend(stamp_ids.iter().copied());
                }
                Err(_) => found.refused_spend = Some(stamp_ids),
            }
        }
        (
            Command::Hold {
                hold_id, stamps, ..
            },
            Ok(Outcome::Held { expires_at, .. }),
        ) => {
            let stamp_ids = ids(stamps);
            let taken = stamp_ids
                .iter()
                .find(|id| acked.gone(id) || acked.held(id, now));
            prop_assert!(taken.is_none(), "stamp {:?} held while taken", taken);
            acked.holds.insert(
                *hold_id,
                AckedHold {
                    stamps: stamp_ids,
                    expires_at: *expires_at,
                    held: true,
                },
            );
        }
        (Command::Capture { hold_id }, applied) => {
            check_capture(now, hold_id, applied, acked, &mut found)?;
        }
        (Command::Release { hold_id }, Ok(Outcome::Released)) => {
            if let Some(hold) = acked.holds.get_mut(hold_id) {
                hold.held = false;
            }
        }
        _ => {}
    }
    Ok(found)
}

/// A replayed credit or debit answers as the first did (but for `replayed`); a new one is
/// kept as the first.
fn check_reference(
    acked: &mut Acked,
    reference: &str,
    outcome: &Outcome,
    new_write: bool,
) -> Result<(), TestCaseError> {
    if new_write {
        acked
            .references
            .insert(reference.to_string(), outcome.clone());
        return Ok(());
    }
    let mut first = acked
        .references
        .get(reference)
        .cloned()
        .ok_or_else(|| fail(format!("a replay of {reference}, never answered before")))?;
    match &mut first {
        Outcome::Credited { replayed, .. } | Outcome::Debited { replayed, .. } => *replayed = true,
        _ => {}
    }
    prop_assert_eq!(outcome, &first, "a replay of {}", reference);
    Ok(())
}

/// Reads the revoke `revoked` names from `sled`'s ledger and checks it: a `revoke` spend of
/// `revoked.stamps` stamps of `account`, none spent or revoked before. Notes them revoked and
/// returns what it revoked that the coverage wants seen: held stamps, stamps of a purchase
/// partly spent.
fn check_revoke(
    sled: &SledStore,
    now: Timestamp,
    account: Uuid,
    revoked: &pennypost::rules::Revoked,
    acked: &mut Acked,
) -> Result<Vec<&'static str>, TestCaseError> {
    let mut kinds = vec!["ok: debit with a revoke"];
    let entries = sled.entries(revoked.ledger_index, 1).map_err(fail)?;
    let entry: serde_json::Value = entries
        .first()
        .map(|e| serde_json::from_slice(e))
        .transpose()
        .map_err(fail)?
        .ok_or_else(|| fail("no revoke entry"))?;
    prop_assert!(
        entry["kind"] == "spend" && entry["action"] == "revoke",
        "{}",
        entry
    );
    prop_assert_eq!(entry["amount"].as_u64(), Some(revoked.amount));
    let stamps: Vec<Uuid> = entry["stamp_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|id| id.as_str().and_then(|id| Uuid::parse_str(id).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| fail(format!("stamp ids of {entry}")))?;
    prop_assert_eq!(stamps.len() as u64, revoked.stamps);
    for id in &stamps {
        prop_assert!(!acked.gone(id), "stamp {} revoked once gone", id);
        let (buyer, purchase) = acked
            .sold
            .get(id)
            .ok_or_else(|| fail(format!("revoked stamp {id} never sold")))?;
        prop_assert_eq!(*buyer, account, "stamp {} revoked from another account", id);
        if acked.held(id, now) {
            kinds.push("ok: revoke of held stamps");
        }
        if purchase.iter().any(|s| acked.spent.contains(s)) {
            kinds.push("ok: revoke of a partly spent purchase");
        }
    }
    acked.revoked.extend(stamps);
    Ok(kinds)
}

/// A capture spends a live hold's stamps if none is gone (and never one revoked), is broken
/// by the first gone (which only a revoke can take while the hold is live), and answers a
/// captured hold again.
fn check_capture(
    now: Timestamp,
    hold_id: &Uuid,
    applied: &Applied,
    acked: &mut Acked,
    found: &mut Found,
) -> Result<(), TestCaseError> {
    let Some(hold) = acked.holds.get(hold_id) else {
        return Ok(());
    };
    let first_gone = hold.stamps.iter().find(|id| acked.gone(id)).copied();
    if hold.is_live(now) {
        match first_gone {
            Some(stamp_id) => {
                prop_assert_eq!(applied, &Ok(Outcome::HoldBroken { stamp_id }));
                prop_assert!(
                    acked.revoked.contains(&stamp_id),
                    "held stamp {} spent",
                    stamp_id
                );
                found.kinds.push("ok: hold broken by a revoke");
            }
            None => prop_assert!(
                matches!(
                    applied,
                    Ok(Outcome::Captured {
                        replayed: false,
                        ..
                    })
                ),
                "capture of a live hold: {:?}",
                applied
            ),
        }
    }
    match applied {
        Ok(Outcome::Captured {
            replayed: false, ..
        }) => {
            prop_assert!(hold.is_live(now), "a hold not live captured");
            let stamps = hold.stamps.clone();
            acked.spent.extend(stamps);
            if let Some(hold) = acked.holds.get_mut(hold_id) {
                hold.held = false;
            }
        }
        Ok(Outcome::HoldBroken { .. }) => {
            if let Some(hold) = acked.holds.get_mut(hold_id) {
                hold.held = false;
            }
        }
        _ => {}
    }
    Ok(())
}
