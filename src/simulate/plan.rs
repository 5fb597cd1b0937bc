//! The community's behaviour: who posts and votes when, and on what, drawn from the seed
//! before anything is played.
//!
//! The plan is made once and played under each policy, so the two runs differ only in what
//! the rules charge: nobody's intentions depend on a price. What the rules refuse (a flood
//! post or a bought vote the server cannot take) is decided when the plan is played.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Config;

pub const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// An honest member's posts per day, on average (members vary between half and one and a half
/// times this).
pub const POSTS_PER_DAY: f64 = 3.0;
/// An honest member's votes per day, on average (varied like the posts).
pub const VOTES_PER_DAY: f64 = 6.0;
/// Members are awake from 07:00 to 23:00 and act only then.
const WAKE: i64 = 7 * HOUR;
const SLEEP: i64 = 23 * HOUR;
/// Members vote on posts of the last two days: older ones have scrolled away.
const VOTE_HORIZON: i64 = 2 * DAY;

/// The flooder's bursts per day, each of [`BURST_POSTS`] posts, one every
/// [`BURST_SPACING`] seconds: all of a burst's posts fall within ten minutes.
pub const BURSTS_PER_DAY: i64 = 4;
pub const BURST_POSTS: usize = 20;
const BURST_SPACING: i64 = 30;

/// The up-votes the vote buyer pays for, one campaign each, on one post per campaign.
pub const CAMPAIGNS: [u64; 3] = [10, 100, 1_000];
/// Seconds between two votes of the buyer's army.
const ARMY_SPACING: i64 = 10;

/// Who acts. Honest members are numbered from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Actor {
    Member(usize),
    /// Posts as fast as it can, in bursts.
    Flooder,
    /// Pays for every vote of an army on the promoted posts.
    Buyer,
    /// Writes the posts the buyer promotes.
    Promoter,
}

/// What a planned post is, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostKind {
    Honest,
    /// Attempt `attempt` (0-based) of flood burst `burst`.
    Flood {
        burst: usize,
        attempt: usize,
    },
    /// The post of campaign `campaign`.
    Promoted {
        campaign: usize,
    },
}

#[derive(Clone, Debug)]
pub struct PlannedPost {
    pub author: Actor,
    pub kind: PostKind,
    /// How good readers find it, 0 to 1: good posts are seen, and up-voted, more.
    pub quality: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Writes post `post` (an index into [`Plan::posts`]).
    Post { post: usize },
    /// Votes on post `post`; `campaign` when the buyer pays for it.
    Vote {
        post: usize,
        up: bool,
        campaign: Option<usize>,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// Seconds from the start of the run.
    pub time: i64,
    pub actor: Actor,
    pub act: Act,
}

/// Everything that will be attempted, in time order.
#[derive(Clone, Debug)]
pub struct Plan {
    pub members: usize,
    pub days: i64,
    pub posts: Vec<PlannedPost>,
    pub events: Vec<Event>,
    pub bursts: usize,
}

/// A uniform draw in `[0, 1)`: the top 53 bits of the generator's next word.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The waking-time arrivals of a Poisson process of `per_day` events a day over `days` days,
/// as seconds from the start: exponential gaps measured in waking seconds only.
fn arrivals(rng: &mut ChaCha8Rng, per_day: f64, days: i64) -> Vec<i64> {
    let awake = (SLEEP - WAKE) as f64;
    let rate = per_day / awake;
    let mut times = Vec::new();
    let mut waking = 0.0f64;
    let total = awake * days as f64;
    loop {
        waking += -(1.0 - uniform(rng)).ln() / rate;
        if waking >= total {
            return times;
        }
        let day = (waking / awake).floor();
        let into_day = waking - day * awake;
        times.push(day as i64 * DAY + WAKE + into_day as i64);
    }
}

/// Draws the plan of `config`'s community from its seed.
pub fn plan(config: &Config) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let days = config.days.max(1);
    let mut posts = Vec::new();
    let mut events = Vec::new();

    // Honest posts first, all members, so that votes can pick among them.
    let mut activity = Vec::with_capacity(config.members);
    let mut honest: Vec<(i64, usize)> = Vec::new();
    for member in 0..config.members {
        let pace = 0.5 + uniform(&mut rng);
        activity.push(pace);
        for time in arrivals(&mut rng, POSTS_PER_DAY * pace, days) {
            honest.push((time, member));
        }
    }
    honest.sort();
    let mut honest_posts: Vec<(i64, usize, usize)> = Vec::with_capacity(honest.len());
    for (time, member) in honest {
        let post = posts.len();
        posts.push(PlannedPost {
            author: Actor::Member(member),
            kind: PostKind::Honest,
            quality: uniform(&mut rng),
        });
        honest_posts.push((time, member, post));
        events.push(Event {
            time,
            actor: Actor::Member(member),
            act: Act::Post { post },
        });
    }

    // Honest votes: each on a recent post of someone else not voted on before, picked with
    // weight quality² (good posts travel), up with probability quality.
    let mut votes: Vec<(i64, usize)> = Vec::new();
    for (member, pace) in activity.iter().enumerate() {
        for time in arrivals(&mut rng, VOTES_PER_DAY * pace, days) {
            votes.push((time, member));
        }
    }
    votes.sort();
    let mut voted: std::collections::BTreeSet<(usize, usize)> = Default::default();
    for (time, member) in votes {
        let from = honest_posts.partition_point(|(t, _, _)| *t < time - VOTE_HORIZON);
        let to = honest_posts.partition_point(|(t, _, _)| *t < time);
        let candidates: Vec<(usize, f64)> = honest_posts[from..to]
            .iter()
            .filter(|(_, author, post)| *author != member && !voted.contains(&(member, *post)))
            .map(|(_, _, post)| (*post, posts[*post].quality.powi(2)))
            .collect();
        let total: f64 = candidates.iter().map(|(_, w)| w).sum();
        if candidates.is_empty() || total <= 0.0 {
            continue;
        }
        let mut pick = uniform(&mut rng) * total;
        let mut chosen = candidates[candidates.len() - 1].0;
        for (post, weight) in &candidates {
            if pick < *weight {
                chosen = *post;
                break;
            }
            pick -= weight;
        }
        voted.insert((member, chosen));
        let up = uniform(&mut rng) < posts[chosen].quality;
        events.push(Event {
            time,
            actor: Actor::Member(member),
            act: Act::Vote {
                post: chosen,
                up,
                campaign: None,
            },
        });
    }

    // The flooder: bursts spread over the day (hours apart, so each starts a fresh window).
    let mut bursts = 0;
    for day in 0..days {
        for slot in 0..BURSTS_PER_DAY {
            let jitter = (uniform(&mut rng) * HOUR as f64) as i64;
            let start = day * DAY + WAKE + slot * 4 * HOUR + jitter;
            for attempt in 0..BURST_POSTS {
                let post = posts.len();
                posts.push(PlannedPost {
                    author: Actor::Flooder,
                    kind: PostKind::Flood {
                        burst: bursts,
                        attempt,
                    },
                    quality: 0.0,
                });
                events.push(Event {
                    time: start + attempt as i64 * BURST_SPACING,
                    actor: Actor::Flooder,
                    act: Act::Post { post },
                });
            }
            bursts += 1;
        }
    }

    // The vote buyer: one campaign a sixth, a half and five sixths of the way through (the
    // last one's 1,000 votes take under three hours, and a sixth of a day is four), each on a
    // post of its promoter, its army voting every ARMY_SPACING seconds.
    for (campaign, votes) in CAMPAIGNS.iter().enumerate() {
        let start = days * DAY * (1 + 2 * campaign as i64) / 6;
        let post = posts.len();
        posts.push(PlannedPost {
            author: Actor::Promoter,
            kind: PostKind::Promoted { campaign },
            quality: 0.0,
        });
        events.push(Event {
            time: start,
            actor: Actor::Promoter,
            act: Act::Post { post },
        });
        for n in 0..*votes {
            events.push(Event {
                time: start + 60 + n as i64 * ARMY_SPACING,
                actor: Actor::Buyer,
                act: Act::Vote {
                    post,
                    up: true,
                    campaign: Some(campaign),
                },
            });
        }
    }

    // Stable: events at the same second keep the order above (a post before votes on it).
    events.sort_by_key(|e| e.time);
    Plan {
        members: config.members,
        days,
        posts,
        events,
        bursts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> Config {
        Config {
            seed,
            days: 3,
            members: 20,
        }
    }

    #[test]
    fn a_seed_gives_one_plan() {
        let (a, b) = (plan(&config(7)), plan(&config(7)));
        assert_eq!(format!("{:?}", a.events), format!("{:?}", b.events));
        assert_ne!(
            format!("{:?}", a.events),
            format!("{:?}", plan(&config(8)).events)
        );
    }

    #[test]
    fn votes_come_after_their_post_and_members_vote_once_on_others_posts() {
        let plan = plan(&config(3));
        let mut posted = vec![None; plan.posts.len()];
        let mut seen = std::collections::BTreeSet::new();
        for event in &plan.events {
            match event.act {
                Act::Post { post } => posted[post] = Some(event.time),
                Act::Vote { post, campaign, .. } => {
                    assert!(posted[post].is_some(), "a vote before its post");
                    if campaign.is_none() {
                        assert_ne!(plan.posts[post].author, event.actor);
                        assert!(seen.insert((event.actor, post)), "a second honest vote");
                    }
                }
            }
        }
        assert!(plan.events.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(plan
            .events
            .iter()
            .all(|e| (0..plan.days * DAY).contains(&e.time)));
    }
}
