//! The bodies of the payments routes (`/v1/payments…`, `/v1/admin/payments…`).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::Time;

/// One enabled payment provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentProvider {
    /// The server's `--currency`: amounts are its minor units.
    pub currency: String,
    /// The largest payment, in minor units.
    pub max: u64,
    /// The smallest payment, in minor units.
    pub min: u64,
    /// `stripe`, `btcpay` or `test`.
    pub provider: String,
    /// True for the test provider, which moves no money.
    pub test_mode: bool,
}

/// `GET /v1/payments/providers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentProvidersResponse {
    pub providers: Vec<PaymentProvider>,
}

/// `POST /v1/payments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatePaymentRequest {
    /// An enabled provider: `stripe`, `btcpay` or `test`.
    pub provider: String,
    /// Minor units of the server's currency, within the provider's `min` and `max`.
    pub amount: u64,
}

/// What became of a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatusName {
    Pending,
    Paid,
    Expired,
    Failed,
    Refunded,
    Disputed,
}

/// A payment: the answer of `POST /v1/payments` (201) and `GET /v1/payments/{payment_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentResponse {
    /// The paying account.
    pub account_id: Uuid,
    /// Minor units of `currency`.
    pub amount: u64,
    pub created_at: Time,
    /// The credit's ledger entry, once credited.
    #[schema(required = true)]
    pub credited_ledger_index: Option<u64>,
    pub currency: String,
    /// When the provider stops taking it.
    pub expires_at: Time,
    /// Where the member pays: the provider's page, or the server's pay page (test mode).
    pub pay_url: String,
    pub payment_id: Uuid,
    pub provider: String,
    pub status: PaymentStatusName,
    /// True for a payment of the test provider: no money moved.
    pub test_mode: bool,
    pub updated_at: Time,
}

/// The query of `GET /v1/payments`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentsQuery {
    /// Payments per page, 1 to 100; 50 when not given.
    pub limit: Option<usize>,
    /// Only payments older than this one.
    pub before: Option<Uuid>,
}

/// `GET /v1/payments`: a page of the caller's payments, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentsPageResponse {
    /// The `before` of the next page, when there may be one.
    #[schema(required = true)]
    pub next_before: Option<Uuid>,
    pub payments: Vec<PaymentResponse>,
}

/// The query of `GET /v1/admin/payments`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminPaymentsQuery {
    /// The status to list; `pending` when not given.
    pub status: Option<PaymentStatusName>,
    /// Most payments, 1 to 1000; 100 when not given.
    pub limit: Option<usize>,
}

/// `GET /v1/admin/payments`: payments in one status, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminPaymentsResponse {
    pub payments: Vec<PaymentResponse>,
}

/// `POST /v1/admin/payments/{payment_id}/settle` (the body is optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SettlePaymentRequest {
    /// Credit without the provider's confirmation.
    #[serde(default)]
    pub force: bool,
    /// Why (required with `force`; logged), 1 to 500 characters.
    #[serde(default)]
    pub note: Option<String>,
}

/// The answer of a verified webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookResponse {
    /// What the event caused, once the provider's API confirmed it: `credited`, `updated`,
    /// `moved` (a refund or dispute debited, or credited back) or `ignored`.
    pub effect: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    /// Answers are written with their fields in alphabetical order (the wire rule of
    /// `crate::api`) and read back as they were.
    #[test]
    fn payment_answers_keep_the_wire_rules() {
        let payment = PaymentResponse {
            account_id: Uuid::from_u128(1),
            amount: 500,
            created_at: Time(Timestamp::from_unix(0)),
            credited_ledger_index: None,
            currency: "USD".into(),
            expires_at: Time(Timestamp::from_unix(3600)),
            pay_url: "https://board.example/pay/x".into(),
            payment_id: Uuid::from_u128(2),
            provider: "test".into(),
            status: PaymentStatusName::Pending,
            test_mode: true,
            updated_at: Time(Timestamp::from_unix(0)),
        };
        let page = PaymentsPageResponse {
            next_before: None,
            payments: vec![payment.clone()],
        };
        let providers = PaymentProvidersResponse {
            providers: vec![PaymentProvider {
                currency: "USD".into(),
                max: 100_000,
                min: 100,
                provider: "stripe".into(),
                test_mode: false,
            }],
        };
        for (text, value) in [
            (
                serde_json::to_string(&page).expect("json"),
                serde_json::to_value(&page).expect("json"),
            ),
            (
                serde_json::to_string(&providers).expect("json"),
                serde_json::to_value(&providers).expect("json"),
            ),
        ] {
            assert_eq!(text, value.to_string(), "fields out of alphabetical order");
        }
        let text = serde_json::to_string(&payment).expect("json");
        assert!(text.contains("\"credited_ledger_index\":null"), "{text}");
        assert!(text.contains("\"status\":\"pending\""), "{text}");
        let back: PaymentResponse = serde_json::from_str(&text).expect("read back");
        assert_eq!(back, payment);
    }
}
