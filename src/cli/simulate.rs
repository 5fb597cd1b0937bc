//! `pennypost simulate`: thin; plays a month of a community through the rules under the flat
//! and the default policy (`crate::simulate`), prints the markdown table and writes the plot.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::simulate::{self, Config};

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Seed of the community's behaviour: the same seed prints the same table.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days simulated.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=366))]
    pub days: i64,
    /// Honest members.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(2..=10_000))]
    pub members: u64,
    /// Directory the plot (`economy.svg`) is written to (created if missing).
    #[arg(long, default_value = "docs")]
    pub out: PathBuf,
}

/// Exit 0 when the runs finished, their ledgers audit clean and every target is met; 1 when
/// an audit or a target fails (the table says which); 2 when the simulation could not run.
pub fn main(args: SimulateArgs) -> ExitCode {
    let config = Config {
        seed: args.seed,
        days: args.days,
        members: usize::try_from(args.members).unwrap_or(usize::MAX),
    };
    let started = Instant::now();
    let sim = match simulate::simulate(&config) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let elapsed = started.elapsed();
    print!("{}", simulate::report::markdown(&sim));
    let path = args.out.join("economy.svg");
    let written = simulate::plot::svg(&sim).and_then(|svg| {
        std::fs::create_dir_all(&args.out)
            .and_then(|()| std::fs::write(&path, svg))
            .map_err(|e| format!("{}: {e}", path.display()))
    });
    if let Err(e) = written {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    // Not in the table: the table must be the same on every machine.
    eprintln!(
        "simulated in {:.1} s; plot written to {}",
        elapsed.as_secs_f64(),
        path.display()
    );
    let targets = simulate::report::targets(&sim);
    let audits = [&sim.flat, &sim.default].iter().all(|run| {
        run.audit.ok && run.audit.root_matches && run.audit.entries == run.audit.expected_entries
    });
    if audits
        && targets.honest_pays_at_most_flat
        && targets.thousand_votes_cost_a_million
        && targets.twenty_posts_cost_two_to_the_twenty
    {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
