//! Bad input to the payment routes gets a clear problem with a stable code, in bounded time,
//! never a hang, a 500 or a payment recorded for nothing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fake_stripe::{self, FakeStripe, Mode};
use crate::harness::{status_json, stripe, Server, STRIPE_KEY, STRIPE_WHSEC};

/// The provider timeout these tests give the server, in seconds.
const TIMEOUT_SECS: u64 = 1;

fn server(fake: &FakeStripe, dir: &std::path::Path) -> Server {
    let mut args = stripe(&fake.base_url());
    args.extend([
        "--payment-provider-timeout-secs".to_string(),
        TIMEOUT_SECS.to_string(),
    ]);
    Server::start(dir, &args, None)
}

fn code(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["code"].as_str())
}

#[test]
fn payments_refuse_what_they_cannot_take() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeStripe::start(STRIPE_KEY);
    let server = server(&fake, dir.path());
    let key = server.account();
    for (provider, amount) in [
        ("paypal", json!(500)),
        ("test", json!(500)),
        ("btcpay", json!(500)),
        ("stripe", json!(99)),
        ("stripe", json!(100_001)),
        ("stripe", json!(0)),
        ("stripe", json!(-5)),
        ("stripe", json!(5.5)),
        ("stripe", json!("500")),
        ("stripe", Value::Null),
    ] {
        let answer = server.create_payment(&key, provider, amount.clone());
        assert_eq!(
            code(&answer),
            (400, Some("bad_request")),
            "{provider} {amount}: {}",
            answer.1
        );
    }
    // Not JSON, no key, a wrong key.
    let answer = status_json(
        server
            .http
            .post(server.url("/v1/payments"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body("{provider")
            .send()
            .expect("send"),
    );
    assert_eq!(code(&answer), (400, Some("bad_request")));
    let answer = status_json(
        server
            .http
            .post(server.url("/v1/payments"))
            .json(&json!({"provider": "stripe", "amount": 500}))
            .send()
            .expect("send"),
    );
    assert_eq!(code(&answer), (401, Some("unauthorized")));
    assert!(fake.requests().is_empty(), "nothing reached Stripe");

    // The bounds are what the providers route says.
    let providers = server
        .http
        .get(server.url("/v1/payments/providers"))
        .send()
        .expect("providers")
        .json::<Value>()
        .expect("json");
    assert_eq!(
        providers["providers"],
        json!([{"provider": "stripe", "currency": "USD", "min": 100, "max": 100000,
            "test_mode": false}])
    );

    // Another account's payment, an unknown one, an id that is no UUID.
    let payment = server.pending_payment(&key, "stripe", 500);
    let other = server.account();
    assert_eq!(
        code(&server.payment(&other, &payment)),
        (404, Some("not_found"))
    );
    assert_eq!(
        code(&server.payment(&key, &uuid::Uuid::new_v4().to_string())),
        (404, Some("not_found"))
    );
    assert_eq!(
        code(&server.payment(&key, "nope")),
        (400, Some("bad_request"))
    );
    // The test provider's page knows no Stripe payment; the BTCPay webhook is not enabled.
    let page = server
        .http
        .get(server.url(&format!("/pay/{payment}")))
        .send()
        .expect("pay page");
    assert_eq!(page.status(), 404);
    let answer = server.webhook("btcpay", ("btcpay-sig", "sha256=00"), b"{}");
    assert_eq!(code(&answer), (404, Some("not_found")));
    // A list page out of bounds, a cursor that is no payment of the caller's.
    for query in [
        "limit=0",
        "limit=101",
        &format!("before={}", uuid::Uuid::new_v4()),
    ] {
        let answer = status_json(
            server
                .http
                .get(server.url(&format!("/v1/payments?{query}")))
                .bearer_auth(&other)
                .send()
                .expect("list"),
        );
        assert_eq!(code(&answer), (400, Some("bad_request")), "{query}");
    }
}

#[test]
fn an_idempotency_key_names_one_payment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeStripe::start(STRIPE_KEY);
    let server = server(&fake, dir.path());
    let key = server.account();
    let create = |amount: u64| {
        status_json(
            server
                .http
                .post(server.url("/v1/payments"))
                .bearer_auth(&key)
                .header("idempotency-key", "add-money-1")
                .json(&json!({"provider": "stripe", "amount": amount}))
                .send()
                .expect("create"),
        )
    };
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let racing: Vec<_> = (0..3).map(|_| scope.spawn(|| create(500))).collect();
        racing
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    for answer in &answers {
        assert_eq!(answer.0, 201, "{}", answer.1);
        assert_eq!(answer.1["payment_id"], answers[0].1["payment_id"]);
        assert_eq!(answer.1["pay_url"], answers[0].1["pay_url"]);
    }
    assert_eq!(code(&create(600)), (409, Some("idempotency_conflict")));
    // Two keys in one request name no one payment.
    let answer = status_json(
        server
            .http
            .post(server.url("/v1/payments"))
            .bearer_auth(&key)
            .header("idempotency-key", "add-money-2")
            .header("idempotency-key", "add-money-3")
            .json(&json!({"provider": "stripe", "amount": 500}))
            .send()
            .expect("create"),
    );
    assert_eq!(code(&answer), (400, Some("bad_request")), "{}", answer.1);
    let page = server
        .http
        .get(server.url("/v1/payments"))
        .bearer_auth(&key)
        .send()
        .expect("list")
        .json::<Value>()
        .expect("json");
    assert_eq!(page["payments"].as_array().map(Vec::len), Some(1), "{page}");
}

#[test]
fn webhook_bodies_have_their_own_limit_and_must_be_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeStripe::start(STRIPE_KEY);
    let server = server(&fake, dir.path());
    let key = server.account();
    let payment = server.pending_payment(&key, "stripe", 500);
    let session = fake.session_of_payment(&payment).expect("session");
    let now = crate::fake_provider::unix_now();
    let signed = |body: &[u8]| fake_stripe::signature(STRIPE_WHSEC, now, body);

    // The session stays unpaid until the refused bodies are sent, so that no credit can come
    // from the server's own start-up sweep (it runs beside the test and may ask about the
    // payment at any time): a credit counted below can only be a refused body's.
    // Signed, but not JSON, or JSON that is no event.
    for body in [&b"not json"[..], b"{\"hello\": 1}", b""] {
        let answer = server.webhook("stripe", ("stripe-signature", &signed(body)), body);
        assert_eq!(code(&answer), (400, Some("bad_request")), "{body:?}");
    }
    // Over the webhook limit (1 MiB): 413, before any signature is checked.
    let huge = vec![b' '; (1 << 20) + 1];
    let answer = server.webhook("stripe", ("stripe-signature", &signed(&huge)), &huge);
    assert_eq!(code(&answer), (413, Some("payload_too_large")));
    assert_eq!(server.entries_of("credit").len(), 0);
    fake.pay(&session);

    // Over the ordinary limit (64 KiB) but under the webhook's: taken.
    let mut event: Value =
        serde_json::from_slice(&fake.event("checkout.session.completed", &session)).expect("json");
    event["data"]["object"]["evidence_padding"] = json!("x".repeat(200_000));
    let body = serde_json::to_vec(&event).expect("json");
    let answer = server.webhook("stripe", ("stripe-signature", &signed(&body)), &body);
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(answer.1["effect"], "credited");
    server.audit_passes();
}

#[test]
fn a_provider_answering_garbage_or_hanging_is_503_in_bounded_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeStripe::start(STRIPE_KEY);
    let server = server(&fake, dir.path());
    let key = server.account();
    let payment = server.pending_payment(&key, "stripe", 500);
    let session = fake.session_of_payment(&payment).expect("session");
    fake.pay(&session);
    let (signature, body) = fake.webhook("checkout.session.completed", &session, STRIPE_WHSEC);
    for mode in [
        Mode::Garbage,
        Mode::WrongShape,
        Mode::Huge,
        Mode::Unavailable,
        Mode::Hang,
    ] {
        fake.set_mode(mode);
        let started = Instant::now();
        let created = server.create_payment(&key, "stripe", json!(700));
        assert_eq!(
            code(&created),
            (503, Some("service_unavailable")),
            "{mode:?}"
        );
        let hooked = server.webhook("stripe", ("stripe-signature", &signature), &body);
        assert_eq!(
            code(&hooked),
            (503, Some("service_unavailable")),
            "{mode:?}"
        );
        // A status request answers what is known, in bounded time.
        let (status, shown) = server.payment(&key, &payment);
        assert_eq!(status, 200, "{mode:?}: {shown}");
        assert!(
            started.elapsed() < Duration::from_secs(3 * TIMEOUT_SECS + 10),
            "{mode:?} took {:?}",
            started.elapsed()
        );
    }
    // Nothing was recorded for the refused creations, nothing credited.
    let page = server
        .http
        .get(server.url("/v1/payments"))
        .bearer_auth(&key)
        .send()
        .expect("list")
        .json::<Value>()
        .expect("json");
    assert_eq!(page["payments"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(server.entries_of("credit").len(), 0);
    fake.set_mode(Mode::Normal);
    let hooked = server.webhook("stripe", ("stripe-signature", &signature), &body);
    assert_eq!(hooked.0, 200);
    server.audit_passes();
}

#[test]
fn new_payments_share_the_purchases_rate_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &[
            "--payment-provider".to_string(),
            "test".to_string(),
            "--rate-purchases-per-minute".to_string(),
            "2".to_string(),
        ],
        None,
    );
    let key = server.account();
    for _ in 0..2 {
        assert_eq!(server.create_payment(&key, "test", json!(500)).0, 201);
    }
    let answer = server.create_payment(&key, "test", json!(500));
    assert_eq!(code(&answer), (429, Some("rate_limited")));
}

#[test]
fn half_a_provider_refuses_the_start_naming_what_is_missing() {
    for (args, says) in [
        (
            vec!["--stripe-secret-key", STRIPE_KEY],
            "--stripe-webhook-secret missing",
        ),
        (
            vec![
                "--btcpay-url",
                "http://127.0.0.1:9",
                "--btcpay-store-id",
                "s1",
            ],
            "--btcpay-api-key, --btcpay-webhook-secret missing",
        ),
        (
            vec![
                "--payment-provider",
                "test",
                "--stripe-secret-key",
                STRIPE_KEY,
                "--stripe-webhook-secret",
                STRIPE_WHSEC,
            ],
            "--payment-test-beside-real",
        ),
        (
            vec!["--payment-provider", "stripe"],
            "invalid value 'stripe'",
        ),
        (
            vec!["--payment-provider", "test", "--payment-min", "0"],
            "--payment-min",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = crate::serve::serve_command(["--listen", "127.0.0.1:0"]);
        command
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--keys-dir")
            .arg(dir.path().join("keys"))
            .args(["--public-url", crate::harness::PUBLIC_URL])
            .args(&args);
        let output = crate::serve::output_within_deadline(&mut command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains(STRIPE_KEY),
            "a secret in the message: {stderr}"
        );
    }
}
