//! Loops over an upstream step's output (`for_each: "{{ steps['discover'].outputs.regions }}"`),
//! through the real binary: `check` says at the `for_each:`'s line what is wrong with one, and
//! that a run does not expand one yet.

use crate::support::Project;

const OUTPUT_LOOPS: &str = r#"scenario: bad
title: Loops over an output
rto: 1h
steps:
  - id: discover
    budget: 1m
    run: "echo 'regions=[\"eu-1\",\"eu-2\"]'"
    drill: run
  - id: unknown
    needs: [discover]
    for_each: "{{ steps['discovr'].outputs.regions }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: loose
    for_each: "{{ steps['discover'].outputs.regions }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: sync
    needs: [discover]
    for_each: "{{ steps['discover'].outputs['regions'] }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
  - id: filtered
    needs: [discover]
    for_each: "{{ steps['discover'].outputs.regions | reverse }}"
    budget: 1m
    run: "echo {{ item }}"
    drill: run
"#;

#[test]
fn check_puts_each_mistake_of_a_loop_over_an_output_at_its_line() {
    let p = Project::new();
    p.write("runbooks/bad.yaml", OUTPUT_LOOPS);
    p.run(&["check", "runbooks/bad.yaml"])
        .code(2)
        .stderr_has("`for_each` of step `unknown` reads an output of `discovr`, which is no step")
        .stderr_has("[runbooks/bad.yaml:11:15]")
        .stderr_has("did you mean `discover`?")
        .stderr_has(
            "`for_each` of step `loose` reads an output of `discover`, which is not upstream of it",
        )
        .stderr_has("[runbooks/bad.yaml:16:15]")
        .stderr_has("add `needs: [discover]` to step `loose`")
        .stderr_has("`for_each` of step `sync` loops over output `regions` of `discover`")
        .stderr_has("[runbooks/bad.yaml:22:15]")
        .stderr_has(
            "`for_each` of step `filtered` is `{{ steps['discover'].outputs.regions | reverse }}`",
        )
        .stderr_has("[runbooks/bad.yaml:28:15]")
        .stderr_has("names it as `{{ steps['<id>'].outputs.<key> }}`, nothing more")
        .stderr_has("checked 1 runbook: 4 errors, 0 warnings");
}
