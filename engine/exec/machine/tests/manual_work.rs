//! A manual task is work, not a wait for a decision, wherever time is simulated: a dry-run
//! watches its budget (a gate's it does not: that is no one late), and a drill projects one
//! done with `--yes` at its estimate (a gate at its budget).

use super::*;

/// A task and a gate side by side, each with a sampled duration past its 1m budget.
const TASK_AND_GATE: &str = r#"rto: 1h
roles: { sre: [alice] }
steps:
  - id: call
    budget: 1m
    estimate: 30s..2m..5m
    manual:
      instructions: "Call the cloud provider"
      checklist: [ticket opened]
      approvers: [sre]
  - id: go
    budget: 1m
    estimate: 30s..2m..5m
    approval: { prompt: "Fail over?", approvers: [sre] }
"#;

fn breached(sim: &Sim) -> Vec<String> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            EventKind::BudgetBreached(b) => Some(b.step.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_dry_run_watches_a_manual_tasks_budget_as_work_and_not_a_gates() {
    let mut sim = Sim::new(plan(TASK_AND_GATE), cfg(Mode::DryRun));
    // The executor ends each simulated step when its estimate (2m) is up; here the test does.
    sim.advance(s(120));
    for step in 0..2 {
        sim.feed(Input::Exited {
            step,
            attempt: 1,
            result: ExitResult::Code(0),
            outputs: BTreeMap::new(),
        });
    }
    assert_eq!(breached(&sim), vec!["call".to_owned()]);
}

#[test]
fn a_drill_projects_a_manual_task_done_with_yes_at_its_estimate_and_a_gate_at_its_budget() {
    let p = plan(TASK_AND_GATE);
    let sim = Sim::new(
        p.clone(),
        Config {
            auto_approve_as: Some("alice".into()),
            ..cfg(Mode::Drill)
        },
    );
    let call = p.step_index("call").unwrap();
    let go = p.step_index("go").unwrap();
    assert_eq!(sim.m.real_duration(call, s(0)), s(120));
    assert_eq!(sim.m.real_duration(go, s(0)), s(60));
}
