//! The stable violation codes of the ledger checker, one per broken invariant of LEDGER.md.
//!
//! Clients and scripts match on these strings (`GET /v1/audit` serves them, `pennypost audit`
//! prints them); the `detail` beside each is for people. Only names here, no logic.

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
