//! A fake BTCPay Server, written from the Greenfield API's reference (the invoice object and
//! the webhook payloads, with their real field names), for the calls pennypost makes:
//! `POST /api/v1/stores/{store}/invoices` and `GET /api/v1/stores/{store}/invoices/{id}`, each
//! with `Authorization: token <API key>`; errors are Greenfield's `{"code", "message"}`
//! (validation errors a list of `{"path", "message"}`).
//!
//! The test scripts it ([`FakeBtcpay::settle`], [`FakeBtcpay::expire`],
//! [`FakeBtcpay::set_field`], [`FakeBtcpay::set_mode`] …), reads what it got
//! ([`FakeBtcpay::requests`]) and has it sign webhooks as BTCPay does
//! ([`FakeBtcpay::webhook`]). Needs `fake_provider.rs` beside it (see there).

#![allow(dead_code)]

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

pub use super::fake_provider::Mode;
use super::fake_provider::{
    hmac_hex, json as answer, unix_now, Common, FakeState, Recorded, Running,
};

/// A running fake BTCPay Server with one store.
pub struct FakeBtcpay {
    server: Running<BtcpayState>,
}

pub struct BtcpayState {
    common: Common,
    api_key: String,
    store_id: String,
    base: String,
    invoices: BTreeMap<String, Value>,
}

impl FakeBtcpay {
    /// A fake whose store `store_id` takes `api_key`.
    pub fn start(api_key: &str, store_id: &str) -> FakeBtcpay {
        let server = Running::start(BtcpayState {
            common: Common::new(),
            api_key: api_key.to_string(),
            store_id: store_id.to_string(),
            base: String::new(),
            invoices: BTreeMap::new(),
        });
        let base = server.base_url();
        server.lock().base = base;
        FakeBtcpay { server }
    }

    /// What `--btcpay-url` should be.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    pub fn set_mode(&self, mode: Mode) {
        self.server.set_mode(mode);
    }

    pub fn invoice(&self, id: &str) -> Value {
        self.server
            .lock()
            .invoices
            .get(id)
            .cloned()
            .expect("no such invoice")
    }

    /// The invoice created for the server's payment `payment_id` (its `metadata.orderId`), for
    /// tests that drive the real server and must settle what it created.
    pub fn invoice_of_payment(&self, payment_id: &str) -> Option<String> {
        self.server
            .lock()
            .invoices
            .values()
            .find(|i| i["metadata"]["orderId"].as_str() == Some(payment_id))
            .and_then(|i| i["id"].as_str().map(str::to_string))
    }

    /// Changes one field of an invoice (an `amount` written `"5"`, another `currency`).
    pub fn set_field(&self, id: &str, field: &str, value: Value) {
        let mut state = self.server.lock();
        state.invoices.get_mut(id).expect("no such invoice")[field] = value;
    }

    fn set_status(&self, id: &str, status: &str, additional: &str) {
        let mut state = self.server.lock();
        let invoice = state.invoices.get_mut(id).expect("no such invoice");
        invoice["status"] = json!(status);
        invoice["additionalStatus"] = json!(additional);
    }

    /// A payment was seen but is not confirmed yet.
    pub fn process(&self, id: &str) {
        self.set_status(id, "Processing", "None");
    }

    /// Paid and confirmed.
    pub fn settle(&self, id: &str) {
        self.set_status(id, "Settled", "None");
    }

    /// Paid after it had expired, and confirmed.
    pub fn settle_late(&self, id: &str) {
        self.set_status(id, "Settled", "PaidLate");
    }

    pub fn expire(&self, id: &str) {
        self.set_status(id, "Expired", "None");
    }

    pub fn invalidate(&self, id: &str) {
        self.set_status(id, "Invalid", "Invalid");
    }

    /// A webhook event of `kind` (`InvoiceSettled`, `InvoicePaymentSettled`, `InvoiceExpired`,
    /// `InvoiceInvalid`, …) about the invoice, as BTCPay sends it.
    pub fn event(&self, kind: &str, invoice_id: &str) -> Vec<u8> {
        let mut state = self.server.lock();
        let delivery = state.common.id("Dlv");
        let invoice = state
            .invoices
            .get(invoice_id)
            .cloned()
            .unwrap_or(Value::Null);
        let mut event = json!({
            "deliveryId": delivery,
            "webhookId": "FakeWebhook1",
            "originalDeliveryId": delivery,
            "isRedelivery": false,
            "type": kind,
            "timestamp": unix_now(),
            "storeId": state.store_id,
            "invoiceId": invoice_id,
            "metadata": invoice["metadata"],
        });
        match kind {
            "InvoiceSettled" => {
                event["manuallyMarked"] = json!(false);
                event["overPaid"] = json!(false);
            }
            "InvoiceExpired" => event["partiallyPaid"] = json!(false),
            "InvoiceInvalid" => event["manuallyMarked"] = json!(false),
            "InvoicePaymentSettled" => {
                event["afterExpiration"] = json!(false);
                event["paymentMethod"] = json!("BTC-LightningNetwork");
                event["payment"] = json!({"id": "p1", "value": "0.0001", "status": "Settled"});
            }
            _ => {}
        }
        serde_json::to_vec(&event).expect("json")
    }

    /// A webhook as BTCPay delivers it: the `BTCPay-Sig` header's value and the body.
    pub fn webhook(&self, kind: &str, invoice_id: &str, webhook_secret: &str) -> (String, Vec<u8>) {
        let body = self.event(kind, invoice_id);
        (signature(webhook_secret, &body), body)
    }
}

/// `BTCPay-Sig` for `body`: `sha256=` and the HMAC-SHA256 of the body under the secret.
pub fn signature(webhook_secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(webhook_secret.as_bytes(), &[body]))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    answer(status, json!({"code": code, "message": message}))
}

fn invalid(path: &str, message: &str) -> Response {
    answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!([{"path": path, "message": message}]),
    )
}

impl FakeState for BtcpayState {
    fn common(&mut self) -> &mut Common {
        &mut self.common
    }

    fn unavailable_body(&self) -> Value {
        json!({"code": "service-unavailable", "message": "BTCPay Server is starting"})
    }

    fn answer(&mut self, request: &Recorded) -> Response {
        if request.header("authorization") != Some(&format!("token {}", self.api_key)) {
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication is required for accessing this endpoint",
            );
        }
        let path: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
        match (request.method.as_str(), path.as_slice()) {
            ("POST", ["api", "v1", "stores", store, "invoices"]) if *store == self.store_id => {
                self.create(request)
            }
            ("GET", ["api", "v1", "stores", store, "invoices", id]) if *store == self.store_id => {
                match self.invoices.get(*id) {
                    Some(invoice) => answer(StatusCode::OK, invoice.clone()),
                    None => error(
                        StatusCode::NOT_FOUND,
                        "invoice-not-found",
                        "The invoice was not found",
                    ),
                }
            }
            ("POST" | "GET", ["api", "v1", "stores", ..]) => error(
                StatusCode::FORBIDDEN,
                "unauthorized",
                "The API key may not use this store",
            ),
            _ => error(StatusCode::NOT_FOUND, "not-found", "Not found"),
        }
    }
}

impl BtcpayState {
    fn create(&mut self, request: &Recorded) -> Response {
        let body = request.json();
        let amount = match &body["amount"] {
            Value::String(text) if text.parse::<f64>().is_ok() => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => return invalid("amount", "Amount should be a decimal number"),
        };
        let Some(currency) = body["currency"].as_str() else {
            return invalid("currency", "Currency is required");
        };
        let id = self.common.id("FakeInv");
        let now = unix_now();
        let invoice = json!({
            "id": id,
            "storeId": self.store_id,
            "amount": amount,
            "currency": currency.to_ascii_uppercase(),
            "type": "Standard",
            "checkoutLink": format!("{}/i/{id}", self.base),
            "createdTime": now,
            "expirationTime": now + 15 * 60,
            "monitoringExpiration": now + 24 * 3600,
            "status": "New",
            "additionalStatus": "None",
            "archived": false,
            "availableStatusesForManualMarking": ["Settled", "Invalid"],
            "metadata": body.get("metadata").cloned().unwrap_or(json!({})),
            "checkout": body.get("checkout").cloned().unwrap_or(json!({})),
            "receipt": {"enabled": null, "showQR": null, "showPayments": null},
        });
        self.invoices.insert(id, invoice.clone());
        answer(StatusCode::OK, invoice)
    }
}
