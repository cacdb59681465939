//! `input:` steps on the virtual clock: a value answered reaches a later step's command, a
//! value that does not match is refused and the step keeps waiting, a dry-run takes the default.

use super::*;

const INPUT: &str = r#"rto: 1h
roles: { dba: [alice] }
steps:
  - id: pick
    budget: 10m
    input:
      prompt: "Which replica?"
      pattern: "replica-[0-9]+"
      approvers: [dba]
      default: replica-1
  - id: promote
    needs: [pick]
    budget: 5m
    run: promote {{ steps['pick'].outputs.value }}
    drill: run
"#;

fn give(sim: &mut Sim, by: &str, value: &str) {
    sim.feed(Input::Answer {
        step: "pick".into(),
        by: by.into(),
        approve: true,
        comment: None,
        value: Some(value.into()),
        signed: None,
    });
}

fn granted(sim: &Sim) -> Vec<(Duration, ApprovalGranted)> {
    sim.events
        .iter()
        .filter_map(|(t, e)| match e {
            EventKind::ApprovalGranted(g) => Some((*t, g.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_answered_value_is_the_steps_output_and_reaches_the_next_command() {
    let mut sim = Sim::new(plan(INPUT), cfg(Mode::Real));
    assert_eq!(sim.at("approval_requested"), vec![(s(0), "pick".into())]);
    sim.advance(s(120));
    give(&mut sim, "alice", "replica-2");
    let g = granted(&sim);
    assert_eq!(g.len(), 1);
    assert_eq!(
        (g[0].0, g[0].1.value.as_deref(), g[0].1.wait_ms),
        (s(120), Some("replica-2"), 120_000)
    );
    assert_eq!(sim.spawns.len(), 1);
    assert_eq!(sim.spawns[0].3, "promote replica-2");
    // Timed like a gate: a human wait of two minutes.
    assert_eq!(sim.finished("pick")[0].duration_ms, 120_000);
}

#[test]
fn a_value_that_does_not_match_is_refused_with_the_pattern_and_the_step_keeps_waiting() {
    let mut sim = Sim::new(plan(INPUT), cfg(Mode::Real));
    give(&mut sim, "alice", "the primary");
    let rejected: Vec<String> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            EventKind::ApprovalRejected(r) => Some(r.reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            "`the primary` does not match the pattern `replica-[0-9]+`; step `pick` keeps waiting"
                .to_owned()
        ]
    );
    assert!(sim.spawns.is_empty());
    assert_eq!(sim.m.open_gates(), vec![0]);
    // A yes without a value is not an answer either; a value that matches is.
    sim.answer("pick", "alice", true);
    assert!(sim.spawns.is_empty());
    give(&mut sim, "alice", "replica-10");
    assert_eq!(sim.spawns[0].3, "promote replica-10");
}

#[test]
fn a_dry_run_takes_the_default() {
    let mut sim = Sim::new(plan(INPUT), cfg(Mode::DryRun));
    // The executor ends a simulated wait when its time is up; here the test does.
    sim.advance(s(600));
    sim.feed(exited(1, ExitResult::Code(0)));
    let g = granted(&sim);
    assert_eq!(g[0].1.value.as_deref(), Some("replica-1"));
    let outputs: Vec<&StepOutput> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            EventKind::StepOutput(o) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(outputs[0].outputs["value"], "replica-1");
}

#[test]
fn an_approval_gate_takes_no_value() {
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    sim.feed(Input::Answer {
        step: "gate".into(),
        by: "alice".into(),
        approve: true,
        comment: None,
        value: Some("yes".into()),
        signed: None,
    });
    assert_eq!(sim.at("approval_rejected").len(), 1);
    assert!(sim.spawns.is_empty());
}
