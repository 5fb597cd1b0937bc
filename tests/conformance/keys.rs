//! Key events and accounts.

use pennypost::domain::Account;
use pennypost::keys::{KeyStatus, PublishedKey};
use pennypost::rules::{Command, Conflict, InvalidCommand, Outcome, Refusal};

use crate::harness::*;

pub fn key_events_publish_and_keep_the_first_time(ctx: &mut Ctx) {
    let (kid, public_key) = issuer(1);
    assert_eq!(ctx.store().published_keys().expect("keys"), vec![]);
    assert_eq!(
        ctx.ok(key_event(1, KeyStatus::Active), at(0)),
        Outcome::KeyPublished { ledger_index: 0 }
    );
    let published = PublishedKey {
        kid,
        public_key: Some(public_key.clone()),
        status: KeyStatus::Active,
        published_at: at(0),
    };
    assert_eq!(
        ctx.store().published_keys().expect("keys"),
        vec![published.clone()]
    );
    let entry = ctx.entry(0);
    assert_eq!(entry["kind"], "key");
    assert_eq!(entry["kid"], kid.to_hex());
    assert_eq!(entry["public_key"], public_key);
    assert_eq!(entry["status"], "active");
    assert_eq!(entry["time"], at(0).to_rfc3339());

    // Retired later: the status changes, the first time it was published stays.
    assert_eq!(
        ctx.ok(key_event(1, KeyStatus::Retired), at(50)),
        Outcome::KeyPublished { ledger_index: 1 }
    );
    assert_eq!(ctx.entry(1)["status"], "retired");
    let retired = PublishedKey {
        status: KeyStatus::Retired,
        ..published.clone()
    };
    assert_eq!(
        ctx.store().published_keys().expect("keys"),
        vec![retired.clone()]
    );

    // A second key, published after the first was retired: both are listed.
    assert_eq!(
        ctx.ok(key_event(2, KeyStatus::Active), at(60)),
        Outcome::KeyPublished { ledger_index: 2 }
    );
    let (kid2, public_key2) = issuer(2);
    let mut want = vec![
        retired,
        PublishedKey {
            kid: kid2,
            public_key: Some(public_key2),
            status: KeyStatus::Active,
            published_at: at(60),
        },
    ];
    want.sort_by_key(|k| k.kid.0);
    let mut got = ctx.store().published_keys().expect("keys");
    got.sort_by_key(|k| k.kid.0);
    assert_eq!(got, want);

    // Publishing the same status again appends an entry and still keeps the first time.
    assert_eq!(
        ctx.ok(key_event(2, KeyStatus::Active), at(90)),
        Outcome::KeyPublished { ledger_index: 3 }
    );
    let again = ctx.store().published_keys().expect("keys");
    let second = again.iter().find(|k| k.kid == kid2).expect("key 2");
    assert_eq!(second.published_at, at(60));
    assert_eq!(ctx.size(), 4);
}

pub fn a_key_event_must_name_its_own_key(ctx: &mut Ctx) {
    let (kid1, _) = issuer(1);
    let (_, public_key2) = issuer(2);
    let invalid = Refusal::Invalid(InvalidCommand::KidNotOfKey);
    // Key 1's kid with key 2's public key (the auditor's `key_id_mismatch`), and public keys
    // that are no Ed25519 key at all.
    for public_key in [
        public_key2,
        "not base64!".to_string(),
        "AAAA".to_string(),
        "k".repeat(70_000),
    ] {
        let command = Command::KeyEvent {
            kid: kid1,
            public_key,
            status: KeyStatus::Active,
        };
        ctx.refused(command, at(0), invalid.clone());
    }
    assert_eq!(ctx.size(), 0);
    assert_eq!(ctx.store().published_keys().expect("keys"), vec![]);
}

pub fn only_one_key_is_active_at_a_time(ctx: &mut Ctx) {
    let (kid1, kid2) = (issuer(1).0, issuer(2).0);
    ctx.ok(key_event(1, KeyStatus::Active), at(0));
    // A second active key while the first is active (servers with different keys
    // directories on one database: the auditor's `two_active_keys`) is refused.
    ctx.refused(
        key_event(2, KeyStatus::Active),
        at(1),
        Refusal::AnotherKeyActive(kid1),
    );
    // The active key published active again is no second key.
    ctx.ok(key_event(1, KeyStatus::Active), at(2));
    // Retire, then activate, in one batch (as a start after `keys rotate` does): both apply,
    // the second seeing the first.
    let results = ctx.apply(
        &[
            key_event(1, KeyStatus::Retired),
            key_event(2, KeyStatus::Active),
            key_event(3, KeyStatus::Active),
        ],
        at(3),
    );
    assert_eq!(
        results,
        vec![
            Ok(Outcome::KeyPublished { ledger_index: 2 }),
            Ok(Outcome::KeyPublished { ledger_index: 3 }),
            Err(Refusal::AnotherKeyActive(kid2)),
        ]
    );
    // A retired key cannot come back while another is active.
    ctx.refused(
        key_event(1, KeyStatus::Active),
        at(4),
        Refusal::AnotherKeyActive(kid2),
    );
    let mut statuses: Vec<_> = ctx
        .store()
        .published_keys()
        .expect("keys")
        .into_iter()
        .map(|k| (k.kid, k.status))
        .collect();
    statuses.sort_by_key(|(kid, _)| *kid);
    let mut want = vec![(kid1, KeyStatus::Retired), (kid2, KeyStatus::Active)];
    want.sort_by_key(|(kid, _)| *kid);
    assert_eq!(statuses, want, "key 3 was never published");
    assert_eq!(ctx.size(), 4);
}

pub fn an_account_starts_empty_and_writes_no_entry(ctx: &mut Ctx) {
    ctx.ok(key_event(1, KeyStatus::Active), at(10));
    assert_eq!(ctx.ok(create(0), at(20)), Outcome::AccountCreated);
    let want = Account {
        account_id: account(0),
        name: Some("account 0".into()),
        balance: 0,
        stamps_purchased: 0,
        stamps_spent: 0,
        created_at: at(20),
        refunds_total: 0,
        debt: 0,
    };
    assert_eq!(ctx.account(account(0)), want);
    assert_eq!(
        ctx.store().account_by_api_key(&api_key(0)).expect("read"),
        Some(want)
    );
    assert_eq!(ctx.size(), 1, "creating an account appends no entry");

    // Without a name, and with a clock behind the ledger: created at the ledger's time.
    let unnamed = Command::CreateAccount {
        account_id: account(1),
        name: None,
        api_key_sha256: api_key(1),
    };
    assert_eq!(ctx.ok(unnamed, at(5)), Outcome::AccountCreated);
    let second = ctx.account(account(1));
    assert_eq!((second.name, second.created_at), (None, at(10)));
    assert_eq!(ctx.store().account(account(2)).expect("read"), None);
    assert_eq!(
        ctx.store().account_by_api_key(&api_key(2)).expect("read"),
        None
    );
}

pub fn an_account_id_or_api_key_that_exists_is_refused(ctx: &mut Ctx) {
    ctx.ok(create(0), at(0));
    let collided = Refusal::IdempotencyConflict(Conflict::AccountCollided);
    // The same id with another key, another id with the same key, and both the same.
    let same_id = Command::CreateAccount {
        account_id: account(0),
        name: Some("impostor".into()),
        api_key_sha256: api_key(9),
    };
    ctx.refused(same_id, at(1), collided.clone());
    let same_key = Command::CreateAccount {
        account_id: account(9),
        name: Some("impostor".into()),
        api_key_sha256: api_key(0),
    };
    ctx.refused(same_key, at(1), collided.clone());
    ctx.refused(create(0), at(1), collided);
    assert_eq!(ctx.account(account(0)).name, Some("account 0".into()));
    assert_eq!(ctx.store().account(account(9)).expect("read"), None);
}
