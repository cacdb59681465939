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
//!
//! It is one thread around one `poll(2)`: the engine's requests, every step's stdout and
//! stderr, and SIGCHLD (through a signalfd) are all file descriptors, so a step costs the
//! process it runs and two pipes — no thread, no lock. As a child subreaper it reaps
//! whatever a step leaves behind, and `waitpid(-1)` is how it learns of every end.
//!
//! Its protocol field by field, the status log, and what the engine does when it dies:
//! docs/design.md ("The step supervisor").

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::mask::Masker;

mod argv;
mod client;
mod log;
mod protocol;
mod strays;

use argv::shell_pwd;
pub(crate) use argv::simple_argv;
pub use client::{Handle, spawn};
pub(crate) use log::{LazyLog, host_log};
pub use protocol::{Event, Request, SECRET_NAMES};
use strays::strays;

/// What is left of a step's group once its leader has exited: SIGTERM, then SIGKILL after
/// this long, then give up after as long again (a process in uninterruptible sleep).
const GROUP_GRACE: Duration = Duration::from_millis(500);
const GROUP_GIVE_UP: Duration = Duration::from_secs(2);
const GROUP_CHECK: Duration = Duration::from_millis(20);
/// The longest line a step's log holds: a longer one is cut there and goes on in the next, so
/// that binary output or a progress bar with no line end is handled in pieces of this size.
const MAX_LINE: usize = 64 * 1024;
/// Lines still in the pipes are read for this long after the group is gone: an escaped
/// descendant holding a pipe is not waited for.
const DRAIN: Duration = Duration::from_millis(500);

pub fn main(status_log: &Path) -> i32 {
    keep_running_on_signals();
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let names: Vec<String> = std::env::var(SECRET_NAMES)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    match Supervisor::new(status_log, Masker::from_env(&names)) {
        Ok(mut s) => {
            s.run();
            0
        }
        Err(e) => {
            eprintln!("runbook-step: cannot watch for the end of steps: {e}");
            1
        }
    }
}

/// One step's process group, from its start until its end is reported.
struct StepProc {
    key: String,
    step: usize,
    pgid: i32,
    log: LazyLog,
    /// stdout and stderr: the read end while open, and the start of a line not yet ended.
    pipes: Vec<(Option<OwnedFd>, Vec<u8>)>,
    /// The leader's exit code or signal, once reaped.
    ended: Option<(Option<i32>, Option<i32>)>,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Running,
    /// The leader is gone and its group was told to go: SIGTERM at `since` (SIGKILL once
    /// `killed`); checked again at `check`.
    Ending {
        since: Instant,
        killed: bool,
        check: Instant,
    },
    /// The group is gone; what its pipes still hold is read until `until`.
    Draining {
        until: Instant,
    },
}

struct Supervisor {
    status_path: PathBuf,
    /// The run's status log, opened once; every line is one `write` on it (O_APPEND).
    status: Option<File>,
    mask: Masker,
    sigchld: SignalFd,
    /// Events not yet written to the engine: written together, once a round.
    out: Vec<u8>,
    /// The engine's requests: a line not yet complete.
    input: Vec<u8>,
    input_open: bool,
    /// By the pid of the step's leader (its process group).
    steps: HashMap<i32, StepProc>,
    buf: Vec<u8>,
    /// What `sh` would set `PWD` to in a step's environment; given to the steps that run
    /// without it (see [`simple_argv`]).
    pwd: Option<std::ffi::OsString>,
}

impl Supervisor {
    fn new(status_log: &Path, mask: Masker) -> nix::Result<Self> {
        let mut chld = SigSet::empty();
        chld.add(Signal::SIGCHLD);
        // Blocked here, read from the signalfd; a step starts with no signal blocked (see
        // `spawn_unblocked`).
        chld.thread_block()?;
        let sigchld = SignalFd::with_flags(&chld, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Supervisor {
            status_path: status_log.to_owned(),
            status: None,
            pwd: shell_pwd(),
            mask,
            sigchld,
            out: Vec::new(),
            input: Vec::new(),
            input_open: true,
            steps: HashMap::new(),
            buf: vec![0; 64 * 1024],
        })
    }

    fn run(&mut self) {
        // SAFETY: fd 1 is ours for the life of the process; ManuallyDrop never closes it.
        let mut stdout = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
        loop {
            if !self.out.is_empty() {
                // The engine may be gone: a failed write is nobody's failure.
                let _ = stdout.write_all(&self.out);
                self.out.clear();
            }
            if !self.input_open && self.steps.is_empty() {
                return;
            }
            let ready = self.wait();
            let now = Instant::now();
            for source in ready {
                match source {
                    Source::Input => self.read_input(),
                    Source::Sigchld => self.reap(),
                    Source::Pipe { pid, index } => self.read_pipe(pid, index),
                }
            }
            self.advance(now);
        }
    }

    /// Polls every descriptor until one is ready or the next group check is due.
    fn wait(&mut self) -> Vec<Source> {
        let stdin = std::io::stdin();
        let mut fds = Vec::with_capacity(2 + 2 * self.steps.len());
        let mut sources = Vec::with_capacity(fds.capacity());
        if self.input_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            sources.push(Source::Input);
        }
        fds.push(PollFd::new(self.sigchld.as_fd(), PollFlags::POLLIN));
        sources.push(Source::Sigchld);
        let mut due: Option<Instant> = None;
        for (pid, s) in &self.steps {
            for (index, (fd, _)) in s.pipes.iter().enumerate() {
                if let Some(fd) = fd {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    sources.push(Source::Pipe { pid: *pid, index });
                }
            }
            let at = match s.phase {
                Phase::Running => None,
                Phase::Ending { check, .. } => Some(check),
                Phase::Draining { until } => Some(until),
            };
            due = match (due, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let timeout = match due {
            None => PollTimeout::NONE,
            Some(t) => {
                let ms = t.saturating_duration_since(Instant::now()).as_millis() + 1;
                PollTimeout::try_from(ms.min(60_000)).unwrap_or(PollTimeout::MAX)
            }
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            // A signal (SIGTERM and the like are caught and ignored): look again.
            Err(Errno::EINTR) => return Vec::new(),
            Err(e) => {
                eprintln!("runbook-step: poll failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                return Vec::new();
            }
        }
        // A step's end is acted on in `advance`, after every ready pipe has been read.
        fds.iter()
            .zip(sources)
            .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, source)| source)
            .collect()
    }

    /// Reads the engine's requests; starts a step for each complete line.
    fn read_input(&mut self) {
        match nix::unistd::read(std::io::stdin().as_fd(), &mut self.buf) {
            Ok(0) | Err(Errno::EBADF) => self.input_open = false,
            Ok(n) => self.input.extend_from_slice(&self.buf[..n]),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => self.input_open = false,
        }
        while let Some(nl) = self.input.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.input.drain(..=nl).collect();
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => self.start(req),
                Err(e) => eprintln!("runbook-step: unreadable request: {e}"),
            }
        }
    }

    /// The step's process: `argv` exec'd directly when given, else `sh -c` of its command.
    fn command(&self, req: &Request, argv: Option<&[String]>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = match argv {
            Some(argv) => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                // `sh` would have put the working folder there.
                if let Some(pwd) = &self.pwd {
                    c.env("PWD", pwd);
                }
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
        cmd
    }

    fn start(&mut self, req: Request) {
        let direct = simple_argv(&req.command);
        let mut cmd = self.command(&req, direct.as_deref());
        let hosts = req
            .hosts
            .iter()
            .map(|h| (h.clone(), host_log(&req.log, h), None))
            .collect();
        let mut log = LazyLog {
            path: req.log.clone(),
            file: None,
            failing: false,
            lost: 0,
            hosts,
        };
        let mut spawned = spawn_unblocked(&mut cmd);
        // Not found on PATH, not executable, a script with no `#!`: whatever `sh` makes of
        // it, said as `sh` says it.
        if direct.is_some() && spawned.is_err() {
            cmd = self.command(&req, None);
            spawned = spawn_unblocked(&mut cmd);
        }
        // Two pipes a step: some hundreds of steps at once reach the usual soft limit of 1,024
        // descriptors. It is raised to the hard limit then, and only then, so that the steps
        // of ordinary runs inherit the limit they would have had anyway.
        if spawned
            .as_ref()
            .is_err_and(|e| e.raw_os_error() == Some(Errno::EMFILE as i32))
            && raise_descriptor_limit()
        {
            spawned = spawn_unblocked(&mut cmd);
        }
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let why = if e.raw_os_error() == Some(Errno::EMFILE as i32) {
                    format!(
                        "{e}: too many steps at once for this system's limit on open files ({}); lower --max-parallel",
                        descriptor_limit()
                    )
                } else {
                    e.to_string()
                };
                // In the step's log too, where whoever looks into the failure looks first.
                let text = format!("runbook: cannot start the step: {why}");
                let _ = log.line(&text);
                self.emit(&Event::Line {
                    step: req.step,
                    text,
                });
                self.record(&format!("{} exit 127\n", req.key));
                self.emit(&Event::Exit {
                    key: req.key,
                    code: Some(127),
                    signal: None,
                });
                return;
            }
        };
        let pid = child.id();
        let pipes = [
            child.stdout.take().map(OwnedFd::from),
            child.stderr.take().map(OwnedFd::from),
        ]
        .into_iter()
        .flatten()
        .map(|fd| (Some(fd), Vec::new()))
        .collect();
        // The child is reaped by `reap`, with every other process that ends here.
        drop(child);
        self.record(&format!("{} pid {pid}\n", req.key));
        self.emit(&Event::Pid {
            key: req.key.clone(),
            pid,
        });
        self.steps.insert(
            pid as i32,
            StepProc {
                key: req.key,
                step: req.step,
                pgid: pid as i32,
                log,
                pipes,
                ended: None,
                phase: Phase::Running,
            },
        );
        // An end whose SIGCHLD came while it was unblocked (see `spawn_unblocked`) was not
        // queued for the signalfd: it is looked for now, the step known.
        self.reap_children();
    }

    /// Reaps every child that has ended: step leaders, and whatever else was left to us.
    fn reap(&mut self) {
        while let Ok(Some(_)) = self.sigchld.read_signal() {}
        self.reap_children();
    }

    fn reap_children(&mut self) {
        loop {
            let (pid, ended) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, (Some(code), None)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, (None, Some(sig as i32))),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            if let Some(s) = self.steps.get_mut(&pid.as_raw()) {
                s.ended = Some(ended);
                // Recorded the moment it is known, before the group is ended and the pipes
                // drained: a supervisor killed in between must not take the exit with it (a
                // resume would not know whether the step did its work).
                let line = exit_line(&s.key, ended);
                self.record(&line);
            }
        }
    }

    /// Reads what a step printed; complete lines are masked, logged and reported. A line ends
    /// at `\n`, `\r\n` or a lone `\r` (a progress bar's update), and one longer than
    /// [`MAX_LINE`] is cut and continued, so that what is kept between reads stays small and
    /// only new bytes are looked at: output that never ends a line costs what any other does.
    fn read_pipe(&mut self, pid: i32, i: usize) {
        let Some(s) = self.steps.get_mut(&pid) else {
            return;
        };
        let Some((Some(fd), kept)) = s.pipes.get_mut(i) else {
            return;
        };
        let n = match nix::unistd::read(fd.as_fd(), &mut self.buf) {
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => return,
            Err(_) => 0,
        };
        let end = n == 0;
        let mut pending = std::mem::take(kept);
        if end {
            s.pipes[i].0 = None;
        }
        // What was kept ends no line, but for a last `\r` that may be the start of a `\r\n`.
        let scan = pending.len() - usize::from(pending.last() == Some(&b'\r'));
        pending.extend_from_slice(&self.buf[..n]);
        let mut from = 0;
        // The next `\n` and the next `\r`, each looked for again only once passed: every byte
        // is looked at once for each.
        let mut nl = find(&pending, scan, b'\n');
        let mut cr = find(&pending, scan, b'\r');
        while let Some(at) = [nl, cr].into_iter().flatten().min() {
            let next = match (pending[at], pending.get(at + 1)) {
                (b'\r', Some(b'\n')) => at + 2,
                (b'\r', None) if !end => break,
                _ => at + 1,
            };
            // A `\r` right after a line end (a progress bar's first) ends nothing to show.
            if at > from || next > at + 1 || pending[at] == b'\n' {
                let cut = self.cut_long(pid, &pending[from..at], true);
                self.line(pid, &pending[from + cut..at]);
            }
            from = next;
            if nl.is_some_and(|p| p < next) {
                nl = find(&pending, next, b'\n');
            }
            if cr.is_some_and(|p| p < next) {
                cr = find(&pending, next, b'\r');
            }
        }
        // A `\r` left last is a line end to come: a line of MAX_LINE before it is not cut.
        let unended = pending.len() - usize::from(!end && pending.last() == Some(&b'\r'));
        from += self.cut_long(pid, &pending[from..unended], end);
        if end && from < pending.len() {
            // End of the stream: an unfinished last line is a line.
            self.line(pid, &pending[from..]);
            from = pending.len();
        }
        pending.drain(..from);
        if let Some(s) = self.steps.get_mut(&pid) {
            s.pipes[i].1 = pending;
        }
    }

    /// Sends on the first pieces of a line longer than [`MAX_LINE`], each cut at that length
    /// or before (see [`Masker::cut`]); returns how many bytes went. What is left is at most
    /// `MAX_LINE` long, or, when the line goes on (`complete` false), shorter than what a cut
    /// needs in view: the longest secret past it.
    fn cut_long(&mut self, pid: i32, line: &[u8], complete: bool) -> usize {
        let look = self.mask.lookahead();
        let mut from = 0;
        while line.len() - from > MAX_LINE && (complete || line.len() - from >= MAX_LINE + look) {
            let cut = self.mask.cut(&line[from..], MAX_LINE);
            self.line(pid, &line[from..from + cut]);
            from += cut;
        }
        from
    }

    /// One line a step printed: masked, into its log, to the engine.
    fn line(&mut self, pid: i32, raw: &[u8]) {
        let Some(s) = self.steps.get_mut(&pid) else {
            return;
        };
        let text = String::from_utf8_lossy(raw);
        let line = self.mask.mask(text.trim_end_matches('\r'));
        let failed = s.log.line(&line);
        let step = s.step;
        self.emit(&Event::Line { step, text: line });
        if let Some(text) = failed {
            self.emit(&Event::Line { step, text });
        }
    }

    /// Moves every step whose leader has exited towards its end: its group stopped, its
    /// pipes drained, its exit recorded and reported.
    fn advance(&mut self, now: Instant) {
        // A member of a group that ended with its leader may not be reaped yet: a zombie
        // would make its group look alive.
        if self
            .steps
            .values()
            .any(|s| s.ended.is_some() && s.phase == Phase::Running)
        {
            self.reap_children();
        }
        let mut done = Vec::new();
        let leaders: Vec<i32> = self.steps.keys().copied().collect();
        for (pid, s) in &mut self.steps {
            if s.ended.is_none() {
                continue;
            }
            // What the step moved out of its group, but not out of the run's session, is
            // the step's too; looked for when the group is looked at.
            let looks = match s.phase {
                Phase::Running => true,
                Phase::Ending { check, .. } => now >= check,
                Phase::Draining { .. } => false,
            };
            let step_id = s.key.rsplit_once('.').map_or(s.key.as_str(), |(id, _)| id);
            let strays = if looks {
                strays(step_id, s.pgid, &leaders)
            } else {
                Vec::new()
            };
            let gone = || killpg(Pid::from_raw(s.pgid), None).is_err() && strays.is_empty();
            let pg = Pid::from_raw(s.pgid);
            let signal_all = |sig| {
                let _ = killpg(pg, sig);
                for &p in &strays {
                    let _ = nix::sys::signal::kill(Pid::from_raw(p), sig);
                }
            };
            s.phase = match s.phase {
                Phase::Running if gone() => Phase::Draining { until: now + DRAIN },
                Phase::Running => {
                    signal_all(Signal::SIGTERM);
                    Phase::Ending {
                        since: now,
                        killed: false,
                        check: now + GROUP_CHECK,
                    }
                }
                Phase::Ending { check, .. } if now < check => s.phase,
                Phase::Ending { .. } if gone() => Phase::Draining { until: now + DRAIN },
                Phase::Ending { since, killed, .. } => {
                    let waited = now.duration_since(since);
                    if !killed && waited >= GROUP_GRACE {
                        signal_all(Signal::SIGKILL);
                        Phase::Ending {
                            since: now,
                            killed: true,
                            check: now + GROUP_CHECK,
                        }
                    } else if killed && waited >= GROUP_GIVE_UP {
                        Phase::Draining { until: now + DRAIN }
                    } else {
                        Phase::Ending {
                            since,
                            killed,
                            check: now + GROUP_CHECK,
                        }
                    }
                }
                p @ Phase::Draining { .. } => p,
            };
            if let Phase::Draining { until } = s.phase
                && (s.pipes.iter().all(|(fd, _)| fd.is_none()) || now >= until)
            {
                done.push(*pid);
            }
        }
        done.sort_unstable();
        for pid in done {
            // A line cut off by the drain's end still counts.
            let rests: Vec<Vec<u8>> = self.steps[&pid]
                .pipes
                .iter()
                .filter(|(_, rest)| !rest.is_empty())
                .map(|(_, rest)| rest.clone())
                .collect();
            for rest in rests {
                self.line(pid, &rest);
            }
            let Some(mut s) = self.steps.remove(&pid) else {
                continue;
            };
            s.log.close();
            let (code, signal) = s.ended.unwrap_or((Some(125), None));
            self.emit(&Event::Exit {
                key: s.key,
                code,
                signal,
            });
        }
    }

    fn emit(&mut self, ev: &Event) {
        if serde_json::to_writer(&mut self.out, ev).is_ok() {
            self.out.push(b'\n');
        }
    }

    /// Appends one line with one write: lines never interleave with another writer's.
    fn record(&mut self, line: &str) {
        if self.status.is_none() {
            self.status = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.status_path)
                .ok();
        }
        if let Some(f) = self.status.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Spawns with SIGCHLD unblocked for the moment of the spawn. The supervisor blocks it to read
/// it from a signalfd, and a step inherits the spawning thread's mask (std does not reset it):
/// a `sh` started with SIGCHLD blocked waits forever in `wait` for a job that ends while it
/// waits. Unblocking around the spawn, rather than a `pre_exec` hook that clears the child's
/// mask, keeps std's posix_spawn path (a hook makes it fork the supervisor). A SIGCHLD that
/// arrives in that moment is not queued for the signalfd: the caller reaps once after.
fn spawn_unblocked(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let _ = chld.thread_unblock();
    let spawned = cmd.spawn();
    let _ = chld.thread_block();
    spawned
}

/// A step's end in the status log, in the shell's convention: 128 + N for signal N.
fn exit_line(key: &str, (code, signal): (Option<i32>, Option<i32>)) -> String {
    format!("{key} exit {}\n", code.unwrap_or(128 + signal.unwrap_or(0)))
}

/// What `poll` found ready: the engine's requests, SIGCHLD, or a pipe of a step (by its
/// leader's pid; 0 is stdout, 1 stderr).
#[derive(Clone, Copy, Debug)]
enum Source {
    Input,
    Sigchld,
    Pipe { pid: i32, index: usize },
}

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

/// Raises the soft limit on open files to the hard limit; false if it was there already.
fn raise_descriptor_limit() -> bool {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok(),
        _ => false,
    }
}

fn descriptor_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(0, |(soft, _)| soft)
}

/// Where `byte` next occurs in `bytes` from `from` on: found by the C library's `memchr`
/// (through std's `BufRead` for a slice) rather than a loop over bytes of ours, which is slow
/// in a debug build (the tests').
fn find(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    use std::io::BufRead;
    let hay = bytes.get(from..)?;
    let mut rest = hay;
    let n = rest.skip_until(byte).ok()?;
    (n > 0 && hay[n - 1] == byte).then(|| from + n - 1)
}
