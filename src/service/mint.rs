//! The mint: accounts, credit, purchase, verify and redeem. Sells stamps and cancels each
//! once; the board spends through it.
//!
//! Transaction boundaries: a method checks its input and every stamp's signature first, in the
//! calling task (CPU work in parallel across requests), then submits exactly one
//! [`Command`] to the group committer. The rules apply that command all-or-nothing together
//! with its ledger entry, and the answer comes back only once the batch is durable. A refused
//! command changed nothing, so a failed request never spends a stamp or moves money.

use std::collections::HashSet;

use rand_core::{OsRng, RngCore as _};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::{sha256, unexpected};
use crate::api::{ErrorCode, StampState};
use crate::commit::Committer;
use crate::config::{Economy, Limits};
use crate::domain::{
    Account, CreditSource, DebitReason, Hold, HoldState, Post, PurchaseRecord, Revoked,
    StampRecord, StampRef,
};
use crate::error::Error;
use crate::keys::{public_key_text, KeyStatus, Keyring};
use crate::rules::{Command, Outcome, SpendFor};
use crate::stamp::{self, Payload, StampError};
use crate::store::Store;
use crate::time::Timestamp;
use crate::verify::BatchVerifier;
use std::sync::Arc;

/// Bytes of randomness in an API key (256 bits).
const API_KEY_RANDOM_BYTES: usize = 32;
/// The prefix of every API key, so a leaked one is recognisable (secret scanners, logs).
const API_KEY_PREFIX: &str = "ppk_";

/// A purchase as answered to the client.
#[derive(Debug, Clone)]
pub struct Purchase {
    pub record: PurchaseRecord,
    pub stamps: Vec<String>,
}

/// A hold as answered to its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub hold_id: Uuid,
    pub expires_at: Timestamp,
    pub count: u64,
}

/// A hold's state as `GET /v1/holds/{hold_id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldStatus {
    pub hold_id: Uuid,
    /// `held`, `captured`, `released` or `expired`.
    pub state: &'static str,
    pub count: u64,
    pub expires_at: Timestamp,
}

/// A credit as answered to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credited {
    /// The balance right after the credit (the first one's, for a replay); below zero while
    /// the account is in debt.
    pub balance: i64,
    pub ledger_index: u64,
    /// The reference was credited before: this credited nothing.
    pub replayed: bool,
}

/// A debit as answered to the operator or a payment provider's handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debited {
    /// The balance right after the debit and its revoke (the first one's, for a replay);
    /// below zero for a debt.
    pub balance: i64,
    pub ledger_index: u64,
    /// The reference was debited before: this debited nothing.
    pub replayed: bool,
    /// The revoke the debit caused, if it left the balance below zero with stamps to take.
    pub revoked: Option<Revoked>,
}

/// The answer of `POST /v1/stamps/verify`.
#[derive(Debug, Clone)]
pub struct Verification {
    pub valid: bool,
    pub stamp_id: Option<Uuid>,
    pub kid: Option<String>,
    pub state: Option<StampState>,
    pub issued_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub code: Option<ErrorCode>,
}

/// A finished spend.
#[derive(Debug, Clone)]
pub struct Spend {
    pub spent_at: Timestamp,
    pub ledger_index: u64,
    pub post: Option<Post>,
    /// Stamps cancelled.
    pub cost: u64,
    /// The refund this vote completed, if any.
    pub refund_ledger_index: Option<u64>,
}

pub struct Mint {
    store: Arc<dyn Store>,
    committer: Committer,
    keyring: Keyring,
    economy: Economy,
    limits: Limits,
    admin_token_sha256: [u8; 32],
    verifier: BatchVerifier,
}

/// Hides a spend whose ledger entry is not yet durable (its batch is between apply and sync):
/// a crash then would undo it, so no reader may be told the stamp is spent. The spender is
/// answered only after the sync, and the durable size grows before that answer, so the
/// spender reads its own spend.
fn only_durable(mut record: StampRecord, durable_size: u64) -> StampRecord {
    if record
        .spent
        .as_ref()
        .is_some_and(|s| s.ledger_index >= durable_size)
    {
        record.spent = None;
    }
    record
}

impl Mint {
    pub(super) fn new(
        store: Arc<dyn Store>,
        committer: Committer,
        keyring: Keyring,
        economy: Economy,
        limits: Limits,
        admin_token: &str,
    ) -> Result<Mint, Error> {
        Ok(Mint {
            store,
            committer,
            keyring,
            economy,
            limits,
            admin_token_sha256: sha256(admin_token.as_bytes()),
            verifier: BatchVerifier::start()
                .map_err(|e| Error::Internal(format!("cannot start verifier thread: {e}")))?,
        })
    }

    /// Publishes in the ledger any key whose status it has not recorded yet (the first key on
    /// first start, both keys after a rotation).
    pub(super) async fn publish_keys(&self) -> Result<(), Error> {
        let published = self.store.published_keys()?;
        // Retirements first, so the ledger never shows two active keys at once.
        let mut keys: Vec<_> = self.keyring.keys().to_vec();
        keys.sort_by_key(|k| k.status == KeyStatus::Active);
        for key in keys {
            let known = published
                .iter()
                .find(|p| p.kid == key.kid)
                .map(|p| p.status);
            if known == Some(key.status) {
                continue;
            }
            let outcome = self
                .committer
                .submit(Command::KeyEvent {
                    kid: key.kid,
                    public_key: public_key_text(&key.verifying),
                    status: key.status,
                })
                .await??;
            tracing::info!(kid = %key.kid, status = key.status.as_str(), ?outcome, "published key in ledger");
        }
        Ok(())
    }

    /// Writes the policy in force to the ledger unless it is already the last one written
    /// (before any entry it prices: at start).
    pub(super) async fn publish_policy(&self) -> Result<(), Error> {
        let outcome = self
            .committer
            .submit(Command::Policy {
                policy: self.economy.policy.clone(),
            })
            .await??;
        if let Outcome::Policy {
            ledger_index: Some(index),
        } = outcome
        {
            tracing::info!(ledger_index = index, policy = ?self.economy.policy, "published policy in ledger");
        }
        Ok(())
    }

    pub fn economy(&self) -> &Economy {
        &self.economy
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Checks the operator token in constant time.
    pub fn check_admin(&self, token: Option<&str>) -> Result<(), Error> {
        let token = token.ok_or(Error::Unauthorized("admin token required"))?;
        if bool::from(sha256(token.as_bytes()).ct_eq(&self.admin_token_sha256)) {
            Ok(())
        } else {
            Err(Error::Unauthorized("wrong admin token"))
        }
    }

    /// Finds the account of an API key. Keys are stored only as SHA-256 hashes; the lookup is
    /// by hash and the found hash is compared again in constant time.
    pub fn authenticate(&self, api_key: Option<&str>) -> Result<Account, Error> {
        let api_key = api_key.ok_or(Error::Unauthorized("API key required"))?;
        let hash = sha256(api_key.as_bytes());
        self.store
            .account_by_api_key(&hash)?
            .ok_or(Error::Unauthorized("unknown API key"))
    }

    pub async fn create_account(&self, name: Option<String>) -> Result<(Uuid, String), Error> {
        if let Some(name) = &name {
            check_name(name, self.limits.account_name_chars_max)?;
        }
        let mut secret = [0u8; API_KEY_RANDOM_BYTES];
        OsRng.fill_bytes(&mut secret);
        let api_key = format!("{API_KEY_PREFIX}{}", hex::encode(secret));
        let account_id = Uuid::new_v4();
        self.committer
            .submit(Command::CreateAccount {
                account_id,
                name,
                api_key_sha256: sha256(api_key.as_bytes()),
            })
            .await??;
        Ok((account_id, api_key))
    }

    /// Credits `amount` under `reference`, once: the same reference again answers the first
    /// credit (`replayed`). The operator's route passes [`CreditSource::Operator`], and the
    /// rules refuse its references that begin with a provider's prefix
    /// (400 `bad_request`); a provider passes its own source and a reference that begins
    /// with its prefix (`crate::payments::reference`).
    pub async fn credit(
        &self,
        account_id: Uuid,
        amount: u64,
        reference: String,
        source: CreditSource,
    ) -> Result<Credited, Error> {
        self.check_money(amount, &reference)?;
        match self
            .committer
            .submit(Command::Credit {
                account_id,
                amount,
                reference,
                source,
            })
            .await??
        {
            Outcome::Credited {
                balance,
                ledger_index,
                replayed,
            } => Ok(Credited {
                balance,
                ledger_index,
                replayed,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Debits `amount` under `reference`, once: the same reference, account and amount again
    /// answers the first debit (`replayed`). The balance may go below zero: the rules then
    /// revoke the account's unspent, unexpired stamps in the same transaction, and what they
    /// do not cover stays a debt. References belong to their source as for [`Mint::credit`];
    /// a debit too large to revoke at once is refused (`debit_too_large`).
    pub async fn debit(
        &self,
        account_id: Uuid,
        amount: u64,
        reference: String,
        source: CreditSource,
        reason: DebitReason,
    ) -> Result<Debited, Error> {
        self.check_money(amount, &reference)?;
        match self
            .committer
            .submit(Command::Debit {
                account_id,
                amount,
                reference,
                source,
                reason,
            })
            .await??
        {
            Outcome::Debited {
                balance,
                ledger_index,
                replayed,
                revoked,
            } => Ok(Debited {
                balance,
                ledger_index,
                replayed,
                revoked,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// The bounds of a credit's or debit's amount and reference.
    fn check_money(&self, amount: u64, reference: &str) -> Result<(), Error> {
        if amount == 0 || amount > self.limits.credit_amount_max {
            return Err(Error::BadRequest(format!(
                "amount must be 1 to {}",
                self.limits.credit_amount_max
            )));
        }
        let chars = reference.chars().count();
        if chars == 0 || chars > self.limits.reference_chars_max {
            return Err(Error::BadRequest(format!(
                "reference must be 1 to {} characters",
                self.limits.reference_chars_max
            )));
        }
        Ok(())
    }

    /// Sells `count` stamps. With an idempotency key, a replay answers the first purchase again
    /// (the same stamps, signed again: Ed25519 signatures are deterministic) and charges nothing.
    pub async fn purchase(
        &self,
        account: &Account,
        count: u64,
        idempotency_key: Option<&str>,
    ) -> Result<Purchase, Error> {
        let max = self.limits.purchase_count_max;
        if count == 0 || count > u64::from(max) {
            return Err(Error::BadRequest(format!("count must be 1 to {max}")));
        }
        if let Some(key) = idempotency_key {
            if key.is_empty() || key.len() > self.limits.idempotency_key_bytes_max {
                return Err(Error::BadRequest(format!(
                    "Idempotency-Key must be 1 to {} bytes",
                    self.limits.idempotency_key_bytes_max
                )));
            }
        }
        let key = self.keyring.active();
        let issued_at = Timestamp::now();
        let expires_at = issued_at.plus_secs(self.economy.stamp_ttl_secs);
        let stamp_ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
        let outcome = self
            .committer
            .submit(Command::Purchase {
                account_id: account.account_id,
                unit_price: self.economy.policy.stamp_price,
                idempotency_key_sha256: idempotency_key.map(|k| sha256(k.as_bytes())),
                purchase_id: Uuid::new_v4(),
                kid: key.kid,
                issued_at,
                expires_at,
                stamp_ids,
            })
            .await??;
        let Outcome::Purchased { record, .. } = outcome else {
            return Err(unexpected(&outcome));
        };
        let stamps = self.sign_stamps(&record)?;
        Ok(Purchase { record, stamps })
    }

    /// Signs the stamps of a purchase record. Signing happens after the sale is durable, so a
    /// stamp string never exists for a sale that could be lost in a crash.
    fn sign_stamps(&self, record: &PurchaseRecord) -> Result<Vec<String>, Error> {
        let signing = self
            .keyring
            .signing_key(&record.kid)
            .ok_or_else(|| Error::Internal(format!("no signing key {}", record.kid)))?;
        Ok(record
            .stamp_ids
            .iter()
            .map(|id| {
                stamp::sign(
                    &Payload {
                        kid: record.kid,
                        stamp_id: *id,
                        issued_at: record.issued_at.unix(),
                        expires_at: record.expires_at.unix(),
                        value: stamp::VALUE_V1,
                        holder: [0; 32],
                    },
                    signing,
                )
            })
            .collect())
    }

    /// Checks a stamp without spending it. Never fails for a bad stamp: the answer says why.
    pub async fn verify(&self, text: &str) -> Result<Verification, Error> {
        let now = Timestamp::now().unix();
        let decoded = match stamp::decode(text) {
            Ok(d) => d,
            Err(e) => {
                return Ok(Verification {
                    valid: false,
                    stamp_id: None,
                    kid: None,
                    state: None,
                    issued_at: None,
                    expires_at: None,
                    code: Some(ErrorCode::from(&e)),
                })
            }
        };
        let p = &decoded.payload;
        let mut answer = Verification {
            valid: false,
            stamp_id: Some(p.stamp_id),
            kid: Some(p.kid.to_hex()),
            state: None,
            issued_at: Some(Timestamp::from_unix(p.issued_at)),
            expires_at: Some(Timestamp::from_unix(p.expires_at)),
            code: None,
        };
        match self.check_stamp(text, now).await {
            Err(StampError::Expired) | Ok(_) => {}
            Err(e) => {
                // Unknown key or bad signature: nothing about the stamp can be trusted.
                answer.code = Some(ErrorCode::from(&e));
                return Ok(answer);
            }
        }
        let record = self.durable_stamp(p.stamp_id)?;
        let spent = record.as_ref().is_some_and(|r| r.spent.is_some());
        let expired = now >= p.expires_at;
        answer.state = Some(StampState::of(spent, expired));
        answer.code = if expired {
            Some(ErrorCode::StampExpired)
        } else if spent {
            Some(ErrorCode::StampAlreadySpent)
        } else if record.is_none() {
            Some(ErrorCode::InvalidStamp)
        } else {
            None
        };
        answer.valid = answer.code.is_none();
        Ok(answer)
    }

    /// Checks 1 to 4 of docs/stamp-format.md for one stamp, in order; the signature goes through
    /// the batch verifier.
    async fn check_stamp(&self, text: &str, now: i64) -> Result<stamp::Decoded, StampError> {
        let decoded = stamp::decode(text)?;
        let key = decoded.issuer_key(|kid| self.keyring.lookup(kid))?;
        let (message, signature) = decoded.signed_parts();
        if !self.verifier.verify(message, signature, key).await {
            return Err(StampError::BadSignature);
        }
        decoded.check_value()?;
        decoded.check_expiry(now)?;
        Ok(decoded)
    }

    /// Decodes and verifies the stamps of one request (checks 1 to 4). Refuses duplicates: two
    /// encodings of one stamp are one stamp.
    pub(super) async fn check_stamps(&self, texts: &[String]) -> Result<Vec<StampRef>, Error> {
        let now = Timestamp::now().unix();
        let mut stamps = Vec::with_capacity(texts.len());
        let mut seen = HashSet::with_capacity(texts.len());
        for text in texts {
            let decoded = self.check_stamp(text, now).await?;
            if !seen.insert(decoded.payload.stamp_id) {
                return Err(Error::BadRequest("the same stamp is attached twice".into()));
            }
            stamps.push(StampRef {
                stamp_id: decoded.payload.stamp_id,
                issued_at: Timestamp::from_unix(decoded.payload.issued_at),
            });
        }
        Ok(stamps)
    }

    /// Submits a spend and waits until it is durable (or refused).
    pub(super) async fn spend(
        &self,
        stamps: Vec<StampRef>,
        spend_for: SpendFor,
    ) -> Result<Spend, Error> {
        let outcome = self
            .committer
            .submit(Command::Spend { stamps, spend_for })
            .await??;
        match outcome {
            Outcome::Spent {
                spent_at,
                ledger_index,
                post,
                cost,
                refund_ledger_index,
            } => Ok(Spend {
                spent_at,
                ledger_index,
                post,
                cost,
                refund_ledger_index,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Cancels one stamp for another site's action.
    pub async fn redeem(&self, stamp_text: &str, context: String) -> Result<(Uuid, Spend), Error> {
        if context.is_empty() || context.len() > self.limits.context_bytes_max {
            return Err(Error::BadRequest(format!(
                "context must be 1 to {} bytes",
                self.limits.context_bytes_max
            )));
        }
        let stamps = self.check_stamps(&[stamp_text.to_string()]).await?;
        let id = stamps
            .first()
            .map(|s| s.stamp_id)
            .ok_or_else(|| Error::Internal("a checked stamp went missing".into()))?;
        let spend = self.spend(stamps, SpendFor::Redeem { context }).await?;
        Ok((id, spend))
    }

    /// Holds stamps for `ttl_secs` (capped at their earliest expiry): each passes the checks
    /// of a redeem; nothing is written to the ledger.
    pub async fn hold(
        &self,
        stamp_texts: &[String],
        context: String,
        ttl_secs: u64,
    ) -> Result<Held, Error> {
        if context.is_empty() || context.len() > self.limits.context_bytes_max {
            return Err(Error::BadRequest(format!(
                "context must be 1 to {} bytes",
                self.limits.context_bytes_max
            )));
        }
        if !(1..=crate::rules::HOLD_TTL_SECS_MAX).contains(&ttl_secs) {
            return Err(crate::rules::Refusal::HoldTtl.into());
        }
        if stamp_texts.is_empty() || stamp_texts.len() > self.limits.stamps_per_request_max {
            return Err(Error::BadRequest(format!(
                "a hold takes 1 to {} stamps",
                self.limits.stamps_per_request_max
            )));
        }
        let stamps = self.check_stamps(stamp_texts).await?;
        let command = Command::Hold {
            hold_id: Uuid::new_v4(),
            stamps,
            context,
            ttl_secs,
        };
        match self.committer.submit(command).await?? {
            Outcome::Held {
                hold_id,
                expires_at,
                count,
            } => Ok(Held {
                hold_id,
                expires_at,
                count,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Spends a live hold's stamps as one redeem of its context; a second capture answers
    /// the first one's entry and time.
    pub async fn capture(&self, hold_id: Uuid) -> Result<(u64, Timestamp), Error> {
        match self
            .committer
            .submit(Command::Capture { hold_id })
            .await??
        {
            Outcome::Captured {
                ledger_index,
                spent_at,
                ..
            } => Ok((ledger_index, spent_at)),
            Outcome::HoldBroken { stamp_id } => Err(Error::AlreadySpent(stamp_id)),
            other => Err(unexpected(&other)),
        }
    }

    /// Gives a hold's stamps back (a released or expired hold answers the same); the hold as
    /// it is afterwards.
    pub async fn release(&self, hold_id: Uuid) -> Result<HoldStatus, Error> {
        match self
            .committer
            .submit(Command::Release { hold_id })
            .await??
        {
            Outcome::Released => self.hold_status(hold_id),
            other => Err(unexpected(&other)),
        }
    }

    /// A hold's state now. A capture whose entry is not yet durable is shown as held, as a
    /// stamp's spend is ([`only_durable`]).
    pub fn hold_status(&self, hold_id: Uuid) -> Result<HoldStatus, Error> {
        let hold: Hold = self.store.hold(hold_id)?.ok_or(Error::NotFound("hold"))?;
        let now = Timestamp::now();
        let state = match hold.state {
            HoldState::Captured { ledger_index, .. }
                if !self.store.shared() && ledger_index >= self.committer.durable_size() =>
            {
                "held"
            }
            _ => hold.state_name(now),
        };
        Ok(HoldStatus {
            hold_id,
            state,
            count: hold.stamps.len() as u64,
            expires_at: hold.expires_at,
        })
    }

    /// The store the service runs on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn stamp_status(&self, stamp_id: Uuid) -> Result<StampRecord, Error> {
        self.durable_stamp(stamp_id)?
            .ok_or(Error::NotFound("stamp"))
    }

    /// A stamp as readers may see it: only what is durable. The record is read before the
    /// durable size, so a spend that became durable in between is shown. A shared store's
    /// reads see only committed rows, and a commit there is durable: nothing to hide, and no
    /// second query for the size.
    fn durable_stamp(&self, stamp_id: Uuid) -> Result<Option<StampRecord>, Error> {
        let record = self.store.stamp(stamp_id)?;
        if self.store.shared() {
            return Ok(record);
        }
        Ok(record.map(|r| only_durable(r, self.committer.durable_size())))
    }
}

/// An account's name, shown on its posts as a verified author: 1 to `max` characters, no
/// space at either end, and nothing invisible or controlling (Unicode's control, format,
/// surrogate, private-use and unassigned characters, line and paragraph separators), so that
/// `alice` and `alice\u{200b}` or `alice ` cannot pass for one another.
fn check_name(name: &str, max: usize) -> Result<(), Error> {
    use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};
    let chars = name.chars().count();
    if chars == 0 || chars > max {
        return Err(Error::BadRequest(format!(
            "name must be 1 to {max} characters"
        )));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(Error::BadRequest(
            "name must not begin or end with a space".into(),
        ));
    }
    let hidden = name.chars().find(|c| {
        c.general_category_group() == GeneralCategoryGroup::Other
            || matches!(
                c.general_category(),
                GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
            )
    });
    match hidden {
        Some(c) => Err(Error::BadRequest(format!(
            "name must not hold invisible or control characters (U+{:04X})",
            u32::from(c)
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SpentRecord;
    use crate::ledger::entry::SpendAction;

    #[test]
    fn names_refuse_invisible_and_controlling_characters() {
        for name in ["alice", "Ada Lovelace", "Åke", "名前", "zoë🦀", "o'brien-2"] {
            assert!(check_name(name, 64).is_ok(), "{name:?}");
        }
        for name in [
            "",
            " alice",
            "alice ",
            "\u{3000}alice",
            "ali\u{200b}ce",
            "alice\u{202e}",
            "a\u{0000}",
            "a\nb",
            "a\u{2028}b",
            "a\u{e000}",
            "a\u{feff}",
        ] {
            assert!(
                matches!(check_name(name, 64), Err(Error::BadRequest(_))),
                "{name:?}"
            );
        }
        assert!(check_name(&"a".repeat(64), 64).is_ok());
        assert!(check_name(&"a".repeat(65), 64).is_err());
    }

    fn spent_at_index(ledger_index: u64) -> StampRecord {
        StampRecord {
            stamp_id: Uuid::from_u128(1),
            buyer: Uuid::from_u128(2),
            kid: crate::stamp::Kid([0; 8]),
            issued_at: Timestamp::from_unix(0),
            expires_at: Timestamp::from_unix(100),
            spent: Some(SpentRecord {
                spent_at: Timestamp::from_unix(1),
                action: SpendAction::Redeem,
                spent_for: "site".into(),
                ledger_index,
            }),
        }
    }

    #[test]
    fn a_spend_is_shown_only_once_its_entry_is_durable() {
        // Entry 7 is durable once the durable size is 8 or more.
        assert!(only_durable(spent_at_index(7), 7).spent.is_none());
        assert!(only_durable(spent_at_index(7), 0).spent.is_none());
        assert!(only_durable(spent_at_index(7), 8).spent.is_some());
        assert!(only_durable(spent_at_index(7), u64::MAX).spent.is_some());
        let mut unspent = spent_at_index(7);
        unspent.spent = None;
        assert_eq!(only_durable(unspent.clone(), 0), unspent);
    }
}
