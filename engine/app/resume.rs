//! The `resume` use case: a run continued after a crash, Ctrl-C or a gate timeout, under its
//! lock, from its verified journal, with the runbook and variables it started with. What
//! becomes of each step left unfinished is [`super::unfinished::decide`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Error;
use super::error::{Said, Saying};
use super::run::{
    Ran, auto_approver, effective_vars, env_snapshot, load_environment, operator,
    yes_is_one_approval,
};
use super::unfinished::{Asked, Decision, Unfinished, decide};
use crate::compile::{self, Library, Options, Plan};
use crate::diag::Problem;
use crate::exec::mask::Masker;
use crate::exec::process::{StepFiles, group_alive};
use crate::exec::{self, Adopted, Config, Machine, RunContext};
use crate::journal::*;
use crate::project::Project;
use crate::state::{self, StateDir};
use crate::ui::observer::Observers;

/// What `resume` was asked, the run already chosen.
#[derive(Clone, Debug, Default)]
pub struct ResumeRequest {
    pub id: String,
    /// Re-run interrupted steps that are not idempotent; approve gates as `run --yes` would.
    pub yes: bool,
    pub as_name: Option<String>,
    /// `--var K=V`: variables that held a secret when the run started, given again.
    pub vars: Vec<String>,
    /// `--rerun STEP`.
    pub rerun: Vec<String>,
    /// `--mark-done STEP`.
    pub mark_done: Vec<String>,
    /// `--key`: the key the run's seals are signed with from here on.
    pub key: Option<PathBuf>,
}

/// What the operator at the terminal answers about a step whose outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Rerun,
    MarkDone,
    Stop,
}

/// The person at the terminal, if any: told what they should know before the run goes on,
/// and asked about the steps only they can decide.
pub trait Operator {
    /// Someone is there to answer.
    fn present(&self) -> bool;
    fn tell(&mut self, line: &str);
    /// Re-run step `step`, interrupted and not idempotent?
    fn rerun_interrupted(&mut self, step: &str) -> bool;
    /// Step `step` ended while nothing watched it; its log is `log`.
    fn unknown_outcome(&mut self, step: &str, log: &Path) -> Choice;
}

/// Continues a run. `observers` show it, as they showed `run`.
pub fn resume(
    state: &StateDir,
    req: &ResumeRequest,
    at_terminal: &mut dyn Operator,
    observers: &dyn Fn(&Plan) -> Observers,
) -> Result<Ran, Error> {
    let id = &req.id;
    let (_lock, journal, rs) = reopen(state, id)?;
    let Some(started) = rs.started.clone() else {
        return Err(Error::failed(Said::error(format!(
            "run `{id}` has no run_started event"
        ))));
    };
    if let Some(f) = &rs.finished {
        return Err(Error::usage(
            Said::error(format!(
                "run `{id}` already finished ({}); there is nothing to resume",
                crate::report::RunProgress::Ended(f.status).as_str()
            ))
            .help(format!(
                "start a new run with `runbook run {}`",
                started.scenario
            )),
        ));
    }
    if started.mode == Some(Mode::DryRun) {
        return Err(Error::usage(Said::error(
            "dry-runs are not resumed; start a new one",
        )));
    }
    let plan = the_runbook_that_ran(&started, id)?;
    let project = Project::at(plan.root.clone());
    let env = load_environment(&project, started.env.as_deref())?;
    let mode = started.mode.unwrap_or(Mode::Real);
    let operator = operator(&req.as_name);
    let vars = resume_vars(&plan, &started, &req.vars, id)?;
    let plan = super::lists::with_run_lists(plan, &vars)?;
    let plan = super::lists::with_expanded_loops(plan, &rs.expansions, id)?;
    super::lists::same_instances(&plan, &started, id)?;
    // `--yes` here confirms re-running unfinished steps; it approves gates only where `run
    // --yes` could, and otherwise the gates ask.
    let auto = match auto_approver(&plan, mode, &env, req.yes, &req.as_name, &operator) {
        Ok(a) => a,
        Err(p) => {
            at_terminal.tell(&format!("note: gates will ask: {}", p.message));
            None
        }
    };
    let plan = Arc::new(plan);
    let run_dir = state.run_dir(id);
    let signatures = run_signatures(&run_dir, id, &started, &state.journal(id))?;
    let key = super::signers::seal_key(
        req.key.as_deref(),
        mode,
        &operator,
        signatures.signers.as_ref(),
    )?;
    let mask = Arc::new(Masker::from_env(&plan.secrets));
    let cfg = Config {
        run_id: id.clone(),
        mode,
        max_parallel: started.max_parallel.map(|n| n as usize),
        auto_approve_as: auto,
        yes_is_one_approval: yes_is_one_approval(mode, &env),
        vars,
        env: env_snapshot(),
        durations: None,
        // As the run started: a rehearsal resumed is still one.
        rehearsal: started.rehearsal,
        signed_approvals: started.signed_approvals,
    };
    let mut machine = Machine::new(plan.clone(), cfg, (*mask).clone());
    machine.restore(&rs);

    let epoch = rs.started_at.unwrap_or_else(Utc::now);
    let offset = (Utc::now() - epoch).to_std().unwrap_or_default();
    let downtime = rs
        .last_at
        .map(|t| (Utc::now() - t).num_milliseconds().max(0) as u64)
        .unwrap_or(0);
    check_asked(&rs, req, id)?;
    let settled = settle_unfinished(&plan, &rs, &run_dir, &mask, &mut machine, req, at_terminal)?;

    let interactive = at_terminal.present();
    let mut cx = RunContext {
        plan: plan.clone(),
        run_dir: run_dir.clone(),
        journal,
        mask: mask.clone(),
        observers: observers(&plan),
        operator: operator.clone(),
        mode,
        epoch,
        inventory: crate::compile::inventory(&env),
        interactive,
        tty_signals: interactive,
        signatures,
        seal_key: key.map(|key| exec::SealKey {
            key,
            run: id.clone(),
        }),
    };
    let mut events = vec![EventKind::RunResumed(RunResumed {
        operator: operator.clone(),
        downtime_ms: downtime,
        adopted: settled.adopted_ids,
        rerun: settled.rerun,
        marked_done: settled.marked.iter().map(|(s, _)| s.clone()).collect(),
    })];
    events.extend(
        settled
            .marked
            .into_iter()
            .map(|(step, attempt)| marked_done(step, attempt, &operator)),
    );
    if let Err(e) = cx.record_all(offset, events) {
        return Err(Error::failed(Said::error(e.to_string())));
    }
    let rt = exec::runtime();
    let result = rt.block_on(async {
        let interrupts = exec::watch_signals()?;
        exec::execute(cx, machine, offset, settled.adopted, interrupts).await
    });
    Ok(Ran {
        run_id: id.clone(),
        result,
    })
}

/// Takes the run's lock and reopens its journal. Nothing may write to a journal before its
/// run's lock is held: the executor may still be appending to it, and a reopen cuts what it
/// takes for a torn tail. The scenario, which names the lock, is read from the first record
/// without changing the file.
fn reopen(state: &StateDir, id: &str) -> Result<(state::Lock, Journal, RunState), Error> {
    let journal_path = state.journal(id);
    let Some(scenario) = read_lenient(&journal_path)
        .ok()
        .and_then(|r| RunState::replay(&r[..r.len().min(1)]).started)
        .map(|s| s.scenario)
    else {
        return Err(Error::failed(
            Said::error(format!("run `{id}` has no readable run_started event")).help(format!(
                "`runbook verify {id}` shows what is wrong with its journal"
            )),
        ));
    };
    // The lock passes from a dead holder, never from a live one.
    let lock = match state::lock(&state.lock_path(&scenario), id) {
        Ok(l) => l,
        Err(Ok(h)) => {
            return Err(Error::usage(Said::error(format!(
                "scenario `{scenario}` is live as run `{}`{}; it cannot be resumed while its executor runs",
                h.run_id,
                h.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ))));
        }
        Err(Err(e)) => {
            return Err(Error::usage(Said::error(format!(
                "cannot take the lock: {e}"
            ))));
        }
    };
    // The chain must verify: a resume builds on the journal.
    let (journal, records) = Journal::reopen(&journal_path).map_err(|e| {
        Error::failed(Said::error(e.to_string()).help(format!(
            "`runbook verify {id}`; a run whose journal does not verify cannot be resumed"
        )))
    })?;
    Ok((lock, journal, RunState::replay(&records)))
}

/// The runbook, compiled again: it must be the one that ran, library steps included.
fn the_runbook_that_ran(started: &RunStarted, id: &str) -> Result<Plan, Error> {
    let project = Project::current();
    let path = PathBuf::from(&started.runbook);
    let (plan, problems) =
        compile::compile_file(&project, &path, &mut Library::new(), Options::default());
    let Some(plan) = plan else {
        let mut said = Said::from(problems);
        said.0.push(Saying::Error(format!(
            "the runbook `{}` no longer compiles; the run cannot be resumed",
            started.runbook
        )));
        return Err(Error::Usage(said));
    };
    if plan.sha256 != started.runbook_sha256 {
        return Err(Error::usage(
            Said::error(format!(
                "`{}` has changed since run `{id}` started (sha256 {} then, {} now)",
                started.runbook,
                &started.runbook_sha256[..12],
                &plan.sha256[..12]
            ))
            .help("restore the runbook as it ran to resume, or start a new run"),
        ));
    }
    let changed: Vec<&String> = started
        .library_sha256
        .iter()
        .filter(|(name, sha)| plan.library.get(*name) != Some(*sha))
        .map(|(name, _)| name)
        .collect();
    called_runbooks_unchanged(started, &plan.calls, id)?;
    if !changed.is_empty() {
        let mut said = Said::default();
        for name in &changed {
            said = said.and_error(format!(
                "library step `{name}` (steps/{name}.yaml, or a script it runs) has changed since run `{id}` started"
            ));
        }
        return Err(Error::usage(
            said.help("restore it as it ran to resume, or start a new run"),
        ));
    }
    Ok(plan)
}

/// Each runbook the run calls must be the one that ran: its steps are steps of this run. A
/// journal written before the calls' sha256 was kept is not checked.
fn called_runbooks_unchanged(
    started: &RunStarted,
    calls: &[compile::Call],
    id: &str,
) -> Result<(), Error> {
    let mut said = Said::default();
    for then in &started.plan.calls {
        let Some(sha) = &then.sha256 else { continue };
        let now = calls.iter().find(|c| c.id == then.id);
        if now.is_some_and(|c| c.runbook == then.runbook && &c.sha256 == sha) {
            continue;
        }
        let how = match now {
            Some(c) if c.runbook == then.runbook => format!(
                "sha256 {} then, {} now",
                &sha[..sha.len().min(12)],
                &c.sha256[..c.sha256.len().min(12)]
            ),
            Some(c) => format!("it now calls `{}`", c.runbook),
            None => "the call is gone".to_owned(),
        };
        said = said.and_error(format!(
            "runbook `{}` (runbooks/{}.yaml), called by step `{}`, has changed since run `{id}` started ({how})",
            then.runbook, then.runbook, then.id
        ));
    }
    if said.0.is_empty() {
        return Ok(());
    }
    Err(Error::usage(said.help(
        "restore the called runbook as it ran to resume (its steps are this run's), or start a new run",
    )))
}

/// The values the run started with. One that held a secret is journaled masked: it must be
/// given again, or resume would aim at the runbook's default instead.
fn resume_vars(
    plan: &Plan,
    started: &RunStarted,
    given: &[String],
    id: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let mut v = effective_vars(plan, &Default::default(), None, given)?;
    let given_names: Vec<&str> = given
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .collect();
    // Which held a secret: the journal says (older ones do not: a `***` then tells).
    let masked = |k: &str, v: &str| match &started.masked_vars {
        Some(keys) => keys.iter().any(|m| m == k),
        None => v.contains(crate::exec::mask::MASK),
    };
    // Only those: the others are the run's, journaled, and a resume keeps to them.
    if let Some(k) = given_names
        .iter()
        .find(|k| started.vars.get(**k).is_some_and(|v| !masked(k, v)))
    {
        return Err(Error::usage(
            Said::error(format!(
                "`--var {k}=...`: run `{id}` started with `{k}` = `{}`, and a resume keeps to it",
                started.vars[*k]
            ))
            .help(format!(
                "`--var` on resume gives again a variable that held a secret; to change `{k}`, start a new run"
            )),
        ));
    }
    for (k, val) in &started.vars {
        if !masked(k, val) {
            v.insert(k.clone(), val.clone());
        } else if !given_names.contains(&k.as_str()) {
            return Err(Error::usage(
                Said::error(format!(
                    "variable `{k}` held a secret when run `{id}` started, and the journal keeps it masked (`{val}`)"
                ))
                .help(format!("give it again: `runbook resume {id} --var {k}=...`")),
            ));
        }
    }
    Ok(v)
}

/// `--rerun` and `--mark-done` name steps whose outcome is open; a typo must not pass.
fn check_asked(rs: &RunState, req: &ResumeRequest, id: &str) -> Result<(), Error> {
    for name in req.rerun.iter().chain(&req.mark_done) {
        let open = rs.step(name).is_some_and(|s| {
            s.in_flight
                || matches!(
                    s.status,
                    Some(StepStatus::Interrupted | StepStatus::Unknown)
                )
        });
        if !open {
            return Err(Problem::error(format!(
                "`{name}` is not a step of run `{id}` left unfinished"
            ))
            .help("`--rerun` and `--mark-done` name steps that started and never finished; `runbook status` shows them")
            .into());
        }
        if req.rerun.contains(name) && req.mark_done.contains(name) {
            return Err(Problem::error(format!(
                "step `{name}` is named by both `--rerun` and `--mark-done`"
            ))
            .into());
        }
    }
    Ok(())
}

/// What became of the steps left unfinished, for `run_resumed` and the executor.
#[derive(Default)]
struct Settlement {
    adopted_ids: Vec<String>,
    rerun: Vec<String>,
    marked: Vec<(String, u32)>,
    adopted: Vec<Adopted>,
}

/// Steps that started and never finished: each is adopted, takes its recorded outcome, is
/// re-run, marked done or asked about ([`decide`]); one nobody decided stops the resume.
fn settle_unfinished(
    plan: &Plan,
    rs: &RunState,
    run_dir: &Path,
    mask: &Masker,
    machine: &mut Machine,
    req: &ResumeRequest,
    at_terminal: &mut dyn Operator,
) -> Result<Settlement, Error> {
    let id = &req.id;
    let mut out = Settlement::default();
    let mut alive = Vec::new();
    let mut finished_away = Vec::new();
    let mut undecided = Said::default();
    // A supervisor records a step's end the moment it reaps it: an end not recorded yet may
    // be a moment away. One look again, once, before an end is called unknown.
    let mut looked_again = false;
    for (i, step) in plan.steps.iter().enumerate() {
        let Some(s) = rs.step(&step.id) else { continue };
        let interrupted = s.status == Some(StepStatus::Interrupted);
        let unfinished = s.in_flight || interrupted || s.status == Some(StepStatus::Unknown);
        if !unfinished || step.is_gate() {
            continue;
        }
        let attempt = s.attempts.max(1);
        let files = StepFiles::new(run_dir, &step.id, attempt);
        // This attempt's start: an adopted attempt's time (and its timeout) is its own.
        let since = Duration::from_millis(s.attempt_started_ms.or(s.started_ms).unwrap_or(0));
        let first = Duration::from_millis(s.started_ms.unwrap_or(0));
        let (mut pgid, mut exit) = files.recorded();
        if s.in_flight && exit.is_none() && !pgid.is_some_and(group_alive) && !looked_again {
            looked_again = true;
            std::thread::sleep(Duration::from_millis(500));
            (pgid, exit) = files.recorded();
        }
        let seen = Unfinished {
            in_flight: s.in_flight,
            interrupted,
            idempotent: step.idempotent,
            end_recorded: exit.is_some(),
            alive_group: pgid.filter(|&p| group_alive(p)),
        };
        let asked = Asked {
            yes: req.yes,
            rerun: req.rerun.contains(&step.id),
            mark_done: req.mark_done.contains(&step.id),
            interactive: at_terminal.present(),
        };
        let decision = match decide(seen, asked) {
            Decision::AskRerun if at_terminal.rerun_interrupted(&step.id) => Decision::Rerun,
            Decision::AskRerun => Decision::RefuseInterrupted,
            Decision::AskRunMarkOrStop => match at_terminal.unknown_outcome(&step.id, &files.log) {
                Choice::Rerun => Decision::Rerun,
                Choice::MarkDone => Decision::MarkDone,
                Choice::Stop => Decision::RefuseUnknown,
            },
            d => d,
        };
        match decision {
            Decision::TakeRecordedEnd => {
                // It ended while nobody watched: the supervisor recorded how, and when.
                machine.adopt(i, attempt, since, first);
                let started_ms = rs.started_at.map(|t| t.timestamp_millis());
                if let (Some(end), Some(start)) = (files.recorded_end_ms(), started_ms) {
                    let at = (end as i64).saturating_sub(start).max(0) as u64;
                    machine.ended_while_away(i, Duration::from_millis(at));
                }
                finished_away.push((i, attempt, exec::adopted_result(&files, mask)));
                out.adopted_ids.push(step.id.clone());
            }
            Decision::Adopt { pgid } => {
                machine.adopt(i, attempt, since, first);
                alive.push((i, attempt, pgid));
                out.adopted_ids.push(step.id.clone());
            }
            Decision::MarkDone => {
                machine.mark_done(i);
                out.marked.push((step.id.clone(), attempt));
            }
            Decision::Rerun => out.rerun.push(step.id.clone()),
            // A question nobody answered is a no.
            Decision::RefuseInterrupted | Decision::AskRerun => {
                return Err(Error::stopped(
                    Said::error(format!(
                        "step `{}` was interrupted and is not `idempotent: true`",
                        step.id
                    ))
                    .help(format!(
                        "check what it did (its log: {}), then `runbook resume {id} --yes` (or `--rerun {}`) to re-run it, or `--mark-done {}` if it did its work",
                        files.log.display(),
                        step.id,
                        step.id
                    )),
                ));
            }
            Decision::RefuseUnknown | Decision::AskRunMarkOrStop => {
                let step = &step.id;
                undecided = undecided
                    .and_error(format!(
                        "step `{step}` ended while no supervisor watched it: its outcome is unknown, and it is not `idempotent: true`"
                    ))
                    .help(format!(
                        "check what it did (its log: {}), then either `runbook resume {id} --rerun {step}` to run it again, or `runbook resume {id} --mark-done {step}` if it did its work",
                        files.log.display()
                    ));
            }
        }
    }
    if !undecided.0.is_empty() {
        return Err(Error::Stopped(undecided));
    }
    out.adopted = alive
        .into_iter()
        .map(|(step, attempt, pg)| Adopted {
            step,
            attempt,
            pgid: Some(pg),
            result: None,
        })
        .collect();
    out.adopted
        .extend(finished_away.into_iter().map(|(step, attempt, r)| Adopted {
            step,
            attempt,
            pgid: None,
            result: Some(r),
        }));
    Ok(out)
}

/// A step taken as done on the operator's word, as the journal records it.
fn marked_done(step: String, attempt: u32, operator: &str) -> EventKind {
    EventKind::StepFinished(StepFinished::marked_done(step, attempt, operator))
}

/// What a resumed run checks answers against: its own copy of allowed_signers (never the
/// project's file as it is now), whether signatures are required as `run_started` says, and
/// each gate's latest request as journaled.
fn run_signatures(
    run_dir: &Path,
    id: &str,
    started: &RunStarted,
    journal: &Path,
) -> Result<exec::Signatures, Error> {
    let signers = if started.allowed_signers_sha256.is_some() {
        let path = run_dir.join("allowed_signers");
        match crate::signing::AllowedSigners::load(&path) {
            // Changed since the run began: a signature checked against it proves nothing.
            Ok(Some(s)) if started.allowed_signers_sha256.as_deref() != Some(&s.sha256()) => {
                return Err(Error::failed(Said::error(format!(
                    "run `{id}`'s copy of allowed_signers `{}` is not the file the run began with (its sha256 differs from run_started's): restore it from the export bundle or a backup",
                    path.display()
                ))));
            }
            Ok(Some(s)) => Some(s),
            Ok(None) => {
                return Err(Error::failed(Said::error(format!(
                    "run `{id}` was started with allowed_signers, and its copy `{}` is gone: restore it from the export bundle or a backup",
                    path.display()
                ))));
            }
            Err(e) => {
                return Err(Error::failed(Said::error(format!(
                    "run `{id}`'s copy of allowed_signers is unreadable: {e}"
                ))));
            }
        }
    } else {
        None
    };
    let mut signatures = exec::Signatures {
        run_id: id.to_owned(),
        signers,
        required: started.signed_approvals,
        requests: BTreeMap::new(),
    };
    signatures.note(&read_lenient(journal).unwrap_or_default());
    Ok(signatures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::PlanCall;

    fn started(sha256: Option<&str>) -> RunStarted {
        let mut s = RunStarted::default();
        s.plan.calls = vec![PlanCall {
            id: "rs".into(),
            runbook: "restore".into(),
            budget_ms: 60_000,
            steps: vec!["rs.a".into()],
            sha256: sha256.map(str::to_owned),
        }];
        s
    }

    fn now(sha256: &str) -> Vec<compile::Call> {
        vec![compile::Call {
            id: "rs".into(),
            title: "Restore".into(),
            runbook: "restore".into(),
            budget: Duration::from_secs(60),
            steps: vec![0],
            sha256: sha256.into(),
            path: Default::default(),
        }]
    }

    /// Journals written before the calls' sha256 was kept resume as they did: unchecked.
    #[test]
    fn an_old_journal_without_the_calls_sha256_resumes() {
        assert!(
            called_runbooks_unchanged(&started(None), &now("b".repeat(64).as_str()), "r").is_ok()
        );
        let a = "a".repeat(64);
        assert!(called_runbooks_unchanged(&started(Some(&a)), &now(&a), "r").is_ok());
        assert!(called_runbooks_unchanged(&started(Some(&a)), &now(&"b".repeat(64)), "r").is_err());
    }
}
