//! `finally:` and a growing `backoff:` through the real binary: `check` puts each mistake at
//! its line; a run whose middle step fails runs its cleanup, which sees the outcome; a run
//! stopped with SIGINT does not, and `resume` runs it once.

use crate::support::{Project, runbook};

fn check(name: &str, yaml: &str) -> crate::support::Out {
    let path = format!("runbooks/{name}.yaml");
    runbook(&[]).file(&path, yaml).arg("check").arg(&path).run()
}

#[test]
fn a_finally_step_needing_a_main_step_is_an_error_at_its_need() {
    let out = check(
        "fin-needs-main",
        "\
scenario: fin-needs-main
title: Cleanup that waits for a main step
rto: 1h
steps:
  - { id: restore, budget: 1m, run: \"true\", drill: run }
finally:
  - id: resume-writes
    needs: [restore]
    budget: 1m
    run: \"true\"
    drill: run
",
    );
    out.code(2)
        .stderr_has("`finally:` step `resume-writes` needs `restore`, a step of `steps:`")
        .stderr_has("[runbooks/fin-needs-main.yaml:8:13]")
        .stderr_has("whatever its outcome: read `run.status`")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
}

#[test]
fn a_main_step_needing_a_finally_step_is_an_error_at_its_need() {
    let out = check(
        "main-needs-fin",
        "\
scenario: main-needs-fin
title: A main step that waits for cleanup
rto: 1h
steps:
  - { id: restore, needs: [lift], budget: 1m, run: \"true\", drill: run }
finally:
  - { id: lift, budget: 1m, run: \"true\", drill: run }
",
    );
    out.code(2)
        .stderr_has("step `restore` needs `lift`, a `finally:` step")
        .stderr_has("[runbooks/main-needs-fin.yaml:5:28]")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
}

#[test]
fn run_is_seen_only_by_finally_steps() {
    let out = check(
        "run-in-main",
        "\
scenario: run-in-main
title: The outcome read too early
rto: 1h
steps:
  - { id: a, budget: 1m, run: \"echo {{ run.status }}\", drill: run }
finally:
  - { id: b, budget: 1m, run: \"echo {{ run.status }} {{ run.failed_steps | join(',') }}\", drill: run }
",
    );
    out.code(2)
        .stderr_has("undefined variable `run`")
        .stderr_has("[runbooks/run-in-main.yaml:5:")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
}

#[test]
fn a_bad_backoff_is_an_error_at_its_line() {
    let out = check(
        "bad-backoff",
        "\
scenario: bad-backoff
title: Backoffs that shrink
rto: 1h
steps:
  - id: a
    budget: 1m
    run: \"true\"
    drill: run
    retries: 3
    backoff: { initial: 30s, factor: 0.5, max: 10s }
",
    );
    out.code(2)
        .stderr_has("`backoff.factor` of step `a` is 0.5: it must be at least 1")
        .stderr_has("[runbooks/bad-backoff.yaml:10:38]")
        .stderr_has("`backoff.max` of step `a` is 10s, shorter than its `initial` of 30s")
        .stderr_has("[runbooks/bad-backoff.yaml:10:48]")
        .stderr_has("checked 1 runbook: 2 errors, 0 warnings");
}

const FAILS_IN_THE_MIDDLE: &str = r#"scenario: mid
title: The middle step fails
rto: 5m
steps:
  - { id: stop-writes, budget: 10s, run: 'echo stopped >> effects.txt', drill: run }
  - { id: restore, needs: [stop-writes], budget: 10s, run: 'exit 4', drill: run }
  - { id: verify, needs: [restore], budget: 10s, run: 'echo verified >> effects.txt', drill: run }
finally:
  - id: resume-writes
    budget: 10s
    run: 'echo "resumed {{ run.status }} {{ run.failed_steps | join(",") | raw }}" >> effects.txt'
    drill: run
"#;

#[test]
fn a_failed_run_runs_its_finally_step_which_sees_the_failure_and_exits_1() {
    let p = Project::with_runbook("mid", FAILS_IN_THE_MIDDLE);
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 1, "{err}");
    assert_eq!(p.read("effects.txt"), "stopped\nresumed failed restore\n");
    let run = p.run_ids().last().unwrap().clone();
    let started = p.events_of(&run, "run_started");
    let plan = &started[0]["data"]["plan"]["steps"];
    assert_eq!(plan[3]["id"], "resume-writes");
    assert_eq!(plan[3]["finally"], true);
    assert!(plan[0].get("finally").is_none(), "absent when false");
    let finished = p.events_of(&run, "run_finished");
    assert_eq!(finished[0]["data"]["status"], "failed");
    assert_eq!(finished[0]["data"]["failed_at"], "restore");
}

const STOPPABLE: &str = r#"scenario: stoppable
title: Stopped before its cleanup
rto: 5m
steps:
  - { id: wait, budget: 30s, idempotent: true, run: 'sleep 5; echo waited >> effects.txt', drill: run }
finally:
  - { id: lift, budget: 10s, run: 'echo "lifted {{ run.status }}" >> effects.txt', drill: run }
"#;

#[test]
fn a_run_stopped_by_sigint_does_not_run_finally_and_resume_runs_it_once() {
    let p = Project::with_runbook("stoppable", STOPPABLE);
    let child = p.spawn(&["run", "stoppable"]);
    let run = p.wait_for("step_started", "wait");
    child.interrupt_and_stop();
    assert!(
        !p.path().join("effects.txt").exists(),
        "nothing ran to its end, the cleanup neither"
    );
    assert!(
        p.events_of(&run, "step_started")
            .iter()
            .all(|e| e["data"]["step"] != "lift")
    );
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "waited\nlifted succeeded\n");
    // The run is over: a second resume runs nothing, the cleanup least of all.
    let (code, _, _) = p.run(&["resume", &run, "--yes"]).parts();
    assert_ne!(code, 0);
    assert_eq!(p.read("effects.txt"), "waited\nlifted succeeded\n");
    let lifts = p
        .events_of(&run, "step_started")
        .into_iter()
        .filter(|e| e["data"]["step"] == "lift")
        .count();
    assert_eq!(lifts, 1);
}

#[test]
fn plan_status_and_reports_show_the_finally_steps() {
    let p = Project::with_runbook("mid", FAILS_IN_THE_MIDDLE);
    let (code, out, err) = p.run(&["plan", "mid"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "finally (once every other step has ended, whatever its outcome):\n  * resume-writes"
        ),
        "{out}"
    );
    assert!(
        out.contains("critical path (*): stop-writes → restore → verify → resume-writes = 40s"),
        "{out}"
    );
    let (code, out, _) = p.run(&["plan", "mid", "--format", "json"]).parts();
    assert_eq!(code, 0);
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fin: Vec<&serde_json::Value> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["finally"] == true)
        .collect();
    assert_eq!(fin.len(), 1);
    assert_eq!(fin[0]["id"], "resume-writes");

    p.run_scenario(&[]).code(1);
    let run = p.run_ids().last().unwrap().clone();
    let (_, status, _) = p.run(&["status", &run]).parts();
    assert!(
        status.contains("finally (cleanup, after every other step)"),
        "{status}"
    );
    let report = p.report_json(&run);
    let step = crate::support::report_step(&report, "resume-writes");
    assert_eq!(step["finally"], true);
    assert_eq!(step["status"], "succeeded");
    let (_, md, _) = p.run(&["report", &run, "--format", "md"]).parts();
    assert!(md.contains("| resume-writes (finally) | succeeded"), "{md}");
}

/// A cleanup reads what the main steps wrote: `check` takes it like any template (an unknown
/// step is an error at its line), and a run gives it the outputs, a skipped step's through
/// its `default`.
#[test]
fn finally_reads_the_main_steps_outputs() {
    let yaml = r#"scenario: reads
title: Cleanup that reads outputs
rto: 1h
steps:
  - { id: pick, budget: 10s, run: 'echo "lock=L7" >> "$RUNBOOK_OUTPUT"', drill: run }
  - { id: maybe, needs: [pick], when: "false", budget: 10s, run: 'echo "n=1" >> "$RUNBOOK_OUTPUT"', drill: run }
finally:
  - id: release
    budget: 10s
    run: 'echo "release {{ steps.pick.outputs.lock }} {{ steps.maybe.outputs.n | default(''skipped'') }}" >> effects.txt'
    drill: run
"#;
    check("reads", yaml).code(0);
    let typo = yaml.replace("steps.pick.outputs", "steps.pik.outputs");
    check("reads", &typo)
        .code(2)
        .stderr_has("no step `pik` to take outputs from")
        .stderr_has("[runbooks/reads.yaml:10:");
    let p = Project::with_runbook("reads", yaml);
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "release L7 skipped\n");
    // Without the default, the skipped step's output is an error that names it.
    let strict = yaml.replace(" | default(''skipped'')", "");
    let p = Project::with_runbook("reads", &strict);
    let (code, out, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 1, "{err}");
    assert!(
        format!("{out}{err}").contains(
            "step `maybe` wrote no output `n` (it was skipped: its `when` was false; give a default"
        ),
        "{out}{err}"
    );
}
