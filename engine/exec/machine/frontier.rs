//! Which steps the scheduler and the projection look at: the [`Frontier`] (unfinished steps
//! whose needs have all finished), kept as steps change state so that an event costs what is
//! in flight rather than the whole plan, and the projected finish computed from it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::commands::Handling;
use super::{Machine, StepState};
use crate::compile::Plan;
use crate::dag::{self, longest_path};
use crate::journal::Mode;

/// Indexes over the steps' states, kept true by [`Machine::set`]: the frontier itself
/// (`members`), the active steps, and the per-step facts the two are computed from.
pub(super) struct Frontier {
    /// Running, waiting at a gate or backing off, by step index.
    pub(super) active: BTreeSet<usize>,
    /// Unfinished steps whose needs have all finished, by position in `plan.order`: those
    /// that can start, and those that decide the projection (everything below an unfinished
    /// step is still pending).
    pub(super) members: BTreeSet<usize>,
    /// The gates among them: they start even when `--max-parallel` holds commands back.
    pub(super) member_gates: BTreeSet<usize>,
    /// The pending steps of the frontier, by the longest path of budgets they start: their
    /// share of the projection, which only changes when they start or finish.
    pub(super) pending_paths: BTreeMap<Duration, usize>,
    /// Per step: its needs not yet finished, its position in `plan.order`, the steps that
    /// need it, and the longest path of budgets below it.
    pub(super) unmet: Vec<usize>,
    pub(super) position: Vec<usize>,
    pub(super) dependents: Vec<Vec<usize>>,
    pub(super) path_below: Vec<Duration>,
    /// Steps that count against the RTO (see [`Machine::recovery`]): only they project.
    pub(super) recovery: Vec<bool>,
}

impl Frontier {
    pub(super) fn new(plan: &Plan) -> Self {
        let n = plan.steps.len();
        let dependents = plan.dependents();
        let mut position = vec![0; n];
        for (p, &i) in plan.order.iter().enumerate() {
            position[i] = p;
        }
        // The path below a step that counts against the RTO: with `rto_ends_at`, down to that
        // step, never into the observation after it.
        let recovery = super::finally::projected_steps(plan);
        let budgets: Vec<Duration> = plan.steps.iter().map(|s| s.budget).collect();
        // A loop bounded by `max_parallel` runs in turns: the path below an instance goes
        // through the instances after it (see `compile::waits`).
        let waits = crate::compile::waits(&plan.steps);
        let waits: Vec<&[usize]> = waits.iter().map(Vec::as_slice).collect();
        let path_below =
            dag::longest_below(&budgets, &dag::dependents(&waits), &plan.order, &recovery);
        let mut frontier = Frontier {
            active: BTreeSet::new(),
            members: BTreeSet::new(),
            member_gates: BTreeSet::new(),
            pending_paths: BTreeMap::new(),
            unmet: plan.steps.iter().map(|s| s.needs.len()).collect(),
            position,
            dependents,
            path_below,
            recovery,
        };
        for i in 0..n {
            if frontier.unmet[i] == 0 {
                frontier.enter(plan, i, true);
            }
        }
        frontier
    }

    /// Step `i`, unfinished, joins the frontier: its last need has finished.
    pub(super) fn enter(&mut self, plan: &Plan, i: usize, pending: bool) {
        self.members.insert(self.position[i]);
        if plan.steps[i].is_gate() {
            self.member_gates.insert(self.position[i]);
        }
        if pending {
            self.count_pending(plan, i, true);
        }
    }

    pub(super) fn count_pending(&mut self, plan: &Plan, i: usize, add: bool) {
        if !self.recovery[i] {
            return;
        }
        let path = plan.steps[i].budget + self.path_below[i];
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

impl Machine {
    /// The projected finish: now plus the longest remaining path of budgets. Every step below
    /// an unfinished one is still pending, so that path starts on the frontier: at a pending
    /// step (its path is fixed) or an active one (what its budget has left, and the path
    /// below it). [`Machine::projection`] finds the same instant the long way, with the path.
    pub fn projected_finish(&self, now: Duration) -> Duration {
        if self.cfg.mode == Mode::Drill {
            return self.projection(now).0 + self.cleanup_left(now);
        }
        let pending = self
            .frontier
            .pending_paths
            .last_key_value()
            .map(|(d, _)| *d);
        if let Some(t) = self.restored {
            return t;
        }
        let active = self
            .frontier
            .active
            .iter()
            .filter(|&&i| self.frontier.unmet[i] == 0 && self.recovery[i])
            .map(|&i| self.weight(i, now) + self.frontier.path_below[i]);
        now + active.chain(pending).max().unwrap_or_default() + self.cleanup_left(now)
    }

    /// What is left of step `i`'s budget. In a drill, what the step takes in a real run,
    /// finished or not: a drill's clock runs at drill speed, and its projection is a real run's.
    pub(super) fn weight(&self, i: usize, now: Duration) -> Duration {
        // The observation after `rto_ends_at` is not part of the recovery it projects.
        if !self.recovery[i] {
            return Duration::ZERO;
        }
        self.work_left(i, now)
    }

    /// What is left of step `i`'s budget, whether it counts against the RTO or not (see
    /// [`Machine::weight`]).
    pub(super) fn work_left(&self, i: usize, now: Duration) -> Duration {
        let step = &self.plan.steps[i];
        let budget = step.budget;
        let drill = self.cfg.mode == Mode::Drill;
        let used = || {
            self.runtime[i]
                .first_started
                .map_or(Duration::ZERO, |s| now.saturating_sub(s))
        };
        match &self.runtime[i].state {
            // Restored by a resume, or never run: its budget if a gate, else its estimate (a
            // manual task's too: it is work).
            StepState::Done(_) if drill => {
                self.runtime[i]
                    .real_time
                    .unwrap_or(if super::manual::awaits_a_decision(step) {
                        budget
                    } else {
                        step.estimate.likely
                    })
            }
            StepState::Done(_) => Duration::ZERO,
            StepState::Pending => budget,
            _ if drill => budget.max(used()),
            _ => budget.saturating_sub(used()),
        }
    }

    /// Drills: what finished step `i` would have taken in a real run. A step whose real
    /// command ran took what it took; a drill variant, a mocked or a skipped step the real
    /// step's estimate; a gate its wait, or its budget when `--yes` granted it at once.
    pub(super) fn real_duration(&self, i: usize, now: Duration) -> Duration {
        let step = &self.plan.steps[i];
        let took = self.runtime[i]
            .first_started
            .map_or(Duration::ZERO, |s| now.saturating_sub(s));
        if step.is_gate() {
            match (took.is_zero(), super::manual::awaits_a_decision(step)) {
                (false, _) => took,
                (true, true) => step.budget,
                // A manual task done with `--yes` at once: doing it takes its estimate.
                (true, false) => step.estimate.likely,
            }
        } else if matches!(self.how(step), Handling::Run(how) if how.is_real()) {
            took
        } else {
            step.estimate.likely
        }
    }

    /// (projected finish, the remaining steps on the path that decides it). In a drill, the
    /// finish of a real run: the longest path with every step at its real duration.
    pub fn projection(&self, now: Duration) -> (Duration, Vec<usize>) {
        let weights: Vec<Duration> = (0..self.runtime.len())
            .map(|i| self.weight(i, now))
            .collect();
        let waits = crate::compile::waits(&self.plan.steps);
        let needs: Vec<&[usize]> = waits.iter().map(Vec::as_slice).collect();
        let (path, rest) = longest_path(&weights, &needs, &self.plan.order);
        if self.cfg.mode == Mode::Drill {
            let path = path
                .into_iter()
                .filter(|&i| !matches!(self.runtime[i].state, StepState::Done(_)))
                .collect();
            return (rest, path);
        }
        let path = path
            .into_iter()
            .filter(|&i| !weights[i].is_zero())
            .collect();
        (now + rest, path)
    }
}
