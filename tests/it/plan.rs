//! `runbook plan` on the shipped runbooks, through the real binary run from the repository
//! root: the text and JSON forms are snapshots, and every form names every step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::support::{Out, repo_root, runbook};
use serde_json::Value;

fn plan(args: &[&str]) -> Out {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    runbook(&all).current_dir(repo_root()).run()
}

/// The shipped scenarios: `runbooks/*.yaml`.
fn shipped() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("runbooks"))
        .expect("runbooks/ is there")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn json_of(scenario: &str) -> Value {
    let out = plan(&[scenario, "--format", "json"]);
    out.code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`plan {scenario} --format json` is JSON: {e}\n{}",
            out.stdout
        )
    })
}

#[test]
fn plan_text_of_region_failure() {
    let out = plan(&["region-failure"]);
    out.code(0);
    assert_eq!(out.stderr, "", "a shipped runbook plans without a warning");
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn plan_json_of_region_failure() {
    let out = plan(&["region-failure", "--format", "json"]);
    out.code(0);
    assert_eq!(out.stderr, "");
    insta::assert_snapshot!(out.stdout);

    let plan: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(plan["scenario"], "region-failure");
    assert!(plan["rto_s"].as_f64().is_some_and(|s| s > 0.0), "{plan}");
    assert!(plan["critical_path_s"].as_f64().is_some(), "{plan}");
    assert!(
        plan["critical_path"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    assert!(plan["steps"].as_array().is_some_and(|s| !s.is_empty()));
}

/// What every plan's JSON promises: steps in a topological order, a critical path that is a
/// chain of `needs` whose budgets add up to `critical_path_s`, and the RTO verdict.
#[test]
fn plan_json_is_consistent_for_every_shipped_runbook() {
    let names = shipped();
    assert!(!names.is_empty(), "no runbooks under runbooks/");
    for name in names {
        let plan = json_of(&name);
        assert_eq!(plan["scenario"], name.as_str());
        let steps = plan["steps"].as_array().expect("steps");
        let mut seen = BTreeSet::new();
        let mut budget = BTreeMap::new();
        let mut needs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in steps {
            let id = s["id"].as_str().expect("id").to_owned();
            let ns: Vec<String> = s["needs"]
                .as_array()
                .expect("needs")
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect();
            for n in &ns {
                assert!(
                    seen.contains(n),
                    "{name}: `{id}` is listed before `{n}` it needs"
                );
            }
            assert!(seen.insert(id.clone()), "{name}: `{id}` twice");
            budget.insert(id.clone(), s["budget_s"].as_f64().expect("budget_s"));
            needs.insert(id, ns);
        }
        let path: Vec<String> = plan["critical_path"]
            .as_array()
            .expect("critical_path")
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert!(!path.is_empty(), "{name}: empty critical path");
        assert!(
            needs[&path[0]].is_empty(),
            "{name}: the path starts at a root"
        );
        for pair in path.windows(2) {
            assert!(
                needs[&pair[1]].contains(&pair[0]),
                "{name}: `{}` does not need `{}`",
                pair[1],
                pair[0]
            );
        }
        let total: f64 = path.iter().map(|id| budget[id]).sum();
        let cp = plan["critical_path_s"].as_f64().expect("critical_path_s");
        assert!((total - cp).abs() < 1e-6, "{name}: {total} != {cp}");
        let rto = plan["rto_s"].as_f64().expect("rto_s");
        assert_eq!(plan["fits_rto"], cp <= rto, "{name}");
        for s in steps {
            assert_eq!(
                s["critical"],
                path.contains(&s["id"].as_str().unwrap().to_owned()),
                "{name}: {s}"
            );
        }
    }
}

#[test]
fn dot_and_mermaid_name_every_step_of_every_shipped_runbook() {
    for name in shipped() {
        let ids: Vec<String> = json_of(&name)["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        let dot = plan(&[&name, "--format", "dot"]);
        dot.code(0);
        assert!(dot.stdout.starts_with("digraph "), "{}", dot.stdout);
        assert!(dot.stdout.trim_end().ends_with('}'), "{}", dot.stdout);
        let mermaid = plan(&[&name, "--format", "mermaid"]);
        mermaid.code(0);
        assert!(mermaid.stdout.starts_with("flowchart TD\n"));
        for id in &ids {
            assert!(
                dot.stdout.contains(&format!("\"{id}\"")),
                "{name}: dot lacks `{id}`\n{}",
                dot.stdout
            );
            assert!(
                mermaid.stdout.contains(&format!("[\"{id}<br/>"))
                    || mermaid.stdout.contains(&format!("{{\"{id}<br/>")),
                "{name}: mermaid lacks `{id}`\n{}",
                mermaid.stdout
            );
        }
    }
}

#[test]
fn a_scenario_name_and_its_path_plan_the_same() {
    let by_name = plan(&["region-failure", "--format", "json"]);
    let path: PathBuf = ["runbooks", "region-failure.yaml"].iter().collect();
    let by_path = plan(&[path.to_str().unwrap(), "--format", "json"]);
    by_name.code(0);
    by_path.code(0);
    assert_eq!(by_name.stdout, by_path.stdout);
}

#[test]
fn an_unknown_scenario_suggests_the_closest() {
    let out = plan(&["region-failur"]);
    out.code(2)
        .stderr_has("no scenario `region-failur` (looked for runbooks/region-failur.yaml)")
        .stderr_has("did you mean `region-failure`?");
    assert_eq!(out.stdout, "");
}

#[test]
fn an_invalid_runbook_has_no_plan() {
    let out = runbook(&["plan", "broken"])
        .file(
            "runbooks/broken.yaml",
            "scenario: broken\ntitle: Broken\nrto: 1h\nsteps:\n  - id: a\n    needs: [b]\n    budget: 1m\n    run: \"true\"\n    drill: run\n",
        )
        .run();
    out.code(2)
        .stderr_has("step `a` needs `b`, which does not exist")
        .stderr_has("[runbooks/broken.yaml:6:13]");
    assert_eq!(out.stdout, "", "no plan is printed for an invalid runbook");
}
