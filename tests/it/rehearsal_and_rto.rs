//! Issue 14, §3 and §4, through the real binary: a rehearsal environment, where a drill runs
//! the real commands of the steps it mocks elsewhere; and `rto_ends_at`, where the RTO clock
//! stops and the observation after it is reported apart.

use crate::support::{Project, report_step as step, runbook};

/// A failover in small: `promote` is dangerous (a drill mocks it; its estimate is an hour),
/// `verify` is where service is back, `monitor` watches afterwards.
const FAILOVER: &str = r#"scenario: failover
title: A failover in small
rto: 1h
rto_ends_at: verify
steps:
  - { id: fence, budget: 5m, run: "true", drill: run }
  - { id: promote, needs: [fence], budget: 2h, estimate: 1h..1h..1h, run: "sleep 1; touch promoted", drill: mock }
  - { id: verify, needs: [promote], budget: 5m, run: "true", drill: run }
  - { id: monitor, needs: [verify], budget: 2h, run: "sleep 1; test ! -e broken", drill: run }
"#;

fn failover() -> Project {
    let p = Project::with_runbook("failover", FAILOVER);
    p.write("runbooks/env/sandbox.yaml", "rehearsal: true\n");
    p.write("runbooks/env/staging.yaml", "vars: {}\n");
    p
}

/// Issue 14 §3: a drill never touched the dangerous path, even in the sandbox.
#[test]
fn a_rehearsal_drill_runs_a_mocked_steps_real_command_and_a_plain_drill_does_not() {
    let p = failover();
    let out = p.run_scenario(&["--drill", "--env", "staging"]);
    out.code(0);
    assert!(!p.path().join("promoted").exists(), "{}", out.stderr);
    let plain = out.id();
    assert_eq!(
        step(&p.report_json(&plain), "promote")["status"],
        "simulated"
    );

    let out = p.run_scenario(&["--drill", "--env", "sandbox"]);
    out.code(0)
        .stderr_has("mode drill (rehearsal: the steps a drill mocks run for real)")
        .stderr_has("rehearsal: 1 step that a drill mocks runs for real here: promote")
        .stderr_has("▶ promote [run for real (rehearsal)]: sleep 1; touch promoted");
    assert!(p.path().join("promoted").exists(), "{}", out.stderr);
    let run = out.id();
    let started = &p.events_of(&run, "run_started")[0];
    assert_eq!(started["data"]["rehearsal"], true);
    assert_eq!(started["data"]["rto_ends_at"], "verify");
    let how: Vec<String> = p
        .events_of(&run, "step_started")
        .iter()
        .filter(|e| e["data"]["step"] == "promote")
        .map(|e| e["data"]["how"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(how, ["rehearsal"]);
    // The plain drill's journal says nothing of a rehearsal.
    assert!(
        p.events_of(&plain, "run_started")[0]["data"]
            .get("rehearsal")
            .is_none()
    );
}

/// Issue 14 §3: a step that ran for real counts what it took, not its estimate (an hour).
#[test]
fn a_rehearsal_projects_the_measured_duration_of_a_step_it_ran_for_real() {
    let p = failover();
    let out = p.run_scenario(&["--drill", "--env", "sandbox"]);
    out.code(0);
    let r = p.report_json(&out.id());
    let projected = r["projected_rto_s"].as_f64().unwrap();
    // promote slept a second; a mocked promote would project its hour.
    assert!((1.0..600.0).contains(&projected), "{r:#}");
    assert_eq!(r["rto_met"], true);
}

/// Issue 14 §3: every report says the run was a rehearsal, and which steps ran for real.
#[test]
fn every_report_marks_a_rehearsal_and_the_steps_it_ran_for_real() {
    let p = failover();
    let run = p.run_scenario(&["--drill", "--env", "sandbox"]).id();
    let r = p.report_json(&run);
    assert_eq!(r["rehearsal"], true);
    assert_eq!(step(&r, "promote")["rehearsal"], true);
    assert_eq!(step(&r, "verify")["rehearsal"], false);

    let (code, md, err) = p.run(&["report", &run, "--format", "md"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        md.contains("| Mode | drill, rehearsal: in a rehearsal environment, the steps a drill mocks ran for real |"),
        "{md}"
    );
    assert!(
        md.contains("| succeeded, run for real (rehearsal) |"),
        "{md}"
    );
    let (_, html, _) = p.run(&["report", &run, "--format", "html"]).parts();
    assert!(
        html.contains("succeeded, run for real (rehearsal)"),
        "{html}"
    );
    assert!(html.contains("drill, rehearsal"), "{html}");
    let (_, junit, _) = p.run(&["report", &run, "--format", "junit"]).parts();
    assert!(
        junit.contains("<property name=\"rehearsal\" value=\"true\"/>"),
        "{junit}"
    );
    assert!(
        junit.contains("<system-out>succeeded, run for real (rehearsal)</system-out>"),
        "{junit}"
    );
    let (_, status, _) = p.run(&["status", &run]).parts();
    assert!(
        status.contains("rehearsal: the steps a drill mocks run for real"),
        "{status}"
    );
    let line = status.lines().find(|l| l.starts_with("promote")).unwrap();
    assert!(line.contains("run for real (rehearsal)"), "{status}");
}

/// Issue 14 §4: an hour of monitoring counted inside the RTO.
#[test]
fn a_run_reports_its_recovery_and_the_observation_after_it_apart() {
    let p = failover();
    let out = p.run_scenario(&[]);
    out.code(0)
        .stderr_has("RTO 1h (ends at verify)")
        .stderr_has("recovered in ")
        .stderr_has("(RTO 1h met) · observation ");
    let r = p.report_json(&out.id());
    let (recovery, observation, elapsed) = (
        r["recovery_s"].as_f64().unwrap(),
        r["observation_s"].as_f64().unwrap(),
        r["elapsed_s"].as_f64().unwrap(),
    );
    // promote sleeps a second before verify; monitor a second after it.
    assert!(recovery >= 1.0 && observation >= 1.0, "{r:#}");
    assert!((recovery + observation - elapsed).abs() < 0.002, "{r:#}");
    assert_eq!(r["rto_ends_at"], "verify");
    assert_eq!(r["observation_steps"], serde_json::json!(["monitor"]));
    assert_eq!(r["rto_met"], true);
    let verdict = r["rto_verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("RTO met: recovered in ") && verdict.contains(" · observation "),
        "{verdict}"
    );
    let run = out.id();
    let (_, md, _) = p.run(&["report", &run, "--format", "md"]).parts();
    assert!(md.contains("| Recovery | service restored in "), "{md}");
    assert!(
        md.contains("when `verify` succeeded (the RTO is measured there) |"),
        "{md}"
    );
    assert!(md.contains("| Observation | "), "{md}");
    // The chain that decided the recovery ends at verify; monitor is the observation.
    assert!(md.contains("| monitor (observation) |"), "{md}");
    assert_eq!(
        r["critical_path"],
        serde_json::json!(["fence", "promote", "verify"])
    );
    let (_, junit, _) = p.run(&["report", &run, "--format", "junit"]).parts();
    assert!(
        junit.contains("<property name=\"rto_ends_at\" value=\"verify\"/>"),
        "{junit}"
    );
    assert!(junit.contains("<property name=\"recovery_s\""), "{junit}");
    assert!(
        junit.contains("<property name=\"observation_s\""),
        "{junit}"
    );
    let (_, html, _) = p.run(&["report", &run, "--format", "html"]).parts();
    assert!(html.contains("<th>Observation</th>"), "{html}");
}

/// Issue 14 §4: only a recovery meets the RTO; a failure while watching is none, and says
/// that service had been restored and did not hold.
#[test]
fn a_failure_during_observation_is_no_recovery_and_says_service_did_not_hold() {
    let p = failover();
    p.write("broken", "");
    let out = p.run_scenario(&[]);
    out.code(1)
        .stderr_has("RTO not met: recovery failed during observation at monitor after ")
        .stderr_has(", after service was restored in ");
    let r = p.report_json(&out.id());
    assert_eq!(r["rto_met"], false);
    assert_eq!(r["failed_at"], "monitor");
    assert!(r["recovery_s"].as_f64().unwrap() >= 1.0, "{r:#}");
    let verdict = r["rto_verdict"].as_str().unwrap();
    assert!(verdict.ends_with(": it did not hold"), "{verdict}");
    let (_, junit, _) = p.run(&["report", &out.id(), "--format", "junit"]).parts();
    assert!(junit.contains("type=\"not_recovered\""), "{junit}");
}

/// Issue 14 §4: `rto_ends_at` must name a step that restores service.
#[test]
fn rto_ends_at_naming_an_unknown_step_or_a_gate_is_an_error_at_its_line() {
    let out = runbook(&["check"])
        .file(
            "runbooks/x.yaml",
            "scenario: x\ntitle: X\nrto: 1h\nrto_ends_at: verfy\nsteps:\n  - { id: verify, budget: 1m, run: \"true\", drill: run }\n",
        )
        .run();
    out.code(2)
        .stderr_has("`rto_ends_at` names `verfy`, which is not a step")
        .stderr_has("x.yaml:4:")
        .stderr_has("did you mean `verify`?");
    let out = runbook(&["check"])
        .file(
            "runbooks/x.yaml",
            "scenario: x\ntitle: X\nrto: 1h\nroles: { dba: [ann] }\nrto_ends_at: go\nsteps:\n  - { id: go, budget: 1m, approval: { prompt: ok?, approvers: [dba] } }\n",
        )
        .run();
    out.code(2)
        .stderr_has("`rto_ends_at` names `go`, an approval gate")
        .stderr_has("x.yaml:5:");
}

/// Issue 14 §4: the plan's critical path, its verdict and the simulation stop at the RTO step;
/// the observation is listed after.
#[test]
fn plan_and_simulate_measure_the_rto_to_the_rto_step_and_list_the_observation_after() {
    let p = failover();
    let (code, text, err) = p.run(&["plan", "failover"]).parts();
    assert_eq!(code, 0, "{err}");
    // 5m + 2h + 5m = 2h10m to verify: over; the 2h watch after it is not counted.
    assert!(
        text.contains(
            "critical path (*): fence → promote → verify = 2h10m (to verify, where service is restored and the RTO ends)\nOVER the RTO of 1h by 1h10m\nobservation after verify (not counted against the RTO):\n    monitor"
        ),
        "{text}"
    );
    let (_, json, _) = p.run(&["plan", "failover", "--format", "json"]).parts();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["rto_ends_at"], "verify");
    assert_eq!(v["observation"], serde_json::json!(["monitor"]));
    assert_eq!(v["critical_path_s"], 7800.0);

    let (code, sim, err) = p.run(&["plan", "failover", "--simulate", "200"]).parts();
    assert_eq!(code, 0, "{err}");
    // promote alone is an hour exactly: with verify and fence after it, never within 1h.
    assert!(
        sim.contains("P(meet the RTO of 1h, measured at verify) = 0.0%"),
        "{sim}"
    );
    assert!(sim.contains("recovery: P50 "), "{sim}");
    assert!(
        sim.contains("observation after it (not counted against the RTO): P50 "),
        "{sim}"
    );
    let (_, json, _) = p
        .run(&["plan", "failover", "--simulate", "200", "--format", "json"])
        .parts();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["rto_ends_at"], "verify");
    assert!(v["observation_p50_s"].as_f64().unwrap() > 0.0, "{v:#}");
    let p50 = v["p50_s"].as_f64().unwrap();
    assert!(p50 > 3600.0 && p50 < 3600.0 + 1200.0, "{v:#}");
}

/// Issue 14 §3: before a rehearsal, `plan --drill` and `check` say what will run for real.
#[test]
fn plan_drill_and_check_name_the_steps_a_rehearsal_runs_for_real() {
    let p = failover();
    let (code, text, err) = p
        .run(&["plan", "failover", "--drill", "--env", "sandbox"])
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains(
            "in a drill here (rehearsal: 1 step that a drill mocks runs for real here: promote):"
        ),
        "{text}"
    );
    assert!(
        text.contains("  promote  run for real (rehearsal)\n"),
        "{text}"
    );
    let (_, text, _) = p
        .run(&["plan", "failover", "--drill", "--env", "staging"])
        .parts();
    assert!(text.contains("  promote  mock\n"), "{text}");
    let (_, json, _) = p
        .run(&[
            "plan", "failover", "--drill", "--env", "sandbox", "--format", "json",
        ])
        .parts();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["drill"]["run_for_real"], serde_json::json!(["promote"]));

    let out = p.run(&["check"]);
    out.code(0)
        .stderr_has("sandbox.yaml is a rehearsal environment: a drill there runs for real the steps a drill mocks")
        .stderr_has("  failover: promote");
    assert!(
        !out.stderr.contains("staging.yaml is a rehearsal"),
        "{}",
        out.stderr
    );
}

/// Issue 14 §4: datacenter-failure was over its RTO by construction, its hour of monitoring
/// counted; `check` warns of the path to the RTO step only.
#[test]
fn check_warns_of_the_critical_path_to_the_rto_step_not_of_the_observation() {
    let watched = "scenario: x\ntitle: X\nrto: 1h\nrto_ends_at: verify\nsteps:\n  \
        - { id: verify, budget: 10m, run: \"true\", drill: run }\n  \
        - { id: monitor, needs: [verify], budget: 2h, run: \"true\", drill: run }\n";
    let out = runbook(&["check"]).file("runbooks/x.yaml", watched).run();
    out.code(0).stderr_has("checked 1 runbook: ok\n");
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let out = runbook(&["check"])
        .file(
            "runbooks/x.yaml",
            &watched.replace("budget: 10m", "budget: 70m"),
        )
        .run();
    // miette wraps the message at 100 columns.
    out.code(0)
        .stderr_has("the critical path to `verify` (`rto_ends_at`) takes 1h10m of budgets, over the RTO of 1h:\n  | verify\n")
        .stderr_has("1 warning");
}
