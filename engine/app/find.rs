//! Which run a command means: an id, a unique part of one, or `last` of a kind.

use super::Error;
use super::error::Said;
use crate::journal::{self, RunState};
use crate::state::StateDir;

pub fn find(state: &StateDir, run: Option<&str>, last: bool) -> Result<String, Error> {
    find_which(state, run, last, Last::Any)
}

/// Which runs `last` chooses from. An id names any run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Last {
    Any,
    /// Not a dry-run: what `status` and `report` mean by `last` unless `--dry-run` is given.
    NotDryRun,
    /// Not finished and not a dry-run: what `resume` can continue.
    Resumable,
    /// Not finished and real: what `resume` continues first (a stopped recovery before a
    /// colleague's newer drill).
    ResumableReal,
}

impl Last {
    /// `--dry-run` lets `last` be a dry-run.
    pub fn not_dry_run_unless(dry_run: bool) -> Self {
        if dry_run { Last::Any } else { Last::NotDryRun }
    }

    fn fits(self, state: &StateDir, id: &str) -> bool {
        if self == Last::Any {
            return true;
        }
        let rs = RunState::replay(&journal::read_lenient(&state.journal(id)).unwrap_or_default());
        let real = rs.started.is_some() && rs.mode() != journal::Mode::DryRun;
        match self {
            Last::Any => true,
            Last::NotDryRun => real,
            Last::Resumable => real && !rs.is_finished(),
            Last::ResumableReal => rs.mode() == journal::Mode::Real && !rs.is_finished(),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Last::Any => "run",
            Last::NotDryRun => "run other than dry-runs (`--dry-run` counts them)",
            Last::Resumable | Last::ResumableReal => {
                "run to resume (every run there has finished, or is a dry-run, which is not resumed)"
            }
        }
    }
}

/// [`find`], with `last` the newest run of a kind.
pub fn find_which(
    state: &StateDir,
    run: Option<&str>,
    last: bool,
    which: Last,
) -> Result<String, Error> {
    let arg = match (run, last) {
        (Some(r), _) => r,
        (None, true) => "last",
        (None, false) => return Err(Error::usage(Said::error("name a run, or pass --last"))),
    };
    // A stopped real recovery comes before a newer drill: it is what an incident resumes.
    if which == Last::Resumable
        && arg == "last"
        && let Ok(id) = state.find_run_where(
            arg,
            |id| Last::ResumableReal.fits(state, id),
            Last::ResumableReal.what(),
        )
    {
        return Ok(id);
    }
    state
        .find_run_where(arg, |id| which.fits(state, id), which.what())
        .map_err(|e| Error::usage(Said::error(e.to_string())))
}
