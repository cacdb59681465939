//! The Markdown report: the post-incident review's draft, from the [`RunReport`].

use std::fmt::Write;

use super::RtoVerdict;
use super::model::{RunReport, StepProgress, StepReport};
use super::words::{STEP_HEADERS, d};
use crate::journal::StepStatus;
use crate::ui::visible::visible;

/// Text for a Markdown table cell or list item; control characters made visible, as on the
/// terminal (a step's output reaches the report in prompts, outputs and errors).
fn md_escape(s: &str) -> String {
    visible(s).replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(m: &RunReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}: {} run report\n", m.scenario, m.mode.as_str());
    let _ = writeln!(o, "| | |\n|---|---|");
    for (k, v) in m.summary() {
        let _ = writeln!(o, "| {k} | {} |", md_escape(&v));
    }
    let _ = writeln!(o, "\n## Steps\n");
    let _ = writeln!(o, "| {} |", STEP_HEADERS.join(" | "));
    let _ = writeln!(o, "|{}", "---|".repeat(STEP_HEADERS.len()));
    for s in &m.steps {
        let cells: Vec<String> = m.step_cells(s).iter().map(|c| md_escape(c)).collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(
        o,
        "\n`*` on the critical path as it ran; `~` an estimate (the step did not run in this mode)."
    );
    let _ = writeln!(
        o,
        "\n## Critical path, as it ran\n\n{}",
        if m.critical_path.is_empty() {
            "-".to_owned()
        } else {
            m.critical_path.join(" → ")
        }
    );
    for (title, items) in m.lists() {
        let _ = writeln!(o, "\n## {title}\n");
        if items.is_empty() {
            let _ = writeln!(o, "None.");
        }
        for i in items {
            let _ = writeln!(o, "- {}", md_escape(i));
        }
    }
    let failed: Vec<&StepReport> = m.steps.iter().filter(|s| s.status.failed()).collect();
    let _ = writeln!(o, "\n## Post-incident review\n");
    let _ = writeln!(
        o,
        "Hold the review within 24 hours of resolution, with every stakeholder present.\n"
    );
    let _ = writeln!(o, "### Timeline of events\n");
    for (at, line) in &m.lines.timeline {
        let _ = writeln!(o, "- {at} {}", md_escape(line));
    }
    let _ = writeln!(o, "\n### Actions taken\n");
    for s in m
        .steps
        .iter()
        .filter(|s| s.status == StepProgress::Ended(StepStatus::Succeeded))
    {
        let _ = writeln!(o, "- {} (`{}`)", md_escape(&s.title), s.id);
    }
    let _ = writeln!(o, "\n### Root cause\n\n_To be written by the review._");
    if !failed.is_empty() {
        let _ = writeln!(o, "\nSteps that failed in this run:");
        for s in failed {
            let _ = writeln!(
                o,
                "- `{}`{}: {}",
                s.id,
                if s.continued {
                    " (failed, continued: the run went on without it)"
                } else {
                    ""
                },
                md_escape(s.error.as_deref().unwrap_or(s.status.words()))
            );
        }
    }
    let _ = writeln!(o, "\n### Lessons learned\n\n_To be written by the review._");
    let _ = writeln!(o, "\n### Action items\n");
    let mut any = false;
    for s in m.steps.iter().filter(|s| s.breached) {
        any = true;
        let _ = writeln!(
            o,
            "- [ ] `{}` overran its budget of {}: revisit the budget or the procedure",
            s.id,
            d(s.budget_ms)
        );
    }
    // A failed run's lesson is its failure, not its critical path.
    if matches!(m.rto, RtoVerdict::Missed { .. }) {
        any = true;
        let _ = writeln!(
            o,
            "- [ ] the RTO target of {} was missed: shorten the critical path ({})",
            d(m.rto_ms),
            m.critical_path.join(" → ")
        );
    }
    if !any {
        let _ = writeln!(o, "- [ ] ");
    }
    o
}
