//! The shipped scenarios' decisions (issue 17, "the shipped scenarios use them"), run for real
//! on a sandbox of each test's own and judged by what the database holds afterwards:
//! region-failure branches on the replica's lag (promote within the RPO, restore the newest
//! backup past it); restore-database's `finally:` resumes writes only after a restore that
//! rolled back; database-corruption calls restore-database and carries the cleanup itself.

use serde_json::Value;

use crate::support::{Project, Sandbox, runbook};

/// A called runbook with a `finally:`: its cleanup resumes writes after a failed restore.
const CALLEE: &str = r#"scenario: callee
title: A restore with its own cleanup
rto: 30m
steps:
  - { id: restore, budget: 1m, run: "true", drill: run }
finally:
  - id: resume-after-rollback
    when: "'restore' in run.failed_steps"
    budget: 1m
    run: echo resumed
    drill: run
"#;

fn check(files: &[(&str, &str)], path: &str) -> crate::support::Out {
    let mut cmd = runbook(&[]);
    for (name, yaml) in files {
        cmd = cmd.file(&format!("runbooks/{name}.yaml"), yaml);
    }
    cmd.arg("check").arg(format!("runbooks/{path}.yaml")).run()
}

/// Calling a runbook whose `finally:` would not run is an error at the call, unless the
/// caller has a `finally:` of its own to carry the cleanup.
#[test]
fn a_called_runbooks_cleanup_must_be_carried_by_the_callers_finally() {
    let bare = "\
scenario: bare
title: Calls a runbook with cleanup, has none
rto: 1h
steps:
  - { id: first, budget: 1m, run: \"true\", drill: run }
  - { id: restore, needs: [first], runbook: callee }
";
    check(&[("callee", CALLEE), ("bare", bare)], "bare")
        .code(2)
        .stderr_has("runbook `callee` has `finally:` steps (`resume-after-rollback`), and this")
        .stderr_has("runbook has none to\n  | carry its cleanup")
        .stderr_has("[runbooks/bare.yaml:6:45]");

    let carried =
        format!("{bare}finally:\n  - {{ id: page, budget: 1m, run: echo paged, drill: run }}\n")
            .replace("scenario: bare", "scenario: carried");
    check(&[("callee", CALLEE), ("carried", &carried)], "carried").code(0);
    // The callee's cleanup is not part of the caller's plan; the caller's is.
    let plan = runbook(&["plan", "runbooks/carried.yaml", "--format", "json"])
        .file("runbooks/callee.yaml", CALLEE)
        .file("runbooks/carried.yaml", &carried)
        .run();
    plan.code(0);
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    let ids: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["first", "restore.restore", "page"]);
}

/// A libpq connection string for one server of the sandbox, by port (not by service: the
/// services are what a failover re-points).
fn at_port(port: &str) -> String {
    format!("host=127.0.0.1 port={port} user=postgres dbname=omni connect_timeout=5")
}

fn run_in(p: &Project, sb: &Sandbox, args: &[&str]) -> crate::support::Out {
    p.run_with(p.cmd_in(sb, args))
}

/// The `step_finished` of a step: its status, and the condition it saw.
#[track_caller]
fn finished(p: &Project, run: &str, step: &str) -> Value {
    p.events_of(run, "step_finished")
        .into_iter()
        .rfind(|e| e["data"]["step"] == step)
        .unwrap_or_else(|| panic!("no step_finished for {step}"))["data"]
        .clone()
}

#[track_caller]
fn insert_customer(sb: &Sandbox, conn: &str, id: u32, what: &str) {
    assert_eq!(
        sb.psql(
            conn,
            &format!(
                "INSERT INTO customers VALUES ({id}, '{what}', 'c{id}@example.test') RETURNING id"
            )
        ),
        Ok(id.to_string())
    );
}

fn customers_with(sb: &Sandbox, conn: &str, ids: &str) -> Result<String, String> {
    sb.psql(
        conn,
        &format!("SELECT string_agg(id::text, ',' ORDER BY id) FROM customers WHERE id IN ({ids})"),
    )
}

/// Issue 17: a replica further behind than the RPO failed region-failure at
/// check-replica-lag, and the region stayed down. Now the run takes the restore path: the
/// replica is fenced off from the old primary and promoted as before, the newest backup is
/// restored over it and verified, and only then do the clients write to it. What the backup
/// holds is there; what was written after it is lost (as accepted at the gate); the replica's
/// own data is kept aside; the old primary takes no write.
#[test]
fn region_failure_past_the_rpo_restores_the_newest_backup_over_the_promoted_replica() {
    let p = Project::new();
    let sb = p.own_sandbox();
    let old = sb.var("PGPORT");
    let new = sb.var("PG_REPLICA_PORT");

    // 7000 reaches the replica; then its replay stops, and 7001 (in the backup) and 7002
    // (after it) never do. The replica is now further behind than the backup is old.
    insert_customer(&sb, &at_port(&old), 7000, "replayed");
    crate::support::wait_until("the replica replays customers(7000)", || {
        customers_with(&sb, &at_port(&new), "7000") == Ok("7000".into())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    sb.psql("service=omni-replica", "SELECT pg_wal_replay_pause()")
        .unwrap();
    insert_customer(&sb, &at_port(&old), 7001, "in the backup");
    run_in(
        &p,
        &sb,
        &["run", "backup-database", "--env", "local", "--yes"],
    )
    .code(0);
    insert_customer(&sb, &at_port(&old), 7002, "after the backup");
    std::thread::sleep(std::time::Duration::from_secs(2));

    let out = run_in(
        &p,
        &sb,
        &[
            "run",
            "region-failure",
            "--env",
            "local",
            "--yes",
            "--var",
            "max_replica_lag=1s",
        ],
    );
    out.code(0);
    let run = out.id();
    assert_eq!(p.outputs(&run, "check-replica-lag")["within"], "false");
    assert_eq!(finished(&p, &run, "wait-replay")["status"], "skipped");
    for step in [
        "find-backup",
        "accept-data-loss",
        "restore-backup",
        "verify-restore",
    ] {
        assert_eq!(
            finished(&p, &run, step)["status"],
            "succeeded",
            "{step}: {}",
            p.log(&run, step)
        );
    }
    assert_eq!(p.outputs(&run, "fence-old-primary")["fenced"], "stopped");

    // The clients' service is the promoted replica, holding the backup: 7001 is there, 7002
    // (after the backup) is lost, and it takes writes.
    assert_eq!(
        customers_with(&sb, "service=omni", "7000,7001,7002"),
        Ok("7000,7001".into())
    );
    insert_customer(&sb, "service=omni", 7003, "after the failover");
    assert_eq!(
        sb.psql("service=omni", "SELECT inet_server_port()"),
        Ok(new.clone())
    );
    // The replica's own data is kept aside, not destroyed.
    assert_eq!(
        sb.psql(
            &at_port(&new),
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'omni_before_restore_%'"
        ),
        Ok("1".into())
    );
    // The old primary was fenced (and rebuilt as a standby of the new one): it takes nothing.
    let w = sb.psql(
        &at_port(&old),
        "INSERT INTO customers VALUES (7004, 'split', 'c7004@example.test')",
    );
    assert!(
        w.as_ref().is_err_and(|e| {
            e.contains("read-only transaction") || e.contains("Connection refused")
        }),
        "the old primary took a write after the failover: two writable primaries: {w:?}"
    );
}

/// Issue 17: within the RPO the restore path is skipped, each of its steps saying which
/// condition was false, and the promoted replica keeps everything it replayed.
#[test]
fn region_failure_within_the_rpo_promotes_and_skips_the_restore_path() {
    let p = Project::new();
    let sb = p.own_sandbox();
    let new = sb.var("PG_REPLICA_PORT");
    insert_customer(&sb, "service=omni", 7100, "before the failover");
    crate::support::wait_until("the replica replays customers(7100)", || {
        customers_with(&sb, &at_port(&new), "7100") == Ok("7100".into())
    });

    let out = run_in(
        &p,
        &sb,
        &["run", "region-failure", "--env", "local", "--yes"],
    );
    out.code(0);
    let run = out.id();
    assert_eq!(p.outputs(&run, "check-replica-lag")["within"], "true");
    for step in [
        "find-backup",
        "accept-data-loss",
        "restore-backup",
        "verify-restore",
    ] {
        let f = finished(&p, &run, step);
        assert_eq!(f["status"], "skipped", "{step}");
        assert!(
            f["condition"]["expr"]
                .as_str()
                .is_some_and(|e| e.contains("within == 'false'")),
            "{step}: {f}"
        );
    }
    assert_eq!(finished(&p, &run, "wait-replay")["status"], "succeeded");
    assert_eq!(
        customers_with(&sb, "service=omni", "7100"),
        Ok("7100".into())
    );
    insert_customer(&sb, "service=omni", 7101, "after the failover");
    assert_eq!(
        sb.psql(
            &at_port(&new),
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'omni_before_restore_%'"
        ),
        Ok("0".into())
    );
}

/// The application's writes in the sandbox: stopped while the maintenance flag exists.
fn writes_stopped(p: &Project) -> bool {
    p.path().join(".sandbox/app/maintenance").exists()
}

/// Issue 17: a restore that failed left the application's writes stopped with nobody told,
/// though the database was exactly as before. Now postgres/restore puts the set-aside database
/// back when it fails, and restore-database's `finally:` resumes writes after that rollback:
/// the database is the one that was serving, with the write made after the backup.
#[test]
fn restore_database_resumes_writes_after_a_restore_that_rolled_back() {
    let p = Project::new();
    let sb = p.own_sandbox();
    // A backup that cannot be restored: a table in it belongs to a role that is gone by the
    // time of the restore, and pg_restore stops at its ALTER ... OWNER.
    for sql in [
        "CREATE ROLE rb_gone",
        "CREATE TABLE gone_owned (id int)",
        "ALTER TABLE gone_owned OWNER TO rb_gone",
    ] {
        sb.psql("service=omni", sql).unwrap();
    }
    run_in(
        &p,
        &sb,
        &["run", "backup-database", "--env", "local", "--yes"],
    )
    .code(0);
    for sql in ["REASSIGN OWNED BY rb_gone TO postgres", "DROP ROLE rb_gone"] {
        sb.psql("service=omni", sql).unwrap();
    }
    insert_customer(&sb, "service=omni", 7200, "after the backup");

    let out = run_in(
        &p,
        &sb,
        &["run", "restore-database", "--env", "local", "--yes"],
    );
    out.code(1);
    let run = out.id();
    assert_eq!(finished(&p, &run, "stop-writes")["status"], "succeeded");
    assert_eq!(finished(&p, &run, "restore")["status"], "failed");
    let log = p.log(&run, "restore");
    assert!(log.contains("rolled back: omni_before_restore_"), "{log}");
    let cleanup = finished(&p, &run, "resume-writes-after-rollback");
    assert_eq!(cleanup["status"], "succeeded", "{cleanup}");

    // Writes resumed, onto the database as it was: the write after the backup is there, and
    // nothing is left set aside.
    assert!(
        !writes_stopped(&p),
        "writes stayed stopped after a rollback"
    );
    assert_eq!(
        customers_with(&sb, "service=omni", "7200"),
        Ok("7200".into())
    );
    assert_eq!(
        sb.psql(
            "service=omni",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'omni_before_restore_%'"
        ),
        Ok("0".into())
    );
}

/// restore-database's comments promise that a restore failing verification leaves writes
/// stopped; the cleanup must never resume writes onto unverified data.
#[test]
fn restore_database_keeps_writes_stopped_when_the_restored_data_fails_verification() {
    let p = Project::new();
    let sb = p.own_sandbox();
    run_in(
        &p,
        &sb,
        &["run", "backup-database", "--env", "local", "--yes"],
    )
    .code(0);
    // The backup's record of customers no longer matches what it restores.
    let (ok, said) = sb.sh(
        "m=$(ls -t .sandbox/backups/database/*.meta | head -n1) && sed -i 's/^table.public.customers.rows=.*/table.public.customers.rows=1/' \"$m\" && grep -c '^table.public.customers.rows=1$' \"$m\"",
    );
    assert!(ok, "{said}");

    let out = run_in(
        &p,
        &sb,
        &["run", "restore-database", "--env", "local", "--yes"],
    );
    out.code(1);
    let run = out.id();
    assert_eq!(finished(&p, &run, "restore")["status"], "succeeded");
    assert_eq!(finished(&p, &run, "verify")["status"], "failed");
    let cleanup = finished(&p, &run, "resume-writes-after-rollback");
    assert_eq!(cleanup["status"], "skipped", "{cleanup}");
    assert!(
        writes_stopped(&p),
        "writes were resumed onto data that failed verification"
    );
    assert!(
        p.events_of(&run, "step_started")
            .iter()
            .all(|e| e["data"]["step"] != "resume-writes"),
        "resume-writes ran after a failed verification"
    );
}

/// Issue 17: database-corruption copied restore-database's steps; now it calls it. When the
/// restored data fails verification, writes stay stopped (the called runbook's cleanup does
/// not run inside the call) and the caller's own `finally:` pages with what the run left.
#[test]
fn database_corruption_calls_restore_database_and_pages_when_verification_fails() {
    let p = Project::new();
    let sb = p.own_sandbox();
    run_in(
        &p,
        &sb,
        &["run", "backup-database", "--env", "local", "--yes"],
    )
    .code(0);
    let (ok, said) = sb.sh(
        "m=$(ls -t .sandbox/backups/database/*.meta | head -n1) && sed -i 's/^table.public.customers.rows=.*/table.public.customers.rows=1/' \"$m\" && grep -c '^table.public.customers.rows=1$' \"$m\"",
    );
    assert!(ok, "{said}");

    let out = run_in(
        &p,
        &sb,
        &["run", "database-corruption", "--env", "local", "--yes"],
    );
    out.code(1);
    let run = out.id();
    // The called steps ran under the call's prefix, in the called runbook's order.
    for (step, status) in [
        ("stop-writes", "succeeded"),
        ("restore.find-backup", "succeeded"),
        ("restore.stop-writes", "succeeded"),
        ("restore.restore", "succeeded"),
        ("restore.verify", "failed"),
        ("page-writes-stopped", "succeeded"),
    ] {
        assert_eq!(finished(&p, &run, step)["status"], status, "{step}");
    }
    let started: Vec<String> = p
        .events_of(&run, "step_started")
        .iter()
        .map(|e| e["data"]["step"].as_str().unwrap().to_owned())
        .collect();
    for never in [
        "restore.replay-transaction-logs",
        "restore.resume-writes",
        "restore.resume-writes-after-rollback",
    ] {
        assert!(
            !started.iter().any(|s| s == never),
            "{never} ran: {started:?}"
        );
    }
    assert!(writes_stopped(&p), "writes resumed onto unverified data");
    let log = p.read(".sandbox/notifications.log");
    assert!(
        log.contains("failed verification against the backup's checksums")
            && log.contains("must not resume on it"),
        "{log}"
    );
}
