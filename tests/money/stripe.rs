//! Stripe through the real server and the fake Stripe: every credit only after the API
//! confirmed it, once, whatever arrives how often.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::fake_stripe::{self, FakeStripe, Mode};
use crate::harness::{stripe, Server, STRIPE_KEY, STRIPE_WHSEC};

/// A server with Stripe on a fresh fake, an account, and one pending payment of 500 with its
/// session.
struct Setup {
    fake: FakeStripe,
    server: Server,
    key: String,
    payment: String,
    session: String,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeStripe::start(STRIPE_KEY);
    let server = Server::start(dir.path(), &stripe(&fake.base_url()), None);
    let key = server.account();
    let payment = server.pending_payment(&key, "stripe", 500);
    let session = fake.session_of_payment(&payment).expect("a session");
    Setup {
        fake,
        server,
        key,
        payment,
        session,
        _dir: dir,
    }
}

impl Setup {
    fn webhook(&self, kind: &str, id: &str) -> (u16, serde_json::Value) {
        let (signature, body) = self.fake.webhook(kind, id, STRIPE_WHSEC);
        self.server
            .webhook("stripe", ("stripe-signature", &signature), &body)
    }

    /// The payment as the operator's list shows it (no re-check at the provider).
    fn admin_status(&self, status: &str) -> Vec<String> {
        let answer = self
            .server
            .http
            .get(
                self.server
                    .url(&format!("/v1/admin/payments?status={status}")),
            )
            .bearer_auth(crate::harness::ADMIN_TOKEN)
            .send()
            .expect("admin list")
            .json::<serde_json::Value>()
            .expect("json");
        answer["payments"]
            .as_array()
            .expect("payments")
            .iter()
            .map(|p| p["payment_id"].as_str().expect("id").to_string())
            .collect()
    }
}

#[test]
fn a_payment_is_credited_once_though_its_webhook_comes_three_times_and_a_poll_races() {
    let s = setup();
    s.fake.pay(&s.session);
    std::thread::scope(|scope| {
        let hooks: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| s.webhook("checkout.session.completed", &s.session)))
            .collect();
        let poll = scope.spawn(|| s.server.payment(&s.key, &s.payment));
        for hook in hooks {
            let (status, body) = hook.join().expect("webhook thread");
            assert_eq!(status, 200, "{body}");
            assert!(
                body["effect"] == "credited" || body["effect"] == "updated",
                "{body}"
            );
        }
        let (status, body) = poll.join().expect("poll thread");
        assert_eq!(status, 200, "{body}");
    });
    let paid = s.server.wait_status(&s.key, &s.payment, "paid");
    assert_eq!(s.server.balance(&s.key), 500);
    let credits = s.server.entries_of("credit");
    assert_eq!(credits.len(), 1, "{credits:?}");
    assert_eq!(credits[0]["source"], "stripe");
    assert_eq!(credits[0]["amount"], 500);
    let index = paid["credited_ledger_index"].as_u64().expect("index");
    assert_eq!(s.server.entries()[index as usize]["kind"], "credit");
    // Later deliveries of the same event change nothing.
    let (status, body) = s.webhook("checkout.session.async_payment_succeeded", &s.session);
    assert_eq!((status, body["effect"].as_str()), (200, Some("updated")));
    assert_eq!(s.server.balance(&s.key), 500);
    s.server.audit_passes();
    // The secrets given as flags never reach the logs.
    let logs = s.server.logs();
    assert!(
        !logs.contains(STRIPE_KEY) && !logs.contains(STRIPE_WHSEC),
        "{logs}"
    );
    assert!(logs.contains("payment credited"), "{logs}");
}

#[test]
fn a_bad_stale_or_missing_signature_is_refused_and_changes_nothing() {
    let s = setup();
    s.fake.pay(&s.session);
    let body = s.fake.event("checkout.session.completed", &s.session);
    let now = crate::fake_provider::unix_now();
    let wrong = fake_stripe::signature("whsec_not_the_secret", now, &body);
    let stale = fake_stripe::signature(STRIPE_WHSEC, now - 400, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let good_for_other = fake_stripe::signature(STRIPE_WHSEC, now, &body);
    for (header, sent) in [
        (Some(wrong.as_str()), &body),
        (Some(stale.as_str()), &body),
        (Some("t=1,v1=zz"), &body),
        (Some(good_for_other.as_str()), &tampered),
        (None, &body),
    ] {
        let mut request = s
            .server
            .http
            .post(s.server.url("/v1/payments/webhooks/stripe"))
            .header("content-type", "application/json")
            .body(sent.clone());
        if let Some(header) = header {
            request = request.header("stripe-signature", header);
        }
        let (status, problem) = crate::harness::status_json(request.send().expect("webhook"));
        assert_eq!(status, 400, "{header:?}: {problem}");
        assert_eq!(problem["code"], "invalid_webhook_signature", "{problem}");
    }
    assert_eq!(s.server.entries_of("credit").len(), 0);
    assert_eq!(s.admin_status("pending"), vec![s.payment.clone()]);
    assert_eq!(s.server.balance(&s.key), 0);
    s.server.audit_passes();
}

#[test]
fn events_the_api_does_not_confirm_credit_nothing() {
    let s = setup();
    // The event claims completion; the API says the session is still open.
    let (status, body) = s.webhook("checkout.session.completed", &s.session);
    assert_eq!((status, body["effect"].as_str()), (200, Some("updated")));
    assert_eq!(s.admin_status("pending"), vec![s.payment.clone()]);

    // Paid, but not the amount asked for: failed, never credited.
    s.fake.pay(&s.session);
    s.fake
        .set_session_field(&s.session, "amount_total", json!(400));
    let (status, _) = s.webhook("checkout.session.completed", &s.session);
    assert_eq!(status, 200);
    assert_eq!(s.admin_status("failed"), vec![s.payment.clone()]);

    // Another payment paid in another currency: failed too.
    let other = s.server.pending_payment(&s.key, "stripe", 700);
    let other_session = s.fake.session_of_payment(&other).expect("session");
    s.fake.pay(&other_session);
    s.fake
        .set_session_field(&other_session, "currency", json!("eur"));
    let (status, _) = s.webhook("checkout.session.completed", &other_session);
    assert_eq!(status, 200);

    // A third, whose asynchronous payment failed.
    let third = s.server.pending_payment(&s.key, "stripe", 900);
    let third_session = s.fake.session_of_payment(&third).expect("session");
    s.fake.complete_unpaid(&third_session);
    let (status, _) = s.webhook("checkout.session.async_payment_failed", &third_session);
    assert_eq!(status, 200);
    let mut failed = s.admin_status("failed");
    failed.sort();
    let mut expected = vec![s.payment.clone(), other.clone(), third.clone()];
    expected.sort();
    assert_eq!(failed, expected);

    // An expired one.
    let fourth = s.server.pending_payment(&s.key, "stripe", 300);
    let fourth_session = s.fake.session_of_payment(&fourth).expect("session");
    s.fake.expire(&fourth_session);
    let (status, _) = s.webhook("checkout.session.expired", &fourth_session);
    assert_eq!(status, 200);
    assert_eq!(s.admin_status("expired"), vec![fourth]);

    // A session of no payment of this server's: ignored.
    let foreign = s.fake.foreign_charge(100, "usd");
    let (status, body) = s.webhook("charge.refunded", &foreign);
    assert_eq!((status, body["effect"].as_str()), (200, Some("ignored")));

    assert_eq!(s.server.entries_of("credit").len(), 0);
    assert_eq!(s.server.balance(&s.key), 0);
    // The operator settles the wrong amount by hand, once, under Stripe's reference.
    let settle = |body: serde_json::Value| {
        crate::harness::status_json(
            s.server
                .http
                .post(
                    s.server
                        .url(&format!("/v1/admin/payments/{}/settle", s.payment)),
                )
                .bearer_auth(crate::harness::ADMIN_TOKEN)
                .json(&body)
                .send()
                .expect("settle"),
        )
    };
    let (status, problem) = settle(json!({"force": true}));
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("bad_request"))
    );
    for _ in 0..2 {
        let (status, paid) = settle(json!({"force": true, "note": "member paid 4.00, agreed"}));
        assert_eq!(status, 200, "{paid}");
        assert_eq!(paid["status"], "paid");
    }
    // A later confirmation (the webhook again) cannot credit it twice.
    let (status, _) = s.webhook("checkout.session.completed", &s.session);
    assert_eq!(status, 200);
    let credits = s.server.entries_of("credit");
    assert_eq!(credits.len(), 1, "{credits:?}");
    assert_eq!(credits[0]["source"], "stripe");
    assert_eq!(s.server.balance(&s.key), 500);
    s.server.audit_passes();
}

#[test]
fn the_api_down_during_a_webhook_is_503_then_credited_on_retry() {
    let s = setup();
    s.fake.pay(&s.session);
    for mode in [Mode::Unavailable, Mode::Garbage, Mode::WrongShape] {
        s.fake.set_mode(mode);
        let (status, problem) = s.webhook("checkout.session.completed", &s.session);
        assert_eq!(status, 503, "{mode:?}: {problem}");
        assert_eq!(problem["code"], "service_unavailable");
        assert_eq!(s.server.entries_of("credit").len(), 0);
    }
    s.fake.set_mode(Mode::Normal);
    let (status, body) = s.webhook("checkout.session.completed", &s.session);
    assert_eq!((status, body["effect"].as_str()), (200, Some("credited")));
    assert_eq!(s.server.balance(&s.key), 500);
    s.server.audit_passes();
}

#[test]
fn a_webhook_lost_while_the_server_was_down_is_made_up_by_the_start_up_sweep() {
    let mut s = setup();
    s.server.kill();
    s.fake.pay(&s.session);
    s.server.restart();
    // No status request, no webhook: only the sweep at start asks Stripe.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.server.entries_of("credit").is_empty() {
        assert!(
            Instant::now() < deadline,
            "not credited by the start-up sweep; logs:\n{}",
            s.server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(s.server.balance(&s.key), 500);
    // The credit is written first and the payment's record marked paid right after (the
    // ledger's reference is what credits once): wait for the record too.
    while s.admin_status("paid").is_empty() {
        assert!(Instant::now() < deadline, "credited but never marked paid");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.admin_status("paid"), vec![s.payment.clone()]);
    s.server.audit_passes();
}

#[test]
fn status_requests_ask_stripe_at_most_every_ten_seconds_and_other_events_are_ignored() {
    let s = setup();
    let session_reads = || {
        s.fake
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/v1/checkout/sessions/"))
            .count()
    };
    for _ in 0..5 {
        let (status, shown) = s.server.payment(&s.key, &s.payment);
        assert_eq!((status, shown["status"].as_str()), (200, Some("pending")));
    }
    assert_eq!(session_reads(), 1, "five polls within 10 s ask Stripe once");

    // An event type the server does not act on: 200, nothing asked, nothing done.
    let mut event: serde_json::Value =
        serde_json::from_slice(&s.fake.event("checkout.session.completed", &s.session))
            .expect("json");
    event["type"] = json!("customer.created");
    let body = serde_json::to_vec(&event).expect("json");
    let signature = fake_stripe::signature(STRIPE_WHSEC, crate::fake_provider::unix_now(), &body);
    let (status, answer) = s
        .server
        .webhook("stripe", ("stripe-signature", &signature), &body);
    assert_eq!((status, answer["effect"].as_str()), (200, Some("ignored")));
    assert_eq!(session_reads(), 1);
}

/// PAYMENTS.md: `POST /v1/admin/payments/{id}/settle` (admin) asks the provider once more and
/// credits under the provider's own reference (`stripe:<session id>`) if it confirms; a
/// payment the provider does not confirm stays as it was; settling again credits nothing more.
#[test]
fn an_operator_settle_asks_stripe_once_more_and_credits_under_its_reference() {
    let s = setup();
    let settle = |payment: &str, token: &str| {
        crate::harness::status_json(
            s.server
                .http
                .post(
                    s.server
                        .url(&format!("/v1/admin/payments/{payment}/settle")),
                )
                .bearer_auth(token)
                .send()
                .expect("settle"),
        )
    };
    let session_reads = || {
        s.fake
            .requests()
            .iter()
            .filter(|r| {
                r.method == "GET" && r.path == format!("/v1/checkout/sessions/{}", s.session)
            })
            .count()
    };
    let (status, problem) = settle(&s.payment, "not-the-admin-token");
    assert_eq!(
        (status, problem["code"].as_str()),
        (401, Some("unauthorized"))
    );
    // Not paid at Stripe yet: asked, and left pending.
    let before = session_reads();
    let (status, shown) = settle(&s.payment, crate::harness::ADMIN_TOKEN);
    assert_eq!(
        (status, shown["status"].as_str()),
        (200, Some("pending")),
        "{shown}"
    );
    assert_eq!(session_reads(), before + 1, "the settle asked Stripe once");
    assert!(s.server.entries_of("credit").is_empty());
    // Paid at Stripe, its webhook lost: the settle credits it.
    s.fake.pay(&s.session);
    for _ in 0..2 {
        let (status, shown) = settle(&s.payment, crate::harness::ADMIN_TOKEN);
        assert_eq!(
            (status, shown["status"].as_str()),
            (200, Some("paid")),
            "{shown}"
        );
    }
    let credits = s.server.entries_of("credit");
    assert_eq!(credits.len(), 1, "{credits:?}");
    assert_eq!(credits[0]["source"], "stripe");
    let reference = format!("stripe:{}", s.session);
    assert_eq!(
        credits[0]["reference_sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(reference.as_bytes()))
    );
    assert_eq!(s.server.balance(&s.key), 500);
    let (status, problem) = settle(
        &uuid::Uuid::new_v4().to_string(),
        crate::harness::ADMIN_TOKEN,
    );
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")));
    s.server.audit_passes();
}
