//! A fake Stripe API, written from Stripe's API reference (the Checkout Session, Charge,
//! Dispute, Refund and Event objects, with their real field names), for the calls pennypost
//! makes: `POST /v1/checkout/sessions` (form-encoded, replayed on a reused `Idempotency-Key`),
//! `GET /v1/checkout/sessions/{id}`, `GET /v1/checkout/sessions?payment_intent=`,
//! `GET /v1/charges/{id}`, `GET /v1/disputes/{id}`. Every call needs `Authorization: Bearer
//! <key>`; errors are Stripe's `{"error": {"type", "code", "message"}}`.
//!
//! The test scripts it ([`FakeStripe::pay`], [`FakeStripe::refund`],
//! [`FakeStripe::dispute`], [`FakeStripe::set_mode`] …), reads what it got
//! ([`FakeStripe::requests`]) and has it sign webhooks as Stripe does
//! ([`FakeStripe::webhook`]). Needs `fake_provider.rs` beside it (see there).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

pub use super::fake_provider::Mode;
use super::fake_provider::{
    hmac_hex, json as answer, pairs, unix_now, Common, FakeState, Recorded, Running,
};

/// A running fake Stripe.
pub struct FakeStripe {
    server: Running<StripeState>,
}

pub struct StripeState {
    common: Common,
    secret_key: String,
    base: String,
    sessions: BTreeMap<String, Value>,
    charges: BTreeMap<String, Value>,
    disputes: BTreeMap<String, Value>,
    /// Idempotency-Key → the session its first request made.
    idempotent: HashMap<String, String>,
    /// Whether `GET /v1/checkout/sessions` honours `payment_intent` (a broken filter lists
    /// every session).
    list_filter: bool,
}

impl FakeStripe {
    /// A fake that takes `secret_key` as its one valid key.
    pub fn start(secret_key: &str) -> FakeStripe {
        let server = Running::start(StripeState {
            common: Common::new(),
            secret_key: secret_key.to_string(),
            base: String::new(),
            sessions: BTreeMap::new(),
            charges: BTreeMap::new(),
            disputes: BTreeMap::new(),
            idempotent: HashMap::new(),
            list_filter: true,
        });
        let base = server.base_url();
        server.lock().base = base;
        FakeStripe { server }
    }

    /// What `--stripe-api-base` should be.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    pub fn set_mode(&self, mode: Mode) {
        self.server.set_mode(mode);
    }

    /// Makes the session list ignore its `payment_intent` filter (or honour it again).
    pub fn set_list_filter(&self, honoured: bool) {
        self.server.lock().list_filter = honoured;
    }

    /// The Checkout Session as the API would show it.
    pub fn session(&self, id: &str) -> Value {
        self.server
            .lock()
            .sessions
            .get(id)
            .cloned()
            .expect("no such session")
    }

    /// The session created for the server's payment `payment_id` (its `client_reference_id`),
    /// for tests that drive the real server and must pay what it created.
    pub fn session_of_payment(&self, payment_id: &str) -> Option<String> {
        self.server
            .lock()
            .sessions
            .values()
            .find(|s| s["client_reference_id"].as_str() == Some(payment_id))
            .and_then(|s| s["id"].as_str().map(str::to_string))
    }

    /// Changes one field of a session (an `amount_total` or `currency` a provider got wrong).
    pub fn set_session_field(&self, id: &str, field: &str, value: Value) {
        let mut state = self.server.lock();
        let session = state.sessions.get_mut(id).expect("no such session");
        session[field] = value;
    }

    /// The member paid the session by card: `complete` and `paid`, with a PaymentIntent and
    /// its charge. Returns the charge id.
    pub fn pay(&self, session_id: &str) -> String {
        let mut state = self.server.lock();
        let intent = state.common.id("pi_");
        let charge = state.common.id("ch_");
        let session = state.sessions.get_mut(session_id).expect("no such session");
        session["status"] = json!("complete");
        session["payment_status"] = json!("paid");
        session["payment_intent"] = json!(intent);
        let amount = session["amount_total"].clone();
        let currency = session["currency"].clone();
        state.charges.insert(
            charge.clone(),
            charge_object(&charge, amount, currency, json!(intent)),
        );
        charge
    }

    /// The member chose an asynchronous method (a bank debit): `complete` but `unpaid`.
    pub fn complete_unpaid(&self, session_id: &str) {
        let mut state = self.server.lock();
        let intent = state.common.id("pi_");
        let session = state.sessions.get_mut(session_id).expect("no such session");
        session["status"] = json!("complete");
        session["payment_status"] = json!("unpaid");
        session["payment_intent"] = json!(intent);
    }

    /// The session expired unpaid.
    pub fn expire(&self, session_id: &str) {
        let mut state = self.server.lock();
        let session = state.sessions.get_mut(session_id).expect("no such session");
        session["status"] = json!("expired");
        session["url"] = Value::Null;
    }

    /// A charge made elsewhere in the account (no Checkout Session of ours).
    pub fn foreign_charge(&self, amount: u64, currency: &str) -> String {
        let mut state = self.server.lock();
        let intent = state.common.id("pi_");
        let charge = state.common.id("ch_");
        state.charges.insert(
            charge.clone(),
            charge_object(&charge, json!(amount), json!(currency), json!(intent)),
        );
        charge
    }

    /// Sets the charge's cumulative `amount_refunded` (it may also fall: a refund failed).
    pub fn refund(&self, charge_id: &str, amount_refunded: u64) {
        let mut state = self.server.lock();
        let charge = state.charges.get_mut(charge_id).expect("no such charge");
        charge["amount_refunded"] = json!(amount_refunded);
        charge["refunded"] = json!(Some(amount_refunded) == charge["amount"].as_u64());
    }

    /// The card holder disputed `amount` of the charge: `needs_response`, no money moved yet.
    /// Returns the dispute id.
    pub fn dispute(&self, charge_id: &str, amount: u64) -> String {
        let mut state = self.server.lock();
        let id = state.common.id("dp_");
        let charge = state
            .charges
            .get(charge_id)
            .expect("no such charge")
            .clone();
        let dispute = json!({
            "id": id,
            "object": "dispute",
            "amount": amount,
            "balance_transactions": [],
            "charge": charge_id,
            "created": unix_now(),
            "currency": charge["currency"],
            "evidence": {},
            "is_charge_refundable": false,
            "livemode": false,
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": "fraudulent",
            "status": "needs_response",
        });
        state.disputes.insert(id.clone(), dispute);
        id
    }

    /// Stripe took the disputed funds from the balance.
    pub fn withdraw_dispute_funds(&self, dispute_id: &str) {
        self.balance_transaction(dispute_id, -1, "dispute", "needs_response");
    }

    /// The dispute was won: the funds came back.
    pub fn reinstate_dispute_funds(&self, dispute_id: &str) {
        self.balance_transaction(dispute_id, 1, "dispute_reversal", "won");
    }

    fn balance_transaction(&self, dispute_id: &str, sign: i64, category: &str, status: &str) {
        let mut state = self.server.lock();
        let txn = state.common.id("txn_");
        let dispute = state.disputes.get_mut(dispute_id).expect("no such dispute");
        let amount = dispute["amount"].as_i64().expect("amount") * sign;
        let currency = dispute["currency"].clone();
        dispute["balance_transactions"]
            .as_array_mut()
            .expect("a list")
            .push(json!({
                "id": txn,
                "object": "balance_transaction",
                "amount": amount,
                "currency": currency,
                "fee": if sign < 0 { 1500 } else { 0 },
                "reporting_category": category,
                "type": "adjustment",
            }));
        dispute["status"] = json!(status);
    }

    /// An Event of `kind` about the object `id` (a session, charge or dispute), as Stripe
    /// sends it. For `charge.refund.updated` the object is a Refund naming the charge.
    pub fn event(&self, kind: &str, id: &str) -> Vec<u8> {
        let mut state = self.server.lock();
        let object = if kind == "charge.refund.updated" {
            let refund = state.common.id("re_");
            let charge = state.charges.get(id).expect("no such charge");
            json!({
                "id": refund, "object": "refund", "amount": charge["amount_refunded"],
                "charge": id, "currency": charge["currency"], "status": "failed",
            })
        } else {
            state
                .sessions
                .get(id)
                .or_else(|| state.charges.get(id))
                .or_else(|| state.disputes.get(id))
                .cloned()
                .expect("no such object")
        };
        let event_id = state.common.id("evt_");
        serde_json::to_vec(&json!({
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": unix_now(),
            "data": {"object": object},
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "type": kind,
        }))
        .expect("json")
    }

    /// A webhook as Stripe delivers it now: the `Stripe-Signature` header's value and the body.
    pub fn webhook(&self, kind: &str, id: &str, webhook_secret: &str) -> (String, Vec<u8>) {
        let body = self.event(kind, id);
        (signature(webhook_secret, unix_now(), &body), body)
    }
}

/// `Stripe-Signature` for `body` signed at `t`: HMAC-SHA256 keyed with the whole `whsec_…`
/// string over `"<t>.<body>"`.
pub fn signature(webhook_secret: &str, t: i64, body: &[u8]) -> String {
    let t = t.to_string();
    let v1 = hmac_hex(webhook_secret.as_bytes(), &[t.as_bytes(), b".", body]);
    format!("t={t},v1={v1}")
}

fn charge_object(id: &str, amount: Value, currency: Value, intent: Value) -> Value {
    json!({
        "id": id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "captured": true,
        "created": unix_now(),
        "currency": currency,
        "disputed": false,
        "livemode": false,
        "paid": true,
        "payment_intent": intent,
        "refunded": false,
        "status": "succeeded",
    })
}

fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    answer(
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

fn missing(object: &str, id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {object}: '{id}'"),
    )
}

impl FakeState for StripeState {
    fn common(&mut self) -> &mut Common {
        &mut self.common
    }

    fn unavailable_body(&self) -> Value {
        json!({"error": {"type": "api_error", "message": "Stripe is temporarily unavailable"}})
    }

    fn answer(&mut self, request: &Recorded) -> Response {
        if request.header("authorization") != Some(&format!("Bearer {}", self.secret_key)) {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                "Invalid API Key provided: rk_****",
            );
        }
        let path: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
        match (request.method.as_str(), path.as_slice()) {
            ("POST", ["v1", "checkout", "sessions"]) => self.create(request),
            ("GET", ["v1", "checkout", "sessions"]) => {
                let query = pairs(request.query.as_deref().unwrap_or(""));
                let intent = query
                    .iter()
                    .find(|(k, _)| k == "payment_intent")
                    .map(|(_, v)| v.clone());
                let data: Vec<Value> = self
                    .sessions
                    .values()
                    .filter(|s| {
                        intent.is_none() || s["payment_intent"].as_str() == intent.as_deref()
                    })
                    .cloned()
                    .collect();
                answer(
                    StatusCode::OK,
                    json!({"object": "list", "data": data, "has_more": false, "url": "/v1/checkout/sessions"}),
                )
            }
            ("GET", ["v1", "checkout", "sessions", id]) => match self.sessions.get(*id) {
                Some(session) => answer(StatusCode::OK, session.clone()),
                None => missing("checkout.session", id),
            },
            ("GET", ["v1", "charges", id]) => match self.charges.get(*id) {
                Some(charge) => answer(StatusCode::OK, charge.clone()),
                None => missing("charge", id),
            },
            ("GET", ["v1", "disputes", id]) => match self.disputes.get(*id) {
                Some(dispute) => answer(StatusCode::OK, dispute.clone()),
                None => missing("dispute", id),
            },
            _ => error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                None,
                &format!(
                    "Unrecognized request URL ({} {})",
                    request.method, request.path
                ),
            ),
        }
    }
}

impl StripeState {
    fn create(&mut self, request: &Recorded) -> Response {
        if let Some(key) = request.header("idempotency-key") {
            if let Some(id) = self.idempotent.get(key) {
                let mut replay = self.sessions[id].clone();
                replay["idempotent_replayed"] = json!(true);
                return answer(StatusCode::OK, replay);
            }
        }
        let form: BTreeMap<String, String> = request.form().into_iter().collect();
        for required in [
            "mode",
            "line_items[0][price_data][currency]",
            "line_items[0][price_data][unit_amount]",
            "line_items[0][quantity]",
            "success_url",
        ] {
            if !form.contains_key(required) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_missing"),
                    &format!("Missing required param: {required}."),
                );
            }
        }
        let unit_amount: u64 = match form["line_items[0][price_data][unit_amount]"].parse() {
            Ok(amount) => amount,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_invalid_integer"),
                    "Invalid integer: unit_amount",
                )
            }
        };
        let quantity: u64 = form["line_items[0][quantity]"].parse().unwrap_or(1);
        let id = self.common.id("cs_test_");
        let metadata: BTreeMap<String, String> = form
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("metadata[")
                    .and_then(|k| k.strip_suffix(']'))
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect();
        let session = json!({
            "id": id,
            "object": "checkout.session",
            "amount_subtotal": unit_amount * quantity,
            "amount_total": unit_amount * quantity,
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": form.get("client_reference_id"),
            "created": unix_now(),
            "currency": form["line_items[0][price_data][currency]"],
            "expires_at": unix_now() + 24 * 3600,
            "livemode": false,
            "metadata": metadata,
            "mode": form["mode"],
            "payment_intent": null,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": form["success_url"],
            "url": format!("https://checkout.stripe.com/c/pay/{id}"),
        });
        if let Some(key) = request.header("idempotency-key") {
            self.idempotent.insert(key.to_string(), id.clone());
        }
        self.sessions.insert(id, session.clone());
        answer(StatusCode::OK, session)
    }
}
