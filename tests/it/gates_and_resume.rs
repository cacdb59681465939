//! Approval gates answered from another process, `status`, and `resume` after the executor
//! is killed — through the real binary, with real processes.

use std::time::Duration;

use crate::support::{Project, pid_alive, wait_until};

const GATE: &str = r#"scenario: gate
title: A gate between two steps
rto: 5m
roles:
  lead: [alice, bob]
  cto: [carol]
steps:
  - id: prep
    budget: 10s
    run: echo prep >> effects.txt
    drill: run
  - id: go
    needs: [prep]
    budget: 1m
    approval: { prompt: "Proceed after prep?", approvers: [lead], min: MIN, timeout: TIMEOUT }
  - id: act
    needs: [go]
    budget: 10s
    run: echo act >> effects.txt
    drill: run
"#;

fn gate_project(min: u32, timeout: &str) -> Project {
    let p = Project::new();
    p.write(
        "runbooks/gate.yaml",
        &GATE
            .replace("MIN", &min.to_string())
            .replace("TIMEOUT", timeout),
    );
    p
}

#[test]
fn a_run_without_a_tty_waits_at_a_gate_until_an_approver_answers_from_another_process() {
    let p = gate_project(1, "2m");
    let child = p.spawn(&["run", "gate"]);
    let run = p.wait_for("approval_requested", "go");
    // `act` must not start: there is no event to wait for, only time in which it would.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        p.read("effects.txt"),
        "prep\n",
        "act must wait for the gate"
    );

    // status shows the open gate and the exact command to paste.
    let (code, out, _) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0);
    assert!(
        out.contains("go    waiting") || out.contains("waiting"),
        "{out}"
    );
    assert!(
        out.contains(&format!("runbook approve {run} go --as NAME")),
        "{out}"
    );

    // An unauthorized name changes nothing, and its caller is told.
    let (code, out, _) = p.run(&["approve", &run, "go", "--as", "mallory"]).parts();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("rejected: `mallory` may not approve `go`"),
        "{out}"
    );
    let (code, out, _) = p.run(&["approve", &run, "go", "--as", "carol"]).parts();
    assert_eq!(code, 1, "a CTO is not an approver of this gate: {out}");
    // As above: time in which a wrongly passed gate would let `act` run.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(p.read("effects.txt"), "prep\n");
    assert_eq!(p.events_of(&run, "approval_rejected").len(), 2);

    // An approver lets it finish.
    // With the two pauses above, time at the gate the report must measure (>= 0.8 s below).
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) = p
        .run(&[
            "approve",
            &run,
            "go",
            "--as",
            "bob",
            "--comment",
            "checked the replica",
        ])
        .parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("granted: approved by bob"), "{out}");
    let (code, _, err) = child.finish_within(Duration::from_secs(20)).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "prep\nact\n");

    // The report names the approver and the wait.
    let report = p.report_json(&run);
    let go = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "go")
        .unwrap()
        .clone();
    assert_eq!(go["approved_by"], serde_json::json!(["bob"]));
    assert!(go["wait_s"].as_f64().unwrap() >= 0.8, "{go}");
    assert!(report["human_wait_s"].as_f64().unwrap() >= 0.8);
    let (_, md, _) = p.run(&["report", &run, "--format", "md"]).parts();
    assert!(md.contains("`go` approved by bob after a wait of"), "{md}");
    assert!(md.contains("checked the replica"), "{md}");
}

#[test]
fn a_denial_fails_the_run_with_exit_1() {
    let p = gate_project(1, "2m");
    let child = p.spawn(&["run", "gate"]);
    let run = p.wait_for("approval_requested", "go");
    let (code, out, _) = p
        .run(&[
            "deny",
            &run,
            "go",
            "--as",
            "alice",
            "--comment",
            "replica is behind",
        ])
        .parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("denied: by alice"), "{out}");
    let (code, _, _) = child.finish_within(Duration::from_secs(20)).parts();
    assert_eq!(code, 1);
    assert_eq!(p.read("effects.txt"), "prep\n");
    let act = p
        .events_of(&run, "step_finished")
        .into_iter()
        .find(|e| e["data"]["step"] == "act")
        .unwrap();
    assert_eq!(act["data"]["status"], "not_run");
}

#[test]
fn the_two_person_rule_needs_two_different_approvers() {
    let p = gate_project(2, "2m");
    let child = p.spawn(&["run", "gate"]);
    let run = p.wait_for("approval_requested", "go");
    let (code, out, _) = p.run(&["approve", &run, "go", "--as", "alice"]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("more approvers needed"), "{out}");
    let (code, out, _) = p.run(&["approve", &run, "go", "--as", "alice"]).parts();
    assert_eq!(code, 1, "the same person twice: {out}");
    // `act` must not start after one person's two approvals: time in which it would.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(p.read("effects.txt"), "prep\n");
    let (code, out, _) = p.run(&["approve", &run, "go", "--as", "bob"]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("granted: approved by alice, bob"), "{out}");
    assert_eq!(child.finish_within(Duration::from_secs(20)).parts().0, 0);
}

#[test]
fn a_gate_timeout_stops_the_run_resumable_and_resume_asks_again() {
    let p = gate_project(1, "1s");
    let (code, _, err) = p.run(&["run", "gate"]).parts();
    assert_eq!(code, 3, "{err}");
    let run = p.run_ids().pop().unwrap();
    assert_eq!(p.events_of(&run, "approval_timed_out").len(), 1);
    assert_eq!(
        p.events_of(&run, "run_interrupted")[0]["data"]["reason"],
        "approval_timed_out"
    );
    assert_eq!(
        p.read("effects.txt"),
        "prep\n",
        "a gate never passes silently"
    );

    // Resume: prep is not run again, the gate asks again, an approval finishes the run.
    let child = p.spawn(&["resume", &run]);
    wait_until("resume reopens the gate", || {
        p.events_of(&run, "approval_requested").len() >= 2
    });
    let (code, out, _) = p.run(&["approve", &run, "go", "--as", "alice"]).parts();
    assert_eq!(code, 0, "{out}");
    assert_eq!(child.finish_within(Duration::from_secs(20)).parts().0, 0);
    assert_eq!(p.read("effects.txt"), "prep\nact\n");
    assert_eq!(p.events_of(&run, "run_resumed").len(), 1);
}

#[test]
fn yes_in_a_real_run_needs_a_permitted_approver() {
    let p = gate_project(1, "2m");
    let (code, _, err) = p.run(&["run", "gate", "--yes"]).parts();
    assert_eq!(code, 2);
    assert!(
        err.contains("`--yes` in a real run needs `--as NAME`"),
        "{err}"
    );
    let (code, _, err) = p.run(&["run", "gate", "--yes", "--as", "carol"]).parts();
    assert_eq!(code, 2);
    assert!(err.contains("`carol` may not approve gate `go`"), "{err}");
    let (code, _, err) = p.run(&["run", "gate", "--yes", "--as", "alice"]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().pop().unwrap();
    let granted = &p.events_of(&run, "approval_granted")[0]["data"];
    assert_eq!(granted["auto"], true);
    assert_eq!(granted["by"], serde_json::json!(["alice"]));
    // In a drill, --yes alone is enough.
    let (code, _, err) = p.run(&["run", "gate", "--drill", "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
}

/// `--yes --as NAME` in a real run is NAME's approval, one person's: a gate with `min: 2`
/// still waits for a second approver. In a drill, `--yes` passes it.
#[test]
fn yes_in_a_real_run_is_one_approval_of_a_two_person_gate() {
    let p = gate_project(2, "2m");
    let child = p.spawn(&["run", "gate", "--yes", "--as", "alice"]);
    let run = p.wait_for("approval_received", "go");
    let got = &p.events_of(&run, "approval_received")[0]["data"];
    assert_eq!(got["by"], "alice");
    // The gate must not pass on one person: time in which it would.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        p.events_of(&run, "approval_granted").is_empty(),
        "one person passed a two-person gate"
    );
    assert_eq!(p.read("effects.txt"), "prep\n");
    let (code, out, _) = p.run(&["approve", &run, "go", "--as", "alice"]).parts();
    assert_eq!(code, 1, "alice twice: {out}");
    let (code, out, _) = p.run(&["approve", &run, "go", "--as", "bob"]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("granted: approved by alice, bob"), "{out}");
    assert_eq!(child.finish_within(Duration::from_secs(20)).parts().0, 0);
    assert_eq!(p.read("effects.txt"), "prep\nact\n");

    let (code, _, err) = p.run(&["run", "gate", "--drill", "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
}

/// `resume` keeps the run's `--max-parallel`.
#[test]
fn resume_keeps_the_runs_max_parallel() {
    let p = Project::new();
    let step = |id: &str| {
        format!(
            "  - {{ id: {id}, budget: 30s, idempotent: true, run: 'echo {id} >> order.txt; sleep 1; echo {id}-end >> order.txt', drill: run }}\n"
        )
    };
    p.write(
        "runbooks/mp.yaml",
        &format!(
            "scenario: mp\ntitle: t\nrto: 5m\nsteps:\n{}{}{}",
            step("a"),
            step("b"),
            step("c")
        ),
    );
    let mut child = p.spawn(&["run", "mp", "--max-parallel", "1"]);
    let run = p.wait_for("step_started", "a");
    child.kill().unwrap(); // SIGKILL: the engine is gone, step a goes on
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    // One step at a time, as the run was asked: each ends before the next starts.
    assert_eq!(p.read("order.txt"), "a\na-end\nb\nb-end\nc\nc-end\n");
}

const CRASH: &str = r#"scenario: crash
title: Killed in the middle of a step
rto: 5m
steps:
  - id: first
    budget: 10s
    run: echo first >> effects.txt
    drill: run
  - id: long
    needs: [first]
    budget: 30s
    run: echo long-start >> effects.txt; sleep 2; echo long-end >> effects.txt; echo "v=42" >> "$RUNBOOK_OUTPUT"
    drill: run
  - id: after
    needs: [long]
    budget: 10s
    run: echo "after {{ steps.long.outputs.v }}" >> effects.txt
    drill: run
"#;

#[test]
fn a_run_killed_with_sigkill_mid_step_resumes_adopting_the_step_and_runs_everything_once() {
    let p = Project::new();
    p.write("runbooks/crash.yaml", CRASH);
    let mut child = p.spawn(&["run", "crash"]);
    let run = p.wait_for("step_started", "long");
    long_has_begun(&p, &run);
    child.kill().unwrap(); // SIGKILL (and reaped): no chance to clean up
    // The step's process outlived its executor.
    let pid: i32 = p.step_pid(&run, "long.1");
    assert!(pid_alive(pid), "the in-flight step should still run");

    let (_, status, _) = p.run(&["status", &run]).parts();
    assert!(status.contains("the executor is gone"), "{status}");

    let (code, _, err) = p.run(&["resume", &run]).parts();
    assert_eq!(code, 0, "{err}");
    // Every step ran exactly once, the adopted one included; its output reached `after`.
    assert_eq!(
        p.read("effects.txt"),
        "first\nlong-start\nlong-end\nafter 42\n"
    );
    let resumed = &p.events_of(&run, "run_resumed")[0]["data"];
    assert_eq!(resumed["adopted"], serde_json::json!(["long"]));
    let (code, out, _) = p.run(&["verify", &run]).parts();
    assert_eq!(code, 0, "{out}");
    let report = p.report_json(&run);
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["resumes"].as_array().unwrap().len(), 1);
}

#[test]
fn a_step_that_died_with_its_executor_is_rerun_only_when_idempotent_or_confirmed() {
    for idempotent in [false, true] {
        let p = Project::new();
        p.write(
            "runbooks/crash.yaml",
            &CRASH.replace(
                "    budget: 30s\n",
                &format!("    budget: 30s\n    idempotent: {idempotent}\n"),
            ),
        );
        let mut child = p.spawn(&["run", "crash"]);
        let run = p.wait_for("step_started", "long");
        long_has_begun(&p, &run);
        // Kill everything, as a reboot would: the executor, its step supervisor and the
        // step's whole group. Nothing is left to adopt and nothing recorded an end.
        let pid: i32 = p.step_pid(&run, "long.1");
        child.kill().unwrap(); // SIGKILL, and reaped
        p.kill_supervisor_of(&run);
        unsafe_killpg(pid);
        wait_until("the step is gone", || !pid_alive(pid));

        let (code, _, err) = p.run(&["resume", &run]).parts();
        if idempotent {
            assert_eq!(code, 0, "{err}");
            assert_eq!(
                p.read("effects.txt"),
                "first\nlong-start\nlong-start\nlong-end\nafter 42\n"
            );
            assert_eq!(
                p.events_of(&run, "run_resumed")[0]["data"]["rerun"],
                serde_json::json!(["long"])
            );
        } else {
            // Its outcome is unknown: `--yes` is no answer to that, only the operator's word for
            // this step is; the run stays resumable.
            for args in [vec!["resume", &run], vec!["resume", &run, "--yes"]] {
                let (code, _, err) = p.run(&args).parts();
                assert_eq!(code, 3, "{err}");
                assert!(
                    err.contains("step `long` ended while no supervisor watched it: its outcome is unknown, and it is not `idempotent: true`"),
                    "{err}"
                );
                assert!(
                    err.contains(&format!("runbook resume {run} --rerun long"))
                        && err.contains(&format!("runbook resume {run} --mark-done long")),
                    "{err}"
                );
                assert_eq!(
                    p.read("effects.txt"),
                    "first\nlong-start\n",
                    "nothing re-ran"
                );
            }
            let (code, _, err) = p.run(&["resume", &run, "--rerun", "long"]).parts();
            assert_eq!(code, 0, "{err}");
            assert_eq!(
                p.read("effects.txt"),
                "first\nlong-start\nlong-start\nlong-end\nafter 42\n"
            );
        }
    }
}

/// A step whose outcome was lost and that the operator checked is taken as done on their
/// word: it does not run again, the journal says who decided, and the run goes on.
#[test]
fn mark_done_takes_an_unknown_step_as_done_on_the_operators_word() {
    let p = Project::new();
    p.write(
        "runbooks/crash.yaml",
        &CRASH.replace(
            "run: echo \"after {{ steps.long.outputs.v }}\" >> effects.txt",
            "run: echo after >> effects.txt",
        ),
    );
    let mut child = p.spawn(&["run", "crash"]);
    let run = p.wait_for("step_started", "long");
    long_has_begun(&p, &run);
    let pid: i32 = p.step_pid(&run, "long.1");
    child.kill().unwrap();
    p.kill_supervisor_of(&run);
    unsafe_killpg(pid);
    wait_until("the step is gone", || !pid_alive(pid));
    let (code, _, err) = p.run(&["resume", &run, "--mark-done", "nope"]).parts();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`nope` is not a step of run"), "{err}");
    let (code, _, err) = p
        .run(&["resume", &run, "--mark-done", "long", "--as", "alice"])
        .parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "first\nlong-start\nafter\n");
    let long = p
        .events_of(&run, "step_finished")
        .into_iter()
        .find(|e| e["data"]["step"] == "long")
        .unwrap();
    assert_eq!(long["data"]["status"], "succeeded");
    assert_eq!(long["data"]["marked_done_by"], "alice");
    assert_eq!(
        p.events_of(&run, "run_resumed")[0]["data"]["marked_done"],
        serde_json::json!(["long"])
    );
    let (code, out, _) = p.run(&["verify", &run]).parts();
    assert_eq!(code, 0, "{out}");
}

/// Waits until step `long` of CRASH has begun: `step_started` is journaled before the step is
/// spawned, so a kill right after it could find no process to adopt and no first line. Its
/// supervisor records the process group once it is spawned, and the step then writes
/// `long-start` (a fixed sleep stood here, too short on a loaded machine).
fn long_has_begun(p: &Project, run: &str) {
    let status = p.run_dir(run).join("steps.status");
    wait_until("the supervisor recorded `long`'s process", || {
        std::fs::read_to_string(&status)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("long.1 pid "))
    });
    let effects = p.path().join("effects.txt");
    wait_until("`long` wrote its first line", || {
        std::fs::read_to_string(&effects)
            .unwrap_or_default()
            .contains("long-start")
    });
}

fn unsafe_killpg(pgid: i32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status();
}

/// With the engine gone, the step supervisor still sees its steps to their end: a step killed
/// meanwhile is recorded as such, and resume takes that outcome rather than running it again.
#[test]
fn a_step_killed_while_its_engine_was_down_is_taken_as_failed_not_rerun() {
    let p = Project::new();
    p.write("runbooks/crash.yaml", CRASH);
    let mut child = p.spawn(&["run", "crash"]);
    let run = p.wait_for("step_started", "long");
    long_has_begun(&p, &run);
    let pid: i32 = p.step_pid(&run, "long.1");
    child.kill().unwrap();
    unsafe_killpg(pid);
    let status = p.path().join(format!(".runbook/runs/{run}/steps.status"));
    wait_until("the supervisor records an end for `long`", || {
        std::fs::read_to_string(&status)
            .unwrap_or_default()
            .contains("long.1 exit ")
    });
    let (code, _, err) = p.run(&["resume", &run]).parts();
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        p.read("effects.txt"),
        "first\nlong-start\n",
        "nothing ran again"
    );
    let long = p
        .events_of(&run, "step_finished")
        .into_iter()
        .find(|e| e["data"]["step"] == "long")
        .unwrap();
    assert_eq!(long["data"]["status"], "failed");
    assert_eq!(long["data"]["exit_code"], 137);
}

#[test]
fn resume_refuses_a_live_run_and_a_changed_runbook() {
    let p = Project::new();
    p.write("runbooks/crash.yaml", CRASH);
    let child = p.spawn(&["run", "crash"]);
    let run = p.wait_for("step_started", "long");
    let (code, _, err) = p.run(&["resume", &run]).parts();
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot be resumed while its executor runs"),
        "{err}"
    );
    assert_eq!(child.finish_within(Duration::from_secs(20)).parts().0, 0);
    let (code, _, err) = p.run(&["resume", &run]).parts();
    assert_eq!(code, 2);
    assert!(err.contains("already finished"), "{err}");

    // Stopped by SIGINT, then the runbook changes: resume refuses.
    let first = run;
    let child = p.spawn(&["run", "crash"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let run = loop {
        let newest = p.run_ids().into_iter().find(|r| *r != first);
        if let Some(r) = newest.filter(|r| {
            p.events_of(r, "step_started")
                .iter()
                .any(|e| e["data"]["step"] == "long")
        }) {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second run did not start `long`"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let (code, _, _) = child.finish_within(Duration::from_secs(20)).parts();
    assert_eq!(code, 3);
    p.write("runbooks/crash.yaml", &CRASH.replace("rto: 5m", "rto: 6m"));
    let (code, _, err) = p.run(&["resume", &run]).parts();
    assert_eq!(code, 2);
    assert!(err.contains("has changed since run"), "{err}");
}

/// A step that finished, failed, is not run again by `resume` (here one that failed with
/// `on_failure: continue`, before the run was interrupted).
#[test]
fn resume_never_reruns_a_step_that_finished_failed() {
    let p = Project::new();
    p.write(
        "runbooks/res.yaml",
        r#"scenario: res
title: A failed step, then an interruption
rto: 5m
steps:
  - { id: nonidem, budget: 10s, on_failure: continue, run: 'echo ran >> count.txt; exit 1', drill: run }
  - { id: long, budget: 30s, idempotent: true, run: 'sleep 5; echo long >> effects.txt', drill: run }
"#,
    );
    let child = p.spawn(&["run", "res"]);
    let run = p.wait_for("step_finished", "nonidem");
    p.wait_for("step_started", "long");
    child.interrupt_and_stop();
    // The failed step stays failed, and continued: `--strict` makes the resumed run exit 1
    // for it; long ran again, nonidem did not.
    let (code, _, err) = p.run(&["resume", &run, "--yes", "--strict"]).parts();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("failed, continued"), "{err}");
    let report = p.report_json(&run);
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["continued"], serde_json::json!(["nonidem"]));
    assert_eq!(p.read("count.txt"), "ran\n");
    assert_eq!(p.read("effects.txt"), "long\n");
    let started = p
        .events_of(&run, "step_started")
        .into_iter()
        .filter(|e| e["data"]["step"] == "nonidem")
        .count();
    assert_eq!(started, 1);
}

/// What held a secret is journaled masked, so a resumed run does not have it: an output is
/// missing (and the step that needs it says why) rather than `***`, and a variable must be
/// given again rather than falling back to the runbook's default.
#[test]
fn resume_does_not_pass_on_masked_values_as_if_they_were_real() {
    let p = Project::new();
    p.write(
        "runbooks/rsec.yaml",
        r#"scenario: rsec
title: Secrets across a resume
rto: 5m
vars: { target: "postgres://localhost/default", region: eu }
secrets: [PW]
steps:
  - { id: a, budget: 10s, run: 'echo "dsn=postgres://u:$PW@db/x" >> "$RUNBOOK_OUTPUT"', drill: run }
  - { id: wait, needs: [a], budget: 30s, idempotent: true, run: sleep 5, drill: run }
  - { id: b, needs: [wait], budget: 10s, run: 'echo {{ steps.a.outputs.dsn }} {{ target }} > got.txt', drill: run }
"#,
    );
    let mut cmd = p.cmd(&[
        "run",
        "rsec",
        "--var",
        "target=postgres://u:hunter22@prod/x",
    ]);
    cmd.env("PW", "hunter22");
    let child = p.spawn_with(cmd);
    let run = p.wait_for("step_started", "wait");
    child.interrupt_and_stop();

    let mut cmd = p.cmd(&["resume", &run, "--yes"]);
    cmd.env("PW", "hunter22");
    let (code, _, err) = p.run_with(cmd).parts();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("variable `target` held a secret"), "{err}");
    assert!(err.contains("--var target="), "{err}");

    // A variable that held no secret is the run's: resume does not take another value.
    let mut cmd = p.cmd(&["resume", &run, "--yes", "--var", "region=us"]);
    cmd.env("PW", "hunter22");
    let (code, _, err) = p.run_with(cmd).parts();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("a resume keeps to it"), "{err}");

    let mut cmd = p.cmd(&[
        "resume",
        &run,
        "--yes",
        "--var",
        "target=postgres://u:hunter22@prod/x",
    ]);
    cmd.env("PW", "hunter22");
    let (code, _, err) = p.run_with(cmd).parts();
    assert_eq!(code, 1, "{err}");
    assert!(
        !p.path().join("got.txt").exists(),
        "b ran with a masked value"
    );
    let b = p
        .events_of(&run, "step_finished")
        .into_iter()
        .find(|e| e["data"]["step"] == "b")
        .unwrap();
    let error = b["data"]["error"].as_str().unwrap();
    assert!(
        error.contains(
            "step `a` wrote no output `dsn` in this resumed run: its value held a secret"
        ),
        "{error}"
    );
}

/// A resumed run runs the commands the run started with: a library step that changed since
/// is refused, as a changed runbook is.
#[test]
fn resume_refuses_a_changed_library_step() {
    let p = Project::new();
    p.write(
        "steps/sys/thing.yaml",
        "title: A thing\nrun: ./steps/sys/thing.sh\nbudget: 10s\ndrill: run\n",
    );
    p.script(
        "steps/sys/thing.sh",
        "#!/bin/sh\necho thing >> effects.txt\n",
    );
    p.write(
        "runbooks/lib.yaml",
        r#"scenario: lib
title: Uses a library step
rto: 5m
steps:
  - { id: first, budget: 30s, idempotent: true, run: 'sleep 5', drill: run }
  - { id: second, needs: [first], uses: sys/thing }
"#,
    );
    let child = p.spawn(&["run", "lib"]);
    let run = p.wait_for("step_started", "first");
    child.interrupt_and_stop();
    // Its YAML as it was; the script it runs changed.
    p.script(
        "steps/sys/thing.sh",
        "#!/bin/sh\necho changed >> effects.txt\n",
    );
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "library step `sys/thing` (steps/sys/thing.yaml, or a script it runs) has changed"
        ),
        "{err}"
    );
    assert!(!p.path().join("effects.txt").exists());
    // Put back as it ran, the run resumes.
    p.script(
        "steps/sys/thing.sh",
        "#!/bin/sh\necho thing >> effects.txt\n",
    );
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "thing\n");
}

/// A stopped run is still an outage: `status` keeps its RTO clock running, and counts the
/// interrupted step's budget in the projection (it runs again on resume).
#[test]
fn status_of_a_stopped_run_keeps_the_rto_clock_running() {
    let p = Project::new();
    p.write(
        "runbooks/clock.yaml",
        "scenario: clock\ntitle: t\nrto: 10m\nsteps:\n  - { id: a, budget: 5m, run: 'sleep 30', drill: run }\n",
    );
    let child = p.spawn(&["run", "clock"]);
    let run = p.wait_for("step_started", "a");
    child.interrupt_and_stop();
    std::thread::sleep(Duration::from_millis(1500));
    let (code, out, _) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("RTO clock at "))
        .unwrap_or_default();
    let clock = line["RTO clock at ".len()..].split(' ').next().unwrap();
    let secs: f64 = clock.trim_end_matches('s').parse().unwrap_or(0.0);
    assert!(secs >= 1.5, "the clock stopped with the executor: {line}");
    assert!(line.contains("projected finish +5m"), "{line}");
}

/// A gate that waits pages its approvers through their channel (a role and its notify channel
/// share a name), at once, and the page is journaled.
#[test]
fn a_waiting_gate_pages_its_approvers() {
    let p = Project::new();
    p.write(
        "runbooks/page.yaml",
        r#"scenario: page
title: A gate pages its approvers
rto: 5m
roles: { lead: [alice] }
notify: { lead: "echo {{ message }} >> paged.txt" }
steps:
  - id: go
    budget: 1m
    approval: { prompt: "Fail over?", approvers: [lead], min: 1, timeout: 2m }
"#,
    );
    let child = p.spawn(&["run", "page"]);
    let run = p.wait_for("escalated", "");
    let paged = p.read("paged.txt");
    assert!(
        paged.contains("gate `go` waits for your approval (1 of lead): Fail over?"),
        "{paged}"
    );
    assert!(
        paged.contains(&format!("runbook approve {run} go --as NAME")),
        "{paged}"
    );
    let e = &p.events_of(&run, "escalated")[0]["data"];
    assert_eq!(e["reason"], "approval_requested");
    let (code, out, _) = p.run(&["approve", &run, "go", "--as", "alice"]).parts();
    assert_eq!(code, 0, "{out}");
    assert_eq!(child.finish_within(Duration::from_secs(20)).parts().0, 0);
}

/// A gate's page to its approvers is not an entry of the escalation schedule: after a resume,
/// the schedule's entry for the same channel still goes out at its time.
#[test]
fn a_resumed_run_keeps_its_escalation_schedule_after_a_gate_paged() {
    let p = Project::new();
    p.write(
        "runbooks/esc.yaml",
        r#"scenario: esc
title: Pages, then a schedule, across a resume
rto: 5m
roles: { lead: [bob] }
notify:
  oncall: "echo oncall {{ message }} >> notes.txt"
  lead: "echo lead {{ message }} >> notes.txt"
escalation:
  - { after: 0s, notify: oncall }
  - { after: 3s, notify: lead }
steps:
  - id: go
    budget: 1m
    approval: { prompt: "Go?", approvers: [lead], min: 1, timeout: 2m }
"#,
    );
    let child = p.spawn(&["run", "esc"]);
    let run = p.wait_for("escalated", "");
    child.interrupt_and_stop();
    assert!(
        !p.events_of(&run, "escalated")
            .iter()
            .any(|e| e["data"]["reason"] == "schedule" && e["data"]["channel"] == "lead"),
        "stopped before the 3s escalation"
    );
    let child = p.spawn(&["resume", &run]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let scheduled_lead = || {
        p.events_of(&run, "escalated")
            .iter()
            .any(|e| e["data"]["channel"] == "lead" && e["data"]["reason"] == "schedule")
    };
    while !scheduled_lead() {
        assert!(
            std::time::Instant::now() < deadline,
            "the 3s escalation to lead never went out after the resume: {:?}",
            p.events_of(&run, "escalated")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, _) = p.run(&["approve", &run, "go", "--as", "bob"]).parts();
    assert_eq!(code, 0, "{out}");
    assert_eq!(child.finish_within(Duration::from_secs(20)).parts().0, 0);
}

/// The journal says which values were masked: a value that only looks like a mask (`***`
/// written by the step itself) is passed on across a resume as it was.
#[test]
fn resume_passes_on_a_value_that_only_looks_masked() {
    let p = Project::new();
    p.write(
        "runbooks/stars.yaml",
        r#"scenario: stars
title: Stars that are no mask
rto: 5m
vars: { lit: "x***y" }
secrets: [PW]
steps:
  - { id: a, budget: 10s, run: 'echo "note=a***b" >> "$RUNBOOK_OUTPUT"', drill: run }
  - { id: wait, needs: [a], budget: 30s, idempotent: true, run: sleep 5, drill: run }
  - { id: c, needs: [wait], budget: 10s, run: 'echo {{ steps.a.outputs.note }} {{ lit }} > got.txt', drill: run }
"#,
    );
    let mut cmd = p.cmd(&["run", "stars"]);
    cmd.env("PW", "hunter22");
    let child = p.spawn_with(cmd);
    let run = p.wait_for("step_started", "wait");
    child.interrupt_and_stop();
    let mut cmd = p.cmd(&["resume", &run, "--yes"]);
    cmd.env("PW", "hunter22");
    let (code, _, err) = p.run_with(cmd).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("got.txt"), "a***b x***y\n");
}
