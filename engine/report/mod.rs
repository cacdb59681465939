//! Reports: a run's journal, replayed into [`RunState`], made into the forms reviewers and
//! machines read. Pure functions of the journal.
//!
//! # The JSON report (version 1)
//!
//! | field | meaning |
//! |---|---|
//! | `version` | 1; bumped on any incompatible change |
//! | `run_id`, `scenario`, `title` | which run of which runbook |
//! | `mode` | `real`, `drill` or `dry-run` |
//! | `status` | `succeeded` (steps that failed with `on_failure: continue` do not change it: see `continued`), `failed`, `stopped` (interrupted or stopped at a gate: resumable) or `running` (no end in the journal) |
//! | `operator` | who started the run |
//! | `started_at`, `finished_at` | RFC 3339 UTC; `finished_at` is the last event for a run without an end |
//! | `elapsed_s` | seconds from start to end on the run's clock (downtime of a resume included) |
//! | `rehearsal` | the run was a drill in a rehearsal environment (`rehearsal: true`): its `mock` steps ran their real commands |
//! | `rto_ends_at` | the runbook's `rto_ends_at`: the step whose success restores service (`null` when the whole run counts) |
//! | `recovery_s` | with `rto_ends_at`: when that step succeeded, on the run's clock: the recovery time the RTO is measured by (`null` until then, and without it) |
//! | `observation_s` | with `recovery_s`: the observation period after it, to the run's end |
//! | `observation_steps` | with `rto_ends_at`: the steps not upstream of it (its descendants and the steps parallel to it), in plan order |
//! | `rto_target_s`, `rto_met` | the scenario's RTO, and whether the run recovered within it: `true` only for a run that succeeded within the target (with `rto_ends_at`, measured at that step: `recovery_s`); `false` for one that succeeded late, failed — also during the observation — or was denied (it did not recover); `null` while running or stopped |
//! | `rto_verdict` | that verdict in words: `RTO met: …` (with `· observation T after` when there was one), `RTO MISSED: …`, `RTO not met: recovery failed at STEP after T`, `RTO not met: recovery failed during observation at STEP after T, after service was restored in T: it did not hold`, `RTO clock at T of TARGET, not recovered` |
//! | `failed_at` | a failed run: the step whose failure ended the recovery (`null` otherwise) |
//! | `continued` | ids of the steps that failed with `on_failure: continue` (the run went on without them) |
//! | `projected_rto_s` | what a real run would take. Drills: the plan's critical path with each step at what it takes for real — measured where the real command ran, the step's estimate where the drill ran a variant, mocked or skipped it (or it did not run), an auto-approved gate's budget; dry-runs: the virtual timeline's; `null` for real runs |
//! | `projected_rto_p90_s` | drills: the 90th percentile of the plan's duration, simulated from its estimates as `runbook plan --simulate` does ([`P90_ITERATIONS`] draws, seed 1); `null` otherwise |
//! | `rpo_target_s`, `rpo_achieved_s`, `rpo_met` | the scenario's RPO, and the recovery point the run achieved: the largest `rpo_s` output of any step (a restored backup's age; `null` when no step reports one) |
//! | `machine_s` | the sum of the durations of command steps (work; parallel work counts in full) |
//! | `human_wait_s` | the sum of the waits at approval gates |
//! | `critical_path` | step ids of the chain that decided the finish, as it ran (with `rto_ends_at`, once that step succeeded: the chain that decided the recovery) |
//! | `runbook_sha256` | of the runbook file as it ran |
//! | `steps[]` | `{id, title, status, continued, started_at, finished_at, duration_s, budget_s, breached, attempts, approved_by, wait_s, estimated, rehearsal}` in plan order; `rehearsal` is true for a step a drill mocks that this rehearsal ran for real; `status` is a step status or `pending`/`running`/`waiting`; `continued` is true for a step that failed with `on_failure: continue` ("failed, continued"); a mocked or skipped step (`estimated: true`) starts when the run reached it and lasts its estimate, simulated: it took no time on the run's clock |
//! | `escalations[]` | `{at_s, channel, reason, ok, error, exit_code, stderr_tail}`; the last three say how a failed page failed (`null` when it did not) |
//! | `breaches[]` | `{at_s, step, budget_s}` — budget breaches |
//! | `interruptions[]`, `resumes[]` | `{at_s, reason}` and `{at_s, operator, downtime_s}` |

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::journal::*;

pub mod history;
pub mod render;

pub const REPORT_VERSION: u32 = 1;

fn ts(t: Option<DateTime<Utc>>) -> Value {
    match t {
        Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        None => Value::Null,
    }
}

fn s(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The run's status in one word.
pub fn run_status(state: &RunState) -> &'static str {
    match &state.finished {
        Some(f) => match f.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        },
        None if !state.interruptions.is_empty()
            && state.interruptions.last().map(|i| i.0) >= state.resumes.last().map(|r| r.0) =>
        {
            "stopped"
        }
        None => "running",
    }
}

/// Where a run stands against its RTO. Decided from the run's status and elapsed time alone:
/// the `rto_met` of journals written before it was so says "met" of failed runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtoVerdict {
    /// Recovered (succeeded) within the target. For a drill, `elapsed_ms` is what a real run
    /// projects (`projected`): the drill's own clock runs at drill speed.
    /// With `rto_ends_at`, `elapsed_ms` is the recovery time (that step's finish) and
    /// `observation_ms` the observation after it, reported apart.
    Met {
        elapsed_ms: u64,
        target_ms: u64,
        projected: bool,
        observation_ms: Option<u64>,
    },
    /// Recovered, after the target (a drill: a real run would be).
    Missed {
        elapsed_ms: u64,
        target_ms: u64,
        projected: bool,
        observation_ms: Option<u64>,
    },
    /// Failed or denied: no recovery, so no RTO met, however early it ended. `restored_ms`:
    /// the `rto_ends_at` step had succeeded then, and the failure came in the observation —
    /// service was restored and did not hold.
    NotRecovered {
        failed_at: Option<String>,
        elapsed_ms: u64,
        restored_ms: Option<u64>,
    },
    /// Running or stopped: the clock runs on, unless `restored_ms` says the `rto_ends_at` step
    /// has succeeded (the clock stopped there; the observation is under way).
    Open {
        elapsed_ms: u64,
        target_ms: u64,
        restored_ms: Option<u64>,
    },
}

impl RtoVerdict {
    /// The JSON report's `rto_met`: `None` while the run can still recover.
    pub fn met(&self) -> Option<bool> {
        match self {
            RtoVerdict::Met { .. } => Some(true),
            RtoVerdict::Missed { .. } | RtoVerdict::NotRecovered { .. } => Some(false),
            RtoVerdict::Open { .. } => None,
        }
    }

    /// One line, the same in every report.
    pub fn sentence(&self) -> String {
        let d = |ms: u64| crate::units::fmt_duration(Duration::from_millis(ms));
        let observation = match self {
            RtoVerdict::Met {
                observation_ms: Some(o),
                ..
            }
            | RtoVerdict::Missed {
                observation_ms: Some(o),
                ..
            } => format!(" · observation {} after", d(*o)),
            _ => String::new(),
        };
        self.sentence_alone(&d) + &observation
    }

    fn sentence_alone(&self, d: &dyn Fn(u64) -> String) -> String {
        match self {
            RtoVerdict::Met {
                elapsed_ms,
                target_ms,
                projected: false,
                ..
            } => format!(
                "RTO met: recovered in {} of a {} target",
                d(*elapsed_ms),
                d(*target_ms)
            ),
            RtoVerdict::Met {
                elapsed_ms,
                target_ms,
                projected: true,
                ..
            } => format!(
                "RTO met: a real run projects {} of a {} target (judged on the projection: a drill runs at drill speed)",
                d(*elapsed_ms),
                d(*target_ms)
            ),
            RtoVerdict::Missed {
                elapsed_ms,
                target_ms,
                projected: false,
                ..
            } => format!(
                "RTO MISSED: recovered in {} against a {} target",
                d(*elapsed_ms),
                d(*target_ms)
            ),
            RtoVerdict::Missed {
                elapsed_ms,
                target_ms,
                projected: true,
                ..
            } => format!(
                "RTO MISSED: a real run projects {} against a {} target (judged on the projection: a drill runs at drill speed)",
                d(*elapsed_ms),
                d(*target_ms)
            ),
            // Service came back and did not hold: the run did not recover.
            RtoVerdict::NotRecovered {
                failed_at,
                elapsed_ms,
                restored_ms: Some(restored),
            } => format!(
                "RTO not met: recovery failed during observation{} after {}, after service was restored in {}: it did not hold",
                failed_at
                    .as_ref()
                    .map(|s| format!(" at {s}"))
                    .unwrap_or_default(),
                d(*elapsed_ms),
                d(*restored)
            ),
            RtoVerdict::NotRecovered {
                failed_at: Some(step),
                elapsed_ms,
                restored_ms: None,
            } => format!(
                "RTO not met: recovery failed at {step} after {}",
                d(*elapsed_ms)
            ),
            RtoVerdict::NotRecovered {
                failed_at: None,
                elapsed_ms,
                restored_ms: None,
            } => format!("RTO not met: recovery failed after {}", d(*elapsed_ms)),
            RtoVerdict::Open {
                elapsed_ms,
                target_ms,
                restored_ms: Some(restored),
            } => format!(
                "RTO clock stopped at {} of {}: service restored, observation under way for {} (not judged until the run ends)",
                d(*restored),
                d(*target_ms),
                d(elapsed_ms.saturating_sub(*restored))
            ),
            RtoVerdict::Open {
                elapsed_ms,
                target_ms,
                restored_ms: None,
            } => format!(
                "RTO clock at {} of {}, not recovered",
                d(*elapsed_ms),
                d(*target_ms)
            ),
        }
    }
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
    let recovery = crate::compile::upstream_of(&needs, end);
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
    step.how.as_deref() == Some("rehearsal")
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
    let words = crate::journal::describe::status_words(step_status(step));
    if continued(state, step) {
        format!("{words}, continued")
    } else {
        words.to_owned()
    }
}

/// The status of one step in words, live states included.
pub fn step_status(step: &StepRun) -> &'static str {
    match step.status {
        Some(st) => st.as_str(),
        None if step.waiting => "waiting",
        None if step.in_flight => "running",
        None => "pending",
    }
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
            .filter(|s| s.finished_ms.is_some() && s.status != Some(StepStatus::NotRun))
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
/// and a gate granted with `--yes` at its budget (people take time to answer).
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
                Some(StepStatus::Succeeded)
                | Some(StepStatus::Failed)
                | Some(StepStatus::TimedOut) => {
                    if drill && p.gate && (s.auto_approved || s.wait_ms.is_none()) {
                        Some(p.budget_ms)
                    } else if drill
                        && !p.gate
                        && !matches!(s.how.as_deref(), Some("run" | "rehearsal"))
                    {
                        None
                    } else {
                        s.wait_ms.or(s.duration_ms(state.last_elapsed_ms))
                    }
                }
                _ if drill && p.gate => Some(p.budget_ms),
                _ => None,
            });
            Duration::from_millis(measured.unwrap_or(p.estimate_ms[1]))
        })
        .collect();
    let (_, total) = crate::compile::longest_path_to(&weights, &needs, &order, end);
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
    let order = crate::compile::topo_order(&needs);
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
            action: crate::compile::Action::Command(crate::compile::Command {
                template: String::new(),
                inputs: None,
            }),
            drill: crate::compile::Drill::Run,
            retries: 0,
            backoff: Duration::ZERO,
            poll: None,
            on_failure: Default::default(),
            idempotent: p.idempotent,
            on: Vec::new(),
            env: Default::default(),
            uses: None,
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

/// The stable machine form, from the journal alone.
pub fn json_report(state: &RunState) -> Value {
    let started = state.started.clone().unwrap_or_default();
    let elapsed = elapsed_ms(state);
    let steps: Vec<Value> = state
        .steps
        .iter()
        .map(|st| {
            let duration = if st.estimated {
                st.simulated_ms
            } else {
                st.duration_ms(elapsed)
            };
            json!({
                "id": st.id,
                "title": st.title,
                "status": step_status(st),
                "continued": continued(state, st),
                "started_at": ts(st.started_at),
                "finished_at": ts(st.finished_at),
                "duration_s": duration.map(s),
                "budget_s": s(st.budget_ms),
                "breached": st.breached,
                "attempts": st.attempts,
                "approved_by": if st.gate { json!(st.approved_by) } else { Value::Null },
                "wait_s": st.wait_ms.map(s),
                "estimated": st.estimated,
                "rehearsal": ran_for_real_in_rehearsal(st),
            })
        })
        .collect();
    let machine_ms: u64 = state
        .steps
        .iter()
        .filter(|s| !s.gate && !s.estimated)
        .filter_map(|s| s.duration_ms(elapsed))
        .sum();
    json!({
        "version": REPORT_VERSION,
        "run_id": started.run_id,
        "scenario": started.scenario,
        "title": started.title,
        "mode": state.mode().as_str(),
        "status": run_status(state),
        "operator": started.operator,
        "started_at": ts(state.started_at),
        "finished_at": ts(state.finished_at.or(state.last_at)),
        "elapsed_s": s(elapsed),
        "rehearsal": is_rehearsal(state),
        "rto_ends_at": rto_ends_at(state),
        "recovery_s": recovery_ms(state).map(s),
        "observation_s": observation_ms(state).map(s),
        "observation_steps": observation_steps(state),
        "rto_target_s": s(started.rto_ms),
        "rto_met": rto_verdict(state).met(),
        "rto_verdict": rto_verdict(state).sentence(),
        "failed_at": failed_at(state),
        "continued": state.steps.iter().filter(|st| continued(state, st)).map(|st| st.id.clone()).collect::<Vec<_>>(),
        "projected_rto_s": if state.mode() == Mode::Real { Value::Null } else { json!(projected_rto_ms(state).map(s)) },
        "projected_rto_p90_s": projected_p90_ms(state).map(s),
        "rpo_target_s": started.rpo_ms.map(s),
        "rpo_achieved_s": rpo_achieved_ms(state).map(s),
        "rpo_met": match (started.rpo_ms, rpo_achieved_ms(state)) {
            (Some(t), Some(a)) => Some(a <= t),
            _ => None,
        },
        "machine_s": s(machine_ms),
        "human_wait_s": s(state.human_wait_ms()),
        "critical_path": actual_critical_path(state),
        "runbook_sha256": started.runbook_sha256,
        "steps": steps,
        "escalations": state.escalations.iter().map(|(at, e)| json!({"at_s": s(*at), "channel": e.channel, "reason": e.reason, "ok": e.ok, "error": e.error, "exit_code": e.exit_code, "stderr_tail": e.stderr_tail})).collect::<Vec<_>>(),
        "breaches": state.breaches.iter().map(|(at, b)| json!({"at_s": s(*at), "step": b.step, "budget_s": s(b.budget_ms)})).collect::<Vec<_>>(),
        "interruptions": state.interruptions.iter().map(|(at, i)| json!({"at_s": s(*at), "reason": i.reason})).collect::<Vec<_>>(),
        "resumes": state.resumes.iter().map(|(at, r)| json!({"at_s": s(*at), "operator": r.operator, "downtime_s": s(r.downtime_ms)})).collect::<Vec<_>>(),
    })
}
