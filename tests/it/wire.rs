//! The journal's wire format across the move from strings to enums: journals the binary wrote
//! before (`fixtures/wire/`) read into the typed events and write back byte for byte.

use std::collections::BTreeSet;
use std::path::PathBuf;

use runbook::journal::{EventKind, Record, read_verified};

/// Journals written by `runbook` built from the commit before `how`, `escalated.reason` and
/// `run_interrupted.reason` became enums: a drill in a rehearsal environment (every `how` but
/// `dry-run`), a dry-run, a real run that pages on schedule and with the RTO at risk, a gate
/// that pages its approver and times out, and a run stopped by SIGTERM.
fn fixtures() -> Vec<PathBuf> {
    let dir = crate::support::repo_root().join("tests/it/fixtures/wire");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    paths.sort();
    paths
}

/// The closed words a record holds, as `field=word` (what the enums must keep writing).
fn words(rec: &Record) -> Option<String> {
    match &rec.event {
        EventKind::StepStarted(s) => Some(format!("how={}", s.how.as_str())),
        EventKind::Escalated(e) => Some(format!("escalated={}", e.reason.as_str())),
        EventKind::RunInterrupted(r) => Some(format!("interrupted={}", r.reason.as_str())),
        _ => None,
    }
}

/// Regression guard for issue 15: the reasons and `how` became enums, and a rename that
/// slipped (`dry_run` for `dry-run`) would change every journal written after it and leave
/// the old ones unreadable.
#[test]
fn journals_written_before_the_enums_read_and_write_back_byte_for_byte() {
    let mut seen = BTreeSet::new();
    for path in fixtures() {
        let (records, _) = read_verified(&path)
            .unwrap_or_else(|e| panic!("{} does not read: {e}", path.display()));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(records.len(), lines.len(), "{}", path.display());
        for (rec, line) in records.iter().zip(lines) {
            let again = serde_json::to_string(rec).unwrap();
            assert_eq!(again, line, "{} wrote back differently", path.display());
            seen.extend(words(rec));
        }
    }
    // The fixtures must hold every word they are here to hold, or this test checks less than
    // it says (`supervisor_died` and `outcome_unknown` are in the events' unit tests).
    let want = [
        "how=run",
        "how=drill-command",
        "how=drill-with",
        "how=rehearsal",
        "how=dry-run",
        "escalated=schedule",
        "escalated=rto_at_risk",
        "escalated=approval_requested",
        "interrupted=signal",
        "interrupted=approval_timed_out",
    ];
    let missing: Vec<&str> = want.into_iter().filter(|w| !seen.contains(*w)).collect();
    assert!(missing.is_empty(), "no fixture journals {missing:?}");
}
