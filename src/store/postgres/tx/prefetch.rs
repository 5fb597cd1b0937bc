//! The batch's reads fetched up front, as the rules said ([`ReadSet`]).

use uuid::Uuid;

use super::super::{
    account_from_row, corrupt, db_error, hash_from_row, key_from_row, post_from_row,
    stamp_from_row, to_i64, to_u64, ACCOUNT_COLUMNS, POST_COLUMNS, STAMP_COLUMNS,
};
use super::holds::{hold_from_row, HOLD_COLUMNS};
use super::{
    account_purchase_from_row, credit_from_row, purchase_from_row, query_if, sha256_of, Param,
    PgTx, ACCOUNT_PURCHASE_COLUMNS, CREDIT_COLUMNS, PURCHASE_COLUMNS,
};
use crate::domain::{SoldStamp, StampRef, Voter};
use crate::store::{ReadSet, StoreError};

impl PgTx<'_> {
    /// Reads up front what the rules said the batch reads ([`ReadSet`]), in one pipelined
    /// round: what the commands name, the stamps' buyers, the voter records and recent post
    /// times of the buyers of the stamps named for them (joined through `stamps` in the same
    /// statement, so no second round), and the hashes of the ledger's right edge. What was
    /// asked for and not found is cached as absent.
    pub(in crate::store::postgres) fn prefetch(&self, reads: &ReadSet) -> Result<(), StoreError> {
        if reads.is_empty() {
            return Ok(());
        }
        let mut stamp_ids: Vec<Uuid> = reads.new_stamps.clone();
        stamp_ids.extend(reads.stamps.iter().map(|s| s.stamp_id));
        // The buyers of the stamps spent (a purchase's stamps are new: their buyer is the
        // purchase's account, already asked for).
        let spent_ids: Vec<Uuid> = reads.stamps.iter().map(|s| s.stamp_id).collect();
        let kids: Vec<&[u8]> = reads.kids.iter().map(|k| &k.0[..]).collect();
        let api_keys: Vec<&[u8]> = reads.api_keys.iter().map(|k| &k[..]).collect();
        let names: Vec<&str> = reads.names.iter().map(String::as_str).collect();
        let credits: Vec<&[u8]> = reads.credits.iter().map(|k| &k[..]).collect();
        let purchase_accounts: Vec<Uuid> = reads.purchases.iter().map(|(a, _)| *a).collect();
        let purchase_keys: Vec<&[u8]> = reads.purchases.iter().map(|(_, k)| &k[..]).collect();
        let voter_posts: Vec<Uuid> = reads.voters.iter().map(|(p, _)| *p).collect();
        let voter_stamps: Vec<Uuid> = reads.voters.iter().map(|(_, s)| s.stamp_id).collect();
        let recent_stamps: Vec<Uuid> = reads.recent_posts.iter().map(|s| s.stamp_id).collect();
        let recent_max = to_i64(reads.recent_posts_max);
        // A debit's revoke reads the account's purchases not expired at the batch's time,
        // which is never before the last entry's: those expiring after it are enough.
        let since = self.head.borrow().last_time;
        let purchases_max = to_i64(reads.account_purchases_max);
        let frontier: Vec<i64> = right_edge(self.head.borrow().ledger_size)
            .into_iter()
            .map(to_i64)
            .collect();
        let sqls = [
            format!(
                "SELECT {STAMP_COLUMNS} FROM stamps s LEFT JOIN spends p USING (stamp_id) \
                 WHERE s.stamp_id = ANY($1)"
            ),
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.account_id = ANY($1)"),
            format!("SELECT {POST_COLUMNS} FROM posts WHERE post_id = ANY($1)"),
            // The accounts of the spent stamps' buyers (a spend counts against its buyer; not
            // asked for a purchase's new stamps, where a thousand lookups that find nothing
            // cost 0.3 of the purchase rate).
            format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.account_id IN \
                 (SELECT buyer FROM stamps WHERE stamp_id = ANY($1))"
            ),
            // All the stored hashes the batch's appends read (the rest they make themselves).
            "SELECT idx, hash FROM hashes WHERE idx = ANY($1)".to_string(),
            "SELECT kid, public_key, status, published_at FROM published_keys WHERE kid = ANY($1)"
                .to_string(),
            "SELECT api_key_sha256 FROM api_keys WHERE api_key_sha256 = ANY($1)".to_string(),
            "SELECT name_key, account_id FROM names WHERE name_key = ANY($1)".to_string(),
            format!("SELECT reference_sha256, {CREDIT_COLUMNS} FROM credits WHERE reference_sha256 = ANY($1)"),
            format!(
                "SELECT account_id, key_sha256, {PURCHASE_COLUMNS} FROM purchases \
                 WHERE (account_id, key_sha256) IN (SELECT * FROM UNNEST($1::uuid[], $2::bytea[]))"
            ),
            "SELECT v.post_id, v.payer, v.votes, v.up_voted \
             FROM UNNEST($1::uuid[], $2::uuid[]) AS q (post_id, stamp_id) \
             JOIN stamps s ON s.stamp_id = q.stamp_id \
             JOIN voters v ON v.post_id = q.post_id AND v.payer = s.buyer"
                .to_string(),
            "SELECT b.buyer, t.time \
             FROM (SELECT DISTINCT buyer FROM stamps WHERE stamp_id = ANY($1)) b \
             CROSS JOIN LATERAL (SELECT time FROM payer_posts WHERE payer = b.buyer \
             ORDER BY time DESC LIMIT $2) t"
                .to_string(),
            // Holds by id (a capture or release), and the last hold of each stamp named.
            format!("SELECT {HOLD_COLUMNS} FROM holds h WHERE h.hold_id = ANY($1)"),
            format!(
                "SELECT q.stamp_id, {HOLD_COLUMNS} FROM hold_stamps q \
                 JOIN holds h USING (hold_id) WHERE q.stamp_id = ANY($1)"
            ),
            // The purchases a debit's revoke looks through, newest first, and their stamps.
            format!(
                "SELECT p.* FROM UNNEST($1::uuid[]) AS a (id) CROSS JOIN LATERAL \
                 (SELECT {ACCOUNT_PURCHASE_COLUMNS} FROM account_purchases \
                 WHERE account_id = a.id AND expires_at > $2 \
                 ORDER BY ledger_index DESC LIMIT $3) p"
            ),
            format!(
                "SELECT {STAMP_COLUMNS} FROM stamps s LEFT JOIN spends p USING (stamp_id) \
                 WHERE s.stamp_id IN (SELECT unnest(q.stamp_ids) \
                 FROM UNNEST($1::uuid[]) AS a (id) CROSS JOIN LATERAL \
                 (SELECT stamp_ids FROM account_purchases \
                 WHERE account_id = a.id AND expires_at > $2 \
                 ORDER BY ledger_index DESC LIMIT $3) q)"
            ),
        ];
        let statements = sqls
            .iter()
            .map(|sql| self.statement(sql))
            .collect::<Result<Vec<_>, _>>()?;
        let debtors = !reads.account_purchases.is_empty();
        let params: [(Vec<Param<'_>>, bool); 16] = [
            (vec![&stamp_ids], !stamp_ids.is_empty()),
            (vec![&reads.accounts], !reads.accounts.is_empty()),
            (vec![&reads.posts], !reads.posts.is_empty()),
            (vec![&spent_ids], !spent_ids.is_empty()),
            (vec![&frontier], !frontier.is_empty()),
            (vec![&kids], !kids.is_empty()),
            (vec![&api_keys], !api_keys.is_empty()),
            (vec![&names], !names.is_empty()),
            (vec![&credits], !credits.is_empty()),
            (
                vec![&purchase_accounts, &purchase_keys],
                !purchase_keys.is_empty(),
            ),
            (vec![&voter_posts, &voter_stamps], !voter_posts.is_empty()),
            (vec![&recent_stamps, &recent_max], !recent_stamps.is_empty()),
            (vec![&reads.holds], !reads.holds.is_empty()),
            (vec![&spent_ids], !spent_ids.is_empty()),
            (
                vec![&reads.account_purchases, &since, &purchases_max],
                debtors,
            ),
            (
                vec![&reads.account_purchases, &since, &purchases_max],
                debtors,
            ),
        ];
        // A lookup with nothing to look up is not sent: it would cost the backend a plan and
        // a lock on its table for nothing (a redeem batch that read `posts` would wait, with
        // the ledger lock held, behind anything holding `posts`, a `VACUUM FULL` say).
        let rows = self
            .store
            .block_for(self.writer, async {
                futures_util::future::try_join_all(statements.iter().zip(&params).map(
                    |(statement, (params, any))| query_if(self.client, statement, params, *any),
                ))
                .await
            })
            .map_err(|e| db_error(&e))?;
        let [stamps, accounts, posts, buyer_accounts, edge, keys, api_key_rows, name_rows, credit_rows, purchase_rows, voter_rows, recent_rows, hold_rows, stamp_hold_rows, account_purchase_rows, revocable_rows]: [Vec<tokio_postgres::Row>; 16] =
            rows.try_into()
                .map_err(|_| corrupt("prefetch", "answers missing"))?;
        let mut overlay = self.overlay.borrow_mut();
        let o = &mut *overlay;
        for kid in &reads.kids {
            o.keys.insert(*kid, None);
        }
        for row in &keys {
            let key = key_from_row(row)?;
            o.keys.insert(key.kid, Some(key));
        }
        for row in &edge {
            let (index, hash) = hash_from_row(row)?;
            o.hashes.insert(index, hash);
        }
        for row in &buyer_accounts {
            let account = account_from_row(row)?;
            o.accounts.insert(account.account_id, Some(account));
        }
        for id in &stamp_ids {
            o.stamps.insert(*id, None);
        }
        for row in stamps.iter().chain(&revocable_rows) {
            let (id, sale, spent) = stamp_from_row(row)?;
            o.stamps.insert(id, Some(SoldStamp { sale, spent }));
        }
        for account_id in &reads.account_purchases {
            o.account_purchases.insert(
                *account_id,
                super::StoredPurchases {
                    since,
                    limit: reads.account_purchases_max,
                    purchases: Vec::new(),
                },
            );
        }
        for row in &account_purchase_rows {
            let purchase = account_purchase_from_row(row)?;
            if let Some(stored) = o.account_purchases.get_mut(&purchase.account_id) {
                stored.purchases.push(purchase);
            }
        }
        for stored in o.account_purchases.values_mut() {
            // Newest first, as a read of the index answers.
            stored
                .purchases
                .sort_unstable_by_key(|p| std::cmp::Reverse(p.ledger_index));
        }
        for id in &reads.accounts {
            o.accounts.insert(*id, None);
        }
        for row in &accounts {
            let account = account_from_row(row)?;
            o.accounts.insert(account.account_id, Some(account));
        }
        for id in &reads.holds {
            o.holds.insert(*id, None);
        }
        for row in &hold_rows {
            let hold = hold_from_row(row, 0)?;
            o.holds.insert(hold.hold_id, Some(hold));
        }
        for id in &spent_ids {
            o.stamp_holds.insert(*id, None);
        }
        for row in &stamp_hold_rows {
            let hold = hold_from_row(row, 1)?;
            o.stamp_holds.insert(row.get(0), Some(hold.hold_id));
            o.holds.insert(hold.hold_id, Some(hold));
        }
        for id in &reads.posts {
            o.posts.insert(*id, None);
        }
        for row in &posts {
            let post = post_from_row(row)?;
            o.posts.insert(post.post_id, Some(post));
        }
        for key in &reads.api_keys {
            o.api_keys.insert(*key, false);
        }
        for row in &api_key_rows {
            o.api_keys.insert(sha256_of(row.get(0), "api_keys")?, true);
        }
        for name in &reads.names {
            o.names.insert(name.clone(), None);
        }
        for row in &name_rows {
            o.names.insert(row.get(0), Some(row.get(1)));
        }
        for reference in &reads.credits {
            o.credits.insert(*reference, None);
        }
        for row in &credit_rows {
            o.credits.insert(
                sha256_of(row.get(0), "credits")?,
                Some(credit_from_row(row, 1)?),
            );
        }
        for key in &reads.purchases {
            o.purchases.insert(*key, None);
        }
        for row in &purchase_rows {
            let account_id: Uuid = row.get(0);
            let key = sha256_of(row.get(1), "purchases")?;
            o.purchases.insert(
                (account_id, key),
                Some(purchase_from_row(row, 2, account_id)?),
            );
        }
        // The buyers the dependent reads were joined through, from the stamps just read.
        let buyer_of = |stamp: &StampRef| {
            o.stamps
                .get(&stamp.stamp_id)
                .and_then(|sold| sold.as_ref().map(|s| s.sale.buyer))
        };
        let voters: Vec<(Uuid, Uuid)> = reads
            .voters
            .iter()
            .filter_map(|(post, stamp)| buyer_of(stamp).map(|buyer| (*post, buyer)))
            .collect();
        let payers: Vec<Uuid> = reads.recent_posts.iter().filter_map(buyer_of).collect();
        for key in voters {
            o.voters.insert(key, Voter::default());
        }
        for row in &voter_rows {
            o.voters.insert(
                (row.get(0), row.get(1)),
                Voter {
                    votes: to_u64(row.get(2), "voters")?,
                    up_voted: row.get(3),
                },
            );
        }
        for payer in payers {
            o.payer_posts.insert(payer, Vec::new());
        }
        for row in &recent_rows {
            o.payer_posts
                .entry(row.get(0))
                .or_default()
                .push(row.get(1));
        }
        for times in o.payer_posts.values_mut() {
            // Newest first, as a payer's list is kept.
            times.sort_unstable_by(|a, b| b.cmp(a));
        }
        Ok(())
    }
}

/// The stored-hash indexes of the roots of the perfect subtrees that make up a tree of `size`
/// entries (one per set bit of `size`): appending entries from `size` on reads no other stored
/// hash from before (`tlog_tiles::stored_hashes` reads, for entry `n`, the level-`i` root
/// `(n >> i) - 1` for each trailing one bit `i` of `n`; for `n >= size` such a subtree either
/// ends at or before `size`, and is one of these, or holds entries appended since).
fn right_edge(size: u64) -> Vec<u64> {
    (0..64u8)
        .filter(|level| (size >> level) & 1 == 1)
        .map(|level| tlog_tiles::stored_hash_index(level, (size >> level) - 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::right_edge;

    /// Reads stored hashes from a map; an index missing from it is an error.
    struct Known<'a>(&'a RefCell<HashMap<u64, tlog_tiles::Hash>>);

    impl tlog_tiles::HashReader for Known<'_> {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
            let known = self.0.borrow();
            indexes
                .iter()
                .map(|i| {
                    known
                        .get(i)
                        .copied()
                        .ok_or(tlog_tiles::Error::IndexesNotInTree)
                })
                .collect()
        }
    }

    /// Appends entry `n` through `known`, keeping the hashes it stores there.
    fn append(n: u64, known: &RefCell<HashMap<u64, tlog_tiles::Hash>>) -> bool {
        let Ok(hashes) = tlog_tiles::stored_hashes(n, &n.to_le_bytes(), &Known(known)) else {
            return false;
        };
        let first = tlog_tiles::stored_hash_index(0, n);
        let mut known = known.borrow_mut();
        for (k, hash) in (0u64..).zip(hashes) {
            known.insert(first + k, hash);
        }
        true
    }

    #[test]
    fn a_batch_of_appends_reads_no_stored_hash_but_the_right_edge() {
        let all = RefCell::new(HashMap::new());
        for n in 0..400 {
            assert!(append(n, &all));
        }
        for size in 0..300 {
            let edge: HashMap<u64, tlog_tiles::Hash> = right_edge(size)
                .into_iter()
                .map(|i| (i, all.borrow()[&i]))
                .collect();
            let batch = RefCell::new(edge);
            for n in size..size + 100 {
                assert!(
                    append(n, &batch),
                    "size {size}: entry {n} read past the edge"
                );
                let first = tlog_tiles::stored_hash_index(0, n);
                assert_eq!(batch.borrow()[&first], all.borrow()[&first]);
            }
        }
    }
}
