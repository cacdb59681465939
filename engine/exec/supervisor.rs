//! The step supervisor: `runbook-step --supervise STATUS_LOG` (or `runbook __supervise ...`),
//! one process per run between the engine and the steps. The engine writes one request a line
//! on its stdin; for each, the supervisor starts the command in a process group of its own
//! (`sh -c`, or directly when nothing in it needs a shell), writes its output to the step's log
//! with secrets masked, appends `KEY pid N` and `KEY exit N` to the run's status log, ends
//! whatever the step left in its group, and reports `pid`, `line` and `exit` events on stdout.
//!
//! It exists so that steps outlive a crash of the engine cleanly: with the engine gone, its
//! stdin closes and its events go nowhere, but it keeps logging and recording until the last
//! step ends, then exits — and `runbook resume` adopts those steps from the status log. One
//! supervisor for the whole run, not one wrapper per step, keeps a step's cost to the one
//! process it runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::mask::Masker;

/// What the engine asks for: run this command as step attempt `key`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub key: String,
    pub step: usize,
    pub command: String,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// What the supervisor tells the engine.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The step's process group is `pid`.
    Pid { key: String, pid: u32 },
    /// A line the step printed, masked.
    Line { step: usize, text: String },
    /// The step ended (its group too): its exit code, or the signal that ended it; code 127
    /// when it could not be started.
    Exit {
        key: String,
        code: Option<i32>,
        signal: Option<i32>,
    },
}

type Out = Arc<Mutex<std::io::Stdout>>;

fn emit(out: &Out, ev: &Event) {
    if let Ok(line) = serde_json::to_string(ev)
        && let Ok(mut o) = out.lock()
    {
        // The engine may be gone: a failed write is nobody's failure.
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    }
}

pub fn main(status_log: &Path) -> i32 {
    keep_running_on_signals();
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let names: Vec<String> = std::env::var(SECRET_NAMES)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mask = Arc::new(Masker::from_env(&names));
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    let mut waiters = Vec::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("runbook-step: unreadable request: {e}");
                continue;
            }
        };
        let (status_log, mask, out) = (status_log.to_owned(), mask.clone(), out.clone());
        match start(&req, &status_log, &mask, &out) {
            Ok(w) => waiters.push(w),
            Err(e) => {
                emit(
                    &out,
                    &Event::Line {
                        step: req.step,
                        text: format!("runbook: cannot start the step: {e}"),
                    },
                );
                record(&status_log, &format!("{} exit 127\n", req.key));
                emit(
                    &out,
                    &Event::Exit {
                        key: req.key,
                        code: Some(127),
                        signal: None,
                    },
                );
            }
        }
        waiters.retain(|w: &std::thread::JoinHandle<()>| !w.is_finished());
    }
    // The engine is done with us (or gone): see every step to its end.
    for w in waiters {
        let _ = w.join();
    }
    0
}

fn start(
    req: &Request,
    status_log: &Path,
    mask: &Arc<Masker>,
    out: &Out,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use std::os::unix::process::CommandExt;
    let mut cmd = match simple_argv(&req.command) {
        Some(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(&req.command);
            c
        }
    };
    cmd.envs(req.env.iter().map(|(k, v)| (k, v)))
        .env_remove(SECRET_NAMES)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    record(status_log, &format!("{} pid {pid}\n", req.key));
    emit(
        out,
        &Event::Pid {
            key: req.key.clone(),
            pid,
        },
    );
    let hosts = req
        .hosts
        .iter()
        .map(|h| (h.clone(), host_log(&req.log, h), None))
        .collect();
    let log = Arc::new(Mutex::new(LazyLog {
        path: req.log.clone(),
        file: None,
        hosts,
    }));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    let mut pumps = 0;
    for r in readers.into_iter().flatten() {
        let (log, mask, done, out, step) = (
            log.clone(),
            mask.clone(),
            done_tx.clone(),
            out.clone(),
            req.step,
        );
        std::thread::spawn(move || {
            pump(r, step, &log, &mask, &out);
            let _ = done.send(());
        });
        pumps += 1;
    }
    let (key, status_log, out) = (req.key.clone(), status_log.to_owned(), out.clone());
    Ok(std::thread::spawn(move || {
        let (code, signal) = match child.wait() {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                (s.code(), s.signal())
            }
            Err(_) => (Some(125), None),
        };
        end_group(pid);
        // Lines still in the pipes are read; an escaped descendant holding a pipe is not
        // waited for.
        let deadline = Instant::now() + Duration::from_millis(500);
        for _ in 0..pumps {
            if done_rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_err()
            {
                break;
            }
        }
        if let Ok(mut l) = log.lock()
            && let Some(f) = l.file.as_mut()
        {
            let _ = f.flush();
        }
        // The status log keeps the shell's convention: 128 + N for signal N.
        let recorded = code.unwrap_or(128 + signal.unwrap_or(0));
        record(&status_log, &format!("{key} exit {recorded}\n"));
        emit(&out, &Event::Exit { key, code, signal });
    }))
}

fn pump(r: Box<dyn Read + Send>, step: usize, log: &Mutex<LazyLog>, mask: &Masker, out: &Out) {
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let line = mask.mask(text.trim_end_matches(['\n', '\r']));
                if let Ok(mut l) = log.lock() {
                    l.line(&line);
                }
                emit(out, &Event::Line { step, text: line });
            }
        }
    }
}

/// After the leader exited and was reaped: stop what is left of its group, and reap those
/// members that were reparented to us as subreaper.
fn end_group(pgid: u32) {
    let pg = Pid::from_raw(pgid as i32);
    let gone = || {
        loop {
            match waitpid(Pid::from_raw(-(pgid as i32)), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        killpg(pg, None).is_err()
    };
    if gone() {
        return;
    }
    let _ = killpg(pg, Signal::SIGTERM);
    for _ in 0..25 {
        std::thread::sleep(Duration::from_millis(20));
        if gone() {
            return;
        }
    }
    let _ = killpg(pg, Signal::SIGKILL);
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        if gone() {
            return;
        }
    }
}

/// The engine's side: the supervisor process, fed through a channel by a writer task, its
/// events read by a reader task.
pub struct Handle {
    pub requests: tokio::sync::mpsc::UnboundedSender<Request>,
    child: tokio::process::Child,
}

impl Handle {
    /// Closes the supervisor's stdin and gives it a moment to finish (it has no steps left).
    pub async fn close(mut self) {
        drop(self.requests);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
    }
}

/// Starts the supervisor for a run. `on_event` gets every event, on the reader task, and
/// `None` once if the supervisor goes away.
pub fn spawn(
    root: &Path,
    status_log: &Path,
    secret_names: &str,
    mut on_event: impl FnMut(Option<Event>) + Send + 'static,
) -> std::io::Result<Handle> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let exe = std::env::current_exe()?;
    let small = exe.with_file_name("runbook-step");
    let mut cmd = if small.is_file() {
        let mut c = tokio::process::Command::new(small);
        c.arg("--supervise");
        c
    } else {
        let mut c = tokio::process::Command::new(exe);
        c.arg("__supervise");
        c
    };
    cmd.arg(status_log)
        .current_dir(root)
        .env(SECRET_NAMES, secret_names)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own group: a Ctrl-C at the terminal is the engine's to handle, not its.
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Request>();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let Ok(mut line) = serde_json::to_vec(&req) else {
                continue;
            };
            line.push(b'\n');
            if stdin.write_all(&line).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Event>(&line) {
                Ok(ev) => on_event(Some(ev)),
                Err(e) => tracing::warn!("unreadable event from the step supervisor: {e}"),
            }
        }
        on_event(None);
    });
    Ok(Handle {
        requests: tx,
        child,
    })
}

/// Environment variable naming the secrets (comma-separated names) whose values to mask.
pub const SECRET_NAMES: &str = "RUNBOOK_SECRET_NAMES";

extern "C" fn ignore(_: libc_int) {}

#[allow(non_camel_case_types)]
type libc_int = std::os::raw::c_int;

/// Termination signals reach the whole group; the supervisor stays to record what became of its
/// command. A handler (not SIG_IGN) so that the command itself does not inherit immunity.
pub(crate) fn keep_running_on_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(ignore),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler does nothing, so it is async-signal-safe.
        unsafe {
            let _ = sigaction(sig, &action);
        }
    }
}

/// Appends one line with one write: lines from concurrent steps never interleave.
pub(crate) fn record(status_log: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(status_log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The words of a command that needs no shell: plain words separated by spaces, with none of
/// the characters a shell would interpret. Anything else goes to `sh -c`.
pub(crate) fn simple_argv(command: &str) -> Option<Vec<String>> {
    const SPECIAL: &[char] = &[
        '$', '&', '|', ';', '<', '>', '(', ')', '`', '\\', '"', '\'', '*', '?', '[', ']', '#', '~',
        '=', '%', '{', '}', '!', '\n', '\t',
    ];
    if command.trim().is_empty() || command.contains(SPECIAL) {
        return None;
    }
    let argv: Vec<String> = command
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    // A shell builtin or keyword must go through the shell.
    const BUILTINS: &[&str] = &[
        "cd", "exit", "export", "set", "unset", "exec", "source", ".", "alias", "eval", "read",
        "trap", "wait", "ulimit", "umask", "if", "for", "while", "until", "case", "shift",
        "return", "local",
    ];
    (!BUILTINS.contains(&argv[0].as_str())).then_some(argv)
}

pub(crate) struct LazyLog {
    pub(crate) path: std::path::PathBuf,
    pub(crate) file: Option<std::fs::File>,
    /// (host, its log, the file once opened).
    pub(crate) hosts: Vec<(String, std::path::PathBuf, Option<std::fs::File>)>,
}

/// `logs/<step>.log` -> `logs/<step>@<host>.log`.
pub(crate) fn host_log(log: &Path, host: &str) -> std::path::PathBuf {
    let stem = log.file_stem().unwrap_or_default().to_string_lossy();
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    log.with_file_name(format!("{stem}@{safe}.log"))
}

/// Appends a line, opening the file on first use.
fn append(file: &mut Option<std::fs::File>, path: &Path, line: &str) {
    if file.is_none() {
        *file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok();
    }
    if let Some(f) = file.as_mut() {
        let _ = writeln!(f, "{line}");
    }
}

impl LazyLog {
    pub(crate) fn line(&mut self, line: &str) {
        append(&mut self.file, &self.path, line);
        for (host, path, file) in &mut self.hosts {
            if let Some(rest) = line.strip_prefix(&format!("[{host}] ")) {
                append(file, path, rest);
            }
        }
    }
}
