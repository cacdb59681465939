//! `for_each:` through the real binary: `check` puts each mistake of a loop at its line; a run
//! of `for_each: [a, b, c]` journals, logs and reports three instances, and with
//! `max_parallel: 1` runs them one after another.

use crate::support::{Project, report_step, runbook};

const BAD: &str = r#"scenario: bad
title: Loops written wrong
rto: 1h
steps:
  - id: empty
    for_each: []
    budget: 1m
    run: "true"
    drill: run
  - id: twice
    for_each: [eu-1, eu-2, eu-1]
    budget: 1m
    run: "true"
    drill: run
  - id: spaced
    for_each: [eu-1, "eu 2"]
    budget: 1m
    run: "true"
    drill: run
  - id: stray
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: bounded
    max_parallel: 2
    budget: 1m
    run: "true"
    drill: run
  - id: zero
    for_each: [a]
    max_parallel: 0
    budget: 1m
    run: "echo {{ item }}"
    drill: run
"#;

#[test]
fn check_puts_each_mistake_of_a_loop_at_its_line() {
    let out = runbook(&[])
        .file("runbooks/bad.yaml", BAD)
        .arg("check")
        .arg("runbooks/bad.yaml")
        .run();
    out.code(2)
        .stderr_has("`for_each` of step `empty` is an empty list")
        .stderr_has("[runbooks/bad.yaml:6:15]")
        .stderr_has("item `eu-1` of step `twice` is listed twice")
        .stderr_has("[runbooks/bad.yaml:11:28]")
        .stderr_has("item `eu 2` of step `spaced` cannot be part of a step id")
        .stderr_has("[runbooks/bad.yaml:16:22]")
        .stderr_has("undefined variable `item`")
        .stderr_has("[runbooks/bad.yaml:22:19]")
        .stderr_has(
            "`item` is the current item of a `for_each:` step, and this step has no `for_each`",
        )
        .stderr_has("step `bounded` has `max_parallel` but no `for_each`")
        .stderr_has("[runbooks/bad.yaml:25:19]")
        .stderr_has("`max_parallel` of step `zero` is 0")
        .stderr_has("[runbooks/bad.yaml:31:19]")
        .stderr_has("checked 1 runbook: 6 errors, 0 warnings");
}

#[test]
fn rto_ends_at_a_loop_is_an_error_at_its_line() {
    let out = runbook(&[])
        .file(
            "runbooks/end-loop.yaml",
            "\
scenario: end-loop
title: The RTO ends at a loop
rto: 1h
rto_ends_at: sync
steps:
  - { id: sync, for_each: [a, b], budget: 1m, run: \"true\", drill: run }
",
        )
        .arg("check")
        .arg("runbooks/end-loop.yaml")
        .run();
    out.code(2)
        .stderr_has("`rto_ends_at` names `sync`, a `for_each:` step")
        .stderr_has("[runbooks/end-loop.yaml:4:14]");
}

/// Three regions, each synced by an instance that echoes its item; `verify` reads one
/// instance's output by item. `sleep` makes overlapping instances overlap.
fn fan(max_parallel: &str) -> String {
    format!(
        r#"scenario: fan
title: Sync every region
rto: 10m
steps:
  - id: sync
    for_each: [a, b, c]
    {max_parallel}
    budget: 1m
    run: 'echo "syncing {{{{ item }}}}"; echo "region={{{{ item }}}}" >> "$RUNBOOK_OUTPUT"; sleep 0.3'
    drill: run
  - id: verify
    needs: [sync]
    budget: 1m
    run: "echo got {{{{ steps['sync'].outputs['b'].region }}}}"
    drill: run
"#
    )
}

#[test]
fn a_loop_runs_one_instance_per_item_with_its_own_log_outputs_and_report_line() {
    let p = Project::with_runbook("fan", &fan(""));
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    let started: Vec<String> = p
        .events_of(&run, "step_started")
        .iter()
        .map(|e| e["data"]["step"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(started, vec!["sync[a]", "sync[b]", "sync[c]", "verify"]);
    for item in ["a", "b", "c"] {
        let id = format!("sync[{item}]");
        assert_eq!(p.log(&run, &id).trim(), format!("syncing {item}"));
        assert_eq!(p.outputs(&run, &id)["region"], item);
        let report = p.report_json(&run);
        let step = report_step(&report, &id);
        assert_eq!(step["status"], "succeeded");
        assert_eq!(step["title"], id, "an instance is titled by its id");
    }
    assert_eq!(p.log(&run, "verify").trim(), "got b");
}

#[test]
fn max_parallel_one_runs_the_instances_one_after_another() {
    let p = Project::with_runbook("fan", &fan("max_parallel: 1"));
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    // In the journal, each instance starts only after the one before it has finished.
    let order: Vec<String> = p
        .events(&run)
        .iter()
        .filter(|e| e["type"] == "step_started" || e["type"] == "step_finished")
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["data"]["step"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order[..6],
        [
            "step_started sync[a]",
            "step_finished sync[a]",
            "step_started sync[b]",
            "step_finished sync[b]",
            "step_started sync[c]",
            "step_finished sync[c]",
        ]
    );
}

#[test]
fn plan_shows_every_instance() {
    let p = Project::with_runbook("fan", &fan(""));
    let (code, out, err) = p.run(&["plan", "fan"]).parts();
    assert_eq!(code, 0, "{err}");
    for id in ["sync[a]", "sync[b]", "sync[c]", "verify"] {
        assert!(out.contains(id), "{out}");
    }
}

#[test]
fn the_critical_path_takes_max_parallel_into_account() {
    let p = Project::with_runbook("fan", &fan(""));
    let (_, out, _) = p.run(&["plan", "fan"]).parts();
    assert!(
        out.contains("critical path (*): sync[a] → verify = 2m"),
        "{out}"
    );
    let (_, out, _) = p.run(&["plan", "fan", "--simulate", "500"]).parts();
    assert!(out.contains("P50 2m"), "{out}");
    let p = Project::with_runbook("fan", &fan("max_parallel: 1"));
    let (_, out, _) = p.run(&["plan", "fan"]).parts();
    assert!(
        out.contains("critical path (*): sync[a] → sync[b] → sync[c] → verify = 4m"),
        "{out}"
    );
    // Four steps of about a minute each, one after another.
    let (_, out, _) = p.run(&["plan", "fan", "--simulate", "500"]).parts();
    assert!(out.contains("P50 3m") || out.contains("P50 4m"), "{out}");
}

#[test]
fn a_dry_run_shows_where_an_instance_output_will_go() {
    let p = Project::with_runbook("fan", &fan("max_parallel: 1"));
    let (code, _, err) = p.run_scenario(&["--dry-run"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("verify [dry run]: echo got '<sync[b].region>'"),
        "{err}"
    );
}

const SLOW: &str = r#"scenario: slow
title: Regions synced one at a time
rto: 10m
steps:
  - id: sync
    for_each: [a, b, c]
    max_parallel: 1
    idempotent: true
    budget: 1m
    run: 'sleep 1; echo "{{ item }}" >> effects.txt'
    drill: run
"#;

#[test]
fn a_stopped_loop_resumes_at_the_instance_it_stopped_at() {
    let p = Project::with_runbook("slow", SLOW);
    let child = p.spawn(&["run", "slow"]);
    let run = p.wait_for("step_started", "sync[b]");
    child.interrupt_and_stop();
    assert_eq!(p.read("effects.txt"), "a\n");
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    // `sync[a]` is not run again; `sync[b]`, stopped, is (it is idempotent), then `sync[c]`.
    assert_eq!(p.read("effects.txt"), "a\nb\nc\n");
}
