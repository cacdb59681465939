//! Runbook → [`Plan`]: every rule of the format checked (all problems of a file reported at
//! once), `uses:` expanded from the step library, the DAG checked for cycles, a deterministic
//! topological order (ties by file order) and the critical path of budgets (all three from
//! [`crate::dag`]), and the environment's inventory as [`Host`]s for the executor.

mod hosts;
pub mod library;
mod plan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::dag;
use crate::diag::{Problem, Problems, SourceFile, suggestion};
use crate::digest;
use crate::format::{
    ApprovalDoc, DrillDoc, Loaded, Pos, RunbookDoc, Sp, StepDoc, Text, load_runbook,
};
use crate::project::Project;
use crate::template::{self, Quoting, Scope, StepsScope};
use crate::units::{DurationError, Estimate, parse_duration};

pub use hosts::{Host, hosts};
pub use library::Library;
pub use plan::*;

/// How strict the check is.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// A critical path longer than the RTO is an error, not a warning.
    pub strict: bool,
}

/// Loads and compiles one runbook file. Errors and warnings come back together; the plan only
/// when there is no error.
pub fn compile_file(
    project: &Project,
    path: &std::path::Path,
    library: &mut Library,
    opts: Options,
) -> (Option<Plan>, Problems) {
    match load_runbook(path) {
        Ok(loaded) => {
            let project = project.for_file(path);
            compile(&loaded, &project, library, opts)
        }
        Err(p) => (None, p),
    }
}

/// Compiles a loaded runbook.
pub fn compile(
    rb: &Loaded<RunbookDoc>,
    project: &Project,
    library: &mut Library,
    opts: Options,
) -> (Option<Plan>, Problems) {
    let mut c = Compiler {
        file: rb.file.clone(),
        doc: &rb.doc,
        problems: Problems::default(),
        library: BTreeMap::new(),
    };
    let plan = c.run(project, library, opts);
    let problems = c.problems;
    if problems.has_errors() {
        (None, problems)
    } else {
        (plan, problems)
    }
}

struct Compiler<'a> {
    file: Arc<SourceFile>,
    doc: &'a RunbookDoc,
    problems: Problems,
    /// The library steps used, with the sha256 of each one's file.
    library: BTreeMap<String, String>,
}

/// One step's own view while compiling: which steps it may take outputs from.
struct Graph {
    needs: Vec<Vec<usize>>,
    acyclic: bool,
    /// Step index by id (the first step of a duplicated id).
    index: HashMap<String, usize>,
}

impl Graph {
    /// Is step `j` upstream of step `i`?
    fn is_upstream(&self, j: usize, i: usize) -> bool {
        dag::is_upstream(&self.needs, j, i)
    }
}

impl Compiler<'_> {
    fn err(&mut self, pos: Pos, message: impl Into<String>) -> ProblemBuilder<'_> {
        let p = Problem::error(message).at(&self.file, pos);
        ProblemBuilder {
            problems: &mut self.problems,
            p: Some(p),
        }
    }

    fn duration(&mut self, what: &str, sp: &Sp<String>) -> Option<Duration> {
        match parse_duration(&sp.value) {
            Ok(d) => Some(d),
            Err(e @ DurationError::TooLong { .. }) => {
                self.err(sp.pos, format!("{what}: {e}"))
                    .label("too long")
                    .help("write it in hours or days, e.g. `4h` or `2d`");
                None
            }
            Err(e) => {
                self.err(sp.pos, format!("{what}: {e}"))
                    .label("not a duration")
                    .help("write durations like `90s`, `15m`, `1h30m`");
                None
            }
        }
    }

    fn opt_duration(&mut self, what: &str, sp: Option<&Sp<String>>) -> Option<Duration> {
        sp.and_then(|s| self.duration(what, s))
    }

    #[expect(
        clippy::too_many_lines,
        reason = "left by issue 15: Compiler::run checks the top level, the steps and the graph in turn; those are its seams"
    )]
    fn run(&mut self, project: &Project, library: &mut Library, opts: Options) -> Option<Plan> {
        let doc = self.doc;
        let stem = self
            .file
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if doc.scenario.value != stem {
            self.err(
                doc.scenario.pos,
                format!(
                    "`scenario` is `{}` but the file is `{stem}.yaml`",
                    doc.scenario.value
                ),
            )
            .label("must equal the file stem")
            .help(format!(
                "rename the file or write `scenario: {stem}`: a scenario is found by its file name"
            ));
        }
        let rto = self.duration("`rto`", &doc.rto);
        let rpo = doc.rpo.as_ref().and_then(|r| self.duration("`rpo`", r));

        let vars: BTreeMap<String, String> = doc
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.value.0.clone()))
            .collect();
        for name in doc.vars.keys() {
            if !is_identifier(name) {
                let pos = doc.vars[name].pos;
                self.err(
                    pos,
                    format!("variable name `{name}` cannot be used in templates"),
                )
                .help("variable names are letters, digits and `_`, not starting with a digit");
            }
        }
        for s in &doc.secrets {
            if !is_env_name(&s.value) {
                self.err(
                    s.pos,
                    format!("`{}` is not an environment variable name", s.value),
                )
                .help("secrets name environment variables, e.g. `POSTGRES_PASSWORD`");
            }
        }

        // Notify channels are command templates that see the vars and `message`.
        let mut notify_names: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
        notify_names.insert("message");
        let notify_scope = Scope {
            names: notify_names,
            ..Default::default()
        };
        for tmpl in doc.notify.values() {
            self.check_template(tmpl, Quoting::Shell, &notify_scope, "notify command");
        }
        let mut escalation = Vec::new();
        for e in &doc.escalation {
            let after = self.duration("escalation `after`", &e.after);
            if !doc.notify.contains_key(&e.notify.value) {
                let help = suggestion(&e.notify.value, doc.notify.keys().map(String::as_str))
                    .unwrap_or_else(|| "declare the channel under `notify:`".into());
                self.err(
                    e.notify.pos,
                    format!("no notify channel `{}`", e.notify.value),
                )
                .label("unknown channel")
                .help(help);
            }
            if let Some(after) = after {
                escalation.push(Escalation {
                    after,
                    channel: e.notify.value.clone(),
                });
            }
        }

        // Ids first: everything else refers to them.
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(doc.steps.len());
        for (i, s) in doc.steps.iter().enumerate() {
            if !is_step_id(&s.id.value) {
                self.err(s.id.pos, format!("step id `{}` is malformed", s.id.value))
                    .label("bad id")
                    .help("ids are lowercase letters, digits, `-` and `_`, starting with a letter or digit");
            }
            if let Some(&first) = index.get(s.id.value.as_str()) {
                let line = doc.steps[first].id.pos.line;
                self.err(s.id.pos, format!("step id `{}` is used twice", s.id.value))
                    .label("second use")
                    .help(format!(
                        "the first is on line {line}; give each step its own id"
                    ));
            } else {
                index.insert(&s.id.value, i);
            }
        }
        if doc.steps.is_empty() {
            self.err(doc.scenario.pos, "the runbook has no steps")
                .help("add at least one step under `steps:`");
        }
        let graph = self.graph(&index);
        let all_ids: BTreeSet<String> = index.keys().map(|s| s.to_string()).collect();

        let mut steps = Vec::with_capacity(doc.steps.len());
        for (i, s) in doc.steps.iter().enumerate() {
            steps.push(self.step(i, s, &graph, &all_ids, &vars, project, library));
        }
        if self.problems.has_errors() {
            return None;
        }
        let steps: Vec<Step> = steps.into_iter().map(Option::unwrap).collect();
        let rto_ends_at = self.rto_ends_at(&graph, &steps);
        if self.problems.has_errors() {
            return None;
        }
        let rto = rto?;
        let order = dag::topo_order(&graph.needs);
        let (critical_path, critical_path_budget) = critical_path(&steps, &order, rto_ends_at);

        if critical_path_budget > rto {
            let names: Vec<&str> = critical_path
                .iter()
                .map(|&i| steps[i].id.as_str())
                .collect();
            let msg = format!(
                "the critical path{} takes {} of budgets, over the RTO of {}: {}",
                // With `rto_ends_at`, the path to it: the observation after it is not counted.
                rto_ends_at
                    .map(|i| format!(" to `{}` (`rto_ends_at`)", steps[i].id))
                    .unwrap_or_default(),
                crate::units::fmt_duration(critical_path_budget),
                crate::units::fmt_duration(rto),
                names.join(" → ")
            );
            let p = if opts.strict {
                Problem::error(msg)
            } else {
                Problem::warning(msg)
            };
            self.problems.push(
                p.at(&self.file, doc.rto.pos)
                    .label("RTO target")
                    .help("run steps in parallel where they are independent, tighten budgets, or revisit the RTO"),
            );
            if opts.strict {
                return None;
            }
        }

        let sha256 = digest::sha256_hex(self.file.text().as_bytes());
        Some(Plan {
            scenario: doc.scenario.value.clone(),
            title: doc.title.value.clone(),
            description: doc.description.clone(),
            rto,
            rpo,
            roles: doc
                .roles
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(|n| n.value.clone()).collect()))
                .collect(),
            vars,
            secrets: doc.secrets.iter().map(|s| s.value.clone()).collect(),
            notify: doc
                .notify
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            escalation,
            steps,
            rto_ends_at,
            order,
            critical_path,
            critical_path_budget,
            path: self.file.path.clone(),
            root: project.root.clone(),
            sha256,
            library: std::mem::take(&mut self.library),
        })
    }

    /// `rto_ends_at:` names a step of the runbook that runs something: a gate restores no
    /// service, so the RTO cannot end at one.
    fn rto_ends_at(&mut self, graph: &Graph, steps: &[Step]) -> Option<usize> {
        let at = self.doc.rto_ends_at.as_ref()?;
        let Some(&i) = graph.index.get(&at.value) else {
            let help = suggestion(
                &at.value,
                self.doc.steps.iter().map(|s| s.id.value.as_str()),
            )
            .unwrap_or_else(|| {
                "`rto_ends_at` names the id of the step at which service is restored".into()
            });
            self.err(
                at.pos,
                format!("`rto_ends_at` names `{}`, which is not a step", at.value),
            )
            .label("unknown step")
            .help(help);
            return None;
        };
        if steps[i].is_gate() {
            self.err(
                at.pos,
                format!("`rto_ends_at` names `{}`, an approval gate", at.value),
            )
            .label("a gate")
            .help("name the step whose success restores service (a check that the service answers), not a decision");
            return None;
        }
        Some(i)
    }

    /// Resolves `needs` and finds cycles, naming every step on each.
    fn graph(&mut self, index: &HashMap<&str, usize>) -> Graph {
        let doc = self.doc;
        let ids: Vec<&str> = doc.steps.iter().map(|s| s.id.value.as_str()).collect();
        let mut needs = vec![Vec::new(); doc.steps.len()];
        for (i, s) in doc.steps.iter().enumerate() {
            for n in &s.needs {
                match index.get(n.value.as_str()) {
                    Some(&j) => {
                        if !needs[i].contains(&j) {
                            needs[i].push(j);
                        }
                    }
                    None => {
                        let help = suggestion(&n.value, ids.iter().copied())
                            .unwrap_or_else(|| "`needs` names ids of steps in this runbook".into());
                        self.err(
                            n.pos,
                            format!(
                                "step `{}` needs `{}`, which does not exist",
                                s.id.value, n.value
                            ),
                        )
                        .label("no such step")
                        .help(help);
                    }
                }
            }
        }
        let cycles = dag::cycles(&needs);
        let acyclic = cycles.is_empty();
        for cycle in cycles {
            let first = cycle[0];
            let mut names: Vec<&str> = cycle.iter().map(|&i| ids[i]).collect();
            names.push(ids[first]);
            let s = &doc.steps[first];
            // Point at the `needs` entry that closes the cycle.
            let next = cycle.get(1).copied().unwrap_or(first);
            let pos = s
                .needs
                .iter()
                .find(|n| n.value == ids[next])
                .map(|n| n.pos)
                .unwrap_or(s.id.pos);
            self.err(pos, format!("steps form a cycle: {}", names.join(" → ")))
                .label("closes the cycle")
                .help(
                    "a step cannot wait, directly or not, for itself: remove one of these `needs`",
                );
        }
        let index = index.iter().map(|(k, &v)| (k.to_string(), v)).collect();
        Graph {
            needs,
            acyclic,
            index,
        }
    }

    #[expect(
        clippy::too_many_lines,
        reason = "left by issue 15: Compiler::step compiles each kind of step (run, uses, approval) in one place; one function per kind is the split"
    )]
    #[allow(clippy::too_many_arguments)]
    fn step(
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
        let kinds = [s.run.is_some(), s.uses.is_some(), s.approval.is_some()];
        let n_kinds = kinds.iter().filter(|k| **k).count();
        if n_kinds != 1 {
            let msg = if n_kinds == 0 {
                format!("step `{id}` does nothing")
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

        // What this step's templates may see.
        // In a cyclic graph "upstream" means nothing; the cycle is reported, and references
        // to any existing step are let through rather than reported twice.
        let is_upstream = |other: &str| match graph.index.get(other) {
            Some(&j) if !graph.acyclic => j != i,
            Some(&j) => graph.is_upstream(j, i),
            None => false,
        };
        let names: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
        let scope = Scope {
            names,
            steps: Some(StepsScope {
                is_upstream: &is_upstream,
                all: all_ids,
                this: id,
            }),
            inputs: None,
        };

        let lib = match &s.uses {
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
        };
        let lib_doc = lib.as_ref().map(|l| &l.loaded.doc);

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
        let timeout = self.opt_duration(
            &format!("`timeout` of step `{id}`"),
            s.timeout
                .as_ref()
                .or(lib_doc.and_then(|l| l.timeout.as_ref())),
        );
        let backoff = self
            .opt_duration(
                &format!("`backoff` of step `{id}`"),
                s.backoff
                    .as_ref()
                    .or(lib_doc.and_then(|l| l.backoff.as_ref())),
            )
            .unwrap_or(Duration::from_secs(5));
        let poll_doc = s.poll.as_ref().or(lib_doc.and_then(|l| l.poll.as_ref()));
        let poll = match poll_doc {
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
        };
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

        // The title and env values render plain; the command renders shell-quoted.
        let title = match &s.title {
            Some(t) => {
                self.check_template(t, Quoting::Plain, &scope, "title");
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
            self.check_template(&sp, Quoting::Plain, &scope, "env value");
            env.insert(k.clone(), v.value.0.clone());
        }

        let drill_sp = s.drill.as_ref().or(lib_doc.and_then(|l| l.drill.as_ref()));
        let mut action = None;
        let mut drill = Drill::Run;

        if let Some(run) = &s.run {
            self.check_template(run, Quoting::Shell, &scope, "command");
            action = Some(Action::Command(Command {
                template: run.value.clone(),
                inputs: None,
            }));
        }
        if let (Some(uses), Some(l)) = (&s.uses, &lib) {
            let inputs = self.inputs(id, uses, &s.with, l, &scope);
            action = Some(Action::Command(Command {
                template: l.loaded.doc.run.value.clone(),
                inputs: Some(inputs),
            }));
        }
        if let Some(a) = &s.approval {
            if let Some(d) = &s.drill {
                self.err(d.pos, format!("approval step `{id}` takes no `drill`"))
                    .help("gates ask in drills too; answer them, or pass `--yes` to a drill");
            }
            action = self.approval(id, a, &scope).map(Action::Approval);
        }

        if s.run.is_some() || s.uses.is_some() {
            match drill_sp {
                None => {
                    self.err(s.id.pos, format!("step `{id}` runs a command but declares no `drill`"))
                        .label("no drill")
                        .help("say what a drill does: `drill: run` (safe as is), `skip`, `mock`, `{ run: <command> }` or `{ with: { <input>: <value> } }`");
                }
                Some(d) => {
                    drill = self.drill(id, d, s, lib.as_deref(), &scope);
                }
            }
        }

        let on: Vec<String> = s.on.iter().map(|h| h.value.clone()).collect();
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
            needs: graph.needs[i].clone(),
            budget: budget?,
            estimate: estimate?,
            timeout,
            action: action?,
            drill,
            retries,
            backoff,
            poll,
            on_failure: s.on_failure.unwrap_or_default(),
            idempotent,
            on,
            env,
            uses: s.uses.as_ref().map(|u| u.value.clone()),
        })
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

    fn approval(&mut self, id: &str, a: &ApprovalDoc, scope: &Scope) -> Option<Approval> {
        self.check_template(&a.prompt, Quoting::Plain, scope, "prompt");
        if a.approvers.is_empty() {
            self.err(a.prompt.pos, format!("approval `{id}` names no approvers"))
                .help("list roles (from `roles:`) or people under `approvers`");
        }
        // An approver nobody can answer as (a typo'd role) leaves the gate unopenable: the
        // run would wait there until its timeout. Only a role, or a person who holds one,
        // can ever approve.
        let roles = &self.doc.roles;
        for x in &a.approvers {
            let known = roles.contains_key(&x.value)
                || roles.values().flatten().any(|p| p.value == x.value);
            if !known {
                let candidates: BTreeSet<&str> = roles
                    .keys()
                    .map(String::as_str)
                    .chain(roles.values().flatten().map(|p| p.value.as_str()))
                    .collect();
                let help = suggestion(&x.value, candidates.iter().copied()).unwrap_or_else(|| {
                    if roles.is_empty() {
                        "declare it under `roles:` (`roles: { NAME: [person, ...] }`)".into()
                    } else {
                        format!(
                            "name a role ({}) or a person of one, or add it under `roles:`",
                            roles
                                .keys()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                });
                self.err(
                    x.pos,
                    format!(
                        "approval `{id}` names approver `{}`, which is neither a role nor a person of a role",
                        x.value
                    ),
                )
                .label("no such role or person")
                .help(help);
            }
        }
        let min = a.min.as_ref().map(|m| m.value).unwrap_or(1);
        if let Some(m) = &a.min {
            if m.value == 0 {
                self.err(m.pos, format!("approval `{id}` needs `min` of at least 1"))
                    .help("a gate that needs nobody is not a gate; remove the step instead");
            }
            // When every approver is a role, the people who could approve are known.
            let roles = &self.doc.roles;
            if a.approvers.iter().all(|x| roles.contains_key(&x.value)) {
                let people: BTreeSet<&str> = a
                    .approvers
                    .iter()
                    .flat_map(|r| roles[&r.value].iter().map(|n| n.value.as_str()))
                    .collect();
                if (people.len() as u32) < m.value {
                    self.err(
                        m.pos,
                        format!(
                            "approval `{id}` needs {} approvers but its roles hold {} people",
                            m.value,
                            people.len()
                        ),
                    )
                    .help("add people to the roles, name more approvers, or lower `min`");
                }
            }
        }
        let timeout = self.opt_duration(
            &format!("approval `timeout` of step `{id}`"),
            a.timeout.as_ref(),
        );
        let mut page_after = BTreeMap::new();
        for (role, after) in &a.page_after {
            let what = format!("`page_after.{role}` of step `{id}`");
            if let Some(d) = self.duration(&what, after) {
                page_after.insert(role.clone(), d);
            }
            // Paging is by notify channel: a name that is not one of this gate's approvers,
            // or not a channel, would page nobody.
            if !a.approvers.iter().any(|x| &x.value == role) {
                let help = suggestion(role, a.approvers.iter().map(|x| x.value.as_str()))
                    .unwrap_or_else(|| {
                        format!(
                            "`page_after` names approvers of this gate: {}",
                            a.approvers
                                .iter()
                                .map(|x| x.value.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                self.err(
                    after.pos,
                    format!("{what} names `{role}`, which is not an approver of the gate"),
                )
                .label("not an approver")
                .help(help);
            } else if !self.doc.notify.contains_key(role) {
                self.err(
                    after.pos,
                    format!("{what} names `{role}`, which is not a notify channel"),
                )
                .label("no such channel")
                .help(format!(
                    "nobody would be paged: declare `{role}` under `notify:`, or remove it from `page_after`"
                ));
            }
        }
        Some(Approval {
            prompt: a.prompt.value.clone(),
            approvers: a.approvers.iter().map(|x| x.value.clone()).collect(),
            min,
            timeout,
            page_after,
        })
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

    fn check_template(&mut self, sp: &Sp<String>, q: Quoting, scope: &Scope, what: &str) {
        let errs = template::check(&sp.value, q, scope);
        let file = self.file.clone();
        self.template_errors(&file, sp, errs, what);
    }

    fn template_errors(
        &mut self,
        file: &Arc<SourceFile>,
        sp: &Sp<String>,
        errs: Vec<template::TemplateError>,
        what: &str,
    ) {
        for e in errs {
            let pos = template_pos(file, sp, e.range.clone());
            self.problems.push(
                Problem::error(format!("{what}: {}", e.message))
                    .at(file, pos)
                    .label("here")
                    .maybe_help(e.help),
            );
        }
    }
}

struct ProblemBuilder<'a> {
    problems: &'a mut Problems,
    p: Option<Problem>,
}

impl ProblemBuilder<'_> {
    fn label(mut self, l: impl Into<String>) -> Self {
        self.p = self.p.take().map(|p| p.label(l));
        self
    }
    fn help(mut self, h: impl Into<String>) -> Self {
        self.p = self.p.take().map(|p| p.help(h));
        self
    }
}

impl Drop for ProblemBuilder<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.p.take() {
            self.problems.push(p);
        }
    }
}

/// The position of a byte range inside a template, in the file. Quoted and block scalars
/// start after their quote or indicator line; where the text cannot be found, the whole
/// scalar is pointed at.
///
/// Every offset here comes from elsewhere (the YAML parser, minijinja, a search) and may fall
/// inside a multi-byte character of the file or of the template, so the text is only ever
/// read through `get`, which answers `None` where slicing would panic.
fn template_pos(file: &SourceFile, sp: &Sp<String>, range: Option<std::ops::Range<usize>>) -> Pos {
    let text = file.text();
    let start = sp.pos.offset.min(text.len());
    let Some(after) = text.get(start..) else {
        return sp.pos;
    };
    let src = &sp.value;
    let first_line = src.lines().next().unwrap_or("");
    let base = if after.starts_with(src.as_str()) {
        Some(start)
    } else if after.get(1..).is_some_and(|a| a.starts_with(src.as_str())) {
        Some(start + 1)
    } else if !first_line.is_empty() {
        // Search only near the scalar: within its own extent.
        let window_end = text
            .floor_char_boundary((start + sp.pos.len.max(first_line.len()) + 2).min(text.len()));
        text.get(start..window_end)
            .and_then(|w| w.find(first_line))
            .map(|i| start + i)
    } else {
        None
    };
    // A scalar folded over lines is found nowhere whole, but it starts where the parser says
    // (or after its quote) and the part before the range may still sit there verbatim.
    let verbatim = |base: usize, end: usize| {
        src.get(..end)
            .is_some_and(|s| text.get(base..base + end) == Some(s))
    };
    let base = base.or_else(|| {
        let end = range.as_ref()?.end;
        [start, start + 1].into_iter().find(|&b| verbatim(b, end))
    });
    match (base, range) {
        (Some(base), Some(r))
            if src
                .get(..r.end)
                .and_then(|s| s.get(r.start..))
                .is_some_and(|s| !s.contains('\n') || r.start == r.end) =>
        {
            // Only exact when the template before the range sits verbatim in the file.
            let offset = base + r.start;
            if verbatim(base, r.end)
                && let Some(before) = text.get(..offset)
            {
                let line = before.matches('\n').count() as u32 + 1;
                let col = before.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
                return Pos {
                    line,
                    column: col,
                    offset,
                    len: r.len(),
                };
            }
            sp.pos
        }
        _ => sp.pos,
    }
}

/// The longest path of budgets through the DAG; ties go to the step earliest in the file.
/// With `rto_ends_at`, the longest path that ends at that step: the observation after it does
/// not count against the RTO.
fn critical_path(steps: &[Step], order: &[usize], end: Option<usize>) -> (Vec<usize>, Duration) {
    let weights: Vec<Duration> = steps.iter().map(|s| s.budget).collect();
    let needs: Vec<&[usize]> = steps.iter().map(|s| s.needs.as_slice()).collect();
    dag::longest_path_to(&weights, &needs, order, end)
}

fn is_step_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_env_name(s: &str) -> bool {
    is_identifier(s)
}

/// What a library step runs, as one sha256: its YAML, the files under `steps/` that its
/// commands name (its script: `./steps/storage/prune.sh`), and the shared `steps/lib/`. A
/// resumed run must run the same code, not only the same YAML.
fn library_digest(project: &Project, yaml: &str) -> String {
    let mut h = digest::Hasher::new();
    h.update(yaml.as_bytes());
    let mut files: BTreeSet<std::path::PathBuf> = BTreeSet::new();
    let mut rest = yaml;
    while let Some(at) = rest.find("steps/") {
        let from = &rest[at..];
        let n = from
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')))
            .unwrap_or(from.len());
        files.insert(project.root.join(&from[..n]));
        rest = &from[n.max(1)..];
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
