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
//!
//! This module holds the payers and the plan of votes; `client` creates and funds them over
//! HTTP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use uuid::Uuid;

/// Voting payers in a full run.
pub(super) const VOTERS: usize = 256;
/// Voting payers in `--smoke` mode.
pub(super) const SMOKE_VOTERS: usize = 16;
/// Votes each post gets at least (three up, one down: enough up-voters for a refund under the
/// default policy).
const VOTES_PER_POST_MIN: usize = 4;

/// Which voter votes on which post (see the module documentation).
#[derive(Default)]
pub(super) struct VotePlan {
    /// Posts to vote on, in the order the post workload made them.
    posts: Vec<Uuid>,
    /// Votes per post; at most the number of voters.
    per_post: usize,
    /// Groups of `per_post` voters; post `p` gets its votes from group `p % groups`.
    groups: usize,
}

impl VotePlan {
    /// Spreads `votes` votes over `posts`, `per_post` votes from as many voting payers each
    /// (at least [`VOTES_PER_POST_MIN`], at most `voters`); also gives the stamps each voter
    /// needs, in votes.
    pub(super) fn new(posts: Vec<Uuid>, voters: usize, votes: u64) -> (VotePlan, u64) {
        let voters = voters.max(VOTES_PER_POST_MIN);
        let wanted =
            usize::try_from(votes.div_ceil(posts.len().max(1) as u64)).unwrap_or(usize::MAX);
        let per_post = wanted.clamp(VOTES_PER_POST_MIN, voters);
        let groups = voters / per_post;
        // Post `p` takes one vote from each voter of group `p % groups`.
        let per_voter = votes.div_ceil((groups * per_post) as u64).saturating_add(1);
        let plan = VotePlan {
            posts,
            per_post,
            groups,
        };
        (plan, per_voter)
    }

    /// The voting payers the plan uses.
    pub(super) fn voters(&self) -> usize {
        self.groups * self.per_post
    }

    pub(super) fn per_post(&self) -> usize {
        self.per_post
    }

    pub(super) fn posts(&self) -> usize {
        self.posts.len()
    }
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

    /// The posts the post workload made so far, in order.
    pub(super) fn posts(&self) -> Vec<Uuid> {
        self.posts.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Replaces the post payers with `stamps`, one element per payer.
    pub(super) fn set_posters(&self, stamps: Vec<Vec<String>>) {
        if let Ok(mut posters) = self.posters.lock() {
            *posters = stamps;
        }
    }

    /// Replaces the voting payers with `stamps` (one element per voter, as many as
    /// `plan.voters()`) and the plan they vote by, from the first vote again.
    pub(super) fn set_voters(&self, stamps: Vec<Vec<String>>, plan: VotePlan) {
        if let Ok(mut slot) = self.voters.lock() {
            *slot = stamps;
        }
        if let Ok(mut slot) = self.plan.lock() {
            *slot = plan;
        }
        self.next_vote.store(0, Ordering::Relaxed);
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
