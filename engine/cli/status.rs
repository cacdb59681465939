//! `runbook status`: the recent runs, or one run's steps, open gates and RTO clock, as the
//! journal says; a stopped real recovery is named under every listing.

use std::path::PathBuf;
use std::time::Duration;

use super::check::table;
use super::{CliError, exit};
use crate::app::error::Said;
use crate::app::find::{Last, find_which};
use crate::app::status::{executor_pid, now_ms, projection, stopped_real_runs};
use crate::journal::*;
use crate::report::{RtoVerdict, RunProgress, rto_verdict, run_status, step_status_words};
use crate::state::StateDir;
use crate::units::fmt_duration;

fn ms(d: u64) -> String {
    fmt_duration(Duration::from_millis(d))
}

pub fn status(
    run: Option<&str>,
    dry_run: bool,
    json: bool,
    state_dir: Option<PathBuf>,
) -> Result<u8, CliError> {
    let state = StateDir::resolve(state_dir);
    let (code, shown) = match run {
        None => (Ok(status_all(&state)), None),
        Some(r) => {
            let id = find_which(&state, Some(r), false, Last::not_dry_run_unless(dry_run))?;
            (status_one(&state, &id, json), Some(id))
        }
    };
    // A half-done real recovery must not drop out of sight behind newer runs (or off the
    // listing's twenty): every status names it until it is resumed or finished.
    let stopped: Vec<(String, RunState)> = stopped_real_runs(&state)
        .into_iter()
        .filter(|(id, _)| shown.as_ref() != Some(id))
        .collect();
    // `--json` is one document on stdout: the listing would break it.
    if !stopped.is_empty() && !json {
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
        let status = match (RunProgress::of(&rs), live) {
            (RunProgress::Running, false) => "executor gone",
            (progress, _) => progress.as_str(),
        }
        .to_owned();
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

/// One run: its state, RTO clock, steps and open gates. Its journal unreadable is an error,
/// said after the stopped runs are listed.
fn status_one(state: &StateDir, id: &str, json: bool) -> Result<u8, CliError> {
    let records = match read_lenient(&state.journal(id)) {
        Ok(r) => r,
        Err(e) => {
            return Err(CliError::usage(Said::error(format!(
                "cannot read run `{id}`: {e}"
            ))));
        }
    };
    let broken = warn_if_broken(state, id);
    let rs = RunState::replay(&records);
    let Some(started) = rs.started.clone() else {
        return Err(CliError::failed(Said::error(format!(
            "run `{id}` has an empty journal"
        ))));
    };
    let pid = executor_pid(state, &rs);
    let requests = crate::app::status::request_hashes(&records);
    if json {
        print_json(id, &started, &rs, pid.is_some(), &requests);
    } else {
        println!(
            "run {id}: {} ({}), mode {}, operator {}",
            started.scenario,
            started.title,
            rs.mode().as_str(),
            started.operator
        );
        println!("state: {}", state_line(id, &rs, pid));
        print_clock(&started, &rs);
        println!();
        let (rows, gates) = step_rows(&rs);
        print!("{}", table(&rows));
        print_calls(&rs);
        let signed = started.allowed_signers_sha256.is_some() || started.signed_approvals;
        print_gates(id, &rs, &gates, pid.is_some(), signed, &requests);
    }
    Ok(if broken { exit::FAILED } else { exit::OK })
}

/// What status shows is what the journal says: said loudly when the chain is broken.
fn warn_if_broken(state: &StateDir, id: &str) -> bool {
    match crate::journal::verify(&state.journal(id)) {
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
    }
}

/// `status RUN --json`: the run's state and its open gates with their request hashes.
fn print_json(
    id: &str,
    started: &RunStarted,
    rs: &RunState,
    live: bool,
    requests: &std::collections::BTreeMap<String, String>,
) {
    let open: Vec<serde_json::Value> = rs
        .steps
        .iter()
        .filter(|g| g.waiting)
        .map(|g| {
            serde_json::json!({
                "step": g.id,
                "prompt": g.prompt,
                "approvers": g.approvers,
                "min": g.min,
                "approved_by": g.approved_by,
                "request": requests.get(&g.id),
                // What it waits for: a decision, a value, or a task done (work, not a wait).
                "kind": match (&g.manual, &g.input) {
                    (Some(_), _) => "manual",
                    (None, Some(_)) => "input",
                    (None, None) => "approval",
                },
                "checklist": g.manual.as_ref().map(|m| &m.checklist),
            })
        })
        .collect();
    let mut doc = serde_json::json!({
        "run": id,
        "scenario": started.scenario,
        "state": run_status(rs),
        "live": live,
        "signed_approvals": started.signed_approvals,
        "gates": open,
    });
    // The called runbooks' groups against their budgets, as the text view's `call` lines
    // (absent when the run calls none, as in the JSON report).
    let calls = crate::report::calls::call_groups(rs, now_ms(rs));
    if !calls.is_empty() {
        doc["calls"] = calls
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id,
                    "runbook": c.runbook,
                    "steps": c.steps,
                    "budget_s": c.budget_ms as f64 / 1000.0,
                    "started_s": c.start_ms.map(|v| v as f64 / 1000.0),
                    "duration_s": c.duration_ms.map(|v| v as f64 / 1000.0),
                    "ended": c.end_ms.is_some(),
                    "breached": c.breached,
                })
            })
            .collect();
    }
    println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
}

/// The `state:` line: the run's progress, and what to do when its executor is gone or it
/// stopped.
fn state_line(id: &str, rs: &RunState, pid: Option<u32>) -> String {
    match (RunProgress::of(rs), pid) {
        (RunProgress::Running, Some(p)) => format!("running (executor pid {p})"),
        (RunProgress::Running, None) => format!(
            "the executor is gone (it died or was killed): `runbook resume {id}` continues the run"
        ),
        (RunProgress::Stopped, _) => format!(
            "stopped ({}): `runbook resume {id}` continues the run",
            rs.interruptions
                .last()
                .map(|i| crate::ui::describe::stop_words(&i.1.reason))
                .unwrap_or_else(|| "interrupted")
        ),
        (progress @ RunProgress::Ended(_), _) => progress.as_str().to_owned(),
    }
}

/// The RTO clock: the verdict once known, else where the clock stands and the projection.
fn print_clock(started: &RunStarted, rs: &RunState) {
    let target = started.rto_ms;
    let now = now_ms(rs);
    if rs.mode() == Mode::Drill && crate::report::is_rehearsal(rs) {
        println!("rehearsal: the steps a drill mocks run for real in this environment");
    }
    match &rs.finished {
        Some(_) => println!("{}", rto_verdict(rs).sentence()),
        // Service is restored: the RTO clock stopped there, and the observation runs on.
        None if crate::report::recovery_ms(rs).is_some() => {
            println!("{}", rto_verdict(rs).sentence())
        }
        None => {
            let (projected, path) = projection(rs, now);
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
}

/// The steps' table, and the gates that wait.
fn step_rows(rs: &RunState) -> (Vec<[String; 4]>, Vec<StepRun>) {
    let now = now_ms(rs);
    let mut rows = vec![[
        "STEP".to_owned(),
        "STATUS".into(),
        "TIME / BUDGET".into(),
        "NOTE".into(),
    ]];
    let mut gates = Vec::new();
    let observation = crate::report::observation_steps(rs);
    for s in &rs.steps {
        let st = step_status_words(rs, s);
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
            note.push(crate::report::REHEARSED.to_owned());
        }
        if s.finally {
            note.push("finally (cleanup, after every other step)".to_owned());
        } else if observation.contains(&s.id) {
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
        if let Some(c) = s.condition.as_ref().filter(|c| !c.held || c.assumed) {
            note.push(crate::ui::describe::condition_words(c));
        }
        if s.status == Some(StepStatus::NotRun) {
            // Which need kept it from running (a condition's skip is said above).
            note.extend(
                crate::report::why_not_run(rs, s)
                    .map(|w| w.trim_start_matches("not run: ").to_owned()),
            );
        }
        if let Some(e) = &s.error {
            note.push(e.clone());
        }
        if s.waiting {
            gates.push(s.clone());
        }
        // What steps wrote (errors, prompts made of their outputs) is shown, not obeyed.
        let note = crate::ui::visible::visible(&note.join("; ")).into_owned();
        rows.push([s.id.clone(), st, time, note]);
    }
    (rows, gates)
}

/// The open gates: prompt, approvers, how long each has waited, and the commands that answer
/// it (with the request hash to sign from another machine, when approvals are signed).
fn print_gates(
    id: &str,
    rs: &RunState,
    gates: &[StepRun],
    live: bool,
    signed: bool,
    requests: &std::collections::BTreeMap<String, String>,
) {
    if gates.is_empty() {
        return;
    }
    let now = now_ms(rs);
    // A manual task is work a person is doing, timed against its budget: not a decision
    // awaited, so it is listed apart from the gates.
    let (tasks, decisions): (Vec<&StepRun>, Vec<&StepRun>) =
        gates.iter().partition(|g| g.manual.is_some());
    print_manual_tasks(id, &tasks, now, signed, requests);
    if !decisions.is_empty() {
        println!("\nwaiting for approval:");
    }
    for g in decisions {
        println!(
            "  {}: {}\n    approvers: {}{}; waiting {} of a {} budget",
            g.id,
            crate::ui::visible::visible(g.prompt.as_deref().unwrap_or_default()),
            g.approvers.join(", "),
            if g.min > 1 {
                format!(" ({} people; have {})", g.min, g.approved_by.len())
            } else {
                String::new()
            },
            ms(now.saturating_sub(g.requested_ms.unwrap_or(now))),
            ms(g.budget_ms)
        );
        if let Some(input) = &g.input {
            // An input asks for a value: `approve` would be refused.
            if let Some(p) = &input.pattern {
                println!("    a value matching: {}", crate::ui::visible::visible(p));
            }
            println!("    runbook answer {id} {} VALUE --as NAME", g.id);
        } else {
            println!(
                "    runbook approve {id} {} --as NAME [--comment TEXT]",
                g.id
            );
        }
        print_deny_and_signing(id, g, signed, requests);
    }
    if !live && !rs.is_finished() {
        println!("  (the executor is not running: resume the run first)");
    }
}

/// The manual tasks under way: instructions, who may do them, the time spent against the
/// budget, the checklist, and the command that says a task is done.
fn print_manual_tasks(
    id: &str,
    tasks: &[&StepRun],
    now: u64,
    signed: bool,
    requests: &std::collections::BTreeMap<String, String>,
) {
    if tasks.is_empty() {
        return;
    }
    println!("\nmanual tasks in progress:");
    for t in tasks {
        let spent = now.saturating_sub(t.requested_ms.unwrap_or(now));
        println!(
            "  {}: {}\n    done by: {}; working {} of a {} budget{}",
            t.id,
            crate::ui::visible::visible(t.prompt.as_deref().unwrap_or_default()),
            t.approvers.join(", "),
            ms(spent),
            ms(t.budget_ms),
            if spent > t.budget_ms {
                " (over budget)"
            } else {
                ""
            }
        );
        for item in t.manual.iter().flat_map(|m| &m.checklist) {
            println!("    [ ] {}", crate::ui::visible::visible(item));
        }
        println!(
            "    runbook done {id} {} --as NAME --all [--note TEXT]",
            t.id
        );
        print_deny_and_signing(id, t, signed, requests);
    }
}

/// A gate's refusal, and what a signer on another machine types.
fn print_deny_and_signing(
    id: &str,
    g: &StepRun,
    signed: bool,
    requests: &std::collections::BTreeMap<String, String>,
) {
    {
        println!("    runbook deny {id} {} --as NAME [--comment TEXT]", g.id);
        if signed
            && g.manual.is_some()
            && let Some(hash) = requests.get(&g.id)
        {
            // `done` reads the checklist from the run's journal: it is signed where the run is.
            println!("    request: {hash}");
            println!(
                "    signed: runbook done {id} {} --as NAME --all --key KEY [--note TEXT]",
                g.id
            );
        } else if signed && let Some(hash) = requests.get(&g.id) {
            // What an approver on another machine needs: nothing but `runbook` and a key.
            println!("    request: {hash}");
            println!(
                "    from another machine: runbook approve {id} {} --as NAME --key KEY --request {hash} --print",
                g.id
            );
            println!("    then here: runbook approve --token TOKEN");
        }
    }
}

/// Each called runbook's group against the call's budget, under the steps.
fn print_calls(rs: &RunState) {
    let now = now_ms(rs);
    for c in crate::report::calls::call_groups(rs, now) {
        let time = match c.duration_ms {
            Some(d) => format!("{} / {}", ms(d), ms(c.budget_ms)),
            None => format!("- / {}", ms(c.budget_ms)),
        };
        let note = if c.breached {
            ", over budget"
        } else if c.end_ms.is_none() && c.duration_ms.is_some_and(|d| d * 5 >= c.budget_ms * 4) {
            ", past 80% of budget"
        } else {
            ""
        };
        println!(
            "call {} (runbook {}, {} steps): {time}{note}",
            c.id,
            c.runbook,
            c.steps.len()
        );
    }
}
