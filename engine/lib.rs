//! `runbook`: a disaster-recovery runbook engine.
//!
//! Data flows one way: YAML → [`runbook`] → [`compile::Plan`] → events ([`exec`]) →
//! [`journal`] → [`report`]. Everything but the executor is synchronous and pure.

pub mod cli;
pub mod compile;
pub mod diag;
pub mod exec;
pub mod journal;
pub mod project;
pub mod report;
pub mod runbook;
pub mod schema;
pub mod simulate;
pub mod state;
pub mod template;
pub mod units;
