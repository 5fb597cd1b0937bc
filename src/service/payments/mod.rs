//! Money in: payments through the providers of `crate::payments`, credited to balances once.
//!
//! What this service does, and where each promise is kept:
//!
//! - **Create** (`POST /v1/payments`): the provider creates the payment first; only then is
//!   it recorded (`store::Payments`), so a provider that fails leaves nothing pending. With an
//!   `Idempotency-Key`, the payment id is derived from the account and the key, so a retry
//!   (even racing the first) names the same payment, and Stripe's own idempotency key (the
//!   payment id) gives it the same session.
//! - **Credit once**: a confirmed payment is credited through the mint under the provider's
//!   reference (`payments::reference::payment`), whatever asked (a webhook, a status request,
//!   a sweep, the pay page, an operator). The ledger refuses a second credit under one
//!   reference, so it decides, on one database shared by any number of servers; the payment
//!   record only follows (`credited_ledger_index`, `status`), by compare-and-set.
//! - **Webhooks are hints** (`events`): verified, then confirmed with the provider's API,
//!   then acted on. A provider that cannot be asked is 503, and the provider retries.
//! - **Pending payments are asked about**: on a status request (at most every
//!   [`RECHECK_SECS`] per payment, across servers: the check is claimed by compare-and-set),
//!   at start and every [`SWEEP_SECS`] until [`SWEEP_AFTER_EXPIRY_SECS`] after `expires_at`;
//!   a sweep round asks at most [`sweep::SWEEP_ROUND_MAX`] of them and the rounds go round
//!   them all, so none waits more than ⌈pending / `SWEEP_ROUND_MAX`⌉ rounds (`sweep`).
//! - **Refunds and disputes** (`events`) are debits, each decided into the record first
//!   (`PaymentMove`) and then made under its own unique reference, so a stop half-way or a
//!   racing server completes the same movement instead of deciding a second one.

pub mod events;
mod moves;
mod sweep;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;
use uuid::Uuid;

use super::{sha256, Mint};
use crate::domain::{Account, CreditSource, Payment, PaymentStatus};
use crate::error::Error;
use crate::payments::{reference, Checked, Money, NewPayment, Provider, Providers, Verdict};
use crate::store::{PaymentOrder, Store, PAYMENTS_LIST_MAX};
use crate::time::Timestamp;

/// A pending payment is asked about at most once per this many seconds by status requests.
pub const RECHECK_SECS: i64 = 10;
/// Seconds between two sweeps of pending payments.
pub const SWEEP_SECS: u64 = 60;
/// How long after `expires_at` a pending payment is still asked about; then it is expired.
pub const SWEEP_AFTER_EXPIRY_SECS: u64 = 3600;
/// Tries of one compare-and-set update before giving up (503): other servers changed the
/// payment this often in between.
const UPDATE_ATTEMPTS_MAX: usize = 32;
/// Longest note of a settlement by hand.
pub const SETTLE_NOTE_CHARS_MAX: usize = 500;
/// Most bytes of a payment's `Idempotency-Key` (as for purchases).
const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

/// The payments service.
pub struct Payments {
    mint: Arc<Mint>,
    store: Arc<dyn Store>,
    providers: Providers,
    sweeper: Mutex<Option<AbortHandle>>,
    /// Where the last sweep round stopped in the pending payments' newest-first order: the
    /// next round goes on after it (`None`: from the newest).
    sweep_cursor: Mutex<Option<PaymentOrder>>,
}

impl Drop for Payments {
    fn drop(&mut self) {
        if let Ok(mut sweeper) = self.sweeper.lock() {
            if let Some(task) = sweeper.take() {
                task.abort();
            }
        }
    }
}

/// One enabled provider, as `GET /v1/payments/providers` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderInfo {
    pub provider: &'static str,
    pub currency: String,
    pub min: u64,
    pub max: u64,
    pub test_mode: bool,
}

/// Counts a payment reaching `status` ([`crate::telemetry::PAYMENTS`]).
fn count_status(provider: &str, status: PaymentStatus) {
    metrics::counter!(
        crate::telemetry::PAYMENTS,
        "provider" => provider.to_string(),
        "status" => status.as_str(),
    )
    .increment(1);
}

impl Payments {
    pub(super) fn new(mint: Arc<Mint>, store: Arc<dyn Store>, providers: Providers) -> Payments {
        Payments {
            mint,
            store,
            providers,
            sweeper: Mutex::new(None),
            sweep_cursor: Mutex::new(None),
        }
    }

    /// Starts the sweeps: one now (every pending payment is asked about, whenever it was
    /// last), then one every [`SWEEP_SECS`]. Stops when the service is dropped. Nothing to
    /// do without a provider.
    pub(super) fn start_sweeps(self: &Arc<Self>) {
        if self.providers.is_empty() {
            return;
        }
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut first = true;
            loop {
                let Some(service) = weak.upgrade() else {
                    return;
                };
                let swept = service.sweep(first).await;
                drop(service);
                if swept > 0 {
                    tracing::info!(payments = swept, "swept pending payments");
                }
                first = false;
                tokio::time::sleep(Duration::from_secs(SWEEP_SECS)).await;
            }
        });
        if let Ok(mut sweeper) = self.sweeper.lock() {
            *sweeper = Some(task.abort_handle());
        }
    }

    /// The enabled providers.
    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.providers
            .all()
            .iter()
            .map(|p| ProviderInfo {
                provider: p.name(),
                currency: p.currency().to_string(),
                min: self.providers.payment_min,
                max: self.providers.payment_max,
                test_mode: p.test_mode(),
            })
            .collect()
    }

    /// Whether the provider named is in test mode (the answers about its payments say so).
    pub fn test_mode(&self, provider: &str) -> bool {
        provider == crate::payments::test_provider::NAME
    }

    /// The webhook routes' body limit.
    pub fn webhook_body_max_bytes(&self) -> usize {
        self.providers.webhook_body_max_bytes
    }

    /// Creates a payment of `amount` through `provider` for `account`. With an idempotency
    /// key, a replay answers the payment the first request made (`true` in the pair).
    pub async fn create(
        &self,
        account: &Account,
        provider_name: &str,
        amount: u64,
        idempotency_key: Option<&str>,
    ) -> Result<(Payment, bool), Error> {
        let provider = self.providers.get(provider_name).ok_or_else(|| {
            let enabled: Vec<&str> = self.providers.all().iter().map(|p| p.name()).collect();
            Error::BadRequest(format!(
                "the payment provider {provider_name:?} is not enabled here (enabled: {})",
                if enabled.is_empty() {
                    "none".to_string()
                } else {
                    enabled.join(", ")
                }
            ))
        })?;
        if !self.providers.amount_in_bounds(amount) {
            return Err(Error::BadRequest(format!(
                "amount must be {} to {} (minor units of {})",
                self.providers.payment_min,
                self.providers.payment_max,
                provider.currency()
            )));
        }
        let payment_id = match idempotency_key {
            Some(key) => {
                if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
                    return Err(Error::BadRequest(format!(
                        "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} bytes"
                    )));
                }
                let id = idempotent_id(account.account_id, key);
                if let Some(first) = self.store.payment(id)? {
                    return replay(first, provider_name, amount);
                }
                id
            }
            None => Uuid::new_v4(),
        };
        let created = provider.create(&NewPayment { payment_id, amount }).await?;
        let clock = time::OffsetDateTime::now_utc();
        let now = Timestamp::from_unix(clock.unix_timestamp());
        let payment = Payment {
            // At least 1: 0 marks records kept before the microseconds were.
            created_micros: clock.microsecond().max(1),
            provider: provider.name().to_string(),
            amount,
            currency: provider.currency().to_string(),
            reference: created.reference,
            pay_url: created.pay_url,
            expires_at: created.expires_at,
            ..Payment::fresh(payment_id, account.account_id, now)
        };
        if !self.store.insert_payment(&payment)? {
            // A racing replay of the same key recorded it first (or the provider gave a
            // reference twice, which the store refuses).
            return match self.store.payment(payment_id)? {
                Some(first) => replay(first, provider_name, amount),
                None => Err(Error::Internal(format!(
                    "the {} reference {} belongs to another payment",
                    payment.provider, payment.reference
                ))),
            };
        }
        count_status(&payment.provider, PaymentStatus::Pending);
        tracing::info!(
            payment_id = %payment.payment_id,
            account_id = %payment.account_id,
            provider = %payment.provider,
            amount,
            "payment created"
        );
        Ok((payment, false))
    }

    /// A payment of `account`'s (another account's is not found). A pending one is asked
    /// about first, unless a server did so less than [`RECHECK_SECS`] ago.
    pub async fn get(&self, account: &Account, payment_id: Uuid) -> Result<Payment, Error> {
        let payment = self
            .store
            .payment(payment_id)?
            .filter(|p| p.account_id == account.account_id)
            .ok_or(Error::NotFound("payment"))?;
        if payment.status != PaymentStatus::Pending {
            return Ok(payment);
        }
        Ok(self.recheck(payment, false).await)
    }

    /// `account`'s payments, newest first, older than `before`; the id to continue from.
    pub fn list(
        &self,
        account: &Account,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Payment>, Option<Uuid>), Error> {
        let limit = limit.min(PAYMENTS_LIST_MAX);
        let page = self
            .store
            .account_payments(account.account_id, before, limit)?
            .ok_or_else(|| Error::BadRequest("before names no payment of this account".into()))?;
        let next = (page.len() == limit)
            .then(|| page.last().map(|p| p.payment_id))
            .flatten();
        Ok((page, next))
    }

    /// Operators: payments in `status`, newest first.
    pub fn with_status(&self, status: PaymentStatus, limit: usize) -> Result<Vec<Payment>, Error> {
        Ok(self
            .store
            .payments_with_status(status, limit.min(PAYMENTS_LIST_MAX))?)
    }

    /// The test provider's pay page was submitted: the payment is settled as if a provider's
    /// API had confirmed it, and credited with `source` `test`.
    pub async fn settle_test(&self, payment_id: Uuid) -> Result<Payment, Error> {
        let test = self.providers.test().ok_or(Error::NotFound("payment"))?;
        let payment = self
            .store
            .payment(payment_id)?
            .filter(|p| p.provider == test.name())
            .ok_or(Error::NotFound("payment"))?;
        let checked = test.settle(&payment.reference, payment.amount)?;
        self.apply_checked(&payment, &checked).await
    }

    /// A test payment, for its pay page (`None` unless the test provider is enabled and the
    /// payment is one of its).
    pub fn test_payment(&self, payment_id: Uuid) -> Result<Option<Payment>, Error> {
        let Some(test) = self.providers.test() else {
            return Ok(None);
        };
        Ok(self
            .store
            .payment(payment_id)?
            .filter(|p| p.provider == test.name()))
    }

    /// Operators: asks the provider once more and credits if it confirms; with `force`,
    /// credits without asking (logged with the note). Either way under the provider's own
    /// reference, so a later confirmation cannot credit it again.
    pub async fn settle(
        &self,
        payment_id: Uuid,
        force: bool,
        note: Option<&str>,
    ) -> Result<Payment, Error> {
        let payment = self
            .store
            .payment(payment_id)?
            .ok_or(Error::NotFound("payment"))?;
        if force {
            let note = note.map(str::trim).unwrap_or_default();
            let chars = note.chars().count();
            if chars == 0 || chars > SETTLE_NOTE_CHARS_MAX {
                return Err(Error::BadRequest(format!(
                    "a forced settlement needs a note of 1 to {SETTLE_NOTE_CHARS_MAX} characters"
                )));
            }
            tracing::warn!(
                payment_id = %payment.payment_id,
                provider = %payment.provider,
                amount = payment.amount,
                note,
                "payment settled by hand, without the provider's confirmation"
            );
            return self.credit(&payment, None).await;
        }
        let provider = self.provider_of(&payment)?;
        let checked = provider.check(&payment.reference).await?;
        self.apply_checked(&payment, &checked).await
    }

    fn provider_of(&self, payment: &Payment) -> Result<&Arc<dyn Provider>, Error> {
        self.providers.get(&payment.provider).ok_or_else(|| {
            Error::BadRequest(format!(
                "the payment's provider {} is not enabled on this server; settle it with force",
                payment.provider
            ))
        })
    }

    /// Asks the provider about a pending payment and acts on the answer. Unless `force`, not
    /// when a server asked less than [`RECHECK_SECS`] ago; the check is claimed first by
    /// compare-and-set, so of servers racing, one asks. Never fails: what could not be done
    /// is logged and done on a later check; the payment is answered as it is then.
    async fn recheck(&self, payment: Payment, force: bool) -> Payment {
        let now = Timestamp::now();
        let recent = payment
            .last_checked_at
            .is_some_and(|at| now.unix() - at.unix() < RECHECK_SECS);
        if recent && !force {
            return payment;
        }
        let Some(provider) = self.providers.get(&payment.provider) else {
            return payment;
        };
        let mut claimed = Payment {
            last_checked_at: Some(now),
            ..payment.clone()
        };
        match self.store.update_payment(&claimed) {
            Ok(true) => claimed.version += 1,
            // Another server is asking, or just changed it: answer what it wrote.
            Ok(false) => {
                return self
                    .store
                    .payment(payment.payment_id)
                    .ok()
                    .flatten()
                    .unwrap_or(payment)
            }
            Err(e) => {
                tracing::warn!(payment_id = %payment.payment_id, error = %e, "cannot claim a payment's check");
                return payment;
            }
        }
        let result = match provider.check(&claimed.reference).await {
            Ok(checked) => self.apply_checked(&claimed, &checked).await,
            Err(e) => Err(e.into()),
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(payment_id = %claimed.payment_id, error = %e, "a pending payment's check did nothing");
            claimed
        })
    }

    /// Acts on what the provider's API said about `payment`: credits a payment paid in its
    /// amount and currency; marks it failed (never credited) when paid otherwise; expired or
    /// failed when the provider says so, while it is pending.
    async fn apply_checked(&self, payment: &Payment, checked: &Checked) -> Result<Payment, Error> {
        let expected = Money::new(payment.amount, payment.currency.clone());
        match checked.state.against(&expected) {
            Verdict::Credit => self.credit(payment, checked.charge_ref.clone()).await,
            Verdict::Pending => Ok(payment.clone()),
            Verdict::Mismatch => {
                if payment.credited_ledger_index.is_some() {
                    return Ok(payment.clone());
                }
                tracing::warn!(
                    payment_id = %payment.payment_id,
                    provider = %payment.provider,
                    expected = ?expected,
                    confirmed = ?checked.state,
                    "the provider confirmed another amount or currency: not credited; settle by hand"
                );
                metrics::counter!(
                    crate::telemetry::PAYMENT_MISMATCHES,
                    "provider" => payment.provider.clone(),
                )
                .increment(1);
                self.update(payment.payment_id, |p| {
                    set_status_if(p, PaymentStatus::Failed, |p| {
                        p.credited_ledger_index.is_none() && p.status != PaymentStatus::Failed
                    })
                })
            }
            Verdict::Expired => self.update(payment.payment_id, |p| {
                set_status_if(p, PaymentStatus::Expired, |p| {
                    p.status == PaymentStatus::Pending
                })
            }),
            Verdict::Failed => self.update(payment.payment_id, |p| {
                set_status_if(p, PaymentStatus::Failed, |p| {
                    p.status == PaymentStatus::Pending
                })
            }),
        }
    }

    /// Credits `payment` under its provider's reference (a replay when it was credited
    /// before, by anyone) and records the credit in the payment.
    async fn credit(
        &self,
        payment: &Payment,
        charge_ref: Option<String>,
    ) -> Result<Payment, Error> {
        let ledger_reference = reference::payment(&payment.provider, &payment.reference);
        // The provider's source, from its prefix (which the rules check again).
        let source = CreditSource::of_reference(&ledger_reference);
        let credited = self
            .mint
            .credit(payment.account_id, payment.amount, ledger_reference, source)
            .await?;
        if !credited.replayed {
            metrics::counter!(
                crate::telemetry::PAYMENT_CREDITED,
                "provider" => payment.provider.clone(),
            )
            .increment(payment.amount);
            tracing::info!(
                payment_id = %payment.payment_id,
                provider = %payment.provider,
                amount = payment.amount,
                ledger_index = credited.ledger_index,
                "payment credited"
            );
        }
        self.update(payment.payment_id, |p| {
            let mut changed = false;
            if p.credited_ledger_index != Some(credited.ledger_index) {
                p.credited_ledger_index = Some(credited.ledger_index);
                changed = true;
            }
            if charge_ref.is_some() && p.charge_ref != charge_ref {
                p.charge_ref.clone_from(&charge_ref);
                changed = true;
            }
            set_status_if(p, PaymentStatus::Paid, |p| {
                matches!(
                    p.status,
                    PaymentStatus::Pending | PaymentStatus::Expired | PaymentStatus::Failed
                )
            }) || changed
        })
    }

    /// Reads the payment, lets `change` edit it (`false`: nothing to write) and writes it
    /// over the version it read; reads and decides again when another update came first.
    fn update(
        &self,
        payment_id: Uuid,
        mut change: impl FnMut(&mut Payment) -> bool,
    ) -> Result<Payment, Error> {
        for _ in 0..UPDATE_ATTEMPTS_MAX {
            let mut payment = self
                .store
                .payment(payment_id)?
                .ok_or(Error::NotFound("payment"))?;
            let status = payment.status;
            if !change(&mut payment) {
                return Ok(payment);
            }
            payment.updated_at = Timestamp::now().max(payment.updated_at);
            if self.store.update_payment(&payment)? {
                payment.version += 1;
                if payment.status != status {
                    count_status(&payment.provider, payment.status);
                    tracing::info!(
                        payment_id = %payment.payment_id,
                        from = status.as_str(),
                        to = payment.status.as_str(),
                        "payment status"
                    );
                }
                return Ok(payment);
            }
        }
        Err(Error::Unavailable(
            "the payment is being changed by other requests; try again shortly".into(),
        ))
    }
}

/// Sets `status` when `when` holds; whether it did.
fn set_status_if(
    payment: &mut Payment,
    status: PaymentStatus,
    when: impl FnOnce(&Payment) -> bool,
) -> bool {
    if payment.status != status && when(payment) {
        payment.status = status;
        true
    } else {
        false
    }
}

/// The payment id of an account's `Idempotency-Key`: the same key of the same account names
/// the same payment, on every server.
fn idempotent_id(account_id: Uuid, key: &str) -> Uuid {
    let mut input = Vec::with_capacity(16 + key.len() + 24);
    input.extend_from_slice(b"pennypost payment\0");
    input.extend_from_slice(account_id.as_bytes());
    input.extend_from_slice(key.as_bytes());
    let digest = sha256(&input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The answer to a replayed `Idempotency-Key`: the first payment, if the request is the same.
fn replay(first: Payment, provider: &str, amount: u64) -> Result<(Payment, bool), Error> {
    if first.provider == provider && first.amount == amount {
        Ok((first.as_created(), true))
    } else {
        Err(Error::IdempotencyConflict(
            "Idempotency-Key was used for another payment",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idempotency_key_names_one_payment_per_account() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(idempotent_id(a, "k"), idempotent_id(a, "k"));
        assert_ne!(idempotent_id(a, "k"), idempotent_id(b, "k"));
        assert_ne!(idempotent_id(a, "k"), idempotent_id(a, "l"));
        assert_eq!(idempotent_id(a, "k").get_version_num(), 4);
    }

    /// The sweep asks about every pending payment, and expires one still pending an hour
    /// after its `expires_at`.
    #[test]
    fn the_sweep_asks_about_pending_payments_and_expires_the_abandoned() {
        use crate::store::Payments as _;

        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let now = Timestamp::now();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let store = Arc::new(crate::store::MemoryStore::new());
            let providers = crate::payments::PaymentsConfig {
                test_provider: true,
                public_url: Some("http://board.test".into()),
                ..Default::default()
            }
            .build("cents")
            .expect("providers");
            // The app takes no payments, so it starts no sweep of its own to race this one's.
            let app = crate::service::test_app(store.clone(), &keys, Providers::default()).await;
            let payments = Payments::new(app.mint.clone(), store.clone(), providers);
            let (account_id, _) = app.mint.create_account(None).await.expect("account");
            let pending = |i: u128, expires_at: Timestamp| {
                let payment_id = Uuid::from_u128(i);
                Payment {
                    provider: "test".into(),
                    amount: 500,
                    currency: "cents".into(),
                    reference: payment_id.to_string(),
                    expires_at,
                    ..Payment::fresh(payment_id, account_id, now)
                }
            };
            let abandoned = pending(1, Timestamp::from_unix(now.unix() - 3 * 3600));
            let waiting = pending(2, now.plus_secs(600));
            let late = pending(3, Timestamp::from_unix(now.unix() - 1800));
            for p in [&abandoned, &waiting, &late] {
                assert!(store.insert_payment(p).expect("insert"));
            }
            assert_eq!(payments.sweep(false).await, 3);
            let status = |p: &Payment| store.payment(p.payment_id).expect("read").expect("kept");
            assert_eq!(status(&abandoned).status, PaymentStatus::Expired);
            // Within the hour after expiry, still asked about and still pending.
            for p in [&waiting, &late] {
                let after = status(p);
                assert_eq!(after.status, PaymentStatus::Pending);
                assert!(after.last_checked_at.is_some());
            }
            assert_eq!(payments.sweep(false).await, 2);
        });
    }
}
