//! The figures of one run, read from its replayed journal ([`RunState`]): statuses, the RTO
//! verdict's inputs, recovery and observation, the critical path as it ran, projections and
//! the recovery point. The report model is built from them; `status` and `run` read a few
//! directly.

use std::time::Duration;

use super::RtoVerdict;
use super::model::{RunProgress, StepProgress};
use crate::journal::*;

/// The run's status in one word (the JSON report's `status`).
pub fn run_status(state: &RunState) -> &'static str {
    RunProgress::of(state).as_str()
}

/// The run's RTO verdict, from the journal.
pub fn rto_verdict(state: &RunState) -> RtoVerdict {
    let target_ms = state.started.as_ref().map(|s| s.rto_ms).unwrap_or_default();
    let Some(f) = &state.finished else {
        return RtoVerdict::Open {
            elapsed_ms: state.last_elapsed_ms,
            target_ms,
            restored_ms: recovery_ms(state),
        };
    };
    let elapsed_ms = f.elapsed_ms;
    match f.status {
        RunStatus::Failed => RtoVerdict::NotRecovered {
            failed_at: failed_at(state),
            elapsed_ms,
            restored_ms: recovery_ms(state),
        },
        RunStatus::Succeeded if f.recovered_within_rto() => RtoVerdict::Met {
            elapsed_ms: f.judged_ms(),
            target_ms: f.rto_ms,
            projected: f.projected_ms.is_some(),
            observation_ms: observation_ms(state),
        },
        RunStatus::Succeeded => RtoVerdict::Missed {
            elapsed_ms: f.judged_ms(),
            target_ms: f.rto_ms,
            projected: f.projected_ms.is_some(),
            observation_ms: observation_ms(state),
        },
    }
}

/// The runbook's `rto_ends_at`, as the run journaled it.
pub fn rto_ends_at(state: &RunState) -> Option<&str> {
    state.started.as_ref()?.rto_ends_at.as_deref()
}

/// With `rto_ends_at`: when service was restored — that step's success — on the run's clock
/// (stopped time excluded as in `elapsed_ms`). `None` until it succeeds, and without it.
pub fn recovery_ms(state: &RunState) -> Option<u64> {
    if let Some(r) = state.finished.as_ref().and_then(|f| f.recovery_ms) {
        return Some(r);
    }
    let step = state.step(rto_ends_at(state)?)?;
    step.status
        .is_some_and(StepStatus::is_ok)
        .then_some(step.finished_ms)
        .flatten()
}

/// With `rto_ends_at`: the observation period after service was restored, to the run's end
/// (or its last event).
pub fn observation_ms(state: &RunState) -> Option<u64> {
    Some(elapsed_ms(state).saturating_sub(recovery_ms(state)?))
}

/// With `rto_ends_at`: the steps of the observation period, those not upstream of it, in plan
/// order. Empty without it.
pub fn observation_steps(state: &RunState) -> Vec<String> {
    let (Some(started), Some(end)) = (&state.started, rto_ends_at(state)) else {
        return Vec::new();
    };
    let Some(end) = started.plan.steps.iter().position(|p| p.id == end) else {
        return Vec::new();
    };
    let (needs, order) = plan_graph(&started.plan);
    let needs: Vec<&[usize]> = needs.iter().map(Vec::as_slice).collect();
    let recovery = crate::dag::upstream_of(&needs, end);
    order
        .into_iter()
        .filter(|&i| !recovery[i])
        .map(|i| started.plan.steps[i].id.clone())
        .collect()
}

/// A rehearsal: a drill in a rehearsal environment, whose mocked steps ran for real.
pub fn is_rehearsal(state: &RunState) -> bool {
    state.started.as_ref().is_some_and(|s| s.rehearsal)
}

/// A step a rehearsal ran for real, where a drill would have mocked it.
pub fn ran_for_real_in_rehearsal(step: &StepRun) -> bool {
    step.how == Some(How::Rehearsal)
}

/// A failed run: the step whose failure ended the recovery, as the journal names it; for a
/// journal written before it did, the first step to fail (or to be denied), else the first
/// that never ran.
pub fn failed_at(state: &RunState) -> Option<String> {
    let f = state.finished.as_ref()?;
    if f.status != RunStatus::Failed {
        return None;
    }
    if let Some(step) = &f.failed_at {
        return Some(step.clone());
    }
    let first = |wanted: &[StepStatus]| {
        state
            .steps
            .iter()
            .filter(|s| s.status.is_some_and(|st| wanted.contains(&st)))
            .filter(|s| !f.continued.contains(&s.id))
            .min_by_key(|s| s.finished_ms)
            .map(|s| s.id.clone())
    };
    first(&[StepStatus::Failed, StepStatus::TimedOut]).or_else(|| first(&[StepStatus::NotRun]))
}

/// Did this step fail with `on_failure: continue`, the run going on without it?
pub fn continued(state: &RunState, step: &StepRun) -> bool {
    // The run's end names them; before it (live or stopped), the plan says which may fail.
    state
        .finished
        .as_ref()
        .is_some_and(|f| f.continued.contains(&step.id))
        || (step.continue_on_failure
            && matches!(step.status, Some(StepStatus::Failed | StepStatus::TimedOut)))
}

/// A step's status for people: "failed, continued" for a step the run went on without.
pub fn step_status_words(state: &RunState, step: &StepRun) -> String {
    let words = match StepProgress::of(step) {
        // A manual task under way is work being done, not a wait for a decision.
        StepProgress::Waiting if step.manual.is_some() => MANUAL_IN_PROGRESS,
        progress => progress.words(),
    };
    if continued(state, step) {
        format!("{words}, continued")
    } else {
        words.to_owned()
    }
}

/// How people read a manual task under way (its wire word stays `waiting`).
pub const MANUAL_IN_PROGRESS: &str = "in progress (manual task)";

/// The status of one step in words, live states included.
pub fn step_status(step: &StepRun) -> &'static str {
    StepProgress::of(step).as_str()
}

/// Elapsed on the run's clock: the end if there is one, else the last event.
pub fn elapsed_ms(state: &RunState) -> u64 {
    state
        .finished
        .as_ref()
        .map(|f| f.elapsed_ms)
        .unwrap_or(state.last_elapsed_ms)
}

/// The chain of steps that decided the finish, as the run went: from the step that finished
/// last, back through the need that finished last, to a step with no needs.
pub fn actual_critical_path(state: &RunState) -> Vec<String> {
    let Some(started) = &state.started else {
        return Vec::new();
    };
    let needs: std::collections::BTreeMap<&str, &Vec<String>> = started
        .plan
        .steps
        .iter()
        .map(|p| (p.id.as_str(), &p.needs))
        .collect();
    let finish = |id: &str| state.step(id).and_then(|s| s.finished_ms);
    // With `rto_ends_at`, the chain that decided the recovery: the observation after it
    // decided nothing the RTO measures.
    let restored = recovery_ms(state)
        .and(rto_ends_at(state))
        .map(str::to_owned);
    let Some(mut at) = restored.or_else(|| {
        state
            .steps
            .iter()
            // The cleanup of `finally:` comes after the recovery: not on its path.
            .filter(|s| {
                s.finished_ms.is_some() && s.status != Some(StepStatus::NotRun) && !s.finally
            })
            .max_by_key(|s| s.finished_ms)
            .map(|s| s.id.clone())
    }) else {
        return Vec::new();
    };
    let mut path = vec![at.clone()];
    while let Some(ns) = needs.get(at.as_str()) {
        let Some(prev) = ns
            .iter()
            .filter(|n| finish(n).is_some())
            .max_by_key(|n| finish(n))
        else {
            break;
        };
        at = prev.clone();
        path.push(at.clone());
    }
    path.reverse();
    path
}

/// What a real run would take: the critical path of the plan with measured durations where
/// steps ran and estimates (likely) where they were skipped, simulated or not run. A drill
/// runs at drill speed, and its measurements are not a real run's: there only a step whose
/// real command ran counts as measured; a drill variant counts at the real step's estimate,
/// and a gate granted with `--yes` at its budget (people take time to answer); a manual task
/// done with `--yes` is work, at its estimate.
pub fn projected_rto_ms(state: &RunState) -> Option<u64> {
    let started = state.started.as_ref()?;
    let drill = state.mode() == Mode::Drill;
    let (needs, order) = plan_graph(&started.plan);
    let needs: Vec<&[usize]> = needs.iter().map(Vec::as_slice).collect();
    // With `rto_ends_at`, what is projected is the recovery: the path to that step.
    let end = rto_ends_at(state).and_then(|e| started.plan.steps.iter().position(|p| p.id == e));
    let weights: Vec<Duration> = started
        .plan
        .steps
        .iter()
        .map(|p| {
            let measured = state.step(&p.id).and_then(|s| match s.status {
                // A manual task done with `--yes` took no work: its estimate is what a person
                // doing it takes, as a command step's is.
                Some(StepStatus::Succeeded) if drill && s.manual.is_some() && s.auto_approved => {
                    None
                }
                Some(StepStatus::Succeeded)
                | Some(StepStatus::Failed)
                | Some(StepStatus::TimedOut) => {
                    if drill && p.gate && (s.auto_approved || s.wait_ms.is_none()) {
                        Some(p.budget_ms)
                    } else if drill && !p.gate && !s.how.is_some_and(How::is_real) {
                        None
                    } else {
                        s.wait_ms.or(s.duration_ms(state.last_elapsed_ms))
                    }
                }
                _ if drill && p.gate && !p.manual && s.manual.is_none() => Some(p.budget_ms),
                _ => None,
            });
            Duration::from_millis(measured.unwrap_or(p.estimate_ms[1]))
        })
        .collect();
    let (_, total) = crate::dag::longest_path_to(&weights, &needs, &order, end);
    Some(total.as_millis() as u64)
}

/// The plan summary's needs, by index, and a topological order.
fn plan_graph(plan: &PlanSummary) -> (Vec<Vec<usize>>, Vec<usize>) {
    let index = |id: &str| plan.steps.iter().position(|p| p.id == id);
    let needs: Vec<Vec<usize>> = plan
        .steps
        .iter()
        .map(|p| p.needs.iter().filter_map(|n| index(n)).collect())
        .collect();
    let order = crate::dag::topo_order(&needs);
    (needs, order)
}

/// Draws for a drill's P90: as many as make `plan --simulate`'s percentiles steady.
pub const P90_ITERATIONS: usize = 10_000;

/// Drills: the 90th percentile of the plan's duration (with `rto_ends_at`, of its recovery), simulated from the estimates the run
/// journaled, as `runbook plan --simulate` does (seed 1, its default).
pub fn projected_p90_ms(state: &RunState) -> Option<u64> {
    if state.mode() != Mode::Drill {
        return None;
    }
    let started = state.started.as_ref()?;
    let (needs, order) = plan_graph(&started.plan);
    let ms = Duration::from_millis;
    let steps = started
        .plan
        .steps
        .iter()
        .zip(needs)
        .map(|(p, needs)| crate::compile::Step {
            id: p.id.clone(),
            at: String::new(),
            title: p.title.clone(),
            description: None,
            needs,
            budget: ms(p.budget_ms),
            estimate: crate::units::Estimate {
                min: ms(p.estimate_ms[0]),
                likely: ms(p.estimate_ms[1]),
                max: ms(p.estimate_ms[2]),
            },
            timeout: None,
            kind: crate::compile::StepKind::Command(crate::compile::Command {
                template: String::new(),
                inputs: None,
            }),
            drill: crate::compile::Drill::Run,
            retries: 0,
            backoff: crate::compile::Backoff::fixed(Duration::ZERO),
            poll: None,
            on_failure: Default::default(),
            idempotent: p.idempotent,
            on: Vec::new(),
            fanout: Default::default(),
            env: Default::default(),
            uses: None,
            condition: None,
            finally: false,
            instance: None,
            call: None,
        })
        .collect();
    // Only what the simulator reads is filled in: the steps, their order and the target.
    let plan = crate::compile::Plan {
        scenario: started.scenario.clone(),
        title: started.title.clone(),
        description: None,
        rto: ms(started.rto_ms),
        rpo: None,
        roles: Default::default(),
        vars: Default::default(),
        secrets: Vec::new(),
        notify: Default::default(),
        escalation: Vec::new(),
        steps,
        rto_ends_at: rto_ends_at(state)
            .and_then(|e| started.plan.steps.iter().position(|p| p.id == e)),
        order,
        critical_path: Vec::new(),
        critical_path_budget: Duration::ZERO,
        path: Default::default(),
        root: Default::default(),
        sha256: String::new(),
        library: Default::default(),
        calls: Vec::new(),
        lists: Default::default(),
        output_loops: Default::default(),
    };
    let dists = crate::simulate::distributions(&plan, &Default::default());
    let sim = crate::simulate::simulate(&plan, &dists, P90_ITERATIONS, 1);
    Some((sim.p90_s * 1000.0).round() as u64)
}

/// The recovery point achieved: the largest `rpo_s` output of any step (by convention a
/// restore's source backup's age, e.g. `postgres/latest-backup`).
pub fn rpo_achieved_ms(state: &RunState) -> Option<u64> {
    state
        .steps
        .iter()
        .filter_map(|s| s.outputs.get("rpo_s"))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .map(|s| (s * 1000.0) as u64)
        .max()
}
