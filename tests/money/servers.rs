//! Two servers on one PostgreSQL database receiving the same webhook at once, with polls on
//! both: one credit, because the ledger's reference is unique; the record agrees on both.

use std::process::Command;

use crate::fake_stripe::FakeStripe;
use crate::harness::{stripe, Server, STRIPE_KEY, STRIPE_WHSEC};
use crate::pg::TestDatabase;

#[test]
fn two_servers_on_one_database_credit_a_webhook_they_both_get_once() {
    let database = TestDatabase::new();
    let fake = FakeStripe::start(STRIPE_KEY);
    let args = stripe(&fake.base_url());
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = Server::start(dir_a.path(), &args, Some(&database.url));
    // One service: the second server gets a copy of the first one's keys.
    let copied = Command::new("cp")
        .arg("-a")
        .arg(dir_a.path().join("keys"))
        .arg(dir_b.path().join("keys"))
        .status()
        .expect("cp");
    assert!(copied.success());
    let b = Server::start(dir_b.path(), &args, Some(&database.url));

    for round in 0..3 {
        let key = a.account();
        let payment = a.pending_payment(&key, "stripe", 500 + round);
        let session = fake.session_of_payment(&payment).expect("session");
        fake.pay(&session);
        let (signature, body) = fake.webhook("checkout.session.completed", &session, STRIPE_WHSEC);
        std::thread::scope(|scope| {
            let mut answers = Vec::new();
            for server in [&a, &b, &a, &b] {
                let (signature, body) = (&signature, &body);
                answers.push(scope.spawn(move || {
                    server.webhook("stripe", ("stripe-signature", signature), body)
                }));
            }
            let polls = [&a, &b].map(|server| {
                let (key, payment) = (&key, &payment);
                scope.spawn(move || server.payment(key, payment))
            });
            for answer in answers {
                let (status, body) = answer.join().expect("webhook");
                assert_eq!(status, 200, "{body}");
            }
            for poll in polls {
                assert_eq!(poll.join().expect("poll").0, 200);
            }
        });
        for server in [&a, &b] {
            let shown = server.wait_status(&key, &payment, "paid");
            assert!(shown["credited_ledger_index"].is_u64(), "{shown}");
            assert_eq!(server.balance(&key), 500 + round as i64);
        }
        let credits = a.entries_of("credit");
        assert_eq!(credits.len(), round as usize + 1, "{credits:?}");
    }
    a.audit_passes();
    b.audit_passes();
}
