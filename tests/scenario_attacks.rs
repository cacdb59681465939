//! Issue 14's shipped content attacked as an attacker and a DBA would (the review of issue 14):
//! a helper that can take down the only primary, a recovery target read in the wrong zone, a
//! DNS record name that is a path. Each test is named after what broke.

mod support;

use support::Project;

/// `pg-rebuild primary --from replica` on a healthy pair (the direction reversed, or run
/// before the promotion) stopped the only writable primary, moved its data aside and made it
/// a standby of a standby: no server took writes. The source must be a primary.
#[test]
fn pg_rebuild_refuses_a_source_that_is_not_a_primary_and_leaves_the_primary_writable() {
    let p = Project::new();
    let sb = p.own_sandbox();
    let (ok, out) = sb.sh(".sandbox/bin/pg-rebuild primary --from replica");
    assert!(!ok, "pg-rebuild from a standby succeeded:\n{out}");
    assert!(
        out.contains("replica is not a primary"),
        "pg-rebuild does not say why it refused:\n{out}"
    );
    assert_eq!(
        sb.psql("service=omni-primary", "SELECT pg_is_in_recovery()"),
        Ok("f".to_owned()),
        "the primary no longer takes writes after a refused rebuild"
    );
    // The right direction still works: the replica remade from the primary streams again.
    let (ok, out) = sb.sh(".sandbox/bin/pg-rebuild replica --from primary");
    assert!(ok, "pg-rebuild replica --from primary failed:\n{out}");
    assert_eq!(
        sb.psql("service=omni-replica", "SELECT pg_is_in_recovery()"),
        Ok("t".to_owned())
    );
}

fn pitr_runbook(target: &str) -> String {
    format!(
        r#"scenario: pitr
title: t
rto: 1h
steps:
  - id: pitr
    uses: postgres/pitr
    with:
      target_time: "{target}"
      base_dir: base
      data_dir: data
      wal_archive: wal
      preflight: "true"
    drill: run
"#
    )
}

/// A target time without a zone was read as UTC (`date -u`), while a DBA notes the local time
/// and PostgreSQL reads a zoneless recovery_target_time in the server's zone: off by the
/// zone's offset, the recovery replays the damage or loses hours. Now it is refused, with the
/// fix; a target with Z or an offset gets past that check.
#[test]
fn pitr_refuses_a_recovery_target_time_without_a_time_zone() {
    let p = Project::with_runbook("pitr", &pitr_runbook("2024-05-01 02:59:00")).with_repo_steps();
    for d in ["base", "data", "wal"] {
        p.write(&format!("{d}/.keep"), "");
    }
    let out = p.run_scenario(&[]);
    out.code(1);
    let log = p.log(&out.id(), "pitr");
    assert!(
        log.contains("`2024-05-01 02:59:00` has no time zone"),
        "pitr log:\n{log}"
    );

    let p = Project::with_runbook("pitr", &pitr_runbook("2024-05-01T02:59:00.25+02:00"))
        .with_repo_steps();
    for d in ["base", "data", "wal"] {
        p.write(&format!("{d}/.keep"), "");
    }
    let out = p.run_scenario(&[]);
    let log = p.log(&out.id(), "pitr");
    assert!(!log.contains("time zone"), "pitr log:\n{log}");
    assert!(
        log.contains("holds no PostgreSQL cluster"),
        "pitr log:\n{log}"
    );
}

/// A record name reached the site's command as $DNS_RECORD unchecked; the sandbox's stand-in
/// (one file per record, as many site scripts do) then wrote outside its folder for
/// `../escaped`. A record name is a DNS name, checked before anything runs.
#[test]
fn dns_update_refuses_a_record_name_that_is_not_a_dns_name() {
    let yaml = r#"scenario: dns
title: t
rto: 1h
steps:
  - id: update
    uses: dns/update
    with:
      record: "../escaped"
      target: api-eu.omni.example.com
      command: printf '%s\n' "$DNS_TARGET" > "dns/$DNS_RECORD"
    drill: run
"#;
    let p = Project::with_runbook("dns", yaml).with_repo_steps();
    p.write("dns/.keep", "");
    let out = p.run_scenario(&[]);
    out.code(1);
    assert!(
        !p.path().join("escaped").exists(),
        "the DNS command wrote outside dns/"
    );
    let log = p.log(&out.id(), "update");
    assert!(
        log.contains("`../escaped` is not a DNS name"),
        "update log:\n{log}"
    );
}

/// datacenter-failure fenced a writable old primary without asking whether the automatic
/// failover had happened at all: run while the secondary was still a standby (the failover
/// failed, or the alarm was wrong), it stopped the only primary and left no server taking
/// writes. The fence now acts only when the clients' service reaches another primary.
#[test]
fn datacenter_failure_does_not_fence_the_only_primary_when_no_failover_happened() {
    let p = Project::new();
    let sb = p.own_sandbox();
    let backup = p.cmd_in(&sb, &["run", "backup-database", "--env", "local", "--yes"]);
    p.run_with(backup).code(0);

    let run = p.cmd_in(
        &sb,
        &["run", "datacenter-failure", "--env", "local", "--yes"],
    );
    let out = p.run_with(run);
    out.code(1);
    let log = p.log(&out.id(), "fence-old-primary");
    assert!(
        log.contains("no failover happened"),
        "fence-old-primary log:\n{log}"
    );
    assert_eq!(
        sb.psql("service=omni-primary", "SELECT pg_is_in_recovery()"),
        Ok("f".to_owned()),
        "the only primary was fenced:\n{log}"
    );
    assert_eq!(
        sb.psql("service=omni-replica", "SELECT pg_is_in_recovery()"),
        Ok("t".to_owned())
    );
}

/// up.sh, "idempotent: run it again", took a primary folder without PG_VERSION (a recovery or
/// rebuild interrupted after it moved the data aside) for a first start: it removed the
/// primary AND the replica folders (after a failover, the only primary) and ran initdb. Now
/// it removes nothing and says what to finish or undo.
#[test]
fn sandbox_up_again_after_an_interrupted_recovery_does_not_wipe_the_replica() {
    let p = Project::new();
    let sb = p.own_sandbox();
    let (ok, out) = sb.sh(
        "set -e; .sandbox/bin/pg-ctl primary stop >/dev/null; pg=$(readlink -f .sandbox/pg); \
         mv \"$pg/primary\" \"$pg/primary.damaged-test\"; mkdir \"$pg/primary\"; \
         touch \"$pg/replica/kept-by-the-test\"",
    );
    assert!(ok, "{out}");
    let (ok, out) = sb.sh("examples/sandbox/up.sh");
    assert!(!ok, "up.sh started over an interrupted recovery:\n{out}");
    assert!(
        out.contains("primary.damaged-test"),
        "up.sh does not name what to undo:\n{out}"
    );
    let (ok, out) = sb.sh(
        "pg=$(readlink -f .sandbox/pg); test -e \"$pg/replica/kept-by-the-test\" \
         && test -s \"$pg/primary.damaged-test/PG_VERSION\"",
    );
    assert!(
        ok,
        "up.sh removed the replica's or the moved primary's files:\n{out}"
    );
    assert_eq!(
        sb.psql("service=omni-replica", "SELECT count(*) FROM customers"),
        Ok("1000".to_owned())
    );
}
