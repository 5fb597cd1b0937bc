//! The public HTTP API as types: the body of every request and answer of the routes in the
//! contract (`docs/api.md` has the full reference), shared by the server's handlers, the
//! command-line client, the bench and the integration tests, so that a field is named once
//! for both sides of a route.
//!
//! Wire rules these types keep:
//!
//! - The fields of an answer are declared in alphabetical order of their JSON names. Answers
//!   used to be built with `serde_json::json!`, whose objects sort their keys, so sorted
//!   fields keep every answer byte for byte what it was. The tests below check each one.
//! - The fields of a request keep the order the handlers declared them in: serde also reads a
//!   struct from a JSON array, in field order, and the same bodies must parse as before.
//! - An `Option` field of an answer is written as `null`, never left out: a client sees every
//!   field of an answer, set or not (so its schema marks it required, and nullable).
//! - Times are RFC 3339 text in UTC with whole seconds: [`Time`].
//! - Error codes are an enum, [`ErrorCode`], so a code that is not in it does not compile.
//! - Every type derives `utoipa::ToSchema` (queries `IntoParams`): `GET /openapi.json` is
//!   generated from these types (`crate::http::openapi`), so the document and the wire cannot
//!   drift apart field by field.
//!
//! Must not: check bounds or apply rules (the service does), or know about axum. Domain types
//! are converted to these at the edge (`crate::http::routes`), so renaming a domain field never
//! changes the wire.

use std::collections::BTreeMap;
use std::fmt;

use pennypost_audit::ViolationCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

use crate::stamp::StampError;
use crate::time::Timestamp;

/// A time on the wire: RFC 3339 text in UTC with whole seconds, `2025-11-26T21:45:46Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub Timestamp);

impl From<Timestamp> for Time {
    fn from(timestamp: Timestamp) -> Time {
        Time(timestamp)
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_rfc3339())
    }
}

impl PartialSchema for Time {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "RFC 3339 in UTC with whole seconds, `2025-11-26T21:45:46Z`.",
            ))
            .into()
    }
}

impl ToSchema for Time {}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Time, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text)
            .map(Time)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

mod holds;
mod money;
pub use holds::{CaptureResponse, HoldRequest, HoldResponse, HoldStateName, HoldStatusResponse};
pub use money::{
    AccountResponse, CreateAccountRequest, CreateAccountResponse, CreditRequest, CreditResponse,
    DebitRequest, DebitResponse, RevokedStamps,
};
mod payments;
pub use payments::{
    AdminPaymentsQuery, AdminPaymentsResponse, CreatePaymentRequest, PaymentProvider,
    PaymentProvidersResponse, PaymentResponse, PaymentStatusName, PaymentsPageResponse,
    PaymentsQuery, SettlePaymentRequest, WebhookResponse,
};

/// The `code` of an error answer: what clients branch on. The first seventeen, and
/// `stamp_held`, `hold_expired`, `hold_captured` (GATE.md) and `invalid_webhook_signature`
/// (PAYMENTS.md), are the stable codes of the contract; the rest are the server's documented
/// extensions, for statuses the contract has no code for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: malformed JSON, a missing field, a value out of range.
    BadRequest,
    /// 401: a missing or wrong API key or admin token.
    Unauthorized,
    /// 402: the balance is below the price of the purchase.
    InsufficientFunds,
    /// 404: no such account, post, stamp or route.
    NotFound,
    /// 409: a stamp in the request was spent before.
    StampAlreadySpent,
    /// 409: an `Idempotency-Key` or a credit reference reused with a different request.
    IdempotencyConflict,
    /// 409: an account with that name exists.
    NameTaken,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 422: a stamp that does not parse (prefix, base64, length, version).
    InvalidStamp,
    /// 422: a stamp signed under a key id the server never published.
    UnknownKey,
    /// 422: the signature does not verify.
    BadSignature,
    /// 422: the stamp is past its `expires_at`.
    StampExpired,
    /// 422: the action needs a different number of stamps than attached.
    WrongStampCount,
    /// 422: the stamps of one post or vote were bought by more than one account.
    MixedPayers,
    /// 409: `POST /v1/admin/backup` on a store that has its own backup tools.
    BackupNotSupported,
    /// 429: too many requests from this client.
    RateLimited,
    /// 503: the store cannot be reached or cannot write; retry after `Retry-After`.
    ServiceUnavailable,
    /// Extension, 405: the route does not take that method.
    MethodNotAllowed,
    /// Extension, 408: the request took longer than the server's time limit.
    RequestTimeout,
    /// Extension, 503: `GET /v1/audit` while the server's own ledger check catches up.
    AuditCatchingUp,
    /// Extension, 500: a bug or a storage failure; the cause is logged, never sent.
    InternalError,
    /// Stable (GATE.md), 409: a stamp in the request is held by a live hold.
    StampHeld,
    /// Stable (GATE.md), 409: a capture of a hold past its expiry, or released.
    HoldExpired,
    /// Stable (GATE.md), 409: a release of a captured hold.
    HoldCaptured,
    /// Stable (PAYMENTS.md), 400: a payment webhook whose signature is missing, malformed,
    /// stale or does not match; nothing was done.
    InvalidWebhookSignature,
    /// Extension, 422: a debit would revoke more stamps at once than one ledger entry holds.
    DebitTooLarge,
}

impl ErrorCode {
    /// Every code, in the order above.
    pub const ALL: [ErrorCode; 26] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::InsufficientFunds,
        ErrorCode::NotFound,
        ErrorCode::StampAlreadySpent,
        ErrorCode::IdempotencyConflict,
        ErrorCode::NameTaken,
        ErrorCode::PayloadTooLarge,
        ErrorCode::InvalidStamp,
        ErrorCode::UnknownKey,
        ErrorCode::BadSignature,
        ErrorCode::StampExpired,
        ErrorCode::WrongStampCount,
        ErrorCode::MixedPayers,
        ErrorCode::BackupNotSupported,
        ErrorCode::RateLimited,
        ErrorCode::ServiceUnavailable,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::AuditCatchingUp,
        ErrorCode::InternalError,
        ErrorCode::StampHeld,
        ErrorCode::HoldExpired,
        ErrorCode::HoldCaptured,
        ErrorCode::InvalidWebhookSignature,
        ErrorCode::DebitTooLarge,
    ];

    /// The code as it is written on the wire (the same text serde writes).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::NotFound => "not_found",
            ErrorCode::StampAlreadySpent => "stamp_already_spent",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::InvalidStamp => "invalid_stamp",
            ErrorCode::UnknownKey => "unknown_key",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::StampExpired => "stamp_expired",
            ErrorCode::WrongStampCount => "wrong_stamp_count",
            ErrorCode::MixedPayers => "mixed_payers",
            ErrorCode::BackupNotSupported => "backup_not_supported",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::AuditCatchingUp => "audit_catching_up",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::StampHeld => "stamp_held",
            ErrorCode::HoldExpired => "hold_expired",
            ErrorCode::HoldCaptured => "hold_captured",
            ErrorCode::InvalidWebhookSignature => "invalid_webhook_signature",
            ErrorCode::DebitTooLarge => "debit_too_large",
        }
    }
}

impl From<&StampError> for ErrorCode {
    /// The stable code of a refused stamp.
    fn from(e: &StampError) -> ErrorCode {
        match e {
            StampError::Invalid(_) => ErrorCode::InvalidStamp,
            StampError::UnknownKey(_) => ErrorCode::UnknownKey,
            StampError::BadSignature => ErrorCode::BadSignature,
            StampError::Expired => ErrorCode::StampExpired,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error answer, as `application/problem+json` (RFC 9457).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    pub code: ErrorCode,
    /// For people; clients branch on `code`, never on this.
    pub detail: String,
    /// The HTTP status again.
    pub status: u16,
    pub title: String,
    /// `https://pennypost.dev/problems/<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// With `wrong_stamp_count`: the action's price in stamps at the time of the refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<u64>,
}

/// Whether a stamp can still be spent, in `POST /v1/stamps/verify` and
/// `GET /v1/stamps/{stamp_id}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StampState {
    Unspent,
    Spent,
    Expired,
}

impl StampState {
    /// The state of a stamp that is `spent` or not and `expired` or not: a spent stamp is
    /// `spent` whether or not it has expired since.
    pub fn of(spent: bool, expired: bool) -> StampState {
        match (spent, expired) {
            (true, _) => StampState::Spent,
            (false, true) => StampState::Expired,
            (false, false) => StampState::Unspent,
        }
    }
}

/// Which way a vote goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

// ---------------------------------------------------------------------------------------------
// Health and keys.

/// `GET /healthz`: `{"status":"ok"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    pub status: String,
}

/// Whether an issuer key signs new stamps or only verifies old ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Retired,
}

/// `GET /v1/keys`: every issuer key the ledger ever published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeysResponse {
    pub keys: Vec<KeyInfo>,
}

/// One issuer key of `GET /v1/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    /// Always `Ed25519`.
    pub alg: String,
    pub created_at: Time,
    /// Lowercase hex of the first 8 bytes of SHA-256 of the public key.
    pub kid: String,
    /// The 32-byte public key, base64url without padding.
    pub public_key: String,
    pub status: KeyStatus,
}

// ---------------------------------------------------------------------------------------------
// Stamps.

/// `GET /v1/prices`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PricesResponse {
    /// The base costs; the policy says when a post or vote costs more.
    pub costs: Costs,
    pub currency: String,
    pub policy: PolicyInfo,
    /// The price of one stamp, in minor units.
    pub stamp_price: u64,
}

/// The policy in force: every parameter of the economy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyInfo {
    pub post_cost: u64,
    pub refund_voters: u64,
    pub repeat_factor: u64,
    pub repeat_window_secs: u64,
    pub stamp_price: u64,
    pub vote_cost: u64,
    /// `quadratic` or `flat`.
    pub vote_pricing: String,
}

/// `POST /v1/quote`: what an action would cost its payer now. The payer is the account of
/// the API key, or else the payer of `stamp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteRequest {
    pub action: QuoteAction,
    /// The post to vote on (votes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_id: Option<Uuid>,
    /// A stamp whose payer would pay, when no API key is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
}

/// What a quote prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuoteAction {
    Post,
    Vote,
}

/// The answer of a quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteResponse {
    pub action: QuoteAction,
    /// Stamps the action costs that payer now.
    pub stamps: u64,
}

/// How many stamps each action costs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Costs {
    pub post: usize,
    pub vote: usize,
}

/// `POST /v1/stamps/purchase` (with an optional `Idempotency-Key` header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PurchaseRequest {
    pub count: u64,
}

/// The answer of a purchase, new or replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PurchaseResponse {
    pub balance: u64,
    pub count: u32,
    pub expires_at: Time,
    pub issued_at: Time,
    pub ledger_index: u64,
    pub purchase_id: Uuid,
    /// The stamps, `pp1.…` each.
    pub stamps: Vec<String>,
    pub total: u64,
    pub unit_price: u64,
}

/// `POST /v1/stamps/verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyRequest {
    pub stamp: String,
}

/// The answer of a verify: always 200, saying why when the stamp is not valid. The fields
/// other than `valid` and `code` are null when the stamp does not decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    /// Null when valid.
    #[schema(required = true)]
    pub code: Option<ErrorCode>,
    #[schema(required = true)]
    pub expires_at: Option<Time>,
    #[schema(required = true)]
    pub issued_at: Option<Time>,
    #[schema(required = true)]
    pub kid: Option<String>,
    #[schema(required = true)]
    pub stamp_id: Option<Uuid>,
    /// Null when the stamp does not decode or its signature does not verify.
    #[schema(required = true)]
    pub state: Option<StampState>,
    pub valid: bool,
}

/// `POST /v1/stamps/redeem`: another site's action paid with a stamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RedeemRequest {
    pub stamp: String,
    /// What the stamp paid for, 1 to 512 bytes.
    pub context: String,
}

/// The answer of a redeem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RedeemResponse {
    pub ledger_index: u64,
    pub spent_at: Time,
    pub stamp_id: Uuid,
}

/// `GET /v1/stamps/{stamp_id}`. The spend fields are null while the stamp is unspent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StampStatusResponse {
    pub expires_at: Time,
    pub issued_at: Time,
    pub kid: String,
    #[schema(required = true)]
    pub ledger_index: Option<u64>,
    #[schema(required = true)]
    pub spent_at: Option<Time>,
    #[schema(required = true)]
    pub spent_for: Option<String>,
    pub stamp_id: Uuid,
    pub state: StampState,
}

// ---------------------------------------------------------------------------------------------
// The board.

/// `POST /v1/posts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatePostRequest {
    /// Required without an API key; with one, the account's name (and may be left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub body: String,
    /// Exactly the post's price in stamps.
    pub stamps: Vec<String>,
}

/// A post: the answer of `POST /v1/posts` and `GET /v1/posts/{post_id}`, and each post of a
/// page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Post {
    pub author: String,
    pub body: String,
    /// Stamps the post cost.
    pub cost: u64,
    pub created_at: Time,
    pub ledger_index: u64,
    pub post_id: Uuid,
    /// Whether its base postage went back to its payer.
    pub refunded: bool,
    pub score: i64,
    /// Whether the author is the account that posted it with its API key.
    pub verified: bool,
    /// Distinct payers of its votes: 40 votes from 1 voter is a bought post.
    pub voters: u64,
    pub votes_down: u64,
    pub votes_up: u64,
}

/// The query of `GET /v1/posts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PostsQuery {
    /// Posts per page; 50 when not given.
    pub limit: Option<usize>,
    /// Only posts older than this one.
    pub before: Option<Uuid>,
}

/// `GET /v1/posts`: a page, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PostsPageResponse {
    /// The `before` of the next page, when there may be one.
    #[schema(required = true)]
    pub next_before: Option<Uuid>,
    pub posts: Vec<Post>,
}

/// `POST /v1/posts/{post_id}/votes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VoteRequest {
    pub direction: Direction,
    /// Exactly the vote's price in stamps.
    pub stamps: Vec<String>,
}

/// The answer of a vote: the post's score after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VoteResponse {
    /// Stamps the vote cost.
    pub cost: u64,
    pub ledger_index: u64,
    pub post_id: Uuid,
    /// The `refund` entry this vote completed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_ledger_index: Option<u64>,
    pub score: i64,
}

// ---------------------------------------------------------------------------------------------
// The ledger.

/// `GET /v1/ledger/key`: the key that signs checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerKeyResponse {
    pub name: String,
    pub origin: String,
    /// base64url without padding.
    pub public_key: String,
    /// The C2SP signed-note verifier key.
    pub vkey: String,
}

/// The query of `GET /v1/ledger/entries`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntriesQuery {
    /// The first entry's index; 0 when not given.
    pub start: Option<u64>,
    /// At most this many entries; the server's page limit when not given.
    pub limit: Option<u64>,
    /// Another name of `start`, as the consistency proof names sizes (not with `start`).
    pub from: Option<u64>,
    /// The index after the last entry wanted (entries `from` to `to` − 1, still at most a
    /// page); not with `limit`.
    pub to: Option<u64>,
}

/// The query of `GET /v1/ledger/proof/inclusion`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionProofQuery {
    pub index: u64,
    pub size: u64,
}

/// The query of `GET /v1/ledger/proof/consistency`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyProofQuery {
    pub from: u64,
    pub to: u64,
}

/// An inclusion or consistency proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProofResponse {
    /// Each hash in standard padded base64, as in C2SP checkpoints.
    pub hashes: Vec<String>,
}

/// `GET /v1/audit`: the server's own check of every durable entry, the auditor crate's
/// [`pennypost_audit::AuditReport`] as it is served (fields in alphabetical order, as
/// `serde_json::Value` wrote them when the answer went through one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = AuditReport)]
pub struct AuditResponse {
    /// Credits by source (`operator`, `stripe`, `btcpay`, `test`). Absent from servers older
    /// than payments.
    #[serde(default)]
    #[schema(required = false)]
    pub credits_by_source: BTreeMap<String, u64>,
    pub credits_total: u64,
    /// Money taken back by debits (refunds, disputes, corrections). Absent from servers older
    /// than payments.
    #[serde(default)]
    #[schema(required = false)]
    pub debits_total: u64,
    /// Entries checked (the durable size).
    pub ledger_size: u64,
    /// True when no violation was found.
    pub ok: bool,
    pub purchases_total: u64,
    /// Absent from servers older than the economy.
    #[serde(default)]
    #[schema(required = false)]
    pub refunds_total: u64,
    /// The unit prices of the stamps revoked after debits. Absent from servers older than
    /// payments.
    #[serde(default)]
    #[schema(required = false)]
    pub revoked_total: u64,
    /// Sold, never spent, past `expires_at`.
    pub stamps_expired: u64,
    pub stamps_issued: u64,
    /// Sold, never spent, not yet expired.
    pub stamps_outstanding: u64,
    pub stamps_spent: u64,
    /// The first 1000 violations, in log order.
    pub violations: Vec<ViolationInfo>,
    /// Every violation found.
    #[schema(required = true)]
    pub violations_total: u64,
}

/// One broken invariant of the ledger (`docs/ledger.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Violation)]
pub struct ViolationInfo {
    /// A violation code of `docs/ledger.md` (not an HTTP error code).
    #[schema(schema_with = violation_code_schema)]
    pub code: ViolationCode,
    pub detail: String,
    /// The entry where it shows.
    pub index: u64,
}

/// The schema of a violation code: text, one of [`ViolationCode::ALL`]. (The auditor crate
/// does not depend on utoipa, so the schema is written here from its list.)
fn violation_code_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ViolationCode::ALL.map(ViolationCode::as_str)))
}

impl From<pennypost_audit::AuditReport> for AuditResponse {
    fn from(report: pennypost_audit::AuditReport) -> AuditResponse {
        AuditResponse {
            credits_by_source: report.credits_by_source,
            credits_total: report.credits_total,
            debits_total: report.debits_total,
            ledger_size: report.ledger_size,
            ok: report.ok,
            purchases_total: report.purchases_total,
            refunds_total: report.refunds_total,
            revoked_total: report.revoked_total,
            stamps_expired: report.stamps_expired,
            stamps_issued: report.stamps_issued,
            stamps_outstanding: report.stamps_outstanding,
            stamps_spent: report.stamps_spent,
            violations: report
                .violations
                .into_iter()
                .map(|v| ViolationInfo {
                    code: v.code,
                    detail: v.detail,
                    index: v.index,
                })
                .collect(),
            violations_total: report.violations_total,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Operations.

/// `POST /v1/admin/backup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupRequest {
    /// A new directory on the server's machine, absolute; it must not exist yet.
    pub path: String,
}

/// The answer of a backup: where it is and the ledger size it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupResponse {
    /// Entries of the ledger in the copy.
    pub ledger_size: u64,
    /// The directory written: a data directory for `pennypost serve --data-dir`.
    pub path: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn time(seconds: i64) -> Time {
        Time(Timestamp::from_unix(seconds))
    }

    /// Serializes `answer` as the server does, and checks the keys of every object in it are
    /// sorted (what `json!` wrote) and that it reads back as it was.
    fn wire<T>(answer: &T) -> String
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug,
    {
        let text = serde_json::to_string(answer).expect("serialize");
        let sorted = serde_json::to_value(answer).expect("to value").to_string();
        assert_eq!(text, sorted, "fields out of alphabetical order");
        let back: T = serde_json::from_str(&text).expect("read back");
        assert_eq!(&back, answer);
        text
    }

    #[test]
    fn every_code_is_written_as_its_text_and_read_back() {
        for code in ErrorCode::ALL {
            let text = serde_json::to_string(&code).expect("serialize");
            assert_eq!(text, format!("\"{}\"", code.as_str()));
            assert_eq!(code.to_string(), code.as_str());
            let back: ErrorCode = serde_json::from_str(&text).expect("read back");
            assert_eq!(back, code);
        }
        assert_eq!(ErrorCode::InternalError.as_str(), "internal_error");
        let stamp_codes = [
            (StampError::Invalid("x"), "invalid_stamp"),
            (
                StampError::UnknownKey(crate::stamp::Kid([0; 8])),
                "unknown_key",
            ),
            (StampError::BadSignature, "bad_signature"),
            (StampError::Expired, "stamp_expired"),
        ];
        for (error, code) in stamp_codes {
            assert_eq!(ErrorCode::from(&error).as_str(), code, "{error}");
        }
        assert!(serde_json::from_str::<ErrorCode>("\"internal\"").is_err());
    }

    #[test]
    fn times_are_rfc_3339_text() {
        assert_eq!(
            serde_json::to_string(&time(1_764_193_546)).expect("time"),
            "\"2025-11-26T21:45:46Z\""
        );
        assert!(serde_json::from_str::<Time>("1764193546").is_err());
        assert!(serde_json::from_str::<Time>("\"yesterday\"").is_err());
    }

    #[test]
    fn null_fields_are_written_not_left_out() {
        let text = wire(&VerifyResponse {
            code: Some(ErrorCode::InvalidStamp),
            expires_at: None,
            issued_at: None,
            kid: None,
            stamp_id: None,
            state: None,
            valid: false,
        });
        assert_eq!(
            text,
            r#"{"code":"invalid_stamp","expires_at":null,"issued_at":null,"kid":null,"stamp_id":null,"state":null,"valid":false}"#
        );
        let text = wire(&StampStatusResponse {
            expires_at: time(100),
            issued_at: time(0),
            kid: "00112233445566ff".into(),
            ledger_index: None,
            spent_at: None,
            spent_for: None,
            stamp_id: Uuid::nil(),
            state: StampState::Unspent,
        });
        assert!(
            text.contains(r#""ledger_index":null,"spent_at":null,"spent_for":null"#),
            "{text}"
        );
        let text = wire(&AccountResponse {
            account_id: Uuid::nil(),
            balance: 0,
            currency: "cents".into(),
            name: None,
            refunds_total: 0,
            stamps_purchased: 0,
            stamps_spent: 0,
        });
        assert!(text.contains(r#""name":null"#), "{text}");
    }

    #[test]
    fn answers_are_written_as_json_wrote_them() {
        let id = Uuid::from_u128(1);
        let post = Post {
            author: "a".into(),
            body: "b".into(),
            cost: 2,
            created_at: time(0),
            ledger_index: 3,
            post_id: id,
            refunded: false,
            score: -1,
            verified: true,
            voters: 1,
            votes_down: 2,
            votes_up: 1,
        };
        wire(&HealthResponse {
            status: "ok".into(),
        });
        wire(&KeysResponse {
            keys: vec![KeyInfo {
                alg: "Ed25519".into(),
                created_at: time(0),
                kid: "00".into(),
                public_key: "k".into(),
                status: KeyStatus::Retired,
            }],
        });
        wire(&CreateAccountResponse {
            account_id: id,
            api_key: "ppk_".into(),
        });
        wire(&CreditResponse {
            account_id: id,
            balance: 1,
            ledger_index: 2,
        });
        wire(&DebitResponse {
            account_id: id,
            balance: -3,
            ledger_index: 2,
            revoked: Some(RevokedStamps {
                amount: 5,
                ledger_index: 3,
                stamps: 1,
            }),
        });
        wire(&DebitResponse {
            account_id: id,
            balance: 4,
            ledger_index: 2,
            revoked: None,
        });
        wire(&PricesResponse {
            costs: Costs { post: 1, vote: 2 },
            currency: "cents".into(),
            policy: PolicyInfo {
                post_cost: 1,
                refund_voters: 3,
                repeat_factor: 2,
                repeat_window_secs: 600,
                stamp_price: 3,
                vote_cost: 2,
                vote_pricing: "quadratic".into(),
            },
            stamp_price: 3,
        });
        wire(&QuoteResponse {
            action: QuoteAction::Vote,
            stamps: 3,
        });
        wire(&PurchaseResponse {
            balance: 1,
            count: 1,
            expires_at: time(1),
            issued_at: time(0),
            ledger_index: 1,
            purchase_id: id,
            stamps: vec!["pp1.a.b".into()],
            total: 1,
            unit_price: 1,
        });
        wire(&RedeemResponse {
            ledger_index: 1,
            spent_at: time(0),
            stamp_id: id,
        });
        wire(&post);
        wire(&PostsPageResponse {
            next_before: Some(id),
            posts: vec![post.clone()],
        });
        wire(&VoteResponse {
            cost: 1,
            ledger_index: 1,
            post_id: id,
            refund_ledger_index: Some(2),
            score: 2,
        });
        wire(&LedgerKeyResponse {
            name: "n".into(),
            origin: "o".into(),
            public_key: "k".into(),
            vkey: "v".into(),
        });
        wire(&ProofResponse {
            hashes: vec!["h".into()],
        });
        let mut checker = pennypost_audit::LedgerChecker::new();
        checker.push(b"not json");
        let report = AuditResponse::from(checker.report(0));
        assert_eq!(report.violations[0].code, ViolationCode::MalformedEntry);
        let text = wire(&report);
        // What `serde_json::Value` wrote when the answer went through one.
        let through_value = serde_json::to_value(checker.report(0)).expect("report");
        assert_eq!(text, through_value.to_string());
        wire(&BackupResponse {
            ledger_size: 3,
            path: "/var/backups/pennypost".into(),
        });
        wire(&Problem {
            code: ErrorCode::NotFound,
            detail: "no such route".into(),
            status: 404,
            title: "Not found".into(),
            problem_type: "https://pennypost.dev/problems/not_found".into(),
            required: None,
        });
    }

    #[test]
    fn requests_read_what_clients_send() {
        let none: CreateAccountRequest = serde_json::from_value(json!({})).expect("no name");
        assert_eq!(none.name, None);
        let null: CreateAccountRequest =
            serde_json::from_value(json!({"name": null})).expect("null name");
        assert_eq!(null.name, None);
        assert!(serde_json::from_value::<CreateAccountRequest>(json!([])).is_err());
        // A client without a name sends `{}`, as before.
        assert_eq!(
            serde_json::to_value(CreateAccountRequest::default()).expect("json"),
            json!({})
        );
        let vote: VoteRequest =
            serde_json::from_value(json!({"direction": "down", "stamps": []})).expect("vote");
        assert_eq!(vote.direction, Direction::Down);
        assert!(
            serde_json::from_value::<VoteRequest>(json!({"direction": "Up", "stamps": []}))
                .is_err()
        );
        // A post without its stamps field is malformed (400), not a post with none.
        assert!(
            serde_json::from_value::<CreatePostRequest>(json!({"author": "a", "body": "b"}))
                .is_err()
        );
    }

    #[test]
    fn a_spent_stamp_stays_spent_after_it_expires() {
        assert_eq!(StampState::of(true, true), StampState::Spent);
        assert_eq!(StampState::of(true, false), StampState::Spent);
        assert_eq!(StampState::of(false, true), StampState::Expired);
        assert_eq!(StampState::of(false, false), StampState::Unspent);
    }
}
