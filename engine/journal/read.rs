//! Reading a journal back: whole and verified, or leniently (a run being written right now).

// A journal file may be hostile: see the lint's reason in lib.rs.
#![deny(clippy::indexing_slicing, clippy::string_slice)]

use std::path::Path;

use super::Record;
use super::verify::{JournalError, verify};

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
