//! Sub-runbooks at run time: a called runbook's step renders its templates in its own
//! runbook's scope — that runbook's vars (its defaults, then the call's `with:` rendered in the
//! caller's scope) and its sibling steps by their own ids (`steps['verify']` is the step
//! `restore.verify` of this run). The steps themselves were spliced in when the plan compiled.

use std::collections::BTreeMap;

use minijinja::value::Value;

use super::{Machine, StepState};
use crate::compile::CallScope;
use crate::journal::Mode;
use crate::template::{self, Quoting};

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
        for (k, v) in &scope.vars {
            ctx.insert(k.clone(), Value::from(v.clone()));
        }
        for (k, tmpl) in &scope.with {
            let v = template::render(tmpl, Quoting::Plain, &Value::from(outer.clone()))
                .map_err(|e| format!("`with` value `{k}` of `{}`: {}", scope.prefix, e.message))?;
            ctx.insert(k.clone(), Value::from(v));
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
