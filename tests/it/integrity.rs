//! The run's state under faults and hostile hands (issue 12): a resume never touches a live
//! run's journal, a cut or forged journal does not pass `verify`, a journal taken away under a
//! live run stops it, a full disk stops it resumable, and a dead step supervisor turns no
//! finished work into failures.

use crate::support::{Project, pid_alive, wait_until};

/// A chain of `n` steps that do nothing: a run long enough to race against, short enough to
/// finish.
fn chain(n: usize) -> String {
    let mut y = String::from("scenario: race\ntitle: A long chain\nrto: 1h\nsteps:\n");
    for i in 0..n {
        y.push_str(&format!(
            "  - id: s{i}\n    budget: 10s\n    run: \"true\"\n    drill: run\n"
        ));
        if i > 0 {
            y.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
    }
    y
}

fn verify(p: &Project, run: &str) -> (i32, String) {
    let (code, out, err) = p.run(&["verify", run]).parts();
    (code, out + &err)
}

/// Regression: `resume` of a live run was refused, but only after it had cut the live
/// journal back to what it had read (9 of 10 tries left it broken).
#[test]
fn resume_of_a_live_run_leaves_its_journal_untouched() {
    let p = Project::with_runbook("race", &chain(1500));
    for trial in 0..3 {
        let id = format!("q{trial}");
        let run = p.spawn(&["run", "race", "--run-id", &id]);
        wait_until("the run has started steps", || {
            p.events_of(&id, "step_finished").len() > 20
        });
        for _ in 0..2 {
            let (code, _, err) = p.run(&["resume", &id, "--yes"]).parts();
            assert_eq!(code, 2, "{err}");
            assert!(
                err.contains("cannot be resumed while its executor runs"),
                "{err}"
            );
        }
        run.finish().code(0);
        let (code, out) = verify(&p, &id);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("intact and sealed"), "{out}");
    }
}

/// Two resumes of one stopped run at once: one continues it, the other is refused, and the
/// journal stays whole.
#[test]
fn two_resumes_at_once_continue_a_run_once() {
    let p = Project::with_runbook(
        "race",
        "scenario: race\ntitle: t\nrto: 1h\nsteps:\n  - id: a\n    budget: 10s\n    run: echo a >> effects.txt; sleep 2\n    drill: run\n  - id: b\n    needs: [a]\n    budget: 10s\n    run: echo b >> effects.txt\n    drill: run\n",
    );
    let run = p.spawn(&["run", "race", "--run-id", "r"]);
    p.wait_for("step_started", "a");
    run.interrupt_and_stop();
    let one = p.spawn(&["resume", "r", "--yes"]);
    let two = p.spawn(&["resume", "r", "--yes"]);
    let (mut codes, errs): (Vec<i32>, Vec<String>) = [one.finish(), two.finish()]
        .into_iter()
        .map(|o| {
            let (c, _, e) = o.parts();
            (c, e)
        })
        .unzip();
    codes.sort();
    assert_eq!(codes, [0, 2], "{errs:?}");
    assert_eq!(p.read("effects.txt"), "a\na\nb\n");
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 0, "{out}");
}

const SMALL: &str = "scenario: small\ntitle: t\nrto: 1h\nsteps:\n  - id: a\n    budget: 10s\n    run: echo a\n    drill: run\n  - id: b\n    needs: [a]\n    budget: 10s\n    run: echo b\n    drill: run\n";

/// Regression: dropping the last 1 or 3 lines, cutting to the first line, or appending a
/// forged record with a recomputed hash all passed `verify` (4 of 6 tamperings).
#[test]
fn a_cut_or_extended_journal_does_not_pass_verify() {
    let p = Project::with_runbook("small", SMALL);
    p.run_scenario(&["--run-id", "r"]).code(0);
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: intact and sealed"), "{out}");
    let journal = p.run_dir("r").join("journal.jsonl");
    let whole = std::fs::read_to_string(&journal).unwrap();
    let lines: Vec<&str> = whole.lines().collect();
    assert!(lines.last().unwrap().contains("\"type\":\"run_sealed\""));
    let keep = |n: usize| {
        lines[..n]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };

    for n in [lines.len() - 1, lines.len() - 3, 1] {
        std::fs::write(&journal, keep(n)).unwrap();
        let (code, out) = verify(&p, "r");
        assert_eq!(code, 1, "{n} lines kept: {out}");
        assert!(out.contains("BROKEN") && out.contains("cut"), "{out}");
    }
    // With the head file gone too, the cut does not pass either.
    std::fs::write(&journal, keep(lines.len() - 1)).unwrap();
    let head = p.run_dir("r").join("journal.head");
    let head_text = std::fs::read(&head).unwrap();
    std::fs::remove_file(&head).unwrap();
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN") && out.contains("head file"), "{out}");
    std::fs::write(&head, head_text).unwrap();

    // A forged record after the seal, its hash computed as the engine would.
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let body = format!(
        r#"{{"seq":{},"at":"2026-12-01T00:00:00.000Z","elapsed_ms":1,"type":"escalated","data":{{"channel":"x","reason":"forged","message":"","ok":true}},"prev":"{}"}}"#,
        last["seq"].as_u64().unwrap() + 1,
        last["hash"].as_str().unwrap()
    );
    let hash = sha256_hex(body.as_bytes());
    let forged = format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
    std::fs::write(&journal, format!("{whole}{forged}")).unwrap();
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq"), "{out}");
    assert!(out.contains("after the seal"), "{out}");
    // And reports are not made from it.
    let (code, _, err) = p.run(&["report", "r"]).parts();
    assert_eq!(code, 1, "{err}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

const SLOW: &str = "scenario: slow\ntitle: t\nrto: 1h\nsteps:\n  - id: a\n    budget: 10s\n    run: sleep 1\n    drill: run\n  - id: b\n    needs: [a]\n    budget: 10s\n    run: sleep 1\n    drill: run\n";

/// Regression: a run whose journal was deleted, replaced or cut under it went on and said
/// "run succeeded" (2 of 2 exited 0).
#[test]
fn a_journal_taken_away_under_a_live_run_stops_it() {
    let p = Project::with_runbook("slow", SLOW);
    type Tamper = fn(&std::path::Path);
    let tamperings: [(&str, Tamper, &str); 3] = [
        ("d", |j| std::fs::remove_file(j).unwrap(), "was deleted"),
        (
            "r",
            |j| {
                let text = std::fs::read(j).unwrap();
                std::fs::remove_file(j).unwrap();
                std::fs::write(j, text).unwrap();
            },
            "was replaced by another file",
        ),
        (
            "t",
            |j| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(j)
                    .unwrap()
                    .set_len(100)
                    .unwrap()
            },
            "was cut from",
        ),
    ];
    for (id, tamper, said) in tamperings {
        let run = p.spawn(&["run", "slow", "--run-id", id]);
        wait_until("step `a` has started", || {
            !p.events_of(id, "step_started").is_empty()
        });
        tamper(&p.run_dir(id).join("journal.jsonl"));
        let (code, _, err) = run.finish().parts();
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(said), "{err}");
        assert!(!err.contains("run succeeded"), "{err}");
    }
}

/// A tmpfs of 1 MiB in the project, unmounted when the guard goes.
fn small_tmpfs(p: &Project) -> (std::path::PathBuf, impl Drop) {
    let state = p.path().join("small-state");
    std::fs::create_dir_all(&state).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&state)
        .status()
        .expect("mount");
    assert!(mounted.success(), "cannot mount a tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    (state.clone(), Unmount(state))
}

fn assert_root() {
    assert!(
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")),
        "this test mounts a small tmpfs: run it as root (tests/suite.sh does, in CI)"
    );
}

/// Regression: lines a step printed while its log could not be written were lost without a
/// trace in the log; a marker now says how many are missing, where.
#[test]
fn a_log_cut_by_a_full_disk_says_where_lines_are_missing() {
    assert_root();
    let p = Project::with_runbook(
        "cut",
        "scenario: cut\ntitle: t\nrto: 1h\nsteps:\n  - id: burst\n    budget: 30s\n    run: echo before; sleep 1; head -c 4000000 /dev/zero > \"$FILLER\"; echo lost-1 $(printf %09000d 0); echo lost-2 $(printf %09000d 0); sleep 1; rm \"$FILLER\"; sleep 1; echo back\n    drill: run\n",
    );
    let (state, _unmount) = small_tmpfs(&p);
    let mut cmd = p.cmd(&["run", "cut", "--run-id", "r"]);
    cmd.env("RUNBOOK_STATE_DIR", &state)
        .env("FILLER", state.join("filler"));
    let (code, _, err) = p.run_with(cmd).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("lost-1") && err.contains("lost-2"),
        "shown: {err}"
    );
    let log = std::fs::read_to_string(state.join("runs/r/logs/burst.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.first(), Some(&"before"), "{log}");
    assert_eq!(lines.last(), Some(&"back"), "{log}");
    assert!(
        lines[lines.len() - 2]
            .starts_with("[runbook: 2 line(s) of output could not be written here"),
        "{log}"
    );
}

/// Regression: a full disk mid-run exited 1, as if a step had failed; it is the engine's
/// fault, and the run is resumable once there is room again.
#[test]
fn a_full_disk_stops_the_run_resumable() {
    assert_root();
    let p = Project::with_runbook(
        "full",
        &"scenario: full\ntitle: t\nrto: 1h\nsteps:\n  - id: fill\n    budget: 10s\n    run: head -c 4000000 /dev/zero > \"$FILLER\" || true\n    drill: run\n  - id: after\n    needs: [fill]\n    budget: 10s\n    run: echo after >> effects.txt; true PAD\n    drill: run\n"
            // A step whose start needs pages the full disk no longer has.
            .replace("PAD", &"x".repeat(9000)),
    );
    let (state, _unmount) = small_tmpfs(&p);
    let filler = state.join("filler");
    let mut cmd = p.cmd(&["run", "full", "--run-id", "r"]);
    cmd.env("RUNBOOK_STATE_DIR", &state).env("FILLER", &filler);
    let (code, _, err) = p.run_with(cmd).parts();
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("runbook resume r"), "{err}");
    std::fs::remove_file(&filler).unwrap();
    let mut cmd = p.cmd(&["resume", "r"]);
    cmd.env("RUNBOOK_STATE_DIR", &state);
    let (code, _, err) = p.run_with(cmd).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "after\n");
    let mut cmd = p.cmd(&["verify", "r"]);
    cmd.env("RUNBOOK_STATE_DIR", &state);
    let (code, out, _) = p.run_with(cmd).parts();
    assert_eq!(code, 0, "{out}");
}

const LONG: &str = r#"scenario: sup
title: t
rto: 1h
steps:
  - id: first
    budget: 10s
    run: echo first >> effects.txt
    drill: run
  - id: long
    needs: [first]
    budget: 30s
    run: echo long-start >> effects.txt; sleep 2; echo long-end >> effects.txt
    drill: run
  - id: quick
    needs: [first]
    budget: 30s
    run: echo quick >> effects.txt
    drill: run
  - id: after
    needs: [long, quick]
    budget: 10s
    run: echo after >> effects.txt
    drill: run
"#;

/// Regression: with its step supervisor killed, a run failed for good and its running steps
/// were killed and journaled failed (12 of 12).
#[test]
fn a_dead_supervisor_stops_the_run_resumable_and_fails_no_step() {
    let p = Project::with_runbook("sup", LONG);
    let run = p.spawn(&["run", "sup", "--run-id", "r"]);
    p.wait_for("step_started", "long");
    wait_until("`quick` has finished", || {
        !p.events_of("r", "step_finished")
            .iter()
            .all(|e| e["data"]["step"] != "quick")
    });
    p.kill_supervisor_of("r");
    let (code, _, err) = run.finish().parts();
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("the step supervisor died"), "{err}");
    // The engine saw `long` to its end in the supervisor's place.
    assert!(
        p.events_of("r", "step_finished")
            .iter()
            .all(|e| e["data"]["status"] == "succeeded"),
        "no step is failed for its supervisor's death"
    );
    assert_eq!(
        p.events_of("r", "step_finished")
            .iter()
            .filter(|e| e["data"]["step"] == "long")
            .count(),
        1
    );
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 0, "a stopped run is sealed: {out}");
    let (code, _, err) = p.run(&["resume", "r"]).parts();
    assert_eq!(code, 0, "{err}");
    // Each effect once, in the order the graph gives: `long` and `quick` start together, so
    // which of them writes first is the scheduler's (the test failed under load when it
    // asserted one order).
    let effects = p.read("effects.txt");
    let lines: Vec<&str> = effects.lines().collect();
    let at = |l: &str| {
        let found: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == l).collect();
        assert_eq!(found.len(), 1, "`{l}` once in {lines:?}");
        found[0]
    };
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(at("first"), 0, "{lines:?}");
    assert!(at("long-start") < at("long-end"), "{lines:?}");
    assert_eq!(at("after"), 4, "{lines:?}");
    assert!(at("quick") < at("after"), "{lines:?}");
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 0, "{out}");
}

/// A step whose supervisor and engine both died ends unseen: its outcome is unknown, and a
/// step that is not idempotent waits for the operator's word (`--mark-done` here).
#[test]
fn a_step_that_ends_unseen_waits_for_the_operators_word() {
    let p = Project::with_runbook("sup", LONG);
    let mut run = p.spawn(&["run", "sup", "--run-id", "r"]);
    // `quick`, beside it, has ended and been seen to: only `long` is left unseen.
    wait_until("`long` has started and `quick` has ended", || {
        p.read("effects.txt").contains("long-start")
            && p.events_of("r", "step_finished")
                .iter()
                .any(|e| e["data"]["step"] == "quick")
    });
    let pid = p.step_pid("r", "long.1");
    p.kill_supervisor_of("r");
    run.kill().unwrap();
    // The resume adopts it while it runs, and stops once it has ended unseen.
    let (code, _, err) = p.run(&["resume", "r", "--yes"]).parts();
    assert!(!pid_alive(pid), "{err}");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("outcome is unknown"), "{err}");
    assert!(err.contains("runbook resume r --mark-done long"), "{err}");
    assert!(
        p.events_of("r", "step_finished")
            .iter()
            .any(|e| e["data"]["step"] == "long" && e["data"]["status"] == "unknown")
    );
    let (code, _, err) = p.run(&["resume", "r", "--mark-done", "long"]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(p.read("effects.txt").ends_with("long-end\nafter\n"));
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 0, "{out}");
}

/// A DAG of steps that are not idempotent, each leaving `S:<id>` when it starts and `E:<id>`
/// when it has done its work.
const CHAOS: &str = r#"scenario: chaos
title: Killed at random instants
rto: 1h
steps:
  - id: a
    budget: 10s
    run: echo "S:$RUNBOOK_STEP" >> effects.txt; sleep 0.2; echo "E:$RUNBOOK_STEP" >> effects.txt
    drill: run
  - id: b
    needs: [a]
    budget: 10s
    run: echo "S:$RUNBOOK_STEP" >> effects.txt; sleep 0.3; echo "E:$RUNBOOK_STEP" >> effects.txt; echo "v=1" >> "$RUNBOOK_OUTPUT"
    drill: run
  - id: c
    needs: [a]
    budget: 10s
    run: echo "S:$RUNBOOK_STEP" >> effects.txt; echo "E:$RUNBOOK_STEP" >> effects.txt
    drill: run
  - id: d
    needs: [a]
    budget: 10s
    run: echo "S:$RUNBOOK_STEP" >> effects.txt; sleep 0.25; echo "E:$RUNBOOK_STEP" >> effects.txt
    drill: run
  - id: e
    needs: [b, c]
    budget: 10s
    run: echo "S:$RUNBOOK_STEP" >> effects.txt; sleep 0.1; echo "E:$RUNBOOK_STEP" >> effects.txt
    drill: run
  - id: f
    needs: [d, e]
    budget: 10s
    run: echo "S:$RUNBOOK_STEP" >> effects.txt; sleep 0.2; echo "E:$RUNBOOK_STEP" >> effects.txt
    drill: run
  - id: g
    needs: [f]
    budget: 10s
    run: echo "S:$RUNBOOK_STEP" >> effects.txt; echo "E:$RUNBOOK_STEP" >> effects.txt
    drill: run
"#;

/// Processes (other than this test's) working in the project folder: steps and supervisors.
fn processes_in(dir: &std::path::Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            (pid != me && cwd.starts_with(dir) && pid_alive(pid)).then_some(pid)
        })
        .collect()
}

/// Regression: kill -9 of the engine and its supervisor left completed steps journaled
/// failed, runs failed for good, and non-idempotent steps run twice on `resume --yes`. Here
/// the engine, the supervisor or both are killed at a random instant, 30 times: every run
/// finishes after at most 3 resumes, no step runs twice unless `--rerun` named it, the
/// journal verifies sealed, and no process is left.
#[test]
fn runs_killed_at_random_instants_finish_with_nothing_run_twice() {
    // A fixed seed: a failure is reproduced by running the test again.
    let mut seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for trial in 0..30 {
        let p = Project::with_runbook("chaos", CHAOS);
        let target = ["engine", "supervisor", "both"][trial % 3];
        let at = std::time::Duration::from_millis(50 + next() % 1100);
        let mut run = p.spawn(&["run", "chaos", "--run-id", "r"]);
        std::thread::sleep(at);
        let ctx = format!("trial {trial}: kill -9 of the {target} at {at:?}");
        if target != "engine" {
            p.kill_supervisor_of("r");
        }
        if target != "supervisor" {
            let _ = run.kill();
        }
        let (code, _, err) = run.finish().parts();
        if target == "supervisor" {
            // Alone, the engine sees it go and stops resumable (or had finished already).
            assert!(code == 3 || code == 0, "{ctx}: {code}\n{err}");
        }
        let mut reruns: Vec<String> = Vec::new();
        let mut flags: Vec<String> = Vec::new();
        let mut resumes = 0;
        let mut said = String::new();
        loop {
            let journal = p.events("r");
            if journal.iter().any(|e| e["type"] == "run_finished") {
                break;
            }
            resumes += 1;
            assert!(
                resumes <= 3,
                "{ctx}: not finished after 3 resumes\n{said}\n{}",
                p.journal("r")
            );
            let mut args = vec!["resume", "r", "--yes"];
            args.extend(flags.iter().map(String::as_str));
            let (code, _, err) = p.run(&args).parts();
            said.push_str(&format!("--- {args:?}: {code}\n{err}\n"));
            match code {
                0 => break,
                3 => {
                    // The operator's word, step by step: done if it did its work, else again.
                    let effects = p.read("effects.txt");
                    for line in err.lines() {
                        let Some(step) = line
                            .strip_prefix("step `")
                            .or_else(|| line.strip_prefix("error: step `"))
                            .and_then(|l| l.split_once('`'))
                            .filter(|(_, rest)| rest.contains("outcome is unknown"))
                            .map(|(s, _)| s.to_owned())
                        else {
                            continue;
                        };
                        if flags.contains(&step) {
                            continue;
                        }
                        if effects.lines().any(|l| l == format!("E:{step}")) {
                            flags.extend(["--mark-done".to_owned(), step]);
                        } else {
                            flags.extend(["--rerun".to_owned(), step.clone()]);
                            reruns.push(step);
                        }
                    }
                    // The operator's earlier word stands: the flags are given again.
                    assert!(
                        err.contains("outcome is unknown") || err.contains("run stopped"),
                        "{ctx}: {err}"
                    );
                }
                _ => panic!("{ctx}: resume exited {code}\n{err}"),
            }
        }
        let report = p.report_json("r");
        assert_eq!(report["status"], "succeeded", "{ctx}");
        let effects = p.read("effects.txt");
        for step in ["a", "b", "c", "d", "e", "f", "g"] {
            let starts = effects
                .lines()
                .filter(|l| *l == format!("S:{step}"))
                .count();
            let allowed = 1 + reruns.iter().filter(|r| *r == step).count();
            assert!(
                (1..=allowed).contains(&starts),
                "{ctx}: `{step}` started {starts} times ({allowed} allowed)\n{effects}"
            );
        }
        let (code, out) = verify(&p, "r");
        assert_eq!(code, 0, "{ctx}: {out}");
        wait_until("no process of the run is left", || {
            processes_in(p.path()).is_empty()
        });
    }
}

/// Regression (review): a step re-run after a stop kept its attempt's key, and a resume took
/// the end the supervisor had recorded for the interrupted run of it (exit 143) as the re-run's:
/// a step that went on to succeed was journaled failed, and the run failed for good.
#[test]
fn a_rerun_step_is_not_taken_for_the_end_of_its_interrupted_run() {
    let p = Project::with_runbook(
        "s",
        "scenario: s\ntitle: t\nrto: 1h\nsteps:\n  - id: a\n    budget: 30s\n    run: echo a-start >> effects.txt; sleep 3; echo a-done >> effects.txt\n    drill: run\n  - id: b\n    needs: [a]\n    budget: 10s\n    run: echo b >> effects.txt\n    drill: run\n",
    );
    let run = p.spawn(&["run", "s", "--run-id", "r"]);
    p.wait_for("step_started", "a");
    run.interrupt_and_stop();
    assert!(p.read(".runbook/runs/r/steps.status").contains("a.1 exit "));
    let mut resumed = p.spawn(&["resume", "r", "--yes"]);
    wait_until("the re-run of `a` has started", || {
        p.read("effects.txt").matches("a-start").count() == 2
    });
    resumed.kill().unwrap();
    let (code, _, err) = p.run(&["resume", "r", "--yes"]).parts();
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.read("effects.txt"), "a-start\na-start\na-done\nb\n");
    assert_eq!(
        p.events_of("r", "run_resumed")[1]["data"]["adopted"],
        serde_json::json!(["a"])
    );
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 0, "{out}");
}

/// Regression (review): `verify` believed the lock file's text, so a lock naming any live
/// process called `runbook` made a cut journal "still live" (exit 0).
#[test]
fn a_forged_lock_does_not_make_a_cut_journal_live() {
    // A run whose executor died: not sealed, not live.
    let p = Project::with_runbook("slow", SLOW);
    let mut run = p.spawn(&["run", "slow", "--run-id", "r"]);
    p.wait_for("step_started", "a");
    run.kill().unwrap();
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT SEALED"), "{out}");
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo \"r $$\" > .runbook/lock/slow; exec {} verify r",
            crate::support::BIN
        ))
        .current_dir(p.path())
        .env("RUNBOOK_STATE_DIR", p.path().join(".runbook"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (code, out, err) = p.run_with(cmd).parts();
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("NOT SEALED"), "{out}");
}

/// Regression (review): with `journal.head` deleted, a journal cut back to an earlier seal
/// (a stopped run's, before its resume) passed as intact and sealed.
#[test]
fn a_journal_whose_head_is_gone_does_not_pass_and_a_stop_is_told_from_a_finish() {
    let p = Project::with_runbook("slow", SLOW);
    let run = p.spawn(&["run", "slow", "--run-id", "r"]);
    p.wait_for("step_started", "a");
    run.interrupt_and_stop();
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the run stopped, and can be resumed"), "{out}");
    let stopped = std::fs::read_to_string(p.run_dir("r").join("journal.jsonl")).unwrap();
    p.run(&["resume", "r", "--yes"]).code(0);
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the run finished"), "{out}");

    std::fs::write(p.run_dir("r").join("journal.jsonl"), &stopped).unwrap();
    std::fs::remove_file(p.run_dir("r").join("journal.head")).unwrap();
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("head file") && out.contains("missing"),
        "{out}"
    );
}

/// Regression (review): text with no line end appended to a finished run's sealed journal
/// passed as "a crash cut its last line short", which nothing would ever cut off.
#[test]
fn bytes_after_a_finished_runs_seal_do_not_pass() {
    let p = Project::with_runbook("small", SMALL);
    p.run_scenario(&["--run-id", "r"]).code(0);
    let journal = p.run_dir("r").join("journal.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    std::io::Write::write_all(&mut f, br#"{"seq":99,"forged":true"#).unwrap();
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bytes follow the seal"), "{out}");
}

/// A journal written before journals were sealed (no `journal_version`, no seal, no head)
/// is intact, and `verify` says its end cannot be checked, rather than calling it a crash.
#[test]
fn a_journal_from_before_seals_verifies_as_intact_with_its_limit_said() {
    let p = Project::with_runbook("small", SMALL);
    p.run_scenario(&["--run-id", "r"]).code(0);
    let journal = p.run_dir("r").join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    // As the engine wrote it before: no version in run_started, no seal; chained anew.
    let mut prev = "0".repeat(64);
    let mut old = String::new();
    for line in text
        .lines()
        .filter(|l| !l.contains("\"type\":\"run_sealed\""))
    {
        let body = &line[..line.rfind(",\"hash\":\"").unwrap()];
        let body = body.replace(",\"journal_version\":2", "");
        let at = body.find("\"prev\":\"").unwrap() + 8;
        let body = format!("{}{prev}\"}}", &body[..at]);
        let hash = sha256_hex(body.as_bytes());
        old.push_str(&format!(
            "{},\"hash\":\"{hash}\"}}\n",
            &body[..body.len() - 1]
        ));
        prev = hash;
    }
    std::fs::write(&journal, old).unwrap();
    std::fs::remove_file(p.run_dir("r").join("journal.head")).unwrap();
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("written before journals were sealed"), "{out}");
    p.run(&["report", "r"]).code(0);
}

/// Regression (review): late answers sent at once to a finished run's gate were refused
/// ("holds the scenario's lock; answer again") and not journaled, 3 of 6.
#[test]
fn late_answers_sent_at_once_are_all_journaled() {
    let p = Project::with_runbook(
        "once",
        "scenario: once\ntitle: t\nrto: 5m\nroles:\n  lead: [a0, a1, a2, a3, a4, a5]\nsteps:\n  - id: go\n    budget: 1m\n    approval: { prompt: go?, approvers: [lead], min: 1, timeout: 2m }\n",
    );
    let run = p.spawn(&["run", "once", "--run-id", "r"]);
    wait_until("the gate waits", || {
        !p.events_of("r", "approval_requested").is_empty()
    });
    p.run(&["approve", "r", "go", "--as", "a0"]).code(0);
    run.finish().code(0);
    let answers: Vec<_> = (1..6)
        .map(|k| p.spawn(&["approve", "r", "go", "--as", &format!("a{k}")]))
        .collect();
    for a in answers {
        let (code, out, err) = a.finish().parts();
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            out.starts_with("rejected: already decided by a0"),
            "{out}{err}"
        );
    }
    assert_eq!(p.events_of("r", "approval_late").len(), 5);
    let (code, out) = verify(&p, "r");
    assert_eq!(code, 0, "{out}");
}
