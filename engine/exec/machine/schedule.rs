//! Steps through their attempts: starting what is ready within `--max-parallel`, a process's
//! end (retries, backoff, polls), a step finished and what it means for the run, and the
//! run's own end (`run_finished` or `run_interrupted`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::commands::Handling;
use super::{Effect, ExitResult, Machine, Outcome, StepState, Work, work_of};
use crate::compile::OnFailure;
use crate::journal::*;
use crate::units::fmt_duration;

impl Machine {
    /// Starts every ready step, in plan order, within `--max-parallel`.
    pub(super) fn schedule(&mut self, now: Duration, out: &mut Vec<Effect>) {
        if self.aborting || self.stopping.is_some() {
            return;
        }
        let plan = self.plan.clone();
        // Only the frontier can start; once `--max-parallel` is reached, only its gates. A
        // step that starts and ends at once (skipped, mocked, auto-approved) lets the steps
        // below it join the frontier further on, where this pass still goes.
        let mut from = 0;
        loop {
            let full = self.cfg.max_parallel.is_some_and(|max| self.running >= max);
            let candidates = if full {
                &self.frontier.member_gates
            } else {
                &self.frontier.members
            };
            let Some(&p) = candidates.range(from..).next() else {
                break;
            };
            from = p + 1;
            let i = plan.order[p];
            if !matches!(self.runtime[i].state, StepState::Pending)
                || self.held_for_cleanup(i)
                || self.loop_full(i)
            {
                continue;
            }
            let ready = plan.steps[i]
                .needs
                .iter()
                .all(|&j| match self.runtime[j].state {
                    StepState::Done(s) => {
                        s.is_ok()
                            || (plan.steps[j].on_failure == OnFailure::Continue
                                && s != StepStatus::NotRun)
                    }
                    _ => false,
                });
            if !ready {
                continue;
            }
            // A loop over an output whose `when:` is false is skipped before its list is read
            // (it may not have been written); a condition on `item` is each instance's.
            if self.output_loop_pending(i) && !self.loop_condition_holds(now, i, out) {
                continue;
            }
            if self.expand_output_loop(now, i, out) {
                // The plan may have grown, and its order with it: go over the frontier again.
                return self.schedule(now, out);
            }
            if !self.condition_holds(now, i, out) {
                continue;
            }
            self.start_attempt(now, i, 1, out);
        }
    }

    /// Starts attempt `attempt` of step `i`: a gate opens, a command runs (or, in a drill,
    /// is skipped or mocked).
    pub(super) fn start_attempt(
        &mut self,
        now: Duration,
        i: usize,
        attempt: u32,
        out: &mut Vec<Effect>,
    ) {
        let plan = self.plan.clone();
        self.runtime[i].first_started.get_or_insert(now);
        match work_of(&plan.steps[i]) {
            Work::Gate(gate) => self.open_gate(now, i, gate, attempt, out),
            Work::Command => self.start_command(now, i, attempt, out),
        }
    }

    fn start_command(&mut self, now: Duration, i: usize, attempt: u32, out: &mut Vec<Effect>) {
        let ended = match self.how(&self.plan.steps[i]) {
            Handling::Run(how) => return self.run_command(now, i, attempt, how, out),
            Handling::Skip => self.finished_event(i, StepStatus::Skipped, attempt),
            Handling::Mock => self
                .finished_event(i, StepStatus::Simulated, attempt)
                .took(self.plan.steps[i].estimate.likely),
        };
        let status = ended.status;
        out.push(Effect::Record(EventKind::StepFinished(ended)));
        self.set(i, StepState::Done(status));
        self.after_finish(now, i, status, out);
    }

    /// Renders step `i`'s command and spawns it (simulates it, in a dry-run). A command that
    /// does not render fails the step without running.
    fn run_command(
        &mut self,
        now: Duration,
        i: usize,
        attempt: u32,
        how: How,
        out: &mut Vec<Effect>,
    ) {
        let plan = self.plan.clone();
        let step = &plan.steps[i];
        // Only now do templates see real outputs: say where the step is written.
        let rendered = self
            .render_command(i, step)
            .map_err(|e| format!("{}: {e}", step.at));
        self.set(i, StepState::running(attempt, now));
        let started = |command: Option<String>| {
            Effect::Record(EventKind::StepStarted(StepStarted {
                step: step.id.clone(),
                attempt,
                command,
                how,
            }))
        };
        match rendered {
            Ok((command, env)) => {
                out.push(started(Some(self.mask.mask(&command))));
                if self.cfg.mode == Mode::DryRun {
                    let after = self.sim_duration(i);
                    out.push(Effect::Simulate {
                        step: i,
                        attempt,
                        after,
                    });
                } else {
                    out.push(Effect::Spawn {
                        step: i,
                        attempt,
                        command,
                        env,
                        hosts: step.on.clone(),
                    });
                }
            }
            Err(e) => {
                // Rendering failed (an output that was never written): the step fails
                // without running.
                out.push(started(None));
                let error = ExitResult::Error(self.explain_render_error(step, e));
                self.exited(now, i, attempt, error, BTreeMap::new(), out);
            }
        }
    }

    /// Attempt `attempt` of step `i` ended: journaled, then tried again (retries, polls),
    /// left for resume (interrupted, outcome unknown) or finished.
    pub(super) fn exited(
        &mut self,
        now: Duration,
        i: usize,
        attempt: u32,
        result: ExitResult,
        outputs: BTreeMap<String, String>,
        out: &mut Vec<Effect>,
    ) {
        let (since, timed_out, killing) = match &self.runtime[i].state {
            StepState::Running {
                attempt: a,
                since,
                timed_out,
                killing,
            } if *a == attempt => (*since, *timed_out, *killing),
            _ => return, // a stale report (e.g. after a resume)
        };
        // Dry-run gates end as granted after their estimate.
        if self.plan.steps[i].is_gate() {
            self.simulated_wait_ends(now, i, now.saturating_sub(since), out);
            return;
        }
        self.take_outputs(i, outputs, out);
        let (exit_code, signal, error) = match &result {
            ExitResult::Code(c) => (Some(*c), None, None),
            ExitResult::Signal(s) => (None, Some(*s), None),
            ExitResult::Error(e) | ExitResult::Unknown(e) => (None, None, Some(self.mask.mask(e))),
        };
        // A step that ended while no engine watched took until its recorded end.
        let end = self
            .ended_away
            .remove(&i)
            .map_or(now, |at| at.min(now).max(since));
        let ended = self
            .finished_event(i, StepStatus::Unknown, attempt)
            .exited(exit_code, signal)
            .took(end.saturating_sub(since))
            .with_error(error);
        if let ExitResult::Unknown(_) = result {
            self.outcome_unknown(now, i, attempt, ended, out);
            return;
        }
        let ok = exit_code == Some(0) && !timed_out;
        let status = self.attempt_status(ok, timed_out, killing);
        if status == StepStatus::Interrupted {
            out.push(Effect::Record(EventKind::StepFinished(
                ended.with_status(status),
            )));
            self.set(i, StepState::Pending);
            return;
        }
        if !ok
            && self.stopping.is_none()
            && !self.aborting
            && let Some(until) = self.retry_at(now, i, attempt, since)
        {
            let ended = ended.with_status(status).will_retry(true);
            self.retry(now, i, attempt, until, ended, out);
            return;
        }
        let ended = if ok {
            ended.with_status(status)
        } else {
            let error = self.why_it_failed(now, i, since, timed_out, ended.error.clone());
            ended.with_status(status).with_error(error)
        };
        out.push(Effect::Record(EventKind::StepFinished(ended)));
        self.set(i, StepState::Done(status));
        self.after_finish(now, i, status, out);
    }

    /// An attempt's end as the journal says it: killed by the run stopping is interrupted
    /// (it runs again on resume), not failed.
    fn attempt_status(&self, ok: bool, timed_out: bool, killing: bool) -> StepStatus {
        if ok {
            StepStatus::Succeeded
        } else if timed_out {
            StepStatus::TimedOut
        } else if killing && self.stopping.is_some() {
            StepStatus::Interrupted
        } else {
            StepStatus::Failed
        }
    }

    /// What a step wrote to `$RUNBOOK_OUTPUT`: journaled masked, kept in clear for the
    /// templates of the steps below it.
    pub(super) fn take_outputs(
        &mut self,
        i: usize,
        outputs: BTreeMap<String, String>,
        out: &mut Vec<Effect>,
    ) {
        if outputs.is_empty() {
            return;
        }
        let masked: BTreeMap<String, String> = outputs
            .iter()
            .map(|(k, v)| (k.clone(), self.mask.mask(v)))
            .collect();
        let masked_keys = masked
            .iter()
            .filter(|(k, v)| outputs.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        out.push(Effect::Record(EventKind::StepOutput(StepOutput {
            step: self.plan.steps[i].id.clone(),
            outputs: masked,
            masked: Some(masked_keys),
        })));
        self.runtime[i].outputs.extend(outputs);
    }

    /// A step whose process ended unseen: neither a success nor a failure. An idempotent step
    /// is simply run again; any other waits for the operator's word, so the run stops
    /// (resumable) once what is running has ended, and `resume` asks.
    fn outcome_unknown(
        &mut self,
        now: Duration,
        i: usize,
        attempt: u32,
        ended: StepFinished,
        out: &mut Vec<Effect>,
    ) {
        let again = self.plan.steps[i].idempotent && self.stopping.is_none() && !self.aborting;
        out.push(Effect::Record(EventKind::StepFinished(
            ended.with_status(StepStatus::Unknown).will_retry(again),
        )));
        if again {
            self.set(
                i,
                StepState::Backoff {
                    attempt: attempt + 1,
                    until: now,
                },
            );
        } else {
            self.set(i, StepState::Pending);
            if self.stopping.is_none() {
                self.stopping = Some(InterruptReason::OutcomeUnknown);
            }
        }
    }

    /// When a failed attempt is tried again, if it is: polls within their window, retries up
    /// to their count.
    fn retry_at(&self, now: Duration, i: usize, attempt: u32, since: Duration) -> Option<Duration> {
        let step = &self.plan.steps[i];
        let first = self.runtime[i].first_started.unwrap_or(since);
        if let Some(p) = step.poll {
            (now + p.every <= first + p.within).then_some(now + p.every)
        } else if attempt <= step.retries {
            Some(now + step.backoff.before(attempt))
        } else {
            None
        }
    }

    /// A failed attempt, journaled, waits its backoff (or poll interval) until `until`.
    fn retry(
        &mut self,
        now: Duration,
        i: usize,
        attempt: u32,
        until: Duration,
        ended: StepFinished,
        out: &mut Vec<Effect>,
    ) {
        // A poll's check that exited non-zero is not ready yet, which is what polling
        // expects: journaled as such, with when it looks again. Only the window closing fails
        // the step.
        let ended = if self.plan.steps[i].poll.is_some()
            && ended.status == StepStatus::Failed
            && ended.exit_code.is_some()
        {
            ended
                .with_status(StepStatus::NotReady)
                .next_in(until.saturating_sub(now))
        } else {
            ended
        };
        out.push(Effect::Record(EventKind::StepFinished(ended)));
        self.set(
            i,
            StepState::Backoff {
                attempt: attempt + 1,
                until,
            },
        );
    }

    /// The error a failed step's last attempt is journaled with, when its process gave none:
    /// the poll window that closed, or the timeout that killed it.
    fn why_it_failed(
        &self,
        now: Duration,
        i: usize,
        since: Duration,
        timed_out: bool,
        error: Option<String>,
    ) -> Option<String> {
        let step = &self.plan.steps[i];
        match (step.poll, &error) {
            // Killed because the window closed on an attempt still running.
            (Some(p), None) if timed_out && step.timeout.is_none_or(|t| now < since + t) => {
                Some(format!(
                    "its attempt was still running when its poll window of {} closed",
                    fmt_duration(p.within)
                ))
            }
            (Some(p), None) if self.stopping.is_none() => Some(format!(
                "still failing when its poll window of {} closed",
                fmt_duration(p.within)
            )),
            (_, None) if timed_out => step.timeout.map(|t| {
                format!(
                    "its process group was killed at the {} timeout",
                    fmt_duration(t)
                )
            }),
            _ => error,
        }
    }

    pub(super) fn after_finish(
        &mut self,
        now: Duration,
        i: usize,
        status: StepStatus,
        out: &mut Vec<Effect>,
    ) {
        if self.cfg.mode == Mode::Drill {
            self.runtime[i].real_time = Some(self.real_duration(i, now));
        }
        // Service is restored: the RTO clock stops here (see `restored`).
        if status.is_ok() && self.plan.rto_ends_at == Some(i) {
            self.restored.get_or_insert(now);
        }
        if !status.is_ok() {
            self.note_failure(i, status);
        }
        if self.stopping.is_none() {
            self.project(now, out);
        }
    }

    /// A step ended without succeeding. A step with `on_failure: continue` that failed or
    /// timed out is set aside: its dependents go on, and the run can still succeed. Any other
    /// failure fails the run (and an `abort` one stops it starting steps); the first names
    /// where the recovery failed.
    pub(super) fn note_failure(&mut self, i: usize, status: StepStatus) {
        let on_failure = self.plan.steps[i].on_failure;
        if on_failure == OnFailure::Continue
            && matches!(status, StepStatus::Failed | StepStatus::TimedOut)
        {
            if !self.continued.contains(&i) {
                self.continued.push(i);
            }
            return;
        }
        self.failed.get_or_insert(i);
        // In the cleanup phase each `finally:` step runs on its own: one failing stops none.
        if on_failure == OnFailure::Abort && !self.cleanup {
            self.aborting = true;
        }
    }

    pub(super) fn finish_if_over(&mut self, now: Duration, out: &mut Vec<Effect>) {
        // A run ends once: an answer handled after its end is journaled late, never a second
        // `run_finished`.
        if self.done {
            return;
        }
        let busy = self.frontier.active.iter().any(|&i| {
            matches!(
                self.runtime[i].state,
                StepState::Running { .. } | StepState::Backoff { .. }
            )
        });
        if busy {
            return;
        }
        if let Some(reason) = self.stopping {
            // Open gates stay open in the journal; resume asks again.
            out.push(Effect::Record(EventKind::RunInterrupted(RunInterrupted {
                reason,
            })));
            self.done = true;
            out.push(Effect::Done(Outcome::Stopped));
            return;
        }
        let waiting = self
            .frontier
            .active
            .iter()
            .any(|&i| matches!(self.runtime[i].state, StepState::Waiting { .. }));
        if waiting && !self.aborting {
            return;
        }
        if self.begin_cleanup(now, out) {
            return self.finish_if_over(now, out);
        }
        self.not_run_the_rest(out);
        // The run's work is over; an escalation still being sent holds its end.
        let now = *self.work_ended.get_or_insert(now);
        if self.notifying > 0 {
            return;
        }
        self.run_finished(now, out);
    }

    /// `schedule` ran just before and started every step that can start: with nothing
    /// running or waiting, a step still pending can never run (its needs failed).
    pub(super) fn not_run_the_rest(&mut self, out: &mut Vec<Effect>) {
        for i in self.plan.order.clone() {
            if self.held_for_cleanup(i) {
                continue;
            }
            if matches!(
                self.runtime[i].state,
                StepState::Pending | StepState::Waiting { .. }
            ) {
                out.push(Effect::Record(EventKind::StepFinished(
                    self.finished_event(i, StepStatus::NotRun, 0),
                )));
                self.set(i, StepState::Done(StepStatus::NotRun));
                // Its needs failed: the recovery failed there, not here.
                self.failed.get_or_insert(i);
            }
        }
    }

    /// The run's verdict, journaled once: `run_finished`, and the outcome the driver exits on.
    fn run_finished(&mut self, now: Duration, out: &mut Vec<Effect>) {
        // Only a recovery meets the RTO: a run that failed did not recover, however soon it
        // ended. Steps that failed with `on_failure: continue` do not fail it.
        // A drill runs at drill speed: it is judged on what a real run would take.
        let projected = (self.cfg.mode == Mode::Drill).then(|| self.projected_finish(now));
        // With `rto_ends_at`, the recovery ended where service was restored: the observation
        // after it is reported apart, not counted against the RTO.
        let recovery = self.restored.filter(|_| self.plan.rto_ends_at.is_some());
        let judged = projected.or(recovery).unwrap_or(now);
        let rto_met = self.failed.is_none() && judged <= self.plan.rto;
        let status = if self.failed.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let id = |&i: &usize| self.plan.steps[i].id.clone();
        out.push(Effect::Record(EventKind::RunFinished(RunFinished {
            status,
            elapsed_ms: now.as_millis() as u64,
            rto_met,
            rto_ms: self.plan.rto.as_millis() as u64,
            failed_at: self.failed.as_ref().map(id),
            continued: self.continued.iter().map(id).collect(),
            projected_ms: projected.map(|p| p.as_millis() as u64),
            recovery_ms: recovery.map(|r| r.as_millis() as u64),
            observation_ms: recovery.map(|r| now.saturating_sub(r).as_millis() as u64),
        })));
        self.done = true;
        out.push(Effect::Done(if self.failed.is_some() {
            Outcome::Failed { rto_met }
        } else {
            Outcome::Succeeded { rto_met }
        }));
    }

    /// The step supervisor died: stop, resumable (see [`Input::Fault`](super::Input::Fault)).
    pub(super) fn fault(
        &mut self,
        reason: InterruptReason,
        lost: Vec<usize>,
        not_started: Vec<usize>,
        out: &mut Vec<Effect>,
    ) {
        if self.stopping.is_none() {
            self.stopping = Some(reason);
        }
        for i in lost {
            if matches!(self.runtime[i].state, StepState::Running { .. }) {
                self.set(i, StepState::Pending);
            }
        }
        for i in not_started {
            if let StepState::Running { attempt, .. } = self.runtime[i].state {
                let ended = self
                    .finished_event(i, StepStatus::Interrupted, attempt)
                    .with_error(Some("not started: the step supervisor was gone".into()));
                out.push(Effect::Record(EventKind::StepFinished(ended)));
                self.set(i, StepState::Pending);
            }
        }
    }

    /// Ctrl-C (or SIGTERM): no step starts, and every running one is killed once.
    pub(super) fn interrupt(&mut self, out: &mut Vec<Effect>) {
        if self.stopping.is_none() {
            self.stopping = Some(InterruptReason::Signal);
        }
        for i in 0..self.runtime.len() {
            if let StepState::Running { killing, .. } = &mut self.runtime[i].state
                && !*killing
            {
                *killing = true;
                out.push(Effect::Kill { step: i });
            }
        }
    }
}
