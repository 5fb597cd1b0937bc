//! An in-memory backend: the same rules over plain maps, nothing on disk.
//!
//! For what needs the real rules without a database: the conformance suite runs on it beside
//! sled (so the suite itself is known to be generic), and simulations can replay a community's
//! month in memory. "Durable" here means "applied": [`Writes::sync`] does nothing, and the
//! state is gone with the process.
//!
//! A batch writes the state in place and journals what each write replaced; a storage failure
//! part-way puts it all back, so it leaves nothing behind, as a database transaction would. A
//! batch (and a quote, which reads only) costs in proportion to what it touches, not to the
//! whole state: a simulated month of thousands of batches and quotes stays fast.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;

use uuid::Uuid;

use super::{Cluster, ReadSet, Reads, StoreError, StoreTx, TxBody, Writes};
use crate::domain::{
    Account, CreditRecord, Hold, Policy, Post, PurchaseRecord, Sale, SoldStamp, SpentRecord,
    StampRecord, StampRef, Voter,
};
use crate::keys::PublishedKey;
use crate::stamp::Kid;
use crate::time::Timestamp;

#[derive(Default)]
struct State {
    entries: Vec<Vec<u8>>,
    hashes: Vec<[u8; 32]>,
    last_time: Timestamp,
    keys: BTreeMap<Kid, PublishedKey>,
    accounts: HashMap<Uuid, Account>,
    api_keys: HashMap<[u8; 32], Uuid>,
    credits: HashMap<[u8; 32], CreditRecord>,
    purchases: HashMap<(Uuid, [u8; 32]), PurchaseRecord>,
    /// Each account's purchases, oldest first.
    account_purchases: HashMap<Uuid, Vec<PurchaseRecord>>,
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
    holds: HashMap<Uuid, Hold>,
    /// The last hold placed on each stamp.
    stamp_holds: HashMap<Uuid, Uuid>,
    /// Unit tests: the append of this entry index fails as storage would.
    #[cfg(test)]
    fail_append_at: Option<u64>,
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// The payments (`super::payments`), apart from the ledger's state: they take no part in
    /// its batches.
    pub(super) payments: Mutex<super::payments::MemoryPayments>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
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

/// What one write replaced, to put back if the batch fails.
enum Undo {
    Append {
        entries: usize,
        hashes: usize,
        last_time: Timestamp,
    },
    Key(Kid, Option<PublishedKey>),
    Account(Uuid, Option<Account>),
    ApiKey([u8; 32], Option<Uuid>),
    Credit([u8; 32], Option<CreditRecord>),
    Purchase((Uuid, [u8; 32]), Option<PurchaseRecord>),
    /// A purchase pushed onto this account's list.
    AccountPurchase(Uuid),
    Stamp(Uuid, Option<SoldStamp>),
    Policy(Option<Policy>),
    /// A post time pushed onto this payer's list.
    RecentPost(Uuid),
    Voter((Uuid, Uuid), Option<Voter>),
    Name(String, Option<Uuid>),
    /// A post pushed onto the board.
    NewPost(Uuid, Option<Post>),
    Post(Uuid, Option<Post>),
    Hold(Uuid, Option<Hold>),
    StampHold(Uuid, Option<Uuid>),
}

/// Puts `previous` back under `key` (removing the key when there was nothing).
fn restore<K: Eq + Hash, V>(map: &mut HashMap<K, V>, key: K, previous: Option<V>) {
    match previous {
        Some(value) => {
            map.insert(key, value);
        }
        None => {
            map.remove(&key);
        }
    }
}

/// A batch's view of the state: writes go straight to it, each journalled in `undo`.
struct MemoryTx<'a> {
    state: RefCell<&'a mut State>,
    undo: RefCell<Vec<Undo>>,
}

impl<'a> MemoryTx<'a> {
    fn new(state: &'a mut State) -> MemoryTx<'a> {
        MemoryTx {
            state: RefCell::new(state),
            undo: RefCell::new(Vec::new()),
        }
    }

    fn journal(&self, undo: Undo) {
        self.undo.borrow_mut().push(undo);
    }

    /// Undoes every write of the transaction, newest first.
    fn roll_back(self) {
        let state = self.state.into_inner();
        for undo in self.undo.into_inner().into_iter().rev() {
            match undo {
                Undo::Append {
                    entries,
                    hashes,
                    last_time,
                } => {
                    state.entries.truncate(entries);
                    state.hashes.truncate(hashes);
                    state.last_time = last_time;
                }
                Undo::Key(kid, previous) => match previous {
                    Some(key) => {
                        state.keys.insert(kid, key);
                    }
                    None => {
                        state.keys.remove(&kid);
                    }
                },
                Undo::Account(id, previous) => restore(&mut state.accounts, id, previous),
                Undo::ApiKey(key, previous) => restore(&mut state.api_keys, key, previous),
                Undo::Credit(key, previous) => restore(&mut state.credits, key, previous),
                Undo::Purchase(key, previous) => restore(&mut state.purchases, key, previous),
                Undo::AccountPurchase(account) => {
                    let now_empty =
                        state
                            .account_purchases
                            .get_mut(&account)
                            .is_some_and(|purchases| {
                                purchases.pop();
                                purchases.is_empty()
                            });
                    if now_empty {
                        state.account_purchases.remove(&account);
                    }
                }
                Undo::Stamp(id, previous) => restore(&mut state.stamps, id, previous),
                Undo::Policy(previous) => state.policy = previous,
                Undo::RecentPost(payer) => {
                    let now_empty = state.payer_posts.get_mut(&payer).is_some_and(|times| {
                        times.pop();
                        times.is_empty()
                    });
                    if now_empty {
                        state.payer_posts.remove(&payer);
                    }
                }
                Undo::Voter(key, previous) => restore(&mut state.voters, key, previous),
                Undo::Name(key, previous) => restore(&mut state.names, key, previous),
                Undo::NewPost(id, previous) => {
                    state.board.pop();
                    restore(&mut state.posts, id, previous);
                }
                Undo::Post(id, previous) => restore(&mut state.posts, id, previous),
                Undo::Hold(id, previous) => restore(&mut state.holds, id, previous),
                Undo::StampHold(id, previous) => restore(&mut state.stamp_holds, id, previous),
            }
        }
    }
}

impl StoreTx for MemoryTx<'_> {
    fn ledger_size(&self) -> Result<u64, StoreError> {
        Ok(self.state.borrow().entries.len() as u64)
    }

    fn last_time(&self) -> Result<Timestamp, StoreError> {
        Ok(self.state.borrow().last_time)
    }

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        hashes_at(&self.state.borrow().hashes, indexes)
    }

    fn append(
        &self,
        index: u64,
        time: Timestamp,
        entry: &[u8],
        hashes: &[[u8; 32]],
    ) -> Result<(), StoreError> {
        let mut state = self.state.borrow_mut();
        #[cfg(test)]
        if state.fail_append_at == Some(index) {
            return Err(StoreError::Storage(format!(
                "append of entry {index} failed"
            )));
        }
        if index != state.entries.len() as u64
            || tlog_tiles::stored_hash_index(0, index) != state.hashes.len() as u64
        {
            return Err(StoreError::Corrupt {
                tree: "ledger",
                detail: format!("append of entry {index} out of order"),
            });
        }
        self.journal(Undo::Append {
            entries: state.entries.len(),
            hashes: state.hashes.len(),
            last_time: state.last_time,
        });
        state.entries.push(entry.to_vec());
        state.hashes.extend_from_slice(hashes);
        state.last_time = time;
        Ok(())
    }

    fn published_key(&self, kid: Kid) -> Result<Option<PublishedKey>, StoreError> {
        Ok(self.state.borrow().keys.get(&kid).cloned())
    }

    fn put_published_key(&self, key: &PublishedKey) -> Result<(), StoreError> {
        let previous = self.state.borrow_mut().keys.insert(key.kid, key.clone());
        self.journal(Undo::Key(key.kid, previous));
        Ok(())
    }

    fn active_keys(&self) -> Result<Vec<Kid>, StoreError> {
        Ok(self
            .state
            .borrow()
            .keys
            .values()
            .filter(|k| k.status == crate::keys::KeyStatus::Active)
            .map(|k| k.kid)
            .collect())
    }

    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError> {
        Ok(self.state.borrow().accounts.get(&account_id).cloned())
    }

    fn put_account(&self, account: &Account) -> Result<(), StoreError> {
        let mut state = self.state.borrow_mut();
        let previous = state.accounts.insert(account.account_id, account.clone());
        self.journal(Undo::Account(account.account_id, previous));
        Ok(())
    }

    fn api_key_exists(&self, api_key_sha256: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.state.borrow().api_keys.contains_key(api_key_sha256))
    }

    fn put_api_key(&self, api_key_sha256: &[u8; 32], account_id: Uuid) -> Result<(), StoreError> {
        let previous = self
            .state
            .borrow_mut()
            .api_keys
            .insert(*api_key_sha256, account_id);
        self.journal(Undo::ApiKey(*api_key_sha256, previous));
        Ok(())
    }

    fn credit(&self, reference_sha256: &[u8; 32]) -> Result<Option<CreditRecord>, StoreError> {
        Ok(self.state.borrow().credits.get(reference_sha256).cloned())
    }

    fn put_credit(
        &self,
        reference_sha256: &[u8; 32],
        record: &CreditRecord,
    ) -> Result<(), StoreError> {
        let previous = self
            .state
            .borrow_mut()
            .credits
            .insert(*reference_sha256, record.clone());
        self.journal(Undo::Credit(*reference_sha256, previous));
        Ok(())
    }

    fn purchase(
        &self,
        account_id: Uuid,
        key_sha256: &[u8; 32],
    ) -> Result<Option<PurchaseRecord>, StoreError> {
        let state = self.state.borrow();
        Ok(state.purchases.get(&(account_id, *key_sha256)).cloned())
    }

    fn put_purchase(
        &self,
        key_sha256: &[u8; 32],
        record: &PurchaseRecord,
    ) -> Result<(), StoreError> {
        let key = (record.account_id, *key_sha256);
        let previous = self
            .state
            .borrow_mut()
            .purchases
            .insert(key, record.clone());
        self.journal(Undo::Purchase(key, previous));
        Ok(())
    }

    fn account_purchases(
        &self,
        account_id: Uuid,
        since: Timestamp,
        limit: u64,
    ) -> Result<Vec<PurchaseRecord>, StoreError> {
        let state = self.state.borrow();
        Ok(state
            .account_purchases
            .get(&account_id)
            .map(|purchases| {
                purchases
                    .iter()
                    .rev()
                    .filter(|p| p.expires_at > since)
                    .take(usize::try_from(limit).unwrap_or(usize::MAX))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn add_account_purchase(&self, record: &PurchaseRecord) -> Result<(), StoreError> {
        self.state
            .borrow_mut()
            .account_purchases
            .entry(record.account_id)
            .or_default()
            .push(record.clone());
        self.journal(Undo::AccountPurchase(record.account_id));
        Ok(())
    }

    fn stamp_exists(&self, stamp_id: Uuid) -> Result<bool, StoreError> {
        Ok(self.state.borrow().stamps.contains_key(&stamp_id))
    }

    fn sold_stamp(&self, stamp: StampRef) -> Result<Option<SoldStamp>, StoreError> {
        let state = self.state.borrow();
        Ok(state
            .stamps
            .get(&stamp.stamp_id)
            .filter(|s| s.sale.issued_at == stamp.issued_at)
            .cloned())
    }

    fn insert_sold(&self, stamp_ids: &[Uuid], sale: &Sale) -> Result<(), StoreError> {
        let mut state = self.state.borrow_mut();
        for id in stamp_ids {
            let sold = SoldStamp {
                sale: *sale,
                spent: None,
            };
            let previous = state.stamps.insert(*id, sold);
            self.journal(Undo::Stamp(*id, previous));
        }
        Ok(())
    }

    fn mark_spent(
        &self,
        stamp: StampRef,
        _sale: &Sale,
        spent: &SpentRecord,
    ) -> Result<(), StoreError> {
        let mut state = self.state.borrow_mut();
        let sold = state
            .stamps
            .get_mut(&stamp.stamp_id)
            .ok_or_else(|| StoreError::Corrupt {
                tree: "stamps",
                detail: format!("spend of unsold stamp {}", stamp.stamp_id),
            })?;
        let previous = sold.spent.replace(spent.clone());
        self.journal(Undo::Stamp(
            stamp.stamp_id,
            Some(SoldStamp {
                sale: sold.sale,
                spent: previous,
            }),
        ));
        Ok(())
    }

    fn policy(&self) -> Result<Option<Policy>, StoreError> {
        Ok(self.state.borrow().policy.clone())
    }

    fn put_policy(&self, policy: &Policy) -> Result<(), StoreError> {
        let previous = self.state.borrow_mut().policy.replace(policy.clone());
        self.journal(Undo::Policy(previous));
        Ok(())
    }

    fn recent_posts(&self, payer: Uuid, since: Timestamp, limit: u64) -> Result<u64, StoreError> {
        let state = self.state.borrow();
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
        let mut state = self.state.borrow_mut();
        state.payer_posts.entry(payer).or_default().push(time);
        self.journal(Undo::RecentPost(payer));
        Ok(())
    }

    fn voter(&self, post_id: Uuid, payer: Uuid) -> Result<Voter, StoreError> {
        let state = self.state.borrow();
        Ok(state
            .voters
            .get(&(post_id, payer))
            .copied()
            .unwrap_or_default())
    }

    fn put_voter(&self, post_id: Uuid, payer: Uuid, voter: &Voter) -> Result<(), StoreError> {
        let key = (post_id, payer);
        let previous = self.state.borrow_mut().voters.insert(key, *voter);
        self.journal(Undo::Voter(key, previous));
        Ok(())
    }

    fn account_by_name(&self, name_key: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self.state.borrow().names.get(name_key).copied())
    }

    fn put_name(&self, name_key: &str, account_id: Uuid) -> Result<(), StoreError> {
        let previous = self
            .state
            .borrow_mut()
            .names
            .insert(name_key.to_string(), account_id);
        self.journal(Undo::Name(name_key.to_string(), previous));
        Ok(())
    }

    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError> {
        Ok(self.state.borrow().posts.get(&post_id).cloned())
    }

    fn next_post_seq(&self) -> Result<u64, StoreError> {
        Ok(self.state.borrow().board.len() as u64)
    }

    fn insert_post(&self, post: &Post) -> Result<(), StoreError> {
        let mut state = self.state.borrow_mut();
        state.board.push(post.post_id);
        let previous = state.posts.insert(post.post_id, post.clone());
        self.journal(Undo::NewPost(post.post_id, previous));
        Ok(())
    }

    fn update_post(&self, post: &Post) -> Result<(), StoreError> {
        let previous = self
            .state
            .borrow_mut()
            .posts
            .insert(post.post_id, post.clone());
        self.journal(Undo::Post(post.post_id, previous));
        Ok(())
    }

    fn hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        Ok(self.state.borrow().holds.get(&hold_id).cloned())
    }

    fn stamp_hold(&self, stamp_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        Ok(self.state.borrow().stamp_holds.get(&stamp_id).copied())
    }

    fn insert_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        let mut state = self.state.borrow_mut();
        for stamp in &hold.stamps {
            let previous = state.stamp_holds.insert(stamp.stamp_id, hold.hold_id);
            self.journal(Undo::StampHold(stamp.stamp_id, previous));
        }
        let previous = state.holds.insert(hold.hold_id, hold.clone());
        self.journal(Undo::Hold(hold.hold_id, previous));
        Ok(())
    }

    fn update_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        let previous = self
            .state
            .borrow_mut()
            .holds
            .insert(hold.hold_id, hold.clone());
        self.journal(Undo::Hold(hold.hold_id, previous));
        Ok(())
    }
}

impl Writes for MemoryStore {
    fn write(&self, _reads: &ReadSet, body: &mut TxBody<'_>) -> Result<(), StoreError> {
        let mut state = self.state()?;
        let tx = MemoryTx::new(&mut state);
        let written = body(&tx);
        if written.is_err() {
            tx.roll_back();
        }
        written
    }

    fn read(&self, body: &mut TxBody<'_>) -> Result<(), StoreError> {
        let mut state = self.state()?;
        let tx = MemoryTx::new(&mut state);
        let read = body(&tx);
        // A read writes nothing; rolling back keeps it so even if a rule ever wrote.
        tx.roll_back();
        read
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn synced_size(&self) -> Result<u64, StoreError> {
        self.ledger_size()
    }

    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.state()?.checkpoint = Some((size, note.to_string()));
        Ok(())
    }
}

impl Cluster for MemoryStore {}

impl Reads for MemoryStore {
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

    fn hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        Ok(self.state()?.holds.get(&hold_id).cloned())
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CreditSource;
    use crate::rules::{self, Command, Settings};

    fn apply(
        store: &MemoryStore,
        batch: &[Command],
        now: Timestamp,
    ) -> Result<Vec<rules::Applied>, StoreError> {
        let settings = Settings {
            currency: "cents".into(),
        };
        rules::apply(store, &settings, batch, now)
    }

    /// Publishes issuer key `seed` active: a purchase needs its key active.
    fn key_event(seed: u8) -> (Kid, Command) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key();
        let kid = Kid::of(&key);
        let command = Command::KeyEvent {
            kid,
            public_key: crate::keys::public_key_text(&key),
            status: crate::keys::KeyStatus::Active,
        };
        (kid, command)
    }

    fn purchase(account_id: Uuid, n: u128, count: u128, at: Timestamp) -> Command {
        Command::Purchase {
            account_id,
            unit_price: 1,
            idempotency_key_sha256: None,
            purchase_id: Uuid::from_u128(n),
            kid: key_event(7).0,
            issued_at: at,
            expires_at: at.plus_secs(3600),
            stamp_ids: (0..count).map(|i| Uuid::from_u128(n << 32 | i)).collect(),
        }
    }

    #[test]
    fn a_storage_failure_part_way_leaves_nothing_behind() {
        let store = MemoryStore::new();
        let t = Timestamp::from_unix(1_700_000_000);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let open = [
            key_event(7).1,
            Command::CreateAccount {
                account_id: a,
                name: Some("a".into()),
                api_key_sha256: [1; 32],
            },
            Command::Credit {
                account_id: a,
                amount: 10_000,
                reference: "first".into(),
                source: CreditSource::Operator,
            },
        ];
        assert!(apply(&store, &open, t)
            .expect("apply")
            .iter()
            .all(Result::is_ok));
        let size = store.ledger_size().expect("size");
        // The fourth command's entry fails to append (a storage error), after an account, a
        // credit and a purchase earlier in the batch were written.
        store.state().expect("state").fail_append_at = Some(size + 2);
        let batch = [
            Command::CreateAccount {
                account_id: b,
                name: Some("b".into()),
                api_key_sha256: [2; 32],
            },
            Command::Credit {
                account_id: a,
                amount: 5,
                reference: "second".into(),
                source: CreditSource::Operator,
            },
            purchase(a, 10, 3, t),
            Command::Credit {
                account_id: a,
                amount: 7,
                reference: "fourth".into(),
                source: CreditSource::Operator,
            },
        ];
        assert!(apply(&store, &batch, t.plus_secs(5)).is_err());
        store.state().expect("state").fail_append_at = None;
        assert_eq!(store.ledger_size().expect("size"), size);
        let account = store.account(a).expect("read").expect("exists");
        assert_eq!((account.balance, account.stamps_purchased), (10_000, 0));
        assert_eq!(store.account(b).expect("read"), None);
        assert_eq!(store.stamp(Uuid::from_u128(10 << 32)).expect("read"), None);
        // The last entry's time went back too: an entry at t + 1 is written at t + 1.
        let credit = Command::Credit {
            account_id: a,
            amount: 1,
            reference: "third".into(),
            source: CreditSource::Operator,
        };
        assert!(apply(&store, &[credit], t.plus_secs(1)).expect("apply")[0].is_ok());
        let entry = store.entries(size, 1).expect("entries");
        let entry: serde_json::Value = serde_json::from_slice(&entry[0]).expect("JSON");
        assert_eq!(entry["time"], t.plus_secs(1).to_rfc3339());
        // The name, the reference and the stamp ids the failed batch used are free again.
        let results = apply(&store, &batch[..3], t.plus_secs(5)).expect("apply");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
}
