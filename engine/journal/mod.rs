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
//! Neither stops someone who rewrites the whole chain and its head: the seal's `hash` is what
//! a signature will cover.

mod events;
mod replay;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

pub use events::*;
pub use replay::*;

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
    /// `journal.head`: the last durable record's seq and hash.
    head: File,
    buf: Vec<u8>,
    next_seq: u64,
    prev: String,
    /// The file's identity and the length this journal has written: what it must still be
    /// before each write (see [`Journal::sync`]).
    dev: u64,
    ino: u64,
    len: u64,
    /// The last record made durable, for the head.
    durable: Option<(u64, String)>,
}

/// The head file beside a journal.
pub fn head_path(journal: &Path) -> PathBuf {
    journal.with_extension("head")
}

/// Why a batch could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The journal file is not the one this run has been writing: deleted, replaced,
    /// truncated or written to by something else.
    #[error("the journal was {0} while the run was writing it")]
    Changed(String),
}

impl Journal {
    /// Creates a new journal (and its head); fails if one exists.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        let head = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(head_path(path))?;
        let meta = file.metadata()?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            head,
            buf: Vec::new(),
            next_seq: 0,
            prev: GENESIS.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            len: 0,
            durable: None,
        })
    }

    /// Opens an existing journal to continue it. A torn last line (a crash in the middle of a
    /// write) is cut off first; every complete line must verify. The caller must hold the
    /// run's lock: nothing else may be writing the file.
    pub fn reopen(path: &Path) -> Result<(Self, Vec<Record>), JournalError> {
        let (records, good_len) = read_verified(path)?;
        let io = |e| JournalError::Io(path.to_owned(), e);
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > good_len {
            file.set_len(good_len).map_err(io)?;
        }
        // Journals written before heads existed get one now.
        let head = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(head_path(path))
            .map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let (next_seq, prev) = match records.last() {
            Some(r) => (r.seq + 1, r.hash.clone()),
            None => (0, GENESIS.to_owned()),
        };
        Ok((
            Journal {
                path: path.to_owned(),
                file,
                head,
                buf: Vec::new(),
                next_seq,
                prev,
                dev: meta.dev(),
                ino: meta.ino(),
                len: good_len,
                durable: records.last().map(|r| (r.seq, r.hash.clone())),
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
        let hash = crate::digest::sha256_hex(&line);
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

    /// Appends the seal: the end of the chain as it stands (see the module's docs).
    pub fn seal(&mut self, at: DateTime<Utc>, elapsed: Duration) -> Record {
        let sealed = RunSealed {
            records: self.next_seq,
            last_hash: self.prev.clone(),
        };
        self.append(at, elapsed, EventKind::RunSealed(sealed))
    }

    /// Writes what was appended and makes it durable (one fsync for the whole batch), then
    /// moves the head. Before writing, the file must still be the one this journal made, at
    /// the length it left it: a journal deleted, replaced or cut under a live run is not
    /// written on blindly (the run would go on to say it succeeded with no evidence of it).
    pub fn sync(&mut self) -> Result<(), WriteError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.check_identity()?;
        self.file.write_all(&self.buf)?;
        let started = std::time::Instant::now();
        let bytes = self.buf.len();
        self.len += bytes as u64;
        self.buf.clear();
        self.file.sync_data()?;
        tracing::trace!(
            bytes,
            fsync_us = started.elapsed().as_micros() as u64,
            "journal synced"
        );
        self.durable = Some((self.next_seq - 1, self.prev.clone()));
        self.write_head()?;
        Ok(())
    }

    fn check_identity(&self) -> Result<(), WriteError> {
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(WriteError::Changed("deleted".into()));
            }
            Err(e) => return Err(e.into()),
            Ok(m) if (m.dev(), m.ino()) != (self.dev, self.ino) => {
                return Err(WriteError::Changed("replaced by another file".into()));
            }
            Ok(_) => {}
        }
        let len = self.file.metadata()?.len();
        if len < self.len {
            return Err(WriteError::Changed(format!(
                "cut from {} to {len} bytes",
                self.len
            )));
        }
        if len > self.len {
            return Err(WriteError::Changed(format!(
                "written to by something else ({} bytes more than the run wrote)",
                len - self.len
            )));
        }
        Ok(())
    }

    fn write_head(&mut self) -> std::io::Result<()> {
        if let Some((seq, hash)) = &self.durable {
            self.head
                .write_all_at(format!("{seq:020} {hash}\n").as_bytes(), 0)?;
        }
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
    /// The last complete record is a `run_sealed` that matches the chain before it.
    pub sealed: bool,
    /// That seal ends a finished run (else a stopped one, which a resume may continue).
    pub finished: bool,
    /// Written before journals were sealed (its `run_started` has no `journal_version`): its
    /// end cannot be checked.
    pub unsealed_format: bool,
    /// The hash of the last complete record (the seal's, when sealed).
    pub last_hash: Option<String>,
}

/// What a record's type allows to follow it, as [`verify`] walks the chain.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// Anything may follow.
    Open,
    /// `run_finished` or `run_interrupted`: its seal may follow (older journals have none).
    Ended { finished: bool },
    /// A seal: after a stop, only a resume may follow; after a finish, nothing.
    Sealed { finished: bool },
}

/// Checks every line: its hash, its link to the previous line, the sequence numbers, that a
/// seal is where it may be and says what it must, and that the journal reaches the record its
/// head file names.
pub fn verify(path: &Path) -> Result<Verification, JournalError> {
    // The head first: the journal is read after it, so a live run can only have grown.
    let head = read_head(path);
    let file = File::open(path).map_err(|e| JournalError::Io(path.to_owned(), e))?;
    let mut reader = BufReader::new(file);
    let mut prev = GENESIS.to_owned();
    let mut n = 0usize;
    let mut line = Vec::new();
    let mut ending = Ending::Open;
    let mut head_hash_seen = None;
    let mut versioned = false;
    let bad = |n: usize, why: String, ending: Ending, last: &str| Verification {
        records: n,
        first_bad: Some((n as u64, n + 1, why)),
        torn_tail: false,
        sealed: matches!(ending, Ending::Sealed { .. }),
        finished: matches!(ending, Ending::Sealed { finished: true }),
        unsealed_format: false,
        last_hash: (n > 0).then(|| last.to_owned()),
    };
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| JournalError::Io(path.to_owned(), e))?;
        if read == 0 || line.last() != Some(&b'\n') {
            // A run's journal begins with its run_started, written before anything else:
            // without one there is no run to verify.
            let mut first_bad = (n == 0).then(|| {
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
            if first_bad.is_none() && read != 0 && ending == (Ending::Sealed { finished: true }) {
                first_bad = Some((
                    n as u64,
                    n + 1,
                    "bytes follow the seal of a finished run (a line with no end was added)".into(),
                ));
            }
            // A head not yet written when it was read (a run's first batch) is there now.
            if first_bad.is_none() && versioned && head.is_none() && read_head(path).is_none() {
                first_bad = Some((
                    n as u64,
                    n + 1,
                    format!(
                        "its head file `{}` is missing or unreadable: where the journal should end cannot be checked",
                        head_path(path).display()
                    ),
                ));
            }
            if first_bad.is_none()
                && let Some((seq, hash)) = &head
            {
                if *seq >= n as u64 {
                    first_bad = Some((
                        n as u64,
                        n + 1,
                        format!(
                            "the journal ends at seq {}, but its head file says seq {seq} was written: records were cut from its end",
                            n - 1
                        ),
                    ));
                } else if head_hash_seen.as_ref() != Some(hash) {
                    first_bad = Some((
                        *seq,
                        *seq as usize + 1,
                        "it is not the record the head file names (its hash differs): the journal was rewritten".into(),
                    ));
                }
            }
            return Ok(Verification {
                records: n,
                first_bad,
                torn_tail: read != 0,
                sealed: matches!(ending, Ending::Sealed { .. }),
                finished: matches!(ending, Ending::Sealed { finished: true }),
                unsealed_format: n > 0 && !versioned,
                last_hash: (n > 0).then(|| prev.clone()),
            });
        }
        line.pop();
        let v = match check_line(&line, n as u64, &prev) {
            Ok(v) => v,
            Err(why) => return Ok(bad(n, why, ending, &prev)),
        };
        let ty = v["type"].as_str().unwrap_or_default().to_owned();
        if n == 0 {
            versioned = v["data"]["journal_version"]
                .as_u64()
                .is_some_and(|x| x >= 2);
        }
        let follows = match (ending, ty.as_str()) {
            // An answer to a gate of a run that has ended is journaled as late, and the
            // journal sealed again after it.
            (Ending::Sealed { finished } | Ending::Ended { finished }, "approval_late") => {
                Ok(Ending::Ended { finished })
            }
            (Ending::Sealed { finished: false }, "run_resumed") => Ok(Ending::Open),
            (Ending::Sealed { finished: true }, t) => Err(format!(
                "`{t}` after the seal of a finished run: only a late answer may follow it"
            )),
            (Ending::Sealed { .. }, t) => Err(format!(
                "`{t}` after a seal: only `run_resumed` or a late answer may follow it"
            )),
            (Ending::Ended { finished }, "run_sealed") => Ok(Ending::Sealed { finished }),
            (_, "run_sealed") => {
                Err("a seal that does not follow `run_finished` or `run_interrupted`".into())
            }
            (Ending::Ended { finished: true }, t) => {
                Err(format!("`{t}` after `run_finished`: the run was over"))
            }
            (_, "run_finished") => Ok(Ending::Ended { finished: true }),
            (_, "run_interrupted") => Ok(Ending::Ended { finished: false }),
            (_, _) => Ok(Ending::Open),
        };
        ending = match follows {
            Ok(e) => e,
            Err(why) => return Ok(bad(n, why, ending, &prev)),
        };
        if ty == "run_sealed"
            && let Err(why) = check_seal(&v, n as u64, &prev)
        {
            return Ok(bad(n, why, ending, &prev));
        }
        prev = line_hash(&line).unwrap_or_default();
        if head.as_ref().is_some_and(|(seq, _)| *seq == n as u64) {
            head_hash_seen = Some(prev.clone());
        }
        n += 1;
    }
}

/// The head file's seq and hash; none when it is missing (a journal older than heads) or not
/// yet written.
fn read_head(journal: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(head_path(journal)).ok()?;
    let (seq, hash) = text.trim_end().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_owned()))
}

/// A seal must name the count of records before it and the last one's hash.
fn check_seal(v: &serde_json::Value, seq: u64, prev: &str) -> Result<(), String> {
    if v["data"]["records"].as_u64() != Some(seq) {
        return Err(format!(
            "the seal counts {} records before it, but {seq} precede it",
            v["data"]["records"]
        ));
    }
    if v["data"]["last_hash"].as_str() != Some(prev) {
        return Err("the seal's `last_hash` is not the previous record's hash".into());
    }
    Ok(())
}

fn line_hash(line: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(line).ok()?;
    let i = s.rfind(",\"hash\":\"")?;
    let h = s[i + 9..].strip_suffix("\"}")?;
    Some(h.to_owned())
}

/// Checks one line's hash, seq and link; returns it parsed.
fn check_line(line: &[u8], seq: u64, prev: &str) -> Result<serde_json::Value, String> {
    let s = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let i = s
        .rfind(",\"hash\":\"")
        .ok_or_else(|| "no hash field at the end of the line".to_owned())?;
    let claimed = s[i + 9..]
        .strip_suffix("\"}")
        .ok_or_else(|| "the line does not end with its hash".to_owned())?;
    let body = format!("{}}}", &s[..i]);
    let actual = crate::digest::sha256_hex(body.as_bytes());
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
    Ok(v)
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
                    reason: "test".into(),
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
