//! `runbook run` through the real binary: real processes, real clocks, the journal on disk.
//! Each test gets its own project folder (`runbooks/<scenario>.yaml`, `.runbook/` state) with
//! `NO_COLOR=1` and no standard input. Timing asserts are lower bounds, except where the point
//! of the test is that steps overlap; there the margin is wide.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::{Project, events_of, files_under, pid_alive, repo_root, wait_until};
use nix::unistd::Pid;
use serde_json::Value;

/// The `step_finished` records of one step, in order.
fn finished_of<'a>(journal: &'a [Value], step: &str) -> Vec<&'a Value> {
    journal
        .iter()
        .filter(|e| e["type"] == "step_finished" && e["data"]["step"] == step)
        .collect()
}

#[test]
fn independent_steps_run_at_the_same_time() {
    let p = Project::with_runbook(
        "parallel",
        r#"
scenario: parallel
title: Two independent sleeps
rto: 1m
steps:
  - { id: left, budget: 10s, run: sleep 1, drill: run }
  - { id: right, budget: 10s, run: sleep 1, drill: run }
"#,
    );
    let out = p.run_scenario(&["--run-id", "r1"]);
    out.code(0);
    assert!(
        out.elapsed >= Duration::from_secs(1),
        "each step sleeps 1s: {:?}",
        out.elapsed
    );
    assert!(
        out.elapsed < Duration::from_millis(1900),
        "two 1s steps in series would take 2s; the run took {:?}",
        out.elapsed
    );
    // The journal agrees: each step started before the other finished.
    let j = p.journal_events("r1");
    let at = |kind: &str, step: &str| {
        j.iter()
            .find(|e| e["type"] == kind && e["data"]["step"] == step)
            .map(|e| e["seq"].as_u64().unwrap())
            .unwrap()
    };
    assert!(at("step_started", "left") < at("step_finished", "right"));
    assert!(at("step_started", "right") < at("step_finished", "left"));
}

#[test]
fn a_timed_out_step_leaves_no_process_behind() {
    let p = Project::with_runbook(
        "hang",
        r#"
scenario: hang
title: A step that hangs, with a child in the background
rto: 1m
steps:
  - id: stuck
    budget: 1s
    timeout: 1s
    run: sleep 300 & echo $! > child.pid; sleep 300
    drill: run
"#,
    );
    let out = p.run_scenario(&["--run-id", "r1"]);
    out.code(1);
    let child = p.pid_file("child.pid");
    assert!(
        !pid_alive(child),
        "the background child {child} of the timed-out step still runs"
    );
    let j = p.journal_events("r1");
    let f = finished_of(&j, "stuck");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["data"]["status"], "timed_out");
    assert_eq!(events_of(&j, "run_finished")[0]["data"]["status"], "failed");
}

#[test]
fn a_succeeded_step_leaves_no_background_child_behind() {
    let p = Project::with_runbook(
        "leak",
        r#"
scenario: leak
title: A step that exits 0 with a child still in its group
rto: 1m
steps:
  - id: leaky
    budget: 10s
    run: sleep 300 & echo $! > child.pid; exit 0
    drill: run
"#,
    );
    let out = p.run_scenario(&["--run-id", "r1"]);
    out.code(0);
    let child = p.pid_file("child.pid");
    assert!(
        !pid_alive(child),
        "the background child {child} of a finished step still runs"
    );
    assert_eq!(
        finished_of(&p.journal_events("r1"), "leaky")[0]["data"]["status"],
        "succeeded"
    );
}

#[test]
fn every_line_a_step_prints_reaches_its_log_in_order() {
    // The supervisor reads every step's stdout and stderr in one poll loop: more than a pipe
    // holds, from two steps at once, and a last line with no newline, must all arrive whole.
    let p = Project::with_runbook(
        "chatty",
        r#"
scenario: chatty
title: Two steps that print a lot
rto: 1m
steps:
  - id: out
    budget: 10s
    run: for i in $(seq 1 20000); do echo "out line $i"; done; printf 'no newline at the end'
    drill: run
  - id: err
    budget: 10s
    run: for i in $(seq 1 20000); do echo "err line $i" >&2; done
    drill: run
"#,
    );
    let out = p.run_scenario(&["--run-id", "r1"]);
    out.code(0);
    let log = p.log("r1", "out");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.len(),
        20001,
        "{}",
        &log[log.len().saturating_sub(200)..]
    );
    for (k, line) in lines[..20000].iter().enumerate() {
        assert_eq!(*line, format!("out line {}", k + 1));
    }
    assert_eq!(lines[20000], "no newline at the end");
    let err = p.log("r1", "err");
    assert_eq!(err.lines().count(), 20000);
    assert_eq!(err.lines().last(), Some("err line 20000"));
    // The terminal shows them too, each once.
    for line in [
        "out | out line 20000",
        "out | no newline at the end",
        "err | err line 20000",
    ] {
        assert_eq!(
            out.stderr.matches(line).count(),
            1,
            "`{line}` on the terminal"
        );
    }
}

/// `runbook run` of `n` steps of `sleep 1` at once, under a limit on open files of `soft`
/// (and `hard`, which stays when None).
fn many_at_once(n: usize, soft: u64, hard: Option<u64>) -> (Project, crate::support::Out) {
    let mut yaml = String::from("scenario: many\ntitle: Many at once\nrto: 1h\nsteps:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - {{ id: s{i:03}, budget: 1m, run: sleep 1, drill: run }}\n"
        ));
    }
    let p = Project::with_runbook("many", &yaml);
    let mut cmd = p.cmd(&["run", "many", "--run-id", "r1"]);
    // SAFETY: getrlimit and setrlimit are async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            use nix::sys::resource::{Resource, getrlimit, setrlimit};
            let (_, max) = getrlimit(Resource::RLIMIT_NOFILE)?;
            if max <= 1024 {
                return Err(std::io::Error::other(
                    "the test needs a hard limit on open files above 1,024",
                ));
            }
            setrlimit(Resource::RLIMIT_NOFILE, soft, hard.unwrap_or(max))?;
            Ok(())
        });
    }
    let out = p.run_with(cmd);
    (p, out)
}

#[test]
fn hundreds_of_steps_at_once_start_past_the_soft_limit_on_open_files() {
    // Regression: each running step holds two pipes in its supervisor, so 200 steps at once
    // ran out of descriptors under a soft limit of 256 and failed with "Too many open files".
    let (p, out) = many_at_once(200, 256, None);
    out.code(0);
    let j = p.journal_events("r1");
    let ok = events_of(&j, "step_finished")
        .iter()
        .filter(|e| e["data"]["status"] == "succeeded")
        .count();
    assert_eq!(ok, 200, "{}", out.stderr);
}

#[test]
fn a_step_past_the_hard_limit_on_open_files_says_what_to_lower() {
    let (p, out) = many_at_once(60, 64, Some(64));
    out.code(1);
    let log = p.log("r1", "s059");
    assert!(
        log.contains("too many steps at once for this system's limit on open files (64); lower --max-parallel"),
        "{log}\n{}",
        out.stderr
    );
}

/// Commands with no shell syntax are exec'd directly, as make does; each must do exactly what
/// `sh -c` does with it: builtins that have no program (`:`, `command`, `type`) or a program
/// that differs (`echo`), a program not found, a script with no `#!`, and `PWD`.
#[test]
fn a_plain_command_does_what_sh_c_does() {
    let commands = [
        ":",
        "command -v sh",
        "type sh",
        "echo -e plain",
        "pwd",
        "printenv PWD",
        "no-such-program-here arg",
        "./no-shebang.sh",
        "false",
        "true --version",
        "ls no-shebang.sh",
    ];
    let mut yaml = String::from("scenario: plain\ntitle: Plain commands\nrto: 1m\nsteps:\n");
    for (i, c) in commands.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{ id: c{i}, budget: 10s, run: {c:?}, drill: run, on_failure: continue }}\n"
        ));
    }
    let p = Project::with_runbook("plain", &yaml);
    p.script("no-shebang.sh", "echo run by the shell\n");
    let mut cmd = p.cmd(&["run", "plain", "--run-id", "r1"]);
    // The operator's PWD names another folder: `sh` puts the working folder there.
    cmd.env("PWD", "/");
    p.run_with(cmd);
    let j = p.journal_events("r1");
    for (i, c) in commands.iter().enumerate() {
        let sh = std::process::Command::new("sh")
            .args(["-c", c])
            .current_dir(p.path())
            .env("PWD", "/")
            .output()
            .unwrap();
        let expected =
            String::from_utf8_lossy(&sh.stdout).into_owned() + &String::from_utf8_lossy(&sh.stderr);
        let step = format!("c{i}");
        assert_eq!(p.log("r1", &step), expected, "the log of `{c}`");
        let finished = finished_of(&j, &step);
        assert_eq!(
            finished[0]["data"]["exit_code"],
            sh.status.code().unwrap(),
            "the exit code of `{c}`"
        );
    }
}

#[test]
fn a_step_never_runs_after_its_need_failed() {
    let p = Project::with_runbook(
        "broken",
        r#"
scenario: broken
title: The first step fails
rto: 1m
steps:
  - { id: first, budget: 10s, run: exit 3, drill: run }
  - { id: second, needs: [first], budget: 10s, run: touch second-ran, drill: run }
"#,
    );
    let out = p.run_scenario(&["--run-id", "r1"]);
    out.code(1);
    assert!(!p.path().join("second-ran").exists(), "`second` ran");
    let j = p.journal_events("r1");
    let first = finished_of(&j, "first");
    assert_eq!(first[0]["data"]["status"], "failed");
    assert_eq!(first[0]["data"]["exit_code"], 3);
    let second = finished_of(&j, "second");
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0]["data"]["status"], "not_run");
    assert!(
        events_of(&j, "step_started")
            .iter()
            .all(|e| e["data"]["step"] != "second"),
        "`second` has a step_started"
    );
}

#[test]
fn outputs_and_vars_arrive_as_literal_text() {
    let p = Project::with_runbook(
        "inject",
        r#"
scenario: inject
title: Hostile values in outputs and variables
rto: 1m
vars:
  semi: harmless
  subst: harmless
steps:
  - id: produce
    budget: 10s
    run: |
      echo 'semi=; touch x' >> "$RUNBOOK_OUTPUT"
      echo 'subst=$(touch x)' >> "$RUNBOOK_OUTPUT"
    drill: run
  - id: consume
    needs: [produce]
    budget: 10s
    run: |
      echo out-semi {{ steps.produce.outputs.semi }}
      echo out-subst {{ steps.produce.outputs.subst }}
      echo var-semi {{ semi }}
      echo var-subst {{ subst }}
    drill: run
"#,
    );
    let out = p.run_scenario(&[
        "--run-id",
        "r1",
        "--var",
        "semi=; touch x",
        "--var",
        "subst=$(touch x)",
    ]);
    out.code(0);
    let made: Vec<PathBuf> = files_under(p.path())
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "x"))
        .collect();
    assert!(made.is_empty(), "a value executed: {made:?}");
    let log = p.log("r1", "consume");
    for line in [
        "out-semi ; touch x",
        "out-subst $(touch x)",
        "var-semi ; touch x",
        "var-subst $(touch x)",
    ] {
        assert!(
            log.lines().any(|l| l == line),
            "`{line}` not in the log:\n{log}"
        );
    }
}

#[test]
fn a_secret_never_reaches_the_state_folder_or_the_terminal() {
    const SECRET: &str = "some-long-secret-value";
    let p = Project::with_runbook(
        "secret",
        r#"
scenario: secret
title: A step that prints its secret every way it can
rto: 1m
secrets: [MY_SECRET]
steps:
  - id: leak
    budget: 10s
    run: |
      echo "token is $MY_SECRET"
      echo "to stderr: $MY_SECRET" >&2
      echo "token=$MY_SECRET" >> "$RUNBOOK_OUTPUT"
    drill: run
  - id: pass-on
    needs: [leak]
    budget: 10s
    run: echo {{ steps.leak.outputs.token }} {{ env.MY_SECRET }}
    drill: run
"#,
    );
    let mut cmd = p.cmd(&["run", "secret", "--run-id", "r1", "--json"]);
    cmd.env("MY_SECRET", SECRET);
    let out = p.run_with(cmd);
    out.code(0);
    let terminal = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !terminal.contains(SECRET),
        "the secret on the terminal:\n{terminal}"
    );
    assert!(
        terminal.contains("***"),
        "no mask on the terminal:\n{terminal}"
    );

    let mut state_text = String::new();
    for f in files_under(&p.path().join(".runbook")) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the secret is in {}",
            f.display()
        );
        state_text.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(state_text.contains("***"), "no mask in the state folder");
    assert!(p.log("r1", "leak").contains("token is ***"));

    let report = p.run(&["report", "--last", "--format", "json"]);
    report.code(0);
    assert!(
        !report.stdout.contains(SECRET),
        "the secret is in the report"
    );
}

/// A key spans lines, and output is masked line by line: no line of it reaches a log or the
/// terminal.
#[test]
fn no_line_of_a_multi_line_secret_reaches_the_state_folder_or_the_terminal() {
    const LINES: [&str; 2] = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "CBKcwggSjAgEAAoIBAQC7"];
    let key = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n{}\n-----END PRIVATE KEY-----",
        LINES[0], LINES[1]
    );
    let p = Project::with_runbook(
        "pem",
        r#"
scenario: pem
title: A step that prints a key
rto: 1m
secrets: [KEY]
steps:
  - { id: leak, budget: 10s, run: 'echo "$KEY"; echo "$KEY" >&2', drill: run }
"#,
    );
    let mut cmd = p.cmd(&["run", "pem", "--run-id", "r1", "--json"]);
    cmd.env("KEY", &key);
    let out = p.run_with(cmd);
    out.code(0);
    let terminal = format!("{}{}", out.stdout, out.stderr);
    for line in LINES {
        assert!(!terminal.contains(line), "on the terminal:\n{terminal}");
        for f in files_under(&p.path().join(".runbook")) {
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            assert!(
                !text.contains(line),
                "a line of the key is in {}",
                f.display()
            );
        }
    }
    // Four lines of the key, to stdout and to stderr.
    assert_eq!(p.log("r1", "leak").matches("***").count(), 8);
}

/// Regression: a secret a step wrote to `$RUNBOOK_OUTPUT` stayed in clear in the state folder
/// (`outputs/<step>.<attempt>.env`).
#[test]
fn a_secret_in_a_step_output_is_masked_on_disk_but_passed_on_intact() {
    const SECRET: &str = "another-long-secret-value";
    let p = Project::with_runbook(
        "handoff",
        r#"
scenario: handoff
title: A step hands a secret to the next
rto: 1m
secrets: [MY_SECRET]
steps:
  - id: mint
    budget: 10s
    run: echo "token=$MY_SECRET" >> "$RUNBOOK_OUTPUT"
    drill: run
  - id: use
    needs: [mint]
    budget: 10s
    run: test {{ steps.mint.outputs.token }} = "$MY_SECRET"
    drill: run
"#,
    );
    let mut cmd = p.cmd(&["run", "handoff", "--run-id", "r1"]);
    cmd.env("MY_SECRET", SECRET);
    p.run_with(cmd).code(0);
    let env_file = p.run_dir("r1").join("outputs/mint.1.env");
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert_eq!(text.trim(), "token=***");
}

#[test]
fn a_second_run_of_a_live_scenario_is_refused() {
    let p = Project::with_runbook(
        "busy",
        r#"
scenario: busy
title: A run that takes a while
rto: 1m
steps:
  - { id: slow, budget: 10s, run: sleep 3, drill: run }
"#,
    );
    let first = p.spawn(&["run", "busy", "--run-id", "first-run"]);
    let first_pid = first.id();
    let journal = p.run_dir("first-run").join("journal.jsonl");
    wait_until("the first run has a journal", || journal.is_file());

    let second = p.run_scenario(&["--run-id", "second-run"]);
    second.code(2);
    assert!(
        second.stderr.contains("first-run"),
        "the refusal does not name the live run:\n{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&first_pid.to_string()),
        "the refusal does not name the holder's pid {first_pid}:\n{}",
        second.stderr
    );
    assert!(
        !p.run_dir("second-run").exists(),
        "the refused run left a run folder"
    );

    let out = first.finish();
    out.code(0);
}

#[test]
fn verify_catches_a_changed_byte() {
    let p = Project::with_runbook(
        "chain",
        r#"
scenario: chain
title: A short run to tamper with
rto: 1m
steps:
  - { id: alpha, budget: 10s, run: "true", drill: run }
  - { id: beta, needs: [alpha], budget: 10s, run: "true", drill: run }
"#,
    );
    p.run_scenario(&["--run-id", "r1"]).code(0);
    let ok = p.run(&["verify", "r1"]);
    ok.code(0);

    let path = p.run_dir("r1").join("journal.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let (i, seq) = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["type"] == "step_finished" && v["data"]["step"] == "alpha")
                .then(|| (i, v["seq"].as_u64().unwrap()))
        })
        .expect("alpha's step_finished");
    let before = lines[i].clone();
    lines[i] = lines[i].replacen(r#""step":"alpha""#, r#""step":"alphb""#, 1);
    assert_eq!(
        before
            .bytes()
            .zip(lines[i].bytes())
            .filter(|(a, b)| a != b)
            .count(),
        1,
        "exactly one byte changes"
    );
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let bad = p.run(&["verify", "r1"]);
    bad.code(1);
    assert!(
        bad.stdout.contains(&format!("seq {seq}")),
        "verify should name seq {seq}:\n{}{}",
        bad.stdout,
        bad.stderr
    );
}

#[test]
fn sigint_stops_the_run_with_exit_3() {
    let p = Project::with_runbook(
        "stop",
        r#"
scenario: stop
title: A long step to interrupt
rto: 1m
steps:
  - id: long
    budget: 1m
    run: echo $$ > shell.pid; sleep 300 & echo $! > child.pid; wait
    drill: run
"#,
    );
    let run = p.spawn(&["run", "stop", "--run-id", "r1"]);
    let pid = run.id() as i32;
    let child_pid = p.path().join("child.pid");
    wait_until("the step has started its child", || {
        std::fs::read_to_string(&child_pid).is_ok_and(|s| s.ends_with('\n'))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send SIGINT");
    let out = run.finish();
    out.code(3);

    for f in ["shell.pid", "child.pid"] {
        let pid = p.pid_file(f);
        assert!(!pid_alive(pid), "the step's process {pid} ({f}) still runs");
    }
    let j = p.journal_events("r1");
    assert_eq!(events_of(&j, "run_interrupted").len(), 1, "{j:#?}");
    assert!(events_of(&j, "run_finished").is_empty());
}

/// A run whose one step ignores SIGTERM, so that a graceful stop waits out the 5 s grace
/// before its SIGKILL; returned once the step has started its child, with `runbook`'s pid.
fn stubborn_run(stdin: Option<std::os::fd::OwnedFd>) -> (Project, crate::support::Running, Pid) {
    let p = Project::with_runbook(
        "stubborn",
        r#"
scenario: stubborn
title: A step that ignores SIGTERM
rto: 1m
steps:
  - id: stubborn
    budget: 1m
    run: trap '' TERM; echo $$ > shell.pid; sleep 300 & echo $! > child.pid; wait
    drill: run
"#,
    );
    let mut cmd = p.cmd(&["run", "stubborn", "--run-id", "r1"]);
    if let Some(fd) = stdin {
        cmd.stdin(std::process::Stdio::from(fd));
    }
    let run = p.spawn_with(cmd);
    let pid = Pid::from_raw(run.id() as i32);
    let child_pid = p.path().join("child.pid");
    wait_until("the step has started its child", || {
        std::fs::read_to_string(&child_pid).is_ok_and(|s| s.ends_with('\n'))
    });
    (p, run, pid)
}

fn ctrl_c(pid: Pid) {
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
}

/// The stubborn run ended interrupted, resumable, with nothing of its step left.
fn assert_stopped_and_gone(p: &Project, out: &crate::support::Out) {
    out.code(3);
    for f in ["shell.pid", "child.pid"] {
        let pid = p.pid_file(f);
        assert!(!pid_alive(pid), "the step's process {pid} ({f}) still runs");
    }
    let j = p.journal_events("r1");
    assert_eq!(
        finished_of(&j, "stubborn")[0]["data"]["status"],
        "interrupted"
    );
    assert_eq!(events_of(&j, "run_interrupted").len(), 1, "{j:#?}");
}

#[test]
fn a_second_sigint_kills_the_running_steps_at_once() {
    let (p, run, pid) = stubborn_run(None);
    ctrl_c(pid);
    std::thread::sleep(Duration::from_millis(500));
    ctrl_c(pid);
    // Well inside the grace the first press would have waited out.
    let out = run.finish_within(Duration::from_secs(4));
    assert_stopped_and_gone(&p, &out);
}

#[test]
fn on_a_terminal_ctrl_c_asks_first_then_stops_then_kills() {
    // A stray key must not stop a recovery: on a terminal the first Ctrl-C asks, a second
    // within 5 s stops the run gracefully (here it waits out the grace), a third kills at once.
    let (_terminal, tty) = open_pty();
    let (p, mut run, pid) = stubborn_run(Some(tty));
    ctrl_c(pid);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        !run.has_ended(),
        "the first Ctrl-C on a terminal stopped the run"
    );
    assert!(pid_alive(p.pid_file("child.pid")));
    ctrl_c(pid);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        !run.has_ended(),
        "the graceful stop did not wait for the step"
    );
    ctrl_c(pid);
    let out = run.finish_within(Duration::from_secs(4));
    assert!(
        out.stderr
            .contains("press Ctrl-C again within 5 seconds to stop the run"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("killed 1 running step(s)"),
        "{}",
        out.stderr
    );
    assert_stopped_and_gone(&p, &out);
}

/// A pseudo-terminal: (the terminal's side, the side a program reads as its terminal).
pub(crate) fn open_pty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let (mut terminal, mut tty) = (-1, -1);
    // SAFETY: openpty writes two new descriptors, which become owned here.
    let rc = unsafe {
        nix::libc::openpty(
            &mut terminal,
            &mut tty,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both were just opened and nothing else owns them.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(terminal),
            std::os::fd::OwnedFd::from_raw_fd(tty),
        )
    }
}

/// If the step supervisor dies, that is the engine's fault, not its steps': the engine sees
/// the running ones to their end in its place — what they print still logged (they would die
/// of SIGPIPE on a pipe nobody reads) and their real exit journaled — and the run then stops,
/// resumable (exit 3), rather than hanging or failing them.
#[test]
fn a_dead_step_supervisor_stops_the_run_resumable_once_its_steps_have_ended() {
    let p = Project::with_runbook(
        "orphan",
        r#"
scenario: orphan
title: A step that talks on after its supervisor is killed
rto: 1m
steps:
  - id: long
    budget: 1m
    run: echo started > started.txt; for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; sleep 0.2; done; echo done > done.txt
    drill: run
  - id: after
    needs: [long]
    budget: 1m
    run: echo after
    drill: run
"#,
    );
    let run = p.spawn(&["run", "orphan", "--run-id", "r1"]);
    wait_until("the step has started", || {
        p.path().join("started.txt").is_file()
    });
    let killed = p.kill_supervisor_of("r1");
    assert_eq!(killed, 1, "one supervisor for the run");
    let out = run.finish();
    out.code(3);
    assert!(
        p.path().join("done.txt").is_file(),
        "the step ran to its end"
    );
    let j = p.journal_events("r1");
    let finished = events_of(&j, "step_finished");
    assert_eq!(finished.len(), 1, "{j:#?}");
    assert_eq!(finished[0]["data"]["status"], "succeeded");
    assert_eq!(finished[0]["data"]["exit_code"], 0);
    assert_eq!(
        events_of(&j, "run_interrupted")[0]["data"]["reason"],
        "supervisor_died"
    );
    assert!(
        p.log("r1", "long").contains("line 10"),
        "{}",
        p.log("r1", "long")
    );
    assert!(
        p.read(".runbook/runs/r1/steps.status")
            .contains("long.1 exit 0"),
        "the engine recorded the end in the supervisor's place"
    );
    let (code, _, err) = p.run(&["resume", "r1"]).parts();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn json_writes_one_event_a_line() {
    let p = Project::with_runbook(
        "stream",
        r#"
scenario: stream
title: A run watched as JSON
rto: 1m
steps:
  - { id: one, budget: 10s, run: echo hello, drill: run }
  - { id: two, needs: [one], budget: 10s, run: "true", drill: run }
"#,
    );
    let out = p.run_scenario(&["--run-id", "r1", "--json"]);
    out.code(0);
    let events: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(events.len() >= 6, "{events:#?}");
    for (n, e) in events.iter().enumerate() {
        let o = e.as_object().expect("an object");
        for k in ["seq", "at", "elapsed_ms", "type", "data", "prev", "hash"] {
            assert!(o.contains_key(k), "line {n} has no `{k}`: {e}");
        }
        assert_eq!(e["seq"], n as u64, "seq counts from 0 without gaps");
        if n > 0 {
            assert_eq!(e["prev"], events[n - 1]["hash"], "the chain links");
        }
    }
    assert_eq!(events.first().unwrap()["type"], "run_started");
    assert_eq!(events[events.len() - 2]["type"], "run_finished");
    assert_eq!(events.last().unwrap()["type"], "run_sealed");
    // The stream is the journal.
    assert_eq!(events, p.journal_events("r1"));
}

#[test]
fn report_json_has_the_design_fields_and_values() {
    let p = Project::with_runbook(
        "timed",
        r#"
scenario: timed
title: A run with one overrunning step
rto: 1m
steps:
  - { id: quick, title: Quick, budget: 10s, run: "true", drill: run }
  - { id: slow, title: Slow, needs: [quick], budget: 1s, run: sleep 1.5, drill: run }
"#,
    );
    p.run_scenario(&["--run-id", "r1", "--as", "tester"])
        .code(0);
    let r = p.last_report_json();
    for k in [
        "run_id",
        "scenario",
        "mode",
        "status",
        "operator",
        "started_at",
        "finished_at",
        "elapsed_s",
        "rto_target_s",
        "rto_met",
        "machine_s",
        "human_wait_s",
        "critical_path",
        "steps",
        "escalations",
        "breaches",
    ] {
        assert!(r.get(k).is_some(), "the report has no `{k}`: {r:#}");
    }
    assert_eq!(r["run_id"], "r1");
    assert_eq!(r["scenario"], "timed");
    assert_eq!(r["mode"], "real");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["operator"], "tester");
    let t = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap())
            .unwrap_or_else(|e| panic!("`{k}` is not RFC 3339: {e}"))
    };
    assert!(t("finished_at") - t("started_at") >= chrono::Duration::milliseconds(1500));
    assert!(r["elapsed_s"].as_f64().unwrap() >= 1.5);
    assert_eq!(r["rto_target_s"], 60.0);
    assert_eq!(r["rto_met"], true);
    assert!(r["machine_s"].as_f64().unwrap() >= 1.5);
    assert_eq!(r["human_wait_s"], 0.0);
    assert_eq!(r["critical_path"], serde_json::json!(["quick", "slow"]));
    assert_eq!(r["escalations"], serde_json::json!([]));

    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        for k in [
            "id",
            "title",
            "status",
            "started_at",
            "finished_at",
            "duration_s",
            "budget_s",
            "breached",
            "attempts",
            "approved_by",
            "wait_s",
        ] {
            assert!(s.get(k).is_some(), "a step has no `{k}`: {s:#}");
        }
        assert_eq!(s["status"], "succeeded");
        assert_eq!(s["attempts"], 1);
        assert_eq!(s["approved_by"], Value::Null);
    }
    let (quick, slow) = (&steps[0], &steps[1]);
    assert_eq!(quick["id"], "quick");
    assert_eq!(quick["title"], "Quick");
    assert_eq!(quick["budget_s"], 10.0);
    assert_eq!(quick["breached"], false);
    assert_eq!(slow["id"], "slow");
    assert_eq!(slow["budget_s"], 1.0);
    assert_eq!(slow["breached"], true);
    assert!(slow["duration_s"].as_f64().unwrap() >= 1.5);

    let breaches = r["breaches"].as_array().unwrap();
    assert_eq!(breaches.len(), 1, "{breaches:#?}");
    assert_eq!(breaches[0]["step"], "slow");
    assert_eq!(breaches[0]["budget_s"], 1.0);
}

#[test]
fn a_step_that_fails_twice_succeeds_on_its_third_attempt() {
    let p = Project::with_runbook(
        "flaky",
        r#"
scenario: flaky
title: A step that needs three tries
rto: 1m
steps:
  - id: flaky
    budget: 10s
    retries: 2
    backoff: 1s
    run: n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count; [ $n -ge 3 ]
    drill: run
"#,
    );
    let out = p.run_scenario(&["--run-id", "r1"]);
    out.code(0);
    assert!(
        out.elapsed >= Duration::from_secs(2),
        "two backoffs of 1s: {:?}",
        out.elapsed
    );
    let count = std::fs::read_to_string(p.path().join("count")).unwrap();
    assert_eq!(count.trim(), "3");
    let j = p.journal_events("r1");
    let attempts: Vec<&Value> = events_of(&j, "step_started")
        .iter()
        .map(|e| &e["data"]["attempt"])
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let finished: Vec<&Value> = finished_of(&j, "flaky")
        .iter()
        .map(|e| &e["data"]["status"])
        .collect();
    assert_eq!(finished, ["failed", "failed", "succeeded"]);
    let r = p.last_report_json();
    assert_eq!(r["steps"][0]["attempts"], 3);
    assert_eq!(r["steps"][0]["status"], "succeeded");
}

const ONE_STEP: &str = r#"
scenario: codes
title: One step
rto: 1m
vars:
  database: omni
steps:
  - id: only
    budget: 10s
    run: echo {{ database }}
    drill: run
"#;

#[test]
fn exit_0_when_every_step_succeeded() {
    let p = Project::with_runbook("codes", ONE_STEP);
    p.run_scenario(&[]).code(0);
}

#[test]
fn exit_1_when_a_step_failed() {
    let p = Project::with_runbook(
        "codes",
        &ONE_STEP.replace("run: echo {{ database }}", "run: exit 7"),
    );
    p.run_scenario(&[]).code(1);
}

#[test]
fn exit_2_for_an_invalid_runbook() {
    let p = Project::with_runbook(
        "codes",
        &ONE_STEP.replace("budget: 10s", "needs: [missing]\n    budget: 10s"),
    );
    let out = p.run_scenario(&[]);
    out.code(2);
    assert!(out.stderr.contains("missing"), "{}", out.stderr);
    assert!(
        !p.path().join(".runbook/runs").exists(),
        "an invalid runbook started a run"
    );
}

#[test]
fn exit_2_for_a_bad_var() {
    let p = Project::with_runbook("codes", ONE_STEP);
    let unknown = p.run_scenario(&["--var", "databse=x"]);
    unknown.code(2);
    assert!(unknown.stderr.contains("databse"), "{}", unknown.stderr);
    let malformed = p.run_scenario(&["--var", "database"]);
    malformed.code(2);
    assert!(malformed.stderr.contains("K=V"), "{}", malformed.stderr);
    assert!(
        !p.path().join(".runbook/runs").exists(),
        "a bad --var started a run"
    );
}

/// An `on:` host missing from the inventory is found before anything runs, not when the step
/// comes up in the middle of an incident.
#[test]
fn exit_2_before_anything_runs_for_hosts_missing_from_the_inventory() {
    let p = Project::with_runbook(
        "remote",
        r#"
scenario: remote
title: A first step, then one on two hosts
rto: 1m
steps:
  - { id: first, budget: 5s, run: touch first-ran, drill: run }
  - { id: there, needs: [first], budget: 5s, run: "true", drill: run, on: [db1, db2] }
"#,
    );
    let out = p.run_scenario(&[]);
    out.code(2);
    out.stderr_has("hosts not in the inventory: `db1` (step `there`), `db2` (step `there`)");
    out.stderr_has("pass `--env NAME`");
    assert!(
        !p.path().join("first-ran").exists(),
        "a step ran before the check"
    );
    assert!(
        !p.path().join(".runbook/runs").exists(),
        "a run was started"
    );
}

const MISSED_RTO: &str = r#"
scenario: late
title: A step longer than the whole RTO
rto: 1s
steps:
  - { id: long, budget: 5s, run: sleep 2, drill: run }
"#;

#[test]
fn exit_4_with_strict_rto_when_the_rto_is_missed() {
    let p = Project::with_runbook("late", MISSED_RTO);
    p.run_scenario(&["--strict-rto"]).code(4);
    assert_eq!(p.last_report_json()["rto_met"], false);
}

#[test]
fn exit_0_without_strict_rto_when_the_rto_is_missed() {
    let p = Project::with_runbook("late", MISSED_RTO);
    p.run_scenario(&[]).code(0);
    assert_eq!(p.last_report_json()["rto_met"], false);
}

#[test]
fn the_quickstart_succeeds_and_reports_its_breach() {
    let p = Project::new();
    let examples = p.path().join("examples");
    std::fs::create_dir(&examples).unwrap();
    let src = repo_root().join("examples");
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), examples.join(e.file_name())).unwrap();
        }
    }
    // As its header says for a run without questions: alice approves the gate up front.
    p.run(&["run", "examples/quickstart.yaml", "--as", "alice", "--yes"])
        .code(0);
    assert!(p.path().join(".quickstart/data/summary.txt").is_file());
    let r = p.last_report_json();
    assert_eq!(r["status"], "succeeded");
    let breaches = r["breaches"].as_array().unwrap();
    assert!(
        breaches.iter().any(|b| b["step"] == "rebuild-index"),
        "{breaches:#?}"
    );
    let step = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "rebuild-index")
        .unwrap();
    assert_eq!(step["breached"], true);
}

/// The reader of the terminal going away (`runbook run … | head -1`, a closed stderr) does not
/// turn a run that succeeded into a crash: exit 0, the journal whole.
#[test]
fn a_run_whose_stdout_and_stderr_are_closed_still_ends_as_it_should() {
    let p = Project::with_runbook(
        "closed",
        r#"
scenario: closed
title: Output to nobody
rto: 1m
steps:
  - { id: talk, budget: 10s, run: 'sleep 0.5; echo one; echo two >&2', drill: run }
  - { id: more, needs: [talk], budget: 10s, run: 'echo three', drill: run }
"#,
    );
    let mut child = p
        .cmd(&["run", "closed", "--run-id", "r1", "--json"])
        .spawn()
        .unwrap();
    // Close both read ends before the run writes much.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    let j = p.journal_events("r1");
    assert_eq!(
        events_of(&j, "run_finished")[0]["data"]["status"],
        "succeeded"
    );
}

/// A dropped ssh session (SIGHUP) does not stop a recovery half-way: the run goes on.
#[test]
fn a_hangup_does_not_stop_the_run() {
    let p = Project::with_runbook(
        "hup",
        r#"
scenario: hup
title: The terminal goes away
rto: 1m
steps:
  - { id: long, budget: 10s, run: 'sleep 1; echo done > done.txt', drill: run }
"#,
    );
    let child = p.spawn(&["run", "hup", "--run-id", "r1"]);
    p.wait_for("step_started", "long");
    child.signal(nix::sys::signal::Signal::SIGHUP);
    let out = child.finish_within(Duration::from_secs(20));
    out.code(0);
    assert_eq!(p.read("done.txt"), "done\n");
    assert!(p.events_of("r1", "run_interrupted").is_empty());
}

/// `last` is the run that started last, whatever its id (`--run-id zz-old` sorts after the
/// default ids, which begin with their start time).
#[test]
fn last_is_the_newest_run_whatever_its_id() {
    let p = Project::with_runbook(
        "ids",
        "scenario: ids\ntitle: t\nrto: 1m\nsteps:\n  - { id: a, budget: 10s, run: 'true', drill: run }\n",
    );
    p.run_scenario(&["--run-id", "zz-old"]).code(0);
    std::thread::sleep(Duration::from_millis(20));
    let newer = p.run_scenario(&[]).code(0).id();
    assert_ne!(newer, "zz-old");
    let (code, out, err) = p.run(&["report", "--last", "--format", "json"]).parts();
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["run_id"], newer.as_str());
}

/// What a step writes to `$RUNBOOK_OUTPUT` that is not an output is said in its log, the rest
/// is kept; a step downstream missing an output says which step did not write which key.
#[test]
fn outputs_that_cannot_be_read_are_said_and_a_missing_one_is_named() {
    let p = Project::with_runbook(
        "outs",
        r#"
scenario: outs
title: Outputs, good and bad
rto: 1m
steps:
  - id: a
    budget: 10s
    run: printf 'file=/b/x.dump\nnote=caf\351\njust words\nlog<<END\nx\n' >> "$RUNBOOK_OUTPUT"
    drill: run
  - { id: b, needs: [a], budget: 10s, run: 'echo {{ steps.a.outputs.file }}', drill: run }
  - { id: pick, budget: 10s, run: 'echo n=1 >> "$RUNBOOK_OUTPUT"', drill: mock }
  - { id: use, needs: [pick], budget: 10s, run: 'echo {{ steps.pick.outputs.n }}', drill: run }
"#,
    );
    let out = p.run_scenario(&["--run-id", "r1"]);
    out.code(0);
    assert_eq!(p.log("r1", "b"), "/b/x.dump\n", "a's good output is kept");
    let log = p.log("r1", "a");
    for said in [
        "not UTF-8",
        "line 3: ignored, neither `key=value` nor `key<<EOF`: just words",
        "line 4: the block `log<<END` is never closed",
    ] {
        assert!(log.contains(said), "a's log lacks {said:?}:\n{log}");
        assert!(
            out.stderr.contains(said),
            "the terminal lacks {said:?}:\n{}",
            out.stderr
        );
    }

    let out = p.run_scenario(&["--run-id", "r2", "--drill"]);
    out.code(1);
    let j = p.journal_events("r2");
    let error = finished_of(&j, "use")[0]["data"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("step `pick` wrote no output `n` (it was mocked in this drill"),
        "{error}"
    );
}

/// An escalation still being sent when the last step ends is sent and journaled; the run's
/// time is still its steps' time.
#[test]
fn an_escalation_in_flight_at_the_end_is_sent_and_journaled() {
    let p = Project::with_runbook(
        "late",
        r#"
scenario: late
title: A slow notify command
rto: 1m
notify: { lead: "sleep 2; echo {{ message }} >> notes.txt" }
escalation: [{ after: 0s, notify: lead }]
steps:
  - { id: quick, budget: 10s, run: sleep 0.5, drill: run }
"#,
    );
    let out = p.run_scenario(&["--run-id", "r1"]);
    out.code(0);
    assert!(p.read("notes.txt").contains("recovery still in progress"));
    let j = p.journal_events("r1");
    assert_eq!(events_of(&j, "escalated").len(), 1);
    let finished = &events_of(&j, "run_finished")[0]["data"];
    assert!(
        finished["elapsed_ms"].as_u64().unwrap() < 1500,
        "the run's time waited for the notification: {finished}"
    );
}

/// A variable written as a number is kept as written: `9.10` is not `9.1`, `0012345` keeps
/// its zeros, a long number its digits.
#[test]
fn number_looking_values_arrive_as_written() {
    let p = Project::with_runbook(
        "nums",
        "scenario: nums\ntitle: t\nrto: 1m\nvars: { pgver: 9.10, acct: 0012345, big: 12345678901234567890123 }\nsteps:\n  - { id: a, budget: 5s, run: 'echo {{ pgver }} {{ acct }} {{ big }}', drill: run }\n",
    );
    p.run_scenario(&["--run-id", "r1"]).code(0);
    assert_eq!(p.log("r1", "a"), "9.10 0012345 12345678901234567890123\n");
}

/// `status` says when the journal it reads is broken; an empty journal is no run: `verify`,
/// `report` and `history` say so instead of showing a blank one.
#[test]
fn a_broken_or_empty_journal_is_said_by_every_command() {
    let p = Project::with_runbook(
        "j",
        "scenario: j\ntitle: t\nrto: 1m\nsteps:\n  - { id: a, budget: 5s, run: 'true', drill: run }\n",
    );
    p.run_scenario(&["--run-id", "changed"]).code(0);
    p.run_scenario(&["--run-id", "empty"]).code(0);
    let journal = |id: &str| {
        p.path()
            .join(".runbook/runs")
            .join(id)
            .join("journal.jsonl")
    };
    let text = std::fs::read_to_string(journal("changed")).unwrap();
    std::fs::write(
        journal("changed"),
        text.replacen("\"attempt\":1", "\"attempt\":2", 1),
    )
    .unwrap();
    std::fs::write(journal("empty"), "").unwrap();

    let (code, _, err) = p.run(&["status", "changed"]).parts();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is BROKEN at seq"), "{err}");

    let (code, out, _) = p.run(&["verify", "empty"]).parts();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the journal is empty"), "{out}");
    let (code, _, err) = p.run(&["report", "empty", "--format", "json"]).parts();
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = p.run(&["history"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("## \n") && !out.contains("\"\""), "{out}");
}

/// `check` with no paths needs no step library; a FIFO is refused, not read forever; a file
/// that is not UTF-8 is said with its line.
#[test]
fn check_takes_a_project_without_steps_and_refuses_what_is_no_file() {
    let p = Project::with_runbook(
        "plain",
        "scenario: plain\ntitle: t\nrto: 1m\nsteps:\n  - { id: a, budget: 5s, run: 'true', drill: run }\n",
    );
    assert!(!p.path().join("steps").exists());
    let (code, out, err) = p.run(&["check"]).parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("checked 1 runbook"),
        "{out}{err}"
    );

    let fifo = p.path().join("f.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (code, _, err) = p.run(&["check", "f.yaml"]).parts();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a file"), "{err}");

    std::fs::write(
        p.path().join("latin1.yaml"),
        b"scenario: latin1\ntitle: caf\xe9\n",
    )
    .unwrap();
    let (code, _, err) = p.run(&["check", "latin1.yaml"]).parts();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not UTF-8 text: line 2"), "{err}");
}

/// A step's log that cannot be written (a full disk) is said on the terminal, once, instead
/// of losing lines without a word. Needs root, to mount a small tmpfs for the state folder.
#[test]
fn a_log_that_cannot_be_written_is_said() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|u| u.split_whitespace().nth(1).unwrap_or("").to_owned())
        })
        .unwrap();
    assert_eq!(
        uid, "0",
        "this test mounts a tmpfs: run it as root (CI does)"
    );
    let p = Project::with_runbook(
        "full",
        "scenario: full\ntitle: t\nrto: 1m\nsteps:\n  - { id: a, budget: 10s, run: 'yes x | head -c 300000', drill: run }\n",
    );
    let mnt = p.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount a tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let state = mnt.join("state");
    let mut cmd = p.cmd(&["run", "full", "--run-id", "r1"]);
    cmd.env("RUNBOOK_STATE_DIR", &state);
    let out = p.run_with(cmd);
    let said = "runbook: cannot write the step's log";
    assert_eq!(
        out.stderr.matches(said).count(),
        1,
        "{}",
        &out.stderr[out.stderr.len().saturating_sub(2000)..]
    );
    assert!(out.stderr.contains("No space left on device"));
}

/// `RUNBOOK_STATE_DIR=` (empty) is as good as unset: `.runbook/` here.
#[test]
fn an_empty_state_dir_variable_means_the_default() {
    let p = Project::with_runbook(
        "e",
        "scenario: e\ntitle: t\nrto: 1m\nsteps:\n  - { id: a, budget: 5s, run: 'true', drill: run }\n",
    );
    p.run_scenario(&["--run-id", "r1"]).code(0);
    let mut cmd = p.cmd(&["status"]);
    cmd.env("RUNBOOK_STATE_DIR", "");
    let out = p.run_with(cmd);
    out.code(0);
    assert!(out.stdout.contains("r1"), "{}", out.stdout);
}

/// A background job left in the step's group is ended with the step; a daemon, which left
/// for a session of its own (as `pg_ctl start` and `redis-server --daemonize yes` do), is a
/// service the step started, and keeps running.
#[test]
fn a_daemon_a_step_starts_keeps_running_and_a_stray_job_does_not() {
    let p = Project::with_runbook(
        "svc",
        r#"
scenario: svc
title: A step that starts a service
rto: 1m
steps:
  - { id: start, budget: 10s, run: 'setsid sleep 601 </dev/null >/dev/null 2>&1 & echo $! > daemon.pid; sleep 602 </dev/null >/dev/null 2>&1 & echo $! > stray.pid; sleep 0.3', drill: run }
"#,
    );
    p.run_scenario(&["--run-id", "r1"]).code(0);
    let (daemon, stray) = (p.pid_file("daemon.pid"), p.pid_file("stray.pid"));
    assert!(!pid_alive(stray), "the stray job outlived its step");
    assert!(
        pid_alive(daemon),
        "the daemon was killed with the step that started it"
    );
    let _ = nix::sys::signal::kill(Pid::from_raw(daemon), nix::sys::signal::Signal::SIGKILL);
}

/// The driver's stop path, driven through its `interrupts` parameter with no real signal: on
/// a terminal the first Ctrl-C only asks and the second stops the run; `run_interrupted`
/// (`signal`) is journaled and the step's process group is gone.
#[test]
fn interrupts_passed_to_the_driver_stop_the_run_and_its_steps() {
    use std::sync::Arc;

    use runbook::compile::{Library, Options, compile_file};
    use runbook::exec::{Config, Interrupt, Machine, Outcome, RunContext, execute, mask::Masker};
    use runbook::journal::{EventKind, Journal, Mode, read_lenient};
    use runbook::ui::observer::Observers;

    let p = Project::with_runbook(
        "stop",
        r#"
scenario: stop
title: One long step
rto: 1m
steps:
  - { id: sleeper, budget: 1m, run: "echo $$ > sleeper.pid; exec sleep 30", drill: run }
"#,
    );
    // The driver starts its supervisor from beside the running executable: here, the test's.
    let beside = std::env::current_exe()
        .unwrap()
        .with_file_name("runbook-step");
    if let Err(e) = std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_runbook-step"), &beside) {
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
    }
    let project = runbook::project::Project::at(p.path());
    let (plan, problems) = compile_file(
        &project,
        &p.path().join("runbooks/stop.yaml"),
        &mut Library::default(),
        Options::default(),
    );
    let plan = Arc::new(plan.unwrap_or_else(|| panic!("the runbook compiles: {problems:?}")));
    let run_dir = p.run_dir("t1");
    std::fs::create_dir_all(&run_dir).unwrap();
    let mask = Arc::new(Masker::from_env(&plan.secrets));
    let cx = RunContext {
        plan: plan.clone(),
        run_dir: run_dir.clone(),
        journal: Journal::create(&run_dir.join("journal.jsonl")).unwrap(),
        mask: mask.clone(),
        observers: Observers {
            plain: None,
            bars: None,
            json: None,
        },
        operator: "tester".into(),
        mode: Mode::Real,
        epoch: chrono::Utc::now(),
        inventory: Default::default(),
        interactive: false,
        tty_signals: true,
        signatures: Default::default(),
        seal_key: None,
    };
    let cfg = Config {
        run_id: "t1".into(),
        mode: Mode::Real,
        max_parallel: None,
        auto_approve_as: None,
        yes_is_one_approval: false,
        vars: Default::default(),
        env: Default::default(),
        durations: None,
        rehearsal: false,
        signed_approvals: false,
    };
    let machine = Machine::new(plan.clone(), cfg, (*mask).clone());
    let pid_file = p.path().join("sleeper.pid");
    let (tx, interrupts) = tokio::sync::mpsc::unbounded_channel();
    let outcome = runbook::exec::runtime().block_on(async {
        let run = tokio::spawn(execute(cx, machine, Duration::ZERO, Vec::new(), interrupts));
        while !std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n')) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // On a terminal one Ctrl-C is a question, not a stop; the second is the answer.
        tx.send(Interrupt::CtrlC).unwrap();
        tx.send(Interrupt::CtrlC).unwrap();
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("the run stops within 20s of its interrupt")
            .expect("the driver's task does not panic")
            .expect("the run ends without an executor error")
    });
    // `execute` made this test process a child subreaper, as it makes the engine: undone, so
    // that what other tests' processes orphan goes to init again, not to us.
    let _ = nix::sys::prctl::set_child_subreaper(false);
    assert!(matches!(outcome, Outcome::Stopped), "{outcome:?}");
    let reasons: Vec<String> = read_lenient(&run_dir.join("journal.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            EventKind::RunInterrupted(i) => Some(i.reason.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["signal"]);
    let pgid = p.pid_file("sleeper.pid");
    assert_eq!(
        group_members(pgid),
        Vec::<i32>::new(),
        "the step's process group {pgid} is gone"
    );
}

/// The live (not zombie) processes of a process group, from /proc.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`: the fields after the last `)`.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, r)| r.split_whitespace().collect());
        if rest.get(2) == Some(&pgid.to_string().as_str()) && pid_alive(pid) {
            members.push(pid);
        }
    }
    members
}
