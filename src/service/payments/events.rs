//! Webhooks: verify, confirm with the provider's API, act. The event decides nothing by
//! itself: what it causes is what the provider's API says now, applied under references the
//! ledger takes once.

use axum::http::HeaderMap;

use super::Payments;
use crate::error::Error;
use crate::payments::{Checked, Confirmed, Provider, WebhookError};
use crate::time::Timestamp;

/// What a webhook did, for the answer's log line and [`crate::telemetry::PAYMENT_WEBHOOKS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A payment was credited (or found credited).
    Credited,
    /// A payment's status changed, or was confirmed unchanged.
    Updated,
    /// Money went back (a refund or a dispute), or came back.
    Moved,
    /// Nothing to do: an event not acted on, or about nothing of this server's.
    Ignored,
}

impl Effect {
    pub const fn as_str(self) -> &'static str {
        match self {
            Effect::Credited => "credited",
            Effect::Updated => "updated",
            Effect::Moved => "moved",
            Effect::Ignored => "ignored",
        }
    }
}

impl Payments {
    /// A webhook of `provider` (its route's name): verified over the raw `body`, confirmed
    /// with the provider's API, acted on. Answered only once what it caused is durable.
    pub async fn webhook(
        &self,
        provider: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Effect, Error> {
        let provider = self
            .providers
            .get(provider)
            .ok_or(Error::NotFound("payment provider"))?
            .clone();
        let event = provider
            .verify_webhook(headers, body, Timestamp::now())
            .map_err(|e| match e {
                WebhookError::NotSupported => Error::NotFound("payment provider"),
                e if e.is_signature() => Error::InvalidWebhookSignature(e.to_string()),
                e => Error::BadRequest(e.to_string()),
            })?;
        let confirmed = provider.confirm(&event.hint).await?;
        let effect = match confirmed {
            Confirmed::Payment(checked) => self.on_payment(provider.as_ref(), &checked).await?,
            Confirmed::Refund(state) => self.on_refund(provider.as_ref(), &state).await?,
            Confirmed::Dispute(state) => self.on_dispute(provider.as_ref(), &state).await?,
            Confirmed::Nothing => Effect::Ignored,
        };
        metrics::counter!(
            crate::telemetry::PAYMENT_WEBHOOKS,
            "provider" => provider.name(),
            "effect" => effect.as_str(),
        )
        .increment(1);
        tracing::info!(
            provider = provider.name(),
            event_id = %event.id,
            kind = %event.kind,
            effect = effect.as_str(),
            "payment webhook"
        );
        Ok(effect)
    }

    /// A payment's state as the API confirmed it: acted on if it is one of this server's.
    async fn on_payment(
        &self,
        provider: &dyn Provider,
        checked: &Checked,
    ) -> Result<Effect, Error> {
        let Some(payment) = self
            .store
            .payment_by_reference(provider.name(), &checked.reference)?
        else {
            return Ok(Effect::Ignored);
        };
        let after = self.apply_checked(&payment, checked).await?;
        Ok(
            if after.credited_ledger_index.is_some() && payment.credited_ledger_index.is_none() {
                Effect::Credited
            } else {
                Effect::Updated
            },
        )
    }
}

impl Payments {
    /// The payment a refund or dispute is about, settled first when it is still pending here
    /// (the charge's session, as the API found it); `None` when it is no payment of this
    /// server's.
    pub(super) async fn settle_first(
        &self,
        provider: &dyn Provider,
        checked: Option<&Checked>,
    ) -> Result<Option<crate::domain::Payment>, Error> {
        let Some(checked) = checked else {
            return Ok(None);
        };
        let Some(payment) = self
            .store
            .payment_by_reference(provider.name(), &checked.reference)?
        else {
            return Ok(None);
        };
        if payment.credited_ledger_index.is_some() {
            return Ok(Some(payment));
        }
        self.apply_checked(&payment, checked).await.map(Some)
    }
}
