//! Sub-runbooks in the report: each call's group of steps, timed from its first step's start
//! to its last step's end on the run's clock, against the call's budget. Computed here from
//! the journal's plan (`plan.calls`) and the steps' times rather than journaled by the
//! machine: a group's time is a fact of its steps' times, and old journals need nothing new.
//! The machine watches the same group live (`exec/machine/calls.rs`) and journals its
//! `budget_breached`; a group it said was over budget is reported over budget.

use super::model::{StepProgress, StepReport};
use crate::journal::{BudgetEvent, PlanCall, RunState, StepStatus};

/// One called runbook, as it ran.
#[derive(Clone, Debug, PartialEq)]
pub struct CallReport {
    pub id: String,
    pub runbook: String,
    pub steps: Vec<String>,
    pub budget_ms: u64,
    /// Its first step's start, on the run's clock; `None` until one started.
    pub start_ms: Option<u64>,
    /// Its last step's end, once every step of it has ended.
    pub end_ms: Option<u64>,
    /// To its end, or to the run's last event while it has not ended.
    pub duration_ms: Option<u64>,
    pub breached: bool,
}

pub fn call_reports(
    calls: &[PlanCall],
    steps: &[StepReport],
    elapsed_ms: u64,
    journaled: &[(u64, BudgetEvent)],
) -> Vec<CallReport> {
    // A step that never started (its `when:` was false, or a need failed) ends the group when
    // it ends but does not start its clock: the machine's watch starts at the first step
    // started, and the report times the group as the watch did.
    let times = |id: &str| {
        steps.iter().find(|s| s.id == id).map(|s| {
            let never_started = matches!(s.status, StepProgress::Ended(StepStatus::NotRun))
                || (matches!(s.status, StepProgress::Ended(StepStatus::Skipped))
                    && s.condition.as_ref().is_some_and(|c| !c.held));
            (s.start_ms.filter(|_| !never_started), s.end_ms)
        })
    };
    groups(calls, times, elapsed_ms, journaled)
}

/// The same groups from a replayed journal, to `now_ms` for those still running: what
/// `status` shows.
pub fn call_groups(state: &RunState, now_ms: u64) -> Vec<CallReport> {
    let Some(started) = &state.started else {
        return Vec::new();
    };
    let times = |id: &str| {
        state.step(id).map(|s| {
            let never_started = s.status == Some(StepStatus::NotRun)
                || (s.status == Some(StepStatus::Skipped)
                    && s.condition.as_ref().is_some_and(|c| !c.held));
            let start = s.started_ms.or(s.requested_ms).filter(|_| !never_started);
            (start, s.finished_ms)
        })
    };
    groups(&started.plan.calls, times, now_ms, &state.breaches)
}

fn groups(
    calls: &[PlanCall],
    times: impl Fn(&str) -> Option<(Option<u64>, Option<u64>)>,
    elapsed_ms: u64,
    journaled: &[(u64, BudgetEvent)],
) -> Vec<CallReport> {
    calls
        .iter()
        .map(|c| {
            let members: Vec<(Option<u64>, Option<u64>)> =
                c.steps.iter().filter_map(|id| times(id)).collect();
            let start_ms = members.iter().filter_map(|m| m.0).min();
            let ended = members.iter().all(|m| m.1.is_some());
            let end_ms = if ended {
                members.iter().filter_map(|m| m.1).max()
            } else {
                None
            };
            let duration_ms = start_ms.map(|s| end_ms.unwrap_or(elapsed_ms).saturating_sub(s));
            CallReport {
                id: c.id.clone(),
                runbook: c.runbook.clone(),
                steps: c.steps.clone(),
                budget_ms: c.budget_ms,
                start_ms,
                end_ms,
                duration_ms,
                breached: duration_ms.is_some_and(|d| d > c.budget_ms)
                    || journaled
                        .iter()
                        .any(|(_, b)| b.runbook.is_some() && b.step == c.id),
            }
        })
        .collect()
}

/// The groups' breaches, as the steps' are listed: when the budget ran out. A breach the
/// machine journaled (`budget_breached` with `runbook`) is in `journaled` already, at the
/// instant it was said; a group over budget that it did not journal (a journal written before
/// groups were watched) is added here.
pub fn call_breaches(
    calls: &[CallReport],
    journaled: &[(u64, BudgetEvent)],
) -> Vec<(u64, BudgetEvent)> {
    calls
        .iter()
        .filter(|c| c.breached)
        .filter(|c| {
            !journaled
                .iter()
                .any(|(_, b)| b.runbook.is_some() && b.step == c.id)
        })
        .filter_map(|c| {
            Some((
                c.start_ms? + c.budget_ms,
                BudgetEvent {
                    step: c.id.clone(),
                    elapsed_ms: c.duration_ms?,
                    budget_ms: c.budget_ms,
                    runbook: Some(c.runbook.clone()),
                },
            ))
        })
        .collect()
}
