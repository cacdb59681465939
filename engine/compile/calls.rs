//! `runbook:`: a step that calls another runbook of `runbooks/`. The called runbook is
//! compiled on its own (its vars set by the call's `with:`) and its steps are spliced into
//! this plan when it compiles: their ids prefixed with the calling step's id and a dot, their
//! own `needs` kept, its roots needing what the call needs, and the steps that need the call
//! needing its leaves. The call's `budget` (default: the called runbook's RTO) bounds the
//! group; the report checks it from the group's first start to its last end. Roles and
//! secrets merge into the caller's; a role defined twice with other people is an error, and
//! so is a cycle of calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::diag::suggestion;
use crate::format::{Sp, StepDoc, load_runbook};
use crate::project::Project;
use crate::template::{Quoting, Scope};
use crate::units::Estimate;

use super::graph::Graph;
use super::{Command, Compiler, Drill, Library, Options, Plan, Step, StepKind};

/// A called runbook's group of steps in the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The calling step's id (prefixed by its own caller's for a nested call).
    pub id: String,
    pub title: String,
    /// The called scenario.
    pub runbook: String,
    /// The group's budget: from its first step's start to its last step's end.
    pub budget: Duration,
    /// Its steps' indices in the plan, nested calls' included.
    pub steps: Vec<usize>,
    /// sha256 of the called runbook's file, as journaled in `run_started`: a resumed run must
    /// run the same called steps.
    pub sha256: String,
    /// The called runbook's file: the run keeps a copy of it beside its own (`calls/`).
    pub path: std::path::PathBuf,
}

/// What a called runbook's step sees: that runbook's vars (its defaults, then the call's
/// `with:` rendered in the caller's scope) and its sibling steps by their own ids.
#[derive(Debug, PartialEq, Eq)]
pub struct CallScope {
    /// The call's id: `steps['verify']` in the called runbook is `steps['<prefix>.verify']`.
    pub prefix: String,
    pub vars: BTreeMap<String, String>,
    /// Plain templates, rendered in the scope of `outer` (or the run's, at the top).
    pub with: BTreeMap<String, String>,
    /// Its list variables: their values (`a,b`) are lists in its templates.
    pub lists: BTreeSet<String>,
    pub outer: Option<Arc<CallScope>>,
}

/// A call compiled: the called plan and what the call gives it.
pub(super) struct Called {
    plan: Plan,
    title: String,
    budget: Duration,
    with: BTreeMap<String, String>,
    /// `rto_ends_at` names this called step (its index in `plan`): `rto_ends_at: rs.verify`.
    ends_rto: Option<usize>,
}

impl Compiler<'_> {
    /// Compiles every runbook this one calls, before the steps: the callers' templates may
    /// read the called steps' outputs (`steps['restore.verify']`).
    pub(super) fn load_calls(&mut self, project: &Project, library: &mut Library) {
        let main = self.doc.steps.len();
        for (i, s) in self.steps.clone().into_iter().enumerate() {
            let Some(name) = &s.runbook else { continue };
            if i >= main {
                self.err(
                    name.pos,
                    format!("`finally:` step `{}` calls a runbook", s.id.value),
                )
                .label("a call in cleanup")
                .help("cleanup steps run commands; call the runbook from `steps:`");
                continue;
            }
            self.call_alone(s);
            if let Some(called) = self.called_runbook(s, name, project, library) {
                self.call_without_output_loops(name.pos, &s.id.value, &called.plan);
                self.called.insert(i, called);
            }
        }
    }

    /// A call runs the called runbook's steps: it has nothing of its own to run.
    fn call_alone(&mut self, s: &StepDoc) {
        let id = &s.id.value;
        let own = [
            ("run", s.run.as_ref().map(|r| r.pos)),
            ("uses", s.uses.as_ref().map(|r| r.pos)),
            ("approval", s.approval.as_ref().map(|a| a.prompt.pos)),
            ("drill", s.drill.as_ref().map(|d| d.pos)),
            ("timeout", s.timeout.as_ref().map(|d| d.pos)),
            ("estimate", s.estimate.as_ref().map(|d| d.pos)),
            ("when", s.when.as_ref().map(|d| d.pos)),
            ("retries", s.retries.as_ref().map(|d| d.pos)),
            ("for_each", s.for_each.as_ref().map(|d| d.pos)),
            ("max_parallel", s.max_parallel.as_ref().map(|d| d.pos)),
        ];
        for (field, pos) in own {
            if let Some(pos) = pos {
                self.err(pos, format!("step `{id}` calls a runbook and has `{field}`"))
                    .label("not on a call")
                    .help(format!("a call runs the called runbook's steps: give `{field}` to those steps, or make this a step of its own"));
            }
        }
    }

    fn called_runbook(
        &mut self,
        s: &StepDoc,
        name: &Sp<String>,
        project: &Project,
        library: &mut Library,
    ) -> Option<Called> {
        let id = &s.id.value;
        if let Some(first) = self.stack.iter().position(|c| *c == name.value) {
            let mut cycle: Vec<&str> = self.stack.iter().skip(first).map(String::as_str).collect();
            cycle.push(&name.value);
            self.err(
                name.pos,
                format!("runbooks call each other in a cycle: {}", cycle.join(" → ")),
            )
            .label("closes the cycle")
            .help(
                "a runbook cannot run, directly or not, inside itself: remove one of these calls",
            );
            return None;
        }
        let scenarios = project.scenarios();
        if !scenarios.contains(&name.value) {
            let help = suggestion(&name.value, scenarios.iter().map(String::as_str))
                .unwrap_or_else(|| "`runbook` names a scenario of `runbooks/`".into());
            self.err(name.pos, format!("no runbook `{}` to call", name.value))
                .label("unknown runbook")
                .help(help);
            return None;
        }
        let path = project.runbooks_dir().join(format!("{}.yaml", name.value));
        let loaded = match load_runbook(&path) {
            Ok(l) => l,
            Err(p) => {
                self.callee_broken(name, &p);
                return None;
            }
        };
        let doc = &loaded.doc;
        // Its cleanup is not run: it would run in the middle of this run, or at its end where
        // it no longer cleans up after its own steps (and `run.failed_steps` holds this run's
        // ids). The caller carries the cleanup in its own `finally:`, and must have one.
        if let Some(f) = doc.finally.first()
            && self.doc.finally.is_empty()
        {
            self.err(
                name.pos,
                format!(
                    "runbook `{}` has `finally:` steps (`{}`), and this runbook has none to carry its cleanup",
                    name.value, f.id.value
                ),
            )
            .label("a runbook with cleanup")
            .help("a called runbook's `finally:` does not run inside this run: give this runbook a `finally:` that does what the run needs in its place");
        }
        for k in s.with.keys() {
            if !doc.vars.contains_key(&k.value) {
                let help = suggestion(&k.value, doc.vars.keys().map(String::as_str))
                    .unwrap_or_else(|| {
                        format!(
                            "`with` sets the vars of `{}`: {}",
                            name.value,
                            if doc.vars.is_empty() {
                                "it has none".to_owned()
                            } else {
                                doc.vars.keys().cloned().collect::<Vec<_>>().join(", ")
                            }
                        )
                    });
                self.err(
                    k.pos,
                    format!(
                        "step `{id}` sets `{}`, which is not a var of runbook `{}`",
                        k.value, name.value
                    ),
                )
                .label("unknown var")
                .help(help);
            }
        }
        self.merge_roles(name, doc);
        let lists = self.call_lists(id, &s.with, doc);
        let project = project.for_file(&path);
        let (plan, problems) = super::compile_in(
            &loaded,
            &project,
            library,
            // The caller's critical path is what `--strict` holds to its RTO.
            Options { strict: false },
            self.stack.clone(),
            &lists,
        );
        let Some(mut plan) = plan else {
            self.callee_broken(name, &problems);
            return None;
        };
        // Its `finally:` steps come last: they are left out (the caller's `finally:` runs).
        let cleanup = plan
            .steps
            .iter()
            .position(|s| s.finally)
            .unwrap_or(plan.steps.len());
        plan.steps.truncate(cleanup);
        let budget = match &s.budget {
            Some(b) => self.duration(&format!("`budget` of step `{id}`"), b)?,
            None => plan.rto,
        };
        Some(Called {
            title: s
                .title
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_else(|| plan.title.clone()),
            plan,
            budget,
            ends_rto: None,
            with: s
                .with
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.0.clone()))
                .collect(),
        })
    }

    /// The called runbook does not compile: its first error, at the call.
    fn callee_broken(&mut self, name: &Sp<String>, problems: &crate::diag::Problems) {
        let first = problems
            .0
            .iter()
            .find(|p| p.is_error())
            .map(|p| {
                let at = p.location().map(|l| format!(" ({l})")).unwrap_or_default();
                format!(": {}{at}", p.message)
            })
            .unwrap_or_default();
        self.err(
            name.pos,
            format!("runbook `{}` does not compile{first}", name.value),
        )
        .label("called here")
        .help(format!("run `runbook check {}`", name.value));
    }

    /// The called runbook's roles join the caller's; one role with other people is an error.
    fn merge_roles(&mut self, name: &Sp<String>, doc: &crate::format::RunbookDoc) {
        for (role, people) in &doc.roles {
            let theirs: BTreeSet<String> = people.iter().map(|p| p.value.clone()).collect();
            let ours: Option<(BTreeSet<String>, String)> = match self.doc.roles.get(role) {
                Some(p) => Some((
                    p.iter().map(|p| p.value.clone()).collect(),
                    "this runbook".to_owned(),
                )),
                None => self.merged_roles.get(role).cloned(),
            };
            match ours {
                Some((ours, from)) if ours != theirs => {
                    let list =
                        |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
                    self.err(
                        name.pos,
                        format!(
                            "role `{role}` is {} in {from} but {} in `{}`",
                            list(&ours),
                            list(&theirs),
                            name.value
                        ),
                    )
                    .label("conflicting role")
                    .help(
                        "a run has one definition of each role: make them the same, or rename one",
                    );
                }
                Some(_) => {}
                None => {
                    self.merged_roles
                        .insert(role.clone(), (theirs, format!("`{}`", name.value)));
                }
            }
        }
    }

    /// The prefixed ids of every called step, for the callers' templates.
    pub(super) fn called_ids(&self) -> BTreeSet<String> {
        self.called
            .iter()
            .flat_map(|(&i, c)| {
                let prefix = self.steps.get(i).map(|s| s.id.value.clone());
                c.plan
                    .steps
                    .iter()
                    .filter_map(move |s| prefix.as_ref().map(|p| format!("{p}.{}", s.id)))
            })
            .collect()
    }

    /// A call's place in the plan until [`Compiler::expand_calls`] replaces it with the
    /// called steps; its `with:` checked in the step's scope.
    pub(super) fn call_step(
        &mut self,
        i: usize,
        s: &StepDoc,
        graph: &Graph,
        scope: &Scope,
    ) -> Option<Step> {
        for v in s.with.values() {
            let sp = Sp::new(v.value.0.clone(), v.pos);
            self.check_template(&sp, Quoting::Plain, scope, "`with` value");
        }
        let called = self.called.get(&i)?;
        Some(Step {
            id: s.id.value.clone(),
            at: format!("{}:{}", self.file.display_name(), s.id.pos.line),
            title: called.title.clone(),
            description: s.description.clone(),
            needs: graph.needs.get(i).cloned().unwrap_or_default(),
            budget: called.budget,
            estimate: Estimate {
                min: Duration::ZERO,
                likely: Duration::ZERO,
                max: Duration::ZERO,
            },
            timeout: None,
            kind: StepKind::Command(Command {
                template: String::new(),
                inputs: None,
            }),
            drill: Drill::Run,
            retries: 0,
            backoff: super::Backoff::fixed(Duration::ZERO),
            poll: None,
            on_failure: Default::default(),
            idempotent: false,
            on: Vec::new(),
            fanout: Default::default(),
            env: BTreeMap::new(),
            uses: None,
            condition: None,
            finally: false,
            instance: None,
            call: None,
        })
    }

    /// Replaces each call with its runbook's steps: the plan's steps, `rto_ends_at` moved to
    /// the new indices, and the groups.
    pub(super) fn expand_calls(
        &mut self,
        steps: Vec<Step>,
        rto_ends_at: Option<usize>,
    ) -> (Vec<Step>, Option<usize>, Vec<Call>) {
        if self.called.is_empty() {
            return (steps, rto_ends_at, Vec::new());
        }
        // Where each step of this runbook lands, and what needing it means.
        let mut base = Vec::with_capacity(steps.len());
        let mut next = 0;
        for i in 0..steps.len() {
            base.push(next);
            next += self.called.get(&i).map_or(1, |c| c.plan.steps.len());
        }
        // `needs` hold indices of `steps`: each has its `base`.
        let targets = |j: usize| -> Vec<usize> {
            let Some(&at) = base.get(j) else {
                return Vec::new();
            };
            match self.called.get(&j) {
                Some(c) => {
                    let needed: BTreeSet<usize> =
                        c.plan.steps.iter().flat_map(|s| s.needs.clone()).collect();
                    (0..c.plan.steps.len())
                        .filter(|k| !needed.contains(k))
                        .map(|k| at + k)
                        .collect()
                }
                None => vec![at],
            }
        };
        let mut out = Vec::with_capacity(next);
        let mut calls = Vec::new();
        for (i, mut s) in steps.into_iter().enumerate() {
            let needs: Vec<usize> = s.needs.iter().flat_map(|&j| targets(j)).collect();
            let Some(c) = self.called.get(&i) else {
                s.needs = needs;
                out.push(s);
                continue;
            };
            let first = out.len();
            let scope = Arc::new(CallScope {
                prefix: s.id.clone(),
                vars: c.plan.vars.clone(),
                with: c.with.clone(),
                lists: c.plan.lists.keys().cloned().collect(),
                outer: None,
            });
            for cs in &c.plan.steps {
                let mut cs = cs.clone();
                cs.id = format!("{}.{}", s.id, cs.id);
                cs.needs = if cs.needs.is_empty() {
                    needs.clone()
                } else {
                    cs.needs.iter().map(|n| first + n).collect()
                };
                cs.call = Some(match &cs.call {
                    None => scope.clone(),
                    Some(inner) => nest(inner, &s.id, &scope),
                });
                out.push(cs);
            }
            calls.push(Call {
                id: s.id.clone(),
                title: c.title.clone(),
                runbook: c.plan.scenario.clone(),
                budget: c.budget,
                steps: (first..first + c.plan.steps.len()).collect(),
                sha256: c.plan.sha256.clone(),
                path: c.plan.path.clone(),
            });
            calls.extend(c.plan.calls.iter().map(|inner| Call {
                id: format!("{}.{}", s.id, inner.id),
                steps: inner.steps.iter().map(|k| first + k).collect(),
                ..inner.clone()
            }));
        }
        // A called step lands at its call's first index plus its own.
        let rto_ends_at = rto_ends_at.and_then(|j| {
            let inner = self.called.get(&j).and_then(|c| c.ends_rto).unwrap_or(0);
            base.get(j).map(|b| b + inner)
        });
        (out, rto_ends_at, calls)
    }

    /// The called runbooks' secrets and library steps join the plan's, and their roles.
    pub(super) fn merge_called(&mut self, plan: &mut Plan) {
        for c in self.called.values() {
            for s in &c.plan.secrets {
                if !plan.secrets.contains(s) {
                    plan.secrets.push(s.clone());
                }
            }
            for (k, v) in &c.plan.library {
                plan.library.insert(k.clone(), v.clone());
            }
            for (k, v) in &c.plan.roles {
                plan.roles.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }

    /// `rto_ends_at` cannot name a call: the RTO ends at a step that restores service.
    pub(super) fn rto_ends_at_call(&mut self, rto_ends_at: Option<usize>) {
        let (Some(i), Some(at)) = (rto_ends_at, self.doc.rto_ends_at.as_ref()) else {
            return;
        };
        if self.called.get(&i).is_some_and(|c| c.ends_rto.is_none()) {
            self.err(
                at.pos,
                format!("`rto_ends_at` names `{}`, a call of a runbook", at.value),
            )
            .label("a call")
            .help(format!("name the step whose success restores service: a step of this runbook, or one of the call's (`{}.<step>`)", at.value));
        }
    }
}

impl Compiler<'_> {
    /// `rto_ends_at: rs.verify`: a step of a called runbook, by its id in this run. `None`
    /// when the name starts with no call's id; otherwise the call's index (the called step
    /// is kept in [`Called::ends_rto`]), or `Some(None)` after an error at `rto_ends_at`.
    pub(super) fn rto_ends_at_called_step(&mut self, at: &Sp<String>) -> Option<Option<usize>> {
        let (i, prefix, rest) = self.called.keys().find_map(|&i| {
            let prefix = &self.steps.get(i)?.id.value;
            let rest = at.value.strip_prefix(prefix.as_str())?.strip_prefix('.')?;
            Some((i, prefix.clone(), rest.to_owned()))
        })?;
        let call = self.called.get(&i)?;
        let Some((k, step)) = call
            .plan
            .steps
            .iter()
            .enumerate()
            .find(|(_, s)| s.id == rest)
        else {
            let ids: Vec<String> = call
                .plan
                .steps
                .iter()
                .map(|s| format!("{prefix}.{}", s.id))
                .collect();
            let help = suggestion(&at.value, ids.iter().map(String::as_str))
                .unwrap_or_else(|| format!("the steps of the call `{prefix}`: {}", ids.join(", ")));
            let runbook = call.plan.scenario.clone();
            self.err(
                at.pos,
                format!(
                    "`rto_ends_at` names `{}`, which is not a step of runbook `{runbook}` (called by `{prefix}`)",
                    at.value
                ),
            )
            .label("unknown called step")
            .help(help);
            return Some(None);
        };
        if step.is_gate() {
            self.err(
                at.pos,
                format!("`rto_ends_at` names `{}`, an approval gate", at.value),
            )
            .label("a gate")
            .help("name the step whose success restores service (a check that the service answers), not a decision");
            return Some(None);
        }
        if step.instance.is_some() {
            self.err(
                at.pos,
                format!(
                    "`rto_ends_at` names `{}`, one item of a `for_each:` step",
                    at.value
                ),
            )
            .label("a loop's item")
            .help("service is restored when one step succeeds: name a step that needs the loop");
            return Some(None);
        }
        if let Some(c) = self.called.get_mut(&i) {
            c.ends_rto = Some(k);
        }
        Some(Some(i))
    }
}

/// A nested call's scope inside this call: its prefix under this call's id, and at its top,
/// this call's scope as the one its `with:` renders in.
fn nest(inner: &Arc<CallScope>, prefix: &str, outer: &Arc<CallScope>) -> Arc<CallScope> {
    Arc::new(CallScope {
        prefix: format!("{prefix}.{}", inner.prefix),
        vars: inner.vars.clone(),
        with: inner.with.clone(),
        lists: inner.lists.clone(),
        outer: Some(match &inner.outer {
            None => outer.clone(),
            Some(o) => nest(o, prefix, outer),
        }),
    })
}
