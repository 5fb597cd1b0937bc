//! What a store keeps beside the ledger moves too: every payment record (any status, its
//! version and every field) and every hold (any state, with each stamp's last hold). On the
//! copy, a payment made before the move is credited once when it is settled, and a live hold
//! still keeps its stamps and is captured once.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use uuid::Uuid;

use pennypost::domain::{Hold, MoveKind, Payment, PaymentMove, PaymentStatus};
use pennypost::store::{Payments, PgLimits, PgStore, Reads, SledStore};
use pennypost::time::Timestamp;

use crate::{pennypost as run_pennypost, pg, Server};

/// The test provider, whose pay page settles a payment as a provider's confirmation would.
const TEST_PROVIDER: [&str; 4] = [
    "--payment-provider",
    "test",
    "--public-url",
    "http://board.test",
];

fn payment_of(server: &Server, key: &str, amount: u64) -> String {
    let (status, created) = server.call(
        reqwest::Method::POST,
        "/v1/payments",
        Some(key),
        Some(json!({"provider": "test", "amount": amount})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "pending", "{created}");
    created["payment_id"].as_str().expect("id").to_string()
}

/// The pay page's button (`POST /pay/{id}`): 303 back to the board (not followed).
fn pay(server: &Server, payment_id: &str) {
    let answer = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/pay/{payment_id}", server.url))
        .send()
        .expect("pay");
    assert_eq!(answer.status().as_u16(), 303, "{:?}", answer.text());
}

fn hold(server: &Server, stamps: &[String], context: &str) -> String {
    let held = server.post(
        "/v1/stamps/hold",
        None,
        json!({"stamps": stamps, "context": context, "ttl_secs": 300}),
    );
    held["hold_id"].as_str().expect("hold id").to_string()
}

fn balance(server: &Server, key: &str) -> u64 {
    let (status, account) = server.call(reqwest::Method::GET, "/v1/account", Some(key), None);
    assert_eq!(status, 200, "{account}");
    account["balance"].as_u64().expect("balance")
}

/// Payments in the states a server reaches with the real providers (refunds, disputes, a
/// movement half made), written through the store's own API as a server would.
fn provider_payments(store: &SledStore, account_id: Uuid) -> Vec<Payment> {
    let now = Timestamp::now();
    let base = |reference: &str, provider: &str| Payment {
        provider: provider.into(),
        amount: 700,
        currency: "USD".into(),
        reference: reference.into(),
        pay_url: format!("https://pay.example/{reference}"),
        expires_at: now.plus_secs(3600),
        ..Payment::fresh(
            Uuid::new_v4(),
            account_id,
            Timestamp::from_unix(now.unix() - 60),
        )
    };
    let refunded = Payment {
        status: PaymentStatus::Refunded,
        credited_ledger_index: Some(3),
        charge_ref: Some("pi_refunded".into()),
        refund_seen: 700,
        refunded: 700,
        last_checked_at: Some(now),
        ..base("cs_refunded", "stripe")
    };
    let disputed = Payment {
        status: PaymentStatus::Disputed,
        credited_ledger_index: Some(4),
        disputed: 300,
        reinstated: 100,
        pending_move: Some(PaymentMove {
            kind: MoveKind::DisputeDebit,
            reference: "btcpay:dispute:inv_disputed:2".into(),
            amount: 200,
            refund_seen: 0,
        }),
        ..base("inv_disputed", "btcpay")
    };
    let expired = Payment {
        status: PaymentStatus::Expired,
        ..base("cs_expired", "stripe")
    };
    let failed = Payment {
        status: PaymentStatus::Failed,
        ..base("inv_failed", "btcpay")
    };
    let mut kept = Vec::new();
    for payment in [refunded, disputed, expired, failed] {
        let created = Payment {
            status: PaymentStatus::Pending,
            version: 0,
            ..payment.clone()
        };
        assert!(store.insert_payment(&created).expect("insert"));
        // Two updates: the version moves on, as it does when servers change a record.
        assert!(store.update_payment(&created).expect("update"));
        let last = Payment {
            version: 1,
            updated_at: now.plus_secs(1),
            ..payment
        };
        assert!(store.update_payment(&last).expect("update"));
        let stored = store.payment(last.payment_id).expect("read").expect("kept");
        assert_eq!(stored.version, 2);
        kept.push(stored);
    }
    kept
}

/// Every payment record and hold of a stopped sled store, as stored.
fn sled_records(store: &SledStore) -> (BTreeMap<Uuid, Payment>, BTreeMap<Uuid, Hold>) {
    let (mut payments, mut holds) = (BTreeMap::new(), BTreeMap::new());
    store
        .export_holds_and_payments(&mut |record| {
            match record {
                pennypost::store::Exported::Payment(p) => {
                    payments.insert(p.payment_id, p);
                }
                pennypost::store::Exported::Hold(h) => {
                    holds.insert(h.hold_id, h);
                }
                _ => {}
            }
            Ok(())
        })
        .expect("export");
    (payments, holds)
}

#[test]
fn payments_and_holds_move_with_the_store_and_are_settled_once_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, keys) = (dir.path().join("data"), dir.path().join("keys"));
    let sled = Server::start(&data, &keys, &TEST_PROVIDER);
    let (account_id, key) = sled.account(100, "kept payer");
    let account_id: Uuid = account_id.parse().expect("account id");
    let paid = payment_of(&sled, &key, 500);
    pay(&sled, &paid);
    let pending = payment_of(&sled, &key, 300);
    assert_eq!(balance(&sled, &key), 600);
    let stamps = sled.buy(&key, 4);
    let live = hold(&sled, &stamps[..2], "gate/live");
    let released = hold(&sled, &stamps[2..3], "gate/released");
    sled.post(&format!("/v1/holds/{released}/release"), None, json!({}));
    let captured = hold(&sled, &stamps[3..], "gate/captured");
    let first_capture = sled.post(&format!("/v1/holds/{captured}/capture"), None, json!({}));
    let before = balance(&sled, &key);
    sled.kill();

    let db_dir = data.join("db");
    let (want_payments, want_holds) = {
        let store = SledStore::open(&db_dir).expect("open the stopped store");
        provider_payments(&store, account_id);
        sled_records(&store)
    };
    assert_eq!(want_payments.len(), 6);
    assert_eq!(want_holds.len(), 3);

    let database = pg::TestDatabase::new();
    let copied = run_pennypost(&[
        "migrate",
        "--from-data-dir",
        data.to_str().expect("path"),
        "--to-database",
        &database.url,
    ]);
    let said = String::from_utf8_lossy(&copied.stdout);
    assert!(copied.status.success(), "migrate: {copied:?}");
    assert!(
        said.contains(
            "copied 6 payment records (1 pending, 1 paid, 1 expired, 1 failed, 1 refunded, \
             1 disputed), 3 holds (1 live)"
        ),
        "{said}"
    );
    assert!(
        said.contains("the same 6 payment records, 3 holds and 4 stamps' last holds in both"),
        "{said}"
    );

    // Every record as stored, found by id and by its provider's reference.
    {
        let copy = PgStore::open(&database.url, &PgLimits::default()).expect("open the copy");
        for (id, want) in &want_payments {
            assert_eq!(copy.payment(*id).expect("read").as_ref(), Some(want));
            assert_eq!(
                copy.payment_by_reference(&want.provider, &want.reference)
                    .expect("read")
                    .as_ref(),
                Some(want)
            );
        }
        for (id, want) in &want_holds {
            assert_eq!(Reads::hold(&copy, *id).expect("read").as_ref(), Some(want));
        }
        let listed = copy
            .payments_with_status(PaymentStatus::Pending, 10)
            .expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].payment_id.to_string(), pending);
    }

    let own_dir = dir.path().join("pg-server");
    let mut args = TEST_PROVIDER.to_vec();
    args.extend(["--database", &database.url]);
    let on_pg = Server::start(&own_dir, &keys, &args);
    // The live hold still holds its stamps: a redeem of one is refused as held.
    let (status, refused) = on_pg.call(
        reqwest::Method::POST,
        "/v1/stamps/redeem",
        None,
        Some(json!({"stamp": stamps[0], "context": "elsewhere"})),
    );
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("stamp_held")),
        "{refused}"
    );
    // It is captured once: a second capture answers the first.
    let capture = format!("/v1/holds/{live}/capture");
    let captured_now = on_pg.post(&capture, None, json!({}));
    assert!(captured_now["ledger_index"].is_u64(), "{captured_now}");
    assert_eq!(on_pg.post(&capture, None, json!({})), captured_now);
    let (status, spent) = on_pg.call(
        reqwest::Method::POST,
        "/v1/stamps/redeem",
        None,
        Some(json!({"stamp": stamps[1], "context": "elsewhere"})),
    );
    assert_eq!(
        (status, spent["code"].as_str()),
        (409, Some("stamp_already_spent")),
        "{spent}"
    );
    // The hold captured before the move answers that capture; the released one stays so.
    assert_eq!(
        on_pg.post(&format!("/v1/holds/{captured}/capture"), None, json!({})),
        first_capture
    );
    let (status, expired) = on_pg.call(
        reqwest::Method::POST,
        &format!("/v1/holds/{released}/capture"),
        None,
        Some(json!({})),
    );
    assert_eq!(
        (status, expired["code"].as_str()),
        (409, Some("hold_expired")),
        "{expired}"
    );

    // The payment pending at the move is credited once when settled (twice: a double click),
    // and the one paid before is not credited again.
    pay(&on_pg, &pending);
    pay(&on_pg, &pending);
    pay(&on_pg, &paid);
    assert_eq!(balance(&on_pg, &key), before + 300);
    let (status, shown) = on_pg.call(
        reqwest::Method::GET,
        &format!("/v1/payments/{pending}"),
        Some(&key),
        None,
    );
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["status"], "paid", "{shown}");
    let (status, audit) = on_pg.call(reqwest::Method::GET, "/v1/audit", None, None);
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["ok"], Value::Bool(true), "{audit}");
    on_pg.kill();
}

/// The check compares holds, stamps' last holds and payment records field by field: a copy
/// that a trigger in the database alters or drops as it is written is caught, exit 1, the
/// record named.
#[test]
fn a_hold_or_payment_copied_otherwise_is_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, keys) = (dir.path().join("data"), dir.path().join("keys"));
    let sled = Server::start(&data, &keys, &TEST_PROVIDER);
    let (_, key) = sled.account(100, "kept payer");
    let pending = payment_of(&sled, &key, 300);
    let stamps = sled.buy(&key, 2);
    let held = hold(&sled, &stamps, "gate/live");
    sled.kill();

    for (table, change, said) in [
        (
            "payments",
            "NEW.version := NEW.version + 1; RETURN NEW;",
            format!("payment {pending}: copied as"),
        ),
        (
            "payments",
            "RETURN NULL;",
            format!("payment {pending}: missing"),
        ),
        (
            "holds",
            "NEW.context := NEW.context || '!'; RETURN NEW;",
            format!("hold {held}: copied as"),
        ),
        (
            "hold_stamps",
            "RETURN NULL;",
            "the last hold of stamp".to_string(),
        ),
    ] {
        let database = pg::TestDatabase::new();
        drop(PgStore::open(&database.url, &PgLimits::default()).expect("make the schema"));
        pg::psql(
            &database.url,
            &format!(
                "CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN {change} END $$; \
                 CREATE TRIGGER tamper BEFORE INSERT ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION tamper()"
            ),
        );
        let copied = run_pennypost(&[
            "migrate",
            "--from-data-dir",
            data.to_str().expect("path"),
            "--to-database",
            &database.url,
        ]);
        let stderr = String::from_utf8_lossy(&copied.stderr);
        assert_eq!(
            copied.status.code(),
            Some(1),
            "{table} {change}: {copied:?}"
        );
        assert!(
            stderr.contains("the copy differs from the source") && stderr.contains(&said),
            "{table} {change}: {stderr}"
        );
    }
}
