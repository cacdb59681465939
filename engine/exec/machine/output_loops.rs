//! Loops over an upstream output (see `compile/output_loops.rs`): the loop's step, ready (the
//! step that writes the list has finished), does not run; its items are read from the output
//! and the plan grows by one instance per item, appended so that no index moves
//! ([`Plan::expand_output_loop`]). The loop's step then stands for its instances: finished
//! without a `step_finished` of its own, it is replaced by them in the journal's plan
//! (`loop_expanded`). An empty list skips it; an output that is missing or holds no list fails
//! it, with the reason; a dry-run, which has no outputs, skips it and says why.

use std::sync::Arc;
use std::time::Duration;

use super::frontier::Frontier;
use super::{Effect, Machine, StepRuntime, StepState, finally};
use crate::compile::{Drill, Plan, parse_items};
use crate::journal::{EventKind, LoopExpanded, Mode, StepStatus};

impl Machine {
    /// Step `j` is a loop over an output that ended skipped, unexpanded (an empty list, or a
    /// list a dry-run or a drill did not have).
    pub(super) fn output_loop_skipped(&self, j: usize) -> bool {
        self.output_loop_pending(j)
            && matches!(self.runtime[j].state, StepState::Done(StepStatus::Skipped))
    }

    /// Step `i` is a loop over an output not yet expanded.
    pub(super) fn output_loop_pending(&self, i: usize) -> bool {
        self.plan
            .output_loops
            .get(&self.plan.steps[i].id)
            .is_some_and(|l| l.items.is_none())
    }

    /// The loop's own `when:`, unless it reads `item` (then each instance's): false skips
    /// the loop as it would a step.
    pub(super) fn loop_condition_holds(
        &mut self,
        now: Duration,
        i: usize,
        out: &mut Vec<Effect>,
    ) -> bool {
        let per_item = self.plan.steps[i].condition.as_ref().is_some_and(|c| {
            crate::template::condition_names(&c.expr)
                .iter()
                .any(|n| n == "item")
        });
        per_item || self.condition_holds(now, i, out)
    }

    /// Step `i` is ready. If it is a loop over an output not yet expanded, it expands here (or
    /// ends: skipped or failed) and `true` says so: it does not start.
    pub(super) fn expand_output_loop(
        &mut self,
        now: Duration,
        i: usize,
        out: &mut Vec<Effect>,
    ) -> bool {
        let plan = self.plan.clone();
        let id = &plan.steps[i].id;
        let Some(spec) = plan.output_loops.get(id).filter(|l| l.items.is_none()) else {
            return false;
        };
        let source = spec.source();
        let from = plan.step_index(&spec.from);
        let value = from.and_then(|j| self.runtime[j].outputs.get(&spec.key).cloned());
        let items = match value {
            None if self.cfg.mode == Mode::DryRun => {
                return self.end_loop(now, i, StepStatus::Skipped,
                    format!("its items come from `{source}`, which a dry-run does not have: the loop is skipped"), out);
            }
            None if self.cfg.mode == Mode::Drill
                && !self.cfg.rehearsal
                && from
                    .is_some_and(|j| matches!(plan.steps[j].drill, Drill::Mock | Drill::Skip)) =>
            {
                return self.end_loop(now, i, StepStatus::Skipped,
                    format!("its items come from `{source}`, which the drill mocked or skipped: the loop is skipped"), out);
            }
            None => {
                return self.end_loop(
                    now,
                    i,
                    StepStatus::Failed,
                    format!(
                        "its items come from `{source}`, which `{}` did not write",
                        spec.from
                    ),
                    out,
                );
            }
            // Its items become step ids, shown unmasked everywhere: a list holding a secret
            // is refused, as a list variable's is.
            Some(v) if self.mask.mask(&v) != v => {
                let shown = self.mask.mask(&v);
                return self.end_loop(
                    now,
                    i,
                    StepStatus::Failed,
                    format!("its items come from `{source}` = `{shown}`, which holds a secret: an item is part of a step id, shown unmasked in the journal and every report"),
                    out,
                );
            }
            Some(v) => match parse_items(&v) {
                Ok(items) => items,
                Err(why) => {
                    let v = self.mask.mask(&v);
                    return self.end_loop(
                        now,
                        i,
                        StepStatus::Failed,
                        format!("its items come from `{source}` = `{v}`: {why}"),
                        out,
                    );
                }
            },
        };
        if items.is_empty() {
            return self.end_loop(
                now,
                i,
                StepStatus::Skipped,
                format!("`{source}` is an empty list: nothing to loop over"),
                out,
            );
        }
        let Some(grown) = plan.expand_output_loop(id, &items) else {
            return false;
        };
        let instances = crate::journal::plan_steps(&grown, plan.steps.len()..grown.steps.len());
        out.push(Effect::Record(EventKind::LoopExpanded(LoopExpanded {
            step: id.clone(),
            items,
            instances,
        })));
        self.grow(grown);
        true
    }

    /// The loop's step ends without having run: skipped or failed, with the reason.
    fn end_loop(
        &mut self,
        now: Duration,
        i: usize,
        status: StepStatus,
        why: String,
        out: &mut Vec<Effect>,
    ) -> bool {
        let ended = self
            .finished_event(i, status, 1)
            .with_error(Some(self.mask.mask(&why)));
        out.push(Effect::Record(EventKind::StepFinished(ended)));
        self.set(i, StepState::Done(status));
        self.after_finish(now, i, status, out);
        true
    }

    /// The machine on a plan that has more steps at its end: each new one pending, and the
    /// frontier built again from every step's state. An expanded loop's step is finished.
    pub(super) fn grow(&mut self, plan: Plan) {
        let n = plan.steps.len();
        self.plan = Arc::new(plan);
        let fresh = StepRuntime {
            state: StepState::Pending,
            first_started: None,
            warned: false,
            breached: false,
            outputs: Default::default(),
            masked_outputs: Default::default(),
            decided: None,
            real_time: None,
            pages: Vec::new(),
            request: None,
        };
        self.runtime.resize(n, fresh);
        self.settle_expanded();
    }

    /// Every expanded loop's step is finished (it stands for its instances), and the frontier
    /// agrees with every step's state.
    pub(super) fn settle_expanded(&mut self) {
        let plan = self.plan.clone();
        for (id, l) in &plan.output_loops {
            if l.items.is_some()
                && let Some(p) = plan.step_index(id)
            {
                self.runtime[p].state = StepState::Done(StepStatus::Succeeded);
                // It stands for its instances: it took no time of its own (a drill's
                // projection counts a finished step at the time it took).
                self.runtime[p].real_time = Some(Duration::ZERO);
            }
        }
        self.frontier = Frontier::new(&plan);
        self.recovery = finally::projected_steps(&plan);
        self.finally_order = plan
            .order
            .iter()
            .copied()
            .filter(|&i| plan.steps[i].finally)
            .collect();
        // Every step pending first, as the new frontier takes them; then each one's state
        // again in order, so that the frontier counts each step once: a dependent replayed
        // while it still held its old state would be taken out of a count it never joined.
        self.running = 0;
        let states: Vec<StepState> = self
            .runtime
            .iter_mut()
            .map(|r| std::mem::replace(&mut r.state, StepState::Pending))
            .collect();
        for &i in &plan.order {
            self.set(i, states[i].clone());
        }
    }
}
