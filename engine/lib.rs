//! `runbook`: a disaster-recovery runbook engine.
//!
//! Data flows one way: YAML → [`runbook`] → [`compile::Plan`] → events ([`exec`]) →
//! [`journal`] → [`report`]. Everything but the executor is synchronous and pure.

pub mod cli;
pub mod compile;
pub mod diag;
pub mod project;
pub mod runbook;
pub mod schema;
pub mod template;
pub mod units;
