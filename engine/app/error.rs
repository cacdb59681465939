//! What a use case says when it cannot do what was asked: an [`Error`] whose kind the CLI
//! maps to an exit code, carrying what the operator is told ([`Said`]) in the order it is said.

use std::fmt;

use crate::diag::{Problem, Problems};

/// Why a use case stopped short. The kind is what the exit code is picked from; the words
/// are the same whichever command said them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Asked for what cannot be done as asked: an argument, a file or the run's state is
    /// wrong, and fixing it is the operator's move.
    #[error("{0}")]
    Usage(Said),
    /// Tried, and it did not work, or the evidence it rests on is in doubt.
    #[error("{0}")]
    Failed(Said),
    /// The run is stopped and waits for the operator's word before it can go on.
    #[error("{0}")]
    Stopped(Said),
}

impl Error {
    pub fn usage(said: impl Into<Said>) -> Self {
        Error::Usage(said.into())
    }
    pub fn failed(said: impl Into<Said>) -> Self {
        Error::Failed(said.into())
    }
    pub fn stopped(said: impl Into<Said>) -> Self {
        Error::Stopped(said.into())
    }
    pub fn said(&self) -> &Said {
        match self {
            Error::Usage(s) | Error::Failed(s) | Error::Stopped(s) => s,
        }
    }
}

/// What the operator is told, in order: diagnostics (rendered with file, line and help) and
/// plain `error:` and `help:` lines. Plain lines stay plain: scripts and tests read them.
#[derive(Debug, Default)]
pub struct Said(pub Vec<Saying>);

#[derive(Debug)]
pub enum Saying {
    Problems(Problems),
    /// Shown as `error: …`.
    Error(String),
    /// Shown as `help: …`.
    Help(String),
}

impl Said {
    /// One `error: …` line.
    pub fn error(message: impl Into<String>) -> Self {
        Said(vec![Saying::Error(message.into())])
    }
    /// Another `error: …` line after what is said already.
    pub fn and_error(mut self, message: impl Into<String>) -> Self {
        self.0.push(Saying::Error(message.into()));
        self
    }
    /// A `help: …` line after what is said already.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.0.push(Saying::Help(help.into()));
        self
    }
}

impl From<Problem> for Said {
    fn from(p: Problem) -> Self {
        Said(vec![Saying::Problems(p.into())])
    }
}

impl From<Problems> for Said {
    fn from(p: Problems) -> Self {
        Said(vec![Saying::Problems(p)])
    }
}

impl From<Problem> for Error {
    /// A problem with what was asked: a usage error.
    fn from(p: Problem) -> Self {
        Error::Usage(p.into())
    }
}

impl fmt::Display for Said {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.0 {
            match s {
                Saying::Problems(p) => write!(f, "{p}")?,
                Saying::Error(m) => writeln!(f, "error: {m}")?,
                Saying::Help(h) => writeln!(f, "help: {h}")?,
            }
        }
        Ok(())
    }
}
