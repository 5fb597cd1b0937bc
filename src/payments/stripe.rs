//! Stripe Checkout: cards, through a page Stripe hosts.
//!
//! Exactly these calls, each with a pinned `Stripe-Version` ([`STRIPE_VERSION`]) so that an
//! upgrade of the account's default API version never changes what we parse:
//!
//! - `POST /v1/checkout/sessions` (form-encoded; `mode=payment`, one line item of
//!   `price_data`, `client_reference_id` and `metadata[pennypost_payment]` = the payment id,
//!   `success_url` and `cancel_url` = `<public url>/?payment=<id>`; an `Idempotency-Key`
//!   header derived from the payment id, so a retried creation gets the same session);
//! - `GET /v1/checkout/sessions/{id}`, `GET /v1/checkout/sessions?payment_intent={id}`;
//! - `GET /v1/charges/{id}` (cumulative `amount_refunded`), `GET /v1/disputes/{id}`.
//!
//! Webhooks: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, each `v1` an
//! HMAC-SHA256 keyed with the whole `whsec_…` string over `"<t>.<raw body>"`; any `v1` may
//! match (several during a secret roll), compared in constant time, and `|now − t|` must be
//! at most [`SIGNATURE_TOLERANCE_SECS`] ([`verify_signature`]).

use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::client::ApiClient;
use super::currency::{iso4217, stripe_refusal};
use super::reference::is_valid_id;
use super::{
    any_signature_matches, hmac_sha256, Checked, Claim, Confirmed, Created, DisputeFunds,
    DisputeState, Hint, Money, NewPayment, PaymentState, Provider, ProviderError, RefundState,
    Secret, WebhookError, WebhookEvent,
};
use crate::time::Timestamp;

/// The provider's name: API `provider`, ledger `source`, reference prefix.
pub const NAME: &str = "stripe";
/// The API version every call pins. Fields read here are those of this version's objects.
pub const STRIPE_VERSION: &str = "2024-06-20";
/// Where the API is when `--stripe-api-base` is not given.
pub const API_BASE_DEFAULT: &str = "https://api.stripe.com";
/// The webhook signature header.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";
/// Largest distance between a signature's `t` and now, either way (Stripe's libraries use 300).
pub const SIGNATURE_TOLERANCE_SECS: u64 = 300;
/// Longest `Stripe-Signature` header read.
pub const SIGNATURE_HEADER_BYTES_MAX: usize = 4096;
/// Most `v1` signatures in one header (a secret roll has two).
pub const SIGNATURES_MAX: usize = 16;
/// The name of the one line item the member sees on Stripe's page.
pub const PRODUCT_NAME: &str = "pennypost balance";

const CREATE: &str = "POST /v1/checkout/sessions";
const GET_SESSION: &str = "GET /v1/checkout/sessions/{id}";
const LIST_SESSIONS: &str = "GET /v1/checkout/sessions?payment_intent={id}";
const GET_CHARGE: &str = "GET /v1/charges/{id}";
const GET_DISPUTE: &str = "GET /v1/disputes/{id}";

/// The Stripe settings, all required to enable it.
#[derive(Clone, Debug)]
pub struct StripeSettings {
    /// A secret (`sk_…`) or, better, restricted (`rk_…`) key.
    pub secret_key: Secret,
    /// The webhook endpoint's signing secret (`whsec_…`).
    pub webhook_secret: Secret,
    /// `https://api.stripe.com`, or a fake's address in tests; no trailing slash.
    pub api_base: String,
    /// Longest time of one call.
    pub timeout: Duration,
}

/// The Stripe Checkout provider.
#[derive(Debug)]
pub struct Stripe {
    api: ApiClient,
    settings: StripeSettings,
    /// The server's currency as configured, and as Stripe writes it (lower case).
    currency: String,
    stripe_currency: String,
    public_url: String,
}

impl Stripe {
    /// The provider for `currency` (the server's `--currency`), sending members back to
    /// `public_url`. Refused: a currency outside ISO 4217 or one whose unit in Stripe's API is
    /// not the ISO minor unit ([`stripe_refusal`]).
    pub fn new(
        settings: StripeSettings,
        currency: &str,
        public_url: &str,
    ) -> Result<Stripe, String> {
        let iso = iso4217(currency).ok_or_else(|| {
            format!("--currency {currency:?} is no ISO 4217 code, which Stripe needs")
        })?;
        if let Some(reason) = stripe_refusal(iso) {
            return Err(format!(
                "--currency {}: refused for Stripe: {reason}",
                iso.code
            ));
        }
        Ok(Stripe {
            api: ApiClient::new(NAME, settings.timeout)?,
            currency: currency.to_string(),
            stripe_currency: iso.code.to_ascii_lowercase(),
            public_url: public_url.trim_end_matches('/').to_string(),
            settings,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_base)
    }

    fn get(&self, url: String) -> reqwest::RequestBuilder {
        self.api
            .http()
            .get(url)
            .bearer_auth(self.settings.secret_key.expose())
            .header("Stripe-Version", STRIPE_VERSION)
    }

    async fn create_session(&self, payment: &NewPayment) -> Result<Created, ProviderError> {
        let id = payment.payment_id.to_string();
        let back = format!("{}/?payment={id}", self.public_url);
        let form: [(&str, &str); 9] = [
            ("mode", "payment"),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", &self.stripe_currency),
            (
                "line_items[0][price_data][unit_amount]",
                &payment.amount.to_string(),
            ),
            (
                "line_items[0][price_data][product_data][name]",
                PRODUCT_NAME,
            ),
            ("client_reference_id", &id),
            ("metadata[pennypost_payment]", &id),
            ("success_url", &back),
            ("cancel_url", &back),
        ];
        let request = self
            .api
            .http()
            .post(self.url("/v1/checkout/sessions"))
            .bearer_auth(self.settings.secret_key.expose())
            .header("Stripe-Version", STRIPE_VERSION)
            .header("Idempotency-Key", idempotency_key(payment.payment_id))
            .form(&form);
        let session: Session = self.api.json(CREATE, request, error_message).await?;
        let reference = valid_id(&self.api, CREATE, &session.id)?;
        let pay_url = session.url.filter(|url| is_web_url(url)).ok_or_else(|| {
            self.api
                .bad_answer(CREATE, "the session has no http(s) url")
        })?;
        let expires_at = session
            .expires_at
            .ok_or_else(|| self.api.bad_answer(CREATE, "the session has no expires_at"))?;
        Ok(Created {
            reference,
            pay_url,
            expires_at: Timestamp::from_unix(expires_at),
        })
    }

    async fn session(&self, id: &str) -> Result<Checked, ProviderError> {
        let id = valid_id(&self.api, GET_SESSION, id)?;
        let request = self.get(self.url(&format!("/v1/checkout/sessions/{id}")));
        let session: Session = self.api.json(GET_SESSION, request, error_message).await?;
        if session.id != id {
            return Err(self
                .api
                .bad_answer(GET_SESSION, "another session came back"));
        }
        self.checked(GET_SESSION, session)
    }

    /// The Checkout Session a PaymentIntent paid, if any (`None`: no payment of ours).
    async fn session_for_intent(&self, intent: &str) -> Result<Option<Checked>, ProviderError> {
        let intent = valid_id(&self.api, LIST_SESSIONS, intent)?;
        let request = self
            .get(self.url("/v1/checkout/sessions"))
            .query(&[("payment_intent", intent.as_str())]);
        let list: List<Session> = self.api.json(LIST_SESSIONS, request, error_message).await?;
        // Only a session that names this PaymentIntent: were the filter ever ignored, a
        // refund must not land on another member's payment.
        let session = list
            .data
            .into_iter()
            .find(|s| s.payment_intent.as_ref().map(Expandable::id) == Some(intent.as_str()));
        match session {
            Some(session) => self.checked(LIST_SESSIONS, session).map(Some),
            None => Ok(None),
        }
    }

    fn checked(&self, call: &'static str, session: Session) -> Result<Checked, ProviderError> {
        let reference = valid_id(&self.api, call, &session.id)?;
        let charge_ref = match &session.payment_intent {
            Some(intent) => Some(valid_id(&self.api, call, intent.id())?),
            None => None,
        };
        let payment_id = session
            .client_reference_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok())
            .or_else(|| {
                session
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get("pennypost_payment"))
                    .and_then(Value::as_str)
                    .and_then(|id| Uuid::parse_str(id).ok())
            });
        let state = match (session.status.as_deref(), session.payment_status.as_deref()) {
            (Some("expired"), _) => PaymentState::Expired,
            (Some("complete"), Some("paid")) => match (session.amount_total, session.currency) {
                (Some(amount), Some(currency)) => PaymentState::Paid(Money::new(amount, currency)),
                _ => {
                    return Err(self
                        .api
                        .bad_answer(call, "a paid session without amount_total or currency"))
                }
            },
            (Some("complete"), _) => PaymentState::Processing,
            (Some("open"), _) => PaymentState::Open,
            (status, _) => {
                return Err(self
                    .api
                    .bad_answer(call, format!("unknown session status {status:?}")))
            }
        };
        Ok(Checked {
            reference,
            payment_id,
            state,
            charge_ref,
        })
    }

    async fn refunds(&self, charge: &str) -> Result<Confirmed, ProviderError> {
        let id = valid_id(&self.api, GET_CHARGE, charge)?;
        let request = self.get(self.url(&format!("/v1/charges/{id}")));
        let charge: Charge = self.api.json(GET_CHARGE, request, error_message).await?;
        if charge.id != id {
            return Err(self.api.bad_answer(GET_CHARGE, "another charge came back"));
        }
        if charge.amount_refunded > charge.amount {
            return Err(self
                .api
                .bad_answer(GET_CHARGE, "amount_refunded over amount"));
        }
        let payment = match &charge.payment_intent {
            Some(intent) => self.session_for_intent(intent.id()).await?,
            None => None,
        };
        Ok(Confirmed::Refund(RefundState {
            charge: id,
            payment,
            charged: Money::new(charge.amount, charge.currency.clone()),
            refunded: Money::new(charge.amount_refunded, charge.currency),
        }))
    }

    async fn dispute(&self, dispute: &str) -> Result<Confirmed, ProviderError> {
        let id = valid_id(&self.api, GET_DISPUTE, dispute)?;
        let request = self.get(self.url(&format!("/v1/disputes/{id}")));
        let dispute: Dispute = self.api.json(GET_DISPUTE, request, error_message).await?;
        if dispute.id != id {
            return Err(self
                .api
                .bad_answer(GET_DISPUTE, "another dispute came back"));
        }
        let charge = valid_id(&self.api, GET_DISPUTE, dispute.charge.id())?;
        let payment = match &dispute.payment_intent {
            Some(intent) => self.session_for_intent(intent.id()).await?,
            None => None,
        };
        // Stripe lists zero, one or two balance transactions: the funds withdrawn (negative)
        // and, once the dispute is won, reinstated (positive).
        let funds = if dispute.balance_transactions.iter().any(|t| t.amount > 0) {
            DisputeFunds::Reinstated
        } else if dispute.balance_transactions.iter().any(|t| t.amount < 0) {
            DisputeFunds::Withdrawn
        } else {
            DisputeFunds::Held
        };
        Ok(Confirmed::Dispute(DisputeState {
            dispute: id,
            charge,
            payment,
            amount: Money::new(dispute.amount, dispute.currency),
            funds,
            status: dispute.status,
        }))
    }
}

impl Stripe {
    /// [`Provider::verify_webhook`] before its failures are counted.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Result<WebhookEvent, WebhookError> {
        let header = match headers.get(SIGNATURE_HEADER) {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| WebhookError::MalformedSignature("not ASCII"))?,
            ),
            None => None,
        };
        verify_signature(
            header,
            body,
            self.settings.webhook_secret.expose(),
            now.unix(),
        )?;
        parse_event(body)
    }
}

impl Provider for Stripe {
    fn name(&self) -> &'static str {
        NAME
    }

    fn currency(&self) -> &str {
        &self.currency
    }

    fn create<'a>(
        &'a self,
        payment: &'a NewPayment,
    ) -> BoxFuture<'a, Result<Created, ProviderError>> {
        Box::pin(self.create_session(payment))
    }

    fn check<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Checked, ProviderError>> {
        Box::pin(self.session(reference))
    }

    fn verify_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Result<WebhookEvent, WebhookError> {
        self.verify(headers, body, now).map_err(|e| e.counted(NAME))
    }

    fn confirm<'a>(&'a self, hint: &'a Hint) -> BoxFuture<'a, Result<Confirmed, ProviderError>> {
        Box::pin(async move {
            match hint {
                Hint::Payment { reference, claim } => {
                    let mut checked = self.session(reference).await?;
                    // A session `complete` but unpaid is an asynchronous payment still
                    // settling, or one that failed: the event that says it failed decides.
                    if *claim == Claim::Failed && checked.state == PaymentState::Processing {
                        checked.state = PaymentState::Failed;
                    }
                    Ok(Confirmed::Payment(checked))
                }
                Hint::Charge { charge } => self.refunds(charge).await,
                Hint::Dispute { dispute } => self.dispute(dispute).await,
                Hint::Ignored => Ok(Confirmed::Nothing),
            }
        })
    }
}

/// The `Idempotency-Key` of a payment's creation: one per payment, so a retry after a timeout
/// gets the session the first attempt made.
pub fn idempotency_key(payment_id: Uuid) -> String {
    format!("pennypost-payment-{payment_id}")
}

/// Checks a `Stripe-Signature` header over the raw body at `now` (Unix seconds): a `t`, at
/// least one `v1`, any `v1` equal (in constant time) to HMAC-SHA256 under `secret` (the whole
/// `whsec_…` string) of `"<t>.<body>"`, and `t` within [`SIGNATURE_TOLERANCE_SECS`] of now.
/// Other schemes (`v0`) are ignored, as Stripe's libraries do.
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    now: i64,
) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::MissingSignature(SIGNATURE_HEADER))?;
    if header.len() > SIGNATURE_HEADER_BYTES_MAX {
        return Err(WebhookError::MalformedSignature("too long"));
    }
    let mut timestamp: Option<&str> = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(WebhookError::MalformedSignature("an item is not key=value"))?;
        match key {
            "t" if timestamp.is_some() => {
                return Err(WebhookError::MalformedSignature("two timestamps"))
            }
            "t" => timestamp = Some(value),
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedSignature("no timestamp"))?;
    let signed_at: i64 = timestamp
        .parse()
        .map_err(|_| WebhookError::MalformedSignature("the timestamp is not an integer"))?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedSignature("no v1 signature"));
    }
    if signatures.len() > SIGNATURES_MAX {
        return Err(WebhookError::MalformedSignature("too many signatures"));
    }
    let expected = hmac_sha256(secret.as_bytes(), &[timestamp.as_bytes(), b".", body])
        .ok_or(WebhookError::BadSignature)?;
    if !any_signature_matches(&expected, signatures) {
        return Err(WebhookError::BadSignature);
    }
    let age = now.saturating_sub(signed_at);
    if age.unsigned_abs() > SIGNATURE_TOLERANCE_SECS {
        return Err(WebhookError::StaleSignature { age_secs: age });
    }
    Ok(())
}

/// A verified body as a Stripe event, reduced to its hint.
fn parse_event(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let event: Event =
        serde_json::from_slice(body).map_err(|e| WebhookError::BadBody(e.to_string()))?;
    let object = &event.data.object;
    let object_id = |field: &str| -> Result<String, WebhookError> {
        let id = match object.get(field) {
            Some(Value::String(id)) => id.as_str(),
            Some(Value::Object(expanded)) => expanded
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            _ => "",
        };
        if is_valid_id(id) {
            Ok(id.to_string())
        } else {
            Err(WebhookError::BadBody(format!(
                "data.object.{field} is not a Stripe id"
            )))
        }
    };
    let payment = |claim| -> Result<Hint, WebhookError> {
        Ok(Hint::Payment {
            reference: object_id("id")?,
            claim,
        })
    };
    let hint = match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            payment(Claim::Paid)?
        }
        "checkout.session.expired" => payment(Claim::Expired)?,
        "checkout.session.async_payment_failed" => payment(Claim::Failed)?,
        "charge.refunded" => Hint::Charge {
            charge: object_id("id")?,
        },
        // The object of a refund event is the refund, which names its charge.
        "charge.refund.updated" => Hint::Charge {
            charge: object_id("charge")?,
        },
        "charge.dispute.created"
        | "charge.dispute.closed"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated" => Hint::Dispute {
            dispute: object_id("id")?,
        },
        _ => Hint::Ignored,
    };
    Ok(WebhookEvent {
        id: super::client::clip(&event.id),
        kind: super::client::clip(&event.kind),
        hint,
    })
}

fn valid_id(api: &ApiClient, call: &'static str, id: &str) -> Result<String, ProviderError> {
    if is_valid_id(id) {
        Ok(id.to_string())
    } else {
        Err(api.bad_answer(call, "an id that is no Stripe id"))
    }
}

fn is_web_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
}

/// Stripe's error message: `{"error": {"message": …}}`.
fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    let kind = error
        .get("code")
        .or_else(|| error.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(format!("{kind} {message}").trim().to_string())
}

/// A field that is an id, or the object it names when expanded.
#[derive(Deserialize)]
#[serde(untagged)]
enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    fn id(&self) -> &str {
        match self {
            Expandable::Id(id) | Expandable::Object { id } => id,
        }
    }
}

#[derive(Deserialize)]
struct Session {
    id: String,
    url: Option<String>,
    expires_at: Option<i64>,
    status: Option<String>,
    payment_status: Option<String>,
    amount_total: Option<u64>,
    currency: Option<String>,
    client_reference_id: Option<String>,
    metadata: Option<serde_json::Map<String, Value>>,
    payment_intent: Option<Expandable>,
}

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct Charge {
    id: String,
    amount: u64,
    amount_refunded: u64,
    currency: String,
    payment_intent: Option<Expandable>,
}

#[derive(Deserialize)]
struct Dispute {
    id: String,
    amount: u64,
    currency: String,
    charge: Expandable,
    payment_intent: Option<Expandable>,
    status: String,
    #[serde(default)]
    balance_transactions: Vec<BalanceTransaction>,
}

#[derive(Deserialize)]
struct BalanceTransaction {
    amount: i64,
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Value,
}

#[cfg(test)]
#[path = "stripe_tests.rs"]
mod tests;
