//! `manual:` steps: a task a person does. It waits as a gate does (the same approvals folder,
//! the same signatures), but `runbook done` ends it: every checklist item confirmed, sent as
//! the answer's value, one item a line (so that a signed statement covers them), journaled as
//! `approval_granted.items` with who and the note. Its time is work: `journal/replay.rs`
//! leaves it out of the human wait. A dry-run, or `--yes`, confirms every item.

use super::Machine;
use crate::compile::{Approval, Step, StepKind};

/// A gate that waits for a decision (an approval, an input), not a manual task, whose time
/// is work: a dry-run watches its budget, and a drill projects it at its estimate.
pub(super) fn awaits_a_decision(step: &Step) -> bool {
    matches!(&step.kind, StepKind::Approval(a) if a.manual.is_none())
}

impl Machine {
    /// Why a `done` of manual step `i` cannot count, if it cannot: an item missing, or one
    /// not on the checklist (with the list). A denial (`runbook deny`) needs no items.
    pub(super) fn refuse_done(
        &self,
        i: usize,
        gate: &Approval,
        approve: bool,
        value: Option<&str>,
    ) -> Option<String> {
        let spec = gate.manual.as_ref()?;
        let id = &self.plan.steps[i].id;
        if !approve {
            return None;
        }
        let Some(value) = value else {
            return Some(format!(
                "step `{id}` is a manual task: `runbook done {} {id} --as NAME --all` (or `--confirm ITEM` for each item)",
                self.cfg.run_id
            ));
        };
        spec.refuse(&Self::confirmed(Some(value)))
            .map(|why| format!("{why}; step `{id}` is not done"))
    }

    /// The items a `done` confirmed, from its value (one a line).
    pub(super) fn confirmed(value: Option<&str>) -> Vec<String> {
        value
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A dry-run's or `--yes`'s `done`: every item of a manual step; nothing for other gates.
    pub(super) fn all_items(gate: &Approval) -> Option<Vec<String>> {
        gate.manual.as_ref().map(|m| m.checklist.clone())
    }
}
