//! Compiling `input:` steps: a gate that asks for a value. Its prompt, approvers and timeout
//! are checked as an approval's; its `pattern` must be a regular expression, and its
//! `default` (what a dry-run takes) must be given and match it.

use std::collections::BTreeMap;

use crate::format::{ApprovalDoc, InputStepDoc, ManualStepDoc};
use crate::span::Pos;
use crate::template::Scope;

use super::{Approval, Compiler, InputSpec, ManualSpec, StepKind, anchored};

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

impl Compiler<'_> {
    /// `manual:`: a task a person does. Its instructions and approvers are checked as an
    /// approval's prompt and approvers; it needs instructions and at least one checklist item,
    /// each said once.
    pub(super) fn manual_step(
        &mut self,
        id: &str,
        manual: &ManualStepDoc,
        drill: Option<Pos>,
        scope: &Scope,
    ) -> Option<StepKind> {
        if let Some(pos) = drill {
            self.err(pos, format!("manual step `{id}` takes no `drill`"))
                .help(
                    "a dry-run takes the task's estimate; a drill asks a person as a real run does",
                );
        }
        if manual.instructions.value.trim().is_empty() {
            self.err(
                manual.instructions.pos,
                format!("manual step `{id}` has empty `instructions`"),
            )
            .label("empty")
            .help("say what the person must do, e.g. `Call the cloud provider's support line`");
        }
        if manual.checklist.value.is_empty() {
            self.err(
                manual.checklist.pos,
                format!("manual step `{id}` has an empty `checklist`"),
            )
            .label("no items")
            .help("list what must be confirmed done, e.g. `checklist: [ticket opened]`");
        }
        let mut seen: Vec<&str> = Vec::new();
        for item in &manual.checklist.value {
            if item.value.trim().is_empty() {
                self.err(
                    item.pos,
                    format!("manual step `{id}` has an empty checklist item"),
                )
                .label("empty")
                .help("say what must be confirmed done");
            } else if seen.contains(&item.value.as_str()) {
                self.err(
                    item.pos,
                    format!("manual step `{id}` lists `{}` twice", item.value),
                )
                .label("again")
                .help("each checklist item is confirmed by its text: list it once");
            }
            seen.push(&item.value);
        }
        let as_gate = ApprovalDoc {
            prompt: manual.instructions.clone(),
            approvers: manual.approvers.clone(),
            min: None,
            timeout: manual.timeout.clone(),
            page_after: BTreeMap::new(),
        };
        let gate = self.approval(id, &as_gate, scope)?;
        Some(StepKind::Approval(Approval {
            manual: Some(ManualSpec {
                instructions: manual.instructions.value.clone(),
                checklist: manual
                    .checklist
                    .value
                    .iter()
                    .map(|c| c.value.clone())
                    .collect(),
            }),
            ..gate
        }))
    }
}
