//! The journal: an append-only, hash-chained JSONL file per run; the single source of truth
//! from which status, resume and every report are made.
//!
//! # Wire format (version 1)
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
//! Event types and their `data` are documented on [`EventKind`].

pub mod describe;
mod events;
mod replay;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use events::*;
pub use replay::*;

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

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    at: String,
    elapsed_ms: u64,
    #[serde(flatten)]
    event: &'a EventKind,
    prev: &'a str,
}

/// Appends records to a journal file. Writes are buffered until [`Journal::sync`], which
/// flushes and fsyncs once for however many records were appended: callers append a batch of
/// events and sync before acting on them.
pub struct Journal {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    next_seq: u64,
    prev: String,
}

impl Journal {
    /// Creates a new journal; fails if one exists.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            buf: Vec::new(),
            next_seq: 0,
            prev: GENESIS.to_owned(),
        })
    }

    /// Opens an existing journal to continue it. A torn last line (a crash in the middle of a
    /// write) is cut off first; every complete line must verify.
    pub fn reopen(path: &Path) -> Result<(Self, Vec<Record>), JournalError> {
        let (records, good_len) = read_verified(path)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| JournalError::Io(path.to_owned(), e))?;
        let len = file
            .metadata()
            .map_err(|e| JournalError::Io(path.to_owned(), e))?
            .len();
        if len > good_len {
            file.set_len(good_len)
                .map_err(|e| JournalError::Io(path.to_owned(), e))?;
        }
        let (next_seq, prev) = match records.last() {
            Some(r) => (r.seq + 1, r.hash.clone()),
            None => (0, GENESIS.to_owned()),
        };
        Ok((
            Journal {
                path: path.to_owned(),
                file,
                buf: Vec::new(),
                next_seq,
                prev,
            },
            records,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event (buffered). Returns the record as it will stand in the file.
    pub fn append(&mut self, at: DateTime<Utc>, elapsed: Duration, event: EventKind) -> Record {
        // The file holds milliseconds; so does the record returned.
        let at = at.trunc_subsecs(3);
        let at_s = at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let body = Body {
            seq: self.next_seq,
            at: at_s,
            elapsed_ms: elapsed.as_millis() as u64,
            event: &event,
            prev: &self.prev,
        };
        let mut line = serde_json::to_vec(&body).expect("journal events serialize");
        let hash = crate::compile::hex(&Sha256::digest(&line));
        line.pop(); // the closing brace
        line.extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
        self.buf.extend_from_slice(&line);
        let rec = Record {
            seq: self.next_seq,
            at,
            elapsed_ms: elapsed.as_millis() as u64,
            event,
            prev: std::mem::replace(&mut self.prev, hash.clone()),
            hash,
        };
        self.next_seq += 1;
        rec
    }

    /// Writes what was appended and makes it durable (one fsync for the whole batch).
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        let started = std::time::Instant::now();
        let bytes = self.buf.len();
        self.buf.clear();
        self.file.sync_data()?;
        tracing::trace!(
            bytes,
            fsync_us = started.elapsed().as_micros() as u64,
            "journal synced"
        );
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read `{0}`: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("journal `{path}` is broken at seq {seq} (line {line}): {why}")]
    Broken {
        path: PathBuf,
        seq: u64,
        line: usize,
        why: String,
    },
}

/// The result of checking a journal's hash chain.
#[derive(Debug)]
pub struct Verification {
    pub records: usize,
    pub first_bad: Option<(u64, usize, String)>,
    /// Bytes of the last line that was cut short (a crash mid-write), if any.
    pub torn_tail: bool,
}

/// Checks every line: its hash, its link to the previous line, and the sequence numbers.
pub fn verify(path: &Path) -> Result<Verification, JournalError> {
    let file = File::open(path).map_err(|e| JournalError::Io(path.to_owned(), e))?;
    let mut reader = BufReader::new(file);
    let mut prev = GENESIS.to_owned();
    let mut n = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| JournalError::Io(path.to_owned(), e))?;
        if read == 0 || line.last() != Some(&b'\n') {
            // A run's journal begins with its run_started, written before anything else:
            // without one there is no run to verify.
            let first_bad = (n == 0).then(|| {
                (
                    0,
                    1,
                    if read == 0 {
                        "the journal is empty: it should begin with the run's `run_started`"
                    } else {
                        "its only line was cut short: the run never got as far as `run_started`"
                    }
                    .to_owned(),
                )
            });
            return Ok(Verification {
                records: n,
                first_bad,
                torn_tail: read != 0,
            });
        }
        line.pop();
        if let Err(why) = check_line(&line, n as u64, &prev) {
            return Ok(Verification {
                records: n,
                first_bad: Some((n as u64, n + 1, why)),
                torn_tail: false,
            });
        }
        prev = line_hash(&line).unwrap_or_default();
        n += 1;
    }
}

fn line_hash(line: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(line).ok()?;
    let i = s.rfind(",\"hash\":\"")?;
    let h = s[i + 9..].strip_suffix("\"}")?;
    Some(h.to_owned())
}

fn check_line(line: &[u8], seq: u64, prev: &str) -> Result<(), String> {
    let s = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let i = s
        .rfind(",\"hash\":\"")
        .ok_or_else(|| "no hash field at the end of the line".to_owned())?;
    let claimed = s[i + 9..]
        .strip_suffix("\"}")
        .ok_or_else(|| "the line does not end with its hash".to_owned())?;
    let body = format!("{}}}", &s[..i]);
    let actual = crate::compile::hex(&Sha256::digest(body.as_bytes()));
    if actual != claimed {
        return Err("its hash does not match its contents (the line was changed)".into());
    }
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))?;
    if v["seq"].as_u64() != Some(seq) {
        return Err(format!("expected seq {seq}, found {}", v["seq"]));
    }
    if seq == 0 && v["type"] != "run_started" {
        return Err(format!(
            "a journal begins with `run_started`, not {}",
            v["type"]
        ));
    }
    if v["prev"].as_str() != Some(prev) {
        return Err(
            "its `prev` does not match the previous line's hash (a line was removed or reordered)"
                .into(),
        );
    }
    Ok(())
}

/// Reads a journal whose chain verifies; returns the records and the length of the good part
/// (a torn last line is left out).
pub fn read_verified(path: &Path) -> Result<(Vec<Record>, u64), JournalError> {
    let v = verify(path)?;
    if let Some((seq, line, why)) = v.first_bad {
        return Err(JournalError::Broken {
            path: path.to_owned(),
            seq,
            line,
            why,
        });
    }
    let text = std::fs::read(path).map_err(|e| JournalError::Io(path.to_owned(), e))?;
    let mut records = Vec::with_capacity(v.records);
    let mut good = 0u64;
    for (i, line) in text.split_inclusive(|b| *b == b'\n').enumerate() {
        if i >= v.records {
            break;
        }
        let rec: Record = serde_json::from_slice(line).map_err(|e| JournalError::Broken {
            path: path.to_owned(),
            seq: i as u64,
            line: i + 1,
            why: format!("unreadable event: {e}"),
        })?;
        records.push(rec);
        good += line.len() as u64;
    }
    Ok((records, good))
}

/// Reads a journal without insisting on its chain (for `status` of a run that may be
/// being written right now): complete lines only, stopping at the first unreadable one.
pub fn read_lenient(path: &Path) -> std::io::Result<Vec<Record>> {
    let text = std::fs::read(path)?;
    let mut out = Vec::new();
    for line in text.split_inclusive(|b| *b == b'\n') {
        if line.last() != Some(&b'\n') {
            break;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
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
                reason: "schedule".into(),
                message: "a \"quoted\" message".into(),
                ok: true,
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
                    reason: "test".into(),
                    message: String::new(),
                    ok: true,
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
