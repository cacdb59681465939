//! Runbook → [`Plan`]: every rule of the format checked (all problems of a file reported at
//! once), `uses:` expanded from the step library, the DAG checked for cycles, a deterministic
//! topological order (ties by file order) and the critical path of budgets (all three from
//! [`crate::dag`]), and the environment's inventory as [`Host`]s for the executor.

mod backoff;
mod calls;
mod checks;
mod conditions;
mod fanout;
mod finally;
mod gates;
mod graph;
mod hosts;
pub mod library;
mod list_vars;
mod loops;
mod operator;
mod output_loops;
mod plan;
mod steps;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::dag;
use crate::diag::{Problem, Problems, SourceFile, suggestion};
use crate::digest;
use crate::format::{Loaded, Pos, RunbookDoc, Sp, StepDoc, load_runbook};
use crate::project::Project;
use crate::template::{Quoting, Scope};
use crate::units::{DurationError, parse_duration};
use checks::{is_env_name, is_identifier, is_step_id, template_pos};
use graph::critical_path;

pub use hosts::{Host, Inventory, inventory, on_names, on_problems};
pub use library::Library;
pub use list_vars::{compile_with_lists, list_items, named_var, unfit_items};
pub use loops::waits;
pub use output_loops::{OutputLoop, parse_items};
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
    compile_in(rb, project, library, opts, Vec::new(), &BTreeMap::new())
}

/// Compiles a runbook called by the runbooks of `callers` (outermost first).
fn compile_in(
    rb: &Loaded<RunbookDoc>,
    project: &Project,
    library: &mut Library,
    opts: Options,
    mut callers: Vec<String>,
    run_lists: &BTreeMap<String, String>,
) -> (Option<Plan>, Problems) {
    callers.push(rb.doc.scenario.value.clone());
    let mut c = Compiler {
        file: rb.file.clone(),
        doc: &rb.doc,
        steps: rb.doc.steps.iter().chain(&rb.doc.finally).collect(),
        problems: Problems::default(),
        library: BTreeMap::new(),
        loops: BTreeMap::new(),
        stack: callers,
        called: BTreeMap::new(),
        merged_roles: BTreeMap::new(),
        run_lists,
        list_loops: BTreeMap::new(),
    };
    let plan = c.run(project, library, opts);
    let problems = c.problems;
    if problems.has_errors() {
        (None, problems)
    } else {
        (plan, problems)
    }
}

/// The names templates are given besides the vars: a var of one of these names would hide it
/// (or be hidden), silently.
fn reserved(name: &str) -> Option<&'static str> {
    Some(match name {
        "steps" => "the upstream steps' outputs (`steps['id'].outputs`)",
        "item" => "a loop's item",
        "run" => "the run's state (`run.mode`, `run.status`)",
        "env" => "the environment",
        "inputs" => "a library step's inputs",
        "message" => "a notification's message",
        _ => return None,
    })
}

struct Compiler<'a> {
    file: Arc<SourceFile>,
    doc: &'a RunbookDoc,
    /// The steps, then the `finally:` steps: one id space, indexed as in the plan.
    steps: Vec<&'a StepDoc>,
    problems: Problems,
    /// The library steps used, with the sha256 of each one's file.
    library: BTreeMap<String, String>,
    /// The `for_each:` steps' items by step id, for the templates that read their outputs.
    loops: BTreeMap<String, Vec<String>>,
    /// The runbooks being compiled, the outermost caller first and this one last.
    stack: Vec<String>,
    /// The runbooks called (`runbook:`), by the calling step's index.
    called: BTreeMap<usize, calls::Called>,
    /// Roles from called runbooks, with where each came from.
    merged_roles: BTreeMap<String, (BTreeSet<String>, String)>,
    /// The run's values of list variables (`a,b,c`), in place of their defaults.
    run_lists: &'a BTreeMap<String, String>,
    /// The loops over each list variable, by the variable's name.
    list_loops: BTreeMap<String, Vec<String>>,
}

impl<'a> Compiler<'a> {
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

    /// The top level, then the steps, then the graph: each check reports what it finds and
    /// the plan comes back only when none found an error.
    fn run(&mut self, project: &Project, library: &mut Library, opts: Options) -> Option<Plan> {
        let doc = self.doc;
        self.scenario_matches_file();
        let rto = self.duration("`rto`", &doc.rto);
        let rpo = doc.rpo.as_ref().and_then(|r| self.duration("`rpo`", r));
        let vars = self.vars_and_secrets();
        let escalation = self.escalation(&vars);

        // Ids first: everything else refers to them.
        let index = self.step_index();
        let graph = self.graph(&index);
        self.load_calls(project, library);
        let mut all_ids: BTreeSet<String> = index.keys().map(|s| s.to_string()).collect();
        all_ids.extend(self.called_ids());

        self.finally_needs(&graph);
        let output_loops = self.output_loops(&graph);
        // Their outputs are by item too, the items unknown until the run: no items here.
        for id in output_loops.keys() {
            self.loops.insert(id.clone(), Vec::new());
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        let mut items = Vec::with_capacity(self.steps.len());
        for s in self.steps.clone() {
            let list = self.loop_items(&s.id.value, s);
            if let Some(l) = &list {
                self.loops.insert(s.id.value.clone(), l.clone());
            }
            items.push(list);
        }
        for (i, s) in self.steps.clone().into_iter().enumerate() {
            steps.push(self.step(i, s, &graph, &all_ids, &vars, project, library));
        }
        if self.problems.has_errors() {
            return None;
        }
        let steps: Vec<Step> = steps.into_iter().map(Option::unwrap).collect();
        let rto_ends_at = self.rto_ends_at(&graph, &steps, &items);
        self.rto_ends_at_call(rto_ends_at);
        if self.problems.has_errors() {
            return None;
        }
        let rto = rto?;
        // Loops become their instances: from here on, indices are the plan's.
        let max_parallel: Vec<Option<u32>> = self
            .steps
            .iter()
            .map(|s| s.max_parallel.as_ref().map(|m| m.value))
            .collect();
        let (steps, at) = loops::expand(steps, &items, &max_parallel);
        let rto_ends_at = rto_ends_at.and_then(|i| at.get(i)?.first().copied());
        // A call is never a loop (`call_alone`): it keeps one index, now the plan's.
        self.called = std::mem::take(&mut self.called)
            .into_iter()
            .filter_map(|(i, c)| Some((*at.get(i)?.first()?, c)))
            .collect();
        let (steps, rto_ends_at, calls) = self.expand_calls(steps, rto_ends_at);
        let needs: Vec<Vec<usize>> = steps.iter().map(|s| s.needs.clone()).collect();
        let order = dag::topo_order(&needs);
        let (critical_path, critical_path_budget) = critical_path(&steps, &order, rto_ends_at);
        if critical_path_budget > rto {
            self.critical_path_over_rto(
                &steps,
                &critical_path,
                critical_path_budget,
                rto,
                rto_ends_at,
                opts,
            );
            if opts.strict {
                return None;
            }
        }

        let sha256 = digest::sha256_hex(self.file.text().as_bytes());
        let mut plan = Plan {
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
            calls,
            output_loops,
            lists: doc
                .vars
                .iter()
                .filter(|(_, v)| v.value.list().is_some())
                .map(|(k, _)| {
                    (
                        k.clone(),
                        self.list_loops.get(k).cloned().unwrap_or_default(),
                    )
                })
                .collect(),
        };
        self.merge_called(&mut plan);
        Some(plan)
    }

    /// `scenario:` is the file's name, so that `runbook run <scenario>` finds it.
    fn scenario_matches_file(&mut self) {
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
    }

    /// The vars (by name, for the templates) and the secrets' environment variable names.
    fn vars_and_secrets(&mut self) -> BTreeMap<String, String> {
        let doc = self.doc;
        let vars: BTreeMap<String, String> = doc
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.value.text()))
            .collect();
        self.check_list_vars();
        for (name, value) in &doc.vars {
            if !is_identifier(name) {
                self.err(
                    value.pos,
                    format!("variable name `{name}` cannot be used in templates"),
                )
                .help("variable names are letters, digits and `_`, not starting with a digit");
            } else if let Some(what) = reserved(name) {
                self.err(
                    value.pos,
                    format!("variable `{name}` has the name of {what}, which templates see"),
                )
                .label("a name templates already have")
                .help(format!(
                    "one of them would hide the other in every template: rename the variable (e.g. `{name}_`)"
                ));
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
        vars
    }

    /// The notify channels' templates and the escalation rules that name them.
    fn escalation(&mut self, vars: &BTreeMap<String, String>) -> Vec<Escalation> {
        let doc = self.doc;
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
        escalation
    }

    /// Each step's index by id (the first of a duplicated id), reporting malformed and
    /// repeated ids and a runbook without steps.
    fn step_index(&mut self) -> HashMap<&'a str, usize> {
        let doc = self.doc;
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.steps.len());
        for (i, s) in self.steps.clone().into_iter().enumerate() {
            if !is_step_id(&s.id.value) {
                self.err(s.id.pos, format!("step id `{}` is malformed", s.id.value))
                    .label("bad id")
                    .help("ids are lowercase letters, digits, `-` and `_`, starting with a letter or digit");
            }
            if let Some(first) = index.get(s.id.value.as_str()) {
                let line = self.steps.get(*first).map_or(0, |f| f.id.pos.line);
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
        index
    }

    /// A critical path longer than the RTO: a warning, or with `--strict` an error.
    fn critical_path_over_rto(
        &mut self,
        steps: &[Step],
        critical_path: &[usize],
        critical_path_budget: Duration,
        rto: Duration,
        rto_ends_at: Option<usize>,
        opts: Options,
    ) {
        let doc = self.doc;
        let names: Vec<&str> = critical_path
            .iter()
            .filter_map(|&i| steps.get(i).map(|s| s.id.as_str()))
            .collect();
        let msg = format!(
            "the critical path{} takes {} of budgets, over the RTO of {}: {}",
            // With `rto_ends_at`, the path to it: the observation after it is not counted.
            rto_ends_at
                .and_then(|i| steps.get(i))
                .map(|end| format!(" to `{}` (`rto_ends_at`)", end.id))
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
        self.problems
            .push(p.at(&self.file, doc.rto.pos).label("RTO target").help(
            "run steps in parallel where they are independent, tighten budgets, or revisit the RTO",
        ));
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
