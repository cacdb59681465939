//! Attempts: what starts when, retries, polls, failures that end or continue the run, and
//! stopping.

use super::*;

#[test]
fn an_aborting_failure_starts_nothing_new_and_marks_the_rest_not_run() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run }\n  - { id: slow, budget: 1m, run: s, drill: run }\n  \
         - { id: b, needs: [a], budget: 1m, run: b, drill: run }\n  - { id: c, needs: [slow], budget: 1m, run: c, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    assert_eq!(sim.spawned().len(), 2);
    sim.advance(s(5));
    sim.exit("a", 3);
    assert!(sim.outcome.is_none(), "slow still runs");
    sim.advance(s(10));
    sim.exit("slow", 0);
    // c's need succeeded, but the run is aborting: c does not start.
    assert_eq!(sim.spawned().len(), 2);
    assert_eq!(sim.finished("b")[0].status, StepStatus::NotRun);
    assert_eq!(sim.finished("c")[0].status, StepStatus::NotRun);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
}

/// Regression: a run whose only failure was an `on_failure: continue` step failed (and
/// exited 1), as if `continue` meant nothing for the run.
#[test]
fn on_failure_continue_lets_dependents_run_and_the_run_succeed() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run, on_failure: continue }\n  - { id: b, needs: [a], budget: 1m, run: b, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.exit("a", 1);
    assert_eq!(sim.spawned().last().unwrap().1, "b");
    sim.exit("b", 0);
    assert_eq!(sim.outcome, Some(Outcome::Succeeded { rto_met: true }));
    let f = sim.run_finished();
    assert_eq!(f.status, RunStatus::Succeeded);
    assert_eq!(f.continued, vec!["a".to_owned()]);
    assert_eq!(f.failed_at, None);
}

/// A continued failure does not hide a real one: the run fails where the recovery failed.
#[test]
fn a_failure_after_a_continued_one_fails_the_run_at_its_own_step() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run, on_failure: continue }\n  - { id: b, needs: [a], budget: 1m, run: b, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.exit("a", 1);
    sim.exit("b", 2);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    let f = sim.run_finished();
    assert_eq!(f.status, RunStatus::Failed);
    assert_eq!(f.failed_at.as_deref(), Some("b"));
    assert_eq!(f.continued, vec!["a".to_owned()]);
}

/// Regression: a run that failed 5 s into a 1 h RTO was journaled `rto_met: true`, and every
/// report said "RTO met" of a run that never recovered.
#[test]
fn a_failed_run_does_not_meet_its_rto_however_early_it_ends() {
    let mut sim = Sim::new(plan(TWO), cfg(Mode::Real));
    sim.advance(s(5));
    sim.exit("a", 3);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    let f = sim.run_finished();
    assert!(!f.rto_met, "{f:?}");
    assert_eq!(f.failed_at.as_deref(), Some("a"));
    assert_eq!(f.elapsed_ms, 5_000);
}

/// Regression: a denied run met its RTO too; it fails at the gate.
#[test]
fn a_denied_run_does_not_meet_its_rto_and_failed_at_its_gate() {
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    sim.advance(s(60));
    sim.answer("gate", "bob", false);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    let f = sim.run_finished();
    assert!(!f.rto_met);
    assert_eq!(f.failed_at.as_deref(), Some("gate"));
}

#[test]
fn retries_wait_their_backoff_then_give_up() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run, retries: 2, backoff: 10s }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(1));
    sim.exit("a", 1);
    assert!(sim.finished("a")[0].will_retry);
    sim.advance(s(10));
    assert_eq!(sim.spawned().len(), 1, "backoff not over at +10s");
    sim.advance(s(11));
    assert_eq!(sim.spawned()[1], (s(11), "a".into()));
    sim.exit("a", 1);
    sim.advance(s(21));
    assert_eq!(sim.spawned()[2], (s(21), "a".into()));
    sim.exit("a", 1);
    let f = sim.finished("a");
    assert_eq!(f.len(), 3);
    assert!(!f[2].will_retry);
    assert_eq!(f[2].attempt, 3);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
}

#[test]
fn poll_reruns_every_interval_until_the_window_closes() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, poll: { every: 10s, within: 30s } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    for k in 0..3 {
        sim.exit("a", 1);
        sim.advance(s(10 * (k + 1)));
    }
    // Attempts at 0, 10, 20, 30; the one at 30 fails and 40 > 30: done.
    assert_eq!(
        sim.spawned().iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![s(0), s(10), s(20), s(30)]
    );
    sim.exit("a", 1);
    let last = sim.finished("a").pop().unwrap();
    assert!(!last.will_retry);
    assert!(last.error.unwrap().contains("poll window of 30s closed"));
}

#[test]
fn poll_succeeds_as_soon_as_the_check_passes() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, poll: { every: 10s, within: 1m } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.exit("a", 1);
    sim.advance(s(10));
    sim.exit("a", 0);
    assert_eq!(sim.outcome, Some(Outcome::Succeeded { rto_met: true }));
}

#[test]
fn max_parallel_caps_concurrency_in_plan_order() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run }\n  - { id: b, budget: 1m, run: b, drill: run }\n  - { id: c, budget: 1m, run: c, drill: run }\n",
    );
    let mut c = cfg(Mode::Real);
    c.max_parallel = Some(2);
    let mut sim = Sim::new(p, c);
    assert_eq!(
        sim.spawned()
            .iter()
            .map(|x| x.1.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    sim.exit("b", 0);
    assert_eq!(sim.spawned().last().unwrap().1, "c");
}

#[test]
fn an_interrupt_kills_running_steps_and_stops_resumable() {
    let mut sim = Sim::new(plan(TWO), cfg(Mode::Real));
    sim.advance(s(3));
    sim.feed(Input::Interrupt);
    assert_eq!(sim.kills, vec![(s(3), 0)]);
    sim.feed(exited(1, ExitResult::Signal(15)));
    assert_eq!(sim.finished("a")[0].status, StepStatus::Interrupted);
    assert_eq!(sim.at("run_interrupted").len(), 1);
    assert_eq!(sim.outcome, Some(Outcome::Stopped));
}

#[test]
fn an_interrupt_during_a_backoff_stops_the_run_at_once() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, retries: 3, backoff: 60s }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(1));
    sim.exit("a", 1);
    assert!(sim.finished("a")[0].will_retry);
    sim.advance(s(2));
    sim.feed(Input::Interrupt);
    // Not at +61s, when the backoff would have ended: now, with no new attempt.
    assert_eq!(sim.outcome, Some(Outcome::Stopped));
    assert_eq!(sim.at("run_interrupted"), vec![(s(2), String::new())]);
    assert_eq!(sim.spawned().len(), 1);
}

#[test]
fn an_aborting_failure_ends_the_run_without_waiting_out_a_backoff() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, retries: 3, backoff: 60s }\n  - { id: b, budget: 5m, run: b, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(1));
    sim.exit("a", 1);
    sim.advance(s(2));
    sim.exit("b", 1);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    assert_eq!(
        sim.spawned().len(),
        2,
        "a is not tried again once the run aborts"
    );
}

#[test]
fn a_poll_attempt_still_running_when_the_window_closes_is_killed() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, poll: { every: 10s, within: 30s } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(5));
    sim.exit("a", 1);
    sim.advance(s(15)); // the second attempt starts at +15s and hangs
    sim.advance(s(29));
    assert!(sim.kills.is_empty());
    sim.advance(s(31));
    assert_eq!(sim.kills, vec![(s(30), 0)]);
    sim.feed(exited(2, ExitResult::Signal(15)));
    let last = sim.finished("a").pop().unwrap();
    assert_eq!(last.status, StepStatus::TimedOut);
    assert!(!last.will_retry);
    assert!(
        last.error
            .as_deref()
            .unwrap()
            .contains("still running when its poll window of 30s closed"),
        "{last:?}"
    );
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
}

/// Issue 13: every not-ready attempt of a `poll` step was journaled as a failure.
#[test]
fn a_poll_attempt_that_is_not_ready_is_journaled_as_such_not_as_a_failure() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, poll: { every: 30s, within: 2m } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(2));
    sim.exit("a", 1);
    let f = sim.finished("a");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].status, StepStatus::NotReady);
    assert!(f[0].will_retry);
    assert_eq!(f[0].next_in_ms, Some(30_000));
    sim.advance(s(32));
    sim.exit("a", 0);
    assert_eq!(sim.finished("a")[1].status, StepStatus::Succeeded);
    assert_eq!(sim.outcome, Some(Outcome::Succeeded { rto_met: true }));
}

/// Issue 13: only the window closing fails a poll step; its attempts before were not ready.
#[test]
fn a_poll_step_fails_only_when_its_window_closes() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, poll: { every: 10s, within: 25s } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    for k in 0..2 {
        sim.exit("a", 3);
        sim.advance(s(10 * (k + 1)));
    }
    sim.exit("a", 3);
    let statuses: Vec<StepStatus> = sim.finished("a").iter().map(|f| f.status).collect();
    assert_eq!(
        statuses,
        vec![
            StepStatus::NotReady,
            StepStatus::NotReady,
            StepStatus::Failed
        ]
    );
}
