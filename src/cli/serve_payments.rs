//! The payment flags of `pennypost serve` (flattened into [`super::serve::ServeArgs`], so the
//! config file takes them as keys too), turned into a [`PaymentsConfig`] whose `build`
//! checks them against the server's `--currency` once at start.

use clap::Args;

use crate::payments::client::REQUEST_TIMEOUT_DEFAULT;
use crate::payments::config::{
    PAYMENT_MAX_DEFAULT, PAYMENT_MIN_DEFAULT, WEBHOOK_BODY_BYTES_DEFAULT,
};
use crate::payments::{PaymentsConfig, Secret};

#[derive(Args, Debug, Clone, Default)]
pub struct PaymentArgs {
    /// Where members reach the server (`https://board.example`); providers send members back
    /// to `<public url>/?payment=<id>`. Required once a payment provider is enabled.
    #[arg(long, env = "PENNYPOST_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Stripe's secret key (a restricted `rk_…`, or `sk_…`). With the webhook secret, enables
    /// Stripe. Prefer the environment or the config file: flags show in the process list.
    #[arg(
        long,
        env = "PENNYPOST_STRIPE_SECRET_KEY",
        value_name = "KEY",
        hide_env_values = true,
        value_parser = secret
    )]
    pub stripe_secret_key: Option<Secret>,
    /// The signing secret (`whsec_…`) of the Stripe webhook endpoint.
    #[arg(
        long,
        env = "PENNYPOST_STRIPE_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        value_parser = secret
    )]
    pub stripe_webhook_secret: Option<Secret>,
    /// Where Stripe's API is (default `https://api.stripe.com`).
    #[arg(long, env = "PENNYPOST_STRIPE_API_BASE", value_name = "URL")]
    pub stripe_api_base: Option<String>,
    /// The BTCPay Server's address (with its path, if served under one). With the three other
    /// `--btcpay-*` settings, enables BTCPay.
    #[arg(long, env = "PENNYPOST_BTCPAY_URL", value_name = "URL")]
    pub btcpay_url: Option<String>,
    /// A BTCPay API key that can create and view the store's invoices.
    #[arg(
        long,
        env = "PENNYPOST_BTCPAY_API_KEY",
        value_name = "KEY",
        hide_env_values = true,
        value_parser = secret
    )]
    pub btcpay_api_key: Option<Secret>,
    /// The BTCPay store's id.
    #[arg(long, env = "PENNYPOST_BTCPAY_STORE_ID", value_name = "ID")]
    pub btcpay_store_id: Option<String>,
    /// The secret of the BTCPay store's webhook.
    #[arg(
        long,
        env = "PENNYPOST_BTCPAY_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        value_parser = secret
    )]
    pub btcpay_webhook_secret: Option<Secret>,
    /// `test`: enable the test provider, which moves no money (its pay page settles a
    /// payment at once; every answer says "test mode").
    #[arg(long, env = "PENNYPOST_PAYMENT_PROVIDER", value_name = "NAME", value_parser = ["test"])]
    pub payment_provider: Option<String>,
    /// Allow the test provider beside a real one.
    #[arg(long, env = "PENNYPOST_PAYMENT_TEST_BESIDE_REAL")]
    pub payment_test_beside_real: bool,
    /// The smallest payment, in minor units of `--currency`.
    #[arg(long, env = "PENNYPOST_PAYMENT_MIN", default_value_t = PAYMENT_MIN_DEFAULT)]
    pub payment_min: u64,
    /// The largest payment, in minor units of `--currency`.
    #[arg(long, env = "PENNYPOST_PAYMENT_MAX", default_value_t = PAYMENT_MAX_DEFAULT)]
    pub payment_max: u64,
    /// Most bytes of a webhook's body (dispute events carry evidence, past the ordinary
    /// request body limit).
    #[arg(long, env = "PENNYPOST_WEBHOOK_BODY_MAX_BYTES", default_value_t = WEBHOOK_BODY_BYTES_DEFAULT)]
    pub webhook_body_max_bytes: usize,
    /// Seconds one call to a provider's API may take (1 to 60) before the request that made
    /// it answers 503.
    #[arg(long, env = "PENNYPOST_PAYMENT_PROVIDER_TIMEOUT_SECS", default_value_t = REQUEST_TIMEOUT_DEFAULT.as_secs())]
    pub payment_provider_timeout_secs: u64,
}

/// A secret flag's value, kept as a [`Secret`] from the start: `ServeArgs`' `Debug` prints
/// `***` for it.
fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

impl PaymentArgs {
    /// The settings as [`PaymentsConfig`] takes them.
    pub fn config(&self) -> PaymentsConfig {
        PaymentsConfig {
            public_url: self.public_url.clone(),
            stripe_secret_key: self.stripe_secret_key.clone(),
            stripe_webhook_secret: self.stripe_webhook_secret.clone(),
            stripe_api_base: self.stripe_api_base.clone(),
            btcpay_url: self.btcpay_url.clone(),
            btcpay_api_key: self.btcpay_api_key.clone(),
            btcpay_store_id: self.btcpay_store_id.clone(),
            btcpay_webhook_secret: self.btcpay_webhook_secret.clone(),
            test_provider: self.payment_provider.as_deref() == Some("test"),
            test_beside_real: self.payment_test_beside_real,
            payment_min: self.payment_min,
            payment_max: self.payment_max,
            webhook_body_max_bytes: self.webhook_body_max_bytes,
            provider_timeout_secs: self.payment_provider_timeout_secs,
        }
    }
}
