//! The harness's own sandbox ([`support::Sandbox`]): what the failover and recovery tests
//! stand on. A PostgreSQL pair with the WAL archive, the application's service and pg-ctl.

mod support;

use support::Project;

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
    support::wait_until("the segment is archived", || {
        p.path().join(".sandbox/backups/wal").join(&seg).is_file()
    });
    let (ok, out) = sb.sh(".sandbox/bin/pg-ctl primary stop && .sandbox/bin/pg-ctl primary status");
    assert!(!ok, "status after stop says stopped: {out}");
    assert!(sb.psql("service=omni", "SELECT 1").is_err());
    let (ok, out) = sb.sh(".sandbox/bin/pg-ctl primary start");
    assert!(ok, "{out}");
    assert_eq!(sb.psql("service=omni", "SELECT 1"), Ok("1".into()));
}
