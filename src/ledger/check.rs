//! The streaming ledger checker: recomputes the Merkle tree head and every total of the stamp
//! ledger from its entries, and reports each broken invariant of `../shared/LEDGER.md`
//! ("Invariants an auditor checks", 1 and 3 to 7) with the index of the entry where it shows.
//!
//! It owns: parsing entries strictly as the server writes them, the O(log n) Merkle stack, and
//! the state the invariants need (stamp ids, accounts, keys, credit references), all bounded by
//! the log itself, with the stored violations capped at [`VIOLATIONS_MAX`].
//!
//! It must not do any I/O: no files, no network, no clock (the caller passes `now` to
//! [`LedgerChecker::report`]). It never panics on any input, and never re-serializes an entry:
//! it hashes exactly the bytes it is given. Checkpoint signatures and proofs are not checked
//! here (see `checkpoint`); the caller compares [`LedgerChecker::root`] with a checkpoint.

use std::collections::{HashMap, HashSet};

use ::time::format_description::well_known::Rfc3339;
use ::time::OffsetDateTime;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tlog_tiles::{node_hash, record_hash, Hash, EMPTY_HASH};

/// Most violations a report lists; past it they are only counted (`violations_total`), so a
/// hostile log cannot make the checker's memory grow with its violations.
pub const VIOLATIONS_MAX: usize = 1000;

/// Largest entry LEDGER.md allows ("An entry is at most 64 KiB"); a larger one is malformed.
pub const ENTRY_BYTES_MAX: usize = 64 * 1024;

/// Longest `detail` text of a violation, in characters; echoed input is clipped to it.
const DETAIL_CHARS_MAX: usize = 200;

/// Marks a stamp id that was spent but never sold (no purchase group).
const NOT_SOLD: u64 = u64::MAX;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// The stable violation codes.
pub mod code {
    /// Not JSON, a missing, extra or wrong-typed field, `v` != 1, bad uuid, time, hex or key.
    pub const MALFORMED_ENTRY: &str = "malformed_entry";
    /// A `kind` this checker does not know.
    pub const UNKNOWN_KIND: &str = "unknown_kind";
    /// `index` differs from the entry's position in the log.
    pub const INDEX_GAP: &str = "index_gap";
    /// `time` is earlier than the previous entry's.
    pub const TIME_BACKWARDS: &str = "time_backwards";
    /// A stamp id sold in an earlier purchase is sold again.
    pub const STAMP_SOLD_TWICE: &str = "stamp_sold_twice";
    /// A stamp id already spent is spent again.
    pub const STAMP_SPENT_TWICE: &str = "stamp_spent_twice";
    /// A stamp id is spent that no earlier purchase sold.
    pub const SPEND_OF_UNSOLD_STAMP: &str = "spend_of_unsold_stamp";
    /// A stamp is spent at or after its `expires_at`.
    pub const SPEND_AFTER_EXPIRY: &str = "spend_after_expiry";
    /// A purchase under a kid with no earlier `key` entry, or whose key was retired.
    pub const UNKNOWN_KEY: &str = "unknown_key";
    /// A `key` entry whose kid is not the first 8 bytes of SHA-256 of its public key.
    pub const KEY_ID_MISMATCH: &str = "key_id_mismatch";
    /// The same stamp id twice in one purchase or spend.
    pub const DUPLICATE_STAMP_IN_ENTRY: &str = "duplicate_stamp_in_entry";
    /// A purchase's `count` differs from the number of its `stamp_ids`.
    pub const PURCHASE_COUNT_MISMATCH: &str = "purchase_count_mismatch";
    /// A purchase's `total` differs from `count * unit_price` (or that product overflows).
    pub const PURCHASE_TOTAL_MISMATCH: &str = "purchase_total_mismatch";
    /// A `purchase_id` seen in an earlier purchase.
    pub const PURCHASE_ID_REUSED: &str = "purchase_id_reused";
    /// An account's purchases so far exceed its credits so far.
    pub const NEGATIVE_BALANCE: &str = "negative_balance";
    /// A credit `reference_sha256` seen in an earlier credit.
    pub const CREDIT_REFERENCE_REUSED: &str = "credit_reference_reused";
    /// A credit of amount 0.
    pub const NON_POSITIVE_CREDIT: &str = "non_positive_credit";
    /// After a `key` entry, more than one key is `active` (a key replaced without retiring
    /// the old one: LEDGER.md invariant 11).
    pub const TWO_ACTIVE_KEYS: &str = "two_active_keys";
    /// A `key` entry names a published kid with another public key (invariant 11).
    pub const KEY_CHANGED: &str = "key_changed";
}

/// The result of a check, as `GET /v1/audit` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// True when no violation was seen.
    pub ok: bool,
    pub ledger_size: u64,
    pub stamps_issued: u64,
    pub stamps_spent: u64,
    pub stamps_outstanding: u64,
    pub stamps_expired: u64,
    pub credits_total: u64,
    pub purchases_total: u64,
    /// The first [`VIOLATIONS_MAX`] violations, in log order.
    pub violations: Vec<Violation>,
    /// Every violation seen, including those past [`VIOLATIONS_MAX`].
    #[serde(default)]
    pub violations_total: u64,
}

/// One broken invariant: the entry where it shows, a code from [`code`], and a human detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub index: u64,
    pub code: String,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KeyStatus {
    Active,
    Retired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SpendAction {
    Post,
    Vote,
    Redeem,
}

/// The fields every entry has; the rest is ignored here and checked per kind.
#[derive(Deserialize)]
struct Common {
    v: u64,
    index: u64,
    time: String,
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    kid: String,
    public_key: String,
    status: KeyStatus,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    account: String,
    amount: u64,
    currency: String,
    reference_sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurchaseEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    account: String,
    purchase_id: String,
    count: u64,
    unit_price: u64,
    total: u64,
    kid: String,
    issued_at: String,
    expires_at: String,
    stamp_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    stamp_ids: Vec<String>,
    action: SpendAction,
    target: String,
}

/// What is known of one stamp id.
#[derive(Clone, Copy)]
struct Stamp {
    /// Index into `groups`, or [`NOT_SOLD`].
    group: u64,
    spent: bool,
}

/// The stamps of one purchase share an expiry; `unspent` counts those not yet spent.
#[derive(Clone, Copy)]
struct Group {
    expires_at_nanos: i128,
    unspent: u64,
}

/// Money in and out of one account, in minor units (u128: a sum of u64 amounts cannot
/// overflow it).
#[derive(Clone, Copy, Default)]
struct Account {
    credits: u128,
    purchases: u128,
}

/// Streaming state of a ledger check: push every entry in order, then ask for the root or a
/// report. Memory grows with distinct stamp ids, accounts, keys, purchases and credit
/// references, never with the entries' bytes.
#[derive(Default)]
pub struct LedgerChecker {
    size: u64,
    /// Roots of the perfect subtrees covering `0..size`, left to right (one per set bit).
    stack: Vec<Hash>,
    prev_time_nanos: Option<i128>,
    /// Every published key: its public key and last status.
    keys: HashMap<[u8; 8], ([u8; 32], KeyStatus)>,
    accounts: HashMap<u128, Account>,
    references: HashSet<[u8; 32]>,
    purchase_ids: HashSet<u128>,
    stamps: HashMap<u128, Stamp>,
    groups: Vec<Group>,
    stamps_issued: u64,
    stamps_spent: u64,
    credits_total: u128,
    purchases_total: u128,
    violations: Vec<Violation>,
    violations_total: u64,
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
        AuditReport {
            ok: self.violations_total == 0,
            ledger_size: self.size,
            stamps_issued: self.stamps_issued,
            stamps_spent: self.stamps_spent,
            stamps_outstanding: outstanding,
            stamps_expired: expired,
            credits_total: saturate(self.credits_total),
            purchases_total: saturate(self.purchases_total),
            violations: self.violations.clone(),
            violations_total: self.violations_total,
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

    fn violate(&mut self, index: u64, code: &str, detail: impl AsRef<str>) {
        self.violations_total = self.violations_total.saturating_add(1);
        if self.violations.len() < VIOLATIONS_MAX {
            self.violations.push(Violation {
                index,
                code: code.to_string(),
                detail: clip(detail.as_ref()),
            });
        }
    }

    fn malformed(&mut self, index: u64, detail: impl AsRef<str>) {
        self.violate(index, code::MALFORMED_ENTRY, detail);
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
            self.violate(index, code::INDEX_GAP, detail);
        }
        let Some(time) = parse_time(&common.time) else {
            let detail = format!("time {:?} is not RFC 3339 UTC", common.time);
            return self.malformed(index, detail);
        };
        if let Some(prev) = self.prev_time_nanos {
            if time < prev {
                let detail = format!("time {} is earlier than the previous entry's", common.time);
                self.violate(index, code::TIME_BACKWARDS, detail);
            }
        }
        self.prev_time_nanos = Some(time);
        match common.kind.as_str() {
            "key" => self.check_key(index, bytes),
            "credit" => self.check_credit(index, bytes),
            "purchase" => self.check_purchase(index, bytes),
            "spend" => self.check_spend(index, bytes, time),
            other => {
                let detail = format!("kind {other:?}");
                self.violate(index, code::UNKNOWN_KIND, detail);
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
        let digest = Sha256::digest(&public_key);
        if digest.get(..8) != Some(&kid[..]) {
            let detail = format!("kid {} is not SHA-256(public_key)[..8]", entry.kid);
            return self.violate(index, code::KEY_ID_MISMATCH, detail);
        }
        let public_key: [u8; 32] = match public_key.try_into() {
            Ok(key) => key,
            Err(_) => return self.malformed(index, "public_key is not 32 bytes"),
        };
        if let Some((known, _)) = self.keys.get(&kid) {
            if *known != public_key {
                let detail = format!("kid {} was published with another public key", entry.kid);
                self.violate(index, code::KEY_CHANGED, detail);
            }
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
            self.violate(index, code::TWO_ACTIVE_KEYS, detail);
        }
    }

    fn check_credit(&mut self, index: u64, bytes: &[u8]) {
        let entry: CreditEntry = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) => return self.malformed(index, e.to_string()),
        };
        let Some(account) = parse_uuid(&entry.account) else {
            return self.malformed(index, "account is not a lowercase hyphenated uuid");
        };
        if entry.currency.is_empty() {
            return self.malformed(index, "currency is empty");
        }
        let Some(reference) = parse_hex::<32>(&entry.reference_sha256) else {
            return self.malformed(index, "reference_sha256 is not 64 lowercase hex digits");
        };
        if entry.amount == 0 {
            self.violate(index, code::NON_POSITIVE_CREDIT, "amount is 0");
        }
        if !self.references.insert(reference) {
            let detail = format!(
                "reference_sha256 {} was used before",
                entry.reference_sha256
            );
            self.violate(index, code::CREDIT_REFERENCE_REUSED, detail);
        }
        let amount = u128::from(entry.amount);
        let totals = self.accounts.entry(account).or_default();
        totals.credits = totals.credits.saturating_add(amount);
        self.credits_total = self.credits_total.saturating_add(amount);
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
            return self.malformed(index, "issued_at is not RFC 3339 UTC");
        }
        let Some(expires_at) = parse_time(&entry.expires_at) else {
            return self.malformed(index, "expires_at is not RFC 3339 UTC");
        };
        let Some(ids) = parse_uuids(&entry.stamp_ids) else {
            return self.malformed(index, "a stamp id is not a lowercase hyphenated uuid");
        };

        if !self.purchase_ids.insert(purchase_id) {
            let detail = format!("purchase_id {} was used before", entry.purchase_id);
            self.violate(index, code::PURCHASE_ID_REUSED, detail);
        }
        let listed = u64::try_from(ids.len()).unwrap_or(u64::MAX);
        if entry.count != listed {
            let detail = format!("count {} but {listed} stamp_ids", entry.count);
            self.violate(index, code::PURCHASE_COUNT_MISMATCH, detail);
        }
        match entry.count.checked_mul(entry.unit_price) {
            Some(product) if product == entry.total => {}
            Some(product) => {
                let detail = format!(
                    "total {} but count {} * unit_price {} = {product}",
                    entry.total, entry.count, entry.unit_price
                );
                self.violate(index, code::PURCHASE_TOTAL_MISMATCH, detail);
            }
            None => {
                let detail = format!(
                    "count {} * unit_price {} overflows",
                    entry.count, entry.unit_price
                );
                self.violate(index, code::PURCHASE_TOTAL_MISMATCH, detail);
            }
        }
        match self.keys.get(&kid).map(|(_, status)| status) {
            Some(KeyStatus::Active) => {}
            Some(KeyStatus::Retired) => {
                let detail = format!("kid {} was retired", entry.kid);
                self.violate(index, code::UNKNOWN_KEY, detail);
            }
            None => {
                let detail = format!("kid {} has no earlier key entry", entry.kid);
                self.violate(index, code::UNKNOWN_KEY, detail);
            }
        }

        let total = u128::from(entry.total);
        self.purchases_total = self.purchases_total.saturating_add(total);
        let totals = self.accounts.entry(account).or_default();
        totals.purchases = totals.purchases.saturating_add(total);
        if totals.purchases > totals.credits {
            let detail = format!(
                "account {} has purchased {} with credits of {}",
                entry.account, totals.purchases, totals.credits
            );
            self.violate(index, code::NEGATIVE_BALANCE, detail);
        }

        let group = u64::try_from(self.groups.len()).unwrap_or(NOT_SOLD);
        let mut seen = HashSet::with_capacity(ids.len());
        let mut unspent = 0u64;
        let mut assigned = false;
        for id in ids {
            if !seen.insert(id) {
                let detail = format!("stamp {} listed twice", uuid_text(id));
                self.violate(index, code::DUPLICATE_STAMP_IN_ENTRY, detail);
                continue;
            }
            match self.stamps.get_mut(&id) {
                Some(stamp) if stamp.group != NOT_SOLD => {
                    let detail = format!("stamp {} was sold before", uuid_text(id));
                    self.violate(index, code::STAMP_SOLD_TWICE, detail);
                }
                Some(stamp) => {
                    // Spent before it was sold (already reported): sold now, and cancelled.
                    stamp.group = group;
                    assigned = true;
                    self.stamps_issued = self.stamps_issued.saturating_add(1);
                    self.stamps_spent = self.stamps_spent.saturating_add(1);
                }
                None => {
                    self.stamps.insert(
                        id,
                        Stamp {
                            group,
                            spent: false,
                        },
                    );
                    assigned = true;
                    unspent = unspent.saturating_add(1);
                    self.stamps_issued = self.stamps_issued.saturating_add(1);
                }
            }
        }
        if assigned {
            self.groups.push(Group {
                expires_at_nanos: expires_at,
                unspent,
            });
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
            SpendAction::Redeem => parse_hex::<32>(&entry.target).is_some(),
        };
        if !target_ok {
            return self.malformed(
                index,
                "target is not a post uuid (post, vote) or 64 lowercase hex (redeem)",
            );
        }

        let mut seen = HashSet::with_capacity(ids.len());
        for id in ids {
            if !seen.insert(id) {
                let detail = format!("stamp {} listed twice", uuid_text(id));
                self.violate(index, code::DUPLICATE_STAMP_IN_ENTRY, detail);
                continue;
            }
            let Some(stamp) = self.stamps.get_mut(&id) else {
                self.stamps.insert(
                    id,
                    Stamp {
                        group: NOT_SOLD,
                        spent: true,
                    },
                );
                let detail = format!("stamp {} was never sold", uuid_text(id));
                self.violate(index, code::SPEND_OF_UNSOLD_STAMP, detail);
                continue;
            };
            if stamp.spent {
                let detail = format!("stamp {} was spent before", uuid_text(id));
                self.violate(index, code::STAMP_SPENT_TWICE, detail);
                continue;
            }
            stamp.spent = true;
            let group = usize::try_from(stamp.group)
                .ok()
                .and_then(|g| self.groups.get_mut(g));
            let Some(group) = group else {
                let detail = format!("stamp {} was never sold", uuid_text(id));
                self.violate(index, code::SPEND_OF_UNSOLD_STAMP, detail);
                continue;
            };
            group.unspent = group.unspent.saturating_sub(1);
            let expired = time >= group.expires_at_nanos;
            self.stamps_spent = self.stamps_spent.saturating_add(1);
            if expired {
                let detail = format!("stamp {} spent at or after its expires_at", uuid_text(id));
                self.violate(index, code::SPEND_AFTER_EXPIRY, detail);
            }
        }
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

/// RFC 3339 with a UTC offset, as Unix nanoseconds.
fn parse_time(text: &str) -> Option<i128> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    time.offset().is_utc().then(|| time.unix_timestamp_nanos())
}

/// Exactly `2 * N` lowercase hex digits.
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// A uuid in its lowercase hyphenated form (the only one the server writes).
fn parse_uuid(text: &str) -> Option<u128> {
    if text.len() != 36 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse(text).ok().map(|u| u.as_u128())
}

fn parse_uuids(texts: &[String]) -> Option<Vec<u128>> {
    texts.iter().map(|t| parse_uuid(t)).collect()
}

fn uuid_text(id: u128) -> String {
    uuid::Uuid::from_u128(id).hyphenated().to_string()
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use tlog_tiles::{stored_hashes, tree_hash, HashReader};

    // ---------------------------------------------------------------- Merkle tree

    /// The leaf inputs of the Certificate Transparency test suites (RFC 6962 vectors).
    fn ct_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| hex::decode(h).expect("hex"))
        .collect()
    }

    /// MTH of the first n CT leaves, n = 1..=8.
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let checker = LedgerChecker::new();
        assert_eq!(checker.size(), 0);
        assert_eq!(checker.root(), EMPTY_HASH);
        assert_eq!(
            hex::encode(checker.root().0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn root_matches_rfc6962_vectors() {
        let mut checker = LedgerChecker::new();
        for (leaf, want) in ct_leaves().iter().zip(CT_ROOTS) {
            checker.push(leaf);
            assert_eq!(
                hex::encode(checker.root().0),
                want,
                "size {}",
                checker.size()
            );
        }
        assert_eq!(checker.size(), 8);
    }

    struct Memory(Vec<Hash>);

    impl HashReader for Memory {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            Ok(indexes
                .iter()
                .map(|&i| self.0[usize::try_from(i).expect("index")])
                .collect())
        }
    }

    #[test]
    fn root_matches_tlog_tiles_tree_hash() {
        let mut storage = Memory(Vec::new());
        let mut checker = LedgerChecker::new();
        for n in 0..=300u64 {
            let want = tree_hash(n, &storage).expect("tree_hash");
            assert_eq!(checker.root(), want, "size {n}");
            let data = format!("entry {n}").into_bytes();
            let new = stored_hashes(n, &data, &storage).expect("stored_hashes");
            storage.0.extend(new);
            checker.push(&data);
        }
        assert!(checker.stack.len() <= 64);
    }

    // ---------------------------------------------------------------- entry builders

    const T0: &str = "2026-11-26T21:45:46Z";
    const EXPIRES: &str = "2027-11-26T21:45:46Z";
    /// Unix seconds of `EXPIRES`.
    const EXPIRES_UNIX: i64 = 1_827_265_546;
    const ACCOUNT: &str = "11111111-1111-4111-8111-111111111111";
    const OTHER_ACCOUNT: &str = "22222222-2222-4222-8222-222222222222";
    const POST: &str = "33333333-3333-4333-8333-333333333333";

    fn public_key() -> [u8; 32] {
        [7u8; 32]
    }

    fn kid() -> String {
        hex::encode(&Sha256::digest(public_key())[..8])
    }

    fn stamp(n: u32) -> String {
        uuid::Uuid::from_u128(0xabcd_0000_0000_4000_8000_0000_0000_0000 | u128::from(n)).to_string()
    }

    fn purchase_id(n: u32) -> String {
        uuid::Uuid::from_u128(0xeeee_0000_0000_4000_8000_0000_0000_0000 | u128::from(n)).to_string()
    }

    fn ids(ns: &[u32]) -> String {
        let quoted: Vec<String> = ns.iter().map(|&n| format!("\"{}\"", stamp(n))).collect();
        quoted.join(",")
    }

    fn key_entry(index: u64, time: &str, status: &str) -> String {
        format!(
            r#"{{"v":1,"index":{index},"time":"{time}","kind":"key","kid":"{}","public_key":"{}","status":"{status}"}}"#,
            kid(),
            URL_SAFE_NO_PAD.encode(public_key())
        )
    }

    fn credit(index: u64, account: &str, amount: u64, reference: u8) -> String {
        format!(
            r#"{{"v":1,"index":{index},"time":"{T0}","kind":"credit","account":"{account}","amount":{amount},"currency":"cents","reference_sha256":"{}"}}"#,
            hex::encode([reference; 32])
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn purchase_full(
        index: u64,
        account: &str,
        pid: u32,
        count: u64,
        unit_price: u64,
        total: u64,
        kid: &str,
        stamps: &[u32],
    ) -> String {
        format!(
            r#"{{"v":1,"index":{index},"time":"{T0}","kind":"purchase","account":"{account}","purchase_id":"{}","count":{count},"unit_price":{unit_price},"total":{total},"kid":"{kid}","issued_at":"{T0}","expires_at":"{EXPIRES}","stamp_ids":[{}]}}"#,
            purchase_id(pid),
            ids(stamps)
        )
    }

    fn purchase(index: u64, pid: u32, stamps: &[u32]) -> String {
        let n = stamps.len() as u64;
        purchase_full(index, ACCOUNT, pid, n, 1, n, &kid(), stamps)
    }

    fn spend_at(index: u64, time: &str, stamps: &[u32]) -> String {
        format!(
            r#"{{"v":1,"index":{index},"time":"{time}","kind":"spend","stamp_ids":[{}],"action":"post","target":"{POST}"}}"#,
            ids(stamps)
        )
    }

    fn spend(index: u64, stamps: &[u32]) -> String {
        spend_at(index, T0, stamps)
    }

    fn run(entries: &[String], now: i64) -> AuditReport {
        let mut checker = LedgerChecker::new();
        for entry in entries {
            checker.push(entry.as_bytes());
        }
        let report = checker.report(now);
        assert_eq!(
            report.stamps_issued,
            report.stamps_spent + report.stamps_outstanding + report.stamps_expired,
            "{report:?}"
        );
        report
    }

    /// A log of `n` honest entries to put before a broken one: a key, a credit of 100.
    fn prefix() -> Vec<String> {
        vec![key_entry(0, T0, "active"), credit(1, ACCOUNT, 100, 1)]
    }

    /// Asserts the log breaks exactly one rule, `code`, at `index`.
    fn assert_only(entries: &[String], code: &str, index: u64) {
        let report = run(entries, EXPIRES_UNIX - 1);
        assert!(!report.ok, "{report:?}");
        assert_eq!(report.violations_total, 1, "{report:?}");
        assert_eq!(report.violations[0].code, code, "{report:?}");
        assert_eq!(report.violations[0].index, index, "{report:?}");
    }

    // ---------------------------------------------------------------- honest logs

    #[test]
    fn builders_write_the_server_format() {
        assert_eq!(
            spend(3, &[1]),
            format!(
                r#"{{"v":1,"index":3,"time":"{T0}","kind":"spend","stamp_ids":["{}"],"action":"post","target":"{POST}"}}"#,
                stamp(1)
            )
        );
    }

    fn honest_log() -> Vec<String> {
        vec![
            key_entry(0, T0, "active"),
            credit(1, ACCOUNT, 1000, 1),
            credit(2, OTHER_ACCOUNT, 5, 2),
            purchase(3, 1, &[1, 2, 3]),
            spend(4, &[1]),
            format!(
                r#"{{"v":1,"index":5,"time":"2026-11-26T21:45:46.000Z","kind":"spend","stamp_ids":["{}"],"action":"redeem","target":"{}"}}"#,
                stamp(2),
                hex::encode([9u8; 32])
            ),
            purchase_full(6, OTHER_ACCOUNT, 2, 2, 2, 4, &kid(), &[10, 11]),
            format!(
                r#"{{"v":1,"index":7,"time":"2026-11-27T00:00:00.000001Z","kind":"spend","stamp_ids":["{}"],"action":"vote","target":"{POST}"}}"#,
                stamp(10)
            ),
            key_entry(8, "2026-11-28T00:00:00Z", "retired"),
        ]
    }

    #[test]
    fn honest_log_passes_with_right_totals() {
        let report = run(&honest_log(), EXPIRES_UNIX - 1);
        assert!(report.ok, "{report:?}");
        assert_eq!(report.violations, vec![]);
        assert_eq!(report.violations_total, 0);
        assert_eq!(report.ledger_size, 9);
        assert_eq!(report.stamps_issued, 5);
        assert_eq!(report.stamps_spent, 3);
        assert_eq!(report.stamps_outstanding, 2);
        assert_eq!(report.stamps_expired, 0);
        assert_eq!(report.credits_total, 1005);
        assert_eq!(report.purchases_total, 7);
    }

    #[test]
    fn unspent_stamps_expire_at_expires_at() {
        let log = honest_log();
        for now in [EXPIRES_UNIX, EXPIRES_UNIX + 1, i64::MAX] {
            let report = run(&log, now);
            assert!(report.ok, "{report:?}");
            assert_eq!(report.stamps_spent, 3);
            assert_eq!(report.stamps_outstanding, 0);
            assert_eq!(report.stamps_expired, 2);
        }
        let report = run(&log, i64::MIN);
        assert_eq!(report.stamps_outstanding, 2);
    }

    #[test]
    fn root_is_of_the_bytes_pushed() {
        let mut checker = LedgerChecker::new();
        let mut leaves = Vec::new();
        for entry in honest_log() {
            checker.push(entry.as_bytes());
            leaves.push(record_hash(entry.as_bytes()));
        }
        fn mth(leaves: &[Hash]) -> Hash {
            match leaves.len() {
                0 => EMPTY_HASH,
                1 => leaves[0],
                n => {
                    let k = n.next_power_of_two() / 2;
                    node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
                }
            }
        }
        assert_eq!(checker.root(), mth(&leaves));
    }

    #[test]
    fn report_serializes_and_violations_total_defaults() {
        let report = run(&honest_log(), 0);
        let text = serde_json::to_string(&report).expect("json");
        assert!(text.starts_with(r#"{"ok":true,"ledger_size":9,"#), "{text}");
        let back: AuditReport = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, report);
        let old = r#"{"ok":true,"ledger_size":0,"stamps_issued":0,"stamps_spent":0,"stamps_outstanding":0,"stamps_expired":0,"credits_total":0,"purchases_total":0,"violations":[]}"#;
        let parsed: AuditReport = serde_json::from_str(old).expect("parse");
        assert_eq!(parsed.violations_total, 0);
    }

    // ---------------------------------------------------------------- one test per code

    #[test]
    fn malformed_entry() {
        let cases = [
            "not json".to_string(),
            "{}".to_string(),
            r#"{"v":2,"index":0,"time":"2026-11-26T21:45:46Z","kind":"key"}"#.to_string(),
            r#"{"v":1,"index":"0","time":"2026-11-26T21:45:46Z","kind":"key"}"#.to_string(),
            r#"{"v":1,"index":0,"time":"yesterday","kind":"key"}"#.to_string(),
            r#"{"v":1,"index":0,"time":"2026-11-26T22:45:46+01:00","kind":"key"}"#.to_string(),
            format!(" {}", key_entry(0, T0, "active")),
            format!("{}\n", key_entry(0, T0, "active")),
            key_entry(0, T0, "sleeping"),
            key_entry(0, T0, "active").replace(&kid(), "ABCDEF0123456789"),
            key_entry(0, T0, "active").replace(r#","status""#, r#","extra":1,"status""#),
            key_entry(0, T0, "active").replace(r#""kind":"key""#, r#""kind":"key","kind":"key""#),
        ];
        for case in cases {
            assert_only(std::slice::from_ref(&case), code::MALFORMED_ENTRY, 0);
        }
        let spend_cases = [
            spend(2, &[1]).replace("\"post\"", "\"burn\""),
            spend(2, &[1]).replace(&stamp(1), "not-a-uuid"),
            spend(2, &[1]).replace(&stamp(1), &stamp(1).to_uppercase()),
            spend(2, &[1]).replace(POST, &hex::encode([1u8; 32])),
            spend(2, &[1]).replace("\"post\"", "\"redeem\""),
        ];
        for case in spend_cases {
            let mut log = prefix();
            log.push(case);
            assert_only(&log, code::MALFORMED_ENTRY, 2);
        }
        let mut log = prefix();
        log.push(purchase(2, 1, &[1]).replace(EXPIRES, "2027-13-01T00:00:00Z"));
        assert_only(&log, code::MALFORMED_ENTRY, 2);
        let mut log = prefix();
        log.push(credit(2, ACCOUNT, 5, 2).replace("\"amount\":5", "\"amount\":-5"));
        assert_only(&log, code::MALFORMED_ENTRY, 2);
        let big = format!("{{\"v\":1,\"pad\":\"{}\"}}", "x".repeat(ENTRY_BYTES_MAX));
        assert_only(&[big], code::MALFORMED_ENTRY, 0);
    }

    #[test]
    fn unknown_kind() {
        let mut log = prefix();
        log.push(format!(
            r#"{{"v":1,"index":2,"time":"{T0}","kind":"refund","amount":5}}"#
        ));
        assert_only(&log, code::UNKNOWN_KIND, 2);
    }

    #[test]
    fn index_gap() {
        let log = vec![key_entry(0, T0, "active"), credit(2, ACCOUNT, 100, 1)];
        assert_only(&log, code::INDEX_GAP, 1);
    }

    #[test]
    fn time_backwards() {
        let log = vec![
            key_entry(0, "2026-11-27T00:00:00Z", "active"),
            key_entry(1, "2026-11-26T23:59:59.999Z", "active"),
        ];
        assert_only(&log, code::TIME_BACKWARDS, 1);
    }

    #[test]
    fn stamp_sold_twice() {
        let mut log = prefix();
        log.push(purchase(2, 1, &[1]));
        log.push(purchase(3, 2, &[1]));
        assert_only(&log, code::STAMP_SOLD_TWICE, 3);
    }

    #[test]
    fn stamp_spent_twice() {
        let mut log = prefix();
        log.push(purchase(2, 1, &[1]));
        log.push(spend(3, &[1]));
        log.push(spend(4, &[1]));
        assert_only(&log, code::STAMP_SPENT_TWICE, 4);
    }

    #[test]
    fn spend_of_unsold_stamp() {
        let mut log = prefix();
        log.push(purchase(2, 1, &[1]));
        log.push(spend(3, &[2]));
        assert_only(&log, code::SPEND_OF_UNSOLD_STAMP, 3);
    }

    #[test]
    fn spend_after_expiry() {
        let mut log = prefix();
        log.push(purchase(2, 1, &[1, 2]));
        log.push(spend_at(3, "2027-11-26T21:45:45.999999999Z", &[2]));
        log.push(spend_at(4, EXPIRES, &[1]));
        assert_only(&log, code::SPEND_AFTER_EXPIRY, 4);
        let report = run(&log, 0);
        assert_eq!((report.stamps_spent, report.stamps_outstanding), (2, 0));
    }

    #[test]
    fn unknown_key() {
        let mut log = vec![credit(0, ACCOUNT, 100, 1)];
        log.push(purchase(1, 1, &[1]));
        assert_only(&log, code::UNKNOWN_KEY, 1);

        let mut log = prefix();
        log.push(purchase_full(
            2,
            ACCOUNT,
            1,
            1,
            1,
            1,
            "0123456789abcdef",
            &[1],
        ));
        assert_only(&log, code::UNKNOWN_KEY, 2);

        let mut log = prefix();
        log.push(key_entry(2, T0, "retired"));
        log.push(purchase(3, 1, &[1]));
        assert_only(&log, code::UNKNOWN_KEY, 3);
    }

    /// An active key of its own: another public key and its kid.
    fn other_key_entry(index: u64, status: &str) -> String {
        let public_key = [9u8; 32];
        format!(
            r#"{{"v":1,"index":{index},"time":"{T0}","kind":"key","kid":"{}","public_key":"{}","status":"{status}"}}"#,
            hex::encode(&Sha256::digest(public_key)[..8]),
            URL_SAFE_NO_PAD.encode(public_key)
        )
    }

    #[test]
    fn two_active_keys() {
        // A second key activated without retiring the first: what a server that silently
        // replaced a missing key file would write.
        let log = vec![key_entry(0, T0, "active"), other_key_entry(1, "active")];
        assert_only(&log, code::TWO_ACTIVE_KEYS, 1);
        // A rotation retires the old key first: nothing to report.
        let log = vec![
            key_entry(0, T0, "active"),
            key_entry(1, T0, "retired"),
            other_key_entry(2, "active"),
        ];
        let report = run(&log, EXPIRES_UNIX - 1);
        assert!(report.ok, "{report:?}");
        // Reactivating a retired key while another is active is reported too.
        let mut log = log;
        log.push(key_entry(3, T0, "active"));
        assert_only(&log, code::TWO_ACTIVE_KEYS, 3);
    }

    #[test]
    fn key_id_mismatch() {
        let log = vec![key_entry(0, T0, "active").replace(&kid(), "0123456789abcdef")];
        assert_only(&log, code::KEY_ID_MISMATCH, 0);
    }

    #[test]
    fn duplicate_stamp_in_entry() {
        let mut log = prefix();
        log.push(purchase_full(2, ACCOUNT, 1, 2, 1, 2, &kid(), &[1, 1]));
        let report = run(&log, 0);
        assert_eq!(report.violations_total, 1, "{report:?}");
        assert_eq!(report.violations[0].code, code::DUPLICATE_STAMP_IN_ENTRY);
        assert_eq!(report.violations[0].index, 2);
        assert_eq!(report.stamps_issued, 1);

        let mut log = prefix();
        log.push(purchase(2, 1, &[1]));
        log.push(spend(3, &[1, 1]));
        assert_only(&log, code::DUPLICATE_STAMP_IN_ENTRY, 3);
    }

    #[test]
    fn purchase_count_mismatch() {
        let mut log = prefix();
        log.push(purchase_full(2, ACCOUNT, 1, 3, 1, 3, &kid(), &[1, 2]));
        assert_only(&log, code::PURCHASE_COUNT_MISMATCH, 2);
    }

    #[test]
    fn purchase_total_mismatch() {
        let mut log = prefix();
        log.push(purchase_full(2, ACCOUNT, 1, 2, 3, 5, &kid(), &[1, 2]));
        assert_only(&log, code::PURCHASE_TOTAL_MISMATCH, 2);
    }

    #[test]
    fn purchase_total_overflow_is_a_violation() {
        let log = vec![
            key_entry(0, T0, "active"),
            credit(1, ACCOUNT, u64::MAX, 1),
            purchase_full(2, ACCOUNT, 1, 2, u64::MAX, u64::MAX, &kid(), &[1, 2]),
        ];
        assert_only(&log, code::PURCHASE_TOTAL_MISMATCH, 2);
    }

    #[test]
    fn purchase_id_reused() {
        let mut log = prefix();
        log.push(purchase(2, 1, &[1]));
        log.push(purchase(3, 1, &[2]));
        assert_only(&log, code::PURCHASE_ID_REUSED, 3);
    }

    #[test]
    fn negative_balance() {
        let mut log = prefix();
        log.push(purchase_full(2, ACCOUNT, 1, 1, 100, 100, &kid(), &[1]));
        log.push(credit(3, OTHER_ACCOUNT, 100, 2));
        log.push(purchase_full(4, ACCOUNT, 2, 1, 1, 1, &kid(), &[2]));
        assert_only(&log, code::NEGATIVE_BALANCE, 4);
    }

    #[test]
    fn credit_reference_reused() {
        let mut log = prefix();
        log.push(credit(2, OTHER_ACCOUNT, 7, 1));
        assert_only(&log, code::CREDIT_REFERENCE_REUSED, 2);
    }

    #[test]
    fn non_positive_credit() {
        let mut log = prefix();
        log.push(credit(2, ACCOUNT, 0, 2));
        assert_only(&log, code::NON_POSITIVE_CREDIT, 2);
    }

    // ---------------------------------------------------------------- hostile input

    #[test]
    fn totals_saturate() {
        let mut log = vec![key_entry(0, T0, "active")];
        for i in 1..=3u8 {
            log.push(credit(u64::from(i), ACCOUNT, u64::MAX, i));
        }
        let report = run(&log, 0);
        assert!(report.ok, "{report:?}");
        assert_eq!(report.credits_total, u64::MAX);
    }

    #[test]
    fn violations_are_capped_but_counted() {
        let mut checker = LedgerChecker::new();
        let n = VIOLATIONS_MAX as u64 + 500;
        for _ in 0..n {
            checker.push(b"garbage");
        }
        let report = checker.report(0);
        assert!(!report.ok);
        assert_eq!(report.violations.len(), VIOLATIONS_MAX);
        assert_eq!(report.violations_total, n);
        assert_eq!(report.ledger_size, n);
    }

    #[test]
    fn details_are_clipped() {
        let mut log = prefix();
        let kind = "k".repeat(10_000);
        log.push(format!(
            r#"{{"v":1,"index":2,"time":"{T0}","kind":"{kind}"}}"#
        ));
        let report = run(&log, 0);
        assert_eq!(report.violations[0].code, code::UNKNOWN_KIND);
        assert!(report.violations[0].detail.chars().count() <= DETAIL_CHARS_MAX + 1);
    }

    /// xorshift64*, so the garbage is the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut checker = LedgerChecker::new();
        let fixed: Vec<Vec<u8>> = vec![
            vec![],
            b"{".to_vec(),
            b"}".to_vec(),
            b"{}".to_vec(),
            b"null".to_vec(),
            vec![0xff; 100],
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            format!("{{{}}}", "\"a\":{".repeat(20_000)).into_bytes(),
            br#"{"v":1,"index":0,"time":"2026-11-26T21:45:46Z","kind":"purchase","count":1e400}"#
                .to_vec(),
            br#"{"v":18446744073709551616,"index":0,"time":"x","kind":"key"}"#.to_vec(),
            br#"{"v":1,"index":18446744073709551615,"time":"9999-12-31T23:59:59.999999999Z","kind":"key"}"#
                .to_vec(),
            br#"{"v":1,"index":0,"time":"0000-01-01T00:00:00Z","kind":"spend","stamp_ids":[],"action":"post","target":""}"#
                .to_vec(),
            br#"{"v":1,"index":0,"time":"2026-11-26T21:45:46Z","kind":"\ud800"}"#.to_vec(),
            purchase_full(0, ACCOUNT, 1, u64::MAX, u64::MAX, 0, &kid(), &[1]).into_bytes(),
        ];
        for bytes in &fixed {
            checker.push(bytes);
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let honest = honest_log();
        for _ in 0..20_000 {
            let bytes: Vec<u8> = match rng.below(3) {
                0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
                _ => {
                    let i = usize::try_from(rng.below(honest.len() as u64)).expect("index");
                    let mut bytes = honest[i].clone().into_bytes();
                    for _ in 0..=rng.below(4) {
                        let at = usize::try_from(rng.below(bytes.len() as u64)).expect("at");
                        match rng.below(3) {
                            0 => bytes[at] = rng.next() as u8,
                            1 => bytes.truncate(at),
                            _ => bytes.insert(at, b"0123456789\"{}[],:-."[at % 19]),
                        }
                        if bytes.is_empty() {
                            break;
                        }
                    }
                    bytes
                }
            };
            checker.push(&bytes);
            let _ = checker.root();
        }
        for now in [i64::MIN, 0, i64::MAX] {
            let report = checker.report(now);
            assert_eq!(
                report.stamps_issued,
                report.stamps_spent + report.stamps_outstanding + report.stamps_expired
            );
            assert!(!report.ok);
        }
        assert_eq!(checker.size(), fixed.len() as u64 + 20_000);
    }
}
