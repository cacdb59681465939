//! The end of a step: its leader reaped, what is left of its group told to go (SIGTERM, then
//! SIGKILL), its pipes drained, its exit recorded and reported.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::strays::strays;
use super::{Event, Phase, Supervisor};

/// What is left of a step's group once its leader has exited: SIGTERM, then SIGKILL after
/// this long, then give up after as long again (a process in uninterruptible sleep).
const GROUP_GRACE: Duration = Duration::from_millis(500);
const GROUP_GIVE_UP: Duration = Duration::from_secs(2);
const GROUP_CHECK: Duration = Duration::from_millis(20);
/// Lines still in the pipes are read for this long after the group is gone: an escaped
/// descendant holding a pipe is not waited for.
const DRAIN: Duration = Duration::from_millis(500);

impl Supervisor {
    /// Reaps every child that has ended: step leaders, and whatever else was left to us.
    pub(super) fn reap(&mut self) {
        while let Ok(Some(_)) = self.sigchld.read_signal() {}
        self.reap_children();
    }

    pub(super) fn reap_children(&mut self) {
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

    /// Moves every step whose leader has exited towards its end: its group stopped, its
    /// pipes drained, its exit recorded and reported.
    pub(super) fn advance(&mut self, now: Instant) {
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
}

/// A step's end in the status log, in the shell's convention: 128 + N for signal N, and when
/// (milliseconds since the Unix epoch): a resume that finds the step ended while no engine
/// watched times it to this instant, not to the resume (older readers ignore the words).
pub(super) fn exit_line(key: &str, (code, signal): (Option<i32>, Option<i32>)) -> String {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!(
        "{key} exit {} at {at}\n",
        code.unwrap_or(128 + signal.unwrap_or(0))
    )
}
