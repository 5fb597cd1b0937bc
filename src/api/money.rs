//! The bodies of the operator's money routes (`POST /v1/admin/accounts/{account_id}/credit`
//! and `…/debit`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/admin/accounts/{account_id}/credit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreditRequest {
    pub amount: u64,
    /// Unique across the ledger: the same reference with the same account and amount credits
    /// nothing and answers as the first time did. References beginning `stripe:`, `btcpay:`
    /// or `test:` are the payment providers' and refused (`reserved_reference`).
    pub reference: String,
}

/// The answer of a credit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreditResponse {
    pub account_id: Uuid,
    /// The balance right after the credit; below zero while the account is in debt.
    pub balance: i64,
    pub ledger_index: u64,
}

/// `POST /v1/admin/accounts/{account_id}/debit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DebitRequest {
    pub amount: u64,
    /// Unique among credits and debits together: the same reference with the same account and
    /// amount debits nothing and answers as the first time did. References beginning
    /// `stripe:`, `btcpay:` or `test:` are the payment providers' and refused
    /// (`reserved_reference`).
    pub reference: String,
}

/// The answer of a debit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DebitResponse {
    pub account_id: Uuid,
    /// The balance right after the debit and its revoke; below zero for a debt.
    pub balance: i64,
    pub ledger_index: u64,
    /// The `revoke` the debit caused: absent when the balance stayed at zero or above, or
    /// the account had no unspent, unexpired stamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<RevokedStamps>,
}

/// Stamps taken back after a debit left the balance below zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokedStamps {
    /// Their unit prices' sum, given back to the balance.
    pub amount: u64,
    /// The `revoke` spend's entry.
    pub ledger_index: u64,
    /// Stamps revoked (they answer `stamp_already_spent` from now on).
    pub stamps: u64,
}
