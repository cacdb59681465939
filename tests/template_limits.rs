//! Templates are input too: whatever a runbook's templates hold, `check` and `run` answer in
//! seconds with an error that points at the template, never hang on a template that loops
//! for hours or makes gigabytes of text, and never panic on text that is not ASCII.

mod support;

use std::time::Duration;

use support::*;

/// Far longer than a render that stops at its limit takes, even in a debug build on a busy
/// machine; far shorter than the bombs below would take to finish.
const WITHIN: Duration = Duration::from_secs(30);

/// `runbook check runbooks/<name>.yaml` in a fresh project, which must end within [`WITHIN`].
fn check(name: &str, yaml: &str) -> Out {
    let p = Project::with_runbook(name, yaml).with_deadline(WITHIN);
    let out = p.run(&["check", &format!("runbooks/{name}.yaml")]);
    Out {
        stderr: p.redact(&out.stderr),
        ..out
    }
}

/// Regression: a multi-line `run:` whose first character is not ASCII, with a template error,
/// made `check` panic (exit 101) slicing the file inside the `é` while looking for the error.
#[test]
fn a_template_error_after_a_non_ascii_first_character_is_reported_not_a_panic() {
    let out = check(
        "accent",
        "\
scenario: accent
title: Accent
rto: 1h
steps:
  - id: a
    budget: 1m
    run: é {{ steps['x'].outputs. }}
      and more
    drill: run
",
    );
    out.code(2)
        .stderr_has("command: template syntax error: unexpected end of variable block")
        .stderr_has("[runbooks/accent.yaml:7:36]")
        .stderr_has("help: templates are minijinja")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
}

/// The same error after other characters of more than one byte, in each kind of scalar.
/// (miette counts the column of its `[file:line:column]` in bytes.)
#[test]
fn a_template_error_after_multi_byte_characters_is_reported_in_every_kind_of_scalar() {
    for (run, at) in [
        ("→ {{ nope. }}\n      two", "7:23"),
        ("\"→ {{ nope. }}\n      two\"", "7:24"),
        ("'🦀 {{ nope. }}\n      two'", "7:25"),
        ("|\n      e\u{301} {{ nope. }}\n      two", "8:20"),
        (">\n      \té {{ nope. }}\n      two", "8:20"),
        ("\"{{ nope. }} é\r\n      two\"", "7:20"),
    ] {
        let yaml = format!(
            "scenario: multi\ntitle: Multi\nrto: 1h\nsteps:\n  - id: a\n    budget: 1m\n    run: {run}\n    drill: run\n"
        );
        let out = check("multi", &yaml);
        assert_eq!(out.code, Some(2), "{run:?}\n{}", out.stderr);
        assert!(
            out.stderr.contains("command: template syntax error")
                && out.stderr.contains(&format!("[runbooks/multi.yaml:{at}]")),
            "{run:?} should be reported at {at}:\n{}",
            out.stderr
        );
    }
}
