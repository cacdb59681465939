//! A step's log and its hosts' logs, opened on first use, masked, and honest about lines a
//! full disk lost.

use std::io::Write;
use std::path::Path;

pub(crate) struct LazyLog {
    pub(crate) path: std::path::PathBuf,
    pub(crate) file: Option<std::fs::File>,
    /// A write has failed: said once.
    pub(crate) failing: bool,
    /// Lines not written since the last that was: a marker says so where they are missing.
    pub(crate) lost: u64,
    /// (host, its log, the file once opened).
    pub(crate) hosts: Vec<(String, std::path::PathBuf, Option<std::fs::File>)>,
}

/// `logs/<step>.log` -> `logs/<step>@<host>.log`.
pub(crate) fn host_log(log: &Path, host: &str) -> std::path::PathBuf {
    let stem = log.file_stem().unwrap_or_default().to_string_lossy();
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    log.with_file_name(format!("{stem}@{safe}.log"))
}

/// Appends a line, opening the file on first use.
fn append(file: &mut Option<std::fs::File>, path: &Path, line: &str) -> std::io::Result<()> {
    if file.is_none() {
        *file = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        );
    }
    if let Some(f) = file.as_mut() {
        let mut l = String::with_capacity(line.len() + 1);
        l.push_str(line);
        l.push('\n');
        f.write_all(l.as_bytes())?;
    }
    Ok(())
}

impl LazyLog {
    /// Appends a line to the step's log (and its host's); the first failure to write (a full
    /// disk) is returned, once, for the terminal to say: the lines still go there. Where lines
    /// could not be written, a marker says how many, once writing works again.
    pub(crate) fn line(&mut self, line: &str) -> Option<String> {
        let mut failed = self
            .mark_lost("")
            .and_then(|_| append(&mut self.file, &self.path, line))
            .err()
            .map(|e| (self.path.clone(), e));
        if failed.is_some() {
            self.lost += 1;
        }
        for (host, path, file) in &mut self.hosts {
            if let Some(rest) = line.strip_prefix(&format!("[{host}] "))
                && let Err(e) = append(file, path, rest)
            {
                failed.get_or_insert((path.clone(), e));
            }
        }
        let (path, e) = failed?;
        if self.failing {
            return None;
        }
        self.failing = true;
        Some(format!(
            "runbook: cannot write the step's log {}: {e}; its lines from here on are shown, not kept",
            path.display()
        ))
    }

    /// Writes the marker of lines lost since the last written one, if any.
    fn mark_lost(&mut self, at: &str) -> std::io::Result<()> {
        if self.lost == 0 {
            return Ok(());
        }
        // A write cut short by the full disk may have left half a line: the marker starts
        // on a line of its own.
        let torn = (|| {
            use std::io::{Read, Seek};
            let mut f = std::fs::File::open(&self.path).ok()?;
            f.seek(std::io::SeekFrom::End(-1)).ok()?;
            let mut last = [0u8];
            f.read_exact(&mut last).ok()?;
            Some(last[0] != b'\n')
        })()
        .unwrap_or(false);
        let marker = format!(
            "{}[runbook: {} line(s) of output {at}could not be written here (the disk was full, or the log unwritable); they were shown on the terminal]",
            if torn { "\n" } else { "" },
            self.lost
        );
        append(&mut self.file, &self.path, &marker)?;
        self.lost = 0;
        Ok(())
    }

    /// The step has ended: lines lost at its end are marked, if the log can take it now.
    pub(crate) fn close(&mut self) {
        let _ = self.mark_lost("at the end ");
    }
}
