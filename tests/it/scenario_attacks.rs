//! Issue 14's shipped content attacked as an attacker and a DBA would (the review of issue 14):
//! a helper that can take down the only primary, a recovery target read in the wrong zone, a
//! DNS record name that is a path. Each test is named after what broke.

use std::time::{Duration, Instant};

use crate::support::Project;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

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

/// The point-in-time recovery killed after it moved the damaged cluster aside (the step, the
/// supervisor and the run, all SIGKILL) could not be finished by `resume`: run again, the
/// step ran the stop command on the stopped server, which failed, or took the half-made data
/// directory for the damaged cluster. Now resume puts the cluster back, recovers again, and the
/// tables hold exactly the rows of the target time.
#[test]
fn pitr_killed_after_moving_the_cluster_aside_resumes_to_exactly_the_rows_at_the_target() {
    let p = Project::new().with_deadline(Duration::from_secs(180));
    let sb = p.own_sandbox();
    p.run_with(p.cmd_in(&sb, &["run", "backup-database", "--env", "local", "--yes"]))
        .code(0);
    let state = |table: &str| {
        sb.psql(
            "service=omni-primary",
            &format!(
                "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} t"
            ),
        )
        .unwrap()
    };
    sb.psql(
        "service=omni",
        "INSERT INTO customers VALUES (5001, 'Before', 'before@example.test')",
    )
    .unwrap();
    let (orders, customers) = (state("orders"), state("customers"));
    let t = sb
        .psql(
            "service=omni",
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    sb.psql("service=omni", "DELETE FROM orders WHERE id <= 5000")
        .unwrap();

    let target = format!("recovery_target_time={t}");
    let mut running = p.spawn_with(p.cmd_in(
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
    let pg = std::fs::canonicalize(p.path().join(".sandbox/pg")).unwrap();
    let moved_aside = || {
        std::fs::read_dir(&pg).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("primary.damaged-")
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !moved_aside() {
        assert!(
            Instant::now() < deadline,
            "the recovery never moved the cluster aside"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    running.kill().unwrap();
    let run = p.last_run_of("database-corruption").expect("a run");
    p.kill_supervisor_of(&run);
    let group = p.step_pid(&run, "restore.recover-to-time.1");
    let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);

    let out = p.run_with(p.cmd_in(
        &sb,
        &[
            "resume",
            &run,
            "--yes",
            "--rerun",
            "restore.recover-to-time",
        ],
    ));
    out.code(0);
    assert_eq!(state("orders"), orders);
    assert_eq!(state("customers"), customers);
    assert_eq!(
        sb.psql("service=omni", "SELECT pg_is_in_recovery()"),
        Ok("f".to_owned())
    );
    let left: Vec<String> = std::fs::read_dir(&pg)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("primary."))
        .collect();
    assert!(
        left.iter()
            .filter(|n| n.starts_with("primary.damaged-"))
            .count()
            == 1
            && !left.iter().any(|n| n.contains(".pitr-")),
        "one damaged cluster kept aside, no half-made one left: {left:?}"
    );
}

/// A fake PostgreSQL server that answers every connection as a server that is starting up
/// does (FATAL 57P03): what a service manager restarting a fenced primary looks like for a
/// moment. Returns its port; it serves until the test ends.
fn starting_up_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                // SSLRequest and GSSENCRequest get 'N'; the startup packet gets the error.
                loop {
                    let mut len = [0u8; 4];
                    if c.read_exact(&mut len).is_err() {
                        return;
                    }
                    let n = u32::from_be_bytes(len) as usize;
                    let mut body = vec![0u8; n.saturating_sub(4)];
                    if c.read_exact(&mut body).is_err() {
                        return;
                    }
                    let code = body
                        .get(..4)
                        .map(|b| u32::from_be_bytes(b.try_into().unwrap()));
                    if matches!(code, Some(80877103 | 80877104)) {
                        let _ = c.write_all(b"N");
                        continue;
                    }
                    let mut fields = Vec::new();
                    for (k, v) in [
                        (b'S', "FATAL"),
                        (b'V', "FATAL"),
                        (b'C', "57P03"),
                        (b'M', "the database system is starting up"),
                    ] {
                        fields.push(k);
                        fields.extend_from_slice(v.as_bytes());
                        fields.push(0);
                    }
                    fields.push(0);
                    let mut msg = vec![b'E'];
                    msg.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
                    msg.extend_from_slice(&fields);
                    let _ = c.write_all(&msg);
                    return;
                }
            });
        }
    });
    port
}

/// The fence read "the database system is starting up" as "nobody answers": after a stop that
/// a service manager undid, it reported the old primary stopped while it came back, writable
/// without standby.signal. Such an answer is no evidence: the fence waits for one that is, and
/// fails when none comes.
#[test]
fn the_fence_does_not_take_a_server_starting_up_for_one_that_is_down() {
    let p = Project::new().with_repo_steps();
    let port = starting_up_server();
    p.write(
        "runbooks/fence.yaml",
        &format!(
            r#"scenario: fence
title: t
rto: 1h
steps:
  - id: fence
    uses: postgres/fence
    with:
      strategy: check
      settle: "2"
    env: {{ PGHOST: 127.0.0.1, PGPORT: "{port}", PGUSER: postgres, PGDATABASE: postgres, PGSSLMODE: disable }}
    drill: run
"#
        ),
    );
    let out = p.run(&["run", "fence"]);
    let (code, stdout, stderr) = out.parts();
    assert_eq!(
        code, 1,
        "the fence passed a server that is starting up:\n{stdout}{stderr}"
    );
    let run = p.last_run_of("fence").unwrap();
    let log = p.log(&run, "fence");
    assert!(
        log.contains("still starting up or shutting down after 2s"),
        "{log}"
    );
    assert!(!log.contains("fenced: "), "{log}");
}

/// repoint-service looked a section up as a pattern: `omni.x` found `[omniax]`, and the
/// re-pointing went on as if the clients' service existed. Names are compared as text.
#[test]
fn repoint_service_does_not_take_a_service_name_for_a_pattern() {
    let p = Project::new().with_repo_steps();
    let conf = "[omniax]\nhost=127.0.0.1\nport=5001\n\n[new]\nhost=127.0.0.1\nport=5002\n";
    p.write("pg_service.conf", conf);
    p.write(
        "runbooks/repoint.yaml",
        r#"scenario: repoint
title: t
rto: 1h
steps:
  - id: repoint
    uses: postgres/repoint-service
    with: { service: omni.x, to: new, file: pg_service.conf }
    drill: run
"#,
    );
    let (code, out, err) = p.run(&["run", "repoint"]).parts();
    assert_eq!(code, 1, "{out}{err}");
    let run = p.last_run_of("repoint").unwrap();
    assert!(
        p.log(&run, "repoint").contains("has no [omni.x] section"),
        "{}",
        p.log(&run, "repoint")
    );
    assert_eq!(p.read("pg_service.conf"), conf);
}
