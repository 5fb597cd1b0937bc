//! The payments' records in PostgreSQL: the `payments` table (schema migrations 4 and 5),
//! outside the ledger's batches. Each call is one statement on a connection of the reads'
//! pool; an update is `UPDATE … WHERE version = $read`, so of several servers that read one
//! version, one writes and the others are told to read again.

use tokio_postgres::Row;
use uuid::Uuid;

use super::PgStore;
use crate::domain::{MoveKind, Payment, PaymentMove, PaymentStatus};
use crate::store::{PaymentOrder, Payments, StoreError};
use crate::time::Timestamp;

pub(super) const COLUMNS: &str =
    "payment_id, account_id, provider, amount, currency, status, reference, \
    pay_url, expires_at, created_at, updated_at, credited_ledger_index, charge_ref, \
    refund_seen, refunded, disputed, reinstated, move_kind, move_reference, move_amount, \
    move_refund_seen, last_checked_at, version, created_micros";

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        tree: "payments",
        detail,
    }
}

/// A `bigint` column back to the `u64` it was written from.
fn unsigned(row: &Row, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.get(column);
    u64::try_from(value).map_err(|_| corrupt(format!("{column} {value}")))
}

fn signed(value: u64) -> i64 {
    // Every u64 kept here is an amount bounded by the configuration or a ledger index: far
    // below 2^63. The same 64 bits are kept either way (see `schema`).
    value as i64
}

pub(super) fn from_row(row: &Row) -> Result<Payment, StoreError> {
    let status: String = row.get("status");
    let status =
        PaymentStatus::parse(&status).ok_or_else(|| corrupt(format!("status {status:?}")))?;
    let move_kind: Option<String> = row.get("move_kind");
    let pending_move = match move_kind {
        Some(kind) => Some(PaymentMove {
            kind: MoveKind::parse(&kind).ok_or_else(|| corrupt(format!("move {kind:?}")))?,
            reference: row
                .get::<_, Option<String>>("move_reference")
                .ok_or_else(|| corrupt("move without reference".into()))?,
            amount: row.get::<_, Option<i64>>("move_amount").unwrap_or(0) as u64,
            refund_seen: row.get::<_, Option<i64>>("move_refund_seen").unwrap_or(0) as u64,
        }),
        None => None,
    };
    Ok(Payment {
        payment_id: row.get("payment_id"),
        account_id: row.get("account_id"),
        provider: row.get("provider"),
        amount: unsigned(row, "amount")?,
        currency: row.get("currency"),
        status,
        reference: row.get("reference"),
        pay_url: row.get("pay_url"),
        expires_at: Timestamp::from_unix(row.get("expires_at")),
        created_at: Timestamp::from_unix(row.get("created_at")),
        created_micros: u32::try_from(row.get::<_, i32>("created_micros"))
            .map_err(|_| corrupt("created_micros below 0".into()))?,
        updated_at: Timestamp::from_unix(row.get("updated_at")),
        credited_ledger_index: row
            .get::<_, Option<i64>>("credited_ledger_index")
            .map(|i| i as u64),
        charge_ref: row.get("charge_ref"),
        refund_seen: unsigned(row, "refund_seen")?,
        refunded: unsigned(row, "refunded")?,
        disputed: unsigned(row, "disputed")?,
        reinstated: unsigned(row, "reinstated")?,
        pending_move,
        last_checked_at: row
            .get::<_, Option<i64>>("last_checked_at")
            .map(Timestamp::from_unix),
        version: unsigned(row, "version")?,
    })
}

fn rows(found: Vec<Row>) -> Result<Vec<Payment>, StoreError> {
    found.iter().map(from_row).collect()
}

impl Payments for PgStore {
    fn insert_payment(&self, p: &Payment) -> Result<bool, StoreError> {
        let m = p.pending_move.as_ref();
        let inserted = self.query(
            &format!(
                "INSERT INTO payments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24) \
                 ON CONFLICT DO NOTHING RETURNING 1"
            ),
            &[
                &p.payment_id,
                &p.account_id,
                &p.provider,
                &signed(p.amount),
                &p.currency,
                &p.status.as_str(),
                &p.reference,
                &p.pay_url,
                &p.expires_at.unix(),
                &p.created_at.unix(),
                &p.updated_at.unix(),
                &p.credited_ledger_index.map(signed),
                &p.charge_ref,
                &signed(p.refund_seen),
                &signed(p.refunded),
                &signed(p.disputed),
                &signed(p.reinstated),
                &m.map(|m| m.kind.as_str()),
                &m.map(|m| m.reference.as_str()),
                &m.map(|m| signed(m.amount)),
                &m.map(|m| signed(m.refund_seen)),
                &p.last_checked_at.map(Timestamp::unix),
                &signed(p.version),
                &i32::try_from(p.created_micros).unwrap_or(i32::MAX),
            ],
        )?;
        Ok(!inserted.is_empty())
    }

    fn payment(&self, payment_id: Uuid) -> Result<Option<Payment>, StoreError> {
        self.query_opt(
            &format!("SELECT {COLUMNS} FROM payments WHERE payment_id = $1"),
            &[&payment_id],
        )?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> Result<Option<Payment>, StoreError> {
        self.query_opt(
            &format!("SELECT {COLUMNS} FROM payments WHERE provider = $1 AND reference = $2"),
            &[&provider, &reference],
        )?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    fn update_payment(&self, p: &Payment) -> Result<bool, StoreError> {
        let m = p.pending_move.as_ref();
        let updated = self.query(
            "UPDATE payments SET status = $3, pay_url = $4, expires_at = $5, updated_at = $6, \
             credited_ledger_index = $7, charge_ref = $8, refund_seen = $9, refunded = $10, \
             disputed = $11, reinstated = $12, move_kind = $13, move_reference = $14, \
             move_amount = $15, move_refund_seen = $16, last_checked_at = $17, \
             version = version + 1 \
             WHERE payment_id = $1 AND version = $2 RETURNING 1",
            &[
                &p.payment_id,
                &signed(p.version),
                &p.status.as_str(),
                &p.pay_url,
                &p.expires_at.unix(),
                &p.updated_at.unix(),
                &p.credited_ledger_index.map(signed),
                &p.charge_ref,
                &signed(p.refund_seen),
                &signed(p.refunded),
                &signed(p.disputed),
                &signed(p.reinstated),
                &m.map(|m| m.kind.as_str()),
                &m.map(|m| m.reference.as_str()),
                &m.map(|m| signed(m.amount)),
                &m.map(|m| signed(m.refund_seen)),
                &p.last_checked_at.map(Timestamp::unix),
            ],
        )?;
        Ok(!updated.is_empty())
    }

    fn account_payments(
        &self,
        account_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Option<Vec<Payment>>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let Some(before) = before else {
            let found = self.query(
                &format!(
                    "SELECT {COLUMNS} FROM payments WHERE account_id = $1 \
                     ORDER BY created_at DESC, created_micros DESC, payment_id DESC LIMIT $2"
                ),
                &[&account_id, &limit],
            )?;
            return rows(found).map(Some);
        };
        let Some(cursor) = self.payment(before)? else {
            return Ok(None);
        };
        if cursor.account_id != account_id {
            return Ok(None);
        }
        let found = self.query(
            &format!(
                "SELECT {COLUMNS} FROM payments WHERE account_id = $1 \
                 AND (created_at, created_micros, payment_id) < ($2, $3, $4) \
                 ORDER BY created_at DESC, created_micros DESC, payment_id DESC LIMIT $5"
            ),
            &[
                &account_id,
                &cursor.created_at.unix(),
                &i32::try_from(cursor.created_micros).unwrap_or(i32::MAX),
                &cursor.payment_id,
                &limit,
            ],
        )?;
        rows(found).map(Some)
    }

    fn payments_with_status_before(
        &self,
        status: PaymentStatus,
        before: Option<PaymentOrder>,
        limit: usize,
    ) -> Result<Vec<Payment>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Both over the index `payments_by_status` (status, created_at DESC, created_micros
        // DESC, payment_id DESC).
        let found = match before {
            None => self.query(
                &format!(
                    "SELECT {COLUMNS} FROM payments WHERE status = $1 \
                     ORDER BY created_at DESC, created_micros DESC, payment_id DESC LIMIT $2"
                ),
                &[&status.as_str(), &limit],
            )?,
            Some((created_at, micros, payment_id)) => self.query(
                &format!(
                    "SELECT {COLUMNS} FROM payments WHERE status = $1 \
                     AND (created_at, created_micros, payment_id) < ($2, $3, $4) \
                     ORDER BY created_at DESC, created_micros DESC, payment_id DESC LIMIT $5"
                ),
                &[
                    &status.as_str(),
                    &created_at.unix(),
                    &i32::try_from(micros).unwrap_or(i32::MAX),
                    &payment_id,
                    &limit,
                ],
            )?,
        };
        rows(found)
    }
}
