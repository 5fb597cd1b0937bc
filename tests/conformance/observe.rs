//! What a test can observe of a store through [`Store`]'s reads, and the ledger audit.
//!
//! Shared by the conformance suite and the differential properties of `tests/exactly_once/`
//! (which includes this file by path), so both compare stores the same way. Uses only the
//! public reads: a backend is judged by what its users can see.

use std::collections::{BTreeMap, BTreeSet};

use pennypost::domain::{Account, Hold, Post, StampRecord};
use pennypost::keys::PublishedKey;
use pennypost::ledger::check::{AuditReport, LedgerChecker};
use pennypost::rules::{self, Applied, Command, QuoteAction, Refusal, Settings, SpendFor};
use pennypost::store::{Store, StoreError, Writes};
use pennypost::time::Timestamp;
use uuid::Uuid;

/// The currency the tests' credit entries name.
pub const CURRENCY: &str = "cents";

/// The rules over a store, as the group committer applies them: a batch in one transaction
/// the rules open, and a quote in one that only reads.
pub trait Apply {
    fn apply(&self, batch: &[Command], now: Timestamp) -> Result<Vec<Applied>, StoreError>;
    fn quote(
        &self,
        payer: Uuid,
        action: QuoteAction,
        now: Timestamp,
    ) -> Result<Result<u64, Refusal>, StoreError>;
}

impl<W: Writes + ?Sized> Apply for W {
    fn apply(&self, batch: &[Command], now: Timestamp) -> Result<Vec<Applied>, StoreError> {
        let settings = Settings {
            currency: CURRENCY.into(),
        };
        rules::apply(self, &settings, batch, now)
    }

    fn quote(
        &self,
        payer: Uuid,
        action: QuoteAction,
        now: Timestamp,
    ) -> Result<Result<u64, Refusal>, StoreError> {
        rules::quote(self, payer, action, now)
    }
}

/// Most posts a board snapshot reads; the tests write far fewer.
pub const BOARD_MAX: usize = 1000;

/// The ids the commands of a test named: a snapshot reads each of them.
#[derive(Clone, Debug, Default)]
pub struct Ids {
    pub accounts: BTreeSet<Uuid>,
    pub api_keys: BTreeSet<[u8; 32]>,
    pub stamps: BTreeSet<Uuid>,
    pub posts: BTreeSet<Uuid>,
    pub holds: BTreeSet<Uuid>,
}

impl Ids {
    /// Adds every id `command` names, whether or not the store accepts it.
    pub fn note(&mut self, command: &Command) {
        match command {
            Command::KeyEvent { .. } | Command::Policy { .. } => {}
            Command::CreateAccount {
                account_id,
                api_key_sha256,
                ..
            } => {
                self.accounts.insert(*account_id);
                self.api_keys.insert(*api_key_sha256);
            }
            Command::Credit { account_id, .. } | Command::Debit { account_id, .. } => {
                self.accounts.insert(*account_id);
            }
            Command::Purchase {
                account_id,
                stamp_ids,
                ..
            } => {
                self.accounts.insert(*account_id);
                self.stamps.extend(stamp_ids.iter().copied());
            }
            Command::Spend { stamps, spend_for } => {
                self.stamps.extend(stamps.iter().map(|s| s.stamp_id));
                match spend_for {
                    SpendFor::Post { post_id, .. } | SpendFor::Vote { post_id, .. } => {
                        self.posts.insert(*post_id);
                    }
                    SpendFor::Redeem { .. } => {}
                }
            }
            Command::Hold {
                hold_id, stamps, ..
            } => {
                self.holds.insert(*hold_id);
                self.stamps.extend(stamps.iter().map(|s| s.stamp_id));
            }
            Command::Capture { hold_id } | Command::Release { hold_id } => {
                self.holds.insert(*hold_id);
            }
        }
    }
}

/// Everything observable about the ids a test named, and about the whole ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub ledger_size: u64,
    /// Every entry, as text (entries are JSON) so that a failing comparison is readable.
    pub entries: Vec<String>,
    /// Every stored Merkle hash.
    pub hashes: Vec<[u8; 32]>,
    pub accounts: BTreeMap<Uuid, Option<Account>>,
    pub api_keys: BTreeMap<[u8; 32], Option<Account>>,
    pub stamps: BTreeMap<Uuid, Option<StampRecord>>,
    pub posts: BTreeMap<Uuid, Option<Post>>,
    pub holds: BTreeMap<Uuid, Option<Hold>>,
    /// The board, newest first.
    pub board: Vec<Post>,
    /// Sorted by kid: the trait does not fix an order.
    pub published_keys: Vec<PublishedKey>,
    pub checkpoint: Option<(u64, String)>,
}

/// Reads a [`Snapshot`] of `store` for `ids`.
pub fn snapshot(store: &dyn Store, ids: &Ids) -> Result<Snapshot, StoreError> {
    let ledger_size = store.ledger_size()?;
    let entries = store
        .entries(0, ledger_size)?
        .iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    let stored: Vec<u64> = (0..tlog_tiles::stored_hash_count(ledger_size)).collect();
    let mut published_keys = store.published_keys()?;
    published_keys.sort_by_key(|k| k.kid.0);
    Ok(Snapshot {
        ledger_size,
        entries,
        hashes: store.hashes(&stored)?,
        accounts: read_each(&ids.accounts, |id| store.account(*id))?,
        api_keys: read_each(&ids.api_keys, |key| store.account_by_api_key(key))?,
        stamps: read_each(&ids.stamps, |id| store.stamp(*id))?,
        posts: read_each(&ids.posts, |id| store.post(*id))?,
        holds: read_each(&ids.holds, |id| store.hold(*id))?,
        board: store.posts(None, BOARD_MAX)?.unwrap_or_default(),
        published_keys,
        checkpoint: store.checkpoint()?,
    })
}

fn read_each<K: Ord + Clone, V>(
    keys: &BTreeSet<K>,
    read: impl Fn(&K) -> Result<V, StoreError>,
) -> Result<BTreeMap<K, V>, StoreError> {
    keys.iter().map(|k| Ok((k.clone(), read(k)?))).collect()
}

/// Audits the whole ledger of `store`: entries `0..size` are all there and parse, their
/// `index` counts up from 0 and their `time` never goes backwards, the ledger checker finds
/// no violation, and the Merkle root of the stored hashes equals the checker's root.
pub fn audit(store: &dyn Store) -> Result<AuditReport, String> {
    let size = store.ledger_size().map_err(|e| e.to_string())?;
    let entries = store.entries(0, size).map_err(|e| e.to_string())?;
    if entries.len() as u64 != size {
        return Err(format!("{} entries stored of {size}", entries.len()));
    }
    let past_the_end = store.entries(size, 8).map_err(|e| e.to_string())?;
    if !past_the_end.is_empty() {
        return Err(format!(
            "{} entries past the size {size}",
            past_the_end.len()
        ));
    }
    let mut checker = LedgerChecker::new();
    let mut last_time = Timestamp::from_unix(i64::MIN);
    for (index, entry) in (0u64..).zip(&entries) {
        let value: serde_json::Value = serde_json::from_slice(entry)
            .map_err(|e| format!("entry {index} does not parse: {e}"))?;
        if value["index"].as_u64() != Some(index) {
            return Err(format!("entry {index} says index {}", value["index"]));
        }
        let time = value["time"]
            .as_str()
            .and_then(Timestamp::parse_rfc3339)
            .ok_or_else(|| format!("entry {index} has no time"))?;
        if time < last_time {
            return Err(format!("entry {index}: time went back to {time:?}"));
        }
        last_time = time;
        checker.push(entry);
    }
    let stored_root =
        tlog_tiles::tree_hash(size, &StoreHashes(store)).map_err(|e| e.to_string())?;
    if stored_root.0 != checker.root().0 {
        return Err("the stored Merkle hashes give another root than the entries".into());
    }
    let report = checker.report(Timestamp::now().unix());
    if !report.ok {
        return Err(format!("ledger violations: {:?}", report.violations));
    }
    if report.ledger_size != size {
        return Err(format!(
            "the checker counted {} entries",
            report.ledger_size
        ));
    }
    Ok(report)
}

/// The store's stored hashes as a `tlog_tiles::HashReader`.
struct StoreHashes<'a>(&'a dyn Store);

impl tlog_tiles::HashReader for StoreHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        self.0
            .hashes(indexes)
            .map(|hashes| hashes.into_iter().map(tlog_tiles::Hash).collect())
            .map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))
    }
}
