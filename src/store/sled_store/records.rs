//! The sled backend's on-disk records: private twins of the domain types, so that renaming a
//! domain field never changes the bytes on disk (and old data directories keep reading).
//! Field names and types here are the stored format: change them only with a migration.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::layout::{corrupt, decode_json, sold_len};
use crate::domain::{
    Account, CreditRecord, Hold, HoldState, MoneyKind, Policy, Post, PurchaseRecord, Revoked,
    SpentRecord, StampRef,
};
use crate::keys::{KeyStatus, PublishedKey};
use crate::ledger::entry::SpendAction;
use crate::stamp::Kid;
use crate::store::StoreError;
use crate::time::Timestamp;

/// `accounts` values.
#[derive(Serialize, Deserialize)]
pub(super) struct AccountRecord {
    account_id: Uuid,
    name: Option<String>,
    balance: u64,
    stamps_purchased: u64,
    stamps_spent: u64,
    created_at: i64,
    /// Added with refunds: records written before hold none.
    #[serde(default)]
    refunds_total: u64,
    /// Added with debits: records written before owe nothing, and an account that owes
    /// nothing is written as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    debt: u64,
}

impl AccountRecord {
    pub(super) fn encode(account: &Account) -> Result<Vec<u8>, StoreError> {
        to_json(&AccountRecord {
            account_id: account.account_id,
            name: account.name.clone(),
            balance: account.balance,
            stamps_purchased: account.stamps_purchased,
            stamps_spent: account.stamps_spent,
            created_at: account.created_at.unix(),
            refunds_total: account.refunds_total,
            debt: account.debt,
        })
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Account, StoreError> {
        let r: AccountRecord = decode_json(bytes, "accounts")?;
        Ok(Account {
            account_id: r.account_id,
            name: r.name,
            balance: r.balance,
            stamps_purchased: r.stamps_purchased,
            stamps_spent: r.stamps_spent,
            created_at: Timestamp::from_unix(r.created_at),
            refunds_total: r.refunds_total,
            debt: r.debt,
        })
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// `posts` values.
#[derive(Serialize, Deserialize)]
pub(super) struct PostRecord {
    post_id: Uuid,
    author: String,
    body: String,
    created_at: i64,
    score: i64,
    ledger_index: u64,
    seq: u64,
    // Added with the economy: posts written before hold none of these.
    #[serde(default)]
    verified: bool,
    #[serde(default)]
    payer: Option<Uuid>,
    #[serde(default)]
    cost: u64,
    #[serde(default)]
    votes_up: u64,
    #[serde(default)]
    votes_down: u64,
    #[serde(default)]
    voters: u64,
    #[serde(default)]
    up_voters: u64,
    #[serde(default)]
    base_postage: Option<u64>,
    #[serde(default)]
    refunded: bool,
}

impl PostRecord {
    pub(super) fn encode(post: &Post) -> Result<Vec<u8>, StoreError> {
        to_json(&PostRecord {
            post_id: post.post_id,
            author: post.author.clone(),
            body: post.body.clone(),
            created_at: post.created_at.unix(),
            score: post.score,
            ledger_index: post.ledger_index,
            seq: post.seq,
            verified: post.verified,
            payer: post.payer,
            cost: post.cost,
            votes_up: post.votes_up,
            votes_down: post.votes_down,
            voters: post.voters,
            up_voters: post.up_voters,
            base_postage: post.base_postage,
            refunded: post.refunded,
        })
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Post, StoreError> {
        let r: PostRecord = decode_json(bytes, "posts")?;
        Ok(Post {
            post_id: r.post_id,
            author: r.author,
            body: r.body,
            created_at: Timestamp::from_unix(r.created_at),
            score: r.score,
            ledger_index: r.ledger_index,
            seq: r.seq,
            verified: r.verified,
            payer: r.payer,
            cost: r.cost,
            votes_up: r.votes_up,
            votes_down: r.votes_down,
            voters: r.voters,
            up_voters: r.up_voters,
            base_postage: r.base_postage,
            refunded: r.refunded,
        })
    }
}

/// `purchase_keys` values.
#[derive(Serialize, Deserialize)]
pub(super) struct PurchaseKeyRecord {
    purchase_id: Uuid,
    account_id: Uuid,
    count: u32,
    unit_price: u64,
    total: u64,
    balance: u64,
    ledger_index: u64,
    kid: [u8; 8],
    issued_at: i64,
    expires_at: i64,
    stamp_ids: Vec<Uuid>,
}

impl PurchaseKeyRecord {
    pub(super) fn encode(p: &PurchaseRecord) -> Result<Vec<u8>, StoreError> {
        to_json(&PurchaseKeyRecord {
            purchase_id: p.purchase_id,
            account_id: p.account_id,
            count: p.count,
            unit_price: p.unit_price,
            total: p.total,
            balance: p.balance,
            ledger_index: p.ledger_index,
            kid: p.kid.0,
            issued_at: p.issued_at.unix(),
            expires_at: p.expires_at.unix(),
            stamp_ids: p.stamp_ids.clone(),
        })
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<PurchaseRecord, StoreError> {
        let r: PurchaseKeyRecord = decode_json(bytes, "purchase_keys")?;
        Ok(PurchaseRecord {
            purchase_id: r.purchase_id,
            account_id: r.account_id,
            count: r.count,
            unit_price: r.unit_price,
            total: r.total,
            balance: r.balance,
            ledger_index: r.ledger_index,
            kid: Kid(r.kid),
            issued_at: Timestamp::from_unix(r.issued_at),
            expires_at: Timestamp::from_unix(r.expires_at),
            stamp_ids: r.stamp_ids,
        })
    }
}

/// `credits` values.
#[derive(Serialize, Deserialize)]
pub(super) struct CreditKeyRecord {
    account_id: Uuid,
    amount: u64,
    /// Signed since debits; records written before hold a non-negative number, which reads
    /// the same.
    balance: i64,
    ledger_index: u64,
    /// Only on debits (credits are written as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    debit: Option<DebitPart>,
}

/// What a `credits` value of a debit adds: the revoke that followed it, if any.
#[derive(Serialize, Deserialize)]
pub(super) struct DebitPart {
    revoke: Option<RevokePart>,
}

#[derive(Serialize, Deserialize)]
struct RevokePart {
    ledger_index: u64,
    stamps: u64,
    amount: u64,
}

impl CreditKeyRecord {
    pub(super) fn encode(c: &CreditRecord) -> Result<Vec<u8>, StoreError> {
        to_json(&CreditKeyRecord {
            account_id: c.account_id,
            amount: c.amount,
            balance: c.balance,
            ledger_index: c.ledger_index,
            debit: match c.kind {
                MoneyKind::Credit => None,
                MoneyKind::Debit { revoked } => Some(DebitPart {
                    revoke: revoked.map(|r| RevokePart {
                        ledger_index: r.ledger_index,
                        stamps: r.stamps,
                        amount: r.amount,
                    }),
                }),
            },
        })
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<CreditRecord, StoreError> {
        let r: CreditKeyRecord = decode_json(bytes, "credits")?;
        Ok(CreditRecord {
            account_id: r.account_id,
            amount: r.amount,
            balance: r.balance,
            ledger_index: r.ledger_index,
            kind: match r.debit {
                None => MoneyKind::Credit,
                Some(debit) => MoneyKind::Debit {
                    revoked: debit.revoke.map(|r| Revoked {
                        ledger_index: r.ledger_index,
                        stamps: r.stamps,
                        amount: r.amount,
                    }),
                },
            },
        })
    }
}

/// The spend part of a `stamps` value.
#[derive(Serialize, Deserialize)]
pub(super) struct SpentPart {
    spent_at: i64,
    action: StoredAction,
    spent_for: String,
    ledger_index: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoredAction {
    Post,
    Vote,
    Redeem,
    Revoke,
}

impl SpentPart {
    pub(super) fn encode(s: &SpentRecord) -> Result<Vec<u8>, StoreError> {
        to_json(&SpentPart {
            spent_at: s.spent_at.unix(),
            action: match s.action {
                SpendAction::Post => StoredAction::Post,
                SpendAction::Vote => StoredAction::Vote,
                SpendAction::Redeem => StoredAction::Redeem,
                SpendAction::Revoke => StoredAction::Revoke,
            },
            spent_for: s.spent_for.clone(),
            ledger_index: s.ledger_index,
        })
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<SpentRecord, StoreError> {
        let r: SpentPart = decode_json(bytes, "stamps")?;
        Ok(SpentRecord {
            spent_at: Timestamp::from_unix(r.spent_at),
            action: match r.action {
                StoredAction::Post => SpendAction::Post,
                StoredAction::Vote => SpendAction::Vote,
                StoredAction::Redeem => SpendAction::Redeem,
                StoredAction::Revoke => SpendAction::Revoke,
            },
            spent_for: r.spent_for,
            ledger_index: r.ledger_index,
        })
    }
}

/// A published key as kept in `meta` (`key:<kid>`). Directories written before public keys
/// were kept hold only the status text (`active` / `retired`).
#[derive(Serialize, Deserialize)]
pub(super) struct KeyRecord {
    status: StoredStatus,
    public_key: String,
    published_at: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoredStatus {
    Active,
    Retired,
}

impl KeyRecord {
    pub(super) fn encode(key: &PublishedKey) -> Result<Vec<u8>, StoreError> {
        to_json(&KeyRecord {
            status: match key.status {
                KeyStatus::Active => StoredStatus::Active,
                KeyStatus::Retired => StoredStatus::Retired,
            },
            public_key: key.public_key.clone().unwrap_or_default(),
            published_at: key.published_at.to_rfc3339(),
        })
    }

    pub(super) fn decode(kid: Kid, bytes: &[u8]) -> Result<PublishedKey, StoreError> {
        let legacy = |status| PublishedKey {
            kid,
            public_key: None,
            status,
            published_at: Timestamp::from_unix(0),
        };
        match bytes {
            b"active" => Ok(legacy(KeyStatus::Active)),
            b"retired" => Ok(legacy(KeyStatus::Retired)),
            _ => {
                let r: KeyRecord = decode_json(bytes, "meta")?;
                let published_at = Timestamp::parse_rfc3339(&r.published_at)
                    .ok_or_else(|| corrupt("meta", "key published_at"))?;
                Ok(PublishedKey {
                    kid,
                    public_key: Some(r.public_key).filter(|k| !k.is_empty()),
                    status: match r.status {
                        StoredStatus::Active => KeyStatus::Active,
                        StoredStatus::Retired => KeyStatus::Retired,
                    },
                    published_at,
                })
            }
        }
    }
}

/// The policy in force, in `meta` (`policy`).
#[derive(Serialize, Deserialize)]
pub(super) struct PolicyRecord {
    currency: String,
    stamp_price: u64,
    post_cost: u64,
    vote_cost: u64,
    repeat_window_secs: u64,
    repeat_factor: u64,
    vote_pricing: String,
    refund_voters: u64,
}

impl PolicyRecord {
    pub(super) fn encode(p: &Policy) -> Result<Vec<u8>, StoreError> {
        to_json(&PolicyRecord {
            currency: p.currency.clone(),
            stamp_price: p.stamp_price,
            post_cost: p.post_cost,
            vote_cost: p.vote_cost,
            repeat_window_secs: p.repeat_window_secs,
            repeat_factor: p.repeat_factor,
            vote_pricing: p.vote_pricing.as_str().to_string(),
            refund_voters: p.refund_voters,
        })
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Policy, StoreError> {
        let r: PolicyRecord = decode_json(bytes, "meta")?;
        Ok(Policy {
            currency: r.currency,
            stamp_price: r.stamp_price,
            post_cost: r.post_cost,
            vote_cost: r.vote_cost,
            repeat_window_secs: r.repeat_window_secs,
            repeat_factor: r.repeat_factor,
            vote_pricing: r.vote_pricing.parse().map_err(|e| corrupt("meta", e))?,
            refund_voters: r.refund_voters,
        })
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Storage(e.to_string()))
}

/// The spend part of a `stamps` value, if the stamp was spent.
pub(super) fn decode_spent(bytes: &[u8]) -> Result<Option<SpentRecord>, StoreError> {
    match bytes.get(sold_len(bytes)..) {
        Some([]) | None => Ok(None),
        Some(json) => SpentPart::decode(json).map(Some),
    }
}

/// `holds` values under `h` + hold id.
#[derive(Serialize, Deserialize)]
pub(super) struct HoldRecord {
    hold_id: Uuid,
    /// (stamp id, issued_at) of each stamp held.
    stamps: Vec<(Uuid, i64)>,
    context: String,
    created_at: i64,
    expires_at: i64,
    /// `held`, `captured` or `released`.
    state: String,
    /// The capture's entry and time, once captured.
    captured: Option<(u64, i64)>,
}

impl HoldRecord {
    pub(super) fn encode(hold: &Hold) -> Result<Vec<u8>, StoreError> {
        let (state, captured) = match hold.state {
            HoldState::Held => ("held", None),
            HoldState::Captured {
                ledger_index,
                spent_at,
            } => ("captured", Some((ledger_index, spent_at.unix()))),
            HoldState::Released => ("released", None),
        };
        to_json(&HoldRecord {
            hold_id: hold.hold_id,
            stamps: hold
                .stamps
                .iter()
                .map(|s| (s.stamp_id, s.issued_at.unix()))
                .collect(),
            context: hold.context.clone(),
            created_at: hold.created_at.unix(),
            expires_at: hold.expires_at.unix(),
            state: state.to_string(),
            captured,
        })
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Hold, StoreError> {
        let r: HoldRecord = decode_json(bytes, "holds")?;
        let state = match (r.state.as_str(), r.captured) {
            ("held", None) => HoldState::Held,
            ("released", None) => HoldState::Released,
            ("captured", Some((ledger_index, spent_at))) => HoldState::Captured {
                ledger_index,
                spent_at: Timestamp::from_unix(spent_at),
            },
            (other, _) => return Err(corrupt("holds", format!("hold state {other:?}"))),
        };
        Ok(Hold {
            hold_id: r.hold_id,
            stamps: r
                .stamps
                .into_iter()
                .map(|(stamp_id, issued_at)| StampRef {
                    stamp_id,
                    issued_at: Timestamp::from_unix(issued_at),
                })
                .collect(),
            context: r.context,
            created_at: Timestamp::from_unix(r.created_at),
            expires_at: Timestamp::from_unix(r.expires_at),
            state,
        })
    }
}
