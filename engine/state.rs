//! The state folder (`.runbook/` by default): runs, their journals, logs and approval drop
//! boxes, and the per-scenario locks that allow one live run each. Every file in it, and what
//! writes it: docs/design.md ("The state folder").

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;

#[derive(Clone, Debug)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// `--state-dir`, `RUNBOOK_STATE_DIR`, or `.runbook` in the current directory.
    pub fn resolve(flag: Option<PathBuf>) -> Self {
        StateDir::new(flag.unwrap_or_else(|| PathBuf::from(".runbook")))
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.runs_dir().join(run_id)
    }

    pub fn journal(&self, run_id: &str) -> PathBuf {
        self.run_dir(run_id).join("journal.jsonl")
    }

    pub fn lock_path(&self, scenario: &str) -> PathBuf {
        self.root.join("lock").join(scenario)
    }

    /// `20261125T193001Z-region-failure`, with a suffix if that exists already.
    pub fn new_run_id(&self, scenario: &str) -> String {
        let base = format!("{}-{scenario}", Utc::now().format("%Y%m%dT%H%M%SZ"));
        let mut id = base.clone();
        let mut n = 2;
        while self.run_dir(&id).exists() {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }

    /// Creates the run's folders; fails if the run exists.
    pub fn create_run(&self, run_id: &str) -> std::io::Result<PathBuf> {
        let dir = self.run_dir(run_id);
        std::fs::create_dir_all(self.runs_dir())?;
        std::fs::create_dir(&dir)?;
        for sub in ["logs", "outputs", "approvals"] {
            std::fs::create_dir(dir.join(sub))?;
        }
        Ok(dir)
    }

    /// Run ids, oldest first: by the time of each journal's first record (an id given with
    /// `--run-id` need not sort by time), else by when the journal was made.
    pub fn runs(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.runs_dir()) else {
            return Vec::new();
        };
        let mut ids: Vec<(String, String)> = rd
            .filter_map(Result::ok)
            .filter(|e| e.path().join("journal.jsonl").is_file())
            .map(|e| {
                let journal = e.path().join("journal.jsonl");
                let at = started_at(&journal).unwrap_or_else(|| {
                    let t = journal
                        .metadata()
                        .and_then(|m| m.created().or_else(|_| m.modified()))
                        .unwrap_or(std::time::UNIX_EPOCH);
                    chrono::DateTime::<Utc>::from(t)
                        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                        .to_string()
                });
                (at, e.file_name().to_string_lossy().into_owned())
            })
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// A RUN argument: an id, a unique prefix or suffix of one, or `last`.
    pub fn find_run(&self, arg: &str) -> Result<String, String> {
        self.find_run_where(arg, |_| true, "run")
    }

    /// A RUN argument, where `last` is the newest run that `fits` (a colleague's dry-run is
    /// not the run a `resume last` means); an id or part of one names any run. `what` names
    /// a fitting run when there is none.
    pub fn find_run_where(
        &self,
        arg: &str,
        fits: impl Fn(&str) -> bool,
        what: &str,
    ) -> Result<String, String> {
        let runs = self.runs();
        if runs.is_empty() {
            return Err(format!("no runs in {}", self.runs_dir().display()));
        }
        if arg == "last" {
            return runs
                .iter()
                .rev()
                .find(|r| fits(r))
                .cloned()
                .ok_or_else(|| format!("no {what} in {}", self.runs_dir().display()));
        }
        if runs.iter().any(|r| r == arg) {
            return Ok(arg.to_owned());
        }
        let hits: Vec<&String> = runs
            .iter()
            .filter(|r| r.starts_with(arg) || r.ends_with(arg))
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!("no run `{arg}` in {}", self.runs_dir().display())),
            many => Err(format!(
                "`{arg}` matches {} runs: {}",
                many.len(),
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The lock of a live run. Held while this value lives; the OS lets go of it if the process
/// dies, so the lock passes from a dead holder but never from a live one.
pub struct Lock {
    _file: File,
}

#[derive(Debug)]
pub struct Holder {
    pub run_id: String,
    pub pid: Option<u32>,
}

pub fn lock(path: &Path, run_id: &str) -> Result<Lock, Result<Holder, std::io::Error>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Err)?;
    }
    // No truncation before the lock is ours: the holder's words must survive.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(Err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut s = String::new();
            let _ = file.read_to_string(&mut s);
            let mut parts = s.split_whitespace();
            let holder = Holder {
                run_id: parts.next().unwrap_or("?").to_owned(),
                pid: parts.next().and_then(|p| p.parse().ok()),
            };
            return Err(Ok(holder));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Err(e)),
    }
    file.set_len(0).map_err(Err)?;
    file.rewind().map_err(Err)?;
    writeln!(file, "{run_id} {}", std::process::id()).map_err(Err)?;
    file.flush().map_err(Err)?;
    Ok(Lock { _file: file })
}

/// Who holds a lock now, if anyone: the OS's word (the lock is tried, shared, without waiting
/// and without writing), not the file's, whose text may be stale or forged.
pub fn holder(path: &Path) -> Option<Holder> {
    let mut file = File::open(path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut s = String::new();
            let _ = file.read_to_string(&mut s);
            let mut parts = s.split_whitespace();
            Some(Holder {
                run_id: parts.next().unwrap_or("?").to_owned(),
                pid: parts.next().and_then(|p| p.parse().ok()),
            })
        }
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// The `at` of a journal's first record (RFC 3339 in UTC to the millisecond, which sorts as
/// text), read from its first line only.
fn started_at(journal: &Path) -> Option<String> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(std::fs::File::open(journal).ok()?)
        .take(64 * 1024)
        .read_line(&mut line)
        .ok()?;
    #[derive(serde::Deserialize)]
    struct First {
        at: String,
    }
    serde_json::from_str::<First>(&line).ok().map(|f| f.at)
}
