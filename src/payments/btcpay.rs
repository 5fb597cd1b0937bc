//! BTCPay Server (self-hosted; Bitcoin and Lightning), through its Greenfield API.
//!
//! Two calls, each with `Authorization: token <API key>`:
//!
//! - `POST /api/v1/stores/{store}/invoices` with `{"amount": "5.00", "currency": "USD",
//!   "metadata": {"orderId": <payment id>}, "checkout": {"redirectURL": <public url>/?payment=<id>}}`
//!   (the amount as a decimal string with the currency's ISO 4217 exponent);
//! - `GET /api/v1/stores/{store}/invoices/{id}`.
//!
//! An invoice is `New`, `Processing`, `Settled`, `Expired` or `Invalid`; only `Settled` is
//! money, and an expired invoice can still become settled later (paid late). Its `amount` is
//! compared as a decimal number (`"5"`, `"5.0"`, `"5.00"` are equal), never as text.
//!
//! Webhooks: `BTCPay-Sig: sha256=<hex>`, HMAC-SHA256 of the raw body under the webhook's
//! secret. They carry no time: a replay is harmless because what it causes is decided by the
//! invoice as the API shows it and by the unique reference ([`verify_signature`]).

use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::{clip, ApiClient};
use super::currency::{from_decimal, iso4217, to_decimal};
use super::reference::is_valid_id;
use super::{
    any_signature_matches, hmac_sha256, Checked, Claim, Confirmed, Created, Hint, Money,
    NewPayment, PaymentState, Provider, ProviderError, Secret, WebhookError, WebhookEvent,
};
use crate::time::Timestamp;

/// The provider's name: API `provider`, ledger `source`, reference prefix.
pub const NAME: &str = "btcpay";
/// The webhook signature header.
pub const SIGNATURE_HEADER: &str = "BTCPay-Sig";
/// Longest `BTCPay-Sig` header read (`sha256=` and 64 hex digits, with room).
pub const SIGNATURE_HEADER_BYTES_MAX: usize = 256;

const CREATE: &str = "POST /api/v1/stores/{store}/invoices";
const GET_INVOICE: &str = "GET /api/v1/stores/{store}/invoices/{id}";

/// The BTCPay settings, all required to enable it.
#[derive(Clone, Debug)]
pub struct BtcpaySettings {
    /// The server's address (`https://btcpay.example`, maybe with a path); no trailing slash.
    pub url: String,
    /// A Greenfield API key with `btcpay.store.cancreateinvoice` and
    /// `btcpay.store.canviewinvoices` on the store.
    pub api_key: Secret,
    pub store_id: String,
    /// The store webhook's secret.
    pub webhook_secret: Secret,
    /// Longest time of one call.
    pub timeout: Duration,
}

/// The BTCPay provider.
#[derive(Debug)]
pub struct Btcpay {
    api: ApiClient,
    settings: BtcpaySettings,
    currency: String,
    /// The ISO 4217 code and exponent of the server's currency.
    iso_code: &'static str,
    exponent: u8,
    public_url: String,
}

impl Btcpay {
    /// The provider for `currency` (the server's `--currency`, which must be ISO 4217),
    /// sending members back to `public_url`.
    pub fn new(
        settings: BtcpaySettings,
        currency: &str,
        public_url: &str,
    ) -> Result<Btcpay, String> {
        let iso = iso4217(currency).ok_or_else(|| {
            format!("--currency {currency:?} is no ISO 4217 code, which BTCPay needs")
        })?;
        if !is_valid_id(&settings.store_id) {
            return Err("--btcpay-store-id must be letters, digits, _ or -".into());
        }
        Ok(Btcpay {
            api: ApiClient::new(NAME, settings.timeout)?,
            currency: currency.to_string(),
            iso_code: iso.code,
            exponent: iso.exponent,
            public_url: public_url.trim_end_matches('/').to_string(),
            settings,
        })
    }

    fn invoices_url(&self) -> String {
        format!(
            "{}/api/v1/stores/{}/invoices",
            self.settings.url, self.settings.store_id
        )
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let mut value = reqwest::header::HeaderValue::from_str(&format!(
            "token {}",
            self.settings.api_key.expose()
        ))
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("token"));
        value.set_sensitive(true);
        request.header(reqwest::header::AUTHORIZATION, value)
    }

    async fn create_invoice(&self, payment: &NewPayment) -> Result<Created, ProviderError> {
        let id = payment.payment_id.to_string();
        let body = json!({
            "amount": to_decimal(payment.amount, self.exponent),
            "currency": self.iso_code,
            "metadata": {"orderId": id},
            "checkout": {"redirectURL": format!("{}/?payment={id}", self.public_url)},
        });
        let request = self
            .authorized(self.api.http().post(self.invoices_url()))
            .json(&body);
        let invoice: Invoice = self.api.json(CREATE, request, error_message).await?;
        let reference = valid_id(&self.api, CREATE, &invoice.id)?;
        let pay_url = invoice
            .checkout_link
            .filter(|url| is_web_url(url))
            .ok_or_else(|| {
                self.api
                    .bad_answer(CREATE, "the invoice has no http(s) checkoutLink")
            })?;
        let expires_at = invoice
            .expiration_time
            .as_ref()
            .and_then(unix_seconds)
            .ok_or_else(|| {
                self.api
                    .bad_answer(CREATE, "the invoice has no expirationTime")
            })?;
        Ok(Created {
            reference,
            pay_url,
            expires_at: Timestamp::from_unix(expires_at),
        })
    }

    async fn invoice(&self, id: &str) -> Result<Checked, ProviderError> {
        let id = valid_id(&self.api, GET_INVOICE, id)?;
        let request = self.authorized(self.api.http().get(format!("{}/{id}", self.invoices_url())));
        let invoice: Invoice = self.api.json(GET_INVOICE, request, error_message).await?;
        if invoice.id != id {
            return Err(self
                .api
                .bad_answer(GET_INVOICE, "another invoice came back"));
        }
        let state = match invoice.status.as_deref() {
            Some("New") => PaymentState::Open,
            Some("Processing") => PaymentState::Processing,
            Some("Expired") => PaymentState::Expired,
            Some("Invalid") => PaymentState::Failed,
            Some("Settled") => settled(&invoice),
            other => {
                return Err(self
                    .api
                    .bad_answer(GET_INVOICE, format!("unknown invoice status {other:?}")))
            }
        };
        let payment_id = invoice
            .metadata
            .as_ref()
            .and_then(|m| m.get("orderId"))
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok());
        Ok(Checked {
            reference: id,
            payment_id,
            state,
            charge_ref: None,
        })
    }
}

/// A settled invoice's amount as money: its decimal read with its own currency's exponent.
fn settled(invoice: &Invoice) -> PaymentState {
    let amount = match &invoice.amount {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    };
    let currency = invoice.currency.clone().unwrap_or_default();
    match iso4217(&currency).and_then(|iso| from_decimal(&amount, iso.exponent)) {
        Some(minor) => PaymentState::Paid(Money::new(minor, currency)),
        None => PaymentState::PaidOther {
            amount: clip(&amount),
            currency: clip(&currency),
        },
    }
}

impl Btcpay {
    /// [`Provider::verify_webhook`] before its failures are counted.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, WebhookError> {
        let header = match headers.get(SIGNATURE_HEADER) {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| WebhookError::MalformedSignature("not ASCII"))?,
            ),
            None => None,
        };
        verify_signature(header, body, self.settings.webhook_secret.expose())?;
        parse_event(body, &self.settings.store_id)
    }
}

impl Provider for Btcpay {
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
        Box::pin(self.create_invoice(payment))
    }

    fn check<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Checked, ProviderError>> {
        Box::pin(self.invoice(reference))
    }

    fn verify_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now: Timestamp,
    ) -> Result<WebhookEvent, WebhookError> {
        self.verify(headers, body).map_err(|e| e.counted(NAME))
    }

    fn confirm<'a>(&'a self, hint: &'a Hint) -> BoxFuture<'a, Result<Confirmed, ProviderError>> {
        Box::pin(async move {
            match hint {
                Hint::Payment { reference, .. } => {
                    Ok(Confirmed::Payment(self.invoice(reference).await?))
                }
                Hint::Charge { .. } | Hint::Dispute { .. } | Hint::Ignored => {
                    Ok(Confirmed::Nothing)
                }
            }
        })
    }
}

/// Checks a `BTCPay-Sig` header (`sha256=<hex>`) over the raw body, in constant time.
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::MissingSignature(SIGNATURE_HEADER))?;
    if header.len() > SIGNATURE_HEADER_BYTES_MAX {
        return Err(WebhookError::MalformedSignature("too long"));
    }
    let signature = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(WebhookError::MalformedSignature("not sha256=<hex>"))?;
    if signature.len() != 64 || hex::decode(signature).is_err() {
        return Err(WebhookError::MalformedSignature("not 64 hex digits"));
    }
    let expected = hmac_sha256(secret.as_bytes(), &[body]).ok_or(WebhookError::BadSignature)?;
    if any_signature_matches(&expected, [signature.to_ascii_lowercase().as_str()]) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// A verified body as a BTCPay webhook event, reduced to its hint. An event of another store
/// (a webhook signed with our secret but for a store we do not take payments in) is ignored.
fn parse_event(body: &[u8], store_id: &str) -> Result<WebhookEvent, WebhookError> {
    let event: Event =
        serde_json::from_slice(body).map_err(|e| WebhookError::BadBody(e.to_string()))?;
    let claim = match event.kind.as_str() {
        "InvoiceSettled" | "InvoicePaymentSettled" => Some(Claim::Paid),
        "InvoiceExpired" => Some(Claim::Expired),
        "InvoiceInvalid" => Some(Claim::Failed),
        _ => None,
    };
    let ours = event.store_id.as_deref().is_none_or(|id| id == store_id);
    let hint = match claim {
        Some(claim) if ours => {
            let reference = event.invoice_id.unwrap_or_default();
            if !is_valid_id(&reference) {
                return Err(WebhookError::BadBody("invoiceId is no invoice id".into()));
            }
            Hint::Payment { reference, claim }
        }
        _ => Hint::Ignored,
    };
    Ok(WebhookEvent {
        id: clip(&event.delivery_id.unwrap_or_default()),
        kind: clip(&event.kind),
        hint,
    })
}

fn valid_id(api: &ApiClient, call: &'static str, id: &str) -> Result<String, ProviderError> {
    if is_valid_id(id) {
        Ok(id.to_string())
    } else {
        Err(api.bad_answer(call, "an id that is no invoice id"))
    }
}

fn is_web_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
}

/// Greenfield times are Unix seconds; accept them written as floats too.
fn unix_seconds(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// Greenfield's error message: `{"code": …, "message": …}`, or a list of field errors.
fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let one = |v: &Value| {
        let code = v
            .get("code")
            .or_else(|| v.get("path"))
            .and_then(Value::as_str);
        let message = v.get("message").and_then(Value::as_str);
        match (code, message) {
            (None, None) => None,
            (code, message) => Some(
                format!("{} {}", code.unwrap_or(""), message.unwrap_or(""))
                    .trim()
                    .to_string(),
            ),
        }
    };
    match &value {
        Value::Array(items) => items.first().and_then(one),
        other => one(other),
    }
}

#[derive(Deserialize)]
struct Invoice {
    id: String,
    amount: Option<Value>,
    currency: Option<String>,
    status: Option<String>,
    #[serde(rename = "checkoutLink")]
    checkout_link: Option<String>,
    #[serde(rename = "expirationTime")]
    expiration_time: Option<Value>,
    metadata: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "deliveryId")]
    delivery_id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "storeId")]
    store_id: Option<String>,
    #[serde(rename = "invoiceId")]
    invoice_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "btcpay-webhook-secret";
    const BODY: &[u8] =
        br#"{"deliveryId":"d1","type":"InvoiceSettled","storeId":"store1","invoiceId":"Inv1"}"#;

    fn sign(secret: &str, body: &[u8]) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn the_right_signature_is_accepted_in_either_case() {
        let good = sign(SECRET, BODY);
        assert_eq!(verify_signature(Some(&good), BODY, SECRET), Ok(()));
        let upper = format!("sha256={}", good["sha256=".len()..].to_ascii_uppercase());
        assert_eq!(verify_signature(Some(&upper), BODY, SECRET), Ok(()));
    }

    #[test]
    fn wrong_missing_or_malformed_signatures_are_refused() {
        assert_eq!(
            verify_signature(Some(&sign("other", BODY)), BODY, SECRET),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_signature(Some(&sign(SECRET, BODY)), b"{}", SECRET),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_signature(None, BODY, SECRET),
            Err(WebhookError::MissingSignature(SIGNATURE_HEADER))
        );
        let good = sign(SECRET, BODY);
        let hex_part = &good["sha256=".len()..];
        for bad in [
            String::new(),
            hex_part.to_string(),
            format!("sha1={hex_part}"),
            format!("sha256={}", "zz".repeat(32)),
            format!("sha256={}", &hex_part[..62]),
            format!("sha256={hex_part}00"),
            format!("sha256={}", "a".repeat(SIGNATURE_HEADER_BYTES_MAX)),
        ] {
            assert!(
                matches!(
                    verify_signature(Some(&bad), BODY, SECRET),
                    Err(WebhookError::MalformedSignature(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn events_become_hints() {
        let event = |kind: &str, store: &str, invoice: &str| {
            serde_json::to_vec(&json!({
                "deliveryId": "d1", "webhookId": "w1", "originalDeliveryId": "d1",
                "isRedelivery": false, "type": kind, "timestamp": 1_767_225_600,
                "storeId": store, "invoiceId": invoice, "metadata": {}
            }))
            .expect("json")
        };
        let payment = |claim| Hint::Payment {
            reference: "Inv1".into(),
            claim,
        };
        for (kind, hint) in [
            ("InvoiceSettled", payment(Claim::Paid)),
            ("InvoicePaymentSettled", payment(Claim::Paid)),
            ("InvoiceExpired", payment(Claim::Expired)),
            ("InvoiceInvalid", payment(Claim::Failed)),
            ("InvoiceCreated", Hint::Ignored),
            ("InvoiceReceivedPayment", Hint::Ignored),
        ] {
            let parsed = parse_event(&event(kind, "store1", "Inv1"), "store1").expect(kind);
            assert_eq!(parsed.hint, hint, "{kind}");
            assert_eq!(parsed.id, "d1");
        }
        let other_store = parse_event(&event("InvoiceSettled", "store2", "Inv1"), "store1");
        assert_eq!(other_store.map(|e| e.hint), Ok(Hint::Ignored));
        for bad in [
            b"[]".to_vec(),
            b"not json".to_vec(),
            event("InvoiceSettled", "store1", "../x"),
            event("InvoiceSettled", "store1", ""),
        ] {
            assert!(matches!(
                parse_event(&bad, "store1"),
                Err(WebhookError::BadBody(_))
            ));
        }
    }

    #[test]
    fn settled_amounts_are_decimal_numbers() {
        let invoice = |amount: Value, currency: &str| Invoice {
            id: "Inv1".into(),
            amount: Some(amount),
            currency: Some(currency.into()),
            status: Some("Settled".into()),
            checkout_link: None,
            expiration_time: None,
            metadata: None,
        };
        for amount in [
            json!("5"),
            json!("5.0"),
            json!("5.00"),
            json!(5),
            json!(5.0),
        ] {
            assert_eq!(
                settled(&invoice(amount.clone(), "usd")),
                PaymentState::Paid(Money::new(500, "USD")),
                "{amount}"
            );
        }
        assert_eq!(
            settled(&invoice(json!("500"), "JPY")),
            PaymentState::Paid(Money::new(500, "JPY"))
        );
        assert_eq!(
            settled(&invoice(json!("5.001"), "USD")),
            PaymentState::PaidOther {
                amount: "5.001".into(),
                currency: "USD".into()
            }
        );
        assert!(matches!(
            settled(&invoice(json!("0.0001"), "BTC")),
            PaymentState::PaidOther { .. }
        ));
    }
}
