//! The journal's rules, checked line by line: each hash, each link, the sequence, where a seal
//! may be and what it must say, and that the journal reaches the record its head names.

// A journal file may be hostile: see the lint's reason in lib.rs.
#![deny(clippy::indexing_slicing, clippy::string_slice)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::GENESIS;
use super::signatures::SealSigner;
use super::writer::head_path;

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
    /// Who signed the last seal, when it is signed and its signature checks ([`verify_signed`]
    /// only; [`verify`] leaves it empty).
    pub seal_signer: Option<SealSigner>,
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
        seal_signer: None,
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
                seal_signer: None,
            });
        }
        line.pop();
        let v = match check_line(&line, n as u64, &prev) {
            Ok(v) => v,
            Err(why) => return Ok(bad(n, why, ending, &prev)),
        };
        let ty = field(&v, "/type").as_str().unwrap_or_default().to_owned();
        if n == 0 {
            versioned = field(&v, "/data/journal_version")
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

/// [`verify`], then the signatures the journal carries: each signed decision and seal is
/// checked against the run's copy of allowed_signers, and a run that required signed
/// approvals must have them (`signatures::check`). A signature that does not check breaks the
/// journal at its line, as a changed byte would.
pub fn verify_signed(path: &Path) -> Result<Verification, JournalError> {
    let mut v = verify(path)?;
    if v.first_bad.is_some() || v.records == 0 {
        return Ok(v);
    }
    match super::signatures::check(path, v.records) {
        Ok(signer) => v.seal_signer = signer,
        Err((seq, line, why)) => {
            v.records = seq as usize;
            v.first_bad = Some((seq, line, why));
        }
    }
    Ok(v)
}

/// The head file's seq and hash; none when it is missing (a journal older than heads) or not
/// yet written.
fn read_head(journal: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(head_path(journal)).ok()?;
    let (seq, hash) = text.trim_end().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_owned()))
}

/// A seal must name the count of records before it and the last one's hash.
fn check_seal(v: &Value, seq: u64, prev: &str) -> Result<(), String> {
    let records = field(v, "/data/records");
    if records.as_u64() != Some(seq) {
        return Err(format!(
            "the seal counts {records} records before it, but {seq} precede it"
        ));
    }
    if field(v, "/data/last_hash").as_str() != Some(prev) {
        return Err("the seal's `last_hash` is not the previous record's hash".into());
    }
    Ok(())
}

/// A field of a parsed line by JSON pointer, `null` when it is missing (as `v["a"]["b"]`
/// would give, without indexing).
fn field<'v>(v: &'v Value, pointer: &str) -> &'v Value {
    static NULL: Value = Value::Null;
    v.pointer(pointer).unwrap_or(&NULL)
}

fn line_hash(line: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(line).ok()?;
    let (_, tail) = s.rsplit_once(",\"hash\":\"")?;
    let h = tail.strip_suffix("\"}")?;
    Some(h.to_owned())
}

/// Checks one line's hash, seq and link; returns it parsed.
fn check_line(line: &[u8], seq: u64, prev: &str) -> Result<serde_json::Value, String> {
    let s = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let (head, tail) = s
        .rsplit_once(",\"hash\":\"")
        .ok_or_else(|| "no hash field at the end of the line".to_owned())?;
    let claimed = tail
        .strip_suffix("\"}")
        .ok_or_else(|| "the line does not end with its hash".to_owned())?;
    let body = format!("{head}}}");
    let actual = crate::digest::sha256_hex(body.as_bytes());
    if actual != claimed {
        return Err("its hash does not match its contents (the line was changed)".into());
    }
    let v: Value = serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))?;
    let found = field(&v, "/seq");
    if found.as_u64() != Some(seq) {
        return Err(format!("expected seq {seq}, found {found}"));
    }
    let ty = field(&v, "/type");
    if seq == 0 && ty != "run_started" {
        return Err(format!("a journal begins with `run_started`, not {ty}"));
    }
    if field(&v, "/prev").as_str() != Some(prev) {
        return Err(
            "its `prev` does not match the previous line's hash (a line was removed or reordered)"
                .into(),
        );
    }
    Ok(v)
}
