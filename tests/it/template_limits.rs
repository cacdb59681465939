//! Templates are input too: whatever a runbook's templates hold, `check` and `run` answer in
//! seconds with an error that points at the template, never hang on a template that loops
//! for hours or makes gigabytes of text, and never panic on text that is not ASCII.

use std::time::Duration;

use crate::support::*;

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

/// Regression: nested loops of `range(100000)` made `check` render for hours (it renders every
/// template to find what it names).
#[test]
fn a_template_cpu_bomb_is_refused_by_check_within_seconds() {
    let out = check(
        "bomb",
        "\
scenario: bomb
title: Bomb
rto: 1h
steps:
  - id: a
    budget: 1m
    run: echo {% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}
    drill: run
",
    );
    out.code(2)
        .stderr_has("command: template does too much work: past the limit of 250000 instructions")
        .stderr_has("move loops and generated text into the step's script")
        .stderr_has("[runbooks/bomb.yaml:7:")
        .stderr_has("help: a template only fills values in")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
}

/// Regression: a template that makes tens of megabytes of text at once, or gigabytes a little
/// at a time, was rendered to the end (or until memory ran out).
#[test]
fn a_template_making_gigabytes_of_text_is_refused_by_check() {
    let out = check(
        "text-bomb",
        "\
scenario: text-bomb
title: Text bomb
rto: 1h
steps:
  - id: at-once
    budget: 1m
    run: echo {{ 'x' * 50000000 }}
    drill: run
  - id: a-little-at-a-time
    title: \"{% for i in range(100000) %}{{ 'y' * 100000 }}{% endfor %}\"
    budget: 1m
    run: echo
    drill: run
",
    );
    out.code(2)
        .stderr_has("command: template does too much work")
        .stderr_has("[runbooks/text-bomb.yaml:7:")
        .stderr_has("title: template does too much work")
        .stderr_has("[runbooks/text-bomb.yaml:10:")
        .stderr_has("checked 1 runbook: 2 errors, 0 warnings");
}

/// Regression: a bomb that only goes off with a step's real outputs passes `check` (which
/// sees placeholders) and hung the run when the step's command was rendered. The failure
/// says where the step's command is written.
#[test]
fn a_template_bomb_that_goes_off_only_at_run_time_fails_its_step_within_seconds() {
    let p = Project::with_runbook(
        "late-bomb",
        r#"
scenario: late-bomb
title: A bomb set off by an output
rto: 1h
steps:
  - id: arm
    budget: 1m
    run: echo go=yes >> "$RUNBOOK_OUTPUT"
    drill: run
  - id: fire
    needs: [arm]
    budget: 1m
    run: echo {% if steps.arm.outputs.go == 'yes' %}{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}{% endif %}
    drill: run
"#,
    )
    .with_deadline(WITHIN);
    p.run(&["check", "runbooks/late-bomb.yaml"]).code(0);
    let out = p.run_scenario(&["--run-id", "r1"]);
    out.code(1).stderr_has(
        "fire failed after 0s: runbooks/late-bomb.yaml:13: command: template does too much work: past the limit of 250000 instructions",
    );
    let finished = p.events_of("r1", "step_finished");
    let fire = finished
        .iter()
        .find(|e| e["data"]["step"] == "fire")
        .expect("`fire` finished");
    assert_eq!(fire["data"]["status"], "failed", "{fire}");
    assert!(
        fire["data"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("move loops and generated text into the step's script")),
        "{fire}"
    );
}
