//! The commands the rules decide, and what they answer: an outcome, or a refusal that changed
//! nothing.

use uuid::Uuid;

use crate::domain::{CreditSource, DebitReason, Policy, Post, PurchaseRecord, StampRef};

/// The `revoke` a debit caused (its entry, how many stamps, their unit prices' sum).
pub use crate::domain::Revoked;
use crate::keys::KeyStatus;
use crate::ledger::entry::SpendAction;
use crate::stamp::Kid;
use crate::time::Timestamp;

/// What a spend paid for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpendFor {
    /// A new post, written in the same transaction as the spend.
    Post {
        post_id: Uuid,
        author: String,
        body: String,
        /// Whether `author` is the name of the account whose API key made the post.
        verified: bool,
    },
    /// A vote on an existing post: +1 or -1.
    Vote { post_id: Uuid, up: bool },
    /// Another site's action; the ledger records SHA-256 of the context.
    Redeem { context: String },
}

impl SpendFor {
    pub fn action(&self) -> SpendAction {
        match self {
            SpendFor::Post { .. } => SpendAction::Post,
            SpendFor::Vote { .. } => SpendAction::Vote,
            SpendFor::Redeem { .. } => SpendAction::Redeem,
        }
    }
}

/// A state change. Commands carry everything the store needs; signatures were checked before.
#[derive(Clone, Debug)]
pub enum Command {
    /// Publishes a key's status in the ledger (on first start and after rotation).
    KeyEvent {
        kid: Kid,
        public_key: String,
        status: KeyStatus,
    },
    CreateAccount {
        account_id: Uuid,
        name: Option<String>,
        api_key_sha256: [u8; 32],
    },
    /// Money received for an account; `reference` is unique across the whole ledger (among
    /// credits and debits together) and belongs to `source`: a provider's begins with its
    /// prefix (`stripe:`), the operator's with none of the providers' prefixes.
    Credit {
        account_id: Uuid,
        amount: u64,
        reference: String,
        source: CreditSource,
    },
    /// Money going back out of an account; `reference` is unique among credits and debits
    /// together and belongs to `source` as a credit's does. May leave the balance below zero:
    /// then the account's unspent, unexpired stamps are revoked in the same transaction
    /// (`rules::debit`).
    Debit {
        account_id: Uuid,
        amount: u64,
        reference: String,
        source: CreditSource,
        reason: DebitReason,
    },
    Purchase {
        account_id: Uuid,
        unit_price: u64,
        /// SHA-256 of the Idempotency-Key header, when one was sent.
        idempotency_key_sha256: Option<[u8; 32]>,
        purchase_id: Uuid,
        kid: Kid,
        issued_at: Timestamp,
        expires_at: Timestamp,
        stamp_ids: Vec<Uuid>,
    },
    /// Cancels every stamp in `stamps` or none of them. A post or vote must carry exactly its
    /// price under the policy in force, in stamps of one payer.
    Spend {
        stamps: Vec<StampRef>,
        spend_for: SpendFor,
    },
    /// Writes the policy to the ledger when it differs from the last one written.
    Policy { policy: Policy },
    /// Holds every stamp in `stamps` or none of them, for `ttl_secs` at most (capped at the
    /// stamps' earliest expiry). Writes no entry.
    Hold {
        hold_id: Uuid,
        stamps: Vec<StampRef>,
        context: String,
        ttl_secs: u64,
    },
    /// Spends a live hold's stamps as one redeem of its context.
    Capture { hold_id: Uuid },
    /// Gives a hold's stamps back.
    Release { hold_id: Uuid },
}

/// What an applied command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    KeyPublished {
        ledger_index: u64,
    },
    AccountCreated,
    /// A credit, new or replayed (`replayed` is true when the reference was credited before:
    /// `balance` and `ledger_index` are then the first credit's; `balance` is below zero while
    /// the account is in debt).
    Credited {
        balance: i64,
        ledger_index: u64,
        replayed: bool,
    },
    /// A debit, new or replayed (`replayed`: the reference was debited before, and `balance`,
    /// `ledger_index` and `revoked` are the first debit's). `balance` is after the revoke, if
    /// one was written; below zero for a debt.
    Debited {
        balance: i64,
        ledger_index: u64,
        replayed: bool,
        revoked: Option<Revoked>,
    },
    /// A purchase, new or replayed (`replayed` is true when the Idempotency-Key was seen).
    Purchased {
        record: PurchaseRecord,
        replayed: bool,
    },
    Spent {
        spent_at: Timestamp,
        ledger_index: u64,
        /// The post written (for a post) or voted on, with its score after the vote.
        post: Option<Post>,
        /// Stamps cancelled.
        cost: u64,
        /// The `refund` entry this vote completed, if it did.
        refund_ledger_index: Option<u64>,
    },
    /// The policy was written (`Some` index) or was already the last one written.
    Policy {
        ledger_index: Option<u64>,
    },
    /// The stamps are held until `expires_at`.
    Held {
        hold_id: Uuid,
        expires_at: Timestamp,
        count: u64,
    },
    /// The hold's stamps were spent by the entry at `ledger_index` (now or by an earlier
    /// capture: a capture is idempotent).
    Captured {
        ledger_index: u64,
        spent_at: Timestamp,
        /// Stamps spent.
        cost: u64,
        /// Whether an earlier capture spent them (this one spent nothing).
        replayed: bool,
    },
    /// A capture found one of the hold's stamps spent meanwhile: nothing was spent and the
    /// hold ended (released), so its other stamps are free again. Answered as
    /// `stamp_already_spent`.
    HoldBroken {
        stamp_id: Uuid,
    },
    /// The hold gives its stamps back (or already did: released or expired).
    Released,
}

/// Defines a refusal's reason: an enum of unit variants, each with its fixed text (its
/// `Display`, what clients read in the problem's detail; the HTTP contract keeps it).
macro_rules! reasons {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// The reason's fixed text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

reasons! {
    /// What a [`Refusal::NotFound`] did not find.
    Missing {
        Account => "account",
        Post => "post",
        /// No policy was written yet (a quote).
        Policy => "policy",
        Hold => "hold",
    }
}

reasons! {
    /// Why a command is malformed ([`Refusal::Invalid`]). The service never sends these; the
    /// rules refuse them anyway, because each would write an entry the auditor rejects.
    InvalidCommand {
        NoStamps => "a command needs at least one stamp",
        TooManyStamps => "too many stamps in one command",
        /// More stamps than a purchase record can count (past `u32::MAX`).
        TooManyInPurchase => "too many stamps in one purchase",
        StampNamedTwice => "a stamp is named twice",
        CreditNotPositive => "a credit must be positive",
        DebitNotPositive => "a debit must be positive",
        /// A provider's credit or debit whose reference does not begin with its prefix.
        ProviderReference => "a payment provider's reference must begin with its prefix",
        ExpiresBeforeIssued => "a stamp must expire after it is issued",
        KidNotOfKey => "a key's kid must be the id of its public key",
        Currency => "a policy's currency must be 1 to 32 characters, without control \
                     characters or surrounding spaces",
    }
}

reasons! {
    /// What was used before with another request ([`Refusal::IdempotencyConflict`]).
    Conflict {
        /// A credit or debit reference, with another account, amount or kind.
        CreditReference => "this reference was already used for another account or amount",
        /// An Idempotency-Key, with another purchase.
        IdempotencyKey => "this Idempotency-Key was used with a different request body",
        /// A new account's random id or API key (a collision: refused rather than overwritten).
        AccountCollided => "account id or key collided",
        /// A new post's random id.
        PostCollided => "post id collided",
        /// A new hold's random id.
        HoldCollided => "hold id collided",
    }
}

reasons! {
    /// What would overflow ([`Refusal::Overflow`]).
    Amount {
        Balance => "balance",
        PurchaseTotal => "purchase total",
        StampsPurchased => "stamps purchased",
        Score => "score",
    }
}

/// Why the rules refused a command. The command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Occurs when a post or vote carries another number of stamps than its price under the
    /// policy in force (`required` is `u64::MAX` when the price overflows).
    #[error("the action costs {required} stamps, {attached} were attached")]
    WrongStampCount { required: u64, attached: u64 },
    /// Occurs when the stamps of one post or vote were bought by more than one account.
    #[error("the stamps were bought by more than one account")]
    MixedPayers,
    /// Occurs when an account name is taken (compared after normalisation).
    #[error("an account with that name exists")]
    NameTaken,
    /// Occurs when the account, post or other named thing does not exist.
    #[error("no such {0}")]
    NotFound(Missing),
    /// Occurs when a purchase costs more than the balance, or the account is in debt
    /// (`balance` below zero).
    #[error("balance {balance} is below the price {total}")]
    InsufficientFunds { balance: i64, total: u64 },
    /// Occurs when a stamp in the command was spent before.
    #[error("stamp {0} was already spent")]
    AlreadySpent(Uuid),
    /// Occurs when a stamp that verifies was never sold by this server.
    #[error("stamp {0} was never sold by this server")]
    NotSold(Uuid),
    /// Occurs when the store's time has reached a stamp's expiry.
    #[error("stamp {0} expired")]
    Expired(Uuid),
    /// Occurs when an idempotency key or credit reference was used with another request.
    #[error("{0}")]
    IdempotencyConflict(Conflict),
    /// Occurs when an amount would overflow a balance or total.
    #[error("{0} would overflow")]
    Overflow(Amount),
    /// Occurs when a command is malformed: a stamp named twice, no stamps, a credit of zero.
    /// The service never sends these; the store refuses them anyway, because each would write
    /// an entry the auditor rejects.
    #[error("{0}")]
    Invalid(InvalidCommand),
    /// Occurs when a stamp id was already sold (a random id collided).
    #[error("stamp id {0} already exists")]
    DuplicateStamp(Uuid),
    /// Occurs when a purchase names an issuer key the ledger does not show active (never
    /// published, or retired since: another server started after `keys rotate` while this
    /// one still signs with the old key). The auditor rejects such a sale (`unknown_key`).
    #[error("issuer key {0} is not the ledger's active key")]
    KeyNotActive(Kid),
    /// Occurs when a key would be published active while the ledger shows another key active
    /// (servers with different keys directories on one database). The auditor rejects two
    /// active keys (`two_active_keys`).
    #[error("issuer key {0} is active in the ledger; retire it first")]
    AnotherKeyActive(Kid),
    /// Occurs when a stamp is held by a live hold (until it is captured, released or expires).
    #[error("stamp {0} is held")]
    StampHeld(Uuid),
    /// Occurs when a capture names a hold past its expiry, or released.
    #[error("the hold expired or was released")]
    HoldExpired,
    /// Occurs when a release names a captured hold.
    #[error("the hold was captured")]
    HoldCaptured,
    /// Occurs when the operator's credit or debit names a reference beginning with a payment
    /// provider's prefix (`stripe:`, `btcpay:`, `test:`): those are the providers' alone, so
    /// a manual credit can never take a payment's reference before the provider's credit.
    #[error("references beginning {prefix} belong to a payment provider")]
    ReservedReference { prefix: &'static str },
    /// Occurs when a debit would leave its account below zero and its revoke would take more
    /// than [`super::REVOKE_STAMPS_MAX`] stamps, or read more than
    /// [`super::REVOKE_PURCHASES_MAX`] unexpired purchases: the one revoke entry a debit owes
    /// would not fit. Nothing is debited; smaller debits go through.
    #[error(
        "this debit would revoke more than {} stamps (or look through more than {} \
         purchases) at once; debit it in smaller parts",
        super::REVOKE_STAMPS_MAX,
        super::REVOKE_PURCHASES_MAX
    )]
    RevokeTooLarge,
    /// Occurs when a hold's time to live is outside 1 to [`super::HOLD_TTL_SECS_MAX`] seconds.
    #[error("a hold's ttl_secs must be 1 to {} seconds", super::HOLD_TTL_SECS_MAX)]
    HoldTtl,
}

/// An action to price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuoteAction {
    Post,
    Vote { post_id: Uuid },
}

/// The result of applying one command.
pub type Applied = Result<Outcome, Refusal>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts clients read in a problem's detail (`Error::from(Refusal)`) are the contract:
    /// typed reasons keep them word for word.
    #[test]
    fn typed_reasons_keep_their_texts() {
        let texts = [
            (Refusal::NotFound(Missing::Account), "no such account"),
            (Refusal::NotFound(Missing::Post), "no such post"),
            (
                Refusal::Invalid(InvalidCommand::StampNamedTwice),
                "a stamp is named twice",
            ),
            (
                Refusal::Invalid(InvalidCommand::Currency),
                "a policy's currency must be 1 to 32 characters, without control characters \
                 or surrounding spaces",
            ),
            (
                Refusal::IdempotencyConflict(Conflict::IdempotencyKey),
                "this Idempotency-Key was used with a different request body",
            ),
            (
                Refusal::Overflow(Amount::PurchaseTotal),
                "purchase total would overflow",
            ),
        ];
        for (refusal, text) in texts {
            assert_eq!(refusal.to_string(), text);
        }
    }
}
