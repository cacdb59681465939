//! When the step supervisor dies mid-run, the engine sees its running steps to their end
//! itself, so that a fault of the engine's turns no step into a failure or an unknown.
//!
//! It can: it is a child subreaper, so the steps the supervisor started are handed to it
//! when the supervisor dies, and it can wait for them like any child. What it cannot get
//! back is the read ends of their stdout and stderr, which died with the supervisor: a step
//! that printed a line then would die of SIGPIPE. So the engine takes read ends of its own
//! shortly after the supervisor reports a step's pid ([`hold_pipes`], through
//! `/proc/PID/fd/{1,2}`, [`HOLD_AFTER`]), never reads them while the supervisor lives, and
//! reads them in its place once it is gone ([`watch`]).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::machine::{ExitResult, Input};
use super::mask::Masker;
use super::process::{LogLine, StepFiles, group_alive, take_outputs};
use super::supervisor::LazyLog;

/// How long a step runs before the engine takes read ends of its pipes. A step whose
/// supervisor dies before then, and that prints after, dies of SIGPIPE: its outcome is then
/// unknown, and `resume` asks. Measured (benches/RESULTS.md): taking them at once cost a chain
/// of no-op steps several per cent.
pub const HOLD_AFTER: Duration = Duration::from_millis(100);

/// Read ends of a step's stdout and stderr, when they are still the pipes the supervisor gave
/// it (a step that redirected its own output to a file or a named FIFO has none to hold: its
/// reader is someone else). Opened without blocking: a pipe whose writer is gone would
/// otherwise block the open.
pub fn hold_pipes(pid: u32) -> Vec<File> {
    [1, 2]
        .iter()
        .filter_map(|fd| {
            let path = format!("/proc/{pid}/fd/{fd}");
            let target = std::fs::read_link(&path).ok()?;
            if !target.to_string_lossy().starts_with("pipe:[") {
                return None;
            }
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                .open(&path)
                .ok()?;
            f.metadata().ok()?.file_type().is_fifo().then_some(f)
        })
        .collect()
}

/// A running step whose supervisor died.
pub struct Orphan {
    pub step: usize,
    pub attempt: u32,
    pub pid: u32,
    pub pipes: Vec<File>,
    pub files: StepFiles,
}

/// How often an orphan is looked at: its pipes read, its end looked for.
const TICK: Duration = Duration::from_millis(50);
/// How long the kernel may take to hand a dead supervisor's children to us.
const HANDOVER: Duration = Duration::from_secs(2);
/// What is left of its group once the step has ended: SIGTERM, then SIGKILL after this.
const GROUP_GRACE: Duration = Duration::from_millis(500);
/// Lines still in its pipes are read for this long after its group is gone.
const DRAIN: Duration = Duration::from_millis(500);
/// A line longer than this is logged in pieces, as the supervisor does.
const LINE_MAX: usize = 64 * 1024;

/// Sees an orphaned step to its end on a thread of its own: logs what it prints, waits for
/// it, ends what it left in its group, records its exit in the status log as the supervisor
/// would have, and reports it to the machine like any step's end.
pub fn watch(
    o: Orphan,
    mask: Arc<Masker>,
    tx: mpsc::UnboundedSender<Input>,
    log_tx: mpsc::UnboundedSender<LogLine>,
) {
    std::thread::spawn(move || {
        let mut out = Output {
            step: o.step,
            log: LazyLog {
                path: o.files.log.clone(),
                file: None,
                failing: false,
                lost: 0,
                hosts: Vec::new(),
            },
            pipes: o.pipes.into_iter().map(|f| (Some(f), Vec::new())).collect(),
            mask: &mask,
            log_tx: &log_tx,
        };
        // The supervisor's pipe closes before the kernel hands its children to us: a step
        // that is not our child yet, but exists, is waited for; one that does not exist
        // any more was reaped by the supervisor before it died.
        let handed_over_by = Instant::now() + HANDOVER;
        let ended = loop {
            out.read();
            match waitpid(Pid::from_raw(o.pid as i32), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => break Some(ExitResult::Code(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => break Some(ExitResult::Signal(sig as i32)),
                Ok(_) => std::thread::sleep(TICK),
                Err(_) if exists(o.pid) => {
                    // Never handed to us (it cannot be, we are the subreaper above it, but
                    // should it be): watched until it is gone, its end unknown.
                    if Instant::now() > handed_over_by {
                        while exists(o.pid) {
                            out.read();
                            std::thread::sleep(TICK);
                        }
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break None,
            }
        };
        end_group(o.pid);
        let until = Instant::now() + DRAIN;
        while out.pipes.iter().any(|(f, _)| f.is_some()) && Instant::now() < until {
            out.read();
            std::thread::sleep(Duration::from_millis(10));
        }
        out.finish();
        let result = match ended {
            Some(r) => {
                let code = match r {
                    ExitResult::Code(c) => c,
                    ExitResult::Signal(s) => 128 + s,
                    _ => 125,
                };
                record(&o.files, code);
                r
            }
            None => match o.files.recorded().1 {
                Some(c) => ExitResult::Code(c),
                None => ExitResult::Unknown(
                    "its process ended while no supervisor watched it: how it ended is not known"
                        .into(),
                ),
            },
        };
        let (outputs, problems) = take_outputs(&o.files.output, &o.files.log, &mask);
        for text in problems {
            let _ = log_tx.send(LogLine { step: o.step, text });
        }
        let _ = tx.send(Input::Exited {
            step: o.step,
            attempt: o.attempt,
            result,
            outputs,
        });
    });
}

/// Does the process exist (a zombie counts: it can still be reaped)?
fn exists(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_ok()
}

/// SIGTERM to what is left of the step's group, SIGKILL after the grace.
fn end_group(pgid: u32) {
    let pg = Pid::from_raw(pgid as i32);
    if !group_alive(pgid) {
        return;
    }
    let _ = killpg(pg, Signal::SIGTERM);
    let until = Instant::now() + GROUP_GRACE;
    while group_alive(pgid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(pg, Signal::SIGKILL);
}

/// `KEY exit N at MS` in the run's status log, in one write, as the supervisor records it.
fn record(files: &StepFiles, code: i32) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.status_log)
    {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let _ = f.write_all(format!("{} exit {code} at {at}\n", files.key).as_bytes());
    }
}

/// A step's output, read in the supervisor's place: lines masked, logged and shown.
struct Output<'a> {
    step: usize,
    log: LazyLog,
    /// Each pipe while open, and the start of a line not yet ended.
    pipes: Vec<(Option<File>, Vec<u8>)>,
    mask: &'a Masker,
    log_tx: &'a mpsc::UnboundedSender<LogLine>,
}

impl Output<'_> {
    /// Reads what the pipes hold now, without waiting.
    fn read(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        let mut lines = Vec::new();
        for (pipe, partial) in &mut self.pipes {
            let Some(f) = pipe else { continue };
            loop {
                match f.read(&mut buf) {
                    Ok(0) => {
                        *pipe = None;
                        break;
                    }
                    Ok(n) => partial.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        *pipe = None;
                        break;
                    }
                }
            }
            let mut from = 0;
            while let Some(nl) = partial[from..].iter().position(|b| *b == b'\n') {
                lines.push(partial[from..from + nl].to_vec());
                from += nl + 1;
            }
            partial.drain(..from);
            if partial.len() > LINE_MAX {
                lines.push(std::mem::take(partial));
            }
            if pipe.is_none() && !partial.is_empty() {
                lines.push(std::mem::take(partial));
            }
        }
        for raw in lines {
            self.line(&raw);
        }
    }

    fn line(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let line = self.mask.mask(text.trim_end_matches('\r'));
        if let Some(said) = self.log.line(&line) {
            let _ = self.log_tx.send(LogLine {
                step: self.step,
                text: said,
            });
        }
        let _ = self.log_tx.send(LogLine {
            step: self.step,
            text: line,
        });
    }

    /// What is left of a line at the end still counts.
    fn finish(&mut self) {
        let rests: Vec<Vec<u8>> = self
            .pipes
            .iter_mut()
            .map(|(_, p)| std::mem::take(p))
            .filter(|p| !p.is_empty())
            .collect();
        for r in rests {
            self.line(&r);
        }
        self.log.close();
    }
}
