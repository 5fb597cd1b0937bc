//! The client side of the command line, for people and scripts: `account create|show`,
//! `buy N`, `post TEXT`, `vote POST_ID up|down`, `stamps [--full]`, and money in: `pay`,
//! `payments list|check` (`payments`). The API key and the bought
//! stamps live in a wallet file (mode 0600, replaced atomically), so stamps bought by one
//! command are spent by the next.
//!
//! A post or vote asks the server its price first and says it in words; stamps the wallet
//! lacks are bought once the member agrees (`pay`). A post made with the wallet's API key is
//! written by its account, under its name, verified.
//!
//! Stamps leave the wallet only when the server confirms they are spent (201), or says they
//! can never be spent (already spent, expired, invalid). On a network failure they stay.

mod http;
mod pay;
pub mod payments;
pub mod price;
mod target;
mod wallet;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use uuid::Uuid;

use crate::api::{
    AccountResponse, CreateAccountRequest, CreateAccountResponse, CreatePostRequest, Direction,
    Post, PurchaseRequest, PurchaseResponse, VoteRequest, VoteResponse,
};
use http::call;
use pay::{Action, Payment};
pub use payments::{pay as pay_money, payments, PayArgs, PaymentsCommand};
pub use target::Target;
pub use wallet::Wallet;

/// The server a client command talks to when neither `--server`, `PENNYPOST_SERVER` nor the
/// wallet names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The server's base URL (`http://` is added when no scheme is given). Without it (and
    /// without PENNYPOST_SERVER), the server the wallet's account was created at, else
    /// http://127.0.0.1:8080.
    #[arg(
        long,
        env = "PENNYPOST_SERVER",
        value_parser = pennypost_audit::server_url::base_url,
        global = true
    )]
    pub server: Option<String>,
    /// The wallet file holding the API key and bought stamps.
    #[arg(
        long,
        env = "PENNYPOST_WALLET",
        default_value = "pennypost-wallet.json",
        global = true
    )]
    pub wallet: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Create an account and keep its API key in the wallet.
    Create {
        /// The account's name: your posts made with this wallet show it, marked verified.
        /// Names are unique (compared without case). Without one, posts are not verified.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show the account's name, balance, stamp counts and refunds received.
    Show,
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

pub(crate) fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn account(args: ClientArgs, command: AccountCommand) -> ExitCode {
    finish(runtime().and_then(|rt| {
        rt.block_on(async {
            let client = reqwest::Client::new();
            let mut wallet = Wallet::load(&args.wallet)?;
            let target = Target::new(&args, &wallet);
            match command {
                AccountCommand::Create { name } => {
                    if wallet.api_key.is_some() {
                        return Err(format!(
                            "wallet {} already holds an account; use another --wallet",
                            args.wallet.display()
                        ));
                    }
                    let url = format!("{}/v1/accounts", target.server);
                    let request = client
                        .post(&url)
                        .json(&CreateAccountRequest { name: name.clone() });
                    let answer = call(request, &url).await?;
                    if answer.status != 201 {
                        if answer
                            .problem()
                            .is_some_and(|p| p.code == crate::api::ErrorCode::NameTaken)
                        {
                            return Err(format!(
                                "{}: the name {:?} belongs to another account; choose another \
                                 --name",
                                answer.describe(),
                                name.unwrap_or_default()
                            ));
                        }
                        return Err(answer.describe());
                    }
                    let created: CreateAccountResponse = answer.json()?;
                    let id = created.account_id.to_string();
                    wallet.server = Some(target.server.clone());
                    wallet.account_id = Some(id.clone());
                    wallet.api_key = Some(created.api_key);
                    wallet.save(&args.wallet)?;
                    match &name {
                        Some(name) => println!(
                            "account {id} ({name}) created; API key saved in {}",
                            args.wallet.display()
                        ),
                        None => println!(
                            "account {id} created; API key saved in {}",
                            args.wallet.display()
                        ),
                    }
                    let how = payments::pay_hint(&client, &target)
                        .await
                        .unwrap_or_else(|| format!("ask the operator to credit account {id}"));
                    println!("{how} before buying stamps");
                    Ok(())
                }
                AccountCommand::Show => {
                    let account = account_of(&client, &target, wallet.api_key()?).await?;
                    println!("account:          {}", account.account_id);
                    println!(
                        "name:             {}",
                        account.name.as_deref().unwrap_or("(none)")
                    );
                    println!(
                        "balance:          {}",
                        payments::balance_words(account.balance, &account.currency)
                    );
                    println!("stamps purchased: {}", account.stamps_purchased);
                    println!("stamps spent:     {}", account.stamps_spent);
                    println!(
                        "refunds received: {} {}",
                        account.refunds_total, account.currency
                    );
                    println!("stamps in wallet: {}", wallet.stamps.len());
                    Ok(())
                }
            }
        })
    }))
}

/// `GET /v1/account` with `key`.
pub(crate) async fn account_of(
    client: &reqwest::Client,
    target: &Target,
    key: &str,
) -> Result<AccountResponse, String> {
    let url = format!("{}/v1/account", target.server);
    let answer = call(client.get(&url).bearer_auth(key), &url).await?;
    if answer.status != 200 {
        return Err(target.describe(&answer));
    }
    answer.json()
}

/// Buys `count` stamps into `wallet` (and saves it). One idempotency key for all attempts: a
/// retry after a lost answer cannot charge twice. Retries up to 3 times on network errors.
pub(crate) async fn buy_into(
    target: &Target,
    client: &reqwest::Client,
    wallet: &mut Wallet,
    count: u64,
) -> Result<PurchaseResponse, String> {
    let key = wallet.api_key()?.to_string();
    let idempotency_key = Uuid::new_v4().to_string();
    let url = format!("{}/v1/stamps/purchase", target.server);
    let mut last_error = String::new();
    for _attempt in 0..3 {
        let request = client
            .post(&url)
            .bearer_auth(&key)
            .header("Idempotency-Key", &idempotency_key)
            .json(&PurchaseRequest { count });
        let answer = match call(request, &url).await {
            Ok(answer) => answer,
            Err(e) => {
                last_error = e;
                continue;
            }
        };
        if answer.status != 201 {
            if answer
                .problem()
                .is_some_and(|p| p.code == crate::api::ErrorCode::InsufficientFunds)
            {
                let account = wallet.account_id.as_deref().unwrap_or("(see the wallet)");
                let how = payments::pay_hint(client, target).await.unwrap_or_else(|| {
                    format!(
                        "ask the operator to credit account {account} (they run `pennypost \
                         admin credit {account} AMOUNT --reference REF`)"
                    )
                });
                return Err(match payments::debt(client, target, &key).await {
                    Some(debt) => format!("{}: {debt}; {how}", answer.describe()),
                    None => format!("{}: {how}, then buy again", answer.describe()),
                });
            }
            return Err(target.describe(&answer));
        }
        let mut purchase: PurchaseResponse = answer.json()?;
        wallet.stamps.append(&mut purchase.stamps);
        wallet.save(&target.wallet)?;
        return Ok(purchase);
    }
    Err(last_error)
}

pub fn buy(args: ClientArgs, count: u64) -> ExitCode {
    finish(runtime().and_then(|rt| {
        rt.block_on(async {
            let client = reqwest::Client::new();
            let mut wallet = Wallet::load(&args.wallet)?;
            let target = Target::new(&args, &wallet);
            let purchase = buy_into(&target, &client, &mut wallet, count).await?;
            // The currency's name, for the reader: the purchase answer gives amounts only.
            let currency = currency_of(&client, &target).await;
            println!(
                "bought {} for {}; balance {}; {} in the wallet",
                price::stamps(u64::from(purchase.count)),
                price::money(purchase.total, &currency),
                price::money(purchase.balance, &currency),
                price::stamps(u64::try_from(wallet.stamps.len()).unwrap_or(u64::MAX))
            );
            Ok(())
        })
    }))
}

/// The server's currency (`GET /v1/prices`), or "minor units" when it does not say.
pub(crate) async fn currency_of(client: &reqwest::Client, target: &Target) -> String {
    let url = format!("{}/v1/prices", target.server);
    match call(client.get(&url), &url).await {
        Ok(answer) if answer.status == 200 => answer
            .json::<crate::api::PricesResponse>()
            .map(|p| p.currency)
            .unwrap_or_else(|_| "minor units".into()),
        _ => "minor units".into(),
    }
}

pub fn post(args: ClientArgs, text: String, author: Option<String>, yes: bool) -> ExitCode {
    finish(runtime().and_then(|rt| {
        rt.block_on(async {
            let mut payment = Payment::start(&args, yes).await?;
            // Who writes the post: the account of the wallet's API key, under its name and
            // verified, unless it has no name or another author is asked for.
            let name = match &payment.wallet.api_key {
                Some(key) => {
                    account_of(&payment.client, &payment.target, key)
                        .await?
                        .name
                }
                None => None,
            };
            let key = match (&name, &author) {
                (Some(_), None) => payment.wallet.api_key.clone(),
                (Some(name), Some(given)) if given == name => payment.wallet.api_key.clone(),
                (Some(name), Some(given)) => {
                    println!("posting as {given:?}, not verified: the account's name is {name:?}");
                    None
                }
                (None, _) => None,
            };
            let author = match key {
                Some(_) => None,
                None => Some(author.unwrap_or_else(|| "anonymous".into())),
            };
            let url = format!("{}/v1/posts", payment.target.server);
            let paid = payment
                .pay(Action::Post, "post", |client, stamps| {
                    let mut request = client.post(&url).json(&CreatePostRequest {
                        author: author.clone(),
                        body: text.clone(),
                        stamps,
                    });
                    if let Some(key) = &key {
                        request = request.bearer_auth(key);
                    }
                    (request, url.clone())
                })
                .await?;
            let post: Post = paid.answer.json()?;
            println!(
                "posted {} as {} ({}): it cost {}; {} stamp(s) left in the wallet",
                post.post_id,
                post.author,
                if post.verified {
                    "verified"
                } else {
                    "not verified"
                },
                price::stamps(paid.cost),
                payment.wallet.stamps.len()
            );
            Ok(())
        })
    }))
}

pub fn vote(args: ClientArgs, post_id: String, direction: String, yes: bool) -> ExitCode {
    finish(runtime().and_then(|rt| {
        rt.block_on(async {
            let up_or_down = match direction.as_str() {
                "up" => Direction::Up,
                "down" => Direction::Down,
                _ => return Err("direction must be up or down".into()),
            };
            let id = Uuid::parse_str(&post_id)
                .map_err(|_| format!("{post_id:?} is not a post id (a UUID)"))?;
            let mut payment = Payment::start(&args, yes).await?;
            let url = format!("{}/v1/posts/{id}/votes", payment.target.server);
            let verb = format!("vote {direction}");
            let paid = payment
                .pay(Action::Vote(id), &verb, |client, stamps| {
                    let request = client.post(&url).json(&VoteRequest {
                        direction: up_or_down,
                        stamps,
                    });
                    (request, url.clone())
                })
                .await?;
            let vote: VoteResponse = paid.answer.json()?;
            println!(
                "voted {direction}: it cost {}; score is now {} ({} stamp(s) left)",
                price::stamps(paid.cost),
                vote.score,
                payment.wallet.stamps.len()
            );
            if let Some(index) = vote.refund_ledger_index {
                println!(
                    "this up-vote completed the post's voters: its author got the postage \
                     back (ledger entry {index})"
                );
            }
            Ok(())
        })
    }))
}

pub fn stamps(args: ClientArgs, full: bool) -> ExitCode {
    finish((|| {
        let wallet = Wallet::load(&args.wallet)?;
        println!(
            "{} stamp(s) in {}",
            wallet.stamps.len(),
            args.wallet.display()
        );
        for text in &wallet.stamps {
            let line = match crate::stamp::decode(text) {
                Ok(d) => format!(
                    "{}  expires {}",
                    d.payload.stamp_id,
                    crate::time::Timestamp::from_unix(d.payload.expires_at).to_rfc3339()
                ),
                Err(e) => format!("(unreadable stamp: {e})"),
            };
            if full {
                println!("{line}  {text}");
            } else {
                println!("{line}");
            }
        }
        Ok(())
    })())
}
