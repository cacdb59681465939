//! The step wrapper: `runbook-step STATUS_LOG LOG KEY COMMAND` (or `runbook __step ...`), the
//! leader of every step's process group. It runs the command under `sh -c` (or directly when
//! nothing in it needs a shell), writes its output to the log with secrets masked (and to its
//! stdout for the live view), and appends `KEY pid N` and `KEY exit N` to the run's status log.
//!
//! It exists so that a step outlives a crash of the engine cleanly: with the engine gone,
//! writes to the engine's pipe fail and are ignored, the log and the status file still get
//! written, and `runbook resume` adopts the step and takes its outcome when it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use super::mask::Masker;

/// Environment variable naming the secrets (comma-separated names) whose values to mask.
pub const SECRET_NAMES: &str = "RUNBOOK_SECRET_NAMES";

/// For `on:` steps: the inventory hosts (comma-separated). Lines the remote wrapper prefixed
/// with `[host] ` also go to that host's own log, `<step>@<host>.log`.
pub const HOSTS: &str = "RUNBOOK_HOSTS";

extern "C" fn ignore(_: libc_int) {}

#[allow(non_camel_case_types)]
type libc_int = std::os::raw::c_int;

/// Termination signals reach the whole group; the wrapper stays to record what became of its
/// command. A handler (not SIG_IGN) so that the command itself does not inherit immunity.
fn keep_running_on_signals() {
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
fn record(status_log: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(status_log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

pub fn main(status_log: &Path, log: &Path, key: &str, command: &str) -> i32 {
    record(status_log, &format!("{key} pid {}\n", std::process::id()));
    keep_running_on_signals();
    let names: Vec<String> = std::env::var(SECRET_NAMES)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mask = Arc::new(Masker::from_env(&names));
    // Opened on the first line of output: a silent step costs no file.
    let hosts = std::env::var(HOSTS)
        .unwrap_or_default()
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| (h.to_owned(), host_log(log, h), None))
        .collect();
    let log = Arc::new(Mutex::new(LazyLog {
        path: log.to_owned(),
        file: None,
        hosts,
    }));
    // Like make: a command with nothing for a shell to interpret is executed directly.
    let mut cmd = match simple_argv(command) {
        Some(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(command);
            c
        }
    };
    let mut child = match cmd
        .env_remove(SECRET_NAMES)
        .env_remove(HOSTS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("runbook: cannot start sh: {e}");
            return 126;
        }
    };
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
        let (log, mask, done) = (log.clone(), mask.clone(), done_tx.clone());
        std::thread::spawn(move || {
            pump(r, &log, &mask);
            let _ = done.send(());
        });
        pumps += 1;
    }
    let code = match child.wait() {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
        }
        Err(_) => 125,
    };
    // Lines still in the pipes are read; a background process that kept the pipe open is not
    // waited for (the engine ends the group).
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    for _ in 0..pumps {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    if let Ok(mut l) = log.lock()
        && let Some(f) = l.file.as_mut()
    {
        let _ = f.flush();
    }
    record(status_log, &format!("{key} exit {code}\n"));
    code
}

/// The words of a command that needs no shell: plain words separated by spaces, with none of
/// the characters a shell would interpret. Anything else goes to `sh -c`.
fn simple_argv(command: &str) -> Option<Vec<String>> {
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

struct LazyLog {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
    /// (host, its log, the file once opened).
    hosts: Vec<(String, std::path::PathBuf, Option<std::fs::File>)>,
}

/// `logs/<step>.log` -> `logs/<step>@<host>.log`.
fn host_log(log: &Path, host: &str) -> std::path::PathBuf {
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
    fn line(&mut self, line: &str) {
        append(&mut self.file, &self.path, line);
        for (host, path, file) in &mut self.hosts {
            if let Some(rest) = line.strip_prefix(&format!("[{host}] ")) {
                append(file, path, rest);
            }
        }
    }
}

fn pump(r: Box<dyn Read + Send>, log: &Mutex<LazyLog>, mask: &Masker) {
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    let stdout = std::io::stdout();
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
                // The engine may be gone: a failed write is not the step's failure.
                let mut out = stdout.lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
    }
}
