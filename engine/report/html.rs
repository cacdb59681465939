//! The HTML report: self-contained, with an SVG Gantt chart of the run, for the review
//! meeting; from the [`RunReport`].

use std::fmt::Write;

use super::RtoVerdict;
use super::model::{RunReport, StepProgress, StepReport};
use super::words::{STEP_HEADERS, d};
use crate::exec::mask::visible;
use crate::journal::StepStatus;

/// Text for HTML: control characters made visible, as on the terminal.
fn esc(s: &str) -> String {
    visible(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

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
        let fill = if s.gate {
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
                if s.gate { " (human wait)" } else { "" },
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

pub fn html(m: &RunReport) -> String {
    let mut o = String::new();
    let verdict_class = match m.rto {
        RtoVerdict::Met { .. } => "ok",
        RtoVerdict::Missed { .. } | RtoVerdict::NotRecovered { .. } => "bad",
        RtoVerdict::Open { .. } => "open",
    };
    let _ = write!(
        o,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{scenario} {mode} run report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; color: #222; }}
h1 {{ font-size: 1.6rem; }} h2 {{ font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9rem; }}
td, th {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; }} th {{ background: #f4f4f4; }}
.verdict {{ font-size: 1.3rem; padding: 0.6rem 1rem; border-radius: 6px; display: inline-block; }}
.ok {{ background: #e3f4e8; color: #1d6b35; }} .bad {{ background: #fbe4e2; color: #9b231d; }} .open {{ background: #eef; }}
.legend span {{ display: inline-block; margin-right: 1rem; }} .sw {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }}
ul.timeline {{ font-family: ui-monospace, monospace; font-size: 0.85rem; }}
</style></head><body>
<h1>{scenario}: {mode} run report</h1>
<p class="verdict {verdict_class}">{verdict}</p>
"#,
        scenario = esc(&m.scenario),
        mode = esc(m.mode.as_str()),
        verdict = esc(&m.verdict()),
    );
    o.push_str("<table class=\"summary\">");
    for (k, v) in m.summary() {
        let _ = write!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    o.push_str("</table>\n<h2>Timeline</h2>\n");
    o.push_str(&gantt(m));
    o.push_str("\n<p class=\"legend\">");
    for (name, c) in [
        ("succeeded", "#2e9d4f"),
        ("failed / timed out", "#d0342c"),
        ("interrupted", "#e39b20"),
        ("estimate (did not run)", "#7fa7d9"),
        ("skipped / not run", "#b0b0b0"),
        ("human wait at a gate", "#8a5cc7"),
        ("run stopped (nothing ran)", "#f0c987"),
    ] {
        let _ = write!(
            o,
            "<span><i class=\"sw\" style=\"background:{c}\"></i>{name}</span>"
        );
    }
    o.push_str("<span>| budget end &nbsp; <b style=\"color:#d0342c\">- -</b> RTO target &nbsp; <b>outlined</b>: critical path</span></p>\n");
    o.push_str("<h2>Steps</h2>\n<table class=\"steps\"><tr>");
    for h in STEP_HEADERS {
        let _ = write!(o, "<th>{h}</th>");
    }
    o.push_str("</tr>\n");
    for s in &m.steps {
        o.push_str("<tr>");
        for c in m.step_cells(s) {
            let _ = write!(o, "<td>{}</td>", esc(&c));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
    let _ = writeln!(
        o,
        "<h2>Critical path, as it ran</h2><p>{}</p>",
        esc(&m.critical_path.join(" → "))
    );
    for (title, items) in m.lists() {
        let _ = write!(o, "<h2>{title}</h2>");
        if items.is_empty() {
            o.push_str("<p>None.</p>");
        } else {
            o.push_str("<ul>");
            for i in items {
                let _ = write!(o, "<li>{}</li>", esc(i));
            }
            o.push_str("</ul>");
        }
        o.push('\n');
    }
    o.push_str("<h2>Post-incident review</h2>\n<h3>Timeline of events</h3><ul class=\"timeline\">");
    for (at, line) in &m.lines.timeline {
        let _ = write!(o, "<li>{} {}</li>", esc(at), esc(line));
    }
    o.push_str("</ul>\n<h3>Actions taken</h3><ul>");
    for s in m
        .steps
        .iter()
        .filter(|s| s.status == StepProgress::Ended(StepStatus::Succeeded))
    {
        let _ = write!(
            o,
            "<li>{} (<code>{}</code>)</li>",
            esc(&s.title),
            esc(&s.id)
        );
    }
    o.push_str("</ul>\n<h3>Root cause</h3><p><em>To be written by the review.</em></p>\n<h3>Lessons learned</h3><p><em>To be written by the review.</em></p>\n<h3>Action items</h3><ul>");
    for s in m.steps.iter().filter(|s| s.breached) {
        let _ = write!(
            o,
            "<li><code>{}</code> overran its budget of {}: revisit the budget or the procedure</li>",
            esc(&s.id),
            d(s.budget_ms)
        );
    }
    o.push_str("</ul>\n</body></html>\n");
    o
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
