//! Money in, for a member at a terminal or in a script: `pennypost pay --amount N --provider P`
//! creates a payment (`POST /v1/payments`), prints where to pay (`pay_url`) and waits, with a
//! spinner on a terminal and plain lines otherwise, until the payment is paid, expired or
//! failed, then prints the new balance; `--no-wait` stops after printing. `pennypost payments
//! list` and `pennypost payments check ID` read the account's payments.
//!
//! Before creating anything it asks the server which providers it takes
//! (`GET /v1/payments/providers`) and refuses, saying what the server takes, a provider it
//! does not take or an amount outside the provider's bounds. Every wait is bounded
//! ([`WAIT_SECS_DEFAULT`], at most [`WAIT_SECS_MAX`]); the wait asks the server every
//! [`POLL_INTERVAL`] (the server asks the provider at most once per 10 s per payment, however
//! often it is asked) and gives up after [`FAILURES_MAX`] failed asks in a row. Stopping the
//! wait (Ctrl+C) stops nothing at the provider: the payment is credited when paid, and
//! `payments check` shows it.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use uuid::Uuid;

use super::http::{call, Answer};
use super::{account_of, finish, price, runtime, ClientArgs, Target, Wallet};
use crate::api::{
    CreatePaymentRequest, ErrorCode, PaymentProvider, PaymentProvidersResponse, PaymentResponse,
    PaymentStatusName, PaymentsPageResponse,
};

/// How long `pay` waits for the payment by default: a member who paid has paid well within it.
pub const WAIT_SECS_DEFAULT: u64 = 1800;
/// The longest `--wait-secs` taken: a day, longer than any provider keeps a payment open.
pub const WAIT_SECS_MAX: u64 = 86_400;
/// How often the wait asks the server about the payment.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Failed asks in a row (the server unreachable or unavailable) after which the wait stops.
pub const FAILURES_MAX: u32 = 15;
/// How often, without a terminal, the wait says it is still waiting.
const PLAIN_LINE_EVERY: Duration = Duration::from_secs(60);
/// How many attempts a payment's creation gets on network errors (one idempotency key).
const CREATE_ATTEMPTS: u32 = 3;
/// The most payments one `payments list` shows (the server's page limit).
pub const LIST_LIMIT_MAX: u32 = 100;

#[derive(Args, Debug)]
pub struct PayArgs {
    /// How much to add, in the currency's minor unit (cents for USD); the server's bounds are
    /// shown by `GET /v1/payments/providers` and checked before anything is created.
    #[arg(long)]
    pub amount: u64,
    /// The payment provider: `stripe`, `btcpay` or `test` (one the server has enabled).
    #[arg(long)]
    pub provider: String,
    /// Print where to pay and stop; `pennypost payments check ID` shows the payment later.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the payment, in seconds (1 to 86400).
    #[arg(long, default_value_t = WAIT_SECS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=WAIT_SECS_MAX))]
    pub wait_secs: u64,
}

#[derive(Subcommand, Debug)]
pub enum PaymentsCommand {
    /// List the account's payments, newest first: id, provider, amount, status, created.
    List {
        /// How many (1 to 100).
        #[arg(long, default_value_t = 20,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(LIST_LIMIT_MAX)))]
        limit: u32,
        /// Only payments older than this one (the id the previous page ended with).
        #[arg(long)]
        before: Option<String>,
    },
    /// Show one payment (the server asks the provider about it first while it is pending),
    /// and the balance.
    Check {
        /// The payment's id, as `pennypost pay` or `payments list` printed it.
        payment_id: String,
    },
}

/// A payment's status as said: `pending`, `paid`, … (the wire's names).
fn status_word(status: PaymentStatusName) -> &'static str {
    match status {
        PaymentStatusName::Pending => "pending",
        PaymentStatusName::Paid => "paid",
        PaymentStatusName::Expired => "expired",
        PaymentStatusName::Failed => "failed",
        PaymentStatusName::Refunded => "refunded",
        PaymentStatusName::Disputed => "disputed",
    }
}

/// An amount in words, which may be negative: "-200 cents".
fn signed_money(n: i64, currency: &str) -> String {
    if n < 0 {
        format!("-{}", price::money(n.unsigned_abs(), currency))
    } else {
        price::money(n.unsigned_abs(), currency)
    }
}

/// A balance in words; a debt is said plainly.
pub(crate) fn balance_words(balance: i64, currency: &str) -> String {
    let shown = signed_money(balance, currency);
    if balance < 0 {
        format!(
            "{shown}: you owe {}; purchases are refused until it is paid",
            price::money(balance.unsigned_abs(), currency)
        )
    } else {
        shown
    }
}

/// A provider's name as shown: "stripe", "test (test mode)".
fn provider_words(provider: &str, test_mode: bool) -> String {
    if test_mode || provider == crate::payments::test_provider::NAME {
        format!("{provider} (test mode: no money moves)")
    } else {
        provider.to_string()
    }
}

/// The providers the server takes; an older server without payments takes none.
async fn providers(
    client: &reqwest::Client,
    target: &Target,
) -> Result<Vec<PaymentProvider>, String> {
    let url = format!("{}/v1/payments/providers", target.server);
    let answer = call(client.get(&url), &url).await?;
    match answer.status {
        200 => Ok(answer.json::<PaymentProvidersResponse>()?.providers),
        404 => Ok(Vec::new()),
        _ => Err(target.describe(&answer)),
    }
}

/// "stripe, test (test mode)".
fn taken(providers: &[PaymentProvider]) -> String {
    providers
        .iter()
        .map(|p| {
            if p.test_mode {
                format!("{} (test mode)", p.provider)
            } else {
                p.provider.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a refusal of the server means, in words: `creating` names the provider of a payment
/// being created (a 503 then means its API failed and nothing was recorded).
fn refusal(target: &Target, answer: &Answer, creating: Option<&str>) -> String {
    let code = answer.problem().map(|p| p.code);
    let unavailable = answer.status == 503 || code == Some(ErrorCode::ServiceUnavailable);
    match creating {
        Some(provider) if unavailable => format!(
            "{}: the server could not reach the payment provider ({provider}) or is \
             unavailable; nothing was charged and nothing is pending: try again in a minute",
            answer.describe()
        ),
        None if unavailable => format!(
            "{}: the server is unavailable; try again in a minute",
            answer.describe()
        ),
        None if answer.status == 404 => format!(
            "{}: no such payment of this account on {}",
            answer.describe(),
            target.server
        ),
        _ => target.describe(answer),
    }
}

/// `GET /v1/payments/{id}`.
async fn payment(
    client: &reqwest::Client,
    target: &Target,
    key: &str,
    id: Uuid,
) -> Result<Result<PaymentResponse, Answer>, String> {
    let url = format!("{}/v1/payments/{id}", target.server);
    let answer = call(client.get(&url).bearer_auth(key), &url).await?;
    if answer.status == 200 {
        Ok(Ok(answer.json()?))
    } else {
        Ok(Err(answer))
    }
}

/// How a member short of money adds some, for the end of a sentence: `pennypost pay` with the
/// first provider the server takes; `None` when it takes none (or cannot say), and the
/// operator credits instead.
pub(crate) async fn pay_hint(client: &reqwest::Client, target: &Target) -> Option<String> {
    let offered = providers(client, target).await.ok()?;
    let first = offered.first()?;
    Some(format!(
        "add money with `pennypost pay --amount {} --provider {}` (this server takes: {})",
        first.min.max(500).min(first.max),
        first.provider,
        taken(&offered)
    ))
}

/// The debt of the account of `key` in words ("you owe 200 cents; …"), when its balance is
/// below zero.
pub(crate) async fn debt(client: &reqwest::Client, target: &Target, key: &str) -> Option<String> {
    let now = account_of(client, target, key).await.ok()?;
    (now.balance < 0).then(|| {
        format!(
            "you owe {}; purchases are refused until it is paid",
            price::money(now.balance.unsigned_abs(), &now.currency)
        )
    })
}

/// `pennypost pay`.
pub fn pay(client_args: ClientArgs, args: PayArgs) -> std::process::ExitCode {
    finish(runtime().and_then(|rt| rt.block_on(pay_async(client_args, args))))
}

async fn pay_async(client_args: ClientArgs, args: PayArgs) -> Result<(), String> {
    let client = reqwest::Client::new();
    let wallet = Wallet::load(&client_args.wallet)?;
    let target = Target::new(&client_args, &wallet);
    let key = wallet.api_key()?.to_string();
    let offered = providers(&client, &target).await?;
    if offered.is_empty() {
        return Err(format!(
            "the server at {} takes no payments (no provider is enabled); ask the operator to \
             credit account {}",
            target.server,
            wallet.account_id.as_deref().unwrap_or("(see the wallet)")
        ));
    }
    let Some(chosen) = offered.iter().find(|p| p.provider == args.provider) else {
        return Err(format!(
            "the server does not take payments with {:?}; it takes: {}",
            args.provider,
            taken(&offered)
        ));
    };
    if args.amount < chosen.min || args.amount > chosen.max {
        return Err(format!(
            "an amount of {} is out of bounds: one payment with {} is {} to {}",
            price::money(args.amount, &chosen.currency),
            chosen.provider,
            price::money(chosen.min, &chosen.currency),
            price::money(chosen.max, &chosen.currency)
        ));
    }
    let created = create(&client, &target, &key, chosen, args.amount).await?;
    let pay_url = &created.pay_url;
    println!(
        "payment {} of {} with {}: {}",
        created.payment_id,
        price::money(created.amount, &created.currency),
        provider_words(&created.provider, chosen.test_mode),
        status_word(created.status)
    );
    println!(
        "pay here before {}: {pay_url}",
        created.expires_at.0.to_rfc3339()
    );
    if args.no_wait {
        println!(
            "not waiting (--no-wait); see it with `pennypost payments check {}`",
            created.payment_id
        );
        return Ok(());
    }
    let done = wait(
        &client,
        &target,
        &key,
        created.payment_id,
        Duration::from_secs(args.wait_secs),
    )
    .await?;
    settled(&client, &target, &key, &done).await
}

/// Creates the payment: one idempotency key for every attempt, so a retry after a lost answer
/// cannot make two.
async fn create(
    client: &reqwest::Client,
    target: &Target,
    key: &str,
    chosen: &PaymentProvider,
    amount: u64,
) -> Result<PaymentResponse, String> {
    let url = format!("{}/v1/payments", target.server);
    let idempotency_key = Uuid::new_v4().to_string();
    let mut last_error = String::new();
    for _attempt in 0..CREATE_ATTEMPTS {
        let request = client
            .post(&url)
            .bearer_auth(key)
            .header("Idempotency-Key", &idempotency_key)
            .json(&CreatePaymentRequest {
                provider: chosen.provider.clone(),
                amount,
            });
        match call(request, &url).await {
            Ok(answer) if answer.status == 201 || answer.status == 200 => return answer.json(),
            Ok(answer) => return Err(refusal(target, &answer, Some(&chosen.provider))),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// What the wait shows while it waits: a spinner on a terminal, a line a minute otherwise.
enum Progress {
    Spinner(indicatif::ProgressBar),
    Plain { started: Instant, said: Instant },
}

impl Progress {
    fn start(limit: Duration) -> Progress {
        let until = price::duration(limit.as_secs());
        if std::io::stderr().is_terminal() {
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.set_message(format!(
                "waiting for the payment (up to {until}; Ctrl+C stops waiting, not the payment)"
            ));
            spinner.enable_steady_tick(Duration::from_millis(120));
            Progress::Spinner(spinner)
        } else {
            println!("waiting for the payment (up to {until})");
            let now = Instant::now();
            Progress::Plain {
                started: now,
                said: now,
            }
        }
    }

    fn tick(&mut self, status: &str) {
        match self {
            Progress::Spinner(spinner) => spinner.set_message(format!(
                "waiting for the payment: {status} ({} s; Ctrl+C stops waiting, not the payment)",
                spinner.elapsed().as_secs()
            )),
            Progress::Plain { started, said } => {
                if said.elapsed() >= PLAIN_LINE_EVERY {
                    *said = Instant::now();
                    println!("still {status} after {} s", started.elapsed().as_secs());
                }
            }
        }
    }

    fn finish(self) {
        if let Progress::Spinner(spinner) = self {
            spinner.finish_and_clear();
        }
    }
}

/// Asks about the payment every [`POLL_INTERVAL`] until it is no longer pending or `limit`
/// has passed.
async fn wait(
    client: &reqwest::Client,
    target: &Target,
    key: &str,
    id: Uuid,
    limit: Duration,
) -> Result<PaymentResponse, String> {
    let deadline = Instant::now() + limit;
    let mut progress = Progress::start(limit);
    let mut failures = 0u32;
    let outcome = loop {
        let failure = match payment(client, target, key, id).await {
            Ok(Ok(view)) if view.status != PaymentStatusName::Pending => break Ok(view),
            Ok(Ok(view)) => {
                failures = 0;
                progress.tick(status_word(view.status));
                None
            }
            Ok(Err(answer)) if answer.status == 503 || answer.status == 429 => {
                Some(answer.describe())
            }
            Ok(Err(answer)) => break Err(refusal(target, &answer, None)),
            Err(e) => Some(e),
        };
        if let Some(why) = failure {
            failures += 1;
            progress.tick("unknown: the server did not answer");
            if failures >= FAILURES_MAX {
                break Err(format!(
                    "stopped waiting after {FAILURES_MAX} failed asks in a row ({why}); the \
                     payment goes on: see it with `pennypost payments check {id}`"
                ));
            }
        }
        if Instant::now() + POLL_INTERVAL > deadline {
            break Err(format!(
                "the payment is still pending after {}; it goes on: see it with \
                 `pennypost payments check {id}`",
                price::duration(limit.as_secs())
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    progress.finish();
    outcome
}

/// Says how the payment ended and the balance now; `Err` unless it was paid.
async fn settled(
    client: &reqwest::Client,
    target: &Target,
    key: &str,
    view: &PaymentResponse,
) -> Result<(), String> {
    let money = price::money(view.amount, &view.currency);
    let ended = match view.status {
        PaymentStatusName::Paid => {
            let entry = view
                .credited_ledger_index
                .map(|i| format!(" (ledger entry {i})"))
                .unwrap_or_default();
            println!("paid: {money} credited{entry}");
            None
        }
        PaymentStatusName::Expired => Some(format!(
            "the payment {} expired unpaid: nothing was credited; start a new one with \
             `pennypost pay`",
            view.payment_id
        )),
        PaymentStatusName::Failed => Some(format!(
            "the payment {} failed: nothing was credited (if money left you, the operator can \
             settle it by hand: give them the payment id)",
            view.payment_id
        )),
        other => Some(format!(
            "the payment {} is {}: it was paid, then the money went back",
            view.payment_id,
            status_word(other)
        )),
    };
    let now = account_of(client, target, key).await?;
    println!("balance {}", balance_words(now.balance, &now.currency));
    match ended {
        None => Ok(()),
        Some(why) => Err(why),
    }
}

/// `pennypost payments list|check`.
pub fn payments(client_args: ClientArgs, command: PaymentsCommand) -> std::process::ExitCode {
    finish(runtime().and_then(|rt| {
        rt.block_on(async {
            let client = reqwest::Client::new();
            let wallet = Wallet::load(&client_args.wallet)?;
            let target = Target::new(&client_args, &wallet);
            let key = wallet.api_key()?.to_string();
            match command {
                PaymentsCommand::List { limit, before } => {
                    list(&client, &target, &key, limit, before).await
                }
                PaymentsCommand::Check { payment_id } => {
                    let id = Uuid::parse_str(&payment_id)
                        .map_err(|_| format!("{payment_id:?} is not a payment id (a UUID)"))?;
                    check(&client, &target, &key, id).await
                }
            }
        })
    }))
}

async fn list(
    client: &reqwest::Client,
    target: &Target,
    key: &str,
    limit: u32,
    before: Option<String>,
) -> Result<(), String> {
    let mut url = format!("{}/v1/payments?limit={limit}", target.server);
    if let Some(before) = before {
        let id = Uuid::parse_str(&before)
            .map_err(|_| format!("--before {before:?} is not a payment id (a UUID)"))?;
        url.push_str(&format!("&before={id}"));
    }
    let answer = call(client.get(&url).bearer_auth(key), &url).await?;
    if answer.status != 200 {
        return Err(refusal(target, &answer, None));
    }
    let page: PaymentsPageResponse = answer.json()?;
    if page.payments.is_empty() {
        println!("no payments yet; add money with `pennypost pay --amount N --provider P`");
        return Ok(());
    }
    print!("{}", table(&page.payments));
    if let Some(next) = page.next_before {
        println!("older payments: `pennypost payments list --before {next}`");
    }
    Ok(())
}

/// The payments as a table, columns aligned: id, provider, amount, status, created.
fn table(payments: &[PaymentResponse]) -> String {
    let header = ["ID", "PROVIDER", "AMOUNT", "STATUS", "CREATED"].map(String::from);
    let rows: Vec<[String; 5]> = payments
        .iter()
        .map(|p| {
            [
                p.payment_id.to_string(),
                p.provider.clone(),
                price::money(p.amount, &p.currency),
                status_word(p.status).to_string(),
                p.created_at.0.to_rfc3339(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

async fn check(
    client: &reqwest::Client,
    target: &Target,
    key: &str,
    id: Uuid,
) -> Result<(), String> {
    let view = match payment(client, target, key, id).await? {
        Ok(view) => view,
        Err(answer) => return Err(refusal(target, &answer, None)),
    };
    println!("payment:  {}", view.payment_id);
    println!(
        "provider: {}",
        provider_words(&view.provider, view.test_mode)
    );
    println!("amount:   {}", price::money(view.amount, &view.currency));
    let status = match (view.status, view.credited_ledger_index) {
        (PaymentStatusName::Paid, Some(index)) => format!("paid (credited, ledger entry {index})"),
        (status, _) => status_word(status).to_string(),
    };
    println!("status:   {status}");
    println!("created:  {}", view.created_at.0.to_rfc3339());
    println!("updated:  {}", view.updated_at.0.to_rfc3339());
    if view.status == PaymentStatusName::Pending {
        println!("pay at:   {}", view.pay_url);
    }
    let now = account_of(client, target, key).await?;
    println!("balance:  {}", balance_words(now.balance, &now.currency));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: u128, provider: &str, amount: u64, status: PaymentStatusName) -> PaymentResponse {
        let at = crate::api::Time(crate::time::Timestamp::from_unix(1_796_623_200));
        PaymentResponse {
            account_id: Uuid::from_u128(7),
            amount,
            created_at: at,
            credited_ledger_index: None,
            currency: "cents".into(),
            expires_at: at,
            pay_url: format!("http://board.test/pay/{id}"),
            payment_id: Uuid::from_u128(id),
            provider: provider.into(),
            status,
            test_mode: provider == "test",
            updated_at: at,
        }
    }

    #[test]
    fn a_debt_is_said_plainly() {
        assert_eq!(
            balance_words(-200, "cents"),
            "-200 cents: you owe 200 cents; purchases are refused until it is paid"
        );
        assert!(balance_words(-1, "cents").starts_with("-1 cent: you owe 1 cent;"));
        assert_eq!(balance_words(600, "cents"), "600 cents");
        assert_eq!(balance_words(0, "cents"), "0 cents");
    }

    #[test]
    fn the_table_aligns_its_columns() {
        let shown = table(&[
            view(1, "stripe", 500, PaymentStatusName::Paid),
            view(2, "test", 100, PaymentStatusName::Expired),
        ]);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 3, "{shown}");
        assert!(lines[0].starts_with("ID "), "{shown}");
        let column = |line: &str, word: &str| line.find(word).expect("a column");
        assert_eq!(column(lines[0], "PROVIDER"), column(lines[1], "stripe"));
        assert_eq!(column(lines[0], "STATUS"), column(lines[2], "expired"));
        assert!(lines[1].contains("500 cents") && lines[2].contains("100 cents"));
    }

    #[test]
    fn a_debt_in_an_iso_currency_is_said_in_decimals() {
        assert_eq!(
            balance_words(-250, "EUR"),
            "-2.50 EUR: you owe 2.50 EUR; purchases are refused until it is paid"
        );
    }

    #[test]
    fn the_test_provider_says_test_mode() {
        assert!(provider_words("test", false).contains("test mode"));
        assert!(provider_words("other", true).contains("test mode"));
        assert_eq!(provider_words("stripe", false), "stripe");
    }
}
