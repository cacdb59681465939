//! A journal's signatures checked years later (issue 16): the seal signed with the operator's
//! key (`run --key`, a key in ssh-agent too), a rewritten and re-hashed chain that no longer
//! passes once the seal is signed, and each signed decision at a gate checked again by `verify`
//! against the run's copy of allowed_signers. Keys are real, made by ssh-keygen in the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use runbook::journal::*;
use runbook::signing::{self, Decision, SealStatement, Statement};

use crate::support::{Project, wait_until};

const SMALL: &str = "scenario: small\ntitle: t\nrto: 1h\nsteps:\n  - id: a\n    budget: 10s\n    run: echo a\n    drill: run\n  - id: b\n    needs: [a]\n    budget: 10s\n    run: echo b\n    drill: run\n";

fn verify(p: &Project, run: &str) -> (i32, String) {
    let (code, out, err) = p.run(&["verify", run]).parts();
    (code, out + &err)
}

/// The key's fingerprint as ssh-keygen prints it.
fn fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .expect("ssh-keygen -l");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_owned()
}

/// Rewrites a journal as a forger would: `edit` changes each line's body, then every `prev`
/// and `hash` is computed again (a seal's `last_hash`, and the head file, with them), so the
/// chain itself verifies.
fn rechain(journal: &Path, edit: impl Fn(usize, &str) -> String) {
    let text = std::fs::read_to_string(journal).unwrap();
    let mut prev = GENESIS.to_owned();
    let mut out = String::new();
    let mut last = (0, String::new());
    for (i, line) in text.lines().enumerate() {
        let (body, _) = line.rsplit_once(",\"hash\":\"").expect("a hashed line");
        let old_prev = body
            .split_once("\"prev\":\"")
            .and_then(|(_, t)| t.split_once('"'))
            .map(|(h, _)| h.to_owned())
            .expect("a prev");
        // `prev`, and a seal's `last_hash`, name the line before: it has a new hash now.
        let body = edit(i, body).replace(&old_prev, &prev);
        let hash = runbook::digest::sha256_hex(format!("{body}}}").as_bytes());
        out.push_str(&format!("{body},\"hash\":\"{hash}\"}}\n"));
        last = (i, hash.clone());
        prev = hash;
    }
    std::fs::write(journal, out).unwrap();
    std::fs::write(head_path(journal), format!("{:020} {}\n", last.0, last.1)).unwrap();
}

/// Regression for the limit issue 16 names: a chain rewritten (alice → mallory) with every
/// hash recomputed passed `verify` as "intact and sealed". Once the seal is signed, it does
/// not; unsigned, it still does (the limit docs/design.md states).
#[test]
fn a_rewritten_chain_fails_verify_once_the_seal_is_signed() {
    let p = Project::with_runbook("small", SMALL);
    let alice = p.keygen("alice");
    p.run(
        &[
            "run", "small", "--run-id", "signed", "--as", "alice", "--key",
        ]
        .into_iter()
        .chain([alice.to_str().unwrap()])
        .collect::<Vec<_>>(),
    )
    .code(0);
    let (code, out) = verify(&p, "signed");
    assert_eq!(code, 0, "{out}");
    let fp = fingerprint(&alice);
    assert!(
        out.contains(&format!(
            "ok: intact, sealed and signed by key {fp} (no allowed_signers names its holder)"
        )),
        "{out}"
    );

    let journal = p.run_dir("signed").join("journal.jsonl");
    rechain(&journal, |_, body| body.replace("\"alice\"", "\"mallory\""));
    let (code, out) = verify(&p, "signed");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq"), "{out}");
    assert!(
        out.contains("the seal's signature does not check") && out.contains("does not match"),
        "{out}"
    );

    // The same forgery of an unsigned run passes: the chain alone cannot tell who wrote it.
    p.run(&["run", "small", "--run-id", "plain", "--as", "alice"])
        .code(0);
    let journal = p.run_dir("plain").join("journal.jsonl");
    rechain(&journal, |_, body| body.replace("\"alice\"", "\"mallory\""));
    let (code, out) = verify(&p, "plain");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: intact and sealed:"), "{out}");
    assert!(p.journal("plain").contains("\"operator\":\"mallory\""));
}

/// A key given that does not exist is refused before the run begins: nothing is written.
#[test]
fn a_missing_key_is_refused_at_start() {
    let p = Project::with_runbook("small", SMALL);
    p.run(&["run", "small", "--key", "keys/nobody"])
        .code(2)
        .stderr_has("the signing key `keys/nobody` does not exist");
    assert!(p.run_ids().is_empty(), "{:?}", p.run_ids());
}

/// `ssh-agent -D` on a socket of the test's own; killed when the test ends, however it ends.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let sock = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent runs");
        wait_until("the agent's socket", || sock.exists());
        Agent { child, sock }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_key_held_in_ssh_agent_signs_the_seal() {
    let p = Project::with_runbook("small", SMALL);
    let alice = p.keygen("alice");
    let agent = Agent::start(p.path());
    let added = Command::new("ssh-add")
        .arg(&alice)
        .env("SSH_AUTH_SOCK", &agent.sock)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-add runs");
    assert!(added.status.success(), "{added:?}");
    // Only the agent holds the private half now.
    std::fs::remove_file(&alice).unwrap();
    let public = alice.with_extension("pub");
    let mut cmd = p.cmd(&[
        "run",
        "small",
        "--run-id",
        "agent",
        "--as",
        "alice",
        "--key",
        public.to_str().unwrap(),
    ]);
    cmd.env("SSH_AUTH_SOCK", &agent.sock);
    let out = p.run_with(cmd);
    out.code(0);
    assert!(!out.stderr.contains("not signed"), "{}", out.stderr);
    let (code, text) = verify(&p, "agent");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("signed by key {}", fingerprint(&alice))),
        "{text}"
    );

    // Without the agent the same run is sealed unsigned, and says why once; it still succeeds.
    let agent_pid = agent.child.id() as i32;
    drop(agent);
    wait_until("the agent is gone", || {
        !crate::support::pid_alive(agent_pid)
    });
    let out = p.run(&[
        "run",
        "small",
        "--run-id",
        "noagent",
        "--as",
        "alice",
        "--key",
        public.to_str().unwrap(),
    ]);
    out.code(0);
    assert_eq!(
        out.stderr
            .matches("the journal's seal is not signed")
            .count(),
        1,
        "{}",
        out.stderr
    );
    let (code, text) = verify(&p, "noagent");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok: intact and sealed:"), "{text}");
}

/// A run's journal written through the library, as an engine with signed approvals writes it:
/// the run's folder with its copy of allowed_signers, `run_started` naming its sha256.
struct Written {
    journal: Journal,
    id: String,
    elapsed: u64,
}

impl Written {
    fn begin(p: &Project, id: &str, signers: &str, required: bool) -> Written {
        let dir = p.run_dir(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("allowed_signers"), signers).unwrap();
        let mut journal = Journal::create(&dir.join("journal.jsonl")).unwrap();
        journal.append(
            Utc::now(),
            Duration::ZERO,
            EventKind::RunStarted(Box::new(RunStarted {
                run_id: id.to_owned(),
                scenario: "gated".into(),
                title: "Gated".into(),
                mode: Some(Mode::Real),
                operator: "alice".into(),
                journal_version: Some(VERSION),
                allowed_signers_sha256: Some(runbook::digest::sha256_hex(signers.as_bytes())),
                signed_approvals: required,
                ..Default::default()
            })),
        );
        Written {
            journal,
            id: id.to_owned(),
            elapsed: 0,
        }
    }

    fn push(&mut self, event: EventKind) -> Record {
        self.elapsed += 10;
        self.journal
            .append(Utc::now(), Duration::from_millis(self.elapsed), event)
    }

    fn gate(&mut self, step: &str) -> String {
        self.push(EventKind::ApprovalRequested(ApprovalRequested {
            step: step.into(),
            prompt: "Promote?".into(),
            approvers: vec!["dba".into()],
            min: 2,
            timeout_ms: None,
            input: None,
            manual: None,
        }))
        .hash
    }

    /// A decision signed by `key` over a statement naming `request`.
    fn signed(&self, step: &str, by: &str, request: &str, key: &Path) -> Box<SignedDecision> {
        let statement = Statement {
            run: self.id.clone(),
            step: step.into(),
            decision: Decision::Approve,
            by: by.into(),
            comment: None,
            at: "2026-12-01T20:00:00Z".into(),
            request: request.into(),
            value: None,
        };
        let signature = signing::sign(key, &statement.canonical()).unwrap();
        Box::new(SignedDecision {
            statement,
            signature,
            key: fingerprint(key),
        })
    }

    /// Finishes and seals the run, the seal signed by `by` with `key` when given.
    fn finish(mut self, seal: Option<(&str, &Path)>) {
        self.push(EventKind::RunFinished(RunFinished {
            status: RunStatus::Succeeded,
            elapsed_ms: self.elapsed,
            rto_met: true,
            rto_ms: 600_000,
            failed_at: None,
            continued: vec![],
            projected_ms: None,
            recovery_ms: None,
            observation_ms: None,
        }));
        let signed = seal.map(|(by, key)| {
            let statement = SealStatement {
                run: self.id.clone(),
                by: by.into(),
                head: self.journal.last_hash().to_owned(),
            };
            SignedSeal {
                by: by.into(),
                key: fingerprint(key),
                signature: signing::sign(key, &statement.canonical()).unwrap(),
            }
        });
        self.journal
            .seal_signed(Utc::now(), Duration::from_millis(self.elapsed), signed);
        self.journal.sync().unwrap();
    }
}

fn allowed(people: &[(&str, &Path)]) -> String {
    people
        .iter()
        .map(|(name, key)| {
            format!(
                "{name} namespaces=\"runbook-approval\" {}\n",
                std::fs::read_to_string(key.with_extension("pub"))
                    .unwrap()
                    .trim()
            )
        })
        .collect()
}

/// A min:2 gate passed by alice and bob, each signed: the journal as the engine writes it.
fn two_person_gate(p: &Project, id: &str, signers: &str, alice: &Path, bob: &Path) {
    let mut w = Written::begin(p, id, signers, true);
    let request = w.gate("promote");
    let by_alice = w.signed("promote", "alice", &request, alice);
    w.push(EventKind::ApprovalReceived(ApprovalAnswer {
        step: "promote".into(),
        by: "alice".into(),
        comment: None,
        wait_ms: 10,
        signed: Some(by_alice),
    }));
    let by_bob = w.signed("promote", "bob", &request, bob);
    w.push(EventKind::ApprovalGranted(ApprovalGranted {
        step: "promote".into(),
        by: vec!["alice".into(), "bob".into()],
        comment: None,
        auto: false,
        wait_ms: 20,
        signed: Some(by_bob),
        value: None,
        items: None,
    }));
    w.finish(Some(("alice", alice)));
}

/// The penultimate line of the armored signature in a journal line, one base64 character of
/// it changed: a byte of the signature itself, not of its framing.
fn flip_a_signature_byte(body: &str) -> String {
    let end = body.find("\\n-----END SSH SIGNATURE").expect("a signature");
    let line_start = body[..end].rfind("\\n").expect("armor lines") + 2;
    let at = line_start + (end - line_start) / 2;
    let c = &body[at..at + 1];
    let flipped = if c == "A" { "B" } else { "A" };
    format!("{}{flipped}{}", &body[..at], &body[at + 1..])
}

#[test]
fn signed_decisions_verify_and_a_flipped_signature_byte_is_a_broken_line() {
    let p = Project::new();
    let (alice, bob) = (p.keygen("alice"), p.keygen("bob"));
    let signers = allowed(&[("alice", &alice), ("bob", &bob)]);
    two_person_gate(&p, "r1", &signers, &alice, &bob);
    let (code, out) = verify(&p, "r1");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "ok: intact, sealed and signed by alice ({})",
            fingerprint(&alice)
        )),
        "{out}"
    );

    // alice's signature (line 3) with one byte changed, the chain re-hashed around it.
    let journal = p.run_dir("r1").join("journal.jsonl");
    rechain(&journal, |i, body| {
        if i == 2 {
            flip_a_signature_byte(body)
        } else {
            body.to_owned()
        }
    });
    let (code, out) = verify(&p, "r1");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 2 (line 3)"), "{out}");
    assert!(out.contains("does not match the statement"), "{out}");
}

#[test]
fn a_decision_signed_for_another_gates_request_is_a_broken_line() {
    let p = Project::new();
    let (alice, bob) = (p.keygen("alice"), p.keygen("bob"));
    let signers = allowed(&[("alice", &alice), ("bob", &bob)]);
    let mut w = Written::begin(&p, "r2", &signers, true);
    let other = w.gate("backup");
    w.gate("promote");
    let wrong = w.signed("promote", "alice", &other, &alice);
    w.push(EventKind::ApprovalReceived(ApprovalAnswer {
        step: "promote".into(),
        by: "alice".into(),
        comment: None,
        wait_ms: 10,
        signed: Some(wrong),
    }));
    w.finish(None);
    let (code, out) = verify(&p, "r2");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 3 (line 4)"), "{out}");
    assert!(
        out.contains(&format!("signed for request {other}"))
            && out.contains("signed for another gate or an earlier opening"),
        "{out}"
    );
}

#[test]
fn an_unsigned_decision_where_signatures_are_required_is_a_broken_line() {
    let p = Project::new();
    let alice = p.keygen("alice");
    let signers = allowed(&[("alice", &alice)]);
    let mut w = Written::begin(&p, "r3", &signers, true);
    w.gate("promote");
    w.push(EventKind::ApprovalDenied(ApprovalAnswer {
        step: "promote".into(),
        by: "bob".into(),
        comment: None,
        wait_ms: 10,
        signed: None,
    }));
    w.finish(None);
    let (code, out) = verify(&p, "r3");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 2 (line 3)"), "{out}");
    assert!(
        out.contains("`bob`'s decision at `promote` is not signed"),
        "{out}"
    );
}

#[test]
fn a_seal_signed_with_a_key_that_is_not_the_operators_is_broken_and_names_its_holder() {
    let p = Project::new();
    let (alice, mallory) = (p.keygen("alice"), p.keygen("mallory"));
    let signers = allowed(&[("alice", &alice), ("mallory", &mallory)]);
    let w = Written::begin(&p, "r4", &signers, false);
    w.finish(Some(("alice", &mallory)));
    let (code, out) = verify(&p, "r4");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 2 (line 3)"), "{out}");
    assert!(
        out.contains("which allowed_signers gives to mallory, not alice"),
        "{out}"
    );
}

#[test]
fn the_runs_allowed_signers_must_be_the_file_it_read_and_goes_into_the_export() {
    let p = Project::new();
    let (alice, bob) = (p.keygen("alice"), p.keygen("bob"));
    let signers = allowed(&[("alice", &alice), ("bob", &bob)]);
    two_person_gate(&p, "r5", &signers, &alice, &bob);

    p.run(&["export", "r5", "--output", "bundle.tar.gz"])
        .code(0);
    let listed = Command::new("tar")
        .args(["-tzf", "bundle.tar.gz"])
        .current_dir(p.path())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("r5/allowed_signers"), "{listed}");
    let verdict = Command::new("tar")
        .args(["-xzOf", "bundle.tar.gz", "r5/verify.txt"])
        .current_dir(p.path())
        .output()
        .unwrap();
    let verdict = String::from_utf8_lossy(&verdict.stdout);
    assert!(verdict.contains("sealed and signed by alice"), "{verdict}");

    // The keys changed after the run: its signatures cannot be trusted to them.
    let copy = p.run_dir("r5").join("allowed_signers");
    std::fs::write(&copy, allowed(&[("alice", &bob), ("bob", &alice)])).unwrap();
    let (code, out) = verify(&p, "r5");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("BROKEN at seq 0 (line 1)") && out.contains("the keys were changed"),
        "{out}"
    );
    std::fs::remove_file(&copy).unwrap();
    let (code, out) = verify(&p, "r5");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot be read"), "{out}");
}

const GATED: &str = "scenario: gated\ntitle: t\nrto: 1h\nroles:\n  ops: [alice, bob]\nsteps:\n  - id: gate\n    budget: 1m\n    approval:\n      prompt: Go?\n      approvers: [ops]\n      timeout: 1s\n  - id: a\n    needs: [gate]\n    budget: 10s\n    run: echo a\n    drill: run\n";

/// A run stopped at a gate and resumed by someone else: each seal is signed by the operator
/// of its time, and `verify` checks both.
#[test]
fn each_seal_is_signed_by_the_operator_of_its_time() {
    let p = Project::with_runbook("gated", GATED);
    let (alice, bob) = (p.keygen("alice"), p.keygen("bob"));
    let key = |k: &Path| k.to_str().unwrap().to_owned();
    let alice_key = key(&alice);
    let bob_key = key(&bob);
    p.run(&[
        "run", "gated", "--run-id", "g", "--as", "alice", "--key", &alice_key,
    ])
    .code(3);
    p.run(&["resume", "g", "--as", "bob", "--key", &bob_key, "--yes"])
        .code(0);
    let seals: Vec<String> = p
        .events_of("g", "run_sealed")
        .iter()
        .map(|s| s["data"]["signed"]["by"].as_str().unwrap_or("-").to_owned())
        .collect();
    assert_eq!(seals, ["alice", "bob"]);
    let (code, out) = verify(&p, "g");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("signed by key {}", fingerprint(&bob))),
        "{out}"
    );

    // alice's seal claimed for bob, the chain re-hashed: her signature is not his.
    let journal = p.run_dir("g").join("journal.jsonl");
    rechain(&journal, |_, body| {
        body.replace("\"operator\":\"alice\"", "\"operator\":\"bob\"")
            .replace("\"signed\":{\"by\":\"alice\"", "\"signed\":{\"by\":\"bob\"")
    });
    let (code, out) = verify(&p, "g");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq"), "{out}");
    assert!(out.contains("does not match the statement"), "{out}");
}

/// A key that waits for someone (a passphrase prompt with nobody there, a hardware key that
/// wants a touch) must not hang the run at its seal: ssh-keygen is killed after its timeout,
/// the seal is written unsigned, and the run ends as it would have.
#[test]
fn a_signer_that_never_answers_is_killed_and_the_run_ends_unsigned() {
    let p = Project::with_runbook("small", SMALL);
    let alice = p.keygen("alice");
    let pid_file = p.path().join("ssh-keygen.pid");
    p.script(
        "shim/ssh-keygen",
        &format!(
            "#!/bin/sh\necho $$ > '{}'\nexec sleep 120\n",
            pid_file.display()
        ),
    );
    let mut cmd = p.cmd(&[
        "run",
        "small",
        "--run-id",
        "hung",
        "--key",
        alice.to_str().unwrap(),
    ]);
    cmd.env(
        "PATH",
        format!(
            "{}:{}",
            p.path().join("shim").display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    let out = p.run_with(cmd);
    out.code(0)
        .stderr_has("the journal's seal is not signed")
        .stderr_has("did not answer within 10 s");
    assert!(out.elapsed >= Duration::from_secs(10), "{:?}", out.elapsed);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !crate::support::pid_alive(pid),
        "ssh-keygen {pid} left running"
    );
    let (code, text) = verify(&p, "hung");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok: intact and sealed:"), "{text}");
}

/// Found by killing and resuming a signed run: a seal signed with a key allowed_signers gives
/// to someone other than the run's operator made the run's own journal read BROKEN at its
/// end. An explicit `--key` that is not the operator's is refused before anything runs; a
/// default key that is not theirs leaves the seal unsigned, said once.
#[test]
fn a_seal_key_that_is_not_the_operators_is_refused_at_start_or_left_unused() {
    let p = Project::with_runbook("small", SMALL);
    let alice = p.keygen("alice");
    p.allow_signers(&[("alice", &alice)]);
    let key = alice.to_str().unwrap();
    let out = p.run(&[
        "run", "small", "--run-id", "as-bob", "--as", "bob", "--key", key,
    ]);
    out.code(2)
        .stderr_has("is not `bob`'s")
        .stderr_has("which allowed_signers gives to alice");
    assert!(p.run_ids().is_empty(), "nothing ran: {:?}", p.run_ids());

    // The default key (here, RUNBOOK_SIGNING_KEY) of someone else: the run goes on unsigned.
    let mut cmd = p.cmd(&["run", "small", "--run-id", "default-key", "--as", "bob"]);
    cmd.env("RUNBOOK_SIGNING_KEY", &alice);
    let out = p.run_with(cmd);
    out.code(0)
        .stderr_has("the journal's seal will not be signed");
    let (code, text) = verify(&p, "default-key");
    assert_eq!(code, 0, "{text}");

    // Alice's own run with her key: signed, and it verifies as hers.
    p.run(&[
        "run", "small", "--run-id", "as-alice", "--as", "alice", "--key", key,
    ])
    .code(0);
    let (code, text) = verify(&p, "as-alice");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("signed by alice"), "{text}");
}
