//! Reads show only what is durable: a store whose sync is held open shows that stamp status
//! and verify, through the service, hide a spend until it is durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pennypost::api::StampState;
use pennypost::config::{Economy, Limits};
use pennypost::domain::{Account, CreditSource, Payment, PaymentStatus, Post, StampRecord};
use pennypost::service::{App, AppConfig};
use pennypost::store::{
    Cluster, PaymentOrder, Payments, ReadSet, Reads, SledStore, StoreError, TxBody, Writes,
};
use pennypost::time::Timestamp;
use uuid::Uuid;

/// A store whose `sync` waits while `held` is set: it holds open the window between a batch
/// being applied (visible in sled) and being durable.
struct HeldSync {
    inner: SledStore,
    held: std::sync::Mutex<bool>,
    released: std::sync::Condvar,
}

impl HeldSync {
    fn hold(&self, held: bool) {
        *self.held.lock().expect("lock") = held;
        self.released.notify_all();
    }
}

impl Writes for HeldSync {
    fn write(&self, reads: &ReadSet, body: &mut TxBody<'_>) -> Result<(), StoreError> {
        self.inner.write(reads, body)
    }
    fn read(&self, body: &mut TxBody<'_>) -> Result<(), StoreError> {
        self.inner.read(body)
    }
    fn sync(&self) -> Result<(), StoreError> {
        let mut held = self.held.lock().expect("lock");
        while *held {
            held = self.released.wait(held).expect("wait");
        }
        self.inner.sync()
    }
    fn synced_size(&self) -> Result<u64, StoreError> {
        self.inner.synced_size()
    }
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.inner.put_checkpoint(size, note)
    }
}

impl Cluster for HeldSync {}

impl Payments for HeldSync {
    fn insert_payment(&self, payment: &Payment) -> Result<bool, StoreError> {
        self.inner.insert_payment(payment)
    }
    fn payment(&self, payment_id: Uuid) -> Result<Option<Payment>, StoreError> {
        self.inner.payment(payment_id)
    }
    fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> Result<Option<Payment>, StoreError> {
        self.inner.payment_by_reference(provider, reference)
    }
    fn update_payment(&self, payment: &Payment) -> Result<bool, StoreError> {
        self.inner.update_payment(payment)
    }
    fn account_payments(
        &self,
        account_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Option<Vec<Payment>>, StoreError> {
        self.inner.account_payments(account_id, before, limit)
    }
    fn payments_with_status_before(
        &self,
        status: PaymentStatus,
        before: Option<PaymentOrder>,
        limit: usize,
    ) -> Result<Vec<Payment>, StoreError> {
        self.inner
            .payments_with_status_before(status, before, limit)
    }
}

impl Reads for HeldSync {
    fn ledger_size(&self) -> Result<u64, StoreError> {
        self.inner.ledger_size()
    }
    fn account(&self, account_id: Uuid) -> Result<Option<Account>, StoreError> {
        self.inner.account(account_id)
    }
    fn account_by_api_key(&self, key: &[u8; 32]) -> Result<Option<Account>, StoreError> {
        self.inner.account_by_api_key(key)
    }
    fn stamp(&self, stamp_id: Uuid) -> Result<Option<StampRecord>, StoreError> {
        self.inner.stamp(stamp_id)
    }
    fn post(&self, post_id: Uuid) -> Result<Option<Post>, StoreError> {
        self.inner.post(post_id)
    }
    fn hold(&self, hold_id: Uuid) -> Result<Option<pennypost::domain::Hold>, StoreError> {
        self.inner.hold(hold_id)
    }
    fn posts(&self, before: Option<Uuid>, limit: usize) -> Result<Option<Vec<Post>>, StoreError> {
        self.inner.posts(before, limit)
    }
    fn entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.entries(start, limit)
    }
    fn hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        self.inner.hashes(indexes)
    }
    fn published_keys(&self) -> Result<Vec<pennypost::keys::PublishedKey>, StoreError> {
        self.inner.published_keys()
    }
    fn checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.inner.checkpoint()
    }
}

#[test]
fn stamp_status_and_verify_show_a_spend_only_once_it_is_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Timestamp::now();
    let store = Arc::new(HeldSync {
        inner: SledStore::open(&dir.path().join("db")).expect("open"),
        held: std::sync::Mutex::new(false),
        released: std::sync::Condvar::new(),
    });
    let keys = dir.path().join("keys");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let app = App::start(AppConfig {
            store: store.clone(),
            providers: Default::default(),
            keyring: pennypost::keys::load_or_create(&keys, now).expect("keys"),
            ledger_key: pennypost::keys::load_or_create_ledger_key(&keys, "test/log", now)
                .expect("ledger key"),
            origin: "test/log".into(),
            economy: Economy::default(),
            limits: Limits::default(),
            admin_token: "admin".into(),
        })
        .await
        .expect("service");
        let service = app.mint.clone();
        let (account_id, api_key) = service.create_account(None).await.expect("account");
        service
            .credit(account_id, 10, "setup".into(), CreditSource::Operator)
            .await
            .expect("credit");
        let account = service.authenticate(Some(&api_key)).expect("auth");
        let purchase = service.purchase(&account, 1, None).await.expect("purchase");
        let (text, id) = (purchase.stamps[0].clone(), purchase.record.stamp_ids[0]);

        store.hold(true);
        let redeem = tokio::spawn({
            let (service, text) = (service.clone(), text.clone());
            async move { service.redeem(&text, "site".into()).await }
        });
        // Wait until the spend is applied (sled shows it) but not yet durable.
        let deadline = Instant::now() + Duration::from_secs(10);
        while store
            .inner
            .stamp(id)
            .expect("stamp")
            .and_then(|s| s.spent)
            .is_none()
        {
            assert!(Instant::now() < deadline, "the spend was never applied");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let status = service.stamp_status(id).expect("status");
        assert!(
            status.spent.is_none(),
            "status shows a spend a crash could undo"
        );
        let verified = service.verify(&text).await.expect("verify");
        assert_eq!(
            (verified.valid, verified.state),
            (true, Some(StampState::Unspent))
        );
        assert!(!redeem.is_finished(), "answered before the sync");

        store.hold(false);
        redeem.await.expect("task").expect("redeem");
        let status = service.stamp_status(id).expect("status");
        assert_eq!(status.spent.map(|s| s.spent_for), Some("site".to_string()));
        let verified = service.verify(&text).await.expect("verify");
        assert_eq!(verified.state, Some(StampState::Spent));
    });
}
