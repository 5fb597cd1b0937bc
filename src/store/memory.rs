//! An in-memory backend: the same rules over plain maps, nothing on disk.
//!
//! For what needs the real rules without a database: the conformance suite runs on it beside
//! sled (so the suite itself is known to be generic), and simulations can replay a community's
//! month in memory. "Durable" here means "applied": [`Store::sync`] does nothing, and the
//! state is gone with the process.
//!
//! A batch runs on a copy of the state that replaces it only when the whole batch succeeded,
//! so a storage failure part-way leaves nothing behind, as a database transaction would.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use uuid::Uuid;

use super::{
    Account, Applied, Command, CreditRecord, Post, PurchaseRecord, QuoteAction, Refusal, Sale,
    SoldStamp, SpentRecord, StampRecord, StampRef, Store, StoreError, StoreTx, Voter,
};
use crate::keys::PublishedKey;
use crate::rules::price::Policy;
use crate::rules::{self, Settings};
use crate::stamp::Kid;
use crate::time::Timestamp;

#[derive(Clone, Default)]
struct State {
    entries: Vec<Vec<u8>>,
    hashes: Vec<[u8; 32]>,
    last_time: Timestamp,
    keys: BTreeMap<Kid, PublishedKey>,
    accounts: HashMap<Uuid, Account>,
    api_keys: HashMap<[u8; 32], Uuid>,
    credits: HashMap<[u8; 32], CreditRecord>,
    purchases: HashMap<(Uuid, [u8; 32]), PurchaseRecord>,
    stamps: HashMap<Uuid, SoldStamp>,
    posts: HashMap<Uuid, Post>,
    /// Post ids by board position.
    board: Vec<Uuid>,
    policy: Option<Policy>,
    /// Each payer's post times, oldest first.
    payer_posts: HashMap<Uuid, Vec<Timestamp>>,
    voters: HashMap<(Uuid, Uuid), Voter>,
    names: HashMap<String, Uuid>,
    checkpoint: Option<(u64, String)>,
}

/// The in-memory store.
pub struct MemoryStore {
    state: Mutex<State>,
    settings: Settings,
}

impl MemoryStore {
    pub fn new(currency: &str) -> MemoryStore {
        MemoryStore {
            state: Mutex::new(State::default()),
            settings: Settings {
                currency: currency.to_string(),
            },
        }
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Storage("memory store lock poisoned".into()))
    }
}

fn hashes_at(hashes: &[[u8; 32]], indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
    indexes
        .iter()
        .map(|i| {
            usize::try_from(*i)
                .ok()
                .and_then(|i| hashes.get(i).copied())
                .ok_or_else(|| StoreError::Corrupt {
                    tree: "hashes",
                    detail: format!("missing hash {i}"),
                })
        })
        .collect()
}

/// A batch's working copy of the state.
struct MemoryTx(RefCell<State>);

impl StoreTx for MemoryTx {
    fn ledger_size(&self) -> Result<u64, StoreError> {
        Ok(self.0.borrow().entries.len() as u64)
    }

    fn last_time(&self) -> Result<Timestamp, StoreError> {
        Ok(self.0.borrow().last_time)
    }

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        hashes_at(&self.0.borrow().hashes, indexes)
    }

    fn append(
        &self,
        index: u64,
        time: Timestamp,
        entry: &[u8],
        hashes: &[[u8; 32]],
    ) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        if index != state.entries.len() as u64
            || tlog_tiles::stored_hash_index(0, index) != state.hashes.len() as u64
        {
            return Err(StoreError::Corrupt {
                tree: "ledger",
                detail: format!("append of entry {index} out of order"),
            });
        }
        state.entries.push(entry.to_vec());
        state.hashes.extend_from_slice(hashes);
        state.last_time = time;
        Ok(())
    }

    fn published_key(&self, kid: Kid) -> Result<Option<PublishedKey>, StoreError> {
        Ok(self.0.borrow().keys.get(&kid).cloned())
    }

    fn put_published_key(&self, key: &PublishedKey) -> Result<(), StoreError> {
        self.0.borrow_mut().keys.insert(key.kid, key.clone());
        Ok(())
    }

    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError> {
        Ok(self.0.borrow().accounts.get(&account_id).cloned())
    }

    fn put_account(&self, account: &Account) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        state.accounts.insert(account.account_id, account.clone());
        Ok(())
    }

    fn api_key_exists(&self, api_key_sha256: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.0.borrow().api_keys.contains_key(api_key_sha256))
    }

    fn put_api_key(&self, api_key_sha256: &[u8; 32], account_id: Uuid) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        state.api_keys.insert(*api_key_sha256, account_id);
        Ok(())
    }

    fn credit(&self, reference_sha256: &[u8; 32]) -> Result<Option<CreditRecord>, StoreError> {
        Ok(self.0.borrow().credits.get(reference_sha256).cloned())
    }

    fn put_credit(
        &self,
        reference_sha256: &[u8; 32],
        record: &CreditRecord,
    ) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        state.credits.insert(*reference_sha256, record.clone());
        Ok(())
    }

    fn purchase(
        &self,
        account_id: Uuid,
        key_sha256: &[u8; 32],
    ) -> Result<Option<PurchaseRecord>, StoreError> {
        let state = self.0.borrow();
        Ok(state.purchases.get(&(account_id, *key_sha256)).cloned())
    }

    fn put_purchase(
        &self,
        key_sha256: &[u8; 32],
        record: &PurchaseRecord,
    ) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        state
            .purchases
            .insert((record.account_id, *key_sha256), record.clone());
        Ok(())
    }

    fn stamp_exists(&self, stamp_id: Uuid) -> Result<bool, StoreError> {
        Ok(self.0.borrow().stamps.contains_key(&stamp_id))
    }

    fn sold_stamp(&self, stamp: StampRef) -> Result<Option<SoldStamp>, StoreError> {
        let state = self.0.borrow();
        Ok(state
            .stamps
            .get(&stamp.stamp_id)
            .filter(|s| s.sale.issued_at == stamp.issued_at)
            .cloned())
    }

    fn insert_sold(&self, stamp_ids: &[Uuid], sale: &Sale) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        for id in stamp_ids {
            let sold = SoldStamp {
                sale: *sale,
                spent: None,
            };
            state.stamps.insert(*id, sold);
        }
        Ok(())
    }

    fn mark_spent(
        &self,
        stamp: StampRef,
        _sale: &Sale,
        spent: &SpentRecord,
    ) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        let sold = state
            .stamps
            .get_mut(&stamp.stamp_id)
            .ok_or_else(|| StoreError::Corrupt {
                tree: "stamps",
                detail: format!("spend of unsold stamp {}", stamp.stamp_id),
            })?;
        sold.spent = Some(spent.clone());
        Ok(())
    }

    fn policy(&self) -> Result<Option<Policy>, StoreError> {
        Ok(self.0.borrow().policy.clone())
    }

    fn put_policy(&self, policy: &Policy) -> Result<(), StoreError> {
        self.0.borrow_mut().policy = Some(policy.clone());
        Ok(())
    }

    fn recent_posts(&self, payer: Uuid, since: Timestamp, limit: u64) -> Result<u64, StoreError> {
        let state = self.0.borrow();
        let times = state.payer_posts.get(&payer).map_or(&[][..], |t| &t[..]);
        let recent = times.iter().rev().take_while(|t| **t >= since).count() as u64;
        Ok(recent.min(limit))
    }

    fn add_recent_post(
        &self,
        payer: Uuid,
        time: Timestamp,
        _post_id: Uuid,
    ) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        state.payer_posts.entry(payer).or_default().push(time);
        Ok(())
    }

    fn voter(&self, post_id: Uuid, payer: Uuid) -> Result<Voter, StoreError> {
        let state = self.0.borrow();
        Ok(state
            .voters
            .get(&(post_id, payer))
            .copied()
            .unwrap_or_default())
    }

    fn put_voter(&self, post_id: Uuid, payer: Uuid, voter: &Voter) -> Result<(), StoreError> {
        self.0.borrow_mut().voters.insert((post_id, payer), *voter);
        Ok(())
    }

    fn account_by_name(&self, name_key: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self.0.borrow().names.get(name_key).copied())
    }

    fn put_name(&self, name_key: &str, account_id: Uuid) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        state.names.insert(name_key.to_string(), account_id);
        Ok(())
    }

    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError> {
        Ok(self.0.borrow().posts.get(&post_id).cloned())
    }

    fn next_post_seq(&self) -> Result<u64, StoreError> {
        Ok(self.0.borrow().board.len() as u64)
    }

    fn insert_post(&self, post: &Post) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        state.board.push(post.post_id);
        state.posts.insert(post.post_id, post.clone());
        Ok(())
    }

    fn update_post(&self, post: &Post) -> Result<(), StoreError> {
        let mut state = self.0.borrow_mut();
        state.posts.insert(post.post_id, post.clone());
        Ok(())
    }
}

impl Store for MemoryStore {
    fn apply(&self, batch: &[Command], now: Timestamp) -> Result<Vec<Applied>, StoreError> {
        let mut state = self.state()?;
        let tx = MemoryTx(RefCell::new(state.clone()));
        let results = rules::apply_batch(&tx, &self.settings, batch, now)?;
        *state = tx.0.into_inner();
        Ok(results)
    }

    fn quote(
        &self,
        payer: Uuid,
        action: QuoteAction,
        now: Timestamp,
    ) -> Result<Result<u64, Refusal>, StoreError> {
        let tx = MemoryTx(RefCell::new(self.state()?.clone()));
        rules::spend::quote(&tx, payer, action, now)
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn ledger_size(&self) -> Result<u64, StoreError> {
        Ok(self.state()?.entries.len() as u64)
    }

    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError> {
        Ok(self.state()?.accounts.get(&account_id).cloned())
    }

    fn account_by_api_key(&self, api_key_sha256: &[u8; 32]) -> Result<Option<Account>, StoreError> {
        let state = self.state()?;
        Ok(state
            .api_keys
            .get(api_key_sha256)
            .and_then(|id| state.accounts.get(id))
            .cloned())
    }

    fn stamp(&self, stamp_id: Uuid) -> Result<Option<StampRecord>, StoreError> {
        Ok(self.state()?.stamps.get(&stamp_id).map(|s| StampRecord {
            stamp_id,
            buyer: s.sale.buyer,
            kid: s.sale.kid,
            issued_at: s.sale.issued_at,
            expires_at: s.sale.expires_at,
            spent: s.spent.clone(),
        }))
    }

    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError> {
        Ok(self.state()?.posts.get(&post_id).cloned())
    }

    fn posts(&self, before: Option<Uuid>, limit: usize) -> Result<Option<Vec<Post>>, StoreError> {
        let state = self.state()?;
        let end = match before {
            Some(id) => match state.posts.get(&id) {
                Some(post) => usize::try_from(post.seq).unwrap_or(usize::MAX),
                None => return Ok(None),
            },
            None => state.board.len(),
        };
        Ok(Some(
            state.board[..end.min(state.board.len())]
                .iter()
                .rev()
                .take(limit)
                .filter_map(|id| state.posts.get(id).cloned())
                .collect(),
        ))
    }

    fn entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let state = self.state()?;
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(state
            .entries
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }

    fn hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        hashes_at(&self.state()?.hashes, indexes)
    }

    fn published_keys(&self) -> Result<Vec<PublishedKey>, StoreError> {
        Ok(self.state()?.keys.values().cloned().collect())
    }

    fn checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self.state()?.checkpoint.clone())
    }

    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.state()?.checkpoint = Some((size, note.to_string()));
        Ok(())
    }
}
