//! The stable violation codes of the ledger checker, one per broken invariant of the ledger
//! (`docs/ledger.md`, "Invariants": 1 and 3 to 11).
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
/// An account's purchases so far exceed its credits plus its refunds so far (invariants 6
/// and 10).
pub const NEGATIVE_BALANCE: &str = "negative_balance";
/// A credit `reference_sha256` seen in an earlier credit.
pub const CREDIT_REFERENCE_REUSED: &str = "credit_reference_reused";
/// A credit of amount 0.
pub const NON_POSITIVE_CREDIT: &str = "non_positive_credit";
/// After a `key` entry, more than one key is `active` (a key replaced without retiring
/// the old one: invariant 11).
pub const TWO_ACTIVE_KEYS: &str = "two_active_keys";
/// A `key` entry names a published kid with another public key (invariant 11).
pub const KEY_CHANGED: &str = "key_changed";
/// A post or vote spend (after the first `policy` entry) cancels stamps sold to more than one
/// account (invariant 8).
pub const MIXED_PAYERS: &str = "mixed_payers";
/// A post or vote spend (after the first `policy` entry) cancels another number of stamps than
/// the policy in force prices it from the entries before it, or a price that overflows u64 and
/// so cannot be paid (invariant 8).
pub const WRONG_PRICE: &str = "wrong_price";
/// An up-vote completed its post's count of distinct voters, and the next entry is not that
/// post's `refund` (or the log ends there) (invariant 9). Reported at the vote's index.
pub const MISSING_REFUND: &str = "missing_refund";
/// A `refund` that is not right after an up-vote completing its post's count, including a
/// second refund of the same post (invariant 9).
pub const UNEXPECTED_REFUND: &str = "unexpected_refund";
/// The expected `refund` of a post gives another amount than the post's base postage, or in
/// another currency than the policy's (invariant 9).
pub const WRONG_REFUND_AMOUNT: &str = "wrong_refund_amount";
/// The expected `refund` of a post goes to another account than the post's payer
/// (invariant 9).
pub const WRONG_REFUND_ACCOUNT: &str = "wrong_refund_account";
/// A debit of amount 0.
pub const NON_POSITIVE_DEBIT: &str = "non_positive_debit";
/// A debit `reference_sha256` seen in an earlier credit or debit (references are unique
/// among credits and debits together).
pub const DEBIT_REFERENCE_REUSED: &str = "debit_reference_reused";
/// A debit left its account below zero while the account had unspent, unexpired stamps, and
/// the next entry is not the `revoke` that takes them back (or the log ends there)
/// (invariant 12). Reported at the debit's index.
pub const MISSING_REVOKE: &str = "missing_revoke";
/// A `revoke` that does not follow a debit of its stamps' account leaving that account below
/// zero, whose target is not that debit's reference, or that lists other stamps than the
/// ones the rule takes (that account's unspent, unexpired stamps, latest purchase first and
/// from the last of its stamp ids back, stopping as soon as the balance is at least zero), or
/// whose `amount` is not their unit prices' sum (invariant 12).
pub const WRONG_REVOKE: &str = "wrong_revoke";
