//! Every rule the compiler enforces (docs/format.md), through the real
//! binary: `runbook check` exits 2 and says what is wrong, where (`[file:line:col]`, the source
//! line and a caret) and what would fix it. Each message is checked word for word in a snapshot.

use crate::support::{Out, Runbook, runbook};

/// `runbook check runbooks/<name>.yaml` in a fresh project holding that runbook.
fn check(name: &str, yaml: &str) -> Out {
    check_in(runbook(&[]), name, yaml)
}

fn check_in(project: Runbook, name: &str, yaml: &str) -> Out {
    let path = format!("runbooks/{name}.yaml");
    project.file(&path, yaml).arg("check").arg(&path).run()
}

/// A project with one library step, `db/restore`, and its script.
fn with_library() -> Runbook {
    runbook(&[])
        .file(
            "steps/db/restore.yaml",
            "\
title: Restore a database from a dump
inputs:
  file: { required: true, description: the dump to restore }
  database: { default: omni, description: the database to restore into }
budget: 30m
run: ./steps/db/restore.sh --file {{ inputs.file }} --database {{ inputs.database }}
drill: { with: { database: omni_drill } }
",
        )
        .script(
            "steps/db/restore.sh",
            "#!/usr/bin/env bash\nset -euo pipefail\necho \"restored $2 into $4\"\n",
        )
}

#[test]
fn a_valid_runbook_with_a_library_step_checks_clean() {
    let out = with_library()
        .file(
            "runbooks/db-restore.yaml",
            "\
scenario: db-restore
title: Restore the database
rto: 1h
rpo: 1h
roles:
  devops-lead: [alice, bob]
vars:
  database: omni
notify:
  devops-lead: echo {{ message }}
escalation:
  - { after: 30m, notify: devops-lead }
steps:
  - id: pick-backup
    budget: 5m
    run: ls -1 backups | tail -n 1
    drill: run
  - id: approve
    needs: [pick-backup]
    approval:
      prompt: \"Restore {{ steps['pick-backup'].outputs.file }} over {{ database }}?\"
      approvers: [devops-lead]
      timeout: 15m
    budget: 15m
  - id: restore
    needs: [approve]
    uses: db/restore
    with: { file: \"{{ steps['pick-backup'].outputs.file }}\", database: \"{{ database }}\" }
    estimate: 5m..10m..25m
  - id: verify
    needs: [restore]
    budget: 5m
    poll: { every: 10s, within: 5m }
    run: psql -d {{ database }} -c 'select 1'
    drill: { run: \"echo verify {{ database }}\" }
",
        )
        .arg("check")
        .run();
    out.code(0);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr, "checked 1 runbook, 1 library step: ok\n",
        "a valid project checks with no message but the summary"
    );
}

#[test]
fn unknown_keys_are_all_reported_at_once_with_did_you_mean() {
    let out = check(
        "unknown-keys",
        "\
scenario: unknown-keys
title: Unknown keys
rto: 1h
owner: ops
steps:
  - id: stop-writes
    budget: 10m
    tiemout: 20m
    run: ./stop.sh
    drill: run
  - id: approve
    needs: [stop-writes]
    approval:
      prompt: Go?
      approvers: [ops]
      minimum: 2
    budget: 5m
  - id: wait
    needs: [approve]
    budget: 5m
    poll: { every: 10s, whithin: 5m }
    run: ./wait.sh
    drill: run
",
    );
    out.code(2)
        .stderr_has("unknown key `owner` in runbook")
        .stderr_has("[runbooks/unknown-keys.yaml:4:1]")
        .stderr_has("unknown key `tiemout` in step `stop-writes`")
        .stderr_has("[runbooks/unknown-keys.yaml:8:5]")
        .stderr_has("help: did you mean `timeout`?")
        .stderr_has("unknown key `minimum` in approval of step `approve`")
        .stderr_has("[runbooks/unknown-keys.yaml:16:7]")
        .stderr_has("unknown key `whithin` in poll of step `wait`")
        .stderr_has("did you mean `within`?")
        .stderr_has("checked 1 runbook: 4 errors, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn duplicate_keys_are_all_reported_at_once() {
    let out = check(
        "duplicate-keys",
        "\
scenario: duplicate-keys
title: Duplicate keys
rto: 1h
vars:
  database: omni
  database: omni_drill
title: Duplicate keys, again
steps:
  - id: a
    budget: 1m
    run: \"true\"
    drill: run
    budget: 2m
",
    );
    out.code(2)
        .stderr_has("duplicate key `database`")
        .stderr_has("[runbooks/duplicate-keys.yaml:6:3]")
        .stderr_has("duplicate key `title`")
        .stderr_has("[runbooks/duplicate-keys.yaml:7:1]")
        .stderr_has("`title` is already set on line 2")
        .stderr_has("duplicate key `budget`")
        .stderr_has("[runbooks/duplicate-keys.yaml:13:5]")
        .stderr_has("checked 1 runbook: 3 errors, 0 warnings");
    assert!(
        !out.stderr.contains("DuplicateKeyPolicy"),
        "the parser's option names are not for users:\n{}",
        out.stderr
    );
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn malformed_step_ids_are_errors() {
    let out = check(
        "malformed-ids",
        "\
scenario: malformed-ids
title: Malformed ids
rto: 1h
steps:
  - id: Stop_Writes
    budget: 1m
    run: \"true\"
    drill: run
  - id: -restore
    budget: 1m
    run: \"true\"
    drill: run
  - id: \"verify db\"
    budget: 1m
    run: \"true\"
    drill: run
",
    );
    out.code(2)
        .stderr_has("step id `Stop_Writes` is malformed")
        .stderr_has("[runbooks/malformed-ids.yaml:5:9]")
        .stderr_has("step id `-restore` is malformed")
        .stderr_has("[runbooks/malformed-ids.yaml:9:9]")
        .stderr_has("step id `verify db` is malformed")
        .stderr_has("[runbooks/malformed-ids.yaml:13:9]")
        .stderr_has("checked 1 runbook: 3 errors, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn duplicate_step_ids_are_errors() {
    let out = check(
        "duplicate-ids",
        "\
scenario: duplicate-ids
title: Duplicate ids
rto: 1h
steps:
  - id: restore
    budget: 1m
    run: \"true\"
    drill: run
  - id: verify
    budget: 1m
    run: \"true\"
    drill: run
  - id: restore
    budget: 1m
    run: \"true\"
    drill: run
",
    );
    out.code(2)
        .stderr_has("step id `restore` is used twice")
        .stderr_has("[runbooks/duplicate-ids.yaml:13:9]")
        .stderr_has("the first is on line 5")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn needs_naming_a_missing_step_suggests_the_closest_id() {
    let out = check(
        "missing-need",
        "\
scenario: missing-need
title: Missing need
rto: 1h
steps:
  - id: pick-backup
    budget: 1m
    run: \"true\"
    drill: run
  - id: stop-writes
    budget: 1m
    run: \"true\"
    drill: run
  - id: restore
    needs: [stpo-writes, pick-bakup, monitoring]
    budget: 1m
    run: \"true\"
    drill: run
",
    );
    out.code(2)
        .stderr_has("step `restore` needs `stpo-writes`, which does not exist")
        .stderr_has("[runbooks/missing-need.yaml:14:13]")
        .stderr_has("help: did you mean `stop-writes`?")
        .stderr_has("step `restore` needs `pick-bakup`, which does not exist")
        .stderr_has("[runbooks/missing-need.yaml:14:26]")
        .stderr_has("help: did you mean `pick-backup`?")
        .stderr_has("step `restore` needs `monitoring`, which does not exist")
        .stderr_has("[runbooks/missing-need.yaml:14:38]")
        .stderr_has("checked 1 runbook: 3 errors, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_cycle_names_every_step_on_it() {
    let out = check(
        "cycle",
        "\
scenario: cycle
title: Cycle
rto: 1h
steps:
  - id: start
    budget: 1m
    run: \"true\"
    drill: run
  - id: restore
    needs: [start, verify]
    budget: 1m
    run: \"true\"
    drill: run
  - id: promote
    needs: [restore]
    budget: 1m
    run: \"true\"
    drill: run
  - id: verify
    needs: [promote]
    budget: 1m
    run: \"true\"
    drill: run
  - id: wait
    needs: [wait]
    budget: 1m
    run: \"true\"
    drill: run
",
    );
    out.code(2)
        .stderr_has("steps form a cycle: restore → verify → promote → restore")
        .stderr_has("[runbooks/cycle.yaml:10:20]")
        .stderr_has("steps form a cycle: wait → wait")
        .stderr_has("[runbooks/cycle.yaml:25:13]")
        .stderr_has("checked 1 runbook: 2 errors, 0 warnings");
    assert!(
        !out.stderr.contains("start →"),
        "a step merely upstream of a cycle is not on it"
    );
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_template_naming_an_undefined_variable_is_an_error() {
    let out = check(
        "undefined-var",
        "\
scenario: undefined-var
title: Undefined variable
rto: 1h
vars:
  database: omni
steps:
  - id: restore
    title: Restore {{ databse }}
    budget: 1m
    run: pg_restore --dbname {{ database }} {{ dump_file }}
    drill: run
",
    );
    out.code(2)
        .stderr_has("title: undefined variable `databse`")
        .stderr_has("[runbooks/undefined-var.yaml:8:23]")
        .stderr_has("help: did you mean `database`?")
        .stderr_has("command: undefined variable `dump_file`")
        .stderr_has("[runbooks/undefined-var.yaml:10:48]")
        .stderr_has("checked 1 runbook: 2 errors, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_template_using_an_output_of_a_step_not_upstream_is_an_error() {
    let out = check(
        "not-upstream",
        "\
scenario: not-upstream
title: Not upstream
rto: 1h
steps:
  - id: pick-backup
    budget: 1m
    run: ./latest.sh
    drill: run
  - id: notify
    budget: 1m
    run: ./notify.sh {{ steps['pick-backup'].outputs.file }}
    drill: run
  - id: restore
    needs: [pick-backup]
    budget: 1m
    run: ./restore.sh {{ steps['restore'].outputs.file }}
    drill: run
  - id: verify
    needs: [restore]
    budget: 1m
    run: ./verify.sh {{ steps['pick-backup'].outputs.file }} {{ steps.pick_backup.outputs.file }}
    drill: run
",
    );
    out.code(2)
        .stderr_has(
            "command: step `notify` uses an output of `pick-backup`, which is not upstream of it",
        )
        .stderr_has("[runbooks/not-upstream.yaml:11:32]")
        .stderr_has("help: add `pick-backup` to `needs`")
        .stderr_has("command: step `restore` refers to its own outputs")
        .stderr_has("[runbooks/not-upstream.yaml:16:33]")
        .stderr_has("command: no step `pick_backup` to take outputs from")
        .stderr_has("help: did you mean `pick-backup`?")
        .stderr_has("checked 1 runbook: 3 errors, 0 warnings");
    assert!(
        !out.stderr
            .contains("verify` uses an output of `pick-backup`"),
        "an output two steps upstream is visible"
    );
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_template_using_an_unknown_filter_is_an_error() {
    let out = check(
        "unknown-filter",
        "\
scenario: unknown-filter
title: Unknown filter
rto: 1h
vars:
  database: omni
steps:
  - id: restore
    budget: 1m
    run: pg_restore --dbname {{ database | shout }}
    drill: run
  - id: verify
    budget: 1m
    run: psql {{ database | upper | raw }}
    drill: run
",
    );
    out.code(2)
        .stderr_has("command: unknown filter `shout`")
        .stderr_has("[runbooks/unknown-filter.yaml:9:44]")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn uses_naming_no_library_step_suggests_one() {
    let out = check_in(
        with_library(),
        "unknown-uses",
        "\
scenario: unknown-uses
title: Unknown library step
rto: 1h
steps:
  - id: restore
    uses: db/restor
    with: { file: x.dump }
    budget: 10m
    drill: skip
  - id: backup
    uses: postgres/backup
    budget: 10m
    drill: skip
",
    );
    out.code(2)
        .stderr_has("`uses: db/restor` names no library step")
        .stderr_has("[runbooks/unknown-uses.yaml:6:11]")
        .stderr_has("help: did you mean `db/restore`?")
        .stderr_has("`uses: postgres/backup` names no library step")
        .stderr_has("[runbooks/unknown-uses.yaml:11:11]")
        .stderr_has("help: library steps live in steps/<system>/<name>.yaml; there are: db/restore")
        .stderr_has("checked 1 runbook: 2 errors, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_library_step_missing_a_required_input_is_an_error() {
    let out = check_in(
        with_library(),
        "missing-input",
        "\
scenario: missing-input
title: Missing input
rto: 1h
steps:
  - id: restore
    uses: db/restore
    with: { database: omni }
",
    );
    out.code(2)
        .stderr_has("step `restore` is missing input `file` of `db/restore`")
        .stderr_has("[runbooks/missing-input.yaml:6:11]")
        .stderr_has("help: add `with: { file: ... }` (the dump to restore)")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn an_unknown_input_in_with_is_an_error() {
    let out = check_in(
        with_library(),
        "unknown-input",
        "\
scenario: unknown-input
title: Unknown input
rto: 1h
steps:
  - id: restore
    uses: db/restore
    with:
      file: x.dump
      databse: omni
      force: true
",
    );
    out.code(2)
        .stderr_has("`db/restore` has no input `databse`")
        .stderr_has("[runbooks/unknown-input.yaml:9:7]")
        .stderr_has("help: did you mean `database`?")
        .stderr_has("`db/restore` has no input `force`")
        .stderr_has("[runbooks/unknown-input.yaml:10:7]")
        .stderr_has("help: `db/restore` takes: `database`, `file`")
        .stderr_has("checked 1 runbook: 2 errors, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_step_that_runs_a_command_without_drill_is_an_error() {
    let out = runbook(&[])
        .file(
            "steps/app/stop.yaml",
            "title: Stop the application\nbudget: 5m\nrun: ./steps/app/stop.sh\n",
        )
        .script("steps/app/stop.sh", "#!/bin/sh\nexit 0\n");
    let out = check_in(
        out,
        "no-drill",
        "\
scenario: no-drill
title: No drill
rto: 1h
steps:
  - id: stop-writes
    budget: 5m
    run: ./stop-writes.sh
  - id: stop-app
    uses: app/stop
  - id: approve
    needs: [stop-writes, stop-app]
    approval: { prompt: Go?, approvers: [ops] }
    budget: 5m
roles: { ops: [alice] }
",
    );
    out.code(2)
        .stderr_has("step `stop-writes` runs a command but declares no `drill`")
        .stderr_has("[runbooks/no-drill.yaml:5:9]")
        .stderr_has("step `stop-app` runs a command but declares no `drill`")
        .stderr_has("[runbooks/no-drill.yaml:8:9]")
        .stderr_has("checked 1 runbook: 2 errors, 0 warnings");
    assert!(
        !out.stderr.contains("`approve`"),
        "a gate needs no drill:\n{}",
        out.stderr
    );
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn durations_that_do_not_parse_are_errors() {
    let out = check(
        "bad-durations",
        "\
scenario: bad-durations
title: Bad durations
rto: two hours
rpo: an hour
notify:
  ops: echo {{ message }}
escalation:
  - { after: 30, notify: ops }
steps:
  - id: restore
    budget: 10x
    timeout: soon
    backoff: \"\"
    poll: { every: 10s, within: 5mins and change }
    run: \"true\"
    drill: run
  - id: approve
    approval: { prompt: Go?, approvers: [ops], timeout: forever }
    budget: 5m
roles: { ops: [alice] }
",
    );
    out.code(2)
        .stderr_has("`rto`: `two hours` is not a duration")
        .stderr_has("[runbooks/bad-durations.yaml:3:6]")
        .stderr_has("`rpo`: `an hour` is not a duration")
        .stderr_has("escalation `after`: `30` is not a duration")
        .stderr_has("[runbooks/bad-durations.yaml:8:14]")
        .stderr_has("`budget` of step `restore`: `10x` is not a duration")
        .stderr_has("[runbooks/bad-durations.yaml:11:13]")
        .stderr_has("`timeout` of step `restore`: `soon` is not a duration")
        .stderr_has("`backoff` of step `restore`: an empty duration")
        .stderr_has("`poll.within` of step `restore`: `5mins and change` is not a duration")
        .stderr_has("approval `timeout` of step `approve`: `forever` is not a duration")
        .stderr_has("help: write durations like `90s`, `15m`, `1h30m`")
        .stderr_has("checked 1 runbook: 8 errors, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn bad_estimates_are_errors() {
    let out = check(
        "bad-estimates",
        "\
scenario: bad-estimates
title: Bad estimates
rto: 1h
steps:
  - id: out-of-order
    budget: 10m
    estimate: 10m..5m
    run: \"true\"
    drill: run
  - id: single
    budget: 10m
    estimate: 5m
    run: \"true\"
    drill: run
  - id: too-many
    budget: 10m
    estimate: 1m..2m..3m..4m
    run: \"true\"
    drill: run
  - id: bad-unit
    budget: 10m
    estimate: 1m..2x..3m
    run: \"true\"
    drill: run
",
    );
    out.code(2)
        .stderr_has("`estimate` of step `out-of-order`: `10m..5m` is out of order: it must be min <= likely <= max")
        .stderr_has("[runbooks/bad-estimates.yaml:7:15]")
        .stderr_has("`estimate` of step `single`: `5m` is not `min..likely..max` or `min..max`")
        .stderr_has("[runbooks/bad-estimates.yaml:12:15]")
        .stderr_has("`estimate` of step `too-many`: `1m..2m..3m..4m` is not `min..likely..max` or `min..max`")
        .stderr_has("`estimate` of step `bad-unit`: `2x` is not a duration")
        .stderr_has("[runbooks/bad-estimates.yaml:22:15]")
        .stderr_has("checked 1 runbook: 4 errors, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn scenario_must_equal_the_file_stem() {
    let out = check(
        "region-failure",
        "\
scenario: region-fail
title: Region failure
rto: 1h
steps:
  - id: a
    budget: 1m
    run: \"true\"
    drill: run
",
    );
    out.code(2)
        .stderr_has("`scenario` is `region-fail` but the file is `region-failure.yaml`")
        .stderr_has("[runbooks/region-failure.yaml:1:11]")
        .stderr_has("help: rename the file or write `scenario: region-failure`")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

const OVER_RTO: &str = "\
scenario: over-rto
title: Over the RTO
rto: 1h
steps:
  - id: stop-writes
    budget: 10m
    run: \"true\"
    drill: run
  - id: restore
    needs: [stop-writes]
    budget: 45m
    run: \"true\"
    drill: run
  - id: notify
    needs: [stop-writes]
    budget: 5m
    run: \"true\"
    drill: run
  - id: verify
    needs: [restore, notify]
    budget: 15m
    run: \"true\"
    drill: run
";

#[test]
fn a_critical_path_over_the_rto_warns_and_names_the_path() {
    let out = check("over-rto", OVER_RTO);
    out.code(0)
        .stderr_has("the critical path takes 1h10m of budgets, over the RTO of 1h: stop-writes → restore → verify")
        .stderr_has("[runbooks/over-rto.yaml:3:6]")
        .stderr_has("checked 1 runbook: ok, 1 warning");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn strict_makes_a_critical_path_over_the_rto_an_error() {
    let out = runbook(&["check", "runbooks/over-rto.yaml", "--strict"])
        .file("runbooks/over-rto.yaml", OVER_RTO)
        .run();
    out.code(2)
        .stderr_has("the critical path takes 1h10m of budgets, over the RTO of 1h: stop-writes → restore → verify")
        .stderr_has("[runbooks/over-rto.yaml:3:6]")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_critical_path_within_the_rto_passes_strict() {
    let fits = OVER_RTO.replace("rto: 1h", "rto: 1h10m");
    let out = runbook(&["check", "--strict", "runbooks/over-rto.yaml"])
        .file("runbooks/over-rto.yaml", &fits)
        .run();
    out.code(0);
    assert_eq!(out.stderr, "checked 1 runbook: ok\n");
}

#[test]
fn all_errors_of_a_file_are_reported_in_one_go() {
    let out = check(
        "many-errors",
        "\
scenario: many-errors
title: Many errors
rto: 1h
vars:
  database: omni
steps:
  - id: stop-writes
    budget: 10 mins please
    run: ./stop.sh {{ databse }}
  - id: restore
    needs: [stop-write]
    budget: 30m
    run: ./restore.sh
    drill: run
  - id: restore
    budget: 5m
    run: ./again.sh
    drill: run
  - id: Verify
    needs: [restore]
    budget: 5m
    estimate: 9m..1m
    run: ./verify.sh {{ steps['stop-writes'].outputs.x }}
    drill: run
",
    );
    out.code(2)
        .stderr_has("step id `restore` is used twice")
        .stderr_has("step id `Verify` is malformed")
        .stderr_has("step `restore` needs `stop-write`, which does not exist")
        .stderr_has("`budget` of step `stop-writes`: `10 mins please` is not a duration")
        .stderr_has("command: undefined variable `databse`")
        .stderr_has("step `stop-writes` runs a command but declares no `drill`")
        .stderr_has("`estimate` of step `Verify`: `9m..1m` is out of order")
        .stderr_has(
            "command: step `Verify` uses an output of `stop-writes`, which is not upstream of it",
        )
        .stderr_has("checked 1 runbook: 8 errors, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn check_without_paths_reports_every_file_of_the_project() {
    let out = with_library()
        .file(
            "runbooks/first.yaml",
            "scenario: first\ntitle: First\nrto: 1h\nsteps:\n  - id: a\n    budget: 1m\n    run: \"true\"\n",
        )
        .file(
            "runbooks/second.yaml",
            "scenario: second\ntitle: Second\nrto: 1h\nsteps:\n  - id: a\n    needs: [b]\n    budget: 1m\n    run: \"true\"\n    drill: run\n",
        )
        .file(
            "runbooks/env/local.yaml",
            "auto_approve: true\nvars: { database: omni }\ninventroy: {}\n",
        )
        .arg("check")
        .run();
    out.code(2)
        .stderr_has("step `a` runs a command but declares no `drill`")
        .stderr_has("[runbooks/first.yaml:5:9]")
        .stderr_has("step `a` needs `b`, which does not exist")
        .stderr_has("[runbooks/second.yaml:6:13]")
        .stderr_has("unknown key `inventroy` in environment")
        .stderr_has("[runbooks/env/local.yaml:3:1]")
        .stderr_has("checked 2 runbooks, 1 library step, 1 environment: 3 errors, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_library_step_command_sees_only_its_inputs() {
    let out = runbook(&["check", "steps/db/dump.yaml"])
        .file(
            "steps/db/dump.yaml",
            "\
title: Dump a database
inputs:
  database: { required: true }
budget: 10m
run: pg_dump {{ inputs.database }} > {{ inputs.out }} {{ database }}
drill: run
",
        )
        .run();
    out.code(2)
        .stderr_has("command: undefined variable `database`")
        .stderr_has("[steps/db/dump.yaml:5:58]")
        .stderr_has("a library step sees only `inputs.<name>` and `env.<NAME>`")
        .stderr_has("checked 1 library step: 1 error, 0 warnings");
    insta::assert_snapshot!(out.stderr);
}

/// Regression: YAML syntax errors were all reported at line 1, column 1 (serde-saphyr gives no
/// byte offset for them).
#[test]
fn a_yaml_syntax_error_points_at_its_line() {
    let out = check(
        "syntax",
        "scenario: syntax\ntitle: Syntax\nrto: 1h\nsteps:\n  - id: a\n    needs: [b, c\n    budget: 1m\n",
    );
    out.code(2)
        .stderr_has("[runbooks/syntax.yaml:")
        .stderr_has("checked 1 runbook: 1 error, 0 warnings");
    assert!(
        !out.stderr.contains("[runbooks/syntax.yaml:1:1]"),
        "{}",
        out.stderr
    );
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn an_empty_file_is_an_error() {
    let out = check("empty", "# nothing yet\n");
    out.code(2)
        .stderr_has("[runbooks/empty.yaml:1:1]")
        .stderr_has("the file is empty")
        .stderr_has("a runbook needs at least `scenario`, `title`, `rto` and `steps`");
    insta::assert_snapshot!(out.stderr);
}

/// Durations past a year are refused where they are written; they used to overflow the
/// arithmetic of estimates and critical paths (a panic) or make a dry-run crawl.
#[test]
fn durations_past_a_year_are_errors_not_panics() {
    let out = check(
        "huge",
        "\
scenario: huge
title: Huge durations
rto: 1m
steps:
  - { id: a, budget: 18446744073709551615s, run: \"true\", drill: run }
  - { id: b, needs: [a], budget: 300000000000y, estimate: 1s..2s, run: \"true\", drill: run }
  - { id: c, needs: [b], budget: 1m, estimate: 300000000000y..400000000000y, run: \"true\", drill: run }
",
    );
    out.code(2);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("is longer than a year").count(),
        3,
        "{}",
        out.stderr
    );
    for line in [":5:", ":6:", ":7:"] {
        assert!(
            out.stderr.contains(line),
            "no error at {line}\n{}",
            out.stderr
        );
    }
}

/// A duration past a year is labelled "too long" with its own help, a malformed one "not a
/// duration": the compiler told them apart by the message's words until the error was typed.
#[test]
fn a_too_long_duration_and_a_malformed_one_get_their_own_label_and_help() {
    let out = check(
        "kinds",
        "\
scenario: kinds
title: Two kinds of bad duration
rto: 1m
steps:
  - { id: a, budget: 367d, run: \"true\", drill: run }
  - { id: b, needs: [a], budget: soon, run: \"true\", drill: run }
",
    );
    out.code(2);
    let stderr = &out.stderr;
    assert_eq!(stderr.matches("too long").count(), 1, "{stderr}");
    assert_eq!(
        stderr
            .matches("write it in hours or days, e.g. `4h` or `2d`")
            .count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("not a duration").count(), 2, "{stderr}");
    assert_eq!(
        stderr
            .matches("write durations like `90s`, `15m`, `1h30m`")
            .count(),
        1,
        "{stderr}"
    );
}

/// The YAML library's own words (Rust types, its API) are said in the format's.
#[test]
fn type_errors_are_said_in_the_formats_words() {
    for (yaml, says) in [
        (
            "vars: { n: ~ }\nsteps:\n  - { id: a, budget: 5s, run: \"true\", drill: run }\n",
            "a value is missing here (null)",
        ),
        (
            "steps:\n  - { id: a, budget: 5s, run: \"true\", drill: run, retries: -1 }\n",
            "expected a whole number, 0 or more",
        ),
        (
            "steps:\n  - { id: a, budget: 5s, run: \"true\", drill: run }\n  - { id: b, needs: a, budget: 5s, run: \"true\", drill: run }\n",
            "expected a list here",
        ),
        (
            "steps:\n  - { id: a, budget: 5s, run: [x], drill: run }\n",
            "expected a text value here",
        ),
        (
            "steps:\n  - { id: a, budget: 5s, run: \"true\", drill: run }\n---\nx: 1\n",
            "more than one YAML document",
        ),
    ] {
        let out = check(
            "words",
            &format!("scenario: words\ntitle: T\nrto: 1m\n{yaml}"),
        );
        out.code(2);
        assert!(out.stderr.contains(says), "{says:?} not in\n{}", out.stderr);
        for leak in [
            "Option<String>",
            "u32",
            "from_str_multiple",
            "sequence start",
            "scalar",
        ] {
            assert!(!out.stderr.contains(leak), "{leak:?} in\n{}", out.stderr);
        }
        assert!(
            out.stderr.contains("[runbooks/words.yaml:"),
            "{}",
            out.stderr
        );
    }
}

/// A var named as a name templates already have (`steps`, `item`, `run`, `env`, `inputs`,
/// `message`) would hide it, or be hidden, in every template, silently: an error at the var.
#[test]
fn a_var_named_as_a_template_name_is_an_error_at_it() {
    let out = check(
        "shadow",
        "scenario: shadow\ntitle: Shadows\nrto: 1h\nvars:\n  fine: a\n  item: b\n  run: c\nsteps:\n  - { id: s, budget: 1m, run: \"echo {{ fine }}\", drill: run }\n",
    );
    out.code(2)
        .stderr_has("variable `item` has the name of a loop's item, which templates see")
        .stderr_has("[runbooks/shadow.yaml:6:9]")
        .stderr_has("variable `run` has the name of the run's state")
        .stderr_has("[runbooks/shadow.yaml:7:8]")
        .stderr_has("rename the variable (e.g. `item_`)")
        .stderr_has("checked 1 runbook: 2 errors, 0 warnings");
}
