//! The supervisor's protocol: the engine's requests on its stdin and its events on its stdout,
//! one JSON object a line (docs/design.md, "The step supervisor").

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the engine asks for: run this command as step attempt `key`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub key: String,
    pub step: usize,
    pub command: String,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// What the supervisor tells the engine.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The step's process group is `pid`.
    Pid { key: String, pid: u32 },
    /// A line the step printed, masked.
    Line { step: usize, text: String },
    /// The step ended (its group too): its exit code, or the signal that ended it; code 127
    /// when it could not be started.
    Exit {
        key: String,
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// Environment variable naming the secrets (comma-separated names) whose values to mask.
pub const SECRET_NAMES: &str = "RUNBOOK_SECRET_NAMES";
