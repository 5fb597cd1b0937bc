//! The streaming ledger checker: recomputes the Merkle tree head and every total of the stamp
//! ledger from its entries, and reports each broken invariant of `docs/ledger.md`
//! ("Invariants", 1 and 3 to 11) with the index of the entry where it shows.
//!
//! It owns: parsing entries strictly as the server writes them, the O(log n) Merkle stack, and
//! the state the invariants need (stamp ids with their purchase's payer and unit price,
//! accounts, keys, credit references, and the economy's state of `economy`), all bounded by the
//! log itself, with the stored violations capped at [`VIOLATIONS_MAX`]. Each entry costs time
//! in proportion to its size (amortized), so a check is linear in the log.
//!
//! It must not do any I/O: no files, no network, no clock (the caller passes `now` to
//! [`LedgerChecker::report`]). It never panics on any input, and never re-serializes an entry:
//! it hashes exactly the bytes it is given. Checkpoint signatures and proofs are not checked
//! here (see `checkpoint`); the caller compares [`LedgerChecker::root`] with a checkpoint.
//!
//! Parts: `entry` parses the fields of each kind, `economy` checks prices and refunds
//! (invariants 8 to 10), `report` holds what a check finds, [`code`] names the stable violation
//! codes ([`ViolationCode`]), `snapshot` writes the whole state as bytes and reads it back (so a check can stop and
//! go on later); the unit tests are in `tests.rs`, `tests_economy.rs` and `tests_snapshot.rs`.

pub mod code;
mod economy;
mod entry;
mod layered;
mod payments;
mod report;
mod snapshot;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_economy;
#[cfg(test)]
mod tests_payments;
#[cfg(test)]
mod tests_snapshot;

use std::collections::{HashMap, HashSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tlog_tiles::{node_hash, record_hash, Hash, EMPTY_HASH};

pub use self::code::ViolationCode;
use self::economy::{Economy, PricedSpend};
use self::entry::{
    parse_hex, parse_time, parse_uuid, parse_uuids, uuid_text, Common, CreditEntry, KeyEntry,
    KeyStatus, PurchaseEntry, Source, SpendAction, SpendEntry,
};
use self::layered::Layered;
use self::payments::Payments;
pub use self::report::{AuditReport, Violation};
pub use self::snapshot::{SnapshotError, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use crate::ENTRY_BYTES_MAX;

/// Most violations a report lists; past it they are only counted (`violations_total`), so a
/// hostile log cannot make the checker's memory grow with its violations.
pub const VIOLATIONS_MAX: usize = 1000;

/// Longest `detail` text of a violation, in characters; echoed input is clipped to it.
const DETAIL_CHARS_MAX: usize = 200;

/// Marks a stamp id that was spent but never sold (no purchase group).
const NOT_SOLD: u64 = u64::MAX;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// What is known of one stamp id.
#[derive(Clone, Copy)]
struct Stamp {
    /// Index into `groups`, or [`NOT_SOLD`].
    group: u64,
    spent: bool,
    /// Its place among the stamps its purchase sold (0 for the first of `stamp_ids`): a
    /// revoke takes them from the last back (invariant 12).
    pos: u32,
}

/// The stamps of one purchase share an expiry, a payer (the purchase's `account`) and a unit
/// price; `unspent` counts those not yet spent. They were sold as stamps number `first_seq`
/// to `first_seq + len - 1` of the log (the bits of `LedgerChecker::spent_bits`).
#[derive(Clone, Copy)]
struct Group {
    expires_at_nanos: i128,
    unspent: u64,
    payer: u128,
    unit_price: u64,
    first_seq: u64,
    len: u64,
}

/// Money in and out of one account, in minor units (u128: a sum of u64 amounts cannot
/// overflow it).
#[derive(Clone, Copy, Default)]
struct Account {
    credits: u128,
    purchases: u128,
    refunds: u128,
    /// Money that went back out (`debit` entries).
    debits: u128,
    /// The unit prices of its stamps revoked after debits, given back to the balance.
    revoked: u128,
}

/// The fields a `credit` and a `debit` entry share, as written.
struct Money<'a> {
    account: &'a str,
    amount: u64,
    currency: &'a str,
    reference_sha256: &'a str,
}

impl Account {
    /// What it may still spend: credits, refunds and revoked stamps less purchases and
    /// debits. Below zero after a debit that its unspent stamps could not cover (a debt).
    fn balance(&self) -> i128 {
        let plus = self
            .credits
            .saturating_add(self.refunds)
            .saturating_add(self.revoked);
        let minus = self.purchases.saturating_add(self.debits);
        let wide = |v: u128| i128::try_from(v).unwrap_or(i128::MAX);
        wide(plus).saturating_sub(wide(minus))
    }
}

/// Streaming state of a ledger check: push every entry in order, then ask for the root or a
/// report. Memory grows with distinct stamp ids, accounts, keys, purchases and credit
/// references, and for the economy with posts, (payer, post) pairs that voted, each unrefunded
/// post's distinct up-voters and each payer's posts inside the window; never with the entries'
/// bytes.
#[derive(Default)]
pub struct LedgerChecker {
    size: u64,
    /// Roots of the perfect subtrees covering `0..size`, left to right (one per set bit).
    stack: Vec<Hash>,
    prev_time_nanos: Option<i128>,
    /// Every published key: its public key and last status.
    keys: HashMap<[u8; 8], ([u8; 32], KeyStatus)>,
    accounts: Layered<u128, Account>,
    references: Layered<[u8; 32], ()>,
    purchase_ids: Layered<u128, ()>,
    stamps: Layered<u128, Stamp>,
    groups: Vec<Group>,
    stamps_issued: u64,
    stamps_spent: u64,
    credits_total: u128,
    purchases_total: u128,
    violations: Vec<Violation>,
    violations_total: u64,
    economy: Economy,
    /// Money in and out by source, and the revocations debits caused (`payments`).
    payments: Payments,
}

impl LedgerChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next entry, exactly the bytes that were hashed into the log (no trailing
    /// newline). Never panics on any input; malformed entries become violations.
    pub fn push(&mut self, entry_bytes: &[u8]) {
        let index = self.size;
        self.append_leaf(record_hash(entry_bytes));
        self.size = self.size.saturating_add(1);
        self.expect_refund(index, entry_bytes);
        self.expect_revoke(index, entry_bytes);
        self.check_entry(index, entry_bytes);
    }

    /// Number of entries pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// RFC 9162 Merkle tree head of everything pushed so far ([`EMPTY_HASH`] for none).
    pub fn root(&self) -> Hash {
        let mut subtrees = self.stack.iter().rev();
        let Some(mut hash) = subtrees.next().copied() else {
            return EMPTY_HASH;
        };
        for left in subtrees {
            hash = node_hash(*left, hash);
        }
        hash
    }

    /// Totals and violations as of now (`now_unix` in seconds; used only for "expired": a
    /// stamp sold, never spent and whose `expires_at <= now`).
    pub fn report(&self, now_unix: i64) -> AuditReport {
        let now_nanos = i128::from(now_unix).saturating_mul(NANOS_PER_SEC);
        let (mut outstanding, mut expired) = (0u64, 0u64);
        for group in &self.groups {
            if group.expires_at_nanos <= now_nanos {
                expired = expired.saturating_add(group.unspent);
            } else {
                outstanding = outstanding.saturating_add(group.unspent);
            }
        }
        let mut violations = self.violations.clone();
        let mut violations_total = self.violations_total;
        let owed_at_end = [
            self.refund_owed_at_end()
                .map(|(index, detail)| (index, ViolationCode::MissingRefund, detail)),
            self.revoke_owed_at_end()
                .map(|(index, detail)| (index, ViolationCode::MissingRevoke, detail)),
        ];
        for (index, code, detail) in owed_at_end.into_iter().flatten() {
            violations_total = violations_total.saturating_add(1);
            if violations.len() < VIOLATIONS_MAX {
                violations.push(Violation {
                    index,
                    code,
                    detail: clip(&detail),
                });
            }
        }
        AuditReport {
            ok: violations_total == 0,
            ledger_size: self.size,
            stamps_issued: self.stamps_issued,
            stamps_spent: self.stamps_spent,
            stamps_outstanding: outstanding,
            stamps_expired: expired,
            credits_total: saturate(self.credits_total),
            purchases_total: saturate(self.purchases_total),
            refunds_total: saturate(self.economy.refunds_total),
            debits_total: saturate(self.payments.debits_total),
            revoked_total: saturate(self.payments.revoked_total),
            credits_by_source: self.payments.credits_by_source(),
            violations,
            violations_total,
        }
    }

    /// Adds a leaf: each trailing one bit of the old size completes a subtree, merged with the
    /// subtree hash on top of the stack.
    fn append_leaf(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut n = self.size;
        while n & 1 == 1 {
            let Some(left) = self.stack.pop() else {
                break;
            };
            hash = node_hash(left, hash);
            n >>= 1;
        }
        self.stack.push(hash);
    }

    fn violate(&mut self, index: u64, code: ViolationCode, detail: impl AsRef<str>) {
        self.violations_total = self.violations_total.saturating_add(1);
        if self.violations.len() < VIOLATIONS_MAX {
            self.violations.push(Violation {
                index,
                code,
                detail: clip(detail.as_ref()),
            });
        }
    }

    fn malformed(&mut self, index: u64, detail: impl AsRef<str>) {
        self.violate(index, ViolationCode::MalformedEntry, detail);
    }

    fn check_entry(&mut self, index: u64, bytes: &[u8]) {
        if bytes.len() > ENTRY_BYTES_MAX {
            let detail = format!("{} bytes, more than {ENTRY_BYTES_MAX}", bytes.len());
            return self.malformed(index, detail);
        }
        if bytes.first() != Some(&b'{') || bytes.last() != Some(&b'}') {
            return self.malformed(index, "not a single JSON object without surrounding space");
        }
        let common: Common = match serde_json::from_slice(bytes) {
            Ok(common) => common,
            Err(e) => return self.malformed(index, e.to_string()),
        };
        if common.v != 1 {
            return self.malformed(index, format!("v is {}, not 1", common.v));
        }
        if common.index != index {
            let detail = format!("index is {}, at position {index}", common.index);
            self.violate(index, ViolationCode::IndexGap, detail);
        }
        let Some(time) = parse_time(&common.time) else {
            let detail = format!("time {:?} is not RFC 3339", common.time);
            return self.malformed(index, detail);
        };
        if let Some(prev) = self.prev_time_nanos {
            if time < prev {
                let detail = format!("time {} is earlier than the previous entry's", common.time);
                self.violate(index, ViolationCode::TimeBackwards, detail);
            }
        }
        self.prev_time_nanos = Some(time);
        match common.kind.as_str() {
            "key" => self.check_key(index, bytes),
            "credit" => self.check_credit(index, bytes),
            "purchase" => self.check_purchase(index, bytes),
            "spend" => self.check_spend(index, bytes, time),
            "policy" => self.check_policy(index, bytes),
            "refund" => self.check_refund(index, bytes),
            "debit" => self.check_debit(index, bytes, time),
            other => {
                let detail = format!("kind {other:?}");
                self.violate(index, ViolationCode::UnknownKind, detail);
            }
        }
    }

    fn check_key(&mut self, index: u64, bytes: &[u8]) {
        let entry: KeyEntry = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) => return self.malformed(index, e.to_string()),
        };
        let Some(kid) = parse_hex::<8>(&entry.kid) else {
            return self.malformed(index, "kid is not 16 lowercase hex digits");
        };
        let public_key = match URL_SAFE_NO_PAD.decode(entry.public_key.as_bytes()) {
            Ok(key) if key.len() == 32 => key,
            _ => return self.malformed(index, "public_key is not 32 bytes of base64url"),
        };
        let public_key: [u8; 32] = match public_key.try_into() {
            Ok(key) => key,
            Err(_) => return self.malformed(index, "public_key is not 32 bytes"),
        };
        // Invariant 11: a published kid keeps its public key. Checked before the kid itself,
        // because a changed key under a published kid has the old key's kid, not its own.
        let changed = self
            .keys
            .get(&kid)
            .is_some_and(|(known, _)| *known != public_key);
        if changed {
            let detail = format!("kid {} was published with another public key", entry.kid);
            self.violate(index, ViolationCode::KeyChanged, detail);
        }
        let digest = Sha256::digest(public_key);
        if digest.get(..8) != Some(&kid[..]) {
            let detail = format!("kid {} is not SHA-256(public_key)[..8]", entry.kid);
            return self.violate(index, ViolationCode::KeyIdMismatch, detail);
        }
        if changed {
            return;
        }
        self.keys.insert(kid, (public_key, entry.status));
        let active: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, (_, status))| *status == KeyStatus::Active)
            .map(|(kid, _)| hex::encode(kid))
            .collect();
        if active.len() > 1 {
            let mut active = active;
            active.sort();
            let detail = format!("keys {} are all active", active.join(", "));
            self.violate(index, ViolationCode::TwoActiveKeys, detail);
        }
    }

    fn check_credit(&mut self, index: u64, bytes: &[u8]) {
        let entry: CreditEntry = match serde_json::from_slice(bytes) {
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
            ViolationCode::NonPositiveCredit,
            ViolationCode::CreditReferenceReused,
            "",
        );
        let Some((account, _)) = self.check_money(index, &money, codes) else {
            return;
        };
        let amount = u128::from(entry.amount);
        let totals = self.accounts.get_or_insert_with(account, Account::default);
        totals.credits = totals.credits.saturating_add(amount);
        self.credits_total = self.credits_total.saturating_add(amount);
        let source = entry.source.unwrap_or(Source::Operator);
        self.payments.add_credit(source, amount);
    }

    /// The fields a credit and a debit share: an account, a currency, a positive amount
    /// (else `zero`) and a reference unique among credits and debits (else `reused`, whose
    /// detail ends with `reused_by`). Gives the account and the reference's bytes; `None` when
    /// the entry is malformed (reported).
    fn check_money(
        &mut self,
        index: u64,
        money: &Money<'_>,
        (zero, reused, reused_by): (ViolationCode, ViolationCode, &str),
    ) -> Option<(u128, [u8; 32])> {
        let Some(account) = parse_uuid(money.account) else {
            self.malformed(index, "account is not a lowercase hyphenated uuid");
            return None;
        };
        if money.currency.is_empty() {
            self.malformed(index, "currency is empty");
            return None;
        }
        let Some(reference) = parse_hex::<32>(money.reference_sha256) else {
            self.malformed(index, "reference_sha256 is not 64 lowercase hex digits");
            return None;
        };
        if money.amount == 0 {
            self.violate(index, zero, "amount is 0");
        }
        if !self.references.insert_new(reference, ()) {
            let detail = format!(
                "reference_sha256 {} was used before{reused_by}",
                money.reference_sha256
            );
            self.violate(index, reused, detail);
        }
        Some((account, reference))
    }

    fn check_purchase(&mut self, index: u64, bytes: &[u8]) {
        let entry: PurchaseEntry = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) => return self.malformed(index, e.to_string()),
        };
        let Some(account) = parse_uuid(&entry.account) else {
            return self.malformed(index, "account is not a lowercase hyphenated uuid");
        };
        let Some(purchase_id) = parse_uuid(&entry.purchase_id) else {
            return self.malformed(index, "purchase_id is not a lowercase hyphenated uuid");
        };
        let Some(kid) = parse_hex::<8>(&entry.kid) else {
            return self.malformed(index, "kid is not 16 lowercase hex digits");
        };
        if parse_time(&entry.issued_at).is_none() {
            return self.malformed(index, "issued_at is not RFC 3339");
        }
        let Some(expires_at) = parse_time(&entry.expires_at) else {
            return self.malformed(index, "expires_at is not RFC 3339");
        };
        let Some(ids) = parse_uuids(&entry.stamp_ids) else {
            return self.malformed(index, "a stamp id is not a lowercase hyphenated uuid");
        };

        if !self.purchase_ids.insert_new(purchase_id, ()) {
            let detail = format!("purchase_id {} was used before", entry.purchase_id);
            self.violate(index, ViolationCode::PurchaseIdReused, detail);
        }
        let listed = u64::try_from(ids.len()).unwrap_or(u64::MAX);
        if entry.count != listed {
            let detail = format!("count {} but {listed} stamp_ids", entry.count);
            self.violate(index, ViolationCode::PurchaseCountMismatch, detail);
        }
        match entry.count.checked_mul(entry.unit_price) {
            Some(product) if product == entry.total => {}
            Some(product) => {
                let detail = format!(
                    "total {} but count {} * unit_price {} = {product}",
                    entry.total, entry.count, entry.unit_price
                );
                self.violate(index, ViolationCode::PurchaseTotalMismatch, detail);
            }
            None => {
                let detail = format!(
                    "count {} * unit_price {} overflows",
                    entry.count, entry.unit_price
                );
                self.violate(index, ViolationCode::PurchaseTotalMismatch, detail);
            }
        }
        match self.keys.get(&kid).map(|(_, status)| status) {
            Some(KeyStatus::Active) => {}
            Some(KeyStatus::Retired) => {
                let detail = format!("kid {} was retired", entry.kid);
                self.violate(index, ViolationCode::UnknownKey, detail);
            }
            None => {
                let detail = format!("kid {} has no earlier key entry", entry.kid);
                self.violate(index, ViolationCode::UnknownKey, detail);
            }
        }

        let total = u128::from(entry.total);
        self.purchases_total = self.purchases_total.saturating_add(total);
        let totals = self.accounts.get_or_insert_with(account, Account::default);
        totals.purchases = totals.purchases.saturating_add(total);
        if totals.balance() < 0 {
            let mut more = String::new();
            for (words, value) in [
                (" and refunds of", totals.refunds),
                (", debits of", totals.debits),
                (", revoked stamps of", totals.revoked),
            ] {
                if value > 0 {
                    more.push_str(&format!("{words} {value}"));
                }
            }
            let detail = format!(
                "account {} has purchased {} with credits of {}{more}",
                entry.account, totals.purchases, totals.credits
            );
            self.violate(index, ViolationCode::NegativeBalance, detail);
        }

        let group = u64::try_from(self.groups.len()).unwrap_or(NOT_SOLD);
        let first_seq = self.stamps_issued;
        let mut seen = HashSet::with_capacity(ids.len());
        let mut unspent = 0u64;
        let mut assigned = 0u32;
        for id in ids {
            if !seen.insert(id) {
                let detail = format!("stamp {} listed twice", uuid_text(id));
                self.violate(index, ViolationCode::DuplicateStampInEntry, detail);
                continue;
            }
            match self.stamps.get_mut(&id) {
                Some(stamp) if stamp.group != NOT_SOLD => {
                    let detail = format!("stamp {} was sold before", uuid_text(id));
                    self.violate(index, ViolationCode::StampSoldTwice, detail);
                }
                Some(stamp) => {
                    // Spent before it was sold (already reported): sold now, and cancelled.
                    stamp.group = group;
                    stamp.pos = assigned;
                    self.payments
                        .mark_spent(first_seq.saturating_add(u64::from(assigned)));
                    assigned = assigned.saturating_add(1);
                    self.stamps_issued = self.stamps_issued.saturating_add(1);
                    self.stamps_spent = self.stamps_spent.saturating_add(1);
                }
                None => {
                    self.stamps.insert_new(
                        id,
                        Stamp {
                            group,
                            spent: false,
                            pos: assigned,
                        },
                    );
                    assigned = assigned.saturating_add(1);
                    unspent = unspent.saturating_add(1);
                    self.stamps_issued = self.stamps_issued.saturating_add(1);
                }
            }
        }
        if assigned > 0 {
            self.groups.push(Group {
                expires_at_nanos: expires_at,
                unspent,
                payer: account,
                unit_price: entry.unit_price,
                first_seq,
                len: u64::from(assigned),
            });
            self.payments.add_purchase(account, group);
        }
    }

    fn check_spend(&mut self, index: u64, bytes: &[u8], time: i128) {
        let entry: SpendEntry = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) => return self.malformed(index, e.to_string()),
        };
        let Some(ids) = parse_uuids(&entry.stamp_ids) else {
            return self.malformed(index, "a stamp id is not a lowercase hyphenated uuid");
        };
        let target_ok = match entry.action {
            SpendAction::Post | SpendAction::Vote => parse_uuid(&entry.target).is_some(),
            SpendAction::Redeem | SpendAction::Revoke => parse_hex::<32>(&entry.target).is_some(),
        };
        if !target_ok {
            return self.malformed(
                index,
                "target is not a post uuid (post, vote) or 64 lowercase hex (redeem, revoke)",
            );
        }
        match (entry.action, entry.direction) {
            (SpendAction::Vote, None) if self.economy.policy_seen() => {
                return self.malformed(index, "a vote after a policy entry has no direction");
            }
            (SpendAction::Post | SpendAction::Redeem | SpendAction::Revoke, Some(_)) => {
                return self.malformed(index, "direction on a spend that is not a vote");
            }
            _ => {}
        }
        match (entry.action, entry.amount) {
            (SpendAction::Revoke, None) => {
                return self.malformed(index, "a revoke has no amount");
            }
            (SpendAction::Post | SpendAction::Vote | SpendAction::Redeem, Some(_)) => {
                return self.malformed(index, "amount on a spend that is not a revoke");
            }
            _ => {}
        }
        if entry.action == SpendAction::Revoke {
            // Judged against the stamps as they stand before this entry cancels any.
            self.check_revoke(index, &entry, &ids, time);
        }

        let mut seen = HashSet::with_capacity(ids.len());
        let mut listed = Vec::with_capacity(ids.len());
        for &id in &ids {
            if !seen.insert(id) {
                let detail = format!("stamp {} listed twice", uuid_text(id));
                self.violate(index, ViolationCode::DuplicateStampInEntry, detail);
                continue;
            }
            listed.push(id);
            let Some(stamp) = self.stamps.get_mut(&id) else {
                self.stamps.insert_new(
                    id,
                    Stamp {
                        group: NOT_SOLD,
                        spent: true,
                        pos: 0,
                    },
                );
                let detail = format!("stamp {} was never sold", uuid_text(id));
                self.violate(index, ViolationCode::SpendOfUnsoldStamp, detail);
                continue;
            };
            if stamp.spent {
                let detail = format!("stamp {} was spent before", uuid_text(id));
                self.violate(index, ViolationCode::StampSpentTwice, detail);
                continue;
            }
            stamp.spent = true;
            let pos = stamp.pos;
            let group = usize::try_from(stamp.group)
                .ok()
                .and_then(|g| self.groups.get_mut(g));
            let Some(group) = group else {
                let detail = format!("stamp {} was never sold", uuid_text(id));
                self.violate(index, ViolationCode::SpendOfUnsoldStamp, detail);
                continue;
            };
            group.unspent = group.unspent.saturating_sub(1);
            self.payments
                .mark_spent(group.first_seq.saturating_add(u64::from(pos)));
            let expired = time >= group.expires_at_nanos;
            self.stamps_spent = self.stamps_spent.saturating_add(1);
            if expired {
                let detail = format!("stamp {} spent at or after its expires_at", uuid_text(id));
                self.violate(index, ViolationCode::SpendAfterExpiry, detail);
            }
        }

        let is_vote = match entry.action {
            SpendAction::Post => false,
            SpendAction::Vote => true,
            SpendAction::Redeem | SpendAction::Revoke => return,
        };
        let Some(post) = parse_uuid(&entry.target) else {
            return;
        };
        let stamps: Vec<Option<(u128, u64)>> = listed
            .iter()
            .map(|id| {
                let group = self.stamps.get(id)?.group;
                let group = self.groups.get(usize::try_from(group).ok()?)?;
                Some((group.payer, group.unit_price))
            })
            .collect();
        let spend = PricedSpend {
            is_vote,
            direction: entry.direction,
            post,
            count: u64::try_from(ids.len()).unwrap_or(u64::MAX),
            stamps: &stamps,
        };
        self.check_priced_spend(index, time, spend);
    }
}

fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// Clips `text` to [`DETAIL_CHARS_MAX`] characters, so echoed input stays small.
fn clip(text: &str) -> String {
    match text.char_indices().nth(DETAIL_CHARS_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
