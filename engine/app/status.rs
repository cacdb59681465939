//! What a run's journal and its lock say about it now: whether its executor lives, where its
//! RTO clock is, what is projected, which real runs were left stopped. `status` renders it.

use std::time::Duration;

use chrono::Utc;

use crate::journal::{Mode, RunState, StepStatus, read_lenient};
use crate::state::{self, StateDir};

/// Is the executor of this run alive? It holds the scenario's lock, with its run id and pid
/// written in: the lock must be held (a text that merely names a live pid proves nothing).
pub fn executor_pid(state: &StateDir, rs: &RunState) -> Option<u32> {
    let h = state::holder(&state.lock_path(rs.scenario()))?;
    (h.run_id == rs.run_id()).then_some(h.pid?)
}

/// Where the run's RTO clock is now: wall time since `run_started` for every run without a
/// `run_finished`, whether or not an executor is watching (a run whose executor died, or
/// that was stopped, is still an outage, and `resume` counts that time too); a finished
/// run's elapsed time once it has one.
pub fn now_ms(rs: &RunState) -> u64 {
    match (&rs.finished, rs.started_at) {
        (None, Some(t)) => (Utc::now() - t).num_milliseconds().max(0) as u64,
        _ => crate::report::elapsed_ms(rs),
    }
}

/// The projected finish from the journal: now plus the longest remaining path of budgets (to
/// the `rto_ends_at` step when there is one), an interrupted step counting its whole budget.
/// The executor's own projection is `Machine::projected_finish` (docs/design.md).
pub fn projection(rs: &RunState, now: u64) -> (u64, Vec<String>) {
    let Some(started) = &rs.started else {
        return (now, Vec::new());
    };
    let ids: Vec<&str> = started.plan.steps.iter().map(|p| p.id.as_str()).collect();
    let weights: Vec<Duration> = started
        .plan
        .steps
        .iter()
        .map(|p| {
            let left = match rs.step(&p.id) {
                // An interrupted step runs again on resume, from the start.
                Some(s) if s.status == Some(StepStatus::Interrupted) => p.budget_ms,
                Some(s) if s.status.is_some() => 0,
                Some(s) => p.budget_ms.saturating_sub(
                    s.started_ms
                        .or(s.requested_ms)
                        .map_or(0, |t| now.saturating_sub(t)),
                ),
                None => p.budget_ms,
            };
            Duration::from_millis(left)
        })
        .collect();
    let needs: Vec<Vec<usize>> = started
        .plan
        .steps
        .iter()
        .map(|p| {
            p.needs
                .iter()
                .filter_map(|n| ids.iter().position(|x| x == n))
                .collect()
        })
        .collect();
    let order = crate::dag::topo_order(&needs);
    let nref: Vec<&[usize]> = needs.iter().map(Vec::as_slice).collect();
    // With `rto_ends_at`, what is projected is the recovery: the path to that step.
    let end = crate::report::rto_ends_at(rs).and_then(|e| ids.iter().position(|x| *x == e));
    let (path, rest) = crate::dag::longest_path_to(&weights, &nref, &order, end);
    let path = path
        .into_iter()
        .filter(|&i| !weights[i].is_zero())
        .map(|i| ids[i].to_owned())
        .collect();
    (now + rest.as_millis() as u64, path)
}

/// Each gate's current request: the `hash` of its latest `approval_requested` record, what an
/// approver signs (`runbook approve … --request HASH` on a machine without the state folder).
pub fn request_hashes(
    records: &[crate::journal::Record],
) -> std::collections::BTreeMap<String, String> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            crate::journal::EventKind::ApprovalRequested(a) => {
                Some((a.step.clone(), r.hash.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Real runs that are neither finished nor live: stopped at a gate, by Ctrl-C, or by the
/// death of their executor. Oldest first.
pub fn stopped_real_runs(state: &StateDir) -> Vec<(String, RunState)> {
    state
        .runs()
        .into_iter()
        .filter_map(|id| {
            let rs = RunState::replay(&read_lenient(&state.journal(&id)).ok()?);
            let stopped = rs.started.is_some()
                && rs.mode() == Mode::Real
                && !rs.is_finished()
                && executor_pid(state, &rs).is_none();
            stopped.then_some((id, rs))
        })
        .collect()
}
