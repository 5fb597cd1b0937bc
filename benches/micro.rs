//! Micro-benchmarks (divan): stamp sign / verify / encode / decode, ledger entry encoding,
//! checker throughput, ledger append (store transaction + Merkle hashes) and proof generation.
//!
//! Run: `cargo bench --bench micro`. The audit of a 1,000,000-entry log is
//! `audit_million_entries` (one sample: it builds the log once, then feeds the checker).

use std::sync::OnceLock;

use divan::{black_box, Bencher};
use ed25519_dalek::SigningKey;
use pennypost::domain::{CreditSource, StampRef};
use pennypost::ledger::check::LedgerChecker;
use pennypost::ledger::entry::{self, Body, SpendAction};
use pennypost::rules::{Applied, Command, SpendFor};
use pennypost::stamp::{self, Kid, Payload};
use pennypost::store::{Reads as _, SledStore, StoreError, Writes};

/// The rules over a store, as the group committer applies them.
trait Apply {
    fn apply(&self, batch: &[Command], now: Timestamp) -> Result<Vec<Applied>, StoreError>;
}

impl<W: Writes> Apply for W {
    fn apply(&self, batch: &[Command], now: Timestamp) -> Result<Vec<Applied>, StoreError> {
        let settings = pennypost::rules::Settings {
            currency: "cents".into(),
        };
        pennypost::rules::apply(self, &settings, batch, now)
    }
}
use pennypost::time::Timestamp;
use uuid::Uuid;

fn main() {
    divan::main();
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn payload() -> Payload {
    Payload {
        kid: Kid::of(&key().verifying_key()),
        stamp_id: Uuid::from_bytes([0x11; 16]),
        issued_at: 1_700_000_000,
        expires_at: 4_000_000_000,
        value: 1,
        holder: [0; 32],
    }
}

#[divan::bench]
fn stamp_sign(bencher: Bencher) {
    let key = key();
    let payload = payload();
    bencher.bench(|| stamp::sign(black_box(&payload), &key));
}

#[divan::bench]
fn stamp_decode(bencher: Bencher) {
    let text = stamp::sign(&payload(), &key());
    bencher.bench(|| stamp::decode(black_box(&text)));
}

#[divan::bench]
fn stamp_verify_strict(bencher: Bencher) {
    let text = stamp::sign(&payload(), &key());
    let decoded = stamp::decode(&text).expect("decode");
    let vk = key().verifying_key();
    bencher.bench(|| decoded.verify_signature(black_box(&vk)));
}

#[divan::bench(args = [16, 64])]
fn stamp_verify_batch_per_stamp(bencher: Bencher, n: usize) {
    let key = key();
    let vk = key.verifying_key();
    let parts: Vec<(Vec<u8>, ed25519_dalek::Signature)> = (0..n)
        .map(|i| {
            let mut p = payload();
            p.stamp_id = Uuid::from_u128(i as u128);
            stamp::decode(&stamp::sign(&p, &key))
                .expect("decode")
                .signed_parts()
        })
        .collect();
    let messages: Vec<&[u8]> = parts.iter().map(|(m, _)| m.as_slice()).collect();
    let signatures: Vec<_> = parts.iter().map(|(_, s)| *s).collect();
    let keys = vec![vk; n];
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .bench(|| ed25519_dalek::verify_batch(&messages, &signatures, &keys));
}

#[divan::bench]
fn entry_encode_spend(bencher: Bencher) {
    let body = Body::Spend {
        stamp_ids: vec![Uuid::from_u128(1)],
        action: SpendAction::Redeem,
        target: "ab".repeat(32),
        direction: None,
        amount: None,
    };
    bencher.bench(|| entry::encode(black_box(123_456), "2026-11-26T00:00:00Z", &body));
}

/// A synthetic honest log: one key entry, then rounds of credit, purchase of 10, 10 spends.
fn synthetic_log(entries: usize) -> Vec<Vec<u8>> {
    let vk = key().verifying_key();
    let kid = Kid::of(&vk);
    let mut log = Vec::with_capacity(entries);
    let time = "2026-01-01T00:00:00Z";
    log.push(
        entry::encode(
            0,
            time,
            &Body::Key {
                kid: kid.to_hex(),
                public_key: pennypost::keys::public_key_text(&vk),
                status: "active",
            },
        )
        .expect("encode"),
    );
    let account = Uuid::from_u128(7);
    let mut round = 0u128;
    while log.len() < entries {
        let index = log.len() as u64;
        log.push(
            entry::encode(
                index,
                time,
                &Body::Credit {
                    account,
                    amount: 10,
                    currency: "cents".into(),
                    reference_sha256: format!("{:064x}", round),
                    source: CreditSource::Operator,
                },
            )
            .expect("encode"),
        );
        let ids: Vec<Uuid> = (0..10)
            .map(|i| Uuid::from_u128(round * 16 + i + 1))
            .collect();
        log.push(
            entry::encode(
                index + 1,
                time,
                &Body::Purchase {
                    account,
                    purchase_id: Uuid::from_u128(u128::MAX - round),
                    count: 10,
                    unit_price: 1,
                    total: 10,
                    kid: kid.to_hex(),
                    issued_at: time.into(),
                    expires_at: "2099-01-01T00:00:00Z".into(),
                    stamp_ids: ids.clone(),
                },
            )
            .expect("encode"),
        );
        for (i, id) in ids.iter().enumerate() {
            log.push(
                entry::encode(
                    index + 2 + i as u64,
                    time,
                    &Body::Spend {
                        stamp_ids: vec![*id],
                        action: SpendAction::Redeem,
                        target: "ab".repeat(32),
                        direction: None,
                        amount: None,
                    },
                )
                .expect("encode"),
            );
        }
        round += 1;
    }
    log.truncate(entries);
    log
}

#[divan::bench]
fn checker_push_10k_entries(bencher: Bencher) {
    let log = synthetic_log(10_000);
    bencher
        .counter(divan::counter::ItemsCount::new(log.len()))
        .bench(|| {
            let mut checker = LedgerChecker::new();
            for entry in &log {
                checker.push(entry);
            }
            checker.report(0).ok
        });
}

#[divan::bench(sample_count = 1, sample_size = 1)]
fn audit_million_entries(bencher: Bencher) {
    let log = synthetic_log(1_000_000);
    bencher
        .counter(divan::counter::ItemsCount::new(log.len()))
        .bench(|| {
            let mut checker = LedgerChecker::new();
            for entry in &log {
                checker.push(entry);
            }
            assert!(checker.report(0).ok);
        });
}

/// A store with `n` credit entries, shared by the proof benchmarks.
fn store_with(n: u64) -> &'static SledStore {
    static STORE: OnceLock<(tempfile::TempDir, SledStore)> = OnceLock::new();
    let (_, store) = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        let account = Uuid::from_u128(1);
        store
            .apply(
                &[Command::CreateAccount {
                    account_id: account,
                    name: None,
                    api_key_sha256: [0; 32],
                }],
                Timestamp::from_unix(0),
            )
            .expect("account");
        let commands: Vec<Command> = (0..n)
            .map(|i| Command::Credit {
                account_id: account,
                amount: 1,
                reference: format!("r{i}"),
                source: CreditSource::Operator,
            })
            .collect();
        for chunk in commands.chunks(256) {
            store.apply(chunk, Timestamp::from_unix(0)).expect("apply");
        }
        (dir, store)
    });
    store
}

#[divan::bench]
fn ledger_append_one_spend_entry(bencher: Bencher) {
    // One command per transaction, no sync: the store's share of a redeem's cost.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path()).expect("open");
    let account = Uuid::from_u128(1);
    store
        .apply(
            &[Command::CreateAccount {
                account_id: account,
                name: None,
                api_key_sha256: [0; 32],
            }],
            Timestamp::from_unix(0),
        )
        .expect("account");
    let ids: Vec<Uuid> = (0..100_000u128).map(|i| Uuid::from_u128(i + 1)).collect();
    store
        .apply(
            &[Command::Credit {
                account_id: account,
                amount: 1_000_000,
                reference: "r".into(),
                source: CreditSource::Operator,
            }],
            Timestamp::from_unix(0),
        )
        .expect("credit");
    for chunk in ids.chunks(1000) {
        store
            .apply(
                &[Command::Purchase {
                    account_id: account,
                    unit_price: 1,
                    idempotency_key_sha256: None,
                    purchase_id: Uuid::new_v4(),
                    kid: Kid([0; 8]),
                    issued_at: Timestamp::from_unix(0),
                    expires_at: Timestamp::from_unix(4_000_000_000),
                    stamp_ids: chunk.to_vec(),
                }],
                Timestamp::from_unix(0),
            )
            .expect("purchase");
    }
    let mut next = ids.into_iter();
    bencher.bench_local(|| {
        let id = next.next().unwrap_or_else(Uuid::new_v4);
        store.apply(
            &[Command::Spend {
                stamps: vec![StampRef {
                    stamp_id: id,
                    issued_at: Timestamp::from_unix(0),
                }],
                spend_for: SpendFor::Redeem {
                    context: "bench".into(),
                },
            }],
            Timestamp::from_unix(1),
        )
    });
}

#[divan::bench]
fn inclusion_proof_in_100k(bencher: Bencher) {
    let store = store_with(100_000);
    let size = store.ledger_size().expect("size");
    let reader = Hashes(store);
    let mut i = 0u64;
    bencher.bench_local(|| {
        i = (i + 7919) % size;
        tlog_tiles::prove_record(size, i, &reader)
    });
}

#[divan::bench]
fn consistency_proof_in_100k(bencher: Bencher) {
    let store = store_with(100_000);
    let size = store.ledger_size().expect("size");
    let reader = Hashes(store);
    let mut from = 1u64;
    bencher.bench_local(|| {
        from = (from + 7919) % (size - 1) + 1;
        tlog_tiles::prove_tree(size, from, &reader)
    });
}

struct Hashes(&'static SledStore);

impl tlog_tiles::HashReader for Hashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        self.0
            .hashes(indexes)
            .map(|v| v.into_iter().map(tlog_tiles::Hash).collect())
            .map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))
    }
}
