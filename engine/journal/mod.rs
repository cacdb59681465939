//! The journal: an append-only, hash-chained JSONL file per run; the single source of truth
//! from which status, resume and every report are made.
//!
//! # Wire format
//!
//! Documented field by field, with the seal, the head and [`VERSION`], in docs/design.md
//! ("The journal"); in short:
//!
//! One JSON object a line:
//! `{"seq":N,"at":"RFC 3339 UTC","elapsed_ms":N,"type":"...","data":{...},"prev":"hex","hash":"hex"}`
//!
//! - `seq` counts from 0 with no gaps.
//! - `at` is wall-clock time; `elapsed_ms` is time since the run started on the run's clock
//!   (virtual in dry-runs), and keeps counting across a resume.
//! - `prev` is the previous line's `hash` (64 zeros for the first line).
//! - `hash` is the sha256, in hex, of the line's own bytes without the hash: the line is
//!   written as `BODY` with its closing `}` replaced by `,"hash":"<hex>"}`, where `BODY` is the
//!   compact JSON of the other fields and `hash = sha256(BODY)`. Verification needs no
//!   re-serialisation: strip the suffix, put back the `}`, hash, compare.
//!
//! Event types and their `data`: [`EventKind`], and docs/design.md for every field.
//!
//! # The end and the head
//!
//! Every way a run ends (finished, failed, stopped, interrupted) appends a `run_sealed` record
//! after its last event, naming the count of records before it and the last one's hash; a
//! resumed run continues the chain after the seal with `run_resumed`. So a journal whose last
//! record is no seal is either live, or its executor died, or its tail was cut.
//!
//! Beside the journal, `journal.head` holds `SEQ HASH\n` (SEQ zero-padded to 20 digits, so
//! the file is rewritten in place at one size) of the last record made durable, rewritten
//! after each fsync'd batch. A journal that ends before the record its head names was cut.
//! The head is written after the journal's fsync and not fsync'd itself: after a power loss
//! it may lag the journal (which is fine) but never lead it.
//!
//! Neither stops someone who rewrites the whole chain and its head: the seal's signature does,
//! when the operator had a key (`RunSealed::signed`, checked by [`verify_signed`]). An unsigned
//! seal proves only that the chain is whole, not who wrote it.

mod events;
mod plan_steps;
mod read;
mod replay;
mod signatures;
mod verify;
mod writer;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use events::*;
pub use plan_steps::plan_steps;
pub use read::{read_lenient, read_verified};
pub use replay::*;
pub use signatures::SealSigner;
pub use verify::{JournalError, Verification, verify, verify_signed};
pub use writer::{Journal, WriteError, head_path};

/// What a journal written now promises: a seal at its end and a head beside it.
pub const VERSION: u32 = 2;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One journal line, as read back.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub elapsed_ms: u64,
    #[serde(flatten)]
    pub event: EventKind,
    pub prev: String,
    pub hash: String,
}

impl Record {
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.elapsed_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::Path;

    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// A journal as a run makes it: its first record is `run_started`.
    fn begun(p: &Path) -> Journal {
        let mut j = Journal::create(p).unwrap();
        j.append(
            Utc::now(),
            Duration::ZERO,
            EventKind::RunStarted(Box::default()),
        );
        j
    }

    #[test]
    fn a_journal_that_does_not_begin_with_run_started_is_broken() {
        let d = tmp();
        let p = d.path().join("journal.jsonl");
        std::fs::write(&p, "").unwrap();
        let v = verify(&p).unwrap();
        assert!(v.first_bad.unwrap().2.contains("empty"));
        std::fs::remove_file(&p).unwrap();
        let mut j = Journal::create(&p).unwrap();
        j.append(
            Utc::now(),
            Duration::ZERO,
            EventKind::RunResumed(RunResumed::default()),
        );
        j.sync().unwrap();
        let v = verify(&p).unwrap();
        assert!(v.first_bad.unwrap().2.contains("begins with `run_started`"));
    }

    #[test]
    fn an_appended_record_is_the_record_read_back() {
        let d = tmp();
        let p = d.path().join("journal.jsonl");
        let mut j = begun(&p);
        // Sub-millisecond digits are not written: the record says what the file says.
        let t = DateTime::parse_from_rfc3339("2026-12-01T07:13:13.123987654Z")
            .unwrap()
            .with_timezone(&Utc);
        let written = j.append(
            t,
            Duration::from_millis(1234),
            EventKind::Escalated(Escalated {
                channel: "oncall".into(),
                reason: EscalationReason::Schedule,
                message: "a \"quoted\" message".into(),
                ok: true,
                ..Default::default()
            }),
        );
        j.sync().unwrap();
        let (read, _) = read_verified(&p).unwrap();
        assert_eq!(read[1..], [written]);
        assert_eq!(read[1].at.to_rfc3339(), "2026-12-01T07:13:13.123+00:00");
    }

    #[test]
    fn a_written_journal_verifies_and_a_changed_byte_does_not() {
        let d = tmp();
        let p = d.path().join("journal.jsonl");
        let mut j = begun(&p);
        let t = Utc::now();
        for i in 0..5 {
            j.append(
                t,
                Duration::from_millis(i * 10),
                EventKind::Escalated(Escalated {
                    channel: format!("c{i}"),
                    message: String::new(),
                    ok: true,
                    ..Default::default()
                }),
            );
        }
        j.sync().unwrap();
        let v = verify(&p).unwrap();
        assert_eq!(v.records, 6);
        assert!(v.first_bad.is_none());

        let mut bytes = std::fs::read(&p).unwrap();
        let third = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(2)
            .unwrap()
            .0;
        // Change a channel name in line 4.
        let at = third
            + 1
            + String::from_utf8_lossy(&bytes[third + 1..])
                .find("c2")
                .unwrap();
        bytes[at + 1] = b'9';
        std::fs::write(&p, &bytes).unwrap();
        let v = verify(&p).unwrap();
        assert_eq!(v.first_bad.as_ref().map(|b| b.0), Some(3));
    }

    #[test]
    fn reopen_cuts_a_torn_tail_and_continues_the_chain() {
        let d = tmp();
        let p = d.path().join("journal.jsonl");
        let mut j = begun(&p);
        j.sync().unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":1,\"at\":").unwrap();
        let (mut j, recs) = Journal::reopen(&p).unwrap();
        assert_eq!(recs.len(), 1);
        j.append(
            Utc::now(),
            Duration::ZERO,
            EventKind::RunResumed(RunResumed::default()),
        );
        j.sync().unwrap();
        let v = verify(&p).unwrap();
        assert_eq!(
            (v.records, v.first_bad.is_none(), v.torn_tail),
            (2, true, false)
        );
    }
}
