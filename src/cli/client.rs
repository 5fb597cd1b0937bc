//! The client side of the command line, for scripts: `account create`, `buy N`, `post TEXT`,
//! `vote POST_ID up|down`, `stamps`. The API key and the bought stamps live in a wallet file
//! (mode 0600, replaced atomically), so stamps bought by one command are spent by the next.
//!
//! Stamps leave the wallet only when the server confirms they are spent (201), or says they
//! can never be spent (already spent, expired, invalid). On a network failure they stay.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::{
    AccountResponse, CreateAccountRequest, CreateAccountResponse, CreatePostRequest, Direction,
    ErrorCode, Post, PricesResponse, Problem, PurchaseRequest, PurchaseResponse, VoteRequest,
    VoteResponse,
};

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "PENNYPOST_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
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
        #[arg(long)]
        name: Option<String>,
    },
    /// Show the account's balance and stamp counts.
    Show,
}

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct Wallet {
    pub server: Option<String>,
    pub account_id: Option<String>,
    pub api_key: Option<String>,
    #[serde(default)]
    pub stamps: Vec<String>,
}

impl Wallet {
    pub fn load(path: &Path) -> Result<Wallet, String> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("wallet {} is not valid: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Wallet::default()),
            Err(e) => Err(format!("cannot read wallet {}: {e}", path.display())),
        }
    }

    /// Writes the wallet mode 0600 through a temporary file and a rename.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("cannot write wallet {}: {e}", tmp.display()))?;
        file.write_all(&bytes)
            .and_then(|_| file.sync_all())
            .map_err(|e| format!("cannot write wallet {}: {e}", tmp.display()))?;
        fs::rename(&tmp, path).map_err(|e| format!("cannot write wallet {}: {e}", path.display()))
    }

    fn api_key(&self) -> Result<&str, String> {
        self.api_key
            .as_deref()
            .ok_or_else(|| "no account in this wallet: run `pennypost account create` first".into())
    }
}

/// An HTTP answer: status and body.
struct Answer {
    status: u16,
    body: bytes::Bytes,
}

impl Answer {
    /// The body as the answer type `T`.
    fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("cannot read the answer: {e}"))
    }

    /// The body as an error answer, when it is one.
    fn problem(&self) -> Option<Problem> {
        serde_json::from_slice(&self.body).ok()
    }

    fn describe(&self) -> String {
        let problem = self.problem();
        format!(
            "{} ({}): {}",
            problem.as_ref().map_or("", |p| p.code.as_str()),
            self.status,
            problem.as_ref().map_or("no detail", |p| p.detail.as_str())
        )
    }
}

/// Sends `request` (to `url`) and reads the whole answer.
async fn call(request: reqwest::RequestBuilder, url: &str) -> Result<Answer, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    Ok(Answer { status, body })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn finish(result: Result<(), String>) -> ExitCode {
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
            match command {
                AccountCommand::Create { name } => {
                    if wallet.api_key.is_some() {
                        return Err(format!(
                            "wallet {} already holds an account; use another --wallet",
                            args.wallet.display()
                        ));
                    }
                    let url = format!("{}/v1/accounts", args.server);
                    let request = client.post(&url).json(&CreateAccountRequest { name });
                    let answer = call(request, &url).await?;
                    if answer.status != 201 {
                        return Err(answer.describe());
                    }
                    let created: CreateAccountResponse = answer.json()?;
                    let id = created.account_id.to_string();
                    wallet.server = Some(args.server.clone());
                    wallet.account_id = Some(id.clone());
                    wallet.api_key = Some(created.api_key);
                    wallet.save(&args.wallet)?;
                    println!(
                        "account {id} created; API key saved in {}",
                        args.wallet.display()
                    );
                    println!("ask the operator to credit account {id} before buying stamps");
                    Ok(())
                }
                AccountCommand::Show => {
                    let url = format!("{}/v1/account", args.server);
                    let request = client.get(&url).bearer_auth(wallet.api_key()?);
                    let answer = call(request, &url).await?;
                    if answer.status != 200 {
                        return Err(answer.describe());
                    }
                    let account: AccountResponse = answer.json()?;
                    println!("account:          {}", account.account_id);
                    println!("balance:          {} {}", account.balance, account.currency);
                    println!("stamps purchased: {}", account.stamps_purchased);
                    println!("stamps spent:     {}", account.stamps_spent);
                    println!("stamps in wallet: {}", wallet.stamps.len());
                    Ok(())
                }
            }
        })
    }))
}

pub fn buy(args: ClientArgs, count: u64) -> ExitCode {
    finish(runtime().and_then(|rt| {
        rt.block_on(async {
            let client = reqwest::Client::new();
            let mut wallet = Wallet::load(&args.wallet)?;
            let key = wallet.api_key()?.to_string();
            // One idempotency key per command: a retry after a lost answer cannot charge twice.
            let idempotency_key = uuid::Uuid::new_v4().to_string();
            let url = format!("{}/v1/stamps/purchase", args.server);
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
                    return Err(answer.describe());
                }
                let purchase: PurchaseResponse = answer.json()?;
                let bought = purchase.stamps.len();
                wallet.stamps.extend(purchase.stamps);
                wallet.save(&args.wallet)?;
                println!(
                    "bought {bought} stamp(s) for {}; balance {}; {} stamp(s) in wallet",
                    purchase.total,
                    purchase.balance,
                    wallet.stamps.len()
                );
                return Ok(());
            }
            Err(last_error)
        })
    }))
}

/// Stamps a post and a vote cost. A server that does not say is asked at the base cost of 1
/// each (it refuses a wrong count with `wrong_stamp_count`).
async fn costs(client: &reqwest::Client, server: &str) -> Result<(usize, usize), String> {
    let url = format!("{server}/v1/prices");
    let answer = call(client.get(&url), &url).await?;
    Ok(answer
        .json::<PricesResponse>()
        .map_or((1, 1), |prices| (prices.costs.post, prices.costs.vote)))
}

/// Codes after which the attached stamps can never be spent: drop them from the wallet.
fn stamps_are_dead(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::StampAlreadySpent
            | ErrorCode::StampExpired
            | ErrorCode::InvalidStamp
            | ErrorCode::UnknownKey
            | ErrorCode::BadSignature
    )
}

/// Spends `cost` stamps from the wallet on one request, whose body `body` makes from them.
async fn spend<B: Serialize>(
    args: &ClientArgs,
    wallet: &mut Wallet,
    cost: usize,
    path: String,
    body: impl FnOnce(Vec<String>) -> B,
) -> Result<Answer, String> {
    if wallet.stamps.len() < cost {
        return Err(format!(
            "out of stamps: this costs {cost} stamp(s) and the wallet holds {}; run `pennypost buy N`",
            wallet.stamps.len()
        ));
    }
    let stamps: Vec<String> = wallet.stamps[..cost].to_vec();
    let url = format!("{}{path}", args.server);
    let request = reqwest::Client::new().post(&url).json(&body(stamps));
    let answer = call(request, &url).await?;
    let dead = answer.problem().is_some_and(|p| stamps_are_dead(p.code));
    if answer.status == 201 || dead {
        wallet.stamps.drain(..cost);
        wallet.save(&args.wallet)?;
    }
    if answer.status != 201 {
        return Err(answer.describe());
    }
    Ok(answer)
}

pub fn post(args: ClientArgs, text: String, author: Option<String>) -> ExitCode {
    finish(runtime().and_then(|rt| {
        rt.block_on(async {
            let mut wallet = Wallet::load(&args.wallet)?;
            let (cost, _) = costs(&reqwest::Client::new(), &args.server).await?;
            let author = author.unwrap_or_else(|| "anonymous".into());
            let answer = spend(&args, &mut wallet, cost, "/v1/posts".into(), |stamps| {
                CreatePostRequest {
                    author: Some(author),
                    body: text,
                    stamps,
                }
            })
            .await?;
            let post: Post = answer.json()?;
            println!(
                "posted {} ({} stamp(s) spent, {} left)",
                post.post_id,
                cost,
                wallet.stamps.len()
            );
            Ok(())
        })
    }))
}

pub fn vote(args: ClientArgs, post_id: String, direction: String) -> ExitCode {
    finish(runtime().and_then(|rt| {
        rt.block_on(async {
            let up_or_down = match direction.as_str() {
                "up" => Direction::Up,
                "down" => Direction::Down,
                _ => return Err("direction must be up or down".into()),
            };
            let mut wallet = Wallet::load(&args.wallet)?;
            let (_, cost) = costs(&reqwest::Client::new(), &args.server).await?;
            let answer = spend(
                &args,
                &mut wallet,
                cost,
                format!("/v1/posts/{post_id}/votes"),
                |stamps| VoteRequest {
                    direction: up_or_down,
                    stamps,
                },
            )
            .await?;
            let vote: VoteResponse = answer.json()?;
            println!(
                "voted {direction}; score is now {} ({} stamp(s) left)",
                vote.score,
                wallet.stamps.len()
            );
            Ok(())
        })
    }))
}

pub fn stamps(args: ClientArgs) -> ExitCode {
    finish((|| {
        let wallet = Wallet::load(&args.wallet)?;
        println!(
            "{} stamp(s) in {}",
            wallet.stamps.len(),
            args.wallet.display()
        );
        for text in &wallet.stamps {
            match crate::stamp::decode(text) {
                Ok(d) => println!(
                    "{}  expires {}",
                    d.payload.stamp_id,
                    crate::time::Timestamp::from_unix(d.payload.expires_at).to_rfc3339()
                ),
                Err(e) => println!("(unreadable stamp: {e})"),
            }
        }
        Ok(())
    })())
}
