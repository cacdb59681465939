//! `when:` on the virtual clock: a false condition skips its step and its dependents still
//! run; a true one runs it; a skipped step's outputs are an error unless a default is given.

use super::*;

/// check-lag writes `lag_s`; promote and restore branch on it; verify needs both.
const BRANCHES: &str = "rto: 1h\nvars: { rpo_s: '3600' }\nsteps:\n  \
    - { id: check-lag, budget: 1m, run: c, drill: run }\n  \
    - { id: promote, needs: [check-lag], budget: 5m, run: p, drill: run, when: \"steps['check-lag'].outputs.lag_s | int <= rpo_s | int\" }\n  \
    - { id: restore, needs: [check-lag], budget: 30m, run: r, drill: run, when: \"steps['check-lag'].outputs.lag_s | int > rpo_s | int\", likelihood: 0.2 }\n  \
    - { id: verify, needs: [promote, restore], budget: 1m, run: \"echo {{ steps['restore'].outputs.file | default('none') }}\", drill: run }\n";

/// A real run with the plan's vars, as `app::run` gives them.
fn real(p: Arc<Plan>) -> Sim {
    let cfg = Config {
        vars: p.vars.clone(),
        ..cfg(Mode::Real)
    };
    Sim::new(p, cfg)
}

fn lag(sim: &mut Sim, lag_s: &str) {
    sim.now = s(30);
    sim.feed(Input::Exited {
        step: 0,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("lag_s".into(), lag_s.into())]),
    });
}

#[test]
fn a_false_condition_skips_its_step_and_its_dependents_still_run() {
    let mut sim = real(plan(BRANCHES));
    lag(&mut sim, "120");
    // promote runs at once; restore is skipped at that instant, with what it saw.
    assert_eq!(
        sim.spawned(),
        vec![(s(0), "check-lag".into()), (s(30), "promote".into())]
    );
    let skipped = &sim.finished("restore")[0];
    assert_eq!(skipped.status, StepStatus::Skipped);
    let seen = skipped
        .condition
        .as_ref()
        .expect("the condition is journaled");
    assert_eq!(
        seen.expr,
        "steps['check-lag'].outputs.lag_s | int > rpo_s | int"
    );
    assert!(!seen.held && !seen.assumed);
    assert_eq!(
        seen.values,
        BTreeMap::from([
            ("rpo_s".to_owned(), "3600".to_owned()),
            (
                "steps['check-lag'].outputs.lag_s".to_owned(),
                "120".to_owned()
            ),
        ])
    );
    // A skipped need satisfies `needs`: verify runs once promote ends, and reads the skipped
    // step's output through its default.
    sim.now = s(90);
    sim.exit("promote", 0);
    assert_eq!(sim.spawned().last(), Some(&(s(90), "verify".to_owned())));
    assert_eq!(sim.spawns.last().map(|x| x.3.as_str()), Some("echo none"));
    sim.exit("verify", 0);
    let held = &sim.finished("promote")[0];
    assert_eq!(held.status, StepStatus::Succeeded);
    assert!(held.condition.as_ref().is_some_and(|c| c.held));
    assert_eq!(sim.run_finished().status, RunStatus::Succeeded);
}

#[test]
fn a_true_condition_runs_its_step() {
    let mut sim = real(plan(BRANCHES));
    lag(&mut sim, "7200");
    assert_eq!(
        sim.spawned(),
        vec![(s(0), "check-lag".into()), (s(30), "restore".into())]
    );
    assert_eq!(sim.finished("promote")[0].status, StepStatus::Skipped);
    assert!(
        sim.finished("restore").is_empty(),
        "restore is still running"
    );
}

#[test]
fn reading_a_skipped_steps_output_without_a_default_fails_naming_the_step() {
    let p = plan(&BRANCHES.replace(" | default('none')", ""));
    let mut sim = real(p);
    lag(&mut sim, "120");
    sim.exit("promote", 0);
    let f = &sim.finished("verify")[0];
    assert_eq!(f.status, StepStatus::Failed);
    let error = f.error.as_deref().unwrap_or_default();
    assert!(
        error.contains(
            "step `restore` wrote no output `file` (it was skipped: its `when` was false"
        ),
        "{error}"
    );
}

#[test]
fn a_condition_that_does_not_evaluate_fails_its_step_with_the_reason() {
    let mut sim = real(plan(BRANCHES));
    lag(&mut sim, "a lot");
    let f = &sim.finished("promote")[0];
    assert_eq!(f.status, StepStatus::Failed);
    let error = f.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("t.yaml:7: condition `steps['check-lag']"),
        "{error}"
    );
    assert_eq!(sim.run_finished().status, RunStatus::Failed);
}

#[test]
fn a_dry_run_evaluates_a_condition_on_vars_and_takes_one_on_outputs_as_running() {
    let p = plan(concat!(
        "rto: 1h\nvars: { region: eu }\nsteps:\n",
        "  - { id: a, budget: 1m, run: a, drill: run, when: \"region == 'us' and run.mode == 'dry-run'\" }\n",
        "  - { id: b, budget: 1m, run: b, drill: run, needs: [a], when: \"steps['a'].outputs.x == '1'\" }\n",
    ));
    let cfg = Config {
        vars: p.vars.clone(),
        ..cfg(Mode::DryRun)
    };
    let mut sim = Sim::new(p, cfg);
    sim.feed(Input::Exited {
        step: 1,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::new(),
    });
    let finished = |id: &str| sim.finished(id)[0].clone();
    let a = finished("a");
    assert_eq!(a.status, StepStatus::Skipped);
    let seen = a.condition.unwrap();
    assert_eq!(
        seen.values,
        BTreeMap::from([
            ("region".to_owned(), "eu".to_owned()),
            ("run.mode".to_owned(), "dry-run".to_owned()),
        ])
    );
    let b = finished("b");
    assert_eq!(b.status, StepStatus::Succeeded);
    let seen = b.condition.unwrap();
    assert!(seen.assumed && seen.held);
}

/// A drill mocks check-lag, so it writes no `lag_s`: the conditions that read it cannot be
/// evaluated. They are taken as running (the worst case, as in a dry-run) and say so; before,
/// both branches failed and so did the drill.
#[test]
fn a_drill_takes_a_condition_on_a_mocked_steps_output_as_running() {
    let text = BRANCHES.replace(
        "{ id: check-lag, budget: 1m, run: c, drill: run }",
        "{ id: check-lag, budget: 1m, run: c, drill: mock }",
    );
    let p = plan(&text);
    let cfg = Config {
        vars: p.vars.clone(),
        ..cfg(Mode::Drill)
    };
    let mut sim = Sim::new(p, cfg);
    // A mock with an estimate is simulated: the driver reports it exited 0, with no outputs.
    if sim.finished("check-lag").is_empty() {
        sim.now = s(30);
        sim.feed(exited(1, ExitResult::Code(0)));
    }
    let spawned: Vec<String> = sim.spawned().into_iter().map(|(_, id)| id).collect();
    assert!(
        spawned.contains(&"promote".to_owned()) && spawned.contains(&"restore".to_owned()),
        "both branches run in the drill: {spawned:?}"
    );
    for id in ["promote", "restore"] {
        assert!(
            sim.finished(id)
                .iter()
                .all(|f| f.status != StepStatus::Failed),
            "{id} did not fail"
        );
    }
}
