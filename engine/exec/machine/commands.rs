//! Rendering what a step runs: its command, environment and library inputs for the run's
//! mode (a drill's `drill:` variant, a dry-run's placeholders), how it runs (`Handling`), and, when
//! a template fails, which upstream outputs it missed.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::value::Value;

use super::{Machine, StepState};
use crate::compile::{Drill, Step, StepKind};
use crate::journal::{How, Mode, StepStatus};
use crate::template::{self, Quoting};

/// What a drill or a dry-run does with a command step: run something (and how, as the
/// `step_started` says it), or record it without a process.
pub(super) enum Handling {
    Run(How),
    Skip,
    Mock,
}

impl Machine {
    /// A template that did not render names what it missed: the outputs it takes from steps
    /// upstream that they did not write, and why a step wrote none.
    pub(super) fn explain_render_error(&self, step: &Step, error: String) -> String {
        let mut sources: Vec<&str> = step.env.values().map(String::as_str).collect();
        if let StepKind::Command(cmd) = &step.kind {
            sources.push(&cmd.template);
            sources.extend(cmd.inputs.iter().flatten().map(|(_, v)| v.as_str()));
        }
        match &step.drill {
            Drill::Command { template, .. } => sources.push(template),
            Drill::With(with) => sources.extend(with.values().map(String::as_str)),
            _ => {}
        }
        self.explain_missing(&sources, error)
    }

    /// [`Machine::explain_render_error`] for one template (a condition's expression).
    pub(super) fn explain_render_error_in(&self, src: &str, error: String) -> String {
        self.explain_missing(&[src], error)
    }

    fn explain_missing(&self, sources: &[&str], error: String) -> String {
        let mut missing = Vec::new();
        for (id, key) in sources.iter().flat_map(|s| output_refs(s)) {
            let Some(j) = self.plan.step_index(&id) else {
                continue;
            };
            if self.runtime[j].outputs.contains_key(&key) {
                continue;
            }
            let why = match &self.runtime[j].state {
                _ if self.runtime[j].masked_outputs.contains(&key) => {
                    " in this resumed run: its value held a secret, which the journal keeps masked (start a new run, or pass the secret in the environment instead)"
                }
                StepState::Done(StepStatus::Simulated) => {
                    " (it was mocked in this drill: give it a `drill:` command that writes it)"
                }
                _ if self.skipped_by_condition(j) => {
                    " (it was skipped: its `when` was false; give a default: `| default('…')`)"
                }
                _ if self.output_loop_skipped(j) => {
                    " (it is a loop over an output that was skipped: its list was empty, or not known; give a default: `| default('…')`)"
                }
                StepState::Done(StepStatus::Skipped) => " (it was skipped in this drill)",
                // Only a `finally:` step can read one: every other reader is not run too.
                StepState::Done(StepStatus::NotRun) => {
                    " (it was not run: the run had failed or been denied before it; give a default: `| default('…')`)"
                }
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

    pub(super) fn sim_duration(&self, i: usize) -> Duration {
        match &self.cfg.durations {
            Some(d) => d[i],
            None => self.plan.steps[i].estimate.likely,
        }
    }

    pub(super) fn how(&self, step: &Step) -> Handling {
        match (self.cfg.mode, &step.drill) {
            (Mode::Real, _) => Handling::Run(How::Run),
            (Mode::DryRun, _) => Handling::Run(How::DryRun),
            (Mode::Drill, Drill::Run) => Handling::Run(How::Run),
            (Mode::Drill, Drill::Skip) => Handling::Skip,
            // A rehearsal environment is a throwaway copy of production: there the dangerous
            // path a drill mocks is rehearsed for real.
            (Mode::Drill, Drill::Mock) if self.cfg.rehearsal => Handling::Run(How::Rehearsal),
            (Mode::Drill, Drill::Mock) => Handling::Mock,
            (Mode::Drill, Drill::Command { .. }) => Handling::Run(How::DrillCommand),
            (Mode::Drill, Drill::With(_)) => Handling::Run(How::DrillWith),
        }
    }

    /// The context a step's templates see: vars, env, and the outputs of finished steps.
    pub(super) fn context(&self, want_steps: bool) -> BTreeMap<String, Value> {
        // A list variable is a list (`{{ regions | join(' ') }}`).
        let mut ctx: BTreeMap<String, Value> = self.plan.var_values(&self.cfg.vars);
        ctx.insert("env".into(), self.env_value.clone());
        if self.cleanup {
            ctx.insert("run".into(), self.run_value());
        }
        if want_steps && self.cfg.mode == Mode::DryRun {
            ctx.insert("steps".into(), template::placeholder_steps(self.loops()));
        } else if want_steps {
            let steps: BTreeMap<String, Value> = self
                .plan
                .steps
                .iter()
                .enumerate()
                .filter(|(i, _)| matches!(self.runtime[*i].state, StepState::Done(_)))
                .map(|(i, s)| {
                    let outputs: BTreeMap<String, Value> = self.runtime[i]
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
            let mut steps = steps;
            self.loop_outputs(&mut steps);
            ctx.insert("steps".into(), Value::from(steps));
        }
        ctx
    }

    /// The context of step `i`'s own templates: its runbook's ([`Machine::context_of`]: the
    /// run's, or a called runbook's), and `item` in a loop.
    pub(super) fn step_context(
        &self,
        i: usize,
        want_steps: bool,
    ) -> Result<BTreeMap<String, Value>, String> {
        let mut ctx = self.context_of(i, want_steps)?;
        ctx.extend(self.item_of(i));
        Ok(ctx)
    }

    pub(super) fn render_plain(&self, i: usize, tmpl: &str) -> Result<String, String> {
        let ctx = Value::from(self.step_context(i, tmpl.contains("steps"))?);
        template::render(tmpl, Quoting::Plain, &ctx).map_err(|e| e.message)
    }

    /// The command and extra environment of a step, for the current mode.
    pub(super) fn render_command(
        &self,
        i: usize,
        step: &Step,
    ) -> Result<(String, Vec<(String, String)>), String> {
        let StepKind::Command(cmd) = &step.kind else {
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
                        &Value::from(self.step_context(i, template.contains("steps"))?),
                    )?
                }
            }
            (Drill::With(over), true) => {
                render(&cmd.template, &lib_ctx(render_inputs(Some(over))?))?
            }
            _ if cmd.inputs.is_some() => render(&cmd.template, &lib_ctx(render_inputs(None)?))?,
            _ => render(
                &cmd.template,
                &Value::from(self.step_context(i, cmd.template.contains("steps"))?),
            )?,
        };
        Ok((command, env))
    }
}

/// The `(step, key)` of every `steps['id'].outputs.key` or `steps.id.outputs.key` in a template.
pub(super) fn output_refs(src: &str) -> Vec<(String, String)> {
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
