//! The SVG Gantt chart of a run, drawn into the HTML report: a bar per step coloured by
//! status (a manual task's too: it is work), gate waits hatched, budgets marked, the RTO target as a line, the critical path
//! outlined, and the time the run was stopped left as a gap.

use std::fmt::Write;

use super::html::esc;
use super::model::{RunReport, StepProgress, StepReport};
use super::words::d;
use crate::journal::StepStatus;

fn color(status: StepProgress) -> &'static str {
    match status {
        StepProgress::Ended(StepStatus::Succeeded) => "#2e9d4f",
        StepProgress::Ended(StepStatus::Failed | StepStatus::TimedOut) => "#d0342c",
        StepProgress::Ended(StepStatus::Simulated) => "#7fa7d9",
        StepProgress::Ended(StepStatus::Skipped | StepStatus::NotRun) => "#b0b0b0",
        StepProgress::Ended(StepStatus::Interrupted) => "#e39b20",
        StepProgress::Running => "#3b7dd8",
        StepProgress::Waiting => "#8a5cc7",
        StepProgress::Pending | StepProgress::Ended(StepStatus::Unknown | StepStatus::NotReady) => {
            "#999999"
        }
    }
}

/// An SVG Gantt chart: a bar per step coloured by status, gate waits drawn apart (hatched,
/// purple), each budget marked, the RTO target as a line, the critical path outlined.
#[expect(
    clippy::too_many_lines,
    reason = "one SVG drawn top to bottom: axis, bars, budgets, the RTO line; a split would pass the layout through every part"
)]
pub fn gantt(m: &RunReport) -> String {
    let label_w = 190.0;
    let full_w = 760.0;
    let row_h = 26.0;
    let top = 34.0;
    // The chart spans the run; the RTO target is drawn too unless it lies far beyond the run
    // (a fast drill against a long target), where an arrow at the edge says where it is.
    let ran = m
        .elapsed_ms
        .max(
            m.steps
                .iter()
                .map(|s| s.start_ms.unwrap_or(0) + s.shown_ms.unwrap_or(0))
                .max()
                .unwrap_or(0),
        )
        .max(1);
    let rto_on_chart = m.rto_ms <= ran.saturating_mul(3);
    let horizon = if rto_on_chart { ran.max(m.rto_ms) } else { ran } as f64 * 1.08;
    // A budget that runs out past the axis is said in words to the right of the chart, in room
    // taken from it.
    let beyond = |s: &StepReport| {
        s.start_ms
            .is_some_and(|t| (t + s.budget_ms) as f64 > horizon)
    };
    let chart_w = if m.steps.iter().any(beyond) {
        full_w - 150.0
    } else {
        full_w
    };
    let x = |ms: u64| label_w + chart_w * (ms as f64 / horizon);
    let height = top + row_h * m.steps.len() as f64 + 30.0;
    let width = label_w + full_w + 20.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="Gantt chart of the run" font-family="sans-serif" font-size="12">
<defs><pattern id="wait" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#8a5cc7"/><line x1="0" y1="0" x2="0" y2="6" stroke="#ffffff" stroke-width="2"/></pattern><pattern id="stopped" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)"><rect width="8" height="8" fill="#fbf1dc"/><line x1="0" y1="0" x2="0" y2="8" stroke="#f0c987" stroke-width="3"/></pattern></defs>
<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>"##
    );
    // Time axis: ticks at a round interval, at most eight of them.
    let step = tick_interval(horizon as u64);
    for k in 0..=(horizon as u64 / step) {
        let ms = k * step;
        let tx = x(ms);
        let _ = writeln!(
            o,
            r##"<line x1="{tx:.1}" y1="{top}" x2="{tx:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#555">+{}</text>"##,
            height - 24.0,
            height - 8.0,
            d(ms)
        );
    }
    // While the run was stopped nothing ran: a band across every row, labelled, drawn under
    // the bars, which leave it empty.
    for &(from, to) in &m.stopped {
        let (x0, x1) = (x(from), x(to));
        let _ = writeln!(
            o,
            r##"<rect class="stopped" x="{x0:.1}" y="{top}" width="{:.1}" height="{:.1}" fill="url(#stopped)"><title>run stopped from +{} to +{}: nothing ran</title></rect><text class="stopped" x="{:.1}" y="{:.1}" text-anchor="middle" fill="#9a6a10">stopped {}</text>"##,
            (x1 - x0).max(1.0),
            row_h * m.steps.len() as f64,
            d(from),
            d(to),
            (x0 + x1) / 2.0,
            top - 10.0,
            d(to - from)
        );
    }
    let edge = label_w + chart_w;
    for (i, s) in m.steps.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#222">{}</text>"##,
            label_w - 8.0,
            y + row_h * 0.65,
            esc(&s.id)
        );
        let Some(start) = s.start_ms else { continue };
        let dur = s.shown_ms.unwrap_or(0);
        // A manual task is work, coloured by its status; other gates are a human wait.
        let waits = s.gate && !s.manual;
        let fill = if waits {
            "url(#wait)".to_owned()
        } else {
            color(s.status).to_owned()
        };
        let stroke = if s.critical {
            r##" stroke="#111" stroke-width="2.5""##
        } else {
            ""
        };
        let opacity = if s.estimated {
            r#" fill-opacity="0.55""#
        } else {
            ""
        };
        // A bar that spans a stop is drawn in pieces, with the stop left as a gap.
        let mut pieces = vec![(start, start + dur)];
        for &(from, to) in &m.stopped {
            pieces = pieces
                .into_iter()
                .flat_map(|(a, b)| {
                    if to <= a || from >= b {
                        vec![(a, b)]
                    } else {
                        [(a, from), (to, b)]
                            .into_iter()
                            .filter(|(p, q)| q > p)
                            .collect()
                    }
                })
                .collect();
        }
        if pieces.is_empty() {
            pieces.push((start, start));
        }
        for (a, b) in pieces {
            let x0 = x(a);
            let w = (x(b) - x0).max(2.0);
            let _ = writeln!(
                o,
                r##"<rect class="bar {}" x="{x0:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" rx="3" fill="{fill}"{stroke}{opacity}><title>{} — {}{}: {} (budget {})</title></rect>"##,
                s.status.as_str(),
                y + 5.0,
                row_h - 10.0,
                esc(&s.id),
                esc(s.status.words()),
                match (waits, s.manual) {
                    (true, _) => " (human wait)",
                    (false, true) => " (manual task: work)",
                    (false, false) => "",
                },
                d(dur),
                d(s.budget_ms)
            );
        }
        // The budget, as a tick where it runs out; one that runs out past the axis is not
        // drawn at the edge as if it ran out there, but said to lie beyond.
        let bx = x(start + s.budget_ms);
        if !beyond(s) {
            let _ = writeln!(
                o,
                r##"<line class="budget" x1="{bx:.1}" y1="{:.1}" x2="{bx:.1}" y2="{:.1}" stroke="#222" stroke-width="2"/>"##,
                y + 2.0,
                y + row_h - 2.0
            );
        } else {
            let _ = writeln!(
                o,
                r##"<text class="budget-beyond" x="{:.1}" y="{:.1}" font-size="10" fill="#555">budget ends beyond the axis →<title>the budget of {} runs out at +{}, past the end of the chart</title></text>"##,
                edge + 6.0,
                y + row_h * 0.65,
                d(s.budget_ms),
                d(start + s.budget_ms)
            );
        }
    }
    if rto_on_chart {
        let rx = x(m.rto_ms);
        let _ = writeln!(
            o,
            r##"<line class="rto" x1="{rx:.1}" y1="{:.1}" x2="{rx:.1}" y2="{:.1}" stroke="#d0342c" stroke-width="2" stroke-dasharray="6 4"/><text x="{rx:.1}" y="{:.1}" text-anchor="middle" fill="#d0342c">RTO {}</text>"##,
            top - 6.0,
            height - 24.0,
            top - 10.0,
            d(m.rto_ms)
        );
    } else {
        let _ = writeln!(
            o,
            r##"<text class="rto" x="{:.1}" y="{:.1}" text-anchor="end" fill="#d0342c">RTO {} →</text>"##,
            label_w + chart_w,
            top - 10.0,
            d(m.rto_ms)
        );
    }
    o.push_str("</svg>");
    o
}

/// The smallest round interval (100 ms, ..., 1 s, 2 s, 5 s, ..., 30 m, 1 h, ...) that fits
/// `span_ms` in at most eight ticks.
fn tick_interval(span_ms: u64) -> u64 {
    const ROUND_MS: [u64; 20] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
        600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000, 21_600_000, 43_200_000,
    ];
    ROUND_MS
        .into_iter()
        .find(|step| span_ms / step <= 8)
        .unwrap_or(86_400_000)
}

#[cfg(test)]
mod tests {
    use super::tick_interval;

    #[test]
    fn ticks_fall_on_round_intervals() {
        assert_eq!(tick_interval(4 * 3_600_000), 1_800_000);
        assert_eq!(tick_interval(1_800), 500);
        assert_eq!(tick_interval(90_000), 15_000);
    }
}
