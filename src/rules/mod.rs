//! The rules, written once for every store: what each [`Command`] checks, what it refuses,
//! what it writes and which ledger entry it appends.
//!
//! The rules own the transaction: [`apply`] asks the store for one ([`Writes::write`]), with
//! the reads the batch will make ([`reads`]), and reads and writes only through the
//! [`StoreTx`] it is handed; a quote ([`quote`]) runs in a transaction that only reads. The
//! commands and their answers are in [`command`]; the records they decide over in
//! `crate::domain`. One file per use case: [`account`] (accounts and key events), [`credit`],
//! [`debit`] (debits and the revokes they owe), [`hold`] (holds, captures, releases), [`purchase`], [`spend`] (posts,
//! votes with their prices and refunds, redeems), [`policy`], [`price`] (the economy's pure
//! price functions), and [`ledger`] (entry bytes and Merkle hashes, computed here once for every
//! backend).
//!
//! Invariants kept here:
//! - **Check, then write**: a command checks everything it needs before its first write, so a
//!   refused command ([`Refusal`]) writes nothing, even inside a batch that goes on.
//! - **One entry per change**: every applied command that moves money or stamps appends exactly
//!   one ledger entry, in the same transaction as its state change.
//! - **Time never goes backwards**: an entry's time is `max(now, last entry's time)`.
//!
//! Must not: read the clock (the batch's `now` is given), check signatures (the service did),
//! or know how a backend lays out its data.

pub mod account;
pub mod command;
pub mod credit;
pub mod debit;
pub mod hold;
pub mod ledger;
pub mod policy;
pub mod price;
pub mod purchase;
pub mod spend;

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use command::{
    Amount, Applied, Command, Conflict, InvalidCommand, Missing, Outcome, QuoteAction, Refusal,
    Revoked, SpendFor,
};
pub use debit::{REVOKE_PURCHASES_MAX, REVOKE_STAMPS_MAX};

use crate::store::{ReadSet, StoreError, StoreTx, Writes};
use crate::time::Timestamp;

/// What the rules need to know beyond the commands: given by the caller (the committer, a
/// simulation), never kept by a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The currency name written into credit entries.
    pub currency: String,
}

/// Applies `batch` in order, in one transaction of `store` that the rules open. A refused
/// command changes nothing and does not stop the others; a storage failure stops the batch,
/// and the backend discards the whole transaction. Entries get times `>= now` and never
/// earlier than the previous entry.
pub fn apply<W: Writes + ?Sized>(
    store: &W,
    settings: &Settings,
    batch: &[Command],
    now: Timestamp,
) -> Result<Vec<Applied>, StoreError> {
    let mut results = Vec::new();
    store.write(&reads(batch), &mut |tx| {
        // A backend may run the body again (after a conflict): the results are replaced.
        results = apply_batch(tx, settings, batch, now)?;
        Ok(())
    })?;
    Ok(results)
}

/// What `action` would cost `payer` at `now` under the policy in force, in stamps, in a
/// transaction of `store` that only reads: spends and reserves nothing.
pub fn quote<W: Writes + ?Sized>(
    store: &W,
    payer: Uuid,
    action: QuoteAction,
    now: Timestamp,
) -> Result<Result<u64, Refusal>, StoreError> {
    let mut quoted = None;
    store.read(&mut |tx| {
        quoted = Some(spend::quote(tx, payer, action, now)?);
        Ok(())
    })?;
    quoted.ok_or_else(|| StoreError::Storage("the quote's transaction did not run".into()))
}

/// Applies `batch` in order through `tx`.
pub fn apply_batch<T: StoreTx + ?Sized>(
    tx: &T,
    settings: &Settings,
    batch: &[Command],
    now: Timestamp,
) -> Result<Vec<Applied>, StoreError> {
    batch
        .iter()
        .map(|command| apply_one(tx, settings, command, now))
        .collect()
}

/// Applies one command.
fn apply_one<T: StoreTx + ?Sized>(
    tx: &T,
    settings: &Settings,
    command: &Command,
    now: Timestamp,
) -> Result<Applied, StoreError> {
    // Entry times never go backwards, even if the wall clock does.
    let time = now.max(tx.last_time()?);
    match command {
        Command::KeyEvent {
            kid,
            public_key,
            status,
        } => account::publish_key(tx, time, *kid, public_key, *status),
        Command::CreateAccount {
            account_id,
            name,
            api_key_sha256,
        } => account::create(tx, time, *account_id, name.clone(), api_key_sha256),
        Command::Credit {
            account_id,
            amount,
            reference,
            source,
        } => credit::credit(tx, settings, time, *account_id, *amount, reference, *source),
        Command::Debit {
            account_id,
            amount,
            reference,
            source,
            reason,
        } => debit::debit(
            tx,
            settings,
            time,
            *account_id,
            *amount,
            reference,
            *source,
            *reason,
        ),
        Command::Purchase { .. } => purchase::purchase(tx, time, command),
        Command::Spend { stamps, spend_for } => spend::spend(tx, time, stamps, spend_for),
        Command::Policy { policy } => policy::publish(tx, time, policy),
        Command::Hold {
            hold_id,
            stamps,
            context,
            ttl_secs,
        } => hold::hold(tx, time, *hold_id, stamps, context, *ttl_secs),
        Command::Capture { hold_id } => hold::capture(tx, time, *hold_id),
        Command::Release { hold_id } => hold::release(tx, time, *hold_id),
    }
}

/// What applying `batch` reads, for the backend to fetch up front ([`ReadSet`]): what each
/// command names, and what the rules derive from it (a spend counts against the buyer of its
/// stamps; the payer of a post or vote is the buyer of its first stamp).
pub fn reads(batch: &[Command]) -> ReadSet {
    let mut set = ReadSet {
        recent_posts_max: RECENT_POSTS_MAX,
        account_purchases_max: REVOKE_PURCHASES_MAX + 1,
        ..ReadSet::default()
    };
    for command in batch {
        match command {
            Command::KeyEvent { kid, .. } => set.kids.push(*kid),
            Command::CreateAccount {
                account_id,
                name,
                api_key_sha256,
            } => {
                set.accounts.push(*account_id);
                set.api_keys.push(*api_key_sha256);
                if let Some(name) = name {
                    set.names.push(account::name_key(name));
                }
            }
            Command::Credit {
                account_id,
                reference,
                ..
            } => {
                set.accounts.push(*account_id);
                set.credits
                    .push(Sha256::digest(reference.as_bytes()).into());
            }
            Command::Debit {
                account_id,
                reference,
                ..
            } => {
                set.accounts.push(*account_id);
                set.credits
                    .push(Sha256::digest(reference.as_bytes()).into());
                set.account_purchases.push(*account_id);
            }
            Command::Purchase {
                account_id,
                idempotency_key_sha256,
                kid,
                stamp_ids,
                ..
            } => {
                set.accounts.push(*account_id);
                if let Some(key) = idempotency_key_sha256 {
                    set.purchases.push((*account_id, *key));
                }
                if !set.kids.contains(kid) {
                    set.kids.push(*kid);
                }
                set.new_stamps.extend_from_slice(stamp_ids);
            }
            Command::Spend { stamps, spend_for } => {
                set.stamps.extend_from_slice(stamps);
                let payer_of = stamps.first().copied();
                match spend_for {
                    SpendFor::Post { post_id, .. } => {
                        set.posts.push(*post_id);
                        set.recent_posts.extend(payer_of);
                    }
                    SpendFor::Vote { post_id, .. } => {
                        set.posts.push(*post_id);
                        set.voters.extend(payer_of.map(|stamp| (*post_id, stamp)));
                    }
                    SpendFor::Redeem { .. } => {}
                }
            }
            Command::Policy { .. } => {}
            Command::Hold { stamps, .. } => set.stamps.extend_from_slice(stamps),
            Command::Capture { hold_id } | Command::Release { hold_id } => set.holds.push(*hold_id),
        }
    }
    set
}

// The rules' own limits, here and nowhere else: they follow from the ledger's format and the
// prices, not from an operator's choice (those are `config::Limits`). A backend that needs
// one gets it from the rules (`ReadSet::recent_posts_max`), never as a copy.

/// Earlier posts the flood price counts at most: with a factor of 2 or more, 64 of them put
/// the price past `u64::MAX`, so counting further changes nothing and would only cost reads.
pub const RECENT_POSTS_MAX: u64 = 64;

/// Most stamps one purchase or spend may name. Its ledger entry (about 40 bytes a stamp) then
/// stays well below the 64 KiB entry limit, so an oversized command is refused here rather
/// than failing the whole batch as a storage error (which stops the writer). The HTTP limits
/// are lower still (1,000 a purchase, 100 a post or vote).
pub const STAMPS_PER_COMMAND_MAX: usize = 1000;

/// Longest a hold may hold its stamps, in seconds (GATE.md: `ttl_secs` is 1 to 300): long
/// enough for a site to do the work, short enough that stamps a dead gate held come back soon.
pub const HOLD_TTL_SECS_MAX: u64 = 300;

/// Refuses an empty list of stamp ids, one that names a stamp twice (either would write an
/// entry the auditor rejects), or one longer than [`STAMPS_PER_COMMAND_MAX`].
fn distinct_and_present(stamp_ids: &[Uuid]) -> Option<Refusal> {
    if stamp_ids.is_empty() {
        return Some(Refusal::Invalid(InvalidCommand::NoStamps));
    }
    if stamp_ids.len() > STAMPS_PER_COMMAND_MAX {
        return Some(Refusal::Invalid(InvalidCommand::TooManyStamps));
    }
    let mut seen = HashSet::with_capacity(stamp_ids.len());
    if stamp_ids.iter().all(|id| seen.insert(*id)) {
        None
    } else {
        Some(Refusal::Invalid(InvalidCommand::StampNamedTwice))
    }
}
