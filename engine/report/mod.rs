//! Reports: a run's journal, replayed into [`RunState`](crate::journal::RunState), made into
//! the forms reviewers and machines read — pure functions of the journal.
//!
//! [`figures`] reads the run's figures from its replayed state; [`model`] gathers them, once,
//! into the [`RunReport`] every form renders: [`json`] (the wire format), [`markdown`],
//! [`html`] and [`junit`], which compute nothing of their own. [`history`] looks across runs.

pub mod calls;
pub mod figures;
pub mod gantt;
pub mod history;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod model;
mod skips;
mod verdict;
mod words;

pub use figures::*;
pub use json::{REPORT_VERSION, json_report};
pub use model::{RunProgress, RunReport, StepProgress, StepReport};
pub use skips::why_not_run;
pub use verdict::RtoVerdict;
pub use words::REHEARSED;
