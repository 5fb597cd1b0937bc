//! What a ledger check finds: the totals and violations `GET /v1/audit` serves and
//! `pennypost audit` prints.
//!
//! Plain data with its JSON form; it must not compute anything (the checker fills it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    /// Sum of all refund amounts, in minor units (absent from reports of servers older than
    /// the economy).
    #[serde(default)]
    pub refunds_total: u64,
    /// Sum of all debit amounts (refunds, disputes and corrections taken back), in minor units
    /// (absent from reports of servers older than payments).
    #[serde(default)]
    pub debits_total: u64,
    /// Sum of the unit prices of every revoked stamp (absent from reports of servers older
    /// than payments).
    #[serde(default)]
    pub revoked_total: u64,
    /// Credits by source (`operator`, `stripe`, `btcpay`, `test`; credits without a source
    /// are the operator's); they add up to `credits_total`.
    #[serde(default)]
    pub credits_by_source: BTreeMap<String, u64>,
    /// The first [`VIOLATIONS_MAX`](super::VIOLATIONS_MAX) violations, in log order.
    pub violations: Vec<Violation>,
    /// Every violation seen, including those past [`VIOLATIONS_MAX`](super::VIOLATIONS_MAX).
    #[serde(default)]
    pub violations_total: u64,
}

/// One broken invariant: the entry where it shows, a code from [`code`](super::code), and a human detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub index: u64,
    pub code: String,
    pub detail: String,
}
