//! The sweeps of pending payments: every [`SWEEP_SECS`](super::SWEEP_SECS), a round asks
//! the provider about pending payments (a lost webhook is credited so), and expires those
//! still pending [`SWEEP_AFTER_EXPIRY_SECS`] after their `expires_at`.
//!
//! A round asks at most [`SWEEP_ROUND_MAX`] payments (each is a call to its provider), read
//! [`SWEEP_PAGE`] at a time in the stores' newest-first order
//! (`Payments::payments_with_status_before`, a cursor on creation time and id). The rounds go
//! round the pending payments like a ring: each starts after the last payment the previous
//! one asked, goes on to the oldest, then from the newest, and stops where it started or at
//! its limit. So with `P` payments pending, each is asked at least once every
//! ⌈P / [`SWEEP_ROUND_MAX`]⌉ rounds (one more for payments created meanwhile, which join the
//! ring at its newest end); with up to [`SWEEP_ROUND_MAX`] pending, every round asks them all.
//! The cursor is per server: servers on one database each go round, and the compare-and-set
//! claim of a check (`recheck`) keeps two from asking about one payment at once.

use crate::domain::{Payment, PaymentStatus};
use crate::store::PaymentOrder;
use crate::time::Timestamp;

use super::{set_status_if, Payments, SWEEP_AFTER_EXPIRY_SECS};

/// Most pending payments one sweep round asks about.
pub const SWEEP_ROUND_MAX: usize = 1000;
/// Pending payments read from the store at a time during a round.
pub const SWEEP_PAGE: usize = 200;

impl Payments {
    /// One sweep round: asks about up to [`SWEEP_ROUND_MAX`] pending payments, going on
    /// where the last round stopped; `start`: whenever each was last asked about. A payment
    /// still pending [`SWEEP_AFTER_EXPIRY_SECS`] after its `expires_at` is expired. How many
    /// were asked.
    pub async fn sweep(&self, start: bool) -> usize {
        self.sweep_round(start, SWEEP_ROUND_MAX, SWEEP_PAGE).await
    }

    /// [`Payments::sweep`] with its limits given (tests use small ones).
    pub(super) async fn sweep_round(&self, start: bool, round_max: usize, page: usize) -> usize {
        let origin = self.sweep_cursor.lock().map(|c| *c).unwrap_or(None);
        let mut at: Option<PaymentOrder> = origin;
        let mut wrapped = false;
        let mut asked = 0;
        'round: while asked < round_max {
            let wanted = page.min(round_max - asked).max(1);
            let pending =
                match self
                    .store
                    .payments_with_status_before(PaymentStatus::Pending, at, wanted)
                {
                    Ok(pending) => pending,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list pending payments");
                        break;
                    }
                };
            let reached_oldest = pending.len() < wanted;
            for payment in pending {
                // Past the oldest and back from the newest: stop where this round began.
                if wrapped && origin.is_some_and(|o| payment.order() < o) {
                    break 'round;
                }
                at = Some(payment.order());
                self.sweep_one(payment, start).await;
                asked += 1;
            }
            if reached_oldest {
                if wrapped || origin.is_none() {
                    // The whole ring in one round: the next starts from the newest again.
                    at = None;
                    break;
                }
                wrapped = true;
                at = None;
            }
        }
        if let Ok(mut cursor) = self.sweep_cursor.lock() {
            *cursor = at;
        }
        asked
    }

    /// Asks about one pending payment; expires it when it is still pending too long after
    /// its `expires_at`.
    async fn sweep_one(&self, payment: Payment, start: bool) {
        let given_up = payment.expires_at.plus_secs(SWEEP_AFTER_EXPIRY_SECS);
        let id = payment.payment_id;
        let now_past = Timestamp::now() > given_up;
        let after = self.recheck(payment, start || now_past).await;
        if now_past && after.status == PaymentStatus::Pending {
            let expired = self.update(id, |p| {
                set_status_if(p, PaymentStatus::Expired, |p| {
                    p.status == PaymentStatus::Pending
                })
            });
            if let Err(e) = expired {
                tracing::warn!(payment_id = %id, error = %e, "cannot expire a payment");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::future::BoxFuture;
    use reqwest::header::HeaderMap;
    use uuid::Uuid;

    use super::*;
    use crate::payments::{
        Checked, Confirmed, Created, Hint, Money, NewPayment, PaymentState, Provider,
        ProviderError, Providers, WebhookError, WebhookEvent,
    };
    use crate::store::{MemoryStore, Payments as _, Reads as _};

    /// A provider that answers one reference paid and every other open, and keeps the
    /// references it was asked about.
    #[derive(Debug)]
    struct Counting {
        paid: String,
        asked: Mutex<Vec<String>>,
    }

    impl Provider for Counting {
        fn name(&self) -> &'static str {
            "stripe"
        }

        fn currency(&self) -> &str {
            "cents"
        }

        fn create<'a>(
            &'a self,
            _payment: &'a NewPayment,
        ) -> BoxFuture<'a, Result<Created, ProviderError>> {
            Box::pin(async {
                Err(ProviderError::BadAnswer {
                    provider: "stripe",
                    call: "create",
                    detail: "not in this test".into(),
                })
            })
        }

        fn check<'a>(
            &'a self,
            reference: &'a str,
        ) -> BoxFuture<'a, Result<Checked, ProviderError>> {
            if let Ok(mut asked) = self.asked.lock() {
                asked.push(reference.to_string());
            }
            let state = if reference == self.paid {
                PaymentState::Paid(Money::new(500, "cents"))
            } else {
                PaymentState::Open
            };
            Box::pin(async move {
                Ok(Checked {
                    reference: reference.to_string(),
                    payment_id: None,
                    state,
                    charge_ref: None,
                })
            })
        }

        fn verify_webhook(
            &self,
            _headers: &HeaderMap,
            _body: &[u8],
            _now: Timestamp,
        ) -> Result<WebhookEvent, WebhookError> {
            Err(WebhookError::NotSupported)
        }

        fn confirm<'a>(
            &'a self,
            _hint: &'a Hint,
        ) -> BoxFuture<'a, Result<Confirmed, ProviderError>> {
            Box::pin(async { Ok(Confirmed::Nothing) })
        }
    }

    /// With more payments pending than a round asks, the rounds go round them all: three
    /// rounds of 10 (read 4 at a time) ask every one of 25, and the oldest, paid at the
    /// provider (a lost webhook), is credited on the third.
    #[test]
    fn the_rounds_go_round_every_pending_payment_and_credit_the_oldest() {
        const PENDING: usize = 25;
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let now = Timestamp::now();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let store = Arc::new(MemoryStore::new());
            // No provider here: the app starts no sweep of its own.
            let app = crate::service::test_app(store.clone(), &keys, Providers::default()).await;
            let (account_id, _) = app.mint.create_account(None).await.expect("account");
            // Payment i was created i minutes ago: payment 24 is the oldest.
            let payments: Vec<Payment> = (0..PENDING)
                .map(|i| {
                    let payment_id = Uuid::new_v4();
                    Payment {
                        provider: "stripe".into(),
                        amount: 500,
                        currency: "cents".into(),
                        reference: format!("cs_{i}"),
                        expires_at: now.plus_secs(600),
                        ..Payment::fresh(
                            payment_id,
                            account_id,
                            Timestamp::from_unix(now.unix() - 60 * i as i64),
                        )
                    }
                })
                .collect();
            for p in &payments {
                assert!(store.insert_payment(p).expect("insert"));
            }
            let oldest = &payments[PENDING - 1];
            let provider = Arc::new(Counting {
                paid: oldest.reference.clone(),
                asked: Mutex::new(Vec::new()),
            });
            let service = Payments::new(
                app.mint.clone(),
                store.clone(),
                Providers::of(vec![provider.clone() as Arc<dyn Provider>]),
            );
            let asked = || {
                let mut asked = provider.asked.lock().expect("asked").clone();
                asked.sort();
                asked.dedup();
                asked.len()
            };
            let status = |p: &Payment| store.payment(p.payment_id).expect("read").expect("kept");

            assert_eq!(service.sweep_round(false, 10, 4).await, 10);
            assert_eq!(asked(), 10);
            assert_eq!(service.sweep_round(false, 10, 4).await, 10);
            assert_eq!(asked(), 20);
            assert_eq!(status(oldest).status, PaymentStatus::Pending);
            // The last five, then round again from the newest (asked a moment ago, so not
            // asked again: a status request's 10 s bound).
            assert_eq!(service.sweep_round(false, 10, 4).await, 10);
            assert_eq!(asked(), PENDING, "every pending payment was asked");
            let credited = status(oldest);
            assert_eq!(credited.status, PaymentStatus::Paid);
            let account = store.account(account_id).expect("read").expect("account");
            assert_eq!(account.balance, 500);
            // One fewer pending now; the rounds go on round the 24 left.
            assert_eq!(service.sweep_round(false, 10, 4).await, 10);
            assert_eq!(service.sweep_round(false, 100, 4).await, PENDING - 1);
            assert_eq!(service.sweep_round(false, 100, 7).await, PENDING - 1);
            assert_eq!(
                store
                    .account(account_id)
                    .expect("read")
                    .expect("account")
                    .balance,
                500
            );
        });
    }
}
