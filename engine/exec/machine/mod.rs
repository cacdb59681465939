//! The executor's state machine: `handle(now, input) -> actions`.
//!
//! Everything that can happen — a step exited, a timer fired, an approval arrived, Ctrl-C —
//! arrives as an [`Input`] with the run clock's `now`; the machine answers with [`Effect`]s:
//! events to journal, processes to spawn or kill, notifications to send. It owns no process,
//! no file and no clock, so every timing rule is tested exactly on a virtual clock. Its place
//! in the flow, its inputs and actions: docs/design.md ("The state machine").
//!
//! One concern per file: `protocol` (the types the drivers see), `frontier` (what can start,
//! and the projected finish), `timers` (budgets, escalation, the RTO at risk, the next
//! wake-up), `schedule` (attempts, retries, polls, a step's and the run's end), `gates`
//! (answers and pages), `commands` (rendering what a step runs), `calls` (what a called
//! runbook's step sees), `restore` (resume). This file
//! holds the state they share and [`Machine::handle`], which dispatches an input to them.

mod calls;
mod commands;
mod conditions;
mod finally;
mod frontier;
mod gates;
mod inputs;
mod loops;
mod manual;
mod output_loops;
mod protocol;
mod restore;
mod schedule;
mod timers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use minijinja::value::Value;

use super::mask::Masker;
use crate::compile::{Approval, Plan, Step, StepKind};
use crate::journal::*;

use frontier::Frontier;
use gates::Page;
pub use protocol::{Config, Effect, ExitResult, Input, NotifyFailure, Outcome};

/// Where one step is: not started, an attempt running, waiting out a backoff, a gate waiting
/// for answers (`got`: who approved so far), or finished with its journaled status.
#[derive(Clone, Debug, PartialEq)]
enum StepState {
    Pending,
    Running {
        attempt: u32,
        since: Duration,
        killing: bool,
        timed_out: bool,
    },
    Backoff {
        attempt: u32,
        until: Duration,
    },
    Waiting {
        since: Duration,
        got: Vec<String>,
        /// The keys whose signed approvals counted, each with who used it: `min` counts
        /// distinct keys as well as distinct people.
        keys: Vec<(String, String)>,
    },
    Done(StepStatus),
}

impl StepState {
    /// Running, waiting at a gate or backing off: what the clock looks at.
    fn is_active(&self) -> bool {
        matches!(
            self,
            StepState::Running { .. } | StepState::Waiting { .. } | StepState::Backoff { .. }
        )
    }

    /// A fresh attempt, neither being killed nor timed out.
    fn running(attempt: u32, since: Duration) -> StepState {
        StepState::Running {
            attempt,
            since,
            killing: false,
            timed_out: false,
        }
    }
}

/// What the machine keeps of one step besides its state, across its attempts.
#[derive(Clone, Debug)]
struct StepRuntime {
    state: StepState,
    /// When its first attempt started: budgets and poll windows count from here.
    first_started: Option<Duration>,
    warned: bool,
    breached: bool,
    outputs: BTreeMap<String, String>,
    /// Outputs restored on resume without their value: it held a secret.
    masked_outputs: BTreeSet<String>,
    /// Gates: who decided, which way and when (run clock), so that an answer that comes
    /// after is told so, in its own words, instead of being taken for the decision.
    decided: Option<(Vec<String>, GateDecision, Duration)>,
    /// Drills: what the step, finished, would have taken in a real run (see
    /// [`Machine::real_duration`]).
    real_time: Option<Duration>,
    /// Gates: pages to approver roles whose time has not come yet.
    pages: Vec<Page>,
    /// Gates: the hash of the latest `approval_requested`, once journaled (signed runs).
    request: Option<String>,
}

pub struct Machine {
    plan: Arc<Plan>,
    cfg: Config,
    mask: Masker,
    runtime: Vec<StepRuntime>,
    /// Steps in `StepState::Running`, kept by [`Machine::set`]: what `--max-parallel` counts.
    running: usize,
    aborting: bool,
    /// Every main step has ended: the `finally:` steps may run (see `finally`).
    cleanup: bool,
    /// The `finally:` steps in plan order: what the projection adds after the main steps.
    finally_order: Vec<usize>,
    /// The run failed: the first step whose failure ended the recovery (see
    /// [`Machine::note_failure`]).
    failed: Option<usize>,
    /// Steps that failed with `on_failure: continue`: the run went on, and can still succeed.
    continued: Vec<usize>,
    /// Why we are stopping (resumable), if we are.
    stopping: Option<InterruptReason>,
    escalated: Vec<bool>,
    at_risk: bool,
    last_projection: Duration,
    /// Notify commands started and not yet reported: the run waits for them (each has its
    /// own timeout), so that an escalation sent at the end is sent, and journaled.
    notifying: usize,
    /// When the last step ended, while notifications hold the run's end: the run's time.
    work_ended: Option<Duration>,
    done: bool,
    env_value: Value,
    /// What the clock, the scheduler and the projection look at, kept as steps change state
    /// (see [`Machine::set`]) so that an event costs what is in flight, not the whole plan.
    frontier: Frontier,
    /// Wall-clock time of elapsed zero, when the run has one: a late answer is told when its
    /// gate was decided in the time people read, not the run's clock.
    epoch: Option<DateTime<Utc>>,
    /// Which steps the projection counts (with `rto_ends_at`, that step and those upstream of
    /// it; else all but the `finally:` steps), by index.
    recovery: Vec<bool>,
    /// When the `rto_ends_at` step succeeded: service was restored, the RTO clock stopped, and
    /// what runs now is observation, which no longer projects, escalates or risks the RTO.
    restored: Option<Duration>,
    /// Steps whose `when:` was evaluated (or, in a dry-run, assumed), with what it saw: their
    /// `step_finished` carries it.
    conditions: BTreeMap<usize, crate::journal::ConditionSeen>,
    /// Each call's group against its budget (`Plan::calls`, same index; see `calls`).
    groups: Vec<calls::GroupWatch>,
    /// Adopted steps that ended while no engine watched, with when (their supervisor recorded
    /// it): their `step_finished` is timed to then, not to the resume that reads it.
    ended_away: BTreeMap<usize, Duration>,
}

impl Machine {
    /// `run --max-parallel`: how many steps, and hosts of a step, run at once.
    pub fn max_parallel(&self) -> Option<usize> {
        self.cfg.max_parallel
    }

    pub fn new(plan: Arc<Plan>, cfg: Config, mask: Masker) -> Self {
        let n = plan.steps.len();
        let env_value = Value::from(
            cfg.env
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect::<BTreeMap<String, Value>>(),
        );
        let groups = calls::GroupWatch::all(plan.calls.len());
        let mut machine = Machine {
            escalated: vec![false; plan.escalation.len()],
            runtime: vec![
                StepRuntime {
                    state: StepState::Pending,
                    first_started: None,
                    warned: false,
                    breached: false,
                    outputs: BTreeMap::new(),
                    masked_outputs: BTreeSet::new(),
                    decided: None,
                    real_time: None,
                    pages: Vec::new(),
                    request: None,
                };
                n
            ],
            cfg,
            mask,
            running: 0,
            aborting: false,
            cleanup: false,
            finally_order: plan
                .order
                .iter()
                .copied()
                .filter(|&i| plan.steps[i].finally)
                .collect(),
            failed: None,
            continued: Vec::new(),
            stopping: None,
            at_risk: false,
            notifying: 0,
            work_ended: None,
            last_projection: Duration::ZERO,
            done: false,
            env_value,
            frontier: Frontier::new(&plan),
            recovery: finally::projected_steps(&plan),
            restored: None,
            plan,
            epoch: None,
            conditions: BTreeMap::new(),
            groups,
            ended_away: BTreeMap::new(),
        };
        // A resumed run's plan has its loops over outputs expanded as the journal says.
        if machine
            .plan
            .output_loops
            .values()
            .any(|l| l.items.is_some())
        {
            machine.settle_expanded();
        }
        machine
    }

    /// Frontier the wall-clock time of elapsed zero, in which late answers are told the time.
    pub fn set_epoch(&mut self, epoch: DateTime<Utc>) {
        self.epoch = Some(epoch);
    }

    /// Every change of a step's state goes through here, which keeps [`Frontier`] and the
    /// count of running steps true.
    fn set(&mut self, i: usize, st: StepState) {
        let was = std::mem::replace(&mut self.runtime[i].state, st);
        let now = &self.runtime[i].state;
        match (
            matches!(was, StepState::Running { .. }),
            matches!(now, StepState::Running { .. }),
        ) {
            (false, true) => self.running += 1,
            (true, false) => self.running -= 1,
            _ => {}
        }
        if now.is_active() {
            self.frontier.active.insert(i);
        } else {
            self.frontier.active.remove(&i);
        }
        let (was_done, done) = (
            matches!(was, StepState::Done(_)),
            matches!(now, StepState::Done(_)),
        );
        debug_assert!(
            !was_done || done,
            "a finished step never runs again in one machine"
        );
        let in_frontier = self.frontier.unmet[i] == 0 && !was_done;
        let (was_pending, pending) = (
            matches!(was, StepState::Pending),
            matches!(now, StepState::Pending),
        );
        if in_frontier && was_pending != pending {
            self.frontier.count_pending(&self.plan, i, pending);
        }
        if done && !was_done {
            if in_frontier {
                self.frontier.members.remove(&self.frontier.position[i]);
                self.frontier
                    .member_gates
                    .remove(&self.frontier.position[i]);
            }
            for k in 0..self.frontier.dependents[i].len() {
                let d = self.frontier.dependents[i][k];
                self.frontier.unmet[d] -= 1;
                if self.frontier.unmet[d] == 0
                    && !matches!(self.runtime[d].state, StepState::Done(_))
                {
                    let pending = matches!(self.runtime[d].state, StepState::Pending);
                    self.frontier.enter(&self.plan, d, pending);
                }
            }
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The plan, shared: a loop over an output grows it mid-run, and the driver follows.
    pub fn plan_arc(&self) -> Arc<Plan> {
        self.plan.clone()
    }

    /// Steps whose gate is open now, by index.
    pub fn open_gates(&self) -> Vec<usize> {
        (0..self.runtime.len())
            .filter(|&i| matches!(self.runtime[i].state, StepState::Waiting { .. }))
            .collect()
    }

    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Effect> {
        self.handle_all(now, vec![input])
    }

    /// Several inputs of one instant, then one look at the clock: a resume's steps that
    /// ended while no engine watched all end before any of them is judged against the
    /// resume's clock (still running, each would be past its budget or its timeout).
    pub fn handle_all(&mut self, now: Duration, inputs: Vec<Input>) -> Vec<Effect> {
        let mut out = Vec::new();
        let mut applied = false;
        for input in inputs {
            // An answer is still answered once the run is over: it is told it came late.
            if self.done && !matches!(input, Input::Answer { .. }) {
                continue;
            }
            applied = true;
            self.apply(now, input, &mut out);
        }
        if !applied {
            return out;
        }
        self.clock(now, &mut out);
        self.schedule(now, &mut out);
        self.finish_if_over(now, &mut out);
        out
    }

    fn apply(&mut self, now: Duration, input: Input, out: &mut Vec<Effect>) {
        match input {
            Input::Start => {
                self.last_projection = now;
                if self.restored.is_none() {
                    self.fire_escalations(now, out);
                }
            }
            Input::Tick => {}
            Input::Requested { step, hash } => self.requested(now, step, hash, out),
            Input::Exited {
                step,
                attempt,
                result,
                outputs,
            } => self.exited(now, step, attempt, result, outputs, out),
            Input::Answer {
                step,
                by,
                approve,
                comment,
                value,
                signed,
            } => self.answer(now, &step, by, approve, (comment, value), signed, out),
            Input::Notified {
                channel,
                reason,
                message,
                failed,
            } => self.notified(channel, reason, message, failed, out),
            Input::Fault {
                reason,
                lost,
                not_started,
            } => self.fault(reason, lost, not_started, out),
            // Every step has ended and only notifications are still being sent: the run
            // ends as it ended, without them, rather than as interrupted.
            Input::Interrupt if self.work_ended.is_some() => self.notifying = 0,
            Input::Interrupt => self.interrupt(out),
        }
    }

    /// Step `i`'s end with nothing to tell but its status: callers fill in what they know
    /// (exit code, duration, error), so every `step_finished` the machine writes has one shape.
    fn finished_event(&self, i: usize, status: StepStatus, attempt: u32) -> StepFinished {
        StepFinished::new(self.plan.steps[i].id.clone(), status, attempt)
            .with_condition(self.conditions.get(&i).cloned())
    }
}

enum Work<'a> {
    Command,
    Gate(&'a Approval),
}

fn work_of(step: &Step) -> Work<'_> {
    match &step.kind {
        StepKind::Command(_) => Work::Command,
        StepKind::Approval(a) => Work::Gate(a),
    }
}

#[cfg(test)]
mod tests;
