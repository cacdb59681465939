//! Approval requests dropped into the run's folder by `runbook approve`/`deny`: reading them,
//! handing them to the machine, and writing each caller its result.

use std::path::PathBuf;
use std::time::Duration;

use crate::journal::*;

use super::machine::{Effect, Input, Machine};

/// Requests from `runbook approve`, each by its id with the effects it alone led to.
pub(super) type Answered = Vec<(String, Vec<Effect>)>;

/// An approval dropped by `runbook approve`/`deny`: `approvals/<id>.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ApprovalRequest {
    pub step: String,
    pub by: String,
    pub approve: bool,
    pub comment: Option<String>,
}

fn read_approval_requests(dir: &std::path::Path) -> Vec<(String, Input)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let id = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let _ = std::fs::rename(&f, f.with_extension("taken"));
        match serde_json::from_str::<ApprovalRequest>(&text) {
            Ok(r) => out.push((
                id,
                Input::Answer {
                    step: r.step,
                    by: r.by,
                    approve: r.approve,
                    comment: r.comment,
                },
            )),
            Err(e) => {
                let _ = std::fs::write(
                    f.with_extension("result"),
                    format!("rejected: unreadable request: {e}\n"),
                );
            }
        }
    }
    out
}

/// Hands each request from `runbook approve` to the machine, one at a time and in the order
/// they were dropped, keeping what each led to: two answers to one gate in the same batch
/// each learn their own fate.
pub(super) fn take_answers(
    dir: &std::path::Path,
    machine: &mut Machine,
    now: Duration,
) -> Answered {
    read_approval_requests(dir)
        .into_iter()
        .map(|(req, input)| (req, machine.handle(now, input)))
        .collect()
}

/// Tells each `runbook approve` caller what became of its request, from its own effects.
pub(super) fn write_approval_results(dir: &std::path::Path, answers: &[(String, Vec<Effect>)]) {
    for (id, acts) in answers {
        let verdict = acts
            .iter()
            .find_map(|a| match a {
                Effect::Record(EventKind::ApprovalRejected(r)) => {
                    Some(format!("rejected: {}", r.reason))
                }
                Effect::Record(EventKind::ApprovalLate(l)) => {
                    Some(format!("rejected: {}", l.reason))
                }
                Effect::Record(EventKind::ApprovalGranted(g)) => {
                    Some(format!("granted: approved by {}", g.by.join(", ")))
                }
                Effect::Record(EventKind::ApprovalReceived(g)) => Some(format!(
                    "recorded: approval by {} counted; more approvers needed",
                    g.by
                )),
                Effect::Record(EventKind::ApprovalDenied(g)) => {
                    Some(format!("denied: by {}", g.by))
                }
                _ => None,
            })
            .unwrap_or_else(|| "rejected: the run did not take it".into());
        let path = dir.join(format!("{id}.result"));
        let tmp = dir.join(format!("{id}.result.tmp"));
        if std::fs::write(&tmp, format!("{verdict}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}
