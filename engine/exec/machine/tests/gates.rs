//! Gates: answers that count, those rejected or late, and who is paged when.

use super::*;

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
            Effect::Notify {
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
            .any(|a| matches!(a, Effect::Notify { reason, .. } if *reason == EscalationReason::ApprovalRequested))
    );
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
        value: None,
        signed: None,
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
