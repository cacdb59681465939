//! The supervisor's own signals: SIGCHLD blocked for its signalfd but unblocked around each
//! spawn, and termination signals ignored so that it outlives a signal to its group.

use std::process::Command;

use nix::sys::signal::{SigSet, Signal};

/// Spawns with SIGCHLD unblocked for the moment of the spawn. The supervisor blocks it to read
/// it from a signalfd, and a step inherits the spawning thread's mask (std does not reset it):
/// a `sh` started with SIGCHLD blocked waits forever in `wait` for a job that ends while it
/// waits. Unblocking around the spawn, rather than a `pre_exec` hook that clears the child's
/// mask, keeps std's posix_spawn path (a hook makes it fork the supervisor). A SIGCHLD that
/// arrives in that moment is not queued for the signalfd: the caller reaps once after.
pub(super) fn spawn_unblocked(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let _ = chld.thread_unblock();
    let spawned = cmd.spawn();
    let _ = chld.thread_block();
    spawned
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
