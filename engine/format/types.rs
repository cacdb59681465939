//! The serde types of the runbook format, exactly as written in YAML. Durations, estimates and
//! templates stay text here: the compiler parses them so that every bad one in a file is
//! reported at once, not only the first.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::span::Sp;

pub use super::groups::GroupDoc;
pub use super::operator::{InputStepDoc, ManualStepDoc};
pub use super::vars::{ForEachDoc, VarDoc};

/// A scenario runbook: `runbooks/<scenario>.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "runbook",
    description = "A disaster-recovery scenario runbook"
)]
pub struct RunbookDoc {
    /// Must equal the file stem.
    pub scenario: Sp<String>,
    /// One line naming the scenario.
    pub title: Sp<String>,
    /// The symptoms that call for this runbook.
    #[serde(default)]
    pub description: Option<String>,
    /// Recovery time objective for the whole scenario, e.g. `2h30m`.
    pub rto: Sp<String>,
    /// Recovery point objective, e.g. `1h` (reported, not enforced).
    #[serde(default)]
    pub rpo: Option<Sp<String>>,
    /// The step whose success restores service: the RTO clock stops there, and the steps not
    /// upstream of it are an observation period, reported apart. Default: the whole run.
    #[serde(default)]
    pub rto_ends_at: Option<Sp<String>>,
    /// Role name -> the people who hold it. Approvers name roles or people.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<Sp<String>>>,
    /// Variable defaults, overridden by `--env` and then by `--var k=v`. A list
    /// (`regions: [eu-1, eu-2]`) is a list variable: `--var regions=a,b` sets it.
    #[serde(default)]
    pub vars: BTreeMap<String, Sp<VarDoc>>,
    /// Names of environment variables whose values are masked everywhere.
    #[serde(default)]
    pub secrets: Vec<Sp<String>>,
    /// Channel -> command template that sends `{{ message }}`.
    #[serde(default)]
    pub notify: BTreeMap<String, Sp<String>>,
    /// Who is told, and when (time since the run started).
    #[serde(default)]
    pub escalation: Vec<EscalationDoc>,
    /// The steps, in file order (ties in the schedule go by this order).
    pub steps: Vec<StepDoc>,
    /// Cleanup steps, run once every other step has ended, whatever its outcome (not after an
    /// operator's stop: `resume` runs them). Their ids share the runbook's id space; they may
    /// need each other, not the main steps.
    #[serde(default)]
    pub finally: Vec<StepDoc>,
}

/// One escalation: `{ after: 30m, notify: devops-lead }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationDoc {
    pub after: Sp<String>,
    pub notify: Sp<String>,
}

/// A step as written in a runbook.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDoc {
    /// `[a-z0-9][a-z0-9_-]*`, unique in the runbook.
    pub id: Sp<String>,
    #[serde(default)]
    pub title: Option<Sp<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// Steps that must succeed before this one starts.
    #[serde(default)]
    pub needs: Vec<Sp<String>>,
    /// This step's share of the RTO: warn at 80%, breach at 100%.
    #[serde(default)]
    pub budget: Option<Sp<String>>,
    /// `min..likely..max` or `min..max`, for simulation and dry-runs.
    #[serde(default)]
    pub estimate: Option<Sp<String>>,
    /// Hard stop: the step's process group is killed.
    #[serde(default)]
    pub timeout: Option<Sp<String>>,
    /// Shell command template.
    #[serde(default)]
    pub run: Option<Sp<String>>,
    /// A library step, `system/name` (steps/system/name.yaml).
    #[serde(default)]
    pub uses: Option<Sp<String>>,
    /// Inputs of the library step named by `uses`, or the vars of the runbook named by
    /// `runbook` (plain templates in this step's scope).
    #[serde(default)]
    pub with: BTreeMap<Sp<String>, Sp<Text>>,
    /// Another runbook of `runbooks/` whose steps run inside this run, expanded when the
    /// runbook compiles: their ids prefixed with this step's id and a dot.
    #[serde(default)]
    pub runbook: Option<Sp<String>>,
    /// A gate where people decide.
    #[serde(default)]
    pub approval: Option<ApprovalDoc>,
    /// What the step does in a drill. Required on every step that runs something.
    #[serde(default)]
    pub drill: Option<Sp<DrillDoc>>,
    #[serde(default)]
    pub retries: Option<Sp<u32>>,
    #[serde(default)]
    pub backoff: Option<Sp<BackoffDoc>>,
    #[serde(default)]
    pub poll: Option<PollDoc>,
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
    /// May `resume` re-run this step without asking?
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// Inventory hosts to run on over ssh.
    #[serde(default)]
    pub on: Vec<Sp<String>>,
    /// With `on:`: how the step fans out over its hosts (`{ max_parallel: 50, max_failures: 0 }`).
    #[serde(default)]
    pub hosts: Option<Sp<HostsDoc>>,
    /// Extra environment for the step's process (values are templates).
    #[serde(default)]
    pub env: BTreeMap<String, Sp<Text>>,
    /// A minijinja expression over vars, upstream outputs and `run`, evaluated when the step
    /// is ready: false skips the step (`when: "steps['check-lag'].outputs.lag_s | int <= 3600"`).
    #[serde(default)]
    pub when: Option<Sp<String>>,
    /// With `when`: the probability (0..1) that the step runs, for the simulation. Without
    /// it, the plan and the simulation take the worst case: the step runs.
    #[serde(default)]
    pub likelihood: Option<Sp<f64>>,
    /// A loop: the step runs once per item, as instances `id[item]`, each seeing `{{ item }}`
    /// (`for_each: [eu-1, eu-2, eu-3]`, or `for_each: "{{ regions }}"` over a list variable).
    /// Steps that need `id` need every instance.
    #[serde(default)]
    pub for_each: Option<Sp<ForEachDoc>>,
    /// With `for_each`: how many instances run at once (default: all).
    #[serde(default)]
    pub max_parallel: Option<Sp<u32>>,
    /// A step that asks a person for a value mid-run (see `format/operator.rs`).
    #[serde(default)]
    pub input: Option<InputStepDoc>,
    /// A task a person does, with a checklist (see `format/operator.rs`).
    #[serde(default)]
    pub manual: Option<ManualStepDoc>,
}

/// `hosts:` of a step with `on:`: at most `max_parallel` hosts at once (default 50), and the
/// step fails only when more hosts failed than `max_failures` (a count, or `"10%"` of the
/// hosts; default 0).
// Kept as text here: the compiler checks each value at its line.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostsDoc {
    /// How many hosts run at once, 1 or more (default 50).
    #[serde(default)]
    #[schemars(schema_with = "max_parallel_schema")]
    pub max_parallel: Option<Sp<Text>>,
    /// How many hosts may fail with the step still succeeding: a count (default 0) or a
    /// percentage of the step's hosts (`"10%"`).
    #[serde(default)]
    #[schemars(schema_with = "max_failures_schema")]
    pub max_failures: Option<Sp<Text>>,
}

fn max_parallel_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer", "minimum": 1 })
}

fn max_failures_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "oneOf": [
        { "type": "integer", "minimum": 0 },
        { "type": "string", "pattern": "^(100|[0-9]{1,2})%$" }
    ] })
}

/// An approval gate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDoc {
    /// Shown to the approver (a plain template).
    pub prompt: Sp<String>,
    /// Roles or names who may approve.
    pub approvers: Vec<Sp<String>>,
    /// Distinct approvers needed (2 for the two-person rule).
    #[serde(default)]
    pub min: Option<Sp<u32>>,
    /// The wait ends here: the run stops, resumable. A gate never passes silently.
    #[serde(default)]
    pub timeout: Option<Sp<String>>,
    /// When to page an approver role, counted from when the gate starts waiting
    /// (`{ cto: 15m }`). Without it a role is paged when the escalation schedule reaches it,
    /// or at once if the schedule does not name it.
    #[serde(default)]
    pub page_after: BTreeMap<String, Sp<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollDoc {
    pub every: Sp<String>,
    pub within: Sp<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    #[default]
    Abort,
    Continue,
}

/// `drill:` — `run` | `skip` | `mock` | `{ run: command }` | `{ with: { input: value } }`.
#[derive(Debug, Clone, PartialEq)]
pub enum DrillDoc {
    Run,
    Skip,
    Mock,
    Command(Sp<String>),
    With(BTreeMap<Sp<String>, Sp<Text>>),
}

impl<'de> Deserialize<'de> for DrillDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DrillDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`run`, `skip`, `mock`, `{ run: command }` or `{ with: { ... } }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DrillDoc, E> {
                match v {
                    "run" => Ok(DrillDoc::Run),
                    "skip" => Ok(DrillDoc::Skip),
                    "mock" => Ok(DrillDoc::Mock),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DrillDoc, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::invalid_length(0, &self));
                };
                let drill = match key.as_str() {
                    "run" => DrillDoc::Command(map.next_value()?),
                    "with" => DrillDoc::With(map.next_value()?),
                    other => return Err(de::Error::unknown_field(other, &["run", "with"])),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "`drill` takes one of `run` or `with`, not also `{extra}`"
                    )));
                }
                Ok(drill)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for DrillDoc {
    fn schema_name() -> Cow<'static, str> {
        "Drill".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "What the step does in a drill: run (safe as is), skip, mock (simulated), a different command, or the library step with other inputs.",
            "oneOf": [
                { "type": "string", "enum": ["run", "skip", "mock"] },
                { "type": "object", "properties": { "run": { "type": "string" } },
                  "required": ["run"], "additionalProperties": false },
                { "type": "object", "properties": { "with": { "type": "object",
                    "additionalProperties": { "type": ["string", "number", "boolean"] } } },
                  "required": ["with"], "additionalProperties": false }
            ]
        })
    }
}

/// `backoff:` — a fixed wait (`5s`), or one that grows: `{ initial: 5s, factor: 2, max: 1m }`,
/// the wait before retry n being min(initial × factor^(n-1), max).
#[derive(Debug, Clone, PartialEq)]
pub enum BackoffDoc {
    Fixed(String),
    Growing {
        initial: Sp<String>,
        factor: Sp<f64>,
        max: Sp<String>,
    },
}

impl<'de> Deserialize<'de> for BackoffDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BackoffDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration (`5s`) or `{ initial: 5s, factor: 2, max: 1m }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BackoffDoc, E> {
                Ok(BackoffDoc::Fixed(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BackoffDoc, A::Error> {
                const KEYS: &[&str] = &["initial", "factor", "max"];
                let (mut initial, mut factor, mut max) = (None, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "initial" if initial.is_none() => initial = Some(map.next_value()?),
                        "factor" if factor.is_none() => factor = Some(map.next_value()?),
                        "max" if max.is_none() => max = Some(map.next_value()?),
                        "initial" | "factor" | "max" => {
                            return Err(de::Error::custom(format!("`backoff` has `{key}` twice")));
                        }
                        other => return Err(de::Error::unknown_field(other, KEYS)),
                    }
                }
                Ok(BackoffDoc::Growing {
                    initial: initial.ok_or_else(|| de::Error::missing_field("initial"))?,
                    factor: factor.ok_or_else(|| de::Error::missing_field("factor"))?,
                    max: max.ok_or_else(|| de::Error::missing_field("max"))?,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for BackoffDoc {
    fn schema_name() -> Cow<'static, str> {
        "Backoff".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The wait between attempts: a duration (`5s`), or one that grows, `{ initial: 5s, factor: 2, max: 1m }`: the wait before retry n is min(initial × factor^(n-1), max).",
            "oneOf": [
                { "type": "string" },
                { "type": "object", "properties": {
                    "initial": { "type": "string" },
                    "factor": { "type": "number", "minimum": 1 },
                    "max": { "type": "string" } },
                  "required": ["initial", "factor", "max"], "additionalProperties": false }
            ]
        })
    }
}

/// A scalar written as a string, number or boolean; kept as its text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        // As a string: serde-saphyr then gives a plain scalar its text as written, so `9.10`
        // stays `9.10` and `0012345` keeps its zeros (as numbers they became `9.1`, `12345`).
        d.deserialize_str(V)
    }
}

impl JsonSchema for Text {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// A library step: `steps/<system>/<name>.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LibraryDoc {
    pub title: Sp<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub inputs: BTreeMap<String, InputDoc>,
    pub run: Sp<String>,
    #[serde(default)]
    pub budget: Option<Sp<String>>,
    #[serde(default)]
    pub estimate: Option<Sp<String>>,
    #[serde(default)]
    pub timeout: Option<Sp<String>>,
    #[serde(default)]
    pub drill: Option<Sp<DrillDoc>>,
    #[serde(default)]
    pub retries: Option<Sp<u32>>,
    #[serde(default)]
    pub backoff: Option<Sp<BackoffDoc>>,
    #[serde(default)]
    pub poll: Option<PollDoc>,
    #[serde(default)]
    pub idempotent: Option<bool>,
    #[serde(default)]
    pub env: BTreeMap<String, Sp<Text>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputDoc {
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<Sp<Text>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// An environment file: `runbooks/env/<name>.yaml`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvDoc {
    /// Lets `--yes` pass gates in real runs: for a local sandbox only.
    #[serde(default)]
    pub auto_approve: bool,
    /// A rehearsal environment (the sandbox, a staging site): a throwaway copy of production
    /// where a drill runs the real command of every step whose drill is `mock`.
    #[serde(default)]
    pub rehearsal: bool,
    /// Every decision at a gate must be signed, in drills and dry-runs too (a real run of a
    /// project with `runbooks/allowed_signers` requires it anyway).
    #[serde(default)]
    pub signed_approvals: bool,
    /// Variables for every runbook run here: a list (or a `a,b` string) sets a list variable.
    #[serde(default)]
    pub vars: BTreeMap<String, Sp<VarDoc>>,
    /// ssh settings every inventory host takes unless its groups or itself set another.
    #[serde(default)]
    pub ssh: Option<SshDoc>,
    /// Named sets of inventory hosts and other groups, for a step's `on:` (`all` is implicit).
    #[serde(default)]
    pub groups: BTreeMap<Sp<String>, GroupDoc>,
    #[serde(default)]
    pub inventory: BTreeMap<String, HostDoc>,
}

/// ssh settings: the defaults (`ssh:`), a group's, or (beside `host`) a host's own.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SshDoc {
    #[serde(default)]
    pub user: Option<Sp<String>>,
    #[serde(default)]
    pub port: Option<Sp<u16>>,
    #[serde(default)]
    pub identity: Option<Sp<String>>,
    /// A known_hosts file that pins the host's key.
    #[serde(default)]
    pub known_hosts: Option<Sp<String>>,
    /// The host ssh goes through (`ssh -J`): `[user@]host[:port]`.
    #[serde(default)]
    pub jump: Option<Sp<String>>,
    /// How long ssh waits for a connection (`ConnectTimeout`), e.g. `5s`; default 10s.
    #[serde(default)]
    pub connect_timeout: Option<Sp<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostDoc {
    pub host: Sp<String>,
    #[serde(default)]
    pub user: Option<Sp<String>>,
    #[serde(default)]
    pub port: Option<Sp<u16>>,
    #[serde(default)]
    pub identity: Option<Sp<String>>,
    /// A known_hosts file that pins the host's key (ssh runs in batch mode: an unknown key
    /// fails the step rather than being trusted).
    #[serde(default)]
    pub known_hosts: Option<Sp<String>>,
    /// The host ssh goes through (`ssh -J`): `[user@]host[:port]`.
    #[serde(default)]
    pub jump: Option<Sp<String>>,
    /// How long ssh waits for a connection (`ConnectTimeout`), e.g. `5s`; default 10s.
    #[serde(default)]
    pub connect_timeout: Option<Sp<String>>,
}

impl HostDoc {
    /// The host's own ssh settings, in the shape a group's and the defaults have.
    pub fn ssh(&self) -> SshDoc {
        SshDoc {
            user: self.user.clone(),
            port: self.port.clone(),
            identity: self.identity.clone(),
            known_hosts: self.known_hosts.clone(),
            jump: self.jump.clone(),
            connect_timeout: self.connect_timeout.clone(),
        }
    }
}

/// The keys each mapping of the format accepts, for the first loading pass that reports every
/// unknown key of a file at once (serde stops at the first). A unit test checks them against
/// the JSON Schema made from the types above, so the two cannot drift apart.
pub mod keys {
    pub const RUNBOOK: &[&str] = &[
        "scenario",
        "title",
        "description",
        "rto",
        "rpo",
        "rto_ends_at",
        "roles",
        "vars",
        "secrets",
        "notify",
        "escalation",
        "steps",
        "finally",
    ];
    pub const ESCALATION: &[&str] = &["after", "notify"];
    pub const STEP: &[&str] = &[
        "id",
        "title",
        "description",
        "needs",
        "budget",
        "estimate",
        "timeout",
        "run",
        "uses",
        "with",
        "runbook",
        "approval",
        "drill",
        "retries",
        "backoff",
        "poll",
        "on_failure",
        "idempotent",
        "on",
        "hosts",
        "env",
        "when",
        "likelihood",
        "for_each",
        "max_parallel",
        "input",
        "manual",
    ];
    pub const MANUAL_STEP: &[&str] = &["instructions", "checklist", "approvers", "timeout"];
    pub const INPUT_STEP: &[&str] = &["prompt", "pattern", "approvers", "timeout", "default"];
    pub const APPROVAL: &[&str] = &["prompt", "approvers", "min", "timeout", "page_after"];
    pub const POLL: &[&str] = &["every", "within"];
    pub const HOSTS: &[&str] = &["max_parallel", "max_failures"];
    pub const LIBRARY: &[&str] = &[
        "title",
        "description",
        "inputs",
        "run",
        "budget",
        "estimate",
        "timeout",
        "drill",
        "retries",
        "backoff",
        "poll",
        "idempotent",
        "env",
    ];
    pub const INPUT: &[&str] = &["required", "default", "description"];
    pub const ENV: &[&str] = &[
        "auto_approve",
        "rehearsal",
        "signed_approvals",
        "vars",
        "ssh",
        "groups",
        "inventory",
    ];
    pub const HOST: &[&str] = &[
        "host",
        "user",
        "port",
        "identity",
        "known_hosts",
        "jump",
        "connect_timeout",
    ];
    pub const SSH: &[&str] = &[
        "user",
        "port",
        "identity",
        "known_hosts",
        "jump",
        "connect_timeout",
    ];
    pub const GROUP: &[&str] = &[
        "hosts",
        "user",
        "port",
        "identity",
        "known_hosts",
        "jump",
        "connect_timeout",
    ];
}
