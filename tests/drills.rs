//! Issue 13's drill verdicts, through the real binary: what counts as a scenario's last
//! drill, what a drill projects for a real run, how mocked and skipped steps are reported,
//! how a poll that is not ready yet reads, and that a dry-run's gates are nobody late.

mod support;

use serde_json::Value;
use support::Project;

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
