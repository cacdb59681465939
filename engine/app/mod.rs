//! The use cases: run, resume, status, approve/deny, verify, report, history and export, as
//! functions the command line calls. They own what a command does to a run; `cli` owns
//! parsing its arguments, rendering and the exit code.

pub mod live;
pub mod run;
pub mod runs;
