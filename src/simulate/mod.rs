//! The economy's evidence: a month of a community played through the real rules, once under
//! the flat policy and once under the default one, with the same seed and the same behaviour.
//!
//! Parts: [`plan`] draws who does what and when from the seed (honest members posting and
//! voting at Poisson-ish rates, a flooder posting in bursts, a vote buyer paying for an army's
//! up-votes on one post); [`play`] plays that plan on a [`crate::store::MemoryStore`] through
//! `rules::apply` and `rules::quote`, the rules the server runs, and audits the ledger it
//! wrote; [`report`] turns the two runs into the figures, the markdown table and the targets;
//! [`plot`] draws them as one SVG.
//!
//! Must not: read the clock (times are simulated from a fixed start), price anything itself
//! (every price is a quote, and every charge is checked against it), or depend on anything but
//! the seed: the same configuration prints the same table.

pub mod plan;
pub mod play;
pub mod plot;
pub mod report;
#[cfg(test)]
mod tests;

use crate::config::Economy;
use crate::rules::price::{Policy, VotePricing};
use crate::store::StoreError;

/// What to simulate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub seed: u64,
    /// Days simulated (at least 1).
    pub days: i64,
    /// Honest members.
    pub members: usize,
}

/// Why a simulation stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// The store refused what the simulation paid exactly its quote for, or charged another
    /// price: the simulation and the rules disagree, so no figure could be trusted.
    #[error("the store and the simulation disagree: {0}")]
    Refused(String),
    /// An honest member's action was quoted above what a request may carry: the behaviour
    /// drawn is not what the honest model means (a few actions a day), so its cost would be
    /// no honest member's.
    #[error("an honest member could not pay: {0}")]
    Unpayable(String),
}

/// The server's default policy (`config::Economy::default`).
pub fn default_policy() -> Policy {
    Economy::default().policy
}

/// The flat policy: the default one with flood pricing, quadratic votes and refunds off.
pub fn flat_policy() -> Policy {
    Policy {
        repeat_factor: 1,
        vote_pricing: VotePricing::Flat,
        refund_voters: 0,
        ..default_policy()
    }
}

/// The two runs of one plan.
#[derive(Clone, Debug)]
pub struct Simulation {
    pub config: Config,
    pub flat: play::Run,
    pub default: play::Run,
}

/// Draws the plan of `config` and plays it under both policies, each on its own thread and
/// its own store (the runs share nothing but the plan).
pub fn simulate(config: &Config) -> Result<Simulation, SimulateError> {
    let plan = plan::plan(config);
    let (flat, default) = std::thread::scope(|scope| {
        let flat = scope.spawn(|| play::play(&plan, &flat_policy()));
        let default = play::play(&plan, &default_policy());
        let flat = flat
            .join()
            .unwrap_or_else(|_| Err(SimulateError::Refused("the flat run panicked".into())));
        (flat, default)
    });
    Ok(Simulation {
        config: config.clone(),
        flat: flat?,
        default: default?,
    })
}
