//! Compiling each step: its command or library step (`uses:`, `with:`), its kind (the gate's
//! own rules are in `gates.rs`), and its drill behaviour.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::diag::{Problem, suggestion};
use crate::digest;
use crate::format::{DrillDoc, LibraryDoc, Sp, StepDoc, Text};
use crate::project::Project;
use crate::template::{self, Quoting, Scope, StepsScope};
use crate::units::Estimate;

use super::checks::is_env_name;
use super::graph::Graph;
use super::{Command, Compiler, Drill, Library, Poll, Step, StepKind, library};

impl Compiler<'_> {
    /// One step: what it runs (a command, a library step or a gate), its budgets and retries,
    /// its title and environment, and what a drill does with it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(
        &mut self,
        i: usize,
        s: &StepDoc,
        graph: &Graph,
        all_ids: &BTreeSet<String>,
        vars: &BTreeMap<String, String>,
        project: &Project,
        library: &mut Library,
    ) -> Option<Step> {
        let id = s.id.value.as_str();
        if s.runbook.is_none() {
            self.one_kind(id, s);
        }

        // What this step's templates may see.
        // In a cyclic graph "upstream" means nothing; the cycle is reported, and references
        // to any existing step are let through rather than reported twice.
        // A called step (`restore.verify`) is upstream when its call (`restore`) is.
        let main = self.doc.steps.len();
        let is_upstream = |other: &str| match graph.index.get(other).or_else(|| {
            other
                .split_once('.')
                .and_then(|(call, _)| graph.index.get(call))
        }) {
            Some(&j) if super::finally::reads_main_step(main, i, j) => true,
            Some(&j) if !graph.acyclic => j != i,
            Some(&j) => graph.is_upstream(j, i),
            None => false,
        };
        let loops = self.loops.clone();
        let mut names: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
        if s.for_each.is_some() {
            names.insert("item");
        }
        let scope = Scope {
            names,
            steps: Some(StepsScope {
                is_upstream: &is_upstream,
                all: all_ids,
                this: id,
                loops: &loops,
            }),
            inputs: None,
            run: i >= self.doc.steps.len(),
        };
        if s.runbook.is_some() {
            return self.call_step(i, s, graph, &scope);
        }

        let lib = self.library_step(s, project, library);
        let lib_doc = lib.as_ref().map(|l| &l.loaded.doc);

        let (budget, estimate) = self.budget_and_estimate(id, s, lib_doc);
        let timeout = self.opt_duration(
            &format!("`timeout` of step `{id}`"),
            s.timeout
                .as_ref()
                .or(lib_doc.and_then(|l| l.timeout.as_ref())),
        );
        let backoff = self.backoff(
            id,
            s.backoff
                .as_ref()
                .or(lib_doc.and_then(|l| l.backoff.as_ref())),
        );
        let poll = self.poll(id, s, lib_doc);
        let retries = s
            .retries
            .as_ref()
            .or(lib_doc.and_then(|l| l.retries.as_ref()))
            .map(|r| r.value)
            .unwrap_or(0);
        let idempotent = s
            .idempotent
            .or(lib_doc.and_then(|l| l.idempotent))
            .unwrap_or(false);
        let (title, env) = self.title_and_env(id, s, lib_doc, &scope);
        let (kind, drill) = self.kind_and_drill(id, s, lib.as_deref(), &scope);

        let condition = self.condition(id, s, &scope);

        let on: Vec<String> = s.on.iter().map(|h| h.value.clone()).collect();
        let fanout = self.fanout(id, s);
        let at_line = s
            .run
            .as_ref()
            .map(|r| r.pos)
            .or(s.uses.as_ref().map(|u| u.pos))
            .unwrap_or(s.id.pos)
            .line;
        Some(Step {
            id: id.to_owned(),
            at: format!("{}:{at_line}", self.file.display_name()),
            title,
            description: s.description.clone(),
            needs: graph.needs.get(i).cloned().unwrap_or_default(),
            budget: budget?,
            estimate: estimate?,
            timeout,
            kind: kind?,
            drill,
            retries,
            backoff,
            poll,
            on_failure: s.on_failure.unwrap_or_default(),
            idempotent,
            on,
            fanout,
            env,
            uses: s.uses.as_ref().map(|u| u.value.clone()),
            condition,
            finally: i >= self.doc.steps.len(),
            instance: None,
            call: None,
        })
    }

    /// A step has exactly one of `run`, `uses` and `approval`, and `with` only with `uses`.
    fn one_kind(&mut self, id: &str, s: &StepDoc) {
        let kinds = [
            s.run.is_some(),
            s.uses.is_some(),
            s.approval.is_some(),
            s.input.is_some(),
            s.manual.is_some(),
        ];
        let n_kinds = kinds.iter().filter(|k| **k).count();
        if n_kinds != 1 {
            let msg = if n_kinds == 0 {
                format!("step `{id}` does nothing")
            } else if s.manual.is_some() {
                format!(
                    "step `{id}` has `manual` and also one of `run`, `uses`, `approval` or `input`"
                )
            } else if s.input.is_some() {
                format!("step `{id}` has `input` and also one of `run`, `uses` or `approval`")
            } else {
                format!("step `{id}` has more than one of `run`, `uses` and `approval`")
            };
            self.err(s.id.pos, msg)
                .help("give each step exactly one of `run` (a command), `uses` (a library step) or `approval` (a gate)");
        }
        if !s.with.is_empty() && s.uses.is_none() {
            let pos = s.with.keys().next().map(|k| k.pos).unwrap_or(s.id.pos);
            self.err(pos, format!("step `{id}` has `with` but no `uses`"))
                .help("`with` gives inputs to a library step named by `uses`");
        }
    }

    /// The library step that `uses:` names, its digest recorded for the plan.
    fn library_step(
        &mut self,
        s: &StepDoc,
        project: &Project,
        library: &mut Library,
    ) -> Option<Arc<library::Entry>> {
        match &s.uses {
            Some(u) => match library.get(project, &u.value) {
                Ok(Some(l)) => {
                    if !self.library.contains_key(&u.value) {
                        self.library.insert(
                            u.value.clone(),
                            library_digest(project, l.loaded.file.text()),
                        );
                    }
                    Some(l)
                }
                Ok(None) => {
                    let names = project.library_names();
                    let help = suggestion(&u.value, names.iter().map(String::as_str))
                        .unwrap_or_else(|| {
                            format!(
                                "library steps live in steps/<system>/<name>.yaml; there are: {}",
                                names.join(", ")
                            )
                        });
                    self.err(u.pos, format!("`uses: {}` names no library step", u.value))
                        .label("not found")
                        .help(help);
                    None
                }
                Err(problems) => {
                    self.problems.extend(problems);
                    self.err(u.pos, format!("library step `{}` is invalid", u.value))
                        .help("fix the library step's own errors, reported above");
                    None
                }
            },
            None => None,
        }
    }

    /// The budget (the step's or its library step's; one is required) and the estimate
    /// (around the budget when none is given).
    fn budget_and_estimate(
        &mut self,
        id: &str,
        s: &StepDoc,
        lib_doc: Option<&LibraryDoc>,
    ) -> (Option<Duration>, Option<Estimate>) {
        let budget_sp = s
            .budget
            .as_ref()
            .or(lib_doc.and_then(|l| l.budget.as_ref()));
        let budget = match budget_sp {
            Some(b) => self.duration(&format!("`budget` of step `{id}`"), b),
            None => {
                self.err(s.id.pos, format!("step `{id}` has no `budget`"))
                    .help("add `budget: 15m`: the step's share of the RTO, warned at 80% and breached at 100%");
                None
            }
        };
        let estimate_sp = s
            .estimate
            .as_ref()
            .or(lib_doc.and_then(|l| l.estimate.as_ref()));
        let estimate = match (estimate_sp, budget) {
            (Some(e), _) => match Estimate::parse(&e.value) {
                Ok(est) => Some(est),
                Err(msg) => {
                    self.err(e.pos, format!("`estimate` of step `{id}`: {msg}"))
                        .label("bad estimate")
                        .help("write `min..likely..max` or `min..max`, e.g. `5m..15m..60m`");
                    None
                }
            },
            (None, Some(b)) => Some(Estimate::around(b)),
            (None, None) => None,
        };
        (budget, estimate)
    }

    /// `poll:` (the step's or its library step's): `every` above zero and at most `within`.
    fn poll(&mut self, id: &str, s: &StepDoc, lib_doc: Option<&LibraryDoc>) -> Option<Poll> {
        let poll_doc = s.poll.as_ref().or(lib_doc.and_then(|l| l.poll.as_ref()));
        match poll_doc {
            Some(p) => {
                let every = self.duration(&format!("`poll.every` of step `{id}`"), &p.every);
                let within = self.duration(&format!("`poll.within` of step `{id}`"), &p.within);
                match (every, within) {
                    (Some(every), Some(within)) if every.is_zero() || every > within => {
                        self.err(p.every.pos, format!("`poll.every` of step `{id}` must be above zero and at most `within`"))
                            .help("e.g. `poll: { every: 10s, within: 10m }`");
                        None
                    }
                    (Some(every), Some(within)) => Some(Poll { every, within }),
                    _ => None,
                }
            }
            None => None,
        }
    }

    /// The title (the step's, its library step's or its id) and the environment, the step's
    /// values over its library step's.
    fn title_and_env(
        &mut self,
        id: &str,
        s: &StepDoc,
        lib_doc: Option<&LibraryDoc>,
        scope: &Scope,
    ) -> (String, BTreeMap<String, String>) {
        // The title and env values render plain; the command renders shell-quoted.
        let title = match &s.title {
            Some(t) => {
                self.check_template(t, Quoting::Plain, scope, "title");
                t.value.clone()
            }
            None => lib_doc
                .map(|l| l.title.value.clone())
                .unwrap_or_else(|| id.to_owned()),
        };
        let mut env = BTreeMap::new();
        if let Some(l) = lib_doc {
            for (k, v) in &l.env {
                env.insert(k.clone(), v.value.0.clone());
            }
        }
        for (k, v) in &s.env {
            if !is_env_name(k) {
                self.err(v.pos, format!("`{k}` is not an environment variable name"))
                    .help("environment names are letters, digits and `_`");
            }
            let sp = Sp::new(v.value.0.clone(), v.pos);
            self.check_template(&sp, Quoting::Plain, scope, "env value");
            env.insert(k.clone(), v.value.0.clone());
        }
        (title, env)
    }

    /// What the step runs, its templates checked, and what a drill does with it.
    fn kind_and_drill(
        &mut self,
        id: &str,
        s: &StepDoc,
        lib: Option<&library::Entry>,
        scope: &Scope,
    ) -> (Option<StepKind>, Drill) {
        let lib_doc = lib.map(|l| &l.loaded.doc);
        let drill_sp = s.drill.as_ref().or(lib_doc.and_then(|l| l.drill.as_ref()));
        let mut kind = None;
        let mut drill = Drill::Run;

        if let Some(run) = &s.run {
            self.check_template(run, Quoting::Shell, scope, "command");
            kind = Some(StepKind::Command(Command {
                template: run.value.clone(),
                inputs: None,
            }));
        }
        if let (Some(uses), Some(l)) = (&s.uses, lib) {
            let inputs = self.inputs(id, uses, &s.with, l, scope);
            kind = Some(StepKind::Command(Command {
                template: l.loaded.doc.run.value.clone(),
                inputs: Some(inputs),
            }));
        }
        if let Some(a) = &s.approval {
            if let Some(d) = &s.drill {
                self.err(d.pos, format!("approval step `{id}` takes no `drill`"))
                    .help("gates ask in drills too; answer them, or pass `--yes` to a drill");
            }
            kind = self.approval(id, a, scope).map(StepKind::Approval);
        }
        if let Some(input) = &s.input {
            if let Some(d) = &s.drill {
                self.err(d.pos, format!("input step `{id}` takes no `drill`"))
                    .help("a dry-run takes the input's `default`; a drill asks as a real run does");
            }
            kind = self.input_step(id, input, scope).map(StepKind::Approval);
        }
        if let Some(manual) = &s.manual {
            kind = self.manual_step(id, manual, s.drill.as_ref().map(|d| d.pos), scope);
        }

        if s.run.is_some() || s.uses.is_some() {
            match drill_sp {
                None => {
                    self.err(s.id.pos, format!("step `{id}` runs a command but declares no `drill`"))
                        .label("no drill")
                        .help("say what a drill does: `drill: run` (safe as is), `skip`, `mock`, `{ run: <command> }` or `{ with: { <input>: <value> } }`");
                }
                Some(d) => {
                    drill = self.drill(id, d, s, lib, scope);
                }
            }
        }
        (kind, drill)
    }

    /// The inputs of a library step: `with` checked against the declared inputs, defaults
    /// applied, required ones present.
    fn inputs(
        &mut self,
        id: &str,
        uses: &Sp<String>,
        with: &BTreeMap<Sp<String>, Sp<Text>>,
        lib: &library::Entry,
        scope: &Scope,
    ) -> BTreeMap<String, String> {
        let declared = &lib.loaded.doc.inputs;
        let mut out = BTreeMap::new();
        for (k, v) in with {
            if !declared.contains_key(&k.value) {
                let help = suggestion(&k.value, declared.keys().map(String::as_str))
                    .unwrap_or_else(|| {
                        format!(
                            "`{}` takes: {}",
                            uses.value,
                            declared
                                .keys()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                self.err(
                    k.pos,
                    format!("`{}` has no input `{}`", uses.value, k.value),
                )
                .label("unknown input")
                .help(help);
                continue;
            }
            let sp = Sp::new(v.value.0.clone(), v.pos);
            self.check_template(&sp, Quoting::Plain, scope, "input");
            out.insert(k.value.clone(), v.value.0.clone());
        }
        for (name, input) in declared {
            if out.contains_key(name) {
                continue;
            }
            match &input.default {
                Some(d) => {
                    out.insert(name.clone(), d.value.0.clone());
                }
                None if input.required => {
                    self.err(
                        uses.pos,
                        format!("step `{id}` is missing input `{name}` of `{}`", uses.value),
                    )
                    .label("missing input")
                    .help(format!(
                        "add `with: {{ {name}: ... }}`{}",
                        input
                            .description
                            .as_ref()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    ));
                }
                None => {
                    out.insert(name.clone(), String::new());
                }
            }
        }
        out
    }

    fn drill(
        &mut self,
        id: &str,
        d: &Sp<DrillDoc>,
        s: &StepDoc,
        lib: Option<&library::Entry>,
        scope: &Scope,
    ) -> Drill {
        match &d.value {
            DrillDoc::Run => Drill::Run,
            DrillDoc::Skip => Drill::Skip,
            DrillDoc::Mock => Drill::Mock,
            DrillDoc::Command(c) => {
                // A library step's own drill command sees only its inputs.
                let from_library = s.drill.is_none();
                if from_library && let Some(l) = lib {
                    let inputs: BTreeSet<&str> =
                        l.loaded.doc.inputs.keys().map(String::as_str).collect();
                    let lscope = Scope {
                        inputs: Some(inputs),
                        ..Default::default()
                    };
                    let errs = template::check(&c.value, Quoting::Shell, &lscope);
                    self.template_errors(&l.loaded.file.clone(), c, errs, "drill command");
                    return Drill::Command {
                        template: c.value.clone(),
                        library: true,
                    };
                }
                self.check_template(c, Quoting::Shell, scope, "drill command");
                Drill::Command {
                    template: c.value.clone(),
                    library: false,
                }
            }
            DrillDoc::With(with) => {
                let Some(l) = lib else {
                    self.err(d.pos, format!("step `{id}` has `drill: {{ with: ... }}` but no `uses`"))
                        .help("`with` gives other inputs to a library step; for a command use `drill: { run: ... }`");
                    return Drill::Skip;
                };
                let declared = &l.loaded.doc.inputs;
                let mut out = BTreeMap::new();
                let file = if s.drill.is_some() {
                    self.file.clone()
                } else {
                    l.loaded.file.clone()
                };
                for (k, v) in with {
                    if !declared.contains_key(&k.value) {
                        let help = suggestion(&k.value, declared.keys().map(String::as_str));
                        self.problems.push(
                            Problem::error(format!(
                                "drill of step `{id}` sets input `{}`, which `{}` does not have",
                                k.value,
                                s.uses.as_ref().map(|u| u.value.as_str()).unwrap_or("")
                            ))
                            .at(&file, k.pos)
                            .label("unknown input")
                            .maybe_help(help),
                        );
                        continue;
                    }
                    if s.drill.is_some() {
                        let sp = Sp::new(v.value.0.clone(), v.pos);
                        self.check_template(&sp, Quoting::Plain, scope, "drill input");
                    }
                    out.insert(k.value.clone(), v.value.0.clone());
                }
                Drill::With(out)
            }
        }
    }
}

/// What a library step runs, as one sha256: its YAML, the files under `steps/` that its
/// commands name (its script: `./steps/storage/prune.sh`), and the shared `steps/lib/`. A
/// resumed run must run the same code, not only the same YAML.
pub(super) fn library_digest(project: &Project, yaml: &str) -> String {
    let mut h = digest::Hasher::new();
    h.update(yaml.as_bytes());
    let mut files: BTreeSet<std::path::PathBuf> = BTreeSet::new();
    let mut rest = yaml;
    while let Some((_, tail)) = rest.split_once("steps/") {
        let n = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')))
            .unwrap_or(tail.len());
        let (path, after) = tail.split_at_checked(n).unwrap_or((tail, ""));
        files.insert(project.root.join(format!("steps/{path}")));
        rest = after;
    }
    if let Ok(rd) = std::fs::read_dir(project.steps_dir().join("lib")) {
        files.extend(rd.filter_map(Result::ok).map(|e| e.path()));
    }
    for f in files.iter().filter(|f| f.is_file()) {
        if let Ok(bytes) = std::fs::read(f) {
            let name = f.strip_prefix(&project.root).unwrap_or(f);
            h.update(name.to_string_lossy().as_bytes());
            h.update(&bytes);
        }
    }
    h.finish()
}
