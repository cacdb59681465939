//! Runs the real `runbook` binary, as a user would: in a temporary project folder holding the
//! files a test writes, with `NO_COLOR=1` and no standard input. Shared by the integration
//! tests (`mod common;`).
#![allow(dead_code)] // each test file uses its own part of the builder

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

/// The repository root: the shipped runbooks and step library live under it.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `runbook` invocation being built: `runbook(&["check"]).file("runbooks/x.yaml", "...").run()`.
pub struct Runbook {
    args: Vec<String>,
    files: Vec<(PathBuf, String, bool)>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
}

/// Starts an invocation of the binary with these arguments.
pub fn runbook(args: &[&str]) -> Runbook {
    Runbook {
        args: args.iter().map(|a| a.to_string()).collect(),
        files: Vec::new(),
        env: Vec::new(),
        cwd: None,
    }
}

impl Runbook {
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Writes a file (parents created) into the temporary folder before the run.
    pub fn file(mut self, path: impl AsRef<Path>, contents: &str) -> Self {
        self.files
            .push((path.as_ref().to_owned(), contents.to_owned(), false));
        self
    }

    /// Writes an executable script into the temporary folder before the run.
    pub fn script(mut self, path: impl AsRef<Path>, contents: &str) -> Self {
        self.files
            .push((path.as_ref().to_owned(), contents.to_owned(), true));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs in this folder instead of the temporary one (files are still written to the
    /// temporary folder, which the output can name as `dir`).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn run(self) -> Output {
        let dir = tempfile::tempdir().expect("a temporary folder");
        for (path, contents, executable) in &self.files {
            let full = dir.path().join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).expect("create parent folders");
            }
            std::fs::write(&full, contents).expect("write a test file");
            if *executable {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755))
                    .expect("make a script executable");
            }
        }
        let cwd = self.cwd.clone().unwrap_or_else(|| dir.path().to_owned());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
        cmd.args(&self.args)
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .env("NO_COLOR", "1")
            .env("RUNBOOK_STATE_DIR", dir.path().join(".runbook"))
            .env_remove("RUST_LOG")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("FORCE_COLOR");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run the runbook binary");
        let redact = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let tmp = dir.path().to_string_lossy().into_owned();
            text.replace(&tmp, "[TMP]")
        };
        Output {
            code: out.status.code(),
            stdout: redact(&out.stdout),
            stderr: redact(&out.stderr),
            dir,
        }
    }
}

/// What a run left: its exit code, its output (the temporary folder's path redacted as
/// `[TMP]`), and the folder itself, kept until the output is dropped.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub dir: TempDir,
}

impl Output {
    /// Asserts the exit code, showing the whole output when it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts stderr holds this text.
    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}
