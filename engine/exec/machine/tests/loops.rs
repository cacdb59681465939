//! `for_each:` on the virtual clock: instances run together up to `max_parallel`, each sees
//! its item, a dependent waits for every instance, and one failing instance fails the run like
//! any step.

use super::*;

/// Three instances of `sync`, then `verify`, which reads one instance's output by item.
fn fan(max_parallel: &str) -> Arc<Plan> {
    plan(&format!(
        "rto: 1h\nsteps:\n  - {{ id: sync, for_each: [a, b, c], {max_parallel}budget: 10m, \
         run: \"sync {{{{ item }}}}\", drill: run }}\n  \
         - {{ id: verify, needs: [sync], budget: 5m, \
         run: \"verify {{{{ steps['sync'].outputs['b'].lag }}}}\", drill: run }}\n"
    ))
}

/// `step` exits 0 with these outputs.
fn exit_with(sim: &mut Sim, step: &str, outputs: &[(&str, &str)]) {
    let i = sim.m.plan().step_index(step).unwrap();
    sim.feed(Input::Exited {
        step: i,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: outputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    });
}

#[test]
fn instances_run_at_once_without_max_parallel_and_each_sees_its_item() {
    let sim = Sim::new(fan(""), cfg(Mode::Real));
    assert_eq!(
        sim.spawned(),
        vec![
            (s(0), "sync[a]".to_owned()),
            (s(0), "sync[b]".to_owned()),
            (s(0), "sync[c]".to_owned()),
        ]
    );
    let commands: Vec<&str> = sim.spawns.iter().map(|x| x.3.as_str()).collect();
    assert_eq!(commands, vec!["sync a", "sync b", "sync c"]);
}

#[test]
fn max_parallel_starts_an_instance_when_one_ends() {
    let mut sim = Sim::new(fan("max_parallel: 2, "), cfg(Mode::Real));
    assert_eq!(
        sim.spawned(),
        vec![(s(0), "sync[a]".to_owned()), (s(0), "sync[b]".to_owned())]
    );
    sim.advance(s(30));
    sim.exit("sync[b]", 0);
    assert_eq!(sim.spawned().last(), Some(&(s(30), "sync[c]".to_owned())));
    assert_eq!(sim.spawned().len(), 3);
}

#[test]
fn a_dependent_waits_for_every_instance_and_reads_outputs_by_item() {
    let mut sim = Sim::new(fan(""), cfg(Mode::Real));
    sim.advance(s(10));
    exit_with(&mut sim, "sync[a]", &[("lag", "1")]);
    sim.advance(s(20));
    exit_with(&mut sim, "sync[b]", &[("lag", "2")]);
    assert_eq!(sim.spawned().len(), 3, "`verify` waits for `sync[c]`");
    sim.advance(s(40));
    sim.exit("sync[c]", 0);
    assert_eq!(sim.spawned().last(), Some(&(s(40), "verify".to_owned())));
    assert_eq!(sim.spawns.last().unwrap().3, "verify 2");
}

#[test]
fn one_failing_instance_fails_the_run_and_its_dependents_do_not_run() {
    let mut sim = Sim::new(fan(""), cfg(Mode::Real));
    sim.advance(s(10));
    sim.exit("sync[a]", 0);
    sim.exit("sync[b]", 3);
    sim.exit("sync[c]", 0);
    assert_eq!(sim.finished("verify")[0].status, StepStatus::NotRun);
    let f = sim.run_finished();
    assert_eq!(f.status, RunStatus::Failed);
    assert_eq!(f.failed_at.as_deref(), Some("sync[b]"));
}

#[test]
fn the_projection_counts_the_turns_of_a_bounded_loop() {
    // Three instances of 10m and a 5m `verify`: 15m at once, 35m one after another.
    let sim = Sim::new(fan(""), cfg(Mode::Real));
    assert_eq!(sim.m.projected_finish(s(0)), s(15 * 60));
    assert_eq!(sim.m.projection(s(0)).0, s(15 * 60));
    let mut sim = Sim::new(fan("max_parallel: 1, "), cfg(Mode::Real));
    assert_eq!(sim.m.projected_finish(s(0)), s(35 * 60));
    assert_eq!(sim.m.projection(s(0)).0, s(35 * 60));
    sim.advance(s(60));
    sim.exit("sync[a]", 0);
    assert_eq!(sim.m.projected_finish(s(60)), s(60 + 25 * 60));
    assert_eq!(sim.m.projection(s(60)).0, s(60 + 25 * 60));
}
