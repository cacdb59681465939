//! Compiling `input:` steps: a gate that asks for a value. Its prompt, approvers and timeout
//! are checked as an approval's; its `pattern` must be a regular expression, and its
//! `default` (what a dry-run takes) must be given and match it.

use std::collections::BTreeMap;

use crate::format::{ApprovalDoc, InputStepDoc};
use crate::template::Scope;

use super::{Approval, Compiler, InputSpec, anchored};

impl Compiler<'_> {
    pub(super) fn input_step(
        &mut self,
        id: &str,
        input: &InputStepDoc,
        scope: &Scope,
    ) -> Option<Approval> {
        let as_gate = ApprovalDoc {
            prompt: input.prompt.clone(),
            approvers: input.approvers.clone(),
            min: None,
            timeout: input.timeout.clone(),
            page_after: BTreeMap::new(),
        };
        let gate = self.approval(id, &as_gate, scope);
        let mut pattern_ok = true;
        if let Some(p) = &input.pattern
            && let Err(e) = anchored(&p.value)
        {
            pattern_ok = false;
            let first = e.to_string();
            // regex draws the pattern with a caret over several lines: its last says why.
            let why = first.lines().last().unwrap_or_default().trim();
            let first = why.trim_start_matches("error: ").to_owned();
            self.err(
                p.pos,
                format!("`pattern` of input `{id}` is not a regular expression: {first}"),
            )
            .label("bad pattern")
            .help("write a regular expression that the whole value must match, e.g. `[0-9]{4}-[0-9]{2}-[0-9]{2}`");
        }
        let spec = InputSpec {
            pattern: input.pattern.as_ref().map(|p| p.value.clone()),
            default: input
                .default
                .as_ref()
                .map(|d| d.value.clone())
                .unwrap_or_default(),
        };
        match &input.default {
            None => {
                self.err(input.prompt.pos, format!("input `{id}` has no `default`"))
                    .label("no default")
                    .help(
                        "add `default: <value>`: the value a dry-run takes, so that it can go on",
                    );
            }
            Some(d) if pattern_ok => {
                if let Some(why) = spec.refuse(&d.value) {
                    self.err(d.pos, format!("`default` of input `{id}`: {why}"))
                        .label("does not match")
                        .help("give a default that a person could answer");
                }
            }
            Some(_) => {}
        }
        gate.map(|g| Approval {
            input: Some(spec),
            ..g
        })
    }
}
