//! Whole tables in key order, a page at a time: what `pennypost migrate` reads back to check
//! that a copy holds every hold, every stamp's last hold and every payment record as the
//! source stores them. Each page is one statement over the table's primary key.

use tokio_postgres::Row;
use uuid::Uuid;

use super::tx::holds::{hold_from_row, HOLD_COLUMNS};
use super::{payments, PgStore};
use crate::domain::{Hold, Payment};
use crate::store::StoreError;

impl PgStore {
    /// Up to `limit` rows of `table`, `columns` selected, in the order of its uuid `key` (byte
    /// order, as sled's keys), after `after` when given.
    fn rows_after(
        &self,
        columns: &str,
        table: &str,
        key: &str,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Row>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match after {
            Some(after) => self.query(
                &format!("SELECT {columns} FROM {table} WHERE {key} > $1 ORDER BY {key} LIMIT $2"),
                &[&after, &limit],
            ),
            None => self.query(
                &format!("SELECT {columns} FROM {table} ORDER BY {key} LIMIT $1"),
                &[&limit],
            ),
        }
    }

    /// Holds in hold id order, after `after`, at most `limit`.
    pub fn holds_after(&self, after: Option<Uuid>, limit: u64) -> Result<Vec<Hold>, StoreError> {
        self.rows_after(HOLD_COLUMNS, "holds h", "h.hold_id", after, limit)?
            .iter()
            .map(|row| hold_from_row(row, 0))
            .collect()
    }

    /// Each stamp's last hold, (stamp id, hold id), in stamp id order, after `after`, at most
    /// `limit`.
    pub fn stamp_holds_after(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        Ok(self
            .rows_after("stamp_id, hold_id", "hold_stamps", "stamp_id", after, limit)?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    /// Payment records in payment id order, after `after`, at most `limit`.
    pub fn payments_after(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Payment>, StoreError> {
        self.rows_after(payments::COLUMNS, "payments", "payment_id", after, limit)?
            .iter()
            .map(payments::from_row)
            .collect()
    }
}
