//! The events of a run: what the executor journals and every observer sees.
//! `type` is the snake_case variant name; `data` is the struct. Durations are milliseconds.
//! Every field, its JSON type and when it is written or left out: docs/design.md, "The
//! journal" (tests/it/design_doc.rs fails when a field here is missing there).
//!
//! Over 600 lines on purpose: its one concern is the wire format, and each of its 19 event
//! types carries the doc of every field beside the field. Split by event, the format could no
//! longer be read top to bottom in one file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EventKind {
    /// Boxed: it is the largest event by far, and there is one a run.
    RunStarted(Box<RunStarted>),
    StepStarted(StepStarted),
    StepOutput(StepOutput),
    StepFinished(StepFinished),
    BudgetWarning(BudgetEvent),
    BudgetBreached(BudgetEvent),
    RtoAtRisk(RtoAtRisk),
    ApprovalRequested(ApprovalRequested),
    ApprovalReceived(ApprovalAnswer),
    ApprovalGranted(ApprovalGranted),
    ApprovalDenied(ApprovalAnswer),
    ApprovalRejected(ApprovalRejected),
    ApprovalLate(ApprovalLate),
    ApprovalTimedOut(ApprovalTimedOut),
    Escalated(Escalated),
    RunInterrupted(RunInterrupted),
    RunResumed(RunResumed),
    RunFinished(RunFinished),
    RunSealed(RunSealed),
    LoopExpanded(LoopExpanded),
}

impl EventKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::RunStarted(_) => "run_started",
            EventKind::StepStarted(_) => "step_started",
            EventKind::StepOutput(_) => "step_output",
            EventKind::StepFinished(_) => "step_finished",
            EventKind::BudgetWarning(_) => "budget_warning",
            EventKind::BudgetBreached(_) => "budget_breached",
            EventKind::RtoAtRisk(_) => "rto_at_risk",
            EventKind::ApprovalRequested(_) => "approval_requested",
            EventKind::ApprovalReceived(_) => "approval_received",
            EventKind::ApprovalGranted(_) => "approval_granted",
            EventKind::ApprovalDenied(_) => "approval_denied",
            EventKind::ApprovalRejected(_) => "approval_rejected",
            EventKind::ApprovalLate(_) => "approval_late",
            EventKind::ApprovalTimedOut(_) => "approval_timed_out",
            EventKind::Escalated(_) => "escalated",
            EventKind::RunInterrupted(_) => "run_interrupted",
            EventKind::RunResumed(_) => "run_resumed",
            EventKind::RunFinished(_) => "run_finished",
            EventKind::RunSealed(_) => "run_sealed",
            EventKind::LoopExpanded(_) => "loop_expanded",
        }
    }

    /// The step an event is about, if any.
    pub fn step(&self) -> Option<&str> {
        Some(match self {
            EventKind::StepStarted(e) => &e.step,
            EventKind::StepOutput(e) => &e.step,
            EventKind::StepFinished(e) => &e.step,
            EventKind::BudgetWarning(e) | EventKind::BudgetBreached(e) => &e.step,
            EventKind::ApprovalRequested(e) => &e.step,
            EventKind::ApprovalReceived(e) | EventKind::ApprovalDenied(e) => &e.step,
            EventKind::ApprovalGranted(e) => &e.step,
            EventKind::ApprovalRejected(e) => &e.step,
            EventKind::ApprovalLate(e) => &e.step,
            EventKind::ApprovalTimedOut(e) => &e.step,
            EventKind::LoopExpanded(e) => &e.step,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Real,
    Drill,
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Real => "real",
            Mode::Drill => "drill",
            Mode::DryRun => "dry-run",
        }
    }
}

impl PlanSummary {
    /// The plan with loop `step` replaced by its `instances`, in its place: a step that needed
    /// it needs each of them.
    pub fn expand_loop(&mut self, step: &str, instances: &[PlanStep]) {
        let Some(at) = self.steps.iter().position(|p| p.id == step) else {
            return;
        };
        let ids: Vec<String> = instances.iter().map(|p| p.id.clone()).collect();
        for p in &mut self.steps {
            if let Some(k) = p.needs.iter().position(|n| n == step) {
                p.needs.splice(k..=k, ids.iter().cloned());
            }
        }
        self.steps.splice(at..=at, instances.iter().cloned());
        if let Some(k) = self.critical_path.iter().position(|n| n == step)
            && let Some(first) = ids.first()
        {
            self.critical_path[k] = first.clone();
        }
    }
}

/// The plan as it ran, so reports never depend on the runbook file staying the same.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PlanSummary {
    pub steps: Vec<PlanStep>,
    pub critical_path: Vec<String>,
    pub critical_path_ms: u64,
    /// The called runbooks (`runbook:`), each a group of `steps`. Absent when none, and in
    /// older journals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<PlanCall>,
}

/// A called runbook's group of steps, and the budget that bounds it from its first step's
/// start to its last step's end.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PlanCall {
    pub id: String,
    pub runbook: String,
    pub budget_ms: u64,
    pub steps: Vec<String>,
    /// sha256 of the called runbook's file when the run started: `resume` refuses a run
    /// whose called runbook changed. Absent in journals written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PlanStep {
    pub id: String,
    pub title: String,
    pub needs: Vec<String>,
    pub budget_ms: u64,
    /// min, likely, max.
    pub estimate_ms: [u64; 3],
    pub gate: bool,
    pub idempotent: bool,
    /// `on_failure: continue`: the run goes on without it if it fails, so that a failure of
    /// it reads "failed, continued" while the run is live or stopped too. Absent when false,
    /// and in older journals.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,
    /// A step of `finally:`: cleanup, run once every other step has ended. Absent when false,
    /// and in older journals.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finally: bool,
    /// A `manual:` step (a gate in the journal's words): a task a person does, timed as work.
    /// A drill projects one it never reached at its estimate, not at its budget as it does an
    /// unanswered decision. Absent when false, and in older journals.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunStarted {
    pub run_id: String,
    pub scenario: String,
    pub title: String,
    pub mode: Option<Mode>,
    pub operator: String,
    pub runbook: String,
    pub runbook_sha256: String,
    pub rto_ms: u64,
    pub rpo_ms: Option<u64>,
    pub env: Option<String>,
    /// Variables as the run saw them, secrets masked.
    pub vars: BTreeMap<String, String>,
    pub plan: PlanSummary,
    /// `--max-parallel`, which `resume` keeps to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// The variables whose values held a secret, and are masked in `vars` (absent in older
    /// journals, as for [`StepOutput::masked`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_vars: Option<Vec<String>>,
    /// The library steps the runbook used, with each file's sha256.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub library_sha256: BTreeMap<String, String>,
    /// 2: the journal ends in `run_sealed` and keeps `journal.head` beside it, so `verify`
    /// can tell a cut tail (see the module's docs). Absent in journals written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_version: Option<u32>,
    /// A drill in a rehearsal environment (`rehearsal: true`): its `mock` steps ran their real
    /// commands (their `step_started` says `how: rehearsal`). Absent when false, and in older
    /// journals.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rehearsal: bool,
    /// The runbook's `rto_ends_at`: the step whose success stopped the RTO clock; the steps
    /// not upstream of it are the observation period. Absent when the whole run counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_ends_at: Option<String>,
    /// The sha256 of `runbooks/allowed_signers` as the run read it; the run's folder keeps a
    /// copy (`allowed_signers`), against which `verify` checks every signature. Absent when
    /// the project has no such file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_signers_sha256: Option<String>,
    /// Approvals must be signed: a real run with an allowed_signers file, or an environment
    /// with `signed_approvals: true`. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed_approvals: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepStarted {
    pub step: String,
    pub attempt: u32,
    /// The command as run, secrets masked; `null` when it could not be rendered (a
    /// `step_finished` saying why follows). Gates and the steps a drill mocks or skips have
    /// no `step_started` at all.
    pub command: Option<String>,
    /// What `Machine::how` decided: see [`How`].
    pub how: How,
}

/// How a step that has a `step_started` runs (`step_started.how`). Closed: a reader fails on
/// a word it does not know rather than guess what ran.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// `run`: a real run, or a drill's `drill: run` step.
    Run,
    /// `drill-command`: a drill's `drill: { run: … }` in place of the step's command.
    DrillCommand,
    /// `drill-with`: a drill's `drill: { with: … }`, the command with other variables.
    DrillWith,
    /// `rehearsal`: a drill's `mock` step run for real in a rehearsal environment.
    Rehearsal,
    /// `dry-run`: simulated for its estimate; nothing runs.
    DryRun,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Run => "run",
            How::DrillCommand => "drill-command",
            How::DrillWith => "drill-with",
            How::Rehearsal => "rehearsal",
            How::DryRun => "dry-run",
        }
    }

    /// Runs the step's own command, as a real run would (so it takes its real time).
    pub fn is_real(self) -> bool {
        matches!(self, How::Run | How::Rehearsal)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StepOutput {
    pub step: String,
    pub outputs: BTreeMap<String, String>,
    /// The keys whose values held a secret, and are masked above. Absent in journals written
    /// before it was recorded (a resume then takes a `***` in a value for a mask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Succeeded,
    Failed,
    TimedOut,
    Skipped,
    Simulated,
    NotRun,
    /// Stopped by Ctrl-C or a stop: it did not complete, and `resume` treats it as unfinished.
    Interrupted,
    /// Its process ended while no supervisor was there to see how (the step supervisor had
    /// died): it may have done all, some or none of its work. `resume` re-runs it when it is
    /// idempotent, and otherwise only on the operator's word (`--rerun` or `--mark-done`).
    Unknown,
    /// A `poll` step's attempt whose check was not ready yet (it exited non-zero) while its
    /// window is still open: not a failure, and never a step's last word (`will_retry` is
    /// true, `next_in_ms` says when it looks again). Only the window closing fails the step.
    NotReady,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::TimedOut => "timed_out",
            StepStatus::Skipped => "skipped",
            StepStatus::Simulated => "simulated",
            StepStatus::NotRun => "not_run",
            StepStatus::Interrupted => "interrupted",
            StepStatus::Unknown => "unknown",
            StepStatus::NotReady => "not_ready",
        }
    }

    /// Lets dependents go on.
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Skipped | StepStatus::Simulated
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepFinished {
    pub step: String,
    pub status: StepStatus,
    pub attempt: u32,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Time of this attempt; for a simulated step, its estimate.
    pub duration_ms: u64,
    /// Will it be tried again (retries or poll)?
    #[serde(default)]
    pub will_retry: bool,
    pub error: Option<String>,
    /// Who declared it done with `resume --mark-done` after its outcome was lost: it succeeded
    /// on their word, not on an exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked_done_by: Option<String>,
    /// A poll attempt that was not ready (`not_ready`): how long until the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_in_ms: Option<u64>,
    /// The step's `when:` as it was evaluated: on a step it skipped, and on the end of one it
    /// let run (or that a dry-run took as running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionSeen>,
}

/// `step_finished.condition`: a `when:` expression and what it saw.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConditionSeen {
    /// The expression as written.
    pub expr: String,
    /// Each value it read, by how it reads it (`lag_max`, `steps['check-lag'].outputs.lag_s`,
    /// `run.mode`), masked; an output the step did not write is absent.
    pub values: BTreeMap<String, String>,
    /// What it came to: false skipped the step.
    pub held: bool,
    /// A dry-run could not evaluate it (it reads outputs a dry-run does not have): the step
    /// was taken as running, the worst case.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub assumed: bool,
}

/// One way to build a `step_finished`: [`StepFinished::new`] says the three things every one
/// has, and what an attempt adds (its exit, its time, its error) reads as a chain of the
/// methods below, so that a field added later has one default and one place to set it.
impl StepFinished {
    /// An end with nothing to add: no exit code or signal, no time, no error, not retried.
    pub fn new(step: impl Into<String>, status: StepStatus, attempt: u32) -> StepFinished {
        StepFinished {
            step: step.into(),
            status,
            attempt,
            exit_code: None,
            signal: None,
            duration_ms: 0,
            will_retry: false,
            error: None,
            marked_done_by: None,
            next_in_ms: None,
            condition: None,
        }
    }

    /// The `when:` it was run or skipped on.
    pub fn with_condition(self, condition: Option<ConditionSeen>) -> StepFinished {
        StepFinished { condition, ..self }
    }

    pub fn with_status(self, status: StepStatus) -> StepFinished {
        StepFinished { status, ..self }
    }

    /// How its process ended: an exit code, or the signal that killed it.
    pub fn exited(self, exit_code: Option<i32>, signal: Option<i32>) -> StepFinished {
        StepFinished {
            exit_code,
            signal,
            ..self
        }
    }

    pub fn took(self, duration: std::time::Duration) -> StepFinished {
        StepFinished {
            duration_ms: duration.as_millis() as u64,
            ..self
        }
    }

    pub fn with_error(self, error: Option<String>) -> StepFinished {
        StepFinished { error, ..self }
    }

    pub fn will_retry(self, will_retry: bool) -> StepFinished {
        StepFinished { will_retry, ..self }
    }

    /// A `not_ready` poll attempt: when it looks again.
    pub fn next_in(self, after: std::time::Duration) -> StepFinished {
        StepFinished {
            next_in_ms: Some(after.as_millis() as u64),
            ..self
        }
    }

    /// Done on `operator`'s word (`resume --mark-done`): succeeded, with no exit code.
    pub fn marked_done(step: impl Into<String>, attempt: u32, operator: &str) -> StepFinished {
        StepFinished {
            marked_done_by: Some(operator.to_owned()),
            ..StepFinished::new(step, StepStatus::Succeeded, attempt)
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BudgetEvent {
    /// The step, or for a called runbook's group, the calling step's id.
    pub step: String,
    pub elapsed_ms: u64,
    pub budget_ms: u64,
    /// A called runbook's group (`step` is the call's id): the runbook it called. Absent for
    /// a step, and in journals written before groups were watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RtoAtRisk {
    pub projected_ms: u64,
    pub target_ms: u64,
    /// The remaining path that decides the projection.
    pub path: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApprovalRequested {
    pub step: String,
    pub prompt: String,
    pub approvers: Vec<String>,
    pub min: u32,
    pub timeout_ms: Option<u64>,
    /// An `input:` step asks for a value, not a yes: what it must match. Absent for an
    /// approval, and in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputAsked>,
    /// A `manual:` step asks for a task done: its instructions are the prompt; here, the
    /// checklist to confirm. Absent for gates and inputs, and in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<ManualAsked>,
}

/// What a `manual:` step's `approval_requested` asks to have confirmed.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManualAsked {
    /// Every item must be confirmed for the task to be done.
    pub checklist: Vec<String>,
}

/// What an `input:` step's `approval_requested` asks for.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputAsked {
    /// The regular expression the whole value must match; absent when any value will do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApprovalAnswer {
    pub step: String,
    pub by: String,
    pub comment: Option<String>,
    pub wait_ms: u64,
    /// The answer as `by` signed it, when it was signed (docs/design.md, "Signed approvals").
    /// Absent for an unsigned answer, and in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<Box<SignedDecision>>,
}

/// A decision signed with the approver's SSH key: what was signed, the signature, and whose
/// key made it. `verify` checks it again against the run's copy of `allowed_signers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SignedDecision {
    /// The statement signed, field by field; its canonical bytes are what the signature covers.
    pub statement: crate::signing::Statement,
    /// The armored SSHSIG, namespace `runbook-approval`.
    pub signature: String,
    /// The signing key's fingerprint, `SHA256:…`.
    pub key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApprovalGranted {
    pub step: String,
    pub by: Vec<String>,
    pub comment: Option<String>,
    /// Granted by `--yes`, in the operator's name.
    pub auto: bool,
    pub wait_ms: u64,
    /// The last approver's signed answer (the earlier ones are in their `approval_received`).
    /// Absent when unsigned, and in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<Box<SignedDecision>>,
    /// An `input:` step: the value given (masked like any output). Absent for approvals, and
    /// in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A `manual:` step: the checklist items confirmed done (all of them); its note is
    /// `comment`, who did it `by`. Signed as the statement's `value`, one item a line. Absent
    /// for gates and inputs, and in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApprovalRejected {
    pub step: String,
    pub by: String,
    pub reason: String,
}

/// An answer to a gate that was already decided: the loser of an approve and a deny sent
/// together, or one that came after the gate opened or closed the way. It changes nothing, and
/// is journaled so that no answer that reached the run is lost.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApprovalLate {
    pub step: String,
    pub by: String,
    /// What the late answer said: `true` approve, `false` deny.
    pub approve: bool,
    pub comment: Option<String>,
    /// Who decided the gate (every approver of a grant), and which way.
    pub decided_by: Vec<String>,
    pub decision: GateDecision,
    /// When the gate was decided, on the run's clock (`elapsed_ms` of its record).
    pub decided_ms: u64,
    /// What the late answerer is told: `already decided by NAME (approved) at T`.
    pub reason: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GateDecision {
    Approved,
    Denied,
}

impl ApprovalLate {
    /// `already decided by alice (approved) at 2026-12-01 14:52:03 UTC`: one wording, whether
    /// the executor or `runbook approve` (the run over) journals it.
    pub fn reason_for(decided_by: &[String], decision: GateDecision, when: &str) -> String {
        format!(
            "already decided by {} ({}) at {when}",
            decided_by.join(", "),
            decision.as_str()
        )
    }

    /// A decision's wall-clock time as a late answer is told it.
    pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

impl GateDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            GateDecision::Approved => "approved",
            GateDecision::Denied => "denied",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApprovalTimedOut {
    pub step: String,
    pub wait_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Escalated {
    pub channel: String,
    pub reason: EscalationReason,
    pub message: String,
    /// Did the notify command succeed? Its failure never fails the run.
    pub ok: bool,
    /// How a failed notify command ended: `exit 3`, `killed by signal 9`, `timed out after
    /// 30s` or `cannot run: REASON`. Absent when it succeeded, and in journals written before
    /// it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its exit code, when it exited with one other than 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The last lines (at most five) of what a failed notify command wrote to stderr, secrets
    /// masked: what the operator needs to see why nobody was paged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
}

/// Why a notify channel was paged (`escalated.reason`). The default only serves
/// `Escalated { .., ..Default::default() }`: every `escalated` names its reason.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// `schedule`: an `escalation` entry's `after` time came.
    #[default]
    Schedule,
    /// `rto_at_risk`: sent early, the projection passed the RTO.
    RtoAtRisk,
    /// `approval_requested`: a waiting gate pages an approver role that is also a notify
    /// channel.
    ApprovalRequested,
}

impl EscalationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationReason::Schedule => "schedule",
            EscalationReason::RtoAtRisk => "rto_at_risk",
            EscalationReason::ApprovalRequested => "approval_requested",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunInterrupted {
    pub reason: InterruptReason,
}

/// Why a run stopped, resumable (`run_interrupted.reason`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InterruptReason {
    /// `signal`: Ctrl-C or SIGTERM.
    Signal,
    /// `approval_timed_out`: nobody answered a gate in time.
    ApprovalTimedOut,
    /// `supervisor_died`: the step supervisor went away; its steps were left running, for
    /// `resume` to adopt.
    SupervisorDied,
    /// `outcome_unknown`: a step's process ended unseen and it is not idempotent: the operator
    /// decides on resume.
    OutcomeUnknown,
}

impl InterruptReason {
    pub fn as_str(self) -> &'static str {
        match self {
            InterruptReason::Signal => "signal",
            InterruptReason::ApprovalTimedOut => "approval_timed_out",
            InterruptReason::SupervisorDied => "supervisor_died",
            InterruptReason::OutcomeUnknown => "outcome_unknown",
        }
    }
}

/// A loop over an upstream output (`for_each: "{{ steps['discover'].outputs.regions }}"`) got
/// its items: the plan's step `step` stands for its instances `step[item]` from here on, each
/// a step like the plan's, in item order, needed by the steps that needed `step`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LoopExpanded {
    pub step: String,
    pub items: Vec<String>,
    /// The instances as the plan lists them (ids, titles, needs, budgets).
    pub instances: Vec<PlanStep>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunResumed {
    pub operator: String,
    /// Wall time between the journal's last event and the resume: it counts against the RTO.
    pub downtime_ms: u64,
    pub adopted: Vec<String>,
    pub rerun: Vec<String>,
    /// Steps whose outcome was lost and that the operator declared done (`--mark-done`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marked_done: Vec<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunFinished {
    /// `succeeded` also when steps with `on_failure: continue` failed (see `continued`).
    pub status: RunStatus,
    pub elapsed_ms: u64,
    /// The run recovered (succeeded) within the RTO. Journals written before this was so say
    /// `true` for a failed run that ended early: readers decide with
    /// [`RunFinished::recovered_within_rto`], never with this flag.
    pub rto_met: bool,
    pub rto_ms: u64,
    /// A failed run: the step whose failure ended the recovery (a failed, timed-out or denied
    /// step without `on_failure: continue`). Absent in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
    /// Steps that failed with `on_failure: continue`: the run went on without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub continued: Vec<String>,
    /// Drills: what a real run would have taken (drill-speed steps at their real durations,
    /// as the live projection counts them). A drill meets its RTO by this, not by its own
    /// drill-speed clock. Absent for other runs and in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_ms: Option<u64>,
    /// With `rto_ends_at`: when that step succeeded (run clock), the recovery time the RTO is
    /// measured by. Absent when it did not succeed, without `rto_ends_at`, and in older
    /// journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_ms: Option<u64>,
    /// With `recovery_ms`: the observation period after it, to the run's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_ms: Option<u64>,
}

impl RunFinished {
    /// Did the run recover within its RTO? Only a run that succeeded can have: a failed or
    /// denied run did not recover, however early it ended. From status and elapsed (a
    /// drill's projection of a real run), so that an old journal's `rto_met: true` on a
    /// failed run is not believed.
    pub fn recovered_within_rto(&self) -> bool {
        self.status == RunStatus::Succeeded && self.judged_ms() <= self.rto_ms
    }

    /// The time the RTO is judged on: a drill's projection of a real run, else the recovery
    /// time (with `rto_ends_at`), else elapsed.
    pub fn judged_ms(&self) -> u64 {
        self.projected_ms
            .or(self.recovery_ms)
            .unwrap_or(self.elapsed_ms)
    }
}

/// The end of a journal, on every way a run ends: after `run_finished`, and after
/// `run_interrupted` (a resume then continues the chain with `run_resumed`). A journal whose
/// last record is not a seal was cut, or belongs to a run still live or whose executor died.
/// The seal's `hash` covers the whole chain before it: it is what a signature signs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunSealed {
    /// Records before this one (so, this one's `seq`).
    pub records: u64,
    /// The `hash` of the record before this one.
    pub last_hash: String,
    /// The operator's signature over the chain's head, when a key was at hand. Absent when
    /// unsigned, and in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedSeal>,
}

/// A seal signed with the operator's SSH key: the signature covers
/// `signing::SealStatement { run, by, head: last_hash }`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SignedSeal {
    pub by: String,
    /// The signing key's fingerprint, `SHA256:…`.
    pub key: String,
    /// The armored SSHSIG, namespace `runbook-approval`.
    pub signature: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each enum writes the word its `as_str` names (the docs and the displays use those),
    /// and reads it back.
    #[test]
    fn every_closed_word_is_written_as_its_as_str_and_reads_back() {
        fn check<T>(all: &[T], word: fn(&T) -> &'static str)
        where
            T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
        {
            for v in all {
                let json = serde_json::to_string(v).unwrap();
                assert_eq!(json, format!("\"{}\"", word(v)));
                assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), v);
            }
        }
        use How as H;
        check(
            &[
                H::Run,
                H::DrillCommand,
                H::DrillWith,
                H::Rehearsal,
                H::DryRun,
            ],
            |h| h.as_str(),
        );
        use EscalationReason as E;
        check(&[E::Schedule, E::RtoAtRisk, E::ApprovalRequested], |e| {
            e.as_str()
        });
        use InterruptReason as I;
        check(
            &[
                I::Signal,
                I::ApprovalTimedOut,
                I::SupervisorDied,
                I::OutcomeUnknown,
            ],
            |i| i.as_str(),
        );
    }

    /// A word no runbook version wrote is a read error that names it and the words it could
    /// be, never a guess and never a panic.
    #[test]
    fn an_unknown_word_in_a_closed_field_is_a_clear_read_error() {
        let cases = [
            (
                r#"{"type":"escalated","data":{"channel":"ops","reason":"whenever","message":"","ok":true}}"#,
                "unknown variant `whenever`, expected one of `schedule`, `rto_at_risk`, `approval_requested`",
            ),
            (
                r#"{"type":"run_interrupted","data":{"reason":"tired"}}"#,
                "unknown variant `tired`, expected one of `signal`, `approval_timed_out`",
            ),
            (
                r#"{"type":"step_started","data":{"step":"a","attempt":1,"command":null,"how":"dry_run"}}"#,
                "unknown variant `dry_run`, expected one of `run`, `drill-command`, `drill-with`, `rehearsal`, `dry-run`",
            ),
        ];
        for (line, want) in cases {
            let err = serde_json::from_str::<EventKind>(line).unwrap_err();
            assert!(err.to_string().contains(want), "{line}: {err}");
        }
    }
}
