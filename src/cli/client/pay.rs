//! Paying for a post or a vote from the wallet: ask `POST /v1/quote` what it costs, say it in
//! words, buy the stamps that are missing once the member agrees, then send exactly that many.
//! When the price moved in between (`wrong_stamp_count`), quote once more at the server's
//! `required` price and ask again.
//!
//! Agreement is needed before money is spent (a purchase) and before an action costs more than
//! its base cost. `--yes` agrees in advance; without it, a terminal is asked, and without a
//! terminal the command refuses rather than wait for an answer that cannot come.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use uuid::Uuid;

use super::http::{call, Answer};
use super::target::Target;
use super::wallet::Wallet;
use super::{buy_into, ClientArgs};
use crate::api::{ErrorCode, PricesResponse, QuoteAction, QuoteRequest, QuoteResponse};
use crate::config::Limits;

use super::price;

/// What is being paid for.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    Post,
    Vote(Uuid),
}

impl Action {
    fn noun(self) -> &'static str {
        match self {
            Action::Post => "post",
            Action::Vote(_) => "vote",
        }
    }
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

/// A payment in progress: the wallet it spends from and what the member agreed to.
pub struct Payment {
    pub target: Target,
    pub client: reqwest::Client,
    pub wallet: Wallet,
    pub prices: PricesResponse,
    /// `--yes`: agree to every price and purchase without asking.
    pub yes: bool,
}

/// What a paid request left: the server's answer (201) and the stamps it cost.
pub struct Paid {
    pub answer: Answer,
    pub cost: u64,
}

impl Payment {
    /// Reads the wallet and the prices.
    pub async fn start(args: &ClientArgs, yes: bool) -> Result<Payment, String> {
        let client = reqwest::Client::new();
        let wallet = Wallet::load(&args.wallet)?;
        let target = Target::new(args, &wallet);
        let url = format!("{}/v1/prices", target.server);
        let answer = call(client.get(&url), &url).await?;
        if answer.status != 200 {
            return Err(answer.describe());
        }
        let prices = answer.json()?;
        Ok(Payment {
            target,
            client,
            wallet,
            prices,
            yes,
        })
    }

    /// What `action` costs now: asked with the wallet's API key, or, in a wallet without an
    /// account, for the buyer of its first stamp.
    async fn quote(&self, action: Action) -> Result<u64, String> {
        let (action_kind, post_id) = match action {
            Action::Post => (QuoteAction::Post, None),
            Action::Vote(id) => (QuoteAction::Vote, Some(id)),
        };
        let mut request = QuoteRequest {
            action: action_kind,
            post_id,
            stamp: None,
        };
        let url = format!("{}/v1/quote", self.target.server);
        let mut builder = self.client.post(&url);
        match (&self.wallet.api_key, self.wallet.stamps.first()) {
            (Some(key), _) => builder = builder.bearer_auth(key),
            (None, Some(stamp)) => request.stamp = Some(stamp.clone()),
            (None, None) => {
                return Err(format!(
                    "out of stamps: a {} costs at least {} and the wallet holds none; run \
                     `pennypost account create`, have it credited, then `pennypost buy N`",
                    action.noun(),
                    price::stamps(self.base(action))
                ))
            }
        }
        let answer = call(builder.json(&request), &url).await?;
        if answer.status != 200 {
            return Err(format!(
                "cannot get the price of this {}: {}",
                action.noun(),
                self.target.describe(&answer)
            ));
        }
        Ok(answer.json::<QuoteResponse>()?.stamps)
    }

    fn base(&self, action: Action) -> u64 {
        let base = match action {
            Action::Post => self.prices.costs.post,
            Action::Vote(_) => self.prices.costs.vote,
        };
        u64::try_from(base).unwrap_or(u64::MAX)
    }

    fn words(&self, action: Action, cost: u64) -> String {
        match action {
            Action::Post => price::post(&self.prices.policy, cost),
            Action::Vote(_) => price::vote(&self.prices.policy, cost),
        }
    }

    /// Asks `question` (it has to be agreed to before going on). `Ok` when agreed. Without
    /// `--yes` and without a terminal, refuses: `what` says what needs agreeing to, and why.
    fn agree(&self, question: &str, what: &str) -> Result<(), String> {
        if self.yes {
            return Ok(());
        }
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(format!(
                "{what}; there is no terminal to ask on, so run the command again with --yes \
                 to agree (nothing was bought or spent)"
            ));
        }
        eprint!("{question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        match line.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(()),
            _ => Err("not agreed: nothing was bought or spent".into()),
        }
    }

    /// Pays for `action`: quotes, says the price, buys what is missing once agreed, and sends
    /// `request(stamps)` with exactly the price in stamps from the wallet. `verb` names the
    /// action in a question ("post", "vote up").
    pub async fn pay(
        &mut self,
        action: Action,
        verb: &str,
        request: impl Fn(&reqwest::Client, Vec<String>) -> (reqwest::RequestBuilder, String),
    ) -> Result<Paid, String> {
        let max = u64::try_from(Limits::default().stamps_per_request_max).unwrap_or(u64::MAX);
        let base = self.base(action);
        let mut cost = self.quote(action).await?;
        let mut changed: Option<u64> = None;
        for attempt in 0..2 {
            if let Some(old) = changed {
                println!(
                    "the price changed before the {} went out: the server asks {}, not \
                     {old}; no stamp was spent",
                    action.noun(),
                    price::stamps(cost)
                );
            }
            let words = self.words(action, cost);
            if cost > max {
                return Err(format!(
                    "{words}, more than one request can carry ({max}); {}",
                    match action {
                        Action::Post => format!(
                            "wait until {} have passed since your recent posts",
                            price::duration(self.prices.policy.repeat_window_secs)
                        ),
                        Action::Vote(_) => "it cannot be paid".to_string(),
                    }
                ));
            }
            println!("{words}");
            let have = u64::try_from(self.wallet.stamps.len()).unwrap_or(u64::MAX);
            let missing = cost.saturating_sub(have);
            if missing > 0 {
                if self.wallet.api_key.is_none() {
                    return Err(format!(
                        "out of stamps: the wallet holds {} and no account to buy more with; \
                         run `pennypost account create` first",
                        price::stamps(have)
                    ));
                }
                let currency = &self.prices.currency;
                let total = price::money(missing.saturating_mul(self.prices.stamp_price), currency);
                let (holds, more) = if have == 0 {
                    ("no stamps".to_string(), price::stamps(missing))
                } else {
                    (price::stamps(have), format!("{missing} more"))
                };
                self.agree(
                    &format!("The wallet holds {holds}: buy {more} for {total} and {verb}?"),
                    &format!(
                        "out of stamps: the wallet holds {have} of the {} this {} costs, and \
                         buying {missing} for {total} needs your agreement",
                        price::stamps(cost),
                        action.noun()
                    ),
                )?;
                let purchase =
                    buy_into(&self.target, &self.client, &mut self.wallet, missing).await?;
                println!(
                    "bought {} for {}; balance {}",
                    price::stamps(u64::from(purchase.count)),
                    price::money(purchase.total, currency),
                    price::money(purchase.balance, currency)
                );
            } else if cost > base || changed.is_some() {
                self.agree(
                    &format!(
                        "That is more than the usual {}. Spend {} to {verb}?",
                        price::stamps(base),
                        price::stamps(cost)
                    ),
                    &format!(
                        "this {} costs {}, more than the usual {}, which needs your agreement",
                        action.noun(),
                        price::stamps(cost),
                        price::stamps(base)
                    ),
                )?;
            }

            let count = usize::try_from(cost).map_err(|e| e.to_string())?;
            let stamps = self.wallet.stamps[..count].to_vec();
            let (builder, url) = request(&self.client, stamps);
            let answer = call(builder, &url).await?;
            let problem = answer.problem();
            let dead = problem.as_ref().is_some_and(|p| stamps_are_dead(p.code));
            if answer.status == 201 || dead {
                self.wallet.stamps.drain(..count);
                self.wallet.save(&self.target.wallet)?;
            }
            if answer.status == 201 {
                return Ok(Paid { answer, cost });
            }
            match problem {
                Some(p) if p.code == ErrorCode::WrongStampCount && attempt == 0 => {
                    let Some(required) = p.required else {
                        return Err(answer.describe());
                    };
                    changed = Some(cost);
                    cost = required;
                }
                Some(p) if p.code == ErrorCode::MixedPayers => {
                    return Err(format!(
                        "{}: the wallet's stamps were bought by more than one account, and \
                         one {} is paid by one account; nothing was spent",
                        answer.describe(),
                        action.noun()
                    ))
                }
                _ => return Err(self.target.describe(&answer)),
            }
        }
        Err(format!(
            "the price of this {} kept changing; nothing was spent: try again",
            action.noun()
        ))
    }
}
