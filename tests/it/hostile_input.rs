//! Text the engine did not write, where it indexes and slices (issue 15): journal lines edited
//! with multi-byte text where the hash is cut out, and forged with a recomputed hash but fields
//! of the wrong shape. Each is a clear error, never a panic (exit 101). These are the inputs
//! that `clippy::indexing_slicing` and `string_slice`, denied in the modules they reach, guard
//! against.

use runbook::digest::sha256_hex;

use crate::support::Project;

const SMALL: &str = "scenario: small\ntitle: t\nrto: 1h\nsteps:\n  - id: a\n    budget: 10s\n    run: \"true\"\n    drill: run\n  - id: b\n    needs: [a]\n    budget: 10s\n    run: \"true\"\n    drill: run\n";

/// A finished run `r` of [`SMALL`], and its journal's lines.
fn finished_run() -> (Project, Vec<String>) {
    let p = Project::with_runbook("small", SMALL);
    p.run_scenario(&["--run-id", "r"]).code(0);
    let lines = p.journal("r").lines().map(str::to_owned).collect();
    (p, lines)
}

fn write_journal(p: &Project, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(p.run_dir("r").join("journal.jsonl"), text).expect("the journal is writable");
}

/// `verify` refuses the journal, saying `why`; `status` and `report` read it without a panic.
fn refused(p: &Project, why: &str) {
    let (code, out, err) = p.run(&["verify", "r"]).parts();
    let said = out + &err;
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("BROKEN at seq"), "{said}");
    assert!(said.contains(why), "expected {why:?} in: {said}");
    for cmd in ["status", "report"] {
        let (code, out, err) = p.run(&[cmd, "r"]).parts();
        assert_ne!(code, 101, "`{cmd}` panicked: {out}{err}");
        assert!(!err.contains("panicked"), "`{cmd}`: {err}");
    }
}

/// A line of the journal with the body re-hashed as the engine would: `body` without its
/// closing brace, then `,"hash":"…"}`.
fn sealed_line(body: &str) -> String {
    let hash = sha256_hex(body.as_bytes());
    let open = body.strip_suffix('}').expect("a JSON object");
    format!("{open},\"hash\":\"{hash}\"}}")
}

/// The hash of a journal line: the text between its last `,"hash":"` and the closing `"}`.
fn hash_of(line: &str) -> &str {
    let (_, tail) = line.rsplit_once(",\"hash\":\"").expect("a hash field");
    tail.strip_suffix("\"}")
        .expect("the line ends with its hash")
}

/// Multi-byte text of the hash's length where the hash was, and after it: a reader that
/// slices at byte offsets from the end of the line, or from the hash field, cuts a character.
#[test]
fn multibyte_text_where_a_journal_lines_hash_was_is_refused() {
    let (p, lines) = finished_run();
    let hash = hash_of(&lines[1]).to_owned();
    let tamperings = [
        // 21 three-byte characters and one byte: the hash's 64 bytes, no char boundary at 66
        // from the end but one.
        (
            lines[1].replace(&hash, &format!("{}x", "€".repeat(21))),
            "hash does not match",
        ),
        (lines[1].replace(&hash, "é"), "hash does not match"),
        (format!("{}é", lines[1]), "does not end with its hash"),
        (
            lines[1].replace(",\"hash\":\"", ",\"hashé\":\""),
            "no hash field",
        ),
        ("€".repeat(40), "no hash field"),
    ];
    for (line, why) in tamperings {
        let mut tampered = lines.clone();
        tampered[1] = line;
        write_journal(&p, &tampered);
        refused(&p, why);
    }
}

/// Forged lines whose hash and link are right but whose fields have the wrong shape: the
/// checks read `seq`, `type` and the seal's `data` as the JSON says, not as they expect.
#[test]
fn forged_journal_lines_with_fields_of_the_wrong_shape_are_refused() {
    let (p, lines) = finished_run();
    let last = lines.len() - 1;
    let seal = lines[last].clone();
    let reshaped = |from: &str, to: &str| {
        let (body, _) = seal.rsplit_once(",\"hash\":\"").expect("a hash field");
        let body = format!("{body}}}");
        assert!(body.contains(from), "{from} in {body}");
        sealed_line(&body.replacen(from, to, 1))
    };
    let seq = format!("\"seq\":{last}");
    let tamperings = [
        // The seal's `data` a string, not an object: it counts no records.
        (
            reshaped("\"data\":{", "\"data\":\"é\",\"was\":{"),
            "the seal counts null records",
        ),
        (
            reshaped(&seq, &format!("\"seq\":\"{last}é\"")),
            "expected seq",
        ),
        (reshaped(&seq, "\"seq\":[]"), "expected seq"),
    ];
    for (line, why) in tamperings {
        let mut tampered = lines.clone();
        tampered[last] = line;
        write_journal(&p, &tampered);
        refused(&p, why);
    }
}
