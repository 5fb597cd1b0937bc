//! Payments' records (`store::Payments`): inserted once by id and by their provider's
//! reference, changed only over the version read (compare and set, also when threads race),
//! listed newest first by account and by status, kept across a reopen.

use std::sync::atomic::{AtomicUsize, Ordering};

use pennypost::domain::{MoveKind, Payment, PaymentMove, PaymentStatus};
use uuid::Uuid;

use crate::harness::*;

fn payment_id(i: u32) -> Uuid {
    Uuid::from_u128(0x9a70_0000_0000 + u128::from(i))
}

/// A pending payment `i` of account `who`, created at `at(created)`.
fn payment(i: u32, who: u8, created: i64) -> Payment {
    Payment {
        provider: "stripe".into(),
        amount: 500 + u64::from(i),
        currency: "USD".into(),
        reference: format!("cs_test_{i}"),
        pay_url: format!("https://checkout.stripe.com/c/pay/cs_test_{i}"),
        expires_at: at(created + 3600),
        ..Payment::fresh(payment_id(i), account(who), at(created))
    }
}

fn ids(payments: &[Payment]) -> Vec<Uuid> {
    payments.iter().map(|p| p.payment_id).collect()
}

pub fn a_payment_is_inserted_once_by_id_and_by_reference(ctx: &mut Ctx) {
    world(ctx);
    let store = ctx.store();
    let first = payment(0, 0, 0);
    assert!(store.insert_payment(&first).expect("insert"));
    assert!(!store.insert_payment(&first).expect("insert again"));
    // Another payment under the same provider reference is refused.
    let same_reference = Payment {
        payment_id: payment_id(1),
        ..first.clone()
    };
    assert!(!store.insert_payment(&same_reference).expect("insert"));
    // The same reference of another provider is another payment.
    let other_provider = Payment {
        payment_id: payment_id(2),
        provider: "btcpay".into(),
        ..first.clone()
    };
    assert!(store.insert_payment(&other_provider).expect("insert"));
    assert_eq!(
        store.payment(payment_id(0)).expect("read"),
        Some(first.clone())
    );
    assert_eq!(store.payment(payment_id(1)).expect("read"), None);
    assert_eq!(
        store
            .payment_by_reference("stripe", "cs_test_0")
            .expect("read"),
        Some(first)
    );
    assert_eq!(
        store
            .payment_by_reference("btcpay", "cs_test_0")
            .expect("read"),
        Some(other_provider)
    );
    assert_eq!(
        store
            .payment_by_reference("stripe", "cs_test_9")
            .expect("read"),
        None
    );
}

pub fn a_payment_changes_only_over_the_version_it_read(ctx: &mut Ctx) {
    world(ctx);
    let store = ctx.store();
    let read = payment(0, 0, 0);
    assert!(store.insert_payment(&read).expect("insert"));
    let changed = Payment {
        status: PaymentStatus::Disputed,
        updated_at: at(5),
        credited_ledger_index: Some(7),
        charge_ref: Some("pi_1".into()),
        refund_seen: 250,
        refunded: 250,
        disputed: 100,
        reinstated: 100,
        pending_move: Some(PaymentMove {
            kind: MoveKind::DisputeReinstated,
            reference: "stripe:dispute-reinstated:dp_1".into(),
            amount: 100,
            refund_seen: 250,
        }),
        last_checked_at: Some(at(4)),
        ..read.clone()
    };
    assert!(store.update_payment(&changed).expect("update"));
    let stored = store.payment(payment_id(0)).expect("read").expect("kept");
    assert_eq!(
        stored,
        Payment {
            version: 1,
            ..changed.clone()
        }
    );
    // Written over version 0 again: refused, nothing written.
    let stale = Payment {
        status: PaymentStatus::Expired,
        ..read
    };
    assert!(!store.update_payment(&stale).expect("update"));
    assert_eq!(
        store.payment(payment_id(0)).expect("read"),
        Some(stored.clone())
    );
    // Over the version read, it goes on; a move can be cleared.
    let next = Payment {
        pending_move: None,
        status: PaymentStatus::Refunded,
        ..stored
    };
    assert!(store.update_payment(&next).expect("update"));
    let stored = store.payment(payment_id(0)).expect("read").expect("kept");
    assert_eq!(
        (stored.version, stored.pending_move, stored.status),
        (2, None, PaymentStatus::Refunded)
    );
    // A payment never inserted is not updated.
    assert!(!store.update_payment(&payment(9, 0, 0)).expect("update"));
}

pub fn payments_are_listed_newest_first_by_account_and_by_status(ctx: &mut Ctx) {
    world(ctx);
    let store = ctx.store();
    // Account 0: payments 0..4 created at 0, 10, 10, 20 (two at one time: ordered by id).
    for (i, created) in [(0, 0), (1, 10), (2, 10), (3, 20)] {
        assert!(store
            .insert_payment(&payment(i, 0, created))
            .expect("insert"));
    }
    assert!(store.insert_payment(&payment(4, 1, 15)).expect("insert"));
    let all = store
        .account_payments(account(0), None, 10)
        .expect("list")
        .expect("a page");
    let newest_first = vec![payment_id(3), payment_id(2), payment_id(1), payment_id(0)];
    assert_eq!(ids(&all), newest_first);
    let page = store
        .account_payments(account(0), None, 2)
        .expect("list")
        .expect("a page");
    assert_eq!(ids(&page), newest_first[..2]);
    let rest = store
        .account_payments(account(0), Some(payment_id(2)), 10)
        .expect("list")
        .expect("a page");
    assert_eq!(ids(&rest), newest_first[2..]);
    // A cursor that is no payment of the account's.
    assert_eq!(
        store
            .account_payments(account(0), Some(payment_id(4)), 10)
            .expect("list"),
        None
    );
    assert_eq!(
        store
            .account_payments(account(0), Some(payment_id(99)), 10)
            .expect("list"),
        None
    );
    assert_eq!(
        ids(&store
            .account_payments(account(1), None, 10)
            .expect("list")
            .expect("page")),
        vec![payment_id(4)]
    );

    let pending = store
        .payments_with_status(PaymentStatus::Pending, 10)
        .expect("list");
    assert_eq!(
        ids(&pending),
        vec![
            payment_id(3),
            payment_id(4),
            payment_id(2),
            payment_id(1),
            payment_id(0)
        ]
    );
    let paid = Payment {
        status: PaymentStatus::Paid,
        ..payment(2, 0, 10)
    };
    assert!(store.update_payment(&paid).expect("update"));
    assert_eq!(
        ids(&store
            .payments_with_status(PaymentStatus::Pending, 10)
            .expect("list")),
        vec![payment_id(3), payment_id(4), payment_id(1), payment_id(0)]
    );
    assert_eq!(
        ids(&store
            .payments_with_status(PaymentStatus::Paid, 10)
            .expect("list")),
        vec![payment_id(2)]
    );
    assert_eq!(
        ids(&store
            .payments_with_status(PaymentStatus::Pending, 1)
            .expect("list")),
        vec![payment_id(3)]
    );
    assert!(store
        .payments_with_status(PaymentStatus::Failed, 10)
        .expect("list")
        .is_empty());
}

/// PAYMENTS.md: `GET /v1/payments` lists newest first, also payments made within one second:
/// they are ordered by `created_micros`, whatever their ids, in every listing and from every
/// cursor, and a reopened store keeps the order. A payment kept before `created_micros` was
/// (0) is ordered by its second as before.
pub fn payments_made_within_one_second_are_listed_newest_first(ctx: &mut Ctx) {
    world(ctx);
    // Made in this order within second 30, ids descending so that ordering by id would
    // list them oldest first; payment 20 is older and has no microseconds.
    let made = [(24, 7), (23, 250_000), (22, 250_001), (21, 999_999)];
    let old = payment(20, 0, 20);
    assert!(ctx.store().insert_payment(&old).expect("insert"));
    for (i, micros) in made {
        let p = Payment {
            created_micros: micros,
            ..payment(i, 0, 30)
        };
        assert!(ctx.store().insert_payment(&p).expect("insert"));
    }
    let newest_first = vec![
        payment_id(21),
        payment_id(22),
        payment_id(23),
        payment_id(24),
        payment_id(20),
    ];
    let check = |store: &dyn pennypost::store::Store| {
        let all = store
            .account_payments(account(0), None, 10)
            .expect("list")
            .expect("a page");
        assert_eq!(ids(&all), newest_first);
        assert_eq!(all[0].created_micros, 999_999);
        let rest = store
            .account_payments(account(0), Some(payment_id(22)), 2)
            .expect("list")
            .expect("a page");
        assert_eq!(ids(&rest), newest_first[2..4]);
        assert_eq!(
            ids(&store
                .payments_with_status(PaymentStatus::Pending, 10)
                .expect("list")),
            newest_first
        );
    };
    check(ctx.store());
    // A status change keeps the payment's place.
    let mut paid = ctx
        .store()
        .payment(payment_id(22))
        .expect("read")
        .expect("kept");
    paid.status = PaymentStatus::Paid;
    assert!(ctx.store().update_payment(&paid).expect("update"));
    paid.status = PaymentStatus::Pending;
    paid.version += 1;
    assert!(ctx.store().update_payment(&paid).expect("update"));
    check(ctx.store());
    if ctx.reopen() {
        check(ctx.store());
    }
}

/// A sweep's pages: payments in one status, newest first (creation time, then id), each page
/// strictly after the cursor of the last one's payment, so the pages together list every one
/// once, however many share a second; a cursor of a payment in another status still marks a
/// place.
pub fn payments_in_a_status_are_paged_from_a_cursor(ctx: &mut Ctx) {
    world(ctx);
    let store = ctx.store();
    // Eleven payments: created in four seconds (several in one second), two of them paid.
    for i in 0..11u32 {
        let p = payment(i, (i % 2) as u8, i64::from(i % 4));
        assert!(store.insert_payment(&p).expect("insert"));
    }
    for i in [2u32, 7] {
        let paid = Payment {
            status: PaymentStatus::Paid,
            ..store.payment(payment_id(i)).expect("read").expect("kept")
        };
        assert!(store.update_payment(&paid).expect("update"));
    }
    let all = store
        .payments_with_status_before(PaymentStatus::Pending, None, 100)
        .expect("list");
    assert_eq!(all.len(), 9);
    let mut want = all.clone();
    want.sort_by_key(|p| std::cmp::Reverse(p.order()));
    assert_eq!(ids(&all), ids(&want), "newest first, then by id");
    assert_eq!(
        ids(&store
            .payments_with_status(PaymentStatus::Pending, 100)
            .expect("list")),
        ids(&all)
    );
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .payments_with_status_before(PaymentStatus::Pending, cursor, 2)
            .expect("page");
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(Payment::order);
        paged.extend(page);
    }
    assert_eq!(ids(&paged), ids(&all), "the pages list every payment once");
    // The cursor of a paid payment: the pending ones after its place.
    let paid = store.payment(payment_id(7)).expect("read").expect("kept");
    let after_paid = store
        .payments_with_status_before(PaymentStatus::Pending, Some(paid.order()), 100)
        .expect("list");
    let expected: Vec<Uuid> = all
        .iter()
        .filter(|p| p.order() < paid.order())
        .map(|p| p.payment_id)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(ids(&after_paid), expected);
    // After the oldest: nothing.
    let oldest = all.last().expect("oldest").order();
    assert!(store
        .payments_with_status_before(PaymentStatus::Pending, Some(oldest), 100)
        .expect("list")
        .is_empty());
    assert_eq!(
        ids(&store
            .payments_with_status_before(PaymentStatus::Paid, None, 100)
            .expect("list")),
        vec![payment_id(7), payment_id(2)]
    );
}

pub fn racing_updates_of_one_version_write_once(ctx: &mut Ctx) {
    world(ctx);
    let read = payment(0, 0, 0);
    assert!(ctx.store().insert_payment(&read).expect("insert"));
    let written = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..8u64 {
            let store = ctx.shared();
            let read = read.clone();
            let written = &written;
            scope.spawn(move || {
                let mine = Payment {
                    refund_seen: t + 1,
                    ..read
                };
                if store.update_payment(&mine).expect("update") {
                    written.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(written.load(Ordering::SeqCst), 1);
    let stored = ctx
        .store()
        .payment(payment_id(0))
        .expect("read")
        .expect("kept");
    assert_eq!(stored.version, 1);
    assert!((1..=8).contains(&stored.refund_seen));
}

pub fn a_reopened_store_keeps_its_payments(ctx: &mut Ctx) {
    world(ctx);
    let first = payment(0, 0, 0);
    assert!(ctx.store().insert_payment(&first).expect("insert"));
    let paid = Payment {
        status: PaymentStatus::Paid,
        credited_ledger_index: Some(5),
        ..first
    };
    assert!(ctx.store().update_payment(&paid).expect("update"));
    if !ctx.reopen() {
        return;
    }
    let store = ctx.store();
    assert_eq!(
        store.payment(payment_id(0)).expect("read"),
        Some(Payment { version: 1, ..paid })
    );
    assert_eq!(
        ids(&store
            .payments_with_status(PaymentStatus::Paid, 10)
            .expect("list")),
        vec![payment_id(0)]
    );
    assert!(store
        .payment_by_reference("stripe", "cs_test_0")
        .expect("read")
        .is_some());
}
