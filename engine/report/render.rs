//! The human reports of one run — Markdown for the post-incident review, self-contained HTML
//! with an SVG Gantt chart for the meeting, JUnit XML for CI systems that run drills — all from
//! one [`Model`] built from the journal.

use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{
    RtoVerdict, actual_critical_path, continued, elapsed_ms, projected_p90_ms, projected_rto_ms,
    rto_verdict, run_status, step_status,
};
use crate::exec::mask::visible;
use crate::journal::describe::{
    describe, escalation_words, notify_failure_words, status_words, stop_words,
};
use crate::journal::*;
use crate::units::fmt_duration;

fn d(ms: u64) -> String {
    fmt_duration(Duration::from_millis(ms))
}

fn utc(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

/// One step's row.
#[derive(Clone, Debug)]
pub struct StepRow {
    pub id: String,
    pub title: String,
    pub status: String,
    pub gate: bool,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub budget_ms: u64,
    pub breached: bool,
    pub attempts: u32,
    pub approved_by: Vec<String>,
    pub wait_ms: Option<u64>,
    pub estimated: bool,
    pub critical: bool,
    pub error: Option<String>,
    /// Failed with `on_failure: continue`: the run went on without it.
    pub continued: bool,
    /// A step a drill mocks that this rehearsal ran for real.
    pub rehearsal: bool,
    /// With `rto_ends_at`: a step of the observation period (not upstream of it).
    pub observation: bool,
}

/// Everything a report shows, computed once.
pub struct Model {
    pub run_id: String,
    pub scenario: String,
    pub title: String,
    pub mode: String,
    pub status: String,
    pub operator: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub elapsed_ms: u64,
    pub rto_ms: u64,
    pub rto_met: Option<bool>,
    pub rto: RtoVerdict,
    pub projected_ms: Option<u64>,
    /// Drills: the plan's simulated P90.
    pub projected_p90_ms: Option<u64>,
    pub rpo_ms: Option<u64>,
    pub rpo_achieved_ms: Option<u64>,
    pub machine_ms: u64,
    pub human_ms: u64,
    pub runbook: String,
    pub sha256: String,
    pub steps: Vec<StepRow>,
    pub critical_path: Vec<String>,
    pub approvals: Vec<String>,
    pub escalations: Vec<String>,
    pub breaches: Vec<String>,
    pub retries: Vec<String>,
    pub interruptions: Vec<String>,
    pub timeline: Vec<(String, String)>,
    /// When the run was stopped (run clock, from, to): from its last record before a resume to
    /// the resume. Nothing ran then, whatever a bar that spans it would suggest.
    pub stopped: Vec<(u64, u64)>,
    /// A drill in a rehearsal environment: the steps a drill mocks ran for real.
    pub rehearsal: bool,
    /// With `rto_ends_at`: that step, when it succeeded (the recovery time), and the
    /// observation after it.
    pub rto_ends_at: Option<String>,
    pub recovery_ms: Option<u64>,
    pub observation_ms: Option<u64>,
}

impl Model {
    pub fn new(state: &RunState, records: &[Record]) -> Model {
        let started = state.started.clone().unwrap_or_default();
        let elapsed = elapsed_ms(state);
        let critical = actual_critical_path(state);
        let observation = super::observation_steps(state);
        let steps: Vec<StepRow> = state
            .steps
            .iter()
            .map(|s| {
                let start = s.started_ms.or(s.requested_ms);
                let dur = if s.gate {
                    s.wait_ms.or(s.duration_ms(elapsed))
                } else {
                    s.duration_ms(elapsed)
                };
                StepRow {
                    id: s.id.clone(),
                    title: s.title.clone(),
                    status: step_status(s).to_owned(),
                    gate: s.gate,
                    start_ms: start,
                    end_ms: s.finished_ms,
                    // A mocked or skipped step shows what it stands for: its estimate.
                    duration_ms: if s.estimated {
                        s.simulated_ms
                    } else if s.status == Some(StepStatus::NotRun) {
                        None
                    } else {
                        dur
                    },
                    budget_ms: s.budget_ms,
                    breached: s.breached,
                    attempts: s.attempts,
                    approved_by: s.approved_by.clone(),
                    wait_ms: s.wait_ms,
                    estimated: s.estimated,
                    critical: critical.contains(&s.id),
                    error: s.error.clone(),
                    continued: continued(state, s),
                    rehearsal: super::ran_for_real_in_rehearsal(s),
                    observation: observation.contains(&s.id),
                }
            })
            .collect();
        let machine_ms = steps
            .iter()
            .filter(|s| !s.gate && !s.estimated)
            .filter_map(|s| s.duration_ms)
            .sum();
        let mut approvals = Vec::new();
        let mut retries = Vec::new();
        let mut timeline = Vec::new();
        for r in records {
            let at = format!("{} (+{})", r.at.format("%H:%M:%S"), d(r.elapsed_ms));
            match &r.event {
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
                    status_words(f.status.as_str()),
                    d(r.elapsed_ms)
                )),
                _ => {}
            }
            if let Some(line) = describe(r, false, started.rto_ms) {
                timeline.push((at, line));
            }
        }
        Model {
            run_id: started.run_id.clone(),
            scenario: started.scenario.clone(),
            title: started.title.clone(),
            mode: state.mode().as_str().to_owned(),
            status: run_status(state).to_owned(),
            operator: started.operator.clone(),
            started_at: state.started_at,
            ended_at: state.finished_at.or(state.last_at),
            elapsed_ms: elapsed,
            rto_ms: started.rto_ms,
            rto_met: rto_verdict(state).met(),
            rto: rto_verdict(state),
            rpo_ms: started.rpo_ms,
            rpo_achieved_ms: super::rpo_achieved_ms(state),
            projected_ms: if state.mode() == Mode::Real {
                None
            } else {
                projected_rto_ms(state)
            },
            projected_p90_ms: projected_p90_ms(state),
            machine_ms,
            human_ms: state.human_wait_ms(),
            runbook: started.runbook.clone(),
            sha256: started.runbook_sha256.clone(),
            steps,
            critical_path: critical,
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
            retries,
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
            timeline,
            stopped: state
                .resumes
                .iter()
                .map(|(at, r)| (at.saturating_sub(r.downtime_ms), *at))
                .filter(|(from, to)| to > from)
                .collect(),
            rehearsal: super::is_rehearsal(state),
            rto_ends_at: super::rto_ends_at(state).map(str::to_owned),
            recovery_ms: super::recovery_ms(state),
            observation_ms: super::observation_ms(state),
        }
    }

    /// The sections that are lists, in report order.
    fn lists(&self) -> [(&'static str, &Vec<String>); 5] {
        [
            ("Approvals", &self.approvals),
            ("Escalations", &self.escalations),
            ("Budget breaches", &self.breaches),
            ("Retries", &self.retries),
            ("Interruptions and resumes", &self.interruptions),
        ]
    }

    pub fn verdict(&self) -> String {
        self.rto.sentence()
    }

    fn summary(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("Run", self.run_id.clone()),
            ("Scenario", format!("{} — {}", self.scenario, self.title)),
            (
                "Mode",
                if self.rehearsal {
                    format!(
                        "{}, rehearsal: in a rehearsal environment, the steps a drill mocks ran for real",
                        self.mode
                    )
                } else {
                    self.mode.clone()
                },
            ),
            ("Status", self.status.clone()),
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
        let continued: Vec<&str> = self
            .steps
            .iter()
            .filter(|s| s.continued)
            .map(|s| s.id.as_str())
            .collect();
        if !continued.is_empty() {
            v.push(("Failed, continued", continued.join(", ")));
        }
        match (self.projected_ms, self.projected_p90_ms) {
            // A drill runs at drill speed: what it took says little of a real run.
            (Some(p), Some(p90)) if self.mode == Mode::Drill.as_str() => v.push((
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
                    if a <= t { "met" } else { "MISSED" },
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
        v.push(("Machine time", d(self.machine_ms)));
        v.push(("Human wait", d(self.human_ms)));
        v.push((
            "Runbook",
            format!("{} (sha256 {})", self.runbook, self.sha256),
        ));
        v
    }

    fn step_cells(&self, s: &StepRow) -> [String; 10] {
        let delta = match s.duration_ms {
            Some(dur) if dur >= s.budget_ms => format!("+{}", d(dur - s.budget_ms)),
            Some(dur) => format!("-{}", d(s.budget_ms - dur)),
            None => "-".into(),
        };
        [
            format!(
                "{}{}{}",
                s.id,
                if s.critical { " *" } else { "" },
                if s.observation { " (observation)" } else { "" }
            ),
            match (s.continued, s.rehearsal) {
                (true, _) => format!("{}, continued", status_words(&s.status)),
                (false, true) => format!("{}, {REHEARSED}", status_words(&s.status)),
                (false, false) => status_words(&s.status).to_owned(),
            },
            s.start_ms
                .map(|t| format!("+{}", d(t)))
                .unwrap_or_else(|| "-".into()),
            s.duration_ms
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
            s.approved_by.join(", "),
            s.wait_ms.map(d).unwrap_or_default(),
        ]
    }
}

/// How every report marks a step a drill mocks that a rehearsal ran.
pub const REHEARSED: &str = "run for real (rehearsal)";

const STEP_HEADERS: [&str; 10] = [
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

/// Text for a Markdown table cell or list item; control characters made visible, as on the
/// terminal (a step's output reaches the report in prompts, outputs and errors).
fn md_escape(s: &str) -> String {
    visible(s).replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(m: &Model) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}: {} run report\n", m.scenario, m.mode);
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
    let failed: Vec<&StepRow> = m
        .steps
        .iter()
        .filter(|s| matches!(s.status.as_str(), "failed" | "timed_out"))
        .collect();
    let _ = writeln!(o, "\n## Post-incident review\n");
    let _ = writeln!(
        o,
        "Hold the review within 24 hours of resolution, with every stakeholder present.\n"
    );
    let _ = writeln!(o, "### Timeline of events\n");
    for (at, line) in &m.timeline {
        let _ = writeln!(o, "- {at} {}", md_escape(line));
    }
    let _ = writeln!(o, "\n### Actions taken\n");
    for s in m.steps.iter().filter(|s| s.status == "succeeded") {
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
                md_escape(s.error.as_deref().unwrap_or(status_words(&s.status)))
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

/// Text for HTML (and JUnit's XML, where most control characters are not allowed at all):
/// control characters made visible, as on the terminal.
fn esc(s: &str) -> String {
    visible(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(status: &str) -> &'static str {
    match status {
        "succeeded" => "#2e9d4f",
        "failed" | "timed_out" => "#d0342c",
        "simulated" => "#7fa7d9",
        "skipped" | "not_run" => "#b0b0b0",
        "interrupted" => "#e39b20",
        "running" => "#3b7dd8",
        "waiting" => "#8a5cc7",
        _ => "#999999",
    }
}

/// An SVG Gantt chart: a bar per step coloured by status, gate waits drawn apart (hatched,
/// purple), each budget marked, the RTO target as a line, the critical path outlined.
pub fn gantt(m: &Model) -> String {
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
                .map(|s| s.start_ms.unwrap_or(0) + s.duration_ms.unwrap_or(0))
                .max()
                .unwrap_or(0),
        )
        .max(1);
    let rto_on_chart = m.rto_ms <= ran.saturating_mul(3);
    let horizon = if rto_on_chart { ran.max(m.rto_ms) } else { ran } as f64 * 1.08;
    // A budget that runs out past the axis is said in words to the right of the chart, in room
    // taken from it.
    let beyond = |s: &StepRow| {
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
        let dur = s.duration_ms.unwrap_or(0);
        let fill = if s.gate {
            "url(#wait)".to_owned()
        } else {
            color(&s.status).to_owned()
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
                esc(&s.status),
                y + 5.0,
                row_h - 10.0,
                esc(&s.id),
                esc(status_words(&s.status)),
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

pub fn html(m: &Model) -> String {
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
        mode = esc(&m.mode),
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
    for (at, line) in &m.timeline {
        let _ = write!(o, "<li>{} {}</li>", esc(at), esc(line));
    }
    o.push_str("</ul>\n<h3>Actions taken</h3><ul>");
    for s in m.steps.iter().filter(|s| s.status == "succeeded") {
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

/// JUnit XML: one testsuite for the run, one testcase per step and one for the RTO, so that a
/// CI system running drills goes red when the run missed its RTO or did not recover. Failed
/// steps and budget breaches are failures; skipped and not-run steps are skipped; a step that
/// failed with `on_failure: continue` passes, saying so, as the run it did not stop.
pub fn junit(m: &Model) -> String {
    let step_failed = |s: &StepRow| {
        !s.continued && matches!(s.status.as_str(), "failed" | "timed_out" | "interrupted")
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
                && matches!(
                    s.status.as_str(),
                    "skipped"
                        | "not_run"
                        | "simulated"
                        | "pending"
                        | "waiting"
                        | "running"
                        | "unknown"
                )
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
        esc(&format!("{} ({})", m.scenario, m.mode)),
        m.elapsed_ms as f64 / 1000.0,
        utc(m.started_at)
    );
    let _ = writeln!(o, "    <properties>");
    for (k, v) in [
        ("run_id", m.run_id.clone()),
        ("rto_target_s", format!("{:.3}", m.rto_ms as f64 / 1000.0)),
        (
            "rto_met",
            m.rto_met
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
        let time = s.duration_ms.unwrap_or(0) as f64 / 1000.0;
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
                esc(&format!("step {}", s.status)),
                esc(&s.status),
                esc(s.error.as_deref().unwrap_or(""))
            );
        } else if s.breached {
            let _ = writeln!(
                body,
                "      <failure message=\"{}\" type=\"budget_breached\"/>",
                esc(&format!(
                    "took {} against a budget of {}",
                    d(s.duration_ms.unwrap_or(0)),
                    d(s.budget_ms)
                ))
            );
        } else if matches!(
            s.status.as_str(),
            "skipped" | "not_run" | "simulated" | "pending"
        ) {
            let _ = writeln!(body, "      <skipped message=\"{}\"/>", esc(&s.status));
        } else if matches!(
            s.status.as_str(),
            "waiting" | "running" | "interrupted" | "unknown"
        ) {
            // Not passed: a gate nobody answered, a step the stop cut short.
            let _ = writeln!(
                body,
                "      <skipped message=\"{}\"/>",
                esc(&format!("not finished: {}", status_words(&s.status)))
            );
        }
        if s.rehearsal && !s.continued {
            let _ = writeln!(
                body,
                "      <system-out>{}</system-out>",
                esc(&format!("{}, {REHEARSED}", s.status))
            );
        }
        if s.continued {
            let _ = writeln!(
                body,
                "      <system-out>{}</system-out>",
                esc(&format!(
                    "{}, continued (on_failure: continue): {}",
                    s.status,
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
