//! The checker's whole state as compact bytes, so that an auditor can stop after a run and go
//! on later from where it stopped, checking only the entries appended since
//! ([`LedgerChecker::to_snapshot`], [`LedgerChecker::from_snapshot`]).
//!
//! It owns the byte layout: little-endian fixed-width fields, each collection as a `u64` count
//! followed by fixed-width records (strings as a `u32` length and UTF-8), in the order below,
//! starting with [`SNAPSHOT_MAGIC`] and [`SNAPSHOT_VERSION`]. Every map is written in key order,
//! so that it reads back as the sorted part of a `Layered` map in one pass, with no hashing: a
//! checker of a million stamps is ready in milliseconds. Stamps, by far the largest part (one
//! per stamp sold), take 24 bytes each: the id, its purchase's index with the "spent" flag
//! in the top bit (`u32`; `u64` in the unlikely log of 2^31 purchases or more), and its place
//! in that purchase (`u32`). Version 2 added the payments' state (debits, revokes, credits by
//! source); a version 1 snapshot is refused, and the auditor checks the log again from the
//! start.
//!
//! No hand-written format would be needed with a serialization crate, but none is in the
//! workspace's lock file (no bincode, no postcard), serde's derives would have to reach every
//! private type of the checker, and this layout is short enough to read here whole.
//!
//! It must not do I/O, and never panics on any input: a snapshot that is truncated, too long,
//! of another version or inconsistent (a key listed twice or out of order, a count larger than
//! the bytes left) is refused with a [`SnapshotError`]. It holds no checksum: the file that
//! carries it does (`crate::state`), and also binds it to the checkpoint it was taken at.
//! Pending violations are kept too, so that a restored checker reports exactly what the original
//! would; the auditor only saves a state in which none was found.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash as StdHash;

use tlog_tiles::Hash;

use super::economy::{Economy, ExpectedRefund, PayerPosts, Policy, Post};
use super::entry::{KeyStatus, VotePricing};
use super::layered::Layered;
use super::payments::{Payments, PendingDebit};
use super::{Account, Group, LedgerChecker, Stamp, Violation, NOT_SOLD};

/// The first bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"ppcheck\n";
/// The layout written here; a snapshot of another version is refused (then the auditor checks
/// the whole log again). Raise it whenever a field is added, removed or changes meaning.
pub const SNAPSHOT_VERSION: u32 = 2;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Occurs when the bytes do not start with [`SNAPSHOT_MAGIC`].
    #[error("not a checker snapshot")]
    NotASnapshot,
    /// Occurs when the snapshot was written by another layout.
    #[error("checker snapshot version {0}, this auditor reads version {SNAPSHOT_VERSION}")]
    Version(u32),
    /// Occurs when the bytes end before the snapshot does.
    #[error("checker snapshot truncated")]
    Truncated,
    /// Occurs when the fields read do not make a checker's state.
    #[error("checker snapshot invalid: {0}")]
    Invalid(&'static str),
}

/// Appends fixed-width little-endian fields.
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i128(&mut self, v: i128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    fn count(&mut self, n: usize) {
        self.u64(u64::try_from(n).unwrap_or(u64::MAX));
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn str(&mut self, v: &str) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.bytes(v.as_bytes());
    }
}

/// Reads what [`Writer`] wrote, refusing anything short or out of range.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.rest.len() < n {
            return Err(SnapshotError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn u128(&mut self) -> Result<u128, SnapshotError> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    fn i128(&mut self) -> Result<i128, SnapshotError> {
        Ok(i128::from_le_bytes(self.array()?))
    }
    fn bool(&mut self) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(SnapshotError::Invalid("a flag is neither 0 nor 1")),
        }
    }
    /// A count of records of at least `record_bytes` each: never more than the bytes left can
    /// hold, so a damaged count cannot make a reader allocate without bound.
    fn count(&mut self, record_bytes: usize) -> Result<usize, SnapshotError> {
        let n = usize::try_from(self.u64()?).map_err(|_| SnapshotError::Truncated)?;
        if n.saturating_mul(record_bytes.max(1)) > self.rest.len() {
            return Err(SnapshotError::Truncated);
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String, SnapshotError> {
        let n = usize::try_from(self.u32()?).map_err(|_| SnapshotError::Truncated)?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| SnapshotError::Invalid("a text is not UTF-8"))
    }
}

/// An optional value: a flag, then the value when the flag is set.
fn optional<T>(
    r: &mut Reader,
    read: impl FnOnce(&mut Reader) -> Result<T, SnapshotError>,
) -> Result<Option<T>, SnapshotError> {
    if r.bool()? {
        read(r).map(Some)
    } else {
        Ok(None)
    }
}

fn insert_new_in_set<K: StdHash + Eq>(
    set: &mut HashSet<K>,
    key: K,
    what: &'static str,
) -> Result<(), SnapshotError> {
    if set.insert(key) {
        Ok(())
    } else {
        Err(SnapshotError::Invalid(what))
    }
}

/// Writes `map` in key order: its count, then `put` for each entry.
fn write_map<K: Ord + StdHash + Copy, V>(
    w: &mut Writer,
    map: &Layered<K, V>,
    mut put: impl FnMut(&mut Writer, &K, &V),
) {
    let entries = map.sorted();
    w.count(entries.len());
    for (key, value) in entries {
        put(w, key, value);
    }
}

/// Reads what [`write_map`] wrote (records of at least `record_bytes`) with `get`; refuses keys
/// out of order or listed twice, naming `what`.
fn read_map<K: Ord + StdHash + Copy, V>(
    r: &mut Reader,
    record_bytes: usize,
    what: &'static str,
    mut get: impl FnMut(&mut Reader) -> Result<(K, V), SnapshotError>,
) -> Result<Layered<K, V>, SnapshotError> {
    let n = r.count(record_bytes)?;
    let (mut keys, mut values) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let (key, value) = get(r)?;
        keys.push(key);
        values.push(value);
    }
    Layered::from_sorted(keys, values).ok_or(SnapshotError::Invalid(what))
}

/// The top bit of a stamp's packed purchase index: it is spent.
const SPENT_4: u32 = 1 << 31;
const SPENT_8: u64 = 1 << 63;
/// The packed index of a stamp spent but never sold ([`NOT_SOLD`]).
const NOT_SOLD_4: u32 = SPENT_4 - 1;
const NOT_SOLD_8: u64 = SPENT_8 - 1;

/// Writes the stamps in id order: the width of a packed index (4 or 8), then per stamp its id
/// and its purchase's index with the spent flag in the top bit. (An index at or past the
/// width's [`NOT_SOLD`] mark cannot come from entries: 4 bytes are used only while the
/// purchases are fewer.)
fn write_stamps(w: &mut Writer, stamps: &Layered<u128, Stamp>, narrow: bool) {
    w.u8(if narrow { 4 } else { 8 });
    write_map(w, stamps, |w, &id, stamp| {
        w.u128(id);
        if narrow {
            let group = u32::try_from(stamp.group)
                .ok()
                .filter(|&g| g < NOT_SOLD_4)
                .unwrap_or(NOT_SOLD_4);
            w.u32(group | if stamp.spent { SPENT_4 } else { 0 });
        } else {
            let group = stamp.group.min(NOT_SOLD_8);
            w.u64(group | if stamp.spent { SPENT_8 } else { 0 });
        }
        w.u32(stamp.pos);
    });
}

fn read_stamps(r: &mut Reader) -> Result<Layered<u128, Stamp>, SnapshotError> {
    match r.u8()? {
        4 => read_map(r, 24, "stamp ids out of order", |r| {
            let id = r.u128()?;
            let packed = r.u32()?;
            let group = match packed & !SPENT_4 {
                NOT_SOLD_4 => NOT_SOLD,
                group => u64::from(group),
            };
            let spent = packed & SPENT_4 != 0;
            let pos = r.u32()?;
            Ok((id, Stamp { group, spent, pos }))
        }),
        8 => read_map(r, 28, "stamp ids out of order", |r| {
            let id = r.u128()?;
            let packed = r.u64()?;
            let group = match packed & !SPENT_8 {
                NOT_SOLD_8 => NOT_SOLD,
                group => group,
            };
            let spent = packed & SPENT_8 != 0;
            let pos = r.u32()?;
            Ok((id, Stamp { group, spent, pos }))
        }),
        _ => Err(SnapshotError::Invalid(
            "the width of a stamp record is not 4 or 8",
        )),
    }
}

impl LedgerChecker {
    /// The whole state of the check so far, in the compact layout of this module: what
    /// [`LedgerChecker::from_snapshot`] reads back into a checker that goes on exactly as this
    /// one would (same root, totals and violations for whatever is pushed next).
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(
            self.stamps.len().saturating_mul(20) + 4096,
        ));
        w.bytes(&SNAPSHOT_MAGIC);
        w.u32(SNAPSHOT_VERSION);
        w.u64(self.size);
        w.count(self.stack.len());
        for hash in &self.stack {
            w.bytes(&hash.0);
        }
        w.bool(self.prev_time_nanos.is_some());
        w.i128(self.prev_time_nanos.unwrap_or(0));

        let mut keys: Vec<_> = self.keys.iter().collect();
        keys.sort_unstable_by_key(|(kid, _)| **kid);
        w.count(keys.len());
        for (kid, (public_key, status)) in keys {
            w.bytes(kid);
            w.bytes(public_key);
            w.bool(*status == KeyStatus::Active);
        }
        write_map(&mut w, &self.accounts, |w, &id, account| {
            w.u128(id);
            w.u128(account.credits);
            w.u128(account.purchases);
            w.u128(account.refunds);
            w.u128(account.debits);
            w.u128(account.revoked);
        });
        write_map(&mut w, &self.references, |w, reference, ()| {
            w.bytes(reference)
        });
        write_map(&mut w, &self.purchase_ids, |w, &id, ()| w.u128(id));
        w.count(self.groups.len());
        for group in &self.groups {
            w.i128(group.expires_at_nanos);
            w.u64(group.unspent);
            w.u128(group.payer);
            w.u64(group.unit_price);
            w.u64(group.first_seq);
            w.u64(group.len);
        }
        let narrow = u32::try_from(self.groups.len()).is_ok_and(|g| g < NOT_SOLD_4);
        write_stamps(&mut w, &self.stamps, narrow);

        w.u64(self.stamps_issued);
        w.u64(self.stamps_spent);
        w.u128(self.credits_total);
        w.u128(self.purchases_total);
        w.u64(self.violations_total);
        w.count(self.violations.len());
        for violation in &self.violations {
            w.u64(violation.index);
            w.str(&violation.code);
            w.str(&violation.detail);
        }
        write_economy(&mut w, &self.economy);
        write_payments(&mut w, &self.payments);
        w.0
    }

    /// Reads a snapshot written by [`LedgerChecker::to_snapshot`] (of this
    /// [`SNAPSHOT_VERSION`]). Never panics; refuses bytes that are not exactly one snapshot.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let mut r = Reader { rest: bytes };
        if r.take(SNAPSHOT_MAGIC.len()).ok() != Some(&SNAPSHOT_MAGIC[..]) {
            return Err(SnapshotError::NotASnapshot);
        }
        let version = r.u32()?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(version));
        }
        let mut checker = Self {
            size: r.u64()?,
            ..Self::default()
        };
        let n = r.count(32)?;
        for _ in 0..n {
            checker.stack.push(Hash(r.array()?));
        }
        // One subtree root per set bit of the size, as `append_leaf` keeps them.
        if u32::try_from(n).ok() != Some(checker.size.count_ones()) {
            return Err(SnapshotError::Invalid(
                "the Merkle stack does not fit the size",
            ));
        }
        let has_time = r.bool()?;
        let time = r.i128()?;
        checker.prev_time_nanos = has_time.then_some(time);

        let n = r.count(41)?;
        checker.keys.reserve(n);
        for _ in 0..n {
            let kid = r.array::<8>()?;
            let public_key = r.array::<32>()?;
            let status = if r.bool()? {
                KeyStatus::Active
            } else {
                KeyStatus::Retired
            };
            if checker.keys.insert(kid, (public_key, status)).is_some() {
                return Err(SnapshotError::Invalid("a kid twice"));
            }
        }
        checker.accounts = read_map(&mut r, 96, "accounts out of order", |r| {
            let id = r.u128()?;
            let account = Account {
                credits: r.u128()?,
                purchases: r.u128()?,
                refunds: r.u128()?,
                debits: r.u128()?,
                revoked: r.u128()?,
            };
            Ok((id, account))
        })?;
        checker.references = read_map(&mut r, 32, "references out of order", |r| {
            Ok((r.array::<32>()?, ()))
        })?;
        checker.purchase_ids = read_map(&mut r, 16, "purchase ids out of order", |r| {
            Ok((r.u128()?, ()))
        })?;
        let n = r.count(64)?;
        checker.groups.reserve(n);
        for _ in 0..n {
            checker.groups.push(Group {
                expires_at_nanos: r.i128()?,
                unspent: r.u64()?,
                payer: r.u128()?,
                unit_price: r.u64()?,
                first_seq: r.u64()?,
                len: r.u64()?,
            });
        }
        checker.stamps = read_stamps(&mut r)?;

        checker.stamps_issued = r.u64()?;
        checker.stamps_spent = r.u64()?;
        checker.credits_total = r.u128()?;
        checker.purchases_total = r.u128()?;
        checker.violations_total = r.u64()?;
        let n = r.count(16)?;
        for _ in 0..n {
            checker.violations.push(Violation {
                index: r.u64()?,
                code: r.string()?,
                detail: r.string()?,
            });
        }
        checker.economy = read_economy(&mut r)?;
        checker.payments = read_payments(&mut r)?;
        if !r.rest.is_empty() {
            return Err(SnapshotError::Invalid("bytes after the end"));
        }
        Ok(checker)
    }
}

fn write_refund(w: &mut Writer, refund: &ExpectedRefund) {
    w.u64(refund.vote_index);
    w.u128(refund.post);
    w.u128(refund.payer);
    w.u128(refund.amount);
    w.str(&refund.currency);
    w.u64(refund.voters);
}

fn read_refund(r: &mut Reader) -> Result<ExpectedRefund, SnapshotError> {
    Ok(ExpectedRefund {
        vote_index: r.u64()?,
        post: r.u128()?,
        payer: r.u128()?,
        amount: r.u128()?,
        currency: r.string()?,
        voters: r.u64()?,
    })
}

/// The economy's state; `matched` is not written: it only lives while one entry is checked.
fn write_economy(w: &mut Writer, economy: &Economy) {
    w.bool(economy.policy.is_some());
    if let Some(policy) = &economy.policy {
        w.str(&policy.currency);
        w.u64(policy.post_cost);
        w.u64(policy.vote_cost);
        w.u64(policy.repeat_window_secs);
        w.u64(policy.repeat_factor);
        w.bool(policy.vote_pricing == VotePricing::Quadratic);
        w.u64(policy.refund_voters);
    }
    write_map(w, &economy.payer_posts, |w, &payer, posts| {
        w.u128(payer);
        w.u64(posts.forgotten);
        w.i64(posts.forgotten_latest);
        w.count(posts.recent.len());
        for &time in &posts.recent {
            w.i64(time);
        }
    });
    write_map(w, &economy.votes, |w, &(payer, post), &votes| {
        w.u128(payer);
        w.u128(post);
        w.u64(votes);
    });
    write_map(w, &economy.posts, |w, &id, post| {
        w.u128(id);
        w.u128(post.payer);
        w.u128(post.base_postage);
        w.bool(post.refunded);
        w.count(post.up_voters.len());
        for &voter in &post.up_voters {
            w.u128(voter);
        }
    });
    w.bool(economy.pending.is_some());
    if let Some(pending) = &economy.pending {
        write_refund(w, pending);
    }
    w.u128(economy.refunds_total);
}

fn read_economy(r: &mut Reader) -> Result<Economy, SnapshotError> {
    let policy = optional(r, |r| {
        Ok(Policy {
            currency: r.string()?,
            post_cost: r.u64()?,
            vote_cost: r.u64()?,
            repeat_window_secs: r.u64()?,
            repeat_factor: r.u64()?,
            vote_pricing: if r.bool()? {
                VotePricing::Quadratic
            } else {
                VotePricing::Flat
            },
            refund_voters: r.u64()?,
        })
    })?;
    let payer_posts = read_map(r, 40, "payers out of order", |r| {
        let payer = r.u128()?;
        let forgotten = r.u64()?;
        let forgotten_latest = r.i64()?;
        let times = r.count(8)?;
        let mut recent = VecDeque::with_capacity(times);
        for _ in 0..times {
            recent.push_back(r.i64()?);
        }
        let posts = PayerPosts {
            recent,
            forgotten,
            forgotten_latest,
        };
        Ok((payer, posts))
    })?;
    let votes = read_map(r, 40, "(payer, post) pairs out of order", |r| {
        Ok(((r.u128()?, r.u128()?), r.u64()?))
    })?;
    let posts = read_map(r, 57, "posts out of order", |r| {
        let id = r.u128()?;
        let payer = r.u128()?;
        let base_postage = r.u128()?;
        let refunded = r.bool()?;
        let voters = r.count(16)?;
        let mut up_voters = HashSet::with_capacity(voters);
        for _ in 0..voters {
            insert_new_in_set(&mut up_voters, r.u128()?, "an up-voter twice")?;
        }
        let post = Post {
            payer,
            base_postage,
            refunded,
            up_voters,
        };
        Ok((id, post))
    })?;
    Ok(Economy {
        policy,
        payer_posts,
        votes,
        posts,
        pending: optional(r, read_refund)?,
        matched: None,
        refunds_total: r.u128()?,
    })
}

/// The payments' state; `matched` is not written: it only lives while one entry is checked.
fn write_payments(w: &mut Writer, payments: &Payments) {
    for total in payments.credits {
        w.u128(total);
    }
    w.u128(payments.debits_total);
    w.u128(payments.revoked_total);
    let mut accounts: Vec<_> = payments.purchases.iter().collect();
    accounts.sort_unstable_by_key(|(account, _)| **account);
    w.count(accounts.len());
    for (account, groups) in accounts {
        w.u128(*account);
        w.count(groups.len());
        for &group in groups {
            w.u64(group);
        }
    }
    w.count(payments.spent_bits.len());
    for &word in &payments.spent_bits {
        w.u64(word);
    }
    w.bool(payments.pending.is_some());
    if let Some(debit) = &payments.pending {
        w.u64(debit.index);
        w.u128(debit.account);
        w.bytes(&debit.reference);
        w.i128(debit.time_nanos);
    }
}

fn read_payments(r: &mut Reader) -> Result<Payments, SnapshotError> {
    let mut payments = Payments::default();
    for total in &mut payments.credits {
        *total = r.u128()?;
    }
    payments.debits_total = r.u128()?;
    payments.revoked_total = r.u128()?;
    let n = r.count(24)?;
    payments.purchases.reserve(n);
    let mut previous = None;
    for _ in 0..n {
        let account = r.u128()?;
        if previous.is_some_and(|p| p >= account) {
            return Err(SnapshotError::Invalid("purchasing accounts out of order"));
        }
        previous = Some(account);
        let groups = r.count(8)?;
        let mut list = Vec::with_capacity(groups);
        for _ in 0..groups {
            list.push(r.u64()?);
        }
        payments.purchases.insert(account, list);
    }
    let words = r.count(8)?;
    payments.spent_bits.reserve(words);
    for _ in 0..words {
        payments.spent_bits.push(r.u64()?);
    }
    payments.pending = optional(r, |r| {
        Ok(PendingDebit {
            index: r.u64()?,
            account: r.u128()?,
            reference: r.array()?,
            time_nanos: r.i128()?,
        })
    })?;
    Ok(payments)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// The 8-byte records, which only a log of 2^31 purchases or more would need.
    #[test]
    fn wide_stamp_records_read_back() {
        let mut stamps: Layered<u128, Stamp> = Layered::default();
        let cases = [
            (7, 0, false),
            (3, 1 << 40, true),
            (9, NOT_SOLD, true),
            (1, NOT_SOLD_8 - 1, false),
        ];
        for (id, group, spent) in cases {
            stamps.insert_new(
                id,
                Stamp {
                    group,
                    spent,
                    pos: 3,
                },
            );
        }
        for narrow in [false, true] {
            let mut w = Writer(Vec::new());
            write_stamps(&mut w, &stamps, narrow);
            let mut r = Reader { rest: &w.0 };
            let back = read_stamps(&mut r).expect("read");
            assert!(r.rest.is_empty());
            for (id, group, spent) in cases {
                let stamp = back.get(&id).expect("stamp");
                let want = match (narrow, group) {
                    (true, g) if g >= u64::from(NOT_SOLD_4) => NOT_SOLD,
                    (_, g) => g,
                };
                assert_eq!(
                    (stamp.group, stamp.spent),
                    (want, spent),
                    "{id} narrow {narrow}"
                );
            }
        }
    }
}
