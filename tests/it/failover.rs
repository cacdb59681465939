//! The failover scenarios (issue 14 §1 and the DNS half of §4), run for real on a sandbox of
//! each test's own: region-failure and datacenter-failure fence the old primary, leave exactly
//! one writable primary behind the clients' service, re-point the backups and protect the new
//! primary; the DNS steps bound the propagation wait by the old record's TTL.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{Project, Sandbox};

/// A libpq connection string for one server of the sandbox, by port (not by service: the
/// services are what a failover re-points).
fn at_port(port: &str) -> String {
    format!("host=127.0.0.1 port={port} user=postgres dbname=omni connect_timeout=5")
}

/// The value of `key=` in the `[service]` section of the sandbox's pg_service.conf.
fn service_value(p: &Project, service: &str, key: &str) -> String {
    let text = p.read(".sandbox/pg_service.conf");
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == format!("[{service}]");
        } else if in_section && let Some(v) = line.strip_prefix(&format!("{key}=")) {
            return v.to_owned();
        }
    }
    panic!("no {key}= in [{service}] of pg_service.conf:\n{text}")
}

/// A write on the server at this port: Err when it refuses it (read-only, or down).
fn write_at(sb: &Sandbox, port: &str, id: u32) -> Result<String, String> {
    sb.psql(
        &at_port(port),
        &format!("INSERT INTO customers VALUES ({id}, 'split {id}', 'split{id}@example.test')"),
    )
}

/// Asserts that the server at this port refuses a write because it cannot take one (it is a
/// standby, or it is down), not for any other reason; says which.
#[track_caller]
fn assert_refuses_writes(sb: &Sandbox, port: &str, id: u32) -> &'static str {
    match write_at(sb, port, id) {
        Ok(v) => panic!("the server at port {port} took a write ({v}): two writable primaries"),
        Err(e) if e.contains("read-only transaction") => "read-only",
        Err(e) if e.contains("Connection refused") => "down",
        Err(e) => panic!("the write at port {port} failed for another reason: {e}"),
    }
}

fn run_in(p: &Project, sb: &Sandbox, args: &[&str]) -> crate::support::Out {
    p.run_with(p.cmd_in(sb, args))
}

/// Issue 14 §1: region-failure promoted the replica while the old primary still ran, and
/// customers(5001) could then be inserted on both servers. Now the old primary is fenced first,
/// only the clients' service takes the write, the backups follow the new primary, a standby
/// streams from it and the canary row names the run.
#[test]
fn region_failure_leaves_one_writable_primary_and_the_backups_and_a_standby_on_it() {
    let p = Project::new();
    let sb = p.own_sandbox();
    let old = sb.var("PGPORT");
    let new = sb.var("PG_REPLICA_PORT");

    let out = run_in(
        &p,
        &sb,
        &["run", "region-failure", "--env", "local", "--yes"],
    );
    out.code(0);
    let run = out.id();
    assert_eq!(p.outputs(&run, "fence-old-primary")["fenced"], "stopped");

    // One writable primary: the clients' service takes customers(5001), once; the server that
    // was the primary refuses it.
    assert_eq!(
        sb.psql(
            "service=omni",
            "INSERT INTO customers VALUES (5001, 'after failover', 'c5001@example.test') RETURNING id"
        ),
        Ok("5001".into())
    );
    assert_eq!(assert_refuses_writes(&sb, &old, 5001), "read-only");
    let again = sb.psql(
        "service=omni",
        "INSERT INTO customers VALUES (5001, 'x', 'x@example.test')",
    );
    assert!(
        again.as_ref().is_err_and(|e| e.contains("duplicate key")),
        "customers(5001) went in twice: {again:?}"
    );
    assert_eq!(
        sb.psql("service=omni", "SELECT pg_is_in_recovery()"),
        Ok("f".into())
    );

    // The canary row of this run, on the new primary.
    assert_eq!(
        sb.psql(
            &at_port(&new),
            &format!("SELECT count(*) FROM runbook_canary WHERE run_id = '{run}'")
        ),
        Ok("1".into())
    );

    // Protected: the old primary's data directory, rebuilt, streams from the new primary.
    assert_eq!(
        sb.psql(
            &at_port(&new),
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
        ),
        Ok("1".into())
    );
    assert_eq!(
        sb.psql(&at_port(&old), "SELECT pg_is_in_recovery()"),
        Ok("t".into())
    );

    // The backups follow: omni-primary names the new primary, and a backup taken now holds the
    // row written after the failover.
    assert_eq!(service_value(&p, "omni-primary", "port"), new);
    assert_eq!(service_value(&p, "omni", "port"), new);
    run_in(
        &p,
        &sb,
        &["run", "backup-database", "--env", "local", "--yes"],
    )
    .code(0);
    let (ok, dump) = sb.sh(
        "f=$(ls -t .sandbox/backups/database/*.dump | head -n1) && pg_restore --data-only --table=customers -f - \"$f\"",
    );
    assert!(ok, "{dump}");
    assert!(
        dump.lines().any(|l| l.starts_with("5001\tafter failover")),
        "the backup after the failover lacks customers(5001): it did not dump the new primary"
    );
}

/// Issue 14 §1: a paused WAL replay passed check-replica-lag, and the promotion then threw
/// away the WAL it held back. wait-replay now stops the run before anything is promoted.
#[test]
fn a_paused_replay_stops_region_failure_before_the_promotion() {
    let p = Project::new();
    let sb = p.own_sandbox();
    sb.psql("service=omni-replica", "SELECT pg_wal_replay_pause()")
        .unwrap();

    let out = run_in(
        &p,
        &sb,
        &["run", "region-failure", "--env", "local", "--yes"],
    );
    out.code(1);
    let run = out.id();
    assert!(
        p.log(&run, "wait-replay").contains("WAL replay is paused"),
        "{}",
        p.log(&run, "wait-replay")
    );
    assert_eq!(
        sb.psql("service=omni-replica", "SELECT pg_is_in_recovery()"),
        Ok("t".into()),
        "the replica was promoted with its replay paused"
    );
    assert!(
        p.events_of(&run, "step_started")
            .iter()
            .all(|e| e["data"]["step"] != "promote-replica")
    );
}

/// Issue 14 §1: when the old primary cannot be reached at all (its region is gone), the fence
/// says so plainly, and the failover goes on to a writable new primary.
#[test]
fn an_unreachable_old_primary_is_reported_and_the_failover_goes_on() {
    let p = Project::new();
    let sb = p.own_sandbox();
    // A primary that took writes until it went: the replica has replayed a transaction, so
    // the lag check can say how old its data is.
    write_at(&sb, &sb.var("PGPORT"), 4001).unwrap();
    crate::support::wait_until("the replica replays the last write", || {
        sb.psql(
            "service=omni-replica",
            "SELECT count(*) FROM customers WHERE id = 4001",
        ) == Ok("1".into())
    });
    let (ok, out) = sb.sh(".sandbox/bin/pg-ctl primary stop && \
         sed -i '/^\\[omni-primary\\]/,/^$/ s/^port=.*/port=1/' .sandbox/pg_service.conf");
    assert!(ok, "{out}");
    let gone = sb.psql("service=omni-primary", "SELECT 1");
    assert!(
        gone.as_ref()
            .is_err_and(|e| e.contains("Connection refused")),
        "{gone:?}"
    );

    let out = run_in(
        &p,
        &sb,
        &["run", "region-failure", "--env", "local", "--yes"],
    );
    out.code(0);
    let run = out.id();
    assert_eq!(p.outputs(&run, "probe-old-primary")["state"], "unreachable");
    assert_eq!(
        p.outputs(&run, "fence-old-primary")["fenced"],
        "unreachable"
    );
    assert!(
        p.log(&run, "fence-old-primary")
            .contains("may come back writable"),
        "{}",
        p.log(&run, "fence-old-primary")
    );
    assert_eq!(
        sb.psql(
            "service=omni",
            "INSERT INTO customers VALUES (5001, 'after failover', 'c5001@example.test') RETURNING id"
        ),
        Ok("5001".into())
    );
}

/// Simulates what an automatic failover does: the replica promoted and the clients' service
/// re-pointed at it.
fn automatic_failover(p: &Project, sb: &Sandbox) {
    assert_eq!(
        sb.psql("service=omni-replica", "SELECT pg_promote(true, 60)"),
        Ok("t".into())
    );
    let new = sb.var("PG_REPLICA_PORT");
    let (ok, out) = sb.sh(&format!(
        "sed -i '/^\\[omni\\]/,/^$/ s/^port=.*/port={new}/' .sandbox/pg_service.conf"
    ));
    assert!(ok, "{out}");
    assert_eq!(service_value(p, "omni", "port"), new);
}

/// Issue 14 §1: datacenter-failure trusted the automatic failover, which is where split brains
/// come from. An old primary left running and writable is now fenced by the run.
#[test]
fn datacenter_failure_fences_an_old_primary_the_automatic_failover_left_writable() {
    let p = Project::new();
    let sb = p.own_sandbox();
    let old = sb.var("PGPORT");
    // check-data-consistency compares with the latest backup: there is one.
    run_in(
        &p,
        &sb,
        &["run", "backup-database", "--env", "local", "--yes"],
    )
    .code(0);
    automatic_failover(&p, &sb);
    // The split brain the automatic failover left: both servers take writes.
    assert_eq!(write_at(&sb, &old, 6001), Ok(String::new()));
    assert_eq!(
        sb.psql("service=omni", "SELECT pg_is_in_recovery()"),
        Ok("f".into())
    );

    let out = run_in(
        &p,
        &sb,
        &["run", "datacenter-failure", "--env", "local", "--yes"],
    );
    out.code(0);
    let run = out.id();
    assert_eq!(p.outputs(&run, "probe-old-primary")["state"], "writable");
    assert_eq!(p.outputs(&run, "fence-old-primary")["fenced"], "stopped");
    assert_eq!(assert_refuses_writes(&sb, &old, 6002), "down");
    assert!(
        p.read(".sandbox/pg/primary/standby.signal").is_empty()
            && p.path().join(".sandbox/pg/primary/standby.signal").exists(),
        "no standby.signal: a restart brings the old primary back writable"
    );
    assert_eq!(
        sb.psql(
            "service=omni",
            "INSERT INTO customers VALUES (6002, 'after failover', 'c6002@example.test') RETURNING id"
        ),
        Ok("6002".into())
    );
}

/// The other half: an old primary that went down with its data centre needs no fence, and the
/// run passes.
#[test]
fn datacenter_failure_passes_when_the_old_primary_is_already_down() {
    let p = Project::new();
    let sb = p.own_sandbox();
    run_in(
        &p,
        &sb,
        &["run", "backup-database", "--env", "local", "--yes"],
    )
    .code(0);
    let (ok, out) = sb.sh(".sandbox/bin/pg-ctl primary stop");
    assert!(ok, "{out}");
    automatic_failover(&p, &sb);

    let out = run_in(
        &p,
        &sb,
        &["run", "datacenter-failure", "--env", "local", "--yes"],
    );
    out.code(0);
    let run = out.id();
    assert_eq!(
        p.outputs(&run, "fence-old-primary")["fenced"],
        "unreachable"
    );
    assert!(
        p.log(&run, "fence-old-primary").contains("nothing to do"),
        "{}",
        p.log(&run, "fence-old-primary")
    );
}

/// Issue 14 §4: nothing lowered the DNS record's TTL ahead of a failover. The preparation
/// runbook does, after checking the standby, the archive and the fence's path.
#[test]
fn prepare_region_failover_lowers_the_dns_ttl_and_checks_the_fence_path() {
    let p = Project::new();
    let sb = p.own_sandbox();
    assert_eq!(p.read(".sandbox/dns/api.omni.sandbox.ttl").trim(), "300");
    let out = run_in(
        &p,
        &sb,
        &["run", "prepare-region-failover", "--env", "local", "--yes"],
    );
    out.code(0);
    assert_eq!(p.read(".sandbox/dns/api.omni.sandbox.ttl").trim(), "60");
    assert_eq!(
        p.read(".sandbox/dns/api.omni.sandbox").trim(),
        "us.omni.sandbox"
    );
    let run = out.id();
    assert_eq!(p.outputs(&run, "lower-dns-ttl")["old_ttl_s"], "300");
    // The preparation stopped nothing.
    assert_eq!(
        sb.psql("service=omni-primary", "SELECT pg_is_in_recovery()"),
        Ok("f".into())
    );
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Issue 14 §4: the propagation wait was bounded by nothing but its hour. A record still
/// resolving elsewhere past the change + the old TTL + grace now fails at once, naming the TTL.
#[test]
fn dns_propagation_fails_at_once_past_the_old_records_ttl() {
    let changed_at = (now_s() - 1000).to_string();
    let yaml = format!(
        r#"scenario: propagation
title: t
rto: 2h
steps:
  - id: wait
    uses: dns/check
    with:
      record: api.omni.example.com
      target: api-eu.omni.example.com
      lookup_cmd: echo api-us.omni.example.com
      within: 10m
      interval: 1s
      old_ttl: "300"
      changed_at: "{changed_at}"
      grace: 60s
"#
    );
    let p = Project::with_runbook("propagation", &yaml).with_repo_steps();
    let out = p.run_scenario(&[]);
    out.code(1);
    assert!(
        out.elapsed < Duration::from_secs(60),
        "it waited out the window: {:?}",
        out.elapsed
    );
    let log = p.log(&out.id(), "wait");
    assert!(
        log.contains("past the old record's TTL of 300s plus 60s of grace"),
        "{log}"
    );
}

/// Issue 14 §4: dns/update set the new record's TTL and ignored the old one, which is what
/// decides how long clients keep the old answer. It now reads it before the change.
#[test]
fn dns_update_reads_the_old_records_ttl_before_changing_it() {
    let yaml = r#"scenario: dns
title: t
rto: 1h
steps:
  - id: update
    uses: dns/update
    with:
      record: api.omni.example.com
      target: api-eu.omni.example.com
      lookup_cmd: cat dns/record
      ttl_cmd: cat dns/ttl
      command: printf '%s\n' "$DNS_TARGET" > dns/record && printf '%s\n' "$DNS_TTL" > dns/ttl
    drill: run
"#;
    let p = Project::with_runbook("dns", yaml).with_repo_steps();
    p.write("dns/record", "api-us.omni.example.com\n");
    p.write("dns/ttl", "3600\n");
    let before = now_s();
    let out = p.run_scenario(&[]);
    out.code(0);
    let o = p.outputs(&out.id(), "update");
    assert_eq!(o["changed"], "true");
    assert_eq!(o["old_ttl_s"], "3600");
    let at: u64 = o["changed_at"].as_str().unwrap().parse().unwrap();
    assert!(at >= before, "changed_at {at} is before the run {before}");
    assert_eq!(p.read("dns/ttl").trim(), "60");
}

/// Issue 14 §1: after a failover nothing was protected, and nothing said so. Where no standby
/// can be had, the run says what is unprotected, pages for it and shows the step as failed,
/// continued, while the failover itself succeeds.
#[test]
fn without_a_standby_command_the_failover_pages_that_the_new_primary_is_unprotected() {
    let p = Project::new();
    let sb = p.own_sandbox();
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
            "standby_cmd=",
        ],
    );
    out.code(0);
    out.stderr_has("failed, continued");
    let pages = p.read(".sandbox/notifications.log");
    assert!(
        pages
            .lines()
            .any(|l| l.contains("[devops-lead]") && l.contains("UNPROTECTED")),
        "no page for the unprotected primary:\n{pages}"
    );
    assert_eq!(
        sb.psql(
            &at_port(&sb.var("PG_REPLICA_PORT")),
            "SELECT count(*) FROM pg_stat_replication"
        ),
        Ok("0".into())
    );
}

/// Issue 14 §3: a quarterly drill of region-failure proved the health checks and the lag query,
/// never the fence, the promotion or the re-pointing (all `drill: mock`). In the sandbox, a
/// rehearsal environment, the drill runs them for real, says so, and leaves what a real
/// failover leaves: one writable primary, behind the clients' service.
#[test]
fn a_rehearsal_drill_of_region_failure_fails_the_sandbox_over_for_real() {
    let p = Project::new();
    let sb = p.own_sandbox();
    let old = sb.var("PGPORT");
    let new = sb.var("PG_REPLICA_PORT");

    let out = run_in(
        &p,
        &sb,
        &[
            "run",
            "region-failure",
            "--drill",
            "--env",
            "local",
            "--yes",
        ],
    );
    let (_, stdout, stderr) = out.parts();
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("rehearsal") && all.contains("promote-replica"),
        "the run does not say it rehearses the mocked steps: {all}"
    );
    let run = p.last_run_of("region-failure").expect("a run");
    let started = &p.events_of(&run, "run_started")[0];
    assert_eq!(started["data"]["rehearsal"], true, "{started}");
    let finished = &p.events_of(&run, "run_finished")[0];
    assert_eq!(finished["data"]["status"], "succeeded", "{all}");
    for step in [
        "fence-old-primary",
        "promote-replica",
        "repoint-clients",
        "canary-write",
    ] {
        let s = p
            .events_of(&run, "step_started")
            .into_iter()
            .find(|e| e["data"]["step"] == step)
            .unwrap_or_else(|| panic!("{step} did not start: it was simulated"));
        assert_eq!(s["data"]["how"], "rehearsal", "{s}");
    }

    // The data outcome, as after a real failover.
    assert_eq!(
        sb.psql(
            "service=omni",
            "INSERT INTO customers VALUES (7001, 'rehearsed', 'c7001@example.test') RETURNING id"
        ),
        Ok("7001".into())
    );
    assert_eq!(assert_refuses_writes(&sb, &old, 7001), "read-only");
    assert_eq!(service_value(&p, "omni", "port"), new);
    assert_eq!(
        sb.psql(
            &at_port(&new),
            &format!("SELECT count(*) FROM runbook_canary WHERE run_id = '{run}'")
        ),
        Ok("1".into())
    );

    // The report: a rehearsal, recovered at verify-services, the monitoring apart.
    let report = p.report_json(&run);
    assert_eq!(report["rto_ends_at"], "verify-services", "{report}");
    assert!(
        report["recovery_s"].as_f64().is_some() && report["observation_s"].as_f64().is_some(),
        "{report}"
    );
    let md = p
        .run(&["report", &run, "--format", "md"])
        .code(0)
        .stdout
        .clone();
    assert!(md.contains("rehearsal"), "{md}");
}

/// The same for datacenter-failure: the automatic failover left the old primary writable, and
/// the rehearsal drill fences it for real (a plain drill only probes it).
#[test]
fn a_rehearsal_drill_of_datacenter_failure_fences_the_old_primary_for_real() {
    let p = Project::new();
    let sb = p.own_sandbox();
    let old = sb.var("PGPORT");
    run_in(
        &p,
        &sb,
        &["run", "backup-database", "--env", "local", "--yes"],
    )
    .code(0);
    automatic_failover(&p, &sb);
    assert_eq!(write_at(&sb, &old, 8001), Ok(String::new()));

    let out = run_in(
        &p,
        &sb,
        &[
            "run",
            "datacenter-failure",
            "--drill",
            "--env",
            "local",
            "--yes",
        ],
    );
    out.code(0);
    let run = p.last_run_of("datacenter-failure").expect("a run");
    assert_eq!(p.outputs(&run, "fence-old-primary")["fenced"], "stopped");
    assert_eq!(assert_refuses_writes(&sb, &old, 8002), "down");
    assert_eq!(
        sb.psql(
            "service=omni",
            "INSERT INTO customers VALUES (8002, 'rehearsed', 'c8002@example.test') RETURNING id"
        ),
        Ok("8002".into())
    );
    let report = p.report_json(&run);
    assert_eq!(report["rto_ends_at"], "service-restored", "{report}");
}
