//! The payments' records: [`Payments`], the part of a store that keeps them, and the memory
//! backend's implementation.
//!
//! Payments are not ledger entries and take no part in the writer's batches: each call is
//! its own small transaction, made by whichever request or sweep asks. Servers on one
//! database share them, so every change is a compare-and-set on [`Payment::version`]: two
//! servers that read the same version cannot both write over it. What moves money is the
//! ledger's unique reference, never this record; the record says what was done and what is
//! left to do.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{MemoryStore, StoreError};
use crate::domain::{Payment, PaymentStatus};
use crate::time::Timestamp;

/// Most payments one listing returns (a page of the API's lists).
pub const PAYMENTS_LIST_MAX: usize = 1000;

/// Where a payment stands in the newest-first order of the lists ([`Payment::order`]): its
/// creation time, its microseconds within that second, then its id. A cursor of
/// [`Payments::payments_with_status_before`].
pub type PaymentOrder = (Timestamp, u32, Uuid);

/// The payments of a store.
pub trait Payments: Send + Sync {
    /// Inserts a new payment (its `version` as given, 0 for a new one). `false`, and nothing
    /// written, when its id or its provider's `reference` is taken.
    fn insert_payment(&self, payment: &Payment) -> Result<bool, StoreError>;
    /// A payment by id.
    fn payment(&self, payment_id: Uuid) -> Result<Option<Payment>, StoreError>;
    /// A payment by its provider's reference.
    fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> Result<Option<Payment>, StoreError>;
    /// Writes `payment` with its version bumped by one, if the stored version is still
    /// `payment.version` (compare and set). `false`, and nothing written, otherwise (another
    /// update came first: read again and decide again). The id, account, provider and
    /// reference never change.
    fn update_payment(&self, payment: &Payment) -> Result<bool, StoreError>;
    /// An account's payments, newest first (by creation time to the microsecond, then id), older than `before`
    /// when given, at most `limit`. `None` when `before` is no payment of that account.
    fn account_payments(
        &self,
        account_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Option<Vec<Payment>>, StoreError>;
    /// Payments in `status`, newest first (by creation time to the microsecond, then id), after `before` in that
    /// order (strictly older, [`Payment::order`]) when given, at most `limit`: a page of them
    /// all, the next page following the last payment of this one.
    fn payments_with_status_before(
        &self,
        status: PaymentStatus,
        before: Option<PaymentOrder>,
        limit: usize,
    ) -> Result<Vec<Payment>, StoreError>;
    /// Payments in `status`, newest first, at most `limit`.
    fn payments_with_status(
        &self,
        status: PaymentStatus,
        limit: usize,
    ) -> Result<Vec<Payment>, StoreError> {
        self.payments_with_status_before(status, None, limit)
    }
}

/// The memory backend's payments, beside its ledger state.
#[derive(Default)]
pub(super) struct MemoryPayments {
    by_id: BTreeMap<Uuid, Payment>,
}

/// Newest first: creation time (to the microsecond), then id, both descending.
fn newest_first(a: &Payment, b: &Payment) -> std::cmp::Ordering {
    b.order().cmp(&a.order())
}

impl MemoryStore {
    fn payments_state(&self) -> Result<std::sync::MutexGuard<'_, MemoryPayments>, StoreError> {
        self.payments
            .lock()
            .map_err(|_| StoreError::Storage("memory store lock poisoned".into()))
    }
}

impl Payments for MemoryStore {
    fn insert_payment(&self, payment: &Payment) -> Result<bool, StoreError> {
        let mut state = self.payments_state()?;
        let taken = state.by_id.contains_key(&payment.payment_id)
            || state
                .by_id
                .values()
                .any(|p| p.provider == payment.provider && p.reference == payment.reference);
        if taken {
            return Ok(false);
        }
        state.by_id.insert(payment.payment_id, payment.clone());
        Ok(true)
    }

    fn payment(&self, payment_id: Uuid) -> Result<Option<Payment>, StoreError> {
        Ok(self.payments_state()?.by_id.get(&payment_id).cloned())
    }

    fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> Result<Option<Payment>, StoreError> {
        Ok(self
            .payments_state()?
            .by_id
            .values()
            .find(|p| p.provider == provider && p.reference == reference)
            .cloned())
    }

    fn update_payment(&self, payment: &Payment) -> Result<bool, StoreError> {
        let mut state = self.payments_state()?;
        match state.by_id.get_mut(&payment.payment_id) {
            Some(stored) if stored.version == payment.version => {
                *stored = Payment {
                    version: payment.version + 1,
                    ..payment.clone()
                };
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn account_payments(
        &self,
        account_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Option<Vec<Payment>>, StoreError> {
        let state = self.payments_state()?;
        let cursor = match before {
            Some(id) => match state.by_id.get(&id) {
                Some(p) if p.account_id == account_id => Some(p.order()),
                _ => return Ok(None),
            },
            None => None,
        };
        let mut found: Vec<Payment> = state
            .by_id
            .values()
            .filter(|p| p.account_id == account_id)
            .filter(|p| cursor.is_none_or(|c| p.order() < c))
            .cloned()
            .collect();
        found.sort_by(newest_first);
        found.truncate(limit);
        Ok(Some(found))
    }

    fn payments_with_status_before(
        &self,
        status: PaymentStatus,
        before: Option<PaymentOrder>,
        limit: usize,
    ) -> Result<Vec<Payment>, StoreError> {
        let state = self.payments_state()?;
        let mut found: Vec<Payment> = state
            .by_id
            .values()
            .filter(|p| p.status == status)
            .filter(|p| before.is_none_or(|c| p.order() < c))
            .cloned()
            .collect();
        found.sort_by(newest_first);
        found.truncate(limit);
        Ok(found)
    }
}
