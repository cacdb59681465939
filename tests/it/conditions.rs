//! `when:` through the binary: `check` points at a bad condition or likelihood; a run takes one
//! branch of a decision on an output and skips the other, and the journal, the terminal and
//! `report --format json` say which, with the expression and the values it saw.

use serde_json::Value;

use crate::support::{Project, report_step};

/// The DR decision: the replica's lag against the RPO. `LAG` is what check-lag measures.
const FAILOVER: &str = r#"
scenario: failover
title: Promote the replica, or restore
rto: 1h
vars: { rpo_s: "3600" }
steps:
  - id: check-lag
    budget: 1m
    run: echo "lag_s=LAG" >> "$RUNBOOK_OUTPUT"
    drill: run
  - id: promote
    needs: [check-lag]
    budget: 5m
    when: "steps['check-lag'].outputs.lag_s | int <= rpo_s | int"
    run: echo promoted
    drill: run
  - id: restore
    needs: [check-lag]
    budget: 30m
    when: "steps['check-lag'].outputs.lag_s | int > rpo_s | int"
    likelihood: 0.1
    run: echo restored
    drill: run
  - id: verify
    needs: [promote, restore]
    budget: 1m
    run: echo verified
    drill: run
"#;

fn finished(p: &Project, run: &str, step: &str) -> Value {
    p.events_of(run, "step_finished")
        .into_iter()
        .rfind(|e| e["data"]["step"] == step)
        .unwrap_or_else(|| panic!("no step_finished for {step}"))["data"]
        .clone()
}

#[test]
fn a_run_takes_the_branch_its_condition_allows_and_says_why_it_skipped_the_other() {
    for (lag, ran, skipped, op) in [
        ("120", "promote", "restore", ">"),
        ("7200", "restore", "promote", "<="),
    ] {
        let p = Project::with_runbook("failover", &FAILOVER.replace("LAG", lag));
        let out = p.run_scenario(&["--run-id", "r"]);
        out.code(0).stderr_has(&format!(
            "{skipped} skipped: `steps['check-lag'].outputs.lag_s | int {op} rpo_s | int` was false (rpo_s=3600, steps['check-lag'].outputs.lag_s={lag})"
        ));

        let skip = finished(&p, "r", skipped);
        assert_eq!(skip["status"], "skipped");
        assert_eq!(
            skip["condition"]["expr"],
            format!("steps['check-lag'].outputs.lag_s | int {op} rpo_s | int")
        );
        assert_eq!(skip["condition"]["held"], false);
        assert_eq!(
            skip["condition"]["values"]["steps['check-lag'].outputs.lag_s"],
            lag
        );
        assert_eq!(skip["condition"]["values"]["rpo_s"], "3600");
        let run = finished(&p, "r", ran);
        assert_eq!(run["status"], "succeeded");
        assert_eq!(run["condition"]["held"], true);
        // A skipped need satisfies `needs`.
        assert_eq!(finished(&p, "r", "verify")["status"], "succeeded");

        let status = p.run(&["status", "r"]);
        status.code(0);
        assert!(
            status.stdout.lines().any(|l| l.starts_with(skipped)
                && l.contains("skipped")
                && l.contains(&format!("steps['check-lag'].outputs.lag_s={lag})"))),
            "{}",
            status.stdout
        );

        let report = p.report_json("r");
        assert_eq!(report["status"], "succeeded");
        let s = report_step(&report, skipped);
        assert_eq!(s["status"], "skipped");
        assert_eq!(s["estimated"], false, "a skipped branch stands for no work");
        assert_eq!(s["condition"]["held"], false);
        assert_eq!(
            s["condition"]["values"]["steps['check-lag'].outputs.lag_s"],
            lag
        );
        let r = report_step(&report, ran);
        assert_eq!(r["status"], "succeeded");
        assert_eq!(r["condition"]["held"], true);
    }
}

#[test]
fn a_dry_run_takes_a_step_whose_condition_reads_outputs_as_running_and_says_so() {
    let p = Project::with_runbook("failover", &FAILOVER.replace("LAG", "1"));
    let out = p.run_scenario(&["--dry-run"]);
    out.code(0).stderr_has(
        "(its condition `steps['check-lag'].outputs.lag_s | int <= rpo_s | int` reads outputs a dry-run does not have: taken as running)",
    );
}

#[test]
fn check_points_at_an_unknown_name_in_a_condition() {
    let yaml = FAILOVER
        .replace("LAG", "1")
        .replace("<= rpo_s | int", "<= rpo_sec | int");
    let p = Project::with_runbook("failover", &yaml);
    p.run(&["check", "runbooks/failover.yaml"])
        .code(2)
        .stderr_has("condition: undefined variable `rpo_sec`")
        .stderr_has("[runbooks/failover.yaml:14:54]")
        .stderr_has("did you mean `rpo_s`?");
}

#[test]
fn check_points_at_a_condition_on_a_step_not_upstream() {
    let yaml = FAILOVER
        .replace("LAG", "1")
        .replace("when: \"steps['check-lag']", "when: \"steps['verify']");
    let p = Project::with_runbook("failover", &yaml);
    p.run(&["check", "runbooks/failover.yaml"])
        .code(2)
        .stderr_has(
            "condition: step `promote` uses an output of `verify`, which is not upstream of it",
        )
        .stderr_has("[runbooks/failover.yaml:14:19]");
}

#[test]
fn check_refuses_a_likelihood_that_is_no_probability_or_has_no_condition() {
    let yaml = FAILOVER
        .replace("LAG", "1")
        .replace("likelihood: 0.1", "likelihood: 1.5")
        .replace(
            "    run: echo verified",
            "    likelihood: 0.5\n    run: echo verified",
        );
    let p = Project::with_runbook("failover", &yaml);
    p.run(&["check", "runbooks/failover.yaml"])
        .code(2)
        .stderr_has("`likelihood` of step `restore` is 1.5, not a probability")
        .stderr_has("[runbooks/failover.yaml:21:17]")
        .stderr_has("step `verify` has a `likelihood` but no `when`")
        .stderr_has("[runbooks/failover.yaml:27:17]");
}

#[test]
fn plan_marks_conditional_steps_and_counts_them_as_running_unless_given_a_likelihood() {
    let p = Project::with_runbook("failover", &FAILOVER.replace("LAG", "1"));
    let out = p.run(&["plan", "failover"]);
    out.code(0);
    assert!(
        out.stdout.contains(
            "[run; when steps['check-lag'].outputs.lag_s | int <= rpo_s | int, counted as running]"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "[run; when steps['check-lag'].outputs.lag_s | int > rpo_s | int, likelihood 0.1]"
        ),
        "{}",
        out.stdout
    );
    // The worst case: restore (30m) is on the critical path.
    assert!(
        out.stdout
            .contains("critical path (*): check-lag → restore → verify"),
        "{}",
        out.stdout
    );
    let out = p.run(&["plan", "failover", "--format", "json"]);
    out.code(0);
    let plan: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let restore = plan["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "restore"))
        .expect("restore");
    assert_eq!(restore["when"]["likelihood"], 0.1);
}
