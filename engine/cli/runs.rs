//! The commands over recorded runs: `approve`, `deny`, `verify`, `report`, `history`,
//! `export`. Each calls its use case in `app`, prints what it returns and picks the exit code.

use std::path::{Path, PathBuf};

use super::{AnswerArgs, CliError, HistoryFormat, exit};
use crate::app::error::Said;
use crate::app::runs::ReportFormat;
use crate::report;
use crate::state::StateDir;

pub fn answer(a: AnswerArgs, approve: bool, state_dir: Option<PathBuf>) -> Result<u8, CliError> {
    give(a, (approve, None), state_dir)
}

/// `approve`, `deny`, and `answer` (an input's value, given as an approval that carries it).
pub fn give(
    a: AnswerArgs,
    (approve, value): (bool, Option<String>),
    state_dir: Option<PathBuf>,
) -> Result<u8, CliError> {
    use crate::app::answer;
    let state = StateDir::resolve(state_dir);
    let answered = match (&a.token, a.run, a.step) {
        (Some(token), _, _) => answer::answer_token(&state, token)?,
        (None, Some(run), Some(step)) => {
            let by = crate::app::run::operator(&a.as_name);
            let how = answer::Signing {
                key: a.key,
                print: a.print,
                request: a.request,
            };
            let (id, signed) = answer::sign_answer(
                &state,
                &run,
                &step,
                &by,
                (a.comment.as_deref(), value.as_deref()),
                approve,
                &how,
            )?;
            if how.print {
                // One line, the token, and nothing written: it travels by chat or ticket.
                if let Some(s) = signed {
                    println!("{}", s.to_token());
                }
                return Ok(exit::OK);
            }
            answer::answer(&state, &id, &step, &by, (a.comment, value), approve, signed)?
        }
        // clap requires RUN and STEP without `--token`.
        _ => {
            return Err(CliError::usage(Said::error(
                "give RUN and STEP, or `--token TOKEN`",
            )));
        }
    };
    println!("{}", answered.text);
    Ok(if answered.taken {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// `done`: a manual step's checklist confirmed (`--all`, or each `--confirm`), sent as the
/// answer's value, one item a line, with the note as its comment.
pub fn done(
    mut a: AnswerArgs,
    note: Option<String>,
    (all, confirm): (bool, Vec<String>),
    state_dir: Option<PathBuf>,
) -> Result<u8, CliError> {
    if a.token.is_some() {
        return give(a, (true, None), state_dir);
    }
    let state = StateDir::resolve(state_dir.clone());
    let (run, step) = (a.run.as_deref(), a.step.as_deref().unwrap_or_default());
    let items = crate::app::done::confirmed(&state, run, step, all, confirm)?;
    a.comment = note.or(a.comment);
    give(a, (true, Some(items.join("\n"))), state_dir)
}

pub fn verify(run: &str, state_dir: Option<PathBuf>) -> Result<u8, CliError> {
    let state = StateDir::resolve(state_dir);
    let v = crate::app::runs::verify(&state, run)?;
    println!("{}", v.text);
    Ok(if v.ok { exit::OK } else { exit::FAILED })
}

pub fn report(
    run: Option<&str>,
    last: bool,
    dry_run: bool,
    format: ReportFormat,
    out: Option<PathBuf>,
    state_dir: Option<PathBuf>,
) -> Result<u8, CliError> {
    let state = StateDir::resolve(state_dir);
    let text = crate::app::runs::report(&state, run, last, dry_run, format)?;
    match out {
        Some(p) => {
            if let Err(e) = std::fs::write(&p, text) {
                return Err(CliError::failed(Said::error(format!(
                    "cannot write {}: {e}",
                    p.display()
                ))));
            }
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(exit::OK)
}

pub fn history(
    scenario: Option<&str>,
    format: HistoryFormat,
    state_dir: Option<PathBuf>,
) -> Result<u8, CliError> {
    let state = StateDir::resolve(state_dir);
    let (runs, broken) = crate::app::runs::history_runs(&state);
    for b in &broken {
        eprintln!(
            "warning: run `{b}` left out: its journal does not verify (`runbook verify {b}`)"
        );
    }
    let all = crate::app::runs::history(&state, &runs, scenario)?;
    match format {
        HistoryFormat::Json => println!("{}", serde_json::to_string_pretty(&all).expect("json")),
        HistoryFormat::Md => print!("{}", report::history::history_markdown(&all)),
    }
    Ok(exit::OK)
}

pub fn export(run: &str, out: &Path, state_dir: Option<PathBuf>) -> Result<u8, CliError> {
    let state = StateDir::resolve(state_dir);
    let exported = crate::app::runs::export(&state, run, out)?;
    eprintln!("wrote {}", out.display());
    if !exported.runbook_matches {
        // Written all the same: it is the evidence there is. But it fails its own check.
        return Err(CliError::failed(Said::error(
            "the bundle's runbook.yaml is not the runbook that ran (its sha256 differs from run_started's; see verify.txt)",
        )));
    }
    if !exported.calls_match {
        return Err(CliError::failed(Said::error(
            "a runbook in the bundle's calls/ is not the one the run called (its sha256 differs from run_started's plan.calls; see verify.txt)",
        )));
    }
    Ok(exit::OK)
}
