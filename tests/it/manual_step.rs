//! `manual:` through the real binary: `check` puts each mistake at its line; a run waits at a
//! manual step until `runbook done` confirms every checklist item (one missing is refused,
//! with the list); the journal and the JSON report say who did it and their note, and its
//! time is work, not human wait; a dry-run completes it after its estimate.

use std::time::Duration;

use crate::support::{Project, runbook};

fn check(name: &str, yaml: &str) -> crate::support::Out {
    let path = format!("runbooks/{name}.yaml");
    runbook(&[]).file(&path, yaml).arg("check").arg(&path).run()
}

const PROVIDER: &str = r#"scenario: provider
title: Ask the cloud provider, then fail over
rto: 5m
roles:
  sre: [alice]
steps:
  - id: call-provider
    budget: 1m
    manual:
      instructions: "Call the cloud provider's support line and open a P1"
      checklist: [ticket opened, status page posted]
      approvers: [sre]
  - id: failover
    needs: [call-provider]
    budget: 10s
    run: echo failover >> effects.txt
    drill: run
"#;

#[test]
fn an_empty_checklist_is_an_error_at_the_checklist() {
    let out = check(
        "no-items",
        "\
scenario: no-items
title: A task with nothing to confirm
rto: 1h
roles: { sre: [alice] }
steps:
  - id: call
    budget: 1m
    manual:
      instructions: Call the provider
      checklist: []
      approvers: [sre]
",
    );
    out.code(2)
        .stderr_has("manual step `call` has an empty `checklist`")
        .stderr_has("[runbooks/no-items.yaml:10:18]")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
}

#[test]
fn empty_instructions_are_an_error_at_the_instructions() {
    let out = check(
        "no-words",
        "\
scenario: no-words
title: A task nobody is told
rto: 1h
roles: { sre: [alice] }
steps:
  - id: call
    budget: 1m
    manual: { instructions: \"\", checklist: [done], approvers: [sre] }
",
    );
    out.code(2)
        .stderr_has("manual step `call` has empty `instructions`")
        .stderr_has("[runbooks/no-words.yaml:8:29]")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
}

#[test]
fn a_manual_step_is_done_with_runbook_done_and_reported_with_who_and_the_note() {
    let p = Project::new();
    p.write("runbooks/provider.yaml", PROVIDER);
    let child = p.spawn(&["run", "provider"]);
    let run = p.wait_for("approval_requested", "call-provider");

    // status lists the checklist and says what to type.
    let (code, out, _) = p.run(&["status", &run]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[ ] status page posted"), "{out}");
    assert!(
        out.contains(&format!("runbook done {run} call-provider --as NAME --all")),
        "{out}"
    );

    let (_, plan, _) = p.run(&["plan", "provider"]).parts();
    assert!(
        plan.contains("manual: sre; confirm: ticket opened, status page posted"),
        "{plan}"
    );

    // An item left out is refused, with the list; the step is not done.
    let (code, out, err) = p
        .run(&[
            "done",
            &run,
            "call-provider",
            "--as",
            "alice",
            "--confirm",
            "ticket opened",
        ])
        .parts();
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("not confirmed: `status page posted`")
            && err.contains("the checklist: `ticket opened`, `status page posted`"),
        "{err}"
    );
    assert!(!p.path().join("effects.txt").exists());

    let (code, out, err) = p
        .run(&[
            "done",
            &run,
            "call-provider",
            "--as",
            "alice",
            "--all",
            "--note",
            "P1 case 4711 opened",
        ])
        .parts();
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = child.finish_within(Duration::from_secs(20)).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "failover\n");

    // Journaled: who, the note, the items.
    let granted = p.events_of(&run, "approval_granted");
    let g = &granted[0]["data"];
    assert_eq!(g["by"], serde_json::json!(["alice"]), "{g}");
    assert_eq!(g["comment"], "P1 case 4711 opened", "{g}");
    assert_eq!(
        g["items"],
        serde_json::json!(["ticket opened", "status page posted"])
    );
    let requested = p.events_of(&run, "approval_requested");
    assert_eq!(
        requested[0]["data"]["manual"]["checklist"],
        serde_json::json!(["ticket opened", "status page posted"])
    );

    // Reported: who did it and the note; its time is work, not human wait.
    let report = p.report_json(&run);
    let step = crate::support::report_step(&report, "call-provider");
    assert_eq!(step["done"]["by"], serde_json::json!(["alice"]), "{step}");
    assert_eq!(step["done"]["note"], "P1 case 4711 opened", "{step}");
    assert_eq!(report["human_wait_s"], 0.0, "{report}");
    let (_, md, _) = p.run(&["report", &run, "--format", "md"]).parts();
    assert!(
        md.contains("`call-provider` done by alice in") && md.contains(": \"P1 case 4711 opened\""),
        "{md}"
    );
}

#[test]
fn a_dry_run_completes_a_manual_step_after_its_estimate() {
    let p = Project::new();
    p.write("runbooks/provider.yaml", PROVIDER);
    let (code, out, err) = p.run(&["run", "provider", "--dry-run"]).parts();
    assert_eq!(code, 0, "{out}{err}");
    let run = p.last_run_of("provider").unwrap();
    let granted = p.events_of(&run, "approval_granted");
    assert_eq!(
        granted[0]["data"]["items"],
        serde_json::json!(["ticket opened", "status page posted"]),
        "{granted:?}"
    );
}

#[test]
fn a_signed_done_carries_its_items_and_note_and_verify_checks_it_again() {
    let p = Project::new();
    p.write("runbooks/provider.yaml", PROVIDER);
    let alice = p.keygen("alice");
    p.allow_signers(&[("alice", &alice)]);
    let alice = alice.display().to_string();
    let child = p.spawn(&["run", "provider"]);
    let run = p.wait_for("approval_requested", "call-provider");
    let mut c = p.cmd(&[
        "done",
        &run,
        "call-provider",
        "--as",
        "alice",
        "--all",
        "--note",
        "case 4711",
        "--key",
        &alice,
    ]);
    std::fs::create_dir_all(p.path().join("home")).unwrap();
    c.env("HOME", p.path().join("home"))
        .env_remove("RUNBOOK_SIGNING_KEY");
    let (code, out, err) = p.run_with(c).parts();
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = child.finish_within(Duration::from_secs(20)).parts();
    assert_eq!(code, 0, "{err}");
    let granted = p.events_of(&run, "approval_granted");
    let st = &granted[0]["data"]["signed"]["statement"];
    assert_eq!(st["value"], "ticket opened\nstatus page posted", "{st}");
    assert_eq!(st["comment"], "case 4711", "{st}");
    let (code, out, _) = p.run(&["verify", &run]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
}

#[test]
fn y_with_a_note_at_the_terminal_says_the_task_is_done() {
    use std::io::Write as _;
    let p = Project::new();
    p.write("runbooks/provider.yaml", PROVIDER);
    let (terminal, tty) = crate::run::open_pty();
    let mut cmd = p.cmd(&["run", "provider", "--as", "alice"]);
    cmd.stdin(std::process::Stdio::from(tty));
    let child = p.spawn_with(cmd);
    let run = p.wait_for("approval_requested", "call-provider");
    let mut terminal = std::fs::File::from(terminal);
    writeln!(terminal, "y case 4711").unwrap();
    let (code, _, err) = child.finish_within(Duration::from_secs(20)).parts();
    assert_eq!(code, 0, "{err}");
    let granted = p.events_of(&run, "approval_granted");
    let g = &granted[0]["data"];
    assert_eq!(g["by"], serde_json::json!(["alice"]), "{g}");
    assert_eq!(g["comment"], "case 4711", "{g}");
    assert_eq!(
        g["items"],
        serde_json::json!(["ticket opened", "status page posted"])
    );
}
