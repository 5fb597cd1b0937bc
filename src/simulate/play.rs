//! Playing a plan through the real rules: one [`MemoryStore`], every action a batch of
//! [`Command`]s given to [`rules::apply`] at its simulated time, every price read from
//! [`rules::quote`] and checked against what the store charged.
//!
//! An actor pays exactly the quoted price: it buys that many stamps and spends them in one
//! batch (a credit first when its balance is short, topped up by at least a hundred stamps'
//! worth as a wallet is; then the purchase and the spend), so it never holds stamps between
//! actions, and what it paid is what was credited less the balance left. The only check the simulation
//! makes itself is the one the server makes before the store sees a post or a vote: a request
//! carries at most `stamps_per_request_max` stamps (`config::Limits`), so a price above it
//! cannot be paid at all.
//!
//! At the end the ledger is audited by the same checker `GET /v1/audit` runs, over the store's
//! own entries, and its Merkle root is compared with the store's stored hashes.

use uuid::Uuid;

use super::plan::{Act, Actor, Plan, PostKind};
use super::SimulateError;
use crate::config::{Economy, Limits};
use crate::domain::{CreditSource, StampRef};
use crate::keys::{public_key_text, KeyStatus};
use crate::ledger::check::LedgerChecker;
use crate::rules::price::Policy;
use crate::rules::{self, Command, Outcome, QuoteAction, Settings, SpendFor};
use crate::stamp::Kid;
use crate::store::{MemoryStore, Reads as _};
use crate::time::Timestamp;

/// When every run starts: 2025-01-01T00:00:00Z. Simulated: the wall clock is never read.
pub const START: i64 = 1_735_689_600;

/// An actor whose balance is short is credited at least this many stamps' worth.
const TOP_UP_STAMPS: u64 = 100;

/// Entries read from the store per call while auditing.
const AUDIT_PAGE: u64 = 10_000;

/// What one honest member paid over the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberCost {
    pub posts: u64,
    pub votes: u64,
    /// Stamps spent.
    pub stamps: u64,
    /// Minor units that left the member for good: credited minus the balance left (refunds
    /// went back to the balance).
    pub money: u64,
    /// Minor units refunded.
    pub refunds: u64,
}

/// One attempt of a flood burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Posted, paying this many stamps.
    Paid(u64),
    /// Not postable: quoted above what a request may carry.
    Unpayable { quoted: u64 },
}

/// One vote-buying campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaign {
    /// Votes the buyer meant to buy.
    pub target: u64,
    /// Stamps paid in all after each vote bought (`paid[n - 1]` for n votes).
    pub paid: Vec<u64>,
    /// The quote that stopped the campaign (above what a request may carry), if one did.
    pub stopped_by: Option<u64>,
}

/// A post as the board shows it at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardPost {
    pub kind: PostKind,
    pub votes_up: u64,
    pub votes_down: u64,
    /// Distinct payers of its votes.
    pub voters: u64,
    pub refunded: bool,
}

/// The store's own audit at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    pub entries: u64,
    /// Entries the accepted commands should have written: one per key, policy, credit,
    /// purchase and spend, and one per refund a vote completed.
    pub expected_entries: u64,
    /// Credits the actors received (top-ups), one entry each.
    pub credits: u64,
    pub ok: bool,
    pub violations_total: u64,
    /// Whether the checker's Merkle root is the root of the hashes the store keeps.
    pub root_matches: bool,
    pub stamps_issued: u64,
    pub stamps_spent: u64,
    pub credits_total: u64,
    pub refunds_total: u64,
}

/// Everything one run under one policy produced.
#[derive(Clone, Debug)]
pub struct Run {
    pub policy: Policy,
    pub members: Vec<MemberCost>,
    /// Per flood burst, per attempt.
    pub bursts: Vec<Vec<Attempt>>,
    pub campaigns: Vec<Campaign>,
    /// Every post written, in plan order.
    pub board: Vec<BoardPost>,
    pub audit: Audit,
}

/// The simulation's world: the store, the accounts of the actors and the ids handed out.
struct World<'p> {
    plan: &'p Plan,
    store: MemoryStore,
    settings: Settings,
    stamp_price: u64,
    stamps_per_request_max: u64,
    purchase_count_max: usize,
    kid: Kid,
    stamp_ttl_secs: u64,
    next_id: u128,
    /// Minor units credited so far, per actor.
    credited: Vec<u64>,
    credits: u64,
    expected_entries: u64,
}

fn account_id(actor: usize) -> Uuid {
    Uuid::from_u128(0xacc0_u128 << 64 | actor as u128)
}

fn post_id(post: usize) -> Uuid {
    Uuid::from_u128(0x9057_u128 << 64 | post as u128)
}

impl World<'_> {
    /// The actor's index among the accounts: members first, then the others.
    fn index(&self, actor: Actor) -> usize {
        let members = self.plan.members;
        match actor {
            Actor::Member(i) => i,
            Actor::Flooder => members,
            Actor::Buyer => members + 1,
            Actor::Promoter => members + 2,
        }
    }

    fn name(&self, actor: Actor) -> String {
        match actor {
            Actor::Member(i) => format!("member {}", i + 1),
            Actor::Flooder => "flooder".into(),
            Actor::Buyer => "vote buyer".into(),
            Actor::Promoter => "promoter".into(),
        }
    }

    /// A fresh id in namespace `tag`: ids are counters, so the same plan writes the same bytes.
    fn new_id(&mut self, tag: u128) -> Uuid {
        self.next_id += 1;
        Uuid::from_u128(tag << 64 | self.next_id)
    }

    /// The issuer key, the policy and every account, in one batch at the start.
    fn open(&mut self, policy: &Policy) -> Result<(), SimulateError> {
        let key = ed25519_dalek::SigningKey::from_bytes(&[0x51; 32]).verifying_key();
        let mut batch = vec![
            Command::KeyEvent {
                kid: self.kid,
                public_key: public_key_text(&key),
                status: KeyStatus::Active,
            },
            Command::Policy {
                policy: policy.clone(),
            },
        ];
        let actors = self.plan.members + 3;
        let all = (0..self.plan.members).map(Actor::Member).chain([
            Actor::Flooder,
            Actor::Buyer,
            Actor::Promoter,
        ]);
        for actor in all {
            let index = self.index(actor);
            let mut api_key_sha256 = [0x5a; 32];
            api_key_sha256[..8].copy_from_slice(&(index as u64).to_le_bytes());
            batch.push(Command::CreateAccount {
                account_id: account_id(index),
                name: Some(self.name(actor)),
                api_key_sha256,
            });
        }
        self.apply(&batch, Timestamp::from_unix(START))?;
        self.credited = vec![0; actors];
        self.expected_entries += 2;
        Ok(())
    }

    fn apply(&self, batch: &[Command], time: Timestamp) -> Result<Vec<Outcome>, SimulateError> {
        let results = rules::apply(&self.store, &self.settings, batch, time)?;
        results
            .into_iter()
            .zip(batch)
            .map(|(result, command)| {
                // Every command was built to be accepted: a refusal means the simulation and
                // the rules disagree, and no figure after it could be trusted.
                result.map_err(|refusal| {
                    SimulateError::Refused(format!("{command:?} was refused: {refusal}"))
                })
            })
            .collect()
    }

    /// What `action` costs `actor` now, from the store.
    fn quote(
        &self,
        actor: usize,
        action: QuoteAction,
        time: Timestamp,
    ) -> Result<u64, SimulateError> {
        rules::quote(&self.store, account_id(actor), action, time)?
            .map_err(|refusal| SimulateError::Refused(format!("quote {action:?}: {refusal}")))
    }

    /// Pays `price` stamps for `spend_for` in one batch: a top-up when the balance lacks what
    /// they cost, the purchase of exactly `price` stamps, and their spend.
    fn pay(
        &mut self,
        actor: usize,
        price: u64,
        spend_for: SpendFor,
        time: Timestamp,
    ) -> Result<(), SimulateError> {
        let account_id = account_id(actor);
        let balance = self
            .store
            .account(account_id)?
            .map(|a| a.balance)
            .ok_or_else(|| SimulateError::Refused(format!("no account {account_id}")))?;
        let cost = price
            .checked_mul(self.stamp_price)
            .ok_or_else(|| SimulateError::Refused(format!("a price of {price} overflows")))?;
        let mut batch = Vec::new();
        if balance < cost {
            // Topped up like a wallet, not per action: fewer credit entries, same cost.
            let amount = (cost - balance).max(TOP_UP_STAMPS.saturating_mul(self.stamp_price));
            let reference = format!("simulate {}", self.new_id(0xc4ed));
            batch.push(Command::Credit {
                account_id,
                amount,
                reference,
                source: CreditSource::Operator,
            });
            self.credited[actor] += amount;
            self.credits += 1;
        }
        let count = usize::try_from(price)
            .map_err(|_| SimulateError::Refused(format!("{price} stamps")))?;
        let stamp_ids: Vec<Uuid> = (0..count).map(|_| self.new_id(0x57a4)).collect();
        for chunk in stamp_ids.chunks(self.purchase_count_max) {
            batch.push(Command::Purchase {
                account_id,
                unit_price: self.stamp_price,
                idempotency_key_sha256: None,
                purchase_id: self.new_id(0x9a1d),
                kid: self.kid,
                issued_at: time,
                expires_at: time.plus_secs(self.stamp_ttl_secs),
                stamp_ids: chunk.to_vec(),
            });
        }
        batch.push(Command::Spend {
            stamps: stamp_ids
                .iter()
                .map(|stamp_id| StampRef {
                    stamp_id: *stamp_id,
                    issued_at: time,
                })
                .collect(),
            spend_for,
        });
        let outcomes = self.apply(&batch, time)?;
        let Some(Outcome::Spent {
            cost,
            refund_ledger_index,
            ..
        }) = outcomes.last()
        else {
            return Err(SimulateError::Refused("a spend spent nothing".into()));
        };
        if *cost != price {
            return Err(SimulateError::Refused(format!(
                "quoted {price} stamps, the store charged {cost}"
            )));
        }
        let refunded = refund_ledger_index.is_some();
        self.expected_entries += batch.len() as u64 + u64::from(refunded);
        Ok(())
    }

    /// Feeds the store's entries to the ledger checker and compares its root with the store's.
    fn audit(&self, end: Timestamp) -> Result<Audit, SimulateError> {
        let size = self.store.ledger_size()?;
        let mut checker = LedgerChecker::new();
        let mut start = 0;
        while start < size {
            let page = self.store.entries(start, AUDIT_PAGE)?;
            if page.is_empty() {
                break;
            }
            start += page.len() as u64;
            page.iter().for_each(|entry| checker.push(entry));
        }
        let report = checker.report(end.unix());
        let stored = tlog_tiles::tree_hash(size, &StoredHashes(&self.store));
        Ok(Audit {
            entries: size,
            expected_entries: self.expected_entries,
            credits: self.credits,
            ok: report.ok && report.ledger_size == size,
            violations_total: report.violations_total,
            root_matches: stored.is_ok_and(|root| root.0 == checker.root().0),
            stamps_issued: report.stamps_issued,
            stamps_spent: report.stamps_spent,
            credits_total: report.credits_total,
            refunds_total: report.refunds_total,
        })
    }
}

/// The store's stored hashes as the Merkle library reads them.
struct StoredHashes<'s>(&'s MemoryStore);

impl tlog_tiles::HashReader for StoredHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        self.0
            .hashes(indexes)
            .map(|hashes| hashes.into_iter().map(tlog_tiles::Hash).collect())
            .map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))
    }
}

/// Plays `plan` under `policy` on a new store.
pub fn play(plan: &Plan, policy: &Policy) -> Result<Run, SimulateError> {
    let limits = Limits::default();
    let economy = Economy::default();
    let mut world = World {
        plan,
        store: MemoryStore::new(),
        settings: Settings {
            currency: policy.currency.clone(),
        },
        stamp_price: policy.stamp_price,
        stamps_per_request_max: limits.stamps_per_request_max as u64,
        purchase_count_max: limits.purchase_count_max as usize,
        kid: Kid::of(&ed25519_dalek::SigningKey::from_bytes(&[0x51; 32]).verifying_key()),
        stamp_ttl_secs: economy.stamp_ttl_secs,
        next_id: 0,
        credited: Vec::new(),
        credits: 0,
        expected_entries: 0,
    };
    world.open(policy)?;
    let mut posted = vec![false; plan.posts.len()];
    let mut counts = vec![(0u64, 0u64); plan.members];
    let mut bursts = vec![Vec::new(); plan.bursts];
    let mut campaigns: Vec<Campaign> = super::plan::CAMPAIGNS
        .iter()
        .map(|target| Campaign {
            target: *target,
            paid: Vec::new(),
            stopped_by: None,
        })
        .collect();
    for event in &plan.events {
        let time = Timestamp::from_unix(START + event.time);
        let actor = world.index(event.actor);
        match event.act {
            Act::Post { post } => {
                let price = world.quote(actor, QuoteAction::Post, time)?;
                let flood = match plan.posts[post].kind {
                    PostKind::Flood { burst, .. } => Some(burst),
                    _ => None,
                };
                if price > world.stamps_per_request_max {
                    match flood {
                        Some(burst) => bursts[burst].push(Attempt::Unpayable { quoted: price }),
                        None => {
                            return Err(SimulateError::Unpayable(format!(
                                "post {post} of {:?} quoted at {price} stamps",
                                event.actor
                            )))
                        }
                    }
                    continue;
                }
                let spend_for = SpendFor::Post {
                    post_id: post_id(post),
                    author: world.name(event.actor),
                    body: format!("post {post}"),
                    verified: false,
                };
                world.pay(actor, price, spend_for, time)?;
                posted[post] = true;
                if let Some(burst) = flood {
                    bursts[burst].push(Attempt::Paid(price));
                }
                if let Actor::Member(m) = event.actor {
                    counts[m].0 += 1;
                }
            }
            Act::Vote { post, up, campaign } => {
                if campaign.is_some_and(|c| campaigns[c].stopped_by.is_some()) || !posted[post] {
                    continue;
                }
                let action = QuoteAction::Vote {
                    post_id: post_id(post),
                };
                let price = world.quote(actor, action, time)?;
                if price > world.stamps_per_request_max {
                    match campaign {
                        Some(c) => campaigns[c].stopped_by = Some(price),
                        None => {
                            return Err(SimulateError::Unpayable(format!(
                                "a vote on post {post} quoted at {price} stamps"
                            )))
                        }
                    }
                    continue;
                }
                let spend_for = SpendFor::Vote {
                    post_id: post_id(post),
                    up,
                };
                world.pay(actor, price, spend_for, time)?;
                if let Some(c) = campaign {
                    let before = campaigns[c].paid.last().copied().unwrap_or(0);
                    campaigns[c].paid.push(before + price);
                }
                if let Actor::Member(m) = event.actor {
                    counts[m].1 += 1;
                }
            }
        }
    }

    let mut members = Vec::with_capacity(plan.members);
    for (member, (posts, votes)) in counts.into_iter().enumerate() {
        let account = world
            .store
            .account(account_id(member))?
            .ok_or_else(|| SimulateError::Refused(format!("member {member} has no account")))?;
        members.push(MemberCost {
            posts,
            votes,
            stamps: account.stamps_spent,
            money: world.credited[member].saturating_sub(account.balance),
            refunds: account.refunds_total,
        });
    }
    let mut board = Vec::new();
    for (post, planned) in plan.posts.iter().enumerate() {
        if !posted[post] {
            continue;
        }
        let shown = world
            .store
            .post(post_id(post))?
            .ok_or_else(|| SimulateError::Refused(format!("post {post} is not on the board")))?;
        board.push(BoardPost {
            kind: planned.kind,
            votes_up: shown.votes_up,
            votes_down: shown.votes_down,
            voters: shown.voters,
            refunded: shown.refunded,
        });
    }
    let end = Timestamp::from_unix(START + plan.days * super::plan::DAY);
    let audit = world.audit(end)?;
    Ok(Run {
        policy: policy.clone(),
        members,
        bursts,
        campaigns,
        board,
        audit,
    })
}
