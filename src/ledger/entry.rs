//! Ledger entries as the server writes them (docs/ledger.md, "Entries").
//!
//! The writer serializes an entry once; those exact bytes are stored, hashed into the Merkle
//! tree and served. Nothing ever re-serializes a stored entry. Field order is fixed by the
//! struct order below.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{CreditSource, DebitReason};

/// Largest entry the server writes; the writer refuses anything larger. Named once in the
/// auditor crate (which says why it is 65,535, one byte below the 64 KiB the checker accepts),
/// so the writer, the store and the checker cannot disagree.
pub use pennypost_audit::ENTRY_BYTES_WRITTEN_MAX;

/// What a spend paid for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpendAction {
    Post,
    Vote,
    Redeem,
    /// Stamps taken back after a debit left their buyer below zero.
    Revoke,
}

impl SpendAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SpendAction::Post => "post",
            SpendAction::Vote => "vote",
            SpendAction::Redeem => "redeem",
            SpendAction::Revoke => "revoke",
        }
    }
}

/// The kind-specific part of an entry.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Body {
    Key {
        kid: String,
        public_key: String,
        status: &'static str,
    },
    Credit {
        account: Uuid,
        amount: u64,
        currency: String,
        reference_sha256: String,
        /// Always written now; credits written before sources existed have none (the
        /// auditor reads those as the operator's).
        source: CreditSource,
    },
    /// Money going back out of an account (a refund, a dispute, a correction).
    Debit {
        account: Uuid,
        amount: u64,
        currency: String,
        reference_sha256: String,
        source: CreditSource,
        reason: DebitReason,
    },
    Purchase {
        account: Uuid,
        purchase_id: Uuid,
        count: u32,
        unit_price: u64,
        total: u64,
        kid: String,
        issued_at: String,
        expires_at: String,
        stamp_ids: Vec<Uuid>,
    },
    Spend {
        stamp_ids: Vec<Uuid>,
        action: SpendAction,
        target: String,
        /// `up` or `down` on a vote; absent on posts, redeems and revokes.
        #[serde(skip_serializing_if = "Option::is_none")]
        direction: Option<Direction>,
        /// On a revoke only: the revoked stamps' unit prices, given back to the balance.
        #[serde(skip_serializing_if = "Option::is_none")]
        amount: Option<u64>,
    },
    /// The policy in force from this entry on (the economy's parameters).
    Policy {
        currency: String,
        stamp_price: u64,
        post_cost: u64,
        vote_cost: u64,
        repeat_window_secs: u64,
        repeat_factor: u64,
        vote_pricing: &'static str,
        refund_voters: u64,
    },
    /// A post's base postage going back to its payer.
    Refund {
        account: Uuid,
        post_id: Uuid,
        amount: u64,
        currency: String,
    },
}

/// A vote's direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

#[derive(Serialize)]
struct Entry<'a> {
    v: u8,
    index: u64,
    time: &'a str,
    #[serde(flatten)]
    body: &'a Body,
}

/// Serializes an entry to the bytes that are stored, hashed and served.
pub fn encode(index: u64, time_rfc3339: &str, body: &Body) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Entry {
        v: 1,
        index,
        time: time_rfc3339,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_matches_ledger_md() {
        let body = Body::Spend {
            stamp_ids: vec![Uuid::nil()],
            action: SpendAction::Redeem,
            target: "ab".into(),
            direction: None,
            amount: None,
        };
        let bytes = encode(3, "2026-11-26T00:00:00Z", &body).expect("encode");
        assert_eq!(
            String::from_utf8(bytes).expect("utf8"),
            r#"{"v":1,"index":3,"time":"2026-11-26T00:00:00Z","kind":"spend","stamp_ids":["00000000-0000-0000-0000-000000000000"],"action":"redeem","target":"ab"}"#
        );
    }

    #[test]
    fn largest_purchase_fits() {
        let body = Body::Purchase {
            account: Uuid::max(),
            purchase_id: Uuid::max(),
            count: 1000,
            unit_price: u64::MAX,
            total: u64::MAX,
            kid: "ffffffffffffffff".into(),
            issued_at: "9999-12-31T23:59:59Z".into(),
            expires_at: "9999-12-31T23:59:59Z".into(),
            stamp_ids: vec![Uuid::max(); 1000],
        };
        let bytes = encode(u64::MAX, "9999-12-31T23:59:59Z", &body).expect("encode");
        assert!(bytes.len() < ENTRY_BYTES_WRITTEN_MAX, "{}", bytes.len());
    }

    #[test]
    fn a_debit_and_a_revoke_read_as_ledger_md_lists_them() {
        let debit = Body::Debit {
            account: Uuid::nil(),
            amount: 5,
            currency: "cents".into(),
            reference_sha256: "ab".into(),
            source: CreditSource::Stripe,
            reason: DebitReason::Refund,
        };
        let bytes = encode(4, "2026-11-26T00:00:00Z", &debit).expect("encode");
        assert_eq!(
            String::from_utf8(bytes).expect("utf8"),
            r#"{"v":1,"index":4,"time":"2026-11-26T00:00:00Z","kind":"debit","account":"00000000-0000-0000-0000-000000000000","amount":5,"currency":"cents","reference_sha256":"ab","source":"stripe","reason":"refund"}"#
        );
        let revoke = Body::Spend {
            stamp_ids: vec![Uuid::nil()],
            action: SpendAction::Revoke,
            target: "ab".into(),
            direction: None,
            amount: Some(3),
        };
        let bytes = encode(5, "2026-11-26T00:00:00Z", &revoke).expect("encode");
        assert_eq!(
            String::from_utf8(bytes).expect("utf8"),
            r#"{"v":1,"index":5,"time":"2026-11-26T00:00:00Z","kind":"spend","stamp_ids":["00000000-0000-0000-0000-000000000000"],"action":"revoke","target":"ab","amount":3}"#
        );
    }

    /// The largest revoke the rules write ([`crate::rules::REVOKE_STAMPS_MAX`] stamps, every
    /// number at its largest) fits one entry: the one revoke a debit owes is never split.
    #[test]
    fn largest_revoke_fits() {
        let body = Body::Spend {
            stamp_ids: vec![Uuid::max(); crate::rules::REVOKE_STAMPS_MAX],
            action: SpendAction::Revoke,
            target: "f".repeat(64),
            direction: None,
            amount: Some(u64::MAX),
        };
        let bytes = encode(u64::MAX, "9999-12-31T23:59:59Z", &body).expect("encode");
        assert!(bytes.len() <= ENTRY_BYTES_WRITTEN_MAX, "{}", bytes.len());
    }
}
