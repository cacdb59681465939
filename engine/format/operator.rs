//! The operator in the loop, as written: `input:`, a step that asks a person for a value
//! mid-run. Kept apart from `types.rs` so that the constructs of issue 17 each have a home.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::span::Sp;

/// `input: { prompt, pattern, approvers, timeout, default }`: the run waits (as at a gate)
/// until one of `approvers` gives a value that matches `pattern`; later steps read it as
/// `steps['id'].outputs.value`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputStepDoc {
    /// Shown to the person asked (a plain template).
    pub prompt: Sp<String>,
    /// A regular expression the whole value must match (it is anchored at both ends).
    #[serde(default)]
    pub pattern: Option<Sp<String>>,
    /// Roles or names who may answer.
    pub approvers: Vec<Sp<String>>,
    /// The wait ends here: the run stops, resumable.
    #[serde(default)]
    pub timeout: Option<Sp<String>>,
    /// The value a dry-run uses. Required: a dry-run of the runbook must be able to go on.
    #[serde(default)]
    pub default: Option<Sp<String>>,
}

/// `manual: { instructions, checklist, approvers, timeout }`: a task a person does ("call the
/// cloud provider"), timed against the step's budget as work. It is done when one of
/// `approvers` says so with `runbook done`, every checklist item confirmed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualStepDoc {
    /// What to do, shown to the person doing it (a plain template).
    pub instructions: Sp<String>,
    /// What must be confirmed done, each item by its text (at least one).
    pub checklist: Sp<Vec<Sp<String>>>,
    /// Roles or names who may do it and say it is done.
    pub approvers: Vec<Sp<String>>,
    /// The task ends here undone: the run stops, resumable.
    #[serde(default)]
    pub timeout: Option<Sp<String>>,
}
