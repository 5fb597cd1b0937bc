//! `pennypost admin credit ACCOUNT_ID AMOUNT --reference REF`: the operator records a payment
//! received outside the server (`POST /v1/admin/accounts/{id}/credit`), so that crediting a
//! newcomer needs no curl; `pennypost admin debit` (same arguments) records a correction
//! (`POST /v1/admin/accounts/{id}/debit`). The admin token comes from `PENNYPOST_ADMIN_TOKEN` only: a token
//! given as an argument would show in the process list and the shell's history.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use uuid::Uuid;

use super::client::{finish, runtime};
use crate::api::{
    CreditRequest, CreditResponse, DebitRequest, DebitResponse, ErrorCode, PricesResponse, Problem,
};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Credit an account with money received outside the server (a payment). Needs the
    /// server's admin token in PENNYPOST_ADMIN_TOKEN. Safe to repeat: the same reference with
    /// the same account and amount credits once (a repeat says "already credited").
    Credit(CreditArgs),
    /// Debit an account: a correction of money credited by mistake, or taken back. Needs the
    /// admin token in PENNYPOST_ADMIN_TOKEN. The balance may go below zero: the account's
    /// unspent stamps are then revoked, latest first, and what they do not cover stays a debt.
    /// Safe to repeat: the same reference with the same account and amount debits once.
    Debit(CreditArgs),
}

#[derive(Args, Debug)]
pub struct CreditArgs {
    /// The account (its id, as `pennypost account create` printed it).
    pub account_id: String,
    /// How much, in the currency's minor unit (cents by default): 1 to 1,000,000,000,000.
    pub amount: u64,
    /// What the money is (a payment, invoice or correction id), unique among the server's
    /// credits and debits: the same reference is never used twice. References beginning
    /// `stripe:`, `btcpay:` or `test:` are the payment providers'.
    #[arg(long)]
    pub reference: String,
    /// The server's base URL (`http://` is added when no scheme is given).
    #[arg(
        long,
        env = "PENNYPOST_SERVER",
        default_value = super::client::DEFAULT_SERVER,
        value_parser = pennypost_audit::server_url::base_url
    )]
    pub server: String,
}

/// The admin token of `admin credit` and `backup`, from `PENNYPOST_ADMIN_TOKEN` only (see the
/// module comment), or what to do when it is not set.
pub fn token_from_env() -> Result<String, String> {
    std::env::var("PENNYPOST_ADMIN_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            "set PENNYPOST_ADMIN_TOKEN to the server's admin token: the token the server was \
             started with (its PENNYPOST_ADMIN_TOKEN, or the file of its admin_token_file), or \
             the one it generated on first start, kept in <data-dir>/admin_token \
             (PENNYPOST_ADMIN_TOKEN=$(cat <data-dir>/admin_token))"
                .to_string()
        })
}

/// What to add to a refusal of an admin request, by its code.
pub fn hint(code: Option<ErrorCode>) -> &'static str {
    match code {
        Some(ErrorCode::Unauthorized) => "; PENNYPOST_ADMIN_TOKEN is not this server's token",
        Some(ErrorCode::NotFound) => "; no account has this id on this server",
        _ => "",
    }
}

pub fn main(command: AdminCommand) -> ExitCode {
    match command {
        AdminCommand::Credit(args) => finish(runtime().and_then(|rt| rt.block_on(credit(args)))),
        AdminCommand::Debit(args) => finish(runtime().and_then(|rt| rt.block_on(debit(args)))),
    }
}

async fn credit(args: CreditArgs) -> Result<(), String> {
    let body = CreditRequest {
        amount: args.amount,
        reference: args.reference.clone(),
    };
    let (client, replayed, body) = post_money(&args, "credit", &body).await?;
    let credited: CreditResponse =
        serde_json::from_slice(&body).map_err(|e| format!("cannot read the answer: {e}"))?;
    let money = Money::of(&client, &args.server).await;
    if replayed {
        println!(
            "already credited: reference {:?} credited {} to account {} before \
             (ledger entry {}); nothing was credited now",
            args.reference,
            money.amount(args.amount),
            credited.account_id,
            credited.ledger_index
        );
        return Ok(());
    }
    println!(
        "credited {} to account {} (reference {:?}); balance {}; ledger entry {}",
        money.amount(args.amount),
        credited.account_id,
        args.reference,
        money.balance(credited.balance),
        credited.ledger_index
    );
    Ok(())
}

async fn debit(args: CreditArgs) -> Result<(), String> {
    let body = DebitRequest {
        amount: args.amount,
        reference: args.reference.clone(),
    };
    let (client, replayed, body) = post_money(&args, "debit", &body).await?;
    let debited: DebitResponse =
        serde_json::from_slice(&body).map_err(|e| format!("cannot read the answer: {e}"))?;
    let money = Money::of(&client, &args.server).await;
    if replayed {
        println!(
            "already debited: reference {:?} debited {} from account {} before \
             (ledger entry {}); nothing was debited now",
            args.reference,
            money.amount(args.amount),
            debited.account_id,
            debited.ledger_index
        );
        return Ok(());
    }
    println!(
        "debited {} from account {} (reference {:?}); balance {}; ledger entry {}",
        money.amount(args.amount),
        debited.account_id,
        args.reference,
        money.balance(debited.balance),
        debited.ledger_index
    );
    if let Some(revoked) = debited.revoked {
        println!(
            "revoked {} unspent stamp(s) worth {} (ledger entry {})",
            revoked.stamps,
            money.amount(revoked.amount),
            revoked.ledger_index
        );
    }
    if debited.balance < 0 {
        println!(
            "the account owes {}: it buys no stamps until credits cover that",
            money.amount(debited.balance.unsigned_abs())
        );
    }
    Ok(())
}

/// Posts `body` to the admin route `/v1/admin/accounts/{id}/{what}` (`credit` or `debit`)
/// with the admin token; returns the client, whether the server answered a replay
/// (`Idempotent-Replayed: true`) and the answer's body. A refusal becomes its code, detail and
/// a hint.
async fn post_money(
    args: &CreditArgs,
    what: &str,
    body: &impl serde::Serialize,
) -> Result<(reqwest::Client, bool, bytes::Bytes), String> {
    let token = token_from_env()?;
    let account_id = Uuid::parse_str(&args.account_id)
        .map_err(|_| format!("{:?} is not an account id (a UUID)", args.account_id))?;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/admin/accounts/{account_id}/{what}", args.server);
    let response = client
        .post(&url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get(crate::http::routes::IDEMPOTENT_REPLAYED)
        .is_some_and(|v| v.as_bytes() == b"true");
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if status != 200 {
        let problem: Option<Problem> = serde_json::from_slice(&body).ok();
        let described = format!(
            "{} ({status}): {}",
            problem.as_ref().map_or("", |p| p.code.as_str()),
            problem.as_ref().map_or("no detail", |p| p.detail.as_str())
        );
        let hint = hint(problem.map(|p| p.code));
        return Err(format!("{described}{hint}"));
    }
    Ok((client, replayed, body))
}

/// Amounts as the reader counts money: in an ISO 4217 currency as decimals ("5.00 USD"),
/// otherwise in the unit the server names ("250 cents"); bare minor units when the server
/// does not say its currency.
struct Money {
    currency: Option<String>,
}

impl Money {
    /// The currency of the server at `server` (`GET /v1/prices`); none when it does not answer.
    async fn of(client: &reqwest::Client, server: &str) -> Money {
        let prices_url = format!("{server}/v1/prices");
        let currency = match client.get(&prices_url).send().await {
            Ok(r) => r.json::<PricesResponse>().await.ok().map(|p| p.currency),
            Err(_) => None,
        };
        Money { currency }
    }

    fn amount(&self, minor: u64) -> String {
        match &self.currency {
            Some(currency) => super::client::price::money(minor, currency),
            None => minor.to_string(),
        }
    }

    /// A balance, below zero while the account owes.
    fn balance(&self, minor: i64) -> String {
        let text = self.amount(minor.unsigned_abs());
        if minor < 0 {
            format!("-{text}")
        } else {
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Money;

    fn money(currency: Option<&str>) -> Money {
        Money {
            currency: currency.map(str::to_string),
        }
    }

    #[test]
    fn amounts_of_an_iso_currency_read_as_decimals() {
        assert_eq!(money(Some("USD")).amount(250), "2.50 USD");
        assert_eq!(money(Some("usd")).balance(-1005), "-10.05 USD");
        assert_eq!(money(Some("JPY")).amount(250), "250 JPY");
    }

    #[test]
    fn other_units_and_unknown_currencies_read_as_minor_units() {
        assert_eq!(money(Some("cents")).amount(250), "250 cents");
        assert_eq!(money(Some("cents")).balance(-1), "-1 cent");
        assert_eq!(money(None).balance(-7), "-7");
    }
}
