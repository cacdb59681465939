//! The compiled form of a runbook: what the executor, the simulator and the reports read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

// The plan speaks the format's `on_failure:` as it is; re-exported so that the executor
// takes it from the plan, not from the format.
pub use crate::format::OnFailure;
use crate::units::Estimate;

pub use super::backoff::Backoff;
pub use super::calls::{Call, CallScope};
pub use super::fanout::{DEFAULT_MAX_PARALLEL, Fanout, Tolerance};

/// A runbook compiled and checked: steps by index in file order, a topological order, and the
/// critical path of budgets.
#[derive(Clone, Debug)]
pub struct Plan {
    pub scenario: String,
    pub title: String,
    pub description: Option<String>,
    pub rto: Duration,
    pub rpo: Option<Duration>,
    pub roles: BTreeMap<String, Vec<String>>,
    pub vars: BTreeMap<String, String>,
    pub secrets: Vec<String>,
    pub notify: BTreeMap<String, String>,
    pub escalation: Vec<Escalation>,
    /// In file order; `needs` hold indices into this.
    pub steps: Vec<Step>,
    /// `rto_ends_at:`, the step whose success restores service: the RTO is measured to its
    /// finish, and the steps not upstream of it are the observation period. `None`: the
    /// whole run counts.
    pub rto_ends_at: Option<usize>,
    /// A topological order; ready steps go in file order.
    pub order: Vec<usize>,
    pub critical_path: Vec<usize>,
    pub critical_path_budget: Duration,
    /// The runbook file, and the project folder steps run in.
    pub path: PathBuf,
    pub root: PathBuf,
    /// sha256 of the runbook file's bytes, as journaled in `run_started`.
    pub sha256: String,
    /// The library steps it uses (`system/name`), with the sha256 of each one's file: a
    /// resumed run must run the same commands.
    pub library: BTreeMap<String, String>,
    /// The sub-runbooks it calls (`runbook:`), expanded into `steps`: one group each, nested
    /// calls included, in file order.
    pub calls: Vec<Call>,
    /// The list variables (`regions: [a, b]`), each with the `for_each:` steps that loop over
    /// it (see `compile/list_vars.rs`). Their values in `vars` are the items joined by `,`.
    pub lists: BTreeMap<String, Vec<String>>,
    /// The loops over an upstream output, by the loop's step id (see `compile/output_loops.rs`):
    /// each one step of `steps` until its items are known.
    pub output_loops: BTreeMap<String, super::OutputLoop>,
}

impl Plan {
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }

    /// The people who may approve a gate: named people, and the members of named roles.
    pub fn may_approve(&self, approval: &Approval, who: &str) -> bool {
        approval.approvers.iter().any(|a| {
            a == who
                || self
                    .roles
                    .get(a)
                    .is_some_and(|people| people.iter().any(|p| p == who))
        })
    }

    /// Which steps count against the RTO: with `rto_ends_at`, that step and those upstream
    /// of it; without, every step.
    pub fn recovery_steps(&self) -> Vec<bool> {
        match self.rto_ends_at {
            Some(end) => {
                let needs: Vec<&[usize]> = self.steps.iter().map(|s| s.needs.as_slice()).collect();
                crate::dag::upstream_of(&needs, end)
            }
            None => vec![true; self.steps.len()],
        }
    }

    /// The observation period's steps, in plan order: those not upstream of `rto_ends_at`.
    pub fn observation_steps(&self) -> Vec<usize> {
        let recovery = self.recovery_steps();
        self.order
            .iter()
            .copied()
            .filter(|&i| recovery.get(i) == Some(&false))
            .collect()
    }

    /// Steps that need step `i`, in file order.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let needs: Vec<&[usize]> = self.steps.iter().map(|s| s.needs.as_slice()).collect();
        crate::dag::dependents(&needs)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escalation {
    pub after: Duration,
    pub channel: String,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub id: String,
    /// `file:line` of the step's `run:` (or `uses:`): errors that only a run finds (a template
    /// that fails with the real outputs) point the operator there.
    pub at: String,
    /// A plain template.
    pub title: String,
    pub description: Option<String>,
    pub needs: Vec<usize>,
    pub budget: Duration,
    pub estimate: Estimate,
    pub timeout: Option<Duration>,
    pub kind: StepKind,
    pub drill: Drill,
    pub retries: u32,
    pub backoff: Backoff,
    pub poll: Option<Poll>,
    pub on_failure: OnFailure,
    pub idempotent: bool,
    pub on: Vec<String>,
    /// With `on:`: how many hosts at once, how many may fail (`hosts:`).
    pub fanout: Fanout,
    /// Extra environment: plain templates in the step's scope.
    pub env: BTreeMap<String, String>,
    /// The library step it expands, if any.
    pub uses: Option<String>,
    /// `when:`, the condition on which it runs (see `compile/conditions.rs`).
    pub condition: Option<Condition>,
    /// A step of `finally:`: cleanup, run once every other step has ended.
    pub finally: bool,
    /// One instance of a `for_each:` step (see `compile/loops.rs`); `None` for other steps.
    pub instance: Option<Instance>,
    /// A step of a called runbook: the vars and step ids its templates see.
    pub call: Option<std::sync::Arc<CallScope>>,
}

/// One instance `id[item]` of a `for_each:` step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The step's id as written, without the item.
    pub of: String,
    /// What `{{ item }}` renders as.
    pub item: String,
    /// `max_parallel:`, how many instances of the step run at once; `None`: all.
    pub max_parallel: Option<u32>,
}

/// A step's `when:`: a minijinja expression, evaluated when the step is ready; false skips it.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub expr: String,
    /// `likelihood:`, the probability that it holds, for the simulation; `None`: the worst
    /// case (it holds).
    pub likelihood: Option<f64>,
}

impl Step {
    pub fn is_gate(&self) -> bool {
        matches!(self.kind, StepKind::Approval(_))
    }
}

#[derive(Clone, Debug)]
pub enum StepKind {
    Command(Command),
    Approval(Approval),
}

/// A command template. For a library step, `inputs` holds the input templates (rendered plain
/// in the calling step's scope) and `template` sees only `inputs.<name>`.
#[derive(Clone, Debug)]
pub struct Command {
    pub template: String,
    pub inputs: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug)]
pub struct Approval {
    /// A plain template.
    pub prompt: String,
    pub approvers: Vec<String>,
    pub min: u32,
    pub timeout: Option<Duration>,
    /// Approver roles paged this long after the gate starts waiting, instead of when the
    /// escalation schedule reaches them.
    pub page_after: BTreeMap<String, Duration>,
    /// An `input:` step: the gate asks for a value, not a yes or no (see `compile/operator.rs`).
    pub input: Option<InputSpec>,
    /// A `manual:` step: a task a person does; done when every checklist item is confirmed.
    /// Its time is work, not a wait for a decision (see `compile/operator.rs`).
    pub manual: Option<ManualSpec>,
}

/// What a `manual:` step asks a person to do, and to confirm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManualSpec {
    /// A plain template.
    pub instructions: String,
    pub checklist: Vec<String>,
}

impl ManualSpec {
    /// The items `confirmed` leaves out, in checklist order; and an item that is not on the
    /// list, if any (it is refused as a typo, not ignored).
    pub fn refuse(&self, confirmed: &[String]) -> Option<String> {
        if let Some(stray) = confirmed.iter().find(|c| !self.checklist.contains(c)) {
            return Some(format!(
                "`{stray}` is not on the checklist: {}",
                self.list()
            ));
        }
        let missing: Vec<&str> = self
            .checklist
            .iter()
            .filter(|c| !confirmed.contains(c))
            .map(String::as_str)
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "not confirmed: {}; every item must be (`--confirm ITEM` each, or `--all`); the checklist: {}",
                quoted(&missing),
                self.list()
            )
        })
    }

    fn list(&self) -> String {
        quoted(
            &self
                .checklist
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
    }
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an `input:` step accepts: a value matching `pattern` (anchored), and the value a
/// dry-run takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    pub pattern: Option<String>,
    pub default: String,
}

impl InputSpec {
    /// Why `value` is refused, if it is: it does not match the whole pattern.
    pub fn refuse(&self, value: &str) -> Option<String> {
        let p = self.pattern.as_deref()?;
        match anchored(p) {
            Ok(re) if re.is_match(value) => None,
            Ok(_) => Some(format!("`{value}` does not match the pattern `{p}`")),
            Err(e) => Some(format!(
                "the pattern `{p}` is not a regular expression: {e}"
            )),
        }
    }
}

/// `pattern` matched against the whole value, as people read a pattern in a runbook.
pub fn anchored(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

/// What a step does in a drill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drill {
    Run,
    Skip,
    Mock,
    /// Another command; `library` when it is a library step's own (it sees `inputs`).
    Command {
        template: String,
        library: bool,
    },
    /// The library step with these inputs replaced.
    With(BTreeMap<String, String>),
}

impl Drill {
    pub fn label(&self) -> &'static str {
        match self {
            Drill::Run => "run",
            Drill::Skip => "skip",
            Drill::Mock => "mock",
            Drill::Command { .. } => "command",
            Drill::With(_) => "with",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Poll {
    pub every: Duration,
    pub within: Duration,
}
