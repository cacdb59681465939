//! `finally:` on the virtual clock: cleanup after a failure, after a denial, not after a
//! stop (resume runs it, once); its own failure fails a succeeded run. And `backoff:` that
//! grows, to the millisecond.

use super::restore::{replayed, resumed};
use super::*;

/// `a` then `b`; `cleanup` reports the outcome.
const CLEANUP: &str = "rto: 1h\nsteps:\n  - { id: a, budget: 10m, run: a, drill: run }\n  \
     - { id: b, needs: [a], budget: 10m, run: b, drill: run }\nfinally:\n  \
     - { id: cleanup, budget: 5m, run: \"report {{ run.status }} {{ run.failed_steps | join(',') }}\", drill: run }\n";

#[test]
fn finally_runs_after_a_failure_and_sees_the_failed_steps() {
    let mut sim = Sim::new(plan(CLEANUP), cfg(Mode::Real));
    assert_eq!(sim.spawned(), vec![(s(0), "a".to_owned())]);
    sim.advance(s(30));
    sim.exit("a", 2);
    // `b` cannot run; the cleanup starts at once, with the outcome so far.
    assert_eq!(sim.finished("b")[0].status, StepStatus::NotRun);
    assert_eq!(sim.spawned().last(), Some(&(s(30), "cleanup".to_owned())));
    assert_eq!(sim.spawns.last().unwrap().3, "report failed a");
    assert!(sim.outcome.is_none(), "the run waits for its cleanup");
    sim.advance(s(40));
    sim.exit("cleanup", 0);
    let f = sim.run_finished();
    assert_eq!(
        f.status,
        RunStatus::Failed,
        "a cleanup never makes a failed run succeed"
    );
    assert_eq!(f.failed_at.as_deref(), Some("a"));
    assert_eq!(f.elapsed_ms, 40_000, "the cleanup's time is the run's");
}

#[test]
fn finally_waits_for_every_step_and_sees_a_success() {
    let mut sim = Sim::new(plan(CLEANUP), cfg(Mode::Real));
    sim.advance(s(10));
    sim.exit("a", 0);
    assert_eq!(sim.spawned().last(), Some(&(s(10), "b".to_owned())));
    sim.advance(s(20));
    sim.exit("b", 0);
    assert_eq!(sim.spawned().last(), Some(&(s(20), "cleanup".to_owned())));
    assert_eq!(sim.spawns.last().unwrap().3, "report succeeded ''");
    sim.exit("cleanup", 0);
    assert_eq!(sim.outcome, Some(Outcome::Succeeded { rto_met: true }));
}

#[test]
fn finally_runs_after_a_denial() {
    let p = plan(&format!(
        "{}finally:\n  - {{ id: lift, budget: 1m, run: lift, drill: run }}\n",
        GATE.replace("MIN", "1")
    ));
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(60));
    sim.answer("gate", "bob", false);
    assert_eq!(sim.finished("after")[0].status, StepStatus::NotRun);
    assert_eq!(sim.spawned(), vec![(s(60), "lift".to_owned())]);
    sim.advance(s(70));
    sim.exit("lift", 0);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    assert_eq!(sim.run_finished().failed_at.as_deref(), Some("gate"));
}

#[test]
fn a_failing_finally_step_fails_a_succeeded_run_and_stops_no_other_cleanup() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 10m, run: a, drill: run }\nfinally:\n  \
         - { id: one, budget: 1m, run: one, drill: run }\n  \
         - { id: two, budget: 1m, run: two, drill: run }\n  \
         - { id: three, needs: [one], budget: 1m, run: three, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(10));
    sim.exit("a", 0);
    assert_eq!(
        sim.spawned(),
        vec![
            (s(0), "a".to_owned()),
            (s(10), "one".to_owned()),
            (s(10), "two".to_owned())
        ]
    );
    sim.advance(s(15));
    sim.exit("one", 1);
    assert!(sim.outcome.is_none(), "`two` still runs");
    sim.advance(s(20));
    sim.exit("two", 0);
    assert_eq!(sim.finished("three")[0].status, StepStatus::NotRun);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    assert_eq!(sim.run_finished().failed_at.as_deref(), Some("one"));
}

#[test]
fn a_stop_does_not_run_finally_and_resume_runs_it_once() {
    let p = plan(CLEANUP);
    let mut first = Sim::new(p.clone(), cfg(Mode::Real));
    first.advance(s(30));
    first.feed(Input::Interrupt);
    first.feed(Input::Exited {
        step: 0,
        attempt: 1,
        result: ExitResult::Signal(15),
        outputs: BTreeMap::new(),
    });
    assert_eq!(first.outcome, Some(Outcome::Stopped));
    assert_eq!(first.spawned(), vec![(s(0), "a".to_owned())]);

    let mut again = resumed(p.clone(), &replayed(&first), s(100));
    again.exit("a", 1);
    assert_eq!(
        again.spawned().last(),
        Some(&(s(100), "cleanup".to_owned()))
    );
    // Stopped again while the cleanup runs: a second resume runs it again (it never
    // finished), and then never a third time.
    again.feed(Input::Interrupt);
    again.exit("cleanup", 143);
    assert_eq!(again.outcome, Some(Outcome::Stopped));
    let mut journal = first;
    journal.events.extend(again.events);
    let mut last = resumed(p.clone(), &replayed(&journal), s(200));
    assert_eq!(last.spawned(), vec![(s(200), "cleanup".to_owned())]);
    last.exit("cleanup", 0);
    assert_eq!(last.outcome, Some(Outcome::Failed { rto_met: false }));
    assert_eq!(last.run_finished().failed_at.as_deref(), Some("a"));
    assert!(
        last.finished("b").is_empty(),
        "`b` was journaled not run once"
    );
}

#[test]
fn a_growing_backoff_waits_exactly_initial_times_factor_up_to_max() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 10m, run: a, drill: run, retries: 5, \
         backoff: { initial: 5s, factor: 2, max: 30s } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    for _ in 0..5 {
        let (t, _) = sim.spawned().last().unwrap().clone();
        sim.advance(t + s(1));
        sim.exit("a", 1);
        // Timer by timer to the backoff's end, and not past it: the next attempt starts there.
        let spawned = sim.spawns.len();
        while sim.spawns.len() == spawned {
            let wake = sim.m.next_wake().unwrap();
            sim.advance(wake);
        }
    }
    let starts: Vec<u64> = sim.spawned().iter().map(|(t, _)| t.as_secs()).collect();
    // Each attempt fails 1 s in; the next starts 5, 10, 20, 30 (capped), 30 s later.
    assert_eq!(starts, [0, 6, 17, 38, 69, 100]);
}

/// Without `rto_ends_at` the cleanup counts against the RTO, after the main steps: in the
/// plan's critical path, the live projection and the simulation alike.
#[test]
fn without_rto_ends_at_the_cleanup_follows_the_main_steps_everywhere() {
    let p = plan(CLEANUP);
    let ids: Vec<&str> = p
        .critical_path
        .iter()
        .map(|&i| p.steps[i].id.as_str())
        .collect();
    assert_eq!(ids, ["a", "b", "cleanup"]);
    assert_eq!(p.critical_path_budget, s(25 * 60));
    let dists = crate::simulate::distributions(&p, &BTreeMap::new());
    let sim_run = crate::simulate::simulate(&p, &dists, 50, 7);
    // Budgets alone: each step is drawn within ±10% of its budget, so the sum of the chain
    // is at least 90% of 25m, which a parallel cleanup (at most 20m + 10%) never reaches.
    assert!(sim_run.p50_s >= 0.9 * 25.0 * 60.0, "{}", sim_run.p50_s);

    let mut sim = Sim::new(p, cfg(Mode::Real));
    assert_eq!(sim.m.projected_finish(sim.now), s(25 * 60));
    sim.advance(s(60));
    sim.exit("a", 0);
    assert_eq!(sim.m.projected_finish(sim.now), s(60 + 15 * 60));
    sim.advance(s(120));
    sim.exit("b", 0);
    sim.advance(s(180));
    // The cleanup has run a minute of its 5m budget.
    assert_eq!(sim.m.projected_finish(sim.now), s(180 + 4 * 60));
}

/// With `rto_ends_at` the cleanup is observation: it adds nothing to what the RTO measures.
#[test]
fn with_rto_ends_at_the_cleanup_is_off_the_critical_path_and_the_projection() {
    let p = plan(&CLEANUP.replace("rto: 1h\n", "rto: 1h\nrto_ends_at: b\n"));
    assert_eq!(p.critical_path_budget, s(20 * 60));
    let sim = Sim::new(p, cfg(Mode::Real));
    assert_eq!(sim.m.projected_finish(sim.now), s(20 * 60));
}

/// `a` writes `k`; `b`, after it, never runs when `a` fails; the cleanup reads both.
const READS_OUTPUTS: &str = "rto: 1h\nsteps:\n  - { id: a, budget: 10m, run: a, drill: run }\n  \
     - { id: b, needs: [a], budget: 10m, run: b, drill: run }\nfinally:\n  \
     - { id: lift, budget: 5m, run: \"lift {{ steps.a.outputs.k }} {{ steps.b.outputs.j | default('none') }}\", drill: run }\n  \
     - { id: strict, budget: 5m, run: \"strict {{ steps.b.outputs.j }}\", drill: run }\n";

#[test]
fn finally_reads_the_main_steps_outputs_and_a_not_run_ones_only_with_a_default() {
    let mut sim = Sim::new(plan(READS_OUTPUTS), cfg(Mode::Real));
    sim.advance(s(10));
    sim.feed(Input::Exited {
        step: 0,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("k".into(), "v1".into())]),
    });
    sim.advance(s(20));
    sim.exit("b", 0);
    let lift = sim.spawns.iter().find(|x| x.3.starts_with("lift")).unwrap();
    assert_eq!(lift.3, "lift v1 none", "b wrote no `j`: the default");

    // `a` fails: `b` is not run, and a cleanup reading its output without a default fails,
    // saying why; the other cleanup runs.
    let mut sim = Sim::new(plan(READS_OUTPUTS), cfg(Mode::Real));
    sim.advance(s(10));
    sim.feed(Input::Exited {
        step: 0,
        attempt: 1,
        result: ExitResult::Code(3),
        outputs: BTreeMap::from([("k".into(), "partial".into())]),
    });
    let spawned: Vec<&str> = sim.spawns.iter().map(|x| x.3.as_str()).collect();
    assert_eq!(spawned, ["a", "lift partial none"]);
    let strict = sim.finished("strict");
    assert_eq!(strict[0].status, StepStatus::Failed);
    let error = strict[0].error.as_deref().unwrap();
    assert!(
        error.contains("step `b` wrote no output `j` (it was not run: the run had failed or been denied before it; give a default: `| default('…')`)"),
        "{error}"
    );
}

/// Without `rto_ends_at` the cleanup counts against the RTO: its time is in the projection,
/// and the instant the projection passes the target is when `rto_at_risk` is said, in the
/// main steps (their overrun plus the cleanup still to come) and in the cleanup itself.
#[test]
fn rto_at_risk_counts_the_cleanup_still_to_come_at_its_instant() {
    let yaml = "rto: 20m\nsteps:\n  - { id: a, budget: 10m, run: a, drill: run }\nfinally:\n  \
         - { id: c1, budget: 4m, run: c1, drill: run }\n  \
         - { id: c2, needs: [c1], budget: 2m, run: c2, drill: run }\n";
    let ms = Duration::from_millis;
    // `a` runs long: past its budget the projection is now + 6m of cleanup, past 20m
    // just after +14m, not at the next minute's look nor at +20m.
    let mut sim = Sim::new(plan(yaml), cfg(Mode::Real));
    sim.advance(s(14 * 60));
    assert!(sim.at("rto_at_risk").is_empty());
    sim.advance(s(15 * 60));
    assert_eq!(
        sim.at("rto_at_risk"),
        vec![(ms(14 * 60_000 + 1), String::new())]
    );

    // `a` on time (+5m); `c1` runs long: past its budget (+9m) the projection is now + 2m
    // of `c2`, past 20m just after +18m.
    let mut sim = Sim::new(plan(yaml), cfg(Mode::Real));
    sim.advance(s(5 * 60));
    sim.exit("a", 0);
    assert_eq!(sim.spawned().last(), Some(&(s(5 * 60), "c1".to_owned())));
    sim.advance(s(18 * 60));
    assert!(sim.at("rto_at_risk").is_empty());
    sim.advance(s(19 * 60));
    assert_eq!(
        sim.at("rto_at_risk"),
        vec![(ms(18 * 60_000 + 1), String::new())]
    );
}

/// With `rto_ends_at` the cleanup is observation: it puts nothing at risk.
#[test]
fn with_rto_ends_at_the_cleanup_is_left_out_of_the_risk_instant() {
    let yaml = "rto: 20m\nrto_ends_at: a\nsteps:\n  - { id: a, budget: 10m, run: a, drill: run }\nfinally:\n  \
         - { id: c1, budget: 4m, run: c1, drill: run }\n";
    let mut sim = Sim::new(plan(yaml), cfg(Mode::Real));
    sim.advance(s(19 * 60));
    assert!(sim.at("rto_at_risk").is_empty());
    sim.advance(s(20 * 60) + Duration::from_millis(1));
    assert_eq!(sim.at("rto_at_risk").len(), 1, "`a` itself past the RTO");
}
