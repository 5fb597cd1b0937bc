//! The report: the Markdown table of every workload and ceiling, the notes, the lines that
//! compare the results with the performance targets and, with both policies, the table of
//! default/flat ratios; with `--database`, the table of PostgreSQL against sled.

use super::ceilings::Ceilings;
use super::server::Policy;
use super::statistics::Phase;
use super::workloads::PURCHASE_COUNT;
use super::Plan;

/// What the measured workloads found, for the report.
pub(super) struct Results {
    /// The policy of the servers they were measured on.
    pub(super) policy: Policy,
    /// The target's label ("default policy", "PostgreSQL x3, flat policy").
    pub(super) label: String,
    /// Whether the target kept its store in PostgreSQL.
    pub(super) postgres: bool,
    /// How many servers the target had.
    pub(super) servers: usize,
    pub(super) healthz: Phase,
    pub(super) purchases: Phase,
    pub(super) redeems: Phase,
    /// Redeems of old stamps, after a scale prefill.
    pub(super) old_redeems: Option<Phase>,
    /// Posts, votes and reads: not measured with `--database`.
    pub(super) posts: Option<Phase>,
    pub(super) votes: Option<Phase>,
    pub(super) reads: Option<Phase>,
}

impl Results {
    /// Failed requests of the measured workloads.
    pub(super) fn errors(&self) -> u64 {
        [
            Some(&self.healthz),
            Some(&self.purchases),
            Some(&self.redeems),
            self.posts.as_ref(),
            self.votes.as_ref(),
            self.reads.as_ref(),
        ]
        .iter()
        .flatten()
        .map(|p| p.errors)
        .sum()
    }

    /// Prints the table, the notes and the lines about the targets.
    pub(super) fn print(&self, plan: &Plan, ceilings: &Ceilings) {
        let Results {
            policy: _,
            label,
            postgres: _,
            servers: _,
            healthz,
            purchases,
            redeems,
            old_redeems,
            posts,
            votes,
            reads,
        } = self;
        let (n, d) = (plan.connections, plan.duration);
        let mut rows: Vec<Row> = Vec::new();
        let verify = ceilings.verify_strict;
        let health = healthz.rate();
        rows.push(Row::http("GET /healthz (HTTP ceiling)", healthz, "ceiling"));
        rows.push(Row::cpu(
            "ed25519 verify_strict, 1 core (ceiling)",
            ceilings.verify_strict,
            "ceiling",
        ));
        rows.push(Row::cpu(
            "ed25519 verify_batch of 64, 1 core",
            ceilings.verify_batch,
            &ratio(ceilings.verify_batch, verify, "verify_strict"),
        ));
        rows.push(Row::cpu("ed25519 sign, 1 core", ceilings.sign, "ceiling"));
        let redeem_label = if plan.prefill > 0 {
            format!("POST /v1/stamps/redeem (after {} spent)", plan.prefill)
        } else {
            "POST /v1/stamps/redeem".to_string()
        };
        rows.push(Row::http(
            &redeem_label,
            redeems,
            &ratio(redeems.rate(), verify, "verify_strict"),
        ));
        if let Some(old) = old_redeems {
            rows.push(Row::http(
                "POST /v1/stamps/redeem, old stamps",
                old,
                &ratio(old.rate(), redeems.rate(), "redeem"),
            ));
        }
        if let Some(posts) = posts {
            rows.push(Row::http(
                "POST /v1/posts",
                posts,
                &ratio(posts.rate(), verify, "verify_strict"),
            ));
        }
        if let Some(votes) = votes {
            rows.push(Row::http(
                "POST /v1/posts/{id}/votes",
                votes,
                &ratio(votes.rate(), verify, "verify_strict"),
            ));
            let mut refunds = Row::cpu(
                "  refunds completed by those votes",
                votes.item_rate(),
                &format!("{} in all", votes.items),
            );
            refunds.cores = Some((votes.server_cores, votes.client_cores));
            rows.push(refunds);
        }
        rows.push(Row::http(
            &format!("POST /v1/stamps/purchase ({PURCHASE_COUNT})"),
            purchases,
            "",
        ));
        let mut issued = Row::cpu(
            "  stamps issued by those purchases",
            purchases.item_rate(),
            &ratio(purchases.item_rate(), ceilings.sign, "sign"),
        );
        issued.cores = Some((purchases.server_cores, purchases.client_cores));
        rows.push(issued);
        if let Some(reads) = reads {
            rows.push(Row::http(
                "GET /v1/posts",
                reads,
                &ratio(reads.rate(), health, "healthz"),
            ));
        }

        println!();
        println!(
            "pennypost bench, {label}: {} s per workload, {} connections, {} cores",
            d.as_secs(),
            n,
            std::thread::available_parallelism()
                .map(|p| p.get())
                .unwrap_or(1)
        );
        println!();
        print_table(&rows);
        println!();
        let phases = [Some(healthz), Some(purchases), Some(redeems)];
        let more = [posts.as_ref(), votes.as_ref(), reads.as_ref()];
        for phase in phases.into_iter().chain(more).flatten() {
            if let Some(note) = phase.note() {
                println!("note: {}: {note}", phase.workload.name());
            }
        }
        if let Some(reads) = reads {
            let phases = TargetPhases {
                redeems,
                purchases,
                reads,
                healthz,
            };
            for line in target_lines(&phases, verify, Judging::of_plan(plan)) {
                println!("{line}");
            }
        }
    }
}

/// The same run's default-policy figures against its flat-policy ones: a row per workload
/// (those the policy does not price are the run's control: their ratio is the noise), the
/// refunds, and the target for posts and votes.
pub(super) fn print_comparison(plan: &Plan, flat: &Results, default: &Results) {
    let (
        (Some(flat_posts), Some(flat_votes), Some(flat_reads)),
        (Some(default_posts), Some(default_votes), Some(default_reads)),
    ) = (
        (&flat.posts, &flat.votes, &flat.reads),
        (&default.posts, &default.votes, &default.reads),
    )
    else {
        return;
    };
    println!();
    println!(
        "default policy against flat, same run ({} s per workload, {} connections; each \
         workload measured in halves, {} policy first and last):",
        plan.duration.as_secs(),
        plan.connections,
        plan.policies.first().map_or("", |p| p.name())
    );
    println!();
    println!("| workload | flat ops/s | default ops/s | default/flat |");
    println!("|---|---:|---:|---:|");
    let rows: [(&str, f64, f64); 6] = [
        ("GET /healthz", flat.healthz.rate(), default.healthz.rate()),
        (
            "POST /v1/stamps/redeem",
            flat.redeems.rate(),
            default.redeems.rate(),
        ),
        ("POST /v1/posts", flat_posts.rate(), default_posts.rate()),
        (
            "POST /v1/posts/{id}/votes",
            flat_votes.rate(),
            default_votes.rate(),
        ),
        (
            "stamps issued by purchases",
            flat.purchases.item_rate(),
            default.purchases.item_rate(),
        ),
        ("GET /v1/posts", flat_reads.rate(), default_reads.rate()),
    ];
    for (name, f, d) in rows {
        let r = if f > 0.0 { d / f } else { 0.0 };
        println!("| {name} | {f:.0} | {d:.0} | {r:.2} |");
    }
    println!();
    println!(
        "refunds completed by the vote workload: default policy {} (of {} votes), flat policy {}",
        default_votes.items, default_votes.ops, flat_votes.items
    );
    let share = |d: &Phase, f: &Phase| {
        if f.rate() > 0.0 {
            d.rate() / f.rate()
        } else {
            0.0
        }
    };
    let (posts, votes) = (
        share(default_posts, flat_posts),
        share(default_votes, flat_votes),
    );
    println!(
        "target: posts/s and votes/s under the default policy >= 0.9 of flat (posts {posts:.2}, \
         votes {votes:.2}): {}",
        Judging::of_plan(plan).verdict(posts >= 0.9 && votes >= 0.9)
    );
}

/// The most a workload may differ between two builds for the change to count as free.
const BUILDS_SHARE_TOLERANCE: f64 = 0.05;

/// This build's figures against another build's (`--against`), same run: a row per workload
/// with the ratio this/other (`/healthz` is the run's control: its ratio is the noise), and
/// whether purchases, redeems, posts and votes are within [`BUILDS_SHARE_TOLERANCE`].
pub(super) fn print_build_comparison(plan: &Plan, this: &Results, other: &Results) {
    println!();
    println!(
        "this build against the other, same run ({} s per workload, {} connections, {}; each \
         workload measured in halves, {} first and last):",
        plan.duration.as_secs(),
        plan.connections,
        this.label.trim_start_matches("this build, "),
        match &plan.against {
            Some((_, true)) => "this build",
            _ => "the other build",
        }
    );
    println!();
    println!("| workload | other ops/s | this ops/s | this/other |");
    println!("|---|---:|---:|---:|");
    let rate = |p: &Option<Phase>| p.as_ref().map_or(0.0, Phase::rate);
    let rows: [(&str, f64, f64, bool); 6] = [
        (
            "GET /healthz (control)",
            other.healthz.rate(),
            this.healthz.rate(),
            false,
        ),
        (
            "POST /v1/stamps/redeem",
            other.redeems.rate(),
            this.redeems.rate(),
            true,
        ),
        (
            "POST /v1/posts",
            rate(&other.posts),
            rate(&this.posts),
            true,
        ),
        (
            "POST /v1/posts/{id}/votes",
            rate(&other.votes),
            rate(&this.votes),
            true,
        ),
        (
            "stamps issued by purchases",
            other.purchases.item_rate(),
            this.purchases.item_rate(),
            true,
        ),
        (
            "GET /v1/posts",
            rate(&other.reads),
            rate(&this.reads),
            false,
        ),
    ];
    let mut within = true;
    let mut judged = Vec::new();
    for (name, o, t, counts) in rows {
        let r = if o > 0.0 { t / o } else { 0.0 };
        println!("| {name} | {o:.0} | {t:.0} | {r:.2} |");
        if counts {
            within &= r >= 1.0 - BUILDS_SHARE_TOLERANCE;
            judged.push(format!("{name} {r:.2}"));
        }
    }
    println!();
    println!(
        "target: purchases, redeems, posts and votes of this build >= {:.2} of the other's ({}): {}",
        1.0 - BUILDS_SHARE_TOLERANCE,
        judged.join(", "),
        Judging::of_plan(plan).verdict(within)
    );
}

/// Whether a run's figures are held against the performance targets. A debug build runs
/// unoptimised code (several times slower) and a `--smoke` run measures 1 s on 4 connections:
/// their "NOT met" would read as failures of the server, so their target lines give the
/// figures and say why there is no verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Judging {
    Judge,
    /// No verdict, for this reason.
    Withheld(&'static str),
}

impl Judging {
    /// The judging of a run: `smoke` for `--smoke`, `debug_build` for an unoptimised binary.
    pub(super) fn of(smoke: bool, debug_build: bool) -> Judging {
        match (smoke, debug_build) {
            (_, true) => Judging::Withheld("a debug build; measure with cargo run --release"),
            (true, false) => Judging::Withheld("a --smoke run is too short to judge"),
            (false, false) => Judging::Judge,
        }
    }

    /// The judging of this process's run of `plan`.
    pub(super) fn of_plan(plan: &Plan) -> Judging {
        Judging::of(plan.smoke, cfg!(debug_assertions))
    }

    /// The verdict at the end of a target line.
    pub(super) fn verdict(self, met: bool) -> String {
        match self {
            Judging::Judge if met => "met".into(),
            Judging::Judge => "NOT met".into(),
            Judging::Withheld(why) => format!("not judged ({why})"),
        }
    }
}

pub(super) fn ratio(value: f64, ceiling: f64, of: &str) -> String {
    if ceiling > 0.0 {
        format!("{:.2} of {of}", value / ceiling)
    } else {
        String::new()
    }
}

/// The phases the targets of one server are about.
pub(super) struct TargetPhases<'a> {
    pub(super) redeems: &'a Phase,
    pub(super) purchases: &'a Phase,
    pub(super) reads: &'a Phase,
    pub(super) healthz: &'a Phase,
}

/// The target lines of one server, each with its figures and [`Judging::verdict`].
pub(super) fn target_lines(
    phases: &TargetPhases<'_>,
    verify: f64,
    judging: Judging,
) -> Vec<String> {
    let TargetPhases {
        redeems,
        purchases,
        reads,
        healthz,
    } = *phases;
    let met = |ok: bool| judging.verdict(ok);
    let redeem_p99 = redeems.percentile_ms(0.99);
    let absolute = redeems.rate() >= 10_000.0 && redeem_p99 <= 25.0;
    let relative = verify > 0.0 && redeems.rate() >= 0.5 * verify;
    let mut lines = Vec::new();
    lines.push(format!(
        "target: redeems >= 10,000/s with p99 <= 25 ms ({:.0}/s, p99 {:.1} ms): {}; \
         or >= 50% of verify_strict ({:.0}%): {}",
        redeems.rate(),
        redeem_p99,
        met(absolute),
        if verify > 0.0 {
            100.0 * redeems.rate() / verify
        } else {
            0.0
        },
        met(relative)
    ));
    lines.push(format!(
        "target: purchases >= 20,000 stamps issued/s ({:.0}/s): {}",
        purchases.item_rate(),
        met(purchases.item_rate() >= 20_000.0)
    ));
    let read_share = if healthz.rate() > 0.0 {
        reads.rate() / healthz.rate()
    } else {
        0.0
    };
    lines.push(format!(
        "target: board reads >= 50% of /healthz ({:.0}%): {}",
        100.0 * read_share,
        met(read_share >= 0.5)
    ));
    lines
}

pub(super) struct Row {
    name: String,
    rate: f64,
    /// p50, p99, p999 in ms, errors; `None` for in-process rows.
    http: Option<([f64; 3], u64)>,
    versus: String,
    /// Cores busy in the server and in the load generator during the workload.
    cores: Option<(Option<f64>, Option<f64>)>,
}

impl Row {
    pub(super) fn http(name: &str, phase: &Phase, versus: &str) -> Row {
        Row {
            name: name.to_string(),
            rate: phase.rate(),
            http: Some((
                [
                    phase.percentile_ms(0.50),
                    phase.percentile_ms(0.99),
                    phase.percentile_ms(0.999),
                ],
                phase.errors,
            )),
            versus: versus.to_string(),
            cores: Some((phase.server_cores, phase.client_cores)),
        }
    }

    fn cpu(name: &str, rate: f64, versus: &str) -> Row {
        Row {
            name: name.to_string(),
            rate,
            http: None,
            versus: versus.to_string(),
            cores: None,
        }
    }
}

/// Prints the rows as a Markdown table, so a run can be pasted into docs as it is.
pub(super) fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(8).max(8);
    println!(
        "| {:<width$} | {:>9} | {:>8} | {:>8} | {:>8} | {:>6} | {:<22} | {:>12} | {:>12} |",
        "workload",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "errors",
        "vs ceiling",
        "server cores",
        "client cores"
    );
    println!(
        "|{}|{}:|{}:|{}:|{}:|{}:|{}|{}:|{}:|",
        "-".repeat(width + 2),
        "-".repeat(10),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(7),
        "-".repeat(24),
        "-".repeat(13),
        "-".repeat(13)
    );
    for row in rows {
        let (p50, p99, p999, errors) = match &row.http {
            Some(([a, b, c], e)) => (
                format!("{a:.2}"),
                format!("{b:.2}"),
                format!("{c:.2}"),
                e.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let cores = |c: Option<f64>| c.map_or("-".to_string(), |c| format!("{c:.2}"));
        let (server, client) = match row.cores {
            Some((s, c)) => (cores(s), cores(c)),
            None => ("-".to_string(), "1.00".to_string()),
        };
        println!(
            "| {:<width$} | {:>9.0} | {:>8} | {:>8} | {:>8} | {:>6} | {:<22} | {:>12} | {:>12} |",
            row.name, row.rate, p50, p99, p999, errors, row.versus, server, client
        );
    }
}

/// The target for PostgreSQL: durable redeems with 3 servers on one database.
const PG_REDEEMS_MIN: f64 = 5_000.0;
const PG_REDEEM_P99_MAX_MS: f64 = 50.0;
const PG_SHARE_OF_SLED_MIN: f64 = 0.25;
const PG_TARGET_SERVERS: usize = 3;

/// The same run's PostgreSQL figures against sled's: a row per workload and store, with the
/// writers' group commits (commands per batch, batches per second over all servers) and the
/// ratio PostgreSQL/sled, then the target for durable redeems on PostgreSQL.
pub(super) fn print_database_comparison(plan: &Plan, sled: &Results, pg: &Results) {
    let first = match plan.database.as_ref().map(|d| d.sled_first) {
        Some(false) => "PostgreSQL",
        _ => "sled",
    };
    println!();
    println!(
        "PostgreSQL ({} server{} on one database) against sled (one server), same run ({} s per \
         workload, {} connections, flat policy; each workload measured in halves, {first} first \
         and last):",
        pg.servers,
        if pg.servers > 1 { "s" } else { "" },
        plan.duration.as_secs(),
        plan.connections,
    );
    println!();
    println!(
        "| workload | store | ops/s | p50 ms | p99 ms | errors | commands/batch | batches/s | \
         server cores | PostgreSQL cores | client cores | PostgreSQL/sled |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let pg_name = format!("PostgreSQL x{}", pg.servers);
    let rows: [(&str, &Phase, &Phase); 3] = [
        ("GET /healthz", &sled.healthz, &pg.healthz),
        ("POST /v1/stamps/redeem", &sled.redeems, &pg.redeems),
        (
            "POST /v1/stamps/purchase (100)",
            &sled.purchases,
            &pg.purchases,
        ),
    ];
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    for (name, s, p) in rows {
        for (store, phase, versus) in [
            ("sled", s, String::new()),
            (pg_name.as_str(), p, share(p.rate(), s.rate())),
        ] {
            println!(
                "| {name} | {store} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {versus} |",
                phase.rate(),
                phase.percentile_ms(0.50),
                phase.percentile_ms(0.99),
                phase.errors,
                opt(phase.commits.and_then(|c| c.mean_batch()), 1),
                opt(phase.batch_rate(), 0),
                opt(phase.server_cores, 2),
                opt(phase.database_cores, 2),
                opt(phase.client_cores, 2),
            );
        }
    }
    println!(
        "| stamps issued by purchases | sled | {:.0} | | | | | | | | | |",
        sled.purchases.item_rate()
    );
    println!(
        "| stamps issued by purchases | {pg_name} | {:.0} | | | | | | | | | {} |",
        pg.purchases.item_rate(),
        share(pg.purchases.item_rate(), sled.purchases.item_rate())
    );
    println!();
    let redeems = &pg.redeems;
    let (rate, p99) = (redeems.rate(), redeems.percentile_ms(0.99));
    let of_sled = if sled.redeems.rate() > 0.0 {
        rate / sled.redeems.rate()
    } else {
        0.0
    };
    let met = rate >= PG_REDEEMS_MIN
        && p99 < PG_REDEEM_P99_MAX_MS
        && redeems.errors == 0
        && of_sled >= PG_SHARE_OF_SLED_MIN;
    println!(
        "target: durable redeems with {PG_TARGET_SERVERS} servers on one PostgreSQL >= 5,000/s, \
         p99 < 50 ms, 0 errors, >= 0.25 of sled's rate ({} server{}: {rate:.0}/s, p99 {p99:.1} \
         ms, {} errors, {of_sled:.2} of sled): {}{}",
        pg.servers,
        if pg.servers > 1 { "s" } else { "" },
        redeems.errors,
        Judging::of_plan(plan).verdict(met),
        if pg.servers == PG_TARGET_SERVERS {
            ""
        } else {
            " (the target is for 3 servers)"
        }
    );
}

/// `value / of` with two decimals, empty when `of` is 0.
fn share(value: f64, of: f64) -> String {
    if of > 0.0 {
        format!("{:.2}", value / of)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::bench::statistics::Workload;
    use std::time::Duration;

    fn phase(workload: Workload, ops: u64, items: u64) -> Phase {
        Phase {
            workload,
            elapsed: Duration::from_secs(1),
            planned: None,
            ops,
            items,
            errors: 0,
            first_error: None,
            latencies_us: vec![90_000; 10],
            exhausted: false,
            server_cores: None,
            client_cores: None,
            database_cores: None,
            commits: None,
        }
    }

    /// Figures far below every target: a release run says NOT met, a debug build or a smoke
    /// run gives the figures and no verdict, so CI's log shows no failure that is none.
    #[test]
    fn debug_builds_and_smoke_runs_get_no_target_verdict() {
        let (redeems, purchases) = (
            phase(Workload::Redeem, 5, 5),
            phase(Workload::Purchase, 1, 100),
        );
        let (reads, healthz) = (
            phase(Workload::Read, 1, 1),
            phase(Workload::Healthz, 100, 100),
        );
        let phases = TargetPhases {
            redeems: &redeems,
            purchases: &purchases,
            reads: &reads,
            healthz: &healthz,
        };
        let judged = target_lines(&phases, 1000.0, Judging::of(false, false));
        assert_eq!(judged.len(), 3);
        assert!(judged.iter().all(|l| l.contains("NOT met")), "{judged:#?}");
        for (smoke, debug_build, why) in [
            (true, false, "--smoke"),
            (false, true, "debug build"),
            (true, true, "debug build"),
        ] {
            let lines = target_lines(&phases, 1000.0, Judging::of(smoke, debug_build));
            assert_eq!(lines.len(), 3);
            for line in &lines {
                assert!(!line.contains("met"), "{line}");
                assert!(line.contains("not judged"), "{line}");
                assert!(line.contains(why), "{line}");
                assert!(line.contains('('), "the figures stay: {line}");
            }
        }
        assert_eq!(Judging::of(false, false).verdict(true), "met");
    }
}
