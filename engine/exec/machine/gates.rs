//! Approval gates: answers (granted, denied, rejected, and the late ones told who decided
//! and when) and the pages to approver roles, held until the escalation path reaches them.

use std::time::Duration;

use super::{Effect, Machine, StepState, Work, work_of};
use crate::compile::Approval;
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
        self.runtime[i].decided.get_or_insert((by, decision, now));
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
        out: &mut Vec<Effect>,
    ) {
        let step = &self.plan.steps[i];
        let Work::Gate(a) = work_of(step) else {
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
        self.runtime[i].pages = pages;
        self.send_due_pages(i, now, out);
    }

    /// Pages wait for the request hash where decisions are signed: an approver on another
    /// machine signs it (a dry-run's pages are journaled, not sent, and need none).
    fn pages_wait_for_request(&self, i: usize) -> bool {
        self.cfg.signed_approvals
            && self.cfg.mode != Mode::DryRun
            && self.runtime[i].request.is_none()
    }

    /// Gate `i`'s request was journaled as `hash`: its pages say how to sign it from another
    /// machine, and those due go out now.
    pub(super) fn requested(
        &mut self,
        now: Duration,
        i: usize,
        hash: String,
        out: &mut Vec<Effect>,
    ) {
        if i >= self.runtime.len() || !self.cfg.signed_approvals {
            return;
        }
        let step = self.plan.steps[i].id.clone();
        let how = format!(
            "; from another machine: `runbook approve {} {step} --as NAME --key KEY --request {hash} --print`, then `runbook approve --token TOKEN` where the run is",
            self.cfg.run_id
        );
        for p in &mut self.runtime[i].pages {
            p.message.push_str(&how);
        }
        self.runtime[i].request = Some(hash);
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
    pub(super) fn send_due_pages(&mut self, i: usize, now: Duration, out: &mut Vec<Effect>) {
        if self.pages_wait_for_request(i) {
            return;
        }
        let pages = std::mem::take(&mut self.runtime[i].pages);
        let (due, later): (Vec<Page>, Vec<Page>) =
            pages.into_iter().partition(|p| self.page_due(p, now));
        self.runtime[i].pages = later;
        for p in due {
            self.notify(
                p.channel,
                EscalationReason::ApprovalRequested,
                p.message,
                out,
            );
        }
    }

    /// Gate `i` opens: journaled with its prompt, then granted at once (`--yes`), simulated
    /// (a dry-run) or asked on the terminal and paged to its approvers.
    pub(super) fn open_gate(
        &mut self,
        now: Duration,
        i: usize,
        gate: &Approval,
        attempt: u32,
        out: &mut Vec<Effect>,
    ) {
        let id = self.plan.steps[i].id.clone();
        // A new opening is a new request: its hash comes once it is journaled.
        self.runtime[i].request = None;
        let prompt = self
            .render_plain(i, &gate.prompt)
            .unwrap_or_else(|e| gate.prompt.clone() + &format!(" ({e})"));
        out.push(Effect::Record(EventKind::ApprovalRequested(
            ApprovalRequested {
                step: id.clone(),
                prompt: self.mask.mask(&prompt),
                approvers: gate.approvers.clone(),
                min: gate.min,
                timeout_ms: gate.timeout.map(|t| t.as_millis() as u64),
                input: gate.input.as_ref().map(|spec| InputAsked {
                    pattern: spec.pattern.clone(),
                }),
                manual: gate.manual.as_ref().map(|m| ManualAsked {
                    checklist: m.checklist.clone(),
                }),
            },
        )));
        self.set(
            i,
            StepState::Waiting {
                since: now,
                got: Vec::new(),
                keys: Vec::new(),
            },
        );
        if self.cfg.mode == Mode::DryRun {
            // Gates take their estimate, on the virtual clock, and page as a real one would
            // (journaled, not sent): who is called when is part of the rehearsal.
            self.set(i, StepState::running(attempt, now));
            self.page_approvers(i, &prompt, now, out);
            let after = self.sim_duration(i);
            out.push(Effect::Simulate {
                step: i,
                attempt,
                after,
            });
        } else if let Some(who) = self.cfg.auto_approve_as.clone()
            && self.cfg.yes_is_one_approval
            && gate.min > 1
        {
            // The two-person rule holds under `--yes`: this is one of them.
            self.answer(
                now,
                &id,
                who,
                true,
                (Some("approved with --yes".into()), None),
                None,
                out,
            );
            out.push(Effect::Ask { step: i });
            self.page_approvers(i, &prompt, now, out);
        } else if let Some(who) = self.cfg.auto_approve_as.clone() {
            self.decide(i, vec![who.clone()], GateDecision::Approved, now);
            let value = self.take_default(i, gate, out);
            out.push(Effect::Record(EventKind::ApprovalGranted(
                ApprovalGranted {
                    step: id,
                    by: vec![who],
                    comment: Some("auto-approved with --yes".into()),
                    auto: true,
                    wait_ms: 0,
                    signed: None,
                    value,
                    items: Self::all_items(gate),
                },
            )));
            self.end_gate(now, i, StepStatus::Succeeded, out);
        } else {
            out.push(Effect::Ask { step: i });
            self.page_approvers(i, &prompt, now, out);
        }
    }

    /// A dry-run's gate has waited its simulated time: granted, in the `--yes` name if any.
    pub(super) fn simulated_wait_ends(
        &mut self,
        now: Duration,
        i: usize,
        wait: Duration,
        out: &mut Vec<Effect>,
    ) {
        let plan = self.plan.clone();
        let (value, items) = match work_of(&plan.steps[i]) {
            Work::Gate(gate) => (self.take_default(i, gate, out), Self::all_items(gate)),
            Work::Command => (None, None),
        };
        out.push(Effect::Record(EventKind::ApprovalGranted(
            ApprovalGranted {
                step: self.plan.steps[i].id.clone(),
                by: vec![
                    self.cfg
                        .auto_approve_as
                        .clone()
                        .unwrap_or_else(|| "dry-run".into()),
                ],
                comment: Some("simulated wait".into()),
                auto: true,
                wait_ms: wait.as_millis() as u64,
                signed: None,
                value,
                items,
            },
        )));
        self.end_gate(now, i, StepStatus::Succeeded, out);
    }

    /// Ends a gate: granted (succeeded) or denied (failed), journaled like any step's end.
    pub(super) fn end_gate(
        &mut self,
        now: Duration,
        i: usize,
        status: StepStatus,
        out: &mut Vec<Effect>,
    ) {
        let since = match &self.runtime[i].state {
            StepState::Waiting { since, .. } | StepState::Running { since, .. } => *since,
            _ => now,
        };
        let ended = self
            .finished_event(i, status, 1)
            .took(now.saturating_sub(since))
            .with_error((status == StepStatus::Failed).then(|| "denied".to_owned()));
        out.push(Effect::Record(EventKind::StepFinished(ended)));
        self.set(i, StepState::Done(status));
        self.after_finish(now, i, status, out);
    }

    /// An approval or denial of gate `step_id`. It counts when the gate waits and `by` may
    /// approve it; else it is journaled rejected, or late (told who decided, and when), and
    /// the gate stays as it was. `signed` was verified by the driver; its key counts once.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer(
        &mut self,
        now: Duration,
        step_id: &str,
        by: String,
        approve: bool,
        (comment, value): (Option<String>, Option<String>),
        signed: Option<Box<SignedDecision>>,
        out: &mut Vec<Effect>,
    ) {
        let Some(i) = self.plan.step_index(step_id) else {
            let reason = format!("there is no step `{step_id}` in this run");
            out.push(rejected(step_id, by, reason));
            return;
        };
        let plan = self.plan.clone();
        let Work::Gate(gate) = work_of(&plan.steps[i]) else {
            let reason = format!("step `{step_id}` is not an approval gate");
            out.push(rejected(step_id, by, reason));
            return;
        };
        let waiting = match &self.runtime[i].state {
            StepState::Waiting { since, got, keys } if !self.done => {
                Some((*since, got.clone(), keys.clone()))
            }
            _ => None,
        };
        let Some((since, mut got, mut keys)) = waiting else {
            self.answer_closed(i, gate, by, approve, comment, out);
            return;
        };
        if !self.plan.may_approve(gate, &by) {
            let reason = may_not(&by, step_id, gate);
            out.push(rejected(step_id, by, reason));
            return;
        }
        if let Some(reason) = self.refuse_value(i, gate, approve, value.as_deref()) {
            out.push(rejected(step_id, by, reason));
            return;
        }
        let wait_ms = now.saturating_sub(since).as_millis() as u64;
        let comment = comment.map(|c| self.mask.mask(&c));
        let step = step_id.to_owned();
        if !approve {
            self.decide(i, vec![by.clone()], GateDecision::Denied, now);
            out.push(Effect::Record(EventKind::ApprovalDenied(ApprovalAnswer {
                step,
                by,
                comment,
                wait_ms,
                signed,
            })));
            self.end_gate(now, i, StepStatus::Failed, out);
            return;
        }
        if got.contains(&by) {
            let reason = format!(
                "`{by}` has already approved `{step_id}`; it needs {} different people",
                gate.min
            );
            out.push(rejected(step_id, by, reason));
            return;
        }
        // One key is one person's, whoever it claims to be: a key that counted already
        // cannot count again under another name.
        if let Some(s) = &signed
            && let Some((key, first)) = keys.iter().find(|(k, _)| *k == s.key)
        {
            let reason = format!(
                "signed by {key}, which already approved `{step_id}` as {first}; it needs {} different keys",
                gate.min
            );
            out.push(rejected(step_id, by, reason));
            return;
        }
        got.push(by.clone());
        if let Some(s) = &signed {
            keys.push((s.key.clone(), by.clone()));
        }
        if (got.len() as u32) < gate.min {
            out.push(Effect::Record(EventKind::ApprovalReceived(
                ApprovalAnswer {
                    step,
                    by,
                    comment,
                    wait_ms,
                    signed,
                },
            )));
            self.set(i, StepState::Waiting { since, got, keys });
            return;
        }
        self.decide(i, got.clone(), GateDecision::Approved, now);
        let (value, items) = match (&gate.manual, value) {
            (Some(_), v) => (None, Some(Self::confirmed(v.as_deref()))),
            (None, v) => (v.map(|v| self.take_value(i, v, out)), None),
        };
        out.push(Effect::Record(EventKind::ApprovalGranted(
            ApprovalGranted {
                step,
                by: got,
                comment,
                auto: false,
                wait_ms,
                signed,
                value,
                items,
            },
        )));
        self.end_gate(now, i, StepStatus::Succeeded, out);
    }

    /// An answer to gate `i` while it is not waiting. The loser of an approve and a deny sent
    /// together, or an answer after the gate closed, is late: its own fate, journaled, never
    /// the winner's verdict. Any other is rejected.
    fn answer_closed(
        &self,
        i: usize,
        gate: &Approval,
        by: String,
        approve: bool,
        comment: Option<String>,
        out: &mut Vec<Effect>,
    ) {
        let step_id = self.plan.steps[i].id.as_str();
        if !self.plan.may_approve(gate, &by) {
            let reason = may_not(&by, step_id, gate);
            out.push(rejected(step_id, by, reason));
        } else if let Some((decided_by, decision, at)) = self.runtime[i].decided.clone() {
            let when = match self.epoch {
                Some(e) => {
                    ApprovalLate::when(e + chrono::Duration::from_std(at).unwrap_or_default())
                }
                None => format!("+{} into the run", fmt_duration(at)),
            };
            let reason = ApprovalLate::reason_for(&decided_by, decision, &when);
            out.push(Effect::Record(EventKind::ApprovalLate(ApprovalLate {
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
            out.push(rejected(step_id, by, reason));
        }
    }
}

/// An answer that cannot count: journaled, and the gate stays as it was.
fn rejected(step_id: &str, by: String, reason: String) -> Effect {
    Effect::Record(EventKind::ApprovalRejected(ApprovalRejected {
        step: step_id.to_owned(),
        by,
        reason,
    }))
}

fn may_not(by: &str, step_id: &str, gate: &Approval) -> String {
    format!(
        "`{by}` may not approve `{step_id}`; approvers: {}",
        gate.approvers.join(", ")
    )
}
