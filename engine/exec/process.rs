//! Step processes, seen from the engine: where a step's files go, ending a process group, and
//! the outputs a step leaves. The run's supervisor (see [`super::supervisor`]) starts them and,
//! a child subreaper itself, ends and reaps whatever a step left in its group.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a step gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Makes orphans our children. Steps' own descendants go to the step supervisor, itself a
/// subreaper; this catches the steps of a supervisor that died, which the engine then ends.
pub fn become_subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// Where a step attempt's files go. Creating files is what a no-op step costs most here, so a
/// step gets none it does not need: its log is created on its first line of output, its
/// outputs file by the step itself when it writes one, and its pid and exit status are lines
/// in the run's one status log.
#[derive(Clone, Debug)]
pub struct StepFiles {
    pub log: PathBuf,
    pub output: PathBuf,
    /// `<run>/steps.status`: `<step>.<attempt> pid <pid>` and `<step>.<attempt> exit <code> at
    /// <unix ms>` lines, appended by the run's step supervisor.
    pub status_log: PathBuf,
    /// `<step>.<attempt>`.
    pub key: String,
}

impl StepFiles {
    pub fn new(run_dir: &Path, step: &str, attempt: u32) -> Self {
        StepFiles {
            log: run_dir.join("logs").join(format!("{step}.log")),
            output: run_dir
                .join("outputs")
                .join(format!("{step}.{attempt}.env")),
            status_log: run_dir.join("steps.status"),
            key: format!("{step}.{attempt}"),
        }
    }

    /// What the supervisor recorded for this attempt: its process group, and its exit code once
    /// it ended.
    pub fn recorded(&self) -> (Option<u32>, Option<i32>) {
        let text = std::fs::read_to_string(&self.status_log).unwrap_or_default();
        let (mut pid, mut exit) = (None, None);
        for line in text.lines() {
            let mut w = line.split(' ');
            if w.next() != Some(self.key.as_str()) {
                continue;
            }
            match (
                w.next(),
                w.next().and_then(|n| n.trim().parse::<i64>().ok()),
            ) {
                // A step run again under the same key (a resume re-runs an interrupted
                // attempt) starts a new record: an exit before its pid is the old run's.
                (Some("pid"), Some(n)) => {
                    pid = u32::try_from(n).ok();
                    exit = None;
                }
                (Some("exit"), Some(n)) => exit = i32::try_from(n).ok(),
                _ => {}
            }
        }
        (pid, exit)
    }

    /// When the supervisor recorded this attempt's end, in milliseconds since the Unix epoch
    /// (`<key> exit <code> at <ms>`); `None` before it ended, or from a supervisor that did
    /// not write the instant.
    pub fn recorded_end_ms(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.status_log).unwrap_or_default();
        let mut end = None;
        for line in text.lines() {
            let w: Vec<&str> = line.split(' ').collect();
            match w.as_slice() {
                [key, "pid", ..] if *key == self.key => end = None,
                [key, "exit", _, "at", ms] if *key == self.key => end = ms.trim().parse().ok(),
                _ => {}
            }
        }
        end
    }
}

/// A line a step printed, masked, for the observers.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub step: usize,
    pub text: String,
}

/// Terminates a step's process group: SIGTERM, then SIGKILL after the grace period unless
/// the step has exited by then. It never reaps: the leader's status belongs to its waiter.
pub async fn terminate(pgid: u32, grace: Duration, exited: Arc<AtomicBool>) {
    let pg = Pid::from_raw(pgid as i32);
    if killpg(pg, Signal::SIGTERM).is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if exited.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = killpg(pg, Signal::SIGKILL);
}

/// Is any process of the group alive? Read from /proc, so zombies (which signal 0 still
/// reaches, and which an init that reaps slowly may keep for a while) do not count. Used on
/// resume, for the group of a dead executor's step, which is no child of ours.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return killpg(Pid::from_raw(pgid as i32), None).is_ok();
    };
    rd.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let mut f = rest.split_whitespace();
            let state = f.next().unwrap_or("Z");
            let pgrp = f.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(pgid) && state != "Z" && state != "X"
        })
}

/// Ends what is left of a group that is no child of ours (an adopted step's).
pub async fn end_foreign_group(pgid: u32) {
    let pg = Pid::from_raw(pgid as i32);
    if !group_alive(pgid) {
        return;
    }
    let _ = killpg(pg, Signal::SIGTERM);
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !group_alive(pgid) {
            return;
        }
    }
    let _ = killpg(pg, Signal::SIGKILL);
}

/// The outputs a step left in its `$RUNBOOK_OUTPUT` file (`key=value` lines and `key<<DELIM`
/// blocks, as GitHub Actions writes them), read once, when its attempt has ended. The values
/// returned are the real ones, for the templates downstream; the file sits in the state
/// folder, which keeps no secret in clear, so when it held one it is rewritten masked. What
/// cannot be read as outputs (bytes that are not UTF-8, a line with no `=`, a `key<<EOF` block
/// never closed) is appended to the step's log and returned, so the step downstream that
/// misses a value is not the first to hear of it; the rest is kept.
pub fn take_outputs(
    path: &Path,
    log: &Path,
    secrets: &super::mask::Masker,
) -> (BTreeMap<String, String>, Vec<String>) {
    let Ok(bytes) = std::fs::read(path) else {
        return (BTreeMap::new(), Vec::new());
    };
    let mut problems = Vec::new();
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            problems.push(
                "$RUNBOOK_OUTPUT holds bytes that are not UTF-8: each was replaced by U+FFFD"
                    .to_owned(),
            );
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    let masked = secrets.mask(&text);
    if masked != text {
        let _ = std::fs::write(path, &masked);
    }
    let (outputs, _) = parse_outputs(&text);
    // What is said about the file quotes it: from its masked text, so that a secret cut
    // short in a quote cannot slip past the mask.
    let (_, more) = parse_outputs(&masked);
    problems.extend(more);
    let problems: Vec<String> = problems
        .into_iter()
        .map(|p| format!("runbook: {}", secrets.mask(&p)))
        .collect();
    if !problems.is_empty() {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            for p in &problems {
                let _ = writeln!(f, "{p}");
            }
        }
    }
    (outputs, problems)
}

/// `key=value` lines and `key<<DELIM` ... `DELIM` blocks; what else is there, said.
pub fn parse_outputs(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if let Some((key, delim)) = line.split_once("<<")
            && !key.contains('=')
        {
            let mut value = Vec::new();
            let mut closed = false;
            for (_, l) in lines.by_ref() {
                if l == delim {
                    closed = true;
                    break;
                }
                value.push(l);
            }
            if !closed {
                problems.push(format!(
                    "$RUNBOOK_OUTPUT line {}: the block `{}<<{delim}` is never closed by a line `{delim}`: it takes every line to the end",
                    n + 1,
                    key.trim()
                ));
            }
            out.insert(key.trim().to_owned(), value.join("\n"));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_owned(), v.to_owned());
        } else if !line.trim().is_empty() {
            problems.push(format!(
                "$RUNBOOK_OUTPUT line {}: ignored, neither `key=value` nor `key<<EOF`: {}",
                n + 1,
                line.chars().take(80).collect::<String>()
            ));
        }
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_lines_and_blocks() {
        let (o, problems) =
            parse_outputs("file=/b/x.dump\nnote<<EOF\nline 1\nline=2\nEOF\nage_s=42\n");
        assert_eq!(o["file"], "/b/x.dump");
        assert_eq!(o["note"], "line 1\nline=2");
        assert_eq!(o["age_s"], "42");
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn what_is_said_of_an_output_file_never_quotes_a_secret() {
        let d = tempfile::tempdir().unwrap();
        let (out, log) = (d.path().join("out.env"), d.path().join("a.log"));
        let secret = "S3cretPassw0rdValue1234567890";
        // A line with no `=`, long enough that its quote is cut inside the secret.
        let line = format!("{}{secret} tail\n", "x".repeat(70));
        std::fs::write(&out, &line).unwrap();
        let mask = super::super::mask::Masker::new([secret.to_owned()]);
        let (_, problems) = take_outputs(&out, &log, &mask);
        assert_eq!(problems.len(), 1);
        let said = problems[0].clone() + &std::fs::read_to_string(&log).unwrap();
        assert!(!said.contains(&secret[..6]), "{said}");
    }

    #[test]
    fn what_is_not_an_output_is_said_and_the_rest_kept() {
        let (o, problems) = parse_outputs("a=1\njust words\n\nnotes<<END\nx\nafter=lost\n");
        assert_eq!(o["a"], "1");
        assert_eq!(o["notes"], "x\nafter=lost");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("line 2: ignored"), "{}", problems[0]);
        assert!(
            problems[1].contains("line 4: the block `notes<<END` is never closed"),
            "{}",
            problems[1]
        );
    }
}
