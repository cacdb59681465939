//! The use cases that read finished evidence from the state folder: `verify`, `report`,
//! `history` and `export`.

use std::path::PathBuf;

use super::Error;
use super::error::Said;
use super::find::{Last, find, find_which};
use super::status::executor_pid;
use crate::journal::{self, RunStarted, RunState};
use crate::report;
use crate::state::StateDir;

/// The formats of a run's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Md,
    Html,
    Json,
    Junit,
}

/// `verify`: what the journal of a run says of itself, and whether that is all right.
pub fn verify(state: &StateDir, run: &str) -> Result<Verdict, Error> {
    let id = find(state, Some(run), false)?;
    let path = state.journal(&id);
    // Whether the run is live is asked before its journal is read: a run that ends while it
    // is read must not look like one whose executor died.
    let first = journal::read_lenient(&path).unwrap_or_default();
    let live = executor_pid(state, &RunState::replay(&first[..first.len().min(1)]));
    let v = journal::verify_signed(&path).map_err(|e| Error::failed(Said::error(e.to_string())))?;
    Ok(verdict(&v, live, &id))
}

/// What `verify` says of a journal: the sentence, and whether it is all right (exit 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub text: String,
    pub ok: bool,
}

/// What `verify` says of a journal: one of three answers. Intact and sealed (ok); intact but
/// not sealed, which is a live run (ok) or a run whose executor died or whose tail was cut
/// (not ok); broken at a seq (not ok).
pub fn verdict(v: &journal::Verification, live: Option<u32>, id: &str) -> Verdict {
    let (text, ok) = verdict_words(v, live, id);
    Verdict { text, ok }
}

fn verdict_words(v: &journal::Verification, live: Option<u32>, id: &str) -> (String, bool) {
    if let Some((seq, line, why)) = &v.first_bad {
        return (
            format!(
                "BROKEN at seq {seq} (line {line}): {why}\n{} records before it verify",
                v.records
            ),
            false,
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
        let sealed = match &v.seal_signer {
            None => "intact and sealed".to_owned(),
            Some(journal::SealSigner { by: Some(by), key }) => {
                format!("intact, sealed and signed by {by} ({key})")
            }
            Some(journal::SealSigner { by: None, key }) => format!(
                "intact, sealed and signed by key {key} (no allowed_signers names its holder)"
            ),
        };
        return (
            format!(
                "ok: {sealed}: {} records, hash chain intact, sealed at seq {last} ({how}; seal hash {hash}){torn}",
                v.records
            ),
            true,
        );
    }
    if v.unsealed_format {
        return (
            format!(
                "ok: intact: {} records, hash chain intact; written before journals were sealed, so whether records were cut from its end cannot be checked{torn}",
                v.records
            ),
            true,
        );
    }
    match live {
        Some(pid) => (
            format!(
                "ok so far: intact through seq {last} but not sealed: the run is still live (executor pid {pid}){torn}"
            ),
            true,
        ),
        None => (
            format!(
                "NOT SEALED: intact through seq {last} but not sealed: its executor stopped without ending it (a crash: `runbook resume {id}` continues it and seals it), or its tail was cut{torn}"
            ),
            false,
        ),
    }
}

/// Reads and verifies a run's journal; a broken chain is reported and refused.
pub fn load_records(state: &StateDir, id: &str) -> Result<Vec<journal::Record>, Error> {
    match journal::read_verified(&state.journal(id)) {
        Ok((records, _)) => Ok(records),
        Err(e) => Err(Error::failed(Said::error(e.to_string()).help(format!(
            "`runbook verify {id}` shows where; reports are made only from an intact journal"
        )))),
    }
}

/// A report of one run in the given format.
pub fn render(records: &[journal::Record], format: ReportFormat) -> String {
    let rs = RunState::replay(records);
    match format {
        ReportFormat::Json => {
            serde_json::to_string_pretty(&report::json_report(&rs)).expect("json") + "\n"
        }
        ReportFormat::Md => report::markdown::markdown(&report::RunReport::new(&rs, records)),
        ReportFormat::Html => report::html::html(&report::RunReport::new(&rs, records)),
        ReportFormat::Junit => report::junit::junit(&report::RunReport::new(&rs, records)),
    }
}

/// `report`: the report of a run in a format, made from its journal only when it verifies.
pub fn report(
    state: &StateDir,
    run: Option<&str>,
    last: bool,
    dry_run: bool,
    format: ReportFormat,
) -> Result<String, Error> {
    let id = find_which(state, run, last, Last::not_dry_run_unless(dry_run))?;
    let records = load_records(state, &id)?;
    Ok(render(&records, format))
}

/// `history`: the runs whose journals verify, and the ids of those left out because theirs
/// do not.
pub fn history_runs(state: &StateDir) -> (Vec<(String, RunState)>, Vec<String>) {
    report::history::load_runs(state)
}

/// `history` of one scenario, or of every scenario with runs.
pub fn history(
    state: &StateDir,
    runs: &[(String, RunState)],
    scenario: Option<&str>,
) -> Result<Vec<report::history::ScenarioHistory>, Error> {
    let mut scenarios: Vec<String> = runs.iter().map(|(_, r)| r.scenario().to_owned()).collect();
    scenarios.sort();
    scenarios.dedup();
    if let Some(s) = scenario {
        if !scenarios.iter().any(|x| x == s) {
            return Err(Error::usage(Said::error(format!(
                "no runs of scenario `{s}` in {}",
                state.runs_dir().display()
            ))));
        }
        scenarios = vec![s.to_owned()];
    }
    let now = chrono::Utc::now();
    Ok(scenarios
        .iter()
        .map(|s| report::history::scenario_history(runs, s, now))
        .collect())
}

/// An evidence bundle for auditors: the journal, the runbook as it ran, the run's
/// allowed_signers (when it kept one), the masked logs, the reports and the output of `verify`.
/// Written, it is the evidence there is; a runbook that does not match the run's is said
/// by the caller after it says where the bundle is.
pub fn export(state: &StateDir, run: &str, out: &std::path::Path) -> Result<Exported, Error> {
    let id = find(state, Some(run), false)?;
    let records = load_records(state, &id)?;
    let run_dir = state.run_dir(&id);
    let staging = match tempdir_in(
        out.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new(".")),
    ) {
        Ok(d) => d,
        Err(e) => {
            return Err(Error::failed(Said::error(format!(
                "cannot stage the bundle: {e}"
            ))));
        }
    };
    let root = staging.join(&id);
    let result = (|| -> std::io::Result<(bool, bool)> {
        std::fs::create_dir_all(root.join("logs"))?;
        std::fs::copy(run_dir.join("journal.jsonl"), root.join("journal.jsonl"))?;
        // The head says where the journal should end: without it, a cut tail cannot be told.
        let head = journal::head_path(&run_dir.join("journal.jsonl"));
        if head.is_file() {
            std::fs::copy(&head, root.join("journal.head"))?;
        }
        // The keys as the run read them: without them its signatures cannot be checked.
        let signers = run_dir.join("allowed_signers");
        if signers.is_file() {
            std::fs::copy(&signers, root.join("allowed_signers"))?;
        }
        let runbook_copy = run_dir.join("runbook.yaml");
        if runbook_copy.is_file() {
            std::fs::copy(&runbook_copy, root.join("runbook.yaml"))?;
        }
        // The runbooks it called, as they ran: checked below against run_started's sha256.
        if let Ok(rd) = std::fs::read_dir(run_dir.join("calls")) {
            std::fs::create_dir_all(root.join("calls"))?;
            for e in rd.flatten() {
                std::fs::copy(e.path(), root.join("calls").join(e.file_name()))?;
            }
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
        let v = journal::verify_signed(&run_dir.join("journal.jsonl"))
            .map_err(std::io::Error::other)?;
        let rs = RunState::replay(&records);
        let sha_now = std::fs::read(root.join("runbook.yaml"))
            .map(|b| crate::digest::sha256_hex(&b))
            .unwrap_or_default();
        let sha_then = rs
            .started
            .as_ref()
            .map(|s| s.runbook_sha256.clone())
            .unwrap_or_default();
        let (calls_text, calls_match) = called_runbooks(&root, rs.started.as_ref());
        std::fs::write(
            root.join("verify.txt"),
            format!(
                "runbook verify {id}\n{}\nrunbook.yaml sha256 {sha_now}\nrun_started runbook_sha256 {sha_then}\n{}\n{calls_text}",
                verdict(&v, None, &id).text,
                if sha_now == sha_then {
                    "runbook matches the run"
                } else {
                    "RUNBOOK DOES NOT MATCH THE RUN"
                }
            ),
        )?;
        Ok((sha_now == sha_then, calls_match))
    })();
    let (runbook_matches, calls_match) = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(Error::failed(Said::error(format!(
                "cannot assemble the bundle: {e}"
            ))));
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
        Ok(s) if s.success() => Ok(Exported {
            runbook_matches,
            calls_match,
        }),
        Ok(s) => Err(Error::failed(Said::error(format!("tar failed ({s})")))),
        Err(e) => Err(Error::failed(Said::error(format!("cannot run tar: {e}")))),
    }
}

/// What verify.txt says of each runbook the run called: its copy in the bundle (`calls/`)
/// against the sha256 run_started journaled, and whether all match. A journal written before
/// the calls' sha256 was kept, or a run that called nothing, has nothing to say.
fn called_runbooks(root: &std::path::Path, started: Option<&RunStarted>) -> (String, bool) {
    let mut text = String::new();
    let mut all = true;
    let calls = started.map(|s| s.plan.calls.as_slice()).unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    for c in calls {
        let Some(then) = &c.sha256 else { continue };
        if !seen.insert(&c.runbook) {
            continue;
        }
        let now = std::fs::read(root.join("calls").join(format!("{}.yaml", c.runbook)))
            .map(|b| crate::digest::sha256_hex(&b))
            .unwrap_or_default();
        let ok = &now == then;
        all &= ok;
        text.push_str(&format!(
            "calls/{}.yaml sha256 {now}\nrun_started plan.calls {} sha256 {then}\n{}\n",
            c.runbook,
            c.id,
            if ok {
                "called runbook matches the run"
            } else {
                "CALLED RUNBOOK DOES NOT MATCH THE RUN"
            }
        ));
    }
    (text, all)
}

/// A bundle written.
#[derive(Clone, Copy, Debug)]
pub struct Exported {
    /// Its runbook.yaml is the runbook that ran (sha256 as in run_started). When it is not,
    /// the bundle is written all the same, and fails its own check.
    pub runbook_matches: bool,
    /// Each runbook it called (calls/) is the one that ran, likewise.
    pub calls_match: bool,
}

fn tempdir_in(dir: &std::path::Path) -> std::io::Result<PathBuf> {
    let p = dir.join(format!(".runbook-export-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}
