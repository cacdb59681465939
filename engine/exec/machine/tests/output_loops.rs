//! Loops over an upstream output on the virtual clock: the loop expands when the step that
//! writes the list exits, its instances run within `max_parallel` with their own budgets, a
//! dependent waits for every one, an empty list skips the loop and a bad one fails it.

use super::*;

/// `discover` writes `regions`; `sync` loops over it; `verify` needs `sync`.
fn discovered(max_parallel: &str) -> Arc<Plan> {
    discovered_then(max_parallel, "verify {{ steps['sync'].outputs['b'].lag }}")
}

/// As [`discovered`], `verify` running `verify`.
fn discovered_then(max_parallel: &str, verify: &str) -> Arc<Plan> {
    plan(&format!(
        "rto: 1h\nsteps:\n  - {{ id: discover, budget: 5m, run: discover, drill: run }}\n  \
         - {{ id: sync, needs: [discover], for_each: \"{{{{ steps['discover'].outputs.regions }}}}\", \
         {max_parallel}budget: 10m, run: \"sync {{{{ item }}}}\", drill: run }}\n  \
         - {{ id: verify, needs: [sync], budget: 5m, \
         run: \"{verify}\", drill: run }}\n"
    ))
}

fn discover_writes(sim: &mut Sim, regions: &str) {
    sim.feed(Input::Exited {
        step: 0,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("regions".to_owned(), regions.to_owned())]),
    });
}

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

fn expanded(sim: &Sim) -> Vec<LoopExpanded> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            EventKind::LoopExpanded(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_loop_expands_when_its_list_is_written_and_a_dependent_waits_for_every_instance() {
    let mut sim = Sim::new(discovered(""), cfg(Mode::Real));
    assert_eq!(sim.spawned(), vec![(s(0), "discover".to_owned())]);
    sim.advance(s(10));
    discover_writes(&mut sim, r#"["a","b","c"]"#);
    let loops = expanded(&sim);
    assert_eq!(loops.len(), 1);
    assert_eq!(loops[0].step, "sync");
    assert_eq!(loops[0].items, ["a", "b", "c"]);
    assert_eq!(loops[0].instances[1].needs, ["discover"]);
    assert_eq!(
        sim.spawned()[1..],
        [
            (s(10), "sync[a]".to_owned()),
            (s(10), "sync[b]".to_owned()),
            (s(10), "sync[c]".to_owned()),
        ]
    );
    let commands: Vec<&str> = sim.spawns.iter().map(|x| x.3.as_str()).collect();
    assert_eq!(commands[1..], ["sync a", "sync b", "sync c"]);
    sim.advance(s(20));
    exit_with(&mut sim, "sync[a]", &[("lag", "1")]);
    exit_with(&mut sim, "sync[b]", &[("lag", "2")]);
    assert_eq!(sim.spawned().len(), 4, "`verify` waits for `sync[c]`");
    sim.advance(s(40));
    sim.exit("sync[c]", 0);
    assert_eq!(sim.spawned().last(), Some(&(s(40), "verify".to_owned())));
    assert_eq!(sim.spawns.last().unwrap().3, "verify 2");
    sim.advance(s(50));
    sim.exit("verify", 0);
    assert!(sim.m.is_done());
    assert!(
        sim.finished("sync").is_empty(),
        "the loop's step stands for its instances"
    );
}

#[test]
fn max_parallel_bounds_the_instances_and_each_has_its_budget() {
    let mut sim = Sim::new(discovered("max_parallel: 1, "), cfg(Mode::Real));
    sim.advance(s(60));
    discover_writes(&mut sim, "a, b");
    assert_eq!(sim.spawned().last(), Some(&(s(60), "sync[a]".to_owned())));
    assert_eq!(sim.spawned().len(), 2);
    // Its own 10m budget, from its own start: warned at 8m, at 1m + 8m.
    sim.advance(s(60 + 8 * 60));
    assert_eq!(
        sim.at("budget_warning"),
        vec![(s(540), "sync[a]".to_owned())]
    );
    sim.exit("sync[a]", 0);
    assert_eq!(sim.spawned().last(), Some(&(s(540), "sync[b]".to_owned())));
}

#[test]
fn an_empty_list_skips_the_loop_and_its_dependents_go_on() {
    let mut sim = Sim::new(discovered_then("", "verify"), cfg(Mode::Real));
    discover_writes(&mut sim, "[]");
    assert!(expanded(&sim).is_empty());
    let sync = sim.finished("sync");
    assert_eq!(sync[0].status, StepStatus::Skipped);
    assert!(
        sync[0]
            .error
            .as_deref()
            .unwrap()
            .contains("is an empty list")
    );
    assert_eq!(sim.spawned().last().unwrap().1, "verify");
}

#[test]
fn a_list_that_is_not_one_fails_the_loop_naming_the_output() {
    let mut sim = Sim::new(discovered(""), cfg(Mode::Real));
    discover_writes(&mut sim, r#"["a", "b c"]"#);
    let sync = sim.finished("sync");
    assert_eq!(sync[0].status, StepStatus::Failed);
    let error = sync[0].error.clone().unwrap();
    assert!(
        error.contains("`steps['discover'].outputs.regions` = `[\"a\", \"b c\"]`: item `b c` cannot be part of a step id"),
        "{error}"
    );
    assert_eq!(sim.finished("verify")[0].status, StepStatus::NotRun);
    assert_eq!(sim.spawned().len(), 1);
}

#[test]
fn a_missing_output_fails_the_loop() {
    let mut sim = Sim::new(discovered(""), cfg(Mode::Real));
    sim.exit("discover", 0);
    let error = sim.finished("sync")[0].error.clone().unwrap();
    assert!(error.contains("which `discover` did not write"), "{error}");
}

#[test]
fn a_drill_that_mocks_the_list_step_skips_the_loop_and_says_why() {
    let plan = plan(
        "rto: 1h\nsteps:\n  - { id: discover, budget: 5m, run: discover, drill: mock }\n  \
         - { id: sync, needs: [discover], for_each: \"{{ steps['discover'].outputs.regions }}\", \
         budget: 10m, run: \"sync {{ item }}\", drill: run }\n",
    );
    let sim = Sim::new(plan, cfg(Mode::Drill));
    let sync = sim.finished("sync");
    assert_eq!(sync[0].status, StepStatus::Skipped);
    let why = sync[0].error.clone().unwrap();
    assert!(why.contains("which the drill mocked or skipped"), "{why}");
    assert!(sim.spawns.is_empty(), "nothing ran: {:?}", sim.spawned());
}
