//! `input:` steps: gates that ask for a value. An answer must carry a value that matches the
//! step's pattern (else it is refused with the pattern, and the step keeps waiting); the value
//! becomes the step's output `value`, journaled as any output. A dry-run, or `--yes`, takes the
//! step's `default`.

use std::collections::BTreeMap;

use super::{Effect, Machine};
use crate::compile::Approval;

impl Machine {
    /// Why an answer to gate `i` cannot count as given, if it cannot: an input needs a value
    /// that matches its pattern (a denial needs none), and an approval takes no value.
    pub(super) fn refuse_value(
        &self,
        i: usize,
        gate: &Approval,
        approve: bool,
        value: Option<&str>,
    ) -> Option<String> {
        let id = &self.plan.steps[i].id;
        if gate.manual.is_some() {
            return self.refuse_done(i, gate, approve, value);
        }
        match (&gate.input, value) {
            (None, Some(_)) => Some(format!(
                "step `{id}` is an approval gate, not an input: answer it with `runbook approve` or `runbook deny`"
            )),
            (Some(_), None) if approve => Some(format!(
                "step `{id}` asks for a value: `runbook answer {} {id} VALUE --as NAME`",
                self.cfg.run_id
            )),
            (Some(spec), Some(v)) => spec
                .refuse(v)
                .map(|why| format!("{why}; step `{id}` keeps waiting")),
            _ => None,
        }
    }

    /// Input `i` was answered with `value`: its output `value`, journaled (masked, where it
    /// holds a secret) and seen by the templates below it. The value to journal comes back.
    pub(super) fn take_value(&mut self, i: usize, value: String, out: &mut Vec<Effect>) -> String {
        let masked = self.mask.mask(&value);
        self.take_outputs(i, BTreeMap::from([("value".to_owned(), value)]), out);
        masked
    }

    /// A dry-run's or `--yes`'s answer to gate `i`: an input's `default`; nothing for an
    /// approval.
    pub(super) fn take_default(
        &mut self,
        i: usize,
        gate: &Approval,
        out: &mut Vec<Effect>,
    ) -> Option<String> {
        let spec = gate.input.as_ref()?;
        Some(self.take_value(i, spec.default.clone(), out))
    }
}
