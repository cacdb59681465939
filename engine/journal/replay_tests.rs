//! Unit tests of [`RunState::replay`], the pure fold of journal records into a run's state
//! that status, resume and every report read: each journal here is written as its JSON wire
//! format, so the tests hold the fold to what a journal file says, not to the event types.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::super::Record;
use super::super::events::{RunStatus, StepStatus};
use super::{RunState, StepRun};

/// A journal being written, one record at a time, on a run clock that starts at `T0`.
#[derive(Default)]
struct Journal(Vec<Record>);

const T0: &str = "2026-03-01T10:00:00Z";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(T0)
        .expect("T0 is RFC 3339")
        .with_timezone(&Utc)
}

impl Journal {
    /// Appends a record as it would be read back from a journal line.
    fn at(&mut self, elapsed_ms: u64, ty: &str, data: Value) -> &mut Self {
        let ms = i64::try_from(elapsed_ms).expect("a test's clock fits in i64");
        let at = t0() + TimeDelta::milliseconds(ms);
        let line = json!({
            "seq": self.0.len(),
            "at": at.to_rfc3339(),
            "elapsed_ms": elapsed_ms,
            "type": ty,
            "data": data,
            "prev": "",
            "hash": "",
        });
        let record = serde_json::from_value(line.clone())
            .unwrap_or_else(|e| panic!("{ty} record does not parse: {e}\n{line}"));
        self.0.push(record);
        self
    }

    fn replay(&self) -> RunState {
        RunState::replay(&self.0)
    }
}

fn plan_step(id: &str, budget_ms: u64, gate: bool) -> Value {
    json!({
        "id": id, "title": format!("Step {id}"), "needs": [], "budget_ms": budget_ms,
        "estimate_ms": [budget_ms / 4, budget_ms / 2, budget_ms], "gate": gate, "idempotent": !gate,
    })
}

/// `run_started` of a run with the given plan steps.
fn started(j: &mut Journal, steps: Vec<Value>) {
    j.at(
        0,
        "run_started",
        json!({
            "run_id": "r1", "scenario": "db-failover", "title": "DB failover", "mode": "drill",
            "operator": "ana", "runbook": "runbooks/db-failover.yaml", "runbook_sha256": "00",
            "rto_ms": 600_000, "rpo_ms": null, "env": null, "vars": {},
            "plan": {"steps": steps, "critical_path": [], "critical_path_ms": 0},
        }),
    );
}

fn step_started(j: &mut Journal, at: u64, step: &str, attempt: u32) {
    j.at(
        at,
        "step_started",
        json!({"step": step, "attempt": attempt, "command": format!("./{step}.sh"), "how": "run"}),
    );
}

fn step_finished(j: &mut Journal, at: u64, step: &str, attempt: u32, status: &str, retry: bool) {
    let failed = status != "succeeded";
    j.at(
        at,
        "step_finished",
        json!({
            "step": step, "status": status, "attempt": attempt,
            "exit_code": if failed { 1 } else { 0 }, "signal": null, "duration_ms": 0,
            "will_retry": retry, "error": if failed { Some("exit 1") } else { None },
        }),
    );
}

fn step<'s>(state: &'s RunState, id: &str) -> &'s StepRun {
    state
        .step(id)
        .unwrap_or_else(|| panic!("no step `{id}` in {:?}", state.steps))
}

#[test]
fn steps_that_succeed_fail_and_retry_end_with_their_last_word() {
    let mut j = Journal::default();
    started(
        &mut j,
        vec![
            plan_step("stop", 60_000, false),
            plan_step("restore", 120_000, false),
            plan_step("promote", 30_000, false),
        ],
    );
    step_started(&mut j, 100, "stop", 1);
    step_finished(&mut j, 1_100, "stop", 1, "succeeded", false);
    step_started(&mut j, 1_200, "restore", 1);
    step_finished(&mut j, 2_200, "restore", 1, "failed", true);
    step_started(&mut j, 7_200, "restore", 2);
    step_finished(&mut j, 9_200, "restore", 2, "succeeded", false);
    step_started(&mut j, 9_300, "promote", 1);
    step_finished(&mut j, 9_800, "promote", 1, "failed", false);
    j.at(
        9_900,
        "run_finished",
        json!({"status": "failed", "elapsed_ms": 9_900, "rto_met": false, "rto_ms": 600_000,
               "failed_at": "promote"}),
    );
    let s = j.replay();

    assert_eq!(s.run_id(), "r1");
    assert_eq!(s.scenario(), "db-failover");
    assert_eq!(s.records, 10);
    assert_eq!(s.last_elapsed_ms, 9_900);
    assert_eq!(
        s.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["stop", "restore", "promote"],
        "steps in plan order"
    );

    let stop = step(&s, "stop");
    assert_eq!(stop.status, Some(StepStatus::Succeeded));
    assert_eq!(
        (stop.started_ms, stop.finished_ms),
        (Some(100), Some(1_100))
    );
    assert_eq!(stop.attempts, 1);
    assert_eq!(stop.budget_ms, 60_000);
    assert_eq!(stop.estimate_ms, 30_000, "the likely estimate");
    assert!(!stop.in_flight);

    // A retry keeps the first start and ends at the final finish; the failure in between is
    // not the step's last word.
    let restore = step(&s, "restore");
    assert_eq!(restore.status, Some(StepStatus::Succeeded));
    assert_eq!(restore.attempts, 2);
    assert_eq!(restore.started_ms, Some(1_200));
    assert_eq!(restore.finished_ms, Some(9_200));
    assert_eq!(restore.duration_ms(99_999), Some(8_000));
    assert_eq!(
        (restore.exit_code, restore.error.as_deref()),
        (Some(0), None)
    );

    let promote = step(&s, "promote");
    assert_eq!(promote.status, Some(StepStatus::Failed));
    assert_eq!(promote.exit_code, Some(1));
    assert_eq!(promote.error.as_deref(), Some("exit 1"));

    let finished = s.finished.as_ref().expect("run_finished was read");
    assert_eq!(finished.status, RunStatus::Failed);
    assert_eq!(finished.failed_at.as_deref(), Some("promote"));
    assert!(s.is_finished());
    assert!(!s.sealed);
}

#[test]
fn a_gate_approved_and_one_timed_out_keep_who_and_how_long() {
    let mut j = Journal::default();
    started(
        &mut j,
        vec![
            plan_step("go", 300_000, true),
            plan_step("late", 300_000, true),
        ],
    );
    let request = |step: &str| {
        json!({"step": step, "prompt": format!("{step}?"), "approvers": ["ana", "bo"], "min": 2,
               "timeout_ms": 60_000})
    };
    j.at(100, "approval_requested", request("go"));
    j.at(
        5_000,
        "approval_received",
        json!({"step": "go", "by": "ana", "comment": null, "wait_ms": 4_900}),
    );
    // Asked again on resume, waiting since the first request. The machine counts the new
    // request's approvals only: ana's earlier one no longer counts toward `min`.
    j.at(6_000, "approval_requested", request("go"));
    assert!(
        step(&j.replay(), "go").approved_by.is_empty(),
        "a new request starts counting from zero"
    );
    j.at(
        8_000,
        "approval_granted",
        json!({"step": "go", "by": ["ana", "bo"], "comment": "ok", "auto": false, "wait_ms": 7_900}),
    );
    j.at(8_100, "approval_requested", request("late"));
    let waiting = j.replay();
    assert!(step(&waiting, "late").waiting, "asked and not answered");
    assert_eq!(step(&waiting, "late").prompt.as_deref(), Some("late?"));

    j.at(
        68_100,
        "approval_timed_out",
        json!({"step": "late", "wait_ms": 60_000}),
    );
    let s = j.replay();

    let go = step(&s, "go");
    assert!(go.gate);
    assert!(!go.waiting);
    assert_eq!(go.approved_by, ["ana", "bo"]);
    assert!(!go.auto_approved);
    assert_eq!(go.requested_ms, Some(100), "the first request counts");
    assert_eq!(go.wait_ms, Some(7_900));
    assert_eq!(go.approvers, ["ana", "bo"]);
    assert_eq!(go.min, 2);

    let late = step(&s, "late");
    assert!(!late.waiting);
    assert!(late.approved_by.is_empty());
    assert_eq!(late.denied_by, None);
    assert_eq!(late.wait_ms, Some(60_000));
    assert_eq!(s.human_wait_ms(), 67_900);
}

#[test]
fn an_interrupted_run_resumed_counts_its_downtime_and_adopts_running_steps() {
    let mut j = Journal::default();
    started(
        &mut j,
        vec![
            plan_step("copy", 600_000, false),
            plan_step("check", 60_000, false),
        ],
    );
    step_started(&mut j, 100, "copy", 1);
    j.at(2_000, "run_interrupted", json!({"reason": "signal"}));
    j.at(2_001, "run_sealed", json!({"records": 3, "last_hash": "h"}));
    let stopped = j.replay();
    assert!(stopped.sealed);
    assert!(!stopped.is_finished(), "interrupted is not finished");
    assert!(step(&stopped, "copy").in_flight, "left running for resume");
    assert_eq!(stopped.interruptions.len(), 1);
    assert_eq!(
        stopped.interruptions.first().map(|(at, _)| *at),
        Some(2_000)
    );

    j.at(
        32_000,
        "run_resumed",
        json!({"operator": "bo", "downtime_ms": 30_000, "adopted": ["copy"], "rerun": []}),
    );
    // The adopted step finishes without starting again: it ran on while nobody watched, and
    // its record says so (39.9 s from its start at 100 ms).
    j.at(
        40_000,
        "step_finished",
        json!({
            "step": "copy", "status": "succeeded", "attempt": 1, "exit_code": 0,
            "signal": null, "duration_ms": 39_900, "will_retry": false, "error": null,
        }),
    );
    step_started(&mut j, 40_100, "check", 1);
    step_finished(&mut j, 41_000, "check", 1, "succeeded", false);
    let s = j.replay();

    assert!(!s.sealed, "a record after the seal unseals");
    let [(at, resumed)] = s.resumes.as_slice() else {
        panic!("one resume expected: {:?}", s.resumes)
    };
    assert_eq!(*at, 32_000);
    assert_eq!(resumed.operator, "bo");
    assert_eq!(resumed.downtime_ms, 30_000);
    assert_eq!(resumed.adopted, ["copy"]);

    let copy = step(&s, "copy");
    assert!(!copy.in_flight);
    assert_eq!(copy.status, Some(StepStatus::Succeeded));
    assert_eq!(copy.attempts, 1, "adopted, not re-run");
    assert_eq!(
        copy.started_ms,
        Some(100),
        "from its start before the interruption"
    );
    assert_eq!(copy.finished_ms, Some(40_000));
    assert_eq!(step(&s, "check").status, Some(StepStatus::Succeeded));
    assert_eq!(s.last_elapsed_ms, 41_000);
    assert_eq!(
        s.last_at,
        Some(t0() + TimeDelta::milliseconds(41_000)),
        "the wall clock of the last record"
    );
}

/// A step that ended while no engine watched: the resume journals its end late, with the
/// duration its supervisor timed; replay puts its finish at its start plus that duration.
#[test]
fn an_adopted_step_that_ended_while_nobody_watched_finishes_when_it_ended() {
    let mut j = Journal::default();
    started(&mut j, vec![plan_step("copy", 3_000, false)]);
    step_started(&mut j, 100, "copy", 1);
    j.at(
        5_000,
        "run_resumed",
        json!({"operator": "bo", "downtime_ms": 4_000, "adopted": ["copy"], "rerun": []}),
    );
    j.at(
        5_010,
        "step_finished",
        json!({
            "step": "copy", "status": "succeeded", "attempt": 1, "exit_code": 0,
            "signal": null, "duration_ms": 1_500, "will_retry": false, "error": null,
        }),
    );
    let s = j.replay();
    let copy = step(&s, "copy");
    assert_eq!(copy.finished_ms, Some(1_600));
    assert_eq!(
        copy.finished_at,
        Some(t0() + TimeDelta::milliseconds(1_600)),
        "the wall clock of its end, not of the record"
    );
}

/// A step the operator marked done on resume carries no duration: it finishes when the
/// resume said so, not at its start.
#[test]
fn a_step_marked_done_on_resume_finishes_when_it_was_marked() {
    let mut j = Journal::default();
    started(&mut j, vec![plan_step("copy", 3_000, false)]);
    step_started(&mut j, 100, "copy", 1);
    j.at(
        5_000,
        "run_resumed",
        json!({"operator": "bo", "downtime_ms": 4_000, "adopted": [], "rerun": [], "marked_done": ["copy"]}),
    );
    j.at(
        5_010,
        "step_finished",
        json!({
            "step": "copy", "status": "succeeded", "attempt": 1, "exit_code": null,
            "signal": null, "duration_ms": 0, "will_retry": false, "error": null,
            "marked_done_by": "bo",
        }),
    );
    let s = j.replay();
    assert_eq!(step(&s, "copy").finished_ms, Some(5_010));
}
