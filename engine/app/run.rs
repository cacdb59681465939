//! `runbook run`, and what it shares with `resume`: variables, environments, the shell.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::cli::plan_view::load_plan;
use crate::cli::{Style, exit};
use crate::compile::{Action as StepAction, Plan};
use crate::diag::{Problem, suggestion};
use crate::exec::mask::Masker;
use crate::exec::observer::{Bars, JsonLines, Observers, Plain};
use crate::exec::{self, Config, Machine, Outcome, Shell};
use crate::journal::*;
use crate::project::Project;
use crate::runbook::{EnvDoc, load_env};
use crate::state::{self, StateDir};
use crate::units::fmt_duration;

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// A scenario name (runbooks/<name>.yaml) or a path to a runbook file.
    pub scenario: String,
    /// Run each step's drill variant: safe by construction.
    #[arg(long, conflicts_with = "dry_run")]
    pub drill: bool,
    /// Execute nothing: play estimated durations on a virtual clock.
    #[arg(long)]
    pub dry_run: bool,
    /// An environment: a name under runbooks/env/ or a path to a file.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Set a variable (repeatable).
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// Approve gates automatically, in the operator's name.
    #[arg(long)]
    pub yes: bool,
    /// Who is running (and approving at this terminal); default: $USER.
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
    /// Use this run id instead of a generated one (`<time>-<scenario>`).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// At most N steps at once (default: as many as the DAG allows).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// Write the event stream to stdout, one JSON object a line.
    #[arg(long)]
    pub json: bool,
    /// Exit 4 when the run finished but missed its RTO target.
    #[arg(long)]
    pub strict_rto: bool,
    /// Exit 1 when a step with `on_failure: continue` failed, although the run succeeded.
    #[arg(long)]
    pub strict: bool,
    /// Dry-runs: draw each step's duration from its estimate instead of the likely value.
    #[arg(long, requires = "dry_run")]
    pub sample: bool,
    /// Seed for --sample.
    #[arg(long, value_name = "S", default_value_t = 1, requires = "sample")]
    pub seed: u64,
}

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
        if vars.contains_key(k) {
            vars.insert(k.clone(), v.value.0.clone());
        }
    }
    for kv in cli {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Problem::error(format!("`--var {kv}` is not `K=V`"))
                .help("e.g. `--var database=omni`"));
        };
        known(k, &vars)?;
        vars.insert(k.to_owned(), v.to_owned());
    }
    Ok(vars)
}

/// Loads `--env`; problems are reported here, and `Err` carries the exit code.
pub fn load_environment(project: &Project, name: Option<&str>) -> Result<EnvDoc, u8> {
    let Some(name) = name else {
        return Ok(EnvDoc::default());
    };
    let path = project.env_file(name);
    if !path.is_file() {
        crate::cli::report_problem(
            Problem::error(format!(
                "no environment `{name}` (looked for {})",
                path.display()
            ))
            .help("environments live in runbooks/env/<name>.yaml; `--env local` for the sandbox"),
        );
        return Err(exit::USAGE);
    }
    load_env(&path).map(|l| l.doc).map_err(|p| {
        crate::cli::report_problems(&p);
        exit::USAGE
    })
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
        if let StepAction::Approval(a) = &s.action
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
/// incident: every `on:` host is in the environment's inventory. Secrets that are not set are
/// only warned about: a drill may not need them.
pub fn preflight(
    plan: &Plan,
    env: &EnvDoc,
    env_name: Option<&str>,
    mode: Mode,
) -> Result<(), Problem> {
    let mut missing = Vec::new();
    for s in &plan.steps {
        for h in &s.on {
            if !env.inventory.contains_key(h) {
                missing.push(format!("`{h}` (step `{}`)", s.id));
            }
        }
    }
    if !missing.is_empty() {
        let known: Vec<&str> = env.inventory.keys().map(String::as_str).collect();
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
    let unset: Vec<&str> = plan
        .secrets
        .iter()
        .filter(|n| std::env::var_os(n).is_none())
        .map(String::as_str)
        .collect();
    if mode != Mode::DryRun && !unset.is_empty() {
        eprintln!(
            "warning: not set in the environment: {} (the steps and notifications that use them will fail)",
            unset.join(", ")
        );
    }
    Ok(())
}

pub fn plan_summary(plan: &Plan) -> PlanSummary {
    PlanSummary {
        steps: plan
            .steps
            .iter()
            .map(|s| PlanStep {
                id: s.id.clone(),
                title: s.title.clone(),
                needs: s.needs.iter().map(|&j| plan.steps[j].id.clone()).collect(),
                budget_ms: s.budget.as_millis() as u64,
                estimate_ms: [
                    s.estimate.min.as_millis() as u64,
                    s.estimate.likely.as_millis() as u64,
                    s.estimate.max.as_millis() as u64,
                ],
                gate: s.is_gate(),
                idempotent: s.idempotent,
                continue_on_failure: s.on_failure == crate::runbook::OnFailure::Continue,
            })
            .collect(),
        critical_path: plan
            .critical_path
            .iter()
            .map(|&i| plan.steps[i].id.clone())
            .collect(),
        critical_path_ms: plan.critical_path_budget.as_millis() as u64,
    }
}

pub fn observers(plan: &Plan, json: bool) -> Observers {
    let style = Style::stderr();
    let budgets = plan
        .steps
        .iter()
        .map(|s| (s.id.clone(), s.budget))
        .collect();
    let tty = std::io::stderr().is_terminal();
    Observers {
        plain: (!tty).then_some(Plain {
            color: false,
            rto_ms: plan.rto.as_millis() as u64,
            show_logs: true,
        }),
        bars: tty.then(|| {
            Bars::new(
                budgets,
                plan.rto,
                plan.rto_ends_at.map(|i| plan.steps[i].id.clone()),
                style.color,
            )
        }),
        json: json.then_some(JsonLines),
    }
}

/// What turns a run that succeeded into a failing exit code.
#[derive(Clone, Copy, Debug, Default)]
pub struct Strict {
    /// `--strict-rto`: a missed RTO exits 4.
    pub rto: bool,
    /// `--strict`: a step that failed with `on_failure: continue` exits 1.
    pub continued: bool,
}

/// The exit code of a run; `continued` is how many steps failed with `on_failure: continue`.
pub fn outcome_code(o: Outcome, strict: Strict, continued: usize) -> u8 {
    match o {
        Outcome::Succeeded { .. } if strict.continued && continued > 0 => exit::FAILED,
        Outcome::Succeeded { rto_met } => {
            if strict.rto && !rto_met {
                exit::RTO_MISSED
            } else {
                exit::OK
            }
        }
        Outcome::Failed { rto_met: _ } => exit::FAILED,
        Outcome::Stopped => exit::STOPPED,
    }
}

pub fn env_snapshot() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

pub fn run(args: RunArgs, state_dir: Option<PathBuf>) -> u8 {
    let Some(plan) = load_plan(&args.scenario) else {
        return exit::USAGE;
    };
    let project = Project::at(plan.root.clone());
    let Ok(env) = load_environment(&project, args.env.as_deref()) else {
        return exit::USAGE;
    };
    let vars = match effective_vars(&plan, &env, args.env.as_deref(), &args.vars) {
        Ok(v) => v,
        Err(p) => {
            crate::cli::report_problem(p);
            return exit::USAGE;
        }
    };
    let mode = if args.dry_run {
        Mode::DryRun
    } else if args.drill {
        Mode::Drill
    } else {
        Mode::Real
    };
    if let Err(p) = preflight(&plan, &env, args.env.as_deref(), mode) {
        crate::cli::report_problem(p);
        return exit::USAGE;
    }
    let operator = operator(&args.as_name);
    let auto = match auto_approver(&plan, mode, &env, args.yes, &args.as_name, &operator) {
        Ok(a) => a,
        Err(p) => {
            crate::cli::report_problem(p);
            return exit::USAGE;
        }
    };
    let state = StateDir::resolve(state_dir);
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| state.new_run_id(&plan.scenario));
    if !is_run_id(&run_id) {
        crate::cli::report_problem(
            Problem::error(format!("run id `{run_id}` is malformed"))
                .help("use letters, digits, `-`, `_` and `.`"),
        );
        return exit::USAGE;
    }
    // One live run per scenario; dry-runs touch nothing and take no lock.
    let _lock = if mode == Mode::DryRun {
        None
    } else {
        match state::lock(&state.lock_path(&plan.scenario), &run_id) {
            Ok(l) => Some(l),
            Err(Ok(holder)) => {
                crate::cli::report_problem(
                    Problem::error(format!(
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
                    )),
                );
                return exit::USAGE;
            }
            Err(Err(e)) => {
                eprintln!(
                    "error: cannot take the lock {}: {e}",
                    state.lock_path(&plan.scenario).display()
                );
                return exit::USAGE;
            }
        }
    };
    let run_dir = match state.create_run(&run_id) {
        Ok(d) => d,
        Err(e) => {
            crate::cli::report_problem(
                Problem::error(format!(
                    "cannot create run `{run_id}` in {}: {e}",
                    state.runs_dir().display()
                ))
                .help("a run id can be used once; leave out `--run-id` to get a fresh one"),
            );
            return exit::USAGE;
        }
    };
    // The runbook exactly as it ran, for audits (`export`); its sha256 is in run_started.
    let _ = std::fs::copy(&plan.path, run_dir.join("runbook.yaml"));
    let journal = match Journal::create(&run_dir.join("journal.jsonl")) {
        Ok(j) => j,
        Err(e) => {
            eprintln!(
                "error: cannot create the journal in {}: {e}",
                run_dir.display()
            );
            return exit::USAGE;
        }
    };
    let mask = Arc::new(Masker::from_env(&plan.secrets));
    let plan = Arc::new(plan);
    let masked_vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.clone(), mask.mask(v)))
        .collect();
    let secret_vars: Vec<String> = masked_vars
        .iter()
        .filter(|(k, v)| vars.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    let mut shell = Shell {
        plan: plan.clone(),
        run_dir: run_dir.clone(),
        journal,
        mask: mask.clone(),
        observers: observers(&plan, args.json),
        operator: operator.clone(),
        mode,
        epoch: Utc::now(),
        inventory: env.inventory.clone(),
        interactive: std::io::stdin().is_terminal() && mode != Mode::DryRun,
        tty_signals: std::io::stdin().is_terminal(),
    };
    let started = EventKind::RunStarted(Box::new(RunStarted {
        run_id: run_id.clone(),
        scenario: plan.scenario.clone(),
        title: plan.title.clone(),
        mode: Some(mode),
        operator: operator.clone(),
        runbook: crate::runbook::display_path(&plan.path),
        runbook_sha256: plan.sha256.clone(),
        rto_ms: plan.rto.as_millis() as u64,
        rpo_ms: plan.rpo.map(|r| r.as_millis() as u64),
        env: args.env.clone(),
        vars: masked_vars,
        plan: plan_summary(&plan),
        max_parallel: args.max_parallel,
        library_sha256: plan.library.clone(),
        masked_vars: Some(secret_vars),
        journal_version: Some(crate::journal::VERSION),
        rehearsal: rehearsal(mode, &env),
        rto_ends_at: plan.rto_ends_at.map(|i| plan.steps[i].id.clone()),
    }));
    if let Err(e) = shell.record_all(Duration::ZERO, vec![started]) {
        eprintln!("error: {e}");
        return exit::USAGE;
    }
    if rehearsal(mode, &env) {
        shell.observers.notice(&rehearsal_header(&plan));
    }
    let cfg = Config {
        run_id: run_id.clone(),
        mode,
        max_parallel: args.max_parallel.map(|n| n as usize),
        auto_approve_as: auto,
        yes_is_one_approval: yes_is_one_approval(mode, &env),
        vars,
        env: env_snapshot(),
        durations: args
            .sample
            .then(|| crate::simulate::sample_durations(&plan, args.seed)),
        rehearsal: rehearsal(mode, &env),
    };
    let mut machine = Machine::new(plan.clone(), cfg, (*mask).clone());
    let result = if mode == Mode::DryRun {
        exec::dry_run(&mut shell, &mut machine)
    } else {
        let rt = exec::runtime();
        rt.block_on(exec::execute(shell, machine, Duration::ZERO, Vec::new()))
    };
    let strict = Strict {
        rto: args.strict_rto,
        continued: args.strict,
    };
    finish(result, &run_id, &state, strict)
}

pub fn finish(
    result: Result<Outcome, exec::ExecError>,
    run_id: &str,
    state: &StateDir,
    strict: Strict,
) -> u8 {
    match result {
        Ok(o) => {
            let journal = state.journal(run_id);
            eprintln!("journal: {}", journal.display());
            match o {
                Outcome::Stopped => {
                    // Steps whose process ended unseen wait for the operator's word.
                    let records = read_lenient(&journal).unwrap_or_default();
                    let rs = RunState::replay(&records);
                    for s in rs
                        .steps
                        .iter()
                        .filter(|s| s.status == Some(StepStatus::Unknown))
                    {
                        if s.idempotent {
                            eprintln!(
                                "step `{}` ended while no supervisor watched it: its outcome is unknown; it is idempotent, and a resume runs it again",
                                s.id
                            );
                            continue;
                        }
                        eprintln!(
                            "step `{}` ended while no supervisor watched it: its outcome is unknown, and it is not `idempotent: true`",
                            s.id
                        );
                        eprintln!(
                            "help: check what it did, then either `runbook resume {run_id} --rerun {}` to run it again, or `runbook resume {run_id} --mark-done {}` if it did its work",
                            s.id, s.id
                        );
                    }
                    eprintln!("resume with: runbook resume {run_id}")
                }
                _ => {
                    // A drill runs at drill speed: what a real run would take is what counts.
                    let rs = RunState::replay(&read_lenient(&journal).unwrap_or_default());
                    // A failed drill recovered nothing: there is no real run to project.
                    if rs.mode() == Mode::Drill
                        && matches!(o, Outcome::Succeeded { .. })
                        && let Some(p) = crate::report::projected_rto_ms(&rs)
                    {
                        let d = |ms| fmt_duration(Duration::from_millis(ms));
                        eprintln!(
                            "drill: the drill took {}; a real run projects {}{}{} against an RTO of {}",
                            d(crate::report::elapsed_ms(&rs)),
                            if crate::report::rto_ends_at(&rs).is_some() {
                                "a recovery in "
                            } else {
                                ""
                            },
                            d(p),
                            crate::report::projected_p90_ms(&rs)
                                .map(|q| format!(" (P90 {} from --simulate)", d(q)))
                                .unwrap_or_default(),
                            d(rs.started.as_ref().map_or(0, |s| s.rto_ms))
                        );
                    }
                    eprintln!("report: runbook report {run_id} (--format md|html|json|junit)")
                }
            }
            // Steps the run went on without: the journal's end names them.
            let continued = match o {
                Outcome::Succeeded { .. } => read_lenient(&journal)
                    .map(|r| RunState::replay(&r))
                    .ok()
                    .and_then(|rs| rs.finished)
                    .map(|f| f.continued)
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            if !continued.is_empty() {
                eprintln!(
                    "warning: failed, continued (`on_failure: continue`): {}; the run went on without {}{}",
                    continued
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if continued.len() == 1 { "it" } else { "them" },
                    if strict.continued {
                        ", and --strict makes that a failure"
                    } else {
                        " (`--strict` makes that a failure)"
                    }
                );
            }
            outcome_code(o, strict, continued.len())
        }
        // The engine's own faults: the steps still running are left to their supervisor.
        Err(e @ exec::ExecError::Journal(..)) => {
            eprintln!("error: {e}");
            eprintln!(
                "help: the run is stopped, and its running steps are left to finish; once the cause is gone (free some space), `runbook resume {run_id}` continues it"
            );
            exit::STOPPED
        }
        Err(e @ exec::ExecError::JournalChanged(..)) => {
            eprintln!("error: {e}");
            eprintln!(
                "help: the run is stopped: its evidence is in doubt. `runbook verify {run_id}` shows what is left of the journal"
            );
            exit::FAILED
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

fn is_run_id(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
