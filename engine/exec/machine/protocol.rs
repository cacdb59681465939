//! What the drivers and the machine say to each other: the [`Config`] a run starts with,
//! the [`Input`]s that happen to it, the [`Effect`]s it answers with and the [`Outcome`] it
//! ends in. The drivers (`exec::execute`, `exec::dry_run`, the fallback) see only these types.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::journal::{EscalationReason, EventKind, InterruptReason, Mode, SignedDecision};

/// How the run was asked to go.
#[derive(Clone, Debug)]
pub struct Config {
    /// The run's id, for what the machine tells people (`runbook approve RUN ...`).
    pub run_id: String,
    pub mode: Mode,
    pub max_parallel: Option<usize>,
    /// `--yes` in effect: gates are granted at once in this name.
    pub auto_approve_as: Option<String>,
    /// A real run (not a sandbox's): `--yes --as NAME` is NAME's approval, one person's, so a
    /// gate with `min: 2` still waits for someone else.
    pub yes_is_one_approval: bool,
    /// Variables after `--env` and `--var`.
    pub vars: BTreeMap<String, String>,
    /// The operator's environment, as templates see it under `env`.
    pub env: BTreeMap<String, String>,
    /// Dry-runs: how long each step takes (by step index); default: its likely estimate.
    pub durations: Option<Vec<Duration>>,
    /// A drill in a rehearsal environment (`rehearsal: true`): a `mock` step runs its real
    /// command there, the dangerous path rehearsed on a throwaway copy of production.
    pub rehearsal: bool,
    /// Decisions must be signed: a gate's page waits for its request hash
    /// ([`Input::Requested`]), which its approvers sign.
    pub signed_approvals: bool,
}

/// Something that happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Begin (or continue, after a resume): start what is ready.
    Start,
    /// A step's process (or simulation) ended.
    Exited {
        step: usize,
        attempt: u32,
        result: ExitResult,
        outputs: BTreeMap<String, String>,
    },
    /// A timer fired: the machine looks at the clock.
    Tick,
    /// An approval or denial, from the terminal or from `runbook approve`.
    Answer {
        step: String,
        by: String,
        approve: bool,
        comment: Option<String>,
        /// The value given to an `input:` step (`runbook answer`); `None` for an approval.
        value: Option<String>,
        /// The answer as signed, already verified by the driver against the run's allowed
        /// signers (`exec::approvals`); the machine counts its key. `None`: unsigned.
        signed: Option<Box<SignedDecision>>,
    },
    /// A gate's `approval_requested` was journaled with this `hash`: its request, which a
    /// signed answer names. Its held pages go out with it (`Config::signed_approvals`).
    Requested { step: usize, hash: String },
    /// A notify command finished; `failed` says how, when it did not succeed.
    Notified {
        channel: String,
        reason: EscalationReason,
        message: String,
        failed: Option<NotifyFailure>,
    },
    /// Ctrl-C (or SIGTERM): stop starting steps and stop the running ones.
    Interrupt,
    /// The step supervisor died: stop, resumable, without killing a step or calling it
    /// failed. No new step starts; the running ones the engine still sees end as usual (it
    /// watches them in the supervisor's place). Those it cannot see (`lost`: their pid never
    /// came) are left in flight, for `resume` to adopt or to take their recorded end; those it
    /// could not start (`not_started`) are journaled interrupted.
    Fault {
        reason: InterruptReason,
        lost: Vec<usize>,
        not_started: Vec<usize>,
    },
}

/// How a notify command failed, as `escalated` records it (see [`Escalated`](crate::journal::Escalated)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyFailure {
    /// `exit 3`, `killed by signal 9`, `timed out after 30s`, `cannot run: REASON`.
    pub error: String,
    pub exit_code: Option<i32>,
    /// The last lines of its stderr.
    pub stderr_tail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitResult {
    Code(i32),
    Signal(i32),
    /// The process could not be started, or its command could not be rendered.
    Error(String),
    /// The process ended unseen (adopted after its supervisor died): how is not known.
    Unknown(String),
}

/// Something to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Journal this event (and show it to the observers).
    Record(EventKind),
    /// Start a step's process. The command is rendered, secrets in clear: the journal has it
    /// masked (`step_started`), and the supervisor masks what the step prints.
    Spawn {
        step: usize,
        attempt: u32,
        command: String,
        env: Vec<(String, String)>,
        hosts: Vec<String>,
    },
    /// Dry-runs and mocks with a duration: report the step exited 0 after this long.
    Simulate {
        step: usize,
        attempt: u32,
        after: Duration,
    },
    /// Terminate a step's process group (SIGTERM, grace, SIGKILL).
    Kill { step: usize },
    /// Run a notify command; its result comes back as [`Input::Notified`].
    Notify {
        channel: String,
        reason: EscalationReason,
        command: String,
        message: String,
    },
    /// A gate opened: ask on the terminal if there is one.
    Ask { step: usize },
    /// The run is over.
    Done(Outcome),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step succeeded (or was skipped or simulated in a drill), or failed with
    /// `on_failure: continue` (the journal's `run_finished` names them).
    Succeeded { rto_met: bool },
    /// A step failed or a gate was denied. `rto_met` is always false: the run did not recover.
    Failed { rto_met: bool },
    /// Interrupted or stopped at a gate: resumable.
    Stopped,
}
