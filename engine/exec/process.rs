//! Step processes: each runs in its own process group under the step wrapper, which writes
//! the masked log and the exit status (so `resume` can adopt a step whose executor died). Nothing a step starts is left running:
//! the engine is a child subreaper, and the group is killed and reaped when the step ends.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use super::machine::ExitResult;

/// How long a step gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Makes orphaned descendants of steps our children, so none outlives the engine unseen.
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
    /// `<run>/steps.status`: `<step>.<attempt> pid <pid>` and `<step>.<attempt> exit <code>`
    /// lines, appended by the step wrapper.
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

    /// What the wrapper recorded for this attempt: its process group, and its exit code once
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
                (Some("pid"), Some(n)) => pid = u32::try_from(n).ok(),
                (Some("exit"), Some(n)) => exit = i32::try_from(n).ok(),
                _ => {}
            }
        }
        (pid, exit)
    }
}

/// A line a step printed, masked, for the observers.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub step: usize,
    pub text: String,
}

pub struct Spawned {
    pub pid: u32,
    /// Set once the leader has exited, so a pending SIGKILL is not sent to a reused group.
    pub exited: Arc<AtomicBool>,
    pub done: tokio::task::JoinHandle<(ExitResult, BTreeMap<String, String>)>,
}

/// Starts a step: the wrapper (`runbook __step`, see [`super::wrapper`]) leads a new process
/// group, runs the command, writes the masked log and the status file; its stdout carries the
/// masked lines to the observers.
pub fn spawn(
    step: usize,
    command: &str,
    cwd: &Path,
    env: &[(String, String)],
    files: &StepFiles,
    secret_names: &str,
    lines: Option<mpsc::UnboundedSender<LogLine>>,
) -> std::io::Result<Spawned> {
    let mut cmd = match step_wrapper() {
        StepWrapper::Small(path) => tokio::process::Command::new(path),
        StepWrapper::Main(path) => {
            let mut c = tokio::process::Command::new(path);
            c.arg("__step");
            c
        }
    };
    cmd.arg(&files.status_log)
        .arg(&files.log)
        .arg(&files.key)
        .arg(command)
        .current_dir(cwd)
        .env("RUNBOOK_OUTPUT", &files.output)
        .env(super::wrapper::SECRET_NAMES, secret_names)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(pump(s, step, lines.clone())));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(pump(s, step, lines.clone())));
    let output_file = files.output.clone();
    let names: Vec<String> = secret_names.split(',').map(str::to_owned).collect();
    let secrets = super::mask::Masker::from_env(&names);
    let exited = Arc::new(AtomicBool::new(false));
    let exited2 = exited.clone();
    let done = tokio::spawn(async move {
        let status = child.wait().await;
        exited2.store(true, Ordering::SeqCst);
        // Whatever the step left behind in its group goes now.
        end_group(pid).await;
        for h in [out, err].into_iter().flatten() {
            // A reader still open means a descendant that escaped the group holds the pipe:
            // do not wait for it forever.
            let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
        }
        let result = match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(c), _) => ExitResult::Code(c),
                (None, Some(sig)) => ExitResult::Signal(sig),
                _ => ExitResult::Error("unknown exit status".into()),
            },
            Err(e) => ExitResult::Error(format!("waiting for the step failed: {e}")),
        };
        let outputs = read_outputs(&output_file);
        mask_file(&output_file, &secrets);
        (result, outputs)
    });
    Ok(Spawned { pid, exited, done })
}

enum StepWrapper {
    /// `runbook-step`, installed beside `runbook`: quick to start.
    Small(PathBuf),
    /// `runbook __step`: the same code, when the small binary is not there.
    Main(PathBuf),
}

fn step_wrapper() -> StepWrapper {
    static FOUND: std::sync::OnceLock<(PathBuf, bool)> = std::sync::OnceLock::new();
    let (path, small) = FOUND.get_or_init(|| {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("runbook"));
        let small = exe.with_file_name("runbook-step");
        if small.is_file() {
            (small, true)
        } else {
            (exe, false)
        }
    });
    if *small {
        StepWrapper::Small(path.clone())
    } else {
        StepWrapper::Main(path.clone())
    }
}

async fn pump<R: AsyncRead + Unpin>(
    r: R,
    step: usize,
    lines: Option<mpsc::UnboundedSender<LogLine>>,
) {
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Some(tx) = &lines {
                    let text = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned();
                    let _ = tx.send(LogLine { step, text });
                }
            }
        }
    }
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

/// After the leader exited and was reaped: stop what is left of its group, and reap those
/// members that were reparented to us as subreaper.
async fn end_group(pgid: u32) {
    let pg = Pid::from_raw(pgid as i32);
    let gone = || {
        reap_group(pgid);
        killpg(pg, None).is_err()
    };
    if gone() {
        return;
    }
    let _ = killpg(pg, Signal::SIGTERM);
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if gone() {
            return;
        }
    }
    let _ = killpg(pg, Signal::SIGKILL);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if gone() {
            return;
        }
    }
}

fn reap_group(pgid: u32) {
    loop {
        match waitpid(Pid::from_raw(-(pgid as i32)), Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => continue,
        }
    }
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

/// The outputs file sits in the state folder, which keeps no secret in clear: once read, a
/// secret the step wrote into it is masked like everywhere else.
pub fn mask_file(path: &Path, secrets: &super::mask::Masker) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let masked = secrets.mask(&text);
    if masked != text {
        let _ = std::fs::write(path, masked);
    }
}

/// `key=value` lines and `key<<DELIM` ... `DELIM` blocks, as GitHub Actions writes them.
pub fn read_outputs(path: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    parse_outputs(&text)
}

pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((key, delim)) = line.split_once("<<")
            && !key.contains('=')
        {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(key.trim().to_owned(), value.join("\n"));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_lines_and_blocks() {
        let o = parse_outputs("file=/b/x.dump\nnote<<EOF\nline 1\nline=2\nEOF\nage_s=42\n");
        assert_eq!(o["file"], "/b/x.dump");
        assert_eq!(o["note"], "line 1\nline=2");
        assert_eq!(o["age_s"], "42");
    }
}
