//! The JSON report: the stable machine form of one run, rendered from the [`RunReport`]
//! built from the journal alone. A wire format: every field is documented here, and any
//! incompatible change bumps [`REPORT_VERSION`].
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
//! | `projected_rto_p90_s` | drills: the 90th percentile of the plan's duration, simulated from its estimates as `runbook plan --simulate` does ([`P90_ITERATIONS`](super::figures::P90_ITERATIONS) draws, seed 1); `null` otherwise |
//! | `rpo_target_s`, `rpo_achieved_s`, `rpo_met` | the scenario's RPO, and the recovery point the run achieved: the largest `rpo_s` output of any step (a restored backup's age; `null` when no step reports one) |
//! | `machine_s` | the sum of the durations of command steps (work; parallel work counts in full) |
//! | `human_wait_s` | the sum of the waits at approval gates |
//! | `critical_path` | step ids of the chain that decided the finish, as it ran (with `rto_ends_at`, once that step succeeded: the chain that decided the recovery) |
//! | `runbook_sha256` | of the runbook file as it ran |
//! | `steps[]` | `{id, title, status, continued, started_at, finished_at, duration_s, budget_s, breached, attempts, approved_by, wait_s, estimated, rehearsal, condition, finally, value, done, error, why_not_run}` in plan order; `error` is why a step failed (its exit, its timeout, a loop's list that was not one; absent when none); `why_not_run` says in words why a step did not run (its condition was false, a need failed, a drill skipped it; absent for a step that ran); `rehearsal` is true for a step a drill mocks that this rehearsal ran for real; `condition` is the step's `when:` as evaluated, `{expr, values, held, assumed}` (the journal's `step_finished.condition`; `held: false` with status `skipped`: the condition skipped it), absent for a step without one; `status` is a step status or `pending`/`running`/`waiting`; `continued` is true for a step that failed with `on_failure: continue` ("failed, continued"); `finally: true` marks a step of `finally:` (cleanup, run once every other step had ended; absent on other steps); `value` is the value an `input:` step was given (absent on other steps); `done` is a `manual:` step's completion, `{by, note, items}`: who did it, their note, the checklist items confirmed (absent on other steps, and its time is work: not in `human_wait_s`); a mocked or skipped step (`estimated: true`) starts when the run reached it and lasts its estimate, simulated: it took no time on the run's clock |
//! | `escalations[]` | `{at_s, channel, reason, ok, error, exit_code, stderr_tail}`; the last three say how a failed page failed (`null` when it did not) |
//! | `breaches[]` | `{at_s, step, budget_s}` — budget breaches, in time order: the steps', and a called runbook's group's (`step` is the call's id, `at_s` when its budget ran out) |
//! | `calls[]` | the runbooks called (`runbook:`), absent when none: `{id, runbook, steps, budget_s, started_s, duration_s, breached}` — the group's step ids, the call's budget, its first step's start on the run's clock and the time to its last step's end (to the run's last event while it has not ended; `null` before it started), and whether that exceeded the budget |
//! | `interruptions[]`, `resumes[]` | `{at_s, reason}` and `{at_s, operator, downtime_s}` |

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::model::RunReport;
use crate::journal::RunState;

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

/// The stable machine form, from the journal alone.
pub fn json_report(state: &RunState) -> Value {
    render(&RunReport::new(state, &[]))
}

/// The report model as the JSON report's fields.
pub fn render(m: &RunReport) -> Value {
    let steps: Vec<Value> = m
        .steps
        .iter()
        .map(|st| {
            let mut step = json!({
                "id": st.id,
                "title": st.title,
                "status": st.status.as_str(),
                "continued": st.continued,
                "started_at": ts(st.started_at),
                "finished_at": ts(st.finished_at),
                "duration_s": st.duration_ms.map(s),
                "budget_s": s(st.budget_ms),
                "breached": st.breached,
                "attempts": st.attempts,
                "approved_by": if st.gate { json!(st.approved_by) } else { Value::Null },
                "wait_s": st.wait_ms.map(s),
                "estimated": st.estimated,
                "rehearsal": st.rehearsal,
            });
            // Only a step with a `when:` has `condition`, and only a cleanup step `finally`:
            // other runs' reports are as they were.
            if let Some(c) = &st.condition {
                step["condition"] = json!({"expr": c.expr, "values": c.values, "held": c.held, "assumed": c.assumed});
            }
            if st.finally {
                step["finally"] = json!(true);
            }
            if let Some(v) = &st.value {
                step["value"] = json!(v);
            }
            if let Some(items) = &st.items {
                step["done"] = json!({"by": st.approved_by, "note": st.note, "items": items});
            }
            // Why it failed, or why it did not run: only where there is something to say.
            if let Some(e) = &st.error {
                step["error"] = json!(e);
            }
            if let Some(why) = &st.why_not_run {
                step["why_not_run"] = json!(why);
            }
            step
        })
        .collect();
    let mut report = json!({
        "version": REPORT_VERSION,
        "run_id": m.run_id,
        "scenario": m.scenario,
        "title": m.title,
        "mode": m.mode.as_str(),
        "status": m.status.as_str(),
        "operator": m.operator,
        "started_at": ts(m.started_at),
        "finished_at": ts(m.ended_at),
        "elapsed_s": s(m.elapsed_ms),
        "rehearsal": m.rehearsal,
        "rto_ends_at": m.rto_ends_at,
        "recovery_s": m.recovery_ms.map(s),
        "observation_s": m.observation_ms.map(s),
        "observation_steps": m.observation_steps,
        "rto_target_s": s(m.rto_ms),
        "rto_met": m.rto.met(),
        "rto_verdict": m.rto.sentence(),
        "failed_at": m.failed_at,
        "continued": m.continued(),
        "projected_rto_s": m.projected_ms.map(s),
        "projected_rto_p90_s": m.projected_p90_ms.map(s),
        "rpo_target_s": m.rpo_ms.map(s),
        "rpo_achieved_s": m.rpo_achieved_ms.map(s),
        "rpo_met": m.rpo_met(),
        "machine_s": s(m.machine_ms),
        "human_wait_s": s(m.human_ms),
        "critical_path": m.critical_path,
        "runbook_sha256": m.sha256,
        "steps": steps,
        "escalations": m.escalations.iter().map(|(at, e)| json!({"at_s": s(*at), "channel": e.channel, "reason": e.reason, "ok": e.ok, "error": e.error, "exit_code": e.exit_code, "stderr_tail": e.stderr_tail})).collect::<Vec<_>>(),
        "breaches": m.breaches.iter().map(|(at, b)| json!({"at_s": s(*at), "step": b.step, "budget_s": s(b.budget_ms)})).collect::<Vec<_>>(),
        "interruptions": m.interruptions.iter().map(|(at, i)| json!({"at_s": s(*at), "reason": i.reason})).collect::<Vec<_>>(),
        "resumes": m.resumes.iter().map(|(at, r)| json!({"at_s": s(*at), "operator": r.operator, "downtime_s": s(r.downtime_ms)})).collect::<Vec<_>>(),
    });
    // Only a run that called runbooks has `calls`: other runs' reports are as they were.
    if !m.calls.is_empty() {
        report["calls"] = m
            .calls
            .iter()
            .map(|c| json!({"id": c.id, "runbook": c.runbook, "steps": c.steps, "budget_s": s(c.budget_ms), "started_s": c.start_ms.map(s), "duration_s": c.duration_ms.map(s), "breached": c.breached}))
            .collect();
    }
    report
}
