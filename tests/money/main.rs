//! Money in, end to end: the real `pennypost serve` taking payments through the fake Stripe
//! and BTCPay servers (`tests/support/fake_*.rs`, started here on 127.0.0.1 and named with
//! `--stripe-api-base` / `--btcpay-url`) and through the test provider, driven over HTTP.
//! After each case the ledger passes `pennypost audit`. Servers keep their store in sled, or
//! with `PENNYPOST_TEST_BACKEND=postgres` each in a PostgreSQL database of its own (as
//! `tests/api`; `scripts/test` runs both). One binary, modules below:
//!
//! - [`test_mode`]: the test provider end to end (create, pay page, credit, status).
//! - [`stripe`]: webhooks repeated and racing a poll, bad signatures, events the API does
//!   not confirm, the API down during a webhook, the start-up sweep after a lost webhook.
//! - [`btcpay`]: an invoice settled once, late settlement, a mismatched amount.
//! - [`bad_input`]: unknown provider, amounts out of bounds, bodies that are not JSON or too
//!   large, a provider answering garbage or hanging, another account's payment.
//! - [`refunds`]: partial, full and failed refunds; disputes leaving a debt, revoking stamps,
//!   won; a refund of a payment still pending here.
//! - [`servers`]: two servers on one PostgreSQL database receiving the same webhook at once.

#[path = "../support/fake_btcpay.rs"]
mod fake_btcpay;
#[path = "../support/fake_provider.rs"]
mod fake_provider;
#[path = "../support/fake_stripe.rs"]
mod fake_stripe;
#[path = "../support/pg.rs"]
mod pg;
#[path = "../support/serve.rs"]
mod serve;

mod bad_input;
mod btcpay;
mod harness;
mod refunds;
mod servers;
mod stripe;
mod test_mode;
