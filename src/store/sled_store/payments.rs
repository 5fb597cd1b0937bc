//! The payments' records in sled: two trees outside the ledger's batches.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `payments` | payment id (16) | `PaymentRecord` JSON |
//! | `payment_index` | `a` + account (16) + created_at (8) + created_micros (4, unless 0) + id (16); `s` + status (1) + created_at (8) + created_micros (4, unless 0) + id (16); `r` + provider + 0x00 + reference | empty; empty; payment id (16) |
//!
//! Every insert and update is one sled transaction over both trees, so a record and its index
//! keys change together, made durable (sled's flush and `fdatasync`, as a batch's) before it
//! returns: a payment answered to its member survives a crash; an update is written only over the version it read (compare and
//! set), which sled's transaction checks under its own conflict detection. Times in keys are
//! Unix seconds with the sign bit flipped, big-endian, then the microseconds past that second,
//! big-endian, so key order is time order. Records written before `created_micros` was kept
//! have none (0), and their keys no microseconds: such keys are never rewritten in another
//! layout, because every key is made from the record by the same functions.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional as _;
use uuid::Uuid;

use super::layout::{corrupt, read_uuid, storage};
use super::{sync_db, SledStore};
use crate::domain::{MoveKind, Payment, PaymentMove, PaymentStatus};
use crate::store::{Exported, PaymentOrder, Payments, StoreError};
use crate::time::Timestamp;

const TREE: &str = "payments";

/// The stored form of a [`Payment`]: its own field names, so a renamed domain field never
/// changes stored bytes.
#[derive(Serialize, Deserialize)]
struct PaymentRecord {
    account_id: Uuid,
    provider: String,
    amount: u64,
    currency: String,
    status: String,
    reference: String,
    pay_url: String,
    expires_at: i64,
    created_at: i64,
    #[serde(default)]
    created_micros: u32,
    updated_at: i64,
    credited_ledger_index: Option<u64>,
    charge_ref: Option<String>,
    refund_seen: u64,
    refunded: u64,
    disputed: u64,
    reinstated: u64,
    pending_move: Option<MoveRecord>,
    last_checked_at: Option<i64>,
    version: u64,
}

#[derive(Serialize, Deserialize)]
struct MoveRecord {
    kind: String,
    reference: String,
    amount: u64,
    refund_seen: u64,
}

fn encode(p: &Payment) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&PaymentRecord {
        account_id: p.account_id,
        provider: p.provider.clone(),
        amount: p.amount,
        currency: p.currency.clone(),
        status: p.status.as_str().to_string(),
        reference: p.reference.clone(),
        pay_url: p.pay_url.clone(),
        expires_at: p.expires_at.unix(),
        created_at: p.created_at.unix(),
        created_micros: p.created_micros,
        updated_at: p.updated_at.unix(),
        credited_ledger_index: p.credited_ledger_index,
        charge_ref: p.charge_ref.clone(),
        refund_seen: p.refund_seen,
        refunded: p.refunded,
        disputed: p.disputed,
        reinstated: p.reinstated,
        pending_move: p.pending_move.as_ref().map(|m| MoveRecord {
            kind: m.kind.as_str().to_string(),
            reference: m.reference.clone(),
            amount: m.amount,
            refund_seen: m.refund_seen,
        }),
        last_checked_at: p.last_checked_at.map(Timestamp::unix),
        version: p.version,
    })
    .map_err(storage)
}

fn decode(payment_id: Uuid, bytes: &[u8]) -> Result<Payment, StoreError> {
    let r: PaymentRecord = serde_json::from_slice(bytes).map_err(|e| corrupt(TREE, e))?;
    let status = PaymentStatus::parse(&r.status)
        .ok_or_else(|| corrupt(TREE, format!("status {:?}", r.status)))?;
    let pending_move = match r.pending_move {
        Some(m) => Some(PaymentMove {
            kind: MoveKind::parse(&m.kind)
                .ok_or_else(|| corrupt(TREE, format!("move {:?}", m.kind)))?,
            reference: m.reference,
            amount: m.amount,
            refund_seen: m.refund_seen,
        }),
        None => None,
    };
    Ok(Payment {
        payment_id,
        account_id: r.account_id,
        provider: r.provider,
        amount: r.amount,
        currency: r.currency,
        status,
        reference: r.reference,
        pay_url: r.pay_url,
        expires_at: Timestamp::from_unix(r.expires_at),
        created_at: Timestamp::from_unix(r.created_at),
        created_micros: r.created_micros,
        updated_at: Timestamp::from_unix(r.updated_at),
        credited_ledger_index: r.credited_ledger_index,
        charge_ref: r.charge_ref,
        refund_seen: r.refund_seen,
        refunded: r.refunded,
        disputed: r.disputed,
        reinstated: r.reinstated,
        pending_move,
        last_checked_at: r.last_checked_at.map(Timestamp::from_unix),
        version: r.version,
    })
}

/// A time in a key: big-endian with the sign bit flipped, so byte order is time order.
fn time_key(time: Timestamp) -> [u8; 8] {
    ((time.unix() as u64) ^ (1 << 63)).to_be_bytes()
}

fn status_byte(status: PaymentStatus) -> u8 {
    match status {
        PaymentStatus::Pending => 0,
        PaymentStatus::Paid => 1,
        PaymentStatus::Expired => 2,
        PaymentStatus::Failed => 3,
        PaymentStatus::Refunded => 4,
        PaymentStatus::Disputed => 5,
    }
}

/// A payment's place in an index: its creation time (the microseconds only when known), then
/// its id.
fn order_key(key: &mut Vec<u8>, (created_at, micros, payment_id): PaymentOrder) {
    key.extend_from_slice(&time_key(created_at));
    if micros != 0 {
        key.extend_from_slice(&micros.to_be_bytes());
    }
    key.extend_from_slice(payment_id.as_bytes());
}

fn account_key(p: &Payment) -> Vec<u8> {
    let mut key = Vec::with_capacity(45);
    key.push(b'a');
    key.extend_from_slice(p.account_id.as_bytes());
    order_key(&mut key, p.order());
    key
}

fn status_key(status: PaymentStatus, order: PaymentOrder) -> Vec<u8> {
    let mut key = Vec::with_capacity(30);
    key.push(b's');
    key.push(status_byte(status));
    order_key(&mut key, order);
    key
}

fn reference_key(provider: &str, reference: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + provider.len() + reference.len());
    key.push(b'r');
    key.extend_from_slice(provider.as_bytes());
    key.push(0);
    key.extend_from_slice(reference.as_bytes());
    key
}

/// The payment id at the end of an `a` or `s` index key.
fn id_of_index_key(key: &[u8]) -> Result<Uuid, StoreError> {
    let start = key
        .len()
        .checked_sub(16)
        .ok_or_else(|| corrupt("payment_index", "short key"))?;
    read_uuid(&key[start..], "payment_index")
}

type TxError = ConflictableTransactionError<StoreError>;

fn abort(e: impl std::fmt::Display) -> TxError {
    ConflictableTransactionError::Abort(storage(e))
}

fn finish<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    match result {
        Ok(value) => Ok(value),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(storage(e)),
    }
}

impl SledStore {
    fn read_payments(&self, ids: impl Iterator<Item = Uuid>) -> Result<Vec<Payment>, StoreError> {
        let mut found = Vec::new();
        for id in ids {
            if let Some(bytes) = self.payments.get(id.as_bytes()).map_err(storage)? {
                found.push(decode(id, &bytes)?);
            }
        }
        Ok(found)
    }

    /// Up to `limit` payment ids of the index keys under `prefix` below `below` (all when
    /// `None`), from the last.
    fn index_ids_descending(
        &self,
        prefix: &[u8],
        below: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut ids = Vec::new();
        let iter = match below {
            Some(end) => self.payment_index.range(prefix.to_vec()..end.to_vec()),
            None => self.payment_index.scan_prefix(prefix),
        };
        for item in iter.rev() {
            if ids.len() >= limit {
                break;
            }
            let (key, _) = item.map_err(storage)?;
            if !key.starts_with(prefix) {
                break;
            }
            ids.push(id_of_index_key(&key)?);
        }
        Ok(ids)
    }
}

fn put_index(index: &TransactionalTree, p: &Payment) -> Result<(), TxError> {
    index.insert(account_key(p), &[][..]).map_err(abort)?;
    index
        .insert(status_key(p.status, p.order()), &[][..])
        .map_err(abort)?;
    Ok(())
}

impl SledStore {
    /// Every payment record, in payment id order, as stored (an export).
    pub(super) fn export_payments(
        &self,
        sink: &mut dyn FnMut(Exported) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for item in self.payments.iter() {
            let (key, value) = item.map_err(storage)?;
            sink(Exported::Payment(decode(read_uuid(&key, TREE)?, &value)?))?;
        }
        Ok(())
    }

    /// Makes a payment's write durable when there was one.
    fn durable_if(&self, written: bool) -> Result<bool, StoreError> {
        if written {
            sync_db(&self.db, &self.db_file)?;
        }
        Ok(written)
    }
}

impl Payments for SledStore {
    fn insert_payment(&self, payment: &Payment) -> Result<bool, StoreError> {
        let bytes = encode(payment)?;
        let by_reference = reference_key(&payment.provider, &payment.reference);
        let inserted = finish((&self.payments, &self.payment_index).transaction(
            |(payments, index)| {
                if payments.get(payment.payment_id.as_bytes())?.is_some()
                    || index.get(&by_reference)?.is_some()
                {
                    return Ok(false);
                }
                payments.insert(payment.payment_id.as_bytes(), bytes.clone())?;
                index.insert(by_reference.clone(), payment.payment_id.as_bytes())?;
                put_index(index, payment)?;
                Ok(true)
            },
        ))?;
        self.durable_if(inserted)
    }

    fn payment(&self, payment_id: Uuid) -> Result<Option<Payment>, StoreError> {
        match self.payments.get(payment_id.as_bytes()).map_err(storage)? {
            Some(bytes) => decode(payment_id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> Result<Option<Payment>, StoreError> {
        match self
            .payment_index
            .get(reference_key(provider, reference))
            .map_err(storage)?
        {
            Some(id) => self.payment(read_uuid(&id, "payment_index")?),
            None => Ok(None),
        }
    }

    fn update_payment(&self, payment: &Payment) -> Result<bool, StoreError> {
        let written = Payment {
            version: payment.version + 1,
            ..payment.clone()
        };
        let bytes = encode(&written)?;
        let updated = finish((&self.payments, &self.payment_index).transaction(
            |(payments, index)| {
                let Some(stored) = payments.get(payment.payment_id.as_bytes())? else {
                    return Ok(false);
                };
                let stored = decode(payment.payment_id, &stored).map_err(TxError::Abort)?;
                if stored.version != payment.version {
                    return Ok(false);
                }
                if stored.status != written.status {
                    index.remove(status_key(stored.status, stored.order()))?;
                }
                payments.insert(payment.payment_id.as_bytes(), bytes.clone())?;
                put_index(index, &written)?;
                Ok(true)
            },
        ))?;
        self.durable_if(updated)
    }

    fn account_payments(
        &self,
        account_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Option<Vec<Payment>>, StoreError> {
        let mut prefix = vec![b'a'];
        prefix.extend_from_slice(account_id.as_bytes());
        let below = match before {
            Some(id) => match self.payment(id)? {
                Some(p) if p.account_id == account_id => Some(account_key(&p)),
                _ => return Ok(None),
            },
            None => None,
        };
        let ids = self.index_ids_descending(&prefix, below.as_deref(), limit)?;
        self.read_payments(ids.into_iter()).map(Some)
    }

    fn payments_with_status_before(
        &self,
        status: PaymentStatus,
        before: Option<PaymentOrder>,
        limit: usize,
    ) -> Result<Vec<Payment>, StoreError> {
        let prefix = [b's', status_byte(status)];
        let below = before.map(|order| status_key(status, order));
        let ids = self.index_ids_descending(&prefix, below.as_deref(), limit)?;
        self.read_payments(ids.into_iter())
    }
}
