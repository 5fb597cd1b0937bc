//! A payment as the store keeps it: what a member asked to pay through a provider, and what
//! became of it. Not a ledger entry: the ledger records only the money it moved (a credit
//! under the provider's reference, debits of refunds and disputes), and that unique reference,
//! not this record, decides that a payment is credited once. The record says what to show and
//! what is left to do; several servers on one database update it by compare-and-set
//! ([`Payment::version`]).

use uuid::Uuid;

use crate::time::Timestamp;

/// What became of a payment (`status` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PaymentStatus {
    /// Created at the provider; not paid yet.
    Pending,
    /// Confirmed paid and credited.
    Paid,
    /// The provider stopped taking it, unpaid.
    Expired,
    /// It failed, or the provider confirmed another amount or currency (never credited).
    Failed,
    /// Wholly refunded.
    Refunded,
    /// A dispute was opened on its charge.
    Disputed,
}

impl PaymentStatus {
    /// Every status, in the order above.
    pub const ALL: [PaymentStatus; 6] = [
        PaymentStatus::Pending,
        PaymentStatus::Paid,
        PaymentStatus::Expired,
        PaymentStatus::Failed,
        PaymentStatus::Refunded,
        PaymentStatus::Disputed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Disputed => "disputed",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A money movement of a payment after its credit (a refund or a dispute), written into the
/// record before it is made, so that a server that stops half-way, or another server racing
/// it, completes that very movement (same reference, same amount) before deciding another.
/// Without it, two refund events read at 250 and 500 could both be debited in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentMove {
    pub kind: MoveKind,
    /// The ledger reference (`reference::refund`, `reference::dispute`, …).
    pub reference: String,
    /// Minor units moved (> 0).
    pub amount: u64,
    /// [`MoveKind::RefundDebit`], [`MoveKind::RefundReversal`]: the charge's cumulative
    /// refunded amount this movement brings [`Payment::refund_seen`] to.
    pub refund_seen: u64,
}

/// Which way a [`PaymentMove`] goes, and which of the record's sums it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveKind {
    /// A debit of more refunded money ([`Payment::refunded`] grows).
    RefundDebit,
    /// A credit back after refunds fell ([`Payment::refunded`] shrinks).
    RefundReversal,
    /// A debit of a dispute's withdrawn funds ([`Payment::disputed`] grows).
    DisputeDebit,
    /// A credit back of a won dispute ([`Payment::reinstated`] grows).
    DisputeReinstated,
}

impl MoveKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            MoveKind::RefundDebit => "refund_debit",
            MoveKind::RefundReversal => "refund_reversal",
            MoveKind::DisputeDebit => "dispute_debit",
            MoveKind::DisputeReinstated => "dispute_reinstated",
        }
    }

    pub fn parse(text: &str) -> Option<MoveKind> {
        [
            MoveKind::RefundDebit,
            MoveKind::RefundReversal,
            MoveKind::DisputeDebit,
            MoveKind::DisputeReinstated,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub payment_id: Uuid,
    /// The paying account.
    pub account_id: Uuid,
    /// `stripe`, `btcpay`, `test`.
    pub provider: String,
    /// Minor units of `currency`.
    pub amount: u64,
    pub currency: String,
    pub status: PaymentStatus,
    /// The provider's id of it (a session, an invoice, the test payment's id): unique per
    /// provider; the credit's reference is `<provider>:<reference>`.
    pub reference: String,
    pub pay_url: String,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    /// Microseconds past `created_at`'s second, so that payments made within one second are
    /// listed newest first too; 0 in records kept before it was.
    pub created_micros: u32,
    pub updated_at: Timestamp,
    /// The credit's ledger entry, once credited.
    pub credited_ledger_index: Option<u64>,
    /// Stripe: the session's PaymentIntent, once known.
    pub charge_ref: Option<String>,
    /// Stripe's cumulative `amount_refunded` of the charge, as last acted on.
    pub refund_seen: u64,
    /// Debited for refunds so far, net of refunds that failed and were credited back.
    pub refunded: u64,
    /// Debited for disputes so far.
    pub disputed: u64,
    /// Credited back for disputes won so far.
    pub reinstated: u64,
    /// A movement decided but perhaps not yet made (see [`PaymentMove`]).
    pub pending_move: Option<PaymentMove>,
    /// When a server last asked the provider about it (the 10 s bound of status requests).
    pub last_checked_at: Option<Timestamp>,
    /// Bumped by every update: an update is written only over the version it read.
    pub version: u64,
}

impl Payment {
    /// A payment as it starts, created at `now`: pending, nothing credited, checked or taken
    /// back, version 0. The caller fills in what the provider made of it with struct update
    /// syntax (`provider`, `amount`, `currency`, `reference`, `pay_url`, `expires_at`), which
    /// start empty.
    pub fn fresh(payment_id: Uuid, account_id: Uuid, now: Timestamp) -> Payment {
        Payment {
            payment_id,
            account_id,
            provider: String::new(),
            amount: 0,
            currency: String::new(),
            status: PaymentStatus::Pending,
            reference: String::new(),
            pay_url: String::new(),
            expires_at: now,
            created_at: now,
            created_micros: 0,
            updated_at: now,
            credited_ledger_index: None,
            charge_ref: None,
            refund_seen: 0,
            refunded: 0,
            disputed: 0,
            reinstated: 0,
            pending_move: None,
            last_checked_at: None,
            version: 0,
        }
    }

    /// The payment as its creation answered it (pending, nothing credited), what a replayed
    /// `Idempotency-Key` answers again whatever became of it since.
    pub fn as_created(&self) -> Payment {
        Payment {
            status: PaymentStatus::Pending,
            credited_ledger_index: None,
            updated_at: self.created_at,
            ..self.clone()
        }
    }

    /// Where the payment stands in the lists (`GET /v1/payments`, the operators' list, the
    /// sweep's cursor `store::PaymentOrder`): newest first is the greatest first.
    pub fn order(&self) -> (Timestamp, u32, Uuid) {
        (self.created_at, self.created_micros, self.payment_id)
    }

    /// What refunds and disputes have taken back, net.
    pub fn taken_back(&self) -> u64 {
        (self.refunded + self.disputed).saturating_sub(self.reinstated)
    }

    /// What refunds and disputes may still take back: never more than was credited.
    pub fn room(&self) -> u64 {
        if self.credited_ledger_index.is_none() {
            return 0;
        }
        self.amount.saturating_sub(self.taken_back())
    }
}
