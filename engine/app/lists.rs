//! The run's values of list variables (`--var regions=a,b,c`, the environment file): checked
//! before anything is written, and the plan compiled again with them when a loop goes over
//! one, so that the run (and a resume, from the journaled values) has one instance per item.

use std::collections::BTreeMap;

use super::Error;
use super::error::Said;
use crate::compile::{self, Library, Options, Plan, unfit_items};
use crate::diag::Problem;
use crate::exec::mask::Masker;
use crate::format::vars;
use crate::project::Project;

/// Each list variable's value: no empty item (`a,,b`); and for one that a loop goes over,
/// items fit for step ids, none twice, at least one, and no secret in them (an item is part
/// of a step id, which the journal and every report show unmasked).
pub fn check_values(plan: &Plan, values: &BTreeMap<String, String>) -> Result<(), Problem> {
    let mask = Masker::from_env(&plan.secrets);
    for (name, loops) in &plan.lists {
        let Some(value) = values.get(name) else {
            continue;
        };
        let items = vars::split(value);
        let shown = |what: &str| format!("`{name}` = `{}`: {what}", mask.mask(value));
        if items.iter().any(String::is_empty) {
            return Err(Problem::error(shown("an item is empty")).help(format!(
                "a list variable's items are separated by `,`: `--var {name}=eu-1,eu-2`"
            )));
        }
        if loops.is_empty() {
            continue;
        }
        let steps = loops
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if mask.mask(value) != *value {
            return Err(Problem::error(format!(
                "`{name}` holds a secret, and its items would name the instances of {steps}"
            ))
            .help("an item is part of a step id, shown unmasked in the journal and every report: loop over names, and let each instance read the secret from `env`"));
        }
        if let Some(why) = unfit_items(&items) {
            return Err(Problem::error(shown(&why)).help(format!(
                "its items name the instances of {steps}: letters, digits, `-`, `_` and `.`, each once, e.g. `--var {name}=eu-1,eu-2`"
            )));
        }
    }
    Ok(())
}

/// The plan with its loops over list variables expanded for the run's values; the plan as it
/// is when they are the defaults.
pub fn with_run_lists(plan: Plan, values: &BTreeMap<String, String>) -> Result<Plan, Error> {
    if !plan.lists_changed(values) {
        return Ok(plan);
    }
    let lists: BTreeMap<String, String> = plan
        .lists
        .keys()
        .filter_map(|k| Some((k.clone(), values.get(k)?.clone())))
        .collect();
    let project = Project::at(plan.root.clone());
    let (relisted, problems) = compile::compile_with_lists(
        &project,
        &plan.path,
        &mut Library::new(),
        Options::default(),
        &lists,
    );
    match relisted {
        // The vars stay the defaults: a plan's `vars` are what `lists_changed` compares with.
        Some(p) if p.sha256 == plan.sha256 => Ok(p),
        Some(_) => Err(Error::usage(Said::error(format!(
            "`{}` changed while the run was starting",
            plan.path.display()
        )))),
        None => Err(Error::usage(problems)),
    }
}

/// A resume runs the instances the run started with: the plan compiled again from the
/// journaled values must list the same steps as the journaled plan.
pub fn same_instances(
    plan: &Plan,
    started: &crate::journal::RunStarted,
    id: &str,
) -> Result<(), Error> {
    // An expanded loop over an output stands for its instances, which the journal's plan has
    // in its place and this one at its end: the ids compare, not where they are.
    let expanded = |id: &str| plan.output_loops.get(id).is_some_and(|l| l.items.is_some());
    let mut now: Vec<&str> = plan
        .steps
        .iter()
        .map(|s| s.id.as_str())
        .filter(|id| !expanded(id))
        .collect();
    let mut then: Vec<&str> = started.plan.steps.iter().map(|s| s.id.as_str()).collect();
    if !plan.output_loops.is_empty() {
        now.sort_unstable();
        then.sort_unstable();
    }
    if now == then {
        return Ok(());
    }
    let missing: Vec<&str> = then.iter().filter(|s| !now.contains(s)).copied().collect();
    let extra: Vec<&str> = now.iter().filter(|s| !then.contains(s)).copied().collect();
    Err(Error::usage(
        Said::error(format!(
            "run `{id}` started with other steps than its runbook now gives (then only: {}; now only: {})",
            if missing.is_empty() { "none".into() } else { missing.join(", ") },
            if extra.is_empty() { "none".into() } else { extra.join(", ") },
        ))
        .help("a resume runs the instances the run started with; start a new run for other items"),
    ))
}

/// A resume's plan with its loops over outputs expanded as the journal says (`loop_expanded`),
/// in the same order: the same instances at the same places, those that finished not run again.
pub fn with_expanded_loops(
    plan: Plan,
    expansions: &[crate::journal::LoopExpanded],
    id: &str,
) -> Result<Plan, Error> {
    let mut plan = plan;
    for e in expansions {
        plan = plan.expand_output_loop(&e.step, &e.items).ok_or_else(|| {
            Error::usage(
                Said::error(format!(
                    "run `{id}` expanded loop `{}`, which its runbook no longer has as a loop over an output",
                    e.step
                ))
                .help("a resume runs the instances the run started; start a new run"),
            )
        })?;
    }
    Ok(plan)
}
