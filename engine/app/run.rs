//! The `run` use case, and what it shares with `resume`: the plan, variables, environments,
//! who approves, and the journal's first event.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Error;
use super::error::Said;
use crate::compile::{self, Library, Options, Plan, StepKind};
use crate::diag::{Problem, Problems, suggestion};
use crate::exec::mask::Masker;
use crate::exec::{self, Config, Machine, Outcome, RunContext};
use crate::format::{EnvDoc, load_env};
use crate::journal::*;
use crate::project::Project;
use crate::state::{self, StateDir};
use crate::ui::observer::Observers;

/// A scenario compiled, and the warnings its compilation found (shown before it runs).
pub fn load_plan(scenario: &str) -> Result<(Plan, Problems), Error> {
    let project = Project::current();
    let path = project.resolve(scenario)?;
    let mut library = Library::new();
    let (plan, problems) = compile::compile_file(&project, &path, &mut library, Options::default());
    match plan {
        Some(plan) => Ok((plan, problems)),
        None => Err(Error::usage(problems)),
    }
}

/// Who is running or resuming: `--as`, else $USER.
pub fn operator(as_name: &Option<String>) -> String {
    as_name
        .clone()
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// Vars: the runbook's defaults, then the environment file, then `--var`. An environment file
/// serves every runbook, so it may set variables a runbook does not use (they are ignored);
/// a `--var` the runbook does not declare is an error: a typo must not silently leave the
/// default in place.
pub fn effective_vars(
    plan: &Plan,
    env: &EnvDoc,
    _env_name: Option<&str>,
    cli: &[String],
) -> Result<BTreeMap<String, String>, Problem> {
    let mut vars = plan.vars.clone();
    let known = |k: &str, vars: &BTreeMap<String, String>| -> Result<(), Problem> {
        if vars.contains_key(k) {
            return Ok(());
        }
        let help = suggestion(k, vars.keys().map(String::as_str)).unwrap_or_else(|| {
            format!(
                "the runbook declares: {}",
                vars.keys()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        Err(Problem::error(format!("`{}` has no variable `{k}`", plan.scenario)).help(help))
    };
    for (k, v) in &env.vars {
        if !vars.contains_key(k) {
            continue;
        }
        if let Some(items) = v.value.list() {
            // The run holds a list as `a,b`: an item with a `,` would be two, and a scalar
            // given a list would reach the commands as `a,b`.
            if !plan.lists.contains_key(k) {
                return Err(Problem::error(format!(
                    "the environment file gives `{k}` a list, but `{}` declares it as one value",
                    plan.scenario
                ))
                .help(format!(
                    "write one value: `{k}: {}`",
                    vars.get(k).map_or("", String::as_str)
                )));
            }
            if let Some(item) = items
                .iter()
                .find(|i| i.value.0.is_empty() || i.value.0.contains(','))
            {
                return Err(Problem::error(format!(
                    "item `{}` of list variable `{k}` in the environment file holds a `,` or is empty",
                    item.value.0
                ))
                .help("a list variable's value is its items joined by `,`: an item holds no `,`"));
            }
        }
        vars.insert(k.clone(), v.value.text());
    }
    for kv in cli {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Problem::error(format!("`--var {kv}` is not `K=V`"))
                .help("e.g. `--var database=omni`"));
        };
        known(k, &vars)?;
        vars.insert(k.to_owned(), v.to_owned());
    }
    super::lists::check_values(plan, &vars)?;
    Ok(vars)
}

/// Loads `--env`.
pub fn load_environment(project: &Project, name: Option<&str>) -> Result<EnvDoc, Error> {
    let Some(name) = name else {
        return Ok(EnvDoc::default());
    };
    let path = project.env_file(name);
    if !path.is_file() {
        return Err(Problem::error(format!(
            "no environment `{name}` (looked for {})",
            path.display()
        ))
        .help("environments live in runbooks/env/<name>.yaml; `--env local` for the sandbox")
        .into());
    }
    load_env(&path).map(|l| l.doc).map_err(Error::usage)
}

/// A real run outside a sandbox: there `--yes` stands for the person `--as` names, one
/// approval, and needs them to be a permitted approver.
pub fn yes_is_one_approval(mode: Mode, env: &EnvDoc) -> bool {
    mode == Mode::Real && !env.auto_approve
}

/// A drill in a rehearsal environment: its `mock` steps run their real commands. Only a drill:
/// a real run runs everything anyway, and a dry-run runs nothing.
pub fn rehearsal(mode: Mode, env: &EnvDoc) -> bool {
    mode == Mode::Drill && env.rehearsal
}

/// The steps a drill mocks, which a rehearsal runs for real, in plan order.
pub fn rehearsed_steps(plan: &Plan) -> Vec<String> {
    plan.order
        .iter()
        .map(|&i| &plan.steps[i])
        .filter(|s| !s.is_gate() && s.drill == crate::compile::Drill::Mock)
        .map(|s| s.id.clone())
        .collect()
}

/// The line a rehearsal starts with, so that nobody takes it for a drill that touches nothing.
pub fn rehearsal_header(plan: &Plan) -> String {
    let steps = rehearsed_steps(plan);
    format!(
        "rehearsal: {} that a drill mocks {} for real here{}",
        match steps.len() {
            1 => "1 step".to_owned(),
            n => format!("{n} steps"),
        },
        if steps.len() == 1 { "runs" } else { "run" },
        if steps.is_empty() {
            String::new()
        } else {
            format!(": {}", steps.join(", "))
        }
    )
}

/// Who approves at gates under `--yes`, if allowed; an error says why not.
pub fn auto_approver(
    plan: &Plan,
    mode: Mode,
    env: &EnvDoc,
    yes: bool,
    as_name: &Option<String>,
    operator: &str,
) -> Result<Option<String>, Problem> {
    if !yes || !plan.steps.iter().any(|s| s.is_gate()) {
        return Ok(None);
    }
    if !yes_is_one_approval(mode, env) {
        return Ok(Some(operator.to_owned()));
    }
    let Some(who) = as_name else {
        return Err(Problem::error("`--yes` in a real run needs `--as NAME`, naming a permitted approver")
            .help("real runs approve gates in someone's name; drills, dry-runs and environments with `auto_approve: true` do not need this"));
    };
    for s in &plan.steps {
        if let StepKind::Approval(a) = &s.kind
            && !plan.may_approve(a, who)
        {
            return Err(Problem::error(format!(
                "`{who}` may not approve gate `{}`, so `--yes` cannot either",
                s.id
            ))
            .help(format!("its approvers: {}", a.approvers.join(", "))));
        }
    }
    Ok(Some(who.clone()))
}

/// What can be known before anything runs, so it is not found out at step seven of an
/// incident: every name in an `on:` is a host or a group of the environment's inventory. Secrets that are not set are
/// only warned about (they are returned): a drill may not need them.
pub fn preflight(
    plan: &Plan,
    env: &EnvDoc,
    env_name: Option<&str>,
    mode: Mode,
) -> Result<Vec<String>, Problem> {
    let mut missing = Vec::new();
    let inventory = crate::compile::inventory(env);
    for s in &plan.steps {
        match inventory.resolve(&s.on) {
            Err(unknown) => {
                for h in unknown {
                    missing.push(format!("`{h}` (step `{}`)", s.id));
                }
            }
            // `on: [all]` with no inventory: a step that should reach hosts would reach none.
            Ok(hosts) if hosts.is_empty() && !s.on.is_empty() => {
                missing.push(format!("`{}` (step `{}`, no host)", s.on.join(", "), s.id));
            }
            Ok(_) => {}
        }
    }
    if !missing.is_empty() {
        let known: Vec<&str> = env
            .inventory
            .keys()
            .map(String::as_str)
            .chain(env.groups.keys().map(|g| g.value.as_str()))
            .collect();
        let help = match env_name {
            None => "pass `--env NAME`: hosts come from the environment's `inventory`".to_owned(),
            Some(e) if known.is_empty() => format!("environment `{e}` has no `inventory`"),
            Some(e) => format!("environment `{e}` has: {}", known.join(", ")),
        };
        return Err(Problem::error(format!(
            "hosts not in the inventory: {}",
            missing.join(", ")
        ))
        .help(help));
    }
    // A dry-run runs nothing and sends nothing: it needs no secret.
    if mode == Mode::DryRun {
        return Ok(Vec::new());
    }
    Ok(plan
        .secrets
        .iter()
        .filter(|n| std::env::var_os(n).is_none())
        .cloned()
        .collect())
}

pub fn plan_summary(plan: &Plan) -> PlanSummary {
    PlanSummary {
        steps: crate::journal::plan_steps(plan, 0..plan.steps.len()),
        critical_path: plan
            .critical_path
            .iter()
            .map(|&i| plan.steps[i].id.clone())
            .collect(),
        critical_path_ms: plan.critical_path_budget.as_millis() as u64,
        calls: plan
            .calls
            .iter()
            .map(|c| PlanCall {
                id: c.id.clone(),
                runbook: c.runbook.clone(),
                budget_ms: c.budget.as_millis() as u64,
                steps: c.steps.iter().map(|&i| plan.steps[i].id.clone()).collect(),
                sha256: Some(c.sha256.clone()),
            })
            .collect(),
    }
}

pub fn env_snapshot() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

/// What `run` was asked, in the command line's words but not its types.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub mode: Mode,
    /// `--env`: a name under runbooks/env/ or a path.
    pub env: Option<String>,
    /// `--var K=V`, as given.
    pub vars: Vec<String>,
    /// `--yes`: approve gates in the operator's name.
    pub yes: bool,
    /// `--as`.
    pub as_name: Option<String>,
    pub run_id: Option<String>,
    pub max_parallel: Option<u32>,
    /// Dry-runs: draw durations from the estimates with this seed instead of the likely values.
    pub sample: Option<u64>,
    /// `--key`: the key the run's seals are signed with.
    pub key: Option<PathBuf>,
}

/// What a run is settled on before anything is written: its environment and variables.
#[derive(Debug)]
pub struct Settled {
    pub env: EnvDoc,
    pub vars: BTreeMap<String, String>,
    /// Secrets the plan uses that are not set: said before the run, not refused (a drill may
    /// not need them).
    pub unset_secrets: Vec<String>,
}

/// The checks that need no state folder: the environment, the variables, the hosts.
pub fn settle(plan: &Plan, req: &RunRequest) -> Result<Settled, Error> {
    let project = Project::at(plan.root.clone());
    let env = load_environment(&project, req.env.as_deref())?;
    let vars = effective_vars(plan, &env, req.env.as_deref(), &req.vars)?;
    let unset_secrets = preflight(plan, &env, req.env.as_deref(), req.mode)?;
    Ok(Settled {
        env,
        vars,
        unset_secrets,
    })
}

/// A run that ran: its id and how it ended.
#[derive(Debug)]
pub struct Ran {
    pub run_id: String,
    pub result: Result<Outcome, exec::ExecError>,
}

/// A run's folder and journal, created under the scenario's lock (none for a dry-run).
struct Opened {
    run_id: String,
    run_dir: PathBuf,
    journal: Journal,
    _lock: Option<state::Lock>,
}

/// Runs a settled plan to its end: the gates' auto-approver, the run's folder, lock and
/// journal, then the executor (a virtual clock for a dry-run). `observers` makes the run's
/// watchers: the caller's, as they are how the run is shown.
pub fn run(
    plan: Plan,
    settled: Settled,
    req: &RunRequest,
    state: &StateDir,
    observers: &dyn Fn(&Plan) -> Observers,
) -> Result<Ran, Error> {
    let Settled { env, vars, .. } = settled;
    let plan = super::lists::with_run_lists(plan, &vars)?;
    let mode = req.mode;
    let operator = operator(&req.as_name);
    let auto = auto_approver(&plan, mode, &env, req.yes, &req.as_name, &operator)?;
    let signers = super::signers::run_signers(&plan, mode, &env, req.yes)?;
    let key = super::signers::seal_key(req.key.as_deref(), mode, &operator, signers.0.as_ref())?;
    let Opened {
        run_id,
        run_dir,
        journal,
        _lock,
    } = open(&plan, req, state)?;
    // The runbook exactly as it ran, for audits (`export`); its sha256 is in run_started.
    let _ = std::fs::copy(&plan.path, run_dir.join("runbook.yaml"));
    // And each runbook it calls, by name: their sha256 are in run_started.plan.calls.
    if !plan.calls.is_empty() && std::fs::create_dir_all(run_dir.join("calls")).is_ok() {
        for c in &plan.calls {
            let _ = std::fs::copy(
                &c.path,
                run_dir.join("calls").join(format!("{}.yaml", c.runbook)),
            );
        }
    }
    let mask = Arc::new(Masker::from_env(&plan.secrets));
    let plan = Arc::new(plan);
    let started = run_started(&plan, req, &env, &vars, &mask, &run_id, &operator);
    // The keys as this run read them, kept beside its journal: a resume and `verify` check
    // against this copy, never the project's file as it is later.
    let started = match (started, &signers) {
        (EventKind::RunStarted(mut s), (Some(signers), required)) => {
            if let Err(e) = std::fs::write(run_dir.join("allowed_signers"), &signers.text) {
                return Err(Error::usage(Said::error(format!(
                    "cannot keep a copy of allowed_signers in {}: {e}",
                    run_dir.display()
                ))));
            }
            s.allowed_signers_sha256 = Some(signers.sha256());
            s.signed_approvals = *required;
            EventKind::RunStarted(s)
        }
        (EventKind::RunStarted(mut s), (None, required)) => {
            s.signed_approvals = *required;
            EventKind::RunStarted(s)
        }
        (other, _) => other,
    };
    let (signers, required) = signers;
    let mut cx = RunContext {
        plan: plan.clone(),
        run_dir: run_dir.clone(),
        journal,
        mask: mask.clone(),
        observers: observers(&plan),
        operator: operator.clone(),
        mode,
        epoch: Utc::now(),
        inventory: crate::compile::inventory(&env),
        interactive: std::io::stdin().is_terminal() && mode != Mode::DryRun,
        tty_signals: std::io::stdin().is_terminal(),
        signatures: exec::Signatures {
            run_id: run_id.clone(),
            signers: signers.clone(),
            required,
            requests: BTreeMap::new(),
        },
        seal_key: key.map(|key| exec::SealKey {
            key,
            run: run_id.clone(),
        }),
    };
    if signers.is_none() && mode != Mode::DryRun && plan.steps.iter().any(|s| s.is_gate()) {
        cx.observers.notice(
            "approvals are not authenticated: anyone can answer a gate as anyone (add `runbooks/allowed_signers` to require SSH-signed decisions)",
        );
    }
    if let Err(e) = cx.record_all(Duration::ZERO, vec![started]) {
        return Err(Error::usage(Said::error(e.to_string())));
    }
    if rehearsal(mode, &env) {
        cx.observers.notice(&rehearsal_header(&plan));
    }
    let cfg = Config {
        run_id: run_id.clone(),
        mode,
        max_parallel: req.max_parallel.map(|n| n as usize),
        auto_approve_as: auto,
        yes_is_one_approval: yes_is_one_approval(mode, &env),
        vars,
        env: env_snapshot(),
        durations: req
            .sample
            .map(|seed| crate::simulate::sample_durations(&plan, seed)),
        rehearsal: rehearsal(mode, &env),
        signed_approvals: required,
    };
    let mut machine = Machine::new(plan.clone(), cfg, (*mask).clone());
    let result = if mode == Mode::DryRun {
        exec::dry_run(&mut cx, &mut machine)
    } else {
        let rt = exec::runtime();
        rt.block_on(async {
            let interrupts = exec::watch_signals()?;
            exec::execute(cx, machine, Duration::ZERO, Vec::new(), interrupts).await
        })
    };
    Ok(Ran { run_id, result })
}

/// The run's id, folder and journal; one live run per scenario, so the lock first. Dry-runs
/// touch nothing and take no lock.
fn open(plan: &Plan, req: &RunRequest, state: &StateDir) -> Result<Opened, Error> {
    let run_id = req
        .run_id
        .clone()
        .unwrap_or_else(|| state.new_run_id(&plan.scenario));
    if !is_run_id(&run_id) {
        return Err(Problem::error(format!("run id `{run_id}` is malformed"))
            .help("use letters, digits, `-`, `_` and `.`")
            .into());
    }
    let lock = if req.mode == Mode::DryRun {
        None
    } else {
        match state::lock(&state.lock_path(&plan.scenario), &run_id) {
            Ok(l) => Some(l),
            Err(Ok(holder)) => {
                return Err(Problem::error(format!(
                    "scenario `{}` is already running as run `{}`{}",
                    plan.scenario,
                    holder.run_id,
                    holder
                        .pid
                        .map(|p| format!(" (pid {p})"))
                        .unwrap_or_default()
                ))
                .help(format!(
                    "follow it with `runbook status {}`; one live run per scenario",
                    holder.run_id
                ))
                .into());
            }
            Err(Err(e)) => {
                return Err(Error::usage(Said::error(format!(
                    "cannot take the lock {}: {e}",
                    state.lock_path(&plan.scenario).display()
                ))));
            }
        }
    };
    let run_dir = state.create_run(&run_id).map_err(|e| {
        Problem::error(format!(
            "cannot create run `{run_id}` in {}: {e}",
            state.runs_dir().display()
        ))
        .help("a run id can be used once; leave out `--run-id` to get a fresh one")
    })?;
    let journal = Journal::create(&run_dir.join("journal.jsonl")).map_err(|e| {
        Error::usage(Said::error(format!(
            "cannot create the journal in {}: {e}",
            run_dir.display()
        )))
    })?;
    Ok(Opened {
        run_id,
        run_dir,
        journal,
        _lock: lock,
    })
}

/// The journal's first event: what ran, how, by whom, with which (masked) variables.
fn run_started(
    plan: &Plan,
    req: &RunRequest,
    env: &EnvDoc,
    vars: &BTreeMap<String, String>,
    mask: &Masker,
    run_id: &str,
    operator: &str,
) -> EventKind {
    let masked_vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.clone(), mask.mask(v)))
        .collect();
    let secret_vars: Vec<String> = masked_vars
        .iter()
        .filter(|(k, v)| vars.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    EventKind::RunStarted(Box::new(RunStarted {
        run_id: run_id.to_owned(),
        scenario: plan.scenario.clone(),
        title: plan.title.clone(),
        mode: Some(req.mode),
        operator: operator.to_owned(),
        runbook: crate::format::display_path(&plan.path),
        runbook_sha256: plan.sha256.clone(),
        rto_ms: plan.rto.as_millis() as u64,
        rpo_ms: plan.rpo.map(|r| r.as_millis() as u64),
        env: req.env.clone(),
        vars: masked_vars,
        plan: plan_summary(plan),
        max_parallel: req.max_parallel,
        library_sha256: plan.library.clone(),
        masked_vars: Some(secret_vars),
        journal_version: Some(crate::journal::VERSION),
        rehearsal: rehearsal(req.mode, env),
        rto_ends_at: plan.rto_ends_at.map(|i| plan.steps[i].id.clone()),
        ..RunStarted::default()
    }))
}

fn is_run_id(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
