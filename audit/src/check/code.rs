//! The stable violation codes, one per broken invariant of the ledger (`docs/ledger.md`,
//! "Invariants": 1 and 3 to 12), and the auditor's checks of checkpoints and history: every
//! code in one enum, [`ViolationCode`], so a code that is not listed here does not compile.
//!
//! Clients and scripts match on the codes' text (`GET /v1/audit` serves them, `pennypost audit`
//! prints them): each is written as its snake_case name, as it always was; the `detail` beside
//! each is for people. Only names here, no logic.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A broken invariant, as `Violation::code` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    // The checker: one code per broken invariant of the entries.
    /// Not JSON, a missing, extra or wrong-typed field, `v` != 1, bad uuid, time, hex or key.
    MalformedEntry,
    /// A `kind` this checker does not know.
    UnknownKind,
    /// `index` differs from the entry's position in the log.
    IndexGap,
    /// `time` is earlier than the previous entry's.
    TimeBackwards,
    /// A stamp id sold in an earlier purchase is sold again.
    StampSoldTwice,
    /// A stamp id already spent is spent again.
    StampSpentTwice,
    /// A stamp id is spent that no earlier purchase sold.
    SpendOfUnsoldStamp,
    /// A stamp is spent at or after its `expires_at`.
    SpendAfterExpiry,
    /// A purchase under a kid with no earlier `key` entry, or whose key was retired.
    UnknownKey,
    /// A `key` entry whose kid is not the first 8 bytes of SHA-256 of its public key.
    KeyIdMismatch,
    /// The same stamp id twice in one purchase or spend.
    DuplicateStampInEntry,
    /// A purchase's `count` differs from the number of its `stamp_ids`.
    PurchaseCountMismatch,
    /// A purchase's `total` differs from `count * unit_price` (or that product overflows).
    PurchaseTotalMismatch,
    /// A `purchase_id` seen in an earlier purchase.
    PurchaseIdReused,
    /// An account's purchases so far exceed its credits plus its refunds so far (invariants 6
    /// and 10).
    NegativeBalance,
    /// A credit `reference_sha256` seen in an earlier credit.
    CreditReferenceReused,
    /// A credit of amount 0.
    NonPositiveCredit,
    /// After a `key` entry, more than one key is `active` (a key replaced without retiring
    /// the old one: invariant 11).
    TwoActiveKeys,
    /// A `key` entry names a published kid with another public key (invariant 11).
    KeyChanged,
    /// A post or vote spend (after the first `policy` entry) cancels stamps sold to more than one
    /// account (invariant 8).
    MixedPayers,
    /// A post or vote spend (after the first `policy` entry) cancels another number of stamps than
    /// the policy in force prices it from the entries before it, or a price that overflows u64 and
    /// so cannot be paid (invariant 8).
    WrongPrice,
    /// An up-vote completed its post's count of distinct voters, and the next entry is not that
    /// post's `refund` (or the log ends there) (invariant 9). Reported at the vote's index.
    MissingRefund,
    /// A `refund` that is not right after an up-vote completing its post's count, including a
    /// second refund of the same post (invariant 9).
    UnexpectedRefund,
    /// The expected `refund` of a post gives another amount than the post's base postage, or in
    /// another currency than the policy's (invariant 9).
    WrongRefundAmount,
    /// The expected `refund` of a post goes to another account than the post's payer
    /// (invariant 9).
    WrongRefundAccount,
    /// A debit of amount 0.
    NonPositiveDebit,
    /// A debit `reference_sha256` seen in an earlier credit or debit (references are unique
    /// among credits and debits together).
    DebitReferenceReused,
    /// A debit left its account below zero while the account had unspent, unexpired stamps,
    /// and the next entry is not the `revoke` that takes them back (or the log ends there)
    /// (invariant 12). Reported at the debit's index.
    MissingRevoke,
    /// A `revoke` that does not follow a debit of its stamps' account leaving that account
    /// below zero, whose target is not that debit's reference, or that lists other stamps than
    /// the ones the rule takes (that account's unspent, unexpired stamps, latest purchase first
    /// and from the last of its stamp ids back, stopping as soon as the balance is at least
    /// zero), or whose `amount` is not their unit prices' sum (invariant 12).
    WrongRevoke,
    // The auditor: the checkpoint, its key and the history it extends, and the server's totals.
    /// The checkpoint's signature does not verify under the pinned key (or the note is not a
    /// checkpoint). Reported at index 0.
    BadCheckpointSignature,
    /// The server now publishes another checkpoint key than the one pinned on first use.
    CheckpointKeyChanged,
    /// The checkpoint's origin differs from the remembered one.
    OriginChanged,
    /// The checkpoint's size is below the remembered checkpoint's.
    LogShrank,
    /// The server's consistency proof from the remembered checkpoint to the new one fails.
    InconsistentHistory,
    /// The first entries, as served now, no longer hash to the remembered root.
    RewrittenHistory,
    /// The entries served do not hash to the signed checkpoint's root.
    RootMismatch,
    /// A total of the server's `GET /v1/audit` differs from the one the entries give (invariant
    /// 7).
    AuditTotalsMismatch,
}

impl ViolationCode {
    /// Every code, in the order above.
    pub const ALL: [ViolationCode; 37] = [
        ViolationCode::MalformedEntry,
        ViolationCode::UnknownKind,
        ViolationCode::IndexGap,
        ViolationCode::TimeBackwards,
        ViolationCode::StampSoldTwice,
        ViolationCode::StampSpentTwice,
        ViolationCode::SpendOfUnsoldStamp,
        ViolationCode::SpendAfterExpiry,
        ViolationCode::UnknownKey,
        ViolationCode::KeyIdMismatch,
        ViolationCode::DuplicateStampInEntry,
        ViolationCode::PurchaseCountMismatch,
        ViolationCode::PurchaseTotalMismatch,
        ViolationCode::PurchaseIdReused,
        ViolationCode::NegativeBalance,
        ViolationCode::CreditReferenceReused,
        ViolationCode::NonPositiveCredit,
        ViolationCode::TwoActiveKeys,
        ViolationCode::KeyChanged,
        ViolationCode::MixedPayers,
        ViolationCode::WrongPrice,
        ViolationCode::MissingRefund,
        ViolationCode::UnexpectedRefund,
        ViolationCode::WrongRefundAmount,
        ViolationCode::WrongRefundAccount,
        ViolationCode::NonPositiveDebit,
        ViolationCode::DebitReferenceReused,
        ViolationCode::MissingRevoke,
        ViolationCode::WrongRevoke,
        ViolationCode::BadCheckpointSignature,
        ViolationCode::CheckpointKeyChanged,
        ViolationCode::OriginChanged,
        ViolationCode::LogShrank,
        ViolationCode::InconsistentHistory,
        ViolationCode::RewrittenHistory,
        ViolationCode::RootMismatch,
        ViolationCode::AuditTotalsMismatch,
    ];

    /// The code as clients see it: its snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ViolationCode::MalformedEntry => "malformed_entry",
            ViolationCode::UnknownKind => "unknown_kind",
            ViolationCode::IndexGap => "index_gap",
            ViolationCode::TimeBackwards => "time_backwards",
            ViolationCode::StampSoldTwice => "stamp_sold_twice",
            ViolationCode::StampSpentTwice => "stamp_spent_twice",
            ViolationCode::SpendOfUnsoldStamp => "spend_of_unsold_stamp",
            ViolationCode::SpendAfterExpiry => "spend_after_expiry",
            ViolationCode::UnknownKey => "unknown_key",
            ViolationCode::KeyIdMismatch => "key_id_mismatch",
            ViolationCode::DuplicateStampInEntry => "duplicate_stamp_in_entry",
            ViolationCode::PurchaseCountMismatch => "purchase_count_mismatch",
            ViolationCode::PurchaseTotalMismatch => "purchase_total_mismatch",
            ViolationCode::PurchaseIdReused => "purchase_id_reused",
            ViolationCode::NegativeBalance => "negative_balance",
            ViolationCode::CreditReferenceReused => "credit_reference_reused",
            ViolationCode::NonPositiveCredit => "non_positive_credit",
            ViolationCode::TwoActiveKeys => "two_active_keys",
            ViolationCode::KeyChanged => "key_changed",
            ViolationCode::MixedPayers => "mixed_payers",
            ViolationCode::WrongPrice => "wrong_price",
            ViolationCode::MissingRefund => "missing_refund",
            ViolationCode::UnexpectedRefund => "unexpected_refund",
            ViolationCode::WrongRefundAmount => "wrong_refund_amount",
            ViolationCode::WrongRefundAccount => "wrong_refund_account",
            ViolationCode::NonPositiveDebit => "non_positive_debit",
            ViolationCode::DebitReferenceReused => "debit_reference_reused",
            ViolationCode::MissingRevoke => "missing_revoke",
            ViolationCode::WrongRevoke => "wrong_revoke",
            ViolationCode::BadCheckpointSignature => "bad_checkpoint_signature",
            ViolationCode::CheckpointKeyChanged => "checkpoint_key_changed",
            ViolationCode::OriginChanged => "origin_changed",
            ViolationCode::LogShrank => "log_shrank",
            ViolationCode::InconsistentHistory => "inconsistent_history",
            ViolationCode::RewrittenHistory => "rewritten_history",
            ViolationCode::RootMismatch => "root_mismatch",
            ViolationCode::AuditTotalsMismatch => "audit_totals_mismatch",
        }
    }

    /// The code named `text`, if there is one.
    pub fn parse(text: &str) -> Option<ViolationCode> {
        ViolationCode::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
    }
}

impl fmt::Display for ViolationCode {
    /// The code's text; widths and alignment apply (`{:<26}` in the printed report).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for ViolationCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_written_as_its_text_and_read_back() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ViolationCode::ALL {
            let text = serde_json::to_string(&code).expect("a code serializes");
            assert_eq!(text, format!("\"{}\"", code.as_str()));
            let back: ViolationCode = serde_json::from_str(&text).expect("and reads back");
            assert_eq!(back, code);
            assert_eq!(ViolationCode::parse(code.as_str()), Some(code));
            assert_eq!(code.to_string(), code.as_str());
            assert!(seen.insert(code.as_str()), "{code} twice");
        }
        assert_eq!(ViolationCode::parse("no_such_code"), None);
        assert_eq!(
            format!("{:<16}|", ViolationCode::LogShrank),
            "log_shrank      |"
        );
    }

    /// docs/ledger.md lists every code, so none is served that a reader cannot look up.
    #[test]
    fn docs_list_every_code() {
        let doc = include_str!("../../../docs/ledger.md");
        for code in ViolationCode::ALL {
            assert!(
                doc.contains(&format!("`{code}`")),
                "{code} is not in docs/ledger.md"
            );
        }
    }
}
