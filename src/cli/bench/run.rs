//! The order of a run: the steps (workloads and their setup), done on every server under test
//! before the next. With two servers (one per policy), each step's setup is done on both, then
//! its workload is measured in two halves per server in the order A B B A, so that whatever
//! drifts during the step (the machine's other load, background writes, the order itself)
//! falls on both policies alike; each server's figures are those of its two halves together.
//! Every measured half starts once the servers have settled (see [`settle`]). With
//! `--database` the two targets are the sled server and the servers on PostgreSQL, and only
//! the steps that do not depend on the policy run ([`DATABASE_STEPS`]).

use std::sync::Arc;

use super::ceilings::Ceilings;
use super::client::{provision_posters, provision_voters, wait_for_ledger_check, Ctx};
use super::payers::{SMOKE_VOTERS, VOTERS};
use super::prefill::{read_old_stamps, write_old_stamps};
use super::report::Results;
use super::server::Target;
use super::statistics::{settle, Phase, Workload};
use super::workloads::{prefill, run_phase, stock};
use super::Plan;

/// The steps of a run, in order.
#[derive(Clone, Copy, Debug)]
enum Step {
    Healthz,
    Prefill,
    Purchases,
    Redeems,
    OldRedeems,
    Posts,
    Votes,
    Reads,
}

const STEPS: [Step; 8] = [
    Step::Healthz,
    Step::Prefill,
    Step::Purchases,
    Step::Redeems,
    Step::OldRedeems,
    Step::Posts,
    Step::Votes,
    Step::Reads,
];

/// The steps of a run with `--database`: those that need no payers, whose work the policy does
/// not price.
const DATABASE_STEPS: [Step; 3] = [Step::Healthz, Step::Purchases, Step::Redeems];

/// One target's client and what was measured on it so far.
struct Run<'a> {
    target: &'a Target,
    ctx: Arc<Ctx>,
    /// Label of its log lines: empty with one target, its label with two.
    label: String,
    /// The fresh stamps put aside while old stamps are redeemed, and how many old ones there
    /// were.
    put_aside: Option<(Vec<String>, usize)>,
    healthz: Option<Phase>,
    purchases: Option<Phase>,
    redeems: Option<Phase>,
    old_redeems: Option<Phase>,
    posts: Option<Phase>,
    votes: Option<Phase>,
    reads: Option<Phase>,
}

/// Runs every step on every server and returns what each measured.
pub(super) async fn measure(
    plan: &Plan,
    ceilings: &Ceilings,
    targets: &[Target],
) -> Result<Vec<Results>, String> {
    let mut runs = Vec::with_capacity(targets.len());
    for target in targets {
        let ctx = Ctx::connect(target, plan.connections.min(64), None).await?;
        wait_for_ledger_check(&ctx).await?;
        runs.push(Run {
            target,
            ctx,
            label: if targets.len() > 1 {
                format!("{}: ", target.label)
            } else {
                String::new()
            },
            put_aside: None,
            healthz: None,
            purchases: None,
            redeems: None,
            old_redeems: None,
            posts: None,
            votes: None,
            reads: None,
        });
    }
    let pids: Vec<u32> = targets.iter().flat_map(Target::pids).collect();
    let postmaster = targets.iter().find_map(|t| t.postmaster);
    let steps: &[Step] = if plan.database.is_some() {
        &DATABASE_STEPS
    } else {
        &STEPS
    };
    for (i, step) in steps.iter().enumerate() {
        // Setups in turns, so that neither server always has its setup right before the
        // measurement.
        let order: Vec<usize> = if i % 2 == 0 {
            (0..runs.len()).collect()
        } else {
            (0..runs.len()).rev().collect()
        };
        // Posts and votes do the same work as a redeem and more: the best redeem rate of the
        // run sizes their payers, the same on every server (so that neither gets a bigger
        // store), but at least a quarter of the verify ceiling, so that a redeem workload slowed
        // by a stall (another process's disk writes, say) leaves enough of them.
        let spend_rate = runs
            .iter()
            .filter_map(|r| r.redeems.as_ref().map(Phase::rate))
            .fold(ceilings.verify_strict / 4.0, f64::max)
            .max(100.0);
        let mut workloads = vec![None; runs.len()];
        for k in order {
            workloads[k] = runs[k].prepare(*step, plan, ceilings, spend_rate).await?;
        }
        let measured: Vec<(usize, Workload)> = workloads
            .iter()
            .enumerate()
            .filter_map(|(k, w)| w.map(|w| (k, w)))
            .collect();
        let (n, d) = (plan.connections, plan.duration);
        match &measured[..] {
            [] => {}
            [(k, workload)] => {
                settle(&pids, postmaster).await;
                let phase = run_phase(&runs[*k].ctx, *workload, n, Some(d)).await;
                runs[*k].finish(*step, phase)?;
            }
            [(a, wa), (b, wb), ..] => {
                let half = Some(d / 2);
                let mut halves: Vec<(usize, Phase)> = Vec::with_capacity(4);
                for (k, workload) in [(*a, *wa), (*b, *wb), (*b, *wb), (*a, *wa)] {
                    settle(&pids, postmaster).await;
                    halves.push((k, run_phase(&runs[k].ctx, workload, n, half).await));
                }
                let mut per_run: Vec<Vec<Phase>> = (0..runs.len()).map(|_| Vec::new()).collect();
                for (k, phase) in halves {
                    per_run[k].push(phase);
                }
                for (k, phases) in per_run.into_iter().enumerate() {
                    if let Some(phase) = Phase::merge(phases) {
                        runs[k].finish(*step, phase)?;
                    }
                }
            }
        }
    }
    runs.into_iter().map(Run::results).collect()
}

impl Run<'_> {
    /// The unmeasured part of `step` on this run's server; returns the workload to measure.
    async fn prepare(
        &mut self,
        step: Step,
        plan: &Plan,
        ceilings: &Ceilings,
        spend_rate: f64,
    ) -> Result<Option<Workload>, String> {
        let ctx = &self.ctx;
        Ok(match step {
            Step::Healthz => Some(Workload::Healthz),
            Step::Prefill => {
                if plan.prefill > 0 {
                    prefill(ctx, plan).await?;
                }
                None
            }
            Step::Purchases => Some(Workload::Purchase),
            Step::Redeems => {
                stock(ctx, plan.stock_for(ceilings.verify_strict, 1)).await?;
                Some(Workload::Redeem)
            }
            // After a scale prefill: spend stamps bought across the whole history (cold keys),
            // the worst case for the time-ordered stamp index.
            Step::OldRedeems => {
                let old_stamps = read_old_stamps(&self.target.first().root);
                if old_stamps.is_empty() {
                    return Ok(None);
                }
                let available = old_stamps.len();
                self.put_aside = Some((ctx.replace_pool(old_stamps), available));
                Some(Workload::Redeem)
            }
            Step::Posts => {
                let payers = plan.stock_for(spend_rate, 1);
                provision_posters(ctx, usize::try_from(payers).unwrap_or(usize::MAX)).await?;
                Some(Workload::Post)
            }
            Step::Votes => {
                let voters = if plan.smoke { SMOKE_VOTERS } else { VOTERS };
                let votes = plan.stock_for(spend_rate, 1);
                provision_voters(ctx, voters, votes).await?;
                Some(Workload::Vote)
            }
            Step::Reads => Some(Workload::Read),
        })
    }

    /// Records what `step` measured, and says so.
    fn finish(&mut self, step: Step, phase: Phase) -> Result<(), String> {
        let label = &self.label;
        match step {
            Step::Healthz => {
                eprintln!("bench: {label}GET /healthz {:.0}/s", phase.rate());
                self.healthz = Some(phase);
            }
            Step::Prefill => {}
            Step::Purchases => {
                eprintln!(
                    "bench: {label}purchases {:.0}/s ({:.0} stamps/s)",
                    phase.rate(),
                    phase.item_rate()
                );
                self.purchases = Some(phase);
            }
            Step::Redeems => {
                eprintln!("bench: {label}redeems {:.0}/s", phase.rate());
                self.redeems = Some(phase);
            }
            // The old stamps left unspent go back in the file, so that `--reuse` can run
            // again.
            Step::OldRedeems => {
                if let Some((fresh, available)) = self.put_aside.take() {
                    let left = self.ctx.replace_pool(fresh);
                    write_old_stamps(&self.target.first().root, &left)?;
                    eprintln!(
                        "bench: {label}redeems of old stamps {:.0}/s ({} of {available} spent)",
                        phase.rate(),
                        available - left.len()
                    );
                }
                self.old_redeems = Some(phase);
            }
            Step::Posts => {
                eprintln!("bench: {label}posts {:.0}/s", phase.rate());
                self.posts = Some(phase);
            }
            Step::Votes => {
                eprintln!(
                    "bench: {label}votes {:.0}/s ({} refunds, on {} posts made)",
                    phase.rate(),
                    phase.items,
                    self.ctx.payers.posts_made()
                );
                self.votes = Some(phase);
            }
            Step::Reads => {
                eprintln!("bench: {label}reads {:.0}/s", phase.rate());
                self.reads = Some(phase);
            }
        }
        Ok(())
    }

    fn results(self) -> Result<Results, String> {
        let missing = |what: &str| format!("bench: the {what} workload did not run");
        Ok(Results {
            policy: self.target.policy,
            label: self.target.label.clone(),
            postgres: self.target.postgres,
            servers: self.target.servers.len(),
            healthz: self.healthz.ok_or_else(|| missing("healthz"))?,
            purchases: self.purchases.ok_or_else(|| missing("purchase"))?,
            redeems: self.redeems.ok_or_else(|| missing("redeem"))?,
            old_redeems: self.old_redeems,
            posts: self.posts,
            votes: self.votes,
            reads: self.reads,
        })
    }
}
