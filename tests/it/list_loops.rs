//! Loops over lists that are not written in the step: a `title:` with `{{ item }}` rendered per
//! instance, list variables (`vars: {regions: [a, b]}`, `--var regions=x,y,z`, the environment
//! file) looped over with `for_each: "{{ regions }}"`, through the real binary.

use crate::support::{Project, report_step};

const TITLED: &str = r#"scenario: titled
title: Titles per item
rto: 10m
steps:
  - id: sync
    title: "Sync region {{ item }}"
    for_each: [a, b]
    budget: 1m
    run: "echo {{ item }}"
    drill: run
"#;

#[test]
fn a_title_with_item_is_rendered_per_instance_in_plan_journal_and_report() {
    let p = Project::with_runbook("titled", TITLED);
    let (code, out, err) = p.run(&["plan", "titled"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Sync region a"), "{out}");
    assert!(out.contains("Sync region b"), "{out}");
    assert!(!out.contains("{{"), "{out}");
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    let started = &p.events_of(&run, "run_started")[0];
    let titles: Vec<&str> = started["data"]["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Sync region a", "Sync region b"]);
    let report = p.report_json(&run);
    assert_eq!(report_step(&report, "sync[b]")["title"], "Sync region b");
}

const BAD_LISTS: &str = r#"scenario: bad
title: Loops over variables, written wrong
rto: 1h
vars:
  regions: [eu-1, eu-2]
  database: omni
  nothing: []
  spaced: [a, "b c"]
  commas: [a, "b,c"]
steps:
  - id: unknown
    for_each: "{{ regoins }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: scalar
    for_each: "{{ database }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: empty
    for_each: "{{ nothing }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: unfit
    for_each: "{{ spaced }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: other
    for_each: "{{ regions | reverse }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
"#;

#[test]
fn check_puts_each_mistake_of_a_loop_over_a_variable_at_its_line() {
    let p = Project::new();
    p.write("runbooks/bad.yaml", BAD_LISTS);
    let out = p.run(&["check", "runbooks/bad.yaml"]);
    out.code(2)
        .stderr_has("`for_each` of step `unknown` names `regoins`, which is no variable")
        .stderr_has("[runbooks/bad.yaml:12:15]")
        .stderr_has("did you mean `regions`?")
        .stderr_has("`for_each` of step `scalar` names `database`, which is not a list variable")
        .stderr_has("[runbooks/bad.yaml:17:15]")
        .stderr_has("list variable `nothing` is empty, and step `empty` loops over it")
        .stderr_has("[runbooks/bad.yaml:7:12]")
        .stderr_has(
            "item `b c` of `spaced` cannot be part of a step id, and step `unfit` loops over it",
        )
        .stderr_has("[runbooks/bad.yaml:8:15]")
        .stderr_has(
            "`for_each` of step `other` is `{{ regions | reverse }}`, which names no list variable",
        )
        .stderr_has("[runbooks/bad.yaml:32:15]")
        .stderr_has("item `b,c` of list variable `commas` is empty or holds a `,`")
        .stderr_has("[runbooks/bad.yaml:9:15]")
        .stderr_has("checked 1 runbook: 6 errors, 0 warnings");
}

/// Each instance echoes its item and the whole list (a list variable is a list in templates),
/// and writes its item to `effects.txt`; `sleep` keeps each one running for a while.
fn regions(sleep: &str) -> String {
    format!(
        r#"scenario: regions
title: Every region
rto: 10m
vars:
  regions: [a, b]
steps:
  - id: sync
    for_each: "{{{{ regions }}}}"
    max_parallel: 1
    idempotent: true
    budget: 1m
    run: 'echo syncing {{{{ item }}}} of {{{{ regions | join(" ") }}}}; {sleep} echo "{{{{ item }}}}" >> effects.txt'
    drill: run
  - id: verify
    needs: [sync]
    budget: 1m
    run: "echo verified"
    drill: run
"#
    )
}

fn instances(p: &Project, run: &str) -> Vec<String> {
    let started = &p.events_of(run, "run_started")[0];
    started["data"]["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_loop_over_a_list_variable_runs_its_defaults_or_the_items_var_gives() {
    let p = Project::with_runbook("regions", &regions(""));
    let (code, out, err) = p.run(&["plan", "regions"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sync: one per item of regions"), "{out}");
    assert!(out.contains("sync[a]") && out.contains("sync[b]"), "{out}");

    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    assert_eq!(instances(&p, &run), ["sync[a]", "sync[b]", "verify"]);
    assert_eq!(p.log(&run, "sync[a]").trim(), "syncing a of a b");

    let (code, _, err) = p.run_scenario(&["--var", "regions=x,y,z"]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    assert_eq!(
        instances(&p, &run),
        ["sync[x]", "sync[y]", "sync[z]", "verify"]
    );
    assert_eq!(
        p.events_of(&run, "run_started")[0]["data"]["vars"]["regions"],
        "x,y,z"
    );
    for item in ["x", "y", "z"] {
        let id = format!("sync[{item}]");
        assert_eq!(p.log(&run, &id).trim(), format!("syncing {item} of x y z"));
        assert_eq!(
            report_step(&p.report_json(&run), &id)["status"],
            "succeeded"
        );
    }
    assert_eq!(p.read("effects.txt"), "a\nb\nx\ny\nz\n");
}

#[test]
fn the_environment_file_sets_a_list_variable_as_a_yaml_list() {
    let p = Project::with_runbook("regions", &regions(""));
    p.write("runbooks/env/site.yaml", "vars:\n  regions: [p, q]\n");
    let (code, _, err) = p.run_scenario(&["--env", "site"]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    assert_eq!(instances(&p, &run), ["sync[p]", "sync[q]", "verify"]);
}

#[test]
fn a_var_item_unfit_for_an_id_is_refused_before_the_run() {
    let p = Project::with_runbook("regions", &regions(""));
    let out = p.run_scenario(&["--var", "regions=x,y y"]);
    out.code(2)
        .stderr_has("`regions` = `x,y y`: item `y y` cannot be part of a step id")
        .stderr_has("its items name the instances of `sync`");
    let out = p.run_scenario(&["--var", "regions=x,x"]);
    out.code(2).stderr_has("item `x` is given twice");
    assert!(p.run_ids().is_empty(), "nothing ran");
}

#[test]
fn a_loop_over_var_items_killed_mid_loop_resumes_the_same_instances() {
    let p = Project::with_runbook("regions", &regions("sleep 1;"));
    let mut child = p.spawn(&["run", "regions", "--var", "regions=x,y,z"]);
    let run = p.wait_for("step_started", "sync[y]");
    child.kill().unwrap(); // SIGKILL: the engine is gone mid-loop
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    // The run's items, from the journal, not the defaults; `sync[x]` is not run again.
    assert_eq!(p.read("effects.txt"), "x\ny\nz\n");
    let started: Vec<String> = p
        .events_of(&run, "step_started")
        .iter()
        .map(|e| e["data"]["step"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(started.iter().filter(|s| *s == "sync[x]").count(), 1);
    assert!(started.contains(&"sync[z]".to_owned()), "{started:?}");
    assert!(!started.iter().any(|s| s == "sync[a]"), "{started:?}");
}

#[test]
fn a_dry_run_and_a_drill_expand_the_loop_with_the_var_items() {
    let p = Project::with_runbook("regions", &regions(""));
    let (code, _, err) = p
        .run_scenario(&["--dry-run", "--var", "regions=x,y"])
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("sync[y] [dry run]: echo syncing y of 'x y'"),
        "{err}"
    );
    let (code, _, err) = p.run_scenario(&["--drill", "--var", "regions=x,y"]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().last().unwrap().clone();
    assert_eq!(instances(&p, &run), ["sync[x]", "sync[y]", "verify"]);
    let (code, out, err) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sync[y]  succeeded"), "{out}");
}

#[test]
fn a_list_a_loop_goes_over_may_not_hold_a_secret() {
    let secret = Project::with_runbook(
        "regions",
        &regions("").replace("rto: 10m\n", "rto: 10m\nsecrets: [REGION_TOKEN]\n"),
    );
    let mut cmd = secret.cmd(&["run", "regions", "--var", "regions=x,tok3n"]);
    cmd.env("REGION_TOKEN", "tok3n");
    let out = secret.run_with(cmd);
    out.code(2)
        .stderr_has("`regions` holds a secret, and its items would name the instances of `sync`");
    assert!(!out.stderr.contains("tok3n"), "{}", out.stderr);
    assert!(secret.run_ids().is_empty(), "nothing ran");
}

/// A called runbook with a list variable: its templates see a list, and a `with:` that sets it
/// as written gives a loop over it its items (as `--var` does for a run); a template there,
/// known only at run time, is an error at the `with` value. Before, the loop silently ran
/// the called runbook's defaults and `{{ regions }}` was the text `x,y`.
#[test]
fn a_with_sets_a_called_runbooks_list_variable_and_its_loop() {
    let callee = r#"scenario: callee
title: Sync each region
rto: 10m
vars:
  regions: [a, b]
steps:
  - id: sync
    for_each: "{{ regions }}"
    budget: 10s
    run: "echo {{ item }} {{ regions | join('+') }} >> out.txt"
    drill: run
"#;
    let caller = |with: &str| {
        format!(
            "scenario: caller\ntitle: Calls it\nrto: 10m\nsteps:\n  - id: c\n    runbook: callee\n    with:\n      regions: {with}\n"
        )
    };
    let p = Project::with_runbook("caller", &caller("\"x,y\""));
    p.write("runbooks/callee.yaml", callee);
    let (code, _, err) = p.run_scenario(&[]).parts();
    assert_eq!(code, 0, "{err}");
    let mut lines: Vec<String> = p.read("out.txt").lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines, ["x x+y", "y x+y"]);
    let run = p.run_ids().last().unwrap().clone();
    let report = p.report_json(&run);
    assert_eq!(report_step(&report, "c.sync[x]")["status"], "succeeded");

    p.write("runbooks/caller.yaml", &caller("\"{{ 'x,y' }}\""));
    let (code, _, err) = p.run(&["check", "runbooks/caller.yaml"]).parts();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "step `c` sets list variable `regions` from `{{ 'x,y' }}`, which names no list"
        ) && err.contains("[runbooks/caller.yaml:8:16]"),
        "{err}"
    );
}
