//! One column table per record type a batch writes: the table, each column's name and SQL
//! type and how to take its value from a record, and what a conflict does. Every batch insert
//! is generated from these ([`Insert::sql`]): one multi-row statement over `UNNEST` arrays, or
//! one row per statement for a record whose columns cannot be arrays of one length (a
//! purchase's stamp ids).

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use uuid::Uuid;

use super::super::to_i64;
use crate::domain::{
    Account, CreditRecord, Hold, MoneyKind, Payment, Post, PurchaseRecord, Sale, SpentRecord, Voter,
};
use crate::keys::PublishedKey;

/// One value of a column, as the driver sends it. Its SQL type is the statement's (every
/// parameter is cast), so any value is accepted for any type and sent as its own.
#[derive(Debug)]
pub(super) enum Value<'r> {
    Uuid(Uuid),
    I64(i64),
    I32(i32),
    Bool(bool),
    Text(&'r str),
    Bytes(&'r [u8]),
    Uuids(&'r [Uuid]),
    /// An array made for the statement (a hold's stamp ids and issue times).
    OwnedUuids(Vec<Uuid>),
    I64s(Vec<i64>),
    Null,
}

impl Value<'_> {
    /// A domain `u64` as the `bigint` it is stored as ([`to_i64`]).
    fn u64(value: u64) -> Value<'static> {
        Value::I64(to_i64(value))
    }

    fn opt_u64(value: Option<u64>) -> Value<'static> {
        value.map_or(Value::Null, Value::u64)
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Value::Uuid(v) => v.to_sql(ty, out),
            Value::I64(v) => v.to_sql(ty, out),
            Value::I32(v) => v.to_sql(ty, out),
            Value::Bool(v) => v.to_sql(ty, out),
            Value::Text(v) => v.to_sql(ty, out),
            Value::Bytes(v) => v.to_sql(ty, out),
            Value::Uuids(v) => v.to_sql(ty, out),
            Value::OwnedUuids(v) => v.to_sql(ty, out),
            Value::I64s(v) => v.to_sql(ty, out),
            Value::Null => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A record type a batch inserts, described once.
pub(super) trait Insert {
    const TABLE: &'static str;
    /// Each column's name and SQL type, in the order of [`Insert::values`].
    const COLUMNS: &'static [(&'static str, &'static str)];
    /// What follows the insert (an `ON CONFLICT` clause), or nothing.
    const CONFLICT: &'static str = "";
    /// Whether each record is a statement of its own (its columns are not arrays of one
    /// length); otherwise all records go in one statement of arrays.
    const ONE_ROW: bool = false;
    fn values(&self) -> Vec<Value<'_>>;

    /// The insert of [`Insert::COLUMNS`]: from `UNNEST` of one array per column, or of one
    /// row's values.
    fn sql() -> String {
        let names: Vec<&str> = Self::COLUMNS.iter().map(|(name, _)| *name).collect();
        let params: Vec<String> = (1..=Self::COLUMNS.len())
            .zip(Self::COLUMNS)
            .map(|(i, (_, ty))| {
                if Self::ONE_ROW {
                    format!("${i}")
                } else {
                    format!("${i}::{ty}[]")
                }
            })
            .collect();
        let source = if Self::ONE_ROW {
            format!("VALUES ({})", params.join(", "))
        } else {
            format!("SELECT * FROM UNNEST({})", params.join(", "))
        };
        format!(
            "INSERT INTO {} ({}) {source} {}",
            Self::TABLE,
            names.join(", "),
            Self::CONFLICT
        )
        .trim_end()
        .to_string()
    }
}

impl Insert for (u64, Vec<u8>) {
    const TABLE: &'static str = "entries";
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("idx", "bigint"), ("body", "bytea")];
    fn values(&self) -> Vec<Value<'_>> {
        vec![Value::u64(self.0), Value::Bytes(&self.1)]
    }
}

impl Insert for (u64, [u8; 32]) {
    const TABLE: &'static str = "hashes";
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("idx", "bigint"), ("hash", "bytea")];
    fn values(&self) -> Vec<Value<'_>> {
        vec![Value::u64(self.0), Value::Bytes(&self.1)]
    }
}

impl Insert for PublishedKey {
    const TABLE: &'static str = "published_keys";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("kid", "bytea"),
        ("public_key", "text"),
        ("status", "text"),
        ("published_at", "bigint"),
    ];
    const CONFLICT: &'static str = "ON CONFLICT (kid) DO UPDATE SET public_key = \
        EXCLUDED.public_key, status = EXCLUDED.status, published_at = EXCLUDED.published_at";
    fn values(&self) -> Vec<Value<'_>> {
        vec![
            Value::Bytes(&self.kid.0),
            self.public_key.as_deref().map_or(Value::Null, Value::Text),
            Value::Text(self.status.as_str()),
            Value::I64(self.published_at.unix()),
        ]
    }
}

impl Insert for Account {
    const TABLE: &'static str = "accounts";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("account_id", "uuid"),
        ("name", "text"),
        ("balance", "bigint"),
        ("stamps_purchased", "bigint"),
        ("stamps_spent", "bigint"),
        ("created_at", "bigint"),
        ("refunds_total", "bigint"),
        ("debt", "bigint"),
    ];
    const CONFLICT: &'static str = "ON CONFLICT (account_id) DO UPDATE SET name = EXCLUDED.name, \
        balance = EXCLUDED.balance, stamps_purchased = EXCLUDED.stamps_purchased, \
        stamps_spent = EXCLUDED.stamps_spent, refunds_total = EXCLUDED.refunds_total, \
        debt = EXCLUDED.debt";
    fn values(&self) -> Vec<Value<'_>> {
        vec![
            Value::Uuid(self.account_id),
            self.name.as_deref().map_or(Value::Null, Value::Text),
            Value::u64(self.balance),
            Value::u64(self.stamps_purchased),
            Value::u64(self.stamps_spent),
            Value::I64(self.created_at.unix()),
            Value::u64(self.refunds_total),
            Value::u64(self.debt),
        ]
    }
}

impl Insert for ([u8; 32], Uuid) {
    const TABLE: &'static str = "api_keys";
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("api_key_sha256", "bytea"), ("account_id", "uuid")];
    fn values(&self) -> Vec<Value<'_>> {
        vec![Value::Bytes(&self.0), Value::Uuid(self.1)]
    }
}

impl Insert for (String, Uuid) {
    const TABLE: &'static str = "names";
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("name_key", "text"), ("account_id", "uuid")];
    fn values(&self) -> Vec<Value<'_>> {
        vec![Value::Text(&self.0), Value::Uuid(self.1)]
    }
}

impl Insert for ([u8; 32], CreditRecord) {
    const TABLE: &'static str = "credits";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("reference_sha256", "bytea"),
        ("account_id", "uuid"),
        ("amount", "bigint"),
        ("balance", "bigint"),
        ("ledger_index", "bigint"),
        ("kind", "text"),
        ("revoke_index", "bigint"),
        ("revoked_stamps", "bigint"),
        ("revoked_amount", "bigint"),
    ];
    fn values(&self) -> Vec<Value<'_>> {
        let (reference, c) = self;
        let (kind, revoked) = match c.kind {
            MoneyKind::Credit => ("credit", None),
            MoneyKind::Debit { revoked } => ("debit", revoked),
        };
        vec![
            Value::Bytes(reference),
            Value::Uuid(c.account_id),
            Value::u64(c.amount),
            Value::I64(c.balance),
            Value::u64(c.ledger_index),
            Value::Text(kind),
            Value::opt_u64(revoked.map(|r| r.ledger_index)),
            Value::opt_u64(revoked.map(|r| r.stamps)),
            Value::opt_u64(revoked.map(|r| r.amount)),
        ]
    }
}

/// A purchase in its account's index (`account_purchases`).
#[derive(Clone, Debug)]
pub(in crate::store::postgres) struct IndexedPurchase(
    pub(in crate::store::postgres) PurchaseRecord,
);

impl Insert for IndexedPurchase {
    const TABLE: &'static str = "account_purchases";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("account_id", "uuid"),
        ("ledger_index", "bigint"),
        ("purchase_id", "uuid"),
        ("count", "integer"),
        ("unit_price", "bigint"),
        ("total", "bigint"),
        ("balance", "bigint"),
        ("kid", "bytea"),
        ("issued_at", "bigint"),
        ("expires_at", "bigint"),
        ("stamp_ids", "uuid[]"),
    ];
    // Its stamp id lists differ in length, which one multi-row array statement cannot carry.
    const ONE_ROW: bool = true;
    fn values(&self) -> Vec<Value<'_>> {
        let r = &self.0;
        vec![
            Value::Uuid(r.account_id),
            Value::u64(r.ledger_index),
            Value::Uuid(r.purchase_id),
            Value::I32(i32::try_from(r.count).unwrap_or(i32::MAX)),
            Value::u64(r.unit_price),
            Value::u64(r.total),
            Value::u64(r.balance),
            Value::Bytes(&r.kid.0),
            Value::I64(r.issued_at.unix()),
            Value::I64(r.expires_at.unix()),
            Value::Uuids(&r.stamp_ids),
        ]
    }
}

impl Insert for ([u8; 32], PurchaseRecord) {
    const TABLE: &'static str = "purchases";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("account_id", "uuid"),
        ("key_sha256", "bytea"),
        ("purchase_id", "uuid"),
        ("count", "integer"),
        ("unit_price", "bigint"),
        ("total", "bigint"),
        ("balance", "bigint"),
        ("ledger_index", "bigint"),
        ("kid", "bytea"),
        ("issued_at", "bigint"),
        ("expires_at", "bigint"),
        ("stamp_ids", "uuid[]"),
    ];
    // Its stamp id lists differ in length, which one multi-row array statement cannot carry.
    const ONE_ROW: bool = true;
    fn values(&self) -> Vec<Value<'_>> {
        let (key, r) = self;
        vec![
            Value::Uuid(r.account_id),
            Value::Bytes(key),
            Value::Uuid(r.purchase_id),
            Value::I32(i32::try_from(r.count).unwrap_or(i32::MAX)),
            Value::u64(r.unit_price),
            Value::u64(r.total),
            Value::u64(r.balance),
            Value::u64(r.ledger_index),
            Value::Bytes(&r.kid.0),
            Value::I64(r.issued_at.unix()),
            Value::I64(r.expires_at.unix()),
            Value::Uuids(&r.stamp_ids),
        ]
    }
}

impl Insert for (Uuid, Sale) {
    const TABLE: &'static str = "stamps";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("stamp_id", "uuid"),
        ("buyer", "uuid"),
        ("kid", "bytea"),
        ("issued_at", "bigint"),
        ("expires_at", "bigint"),
        ("unit_price", "bigint"),
    ];
    fn values(&self) -> Vec<Value<'_>> {
        let (id, s) = self;
        vec![
            Value::Uuid(*id),
            Value::Uuid(s.buyer),
            Value::Bytes(&s.kid.0),
            Value::I64(s.issued_at.unix()),
            Value::I64(s.expires_at.unix()),
            Value::opt_u64(s.unit_price),
        ]
    }
}

/// A spend. No `ON CONFLICT`: the key decides a second spend of a stamp.
impl Insert for (Uuid, SpentRecord) {
    const TABLE: &'static str = "spends";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("stamp_id", "uuid"),
        ("spent_at", "bigint"),
        ("action", "text"),
        ("spent_for", "text"),
        ("ledger_index", "bigint"),
    ];
    fn values(&self) -> Vec<Value<'_>> {
        let (id, s) = self;
        vec![
            Value::Uuid(*id),
            Value::I64(s.spent_at.unix()),
            Value::Text(s.action.as_str()),
            Value::Text(&s.spent_for),
            Value::u64(s.ledger_index),
        ]
    }
}

impl Insert for Post {
    const TABLE: &'static str = "posts";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("post_id", "uuid"),
        ("seq", "bigint"),
        ("author", "text"),
        ("body", "text"),
        ("created_at", "bigint"),
        ("score", "bigint"),
        ("ledger_index", "bigint"),
        ("verified", "boolean"),
        ("payer", "uuid"),
        ("cost", "bigint"),
        ("votes_up", "bigint"),
        ("votes_down", "bigint"),
        ("voters", "bigint"),
        ("up_voters", "bigint"),
        ("base_postage", "bigint"),
        ("refunded", "boolean"),
    ];
    const CONFLICT: &'static str = "ON CONFLICT (post_id) DO UPDATE SET score = EXCLUDED.score, \
        votes_up = EXCLUDED.votes_up, votes_down = EXCLUDED.votes_down, \
        voters = EXCLUDED.voters, up_voters = EXCLUDED.up_voters, \
        base_postage = EXCLUDED.base_postage, refunded = EXCLUDED.refunded";
    fn values(&self) -> Vec<Value<'_>> {
        vec![
            Value::Uuid(self.post_id),
            Value::u64(self.seq),
            Value::Text(&self.author),
            Value::Text(&self.body),
            Value::I64(self.created_at.unix()),
            Value::I64(self.score),
            Value::u64(self.ledger_index),
            Value::Bool(self.verified),
            self.payer.map_or(Value::Null, Value::Uuid),
            Value::u64(self.cost),
            Value::u64(self.votes_up),
            Value::u64(self.votes_down),
            Value::u64(self.voters),
            Value::u64(self.up_voters),
            Value::opt_u64(self.base_postage),
            Value::Bool(self.refunded),
        ]
    }
}

impl Insert for ((Uuid, Uuid), Voter) {
    const TABLE: &'static str = "voters";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("post_id", "uuid"),
        ("payer", "uuid"),
        ("votes", "bigint"),
        ("up_voted", "boolean"),
    ];
    const CONFLICT: &'static str = "ON CONFLICT (post_id, payer) DO UPDATE SET \
        votes = EXCLUDED.votes, up_voted = EXCLUDED.up_voted";
    fn values(&self) -> Vec<Value<'_>> {
        let ((post_id, payer), v) = self;
        vec![
            Value::Uuid(*post_id),
            Value::Uuid(*payer),
            Value::u64(v.votes),
            Value::Bool(v.up_voted),
        ]
    }
}

/// One post time of a payer (flood pricing), with its post when known.
impl Insert for (Uuid, i64, Option<Uuid>) {
    const TABLE: &'static str = "payer_posts";
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("payer", "uuid"), ("time", "bigint"), ("post_id", "uuid")];
    fn values(&self) -> Vec<Value<'_>> {
        vec![
            Value::Uuid(self.0),
            Value::I64(self.1),
            self.2.map_or(Value::Null, Value::Uuid),
        ]
    }
}

/// A hold as stored (only an import inserts it this way; a batch writes its holds at once,
/// `holds.rs`).
impl Insert for Hold {
    const TABLE: &'static str = "holds";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("hold_id", "uuid"),
        ("stamp_ids", "uuid[]"),
        ("issued_ats", "bigint[]"),
        ("context", "text"),
        ("created_at", "bigint"),
        ("expires_at", "bigint"),
        ("state", "text"),
        ("ledger_index", "bigint"),
        ("spent_at", "bigint"),
    ];
    // Its stamp lists differ in length, which one multi-row array statement cannot carry.
    const ONE_ROW: bool = true;
    fn values(&self) -> Vec<Value<'_>> {
        let (state, ledger_index, spent_at) = super::holds::state_columns(self.state);
        vec![
            Value::Uuid(self.hold_id),
            Value::OwnedUuids(self.stamps.iter().map(|s| s.stamp_id).collect()),
            Value::I64s(self.stamps.iter().map(|s| s.issued_at.unix()).collect()),
            Value::Text(&self.context),
            Value::I64(self.created_at.unix()),
            Value::I64(self.expires_at.unix()),
            Value::Text(state),
            ledger_index.map_or(Value::Null, Value::I64),
            spent_at.map_or(Value::Null, Value::I64),
        ]
    }
}

/// A stamp's last hold (`hold_stamps`), as an import carries it.
#[derive(Clone, Copy, Debug)]
pub(in crate::store::postgres) struct StampHold {
    pub(in crate::store::postgres) stamp_id: Uuid,
    pub(in crate::store::postgres) hold_id: Uuid,
}

impl Insert for StampHold {
    const TABLE: &'static str = "hold_stamps";
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("stamp_id", "uuid"), ("hold_id", "uuid")];
    fn values(&self) -> Vec<Value<'_>> {
        vec![Value::Uuid(self.stamp_id), Value::Uuid(self.hold_id)]
    }
}

/// A payment's record as stored (only an import inserts it this way; the payments' own calls
/// are in `postgres/payments.rs`).
impl Insert for Payment {
    const TABLE: &'static str = "payments";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("payment_id", "uuid"),
        ("account_id", "uuid"),
        ("provider", "text"),
        ("amount", "bigint"),
        ("currency", "text"),
        ("status", "text"),
        ("reference", "text"),
        ("pay_url", "text"),
        ("expires_at", "bigint"),
        ("created_at", "bigint"),
        ("updated_at", "bigint"),
        ("credited_ledger_index", "bigint"),
        ("charge_ref", "text"),
        ("refund_seen", "bigint"),
        ("refunded", "bigint"),
        ("disputed", "bigint"),
        ("reinstated", "bigint"),
        ("move_kind", "text"),
        ("move_reference", "text"),
        ("move_amount", "bigint"),
        ("move_refund_seen", "bigint"),
        ("last_checked_at", "bigint"),
        ("version", "bigint"),
        ("created_micros", "integer"),
    ];
    fn values(&self) -> Vec<Value<'_>> {
        let m = self.pending_move.as_ref();
        vec![
            Value::Uuid(self.payment_id),
            Value::Uuid(self.account_id),
            Value::Text(&self.provider),
            Value::u64(self.amount),
            Value::Text(&self.currency),
            Value::Text(self.status.as_str()),
            Value::Text(&self.reference),
            Value::Text(&self.pay_url),
            Value::I64(self.expires_at.unix()),
            Value::I64(self.created_at.unix()),
            Value::I64(self.updated_at.unix()),
            Value::opt_u64(self.credited_ledger_index),
            self.charge_ref.as_deref().map_or(Value::Null, Value::Text),
            Value::u64(self.refund_seen),
            Value::u64(self.refunded),
            Value::u64(self.disputed),
            Value::u64(self.reinstated),
            m.map_or(Value::Null, |m| Value::Text(m.kind.as_str())),
            m.map_or(Value::Null, |m| Value::Text(&m.reference)),
            Value::opt_u64(m.map(|m| m.amount)),
            Value::opt_u64(m.map(|m| m.refund_seen)),
            self.last_checked_at
                .map_or(Value::Null, |t| Value::I64(t.unix())),
            Value::u64(self.version),
            Value::I32(i32::try_from(self.created_micros).unwrap_or(i32::MAX)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_are_generated_from_the_column_tables() {
        assert_eq!(
            <(u64, [u8; 32])>::sql(),
            "INSERT INTO hashes (idx, hash) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])"
        );
        assert_eq!(
            <((Uuid, Uuid), Voter)>::sql(),
            "INSERT INTO voters (post_id, payer, votes, up_voted) SELECT * FROM \
             UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::boolean[]) ON CONFLICT \
             (post_id, payer) DO UPDATE SET votes = EXCLUDED.votes, up_voted = EXCLUDED.up_voted"
        );
        assert!(<([u8; 32], PurchaseRecord)>::sql()
            .contains("VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"));
    }
}
