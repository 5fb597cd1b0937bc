//! Money going back out through the real server and the fake Stripe: refunds (partial, full,
//! failed) and disputes (after the stamps were spent: a debt; before: a revocation; won: the
//! money back), each movement once whatever is replayed, and the ledger audited after each.

use serde_json::{json, Value};

use crate::fake_stripe::FakeStripe;
use crate::harness::{stripe, Server, STRIPE_KEY, STRIPE_WHSEC};

struct Paid {
    fake: FakeStripe,
    server: Server,
    key: String,
    payment: String,
    charge: String,
    _dir: tempfile::TempDir,
}

/// A server (stamps at 100) with one Stripe payment of 500, paid and credited.
fn paid() -> Paid {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeStripe::start(STRIPE_KEY);
    let mut args = stripe(&fake.base_url());
    args.extend(["--stamp-price".to_string(), "100".to_string()]);
    let server = Server::start(dir.path(), &args, None);
    let key = server.account();
    let payment = server.pending_payment(&key, "stripe", 500);
    let session = fake.session_of_payment(&payment).expect("session");
    let charge = fake.pay(&session);
    let p = Paid {
        fake,
        server,
        key,
        payment,
        charge,
        _dir: dir,
    };
    let (status, body) = p.webhook("checkout.session.completed", &session);
    assert_eq!((status, body["effect"].as_str()), (200, Some("credited")));
    assert_eq!(p.balance(), 500);
    p
}

impl Paid {
    fn webhook(&self, kind: &str, id: &str) -> (u16, Value) {
        let (signature, body) = self.fake.webhook(kind, id, STRIPE_WHSEC);
        self.server
            .webhook("stripe", ("stripe-signature", &signature), &body)
    }

    fn moved(&self, kind: &str, id: &str) {
        let (status, body) = self.webhook(kind, id);
        assert_eq!(status, 200, "{kind}: {body}");
    }

    /// The balance as the ledger says it (a debt below zero), which `GET /v1/account` must
    /// show too.
    fn balance(&self) -> i64 {
        let ledger = self.server.ledger_balance();
        assert_eq!(self.server.balance(&self.key), ledger);
        ledger
    }

    fn status(&self) -> Value {
        self.server.payment(&self.key, &self.payment).1["status"].clone()
    }

    /// Buys `count` stamps (at 100 each); their texts.
    fn buy(&self, count: u64) -> Vec<String> {
        let answer = self
            .server
            .http
            .post(self.server.url("/v1/stamps/purchase"))
            .bearer_auth(&self.key)
            .json(&json!({"count": count}))
            .send()
            .expect("purchase");
        let (status, body) = crate::harness::status_json(answer);
        assert_eq!(status, 201, "{body}");
        body["stamps"]
            .as_array()
            .expect("stamps")
            .iter()
            .map(|s| s.as_str().expect("stamp").to_string())
            .collect()
    }

    fn redeem(&self, stamp: &str) -> (u16, Value) {
        crate::harness::status_json(
            self.server
                .http
                .post(self.server.url("/v1/stamps/redeem"))
                .json(&json!({"stamp": stamp, "context": "site"}))
                .send()
                .expect("redeem"),
        )
    }

    fn debits(&self) -> Vec<(u64, String)> {
        self.server
            .entries_of("debit")
            .iter()
            .map(|d| {
                (
                    d["amount"].as_u64().expect("amount"),
                    d["reason"].as_str().expect("reason").to_string(),
                )
            })
            .collect()
    }
}

#[test]
fn a_partial_then_full_refund_debits_twice_and_replays_change_nothing() {
    let p = paid();
    p.fake.refund(&p.charge, 200);
    for _ in 0..2 {
        p.moved("charge.refunded", &p.charge);
    }
    assert_eq!(p.debits(), vec![(200, "refund".to_string())]);
    assert_eq!(p.balance(), 300);
    assert_eq!(p.status(), "paid");

    p.fake.refund(&p.charge, 500);
    for _ in 0..3 {
        p.moved("charge.refunded", &p.charge);
    }
    assert_eq!(
        p.debits(),
        vec![(200, "refund".to_string()), (300, "refund".to_string())]
    );
    assert_eq!(p.balance(), 0);
    assert_eq!(p.status(), "refunded");
    p.server.audit_passes();

    // The last refund failed: its money comes back, once.
    p.fake.refund(&p.charge, 200);
    for _ in 0..2 {
        p.moved("charge.refund.updated", &p.charge);
    }
    assert_eq!(p.balance(), 300);
    assert_eq!(p.status(), "paid");
    let credits = p.server.entries_of("credit");
    assert_eq!(credits.len(), 2, "{credits:?}");
    assert_eq!(credits[1]["amount"], 300);
    assert_eq!(credits[1]["source"], "stripe");
    p.server.audit_passes();
}

#[test]
fn a_dispute_after_the_stamps_were_spent_leaves_a_debt_then_won_pays_it_back() {
    let p = paid();
    let stamps = p.buy(5);
    for stamp in &stamps {
        assert_eq!(p.redeem(stamp).0, 201);
    }
    let dispute = p.fake.dispute(&p.charge, 500);
    p.moved("charge.dispute.created", &dispute);
    assert_eq!(p.status(), "disputed");
    assert!(p.debits().is_empty(), "no money moved yet");
    p.fake.withdraw_dispute_funds(&dispute);
    for _ in 0..2 {
        p.moved("charge.dispute.funds_withdrawn", &dispute);
    }
    assert_eq!(p.debits(), vec![(500, "dispute".to_string())]);
    assert_eq!(p.balance(), -500);
    // In debt: no purchase.
    let answer = p
        .server
        .http
        .post(p.server.url("/v1/stamps/purchase"))
        .bearer_auth(&p.key)
        .json(&json!({"count": 1}))
        .send()
        .expect("purchase");
    assert_eq!(answer.status(), 402);
    p.server.audit_passes();

    p.fake.reinstate_dispute_funds(&dispute);
    for _ in 0..2 {
        p.moved("charge.dispute.funds_reinstated", &dispute);
    }
    assert_eq!(p.balance(), 0);
    assert_eq!(p.status(), "paid");
    p.server.audit_passes();
}

#[test]
fn a_dispute_before_the_stamps_were_spent_revokes_them() {
    let p = paid();
    let stamps = p.buy(5);
    assert_eq!(p.redeem(&stamps[0]).0, 201);
    let dispute = p.fake.dispute(&p.charge, 500);
    p.fake.withdraw_dispute_funds(&dispute);
    p.moved("charge.dispute.funds_withdrawn", &dispute);
    // 500 taken back from a balance of 0: the four unspent stamps (400) are revoked, 100 is
    // a debt.
    assert_eq!(p.balance(), -100);
    let revokes: Vec<Value> = p
        .server
        .entries_of("spend")
        .into_iter()
        .filter(|s| s["action"] == "revoke")
        .collect();
    assert_eq!(revokes.len(), 1, "{revokes:?}");
    assert_eq!(revokes[0]["stamp_ids"].as_array().map(Vec::len), Some(4));
    for stamp in &stamps[1..] {
        let (status, problem) = p.redeem(stamp);
        assert_eq!(
            (status, problem["code"].as_str()),
            (409, Some("stamp_already_spent"))
        );
    }
    p.server.audit_passes();

    p.fake.reinstate_dispute_funds(&dispute);
    p.moved("charge.dispute.funds_reinstated", &dispute);
    assert_eq!(p.balance(), 400);
    p.server.audit_passes();
}

#[test]
fn a_refund_of_a_payment_still_pending_here_settles_it_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeStripe::start(STRIPE_KEY);
    let server = Server::start(dir.path(), &stripe(&fake.base_url()), None);
    let key = server.account();
    let payment = server.pending_payment(&key, "stripe", 500);
    let session = fake.session_of_payment(&payment).expect("session");
    // Paid, but its completion event never came; then partly refunded.
    let charge = fake.pay(&session);
    fake.refund(&charge, 100);
    let (signature, body) = fake.webhook("charge.refunded", &charge, STRIPE_WHSEC);
    let (status, answer) = server.webhook("stripe", ("stripe-signature", &signature), &body);
    assert_eq!(
        (status, answer["effect"].as_str()),
        (200, Some("moved")),
        "{answer}"
    );
    let credits = server.entries_of("credit");
    assert_eq!(credits.len(), 1, "{credits:?}");
    assert_eq!(credits[0]["amount"], 500);
    let debits = server.entries_of("debit");
    assert_eq!(debits.len(), 1, "{debits:?}");
    assert_eq!(debits[0]["amount"], 100);
    assert_eq!(server.balance(&key), 400);
    assert_eq!(server.payment(&key, &payment).1["status"], "paid");
    server.audit_passes();
}

/// PAYMENTS.md, "Metrics": payments by provider and status, webhook signature failures,
/// provider API latency, amounts credited and debited.
#[test]
fn the_money_moved_and_the_refused_signatures_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeStripe::start(STRIPE_KEY);
    let mut args = stripe(&fake.base_url());
    args.extend(["--metrics-listen".to_string(), "127.0.0.1:0".to_string()]);
    let server = Server::start(dir.path(), &args, None);
    let key = server.account();
    let payment = server.pending_payment(&key, "stripe", 500);
    let session = fake.session_of_payment(&payment).expect("session");
    let charge = fake.pay(&session);
    let hook = |kind: &str, id: &str| {
        let (signature, body) = fake.webhook(kind, id, STRIPE_WHSEC);
        let (status, answer) = server.webhook("stripe", ("stripe-signature", &signature), &body);
        assert_eq!(status, 200, "{kind}: {answer}");
    };
    // Signed with another secret: refused, and counted.
    let (wrong, body) = fake.webhook("checkout.session.completed", &session, "whsec_not_ours");
    let (status, _) = server.webhook("stripe", ("stripe-signature", &wrong), &body);
    assert_eq!(status, 400);
    hook("checkout.session.completed", &session);
    fake.refund(&charge, 200);
    hook("charge.refunded", &charge);
    let metrics = server.metrics();
    for line in [
        "pennypost_payments_total{provider=\"stripe\",status=\"pending\"} 1",
        "pennypost_payments_total{provider=\"stripe\",status=\"paid\"} 1",
        "pennypost_payment_credited_total{provider=\"stripe\"} 500",
        "pennypost_payment_debited_total{provider=\"stripe\",reason=\"refund\"} 200",
        "pennypost_payment_webhook_signature_failures_total{provider=\"stripe\",reason=\"mismatch\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("pennypost_payment_provider_call_seconds_count{provider=\"stripe\"")),
        "no provider latency in:\n{metrics}"
    );
    assert!(!metrics.contains(STRIPE_KEY) && !metrics.contains(STRIPE_WHSEC));

    // PAYMENTS.md, "The ledger": the refund is a `debit` with its account, amount, currency,
    // the hash of `stripe:refund:<charge id>:<amount_refunded>`, `source` and `reason`.
    let account = server
        .http
        .get(server.url("/v1/account"))
        .bearer_auth(&key)
        .send()
        .expect("account")
        .json::<Value>()
        .expect("json");
    let debits = server.entries_of("debit");
    assert_eq!(debits.len(), 1, "{debits:?}");
    let reference = format!("stripe:refund:{charge}:200");
    let want = json!({
        "account": account["account_id"],
        "amount": 200,
        "currency": "USD",
        "reference_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(reference.as_bytes())),
        "source": "stripe",
        "reason": "refund",
    });
    for (field, value) in want.as_object().expect("fields") {
        assert_eq!(&debits[0][field], value, "{field}: {}", debits[0]);
    }
    server.audit_passes();
}
