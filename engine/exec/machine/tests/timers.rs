//! The clock on a virtual clock: budgets, timeouts, escalations and the RTO at risk, each
//! at its exact instant.

use super::*;

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
                Effect::Notify { message, .. } => Some(message.clone()),
                _ => None,
            })
            .unwrap();
        assert!(msg.starts_with(tag), "{msg}");
    }
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
            Effect::Notify {
                channel,
                reason,
                message,
                ..
            } => Some((channel.clone(), *reason, message.clone())),
            _ => None,
        })
        .expect("the 0s escalation");
    let acts = m.handle(s(1), exited(1, ExitResult::Code(0)));
    assert!(
        !acts.iter().any(|a| matches!(a, Effect::Done(_))),
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
            Effect::Record(e) => Some(e.type_name()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec!["escalated", "run_finished"]);
    let finished = acts.iter().find_map(|a| match a {
        Effect::Record(EventKind::RunFinished(f)) => Some(f.clone()),
        _ => None,
    });
    assert_eq!(
        finished.unwrap().elapsed_ms,
        1000,
        "the run's time is its last step's end"
    );
    assert!(acts.iter().any(|a| matches!(a, Effect::Done(_))));
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
            .any(|a| matches!(a, Effect::Done(Outcome::Succeeded { .. }))),
        "{acts:?}"
    );
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Effect::Record(EventKind::RunInterrupted(_))))
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
    let risk = |acts: &[Effect]| {
        acts.iter()
            .any(|a| matches!(a, Effect::Record(EventKind::RtoAtRisk(_))))
    };
    let acts = m.handle(Duration::from_micros(300), Input::Start);
    assert!(!risk(&acts), "at risk by 300 µs");
    let acts = m.handle(Duration::from_millis(1), Input::Tick);
    assert!(!risk(&acts), "at risk by 300 µs");
    // A millisecond late is late.
    let acts = m.handle(s(3600) + Duration::from_millis(2), Input::Tick);
    assert!(risk(&acts));
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
