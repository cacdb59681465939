//! `runbook`: a disaster-recovery runbook engine.
//!
//! Data flows one way: YAML → [`format`](mod@format) → [`compile::Plan`] → events ([`exec`]) →
//! [`journal`] → [`report`]. Everything but the executor is synchronous and pure. The use
//! cases ([`app`]) drive that flow; the command line ([`cli`]) parses, calls them and renders.
//! The modules are in layers that only point down, from the leaves ([`units`], [`dag`],
//! [`digest`], [`span`], [`diag`], [`signing`]) to [`cli`]: docs/design.md ("Layers") lists them, and
//! tests/it/layers.rs fails on an edge that points up or a cycle.

/// `print!`, `println!`, `eprint!` and `eprintln!` that never panic, shadowing std's across the crate. `run` and
/// `resume` ignore SIGPIPE, so that a reader that goes away (`runbook run … | head`, a dropped
/// terminal) cannot kill the engine and orphan its steps; a write to a closed stdout or stderr
/// then fails with EPIPE, on which std's macros panic, ending a run that had succeeded with
/// exit 101. Here the write is dropped. The other commands die of SIGPIPE quietly, as before.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! eprint {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

// Where input reaches, no index or slice may panic (issue 15): the runbook's YAML (`format`),
// the Doc → Plan compiler, templates, positions and diagnostics over that text, durations, the
// digests, and a journal file that may have been edited by hand or by an attacker (the lint is
// on in journal/{read,verify,writer,replay}.rs, not in the event types). There a bad offset or a
// multi-byte character must become an error, never exit 101. The machine, the report and the
// UI index into the plan they were given, whose indices the compiler built and checked: a
// panic there is a bug in the engine, not hostile input, so they stay free to index.
pub mod app;
pub mod cli;
#[deny(clippy::indexing_slicing, clippy::string_slice)]
pub mod compile;
pub mod dag;
#[deny(clippy::indexing_slicing, clippy::string_slice)]
pub mod diag;
#[deny(clippy::indexing_slicing, clippy::string_slice)]
pub mod digest;
pub mod exec;
#[deny(clippy::indexing_slicing, clippy::string_slice)]
pub mod format;
pub mod journal;
pub mod project;
pub mod report;
pub mod schema;
#[deny(clippy::indexing_slicing, clippy::string_slice)]
pub mod signing;
pub mod simulate;
#[deny(clippy::indexing_slicing, clippy::string_slice)]
pub mod span;
pub mod state;
#[deny(clippy::indexing_slicing, clippy::string_slice)]
pub mod template;
pub mod ui;
#[deny(clippy::indexing_slicing, clippy::string_slice)]
pub mod units;
