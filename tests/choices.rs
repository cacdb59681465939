//! What the engine picks for the operator, and what it lets through: which run `last` means,
//! who a gate can be approved by, and the README's tour followed literally — through the real
//! binary.

mod support;

use support::{Project, runbook};

const TYPO_APPROVER: &str = "\
scenario: typo
title: A gate nobody can approve
rto: 1h
roles:
  dba: [alice]
steps:
  - id: go
    budget: 5m
    approval: { prompt: Go?, approvers: [dbas] }
";

/// `approvers: [dbas]` beside the role `dba` passed `check`, and then nobody could approve the
/// gate: a real run would wait there until it timed out.
#[test]
fn a_typod_approver_role_is_an_error_at_check_with_did_you_mean() {
    let out = runbook(&["check"])
        .file("runbooks/typo.yaml", TYPO_APPROVER)
        .run();
    out.code(2)
        .stderr_has(
            "approval `go` names approver `dbas`, which is neither a role nor a person of a role",
        )
        .stderr_has("[runbooks/typo.yaml:9:42]")
        .stderr_has("did you mean `dba`?")
        .stderr_has("checked 1 runbook: 1 error");
}

/// A person of a role may be named directly; a name nobody holds may not.
#[test]
fn an_approver_may_be_a_person_of_a_role_but_not_a_stranger() {
    let person = TYPO_APPROVER.replace("[dbas]", "[alice, dba]");
    runbook(&["check"])
        .file("runbooks/typo.yaml", &person)
        .run()
        .code(0);
    let stranger = TYPO_APPROVER.replace("[dbas]", "[dba, mallory]");
    runbook(&["check"])
        .file("runbooks/typo.yaml", &stranger)
        .run()
        .code(2)
        .stderr_has("names approver `mallory`, which is neither a role nor a person of a role")
        .stderr_has("name a role (dba) or a person of one, or add it under `roles:`");
}

/// The shipped runbooks name only real roles.
#[test]
fn the_shipped_runbooks_pass_the_approver_check() {
    let p = Project::new().with_repo_runbooks().with_repo_steps();
    let out = p.run(&["check"]);
    out.code(0);
    assert!(!out.stderr.contains("approver"), "{}", out.stderr);
}
