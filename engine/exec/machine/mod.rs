//! The executor's state machine: `handle(now, input) -> actions`.
//!
//! Everything that can happen — a step exited, a timer fired, an approval arrived, Ctrl-C —
//! arrives as an [`Input`] with the run clock's `now`; the machine answers with [`Action`]s:
//! events to journal, processes to spawn or kill, notifications to send. It owns no process,
//! no file and no clock, so every timing rule is tested exactly on a virtual clock. Its place
//! in the flow, its inputs and actions: docs/design.md ("The state machine").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use minijinja::value::Value;

use super::mask::Masker;
use crate::compile::{Action as StepAction, Approval, Drill, Plan, Step, longest_path};
use crate::journal::*;
use crate::runbook::OnFailure;
use crate::template::{self, Quoting};
use crate::units::fmt_duration;

/// How the run was asked to go.
#[derive(Clone, Debug)]
pub struct Config {
    /// The run's id, for what the machine tells people (`runbook approve RUN ...`).
    pub run_id: String,
    pub mode: Mode,
    pub max_parallel: Option<usize>,
    /// `--yes` in effect: gates are granted at once in this name.
    pub auto_approve_as: Option<String>,
    /// A real run (not a sandbox's): `--yes --as NAME` is NAME's approval, one person's, so a
    /// gate with `min: 2` still waits for someone else.
    pub yes_is_one_approval: bool,
    /// Variables after `--env` and `--var`.
    pub vars: BTreeMap<String, String>,
    /// The operator's environment, as templates see it under `env`.
    pub env: BTreeMap<String, String>,
    /// Dry-runs: how long each step takes (by step index); default: its likely estimate.
    pub durations: Option<Vec<Duration>>,
    /// A drill in a rehearsal environment (`rehearsal: true`): a `mock` step runs its real
    /// command there, the dangerous path rehearsed on a throwaway copy of production.
    pub rehearsal: bool,
}

/// Something that happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Begin (or continue, after a resume): start what is ready.
    Start,
    /// A step's process (or simulation) ended.
    Exited {
        step: usize,
        attempt: u32,
        result: ExitResult,
        outputs: BTreeMap<String, String>,
    },
    /// A timer fired: the machine looks at the clock.
    Tick,
    /// An approval or denial, from the terminal or from `runbook approve`.
    Answer {
        step: String,
        by: String,
        approve: bool,
        comment: Option<String>,
    },
    /// A notify command finished; `failed` says how, when it did not succeed.
    Notified {
        channel: String,
        reason: String,
        message: String,
        failed: Option<NotifyFailure>,
    },
    /// Ctrl-C (or SIGTERM): stop starting steps and stop the running ones.
    Interrupt,
    /// The step supervisor died: stop, resumable, without killing a step or calling it
    /// failed. No new step starts; the running ones the engine still sees end as usual (it
    /// watches them in the supervisor's place). Those it cannot see (`lost`: their pid never
    /// came) are left in flight, for `resume` to adopt or to take their recorded end; those it
    /// could not start (`not_started`) are journaled interrupted.
    Fault {
        reason: String,
        lost: Vec<usize>,
        not_started: Vec<usize>,
    },
}

/// How a notify command failed, as `escalated` records it (see [`Escalated`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyFailure {
    /// `exit 3`, `killed by signal 9`, `timed out after 30s`, `cannot run: REASON`.
    pub error: String,
    pub exit_code: Option<i32>,
    /// The last lines of its stderr.
    pub stderr_tail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitResult {
    Code(i32),
    Signal(i32),
    /// The process could not be started, or its command could not be rendered.
    Error(String),
    /// The process ended unseen (adopted after its supervisor died): how is not known.
    Unknown(String),
}

/// Something to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Journal this event (and show it to the observers).
    Record(EventKind),
    /// Start a step's process. The command is rendered, secrets in clear: the journal has it
    /// masked (`step_started`), and the supervisor masks what the step prints.
    Spawn {
        step: usize,
        attempt: u32,
        command: String,
        env: Vec<(String, String)>,
        hosts: Vec<String>,
    },
    /// Dry-runs and mocks with a duration: report the step exited 0 after this long.
    Simulate {
        step: usize,
        attempt: u32,
        after: Duration,
    },
    /// Terminate a step's process group (SIGTERM, grace, SIGKILL).
    Kill { step: usize },
    /// Run a notify command; its result comes back as [`Input::Notified`].
    Notify {
        channel: String,
        reason: String,
        command: String,
        message: String,
    },
    /// A gate opened: ask on the terminal if there is one.
    Ask { step: usize },
    /// The run is over.
    Done(Outcome),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step succeeded (or was skipped or simulated in a drill), or failed with
    /// `on_failure: continue` (the journal's `run_finished` names them).
    Succeeded { rto_met: bool },
    /// A step failed or a gate was denied. `rto_met` is always false: the run did not recover.
    Failed { rto_met: bool },
    /// Interrupted or stopped at a gate: resumable.
    Stopped,
}

#[derive(Clone, Debug, PartialEq)]
enum St {
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
    },
    Done(StepStatus),
}

impl St {
    /// Running, waiting at a gate or backing off: what the clock looks at.
    fn is_active(&self) -> bool {
        matches!(
            self,
            St::Running { .. } | St::Waiting { .. } | St::Backoff { .. }
        )
    }

    /// A fresh attempt, neither being killed nor timed out.
    fn running(attempt: u32, since: Duration) -> St {
        St::Running {
            attempt,
            since,
            killing: false,
            timed_out: false,
        }
    }
}

#[derive(Clone, Debug)]
struct Rt {
    st: St,
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
    real: Option<Duration>,
    /// Gates: pages to approver roles whose time has not come yet.
    pages: Vec<Page>,
}

/// A waiting gate's page to one of its approver roles, held until that role's time comes:
/// the plan's escalation path says who is called when, and a gate must not call the CTO at
/// minute 0 when the path says minute 60.
#[derive(Clone, Debug)]
struct Page {
    channel: String,
    /// On the run clock, from the gate's own `page_after:`; else the escalation schedule
    /// decides.
    at: Option<Duration>,
    message: String,
}

pub struct Machine {
    plan: Arc<Plan>,
    cfg: Config,
    mask: Masker,
    rt: Vec<Rt>,
    /// Steps in `St::Running`, kept by [`Machine::set`]: what `--max-parallel` counts.
    running: usize,
    aborting: bool,
    /// The run failed: the first step whose failure ended the recovery (see
    /// [`Machine::note_failure`]).
    failed: Option<usize>,
    /// Steps that failed with `on_failure: continue`: the run went on, and can still succeed.
    continued: Vec<usize>,
    /// Why we are stopping (resumable), if we are.
    stopping: Option<String>,
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
    sets: Sets,
    /// Wall-clock time of elapsed zero, when the run has one: a late answer is told when its
    /// gate was decided in the time people read, not the run's clock.
    epoch: Option<DateTime<Utc>>,
    /// Which steps count against the RTO (with `rto_ends_at`, that step and those upstream of
    /// it; else all), by index.
    recovery: Vec<bool>,
    /// When the `rto_ends_at` step succeeded: service was restored, the RTO clock stopped, and
    /// what runs now is observation, which no longer projects, escalates or risks the RTO.
    restored: Option<Duration>,
}

/// Indexes over the steps' states.
struct Sets {
    /// Running, waiting at a gate or backing off, by step index.
    active: BTreeSet<usize>,
    /// Unfinished steps whose needs have all finished, by position in `plan.order`: those
    /// that can start, and those that decide the projection (everything below an unfinished
    /// step is still pending).
    frontier: BTreeSet<usize>,
    /// The gates among them: they start even when `--max-parallel` holds commands back.
    frontier_gates: BTreeSet<usize>,
    /// The pending steps of the frontier, by the longest path of budgets they start: their
    /// share of the projection, which only changes when they start or finish.
    pending_paths: BTreeMap<Duration, usize>,
    /// Per step: its needs not yet finished, its position in `plan.order`, the steps that
    /// need it, and the longest path of budgets below it.
    unmet: Vec<usize>,
    pos: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    below: Vec<Duration>,
    /// Steps that count against the RTO (see [`Machine::recovery`]): only they project.
    recovery: Vec<bool>,
}

impl Sets {
    fn new(plan: &Plan) -> Self {
        let n = plan.steps.len();
        let dependents = plan.dependents();
        let mut pos = vec![0; n];
        for (p, &i) in plan.order.iter().enumerate() {
            pos[i] = p;
        }
        // The path below a step that counts against the RTO: with `rto_ends_at`, down to that
        // step, never into the observation after it.
        let recovery = plan.recovery_steps();
        let mut below = vec![Duration::ZERO; n];
        for &i in plan.order.iter().rev() {
            below[i] = dependents[i]
                .iter()
                .filter(|&&d| recovery[d])
                .map(|&d| plan.steps[d].budget + below[d])
                .max()
                .unwrap_or_default();
        }
        let mut sets = Sets {
            active: BTreeSet::new(),
            frontier: BTreeSet::new(),
            frontier_gates: BTreeSet::new(),
            pending_paths: BTreeMap::new(),
            unmet: plan.steps.iter().map(|s| s.needs.len()).collect(),
            pos,
            dependents,
            below,
            recovery,
        };
        for i in 0..n {
            if sets.unmet[i] == 0 {
                sets.enter(plan, i, true);
            }
        }
        sets
    }

    /// Step `i`, unfinished, joins the frontier: its last need has finished.
    fn enter(&mut self, plan: &Plan, i: usize, pending: bool) {
        self.frontier.insert(self.pos[i]);
        if plan.steps[i].is_gate() {
            self.frontier_gates.insert(self.pos[i]);
        }
        if pending {
            self.count_pending(plan, i, true);
        }
    }

    fn count_pending(&mut self, plan: &Plan, i: usize, add: bool) {
        if !self.recovery[i] {
            return;
        }
        let path = plan.steps[i].budget + self.below[i];
        if add {
            *self.pending_paths.entry(path).or_default() += 1;
        } else if let Some(c) = self.pending_paths.get_mut(&path) {
            *c -= 1;
            if *c == 0 {
                self.pending_paths.remove(&path);
            }
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);
/// A step breaches when it runs *past* its budget: one that takes exactly its budget (as a
/// dry-run step does when its estimate is its budget) is on budget.
const BREACH_AFTER: Duration = Duration::from_millis(1);

impl Machine {
    pub fn new(plan: Arc<Plan>, cfg: Config, mask: Masker) -> Self {
        let n = plan.steps.len();
        let env_value = Value::from(
            cfg.env
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect::<BTreeMap<String, Value>>(),
        );
        Machine {
            escalated: vec![false; plan.escalation.len()],
            rt: vec![
                Rt {
                    st: St::Pending,
                    first_started: None,
                    warned: false,
                    breached: false,
                    outputs: BTreeMap::new(),
                    masked_outputs: BTreeSet::new(),
                    decided: None,
                    real: None,
                    pages: Vec::new(),
                };
                n
            ],
            cfg,
            mask,
            running: 0,
            aborting: false,
            failed: None,
            continued: Vec::new(),
            stopping: None,
            at_risk: false,
            notifying: 0,
            work_ended: None,
            last_projection: Duration::ZERO,
            done: false,
            env_value,
            sets: Sets::new(&plan),
            recovery: plan.recovery_steps(),
            restored: None,
            plan,
            epoch: None,
        }
    }

    /// Sets the wall-clock time of elapsed zero, in which late answers are told the time.
    pub fn set_epoch(&mut self, epoch: DateTime<Utc>) {
        self.epoch = Some(epoch);
    }

    /// Gate `i` was decided: remembered for the answers that come after.
    fn decide(&mut self, i: usize, by: Vec<String>, decision: GateDecision, now: Duration) {
        self.rt[i].decided.get_or_insert((by, decision, now));
    }

    /// Every change of a step's state goes through here, which keeps [`Sets`] and the
    /// count of running steps true.
    fn set(&mut self, i: usize, st: St) {
        let was = std::mem::replace(&mut self.rt[i].st, st);
        let now = &self.rt[i].st;
        match (
            matches!(was, St::Running { .. }),
            matches!(now, St::Running { .. }),
        ) {
            (false, true) => self.running += 1,
            (true, false) => self.running -= 1,
            _ => {}
        }
        if now.is_active() {
            self.sets.active.insert(i);
        } else {
            self.sets.active.remove(&i);
        }
        let (was_done, done) = (matches!(was, St::Done(_)), matches!(now, St::Done(_)));
        debug_assert!(
            !was_done || done,
            "a finished step never runs again in one machine"
        );
        let in_frontier = self.sets.unmet[i] == 0 && !was_done;
        let (was_pending, pending) = (matches!(was, St::Pending), matches!(now, St::Pending));
        if in_frontier && was_pending != pending {
            self.sets.count_pending(&self.plan, i, pending);
        }
        if done && !was_done {
            if in_frontier {
                self.sets.frontier.remove(&self.sets.pos[i]);
                self.sets.frontier_gates.remove(&self.sets.pos[i]);
            }
            for k in 0..self.sets.dependents[i].len() {
                let d = self.sets.dependents[i][k];
                self.sets.unmet[d] -= 1;
                if self.sets.unmet[d] == 0 && !matches!(self.rt[d].st, St::Done(_)) {
                    let pending = matches!(self.rt[d].st, St::Pending);
                    self.sets.enter(&self.plan, d, pending);
                }
            }
        }
    }

    /// Continues a run from its journal: finished steps stay finished (their outputs kept),
    /// escalations already sent are not sent again. Steps that were in flight are left
    /// pending: the caller decides to adopt, re-run or ask, before [`Input::Start`].
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
            self.rt[i].outputs = kept;
            self.rt[i].masked_outputs = masked.into_keys().collect();
            self.rt[i].warned = s.warned;
            self.rt[i].breached = s.breached;
            if s.gate && s.status.is_some() {
                let at = Duration::from_millis(s.finished_ms.unwrap_or_default());
                if let Some(by) = &s.denied_by {
                    self.rt[i].decided = Some((vec![by.clone()], GateDecision::Denied, at));
                } else if !s.approved_by.is_empty() {
                    let by = s.approved_by.clone();
                    self.rt[i].decided = Some((by, GateDecision::Approved, at));
                }
            }
            // A step that finished stays finished, failed ones too: resume never re-runs a
            // finished step. Interrupted ones run again; one that failed and was to be tried
            // again has no status yet, and is.
            if st_ok(s.status) && self.plan.rto_ends_at == Some(i) {
                self.restored = s.finished_ms.map(Duration::from_millis);
            }
            match s.status {
                Some(st) if st.is_ok() => self.set(i, St::Done(st)),
                Some(st @ (StepStatus::Failed | StepStatus::TimedOut)) => {
                    self.set(i, St::Done(st));
                    self.note_failure(i, st);
                }
                _ => {}
            }
        }
        // The escalation schedule's own notifications: a gate's page to its approvers (reason
        // `approval_requested`) is not one of its entries.
        let fired: Vec<&str> = state
            .escalations
            .iter()
            .filter(|(_, e)| e.reason != "approval_requested")
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

    /// Marks an in-flight step adopted on resume: it is running under its old process.
    pub fn adopt(&mut self, step: usize, attempt: u32, since: Duration) {
        self.set(step, St::running(attempt, since));
        self.rt[step].first_started.get_or_insert(since);
    }

    /// Takes a step whose outcome was lost as succeeded, on the operator's word (resume
    /// `--mark-done`); the caller journals it.
    pub fn mark_done(&mut self, step: usize) {
        self.set(step, St::Done(StepStatus::Succeeded));
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Steps whose gate is open now, by index.
    pub fn open_gates(&self) -> Vec<usize> {
        (0..self.rt.len())
            .filter(|&i| matches!(self.rt[i].st, St::Waiting { .. }))
            .collect()
    }

    /// The earliest instant at which the machine wants a [`Input::Tick`].
    pub fn next_wake(&self) -> Option<Duration> {
        if self.done {
            return None;
        }
        let mut wake: Option<Duration> = None;
        let mut at = |t: Duration| wake = Some(wake.map_or(t, |w| w.min(t)));
        let busy = !self.sets.active.is_empty();
        for &i in &self.sets.active {
            let step = &self.plan.steps[i];
            match &self.rt[i].st {
                St::Running { since, killing, .. } => {
                    if let (Some(t), false) = (step.timeout, *killing) {
                        at(*since + t);
                    }
                    if let (Some(p), Some(first), false) =
                        (step.poll, self.rt[i].first_started, *killing)
                    {
                        at(first + p.within);
                    }
                    self.budget_wakes(i, &mut at);
                }
                St::Waiting { since, .. } => {
                    if let Action_::Gate(a) = action_of(step)
                        && let Some(t) = a.timeout
                    {
                        at(*since + t);
                    }
                    self.budget_wakes(i, &mut at);
                }
                St::Backoff { until, .. } => at(*until),
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
            for &i in &self.sets.active {
                for p in &self.rt[i].pages {
                    if let Some(t) = self.page_time(p) {
                        at(t);
                    }
                }
            }
            if self.restored.is_none() {
                at(self.last_projection + MINUTE);
            }
            // An active step counts what is left of its budget; once over it, the projection
            // is now plus the path below it, which passes the target at this instant.
            if !self.at_risk && self.restored.is_none() {
                for &i in self.sets.active.iter().filter(|&&i| self.recovery[i]) {
                    if let Some(t) = self.plan.rto.checked_sub(self.sets.below[i]) {
                        at(t + Duration::from_millis(1));
                    }
                }
            }
        }
        wake
    }

    /// A gate in a dry-run takes its estimate on the virtual clock: that is no one late, so
    /// its budget is not watched (no warning, no breach).
    fn budget_watched(&self, i: usize) -> bool {
        !(self.cfg.mode == Mode::DryRun && self.plan.steps[i].is_gate())
    }

    fn budget_wakes(&self, i: usize, at: &mut impl FnMut(Duration)) {
        let rt = &self.rt[i];
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

    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        // An answer is still answered once the run is over: it is told it came late.
        if self.done && !matches!(input, Input::Answer { .. }) {
            return out;
        }
        match input {
            Input::Start => {
                self.last_projection = now;
                if self.restored.is_none() {
                    self.fire_escalations(now, &mut out);
                }
            }
            Input::Tick => {}
            Input::Exited {
                step,
                attempt,
                result,
                outputs,
            } => self.exited(now, step, attempt, result, outputs, &mut out),
            Input::Answer {
                step,
                by,
                approve,
                comment,
            } => self.answer(now, &step, by, approve, comment, &mut out),
            Input::Notified {
                channel,
                reason,
                message,
                failed,
            } => {
                self.notifying = self.notifying.saturating_sub(1);
                let failed = failed.map(|f| NotifyFailure {
                    error: self.mask.mask(&f.error),
                    exit_code: f.exit_code,
                    stderr_tail: f.stderr_tail.map(|t| self.mask.mask(&t)),
                });
                out.push(Action::Record(EventKind::Escalated(Escalated {
                    channel,
                    reason,
                    message: self.mask.mask(&message),
                    ok: failed.is_none(),
                    exit_code: failed.as_ref().and_then(|f| f.exit_code),
                    error: failed.as_ref().map(|f| f.error.clone()),
                    stderr_tail: failed.and_then(|f| f.stderr_tail),
                })))
            }
            Input::Fault {
                reason,
                lost,
                not_started,
            } => {
                if self.stopping.is_none() {
                    self.stopping = Some(reason);
                }
                for i in lost {
                    if matches!(self.rt[i].st, St::Running { .. }) {
                        self.set(i, St::Pending);
                    }
                }
                for i in not_started {
                    if let St::Running { attempt, .. } = self.rt[i].st {
                        out.push(Action::Record(EventKind::StepFinished(StepFinished {
                            step: self.plan.steps[i].id.clone(),
                            status: StepStatus::Interrupted,
                            attempt,
                            exit_code: None,
                            signal: None,
                            duration_ms: 0,
                            will_retry: false,
                            error: Some("not started: the step supervisor was gone".into()),
                            marked_done_by: None,
                            next_in_ms: None,
                        })));
                        self.set(i, St::Pending);
                    }
                }
            }
            // Every step has ended and only notifications are still being sent: the run
            // ends as it ended, without them, rather than as interrupted.
            Input::Interrupt if self.work_ended.is_some() => self.notifying = 0,
            Input::Interrupt => {
                if self.stopping.is_none() {
                    self.stopping = Some("signal".into());
                }
                for i in 0..self.rt.len() {
                    if let St::Running { killing, .. } = &mut self.rt[i].st
                        && !*killing
                    {
                        *killing = true;
                        out.push(Action::Kill { step: i });
                    }
                }
            }
        }
        self.clock(now, &mut out);
        self.schedule(now, &mut out);
        self.finish_if_over(now, &mut out);
        out
    }

    /// Timers: budgets, timeouts, gate timeouts, backoffs, escalations, the projection.
    fn clock(&mut self, now: Duration, out: &mut Vec<Action>) {
        let active: Vec<usize> = self.sets.active.iter().copied().collect();
        for i in active {
            let step = &self.plan.steps[i];
            let budget = step.budget;
            if let Some(start) = self.rt[i].first_started
                && self.rt[i].st.is_active()
                && self.budget_watched(i)
            {
                let elapsed = now.saturating_sub(start);
                let ev = || BudgetEvent {
                    step: step.id.clone(),
                    elapsed_ms: elapsed.as_millis() as u64,
                    budget_ms: budget.as_millis() as u64,
                };
                if !self.rt[i].warned && elapsed >= budget.mul_f64(0.8) {
                    self.rt[i].warned = true;
                    out.push(Action::Record(EventKind::BudgetWarning(ev())));
                }
                if !self.rt[i].breached && elapsed >= budget + BREACH_AFTER {
                    self.rt[i].breached = true;
                    out.push(Action::Record(EventKind::BudgetBreached(ev())));
                }
            }
            let poll_closes = step
                .poll
                .zip(self.rt[i].first_started)
                .map(|(p, first)| first + p.within);
            match &mut self.rt[i].st {
                // Its timeout, or the end of its poll window, has come.
                St::Running {
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
                    out.push(Action::Kill { step: i });
                }
                St::Waiting { since, .. } => {
                    let since = *since;
                    if let Action_::Gate(a) = action_of(step)
                        && let Some(t) = a.timeout
                        && now >= since + t
                    {
                        let wait = now - since;
                        out.push(Action::Record(EventKind::ApprovalTimedOut(
                            ApprovalTimedOut {
                                step: step.id.clone(),
                                wait_ms: wait.as_millis() as u64,
                            },
                        )));
                        // A gate never passes silently: the run stops, resumable.
                        self.set(i, St::Pending);
                        if self.stopping.is_none() {
                            self.stopping = Some("approval_timed_out".into());
                        }
                    }
                }
                // A run that stops or aborts makes no new attempt, and does not wait out the
                // backoff to say so: Ctrl-C during a 60 s backoff stops the run at once.
                St::Backoff { .. } if self.aborting || self.stopping.is_some() => {
                    self.set(i, St::Pending);
                }
                St::Backoff { attempt, until } if now >= *until => {
                    let attempt = *attempt;
                    self.start_attempt(now, i, attempt, out);
                }
                _ => {}
            }
        }
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
                .sets
                .active
                .iter()
                .copied()
                .filter(|&i| !self.rt[i].pages.is_empty())
                .collect();
            for i in paging {
                self.send_due_pages(i, now, out);
            }
        }
    }

    fn fire_escalations(&mut self, now: Duration, out: &mut Vec<Action>) {
        for k in 0..self.plan.escalation.len() {
            if !self.escalated[k] && now >= self.plan.escalation[k].after {
                self.escalate(k, now, "schedule", out);
            }
        }
    }

    /// How a message begins: a rehearsal must never read like a real incident on the channel
    /// it reaches.
    fn tag(&self) -> &'static str {
        match self.cfg.mode {
            Mode::Real => "[runbook]",
            Mode::Drill => "[runbook DRILL — not a real incident]",
            Mode::DryRun => "[runbook DRY-RUN — not a real incident]",
        }
    }

    /// A gate that waits for people pages them: each of its approvers that is also a notify
    /// channel (a role and its channel share a name: `devops-lead`), in escalation order. A
    /// role the schedule names hears of it once the schedule reaches it (now, if it has), a
    /// role it does not name at once, and the gate's `page_after:` overrides both.
    fn page_approvers(&mut self, i: usize, prompt: &str, now: Duration, out: &mut Vec<Action>) {
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
    fn page_time(&self, p: &Page) -> Option<Duration> {
        p.at.or_else(|| {
            self.plan
                .escalation
                .iter()
                .filter(|e| e.channel == p.channel)
                .map(|e| e.after)
                .min()
        })
    }

    fn page_due(&self, p: &Page, now: Duration) -> bool {
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
    fn send_due_pages(&mut self, i: usize, now: Duration, out: &mut Vec<Action>) {
        let pages = std::mem::take(&mut self.rt[i].pages);
        let (due, later): (Vec<Page>, Vec<Page>) =
            pages.into_iter().partition(|p| self.page_due(p, now));
        self.rt[i].pages = later;
        for p in due {
            self.notify(p.channel, "approval_requested", p.message, out);
        }
    }

    fn escalate(&mut self, k: usize, now: Duration, reason: &str, out: &mut Vec<Action>) {
        self.escalated[k] = true;
        let channel = self.plan.escalation[k].channel.clone();
        let tag = self.tag();
        let message = match reason {
            "rto_at_risk" => format!(
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
    fn notify(&mut self, channel: String, reason: &str, message: String, out: &mut Vec<Action>) {
        let Some(tmpl) = self.plan.notify.get(&channel) else {
            return;
        };
        // A notify command sees what a step's command does (vars, env), and the message.
        let mut ctx = self.context(false);
        ctx.insert("message".into(), Value::from(message.clone()));
        match template::render(tmpl, Quoting::Shell, &Value::from(ctx)) {
            Ok(command) => {
                self.notifying += 1;
                out.push(Action::Notify {
                    channel,
                    reason: reason.into(),
                    command,
                    message,
                })
            }
            Err(e) => out.push(Action::Record(EventKind::Escalated(Escalated {
                channel,
                reason: reason.into(),
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
    fn past_target(&self, projected: Duration) -> bool {
        projected.as_millis() > self.plan.rto.as_millis()
    }

    /// Looks at the projected finish ([`Machine::projected_finish`]; a drill's is a real
    /// run's) — called when a step ends, every minute, and the moment the projection passes
    /// the target (see `clock`). The first time it is past the RTO, `rto_at_risk` is journaled
    /// with the path that decides it and the next escalation not yet sent goes out early;
    /// it is said again only after the projection came back within the target. Once the
    /// `rto_ends_at` step has succeeded the RTO clock has stopped, and nothing is at risk.
    /// (docs/design.md, "The state machine".)
    fn project(&mut self, now: Duration, out: &mut Vec<Action>) {
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
                out.push(Action::Record(EventKind::RtoAtRisk(RtoAtRisk {
                    projected_ms: projected.as_millis() as u64,
                    target_ms: self.plan.rto.as_millis() as u64,
                    path: path
                        .iter()
                        .map(|&i| self.plan.steps[i].id.clone())
                        .collect(),
                })));
                if let Some(k) = self.escalated.iter().position(|e| !e) {
                    self.escalate(k, now, "rto_at_risk", out);
                }
            }
        } else {
            self.at_risk = false;
        }
    }

    /// The projected finish: now plus the longest remaining path of budgets. Every step below
    /// an unfinished one is still pending, so that path starts on the frontier: at a pending
    /// step (its path is fixed) or an active one (what its budget has left, and the path
    /// below it). [`Machine::projection`] finds the same instant the long way, with the path.
    pub fn projected_finish(&self, now: Duration) -> Duration {
        if self.cfg.mode == Mode::Drill {
            return self.projection(now).0;
        }
        let pending = self.sets.pending_paths.last_key_value().map(|(d, _)| *d);
        if let Some(t) = self.restored {
            return t;
        }
        let active = self
            .sets
            .active
            .iter()
            .filter(|&&i| self.sets.unmet[i] == 0 && self.recovery[i])
            .map(|&i| self.weight(i, now) + self.sets.below[i]);
        now + active.chain(pending).max().unwrap_or_default()
    }

    /// What is left of step `i`'s budget. In a drill, what the step takes in a real run,
    /// finished or not: a drill's clock runs at drill speed, and its projection is a real run's.
    fn weight(&self, i: usize, now: Duration) -> Duration {
        // The observation after `rto_ends_at` is not part of the recovery it projects.
        if !self.recovery[i] {
            return Duration::ZERO;
        }
        let step = &self.plan.steps[i];
        let budget = step.budget;
        let drill = self.cfg.mode == Mode::Drill;
        let used = || {
            self.rt[i]
                .first_started
                .map_or(Duration::ZERO, |s| now.saturating_sub(s))
        };
        match &self.rt[i].st {
            // Restored by a resume, or never run: its budget if a gate, else its estimate.
            St::Done(_) if drill => self.rt[i].real.unwrap_or(if step.is_gate() {
                budget
            } else {
                step.estimate.likely
            }),
            St::Done(_) => Duration::ZERO,
            St::Pending => budget,
            _ if drill => budget.max(used()),
            _ => budget.saturating_sub(used()),
        }
    }

    /// Drills: what finished step `i` would have taken in a real run. A step whose real
    /// command ran took what it took; a drill variant, a mocked or a skipped step the real
    /// step's estimate; a gate its wait, or its budget when `--yes` granted it at once.
    fn real_duration(&self, i: usize, now: Duration) -> Duration {
        let step = &self.plan.steps[i];
        let took = self.rt[i]
            .first_started
            .map_or(Duration::ZERO, |s| now.saturating_sub(s));
        if step.is_gate() {
            if took.is_zero() { step.budget } else { took }
        } else if matches!(self.how(step), How::Run("run" | "rehearsal")) {
            took
        } else {
            step.estimate.likely
        }
    }

    /// (projected finish, the remaining steps on the path that decides it). In a drill, the
    /// finish of a real run: the longest path with every step at its real duration.
    pub fn projection(&self, now: Duration) -> (Duration, Vec<usize>) {
        let weights: Vec<Duration> = (0..self.rt.len()).map(|i| self.weight(i, now)).collect();
        let needs: Vec<&[usize]> = self.plan.steps.iter().map(|s| s.needs.as_slice()).collect();
        let (path, rest) = longest_path(&weights, &needs, &self.plan.order);
        if self.cfg.mode == Mode::Drill {
            let path = path
                .into_iter()
                .filter(|&i| !matches!(self.rt[i].st, St::Done(_)))
                .collect();
            return (rest, path);
        }
        let path = path
            .into_iter()
            .filter(|&i| !weights[i].is_zero())
            .collect();
        (now + rest, path)
    }

    /// Starts every ready step, in plan order, within `--max-parallel`.
    fn schedule(&mut self, now: Duration, out: &mut Vec<Action>) {
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

    fn start_attempt(&mut self, now: Duration, i: usize, attempt: u32, out: &mut Vec<Action>) {
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

    /// A template that did not render names what it missed: the outputs it takes from steps
    /// upstream that they did not write, and why a step wrote none.
    fn explain_render_error(&self, step: &Step, error: String) -> String {
        let mut sources: Vec<&str> = step.env.values().map(String::as_str).collect();
        if let StepAction::Command(cmd) = &step.action {
            sources.push(&cmd.template);
            sources.extend(cmd.inputs.iter().flatten().map(|(_, v)| v.as_str()));
        }
        match &step.drill {
            Drill::Command { template, .. } => sources.push(template),
            Drill::With(with) => sources.extend(with.values().map(String::as_str)),
            _ => {}
        }
        let mut missing = Vec::new();
        for (id, key) in sources.iter().flat_map(|s| output_refs(s)) {
            let Some(j) = self.plan.step_index(&id) else {
                continue;
            };
            if self.rt[j].outputs.contains_key(&key) {
                continue;
            }
            let why = match &self.rt[j].st {
                _ if self.rt[j].masked_outputs.contains(&key) => {
                    " in this resumed run: its value held a secret, which the journal keeps masked (start a new run, or pass the secret in the environment instead)"
                }
                St::Done(StepStatus::Simulated) => {
                    " (it was mocked in this drill: give it a `drill:` command that writes it)"
                }
                St::Done(StepStatus::Skipped) => " (it was skipped in this drill)",
                _ => "",
            };
            let line = format!("step `{id}` wrote no output `{key}`{why}");
            if !missing.contains(&line) {
                missing.push(line);
            }
        }
        if missing.is_empty() {
            error
        } else {
            format!("{error}: {}", missing.join("; "))
        }
    }

    fn sim_duration(&self, i: usize) -> Duration {
        match &self.cfg.durations {
            Some(d) => d[i],
            None => self.plan.steps[i].estimate.likely,
        }
    }

    fn how(&self, step: &Step) -> How {
        match (self.cfg.mode, &step.drill) {
            (Mode::Real, _) => How::Run("run"),
            (Mode::DryRun, _) => How::Run("dry-run"),
            (Mode::Drill, Drill::Run) => How::Run("run"),
            (Mode::Drill, Drill::Skip) => How::Skip,
            // A rehearsal environment is a throwaway copy of production: there the dangerous
            // path a drill mocks is rehearsed for real.
            (Mode::Drill, Drill::Mock) if self.cfg.rehearsal => How::Run("rehearsal"),
            (Mode::Drill, Drill::Mock) => How::Mock,
            (Mode::Drill, Drill::Command { .. }) => How::Run("drill-command"),
            (Mode::Drill, Drill::With(_)) => How::Run("drill-with"),
        }
    }

    /// The context a step's templates see: vars, env, and the outputs of finished steps.
    fn context(&self, want_steps: bool) -> BTreeMap<String, Value> {
        let mut ctx: BTreeMap<String, Value> = self
            .cfg
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        ctx.insert("env".into(), self.env_value.clone());
        if want_steps && self.cfg.mode == Mode::DryRun {
            ctx.insert("steps".into(), template::placeholder_steps());
        } else if want_steps {
            let steps: BTreeMap<String, Value> = self
                .plan
                .steps
                .iter()
                .enumerate()
                .filter(|(i, _)| matches!(self.rt[*i].st, St::Done(_)))
                .map(|(i, s)| {
                    let outputs: BTreeMap<String, Value> = self.rt[i]
                        .outputs
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                        .collect();
                    (
                        s.id.clone(),
                        Value::from(BTreeMap::from([(
                            "outputs".to_owned(),
                            Value::from(outputs),
                        )])),
                    )
                })
                .collect();
            ctx.insert("steps".into(), Value::from(steps));
        }
        ctx
    }

    fn render_plain(&self, _i: usize, tmpl: &str) -> Result<String, String> {
        let ctx = Value::from(self.context(tmpl.contains("steps")));
        template::render(tmpl, Quoting::Plain, &ctx).map_err(|e| e.message)
    }

    /// The command and extra environment of a step, for the current mode.
    fn render_command(
        &self,
        i: usize,
        step: &Step,
    ) -> Result<(String, Vec<(String, String)>), String> {
        let StepAction::Command(cmd) = &step.action else {
            return Err("not a command".into());
        };
        let mut env = Vec::new();
        for (k, v) in &step.env {
            env.push((
                k.clone(),
                self.render_plain(i, v)
                    .map_err(|e| format!("env `{k}`: {e}"))?,
            ));
        }
        let drill = self.cfg.mode == Mode::Drill;
        let render_inputs =
            |overrides: Option<&BTreeMap<String, String>>| -> Result<Value, String> {
                let mut inputs = BTreeMap::new();
                for (k, v) in cmd.inputs.iter().flatten() {
                    let src = overrides.and_then(|o| o.get(k)).unwrap_or(v);
                    let val = self
                        .render_plain(i, src)
                        .map_err(|e| format!("input `{k}`: {e}"))?;
                    inputs.insert(k.clone(), Value::from(val));
                }
                Ok(Value::from(inputs))
            };
        let lib_ctx = |inputs: Value| {
            Value::from(BTreeMap::from([
                ("inputs".to_owned(), inputs),
                ("env".to_owned(), self.env_value.clone()),
            ]))
        };
        let render = |tmpl: &str, ctx: &Value| {
            template::render(tmpl, Quoting::Shell, ctx)
                .map_err(|e| format!("command: {}", e.message))
        };
        let command = match (&step.drill, drill) {
            (Drill::Command { template, library }, true) => {
                if *library {
                    render(template, &lib_ctx(render_inputs(None)?))?
                } else {
                    render(
                        template,
                        &Value::from(self.context(template.contains("steps"))),
                    )?
                }
            }
            (Drill::With(over), true) => {
                render(&cmd.template, &lib_ctx(render_inputs(Some(over))?))?
            }
            _ if cmd.inputs.is_some() => render(&cmd.template, &lib_ctx(render_inputs(None)?))?,
            _ => render(
                &cmd.template,
                &Value::from(self.context(cmd.template.contains("steps"))),
            )?,
        };
        Ok((command, env))
    }

    fn exited(
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

    /// Ends a gate: granted (succeeded) or denied (failed), journaled like any step's end.
    fn finish_step(&mut self, now: Duration, i: usize, status: StepStatus, out: &mut Vec<Action>) {
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

    fn after_finish(&mut self, now: Duration, i: usize, status: StepStatus, out: &mut Vec<Action>) {
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

    fn answer(
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

    /// A step ended without succeeding. A step with `on_failure: continue` that failed or
    /// timed out is set aside: its dependents go on, and the run can still succeed. Any other
    /// failure fails the run (and an `abort` one stops it starting steps); the first names
    /// where the recovery failed.
    fn note_failure(&mut self, i: usize, status: StepStatus) {
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

    fn finish_if_over(&mut self, now: Duration, out: &mut Vec<Action>) {
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

/// A step's journaled status lets its dependents go on.
fn st_ok(status: Option<StepStatus>) -> bool {
    status.is_some_and(StepStatus::is_ok)
}

enum How {
    Run(&'static str),
    Skip,
    Mock,
}

enum Action_<'a> {
    Command,
    Gate(&'a Approval),
}

fn action_of(step: &Step) -> Action_<'_> {
    match &step.action {
        StepAction::Command(_) => Action_::Command,
        StepAction::Approval(a) => Action_::Gate(a),
    }
}

#[cfg(test)]
mod tests;

/// The `(step, key)` of every `steps['id'].outputs.key` or `steps.id.outputs.key` in a template.
fn output_refs(src: &str) -> Vec<(String, String)> {
    let word = |s: &str| -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(s.len())
    };
    let mut refs = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("steps") {
        rest = &rest[at + "steps".len()..];
        let id = if let Some(r) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            let Some(end) = r.find(['\'', '"']) else {
                continue;
            };
            let id = &r[..end];
            rest = r[end + 1..].strip_prefix(']').unwrap_or(&r[end + 1..]);
            id
        } else if let Some(r) = rest.strip_prefix('.') {
            let n = word(r);
            rest = &r[n..];
            &r[..n]
        } else {
            continue;
        };
        let Some(r) = rest.strip_prefix(".outputs.") else {
            continue;
        };
        let n = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(r.len());
        refs.push((id.to_owned(), r[..n].to_owned()));
        rest = &r[n..];
    }
    refs
}
