//! The basic operations of [`StoreTx`] over the batch's cache: a read the prefetch did not
//! make is one query, cached for the rest of the batch; a write is kept for the batch's one
//! round of writes.

use uuid::Uuid;

use super::super::{
    account_from_row, corrupt, db_error, hash_from_row, key_from_row, kid_of, post_from_row,
    stamp_from_row, to_i64, to_u64, ACCOUNT_COLUMNS, POST_COLUMNS, STAMP_BY_ID, STAMP_COLUMNS,
};
use super::{
    account_purchase_from_row, credit_from_row, purchase_from_row, push_new, PgTx,
    ACCOUNT_PURCHASE_COLUMNS, CREDIT_COLUMNS, PURCHASE_COLUMNS,
};
use crate::domain::{
    Account, CreditRecord, Hold, Policy, Post, PurchaseRecord, Sale, SoldStamp, SpentRecord,
    StampRef, Voter,
};
use crate::keys::{KeyStatus, PublishedKey};
use crate::stamp::Kid;
use crate::store::{StoreError, StoreTx};
use crate::time::Timestamp;

impl StoreTx for PgTx<'_> {
    fn ledger_size(&self) -> Result<u64, StoreError> {
        Ok(self.head.borrow().ledger_size)
    }

    fn last_time(&self) -> Result<Timestamp, StoreError> {
        Ok(Timestamp::from_unix(self.head.borrow().last_time))
    }

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        let missing: Vec<i64> = {
            let overlay = self.overlay.borrow();
            indexes
                .iter()
                .filter(|i| !overlay.hashes.contains_key(i))
                .map(|i| to_i64(*i))
                .collect()
        };
        if !missing.is_empty() {
            let rows = self.query(
                "SELECT idx, hash FROM hashes WHERE idx = ANY($1)",
                &[&missing],
            )?;
            let mut overlay = self.overlay.borrow_mut();
            for row in &rows {
                let (index, hash) = hash_from_row(row)?;
                overlay.hashes.insert(index, hash);
            }
        }
        let overlay = self.overlay.borrow();
        indexes
            .iter()
            .map(|i| {
                overlay
                    .hashes
                    .get(i)
                    .copied()
                    .ok_or_else(|| corrupt("hashes", format!("missing hash {i}")))
            })
            .collect()
    }

    fn append(
        &self,
        index: u64,
        time: Timestamp,
        entry: &[u8],
        hashes: &[[u8; 32]],
    ) -> Result<(), StoreError> {
        let mut head = self.head.borrow_mut();
        if index != head.ledger_size {
            return Err(corrupt(
                "entries",
                format!("append at {index}, size {}", head.ledger_size),
            ));
        }
        let mut overlay = self.overlay.borrow_mut();
        let first = tlog_tiles::stored_hash_index(0, index);
        for (at, hash) in (first..).zip(hashes) {
            overlay.hashes.insert(at, *hash);
            overlay.new_hashes.push((at, *hash));
        }
        overlay.new_entries.push((index, entry.to_vec()));
        head.ledger_size = index + 1;
        head.last_time = time.unix();
        head.changed = true;
        Ok(())
    }

    fn published_key(&self, kid: Kid) -> Result<Option<PublishedKey>, StoreError> {
        if let Some(key) = self.overlay.borrow().keys.get(&kid) {
            return Ok(key.clone());
        }
        let key = self
            .query(
                "SELECT kid, public_key, status, published_at FROM published_keys WHERE kid = $1",
                &[&&kid.0[..]],
            )?
            .first()
            .map(key_from_row)
            .transpose()?;
        self.overlay.borrow_mut().keys.insert(kid, key.clone());
        Ok(key)
    }

    fn put_published_key(&self, key: &PublishedKey) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        overlay.keys.insert(key.kid, Some(key.clone()));
        push_new(&mut overlay.dirty_keys, key.kid);
        Ok(())
    }

    fn active_keys(&self) -> Result<Vec<Kid>, StoreError> {
        // Rare (a key event at start-up): one query under the batch's lock, then this
        // transaction's own writes over it.
        let mut active = Vec::new();
        for row in self.query(
            "SELECT kid FROM published_keys WHERE status = 'active'",
            &[],
        )? {
            active.push(kid_of(row.get(0), "published_keys")?);
        }
        let overlay = self.overlay.borrow();
        for kid in &overlay.dirty_keys {
            active.retain(|k| k != kid);
            if let Some(Some(key)) = overlay.keys.get(kid) {
                if key.status == KeyStatus::Active {
                    active.push(*kid);
                }
            }
        }
        Ok(active)
    }

    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError> {
        if let Some(account) = self.overlay.borrow().accounts.get(&account_id) {
            return Ok(account.clone());
        }
        let account = self
            .query(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.account_id = $1"),
                &[&account_id],
            )?
            .first()
            .map(account_from_row)
            .transpose()?;
        self.overlay
            .borrow_mut()
            .accounts
            .insert(account_id, account.clone());
        Ok(account)
    }

    fn put_account(&self, account: &Account) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        overlay
            .accounts
            .insert(account.account_id, Some(account.clone()));
        push_new(&mut overlay.dirty_accounts, account.account_id);
        Ok(())
    }

    fn api_key_exists(&self, api_key_sha256: &[u8; 32]) -> Result<bool, StoreError> {
        if let Some(exists) = self.overlay.borrow().api_keys.get(api_key_sha256) {
            return Ok(*exists);
        }
        let exists = !self
            .query(
                "SELECT 1 FROM api_keys WHERE api_key_sha256 = $1",
                &[&&api_key_sha256[..]],
            )?
            .is_empty();
        self.overlay
            .borrow_mut()
            .api_keys
            .insert(*api_key_sha256, exists);
        Ok(exists)
    }

    fn put_api_key(&self, api_key_sha256: &[u8; 32], account_id: Uuid) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        overlay.api_keys.insert(*api_key_sha256, true);
        overlay.new_api_keys.push((*api_key_sha256, account_id));
        Ok(())
    }

    fn credit(&self, reference_sha256: &[u8; 32]) -> Result<Option<CreditRecord>, StoreError> {
        if let Some(credit) = self.overlay.borrow().credits.get(reference_sha256) {
            return Ok(credit.clone());
        }
        let credit = self
            .query(
                &format!("SELECT {CREDIT_COLUMNS} FROM credits WHERE reference_sha256 = $1"),
                &[&&reference_sha256[..]],
            )?
            .first()
            .map(|row| credit_from_row(row, 0))
            .transpose()?;
        self.overlay
            .borrow_mut()
            .credits
            .insert(*reference_sha256, credit.clone());
        Ok(credit)
    }

    fn put_credit(
        &self,
        reference_sha256: &[u8; 32],
        record: &CreditRecord,
    ) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        overlay
            .credits
            .insert(*reference_sha256, Some(record.clone()));
        overlay
            .new_credits
            .push((*reference_sha256, record.clone()));
        Ok(())
    }

    fn purchase(
        &self,
        account_id: Uuid,
        key_sha256: &[u8; 32],
    ) -> Result<Option<PurchaseRecord>, StoreError> {
        if let Some(record) = self
            .overlay
            .borrow()
            .purchases
            .get(&(account_id, *key_sha256))
        {
            return Ok(record.clone());
        }
        let record = self
            .query(
                &format!(
                    "SELECT {PURCHASE_COLUMNS} FROM purchases \
                     WHERE account_id = $1 AND key_sha256 = $2"
                ),
                &[&account_id, &&key_sha256[..]],
            )?
            .first()
            .map(|row| purchase_from_row(row, 0, account_id))
            .transpose()?;
        self.overlay
            .borrow_mut()
            .purchases
            .insert((account_id, *key_sha256), record.clone());
        Ok(record)
    }

    fn put_purchase(
        &self,
        key_sha256: &[u8; 32],
        record: &PurchaseRecord,
    ) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        overlay
            .purchases
            .insert((record.account_id, *key_sha256), Some(record.clone()));
        overlay.new_purchases.push((*key_sha256, record.clone()));
        Ok(())
    }

    fn account_purchases(
        &self,
        account_id: Uuid,
        since: Timestamp,
        limit: u64,
    ) -> Result<Vec<PurchaseRecord>, StoreError> {
        self.load_account_purchases(account_id, since.unix(), limit)?;
        let overlay = self.overlay.borrow();
        // This batch's purchases are the newest; the stored ones follow.
        let mut found: Vec<PurchaseRecord> = overlay
            .new_account_purchases
            .iter()
            .rev()
            .map(|p| &p.0)
            .filter(|p| p.account_id == account_id && p.expires_at > since)
            .cloned()
            .collect();
        if let Some(stored) = overlay.account_purchases.get(&account_id) {
            found.extend(
                stored
                    .purchases
                    .iter()
                    .filter(|p| p.expires_at > since)
                    .cloned(),
            );
        }
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }

    fn add_account_purchase(&self, record: &PurchaseRecord) -> Result<(), StoreError> {
        self.overlay
            .borrow_mut()
            .new_account_purchases
            .push(super::tables::IndexedPurchase(record.clone()));
        Ok(())
    }

    fn stamp_exists(&self, stamp_id: Uuid) -> Result<bool, StoreError> {
        Ok(self.stamp_by_id(stamp_id)?.is_some())
    }

    fn sold_stamp(&self, stamp: StampRef) -> Result<Option<SoldStamp>, StoreError> {
        // Found as its signed payload names it: the same id with another issue time is not a
        // stamp this server sold.
        Ok(self
            .stamp_by_id(stamp.stamp_id)?
            .filter(|sold| sold.sale.issued_at == stamp.issued_at))
    }

    fn insert_sold(&self, stamp_ids: &[Uuid], sale: &Sale) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        for id in stamp_ids {
            overlay.stamps.insert(
                *id,
                Some(SoldStamp {
                    sale: *sale,
                    spent: None,
                }),
            );
            overlay.new_stamps.push((*id, *sale));
        }
        Ok(())
    }

    fn mark_spent(
        &self,
        stamp: StampRef,
        sale: &Sale,
        spent: &SpentRecord,
    ) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        overlay.stamps.insert(
            stamp.stamp_id,
            Some(SoldStamp {
                sale: *sale,
                spent: Some(spent.clone()),
            }),
        );
        overlay.new_spends.push((stamp.stamp_id, spent.clone()));
        Ok(())
    }

    fn policy(&self) -> Result<Option<Policy>, StoreError> {
        Ok(self.head.borrow().policy.clone())
    }

    fn put_policy(&self, policy: &Policy) -> Result<(), StoreError> {
        let mut head = self.head.borrow_mut();
        head.policy = Some(policy.clone());
        head.changed = true;
        Ok(())
    }

    fn recent_posts(&self, payer: Uuid, since: Timestamp, limit: u64) -> Result<u64, StoreError> {
        self.load_payer_posts(payer, limit)?;
        let overlay = self.overlay.borrow();
        let times = overlay.payer_posts.get(&payer).map_or(&[][..], |t| &t[..]);
        let recent = times
            .iter()
            .take_while(|t| **t >= since.unix())
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .count();
        Ok(recent as u64)
    }

    fn add_recent_post(
        &self,
        payer: Uuid,
        time: Timestamp,
        post_id: Uuid,
    ) -> Result<(), StoreError> {
        // A payer not read yet gets this post in front when it is read.
        let mut overlay = self.overlay.borrow_mut();
        if let Some(times) = overlay.payer_posts.get_mut(&payer) {
            times.insert(0, time.unix());
        }
        overlay
            .new_payer_posts
            .push((payer, time.unix(), Some(post_id)));
        Ok(())
    }

    fn voter(&self, post_id: Uuid, payer: Uuid) -> Result<Voter, StoreError> {
        if let Some(voter) = self.overlay.borrow().voters.get(&(post_id, payer)) {
            return Ok(*voter);
        }
        let voter = match self
            .query(
                "SELECT votes, up_voted FROM voters WHERE post_id = $1 AND payer = $2",
                &[&post_id, &payer],
            )?
            .first()
        {
            Some(row) => Voter {
                votes: to_u64(row.get(0), "voters")?,
                up_voted: row.get(1),
            },
            None => Voter::default(),
        };
        self.overlay
            .borrow_mut()
            .voters
            .insert((post_id, payer), voter);
        Ok(voter)
    }

    fn put_voter(&self, post_id: Uuid, payer: Uuid, voter: &Voter) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        overlay.voters.insert((post_id, payer), *voter);
        push_new(&mut overlay.dirty_voters, (post_id, payer));
        Ok(())
    }

    fn account_by_name(&self, name_key: &str) -> Result<Option<Uuid>, StoreError> {
        if let Some(id) = self.overlay.borrow().names.get(name_key) {
            return Ok(*id);
        }
        let id = self
            .query(
                "SELECT account_id FROM names WHERE name_key = $1",
                &[&name_key],
            )?
            .first()
            .map(|row| row.get::<_, Uuid>(0));
        self.overlay
            .borrow_mut()
            .names
            .insert(name_key.to_string(), id);
        Ok(id)
    }

    fn put_name(&self, name_key: &str, account_id: Uuid) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        overlay.names.insert(name_key.to_string(), Some(account_id));
        overlay.new_names.push((name_key.to_string(), account_id));
        Ok(())
    }

    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError> {
        if let Some(post) = self.overlay.borrow().posts.get(&post_id) {
            return Ok(post.clone());
        }
        let post = self
            .query(
                &format!("SELECT {POST_COLUMNS} FROM posts WHERE post_id = $1"),
                &[&post_id],
            )?
            .first()
            .map(post_from_row)
            .transpose()?;
        self.overlay
            .borrow_mut()
            .posts
            .insert(post_id, post.clone());
        Ok(post)
    }

    fn next_post_seq(&self) -> Result<u64, StoreError> {
        Ok(self.head.borrow().post_seq)
    }

    fn insert_post(&self, post: &Post) -> Result<(), StoreError> {
        {
            let mut head = self.head.borrow_mut();
            head.post_seq = post.seq + 1;
            head.changed = true;
        }
        self.update_post(post)
    }

    fn update_post(&self, post: &Post) -> Result<(), StoreError> {
        self.head.borrow_mut().board_changed = true;
        let mut overlay = self.overlay.borrow_mut();
        overlay.posts.insert(post.post_id, Some(post.clone()));
        push_new(&mut overlay.dirty_posts, post.post_id);
        Ok(())
    }

    fn hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        self.hold_by_id(hold_id)
    }

    fn stamp_hold(&self, stamp_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        self.last_hold_of(stamp_id)
    }

    fn insert_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        self.write_new_hold(hold)
    }

    fn update_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        self.write_hold_state(hold)
    }
}

impl PgTx<'_> {
    /// A sold stamp by id alone, from the batch's cache or the database.
    fn stamp_by_id(&self, stamp_id: Uuid) -> Result<Option<SoldStamp>, StoreError> {
        if let Some(stamp) = self.overlay.borrow().stamps.get(&stamp_id) {
            return Ok(stamp.clone());
        }
        let stamp = self
            .query(STAMP_BY_ID, &[&stamp_id])?
            .first()
            .map(stamp_from_row)
            .transpose()?
            .map(|(_, sale, spent)| SoldStamp { sale, spent });
        self.overlay
            .borrow_mut()
            .stamps
            .insert(stamp_id, stamp.clone());
        Ok(stamp)
    }

    /// Reads an account's stored purchases expiring after `since`, newest first, at most
    /// `limit`, into the cache (unless what the cache holds answers that already), with their
    /// stamps in the same round trip: a revoke reads each of them next.
    pub(super) fn load_account_purchases(
        &self,
        account_id: Uuid,
        since: i64,
        limit: u64,
    ) -> Result<(), StoreError> {
        let cached = self
            .overlay
            .borrow()
            .account_purchases
            .get(&account_id)
            .is_some_and(|c| {
                // A read that found fewer than its limit holds every purchase expiring after
                // its `since`, so after any later one too; a cut-off one answers only itself.
                c.since <= since
                    && ((c.purchases.len() as u64) < c.limit
                        || (c.since == since && c.limit >= limit))
            });
        if cached {
            return Ok(());
        }
        let sqls = [
            format!(
                "SELECT {ACCOUNT_PURCHASE_COLUMNS} FROM account_purchases \
                 WHERE account_id = $1 AND expires_at > $2 ORDER BY ledger_index DESC LIMIT $3"
            ),
            format!(
                "SELECT {STAMP_COLUMNS} FROM stamps s LEFT JOIN spends p USING (stamp_id) \
                 WHERE s.stamp_id IN (SELECT unnest(stamp_ids) FROM (SELECT stamp_ids \
                 FROM account_purchases WHERE account_id = $1 AND expires_at > $2 \
                 ORDER BY ledger_index DESC LIMIT $3) q)"
            ),
        ];
        let statements = sqls
            .iter()
            .map(|sql| self.statement(sql))
            .collect::<Result<Vec<_>, _>>()?;
        let limit_sql = to_i64(limit);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&account_id, &since, &limit_sql];
        let (purchase_rows, stamp_rows) = self
            .store
            .block_for(self.writer, async {
                futures_util::try_join!(
                    self.client.query(&statements[0], &params),
                    self.client.query(&statements[1], &params)
                )
            })
            .map_err(|e| db_error(&e))?;
        let purchases = purchase_rows
            .iter()
            .map(account_purchase_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut overlay = self.overlay.borrow_mut();
        for row in &stamp_rows {
            let (id, sale, spent) = stamp_from_row(row)?;
            // What this batch wrote stays: it is newer than the stored row.
            overlay
                .stamps
                .entry(id)
                .or_insert(Some(SoldStamp { sale, spent }));
        }
        overlay.account_purchases.insert(
            account_id,
            super::StoredPurchases {
                since,
                limit,
                purchases,
            },
        );
        Ok(())
    }

    /// Reads a payer's newest `limit` stored post times into the cache, once per batch, with
    /// the posts this batch made before in front (newest first).
    fn load_payer_posts(&self, payer: Uuid, limit: u64) -> Result<(), StoreError> {
        if self.overlay.borrow().payer_posts.contains_key(&payer) {
            return Ok(());
        }
        let stored = self.query(
            "SELECT time FROM payer_posts WHERE payer = $1 ORDER BY time DESC LIMIT $2",
            &[&payer, &to_i64(limit)],
        )?;
        let mut overlay = self.overlay.borrow_mut();
        let mut times: Vec<i64> = overlay
            .new_payer_posts
            .iter()
            .rev()
            .filter(|(p, _, _)| *p == payer)
            .map(|(_, time, _)| *time)
            .collect();
        times.extend(stored.iter().map(|row| row.get::<_, i64>(0)));
        overlay.payer_posts.insert(payer, times);
        Ok(())
    }
}
