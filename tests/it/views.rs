//! Every view shows the constructs of issue 17 as what they are: `status` lists a manual task
//! apart from the gates that wait for a decision, the HTML report draws it as work; the step
//! tables say why a step did not run (its condition, with the values it saw, or the need that
//! failed); a resumed run keeps which steps a condition skipped; an `input:` is answered at
//! the run's own terminal.

use std::time::Duration;

use crate::support::{Project, report_step};

/// A manual task and a gate open at once, then a step that needs both.
const TASK_AND_GATE: &str = r#"scenario: both
title: A task to do while a decision waits
rto: 10m
roles:
  sre: [alice]
steps:
  - id: call-provider
    budget: 2m
    manual:
      instructions: "Call the cloud provider and open a P1"
      checklist: [ticket opened, status page posted]
      approvers: [sre]
  - id: go
    budget: 2m
    approval: { prompt: "Fail over?", approvers: [sre] }
  - id: failover
    needs: [call-provider, go]
    budget: 10s
    run: echo failover
    drill: run
"#;

#[test]
fn status_lists_a_manual_task_apart_from_the_gates_and_the_html_draws_it_as_work() {
    let p = Project::with_runbook("both", TASK_AND_GATE);
    let child = p.spawn(&["run", "both"]);
    p.wait_for("approval_requested", "call-provider");
    let run = p.wait_for("approval_requested", "go");

    let (code, out, err) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0, "{out}{err}");
    let (decisions, tasks) = out
        .split_once("manual tasks in progress:")
        .unwrap_or_else(|| panic!("no manual tasks heading:\n{out}"));
    let tasks = tasks.split("waiting for approval:").next().unwrap_or_default();
    assert!(
        tasks.contains("call-provider: Call the cloud provider and open a P1")
            && tasks.contains("done by: sre; working ")
            && tasks.contains("[ ] ticket opened")
            && tasks.contains("[ ] status page posted")
            && tasks.contains(&format!(
                "runbook done {run} call-provider --as NAME --all [--note TEXT]"
            )),
        "{out}"
    );
    // The gate is still a decision awaited, and the task is not one.
    let gates = out.split("waiting for approval:").nth(1).unwrap_or_default();
    assert!(gates.contains("go: Fail over?"), "{out}");
    assert!(!gates.contains("call-provider"), "{out}");
    assert!(!decisions.contains("waiting for approval:"), "{out}");

    let done = p.run(&[
        "done",
        &run,
        "call-provider",
        "--as",
        "alice",
        "--all",
        "--note",
        "case 4711",
    ]);
    done.code(0);
    p.run(&["approve", &run, "go", "--as", "alice"]).code(0);
    child.finish_within(Duration::from_secs(20)).code(0);

    let (code, html, err) = p.run(&["report", &run, "--format", "html"]).parts();
    assert_eq!(code, 0, "{err}");
    let bar = |id: &str| {
        html.lines()
            .find(|l| l.starts_with("<rect class=\"bar") && l.contains(&format!("<title>{id} — ")))
            .unwrap_or_else(|| panic!("no bar for {id}:\n{html}"))
            .to_owned()
    };
    let task = bar("call-provider");
    assert!(
        !task.contains("url(#wait)") && task.contains("fill=\"#2e9d4f\""),
        "a manual task is work, coloured by its status: {task}"
    );
    assert!(task.contains("(manual task: work)"), "{task}");
    let gate = bar("go");
    assert!(
        gate.contains("url(#wait)") && gate.contains("(human wait)"),
        "{gate}"
    );
    assert!(html.contains("<td>done by alice</td>"), "{html}");
}

/// The DR branch on the replica's lag, and a restore that fails under a step that needs it.
const BRANCHES: &str = r#"scenario: branches
title: Promote or restore, then verify
rto: 1h
vars: { rpo_s: "3600" }
steps:
  - id: check-lag
    budget: 1m
    run: echo "lag_s=7200" >> "$RUNBOOK_OUTPUT"
    drill: run
  - id: promote
    needs: [check-lag]
    budget: 5m
    when: "steps['check-lag'].outputs.lag_s | int <= rpo_s | int"
    run: echo promoted
    drill: run
  - id: restore
    needs: [check-lag]
    budget: 5m
    run: exit 3
    drill: run
  - id: verify
    needs: [promote, restore]
    budget: 1m
    run: echo verified
    drill: run
"#;

#[test]
fn the_step_tables_tell_a_step_a_condition_skipped_from_one_a_failed_need_left_not_run() {
    let p = Project::with_runbook("branches", BRANCHES);
    p.run_scenario(&["--run-id", "r"]).code(1);

    let skipped = "skipped: its condition `steps['check-lag'].outputs.lag_s | int <= rpo_s | int` was false (rpo_s=3600, steps['check-lag'].outputs.lag_s=7200)";
    let (code, md, err) = p.run(&["report", "r", "--format", "md"]).parts();
    assert_eq!(code, 0, "{err}");
    let row = |id: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| {id} ")))
            .unwrap_or_else(|| panic!("no row for {id}:\n{md}"))
            .to_owned()
    };
    assert!(
        row("promote").contains(&skipped.replace('|', "\\|")),
        "{}",
        row("promote")
    );
    assert!(
        row("verify").contains("| not run: `restore` failed |"),
        "{}",
        row("verify")
    );

    let (code, html, err) = p.run(&["report", "r", "--format", "html"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        html.contains(&format!("<td>{}</td>", skipped.replace('<', "&lt;"))),
        "{html}"
    );
    assert!(html.contains("<td>not run: `restore` failed</td>"), "{html}");

    // The JSON report carries the same, as data.
    let report = p.report_json("r");
    assert_eq!(report_step(&report, "promote")["condition"]["held"], false);
}

/// A branch skipped, then the engine killed while another step runs; `verify` reads the
/// skipped branch's output with no default.
const SKIP_THEN_KILL: &str = r#"scenario: skipkill
title: A branch skipped before the engine died
rto: 5m
steps:
  - id: check-lag
    budget: 10s
    run: echo "lag_s=7200" >> "$RUNBOOK_OUTPUT"
    drill: run
  - id: promote
    needs: [check-lag]
    budget: 10s
    when: "steps['check-lag'].outputs.lag_s | int <= 3600"
    run: echo promoted
    drill: run
  - id: slow
    needs: [check-lag]
    budget: 30s
    idempotent: true
    run: sleep 2; echo slow-end >> effects.txt
    drill: run
  - id: verify
    needs: [promote, slow]
    budget: 10s
    run: echo "promoted at {{ steps['promote'].outputs.at }}"
    drill: run
"#;

#[test]
fn a_step_a_condition_skipped_before_a_sigkill_reads_as_skipped_by_it_after_the_resume() {
    let p = Project::with_runbook("skipkill", SKIP_THEN_KILL);
    let mut child = p.spawn(&["run", "skipkill"]);
    let run = p.wait_for("step_started", "slow");
    p.wait_for("step_finished", "promote");
    child.kill().unwrap(); // SIGKILL: the engine is gone, `slow` goes on

    let condition = "`steps['check-lag'].outputs.lag_s | int <= 3600` was false (steps['check-lag'].outputs.lag_s=7200)";
    let (code, out, err) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("promote "))
        .unwrap_or_else(|| panic!("no promote row:\n{out}"));
    assert!(row.contains("skipped") && row.contains(condition), "{out}");

    let (code, out, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(p.read("effects.txt"), "slow-end\n");
    // The resumed run knows why `promote` wrote nothing: its condition, not a drill.
    let verify = p
        .events_of(&run, "step_finished")
        .into_iter()
        .rfind(|e| e["data"]["step"] == "verify")
        .expect("verify finished");
    let error = verify["data"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("step `promote` wrote no output `at` (it was skipped: its `when` was false"),
        "{error}"
    );

    let (code, md, err) = p.run(&["report", &run, "--format", "md"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        md.contains(&format!(
            "| promote | skipped: its condition {} |",
            condition.replace('|', "\\|")
        )),
        "{md}"
    );
    let report = p.report_json(&run);
    assert_eq!(report_step(&report, "promote")["condition"]["held"], false);
}
