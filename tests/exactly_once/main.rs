//! Exactly once under contention: property tests of the store and the group
//! committer, through the library API (no HTTP). One test binary, modules below.
//!
//! - [`differential`], `sled_store_matches_memory_store`: random worlds of accounts, credits, purchases,
//!   policies, spends (redeem, post, vote; at the quoted price, a wrong count or mixed payers),
//!   debits (some past the balance: revokes, debts), and holds with their captures and
//!   releases, applied to a `SledStore` in random batch splits and, one
//!   command at a time, to a `MemoryStore`. Both run the one set of rules (`src/rules/`), so
//!   nothing here copies them: what is checked is that the sled adapter (its transaction, its
//!   write-back caches per batch, its layout) changes nothing the rules decided. After every
//!   batch: each result equals the memory store's, the ledgers are byte for byte the same, and
//!   so is everything observable (accounts, stamps, posts, holds, board, keys, hashes); and, said
//!   directly, no stamp is spent twice, or both revoked and spent, a refused spend spends
//!   nothing, a revoked stamp is never spent, held or captured afterwards (its hold's capture
//!   breaks), balances equal credits minus purchases plus refunds minus debits plus revokes
//!   (below zero only as a debt, during which every purchase is refused), replays answer as
//!   the first answer did, the ledger grows by exactly the ledger-writing commands,
//!   and every refund entry directly follows an up-vote of its post, no post refunded twice. At the end the
//!   sled store is reopened from disk and compared again, and the ledger auditor
//!   (`pennypost_audit`, which recomputes every revoke) runs on what was synced.
//! - [`race`], `committer_spends_each_stamp_once`: many tokio tasks spend overlapping sets of shared
//!   stamps and race purchases on one account through `Committer`; each stamp is spent at
//!   most once, exactly half the purchases are paid for, and the reopened store agrees.
//! - [`durable_reads`], `stamp_status_and_verify_show_a_spend_only_once_it_is_durable`: a store whose sync is
//!   held open shows that stamp reads through the service hide a spend until it is durable.
//!
//! What every backend must do, case by case, is the conformance suite (`tests/conformance/`);
//! the sled layout and its migrations are tested beside it (`src/store/sled_store/tests.rs`).

mod differential;
mod durable_reads;
#[allow(dead_code)]
#[path = "../conformance/observe.rs"]
mod observe;
mod race;
// The lock retry and the test issuer keys (tests/support/).
#[path = "../support/keys.rs"]
mod keys_files;
#[path = "../support/sled_lock.rs"]
mod sled_lock;

use std::collections::BTreeMap;
use std::fmt::Display;

use pennypost::domain::StampRef;
use pennypost::keys::KeyStatus;
use pennypost::ledger::check::AuditReport;
use pennypost::rules::{Applied, Command, Missing, Outcome, Refusal, SpendFor};
use pennypost::stamp::Kid;
use pennypost::store::{SledStore, Store};
use proptest::test_runner::TestCaseError;
use uuid::Uuid;

use observe::CURRENCY;

fn fail(e: impl Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// The issuer key every purchase names; published by a `KeyEvent` first so the auditor knows it.
fn issuer() -> (Kid, String) {
    keys_files::issuer(7)
}

fn key_event() -> Command {
    let (kid, public_key) = issuer();
    Command::KeyEvent {
        kid,
        public_key,
        status: KeyStatus::Active,
    }
}

/// Runs the ledger auditor over every stored entry (gapless indexes, times that never go
/// back, no violation) and checks the stored Merkle hashes give the same tree head.
fn audit(store: &dyn Store) -> Result<AuditReport, TestCaseError> {
    observe::audit(store).map_err(fail)
}

/// Opens the store again after the previous handle was dropped. sled's background I/O threads
/// may hold its file lock for a moment after the drop, so a lock error is retried.
fn reopen(dir: &std::path::Path) -> Result<SledStore, TestCaseError> {
    sled_lock::retry_while_locked(|| SledStore::open(dir)).map_err(fail)
}

/// What kinds of result the generated runs reached, so a generator that stops reaching one
/// fails the test instead of silently testing less.
type Coverage = BTreeMap<&'static str, u64>;

fn ids(stamps: &[StampRef]) -> Vec<Uuid> {
    stamps.iter().map(|s| s.stamp_id).collect()
}

fn result_kind(command: &Command, applied: &Applied) -> &'static str {
    match (command, applied) {
        (_, Err(Refusal::NotFound(Missing::Account))) => "refused: no account",
        (_, Err(Refusal::NotFound(_))) => "refused: no post",
        (_, Err(Refusal::InsufficientFunds { .. })) => "refused: insufficient funds",
        (_, Err(Refusal::AlreadySpent(_))) => "refused: already spent",
        (_, Err(Refusal::NotSold(_))) => "refused: not sold",
        (_, Err(Refusal::Expired(_))) => "refused: expired",
        (Command::Credit { .. }, Err(Refusal::IdempotencyConflict(_))) => "refused: credit ref",
        (Command::Debit { .. }, Err(Refusal::IdempotencyConflict(_))) => "refused: debit ref",
        (Command::Purchase { .. }, Err(Refusal::IdempotencyConflict(_))) => "refused: key reuse",
        (Command::Spend { .. }, Err(Refusal::IdempotencyConflict(_))) => "refused: post exists",
        (_, Err(Refusal::IdempotencyConflict(_))) => "refused: account exists",
        (_, Err(Refusal::DuplicateStamp(_))) => "refused: stamp sold before",
        (_, Err(Refusal::Overflow(_))) => "refused: overflow",
        (_, Err(Refusal::Invalid(_))) => "refused: invalid command",
        (_, Err(Refusal::WrongStampCount { .. })) => "refused: wrong stamp count",
        (_, Err(Refusal::MixedPayers)) => "refused: mixed payers",
        (_, Err(Refusal::NameTaken)) => "refused: name taken",
        (_, Err(Refusal::KeyNotActive(_))) => "refused: key not active",
        (_, Err(Refusal::AnotherKeyActive(_))) => "refused: another key active",
        (_, Err(Refusal::StampHeld(_))) => "refused: stamp held",
        (_, Err(Refusal::ReservedReference { .. })) => "refused: reserved reference",
        (_, Err(Refusal::RevokeTooLarge)) => "refused: revoke too large",
        (_, Err(Refusal::HoldExpired | Refusal::HoldCaptured | Refusal::HoldTtl)) => {
            "refused: hold"
        }
        (
            _,
            Ok(Outcome::Spent {
                refund_ledger_index: Some(_),
                ..
            }),
        ) => "ok: refund",
        (_, Ok(Outcome::Debited { replayed: true, .. })) => "ok: debit replayed",
        (_, Ok(Outcome::Debited { .. })) => "ok: debit",
        (_, Ok(Outcome::Held { .. })) => "ok: hold",
        (_, Ok(Outcome::Captured { replayed: true, .. })) => "ok: capture replayed",
        (_, Ok(Outcome::Captured { .. })) => "ok: capture",
        (_, Ok(Outcome::HoldBroken { .. })) => "ok: hold broken",
        (_, Ok(Outcome::Released)) => "ok: release",
        (_, Ok(Outcome::Policy { ledger_index: None })) => "ok: policy already in force",
        (_, Ok(Outcome::Policy { .. })) => "ok: policy written",
        (_, Ok(Outcome::Purchased { replayed: true, .. })) => "ok: purchase replayed",
        (_, Ok(Outcome::Purchased { .. })) => "ok: purchase",
        (Command::Spend { stamps, .. }, Ok(_)) if stamps.len() > 1 => "ok: multi-stamp spend",
        (Command::Spend { spend_for, .. }, Ok(_)) => match spend_for {
            SpendFor::Post { .. } => "ok: post",
            SpendFor::Vote { .. } => "ok: vote",
            SpendFor::Redeem { .. } => "ok: redeem",
        },
        (_, Ok(_)) => "ok: other",
    }
}

/// Cases per property: `default` in CI; PENNYPOST_PROPTEST_CASES for a longer search.
fn cases(default: u32) -> u32 {
    std::env::var("PENNYPOST_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
