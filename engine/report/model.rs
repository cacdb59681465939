//! The one model of a run's report: built once from the journal's replayed state (and, for the
//! human reports, its records), so that every form — JSON, Markdown, HTML, JUnit — shows the
//! same durations, statuses and verdicts. Renderers read it; they compute nothing.

use chrono::{DateTime, Utc};

use super::RtoVerdict;
use super::figures::{
    actual_critical_path, continued, elapsed_ms, failed_at, is_rehearsal, observation_ms,
    observation_steps, projected_p90_ms, projected_rto_ms, ran_for_real_in_rehearsal, recovery_ms,
    rpo_achieved_ms, rto_ends_at, rto_verdict,
};
use super::words::EventLines;
use crate::journal::*;

/// Where one step stands: its journaled end, or, before it, where the run left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepProgress {
    Pending,
    Running,
    /// A gate waiting for an answer.
    Waiting,
    Ended(StepStatus),
}

impl StepProgress {
    pub fn of(step: &StepRun) -> StepProgress {
        match step.status {
            Some(st) => StepProgress::Ended(st),
            None if step.waiting => StepProgress::Waiting,
            None if step.in_flight => StepProgress::Running,
            None => StepProgress::Pending,
        }
    }

    /// The wire word: the JSON report's `status`, a CSS class, JUnit's failure `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepProgress::Pending => "pending",
            StepProgress::Running => "running",
            StepProgress::Waiting => "waiting",
            StepProgress::Ended(st) => st.as_str(),
        }
    }

    /// For people: "timed out", "not run".
    pub fn words(self) -> &'static str {
        match self {
            StepProgress::Ended(st) => crate::ui::describe::status_words(st),
            live => live.as_str(),
        }
    }

    /// Failed or timed out: the step did its work and it did not work.
    pub fn failed(self) -> bool {
        matches!(
            self,
            StepProgress::Ended(StepStatus::Failed | StepStatus::TimedOut)
        )
    }
}

/// Where the run stands: its journaled end, or, before it, stopped (resumable) or running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunProgress {
    Running,
    /// Interrupted, or stopped at a gate, and not resumed since.
    Stopped,
    Ended(RunStatus),
}

impl RunProgress {
    pub fn of(state: &RunState) -> RunProgress {
        match &state.finished {
            Some(f) => RunProgress::Ended(f.status),
            None if !state.interruptions.is_empty()
                && state.interruptions.last().map(|i| i.0) >= state.resumes.last().map(|r| r.0) =>
            {
                RunProgress::Stopped
            }
            None => RunProgress::Running,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunProgress::Ended(RunStatus::Succeeded) => "succeeded",
            RunProgress::Ended(RunStatus::Failed) => "failed",
            RunProgress::Stopped => "stopped",
            RunProgress::Running => "running",
        }
    }
}

/// One step of the run, in plan order.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub id: String,
    pub title: String,
    pub status: StepProgress,
    pub gate: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// On the run's clock: when it started (a gate: when it was asked), and ended.
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    /// The JSON report's `duration_s`: first start to final finish on the run's clock (to the
    /// last event while it runs); a mocked or skipped step's estimate.
    pub duration_ms: Option<u64>,
    /// What the human reports show as its duration: a gate's wait rather than its span, nothing
    /// for a step that never ran (a step interrupted before a resume keeps its first start, and
    /// the JSON report has always counted that span), a mocked or skipped step's estimate.
    pub shown_ms: Option<u64>,
    pub budget_ms: u64,
    pub breached: bool,
    pub attempts: u32,
    pub approved_by: Vec<String>,
    /// An `input:` step: the value it was given.
    pub value: Option<String>,
    /// A `manual:` step done: the items confirmed and the note (who did it: `approved_by`).
    pub items: Option<Vec<String>>,
    pub note: Option<String>,
    pub wait_ms: Option<u64>,
    /// Mocked or skipped: it stands for its estimate and took no time on the run's clock.
    pub estimated: bool,
    /// On the critical path as it ran.
    pub critical: bool,
    pub error: Option<String>,
    /// Failed with `on_failure: continue`: the run went on without it.
    pub continued: bool,
    /// A step a drill mocks that this rehearsal ran for real.
    pub rehearsal: bool,
    /// With `rto_ends_at`: a step of the observation period (not upstream of it).
    pub observation: bool,
    /// Its `when:` as evaluated: what a skipped step was skipped on.
    pub condition: Option<crate::journal::ConditionSeen>,
    /// A step of `finally:`: cleanup, run once every other step had ended.
    pub finally: bool,
    /// A `manual:` step: a task a person does, timed as work (not a wait for a decision).
    pub manual: bool,
    /// A step that did not run: why, in words (its `when:` was false, a need failed, a
    /// drill skipped it); see [`super::skips`].
    pub why_not_run: Option<String>,
}

/// Everything a report shows, computed once.
pub struct RunReport {
    pub run_id: String,
    pub scenario: String,
    pub title: String,
    pub mode: Mode,
    pub status: RunProgress,
    pub operator: String,
    pub started_at: Option<DateTime<Utc>>,
    /// The run's end, or its last event for a run without one.
    pub ended_at: Option<DateTime<Utc>>,
    pub elapsed_ms: u64,
    pub rto_ms: u64,
    pub rto: RtoVerdict,
    /// A failed run: the step whose failure ended the recovery.
    pub failed_at: Option<String>,
    /// What a real run would take (drills and dry-runs; `None` for real runs).
    pub projected_ms: Option<u64>,
    /// Drills: the plan's simulated P90.
    pub projected_p90_ms: Option<u64>,
    pub rpo_ms: Option<u64>,
    pub rpo_achieved_ms: Option<u64>,
    /// The sum of command steps' `duration_ms` (the JSON report's `machine_s`).
    pub machine_ms: u64,
    /// The sum of command steps' `shown_ms` (the human reports' machine time).
    pub machine_shown_ms: u64,
    pub human_ms: u64,
    pub runbook: String,
    pub sha256: String,
    pub steps: Vec<StepReport>,
    pub critical_path: Vec<String>,
    /// A drill in a rehearsal environment: the steps a drill mocks ran for real.
    pub rehearsal: bool,
    /// With `rto_ends_at`: that step, when it succeeded (the recovery time), the observation
    /// after it, and its steps in plan order.
    pub rto_ends_at: Option<String>,
    pub recovery_ms: Option<u64>,
    pub observation_ms: Option<u64>,
    pub observation_steps: Vec<String>,
    pub escalations: Vec<(u64, Escalated)>,
    /// Budget breaches: the steps' as journaled, and the called runbooks' groups'
    /// (`calls`), in time order.
    pub breaches: Vec<(u64, BudgetEvent)>,
    /// The called runbooks (`runbook:`), each group timed against its budget.
    pub calls: Vec<super::calls::CallReport>,
    pub interruptions: Vec<(u64, RunInterrupted)>,
    pub resumes: Vec<(u64, RunResumed)>,
    /// When the run was stopped (run clock, from, to): from its last record before a resume to
    /// the resume. Nothing ran then, whatever a bar that spans it would suggest.
    pub stopped: Vec<(u64, u64)>,
    /// The run's events in the words of the human reports (empty without records).
    pub lines: EventLines,
}

impl RunReport {
    /// `records` feed only the human reports' event lists and timeline: the JSON report is a
    /// function of `state` alone, and passes none.
    pub fn new(state: &RunState, records: &[Record]) -> RunReport {
        let started = state.started.clone().unwrap_or_default();
        let elapsed = elapsed_ms(state);
        let critical = actual_critical_path(state);
        let observation = observation_steps(state);
        let steps: Vec<StepReport> = state
            .steps
            .iter()
            .map(|s| step_report(state, s, elapsed, &critical, &observation))
            .collect();
        let machine = |f: fn(&StepReport) -> Option<u64>| {
            steps
                .iter()
                .filter(|s| !s.gate && !s.estimated)
                .filter_map(f)
                .sum()
        };
        let calls =
            super::calls::call_reports(&started.plan.calls, &steps, elapsed, &state.breaches);
        let mut breaches = state.breaches.clone();
        breaches.extend(super::calls::call_breaches(&calls, &state.breaches));
        breaches.sort_by_key(|(at, _)| *at);
        let machine_ms = machine(|s| s.duration_ms);
        let machine_shown_ms = machine(|s| s.shown_ms);
        RunReport {
            lines: EventLines::new(state, records, started.rto_ms),
            run_id: started.run_id,
            scenario: started.scenario,
            title: started.title,
            mode: state.mode(),
            status: RunProgress::of(state),
            operator: started.operator,
            started_at: state.started_at,
            ended_at: state.finished_at.or(state.last_at),
            elapsed_ms: elapsed,
            rto_ms: started.rto_ms,
            rto: rto_verdict(state),
            failed_at: failed_at(state),
            projected_ms: if state.mode() == Mode::Real {
                None
            } else {
                projected_rto_ms(state)
            },
            projected_p90_ms: projected_p90_ms(state),
            rpo_ms: started.rpo_ms,
            rpo_achieved_ms: rpo_achieved_ms(state),
            machine_ms,
            machine_shown_ms,
            human_ms: state.human_wait_ms(),
            runbook: started.runbook,
            sha256: started.runbook_sha256,
            steps,
            critical_path: critical,
            rehearsal: is_rehearsal(state),
            rto_ends_at: rto_ends_at(state).map(str::to_owned),
            recovery_ms: recovery_ms(state),
            observation_ms: observation_ms(state),
            observation_steps: observation,
            escalations: state.escalations.clone(),
            breaches,
            calls,
            interruptions: state.interruptions.clone(),
            resumes: state.resumes.clone(),
            stopped: state
                .resumes
                .iter()
                .map(|(at, r)| (at.saturating_sub(r.downtime_ms), *at))
                .filter(|(from, to)| to > from)
                .collect(),
        }
    }

    /// The recovery point achieved within its target; `None` without either.
    pub fn rpo_met(&self) -> Option<bool> {
        Some(self.rpo_achieved_ms? <= self.rpo_ms?)
    }

    /// Ids of the steps the run went on without (`on_failure: continue`), in plan order.
    pub fn continued(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.continued)
            .map(|s| s.id.as_str())
            .collect()
    }
}

fn step_report(
    state: &RunState,
    s: &StepRun,
    elapsed: u64,
    critical: &[String],
    observation: &[String],
) -> StepReport {
    let ran_ms = s.duration_ms(elapsed);
    // A mocked or skipped step shows what it stands for: its estimate.
    let duration_ms = if s.estimated { s.simulated_ms } else { ran_ms };
    let shown_ms = if s.estimated {
        s.simulated_ms
    } else if s.status == Some(StepStatus::NotRun) {
        None
    } else if s.gate {
        s.wait_ms.or(ran_ms)
    } else {
        ran_ms
    };
    StepReport {
        id: s.id.clone(),
        title: s.title.clone(),
        status: StepProgress::of(s),
        gate: s.gate,
        started_at: s.started_at,
        finished_at: s.finished_at,
        start_ms: s.started_ms.or(s.requested_ms),
        end_ms: s.finished_ms,
        duration_ms,
        shown_ms,
        budget_ms: s.budget_ms,
        breached: s.breached,
        attempts: s.attempts,
        approved_by: s.approved_by.clone(),
        value: s.value.clone(),
        items: s.items.clone(),
        note: s.note.clone(),
        wait_ms: s.wait_ms,
        estimated: s.estimated,
        critical: critical.contains(&s.id),
        error: s.error.clone(),
        continued: continued(state, s),
        rehearsal: ran_for_real_in_rehearsal(s),
        observation: observation.contains(&s.id),
        condition: s.condition.clone(),
        finally: s.finally,
        manual: s.manual.is_some(),
        why_not_run: super::skips::why_not_run(state, s),
    }
}
