//! The state machine on a virtual clock: every timing rule at its exact instant. This file
//! holds what the tests share (a plan from YAML, `Sim` playing the processes and the people);
//! the tests are in one file per concern of the machine.

mod calls;
mod commands;
mod conditions;
mod finally;
mod frontier;
mod gates;
mod inputs;
mod list_vars;
mod loops;
mod manual;
mod manual_work;
mod output_loops;
mod restore;
mod restore_conditions;
mod schedule;
mod timers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::commands::output_refs;
use super::*;
use crate::compile::OnFailure;
use crate::compile::{self, Library};
use crate::diag::SourceFile;
use crate::format::{self, Kind, Loaded};
use crate::project::Project;

fn plan(yaml: &str) -> Arc<Plan> {
    let file = SourceFile::new(
        std::path::Path::new("t.yaml"),
        "t.yaml",
        format!("scenario: t\ntitle: T\n{yaml}"),
    );
    let doc = format::parse(&file, Kind::Runbook).unwrap_or_else(|p| panic!("{p}"));
    let loaded = Loaded { doc, file };
    let (plan, problems) = compile::compile(
        &loaded,
        &Project::at("/nonexistent"),
        &mut Library::new(),
        Default::default(),
    );
    Arc::new(plan.unwrap_or_else(|| panic!("{problems}")))
}

fn cfg(mode: Mode) -> Config {
    Config {
        run_id: "r1".into(),
        mode,
        max_parallel: None,
        auto_approve_as: None,
        yes_is_one_approval: false,
        vars: BTreeMap::new(),
        env: BTreeMap::new(),
        durations: None,
        rehearsal: false,
        signed_approvals: false,
    }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Step 0's attempt ended this way, with no outputs.
fn exited(attempt: u32, result: ExitResult) -> Input {
    Input::Exited {
        step: 0,
        attempt,
        result,
        outputs: BTreeMap::new(),
    }
}

/// A virtual run: the test plays the processes and the people.
struct Sim {
    m: Machine,
    now: Duration,
    events: Vec<(Duration, EventKind)>,
    spawns: Vec<(Duration, usize, u32, String)>,
    kills: Vec<(Duration, usize)>,
    notifies: Vec<(Duration, String, String)>,
    outcome: Option<Outcome>,
}

impl Sim {
    fn new(plan: Arc<Plan>, cfg: Config) -> Self {
        let mut sim = Sim {
            m: Machine::new(plan, cfg, Masker::default()),
            now: Duration::ZERO,
            events: Vec::new(),
            spawns: Vec::new(),
            kills: Vec::new(),
            notifies: Vec::new(),
            outcome: None,
        };
        sim.feed(Input::Start);
        sim
    }

    fn feed(&mut self, input: Input) {
        let acts = self.m.handle(self.now, input);
        self.take(acts);
    }

    fn take(&mut self, acts: Vec<Effect>) {
        let mut follow = Vec::new();
        for a in acts {
            match a {
                Effect::Record(e) => self.events.push((self.now, e)),
                Effect::Spawn {
                    step,
                    attempt,
                    command,
                    ..
                } => self.spawns.push((self.now, step, attempt, command)),
                Effect::Kill { step } => self.kills.push((self.now, step)),
                Effect::Notify {
                    channel,
                    reason,
                    message,
                    ..
                } => {
                    self.notifies
                        .push((self.now, channel.clone(), reason.as_str().to_owned()));
                    follow.push(Input::Notified {
                        channel,
                        reason,
                        message,
                        failed: None,
                    });
                }
                Effect::Done(o) => self.outcome = Some(o),
                Effect::Simulate { .. } | Effect::Ask { .. } => {}
            }
        }
        for i in follow {
            self.feed(i);
        }
    }

    /// Moves the clock to `t`, firing every timer on the way at its own instant.
    fn advance(&mut self, t: Duration) {
        while let Some(w) = self.m.next_wake() {
            if w > t {
                break;
            }
            self.now = self.now.max(w);
            self.feed(Input::Tick);
        }
        self.now = self.now.max(t);
    }

    fn exit(&mut self, step: &str, code: i32) {
        let i = self.m.plan().step_index(step).unwrap();
        let attempt = self
            .spawns
            .iter()
            .rev()
            .find(|x| x.1 == i)
            .map(|x| x.2)
            .expect("spawned");
        self.feed(Input::Exited {
            step: i,
            attempt,
            result: ExitResult::Code(code),
            outputs: BTreeMap::new(),
        });
    }

    fn answer(&mut self, step: &str, by: &str, approve: bool) {
        self.feed(Input::Answer {
            step: step.into(),
            by: by.into(),
            approve,
            comment: None,
            value: None,
            signed: None,
        });
    }

    fn at(&self, ty: &str) -> Vec<(Duration, String)> {
        self.events
            .iter()
            .filter(|(_, e)| e.type_name() == ty)
            .map(|(t, e)| (*t, e.step().unwrap_or("").to_owned()))
            .collect()
    }

    fn spawned(&self) -> Vec<(Duration, String)> {
        self.spawns
            .iter()
            .map(|(t, i, _, _)| (*t, self.m.plan().steps[*i].id.clone()))
            .collect()
    }

    fn finished(&self, step: &str) -> Vec<StepFinished> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                EventKind::StepFinished(f) if f.step == step => Some(f.clone()),
                _ => None,
            })
            .collect()
    }
}

const TWO: &str = "rto: 1h\nsteps:\n  - { id: a, budget: 10m, run: a, drill: run }\n  - { id: b, needs: [a], budget: 10m, run: b, drill: run }\n";

impl Sim {
    /// The run's `run_finished`, which must have been journaled.
    fn run_finished(&self) -> RunFinished {
        self.events
            .iter()
            .find_map(|(_, e)| match e {
                EventKind::RunFinished(f) => Some(f.clone()),
                _ => None,
            })
            .expect("the run finished")
    }
}

const GATE: &str = concat!(
    "rto: 1h\nroles:\n  lead: [alice, bob]\n  cto: [carol]\nnotify:\n  lead: echo {{ message }}\n",
    "escalation:\n  - { after: 10m, notify: lead }\nsteps:\n  - id: gate\n    budget: 15m\n",
    "    approval: { prompt: go?, approvers: [lead], min: MIN, timeout: 30m }\n",
    "  - { id: after, needs: [gate], budget: 1m, run: x, drill: run }\n",
);

fn gate(min: u32) -> Arc<Plan> {
    plan(&GATE.replace("MIN", &min.to_string()))
}

/// Plays a dry-run to its end: simulated steps exit 0 after their simulated time.
fn dry_run(plan: Arc<Plan>) -> Vec<(Duration, EventKind)> {
    let mut m = Machine::new(plan, cfg(Mode::DryRun), Masker::default());
    let mut now = Duration::ZERO;
    let mut events = Vec::new();
    let mut sims: Vec<(Duration, usize, u32)> = Vec::new();
    let mut acts = m.handle(now, Input::Start);
    for _ in 0..10_000 {
        for a in acts {
            match a {
                Effect::Record(e) => events.push((now, e)),
                Effect::Simulate {
                    step,
                    attempt,
                    after,
                } => sims.push((now + after, step, attempt)),
                _ => {}
            }
        }
        if m.is_done() {
            return events;
        }
        sims.sort();
        let sim_at = sims.first().map(|x| x.0);
        acts = match (sim_at, m.next_wake()) {
            (Some(t), w) if w.is_none_or(|w| t <= w) => {
                let (t, step, attempt) = sims.remove(0);
                now = t;
                m.handle(
                    now,
                    Input::Exited {
                        step,
                        attempt,
                        result: ExitResult::Code(0),
                        outputs: BTreeMap::new(),
                    },
                )
            }
            (_, Some(w)) => {
                now = now.max(w);
                m.handle(now, Input::Tick)
            }
            _ => panic!("the dry-run stalled"),
        };
    }
    panic!("the dry-run did not end");
}

/// Issue 14: a restore, the check that service answers (`rto_ends_at`), then an hour of
/// watching. Without `rto_ends_at` the 2h watch alone is over the 1h RTO.
const OBSERVED: &str = "rto: 1h\nrto_ends_at: verify\nnotify:\n  lead: echo {{ message }}\n\
     escalation:\n  - { after: 50m, notify: lead }\n\
     steps:\n  - { id: restore, budget: 20m, run: r, drill: run }\n  \
     - { id: verify, needs: [restore], budget: 5m, run: v, drill: mock }\n  \
     - { id: monitor, needs: [verify], budget: 2h, run: m, drill: run }\n";
