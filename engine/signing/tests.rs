//! Tests of `signing`: the allowed-signers parser, tokens, the canonical statements, and
//! signatures made by the real `ssh-keygen` checked in process.

use super::*;

const ALICE: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFIiZ5jpcH4MoQcrtFk/qV8VDzFkWWmqN8lQgu6wi9ZZ alice@laptop";

#[test]
fn parses_principals_namespaces_and_comments() {
    let text = format!(
        "# the team\n\nalice,al namespaces=\"runbook-approval,git\" {ALICE}\nbob {ALICE}\n"
    );
    let s = AllowedSigners::parse(&text).unwrap();
    assert_eq!(s.entries.len(), 2);
    assert_eq!(s.entries[0].line, 3);
    assert_eq!(s.entries[0].principals, ["alice", "al"]);
    assert_eq!(
        s.entries[0].namespaces.as_deref(),
        Some(&["runbook-approval".to_string(), "git".to_string()][..])
    );
    let shared = s.shared_keys();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].1, ["alice", "al", "bob"]);
    assert_eq!(shared[0].2, [3, 4]);
}

#[test]
fn every_bad_line_is_reported_with_its_number() {
    let text = format!(
        "alice {ALICE}\nbob ssh-ed25519 AAAAnotbase64\ncarol\ndave namespaces=git,x {ALICE}\n"
    );
    let errs = AllowedSigners::parse(&text).unwrap_err();
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 4], "{errs:?}");
    assert!(errs[2].message.contains("double quotes"), "{errs:?}");
}

#[test]
fn a_key_limited_to_another_namespace_signs_for_nobody() {
    let text = format!("alice namespaces=\"git\" {ALICE}\n");
    let s = AllowedSigners::parse(&text).unwrap();
    let key = &s.entries[0].key;
    assert!(s.principals_of(key.key_data()).is_empty());
    assert!(!s.has_principal("alice"));
}

#[test]
fn a_token_round_trips_and_a_damaged_one_is_refused() {
    let signed = Signed {
        statement: Statement {
            run: "r1".into(),
            step: "approve".into(),
            decision: Decision::Approve,
            by: "bob".into(),
            comment: Some("go\nahead".into()),
            at: "2026-12-01T20:00:00Z".into(),
            request: "ab".repeat(32),
            value: None,
        },
        signature: "-----BEGIN SSH SIGNATURE-----\nx\n-----END SSH SIGNATURE-----".into(),
    };
    let token = signed.to_token();
    assert!(Signed::looks_like_token(&token));
    assert!(!token.contains(char::is_whitespace));
    assert_eq!(Signed::from_token(&format!("  {token}\n")).unwrap(), signed);
    assert!(Signed::from_token("y").is_err());
    let mut cut = token.clone();
    cut.truncate(token.len() / 2);
    assert!(Signed::from_token(&cut).is_err());
}

#[test]
fn the_canonical_statement_cannot_be_forged_through_a_comment() {
    let mut s = Statement {
        run: "r1".into(),
        step: "s".into(),
        decision: Decision::Deny,
        by: "bob".into(),
        comment: Some("x\"}\n{\"decision\":\"approve\"".into()),
        at: "t".into(),
        request: "h".into(),
        value: None,
    };
    let text = String::from_utf8(s.canonical()).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    s.comment = None;
    assert_ne!(
        s.canonical(),
        Statement {
            comment: Some(String::new()),
            ..s.clone()
        }
        .canonical()
    );
}

#[test]
fn an_inputs_value_is_signed_and_an_approval_keeps_its_signed_bytes() {
    let approval = Statement {
        run: "r1".into(),
        step: "pick".into(),
        decision: Decision::Approve,
        by: "alice".into(),
        comment: None,
        at: "t".into(),
        request: "h".into(),
        value: None,
    };
    // Journals signed before `value` existed still verify: an approval's bytes are unchanged.
    assert_eq!(
        String::from_utf8(approval.canonical()).unwrap(),
        "runbook approval v1\n{\"run\":\"r1\",\"step\":\"pick\",\"decision\":\"approve\",\"by\":\"alice\",\"comment\":null,\"at\":\"t\",\"request\":\"h\"}\n"
    );
    let answer = Statement {
        value: Some("replica-2".into()),
        ..approval.clone()
    };
    let expected = |value| Expected {
        run: "r1",
        step: "pick",
        decision: Decision::Approve,
        by: "alice",
        request: Some("h"),
        value,
    };
    assert_eq!(answer.mismatch(&expected(Some("replica-2"))), Ok(()));
    // A signature for one value is none for another, and a signed approval is no answer.
    assert_eq!(
        answer.mismatch(&expected(Some("replica-3"))),
        Err(Mismatch::Value {
            signed: Some("replica-2".into()),
            want: Some("replica-3".into())
        })
    );
    assert!(matches!(
        approval.mismatch(&expected(Some("replica-2"))),
        Err(Mismatch::Value { .. })
    ));
    assert!(matches!(
        answer.mismatch(&expected(None)),
        Err(Mismatch::Value { .. })
    ));
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(ok.success());
    key
}

fn public(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub")).unwrap()
}

#[test]
fn a_signature_by_ssh_keygen_verifies_in_process_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, mallory) = (
        keygen(dir.path(), "alice"),
        keygen(dir.path(), "bob"),
        keygen(dir.path(), "mallory"),
    );
    let signers = AllowedSigners::parse(&format!(
        "alice namespaces=\"runbook-approval\" {}bob {}",
        public(&alice),
        public(&bob)
    ))
    .unwrap();
    let statement = Statement {
        run: "r1".into(),
        step: "promote".into(),
        decision: Decision::Approve,
        by: "alice".into(),
        comment: None,
        at: "2026-12-01T20:00:00Z".into(),
        request: "ab".repeat(32),
        value: None,
    };
    let sig = sign(&alice, &statement.canonical()).unwrap();
    let signed = Signed {
        statement: statement.clone(),
        signature: sig.clone(),
    };
    let ok = verify_statement(&signers, &signed).unwrap();
    assert!(ok.fingerprint.starts_with("SHA256:"));

    // alice's key, claimed as bob's
    let as_bob = Signed {
        statement: Statement {
            by: "bob".into(),
            ..statement.clone()
        },
        signature: sig.clone(),
    };
    let e = verify_statement(&signers, &as_bob).unwrap_err().to_string();
    assert!(e.contains("gives to alice, not bob"), "{e}");

    // the statement changed after signing
    let altered = Signed {
        statement: Statement {
            decision: Decision::Deny,
            ..statement.clone()
        },
        signature: sig,
    };
    assert!(matches!(
        verify_statement(&signers, &altered),
        Err(Refusal::BadSignature(_))
    ));

    // a key nobody listed
    let msig = sign(&mallory, &statement.canonical()).unwrap();
    let e = verify_statement(
        &signers,
        &Signed {
            statement: statement.clone(),
            signature: msig,
        },
    )
    .unwrap_err();
    assert!(matches!(e, Refusal::UnknownKey(_)), "{e}");

    // a signature for git, not for us
    let git = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "git", "-f"])
        .arg(&bob)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut git = git;
    {
        use std::io::Write as _;
        git.stdin
            .take()
            .unwrap()
            .write_all(&statement.canonical())
            .unwrap();
    }
    let out = git.wait_with_output().unwrap();
    let e = verify(
        &signers,
        &statement.canonical(),
        &String::from_utf8_lossy(&out.stdout),
        "bob",
    )
    .unwrap_err();
    assert!(matches!(e, Refusal::Namespace(ref n) if n == "git"), "{e}");

    // a missing key says which
    let e = sign(&dir.path().join("nope"), b"x").unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
}
