//! The supervisor's state of one step: its process group, its log, its pipes and how far
//! along its end it is.

use std::os::fd::OwnedFd;
use std::time::Instant;

use super::LazyLog;

/// One step's process group, from its start until its end is reported.
pub(super) struct StepProc {
    pub(super) key: String,
    pub(super) step: usize,
    pub(super) pgid: i32,
    pub(super) log: LazyLog,
    /// stdout and stderr: the read end while open, and the start of a line not yet ended.
    pub(super) pipes: Vec<(Option<OwnedFd>, Vec<u8>)>,
    /// The leader's exit code or signal, once reaped.
    pub(super) ended: Option<(Option<i32>, Option<i32>)>,
    pub(super) phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Phase {
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
