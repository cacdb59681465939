//! An approve and a deny of one gate at once, and answers after the gate was decided —
//! through the real binary, with real processes racing.

use std::time::Duration;

use crate::support::Project;
use serde_json::Value;

const TRIALS: usize = 20;

/// `TRIALS` gates that all wait at once, each its own race; a denial does not stop the others.
fn race_project() -> Project {
    let mut yaml = String::from(
        "scenario: race\ntitle: Gates raced\nrto: 30m\nroles:\n  lead: [alice, bob]\nsteps:\n",
    );
    for k in 0..TRIALS {
        yaml.push_str(&format!(
            "  - id: g{k:02}\n    budget: 5m\n    on_failure: continue\n    approval: {{ prompt: go?, approvers: [lead], min: 1, timeout: 10m }}\n"
        ));
    }
    let p = Project::new();
    p.write("runbooks/race.yaml", &yaml);
    p
}

fn answers_of<'a>(events: &'a [Value], ty: &str, gate: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == ty && e["data"]["step"] == gate)
        .collect()
}

#[test]
fn the_loser_of_an_approve_and_a_deny_sent_together_is_told_and_journaled_late() {
    // Both exited 0 with the winner's verdict, and the losing answer was missing from the
    // journal.
    let p = race_project();
    let run_child = p.spawn(&["run", "race"]);
    let last = format!("g{:02}", TRIALS - 1);
    let run = p.wait_for("approval_requested", &last);

    let mut outcomes = Vec::new();
    for k in 0..TRIALS {
        let gate = format!("g{k:02}");
        let approve = p.spawn(&["approve", &run, &gate, "--as", "alice"]);
        let deny = p.spawn(&["deny", &run, &gate, "--as", "bob"]);
        let approve = approve.finish_within(Duration::from_secs(30)).parts();
        let deny = deny.finish_within(Duration::from_secs(30)).parts();
        outcomes.push((gate, approve, deny));
    }
    run_child.finish_within(Duration::from_secs(30));

    let events = p.events(&run);
    for (gate, (a_code, a_out, a_err), (d_code, d_out, d_err)) in &outcomes {
        let granted = answers_of(&events, "approval_granted", gate);
        let denied = answers_of(&events, "approval_denied", gate);
        let late = answers_of(&events, "approval_late", gate);
        assert_eq!(
            granted.len() + denied.len(),
            1,
            "{gate}: one decision\n{a_out}{a_err}\n{d_out}{d_err}"
        );
        assert_eq!(late.len(), 1, "{gate}: the loser's answer is journaled");
        let (winner, loser_code, loser_out, loser, loser_approves) = if granted.len() == 1 {
            ("alice (approved)", *d_code, d_out, "bob", false)
        } else {
            ("bob (denied)", *a_code, a_out, "alice", true)
        };
        let winner_code = if granted.len() == 1 { a_code } else { d_code };
        assert_eq!(
            *winner_code, 0,
            "{gate}: the winner\n{a_out}{a_err}\n{d_out}{d_err}"
        );
        assert_eq!(loser_code, 1, "{gate}: the loser\n{loser_out}");
        assert!(
            loser_out.starts_with(&format!("rejected: already decided by {winner} at ")),
            "{gate}: {loser_out}"
        );
        assert_eq!(late[0]["data"]["by"], loser, "{gate}");
        assert_eq!(late[0]["data"]["approve"], loser_approves, "{gate}");
        assert_eq!(
            late[0]["data"]["reason"]
                .as_str()
                .map(|r| format!("rejected: {r}\n")),
            Some(loser_out.clone()),
            "{gate}: the journal says what the loser was told"
        );
    }
}

const ONE_GATE: &str = r#"scenario: once
title: One gate
rto: 5m
roles:
  lead: [alice, bob]
steps:
  - id: go
    budget: 1m
    approval: { prompt: go?, approvers: [lead], min: 1, timeout: 2m }
"#;

#[test]
fn an_answer_to_a_gate_of_a_finished_run_is_told_who_decided_and_journaled_late() {
    // It was refused as a usage error ("not waiting"), and nothing of it was kept.
    let p = Project::new();
    p.write("runbooks/once.yaml", ONE_GATE);
    let child = p.spawn(&["run", "once"]);
    let run = p.wait_for("approval_requested", "go");
    p.run(&["approve", &run, "go", "--as", "alice"]).code(0);
    child.finish_within(Duration::from_secs(30)).code(0);

    let (code, out, err) = p.run(&["deny", &run, "go", "--as", "bob"]).parts();
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with("rejected: already decided by alice (approved) at "),
        "{out}{err}"
    );
    let late = p.events_of(&run, "approval_late");
    assert_eq!(late.len(), 1);
    assert_eq!(
        (&late[0]["data"]["by"], &late[0]["data"]["approve"]),
        (&Value::from("bob"), &Value::from(false))
    );
    // The journal still verifies with the answer appended after the run's end.
    p.run(&["verify", &run]).code(0);
    // The report tells it among the approvals.
    let out = p.run(&["report", &run]);
    out.code(0);
    assert!(
        out.stdout
            .contains("`go`: a denial by bob came late (already decided by alice (approved) at "),
        "{}",
        out.stdout
    );
}

/// An answer dropped while the run's last step ended was taken by the run itself as it
/// closed, and journaled `approval_late` after the seal without sealing again: `verify` then
/// said the journal was cut. The last step here drops the answer (as `runbook approve` does)
/// and exits at once, so that the run finds it only as it closes; a run that found it sooner
/// also journals it late. Either way the journal ends sealed.
#[test]
fn an_answer_the_run_takes_as_it_closes_leaves_the_journal_sealed() {
    let p = Project::new();
    p.write(
        "runbooks/closing.yaml",
        r#"scenario: closing
title: An answer as the run closes
rto: 5m
roles:
  lead: [alice, bob]
steps:
  - id: go
    budget: 1m
    approval: { prompt: go?, approvers: [lead], min: 1, timeout: 2m }
  - id: last
    needs: [go]
    budget: 1m
    drill: run
    run: >-
      d="$RUNBOOK_STATE_DIR/runs/$RUNBOOK_RUN_ID/approvals" && mkdir -p "$d" &&
      printf '{"step":"go","by":"bob","approve":false,"comment":null}' > "$d/zz.tmp" &&
      mv "$d/zz.tmp" "$d/zz.json"
"#,
    );
    for _ in 0..5 {
        let out = p.run(&["run", "closing", "--yes", "--as", "alice"]);
        out.code(0);
        let run = out.id();
        assert_eq!(p.events_of(&run, "approval_late").len(), 1, "{run}");
        let (code, text, err) = p.run(&["verify", &run]).parts();
        assert_eq!(code, 0, "the journal does not end sealed: {text}{err}");
    }
}
