//! The domain's records: what the rules decide over and the stores keep. Plain data, shared by
//! the rules (`crate::rules`), which read and write them through a store transaction, and the
//! stores (`crate::store`), which keep them; neither owns the other's types.
//!
//! Must not: do I/O, read the clock, or know how a backend lays out its data.

pub mod payment;

pub use payment::{MoveKind, Payment, PaymentMove, PaymentStatus};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ledger::entry::SpendAction;
use crate::stamp::Kid;
use crate::time::Timestamp;

/// An account as the store keeps it. The API key itself is never stored, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub account_id: Uuid,
    pub name: Option<String>,
    /// What it may spend. Zero while it owes a [`Account::debt`]: one of the two is always 0.
    pub balance: u64,
    /// What it owes: a debit took back more than its balance and its stamps covered. Credits
    /// pay it off first; purchases are refused while it is above zero.
    pub debt: u64,
    pub stamps_purchased: u64,
    pub stamps_spent: u64,
    pub created_at: Timestamp,
    /// Base postage refunded to this account so far, in minor units.
    pub refunds_total: u64,
}

impl Account {
    /// The balance as clients read it: below zero while the account is in debt.
    pub fn signed_balance(&self) -> i64 {
        signed(self.balance).saturating_sub(signed(self.debt))
    }

    /// Adds money, paying off the debt first. `None` (and nothing changed) when the balance
    /// would pass `i64::MAX`, the most a signed balance can show.
    pub fn add_money(&mut self, amount: u64) -> Option<()> {
        let paid = amount.min(self.debt);
        let balance = self.balance.checked_add(amount - paid)?;
        if balance > i64::MAX as u64 {
            return None;
        }
        self.debt -= paid;
        self.balance = balance;
        Some(())
    }

    /// Takes money back, into a debt when the balance is short. `None` (and nothing changed)
    /// when the debt would pass `i64::MAX`.
    pub fn take_money(&mut self, amount: u64) -> Option<()> {
        let from_balance = amount.min(self.balance);
        let debt = self.debt.checked_add(amount - from_balance)?;
        if debt > i64::MAX as u64 {
            return None;
        }
        self.balance -= from_balance;
        self.debt = debt;
        Some(())
    }
}

fn signed(amount: u64) -> i64 {
    i64::try_from(amount).unwrap_or(i64::MAX)
}

/// A post on the board.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Post {
    pub post_id: Uuid,
    pub author: String,
    pub body: String,
    pub created_at: Timestamp,
    pub score: i64,
    pub ledger_index: u64,
    /// Position on the board, for paging newest first.
    pub seq: u64,
    /// Whether the author is the account whose API key made the post.
    pub verified: bool,
    /// The payer of the post's stamps; `None` for posts made before payers were recorded.
    pub payer: Option<Uuid>,
    /// Stamps the post cost.
    pub cost: u64,
    pub votes_up: u64,
    pub votes_down: u64,
    /// Distinct payers of its votes, up and down.
    pub voters: u64,
    /// Distinct payers of its up-votes other than the post's own payer (what refunds count).
    pub up_voters: u64,
    /// What a refund pays back: the unit prices of the first `post_cost` stamps of its spend.
    /// `None` when a stamp's price is unknown (sold before prices were recorded per stamp).
    pub base_postage: Option<u64>,
    /// Whether its base postage went back to its payer.
    pub refunded: bool,
}

/// One payer's votes on one post, as the vote price and the refund count need them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Voter {
    /// Votes of this payer on this post, up and down alike.
    pub votes: u64,
    /// Whether any of them was up.
    pub up_voted: bool,
}

/// The stamps sold by one purchase, as recorded for idempotent replay. Holds no secret: the
/// stamp texts are signed again from these fields (Ed25519 signatures are deterministic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseRecord {
    pub purchase_id: Uuid,
    pub account_id: Uuid,
    pub count: u32,
    pub unit_price: u64,
    pub total: u64,
    pub balance: u64,
    pub ledger_index: u64,
    pub kid: Kid,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub stamp_ids: Vec<Uuid>,
}

/// A credit or debit as kept for idempotent replay: the same reference with the same
/// account, amount and kind answers what the first one answered. Credits and debits share the
/// index, so a reference is used once among both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditRecord {
    pub account_id: Uuid,
    pub amount: u64,
    /// The balance right after it (and after a debit's revoke); below zero for a debt.
    pub balance: i64,
    pub ledger_index: u64,
    pub kind: MoneyKind,
}

/// Whether a [`CreditRecord`] is a credit or a debit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoneyKind {
    Credit,
    /// A debit, with the revoke that followed it, if one did.
    Debit {
        revoked: Option<Revoked>,
    },
}

/// The `revoke` spend written right after a debit that left its account below zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revoked {
    pub ledger_index: u64,
    /// Stamps revoked.
    pub stamps: u64,
    /// Their unit prices' sum, given back to the balance.
    pub amount: u64,
}

/// Where a credit's money came from, or where a debit's went back to: the operator (by hand)
/// or a payment provider. Written as the entry's `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CreditSource {
    Operator,
    Stripe,
    Btcpay,
    Test,
}

impl CreditSource {
    /// Every source.
    pub const ALL: [CreditSource; 4] = [
        CreditSource::Operator,
        CreditSource::Stripe,
        CreditSource::Btcpay,
        CreditSource::Test,
    ];

    /// The source as the ledger writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CreditSource::Operator => "operator",
            CreditSource::Stripe => "stripe",
            CreditSource::Btcpay => "btcpay",
            CreditSource::Test => "test",
        }
    }

    /// The prefix every reference of a provider begins with (`stripe:`); none for the
    /// operator, whose references may begin with anything but a provider's prefix.
    pub fn prefix(self) -> Option<&'static str> {
        match self {
            CreditSource::Operator => None,
            CreditSource::Stripe => Some("stripe:"),
            CreditSource::Btcpay => Some("btcpay:"),
            CreditSource::Test => Some("test:"),
        }
    }

    /// The source a reference belongs to: the provider whose prefix it begins with, else the
    /// operator. A credit or debit whose source is not its reference's is refused, so no
    /// operator's reference can ever collide with a provider's.
    pub fn of_reference(reference: &str) -> CreditSource {
        CreditSource::ALL
            .into_iter()
            .find(|source| {
                source
                    .prefix()
                    .is_some_and(|prefix| reference.starts_with(prefix))
            })
            .unwrap_or(CreditSource::Operator)
    }
}

/// Why money went back out of an account: written as a debit entry's `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DebitReason {
    /// A provider's refund of a payment.
    Refund,
    /// A card dispute's withdrawn funds.
    Dispute,
    /// An operator's correction.
    Correction,
}

impl DebitReason {
    /// The reason as the ledger writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            DebitReason::Refund => "refund",
            DebitReason::Dispute => "dispute",
            DebitReason::Correction => "correction",
        }
    }
}

/// The sale of one stamp: who bought it (its payer), under which key, its lifetime and price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sale {
    pub buyer: Uuid,
    pub kid: Kid,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// Minor units paid for it (the purchase's `unit_price`); `None` for stamps sold before
    /// prices were kept per stamp.
    pub unit_price: Option<u64>,
}

/// A sold stamp as a transaction reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoldStamp {
    pub sale: Sale,
    pub spent: Option<SpentRecord>,
}

/// Names a sold stamp as its signed payload does: its id and when it was issued. The store
/// keeps stamps in issue-time order, so the stamps people spend (mostly bought recently) sit
/// together at the end of the index instead of at random places in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StampRef {
    pub stamp_id: Uuid,
    pub issued_at: Timestamp,
}

/// The state of one stamp as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StampRecord {
    pub stamp_id: Uuid,
    pub buyer: Uuid,
    pub kid: Kid,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub spent: Option<SpentRecord>,
}

/// When and for what a stamp was spent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpentRecord {
    pub spent_at: Timestamp,
    pub action: SpendAction,
    /// `post:<id>`, `vote:<id>`, or the redeem context as the redeeming site gave it.
    pub spent_for: String,
    pub ledger_index: u64,
}

/// How repeated votes of one payer on one post are priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VotePricing {
    /// The n-th vote costs `vote_cost × (2n − 1)`: n votes cost `vote_cost × n²`.
    Quadratic,
    /// Every vote costs `vote_cost`.
    Flat,
}

impl VotePricing {
    pub fn as_str(self) -> &'static str {
        match self {
            VotePricing::Quadratic => "quadratic",
            VotePricing::Flat => "flat",
        }
    }
}

impl std::str::FromStr for VotePricing {
    type Err = String;
    fn from_str(text: &str) -> Result<VotePricing, String> {
        match text {
            "quadratic" => Ok(VotePricing::Quadratic),
            "flat" => Ok(VotePricing::Flat),
            other => Err(format!(
                "vote pricing must be quadratic or flat, not {other:?}"
            )),
        }
    }
}

/// Most characters in a currency name (`--currency`): it is written into every credit,
/// policy and refund entry.
pub const CURRENCY_CHARS_MAX: usize = 32;

/// Whether `currency` may name the minor unit: 1 to [`CURRENCY_CHARS_MAX`] characters, no
/// control characters, no space at either end. The auditor rejects an empty one.
pub fn currency_is_valid(currency: &str) -> bool {
    let chars = currency.chars().count();
    (1..=CURRENCY_CHARS_MAX).contains(&chars)
        && currency.trim() == currency
        && !currency.chars().any(char::is_control)
}

/// The policy in force: written to the ledger as a `policy` entry before the first entry it
/// prices, and again at every start whose policy differs from the last one written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub currency: String,
    /// Minor units per stamp.
    pub stamp_price: u64,
    /// Base stamps per post.
    pub post_cost: u64,
    /// Base stamps per vote.
    pub vote_cost: u64,
    /// The flood window: earlier posts of the same payer within it raise a post's price.
    pub repeat_window_secs: u64,
    /// Each earlier post in the window multiplies the price by this (1 turns flood pricing
    /// off).
    pub repeat_factor: u64,
    pub vote_pricing: VotePricing,
    /// Distinct up-voting payers (other than the post's) that refund a post's base postage;
    /// 0 turns refunds off.
    pub refund_voters: u64,
}

/// A hold: stamps reserved for a short time, then spent at once (captured) or given back
/// (released, or by its expiry). Whether a held hold is live depends on the time it is judged
/// at (`expires_at`), so the stored state never says `expired`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub hold_id: Uuid,
    /// The stamps held, as their signed payloads name them.
    pub stamps: Vec<StampRef>,
    /// What a capture spends them for: the redeem context, whose SHA-256 is the entry's target.
    pub context: String,
    pub created_at: Timestamp,
    /// When the hold stops holding: capped at the earliest `expires_at` of its stamps.
    pub expires_at: Timestamp,
    pub state: HoldState,
}

/// What became of a hold, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldState {
    /// Holding its stamps until `expires_at`.
    Held,
    /// Spent by its `spend` entry.
    Captured {
        ledger_index: u64,
        spent_at: Timestamp,
    },
    /// Given back before it expired, or ended by a capture that found a stamp spent.
    Released,
}

impl Hold {
    /// Whether the hold still keeps its stamps from being spent at `time`.
    pub fn is_live(&self, time: Timestamp) -> bool {
        self.state == HoldState::Held && time < self.expires_at
    }

    /// The state as clients read it at `time`: `held`, `captured`, `released` or `expired`.
    pub fn state_name(&self, time: Timestamp) -> &'static str {
        match self.state {
            HoldState::Held if time < self.expires_at => "held",
            HoldState::Held => "expired",
            HoldState::Captured { .. } => "captured",
            HoldState::Released => "released",
        }
    }
}
