//! The payers of the post and vote workloads, set up so that every post and vote costs its
//! base price under any policy, and so that the default policy's pricing work (the flood
//! index read of every post, the voter record of every vote, refunds) is part of what is
//! measured, not priced out.
//!
//! - Posts: many payers, each an account created, credited and sold exactly the stamps of one
//!   post in the setup phase (over HTTP, unmeasured). Each payer posts once, so no payer posts
//!   twice within the flood window and every post costs `post_cost` (`post_cost × factor^0`).
//! - Votes: [`VOTERS`] payers with many stamps each. Vote `v` (a shared counter) goes to post
//!   `v / per_post` of those the post workload made, from the post's `v % per_post`-th voter
//!   of a group that changes from post to post, so each (payer, post) pair votes once and every
//!   vote costs `vote_cost` (the first vote's quadratic price). Every fourth vote is down, so
//!   each post gets at least three up-voting payers other than its own and, under the default
//!   policy (`refund_voters` 3), its base postage back: a refund entry per post voted on.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;
use uuid::Uuid;

use super::workloads::{send, Ctx};
use crate::api::{
    CreateAccountRequest, CreateAccountResponse, CreditRequest, PurchaseRequest, PurchaseResponse,
};

/// Voting payers in a full run.
pub(super) const VOTERS: usize = 256;
/// Voting payers in `--smoke` mode.
pub(super) const SMOKE_VOTERS: usize = 16;
/// Votes each post gets at least (three up, one down: enough up-voters for a refund under the
/// default policy).
const VOTES_PER_POST_MIN: usize = 4;
/// Concurrent setup clients.
const SETUP_PARALLEL: usize = 64;
/// The server's largest purchase.
const PURCHASE_MAX: u64 = 1000;

/// Which voter votes on which post (see the module documentation).
#[derive(Default)]
struct VotePlan {
    /// Posts to vote on, in the order the post workload made them.
    posts: Vec<Uuid>,
    /// Votes per post; at most the number of voters.
    per_post: usize,
    /// Groups of `per_post` voters; post `p` gets its votes from group `p % groups`.
    groups: usize,
}

/// One vote to send.
pub(super) struct Ticket {
    pub(super) post_id: Uuid,
    pub(super) up: bool,
    pub(super) stamps: Vec<String>,
}

/// The payers' stamps and the posts made, shared by the client tasks of one server.
#[derive(Default)]
pub(super) struct Payers {
    /// One element per post payer not used yet: the stamps of its one post.
    posters: Mutex<Vec<Vec<String>>>,
    /// Each voting payer's unspent stamps.
    voters: Mutex<Vec<Vec<String>>>,
    plan: Mutex<VotePlan>,
    next_vote: AtomicU64,
    /// Posts the post workload made.
    posts: Mutex<Vec<Uuid>>,
}

impl Payers {
    /// The stamps of the next unused post payer; `None` when every payer has posted.
    pub(super) fn poster(&self) -> Option<Vec<String>> {
        self.posters.lock().ok()?.pop()
    }

    pub(super) fn add_post(&self, post_id: Uuid) {
        if let Ok(mut posts) = self.posts.lock() {
            posts.push(post_id);
        }
    }

    pub(super) fn posts_made(&self) -> usize {
        self.posts.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// The next vote: its post, direction and `vote_cost` stamps of its voter. `Ok(None)` when
    /// the posts or the voter's stamps are used up; an error when there is no post at all.
    pub(super) fn next_vote(&self, vote_cost: usize) -> Result<Option<Ticket>, String> {
        let v = self.next_vote.fetch_add(1, Ordering::Relaxed);
        let (post_id, voter, slot) = {
            let plan = self.plan.lock().map_err(|_| "vote plan poisoned")?;
            if plan.posts.is_empty() || plan.per_post == 0 || plan.groups == 0 {
                return Err("no post to vote on (the post workload made none)".into());
            }
            let per_post = plan.per_post as u64;
            let p = v / per_post;
            let Some(post_id) = usize::try_from(p).ok().and_then(|p| plan.posts.get(p)) else {
                return Ok(None);
            };
            let slot = (v % per_post) as usize;
            let group = (p % plan.groups as u64) as usize;
            (*post_id, group * plan.per_post + slot, slot)
        };
        let mut voters = self.voters.lock().map_err(|_| "voters poisoned")?;
        let Some(pool) = voters.get_mut(voter) else {
            return Ok(None);
        };
        if pool.len() < vote_cost {
            return Ok(None);
        }
        let at = pool.len() - vote_cost;
        Ok(Some(Ticket {
            post_id,
            up: slot % 4 != 3,
            stamps: pool.split_off(at),
        }))
    }
}

/// Sets up `count` post payers, each holding the `post_cost` stamps of one post, replacing any
/// left from before.
pub(super) async fn provision_posters(ctx: &Arc<Ctx>, count: usize) -> Result<(), String> {
    let started = std::time::Instant::now();
    let stamps = provision(ctx, count, ctx.post_cost as u64).await?;
    if let Ok(mut posters) = ctx.payers.posters.lock() {
        *posters = stamps;
    }
    eprintln!(
        "bench: set up {count} post payers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Spreads `votes` votes over the posts made so far, `per_post` votes from as many voting
/// payers each (at least [`VOTES_PER_POST_MIN`], at most `voters`), and sets up those payers
/// with the stamps of their share.
pub(super) async fn provision_voters(
    ctx: &Arc<Ctx>,
    voters: usize,
    votes: u64,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let voters = voters.max(VOTES_PER_POST_MIN);
    let posts = ctx
        .payers
        .posts
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    let wanted = usize::try_from(votes.div_ceil(posts.len().max(1) as u64)).unwrap_or(usize::MAX);
    let per_post = wanted.clamp(VOTES_PER_POST_MIN, voters);
    let groups = voters / per_post;
    let used = groups * per_post;
    // Post `p` takes one vote from each voter of group `p % groups`.
    let per_voter = votes.div_ceil(used as u64).saturating_add(1);
    let stamps = provision(ctx, used, per_voter.saturating_mul(ctx.vote_cost as u64)).await?;
    let plan = VotePlan {
        posts,
        per_post,
        groups,
    };
    eprintln!(
        "bench: set up {used} voting payers in {:.1} s ({per_post} votes per post, on up to {} posts)",
        started.elapsed().as_secs_f64(),
        plan.posts.len()
    );
    if let Ok(mut slot) = ctx.payers.voters.lock() {
        *slot = stamps;
    }
    if let Ok(mut slot) = ctx.payers.plan.lock() {
        *slot = plan;
    }
    ctx.payers.next_vote.store(0, Ordering::Relaxed);
    Ok(())
}

/// Creates `count` accounts in parallel, credits each with the price of `stamps_each` stamps
/// and buys them; returns each account's stamps.
async fn provision(
    ctx: &Arc<Ctx>,
    count: usize,
    stamps_each: u64,
) -> Result<Vec<Vec<String>>, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..SETUP_PARALLEL.min(count) {
        let ctx = ctx.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut made = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                made.push(new_payer(&ctx, stamps_each).await?);
            }
            Ok::<_, String>(made)
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.map_err(|e| format!("setup task failed: {e}"))??);
    }
    Ok(all)
}

/// One payer: an unnamed account, credited with exactly the price of `stamps` stamps, which
/// it then buys.
async fn new_payer(ctx: &Ctx, stamps: u64) -> Result<Vec<String>, String> {
    let body = send(
        ctx.client
            .post(format!("{}/v1/accounts", ctx.base))
            .json(&CreateAccountRequest { name: None }),
    )
    .await
    .map_err(|e| format!("POST /v1/accounts: {e}"))?;
    let created: CreateAccountResponse =
        serde_json::from_slice(&body).map_err(|e| format!("POST /v1/accounts: {e}"))?;
    let amount = stamps.saturating_mul(ctx.stamp_price).max(1);
    send(
        ctx.client
            .post(format!(
                "{}/v1/admin/accounts/{}/credit",
                ctx.base, created.account_id
            ))
            .bearer_auth(&ctx.admin_token)
            .json(&CreditRequest {
                amount,
                reference: format!("bench-payer-{}", created.account_id),
            }),
    )
    .await
    .map_err(|e| format!("credit: {e}"))?;
    let mut bought = Vec::with_capacity(usize::try_from(stamps).unwrap_or(0));
    let mut left = stamps;
    while left > 0 {
        let count = left.min(PURCHASE_MAX);
        let body = send(
            ctx.client
                .post(format!("{}/v1/stamps/purchase", ctx.base))
                .bearer_auth(&created.api_key)
                .json(&PurchaseRequest { count }),
        )
        .await
        .map_err(|e| format!("purchase: {e}"))?;
        let purchased: PurchaseResponse =
            serde_json::from_slice(&body).map_err(|e| format!("purchase answer: {e}"))?;
        bought.extend(purchased.stamps);
        left -= count;
    }
    Ok(bought)
}
