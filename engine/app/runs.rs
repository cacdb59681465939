//! Commands that read runs from the state folder: `verify`, `report`.

use std::path::PathBuf;

use crate::cli::{HistoryFormat, ReportFormat, exit};
use crate::journal::{self, RunState};
use crate::report;
use crate::state::StateDir;

pub fn find(state: &StateDir, run: Option<&str>, last: bool) -> Result<String, u8> {
    find_which(state, run, last, Last::Any)
}

/// Which runs `last` chooses from. An id names any run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Last {
    Any,
    /// Not a dry-run: what `status` and `report` mean by `last` unless `--dry-run` is given.
    NotDryRun,
    /// Not finished and not a dry-run: what `resume` can continue.
    Resumable,
    /// Not finished and real: what `resume` continues first (a stopped recovery before a
    /// colleague's newer drill).
    ResumableReal,
}

impl Last {
    /// `--dry-run` lets `last` be a dry-run.
    pub fn not_dry_run_unless(dry_run: bool) -> Self {
        if dry_run { Last::Any } else { Last::NotDryRun }
    }

    fn fits(self, state: &StateDir, id: &str) -> bool {
        if self == Last::Any {
            return true;
        }
        let rs = RunState::replay(&journal::read_lenient(&state.journal(id)).unwrap_or_default());
        let real = rs.started.is_some() && rs.mode() != journal::Mode::DryRun;
        match self {
            Last::Any => true,
            Last::NotDryRun => real,
            Last::Resumable => real && !rs.is_finished(),
            Last::ResumableReal => rs.mode() == journal::Mode::Real && !rs.is_finished(),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Last::Any => "run",
            Last::NotDryRun => "run other than dry-runs (`--dry-run` counts them)",
            Last::Resumable | Last::ResumableReal => {
                "run to resume (every run there has finished, or is a dry-run, which is not resumed)"
            }
        }
    }
}

/// [`find`], with `last` the newest run of a kind.
pub fn find_which(
    state: &StateDir,
    run: Option<&str>,
    last: bool,
    which: Last,
) -> Result<String, u8> {
    let arg = match (run, last) {
        (Some(r), _) => r,
        (None, true) => "last",
        (None, false) => {
            eprintln!("error: name a run, or pass --last");
            return Err(exit::USAGE);
        }
    };
    // A stopped real recovery comes before a newer drill: it is what an incident resumes.
    if which == Last::Resumable
        && arg == "last"
        && let Ok(id) = state.find_run_where(
            arg,
            |id| Last::ResumableReal.fits(state, id),
            Last::ResumableReal.what(),
        )
    {
        return Ok(id);
    }
    state
        .find_run_where(arg, |id| which.fits(state, id), which.what())
        .map_err(|e| {
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
    // Whether the run is live is asked before its journal is read: a run that ends while it
    // is read must not look like one whose executor died.
    let first = journal::read_lenient(&path).unwrap_or_default();
    let live = super::live::executor_pid(&state, &RunState::replay(&first[..first.len().min(1)]));
    match journal::verify(&path) {
        Ok(v) => {
            let (text, code) = verdict(&v, live, &id);
            println!("{text}");
            code
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

/// What `verify` says of a journal, and its exit code: one of three answers. Intact and
/// sealed (0); intact but not sealed, which is a live run (0) or a run whose executor died or
/// whose tail was cut (1); broken at a seq (1).
pub fn verdict(v: &journal::Verification, live: Option<u32>, id: &str) -> (String, u8) {
    if let Some((seq, line, why)) = &v.first_bad {
        return (
            format!(
                "BROKEN at seq {seq} (line {line}): {why}\n{} records before it verify",
                v.records
            ),
            exit::FAILED,
        );
    }
    let torn = if v.torn_tail {
        "; its last line was cut short by a crash (resume cuts it off)"
    } else {
        ""
    };
    let last = v.records.saturating_sub(1);
    let hash = v.last_hash.as_deref().unwrap_or_default();
    if v.sealed {
        let how = if v.finished {
            "the run finished"
        } else {
            "the run stopped, and can be resumed"
        };
        return (
            format!(
                "ok: intact and sealed: {} records, hash chain intact, sealed at seq {last} ({how}; seal hash {hash}){torn}",
                v.records
            ),
            exit::OK,
        );
    }
    if v.unsealed_format {
        return (
            format!(
                "ok: intact: {} records, hash chain intact; written before journals were sealed, so whether records were cut from its end cannot be checked{torn}",
                v.records
            ),
            exit::OK,
        );
    }
    match live {
        Some(pid) => (
            format!(
                "ok so far: intact through seq {last} but not sealed: the run is still live (executor pid {pid}){torn}"
            ),
            exit::OK,
        ),
        None => (
            format!(
                "NOT SEALED: intact through seq {last} but not sealed: its executor stopped without ending it (a crash: `runbook resume {id}` continues it and seals it), or its tail was cut{torn}"
            ),
            exit::FAILED,
        ),
    }
}

/// Reads and verifies a run's journal; a broken chain is reported and refused.
pub fn load_records(state: &StateDir, id: &str) -> Result<Vec<journal::Record>, u8> {
    match journal::read_verified(&state.journal(id)) {
        Ok((records, _)) => Ok(records),
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "help: `runbook verify {id}` shows where; reports are made only from an intact journal"
            );
            Err(exit::FAILED)
        }
    }
}

/// A report of one run in the given format.
pub fn render(records: &[journal::Record], format: ReportFormat) -> String {
    let rs = RunState::replay(records);
    match format {
        ReportFormat::Json => {
            serde_json::to_string_pretty(&report::json_report(&rs)).expect("json") + "\n"
        }
        ReportFormat::Md => report::render::markdown(&report::render::Model::new(&rs, records)),
        ReportFormat::Html => report::render::html(&report::render::Model::new(&rs, records)),
        ReportFormat::Junit => report::render::junit(&report::render::Model::new(&rs, records)),
    }
}

fn write_out(text: &str, out: Option<PathBuf>) -> u8 {
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

pub fn report(
    run: Option<&str>,
    last: bool,
    dry_run: bool,
    format: ReportFormat,
    out: Option<PathBuf>,
    state_dir: Option<PathBuf>,
) -> u8 {
    let state = StateDir::resolve(state_dir);
    let Ok(id) = find_which(&state, run, last, Last::not_dry_run_unless(dry_run)) else {
        return exit::USAGE;
    };
    let Ok(records) = load_records(&state, &id) else {
        return exit::FAILED;
    };
    write_out(&render(&records, format), out)
}

pub fn history(scenario: Option<&str>, format: HistoryFormat, state_dir: Option<PathBuf>) -> u8 {
    let state = StateDir::resolve(state_dir);
    let (runs, broken) = report::history::load_runs(&state);
    for b in &broken {
        eprintln!(
            "warning: run `{b}` left out: its journal does not verify (`runbook verify {b}`)"
        );
    }
    let mut scenarios: Vec<String> = runs.iter().map(|(_, r)| r.scenario().to_owned()).collect();
    scenarios.sort();
    scenarios.dedup();
    if let Some(s) = scenario {
        if !scenarios.iter().any(|x| x == s) {
            eprintln!(
                "error: no runs of scenario `{s}` in {}",
                state.runs_dir().display()
            );
            return exit::USAGE;
        }
        scenarios = vec![s.to_owned()];
    }
    let now = chrono::Utc::now();
    let all: Vec<_> = scenarios
        .iter()
        .map(|s| report::history::scenario_history(&runs, s, now))
        .collect();
    match format {
        HistoryFormat::Json => println!("{}", serde_json::to_string_pretty(&all).expect("json")),
        HistoryFormat::Md => print!("{}", report::history::history_markdown(&all)),
    }
    exit::OK
}

/// An evidence bundle for auditors: the journal, the runbook as it ran, the masked logs, the
/// reports and the output of `verify`.
pub fn export(run: &str, out: &std::path::Path, state_dir: Option<PathBuf>) -> u8 {
    let state = StateDir::resolve(state_dir);
    let Ok(id) = find(&state, Some(run), false) else {
        return exit::USAGE;
    };
    let Ok(records) = load_records(&state, &id) else {
        return exit::FAILED;
    };
    let run_dir = state.run_dir(&id);
    let staging = match tempdir_in(
        out.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new(".")),
    ) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot stage the bundle: {e}");
            return exit::FAILED;
        }
    };
    let root = staging.join(&id);
    let result = (|| -> std::io::Result<bool> {
        std::fs::create_dir_all(root.join("logs"))?;
        std::fs::copy(run_dir.join("journal.jsonl"), root.join("journal.jsonl"))?;
        // The head says where the journal should end: without it, a cut tail cannot be told.
        let head = journal::head_path(&run_dir.join("journal.jsonl"));
        if head.is_file() {
            std::fs::copy(&head, root.join("journal.head"))?;
        }
        let runbook_copy = run_dir.join("runbook.yaml");
        if runbook_copy.is_file() {
            std::fs::copy(&runbook_copy, root.join("runbook.yaml"))?;
        }
        if let Ok(rd) = std::fs::read_dir(run_dir.join("logs")) {
            for e in rd.flatten() {
                std::fs::copy(e.path(), root.join("logs").join(e.file_name()))?;
            }
        }
        for (f, name) in [
            (ReportFormat::Md, "report.md"),
            (ReportFormat::Html, "report.html"),
            (ReportFormat::Json, "report.json"),
            (ReportFormat::Junit, "report.junit.xml"),
        ] {
            std::fs::write(root.join(name), render(&records, f))?;
        }
        let v = journal::verify(&run_dir.join("journal.jsonl")).map_err(std::io::Error::other)?;
        let rs = RunState::replay(&records);
        let sha_now = std::fs::read(root.join("runbook.yaml"))
            .map(|b| {
                crate::compile::hex(&sha2::Digest::finalize(
                    <sha2::Sha256 as sha2::Digest>::new_with_prefix(&b),
                ))
            })
            .unwrap_or_default();
        let sha_then = rs
            .started
            .as_ref()
            .map(|s| s.runbook_sha256.clone())
            .unwrap_or_default();
        std::fs::write(
            root.join("verify.txt"),
            format!(
                "runbook verify {id}\n{}\nrunbook.yaml sha256 {sha_now}\nrun_started runbook_sha256 {sha_then}\n{}\n",
                verdict(&v, None, &id).0,
                if sha_now == sha_then {
                    "runbook matches the run"
                } else {
                    "RUNBOOK DOES NOT MATCH THE RUN"
                }
            ),
        )?;
        Ok(sha_now == sha_then)
    })();
    let runbook_matches = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            eprintln!("error: cannot assemble the bundle: {e}");
            return exit::FAILED;
        }
    };
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(std::path::absolute(out).unwrap_or_else(|_| out.to_owned()))
        .arg("-C")
        .arg(&staging)
        .arg(&id)
        .status();
    let _ = std::fs::remove_dir_all(&staging);
    match status {
        // Written all the same: it is the evidence there is. But it fails its own check.
        Ok(s) if s.success() && !runbook_matches => {
            eprintln!("wrote {}", out.display());
            eprintln!(
                "error: the bundle's runbook.yaml is not the runbook that ran (its sha256 differs from run_started's; see verify.txt)"
            );
            exit::FAILED
        }
        Ok(s) if s.success() => {
            eprintln!("wrote {}", out.display());
            exit::OK
        }
        Ok(s) => {
            eprintln!("error: tar failed ({s})");
            exit::FAILED
        }
        Err(e) => {
            eprintln!("error: cannot run tar: {e}");
            exit::FAILED
        }
    }
}

fn tempdir_in(dir: &std::path::Path) -> std::io::Result<PathBuf> {
    let p = dir.join(format!(".runbook-export-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}
