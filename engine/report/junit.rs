//! The JUnit XML report, for CI systems that run drills: from the [`RunReport`].

use std::fmt::Write;

use super::RtoVerdict;
use super::html::esc;
use super::model::{RunReport, StepProgress, StepReport};
use super::words::{REHEARSED, d, utc};
use crate::journal::StepStatus;

/// JUnit XML: one testsuite for the run, one testcase per step and one for the RTO, so that a
/// CI system running drills goes red when the run missed its RTO or did not recover. Failed
/// steps and budget breaches are failures; skipped and not-run steps are skipped; a step that
/// failed with `on_failure: continue` passes, saying so, as the run it did not stop.
pub fn junit(m: &RunReport) -> String {
    let step_failed = |s: &StepReport| {
        !s.continued
            && matches!(
                s.status,
                StepProgress::Ended(
                    StepStatus::Failed | StepStatus::TimedOut | StepStatus::Interrupted
                )
            )
    };
    let rto_failed = !matches!(m.rto, RtoVerdict::Met { .. });
    let failures = m
        .steps
        .iter()
        .filter(|s| s.breached || step_failed(s))
        .count()
        + usize::from(rto_failed);
    let skipped = m
        .steps
        .iter()
        .filter(|s| {
            !step_failed(s)
                && !s.breached
                && (not_run(s.status) || unfinished(s.status))
                && s.status != StepProgress::Ended(StepStatus::Interrupted)
        })
        .count();
    let tests = m.steps.len() + 1;
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<testsuites name=\"runbook\" tests=\"{tests}\" failures=\"{failures}\" time=\"{:.3}\">",
        m.elapsed_ms as f64 / 1000.0
    );
    let _ = writeln!(
        o,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\" time=\"{:.3}\" timestamp=\"{}\">",
        esc(&format!("{} ({})", m.scenario, m.mode.as_str())),
        m.elapsed_ms as f64 / 1000.0,
        utc(m.started_at)
    );
    let _ = writeln!(o, "    <properties>");
    for (k, v) in [
        ("run_id", m.run_id.clone()),
        ("rto_target_s", format!("{:.3}", m.rto_ms as f64 / 1000.0)),
        (
            "rto_met",
            m.rto
                .met()
                .map(|b| b.to_string())
                .unwrap_or_else(|| "unknown".into()),
        ),
        ("operator", m.operator.clone()),
        ("rehearsal", m.rehearsal.to_string()),
    ]
    .into_iter()
    .chain(m.rto_ends_at.clone().map(|at| ("rto_ends_at", at)))
    .chain(
        m.recovery_ms
            .map(|r| ("recovery_s", format!("{:.3}", r as f64 / 1000.0))),
    )
    .chain(
        m.observation_ms
            .map(|o| ("observation_s", format!("{:.3}", o as f64 / 1000.0))),
    ) {
        let _ = writeln!(o, "      <property name=\"{k}\" value=\"{}\"/>", esc(&v));
    }
    let _ = writeln!(o, "    </properties>");
    let classname = esc(&format!("runbook.{}", m.scenario));
    for s in &m.steps {
        let time = s.shown_ms.unwrap_or(0) as f64 / 1000.0;
        let _ = write!(
            o,
            "    <testcase classname=\"{classname}\" name=\"{}\" time=\"{time:.3}\"",
            esc(&s.id)
        );
        let mut body = String::new();
        if step_failed(s) {
            let _ = writeln!(
                body,
                "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                esc(&format!("step {}", s.status.as_str())),
                s.status.as_str(),
                esc(s.error.as_deref().unwrap_or(""))
            );
        } else if s.breached {
            let _ = writeln!(
                body,
                "      <failure message=\"{}\" type=\"budget_breached\"/>",
                esc(&format!(
                    "took {} against a budget of {}",
                    d(s.shown_ms.unwrap_or(0)),
                    d(s.budget_ms)
                ))
            );
        } else if not_run(s.status) {
            let _ = writeln!(body, "      <skipped message=\"{}\"/>", s.status.as_str());
        } else if unfinished(s.status) {
            // Not passed: a gate nobody answered, a step the stop cut short.
            let _ = writeln!(
                body,
                "      <skipped message=\"{}\"/>",
                esc(&format!("not finished: {}", s.status.words()))
            );
        }
        if s.rehearsal && !s.continued {
            let _ = writeln!(
                body,
                "      <system-out>{}</system-out>",
                esc(&format!("{}, {REHEARSED}", s.status.as_str()))
            );
        }
        if s.continued {
            let _ = writeln!(
                body,
                "      <system-out>{}</system-out>",
                esc(&format!(
                    "{}, continued (on_failure: continue): {}",
                    s.status.as_str(),
                    s.error.as_deref().unwrap_or("the run went on without it")
                ))
            );
        }
        if body.is_empty() {
            o.push_str("/>\n");
        } else {
            o.push_str(">\n");
            o.push_str(&body);
            o.push_str("    </testcase>\n");
        }
    }
    // The run's own verdict: green only for a recovery within the target.
    let verdict = m.rto.sentence();
    // With `rto_ends_at`, the RTO's time is the recovery's, not the observation's after it.
    let _ = write!(
        o,
        "    <testcase classname=\"{classname}\" name=\"RTO\" time=\"{:.3}\"",
        m.recovery_ms.unwrap_or(m.elapsed_ms) as f64 / 1000.0
    );
    match &m.rto {
        RtoVerdict::Met { .. } => o.push_str("/>\n"),
        // A run that has not finished has not recovered: not green on a dashboard.
        RtoVerdict::Missed { .. } | RtoVerdict::NotRecovered { .. } | RtoVerdict::Open { .. } => {
            let kind = if matches!(m.rto, RtoVerdict::Missed { .. }) {
                "rto_missed"
            } else {
                "not_recovered"
            };
            let _ = write!(
                o,
                ">\n      <failure message=\"{}\" type=\"{kind}\"/>\n    </testcase>\n",
                esc(&verdict)
            );
        }
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

/// Did not run, and was not meant to in this run: JUnit's skipped.
fn not_run(status: StepProgress) -> bool {
    matches!(
        status,
        StepProgress::Pending
            | StepProgress::Ended(StepStatus::Skipped | StepStatus::NotRun | StepStatus::Simulated)
    )
}

/// Started or asked, and cut short before its end: not passed, and not a failure of its own.
fn unfinished(status: StepProgress) -> bool {
    matches!(
        status,
        StepProgress::Waiting
            | StepProgress::Running
            | StepProgress::Ended(StepStatus::Interrupted | StepStatus::Unknown)
    )
}
