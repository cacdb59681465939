//! Sub-runbooks at run time: a called runbook's step renders its templates in its own
//! runbook's scope — that runbook's vars (its defaults, then the call's `with:` rendered in the
//! caller's scope) and its sibling steps by their own ids (`steps['verify']` is the step
//! `restore.verify` of this run). The steps themselves were spliced in when the plan compiled.
//!
//! And each call's group is watched against the call's `budget` as a step is against its
//! own: from its first step's start to its last step's end, `budget_warning` at 80% and
//! `budget_breached` past it, once each, with `runbook` naming the called runbook.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::value::Value;

use super::timers::BREACH_AFTER;
use super::{Effect, Machine, StepState};
use crate::compile::CallScope;
use crate::journal::{BudgetEvent, EventKind, Mode, RunState, StepStatus};
use crate::template::{self, Quoting};

/// What the clock knows of one call's group (`Plan::calls`, same index).
#[derive(Clone, Debug, Default)]
pub(super) struct GroupWatch {
    /// Its first step's start, on the run's clock.
    since: Option<Duration>,
    warned: bool,
    breached: bool,
}

impl GroupWatch {
    pub(super) fn all(n: usize) -> Vec<GroupWatch> {
        vec![GroupWatch::default(); n]
    }
}

impl Machine {
    /// The context step `i`'s templates see: the run's ([`Machine::context`]), or for a
    /// called step, its runbook's.
    pub(super) fn context_of(
        &self,
        i: usize,
        want_steps: bool,
    ) -> Result<BTreeMap<String, Value>, String> {
        let ctx = self.context(want_steps);
        match self.plan.steps.get(i).and_then(|s| s.call.as_deref()) {
            Some(scope) => self.call_context(scope, ctx, want_steps),
            None => Ok(ctx),
        }
    }

    fn call_context(
        &self,
        scope: &CallScope,
        run: BTreeMap<String, Value>,
        want_steps: bool,
    ) -> Result<BTreeMap<String, Value>, String> {
        let outer = match &scope.outer {
            Some(o) => self.call_context(o, run, want_steps)?,
            None => run,
        };
        let mut ctx = outer.clone();
        // A list variable of the called runbook is a list in its templates, as the run's are.
        let value = |k: &str, v: String| {
            if scope.lists.contains(k) {
                Value::from(crate::compile::list_items(&v))
            } else {
                Value::from(v)
            }
        };
        for (k, v) in &scope.vars {
            ctx.insert(k.clone(), value(k, v.clone()));
        }
        for (k, tmpl) in &scope.with {
            // `"{{ regions }}"` of the caller's list variable passes the list itself: rendered,
            // it would be its text (`['a', 'b']`).
            let passed = crate::compile::named_var(tmpl)
                .filter(|_| scope.lists.contains(k))
                .and_then(|name| outer.get(name))
                .filter(|v| v.kind() == minijinja::value::ValueKind::Seq);
            if let Some(list) = passed {
                ctx.insert(k.clone(), list.clone());
                continue;
            }
            let v = template::render(tmpl, Quoting::Plain, &Value::from(outer.clone()))
                .map_err(|e| format!("`with` value `{k}` of `{}`: {}", scope.prefix, e.message))?;
            ctx.insert(k.clone(), value(k, v));
        }
        if want_steps && self.cfg.mode != Mode::DryRun {
            ctx.insert(
                "steps".into(),
                Value::from(self.steps_seen_from(&scope.prefix)),
            );
        }
        Ok(ctx)
    }

    /// The finished steps' outputs by id, each step of the call `prefix` also by its own id.
    fn steps_seen_from(&self, prefix: &str) -> BTreeMap<String, Value> {
        let mut steps = BTreeMap::new();
        for (j, s) in self.plan.steps.iter().enumerate() {
            if !matches!(self.runtime[j].state, StepState::Done(_)) {
                continue;
            }
            let outputs: BTreeMap<String, Value> = self.runtime[j]
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
            let entry = Value::from(BTreeMap::from([(
                "outputs".to_owned(),
                Value::from(outputs),
            )]));
            if let Some(own) = s.id.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) {
                steps.insert(own.to_owned(), entry.clone());
            }
            steps.insert(s.id.clone(), entry);
        }
        steps
    }

    /// The step a called step's template means by `id`: its sibling first, then the run's.
    pub(super) fn step_seen_from(&self, i: usize, id: &str) -> Option<usize> {
        self.plan
            .steps
            .get(i)
            .and_then(|s| s.call.as_deref())
            .and_then(|scope| self.plan.step_index(&format!("{}.{id}", scope.prefix)))
            .or_else(|| self.plan.step_index(id))
    }
}

impl Machine {
    /// Group `k` has started and not every step of it has ended: its clock runs.
    fn group_running(&self, k: usize) -> Option<Duration> {
        let since = self.groups[k].since?;
        let ended = self.plan.calls[k]
            .steps
            .iter()
            .all(|&i| matches!(self.runtime[i].state, StepState::Done(_)));
        (!ended).then_some(since)
    }

    /// Notes each group's first start, then warns and breaches as [`Machine::clock`] does a
    /// step's budget.
    pub(super) fn watch_groups(&mut self, now: Duration, out: &mut Vec<Effect>) {
        for k in 0..self.plan.calls.len() {
            if self.groups[k].since.is_none() {
                self.groups[k].since = self.plan.calls[k]
                    .steps
                    .iter()
                    .filter_map(|&i| self.runtime[i].first_started)
                    .min();
            }
            let Some(since) = self.group_running(k) else {
                continue;
            };
            let call = &self.plan.calls[k];
            let elapsed = now.saturating_sub(since);
            let ev = || BudgetEvent {
                step: call.id.clone(),
                elapsed_ms: elapsed.as_millis() as u64,
                budget_ms: call.budget.as_millis() as u64,
                runbook: Some(call.runbook.clone()),
            };
            if !self.groups[k].warned && elapsed >= call.budget.mul_f64(0.8) {
                self.groups[k].warned = true;
                out.push(Effect::Record(EventKind::BudgetWarning(ev())));
            }
            if !self.groups[k].breached && elapsed >= call.budget + BREACH_AFTER {
                self.groups[k].breached = true;
                out.push(Effect::Record(EventKind::BudgetBreached(ev())));
            }
        }
    }

    /// When a running group's warning or breach falls due.
    pub(super) fn group_wakes(&self, at: &mut impl FnMut(Duration)) {
        for (k, call) in self.plan.calls.iter().enumerate() {
            let Some(since) = self.group_running(k) else {
                continue;
            };
            if !self.groups[k].warned {
                at(since + call.budget.mul_f64(0.8));
            } else if !self.groups[k].breached {
                at(since + call.budget + BREACH_AFTER);
            }
        }
    }

    /// Resume: each group's clock from the journal — its first step's start, and the
    /// warning and breach already journaled, which are not said again.
    pub(super) fn restore_groups(&mut self, state: &RunState) {
        for (k, call) in self.plan.calls.iter().enumerate() {
            self.groups[k].since = call
                .steps
                .iter()
                .filter_map(|&i| state.step(&self.plan.steps[i].id))
                .filter(|s| !matches!(s.status, Some(StepStatus::Skipped | StepStatus::NotRun)))
                .filter_map(|s| s.started_ms)
                .min()
                .map(Duration::from_millis);
            let said = |events: &[(u64, BudgetEvent)]| {
                events
                    .iter()
                    .any(|(_, e)| e.runbook.is_some() && e.step == call.id)
            };
            self.groups[k].warned = said(&state.warnings);
            self.groups[k].breached = said(&state.breaches);
        }
    }
}
