//! Refunds and disputes: money that goes back out (a debit) and comes back (a credit back),
//! each under a reference of its own (`payments::reference`), so a movement happens once.
//!
//! Which movement comes next depends on what was moved before (a refund debits only what was
//! not debited yet for the charge; a dispute is capped so that refunds and disputes never take
//! back more than the payment credited). That is read from the payment's record, which other
//! servers may change at the same moment, and the ledger cannot see it. So every movement is
//! first decided into the record ([`PaymentMove`], by compare-and-set), then made in the
//! ledger, then its sums written and the move cleared (compare-and-set again). Whoever finds
//! a move pending (a racing server, or this one after a crash) makes that same movement first:
//! the same reference and amount, which the ledger takes once. No two servers can decide two
//! movements from the same record.

use super::events::Effect;
use super::Payments;
use crate::domain::{CreditSource, DebitReason, MoveKind, Payment, PaymentMove, PaymentStatus};
use crate::error::Error;
use crate::payments::{reference, DisputeFunds, DisputeState, Provider, RefundState};

/// Most movements and record changes one event drives before giving up (503, the provider
/// retries): each round either moves money, writes the record, or ends.
const ROUNDS_MAX: usize = 16;

/// What a payment needs next, as decided from its record.
enum Step {
    /// Nothing more.
    Done,
    /// Move money (decided into the record first).
    Move(PaymentMove),
    /// Record what was seen, moving no money: refunds seen that move nothing (nothing left to
    /// take back), a dispute's state.
    Note {
        refund_seen: Option<u64>,
        status: Option<PaymentStatus>,
    },
}

/// The status a payment shows after its movements: wholly refunded, disputed while a
/// dispute's money is out, else paid.
fn status_after(payment: &Payment) -> PaymentStatus {
    if payment.refund_seen >= payment.amount {
        PaymentStatus::Refunded
    } else if payment.disputed > payment.reinstated {
        PaymentStatus::Disputed
    } else if matches!(
        payment.status,
        PaymentStatus::Refunded | PaymentStatus::Disputed
    ) && payment.credited_ledger_index.is_some()
    {
        PaymentStatus::Paid
    } else {
        payment.status
    }
}

/// The next step of a charge whose cumulative refunds are `refunded` now.
fn refund_step(payment: &Payment, charge: &str, refunded: u64) -> Step {
    let seen = payment.refund_seen;
    if refunded > seen {
        let amount = (refunded - seen).min(payment.room());
        if amount == 0 {
            return Step::Note {
                refund_seen: Some(refunded),
                status: None,
            };
        }
        Step::Move(PaymentMove {
            kind: MoveKind::RefundDebit,
            reference: reference::refund(charge, refunded),
            amount,
            refund_seen: refunded,
        })
    } else if refunded < seen {
        // A refund failed: what was debited for it comes back.
        let amount = (seen - refunded).min(payment.refunded);
        if amount == 0 {
            return Step::Note {
                refund_seen: Some(refunded),
                status: None,
            };
        }
        Step::Move(PaymentMove {
            kind: MoveKind::RefundReversal,
            reference: reference::refund_reversed(charge, refunded),
            amount,
            refund_seen: refunded,
        })
    } else {
        Step::Done
    }
}

/// The next step of a dispute in `state`.
fn dispute_step(payment: &Payment, state: &DisputeState) -> Step {
    let withdraw = || {
        let amount = state.amount.amount.min(payment.room());
        if amount == 0 {
            return Step::Note {
                refund_seen: None,
                status: Some(PaymentStatus::Disputed),
            };
        }
        Step::Move(PaymentMove {
            kind: MoveKind::DisputeDebit,
            reference: reference::dispute(&state.dispute),
            amount,
            refund_seen: payment.refund_seen,
        })
    };
    match state.funds {
        // A charge has one dispute: what `disputed` holds is this dispute's.
        DisputeFunds::Withdrawn if payment.disputed == 0 => withdraw(),
        DisputeFunds::Withdrawn => Step::Done,
        // Reinstated: taken first (an event of the withdrawal may never have come), then
        // given back.
        DisputeFunds::Reinstated if payment.disputed == 0 && payment.reinstated == 0 => withdraw(),
        DisputeFunds::Reinstated if payment.disputed > payment.reinstated => {
            Step::Move(PaymentMove {
                kind: MoveKind::DisputeReinstated,
                reference: reference::dispute_reinstated(&state.dispute),
                amount: payment.disputed - payment.reinstated,
                refund_seen: payment.refund_seen,
            })
        }
        DisputeFunds::Reinstated => Step::Done,
        // No money moved: shown in the status only (an inquiry, a dispute just opened).
        DisputeFunds::Held => {
            let closed = matches!(state.status.as_str(), "won" | "warning_closed");
            let status = if closed {
                status_after(&Payment {
                    status: PaymentStatus::Paid,
                    ..payment.clone()
                })
            } else {
                PaymentStatus::Disputed
            };
            if status == payment.status || payment.credited_ledger_index.is_none() {
                Step::Done
            } else {
                Step::Note {
                    refund_seen: None,
                    status: Some(status),
                }
            }
        }
    }
}

impl Payments {
    pub(super) async fn on_refund(
        &self,
        provider: &dyn Provider,
        state: &RefundState,
    ) -> Result<Effect, Error> {
        let Some(payment) = self.settle_first(provider, state.payment.as_ref()).await? else {
            return Ok(Effect::Ignored);
        };
        if !state
            .refunded
            .currency
            .eq_ignore_ascii_case(&payment.currency)
        {
            tracing::warn!(payment_id = %payment.payment_id, charge = %state.charge,
                currency = %state.refunded.currency, "a refund in another currency: ignored; settle by hand");
            return Ok(Effect::Ignored);
        }
        let refunded = state.refunded.amount;
        self.drive(&payment, |p| refund_step(p, &state.charge, refunded))
            .await
    }

    pub(super) async fn on_dispute(
        &self,
        provider: &dyn Provider,
        state: &DisputeState,
    ) -> Result<Effect, Error> {
        let Some(payment) = self.settle_first(provider, state.payment.as_ref()).await? else {
            return Ok(Effect::Ignored);
        };
        if !state
            .amount
            .currency
            .eq_ignore_ascii_case(&payment.currency)
        {
            tracing::warn!(payment_id = %payment.payment_id, dispute = %state.dispute,
                currency = %state.amount.currency, "a dispute in another currency: ignored; settle by hand");
            return Ok(Effect::Ignored);
        }
        self.drive(&payment, |p| dispute_step(p, state)).await
    }

    /// Takes `payment` through the steps `decide` names, each movement decided into the record
    /// before it is made (see the module comment), until nothing is left to do.
    async fn drive(
        &self,
        payment: &Payment,
        decide: impl Fn(&Payment) -> Step,
    ) -> Result<Effect, Error> {
        let mut effect = Effect::Updated;
        for _ in 0..ROUNDS_MAX {
            let current = self
                .store
                .payment(payment.payment_id)?
                .ok_or(Error::NotFound("payment"))?;
            if let Some(pending) = current.pending_move.clone() {
                self.complete(&current, &pending).await?;
                effect = Effect::Moved;
                continue;
            }
            match decide(&current) {
                Step::Done => return Ok(effect),
                Step::Note {
                    refund_seen,
                    status,
                } => {
                    self.update(current.payment_id, |p| {
                        if p.version != current.version {
                            return false;
                        }
                        if let Some(seen) = refund_seen {
                            p.refund_seen = seen;
                        }
                        p.status = status.unwrap_or_else(|| status_after(p));
                        true
                    })?;
                }
                Step::Move(movement) => {
                    let decided = Payment {
                        pending_move: Some(movement),
                        ..current
                    };
                    // Lost to another server: read again, and complete or decide anew.
                    self.store.update_payment(&decided)?;
                }
            }
        }
        Err(Error::Unavailable(
            "the payment's refunds and disputes are being changed by other requests; try again"
                .into(),
        ))
    }

    /// Makes the movement `movement` pending on `payment` in the ledger (once, by its
    /// reference), then writes its sums and clears it.
    async fn complete(&self, payment: &Payment, movement: &PaymentMove) -> Result<(), Error> {
        let source = CreditSource::of_reference(&movement.reference);
        let account = payment.account_id;
        let (replayed, reason) = match movement.kind {
            MoveKind::RefundDebit | MoveKind::DisputeDebit => {
                let reason = if movement.kind == MoveKind::RefundDebit {
                    DebitReason::Refund
                } else {
                    DebitReason::Dispute
                };
                let debited = self
                    .mint
                    .debit(
                        account,
                        movement.amount,
                        movement.reference.clone(),
                        source,
                        reason,
                    )
                    .await?;
                if let Some(revoked) = debited.revoked {
                    tracing::info!(payment_id = %payment.payment_id, stamps = revoked.stamps,
                        amount = revoked.amount, "a debit revoked unspent stamps");
                }
                if debited.balance < 0 {
                    tracing::warn!(payment_id = %payment.payment_id, balance = debited.balance,
                        "a payment's money went back after it was spent: the account is in debt");
                }
                (debited.replayed, Some(reason))
            }
            MoveKind::RefundReversal | MoveKind::DisputeReinstated => {
                let credited = self
                    .mint
                    .credit(account, movement.amount, movement.reference.clone(), source)
                    .await?;
                (credited.replayed, None)
            }
        };
        if !replayed {
            match reason {
                Some(reason) => metrics::counter!(
                    crate::telemetry::PAYMENT_DEBITED,
                    "provider" => payment.provider.clone(),
                    "reason" => reason.as_str(),
                )
                .increment(movement.amount),
                None => metrics::counter!(
                    crate::telemetry::PAYMENT_CREDITED,
                    "provider" => payment.provider.clone(),
                )
                .increment(movement.amount),
            }
            tracing::info!(payment_id = %payment.payment_id, kind = movement.kind.as_str(),
                amount = movement.amount, "payment money moved");
        }
        self.update(payment.payment_id, |p| {
            if p.pending_move.as_ref() != Some(movement) {
                // Completed by another server meanwhile.
                return false;
            }
            match movement.kind {
                MoveKind::RefundDebit => {
                    p.refunded += movement.amount;
                    p.refund_seen = movement.refund_seen;
                }
                MoveKind::RefundReversal => {
                    p.refunded = p.refunded.saturating_sub(movement.amount);
                    p.refund_seen = movement.refund_seen;
                }
                MoveKind::DisputeDebit => p.disputed += movement.amount,
                MoveKind::DisputeReinstated => p.reinstated += movement.amount,
            }
            p.pending_move = None;
            p.status = status_after(p);
            true
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::Money;
    use crate::time::Timestamp;
    use uuid::Uuid;

    fn paid(amount: u64) -> Payment {
        Payment {
            provider: "stripe".into(),
            amount,
            currency: "USD".into(),
            status: PaymentStatus::Paid,
            reference: "cs_1".into(),
            credited_ledger_index: Some(3),
            ..Payment::fresh(
                Uuid::from_u128(1),
                Uuid::from_u128(2),
                Timestamp::from_unix(0),
            )
        }
    }

    fn moved(step: Step) -> (MoveKind, String, u64) {
        match step {
            Step::Move(m) => (m.kind, m.reference, m.amount),
            _ => panic!("expected a move"),
        }
    }

    #[test]
    fn refunds_debit_the_difference_and_credit_back_a_fall() {
        let mut p = paid(500);
        assert_eq!(
            moved(refund_step(&p, "ch_1", 250)),
            (MoveKind::RefundDebit, "stripe:refund:ch_1:250".into(), 250)
        );
        p.refund_seen = 250;
        p.refunded = 250;
        assert!(matches!(refund_step(&p, "ch_1", 250), Step::Done));
        assert_eq!(
            moved(refund_step(&p, "ch_1", 500)),
            (MoveKind::RefundDebit, "stripe:refund:ch_1:500".into(), 250)
        );
        assert_eq!(
            moved(refund_step(&p, "ch_1", 100)),
            (
                MoveKind::RefundReversal,
                "stripe:refund-reversed:ch_1:100".into(),
                150
            )
        );
        // Never more than the payment credited, with a dispute's money out too.
        p.disputed = 200;
        assert_eq!(moved(refund_step(&p, "ch_1", 500)).2, 50);
        // An uncredited payment gives nothing back.
        let mut unpaid = paid(500);
        unpaid.credited_ledger_index = None;
        assert!(matches!(
            refund_step(&unpaid, "ch_1", 500),
            Step::Note {
                refund_seen: Some(500),
                ..
            }
        ));
    }

    #[test]
    fn a_dispute_is_capped_taken_once_and_given_back_once() {
        let state = |funds, amount| DisputeState {
            dispute: "dp_1".into(),
            charge: "ch_1".into(),
            payment: None,
            amount: Money::new(amount, "usd"),
            funds,
            status: "needs_response".into(),
        };
        let mut p = paid(500);
        p.refund_seen = 200;
        p.refunded = 200;
        assert_eq!(
            moved(dispute_step(&p, &state(DisputeFunds::Withdrawn, 500))),
            (MoveKind::DisputeDebit, "stripe:dispute:dp_1".into(), 300)
        );
        p.disputed = 300;
        assert!(matches!(
            dispute_step(&p, &state(DisputeFunds::Withdrawn, 500)),
            Step::Done
        ));
        assert_eq!(
            moved(dispute_step(&p, &state(DisputeFunds::Reinstated, 500))),
            (
                MoveKind::DisputeReinstated,
                "stripe:dispute-reinstated:dp_1".into(),
                300
            )
        );
        p.reinstated = 300;
        assert!(matches!(
            dispute_step(&p, &state(DisputeFunds::Reinstated, 500)),
            Step::Done
        ));
        // Reinstated before any withdrawal was seen: taken first.
        assert_eq!(
            moved(dispute_step(
                &paid(500),
                &state(DisputeFunds::Reinstated, 500)
            ))
            .0,
            MoveKind::DisputeDebit
        );
        assert!(matches!(
            dispute_step(&paid(500), &state(DisputeFunds::Held, 500)),
            Step::Note {
                status: Some(PaymentStatus::Disputed),
                ..
            }
        ));
    }

    #[test]
    fn the_status_follows_the_money() {
        let mut p = paid(500);
        assert_eq!(status_after(&p), PaymentStatus::Paid);
        p.disputed = 100;
        assert_eq!(status_after(&p), PaymentStatus::Disputed);
        p.reinstated = 100;
        p.status = PaymentStatus::Disputed;
        assert_eq!(status_after(&p), PaymentStatus::Paid);
        p.refund_seen = 500;
        assert_eq!(status_after(&p), PaymentStatus::Refunded);
    }

    /// A server stopped between a movement's ledger entry and its record: the next one to
    /// come completes that same movement (the ledger answers it as a replay) and decides no
    /// second one; a movement decided but not made is made once.
    #[test]
    fn a_movement_left_half_way_is_completed_once() {
        use crate::store::{Payments as _, Reads as _};
        use std::sync::Arc;

        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let store = Arc::new(crate::store::MemoryStore::new());
            let app = crate::service::test_app(
                store.clone(),
                &keys,
                crate::payments::Providers::default(),
            )
            .await;
            let (account_id, _) = app.mint.create_account(None).await.expect("account");
            let credited = app
                .mint
                .credit(account_id, 500, "stripe:cs_1".into(), CreditSource::Stripe)
                .await
                .expect("credit");
            let mut payment = Payment {
                account_id,
                credited_ledger_index: Some(credited.ledger_index),
                ..paid(500)
            };
            assert!(store.insert_payment(&payment).expect("insert"));
            let debits = || {
                store
                    .entries(0, 1000)
                    .expect("entries")
                    .iter()
                    .filter(|e| String::from_utf8_lossy(e).contains("\"kind\":\"debit\""))
                    .count()
            };

            // Decided and made in the ledger, then the server stopped.
            let Step::Move(movement) = refund_step(&payment, "ch_1", 200) else {
                panic!("a move");
            };
            payment.pending_move = Some(movement.clone());
            assert!(store.update_payment(&payment).expect("decide"));
            app.mint
                .debit(
                    account_id,
                    movement.amount,
                    movement.reference.clone(),
                    CreditSource::Stripe,
                    DebitReason::Refund,
                )
                .await
                .expect("debit");
            assert_eq!(debits(), 1);
            // The next event (refunds now at 300) completes it first, then debits 100.
            let effect = app
                .payments
                .drive(&payment, |p| refund_step(p, "ch_1", 300))
                .await
                .expect("drive");
            assert_eq!(effect, Effect::Moved);
            assert_eq!(debits(), 2);
            let after = store
                .payment(payment.payment_id)
                .expect("read")
                .expect("kept");
            assert_eq!((after.refund_seen, after.refunded), (300, 300));
            assert_eq!(after.pending_move, None);
            // Again: nothing more.
            let effect = app
                .payments
                .drive(&after, |p| refund_step(p, "ch_1", 300))
                .await
                .expect("drive");
            assert_eq!(effect, Effect::Updated);
            assert_eq!(debits(), 2);
            let balance = store.account(account_id).expect("read").expect("kept");
            assert_eq!(balance.balance, 200);
        });
    }
}
