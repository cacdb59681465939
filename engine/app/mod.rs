//! The use cases: run, resume, status, approve/deny, verify, report, history and export, as
//! functions that take typed arguments and return values or an [`Error`]. They own what a
//! command does to a run; `cli` owns parsing its arguments, printing and the exit code.

pub mod answer;
pub mod done;
pub mod error;
pub mod find;
pub mod lists;
pub mod resume;
pub mod run;
pub mod runs;
pub mod signers;
pub mod status;
pub mod unfinished;

pub use error::Error;
