//! Commands for live runs: `status`, `approve`, `deny`, `resume`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::run::{
    auto_approver, effective_vars, env_snapshot, finish, load_environment, observers, operator,
};
use super::runs::{Last, find, find_which};
use crate::cli::check::table;
use crate::cli::{exit, report_problem};
use crate::compile::{self, Library, Options};
use crate::diag::Problem;
use crate::exec::mask::Masker;
use crate::exec::process::{StepFiles, group_alive};
use crate::exec::{self, Adopted, ApprovalRequest, Config, Machine, Shell};
use crate::journal::*;
use crate::project::Project;
use crate::report::{RtoVerdict, rto_verdict, run_status, step_status, step_status_words};
use crate::state::{self, StateDir};
use crate::units::fmt_duration;

fn ms(d: u64) -> String {
    fmt_duration(Duration::from_millis(d))
}

/// Is the executor of this run alive? It holds the scenario's lock, with its run id and pid
/// written in: the lock must be held (a text that merely names a live pid proves nothing).
pub fn executor_pid(state: &StateDir, rs: &RunState) -> Option<u32> {
    let h = state::holder(&state.lock_path(rs.scenario()))?;
    (h.run_id == rs.run_id()).then_some(h.pid?)
}

/// Where the run's RTO clock is now: wall time since `run_started` for every run without a
/// `run_finished`, whether or not an executor is watching (a run whose executor died, or
/// that was stopped, is still an outage, and `resume` counts that time too); a finished
/// run's elapsed time once it has one.
fn now_ms(rs: &RunState) -> u64 {
    match (&rs.finished, rs.started_at) {
        (None, Some(t)) => (Utc::now() - t).num_milliseconds().max(0) as u64,
        _ => crate::report::elapsed_ms(rs),
    }
}

/// The projected finish from the journal: now plus the longest remaining path of budgets (to
/// the `rto_ends_at` step when there is one), an interrupted step counting its whole budget.
/// The executor's own projection is `Machine::projected_finish` (docs/design.md).
fn projection(rs: &RunState, now: u64) -> (u64, Vec<String>) {
    let Some(started) = &rs.started else {
        return (now, Vec::new());
    };
    let ids: Vec<&str> = started.plan.steps.iter().map(|p| p.id.as_str()).collect();
    let weights: Vec<Duration> = started
        .plan
        .steps
        .iter()
        .map(|p| {
            let left = match rs.step(&p.id) {
                // An interrupted step runs again on resume, from the start.
                Some(s) if s.status == Some(StepStatus::Interrupted) => p.budget_ms,
                Some(s) if s.status.is_some() => 0,
                Some(s) => p.budget_ms.saturating_sub(
                    s.started_ms
                        .or(s.requested_ms)
                        .map_or(0, |t| now.saturating_sub(t)),
                ),
                None => p.budget_ms,
            };
            Duration::from_millis(left)
        })
        .collect();
    let needs: Vec<Vec<usize>> = started
        .plan
        .steps
        .iter()
        .map(|p| {
            p.needs
                .iter()
                .filter_map(|n| ids.iter().position(|x| x == n))
                .collect()
        })
        .collect();
    let order = compile::topo_order(&needs);
    let nref: Vec<&[usize]> = needs.iter().map(Vec::as_slice).collect();
    // With `rto_ends_at`, what is projected is the recovery: the path to that step.
    let end = crate::report::rto_ends_at(rs).and_then(|e| ids.iter().position(|x| *x == e));
    let (path, rest) = compile::longest_path_to(&weights, &nref, &order, end);
    let path = path
        .into_iter()
        .filter(|&i| !weights[i].is_zero())
        .map(|i| ids[i].to_owned())
        .collect();
    (now + rest.as_millis() as u64, path)
}

pub fn status(run: Option<&str>, dry_run: bool, state_dir: Option<PathBuf>) -> u8 {
    let state = StateDir::resolve(state_dir);
    let (code, shown) = match run {
        None => (status_all(&state), None),
        Some(r) => {
            let Ok(id) = find_which(&state, Some(r), false, Last::not_dry_run_unless(dry_run))
            else {
                return exit::USAGE;
            };
            (status_one(&state, &id), Some(id))
        }
    };
    // A half-done real recovery must not drop out of sight behind newer runs (or off the
    // listing's twenty): every status names it until it is resumed or finished.
    let stopped: Vec<(String, RunState)> = stopped_real_runs(&state)
        .into_iter()
        .filter(|(id, _)| shown.as_ref() != Some(id))
        .collect();
    if !stopped.is_empty() {
        println!();
        for (id, rs) in &stopped {
            println!(
                "not finished: run `{id}` ({}) stopped at +{} with {} of {} steps done: `runbook resume {id}` continues it",
                rs.scenario(),
                ms(crate::report::elapsed_ms(rs)),
                rs.steps
                    .iter()
                    .filter(|s| s.status.is_some_and(|st| !matches!(
                        st,
                        StepStatus::Interrupted | StepStatus::Unknown
                    )))
                    .count(),
                rs.steps.len(),
            );
        }
    }
    code
}

/// Real runs that are neither finished nor live: stopped at a gate, by Ctrl-C, or by the
/// death of their executor. Oldest first.
fn stopped_real_runs(state: &StateDir) -> Vec<(String, RunState)> {
    state
        .runs()
        .into_iter()
        .filter_map(|id| {
            let rs = RunState::replay(&read_lenient(&state.journal(&id)).ok()?);
            let stopped = rs.started.is_some()
                && rs.mode() == Mode::Real
                && !rs.is_finished()
                && executor_pid(state, &rs).is_none();
            stopped.then_some((id, rs))
        })
        .collect()
}

fn status_all(state: &StateDir) -> u8 {
    let runs = state.runs();
    if runs.is_empty() {
        println!("no runs yet in {}", state.runs_dir().display());
        return exit::OK;
    }
    let mut rows = vec![[
        "RUN".to_owned(),
        "SCENARIO".into(),
        "MODE".into(),
        "STATUS".into(),
        "STARTED (UTC)".into(),
        "ELAPSED".into(),
        "RTO".into(),
    ]];
    // The most recent twenty, newest last.
    for id in runs.iter().rev().take(20).rev() {
        let Ok(records) = read_lenient(&state.journal(id)) else {
            continue;
        };
        let rs = RunState::replay(&records);
        let live = executor_pid(state, &rs).is_some();
        let status = match (run_status(&rs), live) {
            ("running", true) => "running".to_owned(),
            ("running", false) => "executor gone".to_owned(),
            (s, _) => s.to_owned(),
        };
        // From status and elapsed: an old journal's `rto_met` says "met" of failed runs.
        let rto = match rto_verdict(&rs) {
            RtoVerdict::Met { .. } => "met".to_owned(),
            RtoVerdict::Missed { .. } => "MISSED".to_owned(),
            RtoVerdict::NotRecovered {
                failed_at: Some(step),
                restored_ms: Some(_),
                ..
            } => format!("not met: failed during observation at {step}"),
            RtoVerdict::NotRecovered {
                failed_at: Some(step),
                ..
            } => format!("not met: failed at {step}"),
            RtoVerdict::NotRecovered { .. } => "not met: failed".to_owned(),
            RtoVerdict::Open {
                restored_ms: Some(_),
                ..
            } => "restored, observing".to_owned(),
            RtoVerdict::Open { .. } => "not recovered".to_owned(),
        };
        rows.push([
            id.clone(),
            rs.scenario().to_owned(),
            rs.mode().as_str().to_owned(),
            status,
            rs.started_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            ms(now_ms(&rs)),
            rto,
        ]);
    }
    print!("{}", table(&rows));
    exit::OK
}

fn status_one(state: &StateDir, id: &str) -> u8 {
    let records = match read_lenient(&state.journal(id)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read run `{id}`: {e}");
            return exit::USAGE;
        }
    };
    // What status shows is what the journal says: said loudly when the chain is broken.
    let broken = match crate::journal::verify(&state.journal(id)) {
        Ok(v) => match v.first_bad {
            Some((seq, line, why)) => {
                eprintln!(
                    "warning: the journal of run `{id}` is BROKEN at seq {seq} (line {line}): {why}"
                );
                eprintln!(
                    "help: what follows is what it says, not to be trusted; `runbook verify {id}`"
                );
                true
            }
            None => false,
        },
        Err(_) => false,
    };
    let rs = RunState::replay(&records);
    let Some(started) = rs.started.clone() else {
        eprintln!("error: run `{id}` has an empty journal");
        return exit::FAILED;
    };
    let pid = executor_pid(state, &rs);
    let live = pid.is_some();
    let now = now_ms(&rs);
    println!(
        "run {id}: {} ({}), mode {}, operator {}",
        started.scenario,
        started.title,
        rs.mode().as_str(),
        started.operator
    );
    let word = run_status(&rs);
    let state_line = match (word, pid) {
        ("running", Some(p)) => format!("running (executor pid {p})"),
        ("running", None) => format!(
            "the executor is gone (it died or was killed): `runbook resume {id}` continues the run"
        ),
        ("stopped", _) => format!(
            "stopped ({}): `runbook resume {id}` continues the run",
            rs.interruptions
                .last()
                .map(|i| crate::journal::describe::stop_words(&i.1.reason))
                .unwrap_or_else(|| "interrupted".into())
        ),
        (w, _) => w.to_owned(),
    };
    println!("state: {state_line}");
    let target = started.rto_ms;
    if rs.mode() == Mode::Drill && crate::report::is_rehearsal(&rs) {
        println!("rehearsal: the steps a drill mocks run for real in this environment");
    }
    match &rs.finished {
        Some(_) => println!("{}", rto_verdict(&rs).sentence()),
        // Service is restored: the RTO clock stopped there, and the observation runs on.
        None if crate::report::recovery_ms(&rs).is_some() => {
            println!("{}", rto_verdict(&rs).sentence())
        }
        None => {
            let (projected, path) = projection(&rs, now);
            let verdict = if projected > target {
                "AT RISK"
            } else {
                "on target"
            };
            println!(
                "RTO clock at {} of {}, not recovered; projected finish +{} ({verdict}{})",
                ms(now),
                ms(target),
                ms(projected),
                if path.is_empty() {
                    String::new()
                } else {
                    format!("; path: {}", path.join(" → "))
                }
            );
        }
    }
    println!();
    let mut rows = vec![[
        "STEP".to_owned(),
        "STATUS".into(),
        "TIME / BUDGET".into(),
        "NOTE".into(),
    ]];
    let mut gates = Vec::new();
    let observation = crate::report::observation_steps(&rs);
    for s in &rs.steps {
        let st = step_status_words(&rs, s);
        let time = match (s.status, s.started_ms.or(s.requested_ms)) {
            (Some(StepStatus::Skipped | StepStatus::NotRun), _) | (_, None) => {
                format!("- / {}", ms(s.budget_ms))
            }
            (Some(_), Some(_)) if s.estimated => format!(
                "~{} / {}",
                ms(s.simulated_ms.or(s.duration_ms(now)).unwrap_or(0)),
                ms(s.budget_ms)
            ),
            (_, Some(t)) => {
                let end = s.finished_ms.unwrap_or(now);
                format!("{} / {}", ms(end.saturating_sub(t)), ms(s.budget_ms))
            }
        };
        let mut note = Vec::new();
        if crate::report::ran_for_real_in_rehearsal(s) {
            note.push(crate::report::render::REHEARSED.to_owned());
        }
        if observation.contains(&s.id) {
            note.push("observation (after the RTO clock stops)".to_owned());
        }
        if s.breached {
            note.push("over budget".to_owned());
        } else if s.warned && s.status.is_none() {
            note.push("past 80% of budget".to_owned());
        }
        if !s.approved_by.is_empty() {
            note.push(format!("approved by {}", s.approved_by.join(", ")));
        }
        if let Some(e) = &s.error {
            note.push(e.clone());
        }
        if s.waiting {
            gates.push(s.clone());
        }
        // What steps wrote (errors, prompts made of their outputs) is shown, not obeyed.
        let note = crate::exec::mask::visible(&note.join("; ")).into_owned();
        rows.push([s.id.clone(), st, time, note]);
    }
    print!("{}", table(&rows));
    if !gates.is_empty() {
        println!("\nwaiting for approval:");
        for g in gates {
            println!(
                "  {}: {}\n    approvers: {}{}; waiting {} of a {} budget",
                g.id,
                crate::exec::mask::visible(g.prompt.as_deref().unwrap_or_default()),
                g.approvers.join(", "),
                if g.min > 1 {
                    format!(" ({} people; have {})", g.min, g.approved_by.len())
                } else {
                    String::new()
                },
                ms(now.saturating_sub(g.requested_ms.unwrap_or(now))),
                ms(g.budget_ms)
            );
            println!(
                "    runbook approve {id} {} --as NAME [--comment TEXT]",
                g.id
            );
            println!("    runbook deny {id} {} --as NAME [--comment TEXT]", g.id);
        }
        if !live && !rs.is_finished() {
            println!("  (the executor is not running: resume the run first)");
        }
    }
    if broken { exit::FAILED } else { exit::OK }
}

pub fn answer(
    run: &str,
    step: &str,
    as_name: &Option<String>,
    comment: Option<String>,
    approve: bool,
    state_dir: Option<PathBuf>,
) -> u8 {
    let state = StateDir::resolve(state_dir);
    let Ok(id) = find(&state, Some(run), false) else {
        return exit::USAGE;
    };
    let records = read_lenient(&state.journal(&id)).unwrap_or_default();
    let rs = RunState::replay(&records);
    let Some(s) = rs.step(step) else {
        let ids: Vec<&str> = rs
            .steps
            .iter()
            .filter(|s| s.gate)
            .map(|s| s.id.as_str())
            .collect();
        report_problem(
            Problem::error(format!("run `{id}` has no step `{step}`")).maybe_help(
                crate::diag::suggestion(step, ids.iter().copied())
                    .or(Some(format!("its gates: {}", ids.join(", ")))),
            ),
        );
        return exit::USAGE;
    };
    if !s.gate {
        report_problem(Problem::error(format!(
            "step `{step}` is not an approval gate"
        )));
        return exit::USAGE;
    }
    let by = operator(as_name);
    let decided = decision(s).is_some();
    if !s.waiting && !decided {
        report_problem(
            Problem::error(format!(
                "gate `{step}` is not waiting for an answer (it is {})",
                step_status(s)
            ))
            .help(format!("`runbook status {id}` shows the open gates")),
        );
        return exit::USAGE;
    }
    if executor_pid(&state, &rs).is_none() {
        if decided {
            // Nobody else will journal it: the run is over, or stopped past this gate.
            return answer_late(&state, &id, step, &by, approve);
        }
        report_problem(
            Problem::error(format!(
                "run `{id}` is not live: its executor is not running"
            ))
            .help(format!(
                "`runbook resume {id}` continues it; the gate will ask again"
            )),
        );
        return exit::STOPPED;
    }
    // A gate decided already is still asked: the live executor journals the answer as late.
    let dir = state.run_dir(&id).join("approvals");
    let req = format!(
        "{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S%.6f"),
        std::process::id()
    );
    let body = serde_json::to_string(&ApprovalRequest {
        step: step.to_owned(),
        by: by.clone(),
        approve,
        comment,
    })
    .expect("json");
    let tmp = dir.join(format!(".{req}.tmp"));
    if let Err(e) = std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, dir.join(format!("{req}.json"))))
    {
        eprintln!(
            "error: cannot write the request into {}: {e}",
            dir.display()
        );
        return exit::FAILED;
    }
    let result = dir.join(format!("{req}.result"));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&result) {
            let text = text.trim();
            println!("{text}");
            return if text.starts_with("rejected") {
                exit::FAILED
            } else {
                exit::OK
            };
        }
        // The run ended between our look and its last look at the folder: the request is
        // ours again (it was not taken) and is answered here, against the journal.
        if executor_pid(&state, &rs).is_none()
            && std::fs::remove_file(dir.join(format!("{req}.json"))).is_ok()
        {
            let records = read_lenient(&state.journal(&id)).unwrap_or_default();
            let rs = RunState::replay(&records);
            if rs.step(step).and_then(decision).is_some() {
                return answer_late(&state, &id, step, &by, approve);
            }
            eprintln!(
                "error: run `{id}` stopped before it took the request; `runbook status {id}` shows its state"
            );
            return exit::STOPPED;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(dir.join(format!("{req}.json")));
    eprintln!(
        "error: run `{id}` did not take the request within 15s; `runbook status {id}` shows its state"
    );
    exit::FAILED
}

/// Who decided a gate, and which way, as the journal says.
fn decision(s: &StepRun) -> Option<(Vec<String>, GateDecision)> {
    s.status?;
    match &s.denied_by {
        Some(by) => Some((vec![by.clone()], GateDecision::Denied)),
        None if !s.approved_by.is_empty() => Some((s.approved_by.clone(), GateDecision::Approved)),
        None => None,
    }
}

/// An answer to a gate decided in a run no executor holds (it finished, or stopped past the
/// gate): journaled here as late, under the scenario's lock so that no resume writes at the
/// same time, and the answerer is told who decided.
fn answer_late(state: &StateDir, id: &str, step: &str, by: &str, approve: bool) -> u8 {
    let path = state.journal(id);
    let journaled = (|| {
        let records = read_lenient(&path).map_err(|e| e.to_string())?;
        let scenario = RunState::replay(&records).scenario().to_owned();
        // Other late answers take the lock for a moment each: wait for them, not for a run
        // (a resume) that holds it for as long as it lives.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let _lock = loop {
            match state::lock(&state.lock_path(&scenario), id) {
                Ok(l) => break l,
                Err(Ok(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(Ok(h)) => {
                    return Err(format!(
                        "run `{}`{} has held the scenario's lock for 10s; answer again",
                        h.run_id,
                        h.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                    ));
                }
                Err(Err(e)) => return Err(e.to_string()),
            }
        };
        let (mut journal, records) = Journal::reopen(&path).map_err(|e| e.to_string())?;
        let rs = RunState::replay(&records);
        let s = rs.step(step).ok_or("the gate is gone from the journal")?;
        let (decided_by, decision) = decision(s).ok_or("the gate is not decided")?;
        let when = s.finished_at.map(ApprovalLate::when).unwrap_or_default();
        let reason = ApprovalLate::reason_for(&decided_by, decision, &when);
        // The comment is left out: the secrets that would mask it live with the executor.
        let late = EventKind::ApprovalLate(ApprovalLate {
            step: step.to_owned(),
            by: by.to_owned(),
            approve,
            comment: None,
            decided_by,
            decision,
            decided_ms: s.finished_ms.unwrap_or_default(),
            reason: reason.clone(),
        });
        let elapsed = Duration::from_millis(rs.last_elapsed_ms);
        let at = Utc::now();
        journal.append(at, elapsed, late);
        // A journal that was sealed ends sealed again: the late answer is inside its end.
        if rs.sealed {
            journal.seal(at, elapsed);
        }
        journal.sync().map_err(|e| e.to_string())?;
        Ok::<_, String>(reason)
    })();
    match journaled {
        Ok(reason) => {
            println!("rejected: {reason}");
            exit::FAILED
        }
        Err(e) => {
            eprintln!(
                "error: gate `{step}` of run `{id}` is decided already, and the late answer could not be journaled into {}: {e}",
                path.display()
            );
            exit::FAILED
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ResumeArgs {
    /// A run id (or a unique part of one). Without it, or with `last`: the newest run that is
    /// neither finished nor a dry-run, real runs before drills.
    pub run: Option<String>,
    /// Re-run interrupted steps that are not idempotent; approve gates as with `run --yes`.
    /// A step whose outcome is unknown is never re-run on `--yes` alone: see `--rerun`.
    #[arg(long)]
    pub yes: bool,
    /// Who is resuming (and approving at this terminal); default: $USER.
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
    /// Write the event stream to stdout, one JSON object a line.
    #[arg(long)]
    pub json: bool,
    /// A variable whose value held a secret when the run started: the journal keeps it
    /// masked, so resume needs it again (K=V, repeatable).
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// Run this step again although it may have done its work already: its process ended
    /// while nothing watched it, so its outcome is unknown (repeatable).
    #[arg(long, value_name = "STEP")]
    pub rerun: Vec<String>,
    /// Take this step as done, on your word: its process ended while nothing watched it, and
    /// you checked that it did its work (repeatable).
    #[arg(long, value_name = "STEP")]
    pub mark_done: Vec<String>,
    /// Exit 1 when a step with `on_failure: continue` failed, although the run succeeded.
    #[arg(long)]
    pub strict: bool,
}

/// Continues a run after a crash, Ctrl-C or a gate timeout.
pub fn resume(args: &ResumeArgs, state_dir: Option<PathBuf>) -> u8 {
    let ResumeArgs {
        run,
        yes,
        as_name,
        json,
        vars: given,
        rerun: rerun_asked,
        mark_done: mark_asked,
        strict,
    } = args;
    let (yes, json) = (*yes, *json);
    let state = StateDir::resolve(state_dir);
    let chosen = run.as_deref().is_none_or(|r| r == "last");
    let Ok(id) = find_which(&state, run.as_deref(), chosen, Last::Resumable) else {
        return exit::USAGE;
    };
    if chosen {
        // Chosen for the operator: they are told which, before anything runs.
        let rs = RunState::replay(&read_lenient(&state.journal(&id)).unwrap_or_default());
        eprintln!(
            "resuming run `{id}` ({}, {}, started {} UTC): the newest run that is neither finished nor a dry-run, real runs before drills",
            rs.scenario(),
            rs.mode().as_str(),
            rs.started_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
        );
    }
    // Nothing may write to a journal before its run's lock is held: the executor may still be
    // appending to it, and a reopen cuts what it takes for a torn tail. The scenario, which
    // names the lock, is read from the first record without changing the file.
    let journal_path = state.journal(&id);
    let Some(scenario) = read_lenient(&journal_path)
        .ok()
        .and_then(|r| RunState::replay(&r[..r.len().min(1)]).started)
        .map(|s| s.scenario)
    else {
        eprintln!("error: run `{id}` has no readable run_started event");
        eprintln!("help: `runbook verify {id}` shows what is wrong with its journal");
        return exit::FAILED;
    };
    // The lock passes from a dead holder, never from a live one.
    let _lock = match state::lock(&state.lock_path(&scenario), &id) {
        Ok(l) => l,
        Err(Ok(h)) => {
            eprintln!(
                "error: scenario `{scenario}` is live as run `{}`{}; it cannot be resumed while its executor runs",
                h.run_id,
                h.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            );
            return exit::USAGE;
        }
        Err(Err(e)) => {
            eprintln!("error: cannot take the lock: {e}");
            return exit::USAGE;
        }
    };
    // The chain must verify: a resume builds on the journal.
    let (journal, records) = match Journal::reopen(&journal_path) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "help: `runbook verify {id}`; a run whose journal does not verify cannot be resumed"
            );
            return exit::FAILED;
        }
    };
    let rs = RunState::replay(&records);
    let Some(started) = rs.started.clone() else {
        eprintln!("error: run `{id}` has no run_started event");
        return exit::FAILED;
    };
    if let Some(f) = &rs.finished {
        eprintln!(
            "error: run `{id}` already finished ({}); there is nothing to resume",
            if f.status == RunStatus::Succeeded {
                "succeeded"
            } else {
                "failed"
            }
        );
        eprintln!(
            "help: start a new run with `runbook run {}`",
            started.scenario
        );
        return exit::USAGE;
    }
    if started.mode == Some(Mode::DryRun) {
        eprintln!("error: dry-runs are not resumed; start a new one");
        return exit::USAGE;
    }
    // The runbook must be the one that ran.
    let project = Project::current();
    let path = PathBuf::from(&started.runbook);
    let (plan, problems) =
        compile::compile_file(&project, &path, &mut Library::new(), Options::default());
    let Some(plan) = plan else {
        crate::cli::report_problems(&problems);
        eprintln!(
            "error: the runbook `{}` no longer compiles; the run cannot be resumed",
            started.runbook
        );
        return exit::USAGE;
    };
    if plan.sha256 != started.runbook_sha256 {
        eprintln!(
            "error: `{}` has changed since run `{id}` started (sha256 {} then, {} now)",
            started.runbook,
            &started.runbook_sha256[..12],
            &plan.sha256[..12]
        );
        eprintln!("help: restore the runbook as it ran to resume, or start a new run");
        return exit::USAGE;
    }
    let changed: Vec<&String> = started
        .library_sha256
        .iter()
        .filter(|(name, sha)| plan.library.get(*name) != Some(*sha))
        .map(|(name, _)| name)
        .collect();
    if !changed.is_empty() {
        for name in &changed {
            eprintln!(
                "error: library step `{name}` (steps/{name}.yaml, or a script it runs) has changed since run `{id}` started"
            );
        }
        eprintln!("help: restore it as it ran to resume, or start a new run");
        return exit::USAGE;
    }
    let project = Project::at(plan.root.clone());
    let Ok(env) = load_environment(&project, started.env.as_deref()) else {
        return exit::USAGE;
    };
    let mode = started.mode.unwrap_or(Mode::Real);
    let operator = operator(as_name);
    let vars = match effective_vars(&plan, &Default::default(), None, given) {
        Ok(mut v) => {
            // The values the run started with. One that held a secret is journaled masked:
            // it must be given again, or resume would aim at the runbook's default instead.
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
                eprintln!(
                    "error: `--var {k}=...`: run `{id}` started with `{k}` = `{}`, and a resume keeps to it",
                    started.vars[*k]
                );
                eprintln!(
                    "help: `--var` on resume gives again a variable that held a secret; to change `{k}`, start a new run"
                );
                return exit::USAGE;
            }
            for (k, val) in &started.vars {
                if !masked(k, val) {
                    v.insert(k.clone(), val.clone());
                } else if !given_names.contains(&k.as_str()) {
                    eprintln!(
                        "error: variable `{k}` held a secret when run `{id}` started, and the journal keeps it masked (`{val}`)"
                    );
                    eprintln!("help: give it again: `runbook resume {id} --var {k}=...`");
                    return exit::USAGE;
                }
            }
            v
        }
        Err(p) => {
            report_problem(p);
            return exit::USAGE;
        }
    };
    // `--yes` here confirms re-running unfinished steps; it approves gates only where `run
    // --yes` could, and otherwise the gates ask.
    let auto = match auto_approver(&plan, mode, &env, yes, as_name, &operator) {
        Ok(a) => a,
        Err(p) => {
            eprintln!("note: gates will ask: {}", p.message);
            None
        }
    };
    let plan = Arc::new(plan);
    let run_dir = state.run_dir(&id);
    let mask = Arc::new(Masker::from_env(&plan.secrets));
    let cfg = Config {
        run_id: id.clone(),
        mode,
        max_parallel: started.max_parallel.map(|n| n as usize),
        auto_approve_as: auto,
        yes_is_one_approval: super::run::yes_is_one_approval(mode, &env),
        vars,
        env: env_snapshot(),
        durations: None,
        // As the run started: a rehearsal resumed is still one.
        rehearsal: started.rehearsal,
    };
    let mut machine = Machine::new(plan.clone(), cfg, (*mask).clone());
    machine.restore(&rs);

    // Steps that started and never finished: adopt, take their outcome, re-run, or ask.
    let epoch = rs.started_at.unwrap_or_else(Utc::now);
    let offset = (Utc::now() - epoch).to_std().unwrap_or_default();
    let downtime = rs
        .last_at
        .map(|t| (Utc::now() - t).num_milliseconds().max(0) as u64)
        .unwrap_or(0);
    let mut adopted_ids = Vec::new();
    let mut rerun = Vec::new();
    let mut adopt = Vec::new();
    let mut finished_away = Vec::new();
    let mut marked = Vec::new();
    let mut undecided: Vec<(String, PathBuf)> = Vec::new();
    let interactive = std::io::stdin().is_terminal();
    // `--rerun` and `--mark-done` name steps whose outcome is open; a typo must not pass.
    for name in rerun_asked.iter().chain(mark_asked) {
        let open = rs.step(name).is_some_and(|s| {
            s.in_flight
                || matches!(
                    s.status,
                    Some(StepStatus::Interrupted | StepStatus::Unknown)
                )
        });
        if !open {
            report_problem(
                Problem::error(format!(
                    "`{name}` is not a step of run `{id}` left unfinished"
                ))
                .help("`--rerun` and `--mark-done` name steps that started and never finished; `runbook status` shows them"),
            );
            return exit::USAGE;
        }
        if rerun_asked.contains(name) && mark_asked.contains(name) {
            report_problem(Problem::error(format!(
                "step `{name}` is named by both `--rerun` and `--mark-done`"
            )));
            return exit::USAGE;
        }
    }
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
        let files = StepFiles::new(&run_dir, &step.id, attempt);
        let since = Duration::from_millis(s.started_ms.unwrap_or(0));
        let (mut pgid, mut exit) = files.recorded();
        if s.in_flight && exit.is_none() && !pgid.is_some_and(group_alive) && !looked_again {
            looked_again = true;
            std::thread::sleep(Duration::from_millis(500));
            (pgid, exit) = files.recorded();
        }
        if s.in_flight && exit.is_some() {
            // It ended while nobody watched: the supervisor recorded how.
            machine.adopt(i, attempt, since);
            finished_away.push((i, attempt, exec::adopted_result(&files, &mask)));
            adopted_ids.push(step.id.clone());
            continue;
        }
        if s.in_flight
            && let Some(pg) = pgid.filter(|&p| group_alive(p))
        {
            machine.adopt(i, attempt, since);
            adopt.push((i, attempt, pg));
            adopted_ids.push(step.id.clone());
            continue;
        }
        if mark_asked.contains(&step.id) {
            machine.mark_done(i);
            marked.push((step.id.clone(), attempt));
            continue;
        }
        if step.idempotent || rerun_asked.contains(&step.id) {
            rerun.push(step.id.clone());
            continue;
        }
        if interrupted {
            // Stopped by us, so known not to have completed: `--yes` is the word to re-run it.
            let ok = yes
                || (interactive && {
                    eprint!(
                        "step `{}` was interrupted and is not idempotent. Re-run it? [y/N] ",
                        step.id
                    );
                    let mut line = String::new();
                    let _ = std::io::stdin().read_line(&mut line);
                    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
                });
            if ok {
                rerun.push(step.id.clone());
            } else {
                eprintln!(
                    "error: step `{}` was interrupted and is not `idempotent: true`",
                    step.id
                );
                eprintln!(
                    "help: check what it did (its log: {}), then `runbook resume {id} --yes` (or `--rerun {}`) to re-run it, or `--mark-done {}` if it did its work",
                    files.log.display(),
                    step.id,
                    step.id
                );
                return exit::STOPPED;
            }
            continue;
        }
        // Its process ended and nothing saw how: it may have done all, some or none of its
        // work. Only the operator can say which, step by step; `--yes` does not.
        if interactive && !yes {
            eprint!(
                "step `{}` ended while no supervisor watched it: its outcome is unknown, and it is not idempotent (its log: {}).\n  [r]un it again, [m]ark it done, or [s]top? ",
                step.id,
                files.log.display()
            );
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            match line.trim().to_ascii_lowercase().as_str() {
                "r" | "run" | "rerun" => {
                    rerun.push(step.id.clone());
                    continue;
                }
                "m" | "mark" | "done" => {
                    machine.mark_done(i);
                    marked.push((step.id.clone(), attempt));
                    continue;
                }
                _ => {}
            }
        }
        undecided.push((step.id.clone(), files.log.clone()));
    }
    if !undecided.is_empty() {
        for (step, log) in &undecided {
            eprintln!(
                "error: step `{step}` ended while no supervisor watched it: its outcome is unknown, and it is not `idempotent: true`"
            );
            eprintln!(
                "help: check what it did (its log: {}), then either `runbook resume {id} --rerun {step}` to run it again, or `runbook resume {id} --mark-done {step}` if it did its work",
                log.display()
            );
        }
        return exit::STOPPED;
    }

    let mut shell = Shell {
        plan: plan.clone(),
        run_dir: run_dir.clone(),
        journal,
        mask: mask.clone(),
        observers: observers(&plan, json),
        operator: operator.clone(),
        mode,
        epoch,
        inventory: env.inventory.clone(),
        interactive,
        tty_signals: interactive,
    };
    let mut events = vec![EventKind::RunResumed(RunResumed {
        operator: operator.clone(),
        downtime_ms: downtime,
        adopted: adopted_ids,
        rerun,
        marked_done: marked.iter().map(|(s, _)| s.clone()).collect(),
    })];
    events.extend(marked.into_iter().map(|(step, attempt)| {
        EventKind::StepFinished(StepFinished {
            step,
            status: StepStatus::Succeeded,
            attempt,
            exit_code: None,
            signal: None,
            duration_ms: 0,
            will_retry: false,
            error: None,
            marked_done_by: Some(operator.clone()),
            next_in_ms: None,
        })
    }));
    if let Err(e) = shell.record_all(offset, events) {
        eprintln!("error: {e}");
        return exit::FAILED;
    }
    let rt = exec::runtime();
    let mut adopted: Vec<Adopted> = adopt
        .into_iter()
        .map(|(step, attempt, pg)| Adopted {
            step,
            attempt,
            pgid: Some(pg),
            result: None,
        })
        .collect();
    adopted.extend(finished_away.into_iter().map(|(step, attempt, r)| Adopted {
        step,
        attempt,
        pgid: None,
        result: Some(r),
    }));
    let result = rt.block_on(exec::execute(shell, machine, offset, adopted));
    let strict = super::run::Strict {
        rto: false,
        continued: *strict,
    };
    finish(result, &id, &state, strict)
}
