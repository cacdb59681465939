//! Point-in-time recovery through the shipped runbooks (issue 14 §2), each test on a sandbox
//! of its own: a recovery replaces the primary's data directory, and a broken archive_command
//! must not leak into the suite's shared sandbox.
//!
//! backup-database takes the base backup and checks the WAL archive; database-corruption with
//! `--var recovery_target_time=T` recovers the cluster to T from them. What is asserted is the
//! data: exactly the rows of T, the damaged cluster kept aside, a new timeline, a primary that
//! takes writes.

use std::time::Duration;

use crate::support::{Project, Sandbox};

/// A run may take this long (a base backup, a recovery, a 5 s health watch every 15 s).
const RUN_DEADLINE: Duration = Duration::from_secs(180);

/// Row count and an md5 of every row in key order: equal only for the same rows.
fn table_state(sb: &Sandbox, table: &str) -> String {
    sb.psql(
        "service=omni-primary",
        &format!(
            "SELECT count(*) || ' rows, md5 ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} t"
        ),
    )
    .unwrap_or_else(|e| panic!("read {table}: {e}"))
}

fn count(sb: &Sandbox, sql: &str) -> i64 {
    sb.psql("service=omni-primary", sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .parse()
        .unwrap()
}

/// The server's clock, ISO 8601 in UTC: the recovery target as a DBA would note it.
fn server_now(sb: &Sandbox) -> String {
    sb.psql(
        "service=omni-primary",
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    .unwrap()
}

/// Entries of the sandbox's PostgreSQL folder whose names start with `primary.damaged-`.
fn kept_aside(sb: &Sandbox) -> Vec<String> {
    let (ok, out) = sb.sh("ls \"$(readlink -f .sandbox/pg)\"");
    assert!(ok, "{out}");
    out.lines()
        .filter(|l| l.starts_with("primary.damaged-"))
        .map(str::to_owned)
        .collect()
}

fn backup(p: &Project, sb: &Sandbox) -> String {
    let out = p.run_with(p.cmd_in(sb, &["run", "backup-database", "--env", "local", "--yes"]));
    out.code(0);
    let run = out.id();
    let base = p.outputs(&run, "base-backup");
    assert_eq!(
        base["skipped"], "false",
        "the sandbox takes a base backup every run"
    );
    run
}

/// database-corruption used to restore the hourly dump whatever happened since: here the
/// rows written after the dump and before the damage come back, and the damage does not.
#[test]
fn database_corruption_recovers_exactly_the_rows_at_recovery_target_time() {
    let p = Project::new().with_deadline(RUN_DEADLINE);
    let sb = p.own_sandbox();
    backup(&p, &sb);

    // Rows A: written after the base backup, before the target.
    sb.psql(
        "service=omni",
        "INSERT INTO customers SELECT i, 'Customer ' || i, 'customer' || i || '@example.test' FROM generate_series(5001, 5010) AS i",
    )
    .unwrap();
    let orders_at_t = table_state(&sb, "orders");
    let customers_at_t = table_state(&sb, "customers");
    let t = server_now(&sb);
    std::thread::sleep(Duration::from_millis(1200));
    // The damage: orders deleted, and rows B written after it.
    sb.psql("service=omni", "DELETE FROM orders WHERE id <= 5000")
        .unwrap();
    sb.psql(
        "service=omni",
        "INSERT INTO customers SELECT i, 'Late ' || i, 'late' || i || '@example.test' FROM generate_series(6001, 6010) AS i",
    )
    .unwrap();
    assert_eq!(count(&sb, "SELECT count(*) FROM orders"), 5000);

    let target = format!("recovery_target_time={t}");
    let out = p.run_with(p.cmd_in(
        &sb,
        &[
            "run",
            "database-corruption",
            "--env",
            "local",
            "--yes",
            "--var",
            &target,
        ],
    ));
    out.code(0);
    let run = out.id();

    // Exactly the rows of T: A present, the deleted orders back, B absent.
    assert_eq!(table_state(&sb, "orders"), orders_at_t);
    assert_eq!(table_state(&sb, "customers"), customers_at_t);
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM customers WHERE id BETWEEN 5001 AND 5010"
        ),
        10
    );
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM customers WHERE id BETWEEN 6001 AND 6010"
        ),
        0
    );
    // A primary again, writable through the application's own service, on a new timeline.
    assert_eq!(
        sb.psql("service=omni", "SELECT pg_is_in_recovery()"),
        Ok("f".into())
    );
    sb.psql(
        "service=omni",
        "INSERT INTO customers VALUES (7001, 'After', 'after@example.test')",
    )
    .expect("the recovered primary takes writes");
    let recovered = p.outputs(&run, "restore.recover-to-time");
    assert_eq!(recovered["path"], "pitr");
    let timeline: u32 = recovered["timeline"].as_str().unwrap().parse().unwrap();
    assert!(timeline > 1, "the timeline moved: {recovered}");
    let checkpoint_timeline: u32 = sb
        .psql(
            "service=omni-primary",
            "SELECT timeline_id FROM pg_control_checkpoint()",
        )
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(checkpoint_timeline, timeline);
    // The recovery settings are gone from the files: a restart does not replay into the past.
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM pg_file_settings WHERE name LIKE 'recovery_target%' OR name = 'restore_command'"
        ),
        0
    );

    // The damaged cluster is kept aside, with the damage in it.
    let aside = kept_aside(&sb);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        recovered["kept_aside"]
            .as_str()
            .unwrap()
            .ends_with(&aside[0]),
        "{recovered}"
    );

    // The logical path said it was not taken; the recovery point is the target's distance
    // from the incident: the 1.2 s between T and the damage, plus the run's own seconds.
    assert!(
        p.log(&run, "restore.restore")
            .contains("skipped: point-in-time recovery")
    );
    assert!(
        p.log(&run, "restore.verify")
            .contains("skipped: point-in-time recovery")
    );
    let report = p.report_json(&run);
    assert_eq!(report["status"], "succeeded");
    let rpo = report["rpo_achieved_s"]
        .as_f64()
        .expect("the run reports its RPO");
    assert_eq!(
        Some(rpo),
        recovered["rpo_s"].as_str().unwrap().parse::<f64>().ok()
    );
    assert!((1.0..120.0).contains(&rpo), "rpo {rpo}");
    let md = p.run(&["report", &run, "--format", "md"]);
    md.code(0);
    assert!(
        md.stdout.contains("by point-in-time recovery") && md.stdout.contains(&t),
        "the report shows the decision on the target time:\n{}",
        md.stdout
    );
}

/// A target before the first base backup has nothing to recover from: it must fail while
/// the damaged primary still runs, not after it was stopped and moved aside.
#[test]
fn a_recovery_target_before_the_first_base_backup_fails_before_anything_is_stopped() {
    let p = Project::new().with_deadline(RUN_DEADLINE);
    let sb = p.own_sandbox();
    let before = server_now(&sb);
    std::thread::sleep(Duration::from_millis(1200));
    backup(&p, &sb);
    let customers = table_state(&sb, "customers");

    let target = format!("recovery_target_time={before}");
    let out = p.run_with(p.cmd_in(
        &sb,
        &[
            "run",
            "database-corruption",
            "--env",
            "local",
            "--yes",
            "--var",
            &target,
        ],
    ));
    out.code(1);
    let run = out.id();
    let log = p.log(&run, "restore.check-recovery-target");
    assert!(
        log.contains("is before the oldest base backup") && log.contains("nothing was stopped"),
        "check-recovery-target log:\n{log}"
    );
    let (ok, status) = sb.sh(".sandbox/bin/pg-ctl primary status");
    assert!(ok, "the primary still runs: {status}");
    assert_eq!(
        sb.psql("service=omni", "SELECT pg_is_in_recovery()"),
        Ok("f".into())
    );
    assert_eq!(table_state(&sb, "customers"), customers);
    assert!(kept_aside(&sb).is_empty());
    assert!(
        p.events_of(&run, "step_started")
            .iter()
            .all(|e| e["data"]["step"] != "restore.recover-to-time")
    );
}

/// A broken archive_command does not stop PostgreSQL: it only stops archiving, and the
/// hourly backup job is where that has to be noticed, by name.
#[test]
fn backup_database_fails_naming_failed_count_when_wal_archiving_is_broken() {
    let p = Project::new().with_deadline(RUN_DEADLINE);
    let sb = p.own_sandbox();
    sb.psql(
        "service=omni-primary",
        "ALTER SYSTEM SET archive_command = 'false'",
    )
    .unwrap();
    sb.psql("service=omni-primary", "SELECT pg_reload_conf()")
        .unwrap();

    let out = p.run_with(p.cmd_in(&sb, &["run", "backup-database", "--env", "local", "--yes"]));
    out.code(1);
    let run = out.id();
    let log = p.log(&run, "archive-wal");
    assert!(
        log.contains("WAL archiving is failing") && log.contains("failed_count rose from 0 to"),
        "archive-wal log:\n{log}"
    );
    assert_eq!(p.outputs(&run, "archive-wal")["failed_count"], "1");
    let report = p.report_json(&run);
    assert_eq!(
        crate::support::report_step(&report, "archive-wal")["status"],
        "failed"
    );
    // No base backup is taken on top of an archive that cannot continue it.
    assert_ne!(
        crate::support::report_step(&report, "base-backup")["status"],
        "succeeded"
    );
}

/// A drill must not stop production: restore-database's drill with a target rehearses the
/// recovery in the scratch folder on a free port, and the damaged primary is left as it was.
#[test]
fn a_drill_with_recovery_target_time_rehearses_in_a_scratch_dir_and_leaves_the_primary_alone() {
    let p = Project::new().with_deadline(RUN_DEADLINE);
    let sb = p.own_sandbox();
    backup(&p, &sb);
    let t = server_now(&sb);
    std::thread::sleep(Duration::from_millis(1200));
    sb.psql("service=omni", "DELETE FROM orders WHERE id <= 5000")
        .unwrap();
    let damaged = table_state(&sb, "orders");

    let target = format!("recovery_target_time={t}");
    let out = p.run_with(p.cmd_in(
        &sb,
        &[
            "run",
            "restore-database",
            "--drill",
            "--env",
            "local",
            "--yes",
            "--var",
            &target,
        ],
    ));
    out.code(0);
    let run = out.id();
    let rehearsed = p.outputs(&run, "recover-to-time");
    assert_eq!(rehearsed["path"], "pitr");
    let timeline: u32 = rehearsed["timeline"].as_str().unwrap().parse().unwrap();
    assert!(timeline > 1, "the rehearsal promoted a copy: {rehearsed}");
    assert!(
        p.log(&run, "recover-to-time").contains("rehearsal passed"),
        "{}",
        p.log(&run, "recover-to-time")
    );
    // Production: the same server, still on timeline 1, the damage untouched, nothing aside.
    assert_eq!(table_state(&sb, "orders"), damaged);
    assert_eq!(
        sb.psql(
            "service=omni-primary",
            "SELECT timeline_id FROM pg_control_checkpoint()"
        ),
        Ok("1".into())
    );
    assert!(kept_aside(&sb).is_empty());
    // The rehearsal's copy is gone, its log kept; no server of it is left running.
    let (_, left) = sb.sh("ls -d \"$(readlink -f .sandbox/pg)\"/pitr-*");
    assert!(
        left.lines().all(|l| l.ends_with(".log")),
        "left behind: {left}"
    );
}
