//! Resume: a run stopped part-way, its journal replayed as `runbook resume` reads it, and a
//! new machine restored from that state (`Machine::restore`) on the same virtual clock.

use super::*;

/// `a` writes an output `b` uses; `c` comes last.
const CHAIN: &str = "rto: 1h\nsteps:\n  - { id: a, budget: 10m, run: a, drill: run }\n  \
     - { id: b, needs: [a], budget: 10m, run: \"use {{ steps.a.outputs.file }}\", drill: run }\n  \
     - { id: c, needs: [b], budget: 10m, run: c, drill: run }\n";

/// The journal of `sim` so far, replayed: what `resume` restores a machine from. It opens
/// with the `run_started` the CLI writes before the machine exists, with the plan's steps as
/// replay reads them (which are gates, which go on after failing).
pub(super) fn replayed(sim: &Sim) -> RunState {
    let plan = sim.m.plan();
    let steps = plan
        .steps
        .iter()
        .map(|s| PlanStep {
            id: s.id.clone(),
            budget_ms: s.budget.as_millis() as u64,
            gate: s.is_gate(),
            idempotent: s.idempotent,
            continue_on_failure: s.on_failure == OnFailure::Continue,
            finally: s.finally,
            ..Default::default()
        })
        .collect();
    let started = EventKind::RunStarted(Box::new(RunStarted {
        run_id: "r1".into(),
        scenario: plan.scenario.clone(),
        mode: Some(Mode::Real),
        rto_ms: plan.rto.as_millis() as u64,
        plan: PlanSummary {
            steps,
            ..Default::default()
        },
        ..Default::default()
    }));
    let journal = std::iter::once((Duration::ZERO, started)).chain(sim.events.iter().cloned());
    let records: Vec<Record> = journal
        .enumerate()
        .map(|(seq, (t, event))| Record {
            seq: seq as u64,
            at: DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::from_std(t).unwrap(),
            elapsed_ms: t.as_millis() as u64,
            event,
            prev: String::new(),
            hash: String::new(),
        })
        .collect();
    RunState::replay(&records)
}

/// A new machine for `plan`, restored from `state` and started at `now`, as `resume` does
/// when it neither adopts nor marks anything.
pub(super) fn resumed(plan: Arc<Plan>, state: &RunState, now: Duration) -> Sim {
    let mut m = Machine::new(plan, cfg(Mode::Real), Masker::default());
    m.restore(state);
    let mut sim = Sim {
        m,
        now,
        events: Vec::new(),
        spawns: Vec::new(),
        kills: Vec::new(),
        notifies: Vec::new(),
        outcome: None,
    };
    sim.feed(Input::Start);
    sim
}

/// Ctrl-C at `t` while `step` (attempt 1) runs: it is killed and the run stops, resumable.
fn interrupt(sim: &mut Sim, t: Duration, step: &str) {
    sim.advance(t);
    sim.feed(Input::Interrupt);
    let i = sim.m.plan().step_index(step).unwrap();
    sim.feed(Input::Exited {
        step: i,
        attempt: 1,
        result: ExitResult::Signal(15),
        outputs: BTreeMap::new(),
    });
    assert_eq!(sim.outcome, Some(Outcome::Stopped));
}

#[test]
fn a_resumed_run_never_reruns_a_finished_step_and_reruns_the_interrupted_one() {
    let p = plan(CHAIN);
    let mut first = Sim::new(p.clone(), cfg(Mode::Real));
    first.advance(s(60));
    first.feed(Input::Exited {
        step: 0,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("file".into(), "base backup.tar".into())]),
    });
    interrupt(&mut first, s(120), "b");
    assert_eq!(first.finished("b")[0].status, StepStatus::Interrupted);

    let mut again = resumed(p, &replayed(&first), s(300));
    // `a` stays finished; `b` runs again, given `a`'s output from the journal.
    assert_eq!(again.spawned(), vec![(s(300), "b".to_owned())]);
    assert_eq!(again.spawns[0].3, "use 'base backup.tar'");
    again.advance(s(360));
    again.exit("b", 0);
    again.advance(s(420));
    again.exit("c", 0);
    assert_eq!(
        again.spawned(),
        vec![(s(300), "b".to_owned()), (s(360), "c".to_owned())]
    );
    assert!(again.finished("a").is_empty(), "{:?}", again.finished("a"));
    assert_eq!(again.outcome, Some(Outcome::Succeeded { rto_met: true }));
}

#[test]
fn a_step_that_failed_before_the_stop_is_not_run_again() {
    // Two independent steps: `a` fails (with `continue`, so the run goes on), `b` is
    // interrupted.
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 10m, run: a, drill: run, on_failure: continue }\n  \
         - { id: b, budget: 10m, run: b, drill: run }\n",
    );
    let mut first = Sim::new(p.clone(), cfg(Mode::Real));
    first.advance(s(30));
    first.exit("a", 3);
    interrupt(&mut first, s(60), "b");

    let mut again = resumed(p, &replayed(&first), s(120));
    assert_eq!(again.spawned(), vec![(s(120), "b".to_owned())]);
    assert!(again.finished("a").is_empty(), "{:?}", again.finished("a"));
    again.advance(s(180));
    again.exit("b", 0);
    let f = again.run_finished();
    assert_eq!(f.continued, vec!["a".to_owned()]);
    assert_eq!(f.failed_at, None);
}

#[test]
fn a_gate_open_when_the_run_stopped_is_asked_again_on_resume() {
    let p = gate(1);
    let mut first = Sim::new(p.clone(), cfg(Mode::Real));
    first.advance(s(60));
    first.feed(Input::Interrupt);
    assert_eq!(first.outcome, Some(Outcome::Stopped));
    assert_eq!(first.at("approval_requested").len(), 1);

    let mut again = resumed(p, &replayed(&first), s(120));
    assert_eq!(
        again.at("approval_requested"),
        vec![(s(120), "gate".to_owned())]
    );
    again.answer("gate", "alice", true);
    assert_eq!(
        again.at("approval_granted"),
        vec![(s(120), "gate".to_owned())]
    );
    assert_eq!(again.spawned(), vec![(s(120), "after".to_owned())]);
}

#[test]
fn a_gate_decided_before_the_stop_is_not_asked_again_and_a_later_answer_is_late() {
    let p = gate(1);
    let mut first = Sim::new(p.clone(), cfg(Mode::Real));
    first.advance(s(60));
    first.answer("gate", "alice", true);
    interrupt(&mut first, s(90), "after");

    let mut again = resumed(p, &replayed(&first), s(120));
    assert!(again.at("approval_requested").is_empty());
    assert_eq!(again.spawned(), vec![(s(120), "after".to_owned())]);
    again.answer("gate", "bob", false);
    let late = again
        .events
        .iter()
        .find_map(|(_, e)| match e {
            EventKind::ApprovalLate(l) => Some(l.clone()),
            _ => None,
        })
        .expect("bob's deny is journaled late");
    assert_eq!(late.decided_by, vec!["alice".to_owned()]);
    assert_eq!(late.decision, GateDecision::Approved);
    assert_eq!(late.decided_ms, 60_000);
}

#[test]
fn an_escalation_sent_before_the_stop_is_not_sent_again_on_resume() {
    // The gate's schedule escalates to `lead` at 10m.
    let p = gate(1);
    let mut first = Sim::new(p.clone(), cfg(Mode::Real));
    first.advance(s(11 * 60));
    let scheduled = |sim: &Sim| {
        sim.notifies
            .iter()
            .filter(|(_, _, reason)| reason == "schedule")
            .count()
    };
    assert_eq!(scheduled(&first), 1);
    first.feed(Input::Interrupt);

    let mut again = resumed(p, &replayed(&first), s(12 * 60));
    again.advance(s(20 * 60));
    assert_eq!(scheduled(&again), 0, "{:?}", again.notifies);
}

#[test]
fn a_resumed_run_keeps_when_service_was_restored() {
    // `verify` (the `rto_ends_at` step) succeeded at 25m; the watch after it is interrupted.
    let p = plan(OBSERVED);
    let mut first = Sim::new(p.clone(), cfg(Mode::Real));
    first.advance(s(20 * 60));
    first.exit("restore", 0);
    first.advance(s(25 * 60));
    first.exit("verify", 0);
    interrupt(&mut first, s(30 * 60), "monitor");

    let mut again = resumed(p, &replayed(&first), s(40 * 60));
    again.advance(s(60 * 60));
    again.exit("monitor", 0);
    let f = again.run_finished();
    assert_eq!(f.recovery_ms, Some(25 * 60 * 1000));
    assert!(f.rto_met);
}
