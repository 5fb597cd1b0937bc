//! BTCPay through the real server and the fake BTCPay: an invoice credited once when the API
//! says `Settled` in the payment's amount, late or not; anything else credits nothing.

use serde_json::json;

use crate::fake_btcpay::{self, FakeBtcpay};
use crate::harness::{btcpay, Server, BTCPAY_KEY, BTCPAY_SECRET, BTCPAY_STORE};

#[test]
fn an_invoice_is_credited_once_when_settled_even_after_it_expired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeBtcpay::start(BTCPAY_KEY, BTCPAY_STORE);
    let server = Server::start(dir.path(), &btcpay(&fake.base_url()), None);
    let key = server.account();
    let payment = server.pending_payment(&key, "btcpay", 500);
    let invoice = fake.invoice_of_payment(&payment).expect("an invoice");
    let hook = |kind: &str, invoice: &str| {
        let (signature, body) = fake.webhook(kind, invoice, BTCPAY_SECRET);
        server.webhook("btcpay", ("btcpay-sig", &signature), &body)
    };

    // Expired first, then paid late: BTCPay settles it, and it is credited.
    fake.expire(&invoice);
    let (status, _) = hook("InvoiceExpired", &invoice);
    assert_eq!(status, 200);
    assert_eq!(server.payment(&key, &payment).1["status"], "expired");
    fake.settle_late(&invoice);
    fake.set_field(&invoice, "amount", json!("5"));
    for kind in ["InvoiceSettled", "InvoicePaymentSettled", "InvoiceSettled"] {
        let (status, body) = hook(kind, &invoice);
        assert_eq!(status, 200, "{body}");
    }
    let paid = server.payment(&key, &payment).1;
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(server.balance(&key), 500);
    let credits = server.entries_of("credit");
    assert_eq!(credits.len(), 1, "{credits:?}");
    assert_eq!(credits[0]["source"], "btcpay");

    // A bad signature: 400, nothing done.
    let body = fake.event("InvoiceSettled", &invoice);
    let wrong = fake_btcpay::signature("not-the-secret", &body);
    let (status, problem) = server.webhook("btcpay", ("btcpay-sig", &wrong), &body);
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_webhook_signature"))
    );

    // Settled for another amount: failed, not credited.
    let other = server.pending_payment(&key, "btcpay", 700);
    let other_invoice = fake.invoice_of_payment(&other).expect("invoice");
    fake.settle(&other_invoice);
    fake.set_field(&other_invoice, "amount", json!("6.99"));
    let (status, _) = hook("InvoiceSettled", &other_invoice);
    assert_eq!(status, 200);
    assert_eq!(server.payment(&key, &other).1["status"], "failed");
    assert_eq!(server.entries_of("credit").len(), 1);
    assert_eq!(server.balance(&key), 500);
    server.audit_passes();
}

/// PAYMENTS.md: `InvoicePaymentSettled` credits only when the invoice is `Settled`;
/// `InvoiceInvalid` makes the payment `failed` and `InvoiceExpired` `expired`, while not
/// credited (a credited payment stays paid); the credit's reference is `btcpay:<invoice id>`;
/// a missing `BTCPay-Sig` is 400 `invalid_webhook_signature`.
#[test]
fn invoice_events_move_a_payment_only_as_the_invoice_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeBtcpay::start(BTCPAY_KEY, BTCPAY_STORE);
    let server = Server::start(dir.path(), &btcpay(&fake.base_url()), None);
    let key = server.account();
    let hook = |kind: &str, invoice: &str| {
        let (signature, body) = fake.webhook(kind, invoice, BTCPAY_SECRET);
        let (status, body) = server.webhook("btcpay", ("btcpay-sig", &signature), &body);
        assert_eq!(status, 200, "{kind}: {body}");
    };
    let status_of = |payment: &str| server.payment(&key, payment).1["status"].clone();

    let paying = server.pending_payment(&key, "btcpay", 500);
    let invoice = fake.invoice_of_payment(&paying).expect("an invoice");
    // A payment seen but not confirmed: nothing yet.
    fake.process(&invoice);
    hook("InvoicePaymentSettled", &invoice);
    assert_eq!(status_of(&paying), "pending");
    assert!(server.entries_of("credit").is_empty());
    fake.settle(&invoice);
    hook("InvoicePaymentSettled", &invoice);
    assert_eq!(status_of(&paying), "paid");
    let credits = server.entries_of("credit");
    assert_eq!(credits.len(), 1, "{credits:?}");
    let reference = format!("btcpay:{invoice}");
    assert_eq!(
        credits[0]["reference_sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(reference.as_bytes()))
    );
    // Credited: an expiry event later changes nothing.
    hook("InvoiceExpired", &invoice);
    assert_eq!(status_of(&paying), "paid");

    let invalid = server.pending_payment(&key, "btcpay", 600);
    let invalid_invoice = fake.invoice_of_payment(&invalid).expect("an invoice");
    fake.invalidate(&invalid_invoice);
    hook("InvoiceInvalid", &invalid_invoice);
    assert_eq!(status_of(&invalid), "failed");

    let body = fake.event("InvoiceSettled", &invoice);
    let (status, problem) = crate::harness::status_json(
        server
            .http
            .post(server.url("/v1/payments/webhooks/btcpay"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("webhook"),
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_webhook_signature"))
    );
    assert_eq!(server.entries_of("credit").len(), 1);
    assert_eq!(server.balance(&key), 500);
    server.audit_passes();
}
