//! The HTML report: self-contained, with the SVG Gantt chart of [`gantt`](super::gantt),
//! for the review meeting; from the [`RunReport`].

use std::fmt::Write;

use super::RtoVerdict;
use super::model::{RunReport, StepProgress};
use super::words::{STEP_HEADERS, d};
use crate::journal::StepStatus;
use crate::ui::visible::visible;

/// Text for HTML: control characters made visible, as on the terminal.
pub(super) fn esc(s: &str) -> String {
    visible(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
    o.push_str(&super::gantt::gantt(m));
    o.push_str("\n<p class=\"legend\">");
    for (name, c) in [
        ("succeeded", "#2e9d4f"),
        ("failed / timed out", "#d0342c"),
        ("interrupted", "#e39b20"),
        ("estimate (did not run)", "#7fa7d9"),
        ("skipped / not run", "#b0b0b0"),
        (
            "human wait at a gate (a manual task is work: its status colour)",
            "#8a5cc7",
        ),
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
