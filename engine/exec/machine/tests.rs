//! The state machine on a virtual clock: every timing rule at its exact instant.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::commands::output_refs;
use super::*;
use crate::compile::{self, Library};
use crate::diag::SourceFile;
use crate::project::Project;
use crate::runbook::OnFailure;
use crate::runbook::{self, Kind, Loaded};

fn plan(yaml: &str) -> Arc<Plan> {
    let file = SourceFile::new(
        std::path::Path::new("t.yaml"),
        "t.yaml",
        format!("scenario: t\ntitle: T\n{yaml}"),
    );
    let doc = runbook::parse(&file, Kind::Runbook).unwrap_or_else(|p| panic!("{p}"));
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

    fn take(&mut self, acts: Vec<Action>) {
        let mut follow = Vec::new();
        for a in acts {
            match a {
                Action::Record(e) => self.events.push((self.now, e)),
                Action::Spawn {
                    step,
                    attempt,
                    command,
                    ..
                } => self.spawns.push((self.now, step, attempt, command)),
                Action::Kill { step } => self.kills.push((self.now, step)),
                Action::Notify {
                    channel,
                    reason,
                    message,
                    ..
                } => {
                    self.notifies
                        .push((self.now, channel.clone(), reason.clone()));
                    follow.push(Input::Notified {
                        channel,
                        reason,
                        message,
                        failed: None,
                    });
                }
                Action::Done(o) => self.outcome = Some(o),
                Action::Simulate { .. } | Action::Ask { .. } => {}
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

#[test]
fn budget_warns_at_80_percent_and_breaches_past_100_exactly() {
    let mut sim = Sim::new(plan(TWO), cfg(Mode::Real));
    assert_eq!(sim.spawned(), vec![(s(0), "a".into())]);
    sim.advance(s(479));
    assert!(sim.at("budget_warning").is_empty());
    sim.advance(s(480));
    assert_eq!(sim.at("budget_warning"), vec![(s(480), "a".into())]);
    // Exactly the budget is on budget; a millisecond past it is a breach.
    sim.advance(s(600));
    assert!(sim.at("budget_breached").is_empty());
    let past = s(600) + Duration::from_millis(1);
    sim.advance(past);
    assert_eq!(sim.at("budget_breached"), vec![(past, "a".into())]);
    sim.exit("a", 0);
    assert_eq!(sim.spawned().last().unwrap(), &(past, "b".to_owned()));
}

/// Regression: in dry-runs, where a step takes exactly its budget, a step finishing at the
/// same instant as another was reported over budget.
#[test]
fn a_step_that_takes_exactly_its_budget_does_not_breach() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 10m, run: a, drill: run }\n  - { id: b, budget: 10m, run: b, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(600));
    sim.exit("a", 0);
    sim.exit("b", 0);
    assert!(
        sim.at("budget_breached").is_empty(),
        "{:?}",
        sim.at("budget_breached")
    );
}

#[test]
fn rto_at_risk_fires_when_the_projection_passes_the_target_before_the_miss() {
    // 40m + 40m of budgets against a 1h RTO: at risk from the start.
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 20m, run: a, drill: run }\n  - { id: b, needs: [a], budget: 30m, run: b, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    // 20m + 30m fits in 1h; a runs long. Past its 20m budget the projection is now + 30m,
    // which passes 60m just after +30m: caught at that instant, not at the next minute.
    let just_after = s(30 * 60) + Duration::from_millis(1);
    sim.advance(s(30 * 60));
    assert!(sim.at("rto_at_risk").is_empty());
    sim.advance(s(31 * 60));
    assert_eq!(sim.at("rto_at_risk").len(), 1);
    assert_eq!(sim.at("rto_at_risk")[0].0, just_after);
    let EventKind::RtoAtRisk(r) = &sim
        .events
        .iter()
        .find(|(_, e)| e.type_name() == "rto_at_risk")
        .unwrap()
        .1
    else {
        unreachable!()
    };
    assert_eq!(r.projected_ms, 60 * 60 * 1000 + 1);
    assert_eq!(r.path, vec!["b".to_owned()]);
    // Not repeated while it stays at risk.
    sim.advance(s(40 * 60));
    assert_eq!(sim.at("rto_at_risk").len(), 1);
}

#[test]
fn escalations_fire_at_their_times_and_on_rto_at_risk() {
    let p = plan(
        "rto: 1h\nnotify:\n  oncall: echo {{ message }}\n  lead: echo {{ message }}\n  cto: echo {{ message }}\n\
         escalation:\n  - { after: 0s, notify: oncall }\n  - { after: 30m, notify: lead }\n  - { after: 60m, notify: cto }\n\
         steps:\n  - { id: a, budget: 50m, run: a, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    assert_eq!(
        sim.notifies,
        vec![(s(0), "oncall".into(), "schedule".into())]
    );
    sim.advance(s(30 * 60));
    assert_eq!(
        sim.notifies[1],
        (s(30 * 60), "lead".into(), "schedule".into())
    );
    // At +51m a has used its 50m budget: projection 51m < 60m, no risk yet. At +61m we are
    // past the target: the next escalation (cto) fires on the risk, at +60m by schedule first.
    sim.advance(s(60 * 60));
    assert_eq!(
        sim.notifies[2],
        (s(60 * 60), "cto".into(), "schedule".into())
    );
    assert_eq!(sim.at("escalated").len(), 3);
}

#[test]
fn rto_at_risk_escalates_to_the_next_level_early() {
    let p = plan(
        "rto: 1h\nnotify:\n  lead: echo {{ message }}\n  cto: echo {{ message }}\n\
         escalation:\n  - { after: 45m, notify: lead }\n  - { after: 90m, notify: cto }\n\
         steps:\n  - { id: a, budget: 50m, run: a, drill: run }\n  - { id: b, needs: [a], budget: 9m, run: b, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(45 * 60));
    assert_eq!(
        sim.notifies,
        vec![(s(45 * 60), "lead".into(), "schedule".into())]
    );
    // 50m + 9m fits. a overruns: at +51m the projection is 51m + 9m = 60m, still on target;
    // just after, it passes: at risk, and the CTO hears of it now, not at +90m.
    let just_after = s(51 * 60) + Duration::from_millis(1);
    sim.advance(s(51 * 60));
    assert!(sim.at("rto_at_risk").is_empty());
    sim.advance(s(52 * 60));
    assert_eq!(sim.at("rto_at_risk")[0].0, just_after);
    assert_eq!(
        sim.notifies[1],
        (just_after, "cto".into(), "rto_at_risk".into())
    );
}

#[test]
fn an_aborting_failure_starts_nothing_new_and_marks_the_rest_not_run() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run }\n  - { id: slow, budget: 1m, run: s, drill: run }\n  \
         - { id: b, needs: [a], budget: 1m, run: b, drill: run }\n  - { id: c, needs: [slow], budget: 1m, run: c, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    assert_eq!(sim.spawned().len(), 2);
    sim.advance(s(5));
    sim.exit("a", 3);
    assert!(sim.outcome.is_none(), "slow still runs");
    sim.advance(s(10));
    sim.exit("slow", 0);
    // c's need succeeded, but the run is aborting: c does not start.
    assert_eq!(sim.spawned().len(), 2);
    assert_eq!(sim.finished("b")[0].status, StepStatus::NotRun);
    assert_eq!(sim.finished("c")[0].status, StepStatus::NotRun);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
}

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

/// Regression: a run whose only failure was an `on_failure: continue` step failed (and
/// exited 1), as if `continue` meant nothing for the run.
#[test]
fn on_failure_continue_lets_dependents_run_and_the_run_succeed() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run, on_failure: continue }\n  - { id: b, needs: [a], budget: 1m, run: b, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.exit("a", 1);
    assert_eq!(sim.spawned().last().unwrap().1, "b");
    sim.exit("b", 0);
    assert_eq!(sim.outcome, Some(Outcome::Succeeded { rto_met: true }));
    let f = sim.run_finished();
    assert_eq!(f.status, RunStatus::Succeeded);
    assert_eq!(f.continued, vec!["a".to_owned()]);
    assert_eq!(f.failed_at, None);
}

/// A continued failure does not hide a real one: the run fails where the recovery failed.
#[test]
fn a_failure_after_a_continued_one_fails_the_run_at_its_own_step() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run, on_failure: continue }\n  - { id: b, needs: [a], budget: 1m, run: b, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.exit("a", 1);
    sim.exit("b", 2);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    let f = sim.run_finished();
    assert_eq!(f.status, RunStatus::Failed);
    assert_eq!(f.failed_at.as_deref(), Some("b"));
    assert_eq!(f.continued, vec!["a".to_owned()]);
}

/// Regression: a run that failed 5 s into a 1 h RTO was journaled `rto_met: true`, and every
/// report said "RTO met" of a run that never recovered.
#[test]
fn a_failed_run_does_not_meet_its_rto_however_early_it_ends() {
    let mut sim = Sim::new(plan(TWO), cfg(Mode::Real));
    sim.advance(s(5));
    sim.exit("a", 3);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    let f = sim.run_finished();
    assert!(!f.rto_met, "{f:?}");
    assert_eq!(f.failed_at.as_deref(), Some("a"));
    assert_eq!(f.elapsed_ms, 5_000);
}

/// Regression: a denied run met its RTO too; it fails at the gate.
#[test]
fn a_denied_run_does_not_meet_its_rto_and_failed_at_its_gate() {
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    sim.advance(s(60));
    sim.answer("gate", "bob", false);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    let f = sim.run_finished();
    assert!(!f.rto_met);
    assert_eq!(f.failed_at.as_deref(), Some("gate"));
}

#[test]
fn retries_wait_their_backoff_then_give_up() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run, retries: 2, backoff: 10s }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(1));
    sim.exit("a", 1);
    assert!(sim.finished("a")[0].will_retry);
    sim.advance(s(10));
    assert_eq!(sim.spawned().len(), 1, "backoff not over at +10s");
    sim.advance(s(11));
    assert_eq!(sim.spawned()[1], (s(11), "a".into()));
    sim.exit("a", 1);
    sim.advance(s(21));
    assert_eq!(sim.spawned()[2], (s(21), "a".into()));
    sim.exit("a", 1);
    let f = sim.finished("a");
    assert_eq!(f.len(), 3);
    assert!(!f[2].will_retry);
    assert_eq!(f[2].attempt, 3);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
}

#[test]
fn poll_reruns_every_interval_until_the_window_closes() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, poll: { every: 10s, within: 30s } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    for k in 0..3 {
        sim.exit("a", 1);
        sim.advance(s(10 * (k + 1)));
    }
    // Attempts at 0, 10, 20, 30; the one at 30 fails and 40 > 30: done.
    assert_eq!(
        sim.spawned().iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![s(0), s(10), s(20), s(30)]
    );
    sim.exit("a", 1);
    let last = sim.finished("a").pop().unwrap();
    assert!(!last.will_retry);
    assert!(last.error.unwrap().contains("poll window of 30s closed"));
}

#[test]
fn poll_succeeds_as_soon_as_the_check_passes() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, poll: { every: 10s, within: 1m } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.exit("a", 1);
    sim.advance(s(10));
    sim.exit("a", 0);
    assert_eq!(sim.outcome, Some(Outcome::Succeeded { rto_met: true }));
}

#[test]
fn a_timeout_kills_the_step_and_fails_it_as_timed_out() {
    let p = plan("rto: 1h\nsteps:\n  - { id: a, budget: 1m, timeout: 90s, run: a, drill: run }\n");
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(89));
    assert!(sim.kills.is_empty());
    sim.advance(s(90));
    assert_eq!(sim.kills, vec![(s(90), 0)]);
    sim.advance(s(92));
    sim.feed(exited(1, ExitResult::Signal(15)));
    assert_eq!(sim.finished("a")[0].status, StepStatus::TimedOut);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
}

#[test]
fn max_parallel_caps_concurrency_in_plan_order() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run }\n  - { id: b, budget: 1m, run: b, drill: run }\n  - { id: c, budget: 1m, run: c, drill: run }\n",
    );
    let mut c = cfg(Mode::Real);
    c.max_parallel = Some(2);
    let mut sim = Sim::new(p, c);
    assert_eq!(
        sim.spawned()
            .iter()
            .map(|x| x.1.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    sim.exit("b", 0);
    assert_eq!(sim.spawned().last().unwrap().1, "c");
}

#[test]
fn outputs_of_upstream_steps_render_shell_quoted() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run }\n  - { id: b, needs: [a], budget: 1m, run: \"use {{ steps.a.outputs.file }}\", drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.feed(Input::Exited {
        step: 0,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("file".into(), "$(touch x); rm -rf /".into())]),
    });
    assert_eq!(sim.spawns[1].3, "use '$(touch x); rm -rf /'");
}

#[test]
fn a_missing_output_fails_the_step_without_running_it() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run }\n  - { id: b, needs: [a], budget: 1m, run: \"use {{ steps.a.outputs.file }}\", drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.exit("a", 0);
    assert_eq!(sim.spawns.len(), 1);
    let f = &sim.finished("b")[0];
    assert_eq!(f.status, StepStatus::Failed);
    assert!(f.error.as_ref().unwrap().contains("undefined"), "{f:?}");
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

#[test]
fn an_authorized_approval_opens_the_gate_and_records_the_wait() {
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    assert_eq!(sim.at("approval_requested"), vec![(s(0), "gate".into())]);
    sim.advance(s(300));
    sim.answer("gate", "alice", true);
    let EventKind::ApprovalGranted(g) = &sim
        .events
        .iter()
        .find(|(_, e)| e.type_name() == "approval_granted")
        .unwrap()
        .1
    else {
        unreachable!()
    };
    assert_eq!(
        (g.by.clone(), g.wait_ms, g.auto),
        (vec!["alice".to_owned()], 300_000, false)
    );
    assert_eq!(sim.spawned(), vec![(s(300), "after".into())]);
}

#[test]
fn an_unauthorized_name_changes_nothing() {
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    sim.answer("gate", "mallory", true);
    assert_eq!(sim.at("approval_rejected").len(), 1);
    assert!(sim.spawns.is_empty());
    sim.answer("gate", "carol", true); // a CTO, but not an approver of this gate
    assert_eq!(sim.at("approval_rejected").len(), 2);
    assert!(sim.spawns.is_empty());
}

#[test]
fn the_two_person_rule_needs_two_different_approvers() {
    let mut sim = Sim::new(gate(2), cfg(Mode::Real));
    sim.answer("gate", "alice", true);
    assert_eq!(sim.at("approval_received").len(), 1);
    sim.answer("gate", "alice", true);
    assert_eq!(
        sim.at("approval_rejected").len(),
        1,
        "the same person twice"
    );
    assert!(sim.spawns.is_empty());
    sim.answer("gate", "bob", true);
    assert_eq!(sim.at("approval_granted").len(), 1);
    assert_eq!(sim.spawns.len(), 1);
}

#[test]
fn a_denial_fails_the_run() {
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    sim.answer("gate", "bob", false);
    assert_eq!(sim.at("approval_denied").len(), 1);
    assert_eq!(sim.finished("after")[0].status, StepStatus::NotRun);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
}

#[test]
fn a_gate_timeout_stops_the_run_resumable_and_never_passes() {
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    sim.advance(s(30 * 60 - 1));
    assert!(sim.outcome.is_none());
    sim.advance(s(30 * 60));
    assert_eq!(sim.at("approval_timed_out"), vec![(s(1800), "gate".into())]);
    assert_eq!(sim.at("run_interrupted").len(), 1);
    assert_eq!(sim.outcome, Some(Outcome::Stopped));
    assert!(sim.spawns.is_empty());
}

#[test]
fn escalation_fires_while_a_gate_waits_and_its_budget_runs() {
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    sim.advance(s(12 * 60));
    // The lead's time on the escalation path is minute 10: the gate pages them then.
    assert_eq!(
        sim.notifies,
        vec![
            (s(600), "lead".into(), "schedule".into()),
            (s(600), "lead".into(), "approval_requested".into())
        ]
    );
    assert_eq!(sim.at("budget_warning"), vec![(s(720), "gate".into())]);
}

#[test]
fn yes_auto_approves_in_the_operators_name() {
    let mut c = cfg(Mode::Drill);
    c.auto_approve_as = Some("dave".into());
    let sim = Sim::new(gate(1), c);
    let EventKind::ApprovalGranted(g) = &sim
        .events
        .iter()
        .find(|(_, e)| e.type_name() == "approval_granted")
        .unwrap()
        .1
    else {
        unreachable!()
    };
    assert!(g.auto);
    assert_eq!(g.by, vec!["dave".to_owned()]);
}

#[test]
fn an_interrupt_kills_running_steps_and_stops_resumable() {
    let mut sim = Sim::new(plan(TWO), cfg(Mode::Real));
    sim.advance(s(3));
    sim.feed(Input::Interrupt);
    assert_eq!(sim.kills, vec![(s(3), 0)]);
    sim.feed(exited(1, ExitResult::Signal(15)));
    assert_eq!(sim.finished("a")[0].status, StepStatus::Interrupted);
    assert_eq!(sim.at("run_interrupted").len(), 1);
    assert_eq!(sim.outcome, Some(Outcome::Stopped));
}

#[test]
fn escalations_in_a_drill_say_it_is_a_drill() {
    let p = plan(
        "rto: 1h\nnotify:\n  oncall: echo {{ message }}\nescalation:\n  - { after: 0s, notify: oncall }\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run }\n",
    );
    for (mode, tag) in [
        (Mode::Real, "[runbook] t:"),
        (Mode::Drill, "[runbook DRILL — not a real incident] t:"),
    ] {
        let mut m = Machine::new(p.clone(), cfg(mode), Masker::default());
        let acts = m.handle(Duration::ZERO, Input::Start);
        let msg = acts
            .iter()
            .find_map(|a| match a {
                Action::Notify { message, .. } => Some(message.clone()),
                _ => None,
            })
            .unwrap();
        assert!(msg.starts_with(tag), "{msg}");
    }
}

/// A small deterministic generator, so that a failing case can be replayed by its seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A random DAG of commands and auto-approved gates, some failing with `on_failure:
/// continue`, run in random order with `--max-parallel` or without.
fn random_run(seed: u64) -> (Sim, Option<usize>) {
    let mut r = Lcg(seed);
    let n = 2 + r.below(24) as usize;
    let mut yaml = String::from("rto: 2h\nroles: { lead: [x] }\nsteps:\n");
    for i in 0..n {
        let needs: Vec<String> = (0..i)
            .filter(|_| r.below(10) < 3)
            .take(3)
            .map(|j| format!("s{j}"))
            .collect();
        let budget = 1 + r.below(30);
        yaml.push_str(&format!(
            "  - {{ id: s{i}, needs: [{}], budget: {budget}m, ",
            needs.join(", ")
        ));
        if r.below(6) == 0 {
            yaml.push_str("approval: { prompt: ok?, approvers: [lead] } }\n");
        } else {
            let cont = if r.below(5) == 0 {
                ", on_failure: continue"
            } else {
                ""
            };
            yaml.push_str(&format!("run: s{i}, drill: run{cont} }}\n"));
        }
    }
    let mut c = cfg(Mode::Real);
    c.auto_approve_as = Some("x".into());
    let max = (r.below(3) != 0).then(|| 1 + r.below(3) as usize);
    c.max_parallel = max;
    let p = plan(&yaml);
    let mut sim = Sim::new(p.clone(), c);
    let mut ended = std::collections::BTreeSet::new();
    let check = |sim: &Sim| {
        assert_eq!(
            sim.m.projected_finish(sim.now),
            sim.m.projection(sim.now).0,
            "seed {seed}: the frontier's projection differs from the longest path's\n{yaml}"
        );
    };
    check(&sim);
    while sim.outcome.is_none() {
        let running: Vec<usize> = sim
            .spawns
            .iter()
            .map(|x| x.1)
            .filter(|i| !ended.contains(i))
            .collect();
        if let Some(max) = max {
            assert!(running.len() <= max, "seed {seed}: over --max-parallel");
        }
        assert!(
            !running.is_empty(),
            "seed {seed}: stalled with nothing running\n{yaml}"
        );
        let i = running[r.below(running.len() as u64) as usize];
        sim.advance(sim.now + s(r.below(40) * 60));
        check(&sim);
        ended.insert(i);
        let code = if p.steps[i].on_failure == OnFailure::Continue && r.below(2) == 0 {
            1
        } else {
            0
        };
        sim.exit(&p.steps[i].id.clone(), code);
        check(&sim);
        // No step is kept waiting while there is room for it.
        let done: std::collections::BTreeSet<&str> = sim
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                EventKind::StepFinished(f) => Some(f.step.as_str()),
                _ => None,
            })
            .collect();
        let spawned: std::collections::BTreeSet<usize> = sim.spawns.iter().map(|x| x.1).collect();
        let busy = spawned.iter().filter(|i| !ended.contains(*i)).count();
        let waiting = p.steps.iter().enumerate().any(|(k, st)| {
            !spawned.contains(&k)
                && !done.contains(st.id.as_str())
                && st
                    .needs
                    .iter()
                    .all(|&j| done.contains(p.steps[j].id.as_str()))
        });
        assert!(
            !waiting || max.is_some_and(|m| busy >= m),
            "seed {seed}: a ready step was not started\n{yaml}"
        );
    }
    (sim, max)
}

#[test]
fn random_dags_project_as_the_longest_path_and_start_every_step_once() {
    for seed in 0..300 {
        let (sim, _) = random_run(seed);
        let plan = sim.m.plan();
        let mut started: Vec<usize> = sim.spawns.iter().map(|x| x.1).collect();
        started.sort_unstable();
        started.dedup();
        assert_eq!(
            started.len(),
            sim.spawns.len(),
            "seed {seed}: a step started twice"
        );
        // Everything ran (failures only ever `continue`): commands were spawned, gates
        // granted, and each step only after all its needs had finished.
        for step in &plan.steps {
            let f = sim.finished(&step.id);
            assert_eq!(
                f.len(),
                1,
                "seed {seed}: `{}` finished {} times",
                step.id,
                f.len()
            );
            assert_ne!(
                f[0].status,
                StepStatus::NotRun,
                "seed {seed}: `{}`",
                step.id
            );
            let start = sim.events.iter().position(|(_, e)| {
                matches!(e, EventKind::StepStarted(x) if x.step == step.id)
                    || matches!(e, EventKind::ApprovalRequested(x) if x.step == step.id)
            });
            for &j in &step.needs {
                let need_end = sim.events.iter().position(
                    |(_, e)| matches!(e, EventKind::StepFinished(x) if x.step == plan.steps[j].id),
                );
                assert!(
                    need_end < start,
                    "seed {seed}: `{}` before its need",
                    step.id
                );
            }
        }
    }
}

#[test]
fn an_interrupt_during_a_backoff_stops_the_run_at_once() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, retries: 3, backoff: 60s }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(1));
    sim.exit("a", 1);
    assert!(sim.finished("a")[0].will_retry);
    sim.advance(s(2));
    sim.feed(Input::Interrupt);
    // Not at +61s, when the backoff would have ended: now, with no new attempt.
    assert_eq!(sim.outcome, Some(Outcome::Stopped));
    assert_eq!(sim.at("run_interrupted"), vec![(s(2), String::new())]);
    assert_eq!(sim.spawned().len(), 1);
}

#[test]
fn an_aborting_failure_ends_the_run_without_waiting_out_a_backoff() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, retries: 3, backoff: 60s }\n  - { id: b, budget: 5m, run: b, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(1));
    sim.exit("a", 1);
    sim.advance(s(2));
    sim.exit("b", 1);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    assert_eq!(
        sim.spawned().len(),
        2,
        "a is not tried again once the run aborts"
    );
}

#[test]
fn a_poll_attempt_still_running_when_the_window_closes_is_killed() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, poll: { every: 10s, within: 30s } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(5));
    sim.exit("a", 1);
    sim.advance(s(15)); // the second attempt starts at +15s and hangs
    sim.advance(s(29));
    assert!(sim.kills.is_empty());
    sim.advance(s(31));
    assert_eq!(sim.kills, vec![(s(30), 0)]);
    sim.feed(exited(2, ExitResult::Signal(15)));
    let last = sim.finished("a").pop().unwrap();
    assert_eq!(last.status, StepStatus::TimedOut);
    assert!(!last.will_retry);
    assert!(
        last.error
            .as_deref()
            .unwrap()
            .contains("still running when its poll window of 30s closed"),
        "{last:?}"
    );
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
}

#[test]
fn output_references_are_found_in_both_spellings() {
    assert_eq!(
        output_refs("echo {{ steps['find-backup'].outputs.file }} {{ steps.a.outputs.n_2 }}"),
        vec![
            ("find-backup".to_owned(), "file".to_owned()),
            ("a".to_owned(), "n_2".to_owned())
        ]
    );
    assert!(output_refs("echo steps and {{ steps }}").is_empty());
}

#[test]
fn a_step_over_a_short_rto_puts_it_at_risk_the_moment_the_projection_passes() {
    // rto 3s, one step of budget 1s that runs 8s: at risk just after +3s, not at +8s.
    let p = plan(
        "rto: 3s\nnotify:\n  lead: echo {{ message }}\nescalation:\n  - { after: 1h, notify: lead }\nsteps:\n  - { id: a, budget: 1s, run: a, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(8));
    assert_eq!(
        sim.at("rto_at_risk"),
        vec![(s(3) + Duration::from_millis(1), String::new())]
    );
    assert_eq!(
        sim.notifies,
        vec![(
            s(3) + Duration::from_millis(1),
            "lead".into(),
            "rto_at_risk".into()
        )]
    );
}

#[test]
fn the_run_ends_once_its_escalations_are_sent_and_counts_its_time_to_the_last_step() {
    let p = plan(
        "rto: 1m\nnotify:\n  lead: echo {{ message }}\nescalation:\n  - { after: 0s, notify: lead }\nsteps:\n  - { id: a, budget: 10s, run: a, drill: run }\n",
    );
    // Play the notify command by hand: it is still being sent when the step ends.
    let mut m = Machine::new(p, cfg(Mode::Real), Masker::default());
    let acts = m.handle(Duration::ZERO, Input::Start);
    let notify = acts
        .iter()
        .find_map(|a| match a {
            Action::Notify {
                channel,
                reason,
                message,
                ..
            } => Some((channel.clone(), reason.clone(), message.clone())),
            _ => None,
        })
        .expect("the 0s escalation");
    let acts = m.handle(s(1), exited(1, ExitResult::Code(0)));
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Done(_))),
        "the run ended with its escalation unsent"
    );
    let acts = m.handle(
        s(3),
        Input::Notified {
            channel: notify.0,
            reason: notify.1,
            message: notify.2,
            failed: None,
        },
    );
    let kinds: Vec<&str> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Record(e) => Some(e.type_name()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec!["escalated", "run_finished"]);
    let finished = acts.iter().find_map(|a| match a {
        Action::Record(EventKind::RunFinished(f)) => Some(f.clone()),
        _ => None,
    });
    assert_eq!(
        finished.unwrap().elapsed_ms,
        1000,
        "the run's time is its last step's end"
    );
    assert!(acts.iter().any(|a| matches!(a, Action::Done(_))));
}

#[test]
fn a_gate_that_waits_pages_its_approvers_at_once() {
    // A role the escalation schedule does not name is paged the moment the gate waits.
    let unscheduled = GATE
        .replace("MIN", "2")
        .replace("escalation:\n  - { after: 10m, notify: lead }\n", "");
    let mut m = Machine::new(plan(&unscheduled), cfg(Mode::Real), Masker::default());
    let acts = m.handle(Duration::ZERO, Input::Start);
    let pages: Vec<(&str, &str, &str)> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Notify {
                channel,
                reason,
                message,
                ..
            } => Some((channel.as_str(), reason.as_str(), message.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(pages[0].0, "lead");
    assert_eq!(pages[0].1, "approval_requested");
    assert!(
        pages[0]
            .2
            .contains("gate `gate` waits for your approval (2 of lead): go?"),
        "{}",
        pages[0].2
    );
    assert!(
        pages[0].2.contains("runbook approve r1 gate --as NAME"),
        "{}",
        pages[0].2
    );
    // Approved at once with --yes in a drill: nobody to page.
    let mut c = cfg(Mode::Drill);
    c.auto_approve_as = Some("dave".into());
    let mut m = Machine::new(gate(1), c, Masker::default());
    let acts = m.handle(Duration::ZERO, Input::Start);
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::Notify { reason, .. } if reason == "approval_requested"))
    );
}

#[test]
fn ctrl_c_while_only_notifications_are_left_ends_the_run_as_it_ended() {
    let p = plan(
        "rto: 1m\nnotify:\n  lead: echo {{ message }}\nescalation:\n  - { after: 0s, notify: lead }\nsteps:\n  - { id: a, budget: 10s, run: a, drill: run }\n",
    );
    let mut m = Machine::new(p, cfg(Mode::Real), Masker::default());
    m.handle(Duration::ZERO, Input::Start);
    m.handle(s(1), exited(1, ExitResult::Code(0)));
    let acts = m.handle(s(2), Input::Interrupt);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Done(Outcome::Succeeded { .. }))),
        "{acts:?}"
    );
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::Record(EventKind::RunInterrupted(_))))
    );
}

#[test]
fn budgets_that_add_up_to_the_rto_exactly_are_not_at_risk_for_a_microsecond() {
    let p = plan(
        "rto: 2h\nsteps:\n  - { id: a, budget: 1h, run: a, drill: run }\n  - { id: b, needs: [a], budget: 1h, run: b, drill: run }\n",
    );
    // The engine starts the machine some microseconds after run_started: the first step
    // starts then, and "every budget used in full" ends that much after the target.
    let mut m = Machine::new(p, cfg(Mode::Real), Masker::default());
    let risk = |acts: &[Action]| {
        acts.iter()
            .any(|a| matches!(a, Action::Record(EventKind::RtoAtRisk(_))))
    };
    let acts = m.handle(Duration::from_micros(300), Input::Start);
    assert!(!risk(&acts), "at risk by 300 µs");
    let acts = m.handle(Duration::from_millis(1), Input::Tick);
    assert!(!risk(&acts), "at risk by 300 µs");
    // A millisecond late is late.
    let acts = m.handle(s(3600) + Duration::from_millis(2), Input::Tick);
    assert!(risk(&acts));
}

/// The late answer of an event, if it is one.
fn late(e: &EventKind) -> Option<&ApprovalLate> {
    match e {
        EventKind::ApprovalLate(l) => Some(l),
        _ => None,
    }
}

#[test]
fn a_deny_that_loses_the_race_to_an_approve_is_journaled_late_with_who_decided_and_when() {
    // It was rejected as "not waiting", and `runbook deny` was told the approval's verdict.
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    let epoch = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
        .unwrap()
        .to_utc();
    sim.m.set_epoch(epoch);
    sim.advance(s(300));
    sim.answer("gate", "alice", true);
    sim.advance(s(302));
    sim.feed(Input::Answer {
        step: "gate".into(),
        by: "bob".into(),
        approve: false,
        comment: Some("wait for the backup check".into()),
    });
    let lates: Vec<&ApprovalLate> = sim.events.iter().filter_map(|(_, e)| late(e)).collect();
    assert_eq!(
        lates,
        vec![&ApprovalLate {
            step: "gate".into(),
            by: "bob".into(),
            approve: false,
            comment: Some("wait for the backup check".into()),
            decided_by: vec!["alice".into()],
            decision: GateDecision::Approved,
            decided_ms: 300_000,
            reason: "already decided by alice (approved) at 2026-12-01 10:05:00 UTC".into(),
        }]
    );
    assert!(sim.at("approval_denied").is_empty());
    assert!(sim.at("approval_rejected").is_empty());
    assert_eq!(sim.spawned(), vec![(s(300), "after".into())]);
}

#[test]
fn an_answer_after_the_run_ended_is_journaled_late() {
    // A run that was over took no answer at all: it was lost without a word.
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    sim.advance(s(60));
    sim.answer("gate", "alice", false);
    assert!(matches!(sim.outcome, Some(Outcome::Failed { .. })));
    sim.advance(s(90));
    sim.answer("gate", "bob", true);
    let l = sim.events.iter().find_map(|(_, e)| late(e)).expect("late");
    assert_eq!(
        (l.by.as_str(), l.approve, l.decision, l.decided_ms),
        ("bob", true, GateDecision::Denied, 60_000)
    );
    assert_eq!(
        l.reason,
        "already decided by alice (denied) at +1m into the run"
    );
    assert!(sim.spawns.is_empty(), "a late approval starts nothing");
}

/// An answer handled after a run that succeeded ended it a second time: a late answer was
/// followed by another `run_finished`, which `verify` reads as a broken journal.
#[test]
fn an_answer_after_a_run_that_succeeded_does_not_end_it_again() {
    let mut sim = Sim::new(gate(1), cfg(Mode::Real));
    sim.advance(s(60));
    sim.answer("gate", "alice", true);
    sim.advance(s(90));
    sim.exit("after", 0);
    assert!(matches!(sim.outcome, Some(Outcome::Succeeded { .. })));
    sim.advance(s(120));
    sim.answer("gate", "bob", false);
    assert!(sim.events.iter().any(|(_, e)| late(e).is_some()));
    assert_eq!(sim.at("run_finished").len(), 1, "{:?}", sim.events);
}

/// Issue 13: every not-ready attempt of a `poll` step was journaled as a failure.
#[test]
fn a_poll_attempt_that_is_not_ready_is_journaled_as_such_not_as_a_failure() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, poll: { every: 30s, within: 2m } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(2));
    sim.exit("a", 1);
    let f = sim.finished("a");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].status, StepStatus::NotReady);
    assert!(f[0].will_retry);
    assert_eq!(f[0].next_in_ms, Some(30_000));
    sim.advance(s(32));
    sim.exit("a", 0);
    assert_eq!(sim.finished("a")[1].status, StepStatus::Succeeded);
    assert_eq!(sim.outcome, Some(Outcome::Succeeded { rto_met: true }));
}

/// Issue 13: only the window closing fails a poll step; its attempts before were not ready.
#[test]
fn a_poll_step_fails_only_when_its_window_closes() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 5m, run: a, drill: run, poll: { every: 10s, within: 25s } }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    for k in 0..2 {
        sim.exit("a", 3);
        sim.advance(s(10 * (k + 1)));
    }
    sim.exit("a", 3);
    let statuses: Vec<StepStatus> = sim.finished("a").iter().map(|f| f.status).collect();
    assert_eq!(
        statuses,
        vec![
            StepStatus::NotReady,
            StepStatus::NotReady,
            StepStatus::Failed
        ]
    );
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
                Action::Record(e) => events.push((now, e)),
                Action::Simulate {
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

/// Issue 13: every gate of every dry-run warned "80% of its budget": a gate in a dry-run
/// takes its estimate on the virtual clock, and no person is late.
#[test]
fn a_gate_in_a_dry_run_gives_no_budget_warning_or_breach() {
    let p = plan(
        "rto: 1h\nroles: { lead: [alice] }\nsteps:\n  - { id: a, budget: 1m, run: a, drill: run }\n  - { id: g, needs: [a], budget: 10m, estimate: 5m..12m..15m, approval: { prompt: go?, approvers: [lead] } }\n",
    );
    let events = dry_run(p);
    let budget: Vec<&EventKind> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| {
            matches!(e, EventKind::BudgetWarning(b) | EventKind::BudgetBreached(b) if b.step == "g")
        })
        .collect();
    assert!(budget.is_empty(), "{budget:?}");
    // It did take its estimate: the run ends at 1m + 12m.
    let end = events.iter().find_map(|(_, e)| match e {
        EventKind::RunFinished(f) => Some(f.elapsed_ms),
        _ => None,
    });
    assert_eq!(end, Some(13 * 60_000));
}

/// The same dry-run still watches a command step's budget: it is the plan's estimate overrunning.
#[test]
fn a_command_step_in_a_dry_run_still_breaches_its_budget() {
    let p = plan(
        "rto: 1h\nsteps:\n  - { id: a, budget: 1m, estimate: 1m..2m..3m, run: a, drill: run }\n",
    );
    let events = dry_run(p);
    assert!(
        events
            .iter()
            .any(|(t, e)| matches!(e, EventKind::BudgetBreached(b) if b.step == "a") && *t > s(60)),
        "{events:?}"
    );
}

/// Issue 13: a drill projected its finish on the drill's clock, where a mocked step takes no
/// time, so it understated what a real run would take (and never saw the RTO at risk).
#[test]
fn a_drill_projects_a_real_runs_finish_with_drill_speed_steps_at_real_speed() {
    let p = plan(
        "rto: 45m\nsteps:\n  - { id: a, budget: 40m, estimate: 30m..40m..40m, run: a, drill: mock }\n  - { id: b, needs: [a], budget: 10m, run: b, drill: { run: b-drill } }\n  - { id: c, needs: [b], budget: 5m, run: c, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Drill));
    // The RTO is at risk from the start, as in a real run; `a` is mocked at once, and still
    // counts for its 40m estimate before b's and c's budgets.
    assert_eq!(sim.m.projected_finish(sim.now), s(55 * 60));
    let risk: Vec<&RtoAtRisk> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            EventKind::RtoAtRisk(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(risk.len(), 1, "{:?}", sim.events);
    assert_eq!(risk[0].projected_ms, 55 * 60_000);
    assert_eq!(risk[0].path, ["a", "b", "c"]);
    // b's drill variant takes 2s: a real b is still its budget (10m) until it ends, and then
    // its estimate; c's real command counts what it takes.
    sim.advance(s(2));
    sim.exit("b", 0);
    assert_eq!(sim.m.projected_finish(sim.now), s(55 * 60));
    sim.advance(s(9));
    assert_eq!(sim.m.projected_finish(sim.now), s(55 * 60));
    sim.exit("c", 0);
    assert_eq!(sim.m.projected_finish(sim.now), s(50 * 60 + 7));
}

/// The plan's escalation path (on-call 0–30, DevOps lead 30–60, CTO 60+), a gate for all three
/// after a 10-minute step, and what `page_after` (if any) the gate says.
fn escalation_path_gate(rto: &str, page_after: &str) -> Arc<Plan> {
    plan(&format!(
        "rto: {rto}\nroles:\n  on-call: [alice]\n  devops-lead: [bob]\n  cto: [carol]\n\
         notify:\n  on-call: echo {{{{ message }}}}\n  devops-lead: echo {{{{ message }}}}\n  cto: echo {{{{ message }}}}\n\
         escalation:\n  - {{ after: 0s, notify: on-call }}\n  - {{ after: 30m, notify: devops-lead }}\n  - {{ after: 60m, notify: cto }}\n\
         steps:\n  - {{ id: a, budget: 10m, run: a, drill: run }}\n\
         \x20 - id: gate\n    needs: [a]\n    budget: 1h\n\
         \x20   approval: {{ prompt: go?, approvers: [on-call, devops-lead, cto], timeout: 3h{page_after} }}\n"
    ))
}

impl Sim {
    /// The gate's pages: (when, to whom).
    fn pages(&self) -> Vec<(Duration, String)> {
        self.notifies
            .iter()
            .filter(|(_, _, reason)| reason == "approval_requested")
            .map(|(t, channel, _)| (*t, channel.clone()))
            .collect()
    }
}

/// region-failure's gate paged the CTO at minute 0 (of the gate), against the plan's
/// escalation path: each role is paged when its time on the path comes, never before.
#[test]
fn a_waiting_gate_pages_its_approver_roles_in_escalation_order() {
    let mut sim = Sim::new(escalation_path_gate("3h", ""), cfg(Mode::Real));
    sim.advance(s(600));
    sim.exit("a", 0);
    assert_eq!(sim.pages(), vec![(s(600), "on-call".into())]);
    sim.advance(s(30 * 60 - 1));
    assert_eq!(sim.pages().len(), 1, "{:?}", sim.pages());
    sim.advance(s(61 * 60));
    assert_eq!(
        sim.pages(),
        vec![
            (s(600), "on-call".into()),
            (s(1800), "devops-lead".into()),
            (s(3600), "cto".into())
        ]
    );
}

/// A gate decided before a role's time never pages that role.
#[test]
fn a_gate_answered_before_a_roles_time_never_pages_it() {
    let mut sim = Sim::new(escalation_path_gate("3h", ""), cfg(Mode::Real));
    sim.advance(s(600));
    sim.exit("a", 0);
    sim.advance(s(20 * 60));
    sim.answer("gate", "alice", true);
    sim.advance(s(2 * 3600));
    assert_eq!(sim.pages(), vec![(s(600), "on-call".into())]);
}

/// `page_after:` on the gate says when, counted from the gate's wait, for the roles it names.
#[test]
fn page_after_pages_a_role_that_long_into_the_gates_wait() {
    let mut sim = Sim::new(
        escalation_path_gate("3h", ", page_after: { cto: 5m, devops-lead: 40m }"),
        cfg(Mode::Real),
    );
    sim.advance(s(600));
    sim.exit("a", 0);
    sim.advance(s(2 * 3600));
    assert_eq!(
        sim.pages(),
        vec![
            (s(600), "on-call".into()),
            (s(900), "cto".into()),
            (s(3000), "devops-lead".into())
        ]
    );
}

/// An escalation sent early because the RTO is at risk brings its role's page forward.
#[test]
fn a_role_escalated_early_for_the_rto_is_paged_at_once() {
    // 10m + a 1h gate cannot fit 40m: at risk from the start, so the DevOps lead is called.
    let mut sim = Sim::new(escalation_path_gate("40m", ""), cfg(Mode::Real));
    assert!(
        sim.notifies
            .iter()
            .any(|n| n.1 == "devops-lead" && n.2 == "rto_at_risk"),
        "{:?}",
        sim.notifies
    );
    sim.advance(s(600));
    sim.exit("a", 0);
    sim.advance(s(3599));
    assert_eq!(
        sim.pages(),
        vec![(s(600), "on-call".into()), (s(600), "devops-lead".into())]
    );
}

/// A dry-run journals who its gates would page, and when (not sent): the rehearsal shows
/// the escalation path.
#[test]
fn a_dry_run_gate_pages_on_the_escalation_path() {
    let mut sim = Sim::new(escalation_path_gate("3h", ""), cfg(Mode::DryRun));
    // The executor ends a simulated step when its time is up; here the test does.
    sim.advance(s(600));
    sim.feed(exited(1, ExitResult::Code(0)));
    sim.advance(s(61 * 60));
    assert_eq!(
        sim.pages(),
        vec![
            (s(600), "on-call".into()),
            (s(1800), "devops-lead".into()),
            (s(3600), "cto".into())
        ]
    );
}

/// Issue 14: a restore, the check that service answers (`rto_ends_at`), then an hour of
/// watching. Without `rto_ends_at` the 2h watch alone is over the 1h RTO.
const OBSERVED: &str = "rto: 1h\nrto_ends_at: verify\nnotify:\n  lead: echo {{ message }}\n\
     escalation:\n  - { after: 50m, notify: lead }\n\
     steps:\n  - { id: restore, budget: 20m, run: r, drill: run }\n  \
     - { id: verify, needs: [restore], budget: 5m, run: v, drill: mock }\n  \
     - { id: monitor, needs: [verify], budget: 2h, run: m, drill: run }\n";

/// Issue 14: region-failure counted an hour of monitoring inside its RTO, so a recovery in
/// 21 minutes read as a near miss and the watch put the RTO at risk.
#[test]
fn the_rto_clock_stops_when_the_rto_step_succeeds_and_the_observation_is_apart() {
    let mut sim = Sim::new(plan(OBSERVED), cfg(Mode::Real));
    assert!(
        sim.at("rto_at_risk").is_empty(),
        "2h of watching is not recovery"
    );
    sim.advance(s(20 * 60));
    sim.exit("restore", 0);
    sim.advance(s(21 * 60 + 4));
    sim.exit("verify", 0);
    // An hour of observation, past the RTO and the lead's escalation time: neither fires.
    sim.advance(s(81 * 60 + 4));
    sim.exit("monitor", 0);
    assert!(
        sim.at("rto_at_risk").is_empty(),
        "{:?}",
        sim.at("rto_at_risk")
    );
    assert!(sim.notifies.is_empty(), "{:?}", sim.notifies);
    assert_eq!(sim.outcome, Some(Outcome::Succeeded { rto_met: true }));
    let f = sim.run_finished();
    assert_eq!(f.elapsed_ms, (81 * 60 + 4) * 1000);
    assert_eq!(f.recovery_ms, Some((21 * 60 + 4) * 1000));
    assert_eq!(f.observation_ms, Some(60 * 60 * 1000));
    assert!(f.recovered_within_rto());
    assert_eq!(f.judged_ms(), (21 * 60 + 4) * 1000);
}

/// Before service is restored the clock runs as ever, on the path to the RTO step only.
#[test]
fn before_the_rto_step_the_projection_counts_the_path_to_it_only() {
    let p = plan(
        "rto: 1h\nrto_ends_at: verify\nsteps:\n  - { id: restore, budget: 50m, run: r, drill: run }\n  \
         - { id: verify, needs: [restore], budget: 9m, run: v, drill: run }\n  \
         - { id: monitor, needs: [verify], budget: 2h, run: m, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    // 50m + 9m fits; restore overruns, and just after +51m the projection to verify passes 1h.
    sim.advance(s(51 * 60));
    assert!(sim.at("rto_at_risk").is_empty());
    sim.advance(s(52 * 60));
    let just_after = s(51 * 60) + Duration::from_millis(1);
    assert_eq!(sim.at("rto_at_risk")[0].0, just_after);
    let risk = sim
        .events
        .iter()
        .find_map(|(_, e)| match e {
            EventKind::RtoAtRisk(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(risk.projected_ms, 60 * 60 * 1000 + 1);
    assert_eq!(risk.path, vec!["verify".to_owned()]);
}

/// Issue 14: a failure while watching is no recovery: service came back and did not hold.
#[test]
fn a_failure_during_observation_fails_the_run_and_keeps_when_service_was_restored() {
    let mut sim = Sim::new(plan(OBSERVED), cfg(Mode::Real));
    sim.advance(s(10 * 60));
    sim.exit("restore", 0);
    sim.exit("verify", 0);
    sim.advance(s(40 * 60));
    sim.exit("monitor", 1);
    assert_eq!(sim.outcome, Some(Outcome::Failed { rto_met: false }));
    let f = sim.run_finished();
    assert_eq!(f.failed_at.as_deref(), Some("monitor"));
    assert_eq!(f.recovery_ms, Some(10 * 60 * 1000));
    assert!(!f.recovered_within_rto());
}

/// A recovery past the target is missed, measured at the RTO step, whatever the observation.
#[test]
fn a_recovery_past_the_target_misses_the_rto_at_the_rto_step() {
    let mut sim = Sim::new(plan(OBSERVED), cfg(Mode::Real));
    sim.advance(s(70 * 60));
    sim.exit("restore", 0);
    sim.exit("verify", 0);
    sim.advance(s(75 * 60));
    sim.exit("monitor", 0);
    assert_eq!(sim.outcome, Some(Outcome::Succeeded { rto_met: false }));
    assert_eq!(sim.run_finished().recovery_ms, Some(70 * 60 * 1000));
    assert_eq!(sim.run_finished().observation_ms, Some(5 * 60 * 1000));
}

/// Issue 14: a drill in a rehearsal environment runs the real command of a `mock` step; any
/// other drill simulates it.
#[test]
fn a_rehearsal_drill_runs_a_mocked_steps_real_command_and_measures_it() {
    let p = plan(OBSERVED);
    let mut plain = Sim::new(p.clone(), cfg(Mode::Drill));
    plain.exit("restore", 0);
    assert_eq!(plain.finished("verify")[0].status, StepStatus::Simulated);
    assert!(!plain.spawned().iter().any(|(_, id)| id == "verify"));

    let mut sim = Sim::new(
        p,
        Config {
            rehearsal: true,
            ..cfg(Mode::Drill)
        },
    );
    sim.advance(s(60));
    sim.exit("restore", 0);
    assert_eq!(sim.spawned().last().unwrap(), &(s(60), "verify".to_owned()));
    let started = sim
        .events
        .iter()
        .find_map(|(_, e)| match e {
            EventKind::StepStarted(st) if st.step == "verify" => Some(st.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(started.how, "rehearsal");
    assert_eq!(started.command.as_deref(), Some("v"));
    sim.advance(s(100));
    sim.exit("verify", 0);
    sim.advance(s(200));
    sim.exit("monitor", 0);
    // Measured, as a `drill: run` step is: restore's 60s and verify's 40s, not the estimate.
    let f = sim.run_finished();
    assert_eq!(f.projected_ms, Some(100_000));
    assert_eq!(f.recovery_ms, Some(100_000));
}
