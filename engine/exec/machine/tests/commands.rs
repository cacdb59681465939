//! What a step runs: its command rendered with upstream outputs, and what a template missed.

use super::*;

#[test]
fn outputs_of_upstream_steps_render_shell_quoted() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run }\n  - { id: b, needs: [a], budget: 1m, run: \"use {{ steps.a.outputs.file }}\", drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.feed(Input::Exited {
        step: 0,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("file".into(), "$(touch x); rm -rf /".into())]),
    });
    assert_eq!(sim.spawns[1].3, "use '$(touch x); rm -rf /'");
}

#[test]
fn a_missing_output_fails_the_step_without_running_it() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run }\n  - { id: b, needs: [a], budget: 1m, run: \"use {{ steps.a.outputs.file }}\", drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.exit("a", 0);
    assert_eq!(sim.spawns.len(), 1);
    let f = &sim.finished("b")[0];
    assert_eq!(f.status, StepStatus::Failed);
    assert!(f.error.as_ref().unwrap().contains("undefined"), "{f:?}");
}

#[test]
fn output_references_are_found_in_both_spellings() {
    assert_eq!(
        output_refs("echo {{ steps['find-backup'].outputs.file }} {{ steps.a.outputs.n_2 }}"),
        vec![
            ("find-backup".to_owned(), "file".to_owned()),
            ("a".to_owned(), "n_2".to_owned())
        ]
    );
    assert!(output_refs("echo steps and {{ steps }}").is_empty());
}

/// Issue 14: a drill in a rehearsal environment runs the real command of a `mock` step; any
/// other drill simulates it.
#[test]
fn a_rehearsal_drill_runs_a_mocked_steps_real_command_and_measures_it() {
    let p = plan(OBSERVED);
    let mut plain = Sim::new(p.clone(), cfg(Mode::Drill));
    plain.exit("restore", 0);
    assert_eq!(plain.finished("verify")[0].status, StepStatus::Simulated);
    assert!(!plain.spawned().iter().any(|(_, id)| id == "verify"));

    let mut sim = Sim::new(
        p,
        Config {
            rehearsal: true,
            ..cfg(Mode::Drill)
        },
    );
    sim.advance(s(60));
    sim.exit("restore", 0);
    assert_eq!(sim.spawned().last().unwrap(), &(s(60), "verify".to_owned()));
    let started = sim
        .events
        .iter()
        .find_map(|(_, e)| match e {
            EventKind::StepStarted(st) if st.step == "verify" => Some(st.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(started.how, How::Rehearsal);
    assert_eq!(started.command.as_deref(), Some("v"));
    sim.advance(s(100));
    sim.exit("verify", 0);
    sim.advance(s(200));
    sim.exit("monitor", 0);
    // Measured, as a `drill: run` step is: restore's 60s and verify's 40s, not the estimate.
    let f = sim.run_finished();
    assert_eq!(f.projected_ms, Some(100_000));
    assert_eq!(f.recovery_ms, Some(100_000));
}
