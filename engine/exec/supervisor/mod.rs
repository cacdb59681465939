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
//! Here: the poll loop and the start of a step. The state of one step is in `step`, what it
//! prints in `output`, its end (reaping, its group ended, its exit reported) in `ending`, and
//! the supervisor's own signal set-up in `signals`.
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
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::mask::Masker;

mod argv;
mod client;
mod ending;
mod log;
mod output;
mod protocol;
mod signals;
mod step;
mod strays;

use argv::shell_pwd;
pub(crate) use argv::simple_argv;
pub use client::{Handle, spawn};
pub(crate) use log::{LazyLog, host_log};
pub use protocol::{Event, Request, SECRET_NAMES};
pub(crate) use signals::keep_running_on_signals;
use signals::spawn_unblocked;
use step::{Phase, StepProc};

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

/// What `poll` found ready: the engine's requests, SIGCHLD, or a pipe of a step (by its
/// leader's pid; 0 is stdout, 1 stderr).
#[derive(Clone, Copy, Debug)]
enum Source {
    Input,
    Sigchld,
    Pipe { pid: i32, index: usize },
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
