//! `manual:` steps on the virtual clock: `done` with every item ends the task (succeeded, with
//! who, the note and the items); an item left out is refused and the task goes on; its time is
//! timed against its budget as work, and replayed it is not human wait.

use super::*;
use crate::journal::{Record, RunState};

const MANUAL: &str = r#"rto: 1h
roles: { sre: [alice] }
steps:
  - id: call
    budget: 10m
    manual:
      instructions: "Call the cloud provider"
      checklist: [ticket opened, status page posted]
      approvers: [sre]
  - id: failover
    needs: [call]
    budget: 5m
    run: failover
    drill: run
"#;

fn done(sim: &mut Sim, items: &[&str], note: &str) {
    sim.feed(Input::Answer {
        step: "call".into(),
        by: "alice".into(),
        approve: true,
        comment: Some(note.into()),
        value: Some(items.join("\n")),
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

/// The machine's events as a journal would replay them.
fn replayed(sim: &Sim) -> RunState {
    let records: Vec<Record> = sim
        .events
        .iter()
        .enumerate()
        .map(|(seq, (t, e))| Record {
            seq: seq as u64,
            at: chrono::DateTime::UNIX_EPOCH,
            elapsed_ms: t.as_millis() as u64,
            event: e.clone(),
            prev: String::new(),
            hash: String::new(),
        })
        .collect();
    RunState::replay(&records)
}

#[test]
fn done_with_every_item_succeeds_with_who_the_note_and_the_items_and_is_work_not_human_wait() {
    let mut sim = Sim::new(plan(MANUAL), cfg(Mode::Real));
    assert_eq!(sim.at("approval_requested"), vec![(s(0), "call".into())]);
    sim.advance(s(540));
    // Timed against its budget as work: warned at 80% of 10m.
    assert_eq!(sim.at("budget_warning"), vec![(s(480), "call".into())]);
    done(
        &mut sim,
        &["ticket opened", "status page posted"],
        "case 4711",
    );
    let g = granted(&sim);
    assert_eq!(g.len(), 1);
    assert_eq!(
        (
            g[0].0,
            g[0].1.by.clone(),
            g[0].1.comment.as_deref(),
            g[0].1.items.clone(),
            g[0].1.value.clone()
        ),
        (
            s(540),
            vec!["alice".to_owned()],
            Some("case 4711"),
            Some(vec![
                "ticket opened".to_owned(),
                "status page posted".to_owned()
            ]),
            None
        )
    );
    assert_eq!(sim.finished("call")[0].status, StepStatus::Succeeded);
    assert_eq!(sim.finished("call")[0].duration_ms, 540_000);
    assert_eq!(sim.spawned(), vec![(s(540), "failover".into())]);

    let state = replayed(&sim);
    assert_eq!(state.human_wait_ms(), 0, "a manual task is work");
    let call = state.steps.iter().find(|s| s.id == "call").unwrap();
    assert_eq!(call.note.as_deref(), Some("case 4711"));
    assert_eq!(call.approved_by, ["alice"]);
}

#[test]
fn an_item_left_out_is_refused_with_the_list_and_the_task_goes_on() {
    let mut sim = Sim::new(plan(MANUAL), cfg(Mode::Real));
    done(&mut sim, &["ticket opened"], "half");
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
            "not confirmed: `status page posted`; every item must be (`--confirm ITEM` each, or `--all`); the checklist: `ticket opened`, `status page posted`; step `call` is not done"
                .to_owned()
        ]
    );
    assert!(granted(&sim).is_empty());
    assert!(sim.spawns.is_empty());
    done(&mut sim, &["status page posted", "ticket opened"], "all");
    assert_eq!(granted(&sim).len(), 1);
}

#[test]
fn a_dry_run_confirms_every_item_after_the_estimate() {
    let mut sim = Sim::new(plan(MANUAL), cfg(Mode::DryRun));
    // The executor ends a simulated task when its estimate is up; here the test does.
    sim.advance(s(600));
    sim.feed(exited(1, ExitResult::Code(0)));
    let g = granted(&sim);
    assert_eq!(g.len(), 1);
    assert_eq!(
        (g[0].0, g[0].1.items.as_deref()),
        (
            s(600),
            Some(&["ticket opened".to_owned(), "status page posted".to_owned()][..])
        )
    );
    assert_eq!(sim.finished("call")[0].status, StepStatus::Succeeded);
}
