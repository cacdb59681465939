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
