//! One PostgreSQL transaction as a [`StoreTx`]: reads through a per-batch cache, writes kept
//! in memory and sent at the end in one pipelined round of multi-row statements.
//!
//! The rules write only after every check of a command passed (see `crate::rules`), so the
//! writes of a batch can be gathered here and sent once: nothing a refused command did needs
//! undoing. What the batch reads is fetched up front as the rules' [`ReadSet`] says
//! ([`PgTx::prefetch`]); any other read is one query, and its answer is cached for the rest of
//! the batch. Nothing outlives the transaction.
//!
//! By concern: this file has the transaction (`BEGIN`, the head-row lock, `COMMIT`) and its
//! cache; `prefetch` the up-front reads; `ops` the basic operations of [`StoreTx`]; `writes`
//! the one round of writes, each insert generated from the column tables of `tables`;
//! `import` a whole store taken in as it is (`pennypost migrate`).

pub(super) mod holds;
mod import;
mod ops;
mod prefetch;
mod tables;
mod writes;

pub(super) use holds::{hold_from_row, HOLD_COLUMNS};

use std::cell::RefCell;
use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;
use uuid::Uuid;

use super::{corrupt, db_error, to_u64, PgStore};
use crate::domain::{
    Account, CreditRecord, Hold, MoneyKind, Payment, Policy, Post, PurchaseRecord, Revoked, Sale,
    SoldStamp, SpentRecord, Voter,
};
use crate::keys::PublishedKey;
use crate::stamp::Kid;
use crate::store::StoreError;
#[cfg(doc)]
use crate::store::{ReadSet, StoreTx};
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
    /// Stored purchases of an account (not this batch's), newest first, as read: those
    /// expiring after `since`, at most `limit` of them.
    account_purchases: HashMap<Uuid, StoredPurchases>,
    /// Purchases this batch added to their accounts' index, in ledger order.
    new_account_purchases: Vec<tables::IndexedPurchase>,
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
    holds: HashMap<Uuid, Option<Hold>>,
    /// Each stamp's last hold.
    stamp_holds: HashMap<Uuid, Option<Uuid>>,
    /// A checkpoint to write (only an import sets it).
    checkpoint: Option<(u64, String)>,
    /// Holds, stamps' last holds and payment records to insert as they are (only an import
    /// sets them: a batch writes its holds at once, and payments are not in batches).
    imported_holds: Vec<Hold>,
    imported_stamp_holds: Vec<tables::StampHold>,
    imported_payments: Vec<Payment>,
}
/// Columns of `credits` after its key, in the order [`credit_from_row`] reads them.
const CREDIT_COLUMNS: &str =
    "account_id, amount, balance, ledger_index, kind, revoke_index, revoked_stamps, \
     revoked_amount";

fn credit_from_row(row: &tokio_postgres::Row, at: usize) -> Result<CreditRecord, StoreError> {
    let kind = match row.get::<_, &str>(at + 4) {
        "credit" => MoneyKind::Credit,
        "debit" => MoneyKind::Debit {
            revoked: match (
                row.get::<_, Option<i64>>(at + 5),
                row.get::<_, Option<i64>>(at + 6),
                row.get::<_, Option<i64>>(at + 7),
            ) {
                (Some(index), Some(stamps), Some(amount)) => Some(Revoked {
                    ledger_index: to_u64(index, "credits")?,
                    stamps: to_u64(stamps, "credits")?,
                    amount: to_u64(amount, "credits")?,
                }),
                _ => None,
            },
        },
        other => return Err(corrupt("credits", format!("kind {other}"))),
    };
    Ok(CreditRecord {
        account_id: row.get(at),
        amount: to_u64(row.get(at + 1), "credits")?,
        balance: row.get(at + 2),
        ledger_index: to_u64(row.get(at + 3), "credits")?,
        kind,
    })
}

/// An account's stored purchases as read: those whose `expires_at` is after `since`, newest
/// first, at most `limit` (all of them when fewer came back).
struct StoredPurchases {
    since: i64,
    limit: u64,
    purchases: Vec<PurchaseRecord>,
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

/// Columns of `account_purchases`, in the order [`account_purchase_from_row`] reads them.
const ACCOUNT_PURCHASE_COLUMNS: &str = "account_id, purchase_id, count, unit_price, total, \
     balance, ledger_index, kid, issued_at, expires_at, stamp_ids";

fn account_purchase_from_row(row: &tokio_postgres::Row) -> Result<PurchaseRecord, StoreError> {
    purchase_from_row(row, 1, row.get(0))
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
}
