//! One PostgreSQL transaction as a [`StoreTx`]: reads through a per-batch cache, writes kept
//! in memory and sent at the end in one pipelined round of multi-row statements.
//!
//! The rules write only after every check of a command passed (see `crate::rules`), so the
//! writes of a batch can be gathered here and sent once: nothing a refused command did needs
//! undoing. What the batch reads is fetched up front where the commands name it
//! ([`PgTx::prefetch`]: stamps, their buyers, accounts, posts, voters); any other read is one
//! query, and its answer is cached for the rest of the batch. Nothing outlives the transaction.

use std::cell::RefCell;
use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;
use uuid::Uuid;

use super::{
    account_from_row, corrupt, db_error, key_from_row, post_from_row, stamp_from_row, to_i64,
    to_u64, PgStore, ACCOUNT_COLUMNS, POST_COLUMNS, STAMP_COLUMNS,
};
use crate::domain::{
    Account, CreditRecord, Policy, Post, PurchaseRecord, Sale, SoldStamp, SpentRecord, StampRef,
    Voter,
};
use crate::keys::{KeyStatus, PublishedKey};
use crate::stamp::Kid;
use crate::store::{Exported, ReadSet, StoreError, StoreTx};
use crate::time::Timestamp;

type Param<'p> = &'p (dyn ToSql + Sync);

/// `client.query(statement, params)` when `any`; otherwise no rows, and nothing sent.
async fn query_if(
    client: &deadpool_postgres::Object,
    statement: &Statement,
    params: &[Param<'_>],
    any: bool,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    if any {
        client.query(statement, params).await
    } else {
        Ok(Vec::new())
    }
}

/// The `head` row as the transaction read and changed it.
struct Head {
    ledger_size: u64,
    last_time: i64,
    post_seq: u64,
    board_generation: u64,
    policy: Option<Policy>,
    /// Whether the batch wrote a post or a vote (the board generation then moves on).
    board_changed: bool,
    changed: bool,
}

/// What the batch has read (`None`: known absent) and what it will write.
#[derive(Default)]
struct Overlay {
    accounts: HashMap<Uuid, Option<Account>>,
    dirty_accounts: Vec<Uuid>,
    api_keys: HashMap<[u8; 32], bool>,
    new_api_keys: Vec<([u8; 32], Uuid)>,
    names: HashMap<String, Option<Uuid>>,
    new_names: Vec<(String, Uuid)>,
    credits: HashMap<[u8; 32], Option<CreditRecord>>,
    new_credits: Vec<([u8; 32], CreditRecord)>,
    purchases: HashMap<(Uuid, [u8; 32]), Option<PurchaseRecord>>,
    new_purchases: Vec<([u8; 32], PurchaseRecord)>,
    /// Sold stamps by id: the sale and the spend, if any.
    stamps: HashMap<Uuid, Option<SoldStamp>>,
    new_stamps: Vec<(Uuid, Sale)>,
    new_spends: Vec<(Uuid, SpentRecord)>,
    posts: HashMap<Uuid, Option<Post>>,
    dirty_posts: Vec<Uuid>,
    voters: HashMap<(Uuid, Uuid), Voter>,
    dirty_voters: Vec<(Uuid, Uuid)>,
    /// A payer's post times, newest first: the newest stored, as many as the rules asked for,
    /// then those of this batch in front.
    payer_posts: HashMap<Uuid, Vec<i64>>,
    new_payer_posts: Vec<(Uuid, i64, Option<Uuid>)>,
    keys: HashMap<Kid, Option<PublishedKey>>,
    dirty_keys: Vec<Kid>,
    hashes: HashMap<u64, [u8; 32]>,
    new_hashes: Vec<(u64, [u8; 32])>,
    new_entries: Vec<(u64, Vec<u8>)>,
    /// A checkpoint to write (only an import sets it).
    checkpoint: Option<(u64, String)>,
}

/// Columns of `credits` after its key, in the order [`credit_from_row`] reads them.
const CREDIT_COLUMNS: &str = "account_id, amount, balance, ledger_index";

fn credit_from_row(row: &tokio_postgres::Row, at: usize) -> Result<CreditRecord, StoreError> {
    Ok(CreditRecord {
        account_id: row.get(at),
        amount: to_u64(row.get(at + 1), "credits")?,
        balance: to_u64(row.get(at + 2), "credits")?,
        ledger_index: to_u64(row.get(at + 3), "credits")?,
    })
}

/// Columns of `purchases` after its key, in the order [`purchase_from_row`] reads them.
const PURCHASE_COLUMNS: &str = "purchase_id, count, unit_price, total, balance, ledger_index, \
     kid, issued_at, expires_at, stamp_ids";

fn purchase_from_row(
    row: &tokio_postgres::Row,
    at: usize,
    account_id: Uuid,
) -> Result<PurchaseRecord, StoreError> {
    Ok(PurchaseRecord {
        purchase_id: row.get(at),
        account_id,
        count: u32::try_from(row.get::<_, i32>(at + 1))
            .map_err(|_| corrupt("purchases", "count"))?,
        unit_price: to_u64(row.get(at + 2), "purchases")?,
        total: to_u64(row.get(at + 3), "purchases")?,
        balance: to_u64(row.get(at + 4), "purchases")?,
        ledger_index: to_u64(row.get(at + 5), "purchases")?,
        kid: super::kid_of(row.get(at + 6), "purchases")?,
        issued_at: Timestamp::from_unix(row.get(at + 7)),
        expires_at: Timestamp::from_unix(row.get(at + 8)),
        stamp_ids: row.get(at + 9),
    })
}

/// A stored SHA-256 (a key of `api_keys`, `credits`, `purchases`).
fn sha256_of(bytes: &[u8], table: &'static str) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| corrupt(table, "SHA-256 length"))
}

pub(super) struct PgTx<'a> {
    store: &'a PgStore,
    /// Whether `client` is a connection of the writer's pool (its calls run on the writer
    /// runtime: [`PgStore::block_for`]).
    writer: bool,
    client: &'a deadpool_postgres::Object,
    head: RefCell<Head>,
    overlay: RefCell<Overlay>,
}

fn push_new<K: PartialEq + Copy>(list: &mut Vec<K>, key: K) {
    if !list.contains(&key) {
        list.push(key);
    }
}

impl<'a> PgTx<'a> {
    /// Runs `body` in a transaction on `client`: for a `write`, one that first locks the
    /// ledger's head row and sends the batch's writes after `body`; otherwise a read-only one
    /// on one snapshot. Commits when `body` and the writes succeed; on an error the caller
    /// rolls back.
    pub(super) fn run<R>(
        store: &'a PgStore,
        client: &'a deadpool_postgres::Object,
        write: bool,
        body: &mut impl FnMut(&PgTx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let (begin, head_sql) = if write {
            (
                // Plans made for this batch's arrays and the tables' sizes now, not a generic
                // plan cached by the connection when the tables were nearly empty: with that,
                // the stamp prefetch kept a hash join over a sequential scan of `spends` (1 to 3
                // ms a batch on a few tens of thousands of spends, inside the ledger lock)
                // until autovacuum next analyzed the table. Sent with BEGIN: no round trip.
                "BEGIN; SET LOCAL plan_cache_mode = force_custom_plan",
                "SELECT ledger_size, last_time, post_seq, board_generation, policy \
                 FROM head WHERE id = 1 FOR UPDATE",
            )
        } else {
            (
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                "SELECT ledger_size, last_time, post_seq, board_generation, policy \
                 FROM head WHERE id = 1",
            )
        };
        let tx = PgTx {
            store,
            writer: write,
            client,
            head: RefCell::new(Head {
                ledger_size: 0,
                last_time: 0,
                post_seq: 0,
                board_generation: 0,
                policy: None,
                board_changed: false,
                changed: false,
            }),
            overlay: RefCell::new(Overlay::default()),
        };
        let head_statement = tx.statement(head_sql)?;
        let (_, head) = store
            .block_for(write, async {
                futures_util::try_join!(
                    client.batch_execute(begin),
                    client.query_opt(&head_statement, &[])
                )
            })
            .map_err(|e| db_error(&e))?;
        let head = head.ok_or_else(|| corrupt("head", "no head row"))?;
        {
            let mut h = tx.head.borrow_mut();
            h.ledger_size = to_u64(head.get(0), "head")?;
            h.last_time = head.get(1);
            h.post_seq = to_u64(head.get(2), "head")?;
            h.board_generation = to_u64(head.get(3), "head")?;
            h.policy = head
                .get::<_, Option<&str>>(4)
                .map(|text| serde_json::from_str(text).map_err(|e| corrupt("head", e)))
                .transpose()?;
        }
        let out = body(&tx)?;
        if write {
            // The writes and the COMMIT in one round trip, while the ledger lock is held.
            tx.send_writes(true)?;
        } else {
            store
                .block_for(write, client.batch_execute("COMMIT"))
                .map_err(|e| db_error(&e))?;
        }
        Ok(out)
    }

    fn statement(&self, sql: &str) -> Result<Statement, StoreError> {
        self.store
            .block_for(self.writer, self.client.prepare_cached(sql))
            .map_err(|e| db_error(&e))
    }

    fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let statement = self.statement(sql)?;
        self.store
            .block_for(self.writer, self.client.query(&statement, params))
            .map_err(|e| db_error(&e))
    }

    /// Reads up front what the rules said the batch reads ([`ReadSet`]), in one pipelined
    /// round: what the commands name, the stamps' buyers, the voter records and recent post
    /// times of the buyers of the stamps named for them (joined through `stamps` in the same
    /// statement, so no second round), and the hashes of the ledger's right edge. What was
    /// asked for and not found is cached as absent.
    pub(super) fn prefetch(&self, reads: &ReadSet) -> Result<(), StoreError> {
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
        ];
        let statements = sqls
            .iter()
            .map(|sql| self.statement(sql))
            .collect::<Result<Vec<_>, _>>()?;
        let params: [(Vec<Param<'_>>, bool); 12] = [
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
        let [stamps, accounts, posts, buyer_accounts, edge, keys, api_key_rows, name_rows, credit_rows, purchase_rows, voter_rows, recent_rows]: [Vec<tokio_postgres::Row>; 12] =
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
            let (index, hash) = super::hash_from_row(row)?;
            o.hashes.insert(index, hash);
        }
        for row in &buyer_accounts {
            let account = account_from_row(row)?;
            o.accounts.insert(account.account_id, Some(account));
        }
        for id in &stamp_ids {
            o.stamps.insert(*id, None);
        }
        for row in &stamps {
            let (id, sale, spent) = stamp_from_row(row)?;
            o.stamps.insert(id, Some(SoldStamp { sale, spent }));
        }
        for id in &reads.accounts {
            o.accounts.insert(*id, None);
        }
        for row in &accounts {
            let account = account_from_row(row)?;
            o.accounts.insert(account.account_id, Some(account));
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
        let buyer_of = |stamp: &crate::domain::StampRef| {
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

    /// Sends every write of the batch in one pipelined round, parents before children (the
    /// statements run in the order sent), then the head row; with `commit`, the `COMMIT` in
    /// the same round, behind the writes.
    /// The transaction committed only if every statement and the `COMMIT` succeeded: after a
    /// failed write PostgreSQL answers that `COMMIT` with a rollback, and the write's error is
    /// what this returns.
    fn send_writes(&self, commit: bool) -> Result<(), StoreError> {
        let overlay = self.overlay.borrow();
        let head = self.head.borrow();
        let mut sqls: Vec<&str> = Vec::new();
        let mut params: Vec<Vec<Param<'_>>> = Vec::new();

        // Ledger entries and hashes.
        let entry_idx: Vec<i64> = overlay
            .new_entries
            .iter()
            .map(|(i, _)| to_i64(*i))
            .collect();
        let entry_body: Vec<&[u8]> = overlay.new_entries.iter().map(|(_, b)| &b[..]).collect();
        if !entry_idx.is_empty() {
            sqls.push(
                "INSERT INTO entries (idx, body) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
            );
            params.push(vec![&entry_idx, &entry_body]);
        }
        let hash_idx: Vec<i64> = overlay.new_hashes.iter().map(|(i, _)| to_i64(*i)).collect();
        let hash_val: Vec<&[u8]> = overlay.new_hashes.iter().map(|(_, h)| &h[..]).collect();
        if !hash_idx.is_empty() {
            sqls.push(
                "INSERT INTO hashes (idx, hash) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
            );
            params.push(vec![&hash_idx, &hash_val]);
        }

        // Published keys.
        let keys: Vec<&PublishedKey> = overlay
            .dirty_keys
            .iter()
            .filter_map(|kid| overlay.keys.get(kid).and_then(Option::as_ref))
            .collect();
        let key_kid: Vec<&[u8]> = keys.iter().map(|k| &k.kid.0[..]).collect();
        let key_public: Vec<Option<&str>> = keys.iter().map(|k| k.public_key.as_deref()).collect();
        let key_status: Vec<&str> = keys.iter().map(|k| k.status.as_str()).collect();
        let key_at: Vec<i64> = keys.iter().map(|k| k.published_at.unix()).collect();
        if !keys.is_empty() {
            sqls.push(
                "INSERT INTO published_keys (kid, public_key, status, published_at) \
                 SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::bigint[]) \
                 ON CONFLICT (kid) DO UPDATE SET public_key = EXCLUDED.public_key, \
                 status = EXCLUDED.status, published_at = EXCLUDED.published_at",
            );
            params.push(vec![&key_kid, &key_public, &key_status, &key_at]);
        }

        // Accounts, then what refers to them.
        let accounts: Vec<&Account> = overlay
            .dirty_accounts
            .iter()
            .filter_map(|id| overlay.accounts.get(id).and_then(Option::as_ref))
            .collect();
        let a_id: Vec<Uuid> = accounts.iter().map(|a| a.account_id).collect();
        let a_name: Vec<Option<&str>> = accounts.iter().map(|a| a.name.as_deref()).collect();
        let a_balance: Vec<i64> = accounts.iter().map(|a| to_i64(a.balance)).collect();
        let a_bought: Vec<i64> = accounts
            .iter()
            .map(|a| to_i64(a.stamps_purchased))
            .collect();
        let a_spent: Vec<i64> = accounts.iter().map(|a| to_i64(a.stamps_spent)).collect();
        let a_created: Vec<i64> = accounts.iter().map(|a| a.created_at.unix()).collect();
        let a_refunds: Vec<i64> = accounts.iter().map(|a| to_i64(a.refunds_total)).collect();
        if !accounts.is_empty() {
            sqls.push(
                "INSERT INTO accounts (account_id, name, balance, stamps_purchased, \
                 stamps_spent, created_at, refunds_total) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], \
                 $5::bigint[], $6::bigint[], $7::bigint[]) \
                 ON CONFLICT (account_id) DO UPDATE SET name = EXCLUDED.name, \
                 balance = EXCLUDED.balance, stamps_purchased = EXCLUDED.stamps_purchased, \
                 stamps_spent = EXCLUDED.stamps_spent, refunds_total = EXCLUDED.refunds_total",
            );
            params.push(vec![
                &a_id, &a_name, &a_balance, &a_bought, &a_spent, &a_created, &a_refunds,
            ]);
        }
        let k_hash: Vec<&[u8]> = overlay.new_api_keys.iter().map(|(h, _)| &h[..]).collect();
        let k_account: Vec<Uuid> = overlay.new_api_keys.iter().map(|(_, a)| *a).collect();
        if !k_hash.is_empty() {
            sqls.push(
                "INSERT INTO api_keys (api_key_sha256, account_id) \
                 SELECT * FROM UNNEST($1::bytea[], $2::uuid[])",
            );
            params.push(vec![&k_hash, &k_account]);
        }
        let n_key: Vec<&str> = overlay.new_names.iter().map(|(n, _)| n.as_str()).collect();
        let n_account: Vec<Uuid> = overlay.new_names.iter().map(|(_, a)| *a).collect();
        if !n_key.is_empty() {
            sqls.push(
                "INSERT INTO names (name_key, account_id) \
                 SELECT * FROM UNNEST($1::text[], $2::uuid[])",
            );
            params.push(vec![&n_key, &n_account]);
        }
        let c_ref: Vec<&[u8]> = overlay.new_credits.iter().map(|(r, _)| &r[..]).collect();
        let c_account: Vec<Uuid> = overlay
            .new_credits
            .iter()
            .map(|(_, c)| c.account_id)
            .collect();
        let c_amount: Vec<i64> = overlay
            .new_credits
            .iter()
            .map(|(_, c)| to_i64(c.amount))
            .collect();
        let c_balance: Vec<i64> = overlay
            .new_credits
            .iter()
            .map(|(_, c)| to_i64(c.balance))
            .collect();
        let c_index: Vec<i64> = overlay
            .new_credits
            .iter()
            .map(|(_, c)| to_i64(c.ledger_index))
            .collect();
        if !c_ref.is_empty() {
            sqls.push(
                "INSERT INTO credits (reference_sha256, account_id, amount, balance, ledger_index) \
                 SELECT * FROM UNNEST($1::bytea[], $2::uuid[], $3::bigint[], $4::bigint[], \
                 $5::bigint[])",
            );
            params.push(vec![&c_ref, &c_account, &c_amount, &c_balance, &c_index]);
        }
        // Purchases one row each: their stamp id lists differ in length, which one multi-row
        // array statement cannot carry.
        let purchase_rows: Vec<PurchaseParams> = overlay
            .new_purchases
            .iter()
            .map(|(key, r)| PurchaseParams::new(key, r))
            .collect();
        for p in &purchase_rows {
            sqls.push(
                "INSERT INTO purchases (account_id, key_sha256, purchase_id, count, unit_price, \
                 total, balance, ledger_index, kid, issued_at, expires_at, stamp_ids) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            );
            params.push(p.params());
        }

        // Stamps sold, then spent. The spend insert has no ON CONFLICT: the key decides.
        let s_id: Vec<Uuid> = overlay.new_stamps.iter().map(|(id, _)| *id).collect();
        let s_buyer: Vec<Uuid> = overlay.new_stamps.iter().map(|(_, s)| s.buyer).collect();
        let s_kid: Vec<&[u8]> = overlay
            .new_stamps
            .iter()
            .map(|(_, s)| &s.kid.0[..])
            .collect();
        let s_issued: Vec<i64> = overlay
            .new_stamps
            .iter()
            .map(|(_, s)| s.issued_at.unix())
            .collect();
        let s_expires: Vec<i64> = overlay
            .new_stamps
            .iter()
            .map(|(_, s)| s.expires_at.unix())
            .collect();
        let s_price: Vec<Option<i64>> = overlay
            .new_stamps
            .iter()
            .map(|(_, s)| s.unit_price.map(to_i64))
            .collect();
        if !s_id.is_empty() {
            sqls.push(
                "INSERT INTO stamps (stamp_id, buyer, kid, issued_at, expires_at, unit_price) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bytea[], $4::bigint[], \
                 $5::bigint[], $6::bigint[])",
            );
            params.push(vec![
                &s_id, &s_buyer, &s_kid, &s_issued, &s_expires, &s_price,
            ]);
        }
        let p_id: Vec<Uuid> = overlay.new_spends.iter().map(|(id, _)| *id).collect();
        let p_at: Vec<i64> = overlay
            .new_spends
            .iter()
            .map(|(_, s)| s.spent_at.unix())
            .collect();
        let p_action: Vec<&str> = overlay
            .new_spends
            .iter()
            .map(|(_, s)| s.action.as_str())
            .collect();
        let p_for: Vec<&str> = overlay
            .new_spends
            .iter()
            .map(|(_, s)| s.spent_for.as_str())
            .collect();
        let p_index: Vec<i64> = overlay
            .new_spends
            .iter()
            .map(|(_, s)| to_i64(s.ledger_index))
            .collect();
        if !p_id.is_empty() {
            sqls.push(
                "INSERT INTO spends (stamp_id, spent_at, action, spent_for, ledger_index) \
                 SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::text[], \
                 $5::bigint[])",
            );
            params.push(vec![&p_id, &p_at, &p_action, &p_for, &p_index]);
        }

        // Posts, then their voters and their payers' post times.
        let posts: Vec<&Post> = overlay
            .dirty_posts
            .iter()
            .filter_map(|id| overlay.posts.get(id).and_then(Option::as_ref))
            .collect();
        let columns = PostColumns::new(&posts);
        if !posts.is_empty() {
            sqls.push(
                "INSERT INTO posts (post_id, seq, author, body, created_at, score, ledger_index, \
                 verified, payer, cost, votes_up, votes_down, voters, up_voters, base_postage, \
                 refunded) \
                 SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::text[], \
                 $5::bigint[], $6::bigint[], $7::bigint[], $8::boolean[], $9::uuid[], \
                 $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], \
                 $15::bigint[], $16::boolean[]) \
                 ON CONFLICT (post_id) DO UPDATE SET score = EXCLUDED.score, \
                 votes_up = EXCLUDED.votes_up, votes_down = EXCLUDED.votes_down, \
                 voters = EXCLUDED.voters, up_voters = EXCLUDED.up_voters, \
                 base_postage = EXCLUDED.base_postage, refunded = EXCLUDED.refunded",
            );
            params.push(columns.params());
        }
        let voters: Vec<((Uuid, Uuid), Voter)> = overlay
            .dirty_voters
            .iter()
            .filter_map(|key| overlay.voters.get(key).map(|v| (*key, *v)))
            .collect();
        let v_post: Vec<Uuid> = voters.iter().map(|((p, _), _)| *p).collect();
        let v_payer: Vec<Uuid> = voters.iter().map(|((_, p), _)| *p).collect();
        let v_votes: Vec<i64> = voters.iter().map(|(_, v)| to_i64(v.votes)).collect();
        let v_up: Vec<bool> = voters.iter().map(|(_, v)| v.up_voted).collect();
        if !voters.is_empty() {
            sqls.push(
                "INSERT INTO voters (post_id, payer, votes, up_voted) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::boolean[]) \
                 ON CONFLICT (post_id, payer) DO UPDATE SET votes = EXCLUDED.votes, \
                 up_voted = EXCLUDED.up_voted",
            );
            params.push(vec![&v_post, &v_payer, &v_votes, &v_up]);
        }
        let pp_payer: Vec<Uuid> = overlay.new_payer_posts.iter().map(|(p, _, _)| *p).collect();
        let pp_time: Vec<i64> = overlay.new_payer_posts.iter().map(|(_, t, _)| *t).collect();
        let pp_post: Vec<Option<Uuid>> =
            overlay.new_payer_posts.iter().map(|(_, _, p)| *p).collect();
        if !pp_payer.is_empty() {
            sqls.push(
                "INSERT INTO payer_posts (payer, time, post_id) \
                 SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[])",
            );
            params.push(vec![&pp_payer, &pp_time, &pp_post]);
        }

        let checkpoint = overlay
            .checkpoint
            .as_ref()
            .map(|(size, note)| (to_i64(*size), note.as_str()));
        if let Some((size, note)) = &checkpoint {
            sqls.push(
                "INSERT INTO checkpoint (id, size, note) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, note = EXCLUDED.note \
                 WHERE checkpoint.size < EXCLUDED.size",
            );
            params.push(vec![size, note]);
        }

        // The head row last.
        let h_size = to_i64(head.ledger_size);
        let h_seq = to_i64(head.post_seq);
        let h_generation = to_i64(
            head.board_generation
                .saturating_add(u64::from(head.board_changed)),
        );
        let h_policy = head
            .policy
            .as_ref()
            .map(|p| serde_json::to_string(p).map_err(|e| StoreError::Storage(e.to_string())))
            .transpose()?;
        if head.changed || head.board_changed {
            sqls.push(
                "UPDATE head SET ledger_size = $1, last_time = $2, post_seq = $3, \
                 board_generation = $4, policy = $5 WHERE id = 1",
            );
            params.push(vec![
                &h_size,
                &head.last_time,
                &h_seq,
                &h_generation,
                &h_policy,
            ]);
        }
        if sqls.is_empty() && !commit {
            return Ok(());
        }
        // Prepared first (cached per connection), so that the executions below are sent in
        // order, back to back (requests go out in the order their futures are first polled),
        // and answered in one round trip.
        let statements = sqls
            .iter()
            .map(|sql| self.statement(sql))
            .collect::<Result<Vec<_>, _>>()?;
        let client = self.client;
        // The writes are the same statements every batch, over arrays: their generic plans
        // (cached per connection) are right whatever the tables' sizes, and a custom plan
        // would be made again for every batch's arrays (a fifth of the purchase rate). So the
        // custom plans that BEGIN asked for end before them, in the same round trip.
        let generic = async {
            if commit {
                client
                    .batch_execute("SET LOCAL plan_cache_mode = auto")
                    .await
            } else {
                Ok(())
            }
        };
        let writes = futures_util::future::try_join_all(
            statements
                .iter()
                .zip(&params)
                .map(|(statement, params)| client.execute(statement, params)),
        );
        let end = async {
            if commit {
                client.batch_execute("COMMIT").await
            } else {
                Ok(())
            }
        };
        self.store
            .block_for(self.writer, async {
                futures_util::try_join!(generic, writes, end)
            })
            .map_err(|e| db_error(&e))?;
        Ok(())
    }
}

impl PgTx<'_> {
    /// Takes one record of another store (`pennypost migrate`) into the batch's writes as it
    /// is: no rule runs, the source store already kept them. [`PgTx::flush_and_clear`] sends
    /// what was gathered.
    pub(super) fn absorb(&self, record: Exported) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        let o = &mut *overlay;
        match record {
            Exported::Head {
                ledger_size,
                last_time,
                post_seq,
                policy,
            } => {
                let mut head = self.head.borrow_mut();
                head.ledger_size = ledger_size;
                head.last_time = last_time.unix();
                head.post_seq = post_seq;
                head.policy = policy;
                head.changed = true;
            }
            Exported::Key(key) => {
                o.dirty_keys.push(key.kid);
                o.keys.insert(key.kid, Some(key));
            }
            Exported::Account(account) => {
                o.dirty_accounts.push(account.account_id);
                o.accounts.insert(account.account_id, Some(account));
            }
            Exported::ApiKey(hash, account) => o.new_api_keys.push((hash, account)),
            Exported::Name(name, account) => o.new_names.push((name, account)),
            Exported::Credit(hash, record) => o.new_credits.push((hash, record)),
            Exported::Purchase(hash, record) => o.new_purchases.push((hash, record)),
            Exported::Stamp(id, sold) => {
                o.new_stamps.push((id, sold.sale));
                if let Some(spent) = sold.spent {
                    o.new_spends.push((id, spent));
                }
            }
            Exported::Post(post) => {
                o.dirty_posts.push(post.post_id);
                o.posts.insert(post.post_id, Some(post));
            }
            Exported::PayerPost { payer, time } => {
                o.new_payer_posts.push((payer, time.unix(), None))
            }
            Exported::Voter {
                post_id,
                payer,
                voter,
            } => {
                o.dirty_voters.push((post_id, payer));
                o.voters.insert((post_id, payer), voter);
            }
            Exported::Entry(index, bytes) => o.new_entries.push((index, bytes)),
            Exported::Hash(index, hash) => o.new_hashes.push((index, hash)),
            Exported::Checkpoint(size, note) => o.checkpoint = Some((size, note)),
        }
        Ok(())
    }

    /// Sends the writes gathered so far and starts gathering anew (the transaction stays
    /// open).
    pub(super) fn flush_and_clear(&self) -> Result<(), StoreError> {
        self.send_writes(false)?;
        *self.overlay.borrow_mut() = Overlay::default();
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

/// The parameters of one purchase row.
struct PurchaseParams<'r> {
    account_id: Uuid,
    key: &'r [u8],
    purchase_id: Uuid,
    count: i32,
    unit_price: i64,
    total: i64,
    balance: i64,
    ledger_index: i64,
    kid: &'r [u8],
    issued_at: i64,
    expires_at: i64,
    stamp_ids: &'r [Uuid],
}

impl<'r> PurchaseParams<'r> {
    fn new(key: &'r [u8; 32], r: &'r PurchaseRecord) -> PurchaseParams<'r> {
        PurchaseParams {
            account_id: r.account_id,
            key: &key[..],
            purchase_id: r.purchase_id,
            count: i32::try_from(r.count).unwrap_or(i32::MAX),
            unit_price: to_i64(r.unit_price),
            total: to_i64(r.total),
            balance: to_i64(r.balance),
            ledger_index: to_i64(r.ledger_index),
            kid: &r.kid.0[..],
            issued_at: r.issued_at.unix(),
            expires_at: r.expires_at.unix(),
            stamp_ids: &r.stamp_ids,
        }
    }

    fn params(&self) -> Vec<Param<'_>> {
        vec![
            &self.account_id,
            &self.key,
            &self.purchase_id,
            &self.count,
            &self.unit_price,
            &self.total,
            &self.balance,
            &self.ledger_index,
            &self.kid,
            &self.issued_at,
            &self.expires_at,
            &self.stamp_ids,
        ]
    }
}

/// The columns of posts to write, as arrays.
struct PostColumns<'r> {
    id: Vec<Uuid>,
    seq: Vec<i64>,
    author: Vec<&'r str>,
    body: Vec<&'r str>,
    created: Vec<i64>,
    score: Vec<i64>,
    index: Vec<i64>,
    verified: Vec<bool>,
    payer: Vec<Option<Uuid>>,
    cost: Vec<i64>,
    up: Vec<i64>,
    down: Vec<i64>,
    voters: Vec<i64>,
    up_voters: Vec<i64>,
    base: Vec<Option<i64>>,
    refunded: Vec<bool>,
}

impl<'r> PostColumns<'r> {
    fn new(posts: &[&'r Post]) -> PostColumns<'r> {
        PostColumns {
            id: posts.iter().map(|p| p.post_id).collect(),
            seq: posts.iter().map(|p| to_i64(p.seq)).collect(),
            author: posts.iter().map(|p| p.author.as_str()).collect(),
            body: posts.iter().map(|p| p.body.as_str()).collect(),
            created: posts.iter().map(|p| p.created_at.unix()).collect(),
            score: posts.iter().map(|p| p.score).collect(),
            index: posts.iter().map(|p| to_i64(p.ledger_index)).collect(),
            verified: posts.iter().map(|p| p.verified).collect(),
            payer: posts.iter().map(|p| p.payer).collect(),
            cost: posts.iter().map(|p| to_i64(p.cost)).collect(),
            up: posts.iter().map(|p| to_i64(p.votes_up)).collect(),
            down: posts.iter().map(|p| to_i64(p.votes_down)).collect(),
            voters: posts.iter().map(|p| to_i64(p.voters)).collect(),
            up_voters: posts.iter().map(|p| to_i64(p.up_voters)).collect(),
            base: posts.iter().map(|p| p.base_postage.map(to_i64)).collect(),
            refunded: posts.iter().map(|p| p.refunded).collect(),
        }
    }

    fn params(&self) -> Vec<Param<'_>> {
        vec![
            &self.id,
            &self.seq,
            &self.author,
            &self.body,
            &self.created,
            &self.score,
            &self.index,
            &self.verified,
            &self.payer,
            &self.cost,
            &self.up,
            &self.down,
            &self.voters,
            &self.up_voters,
            &self.base,
            &self.refunded,
        ]
    }
}

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
                let (index, hash) = super::hash_from_row(row)?;
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
            active.push(super::kid_of(row.get(0), "published_keys")?);
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
}

impl PgTx<'_> {
    /// A sold stamp by id alone, from the batch's cache or the database.
    fn stamp_by_id(&self, stamp_id: Uuid) -> Result<Option<SoldStamp>, StoreError> {
        if let Some(stamp) = self.overlay.borrow().stamps.get(&stamp_id) {
            return Ok(stamp.clone());
        }
        let stamp = self
            .query(super::STAMP_BY_ID, &[&stamp_id])?
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
