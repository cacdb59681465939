//! Sub-runbooks in the report: each call's group of steps, timed from its first step's start
//! to its last step's end on the run's clock, against the call's budget. Computed here from
//! the journal's plan (`plan.calls`) and the steps' times rather than journaled by the
//! machine: a group's time is a fact of its steps' times, and old journals need nothing new.

use super::model::StepReport;
use crate::journal::{BudgetEvent, PlanCall};

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

pub fn call_reports(calls: &[PlanCall], steps: &[StepReport], elapsed_ms: u64) -> Vec<CallReport> {
    calls
        .iter()
        .map(|c| {
            let members: Vec<&StepReport> =
                steps.iter().filter(|s| c.steps.contains(&s.id)).collect();
            let start_ms = members.iter().filter_map(|s| s.start_ms).min();
            let ended = members.iter().all(|s| s.end_ms.is_some());
            let end_ms = if ended {
                members.iter().filter_map(|s| s.end_ms).max()
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
                breached: duration_ms.is_some_and(|d| d > c.budget_ms),
            }
        })
        .collect()
}

/// The groups' breaches, as the steps' are listed: when the budget ran out.
pub fn call_breaches(calls: &[CallReport]) -> Vec<(u64, BudgetEvent)> {
    calls
        .iter()
        .filter(|c| c.breached)
        .filter_map(|c| {
            Some((
                c.start_ms? + c.budget_ms,
                BudgetEvent {
                    step: c.id.clone(),
                    elapsed_ms: c.duration_ms?,
                    budget_ms: c.budget_ms,
                },
            ))
        })
        .collect()
}
