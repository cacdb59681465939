//! Approval requests dropped into the run's folder by `runbook approve`/`deny`: reading them,
//! checking their signatures ([`Signatures`]), handing them to the machine, and writing each
//! caller its result.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::journal::*;
use crate::signing::{AllowedSigners, Decision, Expected, Mismatch, Signed};

use super::machine::{Effect, Input, Machine};

/// What the engine checks a signed answer against before the machine sees it
/// (docs/design.md, "Signed approvals"): the run's own copy of allowed_signers, whether
/// signatures are required, and each gate's current request.
#[derive(Clone, Debug, Default)]
pub struct Signatures {
    pub run_id: String,
    /// The run's copy of `allowed_signers`; `None` when the project has none.
    pub signers: Option<AllowedSigners>,
    /// Every answer must be signed (`run_started.signed_approvals`).
    pub required: bool,
    /// Each gate's current request: the `hash` of its latest `approval_requested` record,
    /// kept from the records the run journals (and seeded from the journal on a resume).
    pub requests: BTreeMap<String, String>,
}

impl Signatures {
    /// Notes the gates that asked in `records`: the latest request of each is its current one.
    pub fn note(&mut self, records: &[Record]) {
        for r in records {
            if let EventKind::ApprovalRequested(a) = &r.event {
                self.requests.insert(a.step.clone(), r.hash.clone());
            }
        }
    }

    /// Checks an answer before the machine counts it: `Ok` with the verified decision (or
    /// `None`, unsigned where that is allowed), `Err` with the exact reason it is refused.
    pub fn check(
        &self,
        step: &str,
        by: &str,
        approve: bool,
        value: Option<&str>,
        signed: Option<&Signed>,
    ) -> Result<Option<Box<SignedDecision>>, String> {
        let Some(signed) = signed else {
            if self.required {
                return Err(format!(
                    "this run requires signed approvals, and the answer by `{by}` is not signed: sign it with `runbook approve {} {step} --as {by} --key PATH` (or paste a token from `--print`)",
                    self.run_id
                ));
            }
            return Ok(None);
        };
        let st = &signed.statement;
        let decision = if approve {
            Decision::Approve
        } else {
            Decision::Deny
        };
        st.mismatch(&Expected {
            run: &self.run_id,
            step,
            decision,
            by,
            request: self.requests.get(step).map(String::as_str),
            value,
        })
        .map_err(|m| match m {
            // What the approver can do about it, said to them.
            Mismatch::Request { .. } => format!("{m}: the gate asked again, sign the new one"),
            m => m.to_string(),
        })?;
        let Some(signers) = &self.signers else {
            return Err(
                "this run has no allowed_signers to check the signature against: add `runbooks/allowed_signers` before the run starts, or answer unsigned"
                    .to_string(),
            );
        };
        let verified =
            crate::signing::verify_statement(signers, signed).map_err(|r| r.to_string())?;
        Ok(Some(Box::new(SignedDecision {
            statement: st.clone(),
            signature: signed.signature.clone(),
            key: verified.fingerprint,
        })))
    }

    /// An answer as the machine should hear it, or the rejection to journal in its place.
    pub(super) fn admit(
        &self,
        step: String,
        by: String,
        approve: bool,
        (comment, value): (Option<String>, Option<String>),
        signed: Option<&Signed>,
    ) -> Result<Input, ApprovalRejected> {
        match self.check(&step, &by, approve, value.as_deref(), signed) {
            Ok(signed) => Ok(Input::Answer {
                step,
                by,
                approve,
                comment,
                value,
                signed,
            }),
            Err(reason) => Err(ApprovalRejected { step, by, reason }),
        }
    }
}

/// Requests from `runbook approve`, each by its id with the effects it alone led to.
pub(super) type Answered = Vec<(String, Vec<Effect>)>;

/// An approval dropped by `runbook approve`/`deny`: `approvals/<id>.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ApprovalRequest {
    pub step: String,
    pub by: String,
    pub approve: bool,
    pub comment: Option<String>,
    /// `runbook answer`: the value given to an `input:` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The answer as signed (`runbook approve --key`, `--token`); absent when unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<Signed>,
}

fn read_approval_requests(dir: &std::path::Path) -> Vec<(String, ApprovalRequest)> {
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
            Ok(r) => out.push((id, r)),
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
/// each learn their own fate. Each is checked first ([`Signatures::admit`]): a refused one is
/// journaled rejected and never reaches the machine.
pub(super) fn take_answers(
    dir: &std::path::Path,
    machine: &mut Machine,
    signatures: &Signatures,
    now: Duration,
) -> Answered {
    read_approval_requests(dir)
        .into_iter()
        .map(|(req, r)| {
            let admitted = signatures.admit(
                r.step,
                r.by,
                r.approve,
                (r.comment, r.value),
                r.signed.as_ref(),
            );
            let effects = match admitted {
                Ok(input) => machine.handle(now, input),
                Err(r) => vec![Effect::Record(EventKind::ApprovalRejected(r))],
            };
            (req, effects)
        })
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
