//! Money in: the payment providers behind one trait, [`Provider`].
//!
//! A provider creates a payment at its end (a Stripe Checkout Session, a BTCPay invoice, a
//! test payment), tells what its API says about it, verifies its webhooks and confirms them.
//! This layer owns the talking to providers and nothing else: it never touches the store,
//! never credits, never decides what a confirmation does to a balance. The service above it
//! records payments, credits once under [`reference::payment`] and debits refunds and disputes.
//!
//! The rule every caller keeps (Stripe's fulfilment guide, cdk's LNbits backend): a webhook is
//! a *hint*. [`Provider::verify_webhook`] checks its signature and says what to re-check
//! ([`Hint`]); only [`Provider::confirm`] (or [`Provider::check`]), which asks the provider's
//! API, says what happened ([`Confirmed`]).
//!
//! Modelled on cdk's `MintPayment` (`crates/cdk-common/src/payment.rs`): one trait, one module
//! per provider ([`stripe`], [`btcpay`], [`test_provider`]); nothing above names a provider but
//! the configuration that builds them ([`config::PaymentsConfig::build`]). A new provider
//! (LNbits, PayPal) is one new module implementing [`Provider`] (with its settings type and
//! signature check, as `btcpay.rs` has them); `PaymentsConfig` then gains its flags and
//! `build` one line that constructs it.
//!
//! Every HTTP call has a bounded time ([`client::CONNECT_TIMEOUT`],
//! [`client::REQUEST_TIMEOUT_DEFAULT`]) and a bounded answer ([`client::ANSWER_BYTES_MAX`]);
//! whatever a provider answers becomes a value or a [`ProviderError`], never a panic. Secrets
//! are [`Secret`]s, whose `Debug` prints `***`.

pub mod btcpay;
pub mod client;
pub mod config;
pub mod currency;
pub mod reference;
pub mod stripe;
pub mod test_provider;

use std::fmt;

use futures_util::future::BoxFuture;
use reqwest::header::HeaderMap;
use uuid::Uuid;

use crate::time::Timestamp;

pub use config::{PaymentsConfig, Providers};

/// A secret setting (an API key, a webhook secret). It prints as `***` in `Debug` and has no
/// `Display` or `Serialize`, so it cannot reach a log, a metric or an answer by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends or keys with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An amount in minor units of a currency, as a provider confirmed it. Currencies are
/// compared without case (`usd` is `USD`); the code is kept as written.
#[derive(Clone, Debug)]
pub struct Money {
    pub amount: u64,
    pub currency: String,
}

impl Money {
    pub fn new(amount: u64, currency: impl Into<String>) -> Money {
        Money {
            amount,
            currency: currency.into(),
        }
    }
}

impl PartialEq for Money {
    fn eq(&self, other: &Money) -> bool {
        self.amount == other.amount && self.currency.eq_ignore_ascii_case(&other.currency)
    }
}

impl Eq for Money {}

/// What the server asks a provider to create: one payment of `amount` minor units of the
/// provider's currency (the server's `--currency`).
#[derive(Clone, Debug)]
pub struct NewPayment {
    /// The server's id of the payment: sent to the provider (Stripe's `client_reference_id`
    /// and `metadata[pennypost_payment]`, BTCPay's `metadata.orderId`), in the return URL
    /// (`<public url>/?payment=<id>`) and in the idempotency key of the creation.
    pub payment_id: Uuid,
    pub amount: u64,
}

/// What a provider created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The provider's id of the payment (a session id `cs_…`, an invoice id, the test
    /// payment's id): what [`Provider::check`] takes, and the credit's ledger reference is
    /// [`reference::payment`] of it.
    pub reference: String,
    /// Where the member pays.
    pub pay_url: String,
    /// When the provider stops taking the payment.
    pub expires_at: Timestamp,
}

/// What a provider's API says about one payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentState {
    /// Waiting for the member (a session `open`, an invoice `New`).
    Open,
    /// The member did something that is not yet money (a Stripe session `complete` but not
    /// `paid`: an asynchronous method still settling; a BTCPay invoice `Processing`).
    Processing,
    /// Paid, in this amount: credit it if it equals the payment's amount and currency.
    Paid(Money),
    /// Paid, but in an amount that is no whole number of minor units of a currency this
    /// server knows (BTCPay `"5.001"`, or a currency outside ISO 4217), as the provider wrote
    /// it: never credited.
    PaidOther { amount: String, currency: String },
    /// The provider stopped taking it, unpaid.
    Expired,
    /// The payment failed (an asynchronous payment failed, an invoice invalid).
    Failed,
}

/// What to do with a payment whose expected amount is known, from [`PaymentState::against`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Ask again later.
    Pending,
    /// Paid as expected: credit it.
    Credit,
    /// Paid, but not the amount or currency expected: never credited; `failed`, logged,
    /// counted, for the operator to settle by hand.
    Mismatch,
    Expired,
    Failed,
}

impl PaymentState {
    /// This state judged against the payment's own amount and currency.
    pub fn against(&self, expected: &Money) -> Verdict {
        match self {
            PaymentState::Open | PaymentState::Processing => Verdict::Pending,
            PaymentState::Paid(paid) if paid == expected => Verdict::Credit,
            PaymentState::Paid(_) | PaymentState::PaidOther { .. } => Verdict::Mismatch,
            PaymentState::Expired => Verdict::Expired,
            PaymentState::Failed => Verdict::Failed,
        }
    }
}

/// One payment as the provider's API described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The provider's id of the payment ([`Created::reference`]).
    pub reference: String,
    /// The server's payment id as the provider echoes it back (`None` when absent or not a
    /// uuid: then this payment was not created by a pennypost server).
    pub payment_id: Option<Uuid>,
    pub state: PaymentState,
    /// Stripe: the session's PaymentIntent (`pi_…`), which refunds and disputes name; kept
    /// with the payment. `None` elsewhere, or before the member paid.
    pub charge_ref: Option<String>,
}

/// A verified webhook: the provider's event, reduced to what must be re-checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The event's id (Stripe `evt_…`, BTCPay `deliveryId`), for the log only: redeliveries
    /// carry new ids, and nothing may be decided by it.
    pub id: String,
    /// The event's type as the provider named it (`checkout.session.completed`,
    /// `InvoiceSettled`), for the log and metrics.
    pub kind: String,
    pub hint: Hint,
}

/// What an event says happened, before anyone believes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    Paid,
    Expired,
    Failed,
}

/// What a verified webhook asks the server to re-check with [`Provider::confirm`]. Every id
/// here passed [`reference::is_valid_id`], so it is safe in a URL path and a ledger reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hint {
    /// Re-check this payment (a session, an invoice), which the event claims reached `claim`.
    Payment { reference: String, claim: Claim },
    /// Re-check this Stripe charge's cumulative refunds (`charge.refunded`,
    /// `charge.refund.updated`).
    Charge { charge: String },
    /// Re-check this Stripe dispute (`charge.dispute.*`).
    Dispute { dispute: String },
    /// An event this server does not act on: answer 200 and do nothing.
    Ignored,
}

/// What a provider's API confirmed, from [`Provider::confirm`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// The payment's state ([`Hint::Payment`]).
    Payment(Checked),
    /// A charge's refunds ([`Hint::Charge`]).
    Refund(RefundState),
    /// A dispute's state ([`Hint::Dispute`]).
    Dispute(DisputeState),
    /// Nothing to do ([`Hint::Ignored`], or a provider with no such events).
    Nothing,
}

/// A Stripe charge's refunds, as its API says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundState {
    pub charge: String,
    /// The payment the charge paid, found by its PaymentIntent (`GET
    /// /v1/checkout/sessions?payment_intent=`), with its own state so a payment still
    /// pending here can be settled first. `None`: the charge paid no Checkout Session, so
    /// it is no payment of this server's.
    pub payment: Option<Checked>,
    /// What the charge took.
    pub charged: Money,
    /// Refunded so far, cumulative (`amount_refunded`): debit what was not debited yet for
    /// this charge (reference [`reference::refund`]); if it fell, credit the difference back
    /// ([`reference::refund_reversed`]).
    pub refunded: Money,
}

/// Where a dispute's money is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisputeFunds {
    /// No money moved (an inquiry, or a dispute whose funds were not taken yet).
    Held,
    /// Stripe took the disputed amount from the balance: debit it
    /// ([`reference::dispute`]).
    Withdrawn,
    /// Taken and given back (the dispute was won): credit back what the dispute debited
    /// ([`reference::dispute_reinstated`]), after the debit.
    Reinstated,
}

/// A Stripe dispute, as its API says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeState {
    pub dispute: String,
    pub charge: String,
    /// As in [`RefundState::payment`].
    pub payment: Option<Checked>,
    /// The disputed amount (to be capped by the service so that refunds and disputes of one
    /// payment never exceed what it credited).
    pub amount: Money,
    pub funds: DisputeFunds,
    /// Stripe's status (`warning_needs_response`, `needs_response`, `under_review`, `won`,
    /// `lost`, …), for the payment's status and the log.
    pub status: String,
}

/// Why a call to a provider's API gave no usable answer. Every variant means "not now": the
/// HTTP layer answers 503 `service_unavailable` (a webhook is then retried by the provider),
/// and nothing is recorded. `call` names the API call without ids (`GET
/// /v1/checkout/sessions/{id}`), fit for a log line and a metric label.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Occurs when the provider cannot be reached (connection refused, DNS, TLS).
    #[error("{provider} {call}: unreachable: {detail}")]
    Unreachable {
        provider: &'static str,
        call: &'static str,
        detail: String,
    },
    /// Occurs when the provider does not answer in time.
    #[error("{provider} {call}: no answer within {secs} s")]
    Timeout {
        provider: &'static str,
        call: &'static str,
        secs: u64,
    },
    /// Occurs when the answer is not what the provider's documentation promises (not JSON,
    /// a field missing or of the wrong type, an id of the wrong shape, too long).
    #[error("{provider} {call}: bad answer: {detail}")]
    BadAnswer {
        provider: &'static str,
        call: &'static str,
        detail: String,
    },
    /// Occurs when the provider answers with an error status (a revoked key, a refused
    /// request, its own outage), with its message when it gave one.
    #[error("{provider} {call}: refused with HTTP {status}: {detail}")]
    Refused {
        provider: &'static str,
        call: &'static str,
        status: u16,
        detail: String,
    },
}

impl ProviderError {
    /// The provider's name, for metrics.
    pub fn provider(&self) -> &'static str {
        match self {
            ProviderError::Unreachable { provider, .. }
            | ProviderError::Timeout { provider, .. }
            | ProviderError::BadAnswer { provider, .. }
            | ProviderError::Refused { provider, .. } => provider,
        }
    }

    /// A short stable label of the kind of failure, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Unreachable { .. } => "unreachable",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::BadAnswer { .. } => "bad_answer",
            ProviderError::Refused { .. } => "refused",
        }
    }
}

impl From<ProviderError> for crate::error::Error {
    /// 503 `service_unavailable` (with `Retry-After`), naming the provider but not what it
    /// said, which is logged instead.
    fn from(error: ProviderError) -> crate::error::Error {
        tracing::warn!(
            provider = error.provider(),
            kind = error.kind(),
            cause = %error,
            "payment provider unavailable"
        );
        crate::error::Error::Unavailable(format!(
            "the payment provider {} cannot be asked for now; try again shortly",
            error.provider()
        ))
    }
}

/// Why a webhook was not accepted. The signature errors ([`WebhookError::is_signature`])
/// answer 400 `invalid_webhook_signature`; a signed body that is no event this provider
/// sends answers 400 `bad_request`; in both cases nothing is done.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Occurs when the signature header is absent.
    #[error("the {0} header is missing")]
    MissingSignature(&'static str),
    /// Occurs when the signature header does not parse (no timestamp, no signature, not hex,
    /// too long).
    #[error("the signature header is malformed: {0}")]
    MalformedSignature(&'static str),
    /// Occurs when no signature in the header matches the body under the webhook secret.
    #[error("no signature matches the body")]
    BadSignature,
    /// Occurs when the signed time is further from now than the tolerance (a replay, or a
    /// clock far off).
    #[error("the signature is {age_secs} s from now, beyond the tolerance")]
    StaleSignature { age_secs: i64 },
    /// Occurs when a correctly signed body is not an event this provider sends.
    #[error("the webhook body is not an event: {0}")]
    BadBody(String),
    /// Occurs when this provider takes no webhooks (the test provider).
    #[error("this provider takes no webhooks")]
    NotSupported,
}

impl WebhookError {
    /// A short stable label of a signature failure, for metrics (`None` for the others).
    pub fn signature_reason(&self) -> Option<&'static str> {
        match self {
            WebhookError::MissingSignature(_) => Some("missing"),
            WebhookError::MalformedSignature(_) => Some("malformed"),
            WebhookError::BadSignature => Some("mismatch"),
            WebhookError::StaleSignature { .. } => Some("stale"),
            WebhookError::BadBody(_) | WebhookError::NotSupported => None,
        }
    }

    /// Counts this error when it is a signature failure
    /// ([`crate::telemetry::PAYMENT_WEBHOOK_SIGNATURE_FAILURES`]); every provider's
    /// `verify_webhook` passes its errors through here, so no caller counts them again.
    pub(crate) fn counted(self, provider: &'static str) -> WebhookError {
        if let Some(reason) = self.signature_reason() {
            metrics::counter!(
                crate::telemetry::PAYMENT_WEBHOOK_SIGNATURE_FAILURES,
                "provider" => provider,
                "reason" => reason,
            )
            .increment(1);
        }
        self
    }

    /// Whether this is a failed signature check (400 `invalid_webhook_signature`), rather
    /// than a bad body or a provider without webhooks.
    pub fn is_signature(&self) -> bool {
        matches!(
            self,
            WebhookError::MissingSignature(_)
                | WebhookError::MalformedSignature(_)
                | WebhookError::BadSignature
                | WebhookError::StaleSignature { .. }
        )
    }
}

/// One payment provider. Every method is safe to call concurrently, from any number of
/// servers, any number of times: the provider's answer decides, and the store's unique
/// reference makes a second credit impossible.
///
/// The async methods return boxed futures so that the server can hold providers as
/// `Arc<dyn Provider>` without naming them. `Debug` prints no secret.
pub trait Provider: Send + Sync + fmt::Debug {
    /// The provider's name: `stripe`, `btcpay`, `test`. It is the `provider` of the API, the
    /// ledger `source` of its credits and debits, and the prefix of its references.
    fn name(&self) -> &'static str;

    /// Whether this provider moves no real money (the `test` provider): every page and answer
    /// about its payments says "test mode".
    fn test_mode(&self) -> bool {
        false
    }

    /// The currency it takes, as the server's `--currency` names it.
    fn currency(&self) -> &str;

    /// Creates the payment at the provider. Idempotent on `payment.payment_id` where the
    /// provider allows it (Stripe's `Idempotency-Key`): a retry after a timeout gets the same
    /// session. An error means nothing was recorded here; answer 503.
    fn create<'a>(
        &'a self,
        payment: &'a NewPayment,
    ) -> BoxFuture<'a, Result<Created, ProviderError>>;

    /// Asks the provider's API about one payment, by [`Created::reference`].
    fn check<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Checked, ProviderError>>;

    /// Verifies a webhook's signature over the raw body and headers at time `now`, then reads
    /// the event into a [`Hint`]. No I/O; a signature failure is counted in the metrics here.
    fn verify_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Result<WebhookEvent, WebhookError>;

    /// Asks the provider's API what really happened to what the hint names, as typed money
    /// movements and states. A [`Hint::Payment`] whose event claimed [`Claim::Failed`] turns
    /// a Stripe session `complete` but unpaid into [`PaymentState::Failed`].
    fn confirm<'a>(&'a self, hint: &'a Hint) -> BoxFuture<'a, Result<Confirmed, ProviderError>>;
}

/// HMAC-SHA256 of the concatenated `parts` under `key`: both providers sign webhooks so.
/// `None` never happens in practice (HMAC takes keys of any length); callers treat it as a
/// signature that does not match.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// Whether any of `candidates` (hex, as a header carries them) is `expected`, looking at every
/// candidate in constant time whatever matches. A candidate that is not hex matches nothing.
pub(crate) fn any_signature_matches<'a>(
    expected: &[u8; 32],
    candidates: impl IntoIterator<Item = &'a str>,
) -> bool {
    use subtle::ConstantTimeEq;
    let mut matched = subtle::Choice::from(0);
    for candidate in candidates {
        if let Ok(bytes) = hex::decode(candidate) {
            matched |= expected.as_slice().ct_eq(&bytes);
        }
    }
    bool::from(matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ErrorCode;

    #[test]
    fn a_provider_error_is_a_503_that_keeps_its_cause_to_the_log() {
        let error: crate::error::Error = ProviderError::Refused {
            provider: "stripe",
            call: "GET /v1/charges/{id}",
            status: 401,
            detail: "Invalid API Key provided: rk_****1234".into(),
        }
        .into();
        assert_eq!(error.code(), ErrorCode::ServiceUnavailable);
        let text = error.to_string();
        assert!(
            text.contains("stripe") && !text.contains("API Key"),
            "{text}"
        );
    }

    #[test]
    fn money_compares_currencies_without_case_and_states_judge_it() {
        assert_eq!(Money::new(500, "usd"), Money::new(500, "USD"));
        assert_ne!(Money::new(500, "usd"), Money::new(501, "usd"));
        assert_ne!(Money::new(500, "usd"), Money::new(500, "eur"));
        let expected = Money::new(500, "USD");
        for (state, verdict) in [
            (PaymentState::Open, Verdict::Pending),
            (PaymentState::Processing, Verdict::Pending),
            (PaymentState::Paid(Money::new(500, "usd")), Verdict::Credit),
            (PaymentState::Paid(Money::new(50, "usd")), Verdict::Mismatch),
            (
                PaymentState::PaidOther {
                    amount: "5.001".into(),
                    currency: "USD".into(),
                },
                Verdict::Mismatch,
            ),
            (PaymentState::Expired, Verdict::Expired),
            (PaymentState::Failed, Verdict::Failed),
        ] {
            assert_eq!(state.against(&expected), verdict, "{state:?}");
        }
        assert_eq!(format!("{:?}", Secret::new("sk_live_x")), "***");
    }
}
