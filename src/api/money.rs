//! The bodies of the account routes (`POST /v1/accounts`, `GET /v1/account`) and of the
//! operator's money routes (`POST /v1/admin/accounts/{account_id}/credit` and `…/debit`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/accounts` (the body is optional; so is the name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateAccountRequest {
    /// Left out of the body when `None`. (No `#[serde(default)]`: serde fills a missing
    /// `Option` field of an object with `None` anyway, and `default` would also make `[]` a
    /// valid body.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The answer of `POST /v1/accounts`. The API key is shown this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateAccountResponse {
    pub account_id: Uuid,
    pub api_key: String,
}

/// `GET /v1/account`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountResponse {
    pub account_id: Uuid,
    /// What the account may spend, in minor units; below zero while it owes a debt (a debit
    /// took back more than its balance and unspent stamps covered).
    pub balance: i64,
    pub currency: String,
    #[schema(required = true)]
    pub name: Option<String>,
    /// Base postage refunded to this account (its posts that members up-voted), minor units.
    pub refunds_total: u64,
    pub stamps_purchased: u64,
    /// Stamps this account bought that have since been spent, by anyone.
    pub stamps_spent: u64,
}

/// `POST /v1/admin/accounts/{account_id}/credit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreditRequest {
    pub amount: u64,
    /// Unique across the ledger: the same reference with the same account and amount credits
    /// nothing and answers as the first time did. References beginning `stripe:`, `btcpay:`
    /// or `test:` are the payment providers' and refused (400 `bad_request`).
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
    /// `stripe:`, `btcpay:` or `test:` are the payment providers' and refused (400
    /// `bad_request`).
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
