//! The words the human reports share: the summary table, the step table's cells and the
//! run's events as sentences, so that Markdown and HTML say the same thing; each only marks
//! them up.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::model::{RunReport, StepReport};
use crate::journal::*;
use crate::ui::describe::{
    describe, escalation_words, notify_failure_words, status_words, stop_words,
};
use crate::units::fmt_duration;

pub(super) fn d(ms: u64) -> String {
    fmt_duration(Duration::from_millis(ms))
}

pub(super) fn utc(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

/// The run's events as the human reports list them: approvals, escalations, breaches, retries,
/// stops and resumes, and the timeline of every record.
#[derive(Clone, Debug, Default)]
pub struct EventLines {
    pub approvals: Vec<String>,
    pub escalations: Vec<String>,
    pub breaches: Vec<String>,
    pub retries: Vec<String>,
    pub interruptions: Vec<String>,
    /// (when, what): the wall clock with the run's clock, and the event in words.
    pub timeline: Vec<(String, String)>,
}

/// A `manual:` step done: who did it, in how long, and their note.
fn done_line(g: &ApprovalGranted) -> String {
    format!(
        "`{}` done by {} in {} ({} checklist items confirmed){}",
        g.step,
        g.by.join(" and "),
        d(g.wait_ms),
        g.items.as_ref().map_or(0, Vec::len),
        g.comment
            .as_ref()
            .map(|c| format!(": \"{c}\""))
            .unwrap_or_default(),
    )
}

impl EventLines {
    pub fn new(state: &RunState, records: &[Record], rto_ms: u64) -> EventLines {
        let mut approvals = Vec::new();
        let mut retries = Vec::new();
        let mut timeline = Vec::new();
        for r in records {
            let at = format!("{} (+{})", r.at.format("%H:%M:%S"), d(r.elapsed_ms));
            match &r.event {
                EventKind::ApprovalGranted(g) if g.items.is_some() => approvals.push(done_line(g)),
                EventKind::ApprovalGranted(g) if g.value.is_some() => approvals.push(format!(
                    "`{}` answered `{}` by {}{} after a wait of {}",
                    g.step,
                    g.value.as_deref().unwrap_or_default(),
                    g.by.join(" and "),
                    if g.auto {
                        " (its default: a dry-run or --yes)"
                    } else {
                        ""
                    },
                    d(g.wait_ms),
                )),
                EventKind::ApprovalGranted(g) => approvals.push(format!(
                    "`{}` approved by {}{} after a wait of {}{}",
                    g.step,
                    g.by.join(" and "),
                    if g.auto {
                        " (auto-approved with --yes)"
                    } else {
                        ""
                    },
                    d(g.wait_ms),
                    g.comment
                        .as_ref()
                        .map(|c| format!(": \"{c}\""))
                        .unwrap_or_default()
                )),
                EventKind::ApprovalDenied(g) => approvals.push(format!(
                    "`{}` DENIED by {} after {}{}",
                    g.step,
                    g.by,
                    d(g.wait_ms),
                    g.comment
                        .as_ref()
                        .map(|c| format!(": \"{c}\""))
                        .unwrap_or_default()
                )),
                EventKind::ApprovalRejected(x) => approvals.push(format!(
                    "`{}`: an answer was rejected: {}",
                    x.step, x.reason
                )),
                EventKind::ApprovalLate(x) => approvals.push(format!(
                    "`{}`: {} by {} came late ({}){}",
                    x.step,
                    if x.approve { "an approval" } else { "a denial" },
                    x.by,
                    x.reason,
                    x.comment
                        .as_ref()
                        .map(|c| format!(": \"{c}\""))
                        .unwrap_or_default()
                )),
                EventKind::ApprovalTimedOut(x) => approvals.push(format!(
                    "`{}`: nobody answered within {}; the run stopped",
                    x.step,
                    d(x.wait_ms)
                )),
                EventKind::StepFinished(f) if f.status == StepStatus::NotReady => {
                    retries.push(format!(
                        "`{}` poll attempt {} not ready at +{}; looked again",
                        f.step,
                        f.attempt,
                        d(r.elapsed_ms)
                    ))
                }
                EventKind::StepFinished(f) if f.will_retry => retries.push(format!(
                    "`{}` attempt {} {} at +{}; tried again",
                    f.step,
                    f.attempt,
                    status_words(f.status),
                    d(r.elapsed_ms)
                )),
                _ => {}
            }
            if let Some(line) = describe(r, false, rto_ms) {
                timeline.push((at, line));
            }
        }
        EventLines {
            approvals,
            escalations: state
                .escalations
                .iter()
                .map(|(at, e)| {
                    format!(
                        "+{} to `{}` ({}){}",
                        d(*at),
                        e.channel,
                        escalation_words(&e.reason),
                        match (e.ok, notify_failure_words(e)) {
                            (true, _) => String::new(),
                            (false, Some(how)) => format!(" — the notify command FAILED ({how})"),
                            (false, None) => " — the notify command FAILED".into(),
                        }
                    )
                })
                .collect(),
            breaches: state
                .breaches
                .iter()
                .map(|(at, b)| {
                    format!(
                        "`{}` went over its budget of {} at +{}",
                        b.step,
                        d(b.budget_ms),
                        d(*at)
                    )
                })
                .collect(),
            interruptions: state
                .interruptions
                .iter()
                .map(|(at, i)| format!("+{}: stopped ({})", d(*at), stop_words(&i.reason)))
                .chain(state.resumes.iter().map(|(at, r)| {
                    format!(
                        "+{}: resumed by {} after {} of downtime{}{}",
                        d(*at),
                        r.operator,
                        d(r.downtime_ms),
                        if r.adopted.is_empty() {
                            String::new()
                        } else {
                            format!("; adopted {}", r.adopted.join(", "))
                        },
                        if r.rerun.is_empty() {
                            String::new()
                        } else {
                            format!("; re-ran {}", r.rerun.join(", "))
                        }
                    )
                }))
                .collect(),
            retries,
            timeline,
        }
    }
}

impl RunReport {
    /// The sections that are lists, in report order.
    pub(super) fn lists(&self) -> [(&'static str, &Vec<String>); 5] {
        let l = &self.lines;
        [
            ("Approvals", &l.approvals),
            ("Escalations", &l.escalations),
            ("Budget breaches", &l.breaches),
            ("Retries", &l.retries),
            ("Interruptions and resumes", &l.interruptions),
        ]
    }

    pub fn verdict(&self) -> String {
        self.rto.sentence()
    }

    pub(super) fn summary(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("Run", self.run_id.clone()),
            ("Scenario", format!("{} — {}", self.scenario, self.title)),
            (
                "Mode",
                if self.rehearsal {
                    format!(
                        "{}, rehearsal: in a rehearsal environment, the steps a drill mocks ran for real",
                        self.mode.as_str()
                    )
                } else {
                    self.mode.as_str().to_owned()
                },
            ),
            ("Status", self.status.as_str().to_owned()),
            ("Operator", self.operator.clone()),
            ("Started (UTC)", utc(self.started_at)),
            ("Ended (UTC)", utc(self.ended_at)),
            ("RTO", self.verdict()),
        ];
        if let Some(at) = &self.rto_ends_at {
            v.push((
                "Recovery",
                match self.recovery_ms {
                    Some(r) => format!(
                        "service restored in {} when `{at}` succeeded (the RTO is measured there)",
                        d(r)
                    ),
                    None => format!("`{at}` (where the RTO is measured) has not succeeded"),
                },
            ));
            let steps: Vec<&str> = self
                .steps
                .iter()
                .filter(|s| s.observation)
                .map(|s| s.id.as_str())
                .collect();
            let steps = if steps.is_empty() {
                String::new()
            } else {
                format!(" ({})", steps.join(", "))
            };
            v.push((
                "Observation",
                match self.observation_ms {
                    Some(o) => format!("{} after service was restored{steps}", d(o)),
                    None => format!("after `{at}`{steps}"),
                },
            ));
        }
        let continued = self.continued();
        if !continued.is_empty() {
            v.push(("Failed, continued", continued.join(", ")));
        }
        match (self.projected_ms, self.projected_p90_ms) {
            // A drill runs at drill speed: what it took says little of a real run.
            (Some(p), Some(p90)) if self.mode == Mode::Drill => v.push((
                "Projected RTO",
                format!(
                    "the drill took {}; a real run projects {} (P90 {} from --simulate)",
                    d(self.elapsed_ms),
                    d(p),
                    d(p90)
                ),
            )),
            (Some(p), _) => v.push((
                "Projected RTO",
                format!(
                    "{} (measured durations where steps ran, estimates elsewhere)",
                    d(p)
                ),
            )),
            _ => {}
        }
        match (self.rpo_ms, self.rpo_achieved_ms) {
            (Some(t), Some(a)) => v.push((
                "RPO",
                format!(
                    "{}: the restored data is {} old against a {} target",
                    if self.rpo_met() == Some(true) {
                        "met"
                    } else {
                        "MISSED"
                    },
                    d(a),
                    d(t)
                ),
            )),
            (Some(t), None) => v.push((
                "RPO",
                format!("target {} (no step reported the recovery point)", d(t)),
            )),
            _ => {}
        }
        v.push(("Machine time", d(self.machine_shown_ms)));
        v.push(("Human wait", d(self.human_ms)));
        v.push((
            "Runbook",
            format!("{} (sha256 {})", self.runbook, self.sha256),
        ));
        v
    }

    pub(super) fn step_cells(&self, s: &StepReport) -> [String; 10] {
        let delta = match s.shown_ms {
            Some(dur) if dur >= s.budget_ms => format!("+{}", d(dur - s.budget_ms)),
            Some(dur) => format!("-{}", d(s.budget_ms - dur)),
            None => "-".into(),
        };
        [
            format!(
                "{}{}{}",
                s.id,
                if s.critical { " *" } else { "" },
                if s.finally {
                    " (finally)"
                } else if s.observation {
                    " (observation)"
                } else {
                    ""
                }
            ),
            match (s.continued, s.rehearsal) {
                // Why it did not run: a condition, a failed need, a drill.
                _ if s.why_not_run.is_some() => s.why_not_run.clone().unwrap_or_default(),
                _ if s.manual && s.status == super::model::StepProgress::Waiting => {
                    super::figures::MANUAL_IN_PROGRESS.to_owned()
                }
                (true, _) => format!("{}, continued", s.status.words()),
                (false, true) => format!("{}, {REHEARSED}", s.status.words()),
                (false, false) => s.status.words().to_owned(),
            },
            s.start_ms
                .map(|t| format!("+{}", d(t)))
                .unwrap_or_else(|| "-".into()),
            s.shown_ms
                .map(|t| format!("{}{}", if s.estimated { "~" } else { "" }, d(t)))
                .unwrap_or_else(|| "-".into()),
            d(s.budget_ms),
            delta,
            if s.breached { "yes".into() } else { "".into() },
            if s.gate {
                "-".into()
            } else {
                s.attempts.to_string()
            },
            if s.manual && !s.approved_by.is_empty() {
                format!("done by {}", s.approved_by.join(", "))
            } else {
                s.approved_by.join(", ")
            },
            // A manual task's time is its duration (work), not a wait.
            if s.manual {
                String::new()
            } else {
                s.wait_ms.map(d).unwrap_or_default()
            },
        ]
    }
}

/// How every report marks a step a drill mocks that a rehearsal ran.
pub const REHEARSED: &str = "run for real (rehearsal)";

pub(super) const STEP_HEADERS: [&str; 10] = [
    "Step",
    "Status",
    "Start",
    "Duration",
    "Budget",
    "Delta",
    "Breach",
    "Attempts",
    "Approved by",
    "Wait",
];
