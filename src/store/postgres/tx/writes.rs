//! The batch's writes, sent in one pipelined round: every insert generated from its column
//! table ([`Insert`]), parents before children, then the head row, and the `COMMIT` behind
//! them.

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::super::{db_error, to_i64};
use super::tables::{Insert, Value};
use super::{Param, PgTx};
use crate::domain::Voter;
use crate::store::StoreError;

/// One statement's parameters.
type Params<'r> = Vec<Box<dyn ToSql + Sync + 'r>>;

/// The statements of one round of writes, in the order they run.
#[derive(Default)]
struct Round<'r> {
    statements: Vec<(String, Params<'r>)>,
}

impl<'r> Round<'r> {
    /// The insert of `records` (none: no statement): one statement of one array per column,
    /// or one statement per record for a table of [`Insert::ONE_ROW`].
    fn insert<R: Insert + 'r>(&mut self, records: impl IntoIterator<Item = &'r R>) {
        let records: Vec<&'r R> = records.into_iter().collect();
        if records.is_empty() {
            return;
        }
        if R::ONE_ROW {
            for record in records {
                let params = record
                    .values()
                    .into_iter()
                    .map(|value| Box::new(value) as Box<dyn ToSql + Sync + 'r>)
                    .collect();
                self.statements.push((R::sql(), params));
            }
            return;
        }
        let mut columns: Vec<Vec<Value<'r>>> = R::COLUMNS
            .iter()
            .map(|_| Vec::with_capacity(records.len()))
            .collect();
        for record in records {
            for (column, value) in columns.iter_mut().zip(record.values()) {
                column.push(value);
            }
        }
        let params = columns
            .into_iter()
            .map(|column| Box::new(column) as Box<dyn ToSql + Sync + 'r>)
            .collect();
        self.statements.push((R::sql(), params));
    }

    fn push(&mut self, sql: &str, params: Params<'r>) {
        self.statements.push((sql.to_string(), params));
    }
}

impl PgTx<'_> {
    /// Sends every write of the batch in one pipelined round, parents before children (the
    /// statements run in the order sent), then the head row; with `commit`, the `COMMIT` in
    /// the same round, behind the writes.
    /// The transaction committed only if every statement and the `COMMIT` succeeded: after a
    /// failed write PostgreSQL answers that `COMMIT` with a rollback, and the write's error is
    /// what this returns.
    pub(super) fn send_writes(&self, commit: bool) -> Result<(), StoreError> {
        let overlay = self.overlay.borrow();
        let head = self.head.borrow();
        let o = &*overlay;
        let voters: Vec<((Uuid, Uuid), Voter)> = o
            .dirty_voters
            .iter()
            .filter_map(|key| o.voters.get(key).map(|v| (*key, *v)))
            .collect();
        let mut round = Round::default();
        // Ledger entries and hashes, published keys.
        round.insert(&o.new_entries);
        round.insert(&o.new_hashes);
        round.insert(
            o.dirty_keys
                .iter()
                .filter_map(|kid| o.keys.get(kid).and_then(Option::as_ref)),
        );
        // Accounts, then what refers to them.
        round.insert(
            o.dirty_accounts
                .iter()
                .filter_map(|id| o.accounts.get(id).and_then(Option::as_ref)),
        );
        round.insert(&o.new_api_keys);
        round.insert(&o.new_names);
        round.insert(&o.new_credits);
        round.insert(&o.new_purchases);
        round.insert(&o.new_account_purchases);
        // Stamps sold, then spent.
        round.insert(&o.new_stamps);
        round.insert(&o.new_spends);
        // Posts, then their voters and their payers' post times.
        round.insert(
            o.dirty_posts
                .iter()
                .filter_map(|id| o.posts.get(id).and_then(Option::as_ref)),
        );
        round.insert(&voters);
        round.insert(&o.new_payer_posts);
        // An import's holds, then each stamp's last hold; its payments (after accounts).
        round.insert(&o.imported_holds);
        round.insert(&o.imported_stamp_holds);
        round.insert(&o.imported_payments);
        if let Some((size, note)) = &o.checkpoint {
            round.push(
                "INSERT INTO checkpoint (id, size, note) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, note = EXCLUDED.note \
                 WHERE checkpoint.size < EXCLUDED.size",
                vec![Box::new(to_i64(*size)), Box::new(note.as_str())],
            );
        }
        // The head row last.
        if head.changed || head.board_changed {
            let policy = head
                .policy
                .as_ref()
                .map(|p| serde_json::to_string(p).map_err(|e| StoreError::Storage(e.to_string())))
                .transpose()?;
            let generation = head
                .board_generation
                .saturating_add(u64::from(head.board_changed));
            round.push(
                "UPDATE head SET ledger_size = $1, last_time = $2, post_seq = $3, \
                 board_generation = $4, policy = $5 WHERE id = 1",
                vec![
                    Box::new(to_i64(head.ledger_size)),
                    Box::new(head.last_time),
                    Box::new(to_i64(head.post_seq)),
                    Box::new(to_i64(generation)),
                    Box::new(policy),
                ],
            );
        }
        if round.statements.is_empty() && !commit {
            return Ok(());
        }
        // Prepared first (cached per connection), so that the executions below are sent in
        // order, back to back (requests go out in the order their futures are first polled),
        // and answered in one round trip.
        let statements = round
            .statements
            .iter()
            .map(|(sql, _)| self.statement(sql))
            .collect::<Result<Vec<_>, _>>()?;
        let params: Vec<Vec<Param<'_>>> = round
            .statements
            .iter()
            .map(|(_, params)| params.iter().map(|p| p.as_ref() as Param<'_>).collect())
            .collect();
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
