//! Replay: a journal's records folded into the state of the run they describe. Status,
//! resume and every report read this, never the executor's memory.

// A journal file may be hostile: see the lint's reason in lib.rs.
#![deny(clippy::indexing_slicing, clippy::string_slice)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::Record;
use super::events::*;

/// One step as the journal tells it.
#[derive(Clone, Debug, Default)]
pub struct StepRun {
    pub id: String,
    pub title: String,
    pub budget_ms: u64,
    pub gate: bool,
    pub idempotent: bool,
    /// `on_failure: continue`, as the plan in `run_started` says.
    pub continue_on_failure: bool,
    /// A step of `finally:`, as the plan in `run_started` says.
    pub finally: bool,
    /// The last word on the step, if it finished.
    pub status: Option<StepStatus>,
    pub attempts: u32,
    /// Elapsed (run clock) of the first start and of the final finish.
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// Elapsed (run clock) of the last attempt's start: a step adopted by a resume that had
    /// ended while no engine watched finished at this plus its `duration_ms`, before the
    /// resume journaled it.
    pub attempt_started_ms: Option<u64>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Started (this attempt) and not finished: in flight, or orphaned by a crash.
    pub in_flight: bool,
    pub command: Option<String>,
    pub how: Option<How>,
    pub outputs: BTreeMap<String, String>,
    /// Which outputs are masked (held a secret); None when the journal does not say.
    pub masked_outputs: Option<BTreeSet<String>>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub warned: bool,
    pub breached: bool,
    /// Gates: who approved, and how long people took.
    pub approved_by: Vec<String>,
    pub auto_approved: bool,
    pub denied_by: Option<String>,
    pub waiting: bool,
    pub wait_ms: Option<u64>,
    pub requested_ms: Option<u64>,
    pub approvers: Vec<String>,
    pub min: u32,
    pub prompt: Option<String>,
    /// An `input:` step: it asks for a value (`approval_requested.input`).
    pub input: Option<InputAsked>,
    /// An `input:` step: the value it was given (`approval_granted.value`).
    pub value: Option<String>,
    /// A `manual:` step: its checklist (`approval_requested.manual`); its time is work, not
    /// human wait.
    pub manual: Option<ManualAsked>,
    /// A `manual:` step done: the items confirmed (`approval_granted.items`) and the note
    /// (`approval_granted.comment`); who did it is `approved_by`.
    pub items: Option<Vec<String>>,
    pub note: Option<String>,
    /// Mocked and skipped steps: the estimate that stood in for a measurement.
    pub estimated: bool,
    /// The plan's likely estimate of the step.
    pub estimate_ms: u64,
    /// Mocked and skipped steps: the duration they stand for (the estimate), from the instant
    /// the drill reached them (`started_ms`). They take no time on the run's clock.
    pub simulated_ms: Option<u64>,
    /// Its `when:` as evaluated (`step_finished.condition`), if it has one.
    pub condition: Option<ConditionSeen>,
}

impl StepRun {
    /// Time from first start to final finish (retries included), or until `now` if running.
    pub fn duration_ms(&self, now_ms: u64) -> Option<u64> {
        let s = self.started_ms?;
        Some(self.finished_ms.unwrap_or(now_ms).saturating_sub(s))
    }
}

/// A run as its journal tells it.
#[derive(Clone, Debug, Default)]
pub struct RunState {
    pub started: Option<RunStarted>,
    pub started_at: Option<DateTime<Utc>>,
    pub steps: Vec<StepRun>,
    index: BTreeMap<String, usize>,
    pub finished: Option<RunFinished>,
    pub finished_at: Option<DateTime<Utc>>,
    pub interruptions: Vec<(u64, RunInterrupted)>,
    pub resumes: Vec<(u64, RunResumed)>,
    pub escalations: Vec<(u64, Escalated)>,
    pub warnings: Vec<(u64, BudgetEvent)>,
    pub breaches: Vec<(u64, BudgetEvent)>,
    pub risks: Vec<(u64, RtoAtRisk)>,
    pub rejections: Vec<(u64, ApprovalRejected)>,
    /// Answers to gates already decided.
    pub late_answers: Vec<(u64, ApprovalLate)>,
    pub last_elapsed_ms: u64,
    pub last_at: Option<DateTime<Utc>>,
    pub records: usize,
    /// The last record read is a `run_sealed`: the run ended (or stopped) cleanly.
    pub sealed: bool,
    /// The loops over outputs expanded, in journal order: a resume expands its plan the same.
    pub expansions: Vec<LoopExpanded>,
}

impl RunState {
    pub fn replay(records: &[Record]) -> RunState {
        let mut s = RunState::default();
        for r in records {
            s.apply(r);
        }
        s
    }

    /// A loop over an output got its items: its step gives way to its instances, in its
    /// place, in the plan the reports read and in the steps.
    fn expand_loop(&mut self, e: &LoopExpanded) {
        self.expansions.push(e.clone());
        if let Some(started) = &mut self.started {
            started.plan.expand_loop(&e.step, &e.instances);
        }
        let at = self.index.get(&e.step).copied();
        let runs: Vec<StepRun> = e
            .instances
            .iter()
            .map(|p| StepRun {
                id: p.id.clone(),
                title: p.title.clone(),
                budget_ms: p.budget_ms,
                estimate_ms: p.estimate_ms[1],
                gate: p.gate,
                idempotent: p.idempotent,
                continue_on_failure: p.continue_on_failure,
                finally: p.finally,
                ..Default::default()
            })
            .collect();
        match at {
            Some(at) => {
                self.steps.splice(at..=at, runs);
            }
            None => self.steps.extend(runs),
        }
        self.index = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
    }

    pub fn step(&self, id: &str) -> Option<&StepRun> {
        self.index.get(id).and_then(|&i| self.steps.get(i))
    }

    /// When a step finished, on the run's clock and the wall's: when its `step_finished` was
    /// journaled, unless a resume adopted it after it had ended while no engine watched: then
    /// its supervisor's timing (`duration_ms` from the attempt's start) says when it ended.
    fn finished_when(
        &self,
        e: &StepFinished,
        at: u64,
        wall: DateTime<Utc>,
    ) -> (u64, DateTime<Utc>) {
        // Only a step the last resume adopted (not one the operator marked done, which
        // carries no duration), and only when its attempt started before that resume.
        let resumed = self
            .resumes
            .last()
            .filter(|(_, r)| r.adopted.contains(&e.step) && e.marked_done_by.is_none())
            .map(|(r, _)| *r);
        let started = self
            .index
            .get(&e.step)
            .and_then(|&i| self.steps.get(i))
            .and_then(|s| s.attempt_started_ms);
        match (started, resumed) {
            (Some(a), Some(resumed)) if a < resumed && a.saturating_add(e.duration_ms) < at => {
                let end = a.saturating_add(e.duration_ms);
                let back = chrono::Duration::milliseconds(i64::try_from(at - end).unwrap_or(0));
                (end, wall - back)
            }
            _ => (at, wall),
        }
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "`index` is private and maps an id only to the position its step was pushed at, here, or to where `expand_loop` put it when it rebuilt the index"
    )]
    fn step_mut(&mut self, id: &str) -> &mut StepRun {
        if !self.index.contains_key(id) {
            self.index.insert(id.to_owned(), self.steps.len());
            self.steps.push(StepRun {
                id: id.to_owned(),
                ..Default::default()
            });
        }
        let i = self.index[id];
        &mut self.steps[i]
    }

    pub fn scenario(&self) -> &str {
        self.started
            .as_ref()
            .map(|s| s.scenario.as_str())
            .unwrap_or("")
    }

    pub fn run_id(&self) -> &str {
        self.started
            .as_ref()
            .map(|s| s.run_id.as_str())
            .unwrap_or("")
    }

    pub fn mode(&self) -> Mode {
        self.started
            .as_ref()
            .and_then(|s| s.mode)
            .unwrap_or(Mode::Real)
    }

    /// Stopped without finishing: interrupted, timed out at a gate, or its executor died.
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Total human wait at gates. A `manual:` step is work, not a wait for a decision.
    pub fn human_wait_ms(&self) -> u64 {
        self.steps
            .iter()
            .filter(|s| s.manual.is_none())
            .filter_map(|s| s.wait_ms)
            .sum()
    }

    pub fn apply(&mut self, r: &Record) {
        let at = r.elapsed_ms;
        self.last_elapsed_ms = self.last_elapsed_ms.max(at);
        self.last_at = Some(r.at);
        self.records += 1;
        match &r.event {
            EventKind::RunStarted(e) => {
                for p in &e.plan.steps {
                    let s = self.step_mut(&p.id);
                    s.title = p.title.clone();
                    s.budget_ms = p.budget_ms;
                    s.estimate_ms = p.estimate_ms[1];
                    s.gate = p.gate;
                    s.idempotent = p.idempotent;
                    s.continue_on_failure = p.continue_on_failure;
                    s.finally = p.finally;
                }
                self.started = Some((**e).clone());
                self.started_at = Some(r.at);
            }
            EventKind::StepStarted(e) => {
                let s = self.step_mut(&e.step);
                s.attempts = s.attempts.max(e.attempt);
                if s.started_ms.is_none() {
                    s.started_ms = Some(at);
                    s.started_at = Some(r.at);
                }
                s.in_flight = true;
                s.attempt_started_ms = Some(at);
                s.status = None;
                s.finished_ms = None;
                s.finished_at = None;
                s.command = e.command.clone();
                s.how = Some(e.how);
            }
            EventKind::StepOutput(e) => {
                let s = self.step_mut(&e.step);
                s.outputs.extend(e.outputs.clone());
                if let Some(keys) = &e.masked {
                    let set = s.masked_outputs.get_or_insert_with(BTreeSet::new);
                    for k in e.outputs.keys() {
                        set.remove(k);
                    }
                    set.extend(keys.iter().cloned());
                }
            }
            EventKind::StepFinished(e) => {
                let (at, finished_at) = self.finished_when(e, at, r.at);
                let s = self.step_mut(&e.step);
                s.in_flight = false;
                s.exit_code = e.exit_code;
                s.error = e.error.clone();
                s.attempts = s.attempts.max(e.attempt);
                if e.condition.is_some() {
                    s.condition = e.condition.clone();
                }
                if !e.will_retry {
                    s.status = Some(e.status);
                    s.finished_ms = Some(at);
                    s.finished_at = Some(finished_at);
                    if s.started_ms.is_none() {
                        // Skipped, simulated and not-run steps finish without starting, the
                        // instant the run reaches them.
                        s.started_ms = Some(at);
                        s.started_at = Some(r.at);
                    }
                    // A mocked step's record carries its estimate; a skipped one's, none.
                    match e.status {
                        StepStatus::Simulated => {
                            s.estimated = true;
                            s.simulated_ms = Some(e.duration_ms);
                        }
                        // Skipped by its `when:`, it stands for nothing: it did not run.
                        StepStatus::Skipped if e.condition.is_none() => {
                            s.estimated = true;
                            s.simulated_ms = Some(s.estimate_ms);
                        }
                        _ => {}
                    }
                }
            }
            // A called runbook's group is no step: it is watched as a whole (see
            // `exec/machine/calls.rs`), and the reports list it among the breaches.
            EventKind::BudgetWarning(e) if e.runbook.is_some() => {
                self.warnings.push((at, e.clone()))
            }
            EventKind::BudgetBreached(e) if e.runbook.is_some() => {
                self.breaches.push((at, e.clone()))
            }
            EventKind::BudgetWarning(e) => {
                self.step_mut(&e.step).warned = true;
                self.warnings.push((at, e.clone()));
            }
            EventKind::BudgetBreached(e) => {
                self.step_mut(&e.step).breached = true;
                self.breaches.push((at, e.clone()));
            }
            EventKind::RtoAtRisk(e) => self.risks.push((at, e.clone())),
            EventKind::ApprovalRequested(e) => {
                let s = self.step_mut(&e.step);
                s.waiting = true;
                // A gate asked again (on resume) counts approvals from zero, as the machine
                // does: an earlier approval answered an earlier request.
                s.approved_by.clear();
                s.requested_ms.get_or_insert(at);
                s.approvers = e.approvers.clone();
                s.min = e.min;
                s.prompt = Some(e.prompt.clone());
                s.input = e.input.clone();
                s.manual = e.manual.clone();
            }
            EventKind::ApprovalReceived(e) => {
                let s = self.step_mut(&e.step);
                if !s.approved_by.contains(&e.by) {
                    s.approved_by.push(e.by.clone());
                }
            }
            EventKind::ApprovalGranted(e) => {
                let s = self.step_mut(&e.step);
                s.waiting = false;
                s.approved_by = e.by.clone();
                s.value = e.value.clone();
                if s.manual.is_some() {
                    s.items = e.items.clone();
                    s.note = e.comment.clone();
                }
                s.auto_approved = e.auto;
                s.wait_ms = Some(e.wait_ms);
            }
            EventKind::ApprovalDenied(e) => {
                let s = self.step_mut(&e.step);
                s.waiting = false;
                s.denied_by = Some(e.by.clone());
                s.wait_ms = Some(e.wait_ms);
            }
            EventKind::ApprovalRejected(e) => self.rejections.push((at, e.clone())),
            EventKind::ApprovalLate(e) => self.late_answers.push((at, e.clone())),
            EventKind::ApprovalTimedOut(e) => {
                let s = self.step_mut(&e.step);
                s.waiting = false;
                s.wait_ms = Some(e.wait_ms);
            }
            EventKind::Escalated(e) => self.escalations.push((at, e.clone())),
            EventKind::RunInterrupted(e) => self.interruptions.push((at, e.clone())),
            EventKind::RunResumed(e) => self.resumes.push((at, e.clone())),
            EventKind::RunFinished(e) => {
                self.finished = Some(e.clone());
                self.finished_at = Some(r.at);
            }
            EventKind::RunSealed(_) => self.sealed = true,
            EventKind::LoopExpanded(e) => self.expand_loop(e),
        }
        if !matches!(r.event, EventKind::RunSealed(_)) {
            self.sealed = false;
        }
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
