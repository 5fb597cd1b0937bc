//! The real provider clients (`src/payments/`) against the project's fake Stripe and BTCPay
//! servers (`tests/support/fake_*.rs`): what each call sends, how each answer is read, and
//! how a provider that is down, slow or answering garbage becomes a typed error in bounded
//! time. One binary, for link time.

#[path = "../support/fake_btcpay.rs"]
mod fake_btcpay;
#[path = "../support/fake_provider.rs"]
mod fake_provider;
#[path = "../support/fake_stripe.rs"]
mod fake_stripe;

mod btcpay;
mod stripe;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pennypost::payments::{Provider, ProviderError};

/// The call timeout the tests give providers: short, so a hanging fake costs a second.
pub const TIMEOUT_SECS: u64 = 1;
/// The public URL members are sent back to.
pub const PUBLIC_URL: &str = "https://board.example";

/// Runs `call` and checks it failed within the timeout (with a margin for a loaded machine),
/// returning its error.
pub async fn fails_in_time<T: std::fmt::Debug>(
    call: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> ProviderError {
    let started = Instant::now();
    let result = call.await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(TIMEOUT_SECS + 4),
        "took {elapsed:?}, past the timeout"
    );
    result.expect_err("the call should fail")
}

/// A port of 127.0.0.1 nothing listens on.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

pub type Shared = Arc<dyn Provider>;
