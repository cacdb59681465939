//! Verdicts an auditor can trust (issue 13, points 1, 4 and 5): the RTO is met only by a run
//! that recovered within it, JUnit goes red when it was not, and `on_failure: continue` steps
//! fail neither the run nor its exit code unless `--strict` says so. Through the real binary.

use crate::support::*;
use serde_json::Value;

/// `a` succeeds, then `b` fails: a run that never recovers, well inside its 1 h RTO.
const BROKEN: &str = r#"
scenario: broken
title: A recovery that fails early
rto: 1h
steps:
  - { id: a, budget: 1m, run: "true", drill: run }
  - { id: b, needs: [a], budget: 1m, run: "exit 3", drill: run }
"#;

/// The JUnit report of a run.
fn junit(p: &Project, run: &str) -> String {
    let out = p.run(&["report", run, "--format", "junit"]);
    out.code(0);
    out.stdout
}

/// The `<testcase>` named `name`: (its first child element's tag, that element's `type` and
/// `message`); an empty tag for a passing case.
fn testcase(xml: &str, name: &str) -> (String, String, String) {
    let doc = roxmltree::Document::parse(xml).expect("the JUnit report parses");
    let case = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no testcase `{name}` in:\n{xml}"));
    match case.children().find(|c| c.is_element()) {
        Some(c) => (
            c.tag_name().name().to_owned(),
            c.attribute("type").unwrap_or_default().to_owned(),
            c.attribute("message")
                .map(str::to_owned)
                .unwrap_or_else(|| c.text().unwrap_or_default().to_owned()),
        ),
        None => Default::default(),
    }
}

fn suite_failures(xml: &str) -> u64 {
    let doc = roxmltree::Document::parse(xml).expect("the JUnit report parses");
    doc.descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .and_then(|n| n.attribute("failures"))
        .and_then(|f| f.parse().ok())
        .expect("the testsuite counts its failures")
}

fn report(p: &Project, run: &str, format: &str) -> String {
    let out = p.run(&["report", run, "--format", format]);
    out.code(0);
    out.stdout
}

/// Regression: `run failed in 77ms: RTO met (target 1h)`; status, the reports and JUnit all
/// said a recovery that failed had met its RTO.
#[test]
fn a_failed_run_says_recovery_failed_not_rto_met() {
    let p = Project::with_runbook("broken", BROKEN);
    let out = p.run_scenario(&[]);
    out.code(1);
    let run = out.id();
    out.stderr_has("RTO not met: recovery failed at b after");
    assert!(!out.stderr.contains("RTO met"), "{}", out.stderr);

    let j = p.report_json(&run);
    assert_eq!(j["status"], "failed");
    assert_eq!(j["rto_met"], false, "{j:#}");
    assert_eq!(j["failed_at"], "b");
    let words = j["rto_verdict"].as_str().unwrap();
    assert!(
        words.starts_with("RTO not met: recovery failed at b after"),
        "{words}"
    );

    let md = report(&p, &run, "md");
    assert!(
        md.contains("| RTO | RTO not met: recovery failed at b after"),
        "{md}"
    );
    assert!(!md.contains("RTO met"), "{md}");
    // A failed run's lesson is its failure, not a critical path to shorten.
    assert!(!md.contains("shorten the critical path"), "{md}");
    let html = report(&p, &run, "html");
    assert!(
        html.contains("<p class=\"verdict bad\">RTO not met: recovery failed at b after"),
        "{html}"
    );

    let xml = junit(&p, &run);
    let (tag, kind, message) = testcase(&xml, "RTO");
    assert_eq!((tag.as_str(), kind.as_str()), ("failure", "not_recovered"));
    assert!(
        message.starts_with("RTO not met: recovery failed at b"),
        "{message}"
    );

    let (code, one, _) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0);
    assert!(
        one.lines()
            .any(|l| l.starts_with("RTO not met: recovery failed at b after")),
        "{one}"
    );
    let (_, all, _) = p.run(&["status"]).parts();
    let row = all.lines().find(|l| l.starts_with(&run)).unwrap();
    assert!(row.contains("not met: failed at b"), "{all}");
}

/// Regression: an unfinished run's verdict was "unfinished"; it is an outage still on the
/// clock, and neither met nor missed (`rto_met` null).
#[test]
fn a_stopped_run_is_on_the_rto_clock_and_not_recovered() {
    let p = Project::with_runbook(
        "waits",
        r#"
scenario: waits
title: Nobody answers
rto: 1h
roles: { lead: [alice] }
steps:
  - { id: go, budget: 5m, approval: { prompt: go?, approvers: [lead], timeout: 1s } }
  - { id: after, needs: [go], budget: 1m, run: "true", drill: run }
"#,
    );
    let out = p.run_scenario(&[]);
    out.code(3);
    let run = p.run_ids().pop().unwrap();
    let j = p.report_json(&run);
    assert_eq!(j["status"], "stopped");
    assert_eq!(j["rto_met"], Value::Null);
    let words = j["rto_verdict"].as_str().unwrap();
    assert!(
        words.starts_with("RTO clock at ") && words.ends_with(" of 1h, not recovered"),
        "{words}"
    );
    let md = report(&p, &run, "md");
    assert!(md.contains("| RTO | RTO clock at "), "{md}");
    let xml = junit(&p, &run);
    // Review: a stopped run's JUnit was green (its RTO case skipped, its gate passed).
    assert_eq!(testcase(&xml, "RTO").0, "failure");
    let (_, one, _) = p.run(&["status", &run]).parts();
    assert!(
        one.lines()
            .any(|l| l.starts_with("RTO clock at ") && l.contains(" of 1h, not recovered")),
        "{one}"
    );
}

/// Regression: `history` said "RTO met 100%" beside a 0% success rate and took MTTR from a
/// failed run. One recovery that missed its 1 s RTO and one run that failed at once: no RTO
/// met, and the MTTR is the recovery's.
#[test]
fn history_counts_recoveries_only_and_says_what_it_left_out() {
    let p = Project::with_runbook(
        "slow",
        r#"
scenario: slow
title: Recovers late, or fails at once
rto: 1s
steps:
  - { id: a, budget: 10s, run: 'if [ -n "$FAIL" ]; then exit 3; fi; sleep 1.5', drill: run }
"#,
    );
    p.run_scenario(&[]).code(0);
    let mut failing = p.cmd(&["run", "slow"]);
    failing.env("FAIL", "1");
    p.run_with(failing).code(1);

    let (code, out, err) = p.run(&["history", "--format", "json"]).parts();
    assert_eq!(code, 0, "{err}");
    let h: Value = serde_json::from_str(&out).unwrap();
    let s = &h[0];
    assert_eq!(s["finished"], 2);
    assert_eq!(s["recoveries"], 1);
    assert_eq!(s["not_recovered"], 1);
    assert_eq!(s["rto_met_share"], 0.0, "{s:#}");
    assert!(
        s["mttr_s"].as_f64().unwrap() >= 1.5,
        "the MTTR is the recovery's alone: {s:#}"
    );
    assert_eq!(s["mttr_runs"], 1);
    assert_eq!(s["mttr_left_out"], 1);

    let (_, md, _) = p.run(&["history"]).parts();
    assert!(
        md.contains(
            "| RTO met | 0% of 1 recovery; left out: 1 failed run, which did not recover |"
        ),
        "{md}"
    );
    assert!(
        md.contains("over 1 real recovery; left out: 1 failed real run, which did not recover |"),
        "{md}"
    );
}

/// Regression: journals written before the fix say `rto_met: true` of a failed run. The
/// readers decide from status and elapsed instead, and find where it failed themselves.
#[test]
fn an_old_journal_that_says_a_failed_run_met_its_rto_is_not_believed() {
    use runbook::journal::{EventKind, Journal, read_lenient};

    let p = Project::with_runbook("broken", BROKEN);
    let out = p.run_scenario(&[]);
    out.code(1);
    let run = out.id();
    // Rewrite the journal as the old engine wrote it: the same records, chained anew, with
    // the old `run_finished`.
    let path = p.run_dir(&run).join("journal.jsonl");
    let records = read_lenient(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let _ = std::fs::remove_file(runbook::journal::head_path(&path));
    let mut old = Journal::create(&path).unwrap();
    for r in records {
        let (at, elapsed) = (r.at, r.elapsed());
        match r.event {
            EventKind::RunSealed(_) => {
                old.seal(at, elapsed);
            }
            EventKind::RunFinished(mut f) => {
                f.rto_met = true;
                f.failed_at = None;
                old.append(at, elapsed, EventKind::RunFinished(f));
            }
            e => {
                old.append(at, elapsed, e);
            }
        }
    }
    old.sync().unwrap();
    drop(old);
    assert!(p.journal(&run).contains(r#""rto_met":true"#));
    p.run(&["verify", &run]).code(0);

    let j = p.report_json(&run);
    assert_eq!(j["rto_met"], false, "{j:#}");
    assert_eq!(j["failed_at"], "b");
    let md = report(&p, &run, "md");
    assert!(!md.contains("RTO met"), "{md}");
    assert!(
        md.contains("RTO not met: recovery failed at b after"),
        "{md}"
    );
    let (_, one, _) = p.run(&["status", &run]).parts();
    assert!(
        one.contains("RTO not met: recovery failed at b after"),
        "{one}"
    );
    let (_, hist, _) = p.run(&["history", "--format", "json"]).parts();
    let h: Value = serde_json::from_str(&hist).unwrap();
    assert_eq!(h[0]["rto_met_share"], Value::Null, "no recovery: {hist}");
}

/// Regression: JUnit was green for a drill that missed its RTO: only steps were test cases.
/// A missed RTO, and a step over its budget, each fail a case.
#[test]
fn junit_goes_red_when_the_rto_is_missed_or_a_budget_breached() {
    let p = Project::with_runbook(
        "late",
        r#"
scenario: late
title: Recovers, late
rto: 1s
steps:
  - { id: long, budget: 1s, run: sleep 1.5, drill: run }
"#,
    );
    let out = p.run_scenario(&["--drill"]);
    out.code(0);
    let run = out.id();
    let xml = junit(&p, &run);
    let (tag, kind, message) = testcase(&xml, "RTO");
    assert_eq!(
        (tag.as_str(), kind.as_str()),
        ("failure", "rto_missed"),
        "{xml}"
    );
    // A drill: judged on what a real run projects (here the step ran for real).
    assert!(
        message.starts_with("RTO MISSED: a real run projects "),
        "{message}"
    );
    let (tag, kind, _) = testcase(&xml, "long");
    assert_eq!(
        (tag.as_str(), kind.as_str()),
        ("failure", "budget_breached")
    );
    assert_eq!(suite_failures(&xml), 2, "{xml}");
}

/// A recovery within its RTO: the RTO case passes.
#[test]
fn junit_passes_the_rto_case_of_a_recovery_within_it() {
    let p = Project::with_runbook(
        "quick",
        "scenario: quick\ntitle: t\nrto: 1h\nsteps:\n  - { id: a, budget: 1m, run: \"true\", drill: run }\n",
    );
    let out = p.run_scenario(&[]);
    out.code(0);
    let xml = junit(&p, &out.id());
    assert_eq!(testcase(&xml, "RTO"), Default::default(), "{xml}");
    assert_eq!(suite_failures(&xml), 0, "{xml}");
}

/// `notify` may fail: the recovery goes on without it.
const NOTIFY_MAY_FAIL: &str = r#"
scenario: tolerant
title: A step allowed to fail
rto: 1h
steps:
  - { id: notify, budget: 1m, run: "echo nobody listens >&2; exit 3", drill: run, on_failure: continue }
  - { id: restore, needs: [notify], budget: 1m, run: "true", drill: run }
"#;

/// Regression: a run whose only failed step was `on_failure: continue` ended `failed` and
/// exited 1. It succeeds, exits 0, and every report lists the step "failed, continued".
#[test]
fn a_run_whose_only_failures_continued_succeeds_and_says_so() {
    let p = Project::with_runbook("tolerant", NOTIFY_MAY_FAIL);
    let out = p.run_scenario(&[]);
    out.code(0);
    let run = out.id();
    out.stderr_has("RTO met");
    out.stderr_has("failed, continued: notify");

    let j = p.report_json(&run);
    assert_eq!(j["status"], "succeeded");
    assert_eq!(j["rto_met"], true);
    assert_eq!(j["continued"], serde_json::json!(["notify"]));
    let step = |id: &str| {
        j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(step("notify")["status"], "failed");
    assert_eq!(step("notify")["continued"], true);
    assert_eq!(step("restore")["continued"], false);

    let md = report(&p, &run, "md");
    let row = md.lines().find(|l| l.starts_with("| notify")).unwrap();
    assert!(row.contains("| failed, continued |"), "{md}");
    assert!(md.contains("| Failed, continued | notify |"), "{md}");
    let html = report(&p, &run, "html");
    assert!(html.contains("<td>failed, continued</td>"), "{html}");

    let xml = junit(&p, &run);
    let (tag, _, text) = testcase(&xml, "notify");
    assert_eq!(tag, "system-out", "{xml}");
    assert!(text.starts_with("failed, continued"), "{text}");
    assert_eq!(suite_failures(&xml), 0, "{xml}");

    let (_, one, _) = p.run(&["status", &run]).parts();
    let row = one.lines().find(|l| l.starts_with("notify ")).unwrap();
    assert!(row.contains("failed, continued"), "{one}");
}

/// `--strict`: a continued failure is still a failure for whoever asked so.
#[test]
fn strict_makes_a_continued_failure_exit_1() {
    let p = Project::with_runbook("tolerant", NOTIFY_MAY_FAIL);
    let out = p.run_scenario(&["--strict"]);
    out.code(1);
    out.stderr_has("--strict makes that a failure");
    assert_eq!(p.report_json(&out.id())["status"], "succeeded");
}

/// Review of issue 13: a step that failed with `on_failure: continue` read as plainly "failed"
/// until the run finished (the label came from `run_finished` alone): a stopped run said so in
/// `status` and every report, and its JUnit failed on it.
#[test]
fn a_continued_failure_reads_so_in_a_stopped_run_too() {
    let p = Project::with_runbook(
        "half",
        r#"scenario: half
title: A continued failure, then a gate nobody answers
rto: 1h
roles: { lead: [alice] }
steps:
  - { id: never, budget: 10s, run: exit 1, drill: run, on_failure: continue }
  - id: g
    needs: [never]
    budget: 1m
    approval: { prompt: go?, approvers: [lead], timeout: 1s }
"#,
    );
    let (code, _, err) = p.run_scenario(&["--run-id", "r"]).parts();
    assert_eq!(code, 3, "{err}");
    let j = p.report_json("r");
    assert_eq!(j["continued"], serde_json::json!(["never"]), "{j}");
    let never = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "never")
        .unwrap();
    assert_eq!(never["continued"], true, "{never}");
    let (_, status, _) = p.run(&["status", "r"]).parts();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("never") && l.contains("failed, continued")),
        "{status}"
    );
    let xml = junit(&p, "r");
    assert_ne!(testcase(&xml, "never").0, "failure", "{xml}");
}
