//! `approve` and `deny`: an answer to a gate, handed to the run's live executor through its
//! approvals folder, or journaled here as late when the gate is decided already.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;

use super::Error;
use super::error::Said;
use super::find::find;
use super::status::executor_pid;
use crate::diag::Problem;
use crate::exec::ApprovalRequest;
use crate::journal::*;
use crate::report::step_status;
use crate::signing::{self, Decision, Signed, Statement};
use crate::state::{self, StateDir};

/// How `approve`/`deny` signs (docs/design.md, "Signed approvals").
#[derive(Clone, Debug, Default)]
pub struct Signing {
    /// `--key`: a private key file, or a public key whose private half is in ssh-agent.
    pub key: Option<PathBuf>,
    /// `--print`: sign, print the token, write nothing.
    pub print: bool,
    /// `--request HASH`: the gate's request, on a machine without the state folder.
    pub request: Option<String>,
}

impl Signing {
    /// Asked for in so many words: sign whatever the run requires.
    fn asked(&self) -> bool {
        self.key.is_some() || self.print || self.request.is_some()
    }
}

/// The answer, signed when it should be: whenever `--key`, `--print` or `--request` is given,
/// or a key is found and the run keeps allowed_signers. `Ok((run id, None))`: it goes unsigned,
/// as it may for a run that does not require signatures.
pub fn sign_answer(
    state: &StateDir,
    run: &str,
    step: &str,
    by: &str,
    (comment, value): (Option<&str>, Option<&str>),
    approve: bool,
    how: &Signing,
) -> Result<(String, Option<Signed>), Error> {
    let (id, request, has_signers, required) = match &how.request {
        // Another machine: nothing to read, the run and the request are as given.
        Some(hash) => {
            let id = find(state, Some(run), false).unwrap_or_else(|_| run.to_owned());
            (id, hash.clone(), true, true)
        }
        None => {
            let id = find(state, Some(run), false)?;
            let records = read_lenient(&state.journal(&id)).unwrap_or_default();
            let started = RunState::replay(&records[..records.len().min(1)]).started;
            let has_signers = started
                .as_ref()
                .is_some_and(|s| s.allowed_signers_sha256.is_some());
            let required = started.as_ref().is_some_and(|s| s.signed_approvals);
            let request = records.iter().rev().find_map(|r| match &r.event {
                EventKind::ApprovalRequested(a) if a.step == step => Some(r.hash.clone()),
                _ => None,
            });
            let Some(request) = request else {
                if how.asked() || required {
                    return Err(Problem::error(format!(
                        "gate `{step}` of run `{id}` has not asked for an answer: there is no request to sign"
                    ))
                    .help(format!("`runbook status {id}` shows the open gates and their request hashes"))
                    .into());
                }
                return Ok((id, None));
            };
            (id, request, has_signers, required)
        }
    };
    let key = how.key.clone().or_else(signing::default_key);
    let Some(key) = key.filter(|_| how.asked() || has_signers) else {
        if required || how.asked() {
            return Err(Problem::error(format!(
                "run `{id}` requires signed approvals, and no signing key was found"
            ))
            .help(format!(
                "give one: `runbook approve {id} {step} --as {by} --key ~/.ssh/id_ed25519` (or set `RUNBOOK_SIGNING_KEY`)"
            ))
            .into());
        }
        return Ok((id, None));
    };
    let statement = Statement {
        run: id.clone(),
        step: step.to_owned(),
        decision: if approve {
            Decision::Approve
        } else {
            Decision::Deny
        },
        by: by.to_owned(),
        comment: comment.map(str::to_owned),
        at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        request,
        value: value.map(str::to_owned),
    };
    let signature =
        signing::sign(&key, &statement.canonical()).map_err(|e| Error::failed(Said::error(e)))?;
    Ok((
        id,
        Some(Signed {
            statement,
            signature,
        }),
    ))
}

/// `approve --token`: the signed answer a token carries, handed to its run as any answer.
pub fn answer_token(state: &StateDir, token: &str) -> Result<Answered, Error> {
    let signed = Signed::from_token(token).map_err(|e| Error::usage(Said::error(e)))?;
    let st = signed.statement.clone();
    answer(
        state,
        &st.run,
        &st.step,
        &st.by,
        (st.comment, st.value),
        st.decision == Decision::Approve,
        Some(signed),
    )
}

/// What the run answered: the line to show, and whether the answer was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    pub text: String,
    /// False when it was rejected (too late, not an approver, …): the answerer's exit 1.
    pub taken: bool,
}

/// `approve` and `deny`: hands the answer to the live executor of the run, which journals it,
/// or journals it here as late when the gate is decided and no executor holds the run.
pub fn answer(
    state: &StateDir,
    run: &str,
    step: &str,
    by: &str,
    (comment, value): (Option<String>, Option<String>),
    approve: bool,
    signed: Option<Signed>,
) -> Result<Answered, Error> {
    let id = find(state, Some(run), false)?;
    let records = read_lenient(&state.journal(&id)).unwrap_or_default();
    let rs = RunState::replay(&records);
    let Some(s) = rs.step(step) else {
        let ids: Vec<&str> = rs
            .steps
            .iter()
            .filter(|s| s.gate)
            .map(|s| s.id.as_str())
            .collect();
        return Err(Problem::error(format!("run `{id}` has no step `{step}`"))
            .maybe_help(
                crate::diag::suggestion(step, ids.iter().copied())
                    .or(Some(format!("its gates: {}", ids.join(", ")))),
            )
            .into());
    };
    if !s.gate {
        return Err(Problem::error(format!("step `{step}` is not an approval gate")).into());
    }
    let decided = decision(s).is_some();
    if !s.waiting && !decided {
        return Err(Problem::error(format!(
            "gate `{step}` is not waiting for an answer (it is {})",
            step_status(s)
        ))
        .help(format!("`runbook status {id}` shows the open gates"))
        .into());
    }
    if executor_pid(state, &rs).is_none() {
        if decided {
            // Nobody else will journal it: the run is over, or stopped past this gate.
            return answer_late(state, &id, step, by, approve);
        }
        return Err(Error::stopped(
            Problem::error(format!(
                "run `{id}` is not live: its executor is not running"
            ))
            .help(format!(
                "`runbook resume {id}` continues it; the gate will ask again"
            )),
        ));
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
        by: by.to_owned(),
        approve,
        comment,
        value,
        signed,
    })
    .expect("json");
    let tmp = dir.join(format!(".{req}.tmp"));
    if let Err(e) = std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, dir.join(format!("{req}.json"))))
    {
        return Err(Error::failed(Said::error(format!(
            "cannot write the request into {}: {e}",
            dir.display()
        ))));
    }
    let result = dir.join(format!("{req}.result"));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&result) {
            let text = text.trim();
            return Ok(Answered {
                text: text.to_owned(),
                taken: !text.starts_with("rejected"),
            });
        }
        // The run ended between our look and its last look at the folder: the request is
        // ours again (it was not taken) and is answered here, against the journal.
        if executor_pid(state, &rs).is_none()
            && std::fs::remove_file(dir.join(format!("{req}.json"))).is_ok()
        {
            let records = read_lenient(&state.journal(&id)).unwrap_or_default();
            let rs = RunState::replay(&records);
            if rs.step(step).and_then(decision).is_some() {
                return answer_late(state, &id, step, by, approve);
            }
            return Err(Error::stopped(Said::error(format!(
                "run `{id}` stopped before it took the request; `runbook status {id}` shows its state"
            ))));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(dir.join(format!("{req}.json")));
    Err(Error::failed(Said::error(format!(
        "run `{id}` did not take the request within 15s; `runbook status {id}` shows its state"
    ))))
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
fn answer_late(
    state: &StateDir,
    id: &str,
    step: &str,
    by: &str,
    approve: bool,
) -> Result<Answered, Error> {
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
        Ok(reason) => Ok(Answered {
            text: format!("rejected: {reason}"),
            taken: false,
        }),
        Err(e) => Err(Error::failed(Said::error(format!(
            "gate `{step}` of run `{id}` is decided already, and the late answer could not be journaled into {}: {e}",
            path.display()
        )))),
    }
}
