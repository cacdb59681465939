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

fn finished(p: &Project, run: &str, step: &str) -> serde_json::Value {
    p.events_of(run, "step_finished")
        .into_iter()
        .rfind(|e| e["data"]["step"] == step)
        .unwrap_or_else(|| panic!("no step_finished for {step}"))["data"]
        .clone()
}

/// restore-database's `finally:` resumed writes whenever `restore` failed, taking every
/// failure for a rollback: when postgres/restore could not put the set-aside database back
/// (a session on it, here one held open while the restore's connection drops mid-way), writes
/// were resumed with no `omni` database at all. They resume only after a rollback that
/// happened (`rolled_back` out of the restore); otherwise they stay stopped for a person.
#[test]
fn restore_database_keeps_writes_stopped_when_the_rollback_could_not_put_the_database_back() {
    let p = Project::new();
    let sb = p.own_sandbox();
    // Enough rows that pg_restore is still loading them when the connection is cut.
    sb.psql(
        "service=omni",
        "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS pad FROM generate_series(1, 2000000) g",
    )
    .unwrap();
    p.run_with(p.cmd_in(&sb, &["run", "backup-database", "--env", "local", "--yes"]))
        .code(0);
    sb.psql(
        "service=omni",
        "INSERT INTO customers VALUES (7300, 'after the backup', 'c7300@example.test')",
    )
    .unwrap();

    // While pg_restore loads: a session opens on the database set aside (an investigator's),
    // then the restore's connection is cut.
    let interfere = r#"
maint() { psql -w -X -tA -d "service=omni dbname=postgres" -c "$1"; }
for _ in $(seq 1 1200); do
  [ "$(maint "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_restore' AND state = 'active'")" = 1 ] && break
  sleep 0.05
done
kept=$(maint "SELECT datname FROM pg_database WHERE datname LIKE 'omni_before_restore_%' AND datallowconn")
[ -n "$kept" ] || { echo "no database set aside while pg_restore ran"; exit 1; }
psql -w -X -d "service=omni dbname=$kept" -c 'SELECT pg_sleep(8)' >/dev/null 2>&1 &
sleep 0.5
maint "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_restore'" >/dev/null
echo "kept=$kept"
wait
"#;
    let (out, (ok, said)) = std::thread::scope(|s| {
        let interferer = s.spawn(|| sb.sh(interfere));
        let out =
            p.run_with(p.cmd_in(&sb, &["run", "restore-database", "--env", "local", "--yes"]));
        (out, interferer.join().unwrap())
    });
    assert!(ok, "{said}");
    out.code(1);
    let run = out.id();
    assert_eq!(finished(&p, &run, "restore")["status"], "failed");
    let log = p.log(&run, "restore");
    assert!(log.contains("could not put omni_before_restore_"), "{log}");
    let cleanup = finished(&p, &run, "resume-writes-after-rollback");
    assert_eq!(cleanup["status"], "skipped", "{cleanup}");
    assert!(
        p.path().join(".sandbox/app/maintenance").exists(),
        "writes were resumed though the database was not put back"
    );
    // What the database holds: no `omni`; the data, with the write after the backup, set aside.
    assert_eq!(
        sb.psql(
            "service=omni dbname=postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'omni'"
        ),
        Ok("0".into())
    );
    let kept = said.trim().trim_start_matches("kept=").to_owned();
    assert_eq!(
        sb.psql(
            &format!("service=omni dbname={kept}"),
            "SELECT id FROM customers WHERE id = 7300"
        ),
        Ok("7300".into())
    );
}

const SUB: &str = r#"scenario: sub
title: Sync each region
rto: 30m
vars:
  regions: [d1, d2]
steps:
  - { id: s, for_each: "{{ regions }}", budget: 3s, run: 'echo "s {{ item }} of {{ regions | join(''+'') }}" >> effects.txt', drill: run }
"#;

fn caller(with: &str) -> String {
    format!(
        "scenario: m\ntitle: Calls sub\nrto: 30m\nvars:\n  regions: [a, b]\nsteps:\n  - {{ id: rs, runbook: sub, budget: 20s, with: {{ regions: {with} }} }}\n"
    )
}

/// A call's `with: {regions: "{{ regions }}"}` was ignored by the called runbook's loop over
/// `regions`: it ran its own defaults (`d1`, `d2`) whatever the caller's items or `--var`.
/// Now the called loop has the caller's items, `--var` included; a template that is not a
/// list variable is an error at the value.
#[test]
fn a_call_passing_a_list_variable_loops_the_called_runbook_over_the_callers_items() {
    let p = Project::with_runbook("m", &caller("\"{{ regions }}\""));
    p.write("runbooks/sub.yaml", SUB);
    let (code, out, err) = p.run(&["plan", "m"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rs.s[a]") && out.contains("rs.s[b]"), "{out}");
    assert!(!out.contains("rs.s[d1]"), "{out}");
    let (code, _, err) = p.run_scenario(&["--var", "regions=x,y"]).parts();
    assert_eq!(code, 0, "{err}");
    let mut ran: Vec<String> = p.read("effects.txt").lines().map(str::to_owned).collect();
    ran.sort();
    assert_eq!(ran, ["s x of x+y", "s y of x+y"]);
    p.run_scenario(&["--var", "regions=x,x"])
        .code(2)
        .stderr_has("item `x` is given twice")
        .stderr_has("its items name the instances of `rs`");

    p.write("runbooks/m.yaml", &caller("\"{{ regions | reverse }}\""));
    p.run(&["check", "runbooks/m.yaml"])
        .code(2)
        .stderr_has("step `rs` sets list variable `regions` from `{{ regions | reverse }}`")
        .stderr_has("not `{{ <list variable> }}`")
        .stderr_has("[runbooks/m.yaml:7:");
    p.write("runbooks/m.yaml", &caller("\"p,q\""));
    let (code, out, err) = p.run(&["plan", "m"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rs.s[p]") && out.contains("rs.s[q]"), "{out}");
}

/// A step that ended while the engine was dead (its supervisor lived on and recorded the end,
/// with the instant) is timed to its end, not to the resume that reads it: no false budget
/// breach, and the reports' finish is when it ended. Before, a 1.5 s step resumed 4 s in read
/// "succeeded in 4s" and breached its 3 s budget.
#[test]
fn a_step_that_ended_while_the_engine_was_dead_is_timed_to_its_end() {
    let yaml = r#"scenario: away
title: A step ends while the engine is dead
rto: 10m
steps:
  - { id: s1, budget: 3s, run: "sleep 1.5; echo done >> effects.txt", drill: run }
  - { id: s2, needs: [s1], budget: 3s, run: "echo s2 >> effects.txt", drill: run }
"#;
    let p = Project::with_runbook("away", yaml);
    let mut child = p.spawn(&["run", "away", "--yes"]);
    let run = p.wait_for("step_started", "s1");
    child.kill().unwrap(); // SIGKILL: the engine only; the step supervisor lives on
    // Well past the step's end and its budget.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(p.path().join("effects.txt")).is_ok_and(|t| t.contains("done")) {
        assert!(std::time::Instant::now() < deadline, "the step never ended");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "done\ns2\n");
    let finished = p.events_of(&run, "step_finished");
    let s1 = finished.iter().find(|e| e["data"]["step"] == "s1").unwrap();
    let took = s1["data"]["duration_ms"].as_u64().unwrap();
    assert!((1_400..2_900).contains(&took), "{s1}");
    assert!(
        p.events_of(&run, "budget_breached").is_empty(),
        "a false breach"
    );
    let report = p.report_json(&run);
    let s1 = crate::support::report_step(&report, "s1");
    let shown = s1["duration_s"].as_f64().unwrap();
    assert!((1.4..2.9).contains(&shown), "{s1}");
    assert_eq!(s1["breached"], false, "{s1}");
}

/// Two steps that both ended while the engine was dead: the second was judged against the
/// resume's clock while the first one's end was handled, and so killed as timed out (or
/// breached) though it had succeeded long before. Both end first now, then the clock is read.
#[test]
fn two_steps_that_ended_while_the_engine_was_dead_both_succeed_on_resume() {
    let yaml = r#"scenario: away
title: Two steps end while the engine is dead
rto: 10m
steps:
  - { id: a, budget: 3s, timeout: 3s, run: "sleep 1.5; echo a >> effects.txt", drill: run }
  - { id: b, budget: 3s, timeout: 3s, run: "sleep 1.5; echo b >> effects.txt", drill: run }
  - { id: c, needs: [a, b], budget: 3s, run: "echo c >> effects.txt", drill: run }
"#;
    let p = Project::with_runbook("away", yaml);
    let mut child = p.spawn(&["run", "away", "--yes"]);
    let run = p.wait_for("step_started", "b");
    child.kill().unwrap(); // SIGKILL: the engine only; the step supervisor lives on
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string(p.path().join("effects.txt")).map_or(0, |t| t.lines().count()) < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the steps never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Past both timeouts.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let (code, _, err) = p.run(&["resume", &run, "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    let finished = p.events_of(&run, "step_finished");
    for id in ["a", "b"] {
        let f = finished.iter().find(|e| e["data"]["step"] == id).unwrap();
        assert_eq!(f["data"]["status"], "succeeded", "{f}");
        assert!(f["data"]["duration_ms"].as_u64().unwrap() < 2_900, "{f}");
    }
    assert!(
        p.events_of(&run, "budget_breached").is_empty(),
        "a false breach"
    );
    let mut lines: Vec<String> = p.read("effects.txt").lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines, ["a", "b", "c"]);
}
