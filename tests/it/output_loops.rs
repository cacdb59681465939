//! Loops over an upstream step's output (`for_each: "{{ steps['discover'].outputs.regions }}"`),
//! through the real binary: `check` says at the `for_each:`'s line what is wrong with one; a
//! run expands it when the step that writes the list has finished, journals `loop_expanded`,
//! and every instance is a step of the journal, `status` and the reports; a run killed mid-loop
//! resumes the same instances; an empty list skips the loop, a bad one fails it.

use crate::support::{Project, report_step};

const OUTPUT_LOOPS: &str = r#"scenario: bad
title: Loops over an output
rto: 1h
steps:
  - id: discover
    budget: 1m
    run: "echo 'regions=[\"eu-1\",\"eu-2\"]'"
    drill: run
  - id: unknown
    needs: [discover]
    for_each: "{{ steps['discovr'].outputs.regions }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: loose
    for_each: "{{ steps['discover'].outputs.regions }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: filtered
    needs: [discover]
    for_each: "{{ steps['discover'].outputs.regions | reverse }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: per-host
    needs: [unknown]
    for_each: "{{ steps['unknown'].outputs.hosts }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
"#;

#[test]
fn check_puts_each_mistake_of_a_loop_over_an_output_at_its_line() {
    let p = Project::new();
    p.write("runbooks/bad.yaml", OUTPUT_LOOPS);
    p.run(&["check", "runbooks/bad.yaml"])
        .code(2)
        .stderr_has("`for_each` of step `unknown` reads an output of `discovr`, which is no step")
        .stderr_has("[runbooks/bad.yaml:11:15]")
        .stderr_has("did you mean `discover`?")
        .stderr_has(
            "`for_each` of step `loose` reads an output of `discover`, which is not upstream of it",
        )
        .stderr_has("[runbooks/bad.yaml:16:15]")
        .stderr_has("add `needs: [discover]` to step `loose`")
        .stderr_has(
            "`for_each` of step `filtered` is `{{ steps['discover'].outputs.regions | reverse }}`",
        )
        .stderr_has("[runbooks/bad.yaml:22:15]")
        .stderr_has("names it as `{{ steps['<id>'].outputs.<key> }}`, nothing more")
        .stderr_has("`for_each` of step `per-host` reads an output of `unknown`, which is a loop")
        .stderr_has("[runbooks/bad.yaml:28:15]")
        .stderr_has("checked 1 runbook: 4 errors, 0 warnings");
}

#[test]
fn check_refuses_a_loop_over_an_output_in_cleanup_or_in_a_called_runbook() {
    let p = Project::new();
    p.write(
        "runbooks/inner.yaml",
        r#"scenario: inner
title: Called
rto: 1h
steps:
  - id: discover
    budget: 1m
    run: "echo regions=a"
    drill: run
  - id: sync
    needs: [discover]
    for_each: "{{ steps['discover'].outputs.regions }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
"#,
    );
    p.write(
        "runbooks/outer.yaml",
        r#"scenario: outer
title: Calling
rto: 2h
steps:
  - id: discover
    budget: 1m
    run: "echo regions=a"
    drill: run
  - id: inner
    runbook: inner
finally:
  - id: tidy
    for_each: "{{ steps['discover'].outputs.regions }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
"#,
    );
    p.run(&["check", "runbooks/outer.yaml"])
        .code(2)
        .stderr_has("step `inner` calls a runbook whose step `sync` loops over `steps['discover'].outputs.regions`")
        .stderr_has("[runbooks/outer.yaml:10:14]")
        .stderr_has("`finally:` step `tidy` loops over an output")
        .stderr_has("[runbooks/outer.yaml:13:15]");
    p.run(&["check", "runbooks/inner.yaml"]).code(0);
}

/// `discover` writes `regions` (what `list` gives); `sync` runs once per item, in turns, each
/// instance echoing its item and adding it to `effects.txt`; `verify` needs every instance.
fn discovered(list: &str, sleep: &str) -> String {
    discovered_then(list, sleep, "{{ steps['sync'].outputs['eu-2'].lsn }}")
}

/// As [`discovered`], `verify` echoing `shown`.
fn discovered_then(list: &str, sleep: &str, shown: &str) -> String {
    format!(
        r#"scenario: regions
title: Every region discovered
rto: 10m
steps:
  - id: discover
    budget: 1m
    run: "echo 'regions={list}' >> $RUNBOOK_OUTPUT"
    drill: run
  - id: sync
    title: "Sync {{{{ item }}}}"
    needs: [discover]
    for_each: "{{{{ steps['discover'].outputs.regions }}}}"
    max_parallel: 1
    idempotent: true
    budget: 1m
    run: 'echo syncing {{{{ item }}}}; {sleep} echo "{{{{ item }}}}" >> effects.txt; echo lsn=7{{{{ item }}}} >> $RUNBOOK_OUTPUT'
    drill: run
  - id: verify
    needs: [sync]
    budget: 1m
    run: "echo verified {shown}"
    drill: run
"#
    )
}

fn ids(steps: &serde_json::Value) -> Vec<String> {
    steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_loop_over_an_output_runs_one_instance_per_item_of_the_json_list() {
    let p = Project::with_runbook("regions", &discovered(r#"[\"eu-1\",\"eu-2\"]"#, ""));
    let (code, out, err) = p.run(&["plan", "regions"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("sync: one per item of steps['discover'].outputs.regions"),
        "{out}"
    );
    assert!(!out.contains("sync[eu-1]"), "{out}");

    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    let expanded = p.events_of(&run, "loop_expanded");
    assert_eq!(expanded.len(), 1);
    assert_eq!(expanded[0]["data"]["step"], "sync");
    assert_eq!(
        expanded[0]["data"]["items"],
        serde_json::json!(["eu-1", "eu-2"])
    );
    assert_eq!(
        ids(&expanded[0]["data"]["instances"]),
        ["sync[eu-1]", "sync[eu-2]"]
    );
    assert_eq!(p.log(&run, "sync[eu-2]").trim(), "syncing eu-2");
    assert_eq!(p.log(&run, "verify").trim(), "verified 7eu-2");
    assert_eq!(p.read("effects.txt"), "eu-1\neu-2\n");

    let report = p.report_json(&run);
    assert_eq!(
        ids(&report["steps"]),
        ["discover", "sync[eu-1]", "sync[eu-2]", "verify"]
    );
    assert_eq!(report_step(&report, "sync[eu-1]")["status"], "succeeded");
    assert_eq!(report_step(&report, "sync[eu-1]")["title"], "Sync eu-1");
    let (code, out, err) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sync[eu-2]  succeeded"), "{out}");
    p.run(&["verify", &run]).code(0);
}

#[test]
fn a_loop_over_an_output_killed_mid_loop_resumes_the_same_instances() {
    let p = Project::with_runbook(
        "regions",
        &discovered(r#"[\"eu-1\",\"eu-2\",\"eu-3\"]"#, "sleep 1;"),
    );
    let mut child = p.spawn(&["run", "regions"]);
    let run = p.wait_for("step_started", "sync[eu-2]");
    child.kill().unwrap(); // SIGKILL: the engine is gone mid-loop
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "eu-1\neu-2\neu-3\n");
    let started: Vec<String> = p
        .events_of(&run, "step_started")
        .iter()
        .map(|e| e["data"]["step"].as_str().unwrap().to_owned())
        .collect();
    for once in ["discover", "sync[eu-1]"] {
        assert_eq!(
            started.iter().filter(|s| *s == once).count(),
            1,
            "{started:?}"
        );
    }
    assert!(started.contains(&"verify".to_owned()), "{started:?}");
    assert_eq!(
        p.events_of(&run, "loop_expanded").len(),
        1,
        "not expanded again"
    );
    let report = p.report_json(&run);
    for id in ["sync[eu-1]", "sync[eu-2]", "sync[eu-3]", "verify"] {
        assert_eq!(report_step(&report, id)["status"], "succeeded", "{id}");
    }
    p.run(&["verify", &run]).code(0);
}

#[test]
fn an_empty_list_skips_the_loop_and_its_dependents_go_on() {
    let p = Project::with_runbook("regions", &discovered_then("[]", "", "none"));
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    let report = p.report_json(&run);
    assert_eq!(report_step(&report, "sync")["status"], "skipped");
    // Why, in its own words, not "skipped in this drill".
    let why = report_step(&report, "sync")["why_not_run"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(why.contains("is an empty list"), "{why}");
    assert_eq!(report_step(&report, "verify")["status"], "succeeded");
    assert_eq!(p.log(&run, "verify").trim(), "verified none");
}

/// A loop over an output whose own `when:` is false is skipped before its list is read: the
/// step that would write the list did not (the branch not taken).
#[test]
fn a_loop_over_an_output_its_condition_skips_does_not_read_the_list() {
    let yaml = discovered_then("[]", "", "none")
        .replace(
            "echo 'regions=[]' >> $RUNBOOK_OUTPUT",
            "echo 'failover=no' >> $RUNBOOK_OUTPUT",
        )
        .replace(
            "    max_parallel: 1\n",
            "    max_parallel: 1\n    when: \"steps['discover'].outputs.failover == 'yes'\"\n",
        );
    let p = Project::with_runbook("regions", &yaml);
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    let report = p.report_json(&run);
    let sync = report_step(&report, "sync");
    assert_eq!(sync["status"], "skipped", "{sync}");
    assert_eq!(sync["condition"]["held"], false, "{sync}");
    assert_eq!(report_step(&report, "verify")["status"], "succeeded");
}

/// Its items become step ids, which nothing masks: a list holding a secret fails the loop.
#[test]
fn a_list_holding_a_secret_fails_the_loop() {
    let yaml = discovered_then("eu-1 hunter2", "", "-")
        .replace("steps:\n", "secrets: [REGION_TOKEN]\nsteps:\n");
    let p = Project::with_runbook("regions", &yaml);
    let (code, _, err) = p
        .cmd(&["run", "regions", "--yes"])
        .env("REGION_TOKEN", "hunter2")
        .output()
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                String::new(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("which holds a secret"), "{err}");
    let run = p.run_ids().last().unwrap().clone();
    let journal = p.read(&format!(".runbook/runs/{run}/journal.jsonl"));
    assert!(!journal.contains("hunter2"), "{journal}");
    assert!(p.events_of(&run, "loop_expanded").is_empty());
}

#[test]
fn a_list_with_an_item_twice_fails_the_loop_naming_the_output() {
    let p = Project::with_runbook("regions", &discovered_then("eu-1, eu-1", "", "-"));
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 1, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    let report = p.report_json(&run);
    let sync = report_step(&report, "sync");
    assert_eq!(sync["status"], "failed", "{sync}");
    let finished = p.events_of(&run, "step_finished");
    let ended = finished
        .iter()
        .find(|e| e["data"]["step"] == "sync")
        .unwrap();
    let error = ended["data"]["error"].as_str().unwrap();
    assert!(
        error.contains(
            "steps['discover'].outputs.regions` = `eu-1, eu-1`: item `eu-1` is given twice"
        ),
        "{error}"
    );
    assert!(err.contains("item `eu-1` is given twice"), "{err}");
    // The report carries the reason too.
    assert_eq!(sync["error"].as_str(), Some(error), "{sync}");
}

#[test]
fn a_dry_run_skips_a_loop_over_an_output_and_says_why() {
    let p = Project::with_runbook("regions", &discovered(r#"[\"eu-1\"]"#, ""));
    let (code, _, err) = p.run_scenario(&["--dry-run"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("which a dry-run does not have: the loop is skipped"),
        "{err}"
    );
    // A dependent shows where an instance's output would go.
    assert!(
        err.contains("verify [dry run]: echo verified '<sync[eu-2].lsn>'"),
        "{err}"
    );
}

#[test]
fn the_rto_cannot_end_at_a_loop_over_an_output() {
    let p = Project::new();
    let yaml = discovered("[]", "").replace("rto: 10m\n", "rto: 10m\nrto_ends_at: sync\n");
    p.write("runbooks/regions.yaml", &yaml);
    p.run(&["check", "runbooks/regions.yaml"])
        .code(2)
        .stderr_has("`rto_ends_at` names `sync`, a `for_each:` step")
        .stderr_has("[runbooks/regions.yaml:4:14]");
}
