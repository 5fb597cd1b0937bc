//! Tests of the sled layout: what only this backend has (bundles, hash chunks, the private
//! record types, the migrations of older layouts). What every backend must do is the
//! conformance suite (`tests/conformance/`), which runs on sled too.

use std::path::Path;

use ed25519_dalek::SigningKey;
use uuid::Uuid;

use super::layout::{
    bundle_entries, decode_sold, encode_sold, stamp_key, BUNDLE_BYTES_MAX, BUNDLE_ENTRIES_MAX,
    HASHES_PER_CHUNK, SOLD_BYTES, SOLD_BYTES_V1,
};
use super::records::{
    AccountRecord, CreditKeyRecord, KeyRecord, PostRecord, PurchaseKeyRecord, SpentPart,
};
use super::{SledStore, SEGMENT_BYTES};
use crate::domain::{
    Account, CreditRecord, CreditSource, DebitReason, MoneyKind, Post, PurchaseRecord, Revoked,
    Sale, SpentRecord, StampRef,
};
use crate::keys::{public_key_text, KeyStatus, PublishedKey};
use crate::ledger::check::{AuditReport, LedgerChecker};
use crate::ledger::entry::{SpendAction, ENTRY_BYTES_WRITTEN_MAX};
use crate::rules::{self, Applied, Command, Outcome, Refusal, Settings, SpendFor};
use crate::stamp::Kid;
use crate::store::{Reads as _, StoreError, Writes};
use crate::time::Timestamp;

const CURRENCY: &str = "cents";
const T0: i64 = 1_700_000_000;

/// The rules over a store, as the committer applies them.
trait Apply {
    fn apply(&self, batch: &[Command], now: Timestamp) -> Result<Vec<Applied>, StoreError>;
}

impl<W: Writes> Apply for W {
    fn apply(&self, batch: &[Command], now: Timestamp) -> Result<Vec<Applied>, StoreError> {
        let settings = Settings {
            currency: CURRENCY.into(),
        };
        rules::apply(self, &settings, batch, now)
    }
}

fn stamp_id(i: usize) -> Uuid {
    Uuid::from_u128(0x5a40_0000 + i as u128)
}

/// The issuer key every purchase names; published first so the auditor knows it.
fn issuer() -> (Kid, String) {
    let key = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    (Kid::of(&key), public_key_text(&key))
}

// Runs an open again while it fails on sled's file lock, which sled's background threads may
// hold for a moment after the last handle was dropped: the tests' one retry, shared with the
// integration tests.
#[path = "../../../tests/support/sled_lock.rs"]
mod sled_lock;
pub(super) use sled_lock::retry_while_locked;

/// Opens the store again after the previous handle was dropped.
fn reopen(dir: &Path) -> Result<SledStore, String> {
    retry_while_locked(|| SledStore::open(dir))
}

/// Opens a store's database with sled directly (the store's segment size), to edit it.
fn open_raw(dir: &Path) -> sled::Db {
    retry_while_locked(|| {
        sled::Config::new()
            .path(dir)
            .segment_size(SEGMENT_BYTES)
            .open()
    })
    .expect("open sled")
}

/// Runs the ledger checker over every stored entry and checks the stored Merkle hashes give
/// the same tree head.
fn audit(store: &SledStore) -> Result<AuditReport, String> {
    let size = store.ledger_size().map_err(|e| e.to_string())?;
    let entries = store.entries(0, size).map_err(|e| e.to_string())?;
    if entries.len() as u64 != size {
        return Err(format!("{} entries stored of {size}", entries.len()));
    }
    let mut checker = LedgerChecker::new();
    for entry in &entries {
        checker.push(entry);
    }
    struct Hashes<'a>(&'a SledStore);
    impl tlog_tiles::HashReader for Hashes<'_> {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
            self.0
                .hashes(indexes)
                .map(|hashes| hashes.into_iter().map(tlog_tiles::Hash).collect())
                .map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))
        }
    }
    let stored_root = tlog_tiles::tree_hash(size, &Hashes(store)).map_err(|e| e.to_string())?;
    if stored_root.0 != checker.root().0 {
        return Err("the stored Merkle head differs from the entries'".into());
    }
    let report = checker.report(Timestamp::now().unix());
    if !report.ok {
        return Err(format!("ledger violations: {:?}", report.violations));
    }
    Ok(report)
}

/// A new store in `dir` with the issuer key published, account 0 opened and credited 100 plus
/// a cent per stamp, and `stamps` (if any) bought by it at `T0` for an hour at 1 cent each.
fn opened_with_stamps(dir: &Path, stamps: &[Uuid]) -> (SledStore, Uuid) {
    let store = SledStore::open(dir).expect("open");
    let account = Uuid::from_u128(0xacc0_0000);
    let now = Timestamp::from_unix(T0);
    let (kid, public_key) = issuer();
    let setup = [
        Command::KeyEvent {
            kid,
            public_key,
            status: KeyStatus::Active,
        },
        Command::CreateAccount {
            account_id: account,
            name: None,
            api_key_sha256: [0x10; 32],
        },
        Command::Credit {
            account_id: account,
            amount: 100 + stamps.len() as u64,
            reference: "setup".into(),
            source: CreditSource::Operator,
        },
        Command::Purchase {
            account_id: account,
            unit_price: 1,
            idempotency_key_sha256: None,
            purchase_id: Uuid::from_u128(1),
            kid,
            issued_at: now,
            expires_at: now.plus_secs(3600),
            stamp_ids: stamps.to_vec(),
        },
    ];
    let setup = if stamps.is_empty() {
        &setup[..3]
    } else {
        &setup[..]
    };
    for applied in store.apply(setup, now).expect("apply") {
        assert!(applied.is_ok(), "setup: {applied:?}");
    }
    (store, account)
}

/// A stamp sold by [`opened_with_stamps`], named as its signed payload names it.
fn sold_at_t0(stamp_id: Uuid) -> StampRef {
    StampRef {
        stamp_id,
        issued_at: Timestamp::from_unix(T0),
    }
}

// ------------------------------------------------------------------------------- migrations

/// How far a migration got before the data directory was reopened.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Never started: only the old trees exist.
    BeforeStart,
    /// Stopped while copying: the old trees, and every other key of the new ones.
    WhileCopying,
}

/// Leaves every other key of a new tree (a copy cut short), or none of it.
fn cut_new_tree(db: &sled::Db, name: &str, cut: Cut) {
    match cut {
        Cut::BeforeStart => assert!(db.drop_tree(name).expect("drop")),
        Cut::WhileCopying => {
            let tree = db.open_tree(name).expect("tree");
            let keys: Vec<sled::IVec> = tree.iter().keys().map(|k| k.expect("key")).collect();
            for key in keys.iter().step_by(2) {
                tree.remove(key).expect("remove");
            }
        }
    }
}

/// Rewrites a store into the layout of the first release: stamps in `sold` (id -> sale) and
/// `spent` (id -> spend record), both keyed by stamp id, and Merkle hashes one per key in
/// `hashes`.
fn rewrite_to_first_layout(dir: &Path, cut: Cut) {
    let db = open_raw(dir);
    let stamps = db.open_tree("stamps").expect("stamps");
    let sold = db.open_tree("sold").expect("sold");
    let spent = db.open_tree("spent").expect("spent");
    for item in stamps.iter() {
        let (key, value) = item.expect("read");
        let id = &key[8..];
        // The first layout kept no price: 40 bytes of sale, then the spend record.
        sold.insert(id, &value[..SOLD_BYTES_V1]).expect("insert");
        if value.len() > SOLD_BYTES {
            spent.insert(id, &value[SOLD_BYTES..]).expect("insert");
        }
    }
    cut_new_tree(&db, "stamps", cut);
    cut_new_tree(&db, "stamp_ids", cut);
    let chunks = db.open_tree("hash_chunks").expect("hash_chunks");
    let hashes = db.open_tree("hashes").expect("hashes");
    for item in chunks.iter() {
        let (key, chunk) = item.expect("read");
        let first = u64::from_be_bytes(key.as_ref().try_into().expect("key")) * HASHES_PER_CHUNK;
        for (i, hash) in (0u64..).zip(chunk.chunks(32)) {
            hashes
                .insert((first + i).to_be_bytes(), hash)
                .expect("insert");
        }
    }
    cut_new_tree(&db, "hash_chunks", cut);
    let bundles = db.open_tree("ledger_bundles").expect("ledger_bundles");
    let ledger = db.open_tree("ledger").expect("ledger");
    for item in bundles.iter() {
        let (key, bundle) = item.expect("read");
        let first = u64::from_be_bytes(key.as_ref().try_into().expect("key"));
        for (index, entry) in (first..).zip(bundle_entries(&bundle).expect("a bundle")) {
            ledger.insert(index.to_be_bytes(), entry).expect("insert");
        }
    }
    cut_new_tree(&db, "ledger_bundles", cut);
    if let Cut::BeforeStart = cut {
        db.open_tree("meta")
            .expect("meta")
            .remove("bundle_start")
            .expect("remove");
    }
    db.flush().expect("flush");
}

#[test]
fn a_store_of_the_first_layout_is_migrated_on_open() {
    migrates_on_open(Cut::BeforeStart);
}

#[test]
fn a_migration_cut_short_is_finished_on_the_next_open() {
    migrates_on_open(Cut::WhileCopying);
}

fn migrates_on_open(cut: Cut) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Enough entries for several hash chunks (16 hashes each, about two hashes per entry).
    let all: Vec<Uuid> = (0..40).map(stamp_id).collect();
    let (spent, unspent) = (all[0], all[1]);
    let (store, account) = opened_with_stamps(dir.path(), &all);
    let now = Timestamp::from_unix(T0 + 1);
    let redeem = |stamp: Uuid| Command::Spend {
        stamps: vec![sold_at_t0(stamp)],
        spend_for: SpendFor::Redeem {
            context: "before".into(),
        },
    };
    let mut spends = vec![redeem(spent)];
    spends.extend(all[2..].iter().map(|id| redeem(*id)));
    for applied in store.apply(&spends, now).expect("apply") {
        assert!(applied.is_ok(), "{applied:?}");
    }
    store.sync().expect("sync");
    let before = (
        store.stamp(spent).expect("stamp"),
        store.stamp(unspent).expect("stamp"),
    );
    assert!(before.0.as_ref().is_some_and(|s| s.spent.is_some()));
    let size = store.ledger_size().expect("size");
    // Every stored hash of the log (tlog_tiles numbering: about two per entry).
    let stored: Vec<u64> = (0..tlog_tiles::stored_hash_count(size)).collect();
    assert!(stored.len() > 64, "only {} hashes", stored.len());
    let hashes_before = store.hashes(&stored).expect("hashes");
    let entries_before = store.entries(0, size).expect("entries");
    assert_eq!(entries_before.len() as u64, size);
    drop(store);
    rewrite_to_first_layout(dir.path(), cut);

    let store = reopen(dir.path()).expect("open migrates");
    assert_eq!(store.stamp(spent).expect("stamp"), before.0);
    assert_eq!(store.stamp(unspent).expect("stamp"), before.1);
    assert_eq!(store.hashes(&stored).expect("hashes"), hashes_before);
    assert_eq!(store.entries(0, size).expect("entries"), entries_before);
    let results = store
        .apply(&[redeem(spent), redeem(unspent)], now)
        .expect("apply");
    assert_eq!(results[0], Err(Refusal::AlreadySpent(spent)));
    assert!(results[1].is_ok(), "{:?}", results[1]);
    let account = store.account(account).expect("account").expect("exists");
    assert_eq!((account.stamps_purchased, account.stamps_spent), (40, 40));
    store.sync().expect("sync");
    drop(store);

    // The old trees are gone, and opening again changes nothing.
    let db = open_raw(dir.path());
    let names: Vec<_> = db.tree_names();
    for old in [&b"sold"[..], b"spent", b"hashes", b"ledger"] {
        assert!(!names.iter().any(|n| n.as_ref() == old), "{old:?} left");
    }
    drop(db);
    let store = reopen(dir.path()).expect("reopen");
    let spent_record = store.stamp(unspent).expect("stamp").and_then(|s| s.spent);
    assert_eq!(
        spent_record.map(|s| s.spent_for),
        Some("before".to_string())
    );
    let report = audit(&store).map_err(|e| e.to_string());
    assert!(report.is_ok(), "{report:?}");
}

// ------------------------------------------------------------------------------- damage

#[test]
fn a_damaged_hash_chunk_is_reported_and_nothing_is_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, account) = opened_with_stamps(dir.path(), &[stamp_id(0)]);
    let size = store.ledger_size().expect("size");
    store.sync().expect("sync");
    drop(store);
    // Cut the last hash off the last chunk, as a damaged disk or a hand edit might.
    let db = open_raw(dir.path());
    let chunks = db.open_tree("hash_chunks").expect("hash_chunks");
    let (key, chunk) = chunks.last().expect("read").expect("a chunk");
    chunks
        .insert(key, &chunk[..chunk.len() - 32])
        .expect("insert");
    db.flush().expect("flush");
    drop((chunks, db));

    let store = reopen(dir.path()).expect("reopen");
    let credit = Command::Credit {
        account_id: account,
        amount: 5,
        reference: "after the damage".into(),
        source: CreditSource::Operator,
    };
    match store.apply(&[credit], Timestamp::from_unix(T0 + 1)) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("a damaged hash chunk was not reported: {other:?}"),
    }
    assert_eq!(store.ledger_size().expect("size"), size);
    let balance = store
        .account(account)
        .expect("account")
        .expect("exists")
        .balance;
    assert_eq!(balance, 100, "the refused batch changed the balance");
}

// ------------------------------------------------------------------------------- bundles

#[test]
fn ledger_entries_read_back_from_any_start_across_bundles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, account) = opened_with_stamps(dir.path(), &[]);
    let mut time = T0;
    // Small entries (credits), and purchases big enough (about 37 KB each) that a bundle closes
    // on its byte limit before its count limit.
    for round in 0..6u128 {
        time += 1;
        let now = Timestamp::from_unix(time);
        let mut batch: Vec<Command> = (0..5)
            .map(|i| Command::Credit {
                account_id: account,
                amount: 1000,
                reference: format!("round {round} credit {i}"),
                source: CreditSource::Operator,
            })
            .collect();
        batch.push(Command::Purchase {
            account_id: account,
            unit_price: 1,
            idempotency_key_sha256: None,
            purchase_id: Uuid::from_u128(0xb16_0000 + round),
            kid: issuer().0,
            issued_at: now,
            expires_at: now.plus_secs(3600),
            stamp_ids: (0..960)
                .map(|i| Uuid::from_u128((round << 32) + 0xb16_0000_0000 + i))
                .collect(),
        });
        for applied in store.apply(&batch, now).expect("apply") {
            assert!(applied.is_ok(), "{applied:?}");
        }
    }
    let size = store.ledger_size().expect("size");
    let one_by_one: Vec<Vec<u8>> = (0..size)
        .map(|i| {
            let mut entry = store.entries(i, 1).expect("entry");
            assert_eq!(entry.len(), 1, "entry {i}");
            entry.remove(0)
        })
        .collect();
    assert!(one_by_one.iter().any(|e| e.len() > 30_000));
    for start in 0..=size {
        for limit in [0, 1, 2, 7, 8, 9, 17, 1000] {
            let got = store.entries(start, limit).expect("entries");
            let end = (start + limit).min(size);
            assert_eq!(
                got,
                one_by_one[start as usize..end as usize],
                "entries({start}, {limit})"
            );
        }
    }
    // Each entry carries its own index: none is read from the wrong place.
    for (i, entry) in one_by_one.iter().enumerate() {
        let text = String::from_utf8_lossy(entry);
        assert!(text.contains(&format!("\"index\":{i},")), "{text:.80}");
    }
    drop(store);
    let store = reopen(dir.path())
        .map_err(|e| e.to_string())
        .expect("reopen");
    assert_eq!(store.entries(0, size).expect("entries"), one_by_one);
    let report = audit(&store).map_err(|e| e.to_string());
    assert!(report.is_ok(), "{report:?}");
    drop(store);

    // No bundle holds more than 8 entries or 64 KiB + 4 bytes (so none can become a sled
    // blob), and the big purchases closed some bundles before their eighth entry.
    let db = open_raw(dir.path());
    let bundles = db.open_tree("ledger_bundles").expect("ledger_bundles");
    let mut counts = Vec::new();
    for item in bundles.iter() {
        let (_, bundle) = item.expect("read");
        assert!(
            bundle.len() <= 64 * 1024 + 4,
            "bundle of {} bytes",
            bundle.len()
        );
        let count = bundle_entries(&bundle).expect("a bundle").len();
        assert!(count <= 8, "bundle of {count} entries");
        counts.push(count);
    }
    counts.pop();
    assert!(
        counts.iter().any(|c| *c < 8),
        "no bundle closed on size: {counts:?}"
    );
}

/// The limits the bundle test above checks stored values against: an entry of the largest size
/// fits a bundle alone, and the largest node (17 items, each at most a bundle) is below a
/// quarter of a segment, so sled never writes one as a separate blob file (which it would not
/// fsync).
#[test]
fn bundle_and_chunk_limits_are_what_the_layout_says() {
    assert_eq!(BUNDLE_ENTRIES_MAX, 8);
    assert_eq!(BUNDLE_BYTES_MAX, ENTRY_BYTES_WRITTEN_MAX + 4);
    const { assert!(BUNDLE_BYTES_MAX <= 64 * 1024 + 4) };
    const { assert!(17 * BUNDLE_BYTES_MAX < SEGMENT_BYTES / 4) };
    assert_eq!(HASHES_PER_CHUNK, 16);
}

// ------------------------------------------------------------------------------- records

/// Fixed values for the record tests.
fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0123_4567_89ab_cdef_0000_0000_0000_0000 + n)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("records are JSON text")
}

/// The stored bytes of every private record, for fixed values: a rename of a domain field (or
/// of a record field) must not change what is on disk unnoticed, and bytes written by earlier
/// releases must still decode to the same values.
#[test]
fn records_keep_their_stored_bytes() {
    let account = Account {
        account_id: id(1),
        name: Some("Ada".into()),
        balance: 1234,
        stamps_purchased: 5,
        stamps_spent: 2,
        created_at: Timestamp::from_unix(T0),
        refunds_total: 0,
        debt: 0,
    };
    // Written before refunds: still reads, with no refunds.
    let before_refunds = r#"{"account_id":"01234567-89ab-cdef-0000-000000000001","name":"Ada","balance":1234,"stamps_purchased":5,"stamps_spent":2,"created_at":1700000000}"#;
    assert_eq!(
        AccountRecord::decode(before_refunds.as_bytes()).expect("decode"),
        account
    );
    let account = Account {
        refunds_total: 7,
        ..account
    };
    let stored = r#"{"account_id":"01234567-89ab-cdef-0000-000000000001","name":"Ada","balance":1234,"stamps_purchased":5,"stamps_spent":2,"created_at":1700000000,"refunds_total":7}"#;
    assert_eq!(
        text(AccountRecord::encode(&account).expect("encode")),
        stored
    );
    assert_eq!(
        AccountRecord::decode(stored.as_bytes()).expect("decode"),
        account
    );
    // An account in debt writes its debt; one that owes nothing is written as before.
    let owing = Account {
        balance: 0,
        debt: 40,
        ..account.clone()
    };
    let stored = r#"{"account_id":"01234567-89ab-cdef-0000-000000000001","name":"Ada","balance":0,"stamps_purchased":5,"stamps_spent":2,"created_at":1700000000,"refunds_total":7,"debt":40}"#;
    assert_eq!(text(AccountRecord::encode(&owing).expect("encode")), stored);
    assert_eq!(
        AccountRecord::decode(stored.as_bytes()).expect("decode"),
        owing
    );
    let unnamed = Account {
        name: None,
        ..account
    };
    let stored = r#"{"account_id":"01234567-89ab-cdef-0000-000000000001","name":null,"balance":1234,"stamps_purchased":5,"stamps_spent":2,"created_at":1700000000,"refunds_total":7}"#;
    assert_eq!(
        text(AccountRecord::encode(&unnamed).expect("encode")),
        stored
    );
    assert_eq!(
        AccountRecord::decode(stored.as_bytes()).expect("decode"),
        unnamed
    );

    let post = Post {
        post_id: id(2),
        author: "Ada".into(),
        body: "Hello, \"board\"".into(),
        created_at: Timestamp::from_unix(T0 + 1),
        score: -3,
        ledger_index: 42,
        seq: 7,
        verified: false,
        payer: None,
        cost: 0,
        votes_up: 0,
        votes_down: 0,
        voters: 0,
        up_voters: 0,
        base_postage: None,
        refunded: false,
    };
    // Written before the economy: still reads, as an unpriced post.
    let before_economy = r#"{"post_id":"01234567-89ab-cdef-0000-000000000002","author":"Ada","body":"Hello, \"board\"","created_at":1700000001,"score":-3,"ledger_index":42,"seq":7}"#;
    assert_eq!(
        PostRecord::decode(before_economy.as_bytes()).expect("decode"),
        post
    );
    let post = Post {
        verified: true,
        payer: Some(id(1)),
        cost: 2,
        votes_up: 4,
        votes_down: 1,
        voters: 3,
        up_voters: 2,
        base_postage: Some(5),
        refunded: true,
        ..post
    };
    let stored = r#"{"post_id":"01234567-89ab-cdef-0000-000000000002","author":"Ada","body":"Hello, \"board\"","created_at":1700000001,"score":-3,"ledger_index":42,"seq":7,"verified":true,"payer":"01234567-89ab-cdef-0000-000000000001","cost":2,"votes_up":4,"votes_down":1,"voters":3,"up_voters":2,"base_postage":5,"refunded":true}"#;
    assert_eq!(text(PostRecord::encode(&post).expect("encode")), stored);
    assert_eq!(PostRecord::decode(stored.as_bytes()).expect("decode"), post);

    let purchase = PurchaseRecord {
        purchase_id: id(3),
        account_id: id(1),
        count: 2,
        unit_price: 5,
        total: 10,
        balance: 90,
        ledger_index: 3,
        kid: Kid([1, 2, 3, 4, 5, 6, 7, 8]),
        issued_at: Timestamp::from_unix(T0),
        expires_at: Timestamp::from_unix(T0 + 3600),
        stamp_ids: vec![id(4), id(5)],
    };
    let stored = r#"{"purchase_id":"01234567-89ab-cdef-0000-000000000003","account_id":"01234567-89ab-cdef-0000-000000000001","count":2,"unit_price":5,"total":10,"balance":90,"ledger_index":3,"kid":[1,2,3,4,5,6,7,8],"issued_at":1700000000,"expires_at":1700003600,"stamp_ids":["01234567-89ab-cdef-0000-000000000004","01234567-89ab-cdef-0000-000000000005"]}"#;
    assert_eq!(
        text(PurchaseKeyRecord::encode(&purchase).expect("encode")),
        stored
    );
    assert_eq!(
        PurchaseKeyRecord::decode(stored.as_bytes()).expect("decode"),
        purchase
    );

    let credit = CreditRecord {
        account_id: id(1),
        amount: 25,
        balance: 125,
        ledger_index: 4,
        kind: MoneyKind::Credit,
    };
    let stored = r#"{"account_id":"01234567-89ab-cdef-0000-000000000001","amount":25,"balance":125,"ledger_index":4}"#;
    assert_eq!(
        text(CreditKeyRecord::encode(&credit).expect("encode")),
        stored
    );
    assert_eq!(
        CreditKeyRecord::decode(stored.as_bytes()).expect("decode"),
        credit
    );

    // A debit: a signed balance, and the revoke it caused (or none).
    for (revoked, tail) in [
        (None, r#""debit":{"revoke":null}"#),
        (
            Some(Revoked {
                ledger_index: 6,
                stamps: 3,
                amount: 30,
            }),
            r#""debit":{"revoke":{"ledger_index":6,"stamps":3,"amount":30}}"#,
        ),
    ] {
        let debit = CreditRecord {
            account_id: id(1),
            amount: 50,
            balance: -20,
            ledger_index: 5,
            kind: MoneyKind::Debit { revoked },
        };
        let stored = format!(
            r#"{{"account_id":"01234567-89ab-cdef-0000-000000000001","amount":50,"balance":-20,"ledger_index":5,{tail}}}"#
        );
        assert_eq!(
            text(CreditKeyRecord::encode(&debit).expect("encode")),
            stored
        );
        assert_eq!(
            CreditKeyRecord::decode(stored.as_bytes()).expect("decode"),
            debit
        );
    }

    for (action, name, spent_for) in [
        (
            SpendAction::Post,
            "post",
            "post:01234567-89ab-cdef-0000-000000000002",
        ),
        (
            SpendAction::Vote,
            "vote",
            "vote:01234567-89ab-cdef-0000-000000000002",
        ),
        (SpendAction::Redeem, "redeem", "example.org:comment 9"),
        (SpendAction::Revoke, "revoke", "revoke:ab"),
    ] {
        let spent = SpentRecord {
            spent_at: Timestamp::from_unix(T0 + 9),
            action,
            spent_for: spent_for.into(),
            ledger_index: 9,
        };
        let stored = format!(
            r#"{{"spent_at":1700000009,"action":"{name}","spent_for":"{spent_for}","ledger_index":9}}"#
        );
        assert_eq!(text(SpentPart::encode(&spent).expect("encode")), stored);
        assert_eq!(SpentPart::decode(stored.as_bytes()).expect("decode"), spent);
    }

    let kid = Kid([1, 2, 3, 4, 5, 6, 7, 8]);
    let key = PublishedKey {
        kid,
        public_key: Some("cHVibGlj".into()),
        status: KeyStatus::Retired,
        published_at: Timestamp::from_unix(T0),
    };
    let stored =
        r#"{"status":"retired","public_key":"cHVibGlj","published_at":"2023-11-14T22:13:20Z"}"#;
    assert_eq!(text(KeyRecord::encode(&key).expect("encode")), stored);
    assert_eq!(
        KeyRecord::decode(kid, stored.as_bytes()).expect("decode"),
        key
    );
    let active = PublishedKey {
        status: KeyStatus::Active,
        ..key
    };
    let stored =
        r#"{"status":"active","public_key":"cHVibGlj","published_at":"2023-11-14T22:13:20Z"}"#;
    assert_eq!(text(KeyRecord::encode(&active).expect("encode")), stored);
    assert_eq!(
        KeyRecord::decode(kid, stored.as_bytes()).expect("decode"),
        active
    );
    // A key without its public key (recorded before they were kept) is stored with an empty
    // one; the first releases stored only the status text.
    let bare = PublishedKey {
        public_key: None,
        ..active.clone()
    };
    let stored = r#"{"status":"active","public_key":"","published_at":"2023-11-14T22:13:20Z"}"#;
    assert_eq!(text(KeyRecord::encode(&bare).expect("encode")), stored);
    assert_eq!(
        KeyRecord::decode(kid, stored.as_bytes()).expect("decode"),
        bare
    );
    for (stored, status) in [
        (&b"active"[..], KeyStatus::Active),
        (b"retired", KeyStatus::Retired),
    ] {
        assert_eq!(
            KeyRecord::decode(kid, stored).expect("decode"),
            PublishedKey {
                kid,
                public_key: None,
                status,
                published_at: Timestamp::from_unix(0),
            }
        );
    }
}

/// The sale part of a `stamps` value and the key of a stamp: fixed-width big-endian fields,
/// and keys that sort by issue time first (so recent stamps sit together).
#[test]
fn stamp_values_and_keys_keep_their_bytes() {
    let sale = Sale {
        buyer: id(1),
        kid: Kid([1, 2, 3, 4, 5, 6, 7, 8]),
        issued_at: Timestamp::from_unix(T0),
        expires_at: Timestamp::from_unix(T0 + 3600),
        unit_price: Some(5),
    };
    let bytes = encode_sold(&sale);
    assert_eq!(
        hex::encode(&bytes),
        concat!(
            "0123456789abcdef0000000000000001",
            "0102030405060708",
            "000000006553f100",
            "000000006553ff10",
            "0000000000000005",
        )
    );
    assert_eq!(bytes.len(), SOLD_BYTES);
    assert_eq!(decode_sold(&bytes).expect("decode"), sale);
    // A sale written before prices were kept (40 bytes), alone or followed by its spend
    // record, reads with no price; a priced one followed by its spend reads its price.
    let before_prices = &bytes[..SOLD_BYTES_V1];
    let unpriced = Sale {
        unit_price: None,
        ..sale
    };
    assert_eq!(decode_sold(before_prices).expect("decode"), unpriced);
    let spent = [before_prices, br#"{"spent_at":1}"#].concat();
    assert_eq!(decode_sold(&spent).expect("decode"), unpriced);
    let spent = [&bytes[..], br#"{"spent_at":1}"#].concat();
    assert_eq!(decode_sold(&spent).expect("decode"), sale);

    let key = |stamp_id, issued_at| {
        stamp_key(StampRef {
            stamp_id,
            issued_at: Timestamp::from_unix(issued_at),
        })
    };
    assert_eq!(
        hex::encode(key(id(9), T0)),
        "000000006553f1000123456789abcdef0000000000000009"
    );
    // A later stamp sorts after an earlier one whatever their ids.
    assert!(key(Uuid::max(), T0) < key(Uuid::nil(), T0 + 1));
    assert!(key(id(1), T0) < key(id(2), T0));
}

/// A data directory from before prices were kept per stamp: its unspent stamps get their unit
/// price from their purchase entry on open (so a post paid with them knows its base postage,
/// as the auditor does), its spent ones keep the old layout, and a second open changes nothing.
#[test]
fn unspent_stamps_of_an_old_directory_get_their_price_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spent, unspent) = (stamp_id(0), stamp_id(1));
    let (store, _) = opened_with_stamps(dir.path(), &[spent, unspent]);
    let redeem = Command::Spend {
        stamps: vec![sold_at_t0(spent)],
        spend_for: SpendFor::Redeem {
            context: "before".into(),
        },
    };
    let applied = store
        .apply(&[redeem], Timestamp::from_unix(T0 + 1))
        .expect("apply");
    assert!(applied[0].is_ok(), "{applied:?}");
    store.sync().expect("sync");
    drop(store);

    // Rewrite both stamps to the old 40-byte sale part and forget the migration ran.
    let db = open_raw(dir.path());
    let stamps = db.open_tree("stamps").expect("stamps");
    for id in [spent, unspent] {
        let key = stamp_key(sold_at_t0(id));
        let value = stamps.get(key).expect("read").expect("sold");
        let old = [&value[..SOLD_BYTES_V1], &value[SOLD_BYTES..]].concat();
        stamps.insert(key, old).expect("write");
    }
    db.open_tree("meta")
        .expect("meta")
        .remove("stamp_prices")
        .expect("remove");
    db.flush().expect("flush");
    drop(stamps);
    drop(db);

    let store = reopen(dir.path()).expect("open migrates");
    let db_value = |store: &SledStore, id| {
        store
            .stamps
            .get(stamp_key(sold_at_t0(id)))
            .expect("read")
            .expect("sold")
    };
    let priced = db_value(&store, unspent);
    assert_eq!(priced.len(), SOLD_BYTES);
    assert_eq!(decode_sold(&priced).expect("decode").unit_price, Some(1));
    // The spent one keeps its old layout and still reads as spent.
    let old = db_value(&store, spent);
    assert_eq!(decode_sold(&old).expect("decode").unit_price, None);
    assert!(store
        .stamp(spent)
        .expect("stamp")
        .is_some_and(|s| s.spent.is_some()));
    drop(store);
    let store = reopen(dir.path()).expect("open again");
    assert_eq!(db_value(&store, unspent), priced);
}

#[test]
fn a_directory_written_before_active_keys_were_listed_gets_the_list_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = opened_with_stamps(dir.path(), &[]);
    drop(store);
    // An older directory: the key records without the list of active kids.
    {
        let db = open_raw(dir.path());
        let meta = db.open_tree("meta").expect("meta");
        assert!(meta
            .remove(super::layout::ACTIVE_KEYS)
            .expect("remove")
            .is_some());
        db.flush().expect("flush");
    }
    let store = reopen(dir.path()).expect("reopen");
    // The issuer key published before is known active: a second active key is refused, a
    // purchase under the first is sold.
    let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
    let second = Command::KeyEvent {
        kid: Kid::of(&other),
        public_key: public_key_text(&other),
        status: KeyStatus::Active,
    };
    let now = Timestamp::from_unix(T0 + 1);
    let results = store.apply(&[second], now).expect("apply");
    assert_eq!(results, vec![Err(Refusal::AnotherKeyActive(issuer().0))]);
}

#[test]
fn a_directory_written_before_the_purchase_index_gets_it_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids: Vec<Uuid> = (0..4).map(|i| Uuid::from_u128(0x5a40_0000 + i)).collect();
    let (store, account) = opened_with_stamps(dir.path(), &ids);
    drop(store);
    // An older directory: no purchase index, no flag (and a half-written index of a run cut
    // short, which the next run removes).
    {
        let db = open_raw(dir.path());
        let meta = db.open_tree("meta").expect("meta");
        assert!(meta.remove("account_purchases").expect("remove").is_some());
        let economy = db.open_tree("economy").expect("economy");
        let keys: Vec<_> = economy
            .iter()
            .keys()
            .map(|k| k.expect("key"))
            .filter(|k| k.first() == Some(&b'b') || k.first() == Some(&b'n'))
            .collect();
        assert_eq!(keys.len(), 2, "one purchase and its count");
        for key in keys {
            economy.remove(key).expect("remove");
        }
        let mut stray = vec![b'b'];
        stray.extend_from_slice(account.as_bytes());
        stray.extend_from_slice(&7u64.to_be_bytes());
        economy.insert(stray, &b"{}"[..]).expect("insert");
        db.flush().expect("flush");
    }
    let store = reopen(dir.path()).expect("reopen");
    // 100 left after 4 stamps at 1: a debit of 102 revokes the last two, from the index.
    let debit = Command::Debit {
        account_id: account,
        amount: 102,
        reference: "after the upgrade".into(),
        source: CreditSource::Operator,
        reason: DebitReason::Correction,
    };
    let results = store
        .apply(&[debit], Timestamp::from_unix(T0 + 5))
        .expect("apply");
    assert_eq!(
        results,
        vec![Ok(Outcome::Debited {
            balance: 0,
            ledger_index: 3,
            replayed: false,
            revoked: Some(Revoked {
                ledger_index: 4,
                stamps: 2,
                amount: 2,
            }),
        })]
    );
    let revoke: serde_json::Value =
        serde_json::from_slice(&store.entries(4, 1).expect("entries")[0]).expect("json");
    assert_eq!(
        revoke["stamp_ids"],
        serde_json::json!([ids[3].to_string(), ids[2].to_string()])
    );
    audit(&store).expect("the ledger audits");
}
