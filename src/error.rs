//! The one error type of the service layer, with the stable codes of the API contract.
//!
//! Domain code returns [`Error`]; `crate::http::problem` turns it into an HTTP status and a
//! problem+json body. Nothing here knows about HTTP.

use crate::api::ErrorCode;
use crate::rules::Refusal;
use crate::stamp::StampError;
use crate::store::StoreError;

/// Why a request failed. Each variant has one stable `code`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Occurs when the request is malformed: bad JSON, a missing field, a value out of range.
    #[error("{0}")]
    BadRequest(String),
    /// Occurs when the API key or admin token is missing or wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Occurs when a purchase costs more than the balance.
    #[error("balance {balance} is below the price {total}")]
    InsufficientFunds { balance: i64, total: u64 },
    /// Occurs when the named account, post, stamp or route does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// Occurs when a stamp in the request was spent before.
    #[error("stamp {0} was already spent")]
    AlreadySpent(uuid::Uuid),
    /// Occurs when an idempotency key or credit reference is reused with a different request.
    #[error("{0}")]
    IdempotencyConflict(&'static str),
    /// Occurs when the body is over the limit.
    #[error("request body is over the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// Occurs when a stamp does not parse, names an unknown key, does not verify or expired.
    #[error(transparent)]
    Stamp(#[from] StampError),
    /// Occurs when an action gets a different number of stamps than it costs now;
    /// `required` is that price (`u64::MAX` when it cannot be paid at all).
    #[error("this action costs {required} stamp(s) now; {got} attached")]
    WrongStampCount { required: u64, got: u64 },
    /// Occurs when the stamps of one post or vote were bought by more than one account.
    #[error("the stamps of one post or vote must all be bought by one account")]
    MixedPayers,
    /// Occurs when an account name is already taken (compared case-insensitively after NFC).
    #[error("an account with that name exists")]
    NameTaken,
    /// Occurs when a client sends more requests than its limit allows.
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Occurs when a client sends a request with credentials after more failed
    /// authentications than its budget allows: even the right key waits, so that a guesser
    /// learns nothing. `credential` says which budget ("API key" or "admin token").
    #[error(
        "too many failed authentications from this address (more than {failures_per_minute} a \
         minute with a wrong {credential}): requests carrying an {credential} are refused, the \
         right one too, for {retry_after_secs} s; check the {credential} your client sends"
    )]
    AuthFailuresLimited {
        retry_after_secs: u64,
        failures_per_minute: u32,
        credential: &'static str,
    },
    /// Occurs when the server cannot take writes (its storage failed, or it is shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// Occurs when the server's own ledger check is still far behind the log (after a start
    /// on a long log): `GET /v1/audit` would keep the client waiting.
    #[error(
        "the server's own ledger check has reached entry {checked} of {size}; ask again in \
         {retry_after_secs} s"
    )]
    AuditCatchingUp {
        checked: u64,
        size: u64,
        retry_after_secs: u64,
    },
    /// Occurs when a backup is asked of a store that takes none through the server.
    #[error("this store takes no backups through the server; use the database's own tools")]
    BackupNotSupported,
    /// Occurs when a stamp is held by a live hold.
    #[error("stamp {0} is held; it can be spent once its hold is released or expires")]
    StampHeld(uuid::Uuid),
    /// Occurs when a capture names a hold past its expiry, or released.
    #[error("the hold expired or was released")]
    HoldExpired,
    /// Occurs when a release names a captured hold.
    #[error("the hold was captured; its stamps are spent")]
    HoldCaptured,
    /// Occurs when a payment webhook's signature is missing, malformed, stale or wrong.
    #[error("the webhook's signature does not verify: {0}")]
    InvalidWebhookSignature(String),
    /// Occurs when an operator's credit or debit names a reference beginning with a payment
    /// provider's prefix (`stripe:`, `btcpay:`, `test:`): 400 `bad_request`.
    #[error("{0}; choose another reference")]
    ReservedReference(String),
    /// Occurs when a debit would revoke more stamps at once than one ledger entry holds.
    #[error("{0}")]
    DebitTooLarge(String),
    /// Occurs on a bug or storage failure; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code clients branch on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::AlreadySpent(_) => ErrorCode::StampAlreadySpent,
            Error::IdempotencyConflict(_) => ErrorCode::IdempotencyConflict,
            Error::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Error::Stamp(e) => ErrorCode::from(e),
            Error::WrongStampCount { .. } => ErrorCode::WrongStampCount,
            Error::MixedPayers => ErrorCode::MixedPayers,
            Error::NameTaken => ErrorCode::NameTaken,
            Error::RateLimited { .. } | Error::AuthFailuresLimited { .. } => ErrorCode::RateLimited,
            Error::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Error::AuditCatchingUp { .. } => ErrorCode::AuditCatchingUp,
            Error::BackupNotSupported => ErrorCode::BackupNotSupported,
            Error::Internal(_) => ErrorCode::InternalError,
            Error::StampHeld(_) => ErrorCode::StampHeld,
            Error::HoldExpired => ErrorCode::HoldExpired,
            Error::HoldCaptured => ErrorCode::HoldCaptured,
            Error::InvalidWebhookSignature(_) => ErrorCode::InvalidWebhookSignature,
            // PAYMENTS.md: refused with 400; API.md: `code` is one of the stable codes.
            Error::ReservedReference(_) => ErrorCode::BadRequest,
            Error::DebitTooLarge(_) => ErrorCode::DebitTooLarge,
        }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        match r {
            Refusal::NotFound(what) => Error::NotFound(what.as_str()),
            Refusal::InsufficientFunds { balance, total } => {
                Error::InsufficientFunds { balance, total }
            }
            Refusal::AlreadySpent(id) => Error::AlreadySpent(id),
            Refusal::NotSold(_) => Error::Stamp(StampError::Invalid("not sold by this server")),
            Refusal::Expired(_) => Error::Stamp(StampError::Expired),
            Refusal::IdempotencyConflict(what) => Error::IdempotencyConflict(what.as_str()),
            Refusal::Invalid(what) => Error::BadRequest(what.to_string()),
            Refusal::Overflow(what) => Error::BadRequest(format!("{what} would overflow")),
            Refusal::DuplicateStamp(_) => Error::Internal("stamp id collision".into()),
            Refusal::WrongStampCount { required, attached } => Error::WrongStampCount {
                required,
                got: attached,
            },
            Refusal::MixedPayers => Error::MixedPayers,
            Refusal::StampHeld(id) => Error::StampHeld(id),
            Refusal::HoldExpired => Error::HoldExpired,
            Refusal::HoldCaptured => Error::HoldCaptured,
            Refusal::HoldTtl => Error::BadRequest(r.to_string()),
            Refusal::ReservedReference { .. } => Error::ReservedReference(r.to_string()),
            Refusal::RevokeTooLarge => Error::DebitTooLarge(r.to_string()),
            Refusal::NameTaken => Error::NameTaken,
            // Both mean this server's keys directory is not the ledger's: a configuration
            // fault no client can fix, but another server behind the same address may serve.
            Refusal::KeyNotActive(kid) => {
                tracing::error!(kid = %kid, "this server signs with an issuer key the ledger \
                    does not show active; restart it with the keys directory of the server that \
                    rotated the keys");
                Error::Unavailable(
                    "this server's issuer key is not the ledger's active key; try again later"
                        .into(),
                )
            }
            Refusal::AnotherKeyActive(kid) => Error::Unavailable(format!(
                "the ledger's active issuer key is {kid}, which this server's keys directory \
                 does not hold as active; copy the keys directory from a server that does"
            )),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            // The database will be back: 503 with Retry-After, not a 500.
            StoreError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "database unavailable");
                metrics::counter!(crate::telemetry::DATABASE_UNAVAILABLE).increment(1);
                Error::Unavailable("the database is unavailable for now; try again shortly".into())
            }
            e => Error::Internal(e.to_string()),
        }
    }
}
