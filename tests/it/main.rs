//! The integration tests: one test binary, one module per concern, all driving the real
//! `runbook` binary through [`support`].
//!
//! One binary rather than one per file: each test executable links the whole library and its
//! dependencies again, and on a 2-core machine that linking dominated the build. Run one
//! module with a filter: `cargo test --test it run::` (or `tests/suite.sh --test it run::`).
//! Snapshots live in `snapshots/`, named `it__<module>__<test>.snap` after the module path.

mod support;

mod attack17;
mod calls;
mod choices;
mod compile_rules;
mod conditions;
mod design_doc;
mod drills;
mod drills_and_reports;
mod failover;
mod finally;
mod fleet;
mod gate_races;
mod gates_and_resume;
mod hostile_input;
mod integrity;
mod layers;
mod list_loops;
mod loader_fuzz;
mod loops;
mod manual_step;
mod operator_input;
mod output_hostile;
mod output_loops;
mod own_sandbox;
mod pitr;
mod plan;
mod process_groups;
mod real_systems;
mod rehearsal_and_rto;
mod report_words;
mod run;
mod scenario_attacks;
mod scenario_flow;
mod schema;
mod signed_attacks;
mod signed_check;
mod signed_gates;
mod signed_journal;
mod ssh_fanout;
mod template_limits;
mod verdicts;
mod views;
mod wire;
