//! The plan's steps as `run_started.plan` and `loop_expanded.instances` journal them.

use std::ops::Range;

use super::PlanStep;
use crate::compile::Plan;

/// Steps `range` of the plan, as the journal lists them.
pub fn plan_steps(plan: &Plan, range: Range<usize>) -> Vec<PlanStep> {
    plan.steps
        .get(range)
        .unwrap_or_default()
        .iter()
        .map(|s| PlanStep {
            id: s.id.clone(),
            title: s.title.clone(),
            needs: s
                .needs
                .iter()
                .filter_map(|&j| Some(plan.steps.get(j)?.id.clone()))
                .collect(),
            budget_ms: s.budget.as_millis() as u64,
            estimate_ms: [
                s.estimate.min.as_millis() as u64,
                s.estimate.likely.as_millis() as u64,
                s.estimate.max.as_millis() as u64,
            ],
            gate: s.is_gate(),
            idempotent: s.idempotent,
            continue_on_failure: s.on_failure == crate::compile::OnFailure::Continue,
            finally: s.finally,
            manual: matches!(&s.kind, crate::compile::StepKind::Approval(a) if a.manual.is_some()),
        })
        .collect()
}
