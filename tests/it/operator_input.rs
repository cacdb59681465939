//! `input:` through the real binary: `check` puts each mistake at its line; a run waits at an
//! input step until `runbook answer` gives a value that matches its pattern, and the value
//! reaches a later step's command; a dry-run takes the `default`.

use std::time::Duration;

use crate::support::{Project, runbook};

fn check(name: &str, yaml: &str) -> crate::support::Out {
    let path = format!("runbooks/{name}.yaml");
    runbook(&[]).file(&path, yaml).arg("check").arg(&path).run()
}

const PITR: &str = r#"scenario: pitr
title: Restore to a point in time a person picks
rto: 5m
roles:
  dba: [alice]
steps:
  - id: target
    budget: 1m
    input:
      prompt: "Recovery target (YYYY-MM-DD HH:MM)?"
      pattern: "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}"
      approvers: [dba]
      timeout: 2m
      default: "2026-12-01 09:00"
  - id: restore
    needs: [target]
    budget: 10s
    run: echo restore to {{ steps['target'].outputs.value }} >> effects.txt
    drill: run
"#;

#[test]
fn a_bad_pattern_is_an_error_at_the_pattern() {
    let out = check(
        "bad-pattern",
        "\
scenario: bad-pattern
title: An input with a broken pattern
rto: 1h
roles: { dba: [alice] }
steps:
  - id: target
    budget: 1m
    input: { prompt: \"When?\", approvers: [dba], pattern: \"[0-9\", default: \"1\" }
",
    );
    out.code(2)
        .stderr_has(
            "`pattern` of input `target` is not a regular expression: unclosed character class",
        )
        .stderr_has("[runbooks/bad-pattern.yaml:8:58]")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
}

#[test]
fn a_default_that_does_not_match_the_pattern_is_an_error_at_the_default() {
    let out = check(
        "bad-default",
        "\
scenario: bad-default
title: An input whose default no one could answer
rto: 1h
roles: { dba: [alice] }
steps:
  - id: target
    budget: 1m
    input:
      prompt: \"Which replica?\"
      approvers: [dba]
      pattern: \"replica-[0-9]+\"
      default: primary
",
    );
    out.code(2)
        .stderr_has(
            "`default` of input `target`: `primary` does not match the pattern `replica-[0-9]+`",
        )
        .stderr_has("[runbooks/bad-default.yaml:12:16]")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
}

#[test]
fn an_input_without_a_default_is_an_error_at_its_prompt() {
    let out = check(
        "no-default",
        "\
scenario: no-default
title: An input a dry-run could not answer
rto: 1h
roles: { dba: [alice] }
steps:
  - id: target
    budget: 1m
    input: { prompt: \"Which replica?\", approvers: [dba] }
",
    );
    out.code(2)
        .stderr_has("input `target` has no `default`")
        .stderr_has("[runbooks/no-default.yaml:8:22]")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
}

#[test]
fn a_value_given_with_runbook_answer_reaches_a_later_steps_command() {
    let p = Project::new();
    p.write("runbooks/pitr.yaml", PITR);
    let child = p.spawn(&["run", "pitr"]);
    let run = p.wait_for("approval_requested", "target");

    // status says what to type, and where.
    let (code, out, _) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("runbook answer {run} target VALUE --as NAME")),
        "{out}"
    );
    assert!(out.contains("a value matching: [0-9]{4}-"), "{out}");
    let (_, plan, _) = p.run(&["plan", "pitr"]).parts();
    assert!(plan.contains("input: dba"), "{plan}");

    // A value that does not match is refused with the pattern; the step keeps waiting.
    let (code, out, _) = p
        .run(&["answer", &run, "target", "yesterday", "--as", "alice"])
        .parts();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("rejected: `yesterday` does not match the pattern `[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}`; step `target` keeps waiting"),
        "{out}"
    );
    // An approval is not an answer.
    let (code, out, _) = p.run(&["approve", &run, "target", "--as", "alice"]).parts();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("step `target` asks for a value"), "{out}");
    assert!(!p.path().join("effects.txt").exists());

    let (code, out, err) = p
        .run(&[
            "answer",
            &run,
            "target",
            "2026-11-30 23:15",
            "--as",
            "alice",
        ])
        .parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("granted: approved by alice"), "{out}");
    let (code, _, err) = child.finish_within(Duration::from_secs(20)).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "restore to 2026-11-30 23:15\n");

    // Journaled: the value on the grant and as the step's output.
    let granted = p.events_of(&run, "approval_granted");
    assert_eq!(
        granted[0]["data"]["value"], "2026-11-30 23:15",
        "{granted:?}"
    );
    let outputs = p.events_of(&run, "step_output");
    assert_eq!(outputs[0]["data"]["outputs"]["value"], "2026-11-30 23:15");
    assert_eq!(p.events_of(&run, "approval_rejected").len(), 2);

    // Reported with who answered and what.
    let report = p.report_json(&run);
    let target = crate::support::report_step(&report, "target");
    assert_eq!(target["value"], "2026-11-30 23:15", "{target}");
    assert_eq!(target["approved_by"], serde_json::json!(["alice"]));
    let (_, md, _) = p.run(&["report", &run, "--format", "md"]).parts();
    assert!(
        md.contains("`target` answered `2026-11-30 23:15` by alice after a wait of"),
        "{md}"
    );
}

#[test]
fn a_dry_run_takes_the_default() {
    let p = Project::new();
    p.write("runbooks/pitr.yaml", PITR);
    let (code, out, err) = p.run(&["run", "pitr", "--dry-run"]).parts();
    assert_eq!(code, 0, "{out}{err}");
    let run = p.last_run_of("pitr").unwrap();
    let granted = p.events_of(&run, "approval_granted");
    assert_eq!(
        granted[0]["data"]["value"], "2026-12-01 09:00",
        "{granted:?}"
    );
}

/// `runbook ARGS` at the engine's machine with a HOME of its own: no key found by default.
fn answerer(p: &Project, args: &[&str]) -> crate::support::Out {
    let mut c = p.cmd(args);
    std::fs::create_dir_all(p.path().join("home")).unwrap();
    c.env("HOME", p.path().join("home"))
        .env_remove("RUNBOOK_SIGNING_KEY");
    p.run_with(c)
}

#[test]
fn a_signed_answer_carries_its_value_and_verify_checks_it_again() {
    let p = Project::new();
    p.write("runbooks/pitr.yaml", PITR);
    let alice = p.keygen("alice");
    p.allow_signers(&[("alice", &alice)]);
    let alice = alice.display().to_string();
    let child = p.spawn(&["run", "pitr"]);
    let run = p.wait_for("approval_requested", "target");

    // Unsigned, where the project has allowed_signers: refused.
    let (code, out, _) = answerer(
        &p,
        &[
            "answer",
            &run,
            "target",
            "2026-11-30 23:15",
            "--as",
            "alice",
        ],
    )
    .parts();
    assert_ne!(code, 0, "{out}");
    let (code, out, err) = answerer(
        &p,
        &[
            "answer",
            &run,
            "target",
            "2026-11-30 23:15",
            "--as",
            "alice",
            "--key",
            &alice,
        ],
    )
    .parts();
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = child.finish_within(Duration::from_secs(20)).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "restore to 2026-11-30 23:15\n");
    let granted = p.events_of(&run, "approval_granted");
    assert_eq!(
        granted[0]["data"]["signed"]["statement"]["value"],
        "2026-11-30 23:15"
    );
    let (code, out, _) = p.run(&["verify", &run]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
}
