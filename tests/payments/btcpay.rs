//! The BTCPay Greenfield client against the fake BTCPay Server.

use pennypost::payments::btcpay::SIGNATURE_HEADER;
use pennypost::payments::{
    Claim, Confirmed, Hint, Money, NewPayment, PaymentState, PaymentsConfig, ProviderError, Secret,
    Verdict,
};
use pennypost::time::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::json;
use uuid::Uuid;

use crate::fake_btcpay::{signature, FakeBtcpay, Mode};
use crate::{closed_port_url, fails_in_time, Shared, PUBLIC_URL, TIMEOUT_SECS};

const KEY: &str = "greenfield-key-1";
const STORE: &str = "StoreA1";
const WEBHOOK_SECRET: &str = "btcpay-hook-secret";

fn provider(url: &str, currency: &str) -> Shared {
    let config = PaymentsConfig {
        public_url: Some(PUBLIC_URL.into()),
        btcpay_url: Some(url.into()),
        btcpay_api_key: Some(Secret::new(KEY)),
        btcpay_store_id: Some(STORE.into()),
        btcpay_webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
        provider_timeout_secs: TIMEOUT_SECS,
        ..PaymentsConfig::default()
    };
    let providers = config.build(currency).expect("btcpay settings");
    providers.get("btcpay").expect("btcpay enabled").clone()
}

async fn created(btcpay: &Shared, amount: u64) -> (Uuid, String) {
    let payment_id = Uuid::new_v4();
    let created = btcpay
        .create(&NewPayment { payment_id, amount })
        .await
        .expect("created");
    (payment_id, created.reference)
}

#[tokio::test]
async fn an_invoice_is_created_with_the_contracts_body_and_key() {
    let fake = FakeBtcpay::start(KEY, STORE);
    let btcpay = provider(&fake.base_url(), "usd");
    let payment_id = Uuid::new_v4();
    let invoice = btcpay
        .create(&NewPayment {
            payment_id,
            amount: 500,
        })
        .await
        .expect("created");
    assert_eq!(
        invoice.pay_url,
        format!("{}/i/{}", fake.base_url(), invoice.reference)
    );
    assert!(invoice.expires_at > Timestamp::now());
    assert_eq!(
        fake.invoice_of_payment(&payment_id.to_string()),
        Some(invoice.reference.clone())
    );

    let request = fake.requests().pop().expect("the creation");
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/api/v1/stores/{STORE}/invoices"));
    assert_eq!(
        request.header("authorization"),
        Some(format!("token {KEY}").as_str())
    );
    assert_eq!(
        request.json(),
        json!({
            "amount": "5.00",
            "currency": "USD",
            "metadata": {"orderId": payment_id.to_string()},
            "checkout": {"redirectURL": format!("{PUBLIC_URL}/?payment={payment_id}")},
        })
    );

    // The ISO exponent decides the decimal: 0 for JPY, 3 for KWD.
    for (currency, amount, text) in [("JPY", 500, "500"), ("kwd", 1500, "1.500")] {
        let other = provider(&fake.base_url(), currency);
        created(&other, amount).await;
        let request = fake.requests().pop().expect("the creation");
        assert_eq!(request.json()["amount"], json!(text), "{currency}");
    }
}

#[tokio::test]
async fn check_follows_the_invoice_and_compares_amounts_as_numbers() {
    let fake = FakeBtcpay::start(KEY, STORE);
    let btcpay = provider(&fake.base_url(), "USD");
    let usd = Money::new(500, "USD");
    let (payment_id, invoice) = created(&btcpay, 500).await;

    let new = btcpay.check(&invoice).await.expect("checked");
    assert_eq!(new.state, PaymentState::Open);
    assert_eq!(new.payment_id, Some(payment_id));
    fake.process(&invoice);
    assert_eq!(
        btcpay.check(&invoice).await.expect("checked").state,
        PaymentState::Processing
    );
    fake.settle(&invoice);
    let settled = btcpay.check(&invoice).await.expect("checked");
    assert_eq!(settled.state, PaymentState::Paid(usd.clone()));
    assert_eq!(settled.state.against(&usd), Verdict::Credit);
    let request = fake.requests().pop().expect("the check");
    assert_eq!(
        request.path,
        format!("/api/v1/stores/{STORE}/invoices/{invoice}")
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("token {KEY}").as_str())
    );

    for (amount, currency, verdict) in [
        (json!("5"), "USD", Verdict::Credit),
        (json!("5.000"), "usd", Verdict::Credit),
        (json!(5), "USD", Verdict::Credit),
        (json!("5.01"), "USD", Verdict::Mismatch),
        (json!("5.001"), "USD", Verdict::Mismatch),
        (json!("5.00"), "EUR", Verdict::Mismatch),
        (json!("0.00012"), "BTC", Verdict::Mismatch),
    ] {
        fake.set_field(&invoice, "amount", amount.clone());
        fake.set_field(&invoice, "currency", json!(currency));
        let checked = btcpay.check(&invoice).await.expect("checked");
        assert_eq!(checked.state.against(&usd), verdict, "{amount} {currency}");
    }

    let (_, expiring) = created(&btcpay, 500).await;
    fake.expire(&expiring);
    assert_eq!(
        btcpay.check(&expiring).await.expect("checked").state,
        PaymentState::Expired
    );
    // An expired invoice can still be settled, paid late.
    fake.settle_late(&expiring);
    assert_eq!(
        btcpay
            .check(&expiring)
            .await
            .expect("checked")
            .state
            .against(&usd),
        Verdict::Credit
    );
    let (_, invalid) = created(&btcpay, 500).await;
    fake.invalidate(&invalid);
    assert_eq!(
        btcpay.check(&invalid).await.expect("checked").state,
        PaymentState::Failed
    );
}

#[tokio::test]
async fn webhooks_are_verified_and_confirmed_by_the_invoice() {
    let fake = FakeBtcpay::start(KEY, STORE);
    let btcpay = provider(&fake.base_url(), "USD");
    let (_, invoice) = created(&btcpay, 500).await;
    fake.settle(&invoice);
    let headers = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, value.parse().expect("header"));
        headers
    };
    for (kind, claim) in [
        ("InvoiceSettled", Claim::Paid),
        ("InvoicePaymentSettled", Claim::Paid),
        ("InvoiceExpired", Claim::Expired),
        ("InvoiceInvalid", Claim::Failed),
    ] {
        let (header, body) = fake.webhook(kind, &invoice, WEBHOOK_SECRET);
        let event = btcpay
            .verify_webhook(&headers(&header), &body, Timestamp::now())
            .expect("verified");
        assert_eq!(event.kind, kind);
        assert_eq!(
            event.hint,
            Hint::Payment {
                reference: invoice.clone(),
                claim
            }
        );
        // Whatever the event claims, the invoice decides.
        match btcpay.confirm(&event.hint).await.expect("confirmed") {
            Confirmed::Payment(checked) => {
                assert_eq!(checked.state, PaymentState::Paid(Money::new(500, "usd")))
            }
            other => panic!("{other:?}"),
        }
    }
    let (_, body) = fake.webhook("InvoiceSettled", &invoice, WEBHOOK_SECRET);
    for bad in [
        signature("another-secret", &body),
        "sha256=00".to_string(),
        "nonsense".to_string(),
    ] {
        let error = btcpay
            .verify_webhook(&headers(&bad), &body, Timestamp::now())
            .expect_err("refused");
        assert!(error.is_signature(), "{bad}: {error:?}");
    }
    let error = btcpay
        .verify_webhook(&HeaderMap::new(), &body, Timestamp::now())
        .expect_err("refused");
    assert!(error.is_signature(), "{error:?}");
}

#[tokio::test]
async fn an_unreachable_down_hanging_or_garbled_btcpay_is_a_typed_error_in_time() {
    let btcpay = provider(&closed_port_url(), "USD");
    let error = fails_in_time(btcpay.check("FakeInv1")).await;
    assert!(
        matches!(
            error,
            ProviderError::Unreachable {
                provider: "btcpay",
                ..
            }
        ),
        "{error:?}"
    );

    let fake = FakeBtcpay::start(KEY, STORE);
    let btcpay = provider(&fake.base_url(), "USD");
    let (_, invoice) = created(&btcpay, 500).await;
    fake.set_mode(Mode::Unavailable);
    let error = fails_in_time(btcpay.check(&invoice)).await;
    assert!(
        matches!(error, ProviderError::Refused { status: 503, .. }),
        "{error:?}"
    );
    fake.set_mode(Mode::Hang);
    let error = fails_in_time(btcpay.create(&NewPayment {
        payment_id: Uuid::new_v4(),
        amount: 500,
    }))
    .await;
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error:?}");
    for mode in [Mode::Garbage, Mode::WrongShape] {
        fake.set_mode(mode);
        let error = fails_in_time(btcpay.check(&invoice)).await;
        assert!(
            matches!(error, ProviderError::BadAnswer { .. }),
            "{mode:?}: {error:?}"
        );
    }
    fake.set_mode(Mode::Normal);
    fake.set_field(&invoice, "status", json!("Exploded"));
    let error = fails_in_time(btcpay.check(&invoice)).await;
    assert!(
        matches!(error, ProviderError::BadAnswer { .. }),
        "{error:?}"
    );

    let error = fails_in_time(btcpay.check("FakeInvUnknown")).await;
    match error {
        ProviderError::Refused {
            status: 404,
            detail,
            ..
        } => {
            assert!(detail.contains("invoice-not-found"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}
