//! `runbook resume`: its arguments, the run it chooses, and the terminal's questions about the
//! steps only the operator can decide.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::CliError;
use super::run::{Strict, finish, observers};
use crate::app::find::{Last, find_which};
use crate::app::resume::{Choice, Operator, ResumeRequest};
use crate::journal::{RunState, read_lenient};
use crate::state::StateDir;

#[derive(clap::Args, Debug, Clone)]
pub struct ResumeArgs {
    /// A run id (or a unique part of one). Without it, or with `last`: the newest run that is
    /// neither finished nor a dry-run, real runs before drills.
    pub run: Option<String>,
    /// Re-run interrupted steps that are not idempotent; approve gates as with `run --yes`.
    /// A step whose outcome is unknown is never re-run on `--yes` alone: see `--rerun`.
    #[arg(long)]
    pub yes: bool,
    /// Who is resuming (and approving at this terminal); default: $USER.
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
    /// Write the event stream to stdout, one JSON object a line.
    #[arg(long)]
    pub json: bool,
    /// A variable whose value held a secret when the run started: the journal keeps it
    /// masked, so resume needs it again (K=V, repeatable).
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// Run this step again although it may have done its work already: its process ended
    /// while nothing watched it, so its outcome is unknown (repeatable).
    #[arg(long, value_name = "STEP")]
    pub rerun: Vec<String>,
    /// Take this step as done, on your word: its process ended while nothing watched it, and
    /// you checked that it did its work (repeatable).
    #[arg(long, value_name = "STEP")]
    pub mark_done: Vec<String>,
    /// Exit 1 when a step with `on_failure: continue` failed, although the run succeeded.
    #[arg(long)]
    pub strict: bool,
    /// Sign the journal's seal with this SSH key, as `run --key` does.
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
}

/// Continues a run after a crash, Ctrl-C or a gate timeout.
pub fn resume(args: &ResumeArgs, state_dir: Option<PathBuf>) -> Result<u8, CliError> {
    let state = StateDir::resolve(state_dir);
    let chosen = args.run.as_deref().is_none_or(|r| r == "last");
    let id = find_which(&state, args.run.as_deref(), chosen, Last::Resumable)?;
    if chosen {
        // Chosen for the operator: they are told which, before anything runs.
        let rs = RunState::replay(&read_lenient(&state.journal(&id)).unwrap_or_default());
        eprintln!(
            "resuming run `{id}` ({}, {}, started {} UTC): the newest run that is neither finished nor a dry-run, real runs before drills",
            rs.scenario(),
            rs.mode().as_str(),
            rs.started_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
        );
    }
    let req = ResumeRequest {
        id,
        yes: args.yes,
        as_name: args.as_name.clone(),
        vars: args.vars.clone(),
        rerun: args.rerun.clone(),
        mark_done: args.mark_done.clone(),
        key: args.key.clone(),
    };
    let mut terminal = Terminal {
        present: std::io::stdin().is_terminal(),
    };
    let json = args.json;
    let ran =
        crate::app::resume::resume(&state, &req, &mut terminal, &|plan| observers(plan, json))?;
    let strict = Strict {
        rto: false,
        continued: args.strict,
    };
    finish(ran.result, &ran.run_id, &state, strict)
}

/// The operator at stdin and stderr.
struct Terminal {
    present: bool,
}

impl Terminal {
    fn answer() -> String {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        line.trim().to_ascii_lowercase()
    }
}

impl Operator for Terminal {
    fn present(&self) -> bool {
        self.present
    }

    fn tell(&mut self, line: &str) {
        eprintln!("{line}");
    }

    fn rerun_interrupted(&mut self, step: &str) -> bool {
        eprint!("step `{step}` was interrupted and is not idempotent. Re-run it? [y/N] ");
        matches!(Self::answer().as_str(), "y" | "yes")
    }

    fn unknown_outcome(&mut self, step: &str, log: &Path) -> Choice {
        eprint!(
            "step `{step}` ended while no supervisor watched it: its outcome is unknown, and it is not idempotent (its log: {}).\n  [r]un it again, [m]ark it done, or [s]top? ",
            log.display()
        );
        match Self::answer().as_str() {
            "r" | "run" | "rerun" => Choice::Rerun,
            "m" | "mark" | "done" => Choice::MarkDone,
            _ => Choice::Stop,
        }
    }
}
