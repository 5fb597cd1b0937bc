//! The report: the Markdown table of every workload and ceiling, the notes, the lines that
//! compare the results with the performance targets and, with both policies, the table of
//! default/flat ratios.

use super::ceilings::Ceilings;
use super::server::Policy;
use super::statistics::Phase;
use super::workloads::PURCHASE_COUNT;
use super::Plan;

/// What the measured workloads found, for the report.
pub(super) struct Results {
    /// The policy of the server they were measured on.
    pub(super) policy: Policy,
    pub(super) healthz: Phase,
    pub(super) purchases: Phase,
    pub(super) redeems: Phase,
    /// Redeems of old stamps, after a scale prefill.
    pub(super) old_redeems: Option<Phase>,
    pub(super) posts: Phase,
    pub(super) votes: Phase,
    pub(super) reads: Phase,
}

impl Results {
    /// Failed requests of the measured workloads.
    pub(super) fn errors(&self) -> u64 {
        [
            &self.healthz,
            &self.purchases,
            &self.redeems,
            &self.posts,
            &self.votes,
            &self.reads,
        ]
        .iter()
        .map(|p| p.errors)
        .sum()
    }

    /// Prints the table, the notes and the lines about the targets.
    pub(super) fn print(&self, plan: &Plan, ceilings: &Ceilings) {
        let Results {
            policy,
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
        rows.push(Row::http(
            "POST /v1/posts",
            posts,
            &ratio(posts.rate(), verify, "verify_strict"),
        ));
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
        rows.push(Row::http(
            "GET /v1/posts",
            reads,
            &ratio(reads.rate(), health, "healthz"),
        ));

        println!();
        println!(
            "pennypost bench, {} policy: {} s per workload, {} connections, {} cores",
            policy.name(),
            d.as_secs(),
            n,
            std::thread::available_parallelism()
                .map(|p| p.get())
                .unwrap_or(1)
        );
        println!();
        print_table(&rows);
        println!();
        for phase in [healthz, purchases, redeems, posts, votes, reads] {
            if let Some(note) = phase.note() {
                println!("note: {}: {note}", phase.workload.name());
            }
        }
        print_targets(redeems, purchases, reads, healthz, verify);
    }
}

/// The same run's default-policy figures against its flat-policy ones: a row per workload
/// (those the policy does not price are the run's control: their ratio is the noise), the
/// refunds, and the target for posts and votes.
pub(super) fn print_comparison(plan: &Plan, flat: &Results, default: &Results) {
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
        ("POST /v1/posts", flat.posts.rate(), default.posts.rate()),
        (
            "POST /v1/posts/{id}/votes",
            flat.votes.rate(),
            default.votes.rate(),
        ),
        (
            "stamps issued by purchases",
            flat.purchases.item_rate(),
            default.purchases.item_rate(),
        ),
        ("GET /v1/posts", flat.reads.rate(), default.reads.rate()),
    ];
    for (name, f, d) in rows {
        let r = if f > 0.0 { d / f } else { 0.0 };
        println!("| {name} | {f:.0} | {d:.0} | {r:.2} |");
    }
    println!();
    println!(
        "refunds completed by the vote workload: default policy {} (of {} votes), flat policy {}",
        default.votes.items, default.votes.ops, flat.votes.items
    );
    let share = |d: &Phase, f: &Phase| {
        if f.rate() > 0.0 {
            d.rate() / f.rate()
        } else {
            0.0
        }
    };
    let (posts, votes) = (
        share(&default.posts, &flat.posts),
        share(&default.votes, &flat.votes),
    );
    println!(
        "target: posts/s and votes/s under the default policy >= 0.9 of flat (posts {posts:.2}, \
         votes {votes:.2}): {}",
        if posts >= 0.9 && votes >= 0.9 {
            "met"
        } else {
            "NOT met"
        }
    );
}

fn ratio(value: f64, ceiling: f64, of: &str) -> String {
    if ceiling > 0.0 {
        format!("{:.2} of {of}", value / ceiling)
    } else {
        String::new()
    }
}

fn print_targets(redeems: &Phase, purchases: &Phase, reads: &Phase, healthz: &Phase, verify: f64) {
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let redeem_p99 = redeems.percentile_ms(0.99);
    let absolute = redeems.rate() >= 10_000.0 && redeem_p99 <= 25.0;
    let relative = verify > 0.0 && redeems.rate() >= 0.5 * verify;
    println!(
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
    );
    println!(
        "target: purchases >= 20,000 stamps issued/s ({:.0}/s): {}",
        purchases.item_rate(),
        met(purchases.item_rate() >= 20_000.0)
    );
    let read_share = if healthz.rate() > 0.0 {
        reads.rate() / healthz.rate()
    } else {
        0.0
    };
    println!(
        "target: board reads >= 50% of /healthz ({:.0}%): {}",
        100.0 * read_share,
        met(read_share >= 0.5)
    );
}

struct Row {
    name: String,
    rate: f64,
    /// p50, p99, p999 in ms, errors; `None` for in-process rows.
    http: Option<([f64; 3], u64)>,
    versus: String,
    /// Cores busy in the server and in the load generator during the workload.
    cores: Option<(Option<f64>, Option<f64>)>,
}

impl Row {
    fn http(name: &str, phase: &Phase, versus: &str) -> Row {
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
fn print_table(rows: &[Row]) {
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
