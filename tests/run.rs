//! `runbook run` through the real binary: real processes, real clocks, the journal on disk.
//! Each test gets its own project folder (`runbooks/<scenario>.yaml`, `.runbook/` state) with
//! `NO_COLOR=1` and no standard input. Timing asserts are lower bounds, except where the point
//! of the test is that steps overlap; there the margin is wide.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Longest any single `runbook` invocation may take before the test gives up on it.
const HANG: Duration = Duration::from_secs(60);

/// A throwaway project folder holding one runbook.
struct Project {
    dir: TempDir,
    scenario: String,
}

/// What one invocation did.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Out {
    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Project {
    /// A project with `runbooks/<scenario>.yaml` holding `yaml`.
    fn new(scenario: &str, yaml: &str) -> Project {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let p = Project {
            dir,
            scenario: scenario.to_owned(),
        };
        p.write(&format!("runbooks/{scenario}.yaml"), yaml);
        p
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, contents: &str) {
        let full = self.path().join(rel);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, contents).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_runbook"));
        c.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("RUNBOOK_STATE_DIR")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `runbook ARGS` to the end.
    fn run(&self, args: &[&str]) -> Out {
        self.run_with(self.cmd(args))
    }

    fn run_with(&self, mut cmd: Command) -> Out {
        let started = Instant::now();
        let child = cmd.spawn().expect("start runbook");
        finish(child, started)
    }

    /// `runbook run <scenario> ARGS`.
    fn run_scenario(&self, extra: &[&str]) -> Out {
        let mut args = vec!["run", self.scenario.as_str()];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn run_dir(&self, run_id: &str) -> PathBuf {
        self.path().join(".runbook/runs").join(run_id)
    }

    /// The journal of a run, parsed line by line.
    fn journal(&self, run_id: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.run_dir(run_id).join("journal.jsonl"))
            .expect("the run's journal");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a journal line is JSON"))
            .collect()
    }

    fn log(&self, run_id: &str, step: &str) -> String {
        std::fs::read_to_string(
            self.run_dir(run_id)
                .join("logs")
                .join(format!("{step}.log")),
        )
        .unwrap_or_default()
    }

    fn report(&self) -> Value {
        let out = self.run(&["report", "--last", "--format", "json"]);
        out.expect_code(0);
        serde_json::from_str(&out.stdout).expect("the report is JSON")
    }

    /// Reads a pid a step wrote into the project folder.
    fn pid_file(&self, rel: &str) -> i32 {
        let s = std::fs::read_to_string(self.path().join(rel))
            .unwrap_or_else(|e| panic!("the step should have written {rel}: {e}"));
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{rel} holds a pid, not {s:?}"))
    }
}

/// Waits for a child with a deadline, collecting its output.
fn finish(mut child: Child, started: Instant) -> Out {
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let status: ExitStatus = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "runbook did not finish within {HANG:?}; stderr:\n{}",
                err_t.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    Out {
        code: status.code(),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
        elapsed,
    }
}

/// Kills a background `runbook` if a test fails before it is waited for.
struct Reap(Option<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls until `cond` holds, or panics after `HANG`.
#[track_caller]
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < HANG, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Is a process with this pid running? A zombie is not: it has ended, and only waits for
/// whoever adopted it to collect its status.
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

fn events_of<'a>(journal: &'a [Value], kind: &str) -> Vec<&'a Value> {
    journal.iter().filter(|e| e["type"] == kind).collect()
}

/// The `step_finished` records of one step, in order.
fn finished_of<'a>(journal: &'a [Value], step: &str) -> Vec<&'a Value> {
    journal
        .iter()
        .filter(|e| e["type"] == "step_finished" && e["data"]["step"] == step)
        .collect()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn independent_steps_run_at_the_same_time() {
    let p = Project::new(
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
    out.expect_code(0);
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
    let j = p.journal("r1");
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
    let p = Project::new(
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
    out.expect_code(1);
    let child = p.pid_file("child.pid");
    assert!(
        !alive(child),
        "the background child {child} of the timed-out step still runs"
    );
    let j = p.journal("r1");
    let f = finished_of(&j, "stuck");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["data"]["status"], "timed_out");
    assert_eq!(events_of(&j, "run_finished")[0]["data"]["status"], "failed");
}

#[test]
fn a_succeeded_step_leaves_no_background_child_behind() {
    let p = Project::new(
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
    out.expect_code(0);
    let child = p.pid_file("child.pid");
    assert!(
        !alive(child),
        "the background child {child} of a finished step still runs"
    );
    assert_eq!(
        finished_of(&p.journal("r1"), "leaky")[0]["data"]["status"],
        "succeeded"
    );
}

#[test]
fn a_step_never_runs_after_its_need_failed() {
    let p = Project::new(
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
    out.expect_code(1);
    assert!(!p.path().join("second-ran").exists(), "`second` ran");
    let j = p.journal("r1");
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
    let p = Project::new(
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
    out.expect_code(0);
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
    let p = Project::new(
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
    out.expect_code(0);
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
    report.expect_code(0);
    assert!(
        !report.stdout.contains(SECRET),
        "the secret is in the report"
    );
}

/// Regression: a secret a step wrote to `$RUNBOOK_OUTPUT` stayed in clear in the state folder
/// (`outputs/<step>.<attempt>.env`).
#[test]
fn a_secret_in_a_step_output_is_masked_on_disk_but_passed_on_intact() {
    const SECRET: &str = "another-long-secret-value";
    let p = Project::new(
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
    p.run_with(cmd).expect_code(0);
    let env_file = p.run_dir("r1").join("outputs/mint.1.env");
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert_eq!(text.trim(), "token=***");
}

#[test]
fn a_second_run_of_a_live_scenario_is_refused() {
    let p = Project::new(
        "busy",
        r#"
scenario: busy
title: A run that takes a while
rto: 1m
steps:
  - { id: slow, budget: 10s, run: sleep 3, drill: run }
"#,
    );
    let started = Instant::now();
    let first = p
        .cmd(&["run", "busy", "--run-id", "first-run"])
        .spawn()
        .expect("start the first run");
    let first_pid = first.id();
    let mut first = Reap(Some(first));
    let journal = p.run_dir("first-run").join("journal.jsonl");
    wait_until("the first run has a journal", || journal.is_file());

    let second = p.run_scenario(&["--run-id", "second-run"]);
    second.expect_code(2);
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

    let out = finish(first.0.take().unwrap(), started);
    out.expect_code(0);
}

#[test]
fn verify_catches_a_changed_byte() {
    let p = Project::new(
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
    p.run_scenario(&["--run-id", "r1"]).expect_code(0);
    let ok = p.run(&["verify", "r1"]);
    ok.expect_code(0);

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
    bad.expect_code(1);
    assert!(
        bad.stdout.contains(&format!("seq {seq}")),
        "verify should name seq {seq}:\n{}{}",
        bad.stdout,
        bad.stderr
    );
}

#[test]
fn sigint_stops_the_run_with_exit_3() {
    let p = Project::new(
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
    let started = Instant::now();
    let child = p
        .cmd(&["run", "stop", "--run-id", "r1"])
        .spawn()
        .expect("start the run");
    let pid = child.id() as i32;
    let mut run = Reap(Some(child));
    let child_pid = p.path().join("child.pid");
    wait_until("the step has started its child", || {
        std::fs::read_to_string(&child_pid).is_ok_and(|s| s.ends_with('\n'))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send SIGINT");
    let out = finish(run.0.take().unwrap(), started);
    out.expect_code(3);

    for f in ["shell.pid", "child.pid"] {
        let pid = p.pid_file(f);
        assert!(!alive(pid), "the step's process {pid} ({f}) still runs");
    }
    let j = p.journal("r1");
    assert_eq!(events_of(&j, "run_interrupted").len(), 1, "{j:#?}");
    assert!(events_of(&j, "run_finished").is_empty());
}

#[test]
fn json_writes_one_event_a_line() {
    let p = Project::new(
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
    out.expect_code(0);
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
    assert_eq!(events.last().unwrap()["type"], "run_finished");
    // The stream is the journal.
    assert_eq!(events, p.journal("r1"));
}

#[test]
fn report_json_has_the_design_fields_and_values() {
    let p = Project::new(
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
        .expect_code(0);
    let r = p.report();
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
    let p = Project::new(
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
    out.expect_code(0);
    assert!(
        out.elapsed >= Duration::from_secs(2),
        "two backoffs of 1s: {:?}",
        out.elapsed
    );
    let count = std::fs::read_to_string(p.path().join("count")).unwrap();
    assert_eq!(count.trim(), "3");
    let j = p.journal("r1");
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
    let r = p.report();
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
    let p = Project::new("codes", ONE_STEP);
    p.run_scenario(&[]).expect_code(0);
}

#[test]
fn exit_1_when_a_step_failed() {
    let p = Project::new(
        "codes",
        &ONE_STEP.replace("run: echo {{ database }}", "run: exit 7"),
    );
    p.run_scenario(&[]).expect_code(1);
}

#[test]
fn exit_2_for_an_invalid_runbook() {
    let p = Project::new(
        "codes",
        &ONE_STEP.replace("budget: 10s", "needs: [missing]\n    budget: 10s"),
    );
    let out = p.run_scenario(&[]);
    out.expect_code(2);
    assert!(out.stderr.contains("missing"), "{}", out.stderr);
    assert!(
        !p.path().join(".runbook/runs").exists(),
        "an invalid runbook started a run"
    );
}

#[test]
fn exit_2_for_a_bad_var() {
    let p = Project::new("codes", ONE_STEP);
    let unknown = p.run_scenario(&["--var", "databse=x"]);
    unknown.expect_code(2);
    assert!(unknown.stderr.contains("databse"), "{}", unknown.stderr);
    let malformed = p.run_scenario(&["--var", "database"]);
    malformed.expect_code(2);
    assert!(malformed.stderr.contains("K=V"), "{}", malformed.stderr);
    assert!(
        !p.path().join(".runbook/runs").exists(),
        "a bad --var started a run"
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
    let p = Project::new("late", MISSED_RTO);
    p.run_scenario(&["--strict-rto"]).expect_code(4);
    assert_eq!(p.report()["rto_met"], false);
}

#[test]
fn exit_0_without_strict_rto_when_the_rto_is_missed() {
    let p = Project::new("late", MISSED_RTO);
    p.run_scenario(&[]).expect_code(0);
    assert_eq!(p.report()["rto_met"], false);
}

#[test]
fn the_quickstart_succeeds_and_reports_its_breach() {
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples");
    std::fs::create_dir(&examples).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), examples.join(e.file_name())).unwrap();
        }
    }
    let p = Project {
        dir,
        scenario: "examples/quickstart.yaml".into(),
    };
    // As its header says for a run without questions: alice approves the gate up front.
    p.run_scenario(&["--as", "alice", "--yes"]).expect_code(0);
    assert!(p.path().join(".quickstart/data/summary.txt").is_file());
    let r = p.report();
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
