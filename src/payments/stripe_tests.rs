//! Stripe-Signature verification and event reading.

use super::*;

const SECRET: &str = "whsec_test_0123456789abcdef";
const NOW: i64 = 1_767_225_600;
const BODY: &[u8] =
    br#"{"id":"evt_1","type":"checkout.session.completed","data":{"object":{"id":"cs_test_1"}}}"#;

/// The signature as Stripe computes it, written out independently of the code under test.
fn sign(secret: &str, t: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn header(t: i64, signatures: &[String]) -> String {
    let mut text = format!("t={t}");
    for signature in signatures {
        text.push_str(&format!(",v1={signature}"));
    }
    text
}

#[test]
fn a_valid_signature_is_accepted() {
    let good = sign(SECRET, &NOW.to_string(), BODY);
    assert_eq!(
        verify_signature(Some(&header(NOW, &[good])), BODY, SECRET, NOW),
        Ok(())
    );
}

#[test]
fn any_of_several_v1_may_match() {
    let good = sign(SECRET, &NOW.to_string(), BODY);
    let old_secret = sign("whsec_old", &NOW.to_string(), BODY);
    let garbage = "zz".repeat(32);
    for order in [
        vec![old_secret.clone(), good.clone(), garbage.clone()],
        vec![garbage.clone(), old_secret.clone(), good.clone()],
        vec![good.clone(), old_secret.clone()],
    ] {
        assert_eq!(
            verify_signature(Some(&header(NOW, &order)), BODY, SECRET, NOW),
            Ok(())
        );
    }
    // With v0 and unknown schemes beside it, and spaces after the commas.
    let text = format!("t={NOW}, v0=abc, v1={good}, x=y");
    assert_eq!(verify_signature(Some(&text), BODY, SECRET, NOW), Ok(()));
}

#[test]
fn a_wrong_secret_body_or_timestamp_is_refused() {
    let wrong_secret = sign("whsec_other", &NOW.to_string(), BODY);
    assert_eq!(
        verify_signature(Some(&header(NOW, &[wrong_secret])), BODY, SECRET, NOW),
        Err(WebhookError::BadSignature)
    );
    let good = sign(SECRET, &NOW.to_string(), BODY);
    assert_eq!(
        verify_signature(
            Some(&header(NOW, std::slice::from_ref(&good))),
            b"{}",
            SECRET,
            NOW
        ),
        Err(WebhookError::BadSignature)
    );
    // The signature covers t: the same v1 under another t does not verify.
    assert_eq!(
        verify_signature(
            Some(&header(NOW + 1, std::slice::from_ref(&good))),
            BODY,
            SECRET,
            NOW
        ),
        Err(WebhookError::BadSignature)
    );
    // The key is the whole whsec_ string, not what follows the prefix.
    let without_prefix = sign("test_0123456789abcdef", &NOW.to_string(), BODY);
    assert_eq!(
        verify_signature(Some(&header(NOW, &[without_prefix])), BODY, SECRET, NOW),
        Err(WebhookError::BadSignature)
    );
    // A truncated signature is no match.
    assert_eq!(
        verify_signature(
            Some(&header(NOW, &[good[..32].to_string()])),
            BODY,
            SECRET,
            NOW
        ),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn a_stale_or_future_timestamp_is_refused() {
    let tolerance = SIGNATURE_TOLERANCE_SECS as i64;
    for (t, fine) in [
        (NOW - tolerance, true),
        (NOW + tolerance, true),
        (NOW - tolerance - 1, false),
        (NOW + tolerance + 1, false),
        (0, false),
    ] {
        let signature = sign(SECRET, &t.to_string(), BODY);
        let result = verify_signature(Some(&header(t, &[signature])), BODY, SECRET, NOW);
        if fine {
            assert_eq!(result, Ok(()), "t = now {:+}", t - NOW);
        } else {
            assert_eq!(
                result,
                Err(WebhookError::StaleSignature { age_secs: NOW - t }),
                "t = now {:+}",
                t - NOW
            );
        }
    }
}

#[test]
fn a_missing_or_malformed_header_is_refused() {
    assert_eq!(
        verify_signature(None, BODY, SECRET, NOW),
        Err(WebhookError::MissingSignature("Stripe-Signature"))
    );
    let good = sign(SECRET, &NOW.to_string(), BODY);
    for bad in [
        String::new(),
        "garbage".to_string(),
        format!("v1={good}"),
        format!("t={NOW}"),
        format!("t={NOW},v0={good}"),
        format!("t=soon,v1={good}"),
        format!("t={NOW},t={NOW},v1={good}"),
        format!("t={NOW},v1={good}{}", ",v1=00".repeat(SIGNATURES_MAX)),
        format!(
            "t={NOW},v1={good},x={}",
            "a".repeat(SIGNATURE_HEADER_BYTES_MAX)
        ),
    ] {
        assert!(
            matches!(
                verify_signature(Some(&bad), BODY, SECRET, NOW),
                Err(WebhookError::MalformedSignature(_))
            ),
            "{bad}"
        );
    }
    // Every one of them is a signature error (400 invalid_webhook_signature).
    assert!(WebhookError::MalformedSignature("x").is_signature());
    assert!(WebhookError::MissingSignature("x").is_signature());
    assert!(WebhookError::StaleSignature { age_secs: 1 }.is_signature());
    assert!(!WebhookError::BadBody("x".into()).is_signature());
}

#[test]
fn events_become_hints() {
    let event = |kind: &str, object: Value| {
        serde_json::to_vec(&serde_json::json!({
            "id": "evt_1", "object": "event", "type": kind, "data": {"object": object}
        }))
        .expect("json")
    };
    let session = serde_json::json!({"id": "cs_test_1", "object": "checkout.session"});
    let cases = [
        (
            "checkout.session.completed",
            session.clone(),
            Hint::Payment {
                reference: "cs_test_1".into(),
                claim: Claim::Paid,
            },
        ),
        (
            "checkout.session.async_payment_succeeded",
            session.clone(),
            Hint::Payment {
                reference: "cs_test_1".into(),
                claim: Claim::Paid,
            },
        ),
        (
            "checkout.session.expired",
            session.clone(),
            Hint::Payment {
                reference: "cs_test_1".into(),
                claim: Claim::Expired,
            },
        ),
        (
            "checkout.session.async_payment_failed",
            session.clone(),
            Hint::Payment {
                reference: "cs_test_1".into(),
                claim: Claim::Failed,
            },
        ),
        (
            "charge.refunded",
            serde_json::json!({"id": "ch_1", "object": "charge"}),
            Hint::Charge {
                charge: "ch_1".into(),
            },
        ),
        (
            "charge.refund.updated",
            serde_json::json!({"id": "re_1", "object": "refund", "charge": "ch_2"}),
            Hint::Charge {
                charge: "ch_2".into(),
            },
        ),
        (
            "charge.dispute.funds_withdrawn",
            serde_json::json!({"id": "dp_1", "object": "dispute"}),
            Hint::Dispute {
                dispute: "dp_1".into(),
            },
        ),
        (
            "charge.dispute.funds_reinstated",
            serde_json::json!({"id": "dp_1"}),
            Hint::Dispute {
                dispute: "dp_1".into(),
            },
        ),
        (
            "charge.dispute.created",
            serde_json::json!({"id": "dp_1"}),
            Hint::Dispute {
                dispute: "dp_1".into(),
            },
        ),
        (
            "customer.created",
            serde_json::json!({"id": "cus_1"}),
            Hint::Ignored,
        ),
    ];
    for (kind, object, hint) in cases {
        let parsed = parse_event(&event(kind, object)).expect(kind);
        assert_eq!(parsed.hint, hint, "{kind}");
        assert_eq!(parsed.kind, kind);
        assert_eq!(parsed.id, "evt_1");
    }
    for bad in [
        b"not json".to_vec(),
        b"{}".to_vec(),
        event(
            "checkout.session.completed",
            serde_json::json!({"id": "../v1/balance"}),
        ),
        event("charge.refunded", serde_json::json!({"object": "charge"})),
    ] {
        assert!(matches!(parse_event(&bad), Err(WebhookError::BadBody(_))));
    }
}

#[test]
fn the_verifier_reads_the_header_and_the_event() {
    let stripe = Stripe::new(
        StripeSettings {
            secret_key: Secret::new("rk_test_1"),
            webhook_secret: Secret::new(SECRET),
            api_base: API_BASE_DEFAULT.into(),
            timeout: Duration::from_secs(1),
        },
        "usd",
        "https://board.example/",
    )
    .expect("stripe");
    let mut headers = HeaderMap::new();
    let good = sign(SECRET, &NOW.to_string(), BODY);
    headers.insert(
        SIGNATURE_HEADER,
        header(NOW, &[good]).parse().expect("header"),
    );
    let event = stripe
        .verify_webhook(&headers, BODY, Timestamp::from_unix(NOW))
        .expect("verified");
    assert_eq!(
        event.hint,
        Hint::Payment {
            reference: "cs_test_1".into(),
            claim: Claim::Paid
        }
    );
    assert_eq!(
        stripe.verify_webhook(&HeaderMap::new(), BODY, Timestamp::from_unix(NOW)),
        Err(WebhookError::MissingSignature(SIGNATURE_HEADER))
    );
    // Secrets never show in Debug.
    let debug = format!("{stripe:?}");
    assert!(
        !debug.contains("rk_test_1") && !debug.contains(SECRET),
        "{debug}"
    );
}

#[test]
fn currencies_stripe_counts_otherwise_are_refused() {
    let settings = || StripeSettings {
        secret_key: Secret::new("sk_test_1"),
        webhook_secret: Secret::new(SECRET),
        api_base: API_BASE_DEFAULT.into(),
        timeout: Duration::from_secs(1),
    };
    for refused in ["ISK", "huf", "cents", "BTC", "KWD"] {
        let error = Stripe::new(settings(), refused, "https://x.example").expect_err(refused);
        assert!(error.contains("--currency"), "{error}");
    }
    let stripe = Stripe::new(settings(), "EUR", "https://x.example").expect("EUR");
    assert_eq!(stripe.stripe_currency, "eur");
    assert_eq!(stripe.currency(), "EUR");
}

#[test]
fn signature_failures_are_counted_by_reason_and_nothing_else_is() {
    let stripe = Stripe::new(
        StripeSettings {
            secret_key: Secret::new("rk_test_1"),
            webhook_secret: Secret::new(SECRET),
            api_base: API_BASE_DEFAULT.into(),
            timeout: Duration::from_secs(1),
        },
        "usd",
        "https://board.example",
    )
    .expect("stripe");
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let now = Timestamp::from_unix(NOW);
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, value.parse().expect("header"));
        headers
    };
    metrics::with_local_recorder(&recorder, || {
        let good = header(NOW, &[sign(SECRET, &NOW.to_string(), BODY)]);
        assert!(stripe.verify_webhook(&with(&good), BODY, now).is_ok());
        assert!(stripe.verify_webhook(&with(&good), b"[1]", now).is_err());
        assert!(stripe.verify_webhook(&HeaderMap::new(), BODY, now).is_err());
        assert!(stripe.verify_webhook(&HeaderMap::new(), BODY, now).is_err());
        assert!(stripe.verify_webhook(&with("t=x"), BODY, now).is_err());
        let signed = header(NOW, &[sign(SECRET, &NOW.to_string(), b"[1]")]);
        assert!(
            stripe.verify_webhook(&with(&signed), b"[1]", now).is_err(),
            "bad body"
        );
    });
    let text = handle.render();
    let line = |reason: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(crate::telemetry::PAYMENT_WEBHOOK_SIGNATURE_FAILURES)
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
    };
    assert_eq!(line("missing").as_deref(), Some("2"), "{text}");
    assert_eq!(line("mismatch").as_deref(), Some("1"), "{text}");
    assert_eq!(line("malformed").as_deref(), Some("1"), "{text}");
    assert_eq!(line("stale"), None, "{text}");
}
