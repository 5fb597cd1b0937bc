//! The figures of a simulation as one SVG of four panels: what honest members pay under each
//! policy, what a flood burst costs, what bought votes cost, and votes against voters on the
//! board.
//!
//! Drawn with plotters' SVG backend (pure Rust, no system fonts: text goes into the SVG as
//! text, so a browser lays it out). Pure: it returns the SVG text and writes no file.

use plotters::prelude::*;

use super::plan::{PostKind, BURST_POSTS, CAMPAIGNS};
use super::report::{flood_curve, thousands, THOUSAND_VOTES_MIN, TWENTY_POSTS_MIN};
use super::Simulation;

const SIZE: (u32, u32) = (1200, 960);
const FLAT: RGBColor = RGBColor(31, 119, 180);
const DEFAULT: RGBColor = RGBColor(214, 39, 40);
const HONEST: RGBColor = RGBColor(140, 140, 140);
const TEXT: (&str, u32) = ("sans-serif", 15);
const CAPTION: (&str, u32) = ("sans-serif", 19);

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// An axis label: whole numbers with thousands separators, fractions with one decimal.
fn label(v: f64) -> String {
    if v >= 0.0 && (v - v.round()).abs() < 1e-9 {
        thousands(v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

/// The SVG text of the four panels.
pub fn svg(sim: &Simulation) -> Result<String, String> {
    let mut text = String::new();
    draw(sim, &mut text).map_err(|e| format!("drawing the plot: {e}"))?;
    Ok(text)
}

fn draw(sim: &Simulation, text: &mut String) -> Drawn {
    let root = SVGBackend::with_string(text, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((2, 2));
    honest(sim, &panels[0])?;
    flood(sim, &panels[1])?;
    votes(sim, &panels[2])?;
    board(sim, &panels[3])?;
    root.present()?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Each member's money paid under the default policy against under the flat one.
fn honest(sim: &Simulation, area: &Area) -> Drawn {
    let pairs: Vec<(f64, f64)> = sim
        .flat
        .members
        .iter()
        .zip(&sim.default.members)
        .map(|(f, d)| (f.money as f64, d.money as f64))
        .collect();
    let top = pairs.iter().map(|(f, d)| f.max(*d)).fold(1.0f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "Honest members: money paid in {} days ({})",
                sim.config.days, sim.default.policy.currency
            ),
            CAPTION,
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..top, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("under the flat policy")
        .y_desc("under the default policy")
        .label_style(TEXT)
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| label(*v))
        .y_label_formatter(&|v| label(*v))
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (top, top)],
            BLACK.stroke_width(1),
        ))?
        .label("pays the same under both")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
    chart
        .draw_series(
            pairs
                .iter()
                .map(|(f, d)| Circle::new((*f, *d), 4, DEFAULT.mix(0.7).filled())),
        )?
        .label("one member (below the line: pays less)")
        .legend(|(x, y)| Circle::new((x + 9, y), 4, DEFAULT.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(TEXT)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Stamps paid in all for the first k posts within ten minutes.
fn flood(sim: &Simulation, area: &Area) -> Drawn {
    let mut chart = ChartBuilder::on(area)
        .caption("The flooder: k posts within ten minutes", CAPTION)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(72)
        .build_cartesian_2d(0.5f64..20.5f64, (0.8f64..4.0e6f64).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("posts by one payer within ten minutes")
        .y_desc("stamps paid in all")
        .label_style(TEXT)
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| label(*v))
        .y_label_formatter(&|v| label(*v))
        .draw()?;
    for (run, color, name) in [
        (&sim.flat, FLAT, "flat policy"),
        (&sim.default, DEFAULT, "default policy"),
    ] {
        let curve = flood_curve(run);
        let paid: Vec<(f64, f64)> = curve
            .iter()
            .enumerate()
            .filter_map(|(k, c)| c.ok().map(|s| ((k + 1) as f64, s as f64)))
            .collect();
        chart
            .draw_series(LineSeries::new(paid.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(paid.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        stopped(&mut chart, &curve_stop(&curve, &paid), color, 1.0)?;
    }
    target(
        &mut chart,
        (BURST_POSTS as f64, TWENTY_POSTS_MIN as f64),
        "target: 20 posts ≥ 2^20 − 1",
    )?;
    legend(&mut chart)
}

/// Where a curve stopped: its last paid point and the refused quote after it.
fn curve_stop(curve: &[Result<u64, u64>], paid: &[(f64, f64)]) -> Option<((f64, f64), u64)> {
    let quoted = curve.iter().find_map(|c| c.err())?;
    paid.last().map(|last| (*last, quoted))
}

/// A cross one step after the last point paid, at what paying the refused quote would have
/// made the total, labelled with the quote.
fn stopped<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    stop: &Option<((f64, f64), u64)>,
    color: RGBColor,
    step: f64,
) -> Drawn
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let Some(((x, y), quoted)) = *stop else {
        return Ok(());
    };
    let next = (x + step, y + quoted as f64);
    chart.draw_series([Cross::new(next, 6, color.stroke_width(2))])?;
    let style = TEXT.into_font().color(&color);
    // Text placed in pixels from the cross, so it reads the same on any axis scale.
    chart.draw_series([EmptyElement::at(next)
        + Text::new(
            format!("the next is quoted {quoted} stamps,"),
            (10, -22),
            style.clone(),
        )
        + Text::new("over the 100 a request may carry", (10, -4), style)])?;
    Ok(())
}

fn target<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    at: (f64, f64),
    label: &str,
) -> Drawn
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series([TriangleMarker::new(at, 7, BLACK.filled())])?
        .label(label.to_string())
        .legend(|(x, y)| TriangleMarker::new((x + 9, y), 6, BLACK.filled()));
    Ok(())
}

fn legend<'a, X, Y>(chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>) -> Drawn
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(TEXT)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Stamps paid in all for n up-votes of one payer on one post (the largest campaign).
fn votes(sim: &Simulation, area: &Area) -> Drawn {
    let last = CAMPAIGNS.len() - 1;
    let mut chart = ChartBuilder::on(area)
        .caption("The vote buyer: n up-votes on one post", CAPTION)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (0.8f64..1.5e3f64).log_scale(),
            (0.8f64..4.0e6f64).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("up-votes bought by one payer on one post")
        .y_desc("stamps paid in all")
        .label_style(TEXT)
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| label(*v))
        .y_label_formatter(&|v| label(*v))
        .draw()?;
    for (run, color, name) in [
        (&sim.flat, FLAT, "flat policy"),
        (&sim.default, DEFAULT, "default policy"),
    ] {
        let campaign = &run.campaigns[last];
        let paid: Vec<(f64, f64)> = campaign
            .paid
            .iter()
            .enumerate()
            .map(|(n, s)| ((n + 1) as f64, *s as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(paid.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        let stop = campaign
            .stopped_by
            .and_then(|quoted| paid.last().map(|last| (*last, quoted)));
        stopped(&mut chart, &stop, color, 0.0)?;
    }
    target(
        &mut chart,
        (1_000.0, THOUSAND_VOTES_MIN as f64),
        "target: 1,000 votes ≥ 1,000,000",
    )?;
    legend(&mut chart)
}

/// Votes against distinct voters of every post with a vote, at the end of each run.
fn board(sim: &Simulation, area: &Area) -> Drawn {
    // Honest posts by (voters, votes), counted: thousands of them share a few dozen points.
    let mut honest = std::collections::BTreeMap::<(u64, u64), u64>::new();
    for post in &sim.default.board {
        if post.kind == PostKind::Honest && post.voters > 0 {
            *honest
                .entry((post.voters, post.votes_up + post.votes_down))
                .or_default() += 1;
        }
    }
    let most = honest.keys().map(|(v, _)| *v).max().unwrap_or(10) as f64 + 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption("On the board: votes against voters", CAPTION)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..most, (0.8f64..3.0e3f64).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("voters (distinct payers of its votes)")
        .y_desc("votes")
        .label_style(TEXT)
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| label(*v))
        .y_label_formatter(&|v| label(*v))
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            (1..=most as u64).map(|v| (v as f64, v as f64)),
            BLACK,
        ))?
        .label("one vote per voter")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
    chart
        .draw_series(honest.iter().map(|((voters, votes), count)| {
            let radius = 3 + (*count as f64).sqrt() as i32 / 2;
            Circle::new(
                (*voters as f64, *votes as f64),
                radius,
                HONEST.mix(0.5).filled(),
            )
        }))?
        .label("honest posts (area: count)")
        .legend(|(x, y)| Circle::new((x + 9, y), 4, HONEST.filled()));
    for (run, color, name, side) in [
        (&sim.flat, FLAT, "bought posts, flat policy", -1),
        (&sim.default, DEFAULT, "bought posts, default policy", 1),
    ] {
        // A set: two campaigns stopped at the same 50 votes are one point, labelled once.
        let bought: std::collections::BTreeSet<(u64, u64)> = run
            .board
            .iter()
            .filter(|p| matches!(p.kind, PostKind::Promoted { .. }))
            .map(|p| (p.voters, p.votes_up + p.votes_down))
            .collect();
        chart
            .draw_series(bought.into_iter().map(move |(voters, votes)| {
                let x = voters as f64;
                // Flat just left of the voter count and labelled above, default just right and
                // labelled below: the two 10-vote posts would otherwise hide each other.
                let text = format!(
                    "{} votes, {voters} voter{}",
                    thousands(votes),
                    if voters == 1 { "" } else { "s" }
                );
                let dy = if side < 0 { -20 } else { 2 };
                EmptyElement::at((x, votes as f64))
                    + Rectangle::new([(side * 7 - 5, -5), (side * 7 + 5, 5)], color.filled())
                    + Text::new(text, (18, dy), TEXT.into_font().color(&color))
            }))?
            .label(name)
            .legend(move |(x, y)| {
                Rectangle::new([(x + 4, y - 4), (x + 12, y + 4)], color.filled())
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(TEXT)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
