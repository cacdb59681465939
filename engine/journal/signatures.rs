//! The signatures a journal carries, checked again as an auditor would years later: each
//! signed decision at a gate and each signed seal, against the `allowed_signers` the run kept
//! in its folder (the keys as they were, not as the project lists them today). Runs after the
//! hash chain verified (`verify::verify`): a signature that does not check is a broken journal,
//! named at its line. docs/design.md, "Signed approvals".

// A journal file may be hostile: see the lint's reason in lib.rs.
#![deny(clippy::indexing_slicing, clippy::string_slice)]

use std::collections::BTreeMap;
use std::path::Path;

use super::events::*;
use super::{Record, events};
use crate::signing::{self, AllowedSigners, Decision, SealStatement};

/// Who signed the journal's last seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealSigner {
    /// The operator, when the run's allowed_signers gives them the key; `None` when the run
    /// kept no allowed_signers, so only the key can be named.
    pub by: Option<String>,
    /// The key's fingerprint, `SHA256:…`.
    pub key: String,
}

/// Where a journal's signatures first fail: seq, line (1-based) and why.
pub type Failure = (u64, usize, String);

/// Checks the signatures of the first `records` records of the journal at `path` (a chain
/// that verified). `Ok` with the last seal's signer when the journal ends in a signed seal.
pub fn check(path: &Path, records: usize) -> Result<Option<SealSigner>, Failure> {
    let text = std::fs::read(path).map_err(|e| (0, 1, format!("cannot read it again: {e}")))?;
    let mut parsed = Vec::with_capacity(records);
    for (i, line) in text
        .split_inclusive(|b| *b == b'\n')
        .take(records)
        .enumerate()
    {
        let rec: Record = serde_json::from_slice(line)
            .map_err(|e| (i as u64, i + 1, format!("unreadable event: {e}")))?;
        parsed.push(rec);
    }
    let Some(EventKind::RunStarted(started)) = parsed.first().map(|r| &r.event) else {
        return Ok(None);
    };
    let signers = run_signers(path, started)?;
    Checker {
        run: &started.run_id,
        required: started.signed_approvals,
        dry_run: started.mode == Some(Mode::DryRun),
        signers: signers.as_ref(),
        requests: BTreeMap::new(),
        counted: BTreeMap::new(),
        operator: started.operator.clone(),
        seal: None,
    }
    .check(&parsed)
}

/// The run's copy of allowed_signers, when its `run_started` names one: it must be there, and
/// be the file the run read.
fn run_signers(path: &Path, started: &RunStarted) -> Result<Option<AllowedSigners>, Failure> {
    let Some(sha) = &started.allowed_signers_sha256 else {
        return Ok(None);
    };
    let copy = path.with_file_name("allowed_signers");
    let at0 = |why: String| (0, 1, why);
    let text = std::fs::read_to_string(&copy).map_err(|e| {
        at0(format!(
            "`run_started` names allowed_signers with sha256 {sha}, but the run's copy `{}` cannot be read ({e}): its signatures cannot be checked without the keys as they were",
            copy.display()
        ))
    })?;
    let found = crate::digest::sha256_hex(text.as_bytes());
    if &found != sha {
        return Err(at0(format!(
            "the run's `{}` has sha256 {found}, but `run_started` says {sha}: the keys were changed after the run",
            copy.display()
        )));
    }
    AllowedSigners::parse(&text).map(Some).map_err(|errs| {
        let first = errs.first().map(|e| e.to_string()).unwrap_or_default();
        at0(format!(
            "the run's `{}` does not parse: {first}",
            copy.display()
        ))
    })
}

struct Checker<'a> {
    run: &'a str,
    required: bool,
    /// A dry-run grants its gates itself (`auto`), signatures required or not.
    dry_run: bool,
    signers: Option<&'a AllowedSigners>,
    /// Each gate's latest `approval_requested` hash and `min`: what a decision must have
    /// signed, and how many people a grant needs.
    requests: BTreeMap<String, (String, u32)>,
    /// The approvals each gate counted since its latest request: who, and with which key. A
    /// grant must name exactly these people and its own signer, each with a key of their own,
    /// or a forger could add a name to `approval_granted.by`, or drop a line, unseen.
    counted: BTreeMap<String, Vec<(String, Option<String>)>>,
    /// Who runs the run now: its starter, then each resume's operator.
    operator: String,
    /// The signer of the seal most recently read, if it was signed.
    seal: Option<SealSigner>,
}

impl Checker<'_> {
    fn check(mut self, records: &[Record]) -> Result<Option<SealSigner>, Failure> {
        for r in records {
            let at = |why: String| (r.seq, r.seq as usize + 1, why);
            self.record(r).map_err(at)?;
        }
        Ok(match records.last().map(|r| &r.event) {
            Some(EventKind::RunSealed(_)) => self.seal,
            _ => None,
        })
    }

    fn record(&mut self, r: &Record) -> Result<(), String> {
        match &r.event {
            EventKind::ApprovalRequested(a) => {
                self.requests
                    .insert(a.step.clone(), (r.hash.clone(), a.min));
                self.counted.remove(&a.step);
            }
            EventKind::RunResumed(e) => self.operator = e.operator.clone(),
            EventKind::ApprovalReceived(a) => {
                self.decision(
                    &a.step,
                    &a.by,
                    (Decision::Approve, None),
                    a.signed.as_deref(),
                    true,
                )?;
                let key = a.signed.as_ref().map(|s| s.key.clone());
                self.counted
                    .entry(a.step.clone())
                    .or_default()
                    .push((a.by.clone(), key));
            }
            EventKind::ApprovalDenied(a) => self.decision(
                &a.step,
                &a.by,
                (Decision::Deny, None),
                a.signed.as_deref(),
                true,
            )?,
            EventKind::ApprovalGranted(g) => {
                let by = g.by.last().map(String::as_str).unwrap_or_default();
                // An input's value is what the statement was signed with.
                // A manual step's confirmed items were signed as the value, one a line.
                let items = g.items.as_ref().map(|i| i.join("\n"));
                let how = (Decision::Approve, g.value.as_deref().or(items.as_deref()));
                self.decision(&g.step, by, how, g.signed.as_deref(), !g.auto)?;
                if self.required {
                    self.grant(g)?;
                }
            }
            EventKind::RunSealed(s) => self.seal(s)?,
            _ => {}
        }
        Ok(())
    }

    /// A decision at a gate: signed when the run requires it, and its signature covers this
    /// run, this gate's current request, this decision by this person, with a key the run's
    /// allowed_signers gives them.
    fn decision(
        &self,
        step: &str,
        by: &str,
        (decision, value): (Decision, Option<&str>),
        signed: Option<&events::SignedDecision>,
        by_a_person: bool,
    ) -> Result<(), String> {
        let Some(signed) = signed else {
            if self.required && by_a_person {
                return Err(format!(
                    "`{by}`'s decision at `{step}` is not signed, but the run requires signed approvals (`run_started.signed_approvals`)"
                ));
            }
            return Ok(());
        };
        let st = &signed.statement;
        // The record's own fields are what the statement must have been signed for.
        st.mismatch(&signing::Expected {
            run: self.run,
            step,
            decision,
            by,
            request: self.requests.get(step).map(|(h, _)| h.as_str()),
            value,
        })
        .map_err(|m| format!("the record does not match its signed decision: {m}"))?;
        let signature = crate::signing::Signed {
            statement: st.clone(),
            signature: signed.signature.clone(),
        };
        let fingerprint = match self.signers {
            Some(signers) => {
                signing::verify_statement(signers, &signature)
                    .map_err(|e| e.to_string())?
                    .fingerprint
            }
            None => {
                signing::verify_by_own_key(&st.canonical(), &signed.signature)
                    .map_err(|e| e.to_string())?
                    .0
                    .fingerprint
            }
        };
        if fingerprint != signed.key {
            return Err(format!(
                "the record names key {}, but the signature was made by {fingerprint}",
                signed.key
            ));
        }
        Ok(())
    }

    /// A grant where signatures are required: by people who each signed, with keys of their
    /// own, as many as the gate's `min` (the machine's count, done again). Only a dry-run grants
    /// by itself there: `--yes` is refused at start.
    fn grant(&self, g: &ApprovalGranted) -> Result<(), String> {
        let step = &g.step;
        if g.auto {
            if self.dry_run {
                return Ok(());
            }
            return Err(format!(
                "`{step}` is granted without an approver (`auto`), but the run requires signed approvals and refuses `--yes`"
            ));
        }
        let counted = self
            .counted
            .get(step)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut people: Vec<(&str, Option<&str>)> = counted
            .iter()
            .map(|(by, key)| (by.as_str(), key.as_deref()))
            .collect();
        if let Some(by) = g.by.last() {
            people.push((by, g.signed.as_ref().map(|s| s.key.as_str())));
        }
        let named: Vec<&str> = people.iter().map(|(by, _)| *by).collect();
        if named != g.by.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(format!(
                "`{step}` is granted by {}, but the signed approvals since its latest request are by {}",
                g.by.join(", "),
                if named.is_empty() {
                    "nobody".to_owned()
                } else {
                    named.join(", ")
                }
            ));
        }
        for (i, (by, key)) in people.iter().enumerate() {
            if let Some(key) = key
                && let Some((first, _)) = people.iter().take(i).find(|(_, k)| *k == Some(*key))
            {
                return Err(format!(
                    "`{step}` counted key {key} twice, for {first} and for {by}: one key is one person"
                ));
            }
        }
        let min = self.requests.get(step).map_or(1, |(_, min)| *min);
        if (people.len() as u64) < u64::from(min) {
            return Err(format!(
                "`{step}` is granted by {} of the {min} people it needs",
                people.len()
            ));
        }
        Ok(())
    }

    /// A seal: when signed, by the run's operator of the time, over the head it names.
    fn seal(&mut self, s: &RunSealed) -> Result<(), String> {
        let Some(signed) = &s.signed else {
            self.seal = None;
            return Ok(());
        };
        if signed.by != self.operator {
            return Err(format!(
                "the seal is signed as `{}`, but the run's operator was `{}`",
                signed.by, self.operator
            ));
        }
        let statement = SealStatement {
            run: self.run.to_owned(),
            by: signed.by.clone(),
            head: s.last_hash.clone(),
        };
        let message = statement.canonical();
        let (fingerprint, by) = match self.signers {
            Some(signers) => {
                let v = signing::verify(signers, &message, &signed.signature, &signed.by)
                    .map_err(|e| format!("the seal's signature does not check: {e}"))?;
                (v.fingerprint, Some(signed.by.clone()))
            }
            None => {
                let (v, _) = signing::verify_by_own_key(&message, &signed.signature)
                    .map_err(|e| format!("the seal's signature does not check: {e}"))?;
                (v.fingerprint, None)
            }
        };
        if fingerprint != signed.key {
            return Err(format!(
                "the seal names key {}, but its signature was made by {fingerprint}",
                signed.key
            ));
        }
        self.seal = Some(SealSigner {
            by,
            key: fingerprint,
        });
        Ok(())
    }
}
