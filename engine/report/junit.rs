//! The JUnit XML report, for CI systems that run drills: from the [`RunReport`], written by
//! `quick-junit` as nextest writes its own, so that the XML is well formed by construction.

use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite, XmlString,
};

use super::RtoVerdict;
use super::model::{RunReport, StepProgress, StepReport};
use super::words::{REHEARSED, d};
use crate::journal::StepStatus;
use crate::ui::visible::visible;

/// Text for the XML: control characters made visible, as on the terminal (XML allows most of
/// them nowhere, and `quick-junit` would drop them silently).
fn x(s: &str) -> XmlString {
    XmlString::new(visible(s))
}

fn secs(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// JUnit XML: one testsuite for the run, one testcase per step and one for the RTO, so that a
/// CI system running drills goes red when the run missed its RTO or did not recover. Failed
/// steps and budget breaches are failures; skipped and not-run steps are skipped; a step that
/// failed with `on_failure: continue` passes, saying so, as the run it did not stop.
pub fn junit(m: &RunReport) -> String {
    let mut suite = TestSuite::new(x(&format!("{} ({})", m.scenario, m.mode.as_str())));
    suite.set_time(secs(m.elapsed_ms));
    if let Some(t) = m.started_at {
        // To the second, as the other reports say when the run started.
        suite.set_timestamp(t - Duration::from_nanos(u64::from(t.timestamp_subsec_nanos())));
    }
    let rto_s = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
    suite.add_properties(
        [
            ("run_id", m.run_id.clone()),
            ("rto_target_s", rto_s(m.rto_ms)),
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
        .chain(m.recovery_ms.map(|r| ("recovery_s", rto_s(r))))
        .chain(m.observation_ms.map(|o| ("observation_s", rto_s(o))))
        .map(|(k, v)| Property::new(k, x(&v))),
    );
    let classname = x(&format!("runbook.{}", m.scenario));
    for s in &m.steps {
        let mut case = TestCase::new(x(&s.id), step_status(s));
        case.set_classname(classname.clone())
            .set_time(secs(s.shown_ms.unwrap_or(0)));
        if s.continued {
            case.set_system_out(x(&format!(
                "{}, continued (on_failure: continue): {}",
                s.status.as_str(),
                s.error.as_deref().unwrap_or("the run went on without it")
            )));
        } else if s.rehearsal {
            case.set_system_out(x(&format!("{}, {REHEARSED}", s.status.as_str())));
        }
        suite.add_test_case(case);
    }
    // The run's own verdict: green only for a recovery within the target.
    let rto_status = match &m.rto {
        RtoVerdict::Met { .. } => TestCaseStatus::success(),
        // A run that has not finished has not recovered: not green on a dashboard.
        RtoVerdict::Missed { .. } | RtoVerdict::NotRecovered { .. } | RtoVerdict::Open { .. } => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(x(&m.rto.sentence())).set_type(
                if matches!(m.rto, RtoVerdict::Missed { .. }) {
                    "rto_missed"
                } else {
                    "not_recovered"
                },
            );
            status
        }
    };
    let mut rto = TestCase::new("RTO", rto_status);
    // With `rto_ends_at`, the RTO's time is the recovery's, not the observation's after it.
    rto.set_classname(classname)
        .set_time(secs(m.recovery_ms.unwrap_or(m.elapsed_ms)));
    suite.add_test_case(rto);
    let mut report = Report::new("runbook");
    report.set_time(secs(m.elapsed_ms));
    report.add_test_suite(suite);
    // Into memory: the writer cannot fail, and quick-xml escapes what it writes.
    report.to_string().unwrap_or_default()
}

/// A step as a test: failed (or cut short) unless the run went on without it, a failure too
/// when it breached its budget, skipped when it did not run or did not finish.
fn step_status(s: &StepReport) -> TestCaseStatus {
    let step_failed = !s.continued
        && matches!(
            s.status,
            StepProgress::Ended(
                StepStatus::Failed | StepStatus::TimedOut | StepStatus::Interrupted
            )
        );
    if step_failed {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status
            .set_message(format!("step {}", s.status.as_str()))
            .set_type(s.status.as_str());
        if let Some(error) = &s.error {
            status.set_description(x(error));
        }
        status
    } else if s.breached {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status
            .set_message(format!(
                "took {} against a budget of {}",
                d(s.shown_ms.unwrap_or(0)),
                d(s.budget_ms)
            ))
            .set_type("budget_breached");
        status
    } else if not_run(s.status) {
        let mut status = TestCaseStatus::skipped();
        status.set_message(s.status.as_str());
        // Why, in words: its condition and the values it saw, the need that failed.
        if let Some(why) = &s.why_not_run {
            status.set_description(x(why));
        }
        status
    } else if unfinished(s.status) {
        // Not passed: a gate nobody answered, a step the stop cut short.
        let mut status = TestCaseStatus::skipped();
        status.set_message(format!("not finished: {}", s.status.words()));
        status
    } else {
        TestCaseStatus::success()
    }
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
