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
