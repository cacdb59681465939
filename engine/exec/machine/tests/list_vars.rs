//! List variables on the virtual clock: a step's templates see one as a list, and a loop over
//! one has an instance per item of the run's value.

use super::*;

#[test]
fn a_list_variable_is_a_list_in_templates_and_conditions() {
    let plan = plan(
        "rto: 1h\nvars: { regions: [a, b] }\nsteps:\n  \
         - { id: sync, for_each: \"{{ regions }}\", budget: 10m, \
         run: \"sync {{ item }} of {{ regions | join(' ') }} ({{ regions | length }})\", drill: run }\n  \
         - { id: only-b, when: \"'b' in regions\", budget: 10m, run: \"b\", drill: run }\n",
    );
    let mut cfg = cfg(Mode::Real);
    cfg.vars = plan.vars.clone();
    let sim = Sim::new(plan, cfg);
    let commands: Vec<&str> = sim.spawns.iter().map(|x| x.3.as_str()).collect();
    assert_eq!(
        commands,
        ["sync a of 'a b' (2)", "sync b of 'a b' (2)", "b"]
    );
}
