//! What the clock decides: budget warnings and breaches, timeouts, backoffs ending, the
//! escalation schedule, the RTO put at risk, and [`Machine::next_wake`], the instant the
//! driver must next call with [`Input::Tick`](super::Input::Tick).

use std::time::Duration;

use minijinja::value::Value;

use super::{Effect, Machine, NotifyFailure, StepState, Work, work_of};
use crate::journal::*;
use crate::template::{self, Quoting};
use crate::units::fmt_duration;

const MINUTE: Duration = Duration::from_secs(60);
/// A step breaches when it runs *past* its budget: one that takes exactly its budget (as a
/// dry-run step does when its estimate is its budget) is on budget.
pub(super) const BREACH_AFTER: Duration = Duration::from_millis(1);

impl Machine {
    /// The earliest instant at which the machine wants a [`Input::Tick`].
    pub fn next_wake(&self) -> Option<Duration> {
        if self.done {
            return None;
        }
        let mut wake: Option<Duration> = None;
        let mut at = |t: Duration| wake = Some(wake.map_or(t, |w| w.min(t)));
        let busy = !self.frontier.active.is_empty();
        self.group_wakes(&mut at);
        for &i in &self.frontier.active {
            let step = &self.plan.steps[i];
            match &self.runtime[i].state {
                StepState::Running { since, killing, .. } => {
                    if let (Some(t), false) = (step.timeout, *killing) {
                        at(*since + t);
                    }
                    if let (Some(p), Some(first), false) =
                        (step.poll, self.runtime[i].first_started, *killing)
                    {
                        at(first + p.within);
                    }
                    self.budget_wakes(i, &mut at);
                }
                StepState::Waiting { since, .. } => {
                    if let Work::Gate(a) = work_of(step)
                        && let Some(t) = a.timeout
                    {
                        at(*since + t);
                    }
                    self.budget_wakes(i, &mut at);
                }
                StepState::Backoff { until, .. } => at(*until),
                _ => {}
            }
        }
        if busy && self.stopping.is_none() {
            for (k, e) in self.plan.escalation.iter().enumerate() {
                if !self.escalated[k] && self.restored.is_none() {
                    at(e.after);
                    break;
                }
            }
            for &i in &self.frontier.active {
                for p in &self.runtime[i].pages {
                    if let Some(t) = self.page_time(p) {
                        at(t);
                    }
                }
            }
            if self.restored.is_none() {
                at(self.last_projection + MINUTE);
            }
            // An active step counts what is left of its budget; once over it, the projection
            // is now plus the path below it (and the cleanup after, when it counts), which
            // passes the target at this instant.
            if !self.at_risk && self.restored.is_none() {
                let cleanup = self.cleanup_to_come();
                for &i in self.frontier.active.iter().filter(|&&i| self.recovery[i]) {
                    let below = self.frontier.path_below[i] + cleanup;
                    if let Some(t) = self.plan.rto.checked_sub(below) {
                        at(t + Duration::from_millis(1));
                    }
                }
                self.cleanup_risk_wakes(&mut at);
            }
        }
        wake
    }

    /// A gate in a dry-run takes its estimate on the virtual clock: that is no one late, so
    /// its budget is not watched (no warning, no breach). A manual task's is: it is work.
    pub(super) fn budget_watched(&self, i: usize) -> bool {
        !(self.cfg.mode == Mode::DryRun && super::manual::awaits_a_decision(&self.plan.steps[i]))
    }

    pub(super) fn budget_wakes(&self, i: usize, at: &mut impl FnMut(Duration)) {
        let rt = &self.runtime[i];
        let Some(start) = rt.first_started else {
            return;
        };
        if !self.budget_watched(i) {
            return;
        }
        let budget = self.plan.steps[i].budget;
        if !rt.warned {
            at(start + budget.mul_f64(0.8));
        } else if !rt.breached {
            at(start + budget + BREACH_AFTER);
        }
    }

    /// Timers: budgets, timeouts, gate timeouts, backoffs, escalations, the projection.
    pub(super) fn clock(&mut self, now: Duration, out: &mut Vec<Effect>) {
        let active: Vec<usize> = self.frontier.active.iter().copied().collect();
        for i in active {
            self.watch_budget(now, i, out);
            self.step_timers(now, i, out);
        }
        self.watch_groups(now, out);
        // Once service is restored the RTO clock has stopped: the observation after it neither
        // escalates on the schedule nor puts the RTO at risk, however long it watches.
        if self.stopping.is_none() && self.work_ended.is_none() {
            if self.restored.is_none() {
                self.fire_escalations(now, out);
                // Every minute; and the moment the projection passes the target (a step
                // running over its budget pushes it later as the clock goes; see `next_wake`).
                if now >= self.last_projection + MINUTE
                    || (!self.at_risk && self.past_target(self.projected_finish(now)))
                {
                    self.project(now, out);
                }
            }
            // After the escalations: one that fired (on schedule or for the RTO) brings its
            // role's page with it.
            let paging: Vec<usize> = self
                .frontier
                .active
                .iter()
                .copied()
                .filter(|&i| !self.runtime[i].pages.is_empty())
                .collect();
            for i in paging {
                self.send_due_pages(i, now, out);
            }
        }
    }

    /// Active step `i` at 80% of its budget warns, past it breaches: each once.
    fn watch_budget(&mut self, now: Duration, i: usize, out: &mut Vec<Effect>) {
        let step = &self.plan.steps[i];
        let budget = step.budget;
        if let Some(start) = self.runtime[i].first_started
            && self.runtime[i].state.is_active()
            && self.budget_watched(i)
        {
            let elapsed = now.saturating_sub(start);
            let ev = || BudgetEvent {
                step: step.id.clone(),
                elapsed_ms: elapsed.as_millis() as u64,
                budget_ms: budget.as_millis() as u64,
                runbook: None,
            };
            if !self.runtime[i].warned && elapsed >= budget.mul_f64(0.8) {
                self.runtime[i].warned = true;
                out.push(Effect::Record(EventKind::BudgetWarning(ev())));
            }
            if !self.runtime[i].breached && elapsed >= budget + BREACH_AFTER {
                self.runtime[i].breached = true;
                out.push(Effect::Record(EventKind::BudgetBreached(ev())));
            }
        }
    }

    /// Step `i`'s own timers: its timeout or poll window (killed), its gate's timeout (the run
    /// stops), its backoff (the next attempt starts).
    fn step_timers(&mut self, now: Duration, i: usize, out: &mut Vec<Effect>) {
        let step = &self.plan.steps[i];
        let poll_closes = step
            .poll
            .zip(self.runtime[i].first_started)
            .map(|(p, first)| first + p.within);
        match &mut self.runtime[i].state {
            // Its timeout, or the end of its poll window, has come.
            StepState::Running {
                since,
                killing,
                timed_out,
                ..
            } if !*killing
                && (step.timeout.is_some_and(|t| now >= *since + t)
                    || poll_closes.is_some_and(|end| now >= end)) =>
            {
                *killing = true;
                *timed_out = true;
                out.push(Effect::Kill { step: i });
            }
            StepState::Waiting { since, .. } => {
                let since = *since;
                if let Work::Gate(a) = work_of(step)
                    && let Some(t) = a.timeout
                    && now >= since + t
                {
                    let wait = now - since;
                    out.push(Effect::Record(EventKind::ApprovalTimedOut(
                        ApprovalTimedOut {
                            step: step.id.clone(),
                            wait_ms: wait.as_millis() as u64,
                        },
                    )));
                    // A gate never passes silently: the run stops, resumable.
                    self.set(i, StepState::Pending);
                    if self.stopping.is_none() {
                        self.stopping = Some(InterruptReason::ApprovalTimedOut);
                    }
                }
            }
            // A run that stops or aborts makes no new attempt, and does not wait out the
            // backoff to say so: Ctrl-C during a 60 s backoff stops the run at once.
            StepState::Backoff { .. } if self.aborting || self.stopping.is_some() => {
                self.set(i, StepState::Pending);
            }
            StepState::Backoff { attempt, until } if now >= *until => {
                let attempt = *attempt;
                self.start_attempt(now, i, attempt, out);
            }
            _ => {}
        }
    }

    pub(super) fn fire_escalations(&mut self, now: Duration, out: &mut Vec<Effect>) {
        for k in 0..self.plan.escalation.len() {
            if !self.escalated[k] && now >= self.plan.escalation[k].after {
                self.escalate(k, now, EscalationReason::Schedule, out);
            }
        }
    }

    /// How a message begins: a rehearsal must never read like a real incident on the channel
    /// it reaches.
    pub(super) fn tag(&self) -> &'static str {
        match self.cfg.mode {
            Mode::Real => "[runbook]",
            Mode::Drill => "[runbook DRILL — not a real incident]",
            Mode::DryRun => "[runbook DRY-RUN — not a real incident]",
        }
    }

    pub(super) fn escalate(
        &mut self,
        k: usize,
        now: Duration,
        reason: EscalationReason,
        out: &mut Vec<Effect>,
    ) {
        self.escalated[k] = true;
        let channel = self.plan.escalation[k].channel.clone();
        let tag = self.tag();
        let message = match reason {
            EscalationReason::RtoAtRisk => format!(
                "{tag} {}: RTO at risk at +{} (target {}); escalating to {channel}",
                self.plan.scenario,
                fmt_duration(now),
                fmt_duration(self.plan.rto)
            ),
            _ => format!(
                "{tag} {}: recovery still in progress at +{} (RTO target {}); escalating to {channel}",
                self.plan.scenario,
                fmt_duration(now),
                fmt_duration(self.plan.rto)
            ),
        };
        self.notify(channel, reason, message, out);
    }

    /// Runs a channel's notify command with this message (journaled as `escalated` once sent).
    pub(super) fn notify(
        &mut self,
        channel: String,
        reason: EscalationReason,
        message: String,
        out: &mut Vec<Effect>,
    ) {
        let Some(tmpl) = self.plan.notify.get(&channel) else {
            return;
        };
        // A notify command sees what a step's command does (vars, env), and the message.
        let mut ctx = self.context(false);
        ctx.insert("message".into(), Value::from(message.clone()));
        match template::render(tmpl, Quoting::Shell, &Value::from(ctx)) {
            Ok(command) => {
                self.notifying += 1;
                out.push(Effect::Notify {
                    channel,
                    reason,
                    command,
                    message,
                })
            }
            Err(e) => out.push(Effect::Record(EventKind::Escalated(Escalated {
                channel,
                reason,
                message: self.mask.mask(&format!(
                    "{message} (notify command failed to render: {})",
                    e.message
                )),
                ok: false,
                ..Default::default()
            }))),
        }
    }

    /// A projection past the RTO target, at the journal's resolution: a millisecond. A run
    /// whose budgets add up to its RTO exactly is not at risk because its first step started
    /// some microseconds after the run did.
    pub(super) fn past_target(&self, projected: Duration) -> bool {
        projected.as_millis() > self.plan.rto.as_millis()
    }

    /// Looks at the projected finish ([`Machine::projected_finish`]; a drill's is a real
    /// run's) — called when a step ends, every minute, and the moment the projection passes
    /// the target (see `clock`). The first time it is past the RTO, `rto_at_risk` is journaled
    /// with the path that decides it and the next escalation not yet sent goes out early;
    /// it is said again only after the projection came back within the target. Once the
    /// `rto_ends_at` step has succeeded the RTO clock has stopped, and nothing is at risk.
    /// (docs/design.md, "The state machine".)
    pub(super) fn project(&mut self, now: Duration, out: &mut Vec<Effect>) {
        self.last_projection = now;
        if self.restored.is_some() {
            self.at_risk = false;
            return;
        }
        let projected = self.projected_finish(now);
        if self.past_target(projected) {
            if !self.at_risk {
                let (_, path) = self.projection(now);
                self.at_risk = true;
                out.push(Effect::Record(EventKind::RtoAtRisk(RtoAtRisk {
                    projected_ms: projected.as_millis() as u64,
                    target_ms: self.plan.rto.as_millis() as u64,
                    path: path
                        .iter()
                        .map(|&i| self.plan.steps[i].id.clone())
                        .collect(),
                })));
                if let Some(k) = self.escalated.iter().position(|e| !e) {
                    self.escalate(k, now, EscalationReason::RtoAtRisk, out);
                }
            }
        } else {
            self.at_risk = false;
        }
    }

    /// A notify command finished: journaled as `escalated`, masked, with how it failed.
    pub(super) fn notified(
        &mut self,
        channel: String,
        reason: EscalationReason,
        message: String,
        failed: Option<NotifyFailure>,
        out: &mut Vec<Effect>,
    ) {
        self.notifying = self.notifying.saturating_sub(1);
        let failed = failed.map(|f| NotifyFailure {
            error: self.mask.mask(&f.error),
            exit_code: f.exit_code,
            stderr_tail: f.stderr_tail.map(|t| self.mask.mask(&t)),
        });
        out.push(Effect::Record(EventKind::Escalated(Escalated {
            channel,
            reason,
            message: self.mask.mask(&message),
            ok: failed.is_none(),
            exit_code: failed.as_ref().and_then(|f| f.exit_code),
            error: failed.as_ref().map(|f| f.error.clone()),
            stderr_tail: failed.and_then(|f| f.stderr_tail),
        })));
    }
}
