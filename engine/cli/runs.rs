//! Commands that read runs from the state folder: `verify`, `report`.

use std::path::PathBuf;

use super::exit;
use crate::journal::{self, RunState};
use crate::state::StateDir;

pub fn find(state: &StateDir, run: Option<&str>, last: bool) -> Result<String, u8> {
    let arg = match (run, last) {
        (Some(r), _) => r,
        (None, true) => "last",
        (None, false) => {
            eprintln!("error: name a run, or pass --last");
            return Err(exit::USAGE);
        }
    };
    state.find_run(arg).map_err(|e| {
        eprintln!("error: {e}");
        exit::USAGE
    })
}

pub fn verify(run: &str, state_dir: Option<PathBuf>) -> u8 {
    let state = StateDir::resolve(state_dir);
    let Ok(id) = find(&state, Some(run), false) else {
        return exit::USAGE;
    };
    let path = state.journal(&id);
    match journal::verify(&path) {
        Ok(v) => match v.first_bad {
            None => {
                let torn = if v.torn_tail {
                    "; its last line was cut short by a crash (resume cuts it off)"
                } else {
                    ""
                };
                println!("ok: {} records, hash chain intact{torn}", v.records);
                exit::OK
            }
            Some((seq, line, why)) => {
                println!("BROKEN at seq {seq} (line {line}): {why}");
                println!("{} records before it verify", v.records);
                exit::FAILED
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

/// Reads and verifies a run's journal; a broken chain is reported and refused.
pub fn load_state(state: &StateDir, id: &str) -> Result<RunState, u8> {
    match journal::read_verified(&state.journal(id)) {
        Ok((records, _)) => Ok(RunState::replay(&records)),
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "help: `runbook verify {id}` shows where; reports are made only from an intact journal"
            );
            Err(exit::FAILED)
        }
    }
}

pub fn report(
    run: Option<&str>,
    last: bool,
    format: super::ReportFormat,
    out: Option<PathBuf>,
    state_dir: Option<PathBuf>,
) -> u8 {
    let state = StateDir::resolve(state_dir);
    let Ok(id) = find(&state, run, last) else {
        return exit::USAGE;
    };
    let Ok(rs) = load_state(&state, &id) else {
        return exit::FAILED;
    };
    let text = match format {
        super::ReportFormat::Json => {
            serde_json::to_string_pretty(&crate::report::json_report(&rs)).expect("json") + "\n"
        }
    };
    match out {
        Some(p) => {
            if let Err(e) = std::fs::write(&p, text) {
                eprintln!("error: cannot write {}: {e}", p.display());
                return exit::FAILED;
            }
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    exit::OK
}
