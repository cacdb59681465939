//! `done`: a `manual:` step's checklist, confirmed. The items are read from the step's request
//! in the run's journal, so `--all` means the list the run asked for; an item that is missing
//! or not on the list is refused here, with the list (the run checks again).

use super::Error;
use super::find::find;
use crate::diag::Problem;
use crate::journal::*;
use crate::state::StateDir;

/// The items a `done` of `step` confirms: the whole checklist with `all`, else `confirm`,
/// which must name every item.
pub fn confirmed(
    state: &StateDir,
    run: Option<&str>,
    step: &str,
    all: bool,
    confirm: Vec<String>,
) -> Result<Vec<String>, Error> {
    let id = find(state, run, false)?;
    let records = read_lenient(&state.journal(&id)).unwrap_or_default();
    let asked = records.iter().rev().find_map(|r| match &r.event {
        EventKind::ApprovalRequested(a) if a.step == step => Some(a.manual.clone()),
        _ => None,
    });
    let checklist = match asked {
        Some(Some(m)) => m.checklist,
        Some(None) => {
            return Err(Problem::error(format!(
                "step `{step}` of run `{id}` is not a manual task"
            ))
            .help(format!(
                "answer a gate with `runbook approve {id} {step}`, an input with `runbook answer {id} {step} VALUE`"
            ))
            .into());
        }
        None => {
            return Err(Problem::error(format!(
                "step `{step}` of run `{id}` has not started: there is no task to say done"
            ))
            .help(format!(
                "`runbook status {id}` shows what the run waits for"
            ))
            .into());
        }
    };
    if all {
        return Ok(checklist);
    }
    let spec = crate::compile::ManualSpec {
        instructions: String::new(),
        checklist: checklist.clone(),
    };
    if let Some(why) = spec.refuse(&confirm) {
        return Err(Problem::error(format!("step `{step}` is not done: {why}"))
            .help(format!(
                "confirm each item: `runbook done {id} {step} --confirm ITEM ...`, or `--all`"
            ))
            .into());
    }
    Ok(checklist)
}
