//! The harness's own sandbox ([`crate::support::Sandbox`]): what the failover and recovery tests
//! stand on. A PostgreSQL pair with the WAL archive, the application's service and pg-ctl.

use crate::support::Project;

#[test]
fn a_projects_own_sandbox_archives_wal_and_names_the_applications_service() {
    let p = Project::new();
    let sb = p.own_sandbox();
    assert_eq!(
        sb.psql("service=omni", "SELECT count(*) FROM customers"),
        Ok("1000".into())
    );
    assert_eq!(
        sb.psql("service=omni-replica", "SELECT pg_is_in_recovery()"),
        Ok("t".into())
    );
    // A switched segment reaches the archive the project sees as .sandbox/backups/wal.
    let seg = sb
        .psql("service=omni", "SELECT pg_walfile_name(pg_switch_wal())")
        .unwrap();
    crate::support::wait_until("the segment is archived", || {
        p.path().join(".sandbox/backups/wal").join(&seg).is_file()
    });
    let (ok, out) = sb.sh(".sandbox/bin/pg-ctl primary stop && .sandbox/bin/pg-ctl primary status");
    assert!(!ok, "status after stop says stopped: {out}");
    assert!(sb.psql("service=omni", "SELECT 1").is_err());
    let (ok, out) = sb.sh(".sandbox/bin/pg-ctl primary start");
    assert!(ok, "{out}");
    assert_eq!(sb.psql("service=omni", "SELECT 1"), Ok("1".into()));
}

/// Running up.sh again rewrote pg_service.conf whenever the old primary's port was no longer
/// named in it, which is the case after every failover: the re-pointing was undone and the
/// clients' service named the fenced server again.
#[test]
fn up_sh_again_keeps_a_failovers_re_pointing_of_the_clients_service() {
    let p = Project::new();
    let sb = p.own_sandbox();
    let new = sb.var("PG_REPLICA_PORT");
    let repoint = format!(
        "sed -i '/^\\[omni\\]/,/^$/ s/^port=.*/port={new}/; /^\\[omni-primary\\]/,/^$/ s/^port=.*/port={new}/' .sandbox/pg_service.conf"
    );
    let (ok, out) = sb.sh(&repoint);
    assert!(ok, "{out}");
    let (ok, out) = sb.sh("examples/sandbox/up.sh >/dev/null");
    assert!(ok, "{out}");
    let conf = p.read(".sandbox/pg_service.conf");
    let section = conf.split("[omni]").nth(1).expect("an [omni] section");
    assert!(
        section.lines().any(|l| l == format!("port={new}")),
        "the re-pointing was undone:\n{conf}"
    );
}
