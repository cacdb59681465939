//! Sub-runbooks (`runbook:` on a step) through the real binary: `check` puts each mistake at
//! its line (a cycle of calls, an unknown runbook, a `with` that is not a var, a role defined
//! twice); a runbook calling another journals the called steps under the call's prefix, in
//! the order their needs say, and the report lists them and the group's budget breach.

use crate::support::{Project, runbook};

const RESTORE: &str = r#"scenario: restore
title: Restore the database
rto: 30m
roles:
  dba: [alice]
vars:
  target: latest
  unused: x
steps:
  - { id: stop-writes, budget: 10s, run: 'echo "stop {{ target }}" >> effects.txt', drill: run }
  - id: restore
    needs: [stop-writes]
    budget: 10s
    run: 'echo "restore {{ target }}" >> effects.txt; echo "rows=42" >> "$RUNBOOK_OUTPUT"'
    drill: run
  - id: verify
    needs: [restore]
    budget: 10s
    run: 'echo "verify {{ steps[''restore''].outputs.rows }}" >> effects.txt; echo "ok=yes" >> "$RUNBOOK_OUTPUT"'
    drill: run
"#;

fn check(files: &[(&str, &str)], path: &str) -> crate::support::Out {
    let mut cmd = runbook(&[]);
    for (name, yaml) in files {
        cmd = cmd.file(&format!("runbooks/{name}.yaml"), yaml);
    }
    cmd.arg("check").arg(format!("runbooks/{path}.yaml")).run()
}

#[test]
fn a_cycle_of_calls_is_an_error_at_the_call() {
    let a = "\
scenario: a
title: Calls b
rto: 1h
steps:
  - { id: call-b, runbook: b }
";
    let b = "\
scenario: b
title: Calls a
rto: 1h
steps:
  - { id: first, budget: 1m, run: \"true\", drill: run }
  - { id: call-a, needs: [first], runbook: a }
";
    check(&[("a", a), ("b", b)], "a")
        .code(2)
        .stderr_has("runbooks call each other in a cycle: a → b → a")
        .stderr_has("[runbooks/a.yaml:5:28]");
    let selfish = "\
scenario: selfish
title: Calls itself
rto: 1h
steps:
  - { id: again, runbook: selfish }
";
    check(&[("selfish", selfish)], "selfish")
        .code(2)
        .stderr_has("runbooks call each other in a cycle: selfish → selfish")
        .stderr_has("[runbooks/selfish.yaml:5:27]");
}

#[test]
fn an_unknown_runbook_is_an_error_at_the_call_with_a_suggestion() {
    let caller = "\
scenario: caller
title: Calls a misspelt runbook
rto: 1h
steps:
  - { id: r, runbook: restor }
";
    check(&[("caller", caller), ("restore", RESTORE)], "caller")
        .code(2)
        .stderr_has("no runbook `restor` to call")
        .stderr_has("[runbooks/caller.yaml:5:23]")
        .stderr_has("did you mean `restore`?");
}

#[test]
fn a_with_that_is_not_a_var_of_the_called_runbook_is_an_error_at_it() {
    let caller = "\
scenario: caller
title: Gives a var the callee lacks
rto: 1h
steps:
  - id: r
    runbook: restore
    with:
      targe: yesterday
";
    check(&[("caller", caller), ("restore", RESTORE)], "caller")
        .code(2)
        .stderr_has("step `r` sets `targe`, which is not a var of runbook `restore`")
        .stderr_has("[runbooks/caller.yaml:8:7]")
        .stderr_has("did you mean `target`?");
}

#[test]
fn a_role_defined_otherwise_by_the_called_runbook_is_an_error_at_the_call() {
    let caller = "\
scenario: caller
title: Has another dba
rto: 1h
roles:
  dba: [bob]
steps:
  - id: r
    runbook: restore
";
    check(&[("caller", caller), ("restore", RESTORE)], "caller")
        .code(2)
        .stderr_has("role `dba` is bob in this runbook but alice in `restore`")
        .stderr_has("[runbooks/caller.yaml:8:14]");
}

const CALLER: &str = r#"scenario: corruption
title: Corruption, restored by the restore runbook
rto: 1h
steps:
  - { id: freeze, budget: 10s, run: 'echo freeze >> effects.txt', drill: run }
  - id: rs
    needs: [freeze]
    runbook: restore
    with:
      target: "before-{{ when_ }}"
  - id: announce
    needs: [rs]
    budget: 10s
    run: 'echo "announce {{ steps[''rs.verify''].outputs.ok }}" >> effects.txt'
    drill: run
vars:
  when_: noon
"#;

#[test]
fn a_called_runbook_runs_inside_the_run_under_the_calls_prefix() {
    let p = Project::with_runbook("corruption", CALLER);
    p.write("runbooks/restore.yaml", RESTORE);
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        p.read("effects.txt"),
        "freeze\nstop before-noon\nrestore before-noon\nverify 42\nannounce yes\n"
    );
    let run = p.run_ids().last().unwrap().clone();
    let started = p.events_of(&run, "run_started");
    let plan = &started[0]["data"]["plan"];
    let ids: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "freeze",
            "rs.stop-writes",
            "rs.restore",
            "rs.verify",
            "announce"
        ]
    );
    assert_eq!(plan["steps"][1]["needs"], serde_json::json!(["freeze"]));
    assert_eq!(plan["steps"][4]["needs"], serde_json::json!(["rs.verify"]));
    assert_eq!(plan["calls"][0]["id"], "rs");
    assert_eq!(plan["calls"][0]["runbook"], "restore");
    assert_eq!(plan["calls"][0]["budget_ms"], 1_800_000);
    let report = p.report_json(&run);
    let reported: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(reported, ids);
    assert_eq!(report["calls"][0]["id"], "rs");
    assert_eq!(report["calls"][0]["breached"], false);
}

#[test]
fn plan_shows_the_called_steps_under_the_call() {
    let p = Project::with_runbook("corruption", CALLER);
    p.write("runbooks/restore.yaml", RESTORE);
    let (code, out, err) = p.run(&["plan", "corruption"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "  rs  30m  runbook restore: Restore the database\n      rs.stop-writes\n      rs.restore\n      rs.verify\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "critical path (*): freeze → rs.stop-writes → rs.restore → rs.verify → announce = 50s"
        ),
        "{out}"
    );
    let (code, out, _) = p.run(&["plan", "corruption", "--format", "json"]).parts();
    assert_eq!(code, 0);
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        plan["calls"][0]["steps"],
        serde_json::json!(["rs.stop-writes", "rs.restore", "rs.verify"])
    );
}

/// The group's budget is watched live, as a step's is: journaled once, said at the terminal,
/// shown by `status`, and the report's breach is that one (not a second, computed one).
#[test]
fn a_group_over_its_budget_is_reported_breached() {
    let slow = RESTORE.replace("run: 'echo \"stop", "run: 'sleep 2; echo \"stop");
    let caller = CALLER.replace(
        "    runbook: restore\n",
        "    runbook: restore\n    budget: 1s\n",
    );
    let p = Project::with_runbook("corruption", &caller);
    p.write("runbooks/restore.yaml", &slow);
    let (code, out, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("rs (runbook restore, its steps) at 80% of its budget")
            && said.contains("rs (runbook restore, its steps) over its budget of 1s"),
        "{said}"
    );
    let run = p.run_ids().last().unwrap().clone();
    let breached = p.events_of(&run, "budget_breached");
    let groups: Vec<_> = breached
        .iter()
        .filter(|b| b["data"]["step"] == "rs")
        .collect();
    assert_eq!(groups.len(), 1, "{breached:?}");
    assert_eq!(groups[0]["data"]["runbook"], "restore");
    assert!(groups[0]["data"]["elapsed_ms"].as_u64().unwrap() > 1000);
    let report = p.report_json(&run);
    assert_eq!(report["calls"][0]["id"], "rs");
    assert_eq!(report["calls"][0]["breached"], true, "{report}");
    assert!(report["calls"][0]["duration_s"].as_f64().unwrap() >= 2.0);
    let rs: Vec<_> = report["breaches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["step"] == "rs")
        .collect();
    assert_eq!(rs.len(), 1, "{report}");
    assert_eq!(rs[0]["budget_s"], 1.0);
    let (code, out, err) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("call rs (runbook restore, 3 steps): ") && out.contains("/ 1s, over budget"),
        "{out}"
    );
    // `status --json` says the same of the group.
    let (code, out, err) = p.run(&["status", &run, "--json"]).parts();
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let call = &doc["calls"][0];
    assert_eq!(call["id"], "rs", "{doc}");
    assert_eq!(call["runbook"], "restore", "{doc}");
    assert_eq!(call["budget_s"], 1.0, "{doc}");
    assert_eq!(call["ended"], true, "{doc}");
    assert_eq!(call["breached"], true, "{doc}");
    assert!(call["duration_s"].as_f64().unwrap() > 1.0, "{doc}");
}

/// Loops and calls landed side by side: a call that is also a loop would have been expanded
/// with the loop's indices and the call's mixed up. It is an error at the `for_each`, and the
/// help names the field.
#[test]
fn a_call_that_is_also_a_loop_is_an_error_at_its_for_each() {
    let caller = "\
scenario: caller
title: Calls in a loop
rto: 1h
steps:
  - { id: each, runbook: callee, for_each: [a, b] }
";
    let callee = "\
scenario: callee
title: Called
rto: 10m
steps:
  - { id: one, budget: 1m, run: \"true\", drill: run }
";
    check(&[("caller", caller), ("callee", callee)], "caller")
        .code(2)
        .stderr_has("step `each` calls a runbook and has `for_each`")
        .stderr_has("give `for_each` to those steps");
}

/// A called runbook's steps are steps of the run: `resume` refuses one that changed since the
/// run started (the caller's own sha256 was all it checked), naming the file; put back as it
/// ran, the run resumes and ends.
#[test]
fn resume_refuses_a_called_runbook_that_changed_and_takes_it_back_restored() {
    let slow = RESTORE.replace(
        "run: 'echo \"restore {{ target }}\" >> effects.txt;",
        "idempotent: true\n    run: 'sleep 3; echo \"restore {{ target }}\" >> effects.txt;",
    );
    let p = Project::with_runbook("corruption", CALLER);
    p.write("runbooks/restore.yaml", &slow);
    let child = p.spawn(&["run", "corruption"]);
    let run = p.wait_for("step_started", "rs.restore");
    child.interrupt_and_stop();
    let started = p.events_of(&run, "run_started");
    let sha = started[0]["data"]["plan"]["calls"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sha.len(), 64);

    p.write(
        "runbooks/restore.yaml",
        &format!("{slow}# edited mid-incident\n"),
    );
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "runbook `restore` (runbooks/restore.yaml), called by step `rs`, has changed since run `{run}` started (sha256 {} then,",
            &sha[..12]
        )),
        "{err}"
    );
    assert!(
        err.contains("restore the called runbook as it ran to resume"),
        "{err}"
    );
    assert_eq!(p.read("effects.txt"), "freeze\nstop before-noon\n");

    p.write("runbooks/restore.yaml", &slow);
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        p.read("effects.txt"),
        "freeze\nstop before-noon\nrestore before-noon\nverify 42\nannounce yes\n"
    );
}

/// `rto_ends_at` may name a called step by its id in this run: the RTO ends when it succeeds,
/// and what follows the call is observation.
#[test]
fn rto_ends_at_names_a_called_step() {
    let caller = format!("{CALLER}rto_ends_at: rs.restore\n");
    let p = Project::with_runbook("corruption", &caller);
    p.write("runbooks/restore.yaml", RESTORE);
    let (code, out, err) = p.run(&["plan", "corruption"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("critical path (*): freeze → rs.stop-writes → rs.restore = 30s (to rs.restore, where service is restored and the RTO ends)")
            && out.contains("observation after rs.restore (not counted against the RTO):\n    rs.verify "),
        "{out}"
    );
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let report = p.last_report_json();
    assert_eq!(report["rto_ends_at"], "rs.restore");
    assert_eq!(
        report["observation_steps"],
        serde_json::json!(["rs.verify", "announce"])
    );
}

#[test]
fn rto_ends_at_naming_a_called_step_that_does_not_exist_is_an_error_at_it() {
    let caller = format!("{CALLER}rto_ends_at: rs.verfy\n");
    check(
        &[("corruption", &caller), ("restore", RESTORE)],
        "corruption",
    )
    .code(2)
    .stderr_has(
        "`rto_ends_at` names `rs.verfy`, which is not a step of runbook `restore` (called by `rs`)",
    )
    .stderr_has("[runbooks/corruption.yaml:18:14]")
    .stderr_has("did you mean `rs.verify`?");
    let gate = RESTORE.replace(
        "  - id: verify\n",
        "  - { id: ok, needs: [restore], budget: 1m, approval: { prompt: Ok?, approvers: [dba] } }\n  - id: verify\n",
    );
    let caller = format!("{CALLER}rto_ends_at: rs.ok\n");
    check(&[("corruption", &caller), ("restore", &gate)], "corruption")
        .code(2)
        .stderr_has("`rto_ends_at` names `rs.ok`, an approval gate")
        .stderr_has("[runbooks/corruption.yaml:18:14]");
    // The call itself is still refused, and told what it may name.
    let caller = format!("{CALLER}rto_ends_at: rs\n");
    check(
        &[("corruption", &caller), ("restore", RESTORE)],
        "corruption",
    )
    .code(2)
    .stderr_has("`rto_ends_at` names `rs`, a call of a runbook")
    .stderr_has("(`rs.<step>`)");
}

/// An auditor's bundle holds the runbooks the run called, as they ran, each checked against
/// the sha256 `run_started` journaled; a copy that is not the one that ran fails the export.
#[test]
fn export_bundles_the_called_runbooks_and_checks_each() {
    let p = Project::with_runbook("corruption", CALLER);
    p.write("runbooks/restore.yaml", RESTORE);
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    let kept = p
        .path()
        .join(".runbook/runs")
        .join(&run)
        .join("calls/restore.yaml");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), RESTORE);
    // The project's file changes after the run: the bundle keeps the one that ran.
    p.write(
        "runbooks/restore.yaml",
        &RESTORE.replace("rows=42", "rows=43"),
    );
    let (code, _, err) = p.run(&["export", &run, "-o", "evidence.tar.gz"]).parts();
    assert_eq!(code, 0, "{err}");
    let x = p.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let st = std::process::Command::new("tar")
        .args(["-xzf", "../evidence.tar.gz"])
        .current_dir(&x)
        .status()
        .unwrap();
    assert!(st.success());
    let b = x.join(&run);
    assert_eq!(
        std::fs::read_to_string(b.join("calls/restore.yaml")).unwrap(),
        RESTORE
    );
    let verify = std::fs::read_to_string(b.join("verify.txt")).unwrap();
    assert!(
        verify.contains("run_started plan.calls rs sha256 ")
            && verify.contains("called runbook matches the run"),
        "{verify}"
    );
    // A copy that is not the one that ran: the bundle is written, and fails its own check.
    std::fs::write(&kept, RESTORE.replace("rows=42", "rows=44")).unwrap();
    let (code, _, err) = p.run(&["export", &run, "-o", "tampered.tar.gz"]).parts();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("a runbook in the bundle's calls/ is not the one the run called"),
        "{err}"
    );
    assert!(p.path().join("tampered.tar.gz").is_file());
}

/// A group whose every step a `when:` skipped never started: the report gives it no start
/// and no duration (the machine's watch never started its clock), not a zero-length run.
#[test]
fn a_group_its_conditions_skipped_whole_never_started() {
    let skipped = "\
scenario: restore
title: Restore, only when asked
rto: 30m
vars:
  wanted: \"no\"
steps:
  - { id: restore, budget: 10s, when: \"wanted == 'yes'\", run: 'echo restore >> effects.txt', drill: run }
  - { id: verify, needs: [restore], budget: 10s, when: \"wanted == 'yes'\", run: 'echo verify >> effects.txt', drill: run }
";
    let p = Project::with_runbook("corruption", CALLER);
    p.write("runbooks/restore.yaml", skipped);
    p.write(
        "runbooks/corruption.yaml",
        &CALLER
            .replace("target: \"before-{{ when_ }}\"", "wanted: \"no\"")
            .replace("{{ steps[''rs.verify''].outputs.ok }}", "done"),
    );
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "freeze\nannounce done\n");
    let run = p.run_ids().last().unwrap().clone();
    let report = p.report_json(&run);
    let call = &report["calls"][0];
    assert_eq!(call["id"], "rs", "{report}");
    assert_eq!(call["started_s"], serde_json::Value::Null, "{call}");
    assert_eq!(call["duration_s"], serde_json::Value::Null, "{call}");
    assert_eq!(call["breached"], false, "{call}");
}
