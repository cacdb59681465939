//! The ssh fan-out of `on:` steps, from the operator's side: what an environment's inventory
//! may hold (checked when it is loaded, by `check` and `run` alike), and what the step's
//! environment looks like on the way to the hosts (never on a command line, intact on arrival).
//!
//! Tests that reach a host use the sshd on loopback that `tests/suite.sh` starts
//! (`tests/suite.sh --test it ssh_fanout::`); without it they fail, naming the variable they
//! missed.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::Project;
use sha2::{Digest, Sha256};

struct Ssh {
    host: String,
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
             run `tests/suite.sh --test it ssh_fanout::`"
        ),
    };
    Ssh {
        host: need("RUNBOOK_TEST_SSH_HOST"),
        port: need("RUNBOOK_TEST_SSH_PORT"),
        user: need("RUNBOOK_TEST_SSH_USER"),
        key: need("RUNBOOK_TEST_SSH_KEY"),
        known_hosts: need("RUNBOOK_TEST_SSH_KNOWN_HOSTS"),
    }
}

/// An inventory of hosts `a` and `b`, both the loopback sshd.
fn hosts_env(ssh: &Ssh) -> String {
    let mut env = String::from("inventory:\n");
    for name in ["a", "b"] {
        env += &format!(
            "  {name}: {{ host: {}, port: {}, user: {}, identity: {}, known_hosts: {} }}\n",
            ssh.host, ssh.port, ssh.user, ssh.key, ssh.known_hosts
        );
    }
    env
}

/// A runbook of one step `remote` on `hosts`, the rest of the step (indented four spaces)
/// given.
fn on_runbook(hosts: &str, step: &str) -> String {
    format!(
        "scenario: fan-out\ntitle: On hosts\nrto: 5m\nsecrets: [MY_SECRET]\nsteps:\n  - id: remote\n    budget: 1m\n    timeout: 2m\n    on: [{hosts}]\n    drill: run\n{step}"
    )
}

/// Something no other test or process has in its command line.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{what}{}x{nanos}", std::process::id())
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every process whose command line (`/proc/PID/cmdline`) holds `needle`: (pid, its
/// command line).
fn command_lines_holding(needle: &str) -> Vec<(String, String)> {
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
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push((pid, String::from_utf8_lossy(&bytes).replace('\0', " ")));
        }
    }
    found
}

// ------------------------------------------------------------------------------ the inventory

/// The hostile inventory of the issue: a name and host names that run commands, and a host
/// that ssh would take for an option.
fn hostile_inventory(dir: &Path) -> String {
    let f = |n: &str| dir.join(n).display().to_string();
    format!(
        "inventory:\n  \"h3$(touch {})\": {{ host: h3 }}\n  h4: {{ host: \"h4`touch {}`\" }}\n  h5: {{ host: \"-oProxyCommand=touch {}\" }}\n",
        f("by-name"),
        f("by-backticks"),
        f("by-proxy-command")
    )
}

const HOSTILE_FILES: [&str; 3] = ["by-name", "by-backticks", "by-proxy-command"];

/// Regression: `check` accepted an inventory name `h3$(touch FILE)`, which a failing `on:`
/// step then ran on the operator's machine (in the "host ... failed" line).
#[test]
fn check_refuses_inventory_values_that_would_run_commands_and_says_where() {
    let p = Project::new();
    let dir = p.path().to_owned();
    p.write("runbooks/env/bad.yaml", &hostile_inventory(&dir));
    let out = p.run(&["check"]);
    out.code(2)
        .stderr_has("[runbooks/env/bad.yaml:2:3]")
        .stderr_has("inventory name `h3$(touch")
        .stderr_has("[runbooks/env/bad.yaml:3:15]")
        .stderr_has("[runbooks/env/bad.yaml:4:15]")
        .stderr_has("`host` of `h4` is `h4`touch")
        .stderr_has("`host` of `h5` is `-oProxyCommand=touch")
        .stderr_has("3 errors");
    for f in HOSTILE_FILES {
        assert!(!dir.join(f).exists(), "`{f}` was created");
    }
}

/// Regression: `run` took the same inventory and, its host unreachable, ran the name's
/// command substitution while reporting the failure.
#[test]
fn run_refuses_a_hostile_inventory_before_anything_runs() {
    let p = Project::new();
    let dir = p.path().to_owned();
    p.write("runbooks/env/bad.yaml", &hostile_inventory(&dir));
    p.write(
        "runbooks/fan-out.yaml",
        &on_runbook(
            &format!("\"h3$(touch {})\", h4, h5", dir.join("by-name").display()),
            "    run: echo reached\n",
        ),
    );
    let out = p.run(&["run", "fan-out", "--env", "bad"]);
    out.code(2)
        .stderr_has("[runbooks/env/bad.yaml:2:3]")
        .stderr_has("[runbooks/env/bad.yaml:3:15]")
        .stderr_has("[runbooks/env/bad.yaml:4:15]");
    assert!(p.run_ids().is_empty(), "a run was started");
    for f in HOSTILE_FILES {
        assert!(!dir.join(f).exists(), "`{f}` was created");
    }
}

/// Regression: users, ports and key paths went to ssh unchecked; one starting with `-` was
/// left to the installed OpenSSH to refuse (or not).
#[test]
fn a_bad_user_port_identity_or_known_hosts_is_refused_where_it_is_written() {
    let p = Project::new();
    p.write(
        "runbooks/env/bad.yaml",
        "inventory:\n\
         \x20 u1: { host: h, user: \"-oProxyCommand=id\" }\n\
         \x20 u2: { host: h, user: \"dr$(id)\" }\n\
         \x20 p1: { host: h, port: 0 }\n\
         \x20 i1: { host: h, identity: \"-oProxyCommand=id\" }\n\
         \x20 i2: { host: h, identity: \"key\\n-oProxyCommand=id\" }\n\
         \x20 k1: { host: h, known_hosts: \"-known\" }\n\
         \x20 k2: { host: h, known_hosts: \"a\\0b\" }\n\
         \x20 ok: { host: db-1.example.com, user: dr, port: 2222, identity: ~/.ssh/dr, known_hosts: ./kh }\n",
    );
    let out = p.run(&["check"]);
    out.code(2)
        .stderr_has("`user` of `u1` is `-oProxyCommand=id`, which ssh would read as an option")
        .stderr_has("[runbooks/env/bad.yaml:2:24]")
        .stderr_has("`user` of `u2` is `dr$(id)`, not a user name")
        .stderr_has("[runbooks/env/bad.yaml:3:24]")
        .stderr_has("`port` of `p1` is 0, which is no port")
        .stderr_has("[runbooks/env/bad.yaml:4:24]")
        .stderr_has("[runbooks/env/bad.yaml:5:28]")
        .stderr_has("[runbooks/env/bad.yaml:6:28]")
        .stderr_has("[runbooks/env/bad.yaml:7:31]")
        .stderr_has("[runbooks/env/bad.yaml:8:31]")
        .stderr_has("7 errors");
    assert!(!out.stderr.contains("`ok`"), "{}", out.stderr);

    p.write(
        "runbooks/env/bad.yaml",
        "inventory:\n  p2: { host: h, port: 70000 }\n",
    );
    p.run(&["check"])
        .code(2)
        .stderr_has("expected a port number, 1 to 65535")
        .stderr_has("[runbooks/env/bad.yaml:2:24]");
}

// ------------------------------------------------------------------------------ the environment

/// Regression: a secret given to an `on:` step through `env:` was on the command line of
/// three shells and ssh here (`export S='...'` spelled into them), and so on the host's too.
#[test]
fn a_secret_in_the_env_of_an_on_step_is_on_no_command_line_yet_reaches_the_host() {
    let ssh = need_ssh();
    let p = Project::new().with_deadline(Duration::from_secs(180));
    p.write("runbooks/env/hosts.yaml", &hosts_env(&ssh));
    let token = unique("tok");
    let secret = format!("{token}-and-more");
    // A sleep no other process runs: its fraction is this test's own.
    let sleep = format!("sleep 8.{}", unique("").replace('x', ""));
    p.write(
        "runbooks/fan-out.yaml",
        &on_runbook(
            "a",
            &format!(
                "    env:\n      S: \"{{{{ env.MY_SECRET }}}}\"\n    run: {sleep}; printf %s \"$S\" | sha256sum\n"
            ),
        ),
    );
    let mut cmd = p.cmd(&["run", "fan-out", "--env", "hosts"]);
    cmd.env("MY_SECRET", &secret);
    let run = p.spawn_with(cmd);

    // The remote sleep runs: every process of the step exists now, here and on the host.
    let deadline = Instant::now() + Duration::from_secs(60);
    while command_lines_holding(&sleep).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the remote `{sleep}` never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let holding = command_lines_holding(&token);
    let out = run.finish();
    assert!(
        holding.is_empty(),
        "the secret is on command lines while the step runs: {holding:#?}"
    );
    out.code(0);
    let log = p.log(&out.id(), "remote");
    assert!(
        log.contains(&format!("[a] {}  -", sha256_hex(&secret))),
        "the host did not see the secret:\n{log}"
    );
}

/// What may be in a value — lines, quotes of both kinds, `$`, backquotes, backslashes, a
/// trailing newline — reaches every host as it was, the step's own variables too.
#[test]
fn env_values_of_any_shape_reach_every_host_intact() {
    let ssh = need_ssh();
    let p = Project::new().with_deadline(Duration::from_secs(180));
    p.write("runbooks/env/hosts.yaml", &hosts_env(&ssh));
    let value = "line one\nit's \"quoted\" $HOME ${X:-y} `id` $(id) \\ \\n back\\\\slash\n\n";
    p.write(
        "runbooks/fan-out.yaml",
        &on_runbook(
            "a, b",
            "    env:\n      S: \"{{ env.MY_SECRET }}\"\n      EMPTY: \"\"\n    \
             run: 'printf %s \"$S\" | sha256sum; echo \"empty=[$EMPTY] step=$RUNBOOK_STEP mode=$RUNBOOK_MODE\"'\n",
        ),
    );
    let mut cmd = p.cmd(&["run", "fan-out", "--env", "hosts"]);
    cmd.env("MY_SECRET", value);
    let out = p.run_with(cmd);
    out.code(0);
    let log = p.log(&out.id(), "remote");
    for h in ["a", "b"] {
        assert!(
            log.contains(&format!("[{h}] {}  -", sha256_hex(value))),
            "host {h} got another value:\n{log}"
        );
        assert!(
            log.contains(&format!("[{h}] empty=[] step=remote mode=real")),
            "host {h}:\n{log}"
        );
    }
}

// ------------------------------------------------------------------------------ the supervisor

/// Regression: a step's shell inherited the supervisor's blocked SIGCHLD, so `wait` for a
/// background job that ended while it waited never returned (the fan-out of `on:` steps
/// waits for its hosts that way).
#[test]
fn a_step_that_waits_for_its_background_job_ends_with_it() {
    let p = Project::with_runbook(
        "waits",
        "scenario: waits\ntitle: Waits\nrto: 5m\nsteps:\n  - id: waits\n    budget: 1m\n    timeout: 30s\n    drill: run\n    run: '( sleep 1 ) & wait $!; echo waited'\n",
    );
    let out = p.run_scenario(&[]);
    out.code(0);
    assert!(p.log(&out.id(), "waits").contains("waited"));
}
