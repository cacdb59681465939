//! The shipped runbooks and the step library against the real systems they drive: the
//! sandbox's PostgreSQL and Redis, local folders and an rclone remote for storage, and an sshd
//! on loopback for `on:` steps — never mocks of them.
//!
//! `tests/suite.sh` starts the servers and exports their addresses (`tests/suite.sh --test it
//! real_systems::` runs just this module). A test that needs a server fails, naming the variable
//! it missed, when it runs without them: a green run means the systems were really exercised.
//!
//! Every run happens in a temporary copy of the project (runbooks/, steps/) whose `.sandbox`
//! is the running sandbox, with its own state folder. Tests that touch the sandbox's database
//! or Redis take that system's lock: they damage and restore shared data.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::Project;
use sha2::{Digest, Sha256};

/// The longest a run may take before the test gives up on it (the database drill watches the
/// health endpoint for a minute).
const RUN_DEADLINE: Duration = Duration::from_secs(300);

static POSTGRES: Mutex<()> = Mutex::new(());
static REDIS: Mutex<()> = Mutex::new(());

fn lock(m: &'static Mutex<()>) -> MutexGuard<'static, ()> {
    // A test that panicked holding the lock poisons it; the next one measures the data
    // before it acts, so the lock still serves.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A variable `tests/suite.sh` exports; missing, the test fails (it never skips).
#[track_caller]
fn need(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "`{var}` is not set: this test drives a real server, which tests/suite.sh starts \
             and describes in the environment; run `tests/suite.sh --test it real_systems::` \
             (as root it installs what is missing)"
        ),
    }
}

fn need_postgres() -> PathBuf {
    for var in ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGSERVICEFILE"] {
        need(var);
    }
    sandbox_dir()
}

fn need_redis() -> PathBuf {
    for var in ["REDIS_HOST", "REDIS_PORT", "REDIS_URL", "REDISCLI_AUTH"] {
        need(var);
    }
    sandbox_dir()
}

fn sandbox_dir() -> PathBuf {
    let dir = PathBuf::from(need("SANDBOX_DIR"));
    assert!(
        dir.join("bin").is_dir(),
        "SANDBOX_DIR={} holds no sandbox (no bin/): start it with tests/suite.sh",
        dir.display()
    );
    dir
}

struct Ssh {
    host: String,
    port: String,
    user: String,
    key: String,
    known_hosts: String,
}

fn need_ssh() -> Ssh {
    Ssh {
        host: need("RUNBOOK_TEST_SSH_HOST"),
        port: need("RUNBOOK_TEST_SSH_PORT"),
        user: need("RUNBOOK_TEST_SSH_USER"),
        key: need("RUNBOOK_TEST_SSH_KEY"),
        known_hosts: need("RUNBOOK_TEST_SSH_KNOWN_HOSTS"),
    }
}

/// A project with the step library only; runbooks are written by the test.
fn with_steps() -> Project {
    Project::new().with_repo_steps().with_deadline(RUN_DEADLINE)
}

/// A project with the shipped runbooks, environments and step library, run against the
/// sandbox: the local environment's `.sandbox/...` paths resolve to it.
fn shipped(sandbox: &Path) -> Project {
    let p = with_steps().with_repo_runbooks();
    std::os::unix::fs::symlink(sandbox, p.path().join(".sandbox")).unwrap();
    p
}

// ------------------------------------------------------------------------------ PostgreSQL

/// psql against the sandbox (PG* from the environment), one value out.
#[track_caller]
fn psql(database: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("psql is installed (tests/suite.sh installs postgresql-client)");
    assert!(
        out.status.success(),
        "psql -d {database} -c {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Row count and a checksum of every row of a table, in key order.
fn table_checksum(database: &str, table: &str) -> String {
    psql(
        database,
        &format!(
            "SELECT count(*) || ' rows, md5 ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} t"
        ),
    )
}

/// `backup-database` then damage, then `restore-database`: the table is exactly as it was.
#[test]
fn backup_damage_restore_database_brings_back_exactly_the_original_rows() {
    let sandbox = need_postgres();
    let _db = lock(&POSTGRES);
    let p = shipped(&sandbox);

    let orders = table_checksum("omni", "orders");
    let customers = table_checksum("omni", "customers");
    assert!(
        orders.starts_with("10000 rows"),
        "the sandbox seeds 10,000 orders: {orders}"
    );

    let backup = p
        .run(&["run", "backup-database", "--env", "local", "--yes"])
        .code(0)
        .id();
    let dumped = p.outputs(&backup, "dump")["name"]
        .as_str()
        .unwrap()
        .to_owned();

    psql(
        "omni",
        "BEGIN;
         DELETE FROM orders WHERE id % 7 = 0;
         UPDATE orders SET amount = amount + 1, status = 'tampered' WHERE id % 11 = 0;
         INSERT INTO orders VALUES (10001, 1, 9.99, 'forged', NULL, now());
         COMMIT;",
    );
    let damaged = table_checksum("omni", "orders");
    assert_ne!(damaged, orders, "the damage changed the table");

    let restore = p
        .run(&["run", "restore-database", "--env", "local", "--yes"])
        .code(0)
        .id();
    assert_eq!(
        p.outputs(&restore, "find-backup")["name"],
        dumped.as_str(),
        "restore-database picked the backup just taken"
    );
    assert_eq!(table_checksum("omni", "orders"), orders);
    assert_eq!(table_checksum("omni", "customers"), customers);
    // The damaged database was set aside, not overwritten: as it was, under another name.
    let kept = p.outputs(&restore, "restore")["kept_as"]
        .as_str()
        .expect("restore-database keeps the database it replaces")
        .to_owned();
    assert!(kept.starts_with("omni_before_restore_"), "{kept}");
    assert_eq!(table_checksum(&kept, "orders"), damaged);
    psql("postgres", &format!("DROP DATABASE \"{kept}\""));
    assert!(
        p.log(&restore, "verify")
            .contains("public.orders: ok (10000 rows, content matches)"),
        "verify log:\n{}",
        p.log(&restore, "verify")
    );
    assert_eq!(p.report_json(&restore)["status"], "succeeded");

    // The .meta comes from backup storage, where whoever broke in may have written: a COPY
    // target carrying more than a table and its columns is refused, and never executed.
    let meta = p.outputs(&restore, "find-backup")["meta"]
        .as_str()
        .unwrap()
        .to_owned();
    let marker = p.path().join("copy-to-program-ran");
    let tampered: String = std::fs::read_to_string(p.path().join(&meta))
        .unwrap()
        .lines()
        .map(|l| match l.strip_prefix("table.public.orders.copy=") {
            Some(target) => format!(
                "table.public.orders.copy={} TO PROGRAM 'touch {}' --)",
                target.trim_end_matches(')'),
                marker.display()
            ),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    p.write("tampered.meta", &(tampered + "\n"));
    p.write(
        "runbooks/verify-tampered.yaml",
        "scenario: verify-tampered\ntitle: t\nrto: 5m\nsteps:\n  - { id: verify, uses: postgres/verify, with: { meta: tampered.meta, database: omni, tables: public.orders } }\n",
    );
    let out = p.run(&["run", "verify-tampered", "--yes"]);
    out.code(1);
    let log = p.log(&out.id(), "verify");
    assert!(log.contains("unexpected COPY target"), "verify log:\n{log}");
    assert!(!marker.exists(), "the tampered COPY target was executed");
}

/// A failover loses what the standby has not replayed: the lag is the run's recovery point.
#[test]
fn the_replication_lag_of_the_standby_is_the_failovers_recovery_point() {
    let sandbox = need_postgres();
    let _db = lock(&POSTGRES);
    let p = shipped(&sandbox);
    p.write(
        "runbooks/lag.yaml",
        "scenario: lag\ntitle: t\nrto: 5m\nrpo: 1h\nvars: { replica_service: \"\" }\nsteps:\n  - { id: lag, uses: postgres/replication-lag, with: { service: \"{{ replica_service }}\" } }\n",
    );
    let run = p.run(&["run", "lag", "--env", "local"]).code(0).id();
    let outputs = p.outputs(&run, "lag");
    assert_eq!(outputs["role"], "standby");
    let lag: f64 = outputs["lag_s"].as_str().unwrap().parse().unwrap();
    assert_eq!(outputs["rpo_s"], outputs["lag_s"]);
    let report = p.report_json(&run);
    assert_eq!(report["rpo_achieved_s"].as_f64(), Some(lag));
}

/// The drill restores into the scratch database, leaves production alone, and reports the
/// recovery point it achieved: the age of the backup it restored.
#[test]
fn database_corruption_drill_restores_into_the_scratch_database_and_reports_the_rpo() {
    let sandbox = need_postgres();
    need("APP_HEALTH_URL");
    let db = lock(&POSTGRES);
    let p = shipped(&sandbox);

    let orders = table_checksum("omni", "orders");
    let customers = table_checksum("omni", "customers");
    p.run(&["run", "backup-database", "--env", "local", "--yes"])
        .code(0);
    psql("postgres", "DROP DATABASE IF EXISTS omni_drill");

    let args = [
        "run",
        "database-corruption",
        "--drill",
        "--env",
        "local",
        "--yes",
    ];
    let mut child = p.spawn(&args);
    // The database part ends with restore.verify; the drill then watches the health endpoint
    // for a minute, which needs the database lock no longer.
    let deadline = Instant::now() + RUN_DEADLINE;
    let drill = loop {
        // Read before the journal: a drill that ended has journaled all it will.
        let ended = child.has_ended();
        if let Some(run) = p.last_run_of("database-corruption") {
            let events = p.events(&run);
            let done = events.iter().any(|e| {
                (e["type"] == "step_finished" && e["data"]["step"] == "restore.verify")
                    || e["type"] == "run_finished"
            });
            if done {
                break run;
            }
        }
        if ended || Instant::now() > deadline {
            let _ = child.kill();
            let out = child.finish();
            panic!(
                "the drill did not get past restore.verify (within {RUN_DEADLINE:?})\n--- stderr\n{}",
                out.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let drill_orders = table_checksum("omni_drill", "orders");
    let drill_customers = table_checksum("omni_drill", "customers");
    let omni_orders = table_checksum("omni", "orders");
    let omni_customers = table_checksum("omni", "customers");
    drop(db);
    let out = child.finish();
    out.code(0);

    assert_eq!(drill_orders, orders, "omni_drill holds the backup's orders");
    assert_eq!(drill_customers, customers);
    assert_eq!(omni_orders, orders, "a drill leaves omni untouched");
    assert_eq!(omni_customers, customers);

    let picked = p.outputs(&drill, "restore.find-backup");
    let rpo_s: f64 = picked["rpo_s"].as_str().unwrap().parse().unwrap();
    let report = p.last_report_json();
    assert_eq!(report["run_id"], drill.as_str());
    assert_eq!(report["mode"], "drill");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(
        report["rpo_achieved_s"].as_f64(),
        Some(rpo_s),
        "the report's RPO is the backup's age: {report:#}"
    );
    assert!(rpo_s < 3600.0, "the backup was taken moments ago: {rpo_s}s");
    assert_eq!(report["rpo_target_s"].as_f64(), Some(3600.0));
    assert_eq!(report["rpo_met"], true);
    let restore = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "restore.restore")
        .unwrap();
    assert_eq!(restore["status"], "succeeded");
    assert!(
        p.log(&drill, "restore.restore").contains("into omni_drill"),
        "{}",
        p.log(&drill, "restore.restore")
    );
}

// ------------------------------------------------------------------------------ Redis

#[track_caller]
fn redis(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", &need("REDIS_HOST"), "-p", &need("REDIS_PORT")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli is installed (tests/suite.sh installs redis-server)");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !text.starts_with("ERR") && !text.starts_with("NOAUTH"),
        "redis-cli {args:?} failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// What the test compares: the key count and some values of each type.
fn redis_sample() -> Vec<String> {
    vec![
        redis(&["DBSIZE"]),
        redis(&["GET", "session:1"]),
        redis(&["GET", "session:200"]),
        redis(&["HGETALL", "config:app"]),
        redis(&["LRANGE", "queue:emails", "0", "-1"]),
        redis(&["GET", "counter:orders"]),
        redis(&["GET", "runbook-test:marker"]),
    ]
}

/// `backup-redis`, lose every key, `restore-redis`: the keys are back, later writes are not.
#[test]
fn backup_flush_restore_redis_brings_back_the_keys() {
    let sandbox = need_redis();
    let _redis = lock(&REDIS);
    let p = shipped(&sandbox);

    let marker = format!("taken-{}", std::process::id());
    redis(&["SET", "runbook-test:marker", &marker]);
    let before = redis_sample();
    let keys: u64 = before[0].parse().unwrap();
    assert!(keys >= 200, "the sandbox seeds 200+ keys: {keys}");

    let backup = p
        .run(&["run", "backup-redis", "--env", "local", "--yes"])
        .code(0)
        .id();
    assert_eq!(
        p.outputs(&backup, "test-load")["keys"],
        keys.to_string().as_str(),
        "the backup test-loaded with every key"
    );
    // The copy fetched back for the test is gone: one kept a run would fill the disk.
    let checked = p.path().join(".sandbox/work/verify");
    assert!(!checked.exists(), "{} is left behind", checked.display());

    redis(&["FLUSHALL"]);
    redis(&["SET", "runbook-test:after-backup", "lost"]);
    assert_eq!(redis(&["DBSIZE"]), "1");

    p.run(&["run", "restore-redis", "--env", "local", "--yes"])
        .code(0);
    assert_eq!(redis_sample(), before);
    assert_eq!(redis(&["GET", "runbook-test:marker"]), marker);
    assert_eq!(
        redis(&["EXISTS", "runbook-test:after-backup"]),
        "0",
        "a key written after the backup is gone"
    );
    redis(&["DEL", "runbook-test:marker"]);
}

// ------------------------------------------------------------------------------ storage

const STORAGE_ROUND_TRIP: &str = "\
scenario: storage-round-trip
title: Upload a backup, then download it
rto: 5m
vars: { file: \"\", dest: \"\", to: \"\" }
steps:
  - id: upload
    uses: storage/upload
    with: { file: \"{{ file }}\", dest: \"{{ dest }}\" }
  - id: download
    needs: [upload]
    uses: storage/download
    with: { source: \"{{ dest }}\", name: \"{{ steps['upload'].outputs.name }}\", to: \"{{ to }}\" }
";

const STORAGE_PRUNE: &str = "\
scenario: storage-prune
title: Prune backups past retention
rto: 5m
vars: { dest: \"\" }
steps:
  - id: prune
    uses: storage/prune
    with: { dest: \"{{ dest }}\", pattern: \"omni-*.dump\", retention_days: \"30\" }
";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes no two runs share, with every byte value in them.
fn backup_bytes(len: usize) -> Vec<u8> {
    let seed = std::process::id() as usize
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as usize;
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed ^ (i >> 8)) as u8)
        .collect()
}

/// The destinations storage steps take: a local folder, and an rclone remote (rclone's
/// on-the-fly `:local:` backend, so that the rclone path runs for real without a cloud).
fn destinations(root: &Path) -> Vec<(String, PathBuf)> {
    let local = root.join("bucket-local");
    let remote = root.join("bucket-rclone");
    vec![
        (local.display().to_string(), local),
        (format!(":local:{}", remote.display()), remote),
    ]
}

fn need_rclone() {
    let found = Command::new("rclone")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "rclone is not installed: run tests/suite.sh, which installs it as root"
    );
}

#[test]
fn storage_upload_then_download_gives_identical_bytes() {
    need_rclone();
    let p = with_steps();
    p.write("runbooks/storage-round-trip.yaml", STORAGE_ROUND_TRIP);
    let name = "omni-20240501T030000Z.dump";
    let bytes = backup_bytes(300_000);
    let sha = sha256_hex(&bytes);
    std::fs::create_dir_all(p.path().join("outgoing")).unwrap();
    std::fs::write(p.path().join("outgoing").join(name), &bytes).unwrap();
    p.write(
        &format!("outgoing/{name}.sha256"),
        &format!("{sha}  {name}\n"),
    );

    for (dest, folder) in destinations(p.path()) {
        let to = p.path().join(format!(
            "downloads-{}",
            folder.file_name().unwrap().to_string_lossy()
        ));
        let file = p.path().join("outgoing").join(name);
        let out = p.run(&[
            "run",
            "storage-round-trip",
            "--var",
            &format!("file={}", file.display()),
            "--var",
            &format!("dest={dest}"),
            "--var",
            &format!("to={}", to.display()),
        ]);
        let run = out.code(0).id();
        assert_eq!(
            std::fs::read(folder.join(name)).expect("the backup is in the destination"),
            bytes,
            "{dest}"
        );
        assert!(
            folder.join(format!("{name}.sha256")).is_file(),
            "{dest}: sidecar uploaded"
        );
        let fetched = std::fs::read(to.join(name)).expect("the backup was downloaded");
        assert_eq!(sha256_hex(&fetched), sha, "{dest}: downloaded bytes");
        let outputs = p.outputs(&run, "download");
        assert_eq!(outputs["sha256"], sha.as_str(), "{dest}");
        assert_eq!(
            outputs["file"],
            to.join(name).display().to_string().as_str()
        );
        assert!(
            file.is_file(),
            "delete_source is false by default: the original stays"
        );
    }
}

/// Sets a file's modification time to this many days ago.
fn age(path: &Path, days: u32) {
    let status = Command::new("touch")
        .arg("-d")
        .arg(format!("{days} days ago"))
        .arg(path)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "touch -d {days} days ago {}",
        path.display()
    );
}

/// Backups (each with its .sha256 and .meta) of these ages in days, in a folder.
fn backups_aged(folder: &Path, ages: &[(&str, u32)]) {
    std::fs::create_dir_all(folder).unwrap();
    for (name, days) in ages {
        for f in [
            name.to_string(),
            format!("{name}.sha256"),
            format!("{name}.meta"),
        ] {
            std::fs::write(folder.join(&f), f.as_bytes()).unwrap();
            age(&folder.join(&f), *days);
        }
    }
}

fn names_in(folder: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn storage_prune_removes_backups_past_retention_and_keeps_newer_ones() {
    need_rclone();
    let p = with_steps();
    p.write("runbooks/storage-prune.yaml", STORAGE_PRUNE);
    let ages = [
        ("omni-20240101T000000Z.dump", 90),
        ("omni-20240201T000000Z.dump", 45),
        ("omni-20240301T000000Z.dump", 31),
        ("omni-20240401T000000Z.dump", 29),
        ("omni-20240501T000000Z.dump", 10),
        ("omni-20240601T000000Z.dump", 0),
    ];
    for (dest, folder) in destinations(p.path()) {
        backups_aged(&folder, &ages);
        // Not a backup by the pattern: never touched, however old.
        std::fs::write(folder.join("notes.txt"), "keep me").unwrap();
        age(&folder.join("notes.txt"), 400);
        let all = names_in(&folder);

        // A drill only says what it would delete.
        let drill = p
            .run(&[
                "run",
                "storage-prune",
                "--drill",
                "--var",
                &format!("dest={dest}"),
            ])
            .code(0)
            .id();
        assert_eq!(names_in(&folder), all, "{dest}: a drill deletes nothing");
        assert!(
            p.log(&drill, "prune")
                .contains("would delete omni-20240101T000000Z.dump"),
            "{dest}: {}",
            p.log(&drill, "prune")
        );

        let run = p
            .run(&["run", "storage-prune", "--var", &format!("dest={dest}")])
            .code(0)
            .id();
        let mut kept = vec!["notes.txt".to_owned()];
        for (name, _) in &ages[3..] {
            kept.extend([
                name.to_string(),
                format!("{name}.meta"),
                format!("{name}.sha256"),
            ]);
        }
        kept.sort();
        assert_eq!(
            names_in(&folder),
            kept,
            "{dest}: older than 30 days gone, with sidecars"
        );
        let outputs = p.outputs(&run, "prune");
        assert_eq!(outputs["deleted"], "3", "{dest}");
        assert_eq!(outputs["kept"], "3", "{dest}");
    }
}

#[test]
fn storage_prune_never_deletes_the_newest_backups_however_old() {
    let p = with_steps();
    p.write("runbooks/storage-prune.yaml", STORAGE_PRUNE);
    let folder = p.path().join("bucket");
    // Backups stopped two months ago: the last three stay (keep_min defaults to 3).
    backups_aged(
        &folder,
        &[
            ("omni-20240101T000000Z.dump", 80),
            ("omni-20240102T000000Z.dump", 70),
            ("omni-20240103T000000Z.dump", 65),
            ("omni-20240104T000000Z.dump", 62),
            ("omni-20240105T000000Z.dump", 60),
        ],
    );
    p.run(&[
        "run",
        "storage-prune",
        "--var",
        &format!("dest={}", folder.display()),
    ])
    .code(0);
    let left: Vec<String> = names_in(&folder)
        .into_iter()
        .filter(|n| n.ends_with(".dump"))
        .collect();
    assert_eq!(
        left,
        [
            "omni-20240103T000000Z.dump",
            "omni-20240104T000000Z.dump",
            "omni-20240105T000000Z.dump"
        ]
    );
}

// ------------------------------------------------------------------------------ ssh

/// An environment whose inventory has hosts `a` and `b` on the loopback sshd and, when asked,
/// `c` on a port where nothing listens.
fn ssh_environment(ssh: &Ssh, with_dead_host: bool) -> String {
    let host = |name: &str, port: &str| {
        format!(
            "  {name}: {{ host: {}, port: {port}, user: {}, identity: {}, known_hosts: {} }}\n",
            ssh.host, ssh.user, ssh.key, ssh.known_hosts
        )
    };
    let mut env = String::from("inventory:\n");
    env += &host("a", &ssh.port);
    env += &host("b", &ssh.port);
    if with_dead_host {
        env += &host("c", &closed_port().to_string());
    }
    env
}

/// A loopback port nothing listens on: one the kernel just handed out and took back.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn on_runbook(scenario: &str, hosts: &str, step: &str) -> String {
    format!(
        "scenario: {scenario}\ntitle: On hosts\nrto: 5m\nsteps:\n  - id: remote\n    budget: 1m\n    on: [{hosts}]\n    drill: run\n{step}"
    )
}

#[test]
fn an_on_step_runs_over_ssh_on_every_host_and_prefixes_its_output() {
    let ssh = need_ssh();
    let p = with_steps();
    p.write("runbooks/env/hosts.yaml", &ssh_environment(&ssh, false));
    p.write(
        "runbooks/fan-out.yaml",
        &on_runbook(
            "fan-out",
            "a, b",
            // SSH_CONNECTION is set by sshd: proof the command ran over ssh, not locally.
            "    run: 'echo \"step=$RUNBOOK_STEP mode=$RUNBOOK_MODE via=${SSH_CONNECTION:+ssh}\"'\n",
        ),
    );
    let out = p.run(&["run", "fan-out", "--env", "hosts"]);
    let run = out.code(0).id();
    let log = p.log(&run, "remote");
    for h in ["a", "b"] {
        assert!(
            log.contains(&format!("[{h}] step=remote mode=real via=ssh")),
            "host {h} in the log:\n{log}"
        );
        // And a log of its own per host, without the prefix.
        let own = p.log(&run, &format!("remote@{h}"));
        assert_eq!(
            own, "step=remote mode=real via=ssh\n",
            "the log of host {h}"
        );
    }
    assert!(
        out.stderr.contains("remote | [a] step=remote")
            && out.stderr.contains("remote | [b] step=remote"),
        "{}",
        out.stderr
    );
    assert_eq!(p.report_json(&run)["steps"][0]["status"], "succeeded");
}

#[test]
fn an_on_step_fails_when_one_host_fails_and_names_it() {
    let ssh = need_ssh();
    let p = with_steps();
    p.write("runbooks/env/hosts.yaml", &ssh_environment(&ssh, true));
    p.write(
        "runbooks/fan-out.yaml",
        &on_runbook("fan-out", "a, b, c", "    run: echo reached\n"),
    );
    let out = p.run(&["run", "fan-out", "--env", "hosts"]);
    let run = out.code(1).id();
    let log = p.log(&run, "remote");
    assert!(
        log.contains("[a] reached") && log.contains("[b] reached"),
        "{log}"
    );
    assert!(log.contains("host c failed with exit 255"), "{log}");
    assert!(
        !log.contains("host a failed") && !log.contains("host b failed"),
        "{log}"
    );
    assert!(out.stderr.contains("host c failed"), "{}", out.stderr);
    let report = p.report_json(&run);
    assert_eq!(report["status"], "failed");
    assert_eq!(report["steps"][0]["status"], "failed");
}

/// Regression: ssh runs remote commands without a terminal, so killing the client on a
/// timeout left them running on the host (sshd signals nothing when such a session ends).
#[test]
fn a_timeout_on_an_on_step_kills_the_remote_command_too() {
    let ssh = need_ssh();
    let p = with_steps();
    p.write("runbooks/env/hosts.yaml", &ssh_environment(&ssh, false));
    // A sleep no other test or process runs, and a file only a survivor would create.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let sleep = format!("sleep 300.{}{nanos:09}", std::process::id());
    let survivor = p.path().join("survivor");
    p.write(
        "runbooks/slow.yaml",
        &on_runbook(
            "slow",
            "a, b",
            &format!(
                "    timeout: 2s\n    run: {sleep}; touch {}\n",
                survivor.display()
            ),
        ),
    );
    let started = Instant::now();
    let out = p.run(&["run", "slow", "--env", "hosts"]);
    let run = out.code(1).id();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the timeout ended the step"
    );
    assert_eq!(p.report_json(&run)["steps"][0]["status"], "timed_out");

    std::thread::sleep(Duration::from_secs(1));
    let exact = pgrep(&["-x", "-f", &sleep]);
    if !exact.is_empty() {
        // This test started them: end them, by pid, before failing.
        kill_all(&pgrep(&["-f", &sleep]));
        panic!("`{sleep}` still runs on the host after the timeout (pids {exact:?})");
    }
    assert!(
        !survivor.exists(),
        "the remote command went on after the timeout"
    );
    // The rest of the remote session (its shell, the watcher) is gone within the grace.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = pgrep(&["-f", &sleep]);
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            kill_all(&left);
            panic!("remote processes of the step still run 20 s after its timeout: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!survivor.exists());
}

/// Pids of the processes `pgrep` finds with these arguments.
fn pgrep(args: &[&str]) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(args)
        .output()
        .expect("pgrep is installed (procps)");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn kill_all(pids: &[String]) {
    for pid in pids {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
}

// ------------------------------------------------------------------------------ the harness

/// The promise of this file: without the servers, tests fail rather than pass vacuously.
#[test]
#[should_panic(expected = "run `tests/suite.sh --test it real_systems::`")]
fn a_test_needing_a_server_fails_when_its_address_is_missing() {
    need("RUNBOOK_TEST_NO_SUCH_SERVER");
}
