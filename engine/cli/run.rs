//! `runbook run`: its arguments, how a run is shown, and what a run that ended says.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use super::{CliError, Style, exit, report_problems};
use crate::app::error::Said;
use crate::app::run::{RunRequest, load_plan, settle};
use crate::compile::Plan;
use crate::exec::{self, Outcome};
use crate::journal::*;
use crate::state::StateDir;
use crate::ui::observer::{Bars, JsonLines, Observers, Plain};
use crate::units::fmt_duration;

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// A scenario name (runbooks/<name>.yaml) or a path to a runbook file.
    pub scenario: String,
    /// Run each step's drill variant: safe by construction.
    #[arg(long, conflicts_with = "dry_run")]
    pub drill: bool,
    /// Execute nothing: play estimated durations on a virtual clock.
    #[arg(long)]
    pub dry_run: bool,
    /// An environment: a name under runbooks/env/ or a path to a file.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Set a variable (repeatable).
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// Approve gates automatically, in the operator's name.
    #[arg(long)]
    pub yes: bool,
    /// Who is running (and approving at this terminal); default: $USER.
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
    /// Use this run id instead of a generated one (`<time>-<scenario>`).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// At most N steps at once (default: as many as the DAG allows).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// Write the event stream to stdout, one JSON object a line.
    #[arg(long)]
    pub json: bool,
    /// Exit 4 when the run finished but missed its RTO target.
    #[arg(long)]
    pub strict_rto: bool,
    /// Exit 1 when a step with `on_failure: continue` failed, although the run succeeded.
    #[arg(long)]
    pub strict: bool,
    /// Dry-runs: draw each step's duration from its estimate instead of the likely value.
    #[arg(long, requires = "dry_run")]
    pub sample: bool,
    /// Seed for --sample.
    #[arg(long, value_name = "S", default_value_t = 1, requires = "sample")]
    pub seed: u64,
    /// Sign the journal's seal with this SSH key (a private key, or a public key whose private
    /// half is in ssh-agent); default: $RUNBOOK_SIGNING_KEY, then ~/.ssh/id_ed25519.
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
}

impl RunArgs {
    fn mode(&self) -> Mode {
        if self.dry_run {
            Mode::DryRun
        } else if self.drill {
            Mode::Drill
        } else {
            Mode::Real
        }
    }

    fn request(&self) -> RunRequest {
        RunRequest {
            mode: self.mode(),
            env: self.env.clone(),
            vars: self.vars.clone(),
            yes: self.yes,
            as_name: self.as_name.clone(),
            run_id: self.run_id.clone(),
            max_parallel: self.max_parallel,
            sample: self.sample.then_some(self.seed),
            key: self.key.clone(),
        }
    }
}

pub fn run(args: RunArgs, state_dir: Option<PathBuf>) -> Result<u8, CliError> {
    let (plan, warnings) = load_plan(&args.scenario)?;
    report_problems(&warnings);
    let req = args.request();
    let settled = settle(&plan, &req)?;
    if !settled.unset_secrets.is_empty() {
        eprintln!(
            "warning: not set in the environment: {} (the steps and notifications that use them will fail)",
            settled.unset_secrets.join(", ")
        );
    }
    let state = StateDir::resolve(state_dir);
    let json = args.json;
    let ran = crate::app::run::run(plan, settled, &req, &state, &|plan| observers(plan, json))?;
    let strict = Strict {
        rto: args.strict_rto,
        continued: args.strict,
    };
    finish(ran.result, &ran.run_id, &state, strict)
}

/// How a run is shown: bars on a terminal, plain lines otherwise, and JSON lines on stdout
/// with `--json`.
pub fn observers(plan: &Plan, json: bool) -> Observers {
    let style = Style::stderr();
    let budgets = plan
        .steps
        .iter()
        .map(|s| (s.id.clone(), s.budget))
        .collect();
    let tty = std::io::stderr().is_terminal();
    Observers {
        plain: (!tty).then_some(Plain {
            color: false,
            rto_ms: plan.rto.as_millis() as u64,
            show_logs: true,
        }),
        bars: tty.then(|| {
            Bars::new(
                budgets,
                plan.rto,
                plan.rto_ends_at.map(|i| plan.steps[i].id.clone()),
                style.color,
            )
        }),
        json: json.then_some(JsonLines),
    }
}

/// What turns a run that succeeded into a failing exit code.
#[derive(Clone, Copy, Debug, Default)]
pub struct Strict {
    /// `--strict-rto`: a missed RTO exits 4.
    pub rto: bool,
    /// `--strict`: a step that failed with `on_failure: continue` exits 1.
    pub continued: bool,
}

/// The exit code of a run; `continued` is how many steps failed with `on_failure: continue`.
pub fn outcome_code(o: Outcome, strict: Strict, continued: usize) -> u8 {
    match o {
        Outcome::Succeeded { .. } if strict.continued && continued > 0 => exit::FAILED,
        Outcome::Succeeded { rto_met } => {
            if strict.rto && !rto_met {
                exit::RTO_MISSED
            } else {
                exit::OK
            }
        }
        Outcome::Failed { rto_met: _ } => exit::FAILED,
        Outcome::Stopped => exit::STOPPED,
    }
}

/// What a run (or a resume) that ended says, and its exit code: where its journal is, how to
/// go on, what a drill projects, which steps it went on without.
pub fn finish(
    result: Result<Outcome, exec::ExecError>,
    run_id: &str,
    state: &StateDir,
    strict: Strict,
) -> Result<u8, CliError> {
    match result {
        Ok(o) => {
            let journal = state.journal(run_id);
            eprintln!("journal: {}", journal.display());
            match o {
                Outcome::Stopped => {
                    // Steps whose process ended unseen wait for the operator's word.
                    let records = read_lenient(&journal).unwrap_or_default();
                    let rs = RunState::replay(&records);
                    for s in rs
                        .steps
                        .iter()
                        .filter(|s| s.status == Some(StepStatus::Unknown))
                    {
                        if s.idempotent {
                            eprintln!(
                                "step `{}` ended while no supervisor watched it: its outcome is unknown; it is idempotent, and a resume runs it again",
                                s.id
                            );
                            continue;
                        }
                        eprintln!(
                            "step `{}` ended while no supervisor watched it: its outcome is unknown, and it is not `idempotent: true`",
                            s.id
                        );
                        eprintln!(
                            "help: check what it did, then either `runbook resume {run_id} --rerun {}` to run it again, or `runbook resume {run_id} --mark-done {}` if it did its work",
                            s.id, s.id
                        );
                    }
                    eprintln!("resume with: runbook resume {run_id}")
                }
                _ => {
                    // A drill runs at drill speed: what a real run would take is what counts.
                    let rs = RunState::replay(&read_lenient(&journal).unwrap_or_default());
                    // A failed drill recovered nothing: there is no real run to project.
                    if rs.mode() == Mode::Drill
                        && matches!(o, Outcome::Succeeded { .. })
                        && let Some(p) = crate::report::projected_rto_ms(&rs)
                    {
                        let d = |ms| fmt_duration(Duration::from_millis(ms));
                        eprintln!(
                            "drill: the drill took {}; a real run projects {}{}{} against an RTO of {}",
                            d(crate::report::elapsed_ms(&rs)),
                            if crate::report::rto_ends_at(&rs).is_some() {
                                "a recovery in "
                            } else {
                                ""
                            },
                            d(p),
                            crate::report::projected_p90_ms(&rs)
                                .map(|q| format!(" (P90 {} from --simulate)", d(q)))
                                .unwrap_or_default(),
                            d(rs.started.as_ref().map_or(0, |s| s.rto_ms))
                        );
                    }
                    eprintln!("report: runbook report {run_id} (--format md|html|json|junit)")
                }
            }
            // Steps the run went on without: the journal's end names them.
            let continued = match o {
                Outcome::Succeeded { .. } => read_lenient(&journal)
                    .map(|r| RunState::replay(&r))
                    .ok()
                    .and_then(|rs| rs.finished)
                    .map(|f| f.continued)
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            if !continued.is_empty() {
                eprintln!(
                    "warning: failed, continued (`on_failure: continue`): {}; the run went on without {}{}",
                    continued
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if continued.len() == 1 { "it" } else { "them" },
                    if strict.continued {
                        ", and --strict makes that a failure"
                    } else {
                        " (`--strict` makes that a failure)"
                    }
                );
            }
            Ok(outcome_code(o, strict, continued.len()))
        }
        // The engine's own faults: the steps still running are left to their supervisor.
        Err(e @ exec::ExecError::Journal(..)) => Err(CliError::stopped(
            Said::error(e.to_string()).help(format!(
                "the run is stopped, and its running steps are left to finish; once the cause is gone (free some space), `runbook resume {run_id}` continues it"
            )),
        )),
        Err(e @ exec::ExecError::JournalChanged(..)) => Err(CliError::failed(
            Said::error(e.to_string()).help(format!(
                "the run is stopped: its evidence is in doubt. `runbook verify {run_id}` shows what is left of the journal"
            )),
        )),
        Err(e) => Err(CliError::failed(Said::error(e.to_string()))),
    }
}
