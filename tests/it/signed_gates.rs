//! Signed decisions at a gate (issue 16): real runs of a `min: 2` gate, keys made by
//! ssh-keygen in the test. What counts (two people, two keys, signed for this run and this
//! opening of the gate) and what is refused, each with its reason journaled.

use std::process::Command;
use std::time::Duration;

use crate::support::{Out, Project, wait_until};

const GATED: &str = r#"scenario: SCENARIO
title: A two-person gate
rto: 5m
roles:
  dba: [alice, bob]
steps:
  - id: go
    budget: 1m
    approval: { prompt: "Promote?", approvers: [dba], min: 2, timeout: TIMEOUT }
  - id: act
    needs: [go]
    budget: 10s
    run: echo act >> effects.txt
    drill: run
"#;

fn gated(scenario: &str, timeout: &str) -> String {
    GATED
        .replace("SCENARIO", scenario)
        .replace("TIMEOUT", timeout)
}

/// A project whose allowed_signers lists alice, bob and mallory (who is no dba).
fn signed_project() -> Project {
    let p = Project::with_runbook("gated", &gated("gated", "2m"));
    let (alice, bob, mallory) = (p.keygen("alice"), p.keygen("bob"), p.keygen("mallory"));
    p.allow_signers(&[("alice", &alice), ("bob", &bob), ("mallory", &mallory)]);
    p
}

/// `runbook ARGS` as an approver at the engine's machine: a HOME of its own, so that no key
/// of the machine's user is found by default.
fn approver(p: &Project, args: &[&str]) -> Out {
    let mut c = p.cmd(args);
    std::fs::create_dir_all(p.path().join("home")).unwrap();
    c.env("HOME", p.path().join("home"))
        .env_remove("RUNBOOK_SIGNING_KEY");
    p.run_with(c)
}

fn key(p: &Project, name: &str) -> String {
    p.path().join("keys").join(name).display().to_string()
}

fn rejections(p: &Project, run: &str) -> Vec<String> {
    p.events_of(run, "approval_rejected")
        .iter()
        .map(|e| format!("{}: {}", e["data"]["by"], e["data"]["reason"]))
        .collect()
}

#[test]
fn signed_two_people_pass_the_gate_and_each_forgery_is_refused_with_its_reason() {
    let p = signed_project();
    let child = p.spawn(&["run", "gated"]);
    let run = p.wait_for("approval_requested", "go");
    let (alice, bob, mallory) = (key(&p, "alice"), key(&p, "bob"), key(&p, "mallory"));

    let (code, out, _) = approver(
        &p,
        &["approve", &run, "go", "--as", "alice", "--key", &alice],
    )
    .parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("recorded: approval by alice counted"), "{out}");

    // alice again, under her own name and under bob's; mallory's key under bob's name.
    let (code, out, _) = approver(
        &p,
        &["approve", &run, "go", "--as", "alice", "--key", &alice],
    )
    .parts();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("`alice` has already approved `go`"), "{out}");
    let (code, out, _) =
        approver(&p, &["approve", &run, "go", "--as", "bob", "--key", &alice]).parts();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("which allowed_signers gives to alice, not bob"),
        "{out}"
    );
    let (code, out, _) = approver(
        &p,
        &["approve", &run, "go", "--as", "bob", "--key", &mallory],
    )
    .parts();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("which allowed_signers gives to mallory, not bob"),
        "{out}"
    );

    // Unsigned `--as bob`: refused before anything is written, saying how to sign.
    let (code, _, err) = approver(&p, &["approve", &run, "go", "--as", "bob"]).parts();
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("requires signed approvals, and no signing key was found"),
        "{err}"
    );
    assert!(err.contains("--key"), "{err}");

    // A request dropped into the approvals folder by hand is an unsigned answer.
    let approvals = p.run_dir(&run).join("approvals");
    std::fs::write(
        approvals.join("zz-by-hand.json"),
        r#"{"step":"go","by":"bob","approve":true,"comment":null}"#,
    )
    .unwrap();
    wait_until("the engine answers the dropped file", || {
        approvals.join("zz-by-hand.result").exists()
    });
    let result = std::fs::read_to_string(approvals.join("zz-by-hand.result")).unwrap();
    assert!(
        result.starts_with("rejected: this run requires signed approvals"),
        "{result}"
    );
    assert_eq!(
        p.read("effects.txt"),
        "",
        "nothing refused may pass the gate"
    );

    let (code, out, _) =
        approver(&p, &["approve", &run, "go", "--as", "bob", "--key", &bob]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("granted: approved by alice, bob"), "{out}");
    assert_eq!(child.finish_within(Duration::from_secs(20)).parts().0, 0);
    assert_eq!(p.read("effects.txt"), "act\n");

    let reasons = rejections(&p, &run);
    assert_eq!(reasons.len(), 4, "{reasons:#?}");
    assert!(
        reasons[1].contains("gives to alice, not bob"),
        "{reasons:#?}"
    );
    assert!(reasons[2].contains("\"signed by SHA256:"), "{reasons:#?}");
    assert!(
        reasons[2].contains("gives to mallory, not bob"),
        "{reasons:#?}"
    );
    assert!(
        reasons[3].contains("requires signed approvals"),
        "{reasons:#?}"
    );

    // The journal keeps what was signed, by which key, against the run's copy of the keys.
    let received = &p.events_of(&run, "approval_received")[0]["data"];
    assert_eq!(received["signed"]["statement"]["by"], "alice");
    assert!(
        received["signed"]["key"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    let granted = &p.events_of(&run, "approval_granted")[0]["data"];
    assert_eq!(granted["signed"]["statement"]["by"], "bob");
    assert_ne!(granted["signed"]["key"], received["signed"]["key"]);
    let started = &p.events_of(&run, "run_started")[0]["data"];
    assert_eq!(started["signed_approvals"], true);
    assert_eq!(
        p.read(&format!(".runbook/runs/{run}/allowed_signers")),
        p.read("runbooks/allowed_signers")
    );
    // What the engine counted, `verify` checks again against the run's copy of the keys.
    let (code, out, _) = p.run(&["verify", &run]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
}

#[test]
fn signed_one_key_counts_once_whoever_it_is_given_to() {
    let p = Project::with_runbook("gated", &gated("gated", "2m"));
    let shared = p.keygen("shared");
    // `check` refuses this file; a run must not count the key twice either.
    p.allow_signers(&[("alice", &shared), ("bob", &shared)]);
    let child = p.spawn(&["run", "gated"]);
    let run = p.wait_for("approval_requested", "go");
    let k = key(&p, "shared");
    let (code, out, _) =
        approver(&p, &["approve", &run, "go", "--as", "alice", "--key", &k]).parts();
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = approver(&p, &["approve", &run, "go", "--as", "bob", "--key", &k]).parts();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("which already approved `go` as alice"),
        "{out}"
    );
    drop(child.interrupt_and_stop());
}

/// `approve … --request HASH --print` on a machine with no state folder and another HOME.
fn token_from_another_machine(p: &Project, run: &str, request: &str, who: &str) -> String {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["approve", run, "go", "--as", who, "--key", &key(p, who)])
        .args(["--request", request, "--print"])
        .current_dir(elsewhere.path())
        .env("HOME", elsewhere.path())
        .env("RUNBOOK_STATE_DIR", elsewhere.path().join(".runbook"))
        .env_remove("RUNBOOK_SIGNING_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one line, the token: {stdout}");
    assert!(
        !elsewhere.path().join(".runbook").exists(),
        "--print writes nothing"
    );
    stdout.trim().to_owned()
}

fn request_hash(p: &Project, run: &str) -> String {
    let asked = p.events_of(run, "approval_requested");
    asked.last().unwrap()["hash"].as_str().unwrap().to_owned()
}

#[test]
fn signed_a_token_from_another_machine_counts_and_nowhere_else() {
    let p = signed_project();
    p.write("runbooks/other.yaml", &gated("other", "2m"));
    let child = p.spawn(&["run", "gated"]);
    let run = p.wait_for("approval_requested", "go");
    let token = token_from_another_machine(&p, &run, &request_hash(&p, &run), "alice");

    let (code, out, _) = approver(&p, &["approve", "--token", &token]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("recorded: approval by alice counted"), "{out}");

    // The same token handed to another run's engine (its folder): signed for another run.
    let other_child = p.spawn(&["run", "other"]);
    let mut other = String::new();
    wait_until("the other run asks", || {
        other = p.last_run_of("other").unwrap_or_default();
        !other.is_empty() && !p.events_of(&other, "approval_requested").is_empty()
    });
    assert_ne!(other, run);
    let signed = token_json(&token);
    let approvals = p.run_dir(&other).join("approvals");
    let request = serde_json::json!({"step": "go", "by": "alice", "approve": true, "comment": null, "signed": signed});
    std::fs::write(approvals.join("zz-replayed.json"), request.to_string()).unwrap();
    wait_until("the other run answers", || {
        approvals.join("zz-replayed.result").exists()
    });
    let result = std::fs::read_to_string(approvals.join("zz-replayed.result")).unwrap();
    assert!(
        result.contains(&format!("signed for run `{run}`, not this run `{other}`")),
        "{result}"
    );
    drop(other_child.interrupt_and_stop());

    let (code, out, _) = approver(
        &p,
        &[
            "approve",
            &run,
            "go",
            "--as",
            "bob",
            "--key",
            &key(&p, "bob"),
        ],
    )
    .parts();
    assert_eq!(code, 0, "{out}");
    assert_eq!(child.finish_within(Duration::from_secs(20)).parts().0, 0);
}

/// The JSON inside a token (`rb1.` + base64url).
fn token_json(token: &str) -> serde_json::Value {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let body = token.strip_prefix("rb1.").unwrap();
    serde_json::from_slice(&Base64UrlUnpadded::decode_vec(body).unwrap()).unwrap()
}

#[test]
fn signed_a_token_for_an_earlier_opening_of_the_gate_is_refused_after_resume() {
    let p = Project::with_runbook("gated", &gated("gated", "3s"));
    let (alice, bob) = (p.keygen("alice"), p.keygen("bob"));
    p.allow_signers(&[("alice", &alice), ("bob", &bob)]);
    let (code, _, err) = p.run(&["run", "gated"]).parts();
    assert_eq!(code, 3, "the gate timed out: {err}");
    let run = p.run_ids().pop().unwrap();
    let first = request_hash(&p, &run);
    let token = token_from_another_machine(&p, &run, &first, "alice");

    let child = p.spawn(&["resume", &run]);
    wait_until("resume asks again", || {
        p.events_of(&run, "approval_requested").len() >= 2
    });
    let (code, out, _) = approver(&p, &["approve", "--token", &token]).parts();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "signed for request {first} of `go`, not its latest request"
        )),
        "{out}"
    );
    let reasons = rejections(&p, &run);
    assert!(reasons[0].contains("the gate asked again"), "{reasons:#?}");
    let _ = child.finish_within(Duration::from_secs(20));
}

#[test]
fn signed_a_drill_takes_unsigned_answers_unless_its_environment_requires_signatures() {
    let p = signed_project();
    let child = p.spawn(&["run", "gated", "--drill"]);
    let run = p.wait_for("approval_requested", "go");
    assert_eq!(
        approver(&p, &["approve", &run, "go", "--as", "alice"])
            .parts()
            .0,
        0
    );
    let (code, out, _) = approver(&p, &["approve", &run, "go", "--as", "bob"]).parts();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("granted: approved by alice, bob"), "{out}");
    assert_eq!(child.finish_within(Duration::from_secs(20)).parts().0, 0);
    assert!(
        p.events_of(&run, "run_started")[0]["data"]
            .get("signed_approvals")
            .is_none()
    );

    p.write("runbooks/env/strict.yaml", "signed_approvals: true\n");
    let child = p.spawn(&["run", "gated", "--drill", "--env", "strict"]);
    wait_until("the strict drill asks", || {
        p.run_ids().len() == 2
            && !p
                .events_of(&p.run_ids()[1], "approval_requested")
                .is_empty()
    });
    let run = p.run_ids().pop().unwrap();
    let (code, _, err) = approver(&p, &["approve", &run, "go", "--as", "alice"]).parts();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("requires signed approvals"), "{err}");
    drop(child.interrupt_and_stop());
}

#[test]
fn signed_yes_is_refused_where_signatures_are_required_and_an_unsigned_project_is_told() {
    let p = signed_project();
    let (code, _, err) = p.run(&["run", "gated", "--yes", "--as", "alice"]).parts();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`--yes` cannot pass gates in this run: it requires signed approvals"),
        "{err}"
    );
    assert!(p.run_ids().is_empty(), "refused at start: no run");

    let q = Project::with_runbook("gated", &gated("gated", "1s"));
    let (_, _, err) = q.run(&["run", "gated"]).parts();
    assert_eq!(
        err.matches("approvals are not authenticated").count(),
        1,
        "{err}"
    );
}

#[test]
fn signed_status_and_the_gates_page_give_the_request_hash_and_a_token_made_from_them_counts() {
    let p = signed_project();
    let yaml = gated("gated", "2m").replace(
        "steps:\n",
        "notify: { dba: \"echo {{ message }} >> paged.txt\" }\nsteps:\n",
    );
    p.write("runbooks/gated.yaml", &yaml);
    let child = p.spawn(&["run", "gated"]);
    let run = p.wait_for("approval_requested", "go");
    let hash = request_hash(&p, &run);

    let (code, out, _) = p.run(&["status", &run, "--json"]).parts();
    assert_eq!(code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    assert_eq!(doc["gates"][0]["step"], "go");
    assert_eq!(doc["gates"][0]["request"], hash.as_str());
    let (_, text, _) = p.run(&["status", &run]).parts();
    assert!(text.contains(&format!("request: {hash}")), "{text}");

    wait_until("the dba is paged", || {
        p.read("paged.txt").contains("--request")
    });
    let page = p.read("paged.txt");
    assert!(
        page.contains(&format!(
            "runbook approve {run} go --as NAME --key KEY --request {hash} --print"
        )),
        "{page}"
    );

    // An approver with nothing but the page: both sign from another machine.
    for who in ["alice", "bob"] {
        let token = token_from_another_machine(&p, &run, &hash, who);
        let (code, out, _) = approver(&p, &["approve", "--token", &token]).parts();
        assert_eq!(code, 0, "{out}");
    }
    assert_eq!(child.finish_within(Duration::from_secs(20)).parts().0, 0);
    let granted = &p.events_of(&run, "approval_granted")[0]["data"];
    assert_eq!(granted["by"], serde_json::json!(["alice", "bob"]));
}

#[test]
fn signed_a_token_pasted_at_the_gates_prompt_counts_and_a_plain_yes_is_refused() {
    use std::io::Write as _;
    let p = signed_project();
    let (terminal, tty) = crate::run::open_pty();
    let mut cmd = p.cmd(&["run", "gated"]);
    cmd.stdin(std::process::Stdio::from(tty));
    let child = p.spawn_with(cmd);
    let run = p.wait_for("approval_requested", "go");
    let hash = request_hash(&p, &run);
    let mut terminal = std::fs::File::from(terminal);

    // The operator's own `y` is nobody's signature.
    writeln!(terminal, "y").unwrap();
    wait_until("the plain answer is refused", || {
        !p.events_of(&run, "approval_rejected").is_empty()
    });
    let reasons = rejections(&p, &run);
    assert!(
        reasons[0].contains("requires signed approvals"),
        "{reasons:#?}"
    );

    for who in ["alice", "bob"] {
        let token = token_from_another_machine(&p, &run, &hash, who);
        writeln!(terminal, "{token}").unwrap();
    }
    let out = child.finish_within(Duration::from_secs(20));
    assert_eq!(out.parts().0, 0);
    let granted = &p.events_of(&run, "approval_granted")[0]["data"];
    assert_eq!(granted["by"], serde_json::json!(["alice", "bob"]));
    assert_eq!(granted["signed"]["statement"]["by"], "bob");
}
