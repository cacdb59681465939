//! Attacks on issue 17's work (list variables, calls, finally:, the shipped scenarios), each
//! test named after what broke, through the real binary.

use crate::support::Project;

/// A loop over list variable `regions`, and a scalar `db` each instance echoes.
const REGIONS: &str = r#"scenario: regions
title: Every region
rto: 10m
vars:
  regions: [a, b]
  db: omni
steps:
  - id: sync
    for_each: "{{ regions }}"
    budget: 1m
    run: 'echo {{ item }} {{ db }}'
    drill: run
"#;

/// An environment file's list item holding a `,` ran as two instances (`[x, "y,z"]` ran
/// `sync[y]` and `sync[z]`), and a list given to a scalar variable reached the commands as
/// `x,y`: both are refused before the run, naming the variable.
#[test]
fn an_environment_list_with_a_comma_item_or_for_a_scalar_is_refused() {
    let p = Project::with_runbook("regions", REGIONS);
    p.write("runbooks/env/site.yaml", "vars:\n  regions: [x, \"y,z\"]\n");
    p.run_scenario(&["--env", "site"])
        .code(2)
        .stderr_has("item `y,z` of list variable `regions` in the environment file holds a `,`");
    p.write("runbooks/env/site.yaml", "vars:\n  db: [x, y]\n");
    p.run_scenario(&["--env", "site"]).code(2).stderr_has(
        "the environment file gives `db` a list, but `regions` declares it as one value",
    );
    assert!(p.run_ids().is_empty(), "nothing ran");
    // An environment serves every runbook: a list for a variable this one lacks is ignored.
    p.write(
        "runbooks/env/site.yaml",
        "vars:\n  other: [x, y]\n  regions: [p, q]\n",
    );
    let (code, _, err) = p.run_scenario(&["--env", "site"]).parts();
    assert_eq!(code, 0, "{err}");
}
