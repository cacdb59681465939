//! Steps through their attempts: starting what is ready within `--max-parallel`, a process's
//! end (retries, backoff, polls), a step finished and what it means for the run, and the
//! run's own end (`run_finished` or `run_interrupted`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::commands::How;
use super::{Action, Action_, ExitResult, Machine, Outcome, St, action_of};
use crate::journal::*;
use crate::runbook::OnFailure;
use crate::units::fmt_duration;

impl Machine {
    /// Starts every ready step, in plan order, within `--max-parallel`.
    pub(super) fn schedule(&mut self, now: Duration, out: &mut Vec<Action>) {
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
                &self.sets.frontier_gates
            } else {
                &self.sets.frontier
            };
            let Some(&p) = candidates.range(from..).next() else {
                break;
            };
            from = p + 1;
            let i = plan.order[p];
            if !matches!(self.rt[i].st, St::Pending) {
                continue;
            }
            let ready = plan.steps[i].needs.iter().all(|&j| match self.rt[j].st {
                St::Done(s) => {
                    s.is_ok()
                        || (plan.steps[j].on_failure == OnFailure::Continue
                            && s != StepStatus::NotRun)
                }
                _ => false,
            });
            if !ready {
                continue;
            }
            self.start_attempt(now, i, 1, out);
        }
    }

    pub(super) fn start_attempt(
        &mut self,
        now: Duration,
        i: usize,
        attempt: u32,
        out: &mut Vec<Action>,
    ) {
        let plan = self.plan.clone();
        let step = &plan.steps[i];
        self.rt[i].first_started.get_or_insert(now);
        let id = step.id.clone();
        match action_of(step) {
            Action_::Gate(a) => {
                let prompt = self
                    .render_plain(i, &a.prompt)
                    .unwrap_or_else(|e| a.prompt.clone() + &format!(" ({e})"));
                out.push(Action::Record(EventKind::ApprovalRequested(
                    ApprovalRequested {
                        step: id.clone(),
                        prompt: self.mask.mask(&prompt),
                        approvers: a.approvers.clone(),
                        min: a.min,
                        timeout_ms: a.timeout.map(|t| t.as_millis() as u64),
                    },
                )));
                self.set(
                    i,
                    St::Waiting {
                        since: now,
                        got: Vec::new(),
                    },
                );
                if self.cfg.mode == Mode::DryRun {
                    // Gates take their estimate, on the virtual clock, and page as a real
                    // one would (journaled, not sent): who is called when is part of the
                    // rehearsal.
                    self.set(i, St::running(attempt, now));
                    self.page_approvers(i, &prompt, now, out);
                    let after = self.sim_duration(i);
                    out.push(Action::Simulate {
                        step: i,
                        attempt,
                        after,
                    });
                } else if let Some(who) = self.cfg.auto_approve_as.clone()
                    && self.cfg.yes_is_one_approval
                    && a.min > 1
                {
                    // The two-person rule holds under `--yes`: this is one of them.
                    self.answer(now, &id, who, true, Some("approved with --yes".into()), out);
                    out.push(Action::Ask { step: i });
                    self.page_approvers(i, &prompt, now, out);
                } else if let Some(who) = self.cfg.auto_approve_as.clone() {
                    self.decide(i, vec![who.clone()], GateDecision::Approved, now);
                    out.push(Action::Record(EventKind::ApprovalGranted(
                        ApprovalGranted {
                            step: id,
                            by: vec![who],
                            comment: Some("auto-approved with --yes".into()),
                            auto: true,
                            wait_ms: 0,
                        },
                    )));
                    self.finish_step(now, i, StepStatus::Succeeded, out);
                } else {
                    out.push(Action::Ask { step: i });
                    self.page_approvers(i, &prompt, now, out);
                }
            }
            Action_::Command => {
                let how = self.how(step);
                match how {
                    How::Skip => {
                        out.push(Action::Record(EventKind::StepFinished(StepFinished {
                            step: id,
                            status: StepStatus::Skipped,
                            attempt,
                            exit_code: None,
                            signal: None,
                            duration_ms: 0,
                            will_retry: false,
                            error: None,
                            marked_done_by: None,
                            next_in_ms: None,
                        })));
                        self.set(i, St::Done(StepStatus::Skipped));
                        self.after_finish(now, i, StepStatus::Skipped, out);
                    }
                    How::Mock => {
                        let d = step.estimate.likely;
                        out.push(Action::Record(EventKind::StepFinished(StepFinished {
                            step: id,
                            status: StepStatus::Simulated,
                            attempt,
                            exit_code: None,
                            signal: None,
                            duration_ms: d.as_millis() as u64,
                            will_retry: false,
                            error: None,
                            marked_done_by: None,
                            next_in_ms: None,
                        })));
                        self.set(i, St::Done(StepStatus::Simulated));
                        self.after_finish(now, i, StepStatus::Simulated, out);
                    }
                    How::Run(kind) => {
                        // Only now do templates see real outputs: say where the step is written.
                        let rendered = self
                            .render_command(i, step)
                            .map_err(|e| format!("{}: {e}", step.at));
                        self.set(i, St::running(attempt, now));
                        match rendered {
                            Ok((command, env)) => {
                                out.push(Action::Record(EventKind::StepStarted(StepStarted {
                                    step: id,
                                    attempt,
                                    command: Some(self.mask.mask(&command)),
                                    how: kind.into(),
                                })));
                                if self.cfg.mode == Mode::DryRun {
                                    let after = self.sim_duration(i);
                                    out.push(Action::Simulate {
                                        step: i,
                                        attempt,
                                        after,
                                    });
                                } else {
                                    out.push(Action::Spawn {
                                        step: i,
                                        attempt,
                                        command,
                                        env,
                                        hosts: step.on.clone(),
                                    });
                                }
                            }
                            Err(e) => {
                                // Rendering failed (an output that was never written):
                                // the step fails without running.
                                out.push(Action::Record(EventKind::StepStarted(StepStarted {
                                    step: id,
                                    attempt,
                                    command: None,
                                    how: kind.into(),
                                })));
                                self.exited(
                                    now,
                                    i,
                                    attempt,
                                    ExitResult::Error(self.explain_render_error(step, e)),
                                    BTreeMap::new(),
                                    out,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    pub(super) fn exited(
        &mut self,
        now: Duration,
        i: usize,
        attempt: u32,
        result: ExitResult,
        outputs: BTreeMap<String, String>,
        out: &mut Vec<Action>,
    ) {
        let (since, timed_out, killing) = match &self.rt[i].st {
            St::Running {
                attempt: a,
                since,
                timed_out,
                killing,
            } if *a == attempt => (*since, *timed_out, *killing),
            _ => return, // a stale report (e.g. after a resume)
        };
        let plan = self.plan.clone();
        let step = &plan.steps[i];
        let duration = now.saturating_sub(since);

        // Dry-run gates end as granted after their estimate.
        if step.is_gate() {
            out.push(Action::Record(EventKind::ApprovalGranted(
                ApprovalGranted {
                    step: step.id.clone(),
                    by: vec![
                        self.cfg
                            .auto_approve_as
                            .clone()
                            .unwrap_or_else(|| "dry-run".into()),
                    ],
                    comment: Some("simulated wait".into()),
                    auto: true,
                    wait_ms: duration.as_millis() as u64,
                },
            )));
            self.finish_step(now, i, StepStatus::Succeeded, out);
            return;
        }

        if !outputs.is_empty() {
            let masked: BTreeMap<String, String> = outputs
                .iter()
                .map(|(k, v)| (k.clone(), self.mask.mask(v)))
                .collect();
            let masked_keys = masked
                .iter()
                .filter(|(k, v)| outputs.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect();
            out.push(Action::Record(EventKind::StepOutput(StepOutput {
                step: step.id.clone(),
                outputs: masked,
                masked: Some(masked_keys),
            })));
            self.rt[i].outputs.extend(outputs);
        }
        let (exit_code, signal, error) = match &result {
            ExitResult::Code(c) => (Some(*c), None, None),
            ExitResult::Signal(s) => (None, Some(*s), None),
            ExitResult::Error(e) | ExitResult::Unknown(e) => (None, None, Some(self.mask.mask(e))),
        };
        if let ExitResult::Unknown(_) = result {
            // Neither a success nor a failure: an idempotent step is simply run again; any
            // other waits for the operator's word, so the run stops (resumable) once what is
            // running has ended, and `resume` asks.
            let again = step.idempotent && self.stopping.is_none() && !self.aborting;
            out.push(Action::Record(EventKind::StepFinished(StepFinished {
                step: step.id.clone(),
                status: StepStatus::Unknown,
                attempt,
                exit_code,
                signal,
                duration_ms: duration.as_millis() as u64,
                will_retry: again,
                error,
                marked_done_by: None,
                next_in_ms: None,
            })));
            if again {
                self.set(
                    i,
                    St::Backoff {
                        attempt: attempt + 1,
                        until: now,
                    },
                );
            } else {
                self.set(i, St::Pending);
                if self.stopping.is_none() {
                    self.stopping = Some("outcome_unknown".into());
                }
            }
            return;
        }
        let ok = exit_code == Some(0) && !timed_out;
        let status = if ok {
            StepStatus::Succeeded
        } else if timed_out {
            StepStatus::TimedOut
        } else if killing && self.stopping.is_some() {
            StepStatus::Interrupted
        } else {
            StepStatus::Failed
        };
        let finished = |status, will_retry, error: Option<String>| {
            EventKind::StepFinished(StepFinished {
                step: step.id.clone(),
                status,
                attempt,
                exit_code,
                signal,
                duration_ms: duration.as_millis() as u64,
                will_retry,
                error,
                marked_done_by: None,
                next_in_ms: None,
            })
        };
        if status == StepStatus::Interrupted {
            out.push(Action::Record(finished(status, false, error)));
            self.set(i, St::Pending);
            return;
        }
        if !ok && self.stopping.is_none() && !self.aborting {
            // Try again: polls within their window, retries up to their count.
            let first = self.rt[i].first_started.unwrap_or(since);
            let retry_at = if let Some(p) = step.poll {
                (now + p.every <= first + p.within).then_some(now + p.every)
            } else if attempt <= step.retries {
                Some(now + step.backoff)
            } else {
                None
            };
            if let Some(until) = retry_at {
                let mut event = finished(status, true, error);
                // A poll's check that exited non-zero is not ready yet, which is what polling
                // expects: journaled as such, with when it looks again. Only the window
                // closing fails the step.
                if let EventKind::StepFinished(f) = &mut event
                    && step.poll.is_some()
                    && status == StepStatus::Failed
                    && exit_code.is_some()
                {
                    f.status = StepStatus::NotReady;
                    f.next_in_ms = Some(until.saturating_sub(now).as_millis() as u64);
                }
                out.push(Action::Record(event));
                self.set(
                    i,
                    St::Backoff {
                        attempt: attempt + 1,
                        until,
                    },
                );
                return;
            }
        }
        let error = match (ok, step.poll, &error) {
            // Killed because the window closed on an attempt still running.
            (false, Some(p), None) if timed_out && step.timeout.is_none_or(|t| now < since + t) => {
                Some(format!(
                    "its attempt was still running when its poll window of {} closed",
                    fmt_duration(p.within)
                ))
            }
            (false, Some(p), None) if self.stopping.is_none() => Some(format!(
                "still failing when its poll window of {} closed",
                fmt_duration(p.within)
            )),
            (false, _, None) if timed_out => step.timeout.map(|t| {
                format!(
                    "its process group was killed at the {} timeout",
                    fmt_duration(t)
                )
            }),
            _ => error,
        };
        out.push(Action::Record(finished(status, false, error)));
        self.set(i, St::Done(status));
        self.after_finish(now, i, status, out);
    }

    pub(super) fn after_finish(
        &mut self,
        now: Duration,
        i: usize,
        status: StepStatus,
        out: &mut Vec<Action>,
    ) {
        if self.cfg.mode == Mode::Drill {
            self.rt[i].real = Some(self.real_duration(i, now));
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
        if on_failure == OnFailure::Abort {
            self.aborting = true;
        }
    }

    pub(super) fn finish_if_over(&mut self, now: Duration, out: &mut Vec<Action>) {
        // A run ends once: an answer handled after its end is journaled late, never a second
        // `run_finished`.
        if self.done {
            return;
        }
        let busy = self
            .sets
            .active
            .iter()
            .any(|&i| matches!(self.rt[i].st, St::Running { .. } | St::Backoff { .. }));
        if busy {
            return;
        }
        if let Some(reason) = &self.stopping {
            // Open gates stay open in the journal; resume asks again.
            out.push(Action::Record(EventKind::RunInterrupted(RunInterrupted {
                reason: reason.clone(),
            })));
            self.done = true;
            out.push(Action::Done(Outcome::Stopped));
            return;
        }
        let waiting = self
            .sets
            .active
            .iter()
            .any(|&i| matches!(self.rt[i].st, St::Waiting { .. }));
        if waiting && !self.aborting {
            return;
        }
        // `schedule` ran just before and started every step that can start: with nothing
        // running or waiting, a step still pending can never run (its needs failed).
        for i in self.plan.order.clone() {
            if matches!(self.rt[i].st, St::Pending | St::Waiting { .. }) {
                out.push(Action::Record(EventKind::StepFinished(StepFinished {
                    step: self.plan.steps[i].id.clone(),
                    status: StepStatus::NotRun,
                    attempt: 0,
                    exit_code: None,
                    signal: None,
                    duration_ms: 0,
                    will_retry: false,
                    error: None,
                    marked_done_by: None,
                    next_in_ms: None,
                })));
                self.set(i, St::Done(StepStatus::NotRun));
                // Its needs failed: the recovery failed there, not here.
                self.failed.get_or_insert(i);
            }
        }
        // The run's work is over; an escalation still being sent holds its end.
        let now = *self.work_ended.get_or_insert(now);
        if self.notifying > 0 {
            return;
        }
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
        out.push(Action::Record(EventKind::RunFinished(RunFinished {
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
        out.push(Action::Done(if self.failed.is_some() {
            Outcome::Failed { rto_met }
        } else {
            Outcome::Succeeded { rto_met }
        }));
    }
}
