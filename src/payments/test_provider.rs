//! The `test` provider: no money, nothing external. For demos and tests.
//!
//! Its payments are settled by the server's own pay page: `pay_url` is
//! `<public url>/pay/<payment id>`, whose "Pay (test mode)" button posts to `POST /pay/{id}`.
//! There is no provider holding its state: the state lives with the server (the payment's
//! record in the store), which is what makes it work with several servers on one database
//! and across restarts. So [`Provider::check`] can only say [`PaymentState::Open`], and the
//! pay page calls [`TestProvider::settle`], which returns the same [`Checked`] a real
//! provider's confirmation would: the server credits it on the one path every provider's
//! payments take, under the reference `test:<payment id>`, with `source` `test`.
//!
//! [`Provider::test_mode`] is true: every page and answer about its payments says so.

use futures_util::future::BoxFuture;
use reqwest::header::HeaderMap;
use uuid::Uuid;

use super::{
    Checked, Confirmed, Created, Hint, Money, NewPayment, PaymentState, Provider, ProviderError,
    WebhookError, WebhookEvent,
};
use crate::time::Timestamp;

/// The provider's name: API `provider`, ledger `source`, reference prefix.
pub const NAME: &str = "test";
/// How long a test payment waits for its button.
pub const PAYMENT_TTL_SECS: u64 = 3600;

/// The test provider.
#[derive(Debug)]
pub struct TestProvider {
    currency: String,
    public_url: String,
}

impl TestProvider {
    /// The provider for `currency` (any currency name the server takes: no ISO code needed,
    /// no money moves), with pay pages under `public_url`.
    pub fn new(currency: &str, public_url: &str) -> TestProvider {
        TestProvider {
            currency: currency.to_string(),
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    /// The pay page's URL of a payment.
    pub fn pay_url(&self, payment_id: Uuid) -> String {
        format!("{}/pay/{payment_id}", self.public_url)
    }

    /// The pay page's button was pressed for the payment `reference` (its payment id) of
    /// `amount` minor units (the payment's own, as recorded by the server): the confirmation
    /// the server credits, as if a provider's API had answered it. Errors only on a reference
    /// that is no test payment's.
    pub fn settle(&self, reference: &str, amount: u64) -> Result<Checked, ProviderError> {
        let payment_id = parse(reference)?;
        Ok(Checked {
            reference: payment_id.to_string(),
            payment_id: Some(payment_id),
            state: PaymentState::Paid(Money::new(amount, self.currency.clone())),
            charge_ref: None,
        })
    }
}

fn parse(reference: &str) -> Result<Uuid, ProviderError> {
    Uuid::parse_str(reference).map_err(|_| ProviderError::BadAnswer {
        provider: NAME,
        call: "settle",
        detail: "a test payment's reference is its payment id".into(),
    })
}

impl Provider for TestProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn test_mode(&self) -> bool {
        true
    }

    fn currency(&self) -> &str {
        &self.currency
    }

    fn create<'a>(
        &'a self,
        payment: &'a NewPayment,
    ) -> BoxFuture<'a, Result<Created, ProviderError>> {
        let created = Created {
            reference: payment.payment_id.to_string(),
            pay_url: self.pay_url(payment.payment_id),
            expires_at: Timestamp::now().plus_secs(PAYMENT_TTL_SECS),
        };
        Box::pin(async move { Ok(created) })
    }

    /// Always [`PaymentState::Open`]: only the pay page settles a test payment, and the
    /// server knows when it did.
    fn check<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Checked, ProviderError>> {
        let checked = parse(reference).map(|payment_id| Checked {
            reference: payment_id.to_string(),
            payment_id: Some(payment_id),
            state: PaymentState::Open,
            charge_ref: None,
        });
        Box::pin(async move { checked })
    }

    fn verify_webhook(
        &self,
        _headers: &HeaderMap,
        _body: &[u8],
        _now: Timestamp,
    ) -> Result<WebhookEvent, WebhookError> {
        Err(WebhookError::NotSupported)
    }

    fn confirm<'a>(&'a self, hint: &'a Hint) -> BoxFuture<'a, Result<Confirmed, ProviderError>> {
        Box::pin(async move {
            match hint {
                Hint::Payment { reference, .. } => {
                    Ok(Confirmed::Payment(self.check(reference).await?))
                }
                _ => Ok(Confirmed::Nothing),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::Verdict;

    #[tokio::test]
    async fn a_test_payment_is_settled_only_by_its_pay_page() {
        let provider = TestProvider::new("cents", "http://127.0.0.1:8080/");
        assert!(provider.test_mode());
        let payment_id = Uuid::new_v4();
        let created = provider
            .create(&NewPayment {
                payment_id,
                amount: 500,
            })
            .await
            .expect("created");
        assert_eq!(created.reference, payment_id.to_string());
        assert_eq!(
            created.pay_url,
            format!("http://127.0.0.1:8080/pay/{payment_id}")
        );
        assert!(created.expires_at > Timestamp::now());
        let checked = provider.check(&created.reference).await.expect("checked");
        assert_eq!(checked.state, PaymentState::Open);
        assert_eq!(checked.payment_id, Some(payment_id));

        let settled = provider.settle(&created.reference, 500).expect("settled");
        let expected = Money::new(500, "cents");
        assert_eq!(settled.state.against(&expected), Verdict::Credit);
        assert_eq!(
            settled.state.against(&Money::new(501, "cents")),
            Verdict::Mismatch
        );
        assert_eq!(
            crate::payments::reference::payment(provider.name(), &settled.reference),
            format!("test:{payment_id}")
        );

        assert!(provider.settle("not-a-uuid", 500).is_err());
        assert!(provider.check("../x").await.is_err());
        assert_eq!(
            provider.verify_webhook(&HeaderMap::new(), b"{}", Timestamp::now()),
            Err(WebhookError::NotSupported)
        );
    }
}
