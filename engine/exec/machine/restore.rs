//! Resume: a machine rebuilt from a journal's replayed state ([`Machine::restore`]), and the
//! steps the caller adopts or takes as done before [`Input::Start`](super::Input::Start).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Machine, StepState};
use crate::journal::{EscalationReason, GateDecision, RunState, StepStatus};

impl Machine {
    /// Continues a run from its journal: finished steps stay finished (their outputs kept),
    /// escalations already sent are not sent again. Steps that were in flight are left
    /// pending: the caller decides to adopt, re-run or ask, before
    /// [`Input::Start`](super::Input::Start).
    pub fn restore(&mut self, state: &RunState) {
        let plan = self.plan.clone();
        for (i, step) in plan.steps.iter().enumerate() {
            let Some(s) = state.step(&step.id) else {
                continue;
            };
            // An output that held a secret is journaled masked: `***` is not its value, and
            // a command given it would do the wrong thing. It is left out, and said so.
            let (kept, masked): (BTreeMap<_, _>, BTreeMap<_, _>) = s
                .outputs
                .clone()
                .into_iter()
                .partition(|(k, v)| match &s.masked_outputs {
                    Some(keys) => !keys.contains(k),
                    None => !v.contains(crate::exec::mask::MASK),
                });
            self.runtime[i].outputs = kept;
            self.runtime[i].masked_outputs = masked.into_keys().collect();
            // What its `when:` came to: a step it skipped reads as skipped by it, not by a
            // drill, and an adopted step's end carries it as a first run's would.
            if let Some(c) = &s.condition {
                self.conditions.insert(i, c.clone());
            }
            self.runtime[i].warned = s.warned;
            self.runtime[i].breached = s.breached;
            if s.gate && s.status.is_some() {
                let at = Duration::from_millis(s.finished_ms.unwrap_or_default());
                if let Some(by) = &s.denied_by {
                    self.runtime[i].decided = Some((vec![by.clone()], GateDecision::Denied, at));
                } else if !s.approved_by.is_empty() {
                    let by = s.approved_by.clone();
                    self.runtime[i].decided = Some((by, GateDecision::Approved, at));
                }
            }
            // A step that finished stays finished, failed ones too: resume never re-runs a
            // finished step. Interrupted ones run again; one that failed and was to be tried
            // again has no status yet, and is.
            if succeeded(s.status) && self.plan.rto_ends_at == Some(i) {
                self.restored = s.finished_ms.map(Duration::from_millis);
            }
            match s.status {
                Some(st) if st.is_ok() => self.set(i, StepState::Done(st)),
                Some(st @ (StepStatus::Failed | StepStatus::TimedOut)) => {
                    self.set(i, StepState::Done(st));
                    self.note_failure(i, st);
                }
                // Journaled when the main steps ended before a `finally:` step was stopped:
                // they stay not run, and the run failed there as it did.
                Some(StepStatus::NotRun) => {
                    self.set(i, StepState::Done(StepStatus::NotRun));
                    self.failed.get_or_insert(i);
                }
                _ => {}
            }
        }
        self.restore_escalations(state);
        self.restore_groups(state);
    }

    /// Escalations already sent are not sent again.
    fn restore_escalations(&mut self, state: &RunState) {
        // The escalation schedule's own notifications: a gate's page to its approvers (reason
        // `approval_requested`) is not one of its entries.
        let fired: Vec<&str> = state
            .escalations
            .iter()
            .filter(|(_, e)| e.reason != EscalationReason::ApprovalRequested)
            .map(|(_, e)| e.channel.as_str())
            .collect();
        for (k, e) in self.plan.escalation.iter().enumerate() {
            // Each escalation entry is one notification; count by channel occurrences.
            let sent = fired.iter().filter(|c| **c == e.channel).count();
            let before = self.plan.escalation[..k]
                .iter()
                .filter(|x| x.channel == e.channel)
                .count();
            self.escalated[k] = sent > before;
        }
    }

    /// Marks an in-flight step adopted on resume: it is running under its old process, its
    /// attempt since `since`, the step since `first` (a retry's first attempt started earlier).
    pub fn adopt(&mut self, step: usize, attempt: u32, since: Duration, first: Duration) {
        self.set(step, StepState::running(attempt, since));
        self.runtime[step]
            .first_started
            .get_or_insert(first.min(since));
    }

    /// An adopted step ended at `at` on the run's clock, while no engine watched: its exit,
    /// when it comes, is timed to then.
    pub fn ended_while_away(&mut self, step: usize, at: Duration) {
        self.ended_away.insert(step, at);
    }

    /// Takes a step whose outcome was lost as succeeded, on the operator's word (resume
    /// `--mark-done`); the caller journals it.
    pub fn mark_done(&mut self, step: usize) {
        self.set(step, StepState::Done(StepStatus::Succeeded));
    }
}

/// A step's journaled status lets its dependents go on.
fn succeeded(status: Option<StepStatus>) -> bool {
    status.is_some_and(StepStatus::is_ok)
}
