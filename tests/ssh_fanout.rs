//! The ssh fan-out of `on:` steps, from the operator's side: what an environment's inventory
//! may hold (checked when it is loaded, by `check` and `run` alike), and what the step's
//! environment looks like on the way to the hosts (never on a command line, intact on arrival).
//!
//! Tests that reach a host use the sshd on loopback that `tests/suite.sh` starts
//! (`tests/suite.sh --test ssh_fanout`); without it they fail, naming the variable they missed.

mod support;

use support::Project;

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
