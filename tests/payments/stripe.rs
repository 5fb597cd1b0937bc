//! The Stripe Checkout client against the fake Stripe.

use pennypost::payments::reference;
use pennypost::payments::stripe::{idempotency_key, SIGNATURE_HEADER, STRIPE_VERSION};
use pennypost::payments::{
    Claim, Confirmed, DisputeFunds, Hint, Money, NewPayment, PaymentState, PaymentsConfig,
    ProviderError, Secret, Verdict, WebhookError,
};
use pennypost::time::Timestamp;
use reqwest::header::HeaderMap;
use uuid::Uuid;

use crate::fake_stripe::{signature, FakeStripe, Mode};
use crate::{closed_port_url, fails_in_time, Shared, PUBLIC_URL, TIMEOUT_SECS};

const KEY: &str = "rk_test_pennypost";
const WEBHOOK_SECRET: &str = "whsec_test_pennypost";

fn provider(api_base: &str) -> Shared {
    let config = PaymentsConfig {
        public_url: Some(PUBLIC_URL.into()),
        stripe_secret_key: Some(Secret::new(KEY)),
        stripe_webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
        stripe_api_base: Some(api_base.into()),
        provider_timeout_secs: TIMEOUT_SECS,
        ..PaymentsConfig::default()
    };
    let providers = config.build("USD").expect("stripe settings");
    providers.get("stripe").expect("stripe enabled").clone()
}

fn usd(amount: u64) -> Money {
    Money::new(amount, "USD")
}

/// A session of `amount` cents created through the provider: (payment id, session id).
async fn created(stripe: &Shared, amount: u64) -> (Uuid, String) {
    let payment_id = Uuid::new_v4();
    let created = stripe
        .create(&NewPayment { payment_id, amount })
        .await
        .expect("created");
    (payment_id, created.reference)
}

/// A webhook from the fake, verified by the provider now.
fn verified(fake: &FakeStripe, stripe: &Shared, kind: &str, id: &str) -> Hint {
    let (header, body) = fake.webhook(kind, id, WEBHOOK_SECRET);
    let mut headers = HeaderMap::new();
    headers.insert(SIGNATURE_HEADER, header.parse().expect("header"));
    stripe
        .verify_webhook(&headers, &body, Timestamp::now())
        .expect("verified")
        .hint
}

#[tokio::test]
async fn a_session_is_created_with_the_contracts_fields_and_headers() {
    let fake = FakeStripe::start(KEY);
    let stripe = provider(&fake.base_url());
    let payment_id = Uuid::new_v4();
    let created = stripe
        .create(&NewPayment {
            payment_id,
            amount: 500,
        })
        .await
        .expect("created");
    assert!(created.reference.starts_with("cs_test_"), "{created:?}");
    assert_eq!(
        created.pay_url,
        format!("https://checkout.stripe.com/c/pay/{}", created.reference)
    );
    assert!(created.expires_at > Timestamp::now());
    assert_eq!(
        fake.session_of_payment(&payment_id.to_string()),
        Some(created.reference.clone())
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/checkout/sessions")
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(request.header("stripe-version"), Some(STRIPE_VERSION));
    assert_eq!(
        request.header("idempotency-key"),
        Some(idempotency_key(payment_id).as_str())
    );
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let back = format!("{PUBLIC_URL}/?payment={payment_id}");
    let id = payment_id.to_string();
    for (field, value) in [
        ("mode", "payment"),
        ("line_items[0][quantity]", "1"),
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[0][price_data][unit_amount]", "500"),
        ("client_reference_id", id.as_str()),
        ("metadata[pennypost_payment]", id.as_str()),
        ("success_url", back.as_str()),
        ("cancel_url", back.as_str()),
    ] {
        assert_eq!(request.form_value(field).as_deref(), Some(value), "{field}");
    }
    assert!(request
        .form_value("line_items[0][price_data][product_data][name]")
        .is_some());

    // A retry of the same payment (after a timeout, say) gets the same session.
    let again = stripe
        .create(&NewPayment {
            payment_id,
            amount: 500,
        })
        .await
        .expect("replayed");
    assert_eq!(again.reference, created.reference);
}

#[tokio::test]
async fn check_follows_the_session_to_paid_expired_or_failed() {
    let fake = FakeStripe::start(KEY);
    let stripe = provider(&fake.base_url());
    let (payment_id, session) = created(&stripe, 500).await;

    let open = stripe.check(&session).await.expect("checked");
    assert_eq!(open.state, PaymentState::Open);
    assert_eq!(open.payment_id, Some(payment_id));
    assert_eq!(open.state.against(&usd(500)), Verdict::Pending);

    fake.pay(&session);
    let paid = stripe.check(&session).await.expect("checked");
    assert_eq!(paid.state, PaymentState::Paid(usd(500)));
    assert_eq!(paid.state.against(&usd(500)), Verdict::Credit);
    let intent = fake.session(&session)["payment_intent"]
        .as_str()
        .expect("intent")
        .to_string();
    assert_eq!(paid.charge_ref.as_deref(), Some(intent.as_str()));
    assert_eq!(
        reference::payment(stripe.name(), &paid.reference),
        format!("stripe:{session}")
    );
    let request = fake.requests().pop().expect("the check");
    assert_eq!(request.path, format!("/v1/checkout/sessions/{session}"));
    assert_eq!(request.header("stripe-version"), Some(STRIPE_VERSION));

    let (_, expiring) = created(&stripe, 500).await;
    fake.expire(&expiring);
    let expired = stripe.check(&expiring).await.expect("checked");
    assert_eq!(expired.state, PaymentState::Expired);
    assert_eq!(expired.state.against(&usd(500)), Verdict::Expired);

    // An asynchronous method: complete but unpaid is still pending, until the event that
    // says it failed is confirmed.
    let (_, slow) = created(&stripe, 500).await;
    fake.complete_unpaid(&slow);
    assert_eq!(
        stripe.check(&slow).await.expect("checked").state,
        PaymentState::Processing
    );
    let hint = verified(
        &fake,
        &stripe,
        "checkout.session.async_payment_failed",
        &slow,
    );
    assert_eq!(
        hint,
        Hint::Payment {
            reference: slow.clone(),
            claim: Claim::Failed
        }
    );
    match stripe.confirm(&hint).await.expect("confirmed") {
        Confirmed::Payment(checked) => assert_eq!(checked.state, PaymentState::Failed),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_amount_or_currency_is_reported_as_such() {
    let fake = FakeStripe::start(KEY);
    let stripe = provider(&fake.base_url());
    let (_, session) = created(&stripe, 500).await;
    fake.pay(&session);
    fake.set_session_field(&session, "amount_total", serde_json::json!(499));
    let checked = stripe.check(&session).await.expect("checked");
    assert_eq!(checked.state, PaymentState::Paid(usd(499)));
    assert_eq!(checked.state.against(&usd(500)), Verdict::Mismatch);

    fake.set_session_field(&session, "amount_total", serde_json::json!(500));
    fake.set_session_field(&session, "currency", serde_json::json!("eur"));
    let checked = stripe.check(&session).await.expect("checked");
    assert_eq!(checked.state.against(&usd(500)), Verdict::Mismatch);
    // Stripe writes currencies in lower case: that alone is no mismatch.
    fake.set_session_field(&session, "currency", serde_json::json!("usd"));
    let checked = stripe.check(&session).await.expect("checked");
    assert_eq!(checked.state.against(&usd(500)), Verdict::Credit);
}

#[tokio::test]
async fn a_completed_webhook_is_confirmed_by_the_session() {
    let fake = FakeStripe::start(KEY);
    let stripe = provider(&fake.base_url());
    let (payment_id, session) = created(&stripe, 700).await;
    fake.pay(&session);
    let hint = verified(&fake, &stripe, "checkout.session.completed", &session);
    match stripe.confirm(&hint).await.expect("confirmed") {
        Confirmed::Payment(checked) => {
            assert_eq!(checked.payment_id, Some(payment_id));
            assert_eq!(checked.state.against(&usd(700)), Verdict::Credit);
        }
        other => panic!("{other:?}"),
    }

    // The same body under another secret, or late, is refused before any call.
    let requests_before = fake.requests().len();
    let (_, body) = fake.webhook("checkout.session.completed", &session, "whsec_other");
    for header in [
        signature("whsec_other", Timestamp::now().unix(), &body),
        signature(WEBHOOK_SECRET, Timestamp::now().unix() - 301, &body),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, header.parse().expect("header"));
        let error = stripe
            .verify_webhook(&headers, &body, Timestamp::now())
            .expect_err("refused");
        assert!(error.is_signature(), "{error:?}");
    }
    assert_eq!(
        stripe.verify_webhook(&HeaderMap::new(), &body, Timestamp::now()),
        Err(WebhookError::MissingSignature(SIGNATURE_HEADER))
    );
    assert_eq!(fake.requests().len(), requests_before);
}

#[tokio::test]
async fn refunds_are_confirmed_cumulatively_with_their_payment() {
    let fake = FakeStripe::start(KEY);
    let stripe = provider(&fake.base_url());
    let (payment_id, session) = created(&stripe, 1000).await;
    let charge = fake.pay(&session);

    for (refunded, kind) in [
        (300, "charge.refunded"),
        (1000, "charge.refunded"),
        (300, "charge.refund.updated"),
    ] {
        fake.refund(&charge, refunded);
        let hint = verified(&fake, &stripe, kind, &charge);
        assert_eq!(
            hint,
            Hint::Charge {
                charge: charge.clone()
            },
            "{kind}"
        );
        match stripe.confirm(&hint).await.expect("confirmed") {
            Confirmed::Refund(state) => {
                assert_eq!(state.charge, charge);
                assert_eq!(state.charged, usd(1000));
                assert_eq!(
                    state.refunded,
                    usd(refunded),
                    "cumulative, as Stripe says now"
                );
                let payment = state.payment.expect("the charge's session");
                assert_eq!(payment.reference, session);
                assert_eq!(payment.payment_id, Some(payment_id));
                assert_eq!(payment.state, PaymentState::Paid(usd(1000)));
            }
            other => panic!("{other:?}"),
        }
    }
    let lookup = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/checkout/sessions" && r.method == "GET")
        .expect("the session looked up by its PaymentIntent");
    let intent = fake.session(&session)["payment_intent"].clone();
    assert_eq!(
        lookup.query,
        Some(format!(
            "payment_intent={}",
            intent.as_str().expect("intent")
        ))
    );

    // Were the list's filter ever ignored, the charge still finds its own session only.
    let (_, other_session) = created(&stripe, 1000).await;
    let other_charge = fake.pay(&other_session);
    fake.set_list_filter(false);
    for (charge, session) in [(&other_charge, &other_session), (&charge, &session)] {
        match stripe
            .confirm(&Hint::Charge {
                charge: charge.clone(),
            })
            .await
            .expect("confirmed")
        {
            Confirmed::Refund(state) => {
                assert_eq!(state.payment.map(|p| p.reference).as_ref(), Some(session))
            }
            other => panic!("{other:?}"),
        }
    }
    fake.set_list_filter(true);

    // A charge made outside Checkout belongs to no payment.
    let foreign = fake.foreign_charge(2500, "usd");
    fake.refund(&foreign, 2500);
    match stripe
        .confirm(&Hint::Charge { charge: foreign })
        .await
        .expect("confirmed")
    {
        Confirmed::Refund(state) => assert_eq!(state.payment, None),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn disputes_are_confirmed_held_withdrawn_then_reinstated() {
    let fake = FakeStripe::start(KEY);
    let stripe = provider(&fake.base_url());
    let (_, session) = created(&stripe, 1000).await;
    let charge = fake.pay(&session);
    let dispute = fake.dispute(&charge, 1000);

    let confirm = |kind: &'static str| {
        let hint = verified(&fake, &stripe, kind, &dispute);
        assert_eq!(
            hint,
            Hint::Dispute {
                dispute: dispute.clone()
            }
        );
        let stripe = stripe.clone();
        async move {
            match stripe.confirm(&hint).await.expect("confirmed") {
                Confirmed::Dispute(state) => state,
                other => panic!("{other:?}"),
            }
        }
    };
    let created_state = confirm("charge.dispute.created").await;
    assert_eq!(created_state.funds, DisputeFunds::Held);
    assert_eq!(created_state.amount, usd(1000));
    assert_eq!(created_state.charge, charge);
    assert_eq!(created_state.status, "needs_response");
    assert_eq!(
        created_state.payment.map(|p| p.reference),
        Some(session.clone())
    );

    fake.withdraw_dispute_funds(&dispute);
    assert_eq!(
        confirm("charge.dispute.funds_withdrawn").await.funds,
        DisputeFunds::Withdrawn
    );
    fake.reinstate_dispute_funds(&dispute);
    let won = confirm("charge.dispute.funds_reinstated").await;
    assert_eq!(won.funds, DisputeFunds::Reinstated);
    assert_eq!(won.status, "won");
    assert_eq!(
        reference::dispute(&won.dispute),
        format!("stripe:dispute:{dispute}")
    );
}

#[tokio::test]
async fn an_unreachable_down_or_hanging_stripe_is_a_typed_error_in_time() {
    let stripe = provider(&closed_port_url());
    let payment = NewPayment {
        payment_id: Uuid::new_v4(),
        amount: 500,
    };
    let error = fails_in_time(stripe.create(&payment)).await;
    assert!(
        matches!(
            error,
            ProviderError::Unreachable {
                provider: "stripe",
                ..
            }
        ),
        "{error:?}"
    );

    let fake = FakeStripe::start(KEY);
    let stripe = provider(&fake.base_url());
    let (_, session) = created(&stripe, 500).await;
    fake.set_mode(Mode::Unavailable);
    let error = fails_in_time(stripe.check(&session)).await;
    assert!(
        matches!(error, ProviderError::Refused { status: 503, .. }),
        "{error:?}"
    );
    fake.set_mode(Mode::Hang);
    let error = fails_in_time(stripe.check(&session)).await;
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error:?}");
    let error = fails_in_time(stripe.create(&payment)).await;
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn garbage_and_refusals_are_typed_errors() {
    let fake = FakeStripe::start(KEY);
    let stripe = provider(&fake.base_url());
    let (_, session) = created(&stripe, 500).await;
    let charge = fake.pay(&session);
    for mode in [Mode::Garbage, Mode::WrongShape] {
        fake.set_mode(mode);
        for error in [
            fails_in_time(stripe.check(&session)).await,
            fails_in_time(stripe.confirm(&Hint::Charge {
                charge: charge.clone(),
            }))
            .await,
            fails_in_time(stripe.create(&NewPayment {
                payment_id: Uuid::new_v4(),
                amount: 500,
            }))
            .await,
        ] {
            assert!(
                matches!(error, ProviderError::BadAnswer { .. }),
                "{mode:?}: {error:?}"
            );
        }
    }
    fake.set_mode(Mode::Huge);
    match fails_in_time(stripe.check(&session)).await {
        ProviderError::BadAnswer { detail, .. } => assert!(detail.contains("over"), "{detail}"),
        other => panic!("{other:?}"),
    }
    fake.set_mode(Mode::Normal);

    // An unknown session: Stripe's 404, with its message.
    let error = fails_in_time(stripe.check("cs_test_unknown")).await;
    match error {
        ProviderError::Refused {
            status: 404,
            detail,
            ..
        } => {
            assert!(detail.contains("resource_missing"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    // An id that could leave its path is never sent.
    let before = fake.requests().len();
    let error = fails_in_time(stripe.check("../v1/balance")).await;
    assert!(
        matches!(error, ProviderError::BadAnswer { .. }),
        "{error:?}"
    );
    assert_eq!(fake.requests().len(), before);

    // A revoked key.
    let config = PaymentsConfig {
        public_url: Some(PUBLIC_URL.into()),
        stripe_secret_key: Some(Secret::new("rk_test_revoked")),
        stripe_webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
        stripe_api_base: Some(fake.base_url()),
        provider_timeout_secs: TIMEOUT_SECS,
        ..PaymentsConfig::default()
    };
    let revoked = config.build("usd").expect("settings");
    let error = fails_in_time(revoked.get("stripe").expect("stripe").check(&session)).await;
    assert!(
        matches!(error, ProviderError::Refused { status: 401, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("rk_test_revoked"), "{error}");
}

/// PAYMENTS.md: every call to Stripe (the five the contract lists) carries the secret key
/// and the pinned `Stripe-Version` header.
#[tokio::test]
async fn every_call_pins_the_stripe_version() {
    let fake = FakeStripe::start(KEY);
    let stripe = provider(&fake.base_url());
    let (_, session) = created(&stripe, 500).await;
    stripe.check(&session).await.expect("checked");
    let charge = fake.pay(&session);
    fake.refund(&charge, 100);
    let refunded = verified(&fake, &stripe, "charge.refunded", &charge);
    stripe.confirm(&refunded).await.expect("confirmed");
    let dispute = fake.dispute(&charge, 400);
    let disputed = verified(&fake, &stripe, "charge.dispute.created", &dispute);
    stripe.confirm(&disputed).await.expect("confirmed");
    let requests = fake.requests();
    let mut calls: Vec<String> = requests
        .iter()
        .map(|r| {
            let call = match r.path.as_str() {
                "/v1/checkout/sessions" => format!("{} {}", r.method, r.path),
                path => format!(
                    "{} {}",
                    r.method,
                    path.rsplit_once('/')
                        .map_or(path, |(collection, _)| collection)
                ),
            };
            assert_eq!(r.header("stripe-version"), Some(STRIPE_VERSION), "{call}");
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {KEY}").as_str()),
                "{call}"
            );
            call
        })
        .collect();
    calls.sort();
    calls.dedup();
    assert_eq!(
        calls,
        [
            "GET /v1/charges",
            "GET /v1/checkout/sessions",
            "GET /v1/disputes",
            "POST /v1/checkout/sessions",
        ]
    );
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path.starts_with("/v1/checkout/sessions/")),
        "a session was read by its id"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path == "/v1/checkout/sessions"),
        "the sessions were listed by payment_intent"
    );
}
