//! The fleet's inventory, from the operator's side: groups of hosts (and of groups, and the
//! implicit `all`) that a step's `on:` names, resolved against an environment by `check --env`
//! with errors at the line and by `run`; and ssh settings given as defaults, per group and per
//! host, reaching ssh in that order of precedence; and a step's `hosts:`, which bounds how many
//! of its hosts run at once and how many may fail.
//!
//! Tests that reach a host use the sshd `tests/suite.sh` starts, which listens on 127.0.0.1
//! to 127.0.0.5 (`tests/suite.sh --test it fleet::`); without it they fail, naming the variable
//! they missed.

use std::time::{Duration, Instant};

use crate::support::Project;

struct Ssh {
    port: String,
    user: String,
    key: String,
    known_hosts: String,
}

/// The sshd `tests/suite.sh` starts; missing, the test fails (it never skips).
#[track_caller]
fn need_ssh() -> Ssh {
    let need = |var: &str| match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "`{var}` is not set: this test drives a real sshd, which tests/suite.sh starts; \
             run `tests/suite.sh --test it fleet::`"
        ),
    };
    Ssh {
        port: need("RUNBOOK_TEST_SSH_PORT"),
        user: need("RUNBOOK_TEST_SSH_USER"),
        key: need("RUNBOOK_TEST_SSH_KEY"),
        known_hosts: need("RUNBOOK_TEST_SSH_KNOWN_HOSTS"),
    }
}

/// A runbook of one step per `(id, on)`, each printing the address the host's sshd was
/// reached at (`SSH_CONNECTION`'s third field).
fn runbook(steps: &[(&str, &str)]) -> String {
    let mut rb = String::from("scenario: fleet\ntitle: Fleet\nrto: 5m\nsteps:\n");
    for (id, on) in steps {
        rb += &format!(
            "  - id: {id}\n    budget: 1m\n    timeout: 2m\n    on: [{on}]\n    drill: run\n    \
             run: 'set -- $SSH_CONNECTION; echo \"addr=$3\"'\n"
        );
    }
    rb
}

/// The hosts whose lines a step's log holds, each with how many `addr=` lines it printed.
fn reached(log: &str) -> Vec<(String, String, usize)> {
    let mut out: Vec<(String, String, usize)> = Vec::new();
    for line in log.lines() {
        let Some((host, rest)) = line.strip_prefix('[').and_then(|l| l.split_once("] addr="))
        else {
            continue;
        };
        match out.iter_mut().find(|(h, _, _)| h == host) {
            Some(e) => e.2 += 1,
            None => out.push((host.to_owned(), rest.trim().to_owned(), 1)),
        }
    }
    out.sort();
    out
}

fn row(host: &str, addr: &str) -> (String, String, usize) {
    (host.to_owned(), addr.to_owned(), 1)
}

#[test]
fn a_group_of_groups_fans_out_to_each_of_its_hosts_once_and_all_to_every_host() {
    let ssh = need_ssh();
    let p = Project::new().with_deadline(Duration::from_secs(180));
    p.write(
        "runbooks/env/prod.yaml",
        &format!(
            "ssh: {{ user: {}, port: {}, identity: {}, known_hosts: {} }}\n\
             groups:\n  web: [w3, w2]\n  prod: [web, db, w2]\n\
             inventory:\n  w2: {{ host: 127.0.0.2 }}\n  w3: {{ host: 127.0.0.3 }}\n  \
             db: {{ host: 127.0.0.4 }}\n  spare: {{ host: 127.0.0.5 }}\n",
            ssh.user, ssh.port, ssh.key, ssh.known_hosts
        ),
    );
    p.write(
        "runbooks/fleet.yaml",
        &runbook(&[("prod", "prod"), ("everywhere", "all")]),
    );
    p.run(&["check", "--env", "prod"]).code(0);
    let out = p.run(&["run", "fleet", "--env", "prod"]);
    out.code(0);
    let id = out.id();
    assert_eq!(
        reached(&p.log(&id, "prod")),
        [
            row("db", "127.0.0.4"),
            row("w2", "127.0.0.2"),
            row("w3", "127.0.0.3")
        ],
        "{}",
        p.log(&id, "prod")
    );
    assert!(p.run_dir(&id).join("logs/prod@w2.log").is_file());
    assert!(!p.run_dir(&id).join("logs/prod@spare.log").exists());
    // Regression: `on: [all]` passed `check` and was refused by `run` ("not in the inventory").
    assert_eq!(
        reached(&p.log(&id, "everywhere")),
        [
            row("db", "127.0.0.4"),
            row("spare", "127.0.0.5"),
            row("w2", "127.0.0.2"),
            row("w3", "127.0.0.3")
        ]
    );
}

#[test]
fn check_env_says_at_the_line_what_an_on_or_a_group_names_wrongly() {
    let p = Project::new();
    p.write(
        "runbooks/env/prod.yaml",
        "groups:\n  app: [app-1, app-2]\ninventory:\n  app-1: { host: 10.0.0.1 }\n  app-2: { host: 10.0.0.2 }\n",
    );
    p.write(
        "runbooks/fleet.yaml",
        "scenario: fleet\ntitle: Fleet\nrto: 5m\nsteps:\n  - id: restart\n    budget: 1m\n    drill: run\n    run: echo hi\n    on: [app-1, ap, all]\n",
    );
    // Without an environment nothing says what `ap` is: a note, not an error.
    p.run(&["check"]).code(0).stderr_has(
        "`on:` names `app-1`, `ap`, `all` not checked: pass `--env NAME` to check them against its hosts and groups",
    );
    p.run(&["check", "--env", "prod", "runbooks/fleet.yaml"])
        .code(2)
        .stderr_has(
            "step `restart` runs on `ap`, which is neither a host nor a group of environment `prod`",
        )
        .stderr_has("[runbooks/fleet.yaml:9:17]")
        .stderr_has("did you mean `app`?")
        .stderr_has("1 error");
    // `run` refuses it too, before anything runs.
    p.run(&["run", "fleet", "--env", "prod"])
        .code(2)
        .stderr_has("hosts not in the inventory: `ap` (step `restart`)");

    p.write(
        "runbooks/env/prod.yaml",
        "groups:\n\
         \x20 app: [app-1, web]\n\
         \x20 web: [app]\n\
         \x20 db: []\n\
         \x20 app-1: [app-2]\n\
         \x20 ops: [app-2, dbb]\n\
         \x20 all: [app-1]\n\
         inventory:\n  app-1: { host: 10.0.0.1 }\n  app-2: { host: 10.0.0.2 }\n  db-1: { host: 10.0.0.3 }\n",
    );
    // Checked with the project, the `--env` file's errors are said once.
    p.run(&["check", "--env", "prod"])
        .code(2)
        .stderr_has("groups form a cycle: `app` → `web` → `app`")
        .stderr_has("[runbooks/env/prod.yaml:2:3]")
        .stderr_has("group `db` is empty")
        .stderr_has("[runbooks/env/prod.yaml:4:3]")
        .stderr_has("`app-1` is both an inventory host and a group")
        .stderr_has("[runbooks/env/prod.yaml:5:3]")
        .stderr_has("group `ops` names `dbb`, which is neither an inventory host nor a group")
        .stderr_has("[runbooks/env/prod.yaml:6:16]")
        .stderr_has("did you mean `db`?")
        .stderr_has("`all` is a group already: every host of the inventory")
        .stderr_has("[runbooks/env/prod.yaml:7:3]")
        .stderr_has("`on:` names `app-1`, `ap`, `all` not checked: environment `prod` has errors")
        .stderr_has(": 5 errors");
}

#[test]
fn ssh_settings_of_groups_and_defaults_are_checked_at_their_line() {
    let p = Project::new();
    p.write(
        "runbooks/env/prod.yaml",
        "ssh: { user: \"-oProxyCommand=id\", connect_timeout: 0s }\n\
         groups:\n\
         \x20 app: { hosts: [a], port: 0, jump: \"-oProxyCommand=id\", identity: ./no-such-key }\n\
         \x20 web: { hosts: [a], known_hosts: \"a b\", jump: \"dr@bastion:99999\" }\n\
         inventory:\n  a: { host: 10.0.0.1, jump: \"bastion.example.com\", connect_timeout: soon }\n",
    );
    p.run(&["check"])
        .code(2)
        .stderr_has("`user` of the `ssh` defaults is `-oProxyCommand=id`, which ssh would read as an option")
        .stderr_has("[runbooks/env/prod.yaml:1:14]")
        .stderr_has("`connect_timeout` of the `ssh` defaults is `0s`, less than a second")
        .stderr_has("`port` of group `app` is 0, which is no port")
        .stderr_has("[runbooks/env/prod.yaml:3:28]")
        .stderr_has("`jump` of group `app` is `-oProxyCommand=id`, which ssh would read as an option")
        .stderr_has("`known_hosts` of group `web` is `a b`, which holds a space")
        .stderr_has("`jump` of group `web` is `dr@bastion:99999`, whose port is not 1 to 65535")
        .stderr_has("[runbooks/env/prod.yaml:4:48]")
        .stderr_has("`connect_timeout` of `a` is `soon` is not a duration")
        .stderr_has("7 errors");

    // Two groups as near to a host that set it differently: which applies is not a guess.
    p.write(
        "runbooks/env/prod.yaml",
        "groups:\n  app: { hosts: [a], user: deploy }\n  web: { hosts: [a], user: www }\n  all-web: { hosts: [web], user: ops }\n\
         inventory:\n  a: { host: 10.0.0.1, identity: ./no-such-key }\n  b: { host: 10.0.0.2 }\n",
    );
    p.run(&["check"])
        .code(2)
        .stderr_has("host `a` is in groups `app` and `web`, which set its `user` differently")
        .stderr_has("[runbooks/env/prod.yaml:6:3]")
        .stderr_has("1 error");
    // Set on the host, it is no longer a question; a missing key file is only a warning (it
    // may be on the machine that runs).
    p.write(
        "runbooks/env/prod.yaml",
        "groups:\n  app: { hosts: [a], user: deploy }\n  web: { hosts: [a], user: www }\n\
         inventory:\n  a: { host: 10.0.0.1, user: dr, identity: ./no-such-key }\n",
    );
    p.run(&["check"])
        .code(0)
        .stderr_has("`identity` of `a` is `./no-such-key`, which is not a file here")
        .stderr_has("[runbooks/env/prod.yaml:5:44]")
        .stderr_has("ok, 1 warning");
}

/// Every process whose command line (`/proc/PID/cmdline`) starts with `ssh ` and holds
/// `needle`.
fn ssh_command_lines_holding(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A process may end between the listing and the read.
        let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&bytes).replace('\0', " ");
        if line.starts_with("ssh ") && line.contains(needle) {
            found.push(line);
        }
    }
    found
}

#[test]
fn a_groups_user_port_and_connect_timeout_reach_ssh_and_a_hosts_own_wins() {
    let ssh = need_ssh();
    let p = Project::new().with_deadline(Duration::from_secs(180));
    // The defaults are wrong on purpose (no such user, a closed port): the run succeeds
    // only if the group's settings are the ones ssh gets.
    p.write(
        "runbooks/env/prod.yaml",
        &format!(
            "ssh: {{ user: nobody_here, port: 1, connect_timeout: 3s, identity: {}, known_hosts: {} }}\n\
             groups:\n  app: {{ hosts: [a, b], user: {}, port: {}, connect_timeout: 7s }}\n\
             inventory:\n  a: {{ host: 127.0.0.2 }}\n  b: {{ host: 127.0.0.3, connect_timeout: 9s }}\n",
            ssh.key, ssh.known_hosts, ssh.user, ssh.port
        ),
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    // A sleep no other process runs: its fraction is this test's own.
    let sleep = format!("sleep 4.{}{nanos}", std::process::id());
    p.write(
        "runbooks/fleet.yaml",
        &format!(
            "scenario: fleet\ntitle: Fleet\nrto: 5m\nsteps:\n  - id: app\n    budget: 1m\n    timeout: 2m\n    on: [app]\n    drill: run\n    run: '{sleep}; echo done'\n"
        ),
    );
    let run = p.spawn(&["run", "fleet", "--env", "prod"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while lines.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "ssh to both hosts never started: {lines:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
        lines = ssh_command_lines_holding(&sleep);
    }
    let out = run.finish();
    out.code(0);
    lines.sort_by_key(|l| l.contains("127.0.0.3"));
    let [a, b] = &lines[..] else {
        panic!("{lines:#?}")
    };
    for (line, addr, timeout) in [(a, "127.0.0.2", 7), (b, "127.0.0.3", 9)] {
        for part in [
            format!("-o ConnectTimeout={timeout} "),
            format!("-p {} ", ssh.port),
            format!(" -- {}@{addr} ", ssh.user),
        ] {
            assert!(line.contains(&part), "`{part}` not in {line}");
        }
    }
    let log = p.log(&out.id(), "app");
    assert!(
        log.contains("[a] done") && log.contains("[b] done"),
        "{log}"
    );
}

/// An environment of `n` hosts `h0`.. on the suite's sshd, spread over its five addresses
/// (`h0` on 127.0.0.1, `h1` on 127.0.0.2, ...).
fn hosts_env(ssh: &Ssh, n: usize) -> String {
    let mut env = format!(
        "ssh: {{ user: {}, port: {}, identity: {}, known_hosts: {} }}\ninventory:\n",
        ssh.user, ssh.port, ssh.key, ssh.known_hosts
    );
    for k in 0..n {
        env += &format!("  h{k}: {{ host: 127.0.0.{} }}\n", k % 5 + 1);
    }
    env
}

/// The most hosts that were inside their command at once, from the `start NS`/`end NS`
/// lines each wrote to `file` (an end before a start at the same instant).
fn most_at_once(file: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut events: Vec<(u128, i32)> = text
        .lines()
        .filter_map(|l| {
            let (what, ns) = l.split_once(' ')?;
            let ns: u128 = ns.trim().parse().ok()?;
            Some((ns, if what == "start" { 1 } else { -1 }))
        })
        .collect();
    assert!(!events.is_empty(), "no host wrote to {}", file.display());
    events.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// A step on every host whose command records when it starts and ends in `file`.
fn timed_runbook(file: &std::path::Path, hosts: &str) -> String {
    format!(
        "scenario: fleet\ntitle: Fleet\nrto: 5m\nsteps:\n  - id: restart\n    budget: 1m\n    \
         timeout: 2m\n    on: [all]\n{hosts}    drill: run\n    \
         run: 'echo \"start $(date +%s%N)\" >> {f}; sleep 1; echo \"end $(date +%s%N)\" >> {f}'\n",
        f = file.display()
    )
}

#[test]
fn max_parallel_bounds_the_hosts_at_once_and_so_does_the_runs_max_parallel() {
    let ssh = need_ssh();
    let p = Project::new().with_deadline(Duration::from_secs(240));
    p.write("runbooks/env/prod.yaml", &hosts_env(&ssh, 8));
    let times = p.path().join("times-3");
    p.write(
        "runbooks/fleet.yaml",
        &timed_runbook(&times, "    hosts: { max_parallel: 3 }\n"),
    );
    let out = p.run(&["run", "fleet", "--env", "prod"]);
    out.code(0);
    let most = most_at_once(&times);
    assert!(
        (2..=3).contains(&most),
        "{most} hosts at once with max_parallel 3"
    );
    let outputs = p.outputs(&out.id(), "restart");
    assert_eq!(outputs["hosts_succeeded"], "h0,h1,h2,h3,h4,h5,h6,h7");
    assert_eq!(outputs["hosts_failed"], "");

    // Regression: `run --max-parallel 1` still ran every host of a step at once.
    let times = p.path().join("times-1");
    p.write("runbooks/fleet.yaml", &timed_runbook(&times, ""));
    p.run(&["run", "fleet", "--env", "prod", "--max-parallel", "1"])
        .code(0);
    assert_eq!(most_at_once(&times), 1);
}

#[test]
fn hosts_failing_within_max_failures_leave_the_step_succeeded_and_one_more_fails_it() {
    let ssh = need_ssh();
    let p = Project::new().with_deadline(Duration::from_secs(240));
    p.write("runbooks/env/prod.yaml", &hosts_env(&ssh, 5));
    // `h2` is on 127.0.0.3, `h3` on 127.0.0.4.
    let step = |id: &str, needs: &str, tolerance: &str, failing: &str| {
        format!(
            "  - id: {id}\n{needs}    budget: 1m\n    timeout: 2m\n    on: [all]\n    \
             hosts: {{ max_failures: {tolerance} }}\n    drill: run\n    \
             run: 'set -- $SSH_CONNECTION; case \"$3\" in {failing}) exit 3;; esac; echo fine'\n"
        )
    };
    p.write(
        "runbooks/fleet.yaml",
        &format!(
            "scenario: fleet\ntitle: Fleet\nrto: 5m\nsteps:\n{}{}",
            step("tolerated", "", "1", "127.0.0.3"),
            step(
                "past",
                "    needs: [tolerated]\n",
                "\"20%\"",
                "127.0.0.3|127.0.0.4"
            ),
        ),
    );
    p.run(&["check", "--env", "prod"]).code(0);
    let out = p.run(&["run", "fleet", "--env", "prod"]);
    out.code(1);
    let id = out.id();
    let log = p.log(&id, "tolerated");
    for line in [
        "host h2 failed with exit 3",
        "hosts: 4 succeeded, 1 failed (h2); within max_failures 1: the step succeeds",
    ] {
        assert!(log.contains(line), "`{line}` not in {log}");
    }
    let outputs = p.outputs(&id, "tolerated");
    assert_eq!(outputs["hosts_succeeded"], "h0,h1,h3,h4");
    assert_eq!(outputs["hosts_failed"], "h2");
    let finished = |step: &str| {
        p.events_of(&id, "step_finished")
            .into_iter()
            .find(|e| e["data"]["step"] == step)
            .unwrap_or_else(|| panic!("`{step}` never finished"))
    };
    assert_eq!(finished("tolerated")["data"]["status"], "succeeded");
    // 20% of 5 hosts is 1: two failing is one past it.
    let log = p.log(&id, "past");
    for line in [
        "host h2 failed with exit 3",
        "host h3 failed with exit 3",
        "hosts: 3 succeeded, 2 failed (h2,h3); more than max_failures 20%: the step fails",
    ] {
        assert!(log.contains(line), "`{line}` not in {log}");
    }
    assert_eq!(finished("past")["data"]["status"], "failed");
    // A failed step's outputs are journaled too: which hosts to look at.
    assert_eq!(p.outputs(&id, "past")["hosts_failed"], "h2,h3");
}

#[test]
fn check_says_at_the_line_what_is_wrong_with_hosts() {
    let p = Project::new();
    p.write(
        "runbooks/env/prod.yaml",
        "inventory:\n  a: { host: 10.0.0.1 }\n",
    );
    let step = |id: &str, on: &str, hosts: &str| {
        format!(
            "  - id: {id}\n    budget: 1m\n    drill: run\n    run: echo hi\n{on}    hosts: {hosts}\n"
        )
    };
    p.write(
        "runbooks/fleet.yaml",
        &format!(
            "scenario: fleet\ntitle: Fleet\nrto: 5m\nsteps:\n{}{}{}{}",
            step("zero", "    on: [a]\n", "{ max_parallel: 0 }"),
            step(
                "negative",
                "    on: [a]\n",
                "{ max_parallel: -2, max_failures: -1 }"
            ),
            step("percent", "    on: [a]\n", "{ max_failures: \"101%\" }"),
            step("nowhere", "", "{ max_parallel: 5 }"),
        ),
    );
    p.run(&["check", "--env", "prod"])
        .code(2)
        .stderr_has("`max_parallel` of step `zero` is `0`, not a number of hosts of 1 or more")
        .stderr_has("[runbooks/fleet.yaml:10:28]")
        .stderr_has("`max_parallel` of step `negative` is `-2`, not a number of hosts of 1 or more")
        .stderr_has("[runbooks/fleet.yaml:16:28]")
        .stderr_has("`max_failures` of step `negative` is `-1`: not a number of hosts of 0 or more")
        .stderr_has("`max_failures` of step `percent` is `101%`: a percentage over 100%")
        .stderr_has("[runbooks/fleet.yaml:22:28]")
        .stderr_has("step `nowhere` has `hosts` but no `on`")
        .stderr_has("[runbooks/fleet.yaml:27:12]")
        .stderr_has("5 errors");
    // `batch` and `pause` are not there yet: refused, not ignored.
    p.write(
        "runbooks/fleet.yaml",
        &format!(
            "scenario: fleet\ntitle: Fleet\nrto: 5m\nsteps:\n{}",
            step("rolling", "    on: [a]\n", "{ batch: 2 }"),
        ),
    );
    p.run(&["check", "--env", "prod"])
        .code(2)
        .stderr_has("unknown key `batch` in `hosts:` of step `rolling`")
        .stderr_has("[runbooks/fleet.yaml:10:14]")
        .stderr_has("a `hosts:` takes: `max_parallel`, `max_failures`");
}
