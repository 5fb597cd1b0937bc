//! The providers' settings as the operator gives them, validated into [`Providers`].
//!
//! A provider is enabled when all its settings are given; some but not all of them refuse the
//! start, naming what is missing. `--public-url` is required once any provider is enabled.
//! The `test` provider beside a real one needs `--payment-test-beside-real`, so a demo server
//! takes no real money by accident, nor a real server fake money. Secrets are [`Secret`]s.

use std::sync::Arc;
use std::time::Duration;

use super::btcpay::{Btcpay, BtcpaySettings};
use super::client::{REQUEST_TIMEOUT_DEFAULT, REQUEST_TIMEOUT_MAX, REQUEST_TIMEOUT_MIN};
use super::stripe::{Stripe, StripeSettings, API_BASE_DEFAULT};
use super::test_provider::TestProvider;
use super::{Provider, Secret};
use crate::config::ConfigError;

/// `--payment-min` by default: the smallest payment, in minor units.
pub const PAYMENT_MIN_DEFAULT: u64 = 100;
/// `--payment-max` by default: the largest payment, in minor units.
pub const PAYMENT_MAX_DEFAULT: u64 = 100_000;
/// The largest `--payment-max` taken: a few extra digits typed by mistake are refused.
pub const PAYMENT_MAX_LIMIT: u64 = 1_000_000_000_000;
/// `--webhook-body-max-bytes` by default: dispute events carry evidence, well past the
/// ordinary body limit.
pub const WEBHOOK_BODY_BYTES_DEFAULT: usize = 1 << 20;
/// Bounds of `--webhook-body-max-bytes`.
pub const WEBHOOK_BODY_BYTES_MIN: usize = 64 << 10;
pub const WEBHOOK_BODY_BYTES_MAX: usize = 16 << 20;
/// Longest secret or key taken.
pub const SECRET_BYTES_MAX: usize = 512;

/// The payment settings, one field per flag. Build it from flags, environment or file, then
/// call [`PaymentsConfig::build`] once at start.
#[derive(Clone, Debug)]
pub struct PaymentsConfig {
    /// `--public-url` (`PENNYPOST_PUBLIC_URL`): where members reach the server.
    pub public_url: Option<String>,
    /// `--stripe-secret-key` (`PENNYPOST_STRIPE_SECRET_KEY`): `sk_…` or restricted `rk_…`.
    pub stripe_secret_key: Option<Secret>,
    /// `--stripe-webhook-secret`: `whsec_…`.
    pub stripe_webhook_secret: Option<Secret>,
    /// `--stripe-api-base`: [`API_BASE_DEFAULT`] when not given.
    pub stripe_api_base: Option<String>,
    /// `--btcpay-url`.
    pub btcpay_url: Option<String>,
    /// `--btcpay-api-key`.
    pub btcpay_api_key: Option<Secret>,
    /// `--btcpay-store-id`.
    pub btcpay_store_id: Option<String>,
    /// `--btcpay-webhook-secret`.
    pub btcpay_webhook_secret: Option<Secret>,
    /// `--payment-provider test`.
    pub test_provider: bool,
    /// `--payment-test-beside-real`.
    pub test_beside_real: bool,
    /// `--payment-min`, in minor units.
    pub payment_min: u64,
    /// `--payment-max`, in minor units.
    pub payment_max: u64,
    /// `--webhook-body-max-bytes`.
    pub webhook_body_max_bytes: usize,
    /// Longest time of one call to a provider's API, in seconds (1 to 60).
    pub provider_timeout_secs: u64,
}

impl Default for PaymentsConfig {
    fn default() -> PaymentsConfig {
        PaymentsConfig {
            public_url: None,
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_base: None,
            btcpay_url: None,
            btcpay_api_key: None,
            btcpay_store_id: None,
            btcpay_webhook_secret: None,
            test_provider: false,
            test_beside_real: false,
            payment_min: PAYMENT_MIN_DEFAULT,
            payment_max: PAYMENT_MAX_DEFAULT,
            webhook_body_max_bytes: WEBHOOK_BODY_BYTES_DEFAULT,
            provider_timeout_secs: REQUEST_TIMEOUT_DEFAULT.as_secs(),
        }
    }
}

/// The enabled providers and the bounds of a payment, built once at start.
#[derive(Debug, Default)]
pub struct Providers {
    list: Vec<Arc<dyn Provider>>,
    test: Option<Arc<TestProvider>>,
    /// Bounds of one payment, in minor units.
    pub payment_min: u64,
    pub payment_max: u64,
    /// The webhook routes' body limit.
    pub webhook_body_max_bytes: usize,
}

impl Providers {
    /// The enabled provider of that name (`stripe`, `btcpay`, `test`).
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.list.iter().find(|p| p.name() == name)
    }

    /// Every enabled provider, in a fixed order (stripe, btcpay, test).
    pub fn all(&self) -> &[Arc<dyn Provider>] {
        &self.list
    }

    /// The test provider, for the pay page, when enabled.
    pub fn test(&self) -> Option<&Arc<TestProvider>> {
        self.test.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether one payment may be of `amount` minor units.
    pub fn amount_in_bounds(&self, amount: u64) -> bool {
        (self.payment_min..=self.payment_max).contains(&amount)
    }
}

#[cfg(test)]
impl Providers {
    /// The providers of `list` (a test's own), with the default bounds.
    pub(crate) fn of(list: Vec<Arc<dyn Provider>>) -> Providers {
        Providers {
            list,
            ..Providers::default()
        }
    }
}

impl PaymentsConfig {
    /// Checks every setting against the server's `--currency`, as [`PaymentsConfig::build`]
    /// does, without keeping what it builds.
    pub fn validate(&self, currency: &str) -> Result<(), ConfigError> {
        self.build(currency).map(|_| ())
    }

    /// The enabled providers, or why the start is refused (exit 2): half a provider's
    /// settings (naming what is missing), a malformed key or URL, no `--public-url`, the test
    /// provider beside a real one without `--payment-test-beside-real`, a currency a real
    /// provider cannot take, bounds out of range.
    pub fn build(&self, currency: &str) -> Result<Providers, ConfigError> {
        if self.payment_min == 0 || self.payment_min > self.payment_max {
            return Err(ConfigError(format!(
                "--payment-min must be at least 1 and at most --payment-max ({})",
                self.payment_max
            )));
        }
        if self.payment_max > PAYMENT_MAX_LIMIT {
            return Err(ConfigError(format!(
                "--payment-max must be at most {PAYMENT_MAX_LIMIT}"
            )));
        }
        if !(WEBHOOK_BODY_BYTES_MIN..=WEBHOOK_BODY_BYTES_MAX).contains(&self.webhook_body_max_bytes)
        {
            return Err(ConfigError(format!(
                "--webhook-body-max-bytes must be {WEBHOOK_BODY_BYTES_MIN} to {WEBHOOK_BODY_BYTES_MAX}"
            )));
        }
        let timeout = Duration::from_secs(self.provider_timeout_secs);
        if !(REQUEST_TIMEOUT_MIN..=REQUEST_TIMEOUT_MAX).contains(&timeout) {
            return Err(ConfigError(format!(
                "the provider timeout must be {} to {} s",
                REQUEST_TIMEOUT_MIN.as_secs(),
                REQUEST_TIMEOUT_MAX.as_secs()
            )));
        }

        let stripe = self.stripe_settings(timeout)?;
        let btcpay = self.btcpay_settings(timeout)?;
        let real = stripe.is_some() || btcpay.is_some();
        if self.test_provider && real && !self.test_beside_real {
            return Err(ConfigError(
                "the test provider beside a real one needs --payment-test-beside-real".into(),
            ));
        }
        let mut providers = Providers {
            payment_min: self.payment_min,
            payment_max: self.payment_max,
            webhook_body_max_bytes: self.webhook_body_max_bytes,
            ..Providers::default()
        };
        if !real && !self.test_provider {
            return Ok(providers);
        }
        let public_url = match &self.public_url {
            Some(url) => web_url("--public-url", url, true)?,
            None => {
                return Err(ConfigError(
                    "--public-url is required once a payment provider is enabled".into(),
                ))
            }
        };
        if let Some(settings) = stripe {
            let stripe = Stripe::new(settings, currency, &public_url).map_err(ConfigError)?;
            providers.list.push(Arc::new(stripe));
        }
        if let Some(settings) = btcpay {
            let btcpay = Btcpay::new(settings, currency, &public_url).map_err(ConfigError)?;
            providers.list.push(Arc::new(btcpay));
        }
        if self.test_provider {
            let test = Arc::new(TestProvider::new(currency, &public_url));
            providers.list.push(test.clone());
            providers.test = Some(test);
        }
        Ok(providers)
    }

    fn stripe_settings(&self, timeout: Duration) -> Result<Option<StripeSettings>, ConfigError> {
        let given = [
            ("--stripe-secret-key", self.stripe_secret_key.is_some()),
            (
                "--stripe-webhook-secret",
                self.stripe_webhook_secret.is_some(),
            ),
            ("--stripe-api-base", self.stripe_api_base.is_some()),
        ];
        let (Some(secret_key), Some(webhook_secret)) =
            (&self.stripe_secret_key, &self.stripe_webhook_secret)
        else {
            return half("Stripe", &given, 2);
        };
        secret("--stripe-secret-key", secret_key, &["sk_", "rk_"])?;
        secret("--stripe-webhook-secret", webhook_secret, &["whsec_"])?;
        let api_base = web_url(
            "--stripe-api-base",
            self.stripe_api_base.as_deref().unwrap_or(API_BASE_DEFAULT),
            false,
        )?;
        Ok(Some(StripeSettings {
            secret_key: secret_key.clone(),
            webhook_secret: webhook_secret.clone(),
            api_base,
            timeout,
        }))
    }

    fn btcpay_settings(&self, timeout: Duration) -> Result<Option<BtcpaySettings>, ConfigError> {
        let given = [
            ("--btcpay-url", self.btcpay_url.is_some()),
            ("--btcpay-api-key", self.btcpay_api_key.is_some()),
            ("--btcpay-store-id", self.btcpay_store_id.is_some()),
            (
                "--btcpay-webhook-secret",
                self.btcpay_webhook_secret.is_some(),
            ),
        ];
        let (Some(url), Some(api_key), Some(store_id), Some(webhook_secret)) = (
            &self.btcpay_url,
            &self.btcpay_api_key,
            &self.btcpay_store_id,
            &self.btcpay_webhook_secret,
        ) else {
            return half("BTCPay", &given, 4);
        };
        secret("--btcpay-api-key", api_key, &[""])?;
        secret("--btcpay-webhook-secret", webhook_secret, &[""])?;
        if !super::reference::is_valid_id(store_id) {
            return Err(ConfigError(
                "--btcpay-store-id must be letters, digits, _ or -".into(),
            ));
        }
        Ok(Some(BtcpaySettings {
            url: web_url("--btcpay-url", url, false)?,
            api_key: api_key.clone(),
            store_id: store_id.clone(),
            webhook_secret: webhook_secret.clone(),
            timeout,
        }))
    }
}

/// `None` when none of a provider's settings is given; otherwise the refusal naming the
/// required settings that are missing.
fn half<T>(
    provider: &str,
    given: &[(&str, bool)],
    required: usize,
) -> Result<Option<T>, ConfigError> {
    if given.iter().all(|(_, is_given)| !is_given) {
        return Ok(None);
    }
    let missing: Vec<&str> = given[..required]
        .iter()
        .filter(|(_, is_given)| !is_given)
        .map(|(flag, _)| *flag)
        .collect();
    let present: Vec<&str> = given
        .iter()
        .filter(|(_, is_given)| *is_given)
        .map(|(flag, _)| *flag)
        .collect();
    Err(ConfigError(format!(
        "{provider} is half configured: {} given, {} missing",
        present.join(", "),
        missing.join(", ")
    )))
}

/// A secret must be printable ASCII without spaces, of a sane length, with one of the
/// expected prefixes. The message never contains it.
fn secret(flag: &str, value: &Secret, prefixes: &[&str]) -> Result<(), ConfigError> {
    let text = value.expose();
    if text.is_empty()
        || text.len() > SECRET_BYTES_MAX
        || !text.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ConfigError(format!(
            "{flag} must be 1 to {SECRET_BYTES_MAX} printable ASCII characters"
        )));
    }
    if !prefixes.iter().any(|prefix| text.starts_with(prefix)) {
        return Err(ConfigError(format!(
            "{flag} must start with {}",
            prefixes.join(" or ")
        )));
    }
    Ok(())
}

/// An http(s) URL without query, fragment or credentials, without its trailing `/`. A
/// provider's API (`public == false`) must be https, but on a loopback address (a fake, or a
/// BTCPay beside the server): its key travels there.
fn web_url(flag: &str, text: &str, public: bool) -> Result<String, ConfigError> {
    let url =
        reqwest::Url::parse(text).map_err(|e| ConfigError(format!("{flag} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError(format!("{flag} must be an http(s) URL")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError(format!(
            "{flag} must have no query or fragment"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError(format!(
            "{flag} must carry no credentials (keys have settings of their own)"
        )));
    }
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    if !public && url.scheme() == "http" && !loopback {
        return Err(ConfigError(format!(
            "{flag} must be https (plain http only on a loopback address)"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
