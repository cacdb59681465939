//! Writing a journal: appending records, one fsync a batch, the head beside it, the seal at
//! the end, and reopening one for a resume (cutting a torn tail).

// A journal file may be hostile: see the lint's reason in lib.rs.
#![deny(clippy::indexing_slicing, clippy::string_slice)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::Serialize;

use super::events::*;
use super::read::read_verified;
use super::verify::JournalError;
use super::{GENESIS, Record};

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

    /// The hash of the last record appended (durable or not): what a seal appended now would
    /// name, and so what the operator signs (`signing::SealStatement::head`).
    pub fn last_hash(&self) -> &str {
        &self.prev
    }

    /// Appends the seal: the end of the chain as it stands (see the module's docs), unsigned.
    pub fn seal(&mut self, at: DateTime<Utc>, elapsed: Duration) -> Record {
        self.seal_signed(at, elapsed, None)
    }

    /// Appends the seal with the operator's signature over [`Journal::last_hash`], when there
    /// is one.
    pub fn seal_signed(
        &mut self,
        at: DateTime<Utc>,
        elapsed: Duration,
        signed: Option<SignedSeal>,
    ) -> Record {
        let sealed = RunSealed {
            records: self.next_seq,
            last_hash: self.prev.clone(),
            signed,
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
