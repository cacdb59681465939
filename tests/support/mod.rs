//! A project folder for multi-command scenarios: write runbooks, start runs in the background,
//! answer gates from a second process, kill executors, resume — all through the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Project {
    pub dir: tempfile::TempDir,
}

pub const BIN: &str = env!("CARGO_BIN_EXE_runbook");

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("RUNBOOK_STATE_DIR", self.path().join(".runbook"))
            .env("USER", "tester")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    /// Runs to completion; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out: Output = self.cmd(args).output().expect("run runbook");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts in the background, output captured.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start runbook")
    }

    /// The single run's id (the test starts one run of a scenario at a time).
    pub fn run_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path().join(".runbook/runs"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn journal(&self, run: &str) -> String {
        self.read(&format!(".runbook/runs/{run}/journal.jsonl"))
    }

    pub fn events(&self, run: &str) -> Vec<serde_json::Value> {
        self.journal(run)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn events_of(&self, run: &str, ty: &str) -> Vec<serde_json::Value> {
        self.events(run)
            .into_iter()
            .filter(|e| e["type"] == ty)
            .collect()
    }

    /// Waits (up to 20 s) until the journal of the only run has an event of this type for
    /// this step (any step when `step` is empty).
    pub fn wait_for(&self, ty: &str, step: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(run) = self.run_ids().last() {
                let hit = self
                    .events_of(run, ty)
                    .iter()
                    .any(|e| step.is_empty() || e["data"]["step"] == step);
                if hit {
                    return run.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no `{ty}` for `{step}` within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn report_json(&self, run: &str) -> serde_json::Value {
        let (code, out, err) = self.run(&["report", run, "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    }
}

/// Waits for a child with a deadline; kills it and fails the test if it hangs.
pub fn finish(mut child: Child, within: Duration) -> (i32, String, String) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "runbook did not finish within {within:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie is not alive.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("Z");
            state != "Z" && state != "X"
        })
        .unwrap_or(false)
}
