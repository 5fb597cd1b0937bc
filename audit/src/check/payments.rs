//! Money in and out beyond purchases: credits by their `source`, `debit` entries, and the
//! `revoke` spend that must follow a debit leaving its account below zero (invariant 6 as
//! amended and invariant 12 of `docs/ledger.md`).
//!
//! A debit (a card refund, a dispute, an operator's correction) can leave a balance below zero
//! when the money went back after stamps were bought. The server then takes back, in the same
//! transaction, the account's unspent stamps that have not expired: the latest purchase first,
//! and within a purchase from the last of its `stamp_ids` back, until the balance is at least
//! zero or none is left. This module recomputes that list from the entries alone and compares
//! it with the `revoke` entry the server wrote.
//!
//! It owns the state that needs: per account the indexes of its purchases (in log order), one
//! bit per stamp sold saying whether it was spent (in the order sold, so the stamps of one
//! purchase are consecutive bits), the totals by source, and the debit whose revoke the next
//! entry must be. It must not do any I/O.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::entry::{parse_time, uuid_text, DebitEntry, Source, SpendEntry};
use super::ViolationCode;
use super::{Account, LedgerChecker, Money, NOT_SOLD};

/// A debit that left its account below zero: the `revoke` it may owe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PendingDebit {
    pub(super) index: u64,
    pub(super) account: u128,
    pub(super) reference: [u8; 32],
    /// The debit's time, used to judge "unexpired" when the log ends right after it.
    pub(super) time_nanos: i128,
}

/// The state of the payments' checks; its fields are open to `super` and below so that
/// `snapshot` can write them and read them back.
#[derive(Default)]
pub(super) struct Payments {
    /// Credits by source, in the order of [`Source::ALL`].
    pub(super) credits: [u128; 4],
    pub(super) debits_total: u128,
    /// The unit prices of every revoked stamp, as the revokes' `amount`s give them.
    pub(super) revoked_total: u128,
    /// Per account, its purchases as indexes into the checker's groups, oldest first.
    pub(super) purchases: HashMap<u128, Vec<u64>>,
    /// One bit per stamp sold, in the order sold (a group's `first_seq` onwards): set once
    /// the stamp is spent or revoked.
    pub(super) spent_bits: Vec<u64>,
    /// A debit at the entry before that left its account below zero.
    pub(super) pending: Option<PendingDebit>,
    /// The pending debit whose revoke the entry being checked is (set by `expect_revoke`).
    pub(super) matched: Option<PendingDebit>,
}

impl Payments {
    pub(super) fn add_credit(&mut self, source: Source, amount: u128) {
        let slot = &mut self.credits[source.slot()];
        *slot = slot.saturating_add(amount);
    }

    pub(super) fn add_purchase(&mut self, account: u128, group: u64) {
        self.purchases.entry(account).or_default().push(group);
    }

    /// Records stamp number `seq` (in the order sold) as spent.
    pub(super) fn mark_spent(&mut self, seq: u64) {
        let Ok(word) = usize::try_from(seq / 64) else {
            return;
        };
        if self.spent_bits.len() <= word {
            self.spent_bits.resize(word + 1, 0);
        }
        self.spent_bits[word] |= 1 << (seq % 64);
    }

    pub(super) fn is_spent(&self, seq: u64) -> bool {
        usize::try_from(seq / 64)
            .ok()
            .and_then(|word| self.spent_bits.get(word))
            .is_some_and(|bits| bits & (1 << (seq % 64)) != 0)
    }

    /// Credits by source, for the report: every source, zero included.
    pub(super) fn credits_by_source(&self) -> BTreeMap<String, u64> {
        Source::ALL
            .iter()
            .map(|source| {
                let total = self.credits[source.slot()];
                (
                    source.name().to_string(),
                    u64::try_from(total).unwrap_or(u64::MAX),
                )
            })
            .collect()
    }
}

/// Just enough of an entry to tell whether it is the revoke of a given debit.
#[derive(Deserialize)]
struct Peek {
    kind: String,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    target: Option<String>,
    time: String,
}

/// One stamp the revoke rule takes: its purchase (group index) and place in it.
type Revocable = (u64, u32);

impl LedgerChecker {
    pub(super) fn check_debit(&mut self, index: u64, bytes: &[u8], time_nanos: i128) {
        let entry: DebitEntry = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) => return self.malformed(index, e.to_string()),
        };
        let money = Money {
            account: &entry.account,
            amount: entry.amount,
            currency: &entry.currency,
            reference_sha256: &entry.reference_sha256,
        };
        let codes = (
            ViolationCode::NonPositiveDebit,
            ViolationCode::DebitReferenceReused,
            " by a credit or debit",
        );
        let Some((account, reference)) = self.check_money(index, &money, codes) else {
            return;
        };
        let amount = u128::from(entry.amount);
        self.payments.debits_total = self.payments.debits_total.saturating_add(amount);
        let totals = self.accounts.get_or_insert_with(account, Account::default);
        totals.debits = totals.debits.saturating_add(amount);
        if totals.balance() < 0 {
            self.payments.pending = Some(PendingDebit {
                index,
                account,
                reference,
                time_nanos,
            });
        }
    }

    /// Called before every entry is checked: when the entry before was a debit that left its
    /// account below zero, this entry must be its revoke if the account had stamps to take.
    pub(super) fn expect_revoke(&mut self, index: u64, bytes: &[u8]) {
        self.payments.matched = None;
        let Some(debit) = self.payments.pending.take() else {
            return;
        };
        let peek: Option<Peek> = serde_json::from_slice(bytes).ok();
        let target = hex::encode(debit.reference);
        let is_its_revoke = peek.as_ref().is_some_and(|p| {
            p.kind == "spend"
                && p.action.as_deref() == Some("revoke")
                && p.target.as_deref() == Some(target.as_str())
        });
        if is_its_revoke {
            self.payments.matched = Some(debit);
            return;
        }
        let time = peek
            .and_then(|p| parse_time(&p.time))
            .unwrap_or(debit.time_nanos);
        let owed = self.revocable(debit.account, time);
        if !owed.is_empty() {
            let detail = format!(
                "the debit at entry {} left account {} below zero with {} stamps to revoke; entry {index} is not its revoke",
                debit.index,
                uuid_text(debit.account),
                owed.len()
            );
            self.violate(debit.index, ViolationCode::MissingRevoke, detail);
        }
    }

    /// The revoke still owed at the end of the log, if any (for the report).
    pub(super) fn revoke_owed_at_end(&self) -> Option<(u64, String)> {
        let debit = self.payments.pending?;
        let owed = self.revocable(debit.account, debit.time_nanos);
        (!owed.is_empty()).then(|| {
            let detail = format!(
                "the debit at entry {} left account {} below zero with {} stamps to revoke; the log ends before its revoke",
                debit.index,
                uuid_text(debit.account),
                owed.len()
            );
            (debit.index, detail)
        })
    }

    /// Checks a `revoke` spend against the rule, before its stamps are marked spent, and
    /// gives its amount back to the account.
    pub(super) fn check_revoke(
        &mut self,
        index: u64,
        entry: &SpendEntry,
        ids: &[u128],
        time_nanos: i128,
    ) {
        let amount = entry.amount.unwrap_or(0);
        let Some(debit) = self.payments.matched.take() else {
            let detail = format!(
                "target {} is not the reference of a debit at the entry before that left its account below zero",
                entry.target
            );
            return self.violate(index, ViolationCode::WrongRevoke, detail);
        };
        let expected = self.revocable(debit.account, time_nanos);
        let listed: Vec<Option<Revocable>> = ids
            .iter()
            .map(|id| {
                let stamp = self.stamps.get(id)?;
                (stamp.group != NOT_SOLD && !stamp.spent).then_some((stamp.group, stamp.pos))
            })
            .collect();
        let same = listed.len() == expected.len()
            && listed.iter().zip(&expected).all(|(l, e)| *l == Some(*e));
        if !same {
            let first_off = listed
                .iter()
                .zip(&expected)
                .position(|(l, e)| *l != Some(*e))
                .unwrap_or(listed.len().min(expected.len()));
            let detail = format!(
                "revokes {} stamps of account {}, the rule takes {} (first difference at position {first_off})",
                listed.len(),
                uuid_text(debit.account),
                expected.len()
            );
            self.violate(index, ViolationCode::WrongRevoke, detail);
        }
        let worth: u128 = listed
            .iter()
            .flatten()
            .filter_map(|(group, _)| {
                let group = self.groups.get(usize::try_from(*group).ok()?)?;
                Some(u128::from(group.unit_price))
            })
            .sum();
        if worth != u128::from(amount) {
            let detail =
                format!("amount {amount} but the revoked stamps' unit prices sum to {worth}");
            self.violate(index, ViolationCode::WrongRevoke, detail);
        }
        let amount = u128::from(amount);
        self.payments.revoked_total = self.payments.revoked_total.saturating_add(amount);
        let totals = self
            .accounts
            .get_or_insert_with(debit.account, Account::default);
        totals.revoked = totals.revoked.saturating_add(amount);
    }

    /// The stamps the revoke rule takes from `account` at `time_nanos`: its unspent stamps
    /// that have not expired, the latest purchase first and from the last of its stamp ids
    /// back, until its balance is at least zero (none when it already is).
    fn revocable(&self, account: u128, time_nanos: i128) -> Vec<Revocable> {
        let mut balance = self
            .accounts
            .get(&account)
            .map(Account::balance)
            .unwrap_or(0);
        let mut taken = Vec::new();
        if balance >= 0 {
            return taken;
        }
        let Some(purchases) = self.payments.purchases.get(&account) else {
            return taken;
        };
        for &index in purchases.iter().rev() {
            let Some(group) = usize::try_from(index).ok().and_then(|g| self.groups.get(g)) else {
                continue;
            };
            if group.unspent == 0 || group.expires_at_nanos <= time_nanos {
                continue;
            }
            for pos in (0..group.len).rev() {
                if self.payments.is_spent(group.first_seq.saturating_add(pos)) {
                    continue;
                }
                let Ok(pos) = u32::try_from(pos) else {
                    continue;
                };
                taken.push((index, pos));
                balance = balance.saturating_add(i128::from(group.unit_price));
                if balance >= 0 {
                    return taken;
                }
            }
        }
        taken
    }
}
