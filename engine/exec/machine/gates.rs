//! Approval gates: answers (granted, denied, rejected, and the late ones told who decided
//! and when) and the pages to approver roles, held until the escalation path reaches them.

use std::time::Duration;

use super::{Action, Action_, Machine, St, action_of};
use crate::journal::*;
use crate::units::fmt_duration;

/// A waiting gate's page to one of its approver roles, held until that role's time comes:
/// the plan's escalation path says who is called when, and a gate must not call the CTO at
/// minute 0 when the path says minute 60.
#[derive(Clone, Debug)]
pub(super) struct Page {
    pub(super) channel: String,
    /// On the run clock, from the gate's own `page_after:`; else the escalation schedule
    /// decides.
    pub(super) at: Option<Duration>,
    pub(super) message: String,
}

impl Machine {
    /// Gate `i` was decided: remembered for the answers that come after.
    pub(super) fn decide(
        &mut self,
        i: usize,
        by: Vec<String>,
        decision: GateDecision,
        now: Duration,
    ) {
        self.rt[i].decided.get_or_insert((by, decision, now));
    }

    /// A gate that waits for people pages them: each of its approvers that is also a notify
    /// channel (a role and its channel share a name: `devops-lead`), in escalation order. A
    /// role the schedule names hears of it once the schedule reaches it (now, if it has), a
    /// role it does not name at once, and the gate's `page_after:` overrides both.
    pub(super) fn page_approvers(
        &mut self,
        i: usize,
        prompt: &str,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let step = &self.plan.steps[i];
        let Action_::Gate(a) = action_of(step) else {
            return;
        };
        let message = format!(
            "{} {}: gate `{}` waits for your approval ({} of {}): {prompt} — `runbook approve {} {} --as NAME`",
            self.tag(),
            self.plan.scenario,
            step.id,
            a.min,
            a.approvers.join(", "),
            self.cfg.run_id,
            step.id,
        );
        let pages: Vec<Page> = a
            .approvers
            .iter()
            .filter(|r| self.plan.notify.contains_key(*r))
            .map(|r| Page {
                channel: r.clone(),
                at: a.page_after.get(r).map(|d| now + *d),
                message: message.clone(),
            })
            .collect();
        self.rt[i].pages = pages;
        self.send_due_pages(i, now, out);
    }

    /// When a held page is due: the gate's `page_after:`, else the first escalation entry for
    /// its role; `None` when the schedule does not name the role (it is due at once).
    pub(super) fn page_time(&self, p: &Page) -> Option<Duration> {
        p.at.or_else(|| {
            self.plan
                .escalation
                .iter()
                .filter(|e| e.channel == p.channel)
                .map(|e| e.after)
                .min()
        })
    }

    pub(super) fn page_due(&self, p: &Page, now: Duration) -> bool {
        match p.at {
            Some(t) => now >= t,
            None => {
                // An escalation sent early (the RTO at risk) brings the role's time forward.
                let fired = self
                    .plan
                    .escalation
                    .iter()
                    .enumerate()
                    .any(|(k, e)| e.channel == p.channel && self.escalated[k]);
                fired || self.page_time(p).is_none_or(|t| now >= t)
            }
        }
    }

    /// Sends gate `i`'s held pages whose time has come.
    pub(super) fn send_due_pages(&mut self, i: usize, now: Duration, out: &mut Vec<Action>) {
        let pages = std::mem::take(&mut self.rt[i].pages);
        let (due, later): (Vec<Page>, Vec<Page>) =
            pages.into_iter().partition(|p| self.page_due(p, now));
        self.rt[i].pages = later;
        for p in due {
            self.notify(p.channel, "approval_requested", p.message, out);
        }
    }
    /// Ends a gate: granted (succeeded) or denied (failed), journaled like any step's end.
    pub(super) fn finish_step(
        &mut self,
        now: Duration,
        i: usize,
        status: StepStatus,
        out: &mut Vec<Action>,
    ) {
        let since = match &self.rt[i].st {
            St::Waiting { since, .. } | St::Running { since, .. } => *since,
            _ => now,
        };
        out.push(Action::Record(EventKind::StepFinished(StepFinished {
            step: self.plan.steps[i].id.clone(),
            status,
            attempt: 1,
            exit_code: None,
            signal: None,
            duration_ms: now.saturating_sub(since).as_millis() as u64,
            will_retry: false,
            error: (status == StepStatus::Failed).then(|| "denied".to_owned()),
            marked_done_by: None,
            next_in_ms: None,
        })));
        self.set(i, St::Done(status));
        self.after_finish(now, i, status, out);
    }

    pub(super) fn answer(
        &mut self,
        now: Duration,
        step_id: &str,
        by: String,
        approve: bool,
        comment: Option<String>,
        out: &mut Vec<Action>,
    ) {
        // An answer that cannot count is journaled, and the gate stays as it was.
        let reject = |by: String, reason: String| {
            Action::Record(EventKind::ApprovalRejected(ApprovalRejected {
                step: step_id.to_owned(),
                by,
                reason,
            }))
        };
        let Some(i) = self.plan.step_index(step_id) else {
            out.push(reject(
                by,
                format!("there is no step `{step_id}` in this run"),
            ));
            return;
        };
        let step = self.plan.steps[i].clone();
        let Action_::Gate(gate) = action_of(&step) else {
            out.push(reject(
                by,
                format!("step `{step_id}` is not an approval gate"),
            ));
            return;
        };
        let waiting = match &self.rt[i].st {
            St::Waiting { since, got } if !self.done => Some((*since, got.clone())),
            _ => None,
        };
        let Some((since, mut got)) = waiting else {
            if !self.plan.may_approve(gate, &by) {
                let reason = format!(
                    "`{by}` may not approve `{step_id}`; approvers: {}",
                    gate.approvers.join(", ")
                );
                out.push(reject(by, reason));
            } else if let Some((decided_by, decision, at)) = self.rt[i].decided.clone() {
                // The loser of an approve and a deny sent together, or an answer after the
                // gate closed: its own fate, journaled, never the winner's verdict.
                let when = match self.epoch {
                    Some(e) => {
                        ApprovalLate::when(e + chrono::Duration::from_std(at).unwrap_or_default())
                    }
                    None => format!("+{} into the run", fmt_duration(at)),
                };
                let reason = ApprovalLate::reason_for(&decided_by, decision, &when);
                out.push(Action::Record(EventKind::ApprovalLate(ApprovalLate {
                    step: step_id.to_owned(),
                    by,
                    approve,
                    comment: comment.map(|c| self.mask.mask(&c)),
                    decided_by,
                    decision,
                    decided_ms: at.as_millis() as u64,
                    reason,
                })));
            } else {
                let reason = if self.done {
                    format!("the run has ended; gate `{step_id}` was not decided")
                } else {
                    format!("gate `{step_id}` is not waiting for an answer")
                };
                out.push(reject(by, reason));
            }
            return;
        };
        if !self.plan.may_approve(gate, &by) {
            let reason = format!(
                "`{by}` may not approve `{step_id}`; approvers: {}",
                gate.approvers.join(", ")
            );
            out.push(reject(by, reason));
            return;
        }
        let wait_ms = now.saturating_sub(since).as_millis() as u64;
        let comment = comment.map(|c| self.mask.mask(&c));
        if !approve {
            self.decide(i, vec![by.clone()], GateDecision::Denied, now);
            out.push(Action::Record(EventKind::ApprovalDenied(ApprovalAnswer {
                step: step.id.clone(),
                by,
                comment,
                wait_ms,
            })));
            self.finish_step(now, i, StepStatus::Failed, out);
            return;
        }
        if got.contains(&by) {
            let reason = format!(
                "`{by}` has already approved `{step_id}`; it needs {} different people",
                gate.min
            );
            out.push(reject(by, reason));
            return;
        }
        got.push(by.clone());
        if (got.len() as u32) < gate.min {
            out.push(Action::Record(EventKind::ApprovalReceived(
                ApprovalAnswer {
                    step: step.id.clone(),
                    by,
                    comment,
                    wait_ms,
                },
            )));
            self.set(i, St::Waiting { since, got });
            return;
        }
        self.decide(i, got.clone(), GateDecision::Approved, now);
        out.push(Action::Record(EventKind::ApprovalGranted(
            ApprovalGranted {
                step: step.id.clone(),
                by: got,
                comment,
                auto: false,
                wait_ms,
            },
        )));
        self.finish_step(now, i, StepStatus::Succeeded, out);
    }
}
