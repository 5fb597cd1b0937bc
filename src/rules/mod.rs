//! The rules, written once for every store: what each [`Command`] checks, what it refuses,
//! what it writes and which ledger entry it appends.
//!
//! Every backend applies a batch by opening one of its transactions and calling
//! [`apply_batch`] with it; the rules read and write only through [`StoreTx`]. One file per use
//! case: [`account`] (accounts and key events), [`credit`], [`purchase`], [`spend`] (posts,
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
pub mod credit;
pub mod ledger;
pub mod policy;
pub mod price;
pub mod purchase;
pub mod spend;

use std::collections::HashSet;

use uuid::Uuid;

use crate::store::{Applied, Command, Refusal, StoreError, StoreTx};
use crate::time::Timestamp;

/// What the rules need to know beyond the commands: set once when the store is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The currency name written into credit entries.
    pub currency: String,
}

/// Applies `batch` in order through `tx`. A refused command changes nothing and does not stop
/// the others; a storage failure stops the batch, and the backend then discards the whole
/// transaction.
pub fn apply_batch<T: StoreTx + ?Sized>(
    tx: &T,
    settings: &Settings,
    batch: &[Command],
    now: Timestamp,
) -> Result<Vec<Applied>, StoreError> {
    batch
        .iter()
        .map(|command| apply(tx, settings, command, now))
        .collect()
}

/// Applies one command.
pub fn apply<T: StoreTx + ?Sized>(
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
        } => credit::credit(tx, settings, time, *account_id, *amount, reference),
        Command::Purchase { .. } => purchase::purchase(tx, time, command),
        Command::Spend { stamps, spend_for } => spend::spend(tx, time, stamps, spend_for),
        Command::Policy { policy } => policy::publish(tx, time, policy),
    }
}

/// Most stamps one purchase or spend may name. Its ledger entry (about 40 bytes a stamp) then
/// stays well below the 64 KiB entry limit, so an oversized command is refused here rather
/// than failing the whole batch as a storage error (which stops the writer). The HTTP limits
/// are lower still (1,000 a purchase, 100 a post or vote).
pub const STAMPS_PER_COMMAND_MAX: usize = 1000;

/// Refuses an empty list of stamp ids, one that names a stamp twice (either would write an
/// entry the auditor rejects), or one longer than [`STAMPS_PER_COMMAND_MAX`].
fn distinct_and_present(stamp_ids: &[Uuid]) -> Option<Refusal> {
    if stamp_ids.is_empty() {
        return Some(Refusal::Invalid("a command needs at least one stamp"));
    }
    if stamp_ids.len() > STAMPS_PER_COMMAND_MAX {
        return Some(Refusal::Invalid("too many stamps in one command"));
    }
    let mut seen = HashSet::with_capacity(stamp_ids.len());
    if stamp_ids.iter().all(|id| seen.insert(*id)) {
        None
    } else {
        Some(Refusal::Invalid("a stamp is named twice"))
    }
}
