//! Issue 16 attacked as an attacker and an auditor would: keys of types other than ed25519, a
//! wildcard principal, a journal forged with its hashes recomputed, a key held only by
//! ssh-agent, a passphrase with nobody to type it. Keys are real, made by ssh-keygen here.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use runbook::journal::*;

use crate::support::{Out, Project, wait_until};

const GATED: &str = r#"scenario: gated
title: A two-person gate
rto: 5m
roles:
  dba: [alice, bob]
steps:
  - id: go
    budget: 1m
    approval: { prompt: "Promote?", approvers: [dba], min: 2, timeout: 2m }
  - id: act
    needs: [go]
    budget: 10s
    run: echo act >> effects.txt
    drill: run
"#;

/// A key of `kind` (`ecdsa`, `rsa`, …) made by ssh-keygen under keys/, with `passphrase`.
fn keygen(p: &Project, name: &str, kind: &str, passphrase: &str) -> PathBuf {
    let key = p.path().join("keys").join(name);
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(ok.success(), "ssh-keygen made no {kind} key for {name}");
    key
}

/// `runbook ARGS` as an approver: a HOME of its own, no key found by default.
fn approver(p: &Project, args: &[&str]) -> Out {
    let mut c = p.cmd(args);
    std::fs::create_dir_all(p.path().join("home")).unwrap();
    c.env("HOME", p.path().join("home"));
    p.run_with(c)
}

fn approve(p: &Project, run: &str, who: &str, key: &Path) -> Out {
    approver(
        p,
        &[
            "approve",
            run,
            "go",
            "--as",
            who,
            "--key",
            key.to_str().unwrap(),
        ],
    )
}

fn verify(p: &Project, run: &str) -> (i32, String) {
    let (code, out, err) = p.run(&["verify", run]).parts();
    (code, out + &err)
}

/// A min:2 gate passed in a real run by alice (ed25519) and bob (`bob_kind`).
fn granted_run(bob_kind: &str) -> (Project, String) {
    let p = Project::with_runbook("gated", GATED);
    let alice = p.keygen("alice");
    let bob = keygen(&p, "bob", bob_kind, "");
    p.allow_signers(&[("alice", &alice), ("bob", &bob)]);
    let child = p.spawn(&["run", "gated"]);
    let run = p.wait_for("approval_requested", "go");
    let (code, out, err) = approve(&p, &run, "alice", &alice).parts();
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = approve(&p, &run, "bob", &bob).parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("granted: approved by alice, bob"), "{out}");
    assert_eq!(child.finish_within(Duration::from_secs(30)).parts().0, 0);
    (p, run)
}

/// Regression: `ssh-key` was built without its curves, so every signature by an ecdsa key
/// (`ssh-keygen -t ecdsa`, and the `ecdsa-sk` of most hardware keys) was refused as "does not
/// match the statement (altered, or made for another)".
#[test]
fn signed_an_ecdsa_key_approves_and_verify_checks_it() {
    let (p, run) = granted_run("ecdsa");
    assert_eq!(p.read("effects.txt"), "act\n");
    let (code, out) = verify(&p, &run);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
}

/// Regression: an rsa key was taken by `check` and every approval signed with it refused
/// later as altered; a principal `*` (OpenSSH: anyone) was taken as a person named `*`.
#[test]
fn signed_keys_that_cannot_be_checked_and_wildcard_names_are_refused_at_their_line() {
    let p = Project::with_runbook("gated", GATED);
    let alice = p.keygen("alice");
    let rsa = keygen(&p, "bob", "rsa", "");
    let pubkey = |k: &Path| {
        std::fs::read_to_string(k.with_extension("pub"))
            .unwrap()
            .trim()
            .to_owned()
    };
    p.write(
        "runbooks/allowed_signers",
        &format!(
            "alice {}\r\nbob {}\r\n* {}\r\n",
            pubkey(&alice),
            pubkey(&rsa),
            pubkey(&alice)
        ),
    );
    let (code, out, err) = p.run(&["check"]).parts();
    let all = out + &err;
    assert_ne!(code, 0, "{all}");
    assert!(
        all.contains("allowed_signers: `ssh-rsa` keys cannot be checked by runbook"),
        "{all}"
    );
    assert!(
        all.contains("allowed_signers: `*` is a pattern, and runbook matches names exactly"),
        "{all}"
    );
    assert!(all.contains("allowed_signers:2:"), "{all}");
    assert!(all.contains("allowed_signers:3:"), "{all}");
    // A run will not start on a file it cannot read as meant.
    let (code, _, err) = p.run(&["run", "gated"]).parts();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("is a pattern"), "{err}");
    assert!(p.run_ids().is_empty());
}

/// Rewrites a journal as a forger would: `edit` changes the records, then the real writer
/// writes them again, every `prev`, `hash` and the seal's `last_hash` computed anew (the run's
/// seal is unsigned: no key in its HOME), so the chain itself verifies.
fn forge(journal: &Path, edit: impl FnOnce(&mut Vec<Record>)) {
    let mut records = read_lenient(journal).expect("a journal");
    edit(&mut records);
    std::fs::remove_file(journal).unwrap();
    std::fs::remove_file(head_path(journal)).unwrap();
    let mut j = Journal::create(journal).unwrap();
    for r in records {
        let (at, elapsed) = (r.at, r.elapsed());
        match r.event {
            EventKind::RunSealed(s) => j.seal_signed(at, elapsed, s.signed),
            event => j.append(at, elapsed, event),
        };
    }
    j.sync().unwrap();
}

/// Regression: `verify` checked only the grant's last approver, so a forger who recomputed
/// the hashes could drop a signed approval, add a name to `approval_granted.by`, or mark the
/// grant `auto`, and the journal still read "intact".
#[test]
fn signed_a_forged_grant_fails_verify_and_so_do_swapped_keys() {
    let (p, run) = granted_run("ed25519");
    let journal = p.run_dir(&run).join("journal.jsonl");
    let original = std::fs::read(&journal).unwrap();
    let restore = || std::fs::write(&journal, &original).unwrap();
    assert_eq!(verify(&p, &run).0, 0);

    // alice's approval dropped: bob alone passed a two-person gate.
    forge(&journal, |rs| {
        rs.retain(|r| !matches!(r.event, EventKind::ApprovalReceived(_)))
    });
    let (code, out) = verify(&p, &run);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`go` is granted by alice, bob, but the signed approvals since its latest request are by bob"),
        "{out}"
    );

    // Dropped, and the grant says bob alone: fewer people than the gate's `min`.
    restore();
    forge(&journal, |rs| {
        rs.retain(|r| !matches!(r.event, EventKind::ApprovalReceived(_)));
        for r in rs.iter_mut() {
            if let EventKind::ApprovalGranted(g) = &mut r.event {
                g.by.retain(|b| b == "bob");
            }
        }
    });
    let (code, out) = verify(&p, &run);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`go` is granted by 1 of the 2 people it needs"),
        "{out}"
    );

    // The grant made `auto`, its signature gone: as if `--yes`, which such a run refuses.
    restore();
    forge(&journal, |rs| {
        for r in rs.iter_mut() {
            if let EventKind::ApprovalGranted(g) = &mut r.event {
                g.auto = true;
                g.signed = None;
            }
        }
    });
    let (code, out) = verify(&p, &run);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`go` is granted without an approver (`auto`)"),
        "{out}"
    );

    // The run's keys swapped (mallory's key given to bob) and run_started's sha256 with them:
    // every hash after it changes, so no signed statement names its gate's request any more.
    restore();
    let mallory = p.keygen("mallory");
    let copy = p.run_dir(&run).join("allowed_signers");
    let swapped = std::fs::read_to_string(&copy).unwrap()
        + &format!(
            "bob {}",
            std::fs::read_to_string(mallory.with_extension("pub")).unwrap()
        );
    std::fs::write(&copy, &swapped).unwrap();
    forge(&journal, |rs| {
        if let EventKind::RunStarted(s) = &mut rs[0].event {
            s.allowed_signers_sha256 = Some(runbook::digest::sha256_hex(swapped.as_bytes()));
        }
    });
    let (code, out) = verify(&p, &run);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("signed for another gate or an earlier opening"),
        "{out}"
    );
}

/// `ssh-agent -D` on a socket of the test's own; killed when the test ends, however it ends.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn signed_an_approver_whose_key_is_only_in_ssh_agent_signs_with_its_public_half() {
    let p = Project::with_runbook("gated", GATED);
    let (alice, bob) = (p.keygen("alice"), p.keygen("bob"));
    p.allow_signers(&[("alice", &alice), ("bob", &bob)]);
    let sock = p.path().join("agent.sock");
    let agent = Agent {
        child: Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent runs"),
        sock,
    };
    wait_until("the agent's socket", || agent.sock.exists());
    let added = Command::new("ssh-add")
        .arg(&bob)
        .env("SSH_AUTH_SOCK", &agent.sock)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-add runs");
    assert!(added.status.success(), "{added:?}");
    std::fs::remove_file(&bob).unwrap();

    let child = p.spawn(&["run", "gated"]);
    let run = p.wait_for("approval_requested", "go");
    approve(&p, &run, "alice", &alice).code(0);
    let public = bob.with_extension("pub");
    let mut c = p.cmd(&[
        "approve",
        &run,
        "go",
        "--as",
        "bob",
        "--key",
        public.to_str().unwrap(),
    ]);
    c.env("SSH_AUTH_SOCK", &agent.sock);
    let (code, out, err) = p.run_with(c).parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("granted: approved by alice, bob"), "{out}");
    assert_eq!(child.finish_within(Duration::from_secs(30)).parts().0, 0);
    assert_eq!(verify(&p, &run).0, 0);
}

/// Regression: with no terminal, ssh-keygen called the passphrase nobody typed "incorrect".
#[test]
fn signed_a_passphrase_key_without_a_terminal_fails_at_once_saying_what_works() {
    let p = Project::with_runbook("gated", GATED);
    let alice = keygen(&p, "alice", "ed25519", "correct horse");
    p.allow_signers(&[("alice", &alice)]);
    let child = p.spawn(&["run", "gated"]);
    let run = p.wait_for("approval_requested", "go");
    let mut c = p.cmd(&[
        "approve",
        &run,
        "go",
        "--as",
        "alice",
        "--key",
        alice.to_str().unwrap(),
    ]);
    c.env_remove("SSH_AUTH_SOCK")
        .env_remove("SSH_ASKPASS")
        .env_remove("DISPLAY");
    // SAFETY: between fork and exec the child only calls setsid(2), async-signal-safe: it
    // leaves the test's terminal, if it has one.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let (code, _, err) = p
        .spawn_with(c)
        .finish_within(Duration::from_secs(20))
        .parts();
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("a key with a passphrase is asked for on a terminal"),
        "{err}"
    );
    assert!(!err.contains("Enter passphrase"), "{err}");
    assert!(p.events_of(&run, "approval_received").is_empty());
    drop(child.interrupt_and_stop());
}
