//! What a step leaves running when it ends, through the real binary: a process that moved
//! to a process group of its own but stayed in the run's session is the step's, and ends
//! with it; one that left for a session of its own is a daemon, started on purpose, and
//! keeps running.

use crate::support::{Project, pid_alive};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Kills the daemons a test started, however the test ends.
struct Daemons(Vec<i32>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Starts, in the background, a `timeout` (which puts itself in a group of its own), a
/// `setpgrp`, and a `setsid` daemon, each writing its pid (and the `timeout`'s child its own),
/// and waits until all have.
const LEAVE: &str = "timeout 60 sh -c 'echo $$ > P-timeout-child.pid; exec sleep 1000' </dev/null >/dev/null 2>&1 & echo $! > P-timeout.pid; \
perl -e 'setpgrp; open(F, \">P-setpgrp.pid\"); print F $$; close F; sleep 1000' </dev/null >/dev/null 2>&1 & \
setsid sh -c 'echo $$ > P-daemon.pid; exec sleep 1000' </dev/null >/dev/null 2>&1 & \
while [ ! -s P-timeout-child.pid ] || [ ! -s P-setpgrp.pid ] || [ ! -s P-daemon.pid ]; do sleep 0.05; done";

#[test]
fn a_child_that_moved_to_a_process_group_of_its_own_does_not_outlive_its_step() {
    // `timeout 60 cmd &` and `setpgrp` left their processes running after the run (2 of 2).
    let yaml = format!(
        r#"
scenario: groups
title: Steps that leave processes in groups of their own
rto: 5m
steps:
  - id: ends
    budget: 1m
    run: "{}"
    drill: run
  - id: killed
    budget: 1m
    timeout: 2s
    on_failure: continue
    run: "{}; sleep 100"
    drill: run
"#,
        LEAVE.replace('P', "ends").replace('"', "\\\""),
        LEAVE.replace('P', "killed").replace('"', "\\\""),
    );
    let p = Project::with_runbook("groups", &yaml);
    let out = p.run_scenario(&["--run-id", "r1"]);
    let daemons = Daemons(vec![
        p.pid_file("ends-daemon.pid"),
        p.pid_file("killed-daemon.pid"),
    ]);
    // `killed` timed out; it is `on_failure: continue`, so the run went on and succeeded.
    out.code(0);
    for step in ["ends", "killed"] {
        for what in ["timeout", "timeout-child", "setpgrp"] {
            let pid = p.pid_file(&format!("{step}-{what}.pid"));
            assert!(
                !pid_alive(pid),
                "the `{what}` process ({pid}) of step `{step}` outlived the run"
            );
        }
    }
    for &pid in &daemons.0 {
        assert!(
            pid_alive(pid),
            "a daemon ({pid}), in a session of its own, was killed with its step"
        );
    }
}
