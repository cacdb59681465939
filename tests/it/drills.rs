//! Issue 13's drill verdicts, through the real binary: what counts as a scenario's last
//! drill, what a drill projects for a real run, how mocked and skipped steps are reported,
//! how a poll that is not ready yet reads, and that a dry-run's gates are nobody late.

use crate::support::{Project, report_step as step};
use serde_json::Value;

/// A drill that fails while the file `broken` exists.
const FLAKY: &str = r#"scenario: flaky
title: A drill that fails on demand
rto: 1h
steps:
  - { id: check, budget: 10s, run: "test ! -e broken", drill: run }
"#;

fn list_line(p: &Project, scenario: &str) -> (String, String) {
    let (code, out, err) = p.run(&["list"]).parts();
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{scenario} ")))
        .unwrap_or_else(|| panic!("no {scenario} in {out}"))
        .to_owned();
    (line, err)
}

/// Issue 13: a failed drill counted as the scenario's last drill, and `list` stopped saying
/// it was overdue.
#[test]
fn a_failed_drill_is_not_the_last_drill_and_leaves_the_scenario_overdue() {
    let p = Project::with_runbook("flaky", FLAKY);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    p.write("broken", "");
    assert_eq!(p.run(&["run", "flaky", "--drill"]).parts().0, 1);
    let (line, err) = list_line(&p, "flaky");
    assert!(line.contains("never (OVERDUE)"), "{line}");
    assert!(line.contains(&format!("{today} failed")), "{line}");
    assert!(err.contains("flaky"), "{err}");

    std::fs::remove_file(p.path().join("broken")).unwrap();
    assert_eq!(p.run(&["run", "flaky", "--drill"]).parts().0, 0);
    let (line, err) = list_line(&p, "flaky");
    assert!(!line.contains("OVERDUE"), "{line}");
    assert!(line.contains(&format!("{today} succeeded")), "{line}");
    assert!(!err.contains("flaky"), "{err}");

    // A later failure shows as the last attempt; the schedule still counts from the success.
    p.write("broken", "");
    assert_eq!(p.run(&["run", "flaky", "--drill"]).parts().0, 1);
    let (line, err) = list_line(&p, "flaky");
    assert!(line.contains(&format!("{today}  {today} failed")), "{line}");
    assert!(
        !line.contains("OVERDUE") && !err.contains("flaky"),
        "{line}\n{err}"
    );
}

/// Issue 13: every not-yet-ready attempt of a poll printed as a red "✗ failed".
#[test]
fn a_poll_attempt_that_is_not_ready_reads_as_not_ready_not_as_a_failure() {
    let p = Project::with_runbook(
        "propagate",
        r#"scenario: propagate
title: Waits for a check to pass
rto: 1h
steps:
  - id: wait
    budget: 1m
    run: 'n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; test "$n" -ge 2'
    drill: run
    poll: { every: 1s, within: 30s }
"#,
    );
    let (code, _, err) = p.run(&["run", "propagate", "--drill"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("wait not ready (attempt 1), next in 1s"),
        "{err}"
    );
    assert!(
        err.contains("wait not ready (attempt 2), next in 1s"),
        "{err}"
    );
    assert!(!err.contains("failed"), "{err}");
    let run = p.run_ids().pop().unwrap();
    let statuses: Vec<Value> = p
        .events_of(&run, "step_finished")
        .iter()
        .map(|e| e["data"]["status"].clone())
        .collect();
    assert_eq!(statuses, ["not_ready", "not_ready", "succeeded"]);
    let report = p.report_json(&run);
    assert_eq!(report["steps"][0]["status"], "succeeded");
    assert_eq!(report["steps"][0]["attempts"], 3);
}

/// Issue 13: in every dry-run each gate warned it was at 80% of its budget.
#[test]
fn a_dry_runs_gates_give_no_budget_warnings() {
    let p = Project::with_runbook(
        "gated",
        r#"scenario: gated
title: One gate
rto: 1h
roles: { lead: [alice] }
steps:
  - { id: prepare, budget: 1m, estimate: 10s..20s..30s, run: "true", drill: run }
  - { id: go, needs: [prepare], budget: 10m, approval: { prompt: "go?", approvers: [lead] } }
"#,
    );
    let (code, _, err) = p.run(&["run", "gated", "--dry-run"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("budget"), "{err}");
    let run = p.run_ids().pop().unwrap();
    assert!(p.events_of(&run, "budget_warning").is_empty());
    assert!(p.events_of(&run, "budget_breached").is_empty());
    assert_eq!(p.report_json(&run)["elapsed_s"], 620.0);
}

/// A drill at drill speed: a real check that takes a second, a skipped change, a mocked slow
/// step, a gate `--yes` grants at once and a drill variant of the restore.
const REHEARSAL: &str = r#"scenario: rehearsal
title: Drill-speed steps of every kind
rto: 1h
roles: { lead: [alice] }
steps:
  - { id: check, budget: 10s, run: "sleep 1", drill: run }
  - { id: change, needs: [check], budget: 20m, estimate: 10m..15m..20m, run: "echo changed >> prod", drill: skip }
  - { id: copy, needs: [check], budget: 30m, estimate: 10m..20m..30m, run: "echo copied >> prod", drill: mock }
  - { id: go, needs: [change, copy], budget: 10m, approval: { prompt: "go?", approvers: [lead] } }
  - { id: restore, needs: [go], budget: 20m, estimate: 5m..10m..20m, run: "echo restored >> prod", drill: { run: "true" } }
"#;

/// Issue 13: a drill projected its drill-speed steps at drill speed (datacenter-failure's
/// drill projected 2m against a plan of 1h06m).
#[test]
fn a_drill_projects_a_real_run_with_drill_speed_steps_at_real_speed() {
    let p = Project::with_runbook("rehearsal", REHEARSAL);
    let (code, _, err) = p.run(&["run", "rehearsal", "--drill", "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        !p.path().join("prod").exists(),
        "a drill changed production"
    );
    // Said at the end of the drill too, not only in its reports.
    assert!(
        err.lines().any(|l| l.starts_with("drill: the drill took ")
            && l.contains("; a real run projects 40m")
            && l.contains(" from --simulate) against an RTO of ")),
        "{err}"
    );
    let run = p.run_ids().pop().unwrap();
    let report = p.report_json(&run);
    let took = report["elapsed_s"].as_f64().unwrap();
    assert!((1.0..60.0).contains(&took), "{took}");
    // check as measured (about 1s) + copy's 20m (mocked) + go's 10m budget (granted by
    // --yes) + restore's 10m estimate (its drill variant ran instead).
    let projected = report["projected_rto_s"].as_f64().unwrap();
    assert!((2401.0..2460.0).contains(&projected), "{projected}");
    let p90 = report["projected_rto_p90_s"].as_f64().unwrap();
    assert!((2400.0..3700.0).contains(&p90), "{p90}");
    let (_, md, _) = p.run(&["report", &run, "--format", "md"]).parts();
    let line = md
        .lines()
        .find(|l| l.starts_with("| Projected RTO |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(line.contains("the drill took "), "{line}");
    assert!(line.contains("; a real run projects 40m"), "{line}");
    assert!(line.contains("(P90 "), "{line}");
    assert!(line.contains(" from --simulate)"), "{line}");
}

/// Issue 13: mocked and skipped steps showed a start of +0s whatever their place, no
/// duration for a skipped step, and `duration_s: null` in JSON.
#[test]
fn mocked_and_skipped_steps_show_their_simulated_start_and_duration() {
    let p = Project::with_runbook("rehearsal", REHEARSAL);
    let (code, _, err) = p.run(&["run", "rehearsal", "--drill", "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    let run = p.run_ids().pop().unwrap();
    let report = p.report_json(&run);
    for (id, status, estimate) in [("change", "skipped", 900.0), ("copy", "simulated", 1200.0)] {
        let s = step(&report, id);
        assert_eq!(s["status"], status, "{s}");
        assert_eq!(s["duration_s"], estimate, "{s}");
        assert_eq!(s["estimated"], true, "{s}");
        // They start when the drill reached them: when `check` ended.
        assert_eq!(
            s["started_at"],
            step(&report, "check")["finished_at"],
            "{s}"
        );
    }
    let (_, md, _) = p.run(&["report", &run, "--format", "md"]).parts();
    for (id, cells) in [
        ("change", "| skipped in this drill | +1."),
        ("copy", "| simulated | +1."),
    ] {
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {id} ")))
            .unwrap_or_else(|| panic!("{md}"));
        assert!(line.contains(cells), "{line}");
    }
    assert!(md.contains("| ~15m | 20m |"), "{md}");
    assert!(md.contains("| ~20m | 30m |"), "{md}");
}

/// Review of issue 13: a drill whose mocked step would take a real run past its RTO said "RTO
/// met" (judged on its drill-speed clock), exited 0 under --strict-rto, and its JUnit RTO case
/// passed. A drill is judged on what a real run projects.
#[test]
fn a_drill_that_a_real_run_would_take_past_its_rto_misses_it() {
    let p = Project::with_runbook(
        "dover",
        "scenario: dover\ntitle: t\nrto: 1h\nsteps:\n  - id: restore\n    budget: 2h\n    run: \"true\"\n    drill: mock\n  - id: v\n    needs: [restore]\n    budget: 1m\n    run: \"true\"\n    drill: run\n",
    );
    let (code, _, err) = p.run(&["run", "dover", "--drill", "--strict-rto"]).parts();
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("RTO MISSED (target 1h; a real run projects 2h)"),
        "{err}"
    );
    let run = p.run_ids().pop().unwrap();
    let report = p.report_json(&run);
    assert_eq!(report["rto_met"], false);
    assert!(
        report["rto_verdict"]
            .as_str()
            .unwrap()
            .starts_with("RTO MISSED: a real run projects 2h against a 1h target"),
        "{report}"
    );
    let (_, junit, _) = p.run(&["report", &run, "--format", "junit"]).parts();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let rto = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some("RTO"))
        .expect("an RTO test case");
    assert!(rto.children().any(|c| c.has_tag_name("failure")), "{junit}");
    let (_, history, _) = p.run(&["history"]).parts();
    assert!(
        history.contains("| RTO met | 0% of 1 recovery"),
        "{history}"
    );
}
