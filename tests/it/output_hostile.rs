//! Output a step prints that is hostile to whoever shows it: megabytes that never end a line,
//! `\r` progress bars, secrets cut in two by a long line's cut, terminal escape sequences in a
//! gate's prompt — through the real binary.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::Project;

/// The longest line a step's log holds: longer ones are cut and continued.
const MAX_LINE: usize = 64 * 1024;

/// The pids of the `runbook-step` supervisors whose parent is `parent`.
fn supervisors_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) S ppid ...`
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if head.ends_with("(runbook-step") && ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// The peak resident size of a process so far, in KiB (`VmHWM`); None once it is gone.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Broke: 400 MB with no newline kept the supervisor at 100% CPU for 12 minutes, its RSS
/// growing, rescanning the one unfinished line from its start on every read.
#[test]
fn output_that_never_ends_a_line_is_logged_in_seconds_with_a_flat_rss() {
    let p = Project::with_runbook(
        "flood",
        r#"
scenario: flood
title: A step printing 200 MB without a newline
rto: 10m
steps:
  - id: flood
    budget: 5m
    run: yes | tr -d '\n' | head -c 200000000
    drill: run
"#,
    )
    // Before the fix this took minutes: the test fails by this deadline rather than hang.
    .with_deadline(Duration::from_secs(120));
    let mut cmd = p.cmd(&["run", "flood"]);
    // 200 MB of terminal lines are not what this test reads.
    cmd.stderr(Stdio::null());
    let started = Instant::now();
    let mut running = p.spawn_with(cmd);
    let engine = running.id();
    let mut peak_kib = 0;
    let mut seen = false;
    while !running.has_ended() {
        for pid in supervisors_of(engine) {
            if let Some(kib) = peak_rss_kib(pid) {
                seen = true;
                peak_kib = peak_kib.max(kib);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "200 MB without a newline still being logged after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    running.finish().code(0);
    assert!(seen, "never saw the supervisor running");
    assert!(
        took < Duration::from_secs(60),
        "200 MB without a newline took {took:?}"
    );
    assert!(
        peak_kib < 64 * 1024,
        "the supervisor's RSS peaked at {peak_kib} KiB"
    );
    let run = p.last_run_of("flood").expect("a run");
    let log = std::fs::read(p.run_dir(&run).join("logs/flood.log")).unwrap();
    let ys = log.iter().filter(|b| **b == b'y').count();
    assert_eq!(ys, 200_000_000, "every byte printed is in the log");
    assert!(
        log.split(|b| *b == b'\n').all(|l| l.len() <= MAX_LINE),
        "a log line longer than {MAX_LINE} bytes"
    );
}

/// Guards the cut of long lines: a secret printed across the 64 KiB mark of a line must not
/// reach the log in two unmasked halves.
#[test]
fn a_line_longer_than_64_kib_is_cut_and_a_secret_straddling_the_cut_is_masked() {
    const SECRET: &str = "straddling-secret-value-0123456789";
    let p = Project::with_runbook(
        "long",
        r#"
scenario: long
title: A secret across the cut of a long line
rto: 1m
secrets: [LONG_SECRET]
steps:
  - id: long
    budget: 30s
    run: |
      head -c 65520 /dev/zero | tr '\0' x
      printf '%s' "$LONG_SECRET"
      head -c 100000 /dev/zero | tr '\0' z
      printf '\n'
    drill: run
"#,
    );
    let mut cmd = p.cmd(&["run", "long", "--run-id", "r1"]);
    cmd.env("LONG_SECRET", SECRET);
    let out = p.run_with(cmd);
    out.code(0);
    let log = p.log("r1", "long");
    // Cut before the secret (at 65,520), then at 64 KiB: 34 bytes of secret (`***` in the
    // log) and 65,502 of `z`, then the rest.
    assert_eq!(
        log.lines().map(str::len).collect::<Vec<_>>(),
        [65520, 3 + 65502, 100000 - 65502],
        "the lengths of the log's lines"
    );
    let joined = log.replace('\n', "");
    // No half of it either: the cut falls before the secret or after it.
    for part in [&SECRET[..20], &SECRET[14..]] {
        assert!(!joined.contains(part), "`{part}` of the secret in the log");
        assert!(
            !out.stderr.replace('\n', "").contains(part),
            "`{part}` of the secret on the terminal"
        );
    }
    assert_eq!(
        joined,
        format!("{}***{}", "x".repeat(65520), "z".repeat(100000)),
        "the log holds every byte but the secret's"
    );
}

/// Broke: `curl`'s or `pv`'s progress (`\r` between updates, no newline) was one line that
/// grew until the transfer ended; the terminal showed nothing until then.
#[test]
fn carriage_return_progress_updates_are_separate_lines_on_the_terminal() {
    let p = Project::with_runbook(
        "progress",
        r#"
scenario: progress
title: A progress bar
rto: 1m
steps:
  - id: copy
    budget: 30s
    run: printf '\r 10%%\r 50%%\r100%%\r\nall copied\r\n'
    drill: run
"#,
    );
    let out = p.run(&["run", "progress", "--run-id", "r1"]);
    out.code(0);
    let shown: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("    copy | "))
        .collect();
    assert_eq!(
        shown,
        [" 10%", " 50%", "100%", "all copied"],
        "{}",
        out.stderr
    );
    assert_eq!(p.log("r1", "copy"), " 10%\n 50%\n100%\nall copied\n");
}

/// Broke: a step's output reached the operator's terminal raw; in a gate's prompt, an escape
/// sequence could erase the line and show a fake verdict where the operator decides.
#[test]
fn an_escape_sequence_from_a_step_is_visible_on_the_terminal_and_in_reports_and_raw_in_its_log() {
    let p = Project::with_runbook(
        "spoof",
        r#"
scenario: spoof
title: A step that writes escape sequences
rto: 1m
roles: { lead: [alice] }
steps:
  - id: verify
    budget: 30s
    run: |
      printf 'checked\033[2K\033[1A\n'
      printf 'verdict=\033[2K\033[1AOK restore verified\n' >> "$RUNBOOK_OUTPUT"
    drill: run
  - id: go
    needs: [verify]
    budget: 1m
    approval: { prompt: "verification says {{ steps.verify.outputs.verdict }}", approvers: [lead] }
"#,
    );
    let out = p.run(&["run", "spoof", "--drill", "--yes", "--run-id", "r1"]);
    out.code(0);
    assert!(
        !out.stderr.contains('\x1b'),
        "a raw escape on the terminal:\n{}",
        out.stderr
    );
    out.stderr_has("verify | checked\\x1b[2K\\x1b[1A")
        .stderr_has("verification says \\x1b[2K\\x1b[1AOK restore verified");
    assert_eq!(
        p.log("r1", "verify"),
        "checked\x1b[2K\x1b[1A\n",
        "the log keeps the bytes"
    );
    for format in ["md", "html"] {
        let report = p.run(&["report", "r1", "--format", format]);
        report.code(0);
        assert!(
            !report.stdout.contains('\x1b'),
            "a raw escape in the {format} report:\n{}",
            report.stdout
        );
        assert!(
            report
                .stdout
                .contains("verification says \\x1b[2K\\x1b[1AOK restore verified"),
            "the prompt is not shown in the {format} report:\n{}",
            report.stdout
        );
    }
}
