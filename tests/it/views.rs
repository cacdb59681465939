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
    let tasks = tasks
        .split("waiting for approval:")
        .next()
        .unwrap_or_default();
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
    let row = decisions
        .lines()
        .find(|l| l.trim_start().starts_with("call-provider "))
        .unwrap_or_else(|| panic!("no call-provider row:\n{out}"));
    assert!(row.contains("in progress (manual task)"), "{out}");
    // The gate is still a decision awaited, and the task is not one.
    let gates = out
        .split("waiting for approval:")
        .nth(1)
        .unwrap_or_default();
    assert!(gates.contains("go: Fail over?"), "{out}");
    assert!(!gates.contains("call-provider"), "{out}");
    assert!(!decisions.contains("waiting for approval:"), "{out}");

    // `--json` says which is which.
    let (code, out, err) = p.run(&["status", &run, "--json"]).parts();
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("status --json parses");
    let kinds: Vec<(&str, &str)> = doc["gates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            (
                g["step"].as_str().unwrap_or(""),
                g["kind"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("call-provider", "manual"), ("go", "approval")],
        "{out}"
    );
    assert_eq!(
        doc["gates"][0]["checklist"],
        serde_json::json!(["ticket opened", "status page posted"])
    );

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
    assert!(
        html.contains("<td>not run: `restore` failed</td>"),
        "{html}"
    );

    // `status` says it too, beside the status word.
    let (code, out, err) = p.run(&["status", "r"]).parts();
    assert_eq!(code, 0, "{out}{err}");
    let verify = out
        .lines()
        .find(|l| l.trim_start().starts_with("verify "))
        .unwrap_or_else(|| panic!("no verify row:\n{out}"));
    assert!(
        verify.contains("not run") && verify.contains("`restore` failed"),
        "{out}"
    );

    // The JSON report carries the same, as data.
    let report = p.report_json("r");
    assert_eq!(report_step(&report, "promote")["condition"]["held"], false);
    assert_eq!(report_step(&report, "promote")["why_not_run"], skipped);
    assert_eq!(
        report_step(&report, "verify")["why_not_run"],
        "not run: `restore` failed"
    );
    assert!(
        report_step(&report, "check-lag")
            .get("why_not_run")
            .is_none(),
        "{report}"
    );

    // And JUnit, in the skipped test case's text.
    let (code, xml, err) = p.run(&["report", "r", "--format", "junit"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(xml.contains("`restore` failed</skipped>"), "{xml}");
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
    let error = verify["data"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
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

/// Runs a command on a pseudo-terminal (python3's `pty`, which tests/suite.sh installs):
/// waits for `expect` in what it prints, types `answer` and Enter, and passes on its output
/// and exit code. argv: expect, answer, the command and its arguments.
const ON_A_TTY: &str = r#"
import os, pty, select, sys, time
expect, answer, argv = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out, typed, deadline = b"", False, time.time() + 60
while time.time() < deadline:
    if select.select([fd], [], [], 0.2)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    if not typed and expect in out:
        os.write(fd, answer + b"\n")
        typed = True
sys.stdout.buffer.write(out)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

const PICK: &str = r#"scenario: pick
title: Promote the replica the operator names
rto: 5m
roles: { dba: [tester] }
steps:
  - id: target
    budget: 1m
    input:
      prompt: "Which replica?"
      approvers: [dba]
      pattern: "replica-[0-9]+"
      default: replica-1
  - id: promote
    needs: [target]
    budget: 10s
    run: echo "promote {{ steps.target.outputs.value }}" >> effects.txt
    drill: run
"#;

/// `runbook ARGS` in project `p` on a pseudo-terminal: once `expect` shows, `answer` is typed.
fn on_a_tty(p: &Project, args: &[&str], expect: &str, answer: &str) -> (i32, String, String) {
    let runbook = p.cmd(args);
    let mut tty = std::process::Command::new("python3");
    tty.arg("-c")
        .arg(ON_A_TTY)
        .arg(expect)
        .arg(answer)
        .arg(runbook.get_program())
        .args(runbook.get_args())
        .current_dir(p.path());
    for (k, v) in runbook.get_envs() {
        match v {
            Some(v) => tty.env(k, v),
            None => tty.env_remove(k),
        };
    }
    tty.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    p.run_with(tty).parts()
}

#[test]
fn an_input_is_answered_at_the_runs_own_terminal() {
    let p = Project::with_runbook("pick", PICK);
    let (code, out, err) = on_a_tty(
        &p,
        &["run", "pick", "--run-id", "r"],
        "Which replica?",
        "replica-7",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Which replica?"), "{out}");
    assert_eq!(p.read("effects.txt"), "promote replica-7\n");
    let granted = p.events_of("r", "approval_granted");
    let g = &granted[0]["data"];
    assert_eq!(g["value"], "replica-7", "{g}");
    assert_eq!(g["by"], serde_json::json!(["tester"]), "{g}");
}

/// A manual task the operator at the terminal may do.
const TASK: &str = r#"scenario: task
title: A task done at the terminal
rto: 10m
roles: { sre: [tester] }
steps:
  - id: call-provider
    budget: 2m
    manual:
      instructions: "Call the cloud provider and open a P1"
      checklist: [ticket opened, status page posted]
      approvers: [sre]
  - id: failover
    needs: [call-provider]
    budget: 10s
    run: echo failover
    drill: run
"#;

#[test]
fn a_manual_task_is_done_at_the_runs_own_terminal_with_y_and_a_note() {
    let p = Project::with_runbook("task", TASK);
    let (code, out, err) = on_a_tty(
        &p,
        &["run", "task", "--run-id", "r"],
        "Call the cloud provider",
        "y case 4711",
    );
    assert_eq!(code, 0, "{out}{err}");
    // The terminal says it is a task to do, not a decision awaited.
    assert!(
        out.contains("call-provider is a manual task for sre: Call the cloud provider and open a P1; confirm: ticket opened, status page posted")
            && out.contains("call-provider done by tester"),
        "{out}"
    );
    assert!(!out.contains("waits for approval"), "{out}");
    let granted = p.events_of("r", "approval_granted");
    let g = &granted[0]["data"];
    assert_eq!(g["by"], serde_json::json!(["tester"]), "{g}");
    assert_eq!(g["comment"], "case 4711", "{g}");
    assert_eq!(
        g["items"],
        serde_json::json!(["ticket opened", "status page posted"]),
        "{g}"
    );
}

/// A manual task a drill's `--yes` did at once: estimated 2m of work, budgeted 1m.
const TASK_IN_A_DRILL: &str = r#"scenario: drilltask
title: A task in a drill
rto: 1h
roles: { sre: [alice] }
steps:
  - id: call
    budget: 1m
    estimate: 30s..2m..5m
    manual:
      instructions: "Call the cloud provider"
      checklist: [ticket opened]
      approvers: [sre]
  - id: after
    needs: [call]
    budget: 10s
    run: "true"
    drill: run
"#;

#[test]
fn a_drill_projects_a_manual_task_done_with_yes_at_its_estimate_as_work() {
    let p = Project::with_runbook("drilltask", TASK_IN_A_DRILL);
    let (code, _, err) = p
        .run(&["run", "drilltask", "--drill", "--yes", "--run-id", "r"])
        .parts();
    assert_eq!(code, 0, "{err}");
    // Not its 1m budget, as a gate's answer would be: the 2m the task takes.
    assert!(err.contains("a real run projects 2m"), "{err}");
    let report = p.report_json("r");
    let projected = report["projected_rto_s"].as_f64().unwrap_or_default();
    assert!((120.0..121.0).contains(&projected), "{report}");
}

#[test]
fn where_decisions_are_signed_status_tells_a_manual_task_to_be_done_signed_not_approved() {
    let p = Project::with_runbook("task", &TASK.replace("[tester]", "[alice]"));
    let alice = p.keygen("alice");
    p.allow_signers(&[("alice", &alice)]);
    let child = p.spawn(&["run", "task"]);
    let run = p.wait_for("approval_requested", "call-provider");
    let (code, out, err) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "signed: runbook done {run} call-provider --as NAME --all --key KEY [--note TEXT]"
        )) && out.contains("    request: "),
        "{out}"
    );
    // `approve` would be refused for a task: status does not offer it.
    assert!(!out.contains("runbook approve"), "{out}");
    let alice = alice.display().to_string();
    p.run(&[
        "done",
        &run,
        "call-provider",
        "--as",
        "alice",
        "--all",
        "--key",
        &alice,
    ])
    .code(0);
    child.finish_within(Duration::from_secs(20)).code(0);
}

/// A drill that failed before it reached a manual task still projects the task as work, at
/// its estimate (2m), not at its budget (1m) as it does a decision nobody was asked for: the
/// journal's plan says which steps are manual (`plan.steps[].manual`).
#[test]
fn a_drill_projects_a_manual_task_it_never_reached_at_its_estimate() {
    let failing_first = TASK_IN_A_DRILL.replace(
        "steps:\n  - id: call\n",
        "steps:\n  - { id: first, budget: 10s, estimate: 1s..1s..1s, run: \"false\", drill: run }\n  - id: call\n    needs: [first]\n",
    )
    .replace("    run: \"true\"\n", "    estimate: 1s..1s..1s\n    run: \"true\"\n");
    let p = Project::with_runbook("drilltask", &failing_first);
    let (code, _, err) = p
        .run(&["run", "drilltask", "--drill", "--yes", "--run-id", "r"])
        .parts();
    assert_eq!(code, 1, "{err}");
    let started = p.events_of("r", "run_started");
    let steps = &started[0]["data"]["plan"]["steps"];
    assert_eq!(steps[1]["id"], "call");
    assert_eq!(steps[1]["manual"], true, "{steps}");
    assert!(steps[0].get("manual").is_none(), "{steps}");
    let report = p.report_json("r");
    let projected = report["projected_rto_s"].as_f64().unwrap_or_default();
    // The failed first step as measured, the task's 2m, the last step's 1s.
    assert!((121.0..125.0).contains(&projected), "{report}");
}
