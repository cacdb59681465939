//! `check` reviews `runbooks/allowed_signers` (issue 16): the file parses, with each bad line
//! named; no key is given to two people; every person who may approve has a key.

use crate::support::Project;

const GATED: &str = "\
scenario: gated
title: Gated
rto: 10m
roles:
  dba: [alice, bob]
  cto: [carol]
  on-call: [dave]
steps:
  - id: promote
    title: Promote
    budget: 1m
    approval:
      prompt: Promote?
      approvers: [dba, cto]
      min: 2
";

#[test]
fn a_key_shared_by_two_people_is_an_error_at_its_line() {
    let p = Project::with_runbook("gated", GATED);
    let (alice, bob, carol, dave) = (
        p.keygen("alice"),
        p.keygen("bob"),
        p.keygen("carol"),
        p.keygen("dave"),
    );
    let _ = bob;
    p.allow_signers(&[
        ("alice", &alice),
        ("bob", &alice),
        ("carol", &carol),
        ("dave", &dave),
    ]);
    let out = p.run(&["check"]);
    out.code(2)
        .stderr_has("allowed_signers gives one key (SHA256:")
        .stderr_has(") to alice,")
        .stderr_has("runbooks/allowed_signers:2:1")
        .stderr_has("allowed_signers: 1 error");
}

#[test]
fn every_unreadable_line_is_named_and_a_good_file_passes() {
    let p = Project::with_runbook("gated", GATED);
    let (alice, bob) = (p.keygen("alice"), p.keygen("bob"));
    p.allow_signers(&[("alice", &alice), ("bob", &bob)]);
    let good = p.read("runbooks/allowed_signers");
    p.write(
        "runbooks/allowed_signers",
        &format!(
            "{good}carol ssh-ed25519 AAAAnot-a-key\ndave namespaces=runbook-approval {}",
            p.read("keys/alice.pub")
        ),
    );
    let out = p.run(&["check"]);
    out.code(2)
        .stderr_has("runbooks/allowed_signers:4:1")
        .stderr_has("not a public key")
        .stderr_has("runbooks/allowed_signers:5:1")
        .stderr_has("must be in double quotes");
}

#[test]
fn an_approver_without_a_key_is_a_warning_naming_them_and_their_role() {
    let p = Project::with_runbook("gated", GATED);
    let (alice, bob) = (p.keygen("alice"), p.keygen("bob"));
    p.allow_signers(&[("alice", &alice), ("bob", &bob)]);
    let out = p.run(&["check"]);
    out.code(0)
        .stderr_has("`carol` (role `cto` in gated) has no key in allowed_signers")
        .stderr_has("`dave` (role `on-call` in gated) has no key")
        .stderr_has("checked 1 runbook, allowed_signers: ok, 2 warnings");
    assert!(!out.stderr.contains("`alice`"), "{}", out.stderr);
}

#[test]
fn without_the_file_check_says_nothing_of_signers() {
    let p = Project::with_runbook("gated", GATED);
    let out = p.run(&["check"]);
    out.code(0);
    assert!(!out.stderr.contains("allowed_signers"), "{}", out.stderr);
}
