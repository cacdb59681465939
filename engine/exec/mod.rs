//! The executor: the async shell around [`machine::Machine`]. It turns processes ending,
//! timers, approvals dropped into the run's folder, terminal answers and signals into
//! [`Input`]s, and carries out the machine's [`Effect`]s: journal first (one fsync a batch,
//! before any process it announces is spawned or any dependent starts), then spawns, kills
//! and notifications.
//!
//! Dry-runs do not use this shell at all: [`dry_run`] drives the same machine on a virtual
//! clock in a plain loop, so a four-hour scenario rehearses in milliseconds.
//!
//! What runs on which task or thread, and the order of durability it keeps: docs/design.md
//! ("What runs async, and why", "Invariants").

mod adopt;
mod approvals;
mod driver;
mod dry_run;
mod fallback;
pub mod machine;
pub mod mask;
mod notify;
mod perform;
pub mod process;
mod remote;
pub mod supervisor;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::compile::{Inventory, Plan};
use crate::journal::*;
use crate::ui::observer::Observers;
pub use adopt::{Adopted, adopted_result};
pub use approvals::{ApprovalRequest, Signatures};
pub use driver::{Interrupt, Interrupts, execute, watch_signals};
pub use dry_run::dry_run;
pub use machine::{Config, Effect, ExitResult, Input, Machine, NotifyFailure, Outcome};
use mask::Masker;

/// Everything a run needs besides the machine: the plan, the journal, the observers, who runs
/// it and how. Passed as `cx` to the driver, `perform` and `dry_run`.
pub struct RunContext {
    pub plan: Arc<Plan>,
    pub run_dir: PathBuf,
    pub journal: Journal,
    pub mask: Arc<Masker>,
    pub observers: Observers,
    pub operator: String,
    pub mode: Mode,
    /// Wall-clock time of elapsed zero (the original start, on a resume).
    pub epoch: DateTime<Utc>,
    /// The environment's hosts and groups, which a step's `on:` names.
    pub inventory: Inventory,
    /// Ask at gates on this terminal.
    pub interactive: bool,
    pub tty_signals: bool,
    /// What answers are checked against before they count (signed approvals).
    pub signatures: Signatures,
    /// Signs every seal the run writes with the operator's key (`run --key`); `None` leaves
    /// the seals unsigned.
    pub seal_key: Option<SealKey>,
}

/// The key a run signs its seals with, and the run they belong to (docs/design.md, "Signed
/// approvals").
#[derive(Clone, Debug)]
pub struct SealKey {
    pub key: PathBuf,
    pub run: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The journal could not be written (a full disk, an I/O error): the run stops, and a
    /// resume continues it once the cause is gone.
    #[error("cannot write the journal `{0}`: {1}")]
    Journal(PathBuf, std::io::Error),
    /// The journal is no longer the file the run has been writing: the run stops, and its
    /// evidence is in doubt.
    #[error("the journal `{0}` was {1} while the run was writing it")]
    JournalChanged(PathBuf, String),
    #[error("{0}")]
    Other(String),
}

impl RunContext {
    /// Journals a batch of records with one fsync, then shows them.
    pub fn record_all(
        &mut self,
        now: Duration,
        events: Vec<EventKind>,
    ) -> Result<Vec<Record>, ExecError> {
        let ends = events
            .iter()
            .any(|e| matches!(e, EventKind::RunFinished(_) | EventKind::RunInterrupted(_)));
        self.record_batch(now, events, ends)
    }

    /// Journals what comes after the run's end (answers that arrived late) and seals the
    /// journal again: a journal that was sealed ends sealed (docs/design.md, the journal).
    pub fn record_after_end(
        &mut self,
        now: Duration,
        events: Vec<EventKind>,
    ) -> Result<Vec<Record>, ExecError> {
        self.record_batch(now, events, true)
    }

    fn record_batch(
        &mut self,
        now: Duration,
        events: Vec<EventKind>,
        seal: bool,
    ) -> Result<Vec<Record>, ExecError> {
        let at = self.epoch + chrono::Duration::from_std(now).unwrap_or_default();
        let at = if self.mode == Mode::DryRun {
            at
        } else {
            Utc::now().max(at)
        };
        let mut recs: Vec<Record> = events
            .into_iter()
            .map(|e| self.journal.append(at, now, e))
            .collect();
        // Every way a run ends closes its chain with a seal, in the same durable batch.
        if seal {
            let signed = self.sign_seal();
            recs.push(self.journal.seal_signed(at, now, signed));
        }
        self.journal.sync().map_err(|e| match e {
            WriteError::Io(e) => ExecError::Journal(self.journal.path().to_owned(), e),
            WriteError::Changed(why) => {
                ExecError::JournalChanged(self.journal.path().to_owned(), why)
            }
        })?;
        self.signatures.note(&recs);
        for r in &recs {
            self.observers.record(r);
        }
        Ok(recs)
    }
}

impl RunContext {
    /// The operator's signature over the chain's head as it stands, before the seal is
    /// appended. A seal that cannot be signed is written unsigned: the run is not failed for
    /// it, but told once why, and the key is not tried again (each try may wait out the
    /// timeout).
    fn sign_seal(&mut self) -> Option<SignedSeal> {
        let seal_key = self.seal_key.as_ref()?;
        let statement = crate::signing::SealStatement {
            run: seal_key.run.clone(),
            by: self.operator.clone(),
            head: self.journal.last_hash().to_owned(),
        };
        let signed = crate::signing::sign_unattended(
            &seal_key.key,
            &statement.canonical(),
            crate::signing::UNATTENDED_TIMEOUT,
        )
        .and_then(|signature| {
            let (v, _) = crate::signing::verify_by_own_key(&statement.canonical(), &signature)
                .map_err(|e| format!("`ssh-keygen` made a signature that does not verify: {e}"))?;
            Ok(SignedSeal {
                by: statement.by.clone(),
                key: v.fingerprint,
                signature,
            })
        });
        match signed {
            Ok(s) => Some(s),
            Err(why) => {
                eprintln!("warning: the journal's seal is not signed: {why}");
                self.seal_key = None;
                None
            }
        }
    }
}

/// The executor's runtime: one thread. The loop's work per event is small and mostly waits
/// on the journal's fsync; a second thread would only add wake-ups between threads to every
/// hand-over from the supervisor's pipe to the loop.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
