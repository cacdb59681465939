//! Sub-runbooks on the virtual clock: a called runbook's steps start when the call's needs
//! have ended, render in their own runbook's scope (its vars as the call's `with:` set them,
//! their siblings by their own ids), and the steps needing the call wait for its last step.

use super::*;

const RESTORE: &str = "scenario: restore\ntitle: Restore\nrto: 30m\nvars:\n  target: latest\nsteps:\n  - { id: fetch, budget: 1m, run: \"fetch {{ target }}\", drill: run }\n  - { id: load, needs: [fetch], budget: 1m, run: \"load {{ steps.fetch.outputs.file }}\", drill: run }\n  - { id: side, budget: 1m, run: \"side {{ target }}\", drill: run }\n";

/// A plan of `caller` in a project whose `runbooks/` also holds the restore runbook.
fn plan_calling(caller: &str) -> (Arc<Plan>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("runbooks")).unwrap();
    std::fs::write(dir.path().join("runbooks/restore.yaml"), RESTORE).unwrap();
    let path = dir.path().join("runbooks/caller.yaml");
    std::fs::write(&path, format!("scenario: caller\ntitle: C\n{caller}")).unwrap();
    let (plan, problems) = compile::compile_file(
        &Project::at(dir.path()),
        &path,
        &mut Library::new(),
        Default::default(),
    );
    (Arc::new(plan.unwrap_or_else(|| panic!("{problems}"))), dir)
}

#[test]
fn a_called_runbook_runs_in_its_own_scope_between_the_calls_needs_and_dependents() {
    let (p, _dir) = plan_calling(
        "rto: 1h\nvars:\n  day: monday\nsteps:\n  - { id: freeze, budget: 1m, run: freeze, drill: run }\n  - { id: rs, needs: [freeze], runbook: restore, with: { target: \"{{ day }}-dump\" } }\n  - { id: after, needs: [rs], budget: 1m, run: \"after {{ steps['rs.load'].outputs.n }}\", drill: run }\n",
    );
    let ids: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["freeze", "rs.fetch", "rs.load", "rs.side", "after"]);
    // The driver gives the machine the run's vars: the defaults, then `--var`.
    let vars = BTreeMap::from([("day".to_owned(), "monday".to_owned())]);
    let mut sim = Sim::new(
        p,
        Config {
            vars,
            ..cfg(Mode::Real)
        },
    );
    assert_eq!(sim.spawned(), vec![(s(0), "freeze".to_owned())]);
    sim.advance(s(10));
    sim.exit("freeze", 0);
    // The called roots start with the call's need met, in their runbook's vars.
    assert_eq!(
        sim.spawned()[1..],
        [
            (s(10), "rs.fetch".to_owned()),
            (s(10), "rs.side".to_owned())
        ]
    );
    assert_eq!(sim.spawns[1].3, "fetch monday-dump");
    assert_eq!(sim.spawns[2].3, "side monday-dump");
    sim.advance(s(20));
    sim.feed(Input::Exited {
        step: 1,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("file".into(), "f.sql".into())]),
    });
    // `steps.fetch` in the called runbook is this run's `rs.fetch`.
    assert_eq!(
        sim.spawned().last().unwrap(),
        &(s(20), "rs.load".to_owned())
    );
    assert_eq!(sim.spawns[3].3, "load f.sql");
    sim.advance(s(30));
    sim.feed(Input::Exited {
        step: 2,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("n".into(), "7".into())]),
    });
    // `after` needs the whole call: `rs.side` is still running.
    assert!(!sim.spawned().iter().any(|(_, id)| id == "after"));
    sim.advance(s(40));
    sim.exit("rs.side", 0);
    assert_eq!(sim.spawned().last().unwrap(), &(s(40), "after".to_owned()));
    assert_eq!(sim.spawns[4].3, "after 7");
}

/// The group's budget events, as (instant, call, runbook, elapsed).
fn group_events(sim: &Sim) -> Vec<(Duration, &'static str, String, String, u64)> {
    sim.events
        .iter()
        .filter_map(|(t, e)| match e {
            EventKind::BudgetWarning(b) if b.runbook.is_some() => Some((
                *t,
                "warning",
                b.step.clone(),
                b.runbook.clone()?,
                b.elapsed_ms,
            )),
            EventKind::BudgetBreached(b) if b.runbook.is_some() => Some((
                *t,
                "breached",
                b.step.clone(),
                b.runbook.clone()?,
                b.elapsed_ms,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_calls_group_warns_at_80_percent_and_breaches_past_its_budget_from_its_first_start() {
    let (p, _dir) = plan_calling(
        "rto: 1h\nsteps:\n  - { id: freeze, budget: 1m, run: freeze, drill: run }\n  - { id: rs, needs: [freeze], runbook: restore, budget: 2m }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(10));
    sim.exit("freeze", 0);
    // The group starts with its first step at +10s: 80% of 2m is at +1m46s.
    sim.advance(s(50));
    sim.exit("rs.side", 0);
    sim.advance(s(70));
    sim.feed(Input::Exited {
        step: 1,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("file".into(), "f.sql".into())]),
    });
    sim.advance(s(300));
    let ms = Duration::from_millis;
    assert_eq!(
        group_events(&sim),
        vec![
            (
                ms(106_000),
                "warning",
                "rs".into(),
                "restore".into(),
                96_000
            ),
            (
                ms(130_001),
                "breached",
                "rs".into(),
                "restore".into(),
                120_001
            ),
        ],
        "once each, the group timed from its first step's start"
    );
    sim.exit("rs.load", 0);
    assert!(sim.m.next_wake().is_none_or(|w| w > s(300)));
    assert_eq!(group_events(&sim).len(), 2);
}

#[test]
fn a_group_that_ends_within_its_budget_says_nothing() {
    let (p, _dir) = plan_calling(
        "rto: 1h\nsteps:\n  - { id: rs, runbook: restore, budget: 10m }\n  - { id: after, needs: [rs], budget: 20m, run: after, drill: run }\n",
    );
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(30));
    sim.feed(Input::Exited {
        step: 0,
        attempt: 1,
        result: ExitResult::Code(0),
        outputs: BTreeMap::from([("file".into(), "f.sql".into())]),
    });
    sim.exit("rs.side", 0);
    sim.exit("rs.load", 0);
    assert_eq!(sim.spawned().last(), Some(&(s(30), "after".to_owned())));
    // `after` runs on long past the group's budget: the group ended at +30s.
    sim.advance(s(1200));
    assert_eq!(group_events(&sim), vec![]);
}

#[test]
fn rto_ends_at_a_called_step_stops_the_rto_clock_when_it_succeeds() {
    let (p, _dir) = plan_calling(
        "rto: 1h\nrto_ends_at: rs.fetch\nsteps:\n  - { id: rs, runbook: restore }\n  - { id: after, needs: [rs], budget: 1m, run: after, drill: run }\n",
    );
    assert_eq!(p.steps[p.rto_ends_at.unwrap()].id, "rs.fetch");
    let mut sim = Sim::new(p, cfg(Mode::Real));
    sim.advance(s(20));
    sim.exit("rs.fetch", 0);
    assert_eq!(sim.m.restored, Some(s(20)), "service restored at rs.fetch");
}

/// A resumed run keeps its group's clock: from the group's first start as journaled, its
/// warning not said twice, its breach at the same instant.
#[test]
fn a_resumed_run_keeps_the_groups_clock_and_what_it_said() {
    use super::restore::{replayed, resumed};
    let (p, _dir) = plan_calling(
        "rto: 1h\nsteps:\n  - { id: freeze, budget: 1m, run: freeze, drill: run }\n  - { id: rs, needs: [freeze], runbook: restore, budget: 2m }\n",
    );
    let mut sim = Sim::new(p.clone(), cfg(Mode::Real));
    sim.advance(s(10));
    sim.exit("freeze", 0);
    sim.advance(s(110));
    sim.feed(Input::Interrupt);
    for id in ["rs.fetch", "rs.side"] {
        let i = p.step_index(id).unwrap();
        sim.feed(Input::Exited {
            step: i,
            attempt: 1,
            result: ExitResult::Signal(15),
            outputs: BTreeMap::new(),
        });
    }
    assert_eq!(sim.outcome, Some(Outcome::Stopped));
    assert_eq!(group_events(&sim).len(), 1, "warned at +1m46s");
    let mut again = resumed(p, &replayed(&sim), s(115));
    again.advance(s(200));
    assert_eq!(
        group_events(&again),
        vec![(
            Duration::from_millis(130_001),
            "breached",
            "rs".into(),
            "restore".into(),
            120_001
        )]
    );
}
