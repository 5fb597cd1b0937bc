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
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

/// An HTTP answer: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    fn describe(&self) -> String {
        format!(
            "{} ({}): {}",
            self.code(),
            self.status,
            self.body["detail"].as_str().unwrap_or("no detail")
        )
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Answer, String> {
    let mut request = client.request(method, &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
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
                    let body = name.map(|n| json!({ "name": n })).unwrap_or(json!({}));
                    let answer = call(
                        &client,
                        reqwest::Method::POST,
                        format!("{}/v1/accounts", args.server),
                        None,
                        Some(body),
                    )
                    .await?;
                    if answer.status != 201 {
                        return Err(answer.describe());
                    }
                    let id = answer.body["account_id"].as_str().unwrap_or("").to_string();
                    wallet.server = Some(args.server.clone());
                    wallet.account_id = Some(id.clone());
                    wallet.api_key = answer.body["api_key"].as_str().map(str::to_string);
                    wallet.save(&args.wallet)?;
                    println!(
                        "account {id} created; API key saved in {}",
                        args.wallet.display()
                    );
                    println!("ask the operator to credit account {id} before buying stamps");
                    Ok(())
                }
                AccountCommand::Show => {
                    let answer = call(
                        &client,
                        reqwest::Method::GET,
                        format!("{}/v1/account", args.server),
                        Some(wallet.api_key()?),
                        None,
                    )
                    .await?;
                    if answer.status != 200 {
                        return Err(answer.describe());
                    }
                    let b = &answer.body;
                    println!(
                        "account:          {}",
                        b["account_id"].as_str().unwrap_or("")
                    );
                    println!(
                        "balance:          {} {}",
                        b["balance"],
                        b["currency"].as_str().unwrap_or("")
                    );
                    println!("stamps purchased: {}", b["stamps_purchased"]);
                    println!("stamps spent:     {}", b["stamps_spent"]);
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
                let response = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("Idempotency-Key", &idempotency_key)
                    .json(&json!({ "count": count }))
                    .send()
                    .await;
                let response = match response {
                    Ok(r) => r,
                    Err(e) => {
                        last_error = format!("cannot reach {url}: {e}");
                        continue;
                    }
                };
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let answer = Answer { status, body };
                if status != 201 {
                    return Err(answer.describe());
                }
                let stamps: Vec<String> = answer.body["stamps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect();
                let bought = stamps.len();
                wallet.stamps.extend(stamps);
                wallet.save(&args.wallet)?;
                println!(
                    "bought {bought} stamp(s) for {}; balance {}; {} stamp(s) in wallet",
                    answer.body["total"],
                    answer.body["balance"],
                    wallet.stamps.len()
                );
                return Ok(());
            }
            Err(last_error)
        })
    }))
}

async fn costs(client: &reqwest::Client, server: &str) -> Result<(usize, usize), String> {
    let answer = call(
        client,
        reqwest::Method::GET,
        format!("{server}/v1/prices"),
        None,
        None,
    )
    .await?;
    let post = answer.body["costs"]["post"].as_u64().unwrap_or(1) as usize;
    let vote = answer.body["costs"]["vote"].as_u64().unwrap_or(1) as usize;
    Ok((post, vote))
}

/// Codes after which the attached stamps can never be spent: drop them from the wallet.
fn stamps_are_dead(code: &str) -> bool {
    matches!(
        code,
        "stamp_already_spent" | "stamp_expired" | "invalid_stamp" | "unknown_key" | "bad_signature"
    )
}

/// Spends `cost` stamps from the wallet on one request.
async fn spend(
    args: &ClientArgs,
    wallet: &mut Wallet,
    cost: usize,
    path: String,
    mut body: Value,
) -> Result<Answer, String> {
    if wallet.stamps.len() < cost {
        return Err(format!(
            "out of stamps: this costs {cost} stamp(s) and the wallet holds {}; run `pennypost buy N`",
            wallet.stamps.len()
        ));
    }
    let stamps: Vec<String> = wallet.stamps[..cost].to_vec();
    body["stamps"] = json!(stamps);
    let client = reqwest::Client::new();
    let answer = call(
        &client,
        reqwest::Method::POST,
        format!("{}{path}", args.server),
        None,
        Some(body),
    )
    .await?;
    if answer.status == 201 || stamps_are_dead(answer.code()) {
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
            let answer = spend(
                &args,
                &mut wallet,
                cost,
                "/v1/posts".into(),
                json!({ "author": author, "body": text }),
            )
            .await?;
            println!(
                "posted {} ({} stamp(s) spent, {} left)",
                answer.body["post_id"].as_str().unwrap_or(""),
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
            if direction != "up" && direction != "down" {
                return Err("direction must be up or down".into());
            }
            let mut wallet = Wallet::load(&args.wallet)?;
            let (_, cost) = costs(&reqwest::Client::new(), &args.server).await?;
            let answer = spend(
                &args,
                &mut wallet,
                cost,
                format!("/v1/posts/{post_id}/votes"),
                json!({ "direction": direction }),
            )
            .await?;
            println!(
                "voted {direction}; score is now {} ({} stamp(s) left)",
                answer.body["score"],
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
