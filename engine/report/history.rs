//! Across runs: every journal in the state folder, replayed, for `history`, `list`'s last
//! drill, and the measured durations that the simulator prefers to estimates.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::journal::*;
use crate::state::StateDir;

/// How often the plan asks for a drill: quarterly.
pub const DRILL_EVERY_DAYS: i64 = 92;

/// Every run in the state folder whose journal verifies, oldest first. Runs with a broken
/// chain are left out (and named), never trusted.
pub fn load_runs(state: &StateDir) -> (Vec<(String, RunState)>, Vec<String>) {
    let mut ok = Vec::new();
    let mut broken = Vec::new();
    for id in state.runs() {
        match read_verified(&state.journal(&id)) {
            Ok((records, _)) => ok.push((id, RunState::replay(&records))),
            Err(_) => broken.push(id),
        }
    }
    (ok, broken)
}

/// Measured durations of each step of a scenario, from finished real runs and drills: steps
/// that succeeded with a process (not skipped, simulated or auto-approved), and gates' waits.
pub fn step_durations(
    runs: &[(String, RunState)],
    scenario: &str,
) -> BTreeMap<String, Vec<Duration>> {
    let mut out: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for (_, rs) in runs {
        if rs.scenario() != scenario || rs.mode() == Mode::DryRun {
            continue;
        }
        for s in &rs.steps {
            if s.status != Some(StepStatus::Succeeded) || s.estimated || s.auto_approved {
                continue;
            }
            let ms = if s.gate {
                s.wait_ms
            } else {
                s.duration_ms(rs.last_elapsed_ms)
            };
            if let Some(ms) = ms {
                out.entry(s.id.clone())
                    .or_default()
                    .push(Duration::from_millis(ms));
            }
        }
    }
    out
}

/// When the scenario was last drilled (a drill that finished), if ever.
pub fn last_drill(runs: &[(String, RunState)], scenario: &str) -> Option<DateTime<Utc>> {
    runs.iter()
        .filter(|(_, rs)| rs.scenario() == scenario && rs.mode() == Mode::Drill && rs.is_finished())
        .filter_map(|(_, rs)| rs.started_at)
        .max()
}

/// Is a drill overdue at `now`?
pub fn drill_overdue(last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match last {
        None => true,
        Some(t) => (now - t).num_days() > DRILL_EVERY_DAYS,
    }
}
