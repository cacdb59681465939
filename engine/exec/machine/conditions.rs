//! `when:`: a step's condition, evaluated when the step is ready (all its needs ended). False
//! skips the step, journaled with the expression and the values it saw; an expression that
//! does not evaluate fails the step with the reason. A dry-run evaluates what it can (vars and
//! `run`); one that reads outputs a dry-run does not have takes the step as running, and so
//! does a drill whose condition reads a step the drill mocked or skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::value::Value;

use super::commands::output_refs;
use super::{Effect, Machine, StepState};
use crate::compile::Drill;
use crate::journal::{ConditionSeen, EventKind, Mode, StepStatus};
use crate::template;

impl Machine {
    /// Step `i` is ready: does it start? Without a condition, yes. Otherwise its condition
    /// decides; a step it skips, or whose condition fails, is finished here.
    pub(super) fn condition_holds(
        &mut self,
        now: Duration,
        i: usize,
        out: &mut Vec<Effect>,
    ) -> bool {
        let plan = self.plan.clone();
        let step = &plan.steps[i];
        let Some(cond) = &step.condition else {
            return true;
        };
        let names = template::condition_names(&cond.expr);
        let values = self.condition_values(i, &cond.expr, &names);
        if (self.cfg.mode == Mode::DryRun && names.iter().any(|n| n == "steps"))
            || self.reads_what_the_drill_did_not_write(i, &cond.expr)
        {
            self.conditions.insert(
                i,
                ConditionSeen {
                    expr: cond.expr.clone(),
                    values,
                    held: true,
                    assumed: true,
                },
            );
            return true;
        }
        // A called step's `with:` that does not render fails it, as its condition would.
        let held = self
            .step_context(i, true)
            .map_err(|message| template::TemplateError {
                message,
                range: None,
                help: None,
            });
        match held.and_then(|mut ctx| {
            ctx.insert("run".into(), self.run_value());
            template::eval_condition(&cond.expr, &Value::from(ctx))
        }) {
            Ok(held) => {
                self.conditions.insert(
                    i,
                    ConditionSeen {
                        expr: cond.expr.clone(),
                        values,
                        held,
                        assumed: false,
                    },
                );
                if !held {
                    let ended = self.finished_event(i, StepStatus::Skipped, 1);
                    out.push(Effect::Record(EventKind::StepFinished(ended)));
                    self.set(i, StepState::Done(StepStatus::Skipped));
                    self.after_finish(now, i, StepStatus::Skipped, out);
                }
                held
            }
            Err(e) => {
                let error = format!("{}: condition `{}`: {}", step.at, cond.expr, e.message);
                let error = self.explain_render_error_in(&cond.expr, error);
                self.conditions.insert(
                    i,
                    ConditionSeen {
                        expr: cond.expr.clone(),
                        values,
                        held: false,
                        assumed: false,
                    },
                );
                let ended = self
                    .finished_event(i, StepStatus::Failed, 1)
                    .with_error(Some(self.mask.mask(&error)));
                out.push(Effect::Record(EventKind::StepFinished(ended)));
                self.set(i, StepState::Done(StepStatus::Failed));
                self.after_finish(now, i, StepStatus::Failed, out);
                false
            }
        }
    }

    /// In a drill, does the condition read an output of a step the drill mocked or skipped
    /// (which wrote none)? It cannot be evaluated then, and is taken as running, the worst
    /// case, as in a dry-run. In a rehearsal environment mocks run for real and write theirs.
    fn reads_what_the_drill_did_not_write(&self, i: usize, expr: &str) -> bool {
        if self.cfg.mode != Mode::Drill || self.cfg.rehearsal {
            return false;
        }
        output_refs(expr).into_iter().any(|(id, key)| {
            self.step_seen_from(i, &id).is_some_and(|j| {
                matches!(self.plan.steps[j].drill, Drill::Mock | Drill::Skip)
                    && !self.runtime[j].outputs.contains_key(&key)
            })
        })
    }

    /// What a condition reads, by how it reads it, masked: its vars, the outputs it names
    /// (those written), and `run.mode`. The operator's environment is left out.
    fn condition_values(&self, i: usize, expr: &str, names: &[String]) -> BTreeMap<String, String> {
        let mut values = BTreeMap::new();
        for name in names {
            match name.as_str() {
                "env" => {}
                "run" => {
                    values.insert("run.mode".to_owned(), self.cfg.mode.as_str().to_owned());
                }
                "steps" => {
                    for (id, key) in output_refs(expr) {
                        let Some(j) = self.step_seen_from(i, &id) else {
                            continue;
                        };
                        if let Some(v) = self.runtime[j].outputs.get(&key) {
                            values
                                .insert(format!("steps['{id}'].outputs.{key}"), self.mask.mask(v));
                        }
                    }
                }
                var => {
                    if let Some(v) = self.cfg.vars.get(var) {
                        values.insert(var.to_owned(), self.mask.mask(v));
                    }
                }
            }
        }
        values
    }

    /// Whether step `j` was skipped by its condition (not by a drill's `skip`).
    pub(super) fn skipped_by_condition(&self, j: usize) -> bool {
        matches!(self.runtime[j].state, StepState::Done(StepStatus::Skipped))
            && self.conditions.get(&j).is_some_and(|c| !c.held)
    }
}
