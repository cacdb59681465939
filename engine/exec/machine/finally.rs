//! `finally:`: the cleanup phase. Its steps wait until every other step has ended (succeeded,
//! failed, skipped, or not run after an abort or a denial), then run whatever the outcome,
//! each on its own: one failing does not stop the others (only those that need it are not
//! run). An operator's stop ends the run before them, and `resume` runs them; a finished one
//! is never run again. They see `run.status` and `run.failed_steps`.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::value::Value;

use super::{Effect, Machine, StepState};
use crate::compile::Plan;
use crate::journal::StepStatus;

/// The steps the projection and the drill's estimate count: those that count against the RTO
/// (see [`Plan::recovery_steps`]) but the `finally:` steps, which come after the recovery and
/// are not on its path.
pub(super) fn projected_steps(plan: &Plan) -> Vec<bool> {
    plan.recovery_steps()
        .into_iter()
        .zip(&plan.steps)
        .map(|(counts, step)| counts && !step.finally)
        .collect()
}

impl Machine {
    /// A `finally:` step holds until the cleanup phase.
    pub(super) fn held_for_cleanup(&self, i: usize) -> bool {
        !self.cleanup && self.plan.steps[i].finally
    }

    /// Every main step has ended and nothing is running: the main steps that cannot run are
    /// not run, and the cleanup phase begins. False when there is no `finally:` step, or
    /// the phase has begun already.
    pub(super) fn begin_cleanup(&mut self, now: Duration, out: &mut Vec<Effect>) -> bool {
        if self.cleanup || !self.plan.steps.iter().any(|s| s.finally) {
            return false;
        }
        self.not_run_the_rest(out);
        self.cleanup = true;
        // The abort was the main steps': cleanup runs whatever happened to them.
        self.aborting = false;
        self.schedule(now, out);
        true
    }

    /// What the cleanup adds to the projected finish: without `rto_ends_at`, the longest
    /// chain of what the `finally:` steps have left, after the main steps (with it, the
    /// cleanup is observation and adds nothing).
    pub(super) fn cleanup_left(&self, now: Duration) -> Duration {
        if self.plan.rto_ends_at.is_some() || self.finally_order.is_empty() {
            return Duration::ZERO;
        }
        let mut finish: BTreeMap<usize, Duration> = BTreeMap::new();
        for &i in &self.finally_order {
            let start = self.plan.steps[i]
                .needs
                .iter()
                .filter_map(|j| finish.get(j))
                .max()
                .copied()
                .unwrap_or_default();
            finish.insert(i, start + self.work_left(i, now));
        }
        finish.into_values().max().unwrap_or_default()
    }

    /// What the cleanup adds after the main steps while none of it has started: each
    /// `finally:` step's budget along its longest chain (see [`Machine::cleanup_left`]).
    pub(super) fn cleanup_to_come(&self) -> Duration {
        if self.cleanup {
            return Duration::ZERO;
        }
        self.cleanup_left(Duration::ZERO)
    }

    /// During the cleanup, when it counts against the RTO: an active `finally:` step past its
    /// budget leaves the projection at now plus the chain of cleanup below it, which passes
    /// the target at `rto - chain`: the instant to look (as a main step's in `next_wake`).
    pub(super) fn cleanup_risk_wakes(&self, at: &mut impl FnMut(Duration)) {
        if !self.cleanup || self.plan.rto_ends_at.is_some() {
            return;
        }
        // The longest chain of pending budgets below each cleanup step, last first.
        let mut below: BTreeMap<usize, Duration> = BTreeMap::new();
        for &i in self.finally_order.iter().rev() {
            let chain = self
                .finally_order
                .iter()
                .filter(|&&d| self.plan.steps[d].needs.contains(&i))
                .map(|d| {
                    self.work_left(*d, Duration::ZERO) + below.get(d).copied().unwrap_or_default()
                })
                .max()
                .unwrap_or_default();
            below.insert(i, chain);
        }
        for &i in self
            .frontier
            .active
            .iter()
            .filter(|&&i| self.plan.steps[i].finally)
        {
            let chain = below.get(&i).copied().unwrap_or_default();
            if let Some(t) = self.plan.rto.checked_sub(chain) {
                at(t + Duration::from_millis(1));
            }
        }
    }

    /// `run` in a `finally:` step's templates and in a `when:`: the run's mode, its outcome so
    /// far, and which steps failed.
    pub(super) fn run_value(&self) -> Value {
        let failed: Vec<&str> = self
            .plan
            .steps
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                matches!(
                    self.runtime[*i].state,
                    StepState::Done(StepStatus::Failed | StepStatus::TimedOut)
                )
            })
            .map(|(_, s)| s.id.as_str())
            .collect();
        let status = if self.failed.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        crate::template::run_value(self.cfg.mode.as_str(), status, &failed)
    }
}
